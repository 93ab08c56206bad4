//! Columns whose type is a domain (`CREATE DOMAIN qty AS int CHECK …`),
//! an enum or a composite: the rehearsal stores, compares and prints their
//! values as Postgres does — a domain as its base type, an enum's values as
//! its labels — while the push casts to the domain's own name so its NOT
//! NULL and CHECKs apply on Postgres. Each test that writes Postgres
//! compares the whole database before and after.

mod common;

use common::{item_world, World};

/// What Postgres itself makes of `sql` (the phase's SQL, plain enough for
/// both) on the database as it is: `select` read inside a transaction that
/// is rolled back.
fn postgres_result(w: &World, sql: &str, select: &str) -> Vec<Vec<String>> {
    common::text_rows(
        &mut w.db.client(),
        &format!("BEGIN; {sql} {select}; ROLLBACK;"),
    )
}

/// Pushes (preflight, then --confirm) and checks Postgres then holds what
/// running `sql` itself gives (`expected`); rolls back and checks the whole
/// database is as before.
fn pushes_as_postgres_runs_it(w: &World, select: &str, expected: &[Vec<String>]) {
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(&mut w.db.client(), select),
        expected,
        "after the push, Postgres holds what the phase's SQL gives on Postgres"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

const DOMAINS: &str = "
    CREATE DOMAIN public.qty AS int CHECK (VALUE >= 0);
    CREATE DOMAIN public.big_qty AS public.qty;
    CREATE DOMAIN public.price AS numeric(8,2);
    CREATE DOMAIN public.due AS date;
    CREATE DOMAIN public.seen AS timestamptz;
    CREATE DOMAIN public.doc AS jsonb;
    CREATE DOMAIN public.code AS uuid;
    CREATE DOMAIN public.label AS text;
    CREATE DOMAIN public.qtys AS int[];
    CREATE TABLE public.dh_item (id text PRIMARY KEY, qty public.qty, bq public.big_qty,
      price public.price, due public.due, seen public.seen, doc public.doc, code public.code,
      label public.label, qtys public.qtys, each_qty public.qty[], note text, rank int);
    INSERT INTO public.dh_item VALUES
      ('a', 9, 9, 9.50, '2024-01-09', '2024-01-09 00:00:00+00', '{\"n\": 9}',
       '00000000-0000-0000-0000-000000000009', 'b', '{9}', '{9}', NULL, NULL),
      ('b', 10, 10, 10.00, '2024-01-10', '2024-01-10 00:00:00+00', '{\"n\": 10}',
       '00000000-0000-0000-0000-000000000010', 'a', '{10}', '{10}', NULL, NULL),
      ('c', 100, 100, 100.25, '2024-02-01', '2024-02-01 00:00:00+00', '{\"n\": 100}',
       '00000000-0000-0000-0000-000000000100', 'c', '{100,1}', '{100,1}', NULL, NULL),
      ('d', 2, 2, 2.00, '2023-12-31', '2023-12-31 23:00:00+00', '{\"n\": 2}',
       '00000000-0000-0000-0000-000000000002', 'B', '{2}', '{2}', NULL, NULL);";

/// The phase: comparisons, MAX and a rank by comparison, on every domain.
const COMPARE: &str = "
    UPDATE dh_item SET note = 'qty>9' WHERE qty > 9;
    UPDATE dh_item SET note = coalesce(note, '') || ' bq>9' WHERE bq > 9;
    UPDATE dh_item SET note = coalesce(note, '') || ' price>9.5' WHERE price > 9.5;
    UPDATE dh_item SET note = coalesce(note, '') || ' due>2024-01-09' WHERE due > '2024-01-09';
    UPDATE dh_item SET note = coalesce(note, '') || ' seen<2024-01-01' \
      WHERE seen < '2024-01-01T00:00:00Z';
    UPDATE dh_item SET note = coalesce(note, '') || ' max' WHERE qty = (SELECT max(qty) FROM dh_item);
    UPDATE dh_item SET rank = (SELECT count(*) FROM dh_item o WHERE o.qty < dh_item.qty);
    UPDATE dh_item SET qty = qty + 1, bq = bq * 2, qtys = '{ 7, 8 }', each_qty = '{ 7 }', \
      code = '00000000-0000-0000-0000-0000000000AB' WHERE id = 'd';
    INSERT INTO dh_item (id, qty, bq, price, due, seen, doc, code, label, qtys, each_qty) \
      VALUES ('e', 11, 11, 11.5, '2024-03-01', '2024-03-01 00:00:00+00', '{\"n\": 11}', \
              '00000000-0000-0000-0000-000000000011', 'e', '{11}', '{11}');";

const ITEMS: &str = "SELECT id, qty, bq, price, due, seen, doc, code, label, qtys, each_qty, \
     coalesce(note, 'NULL'), coalesce(rank::text, 'NULL') FROM public.dh_item ORDER BY id";

/// A column of a domain over int, numeric, date, timestamptz, jsonb, uuid,
/// text, int[] (and an array of a domain): the rehearsal compares, orders
/// and prints its values as its base type's (before: every domain was
/// text, so `qty > 9` missed 10 and 100 — '10' < '9' — and the push
/// wrote what that rehearsal computed). Postgres after the push holds what
/// the same SQL gives on Postgres; the domain's CHECK is listed for the
/// preflight; rollback restores the whole database.
#[test]
fn domain_columns_compare_and_print_as_their_base_type() {
    let w = item_world("dom_compare", DOMAINS, &[COMPARE]);
    let snap = sandbox::db::sqlite::Snapshot::open(&w.snapshot).unwrap();
    let item = &snap.table("dh_item").unwrap().meta;
    let types: Vec<String> = item
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.value_type()))
        .collect();
    assert_eq!(
        types,
        [
            "id text",
            "qty integer",
            "bq integer",
            "price numeric(8,2)",
            "due date",
            "seen timestamp with time zone",
            "doc jsonb",
            "code uuid",
            "label text",
            "qtys integer[]",
            "each_qty integer[]",
            "note text",
            "rank integer"
        ]
    );
    let expected = postgres_result(&w, COMPARE, ITEMS);
    assert_eq!(
        expected[1][11], "qty>9 bq>9 price>9.5 due>2024-01-09",
        "{expected:?}"
    );
    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    let items = common::preflight(&report);
    assert!(
        items.contains(&(
            "dh_item.qty".into(),
            "domain_check".into(),
            "domain qty: CHECK ((VALUE >= 0))".into()
        )),
        "{items:#?}"
    );
    pushes_as_postgres_runs_it(&w, ITEMS, &expected);
}

/// UNIQUE over an unconstrained numeric (and over a domain of one, and a
/// float): a new row's `1.50` is the pulled `1.5` to Postgres, `-0` is `0`.
/// The rehearsal fails the key's check naming constraint, table and both
/// rows (before: texts differ, so PASSED, and the push failed late on the
/// unique violation); push refuses, preflight and --confirm alike, and the
/// whole database is as it was.
#[test]
fn a_numeric_key_equal_as_a_number_collides_in_the_rehearsal() {
    let w = item_world(
        "dom_numeric_unique",
        "CREATE DOMAIN public.amount AS numeric;
         CREATE TABLE public.dh_item (id text PRIMARY KEY,
           cost numeric CONSTRAINT dh_item_cost_key UNIQUE,
           fee public.amount CONSTRAINT dh_item_fee_key UNIQUE,
           ratio float8 CONSTRAINT dh_item_ratio_key UNIQUE);
         INSERT INTO public.dh_item VALUES ('a', 1.5, 2.5, 0);",
        &["INSERT INTO dh_item VALUES ('b', '1.50', '2.500', '-0');"],
    );
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let failed = common::failed_checks(&report);
    let names: Vec<(&str, Vec<&str>)> = failed
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), common::check_rows(c)))
        .collect();
    assert_eq!(
        names,
        [
            (
                "dh_item: UNIQUE dh_item_cost_key (cost)",
                vec!["cost=1.5: id=a (pulled); id=b (new)"]
            ),
            (
                "dh_item: UNIQUE dh_item_fee_key (fee)",
                vec!["fee=2.5: id=a (pulled); id=b (new)"]
            ),
            (
                "dh_item: UNIQUE dh_item_ratio_key (ratio)",
                vec!["ratio=-0: id=a (pulled); id=b (new)"]
            ),
        ],
        "{failed:#?}"
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).code(1);
        before.assert_same(&w.state(), "a refused push");
    }
}

/// A numeric primary key: `2.0` is the pulled `2` to Postgres. The working
/// copy compares it as a number (since the numeric collation), so the
/// phase's INSERT collides there, a failed check naming the table and key;
/// nothing is written.
#[test]
fn a_numeric_primary_key_equal_as_a_number_collides_in_the_rehearsal() {
    let w = item_world(
        "dom_numeric_pk",
        "CREATE TABLE public.dh_item (id numeric PRIMARY KEY, name text);
         INSERT INTO public.dh_item VALUES (2, 'two');",
        &["INSERT INTO dh_item VALUES ('2.0', 'two again');"],
    );
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let failed = common::failed_checks(&report);
    let names: Vec<(&str, Vec<&str>)> = failed
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), common::check_rows(c)))
        .collect();
    assert_eq!(
        names,
        [(
            "phase SQL runs",
            vec!["phases/1.sql:1: UNIQUE constraint failed: dh_item.id"]
        )],
        "{failed:#?}"
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).code(1);
        before.assert_same(&w.state(), "a refused push");
    }
}

/// Domain values in a row's JSON (`dh_tool_jsonb`, and so `tools.metadata`)
/// take the form Postgres's own `to_jsonb` gives them: a number for a
/// domain over int or numeric, an object for one over jsonb, a JSON array
/// of numbers for an array of a domain, the `T` form for a timestamptz
/// domain (before: every domain value was a JSON string). Compared with
/// Postgres's to_jsonb of the very rows, whole, in the rehearsal and after
/// the push; rollback leaves the whole database as it was.
#[test]
fn domain_values_in_row_json_are_as_postgres_to_jsonb_gives_them() {
    let w = World::loaded("dom_jsonb", "plan")
        .with_sql(
            "CREATE DOMAIN public.qty AS int CHECK (VALUE >= 0);
             CREATE DOMAIN public.price AS numeric(8,2);
             CREATE DOMAIN public.doc AS jsonb;
             CREATE DOMAIN public.seen AS timestamptz;
             CREATE DOMAIN public.flag AS boolean;
             ALTER TABLE public.dh_tool ADD COLUMN qty public.qty, ADD COLUMN price public.price,
               ADD COLUMN doc public.doc, ADD COLUMN seen public.seen, ADD COLUMN flag public.flag,
               ADD COLUMN qtys public.qty[];
             UPDATE public.dh_tool SET qty = 10, price = 9.5, doc = '{\"a\": [1, 2.50]}',
               seen = '2024-01-01 10:00:00+00', flag = true, qtys = '{1,NULL,30}'
               WHERE id = (SELECT id FROM public.dh_tool ORDER BY id LIMIT 1);",
        )
        .pulled();
    let before = w.state();
    let mut c = w.db.client();
    let want = common::tool_metadata_in_postgres(&mut c);
    assert!(
        want.iter().any(|r| r[1].contains("\"qty\": 10,")
            && r[1].contains("\"qtys\": [1, null, 30]")
            && r[1].contains("\"flag\": true")),
        "{want:?}"
    );
    w.rehearse(&[]).ok();
    for row in &want {
        let staged = common::staged_tool_metadata(&w.snapshot, &row[0]);
        let postgres: serde_json::Value = serde_json::from_str(&row[1]).unwrap();
        assert_eq!(staged, postgres, "tool {}", row[0]);
    }
    let receipt = w.push_confirmed();
    assert_eq!(
        common::count(
            &mut c,
            "SELECT count(*) FROM public.tools t JOIN public.dh_tool d USING (id) \
             WHERE t.metadata IS DISTINCT FROM to_jsonb(d) - 'id' - 'name'"
        ),
        0
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}
