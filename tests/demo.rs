//! `sandbox demo`: the README's main command, with no server at all.

mod common;

fn demo(dir: &std::path::Path, variant: &str) -> (i32, String, String) {
    let out = dir.join(format!("{variant}.sqlite"));
    let out = out.to_str().expect("UTF-8 path");
    let r = common::Sandbox::new(&["demo", "--variant", variant, "--out", out])
        // No server may be needed: point every URL variable at a closed port.
        .env("SANDBOX_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .run();
    (r.code, r.stdout, r.stderr)
}

/// Every line fits the 100 columns of a pipe: prose wraps like the tables.
fn assert_fits(out: &str) {
    for l in out.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
}

#[test]
fn demo_runs_the_whole_loop_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = demo(dir.path(), "plan");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASSED: all"), "{out}");
    assert!(
        out.contains("727 rows to insert, 105 rows to update"),
        "{out}"
    );
    assert!(out.contains("report_checks"), "{out}");
    assert_fits(&out);
    let snap = sandbox::db::sqlite::Snapshot::open(&dir.path().join("plan.sqlite")).unwrap();
    let n: i64 = snap
        .conn
        .query_row("SELECT count(*) FROM staged_tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 343);
    assert!(snap.info.source_url.starts_with("fixtures:plan"));
}

#[test]
fn demo_conflicts_shows_a_failing_rehearsal() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = demo(dir.path(), "conflicts");
    assert_eq!(code, 1);
    assert!(out.contains("FAILED:"), "{out}");
    assert_fits(&out);
    assert!(
        out.contains("JTBDs under two strategic priorities (11 rows)"),
        "{out}"
    );
    assert!(out.contains("Push would refuse this snapshot"), "{out}");
    let (code, _, err) = demo(dir.path(), "nonsense");
    assert_eq!(code, 2);
    assert!(err.contains("unknown fixture variant 'nonsense'"), "{err}");
}
