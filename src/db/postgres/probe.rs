//! Which tables a plan query reads, as Postgres's planner sees it: a view
//! is expanded into its base tables, a CTE named like a table is no table,
//! a name in a comment or a string literal is nothing, a schema-qualified
//! or quoted name is resolved the way Postgres resolves it.
//!
//! Each query is planned (`EXPLAIN (VERBOSE, FORMAT JSON)`) and run inside
//! a savepoint that is rolled back right after it: planning takes ACCESS
//! SHARE on every table the query names, and rolling back to the
//! savepoint hands those locks back at once, so a table the push must
//! leave to the app (not locked by it) is not held while the transaction
//! goes on. The three statements of every query are sent back to back on
//! the one connection: however many queries, they cost one round trip.

use std::collections::BTreeSet;

use serde_json::Value;
use tokio_postgres::{SimpleQueryMessage, Transaction};

/// What a query reads, from its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryReads {
    /// Every table scanned, `(schema, name)`: views are already expanded
    /// into their base tables by the planner.
    pub tables: BTreeSet<(String, String)>,
    /// Set-returning functions scanned from outside `pg_catalog`, as
    /// `schema.name`: what their bodies read is not in the plan (only
    /// an inlined SQL function shows its tables), so they are named, not
    /// guessed at.
    pub functions: BTreeSet<String>,
}

impl QueryReads {
    /// The tables in `public` among `names` that the query reads.
    pub fn public_tables_among<'a>(&self, names: &'a [String]) -> Vec<&'a str> {
        names
            .iter()
            .filter(|n| self.tables.contains(&("public".to_string(), n.to_string())))
            .map(String::as_str)
            .collect()
    }
}

/// One probed query: what its plan reads, and its rows.
pub struct Probed {
    /// The planner's answer, or why Postgres could not plan the query.
    pub reads: Result<QueryReads, tokio_postgres::Error>,
    /// The query's rows as text (see [`super::tx::simple_rows`]), or its
    /// error; `None` when it was only planned. After a failed plan this is
    /// the aborted transaction's error, so read `reads` first.
    pub rows: Option<Result<Vec<Vec<String>>, tokio_postgres::Error>>,
}

const SAVEPOINT: &str = "sandbox_query_probe";

/// Plans every query of `queries` and runs those `run` picks, each in its
/// own savepoint rolled back after it (see the module comment), all
/// pipelined. An error of one query is its own; the transaction is usable
/// afterwards.
pub async fn probe_queries(
    tx: &Transaction<'_>,
    queries: &[&str],
    run: impl Fn(&str) -> bool,
) -> Vec<Probed> {
    // A newline before the end: a query ending in a `--` comment must not
    // comment out what follows it.
    let explains: Vec<String> = queries
        .iter()
        .map(|q| format!("SAVEPOINT {SAVEPOINT}; EXPLAIN (VERBOSE, FORMAT JSON) {q}\n"))
        .collect();
    let back = format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}");
    // The requests go out in the order the futures are first polled, which
    // is their order in this list: savepoint and plan, the query, back.
    let mut requests = Vec::with_capacity(queries.len() * 3);
    let mut runs = Vec::with_capacity(queries.len());
    for (q, explain) in queries.iter().zip(&explains) {
        requests.push(tx.simple_query(explain));
        runs.push(run(q));
        if runs[runs.len() - 1] {
            requests.push(tx.simple_query(q));
        }
        requests.push(tx.simple_query(&back));
    }
    let mut answers = futures_util::future::join_all(requests).await.into_iter();
    let mut out = Vec::with_capacity(queries.len());
    for ran in runs {
        let plan = answers.next();
        let rows = if ran { answers.next() } else { None };
        let (Some(plan), Some(_back)) = (plan, answers.next()) else {
            break;
        };
        out.push(Probed {
            reads: plan.map(|m| reads_of_plan(&m)),
            rows: rows.map(|r| r.map(|m| rows_of(&m))),
        });
    }
    out
}

fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| crate::types::value_text(row.get(i)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The reads in EXPLAIN's answer (one row holding the JSON plan).
fn reads_of_plan(messages: &[SimpleQueryMessage]) -> QueryReads {
    let mut reads = QueryReads::default();
    let json = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    if let Some(plans) = json.and_then(|j| serde_json::from_str::<Value>(j).ok()) {
        for p in plans.as_array().into_iter().flatten() {
            if let Some(node) = p.get("Plan") {
                collect(node, &mut reads);
            }
        }
    }
    reads
}

/// Every scan node of the tree: subplans, init plans and CTEs are children
/// in "Plans" like any other input.
fn collect(node: &Value, reads: &mut QueryReads) {
    let text = |key: &str| node.get(key).and_then(Value::as_str);
    if let Some(table) = text("Relation Name") {
        let schema = text("Schema").unwrap_or("public");
        reads.tables.insert((schema.to_string(), table.to_string()));
    }
    if let (Some("Function Scan"), Some(function)) = (text("Node Type"), text("Function Name")) {
        let schema = text("Schema").unwrap_or("");
        if schema != "pg_catalog" {
            reads.functions.insert(format!("{schema}.{function}"));
        }
    }
    for child in node
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect(child, reads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EXPLAIN (VERBOSE, FORMAT JSON) of a join of a view (over `prompts`)
    /// with a CTE named `agents` and a set-returning function, as
    /// Postgres 15 prints it (trimmed to the keys read here).
    #[test]
    fn scans_views_ctes_and_functions_are_told_apart() {
        let plan: Value = serde_json::json!([{ "Plan": {
            "Node Type": "Nested Loop",
            "Plans": [
                { "Node Type": "Seq Scan", "Relation Name": "prompts", "Schema": "public", "Alias": "prompts" },
                { "Node Type": "CTE Scan", "CTE Name": "agents", "Alias": "agents", "Plans": [
                    { "Node Type": "Index Only Scan", "Relation Name": "workflows", "Schema": "app",
                      "Index Name": "workflows_pkey" }
                ]},
                { "Node Type": "Function Scan", "Function Name": "active_personas", "Schema": "public" },
                { "Node Type": "Function Scan", "Function Name": "generate_series", "Schema": "pg_catalog" }
            ]
        }}]);
        let mut reads = QueryReads::default();
        for p in plan.as_array().unwrap() {
            collect(&p["Plan"], &mut reads);
        }
        let app = [
            "prompts".to_string(),
            "agents".to_string(),
            "workflows".to_string(),
        ];
        assert_eq!(reads.public_tables_among(&app), vec!["prompts"]);
        assert!(reads.tables.contains(&("app".into(), "workflows".into())));
        assert_eq!(
            reads.functions.iter().collect::<Vec<_>>(),
            vec!["public.active_personas"]
        );
    }
}
