//! Postgres's order of the numbers the snapshot keeps as text.
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
//! file's own schema, which any SQLite opens without it.

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

/// Registers [`NUMERIC`] on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    conn.create_collation(NUMERIC, compare_numeric)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
