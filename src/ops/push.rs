//! `sandbox push`: apply a rehearsed diff to Postgres in ONE transaction,
//! only if the remote still matches the snapshot, and only COMMIT if every
//! check of the rehearsal holds again on Postgres. Writes a receipt that
//! `sandbox rollback` can undo exactly.
//!
//! Everything happens inside one transaction with `SET LOCAL` and a
//! transaction-scoped advisory lock, so it also works through a
//! transaction-mode pooler (Supabase port 6543).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::{Client, Transaction};

use crate::db::ddl::{ddl_check, transaction_ddl, OwnDdl, TableAsMade};
use crate::db::effects::{
    external_effects_check, guarded_settings_check, Effects, ExternalEffect,
    GUARDED_SETTINGS_SWITCHED,
};
use crate::db::foreign::{foreign_write_check, ForeignTable, ForeignWrites};
use crate::db::postgres::apply::{
    apply_row_updates, cast_spellings, delete_rows, key_positions_of,
};
use crate::db::postgres::catalog::{inheritance_advice, inheritance_links};
use crate::db::postgres::copy::copy_rows;
use crate::db::postgres::digest::{mismatched_rows, row_key};
use crate::db::postgres::drift::drift_checks;
use crate::db::postgres::filled::read_filled;
use crate::db::postgres::receipts::{
    applied_receipt, gone_since_push, insert_receipt, receipts_access, record_identity,
    GoneSincePush, ReceiptsUse,
};
use crate::db::postgres::rowlock::push_row_locks;
use crate::db::postgres::search_path::{pin_sql, TypeSpellings, AS_THE_APP};
use crate::db::postgres::sequences::{advance_past_values, feeds, next_value, SequenceAdvance};
use crate::db::postgres::sequences::{drawn, sequence_values, SequenceDrawn};
use crate::db::postgres::sequences::{dry_run_numbers, numbered_by_one_draw, DryRunSequences};
use crate::db::postgres::state::{state_checks, target_state_checks, ReadBack, Untouched};
use crate::db::postgres::tx::{
    begin, lock_tables_and_rows, not_lockable, replaced_since, table_oids, LockMode, TablesGone,
    TablesReplaced,
};
use crate::db::postgres::{connect_watched, Target};
use crate::db::privileges::{privilege_check, Need};
use crate::db::sqlite::Snapshot;
use crate::db::triggers::{plan_triggers, rules_check, TriggerAction, TriggerReport, WrittenTable};
use crate::db::writes::{
    account, cascading_keys, qualify, storage_check, transaction_writes, TableWrites,
};
use crate::diff::{compute, Diff, TableDiff};
use crate::plan::checks::{failed_summaries, Check, CheckKind};
use crate::plan::stage::staged_meta;
use crate::plan::stage::StagedTable;
use crate::plan::{Phase, Plan};
use crate::receipt::{FilledValues, Undo};
use crate::types::quote_ident;
use crate::write_order::{self_references, split_updates};

mod needs;
mod queries;
use needs::push_needs;
use queries::{expectation_checks, final_checks};

/// Receives progress; the command layer draws it.
pub trait PushProgress {
    fn step(&self, _what: &str) {}
}

pub struct NoPushProgress;
impl PushProgress for NoPushProgress {}

pub struct PushOptions {
    pub target: Target,
    pub snapshot: PathBuf,
    pub confirm: bool,
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// Tables outside the plan a side effect may write (`--allow-writes`),
    /// on top of the plan's `allow_writes`.
    pub allow_writes: Vec<String>,
    /// Run (and, with --confirm, commit) even though a trigger that fires
    /// for the push calls something a rollback does not undo (dblink,
    /// pgsql-http, lo_export, an untrusted language …).
    pub allow_external_effects: bool,
    /// Today's rule for users who freeze the app: every pulled table must
    /// be unchanged (drift-checked, locked, verification queries run as
    /// written), not only the tables the plan reads and writes.
    pub strict: bool,
    /// Commit even though the rehearsal of this push's rollback, run in its
    /// transaction before COMMIT, was refused: the receipt is written, but
    /// `sandbox rollback` will refuse it for the reason the push reports.
    pub allow_irreversible: bool,
}

/// The push's rollback, rehearsed in its transaction before COMMIT (under a
/// savepoint it then rolls back to): what `sandbox rollback` would check and
/// do, run on the pushed state.
#[derive(Debug, Clone, Serialize)]
pub struct UndoRehearsal {
    /// The rollback's checks, as it would run them now.
    pub checks: Vec<Check>,
    /// Why the rollback would be refused, when it would be: the push went on
    /// only because --allow-irreversible was given.
    pub refused: Option<String>,
    /// Why the undo was checked but not run (calls outside the
    /// transaction that what fires for it would make, each named); empty
    /// when it was rehearsed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_rehearsed: Vec<String>,
    /// What `sandbox rollback` will refuse unless given its own
    /// --allow-writes (the undo's side effects delete or update rows where
    /// the push was allowed to write, which the rollback inherits for
    /// inserts only), each naming the flag; the rehearsal ran as with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs_consent: Vec<String>,
    /// The tables of those `--allow-writes` (`schema.table`), for the
    /// rollback command the push advises.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consent_tables: Vec<String>,
    pub millis: u64,
}

impl PushOptions {
    /// The flags a command advised after this push must repeat.
    pub fn run_flags(&self) -> crate::advice::RunFlags {
        crate::advice::RunFlags {
            allow_writes: self.allow_writes.clone(),
            allow_external_effects: self.allow_external_effects,
            strict: self.strict,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    pub table: String,
    pub before: u64,
    pub after: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Rows the push deleted: after = before + inserted - deleted.
    pub deleted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// Dry run: a confirmed push would go ahead.
    WouldApply,
    /// Committed.
    Applied,
    /// A receipt for this diff exists, not rolled back: nothing is written
    /// (what the app changed since in what the push wrote is in
    /// `changed_since_push`).
    AlreadyApplied,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub outcome: PushOutcome,
    pub receipt_id: Option<String>,
    pub diff_hash: String,
    pub database: String,
    pub tables: Vec<TableCount>,
    pub checks: Vec<Check>,
    /// `table.trigger` held off during the updates.
    pub disabled_triggers: Vec<String>,
    /// Every trigger on every table the push writes, and what it did.
    pub triggers: Vec<TriggerReport>,
    /// Writes to tables outside the plan that were allowed.
    pub side_effects: Vec<TableWrites>,
    /// Sequences behind columns the push wrote explicit values into: moved
    /// past them (or already past them).
    pub sequences: Vec<SequenceAdvance>,
    /// The database's foreign tables: their writes go to another server
    /// and are outside what Postgres's statistics (the write accounting)
    /// count.
    pub foreign_tables: Vec<ForeignTable>,
    /// Triggers and rules that name a foreign table the user allowed.
    pub foreign_writes_allowed: Vec<String>,
    /// Sequences that handed out values during a preflight (never rolled
    /// back): identity and serial columns Postgres filled, a trigger's
    /// `nextval`, or the app at the same time.
    pub sequences_drawn: Vec<SequenceDrawn>,
    /// Calls, in the functions that fire for the push, whose effect a
    /// rollback does not undo (allowed with --allow-external-effects) or
    /// that happen only at COMMIT.
    pub external_effects: Vec<ExternalEffect>,
    /// Set when the push committed but the snapshot file could not record
    /// the receipt (locked, read-only or full): the push is applied all the
    /// same. SQLite's error and its cause.
    pub local_record_error: Option<String>,
    /// What to do about it before recording the receipt again (let go of a
    /// locked file, make a read-only one writable, free a full disk).
    pub local_record_fix: Option<String>,
    /// The rollback of this push, rehearsed before COMMIT.
    pub undo_rehearsal: Option<UndoRehearsal>,
    /// Columns the plan does not set that a BEFORE row trigger set in rows
    /// the push wrote (`table.column: …`, naming the triggers and rows):
    /// filled by Postgres like a default, their values in the receipt.
    pub trigger_set: Vec<String>,
    /// Every rule on the tables the push writes (`rule NAME ON EVENT TO
    /// table (DO ALSO)`); one that would bypass or replace its writes
    /// refuses the push.
    pub rules: Vec<String>,
    /// For an already applied diff: what the app changed since the push in
    /// what the push wrote, one line a row as rollback names it (table,
    /// key, column, pushed and current value), and the pushed rows it
    /// deleted. Drift to know of, not a refusal: nothing is written.
    pub changed_since_push: Vec<String>,
    /// For an already applied diff: how many of the rows the push wrote
    /// are still there, and changed since.
    pub pushed_rows_now: Option<crate::db::postgres::rollback::PushedRowsNow>,
    pub millis: u64,
}

/// A refusal keeps its checks typed up to the output layer (`--json`
/// prints them as data).
fn refuse(reason: impl Into<String>, checks: Vec<Check>) -> anyhow::Error {
    crate::error::refused(reason, checks)
}

/// The tables a push must hold still, and how: the write set against every
/// other writer (self-exclusive), the rest of the read set against writers
/// only (readers go on). With `strict`, every other pulled table too.
/// Tables outside both sets are not locked at all: the app keeps writing
/// them.
pub fn push_locks(snapshot: &Snapshot, plan: &Plan, strict: bool) -> Vec<(String, LockMode)> {
    let writes = plan.write_set();
    let reads = plan.read_set();
    snapshot
        .tables
        .iter()
        .map(|t| &t.meta.name)
        .filter_map(|name| {
            if writes.contains(name) {
                Some((name.clone(), LockMode::ShareRowExclusive))
            } else if reads.contains(name) || strict {
                Some((name.clone(), LockMode::Share))
            } else {
                None
            }
        })
        .collect()
}

/// A table and the mode it is locked in.
type TableLock = (String, LockMode);

/// The strong locks the push and its rehearsed undo take, asked for in the
/// push's one ordered lock step with the write set's (see `push_on`):
/// ACCESS EXCLUSIVE on every table in `public` a foreign key the plan adds
/// references (what the rehearsed undo's DROP COLUMN or DROP TABLE of the
/// referencing table takes), then on every pulled table the plan adds a
/// column to, and SHARE ROW EXCLUSIVE on a referenced table elsewhere (what
/// the key's own DDL takes; a key to `auth.users` is dropped without a lock
/// of its own). `tx` takes ACCESS EXCLUSIVE locks in this order.
///
/// Asked for one by one, a later lock that another session held (an idle
/// transaction that read `workflows`) kept the push waiting for the whole
/// --lock-timeout while it held the earlier ones, and an app transaction
/// that had read the altered table and then wrote one the push held waited
/// for the push while the push waited for it. The referenced tables were
/// then only proven free here and taken at the rehearsal, so that readers
/// of `workflows` did not wait from the lock step to COMMIT; but an app
/// transaction that read `workflows` after the lock step and then wrote
/// `jtbd_library` (held by the push) held what the rehearsal needed while
/// waiting for the push: every push beside such an app was refused (V11,
/// 6 of 6), and no second try can help — the app's write, let through by
/// the refusal, is drift for the next one. Held from the lock step, no
/// such transaction can begin while the push holds the others.
///
/// The referenced tables come first. Each lock attempt takes the tables
/// another session holds before the others (see `tx::lock_tables_sql`);
/// this order only decides among several held at once: an app transaction
/// reads the referenced tables before it writes the others, so it is
/// waited out before anything it will write is held.
/// `unlockable` (see `tx::not_lockable`) are left to the DDL.
fn locks_from_the_first_exclusive(plan: &Plan, unlockable: &[String]) -> Vec<TableLock> {
    let referenced: Vec<String> = referenced_tables(plan)
        .into_iter()
        .filter(|t| !unlockable.contains(t))
        .collect();
    let (public, elsewhere): (Vec<String>, Vec<String>) =
        referenced.into_iter().partition(|t| !t.contains('.'));
    public
        .into_iter()
        .map(|t| (t, LockMode::AccessExclusive))
        .chain(
            plan.schema
                .added_columns
                .iter()
                .filter(|a| !plan.creates(&a.table))
                .map(|a| (a.table.clone(), LockMode::AccessExclusive)),
        )
        .chain(
            elsewhere
                .into_iter()
                .map(|t| (t, LockMode::ShareRowExclusive)),
        )
        .collect()
}

/// The tables the plan's foreign keys reference, outside what it creates
/// (a key to its own table aside).
fn referenced_tables(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .schema
        .added_columns
        .iter()
        .filter_map(|a| a.references.as_ref().map(|r| (&a.table, &r.table)))
        .chain(plan.schema.tables.iter().flat_map(|t| {
            t.foreign_keys
                .iter()
                .map(move |fk| (&t.name, &fk.ref_table))
        }))
        .filter(|(from, to)| from != to && !plan.creates(to))
        .map(|(_, to)| to.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Pulled tables the plan neither reads nor writes (none with `strict`):
/// the app's, left unlocked and not drift-checked.
pub fn app_tables(snapshot: &Snapshot, plan: &Plan, strict: bool) -> Vec<String> {
    if strict {
        return vec![];
    }
    let writes = plan.write_set();
    let reads = plan.read_set();
    snapshot
        .tables
        .iter()
        .map(|t| t.meta.name.clone())
        .filter(|n| !writes.contains(n) && !reads.contains(n))
        .collect()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The state the push must leave: each staged table's checksum, with what
/// Postgres chose put into the rows that left columns to it.
pub fn expected_after(
    snapshot: &Snapshot,
    plan: &Plan,
    staged: &[StagedTable],
    filled: &[FilledValues],
) -> Result<Vec<StagedTable>> {
    let mut out = Vec::with_capacity(staged.len());
    for t in staged {
        let Some(f) = filled.iter().find(|f| f.table == t.name) else {
            out.push(t.clone());
            continue;
        };
        let meta = staged_meta(&snapshot.conn, snapshot, plan, &t.name)?;
        let mut sum = crate::types::TableChecksum::new();
        snapshot.for_each_row(&crate::plan::stage::staged(&t.name), &meta, |mut row| {
            f.apply(&meta, &mut row)?;
            sum.add_row(&row);
            Ok(())
        })?;
        out.push(StagedTable {
            name: t.name.clone(),
            rows: sum.rows(),
            checksum: sum.hex(),
        });
    }
    Ok(out)
}

/// The columns of [`FilledValues::by_trigger`] whose value Postgres left
/// other than the rehearsal staged it, in how many of the rows the push
/// wrote, and the BEFORE row triggers that fire there: what the report
/// lists as set by a trigger.
fn trigger_set_columns(
    snapshot: &Snapshot,
    plan: &Plan,
    filled: &[FilledValues],
    triggers: &[TriggerReport],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in filled.iter().filter(|f| !f.by_trigger.is_empty()) {
        let changed = trigger_changed(snapshot, plan, f)?;
        let firing: Vec<String> = triggers
            .iter()
            .filter(|t| t.rewrites_rows_of(&f.table))
            .map(|t| format!("{} (function {})", t.name, t.function))
            .collect();
        for (column, rows) in changed {
            let rows = crate::words::rows(rows);
            out.push(format!(
                "{}.{column}: set by BEFORE trigger {} in {rows} the push wrote (the plan does \
                 not set it; Postgres's values are in the receipt, and a rollback lets the trigger \
                 set it again)",
                f.table,
                firing.join(", ")
            ));
        }
    }
    Ok(out)
}

/// The columns of `f.by_trigger` whose value Postgres left other than the
/// rehearsal staged it, with how many rows.
fn trigger_changed(
    snapshot: &Snapshot,
    plan: &Plan,
    f: &FilledValues,
) -> Result<BTreeMap<String, u64>> {
    let meta = staged_meta(&snapshot.conn, snapshot, plan, &f.table)?;
    let mut changed: BTreeMap<String, u64> = BTreeMap::new();
    snapshot.for_each_row(&crate::plan::stage::staged(&f.table), &meta, |row| {
        let mut now = row.clone();
        f.apply(&meta, &mut now)?;
        for (c, (a, b)) in meta.columns.iter().zip(row.iter().zip(&now)) {
            if a != b && f.by_trigger.contains(&c.name) {
                *changed.entry(c.name.clone()).or_default() += 1;
            }
        }
        Ok(())
    })?;
    Ok(changed)
}

/// Records, for the pulled rows the push updates, what the columns BEFORE
/// triggers set held at the pull ([`FilledValues::by_trigger_before`]):
/// the rollback checks the trigger gives them back. Only where a trigger
/// did set one: a BEFORE trigger that changed nothing (one writing a
/// history row) has nothing to give back.
fn trigger_set_before(
    snapshot: &Snapshot,
    plan: &Plan,
    diff: &Diff,
    filled: &mut [FilledValues],
) -> Result<()> {
    for f in filled.iter_mut().filter(|f| !f.by_trigger.is_empty()) {
        if trigger_changed(snapshot, plan, f)?.is_empty() {
            continue;
        }
        let Some(t) = diff
            .tables
            .iter()
            .find(|t| t.table == f.table && !t.updates.is_empty())
        else {
            continue;
        };
        let Some(pulled) = snapshot.tables.iter().find(|p| p.meta.name == f.table) else {
            continue;
        };
        let meta = &pulled.meta;
        let updated: std::collections::BTreeSet<String> = t
            .updates
            .iter()
            .map(|u| crate::types::row_key(u.key.iter().map(|k| Some(k.as_str()))))
            .collect();
        let at: Vec<Option<usize>> = f
            .by_trigger
            .iter()
            .map(|c| meta.columns.iter().position(|m| &m.name == c))
            .collect();
        let mut before = BTreeMap::new();
        snapshot.for_each_row(&f.table, meta, |row| {
            let key = row_key(meta, &row)?;
            if updated.contains(&key) {
                before.insert(
                    key,
                    at.iter().map(|i| i.and_then(|i| row[i].clone())).collect(),
                );
            }
            Ok(())
        })?;
        f.by_trigger_before = before;
    }
    Ok(())
}

pub async fn push(
    opts: &PushOptions,
    plan: &Plan,
    progress: &dyn PushProgress,
) -> Result<PushReport> {
    let started = Instant::now();
    progress.step("checking the rehearsal and connecting");
    // The rehearsal is checked and the diff computed (50 ms at 100x, all
    // local) on a thread of its own while the connection is set up (a few
    // round trips: TCP, TLS, authentication), instead of one after the
    // other. Its error, if any, is the one reported, as when it ran first.
    let (snapshot_path, plan_copy) = (opts.snapshot.clone(), plan.clone());
    let preparing = std::thread::Builder::new()
        .name("push-diff".into())
        .spawn(move || -> Result<(Snapshot, Diff)> {
            let snapshot = Snapshot::open(&snapshot_path)?;
            let diff = compute(&snapshot, &plan_copy)?;
            Ok((snapshot, diff))
        })
        .context("cannot start the thread that checks the rehearsal")?;
    let connected = connect_watched(&opts.target).await;
    let (snapshot, diff) = match preparing.join() {
        Ok(prepared) => prepared?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let (mut client, end) = connected?;
    let job = PushJob {
        opts,
        plan,
        progress,
        snapshot: &snapshot,
        diff: &diff,
        started,
    };
    // Sequences are never rolled back: what a preflight (or a refused
    // push) drew stays drawn, so it is measured and said, not hidden behind
    // "nothing was written".
    let sequences_at_start = sequence_values(&client).await?;
    let mut result = push_on(&mut client, &job).await;
    // Row-level security met inside an app's SECURITY DEFINER function is
    // its owner's, not this role's: said from the catalog (the transaction
    // is over), before the sequences' note joins the error.
    result = match result {
        Err(e) if !client.is_closed() => Err(crate::db::postgres::definer::explain_in_function(
            &client,
            e,
            "the push",
            if opts.confirm {
                "nothing was written"
            } else {
                "preflight: nothing was written"
            },
        )
        .await),
        other => other,
    };
    let rolled_back = match &result {
        Ok(r) => r.outcome == PushOutcome::WouldApply,
        Err(_) => !client.is_closed(),
    };
    if rolled_back {
        let now = sequence_values(&client).await;
        result = match (result, now) {
            (Ok(mut report), Ok(now)) => {
                report.sequences_drawn = drawn(&sequences_at_start, &now);
                Ok(report)
            }
            (Ok(_), Err(e)) => Err(e),
            (Err(e), Ok(now)) => {
                let used = drawn(&sequences_at_start, &now);
                if used.is_empty() {
                    Err(e)
                } else {
                    Err(crate::error::with_note(
                        e,
                        &format!(
                            "Sequences are never rolled back: while this run's transaction was \
                             open, these advanced: {} (values handed out by this run, or by the \
                             app at the same time)",
                            used.iter()
                                .map(|s| s.describe())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ))
                }
            }
            // The refusal is what the user must see; a failed re-read of
            // the sequences would only hide it.
            (Err(e), Err(_)) => Err(e),
        };
    }
    match result {
        // A lost connection before COMMIT means Postgres rolled back; say
        // so, instead of a bare "connection closed".
        Err(e)
            if (client.is_closed() || crate::db::postgres::tx::fatal_in(&e).is_some())
                && !crate::db::postgres::tx::commit_unknown(&e) =>
        {
            let why = crate::db::postgres::tx::why_the_session_ended(&opts.target, &end, &e)
                .await
                .unwrap_or_else(|| {
                    format!(
                        "it ends a push's transaction, and frees its locks, once this client \
                         has been silent for {} ms: a suspended process, a dropped network",
                        crate::db::postgres::tx::CLIENT_SILENCE_MS
                    )
                });
            Err(e.context(format!(
                "the connection to Postgres was lost before COMMIT: Postgres rolled the \
                 transaction back and nothing was written ({why}). Run `{}` again",
                crate::advice::push_confirm(&opts.snapshot, plan, &opts.run_flags())
            )))
        }
        other => other.map_err(crate::db::postgres::explain_row_security),
    }
}

/// How often [`as_left_as_now`] reads the rows again after what is gone
/// changed under them.
const AS_LEFT_READS: usize = 3;

/// [`pushed_writes_as_left`](crate::db::postgres::rollback::pushed_writes_as_left)
/// for an applied push. `gone` was read with the receipt, a round trip
/// before the rows, and nothing is locked (the push writes nothing): an
/// app renaming or dropping a table or column of the push in between (or
/// while the read waits for a lock the app holds) makes the read fail on
/// a name that is gone — Postgres's raw `relation "public.tasks" does not
/// exist`, exit 2. So the rows are read under a savepoint; when the read
/// fails and what is gone is no longer what it was, the rows are read
/// again with what is gone now, named as drift like the rest. Any other
/// failure is returned as it is.
async fn as_left_as_now(
    tx: &Transaction<'_>,
    opts: &crate::db::postgres::rollback::RollbackOptions,
    id: &str,
    undo: &Undo,
    gone: &GoneSincePush,
) -> Result<crate::db::postgres::rollback::AsLeft> {
    let mut gone = gone.clone();
    let mut reads = 0;
    loop {
        reads += 1;
        tx.batch_execute("SAVEPOINT sandbox_as_left").await?;
        let failed =
            match crate::db::postgres::rollback::pushed_writes_as_left(tx, opts, undo, &gone).await
            {
                Ok(found) => return Ok(found),
                Err(e) => e,
            };
        if reads >= AS_LEFT_READS
            || tx
                .batch_execute("ROLLBACK TO SAVEPOINT sandbox_as_left")
                .await
                .is_err()
        {
            return Err(failed);
        }
        match gone_since_push(tx, id).await {
            Ok(now) if now != gone => gone = now,
            _ => return Err(failed),
        }
    }
}

/// What a push works from: its options, the plan, the snapshot and the diff
/// computed from them.
struct PushJob<'a> {
    opts: &'a PushOptions,
    plan: &'a Plan,
    progress: &'a dyn PushProgress,
    snapshot: &'a Snapshot,
    diff: &'a Diff,
    started: Instant,
}

impl PushJob<'_> {
    /// Tables outside the plan a side effect may write: the plan's
    /// `allow_writes` and `--allow-writes`.
    fn allowed_writes(&self) -> Vec<String> {
        self.plan
            .file
            .allow_writes
            .iter()
            .chain(self.opts.allow_writes.iter())
            .cloned()
            .collect()
    }

    /// A report of this push with nothing written, held off or recorded.
    fn report(
        &self,
        outcome: PushOutcome,
        receipt_id: Option<String>,
        checks: Vec<Check>,
    ) -> PushReport {
        PushReport {
            outcome,
            receipt_id,
            diff_hash: self.diff.hash.clone(),
            database: self.opts.target.redacted().to_string(),
            tables: vec![],
            checks,
            disabled_triggers: vec![],
            triggers: vec![],
            side_effects: vec![],
            sequences: vec![],
            foreign_tables: vec![],
            foreign_writes_allowed: vec![],
            external_effects: vec![],
            sequences_drawn: vec![],
            local_record_error: None,
            local_record_fix: None,
            undo_rehearsal: None,
            trigger_set: vec![],
            rules: vec![],
            changed_since_push: vec![],
            pushed_rows_now: None,
            millis: self.started.elapsed().as_millis() as u64,
        }
    }
}

/// Which tables a pass over the phases writes: all of them, all but the
/// exclusive step's, or only the exclusive step's.
#[derive(Clone, Copy)]
enum Part<'a> {
    All,
    Except(&'a [String]),
    Only(&'a [String]),
}

impl Part<'_> {
    fn has(&self, table: &str) -> bool {
        match self {
            Part::All => true,
            Part::Except(x) => !x.iter().any(|t| t == table),
            Part::Only(x) => x.iter().any(|t| t == table),
        }
    }
}

/// The pulled tables the plan adds columns to, written in one step after
/// every phase's other work (see `Push::exclusive_step`).
struct ExclusiveStep {
    tables: Vec<String>,
    /// The added columns' names, lowercase.
    added: Vec<String>,
}

impl ExclusiveStep {
    /// Whether an expectation waits for the step: it names an added column
    /// (before the step Postgres could not plan it). Any other expectation
    /// sees the same values before and after the step, which only fills
    /// columns that do not exist before it.
    fn defers(&self, _phase: &Phase, e: &crate::plan::Expectation) -> bool {
        let sql = e.sql.to_lowercase();
        self.added.iter().any(|c| sql.contains(c.as_str()))
    }
}

/// The push transaction and what its steps share.
struct Push<'a, 't> {
    job: &'a PushJob<'a>,
    tx: Transaction<'t>,
    /// How a refusal ends: what it left unwritten.
    nothing_written: &'static str,
    /// In a dry run: the sequences it must not draw from, and where its
    /// own rows would have left them (see `sequences`).
    dry: Option<std::cell::RefCell<DryRunSequences>>,
    /// Tables the plan's foreign keys reference that this role may not
    /// `LOCK` against writers (see `tx::not_lockable`): their keys' DDL
    /// takes their locks itself.
    unlockable: std::cell::RefCell<Vec<String>>,
    /// Whether `sandbox.receipts` exists (read under the advisory lock, so
    /// no other push creates it meanwhile): the receipt's insert creates it
    /// first when not.
    receipts_exist: bool,
}

/// The receipt of this push, as written in its transaction.
struct Receipt {
    id: String,
    tables: Vec<TableCount>,
    /// `table.trigger` held off during the updates.
    held_off: Vec<String>,
    /// Tables outside the plan a side effect may write.
    allowed: Vec<String>,
    undo: Undo,
    /// What reading the written tables back found in this transaction,
    /// proven equal to the undo's after-images: the rehearsal of the
    /// rollback judges "unchanged since the push" from it, not from a
    /// second read of the same tables.
    read_back: ReadBack,
}

async fn push_on(client: &mut Client, job: &PushJob<'_>) -> Result<PushReport> {
    let tx = begin(
        client,
        job.opts.statement_timeout_ms,
        job.opts.lock_timeout_ms,
    )
    .await?;
    let mut p = Push {
        job,
        tx,
        nothing_written: if job.opts.confirm {
            "nothing was written"
        } else {
            "preflight: nothing was written"
        },
        dry: (!job.opts.confirm).then(Default::default),
        unlockable: Default::default(),
        receipts_exist: false,
    };
    // The receipts first of all: a role that cannot read or write them is
    // told which grants it lacks before anything is read or locked.
    let (receipts_exist, unknown) = futures_util::join!(
        receipts_access(&p.tx, ReceiptsUse::Push),
        crate::db::writes::unknown_tables(&p.tx, &job.opts.allow_writes)
    );
    let receipts_exist = receipts_exist?;
    p.receipts_exist = receipts_exist;
    let unknown = unknown?;
    if !unknown.is_empty() {
        return Err(crate::error::environment(format!(
            "{}; {}",
            unknown.join("; "),
            p.nothing_written
        )));
    }
    if let Some((id, undo, gone)) = applied_receipt(&p.tx, &job.diff.hash).await? {
        return p.already_applied(id, &undo, &gone).await;
    }
    // Privileges first: a missing grant is named before any lock is taken.
    p.step("checking the role's privileges");
    let locks = push_locks(job.snapshot, job.plan, job.opts.strict);
    // With them, in the same round trip: the oid of every table the lock
    // step may lock, to prove after it that the tables locked are the ones
    // read (see `replaced_at_the_lock_step`).
    let may_lock: Vec<String> = locks
        .iter()
        .chain(&locks_from_the_first_exclusive(job.plan, &[]))
        .map(|(t, _)| t.clone())
        .collect();
    let (privileges, read_before_lock) = futures_util::join!(
        p.privileges(&locks, receipts_exist),
        table_oids(&p.tx, &may_lock)
    );
    let mut checks = vec![privileges?];
    let read_before_lock = read_before_lock?;
    job.progress
        .step("locking the tables the plan reads and writes against writers");
    // The rows it updates or deletes with them: a session holding one
    // (SELECT … FOR UPDATE, an uncommitted write) is waited for in the same
    // attempts and named, not met by the UPDATE with a bare lock timeout.
    let constraints = |table: &str| {
        Ok(staged_meta(&job.snapshot.conn, job.snapshot, job.plan, table)?.constraints)
    };
    let row_locks = push_row_locks(job.diff, &constraints, &|t| job.plan.creates(t))?;
    // With them, in the same ordered step, every strong lock the push and
    // its rehearsed undo take later (see `locks_from_the_first_exclusive`):
    // a failed attempt then lets go of everything, as nothing is written
    // yet, and no later step waits while holding the write set. Asked for
    // at the ADD COLUMN instead, an app transaction that had read the
    // altered table and then waited to write a table the push held
    // (`workflows`) made a cycle that only a refusal could end: the push
    // was refused 5 times in 6 beside such an app.
    let mut all = locks_from_the_first_exclusive(job.plan, &p.unlockable.borrow());
    all.extend(locks.iter().cloned());
    lock_tables_and_rows(&p.tx, &all, &row_locks, job.opts.lock_timeout_ms)
        .await
        .map_err(|e| p.gone_at_the_lock_step(e))?;
    // Whether the tables locked are the ones read before the lock step
    // travels with the first read under the locks (no round trip of its
    // own).
    let locked: Vec<(String, Option<u32>)> = read_before_lock
        .into_iter()
        .filter(|(t, _)| all.iter().any(|(l, _)| l == t))
        .collect();
    let (drift, replaced) = futures_util::join!(p.drift(), replaced_since(&p.tx, &locked));
    checks.extend(p.no_drift(drift?, replaced?)?);
    checks.extend(p.nothing_in_the_way().await?);
    let (triggers, trigger_check) = p.triggers().await?;
    checks.push(trigger_check);
    let (rules, rule_check) = p.rules().await?;
    checks.push(rule_check);
    let effects = p.effects().await?;
    checks.push(p.external_effects(&effects)?);
    checks.push(p.refuse_unless_ok(
        guarded_settings_check("preflight", &effects),
        GUARDED_SETTINGS_SWITCHED,
    )?);
    let foreign = p.foreign_writes(&effects).await?;
    checks.push(foreign.check.clone());
    let applied = p.apply(&triggers, &effects).await?;
    checks.extend(applied.checks);
    let mut receipt = p
        .write_receipt(
            &triggers,
            &applied.expected,
            applied.filled,
            applied.sequences,
            applied.read_back,
        )
        .await?;
    let side_effects = p
        .account_writes(&mut receipt, &mut checks, &effects, &triggers)
        .await?;
    let done = Done {
        triggers,
        side_effects,
        foreign,
        effects,
        trigger_set: applied.trigger_set,
        rules,
    };
    p.finish(receipt, checks, done).await
}

/// What the push found around its writes, for its report.
struct Done {
    triggers: Vec<TriggerReport>,
    side_effects: Vec<TableWrites>,
    foreign: ForeignWrites,
    effects: Effects,
    trigger_set: Vec<String>,
    rules: Vec<String>,
}

impl Push<'_, '_> {
    /// Client-side work inside the open transaction, with a keepalive on
    /// its connection meanwhile (see `tx::computing`): the server never
    /// waits for this client long enough to end the transaction.
    fn compute<T>(&self, work: impl FnOnce() -> T) -> T {
        crate::db::postgres::tx::computing(&self.tx, work)
    }

    /// The progress report of a step inside the transaction: the caller's
    /// own code on this thread, kept alive like the push's own work.
    fn step(&self, what: &str) {
        self.compute(|| self.job.progress.step(what))
    }

    /// A receipt for this diff exists (it committed with the push, and was
    /// not rolled back): the push is done, whatever the app did since. What
    /// the push wrote is compared with how it left it — the rows it
    /// inserted, the columns it updated, as rollback compares them — and
    /// what the app changed since is reported as drift, not refused: the
    /// receipt is the record of what the push did, and the catch-up push
    /// after a push whose receipt the snapshot file could not record (the
    /// way the warning advises) must be able to record it. Refusing it
    /// (before R7) left the file without a receipt Postgres holds, for as
    /// long as the app's edit stood. Rollback still judges those rows.
    ///
    /// A table or column the push wrote that the app dropped or renamed
    /// since (`gone`, read with the receipt) is drift like the rest: named,
    /// not read.
    async fn already_applied(
        self,
        id: String,
        undo: &Undo,
        gone: &GoneSincePush,
    ) -> Result<PushReport> {
        let Push { job, tx, .. } = self;
        job.progress
            .step("a receipt for this diff exists: checking what the push wrote");
        let opts = rollback_options(job, &id);
        let as_left = as_left_as_now(&tx, &opts, &id, undo, gone).await?;
        tx.rollback().await?;
        // The snapshot file may have missed the receipt (it was
        // read-only when the push committed): record it now.
        let unrecorded = record_receipt(
            job.snapshot,
            &id,
            job.diff,
            job.opts.target.redacted(),
            "applied",
        )
        .err();
        let mut report = job.report(PushOutcome::AlreadyApplied, Some(id), as_left.checks);
        (report.local_record_error, report.local_record_fix) = unrecorded_receipt(unrecorded);
        report.changed_since_push = as_left.changed;
        report.pushed_rows_now = Some(as_left.rows);
        Ok(report)
    }

    /// What the push needs granted; creating the receipts table too when
    /// it does not exist yet (its other grants were asked first).
    async fn privileges(
        &self,
        locks: &[(String, LockMode)],
        receipts_exist: bool,
    ) -> Result<Check> {
        let locked: Vec<String> = locks.iter().map(|(t, _)| t.clone()).collect();
        let mut needs = push_needs(self.job.plan, self.job.diff, &locked);
        if !receipts_exist {
            needs.push(Need::CreateIn {
                schema: "sandbox".into(),
                why: "create sandbox.receipts, where the push records its receipt".into(),
            });
        }
        needs.extend(self.sequence_needs().await?);
        let privileges = privilege_check(&self.tx, "privileges", &needs).await?;
        *self.unlockable.borrow_mut() =
            not_lockable(&self.tx, &referenced_tables(self.job.plan)).await?;
        self.refuse_unless_ok(
            privileges,
            "the role the push runs as lacks privileges it needs",
        )
    }

    /// A table the lock step asked for that no longer has its name
    /// ([`TablesGone`]: renamed or dropped since the pull, often while the
    /// push waited for it) is drift of the remote: refused naming it, with
    /// a fresh pull as the way on, and a "still exists" check per table as
    /// the drift check has. Any other error is returned as it is.
    fn gone_at_the_lock_step(&self, e: anyhow::Error) -> anyhow::Error {
        let Some(gone) = e.downcast_ref::<TablesGone>() else {
            return e;
        };
        let checks = gone
            .tables
            .iter()
            .map(|t| {
                Check::equal(
                    "drift",
                    &format!("{t} still exists"),
                    CheckKind::Integrity,
                    "present".into(),
                    "missing".into(),
                )
            })
            .collect();
        let PushJob { plan, snapshot, .. } = self.job;
        refuse(
            format!(
                "the remote is not in the state the snapshot was pulled from: {}; {}. Take a \
                 fresh snapshot and rehearse it: `{}`, then `{}`",
                gone.described("the pull"),
                self.nothing_written,
                crate::advice::pull(&snapshot.path, plan),
                crate::advice::rehearse(&snapshot.path, plan)
            ),
            checks,
        )
    }

    /// `check` when it holds; else the push is refused with it: `why`, the
    /// rows the check names, and that nothing was written.
    fn refuse_unless_ok(&self, check: Check, why: &str) -> Result<Check> {
        if check.ok {
            return Ok(check);
        }
        Err(refuse(
            format!(
                "{why} ({}); {}",
                check.rows.join("; "),
                self.nothing_written
            ),
            vec![check],
        ))
    }

    /// Moving a sequence (ALTER SEQUENCE) needs its ownership: one need per
    /// sequence behind a column the diff writes explicit values into.
    async fn sequence_needs(&self) -> Result<Vec<Need>> {
        let mut needs = Vec::new();
        for t in &self.job.diff.tables {
            let mut columns: Vec<String> = self
                .job
                .diff
                .phases
                .iter()
                .flat_map(|p| t.sequence_columns_written(p))
                .collect();
            columns.sort();
            columns.dedup();
            for column in columns {
                for feed in feeds(&self.tx, &t.table, &column).await? {
                    needs.push(Need::Owner {
                        table: format!(
                            "{}.{}",
                            quote_ident(&feed.schema),
                            quote_ident(&feed.sequence)
                        ),
                        why: format!(
                            "move it past the values the push writes into {}.{column}",
                            t.table
                        ),
                    });
                }
            }
            needs.extend(self.numbering_needs(t).await?);
        }
        Ok(needs)
    }

    /// Rows inserted leaving a column to its sequence: `nextval()` in the
    /// column's default needs USAGE on the sequence (an identity's own
    /// sequence needs nothing: Postgres draws it for the table), and a dry
    /// run reads where the sequence stands to number the rows itself
    /// (`dry_run_numbers`), which needs SELECT. A sequence owned by another
    /// role (an app's shared counter, the identity of a table the role may
    /// only insert into) fails there, after the locks, unless named here.
    async fn numbering_needs(&self, t: &TableDiff) -> Result<Vec<Need>> {
        let mut left: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &self.job.diff.phases {
            for g in t.insert_groups(p) {
                for c in t.columns.iter().filter(|c| c.numbered_by_sequence()) {
                    if !g.columns.contains(&c.name) {
                        *left.entry(c.name.as_str()).or_default() += g.rows.len();
                    }
                }
            }
        }
        let mut needs = Vec::new();
        for (column, rows) in left {
            let Some(c) = t.columns.iter().find(|c| c.name == column) else {
                continue;
            };
            let user = format!("{}.{column}", t.table);
            for feed in feeds(&self.tx, &t.table, column).await? {
                let sequence = format!(
                    "{}.{}",
                    quote_ident(&feed.schema),
                    quote_ident(&feed.sequence)
                );
                if c.identity.is_none() {
                    needs.push(Need::Sequence {
                        sequence: sequence.clone(),
                        column: user.clone(),
                        privilege: "USAGE,UPDATE",
                        why: format!("number the {rows} new rows with nextval()"),
                    });
                }
                if self.dry.is_some() && numbered_by_one_draw(c) {
                    needs.push(Need::Sequence {
                        sequence,
                        column: user.clone(),
                        privilege: "SELECT",
                        why: format!(
                            "read where it stands, so the preflight numbers the {rows} new rows \
                             without drawing from it"
                        ),
                    });
                }
            }
        }
        Ok(needs)
    }

    /// The remote compared with the state the snapshot was pulled from
    /// (see [`Self::no_drift`]).
    async fn drift(&self) -> Result<Vec<Check>> {
        let PushJob {
            opts,
            plan,
            snapshot,
            ..
        } = self.job;
        self.step("checking the remote for drift");
        let app = app_tables(snapshot, plan, opts.strict);
        drift_checks(&self.tx, snapshot, &app).await
    }

    /// The remote must be in the state the snapshot was pulled from, and
    /// the tables locked the ones the preflight read before the lock step
    /// (`replaced`: another table under a name since, see
    /// [`TablesReplaced`]). A replaced table whose rows are as pulled is
    /// no reason to pull again: the preflight run again reads the table
    /// there now (its triggers, grants, keys). With drift besides, a fresh
    /// snapshot is the way on, as for drift alone.
    fn no_drift(&self, drift: Vec<Check>, replaced: TablesReplaced) -> Result<Vec<Check>> {
        let PushJob { plan, snapshot, .. } = self.job;
        let drifted: Vec<String> = drift
            .iter()
            .filter(|c| !c.ok)
            .map(crate::db::postgres::drift::drift_summary)
            .collect();
        if drifted.is_empty() && replaced.tables.is_empty() {
            return Ok(drift);
        }
        let mut checks = replaced.checks("drift");
        checks.extend(drift);
        if drifted.is_empty() {
            return Err(refuse(
                format!(
                    "{}; {}. Run `{}` again to preflight what is there now",
                    replaced.described("the preflight"),
                    self.nothing_written,
                    crate::advice::preflight(&snapshot.path, plan),
                ),
                checks,
            ));
        }
        let replaced = if replaced.tables.is_empty() {
            String::new()
        } else {
            format!("{}; ", replaced.described("the preflight"))
        };
        Err(refuse(
            format!(
                "the remote is not in the state the snapshot was pulled from ({replaced}{}); {}. \
                 Take a fresh snapshot and rehearse it: `{}`, then `{}`",
                drifted.join("; "),
                self.nothing_written,
                crate::advice::pull(&snapshot.path, plan),
                crate::advice::rehearse(&snapshot.path, plan)
            ),
            checks,
        ))
    }

    /// Objects in the way are not drift: pulling again does not remove them.
    async fn nothing_in_the_way(&self) -> Result<Vec<Check>> {
        // Inheritance added since the pull: the pull refuses it now, and the
        // push, whose writes would reach or miss the children, refuses too.
        let written: Vec<String> = self
            .job
            .diff
            .tables
            .iter()
            .filter(|t| !t.created)
            .map(|t| t.table.clone())
            .collect();
        // Asked with the target's state: pipelined, no round trip of its own.
        let (links, target) = futures_util::future::try_join(
            inheritance_links(&self.tx, &written),
            target_state_checks(&self.tx, self.job.plan),
        )
        .await?;
        if !links.is_empty() {
            return Err(refuse(
                format!(
                    "table inheritance (INHERITS) is not supported for the tables the push \
                     writes: {}; {}",
                    inheritance_advice(&links),
                    self.nothing_written
                ),
                Vec::new(),
            ));
        }
        if target.iter().any(|c| !c.ok) {
            let found: Vec<String> = target.iter().flat_map(|c| c.rows.clone()).collect();
            return Err(refuse(
                format!(
                    "objects the plan creates already exist on the remote ({}); pulling again will not \
                     change that: drop or rename them, or change the plan. {}",
                    found.join("; "),
                    self.nothing_written
                ),
                target,
            ));
        }
        Ok(target)
    }

    /// Every trigger on the tables the push writes, and whether the plan
    /// may hold off the ones it names.
    async fn triggers(&self) -> Result<(Vec<TriggerReport>, Check)> {
        let PushJob { plan, diff, .. } = self.job;
        let written = written_tables(diff);
        self.step("reading the triggers of the tables the push writes");
        let commands = self.commands();
        let (triggers, trigger_check) =
            plan_triggers(&self.tx, &written, &plan.file.hold_off_triggers, &commands).await?;
        let trigger_check = self.refuse_unless_ok(
            trigger_check,
            "the plan holds off triggers the tool cannot prove harmless",
        )?;
        Ok((triggers, trigger_check))
    }

    /// The rules on the tables the push writes; refused (see
    /// [`rules_check`]) when COPY would bypass one or a DO INSTEAD rule
    /// would replace the push's writes.
    async fn rules(&self) -> Result<(Vec<String>, Check)> {
        let (listed, check) = rules_check(&self.tx, &written_tables(self.job.diff)).await?;
        let check = self.refuse_unless_ok(
            check,
            "rules on the tables the push writes would bypass or replace its writes",
        )?;
        Ok((listed, check))
    }

    /// The DDL of the push and of the rollback it rehearses, which
    /// decides the event triggers that fire.
    fn commands(&self) -> Vec<crate::db::event_triggers::Command> {
        let PushJob { plan, diff, .. } = self.job;
        let moves_sequences = diff.tables.iter().any(|t| {
            diff.phases
                .iter()
                .any(|p| !t.sequence_columns_written(p).is_empty())
        });
        crate::db::event_triggers::plan_commands(plan, self.job.snapshot, moves_sequences)
    }

    /// What fires for the push's writes, and the functions it calls.
    async fn effects(&self) -> Result<Effects> {
        self.job
            .progress
            .step("reading what fires or is evaluated for the push's writes, and what it calls");
        Effects::read(
            &self.tx,
            &written_tables(self.job.diff),
            &self.job.allowed_writes(),
            &self.commands(),
        )
        .await
    }

    /// A trigger that calls something a rollback does not undo refuses the
    /// push — the preflight too, which would otherwise perform it and say
    /// "nothing was written" — before anything is written, unless allowed.
    fn external_effects(&self, effects: &Effects) -> Result<Check> {
        let check =
            external_effects_check("preflight", effects, self.job.opts.allow_external_effects);
        if !check.ok {
            return Err(refuse(
                format!(
                    "what fires or is evaluated for the push's writes (triggers, their WHEN clauses, \
                     constraints, defaults, indexes, policies, rules) calls what a rollback does not \
                     undo ({}); {}. \
                     Running the preflight would perform them. Pass --allow-external-effects if \
                     they are intended (for the preflight too)",
                    check.rows.join("; "),
                    self.nothing_written
                ),
                vec![check],
            ));
        }
        Ok(check)
    }

    /// Writes to a foreign table go to another server, uncounted by the
    /// write accounting: a trigger or rule the catalog shows may write one
    /// refuses the push before anything is written, unless allowed.
    async fn foreign_writes(&self, effects: &Effects) -> Result<ForeignWrites> {
        let mut foreign = foreign_write_check(
            &self.tx,
            "preflight",
            &written_tables(self.job.diff),
            &self.job.allowed_writes(),
            effects,
        )
        .await?;
        foreign.check = self.refuse_unless_ok(
            foreign.check,
            "triggers or rules that fire for the push may write foreign tables",
        )?;
        Ok(foreign)
    }

    /// The very transaction `--confirm` commits; the preflight rolls it back
    /// at the end. Any refusal by Postgres (constraint, trigger, privilege,
    /// type) is named and is a refusal, not an environment error.
    async fn apply(&self, triggers: &[TriggerReport], effects: &Effects) -> Result<Applied> {
        let app = app_tables(self.job.snapshot, self.job.plan, self.job.opts.strict);
        self.apply_all(triggers, effects, &app).await.map_err(|e| {
            match crate::db::pg_error::describe(&e, triggers) {
                Some(named) => refuse(
                    format!(
                        "Postgres refused the push: {}: {named}. Rolled back, {}",
                        crate::db::pg_error::steps(&e),
                        self.nothing_written
                    ),
                    vec![],
                ),
                None => e,
            }
        })
    }

    /// Phase by phase, as rehearsed: each phase's DDL and rows, then that
    /// phase's expectations on Postgres, so every number of the rehearsal is
    /// checked again at the point where it held; then the verification
    /// queries, guards and the rehearsed state of every written table.
    async fn apply_all(
        &self,
        triggers: &[TriggerReport],
        effects: &Effects,
        app: &[String],
    ) -> Result<Applied> {
        let PushJob {
            plan,
            snapshot,
            diff,
            ..
        } = self.job;
        let tx = &self.tx;
        let mut after_checks = Vec::new();
        let mut sequences: Vec<SequenceAdvance> = Vec::new();
        let mut track = |moved: Vec<SequenceAdvance>| {
            for moved in moved {
                // A sequence moved in several phases: from where it was
                // before the first to where the last left it.
                match sequences
                    .iter_mut()
                    .find(|s| s.schema == moved.schema && s.sequence == moved.sequence)
                {
                    Some(s) => {
                        s.after = moved.after;
                        s.written = moved.written;
                    }
                    None => sequences.push(moved),
                }
            }
        };
        // The exclusive step: what needs ACCESS EXCLUSIVE (ADD COLUMN on a
        // pulled table, which every reader of it waits behind until
        // COMMIT) comes after every other phase's work, when nothing else
        // observes the order (see `exclusive_step`).
        let step = self.exclusive_step(triggers);
        let (rest, only) = match &step {
            Some(s) => (Part::Except(&s.tables), Some(Part::Only(&s.tables))),
            None => (Part::All, None),
        };
        let deferred = |phase: &Phase, e: &crate::plan::Expectation| {
            step.as_ref().is_some_and(|s| s.defers(phase, e))
        };
        for phase in &plan.file.phases {
            track(self.apply_phase(phase, triggers, rest).await?);
            let now: Vec<crate::plan::Expectation> = phase
                .expectations
                .iter()
                .filter(|e| !deferred(phase, e))
                .cloned()
                .collect();
            let after = format!("phase {}", phase.id);
            after_checks.extend(
                self.phase_checks(&phase.id, &now, app, Some(&after))
                    .await?,
            );
        }
        if let Some(only) = only {
            self.step("the exclusive step: adding columns to the tables readers wait for");
            for phase in &plan.file.phases {
                track(self.apply_phase(phase, triggers, only).await?);
            }
            // The settings are read once after the whole step, in the round
            // trip of the first deferred expectations (or alone).
            let mut settings_after = Some("the exclusive step");
            for phase in &plan.file.phases {
                let later: Vec<crate::plan::Expectation> = phase
                    .expectations
                    .iter()
                    .filter(|e| deferred(phase, e))
                    .cloned()
                    .collect();
                if !later.is_empty() {
                    after_checks.extend(
                        self.phase_checks(&phase.id, &later, app, settings_after.take())
                            .await?,
                    );
                }
            }
            if let Some(after) = settings_after {
                self.settings_held(after).await?;
            }
        }
        self.step("running the verification queries and guards on Postgres");
        after_checks.extend(final_checks(tx, plan, app).await?);
        // The rehearsed state, with what Postgres chose where the plan left
        // columns to it: the comparison covers the columns the plan set, and
        // the receipt keeps the rest so a rollback can prove the state exact.
        let mut filled = Vec::new();
        for t in &diff.tables {
            if let Some(f) = read_filled(tx, t, triggers).await? {
                filled.push(f);
            }
        }
        let (expected, trigger_set) = self.compute(|| -> Result<_> {
            let expected = expected_after(snapshot, plan, &diff.staged, &filled)?;
            let trigger_set = trigger_set_columns(snapshot, plan, &filled, triggers)?;
            trigger_set_before(snapshot, plan, diff, &mut filled)?;
            Ok((expected, trigger_set))
        })?;
        // Untouched tables need no pass here: the database-wide write
        // accounting after the receipt covers them and every other table.
        let (mut states, read_back) =
            state_checks(tx, snapshot, plan, &expected, Untouched::Skip).await?;
        for (c, t) in states.iter_mut().zip(&expected) {
            if !c.ok {
                self.name_mismatches(c, &t.name, &filled, triggers, effects)
                    .await?;
            }
        }
        after_checks.extend(states);
        // Where a moved sequence stands at COMMIT: later rows the push left
        // to Postgres drew from it too. A rollback finding it there knows
        // nobody else drew since.
        for s in sequences.iter_mut().filter(|s| s.moved()) {
            s.after = next_value(tx, s, self.dry.as_ref()).await?;
        }
        Ok(Applied {
            checks: after_checks,
            expected,
            filled,
            sequences,
            trigger_set,
            read_back,
        })
    }

    /// A written table that differs from its rehearsed form: names each
    /// differing row (key, column, rehearsed and Postgres values), the
    /// BEFORE row triggers that fire on how the push wrote those rows (they
    /// change a row before it is written, and the rehearsal cannot run
    /// them), and what to do. Reads the table once more: only on failure.
    async fn name_mismatches(
        &self,
        c: &mut Check,
        table: &str,
        filled: &[FilledValues],
        triggers: &[TriggerReport],
        effects: &Effects,
    ) -> Result<()> {
        let PushJob {
            plan,
            snapshot,
            diff,
            ..
        } = self.job;
        let meta = staged_meta(&snapshot.conn, snapshot, plan, table)?;
        let fill = filled.iter().find(|f| f.table == table);
        let mut rehearsed = std::collections::HashMap::new();
        snapshot.for_each_row(&crate::plan::stage::staged(table), &meta, |mut row| {
            if let Some(f) = fill {
                f.apply(&meta, &mut row)?;
            }
            rehearsed.insert(row_key(&meta, &row)?, row);
            Ok(())
        })?;
        let mismatches = mismatched_rows(&self.tx, &meta, rehearsed).await?;
        let written = diff.tables.iter().find(|t| t.table == table);
        let event_of = |key: &str| -> Option<&'static str> {
            let t = written?;
            if t.updates
                .iter()
                .any(|u| crate::types::row_key(u.key.iter().map(|k| Some(k.as_str()))) == key)
            {
                return Some("UPDATE");
            }
            let key_idx = key_positions_of(t).ok()?;
            t.inserts
                .iter()
                .any(|r| crate::types::row_key(key_idx.iter().map(|i| r[*i].as_deref())) == key)
                .then_some("INSERT")
        };
        let mut rows = Vec::new();
        let mut events: Vec<&'static str> = Vec::new();
        for m in &mismatches {
            let event = event_of(&m.key);
            if let Some(e) = event {
                if !events.contains(&e) {
                    events.push(e);
                }
            }
            if rows.len() == MISMATCHED_ROWS_SHOWN {
                continue;
            }
            let how = match event {
                Some("INSERT") => " (inserted by the push)",
                Some(_) => " (updated by the push)",
                None => "",
            };
            let what = match (m.rehearsed, m.on_postgres) {
                (true, false) => "rehearsed, but not on Postgres".to_string(),
                (false, true) => "on Postgres, but not in the rehearsal".to_string(),
                _ => m
                    .columns
                    .iter()
                    .map(|(col, r, p)| {
                        let (r, p) = value_pair_summary(r, p);
                        format!("column {col}: rehearsed {r}, Postgres {p}")
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            rows.push(format!(
                "{table} row {}={}{how}: {what}",
                meta.primary_key().join("/"),
                m.key
            ));
        }
        if mismatches.len() > rows.len() {
            rows.push(format!(
                "… and {} more rows of {table} differ",
                mismatches.len() - rows.len()
            ));
        }
        // A trigger on another written table whose function names this one
        // (a counter cache: AFTER INSERT on workflows bumps
        // jtbd_library.usage_count) writes these rows in that table's
        // phase, outside this table's hold-off too; the rehearsal runs no
        // trigger, so it is the likely cause whatever the event.
        let own = format!("on {}", qualify(table));
        let elsewhere: Vec<String> = effects
            .naming(table)
            .into_iter()
            .filter(|w| {
                w.starts_with("trigger ") && !w.contains(&format!("{own} ")) && !w.ends_with(&own)
            })
            .collect();
        if !elsewhere.is_empty() {
            rows.push(format!(
                "likely cause: {} {} for the push's writes and names {table}: its writes there \
                 are not rehearsed (the rehearsal runs no trigger), and a trigger held off on \
                 {table} fires for them, since they happen outside its hold-off",
                elsewhere.join("; "),
                if elsewhere.len() == 1 {
                    "fires"
                } else {
                    "fire"
                },
            ));
        }
        for event in events {
            let firing: Vec<String> = triggers
                .iter()
                .filter(|t| t.rewrites_rows_of(table) && t.events.iter().any(|e| e == event))
                .map(|t| format!("{} (function {})", t.name, t.function))
                .collect();
            if firing.is_empty() && !elsewhere.is_empty() {
                continue;
            }
            rows.push(if firing.is_empty() {
                format!(
                    "no BEFORE {event} row trigger on {table} fires for the push: something else on \
                     Postgres (a rule, a domain, the column's type) gave these values"
                )
            } else {
                format!(
                    "likely cause: BEFORE {event} trigger {} on {table} fires for the push and can change \
                     a row before it is written; the rehearsal cannot run triggers",
                    firing.join(", ")
                )
            });
        }
        rows.push(
            "what to do: make the plan write the values Postgres ends up with (what the trigger \
             produces), so the rehearsal shows them; a trigger may be held off (the plan's \
             hold_off_triggers) only if it is a pure updated_at stamp, and no other trigger is ever \
             disabled"
                .to_string(),
        );
        c.row_count = mismatches.len() as u64;
        c.rows = rows;
        Ok(())
    }

    /// A phase's expectations in one round trip (pipelined), the
    /// search_path pinned again in front of them: the phase's writes ran
    /// under the app's.
    /// `settings_after`: also read the guarded settings again (see
    /// `settings_held`), pipelined in the same round trip, so the re-read
    /// after each phase costs a remote push no extra round trip.
    async fn phase_checks(
        &self,
        phase: &str,
        expectations: &[crate::plan::Expectation],
        app: &[String],
        settings_after: Option<&str>,
    ) -> Result<Vec<Check>> {
        let tx = &self.tx;
        let pin = pin_sql();
        let settings = async {
            match settings_after {
                Some(after) => self.settings_held(after).await,
                None => Ok(()),
            }
        };
        let (pinned, held, checks) = futures_util::join!(
            tx.batch_execute(&pin),
            settings,
            expectation_checks(tx, phase, CheckKind::Expectation, expectations, app)
        );
        pinned?;
        held?;
        checks
    }

    /// Whether the columns the plan adds to pulled tables can be added (and
    /// their values written) after every other phase's work, in one step at
    /// the end, instead of in their phase: ACCESS EXCLUSIVE is then held
    /// from that step to COMMIT, not from that phase on. Only when nothing
    /// can tell the order apart: the table gets no rows inserted or deleted
    /// and its updates set only the added columns (so nothing before the
    /// step could read a value the step changes: the columns do not exist
    /// yet), no new table or column references it, no trigger fires on its
    /// UPDATE (held-off stamps do not), and each expectation naming an added
    /// column (checked after the step) names no table a later phase writes
    /// (it sees those later writes then). Otherwise None: in phase order.
    fn exclusive_step(&self, triggers: &[TriggerReport]) -> Option<ExclusiveStep> {
        let PushJob { plan, diff, .. } = self.job;
        let mut tables: Vec<String> = plan
            .schema
            .added_columns
            .iter()
            .filter(|a| !plan.creates(&a.table))
            .map(|a| a.table.clone())
            .collect();
        tables.sort();
        tables.dedup();
        if tables.is_empty() {
            return None;
        }
        let added: Vec<String> = plan
            .schema
            .added_columns
            .iter()
            .filter(|a| tables.contains(&a.table))
            .map(|a| a.column.name.to_lowercase())
            .collect();
        for x in &tables {
            let own: Vec<&str> = plan
                .schema
                .added_columns
                .iter()
                .filter(|a| &a.table == x)
                .map(|a| a.column.name.as_str())
                .collect();
            if let Some(t) = diff.tables.iter().find(|t| &t.table == x) {
                let only_added = t.phase_updates.iter().all(|u| {
                    u.update
                        .changes
                        .iter()
                        .all(|c| own.contains(&c.column.as_str()))
                });
                if !t.phase_inserts.is_empty() || !t.phase_deletes.is_empty() || !only_added {
                    return None;
                }
            }
            let referenced = plan
                .schema
                .tables
                .iter()
                .flat_map(|t| t.foreign_keys.iter().map(|fk| &fk.ref_table))
                .chain(
                    plan.schema
                        .added_columns
                        .iter()
                        .filter_map(|a| a.references.as_ref().map(|r| &r.table)),
                )
                .any(|r| r == x);
            let fires = triggers.iter().any(|t| {
                &t.table == x
                    && t.action == crate::db::triggers::TriggerAction::Fires
                    && t.events.iter().any(|e| e == "UPDATE")
            });
            if referenced || fires {
                return None;
            }
        }
        let step = ExclusiveStep { tables, added };
        for (i, phase) in plan.file.phases.iter().enumerate() {
            let later_writes: Vec<String> = plan.file.phases[i + 1..]
                .iter()
                .flat_map(|p| {
                    p.writes.iter().cloned().chain(
                        plan.schema
                            .tables
                            .iter()
                            .filter(|t| t.phase == p.id)
                            .map(|t| t.name.clone()),
                    )
                })
                .filter(|t| !step.tables.contains(t))
                .map(|t| t.to_lowercase())
                .collect();
            for e in phase.expectations.iter().filter(|e| step.defers(phase, e)) {
                let sql = e.sql.to_lowercase();
                if later_writes.iter().any(|t| sql.contains(t.as_str())) {
                    return None;
                }
            }
        }
        Some(step)
    }

    /// Refuses the push when a trigger or event trigger the writes fired
    /// switched session_replication_role (or track_counts) inside the
    /// transaction: read after each phase, so a switch there and back within
    /// the push is caught too (see `tx::guarded_settings_still_held`).
    async fn settings_held(&self, after: &str) -> Result<()> {
        crate::db::postgres::tx::refuse_unless_settings_held(&self.tx, after, |found| {
            format!(
                "refusing to push: {found}. Rolled back, {}",
                self.nothing_written
            )
        })
        .await
    }

    /// One phase's DDL, then its deletes, inserts and updates; then the
    /// sequences behind columns it gave values itself are moved past them
    /// (before a later phase's rows draw from them). Returns those.
    async fn apply_phase(
        &self,
        phase: &Phase,
        triggers: &[TriggerReport],
        part: Part<'_>,
    ) -> Result<Vec<SequenceAdvance>> {
        let PushJob { diff, .. } = self.job;
        let tx = &self.tx;
        // Every lock the DDL needs was taken in the push's one lock step
        // (see `push_on`).
        // The phase's DDL pipelined (one round trip, not one per
        // statement, which matters most under ACCESS EXCLUSIVE).
        let ddl: Vec<&crate::diff::PhaseDdl> = diff
            .ddl
            .iter()
            .filter(|d| d.phase == phase.id)
            .filter(|d| {
                d.alters
                    .as_deref()
                    .map_or(!matches!(part, Part::Only(_)), |t| part.has(t))
            })
            .collect();
        if let Some(first) = ddl.first() {
            self.step(&format!("phase {}: {}", phase.id, first_line(&first.sql)));
        }
        let writes = |t: &&TableDiff| {
            part.has(&t.table)
                && (t.inserts_of(&phase.id).next().is_some()
                    || t.deletes_of(&phase.id).next().is_some()
                    || !t.updates_of(&phase.id).is_empty())
        };
        let has_rows = diff.tables.iter().any(|t| writes(&t));
        // The rows are written under the app's search_path, so the
        // database's triggers resolve names as they do for the app; what
        // the writes spell is resolved first, under the pinned path, after
        // the DDL: all in one round trip (pipelined, in this order).
        // `apply_all` pins the path again in the round trip of the phase's
        // expectations.
        let spellings = if has_rows {
            cast_spellings(diff.tables.iter().filter(writes))?
        } else {
            Vec::new()
        };
        let rows_ahead = async {
            if !has_rows {
                return Ok::<_, anyhow::Error>(None);
            }
            let (types, as_the_app) = futures_util::join!(
                TypeSpellings::resolve(tx, spellings),
                tx.batch_execute(AS_THE_APP)
            );
            // The first refused says why; the other only that the
            // transaction was aborted.
            let types = types?;
            as_the_app?;
            Ok(Some(types))
        };
        let (done, types) = futures_util::join!(
            futures_util::future::join_all(ddl.iter().map(|d| tx.batch_execute(&d.sql))),
            rows_ahead
        );
        // The first statement Postgres refused is the error: those after it
        // only report the aborted transaction.
        for (d, r) in ddl.iter().zip(done) {
            r.with_context(|| format!("phase {}: DDL {}", phase.id, first_line(&d.sql)))?;
        }
        let Some(types) = types? else {
            return Ok(Vec::new());
        };
        self.write_phase_rows(phase, triggers, &types, part).await
    }

    /// [`Self::apply_phase`]'s rows: deletes, updates, inserts, then the
    /// sequences moved past the values written. Runs under the app's
    /// search_path: everything here names its schema.
    async fn write_phase_rows(
        &self,
        phase: &Phase,
        triggers: &[TriggerReport],
        types: &TypeSpellings,
        part: Part<'_>,
    ) -> Result<Vec<SequenceAdvance>> {
        let PushJob { diff, .. } = self.job;
        let tx = &self.tx;
        // A DEFERRABLE unique key is checked at the end of the phase, not
        // row by row, so rows may trade its values within the phase (the
        // rehearsal's replay, `write_order`, counts it so).
        let deferred = self.deferrable_unique_keys()?;
        if !deferred.is_empty() {
            tx.batch_execute(&format!("SET CONSTRAINTS {deferred} DEFERRED"))
                .await
                .with_context(|| format!("phase {}: deferring {deferred}", phase.id))?;
        }
        // Deletes first, children before parents, so no row still
        // referring to a deleted one is left when the FK is checked; then
        // per table its updates before its inserts, as an UPDATE is what
        // frees a unique value a new row reuses — except a change pointing
        // a row at one the phase inserts (a foreign key of the table to
        // itself), which must wait for that row. `write_order` replays
        // exactly this order in the rehearsal.
        for t in diff.tables.iter().rev().filter(|t| part.has(&t.table)) {
            self.delete_phase_rows(phase, t, types).await?;
        }
        let mut moved = Vec::new();
        for t in diff.tables.iter().filter(|t| part.has(&t.table)) {
            let self_refs = self_references(&staged_meta(
                &self.job.snapshot.conn,
                self.job.snapshot,
                self.job.plan,
                &t.table,
            )?);
            let (updates, after_inserts) = split_updates(t, &phase.id, &self_refs);
            if !updates.is_empty() {
                self.step(&format!(
                    "phase {}: updating {} of {}",
                    phase.id,
                    crate::words::rows(updates.len()),
                    t.table
                ));
                apply_row_updates(tx, types, t, &updates, false, triggers)
                    .await
                    .with_context(|| format!("phase {}: updating {}", phase.id, t.table))?;
            }
            self.insert_phase_rows(phase, t).await?;
            if !after_inserts.is_empty() {
                self.step(&format!(
                    "phase {}: pointing {} of {} at rows it inserted",
                    phase.id,
                    crate::words::rows(after_inserts.len()),
                    t.table
                ));
                apply_row_updates(tx, types, t, &after_inserts, false, triggers)
                    .await
                    .with_context(|| {
                        format!(
                            "phase {}: updating {} (keys to rows the phase inserted)",
                            phase.id, t.table
                        )
                    })?;
            }
            for column in t.sequence_columns_written(&phase.id) {
                self.step(&format!(
                    "phase {}: moving the sequence of {}.{column} past the values written",
                    phase.id, t.table
                ));
                let numbers = t.numbers_written(&phase.id, &column);
                moved.extend(
                    advance_past_values(
                        tx,
                        &t.table,
                        &column,
                        &self.locked_tables(),
                        &numbers,
                        self.dry.as_ref(),
                    )
                    .await
                    .with_context(|| format!("phase {}: {}.{column}", phase.id, t.table))?,
                );
            }
        }
        if !deferred.is_empty() {
            tx.batch_execute(&format!("SET CONSTRAINTS {deferred} IMMEDIATE"))
                .await
                .with_context(|| format!("phase {}: checking {deferred}", phase.id))?;
        }
        Ok(moved)
    }

    /// The public tables no app session can insert into while the push
    /// runs: the ones it locks against writers and the ones it creates.
    fn locked_tables(&self) -> Vec<String> {
        let PushJob {
            opts,
            plan,
            snapshot,
            ..
        } = self.job;
        push_locks(snapshot, plan, opts.strict)
            .into_iter()
            .map(|(t, _)| t)
            .chain(plan.schema.tables.iter().map(|t| t.name.clone()))
            .collect()
    }

    /// The DEFERRABLE UNIQUE and primary keys of the tables the push writes,
    /// as `SET CONSTRAINTS` names them (the drift check proved the catalog
    /// is the snapshot's); empty when there are none.
    fn deferrable_unique_keys(&self) -> Result<String> {
        let PushJob {
            plan,
            snapshot,
            diff,
            ..
        } = self.job;
        let mut names = Vec::new();
        for t in diff.tables.iter().filter(|t| !t.created) {
            let meta = staged_meta(&snapshot.conn, snapshot, plan, &t.table)?;
            for k in meta.constraints.iter().filter(|k| k.deferrable()) {
                let name = format!("public.{}", quote_ident(&k.name));
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(names.join(", "))
    }

    /// Deletes the rows of `t` the phase deleted: every one, or a refusal.
    async fn delete_phase_rows(
        &self,
        phase: &Phase,
        t: &TableDiff,
        types: &TypeSpellings,
    ) -> Result<()> {
        let rows: Vec<&Vec<Option<String>>> = t.deletes_of(&phase.id).collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.step(&format!(
            "phase {}: deleting {} of {}",
            phase.id,
            crate::words::rows(rows.len()),
            t.table
        ));
        let n = delete_rows(&self.tx, types, t, &rows)
            .await
            .with_context(|| format!("phase {}: deleting from {}", phase.id, t.table))?;
        if n != rows.len() as u64 {
            return Err(refuse(
                format!(
                    "DELETE from {} removed {}, expected {} (a row changed or a trigger \
                     intervened); nothing was written",
                    t.table,
                    crate::words::rows(n),
                    rows.len()
                ),
                vec![],
            ));
        }
        Ok(())
    }

    /// Copies the rows the phase inserted into `t`, one COPY per set of
    /// columns: only the columns the plan set, Postgres fills the rest.
    async fn insert_phase_rows(&self, phase: &Phase, t: &TableDiff) -> Result<()> {
        for group in t.insert_groups(&phase.id) {
            let group = self.numbered_by_the_dry_run(t, group).await?;
            let rows = &group.rows;
            self.step(&format!(
                "phase {}: copying {} into {}",
                phase.id,
                crate::words::rows(rows.len()),
                t.table
            ));
            let n = match copy_rows(
                &self.tx,
                &format!("public.{}", quote_ident(&t.table)),
                &group.columns,
                rows,
            )
            .await
            {
                Ok(n) => n,
                Err(e) => {
                    // Name the row COPY stopped at, by its key.
                    let row = crate::db::pg_error::copy_line(&e)
                        .and_then(|l| rows.get(l.wrapping_sub(1)))
                        .map(|r| key_text(t, r))
                        .unwrap_or_default();
                    return Err(e.context(format!(
                        "phase {}: inserting {} into {}{}",
                        phase.id,
                        crate::words::rows(rows.len()),
                        t.table,
                        if row.is_empty() {
                            String::new()
                        } else {
                            format!(" (row {row})")
                        }
                    )));
                }
            };
            if n != rows.len() as u64 {
                return Err(refuse(
                    format!(
                        "COPY into {} wrote {}, expected {} (a trigger skipped rows)",
                        t.table,
                        crate::words::rows(n),
                        rows.len()
                    ),
                    vec![],
                ));
            }
        }
        Ok(())
    }

    /// In a dry run, the group's rows with the numbers the sequences behind
    /// the columns they leave to Postgres would give them, written as
    /// values: drawn, they would stay drawn after the ROLLBACK (see
    /// `sequences`). Unchanged in a push with --confirm.
    async fn numbered_by_the_dry_run(
        &self,
        t: &TableDiff,
        mut group: crate::diff::InsertGroup,
    ) -> Result<crate::diff::InsertGroup> {
        let Some(dry) = &self.dry else {
            return Ok(group);
        };
        for c in &t.columns {
            if group.columns.contains(&c.name) {
                continue;
            }
            let Some(numbers) =
                dry_run_numbers(&self.tx, dry, &t.table, c, group.rows.len()).await?
            else {
                continue;
            };
            group.columns.push(c.name.clone());
            for (row, n) in group.rows.iter_mut().zip(numbers) {
                row.push(Some(n.to_string()));
            }
        }
        Ok(group)
    }

    /// Writes the receipt in the transaction, with what Postgres chose for
    /// the columns the plan left to it.
    async fn write_receipt(
        &self,
        triggers: &[TriggerReport],
        expected: &[StagedTable],
        filled: Vec<FilledValues>,
        sequences: Vec<SequenceAdvance>,
        read_back: ReadBack,
    ) -> Result<Receipt> {
        let PushJob {
            plan,
            snapshot,
            diff,
            ..
        } = self.job;
        self.step("writing the receipt");
        let id = uuid::Uuid::new_v4().to_string();
        let before_counts: BTreeMap<String, u64> = snapshot
            .tables
            .iter()
            .map(|t| (t.meta.name.clone(), t.rows))
            .collect();
        let tables = counts(diff, &before_counts);
        let held_off: Vec<String> = triggers
            .iter()
            .filter(|t| t.action == TriggerAction::HeldOff)
            .map(|t| format!("{}.{}", t.table, t.name))
            .collect();
        let allowed = self.job.allowed_writes();
        // The receipt goes in before the accounting, so its own row is counted
        // as planned; its side-effect list is filled in by an UPDATE after the
        // accounting, which is then counted too.
        let mut undo = self.compute(|| {
            Undo::of_push(
                diff,
                plan,
                snapshot,
                held_off.clone(),
                vec![],
                allowed.clone(),
            )?
            .with_filled(snapshot, plan, expected, filled)
        })?;
        undo.sequences = sequences;
        if let Err(e) =
            insert_receipt(&self.tx, self.receipts_exist, &id, diff, &tables, &undo).await
        {
            return Err(match crate::db::pg_error::describe(&e, triggers) {
                Some(named) => refuse(
                    format!(
                        "Postgres refused the receipt: {named}. Rolled back, {}",
                        self.nothing_written
                    ),
                    vec![],
                ),
                None => e,
            });
        }
        Ok(Receipt {
            id,
            tables,
            held_off,
            allowed,
            undo,
            read_back,
        })
    }

    /// Every write of the transaction, database-wide, against the diff's;
    /// the allowed side effects go into the receipt and are returned.
    async fn account_writes(
        &self,
        receipt: &mut Receipt,
        checks: &mut Vec<Check>,
        effects: &Effects,
        triggers: &[TriggerReport],
    ) -> Result<Vec<TableWrites>> {
        self.job
            .progress
            .step("accounting for every write of the transaction");
        // ADD COLUMN may rewrite its table; the state checks cover its rows.
        let ddl_targets: Vec<String> = self
            .job
            .plan
            .schema
            .added_columns
            .iter()
            .map(|a| a.table.clone())
            .collect();
        // The tables the plan protects or reads: the rehearsal rests on
        // their rows, so no --allow-writes extends to them.
        let protected = self.job.plan.protected_tables();
        let allowed_here: Vec<String> = receipt
            .allowed
            .iter()
            .filter(|a| !protected.contains(&qualify(a)))
            .cloned()
            .collect();
        // The storage and DDL checks ask nothing of the writes: sent with
        // them.
        let (writes, storage, ddl) = futures_util::join!(
            transaction_writes(&self.tx),
            storage_check(&self.tx, "writes", &ddl_targets, &allowed_here),
            transaction_ddl(&self.tx)
        );
        let ddl = ddl?;
        let writes = writes?;
        // An event trigger writing a table fired on the push's DDL: said
        // with the commands it fires on (its report's note), which may be
        // the plan's, the hold-off's, or the tool's own creation of
        // sandbox.receipts on a first push.
        let writers = |table: &str| -> Vec<String> {
            effects
                .naming(table)
                .into_iter()
                .map(|w| {
                    let fired = triggers.iter().find(|t| {
                        let named = format!("event trigger {}", t.name);
                        t.table == "(event trigger)"
                            && (w == named || w.starts_with(&format!("{named} (function ")))
                    });
                    match fired {
                        Some(t) => format!("{w}, which {}", t.note),
                        None => w,
                    }
                })
                .collect()
        };
        let planned = planned_writes(self.job.diff);
        let cascades = cascading_keys(&self.tx, &writes, &planned, &receipt.allowed).await?;
        let accounting = account(
            "writes",
            &writes,
            &planned,
            &receipt.allowed,
            &protected,
            &cascades,
            &writers,
        );
        checks.extend(accounting.checks);
        checks.push(storage?);
        checks.push(crate::db::triggers::triggers_as_they_were(
            "writes",
            &ddl,
            triggers,
            &[],
            "the push",
        ));
        // DDL through EXECUTE names no table: what runs it is likely one of
        // the event triggers that fire on the push's DDL.
        let event_triggers: Vec<String> = triggers
            .iter()
            .filter(|t| t.table == "(event trigger)" && t.action == TriggerAction::Fires)
            .map(|t| format!("event trigger {}, which {}", t.name, t.note))
            .collect();
        let ddl_writers = |table: &str| match writers(table) {
            by if by.is_empty() => event_triggers.clone(),
            by => by,
        };
        // No --allow-writes covers DDL on a table the plan writes, protects
        // or reads (see `ddl_check`).
        let kept: Vec<String> = self
            .job
            .plan
            .write_set()
            .into_iter()
            .chain(protected.iter().cloned())
            .collect();
        checks.push(ddl_check(
            "push",
            "writes",
            &ddl,
            &self.own_ddl(receipt, triggers),
            &allowed_here,
            &kept,
            &ddl_writers,
        ));
        receipt.undo.side_effects = accounting.allowed.clone();
        // The rows those side effects inserted that reference the push's
        // new rows through an ON DELETE CASCADE (a trigger's history row
        // per pushed workflow): the rollback's delete of the pushed rows
        // takes them back, and the receipt says which they are, so that
        // they are the undo's and not the app's.
        let inserted_into: Vec<String> = receipt
            .undo
            .side_effects
            .iter()
            .filter(|w| w.inserted > 0)
            .map(|w| w.table.clone())
            .collect();
        if !inserted_into.is_empty() {
            receipt.undo.own_referencing = crate::db::dependents::own_referencing_rows(
                &self.tx,
                &crate::db::postgres::rollback::pushed_keys(&receipt.undo),
                &inserted_into,
            )
            .await
            .context("cannot read the rows the allowed side effects wrote")?;
        }
        if !receipt.undo.side_effects.is_empty() {
            self.tx
                .execute(
                    "UPDATE sandbox.receipts SET undo = $2::text::jsonb WHERE id = $1::text::uuid",
                    &[&receipt.id, &serde_json::to_string(&receipt.undo)?],
                )
                .await?;
        }
        Ok(accounting.allowed)
    }

    /// The DDL this push runs itself, which the DDL check takes away: the
    /// plan's tables as their CREATE makes them and its columns with their
    /// foreign keys, the triggers it holds off, the sequences it moves.
    fn own_ddl(&self, receipt: &Receipt, triggers: &[TriggerReport]) -> OwnDdl {
        let schema = &self.job.plan.schema;
        OwnDdl {
            created: schema.tables.iter().map(|t| qualify(&t.name)).collect(),
            as_made: schema.tables.iter().map(TableAsMade::planned).collect(),
            columns: schema
                .added_columns
                .iter()
                .map(|a| (qualify(&a.table), a.column.name.clone()))
                .collect(),
            referenced: schema
                .tables
                .iter()
                .flat_map(|t| t.foreign_keys.iter().map(|f| qualify(&f.ref_table)))
                .chain(
                    schema
                        .added_columns
                        .iter()
                        .filter_map(|a| a.references.as_ref().map(|r| qualify(&r.table))),
                )
                .collect(),
            held_off: triggers
                .iter()
                .filter(|t| t.action == TriggerAction::HeldOff)
                .map(|t| (qualify(&t.table), t.name.clone()))
                .collect(),
            sequences: receipt
                .undo
                .sequences
                .iter()
                .map(|s| format!("{}.{}", s.schema, s.sequence))
                .collect(),
            // Made by `insert_receipt` only when it did not exist.
            receipts_created: !self.receipts_exist,
        }
    }

    /// Refuses if any check failed, rolls a preflight back, or commits and
    /// records the receipt in the snapshot file.
    async fn finish(self, receipt: Receipt, checks: Vec<Check>, done: Done) -> Result<PushReport> {
        let Done {
            triggers,
            side_effects,
            foreign,
            effects,
            trigger_set,
            rules,
        } = done;
        let Push {
            job,
            tx,
            nothing_written,
            ..
        } = self;
        if checks.iter().any(|c| !c.ok) {
            tx.rollback().await?;
            let failed = failed_summaries(&checks, "; ");
            return Err(refuse(
                format!(
                    "checks failed on Postgres after applying the diff ({}); rolled back, {nothing_written}",
                    failed.join(" | ")
                ),
                checks,
            ));
        }
        let undo_rehearsal = rehearse_undo(&tx, job, &receipt, &checks).await?;
        // What the created tables and added columns are, read after the
        // rehearsal of the undo dropped them under its savepoint and got
        // them back, right before COMMIT: the tables and columns this push
        // leaves, which rollback drops only if they are still these. (A
        // preflight commits nothing to undo.)
        let mut receipt = receipt;
        if job.opts.confirm
            && !(receipt.undo.created_tables.is_empty() && receipt.undo.added_columns.is_empty())
        {
            (receipt.undo.created_identity, receipt.undo.added_identity) = record_identity(
                &tx,
                &receipt.id,
                &receipt.undo.created_tables,
                &receipt.undo.added_columns,
            )
            .await?;
        }
        // Last, right before COMMIT (and the preflight's ROLLBACK): the
        // receipt and the accounting's own statements may fire triggers too.
        if let Some(check) = crate::db::postgres::tx::guarded_settings_still_held(
            &tx,
            "the receipt and the write accounting, before COMMIT",
        )
        .await?
        {
            tx.rollback().await?;
            return Err(refuse(
                format!(
                    "refusing to push: {}. Rolled back, {nothing_written}",
                    check.rows.join("; ")
                ),
                vec![check],
            ));
        }
        let report = |outcome, receipt_id, (local_record_error, local_record_fix)| PushReport {
            tables: receipt.tables,
            sequences: receipt.undo.sequences,
            disabled_triggers: receipt.held_off,
            triggers,
            side_effects,
            foreign_tables: foreign.tables,
            foreign_writes_allowed: foreign.allowed,
            external_effects: effects.external(),
            local_record_error,
            local_record_fix,
            undo_rehearsal: Some(undo_rehearsal),
            trigger_set: trigger_set.clone(),
            rules: rules.clone(),
            ..job.report(outcome, receipt_id, checks)
        };
        if !job.opts.confirm {
            tx.rollback().await?;
            return Ok(report(PushOutcome::WouldApply, None, (None, None)));
        }
        crate::db::postgres::tx::computing(&tx, || job.progress.step("committing"));
        if !crate::interrupt::enter_commit() {
            return Err(crate::interrupt::interrupted_before_commit(
                "nothing was written",
            ));
        }
        crate::db::postgres::tx::commit_or_say(
            tx,
            "the push",
            "nothing was written",
            &format!(
                "Run `{}` again: it says \"Already applied\" if it did, and applies it if it did \
                 not",
                crate::advice::push_confirm(&job.opts.snapshot, job.plan, &job.opts.run_flags())
            ),
        )
        .await?;
        // Committed: from here on nothing may turn into an error, or the user
        // would not learn the receipt id of a push that is in the database.
        let unrecorded = record_receipt(
            job.snapshot,
            &receipt.id,
            job.diff,
            job.opts.target.redacted(),
            "applied",
        )
        .err();
        Ok(report(
            PushOutcome::Applied,
            Some(receipt.id.clone()),
            unrecorded_receipt(unrecorded),
        ))
    }
}

/// The options of a rollback of `receipt_id` that this push runs or
/// judges by: its own flags.
fn rollback_options(
    job: &PushJob<'_>,
    receipt_id: &str,
) -> crate::db::postgres::rollback::RollbackOptions {
    crate::db::postgres::rollback::RollbackOptions {
        target: job.opts.target.clone(),
        receipt_id: receipt_id.to_string(),
        confirm: job.opts.confirm,
        lock_timeout_ms: job.opts.lock_timeout_ms,
        statement_timeout_ms: job.opts.statement_timeout_ms,
        // The receipt's own allowed writes (the plan's and --allow-writes)
        // are the rollback's too.
        allow_writes: vec![],
        allow_external_effects: job.opts.allow_external_effects,
        strict: job.opts.strict,
        // Nothing of the app's is discarded on the push's behalf.
        discard_changes: vec![],
        break_functions: vec![],
    }
}

/// Rehearses the push's rollback in its transaction, under a savepoint it
/// rolls back to before COMMIT: the very steps `sandbox rollback` runs
/// ([`crate::db::postgres::rollback::undo_in`]), on the receipt just written. A
/// rollback that would be refused — a trigger that raises on the undo's
/// deletes or re-inserts or rewrites what it writes back, a constraint the
/// undo breaks, a missing privilege, a side effect of the undo — refuses the
/// push (exit 1) with the rollback's own reason and checks, unless
/// --allow-irreversible, when it is reported instead.
async fn rehearse_undo(
    tx: &Transaction<'_>,
    job: &PushJob<'_>,
    receipt: &Receipt,
    push_checks: &[Check],
) -> Result<UndoRehearsal> {
    job.progress
        .step("rehearsing the rollback of this push in its transaction");
    let started = Instant::now();
    let opts = rollback_options(job, &receipt.id);
    // The undo's write accounting counts from the savepoint, not from the
    // push's start: both in one round trip.
    tx.batch_execute(&format!(
        "SAVEPOINT sandbox_undo_rehearsal; {}",
        crate::db::writes::record_start_sql()
    ))
    .await
    .context("cannot open a savepoint to rehearse the rollback")?;
    let undone = crate::db::postgres::rollback::rehearse_in_push(
        tx,
        &opts,
        &receipt.undo,
        &receipt.read_back,
    )
    .await;
    tx.batch_execute("ROLLBACK TO SAVEPOINT sandbox_undo_rehearsal")
        .await
        .context("cannot roll back to the savepoint after rehearsing the rollback")?;
    let millis = started.elapsed().as_millis() as u64;
    let rehearsed = |c: Check| Check {
        phase: format!("rollback rehearsal ({})", c.phase),
        ..c
    };
    let (refused, checks) = match undone {
        Ok(report) => {
            return Ok(UndoRehearsal {
                checks: report.checks.into_iter().map(rehearsed).collect(),
                refused: None,
                not_rehearsed: report.not_rehearsed,
                needs_consent: report.needs_consent,
                consent_tables: report.needs_consent_tables,
                millis,
            })
        }
        // Another session held a lock or row the undo needed: that says
        // nothing about whether the push can be rolled back, so it is not
        // refused as irreversible but as a lock wait, to retry.
        Err(e) if crate::error::is_lock_wait(&e) => {
            return Err(crate::error::lock_refused(lock_refusal_in_rehearsal(
                &crate::error::failure_of(&e)
                    .map_or_else(|| format!("{e:#}"), |f| f.message.clone()),
                if job.opts.confirm {
                    "nothing was written"
                } else {
                    "preflight: nothing was written"
                },
            )))
        }
        Err(e) => match crate::db::postgres::definer::row_security_in(tx, &e).await {
            // Row-level security met by the undo's statements, or inside
            // a function they fire: named as for the push's own writes
            // (Q2), from the catalog in this transaction, back at the
            // savepoint; not Postgres's bare message.
            Some(met) => (format!("Postgres refused the undo: {}", met.said()), vec![]),
            None => match crate::error::failure_of(&e) {
                Some(f) if f.kind != crate::error::Kind::Environment => (
                    f.message.clone(),
                    f.checks.iter().cloned().map(rehearsed).collect::<Vec<_>>(),
                ),
                // Postgres refused a statement of the undo that the rollback
                // does not name (a constraint, an exclusion): refused all the same.
                _ if e.chain().any(|c| {
                    c.downcast_ref::<tokio_postgres::Error>()
                        .is_some_and(|pg| pg.as_db_error().is_some())
                }) =>
                {
                    let steps = crate::db::pg_error::steps(&e);
                    let said =
                        crate::db::pg_error::said(&e, &[]).unwrap_or_else(|| format!("{e:#}"));
                    (
                        if steps.is_empty() {
                            format!("Postgres refused the undo: {said}")
                        } else {
                            format!("Postgres refused the undo: {steps}: {said}")
                        },
                        vec![],
                    )
                }
                _ => return Err(e),
            },
        },
    };
    if job.opts.allow_irreversible {
        return Ok(UndoRehearsal {
            checks,
            refused: Some(refused),
            not_rehearsed: vec![],
            needs_consent: vec![],
            consent_tables: vec![],
            millis,
        });
    }
    let mut all = push_checks.to_vec();
    all.extend(checks);
    Err(refuse(
        format!(
            "refusing to push: its rollback, rehearsed in the push's transaction before COMMIT, \
             would be refused — {refused}. The push was rolled back, {}. Remove what blocks the \
             undo, or pass --allow-irreversible to push anyway, knowing `sandbox rollback` will \
             refuse this receipt",
            if job.opts.confirm {
                "nothing was written"
            } else {
                "preflight: nothing was written"
            }
        ),
        all,
    ))
}

/// A lock wait of the rehearsed undo, as the push's refusal: `inner` (the
/// lock step's own refusal) already says "Nothing was written; retry
/// when …" with its own hints (`--lock-timeout`), so that is said once.
fn lock_refusal_in_rehearsal(inner: &str, nothing: &str) -> String {
    let inner = inner.trim_end_matches('.');
    let tail = if inner.to_lowercase().contains("retry") {
        String::new()
    } else {
        format!(". The push was rolled back, {nothing}; retry when that session is done")
    };
    format!(
        "refusing to push: the rehearsal of its rollback, in the push's transaction before \
         COMMIT, could not take a lock it needs — {inner}{tail}"
    )
}

/// The tables the diff writes, and whether it updates rows in them.
fn written_tables(diff: &Diff) -> Vec<WrittenTable> {
    diff.tables
        .iter()
        .map(|t| WrittenTable {
            name: t.table.clone(),
            updates: !t.phase_updates.is_empty(),
        })
        .collect()
}

/// What applying the diff left: the checks on Postgres, the state each
/// written table must have, and what Postgres chose for the columns the
/// plan left to it.
struct Applied {
    checks: Vec<Check>,
    expected: Vec<StagedTable>,
    filled: Vec<FilledValues>,
    sequences: Vec<SequenceAdvance>,
    /// Columns BEFORE triggers set in rows the push wrote (see
    /// [`PushReport::trigger_set`]).
    trigger_set: Vec<String>,
    /// What the read-back of the written tables found.
    read_back: ReadBack,
}

/// How many differing rows a failed after-apply comparison names.
const MISMATCHED_ROWS_SHOWN: usize = 3;

/// A value for a message: NULL, or quoted; a long one is cut to a window
/// starting a little before character `from` (where two values part).
fn value_summary(v: &Option<String>, from: usize) -> String {
    const LONG: usize = 60;
    let Some(s) = v else {
        return "NULL".into();
    };
    let n = s.chars().count();
    if n <= LONG {
        return format!("'{}'", s.escape_debug());
    }
    let start = from.saturating_sub(10).min(n.saturating_sub(LONG));
    format!(
        "'{}{}{}' ({n} characters)",
        if start > 0 { "…" } else { "" },
        s.chars()
            .skip(start)
            .take(LONG)
            .collect::<String>()
            .escape_debug(),
        if start + LONG < n { "…" } else { "" }
    )
}

/// The rehearsed and the Postgres value of a column, each summarised
/// around the first character where they differ.
fn value_pair_summary(rehearsed: &Option<String>, postgres: &Option<String>) -> (String, String) {
    let from = match (rehearsed, postgres) {
        (Some(a), Some(b)) => a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count(),
        _ => 0,
    };
    (
        value_summary(rehearsed, from),
        value_summary(postgres, from),
    )
}

/// A row of `t` by its key ([`crate::types::row_label`]), for messages.
fn key_text(t: &TableDiff, row: &[Option<String>]) -> String {
    let values: Vec<Option<&str>> = t
        .key
        .iter()
        .map(|k| {
            t.columns
                .iter()
                .position(|c| &c.name == k)
                .and_then(|i| row.get(i))
                .and_then(|v| v.as_deref())
        })
        .collect();
    crate::types::row_label(&t.key, values)
}

/// The writes the diff makes, exactly, per `schema.table`: the rows it
/// inserts and updates, and the receipt.
fn planned_writes(diff: &Diff) -> BTreeMap<String, TableWrites> {
    let mut out = BTreeMap::new();
    for t in &diff.tables {
        let name = format!("public.{}", t.table);
        out.insert(
            name.clone(),
            TableWrites {
                table: name,
                // Each phase's writes: a row inserted in one phase and
                // updated (or deleted) in a later one counts in both.
                inserted: t.phase_inserts.len() as i64,
                updated: t.phase_updates.len() as i64,
                deleted: t.phase_deletes.len() as i64,
                written_by: vec![],
            },
        );
    }
    out.insert(
        "sandbox.receipts".into(),
        TableWrites {
            table: "sandbox.receipts".into(),
            inserted: 1,
            updated: 0,
            deleted: 0,
            written_by: vec![],
        },
    );
    out
}

fn counts(diff: &Diff, before: &BTreeMap<String, u64>) -> Vec<TableCount> {
    diff.tables
        .iter()
        .map(|t| {
            let b = before.get(&t.table).copied().unwrap_or(0);
            TableCount {
                table: t.table.clone(),
                before: b,
                after: (b + t.inserts.len() as u64).saturating_sub(t.deletes.len() as u64),
                inserted: t.inserts.len() as u64,
                updated: t.updates.len() as u64,
                deleted: t.deletes.len() as u64,
            }
        })
        .collect()
}

/// Keeps a copy of the receipt in the snapshot file, next to the rehearsal
/// it came from.
/// The report's `local_record_error` and `local_record_fix` for the
/// error of [`record_receipt`], if any.
fn unrecorded_receipt(err: Option<anyhow::Error>) -> (Option<String>, Option<String>) {
    let Some(e) = err else {
        return (None, None);
    };
    let (why, fix) = crate::db::sqlite::why_unrecorded(&e);
    (Some(why), Some(fix.to_string()))
}

pub fn record_receipt(
    snapshot: &Snapshot,
    receipt_id: &str,
    diff: &Diff,
    database: &str,
    status: &str,
) -> Result<()> {
    // SQLite's error stays in the chain: what to do depends on it
    // (`db::sqlite::why_unwritable`).
    let committed_but = |e: rusqlite::Error| {
        anyhow::Error::new(e).context(format!(
            "the push committed (receipt {receipt_id}) but the snapshot file could not record it"
        ))
    };
    snapshot
        .conn
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS _sandbox_receipts (
               receipt_id TEXT PRIMARY KEY, diff_hash TEXT NOT NULL, rehearsal_id INTEGER NOT NULL,
               database TEXT NOT NULL, recorded_at TEXT NOT NULL, status TEXT NOT NULL, \
               rolled_back_at TEXT, inserted INTEGER, updated INTEGER, deleted INTEGER)",
        )
        .map_err(committed_but)?;
    // A file an older sandbox wrote has the table without the counts.
    for column in ["inserted", "updated", "deleted"] {
        crate::db::sqlite::add_receipts_column(&snapshot.conn, column, "INTEGER")
            .map_err(committed_but)?;
    }
    let total = |rows: fn(&crate::diff::TableDiff) -> usize| {
        diff.tables.iter().map(rows).sum::<usize>() as i64
    };
    snapshot
        .conn
        .execute(
            "INSERT INTO _sandbox_receipts (receipt_id, diff_hash, rehearsal_id, database, \
               recorded_at, status, inserted, updated, deleted) \
             VALUES (?, ?, ?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00', ?, ?, ?, ?) \
             ON CONFLICT (receipt_id) DO UPDATE SET status = excluded.status, \
               inserted = excluded.inserted, updated = excluded.updated, \
               deleted = excluded.deleted",
            rusqlite::params![
                receipt_id,
                diff.hash,
                diff.rehearsal_id,
                database,
                status,
                total(|t| t.inserts.len()),
                total(|t| t.updates.len()),
                total(|t| t.deletes.len()),
            ],
        )
        .map_err(committed_but)?;
    Ok(())
}

#[cfg(test)]
mod value_summary_tests {
    use super::{lock_refusal_in_rehearsal, value_pair_summary};

    #[test]
    fn a_lock_wait_of_the_rehearsed_undo_says_nothing_was_written_once() {
        let inner = "could not lock public.tasks (ACCESS EXCLUSIVE): another session holds them. \
                     Nothing was written; retry when it is done, or raise --lock-timeout";
        let said = lock_refusal_in_rehearsal(inner, "nothing was written");
        assert_eq!(said.matches("retry").count(), 1, "{said}");
        assert_eq!(
            said.to_lowercase().matches("nothing was").count(),
            1,
            "{said}"
        );
        assert!(said.ends_with("or raise --lock-timeout"), "{said}");
        // An inner refusal without the advice gets it once.
        let said = lock_refusal_in_rehearsal(
            "Postgres refused deleting rows of workflows: lock timeout",
            "preflight: nothing was written",
        );
        assert!(
            said.ends_with(
                "The push was rolled back, preflight: nothing was written; retry when \
                            that session is done"
            ),
            "{said}"
        );
    }

    #[test]
    fn long_values_are_cut_around_where_they_differ() {
        let same = "a".repeat(100);
        let (r, p) = value_pair_summary(&Some(format!("{same}x")), &Some(format!("{same}Y")));
        assert!(r.ends_with("x' (101 characters)"), "{r}");
        assert!(p.starts_with("'…aaa") && p.contains("Y'"), "{p}");
        assert_eq!(
            value_pair_summary(&None, &Some("it's\n".into())),
            ("NULL".to_string(), "'it\\'s\\n'".to_string())
        );
    }
}
