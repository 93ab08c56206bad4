//! The loop's setting: a test database loaded with the bundled fixtures, a
//! private folder holding its snapshot, and the commands of the loop (pull,
//! rehearse, push, rollback) run against both, so that a test reads as its
//! scenario: `World::loaded("tag", "plan").with_sql(..).rehearsed()`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use super::db::{count, scalar, TestDb};
use super::run::{run_sandbox, sandbox, Proc, Run, Sandbox};
use super::state::{whole_database_state, DatabaseState};

pub struct World {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    /// Where pull writes and every other command reads the snapshot.
    pub snapshot: PathBuf,
    /// A plan folder every plan-reading command is given (`--plan`).
    plan: Option<String>,
}

impl World {
    /// A fresh database holding the `variant` fixtures; nothing pulled yet.
    pub fn loaded(tag: &str, variant: &str) -> World {
        World::loaded_into(TestDb::create(tag), variant)
    }

    /// The `variant` fixtures loaded into `db` (one made with options).
    pub fn loaded_into(db: TestDb, variant: &str) -> World {
        load_fixtures(&db.url, variant);
        World::in_db(db)
    }

    /// A world around `db` as it is (loaded by the test, as another role,
    /// say): a private folder for its snapshot.
    pub fn in_db(db: TestDb) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshot = dir.path().join("snapshot.sqlite");
        World {
            db,
            dir,
            snapshot,
            plan: None,
        }
    }

    /// A fresh database holding nothing but what `sql` creates: for a small
    /// plan of the test's own.
    pub fn empty(tag: &str, sql: &str) -> World {
        World::in_db(TestDb::create(tag)).with_sql(sql)
    }

    /// Then `sql` on top: what a real project adds around the plan's tables.
    pub fn with_sql(self, sql: &str) -> World {
        if !sql.is_empty() {
            self.exec(sql);
        }
        self
    }

    /// Pull, rehearse, diff and push of this world use the plan in `plan`.
    pub fn with_plan(mut self, plan: &Path) -> World {
        self.plan = Some(plan.to_str().expect("utf-8 plan path").to_string());
        self
    }

    /// Pulled into the snapshot (which must succeed).
    pub fn pulled(self) -> World {
        self.pull(&[]).ok();
        self
    }

    /// Pulled and rehearsed (which must pass).
    pub fn rehearsed(self) -> World {
        let w = self.pulled();
        w.rehearse(&[]).ok().stdout_has("PASSED");
        w
    }

    /// The state `rehearsed` reaches with the built-in plan on the plan
    /// fixtures, without pulling and rehearsing again: a copy of one snapshot
    /// the test binary pulled and rehearsed once. The fixtures are
    /// deterministic, so it matches every freshly loaded database as long as
    /// what the test added does not change the pulled tables.
    pub fn with_shared_snapshot(self) -> World {
        static SHARED: OnceLock<Vec<u8>> = OnceLock::new();
        let bytes = SHARED.get_or_init(|| {
            let w = World::loaded("shared", "plan").rehearsed();
            std::fs::read(&w.snapshot).expect("read the rehearsed snapshot")
        });
        std::fs::write(&self.snapshot, bytes).expect("write the shared snapshot");
        self
    }

    pub fn url(&self) -> &str {
        &self.db.url
    }

    pub fn snap(&self) -> &str {
        self.snapshot.to_str().expect("utf-8 snapshot path")
    }

    /// `args`, then `--plan` when this world has one, then `extra`.
    fn with_plan_args<'a>(&'a self, args: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        if let Some(plan) = &self.plan {
            all.extend(["--plan", plan.as_str()]);
        }
        all.extend_from_slice(extra);
        all
    }

    pub fn pull(&self, extra: &[&str]) -> Run {
        sandbox(&self.with_plan_args(
            &["pull", "--database-url", self.url(), "--out", self.snap()],
            extra,
        ))
    }

    pub fn rehearse(&self, extra: &[&str]) -> Run {
        sandbox(&self.with_plan_args(&["rehearse", "--snapshot", self.snap()], extra))
    }

    /// `rehearse --json`: the run and its report.
    pub fn rehearse_json(&self, extra: &[&str]) -> (Run, Value) {
        let run = self.rehearse(&[&["--json"], extra].concat());
        let report = json_of(&run);
        (run, report)
    }

    pub fn diff(&self, extra: &[&str]) -> Run {
        sandbox(&self.with_plan_args(&["diff", "--snapshot", self.snap()], extra))
    }

    pub fn push(&self, extra: &[&str]) -> Run {
        self.push_as(self.url(), extra)
    }

    /// `push --confirm`, which must apply: its receipt id.
    pub fn push_confirmed(&self) -> String {
        let run = self.push(&["--confirm"]);
        run.ok();
        run.receipt()
    }

    /// A push connecting with `url` (another role) to this world's database.
    pub fn push_as(&self, url: &str, extra: &[&str]) -> Run {
        sandbox(&self.with_plan_args(
            &["push", "--database-url", url, "--snapshot", self.snap()],
            extra,
        ))
    }

    /// `push --confirm` started in the background, waiting for its locks
    /// up to `lock_timeout_ms`: for a test that acts while it runs.
    pub fn push_spawned(&self, lock_timeout_ms: &str) -> Proc {
        Sandbox::new(&self.with_plan_args(
            &[
                "push",
                "--database-url",
                self.url(),
                "--snapshot",
                self.snap(),
            ],
            &["--confirm", "--lock-timeout", lock_timeout_ms],
        ))
        .spawn()
    }

    /// `rollback --confirm` of `receipt` started in the background (see
    /// [`World::push_spawned`]).
    pub fn rollback_spawned(&self, receipt: &str, lock_timeout_ms: &str) -> Proc {
        Sandbox::new(&[
            "rollback",
            "--database-url",
            self.url(),
            "--receipt",
            receipt,
            "--confirm",
            "--lock-timeout",
            lock_timeout_ms,
        ])
        .spawn()
    }

    pub fn rollback(&self, receipt: &str, extra: &[&str]) -> Run {
        self.rollback_as(self.url(), receipt, extra)
    }

    /// A rollback connecting with `url` (another role, a proxy).
    pub fn rollback_as(&self, url: &str, receipt: &str, extra: &[&str]) -> Run {
        let mut args = vec!["rollback", "--database-url", url, "--receipt", receipt];
        args.extend_from_slice(extra);
        sandbox(&args)
    }

    /// Rolls `receipt` back (`--confirm`, it must succeed) and asserts the
    /// whole database is `before` again, but for the tool's own `sandbox`
    /// schema (the receipt stays, marked rolled back).
    pub fn rollback_restores(&self, receipt: &str, before: &DatabaseState, context: &str) {
        self.rollback(receipt, &["--confirm"]).ok();
        before
            .without_schema("sandbox")
            .assert_same(&self.state().without_schema("sandbox"), context);
    }

    /// `args` as a user runs them with the database URL exported
    /// (`SANDBOX_DATABASE_URL`) instead of given as a flag.
    pub fn run_exported(&self, args: &[&str]) -> Run {
        run_sandbox(args, &[("SANDBOX_DATABASE_URL", self.url())])
    }

    /// The whole database now.
    pub fn state(&self) -> DatabaseState {
        whole_database_state(self.url())
    }

    /// Runs `sql` (the app's or a test's writes); it must succeed.
    pub fn exec(&self, sql: &str) {
        self.db
            .client()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn count(&self, sql: &str) -> i64 {
        count(&mut self.db.client(), sql)
    }

    pub fn scalar(&self, sql: &str) -> String {
        scalar(&mut self.db.client(), sql)
    }

    /// Host, port, user and password of the test database's URL: how another
    /// connection (postgres_fdw, dblink) reaches the same database.
    pub fn loopback(&self) -> (String, u16, String, Option<String>) {
        let url = url::Url::parse(self.url()).expect("test database URL parses");
        (
            url.host_str().unwrap_or("127.0.0.1").to_string(),
            url.port().unwrap_or(5432),
            url.username().to_string(),
            url.password().map(str::to_string),
        )
    }

    /// The database's `dblink` connection string (a literal for SQL: no
    /// quote in it), after `CREATE EXTENSION dblink`, which must be
    /// available (it ships with the server's contrib modules).
    pub fn with_dblink(&self) -> String {
        let available =
            self.count("SELECT count(*) FROM pg_available_extensions WHERE name = 'dblink'");
        assert_eq!(
            available, 1,
            "dblink is not available to the test Postgres: it ships with the server's contrib \
             modules (Debian: postgresql-15)"
        );
        self.exec("CREATE EXTENSION dblink");
        let (host, port, user, password) = self.loopback();
        let password = password
            .map(|p| format!(" password={p}"))
            .unwrap_or_default();
        format!(
            "host={host} port={port} dbname={} user={user}{password}",
            self.db.name
        )
    }
}

/// `sandbox fixtures load` of `variant` into the database at `url`; it
/// must succeed.
pub fn load_fixtures(url: &str, variant: &str) {
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

/// A run's stdout as JSON (`--json`); not JSON fails the test, showing it.
pub fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.show()))
}

/// `rehearse --json` of `snapshot` (no server): the exit code and the report.
pub fn rehearse_report(snapshot: &Path, extra: &[&str]) -> (i32, Value) {
    let path = snapshot.to_str().expect("utf-8 snapshot path");
    let run = sandbox(&[&["rehearse", "--json", "--snapshot", path], extra].concat());
    (run.code, json_of(&run))
}

/// The ids of the phases a rehearsal report says ran, in order.
pub fn phase_ids(report: &Value) -> Vec<&str> {
    report["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases in {report:#}"))
        .iter()
        .map(|p| p["id"].as_str().expect("a phase id"))
        .collect()
}

/// The checks of a rehearsal report that did not pass.
pub fn failed_checks(report: &Value) -> Vec<&Value> {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {report:#}"))
        .iter()
        .filter(|c| c["ok"] != true)
        .collect()
}

/// The check of a rehearsal report named `name`.
pub fn check_named<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {report:#}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

/// The rows a report's check `c` names, as text.
pub fn check_rows(c: &Value) -> Vec<&str> {
    c["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {c:#}"))
        .iter()
        .map(|r| r.as_str().expect("a row is text"))
        .collect()
}

/// `(table.name, kind, detail)` of each item a rehearsal report leaves to
/// the preflight ("checked on Postgres by the preflight").
pub fn preflight(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!(
                    "{}.{}",
                    p["table"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                ),
                p["kind"].as_str().unwrap().to_string(),
                p["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Values of `column` in the staged new workflows (the ones the plan adds).
pub fn staged_new_values(snap: &Path, column: &str) -> Vec<Option<String>> {
    let conn = rusqlite::Connection::open(snap).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT CAST(\"{column}\" AS TEXT) FROM staged_workflows \
             WHERE id NOT IN (SELECT id FROM workflows) ORDER BY id"
        ))
        .unwrap();
    let v = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    v
}

/// What the plan's tools.metadata must equal, from Postgres itself: each
/// dh_tool row's `to_jsonb` without the id and name the plan keeps as
/// columns, as `[id, json]`, in UTC (the session keeps that time zone).
pub fn tool_metadata_in_postgres(c: &mut postgres_sync::Client) -> Vec<Vec<String>> {
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    super::db::text_rows(
        c,
        "SELECT id::text, (to_jsonb(d) - 'id' - 'name')::text FROM public.dh_tool d ORDER BY id",
    )
}

/// The JSON the rehearsal staged as tool `id`'s `metadata`, parsed.
pub fn staged_tool_metadata(snapshot: &Path, id: &str) -> Value {
    let conn = rusqlite::Connection::open(snapshot).unwrap();
    let staged: String = conn
        .query_row(
            "SELECT metadata FROM staged_tools WHERE id = ?",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&staged).unwrap()
}

/// `sql` run on the snapshot file, every value as text.
pub fn staged_rows(snapshot: &std::path::Path, sql: &str) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(snapshot).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, String>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows
}
