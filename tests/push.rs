//! End to end: the real `sandbox` binary against a database of its own per
//! test — fixtures load → pull → rehearse → push → rollback — plus drift,
//! concurrent pushes, held locks, refused rehearsals and the `diff --sql`
//! script. Every assertion reads the values back from Postgres.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{admin_url, postgres_admin, replace_db, require_tool, sandbox_bin, TestDb};
use postgres_sync::{Client, SimpleQueryMessage};

// ---------------------------------------------------------------------------
// Running the binary

/// One finished run of the binary.
struct Run {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from_output(what: String, out: Output) -> Run {
        Run {
            what,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "`{}` exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    fn ok(&self) -> &Run {
        self.expect_code(0)
    }

    fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "`{}`: stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "`{}`: stderr lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The binary with an environment that cannot leak into the test: no
/// database URL or plan from the caller's shell.
fn command(args: &[&str]) -> Command {
    let mut c = Command::new(sandbox_bin());
    c.args(args)
        .env_remove("SANDBOX_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("SANDBOX_PLAN")
        .env_remove("SANDBOX_SEEDS")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn sandbox(args: &[&str]) -> Run {
    let out = command(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", sandbox_bin().display()));
    Run::from_output(format!("sandbox {}", args.join(" ")), out)
}

/// One pulled and rehearsed snapshot of the plan fixtures, for the tests
/// that need a passing rehearsal but are about what happens after it. The
/// fixtures are deterministic, so it matches every freshly loaded database;
/// the drift check would refuse otherwise (and the drift test asserts that
/// only the table it changed is reported). Pull and rehearse themselves are
/// exercised end to end by the full-loop test.
fn shared_snapshot() -> &'static [u8] {
    static SHARED: OnceLock<Vec<u8>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let w = World::rehearsed("shared");
        std::fs::read(&w.snapshot).expect("read the rehearsed snapshot")
    })
}

fn load_fixtures(url: &str, variant: &str) {
    sandbox(&[
        "fixtures",
        "load",
        "--database-url",
        url,
        "--variant",
        variant,
    ])
    .ok();
}

/// A test database holding the fixtures, and a folder for snapshot files.
struct World {
    db: TestDb,
    dir: tempfile::TempDir,
    snapshot: PathBuf,
}

impl World {
    /// Loads the fixtures and pulls them into `snapshot.sqlite`.
    fn pulled(tag: &str, variant: &str) -> World {
        let db = TestDb::create(tag);
        load_fixtures(&db.url, variant);
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshot = dir.path().join("snapshot.sqlite");
        let w = World { db, dir, snapshot };
        w.pull_to(&w.snapshot);
        w
    }

    /// Loads, pulls and rehearses (which must pass) the plan variant.
    fn rehearsed(tag: &str) -> World {
        let w = World::pulled(tag, "plan");
        w.rehearse().ok().stdout_has("PASSED");
        w
    }

    /// Loads the plan fixtures and copies in the shared rehearsed snapshot:
    /// the state `rehearsed` reaches, without pulling and rehearsing again.
    fn fresh(tag: &str) -> World {
        let db = TestDb::create(tag);
        load_fixtures(&db.url, "plan");
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshot = dir.path().join("snapshot.sqlite");
        std::fs::write(&snapshot, shared_snapshot()).expect("write snapshot");
        World { db, dir, snapshot }
    }

    fn url(&self) -> &str {
        &self.db.url
    }

    fn snap(&self) -> &str {
        self.snapshot.to_str().expect("utf-8 path")
    }

    fn pull_to(&self, out: &Path) {
        let out = out.to_str().expect("utf-8 path");
        sandbox(&["pull", "--database-url", self.url(), "--out", out]).ok();
    }

    fn rehearse(&self) -> Run {
        sandbox(&["rehearse", "--snapshot", self.snap()])
    }

    fn push(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "push",
            "--database-url",
            self.url(),
            "--snapshot",
            self.snap(),
        ];
        args.extend_from_slice(extra);
        sandbox(&args)
    }

    fn rollback(&self, receipt: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "rollback",
            "--database-url",
            self.url(),
            "--receipt",
            receipt,
        ];
        args.extend_from_slice(extra);
        sandbox(&args)
    }

    fn client(&self) -> Client {
        self.db.client()
    }
}

// ---------------------------------------------------------------------------
// Reading Postgres back

/// Rows as text, through the simple protocol (NULL as "NULL").
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

fn scalar(c: &mut Client, sql: &str) -> String {
    let rows = text_rows(c, sql);
    assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
    rows[0][0].clone()
}

fn count(c: &mut Client, sql: &str) -> i64 {
    scalar(c, sql)
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: not a number ({e})"))
}

fn table_rows(c: &mut Client, table: &str) -> i64 {
    count(c, &format!("SELECT count(*) FROM public.{table}"))
}

fn table_exists(c: &mut Client, table: &str) -> bool {
    scalar(
        c,
        &format!("SELECT to_regclass('public.{table}') IS NOT NULL"),
    ) == "t"
}

fn column_exists(c: &mut Client, table: &str, column: &str) -> bool {
    count(
        c,
        &format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name = '{table}' AND column_name = '{column}'"
        ),
    ) == 1
}

fn sandbox_schema_exists(c: &mut Client) -> bool {
    count(
        c,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'sandbox'",
    ) == 1
}

/// id → md5 of an expression over the row `t`.
fn row_hashes(c: &mut Client, table: &str, expr: &str) -> BTreeMap<String, String> {
    text_rows(
        c,
        &format!("SELECT t.id::text, md5({expr}) FROM public.{table} t"),
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

/// The protected tables, row by row. `jtbd_library` is hashed without the
/// column the plan adds, the same expression before and after the push.
fn protected_hashes(c: &mut Client) -> BTreeMap<&'static str, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in ["prompts", "agents", "personas", "workflows"] {
        out.insert(t, row_hashes(c, t, "t::text"));
    }
    out.insert(
        "jtbd_library",
        row_hashes(
            c,
            "jtbd_library",
            "(to_jsonb(t) - 'strategic_priority_id')::text",
        ),
    );
    out
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
    let mut out = BTreeMap::new();
    for t in tables {
        let key: Vec<String> = text_rows(
            c,
            &format!(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'public.\"{t}\"'::regclass \
                 AND i.indisprimary ORDER BY a.attnum"
            ),
        )
        .into_iter()
        .map(|r| format!("t.\"{}\"", r[0]))
        .collect();
        assert!(!key.is_empty(), "table {t} has no primary key");
        let rows = text_rows(
            c,
            &format!(
                "SELECT ROW({})::text, md5(t::text) FROM public.\"{t}\" t",
                key.join(", ")
            ),
        );
        let n = rows.len();
        let map: BTreeMap<String, String> = rows
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(map.len(), n, "{t}: duplicate keys");
        out.insert(t, map);
    }
    out
}

/// The shape of schema public: columns, constraints and trigger states.
fn public_shape(c: &mut Client) -> Vec<Vec<String>> {
    let mut rows = text_rows(
        c,
        "SELECT 'column', table_name, column_name, ordinal_position::text, data_type, is_nullable, \
                coalesce(column_default, '') \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 2, 4",
    );
    rows.extend(text_rows(
        c,
        "SELECT 'constraint', cl.relname, con.conname, pg_get_constraintdef(con.oid) \
         FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname = 'public' ORDER BY 2, 3",
    ));
    rows.extend(triggers(c));
    rows
}

/// User triggers of schema public and whether they are enabled.
fn triggers(c: &mut Client) -> Vec<Vec<String>> {
    text_rows(
        c,
        "SELECT 'trigger', cl.relname, t.tgname, t.tgenabled::text FROM pg_trigger t \
         JOIN pg_class cl ON cl.oid = t.tgrelid JOIN pg_namespace n ON n.oid = cl.relnamespace \
         WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 2, 3",
    )
}

fn receipts(c: &mut Client) -> Vec<(String, String)> {
    text_rows(
        c,
        "SELECT id::text, status FROM sandbox.receipts ORDER BY pushed_at",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

const CREATED_TABLES: [&str; 3] = ["strategic_priorities", "tools", "tasks"];

/// The push wrote nothing: no created table, no added column, no receipt
/// schema, and every row of schema public as it was.
fn assert_nothing_written(
    c: &mut Client,
    before: &BTreeMap<String, BTreeMap<String, String>>,
    shape: &[Vec<String>],
) {
    for t in CREATED_TABLES {
        assert!(!table_exists(c, t), "table {t} exists: the push wrote");
    }
    assert!(
        !column_exists(c, "jtbd_library", "strategic_priority_id"),
        "jtbd_library.strategic_priority_id exists: the push wrote"
    );
    assert!(
        !sandbox_schema_exists(c),
        "schema sandbox exists: a receipt was written"
    );
    assert_state_eq(before, &public_state(c), "before", "after the refused push");
    assert_eq!(
        shape,
        public_shape(c).as_slice(),
        "the schema of public changed"
    );
}

/// Compares two states table by table, naming the first differing rows.
fn assert_state_eq(
    a: &BTreeMap<String, BTreeMap<String, String>>,
    b: &BTreeMap<String, BTreeMap<String, String>>,
    a_name: &str,
    b_name: &str,
) {
    let ta: BTreeSet<&String> = a.keys().collect();
    let tb: BTreeSet<&String> = b.keys().collect();
    assert_eq!(ta, tb, "tables differ between {a_name} and {b_name}");
    for (t, rows_a) in a {
        let rows_b = &b[t];
        if rows_a == rows_b {
            continue;
        }
        let differing: Vec<&String> = rows_a
            .keys()
            .chain(rows_b.keys())
            .filter(|k| rows_a.get(*k) != rows_b.get(*k))
            .take(5)
            .collect();
        panic!(
            "{t} differs between {a_name} ({} rows) and {b_name} ({} rows); first keys: {differing:?}",
            rows_a.len(),
            rows_b.len()
        );
    }
}

/// Every number the seed plan promises, read from Postgres after a push.
fn assert_plan_applied(c: &mut Client) {
    assert_eq!(table_rows(c, "strategic_priorities"), 7);
    assert_eq!(table_rows(c, "tools"), 150);
    assert_eq!(table_rows(c, "workflows"), 368);
    assert_eq!(table_rows(c, "tasks"), 343);
    assert_eq!(table_rows(c, "jtbd_library"), 371);
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        ),
        105
    );
    // The linked rows are exactly the Medical Affairs JTBDs, each to the SP
    // its `function` names.
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM jtbd_library j JOIN strategic_priorities sp \
             ON sp.id = j.strategic_priority_id \
             WHERE sp.code = j.function AND j.jtbd_code LIKE 'JTBD-MA-%'"
        ),
        105
    );
    let total: i64 = [
        "prompts",
        "jtbd_library",
        "workflows",
        "agents",
        "personas",
        "strategic_priorities",
        "tools",
        "tasks",
    ]
    .iter()
    .map(|t| table_rows(c, t))
    .sum();
    assert_eq!(total, 5209, "total rows of the 8 plan tables");
    let per_sp = text_rows(
        c,
        "SELECT sp.code, count(j.id) FROM strategic_priorities sp \
         LEFT JOIN jtbd_library j ON j.strategic_priority_id = sp.id GROUP BY sp.code ORDER BY sp.code",
    );
    let expected: Vec<Vec<String>> = [
        ("SP01", 17),
        ("SP02", 19),
        ("SP03", 18),
        ("SP04", 14),
        ("SP05", 15),
        ("SP06", 8),
        ("SP07", 14),
    ]
    .iter()
    .map(|(sp, n)| vec![sp.to_string(), n.to_string()])
    .collect();
    assert_eq!(per_sp, expected, "JTBDs per strategic priority");
    let by_source = text_rows(
        c,
        "SELECT count(*) FILTER (WHERE definition->>'source' = 'dh_workflow'), \
                count(*) FILTER (WHERE definition->>'source' LIKE '%Operational Library%'), \
                count(*) FILTER (WHERE coalesce(definition->>'source', '') <> 'dh_workflow' \
                                   AND coalesce(definition->>'source', '') NOT LIKE '%Operational Library%') \
         FROM workflows",
    );
    assert_eq!(
        by_source,
        vec![vec!["116", "111", "141"]],
        "workflows by source"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM tasks t LEFT JOIN workflows w ON w.id = t.workflow_id WHERE w.id IS NULL"
        ),
        0,
        "tasks whose workflow does not exist"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM tasks t JOIN workflows w ON w.id = t.workflow_id \
             WHERE w.definition->>'source' = 'dh_workflow'"
        ),
        343,
        "tasks linked to a migrated dh_workflow"
    );
    assert_plan_file_checks(c);
}

/// Every verification query and guard of the plan file, run as written.
fn assert_plan_file_checks(c: &mut Client) {
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/plan.json"))
            .expect("schema/plan.json"),
    )
    .expect("plan.json is JSON");
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let verification = plan["verification"].as_array().expect("verification list");
    assert!(!verification.is_empty());
    for v in verification {
        let sql = v["sql"].as_str().expect("sql");
        let rows = text_rows(c, sql);
        let expected: Vec<Vec<String>> = if let Some(e) = v.get("expect") {
            vec![vec![text(e)]]
        } else {
            v["expect_rows"]
                .as_array()
                .expect("expect or expect_rows")
                .iter()
                .map(|r| r.as_array().expect("row").iter().map(text).collect())
                .collect()
        };
        assert_eq!(rows, expected, "verification '{}' on Postgres", v["name"]);
    }
    for g in plan["guards"].as_array().expect("guards list") {
        let rows = text_rows(c, g["sql"].as_str().expect("sql"));
        assert!(
            rows.is_empty(),
            "guard '{}' found rows: {rows:?}",
            g["name"]
        );
    }
}

fn jtbd_updated_at(c: &mut Client) -> BTreeMap<String, String> {
    text_rows(c, "SELECT id::text, updated_at::text FROM jtbd_library")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

fn trigger_enabled(c: &mut Client, name: &str) -> String {
    scalar(
        c,
        &format!("SELECT tgenabled::text FROM pg_trigger WHERE tgname = '{name}'"),
    )
}

// ---------------------------------------------------------------------------
// 1 + 2: the full loop, then a second push

#[test]
fn full_loop_applies_the_plan_and_keeps_protected_rows_identical() {
    let w = World::rehearsed("loop");
    let mut c = w.client();
    let before = protected_hashes(&mut c);
    let before_state = public_state(&mut c);
    let before_updated = jtbd_updated_at(&mut c);
    let before_triggers = triggers(&mut c);
    let before_shape = public_shape(&mut c);
    assert_eq!(trigger_enabled(&mut c, "jtbd_library_set_updated_at"), "O");
    assert_eq!(before["workflows"].len(), 141);
    assert_eq!(before["jtbd_library"].len(), 371);

    // A dry run checks everything and writes nothing.
    w.push(&[]).ok().stdout_has("Dry run");
    assert_nothing_written(&mut c, &before_state, &before_shape);

    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    assert_plan_applied(&mut c);

    let after = protected_hashes(&mut c);
    for t in ["prompts", "agents", "personas", "jtbd_library"] {
        assert_state_eq(
            &BTreeMap::from([(t.to_string(), before[t].clone())]),
            &BTreeMap::from([(t.to_string(), after[t].clone())]),
            "before the push",
            "after it",
        );
    }
    // Workflows: every pre-existing row byte-identical, 227 new ones.
    let kept: BTreeMap<String, String> = after["workflows"]
        .iter()
        .filter(|(id, _)| before["workflows"].contains_key(*id))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(kept, before["workflows"], "pre-existing workflows changed");
    assert_eq!(after["workflows"].len() - kept.len(), 227);
    // The updated_at trigger was held off for the link update and is back on.
    assert_eq!(
        jtbd_updated_at(&mut c),
        before_updated,
        "jtbd_library.updated_at moved"
    );
    assert_eq!(trigger_enabled(&mut c, "jtbd_library_set_updated_at"), "O");
    assert_eq!(triggers(&mut c), before_triggers, "a trigger changed state");
    // Tables the plan only reads are untouched.
    let after_state = public_state(&mut c);
    for t in [
        "dh_domain",
        "dh_use_case",
        "dh_workflow",
        "dh_task",
        "dh_tool",
        "tenants",
        "profiles",
    ] {
        assert_eq!(before_state[t], after_state[t], "{t} changed");
    }
    let r = receipts(&mut c);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "applied");

    // 2: pushing the same snapshot again is a no-op.
    w.push(&["--confirm"]).ok().stdout_has("Already applied");
    assert_eq!(receipts(&mut c), r, "a second receipt was written");
    assert_state_eq(
        &after_state,
        &public_state(&mut c),
        "after the push",
        "after the second push",
    );
    assert_plan_applied(&mut c);
}

// ---------------------------------------------------------------------------
// 3: rollback

#[test]
fn rollback_restores_every_row_and_a_new_push_applies_again() {
    let w = World::fresh("rollback");
    let mut c = w.client();
    let before_state = public_state(&mut c);
    let before_shape = public_shape(&mut c);

    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    let receipt = receipts(&mut c)[0].0.clone();
    let pushed_state = public_state(&mut c);
    let pushed_shape = public_shape(&mut c);

    // A dry run changes nothing.
    w.rollback(&receipt, &[]).ok().stdout_has("Dry run");
    assert_state_eq(
        &pushed_state,
        &public_state(&mut c),
        "after the push",
        "after the dry run",
    );
    assert_eq!(pushed_shape, public_shape(&mut c));
    assert_eq!(
        receipts(&mut c),
        vec![(receipt.clone(), "applied".to_string())]
    );

    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("Rolled back");
    assert_state_eq(
        &before_state,
        &public_state(&mut c),
        "before the push",
        "after the rollback",
    );
    for t in CREATED_TABLES {
        assert!(!table_exists(&mut c, t), "{t} survived the rollback");
    }
    assert!(!column_exists(
        &mut c,
        "jtbd_library",
        "strategic_priority_id"
    ));
    assert_eq!(
        before_shape,
        public_shape(&mut c),
        "columns, constraints or triggers differ"
    );
    assert_eq!(
        receipts(&mut c),
        vec![(receipt.clone(), "rolled_back".to_string())]
    );
    assert_eq!(
        scalar(
            &mut c,
            &format!(
                "SELECT rolled_back_at IS NOT NULL FROM sandbox.receipts WHERE id = '{receipt}'"
            )
        ),
        "t"
    );

    // The same receipt cannot be undone twice.
    w.rollback(&receipt, &["--confirm"])
        .expect_code(1)
        .stderr_has("already rolled back");

    // The snapshot still matches the remote: the push applies again.
    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    let r = receipts(&mut c);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0], (receipt.clone(), "rolled_back".to_string()));
    assert_ne!(r[1].0, receipt);
    assert_eq!(r[1].1, "applied");
    assert_plan_applied(&mut c);
    assert_state_eq(
        &pushed_state,
        &public_state(&mut c),
        "the first push",
        "the second push",
    );
}

// ---------------------------------------------------------------------------
// 4: drift at the remote

#[test]
fn drift_at_the_remote_refuses_and_writes_nothing() {
    // Each case: a fresh database with the same (deterministic) fixtures,
    // which the shared snapshot matches until the case changes it. The SQL
    // returns the key of the row it touched; `detail` is what the refusal
    // must then say about it.
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "update a prompt",
            "UPDATE prompts SET name = name || ' (edited)' \
             WHERE id = (SELECT min(id::text)::uuid FROM prompts) RETURNING id::text",
            "prompts unchanged since pull",
            "row {} changed",
        ),
        (
            "insert a dh_tool",
            "INSERT INTO dh_tool SELECT (jsonb_populate_record(NULL::dh_tool, to_jsonb(t) || \
             jsonb_build_object('id', gen_random_uuid(), 'code', t.code || '-drift', 'unique_id', NULL))).* \
             FROM dh_tool t ORDER BY t.id LIMIT 1 RETURNING id::text",
            "dh_tool unchanged since pull",
            "row {} added",
        ),
        (
            "delete a persona",
            "DELETE FROM personas WHERE id = (SELECT min(id::text)::uuid FROM personas) RETURNING id::text",
            "personas unchanged since pull",
            "row {} deleted",
        ),
        (
            "add a column to agents",
            "ALTER TABLE agents ADD COLUMN x int",
            "agents columns unchanged",
            "added: x integer",
        ),
    ];
    for (what, sql, check, detail) in cases {
        let w = World::fresh("drift");
        let mut c = w.client();
        let touched = text_rows(&mut c, sql);
        let detail = match touched.as_slice() {
            [] => detail.to_string(),
            [row] => detail.replace("{}", &row[0]),
            more => panic!("{what} touched {} rows", more.len()),
        };
        let state = public_state(&mut c);
        let shape = public_shape(&mut c);
        let run = w.push(&["--confirm"]);
        run.expect_code(1)
            .stderr_has(check)
            .stderr_has(&detail)
            .stderr_has("nothing was written");
        // Exactly the one drifted table is named: the other tables matched.
        let failed: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("  - "))
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "{what}: expected one failed check, got {failed:?}"
        );
        assert_nothing_written(&mut c, &state, &shape);
    }
}

// ---------------------------------------------------------------------------
// 5: concurrent pushes

#[test]
fn concurrent_pushes_apply_once() {
    let w = World::fresh("concurrent");
    let args = [
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--confirm",
        "--lock-timeout",
        "120000",
    ];
    let children: Vec<_> = (0..4)
        .map(|_| {
            command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sandbox push")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .enumerate()
        .map(|(i, ch)| {
            Run::from_output(
                format!("concurrent push #{i}"),
                ch.wait_with_output().expect("wait"),
            )
        })
        .collect();
    let applied = runs
        .iter()
        .filter(|r| r.code == 0 && r.stdout.contains("Applied diff"))
        .count();
    assert_eq!(
        applied,
        1,
        "exactly one push applies: {:#?}",
        summary(&runs)
    );
    for r in runs.iter().filter(|r| !r.stdout.contains("Applied diff")) {
        let already = r.code == 0 && r.stdout.contains("Already applied");
        let refused = r.code == 1 && r.stderr.contains("nothing was written");
        assert!(
            already || refused,
            "a losing push neither saw the receipt nor refused: {:#?}",
            summary(&runs)
        );
    }
    let mut c = w.client();
    assert_plan_applied(&mut c);
    assert_eq!(receipts(&mut c).len(), 1, "receipts");
}

fn summary(runs: &[Run]) -> Vec<(i32, String, String)> {
    runs.iter()
        .map(|r| {
            (
                r.code,
                r.stdout.lines().last().unwrap_or("").to_string(),
                r.stderr.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 6: a failed or missing rehearsal refuses

#[test]
fn push_refuses_without_a_passing_rehearsal() {
    let w = World::pulled("refuse", "conflicts");
    let mut c = w.client();
    let state = public_state(&mut c);
    let shape = public_shape(&mut c);

    w.rehearse().expect_code(1);
    for extra in [&["--confirm"][..], &[][..]] {
        w.push(extra)
            .expect_code(1)
            .stderr_has("rehearsal")
            .stderr_has("failed");
    }
    assert_nothing_written(&mut c, &state, &shape);

    // A snapshot that was never rehearsed.
    let fresh = w.dir.path().join("never-rehearsed.sqlite");
    w.pull_to(&fresh);
    sandbox(&[
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        fresh.to_str().unwrap(),
        "--confirm",
    ])
    .expect_code(1)
    .stderr_has("no rehearsal");
    assert_nothing_written(&mut c, &state, &shape);
}

// ---------------------------------------------------------------------------
// 7: locks held by other sessions

#[test]
fn a_held_lock_refuses_quickly_and_names_the_blocker() {
    let w = World::fresh("locked");
    let mut c = w.client();
    let state = public_state(&mut c);
    let shape = public_shape(&mut c);
    // What a push costs here without waiting (the machine may be busy): a
    // refusal must come within that plus the 1 s lock timeout and some
    // slack, well before the 10 s default lock timeout would end.
    let started = Instant::now();
    w.push(&[]).ok().stdout_has("Dry run");
    let quick = started.elapsed() + Duration::from_secs(7);

    let mut blocker = postgres_admin(&format!(
        "{}?application_name=sandbox_test_blocker",
        w.url()
    ));
    let pid = count(&mut blocker, "SELECT pg_backend_pid()");
    {
        let mut tx = blocker.transaction().expect("BEGIN");
        tx.batch_execute("UPDATE workflows SET name = name WHERE id = (SELECT min(id::text)::uuid FROM workflows)")
            .expect("UPDATE");
        let started = Instant::now();
        let run = w.push(&["--confirm", "--lock-timeout", "1000"]);
        let took = started.elapsed();
        run.expect_code(1)
            .stderr_has(&format!("pid {pid}"))
            .stderr_has("sandbox_test_blocker")
            .stderr_has("workflows")
            .stderr_has("Nothing was written");
        assert!(took < quick, "refusing took {took:?} (budget {quick:?})");
        tx.rollback().expect("ROLLBACK");
    }
    assert_nothing_written(&mut c, &state, &shape);

    // Another push or rollback holding the sandbox lock.
    blocker
        .batch_execute("SELECT pg_advisory_lock(x'53414e44424f5831'::int8)")
        .expect("advisory lock");
    let started = Instant::now();
    w.push(&["--confirm", "--lock-timeout", "500"])
        .expect_code(1)
        .stderr_has("another `sandbox push` or `sandbox rollback` is running");
    let took = started.elapsed();
    assert!(took < quick, "refusing took {took:?} (budget {quick:?})");
    blocker
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .expect("unlock");
    assert_nothing_written(&mut c, &state, &shape);
}

// ---------------------------------------------------------------------------
// 8: `diff --sql` is exactly the push

/// A byte copy of another test database (CREATE DATABASE … TEMPLATE),
/// dropped afterwards.
struct CopyDb {
    name: String,
    url: String,
}

impl CopyDb {
    fn of(src: &TestDb) -> CopyDb {
        let name = format!("{}_copy", src.name);
        let mut admin = postgres_admin(&admin_url());
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", src.name);
        // The source may still show a closing session for a moment.
        let mut tries = 0;
        while let Err(e) = admin.batch_execute(&sql) {
            tries += 1;
            assert!(tries < 50, "{sql}: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        CopyDb {
            url: replace_db(&admin_url(), &name),
            name,
        }
    }
}

impl Drop for CopyDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres_sync::Client::connect(&admin_url(), postgres_sync::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[test]
fn diff_sql_script_is_exactly_the_push() {
    let w = World::fresh("sqlscript");
    let copy = CopyDb::of(&w.db);
    let script = w.dir.path().join("push.sql");
    sandbox(&[
        "diff",
        "--snapshot",
        w.snap(),
        "--sql",
        script.to_str().unwrap(),
    ])
    .ok();
    w.push(&["--confirm"]).ok().stdout_has("Applied diff");

    let psql = Command::new(require_tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &copy.url, "-f"])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("psql (install postgresql-client)");
    let run = Run::from_output(format!("psql -f {}", script.display()), psql);
    run.ok();
    assert!(!run.stderr.contains("ERROR"), "psql: {}", run.stderr);

    let mut copied = postgres_admin(&copy.url);
    assert_eq!(table_rows(&mut copied, "strategic_priorities"), 7);
    assert_eq!(table_rows(&mut copied, "tools"), 150);
    assert_eq!(table_rows(&mut copied, "workflows"), 368);
    assert_eq!(table_rows(&mut copied, "tasks"), 343);
    assert_eq!(
        count(
            &mut copied,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        ),
        105
    );
    assert_plan_file_checks(&mut copied);
    // Row for row and column for column what the push produced (the push
    // also holds the updated_at trigger off, so updated_at must match too).
    let mut pushed = w.client();
    assert_state_eq(
        &public_state(&mut pushed),
        &public_state(&mut copied),
        "the pushed database",
        "the script's",
    );
    assert_eq!(
        public_shape(&mut pushed),
        public_shape(&mut copied),
        "schema differs"
    );
}
