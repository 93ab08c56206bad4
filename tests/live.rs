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

use common::{run_sandbox, Run, TestDb};

/// A database with the plan fixtures, pulled and rehearsed (which passes).
struct Live {
    db: TestDb,
    _dir: tempfile::TempDir,
    snapshot: String,
}

impl Live {
    fn new(tag: &str) -> Live {
        let db = TestDb::create(tag);
        run_sandbox(&["fixtures", "load", "--database-url", &db.url], &[]).ok();
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshot = dir
            .path()
            .join("snapshot.sqlite")
            .to_str()
            .expect("utf-8 path")
            .to_string();
        run_sandbox(
            &["pull", "--database-url", &db.url, "--out", &snapshot],
            &[],
        )
        .ok();
        run_sandbox(&["rehearse", "--snapshot", &snapshot], &[]).ok();
        Live {
            db,
            _dir: dir,
            snapshot,
        }
    }

    fn push(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "push",
            "--database-url",
            &self.db.url,
            "--snapshot",
            &self.snapshot,
        ];
        args.extend_from_slice(extra);
        run_sandbox(&args, &[])
    }

    fn rollback(&self, receipt: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "rollback",
            "--database-url",
            &self.db.url,
            "--receipt",
            receipt,
        ];
        args.extend_from_slice(extra);
        run_sandbox(&args, &[])
    }
}

fn scalar(c: &mut postgres_sync::Client, sql: &str) -> String {
    for m in c.simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}")) {
        if let postgres_sync::SimpleQueryMessage::Row(r) = m {
            return r.get(0).unwrap_or("NULL").to_string();
        }
    }
    panic!("{sql}: no row")
}

fn receipt_of(run: &Run) -> String {
    run.stdout
        .split_whitespace()
        .skip_while(|w| *w != "Receipt")
        .nth(1)
        .unwrap_or_else(|| panic!("no receipt id: {}", run.show()))
        .to_string()
}

/// The app's write to one `prompts` row: a new prompt copied from an
/// existing one, returning its id.
const APP_INSERTS_A_PROMPT: &str =
    "INSERT INTO prompts SELECT (jsonb_populate_record(NULL::prompts, \
     to_jsonb(p) || jsonb_build_object('id', gen_random_uuid(), 'name', 'app row'))).* \
     FROM prompts p ORDER BY p.id LIMIT 1 RETURNING id::text";

#[test]
fn app_writes_to_tables_the_plan_never_touches_survive_push_and_rollback() {
    let w = Live::new("live_app");
    let mut c = w.db.client();
    // Between pull and push: the app edits one prompt and adds another.
    c.batch_execute(
        "UPDATE prompts SET name = name || ' (app edit)' WHERE id = (SELECT min(id::text)::uuid FROM prompts)",
    )
    .expect("app update");
    let before_push = scalar(&mut c, APP_INSERTS_A_PROMPT);
    let applied = w.push(&["--confirm"]);
    applied.ok();
    let receipt = receipt_of(&applied);
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
    let w = Live::new("live_strict");
    let mut c = w.db.client();
    scalar(&mut c, APP_INSERTS_A_PROMPT);
    w.push(&["--confirm", "--strict"])
        .code(1)
        .error_has(&["prompts unchanged since pull", "nothing was written"]);
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");
}

#[test]
fn rollback_refuses_only_when_rows_the_push_wrote_changed_and_names_them() {
    let w = Live::new("live_rollback");
    let mut c = w.db.client();
    let applied = w.push(&["--confirm"]);
    applied.ok();
    let receipt = receipt_of(&applied);
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
fn a_lock_timeout_of_zero_is_a_usage_error() {
    let w = Live::new("live_zero");
    w.push(&["--confirm", "--lock-timeout", "0"]).code(2);
    w.push(&["--confirm", "--lock-timeout", "-5"]).code(2);
    let mut c = w.db.client();
    assert_eq!(scalar(&mut c, "SELECT count(*) FROM workflows"), "141");
}
