//! `cargo dbsafe status`: the target, its identity, applied and pending migrations, dirty
//! steps, the last runs and what to run next (a `status` line in JSON).

use std::fmt::Write;

use console::Style;

use super::{JsonLine, Report};
use crate::status::StatusReport;

impl Report for StatusReport {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("status", self)]
    }

    fn human(&self) -> String {
        human(self)
    }
}

/// `cargo dbsafe status` as text.
fn human(report: &StatusReport) -> String {
    let bold = Style::new().bold();
    let yellow = Style::new().yellow();
    let red = Style::new().red();
    let mut out = String::new();
    let protected = if report.protected { ", protected" } else { "" };
    let _ = writeln!(
        out,
        "{} {} ({}{protected})",
        bold.apply_to("target:"),
        report.target,
        report.environment
    );
    let _ = writeln!(
        out,
        "{} {} {}",
        bold.apply_to("database:"),
        report.backend,
        report.url
    );
    let _ = writeln!(out, "{} {}", bold.apply_to("identity:"), report.identity);
    if let Some(problem) = &report.binding_problem {
        let _ = writeln!(out, "{} {problem}", red.apply_to("binding:"));
    }
    if !report.ledger {
        let _ = writeln!(
            out,
            "{} none yet (created by the first `cargo dbsafe apply`)",
            bold.apply_to("ledger:")
        );
    }
    let applied = report
        .migrations
        .iter()
        .filter(|m| m.state == "applied")
        .count();
    let _ = writeln!(
        out,
        "{} {applied} applied, {} pending",
        bold.apply_to("migrations:"),
        report.pending()
    );
    for m in &report.migrations {
        let by = match m.applied_by.as_deref() {
            Some(tool) if tool == crate::layout::current().outside_tool() => format!(" by {tool}"),
            Some(run) => format!(" by run {run}"),
            None => String::new(),
        };
        let state = match m.state.as_str() {
            "pending" => yellow.apply_to("pending").to_string(),
            "missing-from-disk" => red.apply_to("missing from disk").to_string(),
            other => other.to_owned(),
        };
        let edited = if m.edited {
            red.apply_to("  up.sql edited since applied").to_string()
        } else {
            String::new()
        };
        let name = if m.name.is_empty() {
            &m.version
        } else {
            &m.name
        };
        let down = match &m.missing_down {
            Some(missing) => format!("  (has {missing}: cannot be reverted)"),
            None => String::new(),
        };
        let _ = writeln!(out, "  {name}  {state}{by}{edited}{down}");
    }
    if let Some(restore) = &report.interrupted_restore {
        let _ = writeln!(out, "{} {restore}", red.apply_to("interrupted:"));
    }
    if !report.outside_dbsafe.is_empty() {
        let adopt = if report.ledger {
            ""
        } else {
            "; the first `cargo dbsafe apply` records them as found (an `adopt` event)"
        };
        let _ = writeln!(
            out,
            "{} {} migration(s) were applied by diesel outside dbsafe (`diesel migration run`): \
             `cargo dbverify --drift` checks the schema matches them{adopt}",
            yellow.apply_to("note:"),
            report.outside_dbsafe.len()
        );
    }
    for disagreement in &report.disagreements {
        let _ = writeln!(out, "{} {disagreement}", red.apply_to("disagree:"));
    }
    for dirty in &report.dirty {
        let _ = writeln!(out, "{} {dirty}", red.apply_to("dirty:"));
    }
    for running in &report.running {
        let _ = writeln!(out, "{} {running}", yellow.apply_to("running:"));
    }
    for run in &report.interrupted {
        let _ = writeln!(
            out,
            "{} run {run} stopped before it finished (its process is gone); the next apply marks it failed",
            red.apply_to("interrupted:")
        );
    }
    if !report.last_runs.is_empty() {
        let _ = writeln!(out, "{}", bold.apply_to("last runs:"));
        out.push_str(&super::runs::runs(&report.last_runs));
    }
    let _ = writeln!(out, "{} {}", bold.apply_to("next:"), next_command(report));
    out
}

/// The command to run next, given the status.
fn next_command(report: &StatusReport) -> String {
    if report.interrupted_restore.is_some() {
        "cargo dbsafe apply   # finishes or undoes the interrupted restore first".into()
    } else if let Some(dirty) = report.dirty.first() {
        let version = dirty
            .split("cargo dbsafe resolve ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("VERSION");
        format!(
            "repair the dirty step by hand, then `cargo dbsafe resolve {version} --as applied|reverted`"
        )
    } else if report.binding_problem.is_some() {
        "cargo dbsafe apply --rebind   # only if this target really is meant to reach this database now".into()
    } else if report.migrations.iter().any(|m| m.edited) {
        "write a new migration instead of editing an applied one (`cargo dbsafe check` names it)"
            .into()
    } else if report.pending() > 0 {
        "cargo dbsafe plan   # what apply would do; then `cargo dbsafe apply`".into()
    } else {
        "nothing to apply; `cargo dbsafe runs` shows the history".into()
    }
}
