//! The built-in plan's staged tables, row by row, against a reference
//! recorded from the Rust phases before they became SQL files
//! (tests/data/staged_reference.json). A phase rewrite must leave every
//! staged row byte-identical, on the plan fixtures and on the conflicts
//! fixtures under each policy.
//!
//! Re-record (only when a change of result is intended):
//! `SANDBOX_RECORD_REFERENCE=1 cargo test --test plan_regression`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use sandbox::fixtures::Variant;
use sandbox::ops::rehearse::{rehearse, RehearseOptions};
use sandbox::plan::Plan;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REFERENCE: &str = "tests/data/staged_reference.json";

/// (name, fixtures, jtbd_sp_link, existing_library_workflow)
const CASES: &[(&str, Variant, &str, &str)] = &[
    ("plan-default", Variant::Plan, "require_agreement", "fail"),
    (
        "conflicts-default",
        Variant::Conflicts,
        "require_agreement",
        "fail",
    ),
    (
        "conflicts-function-skip",
        Variant::Conflicts,
        "function",
        "skip",
    ),
    (
        "conflicts-library-skip",
        Variant::Conflicts,
        "library",
        "skip",
    ),
];

fn plan_with(link: &str, existing: &str) -> Plan {
    let mut plan = Plan::load_default().unwrap();
    plan.set_policy("jtbd_sp_link", link).unwrap();
    plan.set_policy("existing_library_workflow", existing)
        .unwrap();
    plan
}

/// One SQLite value, typed, so 1 and '1' differ.
fn value_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "N".into(),
        ValueRef::Integer(i) => format!("I{i}"),
        ValueRef::Real(r) => format!("R{r:?}"),
        ValueRef::Text(t) => format!("T{}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("B{}", hex::encode(b)),
    }
}

/// Every row of a staged table: primary key text → digest of its columns
/// (by name, so a column order change alone is not a difference).
fn table_rows(conn: &Connection, table: &str) -> BTreeMap<String, String> {
    let mut cols: Vec<(String, i64)> = conn
        .prepare(&format!(
            "SELECT name, pk FROM pragma_table_info('{table}')"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!cols.is_empty(), "no table {table}");
    let mut key: Vec<(i64, String)> = cols
        .iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(n, pk)| (*pk, n.clone()))
        .collect();
    key.sort();
    cols.sort();
    let list = cols
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn
        .prepare(&format!("SELECT {list} FROM \"{table}\""))
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next().unwrap() {
        let mut h = Sha256::new();
        let mut named = BTreeMap::new();
        for (i, (n, _)) in cols.iter().enumerate() {
            let v = value_text(r.get_ref(i).unwrap());
            h.update(format!("{n}={v}\u{1f}").as_bytes());
            named.insert(n.clone(), v);
        }
        let k = key
            .iter()
            .map(|(_, n)| named[n].clone())
            .collect::<Vec<_>>()
            .join("/");
        let digest = hex::encode(h.finalize());
        assert!(
            out.insert(k.clone(), digest[..16].to_string()).is_none(),
            "{table}: key {k} twice"
        );
    }
    out
}

fn staged_state(dir: &Path, name: &str, variant: Variant, link: &str, existing: &str) -> Value {
    let path = dir.join(format!("{name}.sqlite"));
    let plan = plan_with(link, existing);
    common::fixture_snapshot(&path, variant, &plan);
    let report = rehearse(&RehearseOptions {
        snapshot: &path,
        plan: &plan,
    })
    .unwrap();
    let conn = Connection::open(&path).unwrap();
    let mut tables = serde_json::Map::new();
    let mut names: Vec<String> = report.staged.iter().map(|t| t.name.clone()).collect();
    names.sort();
    for t in names {
        let rows = table_rows(&conn, &format!("staged_{t}"));
        tables.insert(t, json!(rows));
    }
    let mut failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{} | {} | {}", c.phase, c.name, c.row_count))
        .collect();
    failed.sort();
    json!({"passed": report.passed, "failed_checks": failed, "tables": tables})
}

#[test]
fn staged_tables_match_the_recorded_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mut now = serde_json::Map::new();
    for (name, variant, link, existing) in CASES {
        now.insert(
            name.to_string(),
            staged_state(dir.path(), name, *variant, link, existing),
        );
    }
    let path = common::repo_path(REFERENCE);
    if std::env::var_os("SANDBOX_RECORD_REFERENCE").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        return;
    }
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut problems = Vec::new();
    for (name, _, _, _) in CASES {
        let (want, got) = (&reference[name], &now[*name]);
        for field in ["passed", "failed_checks"] {
            if want[field] != got[field] {
                problems.push(format!(
                    "{name}: {field} was {} now {}",
                    want[field], got[field]
                ));
            }
        }
        let (wt, gt) = (
            want["tables"].as_object().unwrap(),
            got["tables"].as_object().unwrap(),
        );
        let names = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        if names(wt) != names(gt) {
            problems.push(format!(
                "{name}: staged tables were {:?} now {:?}",
                names(wt),
                names(gt)
            ));
        }
        for (table, rows) in wt {
            let (rows, now_rows) = (
                rows.as_object().unwrap(),
                gt.get(table).and_then(Value::as_object),
            );
            let Some(now_rows) = now_rows else { continue };
            for (k, h) in rows {
                match now_rows.get(k) {
                    None => problems.push(format!("{name}: {table} row {k} missing")),
                    Some(g) if g != h => problems.push(format!("{name}: {table} row {k} differs")),
                    Some(_) => {}
                }
            }
            for k in now_rows.keys().filter(|k| !rows.contains_key(*k)) {
                problems.push(format!("{name}: {table} row {k} is new"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences from {REFERENCE}:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
