//! Push and rollback against a live, remote database (issue 11): the app
//! keeps writing tables the plan never touches, the link has latency, and
//! lock acquisition must never make the app queue behind the push.

mod common;

use common::{admin_url, behind_latency_link, postgres_admin};

/// The latency link delays every round trip by at least its RTT and counts
/// what the server sent.
#[test]
fn the_latency_link_adds_its_round_trip_time_and_counts_bytes() {
    let (proxy, url) = behind_latency_link(&admin_url(), 100, Some(200.0));
    let mut c = postgres_admin(&url);
    let before = proxy.bytes_to_client();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        c.simple_query("SELECT repeat('x', 100000)").expect("query");
    }
    // Three sequential round trips cannot take less than three RTTs: a lower
    // bound, which no slow machine can break.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(
        proxy.bytes_to_client() - before >= 300_000,
        "{} bytes counted",
        proxy.bytes_to_client() - before
    );
}

use common::{scalar, Run, World};

/// A database with the plan fixtures, pulled and rehearsed (which passes).
fn live(tag: &str) -> World {
    World::loaded(tag, "plan").rehearsed()
}

/// How many locks the tool's session (application_name `sandbox`) on this
/// database holds (`granted`) or waits for, on `public.{table}`, in `mode`
/// when given: a query for [`scalar`].
fn sandbox_locks(granted: bool, mode: Option<&str>, table: &str) -> String {
    format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.application_name = 'sandbox' AND a.datname = current_database() \
         AND {}l.granted{} AND l.relation = 'public.{table}'::regclass",
        if granted { "" } else { "NOT " },
        mode.map(|m| format!(" AND l.mode = '{m}'"))
            .unwrap_or_default()
    )
}

/// The app's write to one `prompts` row: a new prompt copied from an
/// existing one, returning its id.
const APP_INSERTS_A_PROMPT: &str =
    "INSERT INTO prompts SELECT (jsonb_populate_record(NULL::prompts, \
     to_jsonb(p) || jsonb_build_object('id', gen_random_uuid(), 'name', 'app row'))).* \
     FROM prompts p ORDER BY p.id LIMIT 1 RETURNING id::text";

#[test]
fn app_writes_to_tables_the_plan_never_touches_survive_push_and_rollback() {
    let w = live("live_app");
    let mut c = w.db.client();
    // Between pull and push: the app edits one prompt and adds another.
    c.batch_execute(
        "UPDATE prompts SET name = name || ' (app edit)' WHERE id = (SELECT min(id::text)::uuid FROM prompts)",
    )
    .expect("app update");
    let before_push = scalar(&mut c, APP_INSERTS_A_PROMPT);
    let receipt = w.push_confirmed();
    assert_eq!(
        scalar(&mut c, "SELECT count(*) FROM workflows"),
        "368",
        "the plan was applied"
    );
    // After the push: more app writes, to prompts and to personas.
    let after_push = scalar(&mut c, APP_INSERTS_A_PROMPT);
    c.batch_execute("DELETE FROM personas WHERE id = (SELECT min(id::text)::uuid FROM personas)")
        .expect("app delete");
    let prompts_now = scalar(&mut c, "SELECT count(*) FROM prompts");
    w.rollback(&receipt, &["--confirm"]).ok();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");
    assert_eq!(
        scalar(&mut c, "SELECT to_regclass('public.tasks') IS NULL"),
        "t"
    );
    for id in [&before_push, &after_push] {
        assert_eq!(
            scalar(
                &mut c,
                &format!("SELECT count(*) FROM prompts WHERE id = '{id}' AND name = 'app row'")
            ),
            "1",
            "the app's prompt {id} survived"
        );
    }
    assert_eq!(
        scalar(
            &mut c,
            "SELECT count(*) FROM prompts WHERE name LIKE '% (app edit)'"
        ),
        "1"
    );
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM prompts"), prompts_now);

    // With --strict (the app switched off) the same writes refuse a push.
    let w = live("live_strict");
    let mut c = w.db.client();
    scalar(&mut c, APP_INSERTS_A_PROMPT);
    w.push(&["--confirm", "--strict"])
        .code(1)
        .error_has(&["prompts unchanged since pull", "nothing was written"]);
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");
}

#[test]
fn rollback_refuses_only_when_rows_the_push_wrote_changed_and_names_them() {
    let w = live("live_rollback");
    let mut c = w.db.client();
    let receipt = w.push_confirmed();
    // The app adds its own workflow and edits one that was there before the
    // push: a table the push wrote, but not rows it wrote. Rollback goes
    // ahead (dry run, to keep the push for what follows).
    c.batch_execute(
        "INSERT INTO workflows SELECT (jsonb_populate_record(NULL::workflows, to_jsonb(w) || \
         jsonb_build_object('id', gen_random_uuid()))).* FROM workflows w ORDER BY w.id LIMIT 1; \
         UPDATE workflows SET name = name || ' (app)' WHERE id = (SELECT min(id::text)::uuid FROM workflows \
         WHERE definition->>'source' IS DISTINCT FROM 'dh_workflow' \
           AND definition->>'source' NOT LIKE '%Operational Library%')",
    )
    .expect("app writes");
    w.rollback(&receipt, &[]).ok();
    // Now the app edits a row the push wrote: rollback refuses, naming it.
    let edited = scalar(
        &mut c,
        "UPDATE workflows SET name = name || ' (app)' WHERE id = (SELECT min(id::text)::uuid FROM workflows \
         WHERE definition->>'source' = 'dh_workflow') RETURNING id::text",
    );
    w.rollback(&receipt, &["--confirm"])
        .code(1)
        .error_has(&[&format!("row {edited} changed"), "nothing was changed"]);
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "369");
}

#[test]
fn timeouts_postgres_would_misread_are_usage_errors() {
    let w = live("live_zero");
    w.push(&["--confirm", "--lock-timeout", "0"]).code(2);
    w.push(&["--confirm", "--lock-timeout", "-5"]).code(2);
    // Postgres would read a statement timeout of 0 as "no limit", and its
    // settings stop at 2147483647 ms: usage errors before connecting, not
    // a raw server error.
    w.push(&["--confirm", "--statement-timeout", "0"])
        .code(2)
        .stderr_has("0 is not in 1..=2147483647");
    for flag in ["--lock-timeout", "--statement-timeout"] {
        w.push(&["--confirm", flag, "3000000000"])
            .code(2)
            .stderr_has("3000000000 is not in 1..=2147483647");
        w.rollback(
            "00000000-0000-0000-0000-000000000000",
            &["--confirm", flag, "3000000000"],
        )
        .code(2)
        .stderr_has("is not in 1..=2147483647");
    }
    // W17: with a unit, as Postgres writes durations; a bare number stays ms.
    w.push(&["--lock-timeout", "10s", "--statement-timeout", "1min"])
        .ok();
    w.push(&["--lock-timeout", "1500", "--statement-timeout", "90000ms"])
        .ok();
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");
}

/// What a monitor session saw in `pg_locks` while a push ran.
#[derive(Default, Debug)]
struct LockWatch {
    /// Tables the push's backend held any lock on, at any sample, with
    /// the modes seen.
    push_held: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Samples in which the push waited for ACCESS EXCLUSIVE on jtbd_library.
    push_waiting_exclusive: usize,
    /// The longest a reader's lock request had been waiting, in ms.
    longest_reader_wait_ms: f64,
    samples: usize,
}

/// Samples pg_locks of the database every 20 ms until `stop`.
fn watch_locks(
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<LockWatch> {
    std::thread::spawn(move || {
        let mut c = postgres_admin(&url);
        let mut w = LockWatch::default();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let rows = c
                .query(
                    "SELECT coalesce(a.application_name, ''), c.relname::text, l.mode, l.granted, \
                            coalesce(extract(epoch FROM clock_timestamp() - l.waitstart) * 1000, 0)::float8 \
                     FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
                     JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .expect("read pg_locks");
            w.samples += 1;
            for r in rows {
                let (app, rel, mode, granted, waited): (String, String, String, bool, f64) =
                    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                if app == "sandbox" {
                    w.push_held
                        .entry(rel.clone())
                        .or_default()
                        .insert(mode.clone());
                    if !granted && rel == "jtbd_library" && mode == "AccessExclusiveLock" {
                        w.push_waiting_exclusive += 1;
                    }
                }
                if app == "reader" && !granted {
                    w.longest_reader_wait_ms = w.longest_reader_wait_ms.max(waited);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        w
    })
}

/// Readers of jtbd_library, as an app's, until `stop`.
fn readers(
    url: &str,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..n)
        .map(|_| {
            let url = format!("{url}?application_name=reader");
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = postgres_admin(&url);
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    c.simple_query("SELECT count(*) FROM jtbd_library")
                        .expect("reader");
                    reads += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                reads
            })
        })
        .collect()
}

/// An idle transaction that has read jtbd_library holds ACCESS SHARE, which
/// the ACCESS EXCLUSIVE of ADD COLUMN must wait for; every reader arriving
/// meanwhile queues behind that request. The push asks in short attempts:
/// readers wait one attempt at most (seen in pg_locks' waitstart), the
/// push never locks the app's tables, gives up naming the idle session, and
/// goes through once it has gone.
#[test]
fn an_idle_reader_makes_other_readers_wait_one_attempt_at_most_and_is_named() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let w = live("live_locks");
    let mut idle = postgres_admin(&format!("{}?application_name=idle_reader", w.db.url));
    let idle_pid = scalar(&mut idle, "SELECT pg_backend_pid()");
    idle.batch_execute("BEGIN; SELECT count(*) FROM jtbd_library")
        .expect("idle reader");

    let stop = Arc::new(AtomicBool::new(false));
    let monitor = watch_locks(w.db.url.clone(), stop.clone());
    let reading = readers(&w.db.url, 2, stop.clone());

    // Giving up names the idle session.
    w.push(&["--confirm", "--lock-timeout", "1500"])
        .code(1)
        .error_has(&[
            &format!("pid {idle_pid}"),
            "idle_reader",
            "idle in transaction",
            "jtbd_library",
            "since",
            "Nothing was written",
        ]);
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");

    // With time to spare, the push goes through once the idle session ends.
    let push = w.push_spawned("60000");
    // Hold the idle session for many attempts of the push.
    std::thread::sleep(std::time::Duration::from_millis(8000));
    idle.batch_execute("COMMIT").expect("end the idle reader");
    let run = push.finish();
    run.ok();
    stop.store(true, Ordering::SeqCst);
    let watch = monitor.join().expect("monitor");
    let reads: u64 = reading.into_iter().map(|r| r.join().expect("reader")).sum();
    eprintln!(
        "longest wait of a jtbd_library reader: {:.0} ms over {} samples",
        watch.longest_reader_wait_ms, watch.samples
    );

    assert!(
        watch.push_waiting_exclusive > 0,
        "the push was never seen waiting for ACCESS EXCLUSIVE on jtbd_library: {watch:?}"
    );
    assert!(watch.push_held.contains_key("workflows"), "{watch:?}");
    // The only lock the push may take on the app's tables is the ACCESS
    // SHARE of planning a verification query that reads them, handed back
    // with its savepoint at once: no write of the app waits for it.
    for app_table in ["prompts", "agents", "personas"] {
        let modes = watch.push_held.get(app_table).cloned().unwrap_or_default();
        assert!(
            modes.iter().all(|m| m == "AccessShareLock"),
            "the push locked the app's {app_table} against writers: {watch:?}"
        );
    }
    // One attempt is 300 ms; the margin covers a machine loaded by
    // parallel builds (2.3 s seen at load 20). Taking the lock in one long
    // wait makes readers wait the 8 s the idle session lasts.
    assert!(
        watch.longest_reader_wait_ms < 4000.0,
        "a reader of jtbd_library waited {} ms behind the push: {watch:?}",
        watch.longest_reader_wait_ms
    );
    assert!(reads > 0);
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "368");
}

/// A fixture database pulled, the built-in plan plus one verification
/// query (`sql` expecting `expect`) rehearsed; then the app adds a prompt,
/// so the pulled count of `prompts` no longer holds on Postgres, and the
/// plan is pushed. `objects` (a view, say) is created after the pull on
/// Postgres and in the snapshot file alike: a pull copies tables only.
fn push_after_an_app_write(tag: &str, objects: &str, sql: &str, expect: i64) -> (World, Run) {
    let w = live(tag);
    let plan = common::plan_folder(&w.dir.path().join("plan"), |p| {
        p["verification"]
            .as_array_mut()
            .expect("verification list")
            .push(
                serde_json::json!({ "name": "the query under test", "sql": sql, "expect": expect }),
            );
    });
    let plan = plan.to_str().expect("utf-8 path");
    let mut c = w.db.client();
    if !objects.is_empty() {
        c.batch_execute(objects).expect("objects on Postgres");
        rusqlite::Connection::open(&w.snapshot)
            .and_then(|s| s.execute_batch(objects))
            .expect("objects in the snapshot");
    }
    w.rehearse(&["--plan", plan]).ok().stdout_has("PASSED");
    scalar(&mut c, APP_INSERTS_A_PROMPT);
    let run = w.push(&["--confirm", "--plan", plan]);
    (w, run)
}

/// A verification query that reads `prompts` only through a view reads the
/// app's table in Postgres's plan: it is checked as "unchanged by this
/// transaction", so the app's new prompt does not refuse the push (named
/// by words, the query reads only `prompt_total` and was compared with the
/// pulled 3570).
#[test]
fn a_query_reading_the_apps_table_through_a_view_is_left_to_the_app() {
    let (w, run) = push_after_an_app_write(
        "live_view",
        "CREATE VIEW prompt_total AS SELECT count(*) AS n FROM prompts",
        "SELECT n FROM prompt_total",
        3570,
    );
    run.ok().stdout_has("Applied");
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "368");
    assert_eq!(scalar(&mut c, "SELECT n FROM prompt_total"), "3571");
}

/// SQLite's CAST of 2.7 to INTEGER truncates, Postgres's rounds: a query
/// giving it holds in the rehearsal (2) and fails on Postgres (3), so it
/// refuses the push if and only if the push runs it.
fn refused_by_the_query_under_test(w: &World, run: &Run) {
    run.code(1)
        .error_has(&["the query under test", "nothing was written"]);
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");
}

/// A CTE named `prompts` is no reading of the app's `prompts`: the query is
/// run on Postgres and compared as rehearsed (here it fails there).
#[test]
fn a_cte_named_like_the_apps_table_is_run_as_written() {
    let (w, run) = push_after_an_app_write(
        "live_cte",
        "",
        "WITH prompts AS (SELECT 2.7 AS x) SELECT CAST(x AS INTEGER) FROM prompts",
        2,
    );
    refused_by_the_query_under_test(&w, &run);
}

/// `prompts` in a comment or a string literal is no reading of the app's
/// `prompts`: the query is run on Postgres and compared as rehearsed.
#[test]
fn the_apps_table_named_in_a_comment_or_literal_is_not_read() {
    let (w, run) = push_after_an_app_write(
        "live_literal",
        "",
        "SELECT CAST(2.7 AS INTEGER) WHERE 'prompts' <> '' -- of prompts",
        2,
    );
    refused_by_the_query_under_test(&w, &run);
}

/// An app session holding ACCESS EXCLUSIVE on `prompts` (an ALTER TABLE in
/// its transaction) keeps Postgres from planning the seed's "row counts
/// per table", so which tables that query reads cannot be known: the push
/// refuses, saying so, within its lock timeout, with nothing written, and
/// goes through once the session is done.
#[test]
fn an_app_table_held_exclusively_refuses_the_push_by_name_without_waiting_it_out() {
    let w = live("live_exclusive");
    let before = common::whole_database_state(&w.db.url);
    let mut app = w.db.client();
    app.batch_execute("BEGIN; LOCK TABLE prompts IN ACCESS EXCLUSIVE MODE")
        .expect("app lock");
    w.push(&["--confirm"]).code(1).error_has(&[
        "row counts per table",
        "another session holds a table this query reads",
        "nothing was written",
    ]);
    app.batch_execute("COMMIT").expect("app commit");
    before.assert_same(&common::whole_database_state(&w.db.url), "a refused push");
    w.push_confirmed();
}

/// Rollback drops `tasks`, whose foreign key references `workflows`:
/// Postgres then takes ACCESS EXCLUSIVE on `workflows` too. An app
/// transaction that has read `workflows` is waited for in attempts and
/// named when it outlasts --lock-timeout (exit 1, nothing changed), and
/// the rollback goes through once it ends.
#[test]
fn rollback_waits_for_a_reader_of_a_table_the_dropped_foreign_key_references() {
    let w = live("live_fk_rollback");
    let receipt = w.push_confirmed();
    let mut reader = postgres_admin(&format!("{}?application_name=fk_reader", w.db.url));
    let reader_pid = scalar(&mut reader, "SELECT pg_backend_pid()");
    reader
        .batch_execute("BEGIN; SELECT 1 FROM workflows LIMIT 1")
        .expect("reader");

    // The reader outlasts the lock timeout: refused, naming it.
    let before = common::whole_database_state(&w.db.url);
    w.rollback(&receipt, &["--confirm", "--lock-timeout", "1000"])
        .code(1)
        .error_has(&[&format!("pid {reader_pid}"), "fk_reader", "workflows"]);
    before.assert_same(
        &common::whole_database_state(&w.db.url),
        "a rollback refused on a lock",
    );

    // With time to spare, the rollback waits for the reader to end.
    let rollback = w.rollback_spawned(&receipt, "60000");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    reader.batch_execute("COMMIT").expect("end the reader");
    rollback.finish().ok();
    let mut c = w.db.client();
    assert_eq!(
        scalar(
            &mut c,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'tasks'"
        ),
        "0"
    );
}

/// The `sandbox` backend's pid in this database, once it holds
/// SHARE ROW EXCLUSIVE on `table` (granted); polled, up to a bound.
fn push_backend_holding(c: &mut postgres_sync::Client, table: &str) -> i32 {
    for _ in 0..1200 {
        let rows = c
            .query(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE a.application_name = 'sandbox' AND a.datname = current_database() \
                   AND l.granted AND l.mode IN ('ShareRowExclusiveLock', 'AccessExclusiveLock') \
                   AND l.relation = ('public.' || $1)::regclass",
                &[&table],
            )
            .expect("read pg_locks");
        if let Some(r) = rows.first() {
            return r.get(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the push never held its lock on {table}");
}

/// A push client that stops answering while it holds its locks (SIGSTOP:
/// a suspended laptop; a dropped network looks the same to the server):
/// Postgres ends its transaction, the locks go, the app's readers and
/// writers proceed, and nothing was committed. Before, the locks stayed
/// for the statement timeout (10 minutes), the app queued behind them.
#[test]
fn a_suspended_push_client_loses_its_locks_and_commits_nothing() {
    let w = World::loaded("live_suspended", "plan")
        .with_sql(TEST_GATE)
        .rehearsed();
    let before = w.state();
    let mut c = w.db.client();
    let (push, backend) = push_stopped_at_the_gate(&w, &mut c, &["--lock-timeout", "600000"]);
    let mut gone = false;
    // A bound far below the statement timeout (600 s), not a timing.
    for _ in 0..1200 {
        let held = scalar(
            &mut c,
            &format!("SELECT count(*) FROM pg_locks WHERE pid = {backend}"),
        );
        if held == "0" {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) on the pid of a child this test spawned.
    unsafe { libc::kill(push.pid() as i32, libc::SIGCONT) };
    assert!(gone, "the stopped push's backend {backend} kept its locks");
    // The app reads and writes the push's tables again.
    c.batch_execute(
        "BEGIN; SELECT count(*) FROM jtbd_library; \
         UPDATE workflows SET name = name WHERE id = (SELECT min(id::text)::uuid FROM workflows); \
         ROLLBACK",
    )
    .expect("the app proceeds");
    let run = push.finish();
    assert_ne!(run.code, 0, "{}", run.show());
    run.error_has(&["nothing was written", "silent", "15000 ms"]);
    before.assert_same(&w.state(), "a push whose client was suspended");
    // And the next push applies.
    w.push_confirmed();
}

/// A gate the test holds shut keeps the push's first insert into workflows
/// waiting, after it has taken all its locks, so that it is caught holding
/// them: a trigger spinning (no lock wait, which the push's lock_timeout
/// would end) until the test lets go of advisory lock 4242. It changes no
/// row.
const TEST_GATE: &str =
    "CREATE FUNCTION public.test_gate() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN WHILE NOT pg_try_advisory_lock_shared(4242) LOOP PERFORM pg_sleep(0.02); \
     END LOOP; PERFORM pg_advisory_unlock_shared(4242); RETURN NEW; END $$; \
     CREATE TRIGGER test_gate BEFORE INSERT ON public.workflows \
     FOR EACH ROW EXECUTE FUNCTION public.test_gate();";

/// `push --confirm` with `extra` flags in a world with [`TEST_GATE`],
/// stopped (SIGSTOP) while its first insert waits at the gate, which is
/// then opened: a live push would go on, the stopped one holds what it has
/// until the server ends its transaction. The process and its backend's
/// pid.
fn push_stopped_at_the_gate(
    w: &World,
    c: &mut postgres_sync::Client,
    extra: &[&str],
) -> (common::Proc, i32) {
    let mut gate = postgres_admin(&format!("{}?application_name=gate", w.db.url));
    gate.batch_execute("SELECT pg_advisory_lock(4242)")
        .expect("shut the gate");
    let mut args = vec![
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--confirm",
    ];
    args.extend_from_slice(extra);
    let push = common::Sandbox::new(&args).spawn();
    let backend = push_backend_holding(c, "workflows");
    let mut polls = 0;
    while scalar(
        c,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {backend} AND wait_event = 'PgSleep'"),
    ) == "0"
    {
        polls += 1;
        assert!(polls < 1200, "the push never reached the gate");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) on the pid of a child this test spawned.
    assert_eq!(unsafe { libc::kill(push.pid() as i32, libc::SIGSTOP) }, 0);
    gate.batch_execute("SELECT pg_advisory_unlock(4242)")
        .expect("open the gate");
    (push, backend)
}

/// V17: how long the server waits for a silent client inside the push's
/// transaction (idle_in_transaction_session_timeout, 15 s) is not cut to
/// the statement timeout, which bounds one statement's work on the server,
/// not the client's time between two. Before, it was the smaller of the
/// two: with `--statement-timeout 4000` the push's session had 4 s, and
/// under a second (the keepalive's interval) a push merely computing could
/// be ended. Read in the push's own session: the gate's trigger shows the
/// setting in its application_name (SET LOCAL, gone at COMMIT).
#[test]
fn a_short_statement_timeout_does_not_shorten_the_wait_for_a_silent_client() {
    let w = World::loaded("live_short_statement_timeout", "plan")
        .with_sql(TEST_GATE)
        .with_sql(
            "CREATE OR REPLACE FUNCTION public.test_gate() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM set_config('application_name', 'sandbox idle ' || \
             current_setting('idle_in_transaction_session_timeout'), true); \
             WHILE NOT pg_try_advisory_lock_shared(4242) LOOP PERFORM pg_sleep(0.02); \
             END LOOP; PERFORM pg_advisory_unlock_shared(4242); RETURN NEW; END $$",
        )
        .rehearsed();
    let mut c = w.db.client();
    let mut gate = postgres_admin(&format!("{}?application_name=gate", w.db.url));
    gate.batch_execute("SELECT pg_advisory_lock(4242)")
        .expect("shut the gate");
    let push = common::Sandbox::new(&[
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--confirm",
        "--statement-timeout",
        "4000",
    ])
    .spawn();
    let mut seen = String::new();
    for _ in 0..1200 {
        seen = scalar(
            &mut c,
            "SELECT coalesce(max(application_name), '') FROM pg_stat_activity \
             WHERE application_name LIKE 'sandbox idle %' AND datname = current_database()",
        );
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    gate.batch_execute("SELECT pg_advisory_unlock(4242)")
        .expect("open the gate");
    let run = push.finish();
    assert_eq!(seen, "sandbox idle 15s", "{}", run.show());
    run.ok().stdout_has("Applied");
}

/// Rows the push wrote that the app deleted since are undone already: a
/// workflow the push inserted, a jtbd_library row it updated, a task in a
/// table it created. Rollback undoes the rest, names those rows as already
/// gone, records them in the receipt, and leaves the app's deletions as they
/// are: the database is its state before the push without the row the app
/// deleted that was there before. Before, one such row refused every
/// rollback ("row … deleted since the push"). With --strict, the app
/// switched off, a deleted row is still a change that refuses.
#[test]
fn rows_the_push_wrote_and_the_app_deleted_since_are_left_as_already_gone() {
    let w = live("live_gone");
    let before = w.state();
    let receipt = w.push_confirmed();
    let mut c = w.db.client();
    let task = scalar(
        &mut c,
        "DELETE FROM tasks WHERE id = (SELECT min(id::text)::uuid FROM tasks) RETURNING id::text",
    );
    let workflow = scalar(
        &mut c,
        "DELETE FROM workflows WHERE id = (SELECT min(w.id::text)::uuid FROM workflows w \
         WHERE w.definition->>'source' LIKE '%Operational Library%') RETURNING id::text",
    );
    let jtbd = scalar(
        &mut c,
        "DELETE FROM jtbd_library WHERE id = (SELECT min(id) FROM jtbd_library \
         WHERE strategic_priority_id IS NOT NULL) RETURNING id::text",
    );
    let deleted = w.state();
    w.rollback(&receipt, &["--confirm", "--strict"])
        .code(1)
        .error_has(&[&format!("row {workflow} deleted"), "nothing was changed"]);
    deleted.assert_same(&w.state(), "a refused --strict rollback");

    let run = w.rollback(&receipt, &["--confirm"]);
    run.ok();
    // Deleting a row the push updated did not undo the update: that row
    // is only left as the app left it.
    for (key, table, how) in [
        (
            &workflow,
            "workflows",
            "the push inserted it; deleted since, so already undone",
        ),
        (
            &jtbd,
            "jtbd_library",
            "the push updated it; deleted since: left as the app left it",
        ),
        (
            &task,
            "tasks",
            "the push created the table and inserted it; deleted since, so already undone",
        ),
    ] {
        run.stdout_has(&format!("row {key} of {table} ({how})"));
    }
    let mut expected = before.clone();
    expected
        .rows
        .get_mut("public.jtbd_library")
        .expect("jtbd_library")
        .remove(&jtbd)
        .expect("the deleted jtbd row was there before the push");
    expected
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "rollback");
    let recorded = scalar(
        &mut c,
        &format!("SELECT undo->'already_gone' FROM sandbox.receipts WHERE id = '{receipt}'"),
    );
    for key in [&workflow, &jtbd, &task] {
        assert!(recorded.contains(key.as_str()), "{key} not in {recorded}");
    }
}

/// A row the push inserted whose key the app changed since (an UPDATE of
/// its primary key, not a DELETE) is not gone: it is the push's row under
/// another key. Rollback refuses (exit 1, nothing changed), naming the row
/// by both keys and the way forward; with its key put back, the rollback
/// undoes the push whole. Before: "deleted since, so already undone",
/// exit 0, and the pushed workflow stayed under its new key.
#[test]
fn a_row_the_push_inserted_and_the_app_re_keyed_refuses_the_rollback_by_name() {
    let w = live("live_rekeyed_insert");
    let before = w.state();
    let receipt = w.push_confirmed();
    let new = "00000000-0000-0000-0000-0000000000aa";
    // A pushed library workflow no task references (a task's foreign key
    // would keep its key).
    let old = scalar(
        &mut w.db.client(),
        &format!(
            "UPDATE workflows w SET id = '{new}' FROM (SELECT min(x.id::text)::uuid AS id \
             FROM workflows x WHERE x.definition->>'source' LIKE '%Operational Library%' \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = x.id)) o \
             WHERE w.id = o.id RETURNING o.id::text"
        ),
    );
    let moved = w.state();
    for flags in [&["--confirm"][..], &[]] {
        let run = w.rollback(&receipt, flags);
        run.refused(&[
            &format!(
                "row {old} of workflows that the push inserted is now under key {new} (re-keyed \
                 by the app"
            ),
            "rollback cannot tell whether to delete it",
            &format!("put its key back to {old} and roll back again"),
            "workflows rows the push wrote are under their keys, or gone",
            "nothing was changed",
        ]);
        assert!(!run.all().contains("already undone"), "{}", run.show());
        moved.assert_same(&w.state(), "a refused rollback");
    }
    // The app's UPDATE putting the key back moves updated_at once more
    // (the table's stamp): a change of the app's, to discard by name.
    w.exec(&format!(
        "UPDATE workflows SET id = '{old}' WHERE id = '{new}'"
    ));
    w.rollback(
        &receipt,
        &["--confirm", "--discard-changes", "workflows.updated_at"],
    )
    .ok();
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "the key put back, rolled back",
    );
}

/// Likewise a row the push updated and the app re-keyed since: the push's
/// values stay in it under its new key, so "deleted since" undid nothing.
/// Rollback refuses, naming the row by both keys and the columns the push
/// wrote there; with its key put back, the rollback restores them and the
/// database is as before the push. Before: exit 0, "deleted since, so
/// already undone", the pushed note kept under the new key.
#[test]
fn a_row_the_push_updated_and_the_app_re_keyed_refuses_the_rollback_by_name() {
    let w = common::item_world(
        "live_rekeyed_update",
        ROW_ITEMS,
        &["UPDATE dh_item SET note = 'pushed' WHERE id = 'a'"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec("UPDATE dh_item SET id = 'a2' WHERE id = 'a'");
    let moved = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "row a of dh_item that the push updated is now under key a2 (re-keyed by the app",
        "holds what the push wrote in note",
        "rollback cannot tell whether to restore what the push overwrote there",
        "Put its key back to a and roll back again (the undo then restores note as before the push)",
        "nothing was changed",
    ]);
    assert!(!run.all().contains("deleted since"), "{}", run.show());
    moved.assert_same(&w.state(), "a refused rollback");
    w.exec("UPDATE dh_item SET id = 'a' WHERE id = 'a2'");
    w.rollback_restores(&receipt, &before, "the key put back, rolled back");
}

/// The first lock of `pid` that is waited for (not granted), as
/// `locktype`; polled up to a bound.
fn waiting_on(c: &mut postgres_sync::Client, app: &str) -> String {
    for _ in 0..1200 {
        let rows = c
            .query(
                "SELECT l.locktype FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE a.application_name = $1 AND a.datname = current_database() AND NOT l.granted",
                &[&app],
            )
            .expect("read pg_locks");
        if let Some(r) = rows.first() {
            return r.get(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{app} was never seen waiting for a lock");
}

const ROW_ITEMS: &str = "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
     note text); INSERT INTO public.dh_item VALUES ('a', 'alpha', NULL), ('b', 'beta', NULL), \
     ('c', 'gamma', NULL);";

/// An app session holding a row the push updates (`SELECT … FOR UPDATE`,
/// which the table locks do not keep out: it takes only ROW SHARE) is met
/// like a table lock: the push waits for it in short attempts — the app's
/// other writers of the table go on meanwhile — and, when it outlasts
/// --lock-timeout, refuses (exit 1) naming the row and the session, with
/// nothing written; once the session ends the push applies. Rollback
/// meets a held row the same way. Before: a raw "canceling statement due
/// to lock timeout" from the UPDATE, exit 2.
#[test]
fn a_row_the_app_holds_for_update_is_waited_for_in_attempts_and_named() {
    let w = common::item_world(
        "live_row_lock",
        ROW_ITEMS,
        &["UPDATE dh_item SET note = 'pushed' WHERE id = 'a'; DELETE FROM dh_item WHERE id = 'b';"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    let mut holder = postgres_admin(&format!("{}?application_name=row_holder", w.db.url));
    let holder_pid = scalar(&mut holder, "SELECT pg_backend_pid()");
    holder
        .batch_execute("BEGIN; SELECT * FROM dh_item WHERE id = 'a' FOR UPDATE")
        .expect("the app locks a row");
    let held = [
        &format!("pid {holder_pid}") as &str,
        "row_holder",
        "idle in transaction",
        "row id=a of dh_item",
        "FOR UPDATE",
        &format!("`SELECT pg_terminate_backend({holder_pid})`"),
    ];
    w.push(&["--confirm", "--lock-timeout", "1500"])
        .code(1)
        .error_has(&held)
        .error_has(&["Nothing was written"]);
    before.assert_same(&w.state(), "a push refused on a held row");

    // While the push waits in attempts, the app writes another row of the
    // table: it waits one attempt at most, not the push's lock timeout.
    let mut app = w.db.client();
    let push = common::Sandbox::new(&[
        "push",
        "--database-url",
        &w.db.url,
        "--snapshot",
        w.snap(),
        "--plan",
        w.dir.path().join("plan").to_str().expect("utf-8"),
        "--confirm",
        "--lock-timeout",
        "60000",
    ])
    .spawn();
    assert_eq!(waiting_on(&mut app, "sandbox"), "transactionid");
    // (Rolled back: a change to a table the push writes is drift.)
    app.batch_execute(
        "BEGIN; SET LOCAL lock_timeout = '5s'; \
         UPDATE dh_item SET name = 'gamma (app)' WHERE id = 'c'; ROLLBACK",
    )
    .expect("the app's write to another row went through while the push waited");
    holder.batch_execute("ROLLBACK").expect("the app lets go");
    push.finish().ok().stdout_has("Applied");
    assert_eq!(
        common::text_rows(
            &mut app,
            "SELECT id, name, coalesce(note, '-') FROM dh_item ORDER BY id"
        ),
        [["a", "alpha", "pushed"], ["c", "gamma", "-"]]
    );
    let receipt = scalar(&mut app, "SELECT id::text FROM sandbox.receipts");

    // Rollback: the row it restores is held by the app.
    holder
        .batch_execute("BEGIN; SELECT * FROM dh_item WHERE id = 'a' FOR UPDATE")
        .expect("the app locks the row again");
    let pushed = w.state();
    w.rollback(&receipt, &["--confirm", "--lock-timeout", "1500"])
        .code(1)
        .error_has(&held);
    pushed.assert_same(&w.state(), "a rollback refused on a held row");
    holder.batch_execute("ROLLBACK").expect("the app lets go");
    w.rollback_restores(&receipt, &before, "push, then rollback");
}

/// A new row's foreign key check locks the row it references (FOR KEY
/// SHARE): an app session holding that row FOR UPDATE is waited for in the
/// same attempts and named, not met by the COPY with a raw lock timeout
/// (before: exit 2, "COPY into public.dh_item failed: … canceling
/// statement due to lock timeout").
#[test]
fn a_row_the_new_rows_reference_held_for_update_is_waited_for_and_named() {
    let w = common::item_world(
        "live_fk_row_lock",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL, \
         parent_id text REFERENCES public.dh_item (id)); \
         INSERT INTO public.dh_item VALUES ('a', 'alpha', NULL), ('b', 'beta', NULL);",
        &["INSERT INTO dh_item (id, name, parent_id) VALUES ('c', 'gamma', 'a');"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    let mut holder = postgres_admin(&format!("{}?application_name=parent_holder", w.db.url));
    let holder_pid = scalar(&mut holder, "SELECT pg_backend_pid()");
    holder
        .batch_execute("BEGIN; SELECT * FROM dh_item WHERE id = 'a' FOR UPDATE")
        .expect("the app locks the parent row");
    w.push(&["--confirm", "--lock-timeout", "1500"])
        .code(1)
        .error_has(&[
            &format!("pid {holder_pid}"),
            "parent_holder",
            "row id=a of dh_item",
            "Nothing was written",
        ]);
    before.assert_same(&w.state(), "a push refused on a held parent row");
    holder.batch_execute("ROLLBACK").expect("the app lets go");
    w.push_confirmed();
    assert_eq!(
        w.scalar("SELECT parent_id FROM dh_item WHERE id = 'c'"),
        "a"
    );
}

/// What the push holds while it waits for ACCESS EXCLUSIVE on `table`
/// (an idle transaction that read it keeps it waiting): its granted locks
/// on public tables as `table mode`, how many tables it has created by
/// then (locked relations no other session can see yet), and its wait
/// event. Then the idle transaction ends and the push must apply.
fn held_while_waiting_for_exclusive(
    w: &World,
    table: &str,
    extra: &[&str],
) -> (Vec<String>, i64, String, String) {
    let mut idle = postgres_admin(&format!("{}?application_name=idle_reader", w.db.url));
    idle.batch_execute(&format!("BEGIN; SELECT count(*) FROM {table}"))
        .expect("idle reader");
    let mut args = vec![
        "push",
        "--database-url",
        &w.db.url,
        "--snapshot",
        w.snap(),
        "--confirm",
        "--lock-timeout",
        "120000",
    ];
    args.extend_from_slice(extra);
    let push = common::Sandbox::new(&args).spawn();
    let mut monitor = w.db.client();
    let waiting = &sandbox_locks(false, Some("AccessExclusiveLock"), table);
    let mut polls = 0;
    while scalar(&mut monitor, waiting) == "0" {
        polls += 1;
        assert!(
            polls < 2400,
            "the push never asked for ACCESS EXCLUSIVE on {table}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let push_locks = "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                      WHERE a.application_name = 'sandbox' AND l.granted \
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let held: Vec<String> = common::text_rows(
        &mut monitor,
        &format!(
            "SELECT DISTINCT c.relname::text || ' ' || l.mode {push_locks} \
             AND c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY 1"
        )
        .replace(
            "FROM pg_locks l",
            "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation",
        ),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let created: i64 = scalar(
        &mut monitor,
        &format!(
            "SELECT count(DISTINCT l.relation) {push_locks} AND l.locktype = 'relation' \
             AND l.mode = 'AccessExclusiveLock' \
             AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = l.relation)"
        ),
    )
    .parse()
    .expect("a count");
    let wait = scalar(
        &mut monitor,
        "SELECT DISTINCT a.wait_event_type || '/' || a.wait_event FROM pg_stat_activity a \
         JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted \
         WHERE a.application_name = 'sandbox' AND a.datname = current_database()",
    );
    idle.batch_execute("COMMIT").expect("end the idle reader");
    let run = push.finish();
    run.ok().stdout_has("Applied");
    (held, created, wait, run.receipt())
}

/// The ADD COLUMN's ACCESS EXCLUSIVE on `jtbd_library` is asked for in
/// the push's one lock step, with the write set's locks, before anything
/// is created or written: a failed attempt lets go of everything, and no
/// later step waits while holding the write set (U6: an app transaction
/// that read `jtbd_library` and then waited to write `workflows`, which
/// the push held, made a cycle the push could end only by refusing).
/// While it waits, in attempts, it holds nothing of the plan's. Before, the
/// lock was asked for after every other phase's work (the three created
/// tables made, the workflows of 3B/3C written). The column's values are
/// still written after every other phase's rows when nothing can tell the
/// order apart; a plan whose phase-1 expectation also reads a table a later
/// phase writes keeps the phase order. Both orders leave the same database.
#[test]
fn the_add_columns_lock_comes_with_the_write_sets_before_anything_is_written() {
    let w = live("live_exclusive_last");
    let (held, created, wait, receipt) = held_while_waiting_for_exclusive(&w, "jtbd_library", &[]);
    assert_eq!(wait, "Lock/relation");
    assert_eq!(created, 0, "tables created before the lock: {held:?}");
    assert!(
        held.is_empty(),
        "locks held while waiting for jtbd_library: {held:?}"
    );
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "368");
    assert_eq!(
        scalar(
            &mut c,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        ),
        "105"
    );

    let reordered = common::whole_database_state(&w.db.url).without_schema("sandbox");
    w.rollback(&receipt, &["--confirm"]).ok();

    let plan = common::plan_folder(&w.dir.path().join("plan"), |p| {
        p["phases"][0]["expectations"]
            .as_array_mut()
            .expect("phase 1 expectations")
            .push(serde_json::json!({
                "name": "links, with workflows present",
                "sql": "SELECT COUNT(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL \
                        AND EXISTS (SELECT 1 FROM workflows)",
                "expect": 105
            }));
    });
    let plan = plan.to_str().expect("utf-8 path");
    w.rehearse(&["--plan", plan]).ok().stdout_has("PASSED");
    let (held, created, wait, _) =
        held_while_waiting_for_exclusive(&w, "jtbd_library", &["--plan", plan]);
    assert_eq!(wait, "Lock/relation");
    assert_eq!(created, 0, "in phase order too: {held:?}");
    assert!(held.is_empty(), "in phase order too: {held:?}");
    // The same database, whichever the order.
    reordered.assert_same(
        &common::whole_database_state(&w.db.url).without_schema("sandbox"),
        "the push in phase order",
    );
}

/// A reader of `workflows` (the table the created `tasks` references) is
/// waited out while the push holds nothing: each attempt takes first the
/// tables another session holds. Before, the one LOCK TABLE listed its
/// tables by name, so each attempt held ACCESS EXCLUSIVE on `jtbd_library`
/// while it waited for the reader of `workflows`, and an app that had read
/// `workflows` and then wrote `jtbd_library` waited for the push until the
/// attempt's timeout broke the cycle. Listing the referenced tables first
/// instead held `workflows` while a reader of `jtbd_library` was waited
/// for (the test above).
#[test]
fn a_reader_of_a_referenced_table_is_waited_out_before_the_altered_table_is_held() {
    let w = live("live_referenced_first");
    let before = common::whole_database_state(&w.db.url).without_schema("sandbox");
    let (held, created, wait, receipt) = held_while_waiting_for_exclusive(&w, "workflows", &[]);
    assert_eq!(wait, "Lock/relation");
    assert_eq!(created, 0, "tables created before the lock: {held:?}");
    assert!(
        held.is_empty(),
        "locks held while waiting for workflows: {held:?}"
    );
    w.rollback(&receipt, &["--confirm"]).ok();
    before.assert_same(
        &common::whole_database_state(&w.db.url).without_schema("sandbox"),
        "the push waited for a reader of workflows, then its rollback",
    );
}

/// A row the push does not know it will write — here a trigger's counter
/// row in an app table, held FOR UPDATE by the app — is met by the write
/// with one attempt's lock timeout: a refusal (exit 1) saying what held it
/// up and that the push let go, with nothing written; before, a raw
/// "canceling statement due to lock timeout", exit 2.
#[test]
fn a_row_a_trigger_writes_held_by_the_app_refuses_by_name_after_one_attempt() {
    let w = common::item_world(
        "live_trigger_row_lock",
        &format!(
            "{ROW_ITEMS} CREATE TABLE public.counters (name text PRIMARY KEY, n int NOT NULL); \
             INSERT INTO public.counters VALUES ('items', 3); \
             CREATE FUNCTION public.count_item() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN UPDATE public.counters SET n = n + 1 WHERE name = 'items'; RETURN NULL; END$$; \
             CREATE TRIGGER dh_item_count AFTER INSERT ON public.dh_item \
             FOR EACH ROW EXECUTE FUNCTION public.count_item();"
        ),
        &["INSERT INTO dh_item (id, name) VALUES ('d', 'delta');"],
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    let mut holder = w.db.client();
    holder
        .batch_execute("BEGIN; SELECT * FROM counters FOR UPDATE")
        .expect("the app locks the counter row");
    w.push(&["--confirm", "--allow-writes", "counters"])
        .code(1)
        .error_has(&[
            "canceling statement due to lock timeout",
            "dh_item",
            "another session held a row or lock this statement needed",
            "nothing was written",
        ]);
    before.assert_same(&w.state(), "a push refused on a row a trigger writes");
    holder.batch_execute("ROLLBACK").expect("the app lets go");
    w.push(&["--confirm", "--allow-writes", "counters"]).ok();
    assert_eq!(w.scalar("SELECT n FROM counters"), "4");
}

/// The `sandbox` backend's granted locks (`schema.table mode`) at the
/// first sample in which it waits for ACCESS EXCLUSIVE on `table`; one
/// read of pg_locks, so the locks are those of that moment. Polled, up to
/// a bound.
fn locks_held_when_waiting_for_exclusive(
    c: &mut postgres_sync::Client,
    table: &str,
) -> std::collections::BTreeSet<String> {
    for _ in 0..3000 {
        let rows = c
            .query(
                "SELECT l.pid, n.nspname::text || '.' || r.relname::text, l.mode, l.granted \
                 FROM pg_locks l JOIN pg_class r ON r.oid = l.relation \
                 JOIN pg_namespace n ON n.oid = r.relnamespace AND n.nspname <> 'pg_catalog' \
                 WHERE l.pid IN (SELECT pid FROM pg_stat_activity \
                                 WHERE application_name = 'sandbox' \
                                   AND datname = current_database())",
                &[],
            )
            .expect("read pg_locks");
        let waiting: Option<i32> = rows
            .iter()
            .find(|r| {
                !r.get::<_, bool>(3)
                    && r.get::<_, String>(2) == "AccessExclusiveLock"
                    && r.get::<_, String>(1) == format!("public.{table}")
            })
            .map(|r| r.get(0));
        if let Some(pid) = waiting {
            return rows
                .iter()
                .filter(|r| r.get::<_, i32>(0) == pid && r.get::<_, bool>(3))
                .map(|r| format!("{} {}", r.get::<_, String>(1), r.get::<_, String>(2)))
                .collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("sandbox was never seen waiting for ACCESS EXCLUSIVE on {table}");
}

/// The rollback's DROP COLUMN (jtbd_library) and DROP TABLE (tasks, whose
/// foreign key makes Postgres lock `workflows` too) take ACCESS EXCLUSIVE.
/// Since V12 the rollback takes those locks in its one lock step, with the
/// others, before it undoes any row: it never asks for a lock while
/// holding what it wrote. An app transaction that has read `workflows`
/// holds the rollback at that step; at that moment no row is undone yet
/// (no ROW EXCLUSIVE on `workflows`) and the receipt is not marked (none on
/// sandbox.receipts). Before V12 the exclusive locks came last, after the
/// rows and the receipt (an app that read `workflows` and then wrote
/// `jtbd_library` then made every rollback give up).
#[test]
fn rollback_takes_its_exclusive_locks_in_its_lock_step_before_any_row_is_undone() {
    let w = live("live_drop_last");
    let before = w.state();
    let receipt = w.push_confirmed();
    let mut reader = postgres_admin(&format!("{}?application_name=fk_reader", w.db.url));
    reader
        .batch_execute("BEGIN; SELECT 1 FROM workflows LIMIT 1")
        .expect("reader");
    let rollback = w.rollback_spawned(&receipt, "60000");
    let mut c = w.db.client();
    let held = locks_held_when_waiting_for_exclusive(&mut c, "workflows");
    reader.batch_execute("COMMIT").expect("end the reader");
    rollback.finish().ok();
    for lock in [
        "public.workflows RowExclusiveLock",
        "sandbox.receipts RowExclusiveLock",
    ] {
        assert!(
            !held.contains(lock),
            "the rollback held {lock} while it waited for ACCESS EXCLUSIVE on workflows: {held:?}"
        );
    }
    before
        .without_schema("sandbox")
        .assert_same(&w.state().without_schema("sandbox"), "push, then rollback");
}

/// Records, at each step the push reports, how many sequential round trips
/// the latency link has counted so far.
struct RoundTripsPerStep<'a> {
    proxy: &'a sandbox::latency::LatencyProxy,
    /// Per step: its name, round trips and bytes from the server so far.
    steps: std::sync::Mutex<Vec<(String, u64, u64)>>,
}

impl sandbox::ops::push::PushProgress for RoundTripsPerStep<'_> {
    fn step(&self, what: &str) {
        self.steps.lock().expect("steps").push((
            what.to_string(),
            self.proxy.round_trips(),
            self.proxy.bytes_to_client(),
        ));
    }
}

impl RoundTripsPerStep<'_> {
    /// Round trips from the step starting with `from` to the next step.
    fn of_step(&self, from: &str) -> u64 {
        let steps = self.steps.lock().expect("steps");
        let i = steps
            .iter()
            .position(|(what, _, _)| what.starts_with(from))
            .unwrap_or_else(|| panic!("no step {from}: {steps:?}"));
        let end = steps
            .get(i + 1)
            .map_or_else(|| self.proxy.round_trips(), |(_, n, _)| *n);
        end - steps[i].1
    }

    /// Bytes from the server from the step starting with `from` to the
    /// next step.
    fn bytes_of_step(&self, from: &str) -> u64 {
        let steps = self.steps.lock().expect("steps");
        let i = steps
            .iter()
            .position(|(what, _, _)| what.starts_with(from))
            .unwrap_or_else(|| panic!("no step {from}: {steps:?}"));
        let end = steps
            .get(i + 1)
            .map_or_else(|| self.proxy.bytes_to_client(), |(_, _, b)| *b);
        end - steps[i].2
    }

    /// Round trips and bytes received of each step, for the log.
    fn per_step(&self) -> Vec<String> {
        let steps = self.steps.lock().expect("steps");
        let next = |i: usize| {
            steps.get(i + 1).map_or_else(
                || (self.proxy.round_trips(), self.proxy.bytes_to_client()),
                |(_, n, b)| (*n, *b),
            )
        };
        (0..steps.len())
            .map(|i| {
                let (what, n, b) = &steps[i];
                let (n2, b2) = next(i);
                format!("{what}: {} round trips, {} bytes", n2 - n, b2 - b)
            })
            .collect()
    }
}

/// Push and rollback pipeline their statements (issue 11: sequential round
/// trips are a small constant per phase, not one per statement or check),
/// counted by the latency link (a burst sent without waiting is one round
/// trip: the answers cannot arrive in between over its 40 ms). The
/// rehearsal of the rollback inside the push was 44 round trips and the
/// rollback 55 before their reads were pipelined, the push in all 121;
/// 25, 34-36 and 90-96 after; the rehearsal 20 and the push 89 since it
/// takes "unchanged since the push" from the push's own read-back; the
/// push 98 and the rollback 40 with the guarded settings read again after
/// each phase, in the round trip of its expectations (110 when that read
/// was a round trip of its own: this test caught it) (a few
/// more on a loaded machine, where a burst can be split by the scheduler:
/// hence the margins).
#[test]
fn push_and_rollback_pipeline_their_round_trips() {
    let w = World::loaded("live_rtt", "plan").with_shared_snapshot();
    let before = w.state();
    let (proxy, url) = behind_latency_link(&w.db.url, 40, None);
    let target = || sandbox::db::postgres::parse_target(&url).expect("the proxy's URL parses");
    let progress = RoundTripsPerStep {
        proxy: &proxy,
        steps: Default::default(),
    };
    let opts = sandbox::ops::push::PushOptions {
        target: target(),
        snapshot: w.snapshot.clone(),
        confirm: true,
        lock_timeout_ms: 10_000,
        statement_timeout_ms: 60_000,
        allow_writes: vec![],
        allow_external_effects: false,
        strict: false,
        allow_irreversible: false,
    };
    let plan = sandbox::plan::Plan::load_default().expect("the built-in plan loads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt
        .block_on(sandbox::ops::push::push(&opts, &plan, &progress))
        .expect("push");
    let push_total = proxy.round_trips();
    let rehearsal = progress.of_step("rehearsing the rollback");
    let rehearsal_bytes = progress.bytes_of_step("rehearsing the rollback");
    let steps = progress.per_step();
    eprintln!(
        "push: {push_total} round trips, {} bytes received; rollback rehearsal {rehearsal}; \
         per step: {steps:#?}",
        proxy.bytes_to_client()
    );
    let rollback = sandbox::ops::rollback::RollbackOptions {
        target: target(),
        receipt_id: report.receipt_id.clone().expect("a receipt"),
        confirm: true,
        lock_timeout_ms: 10_000,
        statement_timeout_ms: 60_000,
        allow_writes: vec![],
        allow_external_effects: false,
        strict: false,
        discard_changes: vec![],
        break_functions: vec![],
    };
    rt.block_on(sandbox::ops::rollback::rollback(&rollback))
        .expect("rollback");
    let rollback_total = proxy.round_trips() - push_total;
    eprintln!("rollback: {rollback_total} round trips");
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "after push and rollback",
    );
    assert!(
        rehearsal <= 23,
        "the rollback rehearsal took {rehearsal} round trips: {steps:#?}"
    );
    // The rehearsal judges "unchanged since the push" by the read-back the
    // push just did, not by reading the written tables again (1.29 MB of
    // these fixtures' 3.1 MB before; about 19 kB of catalog answers since).
    assert!(
        rehearsal_bytes < 200_000,
        "the rollback rehearsal received {rehearsal_bytes} bytes: {steps:#?}"
    );
    assert!(
        rollback_total <= 42,
        "the rollback took {rollback_total} round trips"
    );
    assert!(
        push_total <= 105,
        "the push took {push_total} round trips: {steps:?}"
    );
}

/// S9: an app transaction that has read `workflows` and stays open. The
/// plan's ADD COLUMN takes ACCESS EXCLUSIVE on `jtbd_library`; the
/// rehearsed undo's DROP TABLE tasks (whose foreign key references
/// `workflows`) needs ACCESS EXCLUSIVE on `workflows`, which the idle
/// transaction's ACCESS SHARE keeps it from. Before, the push took the
/// first lock and then retried for the second until --lock-timeout,
/// holding the first: every reader of `jtbd_library` waited the whole
/// timeout, and the refusal advised --allow-irreversible. Now both are
/// asked for in the same attempts: while the push waits, a reader of
/// `jtbd_library` gets through (the push's transaction is seen still on);
/// giving up names the idle session and advises a retry; nothing is
/// changed; and once the session ends the push applies.
#[test]
fn an_idle_reader_of_a_table_the_undo_locks_never_holds_up_readers_of_the_altered_table() {
    let w = live("live_undo_locks");
    let before = common::whole_database_state(&w.db.url);
    let mut idle = postgres_admin(&format!("{}?application_name=idle_wf_reader", w.db.url));
    let idle_pid = scalar(&mut idle, "SELECT pg_backend_pid()");
    idle.batch_execute("BEGIN; SELECT 1 FROM workflows LIMIT 1")
        .expect("idle reader");

    let run = w.push(&["--confirm", "--lock-timeout", "1500"]);
    run.code(1).error_has(&[
        &format!("pid {idle_pid}"),
        "idle_wf_reader",
        "idle in transaction",
        "workflows",
        "Nothing was written",
        "retry",
        // F11: how to end an idle session, with its pid, besides waiting.
        &format!("end the session with `SELECT pg_terminate_backend({idle_pid})`"),
    ]);
    assert!(
        !run.all().contains("--allow-irreversible"),
        "a lock wait is not an irreversible push: {}",
        run.show()
    );
    before.assert_same(
        &common::whole_database_state(&w.db.url),
        "a push refused on a lock the rehearsed undo needs",
    );

    let mut push = w.push_spawned("60000");
    let mut monitor = w.db.client();
    let waiting = &sandbox_locks(false, None, "workflows");
    let mut polls = 0;
    while scalar(&mut monitor, waiting) == "0" {
        polls += 1;
        assert!(
            polls < 2400 && push.running(),
            "the push was never seen waiting for workflows"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // An app reads jtbd_library while the push waits: it gets through
    // while the push is still waiting (before, it queued behind the push's
    // ACCESS EXCLUSIVE until the push gave up).
    let mut reader = postgres_admin(&format!("{}?application_name=reader", w.db.url));
    assert_eq!(
        scalar(&mut reader, "SELECT count(*) FROM jtbd_library"),
        "371"
    );
    // The push's transaction is still on, waiting in attempts (each
    // attempt lets go of all it took). Before, the reader got through only
    // once that transaction had ended.
    let open = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sandbox' \
                AND datname = current_database() AND xact_start IS NOT NULL";
    assert!(
        push.running() && scalar(&mut monitor, open) != "0",
        "the reader of jtbd_library waited until the push's transaction ended"
    );
    idle.batch_execute("COMMIT").expect("end the idle reader");
    push.finish().ok().stdout_has("Applied");
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "368");
}

/// R44: a push client busy computing leaves a large answer unread in its
/// socket: its receive window fills and its kernel answers the server's
/// probes. Linux's tcp_user_timeout counts that as an unacknowledged
/// answer: at 15 s (the client-silence bound), such a client lost its
/// connection mid-push. Here the client's only thread is held (as a long
/// computation holds it) for longer than that while Postgres is seen
/// blocked writing the answer to it (wait event ClientWrite); the answer
/// must then arrive whole and the transaction go on.
#[test]
fn a_busy_client_that_leaves_an_answer_unread_keeps_its_connection() {
    use sandbox::db::postgres::{connect, parse_target, tx};
    let db = common::TestDb::create("live_busy_client");
    let target = parse_target(&db.url).expect("url");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut client = connect(&target).await.expect("connect");
        let monitor = connect(&target).await.expect("connect the monitor");
        let tx = tx::begin(&mut client, 600_000, 10_000)
            .await
            .expect("begin");
        let pid: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        // 50 MB: far more than the socket buffers of both ends hold.
        let rows = {
            let answer = tx.simple_query("SELECT repeat('x', 100000) FROM generate_series(1, 500)");
            futures_util::pin_mut!(answer);
            assert!(futures_util::poll!(answer.as_mut()).is_pending());
            let mut polls = 0;
            loop {
                let wait: Option<String> = monitor
                    .query_one(
                        "SELECT wait_event FROM pg_stat_activity WHERE pid = $1",
                        &[&pid],
                    )
                    .await
                    .expect("read pg_stat_activity")
                    .get(0);
                if wait.as_deref() == Some("ClientWrite") {
                    break;
                }
                polls += 1;
                assert!(polls < 1000, "Postgres never waited to write the answer");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            // Busy: nothing on this thread reads the socket meanwhile.
            std::thread::sleep(std::time::Duration::from_millis(
                tx::CLIENT_SILENCE_MS + 5_000,
            ));
            answer
                .await
                .expect("the busy client's connection was ended")
                .into_iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count()
        };
        assert_eq!(rows, 500);
        assert_eq!(
            tx.query_one("SELECT 1", &[])
                .await
                .expect("the transaction goes on")
                .get::<_, i32>(0),
            1
        );
        tx.rollback().await.expect("rollback");
    });
}

/// The backstop behind S9: a transaction already holding ACCESS
/// EXCLUSIVE on `a`, with an app reader queued for `a`, asks for a lock on
/// `b` that an idle session keeps it from. It gives up after that attempt,
/// naming `a` and the idle session, instead of retrying for the whole
/// --lock-timeout while the reader of `a` waits; the advice is a retry.
#[test]
fn locking_gives_up_at_once_when_readers_queue_behind_an_exclusive_lock_it_holds() {
    use sandbox::db::postgres::tx::{self, LockMode};
    let db = common::TestDb::create("live_lock_backstop");
    let mut setup = db.client();
    setup
        .batch_execute("CREATE TABLE a (id int); CREATE TABLE b (id int)")
        .expect("tables");
    let mut idle = postgres_admin(&format!("{}?application_name=idle_b_reader", db.url));
    let idle_pid = scalar(&mut idle, "SELECT pg_backend_pid()");
    idle.batch_execute("BEGIN; SELECT count(*) FROM b")
        .expect("idle reader of b");
    let target = sandbox::db::postgres::parse_target(&db.url).expect("url");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (refusal, reader) = runtime.block_on(async {
        let mut client = sandbox::db::postgres::connect(&target)
            .await
            .expect("connect");
        let monitor = sandbox::db::postgres::connect(&target)
            .await
            .expect("connect the monitor");
        let tx = tx::begin(&mut client, 600_000, 60_000)
            .await
            .expect("begin");
        tx::lock_tables(&tx, &[("a".to_string(), LockMode::AccessExclusive)], 60_000)
            .await
            .expect("lock a");
        // An app reader of `a` queues behind that lock.
        let url = db.url.clone();
        let reader = std::thread::spawn(move || {
            let mut c = postgres_admin(&format!("{url}?application_name=reader_of_a"));
            scalar(&mut c, "SELECT count(*) FROM a")
        });
        let mut polls = 0;
        loop {
            let queued: i64 = monitor
                .query_one(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid \
                     WHERE s.application_name = 'reader_of_a' AND NOT l.granted",
                    &[],
                )
                .await
                .expect("read pg_locks")
                .get(0);
            if queued > 0 {
                break;
            }
            polls += 1;
            assert!(polls < 1000, "the reader of a never queued");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let refusal = tx::lock_tables(&tx, &[("b".to_string(), LockMode::AccessExclusive)], 60_000)
            .await
            .expect_err("b is held by the idle session");
        tx.rollback().await.expect("rollback");
        (refusal, reader)
    });
    assert_eq!(reader.join().expect("reader of a"), "0");
    idle.batch_execute("COMMIT").expect("end the idle reader");
    assert!(sandbox::error::is_lock_wait(&refusal), "{refusal:#}");
    let refusal = format!("{refusal:#}");
    for needle in [
        "could not lock b while holding ACCESS EXCLUSIVE on a",
        "gave up after 1 attempt of",
        &format!("pid {idle_pid}"),
        "idle_b_reader",
        "retry when it is done",
    ] {
        assert!(refusal.contains(needle), "{needle:?} missing: {refusal}");
    }
    assert!(!refusal.contains("--allow-irreversible"), "{refusal}");
}

/// What the push's backend holds on `workflows` and `jtbd_library` when
/// it reports `at` (a step it reaches after the ADD COLUMN step).
struct LocksAtStep {
    url: String,
    at: &'static str,
    seen: std::sync::Mutex<Vec<String>>,
}

impl sandbox::ops::push::PushProgress for LocksAtStep {
    fn step(&self, what: &str) {
        if !what.starts_with(self.at) {
            return;
        }
        // Read from another thread: this one runs the push's runtime.
        let url = self.url.clone();
        let held = std::thread::spawn(move || {
            let mut c = postgres_admin(&url);
            common::text_rows(
                &mut c,
                "SELECT c.relname::text || ' ' || l.mode FROM pg_locks l \
                 JOIN pg_class c ON c.oid = l.relation \
                 JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE a.application_name = 'sandbox' AND a.datname = current_database() \
                   AND l.granted AND c.relname IN ('workflows', 'jtbd_library') ORDER BY 1",
            )
        })
        .join()
        .expect("read pg_locks");
        self.seen
            .lock()
            .expect("seen")
            .extend(held.into_iter().map(|r| r[0].clone()));
    }
}

/// T3, revised by V11: the rehearsed undo's DROP TABLE tasks takes ACCESS
/// EXCLUSIVE on `workflows` (tasks' foreign key references it). T3 only
/// proved it free at the lock step and took it at the rehearsal, so that
/// readers of `workflows` were not held up to COMMIT; but an app
/// transaction that read `workflows` after the lock step and then wrote
/// `jtbd_library` then held what the rehearsal needed while waiting for the
/// push, and every push beside such an app was refused (see
/// `a_push_gets_through_a_busy_app_that_reads_workflows_then_writes_the_altered_table`).
/// After the lock step the push now holds ACCESS EXCLUSIVE on both.
#[test]
fn the_table_a_created_key_references_is_held_exclusively_from_the_lock_step_to_commit() {
    let w = live("live_probe_undo");
    let progress = LocksAtStep {
        url: w.db.url.clone(),
        at: "running the verification queries",
        seen: Default::default(),
    };
    let opts = sandbox::ops::push::PushOptions {
        target: sandbox::db::postgres::parse_target(&w.db.url).expect("url"),
        snapshot: w.snapshot.clone(),
        confirm: true,
        lock_timeout_ms: 10_000,
        statement_timeout_ms: 60_000,
        allow_writes: vec![],
        allow_external_effects: false,
        strict: false,
        allow_irreversible: false,
    };
    let plan = sandbox::plan::Plan::load_default().expect("the built-in plan loads");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(sandbox::ops::push::push(&opts, &plan, &progress))
        .expect("push");
    let seen = progress.seen.lock().expect("seen").clone();
    assert!(
        seen.contains(&"jtbd_library AccessExclusiveLock".to_string()),
        "the step was not reached after the ADD COLUMN: {seen:?}"
    );
    assert!(
        seen.contains(&"workflows AccessExclusiveLock".to_string()),
        "the push let go of workflows before its rehearsed undo's DROP: {seen:?}"
    );
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "368");
}

/// U1, revised by V12: the rollback used to delete the pushed rows of
/// `workflows` (holding them until COMMIT) and only then ask for the
/// ACCESS EXCLUSIVE its DROP TABLE tasks needs on `workflows`; an app
/// inserting a row that references a pushed workflow waited for that
/// deleted row while holding ROW SHARE on `workflows`, a cycle the
/// rollback could only end by giving up. Now every table lock comes in the
/// lock step, before any row is touched: while a reader of `tasks` holds
/// the rollback there, the app's insert goes through at once, and once
/// the reader lets go the rollback refuses by name, for the row that now
/// references what it would delete, changing nothing.
#[test]
fn a_rollback_waiting_for_its_locks_holds_no_row_an_app_needs() {
    let w = live("live_lock_cycle");
    let receipt = w.push_confirmed();
    let mut c = w.db.client();
    c.batch_execute(
        "CREATE TABLE app_runs (id serial PRIMARY KEY, \
         workflow_id uuid REFERENCES workflows (id) ON DELETE CASCADE)",
    )
    .expect("app table");
    let pushed = scalar(
        &mut c,
        "SELECT id::text FROM workflows WHERE definition->>'source' = 'dh_workflow' \
         ORDER BY id LIMIT 1",
    );
    let before = w.state();
    let mut reader = postgres_admin(&format!("{}?application_name=tasks_reader", w.db.url));
    reader
        .batch_execute("BEGIN; SELECT 1 FROM tasks LIMIT 1")
        .expect("reader");
    let rollback = w.rollback_spawned(&receipt, "30000");
    locks_held_when_waiting_for_exclusive(&mut c, "tasks");
    let mut app = postgres_admin(&format!("{}?application_name=fk_app", w.db.url));
    app.batch_execute("SET statement_timeout = '10s'")
        .expect("bound the app's wait");
    let inserted = app.execute(
        "INSERT INTO app_runs (workflow_id) VALUES ($1::text::uuid)",
        &[&pushed],
    );
    reader.batch_execute("COMMIT").expect("end the reader");
    let run = rollback.finish();
    assert_eq!(
        inserted.map_err(|e| e.to_string()),
        Ok(1),
        "the app's insert waited for the rollback"
    );
    run.code(1)
        .error_has(&["would destroy or break data it did not write", "app_runs"]);
    c.batch_execute("DELETE FROM app_runs")
        .expect("remove the app's row");
    before.assert_same(&w.state(), "a rollback refused for the app's reference");
}

/// An app loop on its own connection until `stop`: each `sql` (one
/// transaction, run as one batch) that commits counts; an error fails the
/// test.
fn app_loop(
    url: String,
    sql: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut c = postgres_admin(&url);
        let mut committed = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            c.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("the app's {sql}: {e}"));
            committed += 1;
        }
        committed
    })
}

/// U6/U1 liveness: a busy, well-behaved app runs while the push holds its
/// write set's locks — one loop reads `jtbd_library` (the table the plan
/// adds a column to) and then writes `workflows` (a table the push writes)
/// in one transaction, another inserts child rows of a `workflows` row.
/// Before, the push held SHARE ROW EXCLUSIVE on `workflows` and only later
/// asked for ACCESS EXCLUSIVE on `jtbd_library`: the app held the table the
/// push waited for and waited for the push — a cycle, and the push refused
/// ("waiting for rows this transaction had already locked"). The ADD
/// COLUMN's lock now comes in the same ordered step as the write set's,
/// ACCESS EXCLUSIVE first, so the push never holds some locks while it
/// waits for others: it applies in every trial, every app row committed is
/// there, and, without the app's rows, the whole database is what the same
/// push leaves with no app running.
#[test]
fn a_push_gets_through_a_busy_app_that_reads_the_altered_table_then_writes_another() {
    let reference = World::loaded("live_busy_reference", "plan").with_shared_snapshot();
    reference.push_confirmed();
    let expected = reference.state().without_schema("sandbox");
    const TRIALS: usize = 5;
    for trial in 1..=TRIALS {
        let w = World::loaded(&format!("live_busy_{trial}"), "plan")
            .with_shared_snapshot()
            .with_sql(
                "CREATE TABLE app_runs (id serial PRIMARY KEY, \
                 workflow_id uuid NOT NULL REFERENCES workflows (id))",
            );
        let parent = w.scalar("SELECT min(id::text) FROM workflows");
        let mut push = w.push_spawned("60000");
        // The app starts once the push holds `workflows` against writers:
        // its writes then wait for the push and commit after it, so they
        // are no drift.
        let mut monitor = w.db.client();
        // ACCESS EXCLUSIVE from the lock step (the rehearsed undo's DROP).
        let holding = &sandbox_locks(true, Some("AccessExclusiveLock"), "workflows");
        while push.running() && scalar(&mut monitor, holding) == "0" {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads_then_writes = app_loop(
            format!("{}?application_name=app_reads_then_writes", w.db.url),
            "BEGIN; SELECT count(*) FROM jtbd_library; \
             INSERT INTO workflows (name, definition) VALUES ('app row', '{}'); COMMIT"
                .to_string(),
            stop.clone(),
        );
        let children = app_loop(
            format!("{}?application_name=app_child_rows", w.db.url),
            format!("INSERT INTO app_runs (workflow_id) VALUES ('{parent}')"),
            stop.clone(),
        );
        let run = push.finish();
        // The app goes on for a moment after the push.
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let app_rows = reads_then_writes.join().expect("app thread");
        let child_rows = children.join().expect("app thread");
        assert_eq!(
            run.code,
            0,
            "trial {trial} of {TRIALS}: the push did not get through the busy app: {}",
            run.show()
        );
        run.stdout_has("Applied");
        assert_eq!(
            w.count("SELECT count(*) FROM workflows WHERE name = 'app row'"),
            app_rows as i64,
            "trial {trial}: the app's workflows rows"
        );
        assert_eq!(
            w.count("SELECT count(*) FROM app_runs"),
            child_rows as i64,
            "trial {trial}: the app's child rows"
        );
        w.exec("DELETE FROM workflows WHERE name = 'app row'; DROP TABLE app_runs");
        expected.assert_same(
            &w.state().without_schema("sandbox"),
            &format!("trial {trial}: the push beside the busy app"),
        );
    }
}

/// The give-up's wording when the session in the way waits for a table
/// lock this transaction holds (not for rows): a transaction holding
/// `b` against writers asks for ACCESS EXCLUSIVE on `a`, which an app
/// transaction has read before it tried to write `b`. The refusal names
/// the app, the table it waits for and that it waits for this
/// transaction; before, it said the app waited for "rows this transaction
/// had already locked or changed". The app's write goes through once the
/// transaction lets go, and nothing else changed.
#[test]
fn a_session_waiting_for_a_table_the_transaction_holds_is_named_with_that_table() {
    use sandbox::db::postgres::tx::{self, LockMode};
    let db = common::TestDb::create("live_cycle_wording");
    let mut setup = db.client();
    setup
        .batch_execute("CREATE TABLE a (id int); CREATE TABLE b (id int)")
        .expect("tables");
    let before = common::whole_database_state(&db.url);
    let target = sandbox::db::postgres::parse_target(&db.url).expect("url");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (refusal, app) = runtime.block_on(async {
        let mut client = sandbox::db::postgres::connect(&target)
            .await
            .expect("connect");
        let tx = tx::begin(&mut client, 600_000, 60_000)
            .await
            .expect("begin");
        tx::lock_tables(
            &tx,
            &[("b".to_string(), LockMode::ShareRowExclusive)],
            60_000,
        )
        .await
        .expect("lock b");
        let url = format!("{}?application_name=reads_a_writes_b", db.url);
        let app = std::thread::spawn(move || {
            let mut c = postgres_admin(&url);
            // Only the transaction's give-up may end the wait.
            c.batch_execute("SET deadlock_timeout = '10min'")
                .expect("put off the app's deadlock check");
            let pid = scalar(&mut c, "SELECT pg_backend_pid()");
            let written =
                c.batch_execute("BEGIN; SELECT count(*) FROM a; INSERT INTO b VALUES (1); COMMIT");
            (pid, written.map_err(|e| e.to_string()))
        });
        let monitor = sandbox::db::postgres::connect(&target)
            .await
            .expect("connect the monitor");
        let mut polls = 0;
        loop {
            let waiting: i64 = monitor
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = 'reads_a_writes_b' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .expect("read pg_stat_activity")
                .get(0);
            if waiting == 1 {
                break;
            }
            polls += 1;
            assert!(polls < 1000, "the app never waited for b");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let refusal = tx::lock_tables(&tx, &[("a".to_string(), LockMode::AccessExclusive)], 60_000)
            .await
            .expect_err("the app holds a and waits for b");
        tx.rollback().await.expect("rollback");
        (refusal, app)
    });
    let (app_pid, written) = app.join().expect("app thread");
    assert_eq!(written, Ok(()), "the app's write goes through afterwards");
    let refusal = format!("{refusal:#}");
    for needle in [
        &format!("pid {app_pid} is waiting to lock table b, which this transaction already holds"),
        "gave up after 1 attempt of",
        "reads_a_writes_b",
        "holds AccessShareLock on a",
    ] {
        assert!(refusal.contains(needle), "{needle:?} missing: {refusal}");
    }
    assert!(!refusal.contains("waiting for rows"), "{refusal}");
    setup
        .batch_execute("DELETE FROM b")
        .expect("remove the app's row");
    before.assert_same(&common::whole_database_state(&db.url), "a refused lock");
}

/// A push progress report that holds the push's only thread at some steps
/// (as heavy client-side work inside the transaction does) for `hold`.
struct SlowStep {
    at: &'static [&'static str],
    hold: std::time::Duration,
}

impl sandbox::ops::push::PushProgress for SlowStep {
    fn step(&self, what: &str) {
        if self.at.iter().any(|at| what.starts_with(at)) {
            std::thread::sleep(self.hold);
        }
    }
}

/// T7: between two statements of the push, Postgres waits for the
/// client, and ends the transaction once that wait passes
/// `idle_in_transaction_session_timeout` (the push sets 15 s; a database,
/// here, sets 1 s, as Supabase projects may). Client-side work inside the
/// transaction — at 300k rows the comparison with the rehearsed rows and
/// the receipt took longer than that — is done while a keepalive speaks on
/// the connection every second. Here the push's thread is held for longer
/// than the push's own silence bound at two steps inside the transaction:
/// the push still applies, and the database is what a push with nothing
/// held leaves. Before, the server ended the transaction ("terminating
/// connection due to idle-in-transaction timeout") and nothing was written;
/// at "committing", the keepalive's first version did not cover the step.
#[test]
fn a_push_whose_client_computes_longer_than_the_idle_timeout_keeps_its_transaction() {
    let reference = World::loaded("live_keepalive_reference", "plan").with_shared_snapshot();
    reference.push_confirmed();
    let expected = reference.state().without_schema("sandbox");
    let w = World::loaded("live_keepalive", "plan").with_shared_snapshot();
    w.exec(&format!(
        "ALTER DATABASE {} SET idle_in_transaction_session_timeout = '1s'",
        w.scalar("SELECT current_database()")
    ));
    let progress = SlowStep {
        // After the writes, and the last step before COMMIT.
        at: &["running the verification queries", "committing"],
        hold: std::time::Duration::from_millis(
            sandbox::db::postgres::tx::CLIENT_SILENCE_MS + 3_000,
        ),
    };
    let opts = sandbox::ops::push::PushOptions {
        target: sandbox::db::postgres::parse_target(&w.db.url).expect("url"),
        snapshot: w.snapshot.clone(),
        confirm: true,
        lock_timeout_ms: 10_000,
        statement_timeout_ms: 60_000,
        allow_writes: vec![],
        allow_external_effects: false,
        strict: false,
        allow_irreversible: false,
    };
    let plan = sandbox::plan::Plan::load_default().expect("the built-in plan loads");
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(sandbox::ops::push::push(&opts, &plan, &progress))
        .unwrap_or_else(|e| panic!("the push's transaction was ended: {e:#}"));
    assert!(report.receipt_id.is_some(), "not applied: {report:?}");
    w.exec(&format!(
        "ALTER DATABASE {} RESET idle_in_transaction_session_timeout",
        w.scalar("SELECT current_database()")
    ));
    expected.assert_same(
        &w.state().without_schema("sandbox"),
        "a push whose client computed for longer than the idle timeout",
    );
}

/// What [`app_loop_timed`] saw: transactions committed, the longest one
/// (ms), and the errors the app met (a deadlock Postgres broke on the
/// app's side, say).
struct AppRun {
    committed: u64,
    longest_ms: u128,
    errors: Vec<String>,
}

/// [`app_loop`], timing each transaction and keeping, instead of failing
/// on, the errors the app meets.
fn app_loop_timed(
    url: String,
    sql: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<AppRun> {
    std::thread::spawn(move || {
        let mut c = postgres_admin(&url);
        let mut run = AppRun {
            committed: 0,
            longest_ms: 0,
            errors: vec![],
        };
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let started = std::time::Instant::now();
            match c.batch_execute(&sql) {
                Ok(()) => run.committed += 1,
                Err(e) => {
                    run.errors.push(format!("{e:?}"));
                    c.batch_execute("ROLLBACK")
                        .expect("end the app's failed transaction");
                }
            }
            run.longest_ms = run.longest_ms.max(started.elapsed().as_millis());
        }
        run
    })
}

/// The app of V11/V12: each transaction reads `workflows` (which the
/// undo's DROP TABLE tasks, through its foreign key, locks exclusively)
/// and then writes `jtbd_library` (which the push alters and both write).
const APP_READS_WORKFLOWS_WRITES_JTBD: &str = "BEGIN; SELECT count(*) FROM workflows; \
     INSERT INTO jtbd_library (id, title) \
     VALUES ('app-' || substr(md5(random()::text), 1, 14), 'app row'); COMMIT";

/// `SANDBOX_LIVE_TRIALS` trials (3 unless set) of one command beside the
/// app of V11/V12. `start` sets the trial's world up and spawns the command,
/// returning it with the state the database must be in afterwards (without
/// the app's rows); the app starts once `holding` (a count of the
/// command's locks) sees the command's lock step. Every command must apply,
/// every app row must be there, the rest of the database must be that
/// state, and the app must meet no error.
fn trials_beside_the_app_reading_workflows(
    tag: &str,
    what: &str,
    holding: &str,
    start: impl Fn(&World) -> (common::Proc, common::DatabaseState),
) {
    let trials: usize = std::env::var("SANDBOX_LIVE_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3);
    let (mut outcomes, mut app_errors) = (Vec::new(), Vec::new());
    for trial in 1..=trials {
        let w = World::loaded(&format!("{tag}_{trial}"), "plan").with_shared_snapshot();
        let (mut command, expected) = start(&w);
        let mut monitor = w.db.client();
        while command.running() && scalar(&mut monitor, holding) == "0" {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let app = app_loop_timed(
            format!("{}?application_name=app_reads_workflows", w.db.url),
            APP_READS_WORKFLOWS_WRITES_JTBD.to_string(),
            stop.clone(),
        );
        let run = command.finish();
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let app = app.join().expect("app thread");
        eprintln!(
            "trial {trial}: {what} exit {} in {} ms, app committed {}, longest wait {} ms, errors {:?}",
            run.code, run.millis, app.committed, app.longest_ms, app.errors
        );
        if run.code != 0 {
            eprintln!("{}", run.stderr);
        }
        outcomes.push((run.code, run.show()));
        app_errors.extend(app.errors.iter().map(|e| format!("trial {trial}: {e}")));
        assert_eq!(
            w.count("SELECT count(*) FROM jtbd_library WHERE title = 'app row'"),
            app.committed as i64,
            "trial {trial}: the app's jtbd_library rows"
        );
        w.exec("DELETE FROM jtbd_library WHERE title = 'app row'");
        if run.code == 0 {
            expected.assert_same(
                &w.state().without_schema("sandbox"),
                &format!("trial {trial}: the {what} beside the busy app"),
            );
        }
    }
    let failed: Vec<&(i32, String)> = outcomes.iter().filter(|(c, _)| *c != 0).collect();
    assert!(
        failed.is_empty(),
        "{} of {trials} {what}s did not get through the app: {}",
        failed.len(),
        failed.first().map(|(_, s)| s.as_str()).unwrap_or("")
    );
    assert!(app_errors.is_empty(), "the app met errors: {app_errors:?}");
}

/// V11: the U6 trial with the app's order reversed — each app transaction
/// reads `workflows`, then writes `jtbd_library`. The app starts once the
/// push holds its locks; every push must apply, the app's rows are all
/// there, and without them the database is what the push alone leaves.
#[test]
fn a_push_gets_through_a_busy_app_that_reads_workflows_then_writes_the_altered_table() {
    let reference = World::loaded("live_rbusy_reference", "plan").with_shared_snapshot();
    reference.push_confirmed();
    let expected = reference.state().without_schema("sandbox");
    // ACCESS EXCLUSIVE from the lock step (the rehearsed undo's DROP).
    let holding = sandbox_locks(true, Some("AccessExclusiveLock"), "workflows");
    trials_beside_the_app_reading_workflows("live_rbusy", "push", &holding, |w| {
        (w.push_spawned("20000"), expected.clone())
    });
}

/// V12: the rollback counterpart of the V11 trial. Beside an app whose
/// short transactions read `workflows` (which the undo's DROP TABLE tasks
/// locks exclusively, through tasks' foreign key) and then write
/// `jtbd_library` (which the rollback writes and drops a column of), every
/// rollback must apply, every app row must be there, and without them the
/// database must be what it was before the push. The app starts once the
/// rollback holds its first lock.
#[test]
fn a_rollback_gets_through_a_busy_app_that_reads_workflows_then_writes_the_altered_table() {
    // The rollback's lock step: it writes jtbd_library (and drops the
    // column the push added there).
    let holding = format!(
        "{} AND l.mode IN ('ShareRowExclusiveLock', 'AccessExclusiveLock')",
        sandbox_locks(true, None, "jtbd_library")
    );
    trials_beside_the_app_reading_workflows("live_rbusy_undo", "rollback", &holding, |w| {
        let before = w.state().without_schema("sandbox");
        let receipt = w.push_confirmed();
        (w.rollback_spawned(&receipt, "20000"), before)
    });
}

/// V21: Supabase projects set `idle_in_transaction_session_timeout` on the
/// database. Pull reads in one REPEATABLE READ transaction and waits
/// between statements while the snapshot writer catches up: under a
/// database's `100ms` it died with a bare "connection closed". Pull, push
/// and rollback each set their own limit for their transaction (15 s, so
/// a client that is gone still frees the server): the pull succeeds, its
/// snapshot is whole (the rehearsal's counts hold and the push finds no
/// drift against it), and push and rollback apply.
#[test]
fn a_short_idle_in_transaction_limit_on_the_database_ends_no_pull_push_or_rollback() {
    let w = World::loaded("live_idle_limit", "plan");
    let before = w.state();
    w.exec(&format!(
        "ALTER DATABASE \"{}\" SET idle_in_transaction_session_timeout = '100ms'",
        w.db.name
    ));
    let limit = "SELECT current_setting('idle_in_transaction_session_timeout')";
    assert_eq!(w.scalar(limit), "100ms");
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let receipt = w.push_confirmed();
    w.rollback(&receipt, &["--confirm"]).ok();
    // The test's own state reader runs long transactions: it would be cut
    // off by the limit, so the limit goes before the comparison (which
    // then also covers that the setting left as the test found it).
    w.exec(&format!(
        "ALTER DATABASE \"{}\" RESET idle_in_transaction_session_timeout",
        w.db.name
    ));
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "push, then rollback, under a 100ms idle limit",
    );
}

/// V21: should the server end the session anyway — a limit shorter than
/// the round trip from BEGIN to the transaction's first statement, which
/// sets the pull's own — the error names the setting, its value, where it
/// is set and how to undo it, instead of "connection closed".
#[test]
fn an_idle_limit_shorter_than_a_round_trip_is_named_with_where_it_is_set() {
    let w = World::loaded("live_idle_named", "plan");
    w.exec(&format!(
        "ALTER DATABASE \"{}\" SET idle_in_transaction_session_timeout = '100ms'",
        w.db.name
    ));
    let (_link, far) = behind_latency_link(&w.db.url, 400, None);
    let run = common::sandbox(&["pull", "--database-url", &far, "--out", w.snap()]);
    run.code(2).error_has(&[
        "idle_in_transaction_session_timeout is 100ms",
        &format!("for the database ({})", w.db.name),
        &format!(
            "ALTER DATABASE \"{}\" RESET idle_in_transaction_session_timeout",
            w.db.name
        ),
        "run the pull again",
    ]);
    assert!(!w.snapshot.exists(), "{}", run.show());
}
