//! What else in the database leans on the rows and objects a rollback would
//! remove: foreign keys in any schema that reference pushed rows (CASCADE,
//! SET NULL and RESTRICT alike — a rollback that let them act would destroy
//! app data it never wrote), and objects recorded in `pg_depend` (views,
//! constraints, policies …) on the tables and columns it would drop.

use anyhow::Result;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::types::quote_ident;

/// A table whose pushed rows a rollback would delete; their keys are in a
/// temporary table `keys_table` with text columns `k_<key column>`.
#[derive(Debug, Clone)]
pub struct PushedRows {
    pub table: String,
    pub key: Vec<String>,
    pub key_types: Vec<String>,
    pub keys_table: String,
}

impl PushedRows {
    /// `alias.k = keys.k_k::type AND …`
    pub fn join(&self, alias: &str, keys: &str) -> String {
        self.key
            .iter()
            .zip(&self.key_types)
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
}

/// Rows of any table, in any schema, that reference a pushed row through a
/// foreign key, other than rows the rollback removes itself (pushed rows,
/// and rows of tables it drops). One line per constraint: referencing
/// table, constraint, action, count and the first pushed keys referenced.
pub async fn rows_referencing(
    tx: &Transaction<'_>,
    pushed: &[PushedRows],
    dropped_tables: &[String],
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for p in pushed {
        let fks = tx
            .query_typed(
                "SELECT con.conname::text, rn.nspname::text, rc.relname::text, \
                        (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), \
                        (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n), \
                        con.confdeltype::text \
                 FROM pg_catalog.pg_constraint con \
                 JOIN pg_catalog.pg_class rc ON rc.oid = con.conrelid \
                 JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
                 WHERE con.contype = 'f' AND con.confrelid = pg_catalog.to_regclass($1) \
                 ORDER BY 2, 3, 1",
                &[(&format!("public.{}", quote_ident(&p.table)), Type::TEXT)],
            )
            .await?;
        for fk in &fks {
            let conname: String = fk.get(0);
            let schema: String = fk.get(1);
            let table: String = fk.get(2);
            let cols: Vec<String> = fk.get(3);
            let ref_cols: Vec<String> = fk.get(4);
            let action = match fk.get::<_, String>(5).as_str() {
                "c" => "ON DELETE CASCADE",
                "n" => "ON DELETE SET NULL",
                "d" => "ON DELETE SET DEFAULT",
                "r" => "ON DELETE RESTRICT",
                _ => "ON DELETE NO ACTION",
            };
            if schema == "public" && dropped_tables.contains(&table) {
                continue;
            }
            let on = cols
                .iter()
                .zip(&ref_cols)
                .map(|(c, rc)| format!("r.{} = p.{}", quote_ident(c), quote_ident(rc)))
                .collect::<Vec<_>>()
                .join(" AND ");
            // Rows the rollback deletes itself (a pushed row referencing
            // another pushed row) do not block it.
            let own = pushed
                .iter()
                .find(|o| schema == "public" && o.table == table)
                .map(|o| {
                    format!(
                        " AND NOT EXISTS (SELECT 1 FROM {} o WHERE {})",
                        quote_ident(&o.keys_table),
                        o.join("r", "o")
                    )
                })
                .unwrap_or_default();
            let key_text = p
                .key
                .iter()
                .map(|k| format!("p.{}::text", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT count(*)::int8, \
                        coalesce((array_agg(DISTINCT concat_ws(', ', {key_text})))[1:5], '{{}}')::text[] \
                 FROM {}.{} r JOIN public.{} p ON {on} JOIN {} u ON {} WHERE true{own}",
                quote_ident(&schema),
                quote_ident(&table),
                quote_ident(&p.table),
                quote_ident(&p.keys_table),
                p.join("p", "u"),
            );
            let row = tx.query_one(&sql, &[]).await?;
            let n: i64 = row.get(0);
            if n > 0 {
                let keys: Vec<String> = row.get(1);
                found.push(format!(
                    "{n} rows of {schema}.{table} reference pushed rows of {} through constraint {conname} \
                     ({action}); referenced {} keys include {}",
                    p.table,
                    p.table,
                    keys.join(" | ")
                ));
            }
        }
    }
    Ok(found)
}

/// Objects that depend (per `pg_depend`) on a table or column the rollback
/// would drop, other than objects that go with the drop themselves: views,
/// foreign keys from other tables, policies, …, each described by Postgres.
pub async fn objects_depending(
    tx: &Transaction<'_>,
    dropped_tables: &[String],
    dropped_columns: &[(String, String)],
) -> Result<Vec<String>> {
    let tables: Vec<String> = dropped_tables
        .iter()
        .map(|t| format!("public.{}", quote_ident(t)))
        .collect();
    let col_tables: Vec<String> = dropped_columns
        .iter()
        .map(|(t, _)| format!("public.{}", quote_ident(t)))
        .collect();
    let col_names: Vec<String> = dropped_columns.iter().map(|(_, c)| c.clone()).collect();
    let rows = tx
        .query_typed(
            "WITH dropped AS ( \
               SELECT pg_catalog.to_regclass(t) AS rel, 0::int2 AS att FROM unnest($1::text[]) t \
               UNION ALL \
               SELECT pg_catalog.to_regclass(c.t), a.attnum FROM unnest($2::text[], $3::text[]) c(t, n) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(c.t) AND a.attname = c.n \
             ), deps AS ( \
               SELECT d.classid, d.objid, d.objsubid, x.rel, x.att, \
                 CASE d.classid \
                   WHEN 'pg_catalog.pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = d.objid) \
                   WHEN 'pg_catalog.pg_constraint'::regclass THEN (SELECT conrelid FROM pg_catalog.pg_constraint WHERE oid = d.objid) \
                   WHEN 'pg_catalog.pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid = d.objid) \
                   WHEN 'pg_catalog.pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid = d.objid) \
                   WHEN 'pg_catalog.pg_policy'::regclass THEN (SELECT polrelid FROM pg_catalog.pg_policy WHERE oid = d.objid) \
                   WHEN 'pg_catalog.pg_class'::regclass THEN d.objid \
                 END AS owner_rel \
               FROM pg_catalog.pg_depend d JOIN dropped x ON d.refclassid = 'pg_catalog.pg_class'::regclass \
                 AND d.refobjid = x.rel AND (x.att = 0 OR d.refobjsubid = x.att) \
               WHERE d.deptype = 'n' \
             ) \
             SELECT DISTINCT CASE WHEN deps.classid = 'pg_catalog.pg_rewrite'::regclass \
                      AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = deps.owner_rel) IN ('v', 'm') \
                    THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, deps.owner_rel, 0) \
                    ELSE pg_catalog.pg_describe_object(deps.classid, deps.objid, deps.objsubid) END, \
                    pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, deps.rel, deps.att) \
             FROM deps \
             WHERE (deps.owner_rel IS NULL OR deps.owner_rel NOT IN (SELECT rel FROM dropped WHERE att = 0)) \
               AND NOT EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_depend d2 JOIN dropped y ON d2.refclassid = 'pg_catalog.pg_class'::regclass \
                   AND d2.refobjid = y.rel AND (y.att = 0 OR d2.refobjsubid = y.att) \
                 WHERE d2.classid = deps.classid AND d2.objid = deps.objid AND d2.deptype IN ('a', 'i')) \
             ORDER BY 2, 1",
            &[
                (&tables, Type::TEXT_ARRAY),
                (&col_tables, Type::TEXT_ARRAY),
                (&col_names, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "{} depends on {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1)
            )
        })
        .collect())
}
