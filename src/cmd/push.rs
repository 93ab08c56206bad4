use anyhow::Result;
use indicatif::ProgressBar;
use sandbox::ops::push::{push, PushOptions, PushOutcome, PushProgress};

use crate::cli::PushArgs;
use crate::output;

struct Spinner(ProgressBar);

impl PushProgress for Spinner {
    fn step(&self, what: &str) {
        self.0.set_message(what.to_string());
        self.0.tick();
    }
}

pub fn run(args: PushArgs, json: bool) -> Result<i32> {
    let target = crate::database_url(&args.db)?;
    let plan = crate::cmd::load_plan(&args.plan)?;
    let bar = if output::progress_enabled(json) {
        let b = ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let opts = PushOptions {
        target,
        snapshot: args.snapshot.snapshot,
        confirm: args.confirm,
        lock_timeout_ms: args.timeouts.lock_timeout,
        statement_timeout_ms: args.timeouts.statement_timeout,
    };
    let result = crate::runtime()?.block_on(push(&opts, &plan, &Spinner(bar.clone())));
    bar.finish_and_clear();
    let report = result?;
    if json {
        output::print_json(&report)?;
        return Ok(0);
    }
    let rows = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.before.to_string(),
                t.after.to_string(),
                t.inserted.to_string(),
                t.updated.to_string(),
            ]
        })
        .collect();
    match report.outcome {
        PushOutcome::AlreadyApplied => {
            println!(
                "Already applied: receipt {} holds this diff and {} is in the rehearsed state. Nothing to do.",
                report.receipt_id.as_deref().unwrap_or("?"),
                report.database
            );
        }
        PushOutcome::WouldApply => {
            println!(
                "{}",
                output::table(&["table", "before", "after", "inserts", "updates"], rows)
            );
            println!(
                "Dry run: the remote matches the snapshot ({} drift checks passed). `sandbox push --confirm` would apply diff {} in one transaction. Nothing was written.",
                report.checks.len(),
                output::short(&report.diff_hash)
            );
        }
        PushOutcome::Applied => {
            println!(
                "{}",
                output::table(&["table", "before", "after", "inserts", "updates"], rows)
            );
            let failed = report.checks.iter().filter(|c| !c.ok).count();
            println!(
                "Applied diff {} to {} in one transaction ({} checks on Postgres, {failed} failed) in {}.",
                output::short(&report.diff_hash),
                report.database,
                report.checks.len(),
                output::millis(report.millis)
            );
            if !report.disabled_triggers.is_empty() {
                println!(
                    "Triggers held off during the update (re-enabled before COMMIT): {}",
                    report.disabled_triggers.join(", ")
                );
            }
            println!(
                "Receipt {}  — undo with: sandbox rollback --receipt {} --confirm",
                report.receipt_id.as_deref().unwrap_or("?"),
                report.receipt_id.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(0)
}
