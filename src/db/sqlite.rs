//! The snapshot file: one SQLite database that a DB browser can open.
//!
//! Pulled tables keep their Postgres names and columns; `_sandbox_*` tables
//! record where the data came from, each column's Postgres type, the
//! constraints, and each table's row count and content checksum. The file is
//! written to a temporary name in the same folder and renamed into place, so
//! a failed pull never leaves a partial snapshot under the final name.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
use crate::error::environment;
use crate::types::{push_copy_field_bytes, quote_ident, Storage, TableChecksum};

/// Bumped when the file layout changes incompatibly.
/// 2: `_sandbox_columns` and `_sandbox_constraints` describe what Postgres
/// does around the rows (defaults, identity, enums, domains, NOT VALID,
/// unique indexes); `_sandbox_existing_targets`.
/// 3: table checksums hash rows with XXH3, not SHA-256 ([`crate::types::RowHash`]): a
/// file of format 2 would fail every integrity check, so it is refused by
/// its number with the advice to pull again.
pub const FORMAT_VERSION: i64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    pub format_version: i64,
    pub pulled_at: String,
    pub server_version: String,
    /// Source URL with the password removed.
    pub source_url: String,
    pub database: String,
    pub tool_version: String,
    /// Digest over every table's checksum: identifies this snapshot's content.
    pub snapshot_checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSummary {
    pub name: String,
    pub role: TableRole,
    pub rows: u64,
    pub checksum: String,
    pub millis: u64,
}

const METADATA_DDL: &str = "
CREATE TABLE _sandbox_snapshot (
  format_version INTEGER NOT NULL,
  pulled_at TEXT NOT NULL,
  server_version TEXT NOT NULL,
  source_url TEXT NOT NULL,
  database TEXT NOT NULL,
  tool_version TEXT NOT NULL,
  snapshot_checksum TEXT NOT NULL
);
CREATE TABLE _sandbox_tables (
  table_name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  rows INTEGER NOT NULL,
  checksum TEXT NOT NULL,
  pull_millis INTEGER NOT NULL
);
CREATE TABLE _sandbox_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  pg_type TEXT NOT NULL,
  storage TEXT NOT NULL,
  not_null INTEGER NOT NULL,
  default_expr TEXT,
  generated_expr TEXT,
  default_constant INTEGER NOT NULL,
  default_value TEXT,
  identity TEXT,
  enum_labels TEXT,
  domain TEXT,
  array_delimiter TEXT,
  array_element TEXT,
  collation TEXT,
  composite TEXT,
  PRIMARY KEY (table_name, column_name)
);
CREATE TABLE _sandbox_constraints (
  table_name TEXT NOT NULL,
  constraint_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  columns TEXT NOT NULL,
  ref_table TEXT,
  ref_columns TEXT NOT NULL,
  definition TEXT NOT NULL,
  validated INTEGER NOT NULL,
  expression INTEGER NOT NULL,
  predicate TEXT,
  nondeterministic TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (table_name, constraint_name)
);
CREATE TABLE _sandbox_existing_targets (
  table_name TEXT PRIMARY KEY
);
CREATE TABLE _sandbox_target_types (
  type_name TEXT PRIMARY KEY,
  meta TEXT NOT NULL
);
";

/// `CREATE TABLE` for a pulled table. Foreign keys are declared only
/// towards tables present in the file, so a DB browser can follow them; all
/// of them are kept in `_sandbox_constraints`. A primary key that is not
/// the rowid is not declared here: [`SnapshotWriter::finish`] builds it as
/// a unique index after the rows are in (see [`key_is_rowid`]).
pub fn create_table_sql(
    meta: &TableMeta,
    sqlite_name: &str,
    fk_targets: &HashSet<String>,
    fk_prefix: &str,
) -> String {
    let mut parts: Vec<String> = meta
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                quote_ident(&c.name),
                c.storage().sqlite_decl(),
                if c.not_null { " NOT NULL" } else { "" }
            )
        })
        .collect();
    if key_is_rowid(meta) {
        parts.push(format!("PRIMARY KEY ({})", ident_list(&meta.primary_key())));
    }
    for fk in meta.constraints.iter().filter(|c| c.kind == "f") {
        if let Some(target) = &fk.ref_table {
            if fk_targets.contains(target) {
                parts.push(format!(
                    "FOREIGN KEY ({}) REFERENCES {} ({})",
                    ident_list(&fk.columns),
                    quote_ident(&format!("{fk_prefix}{target}")),
                    ident_list(&fk.ref_columns)
                ));
            }
        }
    }
    format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_ident(sqlite_name),
        parts.join(",\n  ")
    )
}

/// Whether SQLite keeps the table's primary key as its rowid (a single
/// column declared INTEGER): such a key costs nothing extra per row. Any
/// other key is a separate B-tree; filled row by row in arrival order (a
/// random UUID each time) it took a fifth of a pull's CPU at 100x, while
/// one CREATE UNIQUE INDEX after the load sorts the keys once.
fn key_is_rowid(meta: &TableMeta) -> bool {
    match meta.primary_key().as_slice() {
        [key] => meta
            .column(key)
            .is_some_and(|c| c.storage().sqlite_decl() == "INTEGER"),
        _ => false,
    }
}

/// The values of `meta`'s columns at the start of `row`, as text
/// ([`from_sqlite`]): what every row reader of a snapshot table yields.
fn row_values(
    sqlite_table: &str,
    meta: &TableMeta,
    row: &rusqlite::Row<'_>,
) -> Result<Vec<Option<String>>> {
    meta.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            from_sqlite(c, row.get_ref(i)?).with_context(|| format!("table {sqlite_table}"))
        })
        .collect()
}

/// A name SQLite reads as the rowid of a table with `meta`'s columns: a
/// column of that name would shadow it.
fn rowid_name(meta: &TableMeta) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !meta.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
}

pub fn ident_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts one Postgres text value to its SQLite storage.
pub fn to_sqlite(column: &ColumnMeta, value: Option<&str>) -> Result<Value> {
    let Some(v) = value else {
        return Ok(Value::Null);
    };
    Ok(match column.storage() {
        Storage::Integer => Value::Integer(v.parse::<i64>().map_err(|_| {
            anyhow::anyhow!(
                "column {} ({}) holds '{v}', not an integer",
                column.name,
                column.pg_type
            )
        })?),
        Storage::Bool => match v {
            "t" => Value::Integer(1),
            "f" => Value::Integer(0),
            other => anyhow::bail!("column {} (boolean) holds '{other}'", column.name),
        },
        Storage::Text => Value::Text(v.to_string()),
    })
}

/// Converts a stored value back to the text Postgres prints for it.
pub fn from_sqlite(
    column: &ColumnMeta,
    value: rusqlite::types::ValueRef<'_>,
) -> Result<Option<String>> {
    use rusqlite::types::ValueRef;
    Ok(match (column.storage(), value) {
        (_, ValueRef::Null) => None,
        (Storage::Bool, ValueRef::Integer(1)) => Some("t".into()),
        (Storage::Bool, ValueRef::Integer(0)) => Some("f".into()),
        (Storage::Integer, ValueRef::Integer(i)) => Some(i.to_string()),
        (Storage::Text, ValueRef::Text(t)) => Some(
            std::str::from_utf8(t)
                .with_context(|| format!("column {} holds invalid UTF-8", column.name))?
                .to_string(),
        ),
        (storage, other) => anyhow::bail!(
            "column {} ({}) holds a {:?} value where {:?} storage was expected — was the \
             table edited by hand?",
            column.name,
            column.pg_type,
            other.data_type(),
            storage
        ),
    })
}

/// Writes a new snapshot file atomically.
pub struct SnapshotWriter {
    conn: Connection,
    tmp: tempfile::TempPath,
    final_path: PathBuf,
    tables: Vec<(TableMeta, TableSummary)>,
    insert_sql: String,
    fk_targets: HashSet<String>,
    existing_targets: Vec<TableMeta>,
    target_types: Vec<ColumnMeta>,
}

impl SnapshotWriter {
    /// Starts a snapshot that will replace `final_path` on [`finish`].
    /// Refuses to overwrite a snapshot holding rehearsal results unless
    /// `force`, because those results are what authorises a push.
    pub fn create(final_path: &Path, force: bool, table_names: &[String]) -> Result<Self> {
        if final_path.exists() && !force {
            match Snapshot::open(final_path) {
                Ok(existing) if existing.rehearsal_count()? > 0 => {
                    return Err(environment(format!(
                        "{} holds rehearsal results; pulling over it would discard them. Pull \
                         to another file with --out, or pass --force to replace it",
                        final_path.display()
                    )));
                }
                Ok(_) => {}
                // Whatever this file is (another database, a newer snapshot,
                // a damaged one), it is not ours to throw away silently.
                Err(e) => {
                    return Err(environment(format!(
                        "{} exists and cannot be replaced safely ({e:#}). Pull to another file \
                         with --out, or pass --force to replace it",
                        final_path.display()
                    )));
                }
            }
        }
        sweep_abandoned_parts(&crate::outfile::folder_of(final_path));
        let tmp = crate::outfile::temp_beside(
            final_path,
            ".sandbox-pull-",
            ".sqlite.part",
            "the snapshot",
            " with --out",
        )?
        .into_temp_path();
        let conn = Connection::open(&tmp)
            .with_context(|| format!("cannot open {} as SQLite", tmp.display()))?;
        // Nothing is lost if the machine dies mid-pull: the file is thrown
        // away anyway, so the load runs without a journal. 16 KiB pages (any
        // SQLite since 3.7 reads them) mean a quarter of the page writes and
        // B-tree splits of the default 4 KiB: a sixth less CPU per pull. A
        // 16 MiB page cache (default 2 MiB) keeps the primary-key index of a
        // 350k-row table in memory while random UUIDs go into it, instead of
        // writing and re-reading its pages for every row; it is also the
        // ceiling that keeps the pull's memory flat at any size.
        conn.execute_batch(
            "PRAGMA page_size = 16384; PRAGMA cache_size = -16384; PRAGMA journal_mode = OFF; \
             PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF;",
        )
        .and_then(|_| conn.execute_batch(METADATA_DDL))
        .and_then(|_| conn.execute_batch("BEGIN"))
        .with_context(|| {
            format!(
                "cannot start the snapshot file next to {}",
                final_path.display()
            )
        })?;
        Ok(SnapshotWriter {
            conn,
            tmp,
            final_path: final_path.to_path_buf(),
            tables: Vec::new(),
            insert_sql: String::new(),
            fk_targets: table_names.iter().cloned().collect(),
            existing_targets: Vec::new(),
            target_types: Vec::new(),
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Creates the table; rows follow through [`insert_row`].
    pub fn begin_table(&mut self, meta: &TableMeta) -> Result<()> {
        self.conn
            .execute_batch(&create_table_sql(meta, &meta.name, &self.fk_targets, ""))
            .with_context(|| format!("cannot create table {} in the snapshot", meta.name))?;
        let placeholders = vec!["?"; meta.columns.len()].join(", ");
        self.insert_sql = format!(
            "INSERT INTO {} VALUES ({placeholders})",
            quote_ident(&meta.name)
        );
        Ok(())
    }

    pub fn insert_row(&self, meta: &TableMeta, values: &[Option<String>]) -> Result<()> {
        if values.len() != meta.columns.len() {
            anyhow::bail!(
                "table {}: a row has {} values for {} columns",
                meta.name,
                values.len(),
                meta.columns.len()
            );
        }
        let mut stmt = self
            .conn
            .prepare_cached(&self.insert_sql)
            .with_context(|| {
                format!("cannot write rows of table {} into the snapshot", meta.name)
            })?;
        let converted = meta
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| to_sqlite(c, v.as_deref()))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("table {}", meta.name))?;
        stmt.execute(rusqlite::params_from_iter(converted))
            .with_context(|| {
                format!(
                    "cannot write a row of table {} into the snapshot",
                    meta.name
                )
            })?;
        Ok(())
    }

    /// Inserts rows into the table [`begin_table`] created through one
    /// prepared statement, binding each value where it lies (no copy).
    pub fn inserter<'a>(&'a self, meta: &'a TableMeta) -> Result<RowInserter<'a>> {
        Ok(RowInserter {
            stmt: StaticInsert::prepare(&self.conn, &self.insert_sql).with_context(|| {
                format!("cannot write rows of table {} into the snapshot", meta.name)
            })?,
            meta,
            storage: meta.columns.iter().map(|c| c.storage()).collect(),
        })
    }

    pub fn end_table(&mut self, meta: TableMeta, summary: TableSummary) {
        self.tables.push((meta, summary));
    }

    /// Records a table the plan creates that already exists at the source.
    pub fn existing_target(&mut self, meta: TableMeta) {
        self.existing_targets.push(meta);
    }

    /// What Postgres makes of a type target.json names (a domain, an enum,
    /// an array of one): `meta.name` is the type as target.json spells it.
    pub fn target_type(&mut self, meta: ColumnMeta) {
        self.target_types.push(meta);
    }

    /// Writes the metadata, builds unique indexes and primary keys after the data (cheaper
    /// than maintaining them row by row), and renames the file into place.
    pub fn finish(self, mut info: SnapshotInfo) -> Result<(PathBuf, SnapshotInfo)> {
        let SnapshotWriter {
            conn,
            tmp,
            final_path,
            tables,
            existing_targets,
            target_types,
            ..
        } = self;
        info.snapshot_checksum = snapshot_checksum(tables.iter().map(|(_, s)| s));
        // SQLite sizes a CREATE INDEX's in-memory sort by the page cache:
        // with the load's 16 MiB both filled at 100x (peak 50 MiB against
        // 35 at 10x). 4 MiB sorts in runs merged from a temporary file and
        // built prompts' 357k-key index faster (0.9-1.1 s vs 1.3-1.5 s), so
        // the pull's memory stays that of the load at any size.
        conn.execute_batch("PRAGMA cache_size = -4096")?;
        {
            let mut put_table =
                conn.prepare("INSERT INTO _sandbox_tables VALUES (?, ?, ?, ?, ?)")?;
            for (meta, summary) in &tables {
                put_table
                    .execute(params![
                        meta.name,
                        meta.role.as_str(),
                        summary.rows as i64,
                        summary.checksum,
                        summary.millis as i64
                    ])
                    .map_err(anyhow::Error::from)
                    .and_then(|_| write_catalog(&conn, meta))
                    .with_context(|| {
                        format!(
                            "cannot record table {} in the snapshot's catalog",
                            meta.name
                        )
                    })?;
                let deferred_key = |k: &&ConstraintMeta| k.kind == "p" && !key_is_rowid(meta);
                for k in meta
                    .constraints
                    .iter()
                    .filter(|k| k.kind == "u" || deferred_key(k))
                {
                    conn.execute_batch(&format!(
                        "CREATE UNIQUE INDEX {} ON {} ({})",
                        quote_ident(&format!("{}_{}", meta.name, k.name)),
                        quote_ident(&meta.name),
                        ident_list(&k.columns)
                    ))
                    .with_context(|| {
                        format!(
                            "cannot build unique index {} of table {} in the snapshot",
                            k.name, meta.name
                        )
                    })?;
                }
            }
            for meta in &existing_targets {
                conn.execute(
                    "INSERT INTO _sandbox_existing_targets VALUES (?)",
                    [&meta.name],
                )
                .map_err(anyhow::Error::from)
                .and_then(|_| write_catalog(&conn, meta))
                .with_context(|| {
                    format!(
                        "cannot record the existing table {} in the snapshot's catalog",
                        meta.name
                    )
                })?;
            }
            for t in &target_types {
                conn.execute(
                    "INSERT INTO _sandbox_target_types VALUES (?, ?)",
                    params![t.name, serde_json::to_string(t)?],
                )
                .with_context(|| {
                    format!("cannot record type {} in the snapshot's catalog", t.name)
                })?;
            }
            conn.execute(
                "INSERT INTO _sandbox_snapshot VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    info.format_version,
                    info.pulled_at,
                    info.server_version,
                    info.source_url,
                    info.database,
                    info.tool_version,
                    info.snapshot_checksum
                ],
            )?;
        }
        conn.execute_batch("COMMIT; PRAGMA journal_mode = DELETE;")
            .with_context(|| format!("cannot complete the snapshot file {}", tmp.display()))?;
        conn.close().map_err(|(_, e)| e)?;
        set_private(&tmp)?;
        // The load ran with synchronous = OFF: its pages may still be only
        // in the page cache. Flushed before the rename, and the rename
        // flushed with the folder, so a power loss leaves the old file or
        // the whole new one at the path, never an empty or partial snapshot
        // under the final name (as pg_dump syncs its output by default).
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot flush the snapshot file {} to disk", tmp.display()))?;
        tmp.persist(&final_path).map_err(|e| {
            environment(format!(
                "cannot move the snapshot into place at {}: {}",
                final_path.display(),
                e.error
            ))
        })?;
        let folder = crate::outfile::folder_of(&final_path);
        std::fs::File::open(&folder)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot flush the folder {} to disk", folder.display()))?;
        Ok((final_path, info))
    }
}

/// A table's rows in `_sandbox_columns` and `_sandbox_constraints`.
fn write_catalog(conn: &Connection, meta: &TableMeta) -> Result<()> {
    let mut put_col = conn.prepare_cached(
        "INSERT INTO _sandbox_columns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for c in &meta.columns {
        put_col.execute(params![
            meta.name,
            c.name,
            c.ordinal,
            c.pg_type,
            c.storage().sqlite_decl(),
            c.not_null,
            c.default,
            c.generated,
            c.default_constant,
            c.default_value,
            c.identity.map(|i| i.as_str()),
            c.enum_labels
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            c.domain.as_ref().map(serde_json::to_string).transpose()?,
            c.array_delimiter,
            c.array_element
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            c.collation
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            c.composite
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?
        ])?;
    }
    let mut put_con = conn.prepare_cached(
        "INSERT INTO _sandbox_constraints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for k in &meta.constraints {
        put_con.execute(params![
            meta.name,
            k.name,
            k.kind,
            serde_json::to_string(&k.columns)?,
            k.ref_table,
            serde_json::to_string(&k.ref_columns)?,
            k.definition,
            k.validated,
            k.expression,
            k.predicate,
            serde_json::to_string(&k.nondeterministic)?
        ])?;
    }
    Ok(())
}

/// One table's INSERT, prepared once; stores exactly what
/// [`SnapshotWriter::insert_row`] stores.
pub struct RowInserter<'a> {
    stmt: StaticInsert<'a>,
    meta: &'a TableMeta,
    storage: Vec<Storage>,
}

impl RowInserter<'_> {
    pub fn insert<S: AsRef<str>>(&mut self, values: &[Option<S>]) -> Result<()> {
        let meta = self.meta;
        if values.len() != meta.columns.len() {
            anyhow::bail!(
                "table {}: a row has {} values for {} columns",
                meta.name,
                values.len(),
                meta.columns.len()
            );
        }
        let mut row = self.stmt.row();
        for (i, ((c, storage), v)) in meta
            .columns
            .iter()
            .zip(&self.storage)
            .zip(values)
            .enumerate()
        {
            let v = v.as_ref().map(|s| s.as_ref());
            let bound = match (storage, v) {
                (_, None) => row.bind_null(i + 1),
                (Storage::Text, Some(text)) => row.bind_text(i + 1, text),
                (Storage::Integer, Some(text)) => match text.parse::<i64>() {
                    Ok(n) => row.bind_int(i + 1, n),
                    Err(_) => return Err(conversion_error(meta, c, v)),
                },
                (Storage::Bool, Some("t")) => row.bind_int(i + 1, 1),
                (Storage::Bool, Some("f")) => row.bind_int(i + 1, 0),
                (Storage::Bool, Some(_)) => return Err(conversion_error(meta, c, v)),
            };
            bound?;
        }
        row.execute()?;
        Ok(())
    }
}

/// A prepared INSERT whose text values are bound where they lie.
///
/// rusqlite binds every text value as `SQLITE_TRANSIENT`: SQLite then
/// allocates and copies each one before the row is built (and copies it
/// again into the row), a `malloc`, `memcpy` and `free` per value — a
/// twentieth of a 100x pull's CPU on the writer thread. Bound as
/// `SQLITE_STATIC`, SQLite reads the value from our buffer while the row
/// is inserted. That is sound only while the buffer outlives the binding:
/// a [`StaticRow`] borrows every value it binds, and clears all bindings
/// (and resets the statement) before that borrow ends, whether the row was
/// inserted or not.
struct StaticInsert<'conn> {
    stmt: std::ptr::NonNull<rusqlite::ffi::sqlite3_stmt>,
    db: *mut rusqlite::ffi::sqlite3,
    /// The statement must be finalized before its connection closes.
    _conn: std::marker::PhantomData<&'conn Connection>,
}

impl<'conn> StaticInsert<'conn> {
    fn prepare(conn: &'conn Connection, sql: &str) -> rusqlite::Result<Self> {
        use rusqlite::ffi;
        let len = std::os::raw::c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `handle` is the open connection `conn` borrows for
        // 'conn; SQLite reads `len` bytes of `sql`, which lives through
        // the call, and writes the new statement (or null) to `stmt`.
        let (db, rc) = unsafe {
            let db = conn.handle();
            let rc = ffi::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            );
            (db, rc)
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(db, rc));
        }
        let stmt = std::ptr::NonNull::new(stmt).ok_or_else(|| {
            rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_MISUSE),
                Some(format!("no statement in {sql}")),
            )
        })?;
        Ok(StaticInsert {
            stmt,
            db,
            _conn: std::marker::PhantomData,
        })
    }

    /// Starts a row: values bound through it must outlive it.
    fn row<'v>(&'v mut self) -> StaticRow<'v, 'conn> {
        StaticRow {
            insert: self,
            _values: std::marker::PhantomData,
        }
    }
}

impl Drop for StaticInsert<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on this connection, which is
        // still open ('conn), and is not used after this.
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The error SQLite recorded for the connection, as rusqlite reports it.
fn last_error(db: *mut rusqlite::ffi::sqlite3, rc: std::os::raw::c_int) -> rusqlite::Error {
    // SAFETY: `db` is an open connection; the message SQLite returns is a
    // NUL-terminated string valid until the next call on it, copied here.
    let message = unsafe {
        let text = rusqlite::ffi::sqlite3_errmsg(db);
        (!text.is_null()).then(|| {
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        })
    };
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), message)
}

/// One row being bound; `'v` is the borrow of every value bound through it.
struct StaticRow<'v, 'conn> {
    insert: &'v mut StaticInsert<'conn>,
    _values: std::marker::PhantomData<&'v str>,
}

impl<'v> StaticRow<'v, '_> {
    fn check(&self, rc: std::os::raw::c_int) -> rusqlite::Result<()> {
        if rc == rusqlite::ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(last_error(self.insert.db, rc))
        }
    }

    fn bind_null(&mut self, index: usize) -> rusqlite::Result<()> {
        let index = bind_index(index)?;
        // SAFETY: a valid statement; SQLite checks the index.
        let rc = unsafe { rusqlite::ffi::sqlite3_bind_null(self.insert.stmt.as_ptr(), index) };
        self.check(rc)
    }

    fn bind_int(&mut self, index: usize, value: i64) -> rusqlite::Result<()> {
        let index = bind_index(index)?;
        // SAFETY: a valid statement; SQLite checks the index.
        let rc =
            unsafe { rusqlite::ffi::sqlite3_bind_int64(self.insert.stmt.as_ptr(), index, value) };
        self.check(rc)
    }

    /// Binds `text` without a copy: it lives for `'v`, longer than this
    /// row, whose drop clears the binding.
    fn bind_text(&mut self, index: usize, text: &'v str) -> rusqlite::Result<()> {
        let index = bind_index(index)?;
        let len = std::os::raw::c_int::try_from(text.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
                None,
            )
        })?;
        // SAFETY: a valid statement; `text` is valid UTF-8 of `len` bytes
        // and stays valid until `Drop` clears this binding (see
        // [`StaticInsert`]), so SQLITE_STATIC's promise holds.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_bind_text(
                self.insert.stmt.as_ptr(),
                index,
                text.as_ptr().cast(),
                len,
                rusqlite::ffi::SQLITE_STATIC(),
            )
        };
        self.check(rc)
    }

    /// Inserts the row bound so far.
    fn execute(self) -> rusqlite::Result<()> {
        // SAFETY: a valid statement whose bound values are alive ('v).
        let rc = unsafe { rusqlite::ffi::sqlite3_step(self.insert.stmt.as_ptr()) };
        if rc == rusqlite::ffi::SQLITE_DONE {
            Ok(())
        } else {
            // The message is read before Drop resets the statement.
            Err(last_error(self.insert.db, rc))
        }
    }
}

impl Drop for StaticRow<'_, '_> {
    /// Ends the row, inserted or not: no binding outlives the values.
    fn drop(&mut self) {
        // SAFETY: a valid statement; after these calls it holds no pointer
        // into the row's values. Their result codes repeat the step's error,
        // already reported.
        unsafe {
            rusqlite::ffi::sqlite3_reset(self.insert.stmt.as_ptr());
            rusqlite::ffi::sqlite3_clear_bindings(self.insert.stmt.as_ptr());
        }
    }
}

fn bind_index(index: usize) -> rusqlite::Result<std::os::raw::c_int> {
    std::os::raw::c_int::try_from(index)
        .map_err(|_| rusqlite::Error::InvalidParameterCount(index, 0))
}

/// The error [`to_sqlite`] gives for a value its column cannot store.
fn conversion_error(meta: &TableMeta, column: &ColumnMeta, value: Option<&str>) -> anyhow::Error {
    match to_sqlite(column, value) {
        Err(e) => e.context(format!("table {}", meta.name)),
        Ok(_) => anyhow::anyhow!(
            "table {}: column {} cannot store its value",
            meta.name,
            column.name
        ),
    }
}

/// A pull killed with SIGKILL cannot delete its temporary file. A live pull
/// writes its file continuously, so one untouched for this long is
/// abandoned; at production scale each can be gigabytes.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn sweep_abandoned_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".sandbox-pull-") && name.ends_with(".sqlite.part")) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Snapshots hold production data: readable by the owner only.
fn set_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict permissions of {}", path.display()))?;
    }
    Ok(())
}

pub fn snapshot_checksum<'a>(tables: impl Iterator<Item = &'a TableSummary>) -> String {
    let mut entries: Vec<(&str, &str)> = tables
        .map(|t| (t.name.as_str(), t.checksum.as_str()))
        .collect();
    entries.sort();
    let mut h = Sha256::new();
    for (name, sum) in entries {
        h.update(name.as_bytes());
        h.update(b":");
        h.update(sum.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// A pulled table as recorded in the file.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    pub meta: TableMeta,
    pub rows: u64,
    pub checksum: String,
    pub millis: u64,
}

/// Whether SQLite gave up because another connection holds the file: a
/// DB browser with unsaved changes, another sandbox run.
pub fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether anything in the chain is SQLite giving up on a lock another
/// connection holds.
pub fn locked_in_chain(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<rusqlite::Error>().is_some_and(is_locked))
}

/// What to do about a snapshot another program holds: the file is fine,
/// and replacing it (the advice for a damaged file) would throw away the
/// rehearsals the user is looking at.
pub const LOCKED_ADVICE: &str = "the snapshot file is locked by another program (a DB browser \
     with unsaved changes, or another sandbox run on it); the file itself is fine: save or close \
     it there, then run this again";

/// Why the snapshot file could not be written, from SQLite's error in
/// `err`'s chain, and what to do about it before recording again: a file
/// another program holds is fine and only has to be let go (telling the
/// user to "make it writable" sent them chmod-ing a writable file), a
/// read-only file or folder has to be made writable, a full disk freed.
/// What stopped a committed push or rollback from being recorded in the
/// snapshot file, said once: SQLite's own words and their cause, with what
/// to do. The caller's context ("the push committed (receipt …) but …")
/// is left out: the command's warning says that already, and repeating it
/// inside the parentheses read as two failures.
pub fn why_unrecorded(err: &anyhow::Error) -> (String, &'static str) {
    let (cause, fix) = why_unwritable(err);
    let sqlite = err
        .chain()
        .find_map(|e| e.downcast_ref::<rusqlite::Error>())
        .map(ToString::to_string)
        .unwrap_or_else(|| err.root_cause().to_string());
    (format!("{sqlite}: {cause}"), fix)
}

pub fn why_unwritable(err: &anyhow::Error) -> (&'static str, &'static str) {
    let code = err
        .chain()
        .find_map(|e| e.downcast_ref::<rusqlite::Error>())
        .and_then(rusqlite::Error::sqlite_error_code);
    match code {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => (
            "the file is locked by another program (a DB browser with unsaved changes, or \
             another sandbox run on it); the file itself is fine",
            "save or close it there",
        ),
        Some(rusqlite::ErrorCode::ReadOnly) => (
            "the file or its folder is read-only",
            "make it writable (or copy it somewhere writable)",
        ),
        Some(rusqlite::ErrorCode::DiskFull) => ("the disk is full", "free space on it"),
        _ => (
            "it cannot be written",
            "make it writable (or copy it somewhere writable)",
        ),
    }
}

fn locked_by_another_program(path: &Path) -> anyhow::Error {
    environment(format!("{}: {LOCKED_ADVICE}", path.display()))
}

/// An opened snapshot file.
pub struct Snapshot {
    pub conn: Connection,
    pub path: PathBuf,
    pub info: SnapshotInfo,
    pub tables: Vec<SnapshotTable>,
    /// Tables the plan creates that already existed at the source.
    pub existing_targets: Vec<TableMeta>,
    /// The types target.json names that Postgres gives a meaning the name
    /// alone does not carry (a domain's base type, NOT NULL and DEFAULT, an
    /// enum's labels, an array's elements), by the name target.json uses:
    /// the columns the plan adds and creates are read as Postgres reads
    /// them (`plan::stage::planned_column`).
    pub target_types: std::collections::BTreeMap<String, ColumnMeta>,
}

impl Snapshot {
    /// Opens and validates a snapshot. A missing file, a file that is not
    /// SQLite, and a SQLite file that is not a snapshot each get their own
    /// message.
    pub fn open(path: &Path) -> Result<Snapshot> {
        if !path.exists() {
            return Err(environment(format!(
                "no snapshot at {}: run `sandbox pull` first (or pass --snapshot FILE)",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| environment(format!("cannot open {}: {e}", path.display())))?;
        let has_meta: std::result::Result<i64, _> = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sandbox_snapshot'",
            [],
            |r| r.get(0),
        );
        match has_meta {
            Err(e) if is_locked(&e) => return Err(locked_by_another_program(path)),
            Err(e) => {
                return Err(environment(format!(
                    "{} is not a readable SQLite file ({e}); it may be corrupt or another \
                     kind of file — pull a fresh snapshot",
                    path.display()
                )))
            }
            Ok(0) => {
                return Err(environment(format!(
                    "{} is a SQLite database but not a sandbox snapshot (no _sandbox_snapshot \
                     table); pass the file written by `sandbox pull`",
                    path.display()
                )))
            }
            Ok(_) => {}
        }
        let info = conn
            .query_row(
                "SELECT format_version, pulled_at, server_version, source_url, database, \
                 tool_version, snapshot_checksum FROM _sandbox_snapshot",
                [],
                |r| {
                    Ok(SnapshotInfo {
                        format_version: r.get(0)?,
                        pulled_at: r.get(1)?,
                        server_version: r.get(2)?,
                        source_url: r.get(3)?,
                        database: r.get(4)?,
                        tool_version: r.get(5)?,
                        snapshot_checksum: r.get(6)?,
                    })
                },
            )
            .map_err(|e| {
                environment(format!(
                    "{} has a damaged _sandbox_snapshot table ({e}); take a fresh snapshot: `{}`",
                    path.display(),
                    crate::advice::pull_with_its_plan(path)
                ))
            })?;
        if info.format_version != FORMAT_VERSION {
            return Err(environment(format!(
                "{} is a snapshot of format {} but this sandbox reads format {FORMAT_VERSION} \
                 (the file was written by {} version of sandbox); take a fresh snapshot with this \
                 version: `{}`",
                path.display(),
                info.format_version,
                if info.format_version > FORMAT_VERSION {
                    "a newer"
                } else {
                    "an older"
                },
                crate::advice::pull_with_its_plan(path)
            )));
        }
        let damaged = |e: anyhow::Error| {
            environment(format!(
                "{} has damaged _sandbox_* metadata ({e:#}); pull a fresh snapshot",
                path.display()
            ))
        };
        let tables = read_tables(&conn).map_err(damaged)?;
        let existing_targets = read_existing_targets(&conn).map_err(damaged)?;
        let target_types = read_target_types(&conn).map_err(damaged)?;
        Ok(Snapshot {
            conn,
            path: path.to_path_buf(),
            info,
            tables,
            existing_targets,
            target_types,
        })
    }

    pub fn table(&self, name: &str) -> Option<&SnapshotTable> {
        self.tables.iter().find(|t| t.meta.name == name)
    }

    /// How many rehearsals the file records (0 before the first, when the
    /// table does not exist yet). A table that cannot be read is an error,
    /// not 0: a damaged file must not pass for one never rehearsed.
    pub fn rehearsal_count(&self) -> Result<i64> {
        let exists: bool = self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type IN ('table', 'view') AND name = '_sandbox_rehearsals'",
            [],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(0);
        }
        self.conn
            .query_row("SELECT count(*) FROM _sandbox_rehearsals", [], |r| r.get(0))
            .with_context(|| {
                format!(
                    "cannot count the rehearsals recorded in {}",
                    self.path.display()
                )
            })
    }

    /// Streams the rows of `sqlite_table` (a pulled table or a staged copy
    /// with the same columns) as Postgres text values.
    pub fn for_each_row(
        &self,
        sqlite_table: &str,
        meta: &TableMeta,
        mut f: impl FnMut(Vec<Option<String>>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.select_all(sqlite_table, meta)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            f(row_values(sqlite_table, meta, row)?)?;
        }
        Ok(())
    }

    /// [`Snapshot::for_each_row`] with each row's SQLite rowid, by which
    /// [`Snapshot::row_at`] reads it again: a caller can keep the rowid
    /// instead of the row. None when every name of the rowid (`rowid`,
    /// `_rowid_`, `oid`) is one of the table's columns.
    pub fn for_each_row_with_rowid(
        &self,
        sqlite_table: &str,
        meta: &TableMeta,
        mut f: impl FnMut(i64, Vec<Option<String>>) -> Result<()>,
    ) -> Result<Option<()>> {
        let Some(rowid) = rowid_name(meta) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {}, {rowid} FROM main.{}",
            ident_list(&meta.column_names()),
            quote_ident(sqlite_table)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .with_context(|| format!("cannot read table {sqlite_table} of the snapshot"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            f(
                row.get(meta.columns.len())?,
                row_values(sqlite_table, meta, row)?,
            )?;
        }
        Ok(Some(()))
    }

    /// The row of `sqlite_table` whose rowid is `rowid` (as
    /// [`Snapshot::for_each_row_with_rowid`] gave it), `meta`'s columns.
    pub fn row_at(
        &self,
        sqlite_table: &str,
        meta: &TableMeta,
        rowid: i64,
    ) -> Result<Vec<Option<String>>> {
        let name = rowid_name(meta).ok_or_else(|| {
            anyhow::anyhow!("table {sqlite_table} has columns named rowid, _rowid_ and oid")
        })?;
        let sql = format!(
            "SELECT {} FROM main.{} WHERE {name} = ?1",
            ident_list(&meta.column_names()),
            quote_ident(sqlite_table)
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .with_context(|| format!("cannot read table {sqlite_table} of the snapshot"))?;
        let mut rows = stmt.query([rowid])?;
        let row = rows.next()?.ok_or_else(|| {
            anyhow::anyhow!("table {sqlite_table} of the snapshot lost row {rowid} while read")
        })?;
        row_values(sqlite_table, meta, row)
    }

    /// `SELECT` of `meta`'s columns, in its order, from `sqlite_table`.
    fn select_all(&self, sqlite_table: &str, meta: &TableMeta) -> Result<rusqlite::Statement<'_>> {
        // Always `main.`: during a rehearsal TEMP views shadow the pulled
        // table names with their staged copies.
        let sql = format!(
            "SELECT {} FROM main.{}",
            ident_list(&meta.column_names()),
            quote_ident(sqlite_table)
        );
        self.conn
            .prepare(&sql)
            .with_context(|| format!("cannot read table {sqlite_table} of the snapshot"))
    }

    /// Recomputes a table's content checksum from what the file holds now.
    /// Builds each row's canonical COPY line straight from the stored
    /// values (what [`for_each_row`] then [`TableChecksum::add_row`] would
    /// hash, without a `String` per value).
    pub fn checksum_of(&self, sqlite_table: &str, meta: &TableMeta) -> Result<TableChecksum> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.select_all(sqlite_table, meta)?;
        let storage: Vec<Storage> = meta.columns.iter().map(|c| c.storage()).collect();
        let mut sum = TableChecksum::new();
        let mut line: Vec<u8> = Vec::with_capacity(1 << 12);
        let reading = || format!("cannot read table {sqlite_table} of the snapshot");
        let mut rows = stmt.query([]).with_context(reading)?;
        while let Some(row) = rows.next().with_context(reading)? {
            line.clear();
            for (i, (c, storage)) in meta.columns.iter().zip(&storage).enumerate() {
                if i > 0 {
                    line.push(b'\t');
                }
                match (storage, row.get_ref(i)?) {
                    (_, ValueRef::Null) => line.extend_from_slice(b"\\N"),
                    (Storage::Bool, ValueRef::Integer(1)) => line.push(b't'),
                    (Storage::Bool, ValueRef::Integer(0)) => line.push(b'f'),
                    (Storage::Integer, ValueRef::Integer(n)) => {
                        use std::io::Write;
                        write!(line, "{n}").expect("writing to a Vec cannot fail");
                    }
                    (Storage::Text, ValueRef::Text(t)) => match std::str::from_utf8(t) {
                        Ok(text) => push_copy_field_bytes(&mut line, Some(text)),
                        Err(_) => {
                            let text = from_sqlite(c, ValueRef::Text(t))
                                .with_context(|| format!("table {sqlite_table}"))?;
                            push_copy_field_bytes(&mut line, text.as_deref());
                        }
                    },
                    // Whatever else from_sqlite makes of it, errors included.
                    (_, other) => {
                        let text = from_sqlite(c, other)
                            .with_context(|| format!("table {sqlite_table}"))?;
                        push_copy_field_bytes(&mut line, text.as_deref());
                    }
                }
            }
            line.push(b'\n');
            sum.add_line(&line);
        }
        Ok(sum)
    }
}

/// A table's columns and constraints as `_sandbox_columns` and
/// `_sandbox_constraints` record them.
fn read_catalog_of(
    conn: &Connection,
    name: &str,
) -> Result<(Vec<ColumnMeta>, Vec<ConstraintMeta>)> {
    // A file pulled before array elements were recorded has no such
    // column: its arrays are checked by the preflight only, as they were.
    // Nor collations: a file pulled before they were recorded treats every
    // key as compared byte for byte, as it did.
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )
    };
    let or_null = |present: bool, column: &'static str| if present { column } else { "NULL" };
    let mut cols = conn.prepare_cached(&format!(
        "SELECT column_name, ordinal, pg_type, not_null, default_expr, generated_expr, \
         default_constant, default_value, identity, enum_labels, domain, array_delimiter, {}, {}, \
         storage, {} FROM _sandbox_columns WHERE table_name = ? ORDER BY ordinal",
        or_null(
            has_column("_sandbox_columns", "array_element")?,
            "array_element"
        ),
        or_null(has_column("_sandbox_columns", "collation")?, "collation"),
        // A file pulled before composite fields were recorded: its row
        // values are staged as written, as they were.
        or_null(has_column("_sandbox_columns", "composite")?, "composite"),
    ))?;
    type Raw = (
        ColumnMeta,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let raw = cols
        .query_map([name], |r| {
            Ok((
                ColumnMeta {
                    name: r.get(0)?,
                    ordinal: r.get(1)?,
                    pg_type: r.get(2)?,
                    not_null: r.get(3)?,
                    default: r.get(4)?,
                    generated: r.get(5)?,
                    default_constant: r.get(6)?,
                    default_value: r.get(7)?,
                    array_delimiter: r.get(11)?,
                    ..Default::default()
                },
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, Option<String>>(12)?,
                r.get::<_, Option<String>>(13)?,
                r.get::<_, String>(14)?,
                r.get::<_, Option<String>>(15)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<Raw>>>()?;
    let mut columns = Vec::new();
    for (mut c, identity, labels, domain, element, collation, storage, composite) in raw {
        c.identity = match identity {
            None => None,
            Some(i) => Some(crate::catalog::Identity::parse(&i).ok_or_else(|| {
                anyhow::anyhow!("column {name}.{} has unknown identity '{i}'", c.name)
            })?),
        };
        // Each JSON-encoded catalog field of the column, or a named error:
        // a field that does not parse means the file was edited or cut.
        fn field<T: serde::de::DeserializeOwned>(
            value: Option<String>,
            table: &str,
            column: &str,
            what: &str,
        ) -> anyhow::Result<Option<T>> {
            value
                .map(|v| serde_json::from_str(&v))
                .transpose()
                .with_context(|| {
                    format!(
                        "column {table}.{column}: its {what} in _sandbox_columns is not valid \
                         JSON; the snapshot is damaged — pull again"
                    )
                })
        }
        c.enum_labels = field(labels, name, &c.name, "enum labels")?;
        c.domain = field(domain, name, &c.name, "domain")?;
        c.array_element = field(element, name, &c.name, "array element type")?;
        c.collation = field(collation, name, &c.name, "collation")?;
        c.composite = field(composite, name, &c.name, "composite fields")?;
        // A sandbox before domains were stored as their base type kept a
        // domain over an integer as TEXT: read with today's rules its rows
        // would not convert, and compared as text '10' < '9'.
        if storage != c.storage().sqlite_decl() {
            return Err(environment(format!(
                "column {name}.{} ({}) is stored as {storage} in this snapshot, pulled by an \
                 older sandbox; this one stores it as {} (its value type {}). Pull again",
                c.name,
                c.pg_type,
                c.storage().sqlite_decl(),
                c.value_type()
            )));
        }
        columns.push(c);
    }
    if columns.is_empty() {
        anyhow::bail!("table {name} has no columns recorded");
    }
    let mut cons = conn.prepare_cached(&format!(
        "SELECT constraint_name, kind, columns, ref_table, ref_columns, definition, validated, \
         expression, predicate, {} FROM _sandbox_constraints WHERE table_name = ? ORDER BY rowid",
        or_null(
            has_column("_sandbox_constraints", "nondeterministic")?,
            "nondeterministic"
        ),
    ))?;
    let table = name;
    let constraints = cons
        .query_map([name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, bool>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(
            |(
                name,
                kind,
                columns,
                ref_table,
                ref_columns,
                definition,
                validated,
                expression,
                predicate,
                nondeterministic,
            )| {
                let list = |text: &str, what: &str| -> Result<Vec<String>> {
                    serde_json::from_str(text).with_context(|| {
                        format!(
                            "table {table}: the {what} of constraint {name} in \
                             _sandbox_constraints are not valid JSON; the snapshot is damaged \
                             — pull again"
                        )
                    })
                };
                let nondeterministic = match nondeterministic {
                    Some(text) => list(&text, "non-deterministic collations")?,
                    None => vec![],
                };
                Ok(ConstraintMeta {
                    columns: list(&columns, "columns")?,
                    ref_columns: list(&ref_columns, "referenced columns")?,
                    nondeterministic,
                    name,
                    kind,
                    ref_table,
                    definition,
                    validated,
                    expression,
                    predicate,
                })
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok((columns, constraints))
}

/// The types of target.json recorded by the pull (see
/// [`Snapshot::target_types`]). A file pulled before they were recorded has
/// none: its added columns read as before, by their type's name.
fn read_target_types(conn: &Connection) -> Result<std::collections::BTreeMap<String, ColumnMeta>> {
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sandbox_target_types'",
        [],
        |r| r.get(0),
    )?;
    let mut out = std::collections::BTreeMap::new();
    if present == 0 {
        return Ok(out);
    }
    let mut stmt = conn.prepare("SELECT type_name, meta FROM _sandbox_target_types")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (name, meta) = row?;
        let meta: ColumnMeta = serde_json::from_str(&meta)
            .with_context(|| format!("_sandbox_target_types: type {name} is not readable"))?;
        out.insert(name, meta);
    }
    Ok(out)
}

/// Tables the plan creates that existed at the source when it was pulled.
fn read_existing_targets(conn: &Connection) -> Result<Vec<TableMeta>> {
    let names: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT table_name FROM _sandbox_existing_targets ORDER BY table_name")?;
        let v = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        v
    };
    let mut out = Vec::new();
    for name in names {
        let (columns, constraints) = read_catalog_of(conn, &name)?;
        out.push(TableMeta {
            name,
            role: TableRole::Target,
            columns,
            constraints,
        });
    }
    Ok(out)
}

fn read_tables(conn: &Connection) -> Result<Vec<SnapshotTable>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT table_name, role, rows, checksum, pull_millis FROM _sandbox_tables ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (name, role, rows, checksum, millis) = row?;
        let role = TableRole::parse(&role)
            .ok_or_else(|| anyhow::anyhow!("table {name} has unknown role '{role}'"))?;
        let (columns, constraints) = read_catalog_of(conn, &name)?;
        out.push(SnapshotTable {
            meta: TableMeta {
                name,
                role,
                columns,
                constraints,
            },
            rows: rows as u64,
            checksum,
            millis: millis as u64,
        });
    }
    Ok(out)
}

/// Where pull records the digests Postgres computed for the tables the plan
/// depends on (its read and write sets), for push to compare server-side.
const SERVER_DIGESTS_DDL: &str = "CREATE TABLE IF NOT EXISTS _sandbox_server_digests (
  table_name TEXT PRIMARY KEY,
  rows INTEGER NOT NULL,
  digest TEXT NOT NULL
)";

/// Records server digests in a snapshot being written.
pub fn write_server_digests(
    conn: &Connection,
    digests: &std::collections::BTreeMap<String, crate::db::postgres::digest::TableDigest>,
) -> Result<()> {
    let record = || -> rusqlite::Result<()> {
        conn.execute_batch(SERVER_DIGESTS_DDL)?;
        let mut put = conn.prepare("INSERT INTO _sandbox_server_digests VALUES (?, ?, ?)")?;
        for (name, d) in digests {
            put.execute(params![name, d.rows as i64, d.digest])?;
        }
        Ok(())
    };
    record().context("cannot record the server's table digests in the snapshot")
}

impl Snapshot {
    /// Whether the file recorded each column's collation (one pulled
    /// before did not: its columns all read as the database default).
    pub fn records_collations(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('_sandbox_columns') WHERE name = 'collation'",
            [],
            |r| r.get(0),
        )?)
    }

    /// The server digests pull recorded; empty for a snapshot pulled before
    /// they existed (push then reads those tables back, and says so).
    pub fn server_digests(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::db::postgres::digest::TableDigest>> {
        let exists: i64 = self.conn.query_row(
            "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = '_sandbox_server_digests'",
            [],
            |r| r.get(0),
        )?;
        let mut out = std::collections::BTreeMap::new();
        if exists == 0 {
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT table_name, rows, digest FROM main._sandbox_server_digests")
            .context("cannot read the server's table digests recorded in the snapshot")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (name, rows, digest) =
                row.context("cannot read the server's table digests recorded in the snapshot")?;
            // A negative count read as 0 would match an empty table.
            let rows = u64::try_from(rows).map_err(|_| {
                anyhow::anyhow!(
                    "table {name}: the server digest in the snapshot counts {rows} rows; the \
                     snapshot is damaged — pull again"
                )
            })?;
            out.insert(
                name,
                crate::db::postgres::digest::TableDigest { rows, digest },
            );
        }
        Ok(out)
    }
}

/// Receives progress while a snapshot's tables are written (pull, demo); the command layer draws it.
pub trait PullProgress {
    fn table_started(&self, _table: &str, _estimated_rows: u64) {}
    fn rows_copied(&self, _table: &str, _rows: u64) {}
    fn table_finished(&self, _summary: &TableSummary) {}
}

/// Progress that goes nowhere (tests, `--json`).
pub struct NoProgress;
impl PullProgress for NoProgress {}

/// A snapshot written: where, from what, and each table's summary.
#[derive(Debug, serde::Serialize)]
pub struct PullReport {
    pub path: PathBuf,
    pub info: SnapshotInfo,
    pub tables: Vec<TableSummary>,
    pub millis: u64,
}

/// Adds to `_sandbox_receipts` (the snapshot's copies of receipts) a
/// column that snapshots written by an older sandbox lack (NULL for
/// every copy they hold): `rolled_back_at` (before it, `recorded_at` may
/// be a rollback's time), the row counts.
pub fn add_receipts_column(
    conn: &rusqlite::Connection,
    name: &str,
    decl: &str,
) -> rusqlite::Result<()> {
    if !receipts_has_column(conn, name)? {
        conn.execute_batch(&format!(
            "ALTER TABLE _sandbox_receipts ADD COLUMN {name} {decl}"
        ))?;
    }
    Ok(())
}

/// Whether the snapshot's `schema` (`main`, `temp` or an attached one)
/// holds table `table`: a file pulled by an older version lacks the
/// `_sandbox_*` records added since, and a rehearsal's temp tables come
/// and go.
pub fn table_exists(conn: &Connection, schema: &str, table: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"),
        [table],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

pub fn receipts_has_column(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('_sandbox_receipts') WHERE name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}
