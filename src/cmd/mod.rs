pub mod demo;
pub mod diff;
pub mod fixtures;
pub mod interrupt;
pub mod latency_proxy;
pub mod plan;
pub mod pull;
pub mod push;
pub mod receipts;
pub mod rehearse;
pub mod report;
pub mod rollback;
pub mod status;

/// The plan in force from `--plan`/`--seeds`/`--policy`, remembering those options so
/// advice can repeat them.
pub fn load_plan(args: &crate::cli::PlanArg) -> anyhow::Result<sandbox::plan::Plan> {
    let mut plan = sandbox::plan::Plan::load(args.plan.as_deref(), args.seeds.as_deref())?;
    if let Some(p) = &args.plan {
        plan.args
            .extend(["--plan".to_string(), p.display().to_string()]);
    }
    if let Some(s) = &args.seeds {
        plan.args
            .extend(["--seeds".to_string(), s.display().to_string()]);
    }
    let choices = args
        .policies
        .iter()
        .map(|p| sandbox::plan::policy::parse(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    sandbox::plan::policy::apply(&mut plan, &choices)?;
    for (n, v) in &choices {
        plan.args
            .extend(["--policy".to_string(), format!("{n}={v}")]);
    }
    Ok(plan)
}
