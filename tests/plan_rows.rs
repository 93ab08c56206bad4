//! What a phase's statements mean for the rows the push writes: a REPLACE
//! of an existing row, a new row without its primary key. Each test
//! compares the whole database before and after.

mod common;

use common::{failed_checks, item_world, World};

fn rows(w: &World, sql: &str) -> Vec<Vec<String>> {
    common::text_rows(&mut w.db.client(), sql)
}

/// An app table: `created_at` and `token` are Postgres's (computed
/// defaults), `priority` has a constant default, `note` none.
const STAMPED: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     note text, priority int DEFAULT 5, \
     created_at timestamptz NOT NULL DEFAULT now(), token uuid DEFAULT gen_random_uuid()); \
     INSERT INTO public.dh_item (id, name, note, priority, created_at, token) VALUES \
     ('a', 'alpha', 'kept', 7, '2020-01-01 00:00:00+00', '11111111-1111-4111-8111-111111111111'), \
     ('b', 'beta', NULL, 8, '2020-02-02 00:00:00+00', '22222222-2222-4222-8222-222222222222');";

/// S12: `REPLACE INTO` (and `INSERT OR REPLACE`) of an existing row,
/// listing some columns, is an UPDATE of those columns: the others keep
/// what the row held. Before: SQLite's delete-and-insert left them at their
/// default, so the push wrote NULL over the app's `created_at` (the
/// rehearsal passed, push refused late on NOT NULL), 5 over `priority`.
#[test]
fn replace_of_an_existing_row_updates_only_the_columns_it_lists() {
    let w = item_world(
        "rows_replace",
        STAMPED,
        &[
            "INSERT OR IGNORE INTO dh_item (id, name) VALUES ('a', 'ignored'); \
             INSERT INTO dh_item (id, name) VALUES ('d', 'delta'); \
             REPLACE INTO dh_item (id, name) VALUES ('a', 'alpha-2'); \
             INSERT OR REPLACE INTO dh_item (id, name, note) VALUES ('b', 'beta-2', NULL), \
             ('c', 'gamma', 'new');",
        ],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        rows(
            &w,
            "SELECT id, name, coalesce(note, 'NULL'), coalesce(priority::text, 'NULL'), \
             coalesce(created_at::text, 'NULL'), coalesce(token::text, 'NULL') \
             FROM public.dh_item WHERE id IN ('a', 'b') ORDER BY id"
        ),
        [
            [
                "a",
                "alpha-2",
                "kept",
                "7",
                "2020-01-01 00:00:00+00",
                "11111111-1111-4111-8111-111111111111"
            ],
            [
                "b",
                "beta-2",
                "NULL",
                "8",
                "2020-02-02 00:00:00+00",
                "22222222-2222-4222-8222-222222222222"
            ],
        ]
    );
    // New rows got what Postgres fills and the constant default (`d`,
    // after an ignored insert of `a`, nothing of `a`'s).
    assert_eq!(
        rows(
            &w,
            "SELECT name, coalesce(note, 'NULL'), priority::text, \
             (created_at > '2021-01-01')::text, (token IS NOT NULL)::text \
             FROM public.dh_item WHERE id IN ('c', 'd') ORDER BY id"
        ),
        [
            ["gamma", "new", "5", "true", "true"],
            ["delta", "NULL", "5", "true", "true"]
        ]
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// The failed checks of a rehearsal that must fail: their names, and the
/// report. Push then refuses and writes nothing.
fn rehearsal_fails(w: &World) -> (Vec<String>, serde_json::Value) {
    let before = w.state();
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let names = failed_checks(&report)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).code(1).clear_error();
        before.assert_same(&w.state(), "a refused push");
    }
    (names, report)
}

/// S18: a new row that leaves out a primary key Postgres does not fill (no
/// default, no identity) fails the rehearsal's named check, naming the
/// table, its primary key and the row. Before: an integer key became
/// SQLite's rowid in the staged table and push said "rehearse again" for
/// ever; a text key made push exit 2 with a raw error.
#[test]
fn a_new_row_without_its_plain_primary_key_fails_the_named_check() {
    for (tag, key_type) in [("rows_nokey_int", "int"), ("rows_nokey_text", "text")] {
        let w = item_world(
            tag,
            &format!(
                "CREATE TABLE public.dh_item (id {key_type} PRIMARY KEY, name text NOT NULL); \
                 INSERT INTO public.dh_item VALUES ('1', 'alpha');"
            ),
            &["INSERT INTO dh_item (name) VALUES ('beta');"],
        );
        let (names, report) = rehearsal_fails(&w);
        assert_eq!(
            names,
            ["dh_item: new rows have a primary key set by the plan"],
            "{tag}: {report:#}"
        );
        let check = common::check_named(&report, &names[0]);
        let rows = common::check_rows(check);
        assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
        assert!(rows[0].contains("'beta'"), "{tag}: {rows:?}");
        let expected = check["expected"].as_str().unwrap();
        for words in ["dh_item_pkey", "id", "no default"] {
            assert!(expected.contains(words), "{tag}: {expected}");
        }
    }
}
/// S3: a new row leaving a serial primary key to Postgres fails the one
/// named check, once, and nothing else in the report says otherwise.
/// Before: the staged table made the integer key SQLite's rowid, which
/// numbered the row itself: the same check passed again at "constraints"
/// on the staged rows, and the preflight list claimed "1 new rows give it
/// values its sequence does not know" though the plan gave none.
#[test]
fn a_serial_key_left_to_postgres_fails_one_check_once() {
    let w = item_world(
        "rows_serial_key",
        "CREATE TABLE public.dh_item (id serial PRIMARY KEY, name text NOT NULL); \
         INSERT INTO public.dh_item (name) VALUES ('alpha');",
        &["INSERT INTO dh_item (name) VALUES ('beta'), ('gamma');"],
    );
    let (names, report) = rehearsal_fails(&w);
    assert_eq!(
        names,
        ["dh_item: new rows have a primary key set by the plan"],
        "{report:#}"
    );
    let rows = common::check_rows(common::check_named(&report, &names[0]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("'beta'") && rows[1].contains("'gamma'"),
        "{rows:?}"
    );
    let same_name: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == names[0].as_str())
        .collect();
    assert_eq!(same_name.len(), 1, "reported once: {same_name:#?}");
    let sequence: Vec<_> = common::preflight(&report)
        .into_iter()
        .filter(|(_, kind, _)| kind == "sequence")
        .collect();
    assert!(sequence.is_empty(), "the plan gives no ids: {sequence:?}");
}

/// H8 T4: a phase deletes a pulled row and inserts it again under its key,
/// leaving `created_at` and `token` to Postgres. The push writes it as an
/// UPDATE of the pulled row, which would have written NULL there (before:
/// rehearsal green, push committed NULL over both; NOT NULL: refused
/// late). Now a failed check names the row and columns, and nothing is
/// written.
#[test]
fn a_pulled_row_deleted_and_inserted_again_must_give_the_columns_postgres_fills() {
    let w = item_world(
        "rows_reinsert",
        STAMPED,
        &["DELETE FROM dh_item WHERE id = 'b'; \
           INSERT INTO dh_item (id, name) VALUES ('b', 'beta again'), ('e', 'epsilon');"],
    );
    let (run, report) = w.rehearse_json(&[]);
    run.code(1);
    let failed = failed_checks(&report);
    let named: Vec<(&str, Vec<&str>)> = failed
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), common::check_rows(c)))
        .collect();
    assert_eq!(
        named,
        [(
            "dh_item: pulled rows inserted again leave no column to Postgres",
            vec!["id=b: created_at, token"]
        )],
        "{failed:#?}"
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).code(1);
        before.assert_same(&w.state(), "a refused push");
    }
}
