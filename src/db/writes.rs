//! Every write of a transaction, database-wide, from Postgres's own
//! per-transaction statistics (`pg_stat_xact_user_tables`): whatever made
//! it — our statements, a row trigger, a rule, an event trigger on our DDL —
//! it is counted there before COMMIT. Push and rollback compare these counts
//! with the writes they meant to make and refuse anything else.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

use crate::plan::checks::{Check, CheckKind};

/// Rows one table received in this transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableWrites {
    /// `schema.table`.
    pub table: String,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    /// For a side effect: the triggers and event triggers whose functions
    /// (or functions they call) name this table — what wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written_by: Vec<String>,
}

impl TableWrites {
    pub fn total(&self) -> i64 {
        self.inserted + self.updated + self.deleted
    }

    pub fn describe(&self) -> String {
        format!(
            "{}: {} ({} inserted, {} updated, {} deleted){}",
            self.table,
            crate::words::rows(self.total()),
            self.inserted,
            self.updated,
            self.deleted,
            if self.written_by.is_empty() {
                String::new()
            } else {
                format!(", written by {}", self.written_by.join("; "))
            }
        )
    }
}

/// `audit_log` means `public.audit_log`; `app.audit_log` is taken as is.
pub fn qualify(table: &str) -> String {
    if table.contains('.') {
        table.to_string()
    } else {
        format!("public.{table}")
    }
}

/// The values of `--allow-writes` naming no table, view or partitioned
/// table of this database (as [`qualify`] reads them: `audit_log` in
/// public, `app.audit_log` as written), each with what is accepted: a
/// mistyped name would otherwise allow nothing, silently.
pub async fn unknown_tables(tx: &Transaction<'_>, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let qualified: Vec<String> = names.iter().map(|n| qualify(n)).collect();
    let rows = tx
        .query_typed(
            "SELECT q.i::int4 FROM unnest($1::text[]) WITH ORDINALITY q(name, i) \
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname::text || '.' || c.relname::text = q.name \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))",
            &[(&qualified, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let i = r.get::<_, i32>(0) as usize - 1;
            format!(
                "--allow-writes {}: no table {} in this database (name it as TABLE for one in \
                 public, or SCHEMA.TABLE, spelled as the catalog has it)",
                names[i], qualified[i]
            )
        })
        .collect())
}

/// Transaction-local setting holding the per-table counters
/// `pg_stat_xact_user_tables` showed at the start of the transaction.
/// They are not always zero there: Postgres (15+) keeps a backend's
/// counters of earlier, committed transactions pending for up to a few
/// seconds, and shows them in the next transaction of that backend. Through
/// a transaction pooler that backend just ran an app's transaction, so the
/// app's writes would count as ours. Pending counters are flushed only
/// while the backend idles outside a transaction, so inside ours the
/// difference is exactly what this transaction wrote.
const WRITES_AT_START: &str = "sandbox.writes_at_start";

/// Every table of every schema this transaction has written so far
/// (temporary tables aside: they are the tool's own scratch space and go
/// with the transaction), counted from [`record_start`].
pub async fn transaction_writes(tx: &Transaction<'_>) -> Result<Vec<TableWrites>> {
    let rows = tx
        .query_typed(
            // A partition's rows count for its partitioned table, the
            // name a plan and --allow-writes use. Without the setting
            // (never recorded) the cast fails: no silent fallback.
            &format!(
                "WITH xact AS ( \
                   SELECT s.relid, s.schemaname, \
                          s.n_tup_ins - coalesce((b.v->>0)::int8, 0) AS ins, \
                          s.n_tup_upd - coalesce((b.v->>1)::int8, 0) AS upd, \
                          s.n_tup_del - coalesce((b.v->>2)::int8, 0) AS del \
                   FROM pg_catalog.pg_stat_xact_user_tables s \
                   LEFT JOIN pg_catalog.jsonb_each( \
                     pg_catalog.current_setting('{WRITES_AT_START}')::jsonb) b(relid, v) \
                     ON b.relid = s.relid::text) \
                 SELECT n.nspname::text || '.' || c.relname::text, sum(s.ins)::int8, \
                        sum(s.upd)::int8, sum(s.del)::int8 \
                 FROM xact s \
                 JOIN pg_catalog.pg_class c ON c.oid = coalesce(pg_catalog.pg_partition_root(s.relid), s.relid) \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE s.ins + s.upd + s.del > 0 \
                   AND s.schemaname::text NOT LIKE 'pg\\_temp\\_%' GROUP BY 1 ORDER BY 1"
            ),
            &[],
        )
        .await
        .context("cannot read this transaction's writes (pg_stat_xact_user_tables)")?;
    Ok(rows
        .iter()
        .map(|r| TableWrites {
            table: r.get(0),
            inserted: r.get(1),
            updated: r.get(2),
            deleted: r.get(3),
            written_by: vec![],
        })
        .collect())
}

/// Transaction-local setting holding, from the start of the transaction,
/// the storage (`relfilenode`) of every user table: TRUNCATE, and any
/// rewrite (ALTER TABLE … TYPE, VACUUM FULL, REFRESH MATERIALIZED VIEW),
/// gives a table new storage without counting a single row in
/// `pg_stat_xact_user_tables`, so only this comparison sees it. A setting,
/// not a temporary table: creating one would fire the database's event
/// triggers.
const STORAGE_AT_START: &str = "sandbox.storage_at_start";

/// The user tables whose storage [`storage_check`] watches: plain tables,
/// partitions and materialized views of every schema but the system's and
/// temporary ones.
const WATCHED_TABLES: &str = "FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'm') AND c.relfilenode <> 0 \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname::text NOT LIKE 'pg\\_%'";

/// Records, in one statement, the storage of every user table (see
/// [`STORAGE_AT_START`]) and the write counters already showing (see
/// [`WRITES_AT_START`]); called once, at the start of the push or rollback
/// transaction, before its first write.
pub async fn record_start(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute(&record_start_sql()).await?;
    Ok(())
}

/// [`record_start`]'s statement, to send along with another.
pub fn record_start_sql() -> String {
    format!(
        "SELECT pg_catalog.set_config('{STORAGE_AT_START}', \
           (SELECT coalesce(pg_catalog.jsonb_object_agg(c.oid::text, c.relfilenode::text), '{{}}')::text \
            {WATCHED_TABLES}), true), \
         pg_catalog.set_config('{WRITES_AT_START}', \
           (SELECT coalesce(pg_catalog.jsonb_object_agg(s.relid::text, \
                     pg_catalog.jsonb_build_array(s.n_tup_ins, s.n_tup_upd, s.n_tup_del)), '{{}}')::text \
            FROM pg_catalog.pg_stat_xact_user_tables s \
            WHERE s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0), true); {}",
        crate::db::ddl::record_start_sql()
    )
}

/// One check: no table outside `exempt` (the plan's own DDL targets, which
/// may be rewritten) got new storage in this transaction, whatever
/// `allowed` (--allow-writes, only named in the refusal) says. A table whose storage changed counts only while this
/// transaction holds its ACCESS EXCLUSIVE lock, which TRUNCATE and every
/// rewrite take until COMMIT: an app's own TRUNCATE, committed meanwhile
/// in its session, is not ours and is not named.
pub async fn storage_check(
    tx: &Transaction<'_>,
    phase: &str,
    exempt: &[String],
    allowed: &[String],
) -> Result<Check> {
    // The recorded storage is read on the server, in the statement sent
    // with the one asking whether it was recorded: one round trip.
    let asked = format!(
        "SELECT coalesce(pg_catalog.current_setting('{STORAGE_AT_START}', true), '') <> ''"
    );
    // A partition is named by its partitioned table, the name a plan and
    // --allow-writes use.
    let replaced = format!(
                "SELECT DISTINCT rn.nspname::text || '.' || r.relname::text \
                 FROM pg_catalog.jsonb_each_text(nullif( \
                   pg_catalog.current_setting('{STORAGE_AT_START}', true), '')::jsonb) s(oid, node) \
                 JOIN pg_catalog.pg_class c ON c.oid = s.oid::oid \
                 JOIN pg_catalog.pg_class r ON r.oid = coalesce(pg_catalog.pg_partition_root(c.oid), c.oid) \
                 JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace \
                 WHERE c.relfilenode::text <> s.node \
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l \
                               WHERE l.locktype = 'relation' AND l.relation = c.oid \
                                 AND l.pid = pg_catalog.pg_backend_pid() \
                                 AND l.mode = 'AccessExclusiveLock' AND l.granted) \
                 ORDER BY 1"
    );
    let (recorded, rows) =
        futures_util::join!(tx.query_typed(&asked, &[]), tx.query_typed(&replaced, &[]));
    let recorded: bool = recorded?.first().is_some_and(|r| r.get(0));
    if !recorded {
        anyhow::bail!(
            "the storage of the tables was not recorded at the start of this transaction, so a \
             TRUNCATE could not be told apart"
        );
    }
    let rows = rows?;
    let exempt: Vec<String> = exempt.iter().map(|t| qualify(t)).collect();
    let allowed: Vec<String> = allowed.iter().map(|t| qualify(t)).collect();
    let replaced: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|t| !exempt.contains(t))
        .map(|t| {
            // A TRUNCATE deletes rows no statistics count: the receipt
            // would record none of them and the report name no deletion,
            // so --allow-writes (consent to counted row writes) covers
            // none (F10: an allowed audit table emptied, exit 0).
            let why = if allowed.contains(&t) {
                "; --allow-writes covers a side table's counted row writes, never a TRUNCATE \
                 or rewrite, whose deleted rows nothing records"
                    .to_string()
            } else {
                String::new()
            };
            format!(
                "{t} — truncated or rewritten in this transaction (a trigger, rule or event trigger \
                 ran TRUNCATE or a table rewrite), outside the plan: stop what runs it{why}"
            )
        })
        .collect();
    Ok(Check::no_rows(
        phase,
        "no table truncated or rewritten outside the plan (every schema)",
        CheckKind::Guard,
        replaced,
    ))
}

/// A foreign key through which Postgres itself writes a table when a row
/// it references is deleted or re-keyed (ON DELETE / ON UPDATE CASCADE,
/// SET NULL, SET DEFAULT): a write the accounting sees on a table the plan
/// never named, caused by the plan's own deletes or key updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadingKey {
    /// The constraint's name.
    pub name: String,
    /// `schema.table` holding the foreign key (the written one).
    pub table: String,
    pub columns: String,
    /// `schema.table` it references.
    pub references: String,
    /// `ON DELETE CASCADE`, `ON UPDATE SET NULL`, … (the actions that write).
    pub actions: String,
}

impl CascadingKey {
    fn describe(&self) -> String {
        format!(
            "foreign key {} ({}({}) references {} {})",
            self.name, self.table, self.columns, self.references, self.actions
        )
    }
}

/// The cascading foreign keys (see [`CascadingKey`]) of the tables among
/// `writes` that the accounting would refuse (neither `expected` nor
/// `allowed`), into any other table this transaction wrote: what names such
/// a write as what it is. One catalog query, only when there is such a
/// write. Constraints a partition inherits are named by the partitioned
/// table's (`conparentid = 0`), as the writes are.
pub async fn cascading_keys(
    tx: &Transaction<'_>,
    writes: &[TableWrites],
    expected: &BTreeMap<String, TableWrites>,
    allowed: &[String],
) -> Result<BTreeMap<String, Vec<CascadingKey>>> {
    let unplanned: Vec<String> = writes
        .iter()
        .filter(|w| {
            !expected.contains_key(&w.table) && !allowed.iter().any(|a| qualify(a) == w.table)
        })
        .map(|w| w.table.clone())
        .collect();
    let mut out: BTreeMap<String, Vec<CascadingKey>> = BTreeMap::new();
    if unplanned.is_empty() {
        return Ok(out);
    }
    let written: Vec<String> = writes.iter().map(|w| w.table.clone()).collect();
    let rows = tx
        .query_typed(
            "SELECT k.conname::text, rn.nspname::text || '.' || r.relname::text, \
                    (SELECT string_agg(a.attname::text, ', ' ORDER BY c.ord) \
                     FROM unnest(k.conkey) WITH ORDINALITY c(attnum, ord) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = c.attnum), \
                    fn.nspname::text || '.' || f.relname::text, \
                    concat_ws(', ', \
                      CASE k.confdeltype WHEN 'c' THEN 'ON DELETE CASCADE' WHEN 'n' THEN 'ON DELETE SET NULL' \
                                         WHEN 'd' THEN 'ON DELETE SET DEFAULT' END, \
                      CASE k.confupdtype WHEN 'c' THEN 'ON UPDATE CASCADE' WHEN 'n' THEN 'ON UPDATE SET NULL' \
                                         WHEN 'd' THEN 'ON UPDATE SET DEFAULT' END) \
             FROM pg_catalog.pg_constraint k \
             JOIN pg_catalog.pg_class r ON r.oid = k.conrelid \
             JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace \
             JOIN pg_catalog.pg_class f ON f.oid = k.confrelid \
             JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace \
             WHERE k.contype = 'f' AND k.conparentid = 0 \
               AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd')) \
               AND rn.nspname::text || '.' || r.relname::text = ANY($1) \
               AND fn.nspname::text || '.' || f.relname::text = ANY($2) \
             ORDER BY 2, 1",
            &[
                (&unplanned, tokio_postgres::types::Type::TEXT_ARRAY),
                (&written, tokio_postgres::types::Type::TEXT_ARRAY),
            ],
        )
        .await
        .context("cannot read the foreign keys of the tables written outside the plan")?;
    for r in &rows {
        let key = CascadingKey {
            name: r.get(0),
            table: r.get(1),
            columns: r.get::<_, Option<String>>(2).unwrap_or_default(),
            references: r.get(3),
            actions: r.get(4),
        };
        out.entry(key.table.clone()).or_default().push(key);
    }
    Ok(out)
}

/// A rollback's allowance, per kind: `explicit` is its own
/// `--allow-writes`, any kind; `inherited` is what the push was allowed to
/// write, which a rollback may only insert into (an audit trigger logging
/// the undo's deletes adds rows and destroys none). The push's consent was
/// to what the push did there; a rollback's update or delete of such a
/// table's rows reaches rows the app may have written since (a trigger's
/// `delete from audit_log where workflow_id = old.id`), so it needs the
/// rollback's own `--allow-writes`.
/// Returns the tables the accounting allows (`schema.table`), and the
/// writes outside `expected` that take the inherited allowance beyond
/// inserts: each refuses (see [`beyond_inherited_check`]).
pub fn rollback_allowance(
    writes: &[TableWrites],
    expected: &BTreeMap<String, TableWrites>,
    explicit: &[String],
    inherited: &[String],
) -> (Vec<String>, Vec<TableWrites>) {
    let explicit: Vec<String> = explicit.iter().map(|t| qualify(t)).collect();
    let inherited: Vec<String> = inherited.iter().map(|t| qualify(t)).collect();
    let mut allowed = explicit.clone();
    let mut beyond = Vec::new();
    for w in writes.iter().filter(|w| {
        !expected.contains_key(&w.table)
            && !explicit.contains(&w.table)
            && inherited.contains(&w.table)
    }) {
        if w.updated == 0 && w.deleted == 0 {
            allowed.push(w.table.clone());
        } else {
            beyond.push(w.clone());
        }
    }
    (allowed, beyond)
}

/// The check failing for each write of [`rollback_allowance`]'s second
/// list: table, kind and count, what the push wrote there, and the flag
/// that allows it.
pub fn beyond_inherited_check(
    phase: &str,
    beyond: &[TableWrites],
    pushed: &[TableWrites],
    writers: &dyn Fn(&str) -> Vec<String>,
) -> Check {
    let rows = beyond
        .iter()
        .map(|w| {
            let kinds: Vec<String> = [("deleted", w.deleted), ("updated", w.updated)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k} {}", crate::words::rows(n)))
                .collect();
            let push =
                pushed
                    .iter()
                    .find(|p| p.table == w.table)
                    .map_or("nothing".to_string(), |p| {
                        format!(
                            "{} inserted, {} updated, {} deleted",
                            p.inserted, p.updated, p.deleted
                        )
                    });
            let by = writers(&w.table);
            format!(
                "{} — the undo {} there ({} inserted, {} updated, {} deleted; {}), rows it did \
                 not write, which may be the app's. The push's --allow-writes {} covered the \
                 push's own writes there ({push}); a rollback only inherits it for inserts. To \
                 let this rollback delete or update them, add --allow-writes {} to the rollback \
                 (what it writes is then listed)",
                w.table,
                kinds.join(" and "),
                w.inserted,
                w.updated,
                w.deleted,
                if by.is_empty() {
                    "written by a trigger, rule or event trigger".to_string()
                } else {
                    format!("written by {}", by.join("; "))
                },
                w.table,
                w.table,
            )
        })
        .collect();
    Check::no_rows(
        phase,
        "no rows deleted or updated outside the undo without the rollback's own --allow-writes",
        CheckKind::Guard,
        rows,
    )
}

/// The keys among `keys` (into other tables this transaction wrote,
/// `writes`) whose actions can have made all of `w`: none when one kind of
/// its rows is left unexplained — an action never inserts, a CASCADE on
/// delete deletes and needs deletes in the referenced table, SET NULL /
/// SET DEFAULT on delete and any ON UPDATE action update and need deletes
/// (or updates) there. Otherwise the write is a trigger's, named as one.
fn explaining_keys<'k>(
    keys: &'k [CascadingKey],
    w: &TableWrites,
    writes: &[TableWrites],
) -> Vec<&'k CascadingKey> {
    let written = |table: &str| writes.iter().find(|x| x.table == table);
    let deletes = |k: &CascadingKey| {
        k.actions.contains("ON DELETE CASCADE")
            && written(&k.references).is_some_and(|r| r.deleted > 0)
    };
    let updates = |k: &CascadingKey| {
        (k.actions.contains("ON DELETE SET")
            && written(&k.references).is_some_and(|r| r.deleted > 0))
            || (k.actions.contains("ON UPDATE")
                && written(&k.references).is_some_and(|r| r.updated > 0))
    };
    let explained = w.inserted == 0
        && (w.deleted == 0 || keys.iter().any(deletes))
        && (w.updated == 0 || keys.iter().any(updates));
    if !explained {
        return vec![];
    }
    keys.iter()
        .filter(|k| (w.deleted > 0 && deletes(k)) || (w.updated > 0 && updates(k)))
        .collect()
}

/// What the accounting found: one check per surprise, and the side effects
/// the user allowed.
pub struct Accounting {
    pub checks: Vec<Check>,
    pub allowed: Vec<TableWrites>,
}

/// Compares the transaction's writes with `expected` (exact counts per
/// `schema.table`) and `allowed` (tables a side effect may write).
/// `phase` names the step in the checks ("push", "rollback").
/// `cascades` (from [`cascading_keys`]) names a write Postgres made through
/// a foreign key as that foreign key, not as a trigger's.
/// `protected` (`schema.table`) are the tables the plan protects or reads:
/// no --allow-writes covers them, since the rehearsal's result rests on
/// their rows.
pub fn account(
    phase: &str,
    writes: &[TableWrites],
    expected: &BTreeMap<String, TableWrites>,
    allowed: &[String],
    protected: &[String],
    cascades: &BTreeMap<String, Vec<CascadingKey>>,
    writers: &dyn Fn(&str) -> Vec<String>,
) -> Accounting {
    let mut checks = Vec::new();
    let mut allowed_writes = Vec::new();
    let mut unexpected = Vec::new();
    for w in writes {
        if let Some(e) = expected.get(&w.table) {
            let mut c = Check::equal(
                phase,
                &format!("{} written exactly as planned", w.table),
                CheckKind::Guard,
                format!(
                    "{} inserted, {} updated, {} deleted",
                    e.inserted, e.updated, e.deleted
                ),
                format!(
                    "{} inserted, {} updated, {} deleted",
                    w.inserted, w.updated, w.deleted
                ),
            );
            c.ok = e.inserted == w.inserted && e.updated == w.updated && e.deleted == w.deleted;
            if !c.ok {
                let by = writers(&w.table);
                c.rows = vec![if by.is_empty() {
                    format!(
                        "{}: something besides the plan (a trigger, a rule) wrote rows here",
                        w.table
                    )
                } else {
                    format!(
                        "{}: something besides the plan wrote rows here; functions that name it \
                         run for the push's writes: {}",
                        w.table,
                        by.join("; ")
                    )
                }];
                c.row_count = 1;
            }
            checks.push(c);
        } else if protected.contains(&w.table) {
            let by = writers(&w.table);
            unexpected.push(format!(
                "{} — a table the plan protects or reads, written outside the plan ({}); \
                 --allow-writes cannot cover it: the rehearsal's result rests on its rows. Stop \
                 what writes it",
                w.describe(),
                if by.is_empty() {
                    "by a trigger, rule or event trigger".to_string()
                } else {
                    format!("by {}", by.join("; "))
                },
            ));
        } else if allowed.iter().any(|a| qualify(a) == w.table) {
            allowed_writes.push(TableWrites {
                written_by: writers(&w.table),
                ..w.clone()
            });
        } else if let Some(keys) = cascades
            .get(&w.table)
            .map(|keys| explaining_keys(keys, w, writes))
            .filter(|keys| !keys.is_empty())
        {
            // Postgres wrote these rows itself, for the rows this
            // transaction deleted or re-keyed in the referenced table: a
            // loss of the app's rows that rollback cannot bring back.
            let referenced: Vec<&str> = keys.iter().map(|k| k.references.as_str()).collect();
            unexpected.push(format!(
                "{} — written by Postgres through {}: the plan deletes or re-keys rows of {} that \
                 rows of {} reference, and each such row is deleted or changed with them, outside \
                 the plan (rollback cannot bring them back). The plan must not delete or re-key \
                 referenced rows (handle the referencing rows first{}), or allow writes to that \
                 table with --allow-writes {} if losing them is intended",
                w.describe(),
                keys.iter()
                    .map(|k| k.describe())
                    .collect::<Vec<_>>()
                    .join(" and "),
                referenced.join(", "),
                w.table,
                // Pull reads schema public only: advising another schema's
                // table as a plan table sends the user into a refused pull.
                match w.table.strip_prefix("public.") {
                    Some(name) =>
                        format!("; add {name} to the plan's tables so the rehearsal sees them"),
                    None => String::new(),
                },
                w.table
            ));
        } else {
            let by = writers(&w.table);
            unexpected.push(format!(
                "{} — outside the plan's write set ({}); allow it with --allow-writes {} if that is \
                 intended",
                w.describe(),
                if by.is_empty() {
                    "written by a trigger, rule or event trigger".to_string()
                } else {
                    format!("written by {}", by.join("; "))
                },
                w.table
            ));
        }
    }
    checks.push(Check::no_rows(
        phase,
        "no writes outside the plan's write set (every schema)",
        CheckKind::Guard,
        unexpected,
    ));
    Accounting {
        checks,
        allowed: allowed_writes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(table: &str, ins: i64, upd: i64, del: i64) -> TableWrites {
        TableWrites {
            table: table.into(),
            inserted: ins,
            updated: upd,
            deleted: del,
            written_by: vec![],
        }
    }

    #[test]
    fn a_foreign_key_explains_only_the_kind_of_write_its_action_makes() {
        let key = |actions: &str| CascadingKey {
            name: "k".into(),
            table: "app.tags".into(),
            columns: "workflow_id".into(),
            references: "public.workflows".into(),
            actions: actions.into(),
        };
        let set_null = [key("ON DELETE SET NULL")];
        let cascade = [key("ON DELETE CASCADE")];
        let deleting = [w("public.workflows", 0, 0, 3)];
        let inserting = [w("public.workflows", 227, 0, 0)];
        // The plan deletes nothing there: no action fired (V9).
        assert!(explaining_keys(&cascade, &w("app.tags", 0, 0, 2), &inserting).is_empty());
        // SET NULL updates; it never deletes.
        assert!(explaining_keys(&set_null, &w("app.tags", 0, 0, 2), &deleting).is_empty());
        assert_eq!(
            explaining_keys(&set_null, &w("app.tags", 0, 2, 0), &deleting).len(),
            1
        );
        assert_eq!(
            explaining_keys(&cascade, &w("app.tags", 0, 0, 2), &deleting).len(),
            1
        );
        // An action never inserts.
        assert!(explaining_keys(&cascade, &w("app.tags", 1, 0, 2), &deleting).is_empty());
    }

    #[test]
    fn a_rollback_inherits_the_push_s_allowance_for_inserts_only() {
        let expected: BTreeMap<String, TableWrites> = [w("public.workflows", 0, 0, 227)]
            .into_iter()
            .map(|x| (x.table.clone(), x))
            .collect();
        let writes = [
            w("public.workflows", 0, 0, 227),
            w("public.audit_log", 0, 0, 247),
            w("public.ddl_log", 3, 0, 0),
            w("app.notes", 0, 5, 0),
        ];
        let inherited = [
            "audit_log".to_string(),
            "ddl_log".into(),
            "app.notes".into(),
        ];
        let (allowed, beyond) = rollback_allowance(&writes, &expected, &[], &inherited);
        assert_eq!(allowed, ["public.ddl_log"]);
        let beyond: Vec<&str> = beyond.iter().map(|b| b.table.as_str()).collect();
        assert_eq!(beyond, ["public.audit_log", "app.notes"]);
        // The rollback's own --allow-writes covers any kind.
        let (allowed, beyond) =
            rollback_allowance(&writes, &expected, &["public.audit_log".into()], &inherited);
        assert_eq!(allowed, ["public.audit_log", "public.ddl_log"]);
        assert_eq!(beyond.len(), 1);
        assert_eq!(beyond[0].table, "app.notes");
    }

    #[test]
    fn planned_counts_pass_and_anything_else_is_named() {
        let none = |_: &str| Vec::new();
        let expected: BTreeMap<String, TableWrites> = [w("public.workflows", 227, 0, 0)]
            .into_iter()
            .map(|x| (x.table.clone(), x))
            .collect();
        let ok = account(
            "push",
            &[w("public.workflows", 227, 0, 0)],
            &expected,
            &[],
            &[],
            &BTreeMap::new(),
            &none,
        );
        assert!(ok.checks.iter().all(|c| c.ok));

        // A trigger writing the planned table once more per row.
        let more = account(
            "push",
            &[w("public.workflows", 227, 227, 0)],
            &expected,
            &[],
            &[],
            &BTreeMap::new(),
            &none,
        );
        assert!(!more.checks[0].ok, "{:?}", more.checks);

        // A table outside the plan, in any schema, unless allowed.
        let writes = [
            w("public.workflows", 227, 0, 0),
            w("audit.audit_log", 227, 0, 0),
            w("public.ddl_log", 13, 0, 0),
        ];
        let refused = account(
            "push",
            &writes,
            &expected,
            &["audit_log".into()],
            &[],
            &BTreeMap::new(),
            &|t| {
                if t == "public.ddl_log" {
                    vec!["event trigger log_ddl (function log_ddl())".into()]
                } else {
                    vec![]
                }
            },
        );
        let last = refused.checks.last().unwrap();
        assert!(!last.ok);
        assert_eq!(last.row_count, 2, "public.audit_log is not audit.audit_log");
        assert!(
            last.rows[0].contains("audit.audit_log: 227 rows"),
            "{:?}",
            last.rows
        );
        assert!(
            last.rows[1].contains("written by event trigger log_ddl (function log_ddl())"),
            "{:?}",
            last.rows
        );
        let allowed = account(
            "push",
            &writes,
            &expected,
            &["audit.audit_log".into(), "ddl_log".into()],
            &[],
            &BTreeMap::new(),
            &none,
        );
        assert!(allowed.checks.iter().all(|c| c.ok));
        assert_eq!(allowed.allowed.len(), 2);
    }
}
