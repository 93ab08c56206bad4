//! Ctrl-C and COMMIT. Before COMMIT is sent an interrupt may end the
//! process at once: Postgres rolls the open transaction back, nothing is
//! written. Once COMMIT is sent it must not: the push (or rollback) may be
//! in the database, and the user would never learn its receipt id. So the
//! command finishes, records and prints first, and the interrupt is
//! honoured after (`main` installs the handler that reads this state).
//!
//! One atomic decides who wins, the handler or the COMMIT, so a signal
//! handled on another thread at that very moment cannot end the process
//! after COMMIT is sent.

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

const RUNNING: u8 = 0;
const COMMITTING: u8 = 1;
const ENDING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(RUNNING);
static DEFERRED: AtomicI32 = AtomicI32::new(0);

/// Called right before COMMIT is sent: from now on an interrupt waits for
/// the command's end. False when an interrupt is already ending the
/// process: do not send COMMIT (roll back, nothing was written).
pub fn enter_commit() -> bool {
    match STATE.compare_exchange(RUNNING, COMMITTING, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => true,
        Err(state) => state == COMMITTING,
    }
}

/// For the signal handler (async-signal-safe: atomics only). True when
/// the process may end now (no COMMIT sent); false when `signal` was
/// recorded to be honoured once the command has printed what it did.
pub fn may_end_now(signal: i32) -> bool {
    match STATE.compare_exchange(RUNNING, ENDING, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => true,
        Err(ENDING) => true,
        Err(_) => {
            DEFERRED.store(signal, Ordering::SeqCst);
            false
        }
    }
}

/// The signal that arrived after COMMIT was sent, if one did.
pub fn deferred() -> Option<i32> {
    match DEFERRED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The error when [`enter_commit`] says an interrupt came first.
pub fn interrupted_before_commit(what: &str) -> anyhow::Error {
    crate::error::environment(format!(
        "interrupted before COMMIT: {what}; Postgres rolled the transaction back"
    ))
}
