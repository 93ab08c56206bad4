//! `sandbox pull`: copy the plan's tables into a new snapshot file in one
//! consistent read.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{pin_mut, StreamExt};
use tokio_postgres::{IsolationLevel, Transaction};

use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
use crate::db::postgres::digest::table_digests;
use crate::db::postgres::{connect, explain_query_error, set_local_settings_sql, Target};
use crate::db::sqlite::{
    write_server_digests, SnapshotInfo, SnapshotWriter, TableSummary, FORMAT_VERSION,
};
use crate::error::environment;
use crate::plan::TableSet;
use crate::types::{find_byte, parse_copy_fields, parse_copy_line, quote_ident, TableChecksum};

/// Receives progress while tables stream; the command layer draws it.
pub trait PullProgress {
    fn table_started(&self, _table: &str, _estimated_rows: u64) {}
    fn rows_copied(&self, _table: &str, _rows: u64) {}
    fn table_finished(&self, _summary: &TableSummary) {}
}

/// Progress that goes nowhere (tests, `--json`).
pub struct NoProgress;
impl PullProgress for NoProgress {}

pub struct PullOptions {
    pub target: Target,
    pub out: PathBuf,
    pub force: bool,
    pub tables: TableSet,
    /// Tables the plan creates: if one already exists, its catalog is
    /// recorded so the rehearsal can name it.
    pub creates: Vec<String>,
    /// Tables whose Postgres-computed digest the snapshot records for push's
    /// drift check: the plan's read and write sets (cheap tables; the big
    /// ones the plan never touches are not hashed twice).
    pub digests: std::collections::BTreeSet<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct PullReport {
    pub path: PathBuf,
    pub info: SnapshotInfo,
    pub tables: Vec<TableSummary>,
    pub millis: u64,
}

pub async fn pull(opts: &PullOptions, progress: &dyn PullProgress) -> Result<PullReport> {
    let started = Instant::now();
    let mut client = connect(&opts.target).await?;
    // Create the temp file before reading anything, so an unwritable folder
    // fails fast.
    let plan_tables: Vec<String> = opts.tables.named().map(str::to_string).collect();
    let writer = SnapshotWriter::create(&opts.out, opts.force, &plan_tables)?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("cannot start the read transaction")?;
    tx.batch_execute(&set_local_settings_sql()).await?;
    let (pulled_at, server_version): (String, String) = {
        let row = tx
            .query_one("SELECT now()::text, current_setting('server_version')", &[])
            .await?;
        (row.get(0), row.get(1))
    };
    let metas = read_catalog(&tx, &opts.tables).await?;
    let existing_targets = read_existing_targets(&tx, &opts.creates).await?;
    // In the same REPEATABLE READ snapshot as the rows: the digests describe
    // exactly what is pulled.
    let digested: Vec<&TableMeta> = metas
        .iter()
        .map(|(m, _)| m)
        .filter(|m| opts.digests.contains(&m.name))
        .collect();
    let digests = table_digests(&tx, &digested).await?;
    let mut loader = Loader::start(writer)?;
    let mut summaries = Vec::new();
    let mut loaded = Vec::new();
    for (meta, estimate) in metas {
        let summary = copy_table(&tx, &mut loader, &meta, estimate, progress).await?;
        progress.table_finished(&summary);
        summaries.push(summary.clone());
        loaded.push((meta, summary));
    }
    tx.commit()
        .await
        .context("the read transaction failed to end")?;
    drop(client);
    let mut writer = loader.finish()?;
    write_server_digests(writer.connection(), &digests)?;
    for (meta, summary) in loaded {
        writer.end_table(meta, summary);
    }
    for meta in existing_targets {
        writer.existing_target(meta);
    }
    let info = SnapshotInfo {
        format_version: FORMAT_VERSION,
        pulled_at,
        server_version,
        source_url: opts.target.redacted().to_string(),
        database: opts.target.dbname(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        snapshot_checksum: String::new(),
    };
    let (path, info) = writer.finish(info)?;
    Ok(PullReport {
        path,
        info,
        tables: summaries,
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Resolves the plan's table set against the catalog and reads each table's
/// columns and constraints. Nothing here knows any table's columns.
pub async fn read_catalog(tx: &Transaction<'_>, set: &TableSet) -> Result<Vec<(TableMeta, u64)>> {
    let rows = tx
        .query(
            "SELECT c.oid, c.relname, greatest(c.reltuples, 0)::int8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
            &[],
        )
        .await
        .context("cannot read the catalog")?;
    let present: Vec<(u32, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let missing: Vec<&str> = set
        .named()
        .filter(|name| !present.iter().any(|(_, n, _)| n == name))
        .collect();
    if !missing.is_empty() {
        return Err(environment(format!(
            "the source database has no table {} in schema public, which the plan needs; \
             is the URL pointing at the right database? (`sandbox fixtures load` builds a \
             test one)",
            missing.join(", ")
        )));
    }
    let mut wanted: Vec<(u32, String, TableRole, i64)> = Vec::new();
    for name in set.named() {
        if let Some((oid, n, est)) = present.iter().find(|(_, n, _)| n == name) {
            wanted.push((*oid, n.clone(), set.role_of(n), *est));
        }
    }
    let mut extra: Vec<&(u32, String, i64)> = present
        .iter()
        .filter(|(_, n, _)| set.matches_pattern(n) && !wanted.iter().any(|w| &w.1 == n))
        .collect();
    extra.sort_by(|a, b| a.1.cmp(&b.1));
    for (oid, n, est) in extra {
        wanted.push((*oid, n.clone(), TableRole::Source, *est));
    }
    let mut lower: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for (_, name, _, _) in &wanted {
        if let Some(other) = lower.insert(name.to_lowercase(), name) {
            return Err(environment(format!(
                "tables \"{other}\" and \"{name}\" differ only in case; a SQLite snapshot \
                 cannot hold both. Rename one at the source before pulling"
            )));
        }
    }
    // Every table's catalog queries at once: tokio-postgres pipelines them
    // on the connection, so a remote database costs the round trips of one
    // table, not of each (the order of the result is the order asked).
    futures_util::future::try_join_all(wanted.into_iter().map(
        |(oid, name, role, estimate)| async move {
            let meta = read_table_meta(tx, oid, name, role).await?;
            Ok::<_, anyhow::Error>((meta, estimate.max(0) as u64))
        },
    ))
    .await
}

/// The tables the plan creates that already exist in schema public (an
/// unrelated app table of the same name, say), described like pulled ones:
/// a rehearsal names them instead of a push failing on CREATE TABLE.
pub async fn read_existing_targets(
    tx: &Transaction<'_>,
    names: &[String],
) -> Result<Vec<TableMeta>> {
    let rows = tx
        .query(
            "SELECT c.oid, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname::text = ANY($1) ORDER BY 2",
            &[&names],
        )
        .await
        .context("cannot read the catalog")?;
    let mut out = Vec::new();
    for r in rows {
        out.push(read_table_meta(tx, r.get(0), r.get(1), TableRole::Target).await?);
    }
    Ok(out)
}

/// Node types a default expression may hold and still be a constant: the
/// value itself and casts of it (each function immutable, checked apart).
const CONSTANT_NODES: &[&str] = &[
    "CONST",
    "FUNCEXPR",
    "OPEXPR",
    "RELABELTYPE",
    "COERCETODOMAIN",
    "ARRAYEXPR",
];

/// One table's columns (with what Postgres does for each: NOT NULL,
/// default and whether it is a constant, identity, generated, enum labels,
/// domain, array delimiter) and its constraints and unique indexes.
pub async fn read_table_meta(
    tx: &Transaction<'_>,
    oid: u32,
    name: String,
    role: TableRole,
) -> Result<TableMeta> {
    let rows = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text, a.attidentity::text, \
                    ARRAY(SELECT DISTINCT m[1] FROM regexp_matches(d.adbin::text, '\\{([A-Z_]+)', 'g') m), \
                    coalesce((SELECT bool_and(p.provolatile = 'i') \
                              FROM regexp_matches(d.adbin::text, ':(?:funcid|opfuncid) (\\d+)', 'g') m \
                              JOIN pg_proc p ON p.oid = m[1]::oid), true), \
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e \
                          WHERE e.enumtypid = coalesce(nullif(ty.typbasetype, 0), ty.oid) \
                          ORDER BY e.enumsortorder), \
                    ty.typtype = 'd', format_type(ty.typbasetype, ty.typtypmod), ty.typnotnull, \
                    ty.typname::text, \
                    ARRAY(SELECT pg_get_constraintdef(dc.oid) FROM pg_constraint dc \
                          WHERE dc.contypid = ty.oid AND dc.contype = 'c' ORDER BY dc.conname), \
                    (SELECT el.typdelim::text FROM pg_type arr JOIN pg_type el ON el.oid = arr.typelem \
                     WHERE arr.oid = coalesce(nullif(ty.typbasetype, 0), ty.oid) AND arr.typlen = -1 \
                       AND arr.typelem <> 0), \
                    (SELECT bt.typtype = 'e' FROM pg_type bt \
                     WHERE bt.oid = coalesce(nullif(ty.typbasetype, 0), ty.oid)) \
             FROM pg_attribute a \
             JOIN pg_type ty ON ty.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let mut columns: Vec<ColumnMeta> = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let expr: Option<String> = r.get(3);
        let generated = r.get::<_, String>(4) == "s";
        let identity = match r.get::<_, String>(5).as_str() {
            "a" => Some(crate::catalog::Identity::Always),
            "d" => Some(crate::catalog::Identity::ByDefault),
            _ => None,
        };
        let nodes: Vec<String> = r.get(6);
        let immutable: bool = r.get(7);
        let labels: Vec<String> = r.get(8);
        let is_domain: bool = r.get(9);
        let is_enum: Option<bool> = r.get(15);
        let pg_type: String = r.get(1);
        let default_candidate = !generated
            && expr.is_some()
            && immutable
            && nodes.iter().all(|n| CONSTANT_NODES.contains(&n.as_str()));
        columns.push(ColumnMeta {
            name: r.get(0),
            ordinal: i as u32 + 1,
            pg_type: pg_type.clone(),
            not_null: r.get(2),
            default: if generated { None } else { expr.clone() },
            generated: if generated { expr.clone() } else { None },
            identity,
            enum_labels: is_enum.unwrap_or(false).then_some(labels),
            domain: is_domain.then(|| crate::catalog::DomainMeta {
                name: r.get(12),
                base_type: r.get(10),
                not_null: r.get(11),
                checks: r.get(13),
            }),
            array_delimiter: r.get(14),
            ..Default::default()
        });
        if default_candidate {
            candidates.push(i);
        }
    }
    let exprs: Vec<(String, String)> = candidates
        .iter()
        .map(|i| {
            let c = &columns[*i];
            (c.default.clone().unwrap_or_default(), c.pg_type.clone())
        })
        .collect();
    for (i, value) in candidates.iter().zip(evaluate_constants(tx, &exprs).await?) {
        if let Some(v) = value {
            columns[*i].default_constant = true;
            columns[*i].default_value = v;
        }
    }
    let mut constraints: Vec<ConstraintMeta> = tx
        .query(
            "SELECT con.conname::text, con.contype::text, pg_get_constraintdef(con.oid), \
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                     ORDER BY k.i), \
               (SELECT relname::text FROM pg_class WHERE oid = con.confrelid), \
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                     ORDER BY k.i), \
               con.convalidated \
             FROM pg_constraint con \
             WHERE con.conrelid = $1 AND con.contype IN ('p', 'f', 'u', 'c') \
             ORDER BY con.contype, con.conname",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| ConstraintMeta {
            ref_table: r.get(4),
            ref_columns: r.get(5),
            validated: r.get(6),
            ..ConstraintMeta::new(r.get(0), &r.get::<_, String>(1), r.get(3), r.get(2))
        })
        .collect();
    // Unique indexes that back no constraint (CREATE UNIQUE INDEX): Postgres
    // enforces them all the same.
    for r in tx
        .query(
            "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid), \
               ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                     WHERE k.n > 0 ORDER BY k.o), \
               i.indexprs IS NOT NULL, pg_get_expr(i.indpred, i.indrelid) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE i.indrelid = $1 AND i.indisunique \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                               AND con.conrelid = i.indrelid) \
             ORDER BY 1",
            &[&oid],
        )
        .await?
    {
        constraints.push(ConstraintMeta {
            expression: r.get(3),
            predicate: r.get(4),
            ..ConstraintMeta::new(r.get(0), "i", r.get(2), r.get(1))
        });
    }
    // Enabled user triggers: what they do only Postgres can tell, so the
    // rehearsal lists them for the preflight.
    for r in tx
        .query(
            "SELECT t.tgname::text, pg_get_triggerdef(t.oid) FROM pg_trigger t \
             WHERE t.tgrelid = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D' ORDER BY 1",
            &[&oid],
        )
        .await?
    {
        constraints.push(ConstraintMeta::new(r.get(0), "t", vec![], r.get(1)));
    }
    check_case_collisions(&name, &columns)?;
    Ok(TableMeta {
        name,
        role,
        columns,
        constraints,
    })
}

/// The values of constant defaults, as Postgres prints them for each
/// column's type: `Some(None)` is NULL; `None` means Postgres could not
/// evaluate it here (say, a domain CHECK it breaks), so it stays
/// Postgres's to fill and the rehearsal says so. All of a table's in one
/// round trip; a savepoint keeps a failure from ending the pull's read.
async fn evaluate_constants(
    tx: &Transaction<'_>,
    exprs: &[(String, String)],
) -> Result<Vec<Option<Option<String>>>> {
    if exprs.is_empty() {
        return Ok(vec![]);
    }
    let select = |list: &[(String, String)]| {
        format!(
            "SAVEPOINT sandbox_default; SELECT {}; RELEASE SAVEPOINT sandbox_default",
            list.iter()
                .map(|(e, t)| format!("CAST(({e}) AS {t})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let row_of = |messages: Vec<tokio_postgres::SimpleQueryMessage>, n: usize| {
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..n)
                        .map(|i| Some(row.get(i).map(str::to_string)))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .unwrap_or_else(|| vec![None; n])
    };
    match tx.simple_query(&select(exprs)).await {
        Ok(messages) => return Ok(row_of(messages, exprs.len())),
        Err(e) if e.as_db_error().is_none() => return Err(e.into()),
        Err(_) => {
            tx.batch_execute(
                "ROLLBACK TO SAVEPOINT sandbox_default; RELEASE SAVEPOINT sandbox_default",
            )
            .await?
        }
    }
    // One of them fails: find which, one at a time.
    let mut out = Vec::new();
    for one in exprs {
        match tx.simple_query(&select(std::slice::from_ref(one))).await {
            Ok(messages) => out.push(row_of(messages, 1).remove(0)),
            Err(e) if e.as_db_error().is_none() => return Err(e.into()),
            Err(_) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT sandbox_default; RELEASE SAVEPOINT sandbox_default",
                )
                .await?;
                out.push(None);
            }
        }
    }
    Ok(out)
}

/// SQLite compares names without case; Postgres does not. Two names that
/// differ only in case cannot both live in the snapshot.
fn check_case_collisions(table: &str, columns: &[ColumnMeta]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for c in columns {
        if let Some(other) = seen.insert(c.name.to_lowercase(), &c.name) {
            return Err(environment(format!(
                "table {table} has columns \"{other}\" and \"{}\", which differ only in case; a \
                 SQLite snapshot cannot hold both. Rename one at the source before pulling",
                c.name
            )));
        }
    }
    Ok(())
}

/// The SELECT whose COPY output is a table's canonical row encoding; pull
/// and the drift check use the same text.
pub fn copy_out_sql(meta: &TableMeta) -> String {
    let cols = meta
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "COPY (SELECT {cols} FROM public.{}) TO STDOUT",
        quote_ident(&meta.name)
    )
}

/// COPY data goes to the writer thread in batches of about this many bytes;
/// with at most [`LOADER_QUEUE`] batches queued, a pull's memory does not
/// grow with the tables.
const BATCH_BYTES: usize = 256 << 10;
const LOADER_QUEUE: usize = 8;

/// Streams one table: rows are counted and checksummed here as they arrive
/// and handed, as received, to the writer thread that parses and stores
/// them, so reading, hashing and writing overlap.
async fn copy_table(
    tx: &Transaction<'_>,
    loader: &mut Loader,
    meta: &TableMeta,
    estimate: u64,
    progress: &dyn PullProgress,
) -> Result<TableSummary> {
    let started = Instant::now();
    progress.table_started(&meta.name, estimate);
    loader.send(Work::Table(meta.clone()))?;
    let stream = tx
        .copy_out(copy_out_sql(meta).as_str())
        .await
        .map_err(|e| explain_query_error(&e, &format!("cannot read table {}", meta.name)))?;
    pin_mut!(stream);
    let mut checksum = TableChecksum::new();
    let mut lines = LineSplitter::default();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.with_context(|| format!("the connection failed while reading {}", meta.name))?;
        let before = checksum.rows();
        lines.split(&chunk, |line| {
            checksum.add_line(line);
            Ok::<(), std::convert::Infallible>(())
        })?;
        // Progress every 5000 rows.
        if before / 5000 != checksum.rows() / 5000 {
            progress.rows_copied(&meta.name, checksum.rows());
        }
        batch_bytes += chunk.len();
        batch.push(chunk);
        if batch_bytes >= BATCH_BYTES {
            loader.send(Work::Rows(std::mem::take(&mut batch)))?;
            batch_bytes = 0;
        }
    }
    if !lines.partial.is_empty() {
        anyhow::bail!("table {}: COPY ended in the middle of a row", meta.name);
    }
    if !batch.is_empty() {
        loader.send(Work::Rows(batch))?;
    }
    let written = loader.end_table()?;
    if written != checksum.rows() {
        anyhow::bail!(
            "table {}: read {} rows but wrote {written}",
            meta.name,
            checksum.rows()
        );
    }
    progress.rows_copied(&meta.name, checksum.rows());
    Ok(TableSummary {
        name: meta.name.clone(),
        role: meta.role,
        rows: checksum.rows(),
        checksum: checksum.hex(),
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Cuts COPY data into lines (each with its newline) across chunks: one
/// chunk is one row in practice, but the protocol does not promise it.
#[derive(Default)]
struct LineSplitter {
    /// The start of a row whose end is in a later chunk.
    partial: Vec<u8>,
}

impl LineSplitter {
    fn split<E>(
        &mut self,
        chunk: &[u8],
        mut line: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let Some(end) = find_byte(rest, b'\n') else {
                self.partial.extend_from_slice(rest);
                return Ok(());
            };
            self.partial.extend_from_slice(&rest[..=end]);
            line(&self.partial)?;
            self.partial.clear();
            rest = &rest[end + 1..];
        }
        while let Some(end) = find_byte(rest, b'\n') {
            line(&rest[..=end])?;
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// What the connection hands to the writer thread.
enum Work {
    /// Create this table; its rows follow.
    Table(TableMeta),
    /// COPY data as it arrived.
    Rows(Vec<Bytes>),
    /// The table is complete: report how many rows were written.
    End,
}

/// Parses and writes rows into the snapshot on a thread of its own, so
/// that Postgres keeps sending while SQLite writes (the connection runs on
/// a single-threaded runtime: on it, every row being written was a row not
/// being read).
struct Loader {
    work: Option<std::sync::mpsc::SyncSender<Work>>,
    written: std::sync::mpsc::Receiver<u64>,
    thread: Option<std::thread::JoinHandle<Result<SnapshotWriter>>>,
}

impl Loader {
    fn start(writer: SnapshotWriter) -> Result<Loader> {
        let (work_tx, work_rx) = std::sync::mpsc::sync_channel(LOADER_QUEUE);
        let (written_tx, written_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || load_tables(writer, work_rx, written_tx))
            .context("cannot start the snapshot writer thread")?;
        Ok(Loader {
            work: Some(work_tx),
            written: written_rx,
            thread: Some(thread),
        })
    }

    /// Blocks while the queue is full: Postgres then waits for SQLite.
    fn send(&mut self, work: Work) -> Result<()> {
        match &self.work {
            Some(tx) if tx.send(work).is_ok() => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// Waits until the current table is written; returns its row count.
    fn end_table(&mut self) -> Result<u64> {
        self.send(Work::End)?;
        self.written.recv().map_err(|_| self.stopped())
    }

    /// Why the writer thread stopped.
    fn stopped(&mut self) -> anyhow::Error {
        self.work = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            Some(Ok(Ok(_))) | None => anyhow::anyhow!("the snapshot writer stopped early"),
        }
    }

    /// Waits for every row to be written and takes the file back.
    fn finish(mut self) -> Result<SnapshotWriter> {
        self.work = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(anyhow::anyhow!("the snapshot writer stopped early")),
        }
    }
}

impl Drop for Loader {
    /// A failed pull waits for the writer to stop, so the temporary file is
    /// gone before the error is reported.
    fn drop(&mut self) {
        self.work = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An emptied vector of values, its allocation kept for the next row (whose
/// values borrow from another line).
fn recycle<'b>(
    mut values: Vec<Option<std::borrow::Cow<'_, str>>>,
) -> Vec<Option<std::borrow::Cow<'b, str>>> {
    values.clear();
    values.into_iter().map(|_| None).collect()
}

fn load_tables(
    mut writer: SnapshotWriter,
    work: std::sync::mpsc::Receiver<Work>,
    written: std::sync::mpsc::Sender<u64>,
) -> Result<SnapshotWriter> {
    while let Ok(next) = work.recv() {
        let Work::Table(meta) = next else {
            anyhow::bail!("the snapshot writer got rows before their table");
        };
        writer.begin_table(&meta)?;
        let mut rows = 0u64;
        {
            let mut inserter = writer.inserter(&meta)?;
            let mut spare = Vec::with_capacity(meta.columns.len());
            let mut lines = LineSplitter::default();
            let mut row = |line: &[u8]| -> Result<()> {
                let mut values = recycle(std::mem::take(&mut spare));
                parse_copy_fields(&line[..line.len() - 1], &mut values)
                    .map_err(|e| anyhow::anyhow!("table {}: {e}", meta.name))?;
                inserter.insert(&values)?;
                spare = recycle(values);
                rows += 1;
                Ok(())
            };
            loop {
                match work.recv() {
                    Ok(Work::Rows(chunks)) => {
                        for chunk in &chunks {
                            lines.split(chunk, &mut row)?;
                        }
                    }
                    Ok(Work::End) => break,
                    // The reading side failed; its error is the one reported.
                    Ok(Work::Table(_)) | Err(_) => {
                        anyhow::bail!("table {}: the read stopped in the middle", meta.name)
                    }
                }
            }
        }
        if written.send(rows).is_err() {
            break;
        }
    }
    Ok(writer)
}

/// Streams a table's canonical COPY lines (each with its newline) from
/// Postgres into `f`: the one reader behind drift checks and row naming.
async fn for_each_remote_line(
    tx: &Transaction<'_>,
    meta: &TableMeta,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let stream = tx
        .copy_out(copy_out_sql(meta).as_str())
        .await
        .map_err(|e| explain_query_error(&e, &format!("cannot read table {}", meta.name)))?;
    pin_mut!(stream);
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk?);
        let mut start = 0;
        while let Some(pos) = find_byte(&pending[start..], b'\n') {
            f(&pending[start..=start + pos])?;
            start += pos + 1;
        }
        pending.drain(..start);
    }
    Ok(())
}

/// Reads one table's canonical checksum straight from Postgres (drift check).
pub async fn remote_checksum(tx: &Transaction<'_>, meta: &TableMeta) -> Result<TableChecksum> {
    let mut checksum = TableChecksum::new();
    for_each_remote_line(tx, meta, |line| {
        checksum.add_line(line);
        Ok(())
    })
    .await?;
    Ok(checksum)
}

/// Short per-row fingerprints keyed by primary key: what lets a drift check
/// or a rollback name the rows that changed, not just the table.
pub type RowHashes = std::collections::HashMap<String, String>;

fn row_fingerprint(line: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(line)[..8])
}

fn key_positions(meta: &TableMeta) -> Vec<usize> {
    meta.primary_key()
        .iter()
        .filter_map(|k| meta.columns.iter().position(|c| &c.name == k))
        .collect()
}

fn key_of(values: &[Option<String>], positions: &[usize]) -> String {
    positions
        .iter()
        .map(|i| values[*i].clone().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/")
}

/// Row fingerprints of a table at Postgres.
pub async fn remote_row_hashes(tx: &Transaction<'_>, meta: &TableMeta) -> Result<RowHashes> {
    let positions = key_positions(meta);
    let mut out = RowHashes::new();
    for_each_remote_line(tx, meta, |line| {
        let values = parse_copy_line(&line[..line.len() - 1]).map_err(anyhow::Error::msg)?;
        out.insert(key_of(&values, &positions), row_fingerprint(line));
        Ok(())
    })
    .await?;
    Ok(out)
}

/// The key a row is known by in [`RowHashes`]: its primary-key values
/// joined by `/`.
pub fn row_key(meta: &TableMeta, values: &[Option<String>]) -> String {
    key_of(values, &key_positions(meta))
}

/// Row fingerprints of a table (or staged copy) in the snapshot file.
pub fn local_row_hashes(
    snapshot: &crate::db::sqlite::Snapshot,
    sqlite_table: &str,
    meta: &TableMeta,
) -> Result<RowHashes> {
    local_row_hashes_with(snapshot, sqlite_table, meta, &|_| {})
}

/// Row fingerprints of a table in the snapshot file, each row first
/// changed by `adjust` (values Postgres chose, say).
pub fn local_row_hashes_with(
    snapshot: &crate::db::sqlite::Snapshot,
    sqlite_table: &str,
    meta: &TableMeta,
    adjust: &dyn Fn(&mut Vec<Option<String>>),
) -> Result<RowHashes> {
    let positions = key_positions(meta);
    let mut out = RowHashes::new();
    snapshot.for_each_row(sqlite_table, meta, |mut values| {
        adjust(&mut values);
        let line = crate::types::copy_text_line(&values);
        out.insert(
            key_of(&values, &positions),
            row_fingerprint(line.as_bytes()),
        );
        Ok(())
    })?;
    Ok(out)
}

/// The rows that differ between two fingerprint sets, named for a person.
pub fn describe_row_changes(expected: &RowHashes, actual: &RowHashes, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut keys: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let line = match (expected.get(k), actual.get(k)) {
            (Some(a), Some(b)) if a != b => format!("row {k} changed"),
            (Some(_), None) => format!("row {k} deleted"),
            (None, Some(_)) => format!("row {k} added"),
            _ => continue,
        };
        out.push(line);
    }
    let total = out.len();
    out.truncate(limit);
    if total > limit {
        out.push(format!("… and {} more rows", total - limit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::copy_text_line;

    fn meta() -> TableMeta {
        let col = |name: &str, ordinal: u32, pg_type: &str| ColumnMeta {
            name: name.into(),
            ordinal,
            pg_type: pg_type.into(),
            ..Default::default()
        };
        TableMeta {
            name: "t".into(),
            role: TableRole::Protected,
            columns: vec![
                col("id", 1, "bigint"),
                col("body", 2, "text"),
                col("ok", 3, "boolean"),
            ],
            constraints: vec![],
        }
    }

    fn rows() -> Vec<Vec<Option<String>>> {
        (0..300)
            .map(|i| {
                vec![
                    Some(i.to_string()),
                    match i % 5 {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some(format!("line\none\ttab\\slash {i} é")),
                        _ => Some("x".repeat(i * 7)),
                    },
                    Some(if i % 2 == 0 { "t" } else { "f" }.into()),
                ]
            })
            .collect()
    }

    proptest::proptest! {
        /// Rows come out whole and in order wherever the chunks are cut.
        #[test]
        fn lines_survive_any_chunking(cuts in proptest::collection::vec(0usize..4000, 0..40)) {
            let data: Vec<u8> = rows().iter().flat_map(|r| copy_text_line(r).into_bytes()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c * data.len() / 4000).collect();
            cuts.sort();
            let mut splitter = LineSplitter::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                splitter
                    .split(&data[from..cut], |l| {
                        got.push(l.to_vec());
                        Ok::<(), std::convert::Infallible>(())
                    })
                    .unwrap();
                from = cut;
            }
            proptest::prop_assert!(splitter.partial.is_empty());
            let want: Vec<Vec<u8>> = rows().iter().map(|r| copy_text_line(r).into_bytes()).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// The writer thread stores, from chunks cut mid-row, exactly what
    /// `insert_row` stores row by row.
    #[test]
    fn the_writer_thread_stores_what_insert_row_stores() {
        let dir = tempfile::tempdir().unwrap();
        let meta = meta();
        let data: Vec<u8> = rows()
            .iter()
            .flat_map(|r| copy_text_line(r).into_bytes())
            .collect();

        let writer = SnapshotWriter::create(&dir.path().join("a.sqlite"), false, &[]).unwrap();
        let mut loader = Loader::start(writer).unwrap();
        loader.send(Work::Table(meta.clone())).unwrap();
        let chunks: Vec<Bytes> = data.chunks(977).map(Bytes::copy_from_slice).collect();
        for batch in chunks.chunks(3) {
            loader.send(Work::Rows(batch.to_vec())).unwrap();
        }
        assert_eq!(loader.end_table().unwrap(), 300);
        let threaded = loader.finish().unwrap();

        let mut by_row = SnapshotWriter::create(&dir.path().join("b.sqlite"), false, &[]).unwrap();
        by_row.begin_table(&meta).unwrap();
        for r in rows() {
            by_row.insert_row(&meta, &r).unwrap();
        }
        let dump = |w: &SnapshotWriter| -> Vec<String> {
            let mut stmt = w
                .connection()
                .prepare("SELECT typeof(id) || quote(id), typeof(body) || quote(body), typeof(ok) || quote(ok) FROM t ORDER BY rowid")
                .unwrap();
            let rows = stmt
                .query_map([], |r| {
                    Ok(format!(
                        "{}|{}|{}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?
                    ))
                })
                .unwrap();
            rows.map(|r| r.unwrap()).collect()
        };
        assert_eq!(dump(&threaded), dump(&by_row));
    }

    /// A value the column cannot store stops the pull with the same error
    /// as before, and the writer's temporary file goes away.
    #[test]
    fn a_bad_value_is_reported_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SnapshotWriter::create(&dir.path().join("a.sqlite"), false, &[]).unwrap();
        let mut loader = Loader::start(writer).unwrap();
        loader.send(Work::Table(meta())).unwrap();
        let sent = loader.send(Work::Rows(vec![Bytes::from_static(
            b"1\tx\tt\nnot-a-number\ty\tf\n",
        )]));
        let err = sent
            .and_then(|_| loader.end_table().map(|_| ()))
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("holds 'not-a-number', not an integer") && text.contains("table t"),
            "{text}"
        );
        drop(loader);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
