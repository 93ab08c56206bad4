//! Table locks for push and rollback: taken in short attempts so that no
//! app session ever queues behind us for longer than one attempt, retried
//! until the user's `--lock-timeout`, and when we give up, the sessions in
//! the way are named.
//!
//! Why attempts: a lock request that waits sits in the queue of that table,
//! and every later request that conflicts with it (an app's plain UPDATE
//! behind our SHARE, every reader behind an ACCESS EXCLUSIVE) waits behind
//! it. A `lock_timeout` of a few hundred milliseconds bounds that wait; the
//! pause between attempts lets the queue drain. Each attempt runs inside a
//! savepoint, so a timed-out attempt releases whatever part of it was
//! granted and the transaction goes on.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::{Client, SimpleQueryMessage, Transaction};

use crate::db::postgres::rowlock::{row_blockers, RowLock};
use crate::db::postgres::set_local_settings_sql;
use crate::error::{environment, lock_refused};
use crate::types::quote_ident;

/// The longest any one lock attempt waits.
pub const LOCK_ATTEMPT_MS: u64 = 300;
/// Pause between attempts: sessions queued behind the failed attempt go
/// first.
const LOCK_PAUSE_MS: u64 = 100;

/// The pause before the next attempt: [`LOCK_PAUSE_MS`], give or take
/// half of it at random, so that two sessions retrying against each
/// other (a push and an app that retries too, or two pushes) do not meet
/// in step at every attempt.
fn pause() -> Duration {
    let random = u64::from(uuid::Uuid::new_v4().as_bytes()[0]);
    Duration::from_millis(LOCK_PAUSE_MS / 2 + random * LOCK_PAUSE_MS / 255)
}

/// Table lock modes we take, lightest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    /// Keeps writers out, lets readers and other SHARE holders in: for
    /// tables the plan reads but does not write.
    Share,
    /// Keeps writers out and is self-exclusive: for tables the push writes.
    ShareRowExclusive,
    /// What `ALTER TABLE … ADD/DROP COLUMN` and `DROP TABLE` need.
    AccessExclusive,
}

impl LockMode {
    pub fn sql(self) -> &'static str {
        match self {
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// `pg_locks.mode` names of the held locks that make this request wait.
    fn conflicts(self) -> &'static [&'static str] {
        match self {
            LockMode::Share => &[
                "RowExclusiveLock",
                "ShareUpdateExclusiveLock",
                "ShareRowExclusiveLock",
                "ExclusiveLock",
                "AccessExclusiveLock",
            ],
            LockMode::ShareRowExclusive => &[
                "RowExclusiveLock",
                "ShareUpdateExclusiveLock",
                "ShareLock",
                "ShareRowExclusiveLock",
                "ExclusiveLock",
                "AccessExclusiveLock",
            ],
            LockMode::AccessExclusive => &[
                "AccessShareLock",
                "RowShareLock",
                "RowExclusiveLock",
                "ShareUpdateExclusiveLock",
                "ShareLock",
                "ShareRowExclusiveLock",
                "ExclusiveLock",
                "AccessExclusiveLock",
            ],
        }
    }
}

/// Why locking gave up: the sessions in the way, for the refusal message.
#[derive(Debug)]
pub struct LockTimeout {
    pub tables: Vec<String>,
    pub attempts: u32,
    pub blockers: Vec<String>,
    /// Some of the blockers hold rows (a lock or an uncommitted write).
    pub rows_held: bool,
    /// Tables this transaction already held in ACCESS EXCLUSIVE mode that
    /// other sessions were queued for when an attempt failed: locking gave
    /// up then instead of retrying (see [`lock_in_attempts`]).
    pub queued_behind_us: Vec<String>,
    /// Sessions in the way that are themselves waiting for this
    /// transaction (for rows it locked or changed): neither side can go on,
    /// so locking gave up after that attempt (see [`waiting_on_us`]).
    pub waiting_on_us: Vec<Waiter>,
}

fn is_lock_timeout(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .map(|d| d.code().code() == "55P03")
        .unwrap_or(false)
}

/// Takes every `(table, mode)` lock in one attempt (one round trip), in
/// attempts of at most [`LOCK_ATTEMPT_MS`], until `total_ms` has passed.
/// Tables are in schema `public`. `Ok(Err(..))` when the time ran out.
///
/// `rows` are locked in the same attempt, after the tables (see
/// `rowlock`): a failed attempt lets go of everything it took.
///
/// What a failed attempt cannot let go of is what the transaction took
/// before: an ACCESS EXCLUSIVE lock held from an earlier call makes every
/// reader of that table wait as long as we retry. Callers take every
/// strong lock they will need in one call for that reason; should one still
/// ask for more while such a lock has sessions queued behind it, locking
/// gives up after that attempt rather than keep them waiting for the whole
/// `total_ms`.
pub async fn lock_in_attempts(
    tx: &Transaction<'_>,
    locks: &[(String, LockMode)],
    rows: &[RowLock],
    total_ms: u64,
) -> Result<std::result::Result<(), LockTimeout>> {
    probe_in_attempts(tx, locks, rows, &[], total_ms).await
}

/// The tables as the caller listed them, each once with the strongest mode
/// asked for it, at its first place.
fn in_the_order_asked(locks: &[(String, LockMode)]) -> Vec<(String, LockMode)> {
    let mut out: Vec<(String, LockMode)> = Vec::new();
    for (table, mode) in locks {
        match out.iter_mut().find(|(t, _)| t == table) {
            Some(seen) => seen.1 = seen.1.max(*mode),
            None => out.push((table.clone(), *mode)),
        }
    }
    out
}

/// The `LOCK TABLE` statements of one attempt, one per table in the order
/// given; with `nowait`, each gives up at once instead of queueing.
///
/// Sent from the client as plain statements in the attempt's one batch
/// (one round trip), not from a `DO` block: a database where `REVOKE USAGE
/// ON LANGUAGE plpgsql FROM PUBLIC` was run (some hardened Supabase and RDS
/// setups) lets no non-superuser run a `DO` block, and the lock step of
/// every push and rollback failed there with a raw "permission denied for
/// language plpgsql" (issue 10 Q3, a regression of 656619a, whose `DO`
/// block decided the order on the server). The order is decided here from
/// what the previous failed attempt saw instead (see
/// [`probe_in_attempts`]); the round trips stay what they were.
fn lock_statements(locks: &[(String, LockMode)], nowait: bool) -> String {
    locks
        .iter()
        .map(|(t, m)| {
            format!(
                "LOCK TABLE {} IN {} MODE{};",
                crate::types::quote_table(t),
                m.sql(),
                if nowait { " NOWAIT" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `locks` with the tables another session holds a lock on (`held`, as
/// [`held_by_others`] reads them) first, then the rest, each group in the
/// order given. Waiting for a held table is then done holding none of
/// the others: no session queues behind a lock we took while we wait, and
/// an app transaction that read the held table and will next write another
/// one we need is waited out instead of meeting our lock (a cycle only the
/// attempt's timeout could end). In any fixed order one case or the other
/// held a lock while waiting: by name, `jtbd_library` was held while a
/// reader of `workflows` was waited for; referenced tables first,
/// `workflows` while a reader of `jtbd_library` was. When several tables
/// are held, the order given (the caller's: the push lists the tables its
/// keys reference first) decides among them.
fn held_first(locks: &[(String, LockMode)], held: &[String]) -> Vec<(String, LockMode)> {
    let (mut first, rest): (Vec<_>, Vec<_>) =
        locks.iter().cloned().partition(|(t, _)| held.contains(t));
    first.extend(rest);
    first
}

/// Of `locks`' tables, those another session holds any lock on right now
/// (in this database). `to_regclass`: a table gone since is no error here
/// (the next attempt's `LOCK TABLE` names it, see [`TablesGone`]).
async fn held_by_others(tx: &Transaction<'_>, locks: &[(String, LockMode)]) -> Result<Vec<String>> {
    let names: Vec<String> = locks
        .iter()
        .map(|(t, _)| crate::types::quote_table(t))
        .collect();
    let rows = tx
        .query_typed(
            "SELECT t.ord FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) \
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks h \
               WHERE h.locktype = 'relation' AND h.relation = pg_catalog.to_regclass(t.name) \
                 AND h.database = (SELECT d.oid FROM pg_catalog.pg_database d \
                                   WHERE d.datname = pg_catalog.current_database()) \
                 AND h.pid <> pg_catalog.pg_backend_pid()) \
             ORDER BY t.ord",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot read pg_locks to see which tables other sessions hold")?;
    Ok(rows
        .iter()
        .filter_map(|r| usize::try_from(r.get::<_, i64>(0)).ok()?.checked_sub(1))
        .filter_map(|i| locks.get(i).map(|(t, _)| t.clone()))
        .collect())
}

/// Tables a lock attempt asked for that no longer exist under their names:
/// another session renamed or dropped them since the caller's snapshot or
/// receipt named them — often while the attempt waited for them, which
/// Postgres ends with `relation "public.workflows" does not exist` once
/// the lock is granted on a table that no longer has that name. Push and
/// rollback turn it into their own refusal (what to do differs); nothing
/// was written and the transaction goes on (the attempt was undone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesGone {
    /// As the caller named them (`workflows`, `auth.users`).
    pub tables: Vec<String>,
}

impl TablesGone {
    /// What push and rollback say of it, the same words for both: `table
    /// a no longer exists under its name — renamed or dropped since
    /// {since} (seen at the lock step, which may have waited for it
    /// meanwhile)`, in the plural for more than one. `since`: what named
    /// the tables ("the pull", "the push").
    pub fn described(&self, since: &str) -> String {
        let n = self.tables.len();
        let one = |one, many| crate::words::agreeing(n, one, many);
        format!(
            "{} {} no longer {} under {} — renamed or dropped since {since} (seen at the lock \
             step, which may have waited for {} meanwhile)",
            one("table", "tables"),
            self.tables.join(", "),
            one("exists", "exist"),
            one("its name", "their names"),
            one("it", "them"),
        )
    }
}

impl std::fmt::Display for TablesGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tables.len();
        let one = |one, many| crate::words::agreeing(n, one, many);
        write!(
            f,
            "{} no longer {} under {}: renamed or dropped by another session",
            self.tables.join(", "),
            one("exists", "exist"),
            one("its name", "their names"),
        )
    }
}

impl std::error::Error for TablesGone {}

/// The `pg_class.oid` each of `tables` (as the caller names them) answers
/// to, `None` where none does: read before the lock step (in a round trip
/// the preflight makes anyway), to tell after it whether the tables locked
/// are the ones the preflight read (see [`replaced_since`]).
pub async fn table_oids(
    tx: &Transaction<'_>,
    tables: &[String],
) -> Result<Vec<(String, Option<u32>)>> {
    let mut asked: Vec<String> = Vec::new();
    for t in tables {
        if !asked.contains(t) {
            asked.push(t.clone());
        }
    }
    if asked.is_empty() {
        return Ok(vec![]);
    }
    let names: Vec<String> = asked.iter().map(|t| crate::types::quote_table(t)).collect();
    let rows = tx
        .query_typed(
            "SELECT pg_catalog.to_regclass(t.name)::oid::int8 \
             FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) ORDER BY t.ord",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot look up the tables the push or rollback locks")?;
    Ok(asked
        .into_iter()
        .zip(rows.iter().map(|r| {
            r.get::<_, Option<i64>>(0)
                .and_then(|oid| u32::try_from(oid).ok())
        }))
        .collect())
}

/// A table locked under its name that is not the table the preflight read
/// under it: between the two (often while the lock step waited for it)
/// another session renamed or dropped that one and made another under the
/// name — `ALTER TABLE workflows RENAME TO workflows_old; CREATE TABLE
/// workflows (LIKE workflows_old INCLUDING ALL); INSERT … SELECT …`. Same
/// name, maybe the same rows, but its triggers, grants, policies and the
/// foreign keys pointing at it are not the ones the preflight read: the
/// run is refused by name, nothing written (see [`TablesReplaced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// As the caller named it (`workflows`, `auth.users`).
    pub table: String,
    /// The oid the preflight read; `None`: no table had the name then.
    pub then: Option<u32>,
    /// The oid the name holds now, under the lock.
    pub now: u32,
    /// Where the table the preflight read is now (`schema.name`), `None`
    /// when it was dropped.
    pub then_is_now: Option<String>,
    /// The triggers (not Postgres's internal ones) of the table the
    /// preflight read, and of the table under the name now, by name.
    pub triggers_then: Vec<String>,
    pub triggers_now: Vec<String>,
}

impl Replaced {
    /// `table workflows was replaced since the preflight read it — another
    /// table has its name now (oid 1 then, 2 now; the one read then is
    /// public.workflows_old now), and its triggers are not the ones the
    /// preflight listed (workflows_set_updated_at then, none now)`.
    fn described(&self, read_by: &str) -> String {
        let oids = match self.then {
            Some(then) => format!("oid {then} then, {} now", self.now),
            None => format!("no table had its name then, oid {} now", self.now),
        };
        let where_then = match (&self.then_is_now, self.then) {
            (Some(at), _) => format!("; the one read then is {at} now"),
            (None, Some(_)) => "; the one read then is dropped".to_string(),
            (None, None) => String::new(),
        };
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        // The trigger oids differ whatever their names: the preflight's
        // record of them (compared by oid) holds none of these.
        let triggers = if self.triggers_then.is_empty() && self.triggers_now.is_empty() {
            String::new()
        } else {
            format!(
                ", and its triggers are not the ones {read_by} listed ({} then, {} now)",
                list(&self.triggers_then),
                list(&self.triggers_now)
            )
        };
        format!(
            "table {} was replaced since {read_by} read it — another table has its name now \
             ({oids}{where_then}){triggers}",
            self.table
        )
    }
}

/// The tables of a run that [`replaced_since`] found replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesReplaced {
    pub tables: Vec<Replaced>,
}

impl TablesReplaced {
    /// What push and rollback say of it, the same words for both (as
    /// [`TablesGone::described`]): each table, then `(seen at the lock
    /// step, which may have waited for it meanwhile)`. `read_by`: what
    /// read the tables before the lock step ("the preflight").
    pub fn described(&self, read_by: &str) -> String {
        let n = self.tables.len();
        format!(
            "{} (seen at the lock step, which may have waited for {} meanwhile)",
            self.tables
                .iter()
                .map(|r| r.described(read_by))
                .collect::<Vec<_>>()
                .join("; "),
            crate::words::agreeing(n, "it", "them"),
        )
    }

    /// One failed check per table, for the refusal's report.
    pub fn checks(&self, phase: &str) -> Vec<crate::plan::checks::Check> {
        self.tables
            .iter()
            .map(|r| {
                let mut c = crate::plan::checks::Check::equal(
                    phase,
                    &format!("{} is the table the preflight read", r.table),
                    crate::plan::checks::CheckKind::Integrity,
                    r.then
                        .map_or_else(|| "no table".to_string(), |o| format!("oid {o}")),
                    format!("oid {}", r.now),
                );
                c.ok = false;
                c
            })
            .collect()
    }
}

/// Of `then` (what [`table_oids`] read before the lock step), the tables
/// whose name another table holds now. Read under the locks, which no
/// `ALTER TABLE … RENAME` or `DROP TABLE` gets past, so what it finds
/// stays true until COMMIT; callers send it with their first read under
/// the locks (pipelined: no round trip of its own). A table that has no
/// name now is not here: the lock step named it ([`TablesGone`]).
pub async fn replaced_since(
    tx: &Transaction<'_>,
    then: &[(String, Option<u32>)],
) -> Result<TablesReplaced> {
    if then.is_empty() {
        return Ok(TablesReplaced { tables: vec![] });
    }
    let names: Vec<String> = then
        .iter()
        .map(|(t, _)| crate::types::quote_table(t))
        .collect();
    let oids: Vec<Option<i64>> = then.iter().map(|(_, o)| o.map(i64::from)).collect();
    let rows = tx
        .query_typed(
            "SELECT t.ord, pg_catalog.to_regclass(t.name)::oid::int8, \
                    (SELECT n.nspname::text || '.' || c.relname::text \
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.oid = t.read::oid), \
                    (SELECT coalesce(pg_catalog.array_agg(g.tgname::text ORDER BY g.tgname), '{}') \
                     FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.read::oid AND NOT g.tgisinternal), \
                    (SELECT coalesce(pg_catalog.array_agg(g.tgname::text ORDER BY g.tgname), '{}') \
                     FROM pg_catalog.pg_trigger g \
                     WHERE g.tgrelid = pg_catalog.to_regclass(t.name) AND NOT g.tgisinternal) \
             FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS t(name, read, ord) \
             WHERE pg_catalog.to_regclass(t.name) IS NOT NULL \
               AND pg_catalog.to_regclass(t.name)::oid::int8 IS DISTINCT FROM t.read \
             ORDER BY t.ord",
            &[
                (&names, tokio_postgres::types::Type::TEXT_ARRAY),
                (&oids, tokio_postgres::types::Type::INT8_ARRAY),
            ],
        )
        .await
        .context("cannot look up whether the locked tables are the ones the preflight read")?;
    let mut tables = Vec::new();
    for r in &rows {
        let Some((table, then)) = usize::try_from(r.get::<_, i64>(0))
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| then.get(i))
        else {
            continue;
        };
        let Some(now) = r
            .get::<_, Option<i64>>(1)
            .and_then(|o| u32::try_from(o).ok())
        else {
            continue;
        };
        tables.push(Replaced {
            table: table.clone(),
            then: *then,
            now,
            then_is_now: r.get(2),
            triggers_then: r.get(3),
            triggers_now: r.get(4),
        });
    }
    Ok(TablesReplaced { tables })
}

/// Of `tables` (as the caller names them), those no table answers to now.
async fn gone_tables(tx: &Transaction<'_>, tables: &[String]) -> Result<Vec<String>> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| crate::types::quote_table(t))
        .collect();
    let rows = tx
        .query_typed(
            "SELECT t.ord FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) \
             WHERE pg_catalog.to_regclass(t.name) IS NULL ORDER BY t.ord",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot look up the tables the lock step asked for")?;
    Ok(rows
        .iter()
        .filter_map(|r| usize::try_from(r.get::<_, i64>(0)).ok()?.checked_sub(1))
        .filter_map(|i| tables.get(i).cloned())
        .collect())
}

fn is_undefined_table(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| d.code().code() == "42P01")
}

/// [`lock_in_attempts`], where each attempt also proves that the `probe`
/// locks can be had right now, without keeping them: taken under a nested
/// savepoint that is rolled back at once, which releases them. For locks
/// needed only later and only briefly (the rehearsed undo's DROP, under
/// its own savepoint): a session holding them is waited for with the
/// others, in attempts, while readers of those tables are not made to
/// wait until COMMIT.
pub async fn probe_in_attempts(
    tx: &Transaction<'_>,
    locks: &[(String, LockMode)],
    rows: &[RowLock],
    probe: &[(String, LockMode)],
    total_ms: u64,
) -> Result<std::result::Result<(), LockTimeout>> {
    if locks.is_empty() && rows.is_empty() && probe.is_empty() {
        return Ok(Ok(()));
    }
    let sorted = in_the_order_asked(locks);
    let mut probed = probe.to_vec();
    probed.sort();
    probed.dedup();
    // The first attempt takes the locks in the order asked, each NOWAIT:
    // when nothing is in the way (the usual case) that is the whole lock
    // step, in one round trip. When something is, it fails at once,
    // having queued nowhere, and says so with 55P03 like a timed-out
    // attempt; leaving it, the same round trip reads which tables other
    // sessions hold, and every later attempt takes those first and waits
    // for them (see `held_first`), each read at the failure before it.
    // The order was decided on the server by a `DO` block before; that
    // needs USAGE on plpgsql (see `lock_statements`). Round trips per
    // attempt are the same (the attempt, then leaving it with what is
    // read); a contended lock step pays the NOWAIT attempt once (two
    // round trips, and no pause after it), and the order it waits in is
    // the one seen at the previous failure, a pause (~100 ms) old.
    let attempt = |order: &[(String, LockMode)], nowait: bool| {
        let mut stmts = Vec::new();
        if !order.is_empty() {
            stmts.push(lock_statements(order, nowait));
        }
        stmts.extend(rows.iter().map(RowLock::lock_sql));
        for (t, mode) in &probed {
            stmts.push(format!(
                "SAVEPOINT sandbox_probe; LOCK TABLE {} IN {} MODE{}; \
                 ROLLBACK TO SAVEPOINT sandbox_probe; RELEASE SAVEPOINT sandbox_probe;",
                crate::types::quote_table(t),
                mode.sql(),
                if nowait { " NOWAIT" } else { "" }
            ));
        }
        // The timeout and the attempt travel together: one round trip.
        format!(
            "SET LOCAL lock_timeout = '{}ms'; SAVEPOINT sandbox_lock; {} RELEASE SAVEPOINT sandbox_lock;",
            LOCK_ATTEMPT_MS.min(total_ms).max(1),
            stmts.join(" ")
        )
    };
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut order = sorted.clone();
    let mut nowait = true;
    loop {
        attempts += 1;
        match tx.batch_execute(&attempt(&order, nowait)).await {
            Ok(()) => return Ok(Ok(())),
            Err(e) if is_lock_timeout(&e) => {
                // Leaving the attempt, asking who queues behind what we
                // still hold and which tables other sessions hold: one
                // round trip (pipelined, in this order).
                let asked_now: Vec<(String, LockMode)> =
                    probed.iter().chain(&sorted).cloned().collect();
                let (left, queued, waiting, held) = futures_util::join!(
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT sandbox_lock; RELEASE SAVEPOINT sandbox_lock",
                    ),
                    queued_behind_exclusive(tx),
                    waiting_on_us(tx, &asked_now),
                    held_by_others(tx, &sorted)
                );
                left.context("cannot leave the failed lock attempt")?;
                let queued_behind_us = queued?;
                let waiting_on_us = waiting?;
                order = held_first(&sorted, &held?);
                let spent = started.elapsed();
                // The NOWAIT attempt waited for nothing and no pause
                // follows it: one waiting attempt always comes after it,
                // or a --lock-timeout under a pause and an attempt (~450
                // ms) would give up having waited 0 ms for a lock the app
                // releases in 100.
                let out_of_time = !nowait
                    && spent
                        + Duration::from_millis(
                            LOCK_PAUSE_MS * 3 / 2 + LOCK_ATTEMPT_MS.min(total_ms),
                        )
                        > Duration::from_millis(total_ms);
                if !queued_behind_us.is_empty() || !waiting_on_us.is_empty() || out_of_time {
                    // The probed modes first: the stronger ask names
                    // more of the sessions in the way.
                    let asked: Vec<(String, LockMode)> =
                        probed.iter().chain(&sorted).cloned().collect();
                    let mut blockers = blockers(tx, &asked).await?;
                    let held = row_blockers(tx, rows).await?;
                    let rows_held = !held.is_empty();
                    blockers.extend(held);
                    let mut tables: Vec<String> = sorted.iter().map(|(t, _)| t.clone()).collect();
                    for (t, _) in &probed {
                        if !tables.contains(t) {
                            tables.push(t.clone());
                        }
                    }
                    for r in rows {
                        let held = format!("the rows of {} it writes or references", r.table);
                        if !tables.contains(&held) {
                            tables.push(held);
                        }
                    }
                    return Ok(Err(LockTimeout {
                        tables,
                        attempts,
                        blockers,
                        rows_held,
                        queued_behind_us,
                        waiting_on_us,
                    }));
                }
                if !nowait {
                    tokio::time::sleep(pause()).await;
                }
                nowait = false;
            }
            Err(e) if is_undefined_table(&e) => {
                // A table asked for was renamed or dropped (see
                // [`TablesGone`]): named, with the attempt undone, instead
                // of Postgres's bare "relation … does not exist".
                let mut asked: Vec<String> = sorted.iter().map(|(t, _)| t.clone()).collect();
                for t in probed
                    .iter()
                    .map(|(t, _)| t)
                    .chain(rows.iter().map(|r| &r.table))
                {
                    if !asked.contains(t) {
                        asked.push(t.clone());
                    }
                }
                let (left, gone) = futures_util::join!(
                    tx.batch_execute(
                        "ROLLBACK TO SAVEPOINT sandbox_lock; RELEASE SAVEPOINT sandbox_lock",
                    ),
                    gone_tables(tx, &asked)
                );
                left.context("cannot leave the failed lock attempt")?;
                let gone = gone?;
                if !gone.is_empty() {
                    return Err(anyhow::Error::new(TablesGone { tables: gone }));
                }
                return Err(crate::db::postgres::explain_query_error(
                    &e,
                    "cannot lock the tables",
                ));
            }
            Err(e) => {
                // Row-level security that applies to the role stops the
                // lock step first (the tool runs with row_security = off,
                // so no policy is ever evaluated for its statements): say
                // so and what role to use, not a raw database error.
                return Err(crate::db::postgres::explain_query_error(
                    &e,
                    "cannot lock the tables",
                ));
            }
        }
    }
}

/// The tables this transaction holds in ACCESS EXCLUSIVE mode that another
/// session is waiting to lock: readers held up by us for as long as we wait
/// for anything more. Tables created in this transaction are invisible to
/// other sessions, so nobody queues for them.
async fn queued_behind_exclusive(tx: &Transaction<'_>) -> Result<Vec<String>> {
    let rows = tx
        .query_typed(
            "SELECT DISTINCT c.relname::text FROM pg_locks h \
             JOIN pg_locks w ON w.locktype = 'relation' AND w.database = h.database \
              AND w.relation = h.relation AND NOT w.granted AND w.pid <> h.pid \
             JOIN pg_class c ON c.oid = h.relation \
             WHERE h.pid = pg_backend_pid() AND h.locktype = 'relation' AND h.granted \
               AND h.mode = 'AccessExclusiveLock' \
             ORDER BY 1",
            &[],
        )
        .await
        .context("cannot read pg_locks to see who waits behind this transaction")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The sessions holding a lock that conflicts with what we asked for while
/// waiting for this transaction themselves: an app inserting a row that
/// references a row we deleted waits for our row lock, holding ROW SHARE on
/// the referenced table, which our later ACCESS EXCLUSIVE (a DROP) must
/// wait for. Neither can go on; retrying until `--lock-timeout` would only
/// keep the app waiting that long (each attempt is shorter than
/// `deadlock_timeout`, so Postgres never breaks the cycle for us).
async fn waiting_on_us(tx: &Transaction<'_>, asked: &[(String, LockMode)]) -> Result<Vec<Waiter>> {
    let names: Vec<String> = asked
        .iter()
        .map(|(t, _)| crate::types::quote_table(t))
        .collect();
    // With what the session waits for (a backend waits for one lock at a
    // time): a table lock, or rows (their transaction or tuple lock).
    let rows = tx
        .query_typed(
            "SELECT l.pid, t.name, l.mode, \
               (SELECT w.locktype || ' ' || coalesce(w.relation::regclass::text, '') \
                FROM pg_locks w WHERE w.pid = l.pid AND NOT w.granted LIMIT 1) \
             FROM pg_locks l \
             JOIN unnest($1::text[]) AS t(name) ON l.relation = pg_catalog.to_regclass(t.name) \
             WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() \
               AND pg_backend_pid() = ANY(pg_catalog.pg_blocking_pids(l.pid))",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot read pg_locks to see who waits for this transaction")?;
    let mut out: Vec<Waiter> = Vec::new();
    for r in &rows {
        let pid: i32 = r.get(0);
        let name: String = r.get(1);
        let mode: String = r.get(2);
        let waits: Option<String> = r.get(3);
        let conflicts = asked.iter().any(|(t, m)| {
            crate::types::quote_table(t) == name && m.conflicts().contains(&mode.as_str())
        });
        if conflicts && !out.iter().any(|w| w.pid == pid) {
            let table = waits
                .as_deref()
                .and_then(|w| w.strip_prefix("relation "))
                .map(|t| t.trim_start_matches("public.").to_string());
            out.push(Waiter { pid, table });
        }
    }
    Ok(out)
}

/// A session in the way that waits for this transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub pid: i32,
    /// The table whose lock it waits for, or `None` when it waits for rows
    /// this transaction locked or changed.
    pub table: Option<String>,
}

/// What the sessions in `waiting` wait for, as the refusal says it: `pid 1
/// is waiting for table workflows, which this transaction holds locked;
/// pid 2 is waiting for rows …`.
fn waiting_for(waiting: &[Waiter]) -> String {
    let mut parts = Vec::new();
    let mut tables: Vec<&str> = waiting.iter().filter_map(|w| w.table.as_deref()).collect();
    tables.sort();
    tables.dedup();
    for t in tables {
        let pids: Vec<i32> = waiting
            .iter()
            .filter(|w| w.table.as_deref() == Some(t))
            .map(|w| w.pid)
            .collect();
        parts.push(format!(
            "{} waiting to lock table {t}, which this transaction already holds locked (as an \
             app transaction that read a table this transaction must lock exclusively and then writes \
             one it has locked does)",
            pid_list(&pids)
        ));
    }
    let rows: Vec<i32> = waiting
        .iter()
        .filter(|w| w.table.is_none())
        .map(|w| w.pid)
        .collect();
    if !rows.is_empty() {
        parts.push(format!(
            "{} waiting for rows this transaction had already locked or changed, as an app \
             writing rows that reference them does",
            pid_list(&rows)
        ));
    }
    parts.join("; ")
}

/// The sessions holding locks that conflict with what we asked for: pid,
/// user, application name, state, since when, and what they run.
pub async fn blockers(tx: &Transaction<'_>, locks: &[(String, LockMode)]) -> Result<Vec<String>> {
    let names: Vec<String> = locks.iter().map(|(t, _)| t.clone()).collect();
    // `query_typed`: one unnamed statement (no named statement a
    // transaction-mode pooler could strand on another server connection).
    let rows = tx
        .query_typed(
            &format!(
                "SELECT {SESSION_COLUMNS}, c.relname::text, l.mode \
             FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.granted AND c.relname::text = ANY($1) AND a.pid <> pg_backend_pid() \
             ORDER BY a.pid, c.relname"
            ),
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("cannot read pg_locks to name the blocking sessions")?;
    let mut out: Vec<String> = Vec::new();
    for r in &rows {
        let table: String = r.get(SESSION_COLUMN_COUNT);
        let mode: String = r.get(SESSION_COLUMN_COUNT + 1);
        let wanted = locks.iter().find(|(t, _)| *t == table).map(|(_, m)| *m);
        if !wanted.is_some_and(|m| m.conflicts().contains(&mode.as_str())) {
            continue;
        }
        let line = session_line(r, &format!(" holds {mode} on {table}"));
        if !out.contains(&line) {
            out.push(line);
        }
    }
    Ok(out)
}

/// The columns of `pg_stat_activity a` that [`session_line`] reads, first
/// in a query: pid, user, application name, state, since when, statement,
/// whether those last three are hidden from us, and our role. A role
/// without `pg_read_all_stats` (Supabase's `postgres`) sees another role's
/// session with no state, no transaction start and "<insufficient
/// privilege>" for its statement.
pub const SESSION_COLUMNS: &str = "a.pid, coalesce(a.usename::text, ''), \
     coalesce(a.application_name, ''), coalesce(a.state, ''), \
     coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'HH24:MI:SS') || ' UTC, ' \
              || round(extract(epoch FROM clock_timestamp() - a.xact_start))::text || ' s ago', ''), \
     left(coalesce(a.query, ''), 4000), a.state IS NULL, current_user::text";

/// How many columns [`SESSION_COLUMNS`] are: a query's own columns follow.
pub const SESSION_COLUMN_COUNT: usize = 8;

/// A session in the way, from a row starting with [`SESSION_COLUMNS`]:
/// `pid N (user U, app 'A', STATE, in a transaction since T)WHAT: STATEMENT`;
/// for a session our role may not see the details of, says so and what
/// shows them, instead of blank fields.
pub fn session_line(r: &tokio_postgres::Row, what: &str) -> String {
    let (pid, user, app) = (
        r.get::<_, i32>(0),
        r.get::<_, String>(1),
        r.get::<_, String>(2),
    );
    if r.get::<_, bool>(6) {
        let role = r.get::<_, String>(7);
        return format!(
            "pid {pid} (user {user}, app '{app}'; its state, transaction start and statement are \
             not visible to role {role}: a member of pg_read_all_stats sees them, or ask \
             pg_stat_activity as a superuser){what}"
        );
    }
    let state = r.get::<_, String>(3);
    // An idle transaction runs nothing: waiting ends only when its client
    // commits or rolls back, which a crashed worker or a forgotten psql
    // never does. How to end it is said, with its pid.
    let idle = if state.starts_with("idle in transaction") {
        format!(
            " (idle in transaction: it holds its locks until its client commits or rolls back; \
             if that client is gone or stuck, end the session with \
             `SELECT pg_terminate_backend({pid})`)"
        )
    } else {
        String::new()
    };
    format!(
        "pid {pid} (user {user}, app '{app}', {state}, in a transaction since {}){what}: {}{idle}",
        r.get::<_, String>(4),
        statement_shape(&r.get::<_, String>(5), 120),
    )
}

/// Another session's statement as the blocker listing shows it: every
/// literal (quoted string, dollar-quoted body, number) replaced by `?` and
/// cut to `max` characters. Apps put tokens, keys and e-mail addresses in
/// literals, and the listing ends up in terminals and CI logs; the shape,
/// with pid and application name, is enough to find the session in
/// `pg_stat_activity`.
pub fn statement_shape(sql: &str, max: usize) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let word_before =
            i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == '$');
        if c == '\'' {
            // A string; '' inside stands for one quote. A backslash escapes
            // only in E'…' strings: with standard_conforming_strings on
            // (Postgres's default) 'C:\' ends at its second quote, and
            // treating that backslash as an escape would show the next
            // literal as text. The blocker's own setting is not known here,
            // so a backslash in a plain string makes the rest of the
            // statement a `?`: whichever way it ends, no value is shown.
            let escapes = i > 0
                && matches!(chars[i - 1], 'E' | 'e')
                && (i < 2 || !(chars[i - 2].is_alphanumeric() || chars[i - 2] == '_'));
            i += 1;
            while i < chars.len() {
                if chars[i] == '\\' {
                    if !escapes {
                        i = chars.len();
                        break;
                    }
                    i += 2;
                    continue;
                }
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            out.push('?');
            i += 1;
        } else if c == '$' && !word_before {
            // $tag$ … $tag$ (a $1 parameter is kept).
            let tag_end = chars[i + 1..]
                .iter()
                .position(|ch| !(ch.is_alphanumeric() || *ch == '_'))
                .map(|n| i + 1 + n);
            match tag_end {
                Some(e) if chars[e] == '$' => {
                    let tag: String = chars[i..=e].iter().collect();
                    let rest: String = chars[e + 1..].iter().collect();
                    let body_end = rest.find(&tag).map(|b| rest[..b].chars().count());
                    out.push('?');
                    i = match body_end {
                        Some(b) => e + 1 + b + tag.chars().count(),
                        None => chars.len(),
                    };
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() && !word_before {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push('?');
        } else {
            out.push(c);
            i += 1;
        }
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        let cut: String = out.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        out
    }
}

/// Key of the transaction-scoped advisory lock every push and rollback takes:
/// concurrent pushes serialize on it, and the loser then sees "already
/// applied" or drift.
pub const ADVISORY_LOCK_KEY: i64 = 0x5341_4e44_424f_5831; // "SANDBOX1"

/// Runs a query through the simple protocol and returns text rows: no named
/// statement, so a transaction-mode pooler is fine, and the same text form
/// the SQLite rehearsal compares.
pub async fn simple_rows(tx: &Transaction<'_>, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for msg in tx
        .simple_query(sql)
        .await
        .with_context(|| format!("Postgres cannot run: {sql}"))?
    {
        if let SimpleQueryMessage::Row(row) = msg {
            out.push(
                (0..row.len())
                    .map(|i| crate::types::value_text(row.get(i)))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Starts the push or rollback transaction: pinned session settings and
/// timeouts (`SET LOCAL`, pooler-safe), then the advisory lock that
/// serializes pushes and rollbacks.
pub async fn begin(
    client: &mut Client,
    statement_timeout_ms: u64,
    lock_timeout_ms: u64,
) -> Result<Transaction<'_>> {
    if lock_timeout_ms == 0 {
        // Postgres reads a lock_timeout of 0 as "wait forever".
        return Err(environment(
            "--lock-timeout must be at least 1 ms (Postgres would read 0 as \"wait forever\")",
        ));
    }
    // READ COMMITTED, whatever `default_transaction_isolation` says (a
    // database or role setting, or a SET a pooler kept on its server
    // connection): each statement then reads what is committed when it
    // starts, so the drift checks and rollback's "nothing references what
    // it removes" see every app change committed while we waited for the
    // table locks. Under REPEATABLE READ the snapshot would be fixed by the
    // first SELECT below, before those locks, and a change committed in
    // between would go unseen (and under SERIALIZABLE the push's own
    // writes of such rows would die with a raw 40001).
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .context("cannot start the transaction")?;
    // The search_path is pinned (SET LOCAL, in set_local_settings_sql, the
    // same path the pull read the catalog under) so that a database or role whose
    // default differs (Supabase adds `extensions`; some set '') runs the
    // plan's unqualified SQL the same way; the row writes run under the
    // app's own path (`search_path::AS_THE_APP`), so the database's triggers
    // resolve names as they do for the app.
    // SET CONSTRAINTS ALL IMMEDIATE: a deferred constraint trigger would
    // otherwise fire only at COMMIT, after the checks and the write
    // accounting, so its writes would go uncounted and its RAISE would
    // surface as a failed COMMIT. Immediate, it fires at the end of the
    // statement that queued it: counted, and refused by name like any
    // trigger.
    // Whether this transaction may write travels with the settings (one
    // round trip), and is answered before the advisory lock and any table
    // lock: a read-only server would otherwise refuse the push's first
    // LOCK or write halfway, with Postgres's bare "cannot execute … in a
    // read-only transaction".
    let answer = tx
        .simple_query(&format!(
            "{} SET CONSTRAINTS ALL IMMEDIATE; SET LOCAL statement_timeout = '{statement_timeout_ms}ms'; SET LOCAL lock_timeout = '{lock_timeout_ms}ms'; \
             {}; {READ_ONLY_SQL}; {GUARDED_SETTINGS_SQL}",
            set_local_settings_sql(),
            client_gone_sql(statement_timeout_ms)
        ))
        .await?;
    let rows: Vec<Vec<String>> = answer
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    let [_client_gone, read_only, guarded] = rows.as_slice() else {
        return Err(anyhow::anyhow!(
            "Postgres answered the transaction's settings query with {} rows instead of 3",
            rows.len()
        ));
    };
    let read_only: Vec<&str> = read_only.iter().map(String::as_str).collect();
    if let Some(why) = read_only_reason(&read_only) {
        return Err(environment(why));
    }
    let (database, user) = (read_only[2], read_only[3]);
    for (i, (name, wanted, why)) in GUARDED_SETTINGS.iter().enumerate() {
        let (current, source) = (&guarded[2 * i], &guarded[2 * i + 1]);
        if current == wanted {
            continue;
        }
        // Pinned only when it differs: both settings are superuser-only
        // (or need `GRANT SET ON PARAMETER`), and a role without that
        // privilege may not even SET the value it already has.
        if let Err(e) = tx
            .batch_execute(&format!("SET LOCAL {name} = {wanted}"))
            .await
        {
            let (place, undo) = where_set(name, source, database, user);
            return Err(environment(format!(
                "{name} is {current} for this session, set {place}: {why}. This role may not \
                 set it back to {wanted} for the transaction ({}). To undo it: {undo}; or connect \
                 as a role that may set it. Nothing was written and no lock was taken",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            )));
        }
    }
    if let Err(e) = tx
        .batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"
        ))
        .await
    {
        if e.as_db_error()
            .map(|d| d.code().code() == "55P03")
            .unwrap_or(false)
        {
            return Err(lock_refused(format!(
                "another `sandbox push` or `sandbox rollback` is running on this database and did not \
                 finish within the lock timeout ({lock_timeout_ms} ms). Nothing was written; retry when \
                 it is done, or raise --lock-timeout"
            )));
        }
        return Err(anyhow::Error::new(e).context("cannot take the sandbox advisory lock"));
    }
    crate::db::writes::record_start(&tx).await.context(
        "cannot read the storage and write counters of the tables at the start of the transaction",
    )?;
    Ok(tx)
}

/// How long Postgres waits for this client inside the transaction before
/// ending it. A longer silence means the client is gone or stopped: a
/// suspended process (SIGSTOP, a laptop lid closed) or a dropped network.
/// Its TCP connection may look alive all that time (a stopped process's
/// kernel still answers), so only this timeout frees the locks the app is
/// queued behind; without it they were held for the statement timeout (10
/// minutes by default). Not shorter: between statements the client compares
/// what it read back with the rehearsed rows; at 5 s, a push writing a
/// 300k-row table was ended every time.
pub const CLIENT_SILENCE_MS: u64 = 15_000;

/// How often [`computing`] speaks on the connection while the client
/// computes: far inside [`CLIENT_SILENCE_MS`] and any idle timeout a
/// database or role sets in seconds.
pub const KEEPALIVE_MS: u64 = 1_000;

/// Runs `work` — the client's own computation inside the open transaction
/// (what it read back against the rehearsed rows, the receipt, a progress
/// report) — on this thread, while another sends `SELECT 1` on the
/// transaction's connection every [`KEEPALIVE_MS`]. Between two
/// statements Postgres waits for the client, and ends the transaction
/// once that wait passes `idle_in_transaction_session_timeout` (the push
/// sets [`CLIENT_SILENCE_MS`]): a preflight of a 300k-row update was ended
/// there while the client computed (T7). A stopped client (SIGSTOP, a
/// closed laptop) stops both threads, so it is still ended after that
/// silence. The connection is driven on a thread of its own (see
/// `connect`), so the keepalive goes out while this thread is busy; it is
/// never waited for at the end (a `SELECT 1` queued behind a statement
/// this thread has not finished, a COPY, is left to answer into the void),
/// and an error it meets (the transaction failed already) is the next
/// statement's to report.
pub fn computing<T>(tx: &Transaction<'_>, work: impl FnOnce() -> T) -> T {
    let stop = tokio::sync::Notify::new();
    // Signalled however `work` ends, a panic too: the scope joins the
    // keepalive before it returns or unwinds.
    struct Stop<'a>(&'a tokio::sync::Notify);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.notify_one();
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| keep_alive(tx, &stop));
        let _stop = Stop(&stop);
        work()
    })
}

/// [`computing`]'s keepalive, until `stop`.
fn keep_alive(tx: &Transaction<'_>, stop: &tokio::sync::Notify) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        loop {
            tokio::select! {
                _ = stop.notified() => return,
                _ = tokio::time::sleep(Duration::from_millis(KEEPALIVE_MS)) => {}
            }
            tokio::select! {
                _ = stop.notified() => return,
                said = tx.batch_execute("SELECT 1") => {
                    if said.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// `SET LOCAL`s that make the server end the transaction when the client
/// is gone: `idle_in_transaction_session_timeout` ([`CLIENT_SILENCE_MS`])
/// while Postgres waits for the next statement, and `tcp_user_timeout` (Postgres 12 and later; earlier
/// servers lack it and are left as they are) while an answer it sends is
/// not taken. The latter is the statement timeout, not the silence: Linux
/// counts an answer the client's kernel holds back because the client is
/// busy computing (a full receive window, its probes answered) exactly as
/// one a dead network never acknowledges, so at 15 s a push busy with a
/// 300k-row table over a slow link lost its connection mid-answer. No
/// statement of the push may take longer than the statement timeout, and a
/// client is given as long to take an answer. One row.
///
/// The silence is not bounded by the statement timeout: that bounds the
/// server's work on one statement, not the client's time between two (its
/// keepalive speaks every [`KEEPALIVE_MS`]); bounded by it (V17),
/// `--statement-timeout 4000` ended a push whose client was suspended for
/// 4 s, and one under a second could end a push merely computing.
fn client_gone_sql(statement_timeout_ms: u64) -> String {
    format!(
        "{} \
         SELECT CASE WHEN current_setting('server_version_num')::int >= 120000 \
         THEN set_config('tcp_user_timeout', '{}', true) END",
        client_silence_sql(),
        statement_timeout_ms.min(i32::MAX as u64)
    )
}

/// `SET LOCAL idle_in_transaction_session_timeout` to
/// [`CLIENT_SILENCE_MS`], for a transaction that waits for its client
/// between statements: push, rollback, and pull (whose REPEATABLE READ
/// read waits while the snapshot writer catches up). A shorter limit set
/// on the database or role (Supabase projects set such limits) no longer
/// ends it, while a client that is gone still frees the server after that
/// silence. Pull died with a bare "connection closed" under a database's
/// `100ms` (V21).
pub fn client_silence_sql() -> String {
    format!("SET LOCAL idle_in_transaction_session_timeout = '{CLIENT_SILENCE_MS}ms';")
}

/// How a COMMIT that failed with the connection, not with an answer, is
/// said: Postgres may have committed before the connection went. Push and
/// rollback tell it apart from their other lost-connection errors (those
/// before COMMIT, which Postgres rolled back) by this text.
pub const COMMIT_UNKNOWN: &str = "the connection failed during COMMIT";

/// Commits `tx` (`what`: "the push", "the rollback"), saying on failure
/// what became of it. Postgres answering the COMMIT with an ERROR (a
/// deferred constraint, a serialization failure) rolled the transaction
/// back: `nothing` holds ("nothing was written"). A connection that failed
/// during COMMIT — dropped, or ended by the server with a FATAL, which may
/// come after the commit record is written — leaves the outcome unknown:
/// then `find_out` says how to learn it, never `nothing`.
pub async fn commit_or_say(
    tx: Transaction<'_>,
    what: &str,
    nothing: &str,
    find_out: &str,
) -> Result<()> {
    let Err(e) = tx.commit().await else {
        return Ok(());
    };
    let answered = e
        .as_db_error()
        .is_some_and(|d| !matches!(d.severity(), "FATAL" | "PANIC"));
    let e = anyhow::Error::new(e);
    if answered {
        return Err(e.context(format!(
            "COMMIT failed; Postgres rolled {what} back, {nothing}"
        )));
    }
    Err(e.context(format!(
        "{COMMIT_UNKNOWN}, so whether {what} landed is unknown. {find_out}"
    )))
}

/// Whether `e` is [`commit_or_say`]'s unknown outcome.
pub fn commit_unknown(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.to_string().contains(COMMIT_UNKNOWN))
}

/// The SQLSTATE and message of a FATAL error in `e`'s chain: the server
/// ending the session, as the answer to a request that was in flight (the
/// connection may not be seen closed yet).
pub fn fatal_in(e: &anyhow::Error) -> Option<(String, String)> {
    e.chain().find_map(|c| {
        if let Some(ended) = c.downcast_ref::<crate::db::postgres::ServerEnded>() {
            return Some((ended.code.clone(), ended.message.clone()));
        }
        c.downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.as_db_error())
            .filter(|d| d.severity() == "FATAL")
            .map(|d| (d.code().code().to_string(), d.message().to_string()))
    })
}

/// Why the server ended a session (see `SessionEnd`), in words, or `None`
/// when it said nothing (a dropped network). An idle-in-transaction
/// timeout names the limit a session of this role gets (asked on a new
/// connection), where it was set and what undoes it, when it is shorter
/// than [`CLIENT_SILENCE_MS`]: our own limit is set with the
/// transaction's first statement, so only a limit shorter than the round
/// trip from BEGIN to that statement can end it first. Otherwise it was
/// our limit: the client was silent that long.
pub async fn why_the_session_ended(
    target: &crate::db::postgres::Target,
    end: &crate::db::postgres::SessionEnd,
    e: &anyhow::Error,
) -> Option<String> {
    let (code, message) = end.said().or_else(|| fatal_in(e))?;
    if code != "25P03" {
        return Some(format!(
            "the server ended the session: {message} (SQLSTATE {code})"
        ));
    }
    let silent = format!(
        "the server ended the transaction ({message}): this client had been silent inside it for \
         {CLIENT_SILENCE_MS} ms (idle_in_transaction_session_timeout, which sandbox sets for its \
         own transactions): a suspended process or a dropped network"
    );
    let limit = async {
        let client = crate::db::postgres::connect(target).await.ok()?;
        let rows = client
            .simple_query(
                "SELECT setting, current_setting('idle_in_transaction_session_timeout'), source, \
                 current_database(), session_user FROM pg_settings \
                 WHERE name = 'idle_in_transaction_session_timeout'",
            )
            .await
            .ok()?;
        rows.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..5)
                    .map(|i| r.get(i).unwrap_or("").to_string())
                    .collect::<Vec<String>>(),
            ),
            _ => None,
        })
    }
    .await;
    let Some([setting, shown, source, database, user]) =
        limit.and_then(|l| <[String; 5]>::try_from(l).ok())
    else {
        return Some(format!(
            "the server ended the transaction ({message}): see SHOW \
             idle_in_transaction_session_timeout"
        ));
    };
    match setting.parse::<u64>() {
        Ok(ms) if ms > 0 && ms < CLIENT_SILENCE_MS => {
            let (place, undo) = where_set(
                "idle_in_transaction_session_timeout",
                &source,
                &database,
                &user,
            );
            Some(format!(
                "the server ended the transaction ({message}): idle_in_transaction_session_timeout \
                 is {shown} for this role's sessions, set {place}, and the server waited longer \
                 than that for this client before the transaction's first statement, which sets \
                 {CLIENT_SILENCE_MS} ms for it: the limit is shorter than a round trip to the \
                 server. To undo it: {undo}, or raise it above a few seconds"
            ))
        }
        _ => Some(silent),
    }
}

/// Whether the transaction may write, and why not: `transaction_read_only`,
/// `pg_is_in_recovery()`, the database's name, the login role (a setting
/// `ALTER ROLE … SET` made applies to the role a session logs in as, not to
/// one a `SET ROLE` switched to, so that is the role to reset it on), the
/// value of
/// `default_transaction_read_only` and where it was set (`pg_settings.source`).
const READ_ONLY_SQL: &str = "SELECT current_setting('transaction_read_only'), \
     pg_is_in_recovery()::text, current_database()::text, session_user::text, \
     current_setting('default_transaction_read_only'), \
     (SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only')";

/// Settings push and rollback cannot work under, the value they need and
/// why: both are pinned with `SET LOCAL` when they differ, or the push
/// refuses before any lock.
pub(crate) const GUARDED_SETTINGS: &[(&str, &str, &str)] = &[
    (
        "session_replication_role",
        "origin",
        "under `replica` no ordinary trigger and no foreign key fires, so the database's \
         business rules, audit triggers and foreign keys would be skipped while the output says \
         they fire",
    ),
    (
        "track_counts",
        "on",
        "with it off Postgres counts no writes (pg_stat_xact_user_tables stays empty), so the \
         write accounting that proves nothing outside the plan was written would see nothing",
    ),
];

/// Each [`GUARDED_SETTINGS`] entry's current value and `pg_settings.source`.
const GUARDED_SETTINGS_SQL: &str = "SELECT current_setting('session_replication_role'), \
     (SELECT source FROM pg_settings WHERE name = 'session_replication_role'), \
     current_setting('track_counts'), \
     (SELECT source FROM pg_settings WHERE name = 'track_counts')";

/// Where a setting's value comes from (`pg_settings.source`), in words, and
/// what undoes it there.
fn where_set(setting: &str, source: &str, database: &str, user: &str) -> (String, String) {
    let (database_sql, user_sql) = (quote_ident(database), quote_ident(user));
    match source {
        "database" => (
            format!("for the database ({database})"),
            format!("`ALTER DATABASE {database_sql} RESET {setting}`"),
        ),
        "user" => (
            format!("for the role {user}"),
            format!("`ALTER ROLE {user_sql} RESET {setting}`"),
        ),
        "database user" => (
            format!("for the role {user} in the database {database}"),
            format!("`ALTER ROLE {user_sql} IN DATABASE {database_sql} RESET {setting}`"),
        ),
        "client" => (
            "by the connection (the URL's options or PGOPTIONS)".to_string(),
            "remove it from the connection options".to_string(),
        ),
        "session" => (
            "by a `SET` on this server connection (a transaction pooler keeps one client's SET \
             for the next client; a restore script's first lines set session_replication_role)"
                .to_string(),
            format!(
                "`RESET {setting}` on that connection, or reconnect the pooler's server \
                 connections"
            ),
        ),
        other => (
            format!("in the server's {other}"),
            "set it back where it is set".to_string(),
        ),
    }
}

/// What to tell a user whose server is read-only for this session (from
/// [`READ_ONLY_SQL`]'s row), or `None` when the transaction may write.
/// Push and rollback only write, so neither is worth starting there; pull
/// reads in a READ ONLY transaction and works as ever.
fn read_only_reason(row: &[&str]) -> Option<String> {
    let [read_only, recovery, database, user, default_read_only, source] = row else {
        return None;
    };
    if *read_only != "on" {
        return None;
    }
    let nothing = "Nothing was written and no lock was taken";
    if *recovery == "true" {
        return Some(format!(
            "the server is a read-only standby (pg_is_in_recovery() is true: it replays another \
             server's changes and accepts no writes). Push and rollback write: connect to the \
             primary server instead (on Supabase, the project's database URL, not a read \
             replica's). {nothing}"
        ));
    }
    if *default_read_only == "on" {
        let (place, undo) = where_set("default_transaction_read_only", source, database, user);
        return Some(format!(
            "the database is read-only for this session: default_transaction_read_only = on, set \
             {place} (Supabase sets it on the database when the project's disk is full). Push \
             and rollback write: free space first if the disk is full, then {undo}, or connect \
             as a role it does not apply to; pull still works. {nothing}"
        ));
    }
    Some(format!(
        "the transaction is read-only (transaction_read_only = on): push and rollback write. \
         {nothing}"
    ))
}

/// Of `tables` (as a plan names them: `workflows`, `auth.users`), those
/// that exist and that this role may not `LOCK` in SHARE ROW EXCLUSIVE or
/// a stronger mode: that takes UPDATE, DELETE or TRUNCATE on the table
/// (or its ownership). A table a foreign key of the plan only references
/// needs no more than REFERENCES (Supabase's `auth.users`, owned by
/// another role): for such a table the key's own DDL takes its lock,
/// under the transaction's `lock_timeout` of one attempt, instead of
/// `LOCK TABLE` beforehand.
pub async fn not_lockable(tx: &Transaction<'_>, tables: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in tables {
        let quoted = crate::types::quote_table(t);
        let row = tx
            .query_typed(
                "SELECT CASE WHEN pg_catalog.to_regclass($1) IS NULL THEN false \
                    ELSE NOT pg_catalog.has_table_privilege($1, 'UPDATE,DELETE,TRUNCATE') END",
                &[(&quoted, tokio_postgres::types::Type::TEXT)],
            )
            .await
            .with_context(|| format!("cannot read this role's privileges on {t}"))?;
        if row[0].get::<_, bool>(0) && !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// Takes `locks` in short attempts (see the module comment); on
/// timeout refuses, naming the sessions in the way.
pub async fn lock_tables(
    tx: &Transaction<'_>,
    locks: &[(String, LockMode)],
    lock_timeout_ms: u64,
) -> Result<()> {
    lock_tables_and_rows(tx, locks, &[], lock_timeout_ms).await
}

/// [`lock_tables`], and `rows` in the same attempts (see `rowlock`).
pub async fn lock_tables_and_rows(
    tx: &Transaction<'_>,
    locks: &[(String, LockMode)],
    rows: &[RowLock],
    lock_timeout_ms: u64,
) -> Result<()> {
    lock_and_probe(tx, locks, rows, &[], lock_timeout_ms).await
}

/// [`lock_tables_and_rows`], proving in the same attempts that `probe`
/// can be had (see [`probe_in_attempts`]).
pub async fn lock_and_probe(
    tx: &Transaction<'_>,
    locks: &[(String, LockMode)],
    rows: &[RowLock],
    probe: &[(String, LockMode)],
    lock_timeout_ms: u64,
) -> Result<()> {
    match probe_in_attempts(tx, locks, rows, probe, lock_timeout_ms).await? {
        Ok(()) => Ok(()),
        Err(t) => Err(lock_refused(format!(
            "could not lock {} {}: another session holds them{}. Nothing was written; retry when \
                 it is done{}{}",
            t.tables.join(", "),
            if !t.waiting_on_us.is_empty() {
                format!(
                    "({}: neither could go on, so it gave up after {} of at most \
                     {LOCK_ATTEMPT_MS} ms rather than keep {} waiting)",
                    waiting_for(&t.waiting_on_us),
                    crate::words::counted(t.attempts, "attempt", "attempts"),
                    if t.waiting_on_us.len() == 1 {
                        "it"
                    } else {
                        "them"
                    }
                )
            } else if t.queued_behind_us.is_empty() {
                format!(
                        "within the lock timeout ({lock_timeout_ms} ms, {} of at most \
                         {LOCK_ATTEMPT_MS} ms, so no other session waited behind this transaction for longer \
                         than one attempt)",
                        crate::words::counted(t.attempts, "attempt", "attempts")
                    )
            } else {
                format!(
                    "while holding ACCESS EXCLUSIVE on {}, which other sessions were waiting \
                         for: gave up after {} of at most {LOCK_ATTEMPT_MS} ms rather than \
                         keep them waiting",
                    t.queued_behind_us.join(", "),
                    crate::words::counted(t.attempts, "attempt", "attempts")
                )
            },
            if t.blockers.is_empty() {
                " (it had finished when we looked)".to_string()
            } else {
                format!(": {}", t.blockers.join("; "))
            },
            if t.queued_behind_us.is_empty() && t.waiting_on_us.is_empty() {
                ", or raise --lock-timeout"
            } else {
                ""
            },
            if t.rows_held {
                ". A session keeps the rows it locked (SELECT … FOR UPDATE) or changed until its \
                     transaction ends: let it commit or roll back, or end a stuck one with \
                     SELECT pg_terminate_backend(pid)"
            } else {
                ""
            }
        ))),
    }
}

/// `pid 1 is` or `pids 1, 2 are`: the subject of the refusal.
fn pid_list(pids: &[i32]) -> String {
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    if pids.len() == 1 {
        format!("pid {} is", list[0])
    } else {
        format!("pids {} are", list.join(", "))
    }
}

/// [`guarded_settings_still_held`] as a refusal: push and rollback each
/// word it (`refusal` gets what was found, its rows joined by `; `) and
/// the failed check goes with it.
pub async fn refuse_unless_settings_held(
    tx: &Transaction<'_>,
    after: &str,
    refusal: impl FnOnce(String) -> String,
) -> Result<()> {
    match guarded_settings_still_held(tx, after).await? {
        None => Ok(()),
        Some(check) => Err(crate::error::refused(
            refusal(check.rows.join("; ")),
            vec![check],
        )),
    }
}

/// The guarded settings read again inside the transaction, `after` some
/// step ("phase 1", "the receipt and the write accounting"). [`begin`]
/// pins them at the start, but a `SET LOCAL` cannot stop a trigger or event
/// trigger the push's own writes or DDL fire from calling
/// `set_config('session_replication_role', 'replica', true)`: from then on
/// Postgres skips every ordinary trigger and foreign-key check for the rest
/// of the transaction while the output would say they fire. A failed check
/// when one differs, naming the app functions whose source mentions the
/// setting (with their triggers and event triggers); `None` when both hold.
/// One round trip: the catalog is searched only when a setting differs.
pub async fn guarded_settings_still_held(
    tx: &Transaction<'_>,
    after: &str,
) -> Result<Option<crate::plan::checks::Check>> {
    // query_typed: an unnamed statement, so no Close of a prepared one is
    // left pending before the COMMIT that follows (a COMMIT-cutting test
    // proxy answers only the COMMIT, and a pooler prefers it too).
    let rows = tx
        .query_typed(
            "WITH now AS (SELECT current_setting('session_replication_role') AS srr, \
                    current_setting('track_counts') AS tc) \
             SELECT srr, tc, CASE WHEN srr <> 'origin' OR tc <> 'on' THEN \
               (SELECT string_agg(format('%s.%s()', n.nspname, p.proname) || \
                   coalesce(' (' || (SELECT string_agg(x, ', ' ORDER BY x) FROM ( \
                       SELECT format('trigger %s on %s', t.tgname, t.tgrelid::regclass) AS x \
                         FROM pg_trigger t WHERE t.tgfoid = p.oid AND NOT t.tgisinternal \
                       UNION ALL \
                       SELECT format('event trigger %s on %s', e.evtname, e.evtevent) \
                         FROM pg_event_trigger e WHERE e.evtfoid = p.oid) w) || ')', ''), \
                   '; ' ORDER BY n.nspname, p.proname) \
                  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND ((srr <> 'origin' AND p.prosrc ILIKE '%session\\_replication\\_role%') \
                     OR (tc <> 'on' AND p.prosrc ILIKE '%track\\_counts%'))) \
             END FROM now",
            &[],
        )
        .await
        .context("cannot read session_replication_role and track_counts again")?;
    let row = rows
        .first()
        .context("Postgres answered the settings query with no row")?;
    let now = [row.get::<_, String>(0), row.get::<_, String>(1)];
    let functions: Option<String> = row.get(2);
    let changed: Vec<String> = GUARDED_SETTINGS
        .iter()
        .zip(&now)
        .filter(|((_, wanted, _), current)| current.as_str() != *wanted)
        .map(|((name, wanted, why), current)| {
            format!(
                "{name} is {current} after {after}: it was {wanted} when the transaction \
                 started and was changed inside it (set_config(…, true) in a trigger or event \
                 trigger that the writes or DDL fired); {why}"
            )
        })
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    let mut rows = changed;
    rows.push(if now[0] != "origin" {
        "from then on Postgres skipped every ordinary trigger and foreign-key check of this \
         transaction"
            .to_string()
    } else {
        "from then on Postgres counted none of this transaction's writes".to_string()
    });
    rows.push(match functions {
        Some(f) => format!("functions whose source names it (those that set it among them): {f}"),
        None => "no function outside pg_catalog names it in its source: look for a C function \
                 or one that builds the setting's name"
            .to_string(),
    });
    Ok(Some(crate::plan::checks::Check {
        phase: after.to_string(),
        name: "session_replication_role and track_counts unchanged inside the transaction"
            .to_string(),
        kind: crate::plan::checks::CheckKind::Guard,
        expected: "session_replication_role origin, track_counts on".to_string(),
        actual: format!(
            "session_replication_role {}, track_counts {}",
            now[0], now[1]
        ),
        ok: false,
        row_count: rows.len() as u64,
        rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::LockMode::{AccessExclusive, Share, ShareRowExclusive};
    use super::{Replaced, TablesGone, TablesReplaced};

    /// Issue 10 (h4 Low 10): a replaced table is named with both oids,
    /// where the table read is now, and its triggers then and now; one
    /// "(seen at the lock step …)" for all, agreeing with their count.
    #[test]
    fn replaced_tables_name_oids_where_the_one_read_is_and_triggers() {
        let swapped = Replaced {
            table: "workflows".into(),
            then: Some(16401),
            now: 16532,
            then_is_now: Some("public.workflows_old".into()),
            triggers_then: vec!["workflows_set_updated_at".into()],
            triggers_now: vec![],
        };
        let one = TablesReplaced {
            tables: vec![swapped.clone()],
        };
        assert_eq!(
            one.described("the preflight"),
            "table workflows was replaced since the preflight read it — another table has its \
             name now (oid 16401 then, 16532 now; the one read then is public.workflows_old now), \
             and its triggers are not the ones the preflight listed (workflows_set_updated_at \
             then, none now) (seen at the lock step, which may have waited for it meanwhile)"
        );
        let dropped_and_made = Replaced {
            table: "tools".into(),
            then: Some(1),
            now: 2,
            then_is_now: None,
            triggers_then: vec![],
            triggers_now: vec![],
        };
        let two = TablesReplaced {
            tables: vec![swapped, dropped_and_made],
        };
        let said = two.described("the preflight");
        assert!(
            said.ends_with(
                "; table tools was replaced since the preflight read it — another table has its \
                 name now (oid 1 then, 2 now; the one read then is dropped) (seen at the lock \
                 step, which may have waited for them meanwhile)"
            ),
            "{said}"
        );
        assert_eq!(two.checks("drift").iter().filter(|c| !c.ok).count(), 2);
    }

    /// Push's and rollback's refusal for tables gone during the lock wait:
    /// one table in the singular, two in the plural, throughout.
    #[test]
    fn tables_gone_agree_with_their_count() {
        let one = TablesGone {
            tables: vec!["workflows".into()],
        };
        assert_eq!(
            one.described("the pull"),
            "table workflows no longer exists under its name — renamed or dropped since the \
             pull (seen at the lock step, which may have waited for it meanwhile)"
        );
        let two = TablesGone {
            tables: vec!["workflows".into(), "tools".into()],
        };
        assert_eq!(
            two.described("the push"),
            "tables workflows, tools no longer exist under their names — renamed or dropped \
             since the push (seen at the lock step, which may have waited for them meanwhile)"
        );
        assert_eq!(
            two.to_string(),
            "workflows, tools no longer exist under their names: renamed or dropped by another \
             session"
        );
    }

    /// A table asked for twice is locked once, where it was first asked
    /// for, in the strongest mode asked; the rest keep the caller's order.
    #[test]
    fn locks_keep_the_order_asked_and_the_strongest_mode() {
        let asked: Vec<(String, super::LockMode)> = [
            ("workflows", AccessExclusive),
            ("jtbd_library", ShareRowExclusive),
            ("dh_tool", Share),
            ("jtbd_library", AccessExclusive),
            ("workflows", Share),
        ]
        .iter()
        .map(|(t, m)| (t.to_string(), *m))
        .collect();
        let got = super::in_the_order_asked(&asked);
        let want: Vec<(String, super::LockMode)> = [
            ("workflows", AccessExclusive),
            ("jtbd_library", AccessExclusive),
            ("dh_tool", Share),
        ]
        .iter()
        .map(|(t, m)| (t.to_string(), *m))
        .collect();
        assert_eq!(got, want);
    }

    /// Each attempt after the first takes the tables another session holds
    /// first, then the rest, each group in the order asked; the first
    /// takes them in the order asked, none of them waiting (NOWAIT).
    #[test]
    fn held_tables_are_locked_first_and_only_the_first_attempt_is_nowait() {
        let asked: Vec<(String, super::LockMode)> = [
            ("profiles", ShareRowExclusive),
            ("jtbd_library", AccessExclusive),
            ("workflows", ShareRowExclusive),
            ("dh_tool", Share),
        ]
        .iter()
        .map(|(t, m)| (t.to_string(), *m))
        .collect();
        let held = vec!["dh_tool".to_string(), "workflows".to_string()];
        let order: Vec<String> = super::held_first(&asked, &held)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(order, ["workflows", "dh_tool", "profiles", "jtbd_library"]);
        assert_eq!(super::held_first(&asked, &[]), asked);
        assert_eq!(
            super::lock_statements(&asked[1..3], true),
            "LOCK TABLE public.\"jtbd_library\" IN ACCESS EXCLUSIVE MODE NOWAIT; \
             LOCK TABLE public.\"workflows\" IN SHARE ROW EXCLUSIVE MODE NOWAIT;"
        );
        assert_eq!(
            super::lock_statements(&[("auth.users".to_string(), Share)], false),
            "LOCK TABLE \"auth\".\"users\" IN SHARE MODE;"
        );
    }

    /// The blocker listing never carries another session's literals.
    #[test]
    fn a_blockers_statement_is_shown_without_its_literals() {
        let shape = super::statement_shape(
            "select count(*), pg_sleep(8), md5('S3cr3tKey-in-app-query') from jtbd_library \
             where email = 'a@b.c' and note = E'x\\'y' and body = $q$secret$q$ and n = $1 and t2.c = 3.5",
            400,
        );
        assert_eq!(
            shape,
            "select count(*), pg_sleep(?), md5(?) from jtbd_library where email = ? and note = E? \
             and body = ? and n = $1 and t2.c = ?"
        );
        for secret in ["S3cr3t", "a@b.c", "secret", "3.5"] {
            assert!(!shape.contains(secret), "{shape}");
        }
        assert_eq!(
            super::statement_shape("select 'it''s' || $$x$$", 400),
            "select ? || ?"
        );
        // standard_conforming_strings: 'C:\' ends at its second quote; the
        // literal after it is never shown, whichever way the server reads it.
        let shape = super::statement_shape(
            "select 1 from t where name <> 'C:\\' and token <> 'tok_S3cretToken99' and e = E'a\\'b'",
            400,
        );
        assert!(!shape.contains("S3cret"), "{shape}");
        assert_eq!(shape, "select ? from t where name <> ?");
        assert_eq!(
            super::statement_shape("select 1 where e = E'a\\'b' and x = 'y'", 400),
            "select ? where e = E? and x = ?"
        );
        assert_eq!(
            super::statement_shape("select 'unterminated", 400),
            "select ?"
        );
        assert_eq!(
            super::statement_shape("update t set a = ? where b", 10),
            "update t …"
        );
    }

    /// V17: the server's wait for a silent client is the client silence,
    /// whatever the statement timeout (`live`'s
    /// a_short_statement_timeout_does_not_shorten_the_wait_for_a_silent_client
    /// checks it on a server).
    #[test]
    fn the_idle_limit_is_the_client_silence_whatever_the_statement_timeout() {
        for statement_timeout in [1, 500, 4_000, 600_000] {
            let sql = super::client_gone_sql(statement_timeout);
            assert!(
                sql.starts_with("SET LOCAL idle_in_transaction_session_timeout = '15000ms';"),
                "{sql}"
            );
        }
    }

    use super::read_only_reason;

    #[test]
    fn a_read_only_server_is_named_by_its_cause() {
        let writable = ["off", "false", "db", "me", "off", "default"];
        assert_eq!(read_only_reason(&writable), None);
        let standby = read_only_reason(&["on", "true", "db", "me", "off", "default"]).unwrap();
        assert!(
            standby.contains("read-only standby") && standby.contains("primary"),
            "{standby}"
        );
        let role = read_only_reason(&["on", "false", "db", "me", "on", "user"]).unwrap();
        assert!(
            role.contains("for the role me")
                && role.contains("ALTER ROLE \"me\" RESET default_transaction_read_only"),
            "{role}"
        );
    }
}
