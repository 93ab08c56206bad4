use anyhow::Result;
use sandbox::db::sqlite::Snapshot;

use crate::cli::SnapshotArg;
use crate::output::{self, short};

pub fn run(args: SnapshotArg, json: bool) -> Result<i32> {
    let snap = Snapshot::open(&args.snapshot)?;
    let rehearsals = snap.rehearsal_count()?;
    let receipts = sandbox::ops::receipts::in_snapshot(&snap)?;
    if json {
        let tables: Vec<_> = snap
            .tables
            .iter()
            .map(|t| {
                serde_json::json!({
                    "table": t.meta.name, "role": t.meta.role.as_str(), "rows": t.rows,
                    "columns": t.meta.columns.len(), "checksum": t.checksum,
                })
            })
            .collect();
        output::print_json(&serde_json::json!({
            "snapshot": snap.path, "info": snap.info, "tables": tables, "rehearsals": rehearsals,
            "receipts": receipts,
        }))?;
        return Ok(0);
    }
    println!("Snapshot   {}", snap.path.display());
    println!(
        "Source     {} (Postgres {})",
        snap.info.source_url, snap.info.server_version
    );
    // SQLite's date functions read the ISO prefix of Postgres's timestamp.
    let age: Option<f64> = snap
        .conn
        .query_row(
            "SELECT (julianday('now') - julianday(substr(?1, 1, 19))) * 86400.0",
            [&snap.info.pulled_at],
            |r| r.get(0),
        )
        .ok();
    println!(
        "Pulled at  {}{}",
        snap.info.pulled_at,
        age.map(|s| format!(" ({} ago)", human_age(s)))
            .unwrap_or_default()
    );
    println!("Checksum   {}", short(&snap.info.snapshot_checksum));
    println!("Rehearsals {rehearsals}");
    let rows = snap
        .tables
        .iter()
        .map(|t| {
            vec![
                t.meta.name.clone(),
                t.meta.role.as_str().to_string(),
                t.rows.to_string(),
                t.meta.columns.len().to_string(),
                short(&t.checksum),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["table", "role", "rows", "columns", "checksum"], rows)
    );
    if receipts.is_empty() {
        println!("Receipts   none (nothing was pushed from this snapshot)");
    } else {
        println!(
            "Receipts   {} (Postgres is the authority: `sandbox receipts`)",
            receipts.len()
        );
        crate::cmd::receipts::print_lines(&receipts, false);
    }
    Ok(0)
}

fn human_age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
