//! A run session: the one place a recorded run is opened (protection, identity, the
//! target's lock), given its ledger row and `run.started`, and finished (`run.succeeded` /
//! `run.failed` with its status). Apply, rollback, restore and resolve are bodies inside a
//! session; the lock is released when the session ends, however it ends, and taken again
//! when the connection had to be reopened.

use std::time::Instant;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{EventKind, EventSink};
use crate::identity::{self, Binding};
use crate::journal::Journal;
use crate::ledger;
use crate::lock::{self, TargetLock};
use crate::preflight::{self, Confirmation};
use crate::recorder::Recorder;
use crate::run::{RunContext, RunKind, RunStatus, now};
use crate::run_id::RunId;
use crate::target::Target;

/// How a session is opened.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'o> {
    /// What the run does.
    pub kind: RunKind,
    /// How the target was chosen and confirmed (protected targets need it).
    pub confirmation: Confirmation,
    /// Accept a changed database identity and re-bind the target (`--rebind`).
    pub rebind: bool,
    /// The fleet run this run is a member's share of.
    pub fleet_run: Option<&'o RunId>,
    /// Whether a missing SQLite file may be created (apply on a new database).
    pub create: Create,
    /// Wait for the lock up to `[apply] lock-wait` (runs), or refuse at once when a run
    /// holds it (resolve: that run may still be writing the step being resolved).
    pub wait_for_lock: bool,
}

impl Opening<'_> {
    /// A run of `kind` that waits for the lock and creates nothing.
    pub fn new(kind: RunKind, confirmation: Confirmation) -> Opening<'static> {
        Opening {
            kind,
            confirmation,
            rebind: false,
            fleet_run: None,
            create: Create::Never,
            wait_for_lock: true,
        }
    }
}

/// An open run on one target, holding its lock.
pub struct Session<'s> {
    /// The project's configuration.
    pub config: &'s Config,
    /// The target the run changes.
    pub target: &'s Target,
    /// The session's connection; after [`Session::relock`], a new one may be in its place.
    pub db: Database,
    /// Where the run's events go (ledger, journal, output).
    pub recorder: Recorder<'s>,
    /// The identity check's outcome, recorded by [`Session::prepare_ledger`].
    pub binding: Binding,
    kind: RunKind,
    lock: Option<TargetLock>,
    started: Instant,
}

impl<'s> Session<'s> {
    /// Opens a run: refuses a protected target not named and confirmed, connects, checks
    /// the database is the one the target is bound to, then takes the target's lock
    /// (waiting is shown as it begins and recorded once the run exists).
    pub fn open(
        config: &'s Config,
        target: &'s Target,
        opening: Opening<'_>,
        sink: &'s mut dyn EventSink,
    ) -> Result<Session<'s>> {
        Session::open_with(config, target, opening, None, sink)
    }

    /// [`Session::open`] on a connection opened beforehand (`early`, see
    /// [`connect_early`]); the guards still come first.
    pub fn open_with(
        config: &'s Config,
        target: &'s Target,
        opening: Opening<'_>,
        early: Option<Result<Database>>,
        sink: &'s mut dyn EventSink,
    ) -> Result<Session<'s>> {
        preflight::guard_protected(target, opening.confirmation)?;
        // A refused run leaves nothing behind: not even the empty SQLite file that opening
        // the connection created.
        let new_sqlite_file = target.url.sqlite_path().filter(|path| !path.exists());
        let mut db = match early {
            Some(db) => db?,
            None => Database::connect(&target.url, opening.create)?,
        };
        let binding = identity::check(&mut db, target, &config.snapshot_dir, opening.rebind)
            .inspect_err(|_| {
                if let Some(path) = new_sqlite_file
                    && std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
                {
                    let _ = std::fs::remove_file(path);
                }
            })?;
        let mut context = RunContext::new(&config.root).in_fleet(opening.fleet_run);
        // An id is the second and 16 random bits: a run that drew the id of an earlier run
        // of the same second in this ledger draws again, before the id names anything (the
        // lock's holder, an event, a snapshot).
        if db.table_exists("dbsafe_runs").unwrap_or(false) {
            while run_recorded(&mut db, &context.id)? {
                context.id = RunId::new();
            }
        }
        let recorder = Recorder::new(
            context,
            &target.name,
            Journal::new(&config.snapshot_dir),
            sink,
        );
        let mut session = Session {
            config,
            target,
            db,
            recorder,
            binding,
            kind: opening.kind,
            lock: None,
            started: Instant::now(),
        };
        session.lock = Some(session.take_lock(opening.wait_for_lock)?);
        crate::pause::point("after-lock");
        Ok(session)
    }

    fn take_lock(&mut self, wait: bool) -> Result<TargetLock> {
        let run_id = self.recorder.context.id.clone();
        if !wait {
            return lock::acquire_now(&mut self.db, &run_id, "resolving a step");
        }
        let mut waiting = Vec::new();
        let recorder = &mut self.recorder;
        let lock = lock::acquire(
            &mut self.db,
            &run_id,
            self.config.apply.lock_wait,
            &mut |holder| {
                let event = recorder.event(EventKind::LockWaiting { holder });
                recorder.show(&event);
                waiting.push(event);
            },
        )?;
        for event in waiting {
            self.recorder.record_shown(event)?;
        }
        Ok(lock)
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.recorder.context.id
    }

    /// What the run does.
    pub fn kind(&self) -> RunKind {
        self.kind
    }

    /// Makes the ledger and the layout's history table current, records the identity
    /// binding, names this run as the lock's holder (MySQL), and marks failed the runs an
    /// earlier process left `running` (returning their ids, for a warning).
    pub fn prepare_ledger(&mut self) -> Result<Vec<RunId>> {
        let identity_rows = identity::ledger_rows(self.target, &self.binding);
        let db = &mut self.db;
        // A new database's ledger, history table and identity rows: one commit.
        ledger::ensure_with(db, |db| {
            crate::layout::ensure_history(&mut db.conn)
                .map_err(|e| Error::db("creating the migrations history table", e))?;
            ledger::meta_set(db, &identity_rows)
        })?;
        identity::record(self.target, &self.config.snapshot_dir, &self.binding)?;
        lock::announce_holder(db, &self.recorder.context.id)?;
        let interrupted = ledger::running_runs(db)?;
        ledger::mark_interrupted(db, &interrupted)
    }

    /// Writes the run's ledger row and `run.started` (what it is about to do: `pending`
    /// versions, the snapshot taken before it, the run it undoes). From here on every
    /// event goes to the ledger too, and Ctrl-C marks the run failed.
    pub fn start(
        &mut self,
        parent: Option<&RunId>,
        snapshot_id: Option<String>,
        pending: Vec<String>,
    ) -> Result<()> {
        let row = self
            .recorder
            .run_row(self.target, self.kind, parent, snapshot_id.clone());
        let started = self
            .recorder
            .run_started(self.target, self.kind, pending, snapshot_id);
        self.recorder.start(&mut self.db, &row, started)
    }

    /// Emits `run.started` without writing the row (a restore writes its row into the
    /// restored copy, just before the swap).
    pub fn announce(&mut self, pending: Vec<String>, snapshot_id: Option<String>) -> Result<()> {
        let started = self
            .recorder
            .run_started(self.target, self.kind, pending, snapshot_id);
        self.emit(started)
    }

    /// Emits an event of this run now (ledger when ready, journal, output).
    pub fn emit(&mut self, kind: EventKind) -> Result<()> {
        self.recorder.emit(&mut self.db, kind)
    }

    /// Finishes the run as succeeded, with the number of migrations it applied or
    /// reverted and the hash of what it applied.
    pub fn succeed(&mut self, bundle_hash: Option<&str>, migrations: usize) -> Result<()> {
        let started = self.started;
        self.recorder
            .succeed(&mut self.db, bundle_hash, migrations, started)
    }

    /// Finishes the run as `status` (failed, reverted, restored) with `error`, naming what
    /// stays applied; returns `error` for the caller's message. Best effort: the failure
    /// being reported matters more than a ledger write that fails now.
    pub fn fail(
        &mut self,
        status: RunStatus,
        error: String,
        bundle_hash: Option<&str>,
        still_applied: Vec<String>,
    ) -> String {
        let run_id = self.recorder.context.id.clone();
        let _ = ledger::finish_run(
            &mut self.db.conn,
            &run_id,
            status,
            &now(),
            bundle_hash,
            Some(&error),
        );
        let _ = self.emit(EventKind::RunFailed {
            status,
            error: error.clone(),
            still_applied,
        });
        error
    }

    /// When the connection had to be reopened (the session holding the lock is gone: a
    /// lost connection, or a restore's swap), takes the target's lock again before anything
    /// else is written; an error says the lock could not be taken.
    pub fn relock(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.db.reconnected) {
            return Ok(());
        }
        // A lock file (SQLite) outlives the connection.
        if !self.db.dialect().lock_held_by_session() {
            return Ok(());
        }
        let run_id = self.recorder.context.id.clone();
        lock::acquire(
            &mut self.db,
            &run_id,
            self.config.apply.lock_wait,
            &mut |_| {},
        )?;
        Ok(())
    }
}

/// Whether the ledger (of any schema version) has a run of this id.
fn run_recorded(db: &mut Database, id: &RunId) -> Result<bool> {
    let sql = format!(
        "SELECT CAST(count(*) AS {}) AS v FROM dbsafe_runs WHERE id = {}",
        db.dialect().bigint_type(),
        db.dialect().literal(id.as_str())
    );
    Ok(db
        .integer(&sql)
        .map_err(|e| Error::db("reading dbsafe_runs", e))?
        > 0)
}

/// Runs `local` (work on files: loading the migrations) while a connection to the target's
/// server opens in the background, for [`Session::open_with`]. Not for SQLite (opening may
/// create the file, which waits until the guards passed) nor when an interrupted restore
/// is to be finished first (it renames the database and ends its sessions): a connection
/// returned says the journal shows no interrupted restore of the target.
pub fn connect_early<T: Send>(
    config: &Config,
    target: &Target,
    local: impl FnOnce() -> T + Send,
) -> Result<(T, Option<Result<Database>>)> {
    if target.url.sqlite_path().is_some() || crate::restore::interrupted(config, target)?.is_some()
    {
        return Ok((local(), None));
    }
    Ok(std::thread::scope(|scope| {
        let connecting = scope.spawn(|| Database::connect(&target.url, Create::Never));
        let done = local();
        let db = connecting
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (done, Some(db))
    }))
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release(&mut self.db);
        }
    }
}
