//! The run report as GitHub-flavoured Markdown, for pull-request comments and
//! `$GITHUB_STEP_SUMMARY`. Everything that comes from the run (migration names, errors,
//! operator) is escaped, so it renders as the text it is.

use std::fmt::Write;

use super::model::{BarKind, RunReport};
use super::{duration_text, status_mark};

/// Width of the longest timeline bar, in block characters.
const BAR_WIDTH: i64 = 24;

/// Renders the report.
pub fn render(report: &RunReport) -> String {
    let run = &report.run;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} dbsafe {} run `{}`: {}\n",
        status_mark(run.status.as_str()),
        text(run.kind.as_str()),
        code(run.id.as_str()),
        text(run.status.as_str())
    );
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "| {key} | {value} |");
    };
    row(
        "target",
        format!("{} ({})", text(&run.target), text(&run.environment)),
    );
    row(
        "operator",
        format!("{} on {}", text(&run.operator), text(&run.host)),
    );
    row("started", text(&run.started_at));
    row(
        "duration",
        report
            .duration_ms
            .map_or("unfinished".into(), duration_text),
    );
    if let Some(commit) = &run.git_commit {
        let dirty = if run.git_dirty == Some(true) {
            " (uncommitted changes)"
        } else {
            ""
        };
        row("git", format!("`{}`{dirty}", code(commit)));
    }
    if let Some(snapshot) = &run.snapshot_id {
        row("snapshot", format!("`{}`", code(snapshot)));
    }
    if let Some(error) = &run.error {
        row("error", text(error));
    }
    out.push('\n');
    timeline(report, &mut out);
    locks(report, &mut out);
    checks(report, &mut out);
    rows(report, &mut out);
    rollback(report, &mut out);
    out
}

fn timeline(report: &RunReport, out: &mut String) {
    let _ = writeln!(out, "#### Timeline\n");
    if report.timeline.is_empty() {
        let _ = writeln!(out, "Nothing ran.\n");
        return;
    }
    let span = report.span_ms();
    let _ = writeln!(
        out,
        "| | step | status | duration | |\n| --- | --- | --- | ---: | --- |"
    );
    for bar in &report.timeline {
        let kind = match bar.kind {
            BarKind::Snapshot => "snapshot",
            BarKind::Up => "up",
            BarKind::Down => "down",
            BarKind::Seed => "seed",
        };
        let width = (bar.duration_ms * BAR_WIDTH / span).clamp(1, BAR_WIDTH) as usize;
        let mut status = text(&bar.status);
        if bar.retries() > 0 {
            let _ = write!(status, " ↻ {} retries", bar.retries());
        }
        if bar.failed {
            status = format!("❌ **{status}**");
        }
        let _ = writeln!(
            out,
            "| {kind} | {} | {status} | {} | `{}` |",
            text(&bar.label),
            duration_text(bar.duration_ms),
            "█".repeat(width)
        );
        if let Some(error) = &bar.error {
            let _ = writeln!(out, "| | ↳ {} | | | |", text(error));
        }
    }
    out.push('\n');
}

fn locks(report: &RunReport, out: &mut String) {
    if report.locks.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "#### Locks seen in rehearsal\n\n| migration | lock | |\n| --- | --- | --- |"
    );
    for lock in &report.locks {
        let warning = lock
            .warning
            .as_deref()
            .map_or(String::new(), |w| format!("⚠️ {}", text(w)));
        let _ = writeln!(
            out,
            "| {} | {} | {warning} |",
            text(&lock.migration),
            text(&lock.lock)
        );
    }
    out.push('\n');
}

fn checks(report: &RunReport, out: &mut String) {
    let _ = writeln!(out, "#### Verification\n");
    if report.checks.is_empty() {
        let _ = writeln!(out, "No verification failure was recorded.\n");
        return;
    }
    for check in &report.checks {
        let mark = if check.passed { "✅" } else { "❌" };
        let _ = writeln!(
            out,
            "- {mark} {}: {}",
            text(&check.name),
            text(&check.message)
        );
    }
    out.push('\n');
}

fn rows(report: &RunReport, out: &mut String) {
    if report.rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "#### Row counts\n\n| table | before | after | change |\n| --- | ---: | ---: | ---: |"
    );
    for change in &report.rows {
        let approx = if change.estimated { "≈ " } else { "" };
        let count = |n: Option<i64>| n.map_or("–".to_owned(), |n| format!("{approx}{n}"));
        let delta = change.delta().map_or("–".to_owned(), |d| format!("{d:+}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {delta} |",
            text(&change.table),
            count(change.before),
            count(change.after)
        );
    }
    out.push('\n');
}

fn rollback(report: &RunReport, out: &mut String) {
    let _ = writeln!(out, "#### Roll back\n");
    for command in &report.rollback.commands {
        let _ = writeln!(
            out,
            "{}:\n\n```sh\n{}\n```\n",
            text(&command.does),
            fence(&command.command)
        );
    }
    if let Some(note) = &report.rollback.note {
        let _ = writeln!(out, "{}\n", text(note));
    }
}

/// Escapes text for Markdown, table cells included: HTML-significant characters become
/// entities, other ASCII punctuation is backslash-escaped, line breaks become `<br>`.
pub fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c if c.is_ascii_punctuation()
                && !matches!(
                    c,
                    '.' | ',' | ':' | ';' | '/' | '=' | '\'' | '"' | '%' | '@' | '?' | '-' | '+'
                ) =>
            {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for inside an inline code span: no backticks, no line breaks, no `|` (tables).
fn code(value: &str) -> String {
    value.replace(['`', '\n', '\r', '|'], " ")
}

/// Text for inside a fenced block: a line starting with backticks cannot close it.
fn fence(value: &str) -> String {
    value.replace("```", "'''")
}
