//! `sandbox.receipts` on Postgres: the table push writes its receipts
//! into (and looks for an applied one of its diff in), rollback and
//! `receipts` read them from.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Transaction;

use crate::diff::Diff;
use crate::error::check_failed;
use crate::receipt::{AddedColumn, AddedColumnIdentity, CreatedTable, Undo};

/// The receipts table, created by the first push (and its schema). Run
/// only when it does not exist (`receipts_access`, read under the advisory
/// lock that serializes pushes, says so): `CREATE SCHEMA IF NOT EXISTS`
/// asks for CREATE on the database and `ENABLE ROW LEVEL SECURITY` for
/// ownership even when there is nothing to do, which a second role pushing
/// lacks. Decided by the client, not in a `DO` block: a database where
/// `REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC` was run lets no
/// non-superuser run one (issue 10 Q3).
pub const RECEIPTS_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS sandbox;
CREATE TABLE sandbox.receipts (
  id uuid PRIMARY KEY,
  diff_hash text NOT NULL,
  plan_name text NOT NULL,
  plan_hash text NOT NULL,
  snapshot_checksum text NOT NULL,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  pushed_by text NOT NULL DEFAULT current_user,
  tool_version text NOT NULL,
  status text NOT NULL CHECK (status IN ('applied', 'rolled_back')),
  rolled_back_at timestamptz,
  counts jsonb NOT NULL,
  undo jsonb NOT NULL
);
ALTER TABLE sandbox.receipts ENABLE ROW LEVEL SECURITY;
";

/// The columns [`RECEIPTS_DDL`] gives `sandbox.receipts`, in order.
pub const RECEIPTS_COLUMNS: &[&str] = &[
    "id",
    "diff_hash",
    "plan_name",
    "plan_hash",
    "snapshot_checksum",
    "pushed_at",
    "pushed_by",
    "tool_version",
    "status",
    "rolled_back_at",
    "counts",
    "undo",
];

/// The columns [`RECEIPTS_DDL`] gives a default.
pub const RECEIPTS_DEFAULTS: &[&str] = &["pushed_at", "pushed_by"];

/// The columns [`RECEIPTS_DDL`] leaves nullable (the others are NOT NULL
/// or the key).
pub const RECEIPTS_NULLABLE: &[&str] = &["rolled_back_at"];

/// `sandbox.receipts` as [`RECEIPTS_DDL`] makes it, for the DDL check of
/// a first push (`ddl::OwnDdl`): its columns and defaults, its key on
/// `id`, the CHECK on `status`, and (Postgres 18 on) a NOT NULL constraint
/// per NOT NULL column.
pub fn receipts_as_made() -> crate::db::ddl::TableAsMade {
    let names = |list: &[&str]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let mut constraints = vec![
        ("p".to_string(), names(&["id"])),
        ("c".to_string(), names(&["status"])),
    ];
    constraints.extend(
        RECEIPTS_COLUMNS
            .iter()
            .filter(|c| !RECEIPTS_NULLABLE.contains(c))
            .map(|c| ("n".to_string(), names(&[c]))),
    );
    crate::db::ddl::TableAsMade {
        table: "sandbox.receipts".into(),
        columns: names(RECEIPTS_COLUMNS),
        defaults: names(RECEIPTS_DEFAULTS),
        sequenced: false,
        constraints,
    }
}

/// What a command does with `sandbox.receipts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptsUse {
    /// `sandbox receipts`: reads them.
    List,
    /// `sandbox rollback`: reads one and marks it rolled back.
    Rollback,
    /// `sandbox push` (the preflight too, which writes its receipt in the
    /// transaction it rolls back): looks for an applied one, inserts one,
    /// and creates the table the first time.
    Push,
}

/// What the connected role may do with `sandbox.receipts`, from the catalog
/// (readable by any role, and no error when the schema is out of reach, as
/// `to_regclass('sandbox.receipts')` raises then): one row of text.
pub const RECEIPTS_ACCESS_SQL: &str = "SELECT current_user::text, \
       (n.oid IS NOT NULL)::text, \
       coalesce(pg_catalog.has_schema_privilege(n.oid, 'USAGE'), false)::text, \
       (c.oid IS NOT NULL)::text, \
       coalesce(pg_catalog.has_table_privilege(c.oid, 'SELECT'), false)::text, \
       coalesce(pg_catalog.has_table_privilege(c.oid, 'INSERT'), false)::text, \
       coalesce(pg_catalog.has_table_privilege(c.oid, 'UPDATE'), false)::text, \
       coalesce(c.relrowsecurity \
         AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) \
         AND (c.relforcerowsecurity OR NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')), false)::text, \
       coalesce(pg_catalog.pg_get_userbyid(c.relowner)::text, pg_catalog.pg_get_userbyid(n.nspowner)::text, ''), \
       session_user::text \
FROM (SELECT 1) one \
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = 'sandbox' \
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = 'receipts'";

/// Whether the role may use the receipts as `usage` needs, from
/// [`RECEIPTS_ACCESS_SQL`]'s row: an environment error (exit 2) naming each
/// missing privilege and the statements that grant it, so that no command
/// meets a raw "permission denied for schema sandbox" halfway — nor, behind
/// row-level security, silently sees no receipt at all (a push would not
/// know it was applied before, a rollback would call the id unknown).
///
/// Returns whether the table exists.
pub fn receipts_access_verdict(row: &[Option<String>], usage: ReceiptsUse) -> Result<bool> {
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let yes = |i: usize| text(i) == "true";
    let (role, owner) = (text(0), text(8));
    let (schema, table) = (yes(1), yes(3));
    let role_q = crate::types::quote_ident(&role);
    let mut missing = Vec::new();
    let mut grants = Vec::new();
    if schema && !yes(2) {
        missing.push("USAGE on schema sandbox (to reach the receipts)".to_string());
        grants.push(format!("GRANT USAGE ON SCHEMA sandbox TO {role_q};"));
    }
    if table {
        let mut table_privileges = Vec::new();
        let mut need = |col: usize, privilege: &'static str, why: &str| {
            if !yes(col) {
                missing.push(format!("{privilege} on sandbox.receipts ({why})"));
                table_privileges.push(privilege);
            }
        };
        need(4, "SELECT", "to read the receipts");
        if usage == ReceiptsUse::Push {
            need(5, "INSERT", "to record the push's receipt");
        }
        if usage != ReceiptsUse::List {
            need(
                6,
                "UPDATE",
                if usage == ReceiptsUse::Push {
                    "to record the push's allowed side effects and the tables and columns it created"
                } else {
                    "to mark the receipt rolled back"
                },
            );
        }
        if !table_privileges.is_empty() {
            grants.push(format!(
                "GRANT {} ON sandbox.receipts TO {role_q};",
                table_privileges.join(", ")
            ));
        }
        if yes(7) {
            // The tool reads with row_security off, so row-level security
            // raises an error rather than hide a receipt; a policy does not
            // help then: only the owner (or a member of it) and BYPASSRLS.
            missing.push(format!(
                "a way past row-level security on sandbox.receipts (membership in its owner {owner}, \
                 or BYPASSRLS; the tool reads with row_security off, so a policy does not do)"
            ));
            grants.push(format!(
                "GRANT {} TO {role_q};",
                crate::types::quote_ident(&owner)
            ));
        }
    }
    // Creating the table (the first push) is a need like the plan's DDL:
    // named with them by the push's privilege check.
    if missing.is_empty() {
        return Ok(table);
    }
    // The grants go to the role Postgres checks, current_user; a SET ROLE
    // from the login role is said (a grant to the login changes nothing).
    let session = text(9);
    let switched = if !session.is_empty() && session != role {
        format!(
            " These are checked for role {role}, which the transaction runs as (current_user), {}.",
            crate::db::privileges::set_role_note(&role, &session)
        )
    } else {
        String::new()
    };
    Err(crate::error::environment(format!(
        "role {role} cannot use the tool's receipts table sandbox.receipts: it lacks {}.{switched} As {owner} \
         (the owner of the sandbox schema or its receipts table) or a superuser, run \
         `{}`{} and run this again (or connect as a role that has them); nothing was read, locked \
         or written",
        missing.join("; "),
        grants.join(" "),
        if yes(7) {
            format!(" (instead of GRANT {owner}, a superuser may run `ALTER ROLE {role_q} BYPASSRLS;`)")
        } else {
            String::new()
        }
    )))
}

/// [`receipts_access_verdict`] for the role of `tx`, asked first: whether
/// the table exists.
pub async fn receipts_access(tx: &Transaction<'_>, usage: ReceiptsUse) -> Result<bool> {
    let rows = tx
        .simple_query(RECEIPTS_ACCESS_SQL)
        .await
        .context("cannot read the privileges on sandbox.receipts")?;
    let row: Vec<Option<String>> = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .unwrap_or_default();
    receipts_access_verdict(&row, usage)
}

/// NULL when `sandbox.receipts` does not exist, '' when it has every
/// column this tool writes, else the missing ones: an application may own a
/// table of that name, and using it would end in raw SQL errors mid-push.
pub const RECEIPTS_SHAPE_SQL: &str = "SELECT CASE WHEN to_regclass('sandbox.receipts') IS NOT NULL THEN \
     coalesce((SELECT string_agg(c, ', ') FROM unnest(ARRAY['id', 'diff_hash', 'plan_name', 'plan_hash', \
       'snapshot_checksum', 'pushed_at', 'pushed_by', 'tool_version', 'status', 'rolled_back_at', 'counts', 'undo']) c \
       WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass('sandbox.receipts') \
         AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)), '') END";

/// Whether the tool's receipts table exists, from [`RECEIPTS_SHAPE_SQL`]'s
/// answer; an error naming the conflict when the table is someone else's.
pub fn receipts_table_verdict(shape: Option<&str>) -> Result<bool> {
    match shape {
        None => Ok(false),
        Some("") => Ok(true),
        Some(missing) => Err(crate::error::environment(format!(
            "sandbox.receipts exists but is not this tool's receipts table (it has no column {missing}): \
             the tool keeps its receipts there. Rename or move that table (e.g. \
             `ALTER SCHEMA sandbox RENAME TO my_sandbox` if the schema is yours), then run this again; \
             nothing was written"
        ))),
    }
}

/// Whether the tool's receipts table exists ([`receipts_table_verdict`]).
pub async fn receipts_table_exists(tx: &Transaction<'_>) -> Result<bool> {
    let rows = tx.simple_query(RECEIPTS_SHAPE_SQL).await?;
    let shape = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    });
    receipts_table_verdict(shape.flatten().as_deref())
}

/// What of the tables and columns a receipt says its push wrote no longer
/// stands under its name: the app dropped or renamed it since. Read from
/// the catalog with the receipt itself (see [`applied_receipt`]), so that
/// what reads those tables next names only what is there, instead of
/// failing on a relation or column that does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct GoneSincePush {
    /// In the receipt's table order.
    pub tables: Vec<GoneTable>,
    /// `(table, column)` of the receipt's columns that the table under
    /// its name no longer has, in the receipt's order.
    pub columns: Vec<(String, String)>,
}

/// A table of the receipt with nothing under its name now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct GoneTable {
    pub table: String,
    /// For a table the push created: where the table it created (its
    /// recorded `pg_class.oid`) is now, `schema.name`, when it was renamed
    /// or moved rather than dropped.
    pub now: Option<String>,
    /// Whether the receipt records the table's oid (a table the push
    /// created, in a receipt of format 6 or later): without it a table
    /// gone under its name cannot be told renamed from dropped.
    #[serde(default)]
    pub identified: bool,
}

impl GoneSincePush {
    pub fn table(&self, table: &str) -> Option<&GoneTable> {
        self.tables.iter().find(|g| g.table == table)
    }

    pub fn columns_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.columns
            .iter()
            .filter(move |(t, _)| t == table)
            .map(|(_, c)| c.as_str())
    }
}

/// [`GoneSincePush`] of the receipt `r`, as a jsonb text, computed on the
/// server from its undo record. A created table gone under its name is
/// looked for by the oid the receipt recorded: its columns are those of
/// the table found there. Every path into the record is checked for
/// its JSON type first: a hand-edited record must reach `Undo::read`, which
/// says what is wrong with it, not fail here as raw SQL. The created
/// table's oid is compared as text for the same reason (no cast to fail).
const GONE_SINCE_PUSH_SQL: &str = "\
(WITH written AS ( \
   SELECT t.value->>'table' AS name, 'public.' || pg_catalog.quote_ident(t.value->>'table') AS qualified, \
          t.ordinality AS at, \
          CASE pg_catalog.jsonb_typeof(t.value->'columns') WHEN 'array' THEN t.value->'columns' ELSE '[]' END AS columns \
   FROM pg_catalog.jsonb_array_elements(CASE pg_catalog.jsonb_typeof(r.undo->'tables') \
          WHEN 'array' THEN r.undo->'tables' ELSE '[]' END) WITH ORDINALITY t \
   WHERE pg_catalog.jsonb_typeof(t.value) = 'object' AND t.value->>'table' IS NOT NULL), \
 identity AS ( \
   SELECT i->>'table' AS name, i->>'oid' AS oid \
   FROM pg_catalog.jsonb_array_elements(CASE pg_catalog.jsonb_typeof(r.undo->'created_identity') \
          WHEN 'array' THEN r.undo->'created_identity' ELSE '[]' END) i \
   WHERE pg_catalog.jsonb_typeof(i) = 'object'), \
 located AS ( \
   SELECT w.name, w.at, w.columns, pg_catalog.to_regclass(w.qualified)::oid AS named, \
          (SELECT c.oid FROM identity i JOIN pg_catalog.pg_class c ON c.oid::text = i.oid \
           WHERE i.name = w.name AND c.relkind IN ('r', 'p') LIMIT 1) AS created, \
          EXISTS (SELECT 1 FROM identity i WHERE i.name = w.name) AS identified \
   FROM written w) \
 SELECT pg_catalog.jsonb_build_object( \
   'tables', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('table', l.name, \
       'identified', l.identified, 'now', \
       (SELECT n.nspname::text || '.' || c.relname::text FROM pg_catalog.pg_class c \
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.created)) ORDER BY l.at) \
     FROM located l WHERE l.named IS NULL), '[]'), \
   'columns', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(l.name, c.value->>'name') \
                                                     ORDER BY l.at, c.ordinality) \
     FROM located l, pg_catalog.jsonb_array_elements(l.columns) WITH ORDINALITY c \
     WHERE coalesce(l.named, l.created) IS NOT NULL AND c.value->>'name' IS NOT NULL \
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a \
                       WHERE a.attrelid = coalesce(l.named, l.created) \
                         AND a.attname = c.value->>'name' AND a.attnum > 0 AND NOT a.attisdropped)), '[]') \
 )::text)";

/// The receipt of an applied push of this diff, with its undo record
/// (what the push wrote, and the state it left each table in) and what of
/// the tables and columns it wrote the app dropped or renamed since, read
/// in the same round trip.
pub async fn applied_receipt(
    tx: &Transaction<'_>,
    diff_hash: &str,
) -> Result<Option<(String, Undo, GoneSincePush)>> {
    if !receipts_table_exists(tx).await? {
        return Ok(None);
    }
    let rows = tx
        .query_typed(
            &format!(
                "SELECT r.id::text, r.undo::text, {GONE_SINCE_PUSH_SQL} FROM ( \
                   SELECT id, undo FROM sandbox.receipts \
                   WHERE diff_hash = $1 AND status = 'applied' ORDER BY pushed_at DESC LIMIT 1) r"
            ),
            &[(&diff_hash, tokio_postgres::types::Type::TEXT)],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let id: String = row.get(0);
    let undo = Undo::read(&id, &row.get::<_, String>(1))?;
    let gone: GoneSincePush = serde_json::from_str(&row.get::<_, String>(2))
        .context("reading which of the receipt's tables and columns are gone since the push")?;
    Ok(Some((id, undo, gone)))
}

/// [`GoneSincePush`] of receipt `id`, read again: what of its tables and
/// columns the app dropped or renamed since, as of now.
pub async fn gone_since_push(tx: &Transaction<'_>, id: &str) -> Result<GoneSincePush> {
    let rows = tx
        .query_typed(
            &format!(
                "SELECT {GONE_SINCE_PUSH_SQL} FROM ( \
                   SELECT undo FROM sandbox.receipts WHERE id = $1::text::uuid) r"
            ),
            &[(&id, tokio_postgres::types::Type::TEXT)],
        )
        .await?;
    let Some(row) = rows.first() else {
        anyhow::bail!("receipt {id} is no longer in sandbox.receipts");
    };
    serde_json::from_str(&row.get::<_, String>(0))
        .context("reading which of the receipt's tables and columns are gone since the push")
}

/// Inserts the receipt; first creates `sandbox.receipts` unless
/// `receipts_exist` (see [`RECEIPTS_DDL`]).
pub async fn insert_receipt(
    tx: &Transaction<'_>,
    receipts_exist: bool,
    receipt_id: &str,
    diff: &Diff,
    table_counts: &[impl Serialize],
    undo: &Undo,
) -> Result<()> {
    use tokio_postgres::types::{ToSql, Type};
    let counts = serde_json::to_string(table_counts)?;
    let undo = serde_json::to_string(undo)?;
    let values: [(&(dyn ToSql + Sync), Type); 8] = [
        (&receipt_id, Type::TEXT),
        (&diff.hash, Type::TEXT),
        (&diff.plan_name, Type::TEXT),
        (&diff.plan_hash, Type::TEXT),
        (&diff.snapshot_checksum, Type::TEXT),
        (&env!("CARGO_PKG_VERSION"), Type::TEXT),
        (&counts, Type::TEXT),
        (&undo, Type::TEXT),
    ];
    // The table, then the row: sent together (one round trip), typed (no
    // prepare); Postgres runs them in order.
    let (created, inserted) = futures_util::join!(
        async {
            if receipts_exist {
                return Ok(());
            }
            tx.batch_execute(RECEIPTS_DDL).await
        },
        tx.query_typed(
            "INSERT INTO sandbox.receipts (id, diff_hash, plan_name, plan_hash, snapshot_checksum, tool_version, status, counts, undo) \
             VALUES ($1::text::uuid, $2, $3, $4, $5, $6, 'applied', $7::text::jsonb, $8::text::jsonb)",
            &values,
        )
    );
    created.context("creating sandbox.receipts")?;
    inserted.context("inserting the receipt")?;
    Ok(())
}

/// Records in receipt `receipt_id` what each of the `created` tables is
/// now (`Undo::created_identity`: its `pg_class.oid` and columns) and what
/// each of the `added` columns is now (`Undo::added_identity`: its table's
/// oid, `attnum` and type). Run in the push's transaction right before
/// COMMIT — after the rehearsal of its undo, which drops them under a
/// savepoint — so the identity is that of the tables and columns the push
/// leaves behind. One round trip: read and written by the one UPDATE. Each
/// list is `None` when the push created (or added) none.
pub async fn record_identity(
    tx: &Transaction<'_>,
    receipt_id: &str,
    created: &[String],
    added: &[AddedColumn],
) -> Result<(Option<Vec<CreatedTable>>, Option<Vec<AddedColumnIdentity>>)> {
    use tokio_postgres::types::Type;
    let qualified: Vec<String> = created
        .iter()
        .map(|t| format!("public.{}", crate::types::quote_ident(t)))
        .collect();
    let added_tables: Vec<&str> = added.iter().map(|a| a.table.as_str()).collect();
    let added_columns: Vec<&str> = added.iter().map(|a| a.column.as_str()).collect();
    let added_qualified: Vec<String> = added
        .iter()
        .map(|a| format!("public.{}", crate::types::quote_ident(&a.table)))
        .collect();
    let values: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 6] = [
        (&receipt_id, Type::TEXT),
        (&created, Type::TEXT_ARRAY),
        (&qualified, Type::TEXT_ARRAY),
        (&added_tables, Type::TEXT_ARRAY),
        (&added_columns, Type::TEXT_ARRAY),
        (&added_qualified, Type::TEXT_ARRAY),
    ];
    // Typed: no prepare, one round trip.
    let rows = tx
        .query_typed(
            "UPDATE sandbox.receipts SET undo = undo || pg_catalog.jsonb_build_object( \
             'created_identity', ( \
               SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
                        'table', t.name, 'oid', c.oid::int8, 'columns', \
                        (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array( \
                                  a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)) \
                                  ORDER BY a.attnum), '[]') \
                         FROM pg_catalog.pg_attribute a \
                         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)) \
                      ORDER BY t.ord), '[]') \
               FROM unnest($2::text[], $3::text[]) WITH ORDINALITY t(name, qualified, ord) \
               JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.qualified)), \
             'added_identity', ( \
               SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
                        'table', t.tbl, 'column', t.col, 'table_oid', c.oid::int8, \
                        'attnum', a.attnum, \
                        'type', pg_catalog.format_type(a.atttypid, a.atttypmod)) \
                      ORDER BY t.ord), '[]') \
               FROM unnest($4::text[], $5::text[], $6::text[]) WITH ORDINALITY t(tbl, col, qualified, ord) \
               JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.qualified) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = t.col \
                                             AND NOT a.attisdropped)) \
             WHERE id = $1::text::uuid \
             RETURNING (undo -> 'created_identity')::text, (undo -> 'added_identity')::text",
            &values,
        )
        .await
        .context("recording the identity of the tables the push created and the columns it added")?;
    let row = rows
        .first()
        .context("the push's receipt is not there to record the tables it created in")?;
    let created_text: Option<String> = row.get(0);
    let added_text: Option<String> = row.get(1);
    let created_identity: Vec<CreatedTable> =
        serde_json::from_str(created_text.as_deref().unwrap_or("[]"))
            .context("reading back the identity of the tables the push created")?;
    let added_identity: Vec<AddedColumnIdentity> =
        serde_json::from_str(added_text.as_deref().unwrap_or("[]"))
            .context("reading back the identity of the columns the push added")?;
    Ok((
        (!created.is_empty()).then_some(created_identity),
        (!added.is_empty()).then_some(added_identity),
    ))
}

/// Reads the receipt to undo: `None` when it was rolled back before; an
/// error when there is none, it is not applied, or later pushes still are.
///
/// `database` names the database (its URL, without the password) in the
/// error for one that has no receipts table.
pub async fn read_receipt(
    tx: &tokio_postgres::Transaction<'_>,
    receipt_id: &str,
    database: &str,
) -> Result<Option<Undo>> {
    if !receipts_table_exists(tx).await? {
        // No push was ever recorded in this database: the receipt id, or
        // the database URL, is the user's mistake (exit 2), not a check.
        return Err(crate::error::environment(format!(
            "{} has no sandbox.receipts table: no push was ever recorded in this database, so \
             there is no receipt {} to roll back. Check the database URL: `sandbox receipts` (with \
             the same --database-url) lists the receipts pushed to a database and those the \
             snapshot recorded",
            database, receipt_id
        )));
    }
    let rows = tx
        .query(
            "SELECT status, undo::text, pushed_at::text, \
                    (SELECT count(*) FROM sandbox.receipts l WHERE l.status = 'applied' AND l.pushed_at > r.pushed_at), \
                    (SELECT array_agg(l.id::text ORDER BY l.pushed_at DESC, l.id DESC) \
                       FROM sandbox.receipts l WHERE l.status = 'applied' AND l.pushed_at > r.pushed_at) \
             FROM sandbox.receipts r WHERE id = $1::text::uuid",
            &[&receipt_id],
        )
        .await?;
    let Some(row) = rows.first() else {
        // A receipt id the user got wrong: their input, not a failed check.
        return Err(crate::error::environment(format!(
            "no receipt {} in sandbox.receipts: `sandbox receipts` lists the receipts there",
            receipt_id
        )));
    };
    let status: String = row.get(0);
    if status == "rolled_back" {
        return Ok(None);
    }
    if status != "applied" {
        return Err(check_failed(format!(
            "receipt {} has status '{status}', not 'applied': nothing to roll back",
            receipt_id
        )));
    }
    let later: i64 = row.get(3);
    if later > 0 {
        // Newest first: the order to roll them back in.
        let ids: Vec<String> = row.get::<_, Option<Vec<String>>>(4).unwrap_or_default();
        let newest = ids.first().cloned().unwrap_or_default();
        return Err(check_failed(format!(
            "{} still applied ({}, newest first); roll those back first, newest first \
             (`sandbox receipts` lists them): `sandbox rollback --receipt {newest} --confirm`",
            crate::words::counted(later, "later push is", "later pushes are"),
            crate::words::listed(&ids, 6)
        )));
    }
    Ok(Some(Undo::read(receipt_id, &row.get::<_, String>(1))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DDL check excuses a first push's receipts table by these lists
    /// (`ddl::OwnDdl`): they must say what `RECEIPTS_DDL` makes, and the
    /// shape check must ask for the same columns.
    #[test]
    fn the_receipts_lists_match_the_ddl() {
        let body = RECEIPTS_DDL
            .split_once("CREATE TABLE sandbox.receipts (")
            .and_then(|(_, rest)| rest.split_once("\n);"))
            .map(|(body, _)| body)
            .expect("RECEIPTS_DDL creates sandbox.receipts");
        let lines: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let columns: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(columns, RECEIPTS_COLUMNS);
        let defaults: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains(" DEFAULT "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(defaults, RECEIPTS_DEFAULTS);
        for c in RECEIPTS_COLUMNS {
            assert!(RECEIPTS_SHAPE_SQL.contains(&format!("'{c}'")), "{c}");
        }
        assert!(
            body.contains("id uuid PRIMARY KEY")
                && body.contains("status text NOT NULL CHECK (status")
        );
        let nullable: Vec<&str> = lines
            .iter()
            .filter(|l| !l.contains("NOT NULL") && !l.contains("PRIMARY KEY"))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(nullable, RECEIPTS_NULLABLE);
    }
}
