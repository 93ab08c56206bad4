//! Row-level security met inside a function: as whose role it ran.
//!
//! The tool runs its transactions with `row_security = off` (see
//! [`super::set_local_settings_sql`]), so Postgres refuses any statement
//! that row-level security applies to instead of evaluating a policy. The
//! role it applies to is `current_user` at that statement: the tool's own
//! role, unless the statement ran inside a SECURITY DEFINER function —
//! an app trigger's audit function, say — which runs as the function's
//! owner. The tool's BYPASSRLS does not reach inside such a function, so
//! advising BYPASSRLS for the tool's role (what
//! [`super::explain_row_security`] says) is wrong there: the function's
//! owner, its table and the trigger are what to name.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient};

use crate::db::pg_error::{context_functions, ContextFunction};

/// `e`, when it is a row-level security refusal raised inside a SECURITY
/// DEFINER function, as a refusal of `what` (`the push`) naming the
/// function, its owner, the triggers that call it and the table (exit 1,
/// as a trigger's refusal); when the catalog cannot tell whose role ran
/// the statement, an environment error that says both possibilities
/// without asserting one. Otherwise `e` as it is: the statement ran as the
/// tool's role, and [`super::explain_row_security`] says so. `nothing`:
/// what the rolled back transaction left (`nothing was written`).
pub async fn explain_in_function(
    client: &Client,
    e: anyhow::Error,
    what: &str,
    nothing: &str,
) -> anyhow::Error {
    match row_security_in(client, &e).await {
        None | Some(Met::AsTool(_)) => e,
        Some(Met::Unknown(said)) => crate::error::environment(format!(
            "Postgres refused {what}: {said}. Rolled back, {nothing}"
        )),
        Some(Met::Definer(said)) => crate::error::refused(
            format!("Postgres refused {what}: {said}. Rolled back, {nothing}"),
            vec![],
        ),
    }
}

/// A row-level security refusal in an error's chain, said with as whom
/// its statement ran (see [`as_whom`]): the steps that led to it, Postgres's
/// message and SQLSTATE, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Met {
    /// As the tool's role: [`super::ROW_SECURITY_EXPLAINED`].
    AsTool(String),
    /// Inside a SECURITY DEFINER function, as its owner: the function, its
    /// owner, the triggers that lead to it, the table, what to change.
    Definer(String),
    /// Inside a function the catalog does not settle: both possibilities.
    Unknown(String),
}

impl Met {
    /// The sentence, whoever ran the statement.
    pub fn said(self) -> String {
        match self {
            Met::AsTool(said) | Met::Definer(said) | Met::Unknown(said) => said,
        }
    }
}

/// What [`Met`] says of the row-level security refusal in `e`'s chain, if
/// any, read from the catalog on `client`: a connection whose transaction
/// is over, or the transaction itself, back at a savepoint before the
/// refused statement (the push's rehearsed undo). Unnamed statements only,
/// so that it may run in a transaction that goes on to COMMIT.
pub async fn row_security_in<C: GenericClient>(client: &C, e: &anyhow::Error) -> Option<Met> {
    let db = e
        .chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .find_map(|pg| pg.as_db_error().filter(|d| super::is_row_security_error(d)))?;
    let message = db.message().to_string();
    let refused = format!("{message} (SQLSTATE {})", db.code().code());
    let context = db.where_().map(str::to_string);
    let steps = crate::db::pg_error::steps(e);
    let at = if steps.is_empty() {
        String::new()
    } else {
        format!("{steps}: ")
    };
    Some(match as_whom(client, &message, context.as_deref()).await {
        AsWhom::Tool | AsWhom::ToolInside(_) => {
            Met::AsTool(format!("{at}{refused} — {}", super::ROW_SECURITY_EXPLAINED))
        }
        AsWhom::Unknown(frame) => Met::Unknown(format!(
            "{at}{refused}, raised inside function {frame}. Which role ran that statement could \
             not be read from the catalog (no function of that name, several that differ, or one \
             whose owner has BYPASSRLS): if this tool's role, {}; if the owner of a SECURITY \
             DEFINER function, that owner lacks BYPASSRLS — give it BYPASSRLS, or let the \
             function apply the policies (`ALTER FUNCTION … SET row_security = on`)",
            super::ROW_SECURITY_EXPLAINED
        )),
        AsWhom::Definer {
            function,
            triggers,
            table,
        } => Met::Definer(format!(
            "{at}{refused}; {}",
            explain_definer(&message, &function, &triggers, table.as_ref())
        )),
    })
}

/// One function of an error's context as the catalog has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFunction {
    pub oid: u32,
    /// `schema.name(argument types)`, quoted where needed.
    pub signature: String,
    pub security_definer: bool,
    pub owner: String,
    /// The owner has BYPASSRLS or is a superuser: row-level security does
    /// not apply to it.
    pub owner_bypasses: bool,
    /// `row_security` set on the function (`ALTER FUNCTION … SET`), if any.
    pub row_security: Option<String>,
    /// Its body (`prosrc`), to tell whether it calls the next frame in.
    pub source: String,
}

/// The table a row-level security refusal names and what makes its
/// security apply to the function's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTable {
    /// `schema.table`.
    pub name: String,
    /// The function's owner owns it (or is a member of its owner).
    pub owned_by_definer: bool,
    pub forced: bool,
}

/// What the catalog says of a row-level security refusal raised inside
/// functions: the SECURITY DEFINER function the statement ran in (the
/// innermost one of the context), the triggers that call the context's
/// functions, the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsWhom {
    /// No function in the context: the tool's own statement, as its role.
    Tool,
    /// Every function of the context is found and none is SECURITY
    /// DEFINER: the statement ran as the tool's role, inside them.
    ToolInside(Vec<String>),
    /// The innermost SECURITY DEFINER function of the context.
    Definer {
        function: CatalogFunction,
        triggers: Vec<String>,
        table: Option<PolicyTable>,
    },
    /// A function of the context (innermost first, before any SECURITY
    /// DEFINER one) is not found, or its name fits functions that differ:
    /// which role ran the statement is not known.
    Unknown(String),
}

/// The innermost SECURITY DEFINER function of `stack` (innermost first),
/// each frame resolved among `found` (every function of the frames' names):
/// by schema when the frame names one, by argument types when they tell
/// candidates apart. Pure: the catalog was read by the caller.
pub fn definer_of(
    stack: &[ContextFunction],
    found: &[(String, String, String, CatalogFunction)],
) -> Resolved {
    let mut seen = Vec::new();
    for frame in stack {
        let candidates: Vec<&CatalogFunction> = found
            .iter()
            .filter(|(schema, name, args, _)| {
                name == &frame.name
                    && frame.schema.as_ref().is_none_or(|s| s == schema)
                    && frame.args.as_ref().is_none_or(|a| same_args(a, args))
            })
            .map(|(_, _, _, f)| f)
            .collect();
        let Some(first) = candidates.first() else {
            return Resolved::Unknown(frame.shown.clone());
        };
        let alike = candidates.iter().all(|c| {
            c.security_definer == first.security_definer
                && (!c.security_definer
                    || (c.owner == first.owner && c.row_security == first.row_security))
        });
        if !alike {
            return Resolved::Unknown(frame.shown.clone());
        }
        if first.security_definer {
            if candidates.len() > 1 {
                // Same owner, same setting, but which one ran is not known:
                // named by the context's own words.
                let mut f = (*first).clone();
                f.signature = frame.shown.clone();
                return Resolved::Definer(f, seen);
            }
            return Resolved::Definer((*first).clone(), seen);
        }
        seen.push(first.oid);
    }
    Resolved::None(seen)
}

/// What [`definer_of`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The function, and the oids of the functions it was called inside of.
    Definer(CatalogFunction, Vec<u32>),
    /// No SECURITY DEFINER function: the oids of them all.
    None(Vec<u32>),
    /// A frame the catalog does not settle, as the context shows it.
    Unknown(String),
}

/// `integer,text` and `integer, text` alike.
fn same_args(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    squeeze(a) == squeeze(b)
}

/// The functions the context shows calling the one of frame `from`,
/// innermost first (the direct caller first), each resolved among `found`
/// as [`definer_of`] resolves a frame: as far as each frame is one
/// function whose body calls the previous one by name (the reachability
/// rule of the side-effect check, [`crate::db::effects::may_call`]). A
/// frame the catalog does not settle, or one that did not call the next
/// (a trigger fired by its write, say), ends the chain.
pub fn callers_of(
    stack: &[ContextFunction],
    found: &[(String, String, String, CatalogFunction)],
    from: usize,
) -> Vec<CatalogFunction> {
    let Some(first) = stack.get(from) else {
        return vec![];
    };
    let settled = |frame: &ContextFunction| {
        let mut candidates = found.iter().filter(|(schema, name, args, _)| {
            name == &frame.name
                && frame.schema.as_ref().is_none_or(|s| s == schema)
                && frame.args.as_ref().is_none_or(|a| same_args(a, args))
        });
        match (candidates.next(), candidates.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    };
    let mut callee = match settled(first) {
        Some(f) => f,
        None => return vec![],
    };
    let mut out = Vec::new();
    for frame in &stack[from + 1..] {
        let Some(caller) = settled(frame) else {
            break;
        };
        let (schema, name) = (&callee.0, &callee.1);
        if !crate::db::effects::may_call(&caller.3.source, name, schema) {
            break;
        }
        out.push(caller.3.clone());
        callee = caller;
    }
    out
}

/// The functions named `names`, as [`definer_of`] takes them.
const FUNCTIONS_SQL: &str = "SELECT n.nspname::text, p.proname::text, \
       oidvectortypes(p.proargtypes), p.oid::oid::int8, \
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), \
       p.prosecdef, pg_get_userbyid(p.proowner)::text, (r.rolbypassrls OR r.rolsuper), \
       (SELECT split_part(c, '=', 2) FROM unnest(p.proconfig) c WHERE c LIKE 'row_security=%'), \
       p.prosrc \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     LEFT JOIN pg_roles r ON r.oid = p.proowner \
     WHERE p.proname = ANY($1::text[])";

/// The triggers whose function is one of `$1` (oids), `trigger NAME on
/// schema.table`, and that function.
const TRIGGERS_SQL: &str = "SELECT format('trigger %I on %I.%I', t.tgname, n.nspname, c.relname), \
       t.tgfoid::int8 \
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE t.tgfoid = ANY($1::int8[]::oid[]) AND NOT t.tgisinternal ORDER BY 1";

/// The tables with row-level security named `$1`, and whether role `$2`
/// owns each (a member of its owner does too).
const TABLES_SQL: &str = "SELECT format('%I.%I', n.nspname, c.relname), \
       pg_has_role($2::name, c.relowner, 'USAGE'), c.relforcerowsecurity \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relname = $1::name AND c.relrowsecurity";

/// As whom the statement behind a row-level security refusal ran: read
/// from the catalog on `client` (the refused transaction is over: its
/// functions and tables are the app's, committed). `message` is
/// Postgres's, `context` its `where` field.
pub async fn as_whom<C: GenericClient>(client: &C, message: &str, context: Option<&str>) -> AsWhom {
    let stack = context.map(context_functions).unwrap_or_default();
    if stack.is_empty() {
        return AsWhom::Tool;
    }
    match read(client, message, &stack).await {
        Ok(found) => found,
        Err(e) => AsWhom::Unknown(format!(
            "{} (the catalog could not be read: {e})",
            stack[0].shown
        )),
    }
}

async fn read<C: GenericClient>(
    client: &C,
    message: &str,
    stack: &[ContextFunction],
) -> Result<AsWhom, tokio_postgres::Error> {
    let names: Vec<String> = stack.iter().map(|f| f.name.clone()).collect();
    let rows = client
        .query_typed(FUNCTIONS_SQL, &[(&names, Type::TEXT_ARRAY)])
        .await?;
    let found: Vec<(String, String, String, CatalogFunction)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                CatalogFunction {
                    oid: r.get::<_, i64>(3) as u32,
                    signature: r.get(4),
                    security_definer: r.get(5),
                    owner: r.get(6),
                    owner_bypasses: r.get::<_, Option<bool>>(7).unwrap_or(false),
                    row_security: r.get(8),
                    source: r.get::<_, Option<String>>(9).unwrap_or_default(),
                },
            )
        })
        .collect();
    let (function, inside) = match definer_of(stack, &found) {
        Resolved::Unknown(frame) => return Ok(AsWhom::Unknown(frame)),
        Resolved::None(_) => {
            return Ok(AsWhom::ToolInside(
                stack.iter().map(|f| f.shown.clone()).collect(),
            ))
        }
        // Row-level security does not apply to an owner with BYPASSRLS:
        // the refusal came from elsewhere (a SET ROLE in the function).
        Resolved::Definer(function, _) if function.owner_bypasses => {
            return Ok(AsWhom::Unknown(function.signature))
        }
        Resolved::Definer(function, inside) => (function, inside),
    };
    // The functions the context shows calling the definer, out to the
    // trigger's own (F4: a trigger's function calls the definer, which no
    // trigger names itself): each trigger named with its chain of calls.
    let callers = callers_of(stack, &found, inside.len());
    let mut oids: Vec<i64> = inside.iter().map(|o| *o as i64).collect();
    oids.push(function.oid as i64);
    oids.extend(callers.iter().map(|c| c.oid as i64));
    let triggers = client
        .query_typed(TRIGGERS_SQL, &[(&oids, Type::INT8_ARRAY)])
        .await?
        .iter()
        .map(|r| {
            let trigger: String = r.get(0);
            let called = r.get::<_, i64>(1) as u32;
            match callers.iter().position(|c| c.oid == called) {
                Some(at) => format!(
                    "{trigger} (function {})",
                    callers[..=at]
                        .iter()
                        .rev()
                        .chain(std::iter::once(&function))
                        .map(|f| f.signature.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
                None => trigger,
            }
        })
        .collect();
    let table = match policy_table_name(message) {
        Some(name) => {
            let rows = client
                .query_typed(
                    TABLES_SQL,
                    &[(&name, Type::TEXT), (&function.owner, Type::TEXT)],
                )
                .await?;
            // Two schemas may hold a table of that name: only one is
            // named, when only one has row-level security.
            match rows.as_slice() {
                [r] => Some(PolicyTable {
                    name: r.get(0),
                    owned_by_definer: r.get(1),
                    forced: r.get(2),
                }),
                _ => None,
            }
        }
        None => None,
    };
    Ok(AsWhom::Definer {
        function,
        triggers,
        table,
    })
}

/// `… row-level security policy for table "audit_log"` → `audit_log`
/// (Postgres names the table without its schema).
pub fn policy_table_name(message: &str) -> Option<String> {
    let rest = message.rsplit("for table \"").next()?;
    if rest.len() == message.len() {
        return None;
    }
    let name = rest.strip_suffix('"')?;
    Some(name.replace("\"\"", "\""))
}

/// Whether Postgres applied a policy and it refused the row (`new row
/// violates row-level security policy …`: the function runs with
/// row_security on), rather than refusing the statement because a policy
/// would apply under the tool's `row_security = off`.
pub fn policy_refused_the_row(message: &str) -> bool {
    message.starts_with("new row violates row-level security policy")
}

/// Why a SECURITY DEFINER function met row-level security, and what to
/// change: its owner, the table, the triggers; nothing of the tool's role,
/// whose BYPASSRLS does not reach inside the function.
pub fn explain_definer(
    message: &str,
    function: &CatalogFunction,
    triggers: &[String],
    table: Option<&PolicyTable>,
) -> String {
    let owner = &function.owner;
    let by = if triggers.is_empty() {
        String::new()
    } else {
        format!(", called by {}", triggers.join(", "))
    };
    let table_name = table.map_or_else(
        || {
            policy_table_name(message)
                .map(|t| format!("table {t}"))
                .unwrap_or_else(|| "the table".into())
        },
        |t| t.name.clone(),
    );
    let applies = match table {
        Some(t) if t.owned_by_definer && t.forced => format!(
            "{owner} owns {table_name}, which forces row-level security on its owner (FORCE ROW \
             LEVEL SECURITY)"
        ),
        Some(t) if t.owned_by_definer => format!("{owner} owns {table_name}"),
        Some(_) => format!("{owner} does not own {table_name}"),
        None => format!("row-level security on {table_name} applies to it"),
    };
    let who = format!(
        "function {} is SECURITY DEFINER{by}: it runs as its owner {owner}, not as the role this \
         tool connects as (whose BYPASSRLS, if it has it, does not carry into the function); \
         {owner} lacks BYPASSRLS and {applies}",
        function.signature
    );
    let grant = format!(
        "as a superuser, `ALTER ROLE {} BYPASSRLS;`",
        crate::types::quote_ident(owner)
    );
    if policy_refused_the_row(message) || function.row_security.as_deref() == Some("on") {
        format!(
            "{who}. The function applies the table's policies (it sets row_security on), and a \
             policy of {table_name} refuses the row {owner} writes in this tool's session. If the \
             policy reads the caller's session (auth.uid(), auth.jwt(), current_setting('request…'), \
             current_user), the app's requests may pass where this session, which carries no \
             request's claims, does not; otherwise the app's writes that fire it are refused the \
             same way. Change the policy to admit the rows this function writes whoever calls it, \
             or {grant}"
        )
    } else {
        format!(
            "{who}. The tool's transaction runs with row_security off, so that no policy can hide \
             a row from its checks, and Postgres then refuses any statement row-level security \
             applies to instead of evaluating the policies, even ones the app's own writes pass. \
             For push and rollback, let the function apply {table_name}'s policies as it does for the app: \
             `ALTER FUNCTION {} SET row_security = on;` (as {owner} or a superuser; no change for \
             the app, whose sessions run with row_security on), or {grant}",
            function.signature
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, definer: bool, owner: &str, oid: u32) -> CatalogFunction {
        CatalogFunction {
            oid,
            signature: format!("public.{name}()"),
            security_definer: definer,
            owner: owner.into(),
            owner_bypasses: false,
            row_security: None,
            source: String::new(),
        }
    }

    fn found(schema: &str, f: CatalogFunction) -> (String, String, String, CatalogFunction) {
        let name = f.signature.split(['.', '(']).nth(1).unwrap().to_string();
        (schema.into(), name, String::new(), f)
    }

    #[test]
    fn the_innermost_security_definer_frame_is_the_role() {
        let stack = context_functions(
            "PL/pgSQL function write_audit() line 2 at SQL statement\n\
             SQL statement \"SELECT write_audit()\"\n\
             PL/pgSQL function audit_workflow() line 1 at PERFORM",
        );
        let inner = function("write_audit", true, "auditor", 2);
        let outer = function("audit_workflow", false, "app", 1);
        let catalog = [
            found("public", inner.clone()),
            found("public", outer.clone()),
        ];
        assert_eq!(
            definer_of(&stack, &catalog),
            Resolved::Definer(inner.clone(), vec![])
        );
        // A plain inner function inside a definer: the definer's owner.
        let plain = function("write_audit", false, "app", 2);
        let definer = function("audit_workflow", true, "auditor", 1);
        let catalog = [found("public", plain), found("public", definer.clone())];
        assert_eq!(
            definer_of(&stack, &catalog),
            Resolved::Definer(definer, vec![2])
        );
        // None: the tool's role.
        let catalog = [
            found("public", function("write_audit", false, "app", 2)),
            found("public", outer),
        ];
        assert_eq!(definer_of(&stack, &catalog), Resolved::None(vec![2, 1]));
    }

    #[test]
    fn the_callers_are_the_frames_out_that_call_the_next_one_in() {
        let stack = context_functions(
            "PL/pgSQL function write_audit(text) line 1 at SQL statement\n\
             SQL statement \"SELECT public.write_audit(NEW.id::text)\"\n\
             PL/pgSQL function audit_workflow() line 1 at PERFORM\n\
             SQL statement \"INSERT INTO public.workflows VALUES (1)\"\n\
             PL/pgSQL function add_workflow() line 1 at SQL statement",
        );
        let definer = function("write_audit", true, "auditor", 3);
        let mut caller = function("audit_workflow", false, "app", 2);
        caller.source = "BEGIN PERFORM public.write_audit(NEW.id::text); RETURN NULL; END".into();
        // Its INSERT fired the trigger whose function is audit_workflow():
        // no call, so no step of the chain.
        let mut writer = function("add_workflow", false, "app", 1);
        writer.source = "BEGIN INSERT INTO public.workflows VALUES (1); END".into();
        let with_args = |f: &CatalogFunction, args: &str| {
            let (schema, name, _, f) = found("public", f.clone());
            (schema, name, args.to_string(), f)
        };
        let catalog = [
            with_args(&definer, "text"),
            with_args(&caller, ""),
            with_args(&writer, ""),
        ];
        assert_eq!(callers_of(&stack, &catalog, 0), vec![caller.clone()]);
        // A call qualified with another schema is no call of it.
        let mut elsewhere = caller.clone();
        elsewhere.source = "BEGIN PERFORM admin.write_audit(NEW.id::text); END".into();
        let catalog = [with_args(&definer, "text"), with_args(&elsewhere, "")];
        assert_eq!(callers_of(&stack, &catalog, 0), vec![]);
        // A frame the catalog does not settle ends the chain.
        assert_eq!(callers_of(&stack, &catalog[..1], 0), vec![]);
    }

    #[test]
    fn a_frame_the_catalog_does_not_settle_is_unknown() {
        let stack = context_functions("PL/pgSQL function audit() line 2 at SQL statement");
        // Not found.
        assert_eq!(definer_of(&stack, &[]), Resolved::Unknown("audit()".into()));
        // Two schemas, one SECURITY DEFINER and one not.
        let catalog = [
            found("public", function("audit", true, "auditor", 1)),
            found("app", function("audit", false, "app", 2)),
        ];
        assert_eq!(
            definer_of(&stack, &catalog),
            Resolved::Unknown("audit()".into())
        );
        // Qualified in the context: the schema settles it.
        let stack = context_functions("PL/pgSQL function app.audit() line 2 at SQL statement");
        assert!(matches!(definer_of(&stack, &catalog), Resolved::None(_)));
    }

    #[test]
    fn the_table_is_read_from_the_message() {
        assert_eq!(
            policy_table_name(
                "query would be affected by row-level security policy for table \"audit_log\""
            )
            .as_deref(),
            Some("audit_log")
        );
        assert_eq!(
            policy_table_name(
                "new row violates row-level security policy \"p\" for table \"Odd\"\"\""
            )
            .as_deref(),
            Some("Odd\"")
        );
        assert_eq!(policy_table_name("permission denied for table t"), None);
    }

    #[test]
    fn the_explanation_names_the_owner_and_never_the_tools_role() {
        let f = function("audit_workflow", true, "auditor", 1);
        let table = PolicyTable {
            name: "public.audit_log".into(),
            owned_by_definer: true,
            forced: true,
        };
        let said = explain_definer(
            "query would be affected by row-level security policy for table \"audit_log\"",
            &f,
            &["trigger workflows_audit on public.workflows".into()],
            Some(&table),
        );
        for part in [
            "function public.audit_workflow() is SECURITY DEFINER, called by trigger \
             workflows_audit on public.workflows",
            "runs as its owner auditor",
            "auditor lacks BYPASSRLS and auditor owns public.audit_log, which forces",
            "ALTER FUNCTION public.audit_workflow() SET row_security = on;",
            "ALTER ROLE \"auditor\" BYPASSRLS;",
        ] {
            assert!(said.contains(part), "{part:?} not in {said}");
        }
        // The policy itself refused the row: no row_security advice.
        let said = explain_definer(
            "new row violates row-level security policy for table \"audit_log\"",
            &f,
            &[],
            None,
        );
        assert!(
            said.contains("a policy of table audit_log refuses the row"),
            "{said}"
        );
        assert!(!said.contains("SET row_security"), "{said}");
        // A policy on the request's claims (Supabase's auth.uid()) admits
        // the app's requests: not said to refuse them (h4's review).
        assert!(
            said.contains("the app's requests may pass where this session"),
            "{said}"
        );
        assert!(!said.contains("would be refused the same way"), "{said}");
    }
}
