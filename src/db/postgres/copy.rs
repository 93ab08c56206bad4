//! COPY out of Postgres: the canonical row text of a table (the same
//! SELECT for pull, drift and read-backs) and the one line splitter every
//! COPY reader uses.

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use tokio_postgres::Transaction;

use crate::catalog::TableMeta;
use crate::db::postgres::explain_query_error;
use crate::db::postgres::rowset::{key_join, RowSet};
use crate::types::{copy_text_line, find_byte, quote_ident, RowHash, TableChecksum};

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

/// Cuts COPY data into lines (each with its newline) across chunks: one
/// chunk is one row in practice, but the protocol does not promise it.
#[derive(Default)]
pub struct LineSplitter {
    /// The start of a row whose end is in a later chunk.
    pub partial: Vec<u8>,
}

impl LineSplitter {
    pub fn split<E>(
        &mut self,
        chunk: &[u8],
        mut line: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let Some(end) = find_byte(rest, b'\n') else {
                self.partial.extend_from_slice(rest);
                return Ok(());
            };
            self.partial.extend_from_slice(&rest[..=end]);
            line(&self.partial)?;
            self.partial.clear();
            rest = &rest[end + 1..];
        }
        while let Some(end) = find_byte(rest, b'\n') {
            line(&rest[..=end])?;
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// Streams a table's canonical COPY lines (each with its newline) from
/// Postgres into `f`: the one reader behind drift checks and row naming.
pub async fn for_each_remote_line(
    tx: &Transaction<'_>,
    meta: &TableMeta,
    f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for_each_copy_line(tx, &copy_out_sql(meta), meta, f).await
}

/// [`for_each_remote_line`] over only the rows whose key (the `key`
/// columns, of `key_types`: spliced into SQL as casts, checked by the
/// caller) is one of `keys`: what crosses the network is those rows, not
/// the table. The keys travel inside the statement ([`RowSet`]: COPY takes
/// no parameters, and a temporary table is DDL an event trigger sees).
pub async fn for_each_remote_line_keyed(
    tx: &Transaction<'_>,
    meta: &TableMeta,
    key: &[String],
    key_types: &[String],
    keys: &[Vec<Option<String>>],
    f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let set_columns: Vec<String> = key.iter().map(|k| format!("k_{k}")).collect();
    let cols = meta.qualified_columns("t");
    let sql = format!(
        "COPY (SELECT {cols} FROM public.{} t WHERE EXISTS (SELECT 1 FROM {} WHERE {})) TO STDOUT",
        quote_ident(&meta.name),
        RowSet::new(&set_columns, keys).from_item("u"),
        key_join(key, key_types, "t", "u")
    );
    for_each_copy_line(tx, &sql, meta, f).await
}

/// Streams the lines of one `COPY … TO STDOUT` of `meta`'s columns.
async fn for_each_copy_line(
    tx: &Transaction<'_>,
    sql: &str,
    meta: &TableMeta,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let stream = tx.copy_out(sql).await.map_err(|e| {
        if let Some(gone) = column_gone(&e) {
            return gone_inside_the_transaction(&meta.name, &gone);
        }
        explain_query_error(&e, &format!("cannot read table {}", meta.name))
    })?;
    pin_mut!(stream);
    let mut lines = LineSplitter::default();
    while let Some(chunk) = stream.next().await {
        lines.split(&chunk?, &mut f)?;
    }
    if !lines.partial.is_empty() {
        anyhow::bail!("table {}: COPY ended in the middle of a row", meta.name);
    }
    Ok(())
}

/// Postgres's message when a column the statement names does not exist
/// (SQLSTATE 42703).
fn column_gone(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error()
        .filter(|d| d.code().code() == "42703")
        .map(|d| d.message().to_string())
}

/// A column read from the catalog in this very transaction, under locks no
/// other session's ALTER TABLE gets past, is gone: something the
/// transaction ran dropped it — in practice an app's event trigger firing on
/// its DDL. A refusal naming the table and column (exit 1), not a raw
/// "column does not exist" as an environment error (R3: exit 2, nothing
/// named); the transaction is rolled back, so nothing was written.
fn gone_inside_the_transaction(table: &str, message: &str) -> anyhow::Error {
    crate::error::refused(
        format!(
            "table {table} lost a column inside this transaction ({message}): it was there when \
             the transaction read the catalog, and other sessions' ALTER TABLE wait for its \
             locks, so DDL run in it dropped the column: an event trigger firing on that DDL \
             (`SELECT evtname, evtevent, evttags FROM pg_event_trigger WHERE evtenabled <> 'D'` \
             lists them). Nothing was written"
        ),
        vec![],
    )
}

/// Reads one table's canonical checksum straight from Postgres (drift check).
pub async fn remote_checksum(tx: &Transaction<'_>, meta: &TableMeta) -> Result<TableChecksum> {
    remote_checksum_with(tx, meta, RowHash::default()).await
}

/// [`remote_checksum`] hashing rows with `hash` (an older receipt's).
pub async fn remote_checksum_with(
    tx: &Transaction<'_>,
    meta: &TableMeta,
    hash: RowHash,
) -> Result<TableChecksum> {
    let mut checksum = TableChecksum::with(hash);
    for_each_remote_line(tx, meta, |line| {
        checksum.add_line(line);
        Ok(())
    })
    .await?;
    Ok(checksum)
}

/// Streams rows into a table with COPY (no row-at-a-time INSERT).
pub async fn copy_rows(
    tx: &Transaction<'_>,
    table: &str,
    columns: &[String],
    rows: &[Vec<Option<String>>],
) -> Result<u64> {
    copy_rows_after(tx, "", table, columns, rows).await
}

/// [`copy_rows`] after `setup` (SQL creating the table it fills, say),
/// sent together with the COPY's prepare: one round trip fewer. Postgres
/// parses a COPY without looking its table up (a utility statement is
/// analysed when it runs), so `setup` may create it. The prepared statement
/// is named and lives only inside this transaction, and is closed before
/// anything after it is sent: safe behind a transaction-mode pooler.
pub async fn copy_rows_after(
    tx: &Transaction<'_>,
    setup: &str,
    table: &str,
    columns: &[String],
    rows: &[Vec<Option<String>>],
) -> Result<u64> {
    let cols = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let copy = format!("COPY {table} ({cols}) FROM STDIN");
    let statement = if setup.is_empty() {
        tx.prepare(&copy).await
    } else {
        let (set_up, prepared) = futures_util::join!(tx.batch_execute(setup), tx.prepare(&copy));
        set_up?;
        prepared
    }
    .with_context(|| format!("cannot start COPY into {table}"))?;
    let sink = tx
        .copy_in(&statement)
        .await
        .with_context(|| format!("cannot start COPY into {table}"))?;
    futures_util::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 16);
    for r in rows {
        buf.push_str(&copy_text_line(r));
        if buf.len() > (1 << 16) {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
        }
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf)).await?;
    }
    sink.finish()
        .await
        .with_context(|| format!("COPY into {table} failed"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::copy_text_line;

    /// Rows that exercise COPY's escapes: NULL, empty, newline, tab,
    /// backslash, non-ASCII and long values (shared with the pull's tests).
    pub(crate) fn rows() -> Vec<Vec<Option<String>>> {
        (0..300)
            .map(|i| {
                vec![
                    Some(i.to_string()),
                    match i % 5 {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some(format!("line\none\ttab\\slash {i} é")),
                        _ => Some("x".repeat(i * 7)),
                    },
                    Some(if i % 2 == 0 { "t" } else { "f" }.into()),
                ]
            })
            .collect()
    }

    proptest::proptest! {
        /// Rows come out whole and in order wherever the chunks are cut.
        #[test]
        fn lines_survive_any_chunking(cuts in proptest::collection::vec(0usize..4000, 0..40)) {
            let data: Vec<u8> = rows().iter().flat_map(|r| copy_text_line(r).into_bytes()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c * data.len() / 4000).collect();
            cuts.sort();
            let mut splitter = LineSplitter::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                splitter
                    .split(&data[from..cut], |l| {
                        got.push(l.to_vec());
                        Ok::<(), std::convert::Infallible>(())
                    })
                    .unwrap();
                from = cut;
            }
            proptest::prop_assert!(splitter.partial.is_empty());
            let want: Vec<Vec<u8>> = rows().iter().map(|r| copy_text_line(r).into_bytes()).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
