//! Snapshots and files of the repository that tests start from.

use std::path::{Path, PathBuf};

use sandbox::fixtures::{FixtureOptions, Variant};
use sandbox::ops::demo::build_snapshot;
use sandbox::ops::pull::NoProgress;
use sandbox::plan::Plan;

/// A file or folder of the repository (seeds, schema, test data).
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A snapshot of the bundled fixtures (scale 1) built straight into `path`,
/// as `sandbox demo` builds it: byte for byte the data a pull of the loaded
/// fixtures reads (tests/pull.rs proves that), without a server.
pub fn fixture_snapshot(path: &Path, variant: Variant, plan: &Plan) {
    build_snapshot(
        path,
        true,
        &FixtureOptions { variant, scale: 1 },
        &plan.tables,
        &NoProgress,
    )
    .unwrap_or_else(|e| panic!("build the {variant} fixture snapshot: {e:#}"));
}

/// `<dir>/<variant>.sqlite`, the `variant` fixture snapshot for the
/// built-in plan.
pub fn fixture_snapshot_in(dir: &Path, variant: Variant) -> PathBuf {
    let path = dir.join(format!("{variant}.sqlite"));
    let plan = Plan::load_default().expect("the built-in plan loads");
    fixture_snapshot(&path, variant, &plan);
    path
}
