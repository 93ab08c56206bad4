//! The example plan (examples/tool-catalog) end to end on the fixtures:
//! pull → rehearse → push → rollback with --plan, the whole database
//! compared before and after. It creates a table, updates existing rows and
//! deletes rows of a table that is not protected.

mod common;

use std::process::{Command, Stdio};

use common::{count, repo_path, require_tool, sandbox, scalar, whole_database_state, Run, TestDb};

#[test]
fn the_example_plan_runs_end_to_end_and_rolls_back_exactly() {
    let db = TestDb::create("example_plan");
    sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    // The same fixtures, for the reviewable script.
    let copy = TestDb::from_template(&db.name, "example_plan_copy");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("example.sqlite");
    let snap = snap.to_str().unwrap();
    let plan = repo_path("examples/tool-catalog");
    let plan = plan.to_str().unwrap();
    let before = whole_database_state(&db.url);
    let mut c = db.client();
    let blocked = count(
        &mut c,
        "SELECT count(*) FROM dh_task WHERE state = 'blocked'",
    );
    assert!(blocked > 0, "the fixtures have blocked tasks to delete");

    sandbox(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        snap,
        "--plan",
        plan,
    ])
    .ok();
    sandbox(&["rehearse", "--snapshot", snap, "--plan", plan])
        .ok()
        .stdout_has("PASSED");
    // The built-in plan is another plan: it does not authorise this push.
    sandbox(&["diff", "--snapshot", snap]).code(1);
    let script = dir.path().join("push.sql");
    sandbox(&[
        "diff",
        "--snapshot",
        snap,
        "--plan",
        plan,
        "--sql",
        script.to_str().unwrap(),
    ])
    .ok()
    .stdout_has(&format!("{blocked} rows to delete"));

    let pushed = sandbox(&[
        "push",
        "--database-url",
        &db.url,
        "--snapshot",
        snap,
        "--plan",
        plan,
        "--confirm",
    ]);
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
    let psql = Command::new(require_tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &copy.url, "-f"])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    Run::of_output(&format!("psql -f {}", script.display()), &psql).ok();
    whole_database_state(&db.url)
        .without_schema("sandbox")
        .assert_same(
            &whole_database_state(&copy.url).without_schema("sandbox"),
            "from the push to the diff --sql script",
        );
    let receipt = scalar(&mut c, "SELECT id::text FROM sandbox.receipts");
    let deleted_images = count(
        &mut c,
        "SELECT sum(jsonb_array_length(t->'deleted_rows')) FROM sandbox.receipts r, jsonb_array_elements(r.undo->'tables') t",
    );
    assert_eq!(
        deleted_images, blocked,
        "the receipt keeps every deleted row"
    );

    sandbox(&[
        "rollback",
        "--database-url",
        &db.url,
        "--receipt",
        &receipt,
        "--confirm",
    ])
    .ok();
    before.assert_same(
        &whole_database_state(&db.url).without_schema("sandbox"),
        "from before the push to after the rollback",
    );
}

/// Deletes are counted wherever a push reports rows: the push's table
/// (after = before + inserts - deletes), the receipt's counts and
/// `sandbox receipts`.
#[test]
fn deletes_show_in_push_output_receipt_counts_and_receipts() {
    let db = TestDb::create("example_deletes");
    sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("example.sqlite");
    let snap = snap.to_str().unwrap();
    let plan = repo_path("examples/tool-catalog");
    let plan = plan.to_str().unwrap();
    let mut c = db.client();
    let tasks = count(&mut c, "SELECT count(*) FROM dh_task");
    let blocked = count(
        &mut c,
        "SELECT count(*) FROM dh_task WHERE state = 'blocked'",
    );
    assert!(blocked > 0, "the fixtures have blocked tasks to delete");
    let pull = [
        "pull",
        "--database-url",
        &db.url,
        "--out",
        snap,
        "--plan",
        plan,
    ];
    sandbox(&pull).ok();
    sandbox(&["rehearse", "--snapshot", snap, "--plan", plan]).ok();
    let push = |extra: &[&str]| {
        let mut args = vec![
            "push",
            "--database-url",
            &db.url,
            "--snapshot",
            snap,
            "--plan",
            plan,
        ];
        args.extend_from_slice(extra);
        sandbox(&args)
    };
    let dry = push(&[]);
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
    push(&["--confirm"]).ok();
    assert_eq!(
        count(
            &mut c,
            "SELECT (t->>'deleted')::int8 FROM sandbox.receipts r, jsonb_array_elements(r.counts) t \
             WHERE t->>'table' = 'dh_task'"
        ),
        blocked
    );
    sandbox(&["receipts", "--database-url", &db.url, "--snapshot", snap])
        .ok()
        .stdout_has(&format!(" -{blocked}"));
}

/// The "Next:" line of pull and of a green rehearsal, pasted as given, works
/// for a plan other than the built-in one (they carry --plan).
#[test]
fn the_next_commands_printed_for_another_plan_work_as_given() {
    let db = TestDb::create("example_next");
    sandbox(&["fixtures", "load", "--database-url", &db.url]).ok();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("next.sqlite");
    let snap = snap.to_str().unwrap();
    let plan = repo_path("examples/tool-catalog");
    let plan = plan.to_str().unwrap();
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
    let pulled = sandbox(&[
        "pull",
        "--database-url",
        &db.url,
        "--out",
        snap,
        "--plan",
        plan,
    ]);
    let next = next_of(pulled.ok());
    let args: Vec<&str> = next.iter().map(String::as_str).collect();
    let rehearsed = sandbox(&args);
    let next = next_of(rehearsed.ok());
    let mut args: Vec<&str> = next.iter().map(String::as_str).collect();
    args.extend(["--database-url", &db.url]);
    sandbox(&args).ok().stdout_has("would");
}
