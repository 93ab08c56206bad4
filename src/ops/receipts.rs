//! Listing receipts: the ones Postgres keeps (`sandbox.receipts`, the
//! authority) and the copies a snapshot file keeps next to the rehearsal
//! they came from, merged by id so a person sees one line per push.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::SimpleQueryMessage;

use crate::db::postgres::{connect, Target};
use crate::db::sqlite::{add_receipts_column, receipts_has_column, Snapshot};

/// One push as `sandbox receipts` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReceiptLine {
    pub id: String,
    /// When it was pushed (Postgres) or recorded in the snapshot by the
    /// push, UTC (`YYYY-MM-DD HH:MM:SS.mmm+00`).
    pub at: String,
    pub plan_name: String,
    pub plan_hash: String,
    pub diff_hash: String,
    /// Rows the push inserted, updated and deleted over all tables: from
    /// Postgres's receipt, or the snapshot's copy; `None` where neither
    /// side that was read keeps them (a copy recorded by an older sandbox).
    pub inserted: Option<u64>,
    pub updated: Option<u64>,
    pub deleted: Option<u64>,
    /// `applied` or `rolled_back` on Postgres, when Postgres was read.
    pub remote_status: Option<String>,
    /// The snapshot copy's status, when the snapshot holds one.
    pub snapshot_status: Option<String>,
    pub rolled_back_at: Option<String>,
    /// The format of its undo record (`receipt::UNDO_FORMAT` when this
    /// build pushed it): whether this build's rollback reads it. From
    /// Postgres; `None` for a copy only the snapshot keeps (it keeps no
    /// undo record).
    pub undo_format: Option<u32>,
}

impl ReceiptLine {
    /// The status a person should believe: Postgres's when known.
    pub fn status(&self) -> &str {
        self.remote_status
            .as_deref()
            .or(self.snapshot_status.as_deref())
            .unwrap_or("?")
    }
}

/// The receipts in `sandbox.receipts`, oldest first; none when the schema
/// was never created (nothing was ever pushed there).
pub async fn remote(target: &Target) -> Result<Vec<ReceiptLine>> {
    let client = connect(target).await?;
    // Simple protocol: no named statements, so a transaction-mode pooler
    // is fine.
    let access = text_rows(&client, crate::db::postgres::receipts::RECEIPTS_ACCESS_SQL).await?;
    // Read access named first; whether the table exists is asked below
    // (with whether it is this tool's).
    crate::db::postgres::receipts::receipts_access_verdict(
        access.first().map(Vec::as_slice).unwrap_or_default(),
        crate::db::postgres::receipts::ReceiptsUse::List,
    )?;
    let shape = text_rows(&client, crate::db::postgres::receipts::RECEIPTS_SHAPE_SQL).await?;
    if !crate::db::postgres::receipts::receipts_table_verdict(
        shape
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_deref()),
    )? {
        return Ok(Vec::new());
    }
    let rows = text_rows(
        &client,
        // UTC in the snapshot copy's form, whatever the session's TimeZone:
        // the two sides' times are compared and shown as UTC.
        "SELECT id::text, to_char(pushed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || '+00', \
                plan_name, plan_hash, diff_hash, status, \
                to_char(rolled_back_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', \
                counts::text, undo->>'format' \
         FROM sandbox.receipts ORDER BY pushed_at, id",
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let (inserted, updated, deleted) = totals(&get(7))
                .with_context(|| format!("receipt {} has unreadable counts", get(0)))?;
            Ok(ReceiptLine {
                id: get(0),
                at: get(1),
                plan_name: get(2),
                plan_hash: get(3),
                diff_hash: get(4),
                inserted: Some(inserted),
                updated: Some(updated),
                deleted: Some(deleted),
                remote_status: Some(get(5)),
                snapshot_status: None,
                rolled_back_at: r.get(6).cloned().flatten(),
                undo_format: get(8).parse().ok(),
            })
        })
        .collect()
}

async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for m in client
        .simple_query(sql)
        .await
        .with_context(|| format!("cannot read the receipts: {sql}"))?
    {
        if let SimpleQueryMessage::Row(row) = m {
            out.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Inserted, updated and deleted rows over all tables of a receipt's
/// `counts` (receipts written before deletes were counted have none).
fn totals(counts: &str) -> Result<(u64, u64, u64)> {
    let v: Vec<serde_json::Value> = serde_json::from_str(counts)?;
    let sum = |k: &str| v.iter().filter_map(|t| t[k].as_u64()).sum::<u64>();
    Ok((sum("inserted"), sum("updated"), sum("deleted")))
}

/// The copies kept in a snapshot file (none when it never recorded one).
pub fn in_snapshot(snapshot: &Snapshot) -> Result<Vec<ReceiptLine>> {
    if !has_receipts_table(snapshot)? {
        return Ok(Vec::new());
    }
    // Read-only here: an older file without the column reads NULL.
    let rolled_back_at = if receipts_has_column(&snapshot.conn, "rolled_back_at")? {
        "r.rolled_back_at"
    } else {
        "NULL"
    };
    let counts = if receipts_has_column(&snapshot.conn, "inserted")? {
        "r.inserted, r.updated, r.deleted"
    } else {
        "NULL, NULL, NULL"
    };
    let mut stmt = snapshot.conn.prepare(&format!(
        "SELECT r.receipt_id, r.recorded_at, coalesce(h.plan_name, ''), coalesce(h.plan_hash, ''), \
                r.diff_hash, r.status, {rolled_back_at}, {counts} \
         FROM _sandbox_receipts r LEFT JOIN _sandbox_rehearsals h ON h.id = r.rehearsal_id \
         ORDER BY r.recorded_at, r.receipt_id"
    ))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ReceiptLine {
                id: r.get(0)?,
                at: r.get(1)?,
                plan_name: r.get(2)?,
                plan_hash: r.get(3)?,
                diff_hash: r.get(4)?,
                inserted: r.get(7)?,
                updated: r.get(8)?,
                deleted: r.get(9)?,
                remote_status: None,
                snapshot_status: Some(r.get(5)?),
                rolled_back_at: r.get(6)?,
                undo_format: None,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn has_receipts_table(snapshot: &Snapshot) -> Result<bool> {
    Ok(snapshot.conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sandbox_receipts'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

/// One line per receipt id: Postgres's facts, with the snapshot's status
/// beside them; receipts only one side knows keep their own line.
pub fn merge(remote: Vec<ReceiptLine>, snapshot: Vec<ReceiptLine>) -> Vec<ReceiptLine> {
    let mut out = remote;
    for s in snapshot {
        match out.iter_mut().find(|r| r.id == s.id) {
            Some(r) => r.snapshot_status = s.snapshot_status,
            None => out.push(s),
        }
    }
    out
}

/// Marks the snapshot's copy of a receipt rolled back. Returns whether the
/// snapshot held that receipt.
pub fn mark_rolled_back(snapshot_path: &Path, receipt_id: &str) -> Result<bool> {
    let snapshot = Snapshot::open(snapshot_path)?;
    if !has_receipts_table(&snapshot)? {
        return Ok(false);
    }
    let marking = || -> rusqlite::Result<usize> {
        add_receipts_column(&snapshot.conn, "rolled_back_at", "TEXT")?;
        // `recorded_at` stays the push's time: the rollback's has its own
        // column (before, it overwrote the push's). A second mark keeps the
        // first rollback's time.
        snapshot.conn.execute(
            "UPDATE _sandbox_receipts SET status = 'rolled_back', \
                    rolled_back_at = coalesce(rolled_back_at, \
                                              strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00') \
             WHERE receipt_id = ?1",
            [receipt_id],
        )
    };
    let n = marking().with_context(|| {
        format!(
            "cannot mark receipt {receipt_id} rolled back in {}",
            snapshot_path.display()
        )
    })?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, remote: Option<&str>, snap: Option<&str>) -> ReceiptLine {
        ReceiptLine {
            id: id.into(),
            at: String::new(),
            plan_name: String::new(),
            plan_hash: String::new(),
            diff_hash: String::new(),
            inserted: None,
            updated: None,
            deleted: None,
            remote_status: remote.map(Into::into),
            snapshot_status: snap.map(Into::into),
            rolled_back_at: None,
            undo_format: None,
        }
    }

    #[test]
    fn merging_keeps_one_line_per_receipt_and_postgres_decides_the_status() {
        let m = merge(
            vec![
                line("a", Some("rolled_back"), None),
                line("b", Some("applied"), None),
            ],
            vec![
                line("a", None, Some("applied")),
                line("c", None, Some("applied")),
            ],
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].status(), "rolled_back");
        assert_eq!(m[0].snapshot_status.as_deref(), Some("applied"));
        assert_eq!(m[2].status(), "applied");
    }

    #[test]
    fn totals_sum_every_table() {
        let c = r#"[{"table":"a","before":1,"after":3,"inserted":2,"updated":1},
                    {"table":"b","before":0,"after":5,"inserted":5,"updated":0}]"#;
        assert_eq!(totals(c).unwrap(), (7, 1, 0));
        let c = r#"[{"table":"a","before":9,"after":4,"inserted":2,"updated":1,"deleted":7}]"#;
        assert_eq!(totals(c).unwrap(), (2, 1, 7));
    }
}
