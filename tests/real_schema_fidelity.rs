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

/// A key over a column whose collation is not deterministic (ICU,
/// case-insensitive), and a unique index on `lower(name)`: an existing
/// workflow holds, in another case, the name of a row the plan adds (with
/// the same `created_at`, the key's other column; the plan's own rows are
/// distinct by both). SQLite compares bytes (and its lower() knows only
/// ASCII), so the rehearsal cannot prove the key: it checks what it can
/// (byte-identical values) and says so, lists the key for the preflight,
/// which runs the real transaction and refuses by name; the whole database
/// is as it was.
#[test]
fn a_key_sqlite_cannot_compare_like_postgres_is_left_to_the_preflight() {
    let same_key_in_another_case = "UPDATE public.workflows \
         SET name = 'QUALITY CHECK WORKFLOW', created_at = '2025-11-03 23:02:34.182271+00' \
         WHERE id = '00392105-be51-5207-bd8c-6ced75730336';";
    for (tag, sql, key, kind, detail, sqlite_check) in [
        (
            "fid_ci_unique",
            "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', \
             deterministic = false);
             ALTER TABLE public.workflows ALTER COLUMN name TYPE text COLLATE public.ci;
             ALTER TABLE public.workflows ADD CONSTRAINT workflows_name_key \
               UNIQUE (name, created_at);",
            "workflows_name_key",
            "unique",
            "UNIQUE (name, created_at) (compared under non-deterministic collation ci: values \
             of different bytes may be equal, which SQLite cannot tell)",
            Some(
                "workflows: UNIQUE workflows_name_key (name, created_at), byte-identical values \
                 (collation ci: the rest on Postgres)",
            ),
        ),
        (
            "fid_lower_unique",
            "CREATE UNIQUE INDEX workflows_lower_name ON public.workflows (lower(name), created_at);",
            "workflows_lower_name",
            "unique_index",
            "CREATE UNIQUE INDEX workflows_lower_name ON public.workflows USING btree \
             (lower(name), created_at)",
            None,
        ),
    ] {
        let w = World::loaded(tag, "plan")
            .with_sql(&format!("{same_key_in_another_case}\n{sql}"))
            .pulled();
        if tag == "fid_ci_unique" {
            let snap = sandbox::db::sqlite::Snapshot::open(&w.snapshot).unwrap();
            let name = snap.table("workflows").unwrap().meta.column("name").unwrap();
            assert_eq!(
                name.collation,
                Some(sandbox::catalog::Collation {
                    name: "ci".into(),
                    deterministic: false
                }),
                "{name:?}"
            );
        }
        let (run, report) = w.rehearse_json(&[]);
        run.ok();
        assert!(failed_checks(&report).is_empty(), "{tag}");
        let items = preflight(&report);
        assert!(
            items.contains(&(format!("workflows.{key}"), kind.into(), detail.into())),
            "{tag}: {items:#?}"
        );
        // No check claims the key; at most the byte-identical part of it.
        let claims: Vec<&str> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .filter(|n| n.contains(key))
            .collect();
        assert_eq!(claims, sqlite_check.into_iter().collect::<Vec<_>>(), "{tag}");
        let before = w.state();
        for confirm in [&[][..], &["--confirm"][..]] {
            w.push(confirm)
                .code(1)
                .stderr_has(key)
                .stderr_has("row id=d398260a-6ee3-5c3f-8a36-acbbf0488c38");
            before.assert_same(&w.state(), tag);
        }
    }
}
