//! What the catalog says about undoing a receipt: the deferrable keys of
//! the tables it writes, and the tables the foreign keys it drops
//! reference (locked with the rest).

use anyhow::{Context, Result};
use tokio_postgres::types::Type;

use crate::receipt::{AddedColumn, Undo};

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
        // Typed: one round trip, no prepare.
        .query_typed(
            "SELECT DISTINCT format('%I.%I', n.nspname, c.conname) FROM pg_catalog.pg_constraint c \
             JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
             WHERE n.nspname = 'public' AND r.relname = ANY($1) AND c.contype IN ('u', 'p') \
             AND c.condeferrable ORDER BY 1",
            &[(&tables, Type::TEXT_ARRAY)],
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
    created_tables: &[String],
    added_columns: &[AddedColumn],
) -> Result<Vec<String>> {
    let created: Vec<String> = created_tables.to_vec();
    let col_tables: Vec<String> = added_columns.iter().map(|a| a.table.clone()).collect();
    let col_names: Vec<String> = added_columns.iter().map(|a| a.column.clone()).collect();
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

/// When the undo drops what the push created: see [`drop_order`].
#[derive(Debug, Default)]
pub struct DropOrder {
    /// Added columns dropped before the rows are written.
    pub first: Vec<AddedColumn>,
    /// Created tables whose rows are deleted before the pushed rows of
    /// existing tables: they reference those (directly or through
    /// another such table). Dropped at the end with the others.
    pub emptied: Vec<String>,
}

/// The created tables and added columns the undo can drop last, right
/// before COMMIT, so that their ACCESS EXCLUSIVE locks (and those of the
/// tables their foreign keys reference) are held for the fewest round
/// trips; and what cannot wait. An added column is dropped first when the
/// row work needs it gone: its foreign key references a table the undo
/// deletes rows from (pushed rows, or an emptied created table), it is in
/// another constraint or a unique index or is referenced (a re-inserted
/// row gets its default, a restore could break a CHECK naming it), or it
/// is NOT NULL without a default (the re-insert leaves it out).
pub async fn drop_order(tx: &tokio_postgres::Transaction<'_>, undo: &Undo) -> Result<DropOrder> {
    if undo.created_tables.is_empty() && undo.added_columns.is_empty() {
        return Ok(DropOrder::default());
    }
    let col_tables: Vec<String> = undo.added_columns.iter().map(|a| a.table.clone()).collect();
    let col_names: Vec<String> = undo
        .added_columns
        .iter()
        .map(|a| a.column.clone())
        .collect();
    let from: Vec<String> = undo
        .created_tables
        .iter()
        .chain(col_tables.iter())
        .cloned()
        .collect();
    let fk_params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
        [(&from, Type::TEXT_ARRAY)];
    let col_params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] = [
        (&col_tables, Type::TEXT_ARRAY),
        (&col_names, Type::TEXT_ARRAY),
    ];
    let (fks, pinned) = futures_util::join!(
        tx.query_typed(
            "SELECT t.relname::text, r.relname::text, \
                    ARRAY(SELECT a.attname::text FROM pg_attribute a \
                          WHERE a.attrelid = t.oid AND a.attnum = ANY(c.conkey)) \
             FROM pg_constraint c \
             JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_namespace tn ON tn.oid = t.relnamespace AND tn.nspname = 'public' \
             JOIN pg_class r ON r.oid = c.confrelid \
             JOIN pg_namespace rn ON rn.oid = r.relnamespace AND rn.nspname = 'public' \
             WHERE c.contype = 'f' AND t.relname = ANY($1)",
            &fk_params,
        ),
        tx.query_typed(
            "SELECT d.tbl, d.col \
             FROM unnest($1::text[], $2::text[]) AS d(tbl, col) \
             JOIN pg_class t ON t.relname = d.tbl \
             JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public' \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = d.col \
             WHERE (a.attnotnull AND NOT a.atthasdef) \
                OR EXISTS (SELECT 1 FROM pg_constraint c \
                           WHERE (c.conrelid = t.oid AND c.contype <> 'f' \
                                  AND a.attnum = ANY(c.conkey)) \
                              OR (c.confrelid = t.oid AND a.attnum = ANY(c.confkey))) \
                OR EXISTS (SELECT 1 FROM pg_index x \
                           WHERE x.indrelid = t.oid AND x.indisunique \
                             AND a.attnum = ANY(x.indkey::int2[]))",
            &col_params,
        )
    );
    let fks: Vec<(String, String, Vec<String>)> = fks
        .context("cannot read the foreign keys of what the rollback drops")?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let pinned: Vec<(String, String)> = pinned
        .context("cannot read the constraints of the columns the rollback drops")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The tables the row work deletes from: pushed rows of existing
    // tables, then (to a fixpoint) created tables referencing those.
    let mut deleted_from: Vec<String> = undo
        .tables
        .iter()
        .filter(|t| !t.created && !t.inserted_keys.is_empty())
        .map(|t| t.table.clone())
        .collect();
    let mut emptied: Vec<String> = Vec::new();
    loop {
        let more: Vec<String> = undo
            .created_tables
            .iter()
            .filter(|c| !emptied.contains(c))
            .filter(|c| {
                fks.iter()
                    .any(|(t, r, _)| t == *c && r != *c && deleted_from.contains(r))
            })
            .cloned()
            .collect();
        if more.is_empty() {
            break;
        }
        deleted_from.extend(more.iter().cloned());
        emptied.extend(more);
    }
    let first = undo
        .added_columns
        .iter()
        .filter(|a| {
            pinned.iter().any(|(t, c)| *t == a.table && *c == a.column)
                || fks.iter().any(|(t, r, cols)| {
                    *t == a.table && cols.contains(&a.column) && deleted_from.contains(r)
                })
        })
        .cloned()
        .collect();
    Ok(DropOrder { first, emptied })
}
