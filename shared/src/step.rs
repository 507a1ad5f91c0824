//! One migration run up or down as a recorded step of a run: whether it can be one
//! transaction, its ledger row, its timeouts, its verify.sql, and reverting it.

use std::time::Instant;

use diesel::Connection;
use diesel::connection::SimpleConnection;

use crate::config::ApplyConfig;
use crate::connection::{self, AnyConnection, Database};
use crate::event::{Event, EventKind};
use crate::layout::Harness;
use crate::ledger::{self, StepRow, step_status};
use crate::migrations::Migration;
use crate::recorder::Recorder;
use crate::run::now;
use crate::target::Backend;

/// Whether a migration's statements and its ledger rows commit as one transaction.
/// MySQL/MariaDB DDL commits implicitly, so there it never is.
pub fn is_transactional(backend: Backend, migration: &Migration) -> bool {
    migration.run_in_transaction && backend != Backend::Mysql
}

/// What can go wrong inside a migration's transaction.
#[derive(Debug)]
pub enum StepError {
    /// The database refused a statement.
    Database(diesel::result::Error),
    /// up.sql or down.sql failed.
    Migration(String),
    /// verify.sql did not hold.
    Verify(String),
}

impl From<diesel::result::Error> for StepError {
    fn from(e: diesel::result::Error) -> Self {
        StepError::Database(e)
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Database(e) => write!(f, "{e}"),
            StepError::Migration(m) => f.write_str(m),
            StepError::Verify(m) => write!(f, "verify.sql failed: {m}"),
        }
    }
}

/// Whether a server message is a lock timeout (worth a retry).
pub fn is_lock_timeout(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("lock timeout")
        || m.contains("lock wait timeout")
        || m.contains("database is locked")
}

/// A step row for `migration` in the recorder's run.
pub fn new_step(
    recorder: &Recorder<'_>,
    migration: &Migration,
    seq: i32,
    transactional: bool,
    status: &str,
) -> StepRow {
    StepRow {
        run_id: recorder.context.id.clone(),
        seq,
        version: migration.version.clone(),
        name: migration.name.clone(),
        direction: "up".into(),
        status: status.into(),
        transactional,
        up_checksum: migration.up_checksum.clone(),
        down_checksum: migration.down_checksum.clone(),
        started_at: now(),
        finished_at: None,
        duration_ms: None,
        attempts: 1,
        error: None,
    }
}

/// Per-migration lock and statement timeouts: `SET LOCAL` inside the migration's
/// transaction on PostgreSQL (safe behind PgBouncer), session settings elsewhere (undone by
/// [`reset_timeouts`]).
pub fn set_timeouts(
    conn: &mut AnyConnection,
    backend: Backend,
    config: &ApplyConfig,
    in_transaction: bool,
) -> diesel::QueryResult<()> {
    conn.batch_execute(&timeouts_sql(backend, config, in_transaction))
}

/// The statements that set a migration's timeouts (see [`set_timeouts`]).
pub fn timeouts_sql(backend: Backend, config: &ApplyConfig, in_transaction: bool) -> String {
    let lock_ms = config.lock_timeout.as_millis();
    let statement_ms = config.statement_timeout.map_or(0, |d| d.as_millis());
    match backend {
        Backend::Postgres => {
            let scope = if in_transaction { "LOCAL" } else { "SESSION" };
            format!(
                "SET {scope} lock_timeout = {lock_ms}; SET {scope} statement_timeout = {statement_ms}"
            )
        }
        // MariaDB alone reads the `/*M! ... */` part: its statement timeout, in seconds.
        Backend::Mysql => {
            let seconds = config.lock_timeout.as_secs().max(1);
            format!(
                "SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds} /*M!, max_statement_time = {:.3} */",
                statement_ms as f64 / 1000.0
            )
        }
        Backend::Sqlite => format!("PRAGMA busy_timeout = {lock_ms}"),
    }
}

/// Undoes session-level timeouts (PostgreSQL outside a transaction, MySQL always, SQLite's
/// `PRAGMA busy_timeout`, which holds for the whole connection): the session's defaults again.
pub fn reset_timeouts(conn: &mut AnyConnection, backend: Backend) {
    let _ = match backend {
        Backend::Postgres => conn.batch_execute("RESET lock_timeout; RESET statement_timeout"),
        Backend::Sqlite => conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}",
            connection::SQLITE_BUSY_TIMEOUT_MS
        )),
        Backend::Mysql => conn.batch_execute(
            "SET SESSION lock_wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT /*M!, max_statement_time = DEFAULT */",
        ),
    };
}

/// Runs a migration's verify.sql: one query returning one column; every row must be true.
pub fn run_verify(
    conn: &mut AnyConnection,
    backend: Backend,
    migration: &Migration,
) -> Result<(), StepError> {
    let Some(sql) = &migration.verify_sql else {
        return Ok(());
    };
    let file = migration.dir.join("verify.sql");
    let query = crate::verify::subquery(sql, backend)
        .map_err(|e| StepError::Verify(format!("{}: {e}", file.display())))?;
    let false_rows = match backend {
        Backend::Postgres => format!(
            "WITH dbsafe_verify(ok) AS ({query}) SELECT count(*) AS v FROM dbsafe_verify WHERE ok IS NOT TRUE"
        ),
        _ => format!(
            "WITH dbsafe_verify(ok) AS ({query}) SELECT count(*) AS v FROM dbsafe_verify WHERE NOT COALESCE(ok, 0)"
        ),
    };
    match connection::integer(conn, &false_rows) {
        Ok(0) => Ok(()),
        Ok(n) => Err(StepError::Verify(format!(
            "{n} row(s) of {} are not true",
            file.display()
        ))),
        Err(e) => Err(StepError::Verify(format!("{}: {e}", file.display()))),
    }
}

/// Builds the event that records one reverted migration (`migration.reverted` for an
/// apply's failure policy, `rollback.revert` for a rollback run).
pub type RevertedEvent<'e> = dyn Fn(String, String, u64) -> EventKind + 'e;

/// Reverts one migration with its down.sql as step `seq` of the recorder's run: in one
/// transaction with its ledger rows where the backend allows, else `started` before and
/// `reverted` after; with the migration's lock and statement timeouts, a lock timeout
/// retried as apply does. The error names the migration and, when part of it may have
/// run, says the target is dirty.
pub fn revert_one(
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    config: &ApplyConfig,
    migration: &Migration,
    seq: i32,
    reverted: &RevertedEvent<'_>,
) -> Result<(), String> {
    if let Some(missing) = migration.missing_down() {
        return Err(format!("{} has {}", migration.name, missing.describe()));
    }
    let backend = db.backend();
    let mut started = Instant::now();
    let transactional = is_transactional(backend, migration);
    let mut step = new_step(
        recorder,
        migration,
        seq,
        transactional,
        step_status::REVERTED,
    );
    step.direction = "down".into();
    if !transactional {
        // MySQL DDL (or run_in_transaction = false): no outer transaction, whose savepoint
        // the DDL's implicit commit would destroy. `started` before, `reverted` after.
        step.status = step_status::STARTED.into();
        ledger::insert_step(&mut db.conn, &step)
            .map_err(|e| format!("writing dbsafe_steps: {e}"))?;
        let result = set_timeouts(&mut db.conn, backend, config, false)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let run = db.conn.revert_migration(migration).map(|_| ());
                reset_timeouts(&mut db.conn, backend);
                run.map_err(|e| e.to_string())
            });
        step.finished_at = Some(now());
        step.duration_ms = Some(millis(started) as i64);
        if let Err(e) = result {
            let _ = db.ensure_alive();
            step.error = Some(e.to_string());
            let _ = finish_step_recorded(
                db,
                recorder,
                &step,
                EventKind::MigrationFailed {
                    version: migration.version.clone(),
                    name: migration.name.clone(),
                    error: e.to_string(),
                    dirty: true,
                },
            );
            return Err(format!(
                "down.sql of {} failed: {e}; it ran without a transaction, so part of it may have run: the target is dirty (cargo dbsafe resolve {} --as applied|reverted once repaired)",
                migration.name, migration.version
            ));
        }
        step.status = step_status::REVERTED.into();
        let event = reverted(
            migration.version.clone(),
            migration.name.clone(),
            millis(started),
        );
        finish_step_recorded(db, recorder, &step, event)
            .map_err(|e| format!("writing dbsafe_steps: {e}"))?;
        return Ok(());
    }
    let mut attempt = 1;
    loop {
        let result = db.conn.transaction::<Event, StepError, _>(|conn| {
            set_timeouts(conn, backend, config, true)?;
            conn.revert_migration(migration)
                .map_err(|e| StepError::Migration(e.to_string()))?;
            step.finished_at = Some(now());
            step.duration_ms = Some(millis(started) as i64);
            step.attempts = attempt;
            ledger::insert_step(conn, &step)?;
            Ok(recorder.write_in(
                conn,
                reverted(
                    migration.version.clone(),
                    migration.name.clone(),
                    millis(started),
                ),
            )?)
        });
        match result {
            Ok(event) => {
                recorder.committed();
                let _ = recorder.publish(&event);
                return Ok(());
            }
            Err(e) if is_lock_timeout(&e.to_string()) && attempt <= config.lock_retries as i32 => {
                let _ = recorder.emit(
                    db,
                    EventKind::MigrationRetry {
                        version: migration.version.clone(),
                        attempt: attempt as u32,
                        message: e.to_string(),
                    },
                );
                std::thread::sleep(
                    std::time::Duration::from_millis(500 * 2u64.pow(attempt as u32 - 1))
                        .min(std::time::Duration::from_secs(10)),
                );
                attempt += 1;
                started = Instant::now();
            }
            Err(e) => {
                let _ = db.ensure_alive();
                return Err(format!("down.sql of {} failed: {e}", migration.name));
            }
        }
    }
}

/// Writes a non-transactional step's outcome (`finish_step`) and its event in one ledger
/// transaction, then publishes the event: however the process stops, a step row never
/// says `applied` or `reverted` without its event in the audit trail.
pub fn finish_step_recorded(
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    step: &StepRow,
    kind: EventKind,
) -> diesel::QueryResult<()> {
    let event = db.conn.transaction(|conn| {
        ledger::finish_step(conn, step)?;
        crate::pause::point(&format!("after-step-{}", step.status));
        recorder.write_in(conn, kind)
    })?;
    recorder.committed();
    let _ = recorder.publish(&event);
    Ok(())
}

/// Milliseconds since `since`.
pub fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
