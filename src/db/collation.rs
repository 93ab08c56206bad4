//! Postgres's order of the numbers, dates and timestamps the snapshot keeps
//! as text.
//!
//! numeric and floating-point values are stored as the exact text Postgres
//! prints (lossless, readable in any DB browser). Compared as text, though,
//! `'10.0000' < '9.5'`, and in a column without affinity any text is greater
//! than any number, so `cost > 0.2` held for every row. While a rehearsal
//! runs, the working copies of written tables and the views over the tables
//! the plan only reads give those columns TEXT affinity (a number compared
//! with them is turned into its text) and the collation [`NUMERIC`], which
//! compares the texts as exact decimals — so comparisons, `ORDER BY`,
//! `MIN`/`MAX`, `GROUP BY` and `DISTINCT` agree with Postgres. The collation
//! is registered on the rehearsal's connection only and never named in the
//! file's own schema, which any SQLite opens without it. Dates and
//! timestamps get [`DATE`], [`TIMESTAMP`] and [`TIMESTAMPTZ`] the same way,
//! comparing the day or moment Postgres reads from a text.

use std::cmp::Ordering;

use anyhow::Result;
use rusqlite::Connection;

/// The collation of numeric and floating-point columns during a rehearsal.
pub const NUMERIC: &str = "pg_numeric";

/// Whether values of `pg_type` are numbers SQLite holds as text, to be
/// compared with [`NUMERIC`].
pub fn numeric_text(pg_type: &str) -> bool {
    let base = pg_type.split('(').next().unwrap_or(pg_type).trim();
    matches!(base, "numeric" | "double precision" | "real")
}

/// The collation of interval columns during a rehearsal: Postgres compares
/// intervals by their whole span, a month counting 30 days and a day 24
/// hours, so `'1 day' = '24:00:00'` and `'1 mon' = '30 days'` (equal keys
/// of a UNIQUE, a join's match), where their texts differ.
pub const INTERVAL: &str = "pg_interval";

/// Whether `pg_type` is an interval (`interval`, `interval day to second`,
/// `interval(3)`).
pub fn is_interval(pg_type: &str) -> bool {
    pg_type == "interval" || pg_type.starts_with("interval ") || pg_type.starts_with("interval(")
}

/// Intervals in Postgres's order (`interval_cmp_value`): by span; text
/// that is none after them, bytewise.
pub fn compare_interval(a: &str, b: &str) -> Ordering {
    let span = |t: &str| {
        crate::plan::canonical::interval_fields(t)
            .ok()
            .map(|(months, days, micros)| (months * 30 + days) * 86_400_000_000 + micros)
    };
    match (span(a), span(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// The collations of dates and timestamps during a rehearsal: their text
/// is compared as the moment (or day) Postgres reads from it, so a literal
/// in another form (`'2024-01-01'`, `'2024-01-01T10:00Z'`) compares with
/// the stored `2024-01-01 10:00:00+00` as on Postgres.
pub const TIMESTAMPTZ: &str = "pg_timestamptz";
pub const TIMESTAMP: &str = "pg_timestamp";
pub const DATE: &str = "pg_date";

/// The collation a column of `pg_type` compares with during a rehearsal,
/// if its values are held as text Postgres compares otherwise.
pub fn collation_for(pg_type: &str) -> Option<&'static str> {
    if numeric_text(pg_type) {
        return Some(NUMERIC);
    }
    if is_interval(pg_type) {
        return Some(INTERVAL);
    }
    match crate::types::exactness(pg_type) {
        Some(crate::types::Exactness::Time) => Some(match pg_type {
            "date" => DATE,
            t if t.ends_with("with time zone") && !t.ends_with("without time zone") => TIMESTAMPTZ,
            _ => TIMESTAMP,
        }),
        _ => None,
    }
}

/// SQLite's built-in collation that ignores trailing spaces: Postgres's
/// `character(n)` (bpchar) compares without its padding, and the snapshot
/// keeps the padded text Postgres prints (`'ab   '` equals `'ab'`).
pub const BPCHAR: &str = "RTRIM";

/// Whether `pg_type` is `character(n)` / `bpchar` (not `character varying`).
pub fn is_bpchar(pg_type: &str) -> bool {
    let base = pg_type.split('(').next().unwrap_or(pg_type).trim();
    matches!(base, "character" | "bpchar")
}

/// The collation of an enum column during a rehearsal: Postgres orders an
/// enum by its labels' declared order (`pg_enum.enumsortorder`), not by
/// their text, so `status > 'new'` means the labels declared after 'new'.
/// One collation per list of labels, named by a digest of them (an enum
/// type's name alone could be another schema's type).
pub fn enum_collation(labels: &[String]) -> String {
    let joined = labels.join("\u{0}");
    format!(
        "pg_enum_{:016x}",
        xxhash_rust::xxh3::xxh3_64(joined.as_bytes())
    )
}

/// Whether `pg_type` is text Postgres orders by a collation: `text` and
/// `character varying(n)` (`name` is always byte order; `character(n)`
/// has [`BPCHAR`]).
pub fn is_collated_text(pg_type: &str) -> bool {
    let base = pg_type.split('(').next().unwrap_or(pg_type).trim();
    matches!(base, "text" | "character varying")
}

/// The collation `column` compares with during a rehearsal, if its values
/// are held as text Postgres compares otherwise: numbers, dates and
/// timestamps by what they mean ([`collation_for`]), an enum (or a domain
/// over one) by its labels' order, `character(n)` without its padding,
/// text by the column's collation (`db::text_order`; none for byte order).
pub fn collation_of(column: &crate::catalog::ColumnMeta) -> Option<String> {
    // A domain's values compare as its base type's.
    let value_type = column.value_type();
    if let Some(c) = collation_for(&value_type) {
        return Some(c.to_string());
    }
    if let Some(labels) = &column.enum_labels {
        return Some(enum_collation(labels));
    }
    if let Some(labels) = column
        .array_element
        .as_ref()
        .and_then(|e| e.enum_labels.as_ref())
        .filter(|_| value_type.ends_with("[]"))
    {
        return Some(enum_array_collation(labels));
    }
    if is_collated_text(&value_type) {
        return match &column.collation {
            None => Some(super::text_order::DEFAULT_TEXT.to_string()),
            Some(c) => super::text_order::column_collation(&c.name),
        };
    }
    is_bpchar(&value_type).then(|| BPCHAR.to_string())
}

/// Registers [`NUMERIC`], the time collations and the collation of every
/// enum `tables` have a column of ([`enum_collation`]) on `conn`, and the
/// names Postgres gives byte order (`"C"`, `"POSIX"`, `ucs_basic`), so a
/// plan can write `name COLLATE "C"` and mean the same on both engines.
/// Text of the database's default collation (`locale`; byte order when the
/// snapshot has none recorded) and of every other collation a text column
/// of `tables` has compares by `db::text_order`, noting in the returned
/// log each pair it cannot decide.
pub fn register(
    conn: &Connection,
    tables: &[crate::catalog::TableMeta],
    locale: Option<&DatabaseLocale>,
) -> Result<super::text_order::Doubts> {
    use super::text_order::{self as text, TextOrder};
    conn.create_collation(NUMERIC, compare_numeric)?;
    conn.create_collation(TIMESTAMPTZ, |a, b| compare_time(a, b, Moment::Zoned))?;
    conn.create_collation(TIMESTAMP, |a, b| compare_time(a, b, Moment::Local))?;
    conn.create_collation(DATE, |a, b| compare_time(a, b, Moment::Day))?;
    conn.create_collation(INTERVAL, compare_interval)?;
    for bytewise in BYTE_ORDER {
        conn.create_collation(bytewise, |a, b| a.as_bytes().cmp(b.as_bytes()))?;
    }
    let doubts = text::Doubts::default();
    let (order, name) = match locale {
        Some(l) => (
            text::order_of_database(&l.provider, &l.lc_collate, l.icu_locale.as_deref()),
            l.collation_name().to_string(),
        ),
        None => (TextOrder::Bytes, "C".to_string()),
    };
    text::register(conn, text::DEFAULT_TEXT, &name, order, &doubts)?;
    let mut done = std::collections::HashSet::new();
    for c in tables.iter().flat_map(|t| &t.columns) {
        let Some(coll) = c
            .collation
            .as_ref()
            .filter(|_| is_collated_text(&c.value_type()))
        else {
            continue;
        };
        let Some(sqlite_name) = text::column_collation(&coll.name) else {
            continue;
        };
        if done.insert(sqlite_name.clone()) {
            let order = text::order_of_collation(&coll.name, coll.deterministic);
            text::register(conn, &sqlite_name, &coll.name, order, &doubts)?;
        }
    }
    register_enums(conn, tables)?;
    Ok(doubts)
}

/// Postgres collations that compare UTF-8 text in byte (code point) order,
/// as SQLite's BINARY does.
pub const BYTE_ORDER: [&str; 3] = ["C", "POSIX", "ucs_basic"];

/// The collation of an array of an enum during a rehearsal: Postgres
/// compares arrays element by element (each by the enum's declared order),
/// then by length, so `'{active,new}' > '{new}'`, and reads `'{new, done}'`
/// as the `{new,done}` it prints.
pub fn enum_array_collation(labels: &[String]) -> String {
    format!("{}_array", enum_collation(labels))
}

/// Registers the collation of every enum, and of every array of an enum,
/// `tables` have a column of ([`enum_collation`], [`enum_array_collation`]).
pub fn register_enums(conn: &Connection, tables: &[crate::catalog::TableMeta]) -> Result<()> {
    let mut done = std::collections::HashSet::new();
    for c in tables.iter().flat_map(|t| &t.columns) {
        let element = c
            .array_element
            .as_ref()
            .and_then(|e| e.enum_labels.as_ref());
        let (labels, name, array) = match (&c.enum_labels, element) {
            (Some(labels), _) => (labels, enum_collation(labels), false),
            (None, Some(labels)) if c.value_type().ends_with("[]") => {
                (labels, enum_array_collation(labels), true)
            }
            _ => continue,
        };
        if !done.insert(name.clone()) {
            continue;
        }
        let order: std::collections::HashMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        if array {
            conn.create_collation(name.as_str(), move |a, b| compare_enum_array(&order, a, b))?;
        } else {
            conn.create_collation(name.as_str(), move |a, b| compare_enum(&order, a, b))?;
        }
    }
    Ok(())
}

/// The elements of a one-dimensional array as Postgres prints (or reads)
/// it, `None` for a NULL element; `None` for text that is not such an
/// array (another dimension, a bound decoration, a stray quote).
fn array_elements(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if matches!(c, '{' | '}' | '"') {
                    return None;
                }
                value.push(if c == '\\' {
                    chars.next();
                    chars.next()?
                } else {
                    c
                });
                chars.next();
            }
            value = value.trim_end().to_string();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        out.push((quoted || !value.eq_ignore_ascii_case("null")).then_some(value));
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// Arrays of an enum in Postgres's order (`array_cmp`): element by element
/// by the labels' order, a NULL element after every value, then the
/// shorter first; text that is no such array after them, bytewise.
fn compare_enum_array(
    order: &std::collections::HashMap<String, usize>,
    a: &str,
    b: &str,
) -> Ordering {
    match (array_elements(a), array_elements(b)) {
        (Some(x), Some(y)) => {
            for (p, q) in x.iter().zip(&y) {
                let o = match (p, q) {
                    (Some(p), Some(q)) => compare_enum(order, p, q),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// Labels in their declared order; text that is no label after them,
/// bytewise (Postgres refuses such a literal; the rehearsal's enum check
/// names stored values that are none).
fn compare_enum(order: &std::collections::HashMap<String, usize>, a: &str, b: &str) -> Ordering {
    match (order.get(a), order.get(b)) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// How Postgres reads a date or timestamp literal for a column.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// timestamptz: an offset moves the moment (no offset: the session's
    /// zone, UTC, see `types::SESSION_SETTINGS`).
    Zoned,
    /// timestamp without time zone: an offset is ignored.
    Local,
    /// date: the time of day is ignored.
    Day,
}

/// `(rank, microseconds)`: -infinity, a moment, infinity, then text that is
/// none (rank 3, compared bytewise).
pub(crate) fn moment(text: &str, how: Moment) -> Option<(u8, i128)> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("-infinity") {
        return Some((0, 0));
    }
    if t.eq_ignore_ascii_case("infinity") {
        return Some((2, 0));
    }
    let (t, bc) = match t.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (t, false),
    };
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i128> {
        let s = t.get(r)?;
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let dash = t.find('-')?;
    let year = num(0..dash)?;
    if b.get(dash + 3) != Some(&b'-') {
        return None;
    }
    let month = num(dash + 1..dash + 3)?;
    let day = num(dash + 4..dash + 6)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if bc { 1 - year } else { year };
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    let mut rest = &t[(dash + 6).min(t.len())..];
    if !rest.is_empty() {
        rest = rest.strip_prefix([' ', 'T'])?;
        let hour: i128 = rest.get(0..2)?.parse().ok()?;
        if rest.as_bytes().get(2) != Some(&b':') {
            return None;
        }
        let minute: i128 = rest.get(3..5)?.parse().ok()?;
        let mut r = &rest[5..];
        let mut second: i128 = 0;
        let mut fraction: i128 = 0;
        if let Some(s) = r.strip_prefix(':') {
            second = s.get(0..2)?.parse().ok()?;
            r = &s[2..];
            if let Some(f) = r.strip_prefix('.') {
                let digits = f.bytes().take_while(u8::is_ascii_digit).count();
                let mut d = f[..digits].to_string();
                d.truncate(6);
                while d.len() < 6 {
                    d.push('0');
                }
                fraction = d.parse().ok()?;
                r = &f[digits..];
            }
        }
        let mut offset: i128 = 0;
        let zone = r.trim();
        if zone.eq_ignore_ascii_case("z") || zone.eq_ignore_ascii_case("utc") {
        } else if let Some(sign) = zone
            .strip_prefix('+')
            .map(|z| (1, z))
            .or(zone.strip_prefix('-').map(|z| (-1, z)))
        {
            let (sign, z) = sign;
            let parts = crate::plan::canonical::offset_fields(z);
            let mut secs = 0i128;
            for (p, unit) in parts.iter().zip([3600, 60, 1]) {
                secs += p.parse::<i128>().ok()? * unit;
            }
            offset = sign * secs;
        } else if !zone.is_empty() {
            return None;
        }
        if how != Moment::Day {
            micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction;
            if how == Moment::Zoned {
                micros -= offset * 1_000_000;
            }
        }
    }
    Some((1, micros))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (year 0 is 1 BC).
pub(crate) fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Dates and timestamps in Postgres's order, read as [`Moment`] says;
/// text that is neither comes after them, bytewise.
pub fn compare_time(a: &str, b: &str, how: Moment) -> Ordering {
    match (moment(a, how), moment(b, how)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// A number as text, read for comparing.
#[derive(Debug, PartialEq, Eq)]
enum Number<'a> {
    NegativeInfinity,
    /// A finite value: negative, its significant digits (no leading or
    /// trailing zeros; empty for zero) and the power of ten of the first.
    Finite {
        negative: bool,
        digits: Vec<u8>,
        exponent: i64,
    },
    Infinity,
    NaN,
    /// Not a number at all: after every number, in byte order.
    Text(&'a str),
}

fn parse(text: &str) -> Number<'_> {
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if body.eq_ignore_ascii_case("nan") {
        return Number::NaN;
    }
    // Postgres prints `Infinity`; SQLite prints an infinite REAL as `Inf`.
    if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
        return if negative {
            Number::NegativeInfinity
        } else {
            Number::Infinity
        };
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => match body[i + 1..].parse::<i64>() {
            Ok(e) => (&body[..i], e),
            Err(_) => return Number::Text(text),
        },
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Number::Text(text);
    }
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let leading = digits.iter().take_while(|d| **d == b'0').count();
    digits.drain(..leading);
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    let exponent = (int.len() as i64 - 1 - leading as i64).saturating_add(exp);
    Number::Finite {
        negative: negative && !digits.is_empty(),
        digits,
        exponent,
    }
}

/// Postgres's order: -Infinity, the finite values, Infinity, NaN (numeric
/// and float8 alike; NaN equals NaN); text that is no number after them.
pub fn compare_numeric(a: &str, b: &str) -> Ordering {
    let rank = |n: &Number<'_>| match n {
        Number::NegativeInfinity => 0,
        Number::Finite { .. } => 1,
        Number::Infinity => 2,
        Number::NaN => 3,
        Number::Text(_) => 4,
    };
    let (x, y) = (parse(a), parse(b));
    match (&x, &y) {
        (
            Number::Finite {
                negative: n1,
                digits: d1,
                exponent: e1,
            },
            Number::Finite {
                negative: n2,
                digits: d2,
                exponent: e2,
            },
        ) => {
            let sign = |negative: bool, digits: &[u8]| match (negative, digits.is_empty()) {
                (_, true) => 0,
                (true, false) => -1,
                (false, false) => 1,
            };
            let (s1, s2) = (sign(*n1, d1), sign(*n2, d2));
            if s1 != s2 || s1 == 0 {
                return s1.cmp(&s2);
            }
            // Same sign, both non-zero: the larger magnitude has the higher
            // first power of ten, then the larger digits.
            let magnitude = e1.cmp(e2).then_with(|| d1.cmp(d2));
            if s1 < 0 {
                magnitude.reverse()
            } else {
                magnitude
            }
        }
        (Number::Text(s), Number::Text(t)) => s.as_bytes().cmp(t.as_bytes()),
        _ => rank(&x).cmp(&rank(&y)),
    }
}

/// The database's default locale, as the pull read it from `pg_database`:
/// what `lower()` and `upper()` of non-ASCII letters give on Postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseLocale {
    /// `datlocprovider`: `c` (libc) or `i` (ICU).
    pub provider: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    /// An ICU database's locale (`daticulocale`, Postgres 15 and 16;
    /// `datlocale` from 17), which orders its text; none for libc, or in a
    /// snapshot pulled before it was recorded.
    pub icu_locale: Option<String>,
}

/// Where the pull records [`DatabaseLocale`]. A file pulled before it was
/// recorded has no such table: its rehearsals keep SQLite's ASCII-only
/// `lower()` / `upper()`, as before.
const LOCALE_DDL: &str = "CREATE TABLE _sandbox_database_locale (provider TEXT NOT NULL, \
                          lc_collate TEXT NOT NULL, lc_ctype TEXT NOT NULL, icu_locale TEXT)";

pub fn write_locale(conn: &Connection, locale: &DatabaseLocale) -> Result<()> {
    conn.execute_batch(LOCALE_DDL)?;
    conn.execute(
        "INSERT INTO _sandbox_database_locale VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![
            locale.provider,
            locale.lc_collate,
            locale.lc_ctype,
            locale.icu_locale
        ],
    )?;
    Ok(())
}

pub fn read_locale(conn: &Connection) -> Result<Option<DatabaseLocale>> {
    if !crate::db::sqlite::table_exists(conn, "main", "_sandbox_database_locale")? {
        return Ok(None);
    }
    // A file pulled before the ICU locale was recorded has no such column.
    let has_icu: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('_sandbox_database_locale') \
         WHERE name = 'icu_locale'",
        [],
        |r| r.get(0),
    )?;
    let icu = if has_icu { "icu_locale" } else { "NULL" };
    let locale = conn.query_row(
        &format!("SELECT provider, lc_collate, lc_ctype, {icu} FROM main._sandbox_database_locale"),
        [],
        |r| {
            Ok(DatabaseLocale {
                provider: r.get(0)?,
                lc_collate: r.get(1)?,
                lc_ctype: r.get(2)?,
                icu_locale: r.get(3)?,
            })
        },
    )?;
    Ok(Some(locale))
}

/// How Postgres maps letter case under a database locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseMapping {
    /// libc's `C` / `POSIX`: ASCII letters only (SQLite's own `lower`).
    Ascii,
    /// Any other libc locale: each character to one character
    /// (`towlower`/`towupper`): 'Ä' -> 'ä', 'ß' stays 'ß' in `upper`.
    Simple,
    /// ICU: Unicode's full mapping (`upper('ß')` is 'SS').
    Full,
}

impl DatabaseLocale {
    /// The default collation's locale, as the database names it.
    pub fn collation_name(&self) -> &str {
        match (&self.icu_locale, self.provider.as_str()) {
            (Some(l), "i") => l,
            _ => &self.lc_collate,
        }
    }

    pub fn case_mapping(&self) -> CaseMapping {
        if self.provider == "i" {
            CaseMapping::Full
        } else if matches!(self.lc_ctype.as_str(), "C" | "POSIX") {
            CaseMapping::Ascii
        } else {
            CaseMapping::Simple
        }
    }
}

/// `text` in lower (or upper) case as Postgres maps it under `mapping`.
pub fn map_case(text: &str, mapping: CaseMapping, upper: bool) -> String {
    match (mapping, upper) {
        (CaseMapping::Ascii, false) => text.to_ascii_lowercase(),
        (CaseMapping::Ascii, true) => text.to_ascii_uppercase(),
        (CaseMapping::Full, false) => text.to_lowercase(),
        (CaseMapping::Full, true) => text.to_uppercase(),
        (CaseMapping::Simple, _) => text
            .chars()
            .map(|c| {
                let mut mapped: Vec<char> = if upper {
                    c.to_uppercase().collect()
                } else {
                    c.to_lowercase().collect()
                };
                // towlower/towupper map one character to one.
                match mapped.len() {
                    1 => mapped.remove(0),
                    _ => c,
                }
            })
            .collect(),
    }
}

/// Replaces SQLite's ASCII-only `lower()` / `upper()` on `conn` with the
/// database's mapping, when the pull recorded one that is not ASCII-only.
pub fn register_case_functions(conn: &Connection, locale: Option<&DatabaseLocale>) -> Result<()> {
    let Some(mapping) = locale.map(DatabaseLocale::case_mapping) else {
        return Ok(());
    };
    if mapping == CaseMapping::Ascii {
        return Ok(());
    }
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for (name, upper) in [("lower", false), ("upper", true)] {
        conn.create_scalar_function(name, 1, flags, move |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Text(t) => {
                    Some(map_case(&String::from_utf8_lossy(t), mapping, upper))
                }
                // A number's text has no letters but an exponent's `e`,
                // which Postgres (lower(1e5::text)) maps too.
                other => {
                    let text: String = match other {
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(r) => r.to_string(),
                        rusqlite::types::ValueRef::Blob(b) => {
                            String::from_utf8_lossy(b).into_owned()
                        }
                        _ => String::new(),
                    };
                    Some(map_case(&text, mapping, upper))
                }
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_order_by_their_span_as_postgres_compares_them() {
        // Each as Postgres 15 answers `a = b` / `a < b` for these texts.
        for (a, b) in [
            ("1 day", "24:00:00"),
            ("1 mon", "30 days"),
            ("1 year", "360 days"),
            ("-1 days +24:00:00", "00:00:00"),
            ("1 day 01:00:00", "25:00:00"),
        ] {
            assert_eq!(compare_interval(a, b), Ordering::Equal, "{a} vs {b}");
        }
        let ascending = [
            "-1 days",
            "00:00:00",
            "00:00:00.5",
            "23:59:59",
            "1 day 00:00:01",
            "1 mon 1 day",
            "1 year",
            "not an interval",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_interval(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn enum_arrays_order_element_by_element_in_declared_order() {
        let labels: Vec<String> = ["new", "open", "a,b", "done"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let order: std::collections::HashMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let ascending = [
            "{}",
            "{new}",
            "{new,open}",
            "{new,NULL}",
            "{open}",
            "{\"a,b\",new}",
            "{done}",
            "{{new}}",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_enum_array(&order, a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert_eq!(
            compare_enum_array(&order, "{new, open}", "{new,open}"),
            Ordering::Equal
        );
        assert_eq!(
            compare_enum_array(&order, "{\"new\",\"a,b\"}", "{new,\"a,b\"}"),
            Ordering::Equal
        );
    }

    #[test]
    fn case_maps_as_the_database_locale_does() {
        let lower = |t: &str, m| map_case(t, m, false);
        let upper = |t: &str, m| map_case(t, m, true);
        assert_eq!(lower("ÄÖÉx", CaseMapping::Ascii), "ÄÖÉx");
        assert_eq!(lower("ÄÖÉX", CaseMapping::Simple), "äöéx");
        assert_eq!(upper("straße", CaseMapping::Simple), "STRAßE");
        assert_eq!(upper("straße", CaseMapping::Full), "STRASSE");
    }

    #[test]
    fn dates_and_timestamps_as_text_order_as_postgres_reads_them() {
        use Moment::*;
        let eq = |a: &str, b: &str, how| compare_time(a, b, how) == Ordering::Equal;
        assert!(eq("2024-01-01", "2024-01-01 00:00:00+00", Zoned));
        assert!(eq("2024-01-01T10:00Z", "2024-01-01 10:00:00+00", Zoned));
        assert!(eq(
            "2024-01-01 12:00:00+02",
            "2024-01-01 10:00:00+00",
            Zoned
        ));
        assert!(eq("2024-01-01 10:00:00+02", "2024-01-01 10:00:00", Local));
        assert!(eq("2024-01-01 10:00", "2024-01-01", Day));
        assert!(eq(
            "2024-01-01 10:00:00.5+00",
            "2024-01-01 10:00:00.500+00",
            Zoned
        ));
        let ascending = [
            "-infinity",
            "0044-03-15 BC",
            "0001-01-01 00:00:00+00",
            "2023-12-31 23:59:59.999999+00",
            "2024-01-01",
            "2024-01-01 00:00:00.5+00",
            "2024-01-01 10:00:00+00",
            "12024-01-01 00:00:00+00",
            "infinity",
            "not a time",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_time(a, b, Zoned), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn numbers_as_text_order_as_postgres_orders_the_numbers() {
        let ascending = [
            "-Infinity",
            "-1.0e+20",
            "-100",
            "-9.5",
            "-0.25",
            "-0.2",
            "0",
            "0.0001",
            "0.2",
            "0.25",
            "1",
            "9.5000",
            "10",
            "100.25",
            "12345678901234567890",
            "1.0e+20",
            "Infinity",
            "NaN",
            "",
            "abc",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_numeric(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        // One value in several spellings: equal, as numeric's = says.
        for (a, b) in [
            ("0.2", "0.20"),
            ("10", "10.0000"),
            ("1e1", "10"),
            ("-0", "0.00"),
            ("0.0", "-0.000"),
            ("+5", "5"),
            ("NaN", "NaN"),
            ("1.0e+20", "100000000000000000000"),
            (".5", "0.5"),
        ] {
            assert_eq!(compare_numeric(a, b), Ordering::Equal, "{a} vs {b}");
        }
        // Digits beyond a REAL's 17 still count.
        assert_eq!(
            compare_numeric("12345678901234567891", "12345678901234567890"),
            Ordering::Greater
        );
        assert_eq!(
            compare_numeric("0.100000000000000000001", "0.1"),
            Ordering::Greater
        );
    }
}
