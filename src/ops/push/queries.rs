//! The plan's queries on Postgres inside the push transaction: each
//! phase's expectations and the final verification queries and guards,
//! compared as rehearsed unless they read the app's tables.

use anyhow::Result;
use tokio_postgres::Transaction;

use crate::db::postgres::probe::probe_queries;
use crate::db::postgres::tx::simple_rows;
use crate::error::refused as refuse;
use crate::plan::checks::{evaluate, evaluate_guard, Check, CheckKind};
use crate::plan::Plan;

/// A plan query's answer on Postgres.
enum Answer {
    /// Its rows, to compare as rehearsed; `functions` are set-returning
    /// functions it scans whose reads its plan cannot show.
    Rows {
        rows: Vec<Vec<String>>,
        functions: Vec<String>,
    },
    /// It reads these tables of the app's (not locked, may have changed
    /// since the pull): its number cannot be compared with the pulled one.
    ReadsApp(Vec<String>),
}

/// Runs plan queries (`(name, sql)`) on Postgres, all pipelined. Which of
/// the app's tables (`app`) a query reads is Postgres's own answer, from
/// its plan (see [`probe_queries`]): a view is seen through, a CTE or a
/// comment is no table. A query Postgres refuses (a function only SQLite
/// has, a type mismatch) is a failed check of the plan, named by phase and
/// query (exit 1), not an environment error.
async fn plan_queries(
    tx: &Transaction<'_>,
    phase: &str,
    queries: &[(&str, &str)],
    app: &[String],
) -> Result<Vec<Answer>> {
    let sqls: Vec<&str> = queries.iter().map(|(_, sql)| *sql).collect();
    if app.is_empty() {
        // Nothing is the app's (`--strict`, or every table is the plan's):
        // every query runs as written, no plan needed.
        let rows = futures_util::future::join_all(sqls.iter().map(|q| simple_rows(tx, q))).await;
        return queries
            .iter()
            .zip(rows)
            .map(|((name, _), rows)| match rows {
                Ok(rows) => Ok(Answer::Rows {
                    rows,
                    functions: vec![],
                }),
                Err(e) => Err(cannot_run(phase, name, e)),
            })
            .collect();
    }
    // A query whose text names none of the app's tables is planned and run
    // at once (a view over them would still show in its plan, and its rows
    // are then not used); one that names them is only planned, so the
    // app's tables, which may be 100x the plan's, are not scanned for an
    // answer that is not compared. Only if its plan shows that it does not
    // read them after all (the name was a CTE, a comment, another schema)
    // does it run, in a second round trip.
    let names_app = |q: &str| {
        let q = q.to_lowercase();
        app.iter().any(|t| q.contains(&t.to_lowercase()))
    };
    let mut probed = probe_queries(tx, &sqls, |q| !names_app(q)).await;
    let again: Vec<usize> = probed
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.rows.is_none() && matches!(&p.reads, Ok(r) if r.public_tables_among(app).is_empty())
        })
        .map(|(i, _)| i)
        .collect();
    if !again.is_empty() {
        let rerun: Vec<&str> = again.iter().map(|&i| sqls[i]).collect();
        for (i, p) in again
            .into_iter()
            .zip(probe_queries(tx, &rerun, |_| true).await)
        {
            probed[i] = p;
        }
    }
    queries
        .iter()
        .zip(probed)
        .map(|((name, sql), p)| {
            let failed = |e: tokio_postgres::Error| {
                cannot_run(
                    phase,
                    name,
                    anyhow::Error::new(e).context(format!("Postgres cannot run: {sql}")),
                )
            };
            let reads = p.reads.map_err(failed)?;
            let read = reads.public_tables_among(app);
            if !read.is_empty() {
                // Its rows (or a runtime error on the app's rows) say
                // nothing about this transaction.
                return Ok(Answer::ReadsApp(
                    read.into_iter().map(str::to_string).collect(),
                ));
            }
            let Some(rows) = p.rows else {
                anyhow::bail!("plan query \"{name}\" was planned on Postgres but not run");
            };
            Ok(Answer::Rows {
                rows: rows.map_err(failed)?,
                functions: reads.functions.into_iter().collect(),
            })
        })
        .collect()
}

/// The error for a plan query Postgres cannot run: a failed check naming
/// phase and query (the transaction ends as a refusal), unless the
/// connection itself failed.
fn cannot_run(phase: &str, name: &str, e: anyhow::Error) -> anyhow::Error {
    let Some(db) = e
        .chain()
        .find_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .and_then(|p| p.as_db_error())
    else {
        return e;
    };
    // A terminated backend or a lost connection (SQLSTATE classes
    // 57, 08) says nothing about the plan's SQL: it stays an error.
    let class = &db.code().code()[..2];
    if class == "57" || class == "08" {
        return e;
    }
    // Planning a query locks what it names (ACCESS SHARE), which waits only
    // for a session holding or queued for ACCESS EXCLUSIVE there: not the
    // plan's SQL at fault, but which tables the query reads stays unknown.
    if db.code().code() == "55P03" {
        return refuse(
            format!(
                "phase {phase}: \"{name}\": another session holds a table this query reads (ALTER \
                 TABLE, VACUUM FULL, TRUNCATE or LOCK TABLE on it), so Postgres could not plan it \
                 within the lock timeout and which tables it reads is unknown. Rolled back, \
                 nothing was written; retry when that session is done"
            ),
            vec![],
        );
    }
    let mut c = Check::equal(
        phase,
        name,
        CheckKind::Expectation,
        "runs on Postgres as in the rehearsal".into(),
        format!(
            "Postgres cannot run it: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        ),
    );
    c.ok = false;
    refuse(
        format!(
            "phase {phase}: expectation \"{name}\": Postgres cannot run its SQL ({}); the plan \
             uses something the rehearsal's SQLite accepts and Postgres does not: write it so \
             both run it. Rolled back, nothing was written",
            db.message()
        ),
        vec![c],
    )
}

/// A plan query's check on Postgres: compared as rehearsed (by `judge`),
/// unless it reads the app's tables; then it holds when this transaction
/// wrote none of them (the write accounting proves that), and saying so is
/// the check.
fn answer_check(
    answer: Answer,
    reads_app: Check,
    judge: impl FnOnce(&[Vec<String>]) -> Check,
) -> Check {
    match answer {
        Answer::Rows { rows, functions } => {
            let mut c = judge(&rows);
            if !c.ok && !functions.is_empty() {
                c.actual = format!(
                    "{} (it scans {}: what a function reads is not in Postgres's plan; if it reads \
                     the app's tables, --strict or a query naming them)",
                    c.actual,
                    functions.join(", ")
                );
            }
            c
        }
        Answer::ReadsApp(read) => {
            let mut c = reads_app;
            c.actual = format!(
                "held in the rehearsal; on Postgres it reads {} (the app's: not locked, may have \
                 changed since the pull), so it is checked as \"unchanged by this transaction\" \
                 (see the write accounting; --strict runs it as written)",
                read.join(", ")
            );
            c.ok = true;
            c
        }
    }
}

/// A phase's expectations (`phase` = "final": the verification queries),
/// on Postgres, in one round trip.
pub(super) async fn expectation_checks(
    tx: &Transaction<'_>,
    phase: &str,
    kind: CheckKind,
    expectations: &[crate::plan::Expectation],
    app: &[String],
) -> Result<Vec<Check>> {
    let queries: Vec<(&str, &str)> = expectations
        .iter()
        .map(|e| (e.name.as_str(), e.sql.as_str()))
        .collect();
    let answers = plan_queries(tx, phase, &queries, app).await?;
    Ok(expectations
        .iter()
        .zip(answers)
        .map(|(exp, a)| {
            let reads_app =
                Check::equal(phase, &exp.name, kind, "as rehearsed".into(), String::new());
            answer_check(a, reads_app, |rows| evaluate(phase, kind, exp, rows))
        })
        .collect())
}

/// The plan's final verification queries and guards, on Postgres, in one
/// round trip; those reading the app's tables (`app`) are checked as
/// "unchanged by this transaction" (see [`answer_check`]).
pub(super) async fn final_checks(
    tx: &Transaction<'_>,
    plan: &Plan,
    app: &[String],
) -> Result<Vec<Check>> {
    let verification = &plan.file.verification;
    let guards = &plan.file.guards;
    let queries: Vec<(&str, &str)> = verification
        .iter()
        .map(|e| (e.name.as_str(), e.sql.as_str()))
        .chain(guards.iter().map(|g| (g.name.as_str(), g.sql.as_str())))
        .collect();
    let mut answers = plan_queries(tx, "final", &queries, app).await?.into_iter();
    let mut checks = Vec::with_capacity(queries.len());
    for (exp, a) in verification.iter().zip(answers.by_ref()) {
        let kind = CheckKind::Verification;
        let reads_app = Check::equal(
            "final",
            &exp.name,
            kind,
            "as rehearsed".into(),
            String::new(),
        );
        checks.push(answer_check(a, reads_app, |rows| {
            evaluate("final", kind, exp, rows)
        }));
    }
    for (g, a) in guards.iter().zip(answers) {
        let reads_app = Check::no_rows("final", &g.name, CheckKind::Guard, vec![]);
        checks.push(answer_check(a, reads_app, |rows| evaluate_guard(g, rows)));
    }
    Ok(checks)
}
