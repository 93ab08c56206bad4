//! Every catalog change of a transaction, database-wide: the DDL the write
//! accounting ([`crate::db::writes`]) cannot see. `pg_stat_xact_user_tables`
//! counts rows; a trigger that runs `CREATE TABLE`, `ALTER TABLE` or
//! `CREATE INDEX` through `EXECUTE`, an event trigger that adds an object
//! for each one the plan creates, a large object made by `lo_create`: none
//! of them writes a row of a user table. Each of them writes catalog rows,
//! though, and a catalog row written by this transaction carries one of its
//! transaction ids as `xmin` (the top-level one or a subtransaction's, for
//! a savepoint or a PL/pgSQL block with EXCEPTION). So before COMMIT push
//! and rollback read the catalog rows whose `xmin` is theirs, take away
//! what their own DDL made (the plan's tables as their CREATE makes them,
//! its columns, keys and their internal triggers, the triggers held off
//! and on again, the sequences moved, the tool's `sandbox` schema as a
//! first push makes it), and refuse the rest by name.
//!
//! A dropped object leaves no row behind, so the objects of every schema
//! (relations, constraints, triggers, functions, rules, policies, types,
//! schemas, event triggers, extensions) are recorded, by name, at the same
//! start, and those gone before COMMIT are named too, unless they are the
//! undo's own drops (a created table and what belongs to it, an added
//! column's keys and indexes). So are an object's marks as depending on an
//! extension (`ALTER TRIGGER … DEPENDS ON EXTENSION`), a `pg_depend` row
//! and nothing else: one made is read like any row, one removed is named
//! from the record. A large object's `lo_unlink` is counted
//! from the transaction's statistics (neither push nor rollback unlinks
//! one). The storage check sees a table's TRUNCATE or rewrite. This
//! database's own `pg_database` row (connection limit, owner, privileges…)
//! and shared comments and security labels are read the same way (F4).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Transaction;

use crate::db::writes::qualify;
use crate::plan::checks::{Check, CheckKind};

/// Transaction-local setting holding how far into this transaction's ids
/// the catalog rows already written at [`record_start_sql`] reach (see
/// [`OFFSET`]), or -1: only later catalog rows count. At a push's start
/// nothing is written yet; at the savepoint of the push's rehearsed undo
/// the push's own DDL is, and belongs to the push's check, not the undo's.
const DDL_SINCE: &str = "sandbox.ddl_since";

/// Transaction-local setting holding the objects of every schema at
/// [`record_start_sql`], by `catalog:oid`, each with how [`CatalogChange`]
/// names it: a dropped object cannot be named after the DROP.
const OBJECTS_AT_START: &str = "sandbox.objects_at_start";

/// Transaction-local setting holding, for each table of every schema at
/// [`record_start_sql`], by oid, the settings of its `pg_class` row that
/// neither push nor rollback changes (see [`TABLE_SETTINGS`]). The push's
/// own ADD COLUMN (or a new foreign key to the table) rewrites that row
/// too, so the row alone cannot tell an event trigger's `ALTER TABLE …
/// ENABLE ROW LEVEL SECURITY` on the same table from the push's DDL.
/// After the settings, the table's columns by attnum (see
/// [`column_at_start`]).
const TABLES_AT_START: &str = "sandbox.tables_at_start";

/// The name column `attnum` of table `attrelid` (SQL expressions) had at
/// [`record_start_sql`], or NULL. A dropped column keeps only its attnum
/// (Postgres renames it `........pg.dropped.N........`): without the name
/// it had, the rollback's own DROP COLUMN could not be told from an event
/// trigger dropping an app column of the same table in the same
/// transaction, and every dropped column of an altered table passed as the
/// rollback's own (the app's column and its values lost, exit 0).
fn column_at_start(attrelid: &str, attnum: &str) -> String {
    format!(
        "(coalesce(nullif(pg_catalog.current_setting('{TABLES_AT_START}', true), ''), '{{}}')::jsonb \
          -> {attrelid}::text -> {n} ->> {attnum}::text)",
        n = TABLE_SETTINGS.len()
    )
}

/// Transaction-local setting holding the marks of objects as depending on
/// an extension at [`record_start_sql`] (see [`extension_marks_sql`]), so
/// that a mark removed since (`… NO DEPENDS ON EXTENSION`) is named.
const MARKS_AT_START: &str = "sandbox.extension_marks_at_start";

/// Every object marked as depending on an extension (`ALTER TRIGGER`,
/// `FUNCTION`, `INDEX` or `MATERIALIZED VIEW … DEPENDS ON EXTENSION`:
/// `pg_depend` rows of deptype 'x'), as `(key, object, extension, tab)`:
/// the key its `pg_depend` columns, the object as `pg_identify_object`
/// names it, the table it belongs to (a trigger's, an index's, the
/// relation itself). Such a mark writes its `pg_depend` row and nothing
/// else — no row of the object's own catalog — and from then on `DROP
/// EXTENSION` drops the object without CASCADE (F6: an event trigger's
/// mark went unnamed). Neither push nor rollback makes or removes one.
fn extension_marks_sql() -> String {
    format!(
        "SELECT {key} AS key, {object} AS object, \
                (SELECT e.extname::text FROM pg_catalog.pg_extension e WHERE e.oid = dx.refobjid) AS extension, \
                {table} AS tab \
         FROM pg_catalog.pg_depend dx WHERE dx.deptype = 'x'",
        key = MARK_KEY,
        object = MARKED_OBJECT,
        table = marked_table(),
    )
}

/// A mark's key, from `pg_depend` row `dx`.
const MARK_KEY: &str =
    "(dx.classid::text || ':' || dx.objid::text || ':' || dx.objsubid::text || ':' \
                        || dx.refobjid::text)";

/// What `pg_depend` row `dx` marks, as `pg_identify_object` names it
/// (`trigger t on public.agents`, `function app.f()`).
const MARKED_OBJECT: &str = "(SELECT mo.type || ' ' || mo.identity \
     FROM pg_catalog.pg_identify_object(dx.classid, dx.objid, dx.objsubid) mo)";

/// The table what `pg_depend` row `dx` marks belongs to: a trigger's, an
/// index's, a materialized view itself; NULL for a function.
fn marked_table() -> String {
    format!(
        "CASE dx.classid WHEN 'pg_catalog.pg_trigger'::regclass THEN {} \
                         WHEN 'pg_catalog.pg_class'::regclass THEN {} END",
        rel_name("(SELECT mt.tgrelid FROM pg_catalog.pg_trigger mt WHERE mt.oid = dx.objid)"),
        rel_name(
            "coalesce((SELECT mi.indrelid FROM pg_catalog.pg_index mi WHERE mi.indexrelid = dx.objid), \
                      dx.objid)"
        ),
    )
}

/// The part of [`changed_sql`] naming each mark recorded at
/// [`record_start_sql`] that is gone while its object is still there
/// (`… NO DEPENDS ON EXTENSION`), in a transaction that deleted
/// `pg_depend` rows since (under READ COMMITTED, another session's
/// committed removal is gone too, but not ours). A mark gone with its
/// object is the object's drop, named by itself.
fn marks_removed_sql() -> String {
    format!(
        "SELECT 'pg_depend', (m.value ->> 0) || ' no longer depends on extension ' || (m.value ->> 1), \
                m.value ->> 2, NULL::text, NULL::text, NULL::text, false, NULL::text, '{{}}'::text[], \
                false, false, false, NULL::text \
         FROM me, pg_catalog.jsonb_each(coalesce(nullif(pg_catalog.current_setting('{MARKS_AT_START}', true), ''), \
                                                 '{{}}')::jsonb) m \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend dx WHERE dx.deptype = 'x' AND {MARK_KEY} = m.key) \
           AND (SELECT mo.identity FROM pg_catalog.pg_identify_object( \
                  pg_catalog.split_part(m.key, ':', 1)::oid, pg_catalog.split_part(m.key, ':', 2)::oid, \
                  pg_catalog.split_part(m.key, ':', 3)::int4) mo) IS NOT NULL \
           AND {deleted} > 0",
        deleted = deleted_since("'pg_depend'"),
    )
}

/// The `pg_class` settings recorded in [`TABLES_AT_START`], each with what
/// a change of it is called (SQL, `c` is the row).
const TABLE_SETTINGS: &[(&str, &str)] = &[
    (
        "c.relrowsecurity::text",
        "CASE WHEN c.relrowsecurity THEN 'row-level security enabled' \
         ELSE 'row-level security disabled' END",
    ),
    (
        "c.relforcerowsecurity::text",
        "CASE WHEN c.relforcerowsecurity THEN 'row-level security forced' \
         ELSE 'row-level security no longer forced' END",
    ),
    ("c.relacl::text", "'privileges granted or revoked'"),
    ("c.relowner::text", "'owner changed'"),
    ("c.relreplident::text", "'replica identity changed'"),
    ("c.reloptions::text", "'storage parameters changed'"),
    ("c.relpersistence::text", "'made logged or unlogged'"),
];

/// The changes of [`TABLE_SETTINGS`] in table row `c` since
/// [`TABLES_AT_START`], joined by `, `, or NULL (none); for a table made
/// since, how they differ from what its CREATE gives it (see
/// [`table_settings_as_made`]).
fn table_settings_changed() -> String {
    let at = format!(
        "(coalesce(nullif(pg_catalog.current_setting('{TABLES_AT_START}', true), ''), '{{}}')::jsonb \
          -> c.oid::text)"
    );
    let each = TABLE_SETTINGS
        .iter()
        .enumerate()
        .map(|(i, (expr, what))| {
            format!("CASE WHEN ({at} ->> {i}) IS DISTINCT FROM {expr} THEN {what} END")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "(CASE WHEN {at} IS NOT NULL THEN nullif(concat_ws(', ', {each}), '') \
               WHEN c.relkind IN ('r', 'p') THEN {} END)",
        table_settings_as_made()
    )
}

/// For table row `c` made since [`record_start_sql`]: how its settings
/// differ from what a CREATE TABLE by this role gives a table, joined by
/// `, `, or NULL. Such a table has no start to differ from, and every row
/// of one the push creates was written by the push: an event trigger's
/// `ALTER TABLE … OWNER TO` or `FORCE ROW LEVEL SECURITY` on `public.tasks`
/// rewrote a row the push wrote anyway, and passed as its own. What a
/// CREATE gives: this role as owner, the default replica identity, no
/// storage parameters, a logged table. Row-level security enabled is the
/// push's own (it enables it on every table it creates), and privileges
/// are the app's to give: an event trigger granting each new table to its
/// API roles (`GRANT … TO anon, authenticated`) does what `ALTER DEFAULT
/// PRIVILEGES` does, the table is behind row-level security, and the
/// rollback's DROP takes the grants with it (h12 F7: every push was
/// refused there).
fn table_settings_as_made() -> String {
    "nullif(concat_ws(', ', \
       CASE WHEN c.relforcerowsecurity THEN 'row-level security forced' END, \
       CASE WHEN c.relowner IS DISTINCT FROM \
                 (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) \
            THEN 'owner changed' END, \
       CASE WHEN c.relreplident <> 'd' THEN 'replica identity changed' END, \
       CASE WHEN c.reloptions IS NOT NULL THEN 'storage parameters changed' END, \
       CASE WHEN c.relpersistence <> 'p' THEN 'made logged or unlogged' END), '')"
        .to_string()
}

/// Transaction-local setting holding this database's `pg_database` row at
/// [`record_start_sql`]: what `ALTER DATABASE` (connection limit, allowing
/// connections, template, owner), `GRANT`/`REVOKE … ON DATABASE` change.
/// Neither push nor rollback writes that row, so any version of it this
/// transaction wrote is someone else's; the start values say what changed
/// (F4: a trigger's `ALTER DATABASE … CONNECTION LIMIT 3` committed with
/// the push, exit 0).
const DATABASE_AT_START: &str = "sandbox.database_at_start";

/// The `pg_database` columns recorded in [`DATABASE_AT_START`] (SQL, `db`
/// is the row, each as text), each with how a change of it is said (`was`
/// is the start value's text expression).
const DATABASE_SETTINGS: &[(&str, &str)] = &[
    ("db.datname::text", "'renamed from ' || {was}"),
    (
        "db.datdba::regrole::text",
        "'owner ' || db.datdba::regrole::text || ', was ' || coalesce({was}, '?')",
    ),
    (
        "db.datconnlimit::text",
        "'connection limit ' || db.datconnlimit::text || ', was ' || coalesce({was}, '?')",
    ),
    (
        "db.datallowconn::text",
        "CASE WHEN db.datallowconn THEN 'connections allowed, were not' \
         ELSE 'connections not allowed, were allowed' END",
    ),
    (
        "db.datistemplate::text",
        "CASE WHEN db.datistemplate THEN 'made a template' ELSE 'no longer a template' END",
    ),
    (
        "db.datacl::text",
        "'privileges ' || coalesce(db.datacl::text, 'the defaults') || ', were ' \
         || coalesce({was}, 'the defaults')",
    ),
    // Postgres 15 and later (`ALTER DATABASE … REFRESH COLLATION VERSION`).
    (
        "(pg_catalog.to_jsonb(db) ->> 'datcollversion')",
        "'collation version ' || coalesce(pg_catalog.to_jsonb(db) ->> 'datcollversion', 'none') \
         || ', was ' || coalesce({was}, 'none')",
    ),
    ("db.dattablespace::text", "'tablespace changed'"),
];

/// How database row `db` differs from [`DATABASE_AT_START`], joined by
/// `, `, or NULL (the same, or another database than this one).
fn database_settings_changed() -> String {
    let at = format!(
        "(nullif(pg_catalog.current_setting('{DATABASE_AT_START}', true), '')::jsonb -> db.oid::text)"
    );
    let each = DATABASE_SETTINGS
        .iter()
        .enumerate()
        .map(|(i, (expr, what))| {
            let was = format!("({at} ->> {i})");
            format!(
                "CASE WHEN {was} IS DISTINCT FROM {expr} THEN {} END",
                what.replace("{was}", &was)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("(CASE WHEN {at} IS NOT NULL THEN nullif(concat_ws(', ', {each}), '') END)")
}

/// The definition of trigger `t` (an alias of `pg_trigger`) without its
/// name, as `pg_get_triggerdef` writes it (`BEFORE UPDATE ON public.t FOR
/// EACH ROW EXECUTE FUNCTION f()`): its events, table, WHEN clause,
/// function and arguments. Recorded at [`record_start_sql`] for every
/// user trigger, and compared, with its name and enabled state, against
/// the trigger of the same oid before COMMIT (see [`TriggerStates`]).
fn trigger_definition(t: &str) -> String {
    format!(
        "(SELECT CASE WHEN pg_catalog.strpos(d.def, d.head) = 1 \
                      THEN pg_catalog.substr(d.def, pg_catalog.length(d.head) + 1) ELSE d.def END \
          FROM (SELECT pg_catalog.pg_get_triggerdef({t}.oid) AS def, \
                       'CREATE ' || CASE WHEN {t}.tgconstraint <> 0 THEN 'CONSTRAINT ' ELSE '' END \
                       || 'TRIGGER ' || pg_catalog.quote_ident({t}.tgname::text) || ' ' AS head) d)"
    )
}

/// For trigger row `t` (an alias of `pg_trigger`): `definition before: A;
/// now: B`, worded as the DDL check words it, when its definition differs
/// from the one [`record_start_sql`] recorded for its oid; NULL when it is
/// the same or none was recorded. Lets a check made mid-transaction (the
/// hold-off's, `triggers::held_off_enabled_again`) say a trigger was
/// replaced in place, not only that it was enabled.
pub fn trigger_definition_change(t: &str) -> String {
    let now = trigger_definition(t);
    format!(
        "(SELECT CASE WHEN s.def IS DISTINCT FROM {now} \
                      THEN 'definition before: ' || s.def || '; now: ' || {now} END \
          FROM (SELECT (coalesce(nullif(pg_catalog.current_setting('{OBJECTS_AT_START}', true), ''), \
                                 '{{}}')::jsonb -> ('pg_trigger:' || {t}.oid::text)) ->> 8 AS def) s)"
    )
}

/// The objects [`record_start_sql`] recorded (SQL, a jsonb object by
/// `catalog:oid`).
fn objects_at_start() -> String {
    format!(
        "coalesce(nullif(pg_catalog.current_setting('{OBJECTS_AT_START}', true), ''), '{{}}')::jsonb"
    )
}

/// The oid of the user trigger named `name` on table `table` (SQL text
/// expressions; the table as `schema.table`, unquoted) when
/// [`record_start_sql`] ran, or NULL (none, or nothing recorded): lets a
/// check made mid-transaction (`triggers::held_off_enabled_again`) follow
/// the trigger held off by oid, whatever it is named now.
pub fn trigger_oid_at_start(table: &str, name: &str) -> String {
    format!(
        "(SELECT pg_catalog.split_part(s.key, ':', 2)::oid \
          FROM pg_catalog.jsonb_each({}) s \
          WHERE s.value ->> 0 = 'pg_trigger' AND s.value ->> 2 = {table} AND s.value ->> 5 = {name} \
          LIMIT 1)",
        objects_at_start()
    )
}

/// The name user trigger `oid` (an SQL expression) had when
/// [`record_start_sql`] ran, or NULL: made since (or nothing recorded).
pub fn trigger_name_at_start(oid: &str) -> String {
    format!(
        "({} -> ('pg_trigger:' || ({oid})::text) ->> 5)",
        objects_at_start()
    )
}

/// For user trigger row `t` written in this transaction: its entry in
/// [`OBJECTS_AT_START`] (NULL: made since) and its state now (enabled
/// state, name, [`trigger_definition`]), as JSON text read into
/// [`TriggerStates`]; NULL for a foreign key's internal trigger (those go
/// with their constraint).
fn trigger_states() -> String {
    format!(
        "CASE WHEN NOT t.tgisinternal THEN pg_catalog.jsonb_build_array( \
           coalesce(nullif(pg_catalog.current_setting('{OBJECTS_AT_START}', true), ''), '{{}}')::jsonb \
             -> ('pg_trigger:' || t.oid::text), \
           pg_catalog.jsonb_build_array(t.tgenabled::text, t.tgname::text, {}))::text END",
        trigger_definition("t")
    )
}

/// Whether index `oid` (an SQL expression) was made since
/// [`record_start_sql`]: not among [`OBJECTS_AT_START`]. An index an ADD
/// COLUMN rebuilt keeps its oid; one an event trigger or trigger made on
/// the altered table (`CREATE UNIQUE INDEX`) is new, and was taken for the
/// rebuild: committed with the push and left by its rollback.
fn new_index(oid: &str) -> String {
    format!(
        "NOT (coalesce(nullif(pg_catalog.current_setting('{OBJECTS_AT_START}', true), ''), '{{}}')::jsonb \
              ? ('pg_class:' || {oid}::text))"
    )
}

/// The detail of a relation's row: a table's settings changed (see
/// [`table_settings_changed`]), or `created` for an index made since the
/// start (see [`new_index`]).
fn class_detail() -> String {
    format!(
        "CASE WHEN c.relkind IN ('i', 'I') THEN CASE WHEN {} THEN 'created' END ELSE {} END",
        new_index("c.oid"),
        table_settings_changed()
    )
}

/// For index `oid` (an SQL expression): the table and the columns of the
/// PRIMARY KEY or UNIQUE constraint of its own table it is the index of,
/// or NULL and none (an index made by `CREATE INDEX`, a TOAST table's).
/// A created table's indexes are its own only as its keys' (see
/// [`TableAsMade`]).
fn key_of_index(oid: &str) -> (String, String) {
    let key = format!(
        "FROM pg_catalog.pg_constraint kc \
         WHERE kc.conindid = {oid} AND kc.contype IN ('p', 'u') \
           AND kc.conrelid = (SELECT ki.indrelid FROM pg_catalog.pg_index ki WHERE ki.indexrelid = {oid})"
    );
    (
        rel_name(&format!("(SELECT kc.conrelid {key} LIMIT 1)")),
        format!(
            "coalesce((SELECT {} {key} LIMIT 1), '{{}}')",
            column_names("kc.conrelid", "kc.conkey")
        ),
    )
}

/// Transaction-local setting holding how many rows of each catalog this
/// transaction had deleted at [`record_start_sql`] (from its statistics):
/// an object gone since counts as this transaction's only if it deleted
/// rows of that catalog since. Under READ COMMITTED an object another
/// session dropped and committed meanwhile is gone too, but not ours: it
/// also takes the drop's lock, held by this backend ([`gone_sql`]).
const DELETES_AT_START: &str = "sandbox.catalog_deletes_at_start";

/// Transaction-local setting holding, for each catalog of [`COUNTED`], the
/// rows this transaction had inserted, updated and deleted at
/// [`record_start_sql`] (from its statistics).
const COUNTED_AT_START: &str = "sandbox.catalog_writes_at_start";

/// Catalogs neither push nor rollback writes itself, whose writes are
/// counted from the transaction's statistics, besides any row named: what
/// an app's trigger changes there (a publication's tables — Supabase
/// Realtime —, extended statistics, user mappings, text search
/// configurations, comments, enum values, a large object's data…) has no
/// row to name when it is a deletion, or no part of its own above.
const COUNTED: &[&str] = &[
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_statistic_ext",
    "pg_user_mapping",
    "pg_foreign_server",
    "pg_foreign_data_wrapper",
    "pg_foreign_table",
    "pg_ts_config",
    "pg_ts_config_map",
    "pg_ts_dict",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_largeobject",
    "pg_enum",
    "pg_collation",
    "pg_conversion",
    "pg_opclass",
    "pg_opfamily",
    "pg_amop",
    "pg_amproc",
    "pg_operator",
    "pg_cast",
    "pg_transform",
    "pg_language",
    "pg_aggregate",
    "pg_seclabel",
    "pg_range",
    "pg_description",
    "pg_subscription",
    "pg_subscription_rel",
    "pg_init_privs",
    // Comments and security labels on databases, roles and tablespaces
    // (`COMMENT ON DATABASE`): shared by every database.
    "pg_shdescription",
    "pg_shseclabel",
];

/// The statistics' counts of this transaction's writes to the [`COUNTED`]
/// catalogs, as `relname` and a jsonb array `[inserted, updated, deleted]`.
fn counted_sql() -> String {
    // pg_authid rides along: the roles part of `changed_sql` counts its
    // rows from the start too (a pooled server connection shows the earlier
    // client's unflushed counts), but names them itself.
    let names = COUNTED
        .iter()
        .chain(&["pg_authid"])
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT s.relname::text AS catalog, \
                pg_catalog.jsonb_build_array(s.n_tup_ins, s.n_tup_upd, s.n_tup_del) AS counts \
         FROM pg_catalog.pg_stat_xact_sys_tables s \
         WHERE s.schemaname = 'pg_catalog' AND s.relname IN ({names})"
    )
}

/// The part of [`changed_sql`] naming each [`COUNTED`] catalog this
/// transaction wrote rows of since [`record_start_sql`], with how many.
fn counted_changes_sql() -> String {
    let (ins, upd, del) = (counted_since(0), counted_since(1), counted_since(2));
    format!(
        "SELECT c.catalog, 'rows of catalog ' || c.catalog || ' (' || {ins}::text || ' inserted, ' \
                || {upd}::text || ' updated, ' || {del}::text || ' deleted, from the transaction''s statistics)', \
                NULL::text, NULL::text, NULL::text, NULL::text, false, NULL::text, '{{}}'::text[], false, false, true, \
                NULL::text \
         FROM me, ({}) c WHERE c.catalog <> 'pg_authid' AND {ins} + {upd} + {del} > 0",
        counted_sql()
    )
}

/// Of the row `c` of [`counted_sql`], how many rows of its catalog this
/// transaction inserted (`i` 0), updated (1) or deleted (2) since
/// [`record_start_sql`].
fn counted_since(i: usize) -> String {
    format!(
        "((c.counts ->> {i})::int8 - coalesce((coalesce(nullif(pg_catalog.current_setting('{COUNTED_AT_START}', true), ''), \
           '{{}}')::jsonb -> c.catalog ->> {i})::int8, 0))"
    )
}

/// How many rows of `pg_description` (comments) this transaction inserted,
/// updated and deleted since [`record_start_sql`], from its statistics: a
/// rollback's DROP deletes the comments on what it drops, which the
/// [`COUNTED`] count would otherwise take for someone else's.
pub async fn comment_writes(tx: &Transaction<'_>) -> Result<[i64; 3]> {
    let rows = tx
        .query_typed(
            &format!(
                "SELECT {}, {}, {} FROM ({}) c WHERE c.catalog = 'pg_description'",
                counted_since(0),
                counted_since(1),
                counted_since(2),
                counted_sql()
            ),
            &[],
        )
        .await
        .context("cannot count the comments this transaction wrote")?;
    Ok(rows
        .first()
        .map_or([0; 3], |r| [r.get(0), r.get(1), r.get(2)]))
}

/// The catalogs whose objects [`OBJECTS_AT_START`] records, each with the
/// SELECT of `(key, catalog, object, table, relkind, name, detail,
/// constraint table, constraint columns)` for its objects in every schema
/// but the system's and the temporary ones.
fn recorded_objects() -> Vec<(&'static str, String)> {
    let user_ns = |ns: &str| {
        format!(
            "{ns} IN (SELECT un.oid FROM pg_catalog.pg_namespace un \
              WHERE un.nspname::text NOT IN ('pg_catalog', 'information_schema') \
                AND un.nspname::text NOT LIKE 'pg\\_toast%' \
                AND un.nspname::text NOT LIKE 'pg\\_temp\\_%')"
        )
    };
    let select = |catalog: &str,
                  from: &str,
                  object: String,
                  table: String,
                  relkind: &str,
                  name: String,
                  detail: &str,
                  columns: (String, String),
                  filter: String| {
        // A trigger's definition (see [`trigger_definition`]); NULL for
        // everything else.
        let definition = if catalog == "pg_trigger" {
            trigger_definition("o")
        } else {
            "NULL::text".to_string()
        };
        format!(
            "SELECT '{catalog}:' || o.oid::text AS key, '{catalog}' AS catalog, {object} AS object, \
                    {table} AS tab, {relkind} AS relkind, {name} AS name, {detail} AS detail, \
                    {} AS ctable, {} AS ccols, {definition} AS definition \
             FROM pg_catalog.{catalog} o{from} WHERE {filter}",
            columns.0, columns.1
        )
    };
    let none = || "NULL::text".to_string();
    let no_columns = || (none(), "'{}'::text[]".to_string());
    // An object of no table, named by its identity alone.
    let plain = |catalog: &str, filter: String| {
        select(
            catalog,
            "",
            identify(catalog, "o.oid", "0"),
            none(),
            "NULL::text",
            none(),
            "NULL::text",
            no_columns(),
            filter,
        )
    };
    // A relation's owner: an index's table, a sequence's (serial,
    // identity); joined, not a subquery a row (TOAST tables and their
    // indexes are left out, so no TOAST owner is looked for).
    let class_joins = " LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = o.oid \
         LEFT JOIN LATERAL (SELECT d.refobjid FROM pg_catalog.pg_depend d \
                            WHERE o.relkind = 'S' AND d.classid = 'pg_catalog.pg_class'::regclass \
                              AND d.objid = o.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
                              AND d.deptype IN ('a', 'i') LIMIT 1) seq ON true";
    let owner = "coalesce(i.indrelid, seq.refobjid, o.oid)";
    vec![
        // Relations but TOAST tables (they go with their table); an
        // index names its columns, so an added column's index is the
        // undo's own.
        (
            "pg_class",
            select(
                "pg_class",
                class_joins,
                identify("pg_class", "o.oid", "0"),
                rel_name(owner),
                "o.relkind::text",
                rel_name("o.oid"),
                "NULL::text",
                (
                    format!("CASE WHEN i.indrelid IS NOT NULL THEN {} END", rel_name(owner)),
                    format!(
                        "CASE WHEN i.indrelid IS NOT NULL THEN {} ELSE '{{}}'::text[] END",
                        column_names("i.indrelid", "i.indkey::int2[]")
                    ),
                ),
                format!("o.relkind <> 't' AND {}", user_ns("o.relnamespace")),
            ),
        ),
        (
            "pg_constraint",
            select(
                "pg_constraint",
                "",
                identify("pg_constraint", "o.oid", "0"),
                rel_name("o.conrelid"),
                "NULL::text",
                none(),
                "o.conname::text",
                (
                    rel_name("o.conrelid"),
                    column_names("o.conrelid", "o.conkey"),
                ),
                user_ns("o.connamespace"),
            ),
        ),
        // A foreign key's internal triggers go with its constraint.
        (
            "pg_trigger",
            select(
                "pg_trigger",
                "",
                identify("pg_trigger", "o.oid", "0"),
                rel_name("o.tgrelid"),
                "NULL::text",
                // Its enabled state (`tgenabled`), for [`TriggerStates`].
                "o.tgenabled::text".to_string(),
                "o.tgname::text",
                no_columns(),
                format!(
                    "NOT o.tgisinternal AND o.tgrelid IN (SELECT tc.oid FROM pg_catalog.pg_class tc WHERE {})",
                    user_ns("tc.relnamespace")
                ),
            ),
        ),
        (
            "pg_proc",
            plain("pg_proc", user_ns("o.pronamespace")),
        ),
        // A view's own `_RETURN` rule goes with the view.
        (
            "pg_rewrite",
            select(
                "pg_rewrite",
                "",
                identify("pg_rewrite", "o.oid", "0"),
                rel_name("o.ev_class"),
                "NULL::text",
                none(),
                "o.rulename::text",
                no_columns(),
                format!(
                    "o.rulename <> '_RETURN' AND o.ev_class IN (SELECT rc.oid FROM pg_catalog.pg_class rc WHERE {})",
                    user_ns("rc.relnamespace")
                ),
            ),
        ),
        (
            "pg_policy",
            select(
                "pg_policy",
                "",
                identify("pg_policy", "o.oid", "0"),
                rel_name("o.polrelid"),
                "NULL::text",
                none(),
                "o.polname::text",
                no_columns(),
                "true".into(),
            ),
        ),
        (
            "pg_namespace",
            select(
                "pg_namespace",
                "",
                identify("pg_namespace", "o.oid", "0"),
                none(),
                "NULL::text",
                "o.nspname::text".into(),
                "NULL::text",
                no_columns(),
                user_ns("o.oid"),
            ),
        ),
        // Enums, domains, ranges and base types; a relation's row type and
        // every array type go with what they belong to.
        (
            "pg_type",
            plain(
                "pg_type",
                format!(
                    "o.typtype IN ('e', 'd', 'r', 'm', 'b') AND o.typrelid = 0 \
                     AND NOT (o.typtype = 'b' AND o.typelem <> 0) AND {}",
                    user_ns("o.typnamespace")
                ),
            ),
        ),
        (
            "pg_event_trigger",
            plain("pg_event_trigger", "true".into()),
        ),
        (
            "pg_extension",
            plain("pg_extension", "true".into()),
        ),
    ]
}

/// The part of [`changed_sql`] naming the objects recorded at the start
/// that are gone, in a catalog this transaction deleted rows of since, and
/// whose lock this backend holds. A DROP locks what it deletes until the
/// transaction ends (a relation ACCESS EXCLUSIVE, `locktype` `relation`;
/// any other object, `locktype` `object` by catalog and oid): an object
/// gone whose lock this transaction does not hold was dropped by another
/// session, which committed while this one ran (F2: an app's ETL job
/// dropping its scratch table during a rollback was named as the
/// rollback's DDL, and the push was told to pass --allow-irreversible). It
/// is no DDL of this transaction, and not named. Conversely no other
/// session can drop what this one holds any lock on.
fn gone_sql() -> String {
    let exists = recorded_objects()
        .iter()
        .map(|(catalog, _)| {
            format!(
                "WHEN '{catalog}' THEN EXISTS (SELECT 1 FROM pg_catalog.{catalog} x \
                   WHERE x.oid = pg_catalog.split_part(g.key, ':', 2)::oid)"
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "SELECT g.value ->> 0, (g.value ->> 1) || ' (dropped)', g.value ->> 2, g.value ->> 3, \
                g.value ->> 4, g.value ->> 5, false, g.value ->> 6, \
                ARRAY(SELECT pg_catalog.jsonb_array_elements_text(g.value -> 7)), false, true, false, \
                CASE WHEN g.value ->> 0 = 'pg_trigger' \
                     THEN pg_catalog.jsonb_build_array(g.value, NULL::jsonb)::text END \
         FROM me, pg_catalog.jsonb_each(coalesce(nullif(pg_catalog.current_setting('{OBJECTS_AT_START}', true), ''), \
                                                 '{{}}')::jsonb) g, \
              (SELECT coalesce(pg_catalog.array_agg(coalesce(lc.relname::text, 'pg_class') || ':' \
                                                    || coalesce(l.objid, l.relation)::text), '{{}}') AS keys \
               FROM pg_catalog.pg_locks l \
               LEFT JOIN pg_catalog.pg_class lc ON l.locktype = 'object' AND lc.oid = l.classid \
               WHERE l.pid = pg_catalog.pg_backend_pid() AND l.granted \
                 AND (l.locktype = 'relation' \
                      OR (l.locktype = 'object' \
                          AND lc.relnamespace = 'pg_catalog'::pg_catalog.regnamespace))) held \
         WHERE NOT (CASE g.value ->> 0 {exists} ELSE true END) \
           AND {deleted} > 0 AND g.key = ANY(held.keys)",
        deleted = deleted_since("g.value ->> 0"),
    )
}

/// How many rows of catalog `catalog` (an SQL text expression naming it)
/// this transaction deleted since [`record_start_sql`].
fn deleted_since(catalog: &str) -> String {
    format!(
        "(coalesce((SELECT s.n_tup_del FROM pg_catalog.pg_stat_xact_sys_tables s \
                    WHERE s.schemaname = 'pg_catalog' AND s.relname = {catalog}), 0) \
          - coalesce((coalesce(nullif(pg_catalog.current_setting('{DELETES_AT_START}', true), ''), '{{}}')::jsonb \
                      ->> ({catalog}))::int8, 0))"
    )
}

/// How far `x` (an `xid`) lies after this transaction's top-level id
/// (`me.top`, an `xid8` as int8), modulo 2^32: 0 for the top-level id, the
/// subtransactions' ids after it. An older id is 2^31 or more away.
fn offset(x: &str) -> String {
    format!("(({x}::text::int8 - me.top % 4294967296 + 4294967296) % 4294967296)")
}

/// Whether the row version whose `xmin` is `x` was written by this
/// transaction (or one of its subtransactions) after [`DDL_SINCE`]. A
/// visible row whose id is at or after ours is ours unless another
/// transaction that began after ours has committed it meanwhile (READ
/// COMMITTED sees those): `pg_xact_status` tells them apart. The CASE keeps
/// it from being asked about an id in the future, which is an error.
fn mine(x: &str) -> String {
    mine_after(x, "me.since")
}

/// [`mine`], for ids further than `since` (an offset, -1 for all).
fn mine_after(x: &str, since: &str) -> String {
    let off = offset(x);
    format!(
        "(CASE WHEN {off} < 2147483648 AND {off} > {since} \
           THEN pg_catalog.pg_xact_status((me.top + {off})::text::xid8) = 'in progress' \
           ELSE false END)"
    )
}

/// `pg_identify_object` of (class, object, sub-object): how an object is
/// named, always schema-qualified.
fn identify(class: &str, objid: &str, sub: &str) -> String {
    format!(
        "(SELECT o.type || ' ' || o.identity \
          FROM pg_catalog.pg_identify_object('pg_catalog.{class}'::regclass, {objid}, {sub}) o)"
    )
}

/// `schema.name` of relation `oid`, unquoted (as plans and --allow-writes
/// name tables), NULL for none.
fn rel_name(oid: &str) -> String {
    format!(
        "(SELECT own_n.nspname::text || '.' || own_r.relname::text FROM pg_catalog.pg_class own_r \
          JOIN pg_catalog.pg_namespace own_n ON own_n.oid = own_r.relnamespace WHERE own_r.oid = {oid})"
    )
}

/// Relation `oid`, or the table whose TOAST table it is: a TOAST table and
/// its index belong to their table.
fn untoasted(oid: &str) -> String {
    format!(
        "coalesce((SELECT tt.oid FROM pg_catalog.pg_class tt WHERE tt.reltoastrelid = {oid}), {oid})"
    )
}

/// The names of columns `keys` of relation `rel`.
fn column_names(rel: &str, keys: &str) -> String {
    format!(
        "(SELECT coalesce(pg_catalog.array_agg(a.attname::text), '{{}}') \
          FROM pg_catalog.unnest({keys}) ck(n) \
          JOIN pg_catalog.pg_attribute a ON a.attrelid = {rel} AND a.attnum = ck.n)"
    )
}

/// Temporary objects are the session's own and go with it: left out.
const NOT_TEMP: &str =
    "n.nspname::text NOT LIKE 'pg\\_temp\\_%' AND n.nspname::text NOT LIKE 'pg\\_toast\\_temp\\_%'";

/// One catalog's part of [`changed_sql`]: the rows of `pg_catalog.{catalog}`
/// (as `alias`) this transaction wrote, as the ten columns [`CatalogChange`]
/// reads. Each column is an SQL expression; what a part leaves unset is
/// NULL, false or empty.
struct Part {
    catalog: &'static str,
    alias: &'static str,
    /// Further relations joined to the catalog (leading space included).
    joins: &'static str,
    /// A condition besides the row being this transaction's.
    filter: Option<&'static str>,
    /// The object's namespace oid: joined as `n` (pg_namespace's own rows
    /// are `n` already) to leave temporary objects out.
    namespace: Option<&'static str>,
    object: String,
    table: String,
    relkind: String,
    name: String,
    detail: String,
    internal: &'static str,
    constraint_table: String,
    constraint_columns: String,
    dropped: &'static str,
    /// A user trigger's states at the start and now (see
    /// [`trigger_states`]).
    trigger: String,
}

impl Part {
    /// `catalog`'s rows, named by `pg_identify_object` of their own oid.
    fn new(catalog: &'static str, alias: &'static str) -> Part {
        let null = || "NULL::text".to_string();
        Part {
            catalog,
            alias,
            joins: "",
            filter: None,
            namespace: None,
            object: identify(catalog, &format!("{alias}.oid"), "0"),
            table: null(),
            relkind: null(),
            name: null(),
            detail: null(),
            internal: "false",
            constraint_table: null(),
            constraint_columns: "'{}'::text[]".to_string(),
            dropped: "false",
            trigger: null(),
        }
    }

    /// Whose rows belong to relation `oid` (an expression).
    fn of(self, oid: &str) -> Part {
        Part {
            table: rel_name(oid),
            ..self
        }
    }

    /// Named (column, rule, policy…) by `detail`.
    fn detail(self, detail: &str) -> Part {
        Part {
            detail: detail.to_string(),
            ..self
        }
    }

    fn sql(&self) -> String {
        let Part { catalog, alias, .. } = self;
        let mut joins = self.joins.to_string();
        let mut conditions: Vec<String> = self.filter.iter().map(|f| f.to_string()).collect();
        conditions.push(mine(&format!("{alias}.xmin")));
        if let Some(ns) = self.namespace {
            if *catalog != "pg_namespace" {
                joins.push_str(&format!(" JOIN pg_catalog.pg_namespace n ON n.oid = {ns}"));
            }
            conditions.push(NOT_TEMP.to_string());
        }
        format!(
            "SELECT '{catalog}', {}, {}, {}, {}, {}, {}, {}, {}, {}, false, false, {} \
             FROM me, pg_catalog.{catalog} {alias}{joins} WHERE {}",
            self.object,
            self.table,
            self.relkind,
            self.name,
            self.detail,
            self.internal,
            self.constraint_table,
            self.constraint_columns,
            self.dropped,
            self.trigger,
            conditions.join(" AND ")
        )
    }
}

/// The catalog rows this transaction wrote, one row each: catalog, what it
/// is (`pg_identify_object`), the relation it belongs to (an index's or
/// TOAST table's table, an owned sequence's table), the relation's kind
/// when the row is the relation's own, the column / trigger / constraint
/// name, whether a trigger is internal (a foreign key's), the table and
/// columns of the constraint such a trigger or a constraint serves, and
/// whether a column is dropped. Temporary objects are left out.
fn changed_sql() -> String {
    // A relation's owner: an index's table, a TOAST table's table, a
    // sequence owned by a column (serial, identity).
    let owner = |c: &str| {
        untoasted(&format!(
            "coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = {c}.oid), \
                      (SELECT d.refobjid FROM pg_catalog.pg_depend d \
                       WHERE {c}.relkind = 'S' AND d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = {c}.oid \
                         AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), \
                      {c}.oid)"
        ))
    };
    let class_owner = owner("c");
    // An index's key (see [`key_of_index`]): NULL for other relations.
    let class_key = key_of_index("c.oid");
    let index_key = key_of_index("i.indexrelid");
    let parts = [
        // Relations: tables, indexes, sequences, views, TOAST tables.
        // A table's settings the push never changes, changed all the same,
        // are its detail and named.
        Part {
            namespace: Some("c.relnamespace"),
            relkind: "c.relkind::text".into(),
            name: rel_name("c.oid"),
            object: format!(
                "{} || coalesce(' (' || {} || ')', '')",
                identify("pg_class", "c.oid", "0"),
                class_detail()
            ),
            detail: class_detail(),
            constraint_table: class_key.0.clone(),
            constraint_columns: class_key.1.clone(),
            ..Part::new("pg_class", "c").of(&class_owner)
        },
        // Sequences' parameters (ALTER SEQUENCE … INCREMENT BY).
        Part {
            joins: " JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid",
            namespace: Some("c.relnamespace"),
            object: identify("pg_class", "c.oid", "0"),
            relkind: "'S'".into(),
            name: rel_name("c.oid"),
            ..Part::new("pg_sequence", "s").of(&class_owner)
        },
        // Columns of tables, views and composite types (an index's or a
        // TOAST table's come with its relation row).
        // A column dropped here is named as it was at the start.
        Part {
            joins: " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid",
            filter: Some("a.attnum > 0 AND c.relkind NOT IN ('i', 'I', 't', 'S')"),
            namespace: Some("c.relnamespace"),
            object: format!(
                "CASE WHEN a.attisdropped AND {at_start} IS NOT NULL \
                 THEN 'table column ' || {table} || '.' || {at_start} || ' (dropped)' \
                 ELSE {identified} END",
                at_start = column_at_start("a.attrelid", "a.attnum"),
                table = rel_name("a.attrelid"),
                identified = identify("pg_class", "a.attrelid", "a.attnum"),
            ),
            dropped: "a.attisdropped",
            ..Part::new("pg_attribute", "a")
                .of("a.attrelid")
                .detail(&format!(
                    "CASE WHEN a.attisdropped THEN coalesce({}, a.attname::text) \
                     ELSE a.attname::text END",
                    column_at_start("a.attrelid", "a.attnum")
                ))
        },
        Part::new("pg_attrdef", "d").of("d.adrelid").detail(
            "(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid = d.adrelid AND a.attnum = d.adnum)",
        ),
        // Its type (`p`, `u`, `f`, `c`, `n`…) as its kind.
        Part {
            namespace: Some("k.connamespace"),
            relkind: "k.contype::text".into(),
            constraint_table: rel_name("k.conrelid"),
            constraint_columns: column_names("k.conrelid", "k.conkey"),
            ..Part::new("pg_constraint", "k")
                .of("k.conrelid")
                .detail("k.conname::text")
        },
        Part {
            joins: " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid",
            namespace: Some("c.relnamespace"),
            // Named as its pg_class row is, so the two are listed once.
            object: format!(
                "{} || CASE WHEN {} THEN ' (created)' ELSE '' END",
                identify("pg_class", "i.indexrelid", "0"),
                new_index("i.indexrelid")
            ),
            detail: format!("CASE WHEN {} THEN 'created' END", new_index("i.indexrelid")),
            constraint_table: index_key.0,
            constraint_columns: index_key.1,
            ..Part::new("pg_index", "i").of(&untoasted("i.indrelid"))
        },
        Part {
            joins: " LEFT JOIN pg_catalog.pg_constraint k ON k.oid = t.tgconstraint",
            internal: "t.tgisinternal",
            // A trigger cloned onto a partition names its parent's table:
            // holding off the parent's trigger rewrites the clones' rows.
            constraint_table: rel_name(
                "coalesce(k.conrelid, (SELECT pt.tgrelid FROM pg_catalog.pg_trigger pt \
                 WHERE pt.oid = t.tgparentid))",
            ),
            constraint_columns: format!(
                "coalesce({}, '{{}}')",
                column_names("k.conrelid", "k.conkey")
            ),
            // How it differs from the start is said by [`transaction_ddl`].
            trigger: trigger_states(),
            ..Part::new("pg_trigger", "t")
                .of("t.tgrelid")
                .detail("t.tgname::text")
        },
        // A table's row type and its array type belong to the table.
        Part {
            namespace: Some("ty.typnamespace"),
            ..Part::new("pg_type", "ty").of(
                "coalesce(nullif(ty.typrelid, 0), \
                 (SELECT nullif(e.typrelid, 0) FROM pg_catalog.pg_type e WHERE e.oid = ty.typelem))",
            )
        },
        Part::new("pg_rewrite", "r")
            .of("r.ev_class")
            .detail("r.rulename::text"),
        Part::new("pg_policy", "p")
            .of("p.polrelid")
            .detail("p.polname::text"),
        Part {
            object: identify("pg_class", "h.inhrelid", "0"),
            ..Part::new("pg_inherits", "h").of("h.inhparent")
        },
        Part::new("pg_statistic_ext", "x").of("x.stxrelid"),
        // A comment belongs to what it describes.
        Part {
            object: "'comment on ' || (SELECT o.type || ' ' || o.identity \
                     FROM pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) o)"
                .into(),
            table: format!(
                "CASE WHEN d.classoid = 'pg_catalog.pg_class'::regclass THEN {} END",
                rel_name("d.objoid")
            ),
            ..Part::new("pg_description", "d")
        },
        // Objects that belong to no table. A schema made since the start
        // has the detail `created`: a first push makes the tool's own.
        Part {
            namespace: Some("n.oid"),
            name: "n.nspname::text".into(),
            detail: format!(
                "CASE WHEN NOT (coalesce(nullif(pg_catalog.current_setting('{OBJECTS_AT_START}', true), ''), \
                 '{{}}')::jsonb ? ('pg_namespace:' || n.oid::text)) THEN 'created' END"
            ),
            ..Part::new("pg_namespace", "n")
        },
        Part::new("pg_proc", "p"),
        // An object marked as depending on an extension (see
        // [`extension_marks_sql`]): its own row is not rewritten.
        Part {
            filter: Some("dx.deptype = 'x'"),
            object: format!(
                "{MARKED_OBJECT} || ' depends on extension ' || \
                 (SELECT e.extname::text FROM pg_catalog.pg_extension e WHERE e.oid = dx.refobjid)"
            ),
            table: marked_table(),
            ..Part::new("pg_depend", "dx")
        },
        Part::new("pg_event_trigger", "e"),
        Part::new("pg_extension", "x"),
        Part::new("pg_operator", "o"),
        Part::new("pg_cast", "x"),
        Part::new("pg_publication_rel", "x").of("x.prrelid"),
        // Large objects (`lo_create`, `lo_from_bytea`, `lo_import`): their
        // data is no user table's row either.
        Part {
            object: identify("pg_largeobject", "l.oid", "0"),
            ..Part::new("pg_largeobject_metadata", "l")
        },
        // Privileges and ownership recorded against a role (a GRANT to a
        // role, a policy's role, a new object's owner): `pg_shdepend` is
        // shared by every database, so this database's rows (or a role's,
        // database 0). A created table's (its owner, the grants default
        // privileges give it) belong to it.
        Part {
            joins: " LEFT JOIN pg_catalog.pg_class c \
                     ON s.classid = 'pg_catalog.pg_class'::regclass AND c.oid = s.objid",
            filter: Some(
                "s.dbid IN (0, (SELECT d.oid FROM pg_catalog.pg_database d \
                                WHERE d.datname = pg_catalog.current_database())) \
                 AND s.refclassid = 'pg_catalog.pg_authid'::regclass",
            ),
            object: "CASE s.deptype WHEN 'a' THEN 'privileges on ' WHEN 'o' THEN 'owner of ' \
                          WHEN 'r' THEN 'policy role of ' WHEN 'i' THEN 'initial privileges on ' \
                          ELSE 'dependency of ' END \
                     || coalesce((SELECT o.type || ' ' || o.identity \
                                  FROM pg_catalog.pg_identify_object(s.classid, s.objid, s.objsubid) o), \
                                 s.classid::regclass::text || ' ' || s.objid::text) \
                     || ' for role ' || s.refobjid::regrole::text"
                .into(),
            table: rel_name(&class_owner),
            name: "CASE WHEN s.classid = 'pg_catalog.pg_namespace'::regclass \
                   THEN (SELECT sn.nspname::text FROM pg_catalog.pg_namespace sn WHERE sn.oid = s.objid) END"
                .into(),
            detail: "s.refobjid::regrole::text".into(),
            ..Part::new("pg_shdepend", "s")
        },
        // Default privileges (`ALTER DEFAULT PRIVILEGES … GRANT … TO`):
        // every later table of the app gets them.
        Part::new("pg_default_acl", "d"),
        // A role's or database's settings (`ALTER ROLE … SET`): every later
        // session of that role gets them.
        Part {
            object: "'settings of ' \
                     || CASE WHEN r.setrole = 0 THEN 'every role' ELSE 'role ' || r.setrole::regrole::text END \
                     || CASE WHEN r.setdatabase = 0 THEN '' \
                             ELSE ' in database ' || coalesce((SELECT d.datname::text FROM pg_catalog.pg_database d \
                                                              WHERE d.oid = r.setdatabase), '?') END \
                     || ': ' || pg_catalog.array_to_string(r.setconfig, ', ')"
                .into(),
            ..Part::new("pg_db_role_setting", "r")
        },
        Part {
            object: "'membership of role ' || m.member::regrole::text || ' in role ' || m.roleid::regrole::text"
                .into(),
            ..Part::new("pg_auth_members", "m")
        },
        // A database's row (`ALTER DATABASE … CONNECTION LIMIT`, `OWNER
        // TO`, `ALLOW_CONNECTIONS`, `GRANT`/`REVOKE … ON DATABASE`), this
        // one said with how it differs from the start.
        Part {
            object: format!(
                "{} || coalesce(' (' || {} || ')', '')",
                identify("pg_database", "db.oid", "0"),
                database_settings_changed()
            ),
            ..Part::new("pg_database", "db")
        },
        // Comments and security labels on shared objects: a database, a
        // role, a tablespace (`COMMENT ON DATABASE`). Deleted ones are
        // counted ([`COUNTED`]).
        Part {
            object: "'comment on ' || (SELECT o.type || ' ' || o.identity \
                     FROM pg_catalog.pg_identify_object(d.classoid, d.objoid, 0) o)"
                .into(),
            ..Part::new("pg_shdescription", "d")
        },
        Part {
            object: "'security label (' || l.provider || ') on ' || (SELECT o.type || ' ' || o.identity \
                     FROM pg_catalog.pg_identify_object(l.classoid, l.objoid, 0) o)"
                .into(),
            ..Part::new("pg_shseclabel", "l")
        },
    ];
    // Roles themselves (CREATE / ALTER / DROP ROLE): `pg_authid` is readable
    // by superusers only (not by Supabase's `postgres`), so its rows are
    // counted instead, from the transaction's statistics (`track_counts` is
    // pinned on), since the start like the other counted catalogs: through
    // a transaction pooler the server connection still shows the previous
    // client's unflushed role changes (h12 F1: a push refused for ~1 s
    // after any app's ALTER ROLE there, blamed on a trigger).
    let roles = format!(
        "SELECT 'pg_authid', 'roles created, changed or dropped (' \
                || ({ins} + {upd} + {del})::text || ' rows of pg_authid)', \
                NULL::text, NULL::text, NULL::text, NULL::text, false, NULL::text, '{{}}'::text[], false, false, false, \
                NULL::text \
         FROM me, ({counted}) c \
         WHERE c.catalog = 'pg_authid' AND {ins} + {upd} + {del} > 0",
        ins = counted_since(0),
        upd = counted_since(1),
        del = counted_since(2),
        counted = counted_sql()
    );
    // Large objects unlinked (`lo_unlink`): neither push nor rollback
    // unlinks one, so any deleted row of their catalog is someone else's.
    let unlinked = format!(
        "SELECT 'pg_largeobject_metadata', {n}::text || ' large object(s) (dropped)', \
                NULL::text, NULL::text, NULL::text, NULL::text, false, NULL::text, '{{}}'::text[], false, true, false, \
                NULL::text \
         FROM me WHERE {n} > 0",
        n = deleted_since("'pg_largeobject_metadata'")
    );
    format!(
        "WITH me AS MATERIALIZED ( \
           SELECT top, coalesce(nullif(pg_catalog.current_setting('{DDL_SINCE}', true), '')::int8, -1) AS since \
           FROM (SELECT pg_catalog.pg_current_xact_id_if_assigned()::text::int8 AS top) t \
           WHERE top IS NOT NULL) \
         {}",
        parts
            .iter()
            .map(Part::sql)
            .chain([
                roles.to_string(),
                unlinked,
                gone_sql(),
                marks_removed_sql(),
                counted_changes_sql(),
            ])
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    )
}

/// The statement recording [`DDL_SINCE`]: the furthest id of this
/// transaction already on a catalog row (the push's own DDL, at the
/// rehearsed undo's savepoint), or -1. Sent with the write accounting's
/// [`crate::db::writes::record_start_sql`].
pub fn record_start_sql() -> String {
    let parts = [
        "pg_class c",
        "pg_attribute c",
        "pg_constraint c",
        "pg_trigger c",
        "pg_type c",
        "pg_sequence c",
        "pg_attrdef c",
        "pg_index c",
    ];
    let off = offset("c.xmin");
    let max = parts
        .iter()
        .map(|p| {
            format!(
                "SELECT max({off}) AS m FROM me, pg_catalog.{p} WHERE {}",
                mine_after("c.xmin", "-1")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let objects = recorded_objects()
        .into_iter()
        .map(|(_, select)| select)
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    // Without a transaction id nothing is written yet: -1.
    format!(
        "SELECT pg_catalog.set_config('{DDL_SINCE}', coalesce(( \
           WITH me AS MATERIALIZED (SELECT top FROM (SELECT pg_catalog.pg_current_xact_id_if_assigned()::text::int8 AS top) t \
                                    WHERE top IS NOT NULL) \
           SELECT max(m) FROM ({max}) x), -1)::text, true), \
         pg_catalog.set_config('{OBJECTS_AT_START}', coalesce(( \
           SELECT pg_catalog.jsonb_object_agg(o.key, pg_catalog.jsonb_build_array( \
                    o.catalog, o.object, o.tab, o.relkind, o.name, o.detail, o.ctable, pg_catalog.to_jsonb(o.ccols), \
                    o.definition)) \
           FROM ({objects}) o), '{{}}')::text, true), \
         pg_catalog.set_config('{TABLES_AT_START}', coalesce(( \
           SELECT pg_catalog.jsonb_object_agg(c.oid::text, pg_catalog.jsonb_build_array({settings}, \
                    (SELECT pg_catalog.jsonb_object_agg(a.attnum::text, a.attname::text) \
                     FROM pg_catalog.pg_attribute a \
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))) \
           FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'f', 'm') \
             AND c.relnamespace IN (SELECT un.oid FROM pg_catalog.pg_namespace un \
                                    WHERE un.nspname::text NOT IN ('pg_catalog', 'information_schema') \
                                      AND un.nspname::text NOT LIKE 'pg\\_t%')), '{{}}')::text, true), \
         pg_catalog.set_config('{MARKS_AT_START}', coalesce(( \
           SELECT pg_catalog.jsonb_object_agg(m.key, pg_catalog.jsonb_build_array(m.object, m.extension, m.tab)) \
           FROM ({marks}) m), '{{}}')::text, true), \
         pg_catalog.set_config('{DATABASE_AT_START}', coalesce(( \
           SELECT pg_catalog.jsonb_build_object(db.oid::text, pg_catalog.jsonb_build_array({database})) \
           FROM pg_catalog.pg_database db WHERE db.datname = pg_catalog.current_database()), '{{}}')::text, true), \
         pg_catalog.set_config('{COUNTED_AT_START}', coalesce(( \
           SELECT pg_catalog.jsonb_object_agg(c.catalog, c.counts) FROM ({counted}) c), '{{}}')::text, true), \
         pg_catalog.set_config('{DELETES_AT_START}', coalesce(( \
           SELECT pg_catalog.jsonb_object_agg(s.relname::text, s.n_tup_del) \
           FROM pg_catalog.pg_stat_xact_sys_tables s \
           WHERE s.schemaname = 'pg_catalog' AND s.n_tup_del > 0), '{{}}')::text, true)",
        counted = counted_sql(),
        marks = extension_marks_sql(),
        database = DATABASE_SETTINGS
            .iter()
            .map(|(expr, _)| *expr)
            .collect::<Vec<_>>()
            .join(", "),
        settings = TABLE_SETTINGS
            .iter()
            .map(|(expr, _)| *expr)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One catalog row this transaction wrote (see [`changed_sql`]). Default:
/// for tests, which build one naming only the fields they look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogChange {
    /// The catalog: `pg_class`, `pg_attribute`, `pg_largeobject_metadata`…
    pub catalog: String,
    /// What it is, as `pg_identify_object` names it (`table app.t`,
    /// `index public.workflows_x_idx`, `large object 16400`).
    pub object: String,
    /// `schema.table` it belongs to, if any.
    pub table: Option<String>,
    /// For a relation's own row, its kind (`r`, `i`, `S`, `t`…); for a
    /// constraint, its type (`p`, `u`, `f`, `c`, `n`…).
    pub relkind: Option<String>,
    /// For a relation's own row, `schema.name`; for a schema, its name.
    pub name: Option<String>,
    /// The column, trigger, constraint, rule or policy name.
    pub detail: Option<String>,
    /// A trigger Postgres made for a foreign key.
    pub internal: bool,
    /// The table of the constraint a trigger serves, or a constraint's own;
    /// for a trigger cloned onto a partition, the parent trigger's table;
    /// for an index made or written here, the table of the PRIMARY KEY or
    /// UNIQUE constraint it is the index of (none: a plain index); for one
    /// dropped, its table.
    pub constraint_table: Option<String>,
    /// That constraint's columns (a dropped index's: its columns).
    pub constraint_columns: Vec<String>,
    /// A column dropped in this transaction.
    pub dropped: bool,
    /// An object that existed at the start and is gone: dropped in this
    /// transaction (named as it was at the start).
    pub gone: bool,
    /// Rows of a [`COUNTED`] catalog, counted from the statistics rather
    /// than read (`object` says how many of each kind).
    pub counted: bool,
    /// For a user trigger (not a foreign key's): what it was at the start
    /// and what it is now, matched by oid.
    pub trigger: Option<TriggerStates>,
}

/// A user trigger as [`record_start_sql`] and [`changed_sql`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerState {
    pub name: String,
    /// `pg_trigger.tgenabled`: O, A, R or D.
    pub enabled: String,
    /// Its definition without its name (see [`trigger_definition`]).
    pub definition: String,
}

/// One user trigger, by oid, at the start of the transaction and just
/// before COMMIT. Matching by oid, not by name, is what tells the trigger
/// an app renamed away (or replaced in place) from a copy made under its
/// name: an event trigger firing on the push's own ENABLE of a held-off
/// stamp that renamed the real one, disabled it and made a never-firing
/// copy (`WHEN (false)`) under the old name passed as "as it was" (Q1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerStates {
    /// None: made since the start.
    pub before: Option<TriggerState>,
    /// None: gone (dropped since the start).
    pub now: Option<TriggerState>,
}

/// One way a trigger differs from what it was at the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerDifference {
    /// Not there at the start.
    Created,
    /// There at the start, gone now.
    Gone,
    Renamed {
        from: String,
        to: String,
    },
    /// Events, table, WHEN clause, function or arguments.
    Definition {
        before: String,
        now: String,
    },
    Enabled {
        before: String,
        now: String,
    },
}

impl TriggerStates {
    /// How the trigger differs from the start; empty when it is as it was
    /// (a hold-off that enabled it again in its old mode leaves nothing).
    pub fn differences(&self) -> Vec<TriggerDifference> {
        let (before, now) = match (&self.before, &self.now) {
            (None, _) => return vec![TriggerDifference::Created],
            (Some(_), None) => return vec![TriggerDifference::Gone],
            (Some(b), Some(n)) => (b, n),
        };
        let mut out = Vec::new();
        if before.name != now.name {
            out.push(TriggerDifference::Renamed {
                from: before.name.clone(),
                to: now.name.clone(),
            });
        }
        if before.definition != now.definition {
            out.push(TriggerDifference::Definition {
                before: before.definition.clone(),
                now: now.definition.clone(),
            });
        }
        if before.enabled != now.enabled {
            out.push(TriggerDifference::Enabled {
                before: before.enabled.clone(),
                now: now.enabled.clone(),
            });
        }
        out
    }

    /// There at the start, and now as it was then: name, definition and
    /// enabled state.
    pub fn as_at_start(&self) -> bool {
        self.before.is_some() && self.before == self.now
    }

    /// From the JSON text of [`trigger_states`] (or of a gone trigger's
    /// start entry): `[start entry or null, [enabled, name, definition] or
    /// null]`. A start entry is `[catalog, object, table, relkind,
    /// enabled, name, constraint table, constraint columns, definition]`.
    fn parse(text: &str) -> Option<TriggerStates> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
        let before = v.get(0).filter(|b| !b.is_null()).map(|b| TriggerState {
            enabled: s(&b[4]),
            name: s(&b[5]),
            definition: s(&b[8]),
        });
        let now = v.get(1).filter(|n| !n.is_null()).map(|n| TriggerState {
            enabled: s(&n[0]),
            name: s(&n[1]),
            definition: s(&n[2]),
        });
        Some(TriggerStates { before, now })
    }
}

/// What the DDL check says of a trigger row that differs from the start,
/// after its name (the name it has now): `created`, `renamed from X`,
/// `definition before: A; now: B`, `enabled before, disabled now`.
fn said_in_ddl(differences: &[TriggerDifference]) -> Option<String> {
    let said: Vec<String> = differences
        .iter()
        .filter_map(|d| match d {
            TriggerDifference::Created => Some("created".to_string()),
            // A gone object is named `(dropped)` already.
            TriggerDifference::Gone => None,
            TriggerDifference::Renamed { from, .. } => Some(format!("renamed from {from}")),
            TriggerDifference::Definition { before, now } => {
                Some(format!("definition before: {before}; now: {now}"))
            }
            TriggerDifference::Enabled { before, now } => Some(format!(
                "{} before, {} now",
                crate::db::triggers::enabled_as_said(before),
                crate::db::triggers::enabled_as_said(now)
            )),
        })
        .collect();
    (!said.is_empty()).then(|| said.join(", "))
}

/// Every catalog row this transaction wrote since [`record_start_sql`].
pub async fn transaction_ddl(tx: &Transaction<'_>) -> Result<Vec<CatalogChange>> {
    let rows = tx
        .query_typed(&changed_sql(), &[])
        .await
        .context("cannot read the catalog rows this transaction wrote")?;
    Ok(rows
        .iter()
        .map(|r| CatalogChange {
            catalog: r.get(0),
            object: r.get::<_, Option<String>>(1).unwrap_or_default(),
            table: r.get(2),
            relkind: r.get(3),
            name: r.get(4),
            detail: r.get(5),
            internal: r.get(6),
            constraint_table: r.get(7),
            constraint_columns: r.get::<_, Option<Vec<String>>>(8).unwrap_or_default(),
            dropped: r.get(9),
            gone: r.get(10),
            counted: r.get(11),
            trigger: r
                .get::<_, Option<String>>(12)
                .and_then(|t| TriggerStates::parse(&t)),
        })
        .map(|mut c| {
            if let Some(states) = &c.trigger {
                // A trigger is named as it is now (or, gone, as it was),
                // with how it differs from the start.
                c.name = None;
                if let Some(said) = said_in_ddl(&states.differences()) {
                    c.object = format!("{} ({said})", c.object);
                }
            }
            c
        })
        .collect::<Vec<_>>())
    .map(|changes| {
        // A counted catalog whose rows are named already is not counted
        // again.
        let named: Vec<String> = changes
            .iter()
            .filter(|c| !c.counted)
            .map(|c| c.catalog.clone())
            .collect();
        changes
            .into_iter()
            .filter(|c| !c.counted || !named.contains(&c.catalog))
            .collect()
    })
}

/// A table as its CREATE TABLE makes it (the plan's, the receipts'): the
/// catalog rows of a table made in this transaction are all written by
/// it, so which of them its CREATE made is told by what they are, not by
/// who wrote them. Constraints are matched by type and columns, not by the
/// names Postgres derives (`tasks_pkey1` when `tasks_pkey` is taken).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableAsMade {
    /// `schema.table`.
    pub table: String,
    pub columns: Vec<String>,
    /// The columns it gives a default (a serial column's `nextval`).
    pub defaults: Vec<String>,
    /// Whether a column has a sequence of its own (serial, identity).
    pub sequenced: bool,
    /// Its constraints as (`pg_constraint.contype`, columns): `p` its
    /// primary key, `u` each UNIQUE, `f` each foreign key, `c` a CHECK,
    /// `n` a NOT NULL column (Postgres 18 on; key columns included).
    pub constraints: Vec<(String, Vec<String>)>,
}

impl TableAsMade {
    /// Table `t` as `diff::postgres_ddl` creates it from target.json: its
    /// columns, key, UNIQUE and foreign keys, a serial column's sequence
    /// and default.
    pub fn planned(t: &crate::plan::TargetTable) -> TableAsMade {
        use crate::plan::names::{numbered, serial};
        let mut constraints = vec![("p".to_string(), t.primary_key.clone())];
        constraints.extend(t.unique.iter().map(|u| ("u".to_string(), u.clone())));
        constraints.extend(
            t.foreign_keys
                .iter()
                .map(|f| ("f".to_string(), f.columns.clone())),
        );
        constraints.extend(
            t.columns
                .iter()
                .filter(|c| c.not_null || t.primary_key.contains(&c.name))
                .map(|c| ("n".to_string(), vec![c.name.clone()])),
        );
        TableAsMade {
            table: qualify(&t.name),
            columns: t.columns.iter().map(|c| c.name.clone()).collect(),
            defaults: t
                .columns
                .iter()
                .filter(|c| serial(&c.pg_type))
                .map(|c| c.name.clone())
                .collect(),
            sequenced: t.columns.iter().any(|c| numbered(&c.pg_type)),
            constraints,
        }
    }

    /// Whether it declares a constraint of type `kind` on exactly
    /// `columns` (in any order: Postgres lists a key's columns by number).
    fn declares(&self, kind: &str, columns: &[String]) -> bool {
        let sorted = |c: &[String]| {
            let mut c = c.to_vec();
            c.sort();
            c
        };
        let wanted = sorted(columns);
        !wanted.is_empty()
            && self
                .constraints
                .iter()
                .any(|(k, c)| k == kind && sorted(c) == wanted)
    }

    /// Whether `c`, a row of this table written here, is one its CREATE
    /// writes: the table's row with the settings a CREATE gives (see
    /// `table_settings_as_made`), its columns, defaults, constraints, its
    /// keys' indexes, sequences, row and array types, TOAST table and
    /// index, and its owner and default privileges (`pg_shdepend`).
    /// Another column, index, constraint, a trigger, rule, policy, comment,
    /// a grant on a column or a changed setting is not (before, every row
    /// of a table the push created passed: an event trigger adding a
    /// column or an index to `public.tasks` during the push went unnamed).
    fn made(&self, c: &CatalogChange) -> bool {
        if c.gone || c.dropped || c.table.as_deref() != Some(self.table.as_str()) {
            return false;
        }
        let toast = |name: Option<&str>| name.is_some_and(|n| n.starts_with("pg_toast."));
        let key_index = || {
            c.constraint_table.as_deref() == Some(self.table.as_str())
                && (self.declares("p", &c.constraint_columns)
                    || self.declares("u", &c.constraint_columns))
        };
        let listed = |list: &[String]| c.detail.as_ref().is_some_and(|d| list.contains(d));
        match c.catalog.as_str() {
            "pg_class" => match c.relkind.as_deref() {
                // Made here, so with no start settings: a detail says how
                // it differs from what a CREATE gives.
                Some("r" | "p") => {
                    c.name.as_deref() == Some(self.table.as_str()) && c.detail.is_none()
                }
                Some("i") => toast(c.name.as_deref()) || key_index(),
                Some("t") => toast(c.name.as_deref()),
                Some("S") => self.sequenced,
                _ => false,
            },
            "pg_sequence" => self.sequenced,
            "pg_index" => c.object.starts_with("index pg_toast.") || key_index(),
            "pg_type" => true,
            "pg_attribute" => listed(&self.columns),
            "pg_attrdef" => listed(&self.defaults),
            "pg_constraint" => {
                self.declares(c.relkind.as_deref().unwrap_or(""), &c.constraint_columns)
            }
            // The owner of the table and its sequences, and the grants
            // default privileges give them (the table row says whether its
            // privileges are those); a column's privileges are granted.
            "pg_shdepend" => {
                c.object.starts_with("owner of ")
                    || (c.object.starts_with("privileges on ")
                        && !c.object.starts_with("privileges on table column "))
            }
            _ => false,
        }
    }
}

/// The DDL push or rollback runs itself: what its catalog rows may be.
#[derive(Debug, Clone, Default)]
pub struct OwnDdl {
    /// Tables it creates (`schema.table`), or a rollback drops with all
    /// that belongs to them.
    pub created: Vec<String>,
    /// How the push's CREATE makes each of them: written here, their
    /// rows are its own only as listed. (A rollback drops them: nothing of
    /// theirs is written, and a row of one written is named.)
    pub as_made: Vec<TableAsMade>,
    /// Columns it adds to (or, rolling back, drops from) existing tables:
    /// (`schema.table`, column).
    pub columns: Vec<(String, String)>,
    /// Tables its new foreign keys reference: each gets internal triggers
    /// (and, the first time, its `relhastriggers` set).
    pub referenced: Vec<String>,
    /// Triggers it holds off and enables again: (`schema.table`, trigger).
    pub held_off: Vec<(String, String)>,
    /// Sequences it moves (`ALTER SEQUENCE`): `schema.sequence`.
    pub sequences: Vec<String>,
    /// The push created the tool's receipts table in this transaction
    /// (its first in the database): `sandbox.receipts` as
    /// [`RECEIPTS_DDL`](crate::db::postgres::receipts::RECEIPTS_DDL) makes
    /// it, and the `sandbox` schema if it was made here too. Otherwise no
    /// catalog row of the tool's schema is its own.
    pub receipts_created: bool,
}

impl OwnDdl {
    fn altered(&self, table: &str) -> bool {
        self.columns.iter().any(|(t, _)| t == table)
    }

    fn column(&self, table: &str, column: &str) -> bool {
        self.columns.iter().any(|(t, c)| t == table && c == column)
    }

    /// A constraint (or index) a rollback drops: any of a created table's,
    /// or one on added columns only (an added column's foreign key).
    fn constraint(&self, table: Option<&str>, columns: &[String]) -> bool {
        let Some(t) = table else { return false };
        self.created.iter().any(|c| c == t) || self.on_added_columns(table, columns)
    }

    /// A constraint on added columns only (an added column's foreign key).
    fn on_added_columns(&self, table: Option<&str>, columns: &[String]) -> bool {
        let Some(table) = table else { return false };
        !columns.is_empty() && columns.iter().all(|c| self.column(table, c))
    }

    /// Whether `c` is a row of what a first push's
    /// [`RECEIPTS_DDL`](crate::db::postgres::receipts::RECEIPTS_DDL)
    /// makes: the `sandbox` schema (made here), `sandbox.receipts` as
    /// [`receipts_as_made`](crate::db::postgres::receipts::receipts_as_made)
    /// says (see [`TableAsMade`]). Anything else on it — another column,
    /// index, constraint, a trigger, policy, rule or comment — is not, even
    /// on first use; and when the table was there at the start, nothing of
    /// the schema is (before, every row of a `sandbox.*` table passed: an
    /// event trigger adding a column or an index to `sandbox.receipts`
    /// during a push went unnamed).
    fn receipts_made(&self, c: &CatalogChange) -> bool {
        if !self.receipts_created || c.gone || c.dropped {
            return false;
        }
        let sandbox = c.name.as_deref() == Some("sandbox");
        match c.catalog.as_str() {
            "pg_namespace" => sandbox && c.detail.as_deref() == Some("created"),
            "pg_shdepend" if sandbox => true,
            _ => crate::db::postgres::receipts::receipts_as_made().made(c),
        }
    }

    /// Whether `c` is a row the own DDL writes.
    pub fn made(&self, c: &CatalogChange) -> bool {
        let table = c.table.as_deref().unwrap_or("");
        // The tool's own schema: the receipts, created on first use.
        if self.receipts_made(c) {
            return true;
        }
        let created = self.created.iter().any(|t| t == table);
        if c.gone {
            // Only a rollback drops, and only a created table with what
            // belongs to it and an added column with its keys and indexes.
            return match c.catalog.as_str() {
                "pg_constraint" => {
                    self.constraint(c.constraint_table.as_deref(), &c.constraint_columns)
                }
                "pg_class" if matches!(c.relkind.as_deref(), Some("i" | "I")) => {
                    self.constraint(c.constraint_table.as_deref(), &c.constraint_columns)
                }
                _ => created,
            };
        }
        // A table it creates: its rows only as its CREATE makes them.
        if self.as_made.iter().any(|t| t.made(c)) {
            return true;
        }
        let own_row = c.name.as_deref() == Some(table);
        match c.catalog.as_str() {
            "pg_class" | "pg_sequence" => {
                // An existing table's row, rewritten by the own ADD
                // COLUMN or foreign key, with its other settings as
                // they were (an event trigger enabling row-level
                // security there is not the push's).
                (own_row
                    && c.detail.is_none()
                    && (self.altered(table) || self.referenced.iter().any(|r| r == table)))
                    // ADD COLUMN of a wide type may give the table TOAST.
                    || (c.name.as_deref().is_some_and(|n| n.starts_with("pg_toast."))
                        && self.altered(table))
                    // ADD COLUMN that rewrites the table (a volatile default,
                    // a domain with constraints) rebuilds its indexes; one
                    // made since the start (detail `created`) is not its own.
                    || (c.relkind.as_deref() == Some("i")
                        && c.detail.is_none()
                        && self.altered(table))
                    || (c.relkind.as_deref() == Some("S")
                        && c.name.as_ref().is_some_and(|n| self.sequences.contains(n)))
            }
            // A dropped column by the name it had at the start: only the
            // rollback's own DROP COLUMN of a column the push added.
            "pg_attribute" | "pg_attrdef" => c
                .detail
                .as_deref()
                .is_some_and(|col| self.column(table, col)),
            // An added column's foreign key.
            "pg_constraint" => {
                self.on_added_columns(c.constraint_table.as_deref(), &c.constraint_columns)
            }
            // An index of a table an ADD COLUMN rewrote is rebuilt in place;
            // one made since the start is not the push's (it makes none on
            // a table it alters).
            // A TOAST table's index is Postgres's: an ADD COLUMN that
            // rewrites the table (a volatile default, a domain with a
            // default) or gives it TOAST makes a new one, which no app can
            // make itself.
            "pg_index" => {
                self.altered(table)
                    && (c.detail.is_none() || c.object.starts_with("index pg_toast."))
            }
            "pg_trigger" => {
                if c.internal {
                    // A foreign key's, on either of its tables: one a
                    // created table declares, or an added column's.
                    let key_table = c.constraint_table.as_deref();
                    self.as_made.iter().any(|t| {
                        Some(t.table.as_str()) == key_table
                            && t.declares("f", &c.constraint_columns)
                    }) || self.on_added_columns(key_table, &c.constraint_columns)
                } else {
                    // Its own table's, or (a partition's clone) its parent's,
                    // and the very trigger there at the start (by oid), as it
                    // was then: name, definition and enabled state (the
                    // hold-off enables it again in its old mode). A copy made
                    // under a held-off trigger's name, or that trigger renamed,
                    // replaced or left disabled, is no hold-off's.
                    let parent = c.constraint_table.as_deref();
                    c.trigger.as_ref().is_some_and(TriggerStates::as_at_start)
                        && c.detail.as_deref().is_some_and(|n| {
                            self.held_off
                                .iter()
                                .any(|(t, h)| h == n && (t == table || Some(t.as_str()) == parent))
                        })
                }
            }
            _ => false,
        }
    }
}

/// One check: every catalog row this transaction wrote is one its own DDL
/// (`own`) makes. The rest is named, grouped by the table it belongs to,
/// with what fires and names that table (`writers`).
///
/// --allow-writes (`allowed`) is consent to counted row writes on side
/// tables (an audit log), never to DDL on any table: on a side table a
/// TRUNCATE (a new relfilenode, its deleted rows counted nowhere), ALTER or
/// new trigger was excused, and an event trigger emptying the allowed
/// audit table passed, exit 0, naming nothing (F10). `kept` are the tables
/// the plan writes, protects or reads, said as such in the refusal. Before, an event trigger renaming
/// the held-off stamp of `jtbd_library` away on the push's ENABLE was
/// refused with "allow it with --allow-writes public.jtbd_library", and
/// with that the push committed without a working stamp (Q1).
/// `command`: `push` or `rollback`, whose own DDL (the plan's, or the
/// undo's the receipt records) is all the transaction may run.
pub fn ddl_check(
    command: &str,
    phase: &str,
    changes: &[CatalogChange],
    own: &OwnDdl,
    allowed: &[String],
    kept: &[String],
    writers: &dyn Fn(&str) -> Vec<String>,
) -> Check {
    let kept: Vec<String> = kept.iter().map(|k| qualify(k)).collect();
    let allowed: Vec<String> = allowed.iter().map(|a| qualify(a)).collect();
    let (own_ddl, kept_tables) = if command == "rollback" {
        (
            "the undo the receipt records; its DDL is all a rollback may run:",
            "a table the push wrote, protected or read",
        )
    } else {
        (
            "the plan; the plan's DDL is all a push may run:",
            "a table the plan writes, protects or reads",
        )
    };
    // Grouped by the table they belong to (or by the object itself), in
    // the order Postgres listed them; the same object once.
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dropping: Vec<String> = Vec::new();
    for c in changes.iter().filter(|c| !own.made(c)) {
        let key = c.table.clone().unwrap_or_else(|| c.object.clone());
        let lost = c.gone || c.dropped;
        if lost && !dropping.contains(&key) {
            dropping.push(key.clone());
        }
        let items = groups.entry(key).or_default();
        if !items.contains(&c.object) {
            items.push(c.object.clone());
        }
    }
    let rows = groups
        .into_iter()
        .map(|(key, items)| {
            let by = writers(&key);
            let is_table = changes
                .iter()
                .any(|c| c.table.as_deref() == Some(key.as_str()));
            let is_table = is_table && !dropping.contains(&key);
            format!(
                "{} — created, changed or dropped in this transaction by {}, not by {own_ddl} {}",
                items.join(", "),
                if by.is_empty() {
                    "a trigger, rule or event trigger (DDL through EXECUTE, lo_create …)"
                        .to_string()
                } else {
                    by.join("; ")
                },
                if is_table && kept.contains(&key) {
                    format!("stop what runs it (--allow-writes covers no DDL on {kept_tables})")
                } else if is_table && allowed.contains(&key) {
                    "stop what runs it (--allow-writes covers a side table's counted row \
                     writes, never DDL on it)"
                        .to_string()
                } else {
                    "stop what runs it".to_string()
                }
            )
        })
        .collect();
    Check::no_rows(
        phase,
        "no DDL or large object outside the plan (every schema)",
        CheckKind::Guard,
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The held-off stamp as the start record has it.
    fn stamp() -> TriggerState {
        TriggerState {
            name: "set_updated_at".into(),
            enabled: "O".into(),
            definition: "BEFORE UPDATE ON public.jtbd_library FOR EACH ROW EXECUTE FUNCTION \
                         stamp()"
                .into(),
        }
    }

    fn stamp_states(before: TriggerState, now: TriggerState) -> TriggerStates {
        TriggerStates {
            before: Some(before),
            now: Some(now),
        }
    }

    /// A row of the held-off trigger's table, named `now`'s name.
    fn trigger_row(states: TriggerStates) -> CatalogChange {
        let name = states
            .now
            .as_ref()
            .or(states.before.as_ref())
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let mut c = change(
            "pg_trigger",
            &format!("trigger {name} on public.jtbd_library"),
            Some("public.jtbd_library"),
        );
        c.detail = Some(name);
        c.trigger = Some(states);
        c
    }

    /// Q1: matched by oid, the held-off trigger's row is the hold-off's own
    /// only as the very trigger there at the start, as it was. A copy made
    /// under its name, the real one renamed away, replaced in place with
    /// another WHEN clause or left disabled is named; and no --allow-writes
    /// covers DDL on a table the plan writes.
    #[test]
    fn a_held_off_trigger_is_own_only_as_the_trigger_it_was() {
        let own = OwnDdl {
            held_off: vec![("public.jtbd_library".into(), "set_updated_at".into())],
            ..OwnDdl::default()
        };
        assert!(own.made(&trigger_row(stamp_states(stamp(), stamp()))));
        let renamed = TriggerState {
            name: "stamp_kept".into(),
            ..stamp()
        };
        let never = TriggerState {
            definition: stamp().definition.replace("ROW", "ROW WHEN (false)"),
            ..stamp()
        };
        let disabled = TriggerState {
            enabled: "D".into(),
            ..stamp()
        };
        let copy = TriggerStates {
            before: None,
            now: Some(never.clone()),
        };
        for (states, said) in [
            (copy.clone(), "created"),
            (
                stamp_states(stamp(), renamed),
                "renamed from set_updated_at",
            ),
            (
                stamp_states(stamp(), never),
                "definition before: BEFORE UPDATE ON public.jtbd_library FOR EACH ROW EXECUTE \
                 FUNCTION stamp(); now: BEFORE UPDATE ON public.jtbd_library FOR EACH ROW WHEN \
                 (false) EXECUTE FUNCTION stamp()",
            ),
            (
                stamp_states(stamp(), disabled),
                "enabled before, disabled now",
            ),
        ] {
            assert_eq!(
                said_in_ddl(&states.differences()).as_deref(),
                Some(said),
                "{states:?}"
            );
            assert!(!own.made(&trigger_row(states.clone())), "{states:?}");
        }
        assert_eq!(
            said_in_ddl(&stamp_states(stamp(), stamp()).differences()),
            None
        );
        // Allowed, but on a table the plan writes: still named, and no
        // --allow-writes suggested.
        let allowed = ["public.jtbd_library".to_string()];
        let check = ddl_check(
            "push",
            "writes",
            &[trigger_row(copy.clone())],
            &own,
            &allowed,
            &allowed,
            &|_| vec![],
        );
        assert_eq!(check.row_count, 1, "{:?}", check.rows);
        assert!(
            check.rows[0].contains("--allow-writes covers no DDL on a table the plan writes"),
            "{:?}",
            check.rows
        );
        assert!(
            !check.rows[0].contains("--allow-writes public.jtbd_library"),
            "{:?}",
            check.rows
        );
        // Nor on a side table: --allow-writes is consent to its row
        // writes, not to DDL on it (F10).
        let check = ddl_check(
            "push",
            "writes",
            &[trigger_row(copy)],
            &own,
            &allowed,
            &[],
            &|_| vec![],
        );
        assert_eq!(check.row_count, 1, "{:?}", check.rows);
        assert!(
            check.rows[0].contains("never DDL on it")
                && !check.rows[0].contains("--allow-writes public.jtbd_library"),
            "{:?}",
            check.rows
        );
    }

    /// h2: what a first push's receipts DDL writes is its own only when
    /// it created the table in this transaction, and only that: another
    /// column, index or trigger on `sandbox.receipts`, or another table of
    /// the schema, is named either way.
    #[test]
    fn the_receipts_table_is_own_only_as_a_first_push_creates_it() {
        let receipts = Some("sandbox.receipts");
        let relation =
            |object: &str, kind: &str, name: &str| relation_of(receipts, object, kind, name);
        let named =
            |catalog: &str, object: &str, detail: &str| detailed(catalog, object, receipts, detail);
        let schema = with(change("pg_namespace", "schema sandbox", None), &|c| {
            c.name = Some("sandbox".into());
            c.detail = Some("created".into());
        });
        let own = vec![
            schema.clone(),
            relation("table sandbox.receipts", "r", "sandbox.receipts"),
            keyed(
                relation("index sandbox.receipts_pkey", "i", "sandbox.receipts_pkey"),
                None,
                "sandbox.receipts",
                &["id"],
            ),
            relation("table pg_toast.pg_toast_1", "t", "pg_toast.pg_toast_1"),
            keyed(
                change(
                    "pg_index",
                    "index sandbox.receipts_pkey (created)",
                    receipts,
                ),
                None,
                "sandbox.receipts",
                &["id"],
            ),
            change("pg_type", "type sandbox.receipts", receipts),
            named("pg_attribute", "table column sandbox.receipts.undo", "undo"),
            named(
                "pg_attrdef",
                "default value for column pushed_at",
                "pushed_at",
            ),
            keyed(
                named("pg_constraint", "constraint receipts_pkey", "receipts_pkey"),
                Some("p"),
                "sandbox.receipts",
                &["id"],
            ),
            keyed(
                named(
                    "pg_constraint",
                    "constraint status check",
                    "receipts_status_check",
                ),
                Some("c"),
                "sandbox.receipts",
                &["status"],
            ),
            keyed(
                named(
                    "pg_constraint",
                    "constraint receipts_undo_not_null",
                    "receipts_undo_not_null",
                ),
                Some("n"),
                "sandbox.receipts",
                &["undo"],
            ),
        ];
        let first = OwnDdl {
            receipts_created: true,
            ..OwnDdl::default()
        };
        for c in &own {
            assert!(first.made(c), "{c:?}");
            assert!(!OwnDdl::default().made(c), "{c:?}");
        }
        let theirs = vec![
            named(
                "pg_attribute",
                "table column sandbox.receipts.app_note",
                "app_note",
            ),
            named("pg_attrdef", "default value for column status", "status"),
            keyed(
                named(
                    "pg_constraint",
                    "constraint receipts_app_check",
                    "receipts_app_check",
                ),
                Some("c"),
                "sandbox.receipts",
                &["plan_name"],
            ),
            // NOT NULL on the one column left nullable.
            keyed(
                named(
                    "pg_constraint",
                    "constraint receipts_rolled_back_at_not_null",
                    "receipts_rolled_back_at_not_null",
                ),
                Some("n"),
                "sandbox.receipts",
                &["rolled_back_at"],
            ),
            relation(
                "index sandbox.receipts_app_idx",
                "i",
                "sandbox.receipts_app_idx",
            ),
            change(
                "pg_index",
                "index sandbox.receipts_app_idx (created)",
                receipts,
            ),
            named(
                "pg_trigger",
                "trigger receipts_app on sandbox.receipts",
                "receipts_app",
            ),
            named("pg_policy", "policy p on sandbox.receipts", "p"),
            with(
                relation("table sandbox.receipts", "r", "sandbox.receipts"),
                &|c| c.detail = Some("row-level security forced".into()),
            ),
            with(
                change("pg_class", "table sandbox.other", Some("sandbox.other")),
                &|c| {
                    c.relkind = Some("r".into());
                    c.name = Some("sandbox.other".into());
                },
            ),
            with(schema.clone(), &|c| c.detail = None),
        ];
        for c in &theirs {
            assert!(!first.made(c), "{c:?}");
        }
    }

    /// `c` as a constraint of type `kind` (None: an index) of `table` on
    /// `columns`.
    fn keyed(
        mut c: CatalogChange,
        kind: Option<&str>,
        table: &str,
        columns: &[&str],
    ) -> CatalogChange {
        if let Some(kind) = kind {
            c.relkind = Some(kind.into());
        }
        c.constraint_table = Some(table.into());
        c.constraint_columns = columns.iter().map(|c| c.to_string()).collect();
        c
    }

    /// h9: a table the push creates is its own only as its CREATE makes
    /// it (its columns, key, UNIQUE, foreign key, a serial column's
    /// sequence and default, row type, TOAST, owner and default
    /// privileges); another column, index, constraint, a trigger, policy,
    /// rule, a grant or a changed setting on it is named. Before, every
    /// row of a created table passed. A rollback, which drops it, writes
    /// none of its rows.
    #[test]
    fn a_created_table_is_own_only_as_its_create_makes_it() {
        let column = |name: &str, ty: &str, not_null: bool| crate::plan::TargetColumn {
            name: name.into(),
            pg_type: ty.into(),
            not_null,
        };
        let tasks = crate::plan::TargetTable {
            name: "tasks".into(),
            phase: "4".into(),
            columns: vec![
                column("id", "uuid", true),
                column("workflow_id", "uuid", true),
                column("code", "text", false),
                column("n", "bigserial", false),
            ],
            primary_key: vec!["id".into()],
            unique: vec![vec!["code".into()]],
            foreign_keys: vec![crate::plan::TargetForeignKey {
                columns: vec!["workflow_id".into()],
                ref_table: "workflows".into(),
                ref_columns: vec!["id".into()],
            }],
        };
        let push = OwnDdl {
            created: vec!["public.tasks".into()],
            as_made: vec![TableAsMade::planned(&tasks)],
            referenced: vec!["public.workflows".into()],
            ..OwnDdl::default()
        };
        let t = Some("public.tasks");
        let relation = |object: &str, kind: &str, name: &str| relation_of(t, object, kind, name);
        let named =
            |catalog: &str, object: &str, detail: &str| detailed(catalog, object, t, detail);
        let constraint = |name: &str, kind: &str, columns: &[&str]| {
            keyed(
                named("pg_constraint", &format!("constraint {name}"), name),
                Some(kind),
                "public.tasks",
                columns,
            )
        };
        let internal = |table: &str, columns: &[&str]| {
            let mut c = keyed(
                change("pg_trigger", "trigger RI_ConstraintTrigger_1", Some(table)),
                None,
                "public.tasks",
                columns,
            );
            c.internal = true;
            c
        };
        let table_row = relation("table public.tasks", "r", "public.tasks");
        let own = vec![
            table_row.clone(),
            keyed(
                relation(
                    "index public.tasks_pkey (created)",
                    "i",
                    "public.tasks_pkey",
                ),
                None,
                "public.tasks",
                &["id"],
            ),
            keyed(
                change("pg_index", "index public.tasks_code_key (created)", t),
                None,
                "public.tasks",
                &["code"],
            ),
            relation("table pg_toast.pg_toast_9", "t", "pg_toast.pg_toast_9"),
            relation(
                "index pg_toast.pg_toast_9_index (created)",
                "i",
                "pg_toast.pg_toast_9_index",
            ),
            change("pg_index", "index pg_toast.pg_toast_9_index (created)", t),
            relation("sequence public.tasks_n_seq", "S", "public.tasks_n_seq"),
            change("pg_type", "type public.tasks", t),
            named("pg_attribute", "table column public.tasks.id", "id"),
            named("pg_attribute", "table column public.tasks.n", "n"),
            named("pg_attrdef", "default value for column n", "n"),
            constraint("tasks_pkey", "p", &["id"]),
            constraint("tasks_code_key", "u", &["code"]),
            constraint("tasks_workflow_id_fkey", "f", &["workflow_id"]),
            constraint("tasks_workflow_id_not_null", "n", &["workflow_id"]),
            internal("public.tasks", &["workflow_id"]),
            internal("public.workflows", &["workflow_id"]),
            change("pg_shdepend", "owner of table public.tasks for role app", t),
            change(
                "pg_shdepend",
                "privileges on table public.tasks for role anon",
                t,
            ),
        ];
        for c in &own {
            assert!(push.made(c), "{c:?}");
        }
        let theirs = vec![
            named(
                "pg_attribute",
                "table column public.tasks.app_note",
                "app_note",
            ),
            with(
                named(
                    "pg_attribute",
                    "table column public.tasks........pg.dropped.3........",
                    "........pg.dropped.3........",
                ),
                &|c| c.dropped = true,
            ),
            named("pg_attrdef", "default value for column code", "code"),
            relation(
                "index public.tasks_code_idx (created)",
                "i",
                "public.tasks_code_idx",
            ),
            change("pg_index", "index public.tasks_code_idx (created)", t),
            keyed(
                relation(
                    "index public.tasks_title_key (created)",
                    "i",
                    "public.tasks_title_key",
                ),
                None,
                "public.tasks",
                &["title"],
            ),
            constraint("tasks_code_check", "c", &["code"]),
            constraint("tasks_code_fkey", "f", &["code"]),
            constraint("tasks_code_not_null", "n", &["code"]),
            constraint("tasks_id_code_key", "u", &["id", "code"]),
            internal("public.workflows", &["code"]),
            named(
                "pg_trigger",
                "trigger audit_stamp on public.tasks",
                "audit_stamp",
            ),
            named("pg_policy", "policy p on public.tasks", "p"),
            named("pg_rewrite", "rule r on public.tasks", "r"),
            with(table_row.clone(), &|c| {
                c.detail = Some("privileges granted or revoked".into())
            }),
            change(
                "pg_shdepend",
                "privileges on table column public.tasks.code for role anon",
                t,
            ),
            change(
                "pg_shdepend",
                "policy role of policy p on public.tasks for role anon",
                t,
            ),
        ];
        for c in &theirs {
            assert!(!push.made(c), "{c:?}");
        }
        // Without a serial column, no sequence is the CREATE's.
        let mut plain = tasks.clone();
        plain.columns.retain(|c| c.name != "n");
        let push = OwnDdl {
            as_made: vec![TableAsMade::planned(&plain)],
            ..push
        };
        let sequence = relation("sequence public.tasks_n_seq", "S", "public.tasks_n_seq");
        assert!(!push.made(&sequence));
        // A rollback drops the table: a row of it written is named.
        let rollback = OwnDdl {
            created: vec!["public.tasks".into()],
            ..OwnDdl::default()
        };
        assert!(!rollback.made(&table_row));
        assert!(rollback.made(&with(table_row, &|c| c.gone = true)));
    }

    fn change(catalog: &str, object: &str, table: Option<&str>) -> CatalogChange {
        CatalogChange {
            catalog: catalog.into(),
            object: object.into(),
            table: table.map(Into::into),
            ..Default::default()
        }
    }

    /// `c` changed by `f`.
    fn with(mut c: CatalogChange, f: &dyn Fn(&mut CatalogChange)) -> CatalogChange {
        f(&mut c);
        c
    }

    /// A `pg_class` row of `table`: relation `name` of kind `kind`.
    fn relation_of(table: Option<&str>, object: &str, kind: &str, name: &str) -> CatalogChange {
        CatalogChange {
            relkind: Some(kind.into()),
            name: Some(name.into()),
            ..change("pg_class", object, table)
        }
    }

    /// A row of `catalog` on `table` with its detail.
    fn detailed(catalog: &str, object: &str, table: Option<&str>, detail: &str) -> CatalogChange {
        CatalogChange {
            detail: Some(detail.into()),
            ..change(catalog, object, table)
        }
    }

    #[test]
    fn own_ddl_is_taken_away_and_the_rest_is_named_by_table() {
        let own = OwnDdl {
            created: vec!["public.tasks".into()],
            as_made: vec![TableAsMade {
                table: "public.tasks".into(),
                ..TableAsMade::default()
            }],
            columns: vec![("public.jtbd_library".into(), "suite".into())],
            referenced: vec!["public.workflows".into()],
            held_off: vec![("public.jtbd_library".into(), "set_updated_at".into())],
            sequences: vec![],
            receipts_created: false,
        };
        let mut relation = change("pg_class", "table public.tasks", Some("public.tasks"));
        relation.name = Some("public.tasks".into());
        relation.relkind = Some("r".into());
        let mut added = change(
            "pg_attribute",
            "table column public.jtbd_library.suite",
            Some("public.jtbd_library"),
        );
        added.detail = Some("suite".into());
        let mut other_col = added.clone();
        other_col.detail = Some("sneaky".into());
        other_col.object = "table column public.jtbd_library.sneaky".into();
        let mut held = change(
            "pg_trigger",
            "trigger set_updated_at on public.jtbd_library",
            Some("public.jtbd_library"),
        );
        held.detail = Some("set_updated_at".into());
        held.trigger = Some(stamp_states(stamp(), stamp()));
        let mut index = change(
            "pg_class",
            "index public.workflows_name_idx",
            Some("public.workflows"),
        );
        index.name = Some("public.workflows_name_idx".into());
        index.relkind = Some("i".into());
        let lo = change("pg_largeobject_metadata", "large object 16400", None);
        let changes = vec![relation, added, other_col, held, index, lo];
        let check = ddl_check("push", "writes", &changes, &own, &[], &[], &|_| vec![]);
        assert!(!check.ok);
        assert_eq!(check.row_count, 3, "{:?}", check.rows);
        let all = check.rows.join("\n");
        assert!(
            all.contains("table column public.jtbd_library.sneaky"),
            "{all}"
        );
        assert!(all.contains("index public.workflows_name_idx"), "{all}");
        assert!(all.contains("large object 16400"), "{all}");
        assert!(!all.contains(".suite"), "{all}");
        assert!(!all.contains("public.tasks"), "{all}");
        assert!(!all.contains("set_updated_at"), "{all}");
        // Allowing writes to the table lets none of its DDL pass (F10),
        // and suggests no --allow-writes.
        let check = ddl_check(
            "push",
            "writes",
            &changes,
            &own,
            &["jtbd_library".into(), "workflows".into()],
            &[],
            &|_| vec![],
        );
        assert_eq!(check.row_count, 3, "{:?}", check.rows);
        let all = check.rows.join("\n");
        assert!(all.contains("public.jtbd_library.sneaky"), "{all}");
        assert!(all.contains("never DDL on it"), "{all}");
        assert!(!all.contains("--allow-writes public."), "{all}");
        // But not when the plan writes, protects or reads it: named, with
        // no --allow-writes suggested.
        let check = ddl_check(
            "push",
            "writes",
            &changes,
            &own,
            &["jtbd_library".into(), "workflows".into()],
            &["jtbd_library".into()],
            &|_| vec![],
        );
        assert_eq!(check.row_count, 3, "{:?}", check.rows);
        let all = check.rows.join("\n");
        assert!(all.contains("public.jtbd_library.sneaky"), "{all}");
        assert!(
            all.contains("--allow-writes covers no DDL on a table the plan writes"),
            "{all}"
        );
        assert!(!all.contains("--allow-writes public.jtbd_library"), "{all}");
    }

    /// A dropped object is the own DDL's only as a rollback drops: a
    /// created table with what belongs to it, an added column's keys and
    /// indexes. A table the plan altered, a held-off trigger or an index of
    /// an altered table on other columns, gone, is named; and allowing
    /// writes to a table does not excuse losing it.
    #[test]
    fn dropped_objects_are_own_only_as_a_rollback_drops() {
        let own = OwnDdl {
            created: vec!["public.tasks".into()],
            as_made: vec![],
            columns: vec![("public.jtbd_library".into(), "suite".into())],
            referenced: vec![],
            held_off: vec![("public.jtbd_library".into(), "set_updated_at".into())],
            sequences: vec![],
            receipts_created: false,
        };
        let gone = |catalog: &str, object: &str, table: &str| {
            let mut c = change(catalog, &format!("{object} (dropped)"), Some(table));
            c.gone = true;
            c
        };
        // An index or a constraint names its table and columns.
        let on_columns = |catalog: &str, object: &str, table: &str, columns: &[&str]| {
            let mut c = gone(catalog, object, table);
            if catalog == "pg_class" {
                c.relkind = Some("i".into());
            }
            c.constraint_table = Some(table.into());
            c.constraint_columns = columns.iter().map(|c| c.to_string()).collect();
            c
        };
        let own_drops = vec![
            gone("pg_class", "table public.tasks", "public.tasks"),
            on_columns(
                "pg_class",
                "index public.tasks_pkey",
                "public.tasks",
                &["id"],
            ),
            on_columns(
                "pg_constraint",
                "table constraint jtbd_suite_fkey on public.jtbd_library",
                "public.jtbd_library",
                &["suite"],
            ),
        ];
        let check = ddl_check("push", "writes", &own_drops, &own, &[], &[], &|_| vec![]);
        assert!(check.ok, "{:?}", check.rows);

        let mut altered = gone(
            "pg_class",
            "table public.jtbd_library",
            "public.jtbd_library",
        );
        altered.name = Some("public.jtbd_library".into());
        let mut held = gone(
            "pg_trigger",
            "trigger set_updated_at on public.jtbd_library",
            "public.jtbd_library",
        );
        held.detail = Some("set_updated_at".into());
        let other_index = on_columns(
            "pg_class",
            "index public.jtbd_name_idx",
            "public.jtbd_library",
            &["name"],
        );
        let theirs = vec![altered, held, other_index];
        for allowed in [&[][..], &["jtbd_library".to_string()][..]] {
            let check = ddl_check("push", "writes", &theirs, &own, allowed, &[], &|_| vec![]);
            assert_eq!(check.row_count, 1, "{:?}", check.rows);
            for named in [
                "table public.jtbd_library (dropped)",
                "trigger set_updated_at on public.jtbd_library (dropped)",
                "index public.jtbd_name_idx (dropped)",
            ] {
                assert!(check.rows[0].contains(named), "{:?}", check.rows);
            }
            assert!(
                !check.rows[0].contains("--allow-writes"),
                "{:?}",
                check.rows
            );
        }
    }
}
