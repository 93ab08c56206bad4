//! JSON printed the way Postgres prints a `jsonb` (`value::jsonb::text`).
//!
//! The snapshot stores jsonb as the text Postgres prints, and values the
//! tool builds itself (a `definition` assembled from a dh_workflow row, a
//! `metadata` object) must be byte-identical to what Postgres would print
//! after storing them, or a checksum computed on SQLite would never match
//! the one recomputed on Postgres. jsonb normalises on input: object keys
//! are sorted by (byte length, bytes) with the last duplicate winning, and
//! numbers go through `numeric_in`/`numeric_out`.

use serde_json::Value;

/// The text of `v::jsonb::text`.
///
/// Keys of `serde_json::Map` are already unique (the parser keeps the last
/// duplicate), so only the ordering is left to do here.
pub fn jsonb_text(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&numeric_text(&n.to_string())),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| {
                a.0.len()
                    .cmp(&b.0.len())
                    .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
            });
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// Postgres's `escape_json`: only the short escapes and other C0 controls
/// are escaped; everything else (DEL, `/`, non-ASCII) is copied literally.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `numeric_out(numeric_in(text))` for a JSON number's text.
///
/// numeric_in keeps the digits written after the point as the display
/// scale, shifted by the exponent (`1.50E+1` → scale 1 → `15.0`, `1e2` →
/// `100`, `1.5e-3` → `0.0015`); numeric has no negative zero. Text that is
/// not a JSON number, or whose exponent Postgres would reject (beyond
/// ±1000), is returned unchanged rather than expanded into a huge string.
pub fn numeric_text(text: &str) -> String {
    match normalise_numeric(text) {
        Some(s) => s,
        None => text.to_string(),
    }
}

fn normalise_numeric(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let negative = bytes.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &text[int_start..i];
    if int_digits.is_empty() {
        return None;
    }
    let mut frac_digits = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &text[frac_start..i];
        if frac_digits.is_empty() {
            return None;
        }
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        let mut exp_negative = false;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            exp_negative = bytes[i] == b'-';
            i += 1;
        }
        let exp_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let exp_text = &text[exp_start..i];
        if exp_text.is_empty() {
            return None;
        }
        // Postgres rejects exponents beyond NUMERIC_MAX_PRECISION (1000).
        let magnitude: i64 = exp_text.parse().ok().filter(|m| *m <= 1000)?;
        exponent = if exp_negative { -magnitude } else { magnitude };
    }
    if i != bytes.len() {
        return None;
    }

    let digits: String = format!("{int_digits}{frac_digits}");
    // Number of digits right of the decimal point in the value as written.
    let shift = frac_digits.len() as i64 - exponent;
    let (int_part, frac_part) = if shift <= 0 {
        let mut int_part = digits;
        int_part.extend(std::iter::repeat_n('0', (-shift) as usize));
        (int_part, String::new())
    } else {
        let shift = shift as usize;
        if digits.len() > shift {
            let (a, b) = digits.split_at(digits.len() - shift);
            (a.to_string(), b.to_string())
        } else {
            let mut frac = "0".repeat(shift - digits.len());
            frac.push_str(&digits);
            (String::new(), frac)
        }
    };
    let int_trimmed = int_part.trim_start_matches('0');
    let int_final = if int_trimmed.is_empty() {
        "0"
    } else {
        int_trimmed
    };
    let is_zero = int_final == "0" && frac_part.bytes().all(|b| b == b'0');

    let mut out = String::with_capacity(int_final.len() + frac_part.len() + 2);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(int_final);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(&frac_part);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jt(doc: &str) -> String {
        let v: Value = serde_json::from_str(doc).expect("test document is JSON");
        jsonb_text(&v)
    }

    #[test]
    fn pgjson_orders_keys_by_length_then_bytes() {
        assert_eq!(
            jt(r#"{"bb": 1, "a": 2, "c": 3, "aaa": {"z": [], "y": {}}}"#),
            r#"{"a": 2, "c": 3, "bb": 1, "aaa": {"y": {}, "z": []}}"#
        );
        // Byte order, not code point order or locale: 'Z' < 'a' < 'é'.
        assert_eq!(
            jt(r#"{"é": 1, "a": 2, "Z": 3}"#),
            r#"{"Z": 3, "a": 2, "é": 1}"#
        );
    }

    #[test]
    fn pgjson_last_duplicate_wins() {
        assert_eq!(jt(r#"{"a": 1, "b": 2, "a": 3}"#), r#"{"a": 3, "b": 2}"#);
    }

    #[test]
    fn pgjson_empty_containers_and_scalars() {
        assert_eq!(jt("{}"), "{}");
        assert_eq!(jt("[]"), "[]");
        assert_eq!(
            jt("[{}, [], null, true, false]"),
            "[{}, [], null, true, false]"
        );
        assert_eq!(jt(r#""x""#), r#""x""#);
        assert_eq!(jt("null"), "null");
    }

    #[test]
    fn pgjson_escapes_like_escape_json() {
        assert_eq!(
            jt(r#"["q\"b\\s\/l\b\f\n\r\t\u0001\u001f\u007f é 😀"]"#),
            "[\"q\\\"b\\\\s/l\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f} é 😀\"]"
        );
    }

    #[test]
    fn pgjson_numbers_follow_numeric_in_out() {
        let cases = [
            ("1e2", "100"),
            ("1E2", "100"),
            ("1.50E+1", "15.0"),
            ("1.50", "1.50"),
            ("1.5e-3", "0.0015"),
            ("1.0e-2", "0.010"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("0e5", "0"),
            ("0.000", "0.000"),
            ("-12.340e1", "-123.40"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("1e-7", "0.0000001"),
            ("25e-1", "2.5"),
            ("-7", "-7"),
        ];
        for (input, want) in cases {
            assert_eq!(numeric_text(input), want, "numeric text of {input}");
            assert_eq!(jt(input), want, "jsonb text of {input}");
        }
        assert_eq!(numeric_text("1e1001"), "1e1001");
        assert_eq!(numeric_text("abc"), "abc");
    }

    #[test]
    fn pgjson_values_built_in_rust() {
        let v = json!({"temperature": 0.7, "max_tokens": 2000, "model": "gpt-4"});
        assert_eq!(
            jsonb_text(&v),
            r#"{"model": "gpt-4", "max_tokens": 2000, "temperature": 0.7}"#
        );
        assert_eq!(jsonb_text(&json!(1e20)), "100000000000000000000");
    }

    #[test]
    fn pgjson_output_is_a_fixed_point() {
        let doc = r#"{"b": [1.50E+1, {"y": "\u0002", "x": -0}], "a": "é"}"#;
        let once = jt(doc);
        assert_eq!(jt(&once), once);
    }
}
