//! Applying the undo: what the push created is dropped, the rows it wrote
//! deleted or restored, the rows it deleted inserted again, and the
//! sequences it moved put back.

use anyhow::{Context, Result};

use super::{Mode, RollbackReport};
use crate::db::dependents::PushedRows;
use crate::db::postgres::apply::{apply_updates, run_batch};
use crate::db::postgres::copy::copy_rows;
use crate::db::postgres::search_path::TypeSpellings;
use crate::db::postgres::sequences::restore;
use crate::db::postgres::undo::deferrable_unique_keys;
use crate::db::triggers::TriggerReport;
use crate::diff::{RowUpdate, TableDiff};
use crate::error::check_failed;
use crate::receipt::{AddedColumn, Undo, UndoTable};
use crate::types::quote_ident;

/// The undo's inputs, each read once by `Rollback::undo` (the created
/// tables to empty come from the same catalog read as the drop order).
#[derive(Clone, Copy)]
pub(super) struct UndoInputs<'a, 't> {
    pub tx: &'a tokio_postgres::Transaction<'t>,
    pub types: &'a TypeSpellings,
    pub undo: &'a Undo,
    pub pushed: &'a [PushedRows],
    pub triggers: &'a [TriggerReport],
    pub mode: Mode,
    /// Created tables emptied before they are dropped.
    pub emptied: &'a [String],
}

/// Removes or restores the rows the push wrote; what it created is dropped
/// after this, last (`drop_created`). Runs under the app's search_path:
/// everything here names its schema.
pub(super) async fn undo_changes(
    inputs: UndoInputs<'_, '_>,
    report: &mut RollbackReport,
) -> Result<()> {
    let UndoInputs {
        tx,
        types,
        undo,
        pushed,
        triggers,
        mode,
        emptied,
    } = inputs;
    // A DEFERRABLE unique key is checked once the rows are back, not row by
    // row: rows the push made trade its values (over several phases) trade
    // them back here. The rehearsal's replay (`write_order`) counts it so.
    let deferred = deferrable_unique_keys(tx, undo).await?;
    if !deferred.is_empty() {
        tx.batch_execute(&format!("SET CONSTRAINTS {deferred} DEFERRED"))
            .await
            .with_context(|| format!("deferring {deferred}"))?;
    }
    // The created tables are dropped last (`drop_created`, right before
    // COMMIT); until then the rows of those referencing the pushed rows of
    // existing tables would keep them from being deleted: they go first
    // (children first, one round trip). Writes to a table the undo drops
    // are not accounted (the DROP discards them).
    let sql: String = undo
        .created_tables
        .iter()
        .rev()
        .filter(|name| emptied.contains(name))
        .map(|name| format!("DELETE FROM public.{};", quote_ident(name)))
        .collect();
    if !sql.is_empty() {
        tx.batch_execute(&sql)
            .await
            .context("emptying the tables the push created before deleting its rows")?;
    }
    for t in undo.tables.iter().rev().filter(|t| !t.created) {
        // A row the push pointed at one of its new rows through a foreign
        // key of the table to itself gets its old value back before that
        // row goes (the push wrote it after the insert, `write_order`).
        let pointers = match pushed.iter().any(|p| p.table == t.table) {
            true => self_reference_columns(tx, &t.table).await?,
            false => Vec::new(),
        };
        let points = |u: &RowUpdate| u.changes.iter().any(|c| pointers.contains(&c.column));
        if !pointers.is_empty() {
            restore_updated_rows(tx, types, undo, t, &points, triggers, report).await?;
        }
        if let Some(p) = pushed.iter().find(|p| p.table == t.table) {
            delete_pushed_rows(tx, types, t, p, triggers, report).await?;
        }
        let rest = |u: &RowUpdate| pointers.is_empty() || !points(u);
        restore_updated_rows(tx, types, undo, t, &rest, triggers, report).await?;
    }
    // Rows the push deleted, whole, parents before children; columns the
    // push added are gone again and left out.
    for t in undo
        .tables
        .iter()
        .filter(|t| !t.created && !t.deleted_rows.is_empty())
    {
        reinsert_deleted_rows(tx, undo, t, report).await?;
    }
    if !deferred.is_empty() {
        tx.batch_execute(&format!("SET CONSTRAINTS {deferred} IMMEDIATE"))
            .await
            .with_context(|| format!("checking {deferred} after the undo"))?;
    }
    // The rows holding the values the sequences were moved past are gone;
    // each goes back only if nobody drew from it since, and only if no
    // table the app keeps writing draws from it (the lock proving that
    // would make the app's inserts wait). Not in a rehearsal: `setval`
    // would stay when the push rolls back to its savepoint.
    let locked: Vec<String> = undo
        .tables
        .iter()
        .map(|t| t.table.clone())
        .chain(undo.created_tables.iter().cloned())
        .collect();
    for s in undo
        .sequences
        .iter()
        .filter(|s| s.moved() && mode == Mode::Rollback)
    {
        report.sequences.push(
            restore(tx, s, &locked)
                .await
                .with_context(|| format!("restoring sequence {}.{}", s.schema, s.sequence))?,
        );
    }
    Ok(())
}

/// Drops `columns` the push added, then the `tables` it created
/// (children first).
pub(super) async fn drop_created(
    tx: &tokio_postgres::Transaction<'_>,
    columns: &[AddedColumn],
    tables: &[String],
    report: &mut RollbackReport,
) -> Result<()> {
    if columns.is_empty() && tables.is_empty() {
        return Ok(());
    }
    // One round trip: these hold ACCESS EXCLUSIVE until the transaction
    // (or the push's rehearsal savepoint) ends.
    let mut sql = String::new();
    let mut what = Vec::new();
    for a in columns {
        sql.push_str(&format!(
            "ALTER TABLE public.{} DROP COLUMN {};",
            quote_ident(&a.table),
            quote_ident(&a.column)
        ));
        what.push(format!("column {}.{}", a.table, a.column));
    }
    for name in tables.iter().rev() {
        sql.push_str(&format!("DROP TABLE public.{};", quote_ident(name)));
        what.push(format!("table {name}"));
    }
    tx.batch_execute(&sql)
        .await
        .with_context(|| format!("dropping {}", what.join(", ")))?;
    report
        .dropped_columns
        .extend(columns.iter().map(|a| format!("{}.{}", a.table, a.column)));
    report.dropped_tables.extend(tables.iter().rev().cloned());
    Ok(())
}

/// Deletes the rows the push inserted into an existing table, by key; all
/// of them or nothing. Rows the DELETE left in place (every one of them
/// was locked in the lock step, so none vanished meanwhile) were kept by a
/// BEFORE DELETE trigger returning NULL: named with the triggers that fire
/// on that table's deletes (`triggers`).
async fn delete_pushed_rows(
    tx: &tokio_postgres::Transaction<'_>,
    types: &TypeSpellings,
    t: &UndoTable,
    p: &PushedRows,
    triggers: &[TriggerReport],
    report: &mut RollbackReport,
) -> Result<()> {
    let n = run_batch(
        tx,
        &format!(
            "DELETE FROM public.{} t USING {} WHERE {}",
            quote_ident(&t.table),
            p.keys.from_item("u"),
            p.join(types, "t", "u")?
        ),
        t.inserted_keys.len(),
        |i| {
            format!(
                "row {}",
                crate::types::row_label(&t.key, t.inserted_keys[i].iter().map(|v| v.as_deref()))
            )
        },
    )
    .await
    .with_context(|| format!("deleting the pushed rows of {}", t.table))?;
    if n != t.inserted_keys.len() as u64 {
        return Err(check_failed(
            kept_rows_message(tx, types, t, p, n, triggers).await?,
        ));
    }
    report.deleted.push((t.table.clone(), n));
    Ok(())
}

/// Why the undo's DELETE removed only `deleted` of the rows the push
/// inserted into `t`. Before, "workflows: 217 of 227 inserted rows were
/// found" whatever the cause — every row was there; an app's BEFORE DELETE
/// trigger returning NULL (an archive or soft-delete trigger) had kept 10
/// of them, and the refusal named neither the trigger nor a row.
async fn kept_rows_message(
    tx: &tokio_postgres::Transaction<'_>,
    types: &TypeSpellings,
    t: &UndoTable,
    p: &PushedRows,
    deleted: u64,
    triggers: &[TriggerReport],
) -> Result<String> {
    let total = t.inserted_keys.len();
    let key_text = t
        .key
        .iter()
        .map(|k| format!("r.{}::text", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" || ' | ' || ");
    let kept = tx
        .query(
            &format!(
                "SELECT count(*), (pg_catalog.array_agg({key_text} ORDER BY {key_text}))[1:5] \
                 FROM public.{} r, {} WHERE {}",
                quote_ident(&t.table),
                p.keys.from_item("u"),
                p.join(types, "r", "u")?
            ),
            &[],
        )
        .await
        .with_context(|| format!("reading the pushed rows of {} the undo left", t.table))?;
    let (still, keys): (i64, Option<Vec<String>>) = kept
        .first()
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or((0, None));
    let skipping: Vec<String> = triggers
        .iter()
        .filter(|tr| {
            tr.table == t.table
                && tr.timing == "BEFORE"
                && tr.level == "ROW"
                && tr.events.iter().any(|e| e == "DELETE")
                && tr.action != crate::db::triggers::TriggerAction::DoesNotFire
        })
        .map(|tr| format!("{} (function {})", tr.name, tr.function))
        .collect();
    if still <= 0 {
        return Ok(format!(
            "{}: {deleted} of {total} inserted rows were found; refusing, nothing was changed",
            t.table
        ));
    }
    Ok(format!(
        "{table}: the undo's DELETE removed {deleted} of the {total} rows the push inserted; {still} \
         are still there (keys include {keys}){why}. The rollback never disables a trigger to \
         undo a push: change the trigger so that it lets these rows go (or disable it for the \
         rollback), then roll back again; refusing, nothing was changed",
        table = t.table,
        keys = keys.unwrap_or_default().join("; "),
        why = if skipping.is_empty() {
            String::new()
        } else {
            format!(
                ": a BEFORE DELETE trigger on {} returned NULL for them, which skips the delete \
                 without an error — {}",
                t.table,
                skipping.join(", ")
            )
        }
    ))
}

/// The columns of `table` the push added: dropped again by the undo.
pub(super) fn added_columns_of<'u>(undo: &'u Undo, table: &str) -> Vec<&'u str> {
    undo.added_columns
        .iter()
        .filter(|a| a.table == table)
        .map(|a| a.column.as_str())
        .collect()
}

/// Writes back the values the push overwrote, except in columns it added.
async fn restore_updated_rows(
    tx: &tokio_postgres::Transaction<'_>,
    types: &TypeSpellings,
    undo: &Undo,
    t: &UndoTable,
    which: &dyn Fn(&RowUpdate) -> bool,
    triggers: &[TriggerReport],
    report: &mut RollbackReport,
) -> Result<()> {
    let dropped = added_columns_of(undo, &t.table);
    let chosen: Vec<RowUpdate> = t.updates.iter().filter(|u| which(u)).cloned().collect();
    let updates = crate::diff::without_columns(&chosen, &dropped);
    if updates.is_empty() {
        return Ok(());
    }
    let td = TableDiff {
        table: t.table.clone(),
        created: false,
        columns: t.columns.clone(),
        key: t.key.clone(),
        inserts: vec![],
        updates,
        deletes: vec![],
        phase_inserts: vec![],
        phase_updates: vec![],
        phase_deletes: vec![],
        explicit_nulls: Default::default(),
        added_filled: vec![],
    };
    let n = apply_updates(tx, types, &td, true, triggers)
        .await
        .with_context(|| format!("restoring the overwritten values of {}", t.table))?;
    // Restored in two parts (pointers first): one count per table.
    match report
        .restored
        .iter_mut()
        .find(|(name, _)| name == &t.table)
    {
        Some(entry) => entry.1 += n,
        None => report.restored.push((t.table.clone(), n)),
    }
    Ok(())
}

/// The columns of the foreign keys of `public.table` to itself.
async fn self_reference_columns(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Result<Vec<String>> {
    let rows = tx
        .query_typed(
            "SELECT a.attname::text FROM pg_catalog.pg_constraint c \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) \
             WHERE c.contype = 'f' AND c.conrelid = c.confrelid \
               AND c.conrelid = pg_catalog.to_regclass($1) ORDER BY 1",
            &[(
                &format!("public.{}", quote_ident(table)),
                tokio_postgres::types::Type::TEXT,
            )],
        )
        .await
        .with_context(|| format!("reading the foreign keys of {table} to itself"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Inserts again, whole, the rows the push deleted from a table.
async fn reinsert_deleted_rows(
    tx: &tokio_postgres::Transaction<'_>,
    undo: &Undo,
    t: &UndoTable,
    report: &mut RollbackReport,
) -> Result<()> {
    let dropped = added_columns_of(undo, &t.table);
    // A STORED generated column cannot be written (COPY refuses it):
    // Postgres computes it again from the restored values, and the check
    // after the undo compares it with the before-image like every column.
    let keep: Vec<usize> = (0..t.columns.len())
        .filter(|i| {
            !dropped.contains(&t.columns[*i].name.as_str()) && t.columns[*i].generated.is_none()
        })
        .collect();
    let cols: Vec<String> = keep.iter().map(|i| t.columns[*i].name.clone()).collect();
    let rows: Vec<Vec<Option<String>>> = t
        .deleted_rows
        .iter()
        .map(|r| keep.iter().map(|i| r.get(*i).cloned().flatten()).collect())
        .collect();
    let n = copy_rows(
        tx,
        &format!("public.{}", quote_ident(&t.table)),
        &cols,
        &rows,
    )
    .await
    .with_context(|| format!("inserting the deleted rows of {} again", t.table))?;
    report.reinserted.push((t.table.clone(), n));
    Ok(())
}
