//! The sequences behind columns Postgres numbers itself (serial, identity,
//! any `nextval(…)` default). A row given an explicit value there does not
//! move the sequence, so the app's next insert would draw that same value
//! and collide. Push moves each such sequence past what it wrote; rollback
//! moves it back only when nobody drew from it since.
//!
//! A sequence numbering only tables the push (or rollback) locks against
//! writers is moved with `ALTER SEQUENCE … RESTART`: it is transactional (a
//! preflight, a refusal or a failed COMMIT leaves the sequence as it was)
//! and its lock keeps every other `nextval()` waiting until the transaction
//! ends, so the value read and the value set cannot be overtaken in
//! between; the app's inserts into those tables wait for the table locks
//! anyway. It needs ownership of the sequence, which the privilege check
//! asks for up front.
//!
//! A sequence that also numbers a table the app keeps writing (a `DEFAULT
//! nextval(…)` shared across tables) is never locked that way: the app's
//! inserts there would wait for the whole push. It is moved by drawing
//! values (`nextval()`, which never waits and never goes back), so it is
//! not rolled back: a preflight or a refused push leaves it advanced, and
//! the report says by how much. Before COMMIT the push refuses if the app's
//! rows already hold a number the push writes (drawn between pull and
//! push). Rollback leaves such a sequence where it is.

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
    /// Columns of tables the push did not lock that the sequence numbers
    /// too (`table.column`, schema-qualified outside `public`): it was moved
    /// by drawing values, never locked, and a rollback leaves it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
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

/// A column of a table the push does not lock that draws from a sequence
/// the push moves.
struct Sharer {
    schema: String,
    table: String,
    column: String,
}

impl Sharer {
    fn table_sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// `table.column`, the schema named outside `public`.
    fn describe(&self) -> String {
        if self.schema == "public" {
            format!("{}.{}", self.table, self.column)
        } else {
            format!("{}.{}.{}", self.schema, self.table, self.column)
        }
    }
}

/// The columns outside `locked` (public tables locked against the app's
/// writes) that draw from `seq` too: identity, serial or any default
/// depending on it. Their inserts would wait on a lock of the sequence.
async fn sharers(tx: &Transaction<'_>, seq: &str, locked: &[String]) -> Result<Vec<Sharer>> {
    let rows = tx
        .query_typed(
            "SELECT DISTINCT n.nspname::text, c.relname::text, a.attname::text \
             FROM pg_catalog.pg_depend d \
             JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::regclass \
                  AND ad.oid = d.objid \
             JOIN pg_catalog.pg_class c ON c.oid = ad.adrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
             WHERE d.refclassid = 'pg_catalog.pg_class'::regclass \
               AND d.refobjid = pg_catalog.to_regclass($1) \
             UNION \
             SELECT n.nspname::text, c.relname::text, a.attname::text \
             FROM pg_catalog.pg_depend d \
             JOIN pg_catalog.pg_class c ON c.oid = d.refobjid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'i' \
               AND d.objid = pg_catalog.to_regclass($1) \
             ORDER BY 1, 2, 3",
            &[(&seq, Type::TEXT)],
        )
        .await
        .with_context(|| format!("cannot read which columns draw from sequence {seq}"))?;
    Ok(rows
        .iter()
        .map(|r| Sharer {
            schema: r.get(0),
            table: r.get(1),
            column: r.get(2),
        })
        .filter(|s| !(s.schema == "public" && locked.contains(&s.table)))
        .collect())
}

/// Moves `seq` past `written` by drawing values: `nextval()` takes no lock
/// any `nextval()` of the app waits for, and never moves a sequence back,
/// whoever else draws meanwhile. Returns the value it would hand out next.
async fn draw_past(
    tx: &Transaction<'_>,
    seq: &str,
    increment: i64,
    before: i64,
    written: i64,
) -> Result<i64> {
    let step = i128::from(increment).unsigned_abs();
    let distance = (i128::from(written) - i128::from(before)).unsigned_abs();
    let draws = distance.div_ceil(step) + 1;
    // Past about a hundred thousand values, drawing them one by one costs
    // seconds: one draw proves where the sequence stands and setval()
    // jumps (it takes no lock nextval() waits for either). Only an app
    // drawing all the values in between within that one statement could
    // see the sequence set back.
    let sql = if draws <= 100_000 {
        format!(
            "SELECT count(pg_catalog.nextval('{seq}')) FROM pg_catalog.generate_series(1, {draws})"
        )
    } else {
        let past = if increment > 0 { "<" } else { ">" };
        format!(
            "SELECT CASE WHEN pg_catalog.nextval('{seq}') {past} {written} \
             THEN pg_catalog.setval('{seq}', {written}) END"
        )
    };
    tx.batch_execute(&sql)
        .await
        .with_context(|| format!("drawing sequence {seq} past {written}"))?;
    read_next(tx, seq, increment).await
}

/// Rows of the app's columns drawing from the same sequence that hold a
/// number the push writes: the app drew it after the pull, and the
/// rehearsal gave it to a row of the plan too.
async fn collisions(
    tx: &Transaction<'_>,
    sharers: &[Sharer],
    numbers: &[i64],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if numbers.is_empty() {
        return Ok(out);
    }
    for s in sharers {
        let col = quote_ident(&s.column);
        let rows = tx
            .query_typed(
                &format!(
                    "SELECT {col}::text FROM {} WHERE {col}::int8 = ANY($1) ORDER BY {col} LIMIT 10",
                    s.table_sql()
                ),
                &[(&numbers, Type::INT8_ARRAY)],
            )
            .await
            .with_context(|| format!("cannot read {}", s.describe()))?;
        if !rows.is_empty() {
            let held: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
            out.push(format!("{} holds {}", s.describe(), held.join(", ")));
        }
    }
    Ok(out)
}

/// Moves each sequence feeding `table.column` past the values the column
/// now holds (the push's explicit ones among them): its next value becomes
/// one step beyond the largest (smallest, when it counts down). A sequence
/// already past them is left alone. The table is locked against other
/// writers by then, so what it holds is final. `locked` are the public
/// tables the push locks against writers: a sequence numbering a column
/// outside them is drawn past the values, never locked (see the module
/// notes), and refused if the app's rows there hold one of `numbers`, the
/// values the push writes itself.
pub async fn advance_past_values(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    locked: &[String],
    numbers: &[i64],
) -> Result<Vec<SequenceAdvance>> {
    let mut out = Vec::new();
    for feed in feeds(tx, table, column).await? {
        let seq = feed.qualified();
        let shared = sharers(tx, &seq, locked).await?;
        let before = if shared.is_empty() {
            lock_and_read_next(tx, &seq, feed.increment).await?
        } else {
            read_next(tx, &seq, feed.increment).await?
        };
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
        let after = if !behind {
            before
        } else if !shared.is_empty() {
            draw_past(tx, &seq, feed.increment, before, written).await?
        } else {
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
        };
        let held = collisions(tx, &shared, numbers).await?;
        if !held.is_empty() {
            return Err(crate::error::check_failed(format!(
                "sequence {}.{} numbers {table}.{column} and the app's {} too, and the app's rows \
                 already hold numbers the push writes into {table}.{column} ({}): the app drew \
                 them after the pull. Rolled back, nothing was written. Pull again and rehearse, \
                 so the plan numbers its rows past them",
                feed.schema,
                feed.sequence,
                shared
                    .iter()
                    .map(Sharer::describe)
                    .collect::<Vec<_>>()
                    .join(", "),
                held.join("; ")
            )));
        }
        out.push(SequenceAdvance {
            table: table.to_string(),
            column: column.to_string(),
            schema: feed.schema,
            sequence: feed.sequence,
            before,
            after,
            written,
            shared_with: shared.iter().map(Sharer::describe).collect(),
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
    /// Columns outside the rollback's locks that draw from it too: it is
    /// left where it is (see [`restore`]).
    pub shared_with: Vec<String>,
}

/// Moves a sequence the push moved back to where it was, if nobody drew a
/// value since (its next value is still the one the push left); otherwise
/// it stays where it is, since moving it back would hand out values rows
/// may hold. A sequence numbering columns outside `locked` (the tables the
/// rollback locks) stays too: proving nobody draws until COMMIT would need
/// a lock the app's inserts there wait for, and a gap harms no one.
pub async fn restore(
    tx: &Transaction<'_>,
    s: &SequenceAdvance,
    locked: &[String],
) -> Result<SequenceRestore> {
    let seq = s.qualified();
    let mut out = SequenceRestore {
        table: s.table.clone(),
        column: s.column.clone(),
        sequence: format!("{}.{}", s.schema, s.sequence),
        before: s.before,
        pushed: s.after,
        found: None,
        restored: false,
        shared_with: Vec::new(),
    };
    let increment = increment_of(tx, &seq).await?;
    let Some(increment) = increment else {
        return Ok(out);
    };
    let shared = sharers(tx, &seq, locked).await?;
    if !shared.is_empty() {
        out.found = Some(read_next(tx, &seq, increment).await?);
        out.shared_with = shared.iter().map(Sharer::describe).collect();
        return Ok(out);
    }
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
