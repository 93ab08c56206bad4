//! `sandbox latency-proxy` (hidden): the latency link of `scripts/bench`.
//! Prints `listening on ADDR`, then one line per finished connection with
//! the bytes it carried each way, until killed.

use std::io::Write;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sandbox::error::environment;
use sandbox::latency::{serve, Link, ProxyStats};

use crate::cli::LatencyProxyArgs;

pub fn run(args: LatencyProxyArgs) -> Result<i32> {
    if !(args.mbit >= 0.0 && args.mbit.is_finite()) {
        return Err(environment("--mbit must be a number of at least 0"));
    }
    // A pasted database URL would be echoed back, password and all, into a
    // terminal or CI log: refuse it without repeating it.
    if args.upstream.contains("://") || args.upstream.contains('@') {
        return Err(environment(
            "--upstream expects HOST:PORT of the Postgres server (e.g. db.example.com:5432), \
             not a database URL; the URL's password is not repeated here",
        ));
    }
    let upstream = args
        .upstream
        .to_socket_addrs()
        .map_err(|e| environment(format!("--upstream {}: {e}", args.upstream)))?
        .next()
        .ok_or_else(|| environment(format!("--upstream {} resolves to nothing", args.upstream)))?;
    let link = Link {
        rtt: Duration::from_millis(args.rtt_ms),
        mbit_per_s: (args.mbit > 0.0).then_some(args.mbit),
    };
    crate::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| environment(format!("cannot listen on {}: {e}", args.listen)))?;
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let printer = async move {
            while let Some((to_client, to_server)) = closed_rx.recv().await {
                println!("closed to_client={to_client} to_server={to_server}");
                let _ = std::io::stdout().flush();
            }
        };
        let stats = Arc::new(ProxyStats::default());
        let (served, _) = tokio::join!(
            serve(listener, upstream, link, stats, Some(closed_tx)),
            printer
        );
        served.context("the proxy stopped accepting connections")?;
        Ok(0)
    })
}
