//! The diff: what the rehearsal changed, as data, and how it is computed
//! from a rehearsed snapshot. This — DDL, rows to insert, columns to update
//! with their old values — is the only thing a push applies; the migration
//! is never re-derived on Postgres. `sandbox diff` prints it, push applies
//! it, rollback and the receipt undo it: it lives below the ops, which do
//! not import each other.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{ColumnMeta, TableMeta};
use crate::db::sqlite::{ident_list, Snapshot};
use crate::error::{check_failed, environment};
use crate::plan::stage::{
    combined_staged_checksum, staged, staged_checksum, staged_meta, StagedTable,
};
use crate::plan::Plan;
use crate::types::short_hash as short;
use crate::types::{copy_text_line, quote_ident};

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ColumnUpdate {
    pub column: String,
    /// `None` is SQL NULL (also for a column the diff adds).
    pub old: Option<String>,
    pub new: Option<String>,
    /// The row was inserted by an earlier phase of the same push, which
    /// left this column to Postgres (a default it computes, an identity):
    /// `old` is the NULL the rehearsal saw, while Postgres holds what it
    /// filled. The update sets the column without expecting an old value;
    /// the row is the push's own, so no one else can have changed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub old_filled_by_postgres: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RowUpdate {
    /// Primary-key values, in key order.
    pub key: Vec<String>,
    pub changes: Vec<ColumnUpdate>,
}

/// The columns one phase changed in one row: `old` is what the row held
/// before that phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseUpdate {
    pub phase: String,
    pub update: RowUpdate,
}

/// A row one phase inserted (as the phase left it) or deleted (as the
/// phase found it), in the column order of the table's `columns`.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRow {
    pub phase: String,
    pub row: Vec<Option<String>>,
    /// Positions of the columns the plan adds in a later phase: the row is
    /// written without them, as they do not exist yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    pub table: String,
    /// True when the plan creates the table.
    pub created: bool,
    /// The table's columns after the migration (the insert column list).
    pub columns: Vec<ColumnMeta>,
    pub key: Vec<String>,
    /// The net change, pulled state to staged state (what a receipt keeps
    /// and a rollback undoes): rows that are new, as staged.
    pub inserts: Vec<Vec<Option<String>>>,
    /// Each updated pulled row's net change, pulled value to staged value.
    pub updates: Vec<RowUpdate>,
    /// Pulled rows the plan deletes, whole (their before-images, in the
    /// column order of `columns`, NULL for a column the plan adds).
    pub deletes: Vec<Vec<Option<String>>>,
    /// What each phase changed, as the rehearsal recorded it between the
    /// states before and after the phase, in phase order: the push applies
    /// each in its phase, so every phase's expectations see on Postgres
    /// what they saw in the rehearsal. A row inserted in one phase and
    /// updated in a later one is inserted with the first phase's values and
    /// updated in the later phase.
    pub phase_inserts: Vec<PhaseRow>,
    pub phase_updates: Vec<PhaseUpdate>,
    pub phase_deletes: Vec<PhaseRow>,
    /// (row key, column) of each NULL a new row holds, on purpose, in a
    /// column Postgres would fill: written as NULL, not left out.
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub explicit_nulls: std::collections::BTreeSet<(String, String)>,
    /// Columns the plan adds whose default only Postgres can compute (a
    /// domain's `now()`, `gen_random_uuid()`, `nextval(…)`): its `ADD
    /// COLUMN` fills the rows already there, which the rehearsal left NULL.
    /// The push reads those values back (`db::postgres::filled`) and does
    /// not expect NULL there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added_filled: Vec<String>,
}

/// Rows inserted with one column list: COPY writes only the columns the
/// plan set, so Postgres fills the others (defaults it computes, identity,
/// generated columns) as it would for the application.
#[derive(Debug, Clone)]
pub struct InsertGroup {
    pub columns: Vec<String>,
    /// Only the listed columns' values.
    pub rows: Vec<Vec<Option<String>>>,
    /// The full staged rows, parallel to `rows`.
    pub staged: Vec<Vec<Option<String>>>,
}

impl TableDiff {
    /// The columns a staged row leaves to Postgres: generated and identity
    /// ALWAYS columns always, and a column Postgres fills where the row
    /// holds NULL ("not set").
    pub fn left_to_postgres(&self, row: &[Option<String>]) -> Vec<usize> {
        // The key is worked out only for a table with NULLs the plan wrote.
        let key = (!self.explicit_nulls.is_empty()).then(|| {
            crate::types::row_key(self.key.iter().map(|k| {
                self.columns
                    .iter()
                    .position(|c| &c.name == k)
                    .and_then(|i| row[i].as_deref())
            }))
        });
        self.columns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.never_written()
                    || (c.filled_by_postgres()
                        && row[*i].is_none()
                        && !key.as_ref().is_some_and(|k| {
                            self.explicit_nulls.contains(&(k.clone(), c.name.clone()))
                        }))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The columns numbered by a sequence (see
    /// [`ColumnMeta::numbered_by_sequence`]) that the phase gives values
    /// itself: rows it inserts setting them, or updates changing them. The
    /// push moves their sequences past those values.
    pub fn sequence_columns_written(&self, phase: &str) -> Vec<String> {
        let updates = self.updates_of(phase);
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.numbered_by_sequence())
            .filter(|(i, c)| {
                self.inserts_of(phase)
                    .any(|p| !p.absent.contains(i) && !self.left_to_postgres(&p.row).contains(i))
                    || updates
                        .iter()
                        .any(|u| u.changes.iter().any(|ch| ch.column == c.name))
            })
            .map(|(_, c)| c.name.clone())
            .collect()
    }

    /// The numbers the phase writes itself into `column` (rows it inserts
    /// setting it, updates changing it): what a sequence shared with the
    /// app must not also hand out.
    pub fn numbers_written(&self, phase: &str, column: &str) -> Vec<i64> {
        let Some(i) = self.columns.iter().position(|c| c.name == column) else {
            return Vec::new();
        };
        let inserted = self
            .inserts_of(phase)
            .filter(|p| !p.absent.contains(&i) && !self.left_to_postgres(&p.row).contains(&i))
            .filter_map(|p| p.row[i].as_deref().and_then(|v| v.parse().ok()));
        let updated: Vec<i64> = self
            .updates_of(phase)
            .iter()
            .flat_map(|u| u.changes.iter())
            .filter(|c| c.column == column)
            .filter_map(|c| c.new.as_deref().and_then(|v| v.parse().ok()))
            .collect();
        inserted.chain(updated).collect()
    }

    /// The phase's inserted rows, grouped by the columns they set, in the
    /// order the rows come.
    pub fn insert_groups(&self, phase: &str) -> Vec<InsertGroup> {
        let mut groups: Vec<(Vec<usize>, InsertGroup)> = Vec::new();
        for p in self.inserts_of(phase) {
            let row = &p.row;
            let mut left = self.left_to_postgres(row);
            left.extend(&p.absent);
            left.sort_unstable();
            left.dedup();
            let pos = match groups.iter().position(|(l, _)| *l == left) {
                Some(p) => p,
                None => {
                    let columns = self
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !left.contains(i))
                        .map(|(_, c)| c.name.clone())
                        .collect();
                    groups.push((
                        left.clone(),
                        InsertGroup {
                            columns,
                            rows: vec![],
                            staged: vec![],
                        },
                    ));
                    groups.len() - 1
                }
            };
            let g = &mut groups[pos].1;
            g.rows.push(
                row.iter()
                    .enumerate()
                    .filter(|(i, _)| !left.contains(i))
                    .map(|(_, v)| v.clone())
                    .collect(),
            );
            g.staged.push(row.clone());
        }
        groups.into_iter().map(|(_, g)| g).collect()
    }

    /// Marks the changes of later phases to columns a row's inserting
    /// phase left to Postgres (see [`ColumnUpdate::old_filled_by_postgres`]):
    /// without it the update would look for the NULL the rehearsal saw,
    /// find what Postgres filled, and refuse as if the remote had changed.
    fn mark_values_filled_at_insert(&mut self) {
        let key_idx: Vec<usize> = self
            .key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .collect();
        let mut filled = std::collections::HashSet::new();
        for p in &self.phase_inserts {
            let key = crate::types::row_key(key_idx.iter().map(|i| p.row[*i].as_deref()));
            for i in self.left_to_postgres(&p.row) {
                filled.insert((key.clone(), self.columns[i].name.clone()));
            }
        }
        if filled.is_empty() {
            return;
        }
        for u in &mut self.phase_updates {
            let key = crate::types::row_key(u.update.key.iter().map(|k| Some(k.as_str())));
            for c in &mut u.update.changes {
                // Set once from NULL; a later change starts from that value.
                c.old_filled_by_postgres =
                    c.old.is_none() && filled.remove(&(key.clone(), c.column.clone()));
            }
        }
    }

    /// Marks the first change of each row's column in
    /// [`TableDiff::added_filled`] from the NULL the rehearsal saw: on
    /// Postgres the row holds what `ADD COLUMN` computed for it, so the
    /// update must not look for NULL there (a NULL the plan itself wrote
    /// into a new row is one it expects).
    fn mark_values_filled_at_add_column(&mut self) {
        if self.added_filled.is_empty() {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        for u in &mut self.phase_updates {
            let key = crate::types::row_key(u.update.key.iter().map(|k| Some(k.as_str())));
            for c in &mut u.update.changes {
                if !self.added_filled.contains(&c.column)
                    || !seen.insert((key.clone(), c.column.clone()))
                {
                    continue;
                }
                if c.old.is_none()
                    && !self
                        .explicit_nulls
                        .contains(&(key.clone(), c.column.clone()))
                {
                    c.old_filled_by_postgres = true;
                }
            }
        }
    }

    /// The rows one phase inserted.
    pub fn inserts_of<'a>(&'a self, phase: &'a str) -> impl Iterator<Item = &'a PhaseRow> + 'a {
        self.phase_inserts.iter().filter(move |p| p.phase == phase)
    }

    /// The row updates one phase made.
    pub fn updates_of(&self, phase: &str) -> Vec<RowUpdate> {
        self.phase_updates
            .iter()
            .filter(|u| u.phase == phase)
            .map(|u| u.update.clone())
            .collect()
    }

    /// The rows one phase deleted.
    pub fn deletes_of<'a>(
        &'a self,
        phase: &'a str,
    ) -> impl Iterator<Item = &'a Vec<Option<String>>> + 'a {
        self.phase_deletes
            .iter()
            .filter(move |p| p.phase == phase)
            .map(|p| &p.row)
    }
}

/// `updates` without their changes to the `dropped` columns, and without
/// the rows left with no change: what a rollback restores, as it drops the
/// columns the push added instead of writing their old values back.
pub fn without_columns(updates: &[RowUpdate], dropped: &[&str]) -> Vec<RowUpdate> {
    updates
        .iter()
        .map(|u| RowUpdate {
            key: u.key.clone(),
            changes: u
                .changes
                .iter()
                .filter(|c| !dropped.contains(&c.column.as_str()))
                .cloned()
                .collect(),
        })
        .filter(|u| !u.changes.is_empty())
        .collect()
}

/// The columns one UPDATE statement sets, each with whether its old value
/// is one Postgres filled (so not checked).
pub type UpdateColumns = Vec<(String, bool)>;

/// The UPDATE statements that apply `updates`, in the order they run: one
/// per set of changed columns (with, per column, whether the old value is
/// one Postgres filled, see [`ColumnUpdate::old_filled_by_postgres`]), each
/// with its rows in the order given. Push and rollback write through them,
/// and the rehearsal replays them (`write_order`) to prove no row collides
/// on a UNIQUE key on the way.
pub fn update_statements(updates: &[RowUpdate]) -> Vec<(UpdateColumns, Vec<&RowUpdate>)> {
    let mut by_cols: std::collections::BTreeMap<UpdateColumns, Vec<&RowUpdate>> =
        std::collections::BTreeMap::new();
    for u in updates {
        by_cols
            .entry(
                u.changes
                    .iter()
                    .map(|c| (c.column.clone(), c.old_filled_by_postgres))
                    .collect(),
            )
            .or_default()
            .push(u);
    }
    by_cols.into_iter().collect()
}

/// One DDL statement and the phase it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseDdl {
    pub phase: String,
    pub sql: String,
    /// The table an `ADD COLUMN` alters (ACCESS EXCLUSIVE, which push takes
    /// as late as it can); None for the tables the plan creates.
    #[serde(skip)]
    pub alters: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub plan_name: String,
    pub plan_hash: String,
    pub snapshot_checksum: String,
    pub staged_checksum: String,
    /// Each staged table's checksum, as verified against the rehearsal: the
    /// state a push must leave, computed once.
    pub staged: Vec<StagedTable>,
    pub rehearsal_id: i64,
    /// Postgres DDL, in order, each with its phase.
    pub ddl: Vec<PhaseDdl>,
    /// Tables in apply order (parents before children).
    pub tables: Vec<TableDiff>,
    /// The plan's phase ids, in the order push applies them.
    pub phases: Vec<String>,
    /// `table.trigger` the plan holds off during updates (push holds off
    /// only those it proves to be updated_at stamps; see `db::triggers`).
    pub hold_off_triggers: Vec<String>,
    /// Digest of everything above: names the diff in receipts.
    pub hash: String,
}

/// The last rehearsal recorded in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RehearsalRecord {
    pub id: i64,
    pub rehearsed_at: String,
    pub plan_hash: String,
    pub snapshot_checksum: String,
    pub staged_checksum: String,
    pub passed: bool,
    pub checks_failed: i64,
}

pub fn last_rehearsal(snapshot: &Snapshot) -> Result<Option<RehearsalRecord>> {
    let exists: i64 = snapshot.conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sandbox_rehearsals'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(None);
    }
    let mut stmt = snapshot.conn.prepare(
        "SELECT id, rehearsed_at, plan_hash, snapshot_checksum, staged_checksum, passed, checks_failed \
         FROM _sandbox_rehearsals ORDER BY id DESC LIMIT 1",
    )?;
    let mut rows = stmt.query([])?;
    Ok(match rows.next()? {
        None => None,
        Some(r) => Some(RehearsalRecord {
            id: r.get(0)?,
            rehearsed_at: r.get(1)?,
            plan_hash: r.get(2)?,
            snapshot_checksum: r.get(3)?,
            staged_checksum: r.get(4)?,
            passed: r.get(5)?,
            checks_failed: r.get(6)?,
        }),
    })
}

/// Proves the snapshot holds a passing rehearsal of exactly this plan, on
/// exactly this pulled data, with staged tables as that rehearsal left them.
/// Anything else refuses (exit 1) with the reason and what to do.
pub fn authorised_rehearsal(
    snapshot: &Snapshot,
    plan: &Plan,
) -> Result<(RehearsalRecord, Vec<StagedTable>)> {
    let Some(last) = last_rehearsal(snapshot)? else {
        return Err(check_failed(format!(
            "{} has no rehearsal: run `{}` first",
            snapshot.path.display(),
            crate::advice::rehearse(&snapshot.path, plan)
        )));
    };
    if last.plan_hash != plan.hash {
        return Err(check_failed(format!(
            "the last rehearsal (#{}) ran plan {} but the plan in force is {}: the plan or seeds \
             changed since; run `{}` first",
            last.id,
            short(&last.plan_hash),
            short(&plan.hash),
            crate::advice::rehearse(&snapshot.path, plan)
        )));
    }
    if last.snapshot_checksum != snapshot.info.snapshot_checksum {
        return Err(check_failed(format!(
            "the last rehearsal (#{}) ran on other pulled data; run `{}` first",
            last.id,
            crate::advice::rehearse(&snapshot.path, plan)
        )));
    }
    if !last.passed {
        return Err(check_failed(format!(
            "the last rehearsal (#{}) failed {} checks; nothing may be pushed until a rehearsal \
             passes (see `{}` or the report_checks view)",
            last.id,
            last.checks_failed,
            crate::advice::rehearse(&snapshot.path, plan)
        )));
    }
    // The pulled tables the plan reads and writes: what the rehearsal and
    // this diff were computed from. A table outside both feeds nothing the
    // push writes or compares (its drift, with --strict, is checked against
    // the checksum recorded at pull), and re-hashing it was O(database):
    // 9 of a 100x push's 9.3 s.
    let depends = plan.read_set();
    let written = plan.write_set();
    for t in snapshot
        .tables
        .iter()
        .filter(|t| depends.contains(&t.meta.name) || written.contains(&t.meta.name))
    {
        let now = snapshot.checksum_of(&t.meta.name, &t.meta)?;
        if now.hex() != t.checksum {
            return Err(check_failed(format!(
                "pulled table {} was changed inside the snapshot after the pull (hand edit?); take a \
                 fresh snapshot: `{}`",
                t.meta.name,
                crate::advice::pull(&snapshot.path, plan)
            )));
        }
    }
    let mut staged_list = Vec::new();
    for name in plan.staged_tables() {
        let sum = staged_checksum(snapshot, plan, &name)?;
        staged_list.push(StagedTable {
            name,
            rows: sum.rows(),
            checksum: sum.hex(),
        });
    }
    if combined_staged_checksum(&staged_list) != last.staged_checksum {
        return Err(check_failed(format!(
            "the staged tables were changed after the rehearsal (hand edit in a DB browser?); \
             run `{}` again",
            crate::advice::rehearse(&snapshot.path, plan)
        )));
    }
    Ok((last, staged_list))
}

/// Order in which tables are applied: the order of the first phase writing
/// each, so parents (strategic priorities, workflows) precede children; in
/// one phase the tables it creates come first, since rows it writes into
/// existing tables may refer to them.
fn apply_order(plan: &Plan) -> Vec<String> {
    let mut order: Vec<(usize, bool, String)> = plan
        .staged_tables()
        .into_iter()
        .map(|t| {
            (
                plan.first_write(&t).unwrap_or(usize::MAX),
                !plan.creates(&t),
                t,
            )
        })
        .collect();
    order.sort_by_key(|(p, existing, _)| (*p, *existing));
    order.into_iter().map(|(_, _, n)| n).collect()
}

/// Postgres DDL for the plan's schema additions.
pub fn postgres_ddl(plan: &Plan) -> Vec<PhaseDdl> {
    let mut out = Vec::new();
    for t in &plan.schema.tables {
        let phase = t.phase.clone();
        let mut parts: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote_ident(&c.name),
                    c.pg_type,
                    if c.not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        parts.push(format!("PRIMARY KEY ({})", ident_list(&t.primary_key)));
        for u in &t.unique {
            parts.push(format!("UNIQUE ({})", ident_list(u)));
        }
        for fk in &t.foreign_keys {
            parts.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({})",
                ident_list(&fk.columns),
                crate::types::quote_table(&fk.ref_table),
                ident_list(&fk.ref_columns)
            ));
        }
        out.push(PhaseDdl {
            phase: phase.clone(),
            sql: format!(
                "CREATE TABLE public.{} (\n  {}\n)",
                quote_ident(&t.name),
                parts.join(",\n  ")
            ),
            alters: None,
        });
        // Supabase exposes public tables through its API: a new table must
        // not be readable by everyone just because the migration made it.
        out.push(PhaseDdl {
            phase,
            sql: format!(
                "ALTER TABLE public.{} ENABLE ROW LEVEL SECURITY",
                quote_ident(&t.name)
            ),
            alters: None,
        });
    }
    for a in &plan.schema.added_columns {
        let mut sql = format!(
            "ALTER TABLE public.{} ADD COLUMN {} {}",
            quote_ident(&a.table),
            quote_ident(&a.column.name),
            a.column.pg_type
        );
        if let Some(r) = &a.references {
            sql.push_str(&format!(
                " REFERENCES {} ({})",
                crate::types::quote_table(&r.table),
                quote_ident(&r.column)
            ));
        }
        out.push(PhaseDdl {
            phase: a.phase.clone(),
            sql,
            alters: Some(a.table.clone()),
        });
    }
    // Apply in phase order (a stable sort keeps each phase's own order).
    let pos = |id: &str| {
        plan.file
            .phases
            .iter()
            .position(|p| p.id == id)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|d| pos(&d.phase));
    out
}

/// Computes the diff of an authorised rehearsal.
pub fn compute(snapshot: &Snapshot, plan: &Plan) -> Result<Diff> {
    let (rehearsal, staged_list) = authorised_rehearsal(snapshot, plan)?;
    let tables = table_diffs(snapshot, plan)?;
    let ddl = postgres_ddl(plan);
    let mut diff = Diff {
        plan_name: plan.file.name.clone(),
        plan_hash: plan.hash.clone(),
        snapshot_checksum: snapshot.info.snapshot_checksum.clone(),
        staged_checksum: combined_staged_checksum(&staged_list),
        staged: staged_list,
        rehearsal_id: rehearsal.id,
        ddl,
        tables,
        phases: plan.file.phases.iter().map(|p| p.id.clone()).collect(),
        hold_off_triggers: plan.file.hold_off_triggers.clone(),
        hash: String::new(),
    };
    diff.hash = diff_hash(&diff);
    Ok(diff)
}

/// Each written table's changes, in apply order, from the staged tables and
/// the rehearsal's record of each phase: what [`compute`] pushes, and what
/// the rehearsal replays in the push's order before it passes.
pub fn table_diffs(snapshot: &Snapshot, plan: &Plan) -> Result<Vec<TableDiff>> {
    let mut tables = Vec::new();
    for name in apply_order(plan) {
        let after = staged_meta(&snapshot.conn, snapshot, plan, &name)?;
        let key = after.primary_key();
        if key.is_empty() {
            return Err(check_failed(format!(
                "table {name} has no primary key: the push matches rows by key, so it cannot \
                 push this table (the rehearsal's primary key check names it)"
            )));
        }
        let created = plan.creates(&name);
        let mut inserts = Vec::new();
        let mut updates = Vec::new();
        let mut deletes = Vec::new();
        let before = if created {
            None
        } else {
            Some(
                &snapshot
                    .table(&name)
                    .ok_or_else(|| environment(format!("the snapshot has no table {name}")))?
                    .meta,
            )
        };
        match before {
            None => snapshot.for_each_row(&staged(&name), &after, |r| {
                inserts.push(r);
                Ok(())
            })?,
            Some(before) => diff_existing(
                snapshot,
                before,
                &after,
                &mut inserts,
                &mut updates,
                &mut deletes,
            )?,
        }
        let key_idx = key_positions(&after, &key)?;
        let explicit_nulls = explicit_nulls(snapshot, plan, &name, &after, &key_idx, &inserts)?;
        let phases = phase_changes(snapshot, plan, &after, before)?;
        let mut table = TableDiff {
            table: name,
            created,
            columns: after.columns.clone(),
            key,
            inserts,
            updates,
            deletes,
            explicit_nulls,
            phase_inserts: phases.inserts,
            phase_updates: phases.updates,
            phase_deletes: phases.deletes,
            added_filled: plan
                .schema
                .added_columns
                .iter()
                .filter(|a| a.table == after.name)
                .filter_map(|a| after.column(&a.column.name))
                .filter(|c| {
                    c.filled_by_postgres()
                        && !c.never_written()
                        && crate::db::staging::constant_default(c).is_none()
                })
                .map(|c| c.name.clone())
                .collect(),
        };
        table.mark_values_filled_at_insert();
        table.mark_values_filled_at_add_column();
        tables.push(table);
    }
    Ok(tables)
}

/// The NULLs new rows hold in columns Postgres fills that the plan wrote
/// itself (not recorded as left to Postgres by the rehearsal), by row key
/// and column: the push writes them as NULL.
fn explicit_nulls(
    snapshot: &Snapshot,
    plan: &Plan,
    table: &str,
    after: &TableMeta,
    key_idx: &[usize],
    inserts: &[Vec<Option<String>>],
) -> Result<std::collections::BTreeSet<(String, String)>> {
    let mut out = std::collections::BTreeSet::new();
    let candidates: Vec<usize> = after
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.filled_by_postgres() && !c.never_written())
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() || inserts.is_empty() {
        return Ok(out);
    }
    let exists: i64 = snapshot.conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sandbox_left_to_postgres'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Err(check_failed(format!(
            "{table}: the rehearsal did not record which columns new rows left to Postgres (it \
             predates this version); run `{}` again",
            crate::advice::rehearse(&snapshot.path, plan)
        )));
    }
    let mut stmt = snapshot.conn.prepare(
        "SELECT row_key, column_name FROM _sandbox_left_to_postgres WHERE table_name = ?",
    )?;
    let left: std::collections::HashSet<(String, String)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for row in inserts {
        let key = crate::types::row_key(key_idx.iter().map(|i| row[*i].as_deref()));
        for i in &candidates {
            if row[*i].is_none() {
                let pair = (key.clone(), after.columns[*i].name.clone());
                if !left.contains(&pair) {
                    out.insert(pair);
                }
            }
        }
    }
    Ok(out)
}

/// The text the rehearsal records a row's key under.
fn key_text(k: &[String]) -> String {
    crate::types::row_key(k.iter().map(|v| Some(v.as_str())))
}

/// A row as the replay of the rehearsal's record holds it, each value by
/// its position among `after`'s columns; `None` is a column the row does
/// not have yet (one the plan adds later), read as NULL.
enum Replayed {
    /// A pulled row keeps only the columns the record changes, fills or
    /// keys it by ([`Replay::kept`]), and a hash of all its other values:
    /// holding each pulled row whole took gigabytes for a 300k-row table
    /// (S7), while those values can only be proved unchanged.
    Pulled {
        kept: Vec<Option<Option<String>>>,
        rest: u128,
    },
    /// A row a phase inserted, every column.
    Inserted(Vec<Option<Option<String>>>),
}

/// Which of `after`'s columns a pulled row keeps (the others are hashed).
struct Replay {
    /// For each column of `after`, its place in [`Replayed::Pulled`]'s
    /// `kept`, when kept.
    slot: Vec<Option<usize>>,
    /// The generated columns of `after`: the rehearsal leaves them to
    /// Postgres (NULL) in the rows whose inputs the plan changed
    /// (`generated::leave_stale_to_postgres`), and no phase writes them.
    generated: Vec<bool>,
}

impl Replay {
    /// The hash of a row's values at the positions `slot` does not keep.
    fn rest_hash<'a>(&self, values: impl Iterator<Item = Option<&'a str>>) -> u128 {
        values_hash(
            values
                .zip(&self.slot)
                .zip(&self.generated)
                .filter(|((_, slot), generated)| slot.is_none() && !**generated)
                .map(|((v, _), _)| v),
        )
    }

    /// A pulled row: `value(i)` is the value of `after`'s column `i`
    /// (`None` when the pulled table lacks the column).
    fn pulled<'a>(&self, value: impl Fn(usize) -> Option<Option<&'a str>>) -> Replayed {
        let n = self.slot.len();
        let kept = (0..n)
            .filter(|i| self.slot[*i].is_some())
            .map(|i| value(i).map(|v| v.map(str::to_string)))
            .collect();
        let rest = self.rest_hash((0..n).map(|i| value(i).flatten()));
        Replayed::Pulled { kept, rest }
    }

    fn get<'r>(&self, row: &'r Replayed, i: usize) -> Option<&'r Option<String>> {
        match row {
            Replayed::Pulled { kept, .. } => self.slot[i].and_then(|s| kept[s].as_ref()),
            Replayed::Inserted(values) => values[i].as_ref(),
        }
    }

    /// The value of column `i`, NULL when the row does not have it.
    fn value(&self, row: &Replayed, i: usize) -> Option<String> {
        self.get(row, i).cloned().flatten()
    }

    /// Sets column `i`, which a pulled row keeps (every column the record
    /// changes or fills is kept).
    fn set(&self, row: &mut Replayed, i: usize, v: Option<String>) {
        match row {
            Replayed::Pulled { kept, .. } => {
                if let Some(s) = self.slot[i] {
                    kept[s] = Some(v);
                }
            }
            Replayed::Inserted(values) => values[i] = Some(v),
        }
    }

    /// Whether the replayed row is the staged row `staged`.
    fn same(&self, row: &Replayed, staged: &[Option<String>]) -> bool {
        match row {
            Replayed::Inserted(values) => values
                .iter()
                .zip(staged)
                .zip(&self.generated)
                .all(|((v, s), g)| *g || v.as_ref().and_then(|v| v.as_ref()) == s.as_ref()),
            Replayed::Pulled { kept, rest } => {
                self.slot
                    .iter()
                    .zip(staged)
                    .zip(&self.generated)
                    .all(|((slot, s), g)| match slot {
                        Some(k) if !*g => kept[*k].as_ref().and_then(|v| v.as_ref()) == s.as_ref(),
                        _ => true,
                    })
                    && self.rest_hash(staged.iter().map(|v| v.as_deref())) == *rest
            }
        }
    }
}

/// What each phase changed in one table.
#[derive(Default)]
struct PhaseChanges {
    inserts: Vec<PhaseRow>,
    updates: Vec<PhaseUpdate>,
    deletes: Vec<PhaseRow>,
}

/// Reads what each phase changed in a table, as the rehearsal recorded it
/// (`_sandbox_phase_rows`), and proves it: replayed in order from the
/// pulled rows (`before`; none for a table the plan creates), the changes
/// must arrive exactly at the staged rows. Anything else is refused, since
/// the push would then apply something the rehearsal did not check.
fn phase_changes(
    snapshot: &Snapshot,
    plan: &Plan,
    after: &TableMeta,
    before: Option<&TableMeta>,
) -> Result<PhaseChanges> {
    use std::collections::HashMap;
    let table = after.name.as_str();
    let rehearse_again = |why: String| {
        check_failed(format!(
            "{table}: {why}: the rehearsal's record of what each phase changed does not match \
             the staged rows (it predates this version, or the file was edited); run `{}` again",
            crate::advice::rehearse(&snapshot.path, plan)
        ))
    };
    let exists: i64 = snapshot.conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sandbox_phase_rows'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Err(rehearse_again("no record".into()));
    }
    let key = after.primary_key();
    let position = |name: &str| after.columns.iter().position(|c| c.name == name);
    let known: std::collections::HashSet<&str> =
        plan.file.phases.iter().map(|p| p.id.as_str()).collect();
    let phase_index = |id: &str| plan.file.phases.iter().position(|p| p.id == id);
    // The columns the plan adds here with a constant default: at their
    // phase, Postgres's ADD COLUMN gives every row there that value (the
    // rehearsal's working copy did the same), before the phase's changes.
    let mut to_fill: Vec<(usize, usize, String)> = plan
        .schema
        .added_columns
        .iter()
        .filter(|a| a.table == table)
        .filter_map(|a| {
            let i = position(&a.column.name)?;
            Some((
                phase_index(&a.phase)?,
                i,
                added_column_fill(&after.columns[i])?,
            ))
        })
        .collect();
    // A pulled row keeps its key, the columns filled and those any update
    // changes (read from the record first; an unreadable change is named
    // by the replay below).
    let mut keep = vec![false; after.columns.len()];
    for k in &key {
        if let Some(i) = position(k) {
            keep[i] = true;
        }
    }
    for (_, i, _) in &to_fill {
        keep[*i] = true;
    }
    {
        let mut stmt = snapshot.conn.prepare(
            "SELECT data FROM _sandbox_phase_rows WHERE table_name = ?1 AND op = 'update'",
        )?;
        let mut rows = stmt.query([table])?;
        while let Some(r) = rows.next()? {
            let data: String = r.get(0)?;
            if let Ok(serde_json::Value::Array(changes)) = serde_json::from_str(&data) {
                for c in &changes {
                    if let Some(i) = c.get(0).and_then(|c| c.as_str()).and_then(position) {
                        keep[i] = true;
                    }
                }
            }
        }
    }
    let mut kept = 0;
    let replay = Replay {
        generated: after
            .columns
            .iter()
            .map(|c| c.generated.is_some())
            .collect(),
        slot: keep
            .iter()
            .map(|k| {
                k.then(|| {
                    kept += 1;
                    kept - 1
                })
            })
            .collect(),
    };
    let mut current: HashMap<String, Replayed> = HashMap::new();
    if let Some(before) = before {
        let key_idx = key_positions(before, &key)?;
        // Where each of `after`'s columns sits in the pulled table.
        let at: Vec<Option<usize>> = after
            .columns
            .iter()
            .map(|c| before.columns.iter().position(|b| b.name == c.name))
            .collect();
        snapshot.for_each_row(table, before, |r| {
            let k = key_text(&key_values(table, &key, &key_idx, &r)?);
            let row = replay.pulled(|i| at[i].map(|j| r[j].as_deref()));
            current.insert(k, row);
            Ok(())
        })?;
    }
    let mut out = PhaseChanges::default();
    let mut stmt = snapshot.conn.prepare(
        "SELECT phase, op, row_key, data FROM _sandbox_phase_rows WHERE table_name = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([table])?;
    while let Some(r) = rows.next()? {
        let (phase, op, k, data): (String, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        if !known.contains(phase.as_str()) {
            return Err(rehearse_again(format!("phase {phase} is not the plan's")));
        }
        fill_added_columns(&replay, &mut current, &mut to_fill, phase_index(&phase));
        let data: serde_json::Value = serde_json::from_str(&data)
            .map_err(|e| rehearse_again(format!("row {k} is not readable ({e})")))?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        match (op.as_str(), &data) {
            ("insert" | "delete", serde_json::Value::Object(o)) => {
                let values: Vec<Option<Option<String>>> = after
                    .columns
                    .iter()
                    .map(|c| o.get(&c.name).map(text))
                    .collect();
                let row = PhaseRow {
                    phase,
                    row: values.iter().map(|v| v.clone().flatten()).collect(),
                    absent: (0..after.columns.len())
                        .filter(|i| values[*i].is_none())
                        .collect(),
                };
                if op == "insert" {
                    if current
                        .insert(k.clone(), Replayed::Inserted(values))
                        .is_some()
                    {
                        return Err(rehearse_again(format!("row {k} is inserted twice")));
                    }
                    out.inserts.push(row);
                } else {
                    if current.remove(&k).is_none() {
                        return Err(rehearse_again(format!("row {k} is deleted, but not there")));
                    }
                    out.deletes.push(PhaseRow {
                        absent: vec![],
                        ..row
                    });
                }
            }
            ("update", serde_json::Value::Array(changes)) => {
                let Some(row) = current.get_mut(&k) else {
                    return Err(rehearse_again(format!("row {k} is updated, but not there")));
                };
                let mut update = RowUpdate {
                    key: key
                        .iter()
                        .map(|c| {
                            position(c)
                                .and_then(|i| replay.value(row, i))
                                .unwrap_or_default()
                        })
                        .collect(),
                    changes: Vec::new(),
                };
                for change in changes {
                    let (Some(column), Some(old), Some(new)) = (
                        change.get(0).and_then(|c| c.as_str()),
                        change.get(1),
                        change.get(2),
                    ) else {
                        return Err(rehearse_again(format!("row {k}: an unreadable change")));
                    };
                    let Some(i) = position(column) else {
                        return Err(rehearse_again(format!(
                            "row {k}: {column} is not a column of the table"
                        )));
                    };
                    if replay.value(row, i) != text(old) {
                        return Err(rehearse_again(format!(
                            "row {k}: {column} did not hold the value the change starts from"
                        )));
                    }
                    replay.set(row, i, text(new));
                    update.changes.push(ColumnUpdate {
                        column: column.to_string(),
                        old: text(old),
                        new: text(new),
                        old_filled_by_postgres: false,
                    });
                }
                out.updates.push(PhaseUpdate { phase, update });
            }
            _ => return Err(rehearse_again(format!("row {k}: unknown change {op}"))),
        }
    }
    fill_added_columns(&replay, &mut current, &mut to_fill, None);
    let key_idx = key_positions(after, &key)?;
    snapshot.for_each_row(&staged(table), after, |r| {
        let k = key_text(&key_values(table, &key, &key_idx, &r)?);
        let replayed = current.remove(&k);
        if replayed.is_some_and(|row| replay.same(&row, &r)) {
            Ok(())
        } else {
            Err(rehearse_again(format!(
                "staged row {k} differs from the replay"
            )))
        }
    })?;
    if let Some(k) = current.keys().min() {
        return Err(rehearse_again(format!("row {k} is not staged")));
    }
    Ok(out)
}

/// What Postgres's `ADD COLUMN` puts in the rows already there for a
/// column the plan adds: its constant default (a domain's, down the
/// chain), else nothing (NULL, or a volatile default's value).
fn added_column_fill(c: &ColumnMeta) -> Option<String> {
    crate::db::staging::constant_default(c).map(str::to_string)
}

/// Gives each replayed row that has not got it yet (it was there before
/// the column was added) the fill value of each added column of
/// `to_fill` (phase, column position, value) whose phase is at most `upto`
/// (every one when None), as the column's ADD COLUMN did on Postgres.
fn fill_added_columns(
    replay: &Replay,
    current: &mut std::collections::HashMap<String, Replayed>,
    to_fill: &mut Vec<(usize, usize, String)>,
    upto: Option<usize>,
) {
    to_fill.retain(|(phase, column, value)| {
        if upto.is_some_and(|u| *phase > u) {
            return true;
        }
        for row in current.values_mut() {
            if replay.get(row, *column).is_none() {
                replay.set(row, *column, Some(value.clone()));
            }
        }
        false
    });
}

fn diff_hash(diff: &Diff) -> String {
    let mut h = Sha256::new();
    h.update(diff.plan_hash.as_bytes());
    h.update(diff.snapshot_checksum.as_bytes());
    for d in &diff.ddl {
        h.update(d.sql.as_bytes());
        h.update(b"\n");
    }
    for t in &diff.tables {
        h.update(format!("table {} {}\n", t.table, t.created).as_bytes());
        for r in &t.inserts {
            h.update(copy_text_line(r).as_bytes());
        }
        for (key, column) in &t.explicit_nulls {
            h.update(format!("explicit NULL {key} {column}\n").as_bytes());
        }
        for r in &t.deletes {
            h.update(b"delete ");
            h.update(copy_text_line(r).as_bytes());
        }
        for (what, rows) in [("insert", &t.phase_inserts), ("delete", &t.phase_deletes)] {
            for p in rows {
                h.update(format!("phase {} {what} {:?} ", p.phase, p.absent).as_bytes());
                h.update(copy_text_line(&p.row).as_bytes());
            }
        }
        for p in &t.phase_updates {
            h.update(format!("phase {}\n", p.phase).as_bytes());
        }
        for u in t
            .updates
            .iter()
            .chain(t.phase_updates.iter().map(|p| &p.update))
        {
            h.update(u.key.join("\t").as_bytes());
            for c in &u.changes {
                h.update(
                    copy_text_line(&[Some(c.column.as_str()), c.old.as_deref(), c.new.as_deref()])
                        .as_bytes(),
                );
            }
        }
    }
    hex::encode(h.finalize())
}

/// Where each primary key column sits among `meta`'s columns. A key column
/// the table lacks is an error: matching rows by another column would
/// pair the wrong rows.
pub(crate) fn key_positions(meta: &TableMeta, key: &[String]) -> Result<Vec<usize>> {
    key_positions_in(meta, key, "the snapshot is damaged — pull again")
}

/// [`key_positions`] of a table read from somewhere else than the snapshot:
/// `damaged` says what a missing key column means there.
pub(crate) fn key_positions_in(
    meta: &TableMeta,
    key: &[String],
    damaged: &str,
) -> Result<Vec<usize>> {
    key.iter()
        .map(|k| {
            meta.columns
                .iter()
                .position(|c| &c.name == k)
                .ok_or_else(|| {
                    environment(format!(
                        "table {}: primary key column {k} is not one of its columns; {damaged}",
                        meta.name
                    ))
                })
        })
        .collect()
}

/// A row's key values. NULL in a key column is an error naming it: read as
/// an empty string it would match a row whose key really is empty.
fn key_values(
    table: &str,
    key: &[String],
    positions: &[usize],
    row: &[Option<String>],
) -> Result<Vec<String>> {
    positions
        .iter()
        .zip(key)
        .map(|(i, k)| {
            row.get(*i).cloned().flatten().ok_or_else(|| {
                environment(format!(
                    "table {table}: a row has no value in its primary key column {k}"
                ))
            })
        })
        .collect()
}

/// Rows of the staged copy that are new (by key), columns that differ for
/// keys present in both, and pulled rows the staged copy no longer has
/// (whole, as before-images; protected tables never get here with one: the
/// rehearsal's guard fails first).
fn diff_existing(
    snapshot: &Snapshot,
    before: &TableMeta,
    after: &TableMeta,
    inserts: &mut Vec<Vec<Option<String>>>,
    updates: &mut Vec<RowUpdate>,
    deletes: &mut Vec<Vec<Option<String>>>,
) -> Result<()> {
    let key = after.primary_key();
    let key_idx = key_positions(after, &key)?;
    let before_key_idx = key_positions(before, &key)?;
    // Each pulled row as `after`'s columns see it: a column the plan adds
    // holds what Postgres's ADD COLUMN gave the row (its constant default,
    // a domain's), so the push finds that there, not NULL.
    let from_before: Vec<Option<usize>> = after
        .columns
        .iter()
        .map(|c| before.columns.iter().position(|b| b.name == c.name))
        .collect();
    let fills: Vec<Option<String>> = after.columns.iter().map(added_column_fill).collect();
    // A generated column is Postgres's to recompute: never written, its
    // staged NULL (inputs changed) is no change.
    let compared: Vec<bool> = after
        .columns
        .iter()
        .map(|c| c.generated.is_none())
        .collect();
    let hash_of = |values: &mut dyn Iterator<Item = Option<&str>>| {
        values_hash(values.zip(&compared).filter(|(_, c)| **c).map(|(v, _)| v))
    };
    // `filled`: with the added columns' fill (to compare with the staged
    // row), or NULL there (a deleted row's before-image).
    let as_after = |old: &[Option<String>], filled: bool| -> Vec<Option<String>> {
        from_before
            .iter()
            .zip(&fills)
            .map(|(j, fill)| match j {
                Some(j) => old[*j].clone(),
                None if filled => fill.clone(),
                None => None,
            })
            .collect()
    };
    // By key, each pulled row's rowid and the hash of its values as
    // `after`'s columns see them, not the row: holding every pulled row
    // whole took gigabytes for a 300k-row table (S7). A row whose staged
    // hash differs is read again by rowid to name what changed.
    let mut pulled: std::collections::HashMap<Vec<String>, PulledRow> =
        std::collections::HashMap::new();
    let by_rowid = snapshot.for_each_row_with_rowid(&before.name, before, |rowid, r| {
        let k = key_values(&before.name, &key, &before_key_idx, &r)?;
        let hash = hash_of(
            &mut from_before.iter().zip(&fills).map(|(j, fill)| match j {
                Some(j) => r[*j].as_deref(),
                None => fill.as_deref(),
            }),
        );
        pulled.insert(k, PulledRow::At { rowid, hash });
        Ok(())
    })?;
    if by_rowid.is_none() {
        // Every name of the rowid is a column: the rows are kept whole.
        snapshot.for_each_row(&before.name, before, |r| {
            let k = key_values(&before.name, &key, &before_key_idx, &r)?;
            pulled.insert(k, PulledRow::Whole(r));
            Ok(())
        })?;
    }
    let old_row = |p: PulledRow, filled: bool| -> Result<Vec<Option<String>>> {
        let row = match p {
            PulledRow::At { rowid, .. } => snapshot.row_at(&before.name, before, rowid)?,
            PulledRow::Whole(row) => row,
        };
        Ok(as_after(&row, filled))
    };
    snapshot.for_each_row(&staged(&after.name), after, |r| {
        let k = key_values(&after.name, &key, &key_idx, &r)?;
        let Some(p) = pulled.remove(&k) else {
            inserts.push(r);
            return Ok(());
        };
        if let PulledRow::At { hash, .. } = p {
            if hash == hash_of(&mut r.iter().map(Option::as_deref)) {
                return Ok(());
            }
        }
        let old = old_row(p, true)?;
        let changes: Vec<ColumnUpdate> = after
            .columns
            .iter()
            .zip(old)
            .zip(&r)
            .filter(|((c, old_v), new)| c.generated.is_none() && old_v != *new)
            .map(|((c, old_v), new)| ColumnUpdate {
                column: c.name.clone(),
                old: old_v,
                new: new.clone(),
                old_filled_by_postgres: false,
            })
            .collect();
        if !changes.is_empty() {
            updates.push(RowUpdate { key: k, changes });
        }
        Ok(())
    })?;
    // What is left of the pull was deleted, in the staged column order.
    let mut gone: Vec<(Vec<String>, PulledRow)> = pulled.into_iter().collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, p) in gone {
        deletes.push(old_row(p, false)?);
    }
    Ok(())
}

/// A pulled row while [`diff_existing`] matches it: where to read it again
/// and the hash of its values, or (no rowid to read it by) the row itself,
/// in the pulled table's column order.
enum PulledRow {
    At { rowid: i64, hash: u128 },
    Whole(Vec<Option<String>>),
}

/// The hash of a row's values, NULL told apart from every text.
fn values_hash<'a>(values: impl Iterator<Item = Option<&'a str>>) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for v in values {
        match v {
            None => h.update(&[0]),
            Some(v) => {
                h.update(&[1]);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    h.digest128()
}

/// A summary row per table, for people.
#[derive(Debug, Clone, Serialize)]
pub struct DiffSummary {
    pub table: String,
    pub created: bool,
    pub inserts: usize,
    pub updates: usize,
    pub deletes: usize,
    pub updated_columns: Vec<String>,
}

impl Diff {
    pub fn summary(&self) -> Vec<DiffSummary> {
        self.tables
            .iter()
            .map(|t| {
                let mut cols: Vec<String> = t
                    .updates
                    .iter()
                    .flat_map(|u| u.changes.iter().map(|c| c.column.clone()))
                    .collect();
                cols.sort();
                cols.dedup();
                DiffSummary {
                    table: t.table.clone(),
                    created: t.created,
                    inserts: t.inserts.len(),
                    updates: t.updates.len(),
                    deletes: t.deletes.len(),
                    updated_columns: cols,
                }
            })
            .collect()
    }

    /// A psql script of exactly what push does (without the checks push adds
    /// around it), for review: one transaction, phase by phase in plan order,
    /// each phase's DDL, then its rows, then its updates with the triggers
    /// the plan names in `hold_off_triggers` held off (push also proves each
    /// is a pure updated_at stamp, and refuses otherwise); every other
    /// trigger fires. As in push, the DDL runs under the pinned search_path
    /// and the row writes under the app's (its triggers and defaults resolve
    /// names as for the app), and each sequence numbering a column the rows
    /// set is moved past them (`db::postgres::sequences`): set where push's
    /// restart sets it when only `locked` tables (the public tables push
    /// locks against writers, and those the plan creates) draw from it,
    /// else drawn with `nextval()`.
    /// Plain SQL throughout (no `DO` block): it runs where plpgsql is
    /// revoked from PUBLIC. `snapshot` tells how the pull saw each trigger
    /// held off.
    pub fn to_sql(&self, snapshot: &Snapshot, locked: &[String]) -> String {
        let mut s = format!(
            "-- sandbox diff {} of plan {} (rehearsal #{}, snapshot {})\n\
             -- Review only: `sandbox push` applies this with drift checks, verification and a receipt.\n\
             \\set ON_ERROR_STOP on\nBEGIN;\nSET LOCAL standard_conforming_strings = on;\n{}\n",
            short(&self.hash),
            self.plan_name,
            self.rehearsal_id,
            short(&self.snapshot_checksum),
            crate::db::postgres::set_local_settings_sql()
        );
        if holds_off_any(self) {
            s.push_str(EXPECTATIONS_SQL);
        }
        let sequences = moves_any_sequence(self);
        if sequences {
            s.push_str(&sequence_functions_sql());
        }
        for phase in &self.phases {
            s.push_str(&self.phase_sql(snapshot, phase, locked));
        }
        if sequences {
            s.push_str(DROP_SEQUENCE_FUNCTIONS_SQL);
        }
        s.push_str("COMMIT;\n");
        s
    }

    fn phase_sql(&self, snapshot: &Snapshot, phase: &str, locked: &[String]) -> String {
        let mut s = format!("\n-- phase {phase}\n");
        for d in self.ddl.iter().filter(|d| d.phase == phase) {
            s.push_str(&d.sql);
            s.push_str(";\n");
        }
        let writes = self.tables.iter().any(|t| {
            t.inserts_of(phase).next().is_some()
                || t.deletes_of(phase).next().is_some()
                || !t.updates_of(phase).is_empty()
        });
        if !writes {
            return s;
        }
        s.push_str(
            "-- The rows are written under the app's search_path and TimeZone, as push writes \
             them:\n-- the database's triggers and defaults resolve names as they do for the app.\n",
        );
        s.push_str(crate::db::postgres::search_path::AS_THE_APP);
        s.push('\n');
        // Deletes first, children before parents, as push does.
        for t in self.tables.iter().rev() {
            let rows: Vec<&Vec<Option<String>>> = t.deletes_of(phase).collect();
            if rows.is_empty() {
                continue;
            }
            s.push_str(&format!("-- {}: {} rows deleted\n", t.table, rows.len()));
            for r in rows {
                let cond = t
                    .key
                    .iter()
                    .filter_map(|k| {
                        let i = t.columns.iter().position(|c| &c.name == k)?;
                        Some(format!(
                            "{} = {}",
                            quote_ident(k),
                            sql_literal(r[i].as_deref())
                        ))
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                s.push_str(&format!(
                    "DELETE FROM public.{} WHERE {cond};\n",
                    quote_ident(&t.table)
                ));
            }
        }
        // Then per table its updates before its inserts, as push does.
        for t in &self.tables {
            s.push_str(&self.update_sql(snapshot, t, phase));
            for g in t.insert_groups(phase) {
                let cols = g
                    .columns
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                s.push_str(&format!(
                    "-- {}: {} new rows\nCOPY public.{} ({cols}) FROM stdin;\n",
                    t.table,
                    g.rows.len(),
                    quote_ident(&t.table)
                ));
                for r in &g.rows {
                    s.push_str(&copy_text_line(r));
                }
                s.push_str("\\.\n");
            }
            for column in t.sequence_columns_written(phase) {
                s.push_str(&sequence_move_sql(&t.table, &column, locked));
            }
        }
        s.push_str(&crate::db::postgres::search_path::pin_sql());
        s.push('\n');
        s
    }

    /// A table's updates in one phase, with the triggers the plan names held
    /// off around them.
    fn update_sql(&self, snapshot: &Snapshot, t: &TableDiff, phase: &str) -> String {
        let mut s = String::new();
        let updates = t.updates_of(phase);
        if updates.is_empty() {
            return s;
        }
        s.push_str(&format!(
                "-- {}: {} rows updated; the updated_at triggers the plan names are held off as push does\n",
                t.table,
                updates.len()
            ));
        s.push_str(&trigger_toggle_sql(
            snapshot,
            &t.table,
            "DISABLE",
            &self.hold_off_triggers,
        ));
        for u in &updates {
            let sets = u
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "{} = {}",
                        quote_ident(&c.column),
                        sql_literal(c.new.as_deref())
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            // The old values must still be there, as push checks.
            let cond = t
                .key
                .iter()
                .zip(&u.key)
                .map(|(k, v)| format!("{} = {}", quote_ident(k), sql_literal(Some(v))))
                .chain(
                    u.changes
                        .iter()
                        .filter(|c| !c.old_filled_by_postgres)
                        .map(|c| {
                            let old = sql_literal(c.old.as_deref());
                            match t.columns.iter().find(|m| m.name == c.column) {
                                // No `=` for the type (json, point…): its
                                // text, as push compares it.
                                Some(m)
                                    if !crate::types::has_equality(&m.pg_type)
                                        && crate::types::sql_type_name(&m.pg_type).is_ok() =>
                                {
                                    format!(
                                        "{}::text IS NOT DISTINCT FROM {old}::{}::text",
                                        quote_ident(&c.column),
                                        m.pg_type
                                    )
                                }
                                _ => {
                                    format!("{} IS NOT DISTINCT FROM {old}", quote_ident(&c.column))
                                }
                            }
                        }),
                )
                .collect::<Vec<_>>()
                .join(" AND ");
            s.push_str(&format!(
                "UPDATE public.{} SET {sets} WHERE {cond};\n",
                quote_ident(&t.table)
            ));
        }
        s.push_str(&trigger_toggle_sql(
            snapshot,
            &t.table,
            "ENABLE",
            &self.hold_off_triggers,
        ));
        s
    }
}

/// How the pull saw a trigger the plan holds off, and so what the script
/// writes for it: plain `ALTER TABLE` statements, as no plpgsql may run
/// (`REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC`, as on hardened
/// Supabase databases), so nothing is looked up to decide at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PulledTrigger {
    /// Enabled (`ConstraintMeta` kind `t`), or not in the snapshot (on a
    /// table the plan creates): disabled around the updates, enabled again.
    Enabled,
    /// Disabled by the app (`td`): it fires for no write of the script,
    /// which leaves it as it is, as push does.
    Disabled,
    /// Replica-only (`tr`): the script runs as origin, so the same.
    ReplicaOnly,
}

impl PulledTrigger {
    fn of(snapshot: &Snapshot, table: &str, trigger: &str) -> PulledTrigger {
        let kind = snapshot.table(table).and_then(|t| {
            t.meta
                .constraints
                .iter()
                .find(|k| k.name == trigger && matches!(k.kind.as_str(), "t" | "td" | "tr"))
                .map(|k| k.kind.as_str())
        });
        match kind {
            Some("td") => PulledTrigger::Disabled,
            Some("tr") => PulledTrigger::ReplicaOnly,
            _ => PulledTrigger::Enabled,
        }
    }

    /// What the script expects of the trigger when it runs, in words (at
    /// most 64 bytes: Postgres cuts each value of a failing row it prints
    /// there), and as `pg_trigger.tgenabled`.
    fn expectation(self) -> (&'static str, &'static str) {
        match self {
            PulledTrigger::Enabled => ("enabled with ENABLE (not ALWAYS), as at the pull", "O"),
            PulledTrigger::Disabled => ("disabled, as at the pull: left so", "D"),
            PulledTrigger::ReplicaOnly => ("replica only, as at the pull: left so", "R"),
        }
    }
}

/// The script's guard: a row inserted into this temp table whose `holds`
/// is false fails the CHECK, and psql prints the row (`Failing row
/// contains (…)`), naming the expectation: plain SQL stops a script
/// where plpgsql would RAISE.
const EXPECTATIONS_SQL: &str =
    "-- Where the database is no longer as this script expects, it stops: a row below whose\n\
-- expectation is false fails this CHECK, and psql prints the row.\n\
CREATE TEMP TABLE sandbox_expectations (subject text NOT NULL, place text NOT NULL,\n\
\x20 expectation text NOT NULL, holds boolean NOT NULL,\n\
\x20 CONSTRAINT \"sandbox: this expectation no longer holds\" CHECK (holds)) ON COMMIT DROP;\n";

/// Holds off (`DISABLE`) or puts back (`ENABLE`) the triggers of a table
/// that the plan names in `hold_off_triggers`, as explicit statements for
/// the state the pull saw. The DO block that did this looked the triggers
/// up when the script ran and put each back in the mode it found; plain
/// SQL cannot, so before disabling, the script checks that each is still
/// as the pull saw it and as it will be put back (enabled with `ENABLE`:
/// an `ENABLE ALWAYS` stamp, which the snapshot does not tell apart, stops
/// the script, and push restores it), or still fires for no one. Push
/// additionally proves each is a pure updated_at stamp.
fn trigger_toggle_sql(snapshot: &Snapshot, table: &str, action: &str, named: &[String]) -> String {
    let mut s = String::new();
    for (_, trigger) in crate::plan::held_off_triggers(named).filter(|(t, _)| *t == table) {
        let pulled = PulledTrigger::of(snapshot, table, trigger);
        let alter = |how: &str| {
            format!(
                "ALTER TABLE public.{} {how} TRIGGER {};\n",
                quote_ident(table),
                quote_ident(trigger)
            )
        };
        match (action, pulled) {
            ("DISABLE", _) => {
                let (expected, mode) = pulled.expectation();
                s.push_str(&format!(
                    "INSERT INTO pg_temp.sandbox_expectations VALUES ({}, {}, {}, EXISTS (\
                     SELECT FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = 'public' AND c.relname = {} AND t.tgname = {} \
                     AND NOT t.tgisinternal AND t.tgenabled = {}));\n",
                    sql_literal(Some(&format!("trigger {trigger}"))),
                    sql_literal(Some(&format!("on public.{table}"))),
                    sql_literal(Some(expected)),
                    sql_literal(Some(table)),
                    sql_literal(Some(trigger)),
                    sql_literal(Some(mode)),
                ));
                if pulled == PulledTrigger::Enabled {
                    s.push_str(&alter("DISABLE"));
                }
            }
            (_, PulledTrigger::Enabled) => s.push_str(&alter("ENABLE")),
            (_, PulledTrigger::Disabled | PulledTrigger::ReplicaOnly) => {}
        }
    }
    s
}

/// Whether the script holds off any trigger: it then needs
/// [`EXPECTATIONS_SQL`].
fn holds_off_any(diff: &Diff) -> bool {
    diff.tables.iter().any(|t| {
        crate::plan::held_off_triggers(&diff.hold_off_triggers).any(|(table, _)| table == t.table)
            && diff.phases.iter().any(|p| !t.updates_of(p).is_empty())
    })
}

/// The plain-SQL functions the script moves sequences with, created in
/// `pg_temp` (gone with the session, dropped before COMMIT), as no
/// plpgsql may run. They read the catalog with push's own queries
/// ([`FEEDS_SQL`](crate::db::postgres::sequences::FEEDS_SQL),
/// [`SHARERS_SQL`](crate::db::postgres::sequences::SHARERS_SQL)) and
/// move a sequence as `sequences::advance_past_values` does: only one
/// behind the largest value written (smallest, counting down), only
/// forward.
fn sequence_functions_sql() -> String {
    use crate::db::postgres::sequences::{DRAWN_ONE_BY_ONE, FEEDS_SQL, SHARERS_SQL};
    format!(
        "-- Plain SQL functions that move the sequences numbering the columns written, as push\n\
         -- moves them (dropped before COMMIT).\n\
         -- The sequences feeding column $2 of table $1 (public.\"t\"): push's own query.\n\
         CREATE OR REPLACE FUNCTION pg_temp.sandbox_feeds(text, text) RETURNS TABLE (nspname text, \
         relname text, seqincrement int8, seqmin int8, seqmax int8, seqcycle boolean)\n\
         LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS {feeds};\n\
         -- The columns drawing from sequence $1: push's own query.\n\
         CREATE OR REPLACE FUNCTION pg_temp.sandbox_sharers(text) RETURNS TABLE (nspname text, \
         relname text, attname text)\n\
         LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS {sharers};\n\
         -- The value nextval() of sequence $1 (step $2) returns next. Push reads it with\n\
         -- SELECT last_value, is_called FROM the sequence; plain SQL names no relation found\n\
         -- at run time, so table_to_xml runs that SELECT.\n\
         CREATE OR REPLACE FUNCTION pg_temp.sandbox_next_value(text, int8) RETURNS numeric\n\
         LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $f$\n\
         SELECT pg_catalog.substring(r.x, '<last_value>(-?[0-9]+)</last_value>')::numeric\n\
         \x20 + CASE WHEN pg_catalog.strpos(r.x, '<is_called>true</is_called>') > 0 THEN $2 ELSE 0 END\n\
         FROM (SELECT pg_catalog.table_to_xml($1::regclass, false, true, '')::text AS x) r $f$;\n\
         -- Moves each sequence feeding column $2 of table $1 past the values the column holds\n\
         -- ($3 the largest, $4 the smallest), as push does; $5: the tables push locks against\n\
         -- writers. One row per sequence moved, saying how.\n\
         CREATE OR REPLACE FUNCTION pg_temp.sandbox_move_past(text, text, int8, int8, text[])\n\
         RETURNS TABLE (sequence text, moved text)\n\
         LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $f$\n\
         WITH feed AS MATERIALIZED (\n\
         \x20 SELECT f.seq, f.step, CASE WHEN f.step > 0 THEN $3 ELSE $4 END AS written,\n\
         \x20        pg_temp.sandbox_next_value(f.seq, f.step) AS next,\n\
         \x20        -- shared: a column of a table push does not lock draws from it too\n\
         \x20        EXISTS (SELECT FROM pg_temp.sandbox_sharers(f.seq) s\n\
         \x20                WHERE NOT (s.nspname = 'public' AND s.relname = ANY ($5))) AS shared\n\
         \x20 FROM (SELECT pg_catalog.format('%I.%I', nspname, relname) AS seq, seqincrement AS step\n\
         \x20       FROM pg_temp.sandbox_feeds($1, $2)) f)\n\
         SELECT seq, CASE\n\
         \x20 -- Only tables push locks draw from it: set where push's ALTER SEQUENCE … RESTART\n\
         \x20 -- sets it, one step past the values (setval() is not undone by a ROLLBACK: a script\n\
         \x20 -- that stops later leaves the sequence forward, never back).\n\
         \x20 WHEN NOT shared THEN 'next value ' || pg_catalog.setval(seq::regclass, written + step, false)\n\
         \x20 -- Shared with a table the app keeps writing: drawn with nextval(), which never goes\n\
         \x20 -- back whoever else draws meanwhile, one value at a time up to {DRAWN_ONE_BY_ONE} …\n\
         \x20 WHEN pg_catalog.ceil(pg_catalog.abs(written - next) / pg_catalog.abs(step)) + 1 <= {DRAWN_ONE_BY_ONE}\n\
         \x20 THEN 'drew ' || (SELECT pg_catalog.count(pg_catalog.nextval(d.seq))\n\
         \x20   FROM (SELECT seq::regclass AS seq) d, pg_catalog.generate_series(1,\n\
         \x20     (pg_catalog.ceil(pg_catalog.abs(written - next) / pg_catalog.abs(step)) + 1)::int8))\n\
         \x20   || ' values'\n\
         \x20 -- … farther, one draw proves where it stands and setval() jumps past the values,\n\
         \x20 -- only when that draw is behind them.\n\
         \x20 ELSE 'drew one value' || CASE WHEN pg_catalog.sign(step::numeric)\n\
         \x20     * (pg_catalog.nextval(seq::regclass) - written) < 0\n\
         \x20   THEN ', then setval() to ' || pg_catalog.setval(seq::regclass, written) ELSE '' END\n\
         \x20 END\n\
         FROM feed\n\
         -- Only a sequence behind the values written moves: one already past them is left.\n\
         WHERE written IS NOT NULL\n\
         \x20 AND CASE WHEN step > 0 THEN written >= next ELSE written <= next END $f$;\n",
        feeds = dollar_quoted(FEEDS_SQL),
        sharers = dollar_quoted(SHARERS_SQL),
    )
}

/// Drops what [`sequence_functions_sql`] created.
const DROP_SEQUENCE_FUNCTIONS_SQL: &str =
    "DROP FUNCTION pg_temp.sandbox_move_past(text, text, int8, int8, text[]), \
     pg_temp.sandbox_next_value(text, int8), pg_temp.sandbox_sharers(text), \
     pg_temp.sandbox_feeds(text, text);\n";

/// Whether the script moves any sequence: it then needs
/// [`sequence_functions_sql`].
fn moves_any_sequence(diff: &Diff) -> bool {
    diff.tables.iter().any(|t| {
        diff.phases
            .iter()
            .any(|p| !t.sequence_columns_written(p).is_empty())
    })
}

/// What push does to each sequence feeding `public.table.column` after
/// writing the column's values (`sequences::advance_past_values`), in
/// plain SQL: one call of [`sequence_functions_sql`]'s
/// `sandbox_move_past`, which reads the sequences and their sharers when
/// the script runs. A sequence behind the largest value (smallest,
/// counting down) moves one step past it: set there when only `locked`
/// tables draw from it, else drawn with `nextval()` (past
/// [`DRAWN_ONE_BY_ONE`](crate::db::postgres::sequences::DRAWN_ONE_BY_ONE)
/// values, one draw and a `setval()`). Everything is schema-qualified: it
/// runs under the app's search_path.
fn sequence_move_sql(table: &str, column: &str, locked: &[String]) -> String {
    let locked = locked
        .iter()
        .map(|t| sql_literal(Some(t)))
        .collect::<Vec<_>>()
        .join(", ");
    let (col, tbl) = (quote_ident(column), quote_ident(table));
    format!(
        "-- {table}.{column}: its sequences moved past the values written, as push moves them\n\
         SELECT * FROM pg_temp.sandbox_move_past({qualified}, {column_lit},\n\
         \x20 (SELECT pg_catalog.max({col})::int8 FROM public.{tbl}),\n\
         \x20 (SELECT pg_catalog.min({col})::int8 FROM public.{tbl}),\n\
         \x20 ARRAY[{locked}]::text[]);\n",
        qualified = sql_literal(Some(&format!("public.{tbl}"))),
        column_lit = sql_literal(Some(column)),
    )
}

/// A query as a dollar-quoted literal: a function body in the script.
fn dollar_quoted(sql: &str) -> String {
    format!("$q${sql}$q$")
}

/// A SQL string literal (standard_conforming_strings on).
pub fn sql_literal(v: Option<&str>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

/// Opens the snapshot and computes its diff.
pub fn diff_snapshot(path: &Path, plan: &Plan) -> Result<(Snapshot, Diff)> {
    let snapshot = Snapshot::open(path)?;
    let diff = compute(&snapshot, plan)?;
    Ok((snapshot, diff))
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use crate::catalog::{ConstraintMeta, TableRole};

    fn meta(columns: &[&str], key: &[&str]) -> TableMeta {
        let c = columns
            .iter()
            .map(|name| ColumnMeta {
                name: name.to_string(),
                pg_type: "text".into(),
                ..ColumnMeta::default()
            })
            .collect();
        TableMeta {
            name: "t".into(),
            role: TableRole::Source,
            columns: c,
            constraints: vec![ConstraintMeta::new(
                "t_pkey".into(),
                "p",
                key.iter().map(|k| k.to_string()).collect(),
                String::new(),
            )],
        }
    }

    #[test]
    fn a_key_column_the_table_lacks_is_an_error_not_column_0() {
        let m = meta(&["name", "id"], &["id"]);
        assert_eq!(key_positions(&m, &m.primary_key()).unwrap(), vec![1]);
        let m = meta(&["name", "code"], &["id"]);
        let e = key_positions(&m, &m.primary_key()).unwrap_err();
        assert!(
            e.to_string()
                .contains("primary key column id is not one of its columns"),
            "{e}"
        );
    }

    #[test]
    fn a_null_key_value_is_an_error_not_an_empty_string() {
        let key = vec!["id".to_string()];
        assert_eq!(
            key_values("t", &key, &[1], &[None, Some("k1".into())]).unwrap(),
            vec!["k1".to_string()]
        );
        let e = key_values("t", &key, &[0], &[None, Some("k1".into())]).unwrap_err();
        assert!(
            e.to_string()
                .contains("a row has no value in its primary key column id"),
            "{e}"
        );
    }
}
