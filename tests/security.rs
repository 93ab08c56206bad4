//! Secrets and identifiers.
//!
//! A role with a sentinel password runs the whole loop (fixtures load, pull,
//! status, rehearse, diff --sql, push dry run, push, push again, rollback dry
//! run, rollback) with the password in the URL, as a URL and as libpq
//! key=value pairs, from the flag and from the environment, human and JSON,
//! plus the ways a connection fails. The password must appear nowhere: not in
//! any output, not in the snapshot file or its journal, not in the SQL
//! script, not in `sandbox.receipts`, not in any table — also not
//! percent-encoded. (The local server trusts 127.0.0.1, so the password is
//! never checked; what matters is that it travels in the URL.)
//!
//! Identifiers: columns named with quotes, spaces, upper case and SQL
//! keywords on the tables the plan reads and updates survive pull, rehearse,
//! push and rollback byte for byte.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    admin_url, postgres_admin, run_sandbox, text_rows, whole_database_state, Run, TestDb, TestRole,
};
use postgres_sync::Client;
use serde_json::Value;

// ---------------------------------------------------------------------------
// The sentinel and where to look for it

/// Distinctive, and with characters that must be percent-encoded in a URL
/// (`:`, `@`, `/`, `+`, space, non-ASCII).
const SENTINEL: &str = "S3ntinel-Pw-91x:@/+ ü";

fn percent_encode(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Every form the password could leak in. The alphanumeric core survives
/// any encoding, so it is looked for too (case-insensitively).
fn sentinel_forms() -> Vec<String> {
    let mut forms = vec![
        SENTINEL.to_string(),
        percent_encode(SENTINEL, true),
        percent_encode(SENTINEL, false),
        percent_encode(SENTINEL, true).replace("%20", "+"),
        "Pw-91x".to_string(),
    ];
    forms.dedup();
    forms
}

/// Fails naming `place` if any form of the password occurs in `bytes`.
fn assert_no_sentinel(place: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("s3ntinel"),
        "the password appears in {place}: …{}…",
        around(&text, lower.find("s3ntinel").unwrap())
    );
    for form in sentinel_forms() {
        if let Some(at) = text.find(&form) {
            panic!(
                "the password (as {form:?}) appears in {place}: …{}…",
                around(&text, at)
            );
        }
    }
}

fn around(text: &str, at: usize) -> String {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(60)
        .map(|(i, _)| i)
        .unwrap_or(0);
    text[start..].chars().take(140).collect()
}

/// Every file in `dir` (snapshots, journals, scripts, temporary files).
fn assert_no_sentinel_in_files(dir: &Path, step: &str) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert_no_sentinel(&format!("{} after {step}", path.display()), &bytes);
        }
    }
}

/// The checker itself: each form of the password is caught.
#[test]
fn the_sentinel_check_sees_every_form() {
    let mut forms = sentinel_forms();
    forms.push("…S3NTINEL…".to_string());
    forms.push(format!("user:{}@host", percent_encode(SENTINEL, false)));
    for form in forms {
        let caught = std::panic::catch_unwind(|| assert_no_sentinel("test", form.as_bytes()));
        assert!(caught.is_err(), "{form:?} not caught");
    }
    assert_no_sentinel("test", b"postgres://role:***@127.0.0.1:5432/db");
}

// ---------------------------------------------------------------------------
// Running the binary

/// Runs the binary; `env` adds variables (the URL may come from there).
fn sandbox_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_sandbox(args, env)
}

/// Every output of every run, checked as it comes.
#[derive(Default)]
struct Transcript {
    runs: Vec<Run>,
}

impl Transcript {
    fn run(&mut self, args: &[&str], env: &[(&str, &str)]) -> &Run {
        let r = sandbox_env(args, env);
        assert_no_sentinel(&format!("stdout of {}", r.what), r.stdout.as_bytes());
        assert_no_sentinel(&format!("stderr of {}", r.what), r.stderr.as_bytes());
        self.runs.push(r);
        self.runs.last().unwrap()
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------
// A role with the sentinel password, owning its own database

/// A login role that owns a fresh database (so it creates the fixture
/// tables, and a push as that role may hold off their triggers, as on
/// Supabase where `postgres` owns the tables but is not a superuser).
struct SecretWorld {
    // Dropped in this order: the database (with everything the role owns in
    // it), then the role.
    db: TestDb,
    role: TestRole,
    host: String,
    port: u16,
    dir: tempfile::TempDir,
}

impl SecretWorld {
    fn create(tag: &str) -> SecretWorld {
        let role = TestRole::create(
            &format!("sec_{tag}"),
            &format!(
                "LOGIN NOSUPERUSER PASSWORD '{}'",
                SENTINEL.replace('\'', "''")
            ),
        );
        let db = TestDb::create(&format!("sec_{tag}"));
        postgres_admin(&admin_url())
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" OWNER TO \"{}\"",
                db.name, role.name
            ))
            .unwrap();
        let config: postgres_sync::Config = admin_url().parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(postgres_sync::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        SecretWorld {
            db,
            role,
            host,
            port,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> &TestDb {
        &self.db
    }

    /// `postgres://ROLE:PASSWORD@HOST:PORT/DB`, the password percent-encoded.
    fn url_to(&self, host: &str, port: u16, db: &str, query: &str) -> String {
        format!(
            "postgres://{}:{}@{host}:{port}/{db}{query}",
            self.role.name,
            percent_encode(SENTINEL, true)
        )
    }

    fn url(&self) -> String {
        self.url_to(&self.host, self.port, &self.db().name, "")
    }

    /// The same connection as libpq key=value pairs, password quoted.
    fn keyvalue(&self) -> String {
        format!(
            "host={} port={} user={} password='{}' dbname={}",
            self.host,
            self.port,
            self.role.name,
            SENTINEL.replace('\\', "\\\\").replace('\'', "\\'"),
            self.db().name
        )
    }

    fn client(&self) -> Client {
        self.db().client()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The receipts as text, and every row of every user table that mentions
/// the sentinel's core.
fn assert_no_sentinel_in_database(c: &mut Client, step: &str) {
    let has_receipts = text_rows(c, "SELECT to_regclass('sandbox.receipts') IS NOT NULL");
    if has_receipts[0][0] == "t" {
        for r in text_rows(c, "SELECT r::text FROM sandbox.receipts r") {
            assert_no_sentinel(&format!("sandbox.receipts after {step}"), r[0].as_bytes());
        }
    }
    let tables = text_rows(
        c,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
    );
    for t in tables {
        let hits = text_rows(
            c,
            &format!(
                "SELECT count(*) FROM {} x WHERE x::text ILIKE '%s3ntinel%' OR x::text LIKE '%Pw-91x%'",
                t[0]
            ),
        );
        assert_eq!(hits[0][0], "0", "{} holds the password after {step}", t[0]);
    }
}

fn prefixed<'a>(flags: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    flags.iter().chain(args.iter()).copied().collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------
// The whole loop

/// How the URL reaches the binary.
enum Via {
    /// `--database-url URL`.
    Flag(String),
    /// An environment variable.
    Env(&'static str, String),
}

impl Via {
    fn args<'a>(&'a self, args: &[&'a str]) -> (Vec<&'a str>, Vec<(&'static str, &'a str)>) {
        let mut a = args.to_vec();
        match self {
            Via::Flag(url) => {
                a.push("--database-url");
                a.push(url);
                (a, vec![])
            }
            Via::Env(name, url) => (a, vec![(*name, url.as_str())]),
        }
    }
}

fn whole_loop(w: &SecretWorld, via: &Via, json: bool) {
    let mut t = Transcript::default();
    let mut c = w.client();
    let snap = w.path("sandbox.sqlite");
    let sql = w.path("migration.sql");
    let flags: Vec<&str> = if json { vec!["--json"] } else { vec![] };
    let with = |base: &[&str]| -> Vec<String> {
        flags
            .iter()
            .chain(base.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let mut step = |t: &mut Transcript, base: &[&str], db: bool, code: i32| -> Run {
        let base = with(base);
        let base: Vec<&str> = base.iter().map(String::as_str).collect();
        let r = if db {
            let (args, env) = via.args(&base);
            t.run(&args, &env)
        } else {
            t.run(&base, &[])
        };
        r.code(code);
        let r = r.clone();
        assert_no_sentinel_in_files(w.dir.path(), &r.what);
        assert_no_sentinel_in_database(&mut c, &r.what);
        r
    };

    step(&mut t, &["fixtures", "load"], true, 0);
    let r = step(&mut t, &["pull", "--out", p(&snap)], true, 0);
    assert_eq!(mode(&snap), 0o600, "the snapshot is readable by others");
    if json {
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert!(
            v["info"]["source_url"].as_str().unwrap().contains("***"),
            "{v}"
        );
    } else {
        assert!(r.stdout.contains(":***@"), "{}", r.show());
    }
    step(&mut t, &["status", "--snapshot", p(&snap)], false, 0);
    step(&mut t, &["rehearse", "--snapshot", p(&snap)], false, 0);
    assert_eq!(mode(&snap), 0o600, "rehearse changed the snapshot's mode");
    step(
        &mut t,
        &["diff", "--snapshot", p(&snap), "--sql", p(&sql)],
        false,
        0,
    );
    assert!(sql.exists());
    step(&mut t, &["push", "--snapshot", p(&snap)], true, 0);
    let r = step(
        &mut t,
        &["push", "--snapshot", p(&snap), "--confirm"],
        true,
        0,
    );
    let receipt = if json {
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert!(v["database"].as_str().unwrap().contains("***"), "{v}");
        v["receipt_id"].as_str().unwrap().to_string()
    } else {
        r.stdout
            .split_whitespace()
            .skip_while(|w| *w != "Receipt")
            .nth(1)
            .unwrap_or_else(|| panic!("no receipt: {}", r.show()))
            .to_string()
    };
    step(
        &mut t,
        &["push", "--snapshot", p(&snap), "--confirm"],
        true,
        0,
    );
    step(&mut t, &["rollback", "--receipt", &receipt], true, 0);
    step(
        &mut t,
        &["rollback", "--receipt", &receipt, "--confirm"],
        true,
        0,
    );
    // status reads the file that now also records the receipt.
    step(&mut t, &["status", "--snapshot", p(&snap)], false, 0);
    let recorded: Vec<String> = {
        let conn = rusqlite::Connection::open(&snap).unwrap();
        let mut stmt = conn
            .prepare("SELECT database FROM _sandbox_receipts")
            .unwrap();
        let v = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap();
        v
    };
    assert!(
        !recorded.is_empty(),
        "the push recorded no receipt in the file"
    );
    assert_eq!(t.runs.len(), 11);
    assert_eq!(mode(&snap), 0o600);
}

#[test]
fn whole_loop_with_the_password_in_a_url_flag_never_shows_it() {
    let w = SecretWorld::create("url");
    whole_loop(&w, &Via::Flag(w.url()), false);
}

#[test]
fn whole_loop_as_json_with_keyvalue_pairs_from_the_environment_never_shows_it() {
    let w = SecretWorld::create("kv");
    let via = Via::Env("SANDBOX_DATABASE_URL", w.keyvalue());
    whole_loop(&w, &via, true);
    // --help with the variable set does not print its value.
    let r = sandbox_env(
        &["push", "--help"],
        &[("SANDBOX_DATABASE_URL", &w.keyvalue())],
    );
    r.code(0);
    assert_no_sentinel("push --help", r.stdout.as_bytes());
}

// ---------------------------------------------------------------------------
// Failing connections and refusals

#[test]
fn failures_never_show_the_password() {
    let w = SecretWorld::create("fail");
    let mut t = Transcript::default();
    // A loaded, pulled and rehearsed world to fail against.
    let snap = w.path("sandbox.sqlite");
    let url = w.url();
    t.run(&["fixtures", "load", "--database-url", &url], &[])
        .code(0);
    t.run(&["pull", "--database-url", &url, "--out", p(&snap)], &[])
        .code(0);
    t.run(&["rehearse", "--snapshot", p(&snap)], &[]).code(0);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = w.db().name.clone();
    let cases: Vec<(&str, String)> = vec![
        ("wrong port", w.url_to(&w.host, closed, &db, "")),
        (
            "unknown database",
            w.url_to(&w.host, w.port, "sbx_no_such_db", ""),
        ),
        (
            "bad sslmode",
            w.url_to(&w.host, w.port, &db, "?sslmode=sometimes"),
        ),
        (
            "unknown host",
            w.url_to("no-such-host.invalid", w.port, &db, ""),
        ),
        ("port not a number", {
            let u = w.url_to(&w.host, w.port, &db, "");
            u.replace(&format!(":{}/", w.port), ":54x2/")
        }),
        (
            "unknown parameter",
            w.url_to(&w.host, w.port, &db, "?sslmod=require"),
        ),
        (
            "server certificate not trusted",
            w.url_to(&w.host, w.port, &db, "?sslmode=verify-full"),
        ),
        (
            "CA file missing",
            w.url_to(
                &w.host,
                w.port,
                &db,
                "?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
            ),
        ),
        (
            "database without the plan's tables",
            w.url_to(&w.host, w.port, "postgres", ""),
        ),
        (
            "key=value, wrong port",
            w.keyvalue()
                .replace(&format!("port={}", w.port), &format!("port={closed}")),
        ),
    ];
    let fresh = w.path("fresh.sqlite");
    for (case, url) in &cases {
        for json in [false, true] {
            let j: &[&str] = if json { &["--json"] } else { &[] };
            let mut runs: Vec<Vec<&str>> = vec![
                vec!["pull", "--database-url", url, "--out", p(&fresh)],
                vec![
                    "rollback",
                    "--database-url",
                    url,
                    "--receipt",
                    "00000000-0000-0000-0000-000000000001",
                    "--confirm",
                ],
            ];
            // A push reads and diffs the whole snapshot before it connects:
            // once per URL is enough (errors print the same with --json).
            if !json {
                runs.push(vec![
                    "push",
                    "--database-url",
                    url,
                    "--snapshot",
                    p(&snap),
                    "--confirm",
                ]);
            }
            for r in &mut runs {
                r.splice(0..0, j.iter().copied());
            }
            for args in runs {
                let r = t.run(&args, &[]);
                assert!(
                    r.code == 1 || r.code == 2,
                    "{case}: expected a failure: {}",
                    r.show()
                );
                assert!(!r.stderr.contains("panicked"), "{}", r.show());
            }
            // The same URL from DATABASE_URL (the last fallback).
            let r = t.run(&["pull", "--out", p(&fresh)], &[("DATABASE_URL", url)]);
            assert_eq!(r.code, 2, "{case}: {}", r.show());
            assert!(!fresh.exists(), "{case}: a failed pull left a snapshot");
        }
    }
    // Refusals that name the database: no receipts there yet; pulling over
    // a rehearsed snapshot; loading fixtures twice; pushing twice is fine.
    for json in [false, true] {
        let j: Vec<&str> = if json { vec!["--json"] } else { vec![] };
        let r = t.run(
            &prefixed(
                &j,
                &[
                    "rollback",
                    "--database-url",
                    &url,
                    "--receipt",
                    "00000000-0000-0000-0000-000000000001",
                ],
            ),
            &[],
        );
        assert_eq!(r.code, 2, "{}", r.show());
        // With --json the error is data on stdout.
        let shown = if json { &r.stdout } else { &r.stderr };
        assert!(
            shown.contains("no sandbox.receipts table") && shown.contains(":***@"),
            "{}",
            r.show()
        );
        let r = t.run(
            &prefixed(&j, &["pull", "--database-url", &url, "--out", p(&snap)]),
            &[],
        );
        assert_eq!(r.code, 2, "{}", r.show());
        let r = t.run(
            &prefixed(&j, &["fixtures", "load", "--database-url", &url]),
            &[],
        );
        assert_ne!(r.code, 0, "{}", r.show());
    }
    assert_no_sentinel_in_files(w.dir.path(), "the failures");
    assert_no_sentinel_in_database(&mut w.client(), "the failures");
    assert!(t.runs.len() > 60, "{} runs", t.runs.len());
}

// ---------------------------------------------------------------------------
// Known leaks (reported; enable when src/db/postgres.rs is fixed)

/// Regression: `split_url` once redacted what the `url` crate parsed, while
/// the driver parses the same text differently: an unencoded `#`, `/` or `?` in the password,
/// after nothing or after digits only, makes `url` see host:port and no
/// password, while tokio-postgres connects with the whole password. The
/// redacted text is then the raw URL: `sandbox pull` prints it and stores it
/// in `_sandbox_snapshot.source_url`.
#[test]
fn regression_unencoded_hash_or_slash_in_the_password_is_masked() {
    for raw in [
        "postgres://u:123#S3ntinel@h:5432/db",
        "postgres://u:#S3ntinel@h:5432/db",
        "postgres://u:/S3ntinel@h:5432/db",
        "postgres://u:12?S3ntinel@h:5432/db",
    ] {
        let shown = match sandbox::db::postgres::parse_target(raw) {
            Ok(t) => t.redacted().to_string(),
            Err(e) => format!("{e:#}"),
        };
        assert!(!shown.contains("S3ntinel"), "{raw} -> {shown}");
    }
}

/// Regression: a password with an unencoded '@' (generated passwords often
/// have one) ends, for the driver, at its first '@': the rest was printed
/// as part of the host (`postgres://u:***@ss@w0rd@host/db`: "cannot resolve
/// the host", wrong advice). Every command that takes a URL refuses it
/// (exit 2, human and --json, flag and environment) with the %40 advice and
/// no piece of the password; nothing is written, no snapshot is made. The
/// same password percent-encoded pulls, and neither the output nor the
/// snapshot holds a piece of it.
#[test]
fn regression_a_password_with_an_unencoded_at_is_refused_and_never_shown() {
    let w = SecretWorld::create("at");
    let pieces = ["Xq7", "Zk9", "Wv3", "Jm5"];
    let password = "Xq7@Zk9:Wv3/Jm5";
    let url_with = |pw: &str| {
        format!(
            "postgres://{}:{pw}@{}:{}/{}",
            w.role.name,
            w.host,
            w.port,
            w.db().name
        )
    };
    let raw = url_with(password);
    let shown_nowhere = |what: &str, text: &str| {
        for piece in pieces {
            assert!(
                !text.contains(piece),
                "{what} shows {piece:?} of the password:\n{text}"
            );
        }
    };
    let before = whole_database_state(&w.db().url);
    let snap = w.path("refused.sqlite");
    let receipt = "00000000-0000-4000-8000-000000000000";
    let commands: [&[&str]; 4] = [
        &["pull", "--out", p(&snap)],
        &["push", "--snapshot", p(&snap), "--confirm"],
        &["rollback", "--receipt", receipt, "--confirm"],
        &["fixtures", "load"],
    ];
    for json in [false, true] {
        for command in commands {
            let mut args: Vec<&str> = if json { vec!["--json"] } else { vec![] };
            args.extend_from_slice(command);
            for from_env in [false, true] {
                let run = if from_env {
                    sandbox_env(&args, &[("SANDBOX_DATABASE_URL", &raw)])
                } else {
                    let mut with_flag = args.clone();
                    with_flag.extend(["--database-url", &raw]);
                    sandbox_env(&with_flag, &[])
                };
                run.code(2);
                assert!(
                    run.all().contains("more than one '@'") && run.all().contains("%40"),
                    "no advice to write '@' as %40: {}",
                    run.show()
                );
                shown_nowhere(&run.what, &run.all());
            }
        }
    }
    assert!(!snap.exists(), "a refused pull wrote a snapshot");
    before.assert_same(
        &whole_database_state(&w.db().url),
        "after the refused commands",
    );

    // Pasted where the URL goes, the password is not echoed either.
    let pasted = sandbox_env(&["pull", "--database-url", "Xq7!Zk9Wv3"], &[]);
    pasted.code(2);
    shown_nowhere("a pasted password", &pasted.all());

    // Percent-encoded, the same password works and stays hidden.
    let encoded = url_with(
        &password
            .replace('@', "%40")
            .replace(':', "%3A")
            .replace('/', "%2F"),
    );
    let ok_snap = w.path("ok.sqlite");
    let loaded = sandbox_env(&["fixtures", "load", "--database-url", &encoded], &[]);
    loaded.code(0);
    shown_nowhere(&loaded.what, &loaded.all());
    for json in [false, true] {
        let mut args: Vec<&str> = if json { vec!["--json"] } else { vec![] };
        args.extend([
            "pull",
            "--force",
            "--out",
            p(&ok_snap),
            "--database-url",
            &encoded,
        ]);
        let run = sandbox_env(&args, &[]);
        run.code(0);
        shown_nowhere(&run.what, &run.all());
        assert!(run.stdout.contains("***"), "{}", run.show());
    }
    let bytes = std::fs::read(&ok_snap).expect("the snapshot");
    shown_nowhere("the snapshot", &String::from_utf8_lossy(&bytes));
}

/// Regression: text not recognised as a postgres:// URL went to the
/// key=value splitter, whose error quoted the offending word, i.e. the whole URL with
/// its password; text that splits into key=value pairs but that the driver
/// rejects is quoted whole as the "redacted" URL.
#[test]
fn regression_mistyped_urls_are_not_echoed() {
    for raw in [
        "postgress://u:S3ntinel@h/db",
        "postgres:/u:S3ntinel@h/db",
        "POSTGRES://u:S3ntinel@h/db",
        "postgresql+asyncpg://u:S3ntinel@h/db",
        "'postgres://u:S3ntinel@h/db'",
        "\"postgres://u:S3ntinel@h/db\"",
        "DATABASE_URL=postgres://u:S3ntinel@h/db",
        "jdbc:postgresql://h/db?user=u&password=S3ntinel",
    ] {
        let shown = match sandbox::db::postgres::parse_target(raw) {
            Ok(t) => t.redacted().to_string(),
            Err(e) => format!("{e:#}"),
        };
        assert!(!shown.contains("S3ntinel"), "{raw} -> {shown}");
    }
}

/// Regression: the SQL script holds the rows a push inserts (production
/// data, like the snapshot), but was written with the default mode (0644 under umask 022),
/// where the snapshot is 0600.
#[test]
fn regression_diff_sql_script_is_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("demo.sqlite");
    let sql = dir.path().join("migration.sql");
    sandbox_env(&["demo", "--out", p(&snap)], &[]).code(0);
    sandbox_env(&["diff", "--snapshot", p(&snap), "--sql", p(&sql)], &[]).code(0);
    assert_eq!(mode(&snap), 0o600);
    assert_eq!(mode(&sql), 0o600, "the SQL script is readable by others");
}

// ---------------------------------------------------------------------------
// Identifiers

const WEIRD_JTBD: &str = "Select \"Weird\" Col";
const ORDER: &str = "order";
const MIXED: &str = "Mixed Case\"Quote";
const ODD_TABLE: &str = "dh_Odd \"Table\"";

fn qi(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// id → md5 of the row's original columns (the plan adds one).
fn jtbd_rows(c: &mut Client, columns: &[String]) -> BTreeMap<String, String> {
    let list = columns
        .iter()
        .map(|c| format!("t.{}", qi(c)))
        .collect::<Vec<_>>()
        .join(", ");
    text_rows(
        c,
        &format!("SELECT t.id::text, md5(ROW({list})::text) FROM public.jtbd_library t"),
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

#[test]
fn awkward_identifiers_survive_the_whole_loop() {
    let db = TestDb::create("sec_idents");
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.sqlite");
    sandbox_env(&["fixtures", "load", "--database-url", &url], &[]).code(0);
    let mut c = db.client();
    // Values with everything COPY and SQL quoting must carry: tabs,
    // newlines, backslashes, quotes, `\N`, non-ASCII; and NULLs.
    c.batch_execute(&format!(
        "ALTER TABLE jtbd_library ADD COLUMN {w} text;
         UPDATE jtbd_library SET {w} = CASE WHEN id LIKE '%7' THEN NULL
           ELSE E'v\\t\"q\" \\\\N back\\\\slash ''s ü🙂\\nline\\r ' || id END;
         ALTER TABLE dh_tool ADD COLUMN {o} integer, ADD COLUMN {m} text;
         UPDATE dh_tool SET {o} = length(code), {m} = E'mc\\t\\\\ \"x\" ' || code;
         UPDATE dh_tool SET {m} = NULL WHERE code LIKE '%A%';
         CREATE TABLE public.{t} (id integer PRIMARY KEY, {sel} text, {o} numeric(6,2));
         INSERT INTO public.{t} VALUES (1, E'a\\tb', 1.50), (2, NULL, NULL);",
        w = qi(WEIRD_JTBD),
        o = qi(ORDER),
        m = qi(MIXED),
        t = qi(ODD_TABLE),
        sel = qi("select"),
    ))
    .unwrap();
    let jtbd_columns: Vec<String> = text_rows(
        &mut c,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name = 'jtbd_library' ORDER BY ordinal_position",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(jtbd_columns.iter().any(|c| c == WEIRD_JTBD));
    let before_rows = jtbd_rows(&mut c, &jtbd_columns);
    let before_state = whole_database_state(&db.url);
    let weird_values = |c: &mut Client| {
        text_rows(
            c,
            &format!(
                "SELECT id, coalesce({}, '<null>') FROM jtbd_library ORDER BY id",
                qi(WEIRD_JTBD)
            ),
        )
    };
    let before_weird = weird_values(&mut c);

    sandbox_env(&["pull", "--database-url", &url, "--out", p(&snap)], &[]).code(0);
    {
        let s = sandbox::db::sqlite::Snapshot::open(&snap).unwrap();
        assert!(
            s.table(ODD_TABLE).is_some(),
            "the extra dh_ table was not pulled"
        );
        let jl = s.table("jtbd_library").unwrap();
        assert!(jl.meta.column(WEIRD_JTBD).is_some());
        let tool = s.table("dh_tool").unwrap();
        assert!(tool.meta.column(ORDER).is_some() && tool.meta.column(MIXED).is_some());
    }
    let r = sandbox_env(&["rehearse", "--snapshot", p(&snap)], &[]);
    r.code(0);
    assert!(r.stdout.contains("PASSED"), "{}", r.show());
    sandbox_env(
        &[
            "push",
            "--database-url",
            &url,
            "--snapshot",
            p(&snap),
            "--confirm",
        ],
        &[],
    )
    .code(0);

    // jtbd_library: every original column of every row byte-identical.
    assert_eq!(jtbd_rows(&mut c, &jtbd_columns), before_rows);
    assert_eq!(weird_values(&mut c), before_weird);
    assert_eq!(
        text_rows(
            &mut c,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        )[0][0],
        "105"
    );
    // tools.metadata holds dh_tool's awkward columns as keys, values intact.
    let agree = text_rows(
        &mut c,
        &format!(
            "SELECT count(*) FILTER (WHERE t.metadata ? {ok} AND t.metadata ? {mk}), \
                    count(*) FILTER (WHERE t.metadata -> {ok} = coalesce(to_jsonb(d.{o}), 'null'::jsonb) \
                                       AND t.metadata -> {mk} = coalesce(to_jsonb(d.{m}), 'null'::jsonb)), \
                    count(*) FILTER (WHERE d.{m} IS NULL) \
             FROM dh_tool d JOIN tools t ON t.id = d.id",
            ok = "'order'",
            mk = "'Mixed Case\"Quote'",
            o = qi(ORDER),
            m = qi(MIXED),
        ),
    );
    assert_eq!(agree[0][0], "150", "tools lacking the awkward keys");
    assert_eq!(agree[0][1], "150", "tools whose awkward values differ");
    assert_ne!(agree[0][2], "0", "the NULL case was not exercised");
    // The extra table is untouched.
    let odd = format!("public.{ODD_TABLE}");
    assert!(
        whole_database_state(&db.url).rows[&odd] == before_state.rows[&odd],
        "{ODD_TABLE} changed in the push"
    );

    let receipt = text_rows(&mut c, "SELECT id::text FROM sandbox.receipts")[0][0].clone();
    sandbox_env(
        &[
            "rollback",
            "--database-url",
            &url,
            "--receipt",
            &receipt,
            "--confirm",
        ],
        &[],
    )
    .code(0);
    before_state.assert_same(
        &whole_database_state(&db.url).without_schema("sandbox"),
        "from before the push to after the rollback",
    );
    assert_eq!(weird_values(&mut c), before_weird);
}

/// SQLite names are case-insensitive, Postgres's are not: a `dh_*` table
/// with columns `name` and `Name` (legal in Postgres) cannot be stored.
/// The pull must fail cleanly: exit 2, naming the table and the column and
/// the reason, and leave no file behind.
#[test]
fn names_differing_only_in_case_fail_the_pull_cleanly() {
    let db = TestDb::create("sec_case");
    sandbox_env(&["fixtures", "load", "--database-url", &db.url], &[]).code(0);
    let dir = tempfile::tempdir().unwrap();
    for (ddl, undo, needles) in [
        (
            "ALTER TABLE dh_tool ADD COLUMN \"Name\" text",
            "ALTER TABLE dh_tool DROP COLUMN \"Name\"",
            ["dh_tool", "Name", "differ only in case"],
        ),
        (
            "CREATE TABLE \"dh_TOOL\" (id integer PRIMARY KEY)",
            "DROP TABLE \"dh_TOOL\"",
            ["dh_TOOL", "dh_tool", "differ only in case"],
        ),
    ] {
        db.client().batch_execute(ddl).unwrap();
        let out = dir.path().join("s.sqlite");
        let r = sandbox_env(&["pull", "--database-url", &db.url, "--out", p(&out)], &[]);
        r.code(2);
        for n in needles {
            assert!(r.stderr.contains(n), "{}", r.show());
        }
        assert!(!r.stderr.contains("panicked"), "{}", r.show());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "a failed pull left files"
        );
        db.client().batch_execute(undo).unwrap();
    }
}

/// `latency-proxy --upstream` takes HOST:PORT; a database URL pasted there
/// (the README's latency section invites a Supabase host) is refused
/// without repeating it, so its password reaches no terminal or CI log.
#[test]
fn a_url_given_as_the_latency_proxys_upstream_is_refused_without_its_password() {
    let url = format!(
        "postgres://app:{}@127.0.0.1:5432/db",
        percent_encode(SENTINEL, true)
    );
    let run = run_sandbox(&["latency-proxy", "--upstream", &url], &[]);
    run.code(2).stderr_has("expects HOST:PORT");
    assert_no_sentinel("latency-proxy --upstream URL", run.all().as_bytes());
    let bare = run_sandbox(
        &[
            "latency-proxy",
            "--upstream",
            &format!("app:{SENTINEL}@127.0.0.1:5432"),
        ],
        &[],
    );
    bare.code(2);
    assert_no_sentinel(
        "latency-proxy --upstream user:password@host",
        bare.all().as_bytes(),
    );
}

/// H8 U7: a database URL pasted where it does not go — as an extra
/// argument, or as the value of `--snapshot`, `--plan`, `--receipt` and the
/// other file options — was echoed with its password by clap's "unexpected
/// argument '…'" and by the errors that print a path. Each is a usage error
/// (exit 2) saying where the URL goes, with the password in no form.
#[test]
fn a_url_given_where_it_does_not_go_is_refused_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let encoded = format!(
        "postgres://app:{}@127.0.0.1:5432/db",
        percent_encode(SENTINEL, true)
    );
    // The password typed as is: quotes, spaces and '@' cut clap's quoting.
    let raw = format!("postgresql://app:{SENTINEL}'q@127.0.0.1/db?sslmode=require");
    for url in [encoded.as_str(), raw.as_str()] {
        let flag_value = format!("--snapshot={url}");
        let plan_env = [("SANDBOX_PLAN", url)];
        type Env<'a> = &'a [(&'a str, &'a str)];
        let cases: Vec<(Vec<&str>, Env)> = vec![
            (vec!["pull", url], &[]),
            (vec!["push", "--confirm", url], &[]),
            (vec!["push", "--snapshot", url], &[]),
            (vec!["status", &flag_value], &[]),
            (vec!["rehearse", "--plan", url], &[]),
            (vec!["rehearse", "--seeds", url], &[]),
            (vec!["rehearse"], &plan_env),
            (vec!["rollback", "--receipt", url], &[]),
            (vec!["receipts", "--snapshot", url], &[]),
            (vec!["diff", "--sql", url], &[]),
            (vec!["report", "--html", url], &[]),
            (vec!["pull", "--out", url], &[]),
            (vec!["plan", "init", url], &[]),
            (vec!["demo", "--variant", url], &[]),
            (vec!["--json", "pull", url], &[]),
            (vec!["--json", "push", "--plan", url], &[]),
        ];
        for (args, env) in cases {
            let run = common::Sandbox::new(&args)
                .envs(env)
                .env(
                    "SANDBOX_DATABASE_URL",
                    "postgres://postgres@127.0.0.1:1/none",
                )
                .dir(dir.path())
                .run();
            assert_no_sentinel(&format!("the output of {args:?}"), run.all().as_bytes());
            assert!(
                !run.all().contains("'q@"),
                "the password's end: {}",
                run.show()
            );
            run.code(2);
            assert!(
                run.all().contains("--database-url"),
                "{args:?} does not say where the URL goes: {}",
                run.show()
            );
        }
    }
    // Nothing named after the URL was created.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files created: {left:?}");
}
