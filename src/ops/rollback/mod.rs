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
    let mut client = connect(&opts.target).await?;
    let tx = begin(&mut client, opts.statement_timeout_ms, opts.lock_timeout_ms).await?;
    receipts_access(&tx, ReceiptsUse::Rollback).await?;
    let Some(undo) = read_receipt(&tx, &opts.receipt_id, opts.target.redacted()).await? else {
        // Like a repeated push: the wanted state holds, nothing to do.
        tx.rollback().await?;
        let mut report = RollbackReport::new(opts, vec![], vec![]);
        report.already_rolled_back = true;
        report.millis = started.elapsed().as_millis() as u64;
        return Ok(report);
    };
    let report = undo_in(&tx, opts, &undo, Mode::Rollback).await?;
    if !opts.confirm {
        tx.rollback().await?;
        return Ok(RollbackReport {
            millis: started.elapsed().as_millis() as u64,
            ..report
        });
    }
    tx.commit()
        .await
        .context("COMMIT of the rollback failed; nothing was undone")?;
    Ok(RollbackReport {
        millis: started.elapsed().as_millis() as u64,
        ..report
    })
}
