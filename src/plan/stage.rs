//! Staged tables: what a table looks like after the plan, in the snapshot.
//!
//! While the phases run, every table the plan writes is a TEMP table under
//! its real name (TEMP shadows `main` for unqualified names), so a phase's
//! `INSERT INTO workflows … SELECT … FROM dh_workflow` means what it says
//! and `main.<table>` stays the pulled state. When the rehearsal ends the
//! staged tables are stored in the file as `staged_<table>`, which is what
//! the diff, the push and a person with a DB browser read.

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use rusqlite::Connection;
use uuid::Uuid;

use super::{Plan, TargetColumn, TargetTable};
use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
use crate::db::sqlite::Snapshot;
use crate::db::staging::{
    drop_working_table_helpers, staged_table_ddl, working_add_column_sql, working_table_ddl,
    working_table_triggers,
};
use crate::types::{quote_ident, TableChecksum};

/// Namespace of every id the plan creates: UUID v5 of a natural key, so a
/// re-run or another machine produces the same rows.
pub const ID_NAMESPACE: Uuid = Uuid::from_bytes([
    0x67, 0xfd, 0x86, 0xc9, 0x44, 0x39, 0x4e, 0x79, 0xa2, 0x12, 0xd4, 0x2d, 0xa9, 0x34, 0x04, 0x85,
]);

pub const STAGED_PREFIX: &str = "staged_";

pub fn staged(name: &str) -> String {
    format!("{STAGED_PREFIX}{name}")
}

/// The deterministic id of something the plan creates (`plan_uuid(kind,
/// key)` in a phase's SQL).
pub fn plan_id(kind: &str, key: &str) -> String {
    Uuid::new_v5(&ID_NAMESPACE, format!("{kind}:{key}").as_bytes()).to_string()
}

/// The columns a table has in `schema` (`main` or `temp`) right now.
fn present_columns(conn: &Connection, schema: &str, table: &str) -> Result<HashSet<String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT name FROM pragma_table_info(?1, '{schema}')"
    ))?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<_>>>()?;
    Ok(names)
}

/// The metadata of a staged table stored as `staged_<table>`: a pulled
/// table plus the columns the plan adds, or a table the plan creates.
pub fn staged_meta(
    conn: &Connection,
    snapshot: &Snapshot,
    plan: &Plan,
    table: &str,
) -> Result<TableMeta> {
    meta_in(conn, snapshot, plan, table, "main", &staged(table))
}

/// The metadata of a staged table while the phases run (`temp.<table>`).
pub fn working_meta(
    conn: &Connection,
    snapshot: &Snapshot,
    plan: &Plan,
    table: &str,
) -> Result<TableMeta> {
    meta_in(conn, snapshot, plan, table, "temp", table)
}

fn meta_in(
    conn: &Connection,
    snapshot: &Snapshot,
    plan: &Plan,
    table: &str,
    schema: &str,
    sqlite_name: &str,
) -> Result<TableMeta> {
    if let Some(t) = plan.schema.tables.iter().find(|t| t.name == table) {
        return Ok(target_meta(t, &snapshot.target_types));
    }
    let pulled = snapshot
        .table(table)
        .ok_or_else(|| anyhow::anyhow!("the snapshot has no table {table}"))?;
    let mut meta = pulled.meta.clone();
    let present = present_columns(conn, schema, sqlite_name)?;
    for added in plan
        .schema
        .added_columns
        .iter()
        .filter(|a| a.table == table)
    {
        // A column of that name already pulled is the source's own: the
        // rehearsal fails naming it, and the staged table keeps its meaning.
        if present.contains(&added.column.name) && meta.column(&added.column.name).is_none() {
            let ordinal = meta.columns.len() as u32 + 1;
            meta.columns.push(planned_column(
                &snapshot.target_types,
                &added.column,
                ordinal,
            ));
            if let Some(r) = &added.references {
                meta.constraints.push(ConstraintMeta {
                    ref_table: Some(r.table.clone()),
                    ref_columns: vec![r.column.clone()],
                    ..ConstraintMeta::new(
                        format!("{}_{}_fkey", table, added.column.name),
                        "f",
                        vec![added.column.name.clone()],
                        format!(
                            "FOREIGN KEY ({}) REFERENCES {}({})",
                            added.column.name, r.table, r.column
                        ),
                    )
                });
            }
        }
    }
    Ok(meta)
}

/// A column target.json declares (one the plan adds, or of a table it
/// creates) as Postgres will have it: its type as the pull found it on
/// Postgres (`types`, see `Snapshot::target_types`) — a domain's base type,
/// NOT NULL, CHECKs and DEFAULT, an enum's labels, an array's elements —
/// else just its type's name.
pub fn planned_column(
    types: &BTreeMap<String, ColumnMeta>,
    c: &TargetColumn,
    ordinal: u32,
) -> ColumnMeta {
    let mut meta = types.get(&c.pg_type).cloned().unwrap_or_default();
    meta.name.clone_from(&c.name);
    meta.ordinal = ordinal;
    meta.pg_type.clone_from(&c.pg_type);
    meta.not_null = c.not_null;
    meta
}

/// A table the plan creates, described like a pulled one (`types` as for
/// [`planned_column`]).
pub fn target_meta(t: &TargetTable, types: &BTreeMap<String, ColumnMeta>) -> TableMeta {
    let mut constraints = vec![ConstraintMeta::new(
        format!("{}_pkey", t.name),
        "p",
        t.primary_key.clone(),
        format!("PRIMARY KEY ({})", t.primary_key.join(", ")),
    )];
    for (i, u) in t.unique.iter().enumerate() {
        constraints.push(ConstraintMeta::new(
            format!(
                "{}_{}_key{}",
                t.name,
                u.join("_"),
                if i == 0 { String::new() } else { i.to_string() }
            ),
            "u",
            u.clone(),
            format!("UNIQUE ({})", u.join(", ")),
        ));
    }
    for fk in &t.foreign_keys {
        constraints.push(ConstraintMeta {
            ref_table: Some(fk.ref_table.clone()),
            ref_columns: fk.ref_columns.clone(),
            ..ConstraintMeta::new(
                format!("{}_{}_fkey", t.name, fk.columns.join("_")),
                "f",
                fk.columns.clone(),
                format!(
                    "FOREIGN KEY ({}) REFERENCES {}({})",
                    fk.columns.join(", "),
                    fk.ref_table,
                    fk.ref_columns.join(", ")
                ),
            )
        });
    }
    TableMeta {
        name: t.name.clone(),
        role: TableRole::Target,
        columns: t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| planned_column(types, c, i as u32 + 1))
            .collect(),
        constraints,
    }
}

/// `CREATE TEMP TABLE <name>`: the one staged-table DDL, pointed at the
/// TEMP schema, its exactness-sensitive columns without affinity.
fn create_working_table(conn: &Connection, meta: &TableMeta) -> Result<()> {
    let sql = working_table_ddl(meta, &meta.name)?;
    let sql = sql.replacen("CREATE TABLE", "CREATE TEMP TABLE", 1);
    conn.execute_batch(&sql)?;
    Ok(())
}

/// Copies a pulled table into its working (TEMP) copy.
pub fn stage_pulled(conn: &Connection, meta: &TableMeta) -> Result<()> {
    create_working_table(conn, meta)?;
    let cols = crate::db::sqlite::ident_list(&meta.column_names());
    conn.execute_batch(&format!(
        "INSERT INTO temp.{0} ({cols}) SELECT {cols} FROM main.{0}",
        quote_ident(&meta.name)
    ))?;
    // After the copy, which lists every column: only the plan's inserts
    // go through them.
    conn.execute_batch(&working_table_triggers(meta, &[])?)?;
    Ok(())
}

/// A TEMP view under a pulled table's name that the plan only reads, its
/// numeric and floating-point columns compared as numbers, its dates and
/// timestamps as moments, its enums by label order and its `character(n)`
/// without padding (see `db::collation`): TEMP shadows `main` for
/// unqualified names, so the plan's SQL reads the pulled rows through it
/// and `cost > 0.2` means what it means on Postgres. Returns whether the
/// table needed one.
pub fn create_numeric_view(conn: &Connection, meta: &TableMeta) -> Result<bool> {
    use crate::db::collation::collation_of;
    if !meta.columns.iter().any(|c| collation_of(c).is_some()) {
        return Ok(false);
    }
    let columns: Vec<String> = meta
        .columns
        .iter()
        .map(|c| {
            let name = quote_ident(&c.name);
            if let Some(collation) = collation_of(c) {
                // A column of the pulled table keeps its TEXT affinity
                // through the view; the collation is added.
                format!("t.{name} COLLATE {collation} AS {name}")
            } else {
                format!("t.{name} AS {name}")
            }
        })
        .collect();
    conn.execute_batch(&format!(
        "CREATE TEMP VIEW {0} AS SELECT {1} FROM main.{0} t",
        quote_ident(&meta.name),
        columns.join(", ")
    ))?;
    Ok(true)
}

/// Drops the views of [`create_numeric_view`]: nothing after the phases
/// and the plan's checks should order the pulled rows by a collation the
/// file does not know (the diff pairs rows by their stored text).
pub fn drop_numeric_views(conn: &Connection, tables: &[String]) -> Result<()> {
    for t in tables {
        conn.execute_batch(&format!("DROP VIEW IF EXISTS temp.{}", quote_ident(t)))?;
    }
    Ok(())
}

/// Creates the tables and columns the plan adds in this phase, in the
/// working copies. An added column whose type has a constant DEFAULT (a
/// domain's, down its chain) holds it in every row already there, as
/// Postgres's `ADD COLUMN` fills them; returns the tables that got a
/// column.
pub fn apply_phase_ddl(
    conn: &Connection,
    snapshot: &Snapshot,
    plan: &Plan,
    phase_id: &str,
) -> Result<Vec<String>> {
    for t in plan.schema.tables.iter().filter(|t| t.phase == phase_id) {
        let meta = target_meta(t, &snapshot.target_types);
        create_working_table(conn, &meta)?;
        conn.execute_batch(&working_table_triggers(&meta, &[])?)?;
    }
    let mut altered = Vec::new();
    for a in plan
        .schema
        .added_columns
        .iter()
        .filter(|a| a.phase == phase_id)
    {
        // Already at the source: the rehearsal's check names it.
        if present_columns(conn, "temp", &a.table)?.contains(&a.column.name) {
            continue;
        }
        // Declared nullable: SQLite adds no NOT NULL column to rows it
        // has; the rehearsal's constraint checks hold it to NOT NULL.
        let column = ColumnMeta {
            not_null: false,
            ..planned_column(&snapshot.target_types, &a.column, 0)
        };
        // The rows there get the constant default, as Postgres's ADD
        // COLUMN gives them.
        conn.execute_batch(&working_add_column_sql(&a.table, &column)?)?;
        if !altered.contains(&a.table) {
            altered.push(a.table.clone());
        }
    }
    // The triggers that keep a REPLACE an UPDATE, made again with the
    // columns added so far: before, a later phase's `REPLACE INTO t (id,
    // name)` of a row reset a column an earlier phase added (and set) to
    // its default, where Postgres's UPDATE keeps it.
    for t in &altered {
        let Some(pulled) = snapshot.table(t) else {
            continue;
        };
        let meta = working_meta(conn, snapshot, plan, t)?;
        let added: Vec<String> = meta
            .columns
            .iter()
            .filter(|c| pulled.meta.column(&c.name).is_none())
            .map(|c| c.name.clone())
            .collect();
        conn.execute_batch(&working_table_triggers(&meta, &added)?)?;
    }
    Ok(altered)
}

/// Stores a working table in the file as `staged_<table>` and drops the
/// TEMP one.
pub fn store_staged(conn: &Connection, meta: &TableMeta) -> Result<()> {
    drop_working_table_helpers(conn, &meta.name)?;
    conn.execute_batch(&staged_table_ddl(meta, &staged(&meta.name))?)?;
    let cols = crate::db::sqlite::ident_list(&meta.column_names());
    conn.execute_batch(&format!(
        "INSERT INTO main.{} ({cols}) SELECT {cols} FROM temp.{}; DROP TABLE temp.{1};",
        quote_ident(&staged(&meta.name)),
        quote_ident(&meta.name)
    ))?;
    Ok(())
}

/// A staged table as a rehearsal left it: what push must find after applying.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StagedTable {
    pub name: String,
    pub rows: u64,
    pub checksum: String,
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
