use anyhow::Result;

use crate::cli::{AdoptArgs, PlanAction, PlanArg, PlanCommand};
use crate::output::{self, short};

pub fn run(cmd: PlanCommand, json: bool) -> Result<i32> {
    if let Some(PlanAction::Adopt(a)) = cmd.action {
        return adopt(cmd.plan, a, json);
    }
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
    // Labelled lines wrap under their label, as tables fit the width.
    let say = |label: &str, text: String| {
        println!("{}", output::wrap(&format!("{label:<8} "), &text, 9));
    };
    say("Plan", format!("{} ({})", plan.file.name, plan.origin));
    say("Hash", short(&plan.hash).to_string());
    let mut seed_tables: Vec<String> = plan
        .seeds
        .iter()
        .map(|s| sandbox::plan::sql::seed_table_name(&s.path))
        .collect();
    seed_tables.dedup();
    say(
        "Seeds",
        format!(
            "{} files, as tables {}",
            plan.seeds.len(),
            seed_tables.join(", ")
        ),
    );
    say("Policies", policies_line(&plan.file.policies)?);
    say(
        "Pulls",
        format!(
            "protected {}; sources {}{}",
            plan.tables.protected.join(", "),
            plan.tables.sources.join(", "),
            plan.tables
                .source_prefix
                .as_deref()
                .map(|p| format!(" + every {p}* table"))
                .unwrap_or_default()
        ),
    );
    for p in &plan.file.phases {
        let list = |tables: &[String]| {
            if tables.is_empty() {
                "nothing".to_string()
            } else {
                tables.join(", ")
            }
        };
        say(
            &format!("Phase {:<2}", p.id),
            format!(
                "{} — reads {}; writes {}",
                p.sql,
                list(&p.reads),
                list(&p.writes)
            ),
        );
    }
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

/// `sandbox plan adopt`: the plan options may come before or after `adopt`.
fn adopt(outer: PlanArg, args: AdoptArgs, json: bool) -> Result<i32> {
    let given = PlanArg {
        plan: args.plan.plan.or(outer.plan),
        seeds: args.plan.seeds.or(outer.seeds),
        policies: outer
            .policies
            .into_iter()
            .chain(args.plan.policies)
            .collect(),
    };
    let plan = crate::cmd::load_plan(&given)?;
    let snap = sandbox::db::sqlite::Snapshot::open(&args.snapshot.snapshot)?;
    let (rehearsal, adoption) = sandbox::ops::adopt::from_snapshot(&snap, &plan)?;
    // A copy of the whole plan folder (phases, schema, seeds) with the new
    // expectations and the chosen policies in plan.json.
    let mut adopted = plan.clone();
    adopted.file = adoption.file.clone();
    adopted.write_copy(&args.out)?;
    // Load what was written, exactly as `--plan` will: its hash is the one
    // a rehearsal and a push will carry.
    let written = sandbox::plan::Plan::load(Some(&args.out), given.seeds.as_deref())?;
    let mut next = vec![
        "sandbox".to_string(),
        "rehearse".to_string(),
        "--snapshot".to_string(),
        args.snapshot.snapshot.display().to_string(),
        "--plan".to_string(),
        args.out.display().to_string(),
    ];
    if let Some(s) = &given.seeds {
        next.extend(["--seeds".to_string(), s.display().to_string()]);
    }
    let next = next
        .iter()
        .map(|w| sandbox::advice::shell_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    if json {
        output::print_json(&serde_json::json!({
            "out": args.out, "from_rehearsal": rehearsal, "plan_hash_before": plan.hash,
            "plan_hash": written.hash, "policies": adoption.file.policies,
            "adopted": adoption.adopted,
            "by_hand": adoption.by_hand.iter().map(|(c, why)| serde_json::json!({"check": c, "why": why})).collect::<Vec<_>>(),
            "still_failing": adoption.still_failing, "next": next,
        }))?;
        return Ok(0);
    }
    let mut details = Vec::new();
    let rows = adoption
        .adopted
        .iter()
        .map(|a| {
            let (old, new, long) = output::summarise(&a.old, &a.new, details.len() + 1);
            if long {
                details.push(output::detail(
                    details.len() + 1,
                    &format!("{} — {}", a.phase, a.name),
                    &a.old,
                    &a.new,
                ));
            }
            vec![a.phase.clone(), a.name.clone(), old, new]
        })
        .collect();
    println!(
        "From rehearsal #{rehearsal} of plan {} ({}), policies {}:",
        short(&plan.hash),
        plan.origin,
        policies_line(&adoption.file.policies)?
    );
    println!(
        "{}",
        output::table(&["phase", "expectation", "plan said", "now expects"], rows)
    );
    for d in details {
        println!("\n{d}");
    }
    for (c, why) in &adoption.by_hand {
        println!(
            "Not adopted, edit by hand: {} {} ({why}); found {}",
            c.phase, c.name, c.actual
        );
    }
    if !adoption.still_failing.is_empty() {
        println!(
            "\nStill failing — not numbers, so not adopted (choose a policy with --policy, or fix the data):"
        );
        for c in &adoption.still_failing {
            println!("  {} {}: {}", c.phase, c.name, c.actual);
        }
    }
    println!(
        "\nWrote {} ({} expectation(s) adopted): plan hash {} (was {}). Review its plan.json, then: {next}",
        args.out.display(),
        adoption.adopted.len(),
        short(&written.hash),
        short(&plan.hash)
    );
    Ok(0)
}
