//! `sandbox rehearse`: run every phase of the plan on the staged copy inside
//! the snapshot, check everything, and record the result in the file.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::catalog::TableMeta;
use crate::db::sqlite::{ident_list, Snapshot};
use crate::db::staging::{constraint_checks, preflight_items, staged_table_ddl, PreflightItem};
use crate::plan::checks::{evaluate, evaluate_guard, Check, CheckKind};
use crate::plan::phases::{
    self, apply_phase_ddl, staged, staged_meta, LibraryInput, PhaseContext, STAGED_PREFIX,
};
use crate::plan::{Action, Plan};
use crate::types::{quote_ident, TableChecksum};

/// The protected tables the plan's phases write to; every other pulled table
/// is only read. Staged copies are made of these.
pub fn written_tables(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for phase in &plan.file.phases {
        let writes: &[&str] = match phase.action {
            Action::SeedStrategicPriorities => &["jtbd_library"],
            Action::MigrateDhWorkflows | Action::ImportLibraryWorkflows => &["workflows"],
            _ => &[],
        };
        for t in writes {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        }
    }
    for a in &plan.schema.added_columns {
        if !out.contains(&a.table) {
            out.push(a.table.clone());
        }
    }
    out
}

/// Every table whose staged form differs from the pull: written protected
/// tables first, then the tables the plan creates.
pub fn staged_tables(plan: &Plan) -> Vec<String> {
    let mut out = written_tables(plan);
    out.extend(plan.schema.tables.iter().map(|t| t.name.clone()));
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseTiming {
    pub id: String,
    pub name: String,
    pub millis: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StagedTable {
    pub name: String,
    pub rows: u64,
    pub checksum: String,
}

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
/// fails on the whole view ("database is busy" in DB Browser 3.12), so the
/// JSON is read once here, by the bundled SQLite, into a plain table.
const REPORT_VIEWS: &str = "
DROP VIEW IF EXISTS report_checks;
DROP VIEW IF EXISTS report_failures;
DROP VIEW IF EXISTS report_workflows_by_source;
DROP VIEW IF EXISTS report_jtbd_per_priority;
DROP VIEW IF EXISTS report_counts;
DROP TABLE IF EXISTS _sandbox_workflow_sources;
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
CREATE TABLE _sandbox_workflow_sources AS
  SELECT CASE WHEN json_valid(definition) THEN coalesce(json_extract(definition, '$.source'), '(none)')
              ELSE '(definition is not JSON)' END AS source,
         count(*) AS workflows
  FROM staged_workflows GROUP BY 1;
CREATE VIEW report_workflows_by_source AS
  SELECT source, workflows FROM _sandbox_workflow_sources ORDER BY workflows DESC, source;
CREATE VIEW report_jtbd_per_priority AS
  SELECT sp.code, sp.name, count(j.id) AS jtbds
  FROM staged_strategic_priorities sp
  LEFT JOIN staged_jtbd_library j ON j.strategic_priority_id = sp.id
  GROUP BY sp.code, sp.name ORDER BY sp.code;
";

pub struct RehearseOptions<'a> {
    pub snapshot: &'a Path,
    pub plan: &'a Plan,
    pub library: &'a LibraryInput,
}

/// Runs a SQL query and returns its rows as text, the engine-neutral form.
pub fn query_text(conn: &Connection, sql: &str) -> Result<Vec<Vec<String>>> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn
        .prepare(sql)
        .with_context(|| format!("SQLite cannot run: {sql}"))?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => hex::encode(b),
            });
        }
        out.push(row);
    }
    Ok(out)
}

/// Points the plan's table names at the staged copies for this connection.
fn refresh_views(conn: &Connection, tables: &[String]) -> Result<()> {
    for t in tables {
        conn.execute_batch(&format!("DROP VIEW IF EXISTS temp.{}", quote_ident(t)))?;
        let exists: i64 = conn.query_row(
            "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?",
            [staged(t)],
            |r| r.get(0),
        )?;
        if exists > 0 {
            conn.execute_batch(&format!(
                "CREATE TEMP VIEW {} AS SELECT * FROM main.{}",
                quote_ident(t),
                quote_ident(&staged(t))
            ))?;
        }
    }
    Ok(())
}

/// The text a row's key is recorded under (columns joined by U+001F).
pub fn key_sql(key: &[String], alias: &str) -> String {
    key.iter()
        .map(|k| format!("CAST({alias}{} AS TEXT)", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" || char(31) || ")
}

pub fn key_text(values: &[String]) -> String {
    values.join("\u{1f}")
}

/// Records the staged rows of `table` not yet attributed to a phase.
fn record_row_phases(conn: &Connection, table: &str, key: &[String], phase: &str) -> Result<()> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?",
        [staged(table)],
        |r| r.get(0),
    )?;
    if exists == 0 || key.is_empty() {
        return Ok(());
    }
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO _sandbox_row_phases SELECT ?1, {}, ?2 FROM main.{} s",
            key_sql(key, "s."),
            quote_ident(&staged(table))
        ),
        params![table, phase],
    )?;
    Ok(())
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
    conn.execute_batch(REPORT_VIEWS.split("CREATE VIEW").next().unwrap_or(""))?;
    for n in names {
        conn.execute_batch(&format!("DROP TABLE {}", quote_ident(&n)))?;
    }
    Ok(())
}

/// Checksum of a staged table, and its row count.
pub fn staged_checksum(snapshot: &Snapshot, plan: &Plan, table: &str) -> Result<TableChecksum> {
    let meta = staged_meta(&snapshot.conn, snapshot, plan, table)?;
    snapshot.checksum_of(&staged(table), &meta)
}

/// Digest over all staged tables: lets a push prove the staged data is what
/// the rehearsal left.
pub fn combined_staged_checksum(staged: &[StagedTable]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for t in staged {
        h.update(format!("{}:{}:{}\n", t.name, t.rows, t.checksum).as_bytes());
    }
    hex::encode(h.finalize())
}

pub fn rehearse(opts: &RehearseOptions<'_>) -> Result<RehearsalReport> {
    let started = Instant::now();
    let snapshot = Snapshot::open(opts.snapshot)?;
    let plan = opts.plan;
    let conn = &snapshot.conn;
    // The plan's LIKE must mean the same on SQLite as on Postgres.
    conn.execute_batch("PRAGMA case_sensitive_like = ON; PRAGMA foreign_keys = OFF;")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = run_in_transaction(&snapshot, plan, opts.library, started);
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

fn run_in_transaction(
    snapshot: &Snapshot,
    plan: &Plan,
    library: &LibraryInput,
    started: Instant,
) -> Result<RehearsalReport> {
    let conn = &snapshot.conn;
    conn.execute_batch(RESULT_DDL)?;
    let mut checks = Vec::new();

    // A pulled table edited by hand (say, in a DB browser) would make every
    // later number meaningless.
    for t in &snapshot.tables {
        let now = snapshot.checksum_of(&t.meta.name, &t.meta)?;
        let mut c = Check::equal(
            "snapshot",
            &format!("{} unchanged since pull", t.meta.name),
            CheckKind::Integrity,
            format!("{} rows, {}", t.rows, short(&t.checksum)),
            format!("{} rows, {}", now.rows(), short(&now.hex())),
        );
        c.ok = now.hex() == t.checksum && now.rows() == t.rows;
        checks.push(c);
    }

    checks.push(existing_targets_check(snapshot, plan));
    drop_staged(conn)?;
    // Which phase created each staged row: the push applies the diff phase
    // by phase and checks each phase's expectations in between.
    conn.execute_batch(
        "DROP TABLE IF EXISTS _sandbox_row_phases;
         CREATE TABLE _sandbox_row_phases (table_name TEXT NOT NULL, row_key TEXT NOT NULL, phase TEXT NOT NULL,
                                           PRIMARY KEY (table_name, row_key));",
    )?;
    let written = written_tables(plan);
    for name in &written {
        let meta = &snapshot
            .table(name)
            .ok_or_else(|| {
                crate::error::environment(format!(
                    "the snapshot has no table {name}, which the plan writes"
                ))
            })?
            .meta;
        conn.execute_batch(&staged_table_ddl(meta, &staged(name))?)?;
        conn.execute_batch(&format!(
            "INSERT INTO main.{} SELECT {} FROM main.{}",
            quote_ident(&staged(name)),
            ident_list(&meta.column_names()),
            quote_ident(name)
        ))?;
        record_row_phases(conn, name, &meta.primary_key(), "pulled")?;
    }
    let view_tables = staged_tables(plan);
    let ctx = PhaseContext {
        conn,
        snapshot,
        plan,
        library,
        created_at: snapshot.info.pulled_at.clone(),
    };
    let mut timings = Vec::new();
    for phase in &plan.file.phases {
        let t0 = Instant::now();
        apply_phase_ddl(conn, plan, &phase.id)?;
        let moved = match phase.action {
            Action::SeedStrategicPriorities => phases::seed_strategic_priorities(&ctx, &phase.id),
            Action::MigrateTools => phases::migrate_tools(&ctx, &phase.id),
            Action::CheckWorkflowsSchema => phases::check_workflows_schema(&ctx, &phase.id),
            Action::MigrateDhWorkflows => phases::migrate_dh_workflows(&ctx, &phase.id),
            Action::ImportLibraryWorkflows => phases::import_library_workflows(&ctx, &phase.id),
            Action::MigrateTasks => phases::migrate_tasks(&ctx, &phase.id),
        };
        let mut phase_checks = match moved {
            Ok(c) => c,
            // A row SQLite refused (the staged primary key) is the data
            // contradicting the target: a named failed check, not an error.
            Err(e) if is_constraint_violation(&e) => vec![Check::no_rows(
                &phase.id,
                "rows the staged tables refused",
                CheckKind::Constraint,
                vec![format!("{e:#}")],
            )],
            Err(e) => return Err(e.context(format!("phase {} ({})", phase.id, phase.name))),
        };
        refresh_views(conn, &view_tables)?;
        for t in &view_tables {
            let meta = staged_meta(conn, snapshot, plan, t)?;
            record_row_phases(conn, t, &meta.primary_key(), &phase.id)?;
        }
        for exp in &phase.expectations {
            let rows = query_text(conn, &exp.sql)
                .with_context(|| format!("phase {} expectation '{}'", phase.id, exp.name))?;
            phase_checks.push(evaluate(&phase.id, CheckKind::Expectation, exp, &rows));
        }
        checks.extend(phase_checks);
        timings.push(PhaseTiming {
            id: phase.id.clone(),
            name: phase.name.clone(),
            millis: t0.elapsed().as_secs_f64() * 1000.0,
        });
    }
    // Every rule of the target's catalog SQLite can evaluate, on the rows
    // the plan wrote; what it cannot, listed for the preflight.
    let mut preflight = Vec::new();
    for t in &view_tables {
        let meta = staged_meta(conn, snapshot, plan, t)?;
        checks.extend(constraint_checks(conn, snapshot, &meta, STAGED_PREFIX)?);
        preflight.extend(preflight_items(conn, snapshot, &meta, STAGED_PREFIX)?);
    }
    for exp in &plan.file.verification {
        let rows =
            query_text(conn, &exp.sql).with_context(|| format!("verification '{}'", exp.name))?;
        checks.push(evaluate("final", CheckKind::Verification, exp, &rows));
    }
    for guard in &plan.file.guards {
        let rows =
            query_text(conn, &guard.sql).with_context(|| format!("guard '{}'", guard.name))?;
        checks.push(evaluate_guard(guard, &rows));
    }
    for name in &written {
        checks.extend(protected_rows_guard(snapshot, plan, name)?);
    }

    let mut staged_list = Vec::new();
    for name in &view_tables {
        let sum = staged_checksum(snapshot, plan, name)?;
        staged_list.push(StagedTable {
            name: name.clone(),
            rows: sum.rows(),
            checksum: sum.hex(),
        });
    }
    let staged_sum = combined_staged_checksum(&staged_list);
    let passed = checks.iter().all(|c| c.ok);
    let millis = started.elapsed().as_secs_f64() * 1000.0;
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
            plan.file.name,
            plan.hash,
            snapshot.info.snapshot_checksum,
            staged_sum,
            passed,
            checks.len() as i64,
            checks.iter().filter(|c| !c.ok).count() as i64,
            millis
        ],
    )?;
    let id = conn.last_insert_rowid();
    {
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
        let mut put_item =
            conn.prepare("INSERT INTO _sandbox_preflight_items VALUES (?, ?, ?, ?, ?, ?)")?;
        for (seq, p) in preflight.iter().enumerate() {
            put_item.execute(params![id, seq as i64, p.table, p.kind, p.name, p.detail])?;
        }
    }
    conn.execute_batch(REPORT_VIEWS)?;
    Ok(RehearsalReport {
        rehearsal_id: id,
        snapshot: snapshot.path.display().to_string(),
        plan_name: plan.file.name.clone(),
        plan_hash: plan.hash.clone(),
        snapshot_checksum: snapshot.info.snapshot_checksum.clone(),
        staged_checksum: staged_sum,
        passed,
        checks,
        phases: timings,
        staged: staged_list,
        preflight,
        millis,
    })
}

/// SQLite refused a row for a constraint of a staged table.
fn is_constraint_violation(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
        )
    })
}

/// The tables the plan creates must not exist at the source, nor the
/// columns it adds: pulling again cannot fix that, so the rehearsal names
/// them with what they hold.
fn existing_targets_check(snapshot: &Snapshot, plan: &Plan) -> Check {
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
            format!("table {} already exists at the source: ({cols})", t.name)
        })
        .collect();
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
    Check::no_rows(
        "snapshot",
        "tables and columns the plan creates do not exist yet",
        CheckKind::Conflict,
        rows,
    )
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

/// The guard the seed promises and never checks: every row of a protected
/// table that the plan writes to is still there, with every pulled column
/// byte-identical. Names the rows that differ.
pub fn protected_rows_guard(snapshot: &Snapshot, plan: &Plan, table: &str) -> Result<Vec<Check>> {
    let pulled = snapshot
        .table(table)
        .ok_or_else(|| anyhow::anyhow!("the snapshot has no table {table}"))?;
    let meta: &TableMeta = &pulled.meta;
    let pk = meta.primary_key();
    if pk.is_empty() {
        anyhow::bail!(
            "protected table {table} has no primary key; the plan cannot prove its rows unchanged"
        );
    }
    let conn = &snapshot.conn;
    let join = pk
        .iter()
        .map(|k| format!("p.{0} = s.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let key_text = pk
        .iter()
        .map(|k| format!("p.{}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" || '/' || ");
    let deleted = query_text(
        conn,
        &format!(
            "SELECT {key_text} FROM main.{} p LEFT JOIN main.{} s ON {join} WHERE s.{} IS NULL",
            quote_ident(table),
            quote_ident(&staged(table)),
            quote_ident(&pk[0])
        ),
    )?;
    let differs = meta
        .columns
        .iter()
        .map(|c| format!("p.{0} IS NOT s.{0}", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let changed = query_text(
        conn,
        &format!(
            "SELECT {key_text} FROM main.{} p JOIN main.{} s ON {join} WHERE {differs}",
            quote_ident(table),
            quote_ident(&staged(table))
        ),
    )?;
    // The checksum over the pulled columns of the pre-existing rows must be
    // the one recorded at pull time: byte-identical, not just equal-looking.
    let mut sum = TableChecksum::new();
    let cols = meta
        .columns
        .iter()
        .map(|c| format!("s.{}", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let tmp = format!(
        "SELECT {cols} FROM main.{} s JOIN main.{} p ON {join}",
        quote_ident(&staged(table)),
        quote_ident(table)
    );
    {
        let mut stmt = conn.prepare(&tmp)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(meta.columns.len());
            for (i, c) in meta.columns.iter().enumerate() {
                values.push(crate::db::sqlite::from_sqlite(c, r.get_ref(i)?)?);
            }
            sum.add_row(&values);
        }
    }
    let _ = plan;
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
            deleted.into_iter().map(|r| r.join("")).collect(),
        ),
        Check::no_rows(
            "final",
            &format!("{table}: no protected column changed"),
            CheckKind::Guard,
            changed.into_iter().map(|r| r.join("")).collect(),
        ),
        identical,
    ])
}
