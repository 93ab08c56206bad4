//! Postgres's place for NULLs in the plan's `ORDER BY`s.
//!
//! SQLite sorts NULL before every value; Postgres after every value, and
//! for `DESC` before. A query whose values depend on that order — `ORDER BY
//! x LIMIT 1`, `row_number() OVER (ORDER BY x)`, `group_concat(… ORDER BY
//! x)`, an `UPDATE … WHERE id IN (SELECT … ORDER BY x LIMIT 3)` — gave one
//! answer in the rehearsal and another on Postgres. Both engines honour an
//! explicit `NULLS FIRST` / `NULLS LAST` (SQLite since 3.30), so each term of
//! an `ORDER BY` that has none is given Postgres's default before SQLite
//! runs the statement: `NULLS LAST` ascending, `NULLS FIRST` descending.
//! The text is only added to (no line moves), so errors keep their line.

/// A token of SQL text, by byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An unquoted word: keyword, identifier or number.
    Word,
    Open,
    Close,
    Comma,
    Semicolon,
    /// A string or quoted identifier, or any other character.
    Other,
}

pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// The tokens of `sql`, comments and whitespace left out.
pub(super) fn tokens(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
                continue;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                i += 1;
                loop {
                    match b.get(i) {
                        None => break,
                        // A doubled quote is one quote inside.
                        Some(&x) if x == close && close != b']' && b.get(i + 1) == Some(&close) => {
                            i += 2
                        }
                        Some(&x) if x == close => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push(Token {
                    kind: Kind::Other,
                    start,
                    end: i,
                });
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                out.push(Token {
                    kind: Kind::Word,
                    start,
                    end: i,
                });
                continue;
            }
            b'(' => Kind::Open,
            b')' => Kind::Close,
            b',' => Kind::Comma,
            b';' => Kind::Semicolon,
            _ => Kind::Other,
        };
        i += 1;
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    out
}

/// Words that end an `ORDER BY` at its own depth: `LIMIT`/`OFFSET`, a
/// window's frame (`ROWS`, `RANGE`, `GROUPS`), an upsert's `ON CONFLICT`
/// after `INSERT … SELECT … ORDER BY`, `RETURNING`.
const CLAUSE_ENDS: &[&str] = &[
    "LIMIT",
    "OFFSET",
    "ROWS",
    "RANGE",
    "GROUPS",
    "ON",
    "RETURNING",
];

/// `sql` with every `ORDER BY` term that names no NULL order given
/// Postgres's: `NULLS LAST`, or `NULLS FIRST` after `DESC`.
pub fn with_postgres_null_order(sql: &str) -> String {
    let toks = tokens(sql);
    let word =
        |t: &Token, w: &str| t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(w);
    let mut inserts: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i + 1 < toks.len() {
        if !(word(&toks[i], "ORDER") && word(&toks[i + 1], "BY")) {
            i += 1;
            continue;
        }
        // The terms, each token with its depth inside the term, up to what
        // ends the clause.
        let mut depth = 0usize;
        let mut term: Vec<(&Token, usize)> = Vec::new();
        let mut finish = |term: &mut Vec<(&Token, usize)>| {
            let top = |w: &str| term.iter().any(|(t, d)| *d == 0 && word(t, w));
            if let Some((last, _)) = term.last() {
                if !top("NULLS") {
                    let desc = term
                        .iter()
                        .rev()
                        .find(|(t, d)| *d == 0 && t.kind == Kind::Word)
                        .is_some_and(|(t, _)| word(t, "DESC"));
                    inserts.push((last.end, if desc { " NULLS FIRST" } else { " NULLS LAST" }));
                }
            }
            term.clear();
        };
        for t in &toks[i + 2..] {
            let ends = depth == 0
                && (matches!(t.kind, Kind::Close | Kind::Semicolon)
                    || CLAUSE_ENDS.iter().any(|w| word(t, w)));
            if ends {
                break;
            }
            match t.kind {
                Kind::Comma if depth == 0 => {
                    finish(&mut term);
                    continue;
                }
                Kind::Open => {
                    term.push((t, depth));
                    depth += 1;
                    continue;
                }
                Kind::Close => depth -= 1,
                _ => {}
            }
            term.push((t, depth));
        }
        finish(&mut term);
        // An ORDER BY inside a term (a subquery's) is found on its own.
        i += 2;
    }
    if inserts.is_empty() {
        return sql.to_string();
    }
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = String::with_capacity(sql.len() + inserts.len() * 12);
    let mut from = 0;
    for (at, text) in inserts {
        out.push_str(&sql[from..at]);
        out.push_str(text);
        from = at;
    }
    out.push_str(&sql[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::with_postgres_null_order as pg;

    #[test]
    fn each_order_by_term_gets_postgres_s_null_order() {
        assert_eq!(
            pg("SELECT id FROM t ORDER BY cost, name DESC LIMIT 1"),
            "SELECT id FROM t ORDER BY cost NULLS LAST, name DESC NULLS FIRST LIMIT 1"
        );
        assert_eq!(
            pg("SELECT row_number() OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t"),
            "SELECT row_number() OVER (PARTITION BY a ORDER BY b NULLS LAST ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t"
        );
        assert_eq!(
            pg("UPDATE t SET x = 1 WHERE id IN (SELECT id FROM t ORDER BY coalesce(a, b) COLLATE NOCASE ASC, 2 desc);"),
            "UPDATE t SET x = 1 WHERE id IN (SELECT id FROM t ORDER BY coalesce(a, b) COLLATE NOCASE ASC NULLS LAST, 2 desc NULLS FIRST);"
        );
        assert_eq!(
            pg("SELECT group_concat(name, ',' ORDER BY (SELECT max(v) FROM u ORDER BY v)) FROM t ORDER BY 1"),
            "SELECT group_concat(name, ',' ORDER BY (SELECT max(v) FROM u ORDER BY v NULLS LAST) NULLS LAST) FROM t ORDER BY 1 NULLS LAST"
        );
        // An upsert's ON CONFLICT follows the SELECT's ORDER BY.
        assert_eq!(
            pg("INSERT INTO t (a) SELECT a FROM u ORDER BY a, b ON CONFLICT (a) DO NOTHING"),
            "INSERT INTO t (a) SELECT a FROM u ORDER BY a NULLS LAST, b NULLS LAST ON CONFLICT (a) DO NOTHING"
        );
        // Already explicit, or not an ORDER BY at all: unchanged.
        for same in [
            "SELECT a FROM t ORDER BY a NULLS FIRST, b DESC NULLS LAST",
            "SELECT 'ORDER BY x' AS \"order by\" FROM t -- ORDER BY y\n",
            "SELECT a FROM t /* ORDER BY a */ WHERE a = 'it''s ORDER BY b'",
        ] {
            assert_eq!(pg(same), same);
        }
        // Lines stay where they were.
        assert_eq!(
            pg("SELECT a\nFROM t\nORDER BY a\nLIMIT 1").lines().count(),
            4
        );
    }
}
