//! A TCP proxy that makes a local Postgres look remote: it delays every
//! chunk by half the round-trip time in each direction and paces each
//! direction to a bandwidth cap. Used by the tests (through `tests/common`)
//! and by `scripts/bench` (through the hidden `sandbox latency-proxy`), so
//! both measure the same link without installing anything.
//!
//! Model: a chunk read at time t is written at
//! `max(t + rtt/2, previous chunk's end) + bytes / bandwidth`, so round
//! trips cost the RTT and bulk transfers the bandwidth, as on a real link.
//! Each direction keeps at most [`IN_FLIGHT`] chunks queued, which stands in
//! for the TCP window: a fast sender is slowed down, not buffered without
//! bound.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks queued per direction (at most 64 KiB each).
const IN_FLIGHT: usize = 64;
const CHUNK: usize = 64 << 10;

/// What the link adds.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Round-trip time added (half each way).
    pub rtt: Duration,
    /// Bandwidth cap per direction in megabits per second; `None` = no cap.
    pub mbit_per_s: Option<f64>,
}

/// Totals over every connection so far (bytes as delivered).
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub to_client: AtomicU64,
    pub to_server: AtomicU64,
    /// Sequential round trips: the times a client spoke again after the
    /// server had answered it (summed over connections). Statements a
    /// client sends back to back, without waiting for an answer, are one
    /// (with a delay on the link their answers cannot arrive in between).
    pub round_trips: AtomicU64,
}

impl Link {
    /// When a chunk of `bytes` read now may be written: after the one-way
    /// delay, after the previous chunk has left, plus its own transmission.
    fn due(&self, read_at: Instant, previous_end: Instant, bytes: usize) -> Instant {
        let start = (read_at + self.rtt / 2).max(previous_end);
        match self.mbit_per_s {
            Some(mbit) if mbit > 0.0 => {
                start + Duration::from_secs_f64(bytes as f64 * 8.0 / (mbit * 1_000_000.0))
            }
            _ => start,
        }
    }
}

/// Copies one direction through the link; returns when the reader ends or
/// either side fails. Counts bytes into `counters` as they are delivered.
/// `answered` is set once the server has delivered bytes to the client and
/// cleared when the client speaks again (which is then a new round trip).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    conn: Arc<AtomicU64>,
    total: Arc<ProxyStats>,
    answered: Arc<AtomicBool>,
    to_client: bool,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let answered_by_server = answered.clone();
    let counted = total.clone();
    let reader = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if !to_client && answered.swap(false, Ordering::SeqCst) {
                        counted.round_trips.fetch_add(1, Ordering::Relaxed);
                    }
                    if tx.send((Instant::now(), buf)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut previous_end = Instant::now();
        while let Some((read_at, chunk)) = rx.recv().await {
            let due = link.due(read_at, previous_end, chunk.len());
            // Only a chunk that is early waits: tokio's timer rounds a
            // deadline up to its next millisecond tick, so sleeping until a
            // moment already past would still hold the chunk up to 1 ms, and
            // one chunk per millisecond is all the writer would deliver (the
            // rtt-0 link, meant to add nothing, capped a pull at ~40 MB/s).
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            previous_end = due;
            // Counted before the write: the peer may act on the bytes (and
            // a test read the counter) before write_all returns here.
            let n = chunk.len() as u64;
            conn.fetch_add(n, Ordering::Relaxed);
            if to_client {
                total.to_client.fetch_add(n, Ordering::Relaxed);
            } else {
                total.to_server.fetch_add(n, Ordering::Relaxed);
            }
            if to_client {
                // Before the write too: the client may answer at once.
                answered_by_server.store(true, Ordering::SeqCst);
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Serves connections until the listener is dropped; `closed` is told each
/// finished connection's byte counts.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    link: Link,
    stats: Arc<ProxyStats>,
    closed: Option<mpsc::UnboundedSender<(u64, u64)>>,
) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let closed = closed.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let down = Arc::new(AtomicU64::new(0));
            let up = Arc::new(AtomicU64::new(0));
            // The client's first message (the startup) is its first round trip.
            let answered = Arc::new(AtomicBool::new(true));
            tokio::join!(
                pump(
                    sr,
                    cw,
                    link,
                    down.clone(),
                    stats.clone(),
                    answered.clone(),
                    true
                ),
                pump(cr, sw, link, up.clone(), stats.clone(), answered, false),
            );
            let (d, u) = (down.load(Ordering::Relaxed), up.load(Ordering::Relaxed));
            if let Some(c) = closed {
                let _ = c.send((d, u));
            }
        });
    }
}

/// A proxy running on a thread of its own (for synchronous tests): listens
/// on 127.0.0.1 at an ephemeral port; stops when dropped.
pub struct LatencyProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LatencyProxy {
    pub fn start(upstream: SocketAddr, link: Link) -> std::io::Result<LatencyProxy> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread_stats = stats.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("latency-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = serve(listener, upstream, link, thread_stats, None) => {}
                        _ = stop_rx => {}
                    }
                });
            })?;
        Ok(LatencyProxy {
            addr,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Bytes the server sent to clients so far (over every connection).
    pub fn bytes_to_client(&self) -> u64 {
        self.stats.to_client.load(Ordering::Relaxed)
    }

    /// Sequential round trips so far (over every connection): see
    /// [`ProxyStats::round_trips`].
    pub fn round_trips(&self) -> u64 {
        self.stats.round_trips.load(Ordering::Relaxed)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_waits_half_the_rtt_then_its_transmission_time() {
        let link = Link {
            rtt: Duration::from_millis(30),
            mbit_per_s: Some(8.0),
        };
        let t0 = Instant::now();
        // 1000 bytes at 8 Mbit/s = 1 ms.
        let due = link.due(t0, t0, 1000);
        assert_eq!(due - t0, Duration::from_millis(16));
        // A chunk read while the previous one is still on the wire queues
        // behind it.
        let later = link.due(t0, t0 + Duration::from_millis(40), 1000);
        assert_eq!(later - t0, Duration::from_millis(41));
    }
}
