//! Reading back the checks of a snapshot's last rehearsal, for adopting
//! its numbers into the plan (see [`crate::plan::adopt`]).

use anyhow::Result;

use crate::db::sqlite::Snapshot;
use crate::error::check_failed;
use crate::plan::adopt::{adopt, Adoption};
use crate::plan::checks::{Check, CheckKind};
use crate::plan::Plan;

/// The last rehearsal's id and checks; it must have run exactly this plan
/// (policies included), so the numbers adopted are the plan's own.
pub fn last_checks(snapshot: &Snapshot, plan: &Plan) -> Result<(i64, Vec<Check>)> {
    let last: Option<(i64, String)> = snapshot
        .conn
        .query_row(
            "SELECT id, plan_hash FROM _sandbox_rehearsals ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            // A snapshot never rehearsed has no such table yet.
            rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("no such table") => Ok(None),
            e => Err(e),
        })?;
    let advice = crate::advice::rehearse(&snapshot.path, plan);
    let Some((id, hash)) = last else {
        return Err(check_failed(format!(
            "{} has no rehearsal to adopt numbers from: run `{advice}` first",
            snapshot.path.display()
        )));
    };
    if hash != plan.hash {
        return Err(check_failed(format!(
            "the last rehearsal (#{id}) ran plan {} but the plan in force is {} (other plan, seeds \
             or --policy): run `{advice}` first",
            &hash[..hash.len().min(12)],
            &plan.hash[..12]
        )));
    }
    let mut stmt = snapshot.conn.prepare(
        "SELECT phase, kind, check_name, expected, actual, ok, row_count \
         FROM _sandbox_checks WHERE rehearsal_id = ?1 ORDER BY seq",
    )?;
    let checks = stmt
        .query_map([id], |r| {
            let kind: String = r.get(1)?;
            Ok(Check {
                phase: r.get(0)?,
                kind: CheckKind::from_stored(&kind),
                name: r.get(2)?,
                expected: r.get(3)?,
                actual: r.get(4)?,
                ok: r.get::<_, i64>(5)? == 1,
                rows: Vec::new(),
                row_count: r.get::<_, i64>(6)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((id, checks))
}

/// The adoption of the snapshot's last rehearsal of `plan`.
pub fn from_snapshot(snapshot: &Snapshot, plan: &Plan) -> Result<(i64, Adoption)> {
    let (id, checks) = last_checks(snapshot, plan)?;
    Ok((id, adopt(&plan.file, &checks)))
}
