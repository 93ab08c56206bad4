//! Fidelity of a green rehearsal to what Postgres stores, on rules that sit
//! outside the table's own columns: a domain's default, NOT NULL and
//! CHECKs; the text Postgres prints for a value the plan wrote in another
//! form; uniqueness under a collation or an expression SQLite does not
//! share. A green rehearsal must mean the push writes exactly what was
//! rehearsed.

mod common;

use common::{failed_checks, preflight, staged_new_values, World};

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

/// A phase writes values in spellings Postgres reads but prints otherwise:
/// a timestamptz with an offset, arrays with spaces and needless quotes, a
/// boolean as text. The rehearsal rewrites each staged value to the text
/// Postgres stores and shows both in its report; the push then writes and
/// compares exactly that (it refused after applying when the rehearsal
/// kept the plan's spelling), and rollback leaves the whole database as it
/// was.
#[test]
fn values_a_plan_writes_in_another_spelling_are_staged_as_postgres_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let plan = common::plan_folder(dir.path(), |_| {});
    let phase = plan.join("phases/3B_dh_workflows.sql");
    let mut sql = std::fs::read_to_string(&phase).unwrap();
    sql.push_str(
        "\nUPDATE workflows SET created_at = '2024-01-01 10:00:00.250+02', \
         labels = '{\"a\", \"b c\" ,NULL}', scores = '{1, +2.50}', is_public = 'true' \
         WHERE id = 'd398260a-6ee3-5c3f-8a36-acbbf0488c38';\n",
    );
    std::fs::write(&phase, sql).unwrap();
    let w = World::loaded("fid_canonical", "plan")
        .with_sql(
            "ALTER TABLE public.workflows ADD COLUMN labels text[], ADD COLUMN scores numeric[];",
        )
        .with_plan(&plan)
        .pulled();
    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    assert!(failed_checks(&report).is_empty());
    let c = common::check_named(&report, "values written as the text Postgres stores");
    assert_eq!(c["ok"], true);
    let rows = common::check_rows(c);
    let key = "of row d398260a-6ee3-5c3f-8a36-acbbf0488c38";
    for want in [
        format!(
            "workflows.created_at {key}: '2024-01-01 10:00:00.250+02' is stored by Postgres as \
             '2024-01-01 08:00:00.25+00'"
        ),
        format!(
            "workflows.labels {key}: '{{\"a\", \"b c\" ,NULL}}' is stored by Postgres as \
             '{{a,\"b c\",NULL}}'"
        ),
        format!("workflows.scores {key}: '{{1, +2.50}}' is stored by Postgres as '{{1,2.50}}'"),
        format!("workflows.is_public {key}: 'true' is stored by Postgres as true"),
    ] {
        assert!(rows.iter().any(|r| r.ends_with(&want)), "{want}\n{rows:#?}");
    }
    let conn = rusqlite::Connection::open(&w.snapshot).unwrap();
    let staged: (String, String, String, i64) = conn
        .query_row(
            "SELECT created_at, labels, scores, is_public FROM staged_workflows \
             WHERE id = 'd398260a-6ee3-5c3f-8a36-acbbf0488c38'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        staged,
        (
            "2024-01-01 08:00:00.25+00".to_string(),
            "{a,\"b c\",NULL}".to_string(),
            "{1,2.50}".to_string(),
            1
        )
    );

    let before = w.state();
    let receipt = w.push_confirmed();
    assert_eq!(
        w.scalar(
            "SELECT (created_at AT TIME ZONE 'UTC')::text || ' ' || labels::text || ' ' || \
             scores::text || ' ' || is_public::text FROM public.workflows \
             WHERE id = 'd398260a-6ee3-5c3f-8a36-acbbf0488c38'"
        ),
        "2024-01-01 08:00:00.25 {a,\"b c\",NULL} {1,2.50} true"
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    before.assert_same(&w.state().without_schema("sandbox"), "rollback of the push");
}
