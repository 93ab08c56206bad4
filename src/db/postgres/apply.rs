//! Writing rows the diff names by key: updates (old values checked,
//! proven `updated_at` stamps held off) and deletes, each one statement
//! carrying its rows (`rowset`). Push and rollback both use them.

use anyhow::Result;
use tokio_postgres::{SimpleQueryMessage, Transaction};

use crate::catalog::TableMeta;
use crate::db::pg_error::is_refused;
use crate::db::postgres::rowset::RowSet;
pub(crate) use crate::db::postgres::rowset::ROW_NUMBER;
use crate::db::postgres::search_path::TypeSpellings;
use crate::db::triggers::{held_off_enabled_again, NotHeldOff, TriggerAction, TriggerReport};
use crate::diff::TableDiff;
use crate::error::{environment, refused as refuse};
use crate::types::quote_ident;

/// Where the key columns of `t` sit among its columns (an error when one
/// is missing: the diff or receipt is damaged).
pub(crate) fn key_positions_of(t: &TableDiff) -> Result<Vec<usize>> {
    crate::diff::key_positions(
        &TableMeta {
            name: t.table.clone(),
            role: crate::catalog::TableRole::Source,
            columns: t.columns.clone(),
            constraints: vec![crate::catalog::ConstraintMeta::new(
                format!("{}_pkey", t.table),
                "p",
                t.key.clone(),
                String::new(),
            )],
        },
        &t.key,
    )
}

/// A column's type as a cast target, spelled by `types` (qualified for a
/// statement under the app's path).
pub(crate) fn cast_type(
    types: &TypeSpellings,
    t: &TableDiff,
    c: &crate::catalog::ColumnMeta,
) -> Result<String> {
    types.cast(cast_spelling(&t.table, c)?)
}

/// The spellings [`cast_type`] and [`TypeSpellings`] take for the columns
/// of `tables`.
pub(crate) fn cast_spellings<'a>(
    tables: impl IntoIterator<Item = &'a TableDiff>,
) -> Result<Vec<&'a str>> {
    let mut out = Vec::new();
    for t in tables {
        for c in &t.columns {
            out.push(cast_spelling(&t.table, c)?);
        }
    }
    Ok(out)
}

/// A column's type, checked before it is spliced into SQL as a cast: it
/// comes from the snapshot or, for a rollback, from the receipt.
pub(crate) fn cast_spelling<'a>(table: &str, c: &'a crate::catalog::ColumnMeta) -> Result<&'a str> {
    let ty = crate::types::sql_type_name(&c.pg_type).map_err(|e| {
        environment(format!(
            "{table}.{}: {e}; the snapshot or receipt that holds it is damaged",
            c.name
        ))
    })?;
    // An explicit cast to varchar(n) or char(n) silently truncates; cast
    // to the type without its length, so storing into the column (an
    // assignment) refuses a value that is too long.
    for base in ["character varying(", "character(", "bit varying(", "bit("] {
        if ty.starts_with(base) && ty.ends_with(')') {
            return Ok(&ty[..base.len() - 1]);
        }
    }
    Ok(ty)
}

/// Deletes rows by key (their whole before-images go into the receipt;
/// the drift check proved them unchanged since the pull). The keys travel
/// inside the DELETE (see `rowset`): no temporary table, no DDL.
pub async fn delete_rows(
    tx: &Transaction<'_>,
    types: &TypeSpellings,
    t: &TableDiff,
    rows: &[&Vec<Option<String>>],
) -> Result<u64> {
    let key_idx = key_positions_of(t)?;
    let mut set_cols = vec![ROW_NUMBER.to_string()];
    set_cols.extend(t.key.iter().map(|k| format!("k_{k}")));
    let keys: Vec<Vec<Option<String>>> = rows
        .iter()
        .enumerate()
        .map(|(n, r)| {
            std::iter::once(Some((n + 1).to_string()))
                .chain(key_idx.iter().map(|i| r[*i].clone()))
                .collect()
        })
        .collect();
    let cond = key_idx
        .iter()
        .map(|i| {
            let c = &t.columns[*i];
            types.matches(
                &format!("t.{}", quote_ident(&c.name)),
                &format!("u.{}", quote_ident(&format!("k_{}", c.name))),
                cast_spelling(&t.table, c)?,
            )
        })
        .collect::<Result<Vec<_>>>()?
        .join(" AND ");
    run_batch(
        tx,
        &format!(
            "DELETE FROM public.{} t USING {} WHERE {cond}",
            quote_ident(&t.table),
            RowSet::new(&set_cols, &keys).from_item("u")
        ),
        keys.len(),
        |i| format!("row {}", key_label(t, &keys[i][1..])),
    )
    .await
}

/// A row of `t` named by its key values (in key order).
fn key_label(t: &TableDiff, key: &[Option<String>]) -> String {
    crate::types::row_label(&t.key, key.iter().map(|v| v.as_deref()))
}

/// Runs `sql` — an UPDATE or DELETE joined to a batch's rows (a `RowSet`)
/// as `u` (numbered by [`ROW_NUMBER`]), ending in its WHERE clause — in a
/// savepoint taken in the same round trip, and returns the rows it changed.
/// When Postgres refuses it (a constraint, a trigger's RAISE, a value),
/// its error names no row, or names it only in a detail; so the statement
/// is run again over halves of the rows, each under a savepoint, to find
/// the first row it refuses (about log2(rows) round trips, only on this
/// path), and that row's error is returned with `row(i)` (0-based) as its
/// context. The transaction is refused either way.
pub(crate) async fn run_batch(
    tx: &Transaction<'_>,
    sql: &str,
    rows: usize,
    row: impl Fn(usize) -> String,
) -> Result<u64> {
    let e = match tx
        .simple_query(&format!(
            "SAVEPOINT sandbox_batch; {sql}; RELEASE SAVEPOINT sandbox_batch"
        ))
        .await
    {
        Ok(messages) => {
            return messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .nth(1)
                .ok_or_else(|| anyhow::anyhow!("Postgres did not say how many rows it changed"));
        }
        Err(e) => anyhow::Error::new(e),
    };
    if !is_refused(&e) || rows < 2 {
        return Err(match rows {
            1 => e.context(row(0)),
            _ => e,
        });
    }
    match first_refused_row(tx, sql, rows, &row).await {
        Ok(Some(named)) => Err(named),
        // No single row is refused alone (rows that collide with each
        // other), or the search itself failed: the batch's own error.
        _ => Err(e),
    }
}

/// See [`run_batch`]: rows before `lo` are applied and `lo..=hi` on top
/// of them is refused; halve until one row is left.
async fn first_refused_row(
    tx: &Transaction<'_>,
    sql: &str,
    rows: usize,
    row: &impl Fn(usize) -> String,
) -> Result<Option<anyhow::Error>> {
    let (mut lo, mut hi) = (1, rows);
    let mut before = "ROLLBACK TO SAVEPOINT sandbox_batch;";
    loop {
        let mid = (lo + hi) / 2;
        let probe = format!(
            "{before} SAVEPOINT sandbox_probe; {sql} AND u.{ROW_NUMBER} BETWEEN {lo} AND {mid}"
        );
        match tx.batch_execute(&probe).await {
            Ok(()) if lo == hi => return Ok(None),
            Ok(()) => {
                before = "RELEASE SAVEPOINT sandbox_probe;";
                lo = mid + 1;
            }
            Err(e) => {
                let e = anyhow::Error::new(e);
                if !is_refused(&e) {
                    return Err(e);
                }
                if lo == mid {
                    return Ok(Some(e.context(row(lo - 1))));
                }
                before = "ROLLBACK TO SAVEPOINT sandbox_probe; RELEASE SAVEPOINT sandbox_probe;";
                hi = mid;
            }
        }
    }
}

/// Applies a table's column updates: one UPDATE … FROM the keys, old and
/// new values (a `RowSet`, inside the statement) that also checks each row
/// still holds its old value. The triggers in `held_off` (proven `updated_at`
/// stamps the plan names, see `db::triggers`) are disabled around the
/// UPDATE and restored to their mode; every other trigger fires. Returns the
/// rows updated.
pub async fn apply_updates(
    tx: &Transaction<'_>,
    types: &TypeSpellings,
    td: &TableDiff,
    restore: bool,
    held_off: &[TriggerReport],
) -> Result<u64> {
    apply_row_updates(tx, types, td, &td.updates, restore, held_off).await
}

/// [`apply_updates`] for some of a table's updates (one phase's).
pub async fn apply_row_updates(
    tx: &Transaction<'_>,
    types: &TypeSpellings,
    td: &TableDiff,
    row_updates: &[crate::diff::RowUpdate],
    restore: bool,
    held_off: &[TriggerReport],
) -> Result<u64> {
    if row_updates.is_empty() {
        return Ok(0);
    }
    let by_cols = crate::diff::update_statements(row_updates);
    let triggers: Vec<&TriggerReport> = held_off
        .iter()
        .filter(|t| t.table == td.table && t.action == TriggerAction::HeldOff)
        .collect();
    hold_off(tx, &td.table, &triggers, HoldOff::Disable).await?;
    // A column the diff does not know has no type to cast to: an error,
    // not a guess of `text`.
    let type_of = |name: &str| -> Result<&str> {
        let c = td.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            environment(format!(
                "{}: the update names column {name}, which the table does not have",
                td.table
            ))
        })?;
        cast_spelling(&td.table, c)
    };
    let mut total = 0;
    for (columns, updates) in &by_cols {
        let cols: Vec<&String> = columns.iter().map(|(c, _)| c).collect();
        let mut set_cols = vec![ROW_NUMBER.to_string()];
        set_cols.extend(td.key.iter().map(|k| format!("k_{k}")));
        set_cols.extend(cols.iter().map(|c| format!("old_{c}")));
        set_cols.extend(cols.iter().map(|c| format!("new_{c}")));
        let rows: Vec<Vec<Option<String>>> = updates
            .iter()
            .enumerate()
            .map(|(n, u)| {
                let mut r: Vec<Option<String>> = std::iter::once(Some((n + 1).to_string()))
                    .chain(u.key.iter().map(|k| Some(k.clone())))
                    .collect();
                let (old, new): (Vec<_>, Vec<_>) = u
                    .changes
                    .iter()
                    .map(|c| (c.old.clone(), c.new.clone()))
                    .unzip();
                // A rollback writes the old values back where the new ones are.
                if restore {
                    r.extend(new);
                    r.extend(old);
                } else {
                    r.extend(old);
                    r.extend(new);
                }
                r
            })
            .collect();
        let sets = cols
            .iter()
            .map(|c| {
                Ok(format!(
                    "{} = u.{}::{}",
                    quote_ident(c),
                    quote_ident(&format!("new_{c}")),
                    types.cast(type_of(c)?)?
                ))
            })
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        let mut conds: Vec<String> = td
            .key
            .iter()
            .map(|k| {
                types.matches(
                    &format!("t.{}", quote_ident(k)),
                    &format!("u.{}", quote_ident(&format!("k_{k}"))),
                    type_of(k)?,
                )
            })
            .collect::<Result<_>>()?;
        // A column the push's own insert left to Postgres holds what it
        // filled, not the NULL the rehearsal saw: nothing to expect there.
        for (c, _) in columns.iter().filter(|(_, filled)| !filled) {
            conds.push(types.matches_or_both_null(
                &format!("t.{}", quote_ident(c)),
                &format!("u.{}", quote_ident(&format!("old_{c}"))),
                type_of(c)?,
            )?);
        }
        let updated = run_batch(
            tx,
            &format!(
                "UPDATE public.{} t SET {sets} FROM {} WHERE {}",
                quote_ident(&td.table),
                RowSet::new(&set_cols, &rows).from_item("u"),
                conds.join(" AND ")
            ),
            updates.len(),
            |i| {
                format!(
                    "row {}",
                    crate::types::row_label(
                        &td.key,
                        updates[i].key.iter().map(|k| Some(k.as_str()))
                    )
                )
            },
        )
        .await?;
        if updated != updates.len() as u64 {
            return Err(refuse(
                format!(
                    "{}: {} of {} rows still held the values the diff expected; the remote changed. Nothing was written",
                    td.table,
                    updated,
                    updates.len()
                ),
                vec![],
            ));
        }
        total += updated;
    }
    hold_off(tx, &td.table, &triggers, HoldOff::Enable).await?;
    Ok(total)
}

/// The two ends of a hold-off.
#[derive(Clone, Copy)]
enum HoldOff {
    Disable,
    Enable,
}

/// Disables (or enables again, in its mode) the held-off `triggers` of
/// `public.table` and reads them back in the same round trip (pipelined,
/// [`held_off_enabled_again`]), refusing through [`still_held_off`]. The
/// read goes behind the DISABLE: an app's event trigger that the DISABLE
/// fires may enable the stamp again (or replace it), which would then fire
/// on the updates and, enabled once more at the end, leave no trace in the
/// end-state comparison. And in front of the ENABLE: held off for every
/// statement between, not only the first. Of the two, the error of the
/// one sent first is returned (after it the transaction is aborted). No
/// trigger: nothing sent.
async fn hold_off(
    tx: &Transaction<'_>,
    table: &str,
    triggers: &[&TriggerReport],
    step: HoldOff,
) -> Result<()> {
    if triggers.is_empty() {
        return Ok(());
    }
    let held: Vec<String> = triggers.iter().map(|t| t.name.clone()).collect();
    let sql = triggers
        .iter()
        .map(|t| match step {
            HoldOff::Disable => t.disable_sql(),
            HoldOff::Enable => t.enable_sql(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let not_held_off = match step {
        HoldOff::Disable => {
            let (disabled, read) = futures_util::join!(
                tx.batch_execute(&sql),
                held_off_enabled_again(tx, table, &held, "before the updates ran")
            );
            disabled?;
            read?
        }
        HoldOff::Enable => {
            let (read, enabled) = futures_util::join!(
                held_off_enabled_again(tx, table, &held, "while the updates ran"),
                tx.batch_execute(&sql)
            );
            let read = read?;
            enabled?;
            read
        }
    };
    still_held_off(not_held_off)
}

/// Refuses when [`held_off_enabled_again`] found a held-off trigger
/// enabled or replaced: the updates would be (or were) stamped, unlike the
/// rehearsal, or the hold-off's ENABLE would enable another trigger than
/// the one proven a stamp, and the state at COMMIT could not tell. The
/// caller's transaction is rolled back.
fn still_held_off(not_held_off: Vec<NotHeldOff>) -> Result<()> {
    if not_held_off.is_empty() {
        return Ok(());
    }
    let said = not_held_off
        .iter()
        .map(|n| n.said.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let why = if not_held_off.iter().any(|n| n.replaced) {
        format!(
            "a trigger held off for the updates was replaced while it was off: {said}. Only a \
             proven updated_at stamp the plan names is held off, and the hold-off enables it \
             again by name, which would now reach another trigger, never proven; stop what \
             replaces it (disable that event trigger while this runs, or make it leave the \
             trigger alone). Rolled back, nothing was written"
        )
    } else {
        format!(
            "a trigger held off for the updates did not stay off: {said}. Only a proven \
             updated_at stamp the plan names is held off, and only while it is off do the rows \
             match the rehearsal; stop what enables it (disable that event trigger while this \
             runs, or make it leave the trigger alone). Rolled back, nothing was written"
        )
    };
    Err(refuse(why, vec![]))
}
