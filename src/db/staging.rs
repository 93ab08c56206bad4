//! Staged tables: the copies, inside the snapshot, of the tables a plan
//! writes or creates. Every rule of the Postgres catalog that SQLite can
//! evaluate is enforced on them — NOT NULL, primary keys, UNIQUE
//! constraints and plain unique indexes, foreign keys, enum values,
//! constant defaults, no value in generated or identity ALWAYS columns —
//! and each violation is a named check (constraint, table, row key), never
//! a SQLite error. What only Postgres can decide (CHECK expressions,
//! expression or partial unique indexes, defaults it computes, domains'
//! checks, triggers, foreign keys to tables outside the snapshot) is listed
//! for the preflight, which runs it on the real server.
//!
//! A column Postgres fills (a default that is not a constant, an identity
//! BY DEFAULT) is "not set" in a new row only when the plan left it out:
//! while a phase's SQL runs such a column defaults to [`LEFT_TO_POSTGRES`],
//! and after the phase each row holding it is recorded in
//! `_sandbox_left_to_postgres` and the column set back to NULL. A NULL not
//! recorded there is one the plan wrote: the push writes NULL. Generated
//! and identity ALWAYS columns are always Postgres's.

use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::Connection;
use serde::Serialize;

use crate::catalog::{ArrayElement, ColumnMeta, ConstraintMeta, TableMeta};
use crate::db::sqlite::{ident_list, table_exists, to_sqlite, Snapshot};
use crate::plan::checks::{Check, CheckKind};
use crate::plan::rowjson::{each_element, parse_array_delimited};
use crate::types::quote_ident;

/// The phase label of the constraint checks in a rehearsal report.
pub const CONSTRAINTS_PHASE: &str = "constraints";

/// What a column Postgres fills holds, while a phase's SQL runs, in a row
/// the phase inserted without setting it; it never outlives the phase (see
/// [`record_left_to_postgres`]). A BLOB, never text: a pulled value is
/// stored as text or a number (bytea as its `\\x…` text), so no row of
/// the app's can hold it — as text, a pulled value that happened to read
/// `<left to Postgres>` was taken for the marker and pushed as NULL.
pub const LEFT_TO_POSTGRES: &[u8] = b"\0<left to Postgres>";

/// [`LEFT_TO_POSTGRES`] as a SQLite BLOB literal, for a column DEFAULT.
fn left_to_postgres_literal() -> String {
    blob_literal(LEFT_TO_POSTGRES)
}

/// What a column of a working table holds, for an instant, in a row an
/// INSERT just wrote without listing the column: the trigger of
/// [`working_table_triggers`] replaces it before anything reads the row.
/// A BLOB no pulled value can be (see [`LEFT_TO_POSTGRES`]).
pub const NOT_LISTED: &[u8] = b"\0<not listed by the statement>";

fn blob_literal(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("X'{hex}'")
}

/// Where the rehearsal records, per table, row key and column, the
/// columns of new rows the plan left to Postgres.
pub const LEFT_TO_POSTGRES_DDL: &str = "CREATE TABLE IF NOT EXISTS main._sandbox_left_to_postgres (
  table_name TEXT NOT NULL, row_key TEXT NOT NULL, column_name TEXT NOT NULL,
  PRIMARY KEY (table_name, row_key, column_name))";

/// A column that takes [`LEFT_TO_POSTGRES`] in a working table: Postgres
/// fills it when a row leaves it out, and the plan may write it.
/// A primary key column never does: the push needs every new row's key
/// before it writes, and two rows both holding the marker would collide on
/// the staged key as a raw SQLite error. A new row leaving it out keeps
/// NULL there, which [`keyless_new_rows_check`] names.
fn may_be_left(c: &ColumnMeta, meta: &TableMeta) -> bool {
    c.filled_by_postgres() && !c.never_written() && !meta.primary_key().contains(&c.name)
}

/// The primary key columns of `meta` Postgres would fill for a new row
/// that leaves them out (identity, serial, a `nextval(…)` or other
/// computed default).
fn key_left_to_postgres(meta: &TableMeta) -> Vec<&ColumnMeta> {
    meta.primary_key()
        .iter()
        .filter_map(|k| meta.columns.iter().find(|c| &c.name == k))
        .filter(|c| c.filled_by_postgres())
        .collect()
}

/// The check that every new row of `table_sql` (the working or staged
/// form of `meta`) has a primary key the plan set: a row whose key is
/// NULL left it to Postgres, which fills it (identity, serial, computed
/// default) where rehearsal, diff, receipt and rollback cannot name the
/// row, or refuses it (a plain key). The rows are named by their other
/// values, in the order they were inserted. `None` when no key column is
/// Postgres's to fill and no row leaves one out.
pub fn keyless_new_rows_check(
    conn: &Connection,
    meta: &TableMeta,
    table_sql: &str,
    phase: &str,
) -> Result<Option<Check>> {
    let key = meta.primary_key();
    let key_columns: Vec<&ColumnMeta> = key
        .iter()
        .filter_map(|k| meta.columns.iter().find(|c| &c.name == k))
        .collect();
    if key_columns.is_empty() {
        return Ok(None);
    }
    let left = key_left_to_postgres(meta);
    let null = key_columns
        .iter()
        .map(|c| format!("s.{} IS NULL", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let shown = meta
        .columns
        .iter()
        .filter(|c| !key.contains(&c.name))
        .map(|c| {
            format!(
                "'{} = ' || quote(s.{})",
                c.name.replace('\'', "''"),
                quote_ident(&c.name)
            )
        })
        .collect::<Vec<_>>();
    let shown = if shown.is_empty() {
        "''".to_string()
    } else {
        shown.join(" || ', ' || ")
    };
    let rows = rows_of(
        conn,
        &format!(
            "SELECT 'new row ' || row_number() OVER (ORDER BY s.rowid) || ' (' || {shown} || ')' \
             FROM {table_sql} s WHERE {null} ORDER BY s.rowid"
        ),
    )?;
    if left.is_empty() && rows.is_empty() {
        // A key no one can leave out: nothing to report while every row
        // gives it (the check shows only where Postgres could fill it).
        return Ok(None);
    }
    let t = &meta.name;
    let mut check = Check::no_rows(
        phase,
        &format!("{t}: new rows have a primary key set by the plan"),
        CheckKind::Constraint,
        rows,
    );
    if check.ok {
        // The advice is for a failure; a passing check reads as any other.
        return Ok(Some(check));
    }
    // Only the key columns some new row leaves NULL are explained.
    let mut how = Vec::new();
    for c in &key_columns {
        let col = quote_ident(&c.name);
        let missing: bool = conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {table_sql} s WHERE s.{col} IS NULL)"),
            [],
            |r| r.get(0),
        )?;
        if !missing {
            continue;
        }
        how.push(if left.contains(c) {
            let what = match (&c.identity, c.numbered_by_sequence()) {
                (Some(_), _) => "an identity",
                (None, true) => "a serial (nextval) column",
                (None, false) => "a column with a computed default",
            };
            format!(
                "{} is {what} Postgres would fill, but the push needs each key before it \
                 writes: the rehearsal's record of changes, the diff, the receipt and rollback \
                 name rows by it",
                c.name
            )
        } else {
            format!(
                "{} has no default, identity or sequence: Postgres refuses a row without it",
                c.name
            )
        });
    }
    let pkey = meta
        .constraints
        .iter()
        .find(|k| k.kind == "p")
        .map(|k| k.name.clone())
        .unwrap_or_else(|| format!("{t}_pkey"));
    let k = key_columns[0].name.as_str();
    let integer_advice = if key_columns.iter().any(|c| c.numbered_by_sequence()) {
        format!(
            "explicit ids above the current max for an integer key (e.g. (SELECT max({k}) FROM \
             {t}) + row number; the push then moves the sequence past them)"
        )
    } else {
        format!("explicit ids for an integer key (e.g. (SELECT max({k}) FROM {t}) + row number)")
    };
    check.expected = format!(
        "0 rows: every new row gives its primary key, PRIMARY KEY {pkey} ({key_list}) ({how}). \
         Give new rows their key: {integer_advice}, or plan_uuid('{t}', <natural key>) for a \
         uuid or text key",
        key_list = key.join(", "),
        how = how.join("; "),
    );
    Ok(Some(check))
}

/// The check that no pulled row a phase deleted and inserted again under
/// its key left a column to Postgres. The push writes such a row as an
/// UPDATE of the pulled row (the key is the same), and an UPDATE fills
/// nothing: a column the INSERT left out would be written NULL where
/// Postgres gives a new row its default (`now()`, a new uuid). `None` when
/// no such row exists (`pulled`: the table holds pulled rows).
pub fn reinserted_rows_check(
    conn: &Connection,
    meta: &TableMeta,
    pulled: bool,
    phase: &str,
) -> Result<Option<Check>> {
    let key = meta.primary_key();
    if !pulled || key.is_empty() {
        return Ok(None);
    }
    let rows = {
        let mut stmt = conn.prepare(&format!(
            "SELECT '{}=' || u.row_key || ': ' || group_concat(u.column_name, ', ') \
             FROM main._sandbox_left_to_postgres u \
             WHERE u.table_name = ?1 AND u.row_key IN (SELECT {} FROM main.{} p) \
             GROUP BY u.row_key ORDER BY u.row_key",
            key.join(", ").replace('\'', "''"),
            crate::types::row_key_sql(&key, "p"),
            quote_ident(&meta.name)
        ))?;
        let rows = stmt
            .query_map([&meta.name], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    if rows.is_empty() {
        return Ok(None);
    }
    let t = &meta.name;
    let mut check = Check::no_rows(
        phase,
        &format!("{t}: pulled rows inserted again leave no column to Postgres"),
        CheckKind::Constraint,
        rows,
    );
    check.expected = format!(
        "0 rows: a row deleted and inserted again under its pulled key is pushed as an UPDATE \
         of that row, which fills nothing — the columns listed would be written NULL, not given \
         their default as a new row's are. Give them in the INSERT (the pulled value, or what \
         the default computes), or UPDATE the row instead of deleting and inserting it ({t}, \
         key {})",
        key.join(", ")
    );
    Ok(Some(check))
}

/// After a phase's SQL: records every row of `table_sql` (the working form
/// of `meta`) whose column holds [`LEFT_TO_POSTGRES`], and puts NULL back,
/// so conflicts, expectations and later phases see what they always saw.
pub fn record_left_to_postgres(conn: &Connection, meta: &TableMeta, table_sql: &str) -> Result<()> {
    let key = meta.primary_key();
    if key.is_empty() {
        // The rehearsal fails such a table by name; no row can be recorded.
        return Ok(());
    }
    conn.execute_batch(LEFT_TO_POSTGRES_DDL)?;
    for c in meta.columns.iter().filter(|c| may_be_left(c, meta)) {
        let col = quote_ident(&c.name);
        conn.execute(
            &format!(
                "INSERT OR IGNORE INTO main._sandbox_left_to_postgres \
                 SELECT ?1, {}, ?2 FROM {table_sql} s WHERE s.{col} IS ?3",
                crate::types::row_key_sql(&key, "s")
            ),
            rusqlite::params![meta.name, c.name, LEFT_TO_POSTGRES],
        )?;
        conn.execute(
            &format!("UPDATE {table_sql} SET {col} = NULL WHERE {col} IS ?1"),
            [LEFT_TO_POSTGRES],
        )?;
    }
    Ok(())
}

/// SQL true when row `s` of `meta` left column `c` to Postgres.
fn left_sql(meta: &TableMeta, c: &ColumnMeta) -> String {
    format!(
        "EXISTS (SELECT 1 FROM main._sandbox_left_to_postgres u WHERE u.table_name = '{}' \
         AND u.column_name = '{}' AND u.row_key = {})",
        meta.name.replace('\'', "''"),
        c.name.replace('\'', "''"),
        crate::types::row_key_sql(&meta.primary_key(), "s")
    )
}

/// `CREATE TABLE` of a staged table: the one definition every staged table
/// (copied from a pulled one, or created by the plan) gets. Columns with a
/// constant default take it when an INSERT leaves them out, as on Postgres;
/// the primary key is declared; every other rule is checked by
/// [`constraint_checks`], which names the rows instead of stopping at the
/// first.
pub fn staged_table_ddl(meta: &TableMeta, sqlite_name: &str) -> Result<String> {
    table_ddl(meta, sqlite_name, Declared::Stored)
}

/// How a staged column is declared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Declared {
    /// With its storage's affinity (INTEGER or TEXT): the stored
    /// `staged_<table>`, which the diff, the push and a DB browser read.
    Stored,
    /// Without affinity where the value must stay exact (integers, dates
    /// and timestamps, jsonb): the working copy a phase writes. Affinity
    /// would convert what the phase wrote before any check saw it —
    /// `9007199254740993*1.0` into the INTEGER 9007199254740992 — so the
    /// column keeps the storage class the SQL produced, and
    /// `plan::sql::settle_values` makes it exact (or names it) after the
    /// phase. numeric and floating-point columns are the exception: TEXT
    /// with the collation `pg_numeric` (`db::collation`), because without
    /// affinity their text compares greater than every number (`cost > 0.2`
    /// held for every row, where Postgres compares the numbers).
    Working,
}

/// [`staged_table_ddl`] of a working copy, whose exactness-sensitive
/// columns have no affinity while the phases run (see [`Declared::Working`]).
pub fn working_table_ddl(meta: &TableMeta, sqlite_name: &str) -> Result<String> {
    table_ddl(meta, sqlite_name, Declared::Working)
}

fn table_ddl(meta: &TableMeta, sqlite_name: &str, declared: Declared) -> Result<String> {
    let mut parts = Vec::with_capacity(meta.columns.len() + 1);
    let key = meta.primary_key();
    for c in &meta.columns {
        let decl = if declared == Declared::Working && !key.contains(&c.name) {
            // What a row gets where an INSERT leaves the column out is
            // decided by the trigger of [`working_table_triggers`]: the
            // row's value before a REPLACE, else the column's default.
            format!(
                "{} DEFAULT {}",
                staged_column_type(c, declared)?,
                blob_literal(NOT_LISTED)
            )
        } else {
            staged_column_decl(c, declared)?
        };
        parts.push(if key.len() == 1 && key[0] == c.name {
            not_rowid(decl, c)
        } else {
            decl
        });
    }
    let pk = meta.primary_key();
    if !pk.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", ident_list(&pk)));
    }
    Ok(format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_ident(sqlite_name),
        parts.join(",\n  ")
    ))
}

/// A single-column key declared `INTEGER` would be SQLite's rowid, which
/// turns a NULL the plan left there into a number of its own choosing:
/// the staged row would show a key nobody wrote (the sequence "given
/// values", the key check passing on the staged rows while the phase
/// failed it, the diff differing from the phase's record). `INT` has the
/// same INTEGER affinity and is not the rowid, so the NULL stays and is
/// named by [`keyless_new_rows_check`].
fn not_rowid(decl: String, c: &ColumnMeta) -> String {
    let prefix = format!("{} INTEGER", quote_ident(&c.name));
    match decl.strip_prefix(&prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
            format!("{} INT{rest}", quote_ident(&c.name))
        }
        _ => decl,
    }
}

/// `ALTER TABLE … ADD COLUMN` of a column the plan adds to working copy
/// `temp.<sqlite_name>` (typed as [`working_table_ddl`] types it), then
/// what Postgres's `ADD COLUMN` gives the rows already there: the column's
/// constant default, else NULL. Like the working table's other columns it
/// defaults to [`NOT_LISTED`] afterwards, so that the triggers of
/// [`working_table_triggers`] (made again with it) see which INSERT left
/// it out.
pub fn working_add_column_sql(sqlite_name: &str, column: &ColumnMeta) -> Result<String> {
    let t = quote_ident(sqlite_name);
    let value = match constant_default(column) {
        Some(v) => default_literal(column, v)?,
        None => "NULL".to_string(),
    };
    Ok(format!(
        "ALTER TABLE temp.{t} ADD COLUMN {} DEFAULT {};
UPDATE temp.{t} SET {} = {value};",
        staged_column_type(column, Declared::Working)?,
        blob_literal(NOT_LISTED),
        quote_ident(&column.name),
    ))
}

/// The SQL value a new row gets in column `c` of `meta` when the INSERT
/// leaves it out: its constant default, [`LEFT_TO_POSTGRES`] where
/// Postgres fills it, else NULL.
fn new_row_default(c: &ColumnMeta, meta: &TableMeta) -> Result<String> {
    if may_be_left(c, meta) {
        // Shown until the phase ends (see [`record_left_to_postgres`]).
        return Ok(left_to_postgres_literal());
    }
    Ok(match constant_default(c) {
        Some(v) => default_literal(c, v)?,
        None => "NULL".to_string(),
    })
}

fn default_literal(c: &ColumnMeta, v: &str) -> Result<String> {
    Ok(match to_sqlite(c, Some(v))? {
        Value::Integer(i) => i.to_string(),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Null | Value::Real(_) | Value::Blob(_) => "NULL".to_string(),
    })
}

/// The table that holds, while one row is inserted into working table
/// `table`, the row of the same key the insert replaces (if any).
fn replaced_table(table: &str) -> String {
    format!("_sandbox_replaced_{table}")
}

/// The prefix of the triggers [`working_table_triggers`] creates: the
/// plan's SQL authorizer lets them through without counting their reads
/// and writes as the phase's.
pub const TRIGGER_PREFIX: &str = "_sandbox_";

/// SQLite's `REPLACE INTO t (id, name) …` (or `INSERT OR REPLACE`) of a
/// row that exists deletes it and inserts a new one, whose columns the
/// statement does not list get their defaults; on Postgres the plan's
/// intent is an UPDATE of the listed columns, and the push writes the
/// staged row as one: `created_at` would be overwritten with NULL, a
/// constant default with the default. These two TEMP triggers make a
/// working table keep, in such a row, what the replaced row held in every
/// column the statement did not list (the [`NOT_LISTED`] default shows
/// which): the BEFORE trigger copies the row of the new row's key, if
/// any, the AFTER trigger fills the unlisted columns from it, or with the
/// column's default for a row that is really new. SQLite fires both for
/// one row before it inserts the next, so one copy at a time suffices.
///
/// `added` names the columns the plan added to the table in an earlier
/// phase: a new row leaving one out gets the column's constant default (or
/// NULL), as before, but a REPLACE of an existing row keeps what the row
/// held there — Postgres's UPDATE keeps it.
///
/// A third trigger resolves the marker where an upsert copies it:
/// `INSERT … (id, name) … ON CONFLICT (id) DO UPDATE SET created_at =
/// excluded.created_at` updates the existing row with the value the
/// proposed row had in a column it did not list, which on Postgres is the
/// column's default. A constant default (or none: NULL) is written as
/// Postgres writes it; a default only Postgres computes (`now()`, a
/// sequence, an identity, a generated expression) the rehearsal cannot
/// know: the row keeps its value and the row and column are recorded in
/// [`EXCLUDED_LEFT`] for [`excluded_left_check`] to name.
pub fn working_table_triggers(meta: &TableMeta, added: &[String]) -> Result<String> {
    let t = quote_ident(&meta.name);
    let replaced = quote_ident(&replaced_table(&meta.name));
    let key = meta.primary_key();
    let trigger = |what: &str| quote_ident(&format!("{TRIGGER_PREFIX}{what}_{}", meta.name));
    let marker = blob_literal(NOT_LISTED);
    // The default a row gets in column `c` when an INSERT leaves it out.
    let default_of = |c: &ColumnMeta| -> Result<String> {
        if added.contains(&c.name) {
            Ok(match constant_default(c) {
                Some(v) => default_literal(c, v)?,
                None => "NULL".to_string(),
            })
        } else {
            new_row_default(c, meta)
        }
    };
    let same_key = if key.is_empty() {
        // Without a key nothing is replaced (the rehearsal fails such a
        // table by name).
        "0".to_string()
    } else {
        key.iter()
            .map(|k| format!("{0} = new.{0}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let mut sets = Vec::new();
    let mut when = Vec::new();
    let mut resolved = Vec::new();
    let mut unknown = Vec::new();
    let row_key = if key.is_empty() {
        "''".to_string()
    } else {
        crate::types::row_key_sql(&key, "new")
    };
    for c in meta.columns.iter().filter(|c| !key.contains(&c.name)) {
        let col = quote_ident(&c.name);
        let default = default_of(c)?;
        sets.push(format!(
            "{col} = CASE WHEN {col} IS {marker} THEN CASE WHEN EXISTS (SELECT 1 FROM {replaced}) \
             THEN (SELECT {col} FROM {replaced}) ELSE {default} END ELSE {col} END"
        ));
        when.push(format!("new.{col} IS {marker}"));
        if c.filled_by_postgres() {
            // A row an earlier statement of the phase inserted leaving the
            // column to Postgres holds that marker: copying the default
            // again leaves it to Postgres still.
            unknown.push(format!(
                "INSERT OR IGNORE INTO {EXCLUDED_LEFT} SELECT '{}', {row_key}, '{}' \
                 WHERE new.{col} IS {marker} AND old.{col} IS NOT {left};",
                meta.name.replace('\'', "''"),
                c.name.replace('\'', "''"),
                left = left_to_postgres_literal(),
            ));
            resolved.push(format!(
                "{col} = CASE WHEN {col} IS {marker} THEN old.{col} ELSE {col} END"
            ));
        } else {
            resolved.push(format!(
                "{col} = CASE WHEN {col} IS {marker} THEN {default} ELSE {col} END"
            ));
        }
    }
    if sets.is_empty() {
        return Ok(String::new());
    }
    // Named columns: a column a later phase adds is not copied until the
    // triggers are made again with it (`plan::stage::apply_phase_ddl`).
    let cols = ident_list(&meta.column_names());
    let (before, after, after_update) = (
        trigger("before_insert"),
        trigger("after_insert"),
        trigger("after_update"),
    );
    Ok(format!(
        "DROP TRIGGER IF EXISTS temp.{before};
DROP TRIGGER IF EXISTS temp.{after};
DROP TRIGGER IF EXISTS temp.{after_update};
DROP TABLE IF EXISTS temp.{replaced};
CREATE TEMP TABLE IF NOT EXISTS {EXCLUDED_LEFT} (table_name TEXT NOT NULL, row_key TEXT NOT NULL,
  column_name TEXT NOT NULL, PRIMARY KEY (table_name, row_key, column_name));
CREATE TEMP TABLE {replaced} AS SELECT {cols} FROM temp.{t} WHERE 0;
CREATE TEMP TRIGGER {before} BEFORE INSERT ON {t} BEGIN
  DELETE FROM {replaced};
  INSERT INTO {replaced} ({cols}) SELECT {cols} FROM {t} WHERE {same_key};
END;
CREATE TEMP TRIGGER {after} AFTER INSERT ON {t} BEGIN
  UPDATE {t} SET {sets} WHERE rowid = new.rowid;
  DELETE FROM {replaced};
END;
CREATE TEMP TRIGGER {after_update} AFTER UPDATE ON {t} WHEN {when} BEGIN
  {unknown}
  UPDATE {t} SET {resolved} WHERE rowid = new.rowid;
END;",
        sets = sets.join(",\n    "),
        when = when.join(" OR "),
        unknown = unknown.join("\n  "),
        resolved = resolved.join(",\n    "),
    ))
}

/// Where the trigger of [`working_table_triggers`] records, while a phase
/// runs, the rows an upsert gave `excluded.<column>` of a column the INSERT
/// left to Postgres (TEMP: it lives as long as the working tables).
pub const EXCLUDED_LEFT: &str = "_sandbox_excluded_left";

/// After a phase's SQL: the rows of `meta` where an upsert copied
/// `excluded.<column>` of a column the statement left for Postgres to fill
/// (see [`working_table_triggers`]), as one failed check naming table, row
/// key and columns; `None` when there are none. The records are cleared.
pub fn excluded_left_check(
    conn: &Connection,
    meta: &TableMeta,
    phase: &str,
) -> Result<Option<Check>> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM temp.sqlite_master WHERE type = 'table' AND name = ?1",
        [EXCLUDED_LEFT],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(None);
    }
    let key = meta.primary_key();
    let rows = {
        let mut stmt = conn.prepare(&format!(
            "SELECT '{}=' || row_key || ': ' || group_concat(column_name, ', ') \
             FROM temp.{EXCLUDED_LEFT} WHERE table_name = ?1 GROUP BY row_key ORDER BY row_key",
            key.join(", ").replace('\'', "''"),
        ))?;
        let rows = stmt
            .query_map([&meta.name], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    conn.execute(
        &format!("DELETE FROM temp.{EXCLUDED_LEFT} WHERE table_name = ?1"),
        [&meta.name],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let t = &meta.name;
    let defaults: Vec<String> = meta
        .columns
        .iter()
        .filter(|c| c.filled_by_postgres() && rows.iter().any(|r| r.contains(&c.name)))
        .map(|c| format!("{} ({})", c.name, filled_how(c)))
        .collect();
    let mut check = Check::no_rows(
        phase,
        &format!("{t}: upserts copy no column left to Postgres from excluded"),
        CheckKind::Constraint,
        rows,
    );
    check.expected = format!(
        "0 rows: ON CONFLICT … DO UPDATE SET c = excluded.c, where the INSERT does not list c, \
         gives the row what Postgres fills for the proposed row — {} — which the rehearsal cannot \
         compute, so it cannot show the row as Postgres will leave it (it kept the row's value). \
         List the column in the INSERT with the value it should get, or leave it out of DO \
         UPDATE SET ({t}, key {})",
        defaults.join(", "),
        key.join(", ")
    );
    Ok(Some(check))
}

/// How Postgres fills a column the plan leaves out, in words.
fn filled_how(c: &ColumnMeta) -> String {
    if c.generated.is_some() {
        "generated".to_string()
    } else if c.identity.is_some() {
        "identity".to_string()
    } else {
        format!("default {}", c.default.as_deref().unwrap_or("?"))
    }
}

/// Drops the table [`working_table_triggers`] created beside working
/// table `table` (the triggers go with the table).
pub fn drop_working_table_helpers(conn: &Connection, table: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.{}",
        quote_ident(&replaced_table(table))
    ))?;
    Ok(())
}

fn staged_column_type(c: &ColumnMeta, declared: Declared) -> Result<String> {
    let working = declared == Declared::Working;
    let value_type = c.value_type();
    let ty = if working && crate::db::collation::numeric_text(&value_type) {
        // Compared as numbers, as on Postgres (`cost > 0.2`): TEXT affinity
        // turns the number into text, the collation compares the two as
        // decimals. A REAL written here becomes SQLite's 15-digit text of
        // it; `plan::sql::rounded_by_real` names the values that may have
        // lost digits that way.
        format!("TEXT COLLATE {}", crate::db::collation::NUMERIC)
    } else if working && crate::types::exactness(&value_type).is_some() {
        // BLOB is SQLite's name for "no affinity": values stay as written.
        // A date or timestamp compares with text as the moment it is.
        match crate::db::collation::collation_for(&value_type) {
            Some(collation) => format!("BLOB COLLATE {collation}"),
            None => "BLOB".to_string(),
        }
    } else {
        match crate::db::collation::collation_of(c).filter(|_| working) {
            // An enum by its labels' order, character(n) without its
            // padding, as Postgres compares them (`db::collation`).
            Some(collation) => format!("{} COLLATE {collation}", c.storage().sqlite_decl()),
            None => c.storage().sqlite_decl().to_string(),
        }
    };
    Ok(format!("{} {ty}", quote_ident(&c.name)))
}

fn staged_column_decl(c: &ColumnMeta, declared: Declared) -> Result<String> {
    let mut decl = staged_column_type(c, declared)?;
    if let Some(v) = constant_default(c) {
        decl.push_str(&format!(" DEFAULT {}", default_literal(c, v)?));
    }
    Ok(decl)
}

/// The value a new row gets when the plan leaves the column out and the
/// default is a constant.
pub fn constant_default(c: &ColumnMeta) -> Option<&str> {
    if c.default_constant && c.generated.is_none() && c.identity.is_none() {
        c.default_value.as_deref()
    } else {
        None
    }
}

/// Something the rehearsal cannot decide and the preflight decides on
/// Postgres.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightItem {
    pub table: String,
    /// `check`, `exclusion`, `unique_index`, `unique` (a key over a
    /// non-deterministic collation), `foreign_key`, `filled_by_postgres`,
    /// `sequence`, `domain_check`, `trigger`, `text_order` (a check query
    /// comparing text the rehearsal cannot order as Postgres does).
    pub kind: String,
    /// The constraint, index, trigger or column.
    pub name: String,
    pub detail: String,
}

/// How a staged table relates to the snapshot.
struct Staged<'a> {
    meta: &'a TableMeta,
    /// `main.staged_t`.
    table: String,
    /// The pulled table (same name), when the plan did not create it.
    pulled: Option<&'a TableMeta>,
}

impl<'a> Staged<'a> {
    /// The staged form of `meta` in `snapshot`, under `staged_prefix`.
    fn new(snapshot: &'a Snapshot, meta: &'a TableMeta, staged_prefix: &str) -> Staged<'a> {
        Staged {
            meta,
            table: format!(
                "main.{}",
                quote_ident(&format!("{staged_prefix}{}", meta.name))
            ),
            pulled: snapshot.table(&meta.name).map(|t| &t.meta),
        }
    }
}

/// SQL true where pulled row `p` and staged row `s` have the same `key`.
pub(crate) fn same_key_sql(key: &[String]) -> String {
    key.iter()
        .map(|k| format!("p.{0} = s.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

impl Staged<'_> {
    /// The pulled table and its primary key, when there is a pulled table
    /// with a key to match staged rows by. Without one, every staged row
    /// counts as new and touched, so no rule is skipped (and the rehearsal
    /// fails such a table by name: "every table the plan writes has a
    /// primary key").
    fn pulled_keyed(&self) -> Option<(&TableMeta, Vec<String>)> {
        let p = self.pulled?;
        let key = p.primary_key();
        (!key.is_empty()).then_some((p, key))
    }

    /// SQL true for a staged row `s` that the plan inserted or changed (a
    /// pulled row already satisfied every rule, NOT VALID ones aside).
    fn touched(&self) -> String {
        let Some((p, key)) = self.pulled_keyed() else {
            return "1".into();
        };
        let same = std::iter::once(same_key_sql(&key))
            .chain(
                p.columns
                    .iter()
                    .map(|c| format!("p.{0} IS s.{0}", quote_ident(&c.name))),
            )
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut cond = format!(
            "NOT EXISTS (SELECT 1 FROM main.{} p WHERE {same})",
            quote_ident(&p.name)
        );
        for added in self
            .meta
            .columns
            .iter()
            .filter(|c| p.column(&c.name).is_none())
        {
            cond.push_str(&format!(" OR s.{} IS NOT NULL", quote_ident(&added.name)));
        }
        format!("({cond})")
    }

    /// SQL true for a staged row `s` that is new (its key is not pulled).
    fn is_new(&self) -> String {
        let Some((p, key)) = self.pulled_keyed() else {
            return "1".into();
        };
        format!(
            "NOT EXISTS (SELECT 1 FROM main.{} p WHERE {})",
            quote_ident(&p.name),
            same_key_sql(&key)
        )
    }

    /// SQL text naming row `s` by its key: `id=…`.
    fn key_text(&self) -> String {
        let key = self.meta.primary_key();
        if key.is_empty() {
            return "'rowid=' || s.rowid".into();
        }
        columns_as_text(&key)
    }

    /// The key text, marked new or pulled.
    fn row_label(&self) -> String {
        format!(
            "{} || CASE WHEN {} THEN ' (new)' ELSE ' (pulled)' END",
            self.key_text(),
            self.is_new()
        )
    }
}

fn rows_of(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| anyhow::anyhow!("SQLite cannot run a staged-table check ({e}): {sql}"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Where a foreign key's parent rows are in the snapshot: its staged copy,
/// else the pulled table; None when the snapshot does not hold it.
fn parent_table(
    conn: &Connection,
    snapshot: &Snapshot,
    staged_prefix: &str,
    parent: &str,
) -> Result<Option<String>> {
    let staged = format!("{staged_prefix}{parent}");
    if table_exists(conn, "main", &staged)? {
        return Ok(Some(staged));
    }
    Ok(snapshot.table(parent).map(|t| t.meta.name.clone()))
}

/// The parent table of foreign key `fk` of `meta`. A key without a parent,
/// or whose column lists differ in length, cannot be checked, and skipping
/// it would pass rows nobody checked: an error naming table and key.
fn fk_parent<'a>(meta: &TableMeta, fk: &'a ConstraintMeta) -> Result<&'a str> {
    let parent = fk.ref_table.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "table {}: foreign key {} names no parent table; the snapshot's catalog is \
             damaged — pull again",
            meta.name,
            fk.name
        )
    })?;
    if fk.columns.is_empty() || fk.columns.len() != fk.ref_columns.len() {
        anyhow::bail!(
            "table {}: foreign key {} pairs {} column(s) ({}) with {} of {parent} ({}); the \
             snapshot's catalog is damaged — pull again",
            meta.name,
            fk.name,
            fk.columns.len(),
            fk.columns.join(", "),
            fk.ref_columns.len(),
            fk.ref_columns.join(", ")
        );
    }
    Ok(parent)
}

/// Every rule of `meta` (the staged form of a table) that SQLite can
/// evaluate, checked on the rows of `staged_prefix + meta.name` the plan
/// inserted or changed; one named check per rule.
/// The SQL pieces of a foreign-key check on child rows aliased `child`
/// against parent rows aliased `p`: every key column set, the join, and the
/// key's values as a message shows them (`col=value, …`).
struct ForeignKeySql {
    all_set: String,
    join: String,
    shown: String,
}

impl ForeignKeySql {
    fn new(fk: &ConstraintMeta, child: &str) -> ForeignKeySql {
        let joined = |parts: Vec<String>, sep: &str| parts.join(sep);
        ForeignKeySql {
            all_set: joined(
                fk.columns
                    .iter()
                    .map(|c| format!("{child}.{} IS NOT NULL", quote_ident(c)))
                    .collect(),
                " AND ",
            ),
            join: joined(
                fk.columns
                    .iter()
                    .zip(&fk.ref_columns)
                    .map(|(c, r)| format!("p.{} = {child}.{}", quote_ident(r), quote_ident(c)))
                    .collect(),
                " AND ",
            ),
            shown: joined(
                fk.columns
                    .iter()
                    .map(|c| {
                        format!(
                            "'{}=' || CAST({child}.{} AS TEXT)",
                            c.replace('\'', "''"),
                            quote_ident(c)
                        )
                    })
                    .collect(),
                " || ', ' || ",
            ),
        }
    }
}

/// Pulled tables the plan does not write whose rows reference, through a
/// pulled foreign key, rows of a table it writes: each such row must still
/// find its parent among the staged rows. A phase that deletes (or re-keys)
/// a referenced row would, on Postgres, be refused (NO ACTION, RESTRICT)
/// or cascade into a table outside the plan's writes (CASCADE, SET NULL,
/// SET DEFAULT) — a change rollback cannot restore. Named here, by key,
/// instead of in the preflight.
pub fn referencing_rows_checks(
    conn: &Connection,
    snapshot: &Snapshot,
    staged_prefix: &str,
) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for child in &snapshot.tables {
        let meta = &child.meta;
        if table_exists(conn, "main", &format!("{staged_prefix}{}", meta.name))? {
            // A written child is checked with its staged rows by
            // `constraint_checks`.
            continue;
        }
        for fk in meta.constraints.iter().filter(|k| k.kind == "f") {
            let parent = fk_parent(meta, fk)?;
            let staged_parent = format!("{staged_prefix}{parent}");
            if !table_exists(conn, "main", &staged_parent)? {
                continue;
            }
            let ForeignKeySql {
                all_set,
                join,
                shown,
            } = ForeignKeySql::new(fk, "c");
            // Rows named by the shared row-key encoding, like every check.
            let key = meta.primary_key();
            let key_text = if key.is_empty() {
                "'(no key)'".to_string()
            } else {
                crate::types::row_key_sql(&key, "c")
            };
            let rows = rows_of(
                conn,
                &format!(
                    "SELECT '{child_name} ' || {key_text} || ': ' || {shown} || ' no longer in {parent_name}' \
                     FROM main.{} c WHERE {all_set} AND NOT EXISTS (SELECT 1 FROM main.{} p WHERE {join})",
                    quote_ident(&meta.name),
                    quote_ident(&staged_parent),
                    child_name = meta.name.replace('\'', "''"),
                    parent_name = parent.replace('\'', "''"),
                ),
            )?;
            checks.push(Check::no_rows(
                CONSTRAINTS_PHASE,
                &format!(
                    "{}: FOREIGN KEY {} ({}) still finds its rows of {parent} (the plan does not write {}: \
                     on Postgres a delete there is refused, or cascades outside the plan where rollback \
                     cannot restore it)",
                    meta.name,
                    fk.name,
                    fk.columns.join(", "),
                    meta.name
                ),
                CheckKind::Constraint,
                rows,
            ));
        }
    }
    Ok(checks)
}

pub fn constraint_checks(
    conn: &Connection,
    snapshot: &Snapshot,
    meta: &TableMeta,
    staged_prefix: &str,
) -> Result<Vec<Check>> {
    let st = Staged::new(snapshot, meta, staged_prefix);
    let t = &meta.name;
    // Every check names rows by their key: a key column the table lacks is
    // named here, not met as a SQLite error in the first check.
    let key = meta.primary_key();
    crate::diff::key_positions(meta, &key)?;
    let touched = st.touched();
    let mut checks = Vec::new();

    // NOT NULL (the column's or its domain's). NULL where the plan left a
    // column to Postgres is "not set", not a violation; NULL the plan
    // wrote there is one.
    let mut nulls = Vec::new();
    let keyed = !meta.primary_key().is_empty();
    if keyed {
        conn.execute_batch(LEFT_TO_POSTGRES_DDL)?;
    }
    for c in meta
        .columns
        .iter()
        .filter(|c| c.required() && !c.never_written() && (keyed || !c.filled_by_postgres()))
        // A NULL key is named, with its row, by `keyless_new_rows_check`.
        .filter(|c| !key.contains(&c.name))
    {
        let (left, why) = if c.filled_by_postgres() {
            (
                format!(" AND NOT {}", left_sql(meta, c)),
                " (written by the plan; Postgres fills it only where a new row leaves it out)",
            )
        } else {
            (String::new(), "")
        };
        nulls.extend(rows_of(
            conn,
            &format!(
                "SELECT '{} is NULL{why}: ' || {} FROM {} s WHERE s.{} IS NULL AND {touched}{left}",
                c.name.replace('\'', "''"),
                st.key_text(),
                st.table,
                quote_ident(&c.name)
            ),
        )?);
    }
    checks.push(Check::no_rows(
        CONSTRAINTS_PHASE,
        &format!("{t}: NOT NULL columns hold a value"),
        CheckKind::Constraint,
        nulls,
    ));

    // A new row's key must be the plan's: receipts and rollback name rows
    // by it, so it cannot be left for Postgres to choose.
    checks.extend(keyless_new_rows_check(
        conn,
        meta,
        &st.table,
        CONSTRAINTS_PHASE,
    )?);

    // UNIQUE constraints and plain unique indexes (the primary key is
    // declared on the working and staged tables themselves; the working
    // copy compares a numeric one as numbers).
    for k in meta
        .constraints
        .iter()
        .filter(|k| k.kind != "p" && k.is_plain_unique())
    {
        checks.push(unique_check(conn, &st, k)?);
    }

    // Foreign keys whose parent is in the snapshot.
    for fk in meta.constraints.iter().filter(|k| k.kind == "f") {
        let parent = fk_parent(meta, fk)?;
        // A parent outside the snapshot is Postgres's to check:
        // `preflight_items` lists the key for the preflight.
        let Some(parent_sql) = parent_table(conn, snapshot, staged_prefix, parent)? else {
            continue;
        };
        let ForeignKeySql {
            all_set,
            join,
            shown,
        } = ForeignKeySql::new(fk, "s");
        let rows = rows_of(
            conn,
            &format!(
                "SELECT {} || ': ' || {shown} || ' not in {}' FROM {} s \
                 WHERE {all_set} AND {touched} AND NOT EXISTS (SELECT 1 FROM main.{} p WHERE {join})",
                st.key_text(),
                parent.replace('\'', "''"),
                st.table,
                quote_ident(&parent_sql)
            ),
        )?;
        checks.push(Check::no_rows(
            CONSTRAINTS_PHASE,
            &format!(
                "{t}: FOREIGN KEY {} ({}) references {parent}",
                fk.name,
                fk.columns.join(", ")
            ),
            CheckKind::Constraint,
            rows,
        ));
    }

    // Enum values.
    for c in &meta.columns {
        let Some(labels) = &c.enum_labels else {
            continue;
        };
        let list = labels
            .iter()
            .map(|l| format!("'{}'", l.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = rows_of(
            conn,
            &format!(
                "SELECT {} || ': ' || quote(s.{col}) FROM {} s \
                 WHERE s.{col} IS NOT NULL AND s.{col} NOT IN ({list}) AND {touched}",
                st.key_text(),
                st.table,
                col = quote_ident(&c.name)
            ),
        )?;
        checks.push(Check::no_rows(
            CONSTRAINTS_PHASE,
            &format!(
                "{t}.{}: a value of enum {} ({})",
                c.name,
                c.pg_type,
                labels.join(", ")
            ),
            CheckKind::Constraint,
            rows,
        ));
    }

    // Every element of an array of enum or domain values.
    for c in &meta.columns {
        if let Some(el) = &c.array_element {
            checks.push(array_element_check(conn, &st, c, el)?);
        }
    }

    // Columns Postgres computes and refuses values for.
    let never: Vec<&ColumnMeta> = meta.columns.iter().filter(|c| c.never_written()).collect();
    if !never.is_empty() {
        let mut rows = Vec::new();
        for c in never {
            let col = quote_ident(&c.name);
            let what = if c.generated.is_some() {
                "generated"
            } else {
                "identity ALWAYS"
            };
            let changed = match st.pulled_keyed() {
                Some((p, key)) => format!(
                    "NOT EXISTS (SELECT 1 FROM main.{} p WHERE {} AND p.{col} IS s.{col})",
                    quote_ident(&p.name),
                    same_key_sql(&key)
                ),
                None => "1".into(),
            };
            rows.extend(rows_of(
                conn,
                &format!(
                    "SELECT '{} ({what}) given ' || quote(s.{col}) || ': ' || {} FROM {} s \
                     WHERE s.{col} IS NOT NULL AND {changed}",
                    c.name.replace('\'', "''"),
                    st.key_text(),
                    st.table
                ),
            )?);
        }
        checks.push(Check::no_rows(
            CONSTRAINTS_PHASE,
            &format!("{t}: generated and identity ALWAYS columns left to Postgres"),
            CheckKind::Constraint,
            rows,
        ));
    }
    Ok(checks)
}

/// Each element of the arrays the plan wrote into `c` must be one of the
/// element enum's labels, or a value of the element domain's base type
/// and not NULL when the domain says NOT NULL (its CHECKs are the
/// preflight's). A failure names the row, the element and the value.
fn array_element_check(
    conn: &Connection,
    st: &Staged<'_>,
    c: &ColumnMeta,
    el: &ArrayElement,
) -> Result<Check> {
    let col = quote_ident(&c.name);
    let sql = format!(
        "SELECT {}, CAST(s.{col} AS TEXT) FROM {} s WHERE s.{col} IS NOT NULL AND {}",
        st.key_text(),
        st.table,
        st.touched()
    );
    let mut stmt = conn
        .prepare(&sql)
        .map_err(|e| anyhow::anyhow!("SQLite cannot run a staged-table check ({e}): {sql}"))?;
    let mut rows = stmt.query([])?;
    let mut bad = Vec::new();
    while let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let value: String = r.get(1)?;
        match parse_array_delimited(&value, c.delimiter()) {
            Err(e) => bad.push(format!(
                "{key}: {} is not an array of {} ({e})",
                quoted(&value),
                el.pg_type
            )),
            Ok(node) => {
                let mut n = 0;
                each_element(&node, &mut |v| {
                    n += 1;
                    if let Some(why) = element_problem(el, v) {
                        bad.push(format!("{key}: element {n} {why}"));
                    }
                });
            }
        }
    }
    let rule = match (&el.domain, &el.enum_labels) {
        (None, Some(labels)) => format!("a value of enum {} ({})", el.pg_type, labels.join(", ")),
        (Some(d), Some(labels)) => {
            format!(
                "a value of domain {} over an enum ({})",
                d.name,
                labels.join(", ")
            )
        }
        (Some(d), None) => format!(
            "a value of domain {} ({}{})",
            d.name,
            d.base_type,
            if d.not_null { ", NOT NULL" } else { "" }
        ),
        (None, None) => format!("a value of {}", el.pg_type),
    };
    Ok(Check::no_rows(
        CONSTRAINTS_PHASE,
        &format!("{}.{}: each array element {rule}", st.meta.name, c.name),
        CheckKind::Constraint,
        bad,
    ))
}

/// Why one array element breaks its element type's rule, if it does.
fn element_problem(el: &ArrayElement, v: Option<&str>) -> Option<String> {
    let Some(v) = v else {
        return match &el.domain {
            Some(d) if d.not_null => Some(format!("is NULL (domain {} is NOT NULL)", d.name)),
            _ => None,
        };
    };
    if let Some(labels) = &el.enum_labels {
        return (!labels.iter().any(|l| l == v)).then(|| quoted(v));
    }
    let base = el.domain.as_ref()?.base_type.as_str();
    let fits = match base {
        "smallint" => v.parse::<i16>().is_ok(),
        "integer" => v.parse::<i32>().is_ok(),
        "bigint" => v.parse::<i64>().is_ok(),
        "boolean" => matches!(v, "t" | "f" | "true" | "false"),
        "uuid" => uuid::Uuid::parse_str(v).is_ok(),
        "real" | "double precision" => {
            matches!(v, "NaN" | "Infinity" | "-Infinity") || v.parse::<f64>().is_ok()
        }
        b if b == "numeric" || b.starts_with("numeric(") => {
            matches!(v, "NaN" | "Infinity" | "-Infinity") || is_decimal(v)
        }
        // Text-like and other base types: Postgres decides (the preflight).
        _ => true,
    };
    (!fits).then(|| format!("{} is not a valid {base}", quoted(v)))
}

/// A plain decimal number as Postgres prints a numeric: sign, digits, an
/// optional fraction.
fn is_decimal(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Whether values of `value_type` are citext, which compares as lower()
/// of both sides (the extension's type in any schema).
pub fn is_citext(value_type: &str) -> bool {
    value_type == "citext" || value_type.ends_with(".citext")
}

/// A value as SQL quotes it, for messages.
fn quoted(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn unique_check(conn: &Connection, st: &Staged<'_>, k: &ConstraintMeta) -> Result<Check> {
    // citext compares as lower() of both sides on Postgres (SQLite's
    // lower() folds ASCII letters only).
    let citext = |c: &str| {
        st.meta
            .columns
            .iter()
            .any(|m| m.name == c && is_citext(&m.value_type()))
    };
    // numeric and floating-point values are equal as numbers on Postgres
    // (`1.5` = `1.50`, `0` = `-0`), intervals by their span (`1 day` =
    // `24:00:00`), while their texts differ: grouped under the rehearsal's
    // collation of their type, as the working copies compare them.
    let by_value = |c: &str| {
        st.meta.columns.iter().find(|m| m.name == c).and_then(|m| {
            let t = m.value_type();
            if crate::db::collation::numeric_text(&t) {
                Some(crate::db::collation::NUMERIC)
            } else if crate::db::collation::is_interval(&t) {
                Some(crate::db::collation::INTERVAL)
            } else {
                None
            }
        })
    };
    let cols = k
        .columns
        .iter()
        .map(|c| match (citext(c), by_value(c)) {
            (true, _) => format!("lower(s.{})", quote_ident(c)),
            (false, Some(collation)) => format!("s.{} COLLATE {collation}", quote_ident(c)),
            (false, None) => format!("s.{}", quote_ident(c)),
        })
        .collect::<Vec<_>>();
    let shown = columns_as_text(&k.columns);
    // Two NULLs differ, unless the constraint says NULLS NOT DISTINCT.
    let filter = if k.nulls_not_distinct() {
        "1".to_string()
    } else {
        cols.iter()
            .map(|c| format!("{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let rows = rows_of(
        conn,
        &format!(
            "SELECT min({shown}) || ': ' || group_concat({}, '; ') FROM {} s WHERE {filter} \
             GROUP BY {} HAVING count(*) > 1",
            st.row_label(),
            st.table,
            cols.join(", ")
        ),
    )?;
    // Under a non-deterministic collation byte-identical values still
    // collide, but values that differ in bytes may too: the check says it
    // proves only the former (the preflight decides the rest).
    let scope = if k.nondeterministic.is_empty() {
        String::new()
    } else {
        format!(
            ", byte-identical values (collation {}: the rest on Postgres)",
            k.nondeterministic.join(", ")
        )
    };
    Ok(Check::no_rows(
        CONSTRAINTS_PHASE,
        &format!(
            "{}: UNIQUE {} ({}){scope}",
            st.meta.name,
            k.name,
            k.columns.join(", ")
        ),
        CheckKind::Constraint,
        rows,
    ))
}

/// The foreign keys of tables outside the snapshot into `meta` (kind `r`)
/// whose referenced rows the plan deleted or re-keyed: rows there may point
/// at them, which only the preflight can see.
fn referenced_by_items(
    conn: &Connection,
    st: &Staged<'_>,
    meta: &TableMeta,
) -> Result<Vec<PreflightItem>> {
    let t = &meta.name;
    let mut out = Vec::new();
    if st.pulled.is_none() {
        return Ok(out);
    }
    for k in meta
        .constraints
        .iter()
        .filter(|k| k.kind == "r" && !k.columns.is_empty())
    {
        // Pulled rows whose referenced values the staged table no longer
        // holds (deleted, or the referenced columns changed).
        let set = k
            .columns
            .iter()
            .map(|c| format!("p.{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let same = k
            .columns
            .iter()
            .map(|c| format!("s.{c} = p.{c}", c = quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let gone: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM main.{} p WHERE {set} \
                 AND NOT EXISTS (SELECT 1 FROM {} s WHERE {same})",
                quote_ident(t),
                st.table
            ),
            [],
            |r| r.get(0),
        )?;
        if gone > 0 {
            let referencing = k.ref_table.as_deref().unwrap_or("another table");
            out.push(PreflightItem {
                table: t.clone(),
                kind: "referenced_by".into(),
                name: k.name.clone(),
                detail: format!(
                    "{referencing}({}) {}: the plan deletes or re-keys {} of {t} that rows \
                     of {referencing} (not in the snapshot) may reference; the preflight finds \
                     whether any does — Postgres would refuse the delete, or delete or change \
                     those rows with it, which refuses the push naming this key",
                    k.ref_columns.join(", "),
                    k.definition,
                    crate::words::rows(gone),
                ),
            });
        }
    }
    Ok(out)
}

/// What only Postgres can decide about the rows the plan writes to `meta`
/// (its staged form), for the preflight.
pub fn preflight_items(
    conn: &Connection,
    snapshot: &Snapshot,
    meta: &TableMeta,
    staged_prefix: &str,
) -> Result<Vec<PreflightItem>> {
    let st = Staged::new(snapshot, meta, staged_prefix);
    let t = &meta.name;
    let item = |kind: &str, name: &str, detail: String| PreflightItem {
        table: t.clone(),
        kind: kind.into(),
        name: name.into(),
        detail,
    };
    let count = |cond: &str| -> Result<i64> {
        Ok(conn.query_row(
            &format!("SELECT count(*) FROM {} s WHERE {cond}", st.table),
            [],
            |r| r.get(0),
        )?)
    };
    // Deletes touch no staged row: the keys into deleted rows come first.
    let mut out = referenced_by_items(conn, &st, meta)?;
    let written = count(&st.touched())?;
    if written == 0 {
        return Ok(out);
    }
    for k in &meta.constraints {
        match k.kind.as_str() {
            "c" => out.push(item(
                "check",
                &k.name,
                if k.validated {
                    k.definition.clone()
                } else {
                    format!("{} (NOT VALID: new rows must hold it)", k.definition)
                },
            )),
            // EXCLUDE USING gist (...): operators SQLite does not have.
            "x" => out.push(item("exclusion", &k.name, k.definition.clone())),
            "i" if !k.is_plain_unique() => out.push(item(
                "unique_index",
                &k.name,
                format!("{}{}", k.definition, nondeterministic_note(k)),
            )),
            // A key over a non-deterministic collation: SQLite compares
            // bytes, so it finds only byte-identical duplicates (equal
            // under any collation); whether other values are equal only
            // Postgres can tell.
            "p" | "u" | "i" if !k.nondeterministic.is_empty() => out.push(item(
                if k.kind == "i" {
                    "unique_index"
                } else {
                    "unique"
                },
                &k.name,
                format!("{}{}", k.definition, nondeterministic_note(k)),
            )),
            "f" => {
                let parent = fk_parent(meta, k)?;
                let set = k
                    .columns
                    .iter()
                    .map(|c| format!("s.{} IS NOT NULL", quote_ident(c)))
                    .chain([st.touched()])
                    .collect::<Vec<_>>()
                    .join(" AND ");
                if parent_table(conn, snapshot, staged_prefix, parent)?.is_none()
                    && count(&set)? > 0
                {
                    out.push(item(
                        "foreign_key",
                        &k.name,
                        format!("{} (table {parent} is not in the snapshot)", k.definition),
                    ));
                }
            }
            "t" => out.push(item("trigger", &k.name, k.definition.clone())),
            _ => {}
        }
    }
    let new_rows = st.is_new();
    for c in &meta.columns {
        if crate::plan::canonical::printed_by_postgres_only(&c.value_type()) {
            printed_form_item(conn, &st, c, &mut out)?;
        }
        if c.numbered_by_sequence() {
            let n = count(&format!(
                "s.{} IS NOT NULL AND {new_rows}",
                quote_ident(&c.name)
            ))?;
            if n > 0 {
                out.push(item(
                    "sequence",
                    &c.name,
                    format!(
                        "{n} new rows give it values its sequence does not know: the push moves \
                         the sequence past the largest ({})",
                        c.fill_description().unwrap_or_default()
                    ),
                ));
            }
        }
        let element_domain = c.array_element.as_ref().and_then(|e| e.domain.as_ref());
        for (d, of) in c
            .domain
            .iter()
            .map(|d| (d, ""))
            .chain(element_domain.map(|d| (d, " (each array element)")))
        {
            for check in &d.checks {
                out.push(item(
                    "domain_check",
                    &c.name,
                    format!("domain {}{of}: {check}", d.name),
                ));
            }
        }
        let Some(fill) = c.fill_description() else {
            continue;
        };
        if c.generated.is_some() {
            let n = count(&format!("({}) AND NOT ({new_rows})", st.touched()))?;
            if n > 0 {
                out.push(item(
                    "filled_by_postgres",
                    &c.name,
                    format!("{fill}, recomputed for {n} updated rows"),
                ));
            }
        }
        if key_left_to_postgres(meta).contains(&c) {
            // A new row without its key fails the rehearsal
            // (`keyless_new_rows_check`): nothing for the preflight.
            continue;
        }
        let left = if may_be_left(c, meta) && !meta.primary_key().is_empty() {
            conn.execute_batch(LEFT_TO_POSTGRES_DDL)?;
            format!(" AND {}", left_sql(meta, c))
        } else {
            String::new()
        };
        let n = count(&format!(
            "s.{} IS NULL AND {new_rows}{left}",
            quote_ident(&c.name)
        ))?;
        if n > 0 {
            out.push(item(
                "filled_by_postgres",
                &c.name,
                format!("{fill}, for {n} new rows"),
            ));
        }
    }
    Ok(out)
}

/// A column of a type Postgres prints in a form the rehearsal does not
/// compute ([`crate::plan::canonical::printed_by_postgres_only`]): the
/// values the plan wrote there (new rows, or changed from the pulled ones)
/// are kept as written, and the preflight compares them on Postgres.
fn printed_form_item(
    conn: &Connection,
    st: &Staged<'_>,
    c: &ColumnMeta,
    out: &mut Vec<PreflightItem>,
) -> Result<()> {
    let col = quote_ident(&c.name);
    let changed = match st.pulled_keyed() {
        Some((p, key)) if p.column(&c.name).is_some() => format!(
            "NOT EXISTS (SELECT 1 FROM main.{} p WHERE {} AND p.{col} IS s.{col})",
            quote_ident(&p.name),
            same_key_sql(&key)
        ),
        _ => "1".into(),
    };
    let n: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM {} s WHERE s.{col} IS NOT NULL AND {changed}",
            st.table
        ),
        [],
        |r| r.get(0),
    )?;
    if n > 0 {
        let ty = c.value_type();
        out.push(PreflightItem {
            table: st.meta.name.clone(),
            kind: "printed_form".into(),
            name: c.name.clone(),
            detail: format!(
                "{n} values of type {ty} the plan writes are kept as written: Postgres prints \
                 {ty} in a form of its own that the rehearsal does not compute, so comparisons \
                 of them are Postgres's; the preflight compares the rows it wrote with these \
                 (a value not written as Postgres prints it fails there: `SELECT \
                 '<value>'::{ty}::text` shows the form to write)"
            ),
        });
    }
    Ok(())
}

/// Why a key the rehearsal could not check is Postgres's: the
/// non-deterministic collations it compares with, if any.
fn nondeterministic_note(k: &ConstraintMeta) -> String {
    if k.nondeterministic.is_empty() {
        return String::new();
    }
    format!(
        " (compared under non-deterministic collation {}: values of different bytes may be \
         equal, which SQLite cannot tell)",
        k.nondeterministic.join(", ")
    )
}

/// SQL text showing `columns` of row `s` as `a=1, b=NULL`: how a failed
/// check names a row (by its key, or the columns of a constraint).
pub(crate) fn columns_as_text(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| {
            format!(
                "'{}=' || coalesce(CAST(s.{} AS TEXT), 'NULL')",
                c.replace('\'', "''"),
                quote_ident(c)
            )
        })
        .collect::<Vec<_>>()
        .join(" || ', ' || ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Identity, TableRole};
    use crate::db::sqlite::{SnapshotInfo, SnapshotWriter, TableSummary};

    fn col(name: &str, pg_type: &str) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            pg_type: pg_type.into(),
            ..Default::default()
        }
    }

    fn table(name: &str, columns: Vec<ColumnMeta>, constraints: Vec<ConstraintMeta>) -> TableMeta {
        TableMeta {
            name: name.into(),
            role: TableRole::Protected,
            columns: columns
                .into_iter()
                .enumerate()
                .map(|(i, c)| ColumnMeta {
                    ordinal: i as u32 + 1,
                    ..c
                })
                .collect(),
            constraints,
        }
    }

    /// A pulled parent and child, the child's staged copy holding one
    /// pulled row and new rows that break each rule once.
    fn snapshot(dir: &std::path::Path) -> Snapshot {
        let parent = table(
            "parent",
            vec![ColumnMeta {
                not_null: true,
                ..col("id", "integer")
            }],
            vec![ConstraintMeta::new(
                "parent_pkey".into(),
                "p",
                vec!["id".into()],
                String::new(),
            )],
        );
        let child = table(
            "child",
            vec![
                ColumnMeta {
                    not_null: true,
                    ..col("id", "integer")
                },
                col("parent_id", "integer"),
                ColumnMeta {
                    not_null: true,
                    ..col("name", "text")
                },
                ColumnMeta {
                    enum_labels: Some(vec!["calm".into(), "busy".into()]),
                    default: Some("'calm'::mood".into()),
                    default_constant: true,
                    default_value: Some("calm".into()),
                    ..col("mood", "mood")
                },
                ColumnMeta {
                    generated: Some("upper(name)".into()),
                    ..col("shout", "text")
                },
                ColumnMeta {
                    not_null: true,
                    identity: Some(Identity::Always),
                    ..col("seq", "bigint")
                },
                ColumnMeta {
                    not_null: true,
                    default: Some("now()".into()),
                    ..col("at", "timestamp with time zone")
                },
            ],
            vec![
                ConstraintMeta::new("child_pkey".into(), "p", vec!["id".into()], String::new()),
                ConstraintMeta::new(
                    "child_name_key".into(),
                    "u",
                    vec!["name".into()],
                    "UNIQUE (name)".into(),
                ),
                ConstraintMeta {
                    ref_table: Some("parent".into()),
                    ref_columns: vec!["id".into()],
                    ..ConstraintMeta::new(
                        "child_parent_id_fkey".into(),
                        "f",
                        vec!["parent_id".into()],
                        "FOREIGN KEY (parent_id) REFERENCES parent(id)".into(),
                    )
                },
                ConstraintMeta {
                    validated: false,
                    ..ConstraintMeta::new(
                        "child_short".into(),
                        "c",
                        vec!["name".into()],
                        "CHECK ((length(name) < 9)) NOT VALID".into(),
                    )
                },
            ],
        );
        let path = dir.join("s.sqlite");
        let mut w = SnapshotWriter::create(&path, true, &[]).unwrap();
        for (meta, rows) in [
            (&parent, vec![vec![Some("1".to_string())]]),
            (
                &child,
                vec![vec![
                    Some("1".to_string()),
                    Some("1".into()),
                    Some("old".into()),
                    Some("calm".into()),
                    Some("OLD".into()),
                    Some("1".into()),
                    Some("2026-01-01 00:00:00+00".into()),
                ]],
            ),
        ] {
            w.begin_table(meta).unwrap();
            for r in &rows {
                w.insert_row(meta, r).unwrap();
            }
            w.end_table(
                meta.clone(),
                TableSummary {
                    name: meta.name.clone(),
                    role: meta.role,
                    rows: rows.len() as u64,
                    checksum: String::new(),
                    millis: 0,
                },
            );
        }
        w.finish(SnapshotInfo {
            format_version: crate::db::sqlite::FORMAT_VERSION,
            pulled_at: String::new(),
            server_version: String::new(),
            source_url: String::new(),
            database: String::new(),
            tool_version: String::new(),
            snapshot_checksum: String::new(),
        })
        .unwrap();
        let snap = Snapshot::open(&path).unwrap();
        // The working copy's columns compare with the rehearsal's collations.
        crate::db::collation::register(&snap.conn, std::slice::from_ref(&child), None).unwrap();
        // Written as a phase writes its working copy: left-out columns
        // Postgres fills take the marker until the phase ends.
        snap.conn
            .execute_batch(&working_table_ddl(&child, "staged_child").unwrap())
            .unwrap();
        snap.conn
            .execute_batch(
                "INSERT INTO staged_child SELECT * FROM child;
                 -- new rows: the plan leaves mood, shout, seq and at out
                 INSERT INTO staged_child (id, parent_id, name) VALUES (2, 1, 'fine');
                 INSERT INTO staged_child (id, parent_id, name) VALUES (3, 7, 'orphan');
                 INSERT INTO staged_child (id, parent_id, name) VALUES (4, NULL, NULL);
                 INSERT INTO staged_child (id, parent_id, name, mood) VALUES (5, 1, 'old', 'angry');
                 INSERT INTO staged_child (id, name, shout, seq) VALUES (6, 'loud', 'LOUD', 9);
                 -- the plan writes NULL where Postgres would fill in now()
                 INSERT INTO staged_child (id, parent_id, name, at) VALUES (7, 1, 'seven', NULL);",
            )
            .unwrap();
        // What `working_table_triggers` does after each INSERT of a working
        // copy in TEMP (this one is in main): a column the statement did
        // not list takes the new row's default (there is no replaced row).
        for c in child.columns.iter().filter(|c| c.name != "id") {
            snap.conn
                .execute(
                    &format!(
                        "UPDATE staged_child SET {0} = {1} WHERE {0} IS ?1",
                        quote_ident(&c.name),
                        new_row_default(c, &child).unwrap()
                    ),
                    [NOT_LISTED],
                )
                .unwrap();
        }
        record_left_to_postgres(&snap.conn, &child, "main.staged_child").unwrap();
        snap
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
    }

    #[test]
    fn each_rule_names_the_rows_that_break_it() {
        let dir = tempfile::tempdir().unwrap();
        let snap = snapshot(dir.path());
        let meta = &snap.table("child").unwrap().meta;
        // A constant default fills the left-out column, as on Postgres.
        let mood: String = snap
            .conn
            .query_row("SELECT mood FROM staged_child WHERE id = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(mood, "calm");
        let checks = constraint_checks(&snap.conn, &snap, meta, "staged_").unwrap();
        let rows = |name: &str| check(&checks, name).rows.clone();
        // `seq` and `at` are Postgres's to fill: NULL there is not a
        // violation, unless the plan wrote it (row 7's `at`).
        assert_eq!(
            rows("child: NOT NULL columns hold a value"),
            vec![
                "name is NULL: id=4".to_string(),
                "at is NULL (written by the plan; Postgres fills it only where a new row leaves \
                 it out): id=7"
                    .to_string()
            ]
        );
        let markers: i64 = snap
            .conn
            .query_row(
                "SELECT count(*) FROM staged_child WHERE at = ?1",
                [LEFT_TO_POSTGRES],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(markers, 0, "the marker does not outlive the phase");
        assert_eq!(
            rows("child: UNIQUE child_name_key (name)"),
            vec!["name=old: id=1 (pulled); id=5 (new)".to_string()]
        );
        assert_eq!(
            rows("child: FOREIGN KEY child_parent_id_fkey (parent_id) references parent"),
            vec!["id=3: parent_id=7 not in parent".to_string()]
        );
        assert_eq!(
            rows("child.mood: a value of enum mood (calm, busy)"),
            vec!["id=5: 'angry'".to_string()]
        );
        assert_eq!(
            rows("child: generated and identity ALWAYS columns left to Postgres"),
            vec![
                "shout (generated) given 'LOUD': id=6".to_string(),
                "seq (identity ALWAYS) given 9: id=6".to_string()
            ]
        );
        assert!(checks.iter().all(|c| c.kind == CheckKind::Constraint));

        let items = preflight_items(&snap.conn, &snap, meta, "staged_").unwrap();
        let shown: Vec<String> = items
            .iter()
            .map(|i| format!("{} {}: {}", i.kind, i.name, i.detail))
            .collect();
        assert_eq!(
            shown,
            vec![
                "check child_short: CHECK ((length(name) < 9)) NOT VALID (NOT VALID: new rows must hold it)",
                "filled_by_postgres shout: generated (upper(name)), for 5 new rows",
                "filled_by_postgres seq: identity (GENERATED ALWAYS), for 5 new rows",
                "filled_by_postgres at: default now(), for 5 new rows",
            ]
        );
    }

    #[test]
    fn a_rule_the_catalog_states_incompletely_is_an_error_naming_it_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let snap = snapshot(dir.path());
        let meta = &snap.table("child").unwrap().meta;
        let broken = |edit: &dyn Fn(&mut ConstraintMeta), kind: &str| {
            let mut m = meta.clone();
            edit(m.constraints.iter_mut().find(|k| k.kind == kind).unwrap());
            let checks = constraint_checks(&snap.conn, &snap, &m, "staged_");
            let items = preflight_items(&snap.conn, &snap, &m, "staged_");
            (
                format!("{:#}", checks.unwrap_err()),
                items.err().map(|e| format!("{e:#}")),
            )
        };
        let (e, preflight) = broken(&|k| k.ref_table = None, "f");
        assert!(
            e.contains("table child: foreign key child_parent_id_fkey names no parent table"),
            "{e}"
        );
        assert_eq!(preflight.as_deref(), Some(e.as_str()));
        let (e, _) = broken(&|k| k.ref_columns.clear(), "f");
        assert!(
            e.contains(
                "foreign key child_parent_id_fkey pairs 1 column(s) (parent_id) with 0 of parent"
            ),
            "{e}"
        );
        let (e, _) = broken(&|k| k.columns.push("gone".into()), "p");
        assert!(
            e.contains("table child: primary key column gone is not one of its columns"),
            "{e}"
        );
    }
}
