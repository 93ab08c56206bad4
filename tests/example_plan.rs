//! The example plan (examples/tool-catalog) end to end on the fixtures:
//! pull → rehearse → push → rollback with --plan, the whole database
//! compared before and after. It creates a table, updates existing rows and
//! deletes rows of a table that is not protected.

mod common;

use common::{count, psql_file, repo_path, sandbox, whole_database_state, Run, TestDb, World};

/// A database with the plan fixtures, and the example plan for every command.
fn example_world(tag: &str) -> World {
    World::loaded(tag, "plan").with_plan(&repo_path("examples/tool-catalog"))
}

#[test]
fn the_example_plan_runs_end_to_end_and_rolls_back_exactly() {
    let w = example_world("example_plan");
    // The same fixtures, for the reviewable script.
    let copy = TestDb::from_template(&w.db.name, "example_plan_copy");
    let before = w.state();
    let mut c = w.db.client();
    let blocked = count(
        &mut c,
        "SELECT count(*) FROM dh_task WHERE state = 'blocked'",
    );
    assert!(blocked > 0, "the fixtures have blocked tasks to delete");

    w.pull(&[]).ok();
    w.rehearse(&[]).ok().stdout_has("PASSED");
    // The built-in plan is another plan: it does not authorise this push.
    sandbox(&["diff", "--snapshot", w.snap()]).code(1);
    let script = w.dir.path().join("push.sql");
    w.diff(&["--sql", script.to_str().unwrap()])
        .ok()
        .stdout_has(&format!("{blocked} rows to delete"));

    let pushed = w.push(&["--confirm"]);
    pushed.ok().stdout_has("Applied diff");
    assert_eq!(count(&mut c, "SELECT count(*) FROM tool_categories"), 10);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated' AND NOT is_active"
        ),
        13
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM dh_tool WHERE metadata ? 'deprecated_at'"
        ),
        13
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM dh_task WHERE state = 'blocked'"
        ),
        0
    );
    // The updated_at trigger was held off (the plan names it): the rows
    // differ only where the plan changed them.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM dh_tool WHERE updated_at > now() - interval '1 hour'"
        ),
        count(
            &mut c,
            "SELECT count(*) FROM dh_tool WHERE updated_at > now() - interval '1 hour' AND lifecycle_stage <> 'deprecated'"
        )
    );
    // The diff --sql script does exactly what the push did, deletes
    // included.
    psql_file(&copy.url, &script).ok();
    w.state().without_schema("sandbox").assert_same(
        &whole_database_state(&copy.url).without_schema("sandbox"),
        "from the push to the diff --sql script",
    );
    let receipt = pushed.receipt();
    let deleted_images = count(
        &mut c,
        "SELECT sum(jsonb_array_length(t->'deleted_rows')) FROM sandbox.receipts r, jsonb_array_elements(r.undo->'tables') t",
    );
    assert_eq!(
        deleted_images, blocked,
        "the receipt keeps every deleted row"
    );

    w.rollback_restores(
        &receipt,
        &before,
        "from before the push to after the rollback",
    );
}

/// Deletes are counted wherever a push reports rows: the push's table
/// (after = before + inserts - deletes), the receipt's counts and
/// `sandbox receipts`.
#[test]
fn deletes_show_in_push_output_receipt_counts_and_receipts() {
    let w = example_world("example_deletes");
    let mut c = w.db.client();
    let tasks = count(&mut c, "SELECT count(*) FROM dh_task");
    let blocked = count(
        &mut c,
        "SELECT count(*) FROM dh_task WHERE state = 'blocked'",
    );
    assert!(blocked > 0, "the fixtures have blocked tasks to delete");
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let dry = w.push(&[]);
    dry.ok().stdout_has("deletes");
    let line: Vec<String> = dry
        .stdout
        .lines()
        .map(|l| {
            l.split(['│', '|'])
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().map(String::as_str) == Some("dh_task"))
        .unwrap_or_else(|| panic!("no dh_task line: {}", dry.show()));
    let want: Vec<String> = [tasks, tasks - blocked, 0, 0, blocked]
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(line[1..], want[..], "{}", dry.show());
    w.push(&["--confirm"]).ok();
    assert_eq!(
        count(
            &mut c,
            "SELECT (t->>'deleted')::int8 FROM sandbox.receipts r, jsonb_array_elements(r.counts) t \
             WHERE t->>'table' = 'dh_task'"
        ),
        blocked
    );
    sandbox(&[
        "receipts",
        "--database-url",
        w.url(),
        "--snapshot",
        w.snap(),
    ])
    .ok()
    .stdout_has(&format!(" -{blocked}"));
}

/// The "Next:" line of pull and of a green rehearsal, pasted as given, works
/// for a plan other than the built-in one (they carry --plan).
#[test]
fn the_next_commands_printed_for_another_plan_work_as_given() {
    let w = example_world("example_next");
    let next_of = |run: &Run| -> Vec<String> {
        let line = run
            .stdout
            .lines()
            .find_map(|l| l.split("Next: ").nth(1))
            .unwrap_or_else(|| panic!("no Next: line in {}", run.stdout))
            .to_string();
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        assert_eq!(words[0], "sandbox", "{line}");
        words[1..].to_vec()
    };
    let pulled = w.pull(&[]);
    let next = next_of(pulled.ok());
    let args: Vec<&str> = next.iter().map(String::as_str).collect();
    let rehearsed = sandbox(&args);
    let next = next_of(rehearsed.ok());
    let mut args: Vec<&str> = next.iter().map(String::as_str).collect();
    args.extend(["--database-url", w.url()]);
    sandbox(&args).ok().stdout_has("would");
}

/// A push that deleted rows of a table with a STORED generated column rolls
/// back: the rows go in again without it, Postgres computes it, and the
/// whole database equals its state before the push (before: rollback exit
/// 2, "column is a generated column", the rows stayed deleted).
#[test]
fn deleted_rows_of_a_table_with_a_generated_column_roll_back_exactly() {
    let w = example_world("example_generated").with_sql(
        "ALTER TABLE dh_task ADD COLUMN title_len int GENERATED ALWAYS AS (length(title)) STORED",
    );
    let before = w.state();
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let receipt = w.push_confirmed();
    assert_eq!(
        w.count("SELECT count(*) FROM dh_task WHERE state = 'blocked'"),
        0
    );
    w.rollback(&receipt, &["--confirm"])
        .ok()
        .stdout_has("re-inserted");
    before.assert_same(
        &w.state().without_schema("sandbox"),
        "from before the push to after the rollback",
    );
}

/// A BEFORE INSERT trigger that stamps the rows rollback inserts again
/// would leave them different from their before-images: the push, which
/// rehearses its rollback before COMMIT, refuses up front (exit 1, nothing
/// written); pushed anyway with --allow-irreversible, rollback refuses,
/// naming the table, row, column and trigger, and changes nothing (before:
/// exit 0, "rolled back", created_at silently the rollback's time).
#[test]
fn a_trigger_changing_the_rows_rollback_writes_back_refuses_the_rollback_by_name() {
    let w = example_world("example_restamp").with_sql(
        "CREATE FUNCTION stamp_created() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN NEW.created_at := now(); RETURN NEW; END $$; \
         CREATE TRIGGER dh_task_created BEFORE INSERT ON dh_task \
         FOR EACH ROW EXECUTE FUNCTION stamp_created();",
    );
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let before = w.state();
    w.push(&["--confirm"]).refused(&[
        "its rollback, rehearsed in the push's transaction before COMMIT, would be refused",
        "dh_task_created",
        "--allow-irreversible",
    ]);
    before.assert_same(&w.state(), "a push whose rollback would be refused");
    let pushed = w.push(&["--confirm", "--allow-irreversible"]);
    pushed.ok();
    let receipt = pushed.receipt();
    let after_push = w.state();
    w.rollback(&receipt, &["--confirm"]).refused(&[
        "dh_task rows written back as the receipt recorded them",
        "dh_task.created_at",
        "dh_task_created",
    ]);
    after_push.assert_same(&w.state(), "a refused rollback changes nothing");
}

/// The stamp trigger the push held off (the receipt names
/// dh_tool.dh_tool_set_updated_at), dropped by the app since: nothing to
/// hold off, said, and the rollback goes on; the database is as before the
/// push but for the app's DROP. Before: every rollback refused ("the plan
/// asks to hold it off, but no such trigger …"), for good.
#[test]
fn a_held_off_stamp_the_app_dropped_since_the_push_is_said_and_the_rollback_goes_on() {
    let w = example_world("example_stamp_dropped");
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec("DROP TRIGGER dh_tool_set_updated_at ON dh_tool");
    let run = w.rollback(&receipt, &["--confirm"]);
    run.ok().stdout_has(
        "Not held off (named by the receipt, gone since the push): \
         dh_tool.dh_tool_set_updated_at is no longer on dh_tool: nothing to hold off.",
    );
    assert!(!run.all().contains("triggers triggers"), "{}", run.show());
    // The app's DROP undone by hand: the rest is the rollback's.
    w.exec(
        "CREATE TRIGGER dh_tool_set_updated_at BEFORE UPDATE ON dh_tool \
         FOR EACH ROW EXECUTE FUNCTION fixture_set_updated_at()",
    );
    before.without_schema("sandbox").assert_same(
        &w.state().without_schema("sandbox"),
        "rolled back, trigger made again",
    );
}

/// Renamed instead (as when the app moves its stamps to another name), the
/// stamp would fire for the restore and move updated_at of every restored
/// row, which the push left alone, and no read-back looks at updated_at:
/// the rollback refuses (exit 1, nothing changed), naming both names and
/// the ALTER TRIGGER that puts the name back; after it, the rollback
/// restores the database whole. Before: refused for good, blaming "the
/// plan", which rollback does not read.
#[test]
fn a_held_off_stamp_the_app_renamed_since_the_push_refuses_with_the_rename_back() {
    let w = example_world("example_stamp_renamed");
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec("ALTER TRIGGER dh_tool_set_updated_at ON dh_tool RENAME TO dh_tool_touch");
    let renamed = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "dh_tool.dh_tool_set_updated_at, which the receipt holds off (recorded at the push), is \
         no longer on dh_tool, but dh_tool.dh_tool_touch (function fixture_set_updated_at()) is",
        "It would fire for the restore and stamp updated_at of every row the undo restores",
        "Rename it back (`ALTER TRIGGER \"dh_tool_touch\" ON public.\"dh_tool\" RENAME TO \
         \"dh_tool_set_updated_at\"`) and run the rollback again",
        "triggers held off by the receipt: only proven updated_at stamps",
        "nothing was changed",
    ]);
    assert!(!run.all().contains("the plan asks"), "{}", run.show());
    renamed.assert_same(&w.state(), "a refused rollback changes nothing");
    w.exec("ALTER TRIGGER \"dh_tool_touch\" ON public.\"dh_tool\" RENAME TO \"dh_tool_set_updated_at\"");
    w.rollback_restores(&receipt, &before, "renamed back, rolled back");
}

/// A second stamp the app added since the push (the held-off one kept):
/// it fires for the restore and would move updated_at of the 13 restored
/// rows, a column the undo does not write. The whole rows are read back
/// against what they held: the rollback refuses (exit 1, nothing changed),
/// naming the table, a row, the column, both values and the triggers that
/// fire for UPDATE there (t2 fires, the receipt's stamp is held off); after
/// DROP TRIGGER t2 it restores the database whole. Before: exit 0,
/// "restored", updated_at of those rows the rollback's time.
#[test]
fn a_stamp_the_app_added_since_the_push_refuses_the_restore_by_name() {
    let w = example_world("example_stamp_added");
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let before = w.state();
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE TRIGGER t2 BEFORE UPDATE ON dh_tool FOR EACH ROW \
         EXECUTE FUNCTION fixture_set_updated_at()",
    );
    let added = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "dh_tool rows written back as the receipt recorded them",
        "dh_tool.updated_at in 13 rows",
        "before the undo, which does not write it",
        "triggers that fire for UPDATE on dh_tool:",
        "t2 (BEFORE ROW, fires)",
        "dh_tool_set_updated_at (BEFORE ROW, held off)",
        "likely cause: t2 fired for the restore",
        "drop or disable t2 on dh_tool and roll back again",
        "nothing was changed",
    ]);
    added.assert_same(&w.state(), "a refused rollback changes nothing");
    // With --strict the tables are judged whole before the undo, not read
    // by row: the restored rows' before-push fingerprints name them.
    w.rollback(&receipt, &["--confirm", "--strict"]).refused(&[
        "13 rows of dh_tool differ from their images before the push",
        "differs from its image before the push (the receipt holds a fingerprint of that row",
        "likely cause: t2 fired for the restore",
        "nothing was changed",
    ]);
    added.assert_same(&w.state(), "a refused rollback changes nothing");
    w.exec("DROP TRIGGER t2 ON dh_tool");
    w.rollback_restores(&receipt, &before, "t2 dropped, rolled back");
}

/// The held-off stamp's function grew beyond a stamp since the push (it
/// writes a history row too): rollback refuses, saying the hold-off is the
/// receipt's (recorded at the push), not a plan's, and what to do — put
/// the function back to a pure stamp. Before: "the plan asks to hold it
/// off … Remove it from hold_off_triggers", a dead end: rollback takes no
/// plan.
#[test]
fn a_held_off_stamp_whose_function_grew_refuses_with_the_receipts_words() {
    let w = example_world("example_stamp_grown").with_sql(
        "CREATE TABLE public.tool_history (id bigserial PRIMARY KEY, tool_id uuid, \
         at timestamptz DEFAULT now())",
    );
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let receipt = w.push_confirmed();
    w.exec(
        "CREATE OR REPLACE FUNCTION public.fixture_set_updated_at() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.tool_history(tool_id) VALUES (NEW.id); \
         NEW.updated_at := now(); RETURN NEW; END $$",
    );
    let grown = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "dh_tool.dh_tool_set_updated_at (function fixture_set_updated_at()): the receipt holds \
         it off (recorded at the push, which proved it a pure updated_at stamp), but its \
         function body does more than",
        "To roll back, put fixture_set_updated_at() back to a pure stamp as at the push",
        "nothing was changed",
    ]);
    for stale in [
        "the plan asks",
        "Remove it from hold_off_triggers",
        "triggers triggers",
    ] {
        assert!(!run.all().contains(stale), "{stale}: {}", run.show());
    }
    grown.assert_same(&w.state(), "a refused rollback changes nothing");
}

/// The app changed the shape of a table the push wrote: rollback refuses by
/// name, before reading anything, and changes nothing (before: exit 2,
/// "column \"webhooks\" does not exist"). Only the columns the undo needs
/// as recorded count (h5 F9): dh_task's rows the push deleted are inserted
/// again whole, so its lost column refuses, with that reason; dh_tool's
/// widened notes, which the undo neither finds rows by nor writes, does
/// not (before: named too, "the receipt's before-images … name these
/// columns").
#[test]
fn a_column_the_app_dropped_or_retyped_since_the_push_refuses_the_rollback_by_name() {
    let w = example_world("example_reshaped");
    w.pull(&[]).ok();
    w.rehearse(&[]).ok();
    let receipt = w.push_confirmed();
    w.exec("ALTER TABLE dh_task DROP COLUMN webhooks; ALTER TABLE dh_tool ALTER COLUMN notes TYPE varchar(4000)");
    let after = w.state();
    let run = w.rollback(&receipt, &["--confirm"]);
    run.refused(&[
        "dh_task has lost column webhooks, and the undo inserts the rows the push deleted there \
         again whole, from the receipt's before-images",
        "nothing was changed",
    ]);
    assert!(!run.all().contains("dh_tool.notes"), "{}", run.show());
    after.assert_same(&w.state(), "a refused rollback changes nothing");
}

/// A pulled table the plan does not write still references rows a phase
/// deletes: the rehearsal names the foreign key and rows (exit 1), so the
/// push never meets it as a refusal or a cascade outside the plan that
/// rollback cannot restore (before: rehearsal green, preflight advised
/// --allow-writes for the cascade).
#[test]
fn deleting_rows_a_pulled_table_still_references_fails_the_rehearsal_by_name() {
    let plan_dir = tempfile::tempdir().unwrap();
    let plan = plan_dir.path().join("plan");
    common::copy_dir(&repo_path("examples/tool-catalog"), &plan);
    let file = plan.join("plan.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    json["tables"]["sources"]
        .as_array_mut()
        .unwrap()
        .push("dh_task_note".into());
    std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let w = World::loaded("example_referenced", "plan")
        .with_plan(&plan)
        .with_sql(
            "CREATE TABLE dh_task_note (id int PRIMARY KEY, \
             task_id uuid REFERENCES dh_task (id) ON DELETE CASCADE); \
             INSERT INTO dh_task_note SELECT 1, id FROM dh_task WHERE state = 'blocked' \
             ORDER BY id LIMIT 1",
        );
    let blocked_task = w.scalar("SELECT task_id::text FROM dh_task_note");
    w.pull(&[]).ok();
    w.rehearse(&[])
        .code(1)
        .stdout_has("dh_task_note_task_id_fkey");
    let (_, report) = w.rehearse_json(&[]);
    let check = common::failed_checks(&report)
        .into_iter()
        .find(|c| {
            c["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("dh_task_note: FOREIGN KEY dh_task_note_task_id_fkey")
        })
        .unwrap_or_else(|| panic!("no failed FK check: {report}"));
    assert_eq!(check["row_count"], 1, "{check}");
    assert!(
        check["rows"][0]
            .as_str()
            .unwrap()
            .contains(&format!("task_id={blocked_task} no longer in dh_task")),
        "{check}"
    );
}

/// `dh_tool` partitioned by hash of its key and `dh_task` by list of its
/// `state` (part of its key, as Postgres requires), rows moved in whole.
const PARTITIONED_DH: &str = "
ALTER TABLE dh_tool RENAME TO dh_tool_old;
ALTER TABLE dh_tool_old RENAME CONSTRAINT dh_tool_pkey TO dh_tool_old_pkey;
CREATE TABLE dh_tool (LIKE dh_tool_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY HASH (id);
ALTER TABLE dh_tool ADD PRIMARY KEY (id);
CREATE TABLE dh_tool_p0 PARTITION OF dh_tool FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE dh_tool_p1 PARTITION OF dh_tool FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO dh_tool SELECT * FROM dh_tool_old;
DROP TABLE dh_tool_old;
CREATE TRIGGER dh_tool_set_updated_at BEFORE UPDATE ON dh_tool
  FOR EACH ROW EXECUTE FUNCTION fixture_set_updated_at();
ALTER TABLE dh_task RENAME TO dh_task_old;
ALTER TABLE dh_task_old RENAME CONSTRAINT dh_task_pkey TO dh_task_old_pkey;
CREATE TABLE dh_task (LIKE dh_task_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY LIST (state);
ALTER TABLE dh_task ADD PRIMARY KEY (id, state);
CREATE TABLE dh_task_blocked PARTITION OF dh_task FOR VALUES IN ('blocked');
CREATE TABLE dh_task_other PARTITION OF dh_task DEFAULT;
INSERT INTO dh_task SELECT * FROM dh_task_old;
DROP TABLE dh_task_old;
ALTER TABLE dh_task ADD FOREIGN KEY (workflow_id) REFERENCES dh_workflow (id) ON DELETE CASCADE;
";

/// The snapshot's tables with their row counts.
fn pulled_tables(w: &World) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(&w.snapshot).expect("the snapshot opens");
    let mut stmt = c
        .prepare("SELECT table_name, rows FROM _sandbox_tables ORDER BY table_name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// A partitioned `dh_*` table is pulled once, through its partitioned
/// table (before: the `dh_*` pattern took its partitions too, so every row
/// was in the snapshot twice), and push and rollback write it through the
/// partitioned table: the built-in plan (which reads dh_*) and the example
/// plan (which updates dh_tool and deletes from dh_task) push and roll
/// back to the whole database as it was.
#[test]
fn partitioned_dh_tables_are_pulled_once_and_pushed_through_their_parent() {
    let w = World::loaded("partitioned", "plan").with_sql(PARTITIONED_DH);
    let tools = w.count("SELECT count(*) FROM dh_tool");
    let tasks = w.count("SELECT count(*) FROM dh_task");
    w.pull(&[]).ok();
    let pulled = pulled_tables(&w);
    assert!(
        !pulled
            .iter()
            .any(|(t, _)| t.starts_with("dh_tool_") || t.starts_with("dh_task_")),
        "partitions are not pulled on their own: {pulled:?}"
    );
    assert!(
        pulled.contains(&("dh_tool".to_string(), tools)),
        "{pulled:?}"
    );
    assert!(
        pulled.contains(&("dh_task".to_string(), tasks)),
        "{pulled:?}"
    );
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let before = w.state();
    let receipt = w.push_confirmed();
    w.rollback_restores(
        &receipt,
        &before,
        "built-in plan: before the push to after the rollback",
    );

    let w = World::loaded("partitioned_example", "plan")
        .with_sql(PARTITIONED_DH)
        .with_plan(&repo_path("examples/tool-catalog"));
    let before = w.state();
    w.pull(&[]).ok();
    w.rehearse(&[]).ok().stdout_has("PASSED");
    let receipt = w.push_confirmed();
    assert_eq!(
        w.count(
            "SELECT count(*) FROM dh_tool WHERE lifecycle_stage = 'deprecated' AND NOT is_active"
        ),
        13
    );
    assert_eq!(w.count("SELECT count(*) FROM dh_task_blocked"), 0);
    w.rollback_restores(
        &receipt,
        &before,
        "example plan: before the push to after the rollback",
    );
}

/// App tables the snapshot does not hold reference rows the plan deletes:
/// the rehearsal cannot see them (they are not pulled), so the preflight
/// names what Postgres would do through each foreign key — constraint,
/// referencing table, action and rows — and what to do (before: "written
/// by a trigger, rule or event trigger"). Nothing is written; allowed, the
/// loss is listed as a side effect.
#[test]
fn a_cascade_from_an_unpulled_app_table_is_named_as_its_foreign_key() {
    let w = example_world("cascade_unpulled").with_sql(
        "CREATE TABLE task_notes (id serial PRIMARY KEY, \
           task_id uuid REFERENCES dh_task (id) ON DELETE CASCADE, note text);
         INSERT INTO task_notes (task_id, note)
           SELECT id, 'a note' FROM dh_task WHERE state = 'blocked' ORDER BY id LIMIT 5;
         CREATE TABLE task_links (id serial PRIMARY KEY, \
           task_id uuid REFERENCES dh_task (id) ON DELETE SET NULL);
         INSERT INTO task_links (task_id)
           SELECT id FROM dh_task WHERE state = 'blocked' ORDER BY id LIMIT 3;",
    );
    w.pull(&[]).ok();
    // The rehearsal cannot see those rows; it lists each key into the rows
    // it deletes for the preflight.
    let (run, report) = w.rehearse_json(&[]);
    run.ok();
    let referenced: Vec<(&str, &str)> = report["preflight"]
        .as_array()
        .unwrap_or_else(|| panic!("no preflight in {report:#}"))
        .iter()
        .filter(|p| p["kind"] == "referenced_by")
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(referenced.len(), 2, "{referenced:?}");
    assert_eq!(referenced[0].0, "task_links_task_id_fkey");
    assert_eq!(referenced[1].0, "task_notes_task_id_fkey");
    let blocked = w.count("SELECT count(*) FROM dh_task WHERE state = 'blocked'");
    assert!(
        referenced[1].1.contains(&format!(
            "ON DELETE CASCADE: the plan deletes or re-keys {blocked} rows of dh_task"
        )),
        "{referenced:?}"
    );
    let before = w.state();
    for extra in [&[][..], &["--confirm"][..]] {
        w.push(extra).refused(&[
            "public.task_notes: 5 rows (0 inserted, 0 updated, 5 deleted) — written by Postgres \
             through foreign key task_notes_task_id_fkey (public.task_notes(task_id) references \
             public.dh_task ON DELETE CASCADE)",
            "public.task_links: 3 rows (0 inserted, 3 updated, 0 deleted) — written by Postgres \
             through foreign key task_links_task_id_fkey (public.task_links(task_id) references \
             public.dh_task ON DELETE SET NULL)",
            "The plan must not delete or re-key referenced rows",
            "--allow-writes public.task_notes",
        ]);
        before.assert_same(&w.state(), "a refused push");
    }
    // The preflight's closing line advises the push that applies, with the
    // plan and the allowed writes it was given: run as printed, it applies.
    let preflight = w.push(&[
        "--allow-writes",
        "public.task_notes",
        "--allow-writes",
        "public.task_links",
    ]);
    preflight.ok();
    let advised = preflight.advised_args("and was rolled back. `");
    assert!(advised.contains(&"--plan".to_string()), "{advised:?}");
    let advised: Vec<&str> = advised.iter().map(String::as_str).collect();
    w.run_exported(&advised).ok().stdout_has("Applied diff");
    assert_eq!(w.count("SELECT count(*) FROM task_notes"), 0);
    assert_eq!(
        w.count("SELECT count(*) FROM task_links WHERE task_id IS NULL"),
        3
    );
}
