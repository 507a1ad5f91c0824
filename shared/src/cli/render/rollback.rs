//! `cargo dbrollback`: the runs that can be rolled back (`rollback.candidate`), the plan of
//! a dry run (`rollback.plan`), and what a rollback or a snapshot restore did.

use super::{HumanStream, JsonLine, Report};
use crate::rollback::{Candidate, RollbackOutcome, RollbackPlan};
use crate::run_id::RunId;

/// `cargo dbrollback --list`.
pub struct Candidates<'a>(pub &'a [Candidate]);

impl Report for Candidates<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.0
            .iter()
            .map(|c| JsonLine::new("rollback.candidate", c))
            .collect()
    }

    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no run can be rolled back".into();
        }
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|c| {
                format!(
                    "  {}  {:<9} {} migration(s) still applied{}  by {} at {}",
                    c.run.id,
                    c.run.status,
                    c.still_applied.len(),
                    c.run
                        .snapshot_id
                        .as_deref()
                        .map(|s| format!(", snapshot {s}"))
                        .unwrap_or_default(),
                    c.run.operator,
                    c.run.started_at
                )
            })
            .collect();
        lines.join("\n")
    }
}

impl Report for RollbackPlan {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("rollback.plan", self)]
    }

    /// What would be restored and lost, or the down.sql that would run, in order.
    fn human(&self) -> String {
        let mut text = String::new();
        if let Some(snapshot) = &self.snapshot {
            text.push_str(&format!(
                "would restore snapshot {} ({}, taken {}, {} migration(s) applied then),\nafter a safety snapshot of the current state.\nLost: every change since {}, including runs {}\n",
                snapshot.id,
                snapshot.strategy,
                snapshot.created_at,
                snapshot.applied_migrations.len(),
                snapshot.created_at,
                crate::run_id::list(&self.runs_undone)
            ));
            return text;
        }
        text.push_str(&format!(
            "would revert {} migration(s), in this order:\n",
            self.reverts.len()
        ));
        for revert in &self.reverts {
            let edited = if revert.down_edited.is_some() {
                ", down.sql edited since applied, accepted with --allow-edit"
            } else {
                ""
            };
            text.push_str(&format!(
                "-- {} (run {}{edited})\n{}\n",
                revert.name,
                revert.run_id,
                revert.down_sql.trim_end()
            ));
        }
        text
    }
}

/// What a rollback that ran did: a note for people (its events were the JSON).
pub enum RollbackDone<'a> {
    /// `cargo dbrollback`.
    Rollback(&'a RollbackOutcome),
    /// `cargo dbsafe snapshot restore` of this snapshot.
    Restore(&'a RollbackOutcome, &'a str),
}

impl Report for RollbackDone<'_> {
    fn json(&self) -> Vec<JsonLine> {
        Vec::new()
    }

    fn human(&self) -> String {
        match self {
            RollbackDone::Restore(outcome, id) => format!(
                "restore run {}: restored snapshot {id} (the state before is in safety snapshot {})",
                name_or_empty(outcome.run_id.as_ref()),
                outcome.safety_snapshot.as_deref().unwrap_or("?")
            ),
            RollbackDone::Rollback(outcome) => {
                let plan = &outcome.plan;
                let what = match &outcome.safety_snapshot {
                    Some(safety) => format!(
                        "restored snapshot {} ({}; the state before is in safety snapshot {safety})",
                        plan.snapshot.as_ref().map_or("?", |m| m.id.as_str()),
                        match &plan.run_id {
                            None => "asked for by id".to_owned(),
                            Some(run) => format!("undoing run {run}"),
                        }
                    ),
                    None => format!(
                        "reverted {} migration(s) of run {}",
                        plan.reverts.len(),
                        name_or_empty(plan.run_id.as_ref())
                    ),
                };
                format!(
                    "rollback run {}: {what}",
                    name_or_empty(outcome.run_id.as_ref())
                )
            }
        }
    }

    fn stream(&self) -> HumanStream {
        HumanStream::Notes
    }
}

/// A run id a message names, or nothing (a dry run has no run of its own).
fn name_or_empty(id: Option<&RunId>) -> &str {
    id.map_or("", RunId::as_str)
}
