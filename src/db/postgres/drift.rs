//! Drift: whether the remote is still in the state the snapshot was pulled
//! from, compared by the digests Postgres computes (row by row only where
//! a table differs, to name the rows).

use anyhow::Result;
use tokio_postgres::Transaction;

use crate::catalog::{ColumnMeta, TableMeta};
use crate::db::postgres::catalog::column_definitions;
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
    let remote = column_definitions(tx, &names).await?;
    let collations = snapshot.records_collations()?;
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
        let definitions = now;
        let now: Vec<String> = now
            .iter()
            .map(|c| format!("{} {}", c.name, c.pg_type))
            .collect();
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
        // Same columns and types: what the rehearsal took from the pulled
        // catalog around them (the default it staged and the push writes,
        // NOT NULL, identity, generated, collation, domain, enum labels)
        // must hold too. The content is still compared below.
        let changed = definition_changes(name, &t.meta.columns, definitions, collations);
        if !changed.is_empty() {
            let mut c = Check::equal(
                "drift",
                &format!("{name} {DEFINITIONS}"),
                CheckKind::Integrity,
                "as pulled".into(),
                format!("{} changed", changed.len()),
            );
            c.ok = false;
            c.row_count = changed.len() as u64;
            c.rows = changed;
            checks.push(c);
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

/// The name of the check that a table's column definitions are as pulled
/// (after the table's name).
const DEFINITIONS: &str = "column definitions unchanged since pull";

/// A failed drift check as a refusal names it: its name, and for changed
/// column definitions each change (column, at pull, now), which is the
/// whole story; changed rows are listed with the check.
pub fn drift_summary(c: &Check) -> String {
    if c.name.ends_with(DEFINITIONS) {
        format!("{}: {}", c.name, c.rows.join("; "))
    } else {
        c.name.clone()
    }
}

/// What the rehearsal relied on about a column besides its name and type,
/// each as `(what, value)` for a person. `collations`: whether the
/// snapshot recorded them (a file pulled before did not, and says nothing
/// about them).
fn definition(c: &ColumnMeta, collations: bool) -> Vec<(&'static str, String)> {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let mut out = vec![
        ("default", or_none(&c.default)),
        ("NOT NULL", if c.not_null { "yes" } else { "no" }.into()),
        (
            "identity",
            c.identity.map_or("none", |i| i.as_str()).to_string(),
        ),
        ("generated expression", or_none(&c.generated)),
        (
            "domain",
            c.domain.as_ref().map_or_else(
                || "none".into(),
                |d| {
                    format!(
                        "{} over {}{}{}",
                        d.name,
                        d.base_type,
                        if d.not_null { " NOT NULL" } else { "" },
                        d.checks.iter().map(|k| format!(" {k}")).collect::<String>()
                    )
                },
            ),
        ),
        (
            "enum labels",
            c.enum_labels
                .as_ref()
                .map_or_else(|| "none".into(), |l| l.join(", ")),
        ),
    ];
    if collations {
        out.push((
            "collation",
            c.collation
                .as_ref()
                .map_or_else(|| "the database default".into(), |k| k.name.clone()),
        ));
    }
    out
}

/// Each difference between the pulled columns of `table` and Postgres's
/// now (same names and types, in order): `table.column: what was X at
/// pull, is Y now`.
fn definition_changes(
    table: &str,
    pulled: &[ColumnMeta],
    now: &[ColumnMeta],
    collations: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (then, now) in pulled.iter().zip(now) {
        for ((what, was), (_, is)) in definition(then, collations)
            .into_iter()
            .zip(definition(now, collations))
        {
            if was != is {
                out.push(format!(
                    "{table}.{}: {what} was {was} at pull, is {is} now",
                    then.name
                ));
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            ordinal: 1,
            pg_type: "integer".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_changed_definition_is_named_with_column_then_and_now() {
        let mut then = column("priority");
        then.default = Some("5".into());
        let mut now = then.clone();
        now.default = Some("7".into());
        now.not_null = true;
        now.collation = Some(crate::catalog::Collation {
            name: "C".into(),
            deterministic: true,
        });
        assert_eq!(
            definition_changes("t", &[then.clone()], &[now.clone()], true),
            vec![
                "t.priority: default was 5 at pull, is 7 now",
                "t.priority: NOT NULL was no at pull, is yes now",
                "t.priority: collation was the database default at pull, is C now",
            ]
        );
        // A snapshot that did not record collations says nothing of them.
        assert_eq!(definition_changes("t", &[then], &[now], false).len(), 2);
        let same = [column("a")];
        assert!(definition_changes("t", &same, &same, true).is_empty());
    }
}
