//! Foreign tables (postgres_fdw, and any other foreign-data wrapper): a
//! write to one goes to another server, in that server's own transaction,
//! so `pg_stat_xact_user_tables` never counts it and the write accounting
//! (`db::writes`) cannot see it. What the catalog can show is checked
//! before anything is written: a trigger that fires for the push's writes
//! whose function names a foreign table, and a rule on a written table
//! whose actions reference one (`pg_depend`). Either refuses unless the
//! user allows that foreign table (`--allow-writes`). What it cannot show
//! (dynamic SQL, a function called other than by name) is why the report says
//! so whenever foreign tables exist.

use anyhow::Result;
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::db::effects::Effects;
use crate::db::triggers::WrittenTable;
use crate::db::writes::qualify;
use crate::plan::checks::{Check, CheckKind};

/// A foreign table of the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignTable {
    /// `schema.table`.
    pub table: String,
    pub server: String,
    pub wrapper: String,
}

impl ForeignTable {
    pub fn describe(&self) -> String {
        format!("{} (server {}, {})", self.table, self.server, self.wrapper)
    }

    /// Whether `source` (a function body) names this table: its name as a
    /// whole identifier, bare or schema-qualified, quoted or not.
    fn named_in(&self, source: &str) -> bool {
        let name = self.table.rsplit('.').next().unwrap_or(&self.table);
        let lower = source.to_lowercase();
        identifier_occurs(&lower, &name.to_lowercase()) || source.contains(&format!("\"{name}\""))
    }
}

/// `word` in `text` with no identifier character on either side.
fn identifier_occurs(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// What the foreign-table check found: every foreign table of the
/// database, and one check (refused unless allowed).
pub struct ForeignWrites {
    pub tables: Vec<ForeignTable>,
    /// Foreign tables a trigger or rule may write, allowed by the user.
    pub allowed: Vec<String>,
    pub check: Check,
}

/// Every foreign table, and a check that no trigger firing for the push's
/// writes (row and statement triggers on `written` tables and on the
/// `allowed` side-effect tables, which triggers will write, and event
/// triggers) names a foreign table in its function, and no rule on a
/// written table references one — unless that foreign table is `allowed`.
pub async fn foreign_write_check(
    tx: &Transaction<'_>,
    phase: &str,
    written: &[WrittenTable],
    allowed: &[String],
    effects: &Effects,
) -> Result<ForeignWrites> {
    let tables: Vec<ForeignTable> = tx
        .query_typed(
            "SELECT n.nspname::text || '.' || c.relname::text, s.srvname::text, w.fdwname::text \
             FROM pg_catalog.pg_foreign_table f \
             JOIN pg_catalog.pg_class c ON c.oid = f.ftrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_foreign_server s ON s.oid = f.ftserver \
             JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| ForeignTable {
            table: r.get(0),
            server: r.get(1),
            wrapper: r.get(2),
        })
        .collect();
    let mut found = Vec::new();
    let mut allowed_found = Vec::new();
    if !tables.is_empty() {
        let written: Vec<String> = written.iter().map(|w| qualify(&w.name)).collect();
        let allowed: Vec<String> = allowed.iter().map(|a| qualify(a)).collect();
        // What fires (enabled triggers on the written and allowed tables,
        // enabled event triggers) and every function it calls by name.
        for firing in &effects.firing {
            for (chain, function) in &firing.reached {
                for f in tables.iter().filter(|f| f.named_in(&function.source)) {
                    let line = format!("{} names foreign table {}", firing.at(chain), f.describe());
                    if allowed.contains(&f.table) {
                        allowed_found.push(line);
                    } else {
                        found.push((line, f.table.clone()));
                    }
                }
            }
        }
        // A rule's actions reference their tables in pg_depend: exact,
        // unlike a name in a function's text.
        let rules = tx
            .query_typed(
                "SELECT DISTINCT r.rulename::text, n.nspname::text || '.' || c.relname::text, \
                        fn.nspname::text || '.' || f.relname::text \
                 FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass \
                      AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
                 JOIN pg_catalog.pg_class f ON f.oid = d.refobjid AND f.relkind = 'f' \
                 JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace \
                 WHERE r.ev_type IN ('2', '3', '4') \
                   AND n.nspname::text || '.' || c.relname::text = ANY($1) ORDER BY 1, 2, 3",
                &[(&written, Type::TEXT_ARRAY)],
            )
            .await?;
        for r in &rules {
            let target: String = r.get(2);
            let Some(f) = tables.iter().find(|f| f.table == target) else {
                continue;
            };
            let line = format!(
                "rule {} on {} writes or reads foreign table {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                f.describe()
            );
            if allowed.contains(&f.table) {
                allowed_found.push(line);
            } else {
                found.push((line, f.table.clone()));
            }
        }
    }
    let rows: Vec<String> = found
        .into_iter()
        .map(|(l, table)| {
            format!(
                "{l}: a write there goes to another server, which Postgres's statistics do not \
                 count, so the write accounting cannot see it; allow it with --allow-writes {table} \
                 if that is intended"
            )
        })
        .collect();
    Ok(ForeignWrites {
        tables,
        allowed: allowed_found,
        check: Check::no_rows(
            phase,
            "no trigger or rule that fires for these writes names a foreign table",
            CheckKind::Guard,
            rows,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> ForeignTable {
        ForeignTable {
            table: name.into(),
            server: "s".into(),
            wrapper: "postgres_fdw".into(),
        }
    }

    #[test]
    fn a_function_names_a_foreign_table_as_a_whole_identifier() {
        let t = table("public.remote_log");
        assert!(t.named_in("BEGIN INSERT INTO remote_log VALUES (NEW.id); RETURN NULL; END"));
        assert!(t.named_in("insert into public.REMOTE_LOG (id) values (1)"));
        assert!(t.named_in("INSERT INTO \"remote_log\" VALUES (1)"));
        assert!(!t.named_in("INSERT INTO remote_log_archive VALUES (1)"));
        assert!(!t.named_in("INSERT INTO my_remote_log VALUES (1)"));
        let odd = table("app.Remote Log");
        assert!(odd.named_in("INSERT INTO app.\"Remote Log\" VALUES (1)"));
    }
}
