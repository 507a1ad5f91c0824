//! The run report as one self-contained HTML page: inline CSS and SVG, no script, no font,
//! nothing fetched (a Content-Security-Policy forbids it). Everything that comes from the
//! run is escaped.

use std::fmt::Write;

use super::duration_text;
use super::model::{Bar, BarKind, RunReport};

/// Width of the timeline's drawing area, in SVG units.
const CHART_WIDTH: i64 = 640;
/// Width of the label column left of the bars.
const LABEL_WIDTH: i64 = 260;
/// Height of one timeline row.
const ROW: i64 = 28;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:980px;padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.6rem .8rem;overflow-x:auto}
.status{display:inline-block;padding:.05rem .5rem;border-radius:1rem;color:#fff;background:#57606a}
.status.succeeded{background:#1a7f37}.status.failed{background:#cf222e}.status.reverted,.status.restored{background:#9a6700}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}svg .axis{stroke:#d0d7de}
.bar.up{fill:#2da44e}.bar.down{fill:#8250df}.bar.snapshot{fill:#0969da}.bar.seed{fill:#57606a}
.bar.failed{fill:#cf222e}.bar.retried{stroke:#bf8700;stroke-width:3}
.mark.failed{fill:#cf222e;font-weight:bold}.mark.retried{fill:#9a6700}
.error{color:#cf222e;white-space:pre-wrap}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:-.1em;margin-right:.3em;background:#57606a}
.swatch.up{background:#2da44e}.swatch.down{background:#8250df}.swatch.snapshot{background:#0969da}.swatch.failed{background:#cf222e}.swatch.retried{background:#fff;border:3px solid #bf8700;box-sizing:border-box}.pass{color:#1a7f37}.fail{color:#cf222e}.muted{color:#57606a}
";

/// Renders the report as a complete HTML document.
pub fn render(report: &RunReport) -> String {
    let run = &report.run;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>dbsafe run {id}</title><style>{STYLE}</style></head><body>\n\
         <h1>dbsafe {kind} run <code>{id}</code> <span class=\"status {status_class}\">{status}</span></h1>\n",
        id = esc(run.id.as_str()),
        kind = esc(run.kind.as_str()),
        status = esc(run.status.as_str()),
        status_class = class(run.status.as_str()),
    );
    summary(report, &mut out);
    timeline(report, &mut out);
    locks(report, &mut out);
    checks(report, &mut out);
    rows(report, &mut out);
    rollback(report, &mut out);
    out.push_str("</body></html>\n");
    out
}

fn summary(report: &RunReport, out: &mut String) {
    let run = &report.run;
    let mut rows: Vec<(&str, String)> = vec![
        (
            "target",
            format!("{} ({})", esc(&run.target), esc(&run.environment)),
        ),
        (
            "operator",
            format!("{} on {}", esc(&run.operator), esc(&run.host)),
        ),
        ("started", esc(&run.started_at)),
        (
            "finished",
            run.finished_at.as_deref().map_or("–".into(), esc),
        ),
        (
            "duration",
            report
                .duration_ms
                .map_or("unfinished".into(), duration_text),
        ),
        ("dbsafe", esc(&run.tool_version)),
    ];
    if let Some(commit) = &run.git_commit {
        let dirty = if run.git_dirty == Some(true) {
            " (uncommitted changes)"
        } else {
            ""
        };
        rows.push(("git", format!("<code>{}</code>{dirty}", esc(commit))));
    }
    if let Some(hash) = &run.bundle_hash {
        rows.push(("bundle", format!("<code>{}</code>", esc(hash))));
    }
    if let Some(parent) = &run.parent_run {
        rows.push((
            "undoes run",
            format!("<code>{}</code>", esc(parent.as_str())),
        ));
    }
    if let Some(error) = &run.error {
        rows.push((
            "error",
            format!("<span class=\"error\">{}</span>", esc(error)),
        ));
    }
    out.push_str("<table class=\"summary\">");
    for (key, value) in rows {
        let _ = write!(out, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    out.push_str("</table>\n");
}

fn timeline(report: &RunReport, out: &mut String) {
    out.push_str("<h2>Timeline</h2>\n");
    if report.timeline.is_empty() {
        out.push_str("<p class=\"muted\">Nothing ran.</p>\n");
        return;
    }
    let span = report.span_ms();
    let height = ROW * (report.timeline.len() as i64 + 1) + 8;
    let width = LABEL_WIDTH + CHART_WIDTH + 120;
    let _ = write!(
        out,
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"timeline of the run's steps\">"
    );
    for tick in 0..=4 {
        let x = LABEL_WIDTH + CHART_WIDTH * tick / 4;
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - 22,
            height - 6,
            duration_text(span * tick / 4)
        );
    }
    for (i, bar) in report.timeline.iter().enumerate() {
        bar_svg(bar, i as i64, span, out);
    }
    out.push_str("</svg>\n");
    legend(out);
}

/// What the bars' colours and marks mean.
fn legend(out: &mut String) {
    out.push_str("<p class=\"legend muted\">");
    for (class, text) in [
        ("snapshot", "snapshot"),
        ("up", "migration applied"),
        ("down", "migration reverted"),
        ("seed", "seed"),
        ("failed", "failed or unfinished (✗)"),
    ] {
        let _ = write!(out, "<span class=\"swatch {class}\"></span>{text} &nbsp; ");
    }
    out.push_str("<span class=\"swatch retried\"></span>retried after a lock timeout (↻)</p>\n");
}

fn bar_svg(bar: &Bar, row: i64, span: i64, out: &mut String) {
    let y = row * ROW + 4;
    let x = LABEL_WIDTH + bar.start_ms * CHART_WIDTH / span;
    let w = (bar.duration_ms * CHART_WIDTH / span).max(3);
    let kind = match bar.kind {
        BarKind::Snapshot => "snapshot",
        BarKind::Up => "up",
        BarKind::Down => "down",
        BarKind::Seed => "seed",
    };
    let mut classes = format!("bar {kind}");
    if bar.failed {
        classes.push_str(" failed");
    }
    if bar.retries() > 0 {
        classes.push_str(" retried");
    }
    let label = esc(&bar.label);
    let mut title = format!(
        "{kind} {label}: {} in {}",
        esc(&bar.status),
        duration_text(bar.duration_ms)
    );
    if bar.retries() > 0 {
        let _ = write!(title, ", {} retries", bar.retries());
    }
    if let Some(error) = &bar.error {
        let _ = write!(title, "\n{}", esc(error));
    }
    let _ = write!(
        out,
        "<g class=\"step\" data-kind=\"{kind}\" data-status=\"{status}\">\
         <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{kind} {short}</text>\
         <rect class=\"{classes}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"3\"><title>{title}</title></rect>",
        status = class(&bar.status),
        lx = LABEL_WIDTH - 8,
        ty = y + 15,
        short = esc(&shorten(&bar.label, 34)),
        h = ROW - 8,
    );
    let mut marks = Vec::new();
    if bar.failed {
        marks.push(("failed", format!("✗ {}", esc(&bar.status))));
    }
    if bar.retries() > 0 {
        marks.push(("retried", format!("↻ {} retries", bar.retries())));
    }
    let mut mx = x + w + 6;
    for (mark_class, text) in marks {
        let _ = write!(
            out,
            "<text class=\"mark {mark_class}\" x=\"{mx}\" y=\"{}\">{text}</text>",
            y + 15
        );
        mx += 90;
    }
    out.push_str("</g>");
}

fn locks(report: &RunReport, out: &mut String) {
    if report.locks.is_empty() {
        return;
    }
    out.push_str("<h2>Locks seen in rehearsal</h2>\n<table><tr><th>migration</th><th>lock</th><th></th></tr>");
    for lock in &report.locks {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"error\">{}</td></tr>",
            esc(&lock.migration),
            esc(&lock.lock),
            lock.warning.as_deref().map_or(String::new(), esc)
        );
    }
    out.push_str("</table>\n");
}

fn checks(report: &RunReport, out: &mut String) {
    out.push_str("<h2>Verification</h2>\n");
    if report.checks.is_empty() {
        out.push_str("<p class=\"muted\">No verification failure was recorded.</p>\n");
        return;
    }
    out.push_str("<table class=\"checks\"><tr><th></th><th>check</th><th>result</th></tr>");
    for check in &report.checks {
        let (class, mark) = if check.passed {
            ("pass", "✓")
        } else {
            ("fail", "✗")
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{mark}</td><td>{}</td><td>{}</td></tr>",
            esc(&check.name),
            esc(&check.message)
        );
    }
    out.push_str("</table>\n");
}

fn rows(report: &RunReport, out: &mut String) {
    if report.rows.is_empty() {
        return;
    }
    out.push_str("<h2>Row counts</h2>\n<table class=\"rows\"><tr><th>table</th><th>before</th><th>after</th><th>change</th></tr>");
    for change in &report.rows {
        let approx = if change.estimated { "≈ " } else { "" };
        let count = |n: Option<i64>| n.map_or("–".to_owned(), |n| format!("{approx}{n}"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&change.table),
            count(change.before),
            count(change.after),
            change.delta().map_or("–".to_owned(), |d| format!("{d:+}"))
        );
    }
    out.push_str("</table>\n");
}

fn rollback(report: &RunReport, out: &mut String) {
    out.push_str("<h2>Snapshot and roll back</h2>\n");
    match &report.run.snapshot_id {
        Some(snapshot) => {
            let _ = writeln!(
                out,
                "<p>Snapshot taken before the run: <code>{}</code></p>",
                esc(snapshot)
            );
        }
        None => out.push_str("<p class=\"muted\">No snapshot was taken before this run.</p>\n"),
    }
    for command in &report.rollback.commands {
        let _ = writeln!(
            out,
            "<p>{}:</p><pre class=\"rollback\"><code>{}</code></pre>",
            esc(&command.does),
            esc(&command.command)
        );
    }
    if let Some(note) = &report.rollback.note {
        let _ = writeln!(out, "<p class=\"muted\">{}</p>", esc(note));
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
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

/// A CSS class name made of the value's letters only.
fn class(value: &str) -> String {
    value.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max - 1).collect();
    format!("{head}…")
}
