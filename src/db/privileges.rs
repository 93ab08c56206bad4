//! What the connected role must be allowed to do for a push or rollback,
//! asked of Postgres (`has_table_privilege`, ownership, schema and database
//! CREATE) before any lock is taken, so a missing grant is named up front
//! instead of surfacing half-way through the transaction.

use anyhow::Result;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::plan::checks::{Check, CheckKind};

/// One thing the role must be allowed to do.
#[derive(Debug, Clone)]
pub enum Need {
    /// Any of the comma-separated privileges on `schema.table`
    /// (`has_table_privilege` semantics). Skipped when the table does not
    /// exist yet (the push creates it).
    Table {
        table: String,
        privilege: &'static str,
        why: String,
    },
    /// Membership in the table's owner role: ALTER TABLE (add or drop a
    /// column, disable a trigger) and DROP TABLE need it.
    Owner { table: String, why: String },
    /// CREATE on a schema that exists, or on the database when it does not.
    CreateIn { schema: String, why: String },
    /// Using a column's type as the push spells it (`app_types.mood`,
    /// `citext[]`, as the snapshot or target.json has it): USAGE on the
    /// type's schema (Postgres looks the name up there for every cast and
    /// column definition) and on the type. Without it the statement fails
    /// mid-transaction, with the locks already taken. A spelling that names
    /// no type found here is skipped (the push's own statements name it).
    TypeUsage { spelling: String, why: String },
    /// Any of the comma-separated privileges on a sequence (`sequence`,
    /// quoted `schema.name`) that numbers `column` (`table.column`): USAGE
    /// for `nextval()` in a column's default, SELECT for the dry run to
    /// read where it stands. Without it the statement fails after the
    /// locks, as "permission denied for sequence".
    Sequence {
        sequence: String,
        column: String,
        privilege: &'static str,
        why: String,
    },
    /// Reading, through their foreign keys, the tables in any schema that
    /// reference `table` (`schema.table`): USAGE on each one's schema and
    /// SELECT on its key columns. Without it the rollback's check for rows
    /// pointing at the rows it deletes fails with a raw "permission denied
    /// for schema" (a schema of the app's the owner role may not use).
    ReadReferencing { table: String, why: String },
}

/// The type a spelling names, for [`Need::TypeUsage`]: `(schema, name)`,
/// schema `None` when unqualified; typmods and `[]` dropped. Parsed here,
/// not by Postgres: `to_regtype('app_types.mood')` raises "permission
/// denied for schema" for exactly the role this check is for, and a
/// malformed spelling must not end the check. `None` when it does not
/// start with an identifier (the statement using it names it).
pub fn type_name_parts(spelling: &str) -> Option<(Option<String>, String)> {
    fn ident(s: &str) -> Option<(String, &str)> {
        if let Some(rest) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if rest[i + 1..].starts_with('"') {
                        out.push('"');
                        chars.next();
                    } else {
                        return Some((out, &rest[i + 1..]));
                    }
                } else {
                    out.push(c);
                }
            }
            None
        } else {
            let end = s
                .char_indices()
                .find(|(i, c)| !(c.is_alphanumeric() || *c == '_' || (*i > 0 && *c == '$')))
                .map_or(s.len(), |(i, _)| i);
            let first = s.chars().next()?;
            if end == 0 || first.is_ascii_digit() || first == '$' {
                return None;
            }
            Some((s[..end].to_lowercase(), &s[end..]))
        }
    }
    let (first, rest) = ident(spelling.trim())?;
    match rest.strip_prefix('.') {
        Some(rest) => {
            let (second, _) = ident(rest)?;
            Some((Some(first), second))
        }
        None => Some((None, first)),
    }
}

/// For [`Need::TypeUsage`], one row per lack, given `$1` the schema as
/// spelled (NULL when unqualified) and `$2` the type's name: the schema,
/// the type (`schema.name`) and which of the two lacks USAGE, and the
/// role. An unqualified name is the type the pinned search_path would
/// find: `pg_catalog` first, then `public`, `extensions` (whose lack of
/// USAGE makes Postgres skip the schema and miss the type).
const TYPE_USAGE_SQL: &str = "\
SELECT n.nspname::text, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname), \
       NOT pg_catalog.has_schema_privilege(n.oid, 'USAGE'), \
       NOT pg_catalog.has_type_privilege(t.oid, 'USAGE'), current_user::text \
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
WHERE t.typname = $2 \
  AND CASE WHEN $1::text IS NULL THEN n.nspname IN ('pg_catalog', 'public', 'extensions') \
           ELSE n.nspname = $1::text END \
ORDER BY array_position(ARRAY['pg_catalog', 'public', 'extensions'], n.nspname::text) \
LIMIT 1";

/// For [`Need::ReadReferencing`], one row per foreign key referencing
/// `$1`: the referencing table's schema, the table (quoted), the
/// constraint, whether the role lacks USAGE on the schema, whether it lacks
/// SELECT on a key column, and the role. Asked by OID: naming a table in a
/// schema the role may not use raises the very error this check is for.
const REFERENCING_SQL: &str = "\
SELECT rn.nspname::text, \
       pg_catalog.quote_ident(rn.nspname) || '.' || pg_catalog.quote_ident(rc.relname), \
       con.conname::text, NOT pg_catalog.has_schema_privilege(rn.oid, 'USAGE'), \
       NOT coalesce((SELECT bool_and(pg_catalog.has_column_privilege(con.conrelid, k, 'SELECT')) \
                     FROM unnest(con.conkey) k), true), \
       current_user::text \
FROM pg_catalog.pg_constraint con \
JOIN pg_catalog.pg_class rc ON rc.oid = con.conrelid \
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
WHERE con.contype = 'f' AND con.confrelid = pg_catalog.to_regclass($1) \
ORDER BY 1, 2, 3";

/// One check listing every need the role lacks.
pub async fn privilege_check(tx: &Transaction<'_>, phase: &str, needs: &[Need]) -> Result<Check> {
    // One query per need, all sent at once: tokio-postgres pipelines them
    // on the connection, so the check costs one round trip, not one per
    // need.
    let one = |need: &Need| {
        let need = need.clone();
        async move {
            let mut missing = Vec::new();
            match &need {
                Need::Table {
                    table,
                    privilege,
                    why,
                } => {
                    let row = tx
                        .query_typed(
                            "SELECT CASE WHEN pg_catalog.to_regclass($1) IS NULL THEN true \
                                ELSE pg_catalog.has_table_privilege($1, $2) END",
                            &[(table, Type::TEXT), (privilege, Type::TEXT)],
                        )
                        .await?;
                    if !row[0].get::<_, bool>(0) {
                        missing.push(format!(
                            "{privilege} on {table} (to {why})",
                            privilege = privilege.replace(',', " or ")
                        ));
                    }
                }
                Need::Owner { table, why } => {
                    let row = tx
                        .query_typed(
                            "SELECT CASE WHEN pg_catalog.to_regclass($1) IS NULL THEN NULL \
                                ELSE pg_catalog.pg_has_role(c.relowner, 'USAGE') END, \
                                pg_catalog.pg_get_userbyid(c.relowner)::text \
                         FROM (SELECT pg_catalog.to_regclass($1) AS oid) r \
                         LEFT JOIN pg_catalog.pg_class c ON c.oid = r.oid",
                            &[(table, Type::TEXT)],
                        )
                        .await?;
                    if row[0].get::<_, Option<bool>>(0) == Some(false) {
                        let owner: Option<String> = row[0].get(1);
                        missing.push(format!(
                            "ownership of {table} (owned by {}; to {why})",
                            owner.unwrap_or_default()
                        ));
                    }
                }
                Need::CreateIn { schema, why } => {
                    let row = tx
                    .query_typed(
                        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) \
                                THEN pg_catalog.has_schema_privilege($1, 'CREATE') \
                                ELSE pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') END, \
                                EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
                        &[(schema, Type::TEXT)],
                    )
                    .await?;
                    if !row[0].get::<_, bool>(0) {
                        missing.push(if row[0].get::<_, bool>(1) {
                            format!("CREATE on schema {schema} (to {why})")
                        } else {
                            format!("CREATE on this database, for schema {schema} (to {why})")
                        });
                    }
                }
                Need::TypeUsage { spelling, why } => {
                    let Some((schema, name)) = type_name_parts(spelling) else {
                        return Ok(missing);
                    };
                    let rows = tx
                        .query_typed(
                            TYPE_USAGE_SQL,
                            &[(&schema, Type::TEXT), (&name, Type::TEXT)],
                        )
                        .await?;
                    if let Some(r) = rows.first() {
                        let (schema, ty, no_schema, no_type, role): (
                            String,
                            String,
                            bool,
                            bool,
                            String,
                        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                        let role = crate::types::quote_ident(&role);
                        if no_schema {
                            missing.push(format!(
                                "USAGE on schema {schema}, which holds type {ty} (to {why}): \
                                 GRANT USAGE ON SCHEMA {} TO {role}",
                                crate::types::quote_ident(&schema)
                            ));
                        }
                        if no_type {
                            missing.push(format!(
                                "USAGE on type {ty} (to {why}): GRANT USAGE ON TYPE {ty} TO {role}"
                            ));
                        }
                    }
                }
                Need::Sequence {
                    sequence,
                    column,
                    privilege,
                    why,
                } => {
                    let row = tx
                        .query_typed(
                            "SELECT CASE WHEN pg_catalog.to_regclass($1) IS NULL THEN true \
                                ELSE pg_catalog.has_sequence_privilege($1, $2) END, \
                                pg_catalog.pg_get_userbyid(c.relowner)::text, current_user::text \
                         FROM (SELECT pg_catalog.to_regclass($1) AS oid) r \
                         LEFT JOIN pg_catalog.pg_class c ON c.oid = r.oid",
                            &[(sequence, Type::TEXT), (privilege, Type::TEXT)],
                        )
                        .await?;
                    if !row[0].get::<_, bool>(0) {
                        let (owner, role): (Option<String>, String) =
                            (row[0].get(1), row[0].get(2));
                        let first = privilege.split(',').next().unwrap_or(privilege);
                        missing.push(format!(
                            "{privileges} on sequence {sequence}, which numbers {column} (owned \
                             by {owner}; to {why}): GRANT {first} ON SEQUENCE {sequence} TO {role}",
                            privileges = privilege.replace(',', " or "),
                            owner = owner.unwrap_or_default(),
                            role = crate::types::quote_ident(&role),
                        ));
                    }
                }
                Need::ReadReferencing { table, why } => {
                    let rows = tx
                        .query_typed(REFERENCING_SQL, &[(table, Type::TEXT)])
                        .await?;
                    for r in &rows {
                        let (schema, from, constraint, no_usage, no_select, role): (
                            String,
                            String,
                            String,
                            bool,
                            bool,
                            String,
                        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                        let role = crate::types::quote_ident(&role);
                        let through =
                            format!("its foreign key {constraint} references {table}; to {why}");
                        if no_usage {
                            missing.push(format!(
                                "USAGE on schema {schema}, which holds {from} ({through}): \
                                 GRANT USAGE ON SCHEMA {} TO {role}",
                                crate::types::quote_ident(&schema)
                            ));
                        }
                        if no_select {
                            missing.push(format!(
                                "SELECT on {from} ({through}): GRANT SELECT ON {from} TO {role}"
                            ));
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>(missing)
        }
    };
    // Who Postgres checks, sent with the needs (no round trip of its own).
    let (found, roles) = futures_util::join!(
        futures_util::future::try_join_all(needs.iter().map(one)),
        tx.query_typed(ROLES_SQL, &[])
    );
    let roles = roles?;
    let mut missing: Vec<String> = Vec::new();
    for m in found?.into_iter().flatten() {
        // Two columns of one type lack the same grant: said once.
        if !missing.contains(&m) {
            missing.push(m);
        }
    }
    let mut c = Check::no_rows(
        phase,
        "the role holds every privilege the transaction needs",
        CheckKind::Integrity,
        missing,
    );
    c.expected = "no missing privilege".into();
    c.actual = format!("{} missing", c.row_count);
    if !c.ok {
        let (current, session): (String, String) = (roles[0].get(0), roles[0].get(1));
        c.rows.push(checked_for(&current, &session));
    }
    Ok(c)
}

/// The role Postgres checks privileges for (`current_user`) and the role
/// the connection logged in as (`session_user`).
pub const ROLES_SQL: &str = "SELECT current_user::text, session_user::text";

/// Whom missing privileges are to be granted to: the role the transaction
/// runs as, which Postgres checks. A `SET ROLE` in effect — one a pooler
/// left on a reused server session (pgbouncer in session mode), or one set
/// for the login with `ALTER ROLE … SET role` — makes it another role than
/// the login's, and a grant to the login changes nothing; said so when the
/// two differ.
pub fn checked_for(current: &str, session: &str) -> String {
    if current == session {
        return format!(
            "these are checked for role {current}, the role the connection logged in as: grant \
             them to {current}"
        );
    }
    format!(
        "these are checked for role {current}, which the transaction runs as (current_user), \
         {}",
        set_role_note(current, session)
    )
}

/// What a `SET ROLE` between the login role `session` and the role the
/// transaction runs as, `current`, means for the advice (see
/// [`checked_for`]).
pub fn set_role_note(current: &str, session: &str) -> String {
    format!(
        "not for {session}, the role the connection logged in as (session_user): a SET ROLE is in \
         effect, left on this server connection (a pooler such as pgbouncer reuses sessions) or \
         set for the login with `ALTER ROLE {session_q} SET role`. Grant them to {current}, or end \
         the SET ROLE (`RESET ROLE` on that connection, `ALTER ROLE {session_q} RESET role`) to \
         run as {session}",
        session_q = crate::types::quote_ident(session)
    )
}

#[cfg(test)]
mod tests {
    use super::type_name_parts;

    #[test]
    fn a_type_spelling_is_split_into_schema_and_name() {
        let q = |s: &str, n: &str| Some((Some(s.to_string()), n.to_string()));
        assert_eq!(type_name_parts("app_types.mood"), q("app_types", "mood"));
        assert_eq!(type_name_parts("app_types.mood[]"), q("app_types", "mood"));
        assert_eq!(
            type_name_parts("\"My Types\".\"Mo\"\"od\"[]"),
            q("My Types", "Mo\"od")
        );
        assert_eq!(type_name_parts("App.Mood"), q("app", "mood"));
        assert_eq!(
            type_name_parts("character varying(20)"),
            Some((None, "character".into()))
        );
        assert_eq!(type_name_parts("citext"), Some((None, "citext".into())));
        assert_eq!(
            type_name_parts("numeric(10,2)[]"),
            Some((None, "numeric".into()))
        );
        for bad in ["", "1abc", "\"open", "(x)", "a.\"open"] {
            assert_eq!(type_name_parts(bad), None, "{bad}");
        }
    }
}
