//! Push, rollback and pull under session settings a database or role can
//! carry (`ALTER DATABASE … SET …`), or a transaction-mode pooler can leave
//! on its server connection from another client's `SET`: what the tool reads
//! and checks must not depend on them. Each test compares the whole database
//! before and after.

mod common;

use std::time::{Duration, Instant};

use common::{postgres_admin, text_rows, DatabaseState, Proc, Sandbox, World};

/// `ALTER DATABASE <the world's database> SET <setting>` as the superuser:
/// every later connection (the tool's) starts with it.
fn database_setting(w: &World, setting: &str) {
    w.exec(&format!(
        "ALTER DATABASE \"{}\" SET {setting}",
        w.db.name.replace('"', "\"\"")
    ));
}

/// Waits until a `sandbox` session holds the advisory lock every push and
/// rollback takes right after its first statements (so its transaction has
/// begun and, under REPEATABLE READ, its snapshot is taken). Panics when the
/// process ends or a minute passes first.
fn wait_for_sandbox_transaction(w: &World, push: &mut Proc) {
    let mut c = w.db.client();
    let started = Instant::now();
    loop {
        let held = text_rows(
            &mut c,
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'sandbox'",
        );
        if held[0][0] != "0" {
            return;
        }
        assert!(push.running(), "the push ended before it took its locks");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the push never took its advisory lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `after` equals `before` except for the one row of `table` the app
/// changed: the key of that row.
fn only_the_app_row_changed(before: &DatabaseState, after: &DatabaseState, table: &str) -> String {
    let changed: Vec<&String> = before.rows[table]
        .iter()
        .filter(|(k, v)| after.rows[table].get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let [key] = changed.as_slice() else {
        panic!("expected one changed row of {table}, got {changed:?}");
    };
    let mut expected = before.clone();
    expected
        .rows
        .get_mut(table)
        .expect("table in state")
        .insert((*key).clone(), after.rows[table][*key].clone());
    expected.assert_same(after, "nothing but the app's own change");
    (*key).clone()
}

/// D12: with `default_transaction_isolation = 'repeatable read'` on the
/// database, an app change of a table the plan reads, committed while the
/// push waits for its lock, must still be seen by the drift check: push
/// refuses naming the drift and writes nothing.
#[test]
fn an_app_change_committed_while_push_waits_for_its_lock_is_drift_under_a_repeatable_read_default()
{
    let w = World::loaded("iso_rr", "plan").with_shared_snapshot();
    database_setting(&w, "default_transaction_isolation = 'repeatable read'");
    let before = w.state();

    // The app's own READ COMMITTED transaction changes a dh_tool row (the
    // plan builds `tools` from dh_tool) and holds its ROW EXCLUSIVE lock,
    // which the push's SHARE lock on dh_tool waits for.
    let mut app = postgres_admin(&format!("{}?application_name=sandbox_test_app", w.url()));
    let changed = text_rows(
        &mut app,
        "BEGIN ISOLATION LEVEL READ COMMITTED; \
         UPDATE dh_tool SET name = 'CHANGED BY APP' \
         WHERE id = (SELECT id FROM dh_tool ORDER BY id LIMIT 1) RETURNING id::text",
    );
    let id = changed[0][0].clone();

    let mut push = Sandbox::new(&[
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--confirm",
        "--lock-timeout",
        "600000",
    ])
    .spawn();
    wait_for_sandbox_transaction(&w, &mut push);
    app.batch_execute("COMMIT").expect("the app's COMMIT");
    let run = push.finish();
    run.code(1)
        .stderr_has("dh_tool unchanged since pull")
        .stderr_has(&format!("row {id} changed"))
        .stderr_has("nothing was written");
    let key = only_the_app_row_changed(&before, &w.state(), "public.dh_tool");
    assert_eq!(key, id);
}

/// D13: `session_replication_role = replica` on the database would keep
/// every ordinary trigger and foreign key from firing. Push pins `origin`
/// (this role may): a business trigger that raises still refuses the push
/// by its message, dry run and --confirm, and nothing is written.
#[test]
fn a_replica_session_replication_role_does_not_keep_a_raising_trigger_from_refusing() {
    let w = World::loaded("srr_replica", "plan")
        .with_shared_snapshot()
        .with_sql(
            "CREATE FUNCTION public.no_workflow_names() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.name LIKE '%Workflow%' THEN
                 RAISE EXCEPTION 'business rule: names may not contain Workflow';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER workflows_rule BEFORE INSERT ON public.workflows
               FOR EACH ROW EXECUTE FUNCTION public.no_workflow_names();",
        );
    database_setting(&w, "session_replication_role = replica");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&[
            "workflows_rule",
            "business rule: names may not contain Workflow",
        ]);
        before.assert_same(&w.state(), "a push refused by a raising trigger");
    }
}

/// D33: with `track_counts = off` on the database Postgres counts no writes,
/// and the write accounting would see nothing. Push pins it on (this role
/// may): a trigger's write to a table outside the plan still refuses the
/// push by name, and nothing is written.
#[test]
fn track_counts_off_does_not_blind_the_write_accounting() {
    let w = World::loaded("track_counts_off", "plan")
        .with_shared_snapshot()
        .with_sql(
            "CREATE TABLE public.audit_x (id bigserial PRIMARY KEY, note text);
             CREATE FUNCTION public.audit_x_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.audit_x (note) VALUES (NEW.name); RETURN NEW; END $$;
             CREATE TRIGGER workflows_audit_x AFTER INSERT ON public.workflows
               FOR EACH ROW EXECUTE FUNCTION public.audit_x_row();",
        );
    database_setting(&w, "track_counts = off");
    let before = w.state();
    for confirm in [&[][..], &["--confirm"][..]] {
        w.push(confirm).refused(&["public.audit_x", "227"]);
        before.assert_same(&w.state(), "a push refused by the write accounting");
    }
}

/// D24: with `quote_all_identifiers = on` on the database, pull records the
/// catalog as usual (`jsonb`, not `"jsonb"`) and the built-in plan's
/// rehearsal passes; nothing in the database changes.
#[test]
fn quote_all_identifiers_on_the_database_leaves_pull_and_rehearse_as_usual() {
    let w = World::loaded("quote_all_identifiers", "plan");
    database_setting(&w, "quote_all_identifiers = on");
    let before = w.state();
    let w = w.rehearsed();
    before.assert_same(&w.state(), "pull and rehearse");
}
