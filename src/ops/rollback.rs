//! `sandbox rollback`: undo exactly what one receipt did — delete the rows it
//! inserted by key, restore the values it overwrote, drop what it created —
//! in one transaction, after proving nothing changed those tables since.
//! Never the seed plan's `DELETE … LIKE` statements.

use std::time::Instant;

use anyhow::{Context, Result};
use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::{ColumnMeta, TableMeta, TableRole};
use crate::db::dependents::{objects_depending, rows_referencing, PushedRows};
use crate::db::postgres::copy::remote_checksum;
use crate::db::postgres::tx::LockMode;
use crate::db::postgres::{connect, Target};
use crate::db::privileges::{privilege_check, Need};
use crate::db::triggers::{plan_triggers, WrittenTable};
use crate::db::writes::{account, transaction_writes, TableWrites};
use crate::error::check_failed;
use crate::error::refused as refuse;
use crate::ops::diff::{RowUpdate, TableDiff};
use crate::ops::push::{apply_updates, begin, copy_rows, lock_tables, simple_rows};
use crate::plan::checks::{Check, CheckKind};
use crate::receipt::Undo;
use crate::types::quote_ident;
use crate::types::short_hash as short;

pub struct RollbackOptions {
    pub target: Target,
    pub receipt_id: String,
    pub confirm: bool,
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// Tables a side effect of the undo may write, on top of those the
    /// push was allowed to write.
    pub allow_writes: Vec<String>,
    /// Today's rule for users who freeze the app: every table the receipt
    /// recorded must equal, after the undo, its state before the push;
    /// whole tables the push wrote must be unchanged since it.
    pub strict: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub receipt_id: String,
    pub confirmed: bool,
    /// The receipt was rolled back before: nothing was done.
    pub already_rolled_back: bool,
    pub deleted: Vec<(String, u64)>,
    pub restored: Vec<(String, u64)>,
    /// Rows the push deleted, inserted again, per table.
    pub reinserted: Vec<(String, u64)>,
    pub dropped_tables: Vec<String>,
    pub dropped_columns: Vec<String>,
    pub checks: Vec<Check>,
    /// Allowed writes to tables outside the receipt (an audit trigger).
    pub side_effects: Vec<TableWrites>,
    /// Every trigger on the tables the undo writes, and what it did.
    pub triggers: Vec<crate::db::triggers::TriggerReport>,
    pub millis: u64,
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
                    (SELECT count(*) FROM sandbox.receipts l WHERE l.status = 'applied' AND l.pushed_at > r.pushed_at), \
                    (SELECT l.id::text FROM sandbox.receipts l WHERE l.status = 'applied' \
                       ORDER BY l.pushed_at DESC LIMIT 1) \
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
            reinserted: vec![],
            dropped_tables: vec![],
            dropped_columns: vec![],
            checks: vec![],
            side_effects: vec![],
            triggers: vec![],
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
        let newest: String = row.get(4);
        return Err(check_failed(format!(
            "{later} later push(es) are still applied; roll those back first, newest first \
             (`sandbox receipts` lists them): `sandbox rollback --receipt {newest} --confirm`"
        )));
    }
    let undo = Undo::read(&opts.receipt_id, &row.get::<_, String>(1))?;
    let nothing = if opts.confirm {
        "nothing was changed"
    } else {
        "dry run: nothing was changed"
    };

    // Privileges first, before any lock.
    let privileges =
        privilege_check(&tx, "privileges", &rollback_needs(&undo, opts.strict)).await?;
    if !privileges.ok {
        return Err(refuse(
            format!(
                "refusing to roll back receipt {}: the connected role lacks privileges ({}); {nothing}",
                opts.receipt_id,
                privileges.rows.join("; ")
            ),
            vec![privileges],
        ));
    }

    // Lock the tables the push wrote against other writers; the app's
    // tables stay unlocked (all pulled tables with --strict).
    let written_tables: Vec<String> = undo
        .tables
        .iter()
        .map(|t| t.table.clone())
        .chain(undo.created_tables.iter().cloned())
        .collect();
    let mut locks: Vec<(String, LockMode)> = written_tables
        .iter()
        .map(|t| (t.clone(), LockMode::ShareRowExclusive))
        .collect();
    if opts.strict {
        locks.extend(
            undo.before
                .keys()
                .filter(|t| !written_tables.contains(t))
                .map(|t| (t.clone(), LockMode::Share)),
        );
    }
    lock_tables(&tx, &locks, opts.lock_timeout_ms).await?;

    // What the push wrote must still be as it left it: in a table it
    // created, every row (dropping it drops them all); in an existing table,
    // the rows it inserted or updated (the app's other rows are not ours to
    // judge; with --strict, the whole table).
    let mut checks = vec![privileges];
    for t in &undo.tables {
        let Some(after) = undo.after.get(&t.table) else {
            continue;
        };
        let meta = meta_of(&t.table, t.columns.clone(), &t.key);
        if t.created || opts.strict {
            let sum = remote_checksum(&tx, &meta).await?;
            let mut c = Check::equal(
                "before undo",
                &format!("{} unchanged since the push", t.table),
                CheckKind::Integrity,
                format!("{} rows, {}", after.rows, short(&after.checksum)),
                format!("{} rows, {}", sum.rows(), short(&sum.hex())),
            );
            c.ok = sum.hex() == after.checksum;
            if !c.ok {
                let now = crate::db::postgres::digest::remote_row_hashes(&tx, &meta).await?;
                c.rows =
                    crate::db::postgres::digest::describe_row_changes(&after.row_hashes, &now, 10);
                c.row_count = c.rows.len() as u64;
            }
            checks.push(c);
            continue;
        }
        let pushed_keys: std::collections::BTreeSet<String> = t
            .inserted_keys
            .iter()
            .map(|k| {
                k.iter()
                    .map(|v| v.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .chain(t.updates.iter().map(|u| u.key.join("/")))
            .collect();
        let now = crate::db::postgres::digest::remote_row_hashes(&tx, &meta).await?;
        let pick =
            |h: &crate::db::postgres::digest::RowHashes| -> crate::db::postgres::digest::RowHashes {
                h.iter()
                    .filter(|(k, _)| pushed_keys.contains(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
        let (then, now) = (pick(&after.row_hashes), pick(&now));
        let mut c = Check::equal(
            "before undo",
            &format!("{} rows the push wrote unchanged since the push", t.table),
            CheckKind::Integrity,
            format!("{} rows as pushed", pushed_keys.len()),
            format!(
                "{} rows as pushed",
                then.iter().filter(|(k, v)| now.get(*k) == Some(*v)).count()
            ),
        );
        c.ok = then == now && then.len() == pushed_keys.len();
        if !c.ok {
            c.rows = crate::db::postgres::digest::describe_row_changes(&then, &now, 10);
            c.row_count = c.rows.len() as u64;
        }
        checks.push(c);
    }
    if checks.iter().any(|c| !c.ok) {
        let changed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({} now: {})", c.name, c.actual, c.rows.join(", ")))
            .collect();
        return Err(refuse(
            format!(
                "refusing to roll back receipt {}: tables changed since the push — {}. Undoing now would \
                 discard those changes; {nothing}",
                opts.receipt_id,
                changed.join("; ")
            ),
            checks,
        ));
    }

    // What else leans on what the rollback removes: rows referencing pushed
    // rows (any schema, any ON DELETE action), objects depending on the
    // tables and columns it drops. Any of them refuses the whole rollback.
    let pushed = load_pushed_keys(&tx, &undo).await?;
    let dropped_columns: Vec<(String, String)> = undo
        .added_columns
        .iter()
        .map(|a| (a.table.clone(), a.column.clone()))
        .collect();
    let mut blockers = rows_referencing(&tx, &pushed, &undo.created_tables).await?;
    blockers.extend(objects_depending(&tx, &undo.created_tables, &dropped_columns).await?);
    let dependents = Check::no_rows(
        "before undo",
        "nothing else references what the rollback removes",
        CheckKind::Integrity,
        blockers,
    );
    if !dependents.ok {
        return Err(refuse(
            format!(
                "refusing to roll back receipt {}: undoing would destroy or break data it did not \
                 write — {}. Remove or re-point those first; {nothing}",
                opts.receipt_id,
                dependents.rows.join("; ")
            ),
            vec![dependents],
        ));
    }
    checks.push(dependents);

    // The same hold-off rule as the push: only proven updated_at stamps,
    // and only those the receipt held off.
    let written: Vec<WrittenTable> = undo
        .tables
        .iter()
        .filter(|t| !t.created)
        .map(|t| WrittenTable {
            name: t.table.clone(),
            updates: !t.updates.is_empty(),
        })
        .collect();
    let (triggers, trigger_check) = plan_triggers(&tx, &written, &undo.held_off_triggers).await?;
    if !trigger_check.ok {
        return Err(refuse(
            format!(
                "refusing to roll back receipt {}: {}; {nothing}",
                opts.receipt_id,
                trigger_check.rows.join("; ")
            ),
            vec![trigger_check],
        ));
    }
    checks.push(trigger_check);

    let mut report = RollbackReport {
        receipt_id: opts.receipt_id.clone(),
        confirmed: opts.confirm,
        already_rolled_back: false,
        deleted: vec![],
        restored: vec![],
        reinserted: vec![],
        dropped_tables: vec![],
        dropped_columns: vec![],
        checks,
        side_effects: vec![],
        triggers: triggers.clone(),
        millis: 0,
    };
    // DROP COLUMN and DROP TABLE need ACCESS EXCLUSIVE: taken just before,
    // in short attempts.
    let dropping: Vec<(String, LockMode)> = undo
        .added_columns
        .iter()
        .map(|a| a.table.clone())
        .chain(undo.created_tables.iter().cloned())
        .map(|t| (t, LockMode::AccessExclusive))
        .collect();
    lock_tables(&tx, &dropping, opts.lock_timeout_ms).await?;
    if let Err(e) = undo_changes(&tx, &undo, &pushed, &triggers, &mut report).await {
        return Err(match crate::db::pg_error::describe(&e, &triggers) {
            Some(named) => refuse(
                format!(
                    "refusing to roll back receipt {}: Postgres refused {}: {named}; rolled back, {nothing}",
                    opts.receipt_id,
                    e.chain().next().map(|c| c.to_string()).unwrap_or_default()
                ),
                vec![],
            ),
            None => e,
        });
    }
    // With --strict the result must be the pulled state of every table,
    // byte for byte. Otherwise the rows the push wrote were undone one by
    // one (each delete and restore counted), the app's rows are left as
    // they are, and the write accounting below proves the undo wrote
    // nothing else.
    if opts.strict {
        for (name, before) in &undo.before {
            let meta = meta_of(name, before.columns.clone(), &key_of(&undo, name));
            let sum = remote_checksum(&tx, &meta).await?;
            let mut c = Check::equal(
                "after undo",
                &format!("{name} equals its state before the push"),
                CheckKind::Guard,
                format!("{} rows, {}", before.rows, short(&before.checksum)),
                format!("{} rows, {}", sum.rows(), short(&sum.hex())),
            );
            c.ok = sum.hex() == before.checksum;
            if !c.ok && !before.row_hashes.is_empty() {
                let now = crate::db::postgres::digest::remote_row_hashes(&tx, &meta).await?;
                c.rows =
                    crate::db::postgres::digest::describe_row_changes(&before.row_hashes, &now, 10);
                c.row_count = c.rows.len() as u64;
            }
            report.checks.push(c);
        }
    }
    tx.execute(
        "UPDATE sandbox.receipts SET status = 'rolled_back', rolled_back_at = now() WHERE id = $1::text::uuid",
        &[&opts.receipt_id],
    )
    .await?;
    // Every write of the undo, database-wide: only the receipt's tables,
    // exactly as many rows as it recorded, plus allowed side effects.
    let allowed: Vec<String> = undo
        .allowed_writes
        .iter()
        .chain(opts.allow_writes.iter())
        .cloned()
        .collect();
    let writes = transaction_writes(&tx).await?;
    let accounting = account("writes", &writes, &undo_writes(&undo, &report), &allowed);
    report.checks.extend(accounting.checks);
    report.side_effects = accounting.allowed;
    if report.checks.iter().any(|c| !c.ok) {
        tx.rollback().await?;
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                if c.rows.is_empty() {
                    format!("{}: expected {}, found {}", c.name, c.expected, c.actual)
                } else {
                    format!("{}: {}", c.name, c.rows.join(", "))
                }
            })
            .collect();
        return Err(refuse(
            format!(
                "refusing to roll back receipt {}: after undoing, {}; rolled back, {nothing}",
                opts.receipt_id,
                failed.join("; ")
            ),
            report.checks,
        ));
    }
    if !opts.confirm {
        tx.rollback().await?;
        report.millis = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    tx.commit()
        .await
        .context("COMMIT of the rollback failed; nothing was undone")?;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The key of a written table, from the receipt (empty for the others).
fn key_of(undo: &Undo, table: &str) -> Vec<String> {
    undo.tables
        .iter()
        .find(|t| t.table == table)
        .map(|t| t.key.clone())
        .unwrap_or_default()
}

/// Everything the undo does that needs a grant.
fn rollback_needs(undo: &Undo, strict: bool) -> Vec<Need> {
    let public = |t: &str| format!("public.{}", quote_ident(t));
    let mut needs = Vec::new();
    let written: Vec<&str> = undo.tables.iter().map(|t| t.table.as_str()).collect();
    for t in undo
        .before
        .keys()
        .filter(|t| strict || written.contains(&t.as_str()))
    {
        needs.push(Need::Table {
            table: public(t),
            privilege: "SELECT",
            why: "compare it with its state before the push".into(),
        });
        needs.push(Need::Table {
            table: public(t),
            privilege: "UPDATE,DELETE,TRUNCATE",
            why: "lock it against writers".into(),
        });
    }
    for t in &undo.created_tables {
        needs.push(Need::Owner {
            table: public(t),
            why: "drop it".into(),
        });
    }
    for a in &undo.added_columns {
        needs.push(Need::Owner {
            table: public(&a.table),
            why: format!("drop column {}", a.column),
        });
    }
    for t in undo.tables.iter().filter(|t| !t.created) {
        if !t.inserted_keys.is_empty() {
            needs.push(Need::Table {
                table: public(&t.table),
                privilege: "DELETE",
                why: format!(
                    "delete the {} rows the push inserted",
                    t.inserted_keys.len()
                ),
            });
        }
        if !t.updates.is_empty() {
            needs.push(Need::Table {
                table: public(&t.table),
                privilege: "UPDATE",
                why: format!("restore {} rows", t.updates.len()),
            });
        }
        if !t.deleted_rows.is_empty() {
            needs.push(Need::Table {
                table: public(&t.table),
                privilege: "INSERT",
                why: format!(
                    "insert again the {} rows the push deleted",
                    t.deleted_rows.len()
                ),
            });
        }
    }
    for named in &undo.held_off_triggers {
        if let Some((table, trigger)) = named.split_once('.') {
            needs.push(Need::Owner {
                table: public(table),
                why: format!("hold off trigger {trigger}"),
            });
        }
    }
    needs.push(Need::Table {
        table: "sandbox.receipts".into(),
        privilege: "UPDATE",
        why: "mark the receipt rolled back".into(),
    });
    needs
}

/// The writes the undo makes, exactly, per `schema.table`.
fn undo_writes(undo: &Undo, report: &RollbackReport) -> BTreeMap<String, TableWrites> {
    let mut out = BTreeMap::new();
    for t in undo.tables.iter().filter(|t| !t.created) {
        let name = format!("public.{}", t.table);
        let restored = report
            .restored
            .iter()
            .find(|(n, _)| n == &t.table)
            .map(|(_, n)| *n as i64)
            .unwrap_or(0);
        out.insert(
            name.clone(),
            TableWrites {
                table: name,
                inserted: t.deleted_rows.len() as i64,
                updated: restored,
                deleted: t.inserted_keys.len() as i64,
            },
        );
    }
    out.insert(
        "sandbox.receipts".into(),
        TableWrites {
            table: "sandbox.receipts".into(),
            inserted: 0,
            updated: 1,
            deleted: 0,
        },
    );
    out
}

/// Copies the keys of the rows the push inserted into existing tables into
/// one temporary table per table (dropped at COMMIT or ROLLBACK).
async fn load_pushed_keys(
    tx: &tokio_postgres::Transaction<'_>,
    undo: &Undo,
) -> Result<Vec<PushedRows>> {
    use bytes::Bytes;
    use futures_util::SinkExt;
    let mut out = Vec::new();
    for (n, t) in undo
        .tables
        .iter()
        .filter(|t| !t.created && !t.inserted_keys.is_empty())
        .enumerate()
    {
        let keys_table = format!("_sandbox_undo_keys_{n}");
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {} ({}) ON COMMIT DROP",
            quote_ident(&keys_table),
            t.key
                .iter()
                .map(|k| format!("{} text", quote_ident(&format!("k_{k}"))))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await?;
        let sink = tx
            .copy_in(&format!("COPY {} FROM STDIN", quote_ident(&keys_table)))
            .await?;
        futures_util::pin_mut!(sink);
        let mut buf = String::new();
        for k in &t.inserted_keys {
            buf.push_str(&crate::types::copy_text_line(k));
        }
        sink.send(Bytes::from(buf)).await?;
        sink.finish().await?;
        out.push(PushedRows {
            table: t.table.clone(),
            key: t.key.clone(),
            key_types: t.key_types.clone(),
            keys_table,
        });
    }
    Ok(out)
}

/// Drops what the push created and removes or restores its rows.
async fn undo_changes(
    tx: &tokio_postgres::Transaction<'_>,
    undo: &Undo,
    pushed: &[PushedRows],
    triggers: &[crate::db::triggers::TriggerReport],
    report: &mut RollbackReport,
) -> Result<()> {
    // Order matters: columns referencing created tables go first, then the
    // created tables (children first), then rows added to existing tables.
    for a in &undo.added_columns {
        tx.batch_execute(&format!(
            "ALTER TABLE public.{} DROP COLUMN {}",
            quote_ident(&a.table),
            quote_ident(&a.column)
        ))
        .await
        .with_context(|| format!("dropping column {}.{}", a.table, a.column))?;
        report
            .dropped_columns
            .push(format!("{}.{}", a.table, a.column));
    }
    for name in undo.created_tables.iter().rev() {
        tx.batch_execute(&format!("DROP TABLE public.{}", quote_ident(name)))
            .await
            .with_context(|| format!("dropping table {name}"))?;
        report.dropped_tables.push(name.clone());
    }
    for t in undo.tables.iter().rev().filter(|t| !t.created) {
        if let Some(p) = pushed.iter().find(|p| p.table == t.table) {
            let n = tx
                .execute(
                    &format!(
                        "DELETE FROM public.{} t USING {} u WHERE {}",
                        quote_ident(&t.table),
                        quote_ident(&p.keys_table),
                        p.join("t", "u")
                    ),
                    &[],
                )
                .await
                .with_context(|| format!("deleting the pushed rows of {}", t.table))?;
            if n != t.inserted_keys.len() as u64 {
                return Err(check_failed(format!(
                    "{}: {} of {} inserted rows were found; refusing, nothing was changed",
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
                deletes: vec![],
                delete_phases: vec![],
            };
            let n = apply_updates(tx, &td, true, triggers)
                .await
                .with_context(|| format!("restoring the overwritten values of {}", t.table))?;
            report.restored.push((t.table.clone(), n));
        }
    }
    // Rows the push deleted, whole, parents before children; columns the
    // push added are gone again and left out.
    for t in undo
        .tables
        .iter()
        .filter(|t| !t.created && !t.deleted_rows.is_empty())
    {
        let dropped: Vec<&str> = undo
            .added_columns
            .iter()
            .filter(|a| a.table == t.table)
            .map(|a| a.column.as_str())
            .collect();
        let keep: Vec<usize> = (0..t.columns.len())
            .filter(|i| !dropped.contains(&t.columns[*i].name.as_str()))
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
    }
    Ok(())
}
