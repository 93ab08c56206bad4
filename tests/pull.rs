//! `sandbox pull` against real fixture databases: counts, determinism,
//! lossless values, one consistent moment, atomic files.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestDb;
use sandbox::db::sqlite::Snapshot;
use sandbox::fixtures::{FixtureOptions, Variant};
use sandbox::types::{copy_text_line, parse_copy_line, SESSION_SETTINGS};

/// The binary in the harness's clean environment: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let r = common::sandbox(args);
    (r.code, r.stdout, r.stderr)
}

fn load(db: &TestDb, variant: &str) {
    common::load_fixtures(&db.url, variant);
}

/// A pull that must be refused as an environment error (exit 2); its stderr.
fn refused_pull(db: &TestDb, out: &Path) -> String {
    let (code, _, err) = run(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    err
}

fn pull(db: &TestDb, out: &Path) {
    let (code, o, e) = run(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{o}{e}");
}

const EXPECTED: [(&str, u64); 10] = [
    ("prompts", 3570),
    ("jtbd_library", 371),
    ("workflows", 141),
    ("agents", 190),
    ("personas", 210),
    ("dh_domain", 5),
    ("dh_use_case", 50),
    ("dh_workflow", 116),
    ("dh_task", 343),
    ("dh_tool", 150),
];

#[test]
fn pull_takes_exactly_the_plan_tables_and_repeats_identically() {
    let db = TestDb::create("pull_counts");
    load(&db, "plan");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    pull(&db, &a);
    pull(&db, &b);
    let sa = Snapshot::open(&a).unwrap();
    let sb = Snapshot::open(&b).unwrap();
    for (table, rows) in EXPECTED {
        let n: i64 = sa
            .conn
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n as u64, rows, "{table}");
        assert_eq!(sa.table(table).unwrap().rows, rows);
        assert_eq!(
            sa.table(table).unwrap().checksum,
            sb.table(table).unwrap().checksum,
            "{table} checksum differs between two pulls"
        );
    }
    assert_eq!(sa.info.snapshot_checksum, sb.info.snapshot_checksum);
    let names: Vec<&str> = sa.tables.iter().map(|t| t.meta.name.as_str()).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    for unrelated in [
        "user_sessions",
        "app_settings",
        "tenants",
        "profiles",
        "organizations",
    ] {
        let n: i64 = sa
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?",
                [unrelated],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{unrelated} must not be pulled");
    }
    // Catalog-driven: the real column counts and types.
    assert_eq!(sa.table("jtbd_library").unwrap().meta.columns.len(), 47);
    assert_eq!(sa.table("dh_tool").unwrap().meta.columns.len(), 73);
    let created = sa
        .table("jtbd_library")
        .unwrap()
        .meta
        .column("created_at")
        .unwrap()
        .pg_type
        .clone();
    assert_eq!(created, "timestamp without time zone");
    assert!(sa
        .table("dh_workflow")
        .unwrap()
        .meta
        .constraints
        .iter()
        .any(|c| c.kind == "u" && c.columns == ["use_case_id", "name"]));
    assert!(sa.info.source_url.contains(&db.name));
    // Snapshots hold production data: owner-only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The bundled demo snapshot is byte-for-byte the same data as this pull.
    let demo = dir.path().join("demo.sqlite");
    let plan = sandbox::plan::Plan::load_default().unwrap();
    sandbox::ops::demo::build_snapshot(
        &demo,
        true,
        &FixtureOptions {
            variant: Variant::Plan,
            scale: 1,
        },
        &plan.tables,
        &sandbox::ops::pull::NoProgress,
    )
    .unwrap();
    let sd = Snapshot::open(&demo).unwrap();
    for t in &sa.tables {
        assert_eq!(
            sd.table(&t.meta.name).unwrap().checksum,
            t.checksum,
            "demo differs from pull for {}",
            t.meta.name
        );
        assert_eq!(
            sd.table(&t.meta.name).unwrap().meta,
            t.meta,
            "demo catalog differs for {} (regenerate fixtures/catalog.json)",
            t.meta.name
        );
    }
}

/// Every value of every pulled table, re-encoded from SQLite, equals what
/// Postgres prints for it.
#[test]
fn pull_is_lossless_for_every_type() {
    let db = TestDb::create("pull_lossless");
    load(&db, "plan");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    pull(&db, &path);
    let snap = Snapshot::open(&path).unwrap();
    let mut client = db.client();
    let mut tx = client.transaction().unwrap();
    for (k, v) in SESSION_SETTINGS {
        tx.execute("SELECT set_config($1, $2, true)", &[k, v])
            .unwrap();
    }
    let mut types_seen = std::collections::BTreeSet::new();
    let mut values = 0u64;
    for t in &snap.tables {
        let meta = &t.meta;
        let pk = meta
            .column_names()
            .iter()
            .position(|c| c == &meta.primary_key()[0])
            .unwrap();
        let cols = meta
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let mut remote: HashMap<String, Vec<Option<String>>> = HashMap::new();
        let mut reader = tx
            .copy_out(&format!(
                "COPY (SELECT {cols} FROM public.\"{}\") TO STDOUT",
                meta.name
            ))
            .unwrap();
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut buf).unwrap();
        drop(reader);
        for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let row = parse_copy_line(line).unwrap();
            remote.insert(row[pk].clone().unwrap(), row);
        }
        let mut local = 0;
        snap.for_each_row(&meta.name, meta, |row| {
            let key = row[pk].clone().unwrap();
            let theirs = remote
                .get(&key)
                .unwrap_or_else(|| panic!("{} row {key} missing", meta.name));
            for (i, c) in meta.columns.iter().enumerate() {
                assert_eq!(&row[i], &theirs[i], "{}.{} of {key}", meta.name, c.name);
                if row[i].is_some() {
                    types_seen.insert(c.pg_type.split('(').next().unwrap().to_string());
                }
                values += 1;
            }
            assert_eq!(copy_text_line(&row), copy_text_line(theirs));
            local += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(local, remote.len(), "{}", meta.name);
    }
    for ty in [
        "uuid",
        "text",
        "character varying",
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "double precision",
        "boolean",
        "date",
        "timestamp without time zone",
        "timestamp with time zone",
        "jsonb",
        "json",
        "text[]",
        "uuid[]",
    ] {
        assert!(
            types_seen.iter().any(|t| t == ty),
            "type {ty} not covered; seen {types_seen:?}"
        );
    }
    assert!(values > 100_000, "{values}");
    // The hard cases travel too: NaN, infinities, the 20-digit numeric.
    let get = |sql: &str| -> String { snap.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(get("SELECT group_concat(avg_execution_time, ' ') FROM jtbd_library WHERE avg_execution_time IN ('NaN', 'Infinity', '-Infinity')").split(' ').count(), 3);
    assert!(get("SELECT max(total_consultations) FROM agents").len() >= 20);
    assert_eq!(
        get("SELECT updated_at FROM prompts WHERE updated_at = 'infinity' LIMIT 1"),
        "infinity"
    );
    let generated: i64 = snap
        .conn
        .query_row(
            "SELECT count(*) FROM _sandbox_columns WHERE generated_expr IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(generated >= 1);
}

/// A writer committing during the pull must not produce a torn snapshot:
/// it moves a counter in two tables in one transaction; the snapshot must
/// show both at the same value.
#[test]
fn pull_is_one_consistent_moment() {
    let db = TestDb::create("pull_consistent");
    load(&db, "plan");
    let mut c = db.client();
    let agent: String = c
        .query_one("SELECT id::text FROM agents ORDER BY id LIMIT 1", &[])
        .unwrap()
        .get(0);
    let persona: String = c
        .query_one("SELECT id::text FROM personas ORDER BY id LIMIT 1", &[])
        .unwrap()
        .get(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = db.url.clone();
        let (agent, persona) = (agent.clone(), persona.clone());
        std::thread::spawn(move || {
            let mut w = common::postgres_admin(&url);
            let mut n = 0i32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let mut tx = w.transaction().unwrap();
                tx.execute(
                    "UPDATE agents SET max_tokens = $1 WHERE id = $2::text::uuid",
                    &[&n, &agent],
                )
                .unwrap();
                tx.execute(
                    "UPDATE personas SET version = $1 WHERE id = $2::text::uuid",
                    &[&n, &persona],
                )
                .unwrap();
                tx.commit().unwrap();
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let mut torn = 0;
    for i in 0..3 {
        let path = dir.path().join(format!("s{i}.sqlite"));
        pull(&db, &path);
        let snap = Snapshot::open(&path).unwrap();
        let a: i64 = snap
            .conn
            .query_row(
                "SELECT max_tokens FROM agents WHERE id = ?",
                [&agent],
                |r| r.get(0),
            )
            .unwrap();
        let p: i64 = snap
            .conn
            .query_row(
                "SELECT version FROM personas WHERE id = ?",
                [&persona],
                |r| r.get(0),
            )
            .unwrap();
        assert!(a > 0, "the writer was running");
        if a != p {
            torn += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let commits = writer.join().unwrap();
    assert!(
        commits > 10,
        "the writer committed {commits} times during the pulls"
    );
    assert_eq!(torn, 0, "a pull saw two different moments");
}

fn no_partial_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".part"))
        .collect()
}

#[test]
fn a_failed_pull_leaves_nothing_and_keeps_rehearsals() {
    let db = TestDb::create("pull_atomic");
    load(&db, "plan");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    // What a pull killed with SIGKILL leaves behind is swept once abandoned;
    // a temporary file still being written (recent) is left alone.
    let abandoned = dir.path().join(".sandbox-pull-killed.sqlite.part");
    let recent = dir.path().join(".sandbox-pull-running.sqlite.part");
    std::fs::write(&abandoned, b"partial").unwrap();
    std::fs::write(&recent, b"partial").unwrap();
    let touched = Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&abandoned)
        .status()
        .unwrap();
    assert!(touched.success());
    pull(&db, &path);
    assert!(
        !abandoned.exists(),
        "an abandoned temporary file was not swept"
    );
    assert!(
        recent.exists(),
        "a recent temporary file must be left alone"
    );
    std::fs::remove_file(&recent).unwrap();
    let (code, out, err) = run(&["rehearse", "--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let before = std::fs::read(&path).unwrap();
    // A snapshot holding rehearsals is not clobbered without --force.
    let err = refused_pull(&db, &path);
    assert!(
        err.contains("rehearsal results") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // A table the plan needs is missing at the source: exit 2, nothing written.
    db.client().batch_execute("DROP TABLE dh_tool").unwrap();
    let other = dir.path().join("other.sqlite");
    let err = refused_pull(&db, &other);
    assert!(err.contains("dh_tool"), "{err}");
    assert!(!other.exists());
    let (code, _, err) = run(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        path.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old snapshot survives a failed pull"
    );
    assert!(
        no_partial_files(dir.path()).is_empty(),
        "{:?}",
        no_partial_files(dir.path())
    );
    // A file that is not a snapshot (someone's own database) is not replaced
    // silently either.
    let foreign = dir.path().join("mine.sqlite");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes (x); INSERT INTO notes VALUES (1);")
        .unwrap();
    let mine = std::fs::read(&foreign).unwrap();
    let err = refused_pull(&db, &foreign);
    assert!(
        err.contains("cannot be replaced safely") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), mine);
    // status reads the file without a server.
    let (code, out, _) = run(&["status", "--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("prompts") && out.contains("3570") && out.contains("Rehearsals 1"),
        "{out}"
    );
}

#[test]
fn foreign_and_corrupt_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.sqlite");
    std::fs::write(
        &corrupt,
        b"this is not a database at all, just text that is long enough",
    )
    .unwrap();
    let (code, _, err) = run(&["status", "--snapshot", corrupt.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a readable SQLite file"), "{err}");
    let foreign = dir.path().join("foreign.sqlite");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let (code, _, err) = run(&["rehearse", "--snapshot", foreign.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a sandbox snapshot"), "{err}");
    let (code, _, err) = run(&[
        "rehearse",
        "--snapshot",
        dir.path().join("missing.sqlite").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("sandbox pull"), "{err}");
}

/// A role that row-level security would filter gets an error, never a
/// silently partial snapshot.
#[test]
fn rls_filtered_role_is_refused_not_half_pulled() {
    let db = TestDb::create("pull_rls");
    load(&db, "plan");
    let reader = common::TestRole::create("pull_rls_reader", "LOGIN");
    let role = &reader.name;
    db.client()
        .batch_execute(&format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\";"
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let (code, _, err) = run(&[
        "pull",
        "--database-url",
        &url,
        "--out",
        out.to_str().unwrap(),
    ]);
    db.client()
        .batch_execute(&format!("DROP OWNED BY \"{role}\""))
        .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("row-level security") && err.contains("BYPASSRLS"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A pull whose statement runs past `--statement-timeout` (held here
/// behind another session's lock, as a big table's COPY would run past
/// Supabase's 2 minutes) is named as a timeout with the flag to raise, not
/// as a failed connection; no snapshot is written.
#[test]
fn pull_names_a_statement_timeout_and_the_flag_to_raise() {
    let db = TestDb::create("pull_timeout");
    load(&db, "plan");
    let mut holder = db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE prompts IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.sqlite");
    let r = common::Sandbox::new(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        out.to_str().unwrap(),
        "--statement-timeout",
        "300",
    ])
    .timeout(std::time::Duration::from_secs(60))
    .run();
    r.code(2)
        .error_has(&["ran past its statement_timeout", "--statement-timeout MS"]);
    assert!(!r.stderr.contains("connection failed"), "{}", r.show());
    assert!(!out.exists(), "a snapshot was written: {}", r.show());
    tx.rollback().unwrap();
}
