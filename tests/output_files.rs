//! Files the user names for output (V27): `diff --sql`, `report --html`,
//! `rehearse --html`, `demo --html`, `demo --out`, and the plan folders of
//! `plan adopt --out` and `plan init DIR`. Before, every file command wrote
//! over an existing file, and through a symbolic link into its target, exit
//! 0. Now an existing path — a file, a link, a dangling link — is refused,
//! exit 2, naming it and `--force`, its bytes (and a link's target)
//! unchanged; with `--force` the path is replaced by a rename (a link by a
//! file, its target untouched). A plan folder goes only into a new or empty
//! folder. No server needed: the demo snapshot stands in for a pull.

mod common;

use std::path::{Path, PathBuf};

use common::{run_sandbox, Run};

fn sandbox(args: &[&str]) -> Run {
    run_sandbox(args, &[])
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A rehearsed demo snapshot in `dir`.
fn demo_snapshot(dir: &Path) -> PathBuf {
    let snap = dir.join("demo.sqlite");
    sandbox(&["demo", "--out", p(&snap)]).ok();
    snap
}

/// The commands writing a file the user names: SNAP stands for the
/// snapshot, OUT for the output path.
const FILE_COMMANDS: &[(&str, &[&str])] = &[
    (
        "diff --sql",
        &["diff", "--snapshot", "SNAP", "--sql", "OUT"],
    ),
    (
        "report --html",
        &["report", "--snapshot", "SNAP", "--html", "OUT"],
    ),
    (
        "rehearse --html",
        &["rehearse", "--snapshot", "SNAP", "--html", "OUT"],
    ),
    ("demo --html", &["demo", "--out", "SNAP", "--html", "OUT"]),
    ("demo --out", &["demo", "--out", "OUT"]),
];

fn fill(template: &[&str], snap: &Path, out: &Path) -> Vec<String> {
    template
        .iter()
        .map(|a| match *a {
            "SNAP" => p(snap).to_string(),
            "OUT" => p(out).to_string(),
            other => other.to_string(),
        })
        .collect()
}

fn run(args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox(&args)
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn an_existing_output_file_or_link_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let snap = demo_snapshot(dir.path());
    for &(name, template) in FILE_COMMANDS {
        let command = |out: &Path| fill(template, &snap, out);
        let case = dir.path().join(name.replace([' ', '-'], "_"));
        std::fs::create_dir(&case).unwrap();

        // A file there: refused, bytes unchanged.
        let file = case.join("existing.out");
        std::fs::write(&file, "the user's own file").unwrap();
        let refused = run(&command(&file));
        refused.code(2).error_has(&[p(&file), "exists", "--force"]);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "the user's own file",
            "{name} changed a file it refused"
        );

        // A link there: refused, its target unchanged.
        let target = case.join("target.txt");
        std::fs::write(&target, "what the link points at").unwrap();
        let link = case.join("link.out");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        run(&command(&link))
            .code(2)
            .error_has(&[p(&link), "symbolic link", "--force"]);
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "what the link points at",
            "{name} wrote through a link"
        );
        assert!(is_link(&link));

        // A dangling link: refused, nothing made where it points.
        let dangling = case.join("dangling.out");
        let nowhere = case.join("nowhere");
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        run(&command(&dangling))
            .code(2)
            .error_has(&[p(&dangling), "--force"]);
        assert!(!nowhere.exists(), "{name} created a dangling link's target");

        // --force: the file is replaced; the link by a file, its target
        // untouched; no temporary file is left.
        // (The demo's twice only for the link: each run builds a snapshot.)
        let forced: &[&PathBuf] = if name.starts_with("demo") {
            &[&link]
        } else {
            &[&file, &link]
        };
        for path in forced {
            let mut args = command(path);
            args.push("--force".into());
            run(&args).ok();
            let written = std::fs::read(path).unwrap();
            assert_ne!(written, b"the user's own file", "{name} --force");
            assert_ne!(written, b"what the link points at", "{name} --force");
            assert!(!is_link(path), "{name} --force kept the link");
        }
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "what the link points at",
            "{name} --force wrote through the link"
        );
        let mut left: Vec<String> = std::fs::read_dir(&case)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["dangling.out", "existing.out", "link.out", "target.txt"],
            "{name}"
        );
    }
}

/// The demo replaces its own snapshot (running it again, another
/// variant), but nothing else.
#[test]
fn the_demo_replaces_its_own_snapshot_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let snap = demo_snapshot(dir.path());
    sandbox(&["demo", "--out", p(&snap), "--variant", "conflicts"]).code(1);
    sandbox(&["demo", "--out", p(&snap)]).ok();
    // A pulled-looking file of another origin is not the demo's.
    let other = dir.path().join("other.sqlite");
    std::fs::copy(&snap, &other).unwrap();
    let c = rusqlite::Connection::open(&other).unwrap();
    c.execute_batch("UPDATE _sandbox_snapshot SET database = 'prod'")
        .unwrap();
    drop(c);
    let bytes = std::fs::read(&other).unwrap();
    sandbox(&["demo", "--out", p(&other)])
        .code(2)
        .error_has(&[p(&other), "--force"]);
    assert_eq!(std::fs::read(&other).unwrap(), bytes);
}

/// `plan adopt --out` and `plan init DIR` write a folder: never through a
/// link (before, adopt wrote the plan into the folder a link pointed at),
/// never over a file or into a folder holding anything; an empty folder
/// is fine.
#[test]
fn a_plan_folder_goes_only_into_a_new_or_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let snap = demo_snapshot(dir.path());
    let adopt = |out: &Path| sandbox(&["plan", "adopt", "--snapshot", p(&snap), "--out", p(out)]);
    let init = |out: &Path| sandbox(&["plan", "init", p(out)]);
    for (name, command) in [("adopt", &adopt as &dyn Fn(&Path) -> Run), ("init", &init)] {
        let case = dir.path().join(name);
        std::fs::create_dir(&case).unwrap();
        let empty = case.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let link = case.join("link");
        std::os::unix::fs::symlink(&empty, &link).unwrap();
        command(&link)
            .code(2)
            .error_has(&[p(&link), "symbolic link", "choose a new folder"]);
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{name}");
        let dangling = case.join("dangling");
        std::os::unix::fs::symlink(case.join("nowhere"), &dangling).unwrap();
        command(&dangling).code(2).error_has(&[p(&dangling)]);
        let file = case.join("file");
        std::fs::write(&file, "mine").unwrap();
        command(&file).code(2).error_has(&[p(&file), "is a file"]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
        command(&empty).ok();
        assert!(empty.join("plan.json").is_file(), "{name}");
        command(&empty).code(2).error_has(&[p(&empty), "not empty"]);
    }
}

/// R9: `diff --sql -` wrote a file named `-` into the working folder,
/// exit 0, where `-` elsewhere means standard output. Every file option now
/// refuses `-` (exit 2) saying how to name such a file, and writes nothing.
#[test]
fn a_dash_for_a_file_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["diff", "--sql", "-"][..],
        &["pull", "--out", "-"][..],
        &["report", "--html", "-"][..],
        &["rehearse", "--snapshot", "-"][..],
    ] {
        let run = common::Sandbox::new(args).dir(dir.path()).run();
        run.code(2).error_has(&[
            "`-` (standard input or output) is not supported here",
            "`./-` for a file named `-`",
        ]);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("read dir").count(),
            0,
            "{args:?} wrote into the folder"
        );
    }
}
