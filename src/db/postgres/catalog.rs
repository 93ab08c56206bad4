//! Reading the catalog: the plan's tables with their columns, constraints
//! and what Postgres does for each column (pull), and the columns of the
//! tables a push depends on (drift).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Transaction;

use crate::catalog::{ColumnMeta, ConstraintMeta, TableMeta, TableRole};
use crate::error::environment;
use crate::plan::TableSet;

/// The columns of each named table of schema `public` that exists, in
/// column order, as pull reads them — type, NOT NULL, default, generated,
/// identity, collation, domain, enum labels — but without evaluating
/// constant defaults (`default_constant` and `default_value` are left
/// unset; the expression's text is there): what a drift check compares
/// with the snapshot's `_sandbox_columns`. ONE round trip for any number
/// of tables.
pub async fn column_definitions(
    tx: &Transaction<'_>,
    tables: &[String],
) -> Result<BTreeMap<String, Vec<ColumnMeta>>> {
    let sql = column_facts(
        "pg_attribute a JOIN pg_class tbl ON tbl.oid = a.attrelid AND tbl.relkind IN ('r', 'p') \
         JOIN pg_namespace tns ON tns.oid = tbl.relnamespace AND tns.nspname = 'public'",
        "WHERE tbl.relname::text = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY tbl.relname, a.attnum",
    );
    let rows = tx
        .query_typed(&sql, &[(&tables, tokio_postgres::types::Type::TEXT_ARRAY)])
        .await
        .context("cannot read the columns of the tables the plan depends on")?;
    let mut out: BTreeMap<String, Vec<ColumnMeta>> = BTreeMap::new();
    for r in &rows {
        let table: Option<String> = r.get(COLUMN_FACTS_TABLE);
        let columns = out.entry(table.unwrap_or_default()).or_default();
        let (column, _) = column_of_row(r, columns.len() as u32 + 1)?;
        columns.push(column);
    }
    Ok(out)
}

/// Resolves the plan's table set against the catalog and reads each table's
/// columns and constraints. Nothing here knows any table's columns.
pub async fn read_catalog(tx: &Transaction<'_>, set: &TableSet) -> Result<Vec<(TableMeta, u64)>> {
    let rows = tx
        .query(
            "SELECT c.oid, c.relname, greatest(c.reltuples, 0)::int8, c.relispartition \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
            &[],
        )
        .await
        .context("cannot read the catalog")?;
    // A partition's rows are its partitioned table's rows: reading, digests,
    // locks and writes all go through the partitioned table, which covers
    // every partition. A partition a pattern (`dh_*`) matches is not pulled
    // on its own, or its rows would be in the snapshot twice.
    let partitions: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(3))
        .map(|r| r.get(1))
        .collect();
    let present: Vec<(u32, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let missing: Vec<&str> = set
        .named()
        .filter(|name| !present.iter().any(|(_, n, _)| n == name))
        .collect();
    let qualified: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|m| m.contains('.'))
        .collect();
    if !qualified.is_empty() {
        return Err(environment(format!(
            "the plan's tables name {}: pull reads tables of schema public only, by their \
             name (e.g. \"dh_item\"); a table in another schema cannot be pulled today",
            qualified.join(", ")
        )));
    }
    if !missing.is_empty() {
        return Err(environment(format!(
            "the source database has no table {} in schema public, which the plan needs; \
             is the URL pointing at the right database? (`sandbox fixtures load` builds a \
             test one)",
            missing.join(", ")
        )));
    }
    let mut wanted: Vec<(u32, String, TableRole, i64)> = Vec::new();
    for name in set.named() {
        if let Some((oid, n, est)) = present.iter().find(|(_, n, _)| n == name) {
            wanted.push((*oid, n.clone(), set.role_of(n), *est));
        }
    }
    let mut extra: Vec<&(u32, String, i64)> = present
        .iter()
        .filter(|(_, n, _)| {
            set.matches_pattern(n) && !partitions.contains(n) && !wanted.iter().any(|w| &w.1 == n)
        })
        .collect();
    extra.sort_by(|a, b| a.1.cmp(&b.1));
    for (oid, n, est) in extra {
        wanted.push((*oid, n.clone(), TableRole::Source, *est));
    }
    let mut lower: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for (_, name, _, _) in &wanted {
        if let Some(other) = lower.insert(name.to_lowercase(), name) {
            return Err(environment(format!(
                "tables \"{other}\" and \"{name}\" differ only in case; a SQLite snapshot \
                 cannot hold both. Rename one at the source before pulling"
            )));
        }
    }
    let names: Vec<&str> = wanted.iter().map(|w| w.1.as_str()).collect();
    let collisions: Vec<String> = names
        .iter()
        .filter_map(|n| crate::plan::reserved_name(n, &names).map(|why| format!("{n} ({why})")))
        .collect();
    if !collisions.is_empty() {
        return Err(environment(format!(
            "the plan pulls tables named like the snapshot's own objects: {}. In the snapshot \
             the rehearsal would overwrite or shadow them. Leave them out of the plan's tables \
             (sources, protected, source_prefix) or rename them at the source",
            collisions.join("; ")
        )));
    }
    refuse_inheritance(tx, &wanted).await?;
    // Every table's catalog queries at once: tokio-postgres pipelines them
    // on the connection, so a remote database costs the round trips of one
    // table, not of each (the order of the result is the order asked).
    let pulled: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    let pulled = &pulled;
    futures_util::future::try_join_all(wanted.into_iter().map(
        |(oid, name, role, estimate)| async move {
            let meta = read_table_meta(tx, oid, name, role, pulled).await?;
            Ok::<_, anyhow::Error>((meta, estimate.max(0) as u64))
        },
    ))
    .await
}

/// The tables the plan creates that already exist in schema public (an
/// unrelated app table of the same name, say), described like pulled ones:
/// a rehearsal names them instead of a push failing on CREATE TABLE.
/// Also a table of the same name in another schema on the app's
/// search_path (named `schema.table`): the created `public` table would
/// shadow it for the app, or be hidden behind it.
pub async fn read_existing_targets(
    tx: &Transaction<'_>,
    names: &[String],
) -> Result<Vec<TableMeta>> {
    let rows = tx
        .query(
            &format!(
                "SELECT c.oid, CASE WHEN n.nspname = 'public' THEN '' ELSE n.nspname::text || '.' END \
                        || c.relname::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname::text = ANY($1) \
                   AND (n.nspname = 'public' OR n.nspname IN (SELECT a.schema FROM ({}) a)) \
                 ORDER BY 2",
                crate::db::postgres::search_path::APP_SCHEMAS
            ),
            &[&names],
        )
        .await
        .context("cannot read the catalog")?;
    let mut out = Vec::new();
    for r in rows {
        out.push(read_table_meta(tx, r.get(0), r.get(1), TableRole::Target, names).await?);
    }
    Ok(out)
}

/// Built-in types (as `format_type()` prints them, typmod and `[]`
/// aside) whose meaning their name says: nothing to read for them.
const PLAIN_TYPES: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "boolean",
    "numeric",
    "real",
    "double precision",
    "text",
    "character varying",
    "character",
    "uuid",
    "json",
    "jsonb",
    "date",
    "timestamp with time zone",
    "timestamp without time zone",
    "time without time zone",
    "bytea",
];

/// What Postgres makes of each type `names` (as target.json spells them,
/// one per distinct name) that is not plainly built in: a domain (its base
/// type, NOT NULL, CHECKs and DEFAULT down the chain, the default
/// evaluated when it is a constant), an enum's labels, an array's element
/// and delimiter. Each comes back as a column named by the type's text.
/// A name Postgres does not know is left out (the push's DDL names it);
/// one it cannot even parse is an error naming the types asked.
pub async fn read_target_types(tx: &Transaction<'_>, names: &[String]) -> Result<Vec<ColumnMeta>> {
    let asked: Vec<String> = names
        .iter()
        .filter(|n| {
            let base = n.trim().trim_end_matches("[]").trim();
            let base = base.split('(').next().unwrap_or(base).trim();
            !PLAIN_TYPES.contains(&base)
        })
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if asked.is_empty() {
        return Ok(vec![]);
    }
    // Each name as a pseudo column of that type, so the one catalog query
    // of the pulled columns says what it is: no default of its own, no
    // collation, no table.
    let sql = column_facts(
        "(SELECT n.t AS attname, to_regtype(n.t)::oid AS atttypid, -1 AS atttypmod, \
                 false AS attnotnull, ''::text AS attgenerated, ''::text AS attidentity, \
                 0::oid AS attcollation, 0::oid AS attrelid, n.i::int2 AS attnum \
          FROM unnest($1::text[]) WITH ORDINALITY n(t, i)) a",
        "ORDER BY a.attnum",
    );
    let rows = tx.query(&sql, &[&asked]).await.map_err(|e| {
        environment(format!(
            "Postgres cannot read the types target.json names ({}): {}; correct them in \
             target.json",
            asked.join(", "),
            e.as_db_error()
                .map(|d| d.message())
                .unwrap_or("the query failed")
        ))
    })?;
    let mut columns = columns_of_rows(tx, &rows).await?;
    for c in &mut columns {
        c.pg_type.clone_from(&c.name);
    }
    Ok(columns
        .into_iter()
        .filter(|c| {
            c.domain.is_some()
                || c.enum_labels.is_some()
                || c.array_element.is_some()
                || c.array_delimiter.as_deref().is_some_and(|d| d != ",")
        })
        .collect())
}

/// Node types a default expression may hold and still be a constant: the
/// value itself and casts of it (each function immutable, checked apart).
const CONSTANT_NODES: &[&str] = &[
    "CONST",
    "FUNCEXPR",
    "OPEXPR",
    "RELABELTYPE",
    "COERCETODOMAIN",
    "ARRAYEXPR",
];

/// One table's columns (with what Postgres does for each: NOT NULL,
/// default and whether it is a constant, identity, generated, enum labels,
/// domain, array delimiter) and its constraints and unique indexes.
///
/// A column of a domain type behaves as Postgres makes it behave: its
/// default is the column's own, else the nearest domain's along the chain
/// of domains over domains (a row that leaves it out gets that value), it
/// is NOT NULL when any domain of the chain is, and every CHECK of the
/// chain applies; its base type is the one under the last domain.
///
/// `pulled` are the tables the snapshot holds: a foreign key of any other
/// table into this one is recorded too (kind `r`), since the rehearsal
/// cannot see the rows behind it.
/// Old-style inheritance (`INHERITS`, not `PARTITION BY`) of a table to be
/// pulled is refused, naming each link: a read of a parent includes its
/// children's rows while COPY into it writes only it, and an UPDATE or
/// DELETE of it reaches the children, so the snapshot, the diff, the push's
/// per-table write accounting and rollback would each see other rows.
/// Partitions go through their partitioned table and are supported.
async fn refuse_inheritance(
    tx: &Transaction<'_>,
    wanted: &[(u32, String, TableRole, i64)],
) -> Result<()> {
    let names: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    let links = inheritance_links(tx, &names).await?;
    if links.is_empty() {
        return Ok(());
    }
    Err(environment(format!(
        "table inheritance (INHERITS) is not supported for the tables the plan pulls: {}",
        inheritance_advice(&links)
    )))
}

/// One old-style inheritance link of a table of `public`: (child, parent,
/// whether the named table is the parent).
pub struct InheritanceLink {
    pub child: String,
    pub parent: String,
    pub of_parent: bool,
}

/// The old-style inheritance links (not partitions) of the `public` tables
/// `names`, in either direction.
pub async fn inheritance_links(
    tx: &Transaction<'_>,
    names: &[String],
) -> Result<Vec<InheritanceLink>> {
    let rows = tx
        .query(
            "WITH t AS (SELECT c.oid FROM pg_catalog.pg_class c \
                        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])) \
             SELECT c.oid::regclass::text, p.oid::regclass::text, i.inhparent IN (SELECT oid FROM t) \
             FROM pg_catalog.pg_inherits i \
             JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
             JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
             WHERE p.relkind <> 'p' AND NOT c.relispartition \
               AND (i.inhparent IN (SELECT oid FROM t) OR i.inhrelid IN (SELECT oid FROM t)) \
             ORDER BY 2, 1",
            &[&names],
        )
        .await
        .context("cannot read the tables' inheritance")?;
    Ok(rows
        .iter()
        .map(|r| InheritanceLink {
            child: r.get(0),
            parent: r.get(1),
            of_parent: r.get(2),
        })
        .collect())
}

/// The links named, why they cannot be pulled or pushed, and what to do.
pub fn inheritance_advice(links: &[InheritanceLink]) -> String {
    let named: Vec<String> = links
        .iter()
        .map(|l| match l.of_parent {
            true => format!("{} has the inheritance child {}", l.parent, l.child),
            false => format!("{} inherits from {}", l.child, l.parent),
        })
        .collect();
    let (child, parent) = links
        .first()
        .map(|l| (l.child.as_str(), l.parent.as_str()))
        .unwrap_or(("CHILD", "PARENT"));
    format!(
        "{}. A read of a parent includes its children's rows, an UPDATE or DELETE of it changes \
         theirs, and COPY into it writes only it, so the snapshot, the push and rollback \
         could not account for the rows. Detach it at the source (ALTER TABLE {child} NO \
         INHERIT {parent}), or use declarative partitioning (PARTITION BY), which is supported",
        named.join("; ")
    )
}

/// The fields of the composite type whose oid `{of}` gives, as JSON text
/// (`[[name, type, typtype, enum labels, composite oid, delimiter], …]` in
/// field order; NULL for a type that is not composite). A field's type is
/// the base type of a domain over one (Postgres prints and converts a
/// domain's value as its base type's), an array of a domain is written as
/// an array of its base type; the composite oid is that of a field that is
/// itself a row, or an array of rows, whose fields are read in turn
/// ([`nested_fields`]); the delimiter that of an array field's elements.
const COMPOSITE_FIELDS: &str = "(SELECT json_agg(json_build_array(f.attname::text, \
                              CASE WHEN bt.typcategory = 'A' AND et.typtype = 'd' \
                                   THEN format_type(et.typbasetype, et.typtypmod) || '[]' \
                                   ELSE format_type(bt.oid, CASE WHEN ft.typtype = 'd' \
                                        THEN ft.typtypmod ELSE f.atttypmod END) END, \
                              bt.typtype::text, \
                              CASE WHEN bt.typtype = 'e' THEN \
                                (SELECT json_agg(l.enumlabel::text ORDER BY l.enumsortorder) \
                                 FROM pg_enum l WHERE l.enumtypid = bt.oid) END, \
                              CASE WHEN bt.typtype = 'c' THEN bt.oid::int8 \
                                   WHEN eb.typtype = 'c' THEN eb.oid::int8 END, \
                              CASE WHEN bt.typcategory = 'A' THEN et.typdelim::text END) \
                            ORDER BY f.attnum)::text \
                     FROM pg_type ct \
                     JOIN pg_attribute f ON f.attrelid = ct.typrelid AND f.attnum > 0 \
                       AND NOT f.attisdropped \
                     JOIN pg_type ft ON ft.oid = f.atttypid \
                     JOIN pg_type bt ON bt.oid = CASE WHEN ft.typtype = 'd' THEN ft.typbasetype \
                                                      ELSE ft.oid END \
                     LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' \
                     LEFT JOIN pg_type eb ON eb.oid = CASE WHEN et.typtype = 'd' \
                                                           THEN et.typbasetype ELSE et.oid END \
                     WHERE ct.typtype = 'c' AND ct.oid = {of})";

/// [`COLUMN_FACTS`] reading `{source}` and ending with `{filter}`.
fn column_facts(source: &str, filter: &str) -> String {
    // The composite type of a column: its type, its domain's base type, or
    // its array's element (or that element domain's base type).
    let of = "CASE WHEN ty.typcategory = 'A' THEN (SELECT CASE WHEN e.typtype = 'd' \
              THEN e.typbasetype ELSE e.oid END FROM pg_type e WHERE e.oid = ty.typelem) \
              ELSE coalesce(dom.base_oid, ty.oid) END";
    COLUMN_FACTS
        .replace("{fields}", &COMPOSITE_FIELDS.replace("{of}", of))
        .replace("{source}", source)
        .replace("{filter}", filter)
}

/// The index of the table name among [`COLUMN_FACTS`]' columns.
const COLUMN_FACTS_TABLE: usize = 26;

/// What Postgres does for each column of `a` (a row per column, with
/// `pg_attribute`'s names): its type, NOT NULL, default (the column's own,
/// else the nearest domain's), generated, identity, enum labels, domain,
/// array delimiter and element, collation, and last its table's name.
/// `{source}` gives `a`, `{filter}` ends the statement; [`columns_of_rows`]
/// reads the rows.
const COLUMN_FACTS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    coalesce(pg_get_expr(d.adbin, d.adrelid), pg_get_expr(dom.default_bin, 0)), \
                    a.attgenerated::text, a.attidentity::text, \
                    ARRAY(SELECT DISTINCT m[1] FROM regexp_matches(coalesce(d.adbin, dom.default_bin)::text, \
                                                                   '\\{([A-Z_]+)', 'g') m), \
                    coalesce((SELECT bool_and(p.provolatile = 'i') \
                              FROM regexp_matches(coalesce(d.adbin, dom.default_bin)::text, \
                                                  ':(?:funcid|opfuncid) (\\d+)', 'g') m \
                              JOIN pg_proc p ON p.oid = m[1]::oid), true), \
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e \
                          WHERE e.enumtypid = coalesce(dom.base_oid, ty.oid) \
                          ORDER BY e.enumsortorder), \
                    ty.typtype = 'd', format_type(dom.base_oid, dom.base_typmod), \
                    coalesce(dom.not_null, false), \
                    ty.typname::text, \
                    coalesce(dom.checks, '{}'), \
                    (SELECT el.typdelim::text FROM pg_type arr JOIN pg_type el ON el.oid = arr.typelem \
                     WHERE arr.oid = coalesce(dom.base_oid, ty.oid) AND arr.typlen = -1 \
                       AND arr.typelem <> 0), \
                    (SELECT bt.typtype = 'e' FROM pg_type bt \
                     WHERE bt.oid = coalesce(dom.base_oid, ty.oid)), \
                    el.kind, el.el_type, el.labels, el.base, el.notnull, el.name, el.checks, \
                    coll.collname::text, coll.collisdeterministic, \
                    {fields}, \
                    (SELECT rc.relname::text FROM pg_class rc WHERE rc.oid = a.attrelid) \
             FROM {source} \
             JOIN pg_type ty ON ty.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN LATERAL ( \
               WITH RECURSIVE chain(oid, depth) AS ( \
                 SELECT ty.oid, 0 WHERE ty.typtype = 'd' \
                 UNION ALL \
                 SELECT t.typbasetype, c.depth + 1 FROM chain c JOIN pg_type t ON t.oid = c.oid \
                 WHERE t.typtype = 'd' \
               ) \
               SELECT (SELECT t.typdefaultbin FROM chain c JOIN pg_type t ON t.oid = c.oid \
                       WHERE t.typtype = 'd' AND t.typdefaultbin IS NOT NULL \
                       ORDER BY c.depth LIMIT 1) AS default_bin, \
                      (SELECT bool_or(t.typnotnull) FROM chain c JOIN pg_type t ON t.oid = c.oid \
                       WHERE t.typtype = 'd') AS not_null, \
                      ARRAY(SELECT pg_get_constraintdef(dc.oid) FROM chain c \
                            JOIN pg_constraint dc ON dc.contypid = c.oid AND dc.contype = 'c' \
                            ORDER BY c.depth, dc.conname) AS checks, \
                      (SELECT t.typbasetype FROM chain c JOIN pg_type t ON t.oid = c.oid \
                       WHERE t.typtype = 'd' ORDER BY c.depth DESC LIMIT 1) AS base_oid, \
                      (SELECT t.typtypmod FROM chain c JOIN pg_type t ON t.oid = c.oid \
                       WHERE t.typtype = 'd' ORDER BY c.depth DESC LIMIT 1) AS base_typmod \
               WHERE ty.typtype = 'd' \
             ) dom ON true \
             LEFT JOIN pg_collation coll ON coll.oid = a.attcollation \
               AND a.attcollation NOT IN (0, 100) \
             LEFT JOIN LATERAL ( \
               SELECT e.typtype::text AS kind, format_type(e.oid, NULL) AS el_type, \
                      CASE WHEN e.typtype = 'e' OR (SELECT b.typtype = 'e' FROM pg_type b \
                                                    WHERE b.oid = e.typbasetype) \
                           THEN ARRAY(SELECT l.enumlabel::text FROM pg_enum l \
                                      WHERE l.enumtypid = coalesce(nullif(e.typbasetype, 0), e.oid) \
                                      ORDER BY l.enumsortorder) END AS labels, \
                      format_type(e.typbasetype, e.typtypmod) AS base, e.typnotnull AS notnull, \
                      e.typname::text AS name, \
                      ARRAY(SELECT pg_get_constraintdef(dc.oid) FROM pg_constraint dc \
                            WHERE dc.contypid = e.oid AND dc.contype = 'c' ORDER BY dc.conname) AS checks \
               FROM pg_type e \
               WHERE ty.typcategory = 'A' AND e.oid = ty.typelem AND e.typtype IN ('e', 'd')) el ON true \
             {filter}";

pub async fn read_table_meta(
    tx: &Transaction<'_>,
    oid: u32,
    name: String,
    role: TableRole,
    pulled: &[String],
) -> Result<TableMeta> {
    let sql = column_facts(
        "pg_attribute a",
        "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    );
    let rows = tx.query(&sql, &[&oid]).await?;
    let columns = columns_of_rows(tx, &rows).await?;
    let mut constraints: Vec<ConstraintMeta> = tx
        .query(
            "SELECT con.conname::text, con.contype::text, pg_get_constraintdef(con.oid), \
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                     ORDER BY k.i), \
               (SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text \
                       ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END \
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = con.confrelid), \
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                     ORDER BY k.i), \
               con.convalidated, \
               ARRAY(SELECT DISTINCT coll.collname::text FROM pg_index ix \
                     CROSS JOIN unnest(ix.indcollation::oid[]) k(c) \
                     JOIN pg_collation coll ON coll.oid = k.c AND NOT coll.collisdeterministic \
                     WHERE ix.indexrelid = con.conindid AND con.contype IN ('p', 'u') ORDER BY 1) \
             FROM pg_constraint con \
             WHERE con.conrelid = $1 AND con.contype IN ('p', 'f', 'u', 'c', 'x') \
             ORDER BY con.contype, con.conname",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| ConstraintMeta {
            ref_table: r.get(4),
            ref_columns: r.get(5),
            validated: r.get(6),
            nondeterministic: r.get(7),
            ..ConstraintMeta::new(r.get(0), &r.get::<_, String>(1), r.get(3), r.get(2))
        })
        .collect();
    // Unique indexes that back no constraint (CREATE UNIQUE INDEX): Postgres
    // enforces them all the same.
    for r in tx
        .query(
            "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid), \
               ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                     WHERE k.n > 0 ORDER BY k.o), \
               i.indexprs IS NOT NULL, pg_get_expr(i.indpred, i.indrelid), \
               ARRAY(SELECT DISTINCT coll.collname::text \
                     FROM unnest(i.indcollation::oid[]) k(c) \
                     JOIN pg_collation coll ON coll.oid = k.c AND NOT coll.collisdeterministic \
                     ORDER BY 1) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE i.indrelid = $1 AND i.indisunique \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                               AND con.conrelid = i.indrelid) \
             ORDER BY 1",
            &[&oid],
        )
        .await?
    {
        constraints.push(ConstraintMeta {
            expression: r.get(3),
            predicate: r.get(4),
            nondeterministic: r.get(5),
            ..ConstraintMeta::new(r.get(0), "i", r.get(2), r.get(1))
        });
    }
    // User triggers: what they do only Postgres can tell, so the rehearsal
    // lists those that fire for the push (enabled, or ALWAYS) for the
    // preflight. Those that fire for no session of the push are kept
    // apart, so the plan's hold-off of one is told as what it is:
    // disabled by the app (`td`) or replica-only (`tr`: push and rollback
    // run under session_replication_role = origin).
    // And the foreign keys of tables outside the snapshot that reference
    // this one: a row the plan deletes or re-keys may take theirs with it
    // (CASCADE, SET NULL) or be refused, which only the preflight can see.
    // Asked together with the triggers: pipelined, no extra round trip.
    let (triggers, inbound) = futures_util::future::try_join(
        tx.query(
            "SELECT t.tgname::text, pg_get_triggerdef(t.oid), \
                    CASE t.tgenabled WHEN 'D' THEN 'td' WHEN 'R' THEN 'tr' ELSE 't' END \
             FROM pg_trigger t WHERE t.tgrelid = $1 AND NOT t.tgisinternal ORDER BY 1",
            &[&oid],
        ),
        tx.query(
            "SELECT con.conname::text, pg_get_constraintdef(con.oid), \
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                     ORDER BY k.i), \
               CASE WHEN n.nspname = 'public' THEN c.relname::text \
                    ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END, \
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                     ORDER BY k.i) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conparentid = 0 \
               AND NOT (n.nspname = 'public' AND c.relname::text = ANY($2)) \
             ORDER BY 4, 1",
            &[&oid, &pulled],
        ),
    )
    .await?;
    for r in triggers {
        constraints.push(ConstraintMeta::new(
            r.get(0),
            r.get::<_, &str>(2),
            vec![],
            r.get(1),
        ));
    }
    for r in inbound {
        constraints.push(ConstraintMeta {
            ref_table: r.get(3),
            ref_columns: r.get(4),
            ..ConstraintMeta::new(r.get(0), "r", r.get(2), r.get(1))
        });
    }
    check_case_collisions(&name, &columns)?;
    Ok(TableMeta {
        name,
        role,
        columns,
        constraints,
    })
}

/// The columns of [`COLUMN_FACTS`]' rows, in their order, each constant
/// default evaluated by Postgres ([`evaluate_constants`]).
/// A field of a row type and, for a field holding rows, that row type's oid.
type FieldOf = (crate::catalog::CompositeField, Option<u32>);

/// A composite type's fields from the catalog's JSON ([`COMPOSITE_FIELDS`]),
/// or None for a column of another type. A field that is a row, or an
/// array of rows, comes with the oid of that row type, its fields to be
/// read by [`nested_fields`].
fn composite_fields(json: Option<String>) -> Result<Option<Vec<FieldOf>>> {
    let Some(json) = json else { return Ok(None) };
    type Raw = (
        String,
        String,
        String,
        Option<Vec<String>>,
        Option<u32>,
        Option<String>,
    );
    let raw: Vec<Raw> = serde_json::from_str(&json).with_context(|| {
        format!("the catalog's fields of a composite type are not as expected: {json}")
    })?;
    Ok(Some(
        raw.into_iter()
            .map(|(name, pg_type, kind, enum_labels, row_type, delimiter)| {
                let field = crate::catalog::CompositeField {
                    name,
                    pg_type,
                    kind,
                    enum_labels,
                    fields: None,
                    delimiter: delimiter.filter(|d| d != ","),
                };
                (field, row_type)
            })
            .collect(),
    ))
}

/// Postgres refuses a row type that contains itself, so nesting ends; the
/// limit only keeps a damaged catalog from recursing without end.
const MAX_ROW_NESTING: usize = 32;

/// The fields of `raw`, each row-typed one with its own fields read from
/// the catalog (one round trip per nested row type, at any depth).
fn nested_fields<'a>(
    tx: &'a Transaction<'_>,
    raw: Vec<FieldOf>,
    depth: usize,
) -> futures_util::future::BoxFuture<'a, Result<Vec<crate::catalog::CompositeField>>> {
    Box::pin(async move {
        let mut out = Vec::with_capacity(raw.len());
        for (mut field, row_type) in raw {
            if let Some(oid) = row_type {
                if depth >= MAX_ROW_NESTING {
                    anyhow::bail!(
                        "row types nest deeper than {MAX_ROW_NESTING} levels at field {}",
                        field.name
                    );
                }
                let sql = format!("SELECT {}", COMPOSITE_FIELDS.replace("{of}", "$1"));
                let json: Option<String> = tx
                    .query_one(&sql, &[&oid])
                    .await
                    .context("cannot read the fields of a row type")?
                    .get(0);
                if let Some(inner) = composite_fields(json)? {
                    field.fields = Some(nested_fields(tx, inner, depth + 1).await?);
                }
            }
            out.push(field);
        }
        Ok(out)
    })
}

/// Column `r` of [`COLUMN_FACTS`] (the `ordinal`th of its table), and
/// whether its default is a candidate for a constant (immutable, of
/// constant nodes only), for Postgres to evaluate.
fn column_of_row(r: &tokio_postgres::Row, ordinal: u32) -> Result<(ColumnMeta, bool)> {
    let expr: Option<String> = r.get(3);
    let generated = r.get::<_, String>(4) == "s";
    let identity = match r.get::<_, String>(5).as_str() {
        "a" => Some(crate::catalog::Identity::Always),
        "d" => Some(crate::catalog::Identity::ByDefault),
        _ => None,
    };
    let nodes: Vec<String> = r.get(6);
    let immutable: bool = r.get(7);
    let labels: Vec<String> = r.get(8);
    let is_domain: bool = r.get(9);
    let is_enum: Option<bool> = r.get(15);
    let pg_type: String = r.get(1);
    let default_candidate = !generated
        && expr.is_some()
        && immutable
        && nodes.iter().all(|n| CONSTANT_NODES.contains(&n.as_str()));
    let column = ColumnMeta {
        name: r.get(0),
        ordinal,
        pg_type: pg_type.clone(),
        not_null: r.get(2),
        default: if generated { None } else { expr.clone() },
        generated: if generated { expr.clone() } else { None },
        identity,
        enum_labels: is_enum.unwrap_or(false).then_some(labels),
        domain: is_domain.then(|| crate::catalog::DomainMeta {
            name: r.get(12),
            base_type: r.get(10),
            not_null: r.get(11),
            checks: r.get(13),
        }),
        array_delimiter: r.get(14),
        array_element: r
            .get::<_, Option<String>>(16)
            .map(|kind| crate::catalog::ArrayElement {
                pg_type: r.get(17),
                enum_labels: r.get(18),
                domain: (kind == "d").then(|| crate::catalog::DomainMeta {
                    name: r.get(21),
                    base_type: r.get::<_, Option<String>>(19).unwrap_or_default(),
                    not_null: r.get::<_, Option<bool>>(20).unwrap_or(false),
                    checks: r.get::<_, Option<Vec<String>>>(22).unwrap_or_default(),
                }),
            }),
        collation: r
            .get::<_, Option<String>>(23)
            .map(|name| crate::catalog::Collation {
                name,
                deterministic: r.get::<_, Option<bool>>(24).unwrap_or(true),
            }),
        ..Default::default()
    };
    Ok((column, default_candidate))
}

async fn columns_of_rows(
    tx: &Transaction<'_>,
    rows: &[tokio_postgres::Row],
) -> Result<Vec<ColumnMeta>> {
    let mut columns: Vec<ColumnMeta> = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let (mut column, default_candidate) = column_of_row(r, i as u32 + 1)?;
        if let Some(raw) = composite_fields(r.get(25))? {
            column.composite = Some(nested_fields(tx, raw, 0).await?);
        }
        columns.push(column);
        if default_candidate {
            candidates.push(i);
        }
    }
    let exprs: Vec<(String, String)> = candidates
        .iter()
        .map(|i| {
            let c = &columns[*i];
            (c.default.clone().unwrap_or_default(), c.pg_type.clone())
        })
        .collect();
    for (i, value) in candidates.iter().zip(evaluate_constants(tx, &exprs).await?) {
        if let Some(v) = value {
            columns[*i].default_constant = true;
            columns[*i].default_value = v;
        }
    }
    Ok(columns)
}

/// The values of constant defaults, as Postgres prints them for each
/// column's type: `Some(None)` is NULL; `None` means Postgres could not
/// evaluate it here (say, a domain CHECK it breaks), so it stays
/// Postgres's to fill and the rehearsal says so. All of a table's in one
/// round trip; a savepoint keeps a failure from ending the pull's read.
async fn evaluate_constants(
    tx: &Transaction<'_>,
    exprs: &[(String, String)],
) -> Result<Vec<Option<Option<String>>>> {
    if exprs.is_empty() {
        return Ok(vec![]);
    }
    let select = |list: &[(String, String)]| {
        format!(
            "SAVEPOINT sandbox_default; SELECT {}; RELEASE SAVEPOINT sandbox_default",
            list.iter()
                .map(|(e, t)| format!("CAST(({e}) AS {t})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let row_of = |messages: Vec<tokio_postgres::SimpleQueryMessage>, n: usize| {
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..n)
                        .map(|i| Some(row.get(i).map(str::to_string)))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .unwrap_or_else(|| vec![None; n])
    };
    match tx.simple_query(&select(exprs)).await {
        Ok(messages) => return Ok(row_of(messages, exprs.len())),
        Err(e) if e.as_db_error().is_none() => return Err(e.into()),
        Err(_) => {
            tx.batch_execute(
                "ROLLBACK TO SAVEPOINT sandbox_default; RELEASE SAVEPOINT sandbox_default",
            )
            .await?
        }
    }
    // One of them fails: find which, one at a time.
    let mut out = Vec::new();
    for one in exprs {
        match tx.simple_query(&select(std::slice::from_ref(one))).await {
            Ok(messages) => out.push(row_of(messages, 1).remove(0)),
            Err(e) if e.as_db_error().is_none() => return Err(e.into()),
            Err(_) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT sandbox_default; RELEASE SAVEPOINT sandbox_default",
                )
                .await?;
                out.push(None);
            }
        }
    }
    Ok(out)
}

/// SQLite compares names without case; Postgres does not. Two names that
/// differ only in case cannot both live in the snapshot.
fn check_case_collisions(table: &str, columns: &[ColumnMeta]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for c in columns {
        if let Some(other) = seen.insert(c.name.to_lowercase(), &c.name) {
            return Err(environment(format!(
                "table {table} has columns \"{other}\" and \"{}\", which differ only in case; a \
                 SQLite snapshot cannot hold both. Rename one at the source before pulling",
                c.name
            )));
        }
    }
    Ok(())
}

/// The objects of schema `public` that hold a name the plan's DDL claims
/// ([`crate::plan::names::claimed_names`]): a relation of any kind, a type,
/// a constraint. A table (or view, foreign table) holding a created table's
/// name is left out: [`read_existing_targets`] describes it with its
/// columns. Read by pull for the rehearsal and by push against the live
/// catalog.
pub async fn read_name_conflicts(
    tx: &Transaction<'_>,
    claimed: &[crate::plan::names::ClaimedName],
) -> Result<Vec<crate::plan::names::NameConflict>> {
    use crate::plan::names::NameConflict;
    if claimed.is_empty() {
        return Ok(vec![]);
    }
    let namespaces: Vec<&str> = claimed.iter().map(|c| c.namespace.as_str()).collect();
    let names: Vec<&str> = claimed.iter().map(|c| c.name.as_str()).collect();
    let derived: Vec<bool> = claimed.iter().map(|c| c.derived).collect();
    let rows = tx
        .query(
            "SELECT c.i, e.existing \
             FROM unnest($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY c(ns, name, derived, i) \
             JOIN LATERAL ( \
               SELECT CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' \
                        WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                        WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' \
                        WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index' \
                        WHEN 'c' THEN 'composite type' ELSE 'relation' END \
                      || ' public.' || quote_ident(r.relname) AS existing, 0 AS rank \
               FROM pg_catalog.pg_class r \
               WHERE c.ns = 'relation' AND r.relnamespace = 'public'::regnamespace \
                 AND r.relname = c.name \
                 AND (c.derived OR r.relkind NOT IN ('r', 'p', 'v', 'm', 'f')) \
               UNION ALL \
               SELECT CASE t.typtype WHEN 'e' THEN 'enum type' WHEN 'd' THEN 'domain' \
                        WHEN 'r' THEN 'range type' WHEN 'm' THEN 'multirange type' \
                        ELSE 'type' END || ' public.' || quote_ident(t.typname), 0 \
               FROM pg_catalog.pg_type t \
               WHERE c.ns = 'type' AND t.typnamespace = 'public'::regnamespace \
                 AND t.typname = c.name AND t.typrelid = 0 \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type el \
                                 WHERE el.oid = t.typelem AND el.typarray = t.oid) \
               UNION ALL \
               SELECT 'constraint ' || quote_ident(k.conname) || ' of ' \
                      || coalesce(k.conrelid::regclass::text, k.contypid::regtype::text), 1 \
               FROM pg_catalog.pg_constraint k \
               WHERE c.derived AND c.ns IN ('constraint', 'relation') \
                 AND k.connamespace = 'public'::regnamespace AND k.conname = c.name \
             ) e ON true \
             ORDER BY c.i, e.rank, e.existing",
            &[&namespaces, &names, &derived],
        )
        .await
        .context("cannot read the objects holding the names the plan's DDL claims")?;
    let mut out = Vec::new();
    for r in rows {
        let i: i64 = r.get(0);
        let Some(c) = usize::try_from(i - 1).ok().and_then(|i| claimed.get(i)) else {
            continue;
        };
        // Two objects holding one name (an index and its constraint): the
        // relation names it.
        if out
            .iter()
            .any(|o: &NameConflict| o.name == c.name && o.namespace == c.namespace)
        {
            continue;
        }
        out.push(NameConflict {
            table: c.table.clone(),
            namespace: c.namespace,
            name: c.name.clone(),
            existing: r.get(1),
            what: c.what.clone(),
            derived: c.derived,
        });
    }
    Ok(out)
}
