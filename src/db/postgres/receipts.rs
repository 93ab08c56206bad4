//! `sandbox.receipts` on Postgres: the table push writes its receipts
//! into (and looks for an applied one of its diff in), rollback and
//! `receipts` read them from.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Transaction;

use crate::diff::Diff;
use crate::plan::stage::StagedTable;
use crate::receipt::Undo;

/// The receipts table, created by the first push (and its schema).
pub const RECEIPTS_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS sandbox;
CREATE TABLE IF NOT EXISTS sandbox.receipts (
  id uuid PRIMARY KEY,
  diff_hash text NOT NULL,
  plan_name text NOT NULL,
  plan_hash text NOT NULL,
  snapshot_checksum text NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  pushed_by text NOT NULL DEFAULT current_user,
  tool_version text NOT NULL,
  status text NOT NULL CHECK (status IN ('applied', 'rolled_back')),
  rolled_back_at timestamptz,
  counts jsonb NOT NULL,
  undo jsonb NOT NULL
);
ALTER TABLE sandbox.receipts ENABLE ROW LEVEL SECURITY;
";

/// NULL when `sandbox.receipts` does not exist, '' when it has every
/// column this tool writes, else the missing ones: an application may own a
/// table of that name, and using it would end in raw SQL errors mid-push.
pub const RECEIPTS_SHAPE_SQL: &str = "SELECT CASE WHEN to_regclass('sandbox.receipts') IS NOT NULL THEN \
     coalesce((SELECT string_agg(c, ', ') FROM unnest(ARRAY['id', 'diff_hash', 'plan_name', 'plan_hash', \
       'snapshot_checksum', 'pushed_at', 'pushed_by', 'tool_version', 'status', 'rolled_back_at', 'counts', 'undo']) c \
       WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass('sandbox.receipts') \
         AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)), '') END";

/// Whether the tool's receipts table exists, from [`RECEIPTS_SHAPE_SQL`]'s
/// answer; an error naming the conflict when the table is someone else's.
pub fn receipts_table_verdict(shape: Option<&str>) -> Result<bool> {
    match shape {
        None => Ok(false),
        Some("") => Ok(true),
        Some(missing) => Err(crate::error::environment(format!(
            "sandbox.receipts exists but is not this tool's receipts table (it has no column {missing}): \
             the tool keeps its receipts there. Rename or move that table (e.g. \
             `ALTER SCHEMA sandbox RENAME TO my_sandbox` if the schema is yours), then run this again; \
             nothing was written"
        ))),
    }
}

/// Whether the tool's receipts table exists ([`receipts_table_verdict`]).
pub async fn receipts_table_exists(tx: &Transaction<'_>) -> Result<bool> {
    let rows = tx.simple_query(RECEIPTS_SHAPE_SQL).await?;
    let shape = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    });
    receipts_table_verdict(shape.flatten().as_deref())
}

/// The receipt of an applied push of this diff, with the state it recorded
/// for each table it wrote (the rehearsed state plus what Postgres chose).
pub async fn applied_receipt(
    tx: &Transaction<'_>,
    diff_hash: &str,
) -> Result<Option<(String, Vec<StagedTable>)>> {
    if !receipts_table_exists(tx).await? {
        return Ok(None);
    }
    let rows = tx
        .query_typed(
            "SELECT id::text, coalesce((undo -> 'after')::text, '{}') FROM sandbox.receipts \
             WHERE diff_hash = $1 AND status = 'applied' ORDER BY pushed_at DESC LIMIT 1",
            &[(&diff_hash, tokio_postgres::types::Type::TEXT)],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct After {
        rows: u64,
        checksum: String,
    }
    let after: BTreeMap<String, After> = serde_json::from_str(&row.get::<_, String>(1))
        .context("the receipt's recorded state is not readable")?;
    Ok(Some((
        row.get(0),
        after
            .into_iter()
            .map(|(name, a)| StagedTable {
                name,
                rows: a.rows,
                checksum: a.checksum,
            })
            .collect(),
    )))
}

pub async fn insert_receipt(
    tx: &Transaction<'_>,
    receipt_id: &str,
    diff: &Diff,
    table_counts: &[impl Serialize],
    undo: &Undo,
) -> Result<()> {
    tx.batch_execute(RECEIPTS_DDL)
        .await
        .context("creating sandbox.receipts")?;
    tx.execute(
        "INSERT INTO sandbox.receipts (id, diff_hash, plan_name, plan_hash, snapshot_checksum, tool_version, status, counts, undo) \
         VALUES ($1::text::uuid, $2, $3, $4, $5, $6, 'applied', $7::text::jsonb, $8::text::jsonb)",
        &[
            &receipt_id,
            &diff.hash,
            &diff.plan_name,
            &diff.plan_hash,
            &diff.snapshot_checksum,
            &env!("CARGO_PKG_VERSION"),
            &serde_json::to_string(table_counts)?,
            &serde_json::to_string(undo)?,
        ],
    )
    .await
    .context("inserting the receipt")?;
    Ok(())
}
