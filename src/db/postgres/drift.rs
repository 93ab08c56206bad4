//! Drift: whether the remote is still in the state the snapshot was pulled
//! from, compared by the digests Postgres computes (row by row only where
//! a table differs, to name the rows).

use anyhow::Result;
use tokio_postgres::Transaction;

use crate::catalog::TableMeta;
use crate::db::postgres::catalog::columns_of;
use crate::db::postgres::copy::remote_checksum;
use crate::db::postgres::digest::{
    describe_row_changes, local_row_hashes, remote_row_hashes, table_digests,
};
use crate::db::sqlite::Snapshot;
use crate::plan::checks::{Check, CheckKind};
use crate::types::short_hash as short;

/// Compares the remote with the snapshot on every pulled table but the
/// app's (`app`: those the plan neither reads nor writes): columns, then content by the
/// digests Postgres computes, so what crosses the network is one row per
/// table. Only a table whose digest differs is read row by row, to name
/// the rows that changed. Returns one check per table.
pub async fn drift_checks(
    tx: &Transaction<'_>,
    snapshot: &Snapshot,
    app: &[String],
) -> Result<Vec<Check>> {
    let checked: Vec<&crate::db::sqlite::SnapshotTable> = snapshot
        .tables
        .iter()
        .filter(|t| !app.contains(&t.meta.name))
        .collect();
    let names: Vec<String> = checked.iter().map(|t| t.meta.name.clone()).collect();
    let recorded = snapshot.server_digests()?;
    let remote = columns_of(tx, &names).await?;
    let mut checks = Vec::new();
    let mut by_digest: Vec<&crate::db::sqlite::SnapshotTable> = Vec::new();
    let mut read_back: Vec<&crate::db::sqlite::SnapshotTable> = Vec::new();
    for t in checked {
        let name = &t.meta.name;
        let Some(now) = remote.get(name) else {
            checks.push(Check::equal(
                "drift",
                &format!("{name} still exists"),
                CheckKind::Integrity,
                "present".into(),
                "missing".into(),
            ));
            continue;
        };
        let now: Vec<String> = now.iter().map(|(n, ty)| format!("{n} {ty}")).collect();
        let pulled: Vec<String> = t
            .meta
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.pg_type))
            .collect();
        if now != pulled {
            let added: Vec<String> = now
                .iter()
                .filter(|c| !pulled.contains(c))
                .cloned()
                .collect();
            let removed: Vec<String> = pulled
                .iter()
                .filter(|c| !now.contains(c))
                .cloned()
                .collect();
            let mut c = Check::equal(
                "drift",
                &format!("{name} columns unchanged"),
                CheckKind::Integrity,
                format!("{} columns", pulled.len()),
                format!("{} columns", now.len()),
            );
            c.ok = false;
            c.rows = added
                .iter()
                .map(|a| format!("added: {a}"))
                .chain(removed.iter().map(|r| format!("gone or changed: {r}")))
                .collect();
            c.row_count = c.rows.len() as u64;
            checks.push(c);
            continue;
        }
        if recorded.contains_key(name) {
            by_digest.push(t);
        } else {
            read_back.push(t);
        }
    }
    let metas: Vec<&TableMeta> = by_digest.iter().map(|t| &t.meta).collect();
    let now = table_digests(tx, &metas).await?;
    for t in by_digest {
        let name = &t.meta.name;
        let (Some(then), Some(now)) = (recorded.get(name), now.get(name)) else {
            anyhow::bail!("Postgres returned no digest for {name}");
        };
        let mut c = Check::equal(
            "drift",
            &format!("{name} unchanged since pull"),
            CheckKind::Integrity,
            format!("{} rows, digest {}", then.rows, short(&then.digest)),
            format!("{} rows, digest {}", now.rows, short(&now.digest)),
        );
        c.ok = then == now;
        if !c.ok {
            if now.rows == then.rows {
                c.actual.push_str(" (same count, content differs)");
            }
            name_changed_rows(tx, snapshot, &t.meta, &mut c).await?;
        }
        checks.push(c);
    }
    // A snapshot pulled before digests were recorded: the table is read
    // back and checksummed here, as the check's name says.
    for t in read_back {
        let name = &t.meta.name;
        let sum = remote_checksum(tx, &t.meta).await?;
        let mut c = Check::equal(
            "drift",
            &format!("{name} unchanged since pull (read back: no server digest in the snapshot)"),
            CheckKind::Integrity,
            format!("{} rows, {}", t.rows, short(&t.checksum)),
            format!("{} rows, {}", sum.rows(), short(&sum.hex())),
        );
        c.ok = sum.hex() == t.checksum;
        if !c.ok {
            if sum.rows() == t.rows {
                c.actual.push_str(" (same count, content differs)");
            }
            name_changed_rows(tx, snapshot, &t.meta, &mut c).await?;
        }
        checks.push(c);
    }
    Ok(checks)
}

/// Names the rows of a drifted table: per-row fingerprints of the remote
/// table against the snapshot's (only on drift, so the common path ships
/// no rows).
async fn name_changed_rows(
    tx: &Transaction<'_>,
    snapshot: &Snapshot,
    meta: &TableMeta,
    c: &mut Check,
) -> Result<()> {
    let theirs = remote_row_hashes(tx, meta).await?;
    let ours = local_row_hashes(snapshot, &meta.name, meta)?;
    c.rows = describe_row_changes(&ours, &theirs, 20);
    c.row_count = c.rows.len() as u64;
    Ok(())
}
