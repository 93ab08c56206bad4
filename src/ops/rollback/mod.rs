//! `sandbox rollback`: undo exactly what one receipt did, in one
//! transaction, after proving nothing changed what it wrote since (the rule
//! itself is `db::postgres::rollback::undo_in`, shared with the push's
//! rehearsal of its own undo). Never the seed plan's `DELETE … LIKE`
//! statements.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::db::postgres::connect_watched;
use crate::db::postgres::receipts::{read_receipt, receipts_access, ReceiptsUse};
use crate::db::postgres::rollback::{undo_in, Mode};
use crate::db::postgres::sequences::{drawn, sequence_values};
use crate::db::postgres::tx::{begin, fatal_in, why_the_session_ended};

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
    let (mut client, end) = connect_watched(&opts.target).await?;
    let result = match rollback_on(&mut client, opts, started).await {
        // Row-level security met inside an app's SECURITY DEFINER function
        // is its owner's, not this role's (see `definer`).
        Err(e) if !client.is_closed() && fatal_in(&e).is_none() => {
            Err(crate::db::postgres::definer::explain_in_function(
                &client,
                e,
                "the rollback",
                if opts.confirm {
                    "nothing was changed"
                } else {
                    "dry run: nothing was changed"
                },
            )
            .await)
        }
        other => other,
    };
    match result {
        // What the server said as it ended the session (an idle-in-
        // transaction limit, a terminated backend), instead of the
        // driver's bare "connection closed".
        Err(e) if client.is_closed() || fatal_in(&e).is_some() => {
            match why_the_session_ended(&opts.target, &end, &e).await {
                Some(why) => Err(e.context(format!("the connection to Postgres was lost: {why}"))),
                None => Err(e),
            }
        }
        other => other.map_err(crate::db::postgres::explain_row_security),
    }
}

async fn rollback_on(
    client: &mut tokio_postgres::Client,
    opts: &RollbackOptions,
    started: Instant,
) -> Result<RollbackReport> {
    let tx = begin(client, opts.statement_timeout_ms, opts.lock_timeout_ms).await?;
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
    let added = app_added_columns(&tx, &opts.discard_changes, &undo).await?;
    unknown.extend(unknown_discards(&opts.discard_changes, &undo, &added));
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
            crate::db::postgres::tx::commit_or_say(
                tx,
                "the rollback",
                "nothing was undone",
                &format!(
                    "Run `sandbox rollback --receipt {id}` against the same database: it says \
                     \"Already rolled back\" if the undo landed (and marks the snapshot's copy), \
                     and if it did not, checks everything again and changes nothing without \
                     --confirm. `sandbox receipts` shows the receipt's status in sandbox.receipts \
                     too (rolled_back or applied)",
                    id = opts.receipt_id
                ),
            )
            .await?;
            report
        }
        Ok(mut report) => {
            tx.rollback().await?;
            report.sequences_drawn = drawn(&at_start, &sequence_values(&*client).await?);
            report
        }
        Err(e) => {
            // The refusal is what the user must see: a failed ROLLBACK or
            // re-read (a lost connection) only leaves the draws unsaid.
            if tx.rollback().await.is_err() || client.is_closed() {
                return Err(e);
            }
            let used = match sequence_values(&*client).await {
                Ok(now) => drawn(&at_start, &now),
                Err(_) => vec![],
            };
            if used.is_empty() {
                return Err(e);
            }
            return Err(crate::error::with_note(
                e,
                &format!(
                    "No row was changed, but sequences are never rolled back: while the \
                     rollback's transaction was open, these advanced: {} (values handed out by \
                     triggers that fired for the undo, or by the app at the same time)",
                    used.iter()
                        .map(|s| s.describe())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    Ok(RollbackReport {
        millis: started.elapsed().as_millis() as u64,
        ..report
    })
}

/// `(table, column)` of each `--discard-changes TABLE.COLUMN` whose column
/// the receipt does not know but the table has now: one the app added
/// after the push, whose data the rollback refuses to destroy unless told
/// to (one query, only when there is such a value).
async fn app_added_columns(
    tx: &tokio_postgres::Transaction<'_>,
    discard: &[String],
    undo: &crate::receipt::Undo,
) -> Result<Vec<(String, String)>> {
    let asked: Vec<String> = discard
        .iter()
        .filter_map(|d| d.split_once('.'))
        .filter(|(table, column)| {
            *column != "*"
                && undo
                    .tables
                    .iter()
                    .any(|t| t.table == *table && !t.columns.iter().any(|c| c.name == *column))
        })
        .map(|(table, column)| format!("{table}.{column}"))
        .collect();
    if asked.is_empty() {
        return Ok(vec![]);
    }
    let rows = tx
        .query_typed(
            "SELECT c.relname::text, a.attname::text FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
             WHERE a.attnum > 0 AND NOT a.attisdropped \
               AND c.relname::text || '.' || a.attname::text = ANY($1)",
            &[(&asked, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot read the columns --discard-changes names")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The values of `--discard-changes` naming no table the push wrote, or
/// no column of it (as the receipt records it, or `added` by the app
/// since), each with what is accepted.
fn unknown_discards(
    discard: &[String],
    undo: &crate::receipt::Undo,
    added: &[(String, String)],
) -> Vec<String> {
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
            Some(t)
                if column != "*"
                    && !t.columns.iter().any(|c| c.name == column)
                    && !added.iter().any(|(at, ac)| at == table && ac == column) =>
            {
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
