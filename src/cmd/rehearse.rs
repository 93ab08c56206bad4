use anyhow::Result;
use sandbox::ops::rehearse::{rehearse, RehearsalReport, RehearseOptions};
use sandbox::plan::checks::CheckKind;

use crate::cli::RehearseArgs;
use crate::output::{self, short};

pub fn run(args: RehearseArgs, json: bool) -> Result<i32> {
    // Refused before the rehearsal runs, not after it.
    if let Some(html) = &args.html {
        sandbox::outfile::refuse_existing(html, args.force)?;
    }
    let plan = crate::cmd::load_plan(&args.plan)?;
    let report = rehearse(&RehearseOptions {
        snapshot: &args.snapshot.snapshot,
        plan: &plan,
    })?;
    if let Some(html) = &args.html {
        crate::cmd::report::write_html(html, args.force, &args.snapshot.snapshot, &plan)?;
    }
    if json {
        output::print_json(&report)?;
    } else {
        print_report(&report, &plan);
        if let Some(html) = &args.html {
            println!("HTML report: {}", html.display());
        }
    }
    Ok(if report.passed { 0 } else { 1 })
}

/// The rehearsal as a person reads it: every check, the rows behind each
/// failure, and a one-line verdict.
pub fn print_report(report: &RehearsalReport, plan: &sandbox::plan::Plan) {
    let shown: Vec<&sandbox::plan::checks::Check> = report
        .checks
        .iter()
        .filter(|c| c.kind != sandbox::plan::checks::CheckKind::Integrity || !c.ok)
        .collect();
    println!("{}", output::checks(&shown, "phase"));
    let integrity = report
        .checks
        .iter()
        .filter(|c| c.kind == sandbox::plan::checks::CheckKind::Integrity)
        .count();
    println!(
        "({integrity} pulled tables re-checksummed: unchanged since pull unless listed above)"
    );
    for c in report.failed().filter(|c| !c.rows.is_empty()) {
        println!("\n{} — {} ({} rows):", c.phase, c.name, c.row_count);
        // Whole, wrapped: a row ends in its explanation and the fix.
        for r in c.rows.iter().take(15) {
            println!("{}", output::wrap_within("  ", r, 4));
        }
        if c.row_count > 15 {
            println!("  … {} more in the report_failures view", c.row_count - 15);
        }
    }
    if !report.preflight.is_empty() {
        println!(
            "\n{}",
            output::wrap(
                "",
                "Checked on Postgres by the preflight (SQLite cannot evaluate these; `sandbox \
                 push` runs them on the server before anything is committed):",
                0
            )
        );
        // Postgres prints a CASE or a long expression over several indented
        // lines: each item is wrapped whole up to three lines, so a CHECK's
        // allowed values or a trigger's timing and function can be read;
        // longer ones are cut, and are whole in --json and report_preflight.
        let mut cut = false;
        for p in &report.preflight {
            let (item, was_cut) = output::wrap_within_lines(
                "  ",
                &format!(
                    "{} {} {}: {}",
                    p.table,
                    p.kind.replace('_', " "),
                    p.name,
                    p.detail
                ),
                4,
                3,
            );
            cut |= was_cut;
            println!("{item}");
        }
        if cut {
            println!(
                "{}",
                output::wrap(
                    "  ",
                    "(cut items are whole in the snapshot's report_preflight view and in --json)",
                    2
                )
            );
        }
    }
    let failed = report.failed().count();
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|p| format!("{} {:.1} ms", p.id, p.millis))
        .collect();
    println!("\n{}", output::wrap("Phases: ", &phases.join(", "), 8));
    if report.passed {
        // The command stays on a line of its own, whole: it is pasted.
        println!(
            "{}\nNext: {}",
            output::wrap(
                &format!("{}: ", output::verdict(true)),
                &format!(
                    "all {} checks hold (rehearsal #{}, plan {}, {:.0} ms).",
                    report.checks.len(),
                    report.rehearsal_id,
                    short(&report.plan_hash),
                    report.millis,
                ),
                0
            ),
            sandbox::advice::preflight(std::path::Path::new(&report.snapshot), plan)
        );
    } else {
        let snapshot = std::path::Path::new(&report.snapshot);
        println!(
            "{}",
            output::wrap(
                &format!("{}: ", output::verdict(false)),
                &format!(
                    "{failed} of {} checks failed (rehearsal #{}, plan {}). Push will refuse this \
                     snapshot.",
                    report.checks.len(),
                    report.rehearsal_id,
                    short(&report.plan_hash),
                ),
                0
            )
        );
        // Only advice that applies, so each printed command does something
        // when pasted: a policy only when the plan has policies, adopting
        // only when a failed check is an expectation or verification query
        // (the only checks `plan adopt` can take numbers for).
        let mut next = format!(
            "Next: look at the rows (views report_checks, report_failures in {}).",
            report.snapshot
        );
        if !plan.file.policies.is_empty() {
            let policies: String = plan
                .file
                .policies
                .iter()
                .map(|(name, p)| {
                    let others: Vec<&str> = p
                        .values
                        .iter()
                        .map(String::as_str)
                        .filter(|v| *v != p.value)
                        .collect();
                    format!("\n    {name} = {} (or {})", p.value, others.join(", "))
                })
                .collect();
            next.push_str(&format!(
                "\nWhere the data is right and the plan is not, choose a policy:{policies}\n    \
                 {} --policy NAME=VALUE",
                sandbox::advice::rehearse(snapshot, plan)
            ));
        }
        let adoptable = report
            .checks
            .iter()
            .any(|c| !c.ok && matches!(c.kind, CheckKind::Expectation | CheckKind::Verification));
        if adoptable {
            next.push_str(&format!(
                "\nOr adopt the numbers found as the plan's expectations, in a plan folder to review:\n    \
                 sandbox plan adopt --snapshot {}{} --out {}",
                sandbox::advice::shell_word(&report.snapshot),
                sandbox::advice::plan_args(plan),
                sandbox::advice::shell_word(&unused_folder("plan-adopted"))
            ));
        }
        println!("{next}");
    }
}

/// `base`, or `base-2`, `base-3`, … : the first name no file or folder in
/// the working directory has yet, so the printed `--out` works as pasted.
fn unused_folder(base: &str) -> String {
    (1..)
        .map(|n| {
            if n == 1 {
                base.to_string()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|name| !std::path::Path::new(name).exists())
        .unwrap_or_else(|| base.to_string())
}
