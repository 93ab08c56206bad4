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
//! not rolled back: a refused push leaves it advanced, and the report says
//! by how much. Before COMMIT the push refuses if the app's rows already
//! hold a number the push writes (drawn between pull and push). Rollback
//! leaves such a sequence where it is.
//!
//! The dry run (push without `--confirm`) must leave every sequence as it
//! found it, and a draw is never rolled back. So it draws nothing
//! ([`DryRunSequences`]): it reads where a shared sequence stands, checks
//! the draw `--confirm` would make against the sequence's bounds, and
//! keeps the value the draw would leave; the rows it inserts that leave a
//! column to a sequence (identity, serial, `DEFAULT nextval(…)`) get their
//! numbers from that account instead of from `nextval()`, given in the
//! COPY as the values Postgres would have chosen (a trigger or constraint
//! sees the same row: defaults are applied before either). A sequence only
//! the push's locked tables draw from is locked and altered as in
//! `--confirm` (which makes its later draws in the transaction roll back
//! with it).

use std::collections::{BTreeMap, BTreeSet};

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
    /// The draw that moved a shared sequence past the values written (in a
    /// dry run: the draw `--confirm` would make).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<Draw>,
}

/// How `nextval()` moves a shared sequence past the values the push
/// writes: `values` draws from `first` to `last`; past
/// [`DRAWN_ONE_BY_ONE`] values, one draw (`first`) and a `setval()` to
/// `last` (`jump`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    pub values: u64,
    pub first: i64,
    pub last: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jump: bool,
}

/// Past about a hundred thousand values, drawing them one by one costs
/// seconds: one draw proves where the sequence stands and `setval()` jumps
/// (it takes no lock `nextval()` waits for either). Only an app drawing all
/// the values in between within that one statement could see the sequence
/// set back.
pub const DRAWN_ONE_BY_ONE: u64 = 100_000;

impl Draw {
    /// The draw that moves a sequence whose next value is `before` past
    /// `written`, stepping by `increment`.
    fn past(before: i64, written: i64, increment: i64) -> Draw {
        let step = i128::from(increment).unsigned_abs();
        let distance = (i128::from(written) - i128::from(before)).unsigned_abs();
        let draws = (distance.div_ceil(step) + 1) as u64;
        if draws <= DRAWN_ONE_BY_ONE {
            let last = i128::from(before) + i128::from(increment) * (draws as i128 - 1);
            Draw {
                values: draws,
                first: before,
                // Within [before, written + increment]: fits when both do.
                last: last.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                jump: false,
            }
        } else {
            Draw {
                values: 1,
                first: before,
                last: written,
                jump: true,
            }
        }
    }

    /// For people: `116 values (142 to 257)`.
    pub fn describe(&self) -> String {
        if self.jump {
            format!("one value ({}), then setval() to {}", self.first, self.last)
        } else if self.values == 1 {
            format!("1 value ({})", self.first)
        } else {
            format!("{} values ({} to {})", self.values, self.first, self.last)
        }
    }
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
    /// The sequence's bounds, and whether it starts over past them.
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
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

/// The first domain along the chain of domains of type `$typ` (an SQL
/// expression) that has a DEFAULT, outermost first: the default a column
/// of that type without one of its own takes (a domain over a domain
/// copies its base's when created), as the pull reads it
/// (`catalog::COLUMN_FACTS`).
macro_rules! domain_with_the_default {
    ($typ:literal) => {
        concat!(
            "(WITH RECURSIVE chain(oid, depth) AS ( \
               SELECT ",
            $typ,
            ", 0 \
               UNION ALL \
               SELECT t.typbasetype, c.depth + 1 FROM chain c \
               JOIN pg_catalog.pg_type t ON t.oid = c.oid WHERE t.typtype = 'd') \
             SELECT t.oid FROM chain c JOIN pg_catalog.pg_type t ON t.oid = c.oid \
             WHERE t.typtype = 'd' AND t.typdefaultbin IS NOT NULL ORDER BY c.depth LIMIT 1)"
        )
    };
}

/// The sequences feeding a column: `$1` the table (`public."t"`), `$2` the
/// column; rows of schema, sequence and step: an identity's own, those the
/// column's default depends on and, for a column without a default or
/// identity of its own, those its domain's DEFAULT depends on (`pg_depend`
/// of the domain: `CREATE DOMAIN d AS int DEFAULT nextval('s')`). The
/// `diff --sql` script runs the same query, so it moves the same sequences
/// push does.
pub const FEEDS_SQL: &str = concat!(
    "SELECT DISTINCT sn.nspname::text, sc.relname::text, s.seqincrement, s.seqmin, \
                    s.seqmax, s.seqcycle \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_depend d ON \
                  (d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = a.attrelid \
                   AND d.refobjsubid = a.attnum AND d.deptype = 'i') \
               OR (d.classid = 'pg_catalog.pg_attrdef'::regclass \
                   AND d.objid IN (SELECT ad.oid FROM pg_catalog.pg_attrdef ad \
                                   WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum)) \
               OR (d.classid = 'pg_catalog.pg_type'::regclass \
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass \
                   AND NOT a.atthasdef AND a.attidentity = '' AND d.objid = ",
    domain_with_the_default!("a.atttypid"),
    ") \
             JOIN pg_catalog.pg_class sc ON sc.relkind = 'S' AND sc.oid = \
                  CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.objid ELSE d.refobjid END \
             JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace \
             JOIN pg_catalog.pg_sequence s ON s.seqrelid = sc.oid \
             WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname::text = $2 \
             ORDER BY 1, 2"
);

/// The columns drawing from sequence `$1` (`"schema"."seq"`): rows of
/// schema, table and column — through their default, their identity, or
/// their domain's DEFAULT (see [`FEEDS_SQL`]). Shared with the `diff
/// --sql` script.
pub const SHARERS_SQL: &str = concat!(
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
             UNION \
             SELECT n.nspname::text, c.relname::text, a.attname::text \
             FROM pg_catalog.pg_depend d \
             JOIN pg_catalog.pg_attribute a ON a.attnum > 0 AND NOT a.attisdropped \
                  AND NOT a.atthasdef AND a.attidentity = '' \
                  AND a.atttypid IN (SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typtype = 'd') \
                  AND d.objid = ",
    domain_with_the_default!("a.atttypid"),
    " \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p') \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE d.classid = 'pg_catalog.pg_type'::regclass \
               AND d.refclassid = 'pg_catalog.pg_class'::regclass \
               AND d.refobjid = pg_catalog.to_regclass($1) \
             ORDER BY 1, 2, 3"
);

/// The sequences feeding `public.table.column`: an identity's own, and
/// every sequence its default expression depends on.
pub async fn feeds(tx: &Transaction<'_>, table: &str, column: &str) -> Result<Vec<Feed>> {
    let rows = tx
        .query_typed(
            FEEDS_SQL,
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
            min: r.get(3),
            max: r.get(4),
            cycle: r.get(5),
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
        .query_typed(SHARERS_SQL, &[(&seq, Type::TEXT)])
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

/// Moves `seq` past `written` by drawing values, as `draw` says:
/// `nextval()` takes no lock any `nextval()` of the app waits for, and
/// never moves a sequence back, whoever else draws meanwhile. Returns the
/// value it would hand out next.
async fn draw_past(
    tx: &Transaction<'_>,
    seq: &str,
    increment: i64,
    written: i64,
    draw: &Draw,
) -> Result<i64> {
    let sql = if !draw.jump {
        format!(
            "SELECT count(pg_catalog.nextval('{seq}')) FROM pg_catalog.generate_series(1, {})",
            draw.values
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

impl Feed {
    /// `schema.sequence` for people.
    fn name(&self) -> String {
        format!("{}.{}", self.schema, self.sequence)
    }

    /// The bound `nextval()` stops at, named.
    fn bound(&self) -> String {
        if self.increment > 0 {
            format!("maximum value {}", self.max)
        } else {
            format!("minimum value {}", self.min)
        }
    }

    fn beyond(&self, value: i128) -> bool {
        value > i128::from(self.max) || value < i128::from(self.min)
    }

    /// Refuses a draw that would pass the sequence's bound: `nextval()`
    /// fails there (or, CYCLE, starts over and hands out numbers rows
    /// hold), in a dry run as with `--confirm`.
    fn check_draw(&self, draw: &Draw, table: &str, column: &str) -> Result<()> {
        if !self.beyond(i128::from(draw.last)) {
            return Ok(());
        }
        Err(crate::error::check_failed(format!(
            "sequence {} would pass its {}: moving it past the values the push writes into \
             {table}.{column} means drawing {}{}. Nothing was drawn or written. Raise the \
             sequence's bound (ALTER SEQUENCE … MAXVALUE/MINVALUE, or AS bigint) or have the plan \
             write smaller numbers",
            self.name(),
            self.bound(),
            draw.describe(),
            if self.cycle {
                " (it CYCLEs: it would start over and hand out numbers rows hold)"
            } else {
                ""
            }
        )))
    }
}

/// A dry run's account of the sequences it leaves as it found them (see
/// the module notes): where each would stand had it drawn as `--confirm`
/// does, and which this transaction has altered (their draws roll back
/// with it, so Postgres numbers rows from them again).
#[derive(Debug, Default)]
pub struct DryRunSequences {
    /// Quoted `schema.sequence` -> the value `nextval()` would return next.
    next: BTreeMap<String, i64>,
    altered: BTreeSet<String>,
}

/// Whether a column left out of a row is numbered by one plain draw of a
/// sequence (identity, serial, `DEFAULT nextval('…'::regclass)`): the value
/// Postgres would give is the sequence's next one, which a dry run can give
/// itself. A default that only uses `nextval()` in a bigger expression is
/// left to Postgres (the draw is then reported as never rolled back).
pub fn numbered_by_one_draw(c: &crate::catalog::ColumnMeta) -> bool {
    if c.generated.is_some() {
        return false;
    }
    if c.identity.is_some() {
        return true;
    }
    let Some(d) = c.default.as_deref() else {
        return false;
    };
    d.strip_prefix("nextval('")
        .and_then(|d| d.strip_suffix("'::regclass)"))
        .is_some_and(|name| !name.replace("''", "").contains('\''))
}

/// The numbers `nextval()` would give `rows` new rows of `table` that leave
/// `column` to its sequence, for a dry run to write them itself instead of
/// drawing them for good; None when Postgres may number them: the column is
/// not numbered by one draw ([`numbered_by_one_draw`]) or its sequence's
/// draws roll back with this transaction. Passing the sequence's bound
/// without CYCLE refuses, as `nextval()` would.
pub async fn dry_run_numbers(
    tx: &Transaction<'_>,
    dry: &std::cell::RefCell<DryRunSequences>,
    table: &str,
    column: &crate::catalog::ColumnMeta,
    rows: usize,
) -> Result<Option<Vec<i64>>> {
    if !numbered_by_one_draw(column) {
        return Ok(None);
    }
    let feeds = feeds(tx, table, &column.name).await?;
    let [feed] = feeds.as_slice() else {
        return Ok(None);
    };
    let seq = feed.qualified();
    let known = {
        let d = dry.borrow();
        if d.altered.contains(&seq) {
            return Ok(None);
        }
        d.next.get(&seq).copied()
    };
    let first = match known {
        Some(n) => n,
        None => read_next(tx, &seq, feed.increment).await?,
    };
    let mut next = i128::from(first);
    let mut out = Vec::with_capacity(rows);
    for _ in 0..rows {
        if feed.beyond(next) {
            if !feed.cycle {
                return Err(crate::error::check_failed(format!(
                    "sequence {} would pass its {} numbering the {rows} new rows that leave \
                     {table}.{} to it (from {first}): nextval() would fail there and Postgres \
                     refuse the push. Nothing was drawn or written. Raise the sequence's bound \
                     (ALTER SEQUENCE … MAXVALUE/MINVALUE, or AS bigint)",
                    feed.name(),
                    feed.bound(),
                    column.name
                )));
            }
            next = i128::from(if feed.increment > 0 {
                feed.min
            } else {
                feed.max
            });
        }
        // Within [min, max] here: an i64.
        out.push(next as i64);
        next += i128::from(feed.increment);
    }
    // One past the bound at most: kept in range for the account, where the
    // next draw refuses as above.
    let next = next.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    dry.borrow_mut().next.insert(seq, next);
    Ok(Some(out))
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
/// values the push writes itself. In a dry run (`dry`), such a sequence is
/// not drawn: the draw is checked and kept in the account.
pub async fn advance_past_values(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    locked: &[String],
    numbers: &[i64],
    dry: Option<&std::cell::RefCell<DryRunSequences>>,
) -> Result<Vec<SequenceAdvance>> {
    let mut out = Vec::new();
    for feed in feeds(tx, table, column).await? {
        let seq = feed.qualified();
        let shared = sharers(tx, &seq, locked).await?;
        // In a dry run, where the values it numbered itself would have
        // left the sequence.
        let known = dry.and_then(|d| d.borrow().next.get(&seq).copied());
        let (before, found) = if shared.is_empty() {
            let found = lock_and_read_next(tx, &seq, feed.increment).await?;
            (known.unwrap_or(found), found)
        } else {
            let found = match known {
                Some(n) => n,
                None => read_next(tx, &seq, feed.increment).await?,
            };
            (found, found)
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
        let mut draw = None;
        let after = if !behind {
            before
        } else if !shared.is_empty() {
            let d = Draw::past(before, written, feed.increment);
            feed.check_draw(&d, table, column)?;
            let after = if dry.is_some() {
                let last = if d.jump { written } else { d.last };
                last.checked_add(feed.increment).ok_or_else(|| {
                    crate::error::check_failed(format!(
                        "{table}.{column}: value {written} leaves sequence {seq} no value to go on with"
                    ))
                })?
            } else {
                draw_past(tx, &seq, feed.increment, written, &d).await?
            };
            draw = Some(d);
            after
        } else {
            written.checked_add(feed.increment).ok_or_else(|| {
                crate::error::check_failed(format!(
                    "{table}.{column}: value {written} leaves sequence {seq} no value to go on with"
                ))
            })?
        };
        // A locked sequence is set where it must stand (transactional); in a
        // dry run also when only the numbers it gave itself moved it.
        if shared.is_empty() && after != found {
            tx.batch_execute(&format!("ALTER SEQUENCE {seq} RESTART WITH {after}"))
                .await
                .with_context(|| {
                    format!(
                        "moving sequence {seq} past the values of {table}.{column} (up to {written})"
                    )
                })?;
        }
        if let Some(dry) = dry {
            let mut d = dry.borrow_mut();
            if shared.is_empty() {
                // Altered by this transaction: its draws roll back with it.
                d.next.remove(&seq);
                d.altered.insert(seq.clone());
            } else {
                d.next.insert(seq.clone(), after);
            }
        }
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
            draw,
        });
    }
    Ok(out)
}

/// The value `nextval()` on a sequence this transaction already holds
/// would return now (in a dry run, as its account has it).
pub async fn next_value(
    tx: &Transaction<'_>,
    s: &SequenceAdvance,
    dry: Option<&std::cell::RefCell<DryRunSequences>>,
) -> Result<i64> {
    let seq = s.qualified();
    if let Some(n) = dry.and_then(|d| d.borrow().next.get(&seq).copied()) {
        return Ok(n);
    }
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
/// Inside a transaction too: a sequence's position is not MVCC data, the
/// read sees every draw made so far, anyone's.
pub async fn sequence_values<C: tokio_postgres::GenericClient>(
    client: &C,
) -> Result<SequenceValues> {
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

#[cfg(test)]
mod tests {
    use super::{numbered_by_one_draw, Draw};
    use crate::catalog::{ColumnMeta, Identity};

    #[test]
    fn a_draw_ends_on_the_first_value_past_what_the_push_wrote() {
        // 142..257 drawn: 116 values, the next is 258.
        assert_eq!(
            Draw::past(142, 257, 1),
            Draw {
                values: 116,
                first: 142,
                last: 257,
                jump: false
            }
        );
        // Steps of 3 from 5 past 10: 5, 8, 11.
        assert_eq!(Draw::past(5, 10, 3).last, 11);
        // Counting down from -5 past -10 by -2: -5, -7, -9, -11.
        assert_eq!(Draw::past(-5, -10, -2).values, 4);
        // Far away: one draw, then setval().
        let far = Draw::past(1, 1_000_000, 1);
        assert!(far.jump && far.last == 1_000_000 && far.values == 1);
        assert_eq!(
            Draw::past(142, 257, 1).describe(),
            "116 values (142 to 257)"
        );
    }

    #[test]
    fn only_a_plain_draw_is_numbered_by_the_dry_run() {
        let col = |default: Option<&str>, identity| ColumnMeta {
            default: default.map(String::from),
            identity,
            ..ColumnMeta::default()
        };
        assert!(numbered_by_one_draw(&col(
            Some("nextval('shared_no_seq'::regclass)"),
            None
        )));
        assert!(numbered_by_one_draw(&col(
            Some("nextval('app.\"it''s\"'::regclass)"),
            None
        )));
        assert!(numbered_by_one_draw(&col(None, Some(Identity::Always))));
        assert!(!numbered_by_one_draw(&col(
            Some("('X-'::text || nextval('s1'::regclass))"),
            None
        )));
        assert!(!numbered_by_one_draw(&col(
            Some("nextval('a'::regclass) + nextval('b'::regclass)"),
            None
        )));
        assert!(!numbered_by_one_draw(&col(Some("5"), None)));
    }
}
