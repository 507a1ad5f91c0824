//! The one output model: every step of a command is an [`Event`], rendered by the CLI as
//! human text or JSON Lines, stored in the ledger's `dbsafe_events` and the local journal.
//!
//! JSON Lines format: one object per line with a `type` field (`run.started`,
//! `migration.applied`, ...), the `run_id` when there is one, the time `at` (RFC 3339, UTC)
//! and the fields of that type.

use crate::run::{RunKind, RunStatus};
use crate::run_id::RunId;
use serde::{Deserialize, Serialize};

/// One thing that happened, with the run it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// The run this event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// Who ran the command (git user or $USER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; serialised with a `type` tag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A run began.
    #[serde(rename = "run.started")]
    RunStarted {
        /// What the run does.
        kind: RunKind,
        /// Target name.
        target: String,
        /// Target environment.
        environment: String,
        /// The database URL, password hidden.
        url: String,
        /// Versions this run is about to apply, in order.
        pending: Vec<String>,
        /// The machine it runs on.
        #[serde(default)]
        host: String,
        /// dbsafe's version.
        #[serde(default)]
        tool_version: String,
        /// git commit of the project.
        #[serde(default)]
        git_commit: Option<String>,
        /// Whether the checkout had uncommitted changes.
        #[serde(default)]
        git_dirty: Option<bool>,
        /// The snapshot taken before the run.
        #[serde(default)]
        snapshot_id: Option<String>,
        /// The fleet run this run belongs to (`--fleet`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fleet_run: Option<RunId>,
    },
    /// A preflight check passed with a remark worth reading.
    #[serde(rename = "preflight.warning")]
    PreflightWarning {
        /// What was noticed.
        message: String,
    },
    /// Another process holds the target's lock; waiting for it.
    #[serde(rename = "lock.waiting")]
    LockWaiting {
        /// The run id of the holder, when known.
        holder: Option<RunId>,
    },
    /// The target's lock was taken.
    #[serde(rename = "lock.acquired")]
    LockAcquired {},
    /// A migration is about to run.
    #[serde(rename = "migration.started")]
    MigrationStarted {
        /// Migration version.
        version: String,
        /// Migration directory name.
        name: String,
        /// 1-based position in this run.
        index: usize,
        /// Number of migrations in this run.
        total: usize,
        /// Whether it runs inside one transaction.
        transactional: bool,
    },
    /// A migration hit a lock timeout and will be retried.
    #[serde(rename = "migration.retry")]
    MigrationRetry {
        /// Migration version.
        version: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The server's message.
        message: String,
    },
    /// A migration was applied (and its verify.sql passed).
    #[serde(rename = "migration.applied")]
    MigrationApplied {
        /// Migration version.
        version: String,
        /// Migration directory name.
        name: String,
        /// SHA-256 of up.sql.
        up_checksum: String,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A migration failed.
    #[serde(rename = "migration.failed")]
    MigrationFailed {
        /// Migration version.
        version: String,
        /// Migration directory name.
        name: String,
        /// The server's message.
        error: String,
        /// True when the failure may have left part of the migration behind (non-transactional).
        dirty: bool,
    },
    /// A migration's verify.sql did not hold.
    #[serde(rename = "verify.failed")]
    VerifyFailed {
        /// Migration version.
        version: String,
        /// What failed.
        message: String,
    },
    /// A migration was reverted with its down.sql.
    #[serde(rename = "migration.reverted")]
    MigrationReverted {
        /// Migration version.
        version: String,
        /// Migration directory name.
        name: String,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A rollback run reverted one migration of an earlier run with its down.sql.
    #[serde(rename = "rollback.revert")]
    RollbackRevert {
        /// Migration version.
        version: String,
        /// Migration directory name.
        name: String,
        /// The run that had applied it.
        reverted_run: RunId,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A rollback ran a down.sql that differs from the one recorded when the migration was
    /// applied, accepted with `--allow-edit NAME`.
    #[serde(rename = "rollback.down_edited")]
    RollbackDownEdited {
        /// Migration version.
        version: String,
        /// Migration directory name.
        name: String,
        /// SHA-256 of the down.sql recorded when the migration was applied (`None`: none).
        recorded_checksum: Option<String>,
        /// SHA-256 of the down.sql that runs now.
        checksum: String,
    },
    /// A seed ran at the end of the run.
    #[serde(rename = "seed.applied")]
    SeedApplied {
        /// The seed's name.
        name: String,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// The run finished and everything in it holds.
    #[serde(rename = "run.succeeded")]
    RunSucceeded {
        /// Number of migrations applied.
        applied: usize,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// The run failed; `status` says what dbsafe did about it (`failed`, `reverted`).
    #[serde(rename = "run.failed")]
    RunFailed {
        /// The run's final status.
        status: RunStatus,
        /// What went wrong.
        error: String,
        /// The migrations of the run that stay applied, every one (the human message
        /// names only the first and the last of a long list).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        still_applied: Vec<String>,
    },
    /// The first dbsafe apply on a database that `diesel migration run` had stamped: the
    /// versions it found applied outside dbsafe, now part of the record.
    #[serde(rename = "adopt")]
    Adopt {
        /// The versions in diesel's table when dbsafe first ran.
        versions: Vec<String>,
    },
    /// The target was bound to a new database identity.
    #[serde(rename = "ledger.rebind")]
    LedgerRebind {
        /// Target name.
        target: String,
        /// The identity it was bound to before.
        previous: Option<String>,
        /// The identity it is bound to now.
        identity: String,
        /// Whether dbsafe re-bound it on its own (an unprotected target whose URL now
        /// reaches another database on this machine), not `--rebind`.
        #[serde(default)]
        automatic: bool,
    },
    /// A snapshot was taken.
    #[serde(rename = "snapshot.created")]
    SnapshotCreated {
        /// Snapshot id.
        snapshot_id: String,
        /// Strategy used.
        strategy: String,
        /// Total size of its files in bytes.
        bytes: u64,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A snapshot was restored into the target.
    #[serde(rename = "rollback.restore")]
    SnapshotRestored {
        /// Snapshot id.
        snapshot_id: String,
        /// Runs written back into the ledger from the journal, marked restored.
        rehydrated_runs: Vec<RunId>,
        /// Differences between the restored database and the snapshot's fingerprints (empty: identical).
        differences: Vec<String>,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A restore writes its copy into a staging database beside the target (phase
    /// `staging`), or the copy is complete and checked and about to be swapped in (phase
    /// `swap`): the journal lines from which an interrupted restore is finished or undone.
    #[serde(rename = "restore.swap")]
    RestoreSwap {
        /// The snapshot being restored.
        snapshot_id: String,
        /// `staging` (the copy is being written; journaled before it starts) or `swap`
        /// (checked, about to be swapped in).
        phase: String,
        /// The database names (or files) the swap works with.
        plan: crate::snapshot::SwapPlan,
        /// The command that restores again, should this one be interrupted before the swap.
        retry: String,
    },
    /// A restore's swap ended: `swapped` (the copy is the target now) or `undone` (it
    /// never happened; the target is as it was), `recovered` when a later command found
    /// it interrupted and finished it.
    #[serde(rename = "restore.ended")]
    RestoreEnded {
        /// The snapshot that was being restored.
        snapshot_id: String,
        /// `swapped` or `undone`.
        outcome: String,
        /// True when finished by a later command after an interruption.
        recovered: bool,
    },
    /// An operator recorded a migration's real state (a dirty step, or any version after
    /// drift): `resolve VERSION --as applied|reverted`.
    #[serde(rename = "step.resolved")]
    StepResolved {
        /// Migration version.
        version: String,
        /// What the operator says the state is: `applied` or `reverted`.
        state: String,
        /// Why (`--reason`).
        #[serde(default)]
        reason: Option<String>,
    },
}

impl EventKind {
    /// The `type` name of this event, as in the JSON output.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Receives events as they happen; the CLI renders them, tests collect them.
pub trait EventSink {
    /// Called once per event, in order.
    fn emit(&mut self, event: &Event);
}

/// A sink that drops everything.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&mut self, _event: &Event) {}
}
