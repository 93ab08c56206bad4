//! `sandbox demo`: a snapshot built straight from the bundled fixtures, with
//! no server, in exactly the format `pull` writes. The fixtures generate
//! every value as the text Postgres prints for it, and
//! `fixtures/catalog.json` is the catalog a pull of the loaded fixtures
//! reads (a test keeps both honest against a real Postgres).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::catalog::TableMeta;
use crate::db::sqlite::{
    PullProgress, PullReport, Snapshot, SnapshotInfo, SnapshotWriter, TableSummary, FORMAT_VERSION,
};
use crate::fixtures::{self, FixtureOptions};
use crate::plan::TableSet;
use crate::types::TableChecksum;

pub const FIXTURE_CATALOG: &str = include_str!("../../fixtures/catalog.json");

/// The catalog of the fixture database as a pull reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FixtureCatalog {
    pub server_version: String,
    pub tables: Vec<TableMeta>,
}

pub fn fixture_catalog() -> Result<FixtureCatalog> {
    serde_json::from_str(FIXTURE_CATALOG).context("fixtures/catalog.json is not valid")
}

/// The catalog document for `fixtures/catalog.json`, from a pulled snapshot.
pub fn catalog_from_snapshot(snapshot: &Snapshot) -> FixtureCatalog {
    FixtureCatalog {
        // Only the major version: the demo must not change with patch releases.
        server_version: snapshot
            .info
            .server_version
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
        tables: snapshot.tables.iter().map(|t| t.meta.clone()).collect(),
    }
}

/// Writes a snapshot of the fixtures to `out` without any server. An
/// existing `out` is replaced only with `force` or when it is a demo
/// snapshot (one this function wrote: running the demo again, or another
/// variant, replaces its own file).
pub fn build_snapshot(
    out: &Path,
    force: bool,
    opts: &FixtureOptions,
    tables: &TableSet,
    progress: &dyn PullProgress,
) -> Result<PullReport> {
    let started = Instant::now();
    let catalog = fixture_catalog()?;
    let names: Vec<String> = tables.named().map(str::to_string).collect();
    if !is_demo_snapshot(out) {
        crate::outfile::refuse_existing(out, force)?;
    }
    // A demo file holds no rehearsal worth keeping: replace it.
    let mut writer = SnapshotWriter::create(out, true, &names)?;
    let mut summaries = Vec::new();
    let wanted: Vec<&TableMeta> = catalog
        .tables
        .iter()
        .filter(|m| tables.named().any(|n| n == m.name) || tables.matches_pattern(&m.name))
        .collect();
    for meta in wanted {
        let t0 = Instant::now();
        let mut meta = meta.clone();
        meta.role = tables.role_of(&meta.name);
        progress.table_started(&meta.name, fixtures::row_count(&meta.name, opts));
        writer.begin_table(&meta)?;
        let mut sum = TableChecksum::new();
        for row in fixtures::rows(&meta.name, opts) {
            sum.add_row(&row);
            writer.insert_row(&meta, &row)?;
        }
        progress.rows_copied(&meta.name, sum.rows());
        let summary = TableSummary {
            name: meta.name.clone(),
            role: meta.role,
            rows: sum.rows(),
            checksum: sum.hex(),
            millis: t0.elapsed().as_millis() as u64,
        };
        progress.table_finished(&summary);
        summaries.push(summary.clone());
        writer.end_table(meta, summary);
    }
    let info = SnapshotInfo {
        format_version: FORMAT_VERSION,
        // A fixed moment: the demo snapshot is the same on every machine.
        pulled_at: "2025-11-10 09:00:00+00".to_string(),
        server_version: catalog.server_version.clone(),
        source_url: format!("fixtures:{} (built in, no server)", opts.variant),
        database: "fixtures".to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        snapshot_checksum: String::new(),
    };
    let (path, info) = writer.finish(info)?;
    Ok(PullReport {
        path,
        info,
        tables: summaries,
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Whether `path` is a file (not a link) holding a snapshot built by
/// [`build_snapshot`] (its source is the fixtures, no server).
fn is_demo_snapshot(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && Snapshot::open(path).is_ok_and(|s| {
            s.info.database == "fixtures" && s.info.source_url.starts_with("fixtures:")
        })
}
