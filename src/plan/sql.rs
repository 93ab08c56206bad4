//! Running a plan's SQL on the snapshot: the helpers a phase sees (seed
//! tables, `plan_uuid`, `<table>_jsonb` views, bound policies), the
//! enforcement of each phase's declared reads and writes, and the checks
//! that keep values exact for Postgres.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use serde_json::Value;

use super::checks::{Check, CheckKind};
use super::collate::{with_column_collations, ColumnCollations};
use super::SeedFile;
use crate::catalog::TableMeta;
use crate::db::sqlite::from_sqlite;
use crate::pgjson::jsonb_text;
use crate::types::{quote_ident, Exactness};

/// Suffix of the view that gives each pulled table's rows with their JSON.
pub const JSONB_VIEW_SUFFIX: &str = "_jsonb";

/// The function settling a phase's jsonb values (see `register_functions`).
const SETTLED_JSONB: &str = "sandbox_settled_jsonb";

/// Registers on the rehearsal connection everything a phase's SQL needs
/// to compare and compute as Postgres does: `plan_uuid(kind, key)`,
/// `row_jsonb(table, col…)` and `jsonb_canonical(text)`; the collations
/// of numbers, enums and text (`db::collation`); date functions reading
/// Postgres's timestamp text (`db::datetime`); `lower`/`upper` by the
/// pulled database's locale. The one entry point, so a new connection
/// cannot get part of it. Returns the log of the text comparisons the
/// rehearsal could not decide as Postgres does (`db::text_order`).
pub fn register_functions(
    conn: &Connection,
    tables: &[TableMeta],
) -> Result<crate::db::text_order::Doubts> {
    let locale = crate::db::collation::read_locale(conn)
        .context("cannot read the database's locale from the snapshot")?;
    let doubts = crate::db::collation::register(conn, tables, locale.as_ref())?;
    crate::db::datetime::register(conn)?;
    crate::db::collation::register_case_functions(conn, locale.as_ref())?;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("plan_uuid", 2, flags, |ctx| {
        let kind: Option<String> = ctx.get(0)?;
        let key = match ctx.get_raw(1) {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            other => {
                return Err(rusqlite::Error::UserFunctionError(
                    format!("plan_uuid: key must be text, not {:?}", other.data_type()).into(),
                ))
            }
        };
        Ok(match (kind, key) {
            (Some(kind), Some(key)) => Some(super::stage::plan_id(&kind, &key)),
            _ => None,
        })
    })?;
    let metas: HashMap<String, TableMeta> =
        tables.iter().map(|t| (t.name.clone(), t.clone())).collect();
    conn.create_scalar_function("row_jsonb", -1, flags, move |ctx| {
        let user = |m: String| rusqlite::Error::UserFunctionError(m.into());
        let table: String = ctx.get(0)?;
        let meta = metas
            .get(&table)
            .ok_or_else(|| user(format!("row_jsonb: no pulled table {table}")))?;
        if ctx.len() != meta.columns.len() + 1 {
            return Err(user(format!(
                "row_jsonb: {table} has {} columns, {} values given",
                meta.columns.len(),
                ctx.len() - 1
            )));
        }
        let mut values = Vec::with_capacity(meta.columns.len());
        for (i, c) in meta.columns.iter().enumerate() {
            values.push(from_sqlite(c, ctx.get_raw(i + 1)).map_err(|e| user(format!("{e:#}")))?);
        }
        let map = super::rowjson::row_to_json(meta, &values, &[]).map_err(user)?;
        Ok(jsonb_text(&Value::Object(map)))
    })?;
    conn.create_scalar_function("jsonb_canonical", 1, flags, |ctx| {
        let text: Option<String> = ctx.get(0)?;
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str::<Value>(&t)
                .map(|v| Some(jsonb_text(&v)))
                .map_err(|e| {
                    let why = match lone_surrogate_escape(&t) {
                        Some(esc) => format!(
                            "not JSON Postgres's jsonb accepts: the escape {esc} is a lone UTF-16 \
                             surrogate"
                        ),
                        None => format!("not JSON: {e}"),
                    };
                    rusqlite::Error::UserFunctionError(why.into())
                }),
        }
    })?;
    // Postgres's `->` and `->>` (SQLite parses the operators as calls of
    // functions named so, which a connection may replace): `->>` yields the
    // text of the value, as on Postgres — SQLite's yields a JSON number as
    // an INTEGER or REAL, so `(doc->>'n') > '9'` compared a number with text
    // (any number is less) where Postgres compares '10' with '9' as text.
    // A text key names an object's member (not a JSON path: Postgres reads
    // '$.a' as a key), an integer an array's element (negative: from the
    // end); `->` yields the value as Postgres prints jsonb.
    conn.create_scalar_function("->>", 2, flags, |ctx| json_arrow(ctx, true))?;
    conn.create_scalar_function("->", 2, flags, |ctx| json_arrow(ctx, false))?;
    // The settling of a phase's jsonb values: its canonical text, or the
    // text unchanged where it cannot be parsed (a lone surrogate escape,
    // which SQLite's json_valid accepts), for the exactness check to name
    // by row instead of the UPDATE failing as a whole.
    conn.create_scalar_function(SETTLED_JSONB, 1, flags, |ctx| {
        let text: Option<String> = ctx.get(0)?;
        Ok(text.map(|t| match serde_json::from_str::<Value>(&t) {
            Ok(v) => jsonb_text(&v),
            Err(_) => t,
        }))
    })?;
    Ok(doubts)
}

/// Postgres's `json -> key` (`as_text`: `->>`) of the call's two arguments.
fn json_arrow(
    ctx: &rusqlite::functions::Context<'_>,
    as_text: bool,
) -> rusqlite::Result<Option<String>> {
    let op = if as_text { "->>" } else { "->" };
    let user = |m: String| rusqlite::Error::UserFunctionError(m.into());
    let doc = match ctx.get_raw(0) {
        ValueRef::Null => return Ok(None),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => real_text(r),
        ValueRef::Blob(_) => return Err(user(format!("{op}: the left side is a BLOB, not JSON"))),
    };
    let value: Value = serde_json::from_str(&doc)
        .map_err(|e| user(format!("{op}: the left side is not JSON ({e})")))?;
    let found = match ctx.get_raw(1) {
        ValueRef::Null => None,
        ValueRef::Text(key) => {
            let key = String::from_utf8_lossy(key);
            value.as_object().and_then(|m| m.get(key.as_ref()))
        }
        ValueRef::Integer(i) => value.as_array().and_then(|items| {
            let n = items.len() as i64;
            let at = if i < 0 { n + i } else { i };
            usize::try_from(at).ok().and_then(|at| items.get(at))
        }),
        other => {
            return Err(user(format!(
                "{op}: the key must be text or an integer, not {:?}",
                other.data_type()
            )))
        }
    };
    Ok(match found {
        None => None,
        Some(Value::Null) if as_text => None,
        Some(Value::String(s)) if as_text => Some(s.clone()),
        Some(v) => Some(jsonb_text(v)),
    })
}

/// The table a seed file is loaded as: `seed_<name>` for a file at the top
/// of the seed folder, `seed_<folder>` for every file of a sub-folder.
pub fn seed_table_name(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    let stem = first.strip_suffix(".json").unwrap_or(first);
    let clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("seed_{clean}")
}

fn seed_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) if i.to_string() == n.to_string() => SqlValue::Integer(i),
            // Any other number keeps the digits the file holds.
            _ => SqlValue::Text(n.to_string()),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// Loads every seed file as a TEMP table: a file holding an array of
/// objects gives one row per object, a file holding one object one row;
/// columns are the objects' fields (first seen first) plus `_file` (the
/// file's path in the seed folder) and `_row` (the position in it).
/// Strings are TEXT, whole numbers INTEGER, other numbers TEXT as written,
/// booleans 1/0, arrays and objects their JSON text.
pub fn create_seed_tables(conn: &Connection, seeds: &[SeedFile]) -> Result<Vec<String>> {
    let mut tables: Vec<(String, Vec<String>, Vec<Vec<SqlValue>>)> = Vec::new();
    for s in seeds {
        let doc: Value = serde_json::from_str(&s.text).map_err(|e| {
            crate::error::environment(format!(
                "seed file {} is not JSON: {e} (line {}, column {})",
                s.path,
                e.line(),
                e.column()
            ))
        })?;
        let objects: Vec<&serde_json::Map<String, Value>> = match &doc {
            Value::Object(o) => vec![o],
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_object().ok_or_else(|| {
                        crate::error::environment(format!(
                            "seed file {} holds an array of something other than objects",
                            s.path
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(crate::error::environment(format!(
                    "seed file {} holds neither an object nor an array of objects",
                    s.path
                )))
            }
        };
        let name = seed_table_name(&s.path);
        let pos = match tables.iter().position(|t| t.0 == name) {
            Some(p) => p,
            None => {
                tables.push((
                    name,
                    vec!["_file".to_string(), "_row".to_string()],
                    Vec::new(),
                ));
                tables.len() - 1
            }
        };
        let (_, cols, rows) = &mut tables[pos];
        for (i, o) in objects.into_iter().enumerate() {
            for k in o.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
            let mut row = vec![SqlValue::Text(s.path.clone()), SqlValue::Integer(i as i64)];
            row.extend(
                cols[2..]
                    .iter()
                    .map(|c| o.get(c).map(seed_value).unwrap_or(SqlValue::Null)),
            );
            rows.push(row);
        }
    }
    let mut names = Vec::new();
    for (name, cols, rows) in tables {
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.{0}; CREATE TEMP TABLE {0} ({1})",
            quote_ident(&name),
            cols.iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let mut stmt = conn.prepare(&format!(
            "INSERT INTO temp.{} VALUES ({})",
            quote_ident(&name),
            vec!["?"; cols.len()].join(", ")
        ))?;
        for mut r in rows {
            r.resize(cols.len(), SqlValue::Null);
            stmt.execute(rusqlite::params_from_iter(r))?;
        }
        names.push(name);
    }
    Ok(names)
}

/// `<table>_jsonb`: every row of a pulled table (its current, staged state
/// for a table the plan writes) with a column `jsonb` holding the row as
/// Postgres's `to_jsonb(row)` prints it.
pub fn create_jsonb_views(conn: &Connection, tables: &[TableMeta]) -> Result<()> {
    for t in tables {
        let args: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("t.{}", quote_ident(&c.name)))
            .collect();
        conn.execute_batch(&format!(
            "DROP VIEW IF EXISTS temp.{0}; CREATE TEMP VIEW {0} AS SELECT t.*, row_jsonb('{1}', {2}) AS jsonb FROM {3} t",
            quote_ident(&format!("{}{JSONB_VIEW_SUFFIX}", t.name)),
            t.name.replace('\'', "''"),
            args.join(", "),
            quote_ident(&t.name)
        ))?;
    }
    Ok(())
}

/// One statement of a SQL file and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
}

/// Splits a SQL file on `;` outside quotes and comments. Statements that
/// are only comments are dropped.
pub fn split_statements(text: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut start, mut start_line) = (0, 1, 0, 1);
    let mut has_code = false;
    let mut push = |from: usize, to: usize, l: usize, code: bool| {
        let sql: String = chars[from..to].iter().collect();
        if code {
            out.push(Statement {
                line: l,
                sql: sql.trim().to_string(),
            });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => line += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 2;
                continue;
            }
            '\'' | '"' | '`' | '[' => {
                if !has_code {
                    has_code = true;
                    start_line = line;
                    start = i;
                }
                let close = if c == '[' { ']' } else { c };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            ';' => {
                push(start, i + 1, start_line, has_code);
                start = i + 1;
                has_code = false;
            }
            c if c.is_whitespace() => {}
            _ => {
                if !has_code {
                    has_code = true;
                    start_line = line;
                    start = i;
                }
            }
        }
        i += 1;
    }
    if start < chars.len() {
        push(start, chars.len(), start_line, has_code);
    }
    out
}

/// What a statement touched, as the authorizer saw it.
#[derive(Debug, Default)]
struct Access {
    reads: BTreeSet<String>,
    /// (table, column) of every column read of a known table.
    columns_read: BTreeSet<(String, String)>,
    writes: BTreeSet<String>,
    refused: Vec<String>,
}

/// The rules one run of plan SQL is held to.
pub struct Rules {
    /// Pulled and created tables: reads of these are recorded.
    pub known_tables: HashSet<String>,
    /// Tables the SQL may write (their TEMP working copies only).
    pub writes: HashSet<String>,
    /// The collations the rehearsal compares columns with, kept through
    /// `COALESCE`, `CASE`, scalar subqueries… (see `collate`).
    pub collations: Arc<ColumnCollations>,
}

fn install_authorizer(conn: &Connection, rules: &Rules) -> Arc<Mutex<Access>> {
    let access = Arc::new(Mutex::new(Access::default()));
    let log = Arc::clone(&access);
    let known = rules.known_tables.clone();
    let writes = rules.writes.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let Ok(mut a) = log.lock() else {
            return Authorization::Deny;
        };
        // The working tables' own triggers (`db::staging`) keep a
        // REPLACE an UPDATE: their reads and writes are not the phase's.
        if ctx
            .accessor
            .is_some_and(|a| a.starts_with(crate::db::staging::TRIGGER_PREFIX))
        {
            return Authorization::Allow;
        }
        let db = ctx.database_name.unwrap_or("");
        let write = |a: &mut Access, table: &str| {
            if table.starts_with("sqlite_") {
                return Authorization::Allow;
            }
            if db == "temp" && writes.contains(table) {
                a.writes.insert(table.to_string());
                return Authorization::Allow;
            }
            let why = if db == "main" && known.contains(table) {
                format!("writes {db}.{table}, the pulled state, which is read-only (write {table} without `main.`)")
            } else {
                format!("writes {table}, which is not in the phase's \"writes\"")
            };
            a.refused.push(why);
            Authorization::Deny
        };
        match ctx.action {
            AuthAction::Read {
                table_name,
                column_name,
            } => {
                if known.contains(table_name) {
                    a.reads.insert(table_name.to_string());
                    a.columns_read
                        .insert((table_name.to_string(), column_name.to_string()));
                }
                Authorization::Allow
            }
            AuthAction::Insert { table_name } | AuthAction::Delete { table_name } => {
                write(&mut a, table_name)
            }
            AuthAction::Update { table_name, .. } => write(&mut a, table_name),
            AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => {
                Authorization::Allow
            }
            // Table-valued pragmas (pragma_table_info) read the schema.
            AuthAction::Pragma {
                pragma_value: None, ..
            } => Authorization::Allow,
            other => {
                a.refused.push(format!(
                    "runs {other:?}: a phase moves data only (tables and columns it adds go in the schema file; no transactions, PRAGMAs, ATTACH)"
                ));
                Authorization::Deny
            }
        }
    }));
    access
}

/// A SQL error of a phase, with where it happened.
#[derive(Debug, Clone)]
pub struct SqlFailure {
    pub line: usize,
    pub message: String,
}

/// What running one SQL file did.
#[derive(Debug, Default)]
pub struct SqlRun {
    pub reads: BTreeSet<String>,
    /// (table, column) of every column read of a known table: a stale
    /// generated column read is named (`db::generated`).
    pub columns_read: BTreeSet<(String, String)>,
    pub writes: BTreeSet<String>,
    pub failure: Option<SqlFailure>,
}

/// Binds the named parameters a statement uses; every one must be a known
/// parameter (a policy or `pulled_at`).
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[(String, String)]) -> Result<(), String> {
    for i in 1..=stmt.parameter_count() {
        let Some(name) = stmt.parameter_name(i).map(str::to_string) else {
            return Err("positional parameters (?) are not supported: use :name".into());
        };
        let bare = name.trim_start_matches([':', '@', '$']);
        let Some((_, v)) = params.iter().find(|(k, _)| k == bare) else {
            let known: Vec<String> = params.iter().map(|(k, _)| format!(":{k}")).collect();
            return Err(format!(
                "unknown parameter {name} (known: {})",
                known.join(", ")
            ));
        };
        stmt.raw_bind_parameter(i, v).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn error_line(start: usize, sql: &str, e: &rusqlite::Error) -> usize {
    let line_at = |off: usize| {
        let off = off.min(sql.len());
        start
            + sql.as_bytes()[..off]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
    };
    if let rusqlite::Error::SqlInputError { offset, .. } = e {
        if *offset >= 0 {
            return line_at(*offset as usize);
        }
    }
    // "no such table: x", "no such column: t.c": the line naming it.
    let msg = error_message(e);
    if let Some((_, name)) = msg.rsplit_once(": ") {
        let last = name.rsplit('.').next().unwrap_or(name);
        if !last.is_empty() {
            if let Some(off) = sql.find(last) {
                return line_at(off);
            }
        }
    }
    start
}

fn error_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    }
}

/// Runs a SQL file statement by statement under `rules`, with `params`
/// bound. Stops at the first error and reports its line and message.
pub fn run_sql(
    conn: &Connection,
    text: &str,
    rules: &Rules,
    params: &[(String, String)],
) -> SqlRun {
    let access = install_authorizer(conn, rules);
    let mut failure = None;
    for st in split_statements(text) {
        // Collated columns compare through expressions, and NULLs sort,
        // as on Postgres (see `collate`, `null_order`).
        let sql = with_column_collations(&st.sql, &rules.collations);
        let sql = super::null_order::with_postgres_null_order(&sql);
        let outcome = (|| -> Result<(), (usize, String)> {
            let mut stmt = conn
                .prepare(&sql)
                .map_err(|e| (error_line(st.line, &sql, &e), error_message(&e)))?;
            bind(&mut stmt, params).map_err(|m| (st.line, m))?;
            let mut rows = stmt.raw_query();
            loop {
                match rows.next() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return Err((st.line, error_message(&e))),
                }
            }
            Ok(())
        })();
        if let Err((line, message)) = outcome {
            let refused = access
                .lock()
                .map(|a| a.refused.join("; "))
                .unwrap_or_default();
            failure = Some(SqlFailure {
                line,
                message: if refused.is_empty() { message } else { refused },
            });
            break;
        }
    }
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let a = access
        .lock()
        .map(|a| (a.reads.clone(), a.columns_read.clone(), a.writes.clone()));
    let (reads, columns_read, writes) = a.unwrap_or_default();
    SqlRun {
        reads,
        columns_read,
        writes,
        failure,
    }
}

/// Runs a SQL query and returns its rows as text, the engine-neutral form.
pub fn query_text(conn: &Connection, sql: &str) -> Result<Vec<Vec<String>>> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn
        .prepare(sql)
        .with_context(|| format!("SQLite cannot run: {sql}"))?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => crate::types::value_text(None),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => crate::types::value_text(Some(&String::from_utf8_lossy(t))),
                ValueRef::Blob(b) => hex::encode(b),
            });
        }
        out.push(row);
    }
    Ok(out)
}

/// A REAL as a check shows it: to the 15 significant digits a REAL holds
/// (`SUM` of 0.1 and 0.2 is 0.3, as Postgres's numeric sum is, not
/// 0.30000000000000004), in the shortest form that reads back to them.
pub fn real_text(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    format!("{v:.14e}")
        .parse::<f64>()
        .map_or_else(|_| v.to_string(), |r| r.to_string())
}

/// Runs a read-only query (a conflict, expectation or guard) with `params`
/// bound, returning its rows as text.
pub fn query_rows(
    conn: &Connection,
    sql: &str,
    rules: &Rules,
    params: &[(String, String)],
) -> (Vec<Vec<String>>, SqlRun) {
    let read_only = Rules {
        known_tables: rules.known_tables.clone(),
        writes: HashSet::new(),
        collations: Arc::clone(&rules.collations),
    };
    let access = install_authorizer(conn, &read_only);
    // As in `run_sql`: collated columns compare, and NULLs sort, as on
    // Postgres.
    let sql = &with_column_collations(sql, &rules.collations);
    let sql = &super::null_order::with_postgres_null_order(sql);
    let result = (|| -> Result<Vec<Vec<String>>, (usize, String)> {
        let mut stmt = conn
            .prepare(sql)
            .map_err(|e| (error_line(1, sql, &e), error_message(&e)))?;
        bind(&mut stmt, params).map_err(|m| (1, m))?;
        let n = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        loop {
            match rows.next() {
                Ok(Some(r)) => {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(match r.get_ref(i) {
                            Ok(ValueRef::Null) => crate::types::value_text(None),
                            Ok(ValueRef::Integer(v)) => v.to_string(),
                            Ok(ValueRef::Real(v)) => real_text(v),
                            Ok(ValueRef::Text(t)) => {
                                crate::types::value_text(Some(&String::from_utf8_lossy(t)))
                            }
                            Ok(ValueRef::Blob(b)) => hex::encode(b),
                            Err(e) => return Err((1, e.to_string())),
                        });
                    }
                    out.push(row);
                }
                Ok(None) => break,
                Err(e) => return Err((1, error_message(&e))),
            }
        }
        Ok(out)
    })();
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let (reads, columns_read, refused) = access
        .lock()
        .map(|a| {
            (
                a.reads.clone(),
                a.columns_read.clone(),
                a.refused.join("; "),
            )
        })
        .unwrap_or_default();
    match result {
        Ok(rows) => (
            rows,
            SqlRun {
                reads,
                columns_read,
                ..SqlRun::default()
            },
        ),
        Err((line, message)) => (
            Vec::new(),
            SqlRun {
                reads,
                columns_read,
                writes: BTreeSet::new(),
                failure: Some(SqlFailure {
                    line,
                    message: if refused.is_empty() { message } else { refused },
                }),
            },
        ),
    }
}

/// Makes the values a phase left in a working table exact, or names them:
/// each exactness-sensitive column (which the working copy holds without
/// affinity, as the SQL produced it) is settled to its storage class by
/// the rules of [`settle`], jsonb is rewritten to the text Postgres prints,
/// and every value is then checked to be one Postgres prints for its type.
/// Returns the values that are not exact, each naming table, column, row
/// and value.
pub fn settle_values(conn: &Connection, meta: &TableMeta) -> Result<Settlement> {
    let mut bad = settle_storage(conn, meta)?;
    bad.extend(canonicalise_jsonb(conn, meta)?);
    let rewritten = canonicalise_text(conn, meta, &mut bad)?;
    // A value named above (`table.column of row key: why`) is not named
    // again by the final check.
    let cell = |b: &str| b.split_once(": ").map(|(c, _)| c.to_string());
    let named: HashSet<String> = bad.iter().filter_map(|b| cell(b)).collect();
    bad.extend(
        inexact_values(conn, meta)?
            .into_iter()
            .filter(|b| cell(b).is_none_or(|c| !named.contains(&c))),
    );
    Ok(Settlement {
        inexact: bad,
        rewritten,
    })
}

/// What [`settle_values`] found in a working table.
#[derive(Debug, Default)]
pub struct Settlement {
    /// Values that are not exact, each naming table, column, row and value.
    pub inexact: Vec<String>,
    /// Values written in another spelling of the value Postgres stores,
    /// rewritten to the text it prints: `table.column of row K: 'written'
    /// is stored by Postgres as 'canonical'`.
    pub rewritten: Vec<String>,
}

/// Rewrites each text value a phase wrote in a form Postgres prints
/// differently (a timestamptz with an offset, an array with spaces, a uuid
/// in capitals, a boolean as text: see [`super::canonical`]) to the text
/// Postgres stores, so the push writes and compares exactly what the
/// rehearsal shows; returns each rewrite, and adds to `bad` each value
/// Postgres would round.
fn canonicalise_text(
    conn: &Connection,
    meta: &TableMeta,
    bad: &mut Vec<String>,
) -> Result<Vec<String>> {
    use crate::types::Storage;
    let mut rewritten = Vec::new();
    let key = key_expr(meta);
    let t = quote_ident(&meta.name);
    for c in &meta.columns {
        let col = quote_ident(&c.name);
        let bool_column = c.storage() == Storage::Bool;
        let value_type = c.value_type();
        if !bool_column
            && !super::canonical::has_canonical_form(&value_type)
            && c.composite.is_none()
        {
            continue;
        }
        // A float column may hold a number a phase computed, a bytea one
        // a blob literal: each has one text Postgres stores for it.
        let base = value_type.strip_suffix("[]").unwrap_or(&value_type);
        let other_classes = match (base, value_type.ends_with("[]")) {
            ("double precision" | "real", false) => "'real', 'integer'",
            ("bytea", false) => "'blob'",
            _ => "",
        };
        // (rowid, key, text to read, as the phase wrote it if not text)
        let mut found: Vec<(i64, String, String, Option<String>)> = Vec::new();
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT rowid, {key}, {col} FROM temp.{t} \
                 WHERE typeof({col}) IN ('text'{}{other_classes})",
                if other_classes.is_empty() { "" } else { ", " }
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (text, written) = match r.get_ref(2)? {
                    ValueRef::Text(t) => (String::from_utf8_lossy(t).into_owned(), None),
                    // The shortest text that reads back as the same REAL.
                    ValueRef::Real(f) => (format!("{f:?}"), Some(format!("REAL {f:?}"))),
                    ValueRef::Integer(i) => (i.to_string(), Some(format!("INTEGER {i}"))),
                    ValueRef::Blob(b) => {
                        let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
                        (
                            format!("\\x{hex}"),
                            Some(format!("X'{}'", hex.to_ascii_uppercase())),
                        )
                    }
                    ValueRef::Null => continue,
                };
                found.push((r.get(0)?, r.get(1)?, text, written));
            }
        }
        let mut update =
            conn.prepare(&format!("UPDATE temp.{t} SET {col} = ?1 WHERE rowid = ?2"))?;
        for (rowid, k, text, written) in found {
            let cell = format!("{}.{} of row {k}", meta.name, c.name);
            // A boolean is stored as 0/1; a literal Postgres reads becomes that.
            let (value, shown) = if bool_column {
                match super::canonical::canonical_bool(&text) {
                    Some(b) => (
                        SqlValue::Integer(b as i64),
                        if b { "true" } else { "false" }.to_string(),
                    ),
                    None => continue,
                }
            } else {
                let canonical = match &c.composite {
                    Some(fields) => super::canonical::canonical_composite(
                        &value_type,
                        c.delimiter(),
                        fields,
                        &text,
                    ),
                    None => super::canonical::canonical_text(&value_type, c.delimiter(), &text),
                };
                match canonical {
                    Ok(Some(canonical)) => {
                        (SqlValue::Text(canonical.clone()), format!("'{canonical}'"))
                    }
                    // A number or blob already in the form: stored as text.
                    Ok(None) if written.is_some() => {
                        (SqlValue::Text(text.clone()), format!("'{text}'"))
                    }
                    Ok(None) => continue,
                    Err(why) => {
                        bad.push(format!("{cell}: {why}"));
                        continue;
                    }
                }
            };
            match update.execute(rusqlite::params![value, rowid]) {
                Ok(_) => {
                    let written = written.unwrap_or_else(|| format!("'{text}'"));
                    rewritten.push(format!(
                        "{cell}: {written} is stored by Postgres as {shown}"
                    ))
                }
                // Two spellings of one key value now collide.
                Err(e) => bad.push(format!(
                    "{cell}: '{text}' is stored by Postgres as {shown}, which is refused: {}",
                    error_message(&e)
                )),
            }
        }
    }
    Ok(rewritten)
}

/// What a value a phase left in an exactness-sensitive column becomes.
#[derive(Debug, Clone, PartialEq)]
enum Settled {
    /// Already in the column's storage class (or NULL).
    Kept,
    /// Its exact form in the column's storage class.
    Exact(SqlValue),
    /// It may have lost digits, or is not a value of the type: why.
    Inexact(String),
}

/// Below 2^53 a REAL holds every integer exactly; above, not.
const REAL_EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
/// Significant decimal digits every REAL holds exactly (DBL_DIG).
const REAL_EXACT_DIGITS: usize = 15;

/// The decimal a REAL stands for, when it holds it exactly: its shortest
/// round-trip form has at most 15 significant digits. More, and the REAL is
/// the rounding of something else (`1.0/3`, `0.1 + 0.2`, a 17-digit
/// numeric through `json_extract`).
fn exact_decimal(r: f64) -> Result<String, String> {
    if !r.is_finite() {
        return Err(format!("REAL {r} is not a finite number"));
    }
    // Rust prints the shortest text that reads back as the same REAL,
    // without an exponent; numeric has no negative zero.
    let text = if r == 0.0 {
        "0".to_string()
    } else {
        r.to_string()
    };
    let significant = text
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|b| *b == b'0')
        .collect::<Vec<_>>();
    let trailing = significant.iter().rev().take_while(|b| **b == b'0').count();
    let digits = significant.len() - trailing;
    if digits > REAL_EXACT_DIGITS {
        return Err(format!(
            "REAL {text} has {digits} significant digits; a REAL holds {REAL_EXACT_DIGITS} \
             exactly, so the value may have lost digits"
        ));
    }
    Ok(text)
}

/// Why `text`, a numeric value a phase wrote, may be a REAL SQLite rounded
/// when it stored it as text (`%.15g`): it has exactly 15 significant
/// digits, all a REAL holds, so the value it stands for (`1.0 / 3`, a
/// 17-digit number through `json_extract`) may have had more. A REAL never
/// prints more digits than that without an exponent, which is named
/// elsewhere; a value with fewer is one the REAL held exactly.
pub fn rounded_by_real(text: &str) -> Option<String> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = int.chars().chain(frac.chars()).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    (significant == REAL_EXACT_DIGITS).then(|| {
        format!(
            "'{text}' has {REAL_EXACT_DIGITS} significant digits, all SQLite keeps of a REAL \
             (arithmetic, json_extract): the value Postgres would compute may have more. \
             Round it in the phase (round(x, n)) to the digits Postgres should store"
        )
    })
}

/// Decimal text with exactly `scale` decimals (a numeric(p,s) prints them
/// all); more decimals than that Postgres would round away.
fn with_scale(text: String, scale: Option<usize>, pg_type: &str) -> Result<String, String> {
    let Some(scale) = scale else {
        return Ok(text);
    };
    let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
    if decimals > scale {
        return Err(format!(
            "{text} has {decimals} decimals, which {pg_type} would round to {scale}"
        ));
    }
    let mut out = text;
    if decimals == 0 && scale > 0 {
        out.push('.');
    }
    out.extend(std::iter::repeat_n('0', scale - decimals));
    Ok(out)
}

/// The rule of exactness for one value a phase left in a column of type
/// `pg_type` (README, "Values stay exact"):
/// - an integer column takes an INTEGER in its range; a REAL that is a
///   whole number below 2^53, or text that is an integer, becomes that
///   INTEGER; any other REAL may have lost digits;
/// - a numeric column takes text; an INTEGER becomes its digits, a REAL the
///   decimal it holds exactly (at most 15 significant digits), padded to
///   the typmod's scale;
/// - a date or timestamp column takes text only;
/// - a jsonb column takes JSON text; an INTEGER or an exact REAL becomes a
///   JSON number.
fn settle(rule: Exactness, pg_type: &str, value: ValueRef<'_>) -> Settled {
    let exact = |r: Result<String, String>| match r {
        Ok(t) => Settled::Exact(SqlValue::Text(t)),
        Err(why) => Settled::Inexact(why),
    };
    match (rule, value) {
        (_, ValueRef::Null) => Settled::Kept,
        (Exactness::Integer { min, max }, v) => {
            let i = match v {
                ValueRef::Integer(i) => Ok(i),
                ValueRef::Real(r) if r.fract() == 0.0 && r.abs() < REAL_EXACT_INTEGERS => {
                    Ok(r as i64)
                }
                ValueRef::Real(r) if r.fract() == 0.0 && r.is_finite() => Err(format!(
                    "REAL {r} is beyond 2^53, where a REAL no longer holds every integer: the \
                     value may have lost digits"
                )),
                ValueRef::Real(r) => Err(format!("REAL {r} is not a whole number")),
                ValueRef::Text(t) => {
                    let t = String::from_utf8_lossy(t);
                    t.trim()
                        .parse::<i64>()
                        .map_err(|_| format!("text '{t}' is not a {pg_type}"))
                }
                ValueRef::Blob(_) => Err(format!("a BLOB is not a {pg_type}")),
                ValueRef::Null => unreachable!("handled above"),
            };
            match i {
                Ok(i) if i < min || i > max => {
                    Settled::Inexact(format!("{i} is out of range for {pg_type}"))
                }
                Ok(_) if matches!(value, ValueRef::Integer(_)) => Settled::Kept,
                Ok(i) => Settled::Exact(SqlValue::Integer(i)),
                Err(why) => Settled::Inexact(why),
            }
        }
        (Exactness::Numeric { .. } | Exactness::Time | Exactness::Jsonb, ValueRef::Text(_)) => {
            Settled::Kept
        }
        (Exactness::Numeric { scale }, ValueRef::Integer(i)) => {
            exact(with_scale(i.to_string(), scale, pg_type))
        }
        (Exactness::Numeric { scale }, ValueRef::Real(r)) => {
            exact(exact_decimal(r).and_then(|t| with_scale(t, scale, pg_type)))
        }
        (Exactness::Jsonb, ValueRef::Integer(i)) => Settled::Exact(SqlValue::Text(i.to_string())),
        (Exactness::Jsonb, ValueRef::Real(r)) => exact(exact_decimal(r)),
        (Exactness::Time, ValueRef::Integer(i)) => {
            Settled::Inexact(format!("the number {i} is not a {pg_type}"))
        }
        (Exactness::Time, ValueRef::Real(r)) => {
            Settled::Inexact(format!("REAL {r} is not a {pg_type}"))
        }
        (_, ValueRef::Blob(_)) => Settled::Inexact(format!("a BLOB is not a {pg_type}")),
    }
}

/// [`settle`]s every value of the exactness-sensitive columns of a working
/// table that is not already in its column's storage class (or, for an
/// integer column, in its range); returns the values that are not exact.
fn settle_storage(conn: &Connection, meta: &TableMeta) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let key = key_expr(meta);
    let t = quote_ident(&meta.name);
    for c in &meta.columns {
        let value_type = c.value_type();
        let Some(rule) = crate::types::exactness(&value_type) else {
            continue;
        };
        let col = quote_ident(&c.name);
        let unsettled = match rule {
            Exactness::Integer { min, max } => {
                format!("typeof({col}) <> 'integer' OR {col} < {min} OR {col} > {max}")
            }
            _ => format!("typeof({col}) <> 'text'"),
        };
        let mut found: Vec<(i64, String, Settled)> = Vec::new();
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT rowid, {key}, {col} FROM temp.{t} WHERE {col} IS NOT NULL AND ({unsettled})"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                found.push((
                    r.get(0)?,
                    r.get(1)?,
                    settle(rule, &value_type, r.get_ref(2)?),
                ));
            }
        }
        let mut update =
            conn.prepare(&format!("UPDATE temp.{t} SET {col} = ?1 WHERE rowid = ?2"))?;
        for (rowid, k, settled) in found {
            let why = match settled {
                Settled::Kept => continue,
                Settled::Inexact(why) => why,
                // Settling can make two keys equal (text '5' beside 5).
                Settled::Exact(v) => match update.execute(rusqlite::params![v, rowid]) {
                    Ok(_) => continue,
                    Err(e) => format!("its exact form is refused: {}", error_message(&e)),
                },
            };
            bad.push(format!("{}.{} of row {k}: {why}", meta.name, c.name));
        }
    }
    Ok(bad)
}

/// The numbers of a JSON value written in exponent form. Postgres never
/// prints one; SQLite writes a REAL that way from 1e15 up (and below
/// 1e-4), rounded to 15 significant digits: an id or amount of 16 digits
/// has then lost some.
fn exponent_numbers(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Number(n) => {
            let text = n.to_string();
            if text.contains(['e', 'E']) {
                out.push(text);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| exponent_numbers(i, out)),
        Value::Object(o) => o.values().for_each(|i| exponent_numbers(i, out)),
        _ => {}
    }
}

/// Rewrites every jsonb value of a working table as the text Postgres
/// prints for it, and lists the values that are not JSON at all, or hold a
/// number in exponent form (see [`exponent_numbers`]).
fn canonicalise_jsonb(conn: &Connection, meta: &TableMeta) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let key = key_expr(meta);
    for c in meta.columns.iter().filter(|c| c.value_type() == "jsonb") {
        let col = quote_ident(&c.name);
        let t = quote_ident(&meta.name);
        let mut stmt = conn.prepare(&format!(
            "SELECT {key} FROM temp.{t} WHERE {col} IS NOT NULL AND (typeof({col}) <> 'text' OR json_valid({col}) = 0)"
        ))?;
        for k in stmt.query_map([], |r| r.get::<_, String>(0))? {
            bad.push(format!("{}.{} of row {}: not JSON", meta.name, c.name, k?));
        }
        // Only values the phase wrote can differ from Postgres's text.
        let mut stmt = conn.prepare(&format!(
            "SELECT {key}, {col} FROM temp.{t} WHERE typeof({col}) = 'text' AND json_valid({col}) \
             AND {col} <> {SETTLED_JSONB}({col}) AND (instr({col}, 'e') > 0 OR instr({col}, 'E') > 0)"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (k, text): (String, String) = (r.get(0)?, r.get(1)?);
            let mut found = Vec::new();
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                exponent_numbers(&v, &mut found);
            }
            for n in found {
                bad.push(format!(
                    "{}.{} of row {k}: the number {n} is in exponent form, as SQLite writes a \
                     REAL rounded to 15 significant digits: the value may have lost digits",
                    meta.name, c.name
                ));
            }
        }
        conn.execute_batch(&format!(
            "UPDATE temp.{t} SET {col} = {SETTLED_JSONB}({col}) WHERE typeof({col}) = 'text' AND json_valid({col}) AND {col} <> {SETTLED_JSONB}({col})"
        ))?;
    }
    Ok(bad)
}

fn key_expr(meta: &TableMeta) -> String {
    let pk = meta.primary_key();
    if pk.is_empty() {
        return "CAST(rowid AS TEXT)".into();
    }
    crate::types::row_key_sql(&pk, "")
}

/// Whether `text` is something Postgres could have printed for `pg_type`
/// (None when the type is not checked).
pub(crate) fn printable(pg_type: &str, text: &str) -> Option<bool> {
    let base = pg_type.split('(').next().unwrap_or(pg_type).trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let decimal = |s: &str| {
        let s = s.strip_prefix('-').unwrap_or(s);
        match s.split_once('.') {
            Some((a, b)) => digits(a) && digits(b),
            None => digits(s),
        }
    };
    if let Some(element) = pg_type.strip_suffix("[]") {
        // `box` separates its elements with `;`; its values are not checked.
        if element == "box" {
            return None;
        }
        let Ok(node) = super::rowjson::parse_array(text) else {
            return Some(false);
        };
        let mut ok = true;
        super::rowjson::each_element(&node, &mut |e| {
            ok &= e.is_none_or(|e| printable(element, e).unwrap_or(true));
        });
        return Some(ok);
    }
    // `YYYY-MM-DD` of a date (a timestamp's first ten characters), as
    // Postgres prints it: a day that exists.
    let date = |s: &str| {
        s.get(..10)
            .is_some_and(|d| super::canonical::days_from_date(d).is_some())
    };
    // `HH:MM:SS` of a time of day, as Postgres prints it.
    let clock = |s: &str| {
        let b = s.as_bytes();
        s.len() == 8
            && b[2] == b':'
            && b[5] == b':'
            && [0..2, 3..5, 6..8]
                .into_iter()
                .zip([24, 60, 60])
                .all(|(r, max)| digits(&s[r.clone()]) && s[r].parse::<u32>().is_ok_and(|v| v < max))
    };
    let typmod = crate::types::typmod(pg_type);
    // Seconds, then an optional fraction, then (with time zone) the offset
    // Postgres prints: `+00`, `-05:30`.
    let time_rest = |s: &str, zone: bool| {
        let s = match s.strip_prefix('.') {
            Some(f) => f.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => s,
        };
        if !zone {
            return s.is_empty();
        }
        let Some(off) = s.strip_prefix('+').or_else(|| s.strip_prefix('-')) else {
            return false;
        };
        let (h, m) = off.split_once(':').unwrap_or((off, "00"));
        h.len() == 2 && digits(h) && m.len() == 2 && digits(m)
    };
    Some(match base {
        "numeric" => {
            if text == "NaN" || text.ends_with("Infinity") {
                return Some(true);
            }
            if !decimal(text) {
                return Some(false);
            }
            // numeric(p,s) prints exactly s decimals and holds at most p-s
            // integer digits: anything else Postgres would round or refuse.
            match typmod[..] {
                [p, sc] | [p, sc, ..] => {
                    let (int, frac) = text
                        .trim_start_matches('-')
                        .split_once('.')
                        .unwrap_or((text.trim_start_matches('-'), ""));
                    let int = int.trim_start_matches('0');
                    frac.len() == sc && int.len() <= p.saturating_sub(sc)
                }
                [p] => {
                    !text.contains('.')
                        && text.trim_start_matches('-').trim_start_matches('0').len() <= p
                }
                _ => true,
            }
        }
        "date" => date(text) || text.ends_with("infinity"),
        "uuid" => {
            text.len() == 36
                && text.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
                })
        }
        "json" => serde_json::from_str::<Value>(text).is_ok() || json_with_lone_surrogates(text),
        "timestamp with time zone" | "timestamp without time zone" => {
            (date(text)
                && text.is_char_boundary(19)
                && text.as_bytes().get(10) == Some(&b' ')
                && clock(&text[11..19])
                && time_rest(&text[19..], base == "timestamp with time zone"))
                || text.ends_with("infinity")
        }
        // Postgres refuses a longer value, and pads a char(n) to n.
        "character varying" => match typmod[..] {
            [n] => text.chars().count() <= n,
            _ => return None,
        },
        "character" => match typmod[..] {
            [n] => text.chars().count() == n,
            _ => return None,
        },
        // A bit string of exactly n bits (`bit` alone is `bit(1)`); one
        // of another length Postgres refuses, a hex `x1F` it prints in bits.
        "bit" => {
            text.bytes().all(|b| matches!(b, b'0' | b'1'))
                && text.len() == typmod.first().copied().unwrap_or(1)
        }
        "bit varying" => {
            text.bytes().all(|b| matches!(b, b'0' | b'1'))
                && typmod.first().is_none_or(|n| text.len() <= *n)
        }
        // Postgres prints money with its currency symbol and separators
        // (by lc_monetary): a plain number is never its printed text.
        "money" => match decimal(text) {
            true => false,
            false => return None,
        },
        _ => return None,
    })
}

/// Values Postgres would not have printed: an integer column holding a
/// REAL or text, a numeric in exponent form, a timestamp that is a number.
/// Such a value passed through a REAL (`json_extract` of a number,
/// arithmetic) and may have lost precision; pushing it would round.
fn inexact_values(conn: &Connection, meta: &TableMeta) -> Result<Vec<String>> {
    use crate::types::Storage;
    let mut bad = Vec::new();
    let key = key_expr(meta);
    let t = quote_ident(&meta.name);
    for c in &meta.columns {
        let col = quote_ident(&c.name);
        let mut stmt = conn.prepare(&format!(
            "SELECT {key}, typeof({col}), CAST({col} AS TEXT) FROM temp.{t} WHERE {col} IS NOT NULL"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (k, ty): (String, String) = (r.get(0)?, r.get(1)?);
            // SQLite keeps whatever bytes a phase wrote (CAST(X'C328' AS
            // TEXT), char(0)); Postgres stores only UTF-8 text without NUL.
            let text = match unstorable_text(r.get_ref(2)?.as_bytes()?, c.value_type() == "jsonb") {
                Ok(text) => text,
                Err(why) => {
                    bad.push(format!("{}.{} of row {k}: {why}", meta.name, c.name));
                    continue;
                }
            };
            let ok = match c.storage() {
                Storage::Integer => ty == "integer",
                Storage::Bool => ty == "integer" && (text == "0" || text == "1"),
                Storage::Text => ty == "text" && printable(&c.value_type(), &text).unwrap_or(true),
            };
            if !ok {
                bad.push(format!(
                    "{}.{} of row {k}: {ty} '{text}' is not a {} value Postgres prints",
                    meta.name, c.name, c.pg_type
                ));
            }
        }
    }
    Ok(bad)
}

/// The text of a value, or why Postgres cannot store it: bytes that are not
/// UTF-8, a NUL character, or (in a jsonb value) the escape `\u0000`,
/// which jsonb refuses.
fn unstorable_text(bytes: &[u8], jsonb: bool) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "the bytes {} are not UTF-8 text (at byte {}), and Postgres stores only UTF-8",
            bytes
                .iter()
                .take(32)
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(" "),
            e.valid_up_to()
        )
    })?;
    if let Some(at) = text.find('\0') {
        return Err(format!(
            "'{}' holds a NUL character (at byte {at}), which Postgres text cannot store",
            text.replace('\0', "\\0")
        ));
    }
    if jsonb && text.contains("\\u0000") && json_holds_nul(text) {
        return Err(format!(
            "'{text}' holds the JSON escape \\u0000, which Postgres jsonb cannot store"
        ));
    }
    if let Some(esc) = jsonb.then(|| lone_surrogate_escape(text)).flatten() {
        return Err(format!(
            "'{text}' holds the JSON escape {esc}, a lone UTF-16 surrogate (a high one \
             \\ud800-\\udbff must be followed by a low one \\udc00-\\udfff, a low one preceded by a \
             high one), which Postgres jsonb refuses ('invalid input syntax for type json'); write \
             the character itself, or the pair"
        ));
    }
    Ok(text.to_string())
}

/// Whether `text` is JSON once its lone surrogate escapes are read as
/// characters: Postgres's json type accepts `"\ud800"` (it stores the text
/// as given; only jsonb and to_jsonb refuse it), serde does not.
fn json_with_lone_surrogates(text: &str) -> bool {
    let mut t = text.to_string();
    let mut replaced = false;
    while let Some(esc) = lone_surrogate_escape(&t) {
        let at = esc.as_ptr() as usize - t.as_ptr() as usize;
        t.replace_range(at..at + 6, "\\ufffd");
        replaced = true;
    }
    replaced && serde_json::from_str::<Value>(&t).is_ok()
}

/// The first `\uXXXX` escape of a JSON text that is half of a UTF-16
/// surrogate pair standing alone, as written; Postgres's jsonb input
/// refuses it (its json type keeps it as text), SQLite's `json_valid`
/// accepts it.
pub fn lone_surrogate_escape(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    // The code unit of the escape at `at` (pointing at its backslash).
    let unit = |at: usize| -> Option<u32> {
        if b.get(at) != Some(&b'\\') || b.get(at + 1) != Some(&b'u') {
            return None;
        }
        u32::from_str_radix(text.get(at + 2..at + 6)?, 16).ok()
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(i) {
            Some(0xD800..=0xDBFF) => {
                if matches!(unit(i + 6), Some(0xDC00..=0xDFFF)) {
                    i += 12;
                    continue;
                }
                return text.get(i..i + 6);
            }
            Some(0xDC00..=0xDFFF) => return text.get(i..i + 6),
            Some(_) => i += 6,
            // `\\`, `\"` …: the escaped character is not an escape itself.
            None => i += 2,
        }
    }
    None
}

/// Whether a JSON document has a NUL character in a string or key.
fn json_holds_nul(text: &str) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(walk),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    serde_json::from_str::<Value>(text).is_ok_and(|v| walk(&v))
}

/// A failed check naming the SQL file, line and SQLite's message.
pub fn failure_check(phase: &str, what: &str, file: &str, f: &SqlFailure) -> Check {
    // A row a staged table refused (its key, NOT NULL) is the data
    // contradicting the target, like the constraint checks.
    let kind = if f.message.contains("constraint failed") {
        CheckKind::Constraint
    } else {
        CheckKind::Conflict
    };
    let mut c = Check::no_rows(
        phase,
        what,
        kind,
        vec![format!("{file}:{}: {}", f.line, f.message)],
    );
    c.actual = format!("{file}:{}: {}", f.line, f.message);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "-- a; comment\nSELECT 'a;b';\n/* x; */ INSERT INTO t\nVALUES (\"c;\");\n-- only a comment;\n";
        let st = split_statements(sql);
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(st[0].line, 2);
        assert_eq!(st[0].sql, "SELECT 'a;b';");
        assert_eq!(st[1].line, 3);
        assert_eq!(st[1].sql, "INSERT INTO t\nVALUES (\"c;\");");
    }

    #[test]
    fn lone_surrogate_escapes_are_found_and_pairs_and_escaped_backslashes_are_not() {
        assert_eq!(lone_surrogate_escape(r#""a\ud800""#), Some(r"\ud800"));
        assert_eq!(lone_surrogate_escape(r#""\uDC00x""#), Some(r"\uDC00"));
        assert_eq!(lone_surrogate_escape(r#""\ud800\u0041""#), Some(r"\ud800"));
        assert_eq!(lone_surrogate_escape(r#""\ud83d\ude00""#), None);
        assert_eq!(lone_surrogate_escape(r#""\\ud800""#), None);
        assert_eq!(lone_surrogate_escape(r#"{"\u00e9": "\\"}"#), None);
        assert_eq!(lone_surrogate_escape(r#"{"k\ud800": 1}"#), Some(r"\ud800"));
    }

    #[test]
    fn printable_values() {
        assert_eq!(printable("numeric(5,2)", "1.50"), Some(true));
        // Typmods: the value must be what Postgres would store and print.
        assert_eq!(printable("numeric(5,2)", "1.5"), Some(false));
        assert_eq!(printable("numeric(3,2)", "12.50"), Some(false));
        assert_eq!(printable("numeric(3,2)", "-2.50"), Some(true));
        assert_eq!(printable("numeric(4)", "1234"), Some(true));
        assert_eq!(printable("numeric(4)", "12345"), Some(false));
        assert_eq!(printable("character varying(3)", "abc"), Some(true));
        assert_eq!(printable("character varying(3)", "abcd"), Some(false));
        assert_eq!(printable("character varying", "abcd"), None);
        assert_eq!(printable("bit(3)", "101"), Some(true));
        assert_eq!(printable("bit(3)", "1010"), Some(false));
        assert_eq!(printable("bit(3)", "x5"), Some(false));
        assert_eq!(printable("bit", "1"), Some(true));
        assert_eq!(printable("bit varying(3)", "10"), Some(true));
        assert_eq!(printable("bit varying(3)", "1010"), Some(false));
        assert_eq!(printable("bit varying", "10101010"), Some(true));
        assert_eq!(printable("money", "12.35"), Some(false));
        assert_eq!(printable("money", "$12.35"), None);
        assert_eq!(printable("character(3)", "ab"), Some(false));
        assert_eq!(printable("character(3)", "ab "), Some(true));
        assert_eq!(
            printable("timestamp with time zone", "2026-11-29 14:00:00"),
            Some(false),
            "no offset: not what Postgres prints"
        );
        assert_eq!(
            printable("timestamp with time zone", "2026-11-29 14:00:00.25-05:30"),
            Some(true)
        );
        assert_eq!(
            printable("timestamp without time zone", "2026-11-29 14:00:00+00"),
            Some(false)
        );
        assert_eq!(printable("numeric", "1.2345678901234567e+19"), Some(false));
        assert_eq!(
            printable("timestamp with time zone", "2025-11-10 09:00:00+00"),
            Some(true)
        );
        assert_eq!(
            printable("timestamp with time zone", "2460000.5"),
            Some(false)
        );
        assert_eq!(printable("text", "x"), None);
        assert_eq!(printable("date", "2024-02-29"), Some(true));
        assert_eq!(printable("date", "2026-02-29"), Some(false));
        assert_eq!(printable("date", "2026-13-01"), Some(false));
        // Postgres prints a year before 1 as `0025-01-01 BC`, never signed.
        assert_eq!(printable("date", "-024-01-01"), Some(false));
        assert_eq!(printable("date", "2024-01-0\u{e9}"), Some(false));
        assert_eq!(
            printable("uuid", "0000000a-0000-4000-8000-00000000000b"),
            Some(true)
        );
        assert_eq!(
            printable("uuid", "0000000A-0000-4000-8000-00000000000B"),
            Some(false)
        );
        assert_eq!(printable("text[]", "{a,\"b c\",NULL}"), Some(true));
        assert_eq!(printable("text[]", "abc"), Some(false));
        assert_eq!(printable("date[]", "{2026-02-30}"), Some(false));
        assert_eq!(printable("box[]", "{(1,1),(0,0)}"), None);
    }

    #[test]
    fn a_real_shows_the_15_digits_it_holds() {
        assert_eq!(real_text(0.1 + 0.2), "0.3");
        assert_eq!(real_text(1.0 / 3.0), "0.333333333333333");
        assert_eq!(real_text(27.565000000000005), "27.565");
        assert_eq!(real_text(3.0), "3");
        assert_eq!(real_text(-2.5e-7), "-0.00000025");
        assert_eq!(real_text(1e20), "100000000000000000000");
    }

    #[test]
    fn a_numeric_text_with_all_15_digits_of_a_real_is_named() {
        for named in ["0.333333333333333", "-12345.6789012346", "123456789012345"] {
            assert!(rounded_by_real(named).is_some(), "{named}");
        }
        // Fewer digits a REAL holds exactly; more it never prints without
        // an exponent, so such text did not come from one.
        for kept in [
            "0.3",
            "1.50",
            "0.12345678901234",
            "12345678901234567890",
            "NaN",
        ] {
            assert!(rounded_by_real(kept).is_none(), "{kept}");
        }
    }

    #[test]
    fn a_real_is_exact_up_to_15_significant_digits() {
        assert_eq!(exact_decimal(0.5), Ok("0.5".into()));
        assert_eq!(exact_decimal(1.5 * 2.0), Ok("3".into()));
        assert_eq!(exact_decimal(-0.0), Ok("0".into()));
        assert_eq!(exact_decimal(1e20), Ok("100000000000000000000".into()));
        assert_eq!(
            exact_decimal(123456789012.345),
            Ok("123456789012.345".into())
        );
        for inexact in [1.0 / 3.0, 0.1 + 0.2, 9007199254740993.0, f64::INFINITY] {
            assert!(exact_decimal(inexact).is_err(), "{inexact}");
        }
    }

    #[test]
    fn values_settle_to_their_exact_form_or_are_named() {
        let bigint = crate::types::exactness("bigint").unwrap();
        let small = crate::types::exactness("smallint").unwrap();
        let numeric = crate::types::exactness("numeric").unwrap();
        let scaled = crate::types::exactness("numeric(5,2)").unwrap();
        let stamp = crate::types::exactness("timestamp with time zone").unwrap();
        let jsonb = crate::types::exactness("jsonb").unwrap();
        let text = |s: &str| Settled::Exact(SqlValue::Text(s.into()));
        let inexact = |s: Settled| matches!(s, Settled::Inexact(_));
        assert_eq!(
            settle(bigint, "bigint", ValueRef::Real(12.0)),
            Settled::Exact(SqlValue::Integer(12))
        );
        assert_eq!(
            settle(bigint, "bigint", ValueRef::Text(b" 42")),
            Settled::Exact(SqlValue::Integer(42))
        );
        assert_eq!(
            settle(bigint, "bigint", ValueRef::Integer(7)),
            Settled::Kept
        );
        assert!(inexact(settle(
            bigint,
            "bigint",
            ValueRef::Real(9007199254740992.0)
        )));
        assert!(inexact(settle(bigint, "bigint", ValueRef::Real(2.5))));
        assert!(inexact(settle(bigint, "bigint", ValueRef::Text(b"5.0"))));
        assert!(inexact(settle(
            small,
            "smallint",
            ValueRef::Integer(40_000)
        )));
        assert_eq!(
            settle(numeric, "numeric", ValueRef::Real(0.25)),
            text("0.25")
        );
        assert_eq!(settle(numeric, "numeric", ValueRef::Integer(7)), text("7"));
        assert_eq!(
            settle(scaled, "numeric(5,2)", ValueRef::Real(4.5)),
            text("4.50")
        );
        assert_eq!(
            settle(scaled, "numeric(5,2)", ValueRef::Integer(4)),
            text("4.00")
        );
        assert!(inexact(settle(
            scaled,
            "numeric(5,2)",
            ValueRef::Real(4.125)
        )));
        assert!(inexact(settle(
            numeric,
            "numeric",
            ValueRef::Real(1.0 / 3.0)
        )));
        assert_eq!(
            settle(numeric, "numeric", ValueRef::Text(b"0.1")),
            Settled::Kept
        );
        assert!(inexact(settle(
            stamp,
            "timestamp with time zone",
            ValueRef::Real(2460000.5)
        )));
        assert_eq!(settle(jsonb, "jsonb", ValueRef::Real(2.5)), text("2.5"));
        assert!(inexact(settle(jsonb, "jsonb", ValueRef::Real(0.1 + 0.2))));
        assert!(inexact(settle(jsonb, "jsonb", ValueRef::Blob(b"x"))));
    }

    #[test]
    fn seed_tables_have_the_fields_as_columns() {
        let conn = Connection::open_in_memory().unwrap();
        let seeds = vec![
            SeedFile {
                path: "lib/a.json".into(),
                text: r#"{"code": "A", "n": 1.50, "list": [1, 2]}"#.into(),
            },
            SeedFile {
                path: "lib/b.json".into(),
                text: r#"{"code": "B", "flag": true}"#.into(),
            },
            SeedFile {
                path: "top.json".into(),
                text: r#"[{"x": 1}, {"x": 2}]"#.into(),
            },
        ];
        let names = create_seed_tables(&conn, &seeds).unwrap();
        assert_eq!(names, ["seed_lib", "seed_top"]);
        let row: (String, String, String, Option<i64>) = conn
            .query_row(
                "SELECT _file, n, list, flag FROM seed_lib WHERE code = 'A'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            ("lib/a.json".into(), "1.50".into(), "[1,2]".into(), None)
        );
        let n: i64 = conn
            .query_row("SELECT sum(x) FROM seed_top", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }
}
