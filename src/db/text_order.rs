//! Postgres's order of text under a linguistic collation, as far as the
//! rehearsal can know it.
//!
//! Postgres orders text by the column's collation: the database's default
//! (`en_US.UTF-8` on many Supabase projects, an ICU locale on some) unless
//! the column names another. SQLite compares bytes, so `'Banana' <
//! 'apple'` there and the reverse on Postgres: `ORDER BY name LIMIT 1`,
//! `max(name)` or `name < 'b'` chose other rows in the rehearsal than on
//! the server. glibc's and ICU's full tables are out of reach, but for
//! English (and ICU's root, `und`) both agree on a part that covers most
//! names and codes: at the first place the texts differ other than in
//! letter case, ASCII digits come before ASCII letters and letters follow
//! the alphabet whatever their case; texts that differ only in case are
//! decided by the first letter that differs, lowercase first. A space,
//! punctuation or a non-ASCII character at that place decides nothing here
//! (glibc skips spaces and punctuation at first, ICU does not; accents go
//! by tables). Held against Postgres 15 with ICU `en-US` and `und` and
//! against glibc 2.36's `en_US.UTF-8`.
//!
//! During a rehearsal, text columns compare with a collation ([`compare`])
//! that orders every pair by one total order agreeing with that rule, and
//! tells whether the rule decided the pair (certain) or only the order's
//! own choice did. Pairs of the second kind are noted ([`Doubts`]) against
//! the query that compared them: an expectation, verification query or
//! guard is run on Postgres by the preflight, which decides it; the
//! rehearsal lists it as such.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

/// How Postgres orders text under a collation, as far as the rehearsal
/// knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOrder {
    /// `C`, `POSIX`, `C.UTF-8`, `ucs_basic`: bytes, as SQLite.
    Bytes,
    /// English or ICU root (glibc `en_*`, ICU `en`, `und`): the rule of the
    /// module's text decides most pairs.
    English,
    /// Another language, a tailored or non-deterministic collation: no
    /// pair of different texts is certain.
    Unknown,
}

/// The collation of a text column of the database's default collation.
pub const DEFAULT_TEXT: &str = "pg_text";

/// The order of the database's default collation: `provider` `c` (libc,
/// `collate` its `LC_COLLATE`) or `i` (ICU, `icu_locale` its locale).
pub fn order_of_database(provider: &str, collate: &str, icu_locale: Option<&str>) -> TextOrder {
    match (provider, icu_locale) {
        ("i", Some(locale)) => order_of_icu_locale(locale),
        ("i", None) => TextOrder::Unknown,
        _ => order_of_libc_locale(collate),
    }
}

fn order_of_libc_locale(locale: &str) -> TextOrder {
    let l = locale.to_ascii_lowercase();
    if l == "c" || l == "posix" || l.starts_with("c.") {
        return TextOrder::Bytes;
    }
    // `en_US.UTF-8`, `en_GB.utf8`; a modifier (`@…`) tailors the order.
    let language = l.split(['_', '.']).next().unwrap_or("");
    if language == "en" && !l.contains('@') {
        TextOrder::English
    } else {
        TextOrder::Unknown
    }
}

fn order_of_icu_locale(locale: &str) -> TextOrder {
    let l = locale.to_ascii_lowercase().replace('_', "-");
    // Keywords (`-u-kn-true` numbers by value, `-u-kf-upper` uppercase
    // first, `-u-ks-level2` case-blind) and en-US-POSIX change the order.
    if l.contains("-u-") || l.contains('@') || l.contains("posix") {
        return TextOrder::Unknown;
    }
    match l.split('-').next().unwrap_or("") {
        "" | "und" | "root" | "en" => TextOrder::English,
        _ => TextOrder::Unknown,
    }
}

/// The order of a column's collation (`pg_collation.collname`) other than
/// the database default.
pub fn order_of_collation(name: &str, deterministic: bool) -> TextOrder {
    if super::collation::BYTE_ORDER.contains(&name) {
        return TextOrder::Bytes;
    }
    if !deterministic {
        return TextOrder::Unknown;
    }
    // Postgres's predefined ICU collations are `<locale>-x-icu`; libc
    // ones are the locale's name (`en_US`, `en_US.utf8`).
    match name.strip_suffix("-x-icu") {
        Some(locale) => order_of_icu_locale(locale),
        None => order_of_libc_locale(name),
    }
}

/// The rehearsal's collation for text of a column collated `name` (not
/// the database default): none for byte order, which SQLite's own is.
pub fn column_collation(name: &str) -> Option<String> {
    if super::collation::BYTE_ORDER.contains(&name) {
        return None;
    }
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Some(format!("{DEFAULT_TEXT}_{safe}"))
}

/// A character's place at the first level: ASCII spaces and punctuation,
/// then digits, then letters whatever their case, then any other
/// character by code point.
fn primary(c: char) -> (u8, u32) {
    match c {
        '0'..='9' => (1, c as u32),
        'a'..='z' => (2, c as u32),
        'A'..='Z' => (2, c.to_ascii_lowercase() as u32),
        c if c.is_ascii() => (0, c as u32),
        c => (3, c as u32),
    }
}

/// `a` against `b` in one total order that agrees with `order` wherever the
/// module's rule decides, and whether it did (`true`: Postgres orders the
/// pair the same way; `false`: the rehearsal's own choice).
pub fn compare(a: &str, b: &str, order: TextOrder) -> (Ordering, bool) {
    if a == b {
        return (Ordering::Equal, true);
    }
    if order == TextOrder::Bytes {
        return (a.as_bytes().cmp(b.as_bytes()), true);
    }
    let english = order == TextOrder::English;
    let alnum = |c: char| c.is_ascii_alphanumeric();
    // The texts up to the first difference: a character outside ASCII
    // there may join the next one (a contraction) in some locale.
    let mut ascii_before = true;
    let (mut x, mut y) = (a.chars(), b.chars());
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) => {
                let (pp, qp) = (primary(p), primary(q));
                if pp == qp {
                    ascii_before &= p.is_ascii();
                    continue;
                }
                let certain = english && ascii_before && alnum(p) && alnum(q);
                return (pp.cmp(&qp), certain);
            }
            // One text is the other's start (case aside) followed by
            // letters and digits, which count at the first level in every
            // locale here; a trailing space or punctuation may not (glibc).
            (None, Some(q)) => {
                let certain = english && ascii_before && alnum(q) && y.all(alnum);
                return (Ordering::Less, certain);
            }
            (Some(p), None) => {
                let certain = english && ascii_before && alnum(p) && x.all(alnum);
                return (Ordering::Greater, certain);
            }
            (None, None) => break,
        }
    }
    // The same characters but for the case of ASCII letters: the first
    // that differs decides, lowercase first.
    for (p, q) in a.chars().zip(b.chars()) {
        if p != q {
            let o = if p.is_ascii_lowercase() {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            return (o, english && ascii_before);
        }
    }
    (a.as_bytes().cmp(b.as_bytes()), false)
}

/// A pair of texts whose order the rehearsal could not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doubt {
    /// The collation, as Postgres names it (`en_US.UTF-8`, `und-x-icu`).
    pub collation: String,
    pub a: String,
    pub b: String,
}

/// What the text collations could not decide since the last
/// [`Doubts::take`]: how many comparisons, and the first few pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoubtLog {
    pub count: u64,
    pub examples: Vec<Doubt>,
}

/// How many pairs a log keeps.
const EXAMPLES: usize = 3;

/// The log the rehearsal connection's text collations write to. Cloned
/// into each collation; the rehearsal takes it around each query.
#[derive(Debug, Clone, Default)]
pub struct Doubts(Arc<Mutex<DoubtLog>>);

impl Doubts {
    fn note(&self, collation: &str, a: &str, b: &str) {
        let Ok(mut log) = self.0.lock() else { return };
        log.count += 1;
        if log.examples.len() < EXAMPLES {
            let cut = |s: &str| -> String {
                match s.char_indices().nth(40) {
                    Some((i, _)) => format!("{}…", &s[..i]),
                    None => s.to_string(),
                }
            };
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            let d = Doubt {
                collation: collation.to_string(),
                a: cut(a),
                b: cut(b),
            };
            if !log.examples.contains(&d) {
                log.examples.push(d);
            }
        }
    }

    /// The log so far, emptied.
    pub fn take(&self) -> DoubtLog {
        self.0
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }
}

/// Registers `sqlite_name` on `conn`: text ordered by `order`, each pair it
/// cannot decide noted in `doubts` under `pg_name`.
pub fn register(
    conn: &rusqlite::Connection,
    sqlite_name: &str,
    pg_name: &str,
    order: TextOrder,
    doubts: &Doubts,
) -> rusqlite::Result<()> {
    if order == TextOrder::Bytes {
        return conn.create_collation(sqlite_name, |a, b| a.as_bytes().cmp(b.as_bytes()));
    }
    let doubts = doubts.clone();
    let pg_name = pg_name.to_string();
    conn.create_collation(sqlite_name, move |a, b| {
        let (o, certain) = compare(a, b, order);
        if !certain {
            doubts.note(&pg_name, a, b);
        }
        o
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `words` in the order `compare` gives, certain or not.
    fn sorted(words: &[&str], order: TextOrder) -> Vec<String> {
        let mut v: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        v.sort_by(|a, b| compare(a, b, order).0);
        v
    }

    #[test]
    fn english_text_orders_as_postgres_where_the_rule_decides() {
        // Postgres 15, ICU en-US and und, and glibc 2.36 en_US.UTF-8 all
        // give this order (letters and digits only).
        let words = [
            "Zeta", "apple", "Apple", "Banana", "a1", "A1", "ab", "aB", "Ab", "1a", "9", "Ab1",
            "abc", "zeta", "Ab0", "aB1", "b", "B",
        ];
        let postgres = [
            "1a", "9", "a1", "A1", "ab", "aB", "Ab", "Ab0", "aB1", "Ab1", "abc", "apple", "Apple",
            "b", "B", "Banana", "zeta", "Zeta",
        ];
        assert_eq!(sorted(&words, TextOrder::English), postgres);
        for a in words {
            for b in words {
                assert!(compare(a, b, TextOrder::English).1, "{a} vs {b} undecided");
            }
        }
    }

    #[test]
    fn a_space_punctuation_or_accent_at_the_first_difference_is_undecided() {
        // glibc: 'a b' < 'a-b' < 'ab' < 'ab-' < 'aB' and '_x' after 'f';
        // ICU: '_x' first, 'ab-' after 'Ab': the rule cannot tell.
        for (a, b) in [
            ("a b", "ab"),
            ("a-b", "a b"),
            ("ab", "ab-"),
            ("_x", "f"),
            ("e", "é"),
            ("é", "f"),
            ("Café", "cafe"),
        ] {
            assert!(!compare(a, b, TextOrder::English).1, "{a} vs {b} decided");
            assert!(!compare(b, a, TextOrder::English).1, "{b} vs {a} decided");
        }
        // A shared start with a space in it still lets the rest decide.
        assert_eq!(
            compare("Data Pipeline", "data pipes", TextOrder::English),
            (Ordering::Less, true)
        );
        assert_eq!(
            compare("ab", "abc", TextOrder::English),
            (Ordering::Less, true)
        );
    }

    #[test]
    fn the_order_is_total_and_equal_only_for_equal_text() {
        let words = [
            "", " ", "a b", "a-b", "ab", "ab-", "aB", "Ab", "_x", "e", "é", "f", "Éa", "éA", "1",
            "Z", "[", "a",
        ];
        for order in [TextOrder::English, TextOrder::Unknown, TextOrder::Bytes] {
            for a in words {
                for b in words {
                    let ab = compare(a, b, order).0;
                    assert_eq!(ab, compare(b, a, order).0.reverse(), "{a} vs {b}");
                    assert_eq!(ab == Ordering::Equal, a == b, "{a} vs {b}");
                    for c in words {
                        if ab == Ordering::Less && compare(b, c, order).0 == Ordering::Less {
                            assert_eq!(compare(a, c, order).0, Ordering::Less, "{a} {b} {c}");
                        }
                    }
                }
            }
        }
        assert!(!compare("a", "b", TextOrder::Unknown).1);
        assert!(compare("a", "a", TextOrder::Unknown).1);
    }

    #[test]
    fn locales_are_classified_by_what_the_rule_knows() {
        use TextOrder::*;
        assert_eq!(order_of_database("c", "en_US.UTF-8", None), English);
        assert_eq!(order_of_database("c", "C.UTF-8", None), Bytes);
        assert_eq!(order_of_database("c", "C", None), Bytes);
        assert_eq!(order_of_database("c", "de_DE.UTF-8", None), Unknown);
        assert_eq!(order_of_database("i", "C.UTF-8", Some("en-US")), English);
        assert_eq!(order_of_database("i", "C", Some("und")), English);
        assert_eq!(order_of_database("i", "C", Some("da")), Unknown);
        assert_eq!(order_of_database("i", "C", Some("en-u-kn-true")), Unknown);
        assert_eq!(order_of_collation("und-x-icu", true), English);
        assert_eq!(order_of_collation("en-US-x-icu", true), English);
        assert_eq!(order_of_collation("sv-x-icu", true), Unknown);
        assert_eq!(order_of_collation("en_US", true), English);
        assert_eq!(order_of_collation("C", true), Bytes);
        assert_eq!(order_of_collation("ci", false), Unknown);
        assert_eq!(column_collation("C"), None);
        assert_eq!(
            column_collation("und-x-icu").as_deref(),
            Some("pg_text_und_x_icu")
        );
    }
}
