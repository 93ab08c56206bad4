use std::path::Path;

use anyhow::Result;
use sandbox::db::sqlite::Snapshot;
use sandbox::plan::Plan;

use crate::cli::ReportArgs;

pub fn run(args: ReportArgs, json: bool) -> Result<i32> {
    sandbox::outfile::refuse_existing(&args.html, args.force)?;
    let plan = crate::cmd::load_plan(&args.plan)?;
    let written = write_html(&args.html, args.force, &args.snapshot.snapshot, &plan)?;
    if json {
        crate::output::print_json(&serde_json::json!({
            "html": args.html, "rehearsal_id": written.0, "passed": written.1,
        }))?;
    } else {
        println!(
            "Wrote the report of rehearsal #{} ({}) to {}",
            written.0,
            if written.1 { "passed" } else { "failed" },
            args.html.display()
        );
    }
    Ok(0)
}

/// Writes the HTML report of the snapshot's last rehearsal; returns its id
/// and whether it passed. An existing `out` is replaced only with `force`.
pub fn write_html(
    out: &Path,
    force: bool,
    snapshot_path: &Path,
    plan: &Plan,
) -> Result<(i64, bool)> {
    let snapshot = Snapshot::open(snapshot_path)?;
    let stored = sandbox::ops::report::last(&snapshot)?;
    // What push would do is the diff push computes, with its own refusals
    // (a failed rehearsal, another plan) shown as the reason.
    let push = sandbox::diff::diff_snapshot(snapshot_path, plan)
        .map(|(_, d)| d.summary())
        .map_err(|e| format!("{e:#}"));
    let page = crate::html::render(plan, &snapshot, &stored, &push);
    // The page holds the failing rows themselves: private like the snapshot.
    sandbox::outfile::write_replacing(out, page.as_bytes(), force)?;
    Ok((stored.id, stored.passed))
}
