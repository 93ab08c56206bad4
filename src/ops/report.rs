//! A rehearsal read back from the snapshot, for reports made after the
//! fact (`sandbox report`): every check with the rows behind its failure,
//! the phases' timings, and what the rehearsal found that only Postgres
//! decides (triggers, computed defaults, checks).

use anyhow::{Context, Result};
use serde::Serialize;

use crate::db::sqlite::{table_exists, Snapshot};
use crate::db::staging::PreflightItem;
use crate::error::check_failed;
use crate::plan::checks::PhaseTiming;
use crate::plan::checks::{Check, CheckKind};

#[derive(Debug, Clone, Serialize)]
pub struct StoredRehearsal {
    pub id: i64,
    pub rehearsed_at: String,
    pub plan_name: String,
    pub plan_hash: String,
    pub passed: bool,
    pub millis: f64,
    pub checks: Vec<Check>,
    /// Empty for rehearsals recorded before timings were kept.
    pub phases: Vec<PhaseTiming>,
    pub preflight: Vec<PreflightItem>,
}

/// The snapshot's last rehearsal.
pub fn last(snapshot: &Snapshot) -> Result<StoredRehearsal> {
    let none = || {
        check_failed(format!(
            "{} holds no rehearsal to report: run `sandbox rehearse --snapshot {}` first",
            snapshot.path.display(),
            crate::advice::shell_word(&snapshot.path.display().to_string())
        ))
    };
    if !table_exists(&snapshot.conn, "main", "_sandbox_rehearsals")? {
        return Err(none());
    }
    let head = snapshot.conn.query_row(
        "SELECT id, rehearsed_at, plan_name, plan_hash, passed, millis FROM _sandbox_rehearsals \
         ORDER BY id DESC LIMIT 1",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, f64>(5)?,
            ))
        },
    );
    let (id, rehearsed_at, plan_name, plan_hash, passed, millis) = match head {
        Ok(h) => h,
        Err(rusqlite::Error::QueryReturnedNoRows) => return Err(none()),
        Err(e) => return Err(e.into()),
    };
    let (checks, phases, preflight) = body(snapshot, id).with_context(|| {
        format!(
            "{} holds rehearsal #{id} but its checks cannot be read (damaged or written by another \
             version): rehearse it again",
            snapshot.path.display()
        )
    })?;
    Ok(StoredRehearsal {
        id,
        rehearsed_at,
        plan_name,
        plan_hash,
        passed,
        millis,
        checks,
        phases,
        preflight,
    })
}

type Body = (Vec<Check>, Vec<PhaseTiming>, Vec<PreflightItem>);

/// Checks with their rows, timings and preflight items of rehearsal `id`.
fn body(snapshot: &Snapshot, id: i64) -> Result<Body> {
    let mut checks = {
        let mut stmt = snapshot.conn.prepare(
            "SELECT seq, phase, kind, check_name, expected, actual, ok, row_count \
             FROM _sandbox_checks WHERE rehearsal_id = ?1 ORDER BY seq",
        )?;
        let v = stmt
            .query_map([id], |r| {
                let kind: String = r.get(2)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    Check {
                        phase: r.get(1)?,
                        kind: CheckKind::from_stored(&kind),
                        name: r.get(3)?,
                        expected: r.get(4)?,
                        actual: r.get(5)?,
                        ok: r.get(6)?,
                        rows: Vec::new(),
                        row_count: r.get::<_, i64>(7)? as u64,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        v
    };
    {
        let mut stmt = snapshot.conn.prepare(
            "SELECT seq, row_text FROM _sandbox_check_rows WHERE rehearsal_id = ?1 ORDER BY seq, row_no",
        )?;
        let rows = stmt
            .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (seq, text) in rows {
            if let Some((_, c)) = checks.iter_mut().find(|(s, _)| *s == seq) {
                c.rows.push(text);
            }
        }
    }
    let phases = if table_exists(&snapshot.conn, "main", "_sandbox_phase_timings")? {
        let mut stmt = snapshot.conn.prepare(
            "SELECT phase, name, millis FROM _sandbox_phase_timings WHERE rehearsal_id = ?1 ORDER BY seq",
        )?;
        let v = stmt
            .query_map([id], |r| {
                Ok(PhaseTiming {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    millis: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        v
    } else {
        Vec::new()
    };
    let preflight = if table_exists(&snapshot.conn, "main", "_sandbox_preflight_items")? {
        let mut stmt = snapshot.conn.prepare(
            "SELECT table_name, kind, name, detail FROM _sandbox_preflight_items \
             WHERE rehearsal_id = ?1 ORDER BY seq",
        )?;
        let v = stmt
            .query_map([id], |r| {
                Ok(PreflightItem {
                    table: r.get(0)?,
                    kind: r.get(1)?,
                    name: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        v
    } else {
        Vec::new()
    };
    Ok((
        checks.into_iter().map(|(_, c)| c).collect(),
        phases,
        preflight,
    ))
}
