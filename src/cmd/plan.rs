use anyhow::Result;
use sandbox::plan::Plan;

use crate::cli::PlanArg;
use crate::output::{self, short};

pub fn run(args: PlanArg, json: bool) -> Result<i32> {
    let plan = Plan::load(args.plan.as_deref(), args.seeds.as_deref())?;
    let library = &plan.library;
    if json {
        output::print_json(&serde_json::json!({
            "hash": plan.hash, "origin": plan.origin, "plan": plan.file, "schema": plan.schema,
        }))?;
        return Ok(0);
    }
    println!("Plan     {} ({})", plan.file.name, plan.origin);
    println!("Hash     {}", short(&plan.hash));
    println!(
        "Seeds    {} strategic priorities, {} library JTBDs, {} library workflows",
        library.priorities.len(),
        library.allocation.len(),
        library.workflows.len()
    );
    println!(
        "Policies jtbd_sp_link = {:?}, existing_library_workflow = {:?}",
        plan.file.policies.jtbd_sp_link, plan.file.policies.existing_library_workflow
    );
    println!(
        "Pulls    protected {}; sources {}{}",
        plan.tables.protected.join(", "),
        plan.tables.sources.join(", "),
        plan.tables
            .source_prefix
            .as_deref()
            .map(|p| format!(" + every {p}* table"))
            .unwrap_or_default()
    );
    let mut rows = Vec::new();
    for p in &plan.file.phases {
        let ddl: Vec<String> = plan
            .schema
            .tables
            .iter()
            .filter(|t| t.phase == p.id)
            .map(|t| format!("CREATE TABLE {}", t.name))
            .chain(
                plan.schema
                    .added_columns
                    .iter()
                    .filter(|a| a.phase == p.id)
                    .map(|a| format!("ADD COLUMN {}.{}", a.table, a.column.name)),
            )
            .collect();
        for e in &p.expectations {
            rows.push(vec![
                p.id.clone(),
                p.name.clone(),
                ddl.join("; "),
                e.name.clone(),
                render(e),
            ]);
        }
    }
    for e in &plan.file.verification {
        rows.push(vec![
            "final".into(),
            "verification".into(),
            String::new(),
            e.name.clone(),
            render(e),
        ]);
    }
    for g in &plan.file.guards {
        rows.push(vec![
            "final".into(),
            "guard".into(),
            String::new(),
            g.name.clone(),
            "0 rows".into(),
        ]);
    }
    println!(
        "{}",
        output::table(&["phase", "name", "ddl", "check", "expected"], rows)
    );
    Ok(0)
}

fn render(e: &sandbox::plan::Expectation) -> String {
    sandbox::plan::checks::render_rows(&e.expected_rows())
}
