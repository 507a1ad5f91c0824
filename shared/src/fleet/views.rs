//! `cargo dbsafe status --fleet NAME`: one row per member (version, pending, dirty, last run
//! and its status) and the totals (`397 at 2026..., 2 behind, 1 dirty`).

use serde::Serialize;

use super::members::Unreachable;
use crate::error::Error;
use crate::migrations::MigrationSet;
use crate::run_id::RunId;
use crate::status::StatusReport;

/// One member's row.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    /// Member name.
    pub member: String,
    /// The newest applied migration (`None`: none applied, or unknown).
    pub version: Option<String>,
    /// Migrations pending.
    pub pending: usize,
    /// Whether a step is dirty (or a binding problem stops applying).
    pub dirty: bool,
    /// The newest run.
    pub last_run: Option<RunId>,
    /// Its status.
    pub last_status: Option<String>,
    /// Its fleet run, if it was part of one.
    pub fleet_run: Option<RunId>,
    /// Why the member could not be read (unreachable, refused).
    pub error: Option<String>,
}

/// The whole fleet's state.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// Fleet name.
    pub fleet: String,
    /// The newest migration on disk.
    pub latest: Option<String>,
    /// Each member, by name.
    pub members: Vec<MemberRow>,
    /// Members at the newest migration, clean.
    pub at_latest: usize,
    /// Members with pending migrations.
    pub behind: usize,
    /// Members with a dirty step or a binding problem.
    pub dirty: usize,
    /// Members that could not be read.
    pub unreadable: usize,
    /// Servers whose databases could not be listed.
    pub unreachable: Vec<Unreachable>,
}

impl FleetStatus {
    /// Builds the view from each member's status report.
    pub fn new(
        fleet: &str,
        set: &MigrationSet,
        mut reports: Vec<(String, Result<StatusReport, Error>)>,
        unreachable: Vec<Unreachable>,
    ) -> FleetStatus {
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        let members: Vec<MemberRow> = reports.into_iter().map(|(name, r)| row(name, r)).collect();
        let count = |f: &dyn Fn(&MemberRow) -> bool| members.iter().filter(|m| f(m)).count();
        FleetStatus {
            fleet: fleet.to_owned(),
            latest: set.migrations.last().map(|m| m.version.clone()),
            at_latest: count(&|m| m.error.is_none() && m.pending == 0 && !m.dirty),
            behind: count(&|m| m.error.is_none() && m.pending > 0),
            dirty: count(&|m| m.error.is_none() && m.dirty),
            unreadable: count(&|m| m.error.is_some()),
            members,
            unreachable,
        }
    }

    /// `397 at 2026..., 2 behind, 1 dirty`.
    pub fn totals(&self) -> String {
        let mut parts = vec![format!(
            "{} at {}",
            self.at_latest,
            self.latest.as_deref().unwrap_or("(no migrations)")
        )];
        for (n, what) in [
            (self.behind, "behind"),
            (self.dirty, "dirty"),
            (self.unreadable, "unreadable"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if !self.unreachable.is_empty() {
            parts.push(format!("{} server(s) unreachable", self.unreachable.len()));
        }
        parts.join(", ")
    }
}

fn row(member: String, report: Result<StatusReport, Error>) -> MemberRow {
    match report {
        Ok(r) => {
            let last = r.last_runs.first();
            MemberRow {
                member,
                version: r
                    .migrations
                    .iter()
                    .filter(|m| m.state == "applied")
                    .map(|m| m.version.clone())
                    .max(),
                pending: r.pending(),
                dirty: !r.dirty.is_empty() || r.binding_problem.is_some(),
                last_run: last.map(|run| run.id.clone()),
                last_status: last.map(|run| run.status.to_string()),
                fleet_run: last.and_then(|run| run.fleet_run.clone()),
                error: None,
            }
        }
        Err(e) => MemberRow {
            member,
            version: None,
            pending: 0,
            dirty: false,
            last_run: None,
            last_status: None,
            fleet_run: None,
            error: Some(e.to_string()),
        },
    }
}
