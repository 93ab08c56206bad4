//! Push and rollback against schemas that carry what real Supabase projects
//! add around the plan's tables: triggers, audit and history tables, event
//! triggers, app tables and views that depend on what the push writes, a
//! database `search_path` of `''`, a read-only snapshot, a non-superuser
//! owner role. Every test compares the WHOLE database (every table of every
//! schema, columns, constraints, indexes, triggers with their enabled
//! state) before and after.

mod common;

use common::{sandbox, whole_database_state, Run, TestDb, TestRole, World};

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

/// The plan fixtures plus `extra` SQL (what real projects add), and the
/// binary's one rehearsed snapshot of the plain fixtures: the additions do
/// not change the pulled tables, so it matches.
fn world(tag: &str, extra: &str) -> World {
    World::loaded(tag, "plan")
        .with_sql(extra)
        .with_shared_snapshot()
}

/// The updated_at stamp of `jtbd_library` as a push's --json report lists it.
fn stamp_trigger(report: &serde_json::Value) -> &serde_json::Value {
    report["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "jtbd_library_set_updated_at")
        .expect("the stamp is listed")
}

// ---------------------------------------------------------------------------
// 10.4 triggers

const APPEND_ONLY: &str = "
CREATE FUNCTION public.jtbd_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'jtbd_library is append-only';
END $$;
CREATE TRIGGER jtbd_append_only BEFORE UPDATE ON public.jtbd_library
  FOR EACH ROW EXECUTE FUNCTION public.jtbd_append_only();";

#[test]
fn a_business_trigger_that_raises_refuses_the_push_by_name_and_changes_nothing() {
    let w = world("raising_trigger", APPEND_ONLY);
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "jtbd_append_only",
            "jtbd_library is append-only",
            "jtbd_library",
        ]);
        assert!(!run.all().contains("Pull again"), "{}", run.show());
        before.assert_same(&w.state(), "a push refused by a raising trigger");
    }
}

#[test]
fn a_held_off_trigger_must_be_a_proven_updated_at_stamp() {
    // The fixture's stamp replaced by one that also rewrites a title: the
    // plan still names it, the tool cannot prove it harmless, so it refuses
    // rather than skip what the trigger does.
    let w = world(
        "unproven_stamp",
        "CREATE OR REPLACE FUNCTION public.fixture_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.updated_at := now(); NEW.title := upper(NEW.title); RETURN NEW; END $$;",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["jtbd_library.jtbd_library_set_updated_at", "does more than"]);
    before.assert_same(&w.state(), "a refused preflight");
}

/// The fixture's stamp, given `SET search_path = app, pg_catalog`, where
/// the app has its own `now()` that writes a row: the stamp's `now()` is
/// `app.now()`. Before, the push proved it a pure updated_at stamp from
/// its text and held it off, so `app.now()` never ran for the push (no row
/// in app.now_calls) while it runs for every app update. Now it fires,
/// listed with why it was not held off, and its writes are accounted for
/// like any trigger's (refused until allowed); as it fires for the undo
/// too, the push is irreversible unless the plan stops naming it.
#[test]
fn a_stamp_whose_now_resolves_to_an_app_function_is_not_held_off() {
    let w = world(
        "shadowed_now",
        "CREATE SCHEMA app;
         CREATE TABLE app.now_calls (id serial PRIMARY KEY, at timestamptz);
         CREATE FUNCTION app.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO app.now_calls (at) VALUES (pg_catalog.now()); RETURN pg_catalog.now(); END $$;
         ALTER FUNCTION public.fixture_set_updated_at() SET search_path = app, pg_catalog;",
    );
    let before = w.state();
    let why = "not held off: its now() could call app.now() instead of pg_catalog.now(): the \
               search_path SET on the function `app, pg_catalog` searches app before pg_catalog";
    w.push(&[]).refused(&["app.now_calls"]);
    before.assert_same(&w.state(), "a refused preflight");
    // Its undo fires it too, moving updated_at again: the rollback
    // rehearsed before COMMIT cannot put the rows back as they were.
    let irreversible = ["--allow-writes", "app.now_calls", "--allow-irreversible"];
    w.push(&irreversible[..2])
        .refused(&["updated_at", "--allow-irreversible"]);
    before.assert_same(&w.state(), "a refused preflight");
    let run = w.push(&[&["--json", "--confirm"][..], &irreversible].concat());
    run.ok();
    let report = common::json_of(&run);
    let trigger = stamp_trigger(&report);
    assert_eq!(trigger["action"], "fires", "{trigger}");
    assert!(trigger["note"].as_str().unwrap().contains(why), "{trigger}");
    assert!(w.count("SELECT count(*) FROM app.now_calls") > 0);
}

/// The fixture's stamp with no search_path of its own, on a database
/// whose default path searches `app` (which has a `now()` writing a row)
/// before pg_catalog (W15). Before, the trigger note did not say the
/// function has no path of its own ("the app's default search_path …"),
/// and the rehearsed undo's refusal read "row jtbd00001 of jtbd_library is
/// missing after the undo" for each of the 105 rows, blaming the trigger
/// for firing "for the undo": the rows the push updated only in a column it
/// added were never read back, though only their updated_at differed. Now
/// the note says the function sets no search_path, the session's is the
/// app's, which path and where it is set; the refusal names the columns
/// that differ and says the column is the stamp's, with the same why.
#[test]
fn a_stamp_without_a_path_of_its_own_is_named_with_the_app_s_path() {
    let w = world(
        "shadowed_now_app_path",
        "CREATE SCHEMA app;
         CREATE TABLE app.now_calls (id serial PRIMARY KEY, at timestamptz);
         CREATE FUNCTION app.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO app.now_calls (at) VALUES (pg_catalog.now()); RETURN pg_catalog.now(); END $$;",
    );
    w.exec(&format!(
        "ALTER DATABASE {} SET search_path = app, pg_catalog, public",
        w.db.name
    ));
    let before = w.state();
    let why = "its now() could call app.now() instead of pg_catalog.now(): the function sets no \
               search_path of its own, so it runs under the session's, and the push's and the \
               undo's row writes run under the app's: the app's default search_path `app, \
               pg_catalog, public` searches app before pg_catalog (set by ALTER DATABASE ";
    let refused = w.push(&["--allow-writes", "app.now_calls"]);
    refused.refused(&[
        "columns that differ from the receipt: jtbd_library.updated_at in 105 rows",
        "jtbd_library.updated_at is the updated_at stamp: trigger jtbd_library_set_updated_at \
         fires for the push and the undo, not held off: its now() could call app.now()",
        "the function sets no search_path of its own",
        "--allow-irreversible",
    ]);
    assert!(
        !refused.all().contains("missing after the undo"),
        "{}",
        refused.show()
    );
    before.assert_same(&w.state(), "a refused preflight");
    let run = w.push(&[
        "--json",
        "--allow-writes",
        "app.now_calls",
        "--allow-irreversible",
    ]);
    run.ok();
    let report = common::json_of(&run);
    let trigger = stamp_trigger(&report);
    assert_eq!(trigger["action"], "fires", "{trigger}");
    let note = trigger["note"].as_str().unwrap();
    assert!(
        note.contains(why) && note.contains(&format!("{}\" SET search_path)", w.db.name)),
        "{trigger}"
    );
    before.assert_same(&w.state(), "a dry run");
}

/// The app switched the updated_at stamp of jtbd_library off (DISABLE
/// TRIGGER), or to replica only, and the plan names it in
/// hold_off_triggers. Before, the rehearsal failed with "no enabled trigger
/// of that name on jtbd_library; its triggers: none. If one of them stamps
/// updated_at, name it …" — the trigger is there, and the push would not
/// have held it off anyway — and the push said "disabled before the push".
/// Now the rehearsal passes, the push neither holds it off nor enables it
/// and says it is the app's doing, and push and rollback leave it as the
/// app set it.
#[test]
fn a_stamp_the_app_disabled_is_left_as_it_is_and_said_so() {
    for (mode, tgenabled, said) in [
        (
            "DISABLE",
            "D",
            "disabled by the app (DISABLE TRIGGER): fires for no one, so it is not held off \
             (the plan names it) but left disabled",
        ),
        (
            "ENABLE REPLICA",
            "R",
            "enabled by the app for replication only (ENABLE REPLICA): does not fire under \
             session_replication_role = origin",
        ),
    ] {
        let w = World::loaded(&format!("stamp_mode_{tgenabled}"), "plan")
            .with_sql(&format!(
                "ALTER TABLE public.jtbd_library {mode} TRIGGER jtbd_library_set_updated_at"
            ))
            .rehearsed();
        let before = w.state();
        let run = w.push(&["--json", "--confirm"]);
        run.ok();
        let report = common::json_of(&run);
        let trigger = stamp_trigger(&report);
        assert_eq!(trigger["action"], "does_not_fire", "{trigger}");
        assert!(
            trigger["note"].as_str().unwrap().contains(said),
            "{trigger}"
        );
        let state =
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'jtbd_library_set_updated_at'";
        assert_eq!(w.scalar(state), tgenabled);
        let receipt = report["receipt_id"]
            .as_str()
            .expect("a receipt")
            .to_string();
        w.rollback_restores(
            &receipt,
            &before,
            "rolled back, the trigger as the app set it",
        );
    }
}
/// An audit trigger, an event trigger and a rule the app enabled for
/// replication only (ENABLE REPLICA) fire under session_replication_role
/// = replica, never in the tool's sessions (pinned to origin). Before
/// (Q6), the side-effect search took them for writers like any enabled
/// one: the refusal of the write to `app.audit_log`, which an ordinary
/// audit trigger makes, also named the replica-only one, and an ON INSERT
/// rule enabled for replicas only refused the push. Now they are listed
/// as not firing, never named as writers, and write nothing.
#[test]
fn triggers_and_rules_enabled_for_replication_only_are_not_writers() {
    let w = world(
        "replica_only_writers",
        "CREATE SCHEMA app;
         CREATE TABLE app.audit_log (id bigserial PRIMARY KEY, tbl text, op text, via text);
         CREATE TABLE app.ddl_log (id bigserial PRIMARY KEY, tag text);
         CREATE TABLE app.rule_log (id bigserial PRIMARY KEY, name text);
         CREATE FUNCTION app.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO app.audit_log (tbl, op, via) VALUES (TG_TABLE_NAME, TG_OP, TG_NAME);
           RETURN NULL;
         END $$;
         CREATE TRIGGER workflows_audit AFTER INSERT OR DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.log_row();
         CREATE TRIGGER workflows_replica_audit AFTER INSERT OR UPDATE OR DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.log_row();
         ALTER TABLE public.workflows ENABLE REPLICA TRIGGER workflows_replica_audit;
         CREATE FUNCTION app.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO app.ddl_log (tag) VALUES (tg_tag);
         END $$;
         CREATE EVENT TRIGGER replica_ddl_log ON ddl_command_end EXECUTE FUNCTION app.log_ddl();
         ALTER EVENT TRIGGER replica_ddl_log ENABLE REPLICA;
         CREATE RULE workflows_replica_rule AS ON INSERT TO public.workflows
           DO ALSO INSERT INTO app.rule_log (name) VALUES (NEW.name);
         ALTER TABLE public.workflows ENABLE REPLICA RULE workflows_replica_rule;",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["app.audit_log", "workflows_audit", "--allow-writes"]);
    let silent = [
        "workflows_replica_audit",
        "replica_ddl_log",
        "workflows_replica_rule",
    ];
    let listed_as_silent = |run: &Run| {
        let all = run.all();
        for writer in silent {
            for line in all.lines().filter(|l| l.contains(writer)) {
                assert!(
                    line.contains("does not fire"),
                    "{writer} named as if it fired: {line}\n{}",
                    run.show()
                );
            }
        }
        assert!(
            !all.contains("app.ddl_log") && !all.contains("app.rule_log"),
            "{}",
            run.show()
        );
    };
    listed_as_silent(&run);
    before.assert_same(&w.state(), "a refused preflight");
    let allow = ["--allow-writes", "app.audit_log"];
    let run = w.push(&[&["--confirm"][..], &allow[..]].concat());
    run.ok()
        .stdout_has("(DO ALSO; enabled for replication only: does not fire for the push)");
    listed_as_silent(&run);
    for (log, rows) in [
        ("app.audit_log WHERE via = 'workflows_audit'", 227),
        ("app.audit_log WHERE via <> 'workflows_audit'", 0),
        ("app.ddl_log", 0),
        ("app.rule_log", 0),
    ] {
        assert_eq!(
            w.count(&format!("SELECT count(*) FROM {log}")),
            rows,
            "{log}"
        );
    }
    w.rollback(&run.receipt(), &[&["--confirm"][..], &allow[..]].concat())
        .ok();
    assert_eq!(
        w.count(
            "SELECT count(*) FROM app.audit_log WHERE op = 'DELETE' AND via = 'workflows_audit'"
        ),
        227
    );
    let mut expected = before.without_schema("sandbox");
    let mut after = w.state().without_schema("sandbox");
    expected.rows.remove("app.audit_log");
    after.rows.remove("app.audit_log");
    expected.assert_same(&after, "push then rollback, the app's audit log aside");
}

/// An app's event trigger that disables the `updated_at` stamp whenever
/// an ALTER TABLE on `jtbd_library` finds it enabled: it fires on the
/// push's own ENABLE after the hold-off (and on the rollback's).
const KEEPS_THE_STAMP_OFF: &str = "
CREATE SCHEMA app;
CREATE FUNCTION app.keep_off() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
             WHERE c.object_identity = 'public.jtbd_library')
     AND EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.jtbd_library'::regclass
                 AND tgname = 'jtbd_library_set_updated_at' AND tgenabled <> 'D')
  THEN EXECUTE 'ALTER TABLE public.jtbd_library DISABLE TRIGGER jtbd_library_set_updated_at';
  END IF;
END $$;
CREATE EVENT TRIGGER keep_off ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION app.keep_off();";

/// R6: the DDL check took every write of a held-off trigger's catalog row
/// for the tool's own DISABLE and ENABLE, so the push above exited 0
/// ("0 failed") and left the stamp disabled for every later app UPDATE.
/// Now the trigger's state just before COMMIT is compared with its state
/// before the push: push and rollback refuse by name, changing nothing.
#[test]
fn a_held_off_stamp_left_disabled_by_an_event_trigger_refuses_push_and_rollback() {
    let w = world("stamp_kept_off", KEEPS_THE_STAMP_OFF);
    let before = w.state();
    let state =
        "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'jtbd_library_set_updated_at'";
    assert_eq!(w.scalar(state), "O");
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "trigger jtbd_library_set_updated_at on public.jtbd_library: enabled before the push, \
             disabled now",
        ]);
        before.assert_same(&w.state(), "a push whose stamp an event trigger kept off");
    }
    // Pushed without the event trigger, rolled back with it.
    w.exec("ALTER EVENT TRIGGER keep_off DISABLE");
    let receipt = w.push_confirmed();
    w.exec("ALTER EVENT TRIGGER keep_off ENABLE");
    let pushed = w.state();
    w.rollback(&receipt, &["--confirm"]).refused(&[
        "trigger jtbd_library_set_updated_at on public.jtbd_library: enabled before the \
         rollback, disabled now",
    ]);
    pushed.assert_same(
        &w.state(),
        "a rollback whose stamp an event trigger kept off",
    );
    assert_eq!(w.scalar(state), "O");
    w.exec("ALTER EVENT TRIGGER keep_off DISABLE");
    w.rollback(&receipt, &["--confirm"]).ok();
    w.exec("ALTER EVENT TRIGGER keep_off ENABLE");
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "pushed and rolled back while the event trigger was disabled",
    );
}

#[test]
fn a_moddatetime_stamp_is_held_off_and_restored() {
    let w = world(
        "moddatetime",
        "CREATE EXTENSION moddatetime;
         DROP TRIGGER jtbd_library_set_updated_at ON public.jtbd_library;
         CREATE TRIGGER jtbd_library_set_updated_at BEFORE UPDATE ON public.jtbd_library
           FOR EACH ROW EXECUTE FUNCTION moddatetime(updated_at);
         ALTER TABLE public.jtbd_library ENABLE ALWAYS TRIGGER jtbd_library_set_updated_at;",
    );
    let before = w.state();
    let run = w.push(&["--confirm"]);
    run.ok().stdout_has("held off");
    let after = w.state();
    // Every jtbd row the push did not link kept its updated_at; the
    // trigger is back in its ALWAYS mode.
    assert!(
        after
            .shape
            .iter()
            .any(|l| l.contains("jtbd_library_set_updated_at enabled=A")),
        "{:?}",
        after
            .shape
            .iter()
            .filter(|l| l.contains("trigger"))
            .collect::<Vec<_>>()
    );
    w.rollback_restores(&run.receipt(), &before, "push then rollback");
}

/// The rollback's line naming the stamps it held off.
const HELD_OFF_LINE: &str = "Held off while restoring values (proven updated_at stamps named by \
                             the receipt; every other trigger fired): ";

/// h2 (issue 10): after a push that inserted rows and filled a column it
/// added to `jtbd_library` (dropped again by the rollback: no value
/// written back, no DISABLE run), the rollback said "Held off while
/// restoring values …: jtbd_library.jtbd_library_set_updated_at". Now it
/// names a stamp only when it restored values of its table, under the
/// hold-off (a plan that also retitles a row: the stamp stays off, so the
/// row's updated_at is as before the push).
#[test]
fn rollback_says_it_held_a_stamp_off_only_when_it_restored_values() {
    let w = world("rollback_held_off_line", "");
    let before = w.state();
    let receipt = w.push_confirmed();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.ok().stdout_has("restored rows []");
        assert!(
            !run.all().contains("Held off"),
            "nothing was restored, nothing held off: {}",
            run.show()
        );
    }
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "pushed and rolled back",
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = common::plan_folder(dir.path(), |p| {
        let tables = &mut p["tables"];
        tables["protected"]
            .as_array_mut()
            .unwrap()
            .retain(|t| t != "jtbd_library");
        tables["sources"]
            .as_array_mut()
            .unwrap()
            .push("jtbd_library".into());
    });
    let phase = plan.join("phases/1_strategic_priorities.sql");
    let sql = std::fs::read_to_string(&phase).unwrap();
    std::fs::write(
        &phase,
        format!(
            "{sql}\nUPDATE jtbd_library SET title = title || ' (pushed)' WHERE id = 'jtbd00001';\n"
        ),
    )
    .unwrap();
    let w = World::loaded("rollback_held_off_line_retitled", "plan")
        .with_plan(&plan)
        .rehearsed();
    let before = w.state();
    let receipt = w.push_confirmed();
    let run = w.rollback(&receipt, &[]);
    run.ok()
        .stdout_has("restored rows [1 of jtbd_library]")
        .stdout_has(&format!(
            "{HELD_OFF_LINE}jtbd_library.jtbd_library_set_updated_at"
        ));
    w.rollback_restores(&receipt, &before, "retitled, then rolled back");
}

// ---------------------------------------------------------------------------
// 10.5 every write accounted for

const HISTORY: &str = "
CREATE TABLE public.jtbd_history (id bigserial PRIMARY KEY, jtbd_id text, old_title text);
CREATE FUNCTION public.jtbd_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.jtbd_history (jtbd_id, old_title) VALUES (OLD.id::text, OLD.title);
  RETURN NEW;
END $$;
CREATE TRIGGER jtbd_keep_history BEFORE UPDATE ON public.jtbd_library
  FOR EACH ROW EXECUTE FUNCTION public.jtbd_keep_history();";

#[test]
fn a_history_trigger_fires_and_its_rows_are_refused_unless_allowed() {
    let w = world("history_trigger", HISTORY);
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["public.jtbd_history", "105 rows", "--allow-writes"]);
    before.assert_same(&w.state(), "a refused preflight");

    let run = w.push(&["--confirm", "--allow-writes", "jtbd_history"]);
    run.ok()
        .stdout_has("jtbd_keep_history")
        .stdout_has("public.jtbd_history: 105 rows");
    // The trigger list, piped (h10): each trigger's name, events and what
    // the push does with it stay whole on one line; only the why is cut.
    for (name, action) in [
        ("jtbd_library_set_updated_at", "held off"),
        ("jtbd_keep_history", "fires"),
    ] {
        assert!(
            run.stdout.lines().any(|l| l.contains(&format!(" {name} "))
                && l.contains(action)
                && l.contains("UPDATE")),
            "{name} {action}: {}",
            run.show()
        );
    }
    assert_eq!(w.count("SELECT count(*) FROM public.jtbd_history"), 105);
    let side: String = w.scalar("SELECT undo->'side_effects'->0->>'table' FROM sandbox.receipts");
    assert_eq!(
        side, "public.jtbd_history",
        "the receipt lists the side effect"
    );

    // The rollback drops the linked column (no row update, so the
    // trigger does not fire) and leaves the allowed side effect alone;
    // everything else is back as it was.
    w.rollback(&run.receipt(), &["--confirm"]).ok();
    let mut after = w.state().without_schema("sandbox");
    assert_eq!(after.rows["public.jtbd_history"].len(), 105);
    after.rows.remove("public.jtbd_history");
    let mut expected = before.without_schema("sandbox");
    expected.rows.remove("public.jtbd_history");
    expected.assert_same(&after, "push then rollback, history aside");
}

#[test]
fn audit_and_event_trigger_writes_in_any_schema_are_refused_unless_allowed() {
    let w = world(
        "audit_event",
        "CREATE SCHEMA audit;
         CREATE TABLE audit.audit_log (id bigserial, tbl text, op text, row_id text, PRIMARY KEY (id, op))
           PARTITION BY LIST (op);
         CREATE TABLE audit.audit_log_insert PARTITION OF audit.audit_log FOR VALUES IN ('INSERT');
         CREATE FUNCTION audit.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO audit.audit_log (tbl, op, row_id) VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text); RETURN NULL; END $$;
         CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION audit.log_row();
         CREATE TABLE public.ddl_log (id bigserial PRIMARY KEY, tag text, object text);
         CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
         DECLARE r record;
         BEGIN FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
           INSERT INTO public.ddl_log (tag, object) VALUES (r.command_tag, r.object_identity); END LOOP; END $$;
         CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl();",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["audit.audit_log", "227 rows", "public.ddl_log"]);
    before.assert_same(&w.state(), "a refused preflight");
    let run = w.push(&["--confirm", "--allow-writes", "audit.audit_log"]);
    run.refused(&["public.ddl_log"]);
    assert!(
        !run.all().contains("audit.audit_log: 227 rows ("),
        "{}",
        run.show()
    );
    before.assert_same(&w.state(), "a refused push");
    let run = w.push(&[
        "--confirm",
        "--allow-writes",
        "audit.audit_log",
        "--allow-writes",
        "ddl_log",
    ]);
    run.ok()
        .stdout_has("audit.audit_log: 227 rows")
        .stdout_has("log_ddl")
        .stdout_has("workflows_audit");
    assert_eq!(w.count("SELECT count(*) FROM audit.audit_log"), 227);
    let ddl_rows = w.count("SELECT count(*) FROM public.ddl_log");
    assert!(ddl_rows > 0, "the event trigger logged the push's DDL");
    // The rollback's DROPs fire the event trigger too: allowed, because the
    // push was allowed to write there; the audit rows stay. The undo is
    // run as the push printed it, and records itself in the snapshot.
    // The advised undo carries none of the push's consents (V1): the
    // event trigger's inserts are inherited; a delete there would need the
    // rollback's own --allow-writes.
    let undo = run.advised_args("undo with: ");
    assert!(undo.contains(&"--snapshot".to_string()), "{undo:?}");
    assert!(!undo.contains(&"--allow-writes".to_string()), "{undo:?}");
    let undo: Vec<&str> = undo.iter().map(String::as_str).collect();
    w.run_exported(&undo).ok().stdout_has("public.ddl_log");
    let receipts =
        common::json_of(&w.run_exported(&["receipts", "--json", "--snapshot", w.snap()]));
    assert_eq!(
        receipts["receipts"][0]["snapshot_status"], "rolled_back",
        "the snapshot records the rollback: {receipts}"
    );
    assert!(w.count("SELECT count(*) FROM public.ddl_log") > ddl_rows);
    assert_eq!(w.count("SELECT count(*) FROM audit.audit_log"), 227);
}

#[test]
fn rollback_accounts_for_every_write_too() {
    let w = world("rollback_writes", "");
    let receipt = w.push_confirmed();
    // After the push, the app adds a trigger logging deletes elsewhere.
    w.exec(
        "CREATE SCHEMA app;
         CREATE TABLE app.deleted_workflows (id uuid PRIMARY KEY, name text);
         CREATE FUNCTION app.keep_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO app.deleted_workflows VALUES (OLD.id, OLD.name); RETURN OLD; END $$;
         CREATE TRIGGER workflows_keep_deleted AFTER DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.keep_deleted();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "app.deleted_workflows",
            "227 rows",
            "--allow-writes",
        ]);
        before.assert_same(&w.state(), "a refused rollback");
    }
    w.rollback(
        &receipt,
        &["--confirm", "--allow-writes", "app.deleted_workflows"],
    )
    .ok()
    .stdout_has("app.deleted_workflows: 227 rows");
    assert_eq!(w.count("SELECT count(*) FROM app.deleted_workflows"), 227);
}

/// V9: an app table with a foreign key `ON DELETE SET NULL` into
/// `workflows`, and a statement trigger on `workflows` deleting rows of it.
/// The plan deletes no workflow, and SET NULL would update, not delete: the
/// write is the trigger's, named as such. Before: blamed on the foreign key
/// ("written by Postgres through foreign key … the plan deletes or re-keys
/// rows of public.workflows"), the trigger unnamed.
#[test]
fn a_trigger_write_is_not_blamed_on_a_foreign_key_the_plan_never_fires() {
    let w = world(
        "fk_not_blamed",
        "CREATE SCHEMA app;
         CREATE TABLE app.workflow_tags (id serial PRIMARY KEY,
           workflow_id uuid REFERENCES public.workflows ON DELETE SET NULL, tag text);
         INSERT INTO app.workflow_tags (workflow_id, tag)
           SELECT id, 'keepme' || row_number() OVER (ORDER BY id) FROM public.workflows LIMIT 2;
         CREATE FUNCTION app.deferred_hook() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN DELETE FROM app.workflow_tags WHERE tag LIKE 'keepme%'; RETURN NULL; END $$;
         CREATE TRIGGER wf_plain AFTER INSERT ON public.workflows
           FOR EACH STATEMENT EXECUTE FUNCTION app.deferred_hook();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "app.workflow_tags: 2 rows (0 inserted, 0 updated, 2 deleted) — outside the plan's \
             write set (written by trigger wf_plain on public.workflows",
            "--allow-writes app.workflow_tags",
        ]);
        assert!(
            !run.all().contains("written by Postgres through"),
            "{}",
            run.show()
        );
        before.assert_same(&w.state(), "a push refused for a trigger's write");
    }
}

// ---------------------------------------------------------------------------
// 10.3 the preflight is the real transaction

#[test]
fn the_preflight_names_a_constraint_the_new_rows_break() {
    let w = world(
        "preflight_check",
        "ALTER TABLE public.workflows ADD CONSTRAINT workflows_name_short CHECK (length(name) < 12) NOT VALID;",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["workflows_name_short", "workflows", "row id="]);
    assert_ne!(run.code, 2);
    before.assert_same(&w.state(), "a refused preflight");
}

/// A BEFORE trigger that rewrites a value the plan writes: the rows on
/// Postgres then differ from the rehearsed ones, and the refusal names the
/// row, the column, both values and the trigger behind it. (jtbd_retitle
/// changes `title`, which the plan sets in no row: a column Postgres fills
/// for the push, not a mismatch — see tests/real_schema_writes.rs.)
#[test]
fn a_trigger_that_rewrites_a_written_value_is_named_with_row_column_and_values() {
    let w = world(
        "rewriting_trigger",
        "CREATE FUNCTION public.workflow_name_upper() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$;
         CREATE TRIGGER workflows_name_upper BEFORE INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.workflow_name_upper();
         CREATE FUNCTION public.jtbd_retitle() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.id = 'jtbd00002' THEN NEW.title := NEW.title || ' (reviewed)'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER jtbd_retitle BEFORE UPDATE ON public.jtbd_library
           FOR EACH ROW EXECUTE FUNCTION public.jtbd_retitle();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "workflows row id=",
            "(inserted by the push): column name: rehearsed '",
            "BEFORE INSERT trigger workflows_name_upper (function workflow_name_upper())",
            "what to do: make the plan write the values Postgres ends up with",
            "only if it is a pure updated_at stamp",
        ]);
        assert!(
            !run.all().contains("jtbd_library row id="),
            "{}",
            run.show()
        );
        before.assert_same(&w.state(), "a push refused after applying");
    }
}

/// A counter cache (h5 F6): a trigger on one written table updating
/// another written table. The rows differ from the rehearsal and the write
/// count is off; both name the trigger on the other table, not "a rule, a
/// domain, the column's type".
#[test]
fn a_counter_cache_trigger_on_another_written_table_is_named_as_the_cause() {
    let w = world(
        "counter_cache",
        "CREATE FUNCTION public.bump_usage() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN UPDATE public.jtbd_library SET usage_count = usage_count + 1
               WHERE id = NEW.definition->>'jtbd_library_id'; RETURN NULL; END $$;
         CREATE TRIGGER wf_bump AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.bump_usage();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "likely cause: trigger wf_bump on public.workflows (function bump_usage()) \
             fires for the push's writes and names jtbd_library",
            "public.jtbd_library: something besides the plan wrote rows here; functions that name \
             it run for the push's writes: trigger wf_bump on public.workflows",
        ]);
        assert!(
            !run.all().contains("a rule, a domain, the column's type"),
            "{}",
            run.show()
        );
        before.assert_same(&w.state(), "a push refused for a counter cache");
    }
}

/// Postgres's error for a refused UPDATE names no row (a trigger's RAISE)
/// or names it only in its detail (a CHECK): the push finds the row by
/// re-running the batch in halves and names it by key.
#[test]
fn an_update_refused_by_a_check_or_a_trigger_names_the_row_by_key() {
    let w = world(
        "update_check_row",
        "ALTER TABLE public.jtbd_library ADD CONSTRAINT jtbd_not_42 CHECK (id <> 'jtbd00042') NOT VALID;",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&[
        "phase 1: updating jtbd_library: row id=jtbd00042",
        "constraint jtbd_not_42",
    ]);
    before.assert_same(&w.state(), "a refused preflight");

    let w = world(
        "update_trigger_row",
        "CREATE FUNCTION public.jtbd_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF OLD.id = 'jtbd00077' THEN RAISE EXCEPTION 'this JTBD is frozen'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER jtbd_frozen BEFORE UPDATE ON public.jtbd_library
           FOR EACH ROW EXECUTE FUNCTION public.jtbd_frozen();",
    );
    let before = w.state();
    let run = w.push(&["--confirm"]);
    run.refused(&[
        "phase 1: updating jtbd_library: row id=jtbd00077",
        "this JTBD is frozen",
        "raised by trigger jtbd_library.jtbd_frozen",
    ]);
    before.assert_same(&w.state(), "a refused push");
}

/// A trigger's RAISE during the COPY of new rows: the error's context
/// holds the function's line before the COPY's; the row named is the one
/// at the COPY's line.
#[test]
fn an_insert_refused_by_a_trigger_names_the_row_copy_stopped_at() {
    let w = world(
        "insert_trigger_row",
        "CREATE FUNCTION public.workflow_refused() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id = '053caef0-979d-5f0b-95fb-b721a386b995' THEN RAISE EXCEPTION 'not this one'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER workflows_refused BEFORE INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.workflow_refused();",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&[
        "(row id=053caef0-979d-5f0b-95fb-b721a386b995)",
        "not this one",
        "raised by trigger workflows.workflows_refused",
    ]);
    before.assert_same(&w.state(), "a refused preflight");
}

/// V6: an app trigger failing with an error that is no RAISE and no
/// constraint (here a DROP of a function that does not exist, SQLSTATE
/// 42883) is Postgres refusing the push too. Before: a raw "db error:
/// ERROR:" and exit 2, as if the environment were wrong; now exit 1 naming
/// the trigger, nothing written.
#[test]
fn an_app_trigger_failing_otherwise_than_by_raise_refuses_by_name() {
    let w = world(
        "trigger_fails",
        "CREATE FUNCTION public.workflow_hook() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN EXECUTE 'DROP FUNCTION public.no_such_function()'; RETURN NULL; END $$;
         CREATE TRIGGER workflows_hook AFTER INSERT ON public.workflows
           FOR EACH STATEMENT EXECUTE FUNCTION public.workflow_hook();",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&[
        "no_such_function",
        "SQLSTATE 42883",
        "raised by trigger workflows.workflows_hook",
    ]);
    assert!(!run.all().contains("db error"), "{}", run.show());
    before.assert_same(&w.state(), "a refused preflight");
}

#[test]
fn missing_privileges_are_named_before_any_lock() {
    // Declared first, so it is dropped after the database holding its grants.
    let reader = TestRole::create("reader", "LOGIN");
    let role = reader.name.clone();
    let w = world("privileges", "");
    w.exec(&format!(
        "GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT UPDATE ON public.workflows TO {role};"
    ));
    let before = w.state();
    let url = w.url().replacen("postgres@", &format!("{role}@"), 1);
    let run = w.push_as(&url, &[]);
    run.refused(&[
        "lacks privileges",
        "INSERT on public.\"workflows\" (to insert 227 rows)",
        "ownership of public.\"jtbd_library\" (owned by postgres; to add column",
        "CREATE on schema public",
    ]);
    before.assert_same(&w.state(), "a refused preflight");
}

// ---------------------------------------------------------------------------
// 10.6 rollback never destroys what it did not write

#[test]
fn rollback_refuses_while_app_rows_reference_pushed_workflows() {
    let w = world("app_fks", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE SCHEMA app;
         CREATE TABLE app.workflow_runs (id serial PRIMARY KEY,
           workflow_id uuid REFERENCES public.workflows(id) ON DELETE CASCADE);
         CREATE TABLE public.workflow_notes (id serial PRIMARY KEY,
           workflow_id uuid REFERENCES public.workflows(id) ON DELETE SET NULL);
         CREATE TABLE public.workflow_pins (id serial PRIMARY KEY,
           workflow_id uuid CONSTRAINT pins_wf REFERENCES public.workflows(id) ON DELETE RESTRICT);
         INSERT INTO app.workflow_runs (workflow_id)
           SELECT id FROM public.workflows WHERE definition->>'source' = 'dh_workflow' LIMIT 3;
         INSERT INTO public.workflow_notes (workflow_id)
           SELECT id FROM public.workflows WHERE definition->>'source' = 'dh_workflow' LIMIT 2;
         INSERT INTO public.workflow_pins (workflow_id)
           SELECT id FROM public.workflows WHERE definition->>'source' = 'dh_workflow' LIMIT 1;
         -- An app row pointing at a workflow that was there before the push
         -- blocks nothing.
         INSERT INTO public.workflow_notes (workflow_id)
           SELECT id FROM public.workflows WHERE definition->>'source' IS DISTINCT FROM 'dh_workflow' LIMIT 1;",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "3 rows of app.workflow_runs",
            "workflow_runs_workflow_id_fkey",
            "ON DELETE CASCADE",
            "2 rows of public.workflow_notes",
            "ON DELETE SET NULL",
            "1 row of public.workflow_pins references",
            "pins_wf",
            "did not write",
        ]);
        before.assert_same(&w.state(), "a refused rollback");
    }
    // Once the app lets go of the pushed rows, the rollback goes through.
    w.exec(
        "DELETE FROM app.workflow_runs; DELETE FROM public.workflow_pins; \
         DELETE FROM public.workflow_notes WHERE workflow_id IN \
           (SELECT id FROM public.workflows WHERE definition->>'source' = 'dh_workflow')",
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    assert_eq!(w.count("SELECT count(*) FROM public.workflow_notes"), 1);
}

#[test]
fn rollback_refuses_while_a_view_depends_on_a_created_table() {
    let w = world("view_on_tasks", "");
    let receipt = w.push_confirmed();
    w.exec("CREATE VIEW public.open_tasks AS SELECT * FROM public.tasks");
    let before = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&["— view open_tasks depends on table tasks", "did not write"]);
    before.assert_same(&w.state(), "a refused rollback");

    // A receipt in a format this build does not know is refused by name.
    w.exec("DROP VIEW public.open_tasks");
    w.exec("UPDATE sandbox.receipts SET undo = jsonb_set(undo, '{format}', '99')");
    let before = w.state();
    w.rollback(&receipt, &["--confirm"])
        .refused(&["undo format 99"]);
    before.assert_same(&w.state(), "a refused rollback");
}

/// h12 F8: the index Supabase's advisor asks for on each new foreign key,
/// added by the app after the push, blocks the rollback (it drops only
/// what the push made) — said as an object the app added, not as "data it
/// did not write"; once the index is dropped the rollback restores the
/// database.
#[test]
fn an_index_the_app_added_on_a_new_foreign_key_is_named_as_an_object_not_data() {
    let w = world("index_on_new_fk", "");
    let before_push = w.state();
    let receipt = w.push_confirmed();
    w.exec("CREATE INDEX tasks_workflow_id_idx ON public.tasks (workflow_id)");
    let before = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "the app added objects on what the push made",
        "index tasks_workflow_id_idx depends on table tasks",
        "They hold no data",
        "drop them first",
    ]);
    assert!(
        !run.all().contains("data it did not write"),
        "{}",
        run.show()
    );
    before.assert_same(&w.state(), "a refused rollback");
    w.exec("DROP INDEX public.tasks_workflow_id_idx");
    w.rollback(&receipt, &["--confirm"]).ok();
    before_push.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "push, index dropped, rollback",
    );
}

// ---------------------------------------------------------------------------
// 10.7, 10.8, 10.10

#[test]
fn an_existing_unrelated_table_is_named_without_advising_to_pull_again() {
    let w = world(
        "existing_tasks",
        "CREATE TABLE public.tasks (id serial PRIMARY KEY, title text);",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["table tasks already exists", "pulling again will not"]);
    assert!(!run.all().contains("Pull again"), "{}", run.show());
    assert!(!run.all().contains("fresh snapshot"), "{}", run.show());
    before.assert_same(&w.state(), "a refused preflight");
}

#[test]
fn an_empty_database_search_path_behaves_like_the_default() {
    let w = world("empty_search_path", "");
    let db = w.db.name.clone();
    w.exec(&format!("ALTER DATABASE \"{db}\" SET search_path = ''"));
    let before = w.state();
    let run = w.push(&["--confirm"]);
    run.ok();
    w.rollback_restores(&run.receipt(), &before, "push then rollback");
}

/// An app whose database path is `app, public`, with an audit table in
/// each schema, a trigger function writing an unqualified `audit_log`, and
/// the key of `jtbd_library` (whose rows the plan updates) of a type in
/// `extensions`, a schema the app's path does not hold.
const APP_PATH_AUDIT: &str = "
CREATE SCHEMA extensions;
CREATE EXTENSION citext SCHEMA extensions;
ALTER TABLE public.jtbd_library ALTER COLUMN id TYPE extensions.citext;
CREATE SCHEMA app;
CREATE TABLE app.audit_log (id bigserial PRIMARY KEY, tbl text, op text, row_id text);
CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, tbl text, op text, row_id text);
CREATE FUNCTION public.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO audit_log (tbl, op, row_id) VALUES (TG_TABLE_NAME, TG_OP, OLD.id::text);
  ELSE
    INSERT INTO audit_log (tbl, op, row_id) VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER workflows_audit AFTER INSERT OR UPDATE OR DELETE ON public.workflows
  FOR EACH ROW EXECUTE FUNCTION public.log_row();
CREATE TRIGGER jtbd_library_audit AFTER INSERT OR UPDATE OR DELETE ON public.jtbd_library
  FOR EACH ROW EXECUTE FUNCTION public.log_row();";

/// The database's own triggers run during push and rollback as they run
/// for the app: under the database's search_path (`app, public`), so an
/// unqualified `audit_log` is `app.audit_log`. Before, the push pinned
/// `public, extensions` for the whole transaction and the trigger wrote
/// `public.audit_log`, which the app never does. The tool's own writes
/// name every schema, the `extensions.citext` key included, so they need
/// no path.
#[test]
fn the_databases_triggers_resolve_names_under_the_apps_search_path() {
    let w = World::loaded("app_search_path", "plan").with_sql(APP_PATH_AUDIT);
    let db = w.db.name.clone();
    w.exec(&format!(
        "ALTER DATABASE \"{db}\" SET search_path = app, public"
    ));
    w.pull(&[]).ok();
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let audit = |schema: &str, tbl: &str, op: &str| {
        w.count(&format!(
            "SELECT count(*) FROM {schema}.audit_log WHERE tbl = '{tbl}' AND op = '{op}'"
        ))
    };
    let before = w.state();
    // The write accounting names the table the trigger writes for the app.
    let run = w.push(&[]);
    // The trigger whose function names it bare is named as its writer
    // (h10: it was 'a trigger, rule or event trigger' off the pinned path).
    run.refused(&[
        "app.audit_log",
        "written by trigger jtbd_library_audit on public.jtbd_library (function log_row()); \
         trigger workflows_audit on public.workflows (function log_row())",
        "--allow-writes",
    ]);
    assert!(!run.all().contains("public.audit_log"), "{}", run.show());
    before.assert_same(&w.state(), "a refused preflight");
    let run = w.push(&["--allow-writes", "app.audit_log"]);
    run.ok();
    before.assert_same(&w.state(), "a preflight");

    let run = w.push(&["--confirm", "--allow-writes", "app.audit_log"]);
    run.ok().stdout_has("app.audit_log");
    let inserted = audit("app", "workflows", "INSERT");
    let updated = audit("app", "jtbd_library", "UPDATE");
    assert_eq!(inserted, 227, "{}", run.show());
    assert!(updated > 0, "{}", run.show());
    assert_eq!(w.count("SELECT count(*) FROM public.audit_log"), 0);

    w.rollback(&run.receipt(), &["--confirm"]).ok();
    assert_eq!(audit("app", "workflows", "DELETE"), inserted);
    // The updates were of a column the push added: the rollback drops it.
    assert_eq!(audit("app", "jtbd_library", "UPDATE"), updated);
    // Everything else, public.audit_log (empty) included, as before.
    let mut expected = before.without_schema("sandbox");
    let mut after = w.state().without_schema("sandbox");
    expected.rows.remove("app.audit_log");
    after.rows.remove("app.audit_log");
    expected.assert_same(&after, "push then rollback, the app's audit log aside");
}

#[test]
fn a_read_only_snapshot_still_reports_the_committed_receipt() {
    let w = world("readonly_snapshot", "");
    let snap = w.snapshot.to_str().unwrap().to_string();
    let run = while_immutable(&snap, || w.push(&["--confirm"]));
    run.ok()
        .stdout_has("Applied")
        .stderr_has("could not record it")
        .stderr_has("sandbox push --snapshot");
    let receipt = run.receipt();
    // Said once, with SQLite's words and their cause: before, the warning
    // repeated "the push committed (receipt …) but the snapshot file could
    // not record it" inside its own parentheses.
    run.stderr_has("(attempt to write a readonly database: the file or its folder is read-only)");
    assert_eq!(
        run.stderr.matches("could not record it").count(),
        1,
        "{}",
        run.show()
    );
    assert_eq!(
        run.stderr.matches(receipt.as_str()).count(),
        1,
        "{}",
        run.show()
    );
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM sandbox.receipts WHERE id = '{receipt}' AND status = 'applied'"
        )),
        1
    );
    // As the message says: a push with a writable file records it.
    w.push(&[]).ok().stdout_has("Already applied");
    let conn = rusqlite_count(&snap, &receipt);
    assert_eq!(conn, 1, "the receipt is recorded in the snapshot file now");
}

/// `run` while the file at `path` cannot be written (chattr +i), as on a
/// read-only mount or a full disk.
fn while_immutable(path: &str, run: impl FnOnce() -> Run) -> Run {
    let chattr = |flag: &str| {
        let st = std::process::Command::new("chattr")
            .args([flag, path])
            .status()
            .expect("run chattr");
        assert!(st.success(), "chattr {flag} {path} failed");
    };
    chattr("+i");
    let done = run();
    chattr("-i");
    done
}

/// The documented recovery after a push whose local recording failed (run
/// push again) works while the app keeps writing (H8 R48). The push
/// inserted 227 workflows; the app then renames a pulled workflow, which
/// the push did not write. Before, "Already applied" needed every written
/// table whole as the push left it and refused ("the remote no longer
/// matches the rehearsed state"), so the receipt could not be recorded.
/// Now, as for rollback, only the rows and columns the push wrote must be
/// as it left them: "Already applied", recorded in the file, nothing
/// written. A change to a row the push inserted is named as drift, not
/// refused (R7: the receipt says the diff is applied; see
/// `a_catch_up_push_records_the_receipt_after_the_app_edited_pushed_rows`).
#[test]
fn already_applied_is_not_blocked_by_app_writes_to_rows_the_push_did_not_write() {
    let w = world("already_applied_app_write", "");
    let snap = w.snapshot.to_str().unwrap().to_string();
    let pulled = w.scalar("SELECT string_agg(quote_literal(id::text), ',') FROM workflows");
    let before = w.state();
    let run = while_immutable(&snap, || w.push(&["--confirm"]));
    run.ok().stderr_has("could not record it");
    let receipt = run.receipt();
    let app_row = w.scalar(&format!(
        "SELECT min(id::text) FROM workflows WHERE id::text IN ({pulled})"
    ));
    let app_row_was = row_restorer(&w, &app_row);
    w.exec(&format!(
        "UPDATE workflows SET name = name || ' (renamed by the app)' WHERE id::text = '{app_row}'"
    ));
    let app_state = w.state();
    w.push(&[]).ok().stdout_has("Already applied");
    app_state.assert_same(&w.state(), "push again, already applied");
    assert_eq!(
        rusqlite_count(&snap, &receipt),
        1,
        "the receipt is recorded now"
    );

    // The app changes a row the push inserted: not as the push left it.
    let pushed_row = w.scalar(&format!(
        "SELECT min(id::text) FROM workflows WHERE id::text NOT IN ({pulled})"
    ));
    let pushed_row_was = row_restorer(&w, &pushed_row);
    w.exec(&format!(
        "UPDATE workflows SET name = 'changed by the app' WHERE id::text = '{pushed_row}'"
    ));
    let app_state = w.state();
    w.push(&["--confirm"])
        .ok()
        .stdout_has(&format!("Already applied: receipt {receipt}"))
        .stdout_has(&format!(
            "row {pushed_row} changed since the push inserted it into workflows"
        ));
    app_state.assert_same(&w.state(), "a push again, the app's change named");

    // Put back, rollback undoes the push and leaves the app's own write.
    w.exec(&pushed_row_was);
    w.rollback(&receipt, &["--confirm"]).ok();
    w.exec(&app_row_was);
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "push, app writes, rollback",
    );
}

/// The catch-up push after a push whose receipt the snapshot file could
/// not record (issue 10 R7). Between the push and the catch-up the app
/// edits rows the push wrote: a workflow it inserted and a column it
/// updated. Before, the catch-up was refused ("receipt … says this diff
/// was applied, but what the push wrote was changed since", exit 1), so
/// the file could never record a receipt that `sandbox.receipts` holds.
/// Now the receipt is the truth of what the push did: exit 0, "Already
/// applied", the receipt recorded in the file, the app's changes named as
/// drift, nothing written to Postgres. Rollback still refuses those rows
/// as before; put back, it undoes the push.
#[test]
fn a_catch_up_push_records_the_receipt_after_the_app_edited_pushed_rows() {
    let w = world("catch_up_app_edit", "");
    let snap = w.snapshot.to_str().unwrap().to_string();
    let pulled = w.scalar("SELECT string_agg(quote_literal(id::text), ',') FROM workflows");
    let before = w.state();
    let run = while_immutable(&snap, || w.push(&["--confirm"]));
    run.ok().stderr_has("could not record it");
    let receipt = run.receipt();
    // No receipts table in the file yet (-1), or no row for it.
    assert!(rusqlite_count(&snap, &receipt) < 1, "{}", run.show());
    // The app renames a workflow the push inserted…
    let inserted = w.scalar(&format!(
        "SELECT min(id::text) FROM workflows WHERE id::text NOT IN ({pulled})"
    ));
    let inserted_was = row_restorer(&w, &inserted);
    w.exec(&format!(
        "UPDATE workflows SET name = 'renamed by the app' WHERE id::text = '{inserted}'"
    ));
    // …and sets a column the push updated back to what it was before.
    let row = w.scalar(
        "SELECT concat_ws(E'\\t', t->>'table', t->'key'->>0, u->'key'->>0, c->>'column', \
                          coalesce(quote_literal(c->>'old'), 'NULL'), c->>'new') \
         FROM sandbox.receipts r, jsonb_array_elements(r.undo->'tables') t, \
              jsonb_array_elements(t->'updates') u, jsonb_array_elements(u->'changes') c \
         WHERE NOT (t->>'created')::boolean AND c->>'new' IS NOT NULL \
           AND c->>'old' IS DISTINCT FROM c->>'new' AND jsonb_array_length(t->'key') = 1 \
         ORDER BY 1 LIMIT 1",
    );
    let parts: Vec<&str> = row.split('\t').collect();
    assert_eq!(parts.len(), 6, "{row}");
    let [table, key_column, key_value, column, old, _] = [0, 1, 2, 3, 4, 5].map(|i| parts[i]);
    let updated_was = w.scalar(&format!(
        "SELECT format('SET session_replication_role = replica; \
                UPDATE {table} SET {column} = %L, updated_at = %L WHERE {key_column}::text = %L; \
                RESET session_replication_role', {column}, updated_at, {key_column}) \
         FROM {table} WHERE {key_column}::text = '{key_value}'"
    ));
    w.exec(&format!(
        "UPDATE {table} SET {column} = {old} WHERE {key_column}::text = '{key_value}'"
    ));
    let app_state = w.state();

    let run = w.push(&["--confirm"]);
    run.ok()
        .stdout_has(&format!("Already applied: receipt {receipt}"))
        .stdout_has("Since the push, the app changed rows it wrote")
        .stdout_has(&format!(
            "row {inserted} changed since the push inserted it into workflows"
        ))
        .stdout_has(&format!(
            "row {key_value} changed: {table}.{column} was pushed as"
        ));
    assert!(!run.all().contains("refus"), "{}", run.show());
    app_state.assert_same(&w.state(), "the catch-up push");
    assert_eq!(
        rusqlite_count(&snap, &receipt),
        1,
        "the receipt is recorded now"
    );
    sandbox(&["receipts", "--snapshot", &snap])
        .ok()
        .stdout_has(&receipt);
    // The no-edit rerun after it is the same: already applied, still
    // naming the app's changes, nothing written.
    w.push(&[]).ok().stdout_has("Already applied");
    app_state.assert_same(&w.state(), "a preflight of an applied diff");

    // Rollback judges the app's edits as it did before the catch-up.
    w.rollback(&receipt, &["--confirm"]).refused(&[
        &format!("row {inserted} changed since the push inserted it into workflows"),
        &format!("row {key_value} changed: {table}.{column}"),
        "nothing was changed",
    ]);
    app_state.assert_same(&w.state(), "a refused rollback");
    w.exec(&inserted_was);
    w.exec(&updated_was);
    w.rollback(&receipt, &["--confirm"]).ok();
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "push, app edits, catch-up, edits put back, rollback",
    );
}

/// Review F8: after a push whose receipt the file recorded, the app
/// renames a column the push wrote (workflows.name), then drops a table
/// the push created (tasks). Before, the push again was refused with a
/// false "table workflows lost a column inside this transaction … event
/// trigger" (exit 1; nothing ran inside it), and after the DROP ended in a
/// raw `relation "public.tasks" does not exist` (exit 2). Both are drift
/// since the push, read from the catalog with the receipt: named, the push
/// "Already applied", exit 0, nothing written.
#[test]
fn already_applied_names_a_renamed_column_and_a_dropped_table_as_drift() {
    let w = world("already_applied_gone", "");
    let receipt = w.push(&["--confirm"]).ok().receipt();
    let applied = format!("Already applied: receipt {receipt}");
    w.exec("ALTER TABLE workflows RENAME COLUMN name TO title");
    let app_state = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.ok().stdout_has(&applied).stdout_has(
            "column name of public.workflows that the push wrote is gone since (renamed or dropped)",
        );
        assert!(!run.all().contains("event trigger"), "{}", run.show());
        app_state.assert_same(&w.state(), "push again after the app renamed a column");
    }
    w.exec("DROP TABLE tasks");
    let app_state = w.state();
    let run = w.push(&["--confirm"]);
    run.ok()
        .stdout_has(&applied)
        .stdout_has(
            "table public.tasks that the push created was dropped since (and the 343 rows the \
             push wrote there with it)",
        )
        .stdout_has("column name of public.workflows that the push wrote is gone since")
        .stdout_has("Of the 727 rows the push inserted, 384 remain; 343 are gone since.");
    assert!(!run.all().contains("does not exist"), "{}", run.show());
    app_state.assert_same(
        &w.state(),
        "push again after the app dropped a pushed table",
    );
}

/// Issue 10 (h1 remainder b): the app renames a table the push created
/// (tasks → tasks_archive). Before, a push that found its diff applied
/// called its 343 rows gone ("Of the 727 rows the push inserted, 384
/// remain; 343 are gone since."), as for a dropped table. Now the table is
/// found by the oid the receipt recorded: named as renamed, its rows read
/// there and counted (all remain; one the app deletes there is counted
/// gone). A receipt that records no oid (format 5) cannot tell renamed
/// from dropped: it says so and leaves those rows uncounted, not gone.
/// Exit 0 (already applied) throughout, nothing written.
#[test]
fn already_applied_finds_a_created_table_the_app_renamed_by_its_oid() {
    let w = world("already_applied_renamed", "");
    let receipt = w.push(&["--confirm"]).ok().receipt();
    let applied = format!("Already applied: receipt {receipt}");
    w.exec("ALTER TABLE tasks RENAME TO tasks_archive");
    let app_state = w.state();
    let run = w.push(&["--confirm"]);
    run.ok()
        .stdout_has(&applied)
        .stdout_has(
            "table public.tasks that the push created was renamed since: it is now \
             public.tasks_archive (its rows are read there)",
        )
        .stdout_has("All 727 rows the push inserted remain.");
    assert!(!run.all().contains("gone since"), "{}", run.show());
    app_state.assert_same(
        &w.state(),
        "push again after the app renamed a pushed table",
    );

    w.exec("DELETE FROM tasks_archive WHERE id::text = (SELECT min(id::text) FROM tasks_archive)");
    let app_state = w.state();
    w.push(&[])
        .ok()
        .stdout_has(&applied)
        .stdout_has("Of the 727 rows the push inserted, 726 remain; 1 is gone since.");
    app_state.assert_same(&w.state(), "a preflight after the app deleted a row there");

    w.exec(&format!(
        "UPDATE sandbox.receipts SET undo = jsonb_set(undo - 'created_identity', '{{format}}', '5') \
         WHERE id = '{receipt}'"
    ));
    let app_state = w.state();
    let run = w.push(&[]);
    run.ok()
        .stdout_has(&applied)
        .stdout_has(
            "table public.tasks that the push created is gone since (renamed or dropped); the \
             343 rows the push wrote there are not counted",
        )
        .stdout_has("All 384 rows the push inserted remain.")
        .stdout_has(
            "343 rows the push wrote are not counted: their table is gone under its name since.",
        );
    assert!(!run.all().contains("with it"), "{}", run.show());
    assert!(!run.all().contains("are gone since"), "{}", run.show());
    app_state.assert_same(&w.state(), "a preflight with a receipt of format 5");
}

/// Review F9: the drift an already applied push lists names each row
/// once, and says plainly, counted, when none of the rows the push
/// inserted remain. The app first renames a workflow the push inserted
/// (its stamp trigger moves updated_at too): before, that row was listed
/// twice, once for updated_at and once for the column the receipt keeps
/// only a fingerprint of. Then the app deletes every row the push
/// inserted (and unlinks the JTBDs from the priorities first): before,
/// only per-table lines said so, and the checks read "7 rows as pushed, 7
/// deleted since". Still "Already applied" (the receipt committed), exit
/// 0, nothing written.
#[test]
fn already_applied_lists_a_row_once_and_says_when_no_pushed_row_remains() {
    let w = world("already_applied_none_left", "");
    let pulled = w.scalar("SELECT string_agg(quote_literal(id::text), ',') FROM workflows");
    let receipt = w.push(&["--confirm"]).ok().receipt();
    let applied = format!("Already applied: receipt {receipt}");
    let pushed_row = w.scalar(&format!(
        "SELECT min(id::text) FROM workflows WHERE id::text NOT IN ({pulled})"
    ));
    w.exec(&format!(
        "UPDATE workflows SET name = 'renamed by the app' WHERE id::text = '{pushed_row}'"
    ));
    let app_state = w.state();
    let run = w.push(&[]);
    run.ok()
        .stdout_has(&applied)
        .stdout_has("All 727 rows the push inserted remain, 1 of them changed since.")
        .stdout_has(&format!(
            "row {pushed_row} changed since the push inserted it into workflows: \
             workflows.updated_at was pushed as"
        ))
        .stdout_has("; and in a column whose pushed value the receipt does not keep");
    assert_eq!(
        run.stdout.matches(pushed_row.as_str()).count(),
        1,
        "{}",
        run.show()
    );
    app_state.assert_same(&w.state(), "push again after the app edited a pushed row");

    w.exec(&format!(
        "DELETE FROM tasks; DELETE FROM tools; UPDATE jtbd_library SET strategic_priority_id = NULL; \
         DELETE FROM strategic_priorities; DELETE FROM workflows WHERE id::text NOT IN ({pulled})"
    ));
    let app_state = w.state();
    let run = w.push(&["--confirm"]);
    run.ok()
        .stdout_has(&applied)
        .stdout_has("None of the 727 rows the push inserted remain: all are gone since.")
        .stdout_has("All 105 rows the push updated remain, all of them changed since.")
        .stdout_has("all 227 rows the push wrote into workflows deleted since")
        .stdout_has("all 343 rows the push wrote into tasks deleted since");
    // Deleted now: at most among the deleted keys, not also as changed.
    assert!(
        run.stdout.matches(pushed_row.as_str()).count() <= 1,
        "{}",
        run.show()
    );
    let json = w.push(&["--json"]);
    json.ok()
        .stdout_has("\"actual\": \"0 rows as pushed, 227 deleted since\"");
    app_state.assert_same(
        &w.state(),
        "push again after the app deleted every pushed row",
    );
}

/// An app that saves a row the push wrote, changing nothing, still moves
/// its `updated_at` (the table's stamp trigger fires for any UPDATE); and
/// one that edits a column the push updated (H8 S19). Before, rollback
/// refused for ever with "row … changed since the push inserted it into
/// workflows", naming no column, with no way out but editing rows by hand.
/// Now the refusal names table, row, column, the value as pushed and now,
/// and the stamp trigger; nothing is changed. `--discard-changes
/// TABLE.COLUMN` lets the undo discard exactly those changes, says so and
/// records them in the receipt: every row the push wrote is as before it,
/// the app's write to a row the push did not write is left.
#[test]
fn an_app_save_of_a_pushed_row_is_named_and_can_be_discarded_by_column() {
    let w = world("rollback_app_save", "");
    let pulled = w.scalar("SELECT string_agg(quote_literal(id::text), ',') FROM workflows");
    let before = w.state();
    let receipt = w.push_confirmed();
    // A row the push inserted, saved by the app as it is: only updated_at
    // moves (by the fixture's workflows_set_updated_at).
    let saved = w.scalar(&format!(
        "SELECT min(id::text) FROM workflows WHERE id::text NOT IN ({pulled})"
    ));
    let stamp = |id: &str| {
        w.scalar(&format!(
            "SELECT updated_at::text FROM workflows WHERE id::text = '{id}'"
        ))
    };
    let pushed_stamp = stamp(&saved);
    w.exec(&format!(
        "UPDATE workflows SET name = name WHERE id::text = '{saved}'"
    ));
    let app_stamp = stamp(&saved);
    assert_ne!(pushed_stamp, app_stamp, "the stamp trigger fired");
    // A column the push updated, set back by the app to what it held
    // before the push (a literal or NULL: any type).
    let row = w.scalar(
        "SELECT concat_ws(E'\\t', t->>'table', t->'key'->>0, u->'key'->>0, c->>'column', \
                          coalesce(quote_literal(c->>'old'), 'NULL'), c->>'new') \
         FROM sandbox.receipts r, jsonb_array_elements(r.undo->'tables') t, \
              jsonb_array_elements(t->'updates') u, jsonb_array_elements(u->'changes') c \
         WHERE NOT (t->>'created')::boolean AND c->>'new' IS NOT NULL \
           AND c->>'old' IS DISTINCT FROM c->>'new' AND jsonb_array_length(t->'key') = 1 \
         ORDER BY 1 LIMIT 1",
    );
    let parts: Vec<&str> = row.split('\t').collect();
    assert_eq!(parts.len(), 6, "{row}");
    let [table, key_column, key_value, column, old, new] = [0, 1, 2, 3, 4, 5].map(|i| parts[i]);
    // Its stamp trigger moves updated_at too, a column the push did not
    // write: the rollback leaves that one as the app left it.
    let stamp_was = w.scalar(&format!(
        "SELECT format('SET session_replication_role = replica; \
                UPDATE {table} SET updated_at = %L WHERE {key_column}::text = %L; \
                RESET session_replication_role', updated_at, {key_column}) \
         FROM {table} WHERE {key_column}::text = '{key_value}'"
    ));
    w.exec(&format!(
        "UPDATE {table} SET {column} = {old} WHERE {key_column}::text = '{key_value}'"
    ));
    // And the app renames a workflow the push did not write.
    let app_row = w.scalar(&format!(
        "SELECT min(id::text) FROM workflows WHERE id::text IN ({pulled})"
    ));
    let app_row_was = row_restorer(&w, &app_row);
    w.exec(&format!(
        "UPDATE workflows SET name = name || ' (renamed by the app)' WHERE id::text = '{app_row}'"
    ));
    let app_state = w.state();

    let edited =
        format!("row {key_value} changed: {table}.{column} was pushed as '{new}', is now {old}");
    w.rollback(&receipt, &["--confirm"]).refused(&[
        &format!(
            "row {saved} changed since the push inserted it into workflows: \
             workflows.updated_at was pushed as '{pushed_stamp}', is now '{app_stamp}' \
             (likely trigger workflows.workflows_set_updated_at, which only stamps updated_at"
        ),
        &edited,
        &format!("add --discard-changes {table}.{column} --discard-changes workflows.updated_at"),
        "nothing was changed",
    ]);
    app_state.assert_same(&w.state(), "a refused rollback");
    // Discarding one of the two changes is not enough: the other refuses.
    let run = w.rollback(
        &receipt,
        &["--confirm", "--discard-changes", "workflows.updated_at"],
    );
    run.refused(&[&edited, "nothing was changed"]);
    assert!(!run.stderr.contains(&saved), "{}", run.show());
    app_state.assert_same(&w.state(), "a rollback refused for the other change");
    let discard = [
        "--discard-changes",
        "workflows.updated_at",
        "--discard-changes",
        &format!("{table}.{column}"),
    ];
    w.rollback(&receipt, &discard)
        .ok()
        .stdout_has("Would discard the app's changes")
        .stdout_has("Nothing was changed");
    app_state.assert_same(&w.state(), "a dry run");

    let mut args = vec!["--confirm"];
    args.extend(discard);
    let run = w.rollback(&receipt, &args);
    run.ok()
        .stdout_has("Discarded the app's changes to rows the push wrote")
        .stdout_has(&format!(
            "workflows.updated_at was pushed as '{pushed_stamp}', is now '{app_stamp}'"
        ))
        .stdout_has(&format!("— discarded (--discard-changes {table}.{column})"));
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM sandbox.receipts WHERE id = '{receipt}' \
             AND jsonb_array_length(undo->'discarded') = 2 AND undo::text LIKE '%{saved}%'"
        )),
        1,
        "the receipt records what the undo discarded"
    );
    // The app's rename survived; put back, the database is as pulled.
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM workflows WHERE id::text = '{app_row}' \
             AND name LIKE '% (renamed by the app)'"
        )),
        1
    );
    w.exec(&app_row_was);
    w.exec(&stamp_was);
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "push, app saves, rollback discarding them",
    );
}

/// SQL that puts workflow `id` back as it is now, name and the
/// `updated_at` its stamp trigger moves (held off for that statement).
fn row_restorer(w: &World, id: &str) -> String {
    let was = w.scalar(&format!(
        "SELECT format('SET session_replication_role = replica; \
                UPDATE workflows SET name = %L, updated_at = %L WHERE id = %L', \
                name, updated_at, id) FROM workflows WHERE id::text = '{id}'"
    ));
    format!("{was}; RESET session_replication_role")
}

fn rusqlite_count(path: &str, receipt: &str) -> i64 {
    let out = std::process::Command::new(common::require_tool("sqlite3"))
        .args([
            path,
            &format!("SELECT count(*) FROM _sandbox_receipts WHERE receipt_id = '{receipt}'"),
        ])
        .output()
        .expect("run sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(-1)
}

// ---------------------------------------------------------------------------
// Supabase's owner role

#[test]
fn the_whole_loop_as_a_non_superuser_owner_with_bypassrls() {
    // Declared first, so it is dropped after the database it owns.
    let owner = TestRole::create("owner", "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS");
    let role = owner.name.clone();
    let db = TestDb::create("owner_role");
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
            db.name
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    common::load_fixtures(&url, "plan");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.sqlite");
    let s = snap.to_str().unwrap();
    let before = whole_database_state(&db.url);
    sandbox(&["pull", "--database-url", &url, "--out", s]).ok();
    sandbox(&["rehearse", "--snapshot", s]).ok();
    sandbox(&["push", "--database-url", &url, "--snapshot", s])
        .ok()
        .stdout_has("held off");
    let run = sandbox(&["push", "--database-url", &url, "--snapshot", s, "--confirm"]);
    run.ok();
    let receipt = run.receipt();
    sandbox(&[
        "rollback",
        "--database-url",
        &url,
        "--receipt",
        &receipt,
        "--confirm",
    ])
    .ok();
    before.without_schema("sandbox").assert_same(
        &whole_database_state(&db.url).without_schema("sandbox"),
        "the loop as the owner",
    );
}

/// A second role — here the owner of the app's tables, without BYPASSRLS —
/// after the admin pushed (and rolled back) once, so `sandbox.receipts` is
/// the admin's. Before, its `receipts`, `push` and `rollback` stopped on a
/// raw "permission denied for schema sandbox" (exit 2); with USAGE and
/// SELECT granted, on a raw "query would be affected by row-level security
/// policy for table receipts"; and a push, even granted everything, met
/// "must be owner of table receipts" from re-running the receipts DDL. Each
/// command now names the missing privileges and the statements that grant
/// them, exit 2, before anything is read or locked; with those run, the
/// role pushes, lists and rolls back, and the whole database is as before.
#[test]
fn a_second_role_is_told_which_grants_the_receipts_need() {
    // Declared first, so it is dropped after the database it owns.
    let owner = TestRole::create("second", "LOGIN NOSUPERUSER CREATEDB CREATEROLE");
    let role = owner.name.clone();
    let db = TestDb::create("second_role");
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
            db.name
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    common::load_fixtures(&url, "plan");
    let w = World::in_db(db).with_shared_snapshot();
    let before = w.state();
    // The admin pushes and rolls back once: the receipts table is theirs.
    let first = w.push_confirmed();
    w.rollback(&first, &["--confirm"]).ok();
    let admins = w.state();
    let wants = [
        "USAGE on schema sandbox",
        "SELECT on sandbox.receipts",
        "row-level security on sandbox.receipts",
        &format!("GRANT USAGE ON SCHEMA sandbox TO \"{role}\";"),
        &format!("GRANT \"postgres\" TO \"{role}\";"),
        &format!("ALTER ROLE \"{role}\" BYPASSRLS;"),
        "nothing was read, locked or written",
    ];
    let listed = sandbox(&["receipts", "--database-url", &url]);
    listed.code(2).error_has(&wants);
    let pushed = w.push_as(&url, &[]);
    pushed.code(2).error_has(&wants).error_has(&[
        "INSERT on sandbox.receipts",
        "UPDATE on sandbox.receipts",
        &format!("GRANT SELECT, INSERT, UPDATE ON sandbox.receipts TO \"{role}\";"),
    ]);
    let rolled = sandbox(&[
        "rollback",
        "--database-url",
        &url,
        "--receipt",
        &first,
        "--confirm",
    ]);
    rolled.code(2).error_has(&wants).error_has(&[
        "UPDATE on sandbox.receipts (to mark the receipt rolled back)",
        &format!("GRANT SELECT, UPDATE ON sandbox.receipts TO \"{role}\";"),
    ]);
    admins.assert_same(&w.state(), "refused for want of grants");
    // The admin runs what the push's message says, with its alternative to
    // membership in the owner: BYPASSRLS (the receipts table stays the
    // admin's, so the push must not run its DDL again).
    let message = pushed.all();
    let quoted = |after: &str| {
        message
            .split_once(after)
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(sql, _)| sql.to_string())
            .expect("the statements to run")
    };
    let grants = quoted("run `").replace(&format!("GRANT \"postgres\" TO \"{role}\";"), "");
    w.exec(&format!("{grants} {}", quoted("a superuser may run `")));
    let receipt = {
        let run = w.push_as(&url, &["--confirm"]);
        run.ok();
        run.receipt()
    };
    sandbox(&["receipts", "--database-url", &url])
        .ok()
        .stdout_has(&receipt)
        .stdout_has(&first);
    sandbox(&[
        "rollback",
        "--database-url",
        &url,
        "--receipt",
        &receipt,
        "--confirm",
    ])
    .ok();
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "pushed and rolled back by the second role",
    );
}

#[test]
fn a_trigger_that_raises_during_rollback_is_named_and_nothing_changes() {
    let w = world("rollback_raise", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE FUNCTION public.no_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'workflows are never deleted'; END $$;
         CREATE TRIGGER workflows_no_deletes BEFORE DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.no_deletes();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "workflows_no_deletes",
            "workflows are never deleted",
            "nothing was changed",
        ]);
        before.assert_same(&w.state(), "a rollback refused by a trigger");
    }
}

/// A push whose rollback would be refused is refused before its COMMIT:
/// the rollback is rehearsed in the push's transaction (under a savepoint it
/// rolls back to). Before, a BEFORE DELETE trigger that raises on
/// `workflows` let the push commit (exit 0) and only `sandbox rollback`
/// found that its 227 rows could never be deleted again. Preflight and
/// --confirm refuse (exit 1) naming table, trigger and message, and nothing
/// is written; --allow-irreversible commits and says so, and the rollback
/// then refuses for the reason the push gave.
#[test]
fn a_push_whose_rollback_would_be_refused_is_refused_before_commit() {
    let w = world(
        "undo_refused",
        "CREATE FUNCTION public.no_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'workflows are never deleted'; END $$;
         CREATE TRIGGER workflows_no_deletes BEFORE DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.no_deletes();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "its rollback, rehearsed in the push's transaction before COMMIT, would be refused",
            "deleting the pushed rows of workflows",
            "workflows_no_deletes",
            "workflows are never deleted",
            "--allow-irreversible",
            "nothing was written",
        ]);
        before.assert_same(&w.state(), "a push whose rollback would be refused");
    }
    let run = w.push(&["--confirm", "--allow-irreversible"]);
    run.ok()
        .stdout_has("IRREVERSIBLE")
        .stdout_has("workflows_no_deletes");
    let receipt = run.receipt();
    let pushed = w.state();
    w.rollback(&receipt, &["--confirm"])
        .refused(&["workflows_no_deletes", "workflows are never deleted"]);
    pushed.assert_same(&w.state(), "a rollback refused as the push predicted");
    // Once the trigger is gone the receipt undoes the push exactly.
    w.exec("DROP TRIGGER workflows_no_deletes ON public.workflows");
    w.rollback(&receipt, &["--confirm"]).ok();
    w.exec(
        "CREATE TRIGGER workflows_no_deletes BEFORE DELETE ON public.workflows \
         FOR EACH ROW EXECUTE FUNCTION public.no_deletes()",
    );
    w.state().without_schema("sandbox").assert_same(
        &before.without_schema("sandbox"),
        "pushed irreversibly, then rolled back once the trigger was dropped (and put back)",
    );
}

/// An undo error of a class no refusal names (here `XX000`, as a C
/// extension's trigger may raise) is still said as Postgres reported it:
/// message, SQLSTATE, the step; never the driver's "db error: ERROR:" text.
#[test]
fn an_undo_error_no_refusal_names_is_said_plainly() {
    let w = world(
        "undo_internal",
        "CREATE FUNCTION public.wf_gone() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'archive store unavailable' USING ERRCODE = 'XX000'; END $$;
         CREATE TRIGGER workflows_gone BEFORE DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.wf_gone();",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&[
        "its rollback, rehearsed in the push's transaction before COMMIT, would be refused",
        "Postgres refused the undo: ",
        "archive store unavailable (SQLSTATE XX000)",
        "where: PL/pgSQL function wf_gone()",
    ]);
    assert!(!run.all().contains("db error"), "raw: {}", run.show());
    before.assert_same(&w.state(), "a push whose undo meets an internal error");
}

/// A trigger that quietly skips the rollback's deletes (RETURN NULL, as a
/// soft-delete or archive trigger does): the undo's count check fails in
/// the rehearsal, so the preflight refuses naming the table, where the push
/// used to commit rows the rollback could never remove.
#[test]
fn a_push_whose_undo_a_trigger_would_skip_is_refused_before_commit() {
    let w = world(
        "undo_skipped",
        "CREATE FUNCTION public.keep_rows() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RETURN NULL; END $$;
         CREATE TRIGGER workflows_keep_rows BEFORE DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.keep_rows();",
    );
    let before = w.state();
    w.push(&[]).refused(&[
        "would be refused",
        "workflows: the undo's DELETE removed 0 of the",
        "workflows_keep_rows (function",
        "--allow-irreversible",
    ]);
    before.assert_same(&w.state(), "a preflight whose undo a trigger skips");
}

/// The example of the defect: a plan that deletes rows, whose rollback must
/// insert them again, on a table with a BEFORE INSERT trigger — one that
/// raises, one that rewrites the values written back. The push itself
/// fires neither (it only deletes). Before, both committed (exit 0) and only
/// `sandbox rollback` refused. Now the preflight refuses naming the table,
/// trigger and why: the raise by row key, the rewrite by row, column, the
/// recorded and the found value.
#[test]
fn a_push_whose_undo_must_reinsert_rows_a_before_insert_trigger_refuses_is_refused() {
    const ITEMS: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL); \
         INSERT INTO public.dh_item VALUES ('a', 'alpha'), ('b', 'beta');";
    for (tag, trigger, wanted) in [
        (
            "undo_reinsert_raise",
            "CREATE FUNCTION public.no_comeback() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'deleted items never come back'; END $$;
             CREATE TRIGGER dh_item_no_comeback BEFORE INSERT ON public.dh_item
               FOR EACH ROW EXECUTE FUNCTION public.no_comeback();",
            &[
                "inserting the deleted rows of dh_item again",
                "deleted items never come back",
                "dh_item_no_comeback",
            ][..],
        ),
        (
            "undo_reinsert_rewrite",
            "CREATE FUNCTION public.shout() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$;
             CREATE TRIGGER dh_item_shout BEFORE INSERT ON public.dh_item
               FOR EACH ROW EXECUTE FUNCTION public.shout();",
            &[
                "dh_item.name is 'ALPHA', the receipt recorded 'alpha'",
                "dh_item_shout",
            ][..],
        ),
    ] {
        let w = common::item_world(
            tag,
            &format!("{ITEMS} {trigger}"),
            &["DELETE FROM dh_item WHERE id = 'a';"],
        );
        w.rehearse(&[]).ok();
        let before = w.state();
        for confirm in [&[][..], &["--confirm"][..]] {
            let run = w.push(confirm);
            run.refused(&["would be refused", "--allow-irreversible"]);
            run.refused(wanted);
            before.assert_same(&w.state(), tag);
        }
    }
}

/// One pushed row a trigger will not let go: the rollback names it by key.
#[test]
fn a_delete_refused_for_one_row_during_rollback_names_the_row() {
    let w = world("rollback_raise_row", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE FUNCTION public.keep_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF OLD.id = '053caef0-979d-5f0b-95fb-b721a386b995' THEN RAISE EXCEPTION 'still in use'; END IF;
           RETURN OLD;
         END $$;
         CREATE TRIGGER workflows_keep_one BEFORE DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.keep_one();",
    );
    let before = w.state();
    w.rollback(&receipt, &["--confirm"]).refused(&[
        "deleting the pushed rows of workflows: row id=053caef0-979d-5f0b-95fb-b721a386b995",
        "still in use",
        "workflows_keep_one",
    ]);
    before.assert_same(&w.state(), "a rollback refused for one row");
}

// ---------------------------------------------------------------------------
// Hostile review (H7): what a push must not let past its checks

/// A deferred constraint trigger would fire only at COMMIT, after the
/// checks and the write accounting: its writes must still be counted (and
/// refused), and its RAISE must be a named refusal in the preflight, not a
/// failed COMMIT.
#[test]
fn a_deferred_constraint_trigger_is_counted_and_its_raise_is_named_in_the_preflight() {
    let w = world(
        "deferred_trigger",
        "CREATE TABLE public.side_log (id serial PRIMARY KEY, wf uuid);
         CREATE FUNCTION public.side_log_fn() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.side_log (wf) VALUES (NEW.id); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER wf_deferred_log AFTER INSERT ON public.workflows
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.side_log_fn();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&["public.side_log", "227 rows"]);
        before.assert_same(&w.state(), "a deferred trigger's writes refused");
    }
    w.exec(
        "CREATE OR REPLACE FUNCTION public.side_log_fn() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'deferred check says no'; END $$;",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&["deferred check says no", "workflows"]);
        assert!(!run.all().contains("COMMIT"), "{}", run.show());
        before.assert_same(&w.state(), "a deferred trigger's RAISE refused");
    }
}

// ---------------------------------------------------------------------------
// Rollback never drops the app's objects with what the push created

/// The app dropped a table the push created (`tasks`). Before, rollback
/// (dry run and --confirm) stopped on a raw `relation "public.tasks" does
/// not exist`, exit 2, and the receipt could never be rolled back. The
/// table is undone already: rollback undoes the rest, names it as already
/// gone, records that in the receipt, and the database is its state before
/// the push.
#[test]
fn a_created_table_the_app_dropped_is_already_gone_and_the_rest_is_undone() {
    let w = world("tasks_dropped", "");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec("DROP TABLE public.tasks");
    let dropped = w.state();
    let gone = "table tasks (the push created it; dropped since, so already undone)";
    w.rollback(&receipt, &[]).ok().stdout_has(gone);
    dropped.assert_same(&w.state(), "a dry run");
    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has(gone)
        .stdout_has("dropped columns [jtbd_library.strategic_priority_id]");
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "rolled back without tasks",
    );
    let recorded = w.scalar(&format!(
        "SELECT undo->>'already_gone' FROM sandbox.receipts WHERE id = '{receipt}'"
    ));
    assert!(recorded.contains("table tasks"), "{recorded}");
}

/// V24: the receipt records each created table's identity (`pg_class.oid`
/// and columns) as the push leaves it at COMMIT — after the rehearsal of
/// its undo dropped and got back the tables under a savepoint — and
/// rollback drops a table of that name only if it is still that one.
/// Before: the app dropped `tasks` after the push and made its own
/// `tasks` (its own columns and rows); `rollback --confirm` exited 0 and
/// dropped the app's table, as it went by name. Now: refused by name (oid
/// then and now, how the columns differ), exit 1, the whole database
/// unchanged, the app's rows included. A normal push → rollback still
/// leaves the whole database as before the push, and an older receipt
/// (format 5, no identity) is still undone, saying it goes by name only.
#[test]
fn a_table_the_app_made_again_under_a_created_table_s_name_is_never_dropped() {
    let w = world("tasks_recreated", "");
    let before = w.state();
    // A normal push and rollback: the recorded oids are the tables' now.
    let receipt = w.push_confirmed();
    let identified = w.count(&format!(
        "SELECT count(*) FROM sandbox.receipts r, \
           jsonb_array_elements(r.undo -> 'created_identity') e \
         WHERE r.id = '{receipt}' AND r.undo ->> 'format' = '7' \
           AND (e ->> 'oid')::oid = to_regclass('public.' || quote_ident(e ->> 'table'))::oid \
           AND jsonb_array_length(e -> 'columns') > 0"
    ));
    assert_eq!(identified, 3, "strategic_priorities, tools and tasks");
    w.rollback_restores(&receipt, &before, "a normal push rolled back");
    // A receipt of format 5, before the identities: still undone, by name,
    // and said so.
    let receipt = w.push_confirmed();
    w.exec(&format!(
        "UPDATE sandbox.receipts SET undo = jsonb_set(undo - 'created_identity', '{{format}}', '5') \
         WHERE id = '{receipt}'"
    ));
    w.rollback(&receipt, &["--confirm"]).ok().stdout_has(
        "(undo format 5) records the tables the push created by name only: \
         public.strategic_priorities, public.tools, public.tasks",
    );
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "an older receipt rolled back",
    );
    // The app drops the push's tasks and makes its own of the same shape,
    // empty: on main, rollback --confirm took the push's rows as deleted
    // by the app (already undone), exited 0 and dropped the app's table.
    let receipt = w.push_confirmed();
    w.exec(
        "DROP TABLE public.tasks;
         CREATE TABLE public.tasks (id uuid PRIMARY KEY, workflow_id uuid, code text, title text,
                                    metadata jsonb);",
    );
    let push_s = "id uuid, workflow_id uuid, code text, title text, metadata jsonb";
    let recreated = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "public.tasks is not the table this push created (oid ",
            &format!(
                "the same columns: {push_s}) — the push's table was dropped since and this one \
                 made under its name, or the database was restored from a dump"
            ),
            "nothing was changed",
        ]);
        recreated.assert_same(&w.state(), "a refused rollback of a recreated table");
    }
    // Then the app writes its rows and a column of its own there.
    w.exec(
        "ALTER TABLE public.tasks ADD COLUMN done boolean;
         INSERT INTO public.tasks (id, title, done)
           VALUES ('6c1d2a34-0000-4000-8000-000000000001', 'the app''s own task', false);",
    );
    let recreated = w.state();
    assert_eq!(recreated.row_count("public.tasks"), 1);
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "public.tasks is not the table this push created (oid ",
            "columns differ: this one has done boolean) — the push's table was dropped since",
            "drop it yourself",
            "nothing was changed",
        ]);
        recreated.assert_same(&w.state(), "a refused rollback of a recreated table");
    }
}

/// W16: the app moved tables the push created to another schema. Before:
/// with `tools` moved, rollback --confirm said "table tools (the push
/// created it; dropped since, so already undone)", exit 0, and left
/// app.tools with its 150 rows (with `tasks` moved it refused, but for
/// app.tasks' rows referencing pushed workflows, still calling it
/// dropped). Now the recorded oid finds each: "public.tasks (created by
/// this push) is now app.tasks", refused (exit 1), the rollback does not
/// follow them there, and nothing changes.
#[test]
fn a_created_table_the_app_moved_to_another_schema_is_named_where_it_is() {
    let w = world("tasks_moved", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE SCHEMA app; ALTER TABLE public.tasks SET SCHEMA app;
         ALTER TABLE public.tools SET SCHEMA app;",
    );
    let moved = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "public.tasks (created by this push) is now app.tasks",
            "public.tools (created by this push) is now app.tools",
            "nothing was changed",
        ]);
        assert!(!run.all().contains("already undone"), "{}", run.show());
        moved.assert_same(&w.state(), "a refused rollback of a moved table");
    }
}

/// Issue 10: the receipt (undo format 7) records each added column's
/// identity — its table's oid, its attnum and type — read in the push's
/// transaction right before COMMIT, and rollback drops a column of that
/// name only if it is still that one. Before (main b593f62): the app
/// rebuilt `jtbd_library.strategic_priority_id` (its own column under the
/// same name and type, filled with the same values, no foreign key);
/// `rollback --confirm` exited 0 and dropped it, with the app's 105
/// values. Now: refused by name (both attnums and types, what to do),
/// exit 1, the whole database unchanged; the push's column renamed is
/// named where it is; dropped by the app it is already undone. A normal
/// push → rollback still leaves the whole database as before, and an older
/// receipt (format 6, no column identity) is still undone, by name, saying
/// so.
#[test]
fn a_column_the_app_made_again_under_an_added_column_s_name_is_never_dropped() {
    let w = world("added_column_recreated", "");
    let before = w.state();
    let attnum =
        "(SELECT attnum FROM pg_attribute WHERE attrelid = 'public.jtbd_library'::regclass \
                   AND attname = 'strategic_priority_id' AND NOT attisdropped)";
    // A normal push and rollback: the recorded identity is the column's.
    let receipt = w.push_confirmed();
    let identified = w.count(&format!(
        "SELECT count(*) FROM sandbox.receipts r, \
           jsonb_array_elements(r.undo -> 'added_identity') e \
         WHERE r.id = '{receipt}' AND r.undo ->> 'format' = '7' \
           AND e ->> 'table' = 'jtbd_library' AND e ->> 'column' = 'strategic_priority_id' \
           AND (e ->> 'table_oid')::oid = 'public.jtbd_library'::regclass \
           AND (e ->> 'attnum')::int2 = {attnum} AND e ->> 'type' = 'uuid'"
    ));
    assert_eq!(
        identified, 1,
        "jtbd_library.strategic_priority_id identified"
    );
    w.rollback_restores(&receipt, &before, "a normal push rolled back");
    // A receipt of format 6, before the column identities: still undone,
    // by name, and said so.
    let receipt = w.push_confirmed();
    w.exec(&format!(
        "UPDATE sandbox.receipts SET undo = jsonb_set(undo - 'added_identity', '{{format}}', '6') \
         WHERE id = '{receipt}'"
    ));
    w.rollback(&receipt, &["--confirm"]).ok().stdout_has(
        "(undo format 6) records the columns the push added by name only: \
         public.jtbd_library.strategic_priority_id",
    );
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "an older receipt rolled back",
    );
    // The app rebuilds the column: its own, same name and type, the same
    // values, no foreign key (its updated_at stamp kept out of it).
    let receipt = w.push_confirmed();
    let pushed_attnum = w.count(&format!("SELECT {attnum}"));
    w.exec(
        "SET session_replication_role = replica;
         ALTER TABLE public.jtbd_library RENAME COLUMN strategic_priority_id TO sp_old;
         ALTER TABLE public.jtbd_library ADD COLUMN strategic_priority_id uuid;
         UPDATE public.jtbd_library SET strategic_priority_id = sp_old;
         ALTER TABLE public.jtbd_library DROP COLUMN sp_old;
         RESET session_replication_role;",
    );
    let apps_attnum = w.count(&format!("SELECT {attnum}"));
    let apps_values = "SELECT count(strategic_priority_id) FROM public.jtbd_library";
    assert_eq!(w.count(apps_values), 105);
    let rebuilt = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            &format!(
                "public.jtbd_library.strategic_priority_id is not the column this push added \
                 (attnum {pushed_attnum}, uuid then; attnum {apps_attnum}, uuid now) — the push's \
                 column was dropped after the push and this one added under its name"
            ),
            "rename this one out of the way for the rollback",
            "nothing was changed",
        ]);
        rebuilt.assert_same(&w.state(), "a refused rollback of a rebuilt column");
    }
    // As advised: out of the way, the push's column is gone (undone by
    // the app), the rest is rolled back, and the app's column comes back
    // with its values.
    w.exec("ALTER TABLE public.jtbd_library RENAME COLUMN strategic_priority_id TO app_sp");
    w.rollback(&receipt, &["--confirm"]).ok().stdout_has(
        "column jtbd_library.strategic_priority_id (the push added it; dropped since, so \
         already undone)",
    );
    w.exec("ALTER TABLE public.jtbd_library RENAME COLUMN app_sp TO strategic_priority_id");
    assert_eq!(w.count(apps_values), 105, "the app's values are kept");
    w.exec("ALTER TABLE public.jtbd_library DROP COLUMN strategic_priority_id");
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "rolled back around the app's column (then dropped by the test)",
    );
    // The push's column renamed: named where it is, not followed.
    let receipt = w.push_confirmed();
    w.exec("ALTER TABLE public.jtbd_library RENAME COLUMN strategic_priority_id TO sp");
    let renamed = w.state();
    w.rollback(&receipt, &["--confirm"]).refused(&[
        "public.jtbd_library.strategic_priority_id (added by this push, attnum ",
        "is now public.jtbd_library.sp — the app renamed it",
        "ALTER TABLE public.jtbd_library RENAME COLUMN sp TO strategic_priority_id",
        "nothing was changed",
    ]);
    renamed.assert_same(&w.state(), "a refused rollback of a renamed column");
    w.exec("ALTER TABLE public.jtbd_library RENAME COLUMN sp TO strategic_priority_id");
    w.rollback_restores(&receipt, &before, "renamed back and rolled back");
    // The push's column dropped by the app: already undone, the rest
    // rolled back.
    let receipt = w.push_confirmed();
    w.exec("ALTER TABLE public.jtbd_library DROP COLUMN strategic_priority_id");
    w.rollback(&receipt, &["--confirm"]).ok().stdout_has(
        "column jtbd_library.strategic_priority_id (the push added it; dropped since, so \
         already undone)",
    );
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "a dropped added column, the rest rolled back",
    );
}

/// W3: after the push the app commented on a table the push created and
/// on the column it added. Before: rollback refused, blaming "a trigger,
/// rule or event trigger" for the rows of pg_description its own DROPs
/// deleted. Now those deletions are counted as the undo's own: the
/// rollback goes ahead, names each comment as going with what it drops,
/// and the whole database is as before the push.
#[test]
fn comments_the_app_added_go_with_what_the_rollback_drops() {
    let w = world("comments_dropped", "");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec(
        "COMMENT ON TABLE public.tasks IS 'the app''s tasks';
         COMMENT ON COLUMN public.tasks.title IS 'shown in the list';
         COMMENT ON COLUMN public.jtbd_library.strategic_priority_id IS 'the priority';",
    );
    let going = [
        "comment on table public.tasks, added after the push, goes with the table",
        "comment on table column public.tasks.title, added after the push, goes with the table",
        "comment on table column public.jtbd_library.strategic_priority_id, added after the push, \
         goes with the column",
    ];
    let commented = w.state();
    let dry = w.rollback(&receipt, &[]);
    dry.ok();
    for g in going {
        dry.stdout_has(g);
    }
    commented.assert_same(&w.state(), "a dry run");
    let run = w.rollback(&receipt, &["--confirm"]);
    run.ok();
    for g in going {
        run.stdout_has(g);
    }
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "rolled back with the app's comments",
    );
    assert_eq!(
        w.count("SELECT count(*) FROM pg_description WHERE description IN ('the app''s tasks', 'shown in the list', 'the priority')"),
        0
    );
}

#[test]
fn rollback_refuses_while_app_objects_lean_on_a_column_or_table_it_drops() {
    let w = world("app_objects_on_dropped", "");
    let receipt = w.push_confirmed();
    // Objects Postgres would drop automatically with the added column or
    // the created table: none of them is the push's to drop.
    w.exec(
        "CREATE INDEX app_idx ON public.jtbd_library (strategic_priority_id, title);
         ALTER TABLE public.jtbd_library ADD CONSTRAINT app_chk
           CHECK (strategic_priority_id IS NOT NULL OR title IS NOT NULL);
         CREATE STATISTICS app_stats ON strategic_priority_id, title FROM public.jtbd_library;
         CREATE INDEX app_tasks_idx ON public.tasks (id);
         CREATE POLICY app_tasks_policy ON public.tasks USING (true);",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "index app_idx depends on column strategic_priority_id of table jtbd_library",
            "constraint app_chk on table jtbd_library depends on column strategic_priority_id",
            "statistics object app_stats depends on column strategic_priority_id",
            "index app_tasks_idx depends on table tasks",
            "policy app_tasks_policy on table tasks depends on table tasks",
            "did not write",
        ]);
        before.assert_same(&w.state(), "a refused rollback");
    }
    // Without them, the objects the push created itself (the added
    // column's foreign key, the created tables' keys) go with the drop.
    w.exec(
        "DROP INDEX public.app_idx; ALTER TABLE public.jtbd_library DROP CONSTRAINT app_chk;
         DROP STATISTICS public.app_stats; DROP INDEX public.app_tasks_idx;
         DROP POLICY app_tasks_policy ON public.tasks;",
    );
    w.rollback(&receipt, &["--confirm"]).ok();
}

/// An app table of `jtbd_library`'s row type (a typed snapshot or audit
/// table: `INSERT … SELECT j FROM jtbd_library j`), in another schema,
/// filled after the push (h5 F10). Each stored value holds the column the
/// push added. Before, rollback --confirm exited 0 and its DROP COLUMN
/// silently removed that attribute from every stored value (re-adding the
/// column does not bring them back). Now it refuses, naming table, column
/// and count, for the row type and an array of it alike, and changes
/// nothing; values whose copy of the column is NULL lose nothing and do
/// not block (the three snapshots taken before the push, which the push's
/// rehearsed undo sees, do not refuse it).
#[test]
fn rollback_refuses_while_app_columns_of_the_row_type_hold_the_column_it_drops() {
    let w = world(
        "row_type_snapshots",
        "CREATE SCHEMA app;
         CREATE TABLE app.jtbd_snapshots (id bigserial PRIMARY KEY,
           snap public.jtbd_library, history public.jtbd_library[]);
         INSERT INTO app.jtbd_snapshots (snap)
           SELECT j FROM public.jtbd_library j ORDER BY id LIMIT 3;",
    );
    let before_push = w.state();
    let receipt = w.push_confirmed();
    w.exec(
        "INSERT INTO app.jtbd_snapshots (snap) SELECT j FROM public.jtbd_library j
           WHERE strategic_priority_id IS NOT NULL ORDER BY id LIMIT 6;
         UPDATE app.jtbd_snapshots SET snap.strategic_priority_id = NULL
           WHERE id = (SELECT max(id) FROM app.jtbd_snapshots);
         INSERT INTO app.jtbd_snapshots (history) SELECT array_agg(j ORDER BY j.id)
           FROM public.jtbd_library j WHERE j.id IN (SELECT id FROM public.jtbd_library
             WHERE strategic_priority_id IS NOT NULL ORDER BY id LIMIT 2);",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            "5 rows of app.jtbd_snapshots hold a value of jtbd_library.strategic_priority_id \
             inside column snap (type jtbd_library, the row type of table jtbd_library): \
             dropping the column would silently remove it from every stored value",
            "1 row of app.jtbd_snapshots holds a value of jtbd_library.strategic_priority_id \
             inside column history (type jtbd_library[], which holds rows of table jtbd_library)",
        ]);
        before.assert_same(&w.state(), "a refused rollback");
    }
    assert_eq!(
        w.count(
            "SELECT count(*) FROM app.jtbd_snapshots WHERE (snap).strategic_priority_id IS NOT NULL"
        ),
        5,
        "the app's copies of the column are still there"
    );
    // Their copies of the column cleared, the values lose nothing.
    w.exec(
        "UPDATE app.jtbd_snapshots SET snap.strategic_priority_id = NULL WHERE history IS NULL;
         UPDATE app.jtbd_snapshots SET history = NULL;",
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    before_push
        .without_schema("sandbox")
        .without_schema("app")
        .assert_same(
            &w.state().without_schema("sandbox").without_schema("app"),
            "push then rollback",
        );
    assert_eq!(w.count("SELECT count(snap) FROM app.jtbd_snapshots"), 9);
}

/// The push's rehearsed undo runs the same check (h5 F10): an allowed
/// audit trigger storing each updated `jtbd_library` row whole (`NEW`, of
/// the table's row type) writes copies of the column the push fills, which
/// its rollback's DROP COLUMN would silently strip. The push is refused
/// before COMMIT, naming the audit table and column, and writes nothing.
#[test]
fn a_push_whose_audit_trigger_stores_the_row_type_is_refused_before_commit() {
    let w = world(
        "row_type_audit",
        "CREATE SCHEMA app;
         CREATE TABLE app.jtbd_audit (id bigserial PRIMARY KEY, new public.jtbd_library);
         CREATE FUNCTION app.audit_jtbd() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO app.jtbd_audit (new) VALUES (NEW); RETURN NULL; END $$;
         CREATE TRIGGER jtbd_audit AFTER UPDATE ON public.jtbd_library
           FOR EACH ROW EXECUTE FUNCTION app.audit_jtbd();",
    );
    let before = w.state();
    w.push(&["--confirm", "--allow-writes", "app.jtbd_audit"])
        .refused(&[
            "its rollback, rehearsed in the push's transaction before COMMIT, would be refused",
            "of app.jtbd_audit hold a value of jtbd_library.strategic_priority_id inside column \
             new (type jtbd_library, the row type of table jtbd_library)",
        ]);
    before.assert_same(&w.state(), "a refused push");
}

/// An app column of a created table's row type, an array of it, a
/// composite type and a domain over it, a function taking it (h5 F11).
/// Before, the tool's check (pg_depend on the table) did not see them:
/// the rollback failed in its DROP TABLE and passed on Postgres's "Use
/// DROP ... CASCADE", which would drop the app's column. Now each is named
/// before any DROP, no hint is relayed, and nothing changes.
#[test]
fn rollback_refuses_while_app_columns_and_types_use_a_created_table_s_row_type() {
    let w = world("row_type_of_created", "");
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE TABLE public.task_snaps (id serial, t public.tasks, many public.tasks[]);
         CREATE TYPE public.task_pair AS (a public.tasks, b int);
         CREATE DOMAIN public.task_dom AS public.tasks;
         CREATE FUNCTION public.task_title(t public.tasks) RETURNS text LANGUAGE sql
           AS 'SELECT 1::text';",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "column t of table public.task_snaps has type tasks",
            "column many of table public.task_snaps has type tasks[], which holds rows of table tasks",
            "column a of composite type task_pair depends on type tasks",
            "type task_dom depends on type tasks",
            "function task_title(tasks) depends on type tasks",
            "did not write",
        ]);
        assert!(!run.stderr.contains("CASCADE"), "{}", run.show());
        before.assert_same(&w.state(), "a refused rollback");
    }
}

/// The app's functions, trigger and view that use the column the push
/// added (`jtbd_library.strategic_priority_id`). Before, rollback --confirm
/// exited 0 and dropped the column: the view only was named (pg_depend);
/// the plpgsql and string-bodied SQL functions and the trigger function,
/// which Postgres does not track, then failed with "column does not exist"
/// when they next ran. Each is named now and nothing changes; a function
/// naming a column of that name without the table blocks nothing.
#[test]
fn rollback_refuses_while_app_functions_use_a_column_it_drops() {
    let w = world("functions_on_dropped", "");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE FUNCTION public.jtbd_priorities() RETURNS SETOF uuid LANGUAGE plpgsql AS $$
         BEGIN RETURN QUERY SELECT strategic_priority_id FROM public.jtbd_library; END $$;
         CREATE FUNCTION public.jtbd_priorities_sql() RETURNS SETOF uuid LANGUAGE sql AS
           'SELECT \"strategic_priority_id\" FROM jtbd_library';
         CREATE FUNCTION public.jtbd_priorities_atomic() RETURNS SETOF uuid LANGUAGE sql
           BEGIN ATOMIC SELECT strategic_priority_id FROM public.jtbd_library; END;
         CREATE FUNCTION public.jtbd_keep_priority() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.strategic_priority_id := coalesce(NEW.strategic_priority_id, OLD.strategic_priority_id);
           RETURN NEW; END $$;
         CREATE TRIGGER jtbd_keep_priority BEFORE UPDATE ON public.jtbd_library
           FOR EACH ROW EXECUTE FUNCTION public.jtbd_keep_priority();
         CREATE VIEW public.jtbd_priority_view AS SELECT strategic_priority_id FROM public.jtbd_library;
         CREATE FUNCTION public.other_priority() RETURNS int LANGUAGE sql AS
           'SELECT 1 AS strategic_priority_id';",
    );
    let pushed = w.state();
    let names = "names column strategic_priority_id of table jtbd_library";
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            &format!("function public.jtbd_priorities() {names} (names table jtbd_library)"),
            &format!("function public.jtbd_priorities_sql() {names} (names table jtbd_library)"),
            &format!(
                "function public.jtbd_keep_priority() {names} (the function of a trigger on \
                 jtbd_library) in its body"
            ),
            "function jtbd_priorities_atomic() depends on column strategic_priority_id of table jtbd_library",
            "view jtbd_priority_view depends on column strategic_priority_id of table jtbd_library",
            "did not write",
        ]);
        assert!(!run.all().contains("other_priority"), "{}", run.show());
        pushed.assert_same(&w.state(), "a refused rollback");
    }
    w.exec(
        "DROP VIEW public.jtbd_priority_view;
         DROP TRIGGER jtbd_keep_priority ON public.jtbd_library;
         DROP FUNCTION public.jtbd_keep_priority(), public.jtbd_priorities(),
           public.jtbd_priorities_sql(), public.jtbd_priorities_atomic(), public.other_priority();",
    );
    w.rollback_restores(
        &receipt,
        &before,
        "rolled back once the app let go of the column",
    );
}

/// The app's functions that use a table the push created (`tasks`) after
/// the push: a plpgsql function in another schema reading it bare, a
/// string-bodied SQL function, and the trigger function of an app table
/// (`notes`) reading it. Postgres records no dependency for those bodies.
/// Before, `rollback --confirm` exited 0 and dropped `tasks`; the functions
/// then failed with "relation does not exist", and every insert into
/// `notes` with them. Now each is named (what it uses, the trigger and
/// table it serves, what to do) and nothing changes; `--break-function`
/// with exactly the name printed lets the drop go ahead for that function
/// only, and the receipt records it.
#[test]
fn rollback_refuses_while_app_functions_use_a_table_it_drops() {
    let w = world("functions_on_dropped_table", "");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE SCHEMA app;
         CREATE FUNCTION app.open_tasks() RETURNS bigint LANGUAGE plpgsql AS $$
         BEGIN RETURN (SELECT count(*) FROM tasks WHERE title IS NOT NULL); END $$;
         CREATE FUNCTION public.task_titles() RETURNS SETOF text LANGUAGE sql AS
           'SELECT title FROM public.\"tasks\"';
         CREATE TABLE public.notes (id serial PRIMARY KEY, workflow_id uuid);
         CREATE FUNCTION app.note_needs_task() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM 1 FROM public.tasks t WHERE t.workflow_id = NEW.workflow_id; RETURN NEW; END $$;
         CREATE TRIGGER notes_need_task BEFORE INSERT ON public.notes
           FOR EACH ROW EXECUTE FUNCTION app.note_needs_task();
         CREATE FUNCTION public.task_count_atomic() RETURNS bigint LANGUAGE sql
           BEGIN ATOMIC SELECT count(*) FROM public.tasks; END;
         CREATE FUNCTION public.subtask_label() RETURNS text LANGUAGE sql AS
           'SELECT ''subtasks''::text AS my_tasks';",
    );
    let app_state = w.state();
    let scanned = "Postgres does not track function bodies";
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "function app.open_tasks() names table tasks in its body",
            "function public.task_titles() names table tasks in its body",
            "function app.note_needs_task() names table tasks in its body",
            "the function of trigger notes_need_task on public.notes",
            scanned,
            "--break-function 'app.open_tasks()'",
            "function task_count_atomic() depends on table tasks",
            "did not write",
        ]);
        assert!(!run.all().contains("subtask_label"), "{}", run.show());
        app_state.assert_same(&w.state(), "a refused rollback");
    }
    // The SQL-standard body is tracked: no flag lets the drop take it.
    w.exec("DROP FUNCTION public.task_count_atomic()");
    let app_state = w.state();
    // Accepting one function leaves the others refusing; a name the
    // rollback did not find is a usage error naming those it found.
    w.rollback(
        &receipt,
        &["--confirm", "--break-function", "app.open_tasks()"],
    )
    .refused(&["app.note_needs_task()", "public.task_titles()"]);
    app_state.assert_same(&w.state(), "refused with one function accepted");
    let unknown = w.rollback(&receipt, &["--break-function", "app.closed_tasks()"]);
    unknown.code(2).error_has(&[
        "--break-function app.closed_tasks()",
        "drops has that name;",
        "app.open_tasks()",
        "nothing was changed",
    ]);
    app_state.assert_same(&w.state(), "an unknown --break-function");
    let all = [
        "--confirm",
        "--break-function",
        "app.open_tasks()",
        "--break-function",
        "public.task_titles()",
        "--break-function",
        "app.note_needs_task()",
    ];
    w.rollback(&receipt, &all)
        .ok()
        .stdout_has("dropped tables [")
        .stdout_has(
            "Left broken (--break-function; recorded in the receipt): function \
             app.note_needs_task() (its body names table tasks); function app.open_tasks()",
        );
    assert_eq!(
        w.count("SELECT count(*) FROM pg_class WHERE oid = to_regclass('public.tasks')"),
        0
    );
    let recorded = w.scalar(&format!(
        "SELECT undo->>'broken_functions' FROM sandbox.receipts WHERE id = '{receipt}'"
    ));
    for f in [
        "app.open_tasks()",
        "public.task_titles()",
        "app.note_needs_task()",
    ] {
        assert!(recorded.contains(f), "{recorded}");
    }
    // The rest is the database before the push, plus the app's additions.
    w.exec(
        "DROP TRIGGER notes_need_task ON public.notes; DROP TABLE public.notes;
         DROP SCHEMA app CASCADE; DROP FUNCTION public.task_titles(), public.subtask_label();",
    );
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "rolled back");
}
/// TRUNCATE counts no row in Postgres's per-transaction statistics: a
/// trigger emptying a table must still be named and refused, even with
/// --allow-writes on it (consent to counted row writes; the truncated rows
/// are recorded nowhere, F10).
#[test]
fn a_trigger_that_truncates_a_table_is_named_and_refused() {
    let w = world(
        "truncating_trigger",
        "CREATE TABLE public.wf_cache (k int);
         INSERT INTO public.wf_cache SELECT generate_series(1, 50);
         CREATE FUNCTION public.clear_cache() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN TRUNCATE public.wf_cache; RETURN NULL; END $$;
         CREATE TRIGGER workflows_clear_cache AFTER INSERT ON public.workflows
           FOR EACH STATEMENT EXECUTE FUNCTION public.clear_cache();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&["public.wf_cache", "truncated"]);
        before.assert_same(&w.state(), "a push whose trigger truncates");
        assert_eq!(w.count("SELECT count(*) FROM public.wf_cache"), 50);
    }
    w.push(&["--confirm", "--allow-writes", "wf_cache"])
        .refused(&["public.wf_cache", "truncated", "never a TRUNCATE"]);
    before.assert_same(&w.state(), "a push whose trigger truncates, allowed");
    assert_eq!(w.count("SELECT count(*) FROM public.wf_cache"), 50);
}

/// The app's routine migration of a table the push only inserted into
/// (h5 F9): `workflows.description` widened to varchar(1000) and a column
/// added. The undo deletes its 227 rows by key and restores nothing there,
/// so only the key must be as recorded; the rows still read as the push
/// wrote them. Before, the dry run and --confirm were refused "the tables
/// changed shape … The receipt's before-images and keys name these
/// columns". Now the rollback goes through and the whole database is as
/// before the push but for the app's own change. A key the app retyped
/// still refuses, saying the undo finds the rows by it; a column it
/// dropped still refuses, saying the rows are read whole to be compared;
/// neither mentions before-images, which the undo has none of there.
#[test]
fn a_column_change_the_undo_does_not_need_does_not_block_the_rollback() {
    let w = world("undo_needs_columns", "");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec(
        "ALTER TABLE public.workflows ALTER COLUMN description TYPE varchar(1000);
         ALTER TABLE public.workflows ADD COLUMN app_note text;",
    );
    w.rollback(&receipt, &[]).ok();
    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("deleted rows [227 of workflows]");
    // Taking the app's change back leaves the database as before the push.
    w.exec(
        "ALTER TABLE public.workflows ALTER COLUMN description TYPE text;
         ALTER TABLE public.workflows DROP COLUMN app_note;",
    );
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "push, app migration, rollback",
    );

    let receipt = w.push_confirmed();
    w.exec(
        "CREATE DOMAIN public.workflow_id AS uuid;
         ALTER TABLE public.workflows ALTER COLUMN id TYPE public.workflow_id;",
    );
    let retyped = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.refused(&[
            "the tables changed shape since the push — workflows.id is now workflow_id (the push \
             recorded uuid), and the undo finds the push's rows there by this key. Put the \
             columns back as they were at the push",
        ]);
        assert!(!run.all().contains("before-images"), "{}", run.show());
        retyped.assert_same(&w.state(), "a refused rollback");
    }
    w.exec(
        "ALTER TABLE public.workflows ALTER COLUMN id TYPE uuid;
         ALTER TABLE public.workflows DROP COLUMN organization_id;",
    );
    let dropped = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "workflows has lost column organization_id, and the rollback reads the rows the push \
         wrote there whole, to prove them unchanged since the push",
    ]);
    assert!(!run.all().contains("before-images"), "{}", run.show());
    dropped.assert_same(&w.state(), "a refused rollback");
}

/// Rollback restores only the columns the push wrote: the app's later
/// writes to other columns of the same rows survive it, and only a write
/// to a column the push wrote refuses it, named by table, key and column.
#[test]
fn rollback_compares_only_the_columns_the_push_wrote() {
    let w = world("app_writes_other_columns", "");
    let receipt = w.push_confirmed();
    // A jtbd_library row the push updated (it links strategic_priority_id).
    let key = w.scalar(
        "SELECT u->'key'->>0 FROM sandbox.receipts, jsonb_array_elements(undo->'tables') t, \
         jsonb_array_elements(t->'updates') u WHERE t->>'table' = 'jtbd_library' \
         ORDER BY 1 LIMIT 1",
    );
    w.exec(&format!(
        "UPDATE public.jtbd_library SET usage_count = coalesce(usage_count, 0) + 7 WHERE id = '{key}'"
    ));
    // Now a column the push wrote: refused by table, key and column.
    w.exec(&format!(
        "UPDATE public.jtbd_library SET strategic_priority_id = NULL WHERE id = '{key}'"
    ));
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, confirm).refused(&[
            &format!("row {key} changed: jtbd_library.strategic_priority_id was pushed as"),
            "is now NULL",
            "nothing was changed",
        ]);
        before.assert_same(&w.state(), "a refused rollback");
    }
    assert!(
        !w.rollback(&receipt, &[]).all().contains("usage_count"),
        "a column the push never wrote is not a reason to refuse"
    );
    // Put back what the push wrote; the app's usage_count stays.
    let pushed = w.scalar(&format!(
        "SELECT c->>'new' FROM sandbox.receipts, jsonb_array_elements(undo->'tables') t, \
             jsonb_array_elements(t->'updates') u, jsonb_array_elements(u->'changes') c \
             WHERE t->>'table' = 'jtbd_library' AND u->'key'->>0 = '{key}' \
               AND c->>'column' = 'strategic_priority_id'"
    ));
    let usage = |w: &World| {
        w.scalar(&format!(
            "SELECT usage_count::text FROM public.jtbd_library WHERE id = '{key}'"
        ))
    };
    let app_usage = usage(&w);
    w.exec(&format!(
        "UPDATE public.jtbd_library SET strategic_priority_id = '{pushed}' WHERE id = '{key}'"
    ));
    w.rollback(&receipt, &["--confirm"]).ok();
    assert_eq!(
        usage(&w),
        app_usage,
        "the app's write survives the rollback"
    );
}

/// COPY applies no rules: an INSERT rule on a table the push writes would
/// silently not happen, so the push refuses, naming it.
#[test]
fn an_insert_rule_on_a_written_table_is_named_and_refused() {
    let w = world(
        "insert_rule",
        "CREATE TABLE public.rule_log (id serial PRIMARY KEY, wf uuid);
         CREATE RULE wf_rule_log AS ON INSERT TO public.workflows
           DO ALSO INSERT INTO public.rule_log (wf) VALUES (NEW.id);",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm)
            .refused(&["wf_rule_log", "workflows", "COPY"]);
        before.assert_same(&w.state(), "a push refused over an INSERT rule");
    }
}

/// A rollback Postgres committed is a rollback, even when the snapshot file
/// cannot record it: exit 0, say so, and say how to bring the file up to
/// date (as push does after its COMMIT).
#[test]
fn a_read_only_snapshot_still_reports_the_committed_rollback() {
    let w = world("readonly_rollback", "");
    let snap = w.snapshot.to_str().unwrap().to_string();
    let receipt = w.push_confirmed();
    let run = while_immutable(&snap, || {
        w.rollback(&receipt, &["--confirm", "--snapshot", &snap])
    });
    run.ok()
        .stdout_has("Rolled back")
        .stderr_has("is rolled back in sandbox.receipts")
        .stderr_has(&format!("sandbox rollback --receipt {receipt} --snapshot"));
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM sandbox.receipts WHERE id = '{receipt}' AND status = 'rolled_back'"
        )),
        1
    );
    // As the message says: run again with a writable file.
    w.rollback(&receipt, &["--confirm", "--snapshot", &snap])
        .ok()
        .stdout_has("Already rolled back")
        .stdout_has("marked rolled back too");
}

/// A plan query the rehearsal's SQLite runs and Postgres cannot (instr()
/// exists only in SQLite) is a failed check naming the phase and the
/// guard, exit 1, not an environment error.
#[test]
fn a_plan_query_postgres_cannot_run_is_a_named_failed_check() {
    let w = world("sqlite_only_guard", "");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = common::plan_folder(&dir.path().join("plan"), |p| {
        p["guards"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "no zzz workflows",
            "sql": "SELECT id FROM workflows WHERE instr(name, 'zzz') > 0"
        }));
    });
    let plan = plan.to_str().unwrap();
    let snap = w.snapshot.to_str().unwrap();
    sandbox(&["rehearse", "--snapshot", snap, "--plan", plan])
        .ok()
        .stdout_has("PASSED");
    let before = w.state();
    let run = w.push(&["--plan", plan]);
    run.refused(&["phase final", "no zzz workflows", "instr"]);
    before.assert_same(&w.state(), "a refused preflight");
}

/// A column whose type lives in a schema that is on one search_path and not
/// on another (`extensions.*` on Supabase) must read the same at pull and
/// at push: otherwise every push reports drift that pulling again cannot
/// clear.
#[test]
fn a_type_outside_the_default_search_path_is_not_drift() {
    let w = world(
        "type_search_path",
        "CREATE SCHEMA extensions; CREATE DOMAIN extensions.short_label AS text; \
         CREATE SCHEMA app; CREATE TYPE app.mood AS ENUM ('calm', 'busy'); \
         ALTER TABLE workflows ADD COLUMN label extensions.short_label, ADD COLUMN mood app.mood;",
    );
    let db = w.db.name.clone();
    w.exec(&format!("ALTER DATABASE \"{db}\" SET search_path = ''"));
    let s = w.snapshot.to_str().unwrap().to_string();
    sandbox(&["pull", "--database-url", w.url(), "--out", &s, "--force"]).ok();
    sandbox(&["rehearse", "--snapshot", &s]).ok();
    let before = w.state();
    let run = w.push(&["--confirm"]);
    run.ok().stdout_has("Applied");
    w.rollback_restores(&run.receipt(), &before, "push then rollback");
}

// ---------------------------------------------------------------------------
// Explicit values in columns Postgres numbers from a sequence

/// Workflows numbered twice, by an identity (BY DEFAULT) and by a serial
/// column; the 141 pulled rows hold 1..141 in both. One identity ALWAYS
/// column besides, which nothing may write.
const NUMBERED: &str = "ALTER TABLE public.workflows
   ADD COLUMN ext_no int GENERATED BY DEFAULT AS IDENTITY UNIQUE,
   ADD COLUMN legacy_no serial UNIQUE,
   ADD COLUMN audit_no bigint GENERATED ALWAYS AS IDENTITY;";

/// The built-in plan, with phase 3B numbering its 116 workflows itself,
/// going on from the pulled ones (142..257) in `columns`; phase 3C leaves
/// them to Postgres.
fn numbering_plan(dir: &std::path::Path, columns: &[&str]) -> std::path::PathBuf {
    let plan = common::plan_folder(dir, |_| {});
    let file = plan.join("phases/3B_dh_workflows.sql");
    let numbers: String = columns
        .iter()
        .map(|_| "141 + row_number() OVER (ORDER BY w.id), ")
        .collect();
    let sql = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "INSERT INTO workflows (id,",
            &format!("INSERT INTO workflows ({}, id,", columns.join(", ")),
        )
        .replace(
            "SELECT plan_uuid('dh_workflow', w.id),",
            &format!("SELECT {numbers}plan_uuid('dh_workflow', w.id),"),
        );
    assert!(sql.contains(columns[0]), "{sql}");
    std::fs::write(&file, sql).unwrap();
    plan
}

/// What `nextval()` of each workflows sequence returns next.
fn next_numbers(w: &World) -> Vec<String> {
    common::text_rows(
        &mut w.db.client(),
        "SELECT (CASE WHEN is_called THEN last_value + 1 ELSE last_value END)::text \
         FROM public.workflows_ext_no_seq UNION ALL \
         SELECT (CASE WHEN is_called THEN last_value + 1 ELSE last_value END)::text \
         FROM public.workflows_legacy_no_seq",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// Rows given explicit values in an identity or serial column do not move
/// its sequence: before, the push's own later rows (phase 3C, left to
/// Postgres) drew 142 again and the preflight refused on the UNIQUE
/// constraint, and without one the app's next insert would have. Now the
/// preflight names the move it would make, the push moves each sequence
/// past the values written (the app's insert without an id succeeds), the
/// receipt records before and after, and rollback moves a sequence back
/// only when nobody drew from it since, saying what it left.
#[test]
fn explicit_ids_move_their_sequences_and_rollback_moves_them_back_when_unused() {
    let w = World::loaded("explicit_ids", "plan").with_sql(NUMBERED);
    let dir = tempfile::tempdir().unwrap();
    let s = w.snapshot.to_str().unwrap().to_string();
    // The identity ALWAYS column stays unwritable: a named failed check.
    let always = numbering_plan(&dir.path().join("always"), &["audit_no"]);
    let always = always.to_str().unwrap();
    sandbox(&[
        "pull",
        "--database-url",
        w.url(),
        "--out",
        &s,
        "--force",
        "--plan",
        always,
    ])
    .ok();
    sandbox(&["rehearse", "--snapshot", &s, "--plan", always]).refused(&[
        "workflows: generated and identity ALWAYS columns left to Postgres",
        "audit_no (identity ALWAYS) given 142",
    ]);

    let plan = numbering_plan(&dir.path().join("numbered"), &["ext_no", "legacy_no"]);
    let plan = plan.to_str().unwrap();
    let rehearsal = sandbox(&["rehearse", "--snapshot", &s, "--plan", plan, "--json"]);
    rehearsal.ok();
    let report: serde_json::Value = serde_json::from_str(&rehearsal.stdout).unwrap();
    let listed: Vec<String> = report["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "sequence")
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed[0].starts_with("ext_no 116 new rows give it values its sequence does not know"),
        "{listed:?}"
    );
    let before = w.state();
    let numbers_before = next_numbers(&w);
    assert_eq!(numbers_before, ["142", "142"]);

    let run = w.push(&["--plan", plan]);
    run.ok()
        .stdout_has(
            "Sequence public.workflows_ext_no_seq (workflows.ext_no, values up to 257): would be \
             moved past the values written: next value 142 -> 369.",
        )
        .stdout_has("Sequence public.workflows_legacy_no_seq (workflows.legacy_no");
    before.assert_same(&w.state(), "a preflight");
    assert_eq!(
        next_numbers(&w),
        numbers_before,
        "the preflight moved nothing"
    );

    let run = w.push(&["--plan", plan, "--confirm"]);
    run.ok()
        .stdout_has("moved past the values written: next value 142 -> 369");
    // 116 explicit numbers (142..257), then 111 drawn by Postgres.
    assert_eq!(next_numbers(&w), ["369", "369"]);
    let recorded = common::scalar(
        &mut w.db.client(),
        "SELECT string_agg(format('%s %s->%s up to %s', s->>'sequence', s->>'before', s->>'after', \
                s->>'written'), '; ' ORDER BY s->>'sequence') \
         FROM sandbox.receipts, jsonb_array_elements(undo->'sequences') s WHERE status = 'applied'",
    );
    assert_eq!(
        recorded,
        "workflows_ext_no_seq 142->369 up to 257; workflows_legacy_no_seq 142->369 up to 257"
    );
    // Nobody drew since: rollback moves them back, the database is as before.
    w.rollback(&run.receipt(), &["--confirm"]).ok().stdout_has(
        "Sequence public.workflows_ext_no_seq (workflows.ext_no): moved back: next value 142",
    );
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
    assert_eq!(next_numbers(&w), numbers_before);

    // Pushed again, and the app inserts a workflow of its own: it gets the
    // next numbers, not one the push wrote.
    let run = w.push(&["--plan", plan, "--confirm"]);
    run.ok();
    let app = common::text_rows(
        &mut w.db.client(),
        "INSERT INTO public.workflows (name, definition) VALUES ('app workflow', '{}') \
         RETURNING ext_no::text, legacy_no::text",
    );
    assert_eq!(app, [["369", "369"]]);
    // Rollback removes the pushed rows and leaves the sequences where the
    // app's drawing put them, saying so.
    w.rollback(&run.receipt(), &["--confirm"])
        .ok()
        .stdout_has("left at next value 370: values were drawn from it since the push");
    assert_eq!(next_numbers(&w), ["370", "370"]);
    assert_eq!(
        w.count("SELECT count(*) FROM public.workflows WHERE name = 'app workflow'"),
        1
    );
    assert_eq!(w.count("SELECT count(*) FROM public.workflows"), 142);
}

// ---------------------------------------------------------------------------
// Foreign tables: writes that go to another server

/// A loopback `postgres_fdw` server and the foreign table `public.remote_log`,
/// whose rows land in `remote_store.log` of the same database through
/// another connection: outside the push transaction and its statistics.
fn loopback_foreign_table(w: &World) {
    let available =
        w.count("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'");
    assert_eq!(
        available, 1,
        "postgres_fdw is not available to the test Postgres: it ships with the server \
         (Debian: postgresql-15); install the server's contrib modules"
    );
    let (host, port, user, password) = w.loopback();
    let password = password
        .map(|p| format!(", password '{}'", p.replace('\'', "''")))
        .unwrap_or_default();
    w.exec(&format!(
        "CREATE EXTENSION postgres_fdw;
         CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
           OPTIONS (host '{}', port '{}', dbname '{}');
         CREATE USER MAPPING FOR CURRENT_USER SERVER loopback OPTIONS (user '{}'{password});
         CREATE SCHEMA remote_store;
         CREATE TABLE remote_store.log (workflow_id uuid, name text);
         CREATE FOREIGN TABLE public.remote_log (workflow_id uuid, name text)
           SERVER loopback OPTIONS (schema_name 'remote_store', table_name 'log');",
        host, port, w.db.name, user,
    ));
}

/// Postgres's statistics never count a write to a foreign table: the
/// report says foreign tables exist; a trigger or rule that names one is
/// refused by name before anything is written, unless allowed.
#[test]
fn writes_to_foreign_tables_are_named_and_refused_unless_allowed() {
    let w = world("foreign_writes", "");
    loopback_foreign_table(&w);
    // No trigger names it: the push goes ahead and says what it cannot see.
    w.push(&[])
        .ok()
        .stdout_has(
            "Foreign tables in this database: public.remote_log (server loopback, postgres_fdw)",
        )
        .stdout_has("outside what Postgres's statistics count");

    w.exec(
        "CREATE FUNCTION public.workflow_to_remote() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO remote_log VALUES (NEW.id, NEW.name); RETURN NULL; END $$;
         CREATE TRIGGER workflows_to_remote AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.workflow_to_remote();
         CREATE RULE jtbd_to_remote AS ON UPDATE TO public.jtbd_library
           DO ALSO INSERT INTO public.remote_log VALUES (NULL, NEW.title);",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.push(confirm);
        run.refused(&[
                "trigger workflows_to_remote on public.workflows (function workflow_to_remote()) names \
                 foreign table public.remote_log (server loopback, postgres_fdw)",
                "rule jtbd_to_remote on public.jtbd_library",
                "--allow-writes public.remote_log",
        ]);
        before.assert_same(&w.state(), "a push refused for a foreign write");
    }
    assert_eq!(w.count("SELECT count(*) FROM remote_store.log"), 0);

    let run = w.push(&["--confirm", "--allow-writes", "public.remote_log"]);
    run.ok()
        .stdout_has("Allowed writes to foreign tables")
        .stdout_has("workflows_to_remote");
    // 227 new workflows by the trigger, 105 updated JTBDs by the rule.
    assert_eq!(w.count("SELECT count(*) FROM remote_store.log"), 227 + 105);
    // The push was allowed to write there, so the undo is too; what went
    // to the other server stays there.
    w.rollback(&run.receipt(), &["--confirm"])
        .ok()
        .stdout_has("Allowed writes to foreign tables")
        .stdout_has("jtbd_to_remote");
    assert_eq!(w.count("SELECT count(*) FROM remote_store.log"), 227 + 105);
}

// ---------------------------------------------------------------------------
// The tool's own work runs no DDL

const DDL_AUDIT: &str = "
CREATE TABLE public.ddl_log (id bigserial PRIMARY KEY, tag text, object text);
CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
  INSERT INTO public.ddl_log (tag, object) VALUES (r.command_tag, r.object_identity); END LOOP; END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl();";

/// An event trigger whose `WHEN TAG IN` names none of the push's commands
/// (CREATE SCHEMA, CREATE TABLE, ALTER TABLE; the rehearsed rollback's
/// DROP TABLE) does not fire. Before (W14 a), the push listed every
/// enabled event trigger as firing "on the DDL the push runs", a
/// `CREATE INDEX` filter included; now it says which commands one fires
/// on, and why one does not.
#[test]
fn an_event_trigger_fires_only_on_the_tags_its_filter_names() {
    let w = world(
        "event_trigger_tags",
        "CREATE FUNCTION public.noop_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
         CREATE EVENT TRIGGER on_create_index ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
           EXECUTE FUNCTION public.noop_ddl();
         CREATE EVENT TRIGGER on_alter_table ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
           EXECUTE FUNCTION public.noop_ddl();
         CREATE EVENT TRIGGER on_drop ON sql_drop EXECUTE FUNCTION public.noop_ddl();",
    );
    let run = w.push(&["--json"]);
    run.ok();
    let report = common::json_of(&run);
    let listed = |name: &str| {
        report["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed: {report:#}"))
            .clone()
    };
    let index = listed("on_create_index");
    assert_eq!(index["action"], "does_not_fire", "{index:#}");
    let note = index["note"].as_str().unwrap();
    assert!(
        note.contains("WHEN TAG IN (CREATE INDEX) matches none of the commands run here")
            && note.contains("ALTER TABLE, CREATE SCHEMA, CREATE TABLE"),
        "{note}"
    );
    let alter = listed("on_alter_table");
    assert_eq!(alter["action"], "fires", "{alter:#}");
    let note = alter["note"].as_str().unwrap();
    assert!(
        note.starts_with("fires on the push's ALTER TABLE")
            && note.contains("ALTER TABLE jtbd_library ADD COLUMN strategic_priority_id"),
        "{alter:#}"
    );
    // sql_drop: only the rollback drops (the push rehearses it).
    let drop = listed("on_drop");
    assert_eq!(drop["action"], "fires", "{drop:#}");
    assert!(
        drop["note"]
            .as_str()
            .unwrap()
            .starts_with("fires on a rollback's DROP TABLE"),
        "{drop:#}"
    );
}

/// Supabase projects often enable row-level security on every new table
/// with an event trigger. One filtered on CREATE TABLE (as Supabase's
/// examples are) enables it on the tables the push creates, which the push
/// does itself: the push applies and rollback leaves the whole database as
/// before. One that also fires on ALTER TABLE enables it on
/// `jtbd_library`, an app table without it that the push's ADD COLUMN
/// alters. Before (W14 b), the push's DDL check took that `pg_class` row
/// for the ADD COLUMN's own: the push applied silently and its rollback
/// left row-level security on (every API read of the table then returned
/// nothing). Now the table's settings are recorded at the start and the
/// push is refused, naming the table, what changed and the event trigger;
/// nothing is written.
#[test]
fn an_event_trigger_enabling_row_level_security_on_an_altered_table_refuses_the_push() {
    let ensure_rls = |tags: &str| {
        format!(
            "CREATE EVENT TRIGGER ensure_rls ON ddl_command_end WHEN TAG IN ({tags})
               EXECUTE FUNCTION public.rls_auto_enable();"
        )
    };
    let w = world(
        "rls_event_trigger",
        &format!(
            "ALTER TABLE public.jtbd_library DISABLE ROW LEVEL SECURITY;
             CREATE FUNCTION public.rls_auto_enable() RETURNS event_trigger LANGUAGE plpgsql
               SET search_path = pg_catalog AS $$
             DECLARE cmd record;
             BEGIN
               FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
                 WHERE object_type IN ('table', 'partitioned table') AND schema_name = 'public'
               LOOP
                 IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = cmd.objid) THEN
                   EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', cmd.object_identity);
                 END IF;
               END LOOP;
             END $$;
             {}",
            ensure_rls("'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO'")
        ),
    );
    let before = w.state();
    let run = w.push(&["--confirm"]);
    run.ok().stdout_has("ensure_rls");
    assert_eq!(
        w.scalar("SELECT relrowsecurity::text FROM pg_class WHERE oid = 'public.tasks'::regclass"),
        "true"
    );
    w.rollback_restores(
        &run.receipt(),
        &before,
        "push then rollback, RLS on new tables",
    );

    w.exec(&format!(
        "DROP EVENT TRIGGER ensure_rls; {}",
        ensure_rls("'CREATE TABLE', 'ALTER TABLE'")
    ));
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "table public.jtbd_library (row-level security enabled)",
            "event trigger ensure_rls, which fires on the push's",
            "ALTER TABLE jtbd_library ADD COLUMN strategic_priority_id",
        ]);
        before.assert_same(&w.state(), "a push refused for an event trigger's DDL");
    }
}

fn ddl_logged(w: &World) -> Vec<String> {
    let mut c = w.db.client();
    common::text_rows(
        &mut c,
        "SELECT tag || ' ' || coalesce(object, '') FROM public.ddl_log ORDER BY id",
    )
    .into_iter()
    .map(|r| r.join(" "))
    .collect()
}

/// A DDL-audit event trigger (created by the admin, as event triggers need a
/// superuser) logs every DDL command. Keys to delete, values to update and
/// keys to read back travel inside the statements, so push and rollback log
/// only what the plan asks for — its CREATE TABLE and ADD COLUMN, the
/// hold-off of the updated_at stamp it names, the rollback's DROPs — and
/// never a scratch table of the tool's own.
#[test]
fn an_event_trigger_logging_ddl_sees_only_the_plans_ddl_and_its_hold_off() {
    let w = world("ddl_audit", DDL_AUDIT);
    let before = w.state();
    // The refusal names the writer precisely: the event trigger, its
    // function, and the DDL of the plan's hold-off it fires on.
    w.push(&[]).refused(&[
        "public.ddl_log",
        "written by event trigger log_ddl (function log_ddl())",
        "ALTER TABLE jtbd_library DISABLE/ENABLE TRIGGER jtbd_library_set_updated_at",
        "--allow-writes public.ddl_log",
    ]);
    before.assert_same(&w.state(), "a refused preflight");

    let run = w.push(&["--confirm", "--allow-writes", "ddl_log"]);
    run.ok()
        .stdout_has("public.ddl_log")
        .stdout_has("written by event trigger log_ddl");
    let by: String =
        w.scalar("SELECT undo->'side_effects'->0->'written_by'->>0 FROM sandbox.receipts");
    assert!(
        by.starts_with("event trigger log_ddl (function log_ddl())") && by.contains("jtbd_library"),
        "the receipt names the side effect's writer: {by}"
    );
    let pushed = ddl_logged(&w);
    assert!(
        pushed.iter().all(|l| !l.contains("pg_temp")),
        "the push's own scratch work reached the DDL log: {pushed:#?}"
    );
    // The plan's DDL, the hold-off (disable, then enable) of the one
    // trigger it names, and the first push's receipt store; nothing else.
    let hold_off = pushed
        .iter()
        .filter(|l| l.as_str() == "ALTER TABLE public.jtbd_library")
        .count();
    assert!(hold_off >= 2, "{pushed:#?}");
    assert!(
        pushed.iter().all(|l| l.starts_with("CREATE TABLE public.")
            || l.starts_with("CREATE INDEX public.")
            || l.starts_with("CREATE SEQUENCE public.")
            || l.starts_with("ALTER SEQUENCE public.")
            || l.starts_with("ALTER TABLE public.")
            || l == "CREATE SCHEMA sandbox"
            || l.contains(" sandbox.receipts")),
        "{pushed:#?}"
    );

    w.rollback(&run.receipt(), &["--confirm"]).ok();
    let rolled_back = ddl_logged(&w);
    let undo: Vec<&String> = rolled_back[pushed.len()..].iter().collect();
    assert!(
        undo.iter().all(|l| !l.contains("pg_temp")),
        "the rollback's own scratch work reached the DDL log: {undo:#?}"
    );
    let mut after = w.state().without_schema("sandbox");
    after.rows.remove("public.ddl_log");
    let mut expected = before.without_schema("sandbox");
    expected.rows.remove("public.ddl_log");
    expected.assert_same(&after, "push then rollback, the DDL log aside");
}

/// Many Supabase projects were created with a linguistic collation
/// (`en_US.UTF-8`): Postgres orders 'dh…' before 'MA…' where SQLite orders
/// bytewise. The built-in plan's verification query `workflows by source`
/// (ORDER BY 1) returned the same rows in another order and the preflight
/// refused a green rehearsal; the loop now holds there, and rollback
/// leaves the whole database as before.
#[test]
fn the_built_in_plan_pushes_to_a_database_with_a_linguistic_collation() {
    let db = TestDb::with_options(
        "icu_en_us",
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    );
    let w = World::loaded_into(db, "plan").pulled().rehearsed();
    // The order really differs on this database.
    assert_eq!(
        w.scalar("SELECT string_agg(s, ',' ORDER BY s) FROM (VALUES ('MA'), ('dh')) v(s)"),
        "dh,MA"
    );
    let before = w.state();
    w.push(&[]).ok();
    before.assert_same(&w.state(), "a dry run");
    let receipt = w.push_confirmed();
    assert_eq!(w.count("SELECT count(*) FROM public.workflows"), 368);
    w.rollback(&receipt, &["--confirm"]).ok();
    // The receipts table stays as the audit trail.
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
}

/// A database in another time zone (`ALTER DATABASE … SET TimeZone`): a
/// column Postgres fills for the pushed rows in local time (`timestamp
/// DEFAULT now()`, `date DEFAULT current_date`) gets the wall clock the
/// app's own inserts get. Before, the push wrote under UTC and the 227 new
/// workflows were 13 hours off from the app's rows, silently.
#[test]
fn columns_postgres_fills_in_local_time_get_the_databases_time_zone() {
    let w = World::loaded("local_time", "plan")
        .with_sql(
            "ALTER TABLE public.workflows ADD COLUMN created_local timestamp; \
             ALTER TABLE public.workflows ALTER COLUMN created_local SET DEFAULT now();",
        )
        .pulled()
        .rehearsed();
    w.exec(&format!(
        "ALTER DATABASE \"{}\" SET TimeZone = 'Pacific/Kiritimati'",
        w.db.name
    ));
    w.push_confirmed();
    // The test's own session has the database's zone, like the app's.
    assert_eq!(w.scalar("SHOW TimeZone"), "Pacific/Kiritimati");
    let off = w.count(
        "SELECT count(*) FROM public.workflows WHERE created_local IS NOT NULL \
         AND abs(extract(epoch FROM created_local - localtimestamp)) > 600",
    );
    let filled = w.count("SELECT count(*) FROM public.workflows WHERE created_local IS NOT NULL");
    assert_eq!(filled, 227, "the pushed workflows got a default");
    assert_eq!(
        off, 0,
        "pushed rows' local-time default is off from the app's clock"
    );
}

// ---------------------------------------------------------------------------
// What fires may act outside the transaction

/// A statement trigger on `workflows` whose helper sends the new names over
/// dblink to another connection (it commits on its own) — and the remote
/// table that connection writes.
fn dblink_world(tag: &str) -> World {
    let w = world(tag, "");
    let conninfo = w.with_dblink();
    w.exec(&format!(
        "CREATE SCHEMA remote_store;
         CREATE TABLE remote_store.names (n bigint);
         CREATE FUNCTION public.forward_count(n bigint) RETURNS void LANGUAGE plpgsql AS $f$
         BEGIN
           PERFORM dblink_exec('{conninfo}',
                               'INSERT INTO remote_store.names VALUES (' || n || ')');
         END $f$;
         CREATE FUNCTION public.workflows_forward() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN PERFORM public.forward_count((SELECT count(*) FROM new_rows)); RETURN NULL; END $f$;
         CREATE TRIGGER workflows_forward AFTER INSERT ON public.workflows
           REFERENCING NEW TABLE AS new_rows
           FOR EACH STATEMENT EXECUTE FUNCTION public.workflows_forward();",
    ));
    w
}

/// The preflight runs the real transaction and rolls it back, which does
/// not undo what another connection committed: a trigger reaching
/// dblink_exec (through a helper function) refuses the preflight and the
/// push by name — trigger, call chain, call — before anything runs, and the
/// other connection's table stays empty; `--allow-external-effects` lets it
/// run, and the output says what was performed.
#[test]
fn a_trigger_reaching_dblink_refuses_the_preflight_before_it_runs() {
    let w = dblink_world("dblink_effect");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "trigger workflows_forward on public.workflows (function workflows_forward() → \
             forward_count(bigint) → dblink_exec(…))",
            "dblink",
            "commits on its own",
            "--allow-external-effects",
        ]);
        before.assert_same(&w.state(), "a push refused for an external effect");
    }
    assert_eq!(w.count("SELECT count(*) FROM remote_store.names"), 0);

    // Allowed: the preflight performs the call (that is what it is for)
    // and says so; everything but the other connection's table is as
    // before.
    w.push(&["--allow-external-effects"])
        .ok()
        .stdout_has("Allowed effect outside the transaction")
        .stdout_has("dblink_exec");
    assert_eq!(w.count("SELECT sum(n)::int8 FROM remote_store.names"), 227);
    let mut after = w.state();
    after.rows.remove("remote_store.names");
    let mut expected = before.clone();
    expected.rows.remove("remote_store.names");
    expected.assert_same(&after, "an allowed preflight, the dblink table aside");
}

/// A row-level security policy is evaluated for every row a role it
/// applies to writes: one on `workflows` whose WITH CHECK calls a function
/// reaching dblink_exec would run it for each pushed row, in the
/// preflight too, committed on its own. The effects search covers the
/// policies that apply to the pushing role (V25), but the tests' role was
/// a superuser, to which none applies. Here Supabase's owner role
/// (NOSUPERUSER CREATEDB CREATEROLE) owns the tables, `workflows` forces
/// row-level security on its owner, and the policy's function is the
/// admin's (SECURITY DEFINER, as dblink needs a password from anyone
/// else). Without BYPASSRLS the push and its preflight are refused naming
/// the policy and the call chain, and the other connection's table gets
/// no row; with BYPASSRLS (Supabase's own `postgres`) the policy does not
/// apply, is not named, and the preflight passes without calling it.
#[test]
fn a_policy_reaching_dblink_refuses_the_push_of_a_role_it_applies_to() {
    for (tag, attributes, applies) in [
        ("rls_dblink", "LOGIN NOSUPERUSER CREATEDB CREATEROLE", true),
        (
            "rls_dblink_bypass",
            "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS",
            false,
        ),
    ] {
        // Declared first, so it is dropped after the database it owns.
        let owner = TestRole::create(tag, attributes);
        let role = owner.name.clone();
        let db = TestDb::create(tag);
        db.client()
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
                db.name
            ))
            .unwrap();
        let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
        common::load_fixtures(&url, "plan");
        let w = World::in_db(db).with_shared_snapshot();
        let conninfo = w.with_dblink();
        w.exec(&format!(
            "CREATE SCHEMA remote_store;
             CREATE TABLE remote_store.names (n text);
             CREATE FUNCTION public.tell_remote(n text) RETURNS boolean LANGUAGE plpgsql
               SECURITY DEFINER AS $f$
             BEGIN
               PERFORM dblink_exec('{conninfo}',
                 'INSERT INTO remote_store.names VALUES (' || quote_literal(n) || ')');
               RETURN true;
             END $f$;
             ALTER TABLE public.workflows ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.workflows FORCE ROW LEVEL SECURITY;
             CREATE POLICY workflows_told ON public.workflows FOR ALL
               USING (true) WITH CHECK (public.tell_remote(name));",
        ));
        let before = w.state();
        if applies {
            // The tool runs with row_security off: Postgres refuses its
            // first statement on the table instead of evaluating a policy,
            // so the policy's function never runs.
            for confirm in [&[][..], &["--confirm"][..]] {
                w.push_as(&url, confirm).code(2).error_has(&[
                    "row-level security policy for table \"workflows\"",
                    "BYPASSRLS",
                    "FORCE ROW LEVEL SECURITY",
                ]);
                before.assert_same(&w.state(), "a push refused for row-level security");
            }
        } else {
            let run = w.push_as(&url, &[]);
            run.ok().stdout_has("Nothing was written");
            assert!(
                !run.all().contains("workflows_told"),
                "a policy that does not apply to a BYPASSRLS role is named: {}",
                run.show()
            );
            before.assert_same(&w.state(), "a preflight");
        }
        assert_eq!(
            w.count("SELECT count(*) FROM remote_store.names"),
            0,
            "{tag}: the other connection received rows"
        );
    }
}

/// Issue 10: a table whose row-level security applies to the role (owner
/// without BYPASSRLS, FORCE ROW LEVEL SECURITY) met after the lock step
/// is explained as the lock step explains it (997af54): the tool runs with
/// row_security off, so Postgres refuses the statement; say so and which
/// role to use. Before (main b593f62): an audit table a trigger of
/// workflows writes (allowed) made the push's preflight fail as a refusal
/// of the data (exit 1, "Postgres refused …: query would be affected by
/// row-level security policy … (SQLSTATE 42501)", no word of the role),
/// and an app table referencing pushed workflows made rollback fail with
/// the raw database error. Now each is exit 2 naming BYPASSRLS and FORCE,
/// the whole database unchanged; pull's COPY says the same.
#[test]
fn row_level_security_met_after_the_lock_step_is_explained_like_at_it() {
    let tag = "rls_after_lock";
    // Declared first, so it is dropped after the database it owns.
    let owner = TestRole::create(tag, "LOGIN NOSUPERUSER CREATEDB CREATEROLE");
    let role = owner.name.clone();
    let db = TestDb::create(tag);
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
            db.name
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    common::load_fixtures(&url, "plan");
    let w = World::in_db(db).with_shared_snapshot();
    let explained = [
        "row-level security policy for table",
        "BYPASSRLS",
        "FORCE ROW LEVEL SECURITY",
    ];
    // The audit table a trigger of workflows writes, as the owner.
    let mut owner_client = postgres_sync::Client::connect(&url, postgres_sync::NoTls).unwrap();
    owner_client
        .batch_execute(
            "CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, row_id text);
             ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.audit_log FORCE ROW LEVEL SECURITY;
             CREATE POLICY audit_all ON public.audit_log USING (true) WITH CHECK (true);
             CREATE FUNCTION public.audit_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.audit_log (row_id) VALUES (NEW.id::text); RETURN NULL; END $$;
             CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
               FOR EACH ROW EXECUTE FUNCTION public.audit_workflow();",
        )
        .unwrap();
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let args = [&["--allow-writes", "public.audit_log"][..], confirm].concat();
        w.push_as(&url, &args).code(2).error_has(&explained);
        before.assert_same(&w.state(), "a push refused for row-level security");
    }
    owner_client
        .batch_execute(
            "DROP TRIGGER workflows_audit ON public.workflows; DROP TABLE public.audit_log;
             DROP FUNCTION public.audit_workflow();",
        )
        .unwrap();
    // An app table the owner made after the push, referencing pushed
    // workflows, under row-level security.
    let before = w.state();
    let run = w.push_as(&url, &["--confirm"]);
    run.ok();
    let receipt = run.receipt();
    owner_client
        .batch_execute(
            "CREATE TABLE public.app_runs (id serial PRIMARY KEY,
                                           workflow_id uuid REFERENCES public.workflows ON DELETE CASCADE);
             INSERT INTO public.app_runs (workflow_id)
               SELECT id FROM public.workflows ORDER BY id DESC LIMIT 3;
             ALTER TABLE public.app_runs ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.app_runs FORCE ROW LEVEL SECURITY;
             CREATE POLICY runs_all ON public.app_runs USING (true);",
        )
        .unwrap();
    let pushed = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.rollback_as(&url, &receipt, confirm)
            .code(2)
            .error_has(&explained);
        pushed.assert_same(&w.state(), "a rollback refused for row-level security");
    }
    owner_client
        .batch_execute("DROP TABLE public.app_runs;")
        .unwrap();
    w.rollback_as(&url, &receipt, &["--confirm"]).ok();
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push, then rollback");
    // Pull's COPY of a pulled table under row-level security.
    owner_client
        .batch_execute(
            "ALTER TABLE public.workflows ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.workflows FORCE ROW LEVEL SECURITY;
             CREATE POLICY workflows_all ON public.workflows USING (true);",
        )
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let snap = out.path().join("pulled.sqlite");
    common::sandbox(&[
        "pull",
        "--database-url",
        &url,
        "--out",
        snap.to_str().unwrap(),
    ])
    .code(2)
    .error_has(&explained);
    assert!(!snap.exists());
}

/// Issue 10 Q2: an app trigger on `workflows` whose function is SECURITY
/// DEFINER, owned by a role without BYPASSRLS, writes an audit table whose
/// row-level security applies to that owner — it owns the table, which
/// FORCEs row-level security, or it does not own it and a policy lets it
/// insert. The app's own inserts pass (its sessions evaluate the policy);
/// the push, as Supabase's owner role (NOSUPERUSER … BYPASSRLS), runs with
/// row_security off, and Postgres refuses the function's INSERT as its
/// owner. Before, the explanation blamed the tool's role and advised
/// BYPASSRLS, which it has (exit 2). Now the refusal names the trigger,
/// the function, its owner, that the owner lacks BYPASSRLS and the table
/// whose row-level security applies, and what to change; exit 1, as a
/// trigger's refusal; the whole database unchanged. Its advice works: the
/// function with `SET row_security = on` lets the preflight pass.
#[test]
fn row_level_security_inside_a_security_definer_trigger_names_the_functions_owner() {
    for (tag, owns_the_table) in [("rls_definer_force", true), ("rls_definer_policy", false)] {
        // Declared first, so they are dropped after the database.
        let owner = TestRole::create(tag, "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS");
        let auditor = TestRole::create(&format!("{tag}_auditor"), "NOLOGIN NOSUPERUSER");
        let (role, auditor) = (owner.name.clone(), auditor.name.clone());
        let db = TestDb::create(tag);
        db.client()
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
                db.name
            ))
            .unwrap();
        let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
        common::load_fixtures(&url, "plan");
        let w = World::in_db(db).with_shared_snapshot();
        let table_owner = if owns_the_table { &auditor } else { &role };
        w.exec(&format!(
            "CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, row_id text);
             ALTER TABLE public.audit_log OWNER TO {table_owner};
             ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.audit_log FORCE ROW LEVEL SECURITY;
             GRANT INSERT, SELECT ON public.audit_log TO {auditor};
             GRANT USAGE ON SEQUENCE public.audit_log_id_seq TO {auditor};
             CREATE POLICY audit_writes ON public.audit_log TO {auditor}
               USING (true) WITH CHECK (true);
             CREATE FUNCTION public.audit_workflow() RETURNS trigger LANGUAGE plpgsql
               SECURITY DEFINER AS $$
             BEGIN INSERT INTO public.audit_log (row_id) VALUES (NEW.id::text); RETURN NULL; END $$;
             ALTER FUNCTION public.audit_workflow() OWNER TO {auditor};
             CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
               FOR EACH ROW EXECUTE FUNCTION public.audit_workflow();"
        ));
        // The app's own insert passes the policy.
        let mut app = postgres_sync::Client::connect(&url, postgres_sync::NoTls).unwrap();
        app.batch_execute(
            "BEGIN; INSERT INTO public.workflows (name, definition) VALUES ('app', '{}'); \
             ROLLBACK;",
        )
        .unwrap_or_else(|e| panic!("{tag}: the app's insert: {e:?}"));
        let before = w.state();
        let the_table = if owns_the_table {
            format!("{auditor} owns public.audit_log, which forces row-level security on its owner")
        } else {
            format!("{auditor} does not own public.audit_log")
        };
        for confirm in [&[][..], &["--confirm"][..]] {
            let args = [&["--allow-writes", "public.audit_log"][..], confirm].concat();
            let run = w.push_as(&url, &args);
            run.refused(&[
                "row-level security policy for table \"audit_log\"",
                "trigger workflows_audit on public.workflows",
                "function public.audit_workflow() is SECURITY DEFINER",
                &format!("runs as its owner {auditor}"),
                &format!("{auditor} lacks BYPASSRLS"),
                &the_table,
                "ALTER FUNCTION public.audit_workflow() SET row_security = on;",
                &format!("ALTER ROLE \"{auditor}\" BYPASSRLS;"),
                "nothing was written",
            ]);
            assert!(
                !run.all().contains("Use a role with BYPASSRLS"),
                "{tag}: the tool's role is blamed: {}",
                run.show()
            );
            before.assert_same(&w.state(), "a push refused for the definer's row security");
        }
        // As advised: the function applies the policy, as for the app.
        w.exec("ALTER FUNCTION public.audit_workflow() SET row_security = on;");
        let advised = w.state();
        w.push_as(&url, &["--allow-writes", "public.audit_log"])
            .ok()
            .stdout_has("Dry run (preflight) passed");
        advised.assert_same(&w.state(), "a preflight after the advice");
    }
}

/// The world of the definer tests: the fixtures loaded as `role` (Supabase's
/// owner: NOSUPERUSER … BYPASSRLS), which owns the database, and an audit
/// table owned by `auditor` that FORCEs row-level security, with a policy
/// admitting `auditor`'s rows (the app's sessions pass it). Its URL as
/// `role`.
fn audit_log_of(tag: &str, role: &str, auditor: &str) -> (World, String) {
    let db = TestDb::create(tag);
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
            db.name
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    common::load_fixtures(&url, "plan");
    let w = World::in_db(db).with_shared_snapshot();
    w.exec(&format!(
        "CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, row_id text);
         ALTER TABLE public.audit_log OWNER TO {auditor};
         ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
         ALTER TABLE public.audit_log FORCE ROW LEVEL SECURITY;
         CREATE POLICY audit_writes ON public.audit_log TO {auditor}
           USING (true) WITH CHECK (true);
         CREATE FUNCTION public.write_audit(written text) RETURNS void LANGUAGE plpgsql
           SECURITY DEFINER AS $$
         BEGIN INSERT INTO public.audit_log (row_id) VALUES (written); END $$;
         ALTER FUNCTION public.write_audit(text) OWNER TO {auditor};"
    ));
    (w, url)
}

/// Issue 10 F4: the SECURITY DEFINER function that meets row-level
/// security is not the trigger's own: the trigger's function (SECURITY
/// INVOKER, or DEFINER owned by the tool's role) calls it. Before, the
/// refusal named the inner function and no trigger (only a trigger whose
/// own function it was). Now it names the trigger with the chain of calls
/// (`function public.audit_workflow() → public.write_audit(written text)`),
/// the inner function's owner and the table; exit 1, the whole database
/// unchanged; the advice on the inner function lets the preflight pass.
#[test]
fn row_level_security_in_a_definer_function_a_trigger_calls_names_the_chain() {
    for (tag, outer) in [
        ("rls_chain_invoker", "SECURITY INVOKER"),
        ("rls_chain_definer", "SECURITY DEFINER"),
    ] {
        // Declared first, so they are dropped after the database.
        let owner = TestRole::create(tag, "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS");
        let auditor = TestRole::create(&format!("{tag}_auditor"), "NOLOGIN NOSUPERUSER");
        let (role, auditor) = (owner.name.clone(), auditor.name.clone());
        let (w, url) = audit_log_of(tag, &role, &auditor);
        w.exec(&format!(
            "CREATE FUNCTION public.audit_workflow() RETURNS trigger LANGUAGE plpgsql {outer} AS $$
             BEGIN PERFORM public.write_audit(NEW.id::text); RETURN NULL; END $$;
             ALTER FUNCTION public.audit_workflow() OWNER TO {role};
             CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
               FOR EACH ROW EXECUTE FUNCTION public.audit_workflow();"
        ));
        let before = w.state();
        for confirm in [&[][..], &["--confirm"][..]] {
            let args = [&["--allow-writes", "public.audit_log"][..], confirm].concat();
            let run = w.push_as(&url, &args);
            run.refused(&[
                "row-level security policy for table \"audit_log\"",
                "function public.write_audit(written text) is SECURITY DEFINER, called by \
                 trigger workflows_audit on public.workflows (function public.audit_workflow() \
                 → public.write_audit(written text))",
                &format!("runs as its owner {auditor}"),
                &format!(
                    "{auditor} lacks BYPASSRLS and {auditor} owns public.audit_log, which forces"
                ),
                "ALTER FUNCTION public.write_audit(written text) SET row_security = on;",
                "nothing was written",
            ]);
            assert!(
                !run.all().contains("Use a role with BYPASSRLS"),
                "{tag}: the tool's role is blamed: {}",
                run.show()
            );
            before.assert_same(&w.state(), "a push refused for the definer's row security");
        }
        w.exec("ALTER FUNCTION public.write_audit(text) SET row_security = on;");
        let advised = w.state();
        w.push_as(&url, &["--allow-writes", "public.audit_log"])
            .ok()
            .stdout_has("Dry run (preflight) passed");
        advised.assert_same(&w.state(), "a preflight after the advice");
    }
}

/// Issue 10 (review): the push rehearses its undo before COMMIT; the
/// undo's DELETE of the pushed workflows fires an app trigger whose
/// SECURITY DEFINER function (owned by a role without BYPASSRLS) writes a
/// table whose row-level security applies to that owner. Before, the
/// push's refusal quoted Postgres's raw "query would be affected by
/// row-level security policy …" as the undo's. Now it is the refusal the
/// forward writes get (the function, its owner, the trigger, the table,
/// what to change), said of the rehearsed undo, so the push would not be
/// undoable; exit 1, the whole database unchanged.
#[test]
fn row_level_security_met_by_the_rehearsed_undo_is_named_as_for_the_push() {
    let tag = "rls_undo";
    let owner = TestRole::create(tag, "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS");
    let auditor = TestRole::create(&format!("{tag}_auditor"), "NOLOGIN NOSUPERUSER");
    let (role, auditor) = (owner.name.clone(), auditor.name.clone());
    let (w, url) = audit_log_of(tag, &role, &auditor);
    w.exec(
        "CREATE FUNCTION public.audit_deleted_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM public.write_audit(OLD.id::text); RETURN NULL; END $$;
         CREATE TRIGGER workflows_deleted AFTER DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.audit_deleted_workflow();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let args = [&["--allow-writes", "public.audit_log"][..], confirm].concat();
        let run = w.push_as(&url, &args);
        run.refused(&[
            "its rollback, rehearsed in the push's transaction before COMMIT, would be refused",
            "row-level security policy for table \"audit_log\"",
            "function public.write_audit(written text) is SECURITY DEFINER, called by \
             trigger workflows_deleted on public.workflows (function \
             public.audit_deleted_workflow() → public.write_audit(written text))",
            &format!("runs as its owner {auditor}"),
            &format!("{auditor} lacks BYPASSRLS and {auditor} owns public.audit_log"),
            "ALTER FUNCTION public.write_audit(written text) SET row_security = on;",
            "nothing was written",
        ]);
        assert!(
            !run.all().contains("Use a role with BYPASSRLS"),
            "the tool's role is blamed: {}",
            run.show()
        );
        before.assert_same(&w.state(), "a push whose undo meets row security");
    }
    w.exec("ALTER FUNCTION public.write_audit(text) SET row_security = on;");
    let advised = w.state();
    w.push_as(&url, &["--allow-writes", "public.audit_log"])
        .ok()
        .stdout_has("Dry run (preflight) passed");
    advised.assert_same(&w.state(), "a preflight after the advice");
}

/// The rehearsed undo meets row-level security as the tool's own role (no
/// BYPASSRLS; an audit table it owns FORCEs row-level security, written
/// only by an app trigger on the undo's DELETE): before, the push quoted
/// Postgres's raw "query would be affected by row-level security policy
/// …"; now the undo's refusal says why, as the push's own writes do (the
/// role, BYPASSRLS, FORCE); exit 1, the whole database unchanged.
#[test]
fn row_level_security_the_rehearsed_undo_meets_as_the_tools_role_is_explained() {
    let tag = "rls_undo_tool";
    let owner = TestRole::create(tag, "LOGIN NOSUPERUSER CREATEDB CREATEROLE");
    let role = owner.name.clone();
    let db = TestDb::create(tag);
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO {role}; ALTER SCHEMA public OWNER TO {role};",
            db.name
        ))
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    common::load_fixtures(&url, "plan");
    let w = World::in_db(db).with_shared_snapshot();
    let mut owner_client = postgres_sync::Client::connect(&url, postgres_sync::NoTls).unwrap();
    owner_client
        .batch_execute(
            "CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, row_id text);
             ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.audit_log FORCE ROW LEVEL SECURITY;
             CREATE POLICY audit_all ON public.audit_log USING (true) WITH CHECK (true);
             CREATE FUNCTION public.audit_deleted_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.audit_log (row_id) VALUES (OLD.id::text); RETURN NULL; END $$;
             CREATE TRIGGER workflows_deleted AFTER DELETE ON public.workflows
               FOR EACH ROW EXECUTE FUNCTION public.audit_deleted_workflow();",
        )
        .unwrap();
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let args = [&["--allow-writes", "public.audit_log"][..], confirm].concat();
        let run = w.push_as(&url, &args);
        run.refused(&[
            "its rollback, rehearsed in the push's transaction before COMMIT, would be refused \
             — Postgres refused the undo: deleting the pushed rows of workflows: query would be \
             affected by row-level security policy for table \"audit_log\" (SQLSTATE 42501) — \
             this role cannot read every row past row-level security",
            "Use a role with BYPASSRLS",
            "FORCE ROW LEVEL SECURITY",
            "nothing was written",
        ]);
        assert!(!run.all().contains("db error"), "raw: {}", run.show());
        before.assert_same(&w.state(), "a push whose undo meets row security");
    }
}

/// A write to a foreign table made by a function the trigger calls (not by
/// the trigger's own function) is found through the call and refused by
/// name, with the chain of calls.
#[test]
fn a_foreign_table_written_by_a_called_function_is_named_with_the_call_chain() {
    let w = world("foreign_called", "");
    loopback_foreign_table(&w);
    w.exec(
        "CREATE FUNCTION public.store_remote(id uuid, name text) RETURNS void LANGUAGE sql AS
           'INSERT INTO public.remote_log VALUES (id, name)';
         CREATE FUNCTION public.workflow_to_remote() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM store_remote(NEW.id, NEW.name); RETURN NULL; END $$;
         CREATE TRIGGER workflows_to_remote AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.workflow_to_remote();",
    );
    let before = w.state();
    w.push(&[]).refused(&[
        "trigger workflows_to_remote on public.workflows (function workflow_to_remote() → \
         store_remote(uuid,text)) names foreign table public.remote_log",
        "--allow-writes public.remote_log",
    ]);
    before.assert_same(&w.state(), "a push refused for a foreign write");
    assert_eq!(w.count("SELECT count(*) FROM remote_store.log"), 0);
}

/// `workflows.ext_no` and the app's own `app_events.id` draw from one
/// sequence (141 workflows numbered 1..141 when the column was added).
const SHARED_SEQUENCE: &str = "CREATE SEQUENCE public.shared_no_seq;
   ALTER TABLE public.workflows ADD COLUMN ext_no bigint DEFAULT nextval('public.shared_no_seq') UNIQUE;
   CREATE TABLE public.app_events (id bigint PRIMARY KEY DEFAULT nextval('public.shared_no_seq'), note text);";

/// Locks of `relation` held or awaited by the session named `app`, as
/// `mode granted`.
fn locks_of(c: &mut postgres_sync::Client, app: &str, relation: &str) -> Vec<String> {
    common::text_rows(
        c,
        &format!(
            "SELECT l.mode || ' ' || l.granted FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE a.application_name = '{app}' AND l.relation = to_regclass('{relation}') \
             ORDER BY 1"
        ),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// The push numbers 116 workflows itself (142..257) from a sequence the
/// app's `app_events` shares. Before, the push locked that sequence (ALTER
/// SEQUENCE) from phase 3B to COMMIT and every app insert into
/// `app_events` waited that long. Now, while the push is held up after
/// phase 3B (its verification query cannot plan `prompts`, which an app
/// session holds exclusively), it holds no lock on the sequence that
/// `nextval()` waits for, the app's inserts go through without waiting for
/// any lock, and they get numbers past every one the push writes. A number
/// the app drew after the pull that the push also writes refuses the push,
/// naming it, with nothing written; rollback leaves the shared sequence.
#[test]
fn a_sequence_shared_with_the_app_never_blocks_its_inserts_nor_hands_out_pushed_numbers() {
    let w = World::loaded("shared_sequence", "plan").with_sql(SHARED_SEQUENCE);
    let dir = tempfile::tempdir().unwrap();
    let plan = numbering_plan(&dir.path().join("numbered"), &["ext_no"]);
    let w = w.with_plan(&plan);
    w.pull(&[]).ok();
    w.rehearse(&[]).ok().stdout_has("PASSED");

    let mut holder = w.db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE prompts IN ACCESS EXCLUSIVE MODE")
        .expect("the app holds prompts");
    let push = common::Sandbox::new(&[
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--plan",
        plan.to_str().unwrap(),
        "--confirm",
        "--lock-timeout",
        "120000",
    ])
    .spawn();
    let mut monitor = w.db.client();
    // Wait (bounded) until the push waits for prompts: all phases are done.
    let mut polls = 0;
    while !locks_of(&mut monitor, "sandbox", "public.prompts")
        .iter()
        .any(|l| l.ends_with("false"))
    {
        polls += 1;
        assert!(
            polls < 1200,
            "the push never reached the verification queries"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let held = locks_of(&mut monitor, "sandbox", "public.shared_no_seq");
    assert!(
        held.iter()
            .all(|l| l.starts_with("AccessShareLock") || l.starts_with("RowExclusiveLock")),
        "the push holds a lock on the shared sequence that nextval() waits for: {held:?}"
    );
    // The app inserts while the push is open; lock_timeout 1 ms: any wait
    // for a lock fails the insert.
    let mut app = w.db.client();
    app.batch_execute("SET lock_timeout = 1").unwrap();
    let during: Vec<i64> = app
        .query(
            "INSERT INTO app_events (note) SELECT 'during the push' FROM generate_series(1, 3) \
             RETURNING id",
            &[],
        )
        .unwrap_or_else(|e| panic!("the app's insert waited for a lock of the push: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        during.iter().all(|id| *id > 257),
        "the app drew numbers the push writes: {during:?}"
    );
    holder.batch_execute("COMMIT").unwrap();
    let run = push.finish();
    run.ok().stdout_has(
        "Sequence public.shared_no_seq (workflows.ext_no, values up to 257): moved past the \
         values written by drawing them, as it also numbers app_events.id",
    );
    assert_eq!(
        w.count("SELECT count(*) FROM app_events a JOIN workflows w ON w.ext_no = a.id"),
        0,
        "a number in both tables"
    );
    assert_eq!(w.count("SELECT count(*) FROM workflows"), 368);
    let after: i64 = w.count("INSERT INTO app_events (note) VALUES ('after') RETURNING id");
    assert!(after > w.count("SELECT max(ext_no) FROM workflows"));

    // Rollback leaves the shared sequence where the draws put it.
    w.rollback(&run.receipt(), &["--confirm"])
        .ok()
        .stdout_has("app_events.id draw from it too");
    assert_eq!(w.count("SELECT count(*) FROM workflows"), 141);
    assert_eq!(w.count("SELECT count(*) FROM app_events"), 4);
    assert!(w.count("SELECT last_value FROM shared_no_seq") >= after);

    // A number the app drew after the pull that the push writes too.
    w.exec("INSERT INTO app_events (id, note) VALUES (150, 'drawn after the pull')");
    let before = w.state();
    w.push(&["--confirm"]).code(1).error_has(&[
        "sequence public.shared_no_seq",
        "app_events.id holds 150",
        "nothing was written",
        "Pull again",
    ]);
    before.assert_same(&w.state(), "a push refused for a number the app holds");
}

/// The dry run draws nothing from a sequence the app shares (H8 R46). The
/// plan numbers 116 workflows itself (142..257) in `ext_no`, whose sequence
/// `app_events.id` draws from too, and leaves the 111 of phase 3C to it.
/// Before, the dry run drew the shared sequence past 257 with `nextval()`
/// and phase 3C drew 111 more: next value 142 -> 369 for good, though
/// "nothing was written". Now it reads where the sequence stands, checks
/// the draw against its maximum, numbers its own 3C rows from where the
/// draw would leave it (258..368), and says what `--confirm` would draw:
/// the sequence and the whole database are as before. A maximum the push
/// would pass refuses the dry run by name, drawing nothing either. The
/// push then applies and rollback restores every row.
#[test]
fn a_dry_run_draws_nothing_from_a_sequence_shared_with_the_app() {
    let w = World::loaded("dry_run_shared_sequence", "plan").with_sql(SHARED_SEQUENCE);
    let dir = tempfile::tempdir().unwrap();
    let plan = numbering_plan(&dir.path().join("numbered"), &["ext_no"]);
    let w = w.with_plan(&plan);
    w.pull(&[]).ok();
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    let positions = common::sequence_positions(w.url());
    assert_eq!(positions["public.shared_no_seq"], ("141".to_string(), true));

    let run = w.push(&[]);
    run.ok()
        .stdout_has(
            "Sequence public.shared_no_seq (workflows.ext_no, values up to 257): `--confirm` \
             would draw 116 values (142 to 257) to move it past the values written, as it also \
             numbers app_events.id; this dry run drew none",
        )
        .stdout_has("Nothing was written.");
    before.assert_same(&w.state(), "a dry run");
    assert_eq!(
        common::sequence_positions(w.url()),
        positions,
        "the dry run moved a sequence"
    );

    // A maximum the draws would pass: named, and still nothing drawn.
    w.exec("ALTER SEQUENCE shared_no_seq MAXVALUE 300");
    let positions = common::sequence_positions(w.url());
    w.push(&[]).code(1).error_has(&[
        "sequence public.shared_no_seq",
        "maximum value 300",
        "workflows.ext_no",
    ]);
    before.assert_same(&w.state(), "a dry run refused at the sequence's maximum");
    assert_eq!(common::sequence_positions(w.url()), positions);
    w.exec("ALTER SEQUENCE shared_no_seq NO MAXVALUE");

    let run = w.push(&["--confirm"]);
    run.ok();
    assert_eq!(
        w.count("SELECT count(DISTINCT ext_no) FROM workflows WHERE ext_no > 257"),
        111,
        "phase 3C's rows drew 258.. from the sequence"
    );
    assert_eq!(w.count("SELECT last_value FROM shared_no_seq"), 368);
    w.rollback_restores(&run.receipt(), &before, "push then rollback");
}

/// The dry run draws nothing from an identity or serial sequence either:
/// the 227 new workflows leave `ext_no` (identity) and `legacy_no`
/// (serial) to Postgres. Before, the dry run drew 227 from each for good.
#[test]
fn a_dry_run_draws_nothing_for_the_rows_it_leaves_to_a_sequence() {
    let w = World::loaded("dry_run_identity", "plan")
        .with_sql(NUMBERED)
        .pulled()
        .rehearsed();
    let before = w.state();
    let positions = common::sequence_positions(w.url());
    w.push(&[]).ok().stdout_has("Nothing was written.");
    before.assert_same(&w.state(), "a dry run");
    assert_eq!(
        common::sequence_positions(w.url()),
        positions,
        "the dry run moved a sequence"
    );
    let run = w.push(&["--confirm"]);
    run.ok();
    assert_eq!(
        w.count("SELECT count(DISTINCT legacy_no) FROM workflows WHERE legacy_no > 141"),
        227
    );
    w.rollback_restores(&run.receipt(), &before, "push then rollback");
}

/// A column whose DEFAULT is its domain's `nextval()` — through a domain
/// over a domain — and not its own (V3, W7).
const DOMAIN_NUMBERED: &str = "CREATE SEQUENCE public.legacy_seq;
   CREATE DOMAIN public.legacy_number AS int DEFAULT nextval('public.legacy_seq');
   CREATE DOMAIN public.legacy_ref AS public.legacy_number CHECK (VALUE > 0);
   ALTER TABLE public.workflows ADD COLUMN legacy_no public.legacy_ref UNIQUE;";

/// The dry run draws nothing from a sequence a domain's DEFAULT draws
/// from (V3, W7): the 227 new workflows leave `legacy_no`, of a domain
/// over a domain `DEFAULT nextval('legacy_seq')`, to Postgres. Before, the
/// sequence was found only through column defaults and identities, so the
/// dry run let Postgres draw 227 values from it for good (last value 141
/// -> 368) and said so only as "sequences are never rolled back". Now it
/// numbers those rows itself as for a column's own default: the sequence
/// stands where it stood, the push draws 142..368 and rollback moves the
/// sequence back to 141.
#[test]
fn a_dry_run_draws_nothing_from_a_sequence_behind_a_domain_default() {
    let w = World::loaded("dry_run_domain_seq", "plan")
        .with_sql(DOMAIN_NUMBERED)
        .rehearsed();
    let before = w.state();
    let positions = common::sequence_positions(w.url());
    assert_eq!(positions["public.legacy_seq"], ("141".to_string(), true));
    w.push(&[]).ok().stdout_has("Nothing was written.");
    before.assert_same(&w.state(), "a dry run");
    assert_eq!(
        common::sequence_positions(w.url()),
        positions,
        "the dry run moved a sequence"
    );
    let run = w.push(&["--confirm"]);
    run.ok();
    assert_eq!(
        w.count("SELECT count(DISTINCT legacy_no) FROM workflows WHERE legacy_no > 141"),
        227
    );
    w.rollback_restores(&run.receipt(), &before, "push then rollback");
    assert_eq!(w.count("SELECT last_value FROM public.legacy_seq"), 368);
}

/// Explicit values in a column numbered by its domain's DEFAULT move that
/// sequence as a column default's would (V3): phase 3B numbers its 116
/// workflows itself (142..257), phase 3C leaves 111 to Postgres. Before,
/// the sequence was not moved, so 3C drew 142 again and Postgres refused
/// the push on workflows_legacy_no_key. Now the dry run draws nothing,
/// the push moves the sequence past 257 (3C gets 258..368), and rollback
/// moves it back, unused since, to where it stood.
#[test]
fn explicit_values_move_the_sequence_behind_a_domain_default() {
    let w = World::loaded("explicit_domain_seq", "plan").with_sql(DOMAIN_NUMBERED);
    let dir = tempfile::tempdir().unwrap();
    let w = w.with_plan(&numbering_plan(
        &dir.path().join("numbered"),
        &["legacy_no"],
    ));
    let w = w.rehearsed();
    let before = w.state();
    let positions = common::sequence_positions(w.url());
    w.push(&[])
        .ok()
        .stdout_has("public.legacy_seq")
        .stdout_has("Nothing was written.");
    before.assert_same(&w.state(), "a dry run");
    assert_eq!(common::sequence_positions(w.url()), positions);
    let run = w.push(&["--confirm"]);
    run.ok();
    assert_eq!(
        w.count("SELECT count(DISTINCT legacy_no) FROM workflows WHERE legacy_no > 257"),
        111,
        "phase 3C's rows drew 258.. from the sequence"
    );
    assert_eq!(w.count("SELECT last_value FROM public.legacy_seq"), 368);
    w.rollback(&run.receipt(), &["--confirm"]).ok();
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
    assert_eq!(
        w.count(
            "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END \
             FROM public.legacy_seq"
        ),
        142,
        "rollback moves the sequence back to where it stood"
    );
}

/// `nextval()` is never rolled back: an audit trigger numbering its rows
/// from a bigserial advances that sequence in the preflight for good. The
/// preflight says which sequence it advanced and by how much instead of
/// "Nothing was written"; every row and object is as before.
#[test]
fn the_preflight_names_the_sequences_it_advanced() {
    let w = world(
        "preflight_sequences",
        "CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, row_id text);
         CREATE FUNCTION public.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.audit_log (row_id) VALUES (NEW.id::text); RETURN NULL; END $$;
         CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.log_row();",
    );
    let before = w.state();
    let run = w.push(&["--allow-writes", "audit_log"]);
    run.ok()
        .stdout_has("sequences are never rolled back: it advanced public.audit_log_id_seq by 227 (last value none → 227)");
    assert!(
        !run.stdout.contains("Nothing was written"),
        "{}",
        run.show()
    );
    before.assert_same(&w.state(), "a preflight");
    assert_eq!(
        w.count("SELECT last_value FROM public.audit_log_id_seq"),
        227,
        "what the report says is where the sequence stands"
    );
    // A second preflight counts from there.
    w.push(&["--allow-writes", "audit_log"])
        .ok()
        .stdout_has("public.audit_log_id_seq by 227 (last value 227 → 454)");
}

/// An app's history of its workflows: an AFTER INSERT OR UPDATE trigger on
/// workflows logs each into `app.workflow_history`, whose rows go with
/// their workflow (`ON DELETE CASCADE`). Three rows of history are the
/// app's, for pulled workflows.
const WORKFLOW_HISTORY: &str = "CREATE SCHEMA app;
   CREATE TABLE app.workflow_history (id bigserial PRIMARY KEY,
     workflow_id uuid NOT NULL REFERENCES public.workflows (id) ON DELETE CASCADE,
     op text NOT NULL, name text);
   CREATE FUNCTION app.log_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     INSERT INTO app.workflow_history (workflow_id, op, name) VALUES (NEW.id, TG_OP, NEW.name);
     RETURN NULL;
   END $$;
   CREATE TRIGGER workflows_history AFTER INSERT OR UPDATE ON public.workflows
     FOR EACH ROW EXECUTE FUNCTION app.log_workflow();
   INSERT INTO app.workflow_history (workflow_id, op)
     SELECT id, 'seed' FROM public.workflows ORDER BY id LIMIT 3;";

const ALLOW_HISTORY: [&str; 2] = ["--allow-writes", "app.workflow_history"];

/// The history rows the push's own allowed trigger wrote go with its
/// rollback (V20, W12). Before, every push refused unless
/// --allow-irreversible: the rehearsed undo found "227 rows of
/// app.workflow_history reference pushed rows of workflows through
/// constraint workflow_history_workflow_id_fkey (ON DELETE CASCADE)",
/// rows the push itself wrote, and the refusal began with "Sequences are
/// never rolled back: … app.workflow_history_id_seq advanced" instead of
/// its cause. Now the receipt records those rows (each as it was
/// written), the undo counts their cascaded deletes as its own, and push
/// applies without --allow-irreversible; rollback brings the whole
/// database back, the app's three rows of history with it. A refusal that
/// drew values leads with its cause.
#[test]
fn history_rows_the_push_s_own_trigger_wrote_go_with_its_rollback() {
    let w = world("own_history", WORKFLOW_HISTORY);
    let before = w.state();
    // Not allowed: refused for the write, the sequence remark after it.
    let refused = w.push(&[]);
    refused.refused(&["app.workflow_history"]);
    let first = refused
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first
            .find("Sequences are never rolled back")
            .is_some_and(|i| i > "error: ".len() + 20)
            && first.contains("app.workflow_history_id_seq")
            && first.starts_with("error: checks failed on Postgres"),
        "the cause first, the draw after it: {}",
        refused.show()
    );
    before.assert_same(&w.state(), "a refused preflight");

    w.push(&ALLOW_HISTORY)
        .ok()
        .stdout_has("Rollback rehearsed in the transaction before COMMIT: it would undo this push");
    before.assert_same(&w.state(), "a dry run");
    let run = w.push(&[&ALLOW_HISTORY[..], &["--confirm"]].concat());
    run.ok();
    assert_eq!(
        w.count("SELECT count(*) FROM app.workflow_history WHERE op = 'INSERT'"),
        227
    );
    let receipt = run.receipt();
    w.rollback(&receipt, &[]).ok().stdout_has(
        "Would delete with the pushed rows, through ON DELETE CASCADE, the rows the push's \
         allowed side effects wrote that reference them, as the receipt recorded them: 227 of \
         app.workflow_history (foreign key workflow_history_workflow_id_fkey)",
    );
    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("227 of app.workflow_history");
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push then rollback");
}

/// What the app wrote there after the push is not the push's (V20): a
/// history row the app added for a pushed workflow, or one of the push's
/// rows the app changed, would go with the rollback's delete, so the
/// rollback refuses, naming table, constraint and count, and changes
/// nothing.
#[test]
fn an_app_history_row_of_a_pushed_workflow_still_refuses_the_rollback() {
    let w = world("app_history", WORKFLOW_HISTORY);
    let run = w.push(&[&ALLOW_HISTORY[..], &["--confirm"]].concat());
    run.ok();
    let receipt = run.receipt();
    w.exec(
        "INSERT INTO app.workflow_history (workflow_id, op) \
         SELECT workflow_id, 'app' FROM app.workflow_history WHERE op = 'INSERT' ORDER BY id LIMIT 1",
    );
    let before = w.state();
    w.rollback(&receipt, &["--confirm"]).code(1).error_has(&[
        "1 row of app.workflow_history references pushed rows of workflows through constraint \
         workflow_history_workflow_id_fkey (ON DELETE CASCADE) that the push did not write",
    ]);
    before.assert_same(&w.state(), "a refused rollback");

    w.exec(
        "DELETE FROM app.workflow_history WHERE op = 'app'; \
         UPDATE app.workflow_history SET name = 'renamed by the app' \
         WHERE id = (SELECT min(id) FROM app.workflow_history WHERE op = 'INSERT')",
    );
    let before = w.state();
    w.rollback(&receipt, &["--confirm"]).code(1).error_has(&[
        "1 row of app.workflow_history references pushed rows of workflows",
        "workflow_history_workflow_id_fkey",
    ]);
    before.assert_same(&w.state(), "a refused rollback");
}

/// The rollback's dry run says which sequences it advanced (H8 S2). An
/// audit trigger numbering its rows from a bigserial fires for each of the
/// 227 workflows the undo deletes and draws a value, which no ROLLBACK
/// gives back. Before, the dry run printed "Nothing was changed" while the
/// audit sequence had moved 227 further; now it names the sequence and by
/// how much, as push's preflight does, and every row and object is as
/// before.
#[test]
fn the_rollback_dry_run_names_the_sequences_it_advanced() {
    let w = world(
        "rollback_dry_run_sequences",
        "CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, row_id text);
         CREATE FUNCTION public.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.audit_log (row_id) VALUES (OLD.id::text); RETURN NULL; END $$;
         CREATE TRIGGER workflows_audit AFTER DELETE ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION public.log_row();",
    );
    let run = w.push(&["--confirm", "--allow-writes", "audit_log"]);
    run.ok();
    let receipt = run.receipt();
    let pushed = w.state();
    let last = || w.count("SELECT last_value FROM public.audit_log_id_seq");
    let was = last();
    let run = w.rollback(&receipt, &[]);
    run.ok().stdout_has(&format!(
        "No row was changed, but sequences are never rolled back: this dry run advanced \
         public.audit_log_id_seq by 227 (last value {was} → {})",
        was + 227
    ));
    assert!(
        !run.stdout.contains("Nothing was changed"),
        "{}",
        run.show()
    );
    pushed.assert_same(&w.state(), "a rollback dry run");
    assert_eq!(last(), was + 227, "what the report says is where it stands");
}

/// `diff --sql` is what push does, on a database where that is hard: the
/// app's search_path is `app, public` (its audit trigger writes an
/// unqualified `audit_log`), and phase 3B numbers its 116 workflows itself
/// in a column drawing from a sequence the app's `app_events` shares and
/// in a serial of their own (phase 3C then leaves both to Postgres). Two
/// databases from the same fixtures: push one, `psql -f` the script on the
/// other. Before, the script wrote the rows under the pinned path (the
/// trigger wrote `public.audit_log`: 227 + 105 rows where push wrote
/// `app.audit_log`) and moved no sequence (phase 3C's rows drew 142 again:
/// duplicate key on ext_no, the script stopped). Now the whole databases
/// are equal (the audit rows by content: their ids differ by what push's
/// rehearsed undo drew), and so are the two sequences.
#[test]
fn the_diff_sql_script_moves_sequences_and_writes_under_the_apps_path_as_push_does() {
    let w = World::loaded("sql_hostile", "plan")
        .with_sql(APP_PATH_AUDIT)
        .with_sql(SHARED_SEQUENCE)
        .with_sql("ALTER TABLE public.workflows ADD COLUMN legacy_no serial UNIQUE;");
    let db = w.db.name.clone();
    let app_path = |db: &str| format!("ALTER DATABASE \"{db}\" SET search_path = app, public");
    w.exec(&app_path(&db));
    let dir = tempfile::tempdir().unwrap();
    let plan = numbering_plan(&dir.path().join("numbered"), &["ext_no", "legacy_no"]);
    let w = w.with_plan(&plan);
    w.pull(&[]).ok();
    w.rehearse(&[]).ok().stdout_has("PASSED");
    // A database setting is not copied with the template.
    let copy = TestDb::from_template(&db, "sql_hostile_copy");
    copy.client().batch_execute(&app_path(&copy.name)).unwrap();
    let script = dir.path().join("migration.sql");
    w.diff(&["--sql", script.to_str().unwrap()]).ok();

    w.push(&["--confirm", "--allow-writes", "app.audit_log"])
        .ok();
    let run = common::psql_file(&copy.url, &script);
    run.ok();
    assert!(!run.stderr.contains("ERROR"), "psql: {}", run.stderr);

    let audit = [("app.audit_log", "t.tbl || ' ' || t.op || ' ' || t.row_id")];
    let pushed = common::whole_database_state_with(w.url(), &audit).without_schema("sandbox");
    let scripted = common::whole_database_state_with(&copy.url, &audit).without_schema("sandbox");
    assert_eq!(pushed.row_count("app.audit_log"), 227 + 105);
    pushed.assert_same(&scripted, "from the push to the diff --sql script");
    let sequences = |url: &str| {
        let mut s = common::sequence_positions(url);
        s.retain(|name, _| !name.starts_with("sandbox.") && !name.contains("audit_log"));
        s
    };
    let (p, s) = (sequences(w.url()), sequences(&copy.url));
    assert_eq!(p, s);
    assert_eq!(
        p["public.shared_no_seq"].0,
        p["public.workflows_legacy_no_seq"].0
    );
}

/// Issue 10: `diff --sql` wrote `DO` blocks (the held-off stamp triggers
/// looked up and toggled, each sequence moved), so where `REVOKE USAGE ON
/// LANGUAGE plpgsql FROM PUBLIC` was run (hardened Supabase) a DBA running
/// it as the database's owner got "permission denied for language
/// plpgsql" and nothing applied. Now the script is plain SQL: run with
/// `psql -f` by a Supabase-like owner (`NOSUPERUSER`, owning the tables),
/// with the app's `updated_at` stamp held off and two sequences numbering
/// the pushed workflows (one shared with the app's `app_events`), it
/// leaves the whole database, sequences included, as `push --confirm`
/// does. A stamp the app switched to `ENABLE ALWAYS` since the pull (the
/// script would enable it back as plain `ENABLE`) stops the script,
/// naming it, and nothing is applied.
#[test]
fn the_diff_sql_script_runs_where_plpgsql_is_revoked_as_push_does() {
    // Declared first, so it is dropped after the databases it owns.
    let owner = TestRole::create(
        "sql_no_plpgsql",
        "LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS",
    );
    let role = owner.name.clone();
    let db = TestDb::create("sql_no_plpgsql");
    let own = |name: &str| {
        format!("ALTER DATABASE \"{name}\" OWNER TO \"{role}\"; ALTER SCHEMA public OWNER TO \"{role}\";")
    };
    db.client().batch_execute(&own(&db.name)).unwrap();
    let as_owner = |url: &str| url.replacen("postgres@", &format!("{role}@"), 1);
    let url = as_owner(&db.url);
    // The fixtures' trigger functions are plpgsql: made before the revoke.
    common::load_fixtures(&url, "plan");
    common::postgres_admin(&url)
        .batch_execute(&format!(
            "{SHARED_SEQUENCE} ALTER TABLE public.workflows ADD COLUMN legacy_no serial UNIQUE;"
        ))
        .unwrap();
    db.client()
        .batch_execute("REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC")
        .unwrap();
    // Copies before the push: the script runs on them.
    let copy = TestDb::from_template(&db.name, "sql_no_plpgsql_copy");
    let always = TestDb::from_template(&db.name, "sql_no_plpgsql_always");
    for c in [&copy, &always] {
        c.client().batch_execute(&own(&c.name)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = numbering_plan(&dir.path().join("numbered"), &["ext_no", "legacy_no"]);
    let p = plan.to_str().unwrap();
    let snap = dir.path().join("s.sqlite");
    let s = snap.to_str().unwrap();
    sandbox(&["pull", "--database-url", &url, "--out", s, "--plan", p]).ok();
    sandbox(&["rehearse", "--snapshot", s, "--plan", p])
        .ok()
        .stdout_has("PASSED");
    let script = dir.path().join("migration.sql");
    sandbox(&[
        "diff",
        "--snapshot",
        s,
        "--plan",
        p,
        "--sql",
        script.to_str().unwrap(),
    ])
    .ok();
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(!text.contains("DO $"), "a DO block in the script:\n{text}");
    assert!(
        text.contains(
            "ALTER TABLE public.\"jtbd_library\" DISABLE TRIGGER \"jtbd_library_set_updated_at\";"
        ),
        "{text}"
    );
    sandbox(&[
        "push",
        "--database-url",
        &url,
        "--snapshot",
        s,
        "--plan",
        p,
        "--confirm",
    ])
    .ok()
    .stdout_has("held off");

    let run = common::psql_file(&as_owner(&copy.url), &script);
    run.ok();
    assert!(!run.stderr.contains("ERROR"), "psql: {}", run.stderr);
    whole_database_state(&db.url)
        .without_schema("sandbox")
        .assert_same(
            &whole_database_state(&copy.url).without_schema("sandbox"),
            "from push --confirm to psql -f of diff --sql, plpgsql revoked",
        );
    let sequences = |url: &str| {
        let mut s = common::sequence_positions(url);
        s.retain(|name, _| !name.starts_with("sandbox."));
        s
    };
    assert_eq!(sequences(&db.url), sequences(&copy.url));

    // The stamp switched to ENABLE ALWAYS since the pull: plain SQL cannot
    // put that mode back, so the script stops before writing anything.
    always
        .client()
        .batch_execute(
            "ALTER TABLE public.jtbd_library ENABLE ALWAYS TRIGGER jtbd_library_set_updated_at",
        )
        .unwrap();
    let unchanged = whole_database_state(&always.url);
    let positions = sequences(&always.url);
    let run = common::psql_file(&as_owner(&always.url), &script);
    assert_eq!(run.code, 3, "{}", run.show());
    for said in [
        "this expectation no longer holds",
        "(trigger jtbd_library_set_updated_at, on public.jtbd_library, enabled with ENABLE \
         (not ALWAYS), as at the pull, f)",
    ] {
        assert!(run.stderr.contains(said), "{said}: {}", run.stderr);
    }
    unchanged.assert_same(
        &whole_database_state(&always.url),
        "a script stopped by a stamp enabled ALWAYS",
    );
    assert_eq!(positions, sequences(&always.url));
}

/// Issue 10: the effects search goes by the same tag matching as the
/// trigger list (W14). An event trigger `ON ddl_command_end WHEN TAG IN
/// ('CREATE FUNCTION')` whose function reaches dblink_exec never fires for
/// the push (CREATE SCHEMA, CREATE TABLE, ALTER TABLE; the rehearsed
/// rollback's DROP TABLE). Before (main b593f62): the effects search read
/// every enabled event trigger, and the preflight was refused (exit 1)
/// naming it, once per dblink_exec overload. Now it is not reached: the
/// preflight passes, push → rollback leaves the whole database as before,
/// and 0 remote rows. One filtered on ALTER TABLE still refuses, with one
/// line for dblink_exec, not one per overload.
#[test]
fn an_event_trigger_whose_tags_the_push_never_runs_is_no_effect_of_it() {
    let w = world("event_trigger_tags_effects", "");
    let conn = w.with_dblink();
    w.exec(&format!(
        "CREATE TABLE public.remote_log (tag text);
         CREATE FUNCTION public.tell_remote_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM dblink_exec('{conn}', 'INSERT INTO public.remote_log VALUES (''ddl'')'); END $$;
         CREATE EVENT TRIGGER tell_functions ON ddl_command_end WHEN TAG IN ('CREATE FUNCTION')
           EXECUTE FUNCTION public.tell_remote_ddl();"
    ));
    let before = w.state();
    let run = w.push(&[]);
    run.ok();
    assert!(!run.all().contains("tell_functions ("), "{}", run.show());
    before.assert_same(&w.state(), "a preflight");
    let receipt = w.push_confirmed();
    w.rollback_restores(&receipt, &before, "push, then rollback");
    assert_eq!(w.count("SELECT count(*) FROM public.remote_log"), 0);
    // Filtered on a command the push runs, it is reached: refused, and
    // dblink_exec is named once.
    w.exec(
        "CREATE EVENT TRIGGER tell_alters ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
           EXECUTE FUNCTION public.tell_remote_ddl();",
    );
    let before = w.state();
    let run = w.push(&[]);
    run.refused(&["event trigger tell_alters (function", "dblink_exec(…)"]);
    // No overload by its arguments: dblink_exec(text), (text, text) …
    assert!(!run.all().contains("dblink_exec(text"), "{}", run.show());
    assert!(!run.all().contains("tell_functions"), "{}", run.show());
    before.assert_same(&w.state(), "a refused preflight");
    assert_eq!(w.count("SELECT count(*) FROM public.remote_log"), 0);
}

/// An audit table and trigger of the app, and an event trigger switching
/// session_replication_role to replica for the rest of the transaction on
/// any DDL (`set_config(…, true)`, which no `SET LOCAL` at the start can
/// stop). Before: push and rollback said the audit trigger fires, exited 0
/// and committed with the audit table empty. The setting's name is built
/// at run time, so the preflight's reading of the function source does
/// not see the switch: the re-read of the settings inside the transaction
/// catches it (and says no source names it).
const GOES_QUIET: &str = "
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE app.audit (id bigserial PRIMARY KEY, tab text, op text);
CREATE FUNCTION app.audit_it() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO app.audit (tab, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;
CREATE TRIGGER workflows_audit AFTER INSERT OR DELETE ON public.workflows
  FOR EACH ROW EXECUTE FUNCTION app.audit_it();
CREATE FUNCTION app.quiet() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('session_' || 'replication_role', 'replica', true); END $$;
CREATE EVENT TRIGGER quiet ON ddl_command_start EXECUTE FUNCTION app.quiet();";

#[test]
fn replica_mode_switched_on_inside_the_transaction_refuses_push_and_rollback() {
    let w = world("goes_quiet", GOES_QUIET);
    let before = w.state();
    let named = [
        "session_replication_role is replica after",
        "changed inside it",
        "skipped every ordinary trigger and foreign-key check",
        "no function outside pg_catalog names it in its source",
    ];
    for confirm in [&[][..], &["--confirm", "--allow-writes", "app.audit"][..]] {
        w.push(confirm).refused(&named).refused(&[
            "refusing to push: session_replication_role is replica after",
            ". Rolled back, ",
        ]);
        before.assert_same(&w.state(), "a push an event trigger switched to replica");
    }
    // Pushed without the event trigger, rolled back with it.
    w.exec("ALTER EVENT TRIGGER quiet DISABLE");
    let run = w.push(&["--confirm", "--allow-writes", "app.audit"]);
    run.ok();
    assert_eq!(w.count("SELECT count(*) FROM app.audit"), 227);
    let receipt = run.receipt();
    w.exec("ALTER EVENT TRIGGER quiet ENABLE");
    let pushed = w.state();
    w.rollback(&receipt, &["--confirm", "--allow-writes", "app.audit"])
        .refused(&named)
        .refused(&[&format!(
            "refusing to roll back receipt {receipt}: session_replication_role is replica after"
        )]);
    pushed.assert_same(
        &w.state(),
        "a rollback an event trigger switched to replica",
    );
}

#[test]
fn replica_mode_switched_on_by_a_row_trigger_refuses_the_push() {
    let w = world(
        "import_mode",
        "CREATE SCHEMA app;
         CREATE TABLE app.audit (id bigserial PRIMARY KEY, tab text, op text);
         CREATE FUNCTION app.audit_it() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO app.audit (tab, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;
         CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.audit_it();
         CREATE FUNCTION app.import_mode() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM set_config('session_replication_role', 'replica', true); RETURN NEW; END $$;
         CREATE TRIGGER aa_import_mode BEFORE INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.import_mode();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm", "--allow-writes", "app.audit"][..]] {
        w.push(confirm).refused(&[
            "switches session_replication_role or track_counts",
            "aa_import_mode",
            "app.import_mode()",
            "may set session_replication_role",
        ]);
        before.assert_same(&w.state(), "a push a row trigger switched to replica");
    }
}

/// Switched to replica by a row trigger and back to origin by a statement
/// trigger of the same INSERT: nothing is left to see after the statement,
/// while Postgres skipped the app's audit trigger (queued after the first
/// row switched to replica). Before: push --confirm exited 0, said the
/// audit trigger fires, and the audit table got 0 rows of 227 (the re-read
/// after each phase found `origin` again). Now the preflight reads the switch in the functions' source
/// and refuses before anything is written, by trigger and function. A
/// trigger that only reads the setting (to skip itself under replication)
/// is no switch: with it instead, push and rollback pass.
#[test]
fn replica_mode_switched_on_and_back_within_a_statement_refuses_the_push() {
    let w = world(
        "replica_and_back",
        "CREATE SCHEMA app;
         CREATE TABLE app.audit (id bigserial PRIMARY KEY, tab text, op text);
         CREATE FUNCTION app.audit_it() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF current_setting('session_replication_role') = 'replica' THEN RETURN NULL; END IF;
           INSERT INTO app.audit (tab, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL;
         END $$;
         CREATE TRIGGER workflows_audit AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.audit_it();
         CREATE FUNCTION app.bulk_on() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN SET LOCAL session_replication_role = replica; RETURN NEW; END $$;
         CREATE FUNCTION app.bulk_off() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN EXECUTE 'SET LOCAL session_replication_role = origin'; RETURN NULL; END $$;
         CREATE TRIGGER aa_bulk_on BEFORE INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.bulk_on();
         CREATE TRIGGER zz_bulk_off AFTER INSERT ON public.workflows
           FOR EACH STATEMENT EXECUTE FUNCTION app.bulk_off();
         -- ALWAYS: it fires under replica too, and turns it back.
         ALTER TABLE public.workflows ENABLE ALWAYS TRIGGER zz_bulk_off;",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm", "--allow-writes", "app.audit"][..]] {
        let run = w.push(confirm);
        run.refused(&[
            "switches session_replication_role or track_counts",
            "aa_bulk_on",
            "app.bulk_on()",
            "zz_bulk_off",
            "app.bulk_off()",
        ]);
        // The audit trigger only reads the setting: not named as a switch.
        assert!(
            !run.all().contains("app.audit_it(): may set"),
            "{}",
            run.show()
        );
        before.assert_same(&w.state(), "a push switched to replica and back");
    }
    w.exec(
        "DROP TRIGGER aa_bulk_on ON public.workflows; DROP TRIGGER zz_bulk_off ON public.workflows",
    );
    let before = w.state();
    let receipt = w
        .push(&["--confirm", "--allow-writes", "app.audit"])
        .receipt();
    assert_eq!(w.count("SELECT count(*) FROM app.audit"), 227);
    w.rollback(&receipt, &["--confirm"]).ok();
    // All as before but the app's audit rows of the push (app data the
    // rollback leaves).
    let except_audit = |s: common::DatabaseState| s.without_schema("sandbox").without_schema("app");
    except_audit(before).assert_same(&except_audit(w.state()), "push, then rollback");
    // The switch in a function's own SET clause, not its body (h4's review:
    // the first version read only the body; a trigger under
    // `SET track_counts = off` deleted an app table's rows uncounted, and
    // push and rollback exited 0).
    w.exec(
        "CREATE TABLE app.notes (id int PRIMARY KEY);
         INSERT INTO app.notes SELECT generate_series(1, 50);
         CREATE FUNCTION app.tidy() RETURNS trigger LANGUAGE plpgsql SET track_counts = off AS $$
         BEGIN DELETE FROM app.notes; RETURN NULL; END $$;
         CREATE TRIGGER tidy AFTER INSERT ON public.workflows
           FOR EACH STATEMENT EXECUTE FUNCTION app.tidy();",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm", "--allow-writes", "app.audit"][..]] {
        w.push(confirm).refused(&[
            "trigger tidy on public.workflows",
            "app.tidy()",
            "may set track_counts (its SET clause sets track_counts=off)",
        ]);
        before.assert_same(
            &w.state(),
            "a push whose trigger runs with track_counts off",
        );
    }
    assert_eq!(w.count("SELECT count(*) FROM app.notes"), 50);
    // A function of another schema under the same name as one a trigger
    // calls qualified is not reached (h4's review: admin.log_change(),
    // which switches to replica and is never called, refused the push
    // with an invented chain app.audit_it() → admin.log_change()).
    w.exec(
        "DROP TRIGGER tidy ON public.workflows;
         CREATE SCHEMA admin;
         CREATE FUNCTION admin.log_change() RETURNS void LANGUAGE plpgsql AS $$
         BEGIN SET LOCAL session_replication_role = replica; END $$;
         CREATE FUNCTION app.log_change(t text, o text) RETURNS void LANGUAGE sql AS $$
           INSERT INTO app.audit (tab, op) VALUES (t, o) $$;
         CREATE FUNCTION app.audit_via() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM app.log_change(TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;
         CREATE TRIGGER audit_via AFTER INSERT ON public.workflows
           FOR EACH ROW EXECUTE FUNCTION app.audit_via();",
    );
    let before = w.state();
    let run = w.push(&["--allow-writes", "app.audit"]);
    run.ok();
    assert!(!run.all().contains("admin.log_change"), "{}", run.show());
    before.assert_same(&w.state(), "a preflight");
}

/// F7 (h5 review): an app's partitioned table whose foreign key into
/// `workflows` (cloned onto each partition) references two pushed
/// workflows. Before: the rollback's refusal listed the same 2 rows twice,
/// under the parent and again under the partition's cloned constraint. Now
/// once, under the parent; nothing changed.
#[test]
fn rows_of_a_partitioned_app_table_referencing_pushed_rows_are_counted_once() {
    let w = world(
        "partitioned_referencing",
        "CREATE TABLE public.wf_events (id bigint, at date NOT NULL DEFAULT '2026-12-01',
           workflow_id uuid REFERENCES public.workflows ON DELETE CASCADE) PARTITION BY RANGE (at);
         CREATE TABLE public.wf_events_2026 PARTITION OF public.wf_events
           FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
    );
    let already = w.count("SELECT count(*) FROM public.workflows");
    let receipt = w.push_confirmed();
    assert!(w.count("SELECT count(*) FROM public.workflows") > already);
    w.exec(
        "INSERT INTO public.wf_events (id, workflow_id) \
         SELECT 1, id FROM public.workflows WHERE definition ? 'workflow_id' ORDER BY id LIMIT 2",
    );
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(&receipt, confirm);
        run.code(1).error_has(&[
            "2 rows of public.wf_events reference pushed rows of workflows through constraint \
             wf_events_workflow_id_fkey (ON DELETE CASCADE)",
        ]);
        assert!(!run.all().contains("wf_events_2026"), "{}", run.show());
        before.assert_same(&w.state(), "a refused rollback");
    }
}
