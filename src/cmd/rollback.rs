use anyhow::Result;
use sandbox::ops::rollback::{rollback, RollbackOptions};

use crate::cli::RollbackArgs;
use crate::output;

pub fn run(args: RollbackArgs, json: bool) -> Result<i32> {
    let target = crate::database_url(&args.db)?;
    let opts = RollbackOptions {
        target,
        receipt_id: args.receipt,
        confirm: args.confirm,
        lock_timeout_ms: args.timeouts.lock_timeout,
        statement_timeout_ms: args.timeouts.statement_timeout,
        allow_writes: args.allow_writes,
    };
    let report = crate::runtime()?.block_on(rollback(&opts))?;
    if json {
        output::print_json(&report)?;
        return Ok(0);
    }
    if report.already_rolled_back {
        println!(
            "Already rolled back: receipt {} was undone before. Nothing to do.",
            report.receipt_id
        );
        return Ok(0);
    }
    let checks: Vec<&sandbox::plan::checks::Check> = report.checks.iter().collect();
    println!("{}", output::checks(&checks, "step"));
    let deleted: Vec<String> = report
        .deleted
        .iter()
        .map(|(t, n)| format!("{n} from {t}"))
        .collect();
    println!(
        "{} receipt {}: dropped columns [{}], dropped tables [{}], deleted rows [{}].",
        if report.confirmed {
            "Rolled back"
        } else {
            "Dry run — would roll back"
        },
        report.receipt_id,
        report.dropped_columns.join(", "),
        report.dropped_tables.join(", "),
        deleted.join(", ")
    );
    if !report.side_effects.is_empty() {
        let effects: Vec<String> = report.side_effects.iter().map(|w| w.describe()).collect();
        println!(
            "Allowed side effects of the undo (tables outside the receipt): {}",
            effects.join("; ")
        );
    }
    if !report.confirmed {
        println!("Nothing was changed. Add --confirm to undo.");
    }
    Ok(0)
}
