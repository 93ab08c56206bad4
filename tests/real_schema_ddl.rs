//! Writes the row counters cannot see: DDL an app's trigger or event
//! trigger runs (through EXECUTE) and large objects, during push and
//! rollback. Each is refused by name and leaves the WHOLE database (every
//! table of every schema, columns, constraints, indexes, triggers) as it
//! was.

mod common;

use common::World;

/// The plan fixtures plus `extra` SQL, with the binary's one rehearsed
/// snapshot of the plain fixtures (the additions change no pulled table).
fn world(tag: &str, extra: &str) -> World {
    World::loaded(tag, "plan")
        .with_sql(extra)
        .with_shared_snapshot()
}

/// An AFTER INSERT trigger on `workflows` (which the plan writes) that
/// creates a table in another schema, adds a column to a table the plan
/// reads and indexes another: DDL through EXECUTE, no row written
/// anywhere the row counters look.
const DDL_TRIGGER: &str = "
CREATE SCHEMA app;
CREATE FUNCTION app.shape_things() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'CREATE TABLE IF NOT EXISTS app.ddl_made (id int PRIMARY KEY, note text)';
  EXECUTE 'ALTER TABLE public.agents ADD COLUMN IF NOT EXISTS touched boolean';
  EXECUTE 'CREATE INDEX IF NOT EXISTS personas_made_idx ON public.personas (id)';
  RETURN NULL;
END $$;
CREATE TRIGGER workflows_shape AFTER INSERT ON public.workflows
  FOR EACH ROW EXECUTE FUNCTION app.shape_things();";

/// R27: before, the push said every check held and committed the app
/// trigger's table, column and index along with the plan.
#[test]
fn ddl_run_by_an_app_trigger_refuses_the_push_by_name() {
    let w = world("ddl_trigger", DDL_TRIGGER);
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "no DDL or large object outside the plan",
            "table app.ddl_made",
            "table column public.agents.touched",
            "index public.personas_made_idx",
            "workflows_shape",
        ]);
        before.assert_same(&w.state(), "a refused push");
    }
    // The plan's own DDL (tables, keys, the added column and its foreign
    // key) is not named.
    let run = w.push(&[]);
    for own in [
        "public.tasks",
        "public.strategic_priorities",
        "strategic_priority_id",
    ] {
        let named = run
            .all()
            .lines()
            .filter(|l| l.contains("created or changed in this transaction"))
            .any(|l| l.contains(own));
        assert!(!named, "{own} is the plan's own DDL: {}", run.show());
    }
}

/// An event trigger that adds an audit trigger to every table the plan
/// creates: DDL on the plan's own tables that the plan does not run.
#[test]
fn an_event_trigger_adding_triggers_to_created_tables_is_named() {
    let w = world(
        "ddl_event",
        "CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE FUNCTION public.add_audit() RETURNS event_trigger LANGUAGE plpgsql AS $$
         DECLARE r record;
         BEGIN FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
           EXECUTE format('CREATE TRIGGER audit_stamp BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION public.noop()',
                          r.object_identity);
         END LOOP; END $$;
         CREATE EVENT TRIGGER add_audit ON ddl_command_end EXECUTE FUNCTION public.add_audit();",
    );
    let before = w.state();
    let run = w.push(&["--confirm"]);
    run.refused(&["trigger audit_stamp on public.tasks", "--allow-writes"]);
    before.assert_same(&w.state(), "a refused push");
}

/// The same check guards rollback: a trigger the app added after the push
/// that runs DDL when the undo deletes the pushed workflows.
#[test]
fn ddl_run_by_an_app_trigger_refuses_the_rollback_by_name() {
    let w = world("ddl_rollback", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE SCHEMA app;
         CREATE FUNCTION app.on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN EXECUTE 'CREATE TABLE IF NOT EXISTS app.graveyard (id uuid)'; RETURN OLD; END $$;
         CREATE TRIGGER workflows_graveyard AFTER DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.on_delete();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm)
            .refused(&["table app.graveyard", "no DDL or large object"]);
        before.assert_same(&w.state(), "a refused rollback");
    }
}
