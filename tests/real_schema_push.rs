//! Push and rollback against schemas that carry what real Supabase projects
//! add around the plan's tables: triggers, audit and history tables, event
//! triggers, app tables and views that depend on what the push writes, a
//! database `search_path` of `''`, a non-superuser owner role. Every test
//! compares the WHOLE database (every table of every schema, columns,
//! constraints, indexes, triggers with their enabled state) before and
//! after.

mod common;

use common::state::whole_database_state;
use common::TestDb;

/// The state capture itself sees a row written in any schema and a trigger
/// switched off: the other tests rely on it to prove "nothing changed".
#[test]
fn whole_database_state_sees_rows_in_any_schema_and_trigger_states() {
    let db = TestDb::create("state_capture");
    let mut c = db.client();
    c.batch_execute(
        "CREATE SCHEMA app; CREATE TABLE app.log (id serial PRIMARY KEY, msg text); \
         CREATE TABLE public.t (a int); \
         CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'; \
         CREATE TRIGGER t_noop BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION public.noop();",
    )
    .unwrap();
    let before = whole_database_state(&db.url);
    assert_eq!(before, whole_database_state(&db.url), "capture is stable");
    c.batch_execute("INSERT INTO app.log (msg) VALUES ('x')")
        .unwrap();
    let after = whole_database_state(&db.url);
    assert!(
        before.differences(&after).contains("app.log"),
        "{}",
        before.differences(&after)
    );
    c.batch_execute("INSERT INTO public.t VALUES (1), (1)")
        .unwrap();
    let dup = whole_database_state(&db.url);
    assert_eq!(
        dup.rows["public.t"].len(),
        2,
        "rows without a key are counted apart"
    );
    c.batch_execute("ALTER TABLE public.t DISABLE TRIGGER t_noop")
        .unwrap();
    let off = whole_database_state(&db.url);
    assert!(
        dup.differences(&off).contains("t_noop"),
        "{}",
        dup.differences(&off)
    );
    assert_eq!(off.without_schema("app").rows.len(), 1);
}
