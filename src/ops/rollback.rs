//! `sandbox rollback`: undo exactly what one receipt did — delete the rows it
//! inserted by key, restore the values it overwrote, drop what it created —
//! in one transaction, after proving nothing changed those tables since.
//! Never the seed plan's `DELETE … LIKE` statements.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::catalog::{ColumnMeta, TableMeta, TableRole};
use crate::db::postgres::{connect, Target};
use crate::error::check_failed;
use crate::ops::diff::{RowUpdate, TableDiff};
use crate::ops::pull::remote_checksum;
use crate::ops::push::{apply_updates, begin, lock_tables, simple_rows};
use crate::plan::checks::{Check, CheckKind};
use crate::types::quote_ident;

pub struct RollbackOptions {
    pub target: Target,
    pub receipt_id: String,
    pub confirm: bool,
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub receipt_id: String,
    pub confirmed: bool,
    /// The receipt was rolled back before: nothing was done.
    pub already_rolled_back: bool,
    pub deleted: Vec<(String, u64)>,
    pub restored: Vec<(String, u64)>,
    pub dropped_tables: Vec<String>,
    pub dropped_columns: Vec<String>,
    pub checks: Vec<Check>,
    pub millis: u64,
}

#[derive(Debug, Deserialize)]
struct UndoTable {
    table: String,
    created: bool,
    key: Vec<String>,
    key_types: Vec<String>,
    columns: Vec<ColumnMeta>,
    inserted_keys: Vec<Vec<Option<String>>>,
    updates: Vec<RowUpdate>,
}

#[derive(Debug, Deserialize)]
struct AddedColumnRef {
    table: String,
    column: String,
}

#[derive(Debug, Deserialize)]
struct TableState {
    rows: u64,
    checksum: String,
    #[serde(default)]
    columns: Vec<ColumnMeta>,
    #[serde(default)]
    row_hashes: crate::ops::pull::RowHashes,
}

#[derive(Debug, Deserialize)]
struct Undo {
    created_tables: Vec<String>,
    added_columns: Vec<AddedColumnRef>,
    tables: Vec<UndoTable>,
    before: std::collections::BTreeMap<String, TableState>,
    after: std::collections::BTreeMap<String, TableState>,
}

/// A table as the receipt recorded it; the key lets changes be named by row.
fn meta_of(name: &str, columns: Vec<ColumnMeta>, key: &[String]) -> TableMeta {
    let constraints = vec![crate::catalog::ConstraintMeta::new(
        format!("{name}_pkey"),
        "p",
        key.to_vec(),
        String::new(),
    )];
    TableMeta {
        name: name.to_string(),
        role: TableRole::Protected,
        columns,
        constraints,
    }
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

pub async fn rollback(opts: &RollbackOptions) -> Result<RollbackReport> {
    let started = Instant::now();
    if uuid::Uuid::parse_str(&opts.receipt_id).is_err() {
        return Err(crate::error::environment(format!(
            "'{}' is not a receipt id (a UUID as printed by `sandbox push`)",
            opts.receipt_id
        )));
    }
    let mut client = connect(&opts.target).await?;
    let tx = begin(&mut client, opts.statement_timeout_ms, opts.lock_timeout_ms).await?;
    let exists = simple_rows(&tx, "SELECT to_regclass('sandbox.receipts') IS NOT NULL").await?;
    if exists
        .first()
        .and_then(|r| r.first())
        .map(|v| v != "t")
        .unwrap_or(true)
    {
        return Err(check_failed(format!(
            "{} has no sandbox.receipts table: nothing was ever pushed there",
            opts.target.redacted()
        )));
    }
    let rows = tx
        .query(
            "SELECT status, undo::text, pushed_at::text, \
                    (SELECT count(*) FROM sandbox.receipts l WHERE l.status = 'applied' AND l.pushed_at > r.pushed_at) \
             FROM sandbox.receipts r WHERE id = $1::text::uuid",
            &[&opts.receipt_id],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(check_failed(format!(
            "no receipt {} in sandbox.receipts",
            opts.receipt_id
        )));
    };
    let status: String = row.get(0);
    if status == "rolled_back" {
        // Like a repeated push: the wanted state holds, nothing to do.
        tx.rollback().await?;
        return Ok(RollbackReport {
            receipt_id: opts.receipt_id.clone(),
            confirmed: opts.confirm,
            already_rolled_back: true,
            deleted: vec![],
            restored: vec![],
            dropped_tables: vec![],
            dropped_columns: vec![],
            checks: vec![],
            millis: started.elapsed().as_millis() as u64,
        });
    }
    if status != "applied" {
        return Err(check_failed(format!(
            "receipt {} has status '{status}', not 'applied': nothing to roll back",
            opts.receipt_id
        )));
    }
    let later: i64 = row.get(3);
    if later > 0 {
        return Err(check_failed(format!(
            "{later} later push(es) are still applied; roll those back first (newest first)"
        )));
    }
    let undo: Undo = serde_json::from_str(&row.get::<_, String>(1))
        .context("the receipt's undo record is unreadable")?;

    // Lock every table the receipt touched that still exists.
    let mut lockable: Vec<String> = undo.before.keys().cloned().collect();
    lockable.extend(undo.created_tables.iter().cloned());
    if opts.confirm {
        lock_tables(&tx, &opts.target, &lockable, opts.lock_timeout_ms).await?;
    }

    // Nothing may have changed since the push: each table must still be in
    // the state the push left it in.
    let mut checks = Vec::new();
    for t in &undo.tables {
        let Some(after) = undo.after.get(&t.table) else {
            continue;
        };
        let sum = remote_checksum(&tx, &meta_of(&t.table, t.columns.clone(), &t.key)).await?;
        let mut c = Check::equal(
            "before undo",
            &format!("{} unchanged since the push", t.table),
            CheckKind::Integrity,
            format!("{} rows, {}", after.rows, short(&after.checksum)),
            format!("{} rows, {}", sum.rows(), short(&sum.hex())),
        );
        c.ok = sum.hex() == after.checksum;
        if !c.ok {
            let meta = meta_of(&t.table, t.columns.clone(), &t.key);
            let now = crate::ops::pull::remote_row_hashes(&tx, &meta).await?;
            c.rows = crate::ops::pull::describe_row_changes(&after.row_hashes, &now, 10);
        }
        checks.push(c);
    }
    if checks.iter().any(|c| !c.ok) {
        let changed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({} now: {})", c.name, c.actual, c.rows.join(", ")))
            .collect();
        return Err(crate::error::refused(
            format!(
                "refusing to roll back receipt {}: tables changed since the push — {}. Undoing now would \
                 discard those changes; nothing was written",
                opts.receipt_id,
                changed.join("; ")
            ),
            checks,
        ));
    }
    let mut report = RollbackReport {
        receipt_id: opts.receipt_id.clone(),
        confirmed: opts.confirm,
        already_rolled_back: false,
        deleted: vec![],
        restored: vec![],
        dropped_tables: vec![],
        dropped_columns: vec![],
        checks,
        millis: 0,
    };
    // Order matters: columns referencing created tables go first, then the
    // created tables (children first), then rows added to existing tables.
    for a in &undo.added_columns {
        tx.batch_execute(&format!(
            "ALTER TABLE public.{} DROP COLUMN {}",
            quote_ident(&a.table),
            quote_ident(&a.column)
        ))
        .await?;
        report
            .dropped_columns
            .push(format!("{}.{}", a.table, a.column));
    }
    for name in undo.created_tables.iter().rev() {
        tx.batch_execute(&format!("DROP TABLE public.{}", quote_ident(name)))
            .await?;
        report.dropped_tables.push(name.clone());
    }
    let mut disabled = Vec::new();
    for t in undo.tables.iter().rev().filter(|t| !t.created) {
        if !t.inserted_keys.is_empty() {
            let n = delete_by_key(&tx, t).await?;
            if n != t.inserted_keys.len() as u64 {
                return Err(check_failed(format!(
                    "{}: {} of {} inserted rows were found; refusing, nothing was written",
                    t.table,
                    n,
                    t.inserted_keys.len()
                )));
            }
            report.deleted.push((t.table.clone(), n));
        }
        let dropped: Vec<&str> = undo
            .added_columns
            .iter()
            .filter(|a| a.table == t.table)
            .map(|a| a.column.as_str())
            .collect();
        let updates: Vec<RowUpdate> = t
            .updates
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
            .collect();
        if !updates.is_empty() {
            let td = TableDiff {
                table: t.table.clone(),
                created: false,
                columns: t.columns.clone(),
                key: t.key.clone(),
                inserts: vec![],
                insert_phases: vec![],
                updates,
                update_phase: String::new(),
            };
            let n = apply_updates(&tx, &td, true, &mut disabled).await?;
            report.restored.push((t.table.clone(), n));
        }
    }
    // The result must be the pulled state, byte for byte.
    for (name, before) in &undo.before {
        let sum = remote_checksum(&tx, &meta_of(name, before.columns.clone(), &[])).await?;
        let mut c = Check::equal(
            "after undo",
            &format!("{name} equals its state before the push"),
            CheckKind::Guard,
            format!("{} rows, {}", before.rows, short(&before.checksum)),
            format!("{} rows, {}", sum.rows(), short(&sum.hex())),
        );
        c.ok = sum.hex() == before.checksum;
        report.checks.push(c);
    }
    if report.checks.iter().any(|c| !c.ok) {
        tx.rollback().await?;
        return Err(crate::error::refused(
            "after undoing, some tables would not equal their state before the push; rolled back, nothing was written",
            report.checks,
        ));
    }
    if !opts.confirm {
        tx.rollback().await?;
        report.millis = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    tx.execute(
        "UPDATE sandbox.receipts SET status = 'rolled_back', rolled_back_at = now() WHERE id = $1::text::uuid",
        &[&opts.receipt_id],
    )
    .await?;
    tx.commit()
        .await
        .context("COMMIT of the rollback failed; nothing was undone")?;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn delete_by_key(tx: &tokio_postgres::Transaction<'_>, t: &UndoTable) -> Result<u64> {
    use bytes::Bytes;
    use futures_util::SinkExt;
    let tmp_cols: Vec<String> = t.key.iter().map(|k| format!("k_{k}")).collect();
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE _sandbox_undo_keys ({}) ON COMMIT DROP",
        tmp_cols
            .iter()
            .map(|c| format!("{} text", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .await?;
    {
        let sink = tx.copy_in("COPY _sandbox_undo_keys FROM STDIN").await?;
        futures_util::pin_mut!(sink);
        let mut buf = String::new();
        for k in &t.inserted_keys {
            buf.push_str(&crate::types::copy_text_line(k));
        }
        sink.send(Bytes::from(buf)).await?;
        sink.finish().await?;
    }
    let conds = t
        .key
        .iter()
        .zip(&t.key_types)
        .map(|(k, ty)| {
            format!(
                "t.{} = u.{}::{ty}",
                quote_ident(k),
                quote_ident(&format!("k_{k}"))
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let n = tx
        .execute(
            &format!(
                "DELETE FROM public.{} t USING _sandbox_undo_keys u WHERE {conds}",
                quote_ident(&t.table)
            ),
            &[],
        )
        .await?;
    tx.batch_execute("DROP TABLE _sandbox_undo_keys").await?;
    Ok(n)
}
