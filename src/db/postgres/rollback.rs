//! The undo of one receipt inside a transaction — delete the rows it
//! inserted by key, restore the values it overwrote, drop what it created,
//! after proving nothing changed them since. `ops::rollback` runs it and
//! commits; `ops::push` runs it under a savepoint before its own COMMIT, so
//! both ops share this one rule without depending on each other.
//! Never the seed plan's `DELETE … LIKE` statements.

use anyhow::{Context, Result};
use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::TableMeta;
use crate::db::ddl::{comment_writes, ddl_check, transaction_ddl, OwnDdl};
use crate::db::dependents::{
    functions_using_dropped, objects_depending, row_type_dependents, rows_referencing, Cascaded,
    PushedRows,
};
use crate::db::effects::{
    external_effects_check, guarded_settings_check, Effects, ExternalEffect,
    GUARDED_SETTINGS_SWITCHED,
};
use crate::db::foreign::{foreign_write_check, ForeignTable, ForeignWrites};
use crate::db::postgres::apply::{cast_spelling, ROW_NUMBER};
use crate::db::postgres::copy::{for_each_remote_line_keyed, remote_checksum_with};
use crate::db::postgres::digest::{describe_row_changes, remote_row_hashes};
use crate::db::postgres::rowlock::{RowLock, RowLockMode};
use crate::db::postgres::rowset::RowSet;
use crate::db::postgres::search_path::{pin_sql, TypeSpellings, AS_THE_APP};
use crate::db::postgres::sequences::{SequenceDrawn, SequenceRestore};
use crate::db::postgres::state::{ReadBack, TableSum};
use crate::db::postgres::tx::LockMode;
use crate::db::postgres::tx::{
    lock_tables, lock_tables_and_rows, replaced_since, table_oids, TablesGone, TablesReplaced,
};
use crate::db::postgres::undo::{drop_order, referenced_by_dropped, DropOrder};
use crate::db::postgres::Target;
use crate::db::privileges::privilege_check;
use crate::db::triggers::{receipt_triggers, undo_rules_check, TriggerReport, WrittenTable};
use crate::db::writes::{
    account, beyond_inherited_check, cascading_keys, rollback_allowance, storage_check,
    transaction_writes, TableWrites,
};
use crate::error::refused as refuse;
use crate::plan::checks::{failed_summaries, Check, CheckKind};
use crate::receipt::{AddedColumn, TableState, Undo, UndoTable};
use crate::types::quote_ident;
use crate::types::short_hash as short;

mod added;
mod apply;
mod needs;
mod rows;
use added::without_gone_columns;
use apply::{added_columns_of, undo_changes, UndoInputs};
use needs::rollback_needs;
use rows::{
    meta_of, receipt_key_positions, restored_values, rows_check, shown, AppChange, UnwrittenRead,
    WrittenRows,
};

pub struct RollbackOptions {
    pub target: Target,
    pub receipt_id: String,
    pub confirm: bool,
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// Tables a side effect of the undo may write, any kind of write. The
    /// tables the push was allowed to write, the undo may only insert
    /// into without being named here (see `db::writes::rollback_allowance`).
    pub allow_writes: Vec<String>,
    /// Undo even though a trigger that fires for the undo calls what a
    /// rollback of this transaction does not undo (see `db::effects`).
    pub allow_external_effects: bool,
    /// Today's rule for users who freeze the app: every table the receipt
    /// recorded must equal, after the undo, its state before the push;
    /// whole tables the push wrote must be unchanged since it.
    pub strict: bool,
    /// `table.column` (or `table.*`): changes the app made since the push
    /// to rows the push wrote, in that column, that the undo may discard —
    /// a row the push inserted is deleted with it, a value it wrote is put
    /// back as before the push. Each one discarded is reported and recorded
    /// in the receipt; any other change still refuses.
    pub discard_changes: Vec<String>,
    /// `schema.name(argument types)`: app functions whose bodies use a
    /// table or column the rollback drops, that the user lets it drop
    /// anyway, leaving them broken (listed and recorded in the receipt).
    /// Any other such function still refuses.
    pub break_functions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub receipt_id: String,
    pub confirmed: bool,
    /// The receipt was rolled back before: nothing was done.
    pub already_rolled_back: bool,
    pub deleted: Vec<(String, u64)>,
    /// Rows the push's own side effect wrote (a trigger's history rows),
    /// deleted with the pushed rows they reference through an `ON DELETE
    /// CASCADE` foreign key: part of the undo (the receipt's
    /// `own_referencing`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cascaded: Vec<Cascaded>,
    pub restored: Vec<(String, u64)>,
    /// Rows the push deleted, inserted again, per table.
    pub reinserted: Vec<(String, u64)>,
    pub dropped_tables: Vec<String>,
    pub dropped_columns: Vec<String>,
    pub checks: Vec<Check>,
    /// Allowed writes to tables outside the receipt (an audit trigger).
    pub side_effects: Vec<TableWrites>,
    /// Every trigger on the tables the undo writes, and what it did.
    pub triggers: Vec<TriggerReport>,
    /// The sequences the push moved: moved back, or left where the app
    /// drew from them since.
    pub sequences: Vec<SequenceRestore>,
    /// In a dry run: the sequences that handed out values while its
    /// transaction was open (triggers firing for the undo, or the app), for
    /// good — a draw is never rolled back.
    pub sequences_drawn: Vec<SequenceDrawn>,
    /// The database's foreign tables (writes there are not counted).
    pub foreign_tables: Vec<ForeignTable>,
    /// Triggers and rules that name a foreign table the user allowed.
    pub foreign_writes_allowed: Vec<String>,
    /// Calls outside the transaction (allowed) or at COMMIT only, in the
    /// functions that fire for the undo.
    pub external_effects: Vec<ExternalEffect>,
    /// Rows the push wrote that the app has deleted since: already undone,
    /// so left as they are (and recorded in the receipt).
    pub already_gone: Vec<String>,
    /// Changes the app made since the push to rows the push wrote, that
    /// the undo discards (`--discard-changes`): table, row, column, the
    /// value as pushed and the app's (recorded in the receipt).
    pub discarded: Vec<String>,
    /// App functions whose bodies use a table or column the rollback
    /// dropped, dropped anyway (`--break-function`): each with what it
    /// uses (recorded in the receipt).
    pub broken_functions: Vec<String>,
    /// Triggers the receipt holds off that are no longer on their table
    /// under that name (the app dropped or renamed them since the push):
    /// nothing to hold off, each said for a person.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_off_gone: Vec<String>,
    /// In the push's rehearsal only: the undo was checked but not run,
    /// because what fires for it acts outside the transaction (a dblink
    /// call, an HTTP request, a file) and no savepoint would undo that —
    /// each such call, named. Empty when the undo was rehearsed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_rehearsed: Vec<String>,
    /// In the push's rehearsal only: what `sandbox rollback` would refuse
    /// for want of its own `--allow-writes` (the push's allowance covers
    /// the undo's inserts only), each with the flag that allows it; the
    /// rest of the rehearsal ran as under that flag. Empty when the
    /// rollback needs no consent of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs_consent: Vec<String>,
    /// Comments the app put on what the undo drops, after the push: they
    /// go with it (`comment on table public.tasks, added after the push,
    /// goes with the table`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_comments: Vec<String>,
    /// A receipt before undo format 6 records the tables the push created
    /// by name only: said, as the rollback cannot prove a table of that
    /// name is still the push's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_name_only: Option<String>,
    /// Likewise a receipt before undo format 7 for the columns the push
    /// added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_by_name_only: Option<String>,
    /// The tables (`schema.table`) whose `--allow-writes` that consent is.
    #[serde(skip)]
    pub needs_consent_tables: Vec<String>,
    pub millis: u64,
}

/// Whether an undo is the rollback itself or its rehearsal inside the
/// push's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rollback,
    /// Inside the push's transaction, under a savepoint the push rolls back
    /// to: everything the rollback would do and check, but sequences, which
    /// no savepoint restores (`setval` is not transactional), are left
    /// where the push put them.
    RehearsalInPush,
}

/// Everything `sandbox rollback` does to undo `undo` in `tx` — privileges,
/// locks, "unchanged since the push", nothing referencing what goes, the
/// triggers that fire, the undo itself, the rows read back, the write
/// accounting — refusing by name as the rollback would. The caller commits
/// or rolls back; on an error `tx` (or its savepoint) must be rolled back.
/// The push runs it under a savepoint ([`Mode::RehearsalInPush`]) so that a
/// push whose rollback would be refused is found before its COMMIT: one
/// rule for both, not a copy of it.
pub async fn undo_in(
    tx: &tokio_postgres::Transaction<'_>,
    opts: &RollbackOptions,
    undo: &Undo,
    mode: Mode,
) -> Result<RollbackReport> {
    undo_after_read_back(tx, opts, undo, mode, &NOTHING_READ_BACK).await
}

/// Nothing read back: every table is read.
static NOTHING_READ_BACK: ReadBack = ReadBack::new();

/// [`undo_in`] as the push rehearses it ([`Mode::RehearsalInPush`]), in
/// its transaction right after it read its written tables back and found
/// them equal to the receipt's after-images (`read_back`): "unchanged
/// since the push" holds for those without reading them a second time
/// (a whole table's checksum equal to the after-image's is every row the
/// push wrote as it left it). Everything else is read and checked as the
/// rollback does.
pub async fn rehearse_in_push(
    tx: &tokio_postgres::Transaction<'_>,
    opts: &RollbackOptions,
    undo: &Undo,
    read_back: &ReadBack,
) -> Result<RollbackReport> {
    undo_after_read_back(tx, opts, undo, Mode::RehearsalInPush, read_back).await
}

/// [`undo_in`], taking "unchanged since the push" for the tables in
/// `read_back` whose checksum is their after-image's (see
/// [`rehearse_in_push`]).
async fn undo_after_read_back(
    tx: &tokio_postgres::Transaction<'_>,
    opts: &RollbackOptions,
    undo: &Undo,
    mode: Mode,
    read_back: &ReadBack,
) -> Result<RollbackReport> {
    let r = Rollback {
        tx,
        opts,
        undo,
        read_back,
        nothing: match (mode, opts.confirm) {
            (Mode::RehearsalInPush, _) => "nothing was kept (a rehearsal)",
            (Mode::Rollback, true) => "nothing was changed",
            (Mode::Rollback, false) => "dry run: nothing was changed",
        },
        mode,
        exclusive: &[],
    };
    // Privileges first, before any lock.
    // With them, in the same round trip: what a DROP of the undo will lock
    // besides the dropped tables (see `lock_written_tables`).
    // And the oid of every table the lock step locks, to prove after it
    // that the tables locked are the ones read (see
    // `Rollback::replaced_at_the_lock_step`). Inside the push, its own
    // locks are held already: nothing can be replaced.
    let may_lock = match mode {
        Mode::Rollback => lock_step_tables(undo, opts.strict),
        Mode::RehearsalInPush => vec![],
    };
    let (privileges, dropped_since, columns_dropped_since, referenced, read_before_lock) = futures_util::join!(
        r.privileges(),
        r.created_tables_now(),
        r.added_columns_now(),
        referenced_by_dropped(tx, &undo.created_tables, &undo.added_columns),
        table_oids(tx, &may_lock),
    );
    let mut checks = vec![privileges?];
    // A table the push created that the app dropped since is undone
    // already: the rest of the rollback works without it (locking or
    // reading it would end in a raw "does not exist"). So is a column it
    // added that the app dropped.
    let dropped_since = dropped_since?;
    let columns_dropped_since = columns_dropped_since?;
    let remaining = without_gone_tables(undo, &dropped_since);
    let remaining = if columns_dropped_since.is_empty() {
        remaining
    } else {
        std::borrow::Cow::Owned(without_gone_columns(&remaining, &columns_dropped_since))
    };
    let undo = &*remaining;
    let r = Rollback { undo, ..r };
    let exclusive = r.lock_written_tables(referenced?).await?;
    let r = Rollback {
        exclusive: &exclusive,
        ..r
    };
    if mode == Mode::Rollback && !undo.created_tables.is_empty() {
        // Under the locks nothing can drop, move or recreate them any
        // more: proven once again, now for good (the first look, before
        // any lock, could be overtaken).
        r.created_tables_now().await?;
    }
    if mode == Mode::Rollback && !undo.added_columns.is_empty() {
        // Likewise the columns it added (dropped, renamed, added again).
        r.added_columns_now().await?;
    }
    // Under the locks, every read before the undo is pipelined (a few round
    // trips in all, not one or two per table and check); each answer is
    // judged in the order the checks have always run, so a refusal names
    // the same first reason. The columns are checked first on the server
    // too: the rows read after them name those columns.
    let written = r.written();
    let allowed = r.allowed();
    // The undo's DDL decides the event triggers that fire for it.
    let commands = crate::db::event_triggers::undo_commands(undo);
    // Of the tables read before the lock step, those still in the undo
    // (not dropped since): whether each is still the one read travels
    // with these reads.
    let still_undone = lock_step_tables(undo, opts.strict);
    let locked: Vec<(String, Option<u32>)> = read_before_lock?
        .into_iter()
        .filter(|(t, _)| still_undone.contains(t))
        .collect();
    let (columns, unchanged, triggers_read, effects_read, comments, replaced) = futures_util::join!(
        r.columns_as_pushed(),
        r.unchanged_since_push_read(),
        receipt_triggers(tx, &written, &undo.held_off_triggers, &commands),
        Effects::read(tx, &written, &allowed, &commands),
        r.comments_going(),
        replaced_since(tx, &locked),
    );
    r.replaced_at_the_lock_step(replaced?)?;
    let (columns, app_columns) = columns?;
    checks.push(columns);
    let (gone, discarded, as_left) = r.unchanged_since_push(
        &mut checks,
        unchanged,
        triggers_read.as_ref().ok().map(|(t, _, _)| t.as_slice()),
    )?;
    // What the app deleted is undone already: the rest of the rollback
    // works from the receipt without those rows. What it changed and the
    // user lets the undo discard is undone from where the app left it.
    let undo = &with_discarded(without_gone_rows(undo, &gone), &discarded);
    let r = Rollback { undo, ..r };
    // Without those rows the undo may no longer update a table: what fires
    // for it is read again for what is left (rare: the app deleted every
    // row the push updated there).
    let remaining = r.written();
    let (triggers_read, effects_read) = if remaining == written {
        (triggers_read, effects_read)
    } else {
        futures_util::join!(
            receipt_triggers(tx, &remaining, &undo.held_off_triggers, &commands),
            Effects::read(tx, &remaining, &allowed, &commands),
        )
    };
    let effects = effects_read?;
    let pushed = pushed_keys(undo);
    let (app_data, added, references, rules, foreign, order) = futures_util::join!(
        r.app_columns_hold_nothing_lost(&app_columns, &pushed),
        r.added_columns_hold_only_pushed_values(),
        r.nothing_references(&pushed),
        r.rules(&pushed),
        r.foreign_writes(&effects),
        drop_order(tx, undo),
    );
    let (app_data, app_data_discarded) = app_data?;
    checks.push(app_data);
    checks.push(added?);
    let (references, broken_functions, cascaded) = references?;
    checks.push(references);
    checks.push(rules?);
    let (triggers, trigger_check, held_off_gone) = r.triggers(triggers_read)?;
    checks.push(trigger_check);
    // The push's rehearsal must not perform what a savepoint cannot take
    // back (the rollback itself checks it as always: refused unless the
    // user allows it).
    let outside: Vec<String> = effects
        .external()
        .into_iter()
        .filter(|e| e.outside_transaction)
        .map(|e| e.description)
        .collect();
    if mode == Mode::Rollback || outside.is_empty() {
        checks.push(r.external_effects(&effects)?);
    }
    checks.push(r.refuse_unless_ok(
        guarded_settings_check("preflight", &effects),
        GUARDED_SETTINGS_SWITCHED,
    )?);
    let foreign = foreign?;
    checks.push(foreign.check);
    let mut report = RollbackReport::new(opts, checks, triggers.clone());
    if mode == Mode::Rollback && !undo.created_tables.is_empty() && undo.created_identity.is_none()
    {
        report.created_by_name_only = Some(format!(
            "receipt {} (undo format {}) records the tables the push created by name only: {} \
             are taken to be the push's tables as named (a table the app dropped and created \
             again under the same name since cannot be told apart)",
            opts.receipt_id,
            undo.format,
            undo.created_tables
                .iter()
                .map(|t| format!("public.{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if mode == Mode::Rollback && !undo.added_columns.is_empty() && undo.added_identity.is_none() {
        report.added_by_name_only = Some(format!(
            "receipt {} (undo format {}) records the columns the push added by name only: {} \
             are taken to be the push's columns as named (a column the app dropped and added \
             again under the same name since cannot be told apart)",
            opts.receipt_id,
            undo.format,
            undo.added_columns
                .iter()
                .map(|a| format!("public.{}.{}", a.table, a.column))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    report.already_gone = dropped_since
        .iter()
        .map(|t| format!("table {t} (the push created it; dropped since, so already undone)"))
        .chain(columns_dropped_since.iter().map(|a| {
            format!(
                "column {}.{} (the push added it; dropped since, so already undone)",
                a.table, a.column
            )
        }))
        .chain(gone.iter().map(GoneRow::describe))
        .collect();
    report.discarded = discarded
        .iter()
        .map(|c| {
            format!(
                "{} — discarded (--discard-changes {})",
                c.describe(),
                c.discarded_by(&opts.discard_changes).unwrap_or_default()
            )
        })
        .chain(app_data_discarded)
        .collect();
    report.broken_functions = broken_functions;
    report.held_off_gone = held_off_gone;
    report.cascaded = cascaded;
    report.dropped_comments = comments?;
    report.foreign_tables = foreign.tables;
    report.foreign_writes_allowed = foreign.allowed;
    report.external_effects = effects.external();
    if mode == Mode::RehearsalInPush && !outside.is_empty() {
        // Everything up to the undo was checked; the undo itself would
        // fire those calls for real.
        report.not_rehearsed = outside;
        return Ok(report);
    }
    let drop_last = r.undo(order?, &pushed, &triggers, &mut report).await?;
    r.undone_rows_check(&triggers, &as_left, &mut report.checks)
        .await?;
    if opts.strict {
        r.equal_to_before_push(&mut report.checks).await?;
    }
    // The receipt says which of its rows were gone before the undo (the
    // undo left them as the app did) and which changes of the app the undo
    // discarded; sent with the read of what the last DROPs lock and the
    // guarded settings read again after the undo's row writes (one round
    // trip).
    let mut noted = serde_json::Map::new();
    if !report.already_gone.is_empty() {
        noted.insert("already_gone".into(), report.already_gone.clone().into());
    }
    if !report.discarded.is_empty() {
        noted.insert("discarded".into(), report.discarded.clone().into());
    }
    if !report.broken_functions.is_empty() {
        noted.insert(
            "broken_functions".into(),
            report.broken_functions.clone().into(),
        );
    }
    let noted_json = serde_json::Value::Object(noted).to_string();
    let marking = [
        (&opts.receipt_id, tokio_postgres::types::Type::TEXT),
        (&noted_json, tokio_postgres::types::Type::TEXT),
    ];
    let marking = marking.map(|(v, t)| (v as &(dyn tokio_postgres::types::ToSql + Sync), t));
    let (held, marked, referenced) = futures_util::join!(
        r.settings_held("the undo's row writes"),
        tx.query_typed(
            "UPDATE sandbox.receipts SET status = 'rolled_back', rolled_back_at = now(), \
             undo = undo || $2::text::jsonb WHERE id = $1::text::uuid",
            &marking,
        ),
        referenced_by_dropped(tx, &undo.created_tables, &drop_last),
    );
    held?;
    marked?;
    // Last, right before COMMIT (or the push's ROLLBACK TO SAVEPOINT): the
    // DDL whose ACCESS EXCLUSIVE locks make the app's readers of these
    // tables (and of the tables their foreign keys reference) wait. The
    // checks above do not need it: they name their columns. Only the write
    // accounting follows: it must see what the DROPs' event triggers wrote.
    r.drop_locked(&drop_last, &undo.created_tables, referenced?, &mut report)
        .await?;
    // Right before COMMIT, pipelined with the accounting (its queries only
    // read): the DROPs' event triggers and the receipt's UPDATE ran since
    // the read after the row writes. A switched setting is the cause of
    // what the accounting would miss, so it is reported first.
    let (held, accounted) = futures_util::join!(
        r.settings_held("the undo's DDL and the receipt update, before COMMIT"),
        r.account_writes(&mut report, &effects, &triggers)
    );
    held?;
    accounted?;
    if let Some(refusal) = r.refusal_after_undo(&report) {
        return Err(refuse(refusal, report.checks));
    }
    Ok(report)
}

/// How many of the rows a push wrote are still there, for a push that
/// finds its diff applied (see [`pushed_writes_as_left`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushedRowsNow {
    /// Rows the push inserted.
    pub inserted: usize,
    /// Of them, still there (under their key, in their table).
    pub inserted_left: usize,
    /// Of those, changed since.
    pub inserted_changed: usize,
    /// Rows the push updated (and did not insert), likewise.
    pub updated: usize,
    pub updated_left: usize,
    pub updated_changed: usize,
    /// Rows of tables whose key column is gone since: not counted above
    /// (they cannot be found by key).
    pub not_compared: usize,
    /// Rows of tables gone under their name that the receipt cannot find
    /// (no oid recorded, or moved out of `public`): not counted above
    /// (renamed, they are still there; dropped, they are not).
    pub table_gone: usize,
}

/// What [`pushed_writes_as_left`] found.
#[derive(Debug, Clone, Default)]
pub struct AsLeft {
    pub checks: Vec<Check>,
    /// One line each: a table or column of the push gone since, a row
    /// the app changed (once, however many of its columns), the pushed
    /// rows of a table it deleted.
    pub changed: Vec<String>,
    pub rows: PushedRowsNow,
}

/// Whether what the push of `undo` wrote is still as it left it, for a
/// push that finds its diff's receipt applied ("Already applied"): the
/// rows it inserted, whole, and the columns it updated, as the rollback
/// compares them ([`Rollback::pushed_rows_check`]); rows it deleted are
/// not read. The app's writes to other rows of the same tables, or rows
/// it added to a table the push created, are no concern: the push is
/// applied all the same (the receipt committed with it). Rows of the push
/// the app deleted since are counted, not refused. With `opts.strict`,
/// every written table whole. Reads only; refuses nothing.
///
/// `gone` (read with the receipt) names the tables and columns of the
/// push the app dropped or renamed since: those are drift too, named, and
/// not read — a table that is not there is not read at all (but a table
/// the push created that the app renamed in `public`, found by the oid
/// the receipt recorded, is read under its new name); of a table
/// that lost a column, the rest is read, and its rows are compared in the
/// columns still there (the receipt's fingerprint of a whole row covers
/// the lost one, so an inserted row's other columns cannot be compared).
pub async fn pushed_writes_as_left(
    tx: &tokio_postgres::Transaction<'_>,
    opts: &RollbackOptions,
    undo: &Undo,
    gone: &crate::db::postgres::receipts::GoneSincePush,
) -> Result<AsLeft> {
    let r = Rollback {
        tx,
        opts,
        undo,
        read_back: &NOTHING_READ_BACK,
        nothing: "nothing was written",
        mode: Mode::Rollback,
        exclusive: &[],
    };
    let mut found = AsLeft::default();
    for t in &undo.tables {
        let Some(after) = undo.after.get(&t.table) else {
            continue;
        };
        let keys = PushedKeys::of(t);
        let name = format!("{} rows the push wrote as it left them", t.table);
        let not_read = |actual: String, line: String, found: &mut AsLeft| {
            let mut check = Check::equal(
                "already applied",
                &name,
                CheckKind::Integrity,
                format!("{} as pushed", crate::words::rows(keys.count())),
                actual,
            );
            check.ok = false;
            check.row_count = 1;
            check.rows = vec![line.clone()];
            found.changed.push(line);
            found.checks.push(check);
        };
        // Where the table's rows are read: under its name, or where the
        // table the push created is now (found by the oid its receipt
        // recorded) when the app renamed it in `public`.
        let mut read_as = t.table.clone();
        if let Some(g) = gone.table(&t.table) {
            let in_public = g.now.as_deref().and_then(|now| now.strip_prefix("public."));
            match (&g.now, in_public, t.created && g.identified) {
                (Some(now), Some(renamed), _) => {
                    let line = format!(
                        "table public.{} that the push created was renamed since: it is now \
                         {now} (its rows are read there)",
                        t.table
                    );
                    found.changed.push(line.clone());
                    let mut check = Check::equal(
                        "already applied",
                        &format!("{} still under its name", t.table),
                        CheckKind::Integrity,
                        format!("public.{}", t.table),
                        now.clone(),
                    );
                    check.ok = false;
                    check.rows = vec![line];
                    check.row_count = 1;
                    found.checks.push(check);
                    read_as = renamed.to_string();
                }
                (Some(now), None, _) => {
                    // Moved to another schema: the rows are read in
                    // `public` only; counted apart, not called gone.
                    found.rows.table_gone += keys.count();
                    not_read(
                        "table moved since".into(),
                        format!(
                            "table public.{} that the push created was moved since: it is now \
                             {now}{}",
                            t.table,
                            not_counted_there(keys.count())
                        ),
                        &mut found,
                    );
                    continue;
                }
                (None, _, true) => {
                    // Its recorded oid names nothing: dropped, with its rows.
                    found
                        .rows
                        .add(&keys, None, &std::collections::BTreeSet::new());
                    not_read(
                        "table gone since".into(),
                        format!(
                            "table public.{} that the push created was dropped since{}",
                            t.table,
                            with_its_rows(keys.count())
                        ),
                        &mut found,
                    );
                    continue;
                }
                (None, _, false) => {
                    // No oid recorded (a table the push only wrote, or a
                    // receipt before format 6): renamed or dropped cannot
                    // be told, so its rows are counted apart, not gone.
                    found.rows.table_gone += keys.count();
                    not_read(
                        "table gone since".into(),
                        format!(
                            "table public.{} that the push {} is gone since (renamed or \
                             dropped){}",
                            t.table,
                            if t.created { "created" } else { "wrote" },
                            not_counted_there(keys.count())
                        ),
                        &mut found,
                    );
                    continue;
                }
            }
        }
        let lost: Vec<&str> = gone.columns_of(&t.table).collect();
        found.changed.extend(lost.iter().map(|c| {
            format!(
                "column {c} of public.{} that the push wrote is gone since (renamed or dropped)",
                t.table
            )
        }));
        if t.key.iter().any(|k| lost.contains(&k.as_str())) {
            // The rows cannot be found by key: counted apart, not compared.
            found.rows.not_compared += keys.count();
            not_read(
                "its key gone since".into(),
                format!(
                    "the {} the push wrote into {} are not compared: its key ({}) names a column \
                     gone since",
                    crate::words::rows(keys.count()),
                    t.table,
                    t.key.join(", ")
                ),
                &mut found,
            );
            continue;
        }
        if opts.strict && !lost.is_empty() {
            // A whole table's checksum covers the lost column: nothing
            // to compare it with.
            found.rows.not_compared += keys.count();
            let mut check = Check::equal(
                "already applied",
                &format!("{} as the push left it", t.table),
                CheckKind::Guard,
                "as the push left it".into(),
                format!("column {} gone since", lost.join(", ")),
            );
            check.ok = false;
            found.checks.push(check);
            continue;
        }
        let table;
        let t = if lost.is_empty() {
            t
        } else {
            table = without_lost_columns(t, &lost);
            &table
        };
        let meta = meta_of(&read_as, t.columns.clone(), &t.key);
        if opts.strict {
            let check = r
                .state_check(
                    &meta,
                    after,
                    "already applied",
                    &format!("{} as the push left it", t.table),
                    CheckKind::Guard,
                    true,
                )
                .await?;
            if !check.ok {
                if check.rows.is_empty() {
                    found.changed.push(format!(
                        "{}: expected {}, found {}",
                        check.name, check.expected, check.actual
                    ));
                }
                found.changed.extend(check.rows.iter().cloned());
            }
            found.checks.push(check);
            continue;
        }
        let (written, mut changes, deleted, rekeyed, _) =
            r.pushed_rows_check(t, &meta, after).await?;
        // Not under its key any more, like a deleted row, but there.
        let moved: Vec<String> = rekeyed
            .iter()
            .map(|m| {
                format!(
                    "row {} the push wrote into {} is under key {} now (re-keyed by the app)",
                    m.old, m.table, m.new
                )
            })
            .collect();
        let moved_keys: Vec<String> = rekeyed.into_iter().map(|m| m.old).collect();
        if !lost.is_empty() {
            // The fingerprint of the row as pushed covers the lost column:
            // every row would differ from it.
            changes.retain(|c| c.column.is_some());
        }
        let changed_keys: std::collections::BTreeSet<&str> =
            changes.iter().map(|c| c.key.as_str()).collect();
        let not_under_key: Vec<String> = deleted.iter().chain(&moved_keys).cloned().collect();
        found.rows.add(&keys, Some(&not_under_key), &changed_keys);
        let (mut check, _) = rows_check(&t.table, written, changes.clone(), &[], &[]);
        check.phase = "already applied".into();
        check.name = name.clone();
        // One line a row, however many of its columns changed.
        let mut lines: Vec<String> = changed_keys
            .iter()
            .filter_map(|key| {
                let of_row: Vec<&AppChange> = changes.iter().filter(|c| c.key == *key).collect();
                AppChange::describe_row(&of_row)
            })
            .collect();
        lines.sort();
        check.row_count = lines.len() as u64;
        if lines.len() > 10 {
            let more = lines.len() - 10;
            lines.truncate(10);
            lines.push(format!("… and {more} more"));
        }
        check.rows = lines;
        check.actual = format!(
            "{} as pushed",
            crate::words::rows(written.saturating_sub(changed_keys.len() + not_under_key.len()))
        );
        if !lost.is_empty() {
            // Not as the push left it, whatever the rows say.
            check.ok = false;
            check.actual = format!("{}, column {} gone since", check.actual, lost.join(", "));
        }
        if !deleted.is_empty() {
            check.actual = format!("{}, {} deleted since", check.actual, deleted.len());
            found.changed.push(format!(
                "{} the push wrote into {} deleted since: {}{}",
                if deleted.len() == written {
                    format!("all {} rows", deleted.len())
                } else {
                    format!("{} of the rows", deleted.len())
                },
                t.table,
                deleted
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if deleted.len() > 10 { ", …" } else { "" }
            ));
        }
        if !moved.is_empty() {
            check.ok = false;
            check.actual = format!("{}, {} re-keyed since", check.actual, moved.len());
            check.row_count += moved.len() as u64;
            check.rows.extend(moved);
        }
        found.changed.extend(check.rows.iter().cloned());
        found.checks.push(check);
    }
    Ok(found)
}

/// The tables [`Rollback::lock_written_tables`] locks by name from the
/// receipt: those the push wrote, created or added columns to, and with
/// `strict` every table it recorded before the push. (The tables a DROP
/// locks through a foreign key are neither written nor read by the undo.)
fn lock_step_tables(undo: &Undo, strict: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let strict_tables = undo.before.keys().filter(|_| strict);
    for t in undo
        .tables
        .iter()
        .map(|t| &t.table)
        .chain(&undo.created_tables)
        .chain(undo.added_columns.iter().map(|a| &a.table))
        .chain(strict_tables)
    {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

/// The rows the push wrote into a table it cannot find, not counted.
fn not_counted_there(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; the row the push wrote there is not counted".into(),
        n => format!("; the {n} rows the push wrote there are not counted"),
    }
}

/// What the undo does with `column` of `t` by name, when it needs the
/// column as the receipt recorded it (its type too): the key it finds the
/// push's rows by, the rows the push deleted that it inserts again whole,
/// the values the push overwrote that it writes back (before-images).
/// None: it only reads the column with the rows it compares. `added`: the
/// columns the push added there (dropped, not restored).
fn column_use(t: &UndoTable, added: &[&str], column: &str) -> Option<&'static str> {
    if t.key.iter().any(|k| k == column) {
        Some("the undo finds the push's rows there by this key")
    } else if !t.deleted_rows.is_empty() {
        Some(
            "the undo inserts the rows the push deleted there again whole, from the receipt's \
             before-images",
        )
    } else if !added.contains(&column)
        && t.updates
            .iter()
            .any(|u| u.changes.iter().any(|c| c.column == column))
    {
        Some(
            "the undo writes back the values the push overwrote in this column, from the \
             receipt's before-images",
        )
    } else {
        None
    }
}

/// What went with a table gone since: the rows the push wrote there.
fn with_its_rows(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => " (and the row the push wrote there with it)".into(),
        n => format!(" (and the {n} rows the push wrote there with it)"),
    }
}

/// `t` without the columns in `lost`: what of its record can still be
/// read and compared. Updates keep only the changes of columns still
/// there.
fn without_lost_columns(t: &UndoTable, lost: &[&str]) -> UndoTable {
    let mut t = t.clone();
    t.columns.retain(|c| !lost.contains(&c.name.as_str()));
    for u in &mut t.updates {
        u.changes.retain(|c| !lost.contains(&c.column.as_str()));
    }
    t
}

/// The rows of one table a receipt says its push wrote, by
/// [`crate::types::row_key`]: inserted, and updated only.
struct PushedKeys {
    inserted: std::collections::BTreeSet<String>,
    updated: std::collections::BTreeSet<String>,
}

impl PushedKeys {
    fn of(t: &UndoTable) -> PushedKeys {
        let inserted: std::collections::BTreeSet<String> = t
            .inserted_keys
            .iter()
            .map(|k| crate::types::row_key(k.iter().map(|v| v.as_deref())))
            .collect();
        let updated = t
            .updates
            .iter()
            .map(|u| crate::types::row_key(u.key.iter().map(|v| Some(v.as_str()))))
            .filter(|k| !inserted.contains(k))
            .collect();
        PushedKeys { inserted, updated }
    }

    fn count(&self) -> usize {
        self.inserted.len() + self.updated.len()
    }
}

impl PushedRowsNow {
    /// Counts one table's rows: `keys` the push wrote, of which `deleted`
    /// are gone (None: the table is, with all of them) and `changed`
    /// changed since.
    fn add(
        &mut self,
        keys: &PushedKeys,
        deleted: Option<&[String]>,
        changed: &std::collections::BTreeSet<&str>,
    ) {
        let deleted: Option<std::collections::BTreeSet<&str>> =
            deleted.map(|d| d.iter().map(String::as_str).collect());
        let left = |set: &std::collections::BTreeSet<String>| match &deleted {
            None => 0,
            Some(d) => set.iter().filter(|k| !d.contains(k.as_str())).count(),
        };
        let changed_in = |set: &std::collections::BTreeSet<String>| {
            set.iter().filter(|k| changed.contains(k.as_str())).count()
        };
        self.inserted += keys.inserted.len();
        self.inserted_left += left(&keys.inserted);
        self.inserted_changed += changed_in(&keys.inserted);
        self.updated += keys.updated.len();
        self.updated_left += left(&keys.updated);
        self.updated_changed += changed_in(&keys.updated);
    }
}

impl RollbackReport {
    /// A report of nothing undone yet.
    pub(crate) fn new(
        opts: &RollbackOptions,
        checks: Vec<Check>,
        triggers: Vec<TriggerReport>,
    ) -> RollbackReport {
        RollbackReport {
            receipt_id: opts.receipt_id.clone(),
            confirmed: opts.confirm,
            already_rolled_back: false,
            deleted: vec![],
            cascaded: vec![],
            restored: vec![],
            reinserted: vec![],
            dropped_tables: vec![],
            dropped_columns: vec![],
            checks,
            side_effects: vec![],
            triggers,
            sequences: vec![],
            sequences_drawn: vec![],
            foreign_tables: vec![],
            foreign_writes_allowed: vec![],
            external_effects: vec![],
            already_gone: vec![],
            discarded: vec![],
            broken_functions: vec![],
            held_off_gone: vec![],
            not_rehearsed: vec![],
            needs_consent: vec![],
            created_by_name_only: None,
            added_by_name_only: None,
            dropped_comments: vec![],
            needs_consent_tables: vec![],
            millis: 0,
        }
    }
}

/// What the steps of one rollback share: its transaction, options and the
/// receipt's undo record.
struct Rollback<'a, 't> {
    tx: &'a tokio_postgres::Transaction<'t>,
    opts: &'a RollbackOptions,
    undo: &'a Undo,
    /// Tables this transaction read back whole just before (the push's
    /// rehearsal): their checksums, not a second read, answer "unchanged
    /// since the push".
    read_back: &'a ReadBack,
    /// How a refusal ends: what it left unchanged.
    nothing: &'static str,
    mode: Mode,
    /// The tables the lock step took in ACCESS EXCLUSIVE mode (see
    /// `lock_written_tables`): the DROPs need not ask again.
    exclusive: &'a [String],
}

impl Rollback<'_, '_> {
    /// A refusal of this receipt's rollback.
    /// The refusal when what the receipt identifies (a created table, an
    /// added column) is not what stands under its name now: one failed
    /// integrity check listing each `refusals` line.
    fn not_the_pushed_objects(
        &self,
        name: &str,
        expected: &str,
        refusals: &[String],
    ) -> anyhow::Error {
        let mut check = Check::equal(
            "before undo",
            name,
            CheckKind::Integrity,
            expected.into(),
            format!("{} not", refusals.len()),
        );
        check.row_count = refusals.len() as u64;
        check.rows = refusals.to_vec();
        self.refuse(
            format!("{}; {}", refusals.join("; "), self.nothing),
            vec![check],
        )
    }

    /// Refuses when a trigger or event trigger the undo fired switched
    /// session_replication_role (or track_counts) inside the transaction:
    /// Postgres then skipped the app's triggers and foreign keys for the
    /// rest of it (see `tx::guarded_settings_still_held`).
    async fn settings_held(&self, after: &str) -> Result<()> {
        crate::db::postgres::tx::refuse_unless_settings_held(self.tx, after, |found| {
            format!("{}: {found}; {}", self.refusing(), self.nothing)
        })
        .await
    }

    fn refuse(&self, why: String, checks: Vec<Check>) -> anyhow::Error {
        refuse(format!("{}: {why}", self.refusing()), checks)
    }

    /// How a refusal starts: the receipt of a rollback; for a rehearsal in
    /// the push, whose receipt is not committed yet, the rollback as such.
    fn refusing(&self) -> String {
        match self.mode {
            Mode::Rollback => format!("refusing to roll back receipt {}", self.opts.receipt_id),
            Mode::RehearsalInPush => "`sandbox rollback` would refuse".to_string(),
        }
    }

    async fn privileges(&self) -> Result<Check> {
        let privileges = privilege_check(
            self.tx,
            "privileges",
            &rollback_needs(self.undo, self.opts.strict),
        )
        .await?;
        self.refuse_unless_ok(
            privileges,
            "the role the rollback runs as lacks privileges it needs",
        )
    }

    /// A table the lock step asked for that no longer has its name
    /// ([`TablesGone`]: dropped or renamed since the push, often while the
    /// rollback waited for it): refused naming it, with what to do, which
    /// depends on whether the push created it (the next rollback takes a
    /// dropped one for undone already, see `created_tables_now`) or only
    /// wrote it (its undo needs it back under its name). Any other error
    /// is returned as it is.
    fn gone_at_the_lock_step(&self, e: anyhow::Error) -> anyhow::Error {
        let Some(gone) = e.downcast_ref::<TablesGone>() else {
            return e;
        };
        let created = |t: &String| self.undo.created_tables.contains(t);
        let named: Vec<String> = gone
            .tables
            .iter()
            .map(|t| {
                if created(t) {
                    format!("{t} (created by the push)")
                } else {
                    t.clone()
                }
            })
            .collect();
        let checks = gone
            .tables
            .iter()
            .map(|t| {
                Check::equal(
                    "before undo",
                    &format!("{t} still exists"),
                    CheckKind::Integrity,
                    "present".into(),
                    "missing".into(),
                )
            })
            .collect();
        let mut todo = vec![format!(
            "If it was renamed, rename it back (ALTER TABLE … RENAME TO {}) and run the rollback again",
            gone.tables.join(" / ")
        )];
        if gone.tables.iter().any(created) {
            todo.push(
                "a table the push created that was dropped counts as undone: run the rollback \
                 again and it goes on without it"
                    .into(),
            );
        }
        if !gone.tables.iter().all(created) {
            todo.push(
                "a table the push wrote that was dropped took the push's rows with it: the \
                 rollback cannot restore it"
                    .into(),
            );
        }
        self.refuse(
            format!(
                "{}; {}. {}",
                TablesGone { tables: named }.described("the push"),
                self.nothing,
                todo.join("; ")
            ),
            checks,
        )
    }

    /// A table the lock step locked that is not the one read before it
    /// ([`TablesReplaced`]: another table under its name since, often made
    /// while the rollback waited for it): refused naming it, nothing
    /// changed. The undo works by name: run again, the rollback's checks
    /// read the table there now ("unchanged since the push" among them)
    /// and judge it.
    fn replaced_at_the_lock_step(&self, replaced: TablesReplaced) -> Result<()> {
        if replaced.tables.is_empty() {
            return Ok(());
        }
        Err(self.refuse(
            format!(
                "{}; {}. Run the rollback again to check what is there now",
                replaced.described("the preflight"),
                self.nothing,
            ),
            replaced.checks("before undo"),
        ))
    }

    /// `check` when it holds; else the rollback is refused with it: `why`,
    /// the rows the check names, and that nothing was changed.
    fn refuse_unless_ok(&self, check: Check, why: &str) -> Result<Check> {
        if check.ok {
            return Ok(check);
        }
        Err(self.refuse(
            format!("{why} ({}); {}", check.rows.join("; "), self.nothing),
            vec![check],
        ))
    }

    /// The tables the push created that no longer exist (the app dropped
    /// them), in the receipt's order — after proving that each one still
    /// there under its name is the very table the push created (its
    /// `pg_class.oid`, recorded at the push's COMMIT): a table the app
    /// dropped and created again under the same name, or the push's table
    /// moved or renamed, refuses the rollback by name (nothing changed)
    /// instead of being dropped, or called dropped. A receipt before
    /// format 6 recorded no identity: then only the names are looked up,
    /// and [`RollbackReport::created_by_name_only`] says so.
    async fn created_tables_now(&self) -> Result<Vec<String>> {
        let created = &self.undo.created_tables;
        if created.is_empty() {
            return Ok(vec![]);
        }
        let names: Vec<String> = created
            .iter()
            .map(|t| format!("public.{}", quote_ident(t)))
            .collect();
        let recorded: Vec<Option<i64>> = created
            .iter()
            .map(|t| {
                self.undo
                    .created_identity
                    .as_ref()
                    .and_then(|ids| ids.iter().find(|i| &i.table == t))
                    .map(|i| i64::from(i.oid))
            })
            .collect();
        // Per table: the oid its name holds now, where the recorded oid is
        // now (a table of any schema and name), and the columns of the
        // table holding the name now.
        let rows = self
            .tx
            .query_typed(
                "SELECT t.qualified, pg_catalog.to_regclass(t.qualified)::oid::int8, \
                        (SELECT n.nspname::text || '.' || c.relname::text \
                         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                         WHERE c.oid = t.recorded::oid AND c.relkind IN ('r', 'p')), \
                        (SELECT coalesce(pg_catalog.array_agg(a.attname::text || ' ' \
                                  || pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum), '{}') \
                         FROM pg_catalog.pg_attribute a \
                         WHERE a.attrelid = pg_catalog.to_regclass(t.qualified) AND a.attnum > 0 \
                           AND NOT a.attisdropped) \
                 FROM unnest($1::text[], $2::int8[]) t(qualified, recorded)",
                &[
                    (&names, tokio_postgres::types::Type::TEXT_ARRAY),
                    (&recorded, tokio_postgres::types::Type::INT8_ARRAY),
                ],
            )
            .await
            .context("cannot look up the tables the push created")?;
        let mut gone = Vec::new();
        let mut refusals = Vec::new();
        for (table, row) in created.iter().zip(&rows) {
            let now: Option<i64> = row.get(1);
            let recorded_at: Option<String> = row.get(2);
            let columns_now: Vec<String> = row.get(3);
            let identity = self
                .undo
                .created_identity
                .as_ref()
                .and_then(|ids| ids.iter().find(|i| &i.table == table));
            let Some(identity) = identity else {
                // No identity recorded: by name only.
                if now.is_none() {
                    gone.push(table.clone());
                }
                continue;
            };
            let oid = i64::from(identity.oid);
            let plain = format!("public.{table}");
            match (now, recorded_at) {
                (Some(now), _) if now == oid => {}
                (None, None) => gone.push(table.clone()),
                (now, Some(at)) => refusals.push(format!(
                    "{plain} (created by this push) is now {at}{} — the rollback does not follow it \
                     there; to roll back, put it back as {plain}",
                    now.map(|n| format!(
                        ", and {plain} is another table (oid {n}, columns {})",
                        columns_now.join(", ")
                    ))
                    .unwrap_or_default()
                )),
                // The push's table is nowhere (its oid names nothing): it
                // was dropped, or the whole database was restored from a
                // dump, which gives every table a new oid. Either way this
                // one cannot be told to be the push's.
                (Some(now), None) => refusals.push(format!(
                    "{plain} is not the table this push created (oid {oid} then, {now} now; {}) — \
                     the push's table was dropped since and this one made under its name, or \
                     the database was restored from a dump (which gives every table a new oid); \
                     the rollback cannot tell it is the push's, so it does not drop it. If it is \
                     the push's and its rows may go, drop it yourself",
                    columns_compared(&identity.columns, &columns_now)
                )),
            }
        }
        if refusals.is_empty() {
            return Ok(gone);
        }
        Err(self.not_the_pushed_objects(
            "the tables the push created are the ones there now",
            "as created",
            &refusals,
        ))
    }

    /// The comments on what the undo drops — the created tables, their
    /// columns and what Postgres drops with them (keys, indexes, owned
    /// sequences …), the added columns and what goes with them — each as
    /// `comment on … , added after the push, goes with the table` (or
    /// column). The push makes no comment (its DDL check would refuse one),
    /// so each is the app's, written since; the DROP removes it, and the
    /// write accounting counts those deletions as the undo's own. Read
    /// under the rollback's locks, which `COMMENT ON` waits for.
    async fn comments_going(&self) -> Result<Vec<String>> {
        let undo = self.undo;
        let tables: Vec<String> = undo
            .created_tables
            .iter()
            .map(|t| format!("public.{}", quote_ident(t)))
            .collect();
        let (column_tables, columns): (Vec<String>, Vec<String>) = undo
            .added_columns
            .iter()
            .map(|a| {
                (
                    format!("public.{}", quote_ident(&a.table)),
                    a.column.clone(),
                )
            })
            .unzip();
        if tables.is_empty() && columns.is_empty() {
            return Ok(vec![]);
        }
        use tokio_postgres::types::Type;
        let rows = self
            .tx
            .query_typed(
                "WITH RECURSIVE going(classid, objid, objsubid, seed) AS ( \
                   SELECT * FROM ( \
                     SELECT 'pg_catalog.pg_class'::regclass::oid, c.oid, 0, 'table' \
                     FROM unnest($1::text[]) t(q) JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.q) \
                     UNION ALL \
                     SELECT 'pg_catalog.pg_class'::regclass::oid, a.attrelid, a.attnum::int, 'column' \
                     FROM unnest($2::text[], $3::text[]) x(q, col) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(x.q) \
                      AND a.attname = x.col AND NOT a.attisdropped) seeds \
                   UNION \
                   SELECT d.classid, d.objid, d.objsubid, g.seed FROM pg_catalog.pg_depend d \
                   JOIN going g ON d.refclassid = g.classid AND d.refobjid = g.objid \
                    AND (g.objsubid = 0 OR d.refobjsubid = g.objsubid) AND d.deptype IN ('a', 'i')) \
                 SELECT 'comment on ' || o.type || ' ' || o.identity, \
                        (SELECT g.seed FROM going g WHERE g.classid = de.classoid AND g.objid = de.objoid \
                           AND (g.objsubid = 0 OR g.objsubid = de.objsubid) ORDER BY g.seed DESC LIMIT 1) \
                 FROM pg_catalog.pg_description de, \
                      pg_catalog.pg_identify_object(de.classoid, de.objoid, de.objsubid) o \
                 WHERE EXISTS (SELECT 1 FROM going g WHERE g.classid = de.classoid AND g.objid = de.objoid \
                                 AND (g.objsubid = 0 OR g.objsubid = de.objsubid)) \
                 ORDER BY 1",
                &[
                    (&tables, Type::TEXT_ARRAY),
                    (&column_tables, Type::TEXT_ARRAY),
                    (&columns, Type::TEXT_ARRAY),
                ],
            )
            .await
            .context("reading the comments on what the rollback drops")?;
        Ok(rows
            .iter()
            .map(|r| {
                let what: String = r.get(0);
                let seed: Option<String> = r.get(1);
                format!(
                    "{what}, added after the push, goes with the {}",
                    seed.unwrap_or_else(|| "table".into())
                )
            })
            .collect())
    }

    /// Takes, in one lock step, every table lock the undo will need: SHARE
    /// ROW EXCLUSIVE on the tables the push wrote, against other writers
    /// (the app's tables stay unlocked; all pulled tables SHARE with
    /// --strict), and ACCESS EXCLUSIVE on what its DROPs lock: the tables it
    /// drops or drops a column of, and `referenced`, the tables their
    /// foreign keys reference (see `referenced_by_dropped`). Returns the
    /// tables taken in ACCESS EXCLUSIVE mode.
    ///
    /// The exclusive locks were asked for last, right before the DROPs, so
    /// that readers of those tables waited for the DDL only; but then the
    /// rollback upgraded its locks mid-transaction: an app transaction that
    /// read `workflows` (which DROP TABLE tasks locks, through tasks'
    /// foreign key) and then wrote `jtbd_library` (held by the rollback)
    /// held what the DROP needed while waiting for the rollback, and
    /// neither could go on (V12: every rollback beside such an app was
    /// refused). Held from the lock step, no such transaction can begin
    /// while the rollback holds the others; readers of those tables wait
    /// for the whole rollback instead, as they do for a push (V11).
    async fn lock_written_tables(&self, referenced: Vec<String>) -> Result<Vec<String>> {
        let undo = self.undo;
        let written_tables: Vec<String> = undo
            .tables
            .iter()
            .map(|t| t.table.clone())
            .chain(undo.created_tables.iter().cloned())
            .collect();
        let mut exclusive: Vec<String> = undo
            .created_tables
            .iter()
            .chain(undo.added_columns.iter().map(|a| &a.table))
            .chain(referenced.iter())
            .cloned()
            .collect();
        exclusive.sort();
        exclusive.dedup();
        let mut locks: Vec<(String, LockMode)> = exclusive
            .iter()
            .map(|t| (t.clone(), LockMode::AccessExclusive))
            .chain(
                written_tables
                    .iter()
                    .map(|t| (t.clone(), LockMode::ShareRowExclusive)),
            )
            .collect();
        if self.opts.strict {
            locks.extend(
                undo.before
                    .keys()
                    .filter(|t| !written_tables.contains(t))
                    .map(|t| (t.clone(), LockMode::Share)),
            );
        }
        // With them, the rows the undo deletes or restores (see `rowlock`):
        // a session holding one is waited for in the same attempts and
        // named. Keys of rows the app deleted since lock nothing.
        let mut rows = Vec::new();
        for t in undo.tables.iter().filter(|t| !t.created) {
            if !t.inserted_keys.is_empty() {
                rows.push(RowLock::new(
                    &t.table,
                    &t.key,
                    &t.key_types,
                    &t.inserted_keys,
                    RowLockMode::Update,
                ));
            }
            let restored: Vec<Vec<Option<String>>> =
                crate::diff::without_columns(&t.updates, &added_columns_of(undo, &t.table))
                    .iter()
                    .map(|u| u.key.iter().cloned().map(Some).collect())
                    .collect();
            if !restored.is_empty() {
                rows.push(RowLock::new(
                    &t.table,
                    &t.key,
                    &t.key_types,
                    &restored,
                    RowLockMode::NoKeyUpdate,
                ));
            }
        }
        lock_tables_and_rows(self.tx, &locks, &rows, self.opts.lock_timeout_ms)
            .await
            .map_err(|e| self.gone_at_the_lock_step(e))?;
        Ok(exclusive)
    }

    /// The tables the push wrote still have the columns its receipt
    /// recorded: the undo reads and writes them by name, so a column the
    /// app dropped or renamed since would otherwise surface as a raw error
    /// halfway. A column's type matters only where the undo needs it as
    /// recorded ([`column_use`]: keys, rows it inserts again, values it
    /// writes back); elsewhere the rows are compared as text. Columns the
    /// app added are no concern (the undo names its columns).
    async fn columns_as_pushed(&self) -> Result<(Check, Vec<(String, String)>)> {
        let tables: Vec<&str> = self.undo.tables.iter().map(|t| t.table.as_str()).collect();
        let rows = self
            .tx
            // Typed: one round trip, no prepare.
            .query_typed(
                "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) \
                 AND a.attnum > 0 AND NOT a.attisdropped",
                &[(&tables, tokio_postgres::types::Type::TEXT_ARRAY)],
            )
            .await
            .context("reading the columns of the tables the push wrote")?;
        let now: std::collections::BTreeSet<(String, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let mut changed = Vec::new();
        // Columns the app added since, in the receipt's table order.
        let extra: Vec<(String, String)> = self
            .undo
            .tables
            .iter()
            .flat_map(|t| {
                let mut cols: Vec<&str> = now
                    .iter()
                    .filter(|(table, column, _)| {
                        table == &t.table && !t.columns.iter().any(|c| &c.name == column)
                    })
                    .map(|(_, column, _)| column.as_str())
                    .collect();
                cols.sort();
                cols.into_iter()
                    .map(|c| (t.table.clone(), c.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for t in &self.undo.tables {
            // Types of the columns the plan declared are spelled as its DDL
            // spells them (`timestamptz`), not as Postgres prints them: only
            // pulled columns carry the catalog's own spelling to compare.
            let declared = added_columns_of(self.undo, &t.table);
            if !now.iter().any(|(table, _, _)| table == &t.table) {
                changed.push(format!("{} no longer exists", t.table));
                continue;
            }
            for c in &t.columns {
                let used = column_use(t, &declared, &c.name);
                match now
                    .iter()
                    .find(|(table, column, _)| table == &t.table && column == &c.name)
                {
                    // Every read of the rows names every recorded column.
                    None => changed.push(format!(
                        "{} has lost column {}, and {}",
                        t.table,
                        c.name,
                        used.unwrap_or(if t.created {
                            "the rollback reads the rows of the table the push created whole, to \
                             prove them unchanged before it drops the table"
                        } else {
                            "the rollback reads the rows the push wrote there whole, to prove \
                             them unchanged since the push"
                        })
                    )),
                    // A column the undo neither finds rows by nor writes
                    // may change type: the rows are compared as text with
                    // the receipt's (a change of their text is a change of
                    // the rows, refused as such).
                    Some((_, _, pg_type))
                        if !t.created
                            && !declared.contains(&c.name.as_str())
                            && pg_type != &c.pg_type =>
                    {
                        if let Some(used) = used {
                            changed.push(format!(
                                "{}.{} is now {pg_type} (the push recorded {}), and {used}",
                                t.table, c.name, c.pg_type
                            ))
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        let mut check = Check::equal(
            "before undo",
            "the written tables have the columns the receipt recorded",
            CheckKind::Integrity,
            "as recorded".into(),
            if changed.is_empty() {
                "as recorded".into()
            } else {
                format!("{} columns changed", changed.len())
            },
        );
        if changed.is_empty() {
            return Ok((check, extra));
        }
        check.row_count = changed.len() as u64;
        check.rows = changed.clone();
        Err(self.refuse(
            format!(
                "the tables changed shape since the push — {}. Put the columns back as they \
                 were at the push (or undo the app's schema change) and roll back again; {}",
                changed.join("; "),
                self.nothing
            ),
            vec![check],
        ))
    }

    /// What the push wrote must still be as it left it: in a table it
    /// created, every row (dropping it drops them all); in an existing table,
    /// the rows it inserted or updated (the app's other rows are not ours to
    /// judge; with --strict, the whole table). Refuses with `checks` when
    /// anything changed.
    /// Rows the push wrote that the app has deleted since are no change
    /// that undoing would discard — the push's write is undone already —
    /// and are returned, to be left out of the undo. With --strict a
    /// deleted row is a change like any other.
    /// `read` is [`Self::unchanged_since_push_read`]'s answer; `triggers`
    /// the triggers on the written tables, when read (a change of
    /// updated_at names the proven stamp that likely made it).
    /// A change the user lets the undo discard (`--discard-changes`) does
    /// not refuse: it is returned, to be undone from where the app left it.
    fn unchanged_since_push(
        &self,
        checks: &mut Vec<Check>,
        read: Result<Vec<TableRead>>,
        triggers: Option<&[TriggerReport]>,
    ) -> Result<(Vec<GoneRow>, Vec<AppChange>, AsLeftBeforeUndo)> {
        let mut gone = Vec::new();
        let mut discarded = Vec::new();
        let mut as_left = AsLeftBeforeUndo::new();
        // What would let the undo discard the changes that refuse it.
        let mut flags = std::collections::BTreeSet::new();
        // Pushed rows the app re-keyed: refused before anything else.
        let mut rekeyed: Vec<Rekeyed> = Vec::new();
        for mut t in read? {
            gone.extend(t.gone);
            as_left.insert(t.table.clone(), t.as_left.take());
            let moved = std::mem::take(&mut t.rekeyed);
            let check = match t.whole {
                Some(check) => check,
                None => {
                    let stamps: Vec<String> = triggers
                        .unwrap_or_default()
                        .iter()
                        .filter(|tr| tr.table == t.table && tr.stamps_updated_at)
                        .map(|tr| format!("{}.{}", tr.table, tr.name))
                        .collect();
                    flags.extend(
                        t.changes
                            .iter()
                            .filter(|c| c.discarded_by(&self.opts.discard_changes).is_none())
                            .map(AppChange::flag_value),
                    );
                    let (check, d) = rows_check(
                        &t.table,
                        t.written,
                        t.changes,
                        &self.opts.discard_changes,
                        &stamps,
                    );
                    discarded.extend(d);
                    check
                }
            };
            checks.push(check);
            if !moved.is_empty() {
                checks.push(Check::no_rows(
                    "before undo",
                    &format!(
                        "{} rows the push wrote are under their keys, or gone",
                        t.table
                    ),
                    CheckKind::Integrity,
                    moved
                        .iter()
                        .map(|r| format!("row {} is under key {} now", r.old, r.new))
                        .collect(),
                ));
            }
            rekeyed.extend(moved);
        }
        if !rekeyed.is_empty() {
            return Err(self.refuse(
                format!(
                    "{}; {}",
                    rekeyed
                        .iter()
                        .map(Rekeyed::describe)
                        .collect::<Vec<_>>()
                        .join("; "),
                    self.nothing
                ),
                std::mem::take(checks),
            ));
        }
        if checks.iter().any(|c| !c.ok) {
            let changed: Vec<String> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{} ({} now: {})", c.name, c.actual, c.rows.join(", ")))
                .collect();
            let escape = if flags.is_empty() || self.mode == Mode::RehearsalInPush {
                String::new()
            } else {
                format!(
                    ". To undo the push anyway and discard them, add {} (each change discarded is \
                     listed and recorded in the receipt); or put the values back as the push left \
                     them and roll back again",
                    flags
                        .iter()
                        .map(|f| format!("--discard-changes {f}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            };
            return Err(self.refuse(
                format!(
                    "tables changed since the push — {}. Undoing now would discard those \
                     changes{escape}; {}",
                    changed.join("; "),
                    self.nothing
                ),
                std::mem::take(checks),
            ));
        }
        Ok((gone, discarded, as_left))
    }

    /// What [`Self::unchanged_since_push`] judges, per table of the
    /// receipt. One table's reads do not wait for another's: all tables at
    /// once (pipelined on the connection), in the receipt's order.
    async fn unchanged_since_push_read(&self) -> Result<Vec<TableRead>> {
        futures_util::future::join_all(self.undo.tables.iter().map(|t| self.unchanged_table(t)))
            .await
            .into_iter()
            .filter_map(Result::transpose)
            .collect()
    }

    /// [`Self::unchanged_since_push_read`] for one table of the receipt
    /// (None: no after-image).
    async fn unchanged_table(&self, t: &UndoTable) -> Result<Option<TableRead>> {
        let Some(after) = self.undo.after.get(&t.table) else {
            return Ok(None);
        };
        let meta = meta_of(&t.table, t.columns.clone(), &t.key);
        if let Some(sum) = self
            .read_back
            .get(&t.table)
            .filter(|s| s.checksum == after.checksum)
        {
            let check = self.as_read_back(t, &meta, after, sum)?;
            return Ok(Some(TableRead::whole(&t.table, check, Vec::new())));
        }
        if t.created && !self.opts.strict {
            let (check, deleted) = self.created_table_check(&meta, after).await?;
            let gone = deleted
                .into_iter()
                .map(|key| GoneRow {
                    table: t.table.clone(),
                    key,
                    how: "the push created the table and inserted it",
                })
                .collect();
            return Ok(Some(TableRead::whole(&t.table, check, gone)));
        }
        if t.created || self.opts.strict {
            let check = self
                .state_check(
                    &meta,
                    after,
                    "before undo",
                    &format!("{} unchanged since the push", t.table),
                    CheckKind::Integrity,
                    true,
                )
                .await?;
            return Ok(Some(TableRead::whole(&t.table, check, Vec::new())));
        }
        let (written, changes, deleted, rekeyed, as_left) =
            self.pushed_rows_check(t, &meta, after).await?;
        let gone = deleted
            .into_iter()
            .map(|key| GoneRow {
                how: if t
                    .inserted_keys
                    .iter()
                    .any(|k| crate::types::row_key(k.iter().map(|v| v.as_deref())) == key)
                {
                    "the push inserted it"
                } else {
                    UPDATED
                },
                table: t.table.clone(),
                key,
            })
            .collect();
        Ok(Some(TableRead {
            table: t.table.clone(),
            whole: None,
            written,
            changes,
            gone,
            rekeyed,
            as_left: Some(as_left),
        }))
    }

    /// The check [`Self::unchanged_table`] passes for a table read back
    /// whole, in this transaction, equal to its after-image: the same check
    /// its read would pass, without reading it again.
    fn as_read_back(
        &self,
        t: &UndoTable,
        meta: &TableMeta,
        after: &TableState,
        sum: &TableSum,
    ) -> Result<Check> {
        if t.created || self.opts.strict {
            let mut c = Check::equal(
                "before undo",
                &format!("{} unchanged since the push", t.table),
                CheckKind::Integrity,
                format!("{} rows, {}", after.rows, short(&after.checksum)),
                format!("{} rows, {}", sum.rows, short(&sum.checksum)),
            );
            c.ok = true;
            return Ok(c);
        }
        let written = WrittenRows::of(t, meta, self.undo)?.count();
        Ok(rows_check(&t.table, written, Vec::new(), &[], &[]).0)
    }

    /// A table the push created is dropped whole by the undo, so it must
    /// hold nothing but the push's rows as the push left them: no row added
    /// or changed since. Rows deleted since are returned (dropping the
    /// table loses none of the app's data for them).
    async fn created_table_check(
        &self,
        meta: &TableMeta,
        after: &TableState,
    ) -> Result<(Check, Vec<String>)> {
        let name = format!("{} unchanged since the push", meta.name);
        let mut c = self
            .state_check(
                meta,
                after,
                "before undo",
                &name,
                CheckKind::Integrity,
                false,
            )
            .await?;
        if c.ok || after.row_hashes.is_empty() {
            return Ok((c, vec![]));
        }
        let now = remote_row_hashes(self.tx, meta).await?;
        let mut gone: Vec<String> = after
            .row_hashes
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        gone.sort();
        let kept = after
            .row_hashes
            .iter()
            .filter(|(k, _)| now.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        c.rows = describe_row_changes(&kept, &now, 10);
        c.row_count = c.rows.len() as u64;
        c.ok = c.rows.is_empty();
        if !c.ok {
            gone.clear();
        } else {
            c.actual = format!("{} as pushed, {} deleted since", c.expected, gone.len());
        }
        Ok((c, gone))
    }

    /// Compares a whole table with a state the receipt recorded; a
    /// difference lists the rows that differ (when `list_rows` or the
    /// receipt has their fingerprints).
    async fn state_check(
        &self,
        meta: &TableMeta,
        state: &TableState,
        phase: &str,
        name: &str,
        kind: CheckKind,
        list_rows: bool,
    ) -> Result<Check> {
        let sum = remote_checksum_with(self.tx, meta, self.undo.row_hash()).await?;
        let mut c = Check::equal(
            phase,
            name,
            kind,
            format!("{} rows, {}", state.rows, short(&state.checksum)),
            format!("{} rows, {}", sum.rows(), short(&sum.hex())),
        );
        c.ok = sum.hex() == state.checksum;
        if !c.ok && (list_rows || !state.row_hashes.is_empty()) {
            let now = remote_row_hashes(self.tx, meta).await?;
            c.rows = describe_row_changes(&state.row_hashes, &now, 10);
            c.row_count = c.rows.len() as u64;
        }
        Ok(c)
    }

    /// The rows the push inserted into or updated in an existing table are
    /// as it left them, as far as undoing them would discard a change: a
    /// row it inserted whole (deleting it deletes every column, including
    /// what Postgres filled), a row it updated only in the columns it wrote
    /// (restoring them leaves the app's other columns alone, so the app may
    /// have written those since). A change is named by table, key and column
    /// where the receipt holds the pushed value.
    async fn pushed_rows_check(
        &self,
        t: &UndoTable,
        meta: &TableMeta,
        after: &TableState,
    ) -> Result<(usize, Vec<AppChange>, Vec<String>, Vec<Rekeyed>, RowsAsLeft)> {
        let written = WrittenRows::of(t, meta, self.undo)?;
        let key_positions = receipt_key_positions(t, meta)?;
        let mut changed = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut as_left = RowsAsLeft::new();
        // Only the rows the push wrote cross the network, not the table.
        for_each_remote_line_keyed(
            self.tx,
            meta,
            &t.key,
            &t.key_types,
            &written.key_values,
            |line| {
                let values = crate::types::parse_copy_line(&line[..line.len() - 1])
                    .map_err(anyhow::Error::msg)?;
                let key =
                    crate::types::row_key(key_positions.iter().map(|i| values[*i].as_deref()));
                if !written.holds(&key) {
                    return Ok(());
                }
                seen.insert(key.clone());
                // Unchanged as a whole: nothing to look at column by column.
                let pushed = after.row_hashes.get(&key).map(String::as_str);
                let unchanged =
                    pushed == Some(crate::db::postgres::digest::row_fingerprint(line).as_str());
                if !unchanged {
                    changed.extend(written.changes(&t.table, &key, &values, pushed));
                }
                // What the undo leaves alone in a row it restores must read
                // the same after it (`undone_rows_check`).
                if !written.inserted(&key) {
                    as_left.insert(key, (values, unchanged));
                }
                Ok(())
            },
        )
        .await?;
        // Deleted since: undone already, not a change the undo would discard.
        let mut gone: Vec<String> = written
            .keys()
            .filter(|key| !seen.contains(*key))
            .cloned()
            .collect();
        gone.sort();
        gone.dedup();
        // Unless the app only changed its key: then the push's row is still
        // there, under another key, and leaving it would not undo the push.
        let rekeyed = if gone.is_empty() {
            Vec::new()
        } else {
            self.under_another_key(t, meta, after, &written, &key_positions, &gone)
                .await?
        };
        gone.retain(|g| !rekeyed.iter().any(|r| &r.old == g));
        Ok((written.count(), changed, gone, rekeyed, as_left))
    }

    /// Of the rows the push wrote to `t` that are no longer under their
    /// key (`gone`), those whose pushed values a row of the table holds
    /// under a key the receipt does not know (neither one of the rows the
    /// push left there nor one it wrote): re-keyed by the app, as far as
    /// the receipt can tell (see `WrittenRows::pushed_under_another_key`).
    /// One more read of the table, only when a pushed row is missing; the
    /// rows under keys the receipt knows are skipped as they stream by.
    async fn under_another_key(
        &self,
        t: &UndoTable,
        meta: &TableMeta,
        after: &TableState,
        written: &WrittenRows<'_>,
        key_positions: &[usize],
        gone: &[String],
    ) -> Result<Vec<Rekeyed>> {
        let key_values: BTreeMap<String, &Vec<Option<String>>> = written
            .key_values
            .iter()
            .map(|k| (crate::types::row_key(k.iter().map(|v| v.as_deref())), k))
            .collect();
        let mut looking: Vec<(&String, &Vec<Option<String>>)> = gone
            .iter()
            .filter_map(|g| key_values.get(g).map(|k| (g, *k)))
            .collect();
        // What the push wrote in a column it added goes with the column.
        let dropped = added_columns_of(self.undo, &t.table);
        let mut found = Vec::new();
        crate::db::postgres::copy::for_each_remote_line(self.tx, meta, |line| {
            if looking.is_empty() {
                return Ok(());
            }
            let values = crate::types::parse_copy_line(&line[..line.len() - 1])
                .map_err(anyhow::Error::msg)?;
            let key = crate::types::row_key(key_positions.iter().map(|i| values[*i].as_deref()));
            if after.row_hashes.contains_key(&key) || written.holds(&key) {
                return Ok(());
            }
            if let Some(at) = looking.iter().position(|(old, old_values)| {
                written.pushed_under_another_key(
                    old,
                    key_positions,
                    old_values,
                    &values,
                    after.row_hashes.get(*old).map(String::as_str),
                    &dropped,
                )
            }) {
                let (old, _) = looking.remove(at);
                found.push(Rekeyed {
                    table: t.table.clone(),
                    old: old.clone(),
                    new: key,
                    inserted: written.inserted(old),
                    columns: written
                        .updated_columns(old, &dropped)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                });
            }
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// Columns the app added since the push (`app_columns`, `(table,
    /// column)` from [`Self::columns_as_pushed`]) to a table the undo drops
    /// or deletes pushed rows of: the receipt knows nothing of them, so
    /// "unchanged since the push" cannot see what the app put there. A
    /// non-NULL value in a row the undo removes — any row of a table the
    /// push created, a row it inserted into an existing table (`pushed`) —
    /// refuses, naming table, column and count, unless `--discard-changes
    /// TABLE.COLUMN` (or `TABLE.*`) lets it go: then returned, to be
    /// reported and recorded. A column that holds only NULL there loses
    /// nothing: named in the passing check. Rows the undo restores keep the
    /// app's columns (it writes back only what the push wrote).
    async fn app_columns_hold_nothing_lost(
        &self,
        app_columns: &[(String, String)],
        pushed: &[PushedRows],
    ) -> Result<(Check, Vec<String>)> {
        let pinned = TypeSpellings::pinned();
        let mut counted: Vec<(String, String, i64, &'static str)> = Vec::new();
        for t in &self.undo.tables {
            let columns: Vec<&str> = app_columns
                .iter()
                .filter(|(table, _)| table == &t.table)
                .map(|(_, c)| c.as_str())
                .collect();
            if columns.is_empty() {
                continue;
            }
            let (from, how) = if t.created {
                (
                    format!("public.{} p", quote_ident(&t.table)),
                    "rows of the table, which the push created and the undo drops",
                )
            } else if let Some(rows) = pushed.iter().find(|p| p.table == t.table) {
                (
                    format!(
                        "public.{} p JOIN {} ON {}",
                        quote_ident(&t.table),
                        rows.keys.from_item("u"),
                        rows.join(&pinned, "p", "u")?
                    ),
                    "rows the push inserted, which the undo deletes",
                )
            } else {
                continue;
            };
            let counts = columns
                .iter()
                .map(|c| format!("count(p.{})::int8", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let row = self
                .tx
                .query_one(&format!("SELECT {counts} FROM {from}"), &[])
                .await
                .with_context(|| format!("cannot read the app's columns of {}", t.table))?;
            for (i, c) in columns.iter().enumerate() {
                counted.push((t.table.clone(), c.to_string(), row.get(i), how));
            }
        }
        let flag = |table: &str, column: &str| {
            let exact = format!("{table}.{column}");
            let all = format!("{table}.*");
            self.opts
                .discard_changes
                .iter()
                .find(|d| **d == exact || **d == all)
                .cloned()
        };
        let mut lost = Vec::new();
        let mut discarded = Vec::new();
        let mut empty = Vec::new();
        for (table, column, n, how) in &counted {
            let line = format!(
                "{table}.{column}: a non-NULL value in {n} {how} (a column the app added since \
                 the push; the receipt does not know it)"
            );
            if *n == 0 {
                empty.push(format!("{table}.{column}"));
            } else if let Some(f) = flag(table, column) {
                discarded.push(format!("{line} — discarded (--discard-changes {f})"));
            } else {
                lost.push(line);
            }
        }
        let mut c = Check::no_rows(
            "before undo",
            "columns the app added since the push lose no data",
            CheckKind::Integrity,
            lost,
        );
        if !c.ok {
            let flags: Vec<String> = counted
                .iter()
                .filter(|(t, col, n, _)| *n > 0 && flag(t, col).is_none())
                .map(|(t, col, _, _)| format!("--discard-changes {t}.{col}"))
                .collect();
            return Err(self.refuse(
                format!(
                    "undoing would destroy data the push did not write — {}. Move those values \
                     elsewhere (or clear them) and roll back again{}; {}",
                    c.rows.join("; "),
                    if self.mode == Mode::RehearsalInPush {
                        String::new()
                    } else {
                        format!(
                            ", or, to undo the push anyway and lose them, add {} (each is listed \
                             and recorded in the receipt)",
                            flags.join(" ")
                        )
                    },
                    self.nothing
                ),
                vec![c],
            ));
        }
        if !empty.is_empty() {
            c.actual = format!(
                "0 rows; all NULL where the undo removes rows, so nothing is lost: {}",
                empty.join(", ")
            );
        }
        Ok((c, discarded))
    }

    /// Dropping a column the push added drops every value in it: refused
    /// when a row holds one the push did not write there — a non-NULL in a
    /// row whose column the push did not set (the app's, e.g. a row it
    /// linked through the push's own foreign key), or a value other than
    /// the pushed one. Rows the push inserted are compared whole by
    /// [`Self::unchanged_since_push`].
    async fn added_columns_hold_only_pushed_values(&self) -> Result<Check> {
        let mut found = Vec::new();
        for a in &self.undo.added_columns {
            let key = key_of(self.undo, &a.table);
            let table = self.undo.tables.iter().find(|t| t.table == a.table);
            let inserted: std::collections::BTreeSet<String> = table
                .map(|t| {
                    t.inserted_keys
                        .iter()
                        .map(|k| crate::types::row_key(k.iter().map(|v| v.as_deref())))
                        .collect()
                })
                .unwrap_or_default();
            let pushed: BTreeMap<String, Option<&str>> = table
                .map(|t| {
                    t.updates
                        .iter()
                        .filter_map(|u| {
                            let c = u.changes.iter().find(|c| c.column == a.column)?;
                            Some((
                                crate::types::row_key(u.key.iter().map(|v| Some(v.as_str()))),
                                c.new.as_deref(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Without a key (a table the push did not write rows of) every
            // non-NULL value is someone else's; ctid names the row.
            let key_sql = if key.is_empty() {
                "ctid::text".to_string()
            } else {
                key.iter()
                    .map(|k| format!("{}::text", quote_ident(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let column = quote_ident(&a.column);
            let rows = self
                .tx
                .query_typed(
                    &format!(
                        "SELECT {column}::text, {key_sql} FROM public.{} WHERE {column} IS NOT NULL",
                        quote_ident(&a.table)
                    ),
                    &[],
                )
                .await
                .with_context(|| format!("cannot read {}.{}", a.table, a.column))?;
            let mut keys = Vec::new();
            let filled = self.undo.filled.iter().find(|f| f.table == a.table);
            let filled_column = filled.and_then(|f| f.columns.iter().position(|c| c == &a.column));
            for row in &rows {
                let now: String = row.get(0);
                let k =
                    crate::types::row_key((1..row.len()).map(|i| row.get::<_, Option<&str>>(i)));
                let filled_at_add = filled
                    .zip(filled_column)
                    .and_then(|(f, i)| f.rows.get(&k).map(|r| &r[i]));
                if inserted.contains(&k) {
                    continue;
                }
                // The value ADD COLUMN gave a row the push left alone: the
                // constant default, or what Postgres computed for the row
                // (read back by the push, in the receipt's filled values).
                if !pushed.contains_key(&k)
                    && (a.fill.as_deref() == Some(now.as_str())
                        || filled_at_add == Some(&Some(now.clone())))
                {
                    continue;
                }
                if pushed.get(&k) != Some(&Some(now.as_str())) {
                    keys.push(k);
                }
            }
            if !keys.is_empty() {
                let n = keys.len();
                keys.truncate(5);
                found.push(format!(
                    "{}.{}: {} {} a value the push did not write there (rows {}{}) — \
                     dropping the column would delete it",
                    a.table,
                    a.column,
                    crate::words::rows(n),
                    if n == 1 { "holds" } else { "hold" },
                    keys.join(", "),
                    if n > 5 { ", …" } else { "" }
                ));
            }
        }
        let c = Check::no_rows(
            "before undo",
            "columns the push added hold only what it wrote",
            CheckKind::Integrity,
            found,
        );
        if !c.ok {
            return Err(self.refuse(
                format!(
                    "undoing would drop data the push did not write — {}. Move or clear those values \
                     first (or keep the column); {}",
                    c.rows.join("; "),
                    self.nothing
                ),
                vec![c],
            ));
        }
        Ok(c)
    }

    /// What else leans on what the rollback removes: rows referencing pushed
    /// rows (any schema, any ON DELETE action), objects depending on the
    /// tables and columns it drops, app functions whose bodies use them.
    /// Any of them refuses the whole rollback, but for the functions the
    /// user names with `--break-function`: returned, to be listed and
    /// recorded. A `--break-function` naming none of the functions found
    /// is a usage error naming those found.
    async fn nothing_references(
        &self,
        pushed: &[PushedRows],
    ) -> Result<(Check, Vec<String>, Vec<Cascaded>)> {
        let undo = self.undo;
        let dropped_columns: Vec<(String, String)> = undo
            .added_columns
            .iter()
            .map(|a| (a.table.clone(), a.column.clone()))
            .collect();
        let restored = restored_keys(undo);
        let (mut blockers, cascaded) = rows_referencing(
            self.tx,
            pushed,
            &undo.created_tables,
            &dropped_columns,
            &restored,
            &undo.own_referencing,
        )
        .await?;
        // With it, in the same round trip: the columns of any table whose
        // type holds rows of what is dropped (Postgres records no
        // dependency on a dropped column there, and hints at CASCADE for a
        // dropped table).
        let (objects, row_types) = futures_util::join!(
            objects_depending(self.tx, &undo.created_tables, &dropped_columns, &undo.ddl),
            row_type_dependents(self.tx, &undo.created_tables, &dropped_columns),
        );
        blockers.extend(objects?);
        blockers.extend(row_types?);
        // In the push's own transaction every function predates the push,
        // and its rollback gives them back the tables as they found them:
        // only functions written since can be broken by the drop.
        let functions = match self.mode {
            Mode::Rollback => {
                functions_using_dropped(self.tx, &undo.created_tables, &dropped_columns).await?
            }
            Mode::RehearsalInPush => vec![],
        };
        let unknown: Vec<&String> = self
            .opts
            .break_functions
            .iter()
            .filter(|name| !functions.iter().any(|f| f.named_by(name)))
            .collect();
        if !unknown.is_empty() {
            let found: Vec<&str> = functions.iter().map(|f| f.function.as_str()).collect();
            return Err(crate::error::environment(format!(
                "{}: no function whose body uses a table or column this rollback drops has that \
                 name; {}; {}",
                unknown
                    .iter()
                    .map(|n| format!("--break-function {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if found.is_empty() {
                    "none was found, so leave the flag out".to_string()
                } else {
                    format!(
                        "name one as printed (schema.name(argument types)): {}",
                        found.join(", ")
                    )
                },
                self.nothing
            )));
        }
        let (accepted, refused): (Vec<_>, Vec<_>) = functions.into_iter().partition(|f| {
            self.opts
                .break_functions
                .iter()
                .any(|name| f.named_by(name))
        });
        blockers.extend(refused.iter().map(|f| f.describe()));
        let dependents = Check::no_rows(
            "before undo",
            "nothing else references what the rollback removes",
            CheckKind::Integrity,
            blockers,
        );
        if !dependents.ok {
            // An index or a policy the app added on a table or column the
            // push made (Supabase's advisor asks for an index on each new
            // foreign key) holds no data: said as what it is, not as data.
            let only_objects = dependents
                .rows
                .iter()
                .all(|r| r.starts_with("index ") || r.starts_with("policy "));
            let why = if only_objects {
                format!(
                    "the app added objects on what the push made, which the rollback would drop \
                     with it — {}. They hold no data, but the rollback drops only what the push \
                     made: drop them first (and create them again after the rollback if still \
                     wanted); {}",
                    dependents.rows.join("; "),
                    self.nothing
                )
            } else {
                format!(
                    "undoing would destroy or break data it did not write — {}. Remove or re-point \
                     those first; {}",
                    dependents.rows.join("; "),
                    self.nothing
                )
            };
            return Err(self.refuse(why, vec![dependents]));
        }
        let broken = accepted
            .iter()
            .map(|f| format!("function {} (its body names {})", f.function, f.uses))
            .collect();
        Ok((dependents, broken, cascaded))
    }

    /// A DO INSTEAD rule on the undo's DELETE of the pushed rows (a soft
    /// delete) or on its UPDATE restoring overwritten values refuses by
    /// name before anything is written ([`undo_rules_check`]); before, the
    /// DELETE ran through it and the rollback said the rows were not found.
    async fn rules(&self, pushed: &[PushedRows]) -> Result<Check> {
        let deletes: Vec<String> = pushed.iter().map(|p| p.table.clone()).collect();
        // An update only of columns the push added is no UPDATE: the
        // column is dropped instead.
        let updates: Vec<String> = self
            .undo
            .tables
            .iter()
            .filter(|t| !t.created)
            .filter(|t| {
                let added = added_columns_of(self.undo, &t.table);
                t.updates.iter().any(|u| {
                    u.changes
                        .iter()
                        .any(|c| !added.contains(&c.column.as_str()))
                })
            })
            .map(|t| t.table.clone())
            .collect();
        let check = undo_rules_check(self.tx, &deletes, &updates).await?;
        self.refuse_unless_ok(check, "rules on the written tables would replace the undo")
    }

    /// The same hold-off rule as the push: only proven updated_at stamps,
    /// and only those the receipt held off.
    /// `read` is `receipt_triggers` of [`Self::written`]; with the
    /// triggers and the check, the held-off triggers no longer there.
    #[allow(clippy::type_complexity)]
    fn triggers(
        &self,
        read: Result<(Vec<TriggerReport>, Check, Vec<String>)>,
    ) -> Result<(Vec<TriggerReport>, Check, Vec<String>)> {
        let (triggers, trigger_check, gone) = read?;
        if !trigger_check.ok {
            return Err(self.refuse(
                format!("{}; {}", trigger_check.rows.join("; "), self.nothing),
                vec![trigger_check],
            ));
        }
        Ok((triggers, trigger_check, gone))
    }

    /// As for the push: a trigger or rule the catalog shows may write a
    /// foreign table (uncounted by the write accounting) refuses the undo
    /// before anything is written, unless allowed.
    /// As for the push: a trigger calling what a rollback of this
    /// transaction does not undo refuses, unless allowed.
    fn external_effects(&self, effects: &Effects) -> Result<Check> {
        self.refuse_unless_ok(
            external_effects_check("preflight", effects, self.opts.allow_external_effects),
            "what fires or is evaluated for the undo's writes (triggers, their WHEN clauses, \
             constraints, defaults, indexes, policies, rules) calls what a rollback does not \
             undo; pass \
             --allow-external-effects if they are intended (for the dry run too)",
        )
    }

    async fn foreign_writes(&self, effects: &Effects) -> Result<ForeignWrites> {
        let mut foreign = foreign_write_check(
            self.tx,
            "preflight",
            &self.written(),
            &self.allowed(),
            effects,
        )
        .await?;
        foreign.check = self.refuse_unless_ok(
            foreign.check,
            "triggers or rules that fire for the undo may write foreign tables",
        )?;
        Ok(foreign)
    }

    /// The tables the undo writes rows of.
    fn written(&self) -> Vec<WrittenTable> {
        self.undo
            .tables
            .iter()
            .filter(|t| !t.created)
            .map(|t| {
                // Values of columns the push added are not written back
                // (the columns are dropped): a table whose updates are all
                // there has nothing restored, so no stamp is held off for
                // it (before, the rollback said "Held off while restoring
                // values" of a trigger it never disabled).
                let dropped = added_columns_of(self.undo, &t.table);
                WrittenTable {
                    name: t.table.clone(),
                    updates: t.updates.iter().any(|u| {
                        u.changes
                            .iter()
                            .any(|c| !dropped.contains(&c.column.as_str()))
                    }),
                }
            })
            .collect()
    }

    /// Tables outside the receipt a side effect may write in some way:
    /// those the push was allowed to write and `--allow-writes` — whose
    /// triggers are searched, and whose foreign tables are allowed. Which
    /// kinds of rows the undo may write there is the write accounting's
    /// (`account_writes`).
    fn allowed(&self) -> Vec<String> {
        self.undo
            .allowed_writes
            .iter()
            .chain(self.opts.allow_writes.iter())
            .cloned()
            .collect()
    }

    /// Drops what the push created and removes or restores its rows; an
    /// error Postgres raises on a trigger or constraint it can name is a
    /// refusal.
    async fn undo(
        &self,
        order: DropOrder,
        pushed: &[PushedRows],
        triggers: &[TriggerReport],
        report: &mut RollbackReport,
    ) -> Result<Vec<AddedColumn>> {
        // DROP COLUMN and DROP TABLE take ACCESS EXCLUSIVE (with a foreign
        // key, on the referenced table too) until COMMIT: every reader of
        // those tables waits from then on. So they run last (`drop_last`),
        // except the added columns the row work needs gone first.
        let DropOrder { first, emptied } = order;
        let referenced = referenced_by_dropped(self.tx, &[], &first).await?;
        self.drop_locked(&first, &[], referenced, report).await?;
        // The undo writes under the app's search_path, so the database's
        // triggers resolve names as they do for the app; the types the undo
        // spells are resolved first, under the pinned path (one round trip
        // for both), and the path is pinned again after it.
        let (types, as_the_app) = futures_util::join!(
            TypeSpellings::resolve(self.tx, undo_spellings(self.undo)?),
            self.tx.batch_execute(AS_THE_APP)
        );
        let types = types?;
        as_the_app?;
        let inputs = UndoInputs {
            tx: self.tx,
            types: &types,
            undo: self.undo,
            pushed,
            triggers,
            mode: self.mode,
            emptied: &emptied,
        };
        let undone = undo_changes(inputs, report).await;
        if undone.is_ok() {
            self.tx.batch_execute(&pin_sql()).await?;
        }
        if let Err(e) = undone {
            return Err(self.named(e, triggers));
        }
        Ok(self
            .undo
            .added_columns
            .iter()
            .filter(|a| {
                !first
                    .iter()
                    .any(|f| f.table == a.table && f.column == a.column)
            })
            .cloned()
            .collect())
    }

    /// Drops `columns` and `tables`. Their ACCESS EXCLUSIVE locks (and those
    /// of the tables their foreign keys reference) were taken in the lock
    /// step (`lock_written_tables`); one that was not (a foreign key an
    /// event trigger added since) is taken just before, in short attempts.
    /// `referenced` is what `referenced_by_dropped` says of them.
    async fn drop_locked(
        &self,
        columns: &[AddedColumn],
        tables: &[String],
        referenced: Vec<String>,
        report: &mut RollbackReport,
    ) -> Result<()> {
        if columns.is_empty() && tables.is_empty() {
            return Ok(());
        }
        let mut dropping: Vec<(String, LockMode)> = columns
            .iter()
            .map(|a| a.table.clone())
            .chain(tables.iter().cloned())
            .map(|t| (t, LockMode::AccessExclusive))
            .collect();
        dropping.extend(
            referenced
                .into_iter()
                .map(|t| (t, LockMode::AccessExclusive)),
        );
        dropping.retain(|(t, _)| !self.exclusive.contains(t));
        lock_tables(self.tx, &dropping, self.opts.lock_timeout_ms)
            .await
            .map_err(|e| self.gone_at_the_lock_step(e))?;
        apply::drop_created(self.tx, columns, tables, report)
            .await
            .map_err(|e| self.named(e, &[]))
    }

    /// A Postgres refusal during the undo, named (with the trigger that
    /// raised it) as the rollback's refusal; other errors as they are.
    fn named(&self, e: anyhow::Error, triggers: &[TriggerReport]) -> anyhow::Error {
        match crate::db::pg_error::describe(&e, triggers) {
            Some(named) => {
                let why = format!(
                    "Postgres refused {}: {named}; rolled back, {}",
                    crate::db::pg_error::steps(&e),
                    self.nothing
                );
                // A lock wait stays one: the push's rehearsal advises a
                // retry for it, not --allow-irreversible.
                if crate::error::is_lock_wait(&e) {
                    crate::error::lock_refused(format!("{}: {why}", self.refusing()))
                } else {
                    self.refuse(why, vec![])
                }
            }
            None => e,
        }
    }

    /// The rows the undo wrote back must read as the receipt recorded them:
    /// a BEFORE trigger that fires on the re-insert or the restore (a
    /// `created_at` stamp, a version counter, a normaliser) would otherwise
    /// leave values that are not the before-images while the rollback says
    /// "undone". Only those rows are read back, whole: a restored row must
    /// also hold what it held before the undo in the columns the undo does
    /// not write (`as_left`, read before it; a trigger the app added since
    /// the push fires for the restore and may write them), and one that was
    /// as the push left it must match its before-push fingerprint. A
    /// difference names the table, key, column, the recorded and the found
    /// value, and the triggers that fired.
    async fn undone_rows_check(
        &self,
        triggers: &[TriggerReport],
        as_left: &AsLeftBeforeUndo,
        checks: &mut Vec<Check>,
    ) -> Result<()> {
        for t in self.undo.tables.iter().filter(|t| !t.created) {
            let restored = restored_values(self.undo, t)?;
            if restored.expected.is_empty() {
                continue;
            }
            let meta = meta_of(&t.table, restored.columns.clone(), &t.key);
            let key_positions = receipt_key_positions(t, &meta)?;
            let mut differing = Vec::new();
            let mut columns_differing: BTreeMap<String, usize> = BTreeMap::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut restores = UnwrittenRead::of(self.undo, t, &restored, as_left.get(&t.table))?;
            // Columns the undo does not write that changed all the same.
            let mut unwritten: BTreeMap<String, usize> = BTreeMap::new();
            let mut missing = 0;
            // Only the rows written back cross the network, not the table.
            for_each_remote_line_keyed(
                self.tx,
                &meta,
                &t.key,
                &t.key_types,
                &restored.key_values,
                |line| {
                    let values = crate::types::parse_copy_line(&line[..line.len() - 1])
                        .map_err(anyhow::Error::msg)?;
                    let key =
                        crate::types::row_key(key_positions.iter().map(|i| values[*i].as_deref()));
                    let Some(wanted) = restored.expected.get(&key) else {
                        return Ok(());
                    };
                    seen.insert(key.clone());
                    let mut row_differs = false;
                    for (i, value) in wanted {
                        if values[*i] != *value {
                            row_differs = true;
                            *columns_differing
                                .entry(restored.columns[*i].name.clone())
                                .or_insert(0) += 1;
                            differing.push(format!(
                                "row {key}: {}.{} is {}, the receipt recorded {}",
                                t.table,
                                restored.columns[*i].name,
                                shown(values[*i].as_deref()),
                                shown(value.as_deref())
                            ));
                        }
                    }
                    restores.compare(
                        &key,
                        &values,
                        line,
                        wanted,
                        row_differs,
                        &mut unwritten,
                        &mut differing,
                    );
                    Ok(())
                },
            )
            .await?;
            for key in restored.expected.keys().filter(|k| !seen.contains(*k)) {
                missing += 1;
                differing.push(format!(
                    "row {key} of {} is missing after the undo",
                    t.table
                ));
            }
            let expected = format!("{} rows as recorded", restored.expected.len());
            let actual = if differing.is_empty() {
                expected.clone()
            } else {
                format!("{} values differ", differing.len())
            };
            let mut c = Check::equal(
                "after undo",
                &format!("{} rows written back as the receipt recorded them", t.table),
                CheckKind::Integrity,
                expected,
                actual,
            );
            c.ok = differing.is_empty();
            if !c.ok {
                c.row_count = differing.len() as u64;
                differing.truncate(10);
                if c.row_count > 10 {
                    differing.push(format!("… and {} more", c.row_count - 10));
                }
                // Which columns differ, first: "rows missing" would hide
                // that only a stamp moved (W15).
                let mut said: Vec<String> = Vec::new();
                if !columns_differing.is_empty() {
                    said.push(format!(
                        "columns that differ from the receipt: {}",
                        columns_differing
                            .iter()
                            .map(|(c, n)| format!("{}.{c} in {}", t.table, crate::words::rows(n)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let stamps: Vec<&TriggerReport> = triggers
                    .iter()
                    .filter(|tr| {
                        tr.table == t.table && (tr.stamps_updated_at || tr.unproven_stamp.is_some())
                    })
                    .collect();
                let stamped = columns_differing.contains_key("updated_at") && !stamps.is_empty();
                if stamped {
                    said.push(format!(
                        "{}.updated_at is the updated_at stamp: {} — set to now() on every UPDATE \
                         of the row; the push's update of these rows fired it, and no undo can \
                         write the recorded value back past it (an UPDATE fires it again)",
                        t.table,
                        stamps
                            .iter()
                            .map(|tr| match &tr.unproven_stamp {
                                Some(why) => format!(
                                    "trigger {} fires for the push and the undo, not held off: {why}",
                                    tr.name
                                ),
                                None => format!(
                                    "trigger {} (a proven stamp, held off only when the plan \
                                     names it in hold_off_triggers)",
                                    tr.name
                                ),
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
                if !unwritten.is_empty() || restores.unnamed() > 0 {
                    said.push(restores.why(&unwritten, triggers));
                }
                differing.splice(0..0, said);
                let firing: Vec<String> = triggers
                    .iter()
                    .filter(|tr| tr.rewrites_rows_of(&t.table))
                    .map(|tr| format!("{} ({})", tr.name, tr.events.join("/")))
                    .collect();
                // Only the stamp's column differs: said above, as what it is.
                // Only columns the undo does not write: said above too.
                let only_stamped = (stamped && columns_differing.len() == 1)
                    || (columns_differing.is_empty() && missing == 0);
                if !only_stamped && firing.is_empty() {
                    differing.push(format!(
                        "no BEFORE row trigger on {} fires for the undo: a rule or the column's \
                         type changed the values",
                        t.table
                    ));
                } else if !only_stamped {
                    differing.push(format!(
                        "likely cause: BEFORE row trigger {} on {} fired for the undo and changed \
                         the rows it wrote back; no trigger is disabled to undo a push, so restore \
                         these rows by hand (the receipt's before-images are in sandbox.receipts) \
                         or adjust the trigger",
                        firing.join(", "),
                        t.table
                    ));
                }
                c.rows = differing;
            }
            checks.push(c);
        }
        Ok(())
    }

    /// With --strict the result must be the pulled state of every table,
    /// byte for byte. Otherwise the rows the push wrote were undone one by
    /// one (each delete and restore counted), the app's rows are left as
    /// they are, and the write accounting proves the undo wrote nothing
    /// else.
    async fn equal_to_before_push(&self, checks: &mut Vec<Check>) -> Result<()> {
        for (name, before) in &self.undo.before {
            let meta = meta_of(name, before.columns.clone(), &key_of(self.undo, name));
            checks.push(
                self.state_check(
                    &meta,
                    before,
                    "after undo",
                    &format!("{name} equals its state before the push"),
                    CheckKind::Guard,
                    false,
                )
                .await?,
            );
        }
        Ok(())
    }

    /// Every write of the undo, database-wide: only the receipt's tables,
    /// exactly as many rows as it recorded, plus allowed side effects.
    async fn account_writes(
        &self,
        report: &mut RollbackReport,
        effects: &Effects,
        triggers: &[TriggerReport],
    ) -> Result<()> {
        // As for the push: a table the plan protected or read is never an
        // allowed side effect, whatever --allow-writes says.
        let (protected, recorded) = self.undo.protected_tables();
        let unprotected = |tables: &[String]| -> Vec<String> {
            tables
                .iter()
                .filter(|a| !protected.contains(&crate::db::writes::qualify(a)))
                .cloned()
                .collect()
        };
        // What this command may write beyond its undo, whatever the kind:
        // its own --allow-writes. The push's allowance is the push's consent
        // (`rollback_allowance`): a rollback inherits it for inserts only.
        // Its rehearsal inside the push judges by the very same allowance —
        // the one `sandbox rollback` will have (V16: it took the push's
        // whole, and said an undo was fine that the rollback then refused);
        // what only the rollback's own --allow-writes would let through is
        // reported as needing it (`needs_consent`), not as irreversible.
        let explicit = unprotected(&self.opts.allow_writes);
        let inherited = unprotected(&self.undo.allowed_writes);
        let allowed = explicit.clone();
        // The created tables are dropped (`drop_locked`), and their rows
        // with them: what was written to them does not count (Postgres no
        // longer lists them; in a refused or dry run neither).
        let dropped: Vec<String> = self
            .undo
            .created_tables
            .iter()
            .map(|t| format!("public.{t}"))
            .collect();
        // The storage and DDL checks ask nothing of the writes: sent with
        // them.
        let (writes, storage, ddl, comment_writes) = futures_util::join!(
            transaction_writes(self.tx),
            storage_check(self.tx, "writes", &[], &allowed),
            transaction_ddl(self.tx),
            comment_writes(self.tx)
        );
        let ddl = ddl?;
        // With the rollback's own --allow-writes for every table the push
        // was allowed: what the rehearsal finds needing consent passes there.
        let consented: Vec<String> = explicit.iter().chain(&inherited).cloned().collect();
        // The rows of the push's own side effect that the delete of the
        // pushed rows took with it (`cascaded`) are part of the undo: only
        // the rest of that table's writes is judged.
        let writes: Vec<_> = writes?
            .into_iter()
            .filter(|w| !dropped.contains(&w.table))
            .filter_map(|mut w| {
                let taken: u64 = report
                    .cascaded
                    .iter()
                    .filter(|c| c.table == w.table)
                    .map(|c| c.rows)
                    .sum();
                w.deleted = (w.deleted - taken as i64).max(0);
                (w.total() > 0).then_some(w)
            })
            .collect();
        let expected = undo_writes(self.undo, report);
        let (allowed_rows, beyond) = rollback_allowance(&writes, &expected, &explicit, &inherited);
        let (writes, allowed_rows, beyond) = match self.mode {
            Mode::Rollback => {
                let writes: Vec<TableWrites> = writes
                    .into_iter()
                    .filter(|w| !beyond.iter().any(|b| b.table == w.table))
                    .collect();
                (writes, allowed_rows, beyond)
            }
            Mode::RehearsalInPush => {
                if !beyond.is_empty() {
                    report
                        .needs_consent_tables
                        .extend(beyond.iter().map(|b| b.table.clone()));
                    report.needs_consent.extend(
                        beyond_inherited_check(
                            "writes",
                            &beyond,
                            &self.undo.side_effects,
                            &|t: &str| effects.naming(t),
                        )
                        .rows,
                    );
                }
                // The rest is accounted as under that consent.
                let allowed_rows = allowed_rows
                    .into_iter()
                    .chain(beyond.iter().map(|b| b.table.clone()))
                    .collect();
                (writes, allowed_rows, vec![])
            }
        };
        let cascades = cascading_keys(self.tx, &writes, &expected, &allowed_rows).await?;
        let mut accounting = account(
            "writes",
            &writes,
            &expected,
            &allowed_rows,
            &protected,
            &cascades,
            &|t: &str| effects.naming(t),
        );
        if !beyond.is_empty() {
            accounting.checks.push(beyond_inherited_check(
                "writes",
                &beyond,
                &self.undo.side_effects,
                &|t: &str| effects.naming(t),
            ));
        }
        if !recorded {
            // Said where it refuses: the list was derived, not recorded.
            for c in accounting.checks.iter_mut().filter(|c| !c.ok) {
                c.rows.push(format!(
                    "receipt {} (undo format {}) does not record which tables the plan protected \
                     or read: every pulled table the push did not write is taken as one",
                    self.opts.receipt_id, self.undo.format
                ));
            }
        }
        report.checks.extend(accounting.checks);
        report.side_effects = accounting.allowed;
        // The undo's DDL only drops (no rewrite): nothing is exempt.
        // In the push's rehearsal, a check the rollback's allowance fails
        // is judged again with its own --allow-writes for the push's tables.
        let ask_consent = self.mode == Mode::RehearsalInPush && consented != allowed;
        let mut storage = storage?;
        if ask_consent && !storage.ok {
            let under_consent = storage_check(self.tx, "writes", &[], &consented).await?;
            storage = judged_under_consent(report, storage, under_consent, &inherited);
        }
        report.checks.push(storage);
        report
            .checks
            .push(crate::db::triggers::triggers_as_they_were(
                "writes",
                &ddl,
                triggers,
                &self.undo.created_tables,
                "the rollback",
            ));
        // What the undo's own DDL leaves on the catalog: dropped columns,
        // restarted sequences (a dropped table leaves nothing).
        let own = OwnDdl {
            created: dropped,
            columns: self
                .undo
                .added_columns
                .iter()
                .map(|a| (format!("public.{}", a.table), a.column.clone()))
                .collect(),
            sequences: self
                .undo
                .sequences
                .iter()
                .map(|s| format!("{}.{}", s.schema, s.sequence))
                .collect(),
            // The stamp triggers the undo holds off while it restores rows
            // (as the push did): disabling and enabling one rewrites its
            // pg_trigger row, which is the undo's own doing.
            held_off: crate::plan::held_off_triggers(&self.undo.held_off_triggers)
                .map(|(table, trigger)| (format!("public.{table}"), trigger.to_string()))
                .collect(),
            ..OwnDdl::default()
        };
        // The comments the undo's DROPs took with what they dropped
        // (`comments_going`) are its own deletions: exactly those, and no
        // other comment written, is no one else's doing (W3: they were
        // blamed on a trigger, and the rollback refused).
        let own_comments = comment_writes? == [0, 0, report.dropped_comments.len() as i64];
        let ddl: Vec<_> = ddl
            .into_iter()
            .filter(|c| !(own_comments && c.counted && c.catalog == "pg_description"))
            .collect();
        // As for the push: no --allow-writes covers DDL on a table the
        // push wrote, protected or read (see `ddl_check`).
        let kept: Vec<String> = self
            .undo
            .tables
            .iter()
            .map(|t| t.table.clone())
            .chain(self.undo.created_tables.iter().cloned())
            .chain(self.undo.added_columns.iter().map(|a| a.table.clone()))
            .chain(protected.iter().cloned())
            .collect();
        let mut ddl_checked = ddl_check(
            "rollback",
            "writes",
            &ddl,
            &own,
            &allowed,
            &kept,
            &|t: &str| effects.naming(t),
        );
        if ask_consent && !ddl_checked.ok {
            let under_consent = ddl_check(
                "rollback",
                "writes",
                &ddl,
                &own,
                &consented,
                &kept,
                &|t: &str| effects.naming(t),
            );
            ddl_checked = judged_under_consent(report, ddl_checked, under_consent, &inherited);
        }
        report.checks.push(ddl_checked);
        Ok(())
    }

    /// The refusal's message when a check after the undo failed.
    fn refusal_after_undo(&self, report: &RollbackReport) -> Option<String> {
        let failed = failed_summaries(&report.checks, ", ");
        if failed.is_empty() {
            return None;
        }
        Some(format!(
            "{}: after undoing, {}; rolled back, {}",
            self.refusing(),
            failed.join("; "),
            self.nothing
        ))
    }
}

/// How the columns a created table had at the push (`then`, name and
/// type) compare with those of the table holding its name now (`now`,
/// `name type`): what only one of them has, or that they are alike.
fn columns_compared(then: &[(String, String)], now: &[String]) -> String {
    let then: Vec<String> = then.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let only_then: Vec<&str> = then
        .iter()
        .filter(|c| !now.contains(c))
        .map(String::as_str)
        .collect();
    let only_now: Vec<&str> = now
        .iter()
        .filter(|c| !then.contains(c))
        .map(String::as_str)
        .collect();
    if only_then.is_empty() && only_now.is_empty() {
        return format!("the same columns: {}", then.join(", "));
    }
    let mut parts = Vec::new();
    if !only_then.is_empty() {
        parts.push(format!("the push's had {}", only_then.join(", ")));
    }
    if !only_now.is_empty() {
        parts.push(format!("this one has {}", only_now.join(", ")));
    }
    format!("columns differ: {}", parts.join("; "))
}

/// `check` failed under the rollback's allowance; `under_consent` is the
/// same check with its own --allow-writes for the push's tables. If that
/// passes, the failure is only consent the rollback will need: its rows
/// are listed as such and the consented check stands; else the failure
/// stands.
fn judged_under_consent(
    report: &mut RollbackReport,
    check: Check,
    under_consent: Check,
    inherited: &[String],
) -> Check {
    if !under_consent.ok {
        return check;
    }
    report.needs_consent_tables.extend(
        inherited
            .iter()
            .map(|t| crate::db::writes::qualify(t))
            .filter(|t| check.rows.iter().any(|r| r.contains(t.as_str()))),
    );
    report.needs_consent.extend(consent_rows(&check, inherited));
    under_consent
}

/// A failed check's rows, each told which flag lets the rollback through
/// (one of the push's allowed tables, as the rollback's own --allow-writes).
fn consent_rows(check: &Check, inherited: &[String]) -> Vec<String> {
    let tables: Vec<String> = inherited
        .iter()
        .map(|t| crate::db::writes::qualify(t))
        .collect();
    check
        .rows
        .iter()
        .map(|r| {
            let flags: Vec<String> = tables
                .iter()
                .filter(|t| r.contains(t.as_str()))
                .map(|t| format!("--allow-writes {t}"))
                .collect();
            format!(
                "{r} (allowed by the rollback's own {})",
                if flags.is_empty() {
                    "--allow-writes".to_string()
                } else {
                    flags.join(" ")
                }
            )
        })
        .collect()
}

/// The key of a written table, from the receipt (empty for the others).
fn key_of(undo: &Undo, table: &str) -> Vec<String> {
    undo.tables
        .iter()
        .find(|t| t.table == table)
        .map(|t| t.key.clone())
        .unwrap_or_default()
}

/// The writes the undo makes, exactly, per `schema.table`.
fn undo_writes(undo: &Undo, report: &RollbackReport) -> BTreeMap<String, TableWrites> {
    let mut out = BTreeMap::new();
    for t in undo.tables.iter().filter(|t| !t.created) {
        let name = format!("public.{}", t.table);
        let restored = report
            .restored
            .iter()
            .find(|(n, _)| n == &t.table)
            .map(|(_, n)| *n as i64)
            .unwrap_or(0);
        out.insert(
            name.clone(),
            TableWrites {
                table: name,
                inserted: t.deleted_rows.len() as i64,
                updated: restored,
                deleted: t.inserted_keys.len() as i64,
                written_by: vec![],
            },
        );
    }
    out.insert(
        "sandbox.receipts".into(),
        TableWrites {
            table: "sandbox.receipts".into(),
            inserted: 0,
            updated: 1,
            deleted: 0,
            written_by: vec![],
        },
    );
    out
}

/// What the rollback read of one table the push wrote, to judge whether
/// undoing it discards a change of the app's.
struct TableRead {
    table: String,
    /// Judged already (a table the push created, `--strict`, a table the
    /// push's own read-back found as it left it): the check. None: judged
    /// by `changes`.
    whole: Option<Check>,
    /// How many rows the push wrote there.
    written: usize,
    /// The app's changes since the push to the rows the push wrote.
    changes: Vec<AppChange>,
    /// Rows the push wrote that the app deleted since.
    gone: Vec<GoneRow>,
    /// Rows the push wrote that are under another key now.
    rekeyed: Vec<Rekeyed>,
    /// The rows the push updated, as read; None: judged whole (`whole`),
    /// every row as the push left it when its check passes.
    as_left: Option<RowsAsLeft>,
}

/// The rows the push updated (and did not insert) in one table, as the
/// rollback read them before its undo, by key: their values (in the
/// receipt's column order) and whether each is as the push left it.
type RowsAsLeft = BTreeMap<String, (Vec<Option<String>>, bool)>;

/// [`RowsAsLeft`] by table of the receipt (None: judged whole).
type AsLeftBeforeUndo = BTreeMap<String, Option<RowsAsLeft>>;

impl TableRead {
    fn whole(table: &str, check: Check, gone: Vec<GoneRow>) -> TableRead {
        TableRead {
            table: table.to_string(),
            whole: Some(check),
            written: 0,
            changes: Vec::new(),
            gone,
            rekeyed: Vec::new(),
            as_left: None,
        }
    }
}

/// A row the push wrote that is no longer under its key, whose pushed
/// values a row under a key the receipt does not know holds: the app
/// changed its key, as far as the receipt can tell. Neither deleting nor
/// restoring it by its old key would undo the push, and taking the row
/// under the new key for the push's is a guess: the rollback refuses.
struct Rekeyed {
    table: String,
    /// [`crate::types::row_key`] of the row as the push left it, and now.
    old: String,
    new: String,
    /// The push inserted the row (else it updated it).
    inserted: bool,
    /// Of a row it updated: the columns it wrote.
    columns: Vec<String>,
}

impl Rekeyed {
    /// For a person: which row, where it is now, and the way forward.
    fn describe(&self) -> String {
        let Rekeyed {
            table, old, new, ..
        } = self;
        if self.inserted {
            format!(
                "row {old} of {table} that the push inserted is now under key {new} (re-keyed by \
                 the app: no row is under {old}, and the row under {new}, a key the receipt does \
                 not know, holds the values the push inserted): rollback cannot tell whether to \
                 delete it. If it is still the push's row, put its key back to {old} and roll \
                 back again (the undo then deletes it), or delete it and roll back again; if the \
                 app keeps it, this receipt cannot be rolled back as a whole"
            )
        } else {
            let columns = self.columns.join(", ");
            format!(
                "row {old} of {table} that the push updated is now under key {new} (re-keyed by \
                 the app: no row is under {old}, and the row under {new}, a key the receipt does \
                 not know, holds what the push wrote in {columns}): rollback cannot tell whether \
                 to restore what the push overwrote there. Put its key back to {old} and roll \
                 back again (the undo then restores {columns} as before the push), or restore \
                 {columns} under its new key yourself and roll back again"
            )
        }
    }
}

/// The receipt's undo, restoring what the app changed since in a column
/// the push wrote (and the user lets it discard) from the value the app
/// left, not the one the push did: the restore's guard expects the value
/// it overwrites. Rows the push inserted are deleted by key whatever they
/// hold: nothing to change for them.
fn with_discarded(mut undo: Undo, discarded: &[AppChange]) -> Undo {
    for d in discarded.iter().filter(|d| !d.inserted) {
        let Some(c) = &d.column else { continue };
        let Some(t) = undo.tables.iter_mut().find(|t| t.table == d.table) else {
            continue;
        };
        for u in t
            .updates
            .iter_mut()
            .filter(|u| crate::types::row_key(u.key.iter().map(|v| Some(v.as_str()))) == d.key)
        {
            for change in u
                .changes
                .iter_mut()
                .filter(|x| x.column == c.name && x.new == c.pushed)
            {
                change.new = c.now.clone();
            }
        }
    }
    undo
}

/// A row the push wrote that is no longer there when it is rolled back.
struct GoneRow {
    table: String,
    /// [`crate::types::row_key`] of the row.
    key: String,
    /// What the push had done to it.
    how: &'static str,
}

impl GoneRow {
    fn describe(&self) -> String {
        // Deleting a row the push inserted undid the insert; deleting one
        // it updated did not undo the update, it only leaves nothing to
        // restore.
        let since = if self.how == UPDATED {
            "deleted since: left as the app left it"
        } else {
            "deleted since, so already undone"
        };
        format!("row {} of {} ({}; {since})", self.key, self.table, self.how)
    }
}

/// [`GoneRow::how`] of a row the push updated (and did not insert).
const UPDATED: &str = "the push updated it";

/// The receipt's undo without the rows in `gone`: neither deleted again
/// nor restored (restoring an updated row the app deleted would bring back
/// a row the app removed), nor counted among the undo's writes.
fn without_gone_rows(undo: &Undo, gone: &[GoneRow]) -> Undo {
    let mut out = undo.clone();
    for t in out.tables.iter_mut().filter(|t| !t.created) {
        let keys: std::collections::BTreeSet<&str> = gone
            .iter()
            .filter(|g| g.table == t.table)
            .map(|g| g.key.as_str())
            .collect();
        if keys.is_empty() {
            continue;
        }
        t.inserted_keys.retain(|k| {
            !keys.contains(crate::types::row_key(k.iter().map(|v| v.as_deref())).as_str())
        });
        t.updates.retain(|u| {
            !keys.contains(crate::types::row_key(u.key.iter().map(|v| Some(v.as_str()))).as_str())
        });
    }
    out
}

/// The receipt's undo without the created tables in `gone` (dropped since
/// the push): nothing of theirs is locked, checked, emptied or dropped.
fn without_gone_tables<'u>(undo: &'u Undo, gone: &[String]) -> std::borrow::Cow<'u, Undo> {
    if gone.is_empty() {
        return std::borrow::Cow::Borrowed(undo);
    }
    let mut out = undo.clone();
    out.created_tables.retain(|t| !gone.contains(t));
    out.tables
        .retain(|t| !(t.created && gone.contains(&t.table)));
    out.after.retain(|t, _| !gone.contains(t));
    out.added_columns.retain(|a| !gone.contains(&a.table));
    std::borrow::Cow::Owned(out)
}

/// Per (column, existing table): the keys of the rows whose value in that
/// column the rollback writes back.
fn restored_keys(undo: &Undo) -> Vec<(String, PushedRows)> {
    let mut out = Vec::new();
    for t in undo.tables.iter().filter(|t| !t.created) {
        let mut columns: Vec<&str> = t
            .updates
            .iter()
            .flat_map(|u| u.changes.iter().map(|c| c.column.as_str()))
            .collect();
        columns.sort();
        columns.dedup();
        for column in columns {
            let mut names = vec![ROW_NUMBER.to_string()];
            names.extend(t.key.iter().map(|k| format!("k_{k}")));
            let rows: Vec<Vec<Option<String>>> = t
                .updates
                .iter()
                .filter(|u| u.changes.iter().any(|c| c.column == column))
                .enumerate()
                .map(|(i, u)| {
                    std::iter::once(Some((i + 1).to_string()))
                        .chain(u.key.iter().cloned().map(Some))
                        .collect()
                })
                .collect();
            out.push((
                column.to_string(),
                PushedRows {
                    table: t.table.clone(),
                    key: t.key.clone(),
                    key_types: t.key_types.clone(),
                    keys: RowSet::new(&names, &rows),
                },
            ));
        }
    }
    out
}

/// The keys of the rows the push inserted into existing tables, one
/// `RowSet` per table (numbered rows: a refused DELETE is run again over
/// part of them to name the row, `apply::run_batch`).
pub fn pushed_keys(undo: &Undo) -> Vec<PushedRows> {
    undo.tables
        .iter()
        .filter(|t| !t.created && !t.inserted_keys.is_empty())
        .map(|t| {
            let mut columns = vec![ROW_NUMBER.to_string()];
            columns.extend(t.key.iter().map(|k| format!("k_{k}")));
            let rows: Vec<Vec<Option<String>>> = t
                .inserted_keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    std::iter::once(Some((i + 1).to_string()))
                        .chain(k.iter().cloned())
                        .collect()
                })
                .collect();
            PushedRows {
                table: t.table.clone(),
                key: t.key.clone(),
                key_types: t.key_types.clone(),
                keys: RowSet::new(&columns, &rows),
            }
        })
        .collect()
}

/// What the undo casts to: every column type and key type of the
/// receipt's tables, as the receipt spells them.
fn undo_spellings(undo: &Undo) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    for t in &undo.tables {
        out.extend(t.key_types.iter().map(String::as_str));
        for c in &t.columns {
            out.push(cast_spelling(&t.table, c)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{ColumnUpdate, RowUpdate};

    #[test]
    fn the_undo_needs_keys_restored_columns_and_re_inserted_rows_as_recorded() {
        let t = UndoTable {
            table: "workflows".into(),
            created: false,
            key: vec!["id".into()],
            key_types: vec!["uuid".into()],
            columns: vec![],
            inserted_keys: vec![vec![Some("1".into())]],
            updates: vec![RowUpdate {
                key: vec!["2".into()],
                changes: ["name", "priority_id"]
                    .map(|c| ColumnUpdate {
                        column: c.into(),
                        old: None,
                        new: Some("x".into()),
                        old_filled_by_postgres: false,
                    })
                    .into(),
            }],
            deleted_rows: vec![],
        };
        let added = ["priority_id"];
        assert!(column_use(&t, &added, "id").is_some_and(|u| u.contains("by this key")));
        assert!(column_use(&t, &added, "name").is_some_and(|u| u.contains("writes back")));
        // Inserted rows are deleted by key; an added column is dropped.
        assert_eq!(column_use(&t, &added, "description"), None);
        assert_eq!(column_use(&t, &added, "priority_id"), None);
        let t = UndoTable {
            deleted_rows: vec![vec![Some("3".into())]],
            ..t
        };
        assert!(column_use(&t, &added, "description")
            .is_some_and(|u| u.contains("inserts the rows the push deleted there again whole")));
    }
}
