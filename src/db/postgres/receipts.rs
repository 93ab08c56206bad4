//! `sandbox.receipts` on Postgres: the table push writes its receipts
//! into (and looks for an applied one of its diff in), rollback and
//! `receipts` read them from.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Transaction;

use crate::diff::Diff;
use crate::error::check_failed;
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
    use tokio_postgres::types::{ToSql, Type};
    let counts = serde_json::to_string(table_counts)?;
    let undo = serde_json::to_string(undo)?;
    let values: [(&(dyn ToSql + Sync), Type); 8] = [
        (&receipt_id, Type::TEXT),
        (&diff.hash, Type::TEXT),
        (&diff.plan_name, Type::TEXT),
        (&diff.plan_hash, Type::TEXT),
        (&diff.snapshot_checksum, Type::TEXT),
        (&env!("CARGO_PKG_VERSION"), Type::TEXT),
        (&counts, Type::TEXT),
        (&undo, Type::TEXT),
    ];
    // The table, then the row: sent together (one round trip), typed (no
    // prepare); Postgres runs them in order.
    let (created, inserted) = futures_util::join!(
        tx.batch_execute(RECEIPTS_DDL),
        tx.query_typed(
            "INSERT INTO sandbox.receipts (id, diff_hash, plan_name, plan_hash, snapshot_checksum, tool_version, status, counts, undo) \
             VALUES ($1::text::uuid, $2, $3, $4, $5, $6, 'applied', $7::text::jsonb, $8::text::jsonb)",
            &values,
        )
    );
    created.context("creating sandbox.receipts")?;
    inserted.context("inserting the receipt")?;
    Ok(())
}

/// Reads the receipt to undo: `None` when it was rolled back before; an
/// error when there is none, it is not applied, or later pushes still are.
///
/// `database` names the database (its URL, without the password) in the
/// error for one that has no receipts table.
pub async fn read_receipt(
    tx: &tokio_postgres::Transaction<'_>,
    receipt_id: &str,
    database: &str,
) -> Result<Option<Undo>> {
    if !receipts_table_exists(tx).await? {
        // No push was ever recorded in this database: the receipt id, or
        // the database URL, is the user's mistake (exit 2), not a check.
        return Err(crate::error::environment(format!(
            "{} has no sandbox.receipts table: no push was ever recorded in this database, so \
             there is no receipt {} to roll back. Check the database URL: `sandbox receipts` (with \
             the same --database-url) lists the receipts pushed to a database and those the \
             snapshot recorded",
            database, receipt_id
        )));
    }
    let rows = tx
        .query(
            "SELECT status, undo::text, pushed_at::text, \
                    (SELECT count(*) FROM sandbox.receipts l WHERE l.status = 'applied' AND l.pushed_at > r.pushed_at), \
                    (SELECT l.id::text FROM sandbox.receipts l WHERE l.status = 'applied' \
                       ORDER BY l.pushed_at DESC LIMIT 1) \
             FROM sandbox.receipts r WHERE id = $1::text::uuid",
            &[&receipt_id],
        )
        .await?;
    let Some(row) = rows.first() else {
        // A receipt id the user got wrong: their input, not a failed check.
        return Err(crate::error::environment(format!(
            "no receipt {} in sandbox.receipts: `sandbox receipts` lists the receipts there",
            receipt_id
        )));
    };
    let status: String = row.get(0);
    if status == "rolled_back" {
        return Ok(None);
    }
    if status != "applied" {
        return Err(check_failed(format!(
            "receipt {} has status '{status}', not 'applied': nothing to roll back",
            receipt_id
        )));
    }
    let later: i64 = row.get(3);
    if later > 0 {
        let newest: String = row.get(4);
        return Err(check_failed(format!(
            "{later} later push(es) are still applied; roll those back first, newest first \
             (`sandbox receipts` lists them): `sandbox rollback --receipt {newest} --confirm`"
        )));
    }
    Ok(Some(Undo::read(receipt_id, &row.get::<_, String>(1))?))
}
