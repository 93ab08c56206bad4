//! Rows the tool sends along with a statement (keys to delete, old and new
//! values to update, keys to read back) as a set-returning expression
//! inside the statement itself: `jsonb_to_recordset('[…]'::jsonb) AS
//! u(row_n int8, k_id text, …)`. Not a temporary table: CREATE TEMP TABLE
//! is DDL, so a database's `ddl_command_end` event trigger would log it
//! (into a table the write accounting then finds written outside the
//! plan), and it costs round trips. Not a bind parameter either: the
//! batches run in one simple-query message with their savepoint, and
//! `COPY (SELECT …) TO STDOUT` takes no parameters; a dollar-quoted
//! literal needs no escaping and means the same under any
//! `standard_conforming_strings`.

use crate::types::quote_ident;

/// The column numbering a batch's rows (1, 2, … in order), so that a
/// refused batch can be run again over part of them. Every other column
/// is text, with a `k_`, `old_` or `new_` prefix.
pub(crate) const ROW_NUMBER: &str = "row_n";

/// Rows as a FROM item: `columns` are the record's columns (the
/// [`ROW_NUMBER`] column an int8, the others text), `rows` their values in
/// the same order (NULL as None).
#[derive(Debug, Clone)]
pub struct RowSet {
    literal: String,
    definition: String,
}

impl RowSet {
    pub fn new(columns: &[String], rows: &[Vec<Option<String>>]) -> RowSet {
        let objects: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    columns
                        .iter()
                        .zip(r)
                        .map(|(c, v)| {
                            let value = match v {
                                Some(v) if c == ROW_NUMBER => match v.parse::<i64>() {
                                    Ok(n) => serde_json::Value::from(n),
                                    Err(_) => serde_json::Value::from(v.as_str()),
                                },
                                Some(v) => serde_json::Value::from(v.as_str()),
                                None => serde_json::Value::Null,
                            };
                            (c.clone(), value)
                        })
                        .collect(),
                )
            })
            .collect();
        let json = serde_json::Value::Array(objects).to_string();
        let definition = columns
            .iter()
            .map(|c| {
                let ty = if c == ROW_NUMBER { "int8" } else { "text" };
                format!("{} {ty}", quote_ident(c))
            })
            .collect::<Vec<_>>()
            .join(", ");
        RowSet {
            literal: dollar_quote(&json),
            definition,
        }
    }

    /// `pg_catalog.jsonb_to_recordset(…) AS alias(…)`, for a FROM, USING
    /// or JOIN.
    pub fn from_item(&self, alias: &str) -> String {
        format!(
            "pg_catalog.jsonb_to_recordset({}::jsonb) AS {alias}({})",
            self.literal, self.definition
        )
    }
}

/// `alias.k = keys.k_k::type AND …` under the pinned search_path: a row
/// of `alias` matched by its key
/// (`key` columns of `key_types`) against a [`RowSet`] whose text columns
/// are `k_<key column>`.
pub fn key_join(key: &[String], key_types: &[String], alias: &str, keys: &str) -> String {
    key.iter()
        .zip(key_types)
        .map(|(k, ty)| {
            format!(
                "{alias}.{} = {keys}.{}::{ty}",
                quote_ident(k),
                quote_ident(&format!("k_{k}"))
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `text` as a dollar-quoted literal whose tag does not occur in it.
fn dollar_quote(text: &str) -> String {
    let mut n = 0u64;
    loop {
        let tag = if n == 0 {
            "$sandbox_rows$".to_string()
        } else {
            format!("$sandbox_rows_{n}$")
        };
        if !text.contains(&tag) {
            return format!("{tag}{text}{tag}");
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_in_the_data_is_not_the_quote() {
        let q = dollar_quote("a $sandbox_rows$ b");
        assert!(q.starts_with("$sandbox_rows_1$") && q.ends_with("$sandbox_rows_1$"));
        assert_eq!(dollar_quote("x"), "$sandbox_rows$x$sandbox_rows$");
    }

    #[test]
    fn rows_become_typed_records() {
        let s = RowSet::new(
            &[ROW_NUMBER.to_string(), "k_id".to_string()],
            &[
                vec![Some("1".into()), Some("it's \"q\"\n".into())],
                vec![Some("2".into()), None],
            ],
        );
        let sql = s.from_item("u");
        assert!(sql.contains(r#""k_id":"it's \"q\"\n""#), "{sql}");
        assert!(
            sql.contains(r#""row_n":1"#) && sql.contains(r#""k_id":null"#),
            "{sql}"
        );
        assert!(sql.ends_with(r#"AS u("row_n" int8, "k_id" text)"#), "{sql}");
    }
}
