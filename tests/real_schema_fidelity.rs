//! Fidelity of a green rehearsal to what Postgres stores, on rules that sit
//! outside the table's own columns: a domain's default, NOT NULL and
//! CHECKs; the text Postgres prints for a value the plan wrote in another
//! form; uniqueness under a collation or an expression SQLite does not
//! share. A green rehearsal must mean the push writes exactly what was
//! rehearsed.

mod common;

use std::path::Path;

use common::{failed_checks, World};

/// `(table.name, kind, detail)` of each item the rehearsal leaves to the
/// preflight.
fn preflight(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["preflight"]
        .as_array()
        .unwrap_or_else(|| panic!("no preflight in {report:#}"))
        .iter()
        .map(|p| {
            (
                format!(
                    "{}.{}",
                    p["table"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                ),
                p["kind"].as_str().unwrap().to_string(),
                p["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Values of `column` in the staged new workflows (the ones the plan adds).
fn staged_new_values(snap: &Path, column: &str) -> Vec<Option<String>> {
    let conn = rusqlite::Connection::open(snap).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT CAST(\"{column}\" AS TEXT) FROM staged_workflows \
             WHERE id NOT IN (SELECT id FROM workflows) ORDER BY id"
        ))
        .unwrap();
    let v = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    v
}

/// A column whose type is a domain with a DEFAULT, and one over a domain
/// over it (NOT NULL and a CHECK of its own): Postgres gives a new row that
/// leaves them out the domain's default, so the rehearsal's staged rows
/// show it, the domains' NOT NULL and CHECKs are the column's, and the
/// CHECKs are listed for the preflight. The push writes what was
/// rehearsed; rollback leaves the whole database as it was.
#[test]
fn a_domain_default_fills_new_rows_in_the_rehearsal_as_on_postgres() {
    let w = World::loaded("fid_domain_default", "plan")
        .with_sql(
            "CREATE DOMAIN public.prio AS int DEFAULT 5 CHECK (VALUE > 0);
             CREATE DOMAIN public.urgency AS public.prio NOT NULL CHECK (VALUE < 100);
             CREATE DOMAIN public.seen_at AS timestamptz DEFAULT now();
             ALTER TABLE public.workflows ADD COLUMN priority public.prio,
               ADD COLUMN urgency public.urgency, ADD COLUMN seen public.seen_at;",
        )
        .pulled();
    let snap = sandbox::db::sqlite::Snapshot::open(&w.snapshot).unwrap();
    let wf = &snap.table("workflows").unwrap().meta;
    let urgency = wf.column("urgency").unwrap();
    let domain = urgency.domain.as_ref().unwrap();
    assert_eq!(
        (
            domain.base_type.as_str(),
            domain.not_null,
            urgency.default_value.as_deref()
        ),
        ("integer", true, Some("5")),
        "{urgency:?}"
    );
    assert_eq!(
        domain.checks,
        vec!["CHECK (((VALUE)::integer < 100))", "CHECK ((VALUE > 0))"]
    );

    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    assert!(failed_checks(&report).is_empty());
    for column in ["priority", "urgency"] {
        let got = staged_new_values(&w.snapshot, column);
        assert_eq!(got.len(), 227);
        assert!(
            got.iter().all(|v| v.as_deref() == Some("5")),
            "{column}: {:?}",
            &got[..3]
        );
    }
    let items = preflight(&report);
    for (name, detail) in [
        ("workflows.priority", "domain prio: CHECK ((VALUE > 0))"),
        (
            "workflows.urgency",
            "domain urgency: CHECK (((VALUE)::integer < 100))",
        ),
        ("workflows.urgency", "domain urgency: CHECK ((VALUE > 0))"),
    ] {
        assert!(
            items.contains(&(name.into(), "domain_check".into(), detail.into())),
            "{items:#?}"
        );
    }
    assert!(
        items.contains(&(
            "workflows.seen".into(),
            "filled_by_postgres".into(),
            "default now(), for 227 new rows".into()
        )),
        "{items:#?}"
    );

    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        w.count(
            "SELECT count(*) FROM public.workflows \
             WHERE priority = 5 AND urgency = 5 AND seen IS NOT NULL"
        ),
        w.count("SELECT count(*) FROM public.workflows"),
        "every row, pulled and new, holds the domains' defaults"
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    // Only the receipt (schema sandbox) remains of the push.
    before.assert_same(&w.state().without_schema("sandbox"), "rollback of the push");
}
