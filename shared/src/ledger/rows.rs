//! The ledger's rows and how they are written: runs, steps, events, row counts and
//! `dbsafe_meta` facts; a migration's step and event rows as one batch of SQL.

use diesel::prelude::*;
use serde::Serialize;

use super::ddl::ensure_row_counts_table;
use super::queries::{row_count_rows, runs, steps};
use super::schema::*;
use crate::connection::{AnyConnection, Database};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::run::{Direction, RunKind, RunStatus, StepStatus};
use crate::run_id::RunId;
use crate::target::Backend;
use crate::verify::baseline::RowChange;

/// A run as stored in `dbsafe_runs`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable, Serialize)]
#[diesel(table_name = dbsafe_runs)]
pub struct RunRow {
    /// Run id.
    pub id: RunId,
    /// What the run did.
    pub kind: RunKind,
    /// Target name.
    pub target: String,
    /// Target environment.
    pub environment: String,
    /// Who ran it.
    pub operator: String,
    /// Where.
    pub host: String,
    /// dbsafe's version.
    pub tool_version: String,
    /// git commit of the project.
    pub git_commit: Option<String>,
    /// Whether the checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// Where the run stands.
    pub status: RunStatus,
    /// The snapshot taken before the run.
    pub snapshot_id: Option<String>,
    /// SHA-256 over the ordered checksums of what it applied.
    pub bundle_hash: Option<String>,
    /// The error, if any.
    pub error: Option<String>,
    /// For a rollback, the run it undid.
    pub parent_run: Option<RunId>,
    /// The run whose snapshot restore rewound this one's changes (its record was written
    /// back as it was, with this link).
    pub restored_by: Option<RunId>,
    /// The fleet run this run is a member's share of (`apply --fleet`), if any.
    pub fleet_run: Option<RunId>,
}

/// A step as stored in `dbsafe_steps`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable, Serialize)]
#[diesel(table_name = dbsafe_steps)]
pub struct StepRow {
    /// The run.
    pub run_id: RunId,
    /// Order within the run.
    pub seq: i32,
    /// Migration version.
    pub version: String,
    /// Migration directory name.
    pub name: String,
    /// Which way the migration ran.
    pub direction: Direction,
    /// Where the step stands.
    pub status: StepStatus,
    /// Whether it ran in one transaction.
    pub transactional: bool,
    /// SHA-256 of up.sql.
    pub up_checksum: String,
    /// SHA-256 of down.sql.
    pub down_checksum: Option<String>,
    /// Start.
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Wall time.
    pub duration_ms: Option<i64>,
    /// Tries (lock timeouts are retried).
    pub attempts: i32,
    /// The error, if any.
    pub error: Option<String>,
}

/// A row of `dbsafe_row_counts`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = dbsafe_row_counts)]
pub(super) struct RowCountRow {
    pub(super) run_id: RunId,
    pub(super) table_name: String,
    pub(super) rows_before: Option<i64>,
    pub(super) rows_after: Option<i64>,
    pub(super) estimated: bool,
}

/// An event row as stored in `dbsafe_events`, copied as it is.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = dbsafe_events)]
pub struct EventRow {
    /// The run.
    pub run_id: RunId,
    /// Order within the run.
    pub seq: i32,
    /// The event's `type`.
    pub event_type: String,
    /// When.
    pub at: String,
    /// Who.
    pub operator: Option<String>,
    /// The whole event, JSON.
    pub payload: String,
}

/// Inserts a run row.
pub fn insert_run(conn: &mut AnyConnection, run: &RunRow) -> QueryResult<()> {
    diesel::insert_into(dbsafe_runs::table)
        .values(run)
        .execute(conn)
        .map(|_| ())
}

/// Sets a run's final status.
pub fn finish_run(
    conn: &mut AnyConnection,
    id: &RunId,
    status: RunStatus,
    finished_at: &str,
    bundle_hash: Option<&str>,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::update(dbsafe_runs::table.find(id))
        .set((
            dbsafe_runs::status.eq(status.as_str()),
            dbsafe_runs::finished_at.eq(finished_at),
            dbsafe_runs::bundle_hash.eq(bundle_hash),
            dbsafe_runs::error.eq(error),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Marks runs left `running` (found by [`running_runs`] while holding the lock, so no
/// process runs them any more) as failed, interrupted. Returns their ids.
pub fn mark_interrupted(db: &mut Database, ids: &[RunId]) -> Result<Vec<RunId>> {
    for id in ids {
        finish_run(
            &mut db.conn,
            id,
            RunStatus::Failed,
            &crate::run::now(),
            None,
            Some("interrupted: the process stopped before the run finished"),
        )
        .map_err(|e| Error::db("writing dbsafe_runs", e))?;
    }
    Ok(ids.to_vec())
}

/// Inserts a step row.
pub fn insert_step(conn: &mut AnyConnection, step: &StepRow) -> QueryResult<()> {
    diesel::insert_into(dbsafe_steps::table)
        .values(step)
        .execute(conn)
        .map(|_| ())
}

/// Updates a step's outcome.
pub fn finish_step(conn: &mut AnyConnection, step: &StepRow) -> QueryResult<()> {
    diesel::update(dbsafe_steps::table.find((&step.run_id, step.seq)))
        .set((
            dbsafe_steps::status.eq(&step.status),
            dbsafe_steps::finished_at.eq(&step.finished_at),
            dbsafe_steps::duration_ms.eq(step.duration_ms),
            dbsafe_steps::attempts.eq(step.attempts),
            dbsafe_steps::error.eq(&step.error),
        ))
        .execute(conn)
        .map(|_| ())
}

/// One batch writing a step row and event rows: a single round trip where separate
/// inserts would take one each, inside the migration's transaction. PostgreSQL and SQLite
/// only (their migrations run in transactions); MySQL uses [`insert_step`] and
/// [`insert_event`].
pub fn step_and_events_sql(backend: Backend, step: &StepRow, events: &[(i32, &Event)]) -> String {
    let dialect = backend.dialect();
    let mut sql = format!(
        "INSERT INTO dbsafe_steps (run_id, seq, version, name, direction, status, transactional, up_checksum, down_checksum, started_at, finished_at, duration_ms, attempts, error) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});\n",
        dialect.literal(step.run_id.as_str()),
        step.seq,
        dialect.literal(&step.version),
        dialect.literal(&step.name),
        dialect.literal(step.direction.as_str()),
        dialect.literal(step.status.as_str()),
        dialect.bool_literal(step.transactional),
        dialect.literal(&step.up_checksum),
        dialect.literal_or_null(step.down_checksum.as_deref()),
        dialect.literal(&step.started_at),
        dialect.literal_or_null(step.finished_at.as_deref()),
        step.duration_ms
            .map_or_else(|| "NULL".to_owned(), |d| d.to_string()),
        step.attempts,
        dialect.literal_or_null(step.error.as_deref()),
    );
    // The events in one statement: one insert for the server to plan and run, not one each.
    let rows: Vec<String> = events
        .iter()
        .map(|(seq, event)| {
            format!(
                "({}, {seq}, {}, {}, {}, {})",
                dialect.literal(event.run_id.as_ref().map_or("", RunId::as_str)),
                dialect.literal(&event.kind.type_name()),
                dialect.literal(&event.at),
                dialect.literal_or_null(event.operator.as_deref()),
                dialect.literal(&serde_json::to_string(event).unwrap_or_default()),
            )
        })
        .collect();
    if !rows.is_empty() {
        sql.push_str(&format!(
            "INSERT INTO dbsafe_events (run_id, seq, event_type, at, operator, payload) VALUES {};\n",
            rows.join(", ")
        ));
    }
    sql
}

/// Appends an event.
pub fn insert_event(conn: &mut AnyConnection, seq: i32, event: &Event) -> QueryResult<()> {
    let payload = serde_json::to_string(event).unwrap_or_default();
    diesel::insert_into(dbsafe_events::table)
        .values((
            dbsafe_events::run_id.eq(event.run_id.as_ref().map_or("", RunId::as_str)),
            dbsafe_events::seq.eq(seq),
            dbsafe_events::event_type.eq(event.kind.type_name()),
            dbsafe_events::at.eq(&event.at),
            dbsafe_events::operator.eq(&event.operator),
            dbsafe_events::payload.eq(payload),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Records the row counts a run changed.
pub fn insert_row_counts(db: &mut Database, run_id: &RunId, changes: &[RowChange]) -> Result<()> {
    let rows: Vec<RowCountRow> = changes
        .iter()
        .map(|c| RowCountRow {
            run_id: run_id.clone(),
            table_name: c.table.clone(),
            rows_before: c.before.map(|n| n as i64),
            rows_after: c.after.map(|n| n as i64),
            estimated: c.estimated,
        })
        .collect();
    write_row_counts(&mut db.conn, &rows).map_err(|e| Error::db("writing dbsafe_row_counts", e))
}

fn write_row_counts(conn: &mut AnyConnection, rows: &[RowCountRow]) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    let dialect = conn.backend().dialect();
    let number = |n: Option<i64>| n.map_or_else(|| "NULL".to_owned(), |n| n.to_string());
    // Many rows per INSERT: one round trip per few hundred tables, not one per table.
    for chunk in rows.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                format!(
                    "({}, {}, {}, {}, {})",
                    dialect.literal(row.run_id.as_str()),
                    dialect.literal(&row.table_name),
                    number(row.rows_before),
                    number(row.rows_after),
                    dialect.bool_literal(row.estimated)
                )
            })
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO dbsafe_row_counts (run_id, table_name, rows_before, rows_after, estimated) VALUES {}",
            values.join(", ")
        ))?;
    }
    Ok(())
}

/// Writes `dbsafe_meta` values, in one statement.
pub fn meta_set(db: &mut Database, values: &[(&str, String)]) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let dialect = db.dialect();
    let rows: Vec<String> = values
        .iter()
        .map(|(name, value)| format!("({}, {})", dialect.literal(name), dialect.literal(value)))
        .collect();
    let sql = dialect.upsert_sql("dbsafe_meta", &rows.join(", "));
    db.execute(&sql)
        .map_err(|e| Error::db("writing dbsafe_meta", e))
}

/// Copies runs of `from`'s ledger into `to`'s exactly as they are (run row, steps,
/// events), each linked to the run `restored_by`; the runs `to` already has, and those in
/// `skip`, are left out. Returns the ids copied, oldest first.
pub fn copy_runs(
    from: &mut Database,
    to: &mut Database,
    skip: &[RunId],
    restored_by: &RunId,
) -> Result<Vec<RunId>> {
    let have: std::collections::BTreeSet<RunId> =
        runs(to, i64::MAX)?.into_iter().map(|r| r.id).collect();
    let mut copied = Vec::new();
    let mut wanted = runs(from, i64::MAX)?;
    wanted.reverse();
    for mut run in wanted {
        if have.contains(&run.id) || skip.contains(&run.id) {
            continue;
        }
        let steps = steps(from, &run.id)?;
        let events: Vec<EventRow> = dbsafe_events::table
            .filter(dbsafe_events::run_id.eq(&run.id))
            .order(dbsafe_events::seq)
            .load(&mut from.conn)
            .map_err(|e| Error::db("reading dbsafe_events", e))?;
        run.restored_by = Some(restored_by.clone());
        let counts = row_count_rows(from, &run.id)?;
        if !counts.is_empty() {
            ensure_row_counts_table(to)?;
        }
        to.conn
            .transaction(|conn| {
                insert_run(conn, &run)?;
                for step in &steps {
                    insert_step(conn, step)?;
                }
                for event in &events {
                    diesel::insert_into(dbsafe_events::table)
                        .values(event)
                        .execute(conn)?;
                }
                write_row_counts(conn, &counts)?;
                Ok::<_, diesel::result::Error>(())
            })
            .map_err(|e| Error::db("writing the rewound runs into the restored ledger", e))?;
        copied.push(run.id);
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::event::EventKind;
    use crate::ledger::ddl::ddl;

    #[test]
    fn batched_rows_read_back_exactly_with_quotes_and_backslashes() {
        let mut conn =
            AnyConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
        for statement in ddl(Backend::Sqlite.dialect()) {
            conn.batch_execute(&statement).unwrap();
        }
        let run_id: RunId = "20261121T153012Z-7f3a".parse().unwrap();
        let tricky = r#"it's a "name" with \ and \' and ''"#;
        let step = StepRow {
            run_id: run_id.clone(),
            seq: 1,
            version: "1".into(),
            name: tricky.into(),
            direction: Direction::Up,
            status: StepStatus::Applied,
            transactional: true,
            up_checksum: "abc".into(),
            down_checksum: None,
            started_at: "t".into(),
            finished_at: Some("t2".into()),
            duration_ms: Some(5),
            attempts: 1,
            error: None,
        };
        let event = Event {
            run_id: Some(run_id),
            at: "t".into(),
            operator: Some(tricky.into()),
            kind: EventKind::PreflightWarning {
                message: tricky.into(),
            },
        };
        conn.batch_execute(&step_and_events_sql(Backend::Sqlite, &step, &[(1, &event)]))
            .unwrap();
        let rows: Vec<StepRow> = dbsafe_steps::table.load(&mut conn).unwrap();
        assert_eq!(rows, vec![step]);
        let payload: String = dbsafe_events::table
            .select(dbsafe_events::payload)
            .first(&mut conn)
            .unwrap();
        assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), event);
        assert_eq!(
            Backend::Postgres.dialect().literal(tricky),
            r#"E'it''s a "name" with \\ and \\'' and '''''"#
        );
    }
}
