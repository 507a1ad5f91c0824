//! dbsafe's own tables in the target (`dbsafe_meta`, `dbsafe_runs`, `dbsafe_steps`,
//! `dbsafe_events`), created on first use with their own schema version, beside diesel's
//! `__diesel_schema_migrations`, which stays the source of truth for what is applied.
//! Its schema and upgrades are in `ddl.rs`, its rows and their writing in `rows.rs`, what
//! is read back in `queries.rs`.

mod ddl;
mod queries;
mod rows;
pub mod schema;

pub use ddl::{ensure, ensure_with, exists};
pub use queries::*;
pub use rows::*;
pub use schema::*;

/// The version of the ledger's own schema; later releases upgrade older ledgers in [`ensure`].
/// Version 2 added `dbsafe_runs.restored_by`; version 3 the table `dbsafe_row_counts`;
/// version 4 `dbsafe_runs.fleet_run`.
pub const LEDGER_SCHEMA_VERSION: i64 = 4;
