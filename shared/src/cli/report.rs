//! Human text for the reports (`status`, `runs`, `runs show`); JSON output serialises the
//! same structures.

use std::fmt::Write;

use console::Style;

use crate::ledger::RunRow;
use crate::runs::{RunDetail, RunListing};
use crate::status::StatusReport;

/// `cargo dbsafe status` as text.
pub fn status(report: &StatusReport) -> String {
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
        out.push_str(&runs(&report.last_runs));
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

/// `cargo dbsafe runs`: a header, one line per run with its number of migrations, the no-op
/// runs (an apply with nothing to apply) folded into one line unless `all`.
pub fn runs_listing(listing: &[RunListing], all: bool) -> String {
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
pub fn runs(runs: &[RunRow]) -> String {
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
pub fn run_detail(detail: &RunDetail) -> String {
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

/// `cargo dbsafe plan` as text.
pub fn plan(plan: &crate::plan::Plan) -> String {
    let bold = Style::new().bold();
    let red = Style::new().red();
    let yellow = Style::new().yellow();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}, {})",
        bold.apply_to("target:"),
        plan.target,
        plan.environment,
        plan.url
    );
    let _ = writeln!(out, "{}", bold.apply_to("preflight:"));
    for item in &plan.preflight {
        let mark = if item.ok {
            "ok  ".to_owned()
        } else {
            red.apply_to("FAIL").to_string()
        };
        let _ = writeln!(
            out,
            "  {mark} {}: {}",
            item.check,
            item.message.replace('\n', "\n         ")
        );
    }
    let _ = writeln!(
        out,
        "{} {} pending",
        bold.apply_to("migrations:"),
        plan.pending.len()
    );
    for m in &plan.pending {
        let tx = if m.transactional {
            "in a transaction"
        } else {
            "NO transaction"
        };
        let down = if m.reversible { "" } else { ", no down.sql" };
        let _ = writeln!(out, "  {}  ({tx}{down})", m.name);
    }
    let snapshot = plan.snapshot.as_deref().map_or("none".to_owned(), |s| {
        format!("{s} snapshot before the run")
    });
    let _ = writeln!(out, "{} {snapshot}", bold.apply_to("snapshot:"));
    let _ = writeln!(out, "{} {}", bold.apply_to("on failure:"), plan.on_failure);
    for (title, list) in [("seeds:", &plan.seeds), ("checks after:", &plan.checks)] {
        if !list.is_empty() {
            let _ = writeln!(out, "{} {}", bold.apply_to(title), list.join(", "));
        }
    }
    if let Some(rehearsal) = &plan.rehearsal {
        let _ = writeln!(out, "{}", bold.apply_to("rehearsal on a throwaway clone:"));
        for r in rehearsal {
            let name = match r.step {
                "migration" => r.name.clone(),
                step => format!("{step} {}", r.name),
            };
            match &r.error {
                None => {
                    let _ = writeln!(out, "  ok   {name} ({} ms)", r.duration_ms);
                }
                Some(e) => {
                    let _ = writeln!(
                        out,
                        "  {} {name} ({} ms): {e}",
                        red.apply_to("FAIL"),
                        r.duration_ms
                    );
                }
            }
            for lock in &r.locks {
                let _ = writeln!(out, "         lock: {lock}");
            }
            for warning in &r.warnings {
                let _ = writeln!(out, "         {} {warning}", yellow.apply_to("warning:"));
            }
        }
    }
    out
}
