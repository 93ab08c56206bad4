use anyhow::Result;
use sandbox::diff::diff_snapshot;

use crate::cli::DiffArgs;
use crate::output::{self, short};

pub fn run(args: DiffArgs, json: bool) -> Result<i32> {
    if let Some(path) = &args.sql {
        sandbox::outfile::refuse_existing(path, args.force)?;
    }
    let plan = crate::cmd::load_plan(&args.plan)?;
    let (snapshot, diff) = diff_snapshot(&args.snapshot.snapshot, &plan)?;
    if let Some(path) = &args.sql {
        // The tables push locks against writers and those it creates: a
        // sequence only they draw from is restarted, as push does.
        let locked: Vec<String> = sandbox::ops::push::push_locks(&snapshot, &plan, false)
            .into_iter()
            .map(|(t, _)| t)
            .chain(plan.schema.tables.iter().map(|t| t.name.clone()))
            .collect();
        // The mark on the first line keeps the script out of the plan hash
        // when it is written into the plan folder.
        let script = format!(
            "-- {} diff: output for review, no part of any plan\n{SQL_WARNING}{}",
            sandbox::plan::folder::GENERATED_MARK,
            diff.to_sql(&snapshot, &locked)
        );
        // The script holds the rows a push inserts: owner-only, like the snapshot.
        sandbox::outfile::write_replacing(path, script.as_bytes(), args.force)?;
    }
    if json {
        output::print_json(&serde_json::json!({
            "hash": diff.hash, "plan_hash": diff.plan_hash, "rehearsal_id": diff.rehearsal_id,
            "ddl": diff.ddl, "summary": diff.summary(), "tables": diff.tables,
        }))?;
        return Ok(0);
    }
    print_summary(&diff);
    if let Some(path) = &args.sql {
        println!("SQL script of exactly what push does: {}", path.display());
    }
    Ok(0)
}

/// Heads the `--sql` script: it is for review, and running it is a push
/// without any of push's protections.
const SQL_WARNING: &str = "\
-- WARNING: running this script (psql -f) APPLIES THE MIGRATION, with no drift check,
-- no verification on Postgres and NO RECEIPT: `sandbox rollback` cannot undo it.
-- To apply, use `sandbox push --confirm`, which checks all of that and writes a receipt.
";

pub fn print_summary(diff: &sandbox::diff::Diff) {
    let rows = diff
        .summary()
        .into_iter()
        .map(|s| {
            vec![
                s.table,
                if s.created {
                    "CREATE TABLE".into()
                } else {
                    String::new()
                },
                s.inserts.to_string(),
                s.updates.to_string(),
                s.deletes.to_string(),
                s.updated_columns.join(", "),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(
            &[
                "table",
                "ddl",
                "inserts",
                "updates",
                "deletes",
                "columns updated"
            ],
            rows
        )
    );
    // One line per statement, cut to the width: the whole statement is in
    // `--sql`.
    for d in &diff.ddl {
        println!(
            "{}",
            output::truncate(
                &format!(
                    "  phase {:>2}: {}",
                    d.phase,
                    d.sql.lines().next().unwrap_or("")
                ),
                output::width()
            )
        );
    }
    let inserts: usize = diff.tables.iter().map(|t| t.inserts.len()).sum();
    let updates: usize = diff.tables.iter().map(|t| t.updates.len()).sum();
    let deletes: usize = diff.tables.iter().map(|t| t.deletes.len()).sum();
    println!(
        "{}",
        output::wrap(
            &format!("Diff {}: ", short(&diff.hash)),
            &format!(
                "{} DDL statements, {inserts} rows to insert, {updates} rows to update, \
                 {deletes} rows to delete (rehearsal #{}).",
                diff.ddl.len(),
                diff.rehearsal_id
            ),
            0
        )
    );
}
