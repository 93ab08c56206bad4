//! The remote's state against the rehearsal: the tables a push writes must
//! equal their rehearsed form, the others be untouched by it, and the
//! objects it creates must not exist before it.

use anyhow::Result;
use tokio_postgres::Transaction;

use crate::db::postgres::copy::remote_checksum;
use crate::db::postgres::tx::simple_rows;
use crate::db::sqlite::Snapshot;
use crate::plan::checks::{Check, CheckKind};
use crate::plan::stage::{staged_meta, StagedTable};
use crate::plan::Plan;
use crate::types::quote_ident;
use crate::types::short_hash as short;

/// The objects the diff creates must not exist yet.
pub async fn target_state_checks(tx: &Transaction<'_>, plan: &Plan) -> Result<Vec<Check>> {
    let mut problems = Vec::new();
    for t in &plan.schema.tables {
        // A relation of another kind (a sequence, an index, a composite
        // type) is named, with its kind, by the name check below.
        let rows = simple_rows(
            tx,
            &format!(
                "SELECT coalesce((SELECT relkind IN ('r', 'p', 'v', 'm', 'f') FROM pg_catalog.pg_class \
                 WHERE oid = to_regclass('public.{}')), false)",
                quote_ident(&t.name).replace('\'', "''")
            ),
        )
        .await?;
        if rows
            .first()
            .and_then(|r| r.first())
            .map(|v| v == "t")
            .unwrap_or(false)
        {
            problems.push(format!("table {} already exists", t.name));
        }
    }
    // Another schema's table of the same name on the app's search_path:
    // the created public one would shadow it for the app, or be hidden
    // behind it (see `read_existing_targets`).
    let names: Vec<String> = plan.schema.tables.iter().map(|t| t.name.clone()).collect();
    if !names.is_empty() {
        let rows = tx
            .query(
                &format!(
                    "SELECT n.nspname::text, c.relname::text \
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname::text = ANY($1) \
                       AND n.nspname <> 'public' \
                       AND n.nspname IN (SELECT a.schema FROM ({}) a) ORDER BY 2, 1",
                    crate::db::postgres::search_path::APP_SCHEMAS
                ),
                &[&names],
            )
            .await?;
        let path = if rows.is_empty() {
            String::new()
        } else {
            crate::db::postgres::search_path::app_path(tx)
                .await?
                .describe()
        };
        for r in &rows {
            let (schema, name): (String, String) = (r.get(0), r.get(1));
            problems.push(format!(
                "table {name} the plan creates (as public.{name}) has the name of table \
                 {schema}.{name}, which is on {path}: the app's unqualified \
                 `{name}` would mean one of them by the order of the path; rename the table in \
                 target.json"
            ));
        }
    }
    // Every other name the CREATE TABLE needs, against the live catalog
    // (a name Postgres derives is only taken by another: no failure).
    problems.extend(
        crate::db::postgres::catalog::read_name_conflicts(
            tx,
            &crate::plan::names::claimed_names(plan),
        )
        .await?
        .iter()
        .filter(|c| !c.derived)
        .map(|c| c.describe()),
    );
    for a in &plan.schema.added_columns {
        let rows = tx
            .query(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
                &[&a.table, &a.column.name],
            )
            .await?;
        if !rows.is_empty() {
            problems.push(format!(
                "column {}.{} already exists",
                a.table, a.column.name
            ));
        }
    }
    Ok(vec![Check::no_rows(
        "target",
        "objects the diff creates do not exist yet",
        CheckKind::Integrity,
        problems,
    )])
}

/// How `state_checks` treats the pulled tables the diff does not touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untouched {
    /// They are locked against other writers: prove this transaction wrote
    /// nothing there.
    NotWrittenHere,
    /// Only the tables the diff touches matter (an "already applied" check).
    Skip,
}

/// What a read-back of whole tables found in this transaction: per table,
/// its rows and checksum (as [`remote_checksum`] computes it). The push's
/// rehearsal of its rollback judges "unchanged since the push" from it
/// instead of reading the same tables again.
pub type ReadBack = std::collections::BTreeMap<String, TableSum>;

/// One table's rows and checksum, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub rows: u64,
    pub checksum: String,
}

/// Every table the diff touches must now equal its rehearsed (staged) form
/// byte for byte; every other pulled table is treated as `untouched_check`
/// says. Returns the checks and what the read-back found.
pub async fn state_checks(
    tx: &Transaction<'_>,
    snapshot: &Snapshot,
    plan: &Plan,
    staged: &[StagedTable],
    untouched_check: Untouched,
) -> Result<(Vec<Check>, ReadBack)> {
    let mut checks = Vec::new();
    let metas = staged
        .iter()
        .map(|t| staged_meta(&snapshot.conn, snapshot, plan, &t.name))
        .collect::<Result<Vec<_>>>()?;
    // All tables read back at once: the COPY requests are pipelined on the
    // connection (each stream is consumed as its rows arrive).
    let sums =
        futures_util::future::try_join_all(metas.iter().map(|m| remote_checksum(tx, m))).await?;
    let mut read_back = ReadBack::new();
    for (expected, actual) in staged.iter().zip(sums) {
        read_back.insert(
            expected.name.clone(),
            TableSum {
                rows: actual.rows(),
                checksum: actual.hex(),
            },
        );
        let mut c = Check::equal(
            "after",
            &format!("{} equals the rehearsed state", expected.name),
            CheckKind::Guard,
            format!("{} rows, {}", expected.rows, short(&expected.checksum)),
            format!("{} rows, {}", actual.rows(), short(&actual.hex())),
        );
        c.ok = expected.checksum == actual.hex();
        checks.push(c);
    }
    let staged: Vec<&str> = staged.iter().map(|t| t.name.as_str()).collect();
    let untouched: Vec<&crate::db::sqlite::SnapshotTable> = snapshot
        .tables
        .iter()
        .filter(|t| !staged.contains(&t.meta.name.as_str()))
        .collect();
    if untouched_check == Untouched::Skip {
        return Ok((checks, read_back));
    }
    // These tables were checksummed under a lock that keeps every other
    // writer out; what remains to prove is that this transaction (the
    // diff, or a trigger it fired) wrote nothing there. Postgres counts
    // this transaction's writes per table; reading 100x-sized tables a
    // second time would prove no more.
    let names: Vec<String> = untouched.iter().map(|t| t.meta.name.clone()).collect();
    let rows = tx
        .query_typed(
            "SELECT relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::int8 \
             FROM pg_stat_xact_user_tables WHERE schemaname = 'public' AND relname::text = ANY($1)",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await?;
    for t in &untouched {
        let written: i64 = rows
            .iter()
            .find(|r| r.get::<_, String>(0) == t.meta.name)
            .map(|r| r.get(1))
            .unwrap_or(0);
        let mut c = Check::equal(
            "after",
            &format!("{} untouched", t.meta.name),
            CheckKind::Guard,
            "0 rows written".into(),
            format!("{} written", crate::words::rows(written)),
        );
        c.ok = written == 0;
        checks.push(c);
    }
    Ok((checks, read_back))
}
