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

/// Replaces a snapshot that holds rehearsals (a plain pull refuses to).
pub fn pull(snapshot: &Path) -> String {
    format!(
        "sandbox pull --force --out {}",
        shell_word(&snapshot.display().to_string())
    )
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

/// Pushes the snapshot with the plan in force, for real.
pub fn push_confirm(snapshot: &Path, plan: &Plan) -> String {
    format!(
        "sandbox push --snapshot {}{} --confirm",
        shell_word(&snapshot.display().to_string()),
        plan_args(plan)
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
}
