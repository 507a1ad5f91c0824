//! Fleets: a named set of targets (`[fleets.NAME]`) applied, verified, rolled back as one
//! fleet run. Each member's own run (apply, rollback) is recorded in its own ledger with a
//! link to the fleet run; the fleet journal records the fleet run's start, each member's
//! outcome and its end. Everything a member does goes through the per-target functions
//! (`apply`, `rollback`, `verify`, `status`, `plan`) on worker threads.

pub mod ci;
pub mod journal;
pub mod members;
pub mod ops;
pub mod schedule;
pub mod views;

use serde::Serialize;

pub use members::{Member, Members, Partition, Unreachable};
pub use ops::{FleetRequest, apply, plan, rollback, status, verify};
pub use schedule::{MemberOutcome, MemberStatus, Progress};

use crate::error::{Error, Result};
use crate::run_id::RunId;

/// What a fleet command did: one outcome per member, and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The fleet run id (apply and rollback), `None` for views (`""` in JSON).
    #[serde(serialize_with = "crate::run_id::serialize_or_empty")]
    pub fleet_run: Option<RunId>,
    /// The fleet's name.
    pub fleet: String,
    /// `apply`, `rollback`, `verify`.
    pub command: String,
    /// This job's share (`K/N`), when partitioned.
    pub partition: Option<String>,
    /// Each member, in member order.
    pub members: Vec<MemberOutcome>,
    /// Servers whose databases could not be listed.
    pub unreachable: Vec<Unreachable>,
}

impl FleetReport {
    /// How many members ended with `status`.
    pub fn count(&self, status: MemberStatus) -> usize {
        self.members.iter().filter(|m| m.status == status).count()
    }

    /// `5 succeeded, 1 failed, 2 skipped` (statuses that occur, in a fixed order).
    pub fn totals(&self) -> String {
        let mut parts: Vec<String> = [
            MemberStatus::Succeeded,
            MemberStatus::UpToDate,
            MemberStatus::Failed,
            MemberStatus::Refused,
            MemberStatus::Unreachable,
            MemberStatus::NeedsAttention,
            MemberStatus::Skipped,
        ]
        .into_iter()
        .filter(|s| self.count(*s) > 0)
        .map(|s| format!("{} {}", self.count(s), s.as_str()))
        .collect();
        if !self.unreachable.is_empty() {
            parts.push(format!("{} server(s) unreachable", self.unreachable.len()));
        }
        if parts.is_empty() {
            "no members".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Ok when every member succeeded (or had nothing to do); otherwise the error whose exit
    /// code fits the worst member: 4 needs attention, 3 refused, else 1.
    pub fn result(&self) -> Result<()> {
        let failures = self
            .members
            .iter()
            .filter(|m| m.status.is_failure())
            .count();
        if failures == 0 && self.unreachable.is_empty() {
            return Ok(());
        }
        let what = format!(
            "fleet `{}`{}: {}{}",
            self.fleet,
            self.fleet_run
                .as_ref()
                .map(|run| format!(" run {run}"))
                .unwrap_or_default(),
            self.totals(),
            if self.fleet_run.is_none() || self.command != "apply" {
                String::new()
            } else {
                "; run the same command again to resume (members at the target version are skipped, the others retried)".to_owned()
            }
        );
        Err(if self.count(MemberStatus::NeedsAttention) > 0 {
            Error::Attention(what)
        } else if self.count(MemberStatus::Refused) > 0 {
            crate::error::Reason::MemberRefused.refuse(what)
        } else {
            Error::Failed(what)
        })
    }
}
