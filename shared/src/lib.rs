//! dbsafe's core: safe, recorded diesel migrations.
//!
//! The engine (every module but `cli`) never prints and never exits: it returns values and
//! emits [`event::Event`]s; the thin `cargo-*` binaries render them.

pub mod config;
