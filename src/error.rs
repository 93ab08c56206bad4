//! Typed failures that decide the exit code.
//!
//! Exit codes: 0 success, 1 a check failed or a push was refused, 2 usage or
//! environment errors (bad URL, unreachable server, unreadable file, ...).
//! Every other error (an `anyhow` chain without a [`Failure`] inside) is an
//! environment error too.
//!
//! A [`Failure`] keeps the checks behind it (a refused push's drift checks,
//! ...) typed all the way to the output layer, which prints them as text or
//! as `{"error": {"kind", "message", "checks"}}` with `--json`.

use std::fmt;

use serde::Serialize;

use crate::plan::checks::Check;

/// Why a command did not succeed, as the exit code sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A check failed (a rehearsal's, a receipt that does not allow undo).
    CheckFailed,
    /// Push or rollback refused to write: drift, locks held, checks failed
    /// on Postgres; nothing was written.
    Refused,
    /// Bad usage, unreachable server, bad file: the user must fix the setup.
    Environment,
    /// The command line itself is wrong (unknown flag, bad value).
    Usage,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::CheckFailed | Kind::Refused => 1,
            Kind::Environment | Kind::Usage => 2,
        }
    }
}

/// An error that carries its exit-code kind through an `anyhow` chain.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    /// The checks behind a refusal (all of them; the failed ones explain it).
    pub checks: Vec<Check>,
    /// A refusal because another session held a lock or row too long: says
    /// nothing about the push or its undo, only "retry" (see
    /// [`lock_refused`]).
    pub lock_wait: bool,
}

/// The message, then each failed check with up to five of its rows: what a
/// person reads on stderr.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for c in self.checks.iter().filter(|c| !c.ok) {
            write!(
                f,
                "\n  - {} {}: expected {}, found {}",
                c.phase, c.name, c.expected, c.actual
            )?;
            for r in c.rows.iter().take(5) {
                write!(f, "\n      {r}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// A failed check (exit 1).
pub fn check_failed(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: Kind::CheckFailed,
        message: message.into(),
        checks: Vec::new(),
        lock_wait: false,
    })
}

/// A refused push or rollback, with the checks behind it (exit 1).
pub fn refused(message: impl Into<String>, checks: Vec<Check>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: Kind::Refused,
        message: message.into(),
        checks,
        lock_wait: false,
    })
}

/// A push or rollback refused because another session held a lock or row
/// it needed for longer than it may wait (exit 1): the advice is to retry,
/// never to push anyway.
pub fn lock_refused(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: Kind::Refused,
        message: message.into(),
        checks: Vec::new(),
        lock_wait: true,
    })
}

/// Whether `err` is a wait for another session's lock or row that ran out:
/// a [`lock_refused`] refusal, or Postgres's `lock_not_available` (55P03)
/// anywhere in the chain.
pub fn is_lock_wait(err: &anyhow::Error) -> bool {
    failure_of(err).is_some_and(|f| f.lock_wait)
        || err.chain().any(|e| {
            e.downcast_ref::<tokio_postgres::Error>()
                .and_then(|pg| pg.as_db_error())
                .is_some_and(|d| d.code().code() == "55P03")
        })
}

/// `err` with `note` said after its cause: a refusal leads with why it
/// refused, and what else happened meanwhile (a sequence a trigger drew
/// from) follows it. An error that is not one [`Failure`] keeps its chain
/// and gets the note as context, in front.
pub fn with_note(err: anyhow::Error, note: &str) -> anyhow::Error {
    if err.chain().count() != 1 {
        return err.context(note.to_string());
    }
    match err.downcast::<Failure>() {
        Ok(mut f) => {
            f.message = format!("{}. {note}", f.message.trim_end_matches('.'));
            anyhow::Error::new(f)
        }
        Err(err) => err.context(note.to_string()),
    }
}

/// A usage or environment problem (exit 2).
pub fn environment(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: Kind::Environment,
        message: message.into(),
        checks: Vec::new(),
        lock_wait: false,
    })
}

/// The kind of the first [`Failure`] in the chain; anything else is an
/// environment error.
pub fn kind_of(err: &anyhow::Error) -> Kind {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map(|f| f.kind)
        .unwrap_or(Kind::Environment)
}

/// The first [`Failure`] in the chain, if any.
pub fn failure_of(err: &anyhow::Error) -> Option<&Failure> {
    err.chain().find_map(|e| e.downcast_ref::<Failure>())
}

/// An error as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct ErrorReport<'a> {
    pub kind: Kind,
    /// The whole chain (context first), without the checks' text.
    pub message: String,
    pub checks: &'a [Check],
}

impl<'a> ErrorReport<'a> {
    pub fn of(err: &'a anyhow::Error) -> ErrorReport<'a> {
        let message = err
            .chain()
            .map(|e| match e.downcast_ref::<Failure>() {
                Some(f) => f.message.clone(),
                None => e.to_string(),
            })
            .collect::<Vec<_>>()
            .join(": ");
        let failure = failure_of(err);
        ErrorReport {
            kind: kind_of(err),
            message,
            checks: failure.map(|f| f.checks.as_slice()).unwrap_or(&[]),
        }
    }
}
