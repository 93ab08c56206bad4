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
        statement_timeout_ms: args.timeouts.statement_timeout.statement_timeout,
        allow_writes: args.allow_writes,
        allow_external_effects: args.allow_external_effects,
        strict: args.strict,
        discard_changes: args.discard_changes,
        break_functions: args.break_functions,
    };
    let report = crate::runtime()?.block_on(rollback(&opts))?;
    // Postgres is the authority; the snapshot's copy follows it once the
    // undo is committed (or was, before).
    // A file that cannot record it (read-only, full) does not undo what
    // Postgres committed: say so and how to catch the file up, exit 0 —
    // as push does after its COMMIT.
    let mut local_record_error = None;
    let mut local_record_fix = "make it writable (or copy it somewhere writable)";
    let snapshot_marked =
        if (report.confirmed || report.already_rolled_back) && args.snapshot.exists() {
            match sandbox::ops::receipts::mark_rolled_back(&args.snapshot, &report.receipt_id) {
                Ok(marked) => Some(marked),
                Err(e) => {
                    let (why, fix) = sandbox::db::sqlite::why_unrecorded(&e);
                    local_record_error = Some(why);
                    local_record_fix = fix;
                    None
                }
            }
        } else {
            None
        };
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["snapshot_copy_marked"] = serde_json::json!(snapshot_marked);
        v["local_record_error"] = serde_json::json!(local_record_error);
        output::print_json(&v)?;
        return Ok(0);
    }
    if let Some(e) = &local_record_error {
        eprintln!(
            "warning: receipt {id} is rolled back in sandbox.receipts, but {file} could not record it ({e}). \
             To bring the file up to date, {local_record_fix} and run \
             `sandbox rollback --receipt {id} --snapshot FILE` against the same database: it finds the \
             receipt rolled back and marks the file's copy.",
            id = report.receipt_id,
            file = args.snapshot.display()
        );
    }
    match snapshot_marked {
        Some(true) => println!(
            "The copy in {} is marked rolled back too.",
            args.snapshot.display()
        ),
        Some(false) => println!(
            "{} holds no copy of this receipt (pushed from another snapshot?).",
            args.snapshot.display()
        ),
        None => {}
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
    let counted = |rows: &[(String, u64)]| -> String {
        rows.iter()
            .map(|(t, n)| format!("{n} of {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{} receipt {}: dropped columns [{}], dropped tables [{}], deleted rows [{}], re-inserted rows [{}], restored rows [{}].",
        if report.confirmed {
            "Rolled back"
        } else {
            "Dry run — would roll back"
        },
        report.receipt_id,
        report.dropped_columns.join(", "),
        report.dropped_tables.join(", "),
        counted(&report.deleted),
        counted(&report.reinserted),
        counted(&report.restored)
    );
    if !report.cascaded.is_empty() {
        println!(
            "{} with the pushed rows, through ON DELETE CASCADE, the rows the push's allowed side \
             effects wrote that reference them, as the receipt recorded them: {}.",
            if report.confirmed {
                "Deleted"
            } else {
                "Would delete"
            },
            report
                .cascaded
                .iter()
                .map(|c| format!("{} of {} (foreign key {})", c.rows, c.table, c.constraint))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !report.dropped_comments.is_empty() {
        println!(
            "{}: {}.",
            if report.confirmed {
                "Dropped with them"
            } else {
                "Would drop with them"
            },
            report.dropped_comments.join("; ")
        );
    }
    for by_name in [&report.created_by_name_only, &report.added_by_name_only]
        .into_iter()
        .flatten()
    {
        println!("Identified by name only: {by_name}.");
    }
    if !report.discarded.is_empty() {
        println!(
            "{} the app's changes to rows the push wrote (--discard-changes; recorded in the receipt): {}.",
            if report.confirmed {
                "Discarded"
            } else {
                "Would discard"
            },
            report.discarded.join("; ")
        );
    }
    if !report.broken_functions.is_empty() {
        println!(
            "{} (--break-function; recorded in the receipt): {}.",
            if report.confirmed {
                "Left broken"
            } else {
                "Would leave broken"
            },
            report.broken_functions.join("; ")
        );
    }
    if !report.already_gone.is_empty() {
        println!(
            "Already gone, left as the app left them (recorded in the receipt): {}.",
            report.already_gone.join("; ")
        );
    }
    // A stamp is held off only around the UPDATE restoring its table's
    // values: said only for a table whose values were restored.
    let held_off: Vec<String> = report
        .triggers
        .iter()
        .filter(|t| {
            t.action == sandbox::db::triggers::TriggerAction::HeldOff
                && report
                    .restored
                    .iter()
                    .any(|(table, n)| table == &t.table && *n > 0)
        })
        .map(|t| format!("{}.{}", t.table, t.name))
        .collect();
    if !held_off.is_empty() {
        println!(
            "Held off while restoring values (proven updated_at stamps named by the receipt; every other trigger fired): {}",
            held_off.join(", ")
        );
    }
    if !report.held_off_gone.is_empty() {
        println!(
            "Not held off (named by the receipt, gone since the push): {}.",
            report.held_off_gone.join("; ")
        );
    }
    // Rows deleted or updated outside the undo are said apart from
    // appended ones: they may be the app's, and only this rollback's own
    // --allow-writes let them go.
    let (destroying, appended): (Vec<_>, Vec<_>) = report
        .side_effects
        .iter()
        .partition(|w| w.updated > 0 || w.deleted > 0);
    let described = |ws: &[&sandbox::db::writes::TableWrites]| -> String {
        ws.iter()
            .map(|w| w.describe())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !appended.is_empty() {
        println!(
            "Allowed side effects of the undo (tables outside the receipt): {}",
            described(&appended)
        );
    }
    if !destroying.is_empty() {
        println!(
            "{} rows the undo did not write, in tables outside the receipt (allowed by this \
             rollback's --allow-writes; they may have been the app's): {}",
            if report.confirmed {
                "Deleted or updated"
            } else {
                "Would delete or update"
            },
            described(&destroying)
        );
    }
    for s in &report.sequences {
        let what = match (s.restored, s.found) {
            (false, Some(now)) if !s.shared_with.is_empty() => format!(
                "left at next value {now}: {} draw from it too, and the app's inserts there would \
                 wait for the lock that moving it back takes (a gap in the numbers harms no row)",
                s.shared_with.join(", ")
            ),
            (true, _) => format!("moved back: next value {} (was {} after the push)", s.before, s.pushed),
            (false, Some(now)) => format!(
                "left at next value {now}: values were drawn from it since the push (which left it at {}); \
                 moving it back to {} could hand out values rows hold",
                s.pushed, s.before
            ),
            (false, None) => "left: the sequence no longer exists".to_string(),
        };
        println!(
            "Sequence {} ({}.{}): {what}.",
            s.sequence, s.table, s.column
        );
    }
    crate::cmd::push::print_foreign_tables(&report.foreign_tables, &report.foreign_writes_allowed);
    crate::cmd::push::print_external_effects(&report.external_effects);
    if !report.confirmed {
        let outside = crate::cmd::push::acted_outside(&report.external_effects);
        match output::sequences_drawn(&report.sequences_drawn) {
            _ if outside => println!(
                "No row was kept, but {}{} Add --confirm to undo.",
                crate::cmd::push::OUTSIDE,
                output::sequences_drawn(&report.sequences_drawn)
                    .map(|d| format!(" Sequences are never rolled back either: it advanced {d}."))
                    .unwrap_or_default()
            ),
            None => println!("Nothing was changed. Add --confirm to undo."),
            Some(drawn) => println!(
                "No row was changed, but sequences are never rolled back: this dry run advanced {drawn} \
                 (values handed out by triggers that fired for the undo, or by the app at the same \
                 time). Add --confirm to undo."
            ),
        }
    }
    Ok(0)
}
