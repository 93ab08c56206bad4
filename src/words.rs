//! Counted nouns for messages: "1 row", "2 rows". A refusal that says
//! "1 rows" reads like a slip, and makes the reader doubt the count too.

use std::fmt::Display;

/// `n` rows, in the singular for one.
pub fn rows(n: impl Display) -> String {
    counted(n, "row", "rows")
}

/// `n` followed by `one` or `many`, whichever fits.
pub fn counted(n: impl Display, one: &str, many: &str) -> String {
    let n = n.to_string();
    let noun = if n == "1" { one } else { many };
    format!("{n} {noun}")
}

/// `one` or `many`, whichever fits `n`, without the number: for the
/// words that agree with a counted noun ("exists" / "exist", "its" /
/// "their") and for a list named instead of counted ("table a", "tables
/// a, b").
pub fn agreeing<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// At most `max` of `names`, then "and N more": a list a person reads in
/// a message (receipt ids) stays a line however many there are.
pub fn listed(names: &[String], max: usize) -> String {
    if names.len() <= max {
        return names.join(", ");
    }
    format!("{} and {} more", names[..max].join(", "), names.len() - max)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_row_is_singular_and_every_other_count_plural() {
        assert_eq!(super::rows(1u64), "1 row");
        assert_eq!(super::rows(0usize), "0 rows");
        assert_eq!(super::rows(11i64), "11 rows");
        assert_eq!(super::rows(-1i64), "-1 rows");
        assert_eq!(super::counted(1, "key", "keys"), "1 key");
        assert_eq!(super::agreeing(1, "exists", "exist"), "exists");
        assert_eq!(super::agreeing(0, "exists", "exist"), "exist");
        assert_eq!(super::agreeing(2, "exists", "exist"), "exist");
    }

    #[test]
    fn a_long_list_names_six_and_counts_the_rest() {
        let ids: Vec<String> = (1..=9).map(|i| format!("r{i}")).collect();
        assert_eq!(super::listed(&ids[..6], 6), "r1, r2, r3, r4, r5, r6");
        assert_eq!(super::listed(&ids, 6), "r1, r2, r3, r4, r5, r6 and 3 more");
        assert_eq!(super::listed(&[], 6), "");
    }
}
