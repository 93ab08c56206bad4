use anyhow::Result;

use crate::cli::{PlanAction, PlanCommand};
use crate::output::{self, short};

pub fn run(cmd: PlanCommand, json: bool) -> Result<i32> {
    let plan = crate::cmd::load_plan(&cmd.plan)?;
    if let Some(PlanAction::Init { dir }) = cmd.action {
        let files = plan.write_copy(&dir)?;
        if json {
            output::print_json(&serde_json::json!({
                "dir": dir.display().to_string(), "hash": plan.hash, "files": files,
            }))?;
        } else {
            println!(
                "Wrote {} files of {} to {} (plan {}).\nEdit them, then: sandbox rehearse --plan {}",
                files.len(),
                plan.origin,
                dir.display(),
                short(&plan.hash),
                dir.display()
            );
        }
        return Ok(0);
    }
    if json {
        output::print_json(&serde_json::json!({
            "hash": plan.hash, "origin": plan.origin, "plan": plan.file, "schema": plan.schema,
        }))?;
        return Ok(0);
    }
    println!("Plan     {} ({})", plan.file.name, plan.origin);
    println!("Hash     {}", short(&plan.hash));
    let mut seed_tables: Vec<String> = plan
        .seeds
        .iter()
        .map(|s| sandbox::plan::sql::seed_table_name(&s.path))
        .collect();
    seed_tables.dedup();
    println!(
        "Seeds    {} files, as tables {}",
        plan.seeds.len(),
        seed_tables.join(", ")
    );
    println!("Policies {}", policies_line(&plan.file.policies)?);
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
    let mut details = Vec::new();
    let mut expected = |name: &str, e: &sandbox::plan::Expectation| {
        let full = render(e);
        let (cell, _, long) = output::summarise(&full, "", details.len() + 1);
        if long {
            details.push(output::detail(details.len() + 1, name, &full, ""));
        }
        cell
    };
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
                expected(&format!("{} — {}", p.id, e.name), e),
            ]);
        }
    }
    for e in &plan.file.verification {
        rows.push(vec![
            "final".into(),
            "verification".into(),
            String::new(),
            e.name.clone(),
            expected(&format!("final — {}", e.name), e),
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
    for d in details {
        println!("\n{d}");
    }
    Ok(0)
}

/// Policies as the plan file spells them (`jtbd_sp_link = require_agreement`).
/// `name = value` for every policy, as plan.json spells them.
pub fn policies_line(
    policies: &std::collections::BTreeMap<String, sandbox::plan::Policy>,
) -> Result<String> {
    Ok(policies
        .iter()
        .map(|(k, p)| format!("{k} = {} (of {})", p.value, p.values.join("|")))
        .collect::<Vec<_>>()
        .join(", "))
}

fn render(e: &sandbox::plan::Expectation) -> String {
    sandbox::plan::checks::render_rows(&e.expected_rows())
}
