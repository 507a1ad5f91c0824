//! Replacing a target by a restored copy without ever emptying it first: the snapshot is
//! restored into a staging database beside the target, checked there, and swapped in by
//! name in one step (PostgreSQL `ALTER DATABASE ... RENAME` in one transaction, MariaDB one
//! `RENAME TABLE` of every table, SQLite a synced file renamed over the old one). Until the
//! swap commits the target is exactly as it was; after it, the replaced database is dropped
//! (or kept, `[snapshot] keep-replaced`). An interrupted swap is finished or undone from the
//! journal by [`recover`]. Each backend's way is in its file; the backend's
//! [`crate::dialect::Dialect`] picks it.

pub(crate) mod mysql;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use serde::{Deserialize, Serialize};

use super::Scratch;
use crate::connection::Database;
use crate::error::Result;
use crate::run_id::RunId;
use crate::target::DatabaseUrl;

/// The names a swap works with, journaled before it starts so that an interrupted swap
/// can be finished or undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPlan {
    /// The database (SQLite: the file) holding the restored copy.
    pub staging: String,
    /// The name the target's current database (or tables, or file) gets once swapped out.
    pub replaced: String,
    /// MariaDB: the routines, views and triggers of the copy, written for the target, to
    /// create there after the tables moved (they cannot move between databases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recreate: Vec<String>,
    /// MariaDB: the target's own routines, views and triggers, to put back if the swap is
    /// interrupted before its tables moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub original: Vec<String>,
}

/// A restored copy of a snapshot beside the target, dropped unless swapped in.
pub struct Staging {
    scratch: Scratch,
    target: DatabaseUrl,
}

impl Staging {
    /// A new empty database beside `target` (same owner, encoding and settings on
    /// PostgreSQL; same character set on MariaDB; a file in the same directory on SQLite).
    pub fn create(target: &DatabaseUrl, run_id: &RunId) -> Result<Staging> {
        let scratch = Scratch::beside(target, run_id.as_str())?;
        target
            .backend()
            .dialect()
            .prepare_staging(target, &scratch.url().database_name())?;
        Ok(Staging {
            scratch,
            target: target.clone(),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &DatabaseUrl {
        self.scratch.url()
    }

    /// The names the swap will use (and on MariaDB the target's own routines, views and
    /// triggers), to be journaled before the copy is written.
    pub fn plan(&self, run_id: &RunId) -> Result<SwapPlan> {
        self.target
            .backend()
            .dialect()
            .swap_plan(&self.target, self.scratch.name(), run_id)
    }

    /// Adds to `plan` what the written copy needs after the swap (MariaDB: its routines,
    /// views and triggers, written for the target), to be journaled before [`Staging::swap`].
    pub fn complete(&self, plan: &mut SwapPlan) -> Result<()> {
        self.target
            .backend()
            .dialect()
            .complete_swap_plan(&self.target, self.url(), plan)
    }

    /// Swaps the copy in for the target. `db` is the caller's session on the target: on
    /// PostgreSQL it is closed for the rename and reopened on the new database (the caller
    /// takes its lock again); elsewhere it stays open. The replaced database is dropped
    /// unless `keep_replaced`.
    pub fn swap(self, db: &mut Database, plan: &SwapPlan, keep_replaced: bool) -> Result<()> {
        let Staging { scratch, target } = self;
        target
            .backend()
            .dialect()
            .swap(db, &target, scratch, plan, keep_replaced)
    }
}

/// What [`recover`] found and did about an interrupted swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The swap had committed: the copy is the target; what was left was tidied up.
    Swapped,
    /// The swap never happened: the target is as it was; the copy was discarded.
    Undone,
}

/// Finishes or undoes a swap that was interrupted (the process killed) after `plan` was
/// journaled, from what is on the server now.
pub fn recover(target: &DatabaseUrl, plan: &SwapPlan, keep_replaced: bool) -> Result<Recovered> {
    target
        .backend()
        .dialect()
        .recover_swap(target, plan, keep_replaced)
}

/// Drops what is left of a copy whose swap never began (the process was killed while
/// writing it): the target was never touched.
pub fn discard(target: &DatabaseUrl, plan: &SwapPlan) -> Result<()> {
    target
        .backend()
        .dialect()
        .drop_database(target, &plan.staging)
}
