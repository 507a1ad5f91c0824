//! dbsafe's core: safe, recorded diesel migrations.
//!
//! The engine (every module but `cli`) never prints and never exits: it returns values and
//! emits [`event::Event`]s; the thin `cargo-*` binaries render them.

pub mod apply;
pub mod check;
pub mod cli;
pub mod config;
pub mod connection;
pub mod dialect;
pub mod error;
pub mod event;
pub mod fleet;
pub mod identity;
pub mod init;
pub mod inspect;
pub mod interrupt;
pub mod journal;
pub mod layout;
pub mod ledger;
pub mod lint_rules;
pub mod lock;
pub mod migrations;
pub mod pause;
pub mod plan;
pub mod pooler;
pub mod preflight;
pub mod print_schema;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod resolve;
pub mod restore;
pub mod rollback;
pub mod roundtrip;
pub mod run;
pub mod run_id;
pub mod runs;
pub mod seed;
pub mod session;
pub mod setup;
pub mod snapshot;
pub mod sql_text;
pub mod status;
pub mod step;
pub mod target;
pub mod verify;

pub use error::{Error, Result, Severity};
