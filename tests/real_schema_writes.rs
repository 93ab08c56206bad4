//! What Postgres does around the rows a push writes, beyond the rows
//! themselves: columns of types without an equality operator (json, xml,
//! point, box) and values Postgres prints in its own form (tsvector) must
//! push and roll back. Each test compares the whole database before and
//! after.

mod common;

use common::{item_world, World};

/// Pushes (preflight, then --confirm), checks `sql` reads `expected`
/// after the push, rolls back and checks the whole database is as before.
fn pushes_and_rolls_back(w: &World, sql: &str, expected: &[&[&str]]) {
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(&mut w.db.client(), sql),
        expected
            .iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        "after the push"
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

const TYPED: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     doc json, body xml, spot point, area box, docs json[]); \
     INSERT INTO public.dh_item VALUES \
     ('a', 'alpha', '{\"k\": 1}', '<b>1</b>', '(1,2)', '(1,1),(0,0)', ARRAY['[1]']::json[]), \
     ('b', 'beta', '{\"k\": 9}', '<b>9</b>', '(9,9)', '(9,9),(0,0)', NULL);";

/// The update's guard (the row still holds its pulled values) and the
/// rollback's (it still holds what the push wrote) compare json, xml,
/// point, box and json[] values by their text: these types have no `=`
/// (box's `=` compares areas). Before: the push failed after a green
/// rehearsal with `operator does not exist: json = json`, exit 2. The
/// `diff --sql` script guards its updates the same way: run with `psql -f`
/// on a copy, it gives the database the push gives.
#[test]
fn columns_without_an_equality_operator_are_updated_and_rolled_back() {
    let w = item_world(
        "writes_noeq",
        TYPED,
        &[
            "UPDATE dh_item SET doc = '{\"k\": 2}', body = '<b>2</b>', spot = '(3,4)', \
           area = '(2,2),(0,0)', docs = '{\"[2]\"}' WHERE id = 'a';",
        ],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(
        &w,
        "SELECT id, doc::text, body::text, spot::text, area::text, coalesce(docs::text, 'NULL') \
         FROM public.dh_item ORDER BY id",
        &[
            &[
                "a",
                "{\"k\": 2}",
                "<b>2</b>",
                "(3,4)",
                "(2,2),(0,0)",
                "{[2]}",
            ],
            &[
                "b",
                "{\"k\": 9}",
                "<b>9</b>",
                "(9,9)",
                "(9,9),(0,0)",
                "NULL",
            ],
        ],
    );

    let copy = common::TestDb::from_template(&w.db.name, "writes_noeq_copy");
    let script = w.dir.path().join("migration.sql");
    w.diff(&["--sql", script.to_str().unwrap()]).ok();
    let run = common::psql_file(&copy.url, &script);
    run.ok();
    assert!(!run.stderr.contains("ERROR"), "psql: {}", run.stderr);
    w.push_confirmed();
    w.state().without_schema("sandbox").assert_same(
        &common::whole_database_state(&copy.url).without_schema("sandbox"),
        "from the push to the diff --sql script",
    );
}

/// What Postgres prints for `input` read as `pg_type`.
fn postgres_text(client: &mut postgres_sync::Client, pg_type: &str, input: &str) -> String {
    client
        .query_one(&format!("SELECT $1::text::{pg_type}::text"), &[&input])
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("{input:?} as {pg_type}: {e}"))
}

/// Postgres sorts a tsvector's lexemes, keeps each once and merges their
/// positions: the rehearsal stages the text Postgres prints, so the value
/// the push wrote is not reported as changed after applying.
#[test]
fn a_tsvector_is_staged_as_postgres_prints_it() {
    let db = common::TestDb::create("writes_tsv_text");
    let mut client = db.client();
    for input in [
        "b a a",
        "a:2 a:1 b",
        "'b c' a:3,1,2",
        "x:1A x:1B y:2b,2 z:3d",
        "  'it''s' back\\slash  ",
        "'a\\'b' 'q\\\\'",
        "é:1 e:2 E",
        "",
        "a:99999",
        "w:1,1,1C",
        "'a':1 a",
    ] {
        let expected = postgres_text(&mut client, "tsvector", input);
        let staged = sandbox::plan::canonical::canonical_text("tsvector", ',', input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .unwrap_or_else(|| input.to_string());
        assert_eq!(staged, expected, "{input:?}");
    }
    for refused in ["a:0", "a:", "'a", "a:1x"] {
        let read = client.query_one("SELECT $1::text::tsvector::text", &[&refused]);
        let ours = sandbox::plan::canonical::canonical_text("tsvector", ',', refused);
        assert!(
            read.is_err() && ours.is_err(),
            "{refused:?}: Postgres {read:?}, rehearsal {ours:?}"
        );
    }
}

const SEARCHED: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     words tsvector); \
     INSERT INTO public.dh_item VALUES ('a', 'alpha', 'alpha'), ('b', 'beta', 'beta');";

/// A plan writing a tsvector in another order than Postgres prints it:
/// rehearsed in Postgres's form, pushed, rolled back (before: Postgres's
/// sorted text differed from the rehearsed row and the push refused after
/// applying).
#[test]
fn a_tsvector_the_plan_writes_is_pushed_and_rolled_back() {
    let w = item_world(
        "writes_tsv",
        SEARCHED,
        &[
            "UPDATE dh_item SET words = 'zeta alpha alpha:2 beta:1,1A' WHERE id = 'a'; \
           INSERT INTO dh_item VALUES ('c', 'gamma', 'b a');",
        ],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    pushes_and_rolls_back(
        &w,
        "SELECT id, words::text FROM public.dh_item ORDER BY id",
        &[
            &["a", "'alpha':2 'beta':1A 'zeta'"],
            &["b", "'beta'"],
            &["c", "'a' 'b'"],
        ],
    );
}

const DERIVED: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     search tsvector, slug text); \
     CREATE TRIGGER dh_item_search BEFORE INSERT OR UPDATE ON public.dh_item FOR EACH ROW \
     EXECUTE FUNCTION tsvector_update_trigger(search, 'pg_catalog.simple', name); \
     CREATE FUNCTION public.dh_item_slug() RETURNS trigger LANGUAGE plpgsql AS \
     $$BEGIN NEW.slug := lower(NEW.name); RETURN NEW; END$$; \
     CREATE TRIGGER dh_item_slug BEFORE INSERT OR UPDATE ON public.dh_item FOR EACH ROW \
     EXECUTE FUNCTION public.dh_item_slug(); \
     INSERT INTO public.dh_item (id, name) VALUES ('a', 'Alpha'), ('b', 'Beta');";

/// BEFORE triggers deriving columns the plan does not set (a
/// `tsvector_update_trigger`, a plpgsql `NEW.slug := lower(NEW.name)`):
/// Postgres fills them like a default. The push applies, its report names
/// each column and the triggers, the receipt holds Postgres's values, and
/// the rollback (the triggers derive them again) restores the whole
/// database. Before: every push writing `name` was refused after applying
/// ("dh_item equals the rehearsed state … column search").
#[test]
fn columns_a_before_trigger_derives_are_filled_by_postgres() {
    let w = item_world(
        "writes_derived",
        DERIVED,
        &["UPDATE dh_item SET name = 'Alpha One' WHERE id = 'a'; \
           INSERT INTO dh_item (id, name) VALUES ('c', 'Gamma');"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    w.push(&[])
        .ok()
        .stdout_has("dh_item.search: set by BEFORE trigger")
        .stdout_has("dh_item.slug: set by BEFORE trigger")
        .stdout_has("dh_item_search (function");
    before.assert_same(&w.state(), "preflight");
    let receipt = w.push_confirmed();
    assert_eq!(
        common::text_rows(
            &mut w.db.client(),
            "SELECT id, name, search::text, slug FROM public.dh_item ORDER BY id"
        ),
        [
            ["a", "Alpha One", "'alpha':1 'one':2", "alpha one"],
            ["b", "Beta", "'beta':1", "beta"],
            ["c", "Gamma", "'gamma':1", "gamma"],
        ]
    );
    w.rollback_restores(&receipt, &before, "push then rollback");
}

/// A trigger that changes a column the plan sets is still refused, naming
/// the trigger and the column, and nothing is written.
#[test]
fn a_before_trigger_changing_a_column_the_plan_sets_is_refused_by_name() {
    let w = item_world(
        "writes_overridden",
        DERIVED,
        &["UPDATE dh_item SET name = 'Alpha One', slug = 'my-slug' WHERE id = 'a';"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    w.push(&["--confirm"]).refused(&[
        "column slug: rehearsed 'my-slug', Postgres 'alpha one'",
        "dh_item_slug (function",
    ]);
    before.assert_same(&w.state(), "refused push");
}

const ITEMS: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL); \
     INSERT INTO public.dh_item VALUES ('a', 'alpha'), ('b', 'beta'); \
     CREATE TABLE public.dh_item_log (n serial PRIMARY KEY, id text, what text);";

/// A DO INSTEAD rule on a written table replaces the push's UPDATE or
/// DELETE (swallowed, or redirected to another table): refused before
/// anything is written, naming the rule, its event and DO INSTEAD, exit 1
/// (before: the push wrote, then said "the remote changed", which pulling
/// again does not fix).
#[test]
fn a_do_instead_rule_on_a_written_table_is_refused_by_name_before_writing() {
    for (tag, rule, phase, named) in [
        (
            "writes_rule_update",
            "CREATE RULE dh_item_frozen AS ON UPDATE TO public.dh_item DO INSTEAD NOTHING;",
            "UPDATE dh_item SET name = 'alpha-2' WHERE id = 'a';",
            "rule dh_item_frozen ON UPDATE TO dh_item (DO INSTEAD)",
        ),
        (
            "writes_rule_delete",
            "CREATE RULE dh_item_soft AS ON DELETE TO public.dh_item DO INSTEAD \
             INSERT INTO public.dh_item_log (id, what) VALUES (OLD.id, 'deleted');",
            "DELETE FROM dh_item WHERE id = 'b';",
            "rule dh_item_soft ON DELETE TO dh_item (DO INSTEAD)",
        ),
    ] {
        let w = item_world(tag, &format!("{ITEMS} {rule}"), &[phase]);
        w.rehearse(&[]).ok().stdout_has("PASSED");
        let before = w.state();
        for confirm in [&[][..], &["--confirm"][..]] {
            let run = w.push(confirm);
            run.refused(&[named, "nothing was written"]);
            assert!(!run.all().contains("remote changed"), "{}", run.show());
            before.assert_same(&w.state(), tag);
        }
    }
}

/// A DO ALSO rule on UPDATE fires for the push's UPDATE as for the app's:
/// listed in the report; its write is a side effect the user allows by
/// name, and the rollback restores the rows.
#[test]
fn a_do_also_update_rule_is_listed_and_fires() {
    let w = item_world(
        "writes_rule_also",
        &format!(
            "{ITEMS} CREATE RULE dh_item_audit AS ON UPDATE TO public.dh_item DO ALSO \
             INSERT INTO public.dh_item_log (id, what) VALUES (NEW.id, NEW.name);"
        ),
        &["UPDATE dh_item SET name = 'alpha-2' WHERE id = 'a';"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    w.push(&["--allow-writes", "public.dh_item_log"])
        .ok()
        .stdout_has("rule dh_item_audit ON UPDATE TO dh_item (DO ALSO)");
    before.assert_same(&w.state(), "preflight");
}

/// A BEFORE trigger whose column a rollback cannot bring back (a counter
/// of edits: restoring `name` counts one more): the push accepts the
/// column as Postgres's, but its rollback, rehearsed before COMMIT, would
/// leave the row unlike its pulled state, so the push is refused as
/// irreversible, naming row and column, and nothing is written.
#[test]
fn a_trigger_column_a_rollback_cannot_restore_makes_the_push_irreversible() {
    let w = item_world(
        "writes_counter",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
         edits int NOT NULL DEFAULT 0); \
         CREATE FUNCTION public.dh_item_count() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN NEW.edits := OLD.edits + 1; RETURN NEW; END$$; \
         CREATE TRIGGER dh_item_count BEFORE UPDATE ON public.dh_item FOR EACH ROW \
         EXECUTE FUNCTION public.dh_item_count(); \
         INSERT INTO public.dh_item (id, name) VALUES ('a', 'alpha'), ('b', 'beta');",
        &["UPDATE dh_item SET name = 'alpha-2' WHERE id = 'a';"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "would be refused",
            "--allow-irreversible",
            "row a: dh_item.edits is '2', the receipt recorded '0'",
            "dh_item_count",
        ]);
        before.assert_same(&w.state(), "a push whose rollback cannot restore");
    }
}
