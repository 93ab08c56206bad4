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
}

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
            }
            Ok::<_, anyhow::Error>(missing)
        }
    };
    let missing: Vec<String> = futures_util::future::try_join_all(needs.iter().map(one))
        .await?
        .into_iter()
        .flatten()
        .collect();
    let mut c = Check::no_rows(
        phase,
        "the role holds every privilege the transaction needs",
        CheckKind::Integrity,
        missing,
    );
    c.expected = "no missing privilege".into();
    c.actual = format!("{} missing", c.row_count);
    Ok(c)
}
