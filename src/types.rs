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
    // Catalog text: with `quote_all_identifiers = on` format_type() prints
    // `"jsonb"` and every type-driven rule would miss it.
    ("quote_all_identifiers", "off"),
    // Array input: with `array_nulls = off` an unquoted NULL element is
    // read back as the string "NULL".
    ("array_nulls", "on"),
    // xml input: with `xmloption = document` a pulled content fragment
    // (`''`, `t&amp;`) is refused when push or rollback writes it back.
    ("xmloption", "content"),
    // How backslashes in '…' literals of the plan's and our SQL are read.
    ("standard_conforming_strings", "on"),
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

/// The types whose values a phase can bend without an error by passing them
/// through a REAL (`json_extract` of a number, arithmetic), and what an
/// exact value of each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exactness {
    /// smallint, integer, bigint: an INTEGER in the range Postgres accepts.
    Integer { min: i64, max: i64 },
    /// numeric: decimal text; a typmod's scale fixes the decimals printed.
    Numeric { scale: Option<usize> },
    /// date and timestamps: the text Postgres prints, never a number.
    Time,
    /// jsonb: JSON text.
    Jsonb,
}

/// The typmod of a type as `format_type()` prints it: `(n)` or `(p,s)`.
pub fn typmod(pg_type: &str) -> Vec<usize> {
    pg_type
        .split_once('(')
        .and_then(|(_, m)| m.strip_suffix(')'))
        .map(|m| m.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The exactness rule of a type as `format_type()` prints it, if it has one.
pub fn exactness(pg_type: &str) -> Option<Exactness> {
    let base = pg_type.split('(').next().unwrap_or(pg_type).trim();
    Some(match base {
        "smallint" => Exactness::Integer {
            min: i16::MIN.into(),
            max: i16::MAX.into(),
        },
        "integer" => Exactness::Integer {
            min: i32::MIN.into(),
            max: i32::MAX.into(),
        },
        "bigint" => Exactness::Integer {
            min: i64::MIN,
            max: i64::MAX,
        },
        "numeric" => {
            // numeric(p) is numeric(p,0).
            Exactness::Numeric {
                scale: match typmod(pg_type)[..] {
                    [_, s, ..] => Some(s),
                    [_] => Some(0),
                    [] => None,
                },
            }
        }
        "date" | "timestamp with time zone" | "timestamp without time zone" => Exactness::Time,
        "jsonb" => Exactness::Jsonb,
        _ => return None,
    })
}

/// Appends one value to a COPY text-format line, escaped as Postgres does.
pub fn push_copy_field(line: &mut String, value: Option<&str>) {
    match value {
        None => line.push_str("\\N"),
        Some(v) => {
            // Every byte that needs an escape is ASCII, so the runs between
            // them are whole UTF-8 sequences and copy in one go.
            let bytes = v.as_bytes();
            let mut start = 0;
            while let Some(i) = next_copy_escape(bytes, start) {
                line.push_str(&v[start..i]);
                line.push_str(copy_escape(bytes[i]));
                start = i + 1;
            }
            line.push_str(&v[start..]);
        }
    }
}

/// Appends one value, escaped as [`push_copy_field`] does, to a byte line.
pub fn push_copy_field_bytes(line: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => line.extend_from_slice(b"\\N"),
        Some(v) => {
            let bytes = v.as_bytes();
            let mut start = 0;
            while let Some(i) = next_copy_escape(bytes, start) {
                line.extend_from_slice(&bytes[start..i]);
                line.extend_from_slice(copy_escape(bytes[i]).as_bytes());
                start = i + 1;
            }
            line.extend_from_slice(&bytes[start..]);
        }
    }
}

/// The escape Postgres's COPY prints for a byte [`next_copy_escape`] found.
fn copy_escape(b: u8) -> &'static str {
    match b {
        b'\\' => "\\\\",
        b'\t' => "\\t",
        b'\n' => "\\n",
        b'\r' => "\\r",
        // Postgres's COPY also escapes these control characters.
        0x08 => "\\b",
        0x0c => "\\f",
        0x0b => "\\v",
        _ => unreachable!("not a COPY escape"),
    }
}

fn is_copy_escape(b: u8) -> bool {
    matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0x08 | 0x0c | 0x0b)
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is below 0x0e or is a backslash (the only bytes
/// COPY escapes are among those); may say yes for other bytes of a word,
/// never no for one of them.
#[inline]
fn word_may_need_escape(w: u64) -> bool {
    let below = w.wrapping_sub(LO * 0x0e) & !w & HI;
    let x = w ^ (LO * u64::from(b'\\'));
    let backslash = x.wrapping_sub(LO) & !x & HI;
    below | backslash != 0
}

/// Position of the first byte at or after `from` that COPY escapes. Looks
/// at eight bytes at a time: values are mostly long runs of plain text.
#[inline]
fn next_copy_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        if word_may_need_escape(w) {
            break;
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|b| is_copy_escape(*b))
        .map(|p| i + p)
}

/// Position of the first `needle` in `haystack` (memchr: 16 or 32 bytes
/// at a time where the CPU has SIMD).
#[inline]
pub fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

/// One row as a COPY text-format line, newline-terminated.
pub fn copy_text_line<S: AsRef<str>>(values: &[Option<S>]) -> String {
    let len: usize = values
        .iter()
        .map(|v| v.as_ref().map_or(2, |s| s.as_ref().len()) + 1)
        .sum();
    let mut line = String::with_capacity(len + len / 16 + 1);
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
    let mut fields = Vec::new();
    parse_copy_fields(line, &mut fields)?;
    Ok(fields
        .into_iter()
        .map(|f| f.map(std::borrow::Cow::into_owned))
        .collect())
}

/// [`parse_copy_line`] into `out` (cleared first), borrowing every value
/// that holds no escape from `line` instead of copying it.
pub fn parse_copy_fields<'a>(
    line: &'a [u8],
    out: &mut Vec<Option<std::borrow::Cow<'a, str>>>,
) -> Result<(), String> {
    use std::borrow::Cow;
    out.clear();
    // Escapes are ASCII, so the line is UTF-8 exactly when every value is;
    // a bad line goes the slow way, which names the offending value.
    let Ok(text) = std::str::from_utf8(line) else {
        out.extend(
            parse_copy_line_bytewise(line)?
                .into_iter()
                .map(|v| v.map(Cow::Owned)),
        );
        return Ok(());
    };
    // One pass over the line for tabs and backslashes. Every tab ends a
    // value (even one right after a backslash, as in the bytewise parser);
    // a value with a backslash is unescaped, the others are borrowed.
    let bytes = text.as_bytes();
    let mut start = 0;
    loop {
        // A value ends at the next tab; the first backslash before it (if
        // any) says the value must be unescaped.
        let (end, first_backslash) = match next_tab_or_backslash(bytes, start) {
            Some(i) if bytes[i] == b'\\' => (
                find_byte(&bytes[i..], b'\t').map_or(bytes.len(), |t| i + t),
                Some(i - start),
            ),
            Some(tab) => (tab, None),
            None => (bytes.len(), None),
        };
        let field = &text[start..end];
        out.push(match first_backslash {
            _ if field == "\\N" => None,
            None => Some(Cow::Borrowed(field)),
            Some(first) => Some(Cow::Owned(unescape_copy_field(field, first))),
        });
        if end == bytes.len() {
            return Ok(());
        }
        start = end + 1;
    }
}

/// Position of the first tab or backslash at or after `from`.
#[inline]
fn next_tab_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    memchr::memchr2(b'\t', b'\\', &bytes[from..]).map(|p| from + p)
}

/// Undoes COPY's escapes in one value whose first backslash is at `first`.
/// The text between escapes is copied in runs (escapes can be dense: a
/// prompt's newlines), as `&str` slices of the value: a backslash is ASCII,
/// so every cut is at a character boundary and nothing is validated twice.
fn unescape_copy_field(field: &str, first: usize) -> String {
    let bytes = field.as_bytes();
    let mut out = String::with_capacity(field.len());
    // `start`: the first byte not yet copied; `at`: a backslash.
    let (mut start, mut at) = (0, first);
    loop {
        out.push_str(&field[start..at]);
        let Some(&escaped) = bytes.get(at + 1) else {
            // A lone backslash at the end stands for itself.
            out.push('\\');
            return out;
        };
        match escaped {
            b't' => out.push('\t'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'v' => out.push('\u{b}'),
            // Any other character (a backslash too) stands for itself: it
            // starts the next run.
            _ => {
                start = at + 1;
                at += 2;
                match find_byte(&bytes[at..], b'\\') {
                    Some(p) => at += p,
                    None => {
                        out.push_str(&field[start..]);
                        return out;
                    }
                }
                continue;
            }
        }
        start = at + 2;
        match find_byte(&bytes[start..], b'\\') {
            Some(p) => at = start + p,
            None => {
                out.push_str(&field[start..]);
                return out;
            }
        }
    }
}

/// The reference parser: one byte at a time, value by value.
fn parse_copy_line_bytewise(line: &[u8]) -> Result<Vec<Option<String>>, String> {
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

/// How a [`TableChecksum`] hashes each row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowHash {
    /// XXH3-128: snapshots of format 3 and receipts of undo format 4 on.
    /// The checksum guards against edits by accident (a DB browser, a
    /// damaged file), not against a forger: it is stored unkeyed next to
    /// the rows, so whoever can change a row can rewrite its checksum with
    /// any hash. A cryptographic hash bought nothing for that and cost a
    /// quarter of a pull's reading CPU (SHA-256 of every row).
    #[default]
    Xxh3,
    /// SHA-256: what receipts of undo format 1 to 3 recorded, so their
    /// rollback compares like with like.
    Sha256,
}

/// Order-independent content checksum of a table: the sum (per 64-bit lane,
/// wrapping) of the hash of every row's canonical COPY line, folded with
/// the row count. Order independence matters because Postgres and SQLite
/// sort text keys under different collations; summing keeps memory flat
/// while streaming.
#[derive(Debug, Clone, Default)]
pub struct TableChecksum {
    lanes: [u64; 4],
    rows: u64,
    hash: RowHash,
    /// Reused by [`TableChecksum::add_row`]: no allocation per row.
    line: Vec<u8>,
}

impl TableChecksum {
    pub fn new() -> Self {
        Self::default()
    }

    /// A checksum hashing rows with `hash` (an older receipt's).
    pub fn with(hash: RowHash) -> Self {
        Self {
            hash,
            ..Self::default()
        }
    }

    /// Adds one row given as its canonical COPY text line (with newline).
    pub fn add_line(&mut self, line: &[u8]) {
        match self.hash {
            RowHash::Xxh3 => {
                let h = xxhash_rust::xxh3::xxh3_128(line);
                self.lanes[0] = self.lanes[0].wrapping_add(h as u64);
                self.lanes[1] = self.lanes[1].wrapping_add((h >> 64) as u64);
            }
            RowHash::Sha256 => {
                let digest = Sha256::digest(line);
                for (lane, chunk) in self.lanes.iter_mut().zip(digest.chunks_exact(8)) {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(chunk);
                    *lane = lane.wrapping_add(u64::from_be_bytes(word));
                }
            }
        }
        self.rows += 1;
    }

    pub fn add_row<S: AsRef<str>>(&mut self, values: &[Option<S>]) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            push_copy_field_bytes(&mut line, v.as_ref().map(|s| s.as_ref()));
        }
        line.push(b'\n');
        self.add_line(&line);
        self.line = line;
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

/// Whether values of the built-in type `pg_type` (as `format_type()`
/// prints it; arrays by their element) have an equality Postgres can
/// compare them with: json, xml and the geometric types other than those
/// with a btree class have no `=`, or one that compares areas (box,
/// circle). Where no catalog is at hand (a script); push and rollback ask
/// the catalog (`TypeSpellings`), which also sees domains and records.
pub fn has_equality(pg_type: &str) -> bool {
    let element = pg_type.trim_end_matches("[]");
    !matches!(
        element,
        "json"
            | "xml"
            | "point"
            | "lseg"
            | "box"
            | "path"
            | "polygon"
            | "line"
            | "circle"
            | "txid_snapshot"
            | "pg_snapshot"
    )
}

/// A column type as `format_type()` prints it (`text`, `character
/// varying(64)`, `numeric(10,2)`, `timestamp(3) with time zone`, `uuid[]`,
/// `public."My Enum"`), checked before it is spliced into SQL: type names
/// reach the push and the rollback from the plan's target.json, the snapshot
/// and the receipt, files a person can edit. A name is one identifier
/// (optionally schema-qualified) or one of SQL's multi-word type names, then
/// at most one list of numeric modifiers and any array brackets — so
/// `text DEFAULT now()` or `text; DROP TABLE …` are refused, not spliced.
/// Anything else is an error naming it; callers say where it came from.
pub fn sql_type_name(ty: &str) -> Result<&str, String> {
    let bad = || format!("{ty:?} is not a Postgres type name");
    // (word, quoted) in order, the separators between them, whether a
    // modifier list was seen and after how many words.
    let mut words: Vec<(String, bool)> = Vec::new();
    let mut separators: Vec<char> = Vec::new();
    let mut modifiers_after: Option<usize> = None;
    let mut chars = ty.chars().peekable();
    loop {
        let mut word = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            // A quoted identifier: "" stands for one quote.
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        word.push('"');
                    }
                    Some('"') => break,
                    Some(c) => word.push(c),
                    None => return Err(bad()),
                }
            }
            if word.is_empty() {
                return Err(bad());
            }
        } else {
            match chars.peek() {
                Some(c) if c.is_ascii_alphabetic() || *c == '_' => {}
                _ => return Err(bad()),
            }
            while let Some(c) = chars.peek().copied() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    word.push(c.to_ascii_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
        }
        words.push((word, quoted));
        if chars.peek() == Some(&'(') {
            if modifiers_after.is_some() {
                return Err(bad());
            }
            chars.next();
            let mut inside = String::new();
            loop {
                match chars.next() {
                    Some(')') => break,
                    Some(c) if c.is_ascii_digit() || c == ',' || c == ' ' => inside.push(c),
                    _ => return Err(bad()),
                }
            }
            if inside.trim().is_empty() {
                return Err(bad());
            }
            modifiers_after = Some(words.len());
        }
        match chars.peek() {
            Some(&c @ (' ' | '.')) => {
                chars.next();
                separators.push(c);
            }
            _ => break,
        }
    }
    while chars.peek() == Some(&'[') {
        chars.next();
        if chars.next() != Some(']') {
            return Err(bad());
        }
    }
    if chars.next().is_some() {
        return Err(bad());
    }
    let spaced = separators.contains(&' ');
    let dotted = separators.contains(&'.');
    let shape_ok = match (spaced, dotted) {
        // `type` or `schema.type`, modifiers only at the end.
        (false, _) => words.len() <= 2 && modifiers_after.is_none_or(|n| n == words.len()),
        (true, false) => multi_word_type(&words, modifiers_after),
        (true, true) => false,
    };
    if shape_ok {
        Ok(ty)
    } else {
        Err(bad())
    }
}

/// SQL's type names of more than one word, as `format_type()` prints them,
/// with where a modifier list may stand (after the first word of
/// `timestamp(3) with time zone`, at the end of `character varying(8)`).
fn multi_word_type(words: &[(String, bool)], modifiers_after: Option<usize>) -> bool {
    if words.iter().any(|(_, quoted)| *quoted) {
        return false;
    }
    let phrase: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    let at_end = modifiers_after.is_none_or(|n| n == words.len());
    let after_first = modifiers_after.is_none_or(|n| n == 1);
    match phrase.as_slice() {
        ["double", "precision"] => modifiers_after.is_none(),
        ["character" | "bit", "varying"] => at_end,
        ["timestamp" | "time", "with" | "without", "time", "zone"] => after_first,
        ["interval", fields @ ..] => {
            const FIELDS: [&[&str]; 13] = [
                &["year"],
                &["month"],
                &["day"],
                &["hour"],
                &["minute"],
                &["second"],
                &["year", "to", "month"],
                &["day", "to", "hour"],
                &["day", "to", "minute"],
                &["day", "to", "second"],
                &["hour", "to", "minute"],
                &["hour", "to", "second"],
                &["minute", "to", "second"],
            ];
            FIELDS.contains(&fields) && at_end
        }
        _ => false,
    }
}

/// A query result value as text, the one form the rehearsal (SQLite) and
/// the push (Postgres) compare with the plan's expected values: SQL NULL is
/// `NULL`; a text that could be read as something else (the text `NULL`,
/// or one starting with a quote) is written as a SQL literal, `'NULL'`.
/// So a NULL never equals the text "NULL", and no two values share a text.
pub fn value_text(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_string(),
        Some(v) if v == "NULL" || v.starts_with('\'') => format!("'{}'", v.replace('\'', "''")),
        Some(v) => v.to_string(),
    }
}

/// The one text a row is known by, wherever rows are matched or named:
/// its primary-key values joined by `/`, each with `\` and `/` escaped by a
/// backslash and NULL written `\N`. No two keys give the same text, and the
/// usual one-column key (a uuid, a code) reads as the value itself.
/// [`row_key_sql`] computes the same text in SQLite.
pub fn row_key<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> String {
    values
        .into_iter()
        .map(|v| match v {
            Some(v) => v.replace('\\', "\\\\").replace('/', "\\/"),
            None => "\\N".to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A row's key for a person: the key columns and the row's [`row_key`],
/// `id=42` or `tenant/id=acme/42`, as every message naming a row puts it.
pub fn row_label<'a>(key: &[String], values: impl IntoIterator<Item = Option<&'a str>>) -> String {
    format!("{}={}", key.join("/"), row_key(values))
}

/// [`row_key`] as a SQLite expression over the key columns of the row
/// `alias` (`""`: unqualified columns).
pub fn row_key_sql(key: &[String], alias: &str) -> String {
    let dot = if alias.is_empty() { "" } else { "." };
    key.iter()
        .map(|k| {
            format!(
                "coalesce(replace(replace(CAST({alias}{dot}{} AS TEXT), '\\', '\\\\'), '/', '\\/'), '\\N')",
                quote_ident(k)
            )
        })
        .collect::<Vec<_>>()
        .join(" || '/' || ")
}

/// The first 12 characters of a hash, as reports and messages show it.
pub fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// SQL identifier quoting, the same on Postgres and SQLite.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table as a plan names it — `workflows` (schema public) or
/// `auth.users` (another schema, such as Supabase's auth) — quoted for
/// SQL: `public."workflows"`, `"auth"."users"`.
pub fn quote_table(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => format!("public.{}", quote_ident(name)),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn null_and_the_text_null_are_told_apart() {
        assert_eq!(value_text(None), "NULL");
        assert_eq!(value_text(Some("NULL")), "'NULL'");
        assert_eq!(value_text(Some("'NULL'")), "'''NULL'''");
        assert_eq!(value_text(Some("7")), "7");
        assert_eq!(value_text(Some("null")), "null");
    }

    #[test]
    fn row_keys_are_unambiguous_and_sqlite_computes_the_same_text() {
        let keys: Vec<Vec<Option<&str>>> = vec![
            vec![Some("jtbd00042")],
            vec![Some("a/b"), Some("c")],
            vec![Some("a"), Some("b/c")],
            vec![Some("a\\"), Some("/c")],
            vec![Some("a\\/"), Some("c")],
            vec![None, Some("c")],
            vec![Some("\\N"), Some("c")],
            vec![Some("NULL"), Some("c")],
            vec![Some(""), Some("c")],
        ];
        let texts: Vec<String> = keys.iter().map(|k| row_key(k.iter().copied())).collect();
        assert_eq!(texts[0], "jtbd00042");
        let distinct: std::collections::BTreeSet<&String> = texts.iter().collect();
        assert_eq!(distinct.len(), texts.len(), "{texts:?}");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER, a TEXT, b TEXT)")
            .unwrap();
        for (n, k) in keys.iter().enumerate() {
            conn.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3)",
                rusqlite::params![n as i64, k[0], k.get(1).copied().flatten()],
            )
            .unwrap();
        }
        let sql = format!(
            "SELECT {} FROM t x ORDER BY n",
            row_key_sql(&["a".to_string(), "b".to_string()], "x")
        );
        let from_sql: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let two_columns: Vec<String> = keys
            .iter()
            .map(|k| row_key([k[0], k.get(1).copied().flatten()]))
            .collect();
        assert_eq!(from_sql, two_columns);
    }

    #[test]
    fn type_names_pass_and_anything_else_is_refused() {
        for ok in [
            "text",
            "character varying(64)",
            "numeric(10,2)",
            "timestamp with time zone",
            "uuid[]",
            "text[][]",
            "public.\"My \"\"Enum\"\"\"",
            "\"dh_Odd Type\"[]",
            "timestamp(3) with time zone",
            "time without time zone[]",
            "double precision",
            "bit varying(5)[]",
            "interval day to second(3)",
            "interval(2)",
            "extensions.citext",
            "\"char\"",
        ] {
            assert_eq!(sql_type_name(ok), Ok(ok));
        }
        for bad in [
            "",
            "text; DROP TABLE prompts",
            "text) OR (1=1",
            "int -- x",
            "text[",
            "numeric()",
            "numeric(1'0)",
            "\"unterminated",
            "text/*x*/",
            " text",
            "text DEFAULT now",
            "text not null",
            "text collate c",
            "a.b.c",
            "public.text with time zone",
            "numeric(1)(2)",
            "character varying(8) varying",
            "\"\"",
        ] {
            let e = sql_type_name(bad).unwrap_err();
            assert!(e.contains("is not a Postgres type name"), "{bad:?}: {e}");
        }
    }

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

    /// The escaping as first written, one char at a time: the word-at-a-time
    /// version must print exactly the same bytes.
    fn reference_copy_field(line: &mut String, value: Option<&str>) {
        match value {
            None => line.push_str("\\N"),
            Some(v) => {
                for ch in v.chars() {
                    match ch {
                        '\\' => line.push_str("\\\\"),
                        '\t' => line.push_str("\\t"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        '\u{8}' => line.push_str("\\b"),
                        '\u{c}' => line.push_str("\\f"),
                        '\u{b}' => line.push_str("\\v"),
                        c => line.push(c),
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_escaping_prints_what_the_reference_prints(
            v in proptest::option::of("(\\PC|[\\\\\t\n\r\u{8}\u{b}\u{c}\u{e}\u{1}\\\\N]){0,80}")
        ) {
            let mut fast = String::new();
            push_copy_field(&mut fast, v.as_deref());
            let mut reference = String::new();
            reference_copy_field(&mut reference, v.as_deref());
            proptest::prop_assert_eq!(&fast, &reference);
            let mut bytes = Vec::new();
            push_copy_field_bytes(&mut bytes, v.as_deref());
            proptest::prop_assert_eq!(bytes, reference.into_bytes());
        }

        #[test]
        fn fast_parsing_reads_what_the_reference_reads(
            line in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![b'\\', b'\t', b'N', b'n', b't', b'a', 0xc3, 0xa9, 0xff, 0x80]),
                    proptest::num::u8::ANY,
                ],
                0..120,
            )
        ) {
            proptest::prop_assert_eq!(parse_copy_line(&line), parse_copy_line_bytewise(&line));
        }

        #[test]
        fn fast_parsing_reads_long_escaped_values_as_the_reference(
            line in proptest::collection::vec(
                proptest::sample::select(vec![
                    b'a', b'b', b'a', b'b', b'a', b'b', b'\\', b'\\', b'n', b't', b'N', 0xc3, 0xa9, b'\t',
                ]),
                0..400,
            )
        ) {
            proptest::prop_assert_eq!(parse_copy_line(&line), parse_copy_line_bytewise(&line));
        }

        #[test]
        fn find_byte_finds_the_first(
            hay in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', 0x0a ^ 0x80, 0x0b, 0xff]), 0..70),
            needle in proptest::sample::select(vec![b'\n', b'\\', 0xff]),
        ) {
            proptest::prop_assert_eq!(find_byte(&hay, needle), hay.iter().position(|b| *b == needle));
        }
    }

    #[test]
    fn add_row_hashes_the_copy_line() {
        let values = [Some("a\tb\\"), None, Some("é\n")];
        let mut by_row = TableChecksum::new();
        by_row.add_row(&values);
        by_row.add_row(&values[..1]);
        let mut by_line = TableChecksum::new();
        by_line.add_line(copy_text_line(&values).as_bytes());
        by_line.add_line(copy_text_line(&values[..1]).as_bytes());
        assert_eq!(by_row.hex(), by_line.hex());
    }

    /// Receipts of undo format 1 to 3 recorded SHA-256 checksums: the
    /// legacy hash must still give exactly those (value computed apart, in
    /// Python, from the definition), and the default one must differ.
    #[test]
    fn the_sha256_row_hash_still_gives_what_older_receipts_recorded() {
        let legacy = "dc05bac0b813f3df1094c953049463862f221f4450ca0c74b701c0acf64c0c8c";
        let mut old = TableChecksum::with(RowHash::Sha256);
        old.add_line(b"1\tx\n");
        old.add_line(b"2\t\\N\n");
        assert_eq!(old.hex(), legacy);
        let mut new = TableChecksum::new();
        new.add_line(b"1\tx\n");
        new.add_line(b"2\t\\N\n");
        assert_ne!(new.hex(), legacy);
        assert_eq!(new.rows(), 2);
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
