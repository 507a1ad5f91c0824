//! Fleet commands (`--fleet NAME`): each member's outcome as it finishes (`fleet.member`),
//! the members' status (`fleet.status`), plans (`plan` with `member`) and verification
//! results (`verify.result` with `member`), and the closing summary (`fleet.summary`).

use console::Style;

use super::github;
use super::verify::VerifyResults;
use super::{HumanStream, JsonLine, Report, first_line};
use crate::fleet::views::FleetStatus;
use crate::fleet::{FleetReport, MemberOutcome, MemberStatus};
use crate::plan::Plan;
use crate::run_id::RunId;
use crate::verify::CheckResult;

/// One member's outcome, as it finishes: a note when it failed.
pub struct Member<'a>(pub &'a MemberOutcome);

impl Report for Member<'_> {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("fleet.member", self.0)]
    }

    fn human(&self) -> String {
        let outcome = self.0;
        if !outcome.status.is_failure() {
            return String::new();
        }
        format!(
            "{} {}: {}",
            Style::new().red().apply_to(outcome.status.as_str()),
            outcome.member,
            first_line(&outcome.detail)
        )
    }

    fn stream(&self) -> HumanStream {
        HumanStream::Notes
    }
}

impl Report for FleetStatus {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("fleet.status", self)]
    }

    /// A row per member, the unreachable servers, the totals.
    fn human(&self) -> String {
        let mut text = String::new();
        let width = self
            .members
            .iter()
            .map(|m| m.member.len())
            .max()
            .unwrap_or(6)
            .max(6);
        text.push_str(&format!(
            "{:<width$}  {:<16} {:>7}  {:<5}  {:<21}  {}\n",
            "member", "version", "pending", "dirty", "last run", "status"
        ));
        for m in &self.members {
            match &m.error {
                Some(e) => text.push_str(&format!(
                    "{:<width$}  {}\n",
                    m.member,
                    Style::new().red().apply_to(first_line(e))
                )),
                None => text.push_str(&format!(
                    "{:<width$}  {:<16} {:>7}  {:<5}  {:<21}  {}\n",
                    m.member,
                    m.version.as_deref().unwrap_or("-"),
                    m.pending,
                    if m.dirty { "DIRTY" } else { "no" },
                    m.last_run.as_ref().map_or("-", RunId::as_str),
                    m.last_status.as_deref().unwrap_or("-")
                )),
            }
        }
        for u in &self.unreachable {
            text.push_str(&format!(
                "server {} unreachable: {}\n",
                u.server,
                first_line(&u.error)
            ));
        }
        text.push_str(&format!("fleet {}: {}", self.fleet, self.totals()));
        text
    }
}

/// Each member's plan.
pub struct Plans<'a>(pub &'a [(String, Plan)]);

impl Report for Plans<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.0
            .iter()
            .map(|(member, plan)| JsonLine::new("plan", plan).with("member", member))
            .collect()
    }

    /// A line per member: what apply would apply.
    fn human(&self) -> String {
        let mut text = String::new();
        for (member, plan) in self.0 {
            let versions: Vec<&str> = plan.pending.iter().map(|m| m.version.as_str()).collect();
            text.push_str(&format!(
                "{member}: {}\n",
                if versions.is_empty() {
                    "nothing to apply".to_owned()
                } else {
                    format!("would apply {}", versions.join(", "))
                }
            ));
        }
        text
    }
}

/// Each member's verification results (their failures are in the summary).
pub struct Verified<'a>(pub &'a [(String, Vec<CheckResult>)]);

impl Verified<'_> {
    fn each(&self) -> impl Iterator<Item = VerifyResults<'_>> {
        self.0.iter().map(|(member, results)| VerifyResults {
            target: member,
            results,
            config: None,
        })
    }
}

impl Report for Verified<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.0
            .iter()
            .flat_map(|(member, checks)| {
                checks
                    .iter()
                    .map(move |c| JsonLine::new("verify.result", c).with("member", member))
            })
            .collect()
    }

    fn human(&self) -> String {
        String::new()
    }

    /// One annotation per member's check that did not pass.
    fn github(&self) -> String {
        github::lines(
            self.each()
                .flat_map(|r| r.annotations().collect::<Vec<_>>()),
        )
    }
}

/// The closing summary of a fleet command.
pub struct Summary<'a>(pub &'a FleetReport);

impl Report for Summary<'_> {
    fn json(&self) -> Vec<JsonLine> {
        let report = self.0;
        // Members never started were not streamed as they finished.
        let mut lines: Vec<JsonLine> = report
            .members
            .iter()
            .filter(|m| m.status == MemberStatus::Skipped)
            .map(|m| JsonLine::new("fleet.member", m))
            .collect();
        lines.push(JsonLine::new(
            "fleet.summary",
            &serde_json::json!({
                "fleet_run": report.fleet_run.as_ref().map_or("", RunId::as_str), "fleet": report.fleet, "command": report.command,
                "partition": report.partition, "totals": report.totals(),
                "unreachable": report.unreachable, "members": report.members.len(),
            }),
        ));
        lines
    }

    fn human(&self) -> String {
        summary_table(self.0)
    }
}

/// Every member when there are few; otherwise only those that failed (the totals count
/// the rest).
fn summary_table(report: &FleetReport) -> String {
    const ALL_UP_TO: usize = 40;
    let few = report.members.len() <= ALL_UP_TO;
    let shown: Vec<&MemberOutcome> = report
        .members
        .iter()
        .filter(|m| few || m.status.is_failure())
        .collect();
    let width = shown
        .iter()
        .map(|m| m.member.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut text = String::new();
    if !shown.is_empty() {
        text.push_str(&format!(
            "{:<width$}  {:<6}  {:<15}  {:<21}  {}\n",
            "member", "wave", "status", "run", "detail"
        ));
    }
    for m in &shown {
        let style = if m.status.is_failure() {
            Style::new().red()
        } else {
            Style::new()
        };
        text.push_str(&format!(
            "{:<width$}  {:<6}  {:<15}  {:<21}  {}\n",
            m.member,
            m.wave,
            style.apply_to(m.status.as_str()),
            m.run_id.as_ref().map_or("-", RunId::as_str),
            first_line(&m.detail)
        ));
    }
    if shown.len() < report.members.len() {
        let rest = report.members.len() - shown.len();
        text.push_str(&format!(
            "({rest} other members not listed; --message-format json lists each)\n"
        ));
    }
    for u in &report.unreachable {
        text.push_str(&format!(
            "server {} unreachable: {}\n",
            u.server,
            first_line(&u.error)
        ));
    }
    let run = report
        .fleet_run
        .as_ref()
        .map(|run| format!(" run {run}"))
        .unwrap_or_default();
    let share = report
        .partition
        .as_deref()
        .map(|p| format!(" (partition {p})"))
        .unwrap_or_default();
    text.push_str(&format!(
        "fleet {}{run}{share} {}: {}",
        report.fleet,
        report.command,
        report.totals()
    ));
    text
}
