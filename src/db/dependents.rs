//! What else in the database leans on the rows and objects a rollback would
//! remove: foreign keys in any schema that reference pushed rows (CASCADE,
//! SET NULL and RESTRICT alike — a rollback that let them act would destroy
//! app data it never wrote), and objects recorded in `pg_depend` (views,
//! constraints, policies …) on the tables and columns it would drop.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use crate::db::postgres::rowset::RowSet;
use crate::db::postgres::search_path::TypeSpellings;
use crate::types::quote_ident;

/// A table whose pushed rows a rollback would delete; their keys are the
/// rows of `keys`, text columns `k_<key column>` numbered by `row_n`,
/// carried inside each statement (no temporary table, so no DDL for an
/// event trigger to log).
#[derive(Debug, Clone)]
pub struct PushedRows {
    pub table: String,
    pub key: Vec<String>,
    pub key_types: Vec<String>,
    pub keys: RowSet,
}

impl PushedRows {
    /// `alias.k = keys.k_k::type AND …`, types and `=` spelled by `types`.
    pub fn join(&self, types: &TypeSpellings, alias: &str, keys: &str) -> Result<String> {
        Ok(self
            .key
            .iter()
            .zip(&self.key_types)
            .map(|(k, ty)| {
                types.matches(
                    &format!("{alias}.{}", quote_ident(k)),
                    &format!("{keys}.{}", quote_ident(&format!("k_{k}"))),
                    ty,
                )
            })
            .collect::<Result<Vec<_>>>()?
            .join(" AND "))
    }
}

/// Rows of an app table that the push's own allowed side effect wrote
/// (a trigger's history row for each pushed workflow), referencing rows
/// the push inserted through an `ON DELETE CASCADE` foreign key: the
/// rollback's delete of the pushed rows takes them with it, which undoes
/// exactly what the push did there. Each row is kept as the MD5 of its
/// text (under the pinned session settings), so a row the app changed
/// since is no longer the push's, and one it added never was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnReferencing {
    /// `schema.table` holding the rows.
    pub table: String,
    /// The foreign key's name.
    pub constraint: String,
    /// The pushed table it references (public).
    pub references: String,
    /// `md5(row::text)` of each row, sorted.
    pub rows: Vec<String>,
}

/// Rows of referencing tables a rollback takes with the pushed rows they
/// reference, because the push wrote them ([`OwnReferencing`]): per
/// table and foreign key, how many are there now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cascaded {
    pub table: String,
    pub constraint: String,
    pub rows: u64,
}

/// A foreign key of any table, in any schema, into a pushed table.
struct KeyInto {
    name: String,
    schema: String,
    table: String,
    columns: Vec<String>,
    ref_columns: Vec<String>,
    /// `ON DELETE CASCADE`, …
    action: &'static str,
    validated: bool,
}

impl KeyInto {
    fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// `FROM` the referencing rows `r` of the pushed rows `p` of `pushed`
    /// (keys `u`).
    fn referencing_rows(&self, pushed: &PushedRows, types: &TypeSpellings) -> Result<String> {
        let on = self
            .columns
            .iter()
            .zip(&self.ref_columns)
            .map(|(c, rc)| format!("r.{} = p.{}", quote_ident(c), quote_ident(rc)))
            .collect::<Vec<_>>()
            .join(" AND ");
        Ok(format!(
            "{}.{} r JOIN public.{} p ON {on} JOIN {} ON {}",
            quote_ident(&self.schema),
            quote_ident(&self.table),
            quote_ident(&pushed.table),
            pushed.keys.from_item("u"),
            pushed.join(types, "p", "u")?,
        ))
    }
}

/// The foreign keys into `public.table`. A partitioned table's foreign key
/// is cloned onto each of its partitions (`conparentid` set): the parent's
/// alone, read through the parent, counts each row once (F7: the same rows
/// were listed under the parent and again under the partition).
async fn keys_into(tx: &Transaction<'_>, table: &str) -> Result<Vec<KeyInto>> {
    let rows = tx
        .query_typed(
            "SELECT con.conname::text, rn.nspname::text, rc.relname::text, \
                    (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), \
                    (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n), \
                    con.confdeltype::text, con.convalidated \
             FROM pg_catalog.pg_constraint con \
             JOIN pg_catalog.pg_class rc ON rc.oid = con.conrelid \
             JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
             WHERE con.contype = 'f' AND con.confrelid = pg_catalog.to_regclass($1) \
               AND con.conparentid = 0 \
             ORDER BY 2, 3, 1",
            &[(&format!("public.{}", quote_ident(table)), Type::TEXT)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|fk| KeyInto {
            name: fk.get(0),
            schema: fk.get(1),
            table: fk.get(2),
            columns: fk.get(3),
            ref_columns: fk.get(4),
            action: match fk.get::<_, String>(5).as_str() {
                "c" => "ON DELETE CASCADE",
                "n" => "ON DELETE SET NULL",
                "d" => "ON DELETE SET DEFAULT",
                "r" => "ON DELETE RESTRICT",
                _ => "ON DELETE NO ACTION",
            },
            validated: fk.get(6),
        })
        .collect())
}

/// In the push's transaction, after its writes: the rows of `side_tables`
/// (its allowed side effects, `schema.table`) that reference rows it
/// inserted through a validated `ON DELETE CASCADE` foreign key. Every
/// such row is this transaction's own: the rows it references did not
/// exist before it, and no other session sees them yet. Read under the
/// pinned settings, as the rollback reads them.
pub async fn own_referencing_rows(
    tx: &Transaction<'_>,
    pushed: &[PushedRows],
    side_tables: &[String],
) -> Result<Vec<OwnReferencing>> {
    let pinned = TypeSpellings::pinned();
    let mut out = Vec::new();
    for p in pushed {
        for fk in keys_into(tx, &p.table).await? {
            if fk.action != "ON DELETE CASCADE"
                || !fk.validated
                || !side_tables.contains(&fk.qualified())
                || pushed
                    .iter()
                    .any(|o| fk.schema == "public" && o.table == fk.table)
            {
                continue;
            }
            let sql = format!(
                "SELECT md5(r::text) FROM {} ORDER BY 1",
                fk.referencing_rows(p, &pinned)?
            );
            let rows: Vec<String> = tx
                .query(&sql, &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !rows.is_empty() {
                out.push(OwnReferencing {
                    table: fk.qualified(),
                    constraint: fk.name,
                    references: p.table.clone(),
                    rows,
                });
            }
        }
    }
    Ok(out)
}

/// Rows of any table, in any schema, that reference a pushed row through a
/// foreign key, other than rows the rollback removes itself (pushed rows,
/// rows of tables it drops, and rows the push's own side effect wrote that
/// an `ON DELETE CASCADE` takes with the pushed rows, `own`) and keys on
/// columns it drops (`(table, column)` in public: a column the push added,
/// such as a `parent_id` the push pointed at its own new rows, goes before
/// any row is deleted). One line per constraint: referencing table,
/// constraint, action, count and the first pushed keys referenced; and
/// the rows of `own` found, which the undo's delete takes with it.
/// `restored` holds, per column, the rows whose value there the rollback
/// writes back (the push's own update): a reference through such columns
/// is the push's and goes before the row it points at.
pub async fn rows_referencing(
    tx: &Transaction<'_>,
    pushed: &[PushedRows],
    dropped_tables: &[String],
    dropped_columns: &[(String, String)],
    restored: &[(String, PushedRows)],
    own: &[OwnReferencing],
) -> Result<(Vec<String>, Vec<Cascaded>)> {
    // Read under the pinned path: the receipt's spellings hold there.
    let pinned = TypeSpellings::pinned();
    let mut found = Vec::new();
    let mut cascaded = Vec::new();
    for p in pushed {
        for fk in keys_into(tx, &p.table).await? {
            let (conname, schema, table, cols) = (&fk.name, &fk.schema, &fk.table, &fk.columns);
            let action = fk.action;
            if schema == "public"
                && (dropped_tables.contains(table)
                    || cols
                        .iter()
                        .any(|c| dropped_columns.contains(&(table.clone(), c.clone()))))
            {
                continue;
            }
            // Rows the rollback deletes itself (a pushed row referencing
            // another pushed row) do not block it.
            let own_rows = pushed
                .iter()
                .find(|o| schema == "public" && &o.table == table)
                .map(|o| {
                    Ok::<_, anyhow::Error>(format!(
                        " AND NOT EXISTS (SELECT 1 FROM {} WHERE {})",
                        o.keys.from_item("o"),
                        o.join(&pinned, "r", "o")?
                    ))
                })
                .transpose()?
                .unwrap_or_default();
            // Rows whose referencing columns the rollback restores.
            let own_pointers: Option<Vec<&PushedRows>> = cols
                .iter()
                .map(|c| {
                    restored
                        .iter()
                        .find(|(col, o)| schema == "public" && &o.table == table && col == c)
                        .map(|(_, o)| o)
                })
                .collect();
            let own_rows = match own_pointers {
                Some(sets) => {
                    let each = sets
                        .iter()
                        .map(|o| {
                            Ok::<_, anyhow::Error>(format!(
                                "EXISTS (SELECT 1 FROM {} WHERE {})",
                                o.keys.from_item("o"),
                                o.join(&pinned, "r", "o")?
                            ))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    format!("{own_rows} AND NOT ({})", each.join(" AND "))
                }
                None => own_rows,
            };
            // Rows the push's side effect wrote, as it wrote them: the
            // cascade of the undo's delete takes them back.
            let written = own
                .iter()
                .filter(|o| {
                    action == "ON DELETE CASCADE"
                        && o.table == fk.qualified()
                        && &o.constraint == conname
                        && o.references == p.table
                })
                .flat_map(|o| &o.rows)
                .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                .map(|h| format!("'{h}'"))
                .collect::<Vec<_>>();
            let pushed_by_us = if written.is_empty() {
                "false".to_string()
            } else {
                format!("md5(r::text) = ANY(ARRAY[{}])", written.join(", "))
            };
            let key_text = p
                .key
                .iter()
                .map(|k| format!("p.{}::text", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT count(*) FILTER (WHERE NOT {pushed_by_us})::int8, \
                        coalesce((array_agg(DISTINCT concat_ws(', ', {key_text})) \
                                  FILTER (WHERE NOT {pushed_by_us}))[1:5], '{{}}')::text[], \
                        count(*) FILTER (WHERE {pushed_by_us})::int8 \
                 FROM {} WHERE true{own_rows}",
                fk.referencing_rows(p, &pinned)?,
            );
            let row = tx.query_one(&sql, &[]).await?;
            let n: i64 = row.get(0);
            if n > 0 {
                let keys: Vec<String> = row.get(1);
                found.push(format!(
                    "{} of {schema}.{table} {} pushed rows of {} through constraint {conname} \
                     ({action}){}; referenced {} keys include {}",
                    crate::words::rows(n),
                    if n == 1 { "references" } else { "reference" },
                    p.table,
                    if written.is_empty() {
                        String::new()
                    } else {
                        " that the push did not write (the rows its own side effect wrote there, \
                          as it wrote them, would go with the undo)"
                            .to_string()
                    },
                    p.table,
                    keys.join(" | ")
                ));
            }
            let taken: i64 = row.get(2);
            if taken > 0 {
                cascaded.push(Cascaded {
                    table: fk.qualified(),
                    constraint: conname.clone(),
                    rows: taken as u64,
                });
            }
        }
    }
    Ok((found, cascaded))
}

/// Objects that depend (per `pg_depend`, normal and automatic
/// dependencies alike) on a table or column the rollback would drop, or on
/// the row type of a table it drops or an array of it (a function taking
/// it, a domain or composite type over it; the columns of tables of that
/// type are [`row_type_dependents`]'s): views,
/// foreign keys from other tables, policies, and the app's own indexes,
/// CHECK constraints, extended statistics, defaults, triggers … that the
/// drop would take with it. Only the objects the push itself created, as
/// its DDL in the receipt (`push_ddl`) shows them, go with the drop: the
/// constraints of a created table, and the foreign key of an added column.
/// Each object is described by Postgres.
pub async fn objects_depending(
    tx: &Transaction<'_>,
    dropped_tables: &[String],
    dropped_columns: &[(String, String)],
    push_ddl: &[String],
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
               SELECT DISTINCT d.classid, d.objid, d.objsubid, 'pg_catalog.pg_class'::regclass AS refclass, \
                      x.rel AS ref, x.att AS refsub \
               FROM pg_catalog.pg_depend d JOIN dropped x ON d.refclassid = 'pg_catalog.pg_class'::regclass \
                 AND d.refobjid = x.rel AND (x.att = 0 OR d.refobjsubid = x.att) \
               WHERE d.deptype IN ('n', 'a') \
               UNION \
               SELECT d.classid, d.objid, d.objsubid, 'pg_catalog.pg_type'::regclass, d.refobjid, 0::int2 \
               FROM pg_catalog.pg_depend d JOIN dropped x ON x.att = 0 \
               JOIN pg_catalog.pg_class c ON c.oid = x.rel \
               JOIN pg_catalog.pg_type t ON t.oid = c.reltype \
               WHERE d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid IN (t.oid, t.typarray) \
                 AND d.deptype IN ('n', 'a') \
                 AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid > 0 \
                          AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) IN ('r', 'p', 'm')) \
             ) \
             SELECT DISTINCT CASE WHEN deps.classid = 'pg_catalog.pg_rewrite'::regclass \
                      AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = r.ev_class) IN ('v', 'm') \
                    THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, r.ev_class, 0) \
                    ELSE pg_catalog.pg_describe_object(deps.classid, deps.objid, deps.objsubid) END, \
                    pg_catalog.pg_describe_object(deps.refclass, deps.ref, deps.refsub), \
                    con.contype::text, cn.nspname::text, cr.relname::text, \
                    (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), \
                    fn.nspname::text, fr.relname::text, \
                    (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n) \
             FROM deps \
             LEFT JOIN pg_catalog.pg_rewrite r ON deps.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = deps.objid \
             LEFT JOIN pg_catalog.pg_constraint con ON deps.classid = 'pg_catalog.pg_constraint'::regclass \
               AND con.oid = deps.objid \
             LEFT JOIN pg_catalog.pg_class cr ON cr.oid = con.conrelid \
             LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = cr.relnamespace \
             LEFT JOIN pg_catalog.pg_class fr ON fr.oid = con.confrelid \
             LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fr.relnamespace \
             ORDER BY 2, 1",
            &[
                (&tables, Type::TEXT_ARRAY),
                (&col_tables, Type::TEXT_ARRAY),
                (&col_names, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    let mut found = Vec::new();
    for r in &rows {
        let constraint = r.get::<_, Option<String>>(2).map(|contype| PushConstraint {
            contype,
            schema: r.get::<_, Option<String>>(3).unwrap_or_default(),
            table: r.get::<_, Option<String>>(4).unwrap_or_default(),
            columns: r.get::<_, Option<Vec<String>>>(5).unwrap_or_default(),
            ref_schema: r.get::<_, Option<String>>(6),
            ref_table: r.get::<_, Option<String>>(7),
            ref_columns: r.get::<_, Option<Vec<String>>>(8).unwrap_or_default(),
        });
        if constraint.is_some_and(|c| c.created_by(push_ddl, dropped_tables, dropped_columns)) {
            continue;
        }
        let line = format!(
            "{} depends on {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1)
        );
        // One line per object and what it leans on (a CHECK constraint
        // depends on its column both normally and automatically).
        if !found.contains(&line) {
            found.push(line);
        }
    }
    Ok(found)
}

/// A constraint leaning on a dropped table or column, as Postgres has it.
struct PushConstraint {
    contype: String,
    schema: String,
    table: String,
    columns: Vec<String>,
    ref_schema: Option<String>,
    ref_table: Option<String>,
    ref_columns: Vec<String>,
}

impl PushConstraint {
    /// Whether the push's own DDL, as the receipt recorded it, created this
    /// constraint: a primary key, UNIQUE or foreign key written in the
    /// CREATE TABLE of a table the rollback drops, or the REFERENCES of a
    /// column it drops. Anything else (the app's CHECK, a constraint the
    /// app added later) is not the push's to drop.
    fn created_by(
        &self,
        push_ddl: &[String],
        dropped_tables: &[String],
        dropped_columns: &[(String, String)],
    ) -> bool {
        if self.schema != "public" {
            return false;
        }
        let cols = crate::db::sqlite::ident_list(&self.columns);
        // As the push's DDL spelled it (`crate::types::quote_table`).
        let references = match (&self.ref_schema, &self.ref_table) {
            (Some(s), Some(t)) => Some(format!(
                "REFERENCES {} ({})",
                if s == "public" {
                    format!("public.{}", quote_ident(t))
                } else {
                    format!("{}.{}", quote_ident(s), quote_ident(t))
                },
                crate::db::sqlite::ident_list(&self.ref_columns)
            )),
            _ => None,
        };
        if dropped_tables.contains(&self.table) {
            let part = match (self.contype.as_str(), &references) {
                ("p", _) => format!("PRIMARY KEY ({cols})"),
                ("u", _) => format!("UNIQUE ({cols})"),
                ("f", Some(r)) => format!("FOREIGN KEY ({cols}) {r}"),
                _ => return false,
            };
            let head = format!("CREATE TABLE public.{} (\n  ", quote_ident(&self.table));
            return push_ddl.iter().any(|d| {
                d.strip_prefix(&head)
                    .and_then(|body| body.strip_suffix("\n)"))
                    .is_some_and(|body| body.split(",\n  ").any(|p| p == part))
            });
        }
        // The foreign key of an added column: ADD COLUMN c type REFERENCES …
        let ([column], "f", Some(r)) = (self.columns.as_slice(), self.contype.as_str(), references)
        else {
            return false;
        };
        dropped_columns.contains(&(self.table.clone(), column.clone()))
            && push_ddl.iter().any(|d| {
                d.starts_with(&format!(
                    "ALTER TABLE public.{} ADD COLUMN {} ",
                    quote_ident(&self.table),
                    quote_ident(column)
                )) && d.ends_with(&format!(" {r}"))
            })
    }
}

/// An app function whose body uses a table or column the rollback would
/// drop, found by reading the body's text ([`functions_using_dropped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUse {
    /// `schema.name(argument types)`, as `--break-function` takes it.
    pub function: String,
    /// What it uses: `table tasks`, `column strategic_priority_id of table
    /// jtbd_library`, with how it was told.
    pub uses: String,
    /// The triggers it is the function of: `trigger t on schema.table`.
    pub triggers: Vec<String>,
}

impl FunctionUse {
    /// The refusal line: the function, what it uses, the writes it breaks
    /// and what to do.
    pub fn describe(&self) -> String {
        let triggers = if self.triggers.is_empty() {
            String::new()
        } else {
            format!(
                "; it is the function of {}, so the app's writes that fire it would fail too",
                self.triggers.join(", ")
            )
        };
        format!(
            "function {} names {} in its body (found by reading the body's text, which a variable, \
             alias or string of that name matches too; Postgres does not track function bodies, \
             so the drop would break the function when it next runs{triggers}). Change or drop the \
             function first, or add --break-function '{}' to drop anyway and leave it broken",
            self.function, self.uses, self.function
        )
    }

    /// Whether `--break-function` `name` names this function: as printed,
    /// spaces aside (`f(integer,text)` is `f(integer, text)`).
    pub fn named_by(&self, name: &str) -> bool {
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        squeeze(&self.function) == squeeze(name)
    }
}

/// Functions, in any schema, whose bodies use a table or column the
/// rollback would drop. Postgres records no dependency for a plpgsql (or
/// other procedural) body, nor for a SQL function written as a string, so
/// the drop breaks them only when they next run. A SQL-standard body
/// (`BEGIN ATOMIC`, `RETURN`) is in `pg_depend` and named by
/// [`objects_depending`] (the drop cannot take it: it refuses until the
/// function is changed). A body uses a dropped table when it names it as a
/// whole identifier, qualified by `public` or bare (whatever schema the
/// function is in or its search_path: a bare name elsewhere cannot be told
/// from ours without running it). It uses a dropped column when it names
/// the column as a whole identifier and either names its table or is the
/// function of a trigger on that table (`NEW.column`). Dynamic SQL
/// assembled from pieces (`EXECUTE 'select ' || col`) is not seen;
/// functions of extensions and of the system schemas are not searched.
pub async fn functions_using_dropped(
    tx: &Transaction<'_>,
    dropped_tables: &[String],
    dropped_columns: &[(String, String)],
) -> Result<Vec<FunctionUse>> {
    if dropped_tables.is_empty() && dropped_columns.is_empty() {
        return Ok(vec![]);
    }
    // Only bodies holding one of the names are read back.
    let patterns: Vec<String> = dropped_tables
        .iter()
        .chain(dropped_columns.iter().map(|(_, c)| c))
        .map(|name| {
            format!(
                "%{}%",
                name.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        })
        .collect();
    let rows = tx
        .query_typed(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) \
                    || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', \
                    p.prosrc, \
                    coalesce((SELECT array_agg(c.relname::text ORDER BY c.relname) \
                              FROM pg_catalog.pg_trigger t \
                              JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
                              JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
                              WHERE t.tgfoid = p.oid AND NOT t.tgisinternal AND cn.nspname = 'public'), '{}'), \
                    coalesce((SELECT array_agg('trigger ' || pg_catalog.quote_ident(t.tgname) || ' on ' \
                                               || pg_catalog.quote_ident(cn.nspname) || '.' \
                                               || pg_catalog.quote_ident(c.relname) ORDER BY 1) \
                              FROM pg_catalog.pg_trigger t \
                              JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
                              JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
                              WHERE t.tgfoid = p.oid AND NOT t.tgisinternal), '{}') \
             FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname::text NOT LIKE 'pg\\_%' \
               AND l.lanname NOT IN ('c', 'internal') \
               AND p.prosrc ILIKE ANY($1) \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                               WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid \
                                 AND d.deptype = 'e') \
             ORDER BY 1",
            &[(&patterns, Type::TEXT_ARRAY)],
        )
        .await?;
    let mut found = Vec::new();
    for r in &rows {
        let function: String = r.get(0);
        let source: String = r.get(1);
        let trigger_tables: Vec<String> = r.get(2);
        let triggers: Vec<String> = r.get(3);
        let mut uses = Vec::new();
        for table in dropped_tables {
            if crate::db::effects::names_table(&source, "public", table) {
                uses.push(format!("table {table}"));
            }
        }
        for (table, column) in dropped_columns {
            if dropped_tables.contains(table)
                || !crate::db::effects::names_identifier(&source, column)
            {
                continue;
            }
            if trigger_tables.contains(table) {
                uses.push(format!(
                    "column {column} of table {table} (the function of a trigger on {table})"
                ));
            } else if crate::db::effects::names_table(&source, "public", table) {
                uses.push(format!(
                    "column {column} of table {table} (names table {table})"
                ));
            }
        }
        if !uses.is_empty() {
            found.push(FunctionUse {
                function,
                uses: uses.join(" and "),
                triggers,
            });
        }
    }
    Ok(found)
}

/// A column of any table, in any schema, whose type holds rows of a public
/// table the rollback drops or drops a column of: the table's row type, an
/// array of it, a domain over it, or a composite (a type, another table's
/// row type) with such an attribute, at any depth. Postgres records no
/// dependency of that column on the table's columns: a DROP COLUMN
/// succeeds and silently removes the column from every value stored there
/// (re-adding it gives a new attribute: the values are gone); a DROP TABLE
/// fails and hints at CASCADE, which would drop the app's column.
struct RowTypeUse {
    /// The public table whose row type it holds.
    root: String,
    schema: String,
    table: String,
    column: String,
    /// The column's type, as Postgres spells it.
    type_name: String,
    /// How to get from a value of the column to the root's row values:
    /// `a` (each array element), `d` (the domain's base type, `arg`), `f`
    /// (the attribute `arg`).
    steps: Vec<(String, String)>,
    /// `p` (partitioned: counted through the parent, whose partitions are
    /// not listed), `r` or `m`.
    relkind: String,
}

/// `value` (SQL) holds a non-NULL value of one of `columns` of the root
/// table inside, following `steps` from the column to the root's rows.
fn holds_root_values(steps: &[(String, String)], value: &str, columns: &[&str]) -> String {
    let depth = steps.len();
    match steps.split_first() {
        None => format!(
            "({})",
            columns
                .iter()
                // Not IS NOT NULL: a composite value with a NULL field
                // is not NULL either, and is still lost.
                .map(|c| format!("({value}).{} IS DISTINCT FROM NULL", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
        Some(((kind, arg), rest)) => match kind.as_str() {
            "a" => format!(
                "EXISTS (SELECT FROM pg_catalog.unnest({value}) e{depth} WHERE {})",
                holds_root_values(rest, &format!("e{depth}"), columns)
            ),
            "d" => holds_root_values(rest, &format!("({value})::{arg}"), columns),
            _ => holds_root_values(rest, &format!("({value}).{}", quote_ident(arg)), columns),
        },
    }
}

/// The columns ([`RowTypeUse`]) of any table whose type holds rows of the
/// public tables `roots`, except columns of `dropped_tables` (they go with
/// the drop).
async fn row_type_uses(
    tx: &Transaction<'_>,
    roots: &[String],
    dropped_tables: &[String],
) -> Result<Vec<RowTypeUse>> {
    if roots.is_empty() {
        return Ok(vec![]);
    }
    let rows = tx
        .query_typed(
            "WITH RECURSIVE uses(root, typ, kinds, args, depth) AS ( \
               SELECT c.relname::text, c.reltype, '{}'::text[], '{}'::text[], 0 \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) \
               UNION ALL \
               SELECT u.root, s.oid, ARRAY[s.kind] || u.kinds, ARRAY[s.arg] || u.args, u.depth + 1 \
               FROM uses u, LATERAL ( \
                 SELECT t.oid, CASE WHEN t.typtype = 'd' THEN 'd' ELSE 'a' END AS kind, \
                        CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(u.typ, NULL) ELSE '' END AS arg \
                 FROM pg_catalog.pg_type t \
                 WHERE (t.typtype = 'd' AND t.typbasetype = u.typ) \
                    OR (t.typtype = 'b' AND t.typelem = u.typ AND t.typlen = -1) \
                 UNION ALL \
                 SELECT t.oid, 'f', a.attname::text COLLATE pg_catalog.\"default\" \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.typrelid = a.attrelid \
                 WHERE a.atttypid = u.typ AND a.attnum > 0 AND NOT a.attisdropped \
               ) s \
               WHERE u.depth < 8 \
             ) \
             SELECT u.root, n.nspname::text, c.relname::text, a.attname::text, \
                    pg_catalog.format_type(a.atttypid, a.atttypmod), u.kinds, u.args, c.relkind::text \
             FROM uses u \
             JOIN pg_catalog.pg_attribute a ON a.atttypid = u.typ AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'm') \
               AND NOT c.relispartition \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT (n.nspname = 'public' AND c.relname = ANY($2::text[])) \
             ORDER BY 1, 2, 3, 4",
            &[
                (&roots, Type::TEXT_ARRAY),
                (&dropped_tables, Type::TEXT_ARRAY),
            ],
        )
        .await
        .context("reading the columns whose type holds rows of the tables the rollback changes")?;
    Ok(rows
        .iter()
        .map(|r| {
            let kinds: Vec<String> = r.get(5);
            let args: Vec<String> = r.get(6);
            RowTypeUse {
                root: r.get(0),
                schema: r.get(1),
                table: r.get(2),
                column: r.get(3),
                type_name: r.get(4),
                steps: kinds.into_iter().zip(args).collect(),
                relkind: r.get(7),
            }
        })
        .collect())
}

/// Columns of any table whose type holds rows of a table the rollback
/// drops or drops a column of ([`RowTypeUse`]). A table it drops: every
/// such column, whatever it holds (Postgres would refuse the DROP, and
/// its CASCADE would drop the column). A column it drops: the rows whose
/// stored values hold a non-NULL value of that column (Postgres would
/// remove it from them without a word); one line per column, counted.
pub async fn row_type_dependents(
    tx: &Transaction<'_>,
    dropped_tables: &[String],
    dropped_columns: &[(String, String)],
) -> Result<Vec<String>> {
    let mut roots: Vec<String> = dropped_tables.to_vec();
    for (t, _) in dropped_columns {
        if !roots.contains(t) {
            roots.push(t.clone());
        }
    }
    let uses = row_type_uses(tx, &roots, dropped_tables).await?;
    let mut found = Vec::new();
    // Per app column and root: the values that hold the dropped columns.
    let mut counted: Vec<(&RowTypeUse, Vec<&str>, String)> = Vec::new();
    for u in &uses {
        if dropped_tables.contains(&u.root) {
            let line = format!(
                "column {} of table {}.{} has type {}{}",
                u.column,
                u.schema,
                u.table,
                u.type_name,
                if u.steps.is_empty() {
                    String::new()
                } else {
                    format!(", which holds rows of table {}", u.root)
                }
            );
            if !found.contains(&line) {
                found.push(line);
            }
            continue;
        }
        let columns: Vec<&str> = dropped_columns
            .iter()
            .filter(|(t, _)| t == &u.root)
            .map(|(_, c)| c.as_str())
            .collect();
        let holds = holds_root_values(&u.steps, &format!("x.{}", quote_ident(&u.column)), &columns);
        match counted.iter_mut().find(|(o, _, _)| {
            o.root == u.root && o.schema == u.schema && o.table == u.table && o.column == u.column
        }) {
            Some((_, _, sql)) => *sql = format!("{sql} OR {holds}"),
            None => counted.push((u, columns, holds)),
        }
    }
    // One round trip for all of them (pipelined).
    let counts = futures_util::future::join_all(counted.iter().map(|(u, _, holds)| async move {
        let only = if u.relkind == "p" { "" } else { "ONLY " };
        let sql = format!(
            "SELECT count(*)::int8 FROM {only}{}.{} x WHERE {holds}",
            quote_ident(&u.schema),
            quote_ident(&u.table)
        );
        tx.query_typed(&sql, &[])
            .await
            .with_context(|| {
                format!(
                    "cannot read column {} of {}.{}",
                    u.column, u.schema, u.table
                )
            })
            .map(|rows| rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0))
    }))
    .await;
    for ((u, columns, _), n) in counted.iter().zip(counts) {
        let n = n?;
        if n == 0 {
            continue;
        }
        let dropped = columns
            .iter()
            .map(|c| format!("{}.{c}", u.root))
            .collect::<Vec<_>>()
            .join(", ");
        found.push(format!(
            "{} of {}.{} {} a value of {dropped} inside column {} (type {}{}): dropping the \
             column would silently remove it from every stored value",
            crate::words::rows(n),
            u.schema,
            u.table,
            if n == 1 { "holds" } else { "hold" },
            u.column,
            u.type_name,
            if u.steps.is_empty() {
                format!(", the row type of table {}", u.root)
            } else {
                format!(", which holds rows of table {}", u.root)
            }
        ));
    }
    Ok(found)
}
