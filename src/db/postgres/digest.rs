//! Table digests computed by Postgres: what pull records and push compares,
//! so a drift check costs one small row per table instead of the table.
//!
//! A digest is order-independent: each row's canonical text (the record
//! output of its columns in pulled order, under the pinned session
//! settings) is hashed with md5, the hash is cut into four 32-bit lanes,
//! and the lanes are summed over the table (addition commutes, so row order
//! and physical layout do not matter; a changed, added or removed row
//! changes the sums). Pull and push run the same SQL from the same column
//! list, so equal digests mean equal content.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::{SimpleQueryMessage, Transaction};

use crate::catalog::TableMeta;
use crate::db::postgres::copy::for_each_remote_line;
use crate::types::{parse_copy_line, quote_ident};

/// One table's digest as Postgres computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub rows: u64,
    pub digest: String,
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SELECT returning `(table, rows, digest)` for one table.
pub fn digest_select(meta: &TableMeta) -> String {
    let cols = meta.qualified_columns("t");
    let lane = |i: usize| format!("sum(('x' || substr(h, {}, 8))::bit(32)::int)", i * 8 + 1);
    format!(
        "SELECT {name}::text, count(*)::int8::text, md5(concat_ws(':', count(*), {l0}, {l1}, {l2}, {l3})) \
         FROM (SELECT md5(ROW({cols})::text) AS h FROM public.{table} t) s",
        name = literal(&meta.name),
        table = quote_ident(&meta.name),
        l0 = lane(0),
        l1 = lane(1),
        l2 = lane(2),
        l3 = lane(3),
    )
}

/// Digests of several tables in ONE round trip (one statement, simple
/// protocol: no named statement, so a transaction-mode pooler is fine).
pub async fn table_digests(
    tx: &Transaction<'_>,
    metas: &[&TableMeta],
) -> Result<BTreeMap<String, TableDigest>> {
    let mut out = BTreeMap::new();
    if metas.is_empty() {
        return Ok(out);
    }
    let sql = metas
        .iter()
        .map(|m| digest_select(m))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    for msg in tx
        .simple_query(&sql)
        .await
        .map_err(|e| super::explain_query_error(&e, "Postgres cannot compute the table digests"))?
    {
        if let SimpleQueryMessage::Row(row) = msg {
            let (name, digest) = digest_of_row([row.get(0), row.get(1), row.get(2)])?;
            out.insert(name, digest);
        }
    }
    Ok(out)
}

/// One `(table, rows, digest)` row of [`digest_select`]. None of them can
/// be NULL as the SQL stands (a literal, a count, md5 of `concat_ws`, which
/// skips NULLs); if one is, the digest is not trusted, rather than read as
/// an empty name or digest that a second empty one would match.
fn digest_of_row(row: [Option<&str>; 3]) -> Result<(String, TableDigest)> {
    let [name, rows, digest] = row;
    let name = name.context("a table digest row without its table name")?;
    let rows = rows
        .and_then(|n| n.parse::<u64>().ok())
        .with_context(|| format!("the digest of table {name} has no row count"))?;
    let digest = digest.with_context(|| format!("the digest of table {name} is NULL"))?;
    Ok((
        name.to_string(),
        TableDigest {
            rows,
            digest: digest.to_string(),
        },
    ))
}

/// Short per-row fingerprints keyed by primary key: what lets a drift check
/// or a rollback name the rows that changed, not just the table.
pub type RowHashes = std::collections::HashMap<String, String>;

pub fn row_fingerprint(line: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(line)[..8])
}

/// Where a row's key sits among `meta`'s columns: its primary key, or,
/// for a table without one, every column (its rows are then known by their
/// values). A key column the table lacks is an error naming it: a key made
/// of the other columns would merge different rows.
fn key_positions(meta: &TableMeta) -> Result<Vec<usize>> {
    let key = meta.primary_key();
    if key.is_empty() {
        return Ok((0..meta.columns.len()).collect());
    }
    crate::diff::key_positions(meta, &key)
}

/// Records one row's fingerprint under its key. Two rows under one
/// primary key would leave one unnamed (the second replaces the first), so
/// that is an error naming table and key; for a table without a primary
/// key the key is the whole row, and a repeated row changes nothing here
/// (the table digest counts it).
fn insert_row(
    out: &mut RowHashes,
    meta: &TableMeta,
    key: String,
    fingerprint: String,
) -> Result<()> {
    if out.insert(key.clone(), fingerprint).is_some() && !meta.primary_key().is_empty() {
        anyhow::bail!(
            "table {} holds two rows with primary key {key}: its rows cannot be named by key",
            meta.name
        );
    }
    Ok(())
}

fn key_of(values: &[Option<String>], positions: &[usize]) -> String {
    crate::types::row_key(positions.iter().map(|i| values[*i].as_deref()))
}

/// Row fingerprints of a table at Postgres.
pub async fn remote_row_hashes(tx: &Transaction<'_>, meta: &TableMeta) -> Result<RowHashes> {
    let positions = key_positions(meta)?;
    let mut out = RowHashes::new();
    for_each_remote_line(tx, meta, |line| {
        let values = parse_copy_line(&line[..line.len() - 1]).map_err(anyhow::Error::msg)?;
        insert_row(
            &mut out,
            meta,
            key_of(&values, &positions),
            row_fingerprint(line),
        )
    })
    .await?;
    Ok(out)
}

/// The key a row is known by in [`RowHashes`]: [`crate::types::row_key`].
pub fn row_key(meta: &TableMeta, values: &[Option<String>]) -> Result<String> {
    Ok(key_of(values, &key_positions(meta)?))
}

/// Row fingerprints of a table (or staged copy) in the snapshot file.
pub fn local_row_hashes(
    snapshot: &crate::db::sqlite::Snapshot,
    sqlite_table: &str,
    meta: &TableMeta,
) -> Result<RowHashes> {
    local_row_hashes_with(snapshot, sqlite_table, meta, &|_| Ok(()))
}

/// Row fingerprints of a table in the snapshot file, each row first
/// changed by `adjust` (values Postgres chose, say).
pub fn local_row_hashes_with(
    snapshot: &crate::db::sqlite::Snapshot,
    sqlite_table: &str,
    meta: &TableMeta,
    adjust: &dyn Fn(&mut Vec<Option<String>>) -> Result<()>,
) -> Result<RowHashes> {
    let positions = key_positions(meta)?;
    let mut out = RowHashes::new();
    snapshot.for_each_row(sqlite_table, meta, |mut values| {
        adjust(&mut values)?;
        let line = crate::types::copy_text_line(&values);
        insert_row(
            &mut out,
            meta,
            key_of(&values, &positions),
            row_fingerprint(line.as_bytes()),
        )
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

/// A row whose values on Postgres differ from the rehearsed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMismatch {
    /// [`row_key`] of the row.
    pub key: String,
    /// `(column, rehearsed, Postgres)` for each column that differs; empty
    /// when the row is on one side only.
    pub columns: Vec<(String, Option<String>, Option<String>)>,
    pub rehearsed: bool,
    pub on_postgres: bool,
}

/// The rows of a table at Postgres that differ from `expected` (its
/// rehearsed rows by [`row_key`], in `meta` column order), column by
/// column, in key order. Reads the whole table: only for naming what a
/// failed comparison found.
pub async fn mismatched_rows(
    tx: &Transaction<'_>,
    meta: &TableMeta,
    mut expected: std::collections::HashMap<String, Vec<Option<String>>>,
) -> Result<Vec<RowMismatch>> {
    let positions = key_positions(meta)?;
    let mut out = Vec::new();
    for_each_remote_line(tx, meta, |line| {
        let values = parse_copy_line(&line[..line.len() - 1]).map_err(anyhow::Error::msg)?;
        let key = key_of(&values, &positions);
        match expected.remove(&key) {
            Some(rehearsed) if rehearsed == values => {}
            Some(rehearsed) => out.push(RowMismatch {
                key,
                columns: meta
                    .columns
                    .iter()
                    .zip(rehearsed.into_iter().zip(values))
                    .filter(|(_, (r, p))| r != p)
                    .map(|(c, (r, p))| (c.name.clone(), r, p))
                    .collect(),
                rehearsed: true,
                on_postgres: true,
            }),
            None => out.push(RowMismatch {
                key,
                columns: vec![],
                rehearsed: false,
                on_postgres: true,
            }),
        }
        Ok(())
    })
    .await?;
    out.extend(expected.into_keys().map(|key| RowMismatch {
        key,
        columns: vec![],
        rehearsed: true,
        on_postgres: false,
    }));
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnMeta, ConstraintMeta, TableRole};

    #[test]
    fn the_digest_sql_names_every_column_in_pulled_order_and_quotes_names() {
        let col = |name: &str, ordinal| ColumnMeta {
            name: name.into(),
            ordinal,
            pg_type: "text".into(),
            ..Default::default()
        };
        let meta = TableMeta {
            name: "it's".into(),
            role: TableRole::Protected,
            columns: vec![col("b", 1), col("A", 2)],
            constraints: vec![],
        };
        let sql = digest_select(&meta);
        assert!(sql.contains("ROW(t.\"b\", t.\"A\")"), "{sql}");
        assert!(sql.starts_with("SELECT 'it''s'::text"), "{sql}");
        assert!(sql.contains("FROM public.\"it's\" t"), "{sql}");
    }

    fn keyed(constraints: Vec<ConstraintMeta>) -> TableMeta {
        TableMeta {
            name: "t".into(),
            role: TableRole::Protected,
            columns: ["id", "v"]
                .iter()
                .zip(1..)
                .map(|(n, ordinal)| ColumnMeta {
                    name: n.to_string(),
                    ordinal,
                    pg_type: "text".into(),
                    ..Default::default()
                })
                .collect(),
            constraints,
        }
    }

    fn pkey(columns: &[&str]) -> ConstraintMeta {
        ConstraintMeta::new(
            "t_pkey".into(),
            "p",
            columns.iter().map(|c| c.to_string()).collect(),
            String::new(),
        )
    }

    #[test]
    fn a_digest_row_with_a_null_is_an_error_naming_the_table() {
        let ok = digest_of_row([Some("t"), Some("3"), Some("abc")]).unwrap();
        assert_eq!(ok.0, "t");
        assert_eq!(ok.1.rows, 3);
        let err = |row| format!("{:#}", digest_of_row(row).unwrap_err());
        assert!(err([None, Some("3"), Some("abc")]).contains("without its table name"));
        assert!(err([Some("t"), None, Some("abc")]).contains("table t has no row count"));
        assert!(err([Some("t"), Some("x"), Some("abc")]).contains("table t has no row count"));
        assert!(err([Some("t"), Some("3"), None]).contains("digest of table t is NULL"));
    }

    #[test]
    fn a_key_column_the_table_lacks_is_an_error_not_a_shorter_key() {
        let meta = keyed(vec![pkey(&["id", "gone"])]);
        let e = format!("{:#}", key_positions(&meta).unwrap_err());
        assert!(e.contains("table t: primary key column gone"), "{e}");
        let row = [Some("1".to_string()), Some("a".to_string())];
        assert!(row_key(&meta, &row).is_err());
    }

    #[test]
    fn rows_of_a_table_without_a_primary_key_are_known_by_their_values() {
        let meta = keyed(vec![]);
        assert_eq!(key_positions(&meta).unwrap(), vec![0, 1]);
        let (a, b) = (
            [Some("1".to_string()), Some("a".to_string())],
            [Some("1".to_string()), Some("b".to_string())],
        );
        assert_ne!(row_key(&meta, &a).unwrap(), row_key(&meta, &b).unwrap());
        let mut out = RowHashes::new();
        insert_row(&mut out, &meta, row_key(&meta, &a).unwrap(), "fa".into()).unwrap();
        insert_row(&mut out, &meta, row_key(&meta, &b).unwrap(), "fb".into()).unwrap();
        // A repeated row is the same key and the same fingerprint.
        insert_row(&mut out, &meta, row_key(&meta, &a).unwrap(), "fa".into()).unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn two_rows_under_one_primary_key_are_an_error_naming_table_and_key() {
        let meta = keyed(vec![pkey(&["id"])]);
        let mut out = RowHashes::new();
        insert_row(&mut out, &meta, "k1".into(), "f1".into()).unwrap();
        let e = insert_row(&mut out, &meta, "k1".into(), "f2".into()).unwrap_err();
        assert!(
            e.to_string()
                .contains("table t holds two rows with primary key k1"),
            "{e}"
        );
    }
}
