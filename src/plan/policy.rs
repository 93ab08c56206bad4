//! `--policy NAME=VALUE`: a policy chosen on the command line instead of by
//! editing the plan. The plan checks the value against the values it
//! declares, and its hash changes exactly as if plan.json said so: a
//! rehearsal authorises a push only under the same choices.

use super::Plan;
use crate::error::environment;

/// One `NAME=VALUE` from the command line.
pub fn parse(arg: &str) -> anyhow::Result<(String, String)> {
    match arg.split_once('=') {
        Some((n, v)) if !n.trim().is_empty() && !v.trim().is_empty() => {
            Ok((n.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(environment(format!(
            "--policy {arg:?} is not NAME=VALUE (for example --policy existing_library_workflow=skip)"
        ))),
    }
}

/// Applies the choices in order (a later choice of the same policy wins).
pub fn apply(plan: &mut Plan, choices: &[(String, String)]) -> anyhow::Result<()> {
    for (name, value) in choices {
        plan.set_policy(name, value)
            .map_err(|e| environment(format!("--policy {name}={value}: {e:#}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_changes_the_policy_and_the_hash_and_the_plans_value_changes_neither() {
        let base = Plan::load_default().unwrap();
        let mut same = base.clone();
        apply(
            &mut same,
            &[("existing_library_workflow".into(), "fail".into())],
        )
        .unwrap();
        assert_eq!(same.hash, base.hash);
        let mut skip = base.clone();
        apply(
            &mut skip,
            &[("existing_library_workflow".into(), "skip".into())],
        )
        .unwrap();
        assert_ne!(skip.hash, base.hash);
        assert_eq!(
            skip.file.policies["existing_library_workflow"].value,
            "skip"
        );
    }

    #[test]
    fn unknown_names_and_values_are_refused_with_what_exists() {
        let mut p = Plan::load_default().unwrap();
        let e = format!(
            "{:#}",
            apply(&mut p, &[("nope".into(), "x".into())]).unwrap_err()
        );
        assert!(
            e.contains("existing_library_workflow") && e.contains("jtbd_sp_link"),
            "{e}"
        );
        let e = apply(&mut p, &[("jtbd_sp_link".into(), "whatever".into())]).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("require_agreement") && e.contains("library") && e.contains("function"),
            "{e}"
        );
        assert!(parse("novalue").is_err() && parse("a=").is_err());
        assert_eq!(parse("a = b").unwrap(), ("a".into(), "b".into()));
    }
}
