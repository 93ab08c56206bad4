//! The one test harness every test file uses:
//! - `run`: the `sandbox` binary with a clean environment and a timeout;
//! - `db`: per-test Postgres databases (registered, so leftovers of killed
//!   runs are dropped by the next run) and reading rows back as text;
//! - `fixtures`: snapshots of the bundled fixtures, files of the repository;
//! - `state`: the whole database as a value, to prove what a command changed;
//! - `tools`: command-line tools the tests drive, installed when missing,
//!   and small file and network helpers;
//! - `world`: a database loaded with the fixtures and its snapshot, with the
//!   loop's commands run against both, and reading rehearsal reports.
#![allow(dead_code)]
// Not every test binary uses every helper.
#![allow(unused_imports)]

pub mod db;
pub mod fixtures;
pub mod run;
pub mod state;
pub mod tools;
pub mod world;

pub use db::{
    admin_url, count, postgres_admin, replace_db, scalar, text_rows, TestDb, TestRole, NULL_TEXT,
};
pub use fixtures::{fixture_snapshot, fixture_snapshot_in, repo_path};
pub use run::{run_sandbox, sandbox, sandbox_bin, Proc, Run, Sandbox};
pub use state::{
    sequence_positions, whole_database_state, whole_database_state_with, DatabaseState,
};
pub use tools::{copy_dir, free_port, psql_file, require_tool, AtCommit, CommitCut};
pub use world::{
    check_named, check_rows, failed_checks, json_of, load_fixtures, phase_ids, preflight,
    rehearse_report, staged_new_values, staged_rows, staged_tool_metadata,
    tool_metadata_in_postgres, World,
};

/// The database at `url` seen through a latency link (round-trip time added,
/// bandwidth capped): the proxy, and the same URL pointing at it. The proxy
/// stops when dropped.
pub fn behind_latency_link(
    url: &str,
    rtt_ms: u64,
    mbit_per_s: Option<f64>,
) -> (sandbox::latency::LatencyProxy, String) {
    use std::net::ToSocketAddrs;
    let mut parsed = url::Url::parse(url).expect("test database URL parses");
    let upstream = (
        parsed.host_str().unwrap_or("127.0.0.1").to_string(),
        parsed.port().unwrap_or(5432),
    )
        .to_socket_addrs()
        .expect("test database host resolves")
        .next()
        .expect("test database host has an address");
    let proxy = sandbox::latency::LatencyProxy::start(
        upstream,
        sandbox::latency::Link {
            rtt: std::time::Duration::from_millis(rtt_ms),
            mbit_per_s,
        },
    )
    .expect("the latency proxy starts");
    parsed
        .set_host(Some("127.0.0.1"))
        .expect("host is settable");
    parsed
        .set_port(Some(proxy.addr.port()))
        .expect("port is settable");
    (proxy, parsed.to_string())
}

/// A copy of the built-in plan folder in `dir` (as `sandbox plan init`
/// writes it), its plan.json changed by `edit`. Pass the folder as --plan.
pub fn plan_folder(
    dir: &std::path::Path,
    edit: impl FnOnce(&mut serde_json::Value),
) -> std::path::PathBuf {
    sandbox::plan::Plan::load_default()
        .expect("the built-in plan loads")
        .write_copy(dir)
        .expect("plan copy written");
    let file = dir.join("plan.json");
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    edit(&mut plan);
    std::fs::write(&file, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    dir.to_path_buf()
}

/// A plan folder in `dir` writing only `dh_item`, one phase per SQL text.
pub fn item_plan(dir: &std::path::Path, phases: &[&str]) -> std::path::PathBuf {
    item_plan_reading(dir, phases, &[])
}

/// The plan of `item_plan` that also pulls and reads the tables `reads`
/// (read only: no phase writes them).
pub fn item_plan_reading(
    dir: &std::path::Path,
    phases: &[&str],
    reads: &[&str],
) -> std::path::PathBuf {
    let plan = dir.join("plan");
    std::fs::create_dir_all(plan.join("phases")).unwrap();
    let phase_list: Vec<serde_json::Value> = phases
        .iter()
        .enumerate()
        .map(|(n, sql)| {
            let file = format!("phases/{}.sql", n + 1);
            std::fs::write(plan.join(&file), sql).unwrap();
            serde_json::json!({
                "id": (n + 1).to_string(), "name": format!("step {}", n + 1), "sql": file,
                "reads": reads, "writes": ["dh_item"], "conflicts": [], "expectations": []
            })
        })
        .collect();
    let sources: Vec<&str> = std::iter::once("dh_item")
        .chain(reads.iter().copied())
        .collect();
    let file = serde_json::json!({
        "name": "items", "description": "a test plan writing only dh_item",
        "schema": "target.json",
        "tables": {"protected": [], "sources": sources},
        "phases": phase_list, "verification": [], "guards": []
    });
    std::fs::write(
        plan.join("plan.json"),
        serde_json::to_string_pretty(&file).unwrap(),
    )
    .unwrap();
    std::fs::write(
        plan.join("target.json"),
        r#"{"tables": [], "added_columns": []}"#,
    )
    .unwrap();
    plan
}

/// A database holding `dh_item` as `sql` creates it, pulled with the plan
/// of `phases`.
pub fn item_world(tag: &str, sql: &str, phases: &[&str]) -> World {
    let w = World::empty(tag, sql);
    let plan = item_plan(w.dir.path(), phases);
    w.with_plan(&plan).pulled()
}
