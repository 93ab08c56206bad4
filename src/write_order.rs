//! The order push and rollback write rows in, replayed on the pulled rows
//! to prove that no row collides on a UNIQUE key on the way.
//!
//! A phase's SQL ran on SQLite in the plan's own order, statement by
//! statement; the push applies the phase's recorded changes instead, by
//! table and kind: deletes (children first), then per table its updates
//! (one UPDATE per set of changed columns) and then its inserts (one COPY
//! per set of columns). Updates come before inserts because an UPDATE is
//! what frees a unique value a new row reuses (a rename, then an insert of
//! the old name). Postgres checks a UNIQUE that is not DEFERRABLE row by
//! row, so the order of these statements matters where the phase's own
//! order did not: two rows trading values, or a row taking the value
//! another row gives up in the same UPDATE, collide on Postgres however
//! green the rehearsal was. [`push_collisions`] and [`rollback_collisions`]
//! replay exactly the statements push and rollback run and name every such
//! collision (constraint, table, both rows), so the rehearsal fails instead
//! of the push.
//!
//! A DEFERRABLE UNIQUE or primary key is checked later: push defers it for
//! each phase's writes (`SET CONSTRAINTS … DEFERRED`, then `IMMEDIATE` at
//! the end of the phase), and rollback for its whole undo, so only the state
//! at those points counts.

use std::collections::HashMap;

use crate::catalog::TableMeta;
use crate::diff::{update_statements, RowUpdate, TableDiff};

/// A UNIQUE constraint, primary key or plain unique index of a written
/// table, as the replay checks it.
pub struct UniqueKey {
    pub name: String,
    columns: Vec<usize>,
    names: Vec<String>,
    pub deferrable: bool,
    nulls_not_distinct: bool,
    /// Per column: compared case-folded (citext).
    folded: Vec<bool>,
}

/// The unique keys of `meta` (the staged table `t` is pushed into) that
/// SQLite-side replay can decide: plain columns, no WHERE.
pub fn unique_keys(meta: &TableMeta, t: &TableDiff) -> Vec<UniqueKey> {
    meta.constraints
        .iter()
        .filter(|k| k.is_plain_unique())
        .filter_map(|k| {
            let columns: Vec<usize> = k
                .columns
                .iter()
                .map(|c| t.columns.iter().position(|m| &m.name == c))
                .collect::<Option<_>>()?;
            Some(UniqueKey {
                name: k.name.clone(),
                folded: columns
                    .iter()
                    .map(|i| crate::db::staging::is_citext(&t.columns[*i].value_type()))
                    .collect(),
                names: k.columns.clone(),
                columns,
                deferrable: k.deferrable(),
                nulls_not_distinct: k.nulls_not_distinct(),
            })
        })
        .collect()
}

/// A cell of a replayed row: a value, or what Postgres fills (not known
/// before the push, so it collides with nothing the replay can name).
#[derive(Clone)]
enum Cell {
    Value(Option<String>),
    Filled,
}

/// One written table as the replay has it so far.
struct TableReplay<'a> {
    t: &'a TableDiff,
    self_refs: Vec<SelfReference>,
    keys: Vec<UniqueKey>,
    key_idx: Vec<usize>,
    added: Vec<String>,
    rows: HashMap<String, Vec<Cell>>,
    /// Per unique key: value tuple → the rows holding it.
    index: Vec<HashMap<Vec<String>, Vec<String>>>,
}

impl<'a> TableReplay<'a> {
    fn new(
        t: &'a TableDiff,
        keys: Vec<UniqueKey>,
        added: Vec<String>,
        pulled: Vec<Vec<Option<String>>>,
    ) -> Self {
        let key_idx = t
            .key
            .iter()
            .filter_map(|k| t.columns.iter().position(|c| &c.name == k))
            .collect();
        let mut r = TableReplay {
            t,
            self_refs: Vec::new(),
            index: keys.iter().map(|_| HashMap::new()).collect(),
            keys,
            key_idx,
            added,
            rows: HashMap::new(),
        };
        for row in pulled {
            let cells = row.into_iter().map(Cell::Value).collect();
            r.put(cells);
        }
        r
    }

    fn row_key(&self, cells: &[Cell]) -> String {
        crate::types::row_key(self.key_idx.iter().map(|i| match &cells[*i] {
            Cell::Value(v) => v.as_deref(),
            Cell::Filled => None,
        }))
    }

    fn label(&self, key: &str) -> String {
        format!("{} {}={key}", self.t.table, self.t.key.join("/"))
    }

    /// The value tuple a row holds in unique key `k`; None where it cannot
    /// collide (a NULL where NULLs are distinct, or a value Postgres fills).
    fn tuple(&self, k: &UniqueKey, cells: &[Cell]) -> Option<Vec<String>> {
        k.columns
            .iter()
            .zip(&k.folded)
            .map(|(i, folded)| match &cells[*i] {
                Cell::Filled => None,
                Cell::Value(None) => k.nulls_not_distinct.then(|| "\u{0}NULL".to_string()),
                Cell::Value(Some(v)) if *folded => Some(v.to_lowercase()),
                Cell::Value(Some(v)) => Some(v.clone()),
            })
            .collect()
    }

    fn shown(&self, k: &UniqueKey, cells: &[Cell]) -> String {
        k.names
            .iter()
            .zip(&k.columns)
            .map(|(n, i)| match &cells[*i] {
                Cell::Value(Some(v)) => format!("{n}='{}'", v.replace('\'', "''")),
                Cell::Value(None) => format!("{n}=NULL"),
                Cell::Filled => format!("{n}=(filled by Postgres)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Adds a row and its tuples (no check).
    fn put(&mut self, cells: Vec<Cell>) -> String {
        let key = self.row_key(&cells);
        for (n, k) in self.keys.iter().enumerate() {
            if let Some(tuple) = self.tuple(k, &cells) {
                self.index[n].entry(tuple).or_default().push(key.clone());
            }
        }
        self.rows.insert(key.clone(), cells);
        key
    }

    /// Removes a row and its tuples.
    fn take(&mut self, key: &str) -> Option<Vec<Cell>> {
        let cells = self.rows.remove(key)?;
        for (n, k) in self.keys.iter().enumerate() {
            if let Some(tuple) = self.tuple(k, &cells) {
                if let Some(holders) = self.index[n].get_mut(&tuple) {
                    holders.retain(|h| h != key);
                    if holders.is_empty() {
                        self.index[n].remove(&tuple);
                    }
                }
            }
        }
        Some(cells)
    }

    /// Another row than `key` holding `tuple` of key `n`.
    fn holder(&self, n: usize, tuple: &[String], key: &str) -> Option<&String> {
        self.index[n].get(tuple)?.iter().find(|h| *h != key)
    }

    /// A COPY of rows, one by one.
    fn insert(&mut self, rows: Vec<Vec<Cell>>, what: &str, out: &mut Vec<Collision>) {
        for cells in rows {
            let key = self.row_key(&cells);
            for (n, k) in self.keys.iter().enumerate() {
                if k.deferrable {
                    continue;
                }
                let Some(tuple) = self.tuple(k, &cells) else {
                    continue;
                };
                if let Some(other) = self.holder(n, &tuple, &key) {
                    let text = format!(
                        "{what}, {}: inserting {} with {} collides with {}, which holds it then \
                         (Postgres checks it row by row)",
                        k.name,
                        self.label(&key),
                        self.shown(k, &cells),
                        self.label(other),
                    );
                    out.push(self.collision(n, &tuple, [&key, other], text));
                }
            }
            self.put(cells);
        }
    }

    /// Rows deleted by key.
    fn delete(&mut self, keys: impl IntoIterator<Item = String>) {
        for k in keys {
            self.take(&k);
        }
    }

    /// One UPDATE statement: the order Postgres visits its rows in is not
    /// the replay's to choose, so a row taking a value another row holds
    /// when the statement starts collides even when that row gives it up
    /// in the same statement (it may come second).
    /// `later`: rows the UPDATEs after this one change.
    fn update(
        &mut self,
        updates: &[&RowUpdate],
        later: &std::collections::HashSet<String>,
        what: &str,
        out: &mut Vec<Collision>,
    ) {
        let mut staged: Vec<(String, Vec<Cell>, Vec<usize>)> = Vec::new();
        for u in updates {
            let key = crate::types::row_key(u.key.iter().map(|k| Some(k.as_str())));
            let Some(mut cells) = self.rows.get(&key).cloned() else {
                continue;
            };
            let mut changed = Vec::new();
            for c in &u.changes {
                if let Some(i) = self.t.columns.iter().position(|m| m.name == c.column) {
                    cells[i] = Cell::Value(c.new.clone());
                    changed.push(i);
                }
            }
            staged.push((key, cells, changed));
        }
        let moving: std::collections::HashSet<&String> = staged.iter().map(|(k, _, _)| k).collect();
        let mut taken: Vec<HashMap<Vec<String>, String>> =
            self.keys.iter().map(|_| HashMap::new()).collect();
        for (key, cells, changed) in &staged {
            for (n, k) in self.keys.iter().enumerate() {
                if k.deferrable || !k.columns.iter().any(|i| changed.contains(i)) {
                    continue;
                }
                let Some(tuple) = self.tuple(k, cells) else {
                    continue;
                };
                let (other, why) = if let Some(other) = self.holder(n, &tuple, key) {
                    let why = if moving.contains(other) || later.contains(other) {
                        ", which gives it up only in the same UPDATE or a later one: rows trading \
                         unique values (a swap or a chain) cannot be pushed as single-row \
                         updates, as Postgres checks a UNIQUE that is not DEFERRABLE row by row; \
                         make the constraint DEFERRABLE, or move a row through a value no row \
                         holds in an earlier phase"
                    } else {
                        ", which holds it then (Postgres checks it row by row)"
                    };
                    (other.clone(), why)
                } else if let Some(other) = taken[n].get(&tuple) {
                    (other.clone(), ", which the same UPDATE gives it too")
                } else {
                    taken[n].insert(tuple, key.clone());
                    continue;
                };
                let text = format!(
                    "{what}, {}: updating {} to {} collides with {}{why}",
                    k.name,
                    self.label(key),
                    self.shown(k, cells),
                    self.label(&other),
                );
                out.push(self.collision(n, &tuple, [key, &other], text));
            }
        }
        for (key, cells, _) in staged {
            self.take(&key);
            self.put(cells);
        }
    }

    fn collision(
        &self,
        key: usize,
        tuple: &[String],
        rows: [&String; 2],
        text: String,
    ) -> Collision {
        let mut rows = rows.map(String::clone);
        rows.sort();
        Collision {
            table: self.t.table.clone(),
            key,
            tuple: tuple.to_vec(),
            rows,
            text,
        }
    }

    /// Both rows still hold `c`'s value in unique key `c.key`.
    fn still_holding(&self, c: &Collision) -> bool {
        self.index[c.key]
            .get(&c.tuple)
            .is_some_and(|h| c.rows.iter().all(|r| h.contains(r)))
    }

    /// Where a deferrable key is checked: any value two rows hold.
    fn deferred_duplicates(&self, what: &str, out: &mut Vec<Collision>) {
        for (n, k) in self.keys.iter().enumerate() {
            if !k.deferrable {
                continue;
            }
            let mut dups: Vec<(&Vec<String>, &Vec<String>)> =
                self.index[n].iter().filter(|(_, h)| h.len() > 1).collect();
            dups.sort();
            for (tuple, holders) in dups {
                let cells = &self.rows[&holders[0]];
                let text = format!(
                    "{what}, {}: {} and {} both hold {} where this DEFERRABLE key is checked",
                    k.name,
                    self.label(&holders[0]),
                    self.label(&holders[1]),
                    self.shown(k, cells),
                );
                out.push(self.collision(n, tuple, [&holders[0], &holders[1]], text));
            }
        }
    }
}

/// Two rows holding one value of a unique key at a point where Postgres
/// checks it.
struct Collision {
    table: String,
    key: usize,
    tuple: Vec<String>,
    /// The two rows' keys, sorted.
    rows: [String; 2],
    text: String,
}

/// The written tables as the replay starts from them: each table's diff,
/// its unique keys, and its pulled rows in the diff's column order (none
/// for a table the plan creates).
pub struct ReplayTable<'a> {
    pub diff: &'a TableDiff,
    /// Columns the plan adds to this existing table: rollback drops them
    /// and restores no value there.
    pub added: Vec<String>,
    pub keys: Vec<UniqueKey>,
    pub pulled: Vec<Vec<Option<String>>>,
    /// Its foreign keys to itself ([`self_references`]).
    pub self_refs: Vec<SelfReference>,
}

/// Replays the push, phase by phase in its statement order, then the
/// rollback of it; returns the collisions of each, every one named.
pub fn replay(tables: Vec<ReplayTable<'_>>, phases: &[String]) -> (Vec<String>, Vec<String>) {
    let mut replays: Vec<TableReplay> = tables
        .into_iter()
        .map(|r| {
            let mut t = TableReplay::new(r.diff, r.keys, r.added, r.pulled);
            t.self_refs = r.self_refs;
            t
        })
        .collect();
    let mut push = Vec::new();
    for phase in phases {
        push_phase(&mut replays, phase, &mut push);
    }
    // Rows that still share the value when the push is done break the
    // constraint in the rehearsed state itself, which its UNIQUE check
    // names: not again here.
    push.retain(|c| {
        !replays
            .iter()
            .any(|r| r.t.table == c.table && r.still_holding(c))
    });
    let mut rollback = Vec::new();
    undo(&mut replays, &mut rollback);
    (named_once(push), named_once(rollback))
}

/// A collision at a deferrable key's checkpoint stands until it is
/// resolved: named once, at the first.
fn named_once(collisions: Vec<Collision>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    collisions
        .into_iter()
        .filter(|c| seen.insert((c.table.clone(), c.key, c.tuple.clone(), c.rows.clone())))
        .map(|c| c.text)
        .collect()
}

/// A foreign key of a table to itself: its columns and the ones it
/// references, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfReference {
    pub columns: Vec<String>,
    pub referenced: Vec<String>,
}

/// The foreign keys of `meta` to its own table (`workflows.parent_id ->
/// workflows.id`).
pub fn self_references(meta: &TableMeta) -> Vec<SelfReference> {
    meta.constraints
        .iter()
        .filter(|k| k.kind == "f" && k.ref_table.as_deref() == Some(meta.name.as_str()))
        .filter(|k| !k.columns.is_empty() && k.columns.len() == k.ref_columns.len())
        .map(|k| SelfReference {
            columns: k.columns.clone(),
            referenced: k.ref_columns.clone(),
        })
        .collect()
}

/// One phase's updates of `t`, in two parts: those run before the phase's
/// inserts (where an UPDATE frees a unique value a new row reuses), and
/// the updates of rows pointed, through a foreign key of the table to
/// itself, at a row the same phase inserts, which Postgres refuses until
/// that row exists: run after the inserts. Push and the replay both split
/// them so.
pub fn split_updates(
    t: &TableDiff,
    phase: &str,
    self_refs: &[SelfReference],
) -> (Vec<RowUpdate>, Vec<RowUpdate>) {
    let updates = t.updates_of(phase);
    if self_refs.is_empty() || updates.is_empty() {
        return (updates, Vec::new());
    }
    let position = |c: &String| t.columns.iter().position(|m| &m.name == c);
    // Per self-reference: the referenced values of the rows the phase inserts.
    let inserted: Vec<(&SelfReference, std::collections::HashSet<Vec<String>>)> = self_refs
        .iter()
        .filter_map(|r| {
            let at: Vec<usize> = r.referenced.iter().map(position).collect::<Option<_>>()?;
            let values = t
                .inserts_of(phase)
                .filter_map(|row| at.iter().map(|i| row.row[*i].clone()).collect())
                .collect();
            Some((r, values))
        })
        .collect();
    // The whole row's update moves, not only the key: the push's write
    // accounting expects one UPDATE per row (a value it frees late that a
    // new row needs is then a collision the replay names).
    updates.into_iter().partition(|u| {
        !inserted.iter().any(|(r, values)| {
            let new: Option<Vec<String>> = r
                .columns
                .iter()
                .map(|c| u.changes.iter().find(|ch| &ch.column == c)?.new.clone())
                .collect();
            new.is_some_and(|v| values.contains(&v))
        })
    })
}

/// One phase as push applies it (`ops::push` `apply_phase`): deletes,
/// children first; then per table its UPDATE statements and its COPYs, and
/// the updates that point rows at the ones those COPYs inserted.
fn push_phase(replays: &mut [TableReplay], phase: &str, out: &mut Vec<Collision>) {
    let what = format!("phase {phase}");
    for r in replays.iter_mut().rev() {
        let t = r.t;
        let keys: Vec<String> = t
            .deletes_of(phase)
            .map(|row| r.row_key(&cells(row)))
            .collect();
        r.delete(keys);
    }
    for r in replays.iter_mut() {
        let t = r.t;
        let (updates, after_inserts) = split_updates(t, phase, &r.self_refs);
        update_in_order(r, &updates, &what, out);
        for g in t.insert_groups(phase) {
            let rows = g
                .staged
                .iter()
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .map(|(i, v)| match g.columns.contains(&t.columns[i].name) {
                            true => Cell::Value(v.clone()),
                            false => Cell::Filled,
                        })
                        .collect()
                })
                .collect();
            r.insert(rows, &what, out);
        }
        update_in_order(r, &after_inserts, &what, out);
    }
    for r in replays.iter() {
        r.deferred_duplicates(&what, out);
    }
}

/// The rollback as `db::postgres::rollback` `undo_changes` runs it on the state the
/// push left: per existing table, children first, the pushed rows deleted
/// and the overwritten values restored (one UPDATE per set of columns);
/// then the deleted rows inserted again, parents first.
fn undo(replays: &mut [TableReplay], out: &mut Vec<Collision>) {
    let what = "rollback";
    for r in replays.iter_mut().rev().filter(|r| !r.t.created) {
        let t = r.t;
        let keys: Vec<String> = t.inserts.iter().map(|row| r.row_key(&cells(row))).collect();
        let added: Vec<&str> = r.added.iter().map(String::as_str).collect();
        let restores: Vec<RowUpdate> = crate::diff::without_columns(&t.updates, &added)
            .into_iter()
            .map(|mut u| {
                for c in &mut u.changes {
                    std::mem::swap(&mut c.old, &mut c.new);
                }
                u
            })
            .collect();
        // As `db::postgres::rollback` runs it: a row changed in a key of the table
        // to itself is restored before the pushed rows are deleted.
        let pointer_columns: Vec<&String> =
            r.self_refs.iter().flat_map(|s| s.columns.iter()).collect();
        let (first, rest): (Vec<RowUpdate>, Vec<RowUpdate>) = restores.into_iter().partition(|u| {
            !keys.is_empty()
                && u.changes
                    .iter()
                    .any(|c| pointer_columns.contains(&&c.column))
        });
        update_in_order(r, &first, what, out);
        r.delete(keys);
        update_in_order(r, &rest, what, out);
    }
    for r in replays.iter_mut().filter(|r| !r.t.created) {
        let rows = r.t.deletes.iter().map(|row| cells(row)).collect();
        r.insert(rows, what, out);
    }
    for r in replays.iter() {
        r.deferred_duplicates(what, out);
    }
}

/// `updates` as the UPDATE statements that apply them, in their order.
fn update_in_order(
    r: &mut TableReplay,
    updates: &[RowUpdate],
    what: &str,
    out: &mut Vec<Collision>,
) {
    let statements = update_statements(updates);
    for (n, (_, statement)) in statements.iter().enumerate() {
        let later = statements[n + 1..]
            .iter()
            .flat_map(|(_, rows)| rows)
            .map(|u| crate::types::row_key(u.key.iter().map(|k| Some(k.as_str()))))
            .collect();
        r.update(statement, &later, what, out);
    }
}

fn cells(row: &[Option<String>]) -> Vec<Cell> {
    row.iter().cloned().map(Cell::Value).collect()
}
