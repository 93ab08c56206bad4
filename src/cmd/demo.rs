use anyhow::Result;
use sandbox::fixtures::FixtureOptions;
use sandbox::ops::demo::build_snapshot;
use sandbox::ops::pull::NoProgress;
use sandbox::ops::rehearse::{rehearse, RehearseOptions};

use crate::cli::DemoArgs;
use crate::output;

/// The whole loop with no server: build a snapshot of the fixtures, rehearse
/// the plan on it, show what push would change.
pub fn run(args: DemoArgs, json: bool) -> Result<i32> {
    let variant = crate::cmd::fixtures::parse_variant(&args.variant)?;
    let plan = crate::cmd::load_plan(&args.plan)?;
    let opts = FixtureOptions { variant, scale: 1 };
    if let Some(html) = &args.html {
        sandbox::outfile::refuse_existing(html, args.force)?;
    }
    let pulled = build_snapshot(&args.out, args.force, &opts, &plan.tables, &NoProgress)?;
    let report = rehearse(&RehearseOptions {
        snapshot: &args.out,
        plan: &plan,
    })?;
    let diff = if report.passed {
        Some(sandbox::diff::diff_snapshot(&args.out, &plan)?.1)
    } else {
        None
    };
    if let Some(html) = &args.html {
        crate::cmd::report::write_html(html, args.force, &args.out, &plan)?;
    }
    if json {
        output::print_json(&serde_json::json!({
            "snapshot": pulled.path, "tables": pulled.tables, "rehearsal": report,
            "diff": diff.as_ref().map(|d| serde_json::json!({"hash": d.hash, "summary": d.summary()})),
        }))?;
        return Ok(if report.passed { 0 } else { 1 });
    }
    let total: u64 = pulled.tables.iter().map(|t| t.rows).sum();
    println!(
        "Built a snapshot of the '{}' fixtures with no server: {} tables, {total} rows, in {}.\n",
        args.variant,
        pulled.tables.len(),
        output::millis(pulled.millis)
    );
    crate::cmd::rehearse::print_report(&report, &plan);
    match &diff {
        Some(d) => {
            println!("\nWhat `sandbox push --confirm` would apply:");
            crate::cmd::diff::print_summary(d);
        }
        None => println!("\nPush would refuse this snapshot: the rehearsal failed."),
    }
    println!(
        "\n{}",
        output::wrap(
            "",
            &format!(
                "Open {} in any SQLite browser: pulled tables under their own names, staged_* \
                 tables, views report_checks, report_failures, report_workflows_by_source, \
                 report_jtbd_per_priority.",
                pulled.path.display()
            ),
            0
        )
    );
    if let Some(html) = &args.html {
        println!("HTML report: {}", html.display());
    }
    Ok(if report.passed { 0 } else { 1 })
}
