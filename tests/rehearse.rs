//! The rehearsal on snapshots built from the fixtures (no server needed):
//! every phase's numbers, the conflicts, the guards, idempotence, bad seeds.

mod common;

use std::path::Path;
use std::process::Command;

use sandbox::db::sqlite::Snapshot;
use sandbox::fixtures::{Variant, COLLIDING_WORKFLOWS, CONFLICTING_JTBDS};
use sandbox::ops::rehearse::{protected_rows_guard, rehearse, RehearseOptions};
use sandbox::plan::Plan;
use serde_json::Value;

use common::{fixture_snapshot_in, phase_ids, rehearse_report};

/// The binary in the harness's clean environment: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let r = common::sandbox(args);
    (r.code, r.stdout, r.stderr)
}

fn check<'a>(report: &'a Value, phase: &str, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["phase"] == phase && c["name"] == name)
        .unwrap_or_else(|| panic!("no check {phase}/{name}"))
}

#[test]
fn plan_variant_passes_with_every_seed_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Plan);
    let (code, r) = rehearse_report(&path, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["passed"], true);
    let failed: Vec<&Value> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    for (phase, name, actual) in [
        ("1", "strategic priorities seeded", "7"),
        ("1", "Medical Affairs JTBDs linked", "105"),
        ("2", "tools migrated", "150"),
        ("3A", "existing workflows untouched", "141"),
        ("3B", "workflows after 3B", "257"),
        ("3B", "workflows from dh_workflow", "116"),
        ("3C", "workflows after 3C", "368"),
        ("3C", "Operational Library workflows", "111"),
        ("4", "tasks migrated", "343"),
        ("final", "total rows 4,482 → 5,209", "5209"),
        (
            "final",
            "JTBDs per strategic priority",
            "SP01=17, SP02=19, SP03=18, SP04=14, SP05=15, SP06=8, SP07=14",
        ),
        (
            "final",
            "workflows by source",
            "MA Operational Library=111, dh_workflow migrated=116, original=141",
        ),
    ] {
        assert_eq!(check(&r, phase, name)["actual"], actual, "{phase} {name}");
    }
    // Each phase ran and was timed.
    assert_eq!(phase_ids(&r), ["1", "2", "3A", "3B", "3C", "4"]);
}

#[test]
fn conflicts_variant_fails_and_names_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Conflicts);
    let (code, r) = rehearse_report(&path, &[]);
    assert_eq!(code, 1);
    assert_eq!(r["passed"], false);
    let two = check(&r, "1", "JTBDs under two strategic priorities");
    assert_eq!(two["ok"], false);
    assert_eq!(two["row_count"], 11);
    let rows: Vec<&str> = two["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for c in CONFLICTING_JTBDS {
        assert!(
            rows.iter().any(|r| r.contains(c.jtbd_code)
                && r.contains(c.allocated)
                && r.contains(c.function)),
            "{} not named: {rows:?}",
            c.jtbd_code
        );
    }
    // The 3C count: the ~97 already imported plus 111 against 111.
    let lib = check(&r, "3C", "Operational Library workflows");
    assert_eq!(lib["expected"], "111");
    assert_eq!(lib["actual"], "208");
    assert_eq!(lib["ok"], false);
    let present = check(&r, "3C", "library workflows already present");
    assert_eq!(present["ok"], false);
    assert!(present["row_count"].as_u64().unwrap() >= 90);
    let colliding = check(&r, "3C", "workflow ids recorded under two library sources");
    assert_eq!(colliding["row_count"], COLLIDING_WORKFLOWS.len());
    for c in COLLIDING_WORKFLOWS {
        assert!(
            colliding["rows"].to_string().contains(c.workflow_id),
            "{} not named",
            c.workflow_id
        );
    }
    assert_eq!(
        check(&r, "final", "no library workflow present twice")["ok"],
        false
    );
    // The push is refused for this snapshot.
    let (code, _, err) = run(&["diff", "--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("failed"), "{err}");
}

#[test]
fn policies_change_the_outcome_without_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Conflicts);
    let plan_path = common::plan_folder(&dir.path().join("plan"), |plan| {
        plan["policies"]["jtbd_sp_link"]["value"] = "function".into();
        plan["policies"]["existing_library_workflow"]["value"] = "skip".into();
    });
    let (code, r) = rehearse_report(&path, &["--plan", plan_path.to_str().unwrap()]);
    assert_eq!(code, 1, "the seed's numbers still do not hold");
    assert_eq!(
        check(&r, "1", "JTBDs under two strategic priorities")["ok"],
        true
    );
    // function column decides: the conflicts variant's function counts.
    assert_eq!(
        check(&r, "final", "JTBDs per strategic priority")["actual"],
        "SP01=18, SP02=16, SP03=15, SP04=19, SP05=19, SP06=9, SP07=9"
    );
    // skip: no duplicate library workflow is created.
    assert_eq!(
        check(&r, "final", "no library workflow present twice")["row_count"],
        COLLIDING_WORKFLOWS.len()
    );
    let (_, plain) = rehearse_report(&path, &[]);
    assert_ne!(
        r["plan_hash"], plain["plan_hash"],
        "a changed policy is a different plan"
    );
}

#[test]
fn rehearsing_twice_is_identical_and_readable_by_sqlite3() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Plan);
    let (_, a) = rehearse_report(&path, &[]);
    let (_, b) = rehearse_report(&path, &[]);
    assert_eq!(a["checks"], b["checks"]);
    assert_eq!(a["staged"], b["staged"]);
    assert_eq!(a["staged_checksum"], b["staged_checksum"]);
    assert_ne!(a["rehearsal_id"], b["rehearsal_id"]);
    let snap = Snapshot::open(&path).unwrap();
    let n: i64 = snap
        .conn
        .query_row("SELECT count(*) FROM _sandbox_rehearsals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    // The pulled data stays pristine: no new column, same checksum.
    let cols: i64 = snap
        .conn
        .query_row("SELECT count(*) FROM pragma_table_info('jtbd_library') WHERE name = 'strategic_priority_id'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cols, 0);
    // Any SQLite (the CLI here) reads the staged tables and the report views.
    let out = Command::new(common::require_tool("sqlite3"))
        .arg(&path)
        .arg("select count(*) from staged_workflows; select * from report_jtbd_per_priority; select count(*) from report_checks where result = 'ok'; select source, workflows from report_workflows_by_source order by source;")
        .output()
        .expect("run sqlite3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("368\n"), "{text}");
    assert!(text.contains("SP02|Scientific Excellence|19"), "{text}");
    assert!(text.contains("dh_workflow|116"), "{text}");
    let ok_checks = a["checks"].as_array().unwrap().len();
    assert!(text.contains(&format!("\n{ok_checks}\n")), "{text}");
}

#[test]
fn guards_trip_on_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Plan);
    let plan = Plan::load_default().unwrap();
    let report = rehearse(&RehearseOptions {
        snapshot: &path,
        plan: &plan,
    })
    .unwrap();
    assert!(report.passed);
    // A protected row changed in the staged copy: the guard names it.
    let snap = Snapshot::open(&path).unwrap();
    snap.conn
        .execute(
            "UPDATE staged_jtbd_library SET title = title || ' (edited)' WHERE id = 'jtbd00042'",
            [],
        )
        .unwrap();
    snap.conn
        .execute(
            "DELETE FROM staged_workflows WHERE id = (SELECT id FROM workflows LIMIT 1)",
            [],
        )
        .unwrap();
    let checks = protected_rows_guard(&snap, "jtbd_library").unwrap();
    let changed = checks
        .iter()
        .find(|c| c.name.contains("no protected column changed"))
        .unwrap();
    assert!(!changed.ok);
    assert_eq!(changed.rows, vec!["jtbd00042".to_string()]);
    assert!(
        !checks
            .iter()
            .find(|c| c.name.contains("byte-identical"))
            .unwrap()
            .ok
    );
    let checks = protected_rows_guard(&snap, "workflows").unwrap();
    assert!(
        !checks
            .iter()
            .find(|c| c.name.contains("no protected row deleted"))
            .unwrap()
            .ok
    );
    // A push is refused: the staged tables are not what the rehearsal left.
    let (code, _, err) = run(&["diff", "--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("staged tables were changed"), "{err}");
    drop(snap);

    // A pulled table edited by hand fails the rehearsal's integrity check.
    let path2 = fixture_snapshot_in(dir.path(), Variant::Conflicts);
    let snap = Snapshot::open(&path2).unwrap();
    snap.conn
        .execute("UPDATE dh_tool SET name = 'edited' WHERE rowid = 3", [])
        .unwrap();
    drop(snap);
    let (code, r) = rehearse_report(&path2, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        check(&r, "snapshot", "dh_tool unchanged since pull")["ok"],
        false
    );

    // A table the plan neither reads nor writes is not re-hashed (its
    // content feeds nothing pushed), but a row deleted by hand is seen.
    let path3 = fixture_snapshot_in(dir.path(), Variant::Plan);
    let snap = Snapshot::open(&path3).unwrap();
    snap.conn
        .execute(
            "DELETE FROM prompts WHERE rowid = (SELECT min(rowid) FROM prompts)",
            [],
        )
        .unwrap();
    drop(snap);
    let (code, r) = rehearse_report(&path3, &[]);
    assert_eq!(code, 1);
    let counted = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["phase"] == "snapshot"
                && c["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("prompts has its pulled row count")
        })
        .expect("a row-count check of prompts");
    assert_eq!(counted["ok"], false, "{counted}");
}

#[test]
fn a_changed_plan_needs_a_new_rehearsal() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Plan);
    assert_eq!(rehearse_report(&path, &[]).0, 0);
    let (code, _, _) = run(&["diff", "--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let plan_path = common::plan_folder(&dir.path().join("plan"), |plan| {
        plan["phases"][1]["expectations"][0]["expect"] = 151.into();
    });
    let (code, _, err) = run(&[
        "diff",
        "--snapshot",
        path.to_str().unwrap(),
        "--plan",
        plan_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    // The advice repeats the plan's options, so it works as given.
    assert!(
        err.contains(&format!(
            "sandbox rehearse --snapshot {} --plan {}",
            path.display(),
            plan_path.display()
        )),
        "{err}"
    );
    let (code, r) = rehearse_report(&path, &["--plan", plan_path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let tools = check(&r, "2", "tools migrated");
    assert_eq!(
        (tools["expected"].as_str(), tools["actual"].as_str()),
        (Some("151"), Some("150"))
    );
}

#[test]
fn malformed_seed_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Plan);
    let seeds_src = common::repo_path("seeds");
    let lib_file = |seeds: &Path| {
        std::fs::read_dir(seeds.join("library"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("SP03"))
            .unwrap()
    };
    type Edit = Box<dyn Fn(&str) -> String>;
    // The shape (JSON, fields, types) is the loader's: exit 2 before any
    // rehearsal. What the content must agree with is the plan's SQL on the
    // seed tables: a failed check of phase 1 (3C for a workflow listed
    // twice) naming file and path, exit 1.
    let cases: Vec<(&str, Edit, i32, &str)> = vec![
        (
            "bad-json",
            Box::new(|s: &str| s.replacen('}', "", 1)),
            2,
            "invalid JSON",
        ),
        (
            "missing-field",
            Box::new(|s: &str| s.replacen("\"workflow_name\"", "\"workflow_title\"", 1)),
            2,
            "workflow_name",
        ),
        (
            "wrong-type",
            Box::new(|s: &str| {
                s.replacen("\"phase_count\": ", "\"phase_count\": \"x\", \"_was\": ", 1)
            }),
            2,
            "phase_count",
        ),
        (
            "duplicate-id",
            Box::new(|s: &str| s.replacen("\"WF-038-A\"", "\"WF-037-A\"", 1)),
            1,
            "WF-037-A from library/",
        ),
        (
            "unknown-jtbd",
            Box::new(|s: &str| {
                s.replacen(
                    "\"jtbd_id\": \"JTBD-MA-040\",\n          \"duration\"",
                    "\"jtbd_id\": \"JTBD-MA-999\",\n          \"duration\"",
                    1,
                )
            }),
            1,
            ".jtbd_id JTBD-MA-999 is not one of the JTBDs listed in this file",
        ),
        (
            "count",
            Box::new(|s: &str| s.replacen("\"phase_count\": 5", "\"phase_count\": 6", 1)),
            1,
            ".phase_count is 6 but the workflow has 5 phases",
        ),
        (
            "source",
            Box::new(|s: &str| {
                s.replacen(
                    "\"SP03 Operational Library\"",
                    "\"SP04 Operational Library\"",
                    1,
                )
            }),
            1,
            "source is 'SP04 Operational Library', expected 'SP03 Operational Library'",
        ),
        (
            "priority",
            Box::new(|s: &str| {
                s.replacen(
                    "\"strategic_priority\": \"SP03\"",
                    "\"strategic_priority\": \"SP09\"",
                    1,
                )
            }),
            1,
            "strategic_priority SP09 is not defined in strategic_priorities.json",
        ),
    ];
    for (tag, edit, want, needle) in cases {
        let seeds = dir.path().join(tag);
        common::copy_dir(&seeds_src, &seeds);
        let file = lib_file(&seeds);
        let text = std::fs::read_to_string(&file).unwrap();
        let edited = edit(&text);
        assert_ne!(edited, text, "case {tag} changed nothing");
        std::fs::write(&file, edited).unwrap();
        let mut args = vec![
            "rehearse",
            "--snapshot",
            path.to_str().unwrap(),
            "--seeds",
            seeds.to_str().unwrap(),
        ];
        // Failed checks are read whole from --json (the table cuts rows to
        // the width).
        if want == 1 {
            args.push("--json");
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, want, "{tag}: {out}{err}");
        let name = file.file_name().unwrap().to_str().unwrap();
        if want == 2 {
            assert!(err.contains(name), "{tag}: file not named: {err}");
            assert!(err.contains(needle), "{tag}: {err}");
            assert_eq!(
                err.lines().filter(|l| l.starts_with("error:")).count(),
                1,
                "printed once: {err}"
            );
        } else {
            assert!(
                out.lines().any(|l| l.contains(name) && l.contains(needle)),
                "{tag}: {out}{err}"
            );
        }
    }
    // Shape errors stop before the rehearsal: only the five content cases
    // reached the file, as failed rehearsals.
    let snap = Snapshot::open(&path).unwrap();
    assert_eq!(snap.rehearsal_count().unwrap(), 5);
}

/// A rehearsals table that cannot be read is an error naming the file, not
/// "0 rehearsals": `status` would otherwise show a damaged file as never
/// rehearsed, and a pull would overwrite it without `--force`.
#[test]
fn an_unreadable_rehearsals_table_is_an_error_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Plan);
    let plan = Plan::load_default().unwrap();
    rehearse(&RehearseOptions {
        snapshot: &path,
        plan: &plan,
    })
    .unwrap();
    let snap = Snapshot::open(&path).unwrap();
    assert_eq!(snap.rehearsal_count().unwrap(), 1);
    snap.conn
        .execute_batch(
            "PRAGMA foreign_keys = OFF; ALTER TABLE _sandbox_rehearsals RENAME TO _old_rehearsals; \
             CREATE VIEW _sandbox_rehearsals AS SELECT * FROM no_such_table",
        )
        .unwrap();
    let e = snap.rehearsal_count().unwrap_err();
    assert!(
        format!("{e:#}").contains("cannot count the rehearsals recorded in"),
        "{e:#}"
    );
    drop(snap);
    let (code, _, err) = run(&["status", "--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot count the rehearsals"), "{err}");
}

/// A red rehearsal's advice works as pasted: the adopt command names an
/// `--out` folder that does not exist yet (before: `plan-adopted` even when
/// it existed, and `plan adopt` then refused with exit 2).
#[test]
fn the_adopt_command_a_red_rehearsal_prints_works_when_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_snapshot_in(dir.path(), Variant::Conflicts);
    std::fs::create_dir(dir.path().join("plan-adopted")).unwrap();
    std::fs::write(dir.path().join("plan-adopted").join("plan.json"), "{}").unwrap();
    let red = common::Sandbox::new(&["rehearse", "--snapshot", path.to_str().unwrap()])
        .dir(dir.path())
        .run();
    red.code(1).stdout_has("--policy NAME=VALUE");
    let adopt = red
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("sandbox plan adopt "))
        .unwrap_or_else(|| panic!("no adopt command: {}", red.show()))
        .to_string();
    assert!(adopt.ends_with("--out plan-adopted-2"), "{adopt}");
    let args: Vec<&str> = adopt.split_whitespace().skip(1).collect();
    common::Sandbox::new(&args).dir(dir.path()).run().ok();
    assert!(dir.path().join("plan-adopted-2").join("plan.json").exists());
}
