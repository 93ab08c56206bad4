//! End to end: the real `sandbox` binary against a database of its own per
//! test — fixtures load → pull → rehearse → push → rollback — plus drift,
//! concurrent pushes, held locks, refused rehearsals and the `diff --sql`
//! script. Every assertion reads the values back from Postgres.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    count, postgres_admin, psql_file, sandbox, scalar, text_rows, whole_database_state,
    DatabaseState, Proc, Run, Sandbox, TestDb, World,
};
use postgres_sync::Client;

// ---------------------------------------------------------------------------
// Reading Postgres back

fn table_rows(c: &mut Client, table: &str) -> i64 {
    count(c, &format!("SELECT count(*) FROM public.{table}"))
}

fn table_exists(c: &mut Client, table: &str) -> bool {
    scalar(
        c,
        &format!("SELECT to_regclass('public.{table}') IS NOT NULL"),
    ) == "t"
}

fn column_exists(c: &mut Client, table: &str, column: &str) -> bool {
    count(
        c,
        &format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name = '{table}' AND column_name = '{column}'"
        ),
    ) == 1
}

fn sandbox_schema_exists(c: &mut Client) -> bool {
    count(
        c,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'sandbox'",
    ) == 1
}

/// id → md5 of an expression over the row `t`.
fn row_hashes(c: &mut Client, table: &str, expr: &str) -> BTreeMap<String, String> {
    text_rows(
        c,
        &format!("SELECT t.id::text, md5({expr}) FROM public.{table} t"),
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

/// The protected tables, row by row. `jtbd_library` is hashed without the
/// column the plan adds, the same expression before and after the push.
fn protected_hashes(c: &mut Client) -> BTreeMap<&'static str, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in ["prompts", "agents", "personas", "workflows"] {
        out.insert(t, row_hashes(c, t, "t::text"));
    }
    out.insert(
        "jtbd_library",
        row_hashes(
            c,
            "jtbd_library",
            "(to_jsonb(t) - 'strategic_priority_id')::text",
        ),
    );
    out
}

/// User triggers of schema public and whether they are enabled.
fn triggers(c: &mut Client) -> Vec<Vec<String>> {
    text_rows(
        c,
        "SELECT 'trigger', cl.relname, t.tgname, t.tgenabled::text FROM pg_trigger t \
         JOIN pg_class cl ON cl.oid = t.tgrelid JOIN pg_namespace n ON n.oid = cl.relnamespace \
         WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 2, 3",
    )
}

fn receipts(c: &mut Client) -> Vec<(String, String)> {
    text_rows(
        c,
        "SELECT id::text, status FROM sandbox.receipts ORDER BY pushed_at",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

const CREATED_TABLES: [&str; 3] = ["strategic_priorities", "tools", "tasks"];

/// The push wrote nothing: no created table, no added column, no receipt
/// schema, and the whole database as it was.
fn assert_nothing_written(c: &mut Client, url: &str, before: &DatabaseState) {
    for t in CREATED_TABLES {
        assert!(!table_exists(c, t), "table {t} exists: the push wrote");
    }
    assert!(
        !column_exists(c, "jtbd_library", "strategic_priority_id"),
        "jtbd_library.strategic_priority_id exists: the push wrote"
    );
    assert!(
        !sandbox_schema_exists(c),
        "schema sandbox exists: a receipt was written"
    );
    before.assert_same(&whole_database_state(url), "after the refused push");
}

/// Every number the seed plan promises, read from Postgres after a push.
fn assert_plan_applied(c: &mut Client) {
    assert_eq!(table_rows(c, "strategic_priorities"), 7);
    assert_eq!(table_rows(c, "tools"), 150);
    assert_eq!(table_rows(c, "workflows"), 368);
    assert_eq!(table_rows(c, "tasks"), 343);
    assert_eq!(table_rows(c, "jtbd_library"), 371);
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        ),
        105
    );
    // The linked rows are exactly the Medical Affairs JTBDs, each to the SP
    // its `function` names.
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM jtbd_library j JOIN strategic_priorities sp \
             ON sp.id = j.strategic_priority_id \
             WHERE sp.code = j.function AND j.jtbd_code LIKE 'JTBD-MA-%'"
        ),
        105
    );
    let total: i64 = [
        "prompts",
        "jtbd_library",
        "workflows",
        "agents",
        "personas",
        "strategic_priorities",
        "tools",
        "tasks",
    ]
    .iter()
    .map(|t| table_rows(c, t))
    .sum();
    assert_eq!(total, 5209, "total rows of the 8 plan tables");
    let per_sp = text_rows(
        c,
        "SELECT sp.code, count(j.id) FROM strategic_priorities sp \
         LEFT JOIN jtbd_library j ON j.strategic_priority_id = sp.id GROUP BY sp.code ORDER BY sp.code",
    );
    let expected: Vec<Vec<String>> = [
        ("SP01", 17),
        ("SP02", 19),
        ("SP03", 18),
        ("SP04", 14),
        ("SP05", 15),
        ("SP06", 8),
        ("SP07", 14),
    ]
    .iter()
    .map(|(sp, n)| vec![sp.to_string(), n.to_string()])
    .collect();
    assert_eq!(per_sp, expected, "JTBDs per strategic priority");
    let by_source = text_rows(
        c,
        "SELECT count(*) FILTER (WHERE definition->>'source' = 'dh_workflow'), \
                count(*) FILTER (WHERE definition->>'source' LIKE '%Operational Library%'), \
                count(*) FILTER (WHERE coalesce(definition->>'source', '') <> 'dh_workflow' \
                                   AND coalesce(definition->>'source', '') NOT LIKE '%Operational Library%') \
         FROM workflows",
    );
    assert_eq!(
        by_source,
        vec![vec!["116", "111", "141"]],
        "workflows by source"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM tasks t LEFT JOIN workflows w ON w.id = t.workflow_id WHERE w.id IS NULL"
        ),
        0,
        "tasks whose workflow does not exist"
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM tasks t JOIN workflows w ON w.id = t.workflow_id \
             WHERE w.definition->>'source' = 'dh_workflow'"
        ),
        343,
        "tasks linked to a migrated dh_workflow"
    );
    assert_plan_file_checks(c);
}

/// Every verification query and guard of the plan file, run as written.
fn assert_plan_file_checks(c: &mut Client) {
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_path("schema/plan.json")).expect("schema/plan.json"),
    )
    .expect("plan.json is JSON");
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let verification = plan["verification"].as_array().expect("verification list");
    assert!(!verification.is_empty());
    for v in verification {
        let sql = v["sql"].as_str().expect("sql");
        let rows = text_rows(c, sql);
        let expected: Vec<Vec<String>> = if let Some(e) = v.get("expect") {
            vec![vec![text(e)]]
        } else {
            v["expect_rows"]
                .as_array()
                .expect("expect or expect_rows")
                .iter()
                .map(|r| r.as_array().expect("row").iter().map(text).collect())
                .collect()
        };
        assert_eq!(rows, expected, "verification '{}' on Postgres", v["name"]);
    }
    for g in plan["guards"].as_array().expect("guards list") {
        let rows = text_rows(c, g["sql"].as_str().expect("sql"));
        assert!(
            rows.is_empty(),
            "guard '{}' found rows: {rows:?}",
            g["name"]
        );
    }
}

fn jtbd_updated_at(c: &mut Client) -> BTreeMap<String, String> {
    text_rows(c, "SELECT id::text, updated_at::text FROM jtbd_library")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

fn trigger_enabled(c: &mut Client, name: &str) -> String {
    scalar(
        c,
        &format!("SELECT tgenabled::text FROM pg_trigger WHERE tgname = '{name}'"),
    )
}

// ---------------------------------------------------------------------------
// 1 + 2: the full loop, then a second push

#[test]
fn full_loop_applies_the_plan_and_keeps_protected_rows_identical() {
    let w = World::loaded("loop", "plan").rehearsed();
    let mut c = w.db.client();
    let before = protected_hashes(&mut c);
    let before_state = whole_database_state(w.url());
    let before_updated = jtbd_updated_at(&mut c);
    let before_triggers = triggers(&mut c);
    assert_eq!(trigger_enabled(&mut c, "jtbd_library_set_updated_at"), "O");
    assert_eq!(before["workflows"].len(), 141);
    assert_eq!(before["jtbd_library"].len(), 371);

    // A dry run checks everything and writes nothing.
    w.push(&[]).ok().stdout_has("Dry run");
    assert_nothing_written(&mut c, w.url(), &before_state);

    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    assert_plan_applied(&mut c);

    let after = protected_hashes(&mut c);
    for t in ["prompts", "agents", "personas", "jtbd_library"] {
        assert!(before[t] == after[t], "{t} changed in the push");
    }
    // Workflows: every pre-existing row byte-identical, 227 new ones.
    let kept: BTreeMap<String, String> = after["workflows"]
        .iter()
        .filter(|(id, _)| before["workflows"].contains_key(*id))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(kept, before["workflows"], "pre-existing workflows changed");
    assert_eq!(after["workflows"].len() - kept.len(), 227);
    // The updated_at trigger was held off for the link update and is back on.
    assert_eq!(
        jtbd_updated_at(&mut c),
        before_updated,
        "jtbd_library.updated_at moved"
    );
    assert_eq!(trigger_enabled(&mut c, "jtbd_library_set_updated_at"), "O");
    assert_eq!(triggers(&mut c), before_triggers, "a trigger changed state");
    // Tables the plan only reads are untouched.
    let after_state = whole_database_state(w.url());
    for t in [
        "dh_domain",
        "dh_use_case",
        "dh_workflow",
        "dh_task",
        "dh_tool",
        "tenants",
        "profiles",
    ] {
        let t = format!("public.{t}");
        assert!(before_state.rows[&t] == after_state.rows[&t], "{t} changed");
    }
    let r = receipts(&mut c);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "applied");

    // 2: pushing the same snapshot again is a no-op.
    w.push(&["--confirm"]).ok().stdout_has("Already applied");
    assert_eq!(receipts(&mut c), r, "a second receipt was written");
    after_state.assert_same(&whole_database_state(w.url()), "by the second push");
    assert_plan_applied(&mut c);
}

// ---------------------------------------------------------------------------
// 3: rollback

#[test]
fn rollback_restores_every_row_and_a_new_push_applies_again() {
    let w = World::loaded("rollback", "plan").with_shared_snapshot();
    let mut c = w.db.client();
    let before_state = whole_database_state(w.url());

    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    let receipt = receipts(&mut c)[0].0.clone();
    let pushed_state = whole_database_state(w.url());

    // A dry run changes nothing, the receipt included.
    w.rollback(&receipt, &[]).ok().stdout_has("Dry run");
    pushed_state.assert_same(&whole_database_state(w.url()), "by the dry run");
    assert_eq!(
        receipts(&mut c),
        vec![(receipt.clone(), "applied".to_string())]
    );

    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("Rolled back");
    // As before the push, but for the receipt (kept, marked rolled back).
    before_state.assert_same(
        &whole_database_state(w.url()).without_schema("sandbox"),
        "from before the push to after the rollback",
    );
    for t in CREATED_TABLES {
        assert!(!table_exists(&mut c, t), "{t} survived the rollback");
    }
    assert!(!column_exists(
        &mut c,
        "jtbd_library",
        "strategic_priority_id"
    ));
    assert_eq!(
        receipts(&mut c),
        vec![(receipt.clone(), "rolled_back".to_string())]
    );
    assert_eq!(
        scalar(
            &mut c,
            &format!(
                "SELECT rolled_back_at IS NOT NULL FROM sandbox.receipts WHERE id = '{receipt}'"
            )
        ),
        "t"
    );

    // Undoing the same receipt again is a no-op, like a repeated push.
    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("Already rolled back");

    // The snapshot still matches the remote: the push applies again.
    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    let r = receipts(&mut c);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0], (receipt.clone(), "rolled_back".to_string()));
    assert_ne!(r[1].0, receipt);
    assert_eq!(r[1].1, "applied");
    assert_plan_applied(&mut c);
    pushed_state.without_schema("sandbox").assert_same(
        &whole_database_state(w.url()).without_schema("sandbox"),
        "from the first push to the second",
    );
}

// ---------------------------------------------------------------------------
// 4: drift at the remote

#[test]
fn drift_at_the_remote_refuses_and_writes_nothing() {
    // Each case: a fresh database with the same (deterministic) fixtures,
    // which the shared snapshot matches until the case changes it. The SQL
    // returns the key of the row it touched; `detail` is what the refusal
    // must then say about it.
    // The app's tables (prompts, personas, agents: the plan neither reads
    // nor writes them) are drift-checked only with --strict; tests/live.rs
    // shows push going ahead without it.
    let cases: [(&str, &str, &str, &str, &[&str]); 4] = [
        (
            "update a prompt",
            "UPDATE prompts SET name = name || ' (edited)' \
             WHERE id = (SELECT min(id::text)::uuid FROM prompts) RETURNING id::text",
            "prompts unchanged since pull",
            "row {} changed",
            &["--strict"],
        ),
        (
            "insert a dh_tool",
            "INSERT INTO dh_tool SELECT (jsonb_populate_record(NULL::dh_tool, to_jsonb(t) || \
             jsonb_build_object('id', gen_random_uuid(), 'code', t.code || '-drift', 'unique_id', NULL))).* \
             FROM dh_tool t ORDER BY t.id LIMIT 1 RETURNING id::text",
            "dh_tool unchanged since pull",
            "row {} added",
            &[],
        ),
        (
            "delete a persona",
            "DELETE FROM personas WHERE id = (SELECT min(id::text)::uuid FROM personas) RETURNING id::text",
            "personas unchanged since pull",
            "row {} deleted",
            &["--strict"],
        ),
        (
            "add a column to agents",
            "ALTER TABLE agents ADD COLUMN x int",
            "agents columns unchanged",
            "added: x integer",
            &["--strict"],
        ),
    ];
    for (what, sql, check, detail, extra) in cases {
        let w = World::loaded("drift", "plan").with_shared_snapshot();
        let mut c = w.db.client();
        let touched = text_rows(&mut c, sql);
        let detail = match touched.as_slice() {
            [] => detail.to_string(),
            [row] => detail.replace("{}", &row[0]),
            more => panic!("{what} touched {} rows", more.len()),
        };
        let state = whole_database_state(w.url());
        let run = w.push(&[&["--confirm"][..], extra].concat());
        run.code(1)
            .stderr_has(check)
            .stderr_has(&detail)
            .stderr_has("nothing was written");
        // Exactly the one drifted table is named: the other tables matched.
        let failed: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("  - "))
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "{what}: expected one failed check, got {failed:?}"
        );
        assert_nothing_written(&mut c, w.url(), &state);
    }
}

// ---------------------------------------------------------------------------
// 5: concurrent pushes

#[test]
fn concurrent_pushes_apply_once() {
    let w = World::loaded("concurrent", "plan").with_shared_snapshot();
    let args = [
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
        "--confirm",
        "--lock-timeout",
        "120000",
    ];
    let children: Vec<Proc> = (0..4).map(|_| Sandbox::new(&args).spawn()).collect();
    let runs: Vec<Run> = children.into_iter().map(Proc::finish).collect();
    let applied = runs
        .iter()
        .filter(|r| r.code == 0 && r.stdout.contains("Applied diff"))
        .count();
    assert_eq!(
        applied,
        1,
        "exactly one push applies: {:#?}",
        summary(&runs)
    );
    for r in runs.iter().filter(|r| !r.stdout.contains("Applied diff")) {
        let already = r.code == 0 && r.stdout.contains("Already applied");
        let refused = r.code == 1 && r.stderr.contains("nothing was written");
        assert!(
            already || refused,
            "a losing push neither saw the receipt nor refused: {:#?}",
            summary(&runs)
        );
    }
    let mut c = w.db.client();
    assert_plan_applied(&mut c);
    assert_eq!(receipts(&mut c).len(), 1, "receipts");
}

fn summary(runs: &[Run]) -> Vec<(i32, String, String)> {
    runs.iter()
        .map(|r| {
            (
                r.code,
                r.stdout.lines().last().unwrap_or("").to_string(),
                r.stderr.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 6: a failed or missing rehearsal refuses

#[test]
fn push_refuses_without_a_passing_rehearsal() {
    let w = World::loaded("refuse", "conflicts").pulled();
    let mut c = w.db.client();
    let state = whole_database_state(w.url());

    w.rehearse(&[]).code(1);
    for extra in [&["--confirm"][..], &[][..]] {
        w.push(extra)
            .code(1)
            .stderr_has("rehearsal")
            .stderr_has("failed");
    }
    assert_nothing_written(&mut c, w.url(), &state);

    // A snapshot that was never rehearsed.
    let fresh = w.dir.path().join("never-rehearsed.sqlite");
    sandbox(&[
        "pull",
        "--database-url",
        w.url(),
        "--out",
        fresh.to_str().unwrap(),
    ])
    .ok();
    sandbox(&[
        "push",
        "--database-url",
        w.url(),
        "--snapshot",
        fresh.to_str().unwrap(),
        "--confirm",
    ])
    .code(1)
    .stderr_has("no rehearsal");
    assert_nothing_written(&mut c, w.url(), &state);
}

// ---------------------------------------------------------------------------
// 7: locks held by other sessions

#[test]
fn a_held_lock_refuses_quickly_and_names_the_blocker() {
    let w = World::loaded("locked", "plan").with_shared_snapshot();
    let mut c = w.db.client();
    let state = whole_database_state(w.url());
    // What a push costs here without waiting (the machine may be busy): a
    // refusal must come within that plus the 1 s lock timeout and some
    // slack, well before the 10 s default lock timeout would end.
    let started = Instant::now();
    w.push(&[]).ok().stdout_has("Dry run");
    let quick = started.elapsed() + Duration::from_secs(7);

    let mut blocker = postgres_admin(&format!(
        "{}?application_name=sandbox_test_blocker",
        w.url()
    ));
    let pid = count(&mut blocker, "SELECT pg_backend_pid()");
    {
        let mut tx = blocker.transaction().expect("BEGIN");
        tx.batch_execute("UPDATE workflows SET name = name WHERE id = (SELECT min(id::text)::uuid FROM workflows)")
            .expect("UPDATE");
        let started = Instant::now();
        let run = w.push(&["--confirm", "--lock-timeout", "1000"]);
        let took = started.elapsed();
        run.code(1)
            .stderr_has(&format!("pid {pid}"))
            .stderr_has("sandbox_test_blocker")
            .stderr_has("workflows")
            .stderr_has("Nothing was written");
        assert!(took < quick, "refusing took {took:?} (budget {quick:?})");
        tx.rollback().expect("ROLLBACK");
    }
    assert_nothing_written(&mut c, w.url(), &state);

    // Another push or rollback holding the sandbox lock.
    blocker
        .batch_execute("SELECT pg_advisory_lock(x'53414e44424f5831'::int8)")
        .expect("advisory lock");
    let started = Instant::now();
    w.push(&["--confirm", "--lock-timeout", "500"])
        .code(1)
        .stderr_has("another `sandbox push` or `sandbox rollback` is running");
    let took = started.elapsed();
    assert!(took < quick, "refusing took {took:?} (budget {quick:?})");
    blocker
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .expect("unlock");
    assert_nothing_written(&mut c, w.url(), &state);
}

// ---------------------------------------------------------------------------
// 8: `diff --sql` is exactly the push

#[test]
fn diff_sql_script_is_exactly_the_push() {
    let w = World::loaded("sqlscript", "plan").with_shared_snapshot();
    let copy = TestDb::from_template(&w.db.name, "sqlscript_copy");
    let script = w.dir.path().join("push.sql");
    sandbox(&[
        "diff",
        "--snapshot",
        w.snap(),
        "--sql",
        script.to_str().unwrap(),
    ])
    .ok();
    w.push(&["--confirm"]).ok().stdout_has("Applied diff");

    let run = psql_file(&copy.url, &script);
    run.ok();
    assert!(!run.stderr.contains("ERROR"), "psql: {}", run.stderr);

    let mut copied = postgres_admin(&copy.url);
    assert_eq!(table_rows(&mut copied, "strategic_priorities"), 7);
    assert_eq!(table_rows(&mut copied, "tools"), 150);
    assert_eq!(table_rows(&mut copied, "workflows"), 368);
    assert_eq!(table_rows(&mut copied, "tasks"), 343);
    assert_eq!(
        count(
            &mut copied,
            "SELECT count(*) FROM jtbd_library WHERE strategic_priority_id IS NOT NULL"
        ),
        105
    );
    assert_plan_file_checks(&mut copied);
    // Row for row and column for column what the push produced (the push
    // also holds the updated_at trigger off, so updated_at must match too).
    whole_database_state(w.url())
        .without_schema("sandbox")
        .assert_same(
            &whole_database_state(&copy.url).without_schema("sandbox"),
            "from the push to the diff --sql script",
        );
}

// ---------------------------------------------------------------------------
// 9: a receipt whose type names were edited is refused, not spliced into SQL

#[test]
fn a_receipt_with_a_forged_type_name_is_refused_before_any_sql() {
    let w = World::loaded("forged_type", "plan").with_shared_snapshot();
    let mut c = w.db.client();
    w.push(&["--confirm"]).ok().stdout_has("Applied diff");
    let receipt = receipts(&mut c)[0].0.clone();
    c.batch_execute(
        "UPDATE sandbox.receipts SET undo = replace(undo::text, '\"uuid\"', \
         '\"uuid); DROP TABLE public.prompts; --\"')::jsonb",
    )
    .unwrap();
    let pushed = whole_database_state(w.url());
    w.rollback(&receipt, &["--confirm"])
        .code(1)
        .stderr_has("is not a Postgres type name");
    assert!(table_exists(&mut c, "prompts"), "the forged SQL ran");
    pushed.assert_same(&whole_database_state(w.url()), "by the refused rollback");
}

/// Regression: rollback dropped `jtbd_library.strategic_priority_id` (added
/// by the push, set on 105 rows) although the app had since linked one of
/// the other JTBDs (a row the push never wrote) and inserted a row of its
/// own referencing a pushed `strategic_priorities` row through the push's
/// own foreign key: both values were destroyed, exit 0. Now refused
/// (exit 1) naming table, column, count and keys; nothing changes. Once the app
/// clears its values, the rollback goes through.
#[test]
fn rollback_refuses_to_drop_an_added_column_holding_the_app_values() {
    let w = World::loaded("added_col_app", "plan").with_shared_snapshot();
    let receipt = w.push_confirmed();
    let unlinked = scalar(
        &mut w.db.client(),
        "SELECT min(id::text) FROM jtbd_library WHERE strategic_priority_id IS NULL",
    );
    w.exec(&format!(
        "UPDATE jtbd_library SET strategic_priority_id = (SELECT id FROM strategic_priorities ORDER BY id LIMIT 1) \
           WHERE id::text = '{unlinked}'; \
         INSERT INTO jtbd_library (id, title, strategic_priority_id) \
           VALUES ('app-new-1', 'app row', (SELECT id FROM strategic_priorities ORDER BY id LIMIT 1))"
    ));
    let before = w.state();
    for extra in [&[][..], &["--confirm"][..]] {
        w.rollback(&receipt, extra).refused(&[
            "jtbd_library.strategic_priority_id: 2 rows hold a value the push did not write there",
            "app-new-1",
            &unlinked,
            "nothing was changed",
        ]);
        before.assert_same(&w.state(), "after the refused rollback");
    }
    // Once the app's values are gone, the rollback goes through.
    w.exec(&format!(
        "DELETE FROM jtbd_library WHERE id = 'app-new-1'; \
         UPDATE jtbd_library SET strategic_priority_id = NULL WHERE id::text = '{unlinked}'"
    ));
    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("Rolled back");
}

/// A snapshot whose recorded server digest counts a negative number of rows
/// is damaged: push says so and writes nothing (before: the count was read
/// as 0, the digest of an empty table).
#[test]
fn a_negative_row_count_in_the_recorded_server_digests_is_named_as_damage() {
    let w = World::loaded("negative_digest", "plan").rehearsed();
    let before = w.state();
    rusqlite::Connection::open(&w.snapshot)
        .expect("open the snapshot")
        .execute(
            "UPDATE _sandbox_server_digests SET rows = -1 WHERE table_name = 'jtbd_library'",
            [],
        )
        .expect("damage the recorded digest");
    w.push(&["--confirm"]).code(2).error_has(&[
        "table jtbd_library: the server digest in the snapshot counts -1 rows",
        "pull again",
    ]);
    before.assert_same(&w.state(), "a refused push writes nothing");
}

/// Issue 10 (Q7): rolling back a receipt while later pushes are still
/// applied is refused, naming them newest first, at most 6, then "and N
/// more" (before, only a unit test of `words::listed` covered the cut).
/// Nine real pushes, each a small plan inserting one `dh_item` row; the
/// rollback of the first (dry run and `--confirm`) names the 6 newest of
/// the 8 later ones, "and 2 more", the command for the newest, exits 1,
/// and changes nothing. The newest one rolls back.
#[test]
fn rollback_under_eight_later_pushes_names_six_and_counts_the_rest() {
    let w = World::empty(
        "later_pushes",
        "CREATE TABLE public.dh_item (id text PRIMARY KEY, name text NOT NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut receipts = Vec::new();
    let mut w = w;
    for n in 0..9 {
        let plan = common::item_plan(
            &dir.path().join(n.to_string()),
            &[&format!(
                "INSERT INTO dh_item (id, name) VALUES ('item-{n}', 'pushed {n}');"
            )],
        );
        w = w.with_plan(&plan);
        w.pull(&["--force"]).ok();
        w.rehearse(&[]).ok().stdout_has("PASSED");
        receipts.push(w.push_confirmed());
    }
    assert_eq!(w.count("SELECT count(*) FROM public.dh_item"), 9);
    let (first, later) = receipts.split_first().unwrap();
    let newest_first: Vec<&String> = later.iter().rev().collect();
    let before = w.state();
    for extra in [&[][..], &["--confirm"][..]] {
        let run = w.rollback(first, extra);
        run.refused(&[
            &format!(
                "8 later pushes are still applied ({} and 2 more, newest first)",
                newest_first[..6]
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &format!("`sandbox rollback --receipt {} --confirm`", newest_first[0]),
        ]);
        for unnamed in &newest_first[6..] {
            assert!(!run.all().contains(unnamed.as_str()), "{}", run.show());
        }
        before.assert_same(&w.state(), "a refused rollback under later pushes");
    }
    w.rollback(newest_first[0], &["--confirm"])
        .ok()
        .stdout_has("Rolled back");
    assert_eq!(w.count("SELECT count(*) FROM public.dh_item"), 8);
}
