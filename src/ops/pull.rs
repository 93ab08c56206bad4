//! `sandbox pull`: copy the plan's tables into a new snapshot file in one
//! consistent read.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::{pin_mut, StreamExt};
use tokio_postgres::{IsolationLevel, Transaction};

use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
use crate::db::postgres::{connect, explain_query_error, set_local_settings_sql, Target};
use crate::db::sqlite::{SnapshotInfo, SnapshotWriter, TableSummary, FORMAT_VERSION};
use crate::error::environment;
use crate::plan::TableSet;
use crate::types::{parse_copy_line, quote_ident, TableChecksum};

/// Receives progress while tables stream; the command layer draws it.
pub trait PullProgress {
    fn table_started(&self, _table: &str, _estimated_rows: u64) {}
    fn rows_copied(&self, _table: &str, _rows: u64) {}
    fn table_finished(&self, _summary: &TableSummary) {}
}

/// Progress that goes nowhere (tests, `--json`).
pub struct NoProgress;
impl PullProgress for NoProgress {}

pub struct PullOptions {
    pub target: Target,
    pub out: PathBuf,
    pub force: bool,
    pub tables: TableSet,
}

#[derive(Debug, serde::Serialize)]
pub struct PullReport {
    pub path: PathBuf,
    pub info: SnapshotInfo,
    pub tables: Vec<TableSummary>,
    pub millis: u64,
}

pub async fn pull(opts: &PullOptions, progress: &dyn PullProgress) -> Result<PullReport> {
    let started = Instant::now();
    let mut client = connect(&opts.target).await?;
    // Create the temp file before reading anything, so an unwritable folder
    // fails fast.
    let plan_tables: Vec<String> = opts.tables.named().map(str::to_string).collect();
    let mut writer = SnapshotWriter::create(&opts.out, opts.force, &plan_tables)?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("cannot start the read transaction")?;
    tx.batch_execute(&set_local_settings_sql()).await?;
    let (pulled_at, server_version): (String, String) = {
        let row = tx
            .query_one("SELECT now()::text, current_setting('server_version')", &[])
            .await?;
        (row.get(0), row.get(1))
    };
    let metas = read_catalog(&tx, &opts.tables).await?;
    let mut summaries = Vec::new();
    for (meta, estimate) in metas {
        let summary = copy_table(&tx, &mut writer, &meta, estimate, progress).await?;
        progress.table_finished(&summary);
        summaries.push(summary.clone());
        writer.end_table(meta, summary);
    }
    tx.commit()
        .await
        .context("the read transaction failed to end")?;
    drop(client);
    let info = SnapshotInfo {
        format_version: FORMAT_VERSION,
        pulled_at,
        server_version,
        source_url: opts.target.redacted().to_string(),
        database: opts.target.dbname(),
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

/// Resolves the plan's table set against the catalog and reads each table's
/// columns and constraints. Nothing here knows any table's columns.
pub async fn read_catalog(tx: &Transaction<'_>, set: &TableSet) -> Result<Vec<(TableMeta, u64)>> {
    let rows = tx
        .query(
            "SELECT c.oid, c.relname, greatest(c.reltuples, 0)::int8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
            &[],
        )
        .await
        .context("cannot read the catalog")?;
    let present: Vec<(u32, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let missing: Vec<&str> = set
        .named()
        .filter(|name| !present.iter().any(|(_, n, _)| n == name))
        .collect();
    if !missing.is_empty() {
        return Err(environment(format!(
            "the source database has no table {} in schema public, which the plan needs; \
             is the URL pointing at the right database? (`sandbox fixtures load` builds a \
             test one)",
            missing.join(", ")
        )));
    }
    let mut wanted: Vec<(u32, String, TableRole, i64)> = Vec::new();
    for name in set.named() {
        if let Some((oid, n, est)) = present.iter().find(|(_, n, _)| n == name) {
            wanted.push((*oid, n.clone(), set.role_of(n), *est));
        }
    }
    let mut extra: Vec<&(u32, String, i64)> = present
        .iter()
        .filter(|(_, n, _)| set.matches_pattern(n) && !wanted.iter().any(|w| &w.1 == n))
        .collect();
    extra.sort_by(|a, b| a.1.cmp(&b.1));
    for (oid, n, est) in extra {
        wanted.push((*oid, n.clone(), TableRole::Source, *est));
    }
    let mut out = Vec::new();
    for (oid, name, role, estimate) in wanted {
        let columns = tx
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                        pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text \
                 FROM pg_attribute a \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&oid],
            )
            .await?
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let expr: Option<String> = r.get(3);
                let generated = r.get::<_, String>(4) == "s";
                ColumnMeta {
                    name: r.get(0),
                    ordinal: i as u32 + 1,
                    pg_type: r.get(1),
                    not_null: r.get(2),
                    default: if generated { None } else { expr.clone() },
                    generated: if generated { expr } else { None },
                }
            })
            .collect();
        let constraints = tx
            .query(
                "SELECT con.conname::text, con.contype::text, pg_get_constraintdef(con.oid), \
                   ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                         ORDER BY k.i), \
                   (SELECT relname::text FROM pg_class WHERE oid = con.confrelid), \
                   ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                         JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                         ORDER BY k.i) \
                 FROM pg_constraint con \
                 WHERE con.conrelid = $1 AND con.contype IN ('p', 'f', 'u', 'c') \
                 ORDER BY con.contype, con.conname",
                &[&oid],
            )
            .await?
            .iter()
            .map(|r| ConstraintMeta {
                name: r.get(0),
                kind: r.get(1),
                definition: r.get(2),
                columns: r.get(3),
                ref_table: r.get(4),
                ref_columns: r.get(5),
            })
            .collect();
        out.push((
            TableMeta {
                name,
                role,
                columns,
                constraints,
            },
            estimate.max(0) as u64,
        ));
    }
    Ok(out)
}

/// The SELECT whose COPY output is a table's canonical row encoding; pull
/// and the drift check use the same text.
pub fn copy_out_sql(meta: &TableMeta) -> String {
    let cols = meta
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "COPY (SELECT {cols} FROM public.{}) TO STDOUT",
        quote_ident(&meta.name)
    )
}

async fn copy_table(
    tx: &Transaction<'_>,
    writer: &mut SnapshotWriter,
    meta: &TableMeta,
    estimate: u64,
    progress: &dyn PullProgress,
) -> Result<TableSummary> {
    let started = Instant::now();
    progress.table_started(&meta.name, estimate);
    writer.begin_table(meta)?;
    let mut checksum = TableChecksum::new();
    let stream = tx
        .copy_out(copy_out_sql(meta).as_str())
        .await
        .map_err(|e| explain_query_error(&e, &format!("cannot read table {}", meta.name)))?;
    pin_mut!(stream);
    // COPY chunks are not aligned to rows; carry the tail of each chunk.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.with_context(|| format!("the connection failed while reading {}", meta.name))?;
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let line = &pending[start..=end];
            checksum.add_line(line);
            let values = parse_copy_line(&line[..line.len() - 1])
                .map_err(|e| anyhow::anyhow!("table {}: {e}", meta.name))?;
            writer.insert_row(meta, &values)?;
            start = end + 1;
            if checksum.rows().is_multiple_of(5000) {
                progress.rows_copied(&meta.name, checksum.rows());
            }
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        anyhow::bail!("table {}: COPY ended in the middle of a row", meta.name);
    }
    progress.rows_copied(&meta.name, checksum.rows());
    Ok(TableSummary {
        name: meta.name.clone(),
        role: meta.role,
        rows: checksum.rows(),
        checksum: checksum.hex(),
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Streams a table's canonical COPY lines (each with its newline) from
/// Postgres into `f`: the one reader behind drift checks and row naming.
async fn for_each_remote_line(
    tx: &Transaction<'_>,
    meta: &TableMeta,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let stream = tx
        .copy_out(copy_out_sql(meta).as_str())
        .await
        .map_err(|e| explain_query_error(&e, &format!("cannot read table {}", meta.name)))?;
    pin_mut!(stream);
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk?);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            f(&pending[start..=start + pos])?;
            start += pos + 1;
        }
        pending.drain(..start);
    }
    Ok(())
}

/// Reads one table's canonical checksum straight from Postgres (drift check).
pub async fn remote_checksum(tx: &Transaction<'_>, meta: &TableMeta) -> Result<TableChecksum> {
    let mut checksum = TableChecksum::new();
    for_each_remote_line(tx, meta, |line| {
        checksum.add_line(line);
        Ok(())
    })
    .await?;
    Ok(checksum)
}

/// Short per-row fingerprints keyed by primary key: what lets a drift check
/// or a rollback name the rows that changed, not just the table.
pub type RowHashes = std::collections::HashMap<String, String>;

fn row_fingerprint(line: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(line)[..8])
}

fn key_positions(meta: &TableMeta) -> Vec<usize> {
    meta.primary_key()
        .iter()
        .filter_map(|k| meta.columns.iter().position(|c| &c.name == k))
        .collect()
}

fn key_of(values: &[Option<String>], positions: &[usize]) -> String {
    positions
        .iter()
        .map(|i| values[*i].clone().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/")
}

/// Row fingerprints of a table at Postgres.
pub async fn remote_row_hashes(tx: &Transaction<'_>, meta: &TableMeta) -> Result<RowHashes> {
    let positions = key_positions(meta);
    let mut out = RowHashes::new();
    for_each_remote_line(tx, meta, |line| {
        let values = parse_copy_line(&line[..line.len() - 1]).map_err(anyhow::Error::msg)?;
        out.insert(key_of(&values, &positions), row_fingerprint(line));
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Row fingerprints of a table (or staged copy) in the snapshot file.
pub fn local_row_hashes(
    snapshot: &crate::db::sqlite::Snapshot,
    sqlite_table: &str,
    meta: &TableMeta,
) -> Result<RowHashes> {
    let positions = key_positions(meta);
    let mut out = RowHashes::new();
    snapshot.for_each_row(sqlite_table, meta, |values| {
        let line = crate::types::copy_text_line(&values);
        out.insert(
            key_of(&values, &positions),
            row_fingerprint(line.as_bytes()),
        );
        Ok(())
    })?;
    Ok(out)
}

/// The rows that differ between two fingerprint sets, named for a person.
pub fn describe_row_changes(expected: &RowHashes, actual: &RowHashes, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut keys: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let line = match (expected.get(k), actual.get(k)) {
            (Some(a), Some(b)) if a != b => format!("row {k} changed"),
            (Some(_), None) => format!("row {k} deleted"),
            (None, Some(_)) => format!("row {k} added"),
            _ => continue,
        };
        out.push(line);
    }
    let total = out.len();
    out.truncate(limit);
    if total > limit {
        out.push(format!("… and {} more rows", total - limit));
    }
    out
}
