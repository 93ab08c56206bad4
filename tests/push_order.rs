//! The order push writes a phase's rows in, and the rehearsal proving it:
//! a plan that frees a UNIQUE value and reuses it in the same phase pushes;
//! one that needs two rows to trade unique values cannot be pushed row by
//! row and fails the rehearsal by name (unless the constraint is
//! DEFERRABLE); a column Postgres filled at the push's own insert and a
//! later phase sets is pushed, not refused as drift. Each test compares the
//! whole database before and after.

mod common;

use common::{failed_checks, item_world, World};

/// `(id, name)` of every item, by id.
fn items(w: &World) -> Vec<Vec<String>> {
    common::text_rows(
        &mut w.db.client(),
        "SELECT id, coalesce(name, 'NULL') FROM public.dh_item ORDER BY id",
    )
}

/// Pushes (preflight, then --confirm), checks the items are `expected`,
/// rolls back and checks the whole database is as before.
fn pushes_and_rolls_back(w: &World, expected: &[[&str; 2]]) {
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(items(w), expected, "after the push");
    w.rollback_restores(&receipt, &before, "push then rollback");
}

const FILLED: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     stamp timestamptz DEFAULT now(), token uuid NOT NULL DEFAULT gen_random_uuid()); \
     INSERT INTO public.dh_item (id, name) VALUES ('a', 'alpha');";

/// Phase 1 inserts a row leaving `stamp` and `token` to Postgres, phase 2
/// sets them: the rehearsal saw NULL there before phase 2, Postgres holds
/// what it filled. The update is the push's own row's: it applies (before:
/// refused as "the remote changed").
#[test]
fn a_value_postgres_filled_at_the_push_s_insert_is_set_by_a_later_phase() {
    let w = item_world(
        "order_filled",
        FILLED,
        &[
            "INSERT INTO dh_item (id, name) VALUES ('c', 'gamma');",
            "UPDATE dh_item SET stamp = '2026-01-01 00:00:00+00', \
             token = '7d1f7c0a-1111-4111-8111-111111111111' WHERE id = 'c';",
        ],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(&w, &[["a", "alpha"], ["c", "gamma"]]);
    // (Rolled back above; push again to read what the later phase set.)
    w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT (stamp = '2026-01-01 00:00:00+00')::text, token::text FROM public.dh_item \
             WHERE id = 'c'"
        ),
        [["true", "7d1f7c0a-1111-4111-8111-111111111111"]]
    );
}

const ITEMS: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, \
     name text NOT NULL CONSTRAINT dh_item_name_key UNIQUE, note text); \
     INSERT INTO public.dh_item (id, name) VALUES ('a', 'alpha'), ('b', 'beta');";

/// A row renamed, then a new row taking its old name, in one phase: SQLite
/// ran it in that order; the push updates before it inserts, so Postgres
/// sees it the same way (before: the COPY came first and collided on
/// dh_item_name_key).
#[test]
fn a_renamed_unique_value_reused_by_a_new_row_in_the_same_phase_pushes() {
    let w = item_world(
        "order_rename",
        ITEMS,
        &["UPDATE dh_item SET name = 'alpha-old' WHERE id = 'a'; \
           INSERT INTO dh_item (id, name) VALUES ('c', 'alpha');"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(&w, &[["a", "alpha-old"], ["b", "beta"], ["c", "alpha"]]);
}

/// A row deleted and its unique value given to a new row under another key
/// (deletes come first), and a row renamed to the value a deleted row held.
#[test]
fn a_deleted_row_s_unique_value_goes_to_another_row_in_the_same_phase() {
    let w = item_world(
        "order_delete",
        ITEMS,
        &["DELETE FROM dh_item WHERE id IN ('a', 'b'); \
           INSERT INTO dh_item (id, name) VALUES ('c', 'alpha'), ('d', 'beta');"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(&w, &[["c", "alpha"], ["d", "beta"]]);
}

/// The rows of a swap trade values in one UPDATE; Postgres visits them in
/// an order of its own and checks a UNIQUE that is not DEFERRABLE row by
/// row, so the first row collides with the second. The rehearsal fails the
/// push-order check naming the constraint and both rows (before: PASSED,
/// then the push failed on Postgres); push refuses and writes nothing.
#[test]
fn a_swap_of_unique_values_fails_the_rehearsal_naming_constraint_and_rows() {
    let w = item_world(
        "order_swap",
        ITEMS,
        &["UPDATE dh_item SET name = CASE id WHEN 'a' THEN 'beta' ELSE 'alpha' END;"],
    );
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let failed = failed_checks(&report);
    let names: Vec<&str> = failed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "push order: no row collides on a UNIQUE key",
            "rollback order: no row collides on a UNIQUE key"
        ],
        "{failed:#?}"
    );
    let rows = common::check_rows(failed[0]);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows[0].starts_with(
            "phase 1, dh_item_name_key: updating dh_item id=a to name='beta' collides with \
             dh_item id=b, which gives it up only in the same UPDATE or a later one: rows \
             trading unique values"
        ),
        "{rows:#?}"
    );
    assert!(rows[0].contains("DEFERRABLE"), "{}", rows[0]);
    assert!(
        rows[1].starts_with(
            "phase 1, dh_item_name_key: updating dh_item id=b to name='alpha' collides with \
             dh_item id=a"
        ),
        "{rows:#?}"
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).code(1);
        before.assert_same(&w.state(), "a refused push");
    }
}

/// `a` and `b` trade names in one phase, `a` also getting a note: two
/// UPDATE statements (one per set of columns), the first (`b`'s) leaving two
/// rows named 'alpha' until the second runs.
const SWAP: &str = "UPDATE dh_item SET name = CASE id WHEN 'a' THEN 'beta' ELSE 'alpha' END, \
     note = CASE id WHEN 'a' THEN 'swapped' ELSE note END;";

/// A swap on a DEFERRABLE constraint, in two UPDATE statements: push
/// defers it for the phase and checks it at the phase's end, rollback for
/// its undo; both pass. Not deferred, it would collide after the first
/// statement.
#[test]
fn a_swap_on_a_deferrable_unique_key_pushes_and_rolls_back() {
    let w = item_world(
        "order_deferrable",
        &ITEMS.replace(
            "CONSTRAINT dh_item_name_key UNIQUE",
            "CONSTRAINT dh_item_name_key UNIQUE DEFERRABLE",
        ),
        &[SWAP],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(&w, &[["a", "beta"], ["b", "alpha"]]);
}

/// A pulled value that reads like the rehearsal's old marker for "left to
/// Postgres" is the app's text: the push keeps it, and a phase copying it
/// copies the text (before: it was taken for the marker, the pulled row
/// was updated to NULL and the copy got Postgres's default — H8 R29). A
/// row that really leaves the column out still gets the default.
#[test]
fn a_pulled_value_reading_like_the_left_to_postgres_marker_is_data() {
    let w = item_world(
        "order_marker_text",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, \
         name text NOT NULL DEFAULT ('auto-' || gen_random_uuid())); \
         INSERT INTO public.dh_item VALUES ('a', '<left to Postgres>');",
        &[
            "INSERT INTO dh_item (id, name) SELECT 'b', name FROM dh_item WHERE id = 'a'; \
           INSERT INTO dh_item (id) VALUES ('c');",
        ],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let script = w.dir.path().join("diff.sql");
    w.diff(&["--sql", script.to_str().unwrap()]).ok();
    let sql = std::fs::read_to_string(&script).unwrap();
    assert!(
        !sql.contains("UPDATE"),
        "the pulled row is not touched: {sql}"
    );
    let before = w.state();
    let receipt = w.push_confirmed();
    let rows = items(&w);
    assert_eq!(
        rows[..2],
        [["a", "<left to Postgres>"], ["b", "<left to Postgres>"]]
    );
    assert!(rows[2][1].starts_with("auto-"), "{rows:?}");
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// An xml content fragment (text around elements, or empty) read from the
/// app's rows is written back as it was read, whatever `xmloption` the
/// database sets: the push pins `content` (before: with the database's
/// `xmloption = document` the COPY refused the fragment — H8 R22).
#[test]
fn xml_content_fragments_push_and_roll_back_under_xmloption_document() {
    let w = World::empty(
        "order_xmloption",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text, x xml); \
         INSERT INTO public.dh_item VALUES ('a', 'alpha', 'one<b>two</b>three'), ('e', 'empty', '');",
    );
    w.exec(&format!(
        "ALTER DATABASE \"{}\" SET xmloption = document",
        w.db.name.replace('"', "\"\"")
    ));
    let plan = common::item_plan(
        w.dir.path(),
        &[
            "INSERT INTO dh_item (id, name, x) SELECT id || '2', name, x FROM dh_item; \
           DELETE FROM dh_item WHERE id = 'e';",
        ],
    );
    let w = w.with_plan(&plan).pulled();
    w.rehearse(&[]).ok();
    let before = w.state();
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT id, x::text FROM public.dh_item ORDER BY id"
        ),
        [
            ["a", "one<b>two</b>three"],
            ["a2", "one<b>two</b>three"],
            ["e2", ""]
        ]
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// A column target.json adds with a schema-qualified type (`public.grade`,
/// as the README allows) is written with that type, not `public.public.…`
/// (before: rehearsal green, then push failed 'cross-database references
/// are not implemented: public.public.grade', exit 2 — H8 R9).
#[test]
fn an_added_column_of_a_schema_qualified_type_is_pushed_and_rolled_back() {
    let w = World::empty(
        "order_qualified_type",
        "CREATE TYPE public.grade AS ENUM ('a', 'b'); \
         CREATE TABLE public.dh_item (id text PRIMARY KEY, name text); \
         INSERT INTO public.dh_item VALUES ('x', 'ex'), ('y', 'why');",
    );
    let plan = common::item_plan(
        w.dir.path(),
        &["UPDATE dh_item SET stock = 'b' WHERE id = 'x';"],
    );
    std::fs::write(
        plan.join("target.json"),
        r#"{"tables": [], "added_columns": [
            {"table": "dh_item", "phase": "1", "column": {"name": "stock", "type": "public.grade"}}]}"#,
    )
    .unwrap();
    let w = w.with_plan(&plan).pulled();
    w.rehearse(&[]).ok();
    let before = w.state();
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT id, coalesce(stock::text, 'NULL') FROM public.dh_item ORDER BY id"
        ),
        [["x", "b"], ["y", "NULL"]]
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// Tables named like the snapshot's own objects are refused by pull, by
/// name, with nothing written (before: a pulled `staged_dh_item` was
/// overwritten by the first rehearsal, which passed, and the next one said
/// the pulled table had been edited — H8 R31); a table of another schema
/// in the plan's tables is named as such (before: "no table app.orders in
/// schema public … is the URL pointing at the right database?" — R18).
#[test]
fn pull_refuses_tables_named_like_the_snapshot_s_own_objects() {
    let w = World::empty(
        "order_reserved_names",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text); \
         CREATE TABLE public.staged_dh_item (id int PRIMARY KEY, x text); \
         CREATE TABLE public.dh_item_jsonb (id int PRIMARY KEY); \
         CREATE SCHEMA app; CREATE TABLE app.orders (id int PRIMARY KEY);",
    );
    let plan = common::item_plan(w.dir.path(), &["UPDATE dh_item SET name = 'n';"]);
    let with_sources = |sources: serde_json::Value, prefix: Option<&str>| {
        let file = plan.join("plan.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        json["tables"]["sources"] = sources;
        json["tables"]["source_prefix"] = prefix.into();
        std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    };
    let w = w.with_plan(&plan);
    for (sources, prefix, needles) in [
        (
            serde_json::json!(["dh_item", "staged_dh_item"]),
            None,
            vec!["staged_dh_item (the rehearsal's staged copies are staged_<table>)"],
        ),
        (
            serde_json::json!(["dh_item"]),
            Some("dh_"),
            vec!["dh_item_jsonb (the row-JSON view of a pulled table is <table>_jsonb)"],
        ),
        (
            serde_json::json!(["dh_item", "app.orders"]),
            None,
            vec!["app.orders", "pull reads tables of schema public only"],
        ),
    ] {
        with_sources(sources, prefix);
        w.pull(&[]).code(2).error_has(&needles);
        assert!(
            !std::path::Path::new(w.snap()).exists(),
            "no snapshot written"
        );
    }
}

const IDENTITY: &str = "CREATE TABLE public.dh_item (id bigint GENERATED BY DEFAULT AS IDENTITY \
     PRIMARY KEY, sku text NOT NULL, name text NOT NULL, price numeric(10,2), \
     created_at timestamptz NOT NULL DEFAULT now()); \
     INSERT INTO public.dh_item (sku, name, price) VALUES ('A-1', 'alpha', 1.50);";

/// The most common Supabase table shape: an identity primary key a new row
/// leaves to Postgres. The push writes, diffs, receipts and rolls back rows
/// by key, so it needs the key before it writes: the rehearsal fails the
/// named check, naming each new row by its values and saying what to write
/// instead (before: one such row stopped the rehearsal with "staged row …
/// differs from the replay … run sandbox rehearse again" and no checks, for
/// ever; two collided on SQLite's "UNIQUE constraint failed: dh_item.id").
#[test]
fn new_rows_leaving_an_identity_primary_key_to_postgres_fail_the_named_check() {
    for (tag, sql, expected_rows) in [
        (
            "order_identity_one",
            "INSERT INTO dh_item (sku, name, price, created_at) \
             VALUES ('B-2', 'beta', 2.00, '2026-01-01 00:00:00+00');",
            1,
        ),
        (
            "order_identity_two",
            "INSERT INTO dh_item (sku, name, price, created_at) VALUES \
             ('B-2', 'beta', 2.00, '2026-01-01 00:00:00+00'), \
             ('C-3', 'gamma', 3.00, '2026-01-01 00:00:00+00');",
            2,
        ),
    ] {
        let w = item_world(tag, IDENTITY, &[sql]);
        let before = w.state();
        let (run, report) = w.rehearse_json(&[]);
        run.code(1);
        let failed = failed_checks(&report);
        let names: Vec<&str> = failed.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["dh_item: new rows have a primary key set by the plan"],
            "{tag}: {failed:#?}"
        );
        let rows: Vec<&str> = failed[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(rows.len(), expected_rows, "{tag}: {rows:?}");
        assert!(
            rows[0].contains("'B-2'") && rows[0].contains("'beta'"),
            "{rows:?}"
        );
        if expected_rows == 2 {
            assert!(rows[1].contains("'C-3'"), "{rows:?}");
        }
        let expected = failed[0]["expected"].as_str().unwrap();
        for words in ["identity", "id", "above the current max"] {
            assert!(expected.contains(words), "{tag}: {expected}");
        }
        // Push refuses what the rehearsal failed, and writes nothing.
        w.push(&[]).code(1);
        before.assert_same(&w.state(), "refused push");
    }
}
