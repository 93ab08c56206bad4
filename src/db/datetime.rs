//! SQLite's date and time functions on the text forms Postgres prints.
//!
//! The snapshot keeps a timestamp as the text Postgres prints
//! (`2024-01-01 10:00:00+00`, `… 10:00:00+05:30`, `0044-03-15 … BC`,
//! `infinity`). SQLite's `date()`, `time()`, `datetime()`, `julianday()`,
//! `unixepoch()`, `strftime()` and `timediff()` read an offset only as
//! `±HH:MM`, so on `+00` they return NULL — and phase SQL like
//! `WHERE date(created_at) = '2024-01-01'` silently matched nothing. While a
//! rehearsal runs they are replaced, on its connection only, by versions
//! that first turn a Postgres text form into the UTC moment it names (what
//! Postgres does with a timestamptz under the push's pinned `TimeZone`
//! UTC; a timestamp without zone keeps its wall clock), then run SQLite's
//! own function on it, modifiers and formats unchanged. A time value the
//! functions cannot hold (`infinity`, a year outside 0000–9999, BC) or
//! text neither engine reads as one is an error naming the value: the
//! phase fails by name rather than matching nothing.

use anyhow::Result;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use crate::db::collation::{moment, Moment};

/// The functions replaced, with the positions of their time-value
/// arguments.
const FUNCTIONS: &[(&str, &[usize])] = &[
    ("date", &[0]),
    ("time", &[0]),
    ("datetime", &[0]),
    ("julianday", &[0]),
    ("unixepoch", &[0]),
    ("strftime", &[1]),
    ("timediff", &[0, 1]),
];

/// Replaces SQLite's date and time functions on `conn` (a rehearsal's)
/// by ones that read Postgres's text forms (see the module notes).
pub fn register(conn: &Connection) -> Result<()> {
    for (name, time_args) in FUNCTIONS {
        // SQLite's own function, on a connection of its own: once
        // replaced, it cannot be called on `conn`.
        let builtin = std::sync::Mutex::new(Connection::open_in_memory()?);
        // Not deterministic: `'now'` is read when the statement runs.
        let flags = FunctionFlags::SQLITE_UTF8;
        conn.create_scalar_function(*name, -1, flags, move |ctx| {
            call(ctx, name, time_args, &builtin)
        })?;
    }
    Ok(())
}

fn user_error(message: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into())
}

fn call(
    ctx: &Context<'_>,
    name: &str,
    time_args: &[usize],
    builtin: &std::sync::Mutex<Connection>,
) -> rusqlite::Result<Value> {
    let mut args: Vec<Value> = Vec::with_capacity(ctx.len());
    for i in 0..ctx.len() {
        args.push(match ctx.get_raw(i).into() {
            Value::Text(t) if time_args.contains(&i) => Value::Text(sqlite_time(name, &t)?),
            v => v,
        });
    }
    let placeholders = (1..=args.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let conn = builtin
        .lock()
        .map_err(|_| user_error(format!("{name}(): its SQLite function is unusable")))?;
    let mut stmt = conn.prepare_cached(&format!("SELECT {name}({placeholders})"))?;
    let out: Value = stmt.query_row(rusqlite::params_from_iter(args.iter()), |r| {
        r.get::<_, Value>(0)
    })?;
    // SQLite's NULL for a value it cannot read: Postgres would refuse it.
    // A NULL argument gives NULL, as on Postgres; no argument is `now`.
    if out == Value::Null && time_args.iter().all(|i| arg_given(ctx, *i)) {
        let shown = args
            .iter()
            .map(|a| match a {
                Value::Text(t) => format!("'{t}'"),
                Value::Integer(i) => i.to_string(),
                Value::Real(r) => r.to_string(),
                Value::Null => "NULL".into(),
                Value::Blob(_) => "a blob".into(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(user_error(format!(
            "{name}({shown}): SQLite reads no date or time from these values (Postgres \
             refuses such a value too); a NULL here would silently match nothing"
        )));
    }
    Ok(out)
}

fn arg_given(ctx: &Context<'_>, i: usize) -> bool {
    i < ctx.len() && !matches!(ctx.get_raw(i), ValueRef::Null)
}

/// A time value as SQLite's functions read it: a text Postgres prints as a
/// date or timestamp becomes the UTC moment (wall clock, without an
/// offset) `YYYY-MM-DD HH:MM:SS.ffffff`; any other text (`now`, a time of
/// day, a Julian day number as text) is SQLite's to read.
fn sqlite_time(name: &str, text: &str) -> rusqlite::Result<String> {
    match moment(text, Moment::Zoned) {
        None => Ok(text.to_string()),
        Some((1, micros)) => {
            let secs = micros.div_euclid(1_000_000);
            let fraction = micros.rem_euclid(1_000_000);
            let days = secs.div_euclid(86_400);
            let of_day = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            if !(0..=9999).contains(&y) {
                return Err(user_error(format!(
                    "{name}('{text}'): SQLite's date functions hold years 0000 to 9999 only \
                     (Postgres's go further); compare the column itself, or leave such rows out"
                )));
            }
            Ok(format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{fraction:06}",
                of_day / 3600,
                of_day % 3600 / 60,
                of_day % 60
            ))
        }
        // -infinity and infinity.
        Some(_) => Err(user_error(format!(
            "{name}('{text}'): SQLite's date functions have no {text}; compare the column \
             itself (`created_at = 'infinity'`), or leave such rows out"
        ))),
    }
}

/// A proleptic Gregorian date from days since 1970-01-01 (year 0 is 1 BC).
fn civil_from_days(z: i128) -> (i128, i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(conn: &Connection, sql: &str) -> rusqlite::Result<Value> {
        conn.query_row(sql, [], |r| r.get::<_, Value>(0))
    }

    fn text(conn: &Connection, sql: &str) -> String {
        match one(conn, sql) {
            Ok(Value::Text(t)) => t,
            Ok(Value::Integer(i)) => i.to_string(),
            Ok(Value::Real(r)) => r.to_string(),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn postgres_text_forms_read_as_the_moment_they_name() {
        let conn = Connection::open_in_memory().unwrap();
        // SQLite's own functions on Postgres's text: NULL.
        assert_eq!(
            one(&conn, "SELECT date('2024-01-01 10:00:00+00')").unwrap(),
            Value::Null
        );
        register(&conn).unwrap();
        for (sql, want) in [
            ("SELECT date('2024-01-01 10:00:00+00')", "2024-01-01"),
            ("SELECT date('2024-01-01 02:00:00+05:30')", "2023-12-31"),
            ("SELECT date('2024-01-01 23:30:00-01')", "2024-01-02"),
            (
                "SELECT datetime('2024-01-01 10:00:00.123456+00')",
                "2024-01-01 10:00:00",
            ),
            (
                "SELECT time('2024-01-01 10:00:00+00', '+90 minutes')",
                "11:30:00",
            ),
            (
                "SELECT strftime('%Y-%m', '2024-02-29 10:00:00+00')",
                "2024-02",
            ),
            ("SELECT julianday('2000-01-01 12:00:00+00')", "2451545"),
            ("SELECT unixepoch('1970-01-02 00:00:00+00')", "86400"),
            ("SELECT date('2024-03-01')", "2024-03-01"),
            ("SELECT date('2024-03-01 10:00:00')", "2024-03-01"),
            (
                "SELECT date('2024-01-01 10:00:00+00', 'start of month', '+1 month')",
                "2024-02-01",
            ),
        ] {
            assert_eq!(text(&conn, sql), want, "{sql}");
        }
        // What SQLite reads itself still works.
        assert!(one(&conn, "SELECT date('now')").is_ok());
        assert_eq!(text(&conn, "SELECT date(2451545.0)"), "2000-01-01");
        assert_eq!(one(&conn, "SELECT date(NULL)").unwrap(), Value::Null);
        // What it cannot hold is an error naming the value, never NULL.
        for (sql, needle) in [
            (
                "SELECT date('infinity')",
                "date('infinity'): SQLite's date functions have no infinity",
            ),
            ("SELECT date('-infinity')", "no -infinity"),
            (
                "SELECT date('0044-03-15 00:00:00+00 BC')",
                "years 0000 to 9999",
            ),
            (
                "SELECT date('not a date')",
                "date('not a date'): SQLite reads no date",
            ),
        ] {
            let e = one(&conn, sql).unwrap_err().to_string();
            assert!(e.contains(needle), "{sql}: {e}");
        }
    }

    #[test]
    fn days_round_trip_through_the_calendar() {
        for days in [-719_528i128, -1, 0, 59, 10_956, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(crate::db::collation::days_from_civil(y, m, d), days);
        }
    }
}
