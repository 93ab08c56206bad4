//! The user's journey (issue 13): output that fits, colour, typed JSON
//! errors, receipts, policies and adopted expectations, the HTML report.

mod common;

use common::{json_of, run_sandbox, World};

/// A database loaded with the `plan` fixtures, pulled and rehearsed (green).
fn rehearsed(tag: &str) -> World {
    World::loaded(tag, "plan").rehearsed()
}

fn demo(dir: &std::path::Path, variant: &str, extra: &[&str]) -> common::Run {
    let out = dir.join(format!("{variant}.sqlite"));
    let mut args = vec!["demo", "--variant", variant, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_sandbox(&args, &[])
}

/// `sandbox report --snapshot snapshot --html html`.
fn report_html(snapshot: &std::path::Path, html: &std::path::Path) -> common::Run {
    run_sandbox(
        &[
            "report",
            "--snapshot",
            snapshot.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
        &[],
    )
}

fn table_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with(['┌', '│', '├', '└']))
        .collect()
}

#[test]
fn tables_fit_100_columns_when_not_a_terminal_with_long_values_in_a_detail_section() {
    let dir = tempfile::tempdir().unwrap();
    let r = demo(dir.path(), "conflicts", &[]);
    r.code(1);
    let lines = table_lines(&r.stdout);
    assert!(lines.len() > 40, "{}", r.show());
    for l in &lines {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    // The status leads each row, so a failure is seen at the start of the line.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("│ FAILED │ 1 ") && l.contains("Medical Affairs JTBDs linked")),
        "{}",
        r.stdout
    );
    // The long per-priority value is summarised in the table...
    let row = lines
        .iter()
        .find(|l| l.contains("JTBDs per strategic priority"))
        .unwrap();
    assert!(
        row.contains("7 values [2]") && row.contains("7 values, 3 differ"),
        "{row}"
    );
    // ...and shown in full below, one value per line.
    assert!(
        r.stdout
            .contains("[2] final — JTBDs per strategic priority"),
        "{}",
        r.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("│ SP02 ")
            && l.contains(" 19 ")
            && l.contains(" 16 ")
            && l.contains("FAILED")),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains('\x1b'),
        "no colour on a pipe: {}",
        r.stdout
    );
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let always = demo(dir.path(), "conflicts", &["--color", "always"]);
    always.code(1);
    assert!(
        always.stdout.contains("\x1b[1;31mFAILED"),
        "{}",
        always.show()
    );
    assert!(always.stdout.contains("\x1b[32mok"), "{}", always.show());
    // Colour never changes a table's width.
    for l in table_lines(&console_strip(&always.stdout)) {
        assert!(l.chars().count() <= 100, "{l}");
    }
    let never = demo(dir.path(), "conflicts", &["--color", "never"]);
    assert!(!never.stdout.contains('\x1b'), "{}", never.show());
    // run_sandbox sets NO_COLOR; auto on a pipe is plain anyway.
    let auto = demo(dir.path(), "conflicts", &["--color", "auto"]);
    assert!(!auto.stdout.contains('\x1b'), "{}", auto.show());
    run_sandbox(&["plan", "--color", "sometimes"], &[]).code(2);
}

fn console_strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn plan_prints_policies_as_the_file_spells_them_and_fits() {
    let r = run_sandbox(&["plan"], &[]);
    r.ok();
    assert!(
        r.stdout.contains(
            "existing_library_workflow = fail (of fail|skip), jtbd_sp_link = require_agreement"
        ),
        "{}",
        r.stdout
    );
    // Every line, the labelled ones ("Pulls …") as well as the tables.
    for l in r.stdout.lines() {
        assert!(l.chars().count() <= 100, "{l}");
    }
    assert!(
        r.stdout
            .contains("[2] final — JTBDs per strategic priority"),
        "{}",
        r.stdout
    );
}

#[test]
fn help_shows_no_empty_environment_values_and_rollback_speaks_of_its_own_transaction() {
    let r = run_sandbox(&["rehearse", "--help"], &[]);
    r.ok();
    assert!(!r.stdout.contains("SANDBOX_PLAN="), "{}", r.stdout);
    assert!(r.stdout.contains("[env: SANDBOX_PLAN]"), "{}", r.stdout);
    let r = run_sandbox(&["rollback", "--help"], &[]);
    assert!(!r.stdout.contains("push transaction"), "{}", r.stdout);
}

#[test]
fn diff_sql_script_warns_that_running_it_applies_without_receipt_or_checks() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), "plan", &[]).ok();
    let snap = dir.path().join("plan.sqlite");
    let sql = dir.path().join("diff.sql");
    run_sandbox(
        &[
            "diff",
            "--snapshot",
            snap.to_str().unwrap(),
            "--sql",
            sql.to_str().unwrap(),
        ],
        &[],
    )
    .ok();
    let text = std::fs::read_to_string(&sql).unwrap();
    let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("APPLIES THE MIGRATION")
            && head.contains("NO RECEIPT")
            && head.contains("no drift check"),
        "{head}"
    );
}

#[test]
fn stored_report_views_use_no_json_function() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), "plan", &[]).ok();
    let snap = open_snapshot(&dir.path().join("plan.sqlite"));
    let conn = &snap.conn;
    let views: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'view'")
            .unwrap();
        let v = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v
    };
    assert!(views.len() >= 4, "{views:?}");
    for (name, sql) in &views {
        assert!(!sql.to_lowercase().contains("json"), "{name}: {sql}");
    }
    let sources: Vec<(String, i64)> = {
        let mut stmt = conn
            .prepare("SELECT source, workflows FROM report_workflows_by_source ORDER BY source")
            .unwrap();
        let v = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v
    };
    assert!(
        sources.contains(&("dh_workflow".to_string(), 116)),
        "{sources:?}"
    );
}

fn open_snapshot(path: &std::path::Path) -> sandbox::db::sqlite::Snapshot {
    sandbox::db::sqlite::Snapshot::open(path).unwrap()
}

#[test]
fn json_errors_are_data_on_stdout_with_the_same_exit_codes() {
    let r = run_sandbox(&["--json", "plan", "--bogus"], &[]);
    r.code(2);
    let v = json_of(&r);
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--bogus"),
        "{v}"
    );
    let r = run_sandbox(
        &["rehearse", "--json", "--snapshot", "/nonexistent/x.sqlite"],
        &[],
    );
    r.code(2);
    let v = json_of(&r);
    assert_eq!(v["error"]["kind"], "environment", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no snapshot at"),
        "{v}"
    );
    assert_eq!(v["error"]["checks"], serde_json::json!([]), "{v}");
    // Without --json the error stays one line on stderr.
    let r = run_sandbox(&["rehearse", "--snapshot", "/nonexistent/x.sqlite"], &[]);
    r.code(2).error_has(&["no snapshot at"]);
    assert!(r.stdout.is_empty(), "{}", r.show());
}

#[test]
fn a_drift_refusal_in_json_carries_its_checks_and_advice_that_works() {
    let p = rehearsed("journey_drift");
    p.db.client()
        .batch_execute("UPDATE dh_tool SET name = name || ' (renamed)' WHERE id = (SELECT id FROM dh_tool ORDER BY id::text LIMIT 1)")
        .unwrap();
    let r = p.run_exported(&["push", "--json", "--snapshot", p.snap()]);
    r.code(1);
    let v = json_of(&r);
    let e = &v["error"];
    assert_eq!(e["kind"], "refused", "{v}");
    let failed: Vec<&serde_json::Value> = e["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert!(
        failed
            .iter()
            .any(|c| c["name"].as_str().unwrap().contains("dh_tool")),
        "{v}"
    );
    let msg = e["message"].as_str().unwrap();
    let advice = format!("sandbox pull --force --out {}", p.snap());
    assert!(msg.contains(&advice), "{msg}");
    // The advice works as given: the pull replaces the rehearsed snapshot.
    let args: Vec<&str> = advice.split(' ').skip(1).collect();
    p.run_exported(&args).ok();
    p.run_exported(&["rehearse", "--snapshot", p.snap()]).ok();
    p.run_exported(&["push", "--snapshot", p.snap()]).ok();
}

#[test]
fn a_repeated_rollback_says_so_and_exits_0_like_a_repeated_push() {
    let p = rehearsed("journey_rollback_twice");
    let pushed = p.run_exported(&["push", "--json", "--confirm", "--snapshot", p.snap()]);
    pushed.ok();
    let id = json_of(&pushed)["receipt_id"].as_str().unwrap().to_string();
    p.run_exported(&["rollback", "--receipt", &id, "--confirm"])
        .ok();
    let again = p.run_exported(&["rollback", "--receipt", &id, "--confirm"]);
    again.ok();
    assert!(
        again.stdout.contains("Already rolled back"),
        "{}",
        again.show()
    );
    let again = p.run_exported(&["rollback", "--json", "--receipt", &id, "--confirm"]);
    again.ok();
    assert_eq!(
        json_of(&again)["already_rolled_back"],
        true,
        "{}",
        again.show()
    );
}

#[test]
fn receipts_are_listed_from_postgres_and_the_snapshot_and_rollback_marks_both() {
    let p = rehearsed("journey_receipts");
    let none = p.run_exported(&["receipts", "--json", "--snapshot", p.snap()]);
    none.ok();
    assert_eq!(
        json_of(&none)["receipts"],
        serde_json::json!([]),
        "{}",
        none.show()
    );
    let pushed = p.run_exported(&["push", "--json", "--confirm", "--snapshot", p.snap()]);
    pushed.ok();
    let id = json_of(&pushed)["receipt_id"].as_str().unwrap().to_string();

    let listed = p.run_exported(&["receipts", "--json", "--snapshot", p.snap()]);
    listed.ok();
    let v = json_of(&listed);
    let r = &v["receipts"][0];
    assert_eq!(r["id"], id.as_str(), "{v}");
    assert_eq!(r["remote_status"], "applied", "{v}");
    assert_eq!(r["snapshot_status"], "applied", "{v}");
    assert_eq!(r["plan_name"], "medical-affairs-operational-library", "{v}");
    assert_eq!(
        (r["inserted"].as_u64(), r["updated"].as_u64()),
        (Some(727), Some(105)),
        "{v}"
    );
    // A session in another time zone: the times are UTC all the same.
    let mut c = p.db.client();
    c.batch_execute(&format!(
        "ALTER DATABASE \"{}\" SET timezone = 'Asia/Kolkata'",
        p.db.name
    ))
    .unwrap();
    let utc: String = c
        .query_one(
            "SELECT to_char(pushed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') \
             FROM sandbox.receipts",
            &[],
        )
        .unwrap()
        .get(0);
    // Q7: each receipt's undo format, which decides whether this build's
    // rollback reads it.
    assert_eq!(
        r["undo_format"].as_u64(),
        Some(u64::from(sandbox::receipt::UNDO_FORMAT)),
        "{v}"
    );
    let text = p.run_exported(&["receipts", "--snapshot", p.snap()]);
    text.ok();
    assert!(
        text.stdout.contains(&id) && text.stdout.contains("+727 ~105"),
        "{}",
        text.show()
    );
    assert!(
        text.stdout.contains("undo format")
            && text.stdout.lines().any(|l| {
                l.contains(&id) && l.contains(&format!("│ {} ", sandbox::receipt::UNDO_FORMAT))
            }),
        "{}",
        text.show()
    );
    // The when column shows the minute, whole, in UTC.
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains(&id) && l.contains(&utc)),
        "{utc}: {}",
        text.show()
    );
    assert_eq!(
        json_of(&p.run_exported(&["receipts", "--json", "--snapshot", p.snap()]))["receipts"][0]
            ["at"]
            .as_str()
            .map(|a| a.starts_with(&utc) && a.ends_with("+00")),
        Some(true)
    );
    assert!(
        text.stdout.contains(&format!(
            "sandbox rollback --receipt {id} --snapshot {}",
            p.snap()
        )),
        "{}",
        text.show()
    );
    let status = p.run_exported(&["status", "--snapshot", p.snap()]);
    status.ok();
    assert!(
        status.stdout.contains(&id) && status.stdout.contains("applied"),
        "{}",
        status.show()
    );

    // The snapshot's own record, read without a server: the push's time.
    let offline = run_sandbox(&["receipts", "--json", "--snapshot", p.snap()], &[]);
    offline.ok();
    let recorded = json_of(&offline)["receipts"][0].clone();
    let pushed_at = recorded["at"].as_str().unwrap_or_default().to_string();
    assert!(pushed_at.ends_with("+00"), "{recorded}");
    assert_eq!(recorded["rolled_back_at"], serde_json::Value::Null);

    let rolled = p.run_exported(&[
        "rollback",
        "--receipt",
        &id,
        "--confirm",
        "--snapshot",
        p.snap(),
    ]);
    rolled.ok();
    assert!(
        rolled.stdout.contains("marked rolled back too"),
        "{}",
        rolled.show()
    );
    // Times read from Postgres are UTC whatever the database's TimeZone
    // (before: rolled_back_at came in the database's zone, at in UTC).
    p.exec(&format!(
        "ALTER DATABASE \"{}\" SET timezone = 'Asia/Kolkata'",
        p.db.name
    ));
    let v = json_of(&p.run_exported(&["receipts", "--json", "--snapshot", p.snap()]));
    let server_counts: Vec<serde_json::Value> = ["inserted", "updated", "deleted"]
        .iter()
        .map(|k| v["receipts"][0][k].clone())
        .collect();
    assert!(server_counts[0].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(v["receipts"][0]["remote_status"], "rolled_back", "{v}");
    assert_eq!(v["receipts"][0]["snapshot_status"], "rolled_back", "{v}");
    let rolled_back_at = v["receipts"][0]["rolled_back_at"]
        .as_str()
        .unwrap_or_default();
    assert!(rolled_back_at.ends_with("+00"), "{v}");
    let status = p.run_exported(&["status", "--json", "--snapshot", p.snap()]);
    assert_eq!(
        json_of(&status)["receipts"][0]["snapshot_status"],
        "rolled_back"
    );

    // The snapshot alone, without a server: still listed.
    let offline = run_sandbox(&["receipts", "--json", "--snapshot", p.snap()], &[]);
    offline.ok();
    let v = json_of(&offline);
    assert_eq!(v["database"], serde_json::Value::Null, "{v}");
    assert_eq!(v["receipts"][0]["snapshot_status"], "rolled_back", "{v}");
    // The file keeps both times: the push's, and the rollback's beside it
    // (before, the rollback's overwrote the push's and none was shown).
    assert_eq!(v["receipts"][0]["at"], pushed_at.as_str(), "{v}");
    let local_rolled_back_at = v["receipts"][0]["rolled_back_at"]
        .as_str()
        .unwrap_or_default();
    assert!(
        local_rolled_back_at.ends_with("+00") && local_rolled_back_at > pushed_at.as_str(),
        "{v}"
    );
    // The file keeps the push's row counts too, equal to Postgres's receipt
    // (before: 0 inserted, 0 updated, 0 deleted for every push).
    let offline_counts: Vec<serde_json::Value> = ["inserted", "updated", "deleted"]
        .iter()
        .map(|k| v["receipts"][0][k].clone())
        .collect();
    assert_eq!(offline_counts, server_counts, "{v}");
    let listed = run_sandbox(&["receipts", "--snapshot", p.snap()], &[]);
    listed.ok();
    assert!(
        listed.stdout.contains(&format!(
            "+{} ~{} -{}",
            server_counts[0], server_counts[1], server_counts[2]
        )) && listed
            .stdout
            .contains(&format!("rolled_back {}", &local_rolled_back_at[..16])),
        "{}",
        listed.show()
    );
    // Neither a server nor a snapshot: a usage error that says what to pass.
    run_sandbox(&["receipts", "--snapshot", "/nonexistent/s.sqlite"], &[])
        .code(2)
        .error_has(&["--database-url", "no snapshot at /nonexistent/s.sqlite"]);
}

/// The README's journey on Postgres: a red rehearsal (two library workflows
/// already exist), a policy, the numbers adopted into a reviewed plan, a
/// green rehearsal, push, receipts, rollback.
#[test]
fn red_rehearsal_policy_adopted_expectations_green_push_receipts_rollback() {
    let w = World::loaded("journey_red_green", "plan").with_sql(
        "INSERT INTO workflows (name, definition, status) \
         SELECT 'already here ' || wf, jsonb_build_object('workflow_id', wf, \
                'source', 'SP01 Operational Library', 'jtbd_id', (SELECT min(jtbd_code) FROM jtbd_library)), \
                'active' \
         FROM unnest(ARRAY['WF-001-A', 'WF-002-A']) AS wf",
    );
    let snap = w.snap();
    let adopted = w.dir.path().join("adopted").display().to_string();
    let run = |args: &[&str]| w.run_exported(args);
    run(&["pull", "--out", snap]).ok();

    // Red: the seed plan assumes no library workflow exists.
    let red = run(&["rehearse", "--snapshot", snap]);
    red.code(1);
    assert!(
        red.stdout.contains("library workflows already present"),
        "{}",
        red.show()
    );
    assert!(red.stdout.contains("--policy NAME=VALUE"), "{}", red.show());

    // A policy: skip them. The plan hash records the choice.
    let policy = ["--policy", "existing_library_workflow=skip"];
    let hash_of = |extra: &[&str]| {
        let mut a = vec!["plan", "--json"];
        a.extend_from_slice(extra);
        json_of(&run(&a))["hash"].as_str().unwrap().to_string()
    };
    let base_hash = hash_of(&[]);
    let skip_hash = hash_of(&policy);
    assert_ne!(base_hash, skip_hash);
    let mut args = vec!["rehearse", "--json", "--snapshot", snap];
    args.extend_from_slice(&policy);
    let still_red = run(&args);
    still_red.code(1);
    let v = json_of(&still_red);
    assert_eq!(v["plan_hash"], skip_hash.as_str());
    let failed: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| format!("{} {}", c["kind"], c["name"]))
        .collect();
    // Only numbers fail now: 143 workflows before 3B, not 141.
    assert!(
        failed
            .iter()
            .all(|f| f.starts_with("\"expectation\"") || f.starts_with("\"verification\"")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.contains("existing workflows untouched")),
        "{failed:?}"
    );

    // Adopt the numbers found, into a plan file to review.
    let mut args = vec!["plan", "adopt", "--snapshot", snap, "--out", &adopted];
    args.extend_from_slice(&policy);
    let adopt = run(&args);
    adopt.ok();
    let row = adopt
        .stdout
        .lines()
        .find(|l| l.contains("existing workflows untouched"))
        .unwrap_or_else(|| panic!("{}", adopt.show()));
    assert!(
        row.contains(" 141 ") && row.contains(" 143 "),
        "old and new side by side: {row}"
    );
    assert!(
        adopt.stdout.contains(&format!("--plan {adopted}")),
        "{}",
        adopt.show()
    );
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(&adopted).join("plan.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        file["policies"]["existing_library_workflow"]["value"],
        "skip"
    );
    // Adopting again does not overwrite the reviewed plan.
    run(&args)
        .code(2)
        .error_has(&["exists and is a folder that is not empty"]);

    // Green with the adopted plan; its hash is the one the push records.
    let plan = ["--plan", adopted.as_str()];
    let adopted_hash = hash_of(&plan);
    assert_ne!(adopted_hash, skip_hash);
    let mut args = vec!["rehearse", "--snapshot", snap];
    args.extend_from_slice(&plan);
    run(&args).ok();
    let mut args = vec!["push", "--json", "--confirm", "--snapshot", snap];
    args.extend_from_slice(&plan);
    let pushed = run(&args);
    pushed.ok();
    let id = json_of(&pushed)["receipt_id"].as_str().unwrap().to_string();
    let workflows = w.count("SELECT count(*) FROM workflows");
    // 143 there before, 116 from dh_workflow, 109 of the 111 library ones.
    assert_eq!(workflows, 368);

    let listed = json_of(&run(&["receipts", "--json", "--snapshot", snap]));
    assert_eq!(listed["receipts"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(
        listed["receipts"][0]["plan_hash"],
        adopted_hash.as_str(),
        "{listed}"
    );

    run(&[
        "rollback",
        "--receipt",
        &id,
        "--confirm",
        "--snapshot",
        snap,
    ])
    .ok();
    let workflows = w.count("SELECT count(*) FROM workflows");
    assert_eq!(workflows, 143);
    let listed = json_of(&run(&["receipts", "--json", "--snapshot", snap]));
    assert_eq!(listed["receipts"][0]["status"], serde_json::Value::Null);
    assert_eq!(
        listed["receipts"][0]["remote_status"], "rolled_back",
        "{listed}"
    );
    assert_eq!(
        listed["receipts"][0]["snapshot_status"], "rolled_back",
        "{listed}"
    );
}

#[test]
fn policy_names_and_values_are_checked_against_the_plan() {
    run_sandbox(&["plan", "--policy", "nope=1"], &[])
        .code(2)
        .error_has(&["has no policy nope", "existing_library_workflow"]);
    run_sandbox(
        &["plan", "--policy", "existing_library_workflow=maybe"],
        &[],
    )
    .code(2)
    .error_has(&["existing_library_workflow=maybe", "fail", "skip"]);
    run_sandbox(&["plan", "--policy", "existing_library_workflow"], &[])
        .code(2)
        .error_has(&["NAME=VALUE"]);
    let r = run_sandbox(&["plan", "--policy", "jtbd_sp_link=library"], &[]);
    r.ok();
    assert!(
        r.stdout.contains("jtbd_sp_link = library (of"),
        "{}",
        r.show()
    );
}

/// Headless Chromium off the network (the flags this machine needs),
/// returning what it printed on stdout.
fn chromium(args: &[&str]) -> String {
    let bin = common::require_tool("chromium");
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_html_report_renders_its_key_numbers_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("red.html");
    let r = demo(dir.path(), "conflicts", &["--html", html.to_str().unwrap()]);
    r.code(1);
    let page = std::fs::read_to_string(&html).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&html).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the page holds rows: private like the snapshot"
        );
    }
    // Self-contained: nothing to fetch.
    for needle in ["<script", "src=", "<link", "@import", "url("] {
        assert!(!page.contains(needle), "{needle} in the page");
    }
    let url = format!("file://{}", html.display());
    let dom = chromium(&["--dump-dom", &url]);
    // Chromium built the document we meant: verdict, hash, charts and rows.
    assert!(dom.contains("id=\"verdict\">FAILED</span>"), "{dom}");
    let plan = json_of(&run_sandbox(&["plan", "--json"], &[]));
    assert!(
        dom.contains(plan["hash"].as_str().unwrap()),
        "plan hash missing"
    );
    let chart = |name: &str| {
        let at = dom
            .find(&format!("<h3>final — {name}"))
            .unwrap_or_else(|| panic!("no chart {name}"));
        let svg = &dom[at..];
        svg[..svg.find("</svg>").unwrap()].to_string()
    };
    let jtbd = chart("JTBDs per strategic priority");
    // SP02: 19 expected, 16 found (the bar in red); SP07: 14 against 9.
    for n in [
        ">SP02</text>",
        ">19</text>",
        ">16</text>",
        ">SP07</text>",
        ">9</text>",
    ] {
        assert!(jtbd.contains(n), "{n} not in the chart: {jtbd}");
    }
    assert_eq!(jtbd.matches("<rect").count(), 14, "two bars per priority");
    let sources = chart("workflows by source");
    for n in [
        ">MA Operational Library</text>",
        ">111</text>",
        ">208</text>",
    ] {
        assert!(sources.contains(n), "{n} not in the chart: {sources}");
    }
    // Every failure with its rows: the first 100 of 94 and the count.
    assert!(dom.contains("94 rows in all"), "no row count");
    assert!(
        dom.contains("WF-001-A from library/SP01_growth_market_access.json"),
        "rows missing"
    );
    assert!(dom.contains("Push would refuse"), "push section");
    assert!(dom.contains("Phase 3C"), "phases");
    // And it paints: a screenshot of real size.
    let png = dir.path().join("red.png");
    chromium(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1200,2000",
        &url,
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 50_000,
        "{} bytes",
        bytes.len()
    );

    // Green: what push would do, per table.
    let green = dir.path().join("green.html");
    demo(dir.path(), "plan", &[]).ok();
    let snap = dir.path().join("plan.sqlite");
    let r = report_html(&snap, &green);
    r.ok();
    let dom = chromium(&["--dump-dom", &format!("file://{}", green.display())]);
    assert!(dom.contains("id=\"verdict\">PASSED</span>"), "{dom}");
    let push = &dom[dom.find("What push would do").unwrap()..];
    assert!(
        push.contains("<td>tasks</td><td>CREATE TABLE</td><td class=\"num\">343</td>"),
        "{push}"
    );
    // A snapshot never rehearsed has nothing to report.
    let fresh = dir.path().join("none.sqlite");
    std::fs::copy(&snap, &fresh).unwrap();
    let bare = sandbox::db::sqlite::Snapshot::open(&fresh).unwrap();
    bare.conn.execute_batch("DELETE FROM _sandbox_check_rows; DELETE FROM _sandbox_checks; DELETE FROM _sandbox_phase_timings; DELETE FROM _sandbox_preflight_items; DELETE FROM _sandbox_rehearsals;").unwrap();
    drop(bare);
    report_html(&fresh, &dir.path().join("none.html"))
        .code(1)
        .error_has(&["holds no rehearsal", "sandbox rehearse --snapshot"]);
    // A diff's advice repeats the plan options it was given.
    let f = fresh.to_str().unwrap();
    run_sandbox(
        &[
            "diff",
            "--snapshot",
            f,
            "--policy",
            "existing_library_workflow=skip",
        ],
        &[],
    )
    .code(1)
    .error_has(&[&format!(
        "run `sandbox rehearse --snapshot {f} --policy existing_library_workflow=skip` first"
    )]);
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_output_quietly() {
    // `sandbox plan | head -1`: the reader is gone before the first line.
    let mut child = common::Sandbox::new(&["plan"])
        .command()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_damaged_rehearsal_record_is_named_not_a_bare_sqlite_error() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path(), "plan", &[]).ok();
    let snap = dir.path().join("plan.sqlite");
    let s = sandbox::db::sqlite::Snapshot::open(&snap).unwrap();
    s.conn
        .execute_batch(
            "DROP VIEW report_failures; DROP VIEW report_checks; DROP TABLE _sandbox_check_rows;",
        )
        .unwrap();
    drop(s);
    let html = dir.path().join("r.html");
    report_html(&snap, &html).code(2).error_has(&[
        "holds rehearsal #1 but its checks cannot be read",
        "_sandbox_check_rows",
    ]);
}

/// Runs the binary on a pseudo-terminal `cols` wide (util-linux `script`,
/// part of every Debian), returning what the terminal showed.
fn on_terminal(cols: u16, env: &str, args: &str) -> String {
    let cmd = format!(
        "stty cols {cols} rows 60; env {env} {} {args}",
        common::sandbox_bin().display()
    );
    let mut script = std::process::Command::new("script");
    common::run::without_inherited_env(&mut script);
    let out = script
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn on_a_terminal_tables_take_its_width_and_colour_is_on_unless_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.sqlite");
    let args = format!("demo --variant conflicts --out {}", out.display());
    let shown = on_terminal(64, "", &args);
    assert!(
        shown.contains("\x1b[1;31mFAILED"),
        "no colour on a terminal: {shown}"
    );
    let plain = console_strip(&shown);
    let lines = table_lines(&plain);
    assert!(lines.len() > 40, "{plain}");
    for l in &lines {
        assert!(
            l.chars().count() <= 64,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    // Wider terminal, wider table: the width comes from the terminal.
    let wide = console_strip(&on_terminal(160, "", &args));
    let widest = table_lines(&wide)
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(widest > 64 && widest <= 160, "{widest}");
    let no_color = on_terminal(64, "NO_COLOR=1", &args);
    assert!(!no_color.contains("\x1b["), "NO_COLOR ignored: {no_color}");
}
