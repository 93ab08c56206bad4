//! Row locks on the rows push and rollback update or delete, taken in the
//! same short attempts as the table locks (see `tx`).
//!
//! Why: the table locks keep other writers out, but not a session that
//! locked rows before them — `SELECT … FOR UPDATE` takes only ROW SHARE on
//! the table, which SHARE ROW EXCLUSIVE does not conflict with, and a
//! transaction that updated a row holds it until it ends. Our UPDATE or
//! DELETE of such a row would wait on it inside the statement, holding the
//! table locks, and the app's writers of the table would queue behind us
//! until Postgres gave up with a bare "canceling statement due to lock
//! timeout". Locked with the tables, in the same savepoint, a failed
//! attempt lets go of the table locks too, so no app session waits behind
//! us for longer than one attempt, and giving up names the rows and the
//! sessions holding them.

use anyhow::{Context, Result};
use tokio_postgres::types::Type;
use tokio_postgres::{SimpleQueryMessage, Transaction};

use crate::db::postgres::rowset::{key_join, RowSet, ROW_NUMBER};
use crate::types::quote_ident;

/// How strongly a row is locked: as the statement that writes it will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLockMode {
    /// What an UPDATE leaving the key alone takes: an app inserting a row
    /// that references this one (FOR KEY SHARE) goes on.
    NoKeyUpdate,
    /// What a DELETE or a key-changing UPDATE takes.
    Update,
    /// What the foreign key check of a new row takes on the row it
    /// references: only a FOR UPDATE (or a delete) is in its way.
    KeyShare,
}

impl RowLockMode {
    fn sql(self) -> &'static str {
        match self {
            RowLockMode::NoKeyUpdate => "FOR NO KEY UPDATE",
            RowLockMode::Update => "FOR UPDATE",
            RowLockMode::KeyShare => "FOR KEY SHARE",
        }
    }
}

/// Rows of one table in schema `public`, by key, to lock before they are
/// written. Keys of rows that do not exist (yet) lock nothing.
#[derive(Debug, Clone)]
pub struct RowLock {
    pub table: String,
    key: Vec<String>,
    keys: RowSet,
    /// `alias.k = u.k_k::type AND …` (pinned search_path spellings).
    join: String,
    mode: RowLockMode,
}

impl RowLock {
    /// `key` columns with their types (as the snapshot or receipt spells
    /// them, under the pinned search_path) and the key values of each row.
    pub fn new(
        table: &str,
        key: &[String],
        key_types: &[String],
        rows: &[Vec<Option<String>>],
        mode: RowLockMode,
    ) -> RowLock {
        let mut columns = vec![ROW_NUMBER.to_string()];
        columns.extend(key.iter().map(|k| format!("k_{k}")));
        let numbered: Vec<Vec<Option<String>>> = rows
            .iter()
            .enumerate()
            .map(|(n, r)| {
                std::iter::once(Some((n + 1).to_string()))
                    .chain(r.iter().cloned())
                    .collect()
            })
            .collect();
        RowLock {
            table: table.to_string(),
            key: key.to_vec(),
            keys: RowSet::new(&columns, &numbered),
            join: key_join(key, key_types, "t", "u"),
            mode,
        }
    }

    /// The rows as a FROM list, matched by key.
    fn rows(&self) -> String {
        format!(
            "public.{} t, {} WHERE {}",
            quote_ident(&self.table),
            self.keys.from_item("u"),
            self.join
        )
    }

    /// Locks the rows (one row of output, whatever their number).
    pub fn lock_sql(&self) -> String {
        format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} {} OF t) l;",
            self.rows(),
            self.mode.sql()
        )
    }

    /// The rows another session holds (those a `SKIP LOCKED` lock skips),
    /// by key, with the transaction holding each (`xmax`).
    fn held_sql(&self) -> String {
        let key: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("t.{}::text", quote_ident(k)))
            .collect();
        format!(
            "WITH free AS (SELECT t.ctid AS c FROM {rows} {mode} OF t SKIP LOCKED) \
             SELECT t.xmax::text, {key} FROM {rows} AND t.ctid NOT IN (SELECT c FROM free) \
             ORDER BY 2 LIMIT 10",
            rows = self.rows(),
            mode = self.mode.sql(),
            key = key.join(", ")
        )
    }
}

/// The rows of `diff`'s existing tables that the push updates or deletes,
/// as row locks: an UPDATE's rows FOR NO KEY UPDATE (FOR UPDATE when it
/// changes a key column), a DELETE's FOR UPDATE; and the existing rows its
/// new rows reference (the `f` constraints among `constraints` of each
/// written table), FOR KEY SHARE, as the foreign key check will lock them.
/// Rows the push inserts itself do not exist yet and lock nothing.
pub fn push_row_locks(
    diff: &crate::diff::Diff,
    constraints: &dyn Fn(&str) -> Result<Vec<crate::catalog::ConstraintMeta>>,
    created: &dyn Fn(&str) -> bool,
) -> Result<Vec<RowLock>> {
    let mut out = Vec::new();
    for t in &diff.tables {
        for fk in constraints(&t.table)?.iter().filter(|c| c.kind == "f") {
            // A parent outside `public` is named `schema.table`: left to the
            // foreign key check itself.
            let Some(parent) = fk.ref_table.as_deref().filter(|p| !p.contains('.')) else {
                continue;
            };
            if created(parent) || fk.ref_columns.len() != fk.columns.len() {
                continue;
            }
            let positions: Vec<usize> = fk
                .columns
                .iter()
                .filter_map(|c| t.columns.iter().position(|m| &m.name == c))
                .collect();
            if positions.len() != fk.columns.len() {
                continue;
            }
            // The child's column types: a foreign key compares equal values.
            let types = positions
                .iter()
                .map(|i| {
                    crate::db::postgres::apply::cast_spelling(&t.table, &t.columns[*i])
                        .map(str::to_string)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut keys: Vec<Vec<Option<String>>> = t
                .phase_inserts
                .iter()
                .map(|r| positions.iter().map(|i| r.row[*i].clone()).collect())
                .filter(|k: &Vec<Option<String>>| k.iter().all(Option::is_some))
                .collect();
            keys.sort();
            keys.dedup();
            if !keys.is_empty() {
                out.push(RowLock::new(
                    parent,
                    &fk.ref_columns,
                    &types,
                    &keys,
                    RowLockMode::KeyShare,
                ));
            }
        }
    }
    for t in diff.tables.iter().filter(|t| !t.created) {
        let positions = crate::db::postgres::apply::key_positions_of(t)?;
        let key_types = positions
            .iter()
            .map(|i| {
                crate::db::postgres::apply::cast_spelling(&t.table, &t.columns[*i])
                    .map(str::to_string)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut by_mode: [(RowLockMode, Vec<Vec<Option<String>>>); 2] = [
            (RowLockMode::NoKeyUpdate, vec![]),
            (RowLockMode::Update, vec![]),
        ];
        for u in &t.phase_updates {
            let keyed = u.update.changes.iter().any(|c| t.key.contains(&c.column));
            let key: Vec<Option<String>> = u.update.key.iter().cloned().map(Some).collect();
            by_mode[usize::from(keyed)].1.push(key);
        }
        for d in &t.phase_deletes {
            by_mode[1]
                .1
                .push(positions.iter().map(|i| d.row[*i].clone()).collect());
        }
        for (mode, mut keys) in by_mode {
            keys.sort();
            keys.dedup();
            if !keys.is_empty() {
                out.push(RowLock::new(&t.table, &t.key, &key_types, &keys, mode));
            }
        }
    }
    Ok(out)
}

/// After a failed attempt: which of `rows` other sessions hold, and who
/// holds them — `row id=… of T is held by pid N (…)`. A row is held by
/// the transaction in its `xmax`; when that is a group of lockers
/// (a multixact), the sessions that may hold it are those with a row lock
/// or write on its table. The probe's own locks are let go at once.
pub async fn row_blockers(tx: &Transaction<'_>, rows: &[RowLock]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in rows {
        let held: Vec<Vec<String>> = {
            let probe = tx
                .simple_query(&format!(
                    "SAVEPOINT sandbox_row_probe; {}; ROLLBACK TO SAVEPOINT sandbox_row_probe; \
                     RELEASE SAVEPOINT sandbox_row_probe",
                    r.held_sql()
                ))
                .await;
            // The probe needs ROW SHARE on the table: a session holding it
            // exclusively (named among the table's blockers) keeps it out
            // for one attempt. Then the rows go unnamed.
            let Ok(messages) = probe else {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT sandbox_row_probe; RELEASE SAVEPOINT sandbox_row_probe",
                )
                .await
                .with_context(|| format!("cannot leave the probe of the rows of {}", r.table))?;
                continue;
            };
            messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        };
        for h in held {
            let (xmax, key) = (h[0].clone(), &h[1..]);
            let label = crate::types::row_label(&r.key, key.iter().map(|v| Some(v.as_str())));
            let sessions = tx
                .query_typed(
                    &format!(
                        "SELECT {} FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND \
                         (a.backend_xid::text = $1 OR (NOT EXISTS (SELECT 1 FROM pg_stat_activity b \
                         WHERE b.backend_xid::text = $1) AND a.pid IN (SELECT l.pid FROM pg_locks l \
                         WHERE l.granted AND l.relation = to_regclass($2) \
                         AND l.mode IN ('RowShareLock', 'RowExclusiveLock')))) ORDER BY a.pid",
                        crate::db::postgres::tx::SESSION_COLUMNS
                    ),
                    &[
                        (&xmax, Type::TEXT),
                        (&format!("public.{}", quote_ident(&r.table)), Type::TEXT),
                    ],
                )
                .await
                .context("cannot read pg_stat_activity to name the sessions holding the rows")?;
            let who: Vec<String> = sessions
                .iter()
                .map(|row| crate::db::postgres::tx::session_line(row, ""))
                .collect();
            out.push(format!(
                "row {label} of {} is held by {}",
                r.table,
                if who.is_empty() {
                    "a transaction that had ended when we looked".to_string()
                } else {
                    who.join(" and by ")
                }
            ));
        }
    }
    Ok(out)
}
