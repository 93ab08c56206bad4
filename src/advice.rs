//! The commands a refusal advises, spelled so they work as given: the
//! snapshot path, `--force` where the file holds rehearsals, and the plan
//! options that produced the plan in force.

use std::path::Path;

use crate::plan::Plan;

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Replaces a snapshot that holds rehearsals (a plain pull refuses to),
/// with the plan in force: a pull without the plan's options takes the
/// built-in plan's tables, which a custom plan's database may not have.
pub fn pull(snapshot: &Path, plan: &Plan) -> String {
    format!(
        "sandbox pull --force --out {}{}",
        shell_word(&snapshot.display().to_string()),
        plan_args(plan)
    )
}

/// Replaces a snapshot whose plan is not known here (the file cannot be
/// read far enough to say): the user is told to give the plan again.
pub fn pull_with_its_plan(snapshot: &Path) -> String {
    format!(
        "sandbox pull --force --out {} (with the --plan it was pulled with, if any)",
        shell_word(&snapshot.display().to_string())
    )
}

/// The options of a push or rollback that decide whether it may go ahead,
/// repeated in every command advised after it (advice that drops
/// `--allow-writes` is refused again for the same side effect) but the
/// rollback of a push ([`rollback_confirm`]).
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    pub allow_writes: Vec<String>,
    pub allow_external_effects: bool,
    pub strict: bool,
}

impl RunFlags {
    /// The flags as command-line words, each with a leading space.
    pub fn args(&self) -> String {
        let mut out = String::new();
        for table in &self.allow_writes {
            out.push_str(&format!(" --allow-writes {}", shell_word(table)));
        }
        if self.allow_external_effects {
            out.push_str(" --allow-external-effects");
        }
        if self.strict {
            out.push_str(" --strict");
        }
        out
    }
}

/// Rehearses the snapshot with the plan in force.
pub fn rehearse(snapshot: &Path, plan: &Plan) -> String {
    format!(
        "sandbox rehearse --snapshot {}{}",
        shell_word(&snapshot.display().to_string()),
        plan_args(plan)
    )
}

/// The preflight of the snapshot with the plan in force (nothing written).
pub fn preflight(snapshot: &Path, plan: &Plan) -> String {
    format!(
        "sandbox push --snapshot {}{}",
        shell_word(&snapshot.display().to_string()),
        plan_args(plan)
    )
}

/// Pushes the snapshot with the plan in force, for real, with the flags
/// the run that advises it was given.
pub fn push_confirm(snapshot: &Path, plan: &Plan, flags: &RunFlags) -> String {
    format!(
        "sandbox push --snapshot {}{}{} --confirm",
        shell_word(&snapshot.display().to_string()),
        plan_args(plan),
        flags.args()
    )
}

/// Undoes a receipt, recording it in the snapshot the push recorded it in
/// (without `--snapshot`, rollback records it in ./sandbox.sqlite, and the
/// snapshot keeps saying "applied").
///
/// Only `--strict` of the push's flags is repeated: a consent given to the
/// push (`--allow-writes`, `--allow-external-effects`) is no consent to the
/// undo, which inherits the push's allowance for inserts alone and must be
/// given its own, seeing what it would delete (its refusal says how); a
/// copied command must not give it unasked.
/// `consent` are the tables the push's rehearsal of its undo found the
/// rollback needs its own `--allow-writes` for (listed just before, with
/// what the undo writes there): the advice carries them, so that the
/// command given is one the rollback does not refuse.
pub fn rollback_confirm(
    receipt: &str,
    snapshot: &Path,
    flags: &RunFlags,
    consent: &[String],
) -> String {
    let mut allow_writes: Vec<String> = Vec::new();
    for t in consent {
        if !allow_writes.contains(t) {
            allow_writes.push(t.clone());
        }
    }
    let flags = RunFlags {
        strict: flags.strict,
        allow_writes,
        ..RunFlags::default()
    };
    format!(
        "sandbox rollback --receipt {} --snapshot {}{} --confirm",
        shell_word(receipt),
        shell_word(&snapshot.display().to_string()),
        flags.args()
    )
}

/// The options that load this plan again (empty for the built-in one).
pub fn plan_args(plan: &Plan) -> String {
    plan.args
        .iter()
        .map(|a| format!(" {}", shell_word(a)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_spaces_or_quotes_are_quoted_for_the_shell() {
        assert_eq!(shell_word("a/b.sqlite"), "a/b.sqlite");
        assert_eq!(shell_word("my snap.sqlite"), "'my snap.sqlite'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn run_flags_repeat_what_the_run_was_given() {
        let flags = RunFlags {
            allow_writes: vec!["app.audit_log".into(), "my log".into()],
            allow_external_effects: true,
            strict: true,
        };
        assert_eq!(
            flags.args(),
            " --allow-writes app.audit_log --allow-writes 'my log' --allow-external-effects --strict"
        );
        // The undo gets no consent the push was given (V1).
        assert_eq!(
            rollback_confirm("r1", Path::new("b.sqlite"), &flags, &[]),
            "sandbox rollback --receipt r1 --snapshot b.sqlite --strict --confirm"
        );
        // Only the consent the rehearsed undo found it needs, once each.
        assert_eq!(
            rollback_confirm(
                "r1",
                Path::new("b.sqlite"),
                &flags,
                &["public.audit_log".into(), "public.audit_log".into()]
            ),
            "sandbox rollback --receipt r1 --snapshot b.sqlite --allow-writes public.audit_log \
             --strict --confirm"
        );
        assert_eq!(RunFlags::default().args(), "");
    }
}
