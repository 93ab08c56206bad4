//! The rehearsal compares values as Postgres compares them. A phase's
//! SQL runs on the snapshot (SQLite), and the push applies what it
//! changed: where SQLite compares otherwise — an enum as text, a
//! `character(n)` with its padding — the rehearsal was green and the push
//! changed other rows than the SQL means on Postgres. Each test runs the
//! same SQL on Postgres and in the rehearsal, asserts the same rows, then
//! pushes (preflight, --confirm) and rolls back with whole-database
//! compares.

mod common;

use std::path::{Path, PathBuf};

use common::{failed_checks, World};

/// A plan folder writing `dh_item` and reading `ref_item`, one phase per
/// SQL text.
fn plan(dir: &Path, phases: &[&str]) -> PathBuf {
    common::item_plan_reading(dir, phases, &["ref_item"])
}

/// Items with an enum whose declared order is not its labels' text order,
/// a `character(5)`, a numeric, a jsonb and a text; `ref_item` holds the
/// same rows for the plan to read only.
const ITEMS: &str =
    "CREATE TYPE public.item_status AS ENUM ('new', 'open', 'active', 'blocked', 'done');
     CREATE TABLE public.dh_item (id int PRIMARY KEY, status public.item_status, code char(5),
       price numeric, doc jsonb, name text, touched int NOT NULL DEFAULT 0);
     INSERT INTO public.dh_item (id, status, code, price, doc, name) VALUES
       (1, 'new', 'ab', 60.00, '{\"n\": 10, \"flag\": true}', 'Äpfel'),
       (2, 'open', 'abc', 9.5, '{\"n\": 9, \"flag\": false}', 'äpfel'),
       (3, 'active', 'b', NULL, '{\"n\": \"x\"}', 'Öl'),
       (4, 'blocked', 'ab ', 100, '{\"n\": 100}', 'apple'),
       (5, 'done', NULL, 45, '{}', 'ÉCOLE'),
       (6, NULL, 'a', 0.00, NULL, NULL);
     CREATE TABLE public.ref_item AS SELECT id, status, code, price, doc, name FROM public.dh_item;
     ALTER TABLE public.ref_item ADD PRIMARY KEY (id);";

/// `(id, touched)` of every item, by id.
const TOUCHED: &str = "SELECT id, touched FROM dh_item ORDER BY id";

/// Runs `phase` on Postgres (rolled back) and in a rehearsal of a snapshot
/// pulled from the same database, asserts both touched the same items the
/// same way, then pushes it (preflight: database unchanged; --confirm:
/// Postgres holds what its own run of the SQL gave) and rolls it back
/// (whole database as before). Returns Postgres's answer.
fn same_rows_as_postgres(tag: &str, setup: &str, phase: &str) -> Vec<Vec<String>> {
    let w = World::empty(tag, setup);
    let mut c = w.db.client();
    c.batch_execute(&format!("BEGIN; {phase}")).unwrap();
    let on_postgres = common::text_rows(&mut c, TOUCHED);
    c.batch_execute("ROLLBACK").unwrap();
    let plan = plan(w.dir.path(), &[phase]);
    let w = w.with_plan(&plan).pulled();
    let (run, r) = w.rehearse_json(&[]);
    assert_eq!(run.code, 0, "{:#?}", failed_checks(&r));
    let snap = rusqlite::Connection::open(&w.snapshot).unwrap();
    let mut stmt = snap
        .prepare("SELECT id, touched FROM staged_dh_item ORDER BY id")
        .unwrap();
    let rehearsed: Vec<Vec<String>> = stmt
        .query_map([], |r| {
            Ok(vec![
                r.get::<_, i64>(0)?.to_string(),
                r.get::<_, i64>(1)?.to_string(),
            ])
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rehearsed, on_postgres, "rehearsal vs Postgres: {phase}");
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "a preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(&mut c, TOUCHED),
        on_postgres,
        "pushed vs Postgres's own run"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
    on_postgres
}

/// The touched count of each item, by id.
fn touched(rows: &[Vec<String>]) -> Vec<&str> {
    rows.iter().map(|r| r[1].as_str()).collect()
}

/// An enum compares by its declared order (`pg_enum.enumsortorder`), in
/// the written table and in one the plan only reads, also as MAX and in
/// ORDER BY. Before: `status > 'new'` held for 1 item ('open', by text)
/// where Postgres means 4.
#[test]
fn an_enum_compares_in_its_declared_order() {
    let rows = same_rows_as_postgres(
        "cmp_enum",
        ITEMS,
        "UPDATE dh_item SET touched = touched + 1 WHERE status > 'new';
         UPDATE dh_item SET touched = touched + 10 WHERE status BETWEEN 'open' AND 'blocked';
         UPDATE dh_item SET touched = touched + 100
           WHERE id = (SELECT id FROM dh_item WHERE status IS NOT NULL ORDER BY status DESC, id LIMIT 1);
         UPDATE dh_item SET touched = touched + 1000
           WHERE id IN (SELECT id FROM ref_item WHERE status < 'active');
         UPDATE dh_item SET touched = touched + 10000 WHERE status = (SELECT max(status) FROM ref_item);",
    );
    assert_eq!(
        touched(&rows),
        ["1000", "1011", "11", "11", "10101", "0"],
        "Postgres's answer"
    );
}

/// `character(n)` compares without its padding: the snapshot holds 'ab   '
/// as Postgres prints it, and `code = 'ab'` finds it. Before: 0 items.
#[test]
fn a_character_n_compares_without_its_padding() {
    let rows = same_rows_as_postgres(
        "cmp_bpchar",
        ITEMS,
        "UPDATE dh_item SET touched = touched + 1 WHERE code = 'ab';
         UPDATE dh_item SET touched = touched + 10 WHERE code IN ('abc', 'b ');
         UPDATE dh_item SET touched = touched + 100 WHERE id IN (SELECT id FROM ref_item WHERE code = 'a');
         UPDATE dh_item SET touched = touched + 1000 WHERE code > 'ab ';",
    );
    assert_eq!(
        touched(&rows),
        ["1", "1010", "1010", "1", "0", "100"],
        "Postgres's answer"
    );
}

/// A numeric column compares as a number through COALESCE, NULLIF, CASE
/// and a scalar subquery, as it does bare (R45). Before: `COALESCE(price,
/// 0) > 50` held for every priced item (text '9.5' is greater than the
/// integer 50 in SQLite): 5 items where Postgres means 2.
#[test]
fn a_number_compares_as_a_number_through_coalesce_nullif_case_and_subqueries() {
    let rows = same_rows_as_postgres(
        "cmp_numeric_expr",
        ITEMS,
        "UPDATE dh_item SET touched = touched + 1 WHERE COALESCE(price, 0) > 50;
         UPDATE dh_item SET touched = touched + 10 WHERE NULLIF(price, 0) IS NULL;
         UPDATE dh_item SET touched = touched + 100
           WHERE CASE WHEN status = 'done' THEN 0 ELSE price END BETWEEN 9 AND 60;
         UPDATE dh_item SET touched = touched + 1000
           WHERE (SELECT r.price FROM ref_item r WHERE r.id = dh_item.id) < 10;
         UPDATE dh_item SET touched = touched + 10000
           WHERE id = (SELECT id FROM ref_item ORDER BY COALESCE(price, -1) DESC, id LIMIT 1);",
    );
    assert_eq!(
        touched(&rows),
        ["101", "1100", "10", "10001", "0", "1010"],
        "Postgres's answer"
    );
}

/// `->>` yields text, as on Postgres: SQLite's yields a JSON number as a
/// number and `true` as 1, so `doc->>'n' = '10'` and `doc->>'flag' =
/// 'true'` held for no item (Postgres: 1 each).
#[test]
fn json_arrow_yields_text_as_on_postgres() {
    let rows = same_rows_as_postgres(
        "cmp_json_text",
        ITEMS,
        "UPDATE dh_item SET touched = touched + 1 WHERE doc->>'n' = '10' OR doc->>'flag' = 'false';
         UPDATE dh_item SET touched = touched + 10 WHERE (doc->>'n') > '9';
         UPDATE dh_item SET touched = touched + 100 WHERE doc->>'flag' = 'true';
         UPDATE dh_item SET touched = touched + 1000
           WHERE id IN (SELECT id FROM ref_item WHERE doc->'n' = '100' OR doc->>'missing' IS NOT NULL);",
    );
    assert_eq!(
        touched(&rows),
        ["101", "1", "10", "1000", "0", "0"],
        "Postgres's answer"
    );
}

/// `lower()` and `upper()` map non-ASCII letters as the database's locale
/// does (C.UTF-8 here): SQLite's map ASCII only, so `lower(name) = 'äpfel'`
/// found 1 item where Postgres finds 2.
#[test]
fn lower_and_upper_map_letters_as_the_database_locale_does() {
    let rows = same_rows_as_postgres(
        "cmp_case",
        ITEMS,
        "UPDATE dh_item SET touched = touched + 1 WHERE lower(name) = 'äpfel';
         UPDATE dh_item SET touched = touched + 10 WHERE upper(name) = 'ÖL';
         UPDATE dh_item SET touched = touched + 100
           WHERE id IN (SELECT id FROM ref_item WHERE lower(name) = 'école');",
    );
    assert_eq!(
        touched(&rows),
        ["1", "1", "10", "0", "100", "0"],
        "Postgres's answer"
    );
}
