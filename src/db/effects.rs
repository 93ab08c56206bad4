//! What the functions that fire for a push's (or rollback's) writes can do
//! outside its transaction. The preflight runs the real transaction and
//! rolls it back; that undoes every row, but not a `dblink_exec` on another
//! connection (it commits on its own), an HTTP request (pgsql-http sends it
//! at once), a file written by `lo_export` or `COPY … TO`, a `setval`, a
//! replication slot created, dropped or advanced, or anything an untrusted
//! language (plpython3u …) does. So before anything is written, the
//! trigger functions that would fire — row and statement triggers on the
//! written and allowed tables, event triggers — every
//! expression Postgres evaluates when those tables are written (a trigger's
//! WHEN clause, CHECK constraints of the table and of the domains its
//! columns use, column and domain defaults, generated columns, index
//! expressions and partial-index predicates, the row-level security
//! policies that apply to the role, rules), and every function they call by
//! name, transitively, are read from `pg_proc` and searched for such calls
//! (V25: a dblink call in a WHEN clause or a CHECK ran in every dry run).
//! Dynamic SQL (`EXECUTE '…'`) is not followed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::db::triggers::WrittenTable;
use crate::db::writes::qualify;
use crate::plan::checks::{Check, CheckKind};

/// A function in `pg_proc`.
#[derive(Debug, Clone)]
pub struct Function {
    /// `schema.name(argtypes)`, as `regprocedure` prints it.
    pub signature: String,
    pub language: String,
    /// Whether the language is trusted (plpgsql, sql) or not (plpython3u).
    pub trusted: bool,
    /// The body (`prosrc`; the whole definition for a SQL-standard body).
    pub source: String,
    /// The extension the function belongs to, if any.
    pub extension: String,
    /// Its bare name and schema (lower case as Postgres keeps them).
    pub name: String,
    pub schema: String,
    /// Its `SET` clause (`proconfig`: `name=value` entries), applied for
    /// the duration of each call.
    pub config: Vec<String>,
}

/// A trigger or event trigger that fires for the writes, or an expression
/// Postgres evaluates for them, and every function it reaches: its own (an
/// expression's text stands as a function with an empty signature), then
/// those called by name, transitively.
#[derive(Debug, Clone)]
pub struct Firing {
    /// `trigger NAME on schema.table`, `event trigger NAME`, `CHECK
    /// constraint NAME on schema.table`, `WHEN clause of trigger …` …
    pub what: String,
    /// Each reached function with the chain of calls leading to it
    /// (`f() → g()`), the trigger's own function (or the expression) first.
    pub reached: Vec<(String, Function)>,
}

impl Firing {
    /// What fires and, unless it is the expression itself, the chain of
    /// calls to the function concerned: `trigger t on x (function f() →
    /// g())`, `CHECK constraint c on x` or `CHECK constraint c on x
    /// (function f())`.
    pub fn at(&self, chain: &str) -> String {
        if chain.is_empty() {
            self.what.clone()
        } else {
            format!("{} (function {chain})", self.what)
        }
    }

    /// Whether this is an expression Postgres evaluates, not a trigger.
    fn is_expression(&self) -> bool {
        self.reached
            .first()
            .is_some_and(|(_, f)| f.signature.is_empty())
    }
}

/// One call that acts outside the transaction (or, for notes, happens only
/// at COMMIT), found in a reached function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalEffect {
    /// What fires, the call chain and what the call does.
    pub description: String,
    /// False for calls that are transactional but worth knowing (pg_net
    /// queues its request, NOTIFY is delivered at COMMIT, nextval).
    pub outside_transaction: bool,
}

/// Everything that fires for the writes, read once per transaction.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub firing: Vec<Firing>,
    /// The schemas of the path an app session gets (the row writes run
    /// under it): a function naming `audit_log` bare writes
    /// `app.audit_log` on a database whose path is `app, public`.
    pub app_schemas: Vec<String>,
}

/// The longest chain of calls followed: deep enough for any trigger
/// helper; a recursion stops anyway at functions already reached.
const MAX_DEPTH: usize = 16;

impl Effects {
    /// Reads what fires for writes to `written` and `allowed` tables
    /// (enabled row and statement triggers, any event and timing), to the
    /// tables a foreign key's ON DELETE / ON UPDATE action reaches from
    /// them (a cascade runs a DELETE or UPDATE there, whose statement
    /// triggers fire even when no row references the deleted one), and the
    /// event triggers that fire on one of `commands` (the DDL of the push
    /// and its rollback: their event and `WHEN TAG IN` as
    /// [`crate::db::event_triggers::fires_on_commands`] matches them), and
    /// the functions they call, one round trip per level of calls.
    /// "Enabled" is what fires in the tool's sessions: origin ('O') and
    /// ALWAYS ('A'). A trigger, event trigger or rule ENABLE REPLICA ('R')
    /// fires only under session_replication_role = replica, and push and
    /// rollback run pinned to origin (`tx::GUARDED_SETTINGS`): no writer.
    pub async fn read(
        tx: &Transaction<'_>,
        written: &[WrittenTable],
        allowed: &[String],
        commands: &[crate::db::event_triggers::Command],
    ) -> Result<Effects> {
        let watched: Vec<String> = written
            .iter()
            .map(|w| qualify(&w.name))
            .chain(allowed.iter().map(|a| qualify(a)))
            .collect();
        // Each in an async block of its own, which owns its SQL text.
        let (roots, app_schemas) = futures_util::join!(
            async {
                tx.query_typed(
                &format!(
                    "WITH RECURSIVE reached(oid) AS ( \
                       SELECT c.oid FROM pg_catalog.pg_class c \
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname::text || '.' || c.relname::text = ANY($1) \
                       UNION \
                       SELECT k.conrelid FROM pg_catalog.pg_constraint k JOIN reached r ON r.oid = k.confrelid \
                       WHERE k.contype = 'f' \
                         AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))), \
                     {EXPRESSIONS} \
                     SELECT 'trigger ' || t.tgname::text || ' on ' || n.nspname::text || '.' || c.relname::text \
                            || CASE WHEN n.nspname::text || '.' || c.relname::text = ANY($1) THEN '' \
                                    ELSE ' (a foreign key''s ON DELETE/UPDATE action reaches it)' END, \
                            {FUNCTION_COLUMNS}, '{{}}'::text[], NULL::text, NULL::text, NULL::text[] \
                     FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid {FUNCTION_JOINS} \
                     WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') \
                       AND c.oid IN (SELECT oid FROM reached) \
                     UNION ALL \
                     SELECT 'event trigger ' || e.evtname::text, {FUNCTION_COLUMNS}, '{{}}'::text[], \
                            e.evtevent::text, e.evtenabled::text, coalesce(e.evttags, '{{}}')::text[] \
                     FROM pg_catalog.pg_event_trigger e JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid \
                     {FUNCTION_JOINS} WHERE e.evtenabled IN ('O', 'A') \
                     UNION ALL \
                     SELECT x.what || CASE WHEN x.name = ANY($1) THEN '' \
                                    ELSE ' (a foreign key''s ON DELETE/UPDATE action reaches it)' END, \
                            '', 'sql', true, x.source || coalesce(u.calls, ''), '', '', '', '{{}}'::text[], \
                            coalesce(u.functions, '{{}}'), NULL::text, NULL::text, NULL::text[] \
                     FROM expressions x LEFT JOIN depends_on u ON u.classid = x.classid AND u.objid = x.objid \
                     WHERE x.source IS NOT NULL ORDER BY 1"
                ),
                &[(&watched, Type::TEXT_ARRAY)],
            )
                .await
            },
            // Pipelined with the roots: no round trip of its own.
            async {
                tx.query_typed(
                    &format!(
                        "SELECT schema FROM ({}) p ORDER BY position",
                        crate::db::postgres::search_path::APP_SCHEMAS
                    ),
                    &[],
                )
                .await
            }
        );
        let roots = roots.map_err(deparse_waited)?;
        let app_schemas: Vec<String> = app_schemas
            .context("cannot read the search_path app sessions get")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // An expression's own calls are known exactly (`pg_depend`, each
        // overload as resolved): only those are followed from it.
        // An event trigger fires only on the commands its event and tags
        // match (the same rule the trigger report lists it by): one whose
        // WHEN TAG IN names none of them is not reached.
        let roots: Vec<(String, Function, Vec<String>)> = roots
            .iter()
            .filter(|r| match r.get::<_, Option<String>>(10) {
                None => true,
                Some(event) => {
                    let what: String = r.get(0);
                    let t = crate::db::event_triggers::EventTrigger {
                        name: what.trim_start_matches("event trigger ").to_string(),
                        event,
                        enabled: r.get::<_, Option<String>>(11).unwrap_or_default(),
                        function: r.get(1),
                        tags: r.get::<_, Option<Vec<String>>>(12).unwrap_or_default(),
                    };
                    crate::db::event_triggers::fires_on_commands(&t, commands).is_some()
                }
            })
            .map(|r| (r.get::<_, String>(0), function_of(r, 1), r.get(9)))
            .collect();
        // Functions by bare name (lower case), looked up level by level.
        let mut by_name: BTreeMap<String, Vec<Function>> = BTreeMap::new();
        let mut asked: BTreeSet<String> = BTreeSet::new();
        let mut sources: Vec<String> = roots.iter().map(|(_, f, _)| f.source.clone()).collect();
        for _ in 0..MAX_DEPTH {
            let names: Vec<String> = sources
                .iter()
                .flat_map(|s| called_names(s))
                .filter(|n| asked.insert(n.clone()))
                .collect();
            if names.is_empty() {
                break;
            }
            let rows = tx
                .query_typed(
                    &format!(
                        "SELECT p.proname::text, {FUNCTION_COLUMNS} \
                         FROM pg_catalog.pg_proc p {FUNCTION_JOINS} \
                         JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
                         WHERE lower(p.proname::text) = ANY($1) \
                           AND pn.nspname NOT IN ('pg_catalog', 'information_schema')"
                    ),
                    &[(&names, Type::TEXT_ARRAY)],
                )
                .await?;
            sources.clear();
            for r in &rows {
                let f = function_of(r, 1);
                sources.push(f.source.clone());
                by_name
                    .entry(r.get::<_, String>(0).to_lowercase())
                    .or_default()
                    .push(f);
            }
        }
        let firing = roots
            .into_iter()
            .map(|(what, f, exact)| {
                let mut reached = Vec::new();
                let mut seen = BTreeSet::new();
                let only = f.signature.is_empty().then_some(exact.as_slice());
                walk(
                    &f,
                    f.signature.clone(),
                    &Reach {
                        by_name: &by_name,
                        only,
                    },
                    &mut seen,
                    &mut reached,
                    0,
                );
                Firing { what, reached }
            })
            .collect();
        Ok(Effects {
            firing,
            app_schemas,
        })
    }

    /// Every call found that acts outside the transaction, and the notes.
    /// A function is reached by name, so every overload of it is (the
    /// tool does not resolve which one a call picks): one line per
    /// function name, not per overload (dblink_exec has four).
    pub fn external(&self) -> Vec<ExternalEffect> {
        let mut out = Vec::new();
        for f in &self.firing {
            let mut said = BTreeSet::new();
            for (chain, func) in &f.reached {
                let caller = chain.rsplit_once(" → ").map_or("", |(c, _)| c);
                let overloads = f
                    .reached
                    .iter()
                    .filter(|(c, g)| {
                        g.name == func.name
                            && g.schema == func.schema
                            && c.rsplit_once(" → ").map_or("", |(c, _)| c) == caller
                    })
                    .count();
                for (what, outside) in calls_outside(func) {
                    // A default's own `nextval` (serial, identity, a
                    // domain's) is a sequence the push draws from, named
                    // with the sequences (`db::postgres::sequences`).
                    if f.is_expression() && chain.is_empty() && what.starts_with("calls nextval") {
                        continue;
                    }
                    let mut description = format!("{}: {what}", f.at(chain));
                    if overloads > 1 && !func.signature.is_empty() {
                        let bare = func.signature.split('(').next().unwrap_or_default();
                        description = description.replace(&func.signature, &format!("{bare}(…)"));
                        if !said.insert(description.clone()) {
                            continue;
                        }
                        description.push_str(&format!(" (any of its {overloads} overloads)"));
                    }
                    out.push(ExternalEffect {
                        description,
                        outside_transaction: outside,
                    });
                }
            }
        }
        out.dedup();
        out
    }

    /// What fires and, through its functions, switches a setting push and
    /// rollback pin (`tx::GUARDED_SETTINGS`): `set_config('…', …)` or
    /// `SET [LOCAL] …` in its source. The re-read after each phase sees a
    /// switch that lasts; one switched and back within a statement (a row
    /// trigger turning `session_replication_role` to replica, a statement
    /// trigger turning it back) leaves nothing to see afterwards, while
    /// Postgres skipped the app's triggers and foreign keys in between.
    pub fn switching_guarded_settings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.firing {
            for (chain, func) in &f.reached {
                for (setting, how) in switched_settings(func) {
                    let line = format!("{}: may set {setting} ({how})", f.at(chain));
                    if !out.contains(&line) {
                        out.push(line);
                    }
                }
            }
        }
        out
    }

    /// What fires and, through its functions, names `table`
    /// (`schema.table`): the likely writer of rows found there.
    /// A database-level object the DDL check names (`database X (…)`,
    /// `comment on database X`, `owner of database X …`) is looked for as
    /// the word `database` (`ALTER DATABASE`, `COMMENT ON DATABASE`,
    /// `REVOKE … ON DATABASE`): its name is usually `current_database()`.
    pub fn naming(&self, table: &str) -> Vec<String> {
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        let database = table.starts_with("database ")
            || table.contains(" on database ")
            || table.contains(" of database ");
        let mut out = Vec::new();
        for f in &self.firing {
            if let Some((chain, _)) = f.reached.iter().find(|(_, func)| {
                if database {
                    names_identifier(&func.source, "database")
                } else {
                    names_table(&func.source, schema, name)
                        || (on_path(func, &self.app_schemas, schema)
                            && names_bare(&func.source, name))
                }
            }) {
                out.push(f.at(chain));
            }
        }
        out
    }
}

/// Deparsing a default, an index expression or a trigger's WHEN clause
/// (`pg_get_expr`, `pg_get_triggerdef`) opens its table (ACCESS SHARE),
/// which waits for a session holding ACCESS EXCLUSIVE there (an app's
/// ALTER TABLE, VACUUM FULL, TRUNCATE or LOCK TABLE), up to the lock
/// timeout: what would run for the writes stays unknown, so the command
/// refuses (exit 1, retry advice) instead of a raw error.
fn deparse_waited(e: tokio_postgres::Error) -> anyhow::Error {
    if e.as_db_error().map(|d| d.code().code()) == Some("55P03") {
        return crate::error::lock_refused(
            "another session holds a table this transaction writes, or one a foreign key's \
             action reaches, exclusively (ALTER TABLE, VACUUM FULL, TRUNCATE or LOCK TABLE on \
             it), so its triggers, defaults, constraints and index expressions could not be read \
             within the lock timeout. Rolled back, nothing was written; retry when that session \
             is done",
        );
    }
    e.into()
}

/// The expressions Postgres evaluates when it writes a `reached` table
/// (CTEs `expressions(what, name, source)`, `name` the table's): what a
/// dry run runs for real, whatever it calls. Each is searched as a function
/// body would be; the functions of the user-defined operators it uses are
/// added to its text as calls (`f()`), since an operator hides its
/// function's name. A domain's default counts only for a column without a
/// default of its own; policies only where row-level security applies to
/// the role (not a superuser or BYPASSRLS role, not the owner unless
/// forced, a policy for PUBLIC or a role it has). MATERIALIZED: inlined,
/// the outer `source IS NOT NULL` would be pushed into each scan and
/// deparse every default and index of the database (`pg_get_expr` opens
/// its table), waiting for any app's ACCESS EXCLUSIVE on an unrelated table.
const EXPRESSIONS: &str = "tbl(oid, name) AS ( \
       SELECT c.oid, n.nspname::text || '.' || c.relname::text FROM pg_catalog.pg_class c \
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
       WHERE c.oid IN (SELECT oid FROM reached)), \
     typed(name, col, typid, open) AS ( \
       SELECT tb.name, a.attname::text, a.atttypid, NOT a.atthasdef \
       FROM pg_catalog.pg_attribute a JOIN tbl tb ON tb.oid = a.attrelid \
       WHERE a.attnum > 0 AND NOT a.attisdropped \
       UNION \
       SELECT d.name, d.col, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.typelem END, \
              d.open AND ty.typtype = 'd' AND ty.typdefaultbin IS NULL \
       FROM typed d JOIN pg_catalog.pg_type ty ON ty.oid = d.typid \
       WHERE ty.typtype = 'd' OR (ty.typelem <> 0 AND ty.typlen = -1)), \
     depends_on(classid, objid, calls, functions) AS ( \
       SELECT dp.classid, dp.objid, \
              coalesce(string_agg(' ' || o.oprcode::text || '()', '') FILTER (WHERE o.oid IS NOT NULL), ''), \
              array_agg(coalesce(o.oprcode::oid, dp.refobjid)::regprocedure::text) \
       FROM pg_catalog.pg_depend dp LEFT JOIN pg_catalog.pg_operator o \
         ON dp.refclassid = 'pg_catalog.pg_operator'::regclass AND o.oid = dp.refobjid \
       WHERE dp.refclassid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass) \
       GROUP BY 1, 2), \
     expressions(what, name, source, classid, objid) AS MATERIALIZED ( \
       SELECT 'WHEN clause of trigger ' || t.tgname::text || ' on ' || tb.name, tb.name, \
              substring(pg_catalog.pg_get_triggerdef(t.oid) \
                        FROM ' WHEN \\((.*)\\) EXECUTE (?:FUNCTION|PROCEDURE) '), \
              'pg_catalog.pg_trigger'::regclass, t.oid \
       FROM pg_catalog.pg_trigger t JOIN tbl tb ON tb.oid = t.tgrelid \
       WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') AND t.tgqual IS NOT NULL \
       UNION ALL \
       SELECT CASE k.contype WHEN 'c' THEN 'CHECK constraint ' ELSE 'exclusion constraint ' END \
              || k.conname::text || ' on ' || tb.name, tb.name, \
              pg_catalog.pg_get_constraintdef(k.oid), 'pg_catalog.pg_constraint'::regclass, k.oid \
       FROM pg_catalog.pg_constraint k JOIN tbl tb ON tb.oid = k.conrelid WHERE k.contype IN ('c', 'x') \
       UNION ALL \
       SELECT DISTINCT 'CHECK constraint ' || k.conname::text || ' of domain ' \
              || pg_catalog.format_type(k.contypid, NULL) || ' (column ' || d.col || ' of ' || d.name || ')', \
              d.name, pg_catalog.pg_get_constraintdef(k.oid), 'pg_catalog.pg_constraint'::regclass, k.oid \
       FROM typed d JOIN pg_catalog.pg_constraint k ON k.contypid = d.typid WHERE k.contype = 'c' \
       UNION ALL \
       SELECT DISTINCT 'default of domain ' || pg_catalog.format_type(ty.oid, NULL) || ' (column ' || d.col \
              || ' of ' || d.name || ')', d.name, pg_catalog.pg_get_expr(ty.typdefaultbin, 0), \
              'pg_catalog.pg_type'::regclass, ty.oid \
       FROM typed d JOIN pg_catalog.pg_type ty ON ty.oid = d.typid \
       WHERE d.open AND ty.typtype = 'd' AND ty.typdefaultbin IS NOT NULL \
       UNION ALL \
       SELECT CASE WHEN a.attgenerated = 's' THEN 'generated column ' ELSE 'default of column ' END \
              || a.attname::text || ' on ' || tb.name, tb.name, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), \
              'pg_catalog.pg_attrdef'::regclass, ad.oid \
       FROM pg_catalog.pg_attrdef ad JOIN tbl tb ON tb.oid = ad.adrelid \
       JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
       WHERE NOT a.attisdropped \
       UNION ALL \
       SELECT 'index ' || ic.relname::text || ' on ' || tb.name, tb.name, \
              concat_ws(' WHERE ', pg_catalog.pg_get_expr(i.indexprs, i.indrelid), \
                        pg_catalog.pg_get_expr(i.indpred, i.indrelid)), \
              'pg_catalog.pg_class'::regclass, i.indexrelid \
       FROM pg_catalog.pg_index i JOIN tbl tb ON tb.oid = i.indrelid \
       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
       WHERE i.indexprs IS NOT NULL OR i.indpred IS NOT NULL \
       UNION ALL \
       SELECT 'policy ' || pol.polname::text || ' on ' || tb.name, tb.name, \
              concat_ws(' WITH CHECK ', pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), \
                        pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)), \
              'pg_catalog.pg_policy'::regclass, pol.oid \
       FROM pg_catalog.pg_policy pol JOIN tbl tb ON tb.oid = pol.polrelid \
       JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid \
       WHERE c.relrowsecurity \
         AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r \
                  WHERE r.rolname = current_user) \
         AND (c.relforcerowsecurity OR NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')) \
         AND (0 = ANY(pol.polroles) OR EXISTS (SELECT 1 FROM unnest(pol.polroles) pr(oid) \
              WHERE pg_catalog.pg_has_role(current_user, pr.oid, 'USAGE'))) \
       UNION ALL \
       SELECT 'rule ' || rw.rulename::text || ' on ' || tb.name, tb.name, pg_catalog.pg_get_ruledef(rw.oid), \
              'pg_catalog.pg_rewrite'::regclass, rw.oid \
       FROM pg_catalog.pg_rewrite rw JOIN tbl tb ON tb.oid = rw.ev_class \
       WHERE rw.rulename <> '_RETURN' AND rw.ev_enabled IN ('O', 'A'))";

/// Columns 1.. of a function row: signature, language, trusted, source,
/// extension, name, schema, config (see [`function_of`]).
const FUNCTION_COLUMNS: &str = "p.oid::regprocedure::text, l.lanname::text, l.lanpltrusted, \
     coalesce(nullif(p.prosrc, ''), pg_catalog.pg_get_functiondef(p.oid)), \
     coalesce((SELECT x.extname::text FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid \
               WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid \
                 AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e' \
               LIMIT 1), ''), p.proname::text, \
     (SELECT fs.nspname::text FROM pg_catalog.pg_namespace fs WHERE fs.oid = p.pronamespace), \
     coalesce(p.proconfig, '{}')::text[]";
const FUNCTION_JOINS: &str = "JOIN pg_catalog.pg_language l ON l.oid = p.prolang";

fn function_of(r: &tokio_postgres::Row, from: usize) -> Function {
    Function {
        signature: r.get(from),
        language: r.get(from + 1),
        trusted: r.get(from + 2),
        source: r.get(from + 3),
        extension: r.get(from + 4),
        name: r.get(from + 5),
        schema: r.get(from + 6),
        config: r.get(from + 7),
    }
}

/// The functions a walk may step to: by name, and from an expression only
/// those it calls exactly (`only`).
struct Reach<'a> {
    by_name: &'a BTreeMap<String, Vec<Function>>,
    only: Option<&'a [String]>,
}

fn walk(
    f: &Function,
    chain: String,
    reach: &Reach<'_>,
    seen: &mut BTreeSet<String>,
    reached: &mut Vec<(String, Function)>,
    depth: usize,
) {
    if !seen.insert(f.signature.clone()) || depth > MAX_DEPTH {
        return;
    }
    reached.push((chain.clone(), f.clone()));
    // A C function's source is its symbol name: nothing to follow.
    if f.language == "c" || f.language == "internal" {
        return;
    }
    for name in called_names(&f.source) {
        for g in reach.by_name.get(&name).into_iter().flatten() {
            if depth == 0 && reach.only.is_some_and(|only| !only.contains(&g.signature)) {
                continue;
            }
            // `app.log_change(` is no call of `admin.log_change()`: a
            // qualified call reaches only its schema's functions (h4's
            // review: an admin function of the same name was blamed, with
            // a chain that does not exist). A bare one may reach any.
            if !may_call_in_schema(&f.source, &name, &g.schema) {
                continue;
            }
            walk(
                g,
                if chain.is_empty() {
                    g.signature.clone()
                } else {
                    format!("{chain} → {}", g.signature)
                },
                reach,
                seen,
                reached,
                depth + 1,
            );
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Lower-cased names written as calls (`name(`, `schema.name (`).
pub fn called_names(source: &str) -> BTreeSet<String> {
    let lower = source.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '(' && !chars[start].is_ascii_digit() {
                out.insert(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Whether `source` calls `name` (lower case, as [`called_names`] found it)
/// in a way that may resolve to a function of `schema`: bare (any schema on
/// the search path) or qualified with `schema` (plain or double-quoted).
fn may_call_in_schema(source: &str, name: &str, schema: &str) -> bool {
    let lower = source.to_lowercase();
    let schema = schema.to_lowercase();
    lower.match_indices(name).any(|(at, _)| {
        let before = &lower[..at];
        let after = lower[at + name.len()..].trim_start();
        if before.chars().next_back().is_some_and(is_ident)
            || after.chars().next().is_some_and(is_ident)
            || !after.starts_with('(')
        {
            return false;
        }
        match before.trim_end().strip_suffix('.') {
            None => true,
            Some(q) => {
                let q = q.trim_end();
                let qualifier = match q.strip_suffix('"') {
                    Some(quoted) => quoted.rsplit('"').next().unwrap_or_default(),
                    None => q.rsplit(|c: char| !is_ident(c)).next().unwrap_or_default(),
                };
                qualifier == schema
            }
        }
    })
}

/// Whether `source` calls function `name` of `schema` by name, as the
/// walk steps from a function to the ones it reaches: written as a call,
/// bare or qualified with that schema (the error context of a refusal
/// inside functions is checked the same way, see
/// [`crate::db::postgres::definer::callers_of`]).
pub(crate) fn may_call(source: &str, name: &str, schema: &str) -> bool {
    may_call_in_schema(source, &name.to_lowercase(), schema)
}

/// Whether a function body names `schema.name` as a whole identifier:
/// qualified, or bare when the schema is `public` (the search path the
/// tool pins) — bare names elsewhere are too common to claim.
pub(crate) fn names_table(source: &str, schema: &str, name: &str) -> bool {
    let lower = source.to_lowercase();
    let (schema, name) = (schema.to_lowercase(), name.to_lowercase());
    stands_alone(&lower, &format!("{schema}.{name}"))
        || stands_alone(&lower, &format!("\"{schema}\".\"{name}\""))
        || (schema == "public" && names_bare_lower(&lower, &name))
}

/// Whether lower-case `lower` holds `word` as a whole identifier that does
/// not follow a `.` (so `app.audit_log` is not a bare `audit_log`).
fn stands_alone(lower: &str, word: &str) -> bool {
    lower.match_indices(word).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + word.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident)
    })
}

/// [`names_bare`] on a lower-case body and name.
fn names_bare_lower(lower: &str, name: &str) -> bool {
    stands_alone(lower, name) || stands_alone(lower, &format!("\"{name}\""))
}

/// Whether `schema` is on the path `f` runs under: its own `SET
/// search_path`, else the app's (`app_schemas`). `public` is taken care of
/// by [`names_table`].
fn on_path(f: &Function, app_schemas: &[String], schema: &str) -> bool {
    if schema == "public" {
        return false;
    }
    match f.config.iter().find_map(|c| c.strip_prefix("search_path=")) {
        Some(own) => own
            .split(',')
            .any(|s| s.trim().trim_matches('"').eq_ignore_ascii_case(schema)),
        None => app_schemas.iter().any(|s| s == schema),
    }
}

/// Whether a function body names `name` bare (not after a `.`), as a whole
/// identifier, plain or double-quoted.
fn names_bare(source: &str, name: &str) -> bool {
    names_bare_lower(&source.to_lowercase(), &name.to_lowercase())
}

/// Whether a function body names `word` as a whole identifier, bare or
/// double-quoted, in any case (a column name after `NEW.` or `t.` too).
pub(crate) fn names_identifier(source: &str, word: &str) -> bool {
    let lower = source.to_lowercase();
    let word = word.to_lowercase();
    let quoted = format!("\"{word}\"");
    [word.as_str(), quoted.as_str()].iter().any(|w| {
        lower.match_indices(*w).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + w.len()..].chars().next();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        })
    })
}

/// What `f` does outside the transaction (true) or only at COMMIT (false).
fn calls_outside(f: &Function) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    match f.extension.as_str() {
        "dblink" => out.push((
            format!(
                "calls {} (dblink), which runs SQL over another connection that commits on its own: \
                 a rollback does not undo it",
                f.signature
            ),
            true,
        )),
        "http" => out.push((
            format!(
                "calls {} (pgsql-http), which sends an HTTP request at once: a rollback does not undo it",
                f.signature
            ),
            true,
        )),
        "pg_net" => out.push((
            format!(
                "calls {} (pg_net), which queues its request in a table: sent only after COMMIT, \
                 so a rolled-back preflight sends nothing",
                f.signature
            ),
            false,
        )),
        "adminpack" => out.push((
            format!(
                "calls {} (adminpack), which writes server files: a rollback does not undo it",
                f.signature
            ),
            true,
        )),
        _ => {}
    }
    if f.extension.is_empty() && f.language != "sql" && f.language != "plpgsql" {
        out.extend(named_like_an_effect(f));
    }
    if !f.trusted && f.language != "c" && f.language != "internal" {
        out.push((
            format!(
                "is written in {}, an untrusted language that can reach outside the database \
                 (network, files); the tool cannot read what it does",
                f.language
            ),
            true,
        ));
    }
    if f.language == "c" || f.language == "internal" {
        return out;
    }
    let calls = called_names(&f.source);
    for (name, what, outside) in BUILT_IN {
        if calls.contains(*name) {
            out.push((format!("calls {name}, {what}"), *outside));
        }
    }
    let words: Vec<String> = f
        .source
        .to_lowercase()
        .split(|c: char| !is_ident(c) && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    for w in words.windows(2) {
        if w[0] == "to" && w[1] == "program" {
            out.push((
                "runs COPY … TO PROGRAM, a shell command: a rollback does not undo it".into(),
                true,
            ));
        }
    }
    // COPY … TO 'file' writes a server file at once, as lo_export does (V2).
    // Looked for within one statement, so a `SET … TO 'value'` elsewhere is
    // not taken for it.
    let lower = f.source.to_lowercase();
    let copies_to_a_file = lower.split(';').any(|statement| {
        let words: Vec<&str> = statement
            .split(|c: char| !is_ident(c) && c != '\'')
            .filter(|w| !w.is_empty())
            .collect();
        words.contains(&"copy")
            && words
                .windows(2)
                .any(|w| w[0] == "to" && w[1].starts_with('\''))
    });
    if copies_to_a_file {
        out.push((
            "runs COPY … TO a server file, written at once: a rollback does not undo it".into(),
            true,
        ));
    }
    // A logical decoding message: a non-transactional one (first argument
    // false) reaches decoding consumers (Supabase Realtime, CDC) at once; a
    // transactional one only at COMMIT, so a rolled-back preflight sends
    // nothing (V2).
    for (at, _) in lower.match_indices("pg_logical_emit_message") {
        let args = lower[at + "pg_logical_emit_message".len()..].trim_start();
        let first = args
            .strip_prefix('(')
            .and_then(|a| a.split(',').next())
            .map(str::trim);
        let transactional = first == Some("true");
        out.push((
            if transactional {
                "calls pg_logical_emit_message (transactional): decoded at COMMIT, not by a \
                 rolled-back preflight"
                    .into()
            } else {
                "calls pg_logical_emit_message (non-transactional, or not shown to be \
                 transactional): logical decoding consumers (Supabase Realtime, CDC) receive it \
                 at once, and a rollback does not undo it"
                    .into()
            },
            !transactional,
        ));
    }
    if words.iter().any(|w| w == "notify") {
        out.push((
            "runs NOTIFY, delivered to listeners at COMMIT (not by a rolled-back preflight)".into(),
            false,
        ));
    }
    out.dedup();
    out
}

/// A function whose body the tool does not read (C, internal, another
/// language) and that belongs to no extension, named — or, in C, pointing
/// at a symbol named — like a function whose effect is known: a dblink or
/// pgsql-http function created by hand, an alias of `setval` or
/// `lo_export`, pg_net's `net.http_*`. Its name is all there is to go by.
fn named_like_an_effect(f: &Function) -> Vec<(String, bool)> {
    let name = f.name.to_lowercase();
    let symbol = if f.language == "c" || f.language == "internal" {
        f.source.trim().to_lowercase()
    } else {
        String::new()
    };
    let is = |test: &dyn Fn(&str) -> bool| test(&name) || (!symbol.is_empty() && test(&symbol));
    let what = |kind: &str| {
        format!(
            "calls {}, a {} function outside any extension named like {kind}",
            f.signature, f.language
        )
    };
    let mut out = Vec::new();
    if f.schema == "net" && name.starts_with("http_") {
        out.push((
            format!(
                "{}: pg_net's, which queues its request in a table, sent only after COMMIT, so a \
                 rolled-back preflight sends nothing",
                what("pg_net's net.http_*")
            ),
            false,
        ));
        return out;
    }
    if is(&|n| n.starts_with("dblink")) {
        out.push((
            format!(
                "{}: runs SQL over another connection that commits on its own, which a rollback \
                 does not undo",
                what("dblink's")
            ),
            true,
        ));
    } else if is(&|n| n == "http" || n.starts_with("http_")) {
        out.push((
            format!(
                "{}: sends an HTTP request at once, which a rollback does not undo",
                what("pgsql-http's")
            ),
            true,
        ));
    } else if is(&|n| n.starts_with("pg_file_")) {
        out.push((
            format!(
                "{}: writes server files, which a rollback does not undo",
                what("adminpack's")
            ),
            true,
        ));
    } else if is(&|n| n.starts_with("pg_logical_emit_message")) {
        out.push((
            format!(
                "{}: logical decoding consumers (Supabase Realtime, CDC) may receive its message \
                 at once, which a rollback does not undo",
                what("pg_logical_emit_message")
            ),
            true,
        ));
    } else if let Some((known, effect, outside)) = BUILT_IN.iter().find(|(n, _, _)| {
        is(&|c| {
            c == *n
                || c == format!("be_{n}")
                || c.starts_with(&format!("{n}_"))
                || (*n == "setval" && c.starts_with("setval"))
        })
    }) {
        out.push((format!("{}: {effect}", what(known)), *outside));
    }
    out
}

/// What the four slot-creating functions of [`BUILT_IN`] leave behind.
const SLOT_MADE: &str = "which creates a replication slot that holds WAL on the server until \
                         someone drops it: a rollback does not drop it";

/// Built-in functions whose effect a rollback does not undo (true), or
/// that are transactional but worth knowing (false).
const BUILT_IN: &[(&str, &str, bool)] = &[
    (
        "lo_export",
        "which writes a file on the server: a rollback does not undo it",
        true,
    ),
    (
        "setval",
        "which sets a sequence outside the transaction: a rollback does not undo it",
        true,
    ),
    (
        "pg_terminate_backend",
        "which ends another session: a rollback does not undo it",
        true,
    ),
    (
        "pg_cancel_backend",
        "which cancels another session's query: a rollback does not undo it",
        true,
    ),
    (
        "pg_reload_conf",
        "which reloads the server's configuration: a rollback does not undo it",
        true,
    ),
    // Replication slots and origins live outside the catalogs' MVCC: what
    // these do stays after a ROLLBACK (F5). A slot left behind pins WAL
    // until someone drops it (on a hosted database, a full disk); a slot
    // dropped or advanced is a replica's or a CDC consumer's (Supabase
    // Realtime) lost. `pg_replication_origin_create` is not here: it only
    // inserts a catalog row, which a rollback removes.
    (
        "pg_create_physical_replication_slot",
        SLOT_MADE,
        true,
    ),
    (
        "pg_create_logical_replication_slot",
        SLOT_MADE,
        true,
    ),
    (
        "pg_copy_physical_replication_slot",
        SLOT_MADE,
        true,
    ),
    (
        "pg_copy_logical_replication_slot",
        SLOT_MADE,
        true,
    ),
    (
        "pg_drop_replication_slot",
        "which drops a replication slot (a replica's, a CDC consumer's): a rollback does not bring \
         it back",
        true,
    ),
    (
        "pg_replication_slot_advance",
        "which moves a replication slot forward, so its consumer skips changes: a rollback does \
         not undo it",
        true,
    ),
    (
        "pg_replication_origin_advance",
        "which sets a replication origin's progress: a rollback does not undo it",
        true,
    ),
    (
        "pg_replication_origin_drop",
        "which forgets a replication origin's progress at once: a rollback does not bring it back",
        true,
    ),
    (
        "pg_replication_origin_session_setup",
        "which marks the session's later commits as replayed from a replication origin (logical \
         replication may skip them): a rollback does not undo it",
        true,
    ),
    (
        "pg_replication_origin_session_reset",
        "which clears the session's replication origin: a rollback does not undo it",
        true,
    ),
    (
        "pg_notify",
        "delivered to listeners at COMMIT (not by a rolled-back preflight)",
        false,
    ),
    (
        "nextval",
        "whose draws a rollback does not give back (the sequences advanced are reported)",
        false,
    ),
];

/// One check: nothing that fires or is evaluated for these writes acts outside the
/// transaction, unless the user allows it (`--allow-external-effects`).
pub fn external_effects_check(phase: &str, effects: &Effects, allowed: bool) -> Check {
    let rows: Vec<String> = if allowed {
        vec![]
    } else {
        effects
            .external()
            .into_iter()
            .filter(|e| e.outside_transaction)
            .map(|e| e.description)
            .collect()
    };
    Check::no_rows(
        phase,
        "nothing that fires or is evaluated for these writes acts outside the transaction",
        CheckKind::Guard,
        rows,
    )
}

/// The guarded settings (`tx::GUARDED_SETTINGS`) that `f` may switch, and
/// how: its `SET` clause, or its source naming one other than to read it
/// (`current_setting('name')` or `SHOW name`, as a trigger does to skip
/// itself under replication). Any other mention counts, in any quoting
/// (`'…'`, `E'…'`, `$q$…$q$`, `%I` of `format`), since `set_config`, `SET`
/// and `EXECUTE` take the name in all of them; comments do not. A name
/// built at run time is not seen (the re-read inside the transaction is
/// left for it).
fn switched_settings(f: &Function) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, _, _) in crate::db::postgres::tx::GUARDED_SETTINGS {
        if let Some(entry) = f
            .config
            .iter()
            .find(|c| c.to_lowercase().starts_with(&format!("{name}=")))
        {
            out.push((*name, format!("its SET clause sets {entry}")));
        } else if f.language != "c"
            && f.language != "internal"
            && names_other_than_to_read(&without_comments(&f.source.to_lowercase()), name)
        {
            out.push((
                *name,
                format!("its source names {name} other than to read it (set_config, SET, EXECUTE)"),
            ));
        }
    }
    out
}

/// `source` without `-- …` and `/* … */` comments.
fn without_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
            out.push(' ');
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Whether lower-case `source` names `setting` (as a whole word) anywhere
/// but as the argument of `current_setting(` or after `show`.
fn names_other_than_to_read(source: &str, setting: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    source.match_indices(setting).any(|(at, _)| {
        let before = &source[..at];
        let after = &source[at + setting.len()..];
        if before.chars().next_back().is_some_and(word) || after.chars().next().is_some_and(word) {
            return false;
        }
        // Strip the quote that opens it: ', E' or a $tag$.
        let mut lead = before.trim_end();
        if let Some(q) = lead.strip_suffix('\'') {
            lead = q
                .strip_suffix('e')
                .filter(|l| !l.ends_with(word))
                .unwrap_or(q);
        } else if let Some(q) = lead.strip_suffix('$') {
            lead = q.rfind('$').map_or(q, |i| &q[..i]);
        }
        let lead = lead.trim_end();
        let read = lead
            .strip_suffix('(')
            .is_some_and(|l| l.trim_end().ends_with("current_setting"))
            || lead.ends_with("show");
        !read
    })
}

/// Refuses what fires and switches a guarded setting (see
/// [`Effects::switching_guarded_settings`]): not a choice the user can
/// allow, since the push's proof that triggers and foreign keys fired, and
/// its write accounting, rest on them.
pub fn guarded_settings_check(phase: &str, effects: &Effects) -> Check {
    Check::no_rows(
        phase,
        "nothing that fires or is evaluated for these writes switches session_replication_role \
         or track_counts",
        CheckKind::Guard,
        effects.switching_guarded_settings(),
    )
}

/// Why [`guarded_settings_check`] refuses, for push and rollback alike.
pub const GUARDED_SETTINGS_SWITCHED: &str = "what fires for these writes switches \
     session_replication_role or track_counts: while it is replica Postgres skips the app's \
     ordinary triggers and foreign-key checks, and while track_counts is off it counts no \
     writes, so a switch and back within one statement would leave every later check \
     believing they fired; change the function (or its trigger) so it does not switch them \
     while the migration runs";

#[cfg(test)]
mod tests {
    use super::*;

    fn plpgsql(src: &str) -> Function {
        Function {
            signature: "public.f()".into(),
            language: "plpgsql".into(),
            trusted: true,
            source: src.into(),
            extension: String::new(),
            name: "f".into(),
            schema: "public".into(),
            config: vec![],
        }
    }

    #[test]
    fn a_switch_of_a_guarded_setting_is_read_from_the_source_and_a_read_of_it_is_not() {
        let switched = |src: &str| -> Vec<&str> {
            switched_settings(&plpgsql(src))
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        let srr = ["session_replication_role"];
        assert_eq!(
            switched("PERFORM set_config('session_replication_role', 'replica', true);"),
            srr
        );
        assert_eq!(
            switched("PERFORM pg_catalog.set_config( 'track_counts' , 'off', true);"),
            ["track_counts"]
        );
        assert_eq!(
            switched("SET LOCAL session_replication_role = replica;"),
            srr
        );
        assert_eq!(
            switched("EXECUTE 'set session_replication_role to replica';"),
            srr
        );
        assert_eq!(
            switched("SET SESSION track_counts = off; SET session_replication_role TO origin;"),
            ["session_replication_role", "track_counts"]
        );
        // Any quoting (h4's review: these passed the first version).
        assert_eq!(
            switched("PERFORM set_config(E'track_counts', 'off', true);"),
            ["track_counts"]
        );
        assert_eq!(
            switched("PERFORM set_config($q$track_counts$q$, 'off', true);"),
            ["track_counts"]
        );
        assert_eq!(
            switched("EXECUTE format('SET LOCAL %I = %L', 'session_replication_role', 'replica');"),
            srr
        );
        // Reads, comments and other settings are no switch.
        assert!(switched(
            "IF current_setting('session_replication_role') = 'replica' THEN RETURN NULL; END IF;"
        )
        .is_empty());
        assert!(
            switched("IF pg_catalog.current_setting ( E'track_counts', true) = 'on' THEN")
                .is_empty()
        );
        assert!(switched("SHOW session_replication_role;").is_empty());
        assert!(switched(
            "-- never set session_replication_role here\n/* nor SET track_counts */ RETURN NEW;"
        )
        .is_empty());
        assert!(switched("SET LOCAL statement_timeout = 0; RETURN NEW;").is_empty());
        assert!(
            switched("PERFORM set_config('app.session_replication_role_seen', 'x', true);")
                .is_empty()
        );
        let mut c = plpgsql("set_config('session_replication_role', 'replica', true)");
        c.language = "c".into();
        assert!(switched_settings(&c).is_empty());
        // The function's own SET clause.
        let mut clause = plpgsql("BEGIN DELETE FROM app.t; RETURN NEW; END");
        clause.config = vec!["search_path=public".into(), "track_counts=off".into()];
        assert_eq!(
            switched_settings(&clause),
            [(
                "track_counts",
                "its SET clause sets track_counts=off".to_string()
            )]
        );
    }

    #[test]
    fn a_qualified_call_reaches_only_its_schema() {
        let src = "BEGIN PERFORM app.log_change(TG_TABLE_NAME, TG_OP); RETURN NULL; END";
        assert!(may_call_in_schema(src, "log_change", "app"));
        assert!(!may_call_in_schema(src, "log_change", "admin"));
        let quoted = "PERFORM \"App\" . log_change ('x')";
        assert!(may_call_in_schema(quoted, "log_change", "App"));
        assert!(!may_call_in_schema(quoted, "log_change", "admin"));
        // Bare: whatever the search path finds.
        assert!(may_call_in_schema(
            "PERFORM log_change('x')",
            "log_change",
            "admin"
        ));
        // Both forms: the bare call may reach either.
        assert!(may_call_in_schema(
            "PERFORM app.log_change('x'); PERFORM log_change('y');",
            "log_change",
            "admin"
        ));
        // Not a call of it: a longer name, or no parenthesis.
        assert!(!may_call_in_schema(
            "PERFORM app.log_changes('x')",
            "log_change",
            "app"
        ));
        assert!(!may_call_in_schema(
            "-- see log_change",
            "log_change",
            "app"
        ));
    }

    #[test]
    fn a_function_reached_by_name_is_one_line_whatever_its_overloads() {
        let dblink = |args: &str| Function {
            signature: format!("dblink_exec({args})"),
            language: "c".into(),
            trusted: false,
            source: "dblink_exec".into(),
            extension: "dblink".into(),
            name: "dblink_exec".into(),
            schema: "public".into(),
            config: vec![],
        };
        let root = plpgsql("BEGIN PERFORM dblink_exec('c', 'x'); RETURN NEW; END");
        let mut reached = vec![(root.signature.clone(), root.clone())];
        for args in ["text", "text, text", "text, boolean", "text, text, boolean"] {
            reached.push((format!("public.f() → dblink_exec({args})"), dblink(args)));
        }
        let effects = Effects {
            firing: vec![Firing {
                what: "trigger t on public.workflows".into(),
                reached,
            }],
            app_schemas: vec![],
        };
        let lines: Vec<String> = effects
            .external()
            .into_iter()
            .map(|e| e.description)
            .collect();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].starts_with(
                "trigger t on public.workflows (function public.f() → dblink_exec(…)): calls \
                 dblink_exec(…) (dblink)"
            ) && lines[0].ends_with("(any of its 4 overloads)"),
            "{lines:#?}"
        );
    }

    /// F5: replication slots and origins outlive a ROLLBACK; creating an
    /// origin (a catalog row) does not.
    #[test]
    fn replication_slot_and_origin_calls_are_outside_the_transaction() {
        for call in [
            "pg_create_physical_replication_slot('s', true)",
            "pg_create_logical_replication_slot('s', 'pgoutput')",
            "pg_copy_logical_replication_slot('s', 't')",
            "pg_drop_replication_slot('s')",
            "pg_replication_slot_advance('s', '0/1')",
            "pg_replication_origin_advance('o', '0/1')",
            "pg_replication_origin_drop('o')",
            "pg_replication_origin_session_setup('o')",
        ] {
            let name = call.split('(').next().unwrap_or_default();
            let found = calls_outside(&plpgsql(&format!("BEGIN PERFORM {call}; RETURN NULL; END")));
            assert!(
                found
                    .iter()
                    .any(|(w, o)| w.starts_with(&format!("calls {name},")) && *o),
                "{call}: {found:#?}"
            );
        }
        let create = plpgsql("BEGIN PERFORM pg_replication_origin_create('o'); RETURN NULL; END");
        assert!(calls_outside(&create).is_empty());
    }

    #[test]
    fn calls_are_found_by_name_qualified_or_not() {
        let names = called_names(
            "BEGIN PERFORM public.Notify_Remote (NEW.id); x := coalesce(a, 1); SELECT 1; END",
        );
        assert!(names.contains("notify_remote") && names.contains("coalesce"));
        assert!(!names.contains("select") && !names.contains("begin"));
    }

    #[test]
    fn built_in_effects_outside_the_transaction_are_named() {
        let f = plpgsql(
            "BEGIN PERFORM lo_export(1, '/tmp/x'); PERFORM setval('s', 5); RETURN NEW; END",
        );
        let found = calls_outside(&f);
        assert!(found.iter().any(|(w, o)| w.contains("lo_export") && *o));
        assert!(found.iter().any(|(w, o)| w.contains("setval") && *o));
        let copy = plpgsql("BEGIN COPY (SELECT 1) TO PROGRAM 'curl x'; RETURN NEW; END");
        assert!(calls_outside(&copy)
            .iter()
            .any(|(w, _)| w.contains("TO PROGRAM")));
        // V2: a server file written by COPY, a non-transactional logical
        // message; not a SET … TO 'value', nor a transactional message.
        let file = plpgsql(
            "BEGIN COPY (SELECT 'deleted', now()) TO '/tmp/leak.txt'; \
             PERFORM pg_logical_emit_message(false, 'wf', 'deleted'); RETURN OLD; END",
        );
        let found = calls_outside(&file);
        assert!(found
            .iter()
            .any(|(w, o)| w.contains("COPY … TO a server file") && *o));
        assert!(found
            .iter()
            .any(|(w, o)| w.contains("pg_logical_emit_message (non-transactional") && *o));
        let harmless = plpgsql(
            "BEGIN SET LOCAL search_path TO 'public'; COPY t TO STDOUT; \
             PERFORM pg_logical_emit_message(true, 'wf', 'x'); RETURN NEW; END",
        );
        assert!(
            calls_outside(&harmless).iter().all(|(_, o)| !*o),
            "{:?}",
            calls_outside(&harmless)
        );
        let notify = plpgsql("BEGIN PERFORM pg_notify('c', 'x'); RETURN NEW; END");
        assert!(calls_outside(&notify).iter().all(|(_, o)| !*o));
        assert!(calls_outside(&plpgsql("BEGIN RETURN NEW; END")).is_empty());
    }

    /// V25: a function whose body is not read, outside any extension, is
    /// judged by its name (or C symbol): a dblink function created by hand,
    /// an alias of setval, pg_net's queue; not an unrelated C function.
    #[test]
    fn an_unread_function_named_like_an_effect_is_one() {
        let c = |schema: &str, name: &str, symbol: &str| Function {
            signature: format!("{schema}.{name}(text)"),
            language: "c".into(),
            trusted: false,
            source: symbol.into(),
            extension: String::new(),
            name: name.into(),
            schema: schema.into(),
            config: vec![],
        };
        let outside = |f: &Function| calls_outside(f).iter().any(|(_, o)| *o);
        assert!(outside(&c("public", "dblink_exec", "dblink_exec")));
        assert!(outside(&c("public", "remote_exec", "dblink_exec")));
        assert!(outside(&c("public", "http_post", "http_post")));
        assert!(outside(&c("public", "move_on", "setval_oid")));
        let queued = calls_outside(&c("net", "http_post", "http_post"));
        assert!(
            queued.iter().any(|(w, o)| w.contains("pg_net") && !*o),
            "{queued:?}"
        );
        assert!(calls_outside(&c("public", "similarity", "similarity")).is_empty());
    }

    #[test]
    fn an_identifier_is_named_whole_bare_or_quoted() {
        assert!(names_identifier("NEW.Priority_Id := 1", "priority_id"));
        assert!(names_identifier(
            "select \"priority_id\" from t",
            "priority_id"
        ));
        assert!(!names_identifier(
            "select old_priority_id from t",
            "priority_id"
        ));
        assert!(!names_identifier(
            "select priority_ids from t",
            "priority_id"
        ));
    }

    #[test]
    fn a_table_is_named_qualified_or_bare_in_public() {
        assert!(names_table(
            "INSERT INTO public.ddl_log VALUES (1)",
            "public",
            "ddl_log"
        ));
        assert!(names_table(
            "INSERT INTO ddl_log VALUES (1)",
            "public",
            "ddl_log"
        ));
        assert!(names_table(
            "INSERT INTO audit.audit_log VALUES (1)",
            "audit",
            "audit_log"
        ));
        assert!(!names_table(
            "INSERT INTO audit_log VALUES (1)",
            "audit",
            "audit_log"
        ));
        assert!(!names_table(
            "INSERT INTO ddl_log_old VALUES (1)",
            "public",
            "ddl_log"
        ));
    }
}
