pub mod demo;
pub mod diff;
pub mod fixtures;
pub mod latency_proxy;
pub mod plan;
pub mod pull;
pub mod push;
pub mod receipts;
pub mod rehearse;
pub mod rollback;
pub mod status;

/// The plan in force from `--plan`/`--seeds`, remembering those options so
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
    Ok(plan)
}
