//! Per-test Postgres databases: each test creates its own and drops it, so
//! tests run in parallel against the one local server.
#![allow(dead_code)]

pub mod state;
mod tools;

// Not every test binary uses every helper.
#[allow(unused_imports)]
pub use tools::require_tool;

use std::sync::atomic::{AtomicU32, Ordering};

pub fn admin_url() -> String {
    std::env::var("SANDBOX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test and is dropped afterwards.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDb {
    /// Creates a fresh empty database. Panics with a clear message when the
    /// test server is unreachable: a test must never pass by skipping.
    pub fn create(tag: &str) -> TestDb {
        let admin = admin_url();
        let name = format!(
            "sbx_{}_{}_{}",
            tag.to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut client = postgres_admin(&admin);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = replace_db(&admin, &name);
        TestDb { name, url, admin }
    }

    pub fn client(&self) -> postgres_sync::Client {
        postgres_admin(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres_sync::Client::connect(&self.admin, postgres_sync::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

pub fn postgres_admin(url: &str) -> postgres_sync::Client {
    postgres_sync::Client::connect(url, postgres_sync::NoTls).unwrap_or_else(|e| {
        panic!(
            "the test Postgres at {url} is unreachable ({e}). Start it \
             (pg_ctlcluster 15 main start) or point SANDBOX_TEST_DATABASE_URL at one."
        )
    })
}

pub fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let cut = base.rfind('/').expect("database URL has a path");
    let mut out = format!("{}/{}", &base[..cut], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Path to the built `sandbox` binary for end-to-end tests.
pub fn sandbox_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_sandbox"))
}

/// One run of the binary, for assertions that show everything on failure.
pub struct Run {
    pub what: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn show(&self) -> String {
        format!(
            "`{}` exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "{}", self.show());
        self
    }

    pub fn ok(&self) -> &Run {
        self.code(0)
    }

    /// The error is printed once, on stderr, and holds every needle.
    pub fn error_has(&self, needles: &[&str]) -> &Run {
        assert_eq!(
            self.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "one error line expected: {}",
            self.show()
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}: {}",
                self.show()
            );
        }
        self
    }
}

/// Runs the binary with nothing inherited that could change its behaviour;
/// `env` adds variables (the URL may come from there). The command line
/// shown in failures never holds a URL, which may carry a password.
pub fn run_sandbox(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = std::process::Command::new(sandbox_bin());
    cmd.args(args)
        .env_remove("SANDBOX_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("SANDBOX_PLAN")
        .env_remove("SANDBOX_SEEDS")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", sandbox_bin().display()));
    let shown: Vec<&str> = args
        .iter()
        .map(|a| {
            if a.contains("://") || a.to_lowercase().contains("password") {
                "<URL>"
            } else {
                a
            }
        })
        .collect();
    Run {
        what: format!("sandbox {}", shown.join(" ")),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The database at `url` seen through a latency link (round-trip time added,
/// bandwidth capped): the proxy, and the same URL pointing at it. The proxy
/// stops when dropped.
pub fn behind_latency_link(
    url: &str,
    rtt_ms: u64,
    mbit_per_s: Option<f64>,
) -> (sandbox::latency::LatencyProxy, String) {
    use std::net::ToSocketAddrs;
    let mut parsed = url::Url::parse(url).expect("test database URL parses");
    let upstream = (
        parsed.host_str().unwrap_or("127.0.0.1").to_string(),
        parsed.port().unwrap_or(5432),
    )
        .to_socket_addrs()
        .expect("test database host resolves")
        .next()
        .expect("test database host has an address");
    let proxy = sandbox::latency::LatencyProxy::start(
        upstream,
        sandbox::latency::Link {
            rtt: std::time::Duration::from_millis(rtt_ms),
            mbit_per_s,
        },
    )
    .expect("the latency proxy starts");
    parsed
        .set_host(Some("127.0.0.1"))
        .expect("host is settable");
    parsed
        .set_port(Some(proxy.addr.port()))
        .expect("port is settable");
    (proxy, parsed.to_string())
}
