//! Postgres errors a push or rollback can meet while writing — a constraint,
//! a trigger that raises, a missing privilege, a value the type refuses —
//! turned into a sentence that names what refused (constraint, trigger,
//! table, column, row) from the error's own fields. These are refusals
//! (exit 1): the data or the database said no, not the environment.

use crate::db::triggers::TriggerReport;

/// SQLSTATE classes that mean "the database refused this change".
fn is_refusal(code: &str) -> bool {
    code.starts_with("23") // integrity: unique, foreign key, check, not null, exclusion
        || code.starts_with("22") // data: invalid enum value, out of range, bad text
        || code.starts_with("P0") // RAISE in a trigger or function
        || code.starts_with("2B") // dependent objects still exist
        || code.starts_with("44") // WITH CHECK OPTION
        || matches!(
            code,
            "42501" // insufficient privilege
                | "42P07" // duplicate table
                | "42701" // duplicate column
                | "42710" // duplicate object
                | "42P17" // invalid object definition (e.g. generated column written)
                | "428C9" // a GENERATED ALWAYS column was written
                | "42703" // undefined column
                | "42P01" // undefined table
                // A lock a write waited for past one attempt: a row the
                // push did not lock beforehand (one a trigger writes).
                | "55P03"
        )
}

/// Whether the database refused: a refusal's SQLSTATE, or any error raised
/// inside a function the app's trigger (or the plan's SQL) ran — its
/// `where` context names the function — but for the connection, the
/// server's resources, a cancel or a deadlock, which are not the data's
/// answer (V6: an app trigger's failing `ALTER PUBLICATION` was a raw
/// "db error" with exit 2).
fn refused(db: &tokio_postgres::error::DbError) -> bool {
    let code = db.code().code();
    // Row-level security that applies to the role is no answer of the data:
    // the role must change (explained as the lock step explains it, see
    // `explain_row_security`).
    if crate::db::postgres::is_row_security_error(db) {
        return false;
    }
    is_refusal(code)
        || (db.where_().is_some_and(|w| plpgsql_function(w).is_some())
            && !["08", "40", "53", "57", "58", "XX"]
                .iter()
                .any(|class| code.starts_with(class)))
}

/// The Postgres error in the chain, if any.
fn db_error(err: &anyhow::Error) -> Option<&tokio_postgres::error::DbError> {
    err.chain()
        .find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .and_then(|e| e.as_db_error())
}

/// Whether Postgres cancelled a statement for running past its
/// statement_timeout (SQLSTATE 57014): a limit to raise, not a failed
/// connection or a refusal.
pub fn timed_out(err: &anyhow::Error) -> bool {
    db_error(err).is_some_and(|db| db.code().code() == "57014")
}

/// Whether the chain holds a Postgres error that is a refusal (the data or
/// the database said no): worth finding the row behind it.
pub fn is_refused(err: &anyhow::Error) -> bool {
    db_error(err).is_some_and(refused)
}

/// What was being done when Postgres refused, outermost first, down to the
/// row (`phase 1: updating jtbd_library: row id=jtbd00042`): the contexts
/// of the chain before Postgres's own error.
pub fn steps(err: &anyhow::Error) -> String {
    err.chain()
        .take_while(|e| e.downcast_ref::<tokio_postgres::Error>().is_none())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Postgres's hint, as passed on: not for a drop others depend on
/// (SQLSTATE 2BP01), whose hint "Use DROP ... CASCADE" would drop the app's
/// objects (or its column) with ours; the detail names what depends.
fn relayed_hint(code: &str, hint: Option<&str>) -> Option<String> {
    hint.filter(|_| code != "2BP01")
        .map(|h| format!("hint: {h}"))
}

/// If the chain holds a Postgres error that is a refusal, a description
/// naming everything Postgres reported; `triggers` (on the written tables)
/// let a RAISE inside a trigger function be traced to the trigger.
pub fn describe(err: &anyhow::Error, triggers: &[TriggerReport]) -> Option<String> {
    if !refused(db_error(err)?) {
        return None;
    }
    said(err, triggers)
}

/// Everything Postgres reported with the error in the chain, whatever its
/// class (message and SQLSTATE, table, constraint, column, detail, hint,
/// the trigger a RAISE came from): for an error no refusal names, instead
/// of the driver's `db error: ERROR: …` text.
pub fn said(err: &anyhow::Error, triggers: &[TriggerReport]) -> Option<String> {
    let db = db_error(err)?;
    let code = db.code().code();
    let mut parts = vec![format!("{} (SQLSTATE {code})", db.message())];
    if let Some(t) = db.table() {
        let schema = db.schema().map(|s| format!("{s}.")).unwrap_or_default();
        parts.push(format!("table {schema}{t}"));
    }
    if let Some(c) = db.constraint() {
        parts.push(format!("constraint {c}"));
    }
    if let Some(c) = db.column() {
        parts.push(format!("column {c}"));
    }
    if let Some(d) = db.detail() {
        parts.push(d.to_string());
    }
    if code == "55P03" {
        parts.push(format!(
            "another session held a row or lock this statement needed for longer than one lock \
             attempt ({} ms), so the push let go rather than keep the app waiting behind it: \
             a row it locked (SELECT … FOR UPDATE) or changed without committing yet; retry when \
             that session is done",
            crate::db::postgres::tx::LOCK_ATTEMPT_MS
        ));
    }
    if let Some(h) = relayed_hint(code, db.hint()) {
        parts.push(h);
    }
    if let Some(w) = db.where_() {
        if let Some(function) = plpgsql_function(w) {
            let fired: Vec<String> = triggers
                .iter()
                .filter(|t| function_name(&t.function) == function)
                .map(|t| {
                    // An event trigger belongs to no table (its report's
                    // table is a placeholder): named by itself, with the
                    // event and the commands it fires on.
                    if t.table == "(event trigger)" {
                        format!(
                            "event trigger {} ({} on {})",
                            t.name,
                            t.timing,
                            t.events.join("/")
                        )
                    } else {
                        format!(
                            "trigger {}.{} ({} {})",
                            t.table,
                            t.name,
                            t.timing,
                            t.events.join("/")
                        )
                    }
                })
                .collect();
            if fired.is_empty() {
                parts.push(format!("raised in function {function}"));
            } else {
                parts.push(format!(
                    "raised by {} (function {function})",
                    fired.join(", ")
                ));
            }
        }
        parts.push(format!("where: {}", w.lines().next().unwrap_or(w)));
    }
    Some(parts.join("; "))
}

/// One function of an error's `where` context, as Postgres wrote it:
/// `PL/pgSQL function app.f(integer) line 3 at SQL statement` or
/// `SQL function "f" statement 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFunction {
    /// As the context shows it: `app.f(integer)`, `f()`, `f`.
    pub shown: String,
    /// The schema when the context names it (it does when the function is
    /// not on the search_path).
    pub schema: Option<String>,
    pub name: String,
    /// The argument types, `integer,text`; None when the context does not
    /// say (an SQL function).
    pub args: Option<String>,
}

/// The functions of an error's `where` context, innermost (the one that
/// ran the refused statement) first. A DO block (`inline_code_block`) is
/// no function of the catalog and is left out.
pub fn context_functions(context: &str) -> Vec<ContextFunction> {
    context
        .lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("PL/pgSQL function ") {
                let open = rest.find('(')?;
                let close = rest.find(") line ").or_else(|| rest.rfind(')'))?;
                let (schema, name) = split_qualified(&rest[..open]);
                Some(ContextFunction {
                    shown: rest[..=close].to_string(),
                    schema,
                    name,
                    args: Some(rest.get(open + 1..close)?.to_string()),
                })
            } else {
                let rest = line.strip_prefix("SQL function \"")?;
                let name = rest.split('"').next()?.to_string();
                Some(ContextFunction {
                    shown: name.clone(),
                    schema: None,
                    name,
                    args: None,
                })
            }
        })
        .collect()
}

/// `app."Odd"` → (Some("app"), "Odd"); `f` → (None, "f").
fn split_qualified(s: &str) -> (Option<String>, String) {
    let unquote = |p: &str| p.trim_matches('"').replace("\"\"", "\"");
    match s.rsplit_once('.') {
        Some((schema, name)) if !schema.is_empty() => (Some(unquote(schema)), unquote(name)),
        _ => (None, unquote(s)),
    }
}

/// `PL/pgSQL function public.f() line 3 at RAISE` → `f`.
fn plpgsql_function(context: &str) -> Option<String> {
    let rest = context.split("function ").nth(1)?;
    let name = rest.split('(').next()?;
    Some(function_name(name))
}

/// `public.f(integer)` or `f()` → `f`.
fn function_name(signature: &str) -> String {
    let base = signature.split('(').next().unwrap_or(signature);
    base.rsplit('.')
        .next()
        .unwrap_or(base)
        .trim_matches('"')
        .to_string()
}

/// The COPY line Postgres names in an error's context (`COPY t, line 5`),
/// 1-based, to find the row it refused.
pub fn copy_line(err: &anyhow::Error) -> Option<usize> {
    copy_line_in(db_error(err)?.where_()?)
}

/// The line number of the `COPY t, line N` entry of an error context. A
/// trigger's RAISE puts its own `PL/pgSQL function f() line 3 at RAISE`
/// first: that is a line of the function, not of the COPY data.
fn copy_line_in(context: &str) -> Option<usize> {
    let entry = context.lines().find(|l| l.starts_with("COPY "))?;
    let after = entry.split(", line ").nth(1)?;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cascade_hint_of_a_refused_drop_is_not_passed_on() {
        let cascade = Some("Use DROP ... CASCADE to drop the dependent objects too.");
        assert_eq!(super::relayed_hint("2BP01", cascade), None);
        assert_eq!(
            super::relayed_hint("23505", Some("Try another key.")).as_deref(),
            Some("hint: Try another key.")
        );
    }

    use super::*;

    #[test]
    fn function_names_from_contexts() {
        assert_eq!(
            plpgsql_function("PL/pgSQL function public.append_only() line 3 at RAISE").as_deref(),
            Some("append_only")
        );
        assert_eq!(function_name("append_only()"), "append_only");
        assert_eq!(function_name("app.\"Odd\"(integer)"), "Odd");
    }

    #[test]
    fn context_functions_innermost_first() {
        let stack = context_functions(
            "PL/pgSQL function app.\"Odd\"(integer,text) line 2 at SQL statement\n\
             SQL statement \"SELECT app.\"Odd\"(1, 'x')\"\n\
             SQL function \"helper\" statement 1\n\
             PL/pgSQL function audit_workflow() line 1 at PERFORM\n\
             PL/pgSQL function inline_code_block line 3 at SQL statement",
        );
        let shown: Vec<(&str, Option<&str>, &str, Option<&str>)> = stack
            .iter()
            .map(|f| {
                (
                    f.shown.as_str(),
                    f.schema.as_deref(),
                    f.name.as_str(),
                    f.args.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "app.\"Odd\"(integer,text)",
                    Some("app"),
                    "Odd",
                    Some("integer,text")
                ),
                ("helper", None, "helper", None),
                ("audit_workflow()", None, "audit_workflow", Some("")),
            ]
        );
    }

    #[test]
    fn the_copy_line_is_the_data_line_not_the_trigger_function_line() {
        assert_eq!(
            copy_line_in("PL/pgSQL function pg_temp_3.r() line 2 at RAISE\nCOPY tt, line 4: \"4\""),
            Some(4)
        );
        assert_eq!(
            copy_line_in("COPY workflows, line 17, column name: \"x\""),
            Some(17)
        );
        assert_eq!(copy_line_in("PL/pgSQL function f() line 2 at RAISE"), None);
    }
}
