//! Postgres type ⇄ SQLite storage, and the canonical row encoding.
//!
//! Every pulled value travels as the text Postgres prints for it (COPY text
//! format, session settings fixed by [`SESSION_SETTINGS`]), so the round trip
//! is exact for every type: numeric never passes through f64, jsonb keeps
//! Postgres's key order and number text, timestamps keep their microseconds.
//! Only integers and booleans get native SQLite storage, because both map
//! without loss and make the file pleasant in a DB browser.

use sha2::{Digest, Sha256};

/// Settings applied (with `SET LOCAL`) to every transaction that reads or
/// writes pulled data, so that the text Postgres prints for a value never
/// depends on the server's or the role's configuration.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
];

/// How a Postgres column is stored in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// int2/int4/int8: SQLite INTEGER holds every value exactly.
    Integer,
    /// boolean as 0/1.
    Bool,
    /// Everything else: the exact text Postgres prints.
    Text,
}

impl Storage {
    /// Classifies a type as `format_type()` prints it.
    pub fn for_pg_type(pg_type: &str) -> Storage {
        match pg_type {
            "smallint" | "integer" | "bigint" => Storage::Integer,
            "boolean" => Storage::Bool,
            _ => Storage::Text,
        }
    }

    /// The declared SQLite type. Only these three names are used, so SQLite's
    /// type affinity can never reinterpret a value (a `NUMERIC` declaration
    /// would turn `1.10` into `1.1`).
    pub fn sqlite_decl(self) -> &'static str {
        match self {
            Storage::Integer | Storage::Bool => "INTEGER",
            Storage::Text => "TEXT",
        }
    }
}

/// Appends one value to a COPY text-format line, escaped as Postgres does.
pub fn push_copy_field(line: &mut String, value: Option<&str>) {
    match value {
        None => line.push_str("\\N"),
        Some(v) => {
            for ch in v.chars() {
                match ch {
                    '\\' => line.push_str("\\\\"),
                    '\t' => line.push_str("\\t"),
                    '\n' => line.push_str("\\n"),
                    '\r' => line.push_str("\\r"),
                    // Postgres's COPY also escapes these control characters.
                    '\u{8}' => line.push_str("\\b"),
                    '\u{c}' => line.push_str("\\f"),
                    '\u{b}' => line.push_str("\\v"),
                    c => line.push(c),
                }
            }
        }
    }
}

/// One row as a COPY text-format line, newline-terminated.
pub fn copy_text_line<S: AsRef<str>>(values: &[Option<S>]) -> String {
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push('\t');
        }
        push_copy_field(&mut line, v.as_ref().map(|s| s.as_ref()));
    }
    line.push('\n');
    line
}

/// Splits one COPY text-format line (without its newline) into values.
pub fn parse_copy_line(line: &[u8]) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    for field in line.split(|b| *b == b'\t') {
        if field == b"\\N" {
            out.push(None);
            continue;
        }
        let mut buf = Vec::with_capacity(field.len());
        let mut i = 0;
        while i < field.len() {
            let b = field[i];
            if b == b'\\' && i + 1 < field.len() {
                i += 1;
                buf.push(match field[i] {
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'v' => 0x0b,
                    other => other,
                });
            } else {
                buf.push(b);
            }
            i += 1;
        }
        out.push(Some(
            String::from_utf8(buf).map_err(|e| format!("COPY field is not UTF-8: {e}"))?,
        ));
    }
    Ok(out)
}

/// Order-independent content checksum of a table: the sum (per 64-bit lane,
/// wrapping) of the SHA-256 of every row's canonical COPY line, folded with
/// the row count. Order independence matters because Postgres and SQLite
/// sort text keys under different collations; summing keeps memory flat
/// while streaming.
#[derive(Debug, Clone, Default)]
pub struct TableChecksum {
    lanes: [u64; 4],
    rows: u64,
}

impl TableChecksum {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one row given as its canonical COPY text line (with newline).
    pub fn add_line(&mut self, line: &[u8]) {
        let digest = Sha256::digest(line);
        for (lane, chunk) in self.lanes.iter_mut().zip(digest.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *lane = lane.wrapping_add(u64::from_be_bytes(word));
        }
        self.rows += 1;
    }

    pub fn add_row<S: AsRef<str>>(&mut self, values: &[Option<S>]) {
        self.add_line(copy_text_line(values).as_bytes());
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Hex digest of the multiset of rows.
    pub fn hex(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.rows.to_be_bytes());
        for lane in self.lanes {
            h.update(lane.to_be_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// SQL identifier quoting, the same on Postgres and SQLite.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_line_round_trips_awkward_text() {
        let values = vec![
            Some("tab\there".to_string()),
            None,
            Some("back\\slash\nnew\rline".to_string()),
            Some(String::new()),
            Some("\\N".to_string()),
            Some("bell\u{8}form\u{c}vtab\u{b}".to_string()),
        ];
        let line = copy_text_line(&values);
        let parsed = parse_copy_line(line.trim_end_matches('\n').as_bytes()).unwrap();
        assert_eq!(parsed, values);
    }

    #[test]
    fn checksum_ignores_row_order_but_not_content() {
        let mut a = TableChecksum::new();
        a.add_row(&[Some("1"), Some("x")]);
        a.add_row(&[Some("2"), None::<&str>]);
        let mut b = TableChecksum::new();
        b.add_row(&[Some("2"), None::<&str>]);
        b.add_row(&[Some("1"), Some("x")]);
        assert_eq!(a.hex(), b.hex());
        let mut c = TableChecksum::new();
        c.add_row(&[Some("2"), Some("")]);
        c.add_row(&[Some("1"), Some("x")]);
        assert_ne!(a.hex(), c.hex());
    }
}
