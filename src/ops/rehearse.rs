//! `sandbox rehearse`: run every phase of the plan on the staged copy inside
//! the snapshot, check everything, and record the result in the file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::catalog::{ColumnMeta, TableMeta};
use crate::db::generated::{stale_columns, StaleColumn};
use crate::db::sqlite::{table_exists, Snapshot};
use crate::db::staging::{
    constraint_checks, keyless_new_rows_check, preflight_items, record_left_to_postgres,
    PreflightItem, LEFT_TO_POSTGRES_DDL,
};
use crate::plan::checks::{evaluate, evaluate_guard, Check, CheckKind, PhaseTiming};
use crate::plan::collate::ColumnCollations;
use crate::plan::sql::{self as plansql, Rules};
use crate::plan::stage::{
    self, combined_staged_checksum, staged, staged_checksum, staged_meta, working_meta,
    StagedTable, STAGED_PREFIX,
};
use crate::plan::{Phase, Plan};
use crate::types::short_hash as short;
use crate::types::{quote_ident, TableChecksum};

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub rehearsal_id: i64,
    pub snapshot: String,
    pub plan_name: String,
    pub plan_hash: String,
    pub snapshot_checksum: String,
    pub staged_checksum: String,
    pub passed: bool,
    pub checks: Vec<Check>,
    pub phases: Vec<PhaseTiming>,
    pub staged: Vec<StagedTable>,
    /// What only Postgres can decide: checked on Postgres by the preflight.
    pub preflight: Vec<PreflightItem>,
    pub millis: f64,
}

impl RehearsalReport {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

const RESULT_DDL: &str = "
CREATE TABLE IF NOT EXISTS _sandbox_rehearsals (
  id INTEGER PRIMARY KEY,
  rehearsed_at TEXT NOT NULL,
  plan_name TEXT NOT NULL,
  plan_hash TEXT NOT NULL,
  snapshot_checksum TEXT NOT NULL,
  staged_checksum TEXT NOT NULL,
  passed INTEGER NOT NULL,
  checks_total INTEGER NOT NULL,
  checks_failed INTEGER NOT NULL,
  millis REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS _sandbox_checks (
  rehearsal_id INTEGER NOT NULL REFERENCES _sandbox_rehearsals(id),
  seq INTEGER NOT NULL,
  phase TEXT NOT NULL,
  kind TEXT NOT NULL,
  check_name TEXT NOT NULL,
  expected TEXT NOT NULL,
  actual TEXT NOT NULL,
  ok INTEGER NOT NULL,
  row_count INTEGER NOT NULL,
  PRIMARY KEY (rehearsal_id, seq)
);
CREATE TABLE IF NOT EXISTS _sandbox_preflight_items (
  rehearsal_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  table_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  detail TEXT NOT NULL,
  PRIMARY KEY (rehearsal_id, seq)
);
CREATE TABLE IF NOT EXISTS _sandbox_phase_timings (
  rehearsal_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  phase TEXT NOT NULL,
  name TEXT NOT NULL,
  millis REAL NOT NULL,
  PRIMARY KEY (rehearsal_id, seq)
);
CREATE TABLE IF NOT EXISTS _sandbox_check_rows (
  rehearsal_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  row_no INTEGER NOT NULL,
  row_text TEXT NOT NULL,
  PRIMARY KEY (rehearsal_id, seq, row_no)
);
";

/// Views for a person with a DB browser. No JSON function in a stored view:
/// a browser whose SQLite lacks JSON1 (or trips on one malformed value)
/// fails on the whole view ("database is busy" in DB Browser 3.12). The
/// plan's own report views (`report_views` in plan.json) are therefore
/// computed once here, by the bundled SQLite, into plain tables
/// `_sandbox_report_<name>` that the stored views read.
const REPORT_VIEWS: &str = "
CREATE VIEW report_checks AS
  SELECT c.seq, c.phase, c.kind, c.check_name, c.expected, c.actual,
         CASE c.ok WHEN 1 THEN 'ok' ELSE 'FAILED' END AS result
  FROM _sandbox_checks c
  WHERE c.rehearsal_id = (SELECT max(id) FROM _sandbox_rehearsals)
  ORDER BY c.seq;
CREATE VIEW report_failures AS
  SELECT c.phase, c.check_name, r.row_no, r.row_text
  FROM _sandbox_check_rows r
  JOIN _sandbox_checks c ON c.rehearsal_id = r.rehearsal_id AND c.seq = r.seq
  WHERE r.rehearsal_id = (SELECT max(id) FROM _sandbox_rehearsals) AND c.ok = 0
  ORDER BY c.seq, r.row_no;
CREATE VIEW report_preflight AS
  SELECT p.table_name, p.kind, p.name, p.detail
  FROM _sandbox_preflight_items p
  WHERE p.rehearsal_id = (SELECT max(id) FROM _sandbox_rehearsals)
  ORDER BY p.seq;
";

/// Drops every `report_*` view: they read staged tables, which are rebuilt.
fn drop_report_views(conn: &Connection) -> Result<()> {
    let names: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM main.sqlite_master WHERE type = 'view' AND name LIKE 'report\\_%' ESCAPE '\\'",
        )?;
        let v = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        v
    };
    for n in names {
        conn.execute_batch(&format!(
            "DROP VIEW main.{}; DROP TABLE IF EXISTS main.{};",
            quote_ident(&n),
            quote_ident(&format!("_sandbox_report_{n}"))
        ))?;
    }
    // Left by older versions.
    conn.execute_batch("DROP TABLE IF EXISTS main._sandbox_workflow_sources")?;
    Ok(())
}

pub struct RehearseOptions<'a> {
    pub snapshot: &'a Path,
    pub plan: &'a Plan,
}

/// Calls `f` with each working row of a table that has a key, in the
/// table's order: its key text and its values as Postgres prints them, in
/// the order of `meta`'s columns. A table without a primary key has none
/// to record. Rows are streamed, never collected: a written table of 300k
/// rows held as maps took gigabytes (S7).
fn for_each_working_row(
    conn: &Connection,
    meta: &TableMeta,
    mut f: impl FnMut(String, Vec<Option<String>>) -> Result<()>,
) -> Result<()> {
    let key = meta.primary_key();
    if key.is_empty() {
        return Ok(());
    }
    let key_idx: Vec<usize> = key
        .iter()
        .filter_map(|k| meta.columns.iter().position(|c| &c.name == k))
        .collect();
    if key_idx.len() != key.len() {
        return Ok(());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM temp.{}",
        crate::db::sqlite::ident_list(&meta.column_names()),
        quote_ident(&meta.name)
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let mut values = Vec::with_capacity(meta.columns.len());
        for (i, c) in meta.columns.iter().enumerate() {
            values.push(
                crate::db::sqlite::from_sqlite(c, r.get_ref(i)?)
                    .with_context(|| format!("working table {}", meta.name))?,
            );
        }
        // A row with a NULL key cannot be matched to a Postgres row; the
        // diff refuses it by name, so it has nothing to record here.
        let k: Option<Vec<&str>> = key_idx.iter().map(|i| values[*i].as_deref()).collect();
        if let Some(k) = k {
            let text = crate::types::row_key(k.into_iter().map(Some));
            f(text, values)?;
        }
    }
    Ok(())
}

/// A written table as it stood when a phase began, kept in a TEMP table of
/// the rehearsal's connection (on disk, like the working copies) instead of
/// in memory: the phase's changes are found by looking each row up by key.
struct BeforePhase {
    /// The TEMP table: `ord` (the working table's order), `key` (the row's
    /// key text) and one column per entry of `columns`.
    store: String,
    /// The working table's columns then, by name.
    columns: Vec<String>,
}

impl BeforePhase {
    /// Copies the working rows of `meta`'s table into a new TEMP table.
    fn keep(conn: &Connection, meta: &TableMeta) -> Result<BeforePhase> {
        let store = unique_temp_name(conn, "_sandbox_before")?;
        let columns = meta.column_names();
        let value_columns: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE {} (ord INTEGER PRIMARY KEY, key TEXT NOT NULL{})",
            quote_ident(&store),
            value_columns
                .iter()
                .map(|c| format!(", {c}"))
                .collect::<String>()
        ))?;
        {
            let mut put = conn.prepare(&format!(
                "INSERT INTO temp.{} VALUES (NULL, ?{})",
                quote_ident(&store),
                ", ?".repeat(columns.len())
            ))?;
            for_each_working_row(conn, meta, |key, values| {
                put.execute(rusqlite::params_from_iter(
                    std::iter::once(Some(key)).chain(values),
                ))?;
                Ok(())
            })?;
        }
        conn.execute_batch(&format!(
            "CREATE INDEX temp.{} ON {} (key)",
            quote_ident(&format!("{store}_key")),
            quote_ident(&store)
        ))?;
        Ok(BeforePhase { store, columns })
    }

    /// The row of `key` as the phase found it (the last one kept under
    /// that key, as a map by key would hold it), in `columns`' order.
    fn row(&self, conn: &Connection, key: &str) -> Result<Option<Vec<Option<String>>>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM temp.{} WHERE key = ?1 ORDER BY ord DESC LIMIT 1",
            self.value_list(),
            quote_ident(&self.store)
        ))?;
        let mut rows = stmt.query([key])?;
        match rows.next()? {
            Some(r) => Ok(Some(
                (0..self.columns.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect::<rusqlite::Result<_>>()?,
            )),
            None => Ok(None),
        }
    }

    /// One column's value in the row of `key`: None when the row or the
    /// column was not there.
    fn value(&self, conn: &Connection, key: &str, column: &str) -> Result<Option<Option<String>>> {
        let Some(i) = self.columns.iter().position(|c| c == column) else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT c{i} FROM temp.{} WHERE key = ?1 ORDER BY ord DESC LIMIT 1",
            quote_ident(&self.store)
        ))?;
        let mut rows = stmt.query([key])?;
        match rows.next()? {
            Some(r) => Ok(Some(r.get(0)?)),
            None => Ok(None),
        }
    }

    /// Each kept row in the working table's order: key and values.
    fn for_each(
        &self,
        conn: &Connection,
        mut f: impl FnMut(String, Vec<Option<String>>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = conn.prepare(&format!(
            "SELECT key, {} FROM temp.{} ORDER BY ord",
            self.value_list(),
            quote_ident(&self.store)
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let values = (1..=self.columns.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<rusqlite::Result<_>>()?;
            f(r.get(0)?, values)?;
        }
        Ok(())
    }

    fn value_list(&self) -> String {
        (0..self.columns.len())
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn drop_store(self, conn: &Connection) -> Result<()> {
        conn.execute_batch(&format!("DROP TABLE temp.{}", quote_ident(&self.store)))?;
        Ok(())
    }
}

/// `base`, or `base` with a number, naming no table of the TEMP schema.
fn unique_temp_name(conn: &Connection, base: &str) -> Result<String> {
    for n in 0.. {
        let name = if n == 0 {
            base.to_string()
        } else {
            format!("{base}_{n}")
        };
        if !table_exists(conn, "temp", &name)? {
            return Ok(name);
        }
    }
    unreachable!("the loop returns")
}

/// A row as the JSON object `_sandbox_phase_rows` keeps: its columns in
/// the table's order, a column the row's `names` lack (not added yet) left
/// out.
fn row_json(meta: &TableMeta, names: &[String], row: &[Option<String>]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = meta
        .columns
        .iter()
        .filter_map(|c| {
            let v = &row[names.iter().position(|n| n == &c.name)?];
            Some((
                c.name.clone(),
                v.clone().map_or(serde_json::Value::Null, Into::into),
            ))
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Removes a previous rehearsal's staged tables; the pulled ones stay.
fn drop_staged(conn: &Connection) -> Result<()> {
    let names: Vec<String> = {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'staged\\_%' ESCAPE '\\'")?;
        let v = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        v
    };
    drop_report_views(conn)?;
    for n in names {
        conn.execute_batch(&format!("DROP TABLE {}", quote_ident(&n)))?;
    }
    Ok(())
}

pub fn rehearse(opts: &RehearseOptions<'_>) -> Result<RehearsalReport> {
    // A bare SQLite error ("database disk image is malformed") would not say
    // which file; errors that already explain themselves are left as they are.
    rehearse_file(opts).map_err(|e| {
        if crate::error::failure_of(&e).is_some() {
            e
        } else {
            e.context(format!(
                "cannot rehearse the snapshot {}",
                opts.snapshot.display()
            ))
        }
    })
}

fn rehearse_file(opts: &RehearseOptions<'_>) -> Result<RehearsalReport> {
    let started = Instant::now();
    let snapshot = Snapshot::open(opts.snapshot)?;
    let plan = opts.plan;
    created_names_are_free(&snapshot, plan)?;
    let conn = &snapshot.conn;
    // The plan's LIKE must mean the same on SQLite as on Postgres.
    conn.execute_batch("PRAGMA case_sensitive_like = ON; PRAGMA foreign_keys = OFF;")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = run_in_transaction(&snapshot, plan, started);
    match result {
        Ok(report) => {
            conn.execute_batch("COMMIT")?;
            Ok(report)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The tables the plan creates must not be named like the snapshot's own
/// objects (see [`crate::plan::reserved_name`]): `<pulled table>_jsonb`
/// is the row-JSON view of a pulled table, `sqlite_*` SQLite's own. Before,
/// the rehearsal stopped on a raw SQLite error ("view … already exists",
/// "object name reserved for internal use"). An environment error (exit
/// 2) naming each and what to do.
fn created_names_are_free(snapshot: &Snapshot, plan: &Plan) -> Result<()> {
    let pulled: Vec<&str> = snapshot
        .tables
        .iter()
        .map(|t| t.meta.name.as_str())
        .collect();
    let taken: Vec<String> = plan
        .schema
        .tables
        .iter()
        .filter_map(|t| {
            crate::plan::reserved_name(&t.name, &pulled).map(|why| format!("{} ({why})", t.name))
        })
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    Err(crate::error::environment(format!(
        "the plan creates tables named like the snapshot's own objects: {}. The rehearsal \
         stages the plan's tables in the snapshot under their own names, where these are taken; \
         rename them in the plan's schema file (target.json) and in the phases that write them",
        taken.join("; ")
    )))
}

/// What the steps of one rehearsal share: the snapshot and plan, the names a
/// phase may use, and the checks and timings gathered so far.
struct Rehearsal<'a> {
    snapshot: &'a Snapshot,
    plan: &'a Plan,
    conn: &'a Connection,
    /// Pulled tables and the tables the plan creates: reads of these are
    /// recorded.
    known: HashSet<String>,
    /// The plan's policies and `pulled_at`, bound by name in phase SQL.
    params: Vec<(String, String)>,
    /// Every table whose staged form differs from the pull.
    view_tables: Vec<String>,
    checks: Vec<Check>,
    timings: Vec<PhaseTiming>,
    /// A phase failed: later phases and the final checks do not run, and
    /// checks that cannot read what it left are skipped.
    broken: bool,
    /// The written tables whose rows a phase's changes are measured from
    /// (pulled ones from the start, created ones once a phase wrote them):
    /// what a phase changed is recorded so the push applies it in that
    /// phase, where its expectations (and every later phase's) look.
    tracked: HashSet<String>,
    /// For the phase running: each table it writes that is tracked, as it
    /// stood when the phase's SQL began (after the phase's DDL; nothing
    /// else writes a working table between two phases that write it).
    before: HashMap<String, BeforePhase>,
    /// The pulled tables the plan only reads that the phases see through a
    /// view comparing their numbers as numbers (`stage::create_numeric_view`).
    numeric_views: Vec<String>,
    /// Generated columns whose working value is stale (`db::generated`),
    /// by (table, column), as the last phase left them.
    stale: BTreeMap<(String, String), StaleColumn>,
    /// Expectations and verification queries that read a stale generated
    /// column: their number is decided on Postgres by the preflight.
    stale_reads: Vec<PreflightItem>,
    /// The collation of each column the phases compare otherwise than
    /// SQLite would (`db::collation::collation_of`), for `plan::collate`.
    collations: Arc<ColumnCollations>,
    /// The text comparisons the rehearsal's collations could not decide as
    /// Postgres does (`db::text_order`), since the last query took them.
    text_doubts: crate::db::text_order::Doubts,
    /// Expectations, verification queries and guards whose answer rests on
    /// such a comparison: Postgres's is checked by the preflight.
    undecided_text: Vec<PreflightItem>,
}

fn run_in_transaction(
    snapshot: &Snapshot,
    plan: &Plan,
    started: Instant,
) -> Result<RehearsalReport> {
    let conn = &snapshot.conn;
    conn.execute_batch(RESULT_DDL)?;
    let mut r = Rehearsal::new(snapshot, plan);
    r.check_snapshot_unchanged()?;
    r.checks.push(existing_targets_check(snapshot, plan)?);
    r.checks.push(primary_keys_check(snapshot, plan));
    r.stage_written_tables()?;
    for (phase, sql_text) in plan.file.phases.iter().zip(&plan.phase_sql) {
        r.run_phase(phase, sql_text)?;
        if r.broken {
            // Later phases build on this one: running them would only
            // report the consequences of the failure.
            break;
        }
    }
    if !r.broken {
        r.final_checks();
    }
    stage::drop_numeric_views(conn, &r.numeric_views)?;
    r.store_staged_tables()?;
    let mut preflight = r.catalog_checks()?;
    // The database's event triggers the plan's DDL fires (pull records them).
    let moves_sequences = preflight.iter().any(|p| p.kind == "sequence");
    preflight.extend(crate::db::event_triggers::preflight_items(
        &crate::db::event_triggers::read(&snapshot.conn)?,
        &crate::db::event_triggers::plan_commands(plan, snapshot, moves_sequences),
    ));
    preflight.extend(std::mem::take(&mut r.stale_reads));
    preflight.extend(std::mem::take(&mut r.undecided_text));
    preflight.extend(derived_name_items(snapshot)?);
    r.protected_rows_checks()?;
    r.write_order_checks()?;
    let staged_list = r.staged_list()?;
    let staged_sum = combined_staged_checksum(&staged_list);
    let passed = r.checks.iter().all(|c| c.ok);
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let id = r.record(&staged_sum, passed, millis, &preflight)?;
    r.create_report_views()?;
    Ok(RehearsalReport {
        rehearsal_id: id,
        snapshot: snapshot.path.display().to_string(),
        plan_name: plan.file.name.clone(),
        plan_hash: plan.hash.clone(),
        snapshot_checksum: snapshot.info.snapshot_checksum.clone(),
        staged_checksum: staged_sum,
        passed,
        checks: r.checks,
        phases: r.timings,
        staged: staged_list,
        preflight,
        millis,
    })
}

/// The rehearsal collation of each column of the pulled tables and the
/// tables and columns the plan creates, by table. A created column takes
/// its type as the pull recorded it (`Snapshot::target_types`); one whose
/// type was not recorded (a snapshot pulled before they were) takes the
/// labels a pulled column of that type has.
fn column_collations(snapshot: &Snapshot, plan: &Plan) -> ColumnCollations {
    use crate::db::collation::collation_of;
    let pulled: Vec<&ColumnMeta> = snapshot
        .tables
        .iter()
        .flat_map(|t| &t.meta.columns)
        .collect();
    let like_pulled = |c: &ColumnMeta| -> ColumnMeta {
        let mut c = c.clone();
        if snapshot.target_types.contains_key(&c.pg_type) {
            return c;
        }
        if let Some(p) = pulled.iter().find(|p| p.pg_type == c.pg_type) {
            c.enum_labels.clone_from(&p.enum_labels);
            c.domain.clone_from(&p.domain);
        }
        c
    };
    let mut out = ColumnCollations::new();
    let mut add = |table: &str, c: &ColumnMeta| {
        if let Some(coll) = collation_of(c) {
            out.entry(table.to_ascii_lowercase())
                .or_default()
                .insert(c.name.to_ascii_lowercase(), coll);
        }
    };
    for t in &snapshot.tables {
        for c in &t.meta.columns {
            add(&t.meta.name, c);
        }
    }
    for t in &plan.schema.tables {
        for c in &stage::target_meta(t, &snapshot.target_types).columns {
            add(&t.name, &like_pulled(c));
        }
    }
    for a in &plan.schema.added_columns {
        let c = stage::planned_column(&snapshot.target_types, &a.column, 0);
        add(&a.table, &like_pulled(&c));
    }
    out
}

impl<'a> Rehearsal<'a> {
    fn new(snapshot: &'a Snapshot, plan: &'a Plan) -> Rehearsal<'a> {
        let known: HashSet<String> = snapshot
            .tables
            .iter()
            .map(|t| t.meta.name.clone())
            .chain(plan.created_tables())
            .collect();
        let mut params = plan.policy_values();
        params.push(("pulled_at".to_string(), snapshot.info.pulled_at.clone()));
        Rehearsal {
            snapshot,
            plan,
            conn: &snapshot.conn,
            known,
            params,
            view_tables: plan.staged_tables(),
            checks: Vec::new(),
            timings: Vec::new(),
            broken: false,
            tracked: HashSet::new(),
            before: HashMap::new(),
            numeric_views: Vec::new(),
            stale: BTreeMap::new(),
            stale_reads: Vec::new(),
            collations: Arc::new(column_collations(snapshot, plan)),
            text_doubts: Default::default(),
            undecided_text: Vec::new(),
        }
    }

    /// What the checks' queries may touch: every known table, writing none.
    fn read_only(&self) -> Rules {
        Rules {
            known_tables: self.known.clone(),
            writes: HashSet::new(),
            collations: Arc::clone(&self.collations),
        }
    }

    /// A pulled table edited by hand (say, in a DB browser) would make every
    /// later number meaningless. The tables the plan reads or writes are
    /// re-hashed, as `diff` and push re-hash them: the phases, the staged
    /// tables and so the diff are computed from them. A table outside both
    /// (at 100x the app's 0.6 GB `prompts`, which took most of a
    /// rehearsal's time to re-hash) feeds nothing the push writes or
    /// compares: a verification query counting it is checked on Postgres
    /// as "unchanged by this transaction", and a --strict drift check
    /// compares Postgres with the checksum recorded at pull, not with the
    /// file. Its row count is still checked (through its smallest index),
    /// which catches rows deleted or added by hand.
    fn check_snapshot_unchanged(&mut self) -> Result<()> {
        let depends = self.plan.read_set();
        let written = self.plan.write_set();
        for t in &self.snapshot.tables {
            let name = &t.meta.name;
            if depends.contains(name) || written.contains(name) {
                let now = self.snapshot.checksum_of(name, &t.meta)?;
                let mut c = Check::equal(
                    "snapshot",
                    &format!("{name} unchanged since pull"),
                    CheckKind::Integrity,
                    format!("{} rows, {}", t.rows, short(&t.checksum)),
                    format!("{} rows, {}", now.rows(), short(&now.hex())),
                );
                c.ok = now.hex() == t.checksum && now.rows() == t.rows;
                self.checks.push(c);
            } else {
                let rows: i64 = self
                    .conn
                    .query_row(
                        &format!("SELECT count(*) FROM main.{}", quote_ident(name)),
                        [],
                        |r| r.get(0),
                    )
                    .with_context(|| format!("cannot count the rows of {name} in the snapshot"))?;
                let mut c = Check::equal(
                    "snapshot",
                    &format!(
                        "{name} has its pulled row count (not re-hashed: the plan neither reads \
                         nor writes it)"
                    ),
                    CheckKind::Integrity,
                    format!("{} rows", t.rows),
                    format!("{rows} rows"),
                );
                c.ok = u64::try_from(rows).is_ok_and(|n| n == t.rows);
                self.checks.push(c);
            }
        }
        Ok(())
    }

    /// Replaces a previous rehearsal's staged tables with working copies of
    /// the pulled tables the plan writes, and gives phase SQL its functions,
    /// seed tables and jsonb views.
    fn stage_written_tables(&mut self) -> Result<()> {
        let conn = self.conn;
        drop_staged(conn)?;
        // What each phase inserted, updated and deleted: the push applies
        // the diff phase by phase and checks each phase's expectations in
        // between. (The three `_sandbox_row_*` tables are older versions'.)
        conn.execute_batch(
            "DROP TABLE IF EXISTS _sandbox_row_phases;
             DROP TABLE IF EXISTS _sandbox_row_deletes;
             DROP TABLE IF EXISTS _sandbox_row_updates;
             DROP TABLE IF EXISTS _sandbox_phase_rows;
             CREATE TABLE _sandbox_phase_rows (seq INTEGER PRIMARY KEY, table_name TEXT NOT NULL,
                                               phase TEXT NOT NULL, op TEXT NOT NULL,
                                               row_key TEXT NOT NULL, data TEXT NOT NULL);
             DROP TABLE IF EXISTS _sandbox_left_to_postgres;",
        )?;
        conn.execute_batch(LEFT_TO_POSTGRES_DDL)?;
        let pulled_metas: Vec<TableMeta> = self
            .snapshot
            .tables
            .iter()
            .map(|t| t.meta.clone())
            .collect();
        self.text_doubts = plansql::register_functions(conn, &pulled_metas)?;
        // The enums of the columns the plan adds and creates compare in
        // their declared order too.
        crate::db::collation::register_enums(
            conn,
            &[TableMeta {
                name: String::new(),
                role: crate::catalog::TableRole::Target,
                columns: self.snapshot.target_types.values().cloned().collect(),
                constraints: vec![],
            }],
        )?;
        plansql::create_seed_tables(conn, &self.plan.seeds)?;
        for name in &self.plan.written_pulled_tables() {
            let meta = &self
                .snapshot
                .table(name)
                .ok_or_else(|| {
                    crate::error::environment(format!(
                        "the snapshot has no table {name}, which the plan writes"
                    ))
                })?
                .meta;
            stage::stage_pulled(conn, meta)?;
            self.tracked.insert(name.clone());
        }
        let written = self.plan.written_pulled_tables();
        for t in &self.snapshot.tables {
            if !written.contains(&t.meta.name) && stage::create_numeric_view(conn, &t.meta)? {
                self.numeric_views.push(t.meta.name.clone());
            }
        }
        plansql::create_jsonb_views(conn, &pulled_metas)?;
        Ok(())
    }

    /// Runs one phase: its DDL and SQL, then its conflicts, the tables it
    /// read, the values it wrote and its expectations, in that order.
    fn run_phase(&mut self, phase: &Phase, sql_text: &str) -> Result<()> {
        let t0 = Instant::now();
        stage::apply_phase_ddl(self.conn, self.snapshot, self.plan, &phase.id)
            .with_context(|| format!("phase {} ({}): the plan's DDL", phase.id, phase.name))?;
        // The rows as the DDL left them are what the phase starts from: a
        // column added with a DEFAULT holds it in every row (as on
        // Postgres), which the phase did not write.
        self.keep_before(phase)?;
        let rules = Rules {
            known_tables: self.known.clone(),
            writes: phase.writes.iter().cloned().collect(),
            collations: Arc::clone(&self.collations),
        };
        let run = plansql::run_sql(self.conn, sql_text, &rules, &self.params);
        // What the phase left to Postgres is recorded before anything else
        // reads its rows, which then hold NULL there as always.
        let mut phase_checks = Vec::new();
        for t in &phase.writes {
            if table_exists(self.conn, "temp", t)? {
                let meta = working_meta(self.conn, self.snapshot, self.plan, t)?;
                let working = format!("temp.{}", quote_ident(t));
                record_left_to_postgres(self.conn, &meta, &working)?;
                // A new row without its key cannot be recorded, diffed or
                // pushed: named here, and nothing after it runs on it.
                if let Some(c) = keyless_new_rows_check(self.conn, &meta, &working, &phase.id)? {
                    if !c.ok {
                        self.broken = true;
                        phase_checks.push(c);
                    }
                }
                let pulled = self.snapshot.table(t).is_some();
                if let Some(c) =
                    crate::db::staging::reinserted_rows_check(self.conn, &meta, pulled, &phase.id)?
                {
                    phase_checks.push(c);
                }
                if let Some(c) =
                    crate::db::staging::excluded_left_check(self.conn, &meta, &phase.id)?
                {
                    phase_checks.push(c);
                }
            }
        }
        let mut reads = run.reads.clone();
        let mut columns_read = run.columns_read.clone();
        if let Some(f) = &run.failure {
            phase_checks.push(plansql::failure_check(
                &phase.id,
                "phase SQL runs",
                &phase.sql,
                f,
            ));
            self.broken = true;
        }
        phase_checks.extend(self.conflict_checks(phase, &mut reads, &mut columns_read));
        phase_checks.push(undeclared_reads_check(phase, &reads));
        let (mut inexact, rewritten) = self.settle_phase_values(phase)?;
        let stale_before = self.stale.clone();
        self.update_stale_columns(phase)?;
        if let Some(c) = self.stale_reads_check(phase, &stale_before, &columns_read) {
            phase_checks.push(c);
        }
        if !rewritten.is_empty() {
            // Not a failure: the staged rows now hold what Postgres will
            // store, and the report shows each value before and after.
            let n = rewritten.len() as u64;
            phase_checks.push(Check {
                phase: phase.id.clone(),
                name: "values written as the text Postgres stores".into(),
                kind: CheckKind::Conflict,
                expected: "the text Postgres prints for each value".into(),
                actual: format!("{n} values rewritten to it"),
                ok: true,
                rows: rewritten
                    .into_iter()
                    .take(crate::plan::checks::MAX_ROWS)
                    .collect(),
                row_count: n,
            });
        }
        inexact.extend(self.rounded_by_real(phase)?);
        // Values Postgres would not print cannot be read back, checksummed
        // or pushed: later phases would build on them.
        self.broken |= !inexact.is_empty();
        if !self.broken {
            self.record_phase_changes(phase)?;
        }
        self.forget_before()?;
        phase_checks.push(Check::no_rows(
            &phase.id,
            "values stay exact (jsonb, no number or time through a REAL)",
            CheckKind::Conflict,
            inexact,
        ));
        for exp in &phase.expectations {
            let what = format!("phase {} expectation '{}'", phase.id, exp.name);
            phase_checks.push(self.query_check(
                &phase.id,
                &exp.name,
                &exp.sql,
                &format!("plan.json expectation '{}'", exp.name),
                &what,
                |rows| evaluate(&phase.id, CheckKind::Expectation, exp, rows),
            ));
        }
        self.checks.extend(phase_checks);
        self.timings.push(PhaseTiming {
            id: phase.id.clone(),
            name: phase.name.clone(),
            millis: t0.elapsed().as_secs_f64() * 1000.0,
        });
        Ok(())
    }

    /// Recomputes which generated columns of the tables `phase` writes hold
    /// a stale value (see `db::generated`); a column stale before keeps the
    /// phase that first made it so.
    fn update_stale_columns(&mut self, phase: &Phase) -> Result<()> {
        for t in &phase.writes {
            let Some(pulled) = self.snapshot.table(t) else {
                continue;
            };
            if !pulled.meta.columns.iter().any(|c| c.generated.is_some())
                || !table_exists(self.conn, "temp", t)?
            {
                continue;
            }
            let meta = working_meta(self.conn, self.snapshot, self.plan, t)?;
            let working = format!("temp.{}", quote_ident(t));
            let now = stale_columns(self.conn, &meta, &pulled.meta, &working, &phase.id)?;
            let before: BTreeMap<_, _> = self
                .stale
                .iter()
                .filter(|((table, _), _)| table == t)
                .map(|(k, s)| (k.clone(), s.since_phase.clone()))
                .collect();
            self.stale.retain(|(table, _), _| table != t);
            for mut s in now {
                let key = (s.table.clone(), s.column.clone());
                if let Some(since) = before.get(&key) {
                    s.since_phase = since.clone();
                }
                self.stale.insert(key, s);
            }
        }
        Ok(())
    }

    /// A phase's SQL or conflict query that read a generated column stale
    /// before or after it (its own changes included: the statements' order
    /// within the phase is not tracked) decided on a value Postgres does
    /// not hold: a failed check naming table, column and phase. None when
    /// no generated column is stale.
    fn stale_reads_check(
        &self,
        phase: &Phase,
        before: &BTreeMap<(String, String), StaleColumn>,
        columns_read: &BTreeSet<(String, String)>,
    ) -> Option<Check> {
        if before.is_empty() && self.stale.is_empty() {
            return None;
        }
        let rows: Vec<String> = before
            .iter()
            .chain(self.stale.iter())
            .filter(|(k, _)| columns_read.contains(k))
            .map(|(k, s)| (k.clone(), s))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .map(|s| {
                format!(
                    "phase {} reads {}: {} — checked on Postgres by the preflight, not by \
                     this rehearsal, which decided on the pulled value; to rehearse it, compute \
                     it from its inputs in the phase's SQL",
                    phase.id,
                    s.qualified(),
                    s.describe(),
                )
            })
            .collect();
        let mut c = Check::no_rows(
            &phase.id,
            "generated columns are not read after their inputs changed",
            CheckKind::Conflict,
            rows,
        );
        if !c.ok {
            // The advice is for a failure; a passing check reads as any other.
            c.expected = "0 rows: phase SQL and conflict queries read no generated column \
                          whose inputs the plan changed"
                .into();
        }
        Some(c)
    }

    /// The phase's conflict queries, run with the plan's parameters; the
    /// tables they read join the phase's reads.
    fn conflict_checks(
        &self,
        phase: &Phase,
        reads: &mut BTreeSet<String>,
        columns_read: &mut BTreeSet<(String, String)>,
    ) -> Vec<Check> {
        let read_only = self.read_only();
        let mut checks = Vec::new();
        for c in &phase.conflicts {
            let (rows, q) = plansql::query_rows(self.conn, &c.sql, &read_only, &self.params);
            reads.extend(q.reads);
            columns_read.extend(q.columns_read);
            checks.push(match q.failure {
                Some(f) => plansql::failure_check(
                    &phase.id,
                    &c.name,
                    &format!("plan.json conflict '{}'", c.name),
                    &f,
                ),
                None => Check::no_rows(
                    &phase.id,
                    &c.name,
                    CheckKind::Conflict,
                    rows.into_iter().map(|r| r.join(" | ")).collect(),
                ),
            });
        }
        checks
    }

    /// For the tables the phase writes: settles the values it left and
    /// returns those that would not stay exact, each naming the phase file.
    fn settle_phase_values(&self, phase: &Phase) -> Result<(Vec<String>, Vec<String>)> {
        let mut inexact = Vec::new();
        let mut rewritten = Vec::new();
        for t in &self.view_tables {
            if !phase.writes.contains(t) || !table_exists(self.conn, "temp", t)? {
                continue;
            }
            let meta = working_meta(self.conn, self.snapshot, self.plan, t)?;
            let settled = plansql::settle_values(self.conn, &meta)?;
            inexact.extend(
                settled
                    .inexact
                    .into_iter()
                    .map(|v| format!("{}: {v}", phase.sql)),
            );
            rewritten.extend(
                settled
                    .rewritten
                    .into_iter()
                    .map(|v| format!("{}: {v}", phase.sql)),
            );
        }
        Ok((inexact, rewritten))
    }

    /// Keeps, for each tracked table the phase writes, its rows as the
    /// phase finds them (see [`BeforePhase`]).
    fn keep_before(&mut self, phase: &Phase) -> Result<()> {
        for t in &phase.writes {
            if !self.tracked.contains(t) || !table_exists(self.conn, "temp", t)? {
                continue;
            }
            let meta = working_meta(self.conn, self.snapshot, self.plan, t)?;
            let kept = BeforePhase::keep(self.conn, &meta)?;
            if let Some(old) = self.before.insert(t.clone(), kept) {
                old.drop_store(self.conn)?;
            }
        }
        Ok(())
    }

    /// Removes the rows kept for the phase that ran.
    fn forget_before(&mut self) -> Result<()> {
        for (_, kept) in self.before.drain() {
            kept.drop_store(self.conn)?;
        }
        Ok(())
    }

    /// Records what the phase changed in each table it writes, by comparing
    /// the table after the phase with the table before it: rows inserted
    /// (as the phase left them), columns updated (with the values before
    /// the phase) and rows deleted (whole, as the phase found them). The
    /// push applies exactly these in this phase, so its expectations see on
    /// Postgres what they saw here, even where a later phase changes the
    /// same rows again. Both sides are streamed: the rows after the phase
    /// from the working table, those before it looked up by key.
    fn record_phase_changes(&mut self, phase: &Phase) -> Result<()> {
        let conn = self.conn;
        let mut put = conn.prepare_cached(
            "INSERT INTO _sandbox_phase_rows (table_name, phase, op, row_key, data) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for t in &phase.writes {
            if !table_exists(conn, "temp", t)? {
                continue;
            }
            let meta = working_meta(conn, self.snapshot, self.plan, t)?;
            let names = meta.column_names();
            let before = self.before.get(t);
            // Where each column sits among the columns the phase found.
            let was_at: Vec<Option<usize>> = match before {
                Some(b) => names
                    .iter()
                    .map(|n| b.columns.iter().position(|c| c == n))
                    .collect(),
                None => vec![None; names.len()],
            };
            let mut seen: HashSet<String> = HashSet::new();
            for_each_working_row(conn, &meta, |key, row| {
                let old = match before {
                    Some(b) => b.row(conn, &key)?,
                    None => None,
                };
                match old {
                    None => {
                        put.execute(params![
                            t,
                            phase.id,
                            "insert",
                            key,
                            row_json(&meta, &names, &row)
                        ])?;
                    }
                    Some(old) => {
                        let changes: Vec<serde_json::Value> = meta
                            .columns
                            .iter()
                            .zip(&row)
                            .zip(&was_at)
                            .filter_map(|((c, is), at)| {
                                let was = at.and_then(|j| old[j].clone());
                                (was != *is).then(|| serde_json::json!([c.name, was, is]))
                            })
                            .collect();
                        if !changes.is_empty() {
                            let data = serde_json::Value::Array(changes).to_string();
                            put.execute(params![t, phase.id, "update", key, data])?;
                        }
                    }
                }
                seen.insert(key);
                Ok(())
            })?;
            if let Some(b) = before {
                b.for_each(conn, |key, old| {
                    if !seen.contains(&key) {
                        let data = row_json(&meta, &b.columns, &old);
                        put.execute(params![t, phase.id, "delete", key, data])?;
                    }
                    Ok(())
                })?;
            }
            self.tracked.insert(t.clone());
        }
        Ok(())
    }

    /// The numeric values the phase wrote that may be a REAL rounded to
    /// SQLite's 15 digits: a numeric working column has TEXT affinity (so
    /// it compares as a number, see `db::collation`), which turns a REAL
    /// (`1.0 / 3`, `json_extract` of a long number) into its 15-digit text
    /// before any check sees it. Values the phase did not change are the
    /// pulled ones (or an earlier phase's), exact or named already.
    fn rounded_by_real(&self, phase: &Phase) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in &phase.writes {
            if !table_exists(self.conn, "temp", t)? {
                continue;
            }
            let meta = working_meta(self.conn, self.snapshot, self.plan, t)?;
            let key = meta.primary_key();
            if key.is_empty() {
                // Failed by name already: its rows cannot be told apart.
                continue;
            }
            let before = self.before.get(t);
            for c in meta.columns.iter().filter(|c| {
                matches!(
                    crate::types::exactness(&c.value_type()),
                    Some(crate::types::Exactness::Numeric { .. })
                )
            }) {
                let col = quote_ident(&c.name);
                let mut stmt = self.conn.prepare(&format!(
                    "SELECT {}, {col} FROM temp.{} WHERE typeof({col}) = 'text'",
                    crate::types::row_key_sql(&key, ""),
                    quote_ident(t)
                ))?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let (k, v): (String, String) = (r.get(0)?, r.get(1)?);
                    let Some(why) = plansql::rounded_by_real(&v) else {
                        continue;
                    };
                    // A value the phase found there is not its own.
                    let was = match before {
                        Some(b) => b.value(self.conn, &k, &c.name)?,
                        None => None,
                    };
                    if was != Some(Some(v)) {
                        out.push(format!("{}: {t}.{} of row {k}: {why}", phase.sql, c.name));
                    }
                }
            }
        }
        Ok(out)
    }

    /// A check query run without parameters: a query SQLite refuses is a
    /// failed check naming `what`, otherwise `judge` decides on its rows.
    /// A stale generated column it reads is listed for the preflight as
    /// read by `reader`: Postgres decides the number (the push checks it
    /// there), the rehearsal's is the pulled value's.
    fn query_check(
        &mut self,
        phase: &str,
        name: &str,
        sql: &str,
        what: &str,
        reader: &str,
        judge: impl FnOnce(&[Vec<String>]) -> Check,
    ) -> Check {
        // What staging and the phases compared is theirs, not this query's.
        self.text_doubts.take();
        let (rows, q) = plansql::query_rows(self.conn, sql, &self.read_only(), &[]);
        let doubts = self.text_doubts.take();
        if doubts.count > 0 {
            self.undecided_text
                .push(self.undecided_text_item(reader, &q.columns_read, &doubts));
        }
        for s in self.stale.values() {
            if q.columns_read
                .contains(&(s.table.clone(), s.column.clone()))
            {
                self.stale_reads.push(PreflightItem {
                    table: s.table.clone(),
                    kind: "generated_read".into(),
                    name: s.column.clone(),
                    detail: format!(
                        "{reader} reads it: {}; its number on Postgres is checked by the preflight",
                        s.describe()
                    ),
                });
            }
        }
        match q.failure {
            Some(f) => plansql::failure_check(phase, name, what, &f),
            None => judge(&rows),
        }
    }

    /// The preflight item of a check query (`reader`) whose answer rests on
    /// text comparisons the rehearsal could not decide as Postgres does
    /// (`doubts`), naming the collated text columns it read.
    fn undecided_text_item(
        &self,
        reader: &str,
        columns_read: &BTreeSet<(String, String)>,
        doubts: &crate::db::text_order::DoubtLog,
    ) -> PreflightItem {
        let text_columns: Vec<&(String, String)> = columns_read
            .iter()
            .filter(|(t, c)| {
                self.collations
                    .get(&t.to_ascii_lowercase())
                    .and_then(|cols| cols.get(&c.to_ascii_lowercase()))
                    .is_some_and(|coll| coll.starts_with(crate::db::text_order::DEFAULT_TEXT))
            })
            .collect();
        let columns = if text_columns.is_empty() {
            "text".to_string()
        } else {
            text_columns
                .iter()
                .map(|(t, c)| format!("{t}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut collations: Vec<&str> = doubts
            .examples
            .iter()
            .map(|d| d.collation.as_str())
            .collect();
        collations.dedup();
        let examples: Vec<String> = doubts
            .examples
            .iter()
            .map(|d| format!("'{}' and '{}'", d.a, d.b))
            .collect();
        PreflightItem {
            table: text_columns
                .first()
                .map(|(t, _)| t.clone())
                .unwrap_or_default(),
            kind: "text_order".into(),
            name: reader.to_string(),
            detail: format!(
                "compares {columns} under the collation {} in {} comparison(s) where the rehearsal \
                 cannot know Postgres's order (a space, punctuation or non-ASCII character where \
                 the texts first differ, or a collation it does not know), e.g. {}: the rehearsal \
                 ordered them by its own rule; Postgres's answer is checked by the preflight",
                collations.join(", "),
                doubts.count,
                examples.join(", ")
            ),
        }
    }

    /// The plan's verification queries and guards, after the last phase.
    fn final_checks(&mut self) {
        let mut checks = Vec::new();
        let plan = self.plan;
        for exp in &plan.file.verification {
            checks.push(self.query_check(
                "final",
                &exp.name,
                &exp.sql,
                &format!("plan.json verification '{}'", exp.name),
                &format!("verification '{}'", exp.name),
                |rows| evaluate("final", CheckKind::Verification, exp, rows),
            ));
        }
        for guard in &plan.file.guards {
            checks.push(self.query_check(
                "final",
                &guard.name,
                &guard.sql,
                &format!("plan.json guard '{}'", guard.name),
                &format!("guard '{}'", guard.name),
                |rows| evaluate_guard(guard, rows),
            ));
        }
        self.checks.extend(checks);
    }

    /// The working copies become the file's staged tables.
    fn store_staged_tables(&self) -> Result<()> {
        for t in &self.view_tables {
            if table_exists(self.conn, "temp", t)? {
                let meta = working_meta(self.conn, self.snapshot, self.plan, t)?;
                stage::store_staged(self.conn, &meta)?;
                if let Some(pulled) = self.snapshot.table(t) {
                    crate::db::generated::leave_stale_to_postgres(
                        self.conn,
                        &meta,
                        &pulled.meta,
                        &format!("main.{}", quote_ident(&staged(t))),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Every rule of the target's catalog SQLite can evaluate, on the rows
    /// the plan wrote; what it cannot, returned for the preflight.
    fn catalog_checks(&mut self) -> Result<Vec<PreflightItem>> {
        let conn = self.conn;
        let mut preflight = Vec::new();
        for t in &self.view_tables {
            if table_exists(conn, "main", &staged(t))? {
                let meta = staged_meta(conn, self.snapshot, self.plan, t)?;
                if let Some(c) = held_off_triggers_check(&meta, &self.plan.file.hold_off_triggers) {
                    self.checks.push(c);
                }
                match constraint_checks(conn, self.snapshot, &meta, STAGED_PREFIX) {
                    // A check a phase failed already (new rows without
                    // their key) is named once, at that phase.
                    Ok(c) => {
                        let named: HashSet<String> = self
                            .checks
                            .iter()
                            .filter(|c| !c.ok)
                            .map(|c| c.name.clone())
                            .collect();
                        self.checks
                            .extend(c.into_iter().filter(|c| c.ok || !named.contains(&c.name)));
                    }
                    // A failed phase may leave values these checks cannot read;
                    // the failure is already in the report.
                    Err(_) if self.broken => {}
                    Err(e) => return Err(e),
                }
                preflight.extend(preflight_items(conn, self.snapshot, &meta, STAGED_PREFIX)?);
            }
        }
        match crate::db::staging::referencing_rows_checks(conn, self.snapshot, STAGED_PREFIX) {
            Ok(c) => self.checks.extend(c),
            Err(_) if self.broken => {}
            Err(e) => return Err(e),
        }
        Ok(preflight)
    }

    /// The push's and the rollback's order of writes, replayed on the
    /// pulled rows (`write_order`): Postgres checks a UNIQUE that is not
    /// DEFERRABLE row by row, where the phases ran in the plan's own order,
    /// so a row taking a value another row still holds at that point is a
    /// failed check naming the constraint and both rows. Not run after a
    /// failed phase (its record of changes is incomplete) or when a written
    /// table has no primary key (the push cannot match its rows; that check
    /// fails already).
    fn write_order_checks(&mut self) -> Result<()> {
        if self.broken {
            return Ok(());
        }
        let mut metas = Vec::new();
        for name in &self.view_tables {
            if !table_exists(self.conn, "main", &staged(name))? {
                return Ok(());
            }
            let meta = staged_meta(self.conn, self.snapshot, self.plan, name)?;
            if meta.primary_key().is_empty() {
                return Ok(());
            }
            metas.push(meta);
        }
        let tables = crate::diff::table_diffs(self.snapshot, self.plan)?;
        let mut replay = Vec::new();
        for t in &tables {
            let Some(meta) = metas.iter().find(|m| m.name == t.table) else {
                continue;
            };
            let mut pulled = Vec::new();
            let mut added = Vec::new();
            if let Some(p) = self.snapshot.table(&t.table).filter(|_| !t.created) {
                let at: Vec<Option<usize>> = t
                    .columns
                    .iter()
                    .map(|c| p.meta.columns.iter().position(|m| m.name == c.name))
                    .collect();
                added = t
                    .columns
                    .iter()
                    .zip(&at)
                    .filter(|(_, i)| i.is_none())
                    .map(|(c, _)| c.name.clone())
                    .collect();
                self.snapshot.for_each_row(&t.table, &p.meta, |row| {
                    pulled.push(at.iter().map(|i| i.and_then(|i| row[i].clone())).collect());
                    Ok(())
                })?;
            }
            replay.push(crate::write_order::ReplayTable {
                diff: t,
                keys: crate::write_order::unique_keys(meta, t),
                added,
                pulled,
                self_refs: crate::write_order::self_references(meta),
            });
        }
        let phases: Vec<String> = self.plan.file.phases.iter().map(|p| p.id.clone()).collect();
        let (push, rollback) = crate::write_order::replay(replay, &phases);
        for (name, rows) in [
            ("push order: no row collides on a UNIQUE key", push),
            ("rollback order: no row collides on a UNIQUE key", rollback),
        ] {
            self.checks.push(Check::no_rows(
                crate::db::staging::CONSTRAINTS_PHASE,
                name,
                CheckKind::Constraint,
                rows,
            ));
        }
        Ok(())
    }

    /// The protected tables the plan writes keep every pulled row as it was.
    fn protected_rows_checks(&mut self) -> Result<()> {
        for name in &self.plan.written_pulled_tables() {
            if self.snapshot.table(name).map(|t| t.meta.role)
                == Some(crate::catalog::TableRole::Protected)
            {
                match protected_rows_guard(self.snapshot, name) {
                    Ok(c) => self.checks.extend(c),
                    Err(_) if self.broken => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Row count and checksum of every staged table.
    fn staged_list(&self) -> Result<Vec<StagedTable>> {
        let mut staged_list = Vec::new();
        for name in &self.view_tables {
            if !table_exists(self.conn, "main", &staged(name))? {
                continue;
            }
            let sum = match staged_checksum(self.snapshot, self.plan, name) {
                Ok(sum) => sum,
                Err(_) if self.broken => continue,
                Err(e) => return Err(e),
            };
            staged_list.push(StagedTable {
                name: name.clone(),
                rows: sum.rows(),
                checksum: sum.hex(),
            });
        }
        Ok(staged_list)
    }

    /// Writes the rehearsal, its checks (with their rows), preflight items
    /// and phase timings into the file; returns the rehearsal's id.
    fn record(
        &self,
        staged_sum: &str,
        passed: bool,
        millis: f64,
        preflight: &[PreflightItem],
    ) -> Result<i64> {
        let conn = self.conn;
        let checks = &self.checks;
        let rehearsed_at: String = conn.query_row(
            "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00'",
            [],
            |r| r.get(0),
        )?;
        conn.execute(
            "INSERT INTO _sandbox_rehearsals (rehearsed_at, plan_name, plan_hash, snapshot_checksum, \
             staged_checksum, passed, checks_total, checks_failed, millis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                rehearsed_at,
                self.plan.file.name,
                self.plan.hash,
                self.snapshot.info.snapshot_checksum,
                staged_sum,
                passed,
                checks.len() as i64,
                checks.iter().filter(|c| !c.ok).count() as i64,
                millis
            ],
        )?;
        let id = conn.last_insert_rowid();
        let mut put =
            conn.prepare("INSERT INTO _sandbox_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")?;
        let mut put_row = conn.prepare("INSERT INTO _sandbox_check_rows VALUES (?, ?, ?, ?)")?;
        for (seq, c) in checks.iter().enumerate() {
            put.execute(params![
                id,
                seq as i64,
                c.phase,
                c.kind.as_str(),
                c.name,
                c.expected,
                c.actual,
                c.ok,
                c.row_count as i64
            ])?;
            for (i, r) in c.rows.iter().enumerate() {
                put_row.execute(params![id, seq as i64, i as i64, r])?;
            }
        }
        // Rows of a rehearsal whose record was removed by hand would
        // collide with this id.
        conn.execute(
            "DELETE FROM _sandbox_preflight_items WHERE rehearsal_id = ?",
            [id],
        )?;
        let mut put_item =
            conn.prepare("INSERT INTO _sandbox_preflight_items VALUES (?, ?, ?, ?, ?, ?)")?;
        for (seq, p) in preflight.iter().enumerate() {
            put_item.execute(params![id, seq as i64, p.table, p.kind, p.name, p.detail])?;
        }
        // Kept for `sandbox report`, which reads a rehearsal back.
        let mut put_timing =
            conn.prepare("INSERT INTO _sandbox_phase_timings VALUES (?, ?, ?, ?, ?)")?;
        for (seq, t) in self.timings.iter().enumerate() {
            put_timing.execute(params![id, seq as i64, t.id, t.name, t.millis])?;
        }
        Ok(id)
    }

    /// The fixed report views, then the plan's own, each computed into a
    /// plain table its view reads.
    fn create_report_views(&self) -> Result<()> {
        self.conn.execute_batch(REPORT_VIEWS)?;
        for v in &self.plan.file.report_views {
            // A view over a table this rehearsal did not stage would fail: the
            // phase that makes it did not run.
            let table = quote_ident(&format!("_sandbox_report_{}", v.name));
            let sql = format!(
                "CREATE TABLE main.{table} AS {}; CREATE VIEW main.{} AS SELECT * FROM main.{table};",
                v.sql,
                quote_ident(&v.name)
            );
            if let Err(e) = self.conn.execute_batch(&sql) {
                if !self.broken {
                    return Err(crate::error::environment(format!(
                        "plan report view {} cannot be created: {e}",
                        v.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Names the tables the phase's SQL and conflicts read that it does not
/// declare in "reads" or "writes".
fn undeclared_reads_check(phase: &Phase, reads: &BTreeSet<String>) -> Check {
    let declared: HashSet<&String> = phase.reads.iter().chain(&phase.writes).collect();
    let undeclared: Vec<String> = reads
        .iter()
        .filter(|t| !declared.contains(t))
        .map(|t| format!("{t} is read but not in the phase's \"reads\""))
        .collect();
    Check::no_rows(
        &phase.id,
        "reads only the tables it declares",
        CheckKind::Conflict,
        undeclared,
    )
}

/// The tables the plan creates must not exist at the source, nor the
/// columns it adds: pulling again cannot fix that, so the rehearsal names
/// them with what they hold.
fn existing_targets_check(snapshot: &Snapshot, plan: &Plan) -> Result<Check> {
    let path = crate::db::postgres::search_path::read_app_path(&snapshot.conn)?.map_or_else(
        || "the database's search_path".to_string(),
        |p| p.describe(),
    );
    let mut rows: Vec<String> = snapshot
        .existing_targets
        .iter()
        .map(|t| {
            let cols = t
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.pg_type))
                .collect::<Vec<_>>()
                .join(", ");
            match t.name.split_once('.') {
                // Another schema's table of the same name on the app's
                // search_path: pull records it as `schema.table`.
                Some((schema, name)) => format!(
                    "table {name} the plan creates (as public.{name}) has the name of table \
                     {schema}.{name} ({cols}), which is on {path}: the app's unqualified \
                     `{name}` would mean one of them by the order of the path, not by intent \
                     (the plan's SQL runs under search_path {pinned}). Rename the table in \
                     target.json; pulling again will not change this",
                    pinned = crate::db::postgres::search_path::PINNED
                ),
                None => format!("table {} already exists at the source: ({cols})", t.name),
            }
        })
        .collect();
    // Another kind of object holding a name the CREATE TABLE needs (a
    // sequence, an index, a composite or enum type): as fatal on Postgres.
    rows.extend(
        crate::plan::names::read(&snapshot.conn)?
            .iter()
            .filter(|c| !c.derived)
            .map(|c| c.describe()),
    );
    for a in &plan.schema.added_columns {
        if let Some(c) = snapshot
            .table(&a.table)
            .and_then(|t| t.meta.column(&a.column.name))
        {
            rows.push(format!(
                "column {}.{} already exists at the source ({})",
                a.table, c.name, c.pg_type
            ));
        }
    }
    Ok(Check::no_rows(
        "snapshot",
        "tables and columns the plan creates do not exist yet",
        CheckKind::Conflict,
        rows,
    ))
}

/// The names Postgres derives for what the plan's DDL creates (a key's
/// index, a serial column's sequence, a foreign key) that an object at the
/// source already holds: Postgres takes the next free name instead of
/// failing, so the push applies; listed for people, with the object that
/// keeps the name. Not for a table whose CREATE TABLE fails anyway (the
/// table or its row type's name is taken: the objects holding the derived
/// names are most likely that table's own).
fn derived_name_items(snapshot: &Snapshot) -> Result<Vec<PreflightItem>> {
    let conflicts = crate::plan::names::read(&snapshot.conn)?;
    let failing: Vec<&str> = conflicts
        .iter()
        .filter(|c| !c.derived)
        .map(|c| c.table.as_str())
        .chain(snapshot.existing_targets.iter().map(|t| t.name.as_str()))
        .collect();
    Ok(conflicts
        .iter()
        .filter(|c| c.derived && !failing.contains(&c.table.as_str()))
        .map(|c| PreflightItem {
            table: c.table.clone(),
            kind: "name".into(),
            name: c.name.clone(),
            detail: c.describe(),
        })
        .collect())
}

/// The push matches the rows it updates and deletes to Postgres rows by
/// primary key; a written table without one could pass here and then not
/// be pushable at all.
fn primary_keys_check(snapshot: &Snapshot, plan: &Plan) -> Check {
    let mut rows: Vec<String> = plan
        .written_pulled_tables()
        .iter()
        .filter(|t| {
            snapshot
                .table(t)
                .is_some_and(|p| p.meta.primary_key().is_empty())
        })
        .map(|t| format!("table {t} has no primary key at the source"))
        .collect();
    rows.extend(
        plan.schema
            .tables
            .iter()
            .filter(|t| t.primary_key.is_empty())
            .map(|t| {
                format!(
                    "table {} (created by the plan) declares no primary key",
                    t.name
                )
            }),
    );
    Check::no_rows(
        "snapshot",
        "every table the plan writes has a primary key (rows are pushed by key)",
        CheckKind::Conflict,
        rows,
    )
}

/// The guard the seed promises and never checks: every row of a protected
/// table that the plan writes to is still there, with every pulled column
/// byte-identical. Names the rows that differ.
pub fn protected_rows_guard(snapshot: &Snapshot, table: &str) -> Result<Vec<Check>> {
    let pulled = snapshot
        .table(table)
        .ok_or_else(|| anyhow::anyhow!("the snapshot has no table {table}"))?;
    let rows = PulledBesideStaged::new(&pulled.meta)?;
    let conn = &snapshot.conn;
    let key_list = |sql: String| -> Result<Vec<String>> {
        Ok(plansql::query_text(conn, &sql)?
            .into_iter()
            .map(|r| r.join(""))
            .collect())
    };
    let deleted = key_list(rows.deleted_sql())?;
    let changed = key_list(rows.changed_sql())?;
    // The checksum over the pulled columns of the pre-existing rows must be
    // the one recorded at pull time: byte-identical, not just equal-looking.
    let sum = rows.staged_checksum(conn)?;
    let mut identical = Check::equal(
        "final",
        &format!("{table}: pre-existing rows byte-identical to the pull"),
        CheckKind::Guard,
        short(&pulled.checksum),
        short(&sum.hex()),
    );
    identical.ok = sum.hex() == pulled.checksum;
    Ok(vec![
        Check::no_rows(
            "final",
            &format!("{table}: no protected row deleted"),
            CheckKind::Guard,
            deleted,
        ),
        Check::no_rows(
            "final",
            &format!("{table}: no protected column changed"),
            CheckKind::Guard,
            changed,
        ),
        identical,
    ])
}

/// A protected table's pulled rows `p` beside its staged rows `s`, paired
/// by primary key: the queries [`protected_rows_guard`] asks.
struct PulledBesideStaged<'a> {
    meta: &'a TableMeta,
    pulled: String,
    staged: String,
    /// `p.k = s.k AND …` over the primary key.
    join: String,
    /// SQL naming pulled row `p` by its key.
    key_text: String,
    first_key: String,
}

impl<'a> PulledBesideStaged<'a> {
    fn new(meta: &'a TableMeta) -> Result<Self> {
        let pk = meta.primary_key();
        let Some(first_key) = pk.first() else {
            anyhow::bail!(
                "protected table {} has no primary key; the plan cannot prove its rows unchanged",
                meta.name
            );
        };
        Ok(PulledBesideStaged {
            meta,
            pulled: quote_ident(&meta.name),
            staged: quote_ident(&staged(&meta.name)),
            join: crate::db::staging::same_key_sql(&pk),
            key_text: crate::types::row_key_sql(&pk, "p"),
            first_key: quote_ident(first_key),
        })
    }

    /// Keys of pulled rows the staged table no longer holds.
    fn deleted_sql(&self) -> String {
        format!(
            "SELECT {} FROM main.{} p LEFT JOIN main.{} s ON {} WHERE s.{} IS NULL",
            self.key_text, self.pulled, self.staged, self.join, self.first_key
        )
    }

    /// Keys of pulled rows whose staged copy differs in a pulled column.
    fn changed_sql(&self) -> String {
        let differs = self
            .meta
            .columns
            .iter()
            .map(|c| format!("p.{0} IS NOT s.{0}", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(" OR ");
        format!(
            "SELECT {} FROM main.{} p JOIN main.{} s ON {} WHERE {differs}",
            self.key_text, self.pulled, self.staged, self.join
        )
    }

    /// The checksum of the staged rows that were pulled, over the pulled
    /// columns, computed as pull computed the recorded one.
    fn staged_checksum(&self, conn: &Connection) -> Result<TableChecksum> {
        let cols = self
            .meta
            .columns
            .iter()
            .map(|c| format!("s.{}", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM main.{} s JOIN main.{} p ON {}",
            self.staged, self.pulled, self.join
        );
        let read = || -> Result<TableChecksum> {
            let mut sum = TableChecksum::new();
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let mut values = Vec::with_capacity(self.meta.columns.len());
                for (i, c) in self.meta.columns.iter().enumerate() {
                    values.push(crate::db::sqlite::from_sqlite(c, r.get_ref(i)?)?);
                }
                sum.add_row(&values);
            }
            Ok(sum)
        };
        read().with_context(|| {
            format!(
                "cannot read the staged rows of protected table {} to compare with the pull",
                self.meta.name
            )
        })
    }
}

/// The triggers the plan holds off (`hold_off_triggers`, `table.trigger`)
/// on a table it writes must be on that table in the snapshot: the push
/// refuses a hold-off it cannot find, and stamp triggers are named
/// differently between projects (`handle_updated_at`, `set_updated_at`,
/// `moddatetime` …). A missing one fails here, naming the triggers the
/// table has, instead of a green rehearsal and a preflight refusal. One
/// the app disabled (or enabled for replication only) is there: it fires
/// for no write of the push, which leaves it as it is, so it passes.
fn held_off_triggers_check(
    meta: &crate::catalog::TableMeta,
    hold_off: &[String],
) -> Option<crate::plan::checks::Check> {
    let named: Vec<&str> = crate::plan::held_off_triggers(hold_off)
        .filter(|(t, _)| *t == meta.name)
        .map(|(_, trigger)| trigger)
        .collect();
    if named.is_empty() {
        return None;
    }
    let is_trigger = |kind: &str| matches!(kind, "t" | "td" | "tr");
    let present: Vec<String> = meta
        .constraints
        .iter()
        .filter(|k| is_trigger(&k.kind))
        .map(|k| {
            format!(
                "{} ({}{})",
                k.name,
                match k.kind.as_str() {
                    "td" => "disabled: ",
                    "tr" => "replica only: ",
                    _ => "",
                },
                k.definition
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect();
    let rows = named
        .iter()
        .filter(|n| {
            !meta
                .constraints
                .iter()
                .any(|k| is_trigger(&k.kind) && k.name == **n)
        })
        .map(|n| {
            format!(
                "{n}: no trigger of that name on {t}; its triggers: {}. If one of them \
                 stamps updated_at, name it in plan.json's hold_off_triggers as {t}.<trigger> \
                 (`sandbox plan init DIR`, edit, then --plan DIR); else remove the entry",
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join("; ")
                },
                t = meta.name
            )
        })
        .collect();
    Some(crate::plan::checks::Check::no_rows(
        crate::db::staging::CONSTRAINTS_PHASE,
        &format!("{}: the triggers the plan holds off are on it", meta.name),
        crate::plan::checks::CheckKind::Constraint,
        rows,
    ))
}
