use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::Result;
use indicatif::ProgressBar;
use sandbox::db::postgres::parse_target;
use sandbox::db::sqlite::TableSummary;
use sandbox::error::environment;
use sandbox::ops::pull::{pull, PullOptions, PullProgress};

use crate::cli::PullArgs;
use crate::output::{self, millis, short};

struct Bars {
    enabled: bool,
    bars: RefCell<HashMap<String, ProgressBar>>,
}

impl PullProgress for Bars {
    fn table_started(&self, table: &str, estimated_rows: u64) {
        let bar = output::new_bar(self.enabled, estimated_rows, table);
        self.bars.borrow_mut().insert(table.to_string(), bar);
    }
    fn rows_copied(&self, table: &str, rows: u64) {
        if let Some(bar) = self.bars.borrow().get(table) {
            if rows > bar.length().unwrap_or(0) {
                bar.set_length(rows);
            }
            bar.set_position(rows);
        }
    }
    fn table_finished(&self, summary: &TableSummary) {
        if let Some(bar) = self.bars.borrow_mut().remove(&summary.name) {
            bar.finish_and_clear();
        }
    }
}

pub fn run(args: PullArgs, json: bool) -> Result<i32> {
    let url = args.db.resolve().ok_or_else(|| {
        environment(
            "no database URL: pass --database-url, or set SANDBOX_DATABASE_URL or DATABASE_URL",
        )
    })?;
    let target = parse_target(&url)?;
    let plan = crate::cmd::load_plan(&args.plan)?;
    let opts = PullOptions {
        target,
        out: args.out,
        force: args.force,
        statement_timeout_ms: args.statement_timeout.statement_timeout,
        tables: plan.tables.clone(),
        creates: plan.schema.tables.iter().map(|t| t.name.clone()).collect(),
        claimed: sandbox::plan::names::claimed_names(&plan),
        target_types: plan.schema.type_names(),
        digests: plan.read_set().union(&plan.write_set()).cloned().collect(),
    };
    let bars = Bars {
        enabled: output::progress_enabled(json),
        bars: RefCell::new(HashMap::new()),
    };
    let report = crate::runtime()?.block_on(pull(&opts, &bars))?;
    if json {
        output::print_json(&report)?;
        return Ok(0);
    }
    let rows = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.role.as_str().to_string(),
                t.rows.to_string(),
                short(&t.checksum),
                millis(t.millis),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["table", "role", "rows", "checksum", "time"], rows)
    );
    println!(
        "Pulled {} tables ({} rows) from {} in {} into {}",
        report.tables.len(),
        report.tables.iter().map(|t| t.rows).sum::<u64>(),
        report.info.source_url,
        millis(report.millis),
        report.path.display()
    );
    // The plan options go with it: a snapshot pulled for another plan
    // cannot be rehearsed under the built-in one.
    println!("Next: {}", sandbox::advice::rehearse(&report.path, &plan));
    Ok(0)
}
