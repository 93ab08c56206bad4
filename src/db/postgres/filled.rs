//! What Postgres chose for the columns a push's new rows leave to it
//! (defaults, identities, generated columns), read back by key so the
//! receipt and the after-state check know them.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Transaction;

use crate::db::postgres::apply::{cast_type, key_positions_of};
use crate::db::postgres::rowset::RowSet;
use crate::db::postgres::search_path::TypeSpellings;
use crate::db::triggers::TriggerReport;
use crate::diff::TableDiff;
use crate::error::refused as refuse;
use crate::receipt::FilledValues;
use crate::types::quote_ident;

/// Reads back, by key, what Postgres put in the columns the new rows of
/// `t` left to it, and in the columns a BEFORE row trigger that fires for
/// the push may set and the plan sets in none of the rows it writes (a
/// `tsvector_update_trigger`, `NEW.slug := lower(NEW.name)`): Postgres's
/// values there are part of the state the push leaves, as a default's are.
/// A column the plan sets stays the plan's, and a trigger changing it is
/// still a mismatch the push refuses. And, in every row, the columns the
/// plan adds whose default only Postgres computes
/// ([`TableDiff::added_filled`]). With a trigger on the table that only
/// stamps updated_at (on every UPDATE), every new row's updated_at too,
/// however it was written: an app saving one of them, even changing
/// nothing, moves it, and the rollback then names the change with the value
/// the push left (the receipt keeps only a fingerprint of the rest of the
/// row); [`FilledValues::apply`] does not put it into rows that set it.
/// None when there is nothing to read.
pub async fn read_filled(
    tx: &Transaction<'_>,
    t: &TableDiff,
    triggers: &[TriggerReport],
) -> Result<Option<FilledValues>> {
    let inserted = read_filled_written(tx, t, triggers).await?;
    if t.added_filled.is_empty() {
        return Ok(inserted);
    }
    // Every row of the table then, with the written rows' columns too:
    // what Postgres holds in a column it fills is its value for any row.
    let (mut columns, by_trigger) = inserted
        .map(|f| (f.columns, f.by_trigger))
        .unwrap_or_default();
    for c in &t.added_filled {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    let mut all = read_every_row(tx, t, columns).await?;
    all.by_trigger = by_trigger;
    Ok(Some(all))
}

/// Every row's values of `columns`, among them those the plan adds whose
/// default only Postgres computes: `ADD COLUMN` gave each row there its
/// own (a volatile default) or the statement's (`now()`), which the
/// rehearsal could not know. Read by key, the whole table.
async fn read_every_row(
    tx: &Transaction<'_>,
    t: &TableDiff,
    columns: Vec<String>,
) -> Result<FilledValues> {
    let key_idx = key_positions_of(t)?;
    let select = key_idx
        .iter()
        .map(|i| &t.columns[*i].name)
        .chain(columns.iter())
        .map(|c| format!("t.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "COPY (SELECT {select} FROM public.{} t) TO STDOUT",
        quote_ident(&t.table)
    );
    let rows = read_by_key(tx, &sql, key_idx.len(), || {
        format!(
            "cannot read back the values Postgres gave {}'s added columns",
            t.table
        )
    })
    .await?;
    Ok(FilledValues {
        table: t.table.clone(),
        columns,
        rows,
        by_trigger: Default::default(),
        by_trigger_before: Default::default(),
    })
}

/// The written rows' part of [`read_filled`].
async fn read_filled_written(
    tx: &Transaction<'_>,
    t: &TableDiff,
    triggers: &[TriggerReport],
) -> Result<Option<FilledValues>> {
    let mut columns: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    let key_idx = key_positions_of(t)?;
    let stamped = triggers
        .iter()
        .any(|tr| tr.table == t.table && tr.stamps_updated_at);
    let stamp = t
        .columns
        .iter()
        .position(|c| c.name == "updated_at" && c.generated.is_none())
        .filter(|i| stamped && !key_idx.contains(i));
    let mut keys: Vec<Vec<Option<String>>> = Vec::new();
    for row in &t.inserts {
        let mut left = t.left_to_postgres(row);
        let keep_stamp = stamp.filter(|i| !left.contains(i));
        if left.is_empty() && keep_stamp.is_none() {
            continue;
        }
        if let Some(k) = key_idx.iter().find(|k| left.contains(k)) {
            return Err(refuse(
                format!(
                    "{}: new rows leave the primary key column {} to Postgres; the plan must set \
                     it so the receipt can name each row. Nothing was written",
                    t.table, t.columns[*k].name
                ),
                vec![],
            ));
        }
        left.extend(keep_stamp);
        columns.extend(left);
        keys.push(key_idx.iter().map(|i| row[*i].clone()).collect());
    }
    // An updated row's generated columns are Postgres's to recompute.
    let generated: Vec<usize> = t
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.generated.is_some())
        .map(|(i, _)| i)
        .collect();
    if !generated.is_empty() && !t.updates.is_empty() {
        columns.extend(generated);
        for u in &t.updates {
            keys.push(u.key.iter().map(|k| Some(k.clone())).collect());
        }
    }
    let fires = |event: &str| {
        triggers
            .iter()
            .any(|tr| tr.rewrites_rows_of(&t.table) && tr.events.iter().any(|e| e == event))
    };
    let on_insert = fires("INSERT") && !t.inserts.is_empty();
    let on_update = fires("UPDATE") && !t.updates.is_empty();
    let by_trigger: Vec<usize> = match on_insert || on_update {
        false => vec![],
        true => (0..t.columns.len())
            .filter(|i| {
                let c = &t.columns[*i];
                !key_idx.contains(i)
                    && c.generated.is_none()
                    && t.inserts.iter().all(|r| r[*i].is_none())
                    && !t
                        .updates
                        .iter()
                        .any(|u| u.changes.iter().any(|ch| ch.column == c.name))
            })
            .collect(),
    };
    if !by_trigger.is_empty() {
        columns.extend(by_trigger.iter().copied());
        if on_insert {
            keys.extend(
                t.inserts
                    .iter()
                    .map(|r| key_idx.iter().map(|i| r[*i].clone()).collect()),
            );
        }
        if on_update {
            keys.extend(
                t.updates
                    .iter()
                    .map(|u| u.key.iter().map(|k| Some(k.clone())).collect()),
            );
        }
    }
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Ok(None);
    }
    let set_cols: Vec<String> = (0..key_idx.len()).map(|i| format!("k_{i}")).collect();
    let keys_set = RowSet::new(&set_cols, &keys);
    let select = key_idx
        .iter()
        .chain(columns.iter())
        .map(|i| format!("t.{}", quote_ident(&t.columns[*i].name)))
        .collect::<Vec<_>>()
        .join(", ");
    let join = key_idx
        .iter()
        .zip(&set_cols)
        .map(|(i, k)| {
            let c = &t.columns[*i];
            Ok(format!(
                "t.{} = u.{}::{}",
                quote_ident(&c.name),
                quote_ident(k),
                cast_type(&TypeSpellings::pinned(), t, c)?
            ))
        })
        .collect::<Result<Vec<_>>>()?
        .join(" AND ");
    let sql = format!(
        "COPY (SELECT {select} FROM public.{} t JOIN {} ON {join}) TO STDOUT",
        quote_ident(&t.table),
        keys_set.from_item("u")
    );
    let rows = read_by_key(tx, &sql, key_idx.len(), || {
        format!("cannot read back the values Postgres chose in {}", t.table)
    })
    .await?;
    if rows.len() != keys.len() {
        return Err(refuse(
            format!(
                "{}: {} new rows were read back after COPY, expected {}",
                t.table,
                rows.len(),
                keys.len()
            ),
            vec![],
        ));
    }
    Ok(Some(FilledValues {
        table: t.table.clone(),
        columns: columns.iter().map(|i| t.columns[*i].name.clone()).collect(),
        rows,
        by_trigger: by_trigger
            .iter()
            .map(|i| t.columns[*i].name.clone())
            .collect(),
        by_trigger_before: BTreeMap::new(),
    }))
}

/// The rows of `sql`, a `COPY … TO STDOUT` whose first `key_len` columns
/// are the key: each row's other values by [`filled_key`].
async fn read_by_key(
    tx: &Transaction<'_>,
    sql: &str,
    key_len: usize,
    what: impl FnOnce() -> String,
) -> Result<BTreeMap<String, Vec<Option<String>>>> {
    let stream = tx.copy_out(sql).await.with_context(what)?;
    futures_util::pin_mut!(stream);
    let mut data: Vec<u8> = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        data.extend_from_slice(&chunk?);
    }
    let mut rows = BTreeMap::new();
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut values = crate::types::parse_copy_line(line).map_err(anyhow::Error::msg)?;
        let rest = values.split_off(key_len);
        rows.insert(filled_key(&values), rest);
    }
    Ok(rows)
}

/// The key a row's Postgres-chosen values are kept under in
/// [`FilledValues`]: the row-key encoding [`FilledValues::apply`] looks
/// them up by (a key holding `/` or `\` joined raw would not be found, and
/// the row would differ from its rehearsed form).
fn filled_key(key_values: &[Option<String>]) -> String {
    crate::types::row_key(key_values.iter().map(|v| v.as_deref()))
}

#[cfg(test)]
mod filled_key_tests {
    use super::filled_key;
    use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
    use crate::receipt::FilledValues;

    #[test]
    fn values_read_back_are_found_for_a_key_holding_a_slash() {
        let col = |name: &str, default: Option<&str>| ColumnMeta {
            name: name.into(),
            pg_type: "text".into(),
            default: default.map(str::to_string),
            ..Default::default()
        };
        let meta = TableMeta {
            name: "pages".into(),
            role: TableRole::Protected,
            columns: vec![col("path", None), col("created_at", Some("now()"))],
            constraints: vec![ConstraintMeta::new(
                "pages_pkey".to_string(),
                "p",
                vec!["path".into()],
                String::new(),
            )],
        };
        let key = vec![Some("docs/intro".to_string())];
        let filled = FilledValues {
            table: "pages".into(),
            columns: vec!["created_at".into()],
            rows: [(
                filled_key(&key),
                vec![Some("2026-01-01 00:00:00+00".to_string())],
            )]
            .into_iter()
            .collect(),
            by_trigger: vec![],
            by_trigger_before: Default::default(),
        };
        let mut row = vec![Some("docs/intro".to_string()), None];
        filled.apply(&meta, &mut row).expect("the row has its key");
        assert_eq!(row[1].as_deref(), Some("2026-01-01 00:00:00+00"));
    }
}
