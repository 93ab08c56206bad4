//! A collated column's comparison kept through `COALESCE`, `IFNULL`,
//! `NULLIF`, `IIF`, `CASE` and scalar subqueries.
//!
//! During a rehearsal numbers, dates, enums and `character(n)` are text
//! compared by a collation (`db::collation`) that SQLite takes from the
//! column. An expression built from the column has none: `COALESCE(price,
//! 0) > 50` compared the text '9.5' with the integer 50 (any text is
//! greater), so it held for every priced row where Postgres compares the
//! numbers. Before SQLite runs a statement, each such expression that is
//! compared (an operand of `=`, `<`, `BETWEEN`, `IN`, `IS`…, or an `ORDER
//! BY` / `GROUP BY` / `PARTITION BY` term) becomes `(CAST(expr AS TEXT)
//! COLLATE c)`, `c` the collation of the column it yields: TEXT affinity
//! turns the other side into text, and the collation compares the two as
//! Postgres does. `NULLIF(a, b)` compares inside: both arguments become
//! text under `a`'s collation. Elsewhere (a value written, a function's
//! argument) nothing changes. As in `null_order`, text is only added on the
//! same line, so errors keep their line.

use std::collections::HashMap;

use super::null_order::{tokens, Kind, Token};

/// Per table (lower case), the rehearsal collation of each column (lower
/// case) that has one.
pub type ColumnCollations = HashMap<String, HashMap<String, String>>;

/// The functions whose value is one of their arguments.
const CHOOSERS: &[&str] = &["coalesce", "ifnull", "nullif", "iif"];

/// String functions whose first argument Postgres takes as text, so a
/// `character(n)` value loses its trailing blanks there (`string_agg` is
/// SQLite's `group_concat`).
const TEXT_FUNCTIONS: &[&str] = &[
    "length",
    "char_length",
    "character_length",
    "upper",
    "lower",
    "substr",
    "substring",
    "replace",
    "instr",
    "ltrim",
    "group_concat",
];

/// Words that start a clause: an `ORDER BY` term list ends at them.
const CLAUSES: &[&str] = &[
    "select",
    "from",
    "where",
    "set",
    "values",
    "having",
    "on",
    "returning",
    "window",
    "using",
    "into",
    "limit",
];

/// Words that cannot be a table's alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "set",
    "on",
    "using",
    "join",
    "left",
    "right",
    "inner",
    "outer",
    "cross",
    "natural",
    "group",
    "order",
    "limit",
    "having",
    "window",
    "union",
    "except",
    "intersect",
    "values",
    "default",
    "select",
    "returning",
    "as",
    "full",
];

struct Sql<'a> {
    sql: &'a str,
    toks: Vec<Token>,
    /// For an opening parenthesis, the index of its closing one.
    close: HashMap<usize, usize>,
    /// For a CASE, the index of its END.
    end: HashMap<usize, usize>,
    /// The tables the statement names (and their aliases), lower case.
    scope: HashMap<String, &'a HashMap<String, String>>,
    tables: &'a ColumnCollations,
}

impl<'a> Sql<'a> {
    fn text(&self, i: usize) -> &'a str {
        let t = &self.toks[i];
        &self.sql[t.start..t.end]
    }

    fn is_word(&self, i: usize, w: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == Kind::Word && self.text(i).eq_ignore_ascii_case(w))
    }

    fn lower_word(&self, i: usize) -> Option<String> {
        (self.toks.get(i)?.kind == Kind::Word).then(|| self.text(i).to_ascii_lowercase())
    }

    /// An identifier token's name: a word, or a quoted identifier.
    fn ident(&self, i: usize) -> Option<String> {
        let t = self.toks.get(i)?;
        let text = &self.sql[t.start..t.end];
        match t.kind {
            Kind::Word => Some(text.to_ascii_lowercase()),
            Kind::Other if text.len() >= 2 && (text.starts_with('"') || text.starts_with('`')) => {
                Some(text[1..text.len() - 1].to_ascii_lowercase())
            }
            _ => None,
        }
    }

    fn is_dot(&self, i: usize) -> bool {
        self.toks.get(i).is_some_and(|t| t.kind == Kind::Other) && self.text(i) == "."
    }

    /// The collation of the column `lo..hi` names (`col` or `t.col`).
    fn column(&self, lo: usize, hi: usize) -> Option<String> {
        match hi - lo {
            1 => {
                let name = self.ident(lo)?;
                // An unqualified name: the tables in scope that have it
                // must agree on its collation.
                let mut found = self.scope.values().filter_map(|cols| cols.get(&name));
                let first = found.next()?;
                found.all(|c| c == first).then(|| first.clone())
            }
            3 if self.is_dot(lo + 1) => {
                let table = self.ident(lo)?;
                let name = self.ident(lo + 2)?;
                self.scope.get(&table)?.get(&name).cloned()
            }
            _ => None,
        }
    }

    /// `lo..hi` split at its top-level commas.
    fn args(&self, lo: usize, hi: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = lo;
        let mut i = lo;
        while i < hi {
            match self.toks[i].kind {
                Kind::Open => i = self.close.get(&i).copied().unwrap_or(hi),
                Kind::Comma => {
                    out.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        if start < hi {
            out.push((start, hi));
        }
        out
    }

    /// The collation of the value `lo..hi` yields, when it is a collated
    /// column's value (through parentheses, the choosers, CASE results and a
    /// scalar subquery's first column, MIN or MAX of one included).
    fn collation(&self, lo: usize, hi: usize) -> Option<String> {
        if lo >= hi {
            return None;
        }
        if self.toks[lo].kind == Kind::Open && self.close.get(&lo) == Some(&(hi - 1)) {
            if self.is_word(lo + 1, "select") {
                return self.first_column(lo + 2, hi - 1);
            }
            return self.collation(lo + 1, hi - 1);
        }
        if let Some(f) = self.lower_word(lo) {
            let call = self.toks.get(lo + 1).is_some_and(|t| t.kind == Kind::Open)
                && self.close.get(&(lo + 1)) == Some(&(hi - 1));
            if call && CHOOSERS.contains(&f.as_str()) {
                let args = self.args(lo + 2, hi - 1);
                let from = match f.as_str() {
                    // IIF(condition, a, b); NULLIF(a, b) yields a or NULL.
                    "iif" => args.iter().skip(1).take(2).collect::<Vec<_>>(),
                    "nullif" => args.iter().take(1).collect(),
                    _ => args.iter().collect(),
                };
                return from.into_iter().find_map(|(a, b)| self.collation(*a, *b));
            }
            if call && (f == "max" || f == "min") {
                let args = self.args(lo + 2, hi - 1);
                return match args[..] {
                    [(a, b)] => self.collation(a, b),
                    _ => None,
                };
            }
            if f == "case" && self.end.get(&lo) == Some(&(hi - 1)) {
                return self
                    .case_results(lo, hi - 1)
                    .into_iter()
                    .find_map(|(a, b)| self.collation(a, b));
            }
        }
        self.column(lo, hi)
    }

    /// The result expressions (after THEN and ELSE) of the CASE at `case`
    /// whose END is at `end`.
    fn case_results(&self, case: usize, end: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start: Option<usize> = None;
        let mut i = case + 1;
        while i < end {
            let boundary = ["when", "then", "else"].iter().any(|w| self.is_word(i, w));
            if boundary {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
                if self.is_word(i, "then") || self.is_word(i, "else") {
                    start = Some(i + 1);
                }
            }
            i = match self.toks[i].kind {
                Kind::Open => self.close.get(&i).copied().unwrap_or(end),
                _ if self.is_word(i, "case") => self.end.get(&i).copied().unwrap_or(end),
                _ => i,
            } + 1;
        }
        if let Some(s) = start {
            out.push((s, end));
        }
        out
    }

    /// The collation of a subquery's first result column (`lo` is just
    /// after SELECT, `hi` its closing parenthesis).
    fn first_column(&self, lo: usize, hi: usize) -> Option<String> {
        let lo = if self.is_word(lo, "distinct") || self.is_word(lo, "all") {
            lo + 1
        } else {
            lo
        };
        let mut i = lo;
        while i < hi {
            match self.toks[i].kind {
                Kind::Open => i = self.close.get(&i).copied().unwrap_or(hi),
                Kind::Comma => break,
                _ if self.is_word(i, "from") || self.is_word(i, "as") => break,
                _ => {}
            }
            i += 1;
        }
        self.collation(lo, i)
    }

    /// Whether the value `s..e` is compared: an operand of a comparison, or
    /// a whole `ORDER BY` / `GROUP BY` / `PARTITION BY` term.
    fn compared(&self, s: usize, e: usize) -> bool {
        let op = |i: usize| {
            self.toks.get(i).is_some_and(|t| {
                t.kind == Kind::Other
                    && matches!(self.text(i).as_bytes()[0], b'=' | b'<' | b'>' | b'!')
            })
        };
        let operand_after = |i: usize| {
            (op(i) && !self.is_assignment(i)) || self.is_word(i, "between") || self.is_word(i, "is")
        };
        if s > 0 && operand_after(s - 1) {
            return true;
        }
        if op(e)
            || ["between", "in", "not", "is"]
                .iter()
                .any(|w| self.is_word(e, w))
        {
            return true;
        }
        let whole_term = match self.toks.get(e) {
            None => true,
            Some(t) => {
                matches!(t.kind, Kind::Comma | Kind::Close | Kind::Semicolon)
                    || [
                        "asc", "desc", "nulls", "limit", "offset", "rows", "range", "groups",
                        "having", "window",
                    ]
                    .iter()
                    .any(|w| self.is_word(e, w))
            }
        };
        whole_term && s > 0 && self.term_of_by_list(s - 1)
    }

    /// Whether `i` is the `BY` of an ORDER / GROUP / PARTITION BY.
    fn by_of_list(&self, i: usize) -> bool {
        self.is_word(i, "by")
            && i > 0
            && ["order", "group", "partition"]
                .iter()
                .any(|w| self.is_word(i - 1, w))
    }

    /// What starts the list the comma at `comma` separates: the index of
    /// its clause's word (or of a list's `BY`), at the comma's depth.
    fn list_owner(&self, comma: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut i = comma;
        while i > 0 {
            i -= 1;
            match self.toks[i].kind {
                Kind::Close => depth += 1,
                Kind::Open if depth == 0 => return None,
                Kind::Open => depth -= 1,
                _ if depth > 0 => {}
                _ if self.by_of_list(i) || CLAUSES.iter().any(|w| self.is_word(i, w)) => {
                    return Some(i)
                }
                _ => {}
            }
        }
        None
    }

    /// Whether the token `prev` (just before a value) is the `BY` of an
    /// ORDER / GROUP / PARTITION BY, or a comma of its list.
    fn term_of_by_list(&self, prev: usize) -> bool {
        self.by_of_list(prev)
            || (self.toks[prev].kind == Kind::Comma
                && self.list_owner(prev).is_some_and(|o| self.by_of_list(o)))
    }

    /// The span of the operand that ends just before `at` (exclusive): a
    /// column (`col`, `t.col`), or a parenthesised expression or call.
    fn operand_before(&self, at: usize) -> Option<(usize, usize)> {
        let last = at.checked_sub(1)?;
        if self.toks[last].kind == Kind::Close {
            let open = self
                .close
                .iter()
                .find(|(_, c)| **c == last)
                .map(|(o, _)| *o)?;
            let lo = match open.checked_sub(1) {
                Some(f) if self.toks[f].kind == Kind::Word && !self.is_word(f, "select") => f,
                _ => open,
            };
            return Some((lo, at));
        }
        self.ident(last)?;
        match last.checked_sub(2) {
            Some(t) if self.is_dot(last - 1) && self.ident(t).is_some() => Some((t, at)),
            _ => Some((last, at)),
        }
    }

    /// The span of the operand that starts at `at`: a column, or a
    /// parenthesised expression or call.
    fn operand_after(&self, at: usize) -> Option<(usize, usize)> {
        let t = self.toks.get(at)?;
        if t.kind == Kind::Open {
            return self.close.get(&at).map(|c| (at, c + 1));
        }
        self.ident(at)?;
        if self.toks.get(at + 1).is_some_and(|t| t.kind == Kind::Open) {
            return self.close.get(&(at + 1)).map(|c| (at, c + 1));
        }
        if self.is_dot(at + 1) && self.ident(at + 2).is_some() {
            return Some((at, at + 3));
        }
        Some((at, at + 1))
    }

    fn is_pipe(&self, i: usize) -> bool {
        self.toks.get(i).is_some_and(|t| t.kind == Kind::Other) && self.text(i) == "|"
    }

    /// Postgres turns a `character(n)` value into text, dropping its
    /// trailing blanks, where it is an operand of `||` or the text
    /// argument of a string function (`length(code)` of 'ab   ' is 2,
    /// `code || 'x'` is 'abx'); SQLite keeps the padded text the snapshot
    /// holds. Such an operand or argument over a `character(n)` column is
    /// given `rtrim(…, ' ')`. (Comparisons ignore the padding through the
    /// column's collation; `LIKE`, `concat()`, `format()` and JSON keep it
    /// on Postgres too.)
    fn unpadded_bpchar(&self) -> Vec<(usize, String)> {
        let bpchar = |(lo, hi): (usize, usize)| {
            lo < hi && self.collation(lo, hi).as_deref() == Some(crate::db::collation::BPCHAR)
        };
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i + 1 < self.toks.len() {
            if self.is_pipe(i) && self.is_pipe(i + 1) && self.toks[i].end == self.toks[i + 1].start
            {
                spans.extend(self.operand_before(i).filter(|s| bpchar(*s)));
                spans.extend(self.operand_after(i + 2).filter(|s| bpchar(*s)));
                i += 2;
                continue;
            }
            i += 1;
        }
        for (i, t) in self.toks.iter().enumerate() {
            let Some(f) = (t.kind == Kind::Word).then(|| self.text(i).to_ascii_lowercase()) else {
                continue;
            };
            if !TEXT_FUNCTIONS.contains(&f.as_str())
                || !self.toks.get(i + 1).is_some_and(|t| t.kind == Kind::Open)
            {
                continue;
            }
            let Some(close) = self.close.get(&(i + 1)) else {
                continue;
            };
            if let Some(first) = self.args(i + 2, *close).first() {
                if bpchar(*first) {
                    spans.push(*first);
                }
            }
        }
        spans.extend(self.unpadded_assignments());
        spans.sort_unstable();
        spans.dedup();
        spans
            .into_iter()
            .flat_map(|(lo, hi)| {
                [
                    (self.toks[lo].start, "rtrim(".to_string()),
                    (self.toks[hi - 1].end, ", ' ')".to_string()),
                ]
            })
            .collect()
    }

    /// Whether the `=` at `eq` assigns (`SET col = …`) rather than compares.
    /// The span of the value assigned at `eq` (`SET col = value`): up to
    /// the next top-level comma, FROM, WHERE, RETURNING or the end.
    fn assigned_value(&self, eq: usize) -> (usize, usize) {
        let lo = eq + 1;
        let mut i = lo;
        while i < self.toks.len() {
            match self.toks[i].kind {
                Kind::Open => i = self.close.get(&i).copied().unwrap_or(self.toks.len()),
                Kind::Comma | Kind::Close | Kind::Semicolon => break,
                _ if ["from", "where", "returning"]
                    .iter()
                    .any(|w| self.is_word(i, w)) =>
                {
                    break
                }
                _ if self.is_word(i, "case") => {
                    i = self.end.get(&i).copied().unwrap_or(self.toks.len())
                }
                _ => {}
            }
            i += 1;
        }
        (lo, i.min(self.toks.len()))
    }

    /// The table an assignment at `eq` writes: the one after the nearest
    /// UPDATE before it (`UPDATE OR REPLACE t`, `main.t`), or, for an
    /// upsert's `DO UPDATE`, the INSERT's.
    fn assigned_table(&self, eq: usize) -> Option<String> {
        let update = (0..eq).rev().find(|i| self.is_word(*i, "update"))?;
        let mut at = if update > 0 && self.is_word(update - 1, "do") {
            (0..update).rev().find(|i| self.is_word(*i, "into"))? + 1
        } else {
            update + 1
        };
        if self.is_word(at, "or") {
            at += 2;
        }
        if self.is_dot(at + 1) {
            at += 2;
        }
        self.ident(at)
    }

    /// Whether `column` of `table` is a `character(n)`.
    fn is_bpchar_column(&self, table: &str, column: &str) -> bool {
        self.tables
            .get(table)
            .and_then(|cols| cols.get(column))
            .is_some_and(|c| c == crate::db::collation::BPCHAR)
    }

    /// Postgres casts a `character(n)` value assigned to a column of
    /// another type (`UPDATE t SET name = j.code`, `INSERT INTO t (name)
    /// SELECT code FROM j`) to that type through text, dropping its
    /// trailing blanks; SQLite stores the padded text. Such a value (a
    /// `character(n)` column's, through the choosers, CASE and subqueries)
    /// gets `rtrim(…, ' ')` unless its target is a `character(n)` too.
    fn unpadded_assignments(&self) -> Vec<(usize, usize)> {
        let bpchar = |(lo, hi): (usize, usize)| {
            lo < hi && self.collation(lo, hi).as_deref() == Some(crate::db::collation::BPCHAR)
        };
        let mut spans = Vec::new();
        for eq in 0..self.toks.len() {
            if self.toks[eq].kind != Kind::Other || !self.is_assignment(eq) {
                continue;
            }
            let (Some(table), Some(column)) = (self.assigned_table(eq), self.ident(eq - 1)) else {
                continue;
            };
            let value = self.assigned_value(eq);
            if bpchar(value) && !self.is_bpchar_column(&table, &column) {
                spans.push(value);
            }
        }
        // INSERT INTO t (columns) SELECT values …
        for i in 0..self.toks.len() {
            if !self.is_word(i, "into") || i == 0 || !self.is_word(i - 1, "insert") {
                continue;
            }
            let mut at = i + 1;
            if self.is_dot(at + 1) {
                at += 2;
            }
            let Some(table) = self.ident(at) else {
                continue;
            };
            let open = at + 1;
            let Some(close) = self
                .toks
                .get(open)
                .filter(|t| t.kind == Kind::Open)
                .and_then(|_| self.close.get(&open).copied())
            else {
                continue;
            };
            if !self.is_word(close + 1, "select") {
                continue;
            }
            let columns: Vec<Option<String>> = self
                .args(open + 1, close)
                .into_iter()
                .map(|(a, b)| if b == a + 1 { self.ident(a) } else { None })
                .collect();
            let mut lo = close + 2;
            if self.is_word(lo, "distinct") || self.is_word(lo, "all") {
                lo += 1;
            }
            let mut hi = lo;
            while hi < self.toks.len() {
                match self.toks[hi].kind {
                    Kind::Open => hi = self.close.get(&hi).copied().unwrap_or(self.toks.len()),
                    Kind::Close | Kind::Semicolon => break,
                    _ if self.is_word(hi, "case") => {
                        hi = self.end.get(&hi).copied().unwrap_or(self.toks.len())
                    }
                    _ if [
                        "from",
                        "where",
                        "union",
                        "except",
                        "intersect",
                        "order",
                        "limit",
                    ]
                    .iter()
                    .any(|w| self.is_word(hi, w)) =>
                    {
                        break
                    }
                    _ => {}
                }
                hi += 1;
            }
            let hi = hi.min(self.toks.len());
            for (column, (a, b)) in columns.iter().zip(self.args(lo, hi)) {
                // `value AS name`: the value before the alias.
                let b = (a..b).find(|j| self.is_word(*j, "as")).unwrap_or(b);
                if let Some(column) = column {
                    if bpchar((a, b)) && !self.is_bpchar_column(&table, column) {
                        spans.push((a, b));
                    }
                }
            }
        }
        spans
    }

    fn is_assignment(&self, eq: usize) -> bool {
        if self.text(eq) != "=" || eq < 2 || self.ident(eq - 1).is_none() {
            return false;
        }
        self.is_word(eq - 2, "set")
            || (self.toks[eq - 2].kind == Kind::Comma
                && self
                    .list_owner(eq - 2)
                    .is_some_and(|o| self.is_word(o, "set")))
    }
}

/// `sql` with each compared expression over a collated column given that
/// column's collation and TEXT affinity, and each `NULLIF` over one
/// comparing as the column does (see the module's text).
pub fn with_column_collations(sql: &str, tables: &ColumnCollations) -> String {
    if tables.is_empty() {
        return sql.to_string();
    }
    let toks = tokens(sql);
    let mut close = HashMap::new();
    let mut end = HashMap::new();
    let mut opens = Vec::new();
    let mut cases = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let text = &sql[t.start..t.end];
        match t.kind {
            Kind::Open => opens.push(i),
            Kind::Close => {
                if let Some(o) = opens.pop() {
                    close.insert(o, i);
                }
            }
            Kind::Word if text.eq_ignore_ascii_case("case") => cases.push(i),
            Kind::Word if text.eq_ignore_ascii_case("end") => {
                if let Some(c) = cases.pop() {
                    end.insert(c, i);
                }
            }
            _ => {}
        }
    }
    let mut s = Sql {
        sql,
        toks,
        close,
        end,
        scope: HashMap::new(),
        tables,
    };
    // The tables named, and the aliases given them.
    for i in 0..s.toks.len() {
        let Some(name) = s.ident(i) else { continue };
        let Some(cols) = s.tables.get(&name) else {
            continue;
        };
        // `main.t` / `temp.t` name `t`; `t.col` is a column, not a table.
        if s.is_dot(i + 1) {
            continue;
        }
        s.scope.insert(name, cols);
        let alias = if s.is_word(i + 1, "as") { i + 2 } else { i + 1 };
        if let Some(a) = s.lower_word(alias).or_else(|| s.ident(alias)) {
            if !NOT_ALIAS.contains(&a.as_str()) && s.toks[alias].kind != Kind::Open {
                s.scope.insert(a, cols);
            }
        }
    }
    if s.scope.is_empty() {
        return sql.to_string();
    }
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for i in 0..s.toks.len() {
        let construct = if s.toks[i].kind == Kind::Open && s.is_word(i + 1, "select") {
            // A scalar subquery: not the list of IN or EXISTS, not a FROM's.
            let list = i > 0
                && ["in", "exists", "from", "join", "as"]
                    .iter()
                    .any(|w| s.is_word(i - 1, w));
            s.close.get(&i).filter(|_| !list).map(|c| (i, c + 1))
        } else if s.is_word(i, "case") {
            s.end.get(&i).map(|e| (i, e + 1))
        } else if s
            .lower_word(i)
            .is_some_and(|w| CHOOSERS.contains(&w.as_str()))
            && s.toks.get(i + 1).is_some_and(|t| t.kind == Kind::Open)
        {
            s.close.get(&(i + 1)).map(|c| (i, c + 1))
        } else {
            None
        };
        let Some((lo, hi)) = construct else { continue };
        if s.is_word(lo, "nullif") {
            if let [(a, b), (c, d)] = s.args(lo + 2, hi - 1)[..] {
                if let Some(coll) = s.collation(a, b).or_else(|| s.collation(c, d)) {
                    inserts.push((s.toks[a].start, "CAST(".into()));
                    inserts.push((s.toks[b - 1].end, format!(" AS TEXT) COLLATE {coll}")));
                    inserts.push((s.toks[c].start, "CAST(".into()));
                    inserts.push((s.toks[d - 1].end, " AS TEXT)".into()));
                }
            }
        }
        if !s.compared(lo, hi) {
            continue;
        }
        if let Some(coll) = s.collation(lo, hi) {
            inserts.push((s.toks[lo].start, "(CAST(".into()));
            inserts.push((s.toks[hi - 1].end, format!(" AS TEXT) COLLATE {coll})")));
        }
    }
    // An `rtrim(…)` goes inside a comparison's collation over the same
    // expression: at one place its closing text comes first, its opening
    // last (rank 0 and 2 around the others' 1).
    let mut ranked: Vec<(usize, u8, String)> =
        inserts.into_iter().map(|(at, t)| (at, 1, t)).collect();
    ranked.extend(
        s.unpadded_bpchar()
            .into_iter()
            .map(|(at, t)| (at, if t.starts_with("rtrim") { 2 } else { 0 }, t)),
    );
    if ranked.is_empty() {
        return sql.to_string();
    }
    // Stable: at one place, an outer construct's closing text was pushed
    // after an inner one's, and an opening before it.
    ranked.sort_by_key(|(at, rank, _)| (*at, *rank));
    let mut out = String::with_capacity(sql.len() + ranked.len() * 24);
    let mut from = 0;
    for (at, _, text) in ranked {
        out.push_str(&sql[from..at]);
        out.push_str(&text);
        from = at;
    }
    out.push_str(&sql[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> ColumnCollations {
        let mut item = HashMap::new();
        item.insert("price".to_string(), "pg_numeric".to_string());
        item.insert("status".to_string(), "pg_enum_1".to_string());
        let mut other = HashMap::new();
        other.insert("price".to_string(), "pg_numeric".to_string());
        other.insert("name".to_string(), "RTRIM".to_string());
        let mut t = HashMap::new();
        t.insert("dh_item".to_string(), item);
        t.insert("ref_item".to_string(), other);
        t
    }

    fn rw(sql: &str) -> String {
        with_column_collations(sql, &tables())
    }

    #[test]
    fn compared_expressions_over_a_collated_column_get_its_collation() {
        assert_eq!(
            rw("UPDATE dh_item SET x = 1 WHERE COALESCE(price, 0) > 50"),
            "UPDATE dh_item SET x = 1 WHERE (CAST(COALESCE(price, 0) AS TEXT) COLLATE pg_numeric) > 50"
        );
        assert_eq!(
            rw("SELECT 1 FROM dh_item i WHERE 50 < ifnull(i.price, 0)"),
            "SELECT 1 FROM dh_item i WHERE 50 < (CAST(ifnull(i.price, 0) AS TEXT) COLLATE pg_numeric)"
        );
        assert_eq!(
            rw("SELECT 1 FROM dh_item WHERE CASE WHEN x THEN price ELSE 0 END BETWEEN 1 AND 9"),
            "SELECT 1 FROM dh_item WHERE (CAST(CASE WHEN x THEN price ELSE 0 END AS TEXT) COLLATE pg_numeric) BETWEEN 1 AND 9"
        );
        assert_eq!(
            rw("SELECT 1 FROM dh_item WHERE (SELECT max(r.price) FROM ref_item r) >= 5"),
            "SELECT 1 FROM dh_item WHERE (CAST((SELECT max(r.price) FROM ref_item r) AS TEXT) COLLATE pg_numeric) >= 5"
        );
        assert_eq!(
            rw("SELECT id FROM dh_item ORDER BY coalesce(status, 'new') DESC, id"),
            "SELECT id FROM dh_item ORDER BY (CAST(coalesce(status, 'new') AS TEXT) COLLATE pg_enum_1) DESC, id"
        );
        assert_eq!(
            rw("UPDATE dh_item SET x = 1, price = COALESCE(price, 0) WHERE y = COALESCE(price, 0)"),
            "UPDATE dh_item SET x = 1, price = COALESCE(price, 0) WHERE y = (CAST(COALESCE(price, 0) AS TEXT) COLLATE pg_numeric)"
        );
        assert_eq!(
            rw("SELECT 1 FROM dh_item WHERE NULLIF(price, 0) IS NULL"),
            "SELECT 1 FROM dh_item WHERE (CAST(NULLIF(CAST(price AS TEXT) COLLATE pg_numeric, CAST(0 AS TEXT)) AS TEXT) COLLATE pg_numeric) IS NULL"
        );
    }

    #[test]
    fn a_character_n_column_made_text_loses_its_padding_as_on_postgres() {
        // Inside the collation of a comparison over the same expression.
        assert_eq!(
            rw("SELECT 1 FROM ref_item WHERE 'x' || coalesce(name, 'q') = 'xa'"),
            "SELECT 1 FROM ref_item WHERE 'x' || (CAST(rtrim(coalesce(name, 'q'), ' ') AS TEXT) COLLATE RTRIM) = 'xa'"
        );
        assert_eq!(
            rw("SELECT length(name), r.name || 'x', 'y' || name, upper(coalesce(name, 'a')) FROM ref_item r"),
            "SELECT length(rtrim(name, ' ')), rtrim(r.name, ' ') || 'x', 'y' || rtrim(name, ' '), upper(rtrim(coalesce(name, 'a'), ' ')) FROM ref_item r"
        );
        // Compared, LIKE'd, passed whole or not a character(n): as written.
        for sql in [
            "SELECT 1 FROM ref_item WHERE name = 'ab' AND name LIKE 'ab%'",
            "SELECT concat(name, 'x'), length(price) FROM ref_item",
            "SELECT length(name) FROM dh_item",
            "SELECT 'length(name)' || 'x' FROM ref_item",
        ] {
            assert_eq!(rw(sql), sql);
        }
    }

    #[test]
    fn a_character_n_value_assigned_to_another_type_loses_its_padding() {
        assert_eq!(
            rw("UPDATE dh_item SET status = r.name, x = 1 FROM ref_item r WHERE r.price = 1"),
            "UPDATE dh_item SET status = rtrim(r.name, ' '), x = 1 FROM ref_item r WHERE r.price = 1"
        );
        assert_eq!(
            rw("UPDATE OR REPLACE main.dh_item SET note = (SELECT max(name) FROM ref_item)"),
            "UPDATE OR REPLACE main.dh_item SET note = rtrim((SELECT max(name) FROM ref_item), ' ')"
        );
        assert_eq!(
            rw("INSERT INTO dh_item (id, note) SELECT id, coalesce(r.name, 'x') AS n FROM ref_item r"),
            "INSERT INTO dh_item (id, note) SELECT id, rtrim(coalesce(r.name, 'x'), ' ') AS n FROM ref_item r"
        );
        assert_eq!(
            rw("INSERT INTO dh_item (id, note) SELECT 1, 'a' ON CONFLICT (id) DO UPDATE SET note = (SELECT name FROM ref_item)"),
            "INSERT INTO dh_item (id, note) SELECT 1, 'a' ON CONFLICT (id) DO UPDATE SET note = rtrim((SELECT name FROM ref_item), ' ')"
        );
        // Into a character(n) column: kept padded, as Postgres keeps it.
        for sql in [
            "UPDATE ref_item SET name = coalesce(name, 'a')",
            "INSERT INTO ref_item (name) SELECT name FROM ref_item",
            "UPDATE dh_item SET note = 'name ' WHERE id = 1",
        ] {
            assert_eq!(rw(sql), sql);
        }
    }

    #[test]
    fn values_not_compared_and_other_columns_stay_as_written() {
        for sql in [
            "UPDATE dh_item SET price = COALESCE(price, 0)",
            "SELECT json_object('p', COALESCE(price, 0)) FROM dh_item",
            "SELECT 1 FROM dh_item WHERE COALESCE(note, '') > 'a'",
            "SELECT 1 FROM dh_item WHERE id IN (SELECT price FROM ref_item)",
            "SELECT 1 FROM other WHERE COALESCE(price, 0) > 50",
            "SELECT 1 FROM dh_item WHERE COALESCE(price, 0) + 1 > 50",
            "SELECT 'COALESCE(price, 0) > 50' FROM dh_item",
        ] {
            assert_eq!(rw(sql), sql);
        }
    }
}
