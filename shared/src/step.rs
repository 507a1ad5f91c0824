//! The one step executor: runs one migration up or down, in one transaction with its
//! history row (and, when recorded, its ledger rows) where the backend allows, else
//! `started` before and the outcome after; with the migration's timeouts, its verify.sql,
//! and lock timeouts retried. Apply, its failure policy, rollback, the rehearsal, the
//! round trip and the drift shadows all run migrations through [`execute`].

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use crate::config::ApplyConfig;
use crate::connection::{self, AnyConnection, Database};
use crate::event::{Event, EventKind};
use crate::layout::Harness;
use crate::ledger::{self, StepRow};
use crate::migrations::Migration;
use crate::recorder::Recorder;
use crate::run::{Direction, StepStatus, now};
use crate::target::Backend;

/// Whether a migration's statements and its ledger rows commit as one transaction.
/// MySQL/MariaDB DDL commits implicitly, so there it never is.
pub fn is_transactional(backend: Backend, migration: &Migration) -> bool {
    migration.run_in_transaction && backend.dialect().transactional_ddl()
}

/// Locks each migration's transaction held before commit, by version, in order (the
/// rehearsal's report).
pub type LockLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<String>)>>>;

/// How a step is recorded as part of a run.
pub struct Recording<'r, 'a> {
    /// The run's recorder.
    pub recorder: &'r mut Recorder<'a>,
    /// The step's place in the run.
    pub seq: i32,
    /// The event that records the step done, given its duration in milliseconds
    /// (`migration.applied`, `migration.reverted`, `rollback.revert`).
    pub done: &'r dyn Fn(u64) -> EventKind,
    /// Collects the locks the step's transaction held before commit (PostgreSQL, up).
    pub lock_log: Option<&'r LockLog>,
}

/// Why a step did not complete.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// What went wrong, as the server or the file said it.
    pub message: String,
    /// Part of it may have run (no transaction): the target is dirty.
    pub dirty: bool,
    /// It ran and committed, but its verify.sql failed (no transaction): it is part of
    /// the run, so a failure policy must undo it too.
    pub applied: bool,
    /// Nothing was run: the migration has no down that can revert it.
    pub no_down: bool,
}

impl StepFailure {
    fn clean(message: String) -> StepFailure {
        StepFailure {
            message,
            dirty: false,
            applied: false,
            no_down: false,
        }
    }

    /// A failed down step as messages describe it: the migration, the error and, when
    /// part of it may have run, that the target is dirty and how to say it was repaired.
    pub fn describe_down(&self, migration: &Migration) -> String {
        if self.no_down {
            self.message.clone()
        } else if self.dirty {
            format!(
                "down.sql of {} failed: {}; it ran without a transaction, so part of it may have run: the target is dirty (cargo dbsafe resolve {} --as applied|reverted once repaired)",
                migration.name, self.message, migration.version
            )
        } else {
            format!("down.sql of {} failed: {}", migration.name, self.message)
        }
    }
}

/// What can go wrong inside a step's transaction.
#[derive(Debug)]
enum StepError {
    /// The database refused a statement.
    Database(diesel::result::Error),
    /// The migration's SQL failed.
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

/// Runs `migration` in `direction` on `db`: with `config`'s timeouts and lock retries when
/// given (shadows run without), recorded as a step of a run when `recording` is given.
/// A failed step is recorded too (a `failed` row, or the `started` row finished, with its
/// `migration.failed` event).
pub fn execute(
    db: &mut Database,
    config: Option<&ApplyConfig>,
    migration: &Migration,
    direction: Direction,
    mut recording: Option<Recording<'_, '_>>,
) -> Result<(), StepFailure> {
    if direction == Direction::Down
        && let Some(missing) = migration.missing_down()
    {
        return Err(StepFailure {
            no_down: true,
            ..StepFailure::clean(format!("{} has {}", migration.name, missing.describe()))
        });
    }
    let step = Step {
        migration,
        direction,
        config,
        transactional: is_transactional(db.backend(), migration),
    };
    if !step.transactional {
        return step.without_transaction(db, recording.as_mut());
    }
    let retries = config.map_or(0, |c| c.lock_retries as i32);
    let mut attempt = 1;
    loop {
        let began = Began::now();
        let error = match step.in_transaction(db, recording.as_mut(), attempt, &began) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let message = error.to_string();
        if is_lock_timeout(&message) && attempt <= retries {
            if let Some(recording) = recording.as_mut() {
                let _ = recording.recorder.emit(
                    db,
                    EventKind::MigrationRetry {
                        version: migration.version.clone(),
                        attempt: attempt as u32,
                        message,
                    },
                );
            }
            std::thread::sleep(
                Duration::from_millis(500 * 2u64.pow(attempt as u32 - 1))
                    .min(Duration::from_secs(10)),
            );
            attempt += 1;
            continue;
        }
        let _ = db.ensure_alive();
        // A failed up step leaves its `failed` row; a failed down step is told by the
        // run's `run.failed`, which names what stays applied.
        if let Some(recording) = recording.as_mut().filter(|_| direction == Direction::Up) {
            step.record_failure(db, recording, &error, attempt, &began);
        }
        return Err(StepFailure::clean(message));
    }
}

/// When an attempt at a step began: the time its row records and the clock its
/// duration is measured on.
struct Began {
    at: String,
    instant: Instant,
}

impl Began {
    fn now() -> Began {
        Began {
            at: now(),
            instant: Instant::now(),
        }
    }

    fn millis(&self) -> u64 {
        millis(self.instant)
    }

    /// Stamps `row` finished now.
    fn finish(&self, row: &mut StepRow) {
        row.finished_at = Some(now());
        row.duration_ms = Some(self.millis() as i64);
    }
}

/// One step being executed.
struct Step<'m> {
    migration: &'m Migration,
    direction: Direction,
    config: Option<&'m ApplyConfig>,
    transactional: bool,
}

impl Step<'_> {
    fn up(&self) -> bool {
        self.direction == Direction::Up
    }

    /// The step's ledger row for `recorder`'s run.
    fn row(&self, recorder: &Recorder<'_>, seq: i32, status: StepStatus, began: &Began) -> StepRow {
        let migration = self.migration;
        StepRow {
            run_id: recorder.context.id.clone(),
            seq,
            version: migration.version.clone(),
            name: migration.name.clone(),
            direction: self.direction,
            status,
            transactional: self.transactional,
            up_checksum: migration.up_checksum.clone(),
            down_checksum: migration.down_checksum.clone(),
            started_at: began.at.clone(),
            finished_at: None,
            duration_ms: None,
            attempts: 1,
            error: None,
        }
    }

    fn failed_event(&self, error: String, dirty: bool) -> EventKind {
        EventKind::MigrationFailed {
            version: self.migration.version.clone(),
            name: self.migration.name.clone(),
            error,
            dirty,
        }
    }

    /// The migration's SQL in this direction.
    fn sql(&self) -> &str {
        match self.direction {
            Direction::Up => &self.migration.up_sql,
            Direction::Down => self.migration.revertible_down().unwrap_or_default(),
        }
    }

    /// One attempt in one transaction: `BEGIN`, the timeouts, the SQL and the history row
    /// in one batch (where the layout's record is one statement), verify.sql, then the
    /// ledger rows and `COMMIT` in a second batch: two round trips per migration. Any
    /// failure rolls the whole attempt back.
    fn in_transaction(
        &self,
        db: &mut Database,
        mut recording: Option<&mut Recording<'_, '_>>,
        attempt: i32,
        began: &Began,
    ) -> Result<(), StepError> {
        match self.attempt(db, recording.as_deref_mut(), attempt, began) {
            Ok(event) => {
                if let (Some(event), Some(recording)) = (event, recording) {
                    recording.recorder.committed();
                    let _ = recording.recorder.publish(&event);
                }
                Ok(())
            }
            Err(e) => {
                let _ = db.execute("ROLLBACK");
                Err(e)
            }
        }
    }

    fn attempt(
        &self,
        db: &mut Database,
        recording: Option<&mut Recording<'_, '_>>,
        attempt: i32,
        began: &Began,
    ) -> Result<Option<Event>, StepError> {
        let backend = db.backend();
        let mut batch = String::from("BEGIN;\n");
        if let Some(config) = self.config {
            batch.push_str(&timeouts_sql(backend, config, true));
            batch.push_str(";\n");
        }
        let history = crate::layout::record_sql(backend, self.migration, self.up());
        if let Some(history) = &history {
            // The newline ends a trailing `--` comment of the file.
            batch.push_str(self.sql());
            batch.push_str("\n;\n");
            batch.push_str(history);
        }
        db.execute(&batch)
            .map_err(|e| StepError::Migration(e.to_string()))?;
        if history.is_none() {
            let open = self.migration.in_open_transaction(String::new());
            let ran = if self.up() {
                db.conn.run_migration(&open)
            } else {
                db.conn.revert_migration(&open)
            };
            ran.map_err(|e| StepError::Migration(e.to_string()))?;
        }
        if self.up() {
            run_verify(&mut db.conn, backend, self.migration)?;
        }
        let Some(recording) = recording else {
            db.execute("COMMIT")?;
            return Ok(None);
        };
        if let Some(log) = recording
            .lock_log
            .filter(|_| backend == Backend::Postgres && self.up())
        {
            let locks = held_locks(&mut db.conn)?;
            if let Ok(mut log) = log.lock() {
                log.push((self.migration.version.clone(), locks));
            }
        }
        let mut row = self.row(recording.recorder, recording.seq, self.done_status(), began);
        began.finish(&mut row);
        row.attempts = attempt;
        let done = (recording.done)(began.millis());
        let event = recording
            .recorder
            .write_step_and_commit(&mut db.conn, backend, &row, done)?;
        Ok(Some(event))
    }

    fn done_status(&self) -> StepStatus {
        match self.direction {
            Direction::Up => StepStatus::Applied,
            Direction::Down => StepStatus::Reverted,
        }
    }

    /// A transactional step that failed for good: nothing of it remains; its `failed` row
    /// and events record why.
    fn record_failure(
        &self,
        db: &mut Database,
        recording: &mut Recording<'_, '_>,
        error: &StepError,
        attempt: i32,
        began: &Began,
    ) {
        let message = error.to_string();
        let mut row = self.row(recording.recorder, recording.seq, StepStatus::Failed, began);
        began.finish(&mut row);
        row.attempts = attempt;
        row.error = Some(message.clone());
        let _ = ledger::insert_step(&mut db.conn, &row);
        if let StepError::Verify(m) = error {
            let _ = recording.recorder.emit(
                db,
                EventKind::VerifyFailed {
                    version: self.migration.version.clone(),
                    message: m.clone(),
                },
            );
        }
        let _ = recording
            .recorder
            .emit(db, self.failed_event(message, false));
    }

    /// No transaction (MySQL DDL, or `run_in_transaction = false`): `started` before, the
    /// outcome after; a `started` row left behind says the target is dirty. The history
    /// row is written by the layout's harness, as the tool that owns it would.
    fn without_transaction(
        &self,
        db: &mut Database,
        mut recording: Option<&mut Recording<'_, '_>>,
    ) -> Result<(), StepFailure> {
        let backend = db.backend();
        let began = Began::now();
        let mut row = recording
            .as_deref()
            .map(|r| self.row(r.recorder, r.seq, StepStatus::Started, &began));
        if let Some(row) = &row {
            ledger::insert_step(&mut db.conn, row)
                .map_err(|e| StepFailure::clean(format!("writing dbsafe_steps: {e}")))?;
        }
        if let Some(config) = self.config {
            set_timeouts(&mut db.conn, backend, config, false).map_err(|e| {
                StepFailure::clean(format!("setting the migration's timeouts: {e}"))
            })?;
        }
        let ran = if self.up() {
            db.conn.run_migration(self.migration)
        } else {
            db.conn.revert_migration(self.migration)
        }
        .map_err(|e| e.to_string());
        // verify.sql runs with the migration's timeouts too.
        let verified = match (&ran, self.up()) {
            (Ok(()), true) => run_verify(&mut db.conn, backend, self.migration),
            _ => Ok(()),
        };
        if self.config.is_some() {
            reset_timeouts(&mut db.conn, backend);
        }
        if let Err(message) = ran {
            let _ = db.ensure_alive();
            if let (Some(row), Some(recording)) = (row.as_mut(), recording.as_deref_mut()) {
                began.finish(row);
                row.error = Some(message.clone());
                let failed = self.failed_event(message.clone(), true);
                let _ = finish_step_recorded(db, recording.recorder, row, failed);
            }
            return Err(StepFailure {
                dirty: true,
                ..StepFailure::clean(message)
            });
        }
        if let (Some(row), Some(recording)) = (row.as_mut(), recording) {
            row.status = self.done_status();
            began.finish(row);
            if let Err(e) = &verified {
                row.error = Some(e.to_string());
            }
            let done = (recording.done)(began.millis());
            finish_step_recorded(db, recording.recorder, row, done)
                .map_err(|e| StepFailure::clean(format!("writing dbsafe_steps: {e}")))?;
            if let Err(StepError::Verify(m)) = &verified {
                let _ = recording.recorder.emit(
                    db,
                    EventKind::VerifyFailed {
                        version: self.migration.version.clone(),
                        message: m.clone(),
                    },
                );
            }
        }
        match verified {
            Ok(()) => Ok(()),
            // Applied but not verified: it is part of the run, so the policy may revert it.
            Err(e) => Err(StepFailure {
                applied: true,
                ..StepFailure::clean(format!("{e} (the migration itself was applied)"))
            }),
        }
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
    backend.dialect().timeouts_sql(
        config.lock_timeout,
        config.statement_timeout,
        in_transaction,
    )
}

/// Undoes session-level timeouts: the session's defaults again.
pub fn reset_timeouts(conn: &mut AnyConnection, backend: Backend) {
    let _ = conn.batch_execute(&backend.dialect().reset_timeouts_sql());
}

/// Runs a migration's verify.sql: one query returning one column; every row must be true.
fn run_verify(
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
    let false_rows = format!(
        "WITH dbsafe_verify(ok) AS ({query}\n) SELECT count(*) AS v FROM dbsafe_verify WHERE {}",
        backend.dialect().is_not_true("ok")
    );
    match connection::integer(conn, &false_rows) {
        Ok(0) => Ok(()),
        Ok(n) => Err(StepError::Verify(format!(
            "{n} row(s) of {} are not true",
            file.display()
        ))),
        Err(e) => Err(StepError::Verify(format!("{}: {e}", file.display()))),
    }
}

/// The locks this session's transaction holds on user tables (PostgreSQL), like
/// `AccessExclusiveLock on users (52000 rows)`.
fn held_locks(conn: &mut AnyConnection) -> diesel::QueryResult<Vec<String>> {
    connection::texts(
        conn,
        "SELECT l.mode || ' on ' || c.relname || ' (' || CAST(GREATEST(c.reltuples, 0) AS BIGINT) || ' rows)' AS v \
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE l.pid = pg_backend_pid() AND l.granted AND c.relkind IN ('r', 'p') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relname NOT IN ('__diesel_schema_migrations', '_sqlx_migrations') \
         AND c.relname NOT LIKE 'dbsafe\\_%' ORDER BY c.relname, l.mode",
    )
}

/// Writes a non-transactional step's outcome (`finish_step`) and its event in one ledger
/// transaction, then publishes the event: however the process stops, a step row never
/// says `applied` or `reverted` without its event in the audit trail.
fn finish_step_recorded(
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    step: &StepRow,
    kind: EventKind,
) -> diesel::QueryResult<()> {
    use diesel::Connection;
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
