//! Command-line tools the tests drive (pgbouncer, psql, sqlite3). A missing
//! one is installed by `.ci/install-deps` (Debian's packages, under a file
//! lock so parallel test binaries do not race), so plain `cargo test` passes
//! on a fresh machine; where that cannot work (not root, no sudo) the test
//! fails saying what to install. Never a skip. Also small file and network
//! helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the tool is: on PATH, or in /usr/sbin (pgbouncer lives there and
/// /usr/sbin is not on every user's PATH).
fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The path of `tool`, installing it first when it is missing. Panics with
/// the installer's message when it cannot be had.
pub fn require_tool(tool: &str) -> PathBuf {
    if let Some(p) = find(tool) {
        return p;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/install-deps");
    eprintln!("note: {tool} is missing; installing it with {script}");
    let out = Command::new("bash")
        .arg(script)
        .arg(tool)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{tool} is missing and bash cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "{tool} is missing and {script} could not install it ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    find(tool).unwrap_or_else(|| panic!("{script} succeeded but {tool} is still not found"))
}

/// Copies a folder tree (seed folders a test then edits).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server the test
/// starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `psql -f script` on the database at `url`, stopping at the first error
/// (the reviewable `diff --sql` script, run as a user would).
pub fn psql_file(url: &str, script: &Path) -> super::Run {
    let out = Command::new(require_tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    super::Run::of_output(&format!("psql -f {}", script.display()), &out)
}

/// What [`CommitCut`] does with the first simple-query `COMMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtCommit {
    /// Passes it to the server (which commits), drops the answer and cuts
    /// the client off.
    Forward,
    /// Cuts both sides without passing it: the server rolls back once the
    /// connection is gone.
    Drop,
    /// Answers it with an ERROR (SQLSTATE 40001) itself and cuts the
    /// server off without passing it: the server rolls back, as it would
    /// for a COMMIT it refused.
    Refuse,
}

/// A TCP proxy to the Postgres of `url` that breaks the first
/// simple-query `COMMIT` a client sends through it ([`AtCommit`]). With
/// `Forward` or `Drop` the client sees its connection fail during COMMIT
/// and cannot know which happened. `url` is the proxied URL
/// (`sslmode=disable`: the proxy reads the protocol in the clear); `cuts`
/// counts the COMMITs broken. The listener thread ends with the test.
pub struct CommitCut {
    pub url: String,
    pub cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CommitCut {
    pub fn start(url: &str, at_commit: AtCommit) -> CommitCut {
        use std::net::{TcpListener, ToSocketAddrs};
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        let mut parsed = url::Url::parse(url).expect("test database URL parses");
        let upstream = (
            parsed.host_str().unwrap_or("127.0.0.1").to_string(),
            parsed.port().unwrap_or(5432),
        )
            .to_socket_addrs()
            .expect("test database host resolves")
            .next()
            .expect("test database host has an address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        let port = listener.local_addr().expect("proxy address").port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let counted = cuts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (cuts, armed) = (counted.clone(), armed.clone());
                std::thread::spawn(move || {
                    commit_cut_relay(client, upstream, at_commit, &armed, &cuts)
                });
            }
        });
        parsed
            .set_host(Some("127.0.0.1"))
            .expect("host is settable");
        parsed.set_port(Some(port)).expect("port is settable");
        parsed.query_pairs_mut().append_pair("sslmode", "disable");
        CommitCut {
            url: parsed.to_string(),
            cuts,
        }
    }
}

/// One client's connection through [`CommitCut`].
fn commit_cut_relay(
    mut client: std::net::TcpStream,
    upstream: std::net::SocketAddr,
    at_commit: AtCommit,
    armed: &std::sync::atomic::AtomicBool,
    cuts: &std::sync::atomic::AtomicUsize,
) {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Ok(mut server) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    let cut = Arc::new(AtomicBool::new(false));
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let cut_back = cut.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = from_server.read(&mut buf) {
            // The server's answer to the COMMIT, and all after it, is dropped.
            if n == 0 || cut_back.load(Ordering::SeqCst) || to_client.write_all(&buf[..n]).is_err()
            {
                break;
            }
        }
        if !cut_back.load(Ordering::SeqCst) {
            let _ = to_client.shutdown(Shutdown::Both);
        }
    });
    // Query message: 'Q', length 4 + "COMMIT\0".
    const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = client.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        let found =
            seen.windows(COMMIT.len()).any(|w| w == COMMIT) && armed.swap(false, Ordering::SeqCst);
        if found {
            cut.store(true, Ordering::SeqCst);
            cuts.fetch_add(1, Ordering::SeqCst);
            match at_commit {
                AtCommit::Forward => {
                    let _ = server.write_all(&buf[..n]);
                    let _ = client.shutdown(Shutdown::Both);
                    // Time for the server to take the COMMIT before the
                    // connection goes.
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                AtCommit::Drop => {
                    let _ = client.shutdown(Shutdown::Both);
                }
                AtCommit::Refuse => {
                    let _ = server.shutdown(Shutdown::Both);
                    let _ = client.write_all(&commit_refused());
                    // The client ends the session (Terminate) when done.
                    while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
                }
            }
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
        let keep = seen.len().saturating_sub(COMMIT.len());
        seen.drain(..keep);
    }
    let _ = server.shutdown(Shutdown::Both);
}

/// An ErrorResponse (SQLSTATE 40001) and ReadyForQuery, as a server
/// refusing a COMMIT sends them.
fn commit_refused() -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, text) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "40001"),
        (
            b'M',
            "could not serialize access (refused at COMMIT by the test proxy)",
        ),
    ] {
        fields.push(code);
        fields.extend_from_slice(text.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&fields);
    out.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
    out
}
