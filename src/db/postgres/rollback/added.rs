//! The columns a push added to existing tables, as the rollback finds them:
//! still the push's (dropped by the undo), dropped by the app since
//! (already undone), or something else under the name — the app's own
//! column, the push's one renamed or retyped — which refuses by name.

use anyhow::{Context, Result};
use tokio_postgres::types::Type;

use super::Rollback;
use crate::receipt::{AddedColumn, AddedColumnIdentity, Undo};
use crate::types::quote_ident;

impl Rollback<'_, '_> {
    /// The columns the push added that no longer exist (the app dropped
    /// them: undone already), in the receipt's order — after proving that
    /// each one still there under its name is the very column the push
    /// added: its table's `pg_class.oid` and its `attnum` (Postgres never
    /// gives a dropped column's number to another) and type, recorded at
    /// the push's COMMIT. A column the app dropped and added again under
    /// the same name, the push's column renamed or retyped, or its table
    /// dropped and created again, refuses the rollback by name (nothing
    /// changed) instead of being dropped with the app's data, or called
    /// dropped. A receipt before format 7 recorded no identity: then only
    /// the names are looked up, and
    /// [`super::RollbackReport::added_by_name_only`] says so.
    pub(super) async fn added_columns_now(&self) -> Result<Vec<AddedColumn>> {
        let added = &self.undo.added_columns;
        if added.is_empty() {
            return Ok(vec![]);
        }
        let identity = |a: &AddedColumn| -> Option<&AddedColumnIdentity> {
            self.undo.added_identity.as_ref().and_then(|ids| {
                ids.iter()
                    .find(|i| i.table == a.table && i.column == a.column)
            })
        };
        let qualified: Vec<String> = added
            .iter()
            .map(|a| format!("public.{}", quote_ident(&a.table)))
            .collect();
        let columns: Vec<&str> = added.iter().map(|a| a.column.as_str()).collect();
        let oids: Vec<Option<i64>> = added
            .iter()
            .map(|a| identity(a).map(|i| i64::from(i.table_oid)))
            .collect();
        let attnums: Vec<Option<i16>> = added
            .iter()
            .map(|a| identity(a).map(|i| i.attnum))
            .collect();
        // Per column: the oid of the table holding its table's name now;
        // the column holding its name there (number, type); and what the
        // recorded number is now in the recorded table (name, type), if
        // that column is not dropped.
        let rows = self
            .tx
            .query_typed(
                "SELECT pg_catalog.to_regclass(t.qualified)::oid::int8, n.attnum, n.ty, r.name, r.ty \
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::int2[]) WITH ORDINALITY \
                      t(qualified, col, rel, num, ord) \
                 LEFT JOIN LATERAL ( \
                   SELECT a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS ty \
                   FROM pg_catalog.pg_attribute a \
                   WHERE a.attrelid = pg_catalog.to_regclass(t.qualified) AND a.attname = t.col \
                     AND a.attnum > 0 AND NOT a.attisdropped) n ON true \
                 LEFT JOIN LATERAL ( \
                   SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS ty \
                   FROM pg_catalog.pg_attribute a \
                   WHERE a.attrelid = t.rel::oid AND a.attnum = t.num AND NOT a.attisdropped) r ON true \
                 ORDER BY t.ord",
                &[
                    (&qualified, Type::TEXT_ARRAY),
                    (&columns, Type::TEXT_ARRAY),
                    (&oids, Type::INT8_ARRAY),
                    (&attnums, Type::INT2_ARRAY),
                ],
            )
            .await
            .context("cannot look up the columns the push added")?;
        let mut gone = Vec::new();
        let mut refusals = Vec::new();
        for (a, row) in added.iter().zip(&rows) {
            let table_now: Option<i64> = row.get(0);
            let named: Option<(i16, String)> = row.get::<_, Option<i16>>(1).zip(row.get(2));
            let recorded_now: Option<(String, String)> =
                row.get::<_, Option<String>>(3).zip(row.get(4));
            let Some(id) = identity(a) else {
                // No identity recorded: by name only. A table that is gone
                // altogether is named by the column check that follows.
                if table_now.is_some() && named.is_none() {
                    gone.push(a.clone());
                }
                continue;
            };
            if let Some(why) = judged(a, id, table_now, named, recorded_now) {
                match why {
                    Judged::Gone => gone.push(a.clone()),
                    Judged::Refused(why) => refusals.push(why),
                }
            }
        }
        if refusals.is_empty() {
            return Ok(gone);
        }
        Err(self.not_the_pushed_objects(
            "the columns the push added are the ones there now",
            "as added",
            &refusals,
        ))
    }
}

/// What one added column is now, when it is not simply the push's.
#[derive(Debug, PartialEq)]
enum Judged {
    /// Dropped since, with nothing else under its name: already undone.
    Gone,
    /// Something else holds its place or its name: why, and what to do.
    Refused(String),
}

/// Judges added column `a` against `id`, its identity at the push, from
/// what holds its table's name now (`table_now`, an oid), its own name
/// there (`named`: attnum, type) and its recorded number there
/// (`recorded_now`: name, type; `None` once dropped). `None`: it is the
/// push's column, as the push left it.
fn judged(
    a: &AddedColumn,
    id: &AddedColumnIdentity,
    table_now: Option<i64>,
    named: Option<(i16, String)>,
    recorded_now: Option<(String, String)>,
) -> Option<Judged> {
    let table = format!("public.{}", a.table);
    let plain = format!("{table}.{}", a.column);
    let then = format!("attnum {}, {}", id.attnum, id.pg_type);
    match table_now {
        Some(now) if now == i64::from(id.table_oid) => {}
        Some(now) => {
            return Some(Judged::Refused(format!(
                "{table} is not the table this push added column {} to (oid {} then, {now} now) \
                 — the push's table was dropped or renamed since and this one made under its \
                 name, or the database was restored from a dump (which gives every table a new \
                 oid); the rollback cannot tell its {} is the push's, so it does not drop it",
                a.column, id.table_oid, a.column
            )))
        }
        // The table itself is gone: the column check names it.
        None => return None,
    }
    let ident = shown_ident(&a.column);
    let qtable = format!("public.{}", shown_ident(&a.table));
    match (recorded_now, named) {
        (Some((name, ty)), _) if name == a.column => (ty != id.pg_type).then(|| {
            Judged::Refused(format!(
                "{plain} (added by this push as {}) is now {ty} — the app changed its type \
                 since, so its values are no longer the ones the push wrote; to roll back, \
                 change it back (ALTER TABLE {qtable} ALTER COLUMN {ident} TYPE {})",
                id.pg_type, id.pg_type
            ))
        }),
        (Some((name, _)), named) => {
            let renamed = format!("{table}.{name}");
            let back = format!(
                "ALTER TABLE {qtable} RENAME COLUMN {} TO {ident}",
                shown_ident(&name)
            );
            Some(Judged::Refused(match named {
                None => format!(
                    "{plain} (added by this push, {then}) is now {renamed} — the app renamed it; \
                     the rollback does not follow it there; to roll back, rename it back \
                     ({back})"
                ),
                Some((n, ty)) => format!(
                    "{plain} (added by this push, {then}) is now {renamed}, and {plain} is \
                     another column (attnum {n}, {ty}) the app added since — the rollback does \
                     not follow the push's column there nor drop the app's; to roll back, rename \
                     the app's {} out of the way and the push's back ({back}), and the app's \
                     again after",
                    a.column
                ),
            }))
        }
        (None, Some((n, ty))) => Some(Judged::Refused(format!(
            "{plain} is not the column this push added ({then} then; attnum {n}, {ty} now) — \
             the push's column was dropped after the push and this one added under its name; it \
             is not the push's to drop. The push's column, with the values it wrote there, is \
             gone already: to roll back the rest, rename this one out of the way for the \
             rollback (ALTER TABLE {qtable} RENAME COLUMN {ident} TO …) and back after it, or \
             drop it yourself if its data may go"
        ))),
        (None, None) => Some(Judged::Gone),
    }
}

/// `name` as the SQL a person copies spells it: bare when Postgres would
/// read it back unchanged, quoted otherwise.
fn shown_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// The receipt's undo without the added columns in `gone` (dropped by the
/// app since the push): not dropped again, not read or compared — the
/// rows the push updated only there are no longer the undo's to restore.
/// The rows the push inserted into such a table are still compared whole
/// with what it left, which no longer holds without the column: such a
/// row is named as changed since the push.
pub(super) fn without_gone_columns(undo: &Undo, gone: &[AddedColumn]) -> Undo {
    let mut out = undo.clone();
    for g in gone {
        out.added_columns
            .retain(|a| !(a.table == g.table && a.column == g.column));
        for t in out.tables.iter_mut().filter(|t| t.table == g.table) {
            if let Some(i) = t.columns.iter().position(|c| c.name == g.column) {
                t.columns.remove(i);
                for row in &mut t.deleted_rows {
                    if i < row.len() {
                        row.remove(i);
                    }
                }
            }
            t.updates = crate::diff::without_columns(&t.updates, &[g.column.as_str()]);
        }
        for f in out.filled.iter_mut().filter(|f| f.table == g.table) {
            if let Some(i) = f.columns.iter().position(|c| c == &g.column) {
                f.columns.remove(i);
                for row in f.rows.values_mut() {
                    if i < row.len() {
                        row.remove(i);
                    }
                }
            }
            if let Some(i) = f.by_trigger.iter().position(|c| c == &g.column) {
                f.by_trigger.remove(i);
                for row in f.by_trigger_before.values_mut() {
                    if i < row.len() {
                        row.remove(i);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added() -> (AddedColumn, AddedColumnIdentity) {
        (
            AddedColumn {
                table: "jtbd_library".into(),
                column: "sp_id".into(),
                fill: None,
            },
            AddedColumnIdentity {
                table: "jtbd_library".into(),
                column: "sp_id".into(),
                table_oid: 500,
                attnum: 9,
                pg_type: "uuid".into(),
            },
        )
    }

    fn refused(j: Option<Judged>) -> String {
        match j {
            Some(Judged::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_added_column_is_judged_by_its_table_number_and_type() {
        let (a, id) = added();
        let same = Some(("sp_id".to_string(), "uuid".to_string()));
        assert_eq!(
            judged(&a, &id, Some(500), Some((9, "uuid".into())), same),
            None
        );
        // Dropped, nothing under the name: undone already.
        assert_eq!(judged(&a, &id, Some(500), None, None), Some(Judged::Gone));
        // Dropped and added again by the app: another number.
        let why = refused(judged(&a, &id, Some(500), Some((12, "uuid".into())), None));
        assert!(why.contains("public.jtbd_library.sp_id is not the column this push added (attnum 9, uuid then; attnum 12, uuid now)"), "{why}");
        // Renamed.
        let why = refused(judged(
            &a,
            &id,
            Some(500),
            None,
            Some(("sp".into(), "uuid".into())),
        ));
        assert!(
            why.contains("is now public.jtbd_library.sp — the app renamed it"),
            "{why}"
        );
        assert!(
            why.contains("ALTER TABLE public.jtbd_library RENAME COLUMN sp TO sp_id"),
            "{why}"
        );
        // Retyped in place.
        let why = refused(judged(
            &a,
            &id,
            Some(500),
            Some((9, "text".into())),
            Some(("sp_id".into(), "text".into())),
        ));
        assert!(
            why.contains("(added by this push as uuid) is now text"),
            "{why}"
        );
        // The table recreated.
        let why = refused(judged(&a, &id, Some(501), Some((9, "uuid".into())), None));
        assert!(why.contains("oid 500 then, 501 now"), "{why}");
    }
}
