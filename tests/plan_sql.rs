//! Phases written in SQL, held to what plan.json declares: a SQL error is a
//! failed check naming the file and line (exit 1, never 2); a write outside
//! the phase's `writes`, or to the pulled state, is refused; an undeclared
//! read is named; a value that passed through a REAL is named instead of
//! pushed; policies are validated against their declared values.

mod common;

use std::path::{Path, PathBuf};

use common::{
    failed_checks, fixture_snapshot_in, phase_ids, plan_folder, rehearse_report, sandbox,
};
use sandbox::fixtures::Variant;
use serde_json::Value;

fn snapshot(dir: &Path) -> PathBuf {
    fixture_snapshot_in(dir, Variant::Plan)
}

/// A copy of the built-in plan whose phase file `file` is `edit`ed.
fn plan_with_phase(dir: &Path, file: &str, edit: impl FnOnce(&str) -> String) -> PathBuf {
    let plan = plan_folder(&dir.join("plan"), |_| {});
    let path = plan.join("phases").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    plan
}

fn rehearse(snapshot: &Path, plan: &Path) -> (i32, Value) {
    rehearse_report(snapshot, &["--plan", plan.to_str().unwrap()])
}

/// The failed checks as (phase, name, rows).
fn failed(report: &Value) -> Vec<(String, String, String)> {
    failed_checks(report)
        .into_iter()
        .map(|c| {
            (
                c["phase"].as_str().unwrap_or("").to_string(),
                c["name"].as_str().unwrap_or("").to_string(),
                c["rows"].to_string(),
            )
        })
        .collect()
}

#[test]
fn a_sql_error_is_a_failed_check_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let plan = plan_with_phase(dir.path(), "2_tools.sql", |t| {
        format!("{t}\nSELECT 1;\nINSERT INTO tools (id, name, metadata)\nSELECT id FROM nowhere_at_all;\n")
    });
    let line = std::fs::read_to_string(plan.join("phases/2_tools.sql"))
        .unwrap()
        .lines()
        .position(|l| l.contains("nowhere_at_all"))
        .unwrap()
        + 1;
    let (code, r) = rehearse(&snap, &plan);
    assert_eq!(code, 1, "{r:#}");
    let f = failed(&r);
    let sql = f
        .iter()
        .find(|(p, n, _)| p == "2" && n == "phase SQL runs")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        sql.2.contains(&format!("phases/2_tools.sql:{line}:"))
            && sql.2.contains("no such table: nowhere_at_all"),
        "{sql:?}"
    );
    // Later phases did not run; the staged tables of earlier ones stay
    // for a look in a DB browser.
    assert_eq!(phase_ids(&r), ["1", "2"]);
}

#[test]
fn writes_outside_the_declared_set_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    for (tag, sql, needle) in [
        (
            "undeclared",
            "UPDATE workflows SET name = name;",
            "writes workflows, which is not in the phase's \\\"writes\\\"",
        ),
        (
            "pulled",
            "DELETE FROM main.dh_tool;",
            "the pulled state, which is read-only",
        ),
        (
            "ddl",
            "CREATE TABLE scratch (x);",
            "a phase moves data only",
        ),
    ] {
        let d = dir.path().join(tag);
        std::fs::create_dir_all(&d).unwrap();
        let plan = plan_with_phase(&d, "2_tools.sql", |t| format!("{t}\n{sql}\n"));
        let (code, r) = rehearse(&snap, &plan);
        assert_eq!(code, 1, "{tag}: {r:#}");
        let f = failed(&r);
        assert!(
            f.iter()
                .any(|(p, n, rows)| p == "2" && n == "phase SQL runs" && rows.contains(needle)),
            "{tag}: {f:#?}"
        );
    }
    // Nothing of it reached the pulled tables.
    let (code, r) = rehearse(&snap, &plan_folder(&dir.path().join("clean"), |_| {}));
    assert_eq!(code, 0, "{:#?}", failed(&r));
}

#[test]
fn an_undeclared_read_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let plan = plan_folder(&dir.path().join("plan"), |p| {
        p["phases"][1]["reads"] = serde_json::json!([]);
    });
    let (code, r) = rehearse(&snap, &plan);
    assert_eq!(code, 1);
    let f = failed(&r);
    assert!(
        f.iter().any(|(p, n, rows)| p == "2"
            && n == "reads only the tables it declares"
            && rows.contains("dh_tool is read")),
        "{f:#?}"
    );
}

#[test]
fn a_value_through_a_real_is_named_not_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let plan = plan_with_phase(dir.path(), "1_strategic_priorities.sql", |t| {
        format!(
            "{t}\nUPDATE jtbd_library SET opportunity_score = json_extract('{{\"v\": 12345678901234567890.25}}', '$.v'), usage_count = usage_count + 0.5 WHERE id = 'jtbd00001';\n"
        )
    });
    let (code, r) = rehearse(&snap, &plan);
    assert_eq!(code, 1);
    let f = failed(&r);
    let exact = f
        .iter()
        .find(|(p, n, _)| p == "1" && n.starts_with("values stay exact"))
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        exact
            .2
            .contains("jtbd_library.opportunity_score of row jtbd00001")
            && exact
                .2
                .contains("jtbd_library.usage_count of row jtbd00001"),
        "{exact:?}"
    );
}

#[test]
fn policies_are_parameters_validated_against_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let plan = plan_folder(&dir.path().join("bad"), |p| {
        p["policies"]["jtbd_sp_link"]["value"] = "maybe".into();
    });
    sandbox(&[
        "rehearse",
        "--snapshot",
        snap.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
    ])
    .code(2)
    .error_has(&[
        "jtbd_sp_link",
        "maybe",
        "require_agreement, library, function",
    ]);
    let plan = plan_with_phase(&dir.path().join("unknown"), "2_tools.sql", |t| {
        format!("{t}\nSELECT :no_such_policy;\n")
    });
    let (code, r) = rehearse(&snap, &plan);
    assert_eq!(code, 1);
    assert!(
        failed(&r).iter().any(|(_, n, rows)| n == "phase SQL runs"
            && rows.contains("unknown parameter :no_such_policy")),
        "{:#?}",
        failed(&r)
    );
}

#[test]
fn plan_init_writes_a_copy_with_the_same_hash() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("my-plan");
    sandbox(&["plan", "init", copy.to_str().unwrap()]).ok();
    for f in [
        "plan.json",
        "target.json",
        "phases/3C_library_workflows.sql",
        "seeds/strategic_priorities.json",
        "seeds/library/SP01_growth_market_access.json",
    ] {
        assert!(copy.join(f).is_file(), "{f} missing");
    }
    let hash = |args: &[&str]| -> String {
        let r = sandbox(args);
        r.ok();
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["hash"].as_str().unwrap().to_string()
    };
    let builtin = hash(&["plan", "--json"]);
    assert_eq!(
        hash(&["plan", "--json", "--plan", copy.to_str().unwrap()]),
        builtin
    );
    // Any file of the folder is part of the plan.
    let phase = copy.join("phases/4_tasks.sql");
    let text = std::fs::read_to_string(&phase).unwrap();
    std::fs::write(&phase, text.replace("title, jsonb", "title, jsonb ")).unwrap();
    assert_ne!(
        hash(&["plan", "--json", "--plan", copy.to_str().unwrap()]),
        builtin
    );
    // A folder that is not empty is left alone.
    sandbox(&["plan", "init", copy.to_str().unwrap()]).code(2);
}

/// The hash covers every file of a plan folder (a README, notes), but not
/// what the tool writes there: a snapshot with its journal, the HTML report,
/// the `diff --sql` script, nor a `.git` folder.
#[test]
fn the_plan_hash_covers_every_file_of_the_folder_but_the_tools_output() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("my-plan");
    let plan_s = plan.to_str().unwrap();
    sandbox(&["plan", "init", plan_s]).ok();
    let hash = || -> String {
        let r = sandbox(&["plan", "--json", "--plan", plan_s]);
        r.ok();
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["hash"].as_str().unwrap().to_string()
    };
    let builtin = hash();

    // A snapshot kept in the folder, rehearsed there, its report and diff
    // script written there: the same plan.
    let snap = snapshot(&plan);
    let snap_s = snap.to_str().unwrap();
    let html = plan.join("report.html");
    sandbox(&[
        "rehearse",
        "--snapshot",
        snap_s,
        "--plan",
        plan_s,
        "--html",
        html.to_str().unwrap(),
    ])
    .ok();
    let script = plan.join("migration.sql");
    sandbox(&[
        "diff",
        "--snapshot",
        snap_s,
        "--plan",
        plan_s,
        "--sql",
        script.to_str().unwrap(),
    ])
    .ok();
    assert!(html.is_file() && script.is_file());
    std::fs::write(plan.join("plan.sqlite-journal"), "left by a crash").unwrap();
    std::fs::create_dir_all(plan.join(".git")).unwrap();
    std::fs::write(plan.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    assert_eq!(
        hash(),
        builtin,
        "the tool's own files changed the plan hash"
    );

    // Any other file is part of the plan: the rehearsal no longer
    // authorises the diff.
    std::fs::create_dir_all(plan.join("notes")).unwrap();
    std::fs::write(plan.join("notes/README.md"), "# Why skip the 97\n").unwrap();
    let with_readme = hash();
    assert_ne!(with_readme, builtin, "a README inside the folder");
    sandbox(&["diff", "--snapshot", snap_s, "--plan", plan_s])
        .code(1)
        .error_has(&["plan or seeds changed", "sandbox rehearse --snapshot "]);
    std::fs::write(plan.join("notes/README.md"), "# Why skip the 98\n").unwrap();
    assert_ne!(hash(), with_readme, "an edited README");
    // And a copy of such a folder is the same plan.
    let copy = dir.path().join("copy");
    sandbox(&["plan", "--plan", plan_s, "init", copy.to_str().unwrap()]).ok();
    assert!(copy.join("notes/README.md").is_file());
    assert!(
        !copy.join("plan.sqlite").exists(),
        "the snapshot is no part of a copy"
    );
    let edited = hash();
    let r = sandbox(&["plan", "--json", "--plan", copy.to_str().unwrap()]);
    r.ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["hash"], edited.as_str(), "a copy is the same plan");
    std::fs::remove_file(plan.join("notes/README.md")).unwrap();
    assert_eq!(hash(), builtin);

    // Links: one to a file inside the folder is that file; one leading
    // outside or nowhere is refused by name.
    std::os::unix::fs::symlink("phases/4_tasks.sql", plan.join("tasks-link.sql")).unwrap();
    assert_ne!(hash(), builtin, "a link inside the folder is a file of it");
    std::fs::remove_file(plan.join("tasks-link.sql")).unwrap();
    let outside = dir.path().join("outside.md");
    std::fs::write(&outside, "elsewhere").unwrap();
    std::os::unix::fs::symlink(&outside, plan.join("elsewhere.md")).unwrap();
    sandbox(&["plan", "--plan", plan_s])
        .code(2)
        .error_has(&["elsewhere.md", "leading outside the folder"]);
    std::fs::remove_file(plan.join("elsewhere.md")).unwrap();
    std::os::unix::fs::symlink("no-such-file", plan.join("dangling.md")).unwrap();
    sandbox(&["plan", "--plan", plan_s])
        .code(2)
        .error_has(&["dangling.md", "cannot be read"]);
}

#[test]
fn sandbox_plan_in_the_environment_is_the_plan_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let example = common::repo_path("examples/tool-catalog");
    let r = common::run_sandbox(
        &["rehearse", "--json", "--snapshot", snap.to_str().unwrap()],
        &[("SANDBOX_PLAN", example.to_str().unwrap())],
    );
    r.ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["plan_name"], "tool-catalog-cleanup");
    // A duplicate key a phase inserts is a failed constraint check, not a crash.
    let plan = plan_with_phase(dir.path(), "2_tools.sql", |t| format!("{t}\n{t}"));
    let (code, r) = rehearse(&snap, &plan);
    assert_eq!(code, 1);
    let c = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "phase SQL runs")
        .unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!(c["kind"], "constraint", "{c:#}");
    assert!(
        c["actual"]
            .as_str()
            .unwrap()
            .contains("UNIQUE constraint failed: tools.id"),
        "{c:#}"
    );
}

/// target.json's column types become the push's DDL: a clause or a second
/// statement hidden in a type is refused when the plan loads (exit 2,
/// naming the file and the column), before any rehearsal could call it
/// green and long before a push could run it.
#[test]
fn a_type_in_target_json_is_one_type_name_never_a_clause_or_a_statement() {
    let dir = tempfile::tempdir().unwrap();
    for (n, ty) in [
        "text; DROP TABLE public.user_sessions",
        "text DEFAULT 'n/a'",
        "text default now",
        "jsonb, PRIMARY KEY (id)",
    ]
    .into_iter()
    .enumerate()
    {
        let plan = plan_folder(&dir.path().join(format!("plan{n}")), |_| {});
        let target = plan.join("target.json");
        let mut schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
        schema["added_columns"][0]["column"]["type"] = Value::from(ty);
        let column = format!(
            "{}.{}",
            schema["added_columns"][0]["table"].as_str().unwrap(),
            schema["added_columns"][0]["column"]["name"]
                .as_str()
                .unwrap()
        );
        std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
        let r = sandbox(&["plan", "--plan", plan.to_str().unwrap()]);
        r.code(2);
        assert!(
            r.stderr.contains("target.json") && r.stderr.contains(&column),
            "{ty:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("is not a Postgres type name"),
            "{}",
            r.stderr
        );
    }
    // "not_null" on an added column would be ignored by rehearsal and push:
    // refused by name instead.
    let plan = plan_folder(&dir.path().join("not_null"), |_| {});
    let target = plan.join("target.json");
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    schema["added_columns"][0]["column"]["not_null"] = Value::from(true);
    std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    let r = sandbox(&["plan", "--plan", plan.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr
            .contains("\"not_null\" is not supported on an added column"),
        "{}",
        r.stderr
    );
    // A multi-word type with modifiers, as Postgres prints it, is a type.
    let plan = plan_folder(&dir.path().join("ok"), |_| {});
    let target = plan.join("target.json");
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    schema["added_columns"][0]["column"]["type"] = Value::from("timestamp(3) with time zone");
    std::fs::write(&target, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    sandbox(&["plan", "--plan", plan.to_str().unwrap()]).ok();
}

/// A row value holding ESC and CR (a name in the user's data) is shown
/// escaped in the human report: it cannot erase its own failure line and
/// print a green "PASSED" over it on a terminal.
#[test]
fn control_characters_in_failing_rows_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let plan = plan_folder(&dir.path().join("plan"), |p| {
        p["phases"][0]["conflicts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "forged row",
                "sql": "SELECT '<x' || char(13) || char(27) || '[2K' || char(27) || '[32mPASSED: all checks hold' || char(27) || '[0m'"
            }));
    });
    let r = sandbox(&[
        "rehearse",
        "--snapshot",
        snap.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--color",
        "never",
    ]);
    r.code(1);
    assert!(r.stdout.contains("forged row"), "{}", r.stdout);
    assert!(
        !r.stdout.contains('\x1b') && !r.stdout.contains('\r'),
        "raw control characters in the report: {:?}",
        r.stdout
    );
    assert!(r.stdout.contains("\\x1b[32mPASSED"), "{}", r.stdout);
}

/// A `hold_off_triggers` entry that is not `table.trigger` held off nothing
/// and was skipped everywhere without a word; it is refused when the plan
/// loads (exit 2), naming the entry, the plan file and the expected form —
/// before any rehearsal, diff or push reads it.
#[test]
fn a_hold_off_entry_that_is_not_table_dot_trigger_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    for (n, entry) in [
        "jtbd_library_set_updated_at",
        "public.jtbd_library.jtbd_library_set_updated_at",
        ".jtbd_library_set_updated_at",
        "jtbd_library.",
    ]
    .into_iter()
    .enumerate()
    {
        let plan = plan_folder(&dir.path().join(format!("plan{n}")), |p| {
            p["hold_off_triggers"] = serde_json::json!([entry]);
        });
        let file = plan.join("plan.json");
        for args in [
            vec!["plan", "--plan", plan.to_str().unwrap()],
            vec![
                "rehearse",
                "--snapshot",
                snap.to_str().unwrap(),
                "--plan",
                plan.to_str().unwrap(),
            ],
        ] {
            let r = sandbox(&args);
            r.code(2);
            assert!(
                r.stderr
                    .contains(&format!("hold_off_triggers entry \"{entry}\""))
                    && r.stderr.contains(file.to_str().unwrap())
                    && r.stderr.contains("of the form table.trigger"),
                "{entry:?}: {}",
                r.stderr
            );
        }
    }
    // The well-formed entry of the built-in plan loads.
    let plan = plan_folder(&dir.path().join("ok"), |_| {});
    sandbox(&["plan", "--plan", plan.to_str().unwrap()]).ok();
}
