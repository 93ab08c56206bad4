//! What the rehearsal passes, Postgres must see the same way: each phase's
//! row changes are applied in that phase (so every phase's expectations hold
//! on Postgres as they did in the rehearsal), and what Postgres would store
//! differently (no primary key to diff by, typmods, precision) fails the
//! rehearsal by name instead of the push.

mod common;

use std::path::{Path, PathBuf};

use common::{
    check_named, copy_dir, count, failed_checks, psql_file, repo_path, sandbox,
    whole_database_state, TestDb, World,
};
use serde_json::Value;

/// A copy of the example plan in `dir`, its plan.json changed by `edit`
/// and each `(file, sql)` written into its phases folder.
fn example_plan(dir: &Path, edit: impl FnOnce(&mut Value), files: &[(&str, &str)]) -> PathBuf {
    let plan = dir.join("plan");
    copy_dir(&repo_path("examples/tool-catalog"), &plan);
    let file = plan.join("plan.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    for (name, sql) in files {
        std::fs::write(plan.join("phases").join(name), sql).unwrap();
    }
    plan
}

/// A fourth phase writing `table` with `sql`, checked by `expectations`.
fn add_phase(v: &mut Value, table: &str, file: &str, expectations: Value) {
    v["phases"].as_array_mut().unwrap().push(serde_json::json!({
        "id": "4",
        "name": "a later write",
        "sql": format!("phases/{file}"),
        "reads": [],
        "writes": [table],
        "conflicts": [],
        "expectations": expectations
    }));
}

/// The fixtures, `sql` on top, pulled for a copy of the example plan
/// changed by `edit` and `files` (see `example_plan`).
fn example_world(
    tag: &str,
    sql: &str,
    edit: impl FnOnce(&mut Value),
    files: &[(&str, &str)],
) -> World {
    let w = World::loaded(tag, "plan").with_sql(sql);
    let plan = example_plan(w.dir.path(), edit, files);
    w.with_plan(&plan).pulled()
}

#[test]
fn each_phase_s_updates_are_applied_in_that_phase() {
    // Phase 2 deprecates 13 tools and checks there are 13; phase 4 puts them
    // back in production. Applied all at phase 4 (as before), phase 2's
    // expectation found 0 on Postgres.
    let l = example_world(
"exact_phase_updates", "",
            |v| {
                add_phase(
                    v,
                    "dh_tool",
                    "4_back_to_production.sql",
                    serde_json::json!([{"name": "none deprecated", "sql": "SELECT COUNT(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated'", "expect": 0}]),
                );
                v["verification"][0]["expect_rows"] = serde_json::json!([["development", 39], ["production", 77], ["testing", 34]]);
            },
            &[(
                "4_back_to_production.sql",
                "UPDATE dh_tool SET lifecycle_stage = 'production' WHERE lifecycle_stage = 'deprecated';",
            )],
);
    let copy = TestDb::from_template(&l.db.name, "exact_phase_updates_copy");
    let before = l.state();
    l.rehearse(&[]).ok().stdout_has("PASSED");
    let script = l.dir.path().join("push.sql");
    l.diff(&["--sql", script.to_str().unwrap()]).ok();
    l.push(&["--confirm"]).ok().stdout_has("Applied diff");
    let mut c = l.db.client();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM dh_tool WHERE metadata ? 'deprecated_at'"
        ),
        13,
        "phase 2's other change stays"
    );
    // The reviewable script applies the same phases the same way.
    psql_file(&copy.url, &script).ok();
    l.state().without_schema("sandbox").assert_same(
        &whole_database_state(&copy.url).without_schema("sandbox"),
        "from the push to the diff --sql script",
    );
    let receipt = l.scalar("SELECT id::text FROM sandbox.receipts");
    l.rollback_restores(
        &receipt,
        &before,
        "from before the push to after the rollback",
    );
}

#[test]
fn a_later_phase_writing_the_table_does_not_move_earlier_updates() {
    // The reviewer's repro: a no-op phase 4 on dh_tool.
    let l = example_world(
        "exact_noop_phase",
        "",
        |v| add_phase(v, "dh_tool", "4_noop.sql", serde_json::json!([])),
        &[("4_noop.sql", "UPDATE dh_tool SET tags = tags WHERE 0;")],
    );
    l.rehearse(&[]).ok().stdout_has("PASSED");
    l.push(&["--confirm"]).ok().stdout_has("Applied diff");
}

#[test]
fn a_written_table_without_a_primary_key_fails_the_rehearsal_by_name() {
    // Before: the rehearsal passed, then diff and push exited 2.
    let w = example_world(
        "exact_no_pk",
        "CREATE TABLE public.dh_nopk (code text, n int); \
         INSERT INTO public.dh_nopk VALUES ('a', 1), ('b', 2);",
        |v| {
            v["tables"]["sources"]
                .as_array_mut()
                .unwrap()
                .push("dh_nopk".into());
            add_phase(v, "dh_nopk", "4_nopk.sql", serde_json::json!([]));
        },
        &[("4_nopk.sql", "UPDATE dh_nopk SET n = n + 1;")],
    );
    let (r, v) = w.rehearse_json(&[]);
    r.code(1);
    let failed = failed_checks(&v);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["name"].as_str().unwrap().contains("primary key")
            && failed[0].to_string().contains("dh_nopk"),
        "{failed:?}"
    );
    // Nothing to push: refused (exit 1), not an environment error.
    w.diff(&[]).code(1);
}

#[test]
fn values_postgres_would_truncate_round_or_print_otherwise_fail_the_rehearsal_by_row_and_column() {
    // Before: each passed the rehearsal; the push then truncated code
    // silently (an explicit ::varchar(60) cast), refused rating with
    // 'numeric field overflow' naming no row, or found verified_at
    // different after applying.
    let l = example_world(
"exact_typmods", "",
            |v| add_phase(v, "dh_tool", "4_typmods.sql", serde_json::json!([])),
            &[(
                "4_typmods.sql",
                "UPDATE dh_tool SET code = code || '-0123456789012345678901234567890123456789012345678901234567890' WHERE id = (SELECT min(id) FROM dh_tool);\n\
                 UPDATE dh_tool SET rating = 12.5 WHERE id = (SELECT max(id) FROM dh_tool);\n\
                 UPDATE dh_tool SET verified_at = datetime('now') WHERE id = (SELECT min(id) FROM dh_tool);",
            )],
);
    let (r, v) = l.rehearse_json(&[]);
    r.code(1);
    let failed: Vec<String> = failed_checks(&v).iter().map(|c| c.to_string()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let min_id = l.scalar("SELECT id::text FROM dh_tool ORDER BY id::text COLLATE \"C\" LIMIT 1");
    let max_id =
        l.scalar("SELECT id::text FROM dh_tool ORDER BY id::text COLLATE \"C\" DESC LIMIT 1");
    for needle in [
        format!("dh_tool.code of row {min_id}"),
        format!("dh_tool.rating of row {max_id}"),
    ] {
        assert!(failed[0].contains(&needle), "{needle}: {failed:?}");
    }
    // A timestamptz without an offset is read by Postgres in the push's
    // time zone (UTC): the rehearsal stages the text Postgres prints for it
    // and shows the rewrite, instead of the push finding it different.
    let rewritten = check_named(&v, "values written as the text Postgres stores").to_string();
    assert!(
        rewritten.contains(&format!("dh_tool.verified_at of row {min_id}: '"))
            && rewritten.contains("+00'"),
        "{rewritten}"
    );
}

/// The example plan with `tool_categories` given a numeric, a bigint and a
/// jsonb column, and a fourth phase `phases/4_exact.sql` writing them with
/// `sql`, rehearsed on the fixture snapshot (no server needed): the exit
/// code, the report, and the snapshot to read the staged rows from.
fn rehearse_exact_columns(dir: &Path, sql: &str) -> (i32, Value, PathBuf) {
    rehearse_with_columns(
        dir,
        serde_json::json!([
            {"name": "ratio", "type": "numeric"},
            {"name": "big", "type": "bigint"},
            {"name": "extra", "type": "jsonb"}
        ]),
        sql,
    )
}

/// [`rehearse_exact_columns`] with `columns` (target.json column entries)
/// added to `tool_categories` instead.
fn rehearse_with_columns(dir: &Path, columns: Value, sql: &str) -> (i32, Value, PathBuf) {
    let plan = example_plan(
        dir,
        |v| add_phase(v, "tool_categories", "4_exact.sql", serde_json::json!([])),
        &[("4_exact.sql", sql)],
    );
    let target = plan.join("target.json");
    let mut t: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    t["tables"][0]["columns"].as_array_mut().unwrap().extend(
        columns.as_array().unwrap().iter().map(|c| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("unique");
            c
        }),
    );
    // A column entry with "unique": true is also a UNIQUE of its own.
    for c in columns.as_array().unwrap() {
        if c["unique"] == true {
            t["tables"][0]["unique"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!([c["name"]]));
        }
    }
    std::fs::write(&target, serde_json::to_string_pretty(&t).unwrap()).unwrap();
    let snap = dir.join("fixtures.sqlite");
    common::fixture_snapshot(
        &snap,
        sandbox::fixtures::Variant::Plan,
        &sandbox::plan::Plan::load(Some(&plan), None).unwrap(),
    );
    let r = sandbox(&[
        "rehearse",
        "--json",
        "--snapshot",
        snap.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.show()));
    (r.code, v, snap)
}

/// One staged value, with its SQLite storage class.
fn staged_value(snap: &Path, column: &str, name: &str) -> (String, String) {
    let conn = rusqlite::Connection::open(snap).unwrap();
    conn.query_row(
        &format!("SELECT typeof({column}), CAST({column} AS TEXT) FROM staged_tool_categories WHERE name = ?1"),
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

const FIRST: &str = "(SELECT min(name) FROM tool_categories)";
const LAST: &str = "(SELECT max(name) FROM tool_categories)";

#[test]
fn a_value_rounded_by_a_real_fails_by_file_table_column_row_and_value() {
    // Before: column affinity converted each REAL before the check saw it —
    // 1.0/3 into the numeric became the text '0.333333333333333', the
    // bigint the INTEGER 9007199254740992, and json_set wrote the REAL as
    // 9.00719925474099e+15 (pushed as 9007199254740990) — and the
    // rehearsal passed.
    let dir = tempfile::tempdir().unwrap();
    let (code, r, snap) = rehearse_exact_columns(
        dir.path(),
        &format!(
            "UPDATE tool_categories SET ratio = 1.0 / 3 WHERE name = {FIRST};\n\
             UPDATE tool_categories SET big = 9007199254740993 * 1.0 WHERE name = {FIRST};\n\
             UPDATE tool_categories SET extra = json_set('{{}}', '$.id', 9007199254740993 * 1.0) WHERE name = {FIRST};\n"
        ),
    );
    let rows = exactness_failures(code, &r);
    let conn = rusqlite::Connection::open(&snap).unwrap();
    let id: String = conn
        .query_row(
            "SELECT id FROM staged_tool_categories ORDER BY name LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // The numeric column has TEXT affinity while the phases run (so that it
    // compares as a number): the REAL reaches it as SQLite's 15-digit text,
    // and is named for having all 15.
    let expected = [
        format!("phases/4_exact.sql: tool_categories.big of row {id}: REAL 9007199254740992 is beyond 2^53"),
        format!("phases/4_exact.sql: tool_categories.extra of row {id}: the number 9.00719925474099e+15 is in exponent form"),
        format!("phases/4_exact.sql: tool_categories.ratio of row {id}: '0.333333333333333' has 15 significant digits"),
    ];
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for (row, want) in rows.iter().zip(&expected) {
        assert!(row.starts_with(want.as_str()), "{row}\nwant: {want}");
    }
}

#[test]
fn a_real_that_holds_its_value_exactly_is_settled_into_the_column_s_storage() {
    // Exact REALs, integers and integer text become what Postgres prints
    // for the column; the rehearsal passes.
    let dir = tempfile::tempdir().unwrap();
    let (code, r, snap) = rehearse_exact_columns(
        dir.path(),
        &format!(
            "UPDATE tool_categories SET ratio = 0.5 * 3, big = 6.0 * 2, \
             extra = json_set('{{}}', '$.share', 0.25, '$.n', 9007199254740993) WHERE name = {FIRST};\n\
             UPDATE tool_categories SET ratio = tools, big = '42', extra = 0.5 WHERE name = {LAST};\n"
        ),
    );
    assert_eq!(code, 0, "{r:#}");
    let conn = rusqlite::Connection::open(&snap).unwrap();
    let (first, last): (String, String) = conn
        .query_row(
            "SELECT min(name), max(name) FROM staged_tool_categories",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let tools: String = conn
        .query_row(
            "SELECT CAST(tools AS TEXT) FROM staged_tool_categories WHERE name = ?1",
            [&last],
            |r| r.get(0),
        )
        .unwrap();
    let t = |s: &str| ("text".to_string(), s.to_string());
    let i = |s: &str| ("integer".to_string(), s.to_string());
    assert_eq!(staged_value(&snap, "ratio", &first), t("1.5"));
    assert_eq!(staged_value(&snap, "big", &first), i("12"));
    assert_eq!(
        staged_value(&snap, "extra", &first),
        t(r#"{"n": 9007199254740993, "share": 0.25}"#)
    );
    assert_eq!(staged_value(&snap, "ratio", &last), t(&tools));
    assert_eq!(staged_value(&snap, "big", &last), i("42"));
    assert_eq!(staged_value(&snap, "extra", &last), t("0.5"));
}

#[test]
fn a_row_inserted_in_one_phase_and_updated_in_a_later_one_is_pushed_phase_by_phase() {
    // Phase 1 inserts ten categories 'unreviewed', phase 2 expects ten
    // 'unreviewed', phase 3 reviews nine and deletes one. Before, the push
    // inserted the nine rows as phase 3 left them, at phase 1: phase 1's
    // count (10) and phase 2's (10 'unreviewed') failed on Postgres after a
    // green rehearsal.
    let l = example_world(
        "exact_insert_then_update",
        "",
        |v| {
            let phases = v["phases"].as_array_mut().unwrap();
            phases[0]["sql"] = "phases/1_unreviewed.sql".into();
            phases[0]["conflicts"] = serde_json::json!([]);
            phases[0]["expectations"] = serde_json::json!([
                {"name": "categories", "sql": "SELECT COUNT(*) FROM tool_categories", "expect": 10},
                {"name": "unreviewed", "sql": "SELECT COUNT(*) FROM tool_categories WHERE color = 'unreviewed'", "expect": 10}
            ]);
            phases[1]["expectations"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!(
                    {"name": "still unreviewed", "sql": "SELECT COUNT(*) FROM tool_categories WHERE color = 'unreviewed'", "expect": 10}
                ));
            phases[2] = serde_json::json!({
                "id": "3",
                "name": "review categories",
                "sql": "phases/3_review.sql",
                "reads": [],
                "writes": ["tool_categories"],
                "conflicts": [],
                "expectations": [
                    {"name": "categories left", "sql": "SELECT COUNT(*) FROM tool_categories", "expect": 9},
                    {"name": "reviewed", "sql": "SELECT COUNT(*) FROM tool_categories WHERE color = 'reviewed'", "expect": 9}
                ]
            });
        },
        &[
            (
                "1_unreviewed.sql",
                "INSERT INTO tool_categories (id, name, parent, color, tools, active_tools, created_at)\n\
                 SELECT plan_uuid('tool_category', category), category, category, 'unreviewed', count(*), sum(is_active), :pulled_at\n\
                 FROM dh_tool WHERE category IS NOT NULL GROUP BY category;",
            ),
            (
                "3_review.sql",
                "UPDATE tool_categories SET color = 'reviewed', tools = tools + 1;\n\
                 DELETE FROM tool_categories WHERE name = (SELECT min(name) FROM tool_categories);",
            ),
        ],
    );
    let before = l.state();
    l.rehearse(&[]).ok().stdout_has("PASSED");
    // The preflight runs every phase's expectations on Postgres, then
    // rolls back.
    l.push(&[]).ok();
    before.assert_same(&l.state().without_schema("sandbox"), "after the preflight");
    l.push(&["--confirm"]).ok().stdout_has("Applied diff");
    assert_eq!(
        count(
            &mut l.db.client(),
            "SELECT count(*) FROM tool_categories WHERE color = 'reviewed'"
        ),
        9
    );
    let receipt = l.scalar("SELECT id::text FROM sandbox.receipts");
    l.rollback_restores(
        &receipt,
        &before,
        "from before the push to after the rollback",
    );
}

/// The rows of the one failed check of a report, which must be "values
/// stay exact" of phase 4.
fn exactness_failures(code: i32, r: &Value) -> Vec<String> {
    assert_eq!(code, 1, "{r:#}");
    let failed: Vec<&Value> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["phase"], "4");
    assert!(
        failed[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("values stay exact"),
        "{failed:#?}"
    );
    failed[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The id of the first tool category by name, as the rehearsal names rows.
fn first_id(snap: &Path) -> String {
    rusqlite::Connection::open(snap)
        .unwrap()
        .query_row(
            "SELECT id FROM staged_tool_categories ORDER BY name LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn text_postgres_cannot_store_fails_the_rehearsal_by_table_column_and_row() {
    // Before: the bytes C3 28 stopped the rehearsal with exit 2 and
    // SQLite's 'Conversion error from type Text'; a NUL passed it and the
    // preflight refused 'invalid byte sequence for encoding "UTF8": 0x00'
    // naming an internal temporary table.
    let dir = tempfile::tempdir().unwrap();
    let (code, r, snap) = rehearse_with_columns(
        dir.path(),
        serde_json::json!([{"name": "note", "type": "text"}, {"name": "extra", "type": "jsonb"}]),
        &format!(
            "UPDATE tool_categories SET name = CAST(X'C328' AS TEXT) WHERE name = {LAST};\n\
             UPDATE tool_categories SET note = 'a' || char(0) || 'b', extra = '{{\"k\": \"a\\u0000\"}}' WHERE name = {FIRST};\n"
        ),
    );
    let rows = exactness_failures(code, &r);
    let id = first_id(&snap);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert!(
        rows.iter().any(
            |r| r.starts_with("phases/4_exact.sql: tool_categories.name of row ")
                && r.contains("the bytes C3 28 are not UTF-8 text")
        ),
        "{rows:#?}"
    );
    for want in [
        format!("phases/4_exact.sql: tool_categories.note of row {id}: 'a\\0b' holds a NUL character"),
        format!("phases/4_exact.sql: tool_categories.extra of row {id}: '{{\"k\": \"a\\u0000\"}}' holds the JSON escape \\u0000"),
    ] {
        assert!(rows.iter().any(|r| r.starts_with(&want)), "{want}\n{rows:#?}");
    }
}

#[test]
fn values_postgres_cannot_parse_for_the_column_s_type_fail_the_rehearsal_by_row_and_column() {
    // Before: each passed the rehearsal and the preflight refused 'invalid
    // input syntax for type uuid', 'date/time field value out of range' or
    // 'malformed array literal', naming no row.
    let dir = tempfile::tempdir().unwrap();
    let (code, r, snap) = rehearse_with_columns(
        dir.path(),
        serde_json::json!([
            {"name": "u", "type": "uuid"},
            {"name": "d", "type": "date"},
            {"name": "ts", "type": "timestamp with time zone"},
            {"name": "tags", "type": "text[]"},
            {"name": "ids", "type": "uuid[]"},
            {"name": "doc", "type": "json"}
        ]),
        &format!(
            "UPDATE tool_categories SET u = 'not-a-uuid', d = '2026-02-30', ts = '2026-01-01 25:00:00+00', \
             tags = 'abc', ids = '{{x}}', doc = '{{nope' WHERE name = {FIRST};\n\
             UPDATE tool_categories SET u = '00000000-0000-4000-8000-00000000000a', d = '2024-02-29', \
             ts = '2026-01-01 23:59:59+00', tags = '{{abc,\"d e\"}}', ids = '{{00000000-0000-4000-8000-00000000000a,NULL}}', \
             doc = '{{\"a\": 1}}' WHERE name = {LAST};\n"
        ),
    );
    let rows = exactness_failures(code, &r);
    let id = first_id(&snap);
    assert_eq!(rows.len(), 6, "{rows:#?}");
    for (column, value) in [
        ("u", "'not-a-uuid'"),
        ("d", "'2026-02-30'"),
        ("ts", "'2026-01-01 25:00:00+00'"),
        ("tags", "'abc'"),
        ("ids", "'{x}'"),
        ("doc", "'{nope'"),
    ] {
        let want =
            format!("phases/4_exact.sql: tool_categories.{column} of row {id}: text {value}");
        assert!(
            rows.iter().any(|r| r.starts_with(&want)),
            "{want}\n{rows:#?}"
        );
    }
}

/// A bit string of another length than bit(n) takes, one longer than
/// bit varying(n), and money written as a plain number (Postgres prints it
/// with its currency symbol) are named by row and column (H8 S8; before:
/// green, then the push refused 'bit string length 4 does not match type
/// bit(3)' or found the money different after applying). The values
/// Postgres prints as written pass.
#[test]
fn bit_strings_of_the_wrong_length_and_money_as_a_plain_number_fail_by_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r, snap) = rehearse_with_columns(
        dir.path(),
        serde_json::json!([
            {"name": "bits", "type": "bit(3)"},
            {"name": "flags", "type": "bit varying(3)"},
            {"name": "cost", "type": "money"}
        ]),
        &format!(
            "UPDATE tool_categories SET bits = '1010', flags = '1111', cost = '12.35' \
             WHERE name = {FIRST};\n\
             UPDATE tool_categories SET bits = '101', flags = '11', cost = '$12.35' \
             WHERE name = {LAST};\n"
        ),
    );
    let rows = exactness_failures(code, &r);
    let id = first_id(&snap);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for (column, value) in [("bits", "'1010'"), ("flags", "'1111'"), ("cost", "'12.35'")] {
        let want =
            format!("phases/4_exact.sql: tool_categories.{column} of row {id}: text {value}");
        assert!(
            rows.iter().any(|r| r.starts_with(&want)),
            "{want}\n{rows:#?}"
        );
    }
}

#[test]
fn a_unique_citext_column_compares_case_insensitively_like_postgres() {
    // Before: 'Alice@X.com' beside 'alice@x.com' was "ok" by SQLite's
    // binary comparison and the preflight refused 'duplicate key value
    // violates unique constraint'.
    let dir = tempfile::tempdir().unwrap();
    let (code, r, _) = rehearse_with_columns(
        dir.path(),
        serde_json::json!([{"name": "email", "type": "citext", "unique": true}]),
        &format!(
            "UPDATE tool_categories SET email = 'alice@x.com' WHERE name = {FIRST};\n\
             UPDATE tool_categories SET email = 'Alice@X.com' WHERE name = {LAST};\n"
        ),
    );
    assert_eq!(code, 1, "{r:#}");
    let failed: Vec<String> = failed_checks(&r).iter().map(|c| c.to_string()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("UNIQUE") && failed[0].contains("(email)"),
        "{failed:?}"
    );
}

#[test]
fn a_lone_surrogate_escape_in_jsonb_fails_the_rehearsal_by_table_column_and_row() {
    // Postgres's jsonb input refuses a \ud800 not followed by a low
    // surrogate (and a \udc00 not preceded by a high one): 'invalid input
    // syntax for type json'. SQLite's json_valid accepts it. Before, the
    // rehearsal stopped with exit 2 and 'not JSON: lone leading surrogate in
    // hex escape', naming no row. A pair (\ud83d\ude00) is one character and
    // is stored.
    let dir = tempfile::tempdir().unwrap();
    // A json column keeps it, as Postgres's json type does: no failure.
    let (code, r, snap) = rehearse_with_columns(
        dir.path(),
        serde_json::json!([{"name": "extra", "type": "jsonb"}, {"name": "doc", "type": "json"}]),
        &format!(
            "UPDATE tool_categories SET extra = '{{\"k\": \"a\\ud800\"}}', doc = '{{\"k\": \"a\\ud800\"}}' WHERE name = {FIRST};\n\
             UPDATE tool_categories SET extra = '[\"\\udc00\", \"\\ud83d\\ude00\"]' WHERE name = {LAST};\n\
             UPDATE tool_categories SET extra = '\"\\\\ud800 is an escaped backslash\"' \
             WHERE name = (SELECT min(name) FROM tool_categories WHERE name > {FIRST});\n"
        ),
    );
    let rows = exactness_failures(code, &r);
    let conn = rusqlite::Connection::open(&snap).unwrap();
    let id_of = |order: &str| -> String {
        conn.query_row(
            &format!("SELECT id FROM staged_tool_categories ORDER BY name {order} LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (first, last) = (id_of("ASC"), id_of("DESC"));
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for want in [
        format!("phases/4_exact.sql: tool_categories.extra of row {first}: '{{\"k\": \"a\\ud800\"}}' holds the JSON escape \\ud800, a lone UTF-16 surrogate"),
        format!("phases/4_exact.sql: tool_categories.extra of row {last}: '[\"\\udc00\", \"\\ud83d\\ude00\"]' holds the JSON escape \\udc00, a lone UTF-16 surrogate"),
    ] {
        assert!(rows.iter().any(|r| r.starts_with(&want)), "{want}\n{rows:#?}");
    }
    assert!(
        rows.iter().all(|r| r.contains("Postgres jsonb refuses")),
        "{rows:#?}"
    );
}

#[test]
fn a_lone_surrogate_in_a_pulled_json_column_is_named_by_row_as_postgres_to_jsonb_refuses_it() {
    // A json column (unlike jsonb) keeps "\ud800" as text: pull copies it.
    // The built-in plan moves every other dh_tool column into a jsonb, as
    // to_jsonb does; Postgres's to_jsonb refuses the row ('Unicode low
    // surrogate must follow a high surrogate'), and the rehearsal fails the
    // phase naming table, column and row instead of 'unexpected end of hex
    // escape' with no row.
    let w = World::loaded("lone_surrogate_json", "plan").with_sql(
        "ALTER TABLE dh_tool ADD COLUMN doc json; \
         UPDATE dh_tool SET doc = '{\"k\": \"\\ud800\"}' WHERE id = (SELECT id FROM dh_tool ORDER BY id LIMIT 1);",
    );
    let id = w.scalar("SELECT id::text FROM dh_tool WHERE doc IS NOT NULL");
    let refused =
        w.db.client()
            .query(
                "SELECT to_jsonb(t)::text FROM dh_tool t WHERE doc IS NOT NULL",
                &[],
            )
            .unwrap_err();
    assert!(
        format!("{refused:?}").contains("Unicode low surrogate must follow a high surrogate"),
        "{refused:?}"
    );
    let w = w.pulled();
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let failed = failed_checks(&report);
    assert!(
        failed.iter().any(
            |c| c["actual"].as_str().is_some_and(|a| a.contains(&format!(
            "dh_tool.doc of row {id}: json value holds the escape \\ud800, a lone UTF-16 surrogate"
        )))
        ),
        "{failed:#?}"
    );
}

/// Numeric values are kept as the text Postgres prints (exact, readable in
/// any DB browser); the rehearsal must still compare, order and pick
/// extremes of them as numbers, as Postgres does.
#[test]
fn numeric_columns_compare_as_numbers_in_the_rehearsal_as_on_postgres() {
    // Before: `cost_per_execution > 0.2` held for every non-NULL cost in the
    // written table (text sorts after any number in SQLite) and compared
    // '10.0000' < '9.5000' as text in the read one; the rehearsal deprecated
    // 106 tools where Postgres has 22, and the push would have applied 106.
    let w = World::loaded("exact_numeric_compare", "plan").with_sql(
        "UPDATE dh_tool SET cost_per_execution = v.c FROM (SELECT id, (ARRAY[10, 10, 9.5, 100.25])[(row_number() OVER (ORDER BY id))::int] AS c FROM dh_tool ORDER BY id LIMIT 4) v WHERE dh_tool.id = v.id;
         UPDATE dh_task SET effort_hours = 12.5 WHERE id = (SELECT id FROM dh_task WHERE effort_hours IS NOT NULL ORDER BY id LIMIT 1);
         UPDATE dh_tool SET created_at = '2025-11-05 00:00:00+00' WHERE id = (SELECT id FROM dh_tool ORDER BY id LIMIT 1);",
    );
    // What Postgres answers on the same data: the numbers the plan expects.
    let mut c = w.db.client();
    let queries = [
        ("deprecated tools", "SELECT COUNT(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated' OR cost_per_execution > 0.2", "SELECT COUNT(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated'"),
        ("costly tools", "SELECT COUNT(*) FROM dh_tool WHERE cost_per_execution > 0.2", ""),
        ("costly tools, literal first", "SELECT COUNT(*) FROM dh_tool WHERE 0.2 < cost_per_execution", ""),
        ("tools at ten", "SELECT COUNT(*) FROM dh_tool WHERE cost_per_execution = 10 OR cost_per_execution IN (9.5, 100.25)", ""),
        ("dearest tools", "SELECT id, cost_per_execution FROM dh_tool WHERE cost_per_execution IS NOT NULL ORDER BY cost_per_execution DESC, id LIMIT 3", ""),
        ("cost range", "SELECT MIN(cost_per_execution), MAX(cost_per_execution), COUNT(DISTINCT cost_per_execution) FROM dh_tool", ""),
        ("long tasks (a table the plan only reads)", "SELECT COUNT(*) FROM dh_task WHERE effort_hours > 2", ""),
        ("effort range", "SELECT MIN(effort_hours), MAX(effort_hours) FROM dh_task", ""),
        // Postgres prints the numeric sum with its scale, SQLite a REAL.
        ("cost sum", "SELECT SUM(cost_per_execution) FROM dh_tool", ""),
        // Dates and timestamps: a literal is the moment (or day) Postgres
        // reads from it, whatever its form.
        ("tools made at midnight", "SELECT COUNT(*) FROM dh_tool WHERE created_at = '2025-11-05T00:00:00Z'", ""),
        ("tools made after that day began", "SELECT COUNT(*) FROM dh_tool WHERE created_at > '2025-11-05'", ""),
        ("tools tested since", "SELECT COUNT(*) FROM dh_tool WHERE last_tested_at >= '2025-10-01 12:00'", ""),
        ("tasks before 20:00 at UTC+1", "SELECT COUNT(*) FROM dh_task WHERE created_at < '2025-11-03 20:00:00+01'", ""),
    ];
    let expectations: Vec<Value> = queries
        .iter()
        .map(|(name, pg, sqlite)| {
            let rows = common::text_rows(&mut c, pg);
            let sql = if sqlite.is_empty() { pg } else { sqlite };
            serde_json::json!({"name": name, "sql": sql, "expect_rows": rows})
        })
        .collect();
    let costly = common::count(&mut c, queries[1].1);
    let non_null = common::count(
        &mut c,
        "SELECT COUNT(*) FROM dh_tool WHERE cost_per_execution IS NOT NULL",
    );
    assert!(costly > 4 && costly < non_null, "{costly} of {non_null}");
    let plan = example_plan(
        w.dir.path(),
        |v| {
            // Phase 3 goes: dh_task is then a table the plan only reads.
            v["phases"].as_array_mut().unwrap().truncate(2);
            v["phases"][1]["expectations"] = Value::Array(expectations);
            v["verification"] = serde_json::json!([]);
            v["guards"] = serde_json::json!([]);
        },
        &[(
            "2_deprecate_inactive_tools.sql",
            "UPDATE dh_tool SET lifecycle_stage = 'deprecated' WHERE cost_per_execution > 0.2;",
        )],
    );
    let w = w.with_plan(&plan).pulled();
    let (run, r) = w.rehearse_json(&[]);
    assert_eq!(run.code, 0, "{:#?}", failed_checks(&r));
    let deprecated: i64 = rusqlite::Connection::open(&w.snapshot)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM staged_dh_tool WHERE lifecycle_stage = 'deprecated'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        deprecated.to_string(),
        common::scalar(&mut c, queries[0].1),
        "rows the phase changed"
    );
    // The preflight runs the same expectations on Postgres: they hold there
    // too, and nothing is written.
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "a preflight");
}

/// SQLite sorts NULLs first, Postgres last (first with DESC): a query
/// whose values depend on that order must give Postgres's answer in the
/// rehearsal.
#[test]
fn an_order_by_puts_nulls_where_postgres_puts_them() {
    // Before: the phase deprecated the 3 dearest tools (SQLite: NULLs last
    // with DESC) where Postgres deprecates 3 tools without a cost (NULLs
    // first), and `ORDER BY cost LIMIT 1` named a tool without a cost where
    // Postgres names the cheapest.
    let w = World::loaded("exact_null_order", "plan");
    let phase = "UPDATE dh_tool SET lifecycle_stage = 'deprecated' WHERE id IN (SELECT id FROM dh_tool ORDER BY cost_per_execution DESC, id LIMIT 3);";
    let queries = [
        ("cheapest tool", "SELECT id FROM dh_tool ORDER BY cost_per_execution, id LIMIT 1"),
        ("dearest tool", "SELECT id FROM dh_tool ORDER BY cost_per_execution DESC, id LIMIT 1"),
        ("first by rank", "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY cost_per_execution, id) AS n FROM dh_tool) ranked WHERE n = 1"),
        ("deprecated without a cost", "SELECT COUNT(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated' AND cost_per_execution IS NULL"),
    ];
    // What Postgres answers after the phase's SQL, rolled back.
    let mut c = w.db.client();
    c.batch_execute(&format!("BEGIN; {phase}")).unwrap();
    let expectations: Vec<Value> = queries
        .iter()
        .map(|(name, sql)| {
            let rows = common::text_rows(&mut c, sql);
            serde_json::json!({"name": name, "sql": sql, "expect_rows": rows})
        })
        .collect();
    c.batch_execute("ROLLBACK").unwrap();
    let plan = example_plan(
        w.dir.path(),
        |v| {
            v["phases"][1]["expectations"] = Value::Array(expectations);
            v["verification"] = serde_json::json!([]);
            v["guards"] = serde_json::json!([]);
        },
        &[("2_deprecate_inactive_tools.sql", phase)],
    );
    let w = w.with_plan(&plan).pulled();
    let (run, r) = w.rehearse_json(&[]);
    assert_eq!(run.code, 0, "{:#?}", failed_checks(&r));
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "a preflight");
}

/// SQLite's date functions on the timestamps the snapshot holds as
/// Postgres prints them (`2024-01-01 10:00:00+00`): before, `date()` of
/// that text was NULL, so `WHERE date(created_at) = '2024-01-01'` matched
/// no row, the rehearsal passed and push wrote nothing where Postgres
/// running the same SQL updates two rows. Now the rehearsal reads the
/// moment each text names (offsets `+00`, `-02`, `+05:30`, UTC as the push
/// pins it): the pushed database equals a copy the same UPDATE ran on, in
/// Postgres, whole. A value SQLite's functions cannot hold (`infinity`)
/// fails the phase naming it, never NULL.
#[test]
fn date_functions_read_the_pulled_timestamps() {
    let table = "CREATE TABLE public.dh_item (id int PRIMARY KEY, created_at timestamptz NOT NULL,
           seen timestamp, note text);
         INSERT INTO public.dh_item VALUES
           (1, '2024-01-01 10:00:00+00', '2024-01-01 10:00', NULL),
           (2, '2024-01-01 23:30:00-02', '2024-01-01 23:30', NULL),
           (3, '2024-01-01 02:00:00+05:30', '2023-12-31 23:59:59.5', NULL),
           (4, '2023-12-31 23:00:00+00', '2024-06-30 00:00', NULL);";
    let phase = "UPDATE dh_item SET note = 'new year ' || strftime('%H:%M', created_at) \
                 WHERE date(created_at) = '2024-01-01';
                 UPDATE dh_item SET note = coalesce(note, '') || ' seen ' || date(seen, '+1 day') \
                 WHERE julianday(seen) < julianday('2024-01-02');";
    let w = common::item_world("ex_dates", table, &[phase]);
    let copy = TestDb::from_template(&w.db.name, "ex_dates_copy");
    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    assert!(failed_checks(&report).is_empty(), "{report:#}");
    let staged: Vec<(i64, Option<String>)> = {
        let c = rusqlite::Connection::open(w.snap()).unwrap();
        let mut s = c
            .prepare("SELECT id, note FROM staged_dh_item ORDER BY id")
            .unwrap();
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    };
    assert_eq!(
        staged,
        vec![
            (1, Some("new year 10:00 seen 2024-01-02".into())),
            (2, Some(" seen 2024-01-02".into())),
            (3, Some(" seen 2024-01-01".into())),
            (4, None),
        ]
    );
    w.push(&["--confirm"]).ok();
    // The same SQL in Postgres's dialect, on the copy, under UTC.
    copy.client()
        .batch_execute(
            "SET TimeZone = 'UTC';
             UPDATE dh_item SET note = 'new year ' || to_char(created_at, 'HH24:MI')
             WHERE created_at::date = '2024-01-01';
             UPDATE dh_item SET note = coalesce(note, '') || ' seen ' || (seen + interval '1 day')::date
             WHERE seen < '2024-01-02';",
        )
        .unwrap();
    whole_database_state(w.url())
        .without_schema("sandbox")
        .assert_same(
            &whole_database_state(&copy.url).without_schema("sandbox"),
            "the push against the same SQL run on Postgres",
        );

    // infinity: no date for SQLite's functions; the phase fails naming it.
    let w = common::item_world(
        "ex_dates_inf",
        "CREATE TABLE public.dh_item (id int PRIMARY KEY, created_at timestamptz, note text);
         INSERT INTO public.dh_item VALUES (1, 'infinity', NULL), (2, '2024-01-01 10:00+00', NULL);",
        &["UPDATE dh_item SET note = 'x' WHERE date(created_at) = '2024-01-01';"],
    );
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let c = check_named(&report, "phase SQL runs");
    assert_eq!(c["ok"], false);
    assert!(
        c.to_string()
            .contains("date('infinity'): SQLite's date functions have no infinity"),
        "{c:#}"
    );
}
