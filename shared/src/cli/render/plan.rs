//! `cargo dbsafe plan`: the preflight, the pending migrations, the snapshot, the failure
//! policy and the rehearsal (a `plan` line in JSON).

use std::fmt::Write;

use console::Style;

use super::{JsonLine, Report};
use crate::plan::Plan;

impl Report for Plan {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("plan", self)]
    }

    fn human(&self) -> String {
        human(self)
    }
}

/// `cargo dbsafe plan` as text.
fn human(plan: &Plan) -> String {
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
