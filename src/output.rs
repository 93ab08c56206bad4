//! The one place that decides how results look: tables that fit the
//! terminal, colour for ok/FAILED, JSON, and progress bars (indicatif, on
//! stderr, only when it is a terminal).
//!
//! Colour: `--color auto` (the default) colours only when stdout is a
//! terminal and `NO_COLOR` is unset or empty; `always` and `never` force it.
//! Width: the terminal's width when stdout is a terminal, 100 columns
//! otherwise (pipes, files, CI logs).

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sandbox::db::postgres::sequences::SequenceDrawn;

/// Width used when stdout is not a terminal.
pub const PIPE_WIDTH: usize = 100;

/// Narrowest width a table is fitted to, so a tiny terminal still gets
/// readable (if truncated) cells.
const MIN_WIDTH: usize = 40;

/// Values longer than this are summarised in a table cell and shown in full
/// in the detail section below it.
pub const LONG_VALUE: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

static COLOR: OnceLock<bool> = OnceLock::new();

/// Decides once, from the flag, `NO_COLOR` and whether stdout is a terminal.
pub fn init_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    let _ = COLOR.set(on);
}

fn color_on() -> bool {
    *COLOR.get().unwrap_or(&false)
}

/// The width tables are fitted to.
pub fn width() -> usize {
    let out = std::io::stdout();
    if out.is_terminal() {
        if let Some((_, cols)) = console::Term::stdout().size_checked() {
            return (cols as usize).max(MIN_WIDTH);
        }
    }
    PIPE_WIDTH
}

/// The plain status word of a table cell (the table colours it).
pub fn word(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAILED"
    }
}

/// `ok`/`PASSED` in green, `FAILED` in bold red (when colour is on); the
/// text itself never changes, so pipes and tests see the same words.
fn paint_status(cell: &str) -> String {
    if !color_on() {
        return cell.to_string();
    }
    match cell.trim_end() {
        "ok" | "PASSED" => format!("\x1b[32m{cell}\x1b[0m"),
        "FAILED" => format!("\x1b[1;31m{cell}\x1b[0m"),
        _ => cell.to_string(),
    }
}

/// A verdict word at the start of a line (`PASSED:`/`FAILED:`), coloured.
pub fn verdict(passed: bool) -> String {
    paint_status(if passed { "PASSED" } else { "FAILED" })
}

fn display_width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// `s` with every control character but newline and tab shown as an
/// escape (`\x1b`, `\r`): values come from the user's rows, and an ESC or CR
/// in one must not erase or recolour the report around it on a terminal
/// (a row could otherwise print a green "PASSED" over its own failure).
pub fn visible(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `s` to at most `w` display columns, ending in `…` when cut; its
/// control characters shown as escapes ([`visible`]).
pub fn truncate(s: &str, w: usize) -> String {
    cut_to(&visible(s), w)
}

/// Cuts `s`, already [`visible`], to at most `w` display columns, ending
/// in `…` when cut.
fn cut_to(s: &str, w: usize) -> String {
    if display_width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let cw = console::measure_text_width(ch.encode_utf8(&mut [0; 4]));
        if used + cw > w - 1 {
            break;
        }
        out.push(ch);
        used += cw;
    }
    out.push('…');
    out
}

/// `text` as one line: every run of whitespace (the newlines and
/// indentation of a generated expression) becomes one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `lead` then `text`, wrapped at spaces to `w` columns, continuation lines
/// indented by `indent` spaces so they line up under a label. A word wider
/// than the line (a path, a key) is kept whole rather than cut: it must
/// stay copyable.
pub fn wrap_to(lead: &str, text: &str, indent: usize, w: usize) -> String {
    lay_out(lead, &visible(text), indent, w, false)
}

/// [`wrap_to`] the output width.
pub fn wrap(lead: &str, text: &str, indent: usize) -> String {
    wrap_to(lead, text, indent, width())
}

/// Like [`wrap`], for text that must be read whole and never pass the
/// width (a failed check's row, whose explanation and fix are at its end):
/// whitespace runs become one space, and a word wider than the line
/// continues on the next line instead of overflowing it.
pub fn wrap_within(lead: &str, text: &str, indent: usize) -> String {
    wrap_within_to(lead, text, indent, width())
}

/// [`wrap_within`] to `w` columns.
pub fn wrap_within_to(lead: &str, text: &str, indent: usize, w: usize) -> String {
    lay_out(lead, &one_line(&visible(text)), indent, w, true)
}

/// Like [`wrap_within`], but at most `max_lines` lines: an item of a list
/// that can run long (a generated CASE expression) is shown far enough to
/// be recognised, its last kept line ending in `…`. Returns the text and
/// whether it was cut, so the caller can say once where the whole is.
pub fn wrap_within_lines(
    lead: &str,
    text: &str,
    indent: usize,
    max_lines: usize,
) -> (String, bool) {
    wrap_within_lines_to(lead, text, indent, max_lines, width())
}

/// [`wrap_within_lines`] to `w` columns.
pub fn wrap_within_lines_to(
    lead: &str,
    text: &str,
    indent: usize,
    max_lines: usize,
    w: usize,
) -> (String, bool) {
    let all = wrap_within_to(lead, text, indent, w);
    let lines: Vec<&str> = all.lines().collect();
    if lines.len() <= max_lines || max_lines == 0 {
        return (all, false);
    }
    let mut kept: Vec<String> = lines[..max_lines].iter().map(|l| l.to_string()).collect();
    if let Some(last) = kept.last_mut() {
        *last = format!(
            "{}…",
            cut_to(last, w.saturating_sub(1)).trim_end_matches('…')
        );
    }
    (kept.join("\n"), true)
}

/// The words of `text` (already [`visible`]) after `lead`, greedily filled
/// into lines of `w` columns; `split_long` breaks a word wider than the
/// room left on a fresh line, character by character.
fn lay_out(lead: &str, text: &str, indent: usize, w: usize, split_long: bool) -> String {
    let mut out = lead.to_string();
    let mut line_width = display_width(lead);
    let mut first = true;
    for word in text.split(' ').filter(|p| !p.is_empty()) {
        let ww = display_width(word);
        if !first && line_width + 1 + ww > w {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line_width = indent;
        } else if !first {
            out.push(' ');
            line_width += 1;
        }
        first = false;
        if !split_long || line_width + ww <= w {
            out.push_str(word);
            line_width += ww;
            continue;
        }
        for ch in word.chars() {
            let cw = console::measure_text_width(ch.encode_utf8(&mut [0; 4]));
            // `> indent`: a line holds at least one character, so a width
            // narrower than the indent still ends.
            if line_width + cw > w && line_width > indent {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                line_width = indent;
            }
            out.push(ch);
            line_width += cw;
        }
    }
    out
}

/// Column widths that fit `total` columns of output: the widest column
/// gives way first, and no column shrinks below its header (or 6).
/// Columns listed in `keep` never shrink (ids a person copies).
pub fn fit_widths(natural: &[usize], header: &[usize], keep: &[usize], total: usize) -> Vec<usize> {
    let mut w = natural.to_vec();
    let border = 3 * w.len() + 1;
    let floor: Vec<usize> = natural
        .iter()
        .zip(header)
        .enumerate()
        .map(|(i, (n, h))| {
            if keep.contains(&i) {
                *n
            } else {
                (*n).min((*h).max(6))
            }
        })
        .collect();
    while w.iter().sum::<usize>() + border > total {
        let widest = (0..w.len())
            .filter(|&i| w[i] > floor[i])
            .max_by_key(|&i| (w[i], std::cmp::Reverse(i)));
        match widest {
            Some(i) => w[i] -= 1,
            None => break,
        }
    }
    w
}

/// Renders rows as a boxed table with a header, fitted to [`width`]. Cells
/// reading exactly `ok` or `FAILED` are coloured when colour is on.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    table_fitted(header, rows, &[], width())
}

/// A table whose `keep` columns are never cut, whatever the width.
pub fn table_keeping(header: &[&str], rows: Vec<Vec<String>>, keep: &[usize]) -> String {
    table_fitted(header, rows, keep, width())
}

pub fn table_fitted(
    header: &[&str],
    rows: Vec<Vec<String>>,
    keep: &[usize],
    total: usize,
) -> String {
    let n = header.len();
    // Every cell is made one visible line here, once (the header below);
    // `line` only cuts it to its column.
    let one_line = |s: &str| visible(&s.replace(['\n', '\r', '\t'], " "));
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            (0..n)
                .map(|i| one_line(r.get(i).map(String::as_str).unwrap_or("")))
                .collect()
        })
        .collect();
    let head_w: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    let natural: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| display_width(&r[i]))
                .chain([head_w[i]])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let w = fit_widths(&natural, &head_w, keep, total);
    let rule = |l: &str, m: &str, r: &str| {
        let mut s = String::from(l);
        for (i, wi) in w.iter().enumerate() {
            s.push_str(&"─".repeat(wi + 2));
            s.push_str(if i + 1 == n { r } else { m });
        }
        s.push('\n');
        s
    };
    let line = |cells: &[String]| {
        let mut s = String::from("│");
        for (i, c) in cells.iter().enumerate() {
            let cut = cut_to(c, w[i]);
            let pad = w[i] - display_width(&cut);
            s.push(' ');
            s.push_str(&paint_status(&cut));
            s.push_str(&" ".repeat(pad + 1));
            s.push('│');
        }
        s.push('\n');
        s
    };
    let mut out = rule("┌", "┬", "┐");
    let head: Vec<String> = header.iter().map(|h| visible(h)).collect();
    out.push_str(&line(&head));
    out.push_str(&rule("├", "┼", "┤"));
    for r in &rows {
        out.push_str(&line(r));
    }
    out.push_str(&rule("└", "┴", "┘"));
    out.pop();
    out
}

/// A long `k=v, k=v` value as pairs, or `None` when it has another shape.
pub fn pairs(value: &str) -> Option<Vec<(String, String)>> {
    if value.is_empty() {
        return None;
    }
    value
        .split(", ")
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The table cells for an expected/actual pair: short values as they are;
/// long ones summarised (`8 values`, `8 values, 2 differ`) and marked for
/// the detail section.
pub fn summarise(expected: &str, actual: &str, note: usize) -> (String, String, bool) {
    if display_width(expected) <= LONG_VALUE && display_width(actual) <= LONG_VALUE {
        return (expected.to_string(), actual.to_string(), false);
    }
    match (pairs(expected), pairs(actual)) {
        (Some(e), Some(a)) => {
            let differ = differing(&e, &a);
            (
                format!("{} values [{note}]", e.len()),
                if differ == 0 {
                    format!("{} values, same", a.len())
                } else {
                    format!("{} values, {differ} differ", a.len())
                },
                true,
            )
        }
        _ => (format!("see [{note}]"), format!("see [{note}]"), true),
    }
}

fn differing(e: &[(String, String)], a: &[(String, String)]) -> usize {
    let keys: std::collections::BTreeSet<&str> =
        e.iter().chain(a.iter()).map(|(k, _)| k.as_str()).collect();
    keys.into_iter()
        .filter(|k| lookup(e, k) != lookup(a, k))
        .count()
}

fn lookup<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(pk, _)| pk == k)
        .map(|(_, v)| v.as_str())
}

/// The full form of a summarised value: a key | expected | actual table for
/// `k=v` lists, the two values on their own lines otherwise.
pub fn detail(note: usize, title: &str, expected: &str, actual: &str) -> String {
    let (title, expected, actual) = (&visible(title), &visible(expected), &visible(actual));
    let mut out = format!("[{note}] {title}\n");
    if actual.is_empty() {
        // A plan's expectation: nothing ran, there is only the expected side.
        match pairs(expected) {
            Some(e) => out.push_str(&table(
                &["value", "expected"],
                e.into_iter().map(|(k, v)| vec![k, v]).collect(),
            )),
            None => out.push_str(&format!("  expected: {expected}")),
        }
        return out;
    }
    match (pairs(expected), pairs(actual)) {
        (Some(e), Some(a)) => {
            let mut keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
            for (k, _) in &a {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
            let rows = keys
                .into_iter()
                .map(|k| {
                    let (ev, av) = (lookup(&e, k), lookup(&a, k));
                    vec![
                        k.to_string(),
                        ev.unwrap_or("-").to_string(),
                        av.unwrap_or("-").to_string(),
                        word(ev == av).to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(&["value", "expected", "actual", "ok"], rows));
        }
        _ => {
            out.push_str(&format!("  expected: {expected}\n  actual:   {actual}"));
        }
    }
    out
}

/// Checks as a table that leads with ok/FAILED, long values summarised,
/// followed by the detail section the summaries point to.
/// The check's kind (conflict, expectation, guard, ...) stays out of the
/// table so the check's name gets the room; `--json` carries it.
pub fn checks(checks: &[&sandbox::plan::checks::Check], step: &str) -> String {
    let mut details = Vec::new();
    let rows = checks
        .iter()
        .map(|c| {
            let (expected, actual, long) = summarise(&c.expected, &c.actual, details.len() + 1);
            if long {
                details.push(detail(
                    details.len() + 1,
                    &format!("{} — {}", c.phase, c.name),
                    &c.expected,
                    &c.actual,
                ));
            }
            vec![
                word(c.ok).to_string(),
                c.phase.clone(),
                c.name.clone(),
                expected,
                actual,
            ]
        })
        .collect();
    let mut out = table(&["result", step, "check", "expected", "actual"], rows);
    for d in details {
        out.push_str("\n\n");
        out.push_str(&d);
    }
    out
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Whether to draw progress: a terminal on stderr and not `--json`.
pub fn progress_enabled(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

pub fn new_bar(enabled: bool, len: u64, label: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len.max(1)), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{bar:30}] {pos:>9} rows  {per_sec:>12}  {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

pub use sandbox::types::short_hash as short;

/// Human-friendly duration.
pub fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// The sequences a dry run advanced, each with its draws (`public.t_id_seq by 2 (last value 5 → 7)`),
/// or None when none moved: a dry run rolls back every row but not them.
pub fn sequences_drawn(drawn: &[SequenceDrawn]) -> Option<String> {
    (!drawn.is_empty()).then(|| {
        drawn
            .iter()
            .map(SequenceDrawn::describe)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_values_are_shown_escaped() {
        let forged = "<x\r\x1b[2K\x1b[32mPASSED\x1b[0m\u{7}";
        assert_eq!(visible(forged), "<x\\r\\x1b[2K\\x1b[32mPASSED\\x1b[0m\\x07");
        assert_eq!(visible("two\nlines\tand é"), "two\nlines\tand é");
        let t = table(&["value"], vec![vec![forged.to_string()]]);
        assert!(!t.contains('\x1b') && !t.contains('\r'), "{t:?}");
        assert!(!truncate(forged, 80).contains('\x1b'));
    }

    #[test]
    fn prose_wraps_under_its_label_and_keeps_long_words_whole() {
        let text = "protected prompts, jtbd_library, workflows; sources dh_domain, dh_use_case";
        let w = wrap_to("Pulls    ", text, 9, 40);
        let lines: Vec<&str> = w.lines().collect();
        assert!(lines.len() > 1, "{w}");
        for l in &lines {
            assert!(display_width(l) <= 40, "{l}");
        }
        assert!(lines[0].starts_with("Pulls    protected"), "{w}");
        assert!(lines[1].starts_with("         ") && !lines[1].starts_with("          "));
        assert_eq!(
            lines
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            format!("Pulls {text}")
        );
        let path = "/a/very/long/path/that/is/wider/than/the/line/itself.sqlite";
        assert!(
            wrap_to("Open ", path, 0, 20).contains(path),
            "a path stays whole"
        );
    }

    #[test]
    fn rows_wrap_whole_within_the_width_even_past_a_long_word() {
        let key = "k".repeat(50);
        let text = format!("a row naming {key} whose\nadvice is at the end: rename it");
        let w = wrap_within_to("  ", &text, 4, 30);
        let lines: Vec<&str> = w.lines().collect();
        assert!(lines.len() > 2, "{w}");
        for l in &lines {
            assert!(display_width(l) <= 30, "{l}");
        }
        assert!(lines[1..].iter().all(|l| l.starts_with("    ")), "{w}");
        // Nothing is lost: the long word is split at line ends only.
        assert!(w.replace("\n    ", "").contains(&key), "{w}");
        assert!(
            one_line(&w).ends_with("advice is at the end: rename it"),
            "{w}"
        );
    }

    #[test]
    fn list_items_wrap_whole_up_to_their_line_budget_then_say_they_were_cut() {
        let check =
            "CHECK ((status = ANY (ARRAY['draft'::text, 'active'::text, 'archived'::text])))";
        let (short, cut) = wrap_within_lines_to("  ", check, 4, 3, 40);
        assert!(!cut, "{short}");
        assert!(
            short.contains("'archived'::text"),
            "the whole CHECK is shown: {short}"
        );
        assert!(short.lines().count() > 1 && short.lines().all(|l| display_width(l) <= 40));
        let long = format!("generated ( CASE {} END)", "WHEN x THEN y ".repeat(30));
        let (item, cut) = wrap_within_lines_to("  ", &long, 4, 3, 40);
        let lines: Vec<&str> = item.lines().collect();
        assert!(cut);
        assert_eq!(lines.len(), 3, "{item}");
        assert!(lines.iter().all(|l| display_width(l) <= 40), "{item}");
        assert!(
            lines[2].ends_with('…') && lines[1].starts_with("    "),
            "{item}"
        );
    }

    #[test]
    fn tables_fit_the_width_they_are_given() {
        let rows = vec![vec![
            "1".to_string(),
            "a check with a rather long name that goes on".to_string(),
            "x".repeat(200),
            "ok".to_string(),
        ]];
        for total in [40, 60, 100, 160] {
            let t = table_fitted(
                &["phase", "check", "expected", "ok"],
                rows.clone(),
                &[],
                total,
            );
            for line in t.lines() {
                assert!(display_width(line) <= total, "{total}: {line}");
            }
            assert!(t.contains("│ ok "), "the status column survives: {t}");
        }
    }

    #[test]
    fn long_pair_lists_are_summarised_with_the_differences_counted() {
        let (e, a, long) = summarise(
            "SP01=17, SP02=19, SP03=18, SP04=14",
            "SP01=17, SP02=16, SP03=15, SP04=14",
            1,
        );
        assert!(long);
        assert_eq!(e, "4 values [1]");
        assert_eq!(a, "4 values, 2 differ");
        let (e, a, long) = summarise("7", "8", 2);
        assert_eq!((e.as_str(), a.as_str(), long), ("7", "8", false));
    }
}
