//! Adopting what a rehearsal found as the plan's expectations: a person
//! looked at the numbers, agrees with them, and wants a plan that says so.
//! The result is a new plan (reviewed, then passed with `--plan`), whose
//! hash proves which numbers were accepted.
//!
//! Only expectations and verification queries are numbers to adopt.
//! Conflicts and guards say the data contradicts the plan: a policy or a fix
//! of the data answers those, never a new number.

use serde_json::Value;

use super::checks::{render_rows, Check, CheckKind};
use super::{Expectation, PlanFile};

/// One expectation whose number changes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Adopted {
    pub phase: String,
    pub name: String,
    /// What the plan said, as the report renders it.
    pub old: String,
    /// What the rehearsal found, now the plan's expectation.
    pub new: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Adoption {
    /// The plan with the adopted expectations (and its policies as chosen).
    pub file: PlanFile,
    pub adopted: Vec<Adopted>,
    /// Failed expectations whose result could not be read back unambiguously
    /// (with why): to be edited by hand.
    pub by_hand: Vec<(Check, String)>,
    /// Failed conflicts and guards: not numbers; they still fail.
    pub still_failing: Vec<Check>,
}

/// Builds the plan that expects what the rehearsal's `checks` found.
pub fn adopt(file: &PlanFile, checks: &[Check]) -> Adoption {
    let mut out = Adoption {
        file: file.clone(),
        adopted: Vec::new(),
        by_hand: Vec::new(),
        still_failing: Vec::new(),
    };
    for c in checks.iter().filter(|c| !c.ok) {
        let target: Option<&mut Expectation> = match c.kind {
            CheckKind::Expectation => out
                .file
                .phases
                .iter_mut()
                .filter(|p| p.id == c.phase)
                .flat_map(|p| p.expectations.iter_mut())
                .find(|e| e.name == c.name),
            CheckKind::Verification => out.file.verification.iter_mut().find(|e| e.name == c.name),
            _ => {
                out.still_failing.push(c.clone());
                continue;
            }
        };
        let Some(exp) = target else {
            out.by_hand
                .push((c.clone(), "the plan has no expectation of that name".into()));
            continue;
        };
        match expectation_from(exp, &c.actual) {
            Ok(()) => out.adopted.push(Adopted {
                phase: c.phase.clone(),
                name: c.name.clone(),
                old: c.expected.clone(),
                new: c.actual.clone(),
            }),
            Err(why) => out.by_hand.push((c.clone(), why)),
        }
    }
    out
}

/// Sets the expectation to the rendered result `actual`, keeping its form
/// (`expect` or `expect_rows`, numbers stay numbers). Refuses when the text
/// cannot be split back into the rows it was rendered from.
fn expectation_from(exp: &mut Expectation, actual: &str) -> Result<(), String> {
    if let Some(old) = &exp.expect {
        exp.expect = Some(typed_like(old, actual));
        return Ok(());
    }
    let old_rows = exp.expect_rows.clone().unwrap_or_default();
    let Some(first) = old_rows.first() else {
        return Err("the plan expects no rows, so the row shape is unknown".into());
    };
    let width = first.len();
    let rows = split_rows(actual, width)
        .ok_or_else(|| format!("'{actual}' does not split into rows of {width} values"))?;
    if render_rows(&rows) != actual {
        return Err(format!("'{actual}' is ambiguous as rows of {width} values"));
    }
    exp.expect_rows = Some(
        rows.iter()
            .map(|r| r.iter().zip(first).map(|(v, o)| typed_like(o, v)).collect())
            .collect(),
    );
    Ok(())
}

/// A number where the plan had a number (and the text is one), else text.
fn typed_like(old: &Value, text: &str) -> Value {
    if old.is_number() {
        if let Ok(n) = text.parse::<serde_json::Number>() {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// The inverse of [`render_rows`] for rows of `width` values.
fn split_rows(text: &str, width: usize) -> Option<Vec<Vec<String>>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    if width == 1 {
        return Some(text.split(", ").map(|v| vec![v.to_string()]).collect());
    }
    text.split(", ")
        .map(|piece| {
            let (init, last) = piece.rsplit_once('=')?;
            let mut row: Vec<String> = if width == 2 {
                vec![init.to_string()]
            } else {
                let parts: Vec<String> = init.split('/').map(str::to_string).collect();
                if parts.len() != width - 1 {
                    return None;
                }
                parts
            };
            row.push(last.to_string());
            Some(row)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    fn failed(phase: &str, name: &str, kind: CheckKind, expected: &str, actual: &str) -> Check {
        Check::equal(phase, name, kind, expected.into(), actual.into())
    }

    #[test]
    fn failed_numbers_are_adopted_in_their_own_form_and_conflicts_are_not() {
        let plan = Plan::load_default().unwrap();
        let checks = vec![
            failed(
                "3C",
                "workflows after 3C",
                CheckKind::Expectation,
                "368",
                "271",
            ),
            failed(
                "final",
                "workflows by source",
                CheckKind::Verification,
                "MA Operational Library=111, dh_workflow migrated=116, original=141",
                "MA Operational Library=14, dh_workflow migrated=116, original=141",
            ),
            Check::no_rows(
                "3C",
                "library workflows already present",
                CheckKind::Conflict,
                vec!["x".into()],
            ),
        ];
        let a = adopt(&plan.file, &checks);
        assert_eq!(a.adopted.len(), 2, "{a:?}");
        assert_eq!(a.still_failing.len(), 1);
        let p3c = a.file.phases.iter().find(|p| p.id == "3C").unwrap();
        let e = p3c
            .expectations
            .iter()
            .find(|e| e.name == "workflows after 3C")
            .unwrap();
        assert_eq!(e.expect, Some(serde_json::json!(271)));
        let v = a
            .file
            .verification
            .iter()
            .find(|e| e.name == "workflows by source")
            .unwrap();
        assert_eq!(
            render_rows(&v.expected_rows()),
            "MA Operational Library=14, dh_workflow migrated=116, original=141"
        );
        assert_eq!(v.expect_rows.as_ref().unwrap()[0][1], serde_json::json!(14));
    }

    #[test]
    fn rows_that_do_not_split_back_are_left_for_a_person() {
        let mut e = Expectation {
            name: "x".into(),
            sql: String::new(),
            expect: None,
            expect_rows: Some(vec![vec![
                serde_json::json!("a"),
                serde_json::json!("b"),
                serde_json::json!(1),
            ]]),
        };
        assert!(expectation_from(&mut e, "a/b/c=1").is_err());
        assert!(expectation_from(&mut e, "a/b=2, c/d=3").is_ok());
        assert_eq!(
            e.expected_rows(),
            vec![vec!["a", "b", "2"], vec!["c", "d", "3"]]
        );
    }
}
