//! Ctrl-C (SIGINT) and SIGTERM: before COMMIT the process ends at once,
//! saying what that left (push, rollback: nothing written, Postgres rolls
//! the open transaction back); after COMMIT is sent the command runs to its
//! end, so its receipt line is printed, and the signal is honoured then
//! (see `sandbox::interrupt`).

use std::io::Write;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// What an interrupt before COMMIT leaves, written by the handler (a
/// static text: the handler may only read atomics and call write(2)).
static NOTE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static NOTE_LEN: AtomicUsize = AtomicUsize::new(0);

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Handles SIGINT and SIGTERM for the rest of the run; `note` (may be
/// empty) is written to stderr when one ends the process before COMMIT.
pub fn install(note: &'static str) {
    NOTE_LEN.store(note.len(), Ordering::SeqCst);
    NOTE.store(note.as_ptr().cast_mut(), Ordering::SeqCst);
    for signal in SIGNALS {
        // SAFETY: a zeroed sigaction is valid; the handler only touches
        // atomics and calls async-signal-safe functions. SA_RESTART: a
        // signal deferred past COMMIT must not fail a read or write.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    if !sandbox::interrupt::may_end_now(signal) {
        return;
    }
    let note = NOTE.load(Ordering::SeqCst);
    let len = NOTE_LEN.load(Ordering::SeqCst);
    // SAFETY: write(2), signal(2) and raise(3) are async-signal-safe; the
    // note is a static string.
    unsafe {
        if !note.is_null() && len > 0 {
            libc::write(2, note.cast(), len);
        }
        end_by(signal);
    }
}

/// Ends the process by `signal`'s default action, so the caller (a shell,
/// a script) sees it was interrupted, as without a handler.
unsafe fn end_by(signal: libc::c_int) {
    libc::signal(signal, libc::SIG_DFL);
    libc::raise(signal);
}

/// Exits with `code`, or, when a signal arrived after COMMIT was sent, says
/// so and ends by that signal, now that everything has been printed.
pub fn exit(code: i32) -> ! {
    if let Some(signal) = sandbox::interrupt::deferred() {
        let _ = std::io::stdout().flush();
        eprintln!(
            "interrupted after COMMIT was sent: the command finished first, so what it printed \
             above is what happened"
        );
        // SAFETY: restoring the default action and raising it, as above.
        unsafe { end_by(signal) };
    }
    std::process::exit(code)
}
