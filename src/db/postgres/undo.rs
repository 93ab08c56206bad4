//! What the catalog says about undoing a receipt: the deferrable keys of
//! the tables it writes, and the tables the foreign keys it drops
//! reference (locked with the rest).

use anyhow::{Context, Result};
use tokio_postgres::types::Type;

use crate::receipt::Undo;

/// The DEFERRABLE UNIQUE and primary keys of the existing tables the undo
/// writes, as `SET CONSTRAINTS` names them; empty when there are none.
pub async fn deferrable_unique_keys(
    tx: &tokio_postgres::Transaction<'_>,
    undo: &Undo,
) -> Result<String> {
    let tables: Vec<&str> = undo
        .tables
        .iter()
        .filter(|t| !t.created)
        .map(|t| t.table.as_str())
        .collect();
    if tables.is_empty() {
        return Ok(String::new());
    }
    let names: Vec<String> = tx
        .query(
            "SELECT DISTINCT format('%I.%I', n.nspname, c.conname) FROM pg_catalog.pg_constraint c \
             JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
             WHERE n.nspname = 'public' AND r.relname = ANY($1) AND c.contype IN ('u', 'p') \
             AND c.condeferrable ORDER BY 1",
            &[&tables],
        )
        .await
        .context("reading the deferrable unique keys of the written tables")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(names.join(", "))
}

/// The tables the foreign keys of the dropped columns and tables
/// reference: dropping such a key takes ACCESS EXCLUSIVE on the referenced
/// table too (its triggers go), so it is locked with the others rather
/// than by the bare DDL. Read from the database, not the receipt: the
/// constraints there are what the DROP removes. Only tables in `public`
/// (what the lock protocol locks) and not themselves dropped.
pub async fn referenced_by_dropped(
    tx: &tokio_postgres::Transaction<'_>,
    undo: &Undo,
) -> Result<Vec<String>> {
    let created: Vec<String> = undo.created_tables.clone();
    let col_tables: Vec<String> = undo.added_columns.iter().map(|a| a.table.clone()).collect();
    let col_names: Vec<String> = undo
        .added_columns
        .iter()
        .map(|a| a.column.clone())
        .collect();
    if created.is_empty() && col_tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query_typed(
            "SELECT DISTINCT r.relname::text \
             FROM pg_constraint c \
             JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_namespace tn ON tn.oid = t.relnamespace \
             JOIN pg_class r ON r.oid = c.confrelid \
             JOIN pg_namespace rn ON rn.oid = r.relnamespace \
             WHERE c.contype = 'f' AND c.confrelid <> c.conrelid \
               AND tn.nspname = 'public' AND rn.nspname = 'public' \
               AND NOT r.relname = ANY($1) \
               AND (t.relname = ANY($1) \
                    OR EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS d(tbl, col) \
                               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = d.col \
                               WHERE d.tbl = t.relname AND a.attnum = ANY(c.conkey))) \
             ORDER BY 1",
            &[
                (&created, Type::TEXT_ARRAY),
                (&col_tables, Type::TEXT_ARRAY),
                (&col_names, Type::TEXT_ARRAY),
            ],
        )
        .await
        .context("cannot read the foreign keys of what the rollback drops")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
