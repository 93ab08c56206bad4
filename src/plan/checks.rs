//! Checks: what a rehearsal (and later a push, on Postgres) reports. The
//! comparison is engine-neutral: each engine returns rows of text and the
//! same code decides pass or fail.

use serde::Serialize;

use super::{Expectation, Guard};

/// How many offending rows a check keeps for the report.
pub const MAX_ROWS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The snapshot itself: pulled tables unchanged since the pull.
    Integrity,
    /// A phase's expected number from the plan.
    Expectation,
    /// The input data contradicts the plan (a JTBD under two SPs, ...).
    Conflict,
    /// One of the plan's final verification queries.
    Verification,
    /// A query listing rows that must not exist.
    Guard,
    /// A rule of the target's catalog (NOT NULL, UNIQUE, foreign key, enum,
    /// generated column) on the staged rows.
    Constraint,
}

impl CheckKind {
    /// The kind as stored; a kind this build does not know reads as a conflict
    /// (shown, never adopted as a number).
    pub fn from_stored(s: &str) -> CheckKind {
        [
            CheckKind::Integrity,
            CheckKind::Expectation,
            CheckKind::Conflict,
            CheckKind::Verification,
            CheckKind::Guard,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .unwrap_or(CheckKind::Conflict)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Integrity => "integrity",
            CheckKind::Expectation => "expectation",
            CheckKind::Conflict => "conflict",
            CheckKind::Verification => "verification",
            CheckKind::Guard => "guard",
            CheckKind::Constraint => "constraint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub phase: String,
    pub name: String,
    pub kind: CheckKind,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
    /// The rows behind a failure (at most [`MAX_ROWS`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<String>,
    /// How many offending rows there were in all.
    pub row_count: u64,
}

impl Check {
    /// A check that counts offending rows: it holds when there are none.
    pub fn no_rows(phase: &str, name: &str, kind: CheckKind, rows: Vec<String>) -> Check {
        let count = rows.len() as u64;
        Check {
            phase: phase.to_string(),
            name: name.to_string(),
            kind,
            expected: "0 rows".to_string(),
            actual: crate::words::rows(count),
            ok: count == 0,
            rows: rows.into_iter().take(MAX_ROWS).collect(),
            row_count: count,
        }
    }

    pub fn equal(
        phase: &str,
        name: &str,
        kind: CheckKind,
        expected: String,
        actual: String,
    ) -> Check {
        Check {
            phase: phase.to_string(),
            name: name.to_string(),
            kind,
            ok: expected == actual,
            expected,
            actual,
            rows: Vec::new(),
            row_count: 0,
        }
    }
}

/// Renders query result rows for the report (`SP01=17, SP02=19`).
pub fn render_rows(rows: &[Vec<String>]) -> String {
    if rows.len() == 1 && rows[0].len() == 1 {
        return rows[0][0].clone();
    }
    rows.iter()
        .map(|r| match r.split_last() {
            Some((last, init)) if !init.is_empty() => format!("{}={last}", init.join("/")),
            _ => r.join("/"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each failed check as `name: expected X, found Y`, or as its name and the
/// rows behind it joined by `row_sep`: what a refusal after applying says.
pub fn failed_summaries(checks: &[Check], row_sep: &str) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            if c.rows.is_empty() {
                format!("{}: expected {}, found {}", c.name, c.expected, c.actual)
            } else {
                format!("{}: {}", c.name, c.rows.join(row_sep))
            }
        })
        .collect()
}

/// Compares an expectation's rows with what an engine returned.
pub fn evaluate(phase: &str, kind: CheckKind, exp: &Expectation, actual: &[Vec<String>]) -> Check {
    let expected = exp.expected_rows();
    let mut check = Check::equal(
        phase,
        &exp.name,
        kind,
        render_rows(&expected),
        render_rows(actual),
    );
    let (expected, actual) = (comparable_rows(&expected), comparable_rows(actual));
    check.ok = expected == actual || same_rows_in_any_order(&expected, &actual);
    check
}

/// Rows as the engines are compared on them (see [`comparable`]).
fn comparable_rows(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| comparable(c)).collect())
        .collect()
}

/// A cell as the engines are compared on it: a decimal number without the
/// zeros after its last significant decimal. Postgres prints a numeric with
/// its scale (`SUM` of a numeric(10,4) is `27.5650`, `10.0000 = 10`), SQLite
/// computes in REALs (`27.565`): the same number, which a plan can write once
/// for both (`"expect": 27.565`). Anything else — text, a number with a
/// leading zero (`007` is text either engine prints as is) — compares as it
/// is.
fn comparable(cell: &str) -> String {
    let body = cell.strip_prefix('-').unwrap_or(cell);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let number = digits(int)
        && (int == "0" || !int.starts_with('0'))
        && (frac.is_empty() || digits(frac))
        && !(body.contains('.') && frac.is_empty());
    if !number {
        return cell.to_string();
    }
    let frac = frac.trim_end_matches('0');
    let text = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if text == "0" || body.len() == cell.len() {
        text
    } else {
        format!("-{text}")
    }
}

/// Rows are compared as a multiset: the same query orders rows differently
/// on the two engines — SQLite compares text bytewise and puts NULLs first,
/// Postgres follows the database's collation (`en_US.UTF-8` on many
/// Supabase projects: 'dh…' before 'MA…') and puts NULLs last — so an
/// `ORDER BY` that holds in the rehearsal would fail the preflight over an
/// order no plan can pin down. What the rows are is still compared exactly.
fn same_rows_in_any_order(expected: &[Vec<String>], actual: &[Vec<String>]) -> bool {
    if expected.len() != actual.len() {
        return false;
    }
    let mut e: Vec<&Vec<String>> = expected.iter().collect();
    let mut a: Vec<&Vec<String>> = actual.iter().collect();
    e.sort();
    a.sort();
    e == a
}

/// A guard holds when its query returns no row.
pub fn evaluate_guard(guard: &Guard, actual: &[Vec<String>]) -> Check {
    Check::no_rows(
        "final",
        &guard.name,
        CheckKind::Guard,
        actual.iter().map(|r| r.join(" | ")).collect(),
    )
}

/// How long a phase of the rehearsal took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTiming {
    pub id: String,
    pub name: String,
    pub millis: f64,
}

#[cfg(test)]
mod null_tests {
    use super::*;
    use crate::plan::Expectation;
    use serde_json::json;

    fn expecting(rows: serde_json::Value) -> Expectation {
        Expectation {
            name: "e".into(),
            sql: String::new(),
            expect: None,
            expect_rows: Some(serde_json::from_value(rows).unwrap()),
        }
    }

    /// A number is compared as a number: Postgres's numeric scale
    /// (`27.5650`) against SQLite's REAL (`27.565`); text is not.
    #[test]
    fn numbers_compare_by_value_and_text_as_text() {
        let kind = CheckKind::Expectation;
        let one = |v: &str| vec![vec![v.to_string()]];
        for (expect, actual) in [
            (json!(27.565), "27.5650"),
            (json!("27.5650"), "27.565"),
            (json!(10), "10.0000"),
            (json!(0), "-0.00"),
            (json!(-1.5), "-1.50"),
        ] {
            let e = expecting(json!([[expect]]));
            assert!(
                evaluate("1", kind, &e, &one(actual)).ok,
                "{expect} vs {actual}"
            );
        }
        for (expect, actual) in [
            (json!("007"), "7"),
            (json!(27.565), "27.566"),
            (json!("1."), "1"),
            (json!("v1.10"), "v1.1"),
            (json!(-1), "1"),
        ] {
            let e = expecting(json!([[expect]]));
            assert!(
                !evaluate("1", kind, &e, &one(actual)).ok,
                "{expect} vs {actual}"
            );
        }
    }

    /// The same rows in another order hold (collations and NULL order
    /// differ between the engines); other rows, or a row more, do not.
    #[test]
    fn rows_are_compared_in_any_order_but_exactly() {
        let kind = CheckKind::Expectation;
        let e = expecting(json!([["MA", 111], ["dh", 116], [null, 3]]));
        let rows = |r: &[[&str; 2]]| -> Vec<Vec<String>> {
            r.iter()
                .map(|x| x.iter().map(|v| v.to_string()).collect())
                .collect()
        };
        let null = crate::types::value_text(None);
        let reordered = vec![
            vec![null.clone(), "3".to_string()],
            vec!["dh".to_string(), "116".to_string()],
            vec!["MA".to_string(), "111".to_string()],
        ];
        assert!(evaluate("1", kind, &e, &reordered).ok);
        assert!(!evaluate("1", kind, &e, &rows(&[["MA", "111"], ["dh", "116"]])).ok);
        let mut other = reordered.clone();
        other[1][1] = "117".to_string();
        assert!(!evaluate("1", kind, &e, &other).ok);
        let mut twice = reordered.clone();
        twice[0] = twice[1].clone();
        assert!(!evaluate("1", kind, &e, &twice).ok);
    }

    /// SQL NULL and the text 'NULL' were both read as "NULL", so either
    /// passed for the other.
    #[test]
    fn a_null_result_never_passes_for_the_text_null() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let null = crate::plan::sql::query_text(&conn, "SELECT NULL").unwrap();
        let text = crate::plan::sql::query_text(&conn, "SELECT 'NULL'").unwrap();
        let kind = CheckKind::Expectation;
        assert!(evaluate("1", kind, &expecting(json!([[null]])), &null).ok);
        assert!(evaluate("1", kind, &expecting(json!([["NULL"]])), &text).ok);
        let c = evaluate("1", kind, &expecting(json!([[null]])), &text);
        assert!(!c.ok, "{c:?}");
        assert_eq!(c.actual, "'NULL'");
        assert!(!evaluate("1", kind, &expecting(json!([["NULL"]])), &null).ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_summaries_name_only_failed_checks_with_their_rows_or_numbers() {
        let mut counted = Check::equal(
            "final",
            "workflows",
            CheckKind::Verification,
            "12".into(),
            "11".into(),
        );
        counted.ok = false;
        let rows = Check::no_rows(
            "final",
            "no orphan",
            CheckKind::Guard,
            vec!["a".into(), "b".into()],
        );
        let held = Check::no_rows("final", "held", CheckKind::Guard, vec![]);
        assert_eq!(
            failed_summaries(&[counted, held, rows], " | "),
            vec![
                "workflows: expected 12, found 11".to_string(),
                "no orphan: a | b".to_string()
            ]
        );
    }
}
