//! The rehearsal as one self-contained HTML page: inline CSS and SVG, no
//! script, nothing fetched from the network, so it opens the same from a
//! file, a mail attachment or a ticket.

use std::fmt::Write;

use sandbox::db::sqlite::Snapshot;
use sandbox::ops::report::StoredRehearsal;
use sandbox::plan::checks::Check;
use sandbox::plan::Plan;

use crate::output::pairs;

/// What push would do per table, or why it would not run.
pub type PushView = Result<Vec<sandbox::diff::DiffSummary>, String>;

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
:root { --ok: #15803d; --bad: #b91c1c; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #111827;
       margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 700; }
tr.failed td { background: #fef2f2; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; color: white; font-weight: 700; }
.badge.ok { background: var(--ok); color: white; }
.badge.bad { background: var(--bad); color: white; }
.meta td:first-child { color: var(--muted); width: 160px; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f9fafb; border: 1px solid var(--line); padding: 8px; overflow-x: auto; max-height: 420px; }
.muted { color: var(--muted); }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }
svg text { font: 12px system-ui, sans-serif; }
";

fn status(ok: bool) -> &'static str {
    if ok {
        "<span class=\"ok\">ok</span>"
    } else {
        "<span class=\"bad\">FAILED</span>"
    }
}

/// The whole page.
pub fn render(plan: &Plan, snapshot: &Snapshot, r: &StoredRehearsal, push: &PushView) -> String {
    let mut h = String::new();
    let failed: Vec<&Check> = r.checks.iter().filter(|c| !c.ok).collect();
    let _ = write!(
        h,
        "<!DOCTYPE html><!-- {} -->\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>sandbox rehearsal #{} — {}</title><style>{CSS}</style></head><body>\n",
        sandbox::plan::folder::GENERATED_MARK,
        r.id,
        esc(&r.plan_name)
    );
    let _ = write!(
        h,
        "<h1>Rehearsal #{} of {} <span class=\"badge {}\" id=\"verdict\">{}</span></h1>\n\
         <p class=\"muted\">{} of {} checks failed · {:.0} ms · rehearsed {}</p>\n",
        r.id,
        esc(&r.plan_name),
        if r.passed { "ok" } else { "bad" },
        if r.passed { "PASSED" } else { "FAILED" },
        failed.len(),
        r.checks.len(),
        r.millis,
        esc(&r.rehearsed_at)
    );
    header(&mut h, plan, snapshot, r);
    if !failed.is_empty() {
        h.push_str("<h2>Failures</h2>\n<ul>\n");
        for (i, c) in failed.iter().enumerate() {
            let _ = writeln!(
                h,
                "<li><a href=\"#failure-{i}\">{} — {}</a>: expected {}, found {}</li>",
                esc(&c.phase),
                esc(&c.name),
                esc(&c.expected),
                esc(&c.actual)
            );
        }
        h.push_str("</ul>\n");
    }
    charts(&mut h, r);
    phases(&mut h, plan, r);
    failures(&mut h, &failed);
    push_section(&mut h, push);
    found(&mut h, r);
    h.push_str(
        "<p class=\"muted\">Written by sandbox from the snapshot file; the views report_checks and \
         report_failures in the snapshot hold the same data.</p>\n</body></html>\n",
    );
    h
}

fn header(h: &mut String, plan: &Plan, snapshot: &Snapshot, r: &StoredRehearsal) {
    let rows: Vec<(&str, String)> = vec![
        (
            "Plan",
            format!(
                "{} <span class=\"muted\">({})</span>",
                esc(&plan.file.name),
                esc(&plan.origin)
            ),
        ),
        (
            "Plan hash",
            format!("<code id=\"plan-hash\">{}</code>", esc(&r.plan_hash)),
        ),
        (
            "Policies",
            esc(&plan
                .file
                .policies
                .iter()
                .map(|(k, p)| format!("{k} = {}", p.value))
                .collect::<Vec<_>>()
                .join(", ")),
        ),
        (
            "Snapshot",
            format!("<code>{}</code>", esc(&snapshot.path.display().to_string())),
        ),
        (
            "Snapshot checksum",
            format!("<code>{}</code>", esc(&snapshot.info.snapshot_checksum)),
        ),
        ("Pulled from", esc(&snapshot.info.source_url)),
        ("Pulled at", esc(&snapshot.info.pulled_at)),
        (
            "Pulled tables",
            esc(&snapshot
                .tables
                .iter()
                .map(|t| format!("{} ({})", t.meta.name, t.rows))
                .collect::<Vec<_>>()
                .join(", ")),
        ),
    ];
    h.push_str("<table class=\"meta\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><td>{k}</td><td>{v}</td></tr>");
    }
    h.push_str("</table>\n");
    if plan.hash != r.plan_hash {
        let _ = writeln!(
            h,
            "<p class=\"bad\">The plan in force ({}) is not the plan this rehearsal ran: push would refuse.</p>",
            esc(&plan.hash)
        );
    }
}

/// Numbers per key from a `k=v, k=v` value, when every value is a number.
fn numeric_pairs(value: &str) -> Option<Vec<(String, f64)>> {
    pairs(value)?
        .into_iter()
        .map(|(k, v)| v.parse::<f64>().ok().map(|n| (k, n)))
        .collect()
}

/// One bar chart, expected against actual, per check whose values are
/// lists of numbers (JTBDs per strategic priority, workflows by source,
/// row counts per table).
fn charts(h: &mut String, r: &StoredRehearsal) {
    type Numbers = Vec<(String, f64)>;
    let charted: Vec<(&Check, Numbers, Numbers)> = r
        .checks
        .iter()
        .filter_map(|c| Some((c, numeric_pairs(&c.expected)?, numeric_pairs(&c.actual)?)))
        .collect();
    if charted.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Expected against actual</h2>\n<p class=\"legend\"><span style=\"background:#9ca3af\"></span>expected\
         <span style=\"background:#2563eb\"></span>actual<span style=\"background:#b91c1c\"></span>actual, differs</p>\n",
    );
    for (i, (c, e, a)) in charted.iter().enumerate() {
        let mut keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        for (k, _) in a {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        let get = |v: &[(String, f64)], k: &str| v.iter().find(|(x, _)| x == k).map(|(_, n)| *n);
        let max = e
            .iter()
            .chain(a.iter())
            .map(|(_, n)| *n)
            .fold(1.0_f64, f64::max);
        let (label_w, bar_w, row_h) = (210.0, 640.0, 34.0);
        let height = keys.len() as f64 * row_h + 8.0;
        let _ = write!(
            h,
            "<h3>{} — {} {}</h3>\n<svg id=\"chart-{i}\" role=\"img\" width=\"{}\" height=\"{height}\" \
             viewBox=\"0 0 {} {height}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
            esc(&c.phase),
            esc(&c.name),
            status(c.ok),
            label_w + bar_w + 70.0,
            label_w + bar_w + 70.0
        );
        for (j, k) in keys.iter().enumerate() {
            let y = j as f64 * row_h + 4.0;
            let ev = get(e, k);
            let av = get(a, k);
            let differs = ev != av;
            let _ = writeln!(
                h,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                label_w - 8.0,
                y + 18.0,
                esc(k)
            );
            for (n, (v, colour, dy)) in [
                (ev, "#9ca3af", 0.0),
                (av, if differs { "#b91c1c" } else { "#2563eb" }, 14.0),
            ]
            .into_iter()
            .enumerate()
            {
                let what = if n == 0 { "expected" } else { "actual" };
                let Some(v) = v else {
                    let _ = writeln!(
                        h,
                        "<text x=\"{label_w}\" y=\"{}\" fill=\"#6b7280\">no {what} value</text>",
                        y + dy + 11.0
                    );
                    continue;
                };
                let w = (v / max * bar_w).max(1.0);
                let _ = writeln!(
                    h,
                    "<rect x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"12\" fill=\"{colour}\"><title>{} {what}: {}</title></rect>\
                     <text x=\"{:.1}\" y=\"{}\">{}</text>",
                    y + dy,
                    esc(k),
                    fmt_num(v),
                    label_w + w + 6.0,
                    y + dy + 11.0,
                    fmt_num(v)
                );
            }
        }
        h.push_str("</svg>\n");
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn check_rows(h: &mut String, checks: &[&Check]) {
    h.push_str(
        "<table><tr><th>result</th><th>kind</th><th>check</th><th>expected</th><th>actual</th></tr>\n",
    );
    for c in checks {
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if c.ok { "" } else { " class=\"failed\"" },
            status(c.ok),
            esc(c.kind.as_str()),
            esc(&c.name),
            esc(&c.expected),
            esc(&c.actual)
        );
    }
    h.push_str("</table>\n");
}

fn phases(h: &mut String, plan: &Plan, r: &StoredRehearsal) {
    h.push_str("<h2>Phases</h2>\n");
    let integrity: Vec<&Check> = r.checks.iter().filter(|c| c.phase == "snapshot").collect();
    if !integrity.is_empty() {
        let bad = integrity.iter().filter(|c| !c.ok).count();
        let _ = writeln!(
            h,
            "<h3>Snapshot integrity</h3><p>{} pulled tables re-checksummed, {bad} changed since the pull.</p>",
            integrity.len()
        );
        let changed: Vec<&Check> = integrity.into_iter().filter(|c| !c.ok).collect();
        if !changed.is_empty() {
            check_rows(h, &changed);
        }
    }
    for p in &plan.file.phases {
        let timing = r.phases.iter().find(|t| t.id == p.id);
        let _ = writeln!(
            h,
            "<h3 id=\"phase-{}\">Phase {} — {} <span class=\"muted\">{}</span></h3>",
            esc(&p.id),
            esc(&p.id),
            esc(&p.name),
            match timing {
                Some(t) => format!("{:.1} ms", t.millis),
                None => "did not run (or timing not recorded)".to_string(),
            }
        );
        let checks: Vec<&Check> = r.checks.iter().filter(|c| c.phase == p.id).collect();
        if checks.is_empty() {
            h.push_str("<p class=\"muted\">No check of this phase was recorded.</p>\n");
        } else {
            check_rows(h, &checks);
        }
    }
    let last: Vec<&Check> = r.checks.iter().filter(|c| c.phase == "final").collect();
    if !last.is_empty() {
        h.push_str("<h3>Final verification and guards</h3>\n");
        check_rows(h, &last);
    }
}

fn failures(h: &mut String, failed: &[&Check]) {
    if failed.is_empty() {
        return;
    }
    h.push_str("<h2>Rows behind each failure</h2>\n");
    for (i, c) in failed.iter().enumerate() {
        let _ = writeln!(
            h,
            "<h3 id=\"failure-{i}\">{} — {} {}</h3><p>Expected {}, found {}.",
            esc(&c.phase),
            esc(&c.name),
            status(false),
            esc(&c.expected),
            esc(&c.actual)
        );
        if c.row_count > 0 {
            let _ = write!(
                h,
                " {} rows in all{}.",
                c.row_count,
                if c.row_count as usize > c.rows.len() {
                    format!(", the first {} shown", c.rows.len())
                } else {
                    String::new()
                }
            );
        }
        h.push_str("</p>\n");
        if !c.rows.is_empty() {
            let body: Vec<String> = c.rows.iter().map(|r| esc(r)).collect();
            let _ = writeln!(h, "<pre>{}</pre>", body.join("\n"));
        }
    }
}

fn push_section(h: &mut String, push: &PushView) {
    h.push_str("<h2>What push would do</h2>\n");
    match push {
        Err(why) => {
            let _ = writeln!(h, "<p class=\"bad\">Push would refuse: {}</p>", esc(why));
        }
        Ok(tables) => {
            h.push_str(
                "<table><tr><th>table</th><th>DDL</th><th class=\"num\">inserts</th>\
                 <th class=\"num\">updates</th><th class=\"num\">deletes</th><th>columns updated</th></tr>\n",
            );
            for t in tables {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    esc(&t.table),
                    if t.created { "CREATE TABLE" } else { "" },
                    t.inserts,
                    t.updates,
                    t.deletes,
                    esc(&t.updated_columns.join(", "))
                );
            }
            h.push_str("</table>\n");
        }
    }
}

fn found(h: &mut String, r: &StoredRehearsal) {
    h.push_str(
        "<h2>Found in the snapshot: triggers, defaults, side effects</h2>\n<p class=\"muted\">What exists \
         on the pulled tables the plan writes and only Postgres decides; the push's preflight runs them \
         on the server before anything is committed.</p>\n",
    );
    if r.preflight.is_empty() {
        h.push_str("<p>Nothing: no trigger, computed default, CHECK or partial index on the written tables.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>table</th><th>kind</th><th>name</th><th>detail</th></tr>\n");
    for p in &r.preflight {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&p.table),
            esc(&p.kind),
            esc(&p.name),
            esc(&p.detail)
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn only_all_number_pair_lists_are_charted() {
        assert_eq!(
            numeric_pairs("SP01=17, SP02=19").unwrap(),
            vec![("SP01".to_string(), 17.0), ("SP02".to_string(), 19.0)]
        );
        assert!(numeric_pairs("a=x, b=2").is_none());
        assert!(numeric_pairs("17").is_none());
    }
}
