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
        statement_timeout_ms: args.timeouts.statement_timeout.statement_timeout,
        allow_writes: args.allow_writes,
        allow_external_effects: args.allow_external_effects,
        strict: args.strict,
        allow_irreversible: args.allow_irreversible,
    };
    let flags = opts.run_flags();
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
                t.deleted.to_string(),
            ]
        })
        .collect();
    // What the transaction changed and checked, the same whether it was
    // rolled back (preflight) or committed.
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    if report.outcome != PushOutcome::AlreadyApplied {
        println!(
            "{}",
            output::table(
                &["table", "before", "after", "inserts", "updates", "deletes"],
                rows
            )
        );
        print_triggers_and_side_effects(&report);
        print_undo_rehearsal(&report);
    }
    match report.outcome {
        PushOutcome::AlreadyApplied if report.changed_since_push.is_empty() => {
            println!(
                "Already applied: receipt {} holds this diff and {} is in the rehearsed state. Nothing to do.",
                report.receipt_id.as_deref().unwrap_or("?"),
                report.database
            );
        }
        PushOutcome::AlreadyApplied => {
            // The receipt is what the push did; the app's later edits of
            // what it wrote are drift to know of (a rollback checks them
            // again), not a reason to refuse recording it.
            println!(
                "Already applied: receipt {} holds this diff (it committed with the push); nothing \
                 was written to {}. Since the push, the app changed rows it wrote; they are left \
                 as the app made them (`sandbox rollback` checks them again):",
                report.receipt_id.as_deref().unwrap_or("?"),
                report.database
            );
            for counted in report
                .pushed_rows_now
                .as_ref()
                .map(rows_now)
                .unwrap_or_default()
            {
                println!("  {counted}");
            }
            for changed in &report.changed_since_push {
                println!("  {}", output::visible(changed));
            }
        }
        PushOutcome::WouldApply => {
            println!(
                "Dry run (preflight) passed: the whole push transaction ran on {} ({} checks on Postgres, {failed} failed) and was rolled back. `{}` would apply diff {} the same way. {}",
                report.database,
                report.checks.len(),
                sandbox::advice::push_confirm(&opts.snapshot, &plan, &flags),
                output::short(&report.diff_hash),
                match (
                    acted_outside(&report.external_effects),
                    output::sequences_drawn(&report.sequences_drawn)
                ) {
                    (false, None) => "Nothing was written.".to_string(),
                    (false, Some(drawn)) => format!(
                        "No row was written, but sequences are never rolled back: it advanced {drawn} \
                         (values handed out by this run, or by the app at the same time)."
                    ),
                    (true, drawn) => format!(
                        "No row was kept, but {OUTSIDE}{}",
                        drawn
                            .map(|d| format!(" Sequences are never rolled back either: it advanced {d}."))
                            .unwrap_or_default()
                    ),
                }
            );
        }
        PushOutcome::Applied => {
            println!(
                "Applied diff {} to {} in one transaction ({} checks on Postgres, {failed} failed) in {}.",
                output::short(&report.diff_hash),
                report.database,
                report.checks.len(),
                output::millis(report.millis)
            );
            let receipt = report.receipt_id.as_deref().unwrap_or("?");
            println!(
                "Receipt {receipt}  — undo with: {}",
                sandbox::advice::rollback_confirm(
                    receipt,
                    &opts.snapshot,
                    &flags,
                    report
                        .undo_rehearsal
                        .as_ref()
                        .map(|u| u.consent_tables.as_slice())
                        .unwrap_or_default()
                )
            );
        }
    }
    if let Some(e) = &report.local_record_error {
        // The push is in the database (its receipt is in sandbox.receipts);
        // only the local copy is missing. Exit 0: what was asked happened.
        eprintln!(
            "warning: the receipt {} is in sandbox.receipts, but the snapshot file could not record it ({e}). \
             To bring the file up to date, {} and run \
             `sandbox push --snapshot FILE` with the same plan: it finds the receipt and records it.",
            report.receipt_id.as_deref().unwrap_or("?"),
            report
                .local_record_fix
                .as_deref()
                .unwrap_or("make it writable (or copy it somewhere writable)")
        );
    }
    Ok(0)
}

/// What the rehearsal of the push's rollback found: that it would undo the
/// push, or (with --allow-irreversible) why it would be refused.
fn print_undo_rehearsal(report: &sandbox::ops::push::PushReport) {
    let Some(u) = &report.undo_rehearsal else {
        return;
    };
    if !u.not_rehearsed.is_empty() {
        // Checked up to the undo, which would have made these calls for
        // real inside the push.
        for why in &u.not_rehearsed {
            println!("Rollback not rehearsed: {}", output::visible(why));
        }
        println!(
            "Rollback not rehearsed in the transaction: what fires for the undo acts outside the \
             database, which a rehearsal would do for real. Its other checks hold ({}); `sandbox \
             rollback` refuses it unless given --allow-external-effects.",
            u.checks.len()
        );
        return;
    }
    match &u.refused {
        None if !u.needs_consent.is_empty() => {
            println!(
                "Rollback rehearsed in the transaction before COMMIT: it would undo this push ({} \
                 checks hold, {}) only with consent of its own — `sandbox rollback` refuses it \
                 without, since it inherits the push's --allow-writes for inserts only:",
                u.checks.len(),
                output::millis(u.millis)
            );
            for why in &u.needs_consent {
                println!("  {}", output::visible(why));
            }
        }
        None => println!(
            "Rollback rehearsed in the transaction before COMMIT: it would undo this push ({} checks hold, {}).",
            u.checks.len(),
            output::millis(u.millis)
        ),
        Some(why) => println!(
            "IRREVERSIBLE: this push cannot be rolled back (--allow-irreversible): its rollback, rehearsed in the transaction, would be refused — {}",
            output::visible(why)
        ),
    }
}

fn print_triggers_and_side_effects(report: &sandbox::ops::push::PushReport) {
    if !report.triggers.is_empty() {
        let rows = report
            .triggers
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    t.name.clone(),
                    format!("{} {}", t.timing, t.level),
                    t.events.join("/"),
                    t.action.as_str().to_string(),
                    t.note.clone(),
                ]
            })
            .collect();
        // What fires and what is held off is the point of the list: those
        // columns are never cut on a narrow terminal or in a pipe; only the
        // why is (it is whole in --json).
        println!(
            "{}",
            output::table_keeping(
                &[
                    "table",
                    "trigger",
                    "timing",
                    "events",
                    "during the push",
                    "why"
                ],
                rows,
                &[0, 1, 2, 3, 4],
            )
        );
    }
    if !report.rules.is_empty() {
        println!(
            "Rules on the tables the push writes (an enabled one fires for its UPDATE and \
             DELETE, none for its COPY): {}",
            report.rules.join("; ")
        );
    }
    if !report.trigger_set.is_empty() {
        println!(
            "Columns set by triggers, not by the plan: {}",
            report.trigger_set.join("; ")
        );
    }
    if !report.side_effects.is_empty() {
        let effects: Vec<String> = report.side_effects.iter().map(|w| w.describe()).collect();
        println!(
            "Allowed side effects (tables outside the plan, written by triggers; a rollback leaves them): {}",
            effects.join("; ")
        );
    }
    print_sequences(report);
    print_foreign_tables(&report.foreign_tables, &report.foreign_writes_allowed);
    print_external_effects(&report.external_effects);
}

/// The sequences behind columns the plan wrote explicit values into.
fn print_sequences(report: &sandbox::ops::push::PushReport) {
    let would = report.outcome == PushOutcome::WouldApply;
    for s in &report.sequences {
        let what = match (s.moved(), would) {
            (true, true) if !s.shared_with.is_empty() => format!(
                "`--confirm` would draw {} to move it past the values written, as it also \
                 numbers {}; this dry run drew none (a draw is never rolled back): it gave the \
                 rows it left to the sequence the numbers that follow: next value {} -> {}",
                s.draw
                    .as_ref()
                    .map(|d| d.describe())
                    .unwrap_or_else(|| "values".into()),
                s.shared_with.join(", "),
                s.before,
                s.after
            ),
            (true, _) if !s.shared_with.is_empty() => format!(
                "moved past the values written by drawing them, as it also numbers {} (nextval \
                 takes no lock the app's inserts there wait for; drawn values are never rolled \
                 back): next value {} -> {}",
                s.shared_with.join(", "),
                s.before,
                s.after
            ),
            (true, true) => format!(
                "would be moved past the values written: next value {} -> {}",
                s.before, s.after
            ),
            (true, false) => format!(
                "moved past the values written: next value {} -> {}",
                s.before, s.after
            ),
            (false, _) => format!(
                "already past the values written: next value {}, left as is",
                s.before
            ),
        };
        println!(
            "Sequence {}.{} ({}.{}, values up to {}): {what}.",
            s.schema, s.sequence, s.table, s.column, s.written
        );
    }
}

/// What the write accounting cannot see: the database's foreign tables,
/// and the triggers and rules the user allowed to write them.
pub(crate) fn print_foreign_tables(
    tables: &[sandbox::db::foreign::ForeignTable],
    allowed: &[String],
) {
    if !allowed.is_empty() {
        println!(
            "Allowed writes to foreign tables (another server; not counted, and a rollback does not undo them): {}",
            allowed.join("; ")
        );
    }
    if !tables.is_empty() {
        let tables: Vec<String> = tables.iter().map(|t| t.describe()).collect();
        println!(
            "Foreign tables in this database: {}. A write to one goes to another server, outside what \
             Postgres's statistics count, so the write accounting cannot see it; only the triggers and \
             rules that name one in the catalog were checked.",
            tables.join(", ")
        );
    }
}

/// What a run that was rolled back says when it allowed calls outside the
/// transaction: they ran wherever their triggers fired, so "nothing was
/// written" would not be true.
pub(crate) const OUTSIDE: &str = "the calls outside the transaction allowed above \
     (--allow-external-effects) were made wherever their triggers fired, and no rollback undoes them.";

/// Whether an allowed call may have acted outside the transaction.
pub(crate) fn acted_outside(effects: &[sandbox::db::effects::ExternalEffect]) -> bool {
    effects.iter().any(|e| e.outside_transaction)
}

/// Calls a rollback does not undo (allowed), and those that happen only at
/// COMMIT.
pub(crate) fn print_external_effects(effects: &[sandbox::db::effects::ExternalEffect]) {
    for e in effects {
        if e.outside_transaction {
            println!(
                "Allowed effect outside the transaction (--allow-external-effects; not undone by a \
                 rollback): {}",
                e.description
            );
        } else {
            println!("At COMMIT only: {}", e.description);
        }
    }
}

/// What is left of the rows an already applied push wrote, counted, a line
/// for those it inserted and one for those it updated: "none remain" said
/// plainly when the app deleted them all, as the drift lines alone (one a
/// table) do not add up to it.
fn rows_now(n: &sandbox::db::postgres::rollback::PushedRowsNow) -> Vec<String> {
    let kinds = [
        ("inserted", n.inserted, n.inserted_left, n.inserted_changed),
        ("updated", n.updated, n.updated_left, n.updated_changed),
    ];
    let mut lines: Vec<String> = kinds
        .iter()
        .filter(|(_, written, _, _)| *written > 0)
        .map(|&(kind, written, left, changed)| {
            let gone = written - left;
            let changed = match changed {
                0 => String::new(),
                c if c == left && left > 1 => ", all of them changed since".into(),
                c => format!(", {c} of them changed since"),
            };
            if left == 0 {
                format!(
                    "None of the {} the push {kind} remain: all are gone since.",
                    sandbox::words::rows(written)
                )
            } else if gone == 0 {
                format!(
                    "All {} the push {kind} remain{changed}.",
                    sandbox::words::rows(written)
                )
            } else {
                format!(
                    "Of the {} the push {kind}, {left} remain{changed}; {gone} {} gone since.",
                    sandbox::words::rows(written),
                    if gone == 1 { "is" } else { "are" }
                )
            }
        })
        .collect();
    if n.not_compared > 0 {
        lines.push(format!(
            "{} the push wrote are not counted: their key is gone since.",
            sandbox::words::rows(n.not_compared)
        ));
    }
    if n.table_gone > 0 {
        lines.push(format!(
            "{} the push wrote are not counted: their table is gone under its name since.",
            sandbox::words::rows(n.table_gone)
        ));
    }
    lines
}
