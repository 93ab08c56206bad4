//! STORED generated columns in the rehearsal. A working copy holds a
//! generated column's value as pulled: SQLite does not evaluate Postgres's
//! generation expression, so once a phase changes one of its inputs (or
//! inserts a row, whose generated value Postgres computes), the working
//! copy holds a value Postgres would no longer have. A later read of that
//! column — a phase's SQL choosing rows by it, a conflict query, an
//! expectation — sees the stale value where Postgres sees the new one.
//! This module tells which generated columns are stale in which rows, so
//! the rehearsal can name every read of one instead of passing on a value
//! Postgres never holds.

use std::collections::BTreeSet;

use anyhow::Result;
use rusqlite::Connection;

use crate::catalog::TableMeta;
use crate::types::quote_ident;

/// A generated column some rows of a working copy hold a stale value in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleColumn {
    pub table: String,
    pub column: String,
    /// The generation expression, as Postgres prints it.
    pub expression: String,
    /// The columns the expression reads.
    pub inputs: Vec<String>,
    /// The phase that first made it stale.
    pub since_phase: String,
    /// Rows whose inputs differ from the pull, or that are new.
    pub rows: u64,
    /// Some of those rows, by key (`id=7`, `(new)` marked).
    pub examples: Vec<String>,
}

impl StaleColumn {
    /// `table.column`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }

    /// Why the rehearsal cannot trust a read of the column.
    pub fn describe(&self) -> String {
        let more = if self.rows > self.examples.len() as u64 {
            ", …"
        } else {
            ""
        };
        format!(
            "{} is generated ({}); phase {} changed its inputs ({}) in {} ({}{more}): \
             SQLite holds the pulled value there, Postgres recomputes it",
            self.qualified(),
            self.expression,
            self.since_phase,
            self.inputs.join(", "),
            crate::words::rows(self.rows),
            self.examples.join(", "),
        )
    }
}

/// How many rows a stale column names as examples.
const EXAMPLES: usize = 5;

/// The columns of `meta` that generation expression `expr` reads: every
/// identifier of it (outside string literals; quoted ones unquoted) that
/// names a column. A function or type spelled like a column counts too,
/// which can only make the rehearsal more careful.
pub fn input_columns(meta: &TableMeta, expr: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A string literal; '' is a quote inside it.
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        name.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            found.insert(name);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            // Postgres folds an unquoted name to lower case.
            found.insert(chars[start..i].iter().collect::<String>().to_lowercase());
        } else {
            i += 1;
        }
    }
    meta.columns
        .iter()
        .filter(|c| c.generated.is_none() && found.contains(&c.name))
        .map(|c| c.name.clone())
        .collect()
}

/// The generated columns of `working` (the working copy `table_sql` of
/// pulled table `pulled`) whose inputs some rows changed since the pull,
/// or that new rows hold; `phase` is the phase just run. A table without
/// a primary key has no rows to match (the rehearsal fails it by name).
pub fn stale_columns(
    conn: &Connection,
    working: &TableMeta,
    pulled: &TableMeta,
    table_sql: &str,
    phase: &str,
) -> Result<Vec<StaleColumn>> {
    let key = pulled.primary_key();
    let mut out = Vec::new();
    if key.is_empty() {
        return Ok(out);
    }
    let same_key = crate::db::staging::same_key_sql(&key);
    let key_text = crate::db::staging::columns_as_text(&key);
    for c in working.columns.iter() {
        let Some(expr) = &c.generated else { continue };
        if pulled.column(&c.name).is_none() {
            continue;
        }
        let inputs = input_columns(pulled, expr);
        let unchanged = unchanged_sql(&inputs, &same_key);
        let pulled_sql = format!("main.{}", quote_ident(&pulled.name));
        let sql = format!(
            "SELECT {key_text} || CASE WHEN EXISTS (SELECT 1 FROM {pulled_sql} p WHERE {same_key}) \
             THEN '' ELSE ' (new)' END \
             FROM {table_sql} s WHERE NOT EXISTS (SELECT 1 FROM {pulled_sql} p WHERE {unchanged}) \
             ORDER BY s.rowid"
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut n = 0u64;
        let mut examples = Vec::new();
        while let Some(r) = rows.next()? {
            n += 1;
            if examples.len() < EXAMPLES {
                examples.push(r.get::<_, String>(0)?);
            }
        }
        if n > 0 {
            out.push(StaleColumn {
                table: pulled.name.clone(),
                column: c.name.clone(),
                expression: expr.clone(),
                inputs,
                since_phase: phase.to_string(),
                rows: n,
                examples,
            });
        }
    }
    Ok(out)
}

/// SQL true for a pulled row `p` that is staged row `s` (`same_key`) with
/// the same `inputs`. An expression reading no column is a constant: never
/// stale in a pulled row; a new row still gets it from Postgres.
fn unchanged_sql(inputs: &[String], same_key: &str) -> String {
    inputs
        .iter()
        .map(|i| format!("p.{0} IS s.{0}", quote_ident(i)))
        .chain(std::iter::once(same_key.to_string()))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Leaves to Postgres, in staged table `table_sql` (of pulled table
/// `pulled`), each generated column of the rows whose inputs the plan
/// changed: NULL, as in a row the plan inserts, instead of the pulled value
/// Postgres recomputes (the report lists the column "filled by Postgres").
/// The push never writes a generated column, and reads back what Postgres
/// computed. A table without a primary key is left as it is (the rehearsal
/// fails it by name).
pub fn leave_stale_to_postgres(
    conn: &Connection,
    staged: &TableMeta,
    pulled: &TableMeta,
    table_sql: &str,
) -> Result<()> {
    let key = pulled.primary_key();
    if key.is_empty() {
        return Ok(());
    }
    let same_key = crate::db::staging::same_key_sql(&key);
    for c in &staged.columns {
        let Some(expr) = &c.generated else { continue };
        if pulled.column(&c.name).is_none() {
            continue;
        }
        let unchanged = unchanged_sql(&input_columns(pulled, expr), &same_key);
        conn.execute_batch(&format!(
            "UPDATE {table_sql} AS s SET {col} = NULL WHERE s.{col} IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM main.{} p WHERE {unchanged})",
            quote_ident(&pulled.name),
            col = quote_ident(&c.name),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnMeta;

    fn meta(cols: &[(&str, Option<&str>)]) -> TableMeta {
        TableMeta {
            name: "t".into(),
            columns: cols
                .iter()
                .map(|(n, g)| ColumnMeta {
                    name: n.to_string(),
                    pg_type: "integer".into(),
                    generated: g.map(str::to_string),
                    ..ColumnMeta::default()
                })
                .collect(),
            role: crate::catalog::TableRole::Source,
            constraints: Vec::new(),
        }
    }

    #[test]
    fn inputs_are_the_columns_the_expression_names_outside_literals() {
        let m = meta(&[
            ("qty", None),
            ("price", None),
            ("Name X", None),
            ("note", None),
            ("total", Some("(qty * price)")),
        ]);
        assert_eq!(input_columns(&m, "(qty * price)"), vec!["qty", "price"]);
        assert_eq!(
            input_columns(&m, "upper(\"Name X\") || 'note'::text"),
            vec!["Name X"]
        );
        assert_eq!(
            input_columns(&m, "CASE WHEN QTY > 0 THEN 'it''s note' END"),
            vec!["qty"]
        );
        // The generated column itself is never an input.
        assert!(input_columns(&m, "total").is_empty());
    }
}
