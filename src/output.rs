//! The one place that decides how results look: tables (tabled), JSON, and
//! progress bars (indicatif, on stderr, only when it is a terminal).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tabled::settings::Style;
use tabled::{builder::Builder, Table};

/// Renders rows as a table with a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut b = Builder::default();
    b.push_record(header.iter().map(|s| s.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t: Table = b.build();
    t.with(Style::sharp());
    t.to_string()
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Whether to draw progress: a terminal on stderr and no NO_COLOR/CI quietness.
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

pub fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// Human-friendly duration.
pub fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}
