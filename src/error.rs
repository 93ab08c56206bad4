//! Typed failures that decide the exit code.
//!
//! Exit codes: 0 success, 1 a check failed or a push was refused, 2 usage or
//! environment errors (bad URL, unreachable server, unreadable file, ...).
//! Every other error (an `anyhow` chain without a [`Failure`] inside) is an
//! environment error too.

use std::fmt;

/// Why a command did not succeed, as the exit code sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A rehearsal check failed, a push was refused, drift was found.
    CheckFailed,
    /// Bad usage, unreachable server, bad file: the user must fix the setup.
    Environment,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::CheckFailed => 1,
            Kind::Environment => 2,
        }
    }
}

/// An error that carries its exit-code kind through an `anyhow` chain.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A failed check or refused push (exit 1).
pub fn check_failed(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: Kind::CheckFailed,
        message: message.into(),
    })
}

/// A usage or environment problem (exit 2).
pub fn environment(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: Kind::Environment,
        message: message.into(),
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
