//! Reading the ledger: runs, their steps and events, what is dirty, what each version's
//! newest step says, row counts and `dbsafe_meta` facts.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::rows::{RowCountRow, RunRow, StepRow};
use super::schema::*;
use crate::connection::{AnyConnection, Database};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::run::{RunStatus, StepStatus};
use crate::run_id::RunId;
use crate::verify::baseline::RowChange;

/// Reads a `dbsafe_meta` value.
pub fn meta_get(db: &mut Database, key: &str) -> Result<Option<String>> {
    dbsafe_meta::table
        .find(key)
        .select(dbsafe_meta::value)
        .first::<String>(&mut db.conn)
        .optional()
        .map_err(|e| Error::db("reading dbsafe_meta", e))
}

/// The newest runs first, at most `limit`.
pub fn runs(db: &mut Database, limit: i64) -> Result<Vec<RunRow>> {
    dbsafe_runs::table
        .order((dbsafe_runs::started_at.desc(), dbsafe_runs::id.desc()))
        .limit(limit)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

/// How many migration steps each run recorded, by run id (runs without steps are absent).
pub fn step_counts(db: &mut Database) -> Result<BTreeMap<RunId, i64>> {
    let rows: Vec<(RunId, i64)> = dbsafe_steps::table
        .group_by(dbsafe_steps::run_id)
        .select((dbsafe_steps::run_id, diesel::dsl::count_star()))
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))?;
    Ok(rows.into_iter().collect())
}

/// One run by id.
pub fn run(db: &mut Database, id: &RunId) -> Result<Option<RunRow>> {
    dbsafe_runs::table
        .find(id)
        .first(&mut db.conn)
        .optional()
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

/// A run's steps in order.
pub fn steps(db: &mut Database, run_id: &RunId) -> Result<Vec<StepRow>> {
    dbsafe_steps::table
        .filter(dbsafe_steps::run_id.eq(run_id))
        .order(dbsafe_steps::seq)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))
}

/// A run's events in order, as they were emitted.
pub fn events(db: &mut Database, run_id: &RunId) -> Result<Vec<Event>> {
    let payloads: Vec<String> = dbsafe_events::table
        .filter(dbsafe_events::run_id.eq(run_id))
        .order(dbsafe_events::seq)
        .select(dbsafe_events::payload)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_events", e))?;
    Ok(payloads
        .iter()
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect())
}

/// The highest event sequence number of a run (0 when it has none).
pub fn last_event_seq(conn: &mut AnyConnection, run_id: &RunId) -> QueryResult<i32> {
    dbsafe_events::table
        .filter(dbsafe_events::run_id.eq(run_id))
        .select(diesel::dsl::max(dbsafe_events::seq))
        .first::<Option<i32>>(conn)
        .map(|seq| seq.unwrap_or(0))
}

/// Steps left `started` by a non-transactional migration that never finished: each makes
/// the target dirty. Versions the layout's own table marks dirty (sqlx's `success =
/// false`) without such a step come after, as [`layout_dirty_steps`] describes them.
pub fn dirty_steps(db: &mut Database) -> Result<Vec<StepRow>> {
    let mut steps = started_steps(db)?;
    layout_dirty_steps(db, &mut steps)?;
    Ok(steps)
}

/// Adds to `steps` a `started` row for each version the layout's own history table marks
/// dirty (sqlx's `success = false`, left by sqlx or by dbsafe on MySQL) that `steps` lacks.
pub fn layout_dirty_steps(db: &mut Database, steps: &mut Vec<StepRow>) -> Result<()> {
    for version in crate::layout::dirty_versions(db)? {
        if steps.iter().any(|s| s.version == version) {
            continue;
        }
        steps.push(StepRow {
            run_id: RunId::sqlx_history(),
            seq: 0,
            name: version.clone(),
            version,
            direction: crate::run::Direction::Up,
            status: StepStatus::Started,
            transactional: false,
            up_checksum: String::new(),
            down_checksum: None,
            started_at: crate::run::now(),
            finished_at: None,
            duration_ms: None,
            attempts: 1,
            error: Some(
                "_sqlx_migrations records it with success = false, sqlx's dirty state".into(),
            ),
        });
    }
    Ok(())
}

fn started_steps(db: &mut Database) -> Result<Vec<StepRow>> {
    dbsafe_steps::table
        .filter(dbsafe_steps::status.eq(StepStatus::Started.as_str()))
        // Not of a run rewound by a snapshot restore: its record is kept as it was, but
        // its steps describe a past the database no longer has.
        .filter(
            dbsafe_steps::run_id.eq_any(
                dbsafe_runs::table
                    .filter(dbsafe_runs::restored_by.is_null())
                    .select(dbsafe_runs::id),
            ),
        )
        .order((dbsafe_steps::run_id, dbsafe_steps::seq))
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))
}

/// For each version, the newest step that applied or reverted it: what dbsafe believes
/// about it, with the checksums recorded then.
pub fn latest_steps(db: &mut Database) -> Result<BTreeMap<String, StepRow>> {
    let rows: Vec<StepRow> = dbsafe_steps::table
        .filter(
            dbsafe_steps::status
                .eq_any([StepStatus::Applied.as_str(), StepStatus::Reverted.as_str()]),
        )
        // Not of a run rewound by a snapshot restore: its record is kept as it was, but
        // its steps describe a past the database no longer has.
        .filter(
            dbsafe_steps::run_id.eq_any(
                dbsafe_runs::table
                    .filter(dbsafe_runs::restored_by.is_null())
                    .select(dbsafe_runs::id),
            ),
        )
        // By time first: run ids sort by time only to the second (their suffix is random),
        // and runs never overlap (the target lock), so step start times order them.
        .order((
            dbsafe_steps::started_at,
            dbsafe_steps::run_id,
            dbsafe_steps::seq,
        ))
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))?;
    Ok(rows
        .into_iter()
        .map(|row| (row.version.clone(), row))
        .collect())
}

/// Runs left `running` by a process that no longer holds the lock.
pub fn running_runs(db: &mut Database) -> Result<Vec<RunId>> {
    dbsafe_runs::table
        .filter(dbsafe_runs::status.eq(RunStatus::Running))
        .select(dbsafe_runs::id)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

pub(super) fn row_count_rows(db: &mut Database, run_id: &RunId) -> Result<Vec<RowCountRow>> {
    if !db
        .table_exists("dbsafe_row_counts")
        .map_err(|e| Error::db("reading dbsafe_row_counts", e))?
    {
        return Ok(Vec::new());
    }
    dbsafe_row_counts::table
        .filter(dbsafe_row_counts::run_id.eq(run_id))
        .order(dbsafe_row_counts::table_name)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_row_counts", e))
}

/// The row counts a run changed, by table (empty for a ledger older than version 3).
pub fn row_counts(db: &mut Database, run_id: &RunId) -> Result<Vec<RowChange>> {
    Ok(row_count_rows(db, run_id)?
        .into_iter()
        .map(|r| RowChange {
            table: r.table_name,
            before: r.rows_before.map(|n| n.max(0) as u64),
            after: r.rows_after.map(|n| n.max(0) as u64),
            estimated: r.estimated,
        })
        .collect())
}

/// The applied versions, sorted, from the project's layout's history table (diesel's
/// `__diesel_schema_migrations`, sqlx's `_sqlx_migrations`, or this ledger for plain SQL
/// files); empty when it does not exist. Kept under its old name for callers.
pub fn diesel_applied(db: &mut Database) -> Result<Vec<String>> {
    crate::layout::applied(db)
}
