//! Catalog reads push and rollback need (pull's full catalog reader is in
//! `ops/pull.rs` for now).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Transaction;

/// `(column, format_type)` of each named table of schema `public` that
/// exists, in column order: ONE round trip for any number of tables.
pub async fn columns_of(
    tx: &Transaction<'_>,
    tables: &[String],
) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let rows = tx
        .query_typed(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE c.relname::text = ANY($1) AND c.relkind IN ('r', 'p') \
             ORDER BY c.relname, a.attnum",
            &[(&tables, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot read the columns of the tables the plan depends on")?;
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in &rows {
        out.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
    }
    Ok(out)
}
