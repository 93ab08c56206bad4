use anyhow::Result;
use sandbox::db::sqlite::Snapshot;
use sandbox::ops::receipts::{self, ReceiptLine};

use crate::cli::ReceiptsArgs;
use crate::output::{self, short};

/// Postgres when a URL is given (flag or environment), the snapshot when
/// the file exists; at least one of them.
pub fn run(args: ReceiptsArgs, json: bool) -> Result<i32> {
    let mut target = None;
    let remote = match args.db.resolve() {
        Some(url) => {
            let t = sandbox::db::postgres::parse_target(&url)?;
            let lines = crate::runtime()?.block_on(receipts::remote(&t))?;
            let shown = t.redacted().to_string();
            target = Some(t);
            Some((shown, lines))
        }
        None => None,
    };
    let mut source = None;
    let local = if args.snapshot.exists() {
        let snap = Snapshot::open(&args.snapshot)?;
        source = Some(snap.info.source_url.clone());
        Some(receipts::in_snapshot(&snap)?)
    } else {
        None
    };
    if remote.is_none() && local.is_none() {
        return Err(sandbox::error::environment(format!(
            "nothing to read receipts from: no database URL (pass --database-url, or set \
             SANDBOX_DATABASE_URL or DATABASE_URL) and no snapshot at {}",
            args.snapshot.display()
        )));
    }
    let database = remote.as_ref().map(|(d, _)| d.clone());
    let lines = receipts::merge(
        remote.map(|(_, l)| l).unwrap_or_default(),
        local.clone().unwrap_or_default(),
    );
    if json {
        output::print_json(&serde_json::json!({
            "database": database,
            "snapshot": local.is_some().then(|| args.snapshot.display().to_string()),
            "receipts": lines,
        }))?;
        return Ok(0);
    }
    print_lines(&lines, database.is_some());
    println!(
        "{} receipt(s) from {}{}{}.",
        lines.len(),
        database.as_deref().unwrap_or(""),
        if database.is_some() && local.is_some() {
            " and "
        } else {
            ""
        },
        if local.is_some() {
            args.snapshot.display().to_string()
        } else {
            String::new()
        }
    );
    // Receipts only the snapshot keeps, when Postgres was read, were
    // pushed elsewhere (most often: the file was pulled from another
    // database): say so, and advise undoing only what this database holds.
    let local_ids: Vec<String> = lines
        .iter()
        .filter(|l| l.remote_status.is_none())
        .map(|l| l.id.clone())
        .collect();
    let only_local = local_ids.len();
    // By id, at most six: the rest are in the table above.
    let named = sandbox::words::listed(&local_ids, 6);
    if let (Some(target), Some(source), true) = (&target, &source, only_local > 0) {
        let same_source = sandbox::db::postgres::parse_target(source)
            .is_ok_and(|s| s.endpoint() == target.endpoint() && s.dbname() == target.dbname());
        let file = args.snapshot.display();
        if same_source {
            println!(
                "{only_local} receipt(s) ({named}) are kept only in {file}, not in sandbox.receipts of {}: \
                 if they were pushed through another URL of this database (a pooler) or to \
                 another database, list them with `sandbox receipts --database-url URL \
                 --snapshot {file}`.",
                target.redacted()
            );
        } else {
            println!(
                "{only_local} receipt(s) ({named}) are kept only in {file}, which was pulled from {source}, \
                 not from {}: they were pushed there. To see or undo them, pass that database: \
                 `sandbox receipts --database-url URL --snapshot {file}`.",
                target.redacted()
            );
        }
    }
    if let Some(l) = lines
        .iter()
        .rev()
        .find(|l| l.status() == "applied" && (target.is_none() || l.remote_status.is_some()))
    {
        println!(
            "Undo the latest applied push with: {}",
            sandbox::advice::rollback_confirm(
                &l.id,
                &args.snapshot,
                &sandbox::advice::RunFlags::default(),
                &[]
            )
        );
    }
    Ok(0)
}

/// `remote_read`: Postgres was read, so where each receipt is kept is
/// known.
pub fn print_lines(lines: &[ReceiptLine], remote_read: bool) {
    let rows = lines
        .iter()
        .map(|l| {
            let mut row = vec![
                l.id.clone(),
                // To the minute: fits beside the id, and seconds do not tell
                // two pushes apart (the id does).
                l.at.chars().take(16).collect(),
                format!("{} {}", l.plan_name, short(&l.plan_hash)),
            ];
            row.push(match (l.inserted, l.updated, l.deleted) {
                (Some(i), Some(u), Some(d)) => format!("+{i} ~{u} -{d}"),
                // A copy an older sandbox recorded, and Postgres not read.
                _ => "?".into(),
            });
            row.push(match &l.rolled_back_at {
                Some(at) if l.status() == "rolled_back" => {
                    format!("rolled_back {}", at.chars().take(16).collect::<String>())
                }
                _ => l.status().to_string(),
            });
            // The undo record's format: a receipt an older or newer
            // sandbox wrote may be one this build's rollback refuses.
            row.push(match l.undo_format {
                Some(f) => f.to_string(),
                None => "?".into(),
            });
            if remote_read {
                row.push(match (&l.remote_status, &l.snapshot_status) {
                    (Some(_), Some(s)) if s != l.status() => format!("both (snapshot: {s})"),
                    (Some(_), Some(_)) => "postgres, snapshot".into(),
                    (Some(_), None) => "postgres".into(),
                    (None, _) => "snapshot only".into(),
                });
            }
            row
        })
        .collect();
    // "kept in" only when Postgres was read beside the snapshot.
    let columns = [
        "receipt",
        "when (UTC)",
        "plan",
        "rows",
        "status",
        "undo format",
        "kept in",
    ];
    let header: &[&str] = if remote_read {
        &columns
    } else {
        &columns[..columns.len() - 1]
    };
    // The id is what a person copies into `sandbox rollback`: never cut;
    // nor the time, already compact.
    let keep: &[usize] = &[0, 1, 3, 4, 5];
    println!("{}", output::table_keeping(header, rows, keep));
}
