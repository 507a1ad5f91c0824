//! `cargo dbsafe runs` (one line per run) and `runs show` (one run with its steps and
//! events); `run` lines in JSON.

use std::fmt::Write;

use console::Style;

use super::{JsonLine, Report};
use crate::ledger::RunRow;
use crate::runs::{RunDetail, RunListing};

/// `cargo dbsafe runs`: a `run` line each in JSON.
pub struct RunsListing<'a> {
    /// The runs, newest first, with their number of migrations.
    pub listing: &'a [RunListing],
    /// Whether the no-op runs are listed too.
    pub all: bool,
}

impl Report for RunsListing<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.listing
            .iter()
            .map(|r| JsonLine::new("run", r))
            .collect()
    }

    fn human(&self) -> String {
        runs_listing(self.listing, self.all)
    }
}

impl Report for RunDetail {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("run", self)]
    }

    fn human(&self) -> String {
        run_detail(self)
    }
}

/// A header, one line per run with its number of migrations, the no-op runs (an apply
/// with nothing to apply) folded into one line unless `all`.
fn runs_listing(listing: &[RunListing], all: bool) -> String {
    if listing.is_empty() {
        return "no runs yet\n".into();
    }
    let bold = Style::new().bold();
    let dim = Style::new().dim();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        bold.apply_to(format!(
            "  {:<21}  {:<8} {:<9} {:>10}  {:<12} {:<24} {}",
            "RUN", "KIND", "STATUS", "MIGRATIONS", "TARGET", "STARTED", "OPERATOR"
        ))
    );
    let mut folded = 0;
    for item in listing {
        if item.is_noop() && !all {
            folded += 1;
            continue;
        }
        let run = &item.run;
        let _ = writeln!(
            out,
            "  {:<21}  {:<8} {} {:>10}  {:<12} {:<24} {}{}",
            run.id,
            run.kind,
            colored_status(run.status.as_str()),
            item.migrations,
            run.target,
            run.started_at,
            run.operator,
            first_line(run.error.as_deref())
        );
    }
    if folded > 0 {
        let _ = writeln!(
            out,
            "{}",
            dim.apply_to(format!(
                "  ({folded} no-op run(s) with nothing to apply not shown; --all shows them)"
            ))
        );
    }
    out
}

fn first_line(error: Option<&str>) -> String {
    error
        .map(|e| format!("  {}", e.lines().next().unwrap_or("")))
        .unwrap_or_default()
}

/// A list of runs, one line each.
pub(super) fn runs(runs: &[RunRow]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("no runs yet\n");
    }
    for run in runs {
        let _ = writeln!(
            out,
            "  {}  {:<8} {:<9} {:<12} {} {}{}",
            run.id,
            run.kind,
            colored_status(run.status.as_str()),
            run.target,
            run.started_at,
            run.operator,
            first_line(run.error.as_deref())
        );
    }
    out
}

fn colored_status(status: &str) -> String {
    let style = match status {
        "succeeded" => Style::new().green(),
        "failed" => Style::new().red(),
        "running" => Style::new().cyan(),
        _ => Style::new().yellow(),
    };
    style.apply_to(format!("{status:<9}")).to_string()
}

/// One run with its steps and events.
fn run_detail(detail: &RunDetail) -> String {
    let bold = Style::new().bold();
    let run = &detail.run;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}, {})",
        bold.apply_to("run"),
        run.id,
        run.kind,
        colored_status(run.status.as_str()).trim_end()
    );
    let _ = writeln!(out, "  target:    {} ({})", run.target, run.environment);
    let _ = writeln!(out, "  operator:  {} on {}", run.operator, run.host);
    let _ = writeln!(out, "  started:   {}", run.started_at);
    let _ = writeln!(
        out,
        "  finished:  {}",
        run.finished_at.as_deref().unwrap_or("-")
    );
    let git = match (&run.git_commit, run.git_dirty) {
        (Some(commit), Some(true)) => format!("{commit} (uncommitted changes)"),
        (Some(commit), _) => commit.clone(),
        _ => "-".into(),
    };
    let _ = writeln!(out, "  git:       {git}");
    let _ = writeln!(out, "  dbsafe:    {}", run.tool_version);
    if let Some(hash) = &run.bundle_hash {
        let _ = writeln!(out, "  bundle:    {hash}");
    }
    if let Some(snapshot) = &run.snapshot_id {
        let _ = writeln!(out, "  snapshot:  {snapshot}");
    }
    if let Some(error) = &run.error {
        let _ = writeln!(
            out,
            "  error:     {}",
            error.replace('\n', "\n             ")
        );
    }
    let _ = writeln!(out, "{}", bold.apply_to("steps"));
    if detail.steps.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for step in &detail.steps {
        let _ = writeln!(
            out,
            "  {:>2}. {:<4} {:<8} {}  {} ms{}  up.sql {}",
            step.seq,
            step.direction,
            step.status,
            step.name,
            step.duration_ms.unwrap_or(0),
            if step.transactional {
                ""
            } else {
                "  (no transaction)"
            },
            &step.up_checksum[..12.min(step.up_checksum.len())],
        );
        if let Some(error) = &step.error {
            let _ = writeln!(out, "      {error}");
        }
    }
    if !detail.row_counts.is_empty() {
        let _ = writeln!(out, "{}", bold.apply_to("row counts"));
        for change in &detail.row_counts {
            let _ = writeln!(out, "  {}", change.describe());
        }
    }
    let _ = writeln!(out, "{}", bold.apply_to("events"));
    for event in &detail.events {
        let _ = writeln!(out, "  {}  {}", event.at, event.kind.type_name());
    }
    out
}
