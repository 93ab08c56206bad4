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
                // A row whose only recorded change is there (the push
                // updated only a column it added, which the undo drops) is
                // read back too: unread, it was reported "missing".
                if !restored.expected.contains_key(&key) {
                    restored
                        .key_values
                        .push(u.key.iter().cloned().map(Some).collect());
                }
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

/// A change of a row the push inserted in what its receipt does not keep.
const UNKEPT: &str =
    "in a column whose pushed value the receipt does not keep (it keeps the row's fingerprint)";

/// One change the app made, since the push, to a row the push wrote: what
/// undoing the push would discard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AppChange {
    pub(super) table: String,
    /// [`crate::types::row_key`] of the row.
    pub(super) key: String,
    /// The push inserted the row (else it updated it).
    pub(super) inserted: bool,
    /// The column, with its value as the push left it and now. None: a row
    /// the push inserted changed in a column whose pushed value the receipt
    /// does not keep (it keeps the row's fingerprint, and the values
    /// Postgres filled in).
    pub(super) column: Option<ColumnChange>,
    /// `table.trigger` of a proven updated_at stamp on the table, when the
    /// column is updated_at: the likely writer (any UPDATE of the row, even
    /// an app save that changes nothing else, moves it).
    pub(super) stamped_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ColumnChange {
    pub(super) name: String,
    pub(super) pushed: Option<String>,
    pub(super) now: Option<String>,
}

impl AppChange {
    /// For a person: table, row key, column, the value as pushed and now.
    pub(super) fn describe(&self) -> String {
        match self.how() {
            None => format!("{}, {UNKEPT}", self.row()),
            Some(how) => format!("{}: {how}", self.row()),
        }
    }

    /// The row, named: how it came to be the push's.
    fn row(&self) -> String {
        if self.inserted {
            format!(
                "row {} changed since the push inserted it into {}",
                self.key, self.table
            )
        } else {
            format!("row {} changed", self.key)
        }
    }

    /// The column's change: its value as pushed and now (and the likely
    /// writer of an updated_at); None for a change the receipt keeps only
    /// the row's fingerprint of.
    fn how(&self) -> Option<String> {
        let c = self.column.as_ref()?;
        let by = match &self.stamped_by {
            Some(t) => format!(
                " (likely trigger {t}, which only stamps updated_at: any UPDATE of the row moves \
                 it, even an app save that changed nothing else)"
            ),
            None => String::new(),
        };
        Some(format!(
            "{}.{} was pushed as {}, is now {}{by}",
            self.table,
            c.name,
            shown(c.pushed.as_deref()),
            shown(c.now.as_deref())
        ))
    }

    /// For a person, one line for all of `changes` (each of the same row):
    /// the row named once, then each column's change, and last, if the row
    /// changed where the receipt keeps only its fingerprint, that. A row
    /// listed once per change read as that many rows.
    pub(super) fn describe_row(changes: &[&AppChange]) -> Option<String> {
        let row = changes.first()?.row();
        let columns: Vec<String> = changes.iter().filter_map(|c| c.how()).collect();
        let unkept = changes.iter().any(|c| c.column.is_none());
        Some(match (columns.is_empty(), unkept) {
            (true, _) => format!("{row}, {UNKEPT}"),
            (false, false) => format!("{row}: {}", columns.join("; ")),
            (false, true) => format!("{row}: {}; and {UNKEPT}", columns.join("; ")),
        })
    }

    /// What `--discard-changes` names to let the undo discard it:
    /// `table.column`, or `table.*` when the column is not known.
    pub(super) fn flag_value(&self) -> String {
        match &self.column {
            Some(c) => format!("{}.{}", self.table, c.name),
            None => format!("{}.*", self.table),
        }
    }

    /// The `--discard-changes` value among `discard` that covers it.
    pub(super) fn discarded_by<'d>(&self, discard: &'d [String]) -> Option<&'d str> {
        let all = format!("{}.*", self.table);
        let exact = self.flag_value();
        discard
            .iter()
            .find(|d| **d == exact || **d == all)
            .map(String::as_str)
    }
}

/// The rows of one table a receipt says the push wrote: inserted whole,
/// or updated in some columns (per row: each column's position, name and
/// the value the push wrote), by [`crate::types::row_key`].
pub(super) struct WrittenRows<'u> {
    inserted: std::collections::BTreeSet<String>,
    updated: BTreeMap<String, Vec<WrittenValue<'u>>>,
    /// Per inserted row: the values Postgres filled in (position, value),
    /// as the push left them — the only values of an inserted row the
    /// receipt keeps.
    filled: BTreeMap<String, Vec<(usize, Option<String>)>>,
    /// The table's column names, in the order its rows are read.
    names: Vec<String>,
    /// The key values of each of those rows, once: what is read back.
    pub(super) key_values: Vec<Vec<Option<String>>>,
}

impl<'u> WrittenRows<'u> {
    pub(super) fn of(t: &'u UndoTable, meta: &TableMeta, undo: &Undo) -> Result<Self> {
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
        let mut filled = BTreeMap::new();
        for f in undo.filled.iter().filter(|f| f.table == t.table) {
            let positions: Vec<Option<usize>> = f
                .columns
                .iter()
                .map(|c| meta.columns.iter().position(|m| &m.name == c))
                .collect();
            for (key, values) in f.rows.iter().filter(|(k, _)| inserted.contains(*k)) {
                let row: &mut Vec<(usize, Option<String>)> = filled.entry(key.clone()).or_default();
                row.extend(
                    positions
                        .iter()
                        .zip(values)
                        .filter_map(|(i, v)| Some(((*i)?, v.clone()))),
                );
            }
        }
        Ok(WrittenRows {
            inserted,
            updated,
            filled,
            names: meta.columns.iter().map(|c| c.name.clone()).collect(),
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
    /// left it (`pushed_hash`: its fingerprint then), differs in what
    /// undoing it would discard: a row the push inserted in any column, a
    /// row it updated only in the columns it wrote. Of an inserted row the
    /// receipt keeps only what Postgres filled in: those columns are named
    /// with both values, and when putting them back gives the pushed
    /// fingerprint, they are the whole change (an updated_at stamp, say);
    /// otherwise another column changed too, which is said.
    pub(super) fn changes(
        &self,
        table: &str,
        key: &str,
        values: &[Option<String>],
        pushed_hash: Option<&str>,
    ) -> Vec<AppChange> {
        let change = |inserted: bool, column: Option<ColumnChange>| AppChange {
            table: table.to_string(),
            key: key.to_string(),
            inserted,
            column,
            stamped_by: None,
        };
        if self.inserted.contains(key) {
            let mut out = Vec::new();
            let mut as_pushed = values.to_vec();
            // A later phase of the push may have updated its own new row:
            // the value it wrote last is the pushed one.
            let mut known: BTreeMap<usize, Option<String>> = self
                .filled
                .get(key)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            for (i, _, pushed) in self.updated.get(key).into_iter().flatten() {
                known.insert(*i, pushed.map(str::to_string));
            }
            for (i, pushed) in known {
                if values[i] != pushed {
                    as_pushed[i] = pushed.clone();
                    out.push(change(
                        true,
                        Some(ColumnChange {
                            name: self.names[i].clone(),
                            pushed,
                            now: values[i].clone(),
                        }),
                    ));
                }
            }
            let whole = pushed_hash.is_some_and(|h| {
                h == crate::db::postgres::digest::row_fingerprint(
                    crate::types::copy_text_line(&as_pushed).as_bytes(),
                )
            });
            if !whole {
                out.push(change(true, None));
            }
            return out;
        }
        self.updated
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(i, _, pushed)| values[*i].as_deref() != *pushed)
            .map(|(i, column, pushed)| {
                change(
                    false,
                    Some(ColumnChange {
                        name: column.to_string(),
                        pushed: pushed.map(str::to_string),
                        now: values[*i].clone(),
                    }),
                )
            })
            .collect()
    }

    /// Whether `values`, a row of the table under a key the receipt does
    /// not know, holds what the push left in row `key` (a row it wrote that
    /// is no longer under its key): the app re-keyed it, as far as the
    /// receipt can tell. Of a row the push inserted, the receipt keeps the
    /// fingerprint of the whole row: `values` with the key put back
    /// (`key_positions`, `key_values`) and the values Postgres filled in
    /// (and later phases wrote) as the push left them must give it, so
    /// every other column is as pushed (an updated_at the app's UPDATE of
    /// the key stamped is one Postgres filled). Of a row it updated, the
    /// columns it wrote must hold what it wrote, but for `dropped` (columns
    /// the push added: the undo drops them, whatever row holds them), and
    /// there must be such a column.
    pub(super) fn pushed_under_another_key(
        &self,
        key: &str,
        key_positions: &[usize],
        key_values: &[Option<String>],
        values: &[Option<String>],
        pushed_hash: Option<&str>,
        dropped: &[&str],
    ) -> bool {
        if self.inserted.contains(key) {
            let Some(pushed_hash) = pushed_hash else {
                return false;
            };
            let mut as_pushed = values.to_vec();
            for (i, v) in key_positions.iter().zip(key_values) {
                as_pushed[*i] = v.clone();
            }
            for (i, v) in self.filled.get(key).into_iter().flatten() {
                as_pushed[*i] = v.clone();
            }
            for (i, _, pushed) in self.updated.get(key).into_iter().flatten() {
                as_pushed[*i] = pushed.map(str::to_string);
            }
            return pushed_hash
                == crate::db::postgres::digest::row_fingerprint(
                    crate::types::copy_text_line(&as_pushed).as_bytes(),
                );
        }
        let restored: Vec<&WrittenValue> = self
            .updated
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(_, name, _)| !dropped.contains(name))
            .collect();
        !restored.is_empty()
            && restored
                .iter()
                .all(|(i, _, pushed)| values[*i].as_deref() == *pushed)
    }

    /// The columns the push wrote in row `key`, one it updated, but for
    /// `dropped`.
    pub(super) fn updated_columns(&self, key: &str, dropped: &[&str]) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .updated
            .get(key)
            .into_iter()
            .flatten()
            .map(|(_, name, _)| *name)
            .filter(|name| !dropped.contains(name))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether the push inserted row `key`.
    pub(super) fn inserted(&self, key: &str) -> bool {
        self.inserted.contains(key)
    }

    /// How many rows the push wrote.
    pub(super) fn count(&self) -> usize {
        self.inserted.len()
            + self
                .updated
                .keys()
                .filter(|k| !self.inserted.contains(*k))
                .count()
    }
}

/// The check of one table's `written` rows: the changes in `changes` not
/// covered by `discard` (`--discard-changes`) refuse, named (at most 10 of
/// them); the others are returned, counted in the check, to be discarded.
/// `stamps` are the table's proven updated_at stamp triggers
/// (`table.trigger`): a change of updated_at names the first as the likely
/// writer.
pub(super) fn rows_check(
    table: &str,
    written: usize,
    changes: Vec<AppChange>,
    discard: &[String],
    stamps: &[String],
) -> (Check, Vec<AppChange>) {
    let (discarded, kept): (Vec<AppChange>, Vec<AppChange>) = changes
        .into_iter()
        .map(|mut c| {
            if c.column.as_ref().is_some_and(|c| c.name == "updated_at") {
                c.stamped_by = stamps.first().cloned();
            }
            c
        })
        .partition(|c| c.discarded_by(discard).is_some());
    let mut changed: Vec<String> = kept.iter().map(AppChange::describe).collect();
    changed.sort();
    changed.dedup();
    let rows: std::collections::BTreeSet<&str> = kept
        .iter()
        .chain(&discarded)
        .map(|c| c.key.as_str())
        .collect();
    let mut actual = format!(
        "{} as pushed",
        crate::words::rows(written.saturating_sub(rows.len()))
    );
    if !discarded.is_empty() {
        actual.push_str(&format!(
            ", {} changes by the app discarded (--discard-changes)",
            discarded.len()
        ));
    }
    let mut c = Check::equal(
        "before undo",
        &format!("{table} rows the push wrote unchanged since the push"),
        CheckKind::Integrity,
        format!("{} as pushed", crate::words::rows(written)),
        actual,
    );
    c.ok = changed.is_empty();
    c.row_count = changed.len() as u64;
    changed.truncate(10);
    if c.row_count > 10 {
        changed.push(format!("… and {} more", c.row_count - 10));
    }
    c.rows = changed;
    (c, discarded)
}

/// What a row the undo restores must hold beyond the values it writes
/// back: the columns it does not write as they were before the undo (a
/// trigger the app added since the push fires for the restore and may
/// write them: a second updated_at stamp), and, for a row the push left as
/// it was, its whole before-push image as the receipt fingerprinted it.
/// Rows the undo inserts again are compared whole already.
pub(super) struct UnwrittenRead<'a> {
    table: &'a str,
    /// The names of the columns read back.
    names: Vec<String>,
    /// Of each column read back, where it sits in the rows as read before
    /// the undo (the receipt's columns); None for a generated column, which
    /// the restore recomputes from what it writes.
    then_at: Vec<Option<usize>>,
    /// The rows the push updated (and did not delete).
    updated: std::collections::BTreeSet<String>,
    /// The rows read before the undo (`Some(None)`: the table was judged
    /// whole, every row as the push left it).
    as_left: Option<&'a Option<super::RowsAsLeft>>,
    /// Before-push fingerprints by key, when the receipt's before-image
    /// has the columns read back, in their order.
    before: Option<&'a crate::db::postgres::digest::RowHashes>,
    /// Rows that differ from their fingerprint in no column named.
    unnamed: usize,
}

impl<'a> UnwrittenRead<'a> {
    pub(super) fn of(
        undo: &'a Undo,
        t: &'a UndoTable,
        restored: &RestoredValues,
        as_left: Option<&'a Option<super::RowsAsLeft>>,
    ) -> Result<Self> {
        let names: Vec<String> = restored.columns.iter().map(|c| c.name.clone()).collect();
        let then_at = restored
            .columns
            .iter()
            .map(|c| {
                if c.generated.is_some() {
                    return None;
                }
                t.columns.iter().position(|x| x.name == c.name)
            })
            .collect();
        let key_at = receipt_key_positions(t, &meta_of(&t.table, t.columns.clone(), &t.key))?;
        let deleted: std::collections::BTreeSet<String> = t
            .deleted_rows
            .iter()
            .map(|row| {
                crate::types::row_key(
                    key_at
                        .iter()
                        .map(|i| row.get(*i).and_then(|v| v.as_deref())),
                )
            })
            .collect();
        let updated = t
            .updates
            .iter()
            .map(|u| crate::types::row_key(u.key.iter().map(|v| Some(v.as_str()))))
            .filter(|k| !deleted.contains(k))
            .collect();
        let before = undo
            .before
            .get(&t.table)
            .filter(|b| !b.row_hashes.is_empty() && b.columns.iter().map(|c| &c.name).eq(&names))
            .map(|b| &b.row_hashes);
        Ok(UnwrittenRead {
            table: &t.table,
            names,
            then_at,
            updated,
            as_left,
            before,
            unnamed: 0,
        })
    }

    /// Compares one row read back after the undo (`values`, its COPY
    /// `line`) beyond the written-back values (`wanted`, already compared:
    /// `row_differs`), counting differing columns in `unwritten` and
    /// saying each difference in `differing`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn compare(
        &mut self,
        key: &str,
        values: &[Option<String>],
        line: &[u8],
        wanted: &[(usize, Option<String>)],
        row_differs: bool,
        unwritten: &mut BTreeMap<String, usize>,
        differing: &mut Vec<String>,
    ) {
        if !self.updated.contains(key) {
            return;
        }
        let mut differs = row_differs;
        let left = match self.as_left {
            Some(Some(rows)) => rows.get(key),
            _ => None,
        };
        if let Some((then, _)) = left {
            for (at, then_at) in self.then_at.iter().enumerate() {
                let Some(then_at) = then_at else { continue };
                if wanted.iter().any(|(i, _)| *i == at) {
                    continue;
                }
                let was = then.get(*then_at).cloned().flatten();
                if values.get(at).cloned().flatten() != was {
                    differs = true;
                    *unwritten.entry(self.names[at].clone()).or_insert(0) += 1;
                    differing.push(format!(
                        "row {key}: {}.{} is {}, it held {} before the undo, which does not \
                         write it",
                        self.table,
                        self.names[at],
                        shown(values.get(at).and_then(|v| v.as_deref())),
                        shown(was.as_deref())
                    ));
                }
            }
        }
        // A row as the push left it is, restored, the row before the push.
        let as_pushed = matches!(self.as_left, Some(None)) || left.is_some_and(|(_, same)| *same);
        if differs || !as_pushed {
            return;
        }
        let Some(fingerprint) = self.before.and_then(|b| b.get(key)) else {
            return;
        };
        if *fingerprint != crate::db::postgres::digest::row_fingerprint(line) {
            self.unnamed += 1;
            differing.push(format!(
                "row {key} of {} differs from its image before the push (the receipt holds a \
                 fingerprint of that row, not its values: the column cannot be named)",
                self.table
            ));
        }
    }

    /// Rows that differ from their before-push fingerprint in no column
    /// named.
    pub(super) fn unnamed(&self) -> usize {
        self.unnamed
    }

    /// Why restored rows differ where the undo writes nothing, and the way
    /// forward: the row triggers that fire for UPDATE on the table, held
    /// off or not, the ones that fire as the likely cause. The rollback
    /// holds off only what the receipt names: whether another may fire
    /// for the restore is the user's call.
    pub(super) fn why(
        &self,
        unwritten: &BTreeMap<String, usize>,
        triggers: &[crate::db::triggers::TriggerReport],
    ) -> String {
        let table = self.table;
        let mut said = Vec::new();
        if !unwritten.is_empty() {
            said.push(format!(
                "columns the undo does not write that differ from before it: {}",
                unwritten
                    .iter()
                    .map(|(c, n)| format!("{table}.{c} in {}", crate::words::rows(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.unnamed > 0 {
            said.push(format!(
                "{} of {table} differ from their images before the push",
                crate::words::rows(self.unnamed)
            ));
        }
        let on_update: Vec<&crate::db::triggers::TriggerReport> = triggers
            .iter()
            .filter(|tr| {
                tr.table == table && tr.level == "ROW" && tr.events.iter().any(|e| e == "UPDATE")
            })
            .collect();
        let fired: Vec<&str> = on_update
            .iter()
            .filter(|tr| tr.action == crate::db::triggers::TriggerAction::Fires)
            .map(|tr| tr.name.as_str())
            .collect();
        if on_update.is_empty() {
            said.push(format!(
                "no row trigger on {table} fires for UPDATE: a rule or the column's type changed \
                 the values"
            ));
        } else {
            said.push(format!(
                "triggers that fire for UPDATE on {table}: {}",
                on_update
                    .iter()
                    .map(|tr| format!(
                        "{} ({} {}, {})",
                        tr.name,
                        tr.timing,
                        tr.level,
                        tr.action.as_str()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !fired.is_empty() {
            let names = fired.join(", ");
            said.push(format!(
                "likely cause: {names} fired for the restore and wrote what the undo does not \
                 (the receipt does not hold {names} off, so the rollback lets it fire); its \
                 writes would make the restore inexact. The rollback disables no trigger the \
                 receipt does not name: whether {names} may fire for this restore is yours to \
                 decide. To restore these rows exactly, drop or disable {names} on {table} and \
                 roll back again (enable it after, if the app needs it)"
            ));
        }
        said.join("; ")
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
    fn a_change_is_discarded_only_by_its_own_column_or_its_tables_star() {
        let change = |column: Option<&str>| AppChange {
            table: "workflows".into(),
            key: "w1".into(),
            inserted: true,
            column: column.map(|c| ColumnChange {
                name: c.into(),
                pushed: Some("a".into()),
                now: None,
            }),
            stamped_by: None,
        };
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stamp = change(Some("updated_at"));
        assert_eq!(
            stamp.discarded_by(&flags(&["workflows.updated_at"])),
            Some("workflows.updated_at")
        );
        assert_eq!(
            stamp.discarded_by(&flags(&["workflows.*"])),
            Some("workflows.*")
        );
        assert_eq!(
            stamp.discarded_by(&flags(&["workflows.name", "tasks.*"])),
            None
        );
        // A change in a column the receipt cannot name: only TABLE.* covers it.
        let unknown = change(None);
        assert_eq!(unknown.flag_value(), "workflows.*");
        assert_eq!(
            unknown.discarded_by(&flags(&["workflows.updated_at"])),
            None
        );
        assert!(
            stamp
                .describe()
                .ends_with("workflows.updated_at was pushed as 'a', is now NULL"),
            "{}",
            stamp.describe()
        );
    }

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
