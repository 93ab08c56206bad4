//! `sandbox pull`: copy the plan's tables into a new snapshot file in one
//! consistent read.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{pin_mut, StreamExt};
use tokio_postgres::{IsolationLevel, Statement, Transaction};

use crate::catalog::TableMeta;
use crate::db::postgres::catalog::{
    read_catalog, read_existing_targets, read_name_conflicts, read_target_types,
};
use crate::db::postgres::copy::{copy_out_sql, LineSplitter};
use crate::db::postgres::digest::table_digests;
use crate::db::postgres::tx::{client_silence_sql, fatal_in, why_the_session_ended};
use crate::db::postgres::{
    connect_watched_on, explain_query_error, set_local_settings_sql, Target,
};
use crate::db::sqlite::{
    write_server_digests, SnapshotInfo, SnapshotWriter, TableSummary, FORMAT_VERSION,
};
// The progress a pull reports and the snapshot it returns: shared with the
// fixture snapshots of `sandbox demo`, so they live with the snapshot file.
pub use crate::db::sqlite::{NoProgress, PullProgress, PullReport};
use crate::plan::TableSet;
use crate::types::{parse_copy_fields, TableChecksum};

pub struct PullOptions {
    pub target: Target,
    pub out: PathBuf,
    pub force: bool,
    pub statement_timeout_ms: u64,
    pub tables: TableSet,
    /// Tables the plan creates: if one already exists, its catalog is
    /// recorded so the rehearsal can name it.
    pub creates: Vec<String>,
    /// The names the plan's DDL claims: the objects already holding one are
    /// recorded so the rehearsal can name them.
    pub claimed: Vec<crate::plan::names::ClaimedName>,
    /// The types target.json names: what each is on Postgres (a domain and
    /// its DEFAULT, an enum's labels) is recorded for the rehearsal.
    pub target_types: Vec<String>,
    /// Tables whose Postgres-computed digest the snapshot records for push's
    /// drift check: the plan's read and write sets (cheap tables; the big
    /// ones the plan never touches are not hashed twice).
    pub digests: std::collections::BTreeSet<String>,
}

pub async fn pull(opts: &PullOptions, progress: &dyn PullProgress) -> Result<PullReport> {
    let (mut client, end, connection) = connect_watched_on(&opts.target).await?;
    match pull_on(&mut client, &connection, opts, progress).await {
        // The driver says only "connection closed": say what the server
        // said as it ended the session, and that nothing was replaced.
        Err(e) if client.is_closed() || fatal_in(&e).is_some() => {
            let why = why_the_session_ended(&opts.target, &end, &e)
                .await
                .unwrap_or_else(|| "the server closed it or the network dropped it".to_string());
            Err(e.context(format!(
                "the connection to Postgres was lost during the pull: {why}. No snapshot was \
                 written ({} is as it was); run the pull again",
                opts.out.display()
            )))
        }
        other => other.map_err(crate::db::postgres::explain_row_security),
    }
}

async fn pull_on(
    client: &mut tokio_postgres::Client,
    connection: &tokio::runtime::Handle,
    opts: &PullOptions,
    progress: &dyn PullProgress,
) -> Result<PullReport> {
    let started = Instant::now();
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
    // Pipelined with the settings: the server's own limit (Supabase: 2
    // minutes) would cancel a big table's COPY, and an idle-in-transaction
    // limit of the database or role would end the read while it waits for
    // the snapshot writer (see `client_silence_sql`).
    tx.batch_execute(&format!(
        "{} SET LOCAL statement_timeout = '{}ms'; {}",
        set_local_settings_sql(),
        opts.statement_timeout_ms,
        client_silence_sql()
    ))
    .await?;
    let (pulled_at, server_version, locale) = {
        // The database's locale: how Postgres maps letter case (lower(),
        // upper()) and orders text, which the rehearsal then does too
        // (`db::collation`, `db::text_order`).
        let row = tx
            .query_one(
                "SELECT now()::text, current_setting('server_version'), \
                        coalesce(to_jsonb(d) ->> 'datlocprovider', 'c'), \
                        d.datcollate::text, d.datctype::text, \
                        coalesce(to_jsonb(d) ->> 'daticulocale', to_jsonb(d) ->> 'datlocale') \
                 FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .await?;
        let locale = crate::db::collation::DatabaseLocale {
            provider: row.get(2),
            lc_collate: row.get(3),
            lc_ctype: row.get(4),
            icu_locale: row.get(5),
        };
        (row.get::<_, String>(0), row.get::<_, String>(1), locale)
    };
    let metas = read_catalog(&tx, &opts.tables).await?;
    // In one round trip: both are small catalog reads.
    let (existing_targets, event_triggers, name_conflicts) = futures_util::future::try_join3(
        read_existing_targets(&tx, &opts.creates),
        crate::db::event_triggers::read_event_triggers(&tx),
        read_name_conflicts(&tx, &opts.claimed),
    )
    .await?;
    // An app table of another schema named like a created one: the
    // rehearsal's message names the path and where it is set.
    let app_path = if existing_targets.iter().any(|t| t.name.contains('.')) {
        Some(crate::db::postgres::search_path::app_path(&tx).await?)
    } else {
        None
    };
    let target_types = read_target_types(&tx, &opts.target_types).await?;
    // In the same REPEATABLE READ snapshot as the rows: the digests describe
    // exactly what is pulled.
    let digested: Vec<&TableMeta> = metas
        .iter()
        .map(|(m, _)| m)
        .filter(|m| opts.digests.contains(&m.name))
        .collect();
    // Every table's COPY is prepared in the digests' round trip instead of
    // in one of its own before each table. The statements are named, live
    // only inside this transaction and are closed before COMMIT, so a
    // transaction-mode pooler is fine.
    let tx_ref = &tx;
    let prepares = futures_util::future::try_join_all(metas.iter().map(|(m, _)| async move {
        tx_ref
            .prepare(&copy_out_sql(m))
            .await
            .map_err(|e| explain_query_error(&e, &format!("cannot read table {}", m.name)))
    }));
    let (digests, statements) =
        futures_util::future::try_join(table_digests(&tx, &digested), prepares).await?;
    let mut loader = Loader::start(writer)?;
    let mut summaries = Vec::new();
    let mut loaded = Vec::new();
    for ((meta, estimate), statement) in metas.into_iter().zip(&statements) {
        let summary = copy_table(
            &tx,
            connection,
            &mut loader,
            &meta,
            statement,
            estimate,
            progress,
        )
        .await?;
        progress.table_finished(&summary);
        summaries.push(summary.clone());
        loaded.push((meta, summary));
    }
    drop(statements);
    tx.commit()
        .await
        .context("the read transaction failed to end")?;
    // The next table was read while the writer still stored the last rows
    // of the one before (waiting for it at every table's end left Postgres
    // idle for a queue's worth of rows each time); every count is checked
    // here, before anything is recorded.
    for (meta, summary) in &loaded {
        let written = loader.written()?;
        if written != summary.rows {
            anyhow::bail!(
                "table {}: read {} rows but wrote {written}",
                meta.name,
                summary.rows
            );
        }
    }
    let mut writer = loader.finish()?;
    write_server_digests(writer.connection(), &digests)?;
    crate::db::collation::write_locale(writer.connection(), &locale)
        .context("cannot record the database's locale in the snapshot")?;
    crate::db::event_triggers::write(writer.connection(), &event_triggers)
        .context("cannot record the database's event triggers in the snapshot")?;
    crate::plan::names::write(writer.connection(), &name_conflicts)
        .context("cannot record the objects holding the plan's names in the snapshot")?;
    if let Some(p) = &app_path {
        crate::db::postgres::search_path::write_app_path(writer.connection(), p)
            .context("cannot record the app's search_path in the snapshot")?;
    }
    for (meta, summary) in loaded {
        writer.end_table(meta, summary);
    }
    for meta in existing_targets {
        writer.existing_target(meta);
    }
    for meta in target_types {
        writer.target_type(meta);
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

/// COPY data goes to the writer thread in batches of about this many bytes;
/// with at most [`LOADER_QUEUE`] batches queued, a pull's memory does not
/// grow with the tables.
const BATCH_BYTES: usize = 256 << 10;
const LOADER_QUEUE: usize = 8;

/// Streams one table: rows are counted and checksummed as they arrive
/// and handed, as received, to the writer thread that parses and stores
/// them, so reading, hashing and writing overlap. Returns once every row is
/// queued; [`Loader::written`] says later how many the writer stored.
///
/// The rows are read by a task on the thread that drives the connection
/// (`connection`): the driver hands over what each read of the socket
/// brought (about 8 KiB) through a channel of two, so a reader on another
/// thread was woken, and woke the driver, for every 8 KiB — a sixth of a
/// pull's CPU went to switching threads. On the driver's thread that
/// hand-over is a function call; this thread only draws the progress.
async fn copy_table(
    tx: &Transaction<'_>,
    connection: &tokio::runtime::Handle,
    loader: &mut Loader,
    meta: &TableMeta,
    statement: &Statement,
    estimate: u64,
    progress: &dyn PullProgress,
) -> Result<TableSummary> {
    let started = Instant::now();
    progress.table_started(&meta.name, estimate);
    loader.send(Work::Table(meta.clone())).await?;
    let stream = tx
        .copy_out(statement)
        .await
        .map_err(|e| explain_query_error(&e, &format!("cannot read table {}", meta.name)))?;
    let (counted, mut counts) = tokio::sync::watch::channel(0u64);
    let reading = AbortOnDrop(connection.spawn(read_rows(
        stream,
        loader.sender()?,
        meta.name.clone(),
        counted,
    )));
    // Until the reader is done and drops its end.
    while counts.changed().await.is_ok() {
        let rows = *counts.borrow_and_update();
        progress.rows_copied(&meta.name, rows);
    }
    let checksum = match reading.await {
        Ok(Ok(checksum)) => checksum,
        Ok(Err(e)) if e.is::<WriterStopped>() => return Err(loader.stopped()),
        Ok(Err(e)) => return Err(e),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => anyhow::bail!("table {}: the read was cancelled", meta.name),
    };
    loader.send(Work::End).await?;
    progress.rows_copied(&meta.name, checksum.rows());
    Ok(TableSummary {
        name: meta.name.clone(),
        role: meta.role,
        rows: checksum.rows(),
        checksum: checksum.hex(),
        millis: started.elapsed().as_millis() as u64,
    })
}

/// The reading half of [`copy_table`], on the connection's thread.
async fn read_rows(
    stream: tokio_postgres::CopyOutStream,
    work: tokio::sync::mpsc::Sender<Work>,
    table: String,
    counted: tokio::sync::watch::Sender<u64>,
) -> Result<TableChecksum> {
    pin_mut!(stream);
    let mut checksum = TableChecksum::new();
    let mut lines = LineSplitter::default();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading {table} stopped"))?;
        let before = checksum.rows();
        lines.split(&chunk, |line| {
            checksum.add_line(line);
            Ok::<(), std::convert::Infallible>(())
        })?;
        // Progress every 5000 rows.
        if before / 5000 != checksum.rows() / 5000 {
            counted.send_replace(checksum.rows());
        }
        batch_bytes += chunk.len();
        batch.push(chunk);
        if batch_bytes >= BATCH_BYTES {
            work.send(Work::Rows(std::mem::take(&mut batch)))
                .await
                .map_err(|_| WriterStopped)?;
            batch_bytes = 0;
        }
    }
    if !lines.partial.is_empty() {
        anyhow::bail!("table {table}: COPY ended in the middle of a row");
    }
    if !batch.is_empty() {
        work.send(Work::Rows(batch))
            .await
            .map_err(|_| WriterStopped)?;
    }
    Ok(checksum)
}

/// The reader found the writer thread gone: its own error is the one to
/// report ([`Loader::stopped`]).
#[derive(Debug)]
struct WriterStopped;

impl std::fmt::Display for WriterStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the snapshot writer stopped early")
    }
}

impl std::error::Error for WriterStopped {}

/// A spawned task that ends with the future awaiting it: a pull given up
/// (an error, Ctrl-C) leaves no reader behind on the connection's thread.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the connection hands to the writer thread.
enum Work {
    /// Create this table; its rows follow.
    Table(TableMeta),
    /// COPY data as it arrived.
    Rows(Vec<Bytes>),
    /// The table is complete: report how many rows were written (on the
    /// `written` channel, in the order the tables were sent).
    End,
}

/// Parses and writes rows into the snapshot on a thread of its own, so
/// that Postgres keeps sending while SQLite writes (the connection runs on
/// a single-threaded runtime: on it, every row being written was a row not
/// being read).
struct Loader {
    work: Option<tokio::sync::mpsc::Sender<Work>>,
    written: std::sync::mpsc::Receiver<u64>,
    thread: Option<std::thread::JoinHandle<Result<SnapshotWriter>>>,
}

impl Loader {
    fn start(writer: SnapshotWriter) -> Result<Loader> {
        let (work_tx, work_rx) = tokio::sync::mpsc::channel(LOADER_QUEUE);
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

    /// Waits while the queue is full: Postgres then waits for SQLite.
    async fn send(&mut self, work: Work) -> Result<()> {
        match &self.work {
            Some(tx) if tx.send(work).await.is_ok() => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// [`Loader::send`] outside a runtime (tests).
    #[cfg(test)]
    fn send_blocking(&mut self, work: Work) -> Result<()> {
        match &self.work {
            Some(tx) if tx.blocking_send(work).is_ok() => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// The queue's sending end, for the reader of a table's rows.
    fn sender(&mut self) -> Result<tokio::sync::mpsc::Sender<Work>> {
        match &self.work {
            Some(tx) => Ok(tx.clone()),
            None => Err(self.stopped()),
        }
    }

    /// Waits until the next table whose [`Work::End`] was sent is written;
    /// returns its row count.
    fn written(&mut self) -> Result<u64> {
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
    mut work: tokio::sync::mpsc::Receiver<Work>,
    written: std::sync::mpsc::Sender<u64>,
) -> Result<SnapshotWriter> {
    while let Some(next) = work.blocking_recv() {
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
                match work.blocking_recv() {
                    Some(Work::Rows(chunks)) => {
                        for chunk in &chunks {
                            lines.split(chunk, &mut row)?;
                        }
                    }
                    Some(Work::End) => break,
                    // The reading side failed; its error is the one reported.
                    Some(Work::Table(_)) | None => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnMeta, TableRole};
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

    use crate::db::postgres::copy::tests::rows;

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
        loader.send_blocking(Work::Table(meta.clone())).unwrap();
        let chunks: Vec<Bytes> = data.chunks(977).map(Bytes::copy_from_slice).collect();
        for batch in chunks.chunks(3) {
            loader.send_blocking(Work::Rows(batch.to_vec())).unwrap();
        }
        loader.send_blocking(Work::End).unwrap();
        assert_eq!(loader.written().unwrap(), 300);
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
        loader.send_blocking(Work::Table(meta())).unwrap();
        let sent = loader.send_blocking(Work::Rows(vec![Bytes::from_static(
            b"1\tx\tt\nnot-a-number\ty\tf\n",
        )]));
        let err = sent
            .and_then(|_| loader.send_blocking(Work::End))
            .and_then(|_| loader.written().map(|_| ()))
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
