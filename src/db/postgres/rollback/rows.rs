//! The rows a receipt names, as the rollback compares them: what the push
//! wrote (to find what changed since) and what the undo writes back (to
//! read it again after).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::added_columns_of;
use crate::catalog::{ColumnMeta, TableMeta, TableRole};
use crate::plan::checks::{Check, CheckKind};
use crate::receipt::{Undo, UndoTable};

/// A table as the receipt recorded it; the key lets changes be named by row.
pub(super) fn meta_of(name: &str, columns: Vec<ColumnMeta>, key: &[String]) -> TableMeta {
    let constraints = vec![crate::catalog::ConstraintMeta::new(
        format!("{name}_pkey"),
        "p",
        key.to_vec(),
        String::new(),
    )];
    TableMeta {
        name: name.to_string(),
        role: TableRole::Protected,
        columns,
        constraints,
    }
}

/// What the undo writes back into one existing table, to be read again:
/// the table's columns after the undo (the push's added columns are gone)
/// and, per row key, each written-back column's position in them and the
/// value the receipt recorded before the push.
pub(super) struct RestoredValues {
    pub(super) columns: Vec<ColumnMeta>,
    pub(super) expected: BTreeMap<String, Vec<(usize, Option<String>)>>,
    /// The key values of each row in `expected`: what is read back.
    pub(super) key_values: Vec<Vec<Option<String>>>,
}

impl RestoredValues {
    fn position(&self, column: &str, table: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c.name == column)
            .with_context(|| {
                format!("the receipt names {table}.{column}, which it does not list among the table's columns")
            })
    }
}

/// The before-images of the rows the push deleted from `t` (whole) and
/// the old values of the columns it updated, keyed as the table reads.
pub(super) fn restored_values(undo: &Undo, t: &UndoTable) -> Result<RestoredValues> {
    let dropped = added_columns_of(undo, &t.table);
    let kept: Vec<usize> = (0..t.columns.len())
        .filter(|i| !dropped.contains(&t.columns[*i].name.as_str()))
        .collect();
    let mut restored = RestoredValues {
        columns: kept.iter().map(|i| t.columns[*i].clone()).collect(),
        expected: BTreeMap::new(),
        key_values: Vec::new(),
    };
    let key_in_receipt = receipt_key_positions(t, &meta_of(&t.table, t.columns.clone(), &t.key))?;
    for row in &t.deleted_rows {
        let key_values: Vec<Option<String>> = key_in_receipt
            .iter()
            .map(|i| row.get(*i).cloned().flatten())
            .collect();
        let key = crate::types::row_key(key_values.iter().map(|v| v.as_deref()));
        let values = kept
            .iter()
            .enumerate()
            .map(|(at, i)| (at, row.get(*i).cloned().flatten()))
            .collect();
        if restored.expected.insert(key, values).is_none() {
            restored.key_values.push(key_values);
        }
    }
    for u in &t.updates {
        let key = crate::types::row_key(u.key.iter().map(|v| Some(v.as_str())));
        // A row several phases updated: its first recorded old value is
        // the one before the push.
        for c in u
            .changes
            .iter()
            .filter(|c| !dropped.contains(&c.column.as_str()))
        {
            let at = restored.position(&c.column, &t.table)?;
            if !restored.expected.contains_key(&key) {
                restored
                    .key_values
                    .push(u.key.iter().cloned().map(Some).collect());
            }
            let values = restored.expected.entry(key.clone()).or_default();
            if !values.iter().any(|(i, _)| *i == at) {
                values.push((at, c.old.clone()));
            }
        }
        // Columns a BEFORE trigger set for the push: the undo's UPDATE
        // fires it again, and it must give back what the row held.
        for f in undo.filled.iter().filter(|f| f.table == t.table) {
            let Some(before) = f.by_trigger_before.get(&key) else {
                continue;
            };
            for (column, old) in f.by_trigger.iter().zip(before) {
                if dropped.contains(&column.as_str()) {
                    continue;
                }
                let Ok(at) = restored.position(column, &t.table) else {
                    continue;
                };
                let values = restored.expected.entry(key.clone()).or_default();
                if !values.iter().any(|(i, _)| *i == at) {
                    values.push((at, old.clone()));
                }
            }
        }
    }
    Ok(restored)
}

/// Where the receipt's key columns of `t` sit among `meta`'s columns. A
/// key column missing there is the receipt's damage: the rows the push
/// wrote cannot be found by key, and a shorter key would pair wrong rows.
pub(super) fn receipt_key_positions(t: &UndoTable, meta: &TableMeta) -> Result<Vec<usize>> {
    crate::diff::key_positions_in(
        meta,
        &t.key,
        "the receipt does not record it, so the rows the push wrote cannot be found by key; \
         the receipt is damaged",
    )
}

/// A column the push wrote in an updated row: its position in the table,
/// its name and the value the push wrote.
type WrittenValue<'u> = (usize, &'u str, Option<&'u str>);

/// The rows of one table a receipt says the push wrote: inserted whole,
/// or updated in some columns (per row: each column's position, name and
/// the value the push wrote), by [`crate::types::row_key`].
pub(super) struct WrittenRows<'u> {
    inserted: std::collections::BTreeSet<String>,
    updated: BTreeMap<String, Vec<WrittenValue<'u>>>,
    /// The key values of each of those rows, once: what is read back.
    pub(super) key_values: Vec<Vec<Option<String>>>,
}

impl<'u> WrittenRows<'u> {
    pub(super) fn of(t: &'u UndoTable, meta: &TableMeta) -> Result<Self> {
        let inserted: std::collections::BTreeSet<String> = t
            .inserted_keys
            .iter()
            .map(|k| crate::types::row_key(k.iter().map(|v| v.as_deref())))
            .collect();
        let mut key_values = t.inserted_keys.clone();
        let mut updated = BTreeMap::new();
        for u in &t.updates {
            let key = crate::types::row_key(u.key.iter().map(|v| Some(v.as_str())));
            if !inserted.contains(&key) && !updated.contains_key(&key) {
                key_values.push(u.key.iter().cloned().map(Some).collect());
            }
            let cols = u
                .changes
                .iter()
                .map(|c| {
                    meta.columns
                        .iter()
                        .position(|m| m.name == c.column)
                        .map(|i| (i, c.column.as_str(), c.new.as_deref()))
                        .with_context(|| {
                            format!(
                                "the receipt updates {}.{}, which it does not list among the table's columns",
                                t.table, c.column
                            )
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            updated.insert(key, cols);
        }
        Ok(WrittenRows {
            inserted,
            updated,
            key_values,
        })
    }

    pub(super) fn holds(&self, key: &str) -> bool {
        self.inserted.contains(key) || self.updated.contains_key(key)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.inserted.iter().chain(self.updated.keys())
    }

    /// How row `key` of `table`, now `values` and no longer as the push
    /// left it, differs in what undoing it would discard: a row the push
    /// inserted in any column, a row it updated only in the columns it
    /// wrote.
    pub(super) fn changes(&self, table: &str, key: &str, values: &[Option<String>]) -> Vec<String> {
        if self.inserted.contains(key) {
            return vec![format!(
                "row {key} changed since the push inserted it into {table}"
            )];
        }
        self.updated
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(i, _, pushed)| values[*i].as_deref() != *pushed)
            .map(|(i, column, pushed)| {
                format!(
                    "row {key} changed: {table}.{column} was pushed as {}, is now {}",
                    shown(*pushed),
                    shown(values[*i].as_deref())
                )
            })
            .collect()
    }

    /// The check naming `changed` (at most 10 of them).
    pub(super) fn unchanged_check(&self, table: &str, mut changed: Vec<String>) -> Check {
        changed.sort();
        changed.dedup();
        let written = self.inserted.len()
            + self
                .updated
                .keys()
                .filter(|k| !self.inserted.contains(*k))
                .count();
        let mut c = Check::equal(
            "before undo",
            &format!("{table} rows the push wrote unchanged since the push"),
            CheckKind::Integrity,
            format!("{written} rows as pushed"),
            format!("{} rows as pushed", written.saturating_sub(changed.len())),
        );
        c.ok = changed.is_empty();
        c.row_count = changed.len() as u64;
        changed.truncate(10);
        if c.row_count > 10 {
            changed.push(format!("… and {} more", c.row_count - 10));
        }
        c.rows = changed;
        c
    }
}

/// A value for a person: quoted text, or NULL.
pub(super) fn shown(v: Option<&str>) -> String {
    match v {
        Some(v) if v.chars().count() > 60 => {
            format!("'{}…'", v.chars().take(60).collect::<String>())
        }
        Some(v) => format!("'{v}'"),
        None => "NULL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_column_the_receipt_does_not_record_is_named_as_the_receipts_damage() {
        let column = |name: &str| ColumnMeta {
            name: name.into(),
            pg_type: "text".into(),
            ..Default::default()
        };
        let t = UndoTable {
            table: "workflows".into(),
            created: false,
            key: vec!["tenant".into(), "id".into()],
            key_types: vec!["text".into(), "text".into()],
            columns: vec![column("id"), column("name")],
            inserted_keys: vec![],
            updates: vec![],
            deleted_rows: vec![],
        };
        let meta = meta_of(&t.table, t.columns.clone(), &t.key);
        let e = receipt_key_positions(&t, &meta).unwrap_err().to_string();
        assert!(
            e.contains("table workflows: primary key column tenant is not one of its columns")
                && e.contains("the receipt is damaged")
                && !e.contains("pull again"),
            "{e}"
        );
        let t = UndoTable {
            key: vec!["id".into()],
            ..t
        };
        assert_eq!(receipt_key_positions(&t, &meta).unwrap(), vec![0]);
    }
}
