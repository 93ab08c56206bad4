//! The receipt's undo document: what a push did, exactly enough for
//! `sandbox rollback` to undo it. One serde type, used to write it (push)
//! and to read it (rollback), with a format version rollback checks before
//! trusting anything in it.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::catalog::{ColumnMeta, TableMeta};
use crate::db::dependents::OwnReferencing;
use crate::db::postgres::digest::{local_row_hashes, local_row_hashes_with, RowHashes};
use crate::db::postgres::sequences::SequenceAdvance;
use crate::db::sqlite::Snapshot;
use crate::db::writes::TableWrites;
use crate::diff::{Diff, RowUpdate};
use crate::error::check_failed;
use crate::plan::stage::{staged, staged_meta};
use crate::plan::Plan;
use crate::types::RowHash;

/// The format this build writes. 1: the untyped document of earlier
/// versions (a subset of 2: no before-images by row, no triggers or side
/// effects). 2: adds those. 3: adds the sequences the push moved past the
/// explicit values it wrote (a tool reading only 2 would leave them moved
/// without saying so, so it refuses 3 by its number). 4: the tables'
/// checksums hash rows with XXH3 instead of SHA-256 ([`RowHash`]); a tool
/// reading only 3 would see every table as changed. 5: adds the tables the
/// plan protected or read ([`Undo::protected`]); a tool reading only 4
/// would let `rollback --allow-writes` cover writes to them. 6: adds each
/// created table's identity ([`Undo::created_identity`]); a tool reading
/// only 5 would drop a table of the same name the app made since. 7: adds
/// each added column's identity ([`Undo::added_identity`]); a tool reading
/// only 6 would drop a column of the same name the app made since.
pub const UNDO_FORMAT: u32 = 7;

/// The oldest format rollback still reads.
pub const OLDEST_READABLE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Undo {
    pub format: u32,
    /// The DDL the push ran, in order (for people reading the receipt).
    #[serde(default)]
    pub ddl: Vec<String>,
    /// Tables the push created (dropped by rollback, children first).
    pub created_tables: Vec<String>,
    /// What each of `created_tables` was as the push left it, read in its
    /// transaction right before COMMIT (after the rehearsal of its undo):
    /// rollback drops a table of that name only if it is still that one.
    /// `None` before format 6, and in the receipt the push rehearses its
    /// undo on (written before the COMMIT read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_identity: Option<Vec<CreatedTable>>,
    /// Columns the push added to existing tables.
    pub added_columns: Vec<AddedColumn>,
    /// What each of `added_columns` was as the push left it, read in its
    /// transaction right before COMMIT: rollback drops a column of that
    /// name only if it is still that one. `None` before format 7, and in
    /// the receipt the push rehearses its undo on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_identity: Option<Vec<AddedColumnIdentity>>,
    /// Per written table: inserted keys and overwritten values.
    pub tables: Vec<UndoTable>,
    /// Each pulled table as it was before the push.
    pub before: BTreeMap<String, TableState>,
    /// Each written table as the push left it.
    pub after: BTreeMap<String, TableState>,
    /// `table.trigger` held off during the push's updates; rollback holds
    /// off the same ones (after proving them again) while restoring.
    #[serde(default, alias = "disabled_triggers")]
    pub held_off_triggers: Vec<String>,
    /// Writes to tables outside the plan that the user allowed
    /// (`--allow-writes` or the plan's `allow_writes`): rollback leaves them.
    #[serde(default)]
    pub side_effects: Vec<TableWrites>,
    /// The tables allowed for side effects when the push ran; its rollback
    /// may write them too (an audit trigger logging the delete).
    #[serde(default)]
    pub allowed_writes: Vec<String>,
    /// The tables the plan protected or read and did not write
    /// (`schema.table`, [`Plan::protected_tables`]): the push's rehearsal
    /// rested on their rows, so no `--allow-writes` of the rollback covers
    /// a write to one either. `None` in receipts before format 5: see
    /// [`Undo::protected_tables`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<Vec<String>>,
    /// What Postgres chose for the columns new rows left to it (computed
    /// defaults, identity, generated columns): part of the state the push
    /// left, which `after` already includes.
    #[serde(default)]
    pub filled: Vec<FilledValues>,
    /// Sequences behind columns the push wrote explicit values into, with
    /// their next value before and after the push (format 3; none before).
    #[serde(default)]
    pub sequences: Vec<SequenceAdvance>,
    /// Rows the push's allowed side effects wrote that reference rows it
    /// inserted through an `ON DELETE CASCADE` foreign key (a trigger's
    /// history of each pushed workflow): the undo's delete takes them
    /// back, and only them (none in receipts before; an older tool's
    /// rollback refuses such rows as references it did not write).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own_referencing: Vec<OwnReferencing>,
    /// Written by the rollback: rows the push wrote that the app had
    /// deleted before it, left as they were (`row KEY of TABLE (…)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub already_gone: Vec<String>,
    /// Written by the rollback: changes the app made since the push to
    /// rows the push wrote that the undo discarded (`--discard-changes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discarded: Vec<String>,
    /// Written by the rollback: app functions whose bodies used a table or
    /// column it dropped, dropped anyway (`--break-function`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken_functions: Vec<String>,
}

/// What Postgres chose for the columns a table's new rows left to it
/// (computed defaults, identity, generated columns).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilledValues {
    pub table: String,
    pub columns: Vec<String>,
    /// By row key (as in [`crate::db::postgres::digest::RowHashes`]): the values of
    /// `columns` as Postgres prints them; only the ones the row left to
    /// Postgres are used.
    pub rows: BTreeMap<String, Vec<Option<String>>>,
    /// Those of `columns` a BEFORE row trigger may set and the plan sets in
    /// no row it writes: Postgres's value is the row's in every row read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_trigger: Vec<String>,
    /// By row key, for the pulled rows the push updated: the values of
    /// `by_trigger` before the push. The rollback's UPDATE fires the
    /// trigger again, and must find these (a counter of edits would not
    /// be): what it checks after undoing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_trigger_before: BTreeMap<String, Vec<Option<String>>>,
}

impl FilledValues {
    /// Puts Postgres's values into a staged row (in `meta` column order)
    /// where the row left the column to Postgres.
    pub fn apply(&self, meta: &TableMeta, row: &mut [Option<String>]) -> Result<()> {
        let Some(values) = self
            .rows
            .get(&crate::db::postgres::digest::row_key(meta, row)?)
        else {
            return Ok(());
        };
        for (name, v) in self.columns.iter().zip(values) {
            if let Some(i) = meta.columns.iter().position(|c| &c.name == name) {
                let c = &meta.columns[i];
                if c.never_written()
                    || (c.filled_by_postgres() && row[i].is_none())
                    || self.by_trigger.contains(name)
                {
                    row[i] = v.clone();
                }
            }
        }
        Ok(())
    }
}

/// A table the push created, as Postgres knew it when the push committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTable {
    /// The name in `created_tables` (schema `public`).
    pub table: String,
    /// `pg_class.oid`: a table dropped and created again under the same
    /// name, or moved to another schema, is told apart by it.
    pub oid: u32,
    /// Its columns in order, each `[name, type as format_type prints it]`:
    /// to say how a table of the same name differs.
    pub columns: Vec<(String, String)>,
}

/// A column the push added, as Postgres knew it when the push committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedColumnIdentity {
    /// The table and column as in `added_columns` (schema `public`).
    pub table: String,
    pub column: String,
    /// The table's `pg_class.oid`: a table dropped and created again under
    /// the same name is told apart by it.
    pub table_oid: u32,
    /// `pg_attribute.attnum`: Postgres never gives a dropped column's
    /// number to another, so a column the app dropped and added again
    /// under the same name has another one, and a renamed column keeps it.
    pub attnum: i16,
    /// Its type as `format_type` prints it: a column the app retyped.
    #[serde(rename = "type")]
    pub pg_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddedColumn {
    pub table: String,
    pub column: String,
    /// What Postgres's `ADD COLUMN` put in every row already there: the
    /// column's constant default (a domain's, down the chain). Those values
    /// are the push's, not the app's, when rollback drops the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndoTable {
    pub table: String,
    pub created: bool,
    pub key: Vec<String>,
    pub key_types: Vec<String>,
    pub columns: Vec<ColumnMeta>,
    pub inserted_keys: Vec<Vec<Option<String>>>,
    pub updates: Vec<RowUpdate>,
    /// Rows the push deleted, whole (before-images in `columns` order):
    /// rollback inserts them again.
    #[serde(default)]
    pub deleted_rows: Vec<Vec<Option<String>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableState {
    pub rows: u64,
    pub checksum: String,
    #[serde(default)]
    pub columns: Vec<ColumnMeta>,
    /// Per-row fingerprints by key: lets a refusal name the rows.
    #[serde(default)]
    pub row_hashes: RowHashes,
}

impl Undo {
    /// What a receipt keeps to undo `diff` exactly.
    pub fn of_push(
        diff: &Diff,
        plan: &Plan,
        snapshot: &Snapshot,
        held_off: Vec<String>,
        side_effects: Vec<TableWrites>,
        allowed_writes: Vec<String>,
    ) -> Result<Undo> {
        let mut tables = Vec::new();
        for t in &diff.tables {
            let key_idx: Vec<usize> = t
                .key
                .iter()
                .filter_map(|k| t.columns.iter().position(|c| &c.name == k))
                .collect();
            tables.push(UndoTable {
                table: t.table.clone(),
                created: t.created,
                key: t.key.clone(),
                key_types: key_idx
                    .iter()
                    .map(|i| t.columns[*i].pg_type.clone())
                    .collect(),
                columns: t.columns.clone(),
                inserted_keys: t
                    .inserts
                    .iter()
                    .map(|r| key_idx.iter().map(|i| r[*i].clone()).collect())
                    .collect(),
                updates: t.updates.clone(),
                deleted_rows: t.deletes.clone(),
            });
        }
        let written: Vec<&str> = diff.tables.iter().map(|t| t.table.as_str()).collect();
        let mut before = BTreeMap::new();
        for t in &snapshot.tables {
            // Row fingerprints of the pulled state of the (small) tables the
            // push writes: a refused rollback can then name the rows.
            let row_hashes = if written.contains(&t.meta.name.as_str()) {
                local_row_hashes(snapshot, &t.meta.name, &t.meta)?
            } else {
                RowHashes::default()
            };
            before.insert(
                t.meta.name.clone(),
                TableState {
                    rows: t.rows,
                    checksum: t.checksum.clone(),
                    columns: t.meta.columns.clone(),
                    row_hashes,
                },
            );
        }
        let mut after = BTreeMap::new();
        for sum in &diff.staged {
            let meta = staged_meta(&snapshot.conn, snapshot, plan, &sum.name)?;
            let row_hashes = local_row_hashes(snapshot, &staged(&sum.name), &meta)?;
            after.insert(
                sum.name.clone(),
                TableState {
                    rows: sum.rows,
                    checksum: sum.checksum.clone(),
                    columns: Vec::new(),
                    row_hashes,
                },
            );
        }
        Ok(Undo {
            format: UNDO_FORMAT,
            ddl: diff.ddl.iter().map(|d| d.sql.clone()).collect(),
            created_tables: plan.schema.tables.iter().map(|t| t.name.clone()).collect(),
            created_identity: None,
            added_identity: None,
            added_columns: plan
                .schema
                .added_columns
                .iter()
                .map(|a| {
                    let meta = staged_meta(&snapshot.conn, snapshot, plan, &a.table)?;
                    Ok(AddedColumn {
                        table: a.table.clone(),
                        column: a.column.name.clone(),
                        fill: meta
                            .column(&a.column.name)
                            .and_then(crate::db::staging::constant_default)
                            .map(str::to_string),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            tables,
            before,
            after,
            held_off_triggers: held_off,
            side_effects,
            allowed_writes,
            protected: Some(plan.protected_tables()),
            filled: vec![],
            sequences: vec![],
            own_referencing: vec![],
            already_gone: vec![],
            discarded: vec![],
            broken_functions: vec![],
        })
    }

    /// Records what Postgres chose for the columns the new rows left to it,
    /// and the state the written tables are in with those values (the
    /// checksums of `expected`), so rollback compares against what is
    /// really there.
    pub fn with_filled(
        mut self,
        snapshot: &Snapshot,
        plan: &Plan,
        expected: &[crate::plan::stage::StagedTable],
        filled: Vec<FilledValues>,
    ) -> Result<Undo> {
        for f in &filled {
            let Some(sum) = expected.iter().find(|s| s.name == f.table) else {
                continue;
            };
            let meta = staged_meta(&snapshot.conn, snapshot, plan, &f.table)?;
            let row_hashes =
                local_row_hashes_with(snapshot, &staged(&f.table), &meta, &|row: &mut Vec<
                    Option<String>,
                >| {
                    f.apply(&meta, row)
                })?;
            self.after.insert(
                f.table.clone(),
                TableState {
                    rows: sum.rows,
                    checksum: sum.checksum.clone(),
                    columns: Vec::new(),
                    row_hashes,
                },
            );
        }
        self.filled = filled;
        Ok(self)
    }

    /// The tables no `--allow-writes` of the rollback covers, and whether
    /// the receipt recorded them. A receipt before format 5 did not: every
    /// pulled table the push did not write stands in for them (the
    /// protected and read tables are among them; a table the app owned
    /// outside the plan is refused too, which errs on the side of leaving
    /// the database alone).
    pub fn protected_tables(&self) -> (Vec<String>, bool) {
        if let Some(p) = &self.protected {
            return (p.clone(), true);
        }
        let written: Vec<&str> = self.tables.iter().map(|t| t.table.as_str()).collect();
        let derived = self
            .before
            .keys()
            .filter(|t| !written.contains(&t.as_str()))
            .map(|t| crate::db::writes::qualify(t))
            .collect();
        (derived, false)
    }

    /// How the receipt's table checksums hash rows: rollback recomputes
    /// them the same way.
    pub fn row_hash(&self) -> RowHash {
        if self.format >= 4 {
            RowHash::Xxh3
        } else {
            RowHash::Sha256
        }
    }

    /// Reads a receipt's undo document, refusing a format this build does
    /// not know (a newer tool wrote it; undoing from a partial reading
    /// could destroy data).
    pub fn read(receipt_id: &str, text: &str) -> Result<Undo> {
        #[derive(Deserialize)]
        struct Version {
            format: Option<u32>,
        }
        let version: Version = serde_json::from_str(text).map_err(|e| {
            check_failed(format!(
                "receipt {receipt_id}: its undo record is not readable JSON ({e}); nothing was changed"
            ))
        })?;
        let format = version.format.unwrap_or(0);
        if !(OLDEST_READABLE_FORMAT..=UNDO_FORMAT).contains(&format) {
            return Err(check_failed(format!(
                "receipt {receipt_id} has undo format {format}; this sandbox reads formats \
                 {OLDEST_READABLE_FORMAT} to {UNDO_FORMAT}. Roll it back with the sandbox version \
                 that pushed it (see sandbox.receipts.tool_version); nothing was changed"
            )));
        }
        let undo: Undo = serde_json::from_str(text).map_err(|e| {
            check_failed(format!(
                "receipt {receipt_id}: its undo record (format {format}) does not have the expected \
                 fields ({e}); nothing was changed"
            ))
        })?;
        undo.check_type_names(receipt_id)?;
        Ok(undo)
    }

    /// Every type name the rollback will splice into SQL as a cast must be
    /// one: the record is a JSON document anyone with write access to
    /// `sandbox.receipts` can edit.
    fn check_type_names(&self, receipt_id: &str) -> Result<()> {
        let columns = self.tables.iter().flat_map(|t| {
            t.key_types
                .iter()
                .map(move |ty| (t.table.as_str(), "key", ty.as_str()))
                .chain(
                    t.columns
                        .iter()
                        .map(move |c| (t.table.as_str(), c.name.as_str(), c.pg_type.as_str())),
                )
        });
        let states = self.before.iter().chain(&self.after).flat_map(|(t, s)| {
            s.columns
                .iter()
                .map(move |c| (t.as_str(), c.name.as_str(), c.pg_type.as_str()))
        });
        for (table, column, ty) in columns.chain(states) {
            crate::types::sql_type_name(ty).map_err(|e| {
                check_failed(format!(
                    "receipt {receipt_id}: {table}.{column}: {e}; the receipt is damaged; nothing was changed"
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_formats_are_refused_and_format_1_is_read() {
        let v1 = r#"{"format": 1, "ddl": [], "created_tables": ["t"], "added_columns": [],
                     "tables": [], "before": {}, "after": {}, "disabled_triggers": ["a.b"]}"#;
        let u = Undo::read("r", v1).expect("format 1 reads");
        assert_eq!(u.held_off_triggers, vec!["a.b".to_string()]);
        // Before format 5 the protected tables were not recorded.
        assert_eq!(u.protected_tables(), (vec![], false));
        // Format 1 to 3 checksummed rows with SHA-256, 4 with XXH3.
        assert_eq!(u.row_hash(), RowHash::Sha256);
        let v4 = v1.replace("\"format\": 1", "\"format\": 4");
        assert_eq!(Undo::read("r", &v4).unwrap().row_hash(), RowHash::Xxh3);
        // Before format 6 the created tables' identities were not recorded.
        assert_eq!(Undo::read("r", &v4).unwrap().created_identity, None);
        // Before format 7 the added columns' identities were not recorded.
        let v6 = v1.replace("\"format\": 1", "\"format\": 6");
        assert_eq!(Undo::read("r", &v6).unwrap().added_identity, None);
        let v8 = v1.replace("\"format\": 1", "\"format\": 8");
        let e = Undo::read("r", &v8).unwrap_err().to_string();
        assert!(e.contains("undo format 8"), "{e}");
        let none = v1.replace("\"format\": 1,", "");
        assert!(Undo::read("r", &none).is_err());
    }

    #[test]
    fn what_is_written_reads_back() {
        let u = Undo {
            format: UNDO_FORMAT,
            ddl: vec!["CREATE TABLE t ()".into()],
            created_tables: vec!["t".into()],
            created_identity: Some(vec![CreatedTable {
                table: "t".into(),
                oid: 16400,
                columns: vec![("id".into(), "uuid".into())],
            }]),
            added_columns: vec![],
            added_identity: Some(vec![AddedColumnIdentity {
                table: "u".into(),
                column: "c".into(),
                table_oid: 16390,
                attnum: 9,
                pg_type: "uuid".into(),
            }]),
            tables: vec![],
            before: BTreeMap::new(),
            after: BTreeMap::new(),
            held_off_triggers: vec!["x.y".into()],
            side_effects: vec![TableWrites {
                table: "public.audit_log".into(),
                inserted: 3,
                updated: 0,
                deleted: 0,
                written_by: vec![],
            }],
            allowed_writes: vec!["audit_log".into()],
            protected: Some(vec!["public.prompts".into()]),
            filled: vec![],
            sequences: vec![SequenceAdvance {
                table: "t".into(),
                column: "n".into(),
                schema: "public".into(),
                sequence: "t_n_seq".into(),
                before: 142,
                after: 369,
                written: 257,
                shared_with: vec![],
                draw: None,
            }],
            own_referencing: vec![],
            already_gone: vec![],
            discarded: vec![],
            broken_functions: vec![],
        };
        let back = Undo::read("r", &serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back.side_effects, u.side_effects);
        assert_eq!(back.held_off_triggers, u.held_off_triggers);
        assert_eq!(back.sequences, u.sequences);
        assert_eq!(back.created_identity, u.created_identity);
        assert_eq!(back.added_identity, u.added_identity);
        assert_eq!(
            back.protected_tables(),
            (vec!["public.prompts".into()], true)
        );
        // Format 2 (no sequences) still reads.
        let v2 = serde_json::to_string(&Undo {
            format: 2,
            sequences: vec![],
            ..u
        })
        .unwrap()
        .replace(",\"sequences\":[]", "");
        assert!(!v2.contains("sequences"), "{v2}");
        assert!(Undo::read("r", &v2).unwrap().sequences.is_empty());
    }
}
