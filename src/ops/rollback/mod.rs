//! `sandbox rollback`: undo exactly what one receipt did, in one
//! transaction, after proving nothing changed what it wrote since (the rule
//! itself is `db::postgres::rollback::undo_in`, shared with the push's
//! rehearsal of its own undo). Never the seed plan's `DELETE … LIKE`
//! statements.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::db::postgres::connect;
use crate::db::postgres::receipts::{read_receipt, receipts_access, ReceiptsUse};
use crate::db::postgres::rollback::{undo_in, Mode};
use crate::db::postgres::sequences::{drawn, sequence_values};
use crate::db::postgres::tx::begin;

pub use crate::db::postgres::rollback::{RollbackOptions, RollbackReport};

pub async fn rollback(opts: &RollbackOptions) -> Result<RollbackReport> {
    let started = Instant::now();
    if uuid::Uuid::parse_str(&opts.receipt_id).is_err() {
        return Err(crate::error::environment(format!(
            "'{}' is not a receipt id (a UUID as printed by `sandbox push`)",
            opts.receipt_id
        )));
    }
    for d in &opts.discard_changes {
        if !matches!(d.split_once('.'), Some((t, c)) if !t.is_empty() && !c.is_empty()) {
            return Err(crate::error::environment(format!(
                "--discard-changes {d}: name a column as TABLE.COLUMN (e.g. workflows.updated_at), \
                 or TABLE.* for any column of the table"
            )));
        }
    }
    if opts.strict && !opts.discard_changes.is_empty() {
        return Err(crate::error::environment(
            "--discard-changes cannot be combined with --strict, which requires every table \
             unchanged since the push; leave out one of them",
        ));
    }
    let mut client = connect(&opts.target).await?;
    let tx = begin(&mut client, opts.statement_timeout_ms, opts.lock_timeout_ms).await?;
    // Where the sequences stand, sent with the first question (no round
    // trip of its own): an app trigger that fires for the undo (an audit
    // log's bigserial) draws values, and a draw is never rolled back, so a
    // dry run or a refusal says what it used up instead of "nothing was
    // changed".
    let (access, at_start) = futures_util::join!(
        receipts_access(&tx, ReceiptsUse::Rollback),
        sequence_values(&tx)
    );
    access?;
    let at_start = at_start?;
    let Some(undo) = read_receipt(&tx, &opts.receipt_id, opts.target.redacted()).await? else {
        // Like a repeated push: the wanted state holds, nothing to do.
        tx.rollback().await?;
        let mut report = RollbackReport::new(opts, vec![], vec![]);
        report.already_rolled_back = true;
        report.millis = started.elapsed().as_millis() as u64;
        return Ok(report);
    };
    // A mistyped table or column would allow or discard nothing, silently.
    let mut unknown = crate::db::writes::unknown_tables(&tx, &opts.allow_writes).await?;
    unknown.extend(unknown_discards(&opts.discard_changes, &undo));
    if !unknown.is_empty() {
        tx.rollback().await?;
        return Err(crate::error::environment(format!(
            "{}; nothing was changed",
            unknown.join("; ")
        )));
    }
    let undone = undo_in(&tx, opts, &undo, Mode::Rollback).await;
    let report = match undone {
        Ok(report) if opts.confirm => {
            if !crate::interrupt::enter_commit() {
                return Err(crate::interrupt::interrupted_before_commit(
                    "nothing was undone",
                ));
            }
            tx.commit()
                .await
                .context("COMMIT of the rollback failed; nothing was undone")?;
            report
        }
        Ok(mut report) => {
            tx.rollback().await?;
            report.sequences_drawn = drawn(&at_start, &sequence_values(&client).await?);
            report
        }
        Err(e) => {
            // The refusal is what the user must see: a failed ROLLBACK or
            // re-read (a lost connection) only leaves the draws unsaid.
            if tx.rollback().await.is_err() || client.is_closed() {
                return Err(e);
            }
            let used = match sequence_values(&client).await {
                Ok(now) => drawn(&at_start, &now),
                Err(_) => vec![],
            };
            if used.is_empty() {
                return Err(e);
            }
            return Err(e.context(format!(
                "No row was changed, but sequences are never rolled back: while the rollback's \
                 transaction was open, {} advanced (values handed out by triggers that fired for \
                 the undo, or by the app at the same time)",
                used.iter()
                    .map(|s| s.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    Ok(RollbackReport {
        millis: started.elapsed().as_millis() as u64,
        ..report
    })
}

/// The values of `--discard-changes` naming no table the push wrote, or
/// no column of it, each with what is accepted.
fn unknown_discards(discard: &[String], undo: &crate::receipt::Undo) -> Vec<String> {
    let tables: Vec<&str> = undo.tables.iter().map(|t| t.table.as_str()).collect();
    let mut found = Vec::new();
    for d in discard {
        let Some((table, column)) = d.split_once('.') else {
            continue;
        };
        match undo.tables.iter().find(|t| t.table == table) {
            None => found.push(format!(
                "--discard-changes {d}: this push wrote no table {table}; name TABLE.COLUMN or \
                 TABLE.* of a table it wrote: {}",
                tables.join(", ")
            )),
            Some(t) if column != "*" && !t.columns.iter().any(|c| c.name == column) => {
                let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                let shown = if names.len() > 12 {
                    format!("{}, … ({} in all)", names[..12].join(", "), names.len())
                } else {
                    names.join(", ")
                };
                found.push(format!(
                    "--discard-changes {d}: {table} has no column {column} (its columns: \
                     {shown}; or {table}.* for any)"
                ));
            }
            Some(_) => {}
        }
    }
    found
}
