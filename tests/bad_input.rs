//! Bad input, end to end through the binary: a snapshot rehearsed under
//! another plan or seeds, staged or pulled tables edited after a passing
//! rehearsal, malformed seed folders given to `push`/`diff`, a source that
//! lost a row, bad database URLs, a snapshot of a newer format, a truncated
//! snapshot. Each case checks the message (what is wrong, what to do), the
//! exit code (2 usage/environment, 1 failed check or refused push) and that
//! nothing was written: no snapshot file, no change at Postgres, the
//! snapshot's bytes unchanged.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{copy_dir, run_sandbox, text_rows, whole_database_state, Run, TestDb};
use postgres_sync::Client;
use sandbox::fixtures::Variant;
use sandbox::ops::rehearse::{rehearse, RehearseOptions};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Running the binary

/// The binary with nothing inherited that could change its behaviour.
fn sandbox(args: &[&str]) -> Run {
    run_sandbox(args, &[])
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------
// Reading Postgres back

// ---------------------------------------------------------------------------
// A loaded, pulled (and usually rehearsed) world

struct World {
    db: TestDb,
    dir: tempfile::TempDir,
    snapshot: PathBuf,
}

impl World {
    fn pull(db: TestDb) -> World {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("snapshot.sqlite");
        sandbox(&["pull", "--database-url", &db.url, "--out", p(&snapshot)]).ok();
        World { db, dir, snapshot }
    }

    /// A fresh database loaded with the fixtures, and a snapshot of them
    /// that holds a passing rehearsal. The snapshot is the demo build of
    /// the same fixtures (byte-for-byte the data a pull reads, see
    /// tests/pull.rs), made once per process: a pull and a rehearsal per
    /// test would double the time of this file.
    fn rehearsed(tag: &str) -> World {
        let db = TestDb::create(tag);
        sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("snapshot.sqlite");
        std::fs::write(&snapshot, rehearsed_snapshot()).unwrap();
        World { db, dir, snapshot }
    }

    fn url(&self) -> &str {
        &self.db.url
    }

    fn client(&self) -> Client {
        self.db.client()
    }

    /// A copy of the snapshot to damage.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        std::fs::copy(&self.snapshot, &to).unwrap();
        to
    }

    /// `rollback` of a receipt no push wrote, with `extra`.
    fn rollback_of_no_receipt(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "rollback",
            "--database-url",
            self.url(),
            "--receipt",
            "00000000-0000-0000-0000-000000000001",
        ];
        args.extend_from_slice(extra);
        sandbox(&args)
    }

    fn push(&self, snapshot: &Path, extra: &[&str]) -> Run {
        let mut args = vec![
            "push",
            "--database-url",
            self.url(),
            "--snapshot",
            p(snapshot),
        ];
        args.extend_from_slice(extra);
        sandbox(&args)
    }
}

/// The bytes of a rehearsed (passing) snapshot of the plan fixtures.
fn rehearsed_snapshot() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rehearsed.sqlite");
        let plan = sandbox::plan::Plan::load_default().unwrap();
        common::fixture_snapshot(&path, Variant::Plan, &plan);
        let report = rehearse(&RehearseOptions {
            snapshot: &path,
            plan: &plan,
        })
        .unwrap();
        assert!(report.passed, "the plan fixtures rehearse green");
        std::fs::read(&path).unwrap()
    })
}

fn shipped_seeds() -> PathBuf {
    common::repo_path("seeds")
}

fn library_file(seeds: &Path, sp: &str) -> PathBuf {
    std::fs::read_dir(seeds.join("library"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(sp))
        .unwrap_or_else(|| panic!("no {sp} library file"))
}

// ---------------------------------------------------------------------------
// 1. A snapshot rehearsed under another plan version

#[test]
fn push_and_diff_refuse_a_rehearsal_of_another_plan_or_seed_version() {
    let w = World::rehearsed("bad_plan_version");
    let before = whole_database_state(w.url());
    let snapshot_bytes = std::fs::read(&w.snapshot).unwrap();
    let dir = w.dir.path();

    // Whitespace is not a change of plan: the same plan pretty-printed still
    // authorises the diff.
    let reformatted = common::plan_folder(&dir.join("reformatted"), |_| {});
    sandbox(&[
        "diff",
        "--snapshot",
        p(&w.snapshot),
        "--plan",
        p(&reformatted),
    ])
    .ok();

    // A plan whose meaning changed (its numbers do not even matter: the
    // description alone is part of the plan).
    let other_plan = common::plan_folder(&dir.join("other-plan"), |p| {
        p["description"] = "edited after the rehearsal".into();
    });
    let sql = dir.join("migration.sql");
    sandbox(&[
        "diff",
        "--snapshot",
        p(&w.snapshot),
        "--plan",
        p(&other_plan),
        "--sql",
        p(&sql),
    ])
    .code(1)
    .error_has(&["plan or seeds changed", "sandbox rehearse --snapshot "]);
    assert!(!sql.exists(), "diff wrote a script for a refused plan");
    w.push(&w.snapshot, &["--plan", p(&other_plan), "--confirm"])
        .code(1)
        .error_has(&["plan or seeds changed", "sandbox rehearse --snapshot "]);
    before.assert_same(&whole_database_state(w.url()), "push with another plan");

    // Seeds are part of the plan: a workflow renamed in a valid seed folder.
    let seeds = dir.join("other-seeds");
    copy_dir(&shipped_seeds(), &seeds);
    let file = library_file(&seeds, "SP03");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["jtbds"][0]["workflows"][0]["workflow_name"] = "Renamed after the rehearsal".into();
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    w.push(&w.snapshot, &["--seeds", p(&seeds), "--confirm"])
        .code(1)
        .error_has(&["plan or seeds changed", "sandbox rehearse --snapshot "]);
    before.assert_same(&whole_database_state(w.url()), "push with other seeds");
    assert_eq!(
        std::fs::read(&w.snapshot).unwrap(),
        snapshot_bytes,
        "a refused diff or push changed the snapshot"
    );

    // The other way round: rehearsed under the edited plan, the built-in
    // plan no longer authorises a push, the edited one does.
    sandbox(&[
        "rehearse",
        "--snapshot",
        p(&w.snapshot),
        "--plan",
        p(&other_plan),
    ])
    .ok();
    w.push(&w.snapshot, &["--confirm"])
        .code(1)
        .error_has(&["plan or seeds changed", "sandbox rehearse --snapshot "]);
    before.assert_same(
        &whole_database_state(w.url()),
        "push with the built-in plan",
    );
    let r = w.push(&w.snapshot, &["--plan", p(&other_plan)]);
    r.ok();
    assert!(r.stdout.contains("Dry run"), "{}", r.show());
    before.assert_same(&whole_database_state(w.url()), "dry run");
}

// ---------------------------------------------------------------------------
// 2. Tables edited by hand after a passing rehearsal

#[test]
fn push_refuses_tables_edited_after_a_passing_rehearsal() {
    let w = World::rehearsed("bad_staged_edit");
    let before = whole_database_state(w.url());
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "staged tool renamed",
            "UPDATE staged_tools SET name = name || ' (edited)' WHERE rowid = 1",
            &["staged tables were changed after the rehearsal", "sandbox rehearse --snapshot "],
        ),
        (
            "staged workflow deleted",
            "DELETE FROM staged_workflows WHERE rowid = (SELECT max(rowid) FROM staged_workflows)",
            &["staged tables were changed after the rehearsal", "sandbox rehearse --snapshot "],
        ),
        (
            "staged priority added",
            "INSERT INTO staged_strategic_priorities (id, code, name, description, color, icon, position, created_at) \
             SELECT '00000000-0000-0000-0000-0000000000ff', 'SP08', name, description, color, icon, 8, created_at \
             FROM staged_strategic_priorities LIMIT 1",
            &["staged tables were changed after the rehearsal", "sandbox rehearse --snapshot "],
        ),
        (
            "staged JTBD link moved",
            "UPDATE staged_jtbd_library SET strategic_priority_id = NULL WHERE id = 'jtbd00001'",
            &["staged tables were changed after the rehearsal", "sandbox rehearse --snapshot "],
        ),
        (
            "pulled JTBD edited",
            "UPDATE jtbd_library SET title = title || ' (edited)' WHERE id = 'jtbd00042'",
            &["pulled table jtbd_library was changed inside the snapshot", "sandbox pull --force --out "],
        ),
    ];
    for (i, (case, sql, needles)) in cases.iter().enumerate() {
        let copy = w.copy(&format!("edited-{i}.sqlite"));
        let n = rusqlite::Connection::open(&copy)
            .unwrap()
            .execute(sql, [])
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(n, 1, "{case}: the edit changed {n} rows");
        let bytes = std::fs::read(&copy).unwrap();
        w.push(&copy, &["--confirm"]).code(1).error_has(needles);
        before.assert_same(&whole_database_state(w.url()), case);
        if i == 0 {
            sandbox(&["diff", "--snapshot", p(&copy)])
                .code(1)
                .error_has(needles);
        }
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            bytes,
            "{case}: snapshot changed"
        );
    }
    // The untouched snapshot still pushes: the refusals were the edits.
    w.push(&w.snapshot, &[]).ok();
}

// ---------------------------------------------------------------------------
// 3. Malformed seed folders given to push and diff

type Edit = Box<dyn Fn(&Path)>;

/// Replaces the first occurrence of `from` in the library file of `sp`.
fn replace_in(sp: &'static str, from: &'static str, to: &'static str) -> Edit {
    Box::new(move |seeds: &Path| {
        let file = library_file(seeds, sp);
        let text = std::fs::read_to_string(&file).unwrap();
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "{from:?} not found in {}", file.display());
        std::fs::write(&file, edited).unwrap();
    })
}

#[test]
fn push_and_diff_refuse_malformed_seed_folders() {
    let w = World::rehearsed("bad_seeds");
    let before = whole_database_state(w.url());
    let snapshot_bytes = std::fs::read(&w.snapshot).unwrap();
    // (case, edit, file the message names, what it says)
    let cases: Vec<(&str, Edit, &str, &[&str])> = vec![
        (
            "bad JSON",
            replace_in("SP03", "}", ""),
            "SP03_",
            &["invalid JSON at line", "Fix: correct the JSON syntax"],
        ),
        (
            "missing field",
            replace_in("SP03", "\"workflow_name\"", "\"workflow_title\""),
            "SP03_",
            &[
                "missing required field `workflow_name`",
                "Fix: add the field",
            ],
        ),
        (
            "wrong type",
            replace_in(
                "SP03",
                "\"phase_count\": ",
                "\"phase_count\": \"4\", \"_was\": ",
            ),
            "SP03_",
            &["phase_count: wrong type: expected a non-negative integer, found a string"],
        ),
        (
            "malformed JTBD code",
            replace_in(
                "SP05",
                "\"jtbd_id\": \"JTBD-MA-069\"",
                "\"jtbd_id\": \"JTBD-MA-69\"",
            ),
            "SP05_",
            &["`JTBD-MA-69` is not a Medical Affairs JTBD code"],
        ),
        (
            "two files for one priority",
            Box::new(|seeds: &Path| {
                let file = library_file(seeds, "SP02");
                std::fs::copy(&file, seeds.join("library/SP02_copy.json")).unwrap();
            }),
            "SP02_",
            &["duplicate strategic priority code `SP02`"],
        ),
        (
            "duplicate priority code",
            Box::new(|seeds: &Path| {
                let file = seeds.join("strategic_priorities.json");
                let text = std::fs::read_to_string(&file).unwrap();
                std::fs::write(&file, text.replacen("\"SP02\"", "\"SP01\"", 1)).unwrap();
            }),
            "strategic_priorities.json",
            &["duplicate strategic priority code `SP01`"],
        ),
        (
            "no library files",
            Box::new(|seeds: &Path| {
                for e in std::fs::read_dir(seeds.join("library")).unwrap() {
                    std::fs::remove_file(e.unwrap().path()).unwrap();
                }
            }),
            "library",
            &[
                "no library files (*.json) found",
                "Fix: put the seven operational-library files",
            ],
        ),
        (
            "no priorities file",
            Box::new(|seeds: &Path| {
                std::fs::remove_file(seeds.join("strategic_priorities.json")).unwrap();
            }),
            "strategic_priorities.json",
            &["cannot read", "Fix: check that the seed directory holds"],
        ),
        (
            "not UTF-8",
            Box::new(|seeds: &Path| {
                let file = library_file(seeds, "SP01");
                let mut bytes = std::fs::read(&file).unwrap();
                bytes[100] = 0xff;
                std::fs::write(&file, bytes).unwrap();
            }),
            "SP01_",
            &["cannot read", "UTF-8"],
        ),
    ];
    for (case, edit, names, needles) in cases {
        let tag: String = case
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let seeds = w.dir.path().join(&tag);
        copy_dir(&shipped_seeds(), &seeds);
        edit(&seeds);
        let mut all = vec!["seed files are not valid", names];
        all.extend_from_slice(needles);
        let r = w.push(&w.snapshot, &["--seeds", p(&seeds), "--confirm"]);
        r.code(2).error_has(&all);
        assert!(r.stdout.is_empty(), "{case}: {}", r.show());
        let sql = seeds.join("migration.sql");
        sandbox(&[
            "diff",
            "--snapshot",
            p(&w.snapshot),
            "--seeds",
            p(&seeds),
            "--sql",
            p(&sql),
        ])
        .code(2)
        .error_has(&all);
        assert!(!sql.exists(), "{case}: diff wrote a script");
        before.assert_same(&whole_database_state(w.url()), case);
    }
    // What the content must agree with (workflow ids, JTBDs, sources,
    // counts, priorities) is the plan's SQL on the seed tables, checked by
    // the rehearsal (tests/rehearse.rs): other seeds are another plan, so a
    // push or diff on the old rehearsal is refused, exit 1, nothing written.
    let content_cases: Vec<(&str, Edit, &str, &[&str])> = vec![
        (
            "duplicate workflow id in a file",
            replace_in("SP03", "\"WF-038-A\"", "\"WF-037-A\""),
            "SP03_",
            &["duplicate workflow_id `WF-037-A`", "unique within one file"],
        ),
        (
            "unknown JTBD",
            replace_in(
                "SP03",
                "\"jtbd_id\": \"JTBD-MA-040\",\n          \"duration\"",
                "\"jtbd_id\": \"JTBD-MA-004\",\n          \"duration\"",
            ),
            "SP03_",
            &["jtbd_id `JTBD-MA-004` is not one of the JTBDs listed in this file"],
        ),
        (
            "workflow source of another priority",
            replace_in(
                "SP04",
                "\"source\": \"SP04 Operational Library\",\n          \"pillar\"",
                "\"source\": \"SP05 Operational Library\",\n          \"pillar\"",
            ),
            "SP04_",
            &["source `SP05 Operational Library` does not match"],
        ),
        (
            "task count does not match the tasks",
            replace_in(
                "SP06",
                "\"task_count\": ",
                "\"task_count\": 1000, \"_was\": ",
            ),
            "SP06_",
            &["task_count is 1000 but the workflow has"],
        ),
        (
            "unknown strategic priority",
            replace_in(
                "SP07",
                "\"strategic_priority\": \"SP07\"",
                "\"strategic_priority\": \"SP09\"",
            ),
            "SP07_",
            &["strategic priority `SP09` is not defined in strategic_priorities.json"],
        ),
    ];
    for (case, edit, _, _) in content_cases {
        let tag: String = case
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let seeds = w.dir.path().join(&tag);
        copy_dir(&shipped_seeds(), &seeds);
        edit(&seeds);
        w.push(&w.snapshot, &["--seeds", p(&seeds), "--confirm"])
            .code(1)
            .error_has(&["plan or seeds changed", "sandbox rehearse --snapshot "]);
        let sql = seeds.join("migration.sql");
        sandbox(&[
            "diff",
            "--snapshot",
            p(&w.snapshot),
            "--seeds",
            p(&seeds),
            "--sql",
            p(&sql),
        ])
        .code(1);
        assert!(!sql.exists(), "{case}: diff wrote a script");
        before.assert_same(&whole_database_state(w.url()), case);
    }
    // A seed folder that does not exist at all.
    let missing = w.dir.path().join("no-such-seeds");
    w.push(&w.snapshot, &["--seeds", p(&missing), "--confirm"])
        .code(2)
        .error_has(&["no-such-seeds", "cannot read"]);
    before.assert_same(&whole_database_state(w.url()), "missing seed folder");
    assert_eq!(std::fs::read(&w.snapshot).unwrap(), snapshot_bytes);
    // None of it touched the rehearsal: the shipped seeds still push.
    w.push(&w.snapshot, &[]).ok();
}

// ---------------------------------------------------------------------------
// 4. The source lost a row: the plan's numbers no longer hold

#[test]
fn a_tool_missing_at_the_source_fails_the_rehearsal_and_push_refuses() {
    let db = TestDb::create("bad_count");
    sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let deleted = text_rows(
        &mut db.client(),
        "DELETE FROM dh_tool WHERE id = (SELECT min(id::text)::uuid FROM dh_tool) RETURNING id::text",
    );
    assert_eq!(deleted.len(), 1);
    let w = World::pull(db);
    let before = whole_database_state(w.url());

    let r = sandbox(&["rehearse", "--snapshot", p(&w.snapshot)]);
    r.code(1);
    assert!(
        r.stdout.contains("FAILED") && r.stdout.contains("Push will refuse"),
        "{}",
        r.show()
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("tools migrated"))
        .unwrap_or_else(|| panic!("no 'tools migrated' line: {}", r.show()));
    assert!(
        line.contains("150") && line.contains("149") && line.contains("FAILED"),
        "{line}"
    );

    let r = sandbox(&["rehearse", "--json", "--snapshot", p(&w.snapshot)]);
    r.code(1);
    let report: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.show()));
    let failed: Vec<(String, String, String, String)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("phase"), s("name"), s("expected"), s("actual"))
        })
        .collect();
    for (phase, name, expected, actual) in [
        ("2", "tools migrated", "150", "149"),
        ("final", "total rows 4,482 → 5,209", "5209", "5208"),
    ] {
        assert!(
            failed
                .iter()
                .any(|f| (f.0.as_str(), f.1.as_str(), f.2.as_str(), f.3.as_str())
                    == (phase, name, expected, actual)),
            "{phase}/{name} {expected} vs {actual} not among the failures: {failed:#?}"
        );
    }
    // Nothing else is blamed on the missing tool: the other phases hold.
    assert!(
        failed.iter().all(|f| f.1.contains("tools")
            || f.1.contains("total rows")
            || f.1.contains("row counts")),
        "{failed:#?}"
    );

    let bytes = std::fs::read(&w.snapshot).unwrap();
    for extra in [&[][..], &["--confirm"][..]] {
        w.push(&w.snapshot, extra)
            .code(1)
            .error_has(&["failed", "nothing may be pushed until a rehearsal passes"]);
        before.assert_same(
            &whole_database_state(w.url()),
            "push after a failed rehearsal",
        );
    }
    sandbox(&["diff", "--snapshot", p(&w.snapshot)])
        .code(1)
        .error_has(&["nothing may be pushed"]);
    assert_eq!(std::fs::read(&w.snapshot).unwrap(), bytes);
}

// ---------------------------------------------------------------------------
// 5. Database URLs that cannot work

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn bad_database_urls_are_explained_and_nothing_is_written() {
    let w = World::rehearsed("bad_urls");
    let mut c = w.client();
    let before = whole_database_state(w.url());
    let snapshot_bytes = std::fs::read(&w.snapshot).unwrap();
    let port = closed_port();
    let base = w.url().to_string();
    let no_db = common::replace_db(&base, "sbx_no_such_database_at_all");
    let endpoint = format!("127.0.0.1:{port}");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "port is not a number",
            "postgres://postgres@127.0.0.1:54x2/postgres".into(),
            vec![
                "not a valid URL",
                "invalid port number",
                "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            ],
        ),
        (
            "unclosed IPv6 bracket",
            "postgres://postgres@[::1/postgres".into(),
            vec!["not a valid URL", "invalid IPv6 address"],
        ),
        (
            "neither URL nor key=value",
            "127.0.0.1:5432".into(),
            vec!["neither a postgres:// URL nor key=value pairs"],
        ),
        (
            "unknown sslmode",
            format!("{base}?sslmode=sometimes"),
            vec![
                "unknown sslmode 'sometimes'",
                "use one of disable, prefer, require, verify-ca, verify-full",
            ],
        ),
        (
            "unknown parameter",
            format!("{base}?sslmod=require"),
            vec!["unknown parameter 'sslmod'", "did you mean sslmode?"],
        ),
        (
            "nothing listens on the port",
            format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            vec![
                "connection refused",
                "is the server running and is the port right?",
                &endpoint,
            ],
        ),
        (
            "unknown host",
            "postgres://postgres@no-such-host.invalid:5432/postgres".into(),
            vec![
                "cannot resolve the host",
                "check the host name",
                "no-such-host.invalid",
            ],
        ),
        (
            "unknown database",
            no_db.clone(),
            vec![
                "database 'sbx_no_such_database_at_all' does not exist",
                "check the database name",
            ],
        ),
        (
            "CA file missing",
            format!("{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            vec![
                "cannot read sslrootcert /nonexistent/ca.pem",
                "CA certificate",
            ],
        ),
        (
            "empty",
            String::new(),
            vec!["no database URL", "--database-url", "SANDBOX_DATABASE_URL"],
        ),
    ];
    for (case, url, needles) in &cases {
        // pull: exit 2, no snapshot, no temporary file left behind.
        let out = w.dir.path().join("pulls");
        std::fs::create_dir_all(&out).unwrap();
        let target = out.join("new.sqlite");
        sandbox(&["pull", "--database-url", url, "--out", p(&target)])
            .code(2)
            .error_has(needles);
        assert!(
            files_in(&out).is_empty(),
            "{case}: pull left {:?}",
            files_in(&out)
        );
        // push, rollback, fixtures load: exit 2, nothing written anywhere.
        sandbox(&[
            "push",
            "--database-url",
            url,
            "--snapshot",
            p(&w.snapshot),
            "--confirm",
        ])
        .code(2)
        .error_has(needles);
        sandbox(&[
            "rollback",
            "--database-url",
            url,
            "--receipt",
            "00000000-0000-0000-0000-000000000001",
            "--confirm",
        ])
        .code(2)
        .error_has(needles);
        sandbox(&["fixtures", "load", "--database-url", url])
            .code(2)
            .error_has(needles);
        before.assert_same(&whole_database_state(w.url()), case);
        assert_eq!(
            std::fs::read(&w.snapshot).unwrap(),
            snapshot_bytes,
            "{case}"
        );
    }
    // No URL at all (no flag, no environment).
    sandbox(&["push", "--snapshot", p(&w.snapshot), "--confirm"])
        .code(2)
        .error_has(&["no database URL", "SANDBOX_DATABASE_URL or DATABASE_URL"]);
    // The unknown database was not created on the way.
    let exists = text_rows(
        &mut c,
        "SELECT count(*) FROM pg_database WHERE datname = 'sbx_no_such_database_at_all'",
    );
    assert_eq!(exists[0][0], "0");
    // The snapshot still pushes with the right URL.
    w.push(&w.snapshot, &[]).ok();
}

// ---------------------------------------------------------------------------
// 6 + 7. Snapshot files this version cannot read

#[test]
fn a_snapshot_of_another_format_version_is_refused_unchanged() {
    let w = World::rehearsed("bad_format");
    let before = whole_database_state(w.url());
    for (version, needles) in [
        (
            "4",
            vec![
                "is a snapshot of format 4 but this sandbox reads format 3",
                "written by a newer version",
                "sandbox pull --force --out ",
            ],
        ),
        (
            // Format 2 checksummed rows with SHA-256.
            "2",
            vec![
                "is a snapshot of format 2 but this sandbox reads format 3",
                "written by an older version",
                "sandbox pull --force --out ",
            ],
        ),
        (
            "0",
            vec![
                "is a snapshot of format 0 but this sandbox reads format 3",
                "sandbox pull --force --out ",
            ],
        ),
        (
            "'two'",
            vec![
                "damaged _sandbox_snapshot table",
                "sandbox pull --force --out ",
            ],
        ),
    ] {
        let copy = w.copy(&format!("format-{}.sqlite", version.trim_matches('\'')));
        rusqlite::Connection::open(&copy)
            .unwrap()
            .execute_batch(&format!(
                "UPDATE _sandbox_snapshot SET format_version = {version}"
            ))
            .unwrap();
        let bytes = std::fs::read(&copy).unwrap();
        let mut needles = needles.clone();
        let name = copy.file_name().unwrap().to_str().unwrap().to_string();
        needles.push(&name);
        for args in [
            vec!["status", "--snapshot", p(&copy)],
            vec!["status", "--json", "--snapshot", p(&copy)],
            vec!["rehearse", "--snapshot", p(&copy)],
            vec!["diff", "--snapshot", p(&copy)],
            vec![
                "push",
                "--database-url",
                w.url(),
                "--snapshot",
                p(&copy),
                "--confirm",
            ],
        ] {
            sandbox(&args).code(2).error_has(&needles);
        }
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            bytes,
            "format {version}: file changed"
        );
        before.assert_same(&whole_database_state(w.url()), "push of another format");
    }
}

#[test]
fn a_truncated_snapshot_is_refused_clearly() {
    let w = World::rehearsed("bad_truncated");
    let before = whole_database_state(w.url());
    let full = std::fs::metadata(&w.snapshot).unwrap().len();
    for (case, len, needles) in [
        (
            "half",
            full / 2,
            vec!["is not a readable SQLite file", "pull a fresh snapshot"],
        ),
        (
            "a tenth",
            full / 10,
            vec!["is not a readable SQLite file", "pull a fresh snapshot"],
        ),
        (
            "inside the header",
            50,
            vec!["is not a readable SQLite file", "pull a fresh snapshot"],
        ),
        ("empty", 0, vec!["not a sandbox snapshot", "sandbox pull"]),
    ] {
        let copy = w.copy(&format!("cut-{len}.sqlite"));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(len)
            .unwrap();
        let bytes = std::fs::read(&copy).unwrap();
        for args in [
            vec!["status", "--snapshot", p(&copy)],
            vec!["rehearse", "--snapshot", p(&copy)],
            vec!["diff", "--snapshot", p(&copy)],
            vec![
                "push",
                "--database-url",
                w.url(),
                "--snapshot",
                p(&copy),
                "--confirm",
            ],
        ] {
            let r = sandbox(&args);
            r.code(2).error_has(&needles);
            assert!(
                r.stderr.contains(p(&copy)),
                "{case}: file not named: {}",
                r.show()
            );
            assert!(!r.stderr.contains("panicked"), "{}", r.show());
        }
        assert_eq!(std::fs::read(&copy).unwrap(), bytes, "{case}: file changed");
        assert!(
            !copy.with_extension("sqlite-journal").exists(),
            "{case}: a journal was left next to the file"
        );
        before.assert_same(&whole_database_state(w.url()), case);
    }
}

// ---------------------------------------------------------------------------
// An application's own sandbox.receipts

#[test]
fn an_apps_own_sandbox_receipts_table_is_named_not_used() {
    let w = World::rehearsed("foreign_receipts");
    w.client()
        .batch_execute(
            "CREATE SCHEMA sandbox; CREATE TABLE sandbox.receipts(id serial PRIMARY KEY, note text); \
             INSERT INTO sandbox.receipts(note) VALUES ('the app''s row')",
        )
        .unwrap();
    let before = whole_database_state(w.url());
    let conflict = [
        "sandbox.receipts exists but is not this tool's receipts table",
        "Rename or move that table",
    ];
    for extra in [&[][..], &["--confirm"][..]] {
        w.push(&w.snapshot, extra).code(2).error_has(&conflict);
        before.assert_same(
            &whole_database_state(w.url()),
            "push over an app's receipts",
        );
    }
    sandbox(&[
        "receipts",
        "--database-url",
        w.url(),
        "--snapshot",
        p(&w.snapshot),
    ])
    .code(2)
    .error_has(&conflict);
    w.rollback_of_no_receipt(&["--snapshot", p(&w.snapshot), "--confirm"])
        .code(2)
        .error_has(&conflict);
    before.assert_same(&whole_database_state(w.url()), "receipts and rollback");
}

#[test]
fn rollback_of_a_receipt_that_does_not_exist_says_how_to_list_them() {
    let w = World::rehearsed("no_such_receipt");
    w.push(&w.snapshot, &["--confirm"]).ok();
    let before = whole_database_state(w.url());
    w.rollback_of_no_receipt(&["--snapshot", p(&w.snapshot), "--confirm"])
        .code(2)
        .error_has(&[
            "no receipt 00000000-0000-0000-0000-000000000001",
            "`sandbox receipts` lists",
        ]);
    before.assert_same(&whole_database_state(w.url()), "rollback of no receipt");
}

#[test]
fn rollback_in_a_database_never_pushed_to_says_so_and_how_to_list_receipts() {
    let w = World::rehearsed("never_pushed");
    let before = whole_database_state(w.url());
    for extra in [&[][..], &["--confirm"][..]] {
        w.rollback_of_no_receipt(extra).code(2).error_has(&[
            "no sandbox.receipts table",
            "no push was ever recorded in this database",
            "no receipt 00000000-0000-0000-0000-000000000001 to roll back",
            "`sandbox receipts`",
        ]);
    }
    before.assert_same(&whole_database_state(w.url()), "rollback, never pushed");
}

// ---------------------------------------------------------------------------
// A read-only server

/// `ALTER DATABASE … SET default_transaction_read_only` through the admin
/// database: a session in the read-only database could not run it.
fn set_read_only(w: &World, on: bool) {
    let setting = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    common::postgres_admin(&common::admin_url())
        .batch_execute(&format!("ALTER DATABASE \"{}\" {setting}", w.db.name))
        .unwrap();
}

#[test]
fn a_read_only_database_is_named_before_push_or_rollback_touches_it() {
    let w = World::rehearsed("read_only");
    set_read_only(&w, true);
    let before = whole_database_state(w.url());
    let named = [
        "the database is read-only for this session",
        "default_transaction_read_only = on",
        "for the database",
        "ALTER DATABASE",
        "RESET default_transaction_read_only",
        "no lock was taken",
    ];
    for extra in [&[][..], &["--confirm"][..]] {
        w.push(&w.snapshot, extra).code(2).error_has(&named);
    }
    before.assert_same(&whole_database_state(w.url()), "push, read-only");
    // Pull reads in a READ ONLY transaction: it works as before.
    let pulled = w.dir.path().join("pulled.sqlite");
    sandbox(&["pull", "--database-url", w.url(), "--out", p(&pulled)]).ok();
    before.assert_same(&whole_database_state(w.url()), "pull, read-only");

    set_read_only(&w, false);
    let receipt = w.push(&w.snapshot, &["--confirm"]).ok().receipt();
    set_read_only(&w, true);
    let pushed = whole_database_state(w.url());
    for extra in [&[][..], &["--confirm"][..]] {
        let mut args = vec!["rollback", "--database-url", w.url(), "--receipt", &receipt];
        args.extend_from_slice(extra);
        sandbox(&args).code(2).error_has(&named);
    }
    pushed.assert_same(&whole_database_state(w.url()), "rollback, read-only");
    set_read_only(&w, false);
}

/// A snapshot open with a write transaction elsewhere (a DB browser with
/// unsaved changes) is named as locked, with what to do, and is left as it
/// is (before: "not a readable SQLite file … pull a fresh snapshot", which
/// would throw away the rehearsals the user was looking at — H8 R28).
#[test]
fn a_snapshot_locked_by_a_db_browser_is_named_as_locked_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snapshot.sqlite");
    std::fs::write(&snapshot, rehearsed_snapshot()).unwrap();
    for lock in ["BEGIN EXCLUSIVE", "BEGIN IMMEDIATE"] {
        let browser = rusqlite::Connection::open(&snapshot).unwrap();
        browser.execute_batch(lock).unwrap();
        for args in [
            vec!["rehearse", "--snapshot", p(&snapshot)],
            vec!["status", "--snapshot", p(&snapshot)],
        ] {
            let r = sandbox(&args);
            if lock == "BEGIN IMMEDIATE" && args[0] == "status" {
                // Reading is allowed next to a writer that has not committed.
                r.ok();
                continue;
            }
            r.code(2).error_has(&[
                p(&snapshot),
                "is locked by another program",
                "save or close it there, then run this again",
            ]);
            assert!(!r.stderr.contains("pull a fresh snapshot"), "{}", r.show());
        }
        browser.execute_batch("ROLLBACK").unwrap();
    }
    assert_eq!(std::fs::read(&snapshot).unwrap(), rehearsed_snapshot());
}

/// H8 U5: `--allow-writes` and `--discard-changes` took anything: a table
/// that does not exist, or a malformed name, allowed or discarded nothing,
/// silently (or failed later with a raw error). Now a malformed value is a
/// usage error naming it and the accepted forms, and one naming no table
/// of the database (`--allow-writes`), or no table or column the push wrote
/// (`--discard-changes`), is refused by name before anything is locked:
/// exit 2, the whole database unchanged.
#[test]
fn allow_writes_and_discard_changes_name_what_they_do_not_know() {
    let w = common::World::loaded("junk_flags", "plan").with_shared_snapshot();
    let before = w.state();
    for bad in ["", "a.b.c", ".audit_log", "app."] {
        w.push(&["--allow-writes", bad])
            .code(2)
            .stderr_has(&format!(
                "invalid value '{bad}' for '--allow-writes <TABLE>'"
            ))
            .stderr_has("expected TABLE (a table in public) or SCHEMA.TABLE");
    }
    for (flag, shown) in [
        ("nosuch_log", "no table public.nosuch_log in this database"),
        ("app.audit_log", "no table app.audit_log in this database"),
    ] {
        for confirm in [&[][..], &["--confirm"][..]] {
            let run = w.push(&[&["--allow-writes", flag][..], confirm].concat());
            run.code(2)
                .stderr_has(&format!("--allow-writes {flag}: {shown}"))
                .stderr_has("nothing was written");
            before.assert_same(&w.state(), "a push refused for --allow-writes");
        }
    }
    let receipt = w.push_confirmed();
    let pushed = w.state();
    for bad in [
        "workflows",
        "workflows.",
        ".updated_at",
        "public.workflows.updated_at",
    ] {
        w.rollback(&receipt, &["--discard-changes", bad])
            .code(2)
            .stderr_has(&format!(
                "invalid value '{bad}' for '--discard-changes <TABLE.COLUMN>'"
            ))
            .stderr_has("expected TABLE.COLUMN of a table the push wrote");
    }
    for (args, shown) in [
        (
            ["--allow-writes", "nosuch_log"],
            "--allow-writes nosuch_log: no table public.nosuch_log in this database",
        ),
        (
            ["--discard-changes", "prompts.updated_at"],
            "--discard-changes prompts.updated_at: this push wrote no table prompts; name \
             TABLE.COLUMN or TABLE.* of a table it wrote: ",
        ),
        (
            ["--discard-changes", "workflows.updatd_at"],
            "--discard-changes workflows.updatd_at: workflows has no column updatd_at (its \
             columns: ",
        ),
    ] {
        for confirm in [&[][..], &["--confirm"][..]] {
            let run = w.rollback(&receipt, &[&args[..], confirm].concat());
            run.code(2)
                .stderr_has(shown)
                .stderr_has("nothing was changed");
            pushed.assert_same(&w.state(), "a rollback refused for its flags");
        }
    }
    w.rollback_restores(&receipt, &before, "push, then rollback");
}

/// H8 U8: `sandbox receipts` against one database with a snapshot pulled
/// from (and pushed to) another listed the snapshot's receipts as
/// "snapshot only" and advised `sandbox rollback --receipt <that id>`,
/// which this database cannot undo. Now it names the mismatch — where the
/// file was pulled from, and that its receipts were pushed there — and
/// advises undoing only a receipt this database holds.
#[test]
fn receipts_with_a_snapshot_of_another_database_name_the_mismatch() {
    let w = common::World::loaded("receipts_elsewhere", "plan").with_shared_snapshot();
    let receipt = w.push_confirmed();
    let other = TestDb::create("receipts_other");
    let before = whole_database_state(&other.url);
    let run = sandbox(&[
        "receipts",
        "--database-url",
        &other.url,
        "--snapshot",
        w.snap(),
    ]);
    run.code(0)
        .stdout_has(&receipt)
        .stdout_has(&format!(
            "1 receipt(s) ({receipt}) are kept only in {}, which was pulled from \
             postgres://postgres@",
            w.snap()
        ))
        .stdout_has("they were pushed there. To see or undo them, pass that database");
    assert!(
        !run.stdout.contains("Undo the latest applied push"),
        "advice this database cannot follow: {}",
        run.show()
    );
    before.assert_same(&whole_database_state(&other.url), "receipts reads only");
    // Against the database it was pushed to, the advice stands.
    sandbox(&[
        "receipts",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
    ])
    .code(0)
    .stdout_has(&format!(
        "Undo the latest applied push with: sandbox rollback --receipt {receipt}"
    ));
}

/// W17: a duration flag takes milliseconds or a number with a unit as
/// Postgres writes it; anything else is a usage error (exit 2) naming the
/// flag, the value and the forms it takes. Before, `--statement-timeout
/// 50ms` was refused with "invalid digit found in string", naming no unit.
/// Refused before any connection: the URL points nowhere.
#[test]
fn a_duration_flag_names_the_forms_it_takes() {
    let nowhere = "postgres://postgres@127.0.0.1:1/none";
    for (command, flag, value) in [
        ("pull", "--statement-timeout", "50x"),
        ("push", "--statement-timeout", "ten"),
        ("push", "--lock-timeout", "5m"),
        ("rollback", "--lock-timeout", "5 sec"),
        ("rollback", "--statement-timeout", "0.5ms"),
    ] {
        let mut args = vec![command, "--database-url", nowhere, flag, value];
        if command == "rollback" {
            args.extend(["--receipt", "00000000-0000-0000-0000-000000000000"]);
        }
        let run = sandbox(&args);
        run.code(2).error_has(&[
            flag,
            &format!("'{value}'"),
            "50ms, 2s, 1.5s, 1min",
            "number of milliseconds",
        ]);
    }
    sandbox(&["push", "--database-url", nowhere, "--lock-timeout", "0s"])
        .code(2)
        .error_has(&["--lock-timeout", "0 is not in 1..=2147483647"]);
}
