//! Through a transaction-mode pooler (Supabase's port 6543 behaves like
//! this): a real PgBouncer in front of the test server, `pool_mode =
//! transaction`, no prepared-statement support. Pull, push and rollback go
//! through it; the results are read back from Postgres directly.
//!
//! Needs the `pgbouncer` binary: the harness installs it when missing
//! (`.ci/install-deps`), and the test fails, never skips, when it cannot.

mod common;

use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    admin_url, count, free_port, replace_db, require_tool, text_rows, whole_database_state, Run,
    TestDb,
};

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
        PgBouncer::start_with_pool(4)
    }

    /// A pooler with `pool_size` server connections per database: with 1,
    /// every client's transactions run on the same server connection.
    fn start_with_pool(pool_size: usize) -> PgBouncer {
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
             default_pool_size = {pool_size}\n\
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

/// Runs the binary and requires exit 0, showing PgBouncer's complaints if not.
fn sandbox(bouncer: &PgBouncer, args: &[&str]) -> Run {
    let run = common::sandbox(args);
    assert_eq!(
        run.code,
        0,
        "{}\n--- pgbouncer log (errors)\n{}",
        run.show(),
        bouncer
            .log_text()
            .lines()
            .filter(|l| !l.contains(" LOG "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    run
}

/// `push --confirm` through the pooler (it must apply, or say already
/// applied): its run.
fn push_confirmed(bouncer: &PgBouncer, pooled: &str, snap: &str) -> Run {
    sandbox(
        bouncer,
        &[
            "push",
            "--database-url",
            pooled,
            "--snapshot",
            snap,
            "--confirm",
        ],
    )
}

/// `rollback --confirm` of `receipt` through the pooler; it must succeed.
fn rolled_back(bouncer: &PgBouncer, pooled: &str, receipt: &str) {
    sandbox(
        bouncer,
        &[
            "rollback",
            "--database-url",
            pooled,
            "--receipt",
            receipt,
            "--confirm",
        ],
    );
}

/// Pulls into `snap` and rehearses it through the pooler (each must
/// succeed): the pull's run.
fn pulled_and_rehearsed(bouncer: &PgBouncer, pooled: &str, snap: &str) -> Run {
    let pulled = sandbox(bouncer, &["pull", "--database-url", pooled, "--out", snap]);
    sandbox(bouncer, &["rehearse", "--snapshot", snap]);
    pulled
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

#[test]
fn pull_push_and_rollback_through_a_transaction_pooler() {
    let bouncer = PgBouncer::start();
    let db = TestDb::create("pgbouncer");
    // Loading the fixtures is set-up, not under test: straight to Postgres.
    common::sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let pooled = bouncer.url(&db.name);
    let mut direct = db.client();
    let before = whole_database_state(&db.url);

    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snapshot.sqlite");
    let snap = snap.to_str().expect("utf-8 path");
    let pulled = pulled_and_rehearsed(&bouncer, &pooled, snap);
    assert!(
        pulled.stdout.contains(&format!(":{}/", bouncer.port)),
        "pulled from {}",
        pulled.stdout
    );
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
        let run = common::sandbox(&[
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

    let pushed = push_confirmed(&bouncer, &pooled, snap);
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
    let again = push_confirmed(&bouncer, &pooled, snap);
    assert!(again.stdout.contains("Already applied"), "{}", again.stdout);

    let receipt = text_rows(&mut direct, "SELECT id::text FROM sandbox.receipts")[0][0].clone();
    rolled_back(&bouncer, &pooled, &receipt);
    assert_eq!(
        text_rows(&mut direct, "SELECT status FROM sandbox.receipts"),
        vec![vec!["rolled_back".to_string()]]
    );
    // Everything as before the push, but for the receipt (now rolled back).
    before.assert_same(
        &whole_database_state(&db.url).without_schema("sandbox"),
        "after the rollback through the pooler",
    );

    // The connections really went through PgBouncer.
    let log = bouncer.log_text();
    assert!(
        log.contains(&format!("db={}", db.name)),
        "pgbouncer saw no client:\n{log}"
    );
}

/// An app writing through the pooler (one autocommit INSERT every 20 ms)
/// until dropped.
struct AppWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<i64>>,
}

impl AppWriter {
    fn start(url: &str) -> AppWriter {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let mut client =
            postgres_sync::Client::connect(url, postgres_sync::NoTls).expect("app connects");
        let thread = std::thread::spawn(move || {
            let mut written = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                client
                    .batch_execute("INSERT INTO app_side.app_log(msg) VALUES ('user clicked')")
                    .expect("the app's INSERT through the pooler");
                written += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            written
        });
        AppWriter {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the app; how many rows it wrote.
    fn stop(mut self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("app thread"))
            .unwrap_or(0)
    }
}

impl Drop for AppWriter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Postgres shows a backend's counters of its last, committed transactions
/// (still pending, not yet flushed) inside the next transaction on that
/// backend. Through a transaction pooler with one server connection, the
/// push's and the rollback's transactions follow the app's INSERTs on the
/// same backend: those rows are the app's, not the push's side effects.
/// A trigger's write during the push is still refused, counted exactly.
#[test]
fn app_writes_on_the_pooled_connection_are_not_counted_as_the_push_own() {
    let bouncer = PgBouncer::start_with_pool(1);
    let db = TestDb::create("pgbouncer_acct");
    common::sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let mut direct = db.client();
    direct
        .batch_execute(
            "CREATE SCHEMA app_side; \
             CREATE TABLE app_side.app_log(id serial PRIMARY KEY, msg text)",
        )
        .expect("app table");
    let pooled = bouncer.url(&db.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snapshot.sqlite");
    let snap = snap.to_str().expect("utf-8 path");
    pulled_and_rehearsed(&bouncer, &pooled, snap);
    let before = whole_database_state(&db.url)
        .without_schema("app_side")
        .without_schema("sandbox");

    let app = AppWriter::start(&pooled);
    let pushed = push_confirmed(&bouncer, &pooled, snap);
    let receipt = pushed.receipt();
    rolled_back(&bouncer, &pooled, &receipt);
    let written = app.stop();
    assert!(written > 0, "the app wrote nothing");
    assert_eq!(
        count(&mut direct, "SELECT count(*) FROM app_side.app_log"),
        written,
        "the app's rows"
    );
    before.assert_same(
        &whole_database_state(&db.url)
            .without_schema("app_side")
            .without_schema("sandbox"),
        "after push and rollback through the pooler while the app wrote",
    );

    // A real side effect: a trigger writing a table outside the plan.
    direct
        .batch_execute(
            "CREATE TABLE app_side.audit(id serial PRIMARY KEY, wf text); \
             CREATE FUNCTION app_side.audit_wf() RETURNS trigger LANGUAGE plpgsql AS $$ \
               BEGIN INSERT INTO app_side.audit(wf) VALUES (NEW.id::text); RETURN NULL; END $$; \
             CREATE TRIGGER wf_audit AFTER INSERT ON public.workflows \
               FOR EACH ROW EXECUTE FUNCTION app_side.audit_wf()",
        )
        .expect("audit trigger");
    let before = whole_database_state(&db.url).without_schema("app_side");
    let app = AppWriter::start(&pooled);
    let refused = common::sandbox(&[
        "push",
        "--database-url",
        &pooled,
        "--snapshot",
        snap,
        "--confirm",
    ]);
    app.stop();
    refused.refused(&["app_side.audit: 227 rows (227 inserted, 0 updated, 0 deleted)"]);
    // The write accounting never counts the app's rows as the push's (a
    // sequence the app drew from meanwhile may be named, as moved while the
    // push ran — sequences are not transactional — never as the push's).
    assert!(
        !refused.all().contains("app_side.app_log:")
            && !refused.all().contains("this run advanced"),
        "the app's own rows named as the push's:\n{}",
        refused.show()
    );
    assert_eq!(count(&mut direct, "SELECT count(*) FROM app_side.audit"), 0);
    before.assert_same(
        &whole_database_state(&db.url).without_schema("app_side"),
        "after the refused push",
    );
}

/// h12 F1: through a transaction pooler with one server connection, an
/// app's `ALTER ROLE` just before the push leaves its unflushed pg_authid
/// count on the backend the push then gets. Before, the push was refused
/// for about a second after it: "roles created, changed or dropped … by a
/// trigger … in this transaction". Only this transaction's role changes
/// count, from the start like every other counted catalog.
#[test]
fn an_app_role_change_on_the_pooled_connection_is_not_the_push_own() {
    let bouncer = PgBouncer::start_with_pool(1);
    let db = TestDb::create("pgbouncer_role");
    common::sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let role = format!("{}_app", db.name);
    let mut direct = db.client();
    direct
        .batch_execute(&format!("CREATE ROLE \"{role}\" NOLOGIN"))
        .expect("app role");
    let pooled = bouncer.url(&db.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snapshot.sqlite");
    let snap = snap.to_str().expect("utf-8 path");
    pulled_and_rehearsed(&bouncer, &pooled, snap);
    let mut app =
        postgres_sync::Client::connect(&pooled, postgres_sync::NoTls).expect("app connects");
    for limit in 5..8 {
        app.batch_execute(&format!("ALTER ROLE \"{role}\" CONNECTION LIMIT {limit}"))
            .expect("the app alters its role");
        let run = sandbox(
            &bouncer,
            &["push", "--database-url", &pooled, "--snapshot", snap],
        );
        assert!(
            !run.all().contains("rows of pg_authid"),
            "the app's role change named as the push's:\n{}",
            run.show()
        );
        run.ok();
    }
    drop(app);
    direct
        .batch_execute(&format!("DROP ROLE \"{role}\""))
        .expect("drop the app role");
}

/// U18: through a transaction pooler, a temporary table an app session
/// created stays on the server connection, and Postgres searches a
/// session's temporary schema first unless the path names it. With one
/// server connection, the push's transaction runs where the app left a
/// `TEMP workflows` holding one row: its expectations, verification
/// queries and guards must still read `public.workflows`.
#[test]
fn an_app_temp_table_left_on_the_pooled_connection_does_not_stand_in_for_ours() {
    let bouncer = PgBouncer::start_with_pool(1);
    let db = TestDb::create("pgbouncer_temp");
    common::sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let pooled = bouncer.url(&db.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snapshot.sqlite");
    let snap = snap.to_str().expect("utf-8 path");
    pulled_and_rehearsed(&bouncer, &pooled, snap);
    let mut app = postgres_sync::Client::connect(&pooled, postgres_sync::NoTls)
        .expect("app through pgbouncer");
    app.batch_execute("CREATE TEMP TABLE workflows AS SELECT * FROM public.workflows LIMIT 1")
        .expect("the app's temp table");
    drop(app);
    let before = whole_database_state(&db.url).without_schema("sandbox");
    let pushed = push_confirmed(&bouncer, &pooled, snap);
    let receipt = pushed.receipt();
    let mut direct = db.client();
    assert_eq!(
        count(
            &mut direct,
            "SELECT count(*) FROM public.workflows WHERE definition->>'source' = 'dh_workflow'"
        ),
        116,
        "the pushed workflows"
    );
    rolled_back(&bouncer, &pooled, &receipt);
    before.assert_same(
        &whole_database_state(&db.url).without_schema("sandbox"),
        "push and rollback on a pooled connection holding the app's temp table",
    );
}
