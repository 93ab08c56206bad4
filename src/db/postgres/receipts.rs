//! `sandbox.receipts` on Postgres: the table push writes its receipts
//! into, rollback and `receipts` read them from.

use anyhow::Result;
use tokio_postgres::Transaction;

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
