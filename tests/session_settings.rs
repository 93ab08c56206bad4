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
