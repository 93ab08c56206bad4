//! The text Postgres stores for a value a phase wrote in another form.
//!
//! Postgres reads many spellings of one value and prints one: a
//! timestamptz with an offset comes back in UTC (the session's time zone,
//! see `types::SESSION_SETTINGS`), an array with spaces or needless quotes
//! comes back without them, a uuid in capitals in lower case. The push
//! compares what Postgres holds with the rehearsed rows byte for byte, so a
//! rehearsal that kept the plan's spelling would pass and the push refuse
//! late (or a receipt record what Postgres does not hold). Where the
//! canonical text is exact, the rehearsal rewrites the staged value to it
//! and reports both; where Postgres would round, the value is named.

/// The text Postgres prints for `text` written to a column of `pg_type`
/// (array elements separated by `delimiter`): `Ok(None)` when `text` is
/// already that text or not a form this knows (the check that every value
/// is one Postgres prints names it then), `Err(why)` when Postgres would
/// store a different value (rounding), not just a different spelling.
pub fn canonical_text(
    pg_type: &str,
    delimiter: char,
    text: &str,
) -> Result<Option<String>, String> {
    let canonical = canonical_value(pg_type, delimiter, text)?;
    Ok(canonical.filter(|c| c != text))
}

fn canonical_value(pg_type: &str, delimiter: char, text: &str) -> Result<Option<String>, String> {
    if let Some(element) = pg_type.strip_suffix("[]") {
        // `box` elements hold commas and parentheses of their own.
        if element == "box" {
            return Ok(None);
        }
        return canonical_array(element, delimiter, text);
    }
    // `timestamp(3) with time zone`: the typmod sits inside the name.
    let precision = pg_type
        .split_once('(')
        .and_then(|(_, m)| m.split_once(')'))
        .and_then(|(p, _)| p.trim().parse::<usize>().ok());
    match without_typmod(pg_type).as_str() {
        "timestamp with time zone" => canonical_timestamp(text, true, precision.unwrap_or(6)),
        "timestamp without time zone" => canonical_timestamp(text, false, precision.unwrap_or(6)),
        "numeric" => Ok(canonical_numeric(
            text,
            crate::types::typmod(pg_type).get(1).copied(),
        )),
        "uuid" => Ok(canonical_uuid(text)),
        "boolean" => Ok(canonical_bool(text).map(|b| if b { "t" } else { "f" }.to_string())),
        "smallint" | "integer" | "bigint" => Ok(text
            .trim()
            .trim_start_matches('+')
            .parse::<i64>()
            .ok()
            .map(|i| i.to_string())),
        _ => Ok(None),
    }
}

/// Whether [`canonical_text`] knows a form of `pg_type` to rewrite (a
/// column of another type need not be read).
pub fn has_canonical_form(pg_type: &str) -> bool {
    pg_type.ends_with("[]")
        || matches!(
            without_typmod(pg_type).as_str(),
            "timestamp with time zone" | "timestamp without time zone" | "numeric" | "uuid"
        )
}

/// `timestamp(3) with time zone` → `timestamp with time zone`.
fn without_typmod(pg_type: &str) -> String {
    match (pg_type.find('('), pg_type.find(')')) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &pg_type[..a], &pg_type[b + 1..])
            .trim()
            .to_string(),
        _ => pg_type.to_string(),
    }
}

/// A boolean literal Postgres reads (`t`, `true`, `yes`, `on`, `1` and
/// their false forms, any case, spaces around).
pub fn canonical_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A uuid with capitals, braces or without hyphens, as Postgres prints it.
fn canonical_uuid(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// A plain decimal (`+1.5`, `01.50`, `.5`, `1.`, `-0`) as numeric prints
/// it: no plus sign, no leading zeros, no negative zero; the decimals as
/// written (an unconstrained numeric keeps them), padded to the scale of a
/// numeric(p,s) (more decimals than that are rounded: left to the check
/// that names values Postgres would not print).
fn canonical_numeric(text: &str, scale: Option<usize>) -> Option<String> {
    let t = text.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let mut frac = frac.to_string();
    if let Some(scale) = scale {
        if frac.len() > scale {
            return None;
        }
        frac.extend(std::iter::repeat_n('0', scale - frac.len()));
    }
    let int = if int.is_empty() { "0" } else { int };
    let written = match frac.is_empty() {
        true => format!("{sign}{int}"),
        false => format!("{sign}{int}.{frac}"),
    };
    // Leading zeros and a negative zero go as numeric_in drops them.
    Some(crate::pgjson::numeric_text(&written))
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.frac]][zone]` with zone `Z`, `UTC`, `±HH`,
/// `±HHMM`, `±HH:MM` or `±HH:MM:SS`, as Postgres prints it: in UTC with
/// `+00` for a timestamptz (the session's time zone; no zone means that
/// zone), the zone dropped for a timestamp without one (Postgres ignores
/// it), trailing zeros of the fraction dropped. More fractional digits
/// than the column's precision Postgres rounds: an error naming it.
fn canonical_timestamp(
    text: &str,
    zoned: bool,
    precision: usize,
) -> Result<Option<String>, String> {
    let t = text.trim();
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
    {
        return Ok(None);
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16))
    else {
        return Ok(None);
    };
    let mut rest = &t[16..];
    let mut s = 0;
    if let Some(r) = rest.strip_prefix(':') {
        match r.get(..2).and_then(|x| x.parse::<i64>().ok()) {
            Some(v) if r.as_bytes()[..2].iter().all(u8::is_ascii_digit) => {
                s = v;
                rest = &r[2..];
            }
            _ => return Ok(None),
        }
    }
    let mut frac = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = &r[..n];
        rest = &r[n..];
    }
    let zone = rest.trim_start();
    let offset: i64 = if zone.is_empty() || zone == "Z" || zone.eq_ignore_ascii_case("UTC") {
        0
    } else {
        let sign = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Ok(None),
        };
        let z = &zone[1..];
        let parts: Vec<&str> = if z.contains(':') {
            z.split(':').collect()
        } else if z.len() == 4 {
            vec![&z[..2], &z[2..]]
        } else {
            vec![z]
        };
        if parts.len() > 3
            || parts
                .iter()
                .any(|p| p.len() != 2 || !p.bytes().all(|c| c.is_ascii_digit()))
        {
            return Ok(None);
        }
        let v: Vec<i64> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        let secs = v[0] * 3600 + v.get(1).unwrap_or(&0) * 60 + v.get(2).unwrap_or(&0);
        sign * secs
    };
    let month_days = match mo {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return Ok(None),
    };
    if !(1..=month_days).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return Ok(None);
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > precision {
        return Err(format!(
            "'{text}' has {} fractional digits of a second; Postgres rounds it to {precision}",
            frac.len()
        ));
    }
    let local = crate::fixtures::pgtext::days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    let at = if zoned { local - offset } else { local };
    let (y, mo, d) = crate::fixtures::pgtext::civil_from_days(at.div_euclid(86400));
    let secs = at.rem_euclid(86400);
    if !(1..=9999).contains(&y) {
        // BC dates and five-digit years print differently: not handled.
        return Ok(None);
    }
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if zoned {
        out.push_str("+00");
    }
    Ok(Some(out))
}

/// An array as Postgres prints it: no spaces around elements, an element
/// quoted only when it must be (empty, `NULL` as text, a delimiter, brace,
/// quote, backslash or white space in it), each element in its own
/// canonical form.
fn canonical_array(element: &str, delimiter: char, text: &str) -> Result<Option<String>, String> {
    use super::rowjson::{parse_array_delimited, ArrayNode};
    let trimmed = text.trim();
    let (prefix, body) = match trimmed.find('=') {
        Some(i) if trimmed.starts_with('[') => (&trimmed[..=i], &trimmed[i + 1..]),
        _ => ("", trimmed),
    };
    let Ok(node) = parse_array_delimited(body, delimiter) else {
        return Ok(None);
    };
    fn write(
        node: &ArrayNode,
        element: &str,
        delimiter: char,
        out: &mut String,
    ) -> Result<(), String> {
        match node {
            ArrayNode::List(items) => {
                out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(delimiter);
                    }
                    write(item, element, delimiter, out)?;
                }
                out.push('}');
            }
            ArrayNode::Elem(None) => out.push_str("NULL"),
            ArrayNode::Elem(Some(v)) => {
                let v = canonical_value(element, delimiter, v)?.unwrap_or_else(|| v.clone());
                let quote = v.is_empty()
                    || v.eq_ignore_ascii_case("NULL")
                    || v.chars().any(|c| {
                        c == delimiter
                            || matches!(c, '{' | '}' | '"' | '\\')
                            || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
                    });
                if quote {
                    out.push('"');
                    for c in v.chars() {
                        if matches!(c, '"' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(&v);
                }
            }
        }
        Ok(())
    }
    let mut out = prefix.to_string();
    write(&node, element, delimiter, &mut out)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ty: &str, text: &str) -> Option<String> {
        canonical_text(ty, ',', text).unwrap()
    }

    #[test]
    fn timestamps_come_back_in_utc_without_trailing_zeros() {
        let tz = "timestamp with time zone";
        assert_eq!(
            c(tz, "2024-01-01 10:00:00+02").as_deref(),
            Some("2024-01-01 08:00:00+00")
        );
        assert_eq!(
            c(tz, "2024-01-01T01:30:00.500-05:30").as_deref(),
            Some("2024-01-01 07:00:00.5+00")
        );
        assert_eq!(
            c(tz, "2024-03-01 00:10:00+0100").as_deref(),
            Some("2024-02-29 23:10:00+00")
        );
        assert_eq!(
            c(tz, "2024-01-01 10:00:00Z").as_deref(),
            Some("2024-01-01 10:00:00+00")
        );
        assert_eq!(
            c(tz, "2024-01-01 10:00:00").as_deref(),
            Some("2024-01-01 10:00:00+00")
        );
        assert_eq!(c(tz, "2024-01-01 10:00:00.123456+00"), None);
        assert_eq!(c(tz, "infinity"), None);
        assert!(canonical_text(tz, ',', "2024-01-01 10:00:00.1234567+00").is_err());
        assert!(canonical_text(
            "timestamp(3) with time zone",
            ',',
            "2024-01-01 10:00:00.1234+00"
        )
        .is_err());
        let plain = "timestamp without time zone";
        assert_eq!(
            c(plain, "2024-01-01T10:00:00+02").as_deref(),
            Some("2024-01-01 10:00:00")
        );
        assert_eq!(
            c(plain, "2024-01-01 10:00:00.10").as_deref(),
            Some("2024-01-01 10:00:00.1")
        );
    }

    #[test]
    fn arrays_numbers_uuids_and_booleans_take_the_form_postgres_prints() {
        assert_eq!(c("integer[]", "{1, 2}").as_deref(), Some("{1,2}"));
        assert_eq!(
            c("text[]", "{\"a\", \"b c\", \"\", NULL}").as_deref(),
            Some("{a,\"b c\",\"\",NULL}")
        );
        assert_eq!(c("text[]", "{a,\"b c\"}"), None);
        assert_eq!(c("boolean[]", "{true,false}").as_deref(), Some("{t,f}"));
        assert_eq!(c("text[]", "{\"NULL\",\"x\\\"y\"}"), None);
        assert_eq!(
            c("timestamp with time zone[]", "{\"2024-01-01 10:00:00+02\"}").as_deref(),
            Some("{\"2024-01-01 08:00:00+00\"}")
        );
        assert_eq!(c("numeric", "+01.50").as_deref(), Some("1.50"));
        assert_eq!(c("numeric", ".5").as_deref(), Some("0.5"));
        assert_eq!(c("numeric", "-0.00").as_deref(), Some("0.00"));
        assert_eq!(c("numeric(10,2)", "1.5").as_deref(), Some("1.50"));
        assert_eq!(c("numeric(10,2)", "1.505"), None);
        assert_eq!(c("numeric", "1.5"), None);
        assert_eq!(
            c("uuid", "{00392105-BE51-5207-BD8C-6CED75730336}").as_deref(),
            Some("00392105-be51-5207-bd8c-6ced75730336")
        );
    }
}
