//! Through a transaction-mode pooler (Supabase's port 6543 behaves like
//! this): a real PgBouncer in front of the test server, `pool_mode =
//! transaction`, no prepared-statement support. Pull, push and rollback go
//! through it; the results are read back from Postgres directly.
//!
//! Needs the `pgbouncer` binary: the harness installs it when missing
//! (`.ci/install-deps`), and the test fails, never skips, when it cannot.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{admin_url, replace_db, require_tool, sandbox_bin, TestDb};
use postgres_sync::{Client, SimpleQueryMessage};

/// A PgBouncer process of this test, killed when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PgBouncer {
    fn start() -> PgBouncer {
        let exe = require_tool("pgbouncer");
        let version = Command::new(&exe)
            .arg("--version")
            .output()
            .expect("pgbouncer --version");
        let version = String::from_utf8_lossy(&version.stdout).into_owned();

        let upstream = url::Url::parse(&admin_url()).expect("SANDBOX_TEST_DATABASE_URL is a URL");
        let user = match upstream.username() {
            "" => "postgres".to_string(),
            u => u.to_string(),
        };
        let mut server = format!(
            "host={} port={}",
            upstream.host_str().unwrap_or("127.0.0.1"),
            upstream.port().unwrap_or(5432)
        );
        if let Some(pw) = upstream.password() {
            server.push_str(&format!(" password={pw}"));
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let auth_file = dir.path().join("userlist.txt");
        std::fs::write(&auth_file, format!("\"{user}\" \"\"\n")).expect("write auth_file");
        let mut ini = format!(
            "[databases]\n\
             * = {server}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {}\n\
             pool_mode = transaction\n\
             default_pool_size = 4\n\
             max_client_conn = 50\n\
             server_round_robin = 1\n",
            auth_file.display()
        );
        // PgBouncer 1.21+ can track prepared statements in transaction mode;
        // 0 keeps it a plain transaction pooler. Older versions have no such
        // setting (and refuse unknown ones): they never track them.
        if version_at_least(&version, (1, 21)) {
            ini.push_str("max_prepared_statements = 0\n");
        }
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(&config, ini).expect("write pgbouncer.ini");
        let log = dir.path().join("pgbouncer.log");
        let log_file = File::create(&log).expect("create log");

        let mut cmd = Command::new(&exe);
        cmd.arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file);
        // PgBouncer refuses to run as root: drop to the postgres user (no
        // wrapper process, so the guard kills PgBouncer itself).
        if current_uid() == 0 {
            let (uid, gid) = user_ids("postgres");
            set_mode(dir.path(), 0o755);
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("start pgbouncer");
        let mut bouncer = PgBouncer {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!(
                    "pgbouncer exited ({status}) at start:\n{}",
                    bouncer.log_text()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen on {port}:\n{}",
                bouncer.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    /// The URL of a database through the pooler.
    fn url(&self, db: &str) -> String {
        let mut u = url::Url::parse(&replace_db(&admin_url(), db)).expect("URL");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(self.port)).expect("port");
        u.to_string()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn version_at_least(text: &str, want: (u32, u32)) -> bool {
    // "PgBouncer 1.18.0"
    let v = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let got = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    got >= want
}

fn current_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().expect("id");
        assert!(out.status.success(), "no user {user} to run pgbouncer as");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("id")
    };
    (id("-u"), id("-g"))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_sandbox(args: &[&str]) -> Run {
    let out = Command::new(sandbox_bin())
        .args(args)
        .env_remove("SANDBOX_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("SANDBOX_PLAN")
        .env_remove("SANDBOX_SEEDS")
        .stdin(Stdio::null())
        .output()
        .expect("run sandbox");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary and requires exit 0, showing PgBouncer's complaints if not.
fn sandbox(bouncer: &PgBouncer, args: &[&str]) -> Run {
    let run = run_sandbox(args);
    assert_eq!(
        run.code,
        0,
        "`sandbox {}` failed\n--- stdout\n{}\n--- stderr\n{}\n--- pgbouncer log (errors)\n{}",
        args.join(" "),
        run.stdout,
        run.stderr,
        bouncer
            .log_text()
            .lines()
            .filter(|l| !l.contains(" LOG "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    run
}

/// Makes PgBouncer open `n` server connections (then idle in its pool).
fn fill_pool(url: &str, n: usize) {
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                let mut c = postgres_sync::Client::connect(url, postgres_sync::NoTls)
                    .expect("connect through pgbouncer");
                c.batch_execute("BEGIN; SELECT pg_sleep(0.3); COMMIT")
                    .expect("hold a server connection");
            });
        }
    });
}

fn text_rows(c: &mut Client, sql: &str) -> Vec<Vec<String>> {
    c.simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn count(c: &mut Client, sql: &str) -> i64 {
    text_rows(c, sql)[0][0].parse().expect("a number")
}

/// Every base table of schema public: primary key text → md5 of the row.
fn public_state(c: &mut Client) -> BTreeMap<String, BTreeMap<String, String>> {
    let tables: Vec<String> = text_rows(
        c,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    tables
        .into_iter()
        .map(|t| {
            let key = text_rows(
                c,
                &format!(
                    "SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY a.attnum) FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = 'public.\"{t}\"'::regclass AND i.indisprimary"
                ),
            )[0][0]
                .clone();
            let rows = text_rows(c, &format!("SELECT ROW({key})::text, md5(t::text) FROM public.\"{t}\" t"));
            (t, rows.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect())
        })
        .collect()
}

#[test]
fn pull_push_and_rollback_through_a_transaction_pooler() {
    let bouncer = PgBouncer::start();
    let db = TestDb::create("pgbouncer");
    // Loading the fixtures is set-up, not under test: straight to Postgres.
    let loaded = Command::new(sandbox_bin())
        .args(["fixtures", "load", "--database-url", &db.url])
        .output()
        .expect("fixtures load");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let pooled = bouncer.url(&db.name);
    let mut direct = db.client();
    let before = public_state(&mut direct);

    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snapshot.sqlite");
    let snap = snap.to_str().expect("utf-8 path");
    let pulled = sandbox(
        &bouncer,
        &["pull", "--database-url", &pooled, "--out", snap],
    );
    assert!(
        pulled.stdout.contains(&format!(":{}/", bouncer.port)),
        "pulled from {}",
        pulled.stdout
    );
    sandbox(&bouncer, &["rehearse", "--snapshot", snap]);
    sandbox(
        &bouncer,
        &["push", "--database-url", &pooled, "--snapshot", snap],
    );
    assert_eq!(
        count(&mut direct, "SELECT count(*) FROM workflows"),
        141,
        "the dry run wrote"
    );

    // A lock held by another session: the refusal names it. Naming it takes
    // a query outside any transaction; with several idle server connections
    // in a round-robin pool, a named prepared statement's Parse and Bind land
    // on different ones ('prepared statement "s0" does not exist'), and the
    // stray "s0" left behind breaks the next client that prepares one
    // ('prepared statement "s0" already exists').
    let mut blocker = postgres_sync::Client::connect(
        &format!("{}?application_name=sandbox_test_blocker", db.url),
        postgres_sync::NoTls,
    )
    .expect("blocker connection");
    let pid = count(&mut blocker, "SELECT pg_backend_pid()");
    for round in 0..2 {
        fill_pool(&pooled, 4);
        let mut tx = blocker.transaction().expect("BEGIN");
        tx.batch_execute("UPDATE workflows SET name = name WHERE id = (SELECT min(id::text)::uuid FROM workflows)")
            .expect("UPDATE");
        let run = run_sandbox(&[
            "push",
            "--database-url",
            &pooled,
            "--snapshot",
            snap,
            "--confirm",
            "--lock-timeout",
            "1000",
        ]);
        tx.rollback().expect("ROLLBACK");
        assert_eq!(run.code, 1, "round {round}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!("pid {pid}"))
                && run.stderr.contains("sandbox_test_blocker"),
            "round {round}: the refusal through the pooler does not name the blocker:\n{}",
            run.stderr
        );
    }
    drop(blocker);
    assert_eq!(
        count(&mut direct, "SELECT count(*) FROM workflows"),
        141,
        "the refused push wrote"
    );

    let pushed = sandbox(
        &bouncer,
        &[
            "push",
            "--database-url",
            &pooled,
            "--snapshot",
            snap,
            "--confirm",
        ],
    );
    assert!(pushed.stdout.contains("Applied diff"), "{}", pushed.stdout);
    for (sql, want) in [
        ("SELECT count(*) FROM strategic_priorities", 7),
        ("SELECT count(*) FROM tools", 150),
        ("SELECT count(*) FROM workflows", 368),
        ("SELECT count(*) FROM tasks", 343),
        ("SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL", 105),
        ("SELECT count(*) FROM sandbox.receipts WHERE status = 'applied'", 1),
        (
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'jtbd_library_set_updated_at' AND tgenabled = 'O'",
            1,
        ),
    ] {
        assert_eq!(count(&mut direct, sql), want, "{sql}");
    }
    let again = sandbox(
        &bouncer,
        &[
            "push",
            "--database-url",
            &pooled,
            "--snapshot",
            snap,
            "--confirm",
        ],
    );
    assert!(again.stdout.contains("Already applied"), "{}", again.stdout);

    let receipt = text_rows(&mut direct, "SELECT id::text FROM sandbox.receipts")[0][0].clone();
    sandbox(
        &bouncer,
        &[
            "rollback",
            "--database-url",
            &pooled,
            "--receipt",
            &receipt,
            "--confirm",
        ],
    );
    assert_eq!(
        text_rows(&mut direct, "SELECT status FROM sandbox.receipts"),
        vec![vec!["rolled_back".to_string()]]
    );
    let after = public_state(&mut direct);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (t, rows) in &before {
        assert!(
            rows == &after[t],
            "{t} differs after the rollback through the pooler"
        );
    }

    // The connections really went through PgBouncer.
    let log = bouncer.log_text();
    assert!(
        log.contains(&format!("db={}", db.name)),
        "pgbouncer saw no client:\n{log}"
    );
}
