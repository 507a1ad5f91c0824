//! dbsafe's own tables in the target (`dbsafe_meta`, `dbsafe_runs`, `dbsafe_steps`,
//! `dbsafe_events`), created on first use with their own schema version, beside diesel's
//! `__diesel_schema_migrations`, which stays the source of truth for what is applied.
//! Its schema and upgrades are in `ddl.rs`, its rows and their writing in `rows.rs`, what
//! is read back in `queries.rs`.

mod ddl;
mod queries;
mod rows;
pub mod schema;

pub use ddl::{ensure, exists};
pub use queries::*;
pub use rows::*;
pub use schema::*;

/// The version of the ledger's own schema; later releases upgrade older ledgers in [`ensure`].
/// Version 2 added `dbsafe_runs.restored_by`; version 3 the table `dbsafe_row_counts`;
/// version 4 `dbsafe_runs.fleet_run`.
pub const LEDGER_SCHEMA_VERSION: i64 = 4;

/// Step statuses.
pub mod step_status {
    /// A non-transactional step began and has not finished: the target is dirty.
    pub const STARTED: &str = "started";
    /// Applied.
    pub const APPLIED: &str = "applied";
    /// Reverted with down.sql.
    pub const REVERTED: &str = "reverted";
    /// Failed and left nothing behind.
    pub const FAILED: &str = "failed";
}

/// Run statuses.
pub mod run_status {
    /// In progress (or interrupted, when no process holds the lock).
    pub const RUNNING: &str = "running";
    /// Finished, everything holds.
    pub const SUCCEEDED: &str = "succeeded";
    /// Failed; what committed stays.
    pub const FAILED: &str = "failed";
    /// Failed, and its migrations were reverted.
    pub const REVERTED: &str = "reverted";
    /// Rewound by a snapshot restore.
    pub const RESTORED: &str = "restored";
}
