//! The sequences behind columns Postgres numbers itself (serial, identity,
//! any `nextval(…)` default). A row given an explicit value there does not
//! move the sequence, so the app's next insert would draw that same value
//! and collide. Push moves each such sequence past what it wrote; rollback
//! moves it back only when nobody drew from it since.
//!
//! `ALTER SEQUENCE … RESTART` is used rather than `setval()`: it is
//! transactional (a preflight, a refusal or a failed COMMIT leaves the
//! sequence as it was) and it holds a lock that keeps every other
//! `nextval()` waiting until the transaction ends, so the value read and
//! the value set cannot be overtaken in between. It needs ownership of the
//! sequence, which the privilege check asks for up front.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::types::quote_ident;

/// One sequence a push moved (or found already past its values), as the
/// receipt keeps it. Values are what `nextval()` returns next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceAdvance {
    pub table: String,
    pub column: String,
    pub schema: String,
    pub sequence: String,
    /// Next value before the push.
    pub before: i64,
    /// Next value when the push committed (past the explicit values, and
    /// past what Postgres drew for the push's other rows).
    pub after: i64,
    /// The largest value the column holds after the push (smallest for a
    /// descending sequence).
    pub written: i64,
}

impl SequenceAdvance {
    /// `schema.sequence`, quoted for SQL.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.sequence)
        )
    }

    /// Whether the push changed the sequence.
    pub fn moved(&self) -> bool {
        self.before != self.after
    }
}

/// A sequence feeding a column: its schema, name and step.
#[derive(Debug, Clone)]
pub struct Feed {
    pub schema: String,
    pub sequence: String,
    pub increment: i64,
}

impl Feed {
    fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.sequence)
        )
    }
}

/// The sequences feeding `public.table.column`: an identity's own, and
/// every sequence its default expression depends on.
pub async fn feeds(tx: &Transaction<'_>, table: &str, column: &str) -> Result<Vec<Feed>> {
    let rows = tx
        .query_typed(
            "SELECT DISTINCT sn.nspname::text, sc.relname::text, s.seqincrement \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_depend d ON \
                  (d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = a.attrelid \
                   AND d.refobjsubid = a.attnum AND d.deptype = 'i') \
               OR (d.classid = 'pg_catalog.pg_attrdef'::regclass \
                   AND d.objid IN (SELECT ad.oid FROM pg_catalog.pg_attrdef ad \
                                   WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum)) \
             JOIN pg_catalog.pg_class sc ON sc.relkind = 'S' AND sc.oid = \
                  CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.objid ELSE d.refobjid END \
             JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace \
             JOIN pg_catalog.pg_sequence s ON s.seqrelid = sc.oid \
             WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname::text = $2 \
             ORDER BY 1, 2",
            &[
                (&format!("public.{}", quote_ident(table)), Type::TEXT),
                (&column, Type::TEXT),
            ],
        )
        .await
        .with_context(|| format!("cannot read the sequence behind {table}.{column}"))?;
    Ok(rows
        .iter()
        .map(|r| Feed {
            schema: r.get(0),
            sequence: r.get(1),
            increment: r.get(2),
        })
        .collect())
}

/// Locks the sequence against every other `nextval()` until the
/// transaction ends (a no-op ALTER takes the lock), then reads the value
/// `nextval()` would return.
async fn lock_and_read_next(tx: &Transaction<'_>, seq: &str, increment: i64) -> Result<i64> {
    tx.batch_execute(&format!("ALTER SEQUENCE {seq} INCREMENT BY {increment}"))
        .await
        .with_context(|| format!("cannot lock sequence {seq}"))?;
    read_next(tx, seq, increment).await
}

/// The value `nextval()` on `seq` would return.
async fn read_next(tx: &Transaction<'_>, seq: &str, increment: i64) -> Result<i64> {
    let row = tx
        .query_one(
            &format!(
                "SELECT (CASE WHEN is_called THEN last_value::numeric + {increment} \
                 ELSE last_value::numeric END)::text FROM {seq}"
            ),
            &[],
        )
        .await
        .with_context(|| format!("cannot read sequence {seq}"))?;
    let next: String = row.get(0);
    next.parse().map_err(|_| {
        crate::error::check_failed(format!(
            "sequence {seq} is exhausted (its next value {next} is out of range)"
        ))
    })
}

/// The step of a sequence; None when it no longer exists.
async fn increment_of(tx: &Transaction<'_>, seq: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT seqincrement FROM pg_catalog.pg_sequence \
             WHERE seqrelid = pg_catalog.to_regclass($1)",
            &[&seq],
        )
        .await
        .with_context(|| format!("cannot read sequence {seq}"))?
        .map(|r| r.get(0)))
}

/// Moves each sequence feeding `table.column` past the values the column
/// now holds (the push's explicit ones among them): its next value becomes
/// one step beyond the largest (smallest, when it counts down). A sequence
/// already past them is left alone. The table is locked against other
/// writers by then, so what it holds is final.
pub async fn advance_past_values(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
) -> Result<Vec<SequenceAdvance>> {
    let mut out = Vec::new();
    for feed in feeds(tx, table, column).await? {
        let seq = feed.qualified();
        let before = lock_and_read_next(tx, &seq, feed.increment).await?;
        let extreme = if feed.increment > 0 { "max" } else { "min" };
        let row = tx
            .query_one(
                &format!(
                    "SELECT {extreme}({})::int8 FROM public.{}",
                    quote_ident(column),
                    quote_ident(table)
                ),
                &[],
            )
            .await
            .with_context(|| format!("cannot read the {extreme} of {table}.{column}"))?;
        let Some(written) = row.get::<_, Option<i64>>(0) else {
            continue;
        };
        let behind = if feed.increment > 0 {
            written >= before
        } else {
            written <= before
        };
        let after = if behind {
            let next = written.checked_add(feed.increment).ok_or_else(|| {
                crate::error::check_failed(format!(
                    "{table}.{column}: value {written} leaves sequence {seq} no value to go on with"
                ))
            })?;
            tx.batch_execute(&format!("ALTER SEQUENCE {seq} RESTART WITH {next}"))
                .await
                .with_context(|| {
                    format!(
                        "moving sequence {seq} past the values of {table}.{column} (up to {written})"
                    )
                })?;
            next
        } else {
            before
        };
        out.push(SequenceAdvance {
            table: table.to_string(),
            column: column.to_string(),
            schema: feed.schema,
            sequence: feed.sequence,
            before,
            after,
            written,
        });
    }
    Ok(out)
}

/// The value `nextval()` on a sequence this transaction already holds
/// would return now.
pub async fn next_value(tx: &Transaction<'_>, s: &SequenceAdvance) -> Result<i64> {
    let seq = s.qualified();
    let increment = increment_of(tx, &seq)
        .await?
        .ok_or_else(|| crate::error::environment(format!("sequence {seq} is gone")))?;
    read_next(tx, &seq, increment).await
}

/// What a rollback did with one sequence the push moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequenceRestore {
    pub table: String,
    pub column: String,
    /// `schema.sequence`.
    pub sequence: String,
    /// Next value before the push, and when the push committed.
    pub before: i64,
    pub pushed: i64,
    /// Next value when the rollback found it (None: the sequence is gone).
    pub found: Option<i64>,
    /// Moved back to `before`: nobody drew a value since the push.
    pub restored: bool,
}

/// Moves a sequence the push moved back to where it was, if nobody drew a
/// value since (its next value is still the one the push left); otherwise
/// it stays where it is, since moving it back would hand out values rows
/// may hold.
pub async fn restore(tx: &Transaction<'_>, s: &SequenceAdvance) -> Result<SequenceRestore> {
    let seq = s.qualified();
    let mut out = SequenceRestore {
        table: s.table.clone(),
        column: s.column.clone(),
        sequence: format!("{}.{}", s.schema, s.sequence),
        before: s.before,
        pushed: s.after,
        found: None,
        restored: false,
    };
    let increment = increment_of(tx, &seq).await?;
    let Some(increment) = increment else {
        return Ok(out);
    };
    let now = lock_and_read_next(tx, &seq, increment).await?;
    out.found = Some(now);
    if now == s.after {
        tx.batch_execute(&format!("ALTER SEQUENCE {seq} RESTART WITH {}", s.before))
            .await
            .with_context(|| format!("moving sequence {seq} back to {}", s.before))?;
        out.restored = true;
    }
    Ok(out)
}

/// Where every sequence of the database stands (`pg_sequences.last_value`:
/// NULL before its first `nextval`, or when the role may not read it), with
/// its increment and start, by `schema.sequence`.
pub type SequenceValues = std::collections::BTreeMap<String, (Option<i64>, i64, i64)>;

/// Reads [`SequenceValues`]. `nextval()` is never rolled back: comparing
/// these before and after a preflight shows what it used up for good.
pub async fn sequence_values(client: &tokio_postgres::Client) -> Result<SequenceValues> {
    // `query_typed`: one unnamed statement in one round trip, outside any
    // transaction — a named one would be parsed on one server connection of
    // a transaction-mode pooler and executed on another.
    let rows = client
        .query_typed(
            "SELECT schemaname::text || '.' || sequencename::text, last_value, increment_by, \
                    start_value FROM pg_catalog.pg_sequences",
            &[],
        )
        .await
        .context("cannot read where the database's sequences stand (pg_sequences)")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect())
}

/// A sequence that handed out values between two readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDrawn {
    /// `schema.sequence`.
    pub sequence: String,
    /// `last_value` before (None: never drawn from).
    pub before: Option<i64>,
    pub after: i64,
    /// Values handed out: (after − before) / increment, or counted from the
    /// start value for a sequence never drawn from before.
    pub draws: i64,
}

impl SequenceDrawn {
    pub fn describe(&self) -> String {
        format!(
            "{} by {} (last value {} → {})",
            self.sequence,
            self.draws,
            self.before
                .map(|b| b.to_string())
                .unwrap_or_else(|| "none".into()),
            self.after
        )
    }
}

/// The sequences whose `last_value` moved from `before` to `after`.
pub fn drawn(before: &SequenceValues, after: &SequenceValues) -> Vec<SequenceDrawn> {
    after
        .iter()
        .filter_map(|(name, (last, increment, start))| {
            let after = (*last)?;
            let was = before.get(name).and_then(|b| b.0);
            if was == Some(after) {
                return None;
            }
            let step = if *increment == 0 { 1 } else { *increment };
            let draws = match was {
                Some(b) => (after - b) / step,
                None => (after - start) / step + 1,
            };
            Some(SequenceDrawn {
                sequence: name.clone(),
                before: was,
                after,
                draws,
            })
        })
        .collect()
}
