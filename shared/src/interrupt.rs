//! Ctrl-C (SIGINT/SIGTERM): the run in progress is marked `failed` (interrupted) in the
//! ledger and the journal (a `run.failed` event), and the throwaway databases this process
//! created (shadows, scratch restores, rehearsal clones) are dropped, before it exits with
//! code 130.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::connection::{Create, Database};
use crate::event::{Event, EventKind};
use crate::journal::Journal;
use crate::ledger::{self, dbsafe_runs, dbsafe_steps};
use crate::run::now;
use crate::run::{RunStatus, StepStatus};
use crate::run_id::RunId;
use crate::target::DatabaseUrl;

type Cleanup = Box<dyn Fn() + Send>;

static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static ACTIVE: Mutex<Option<ActiveRun>> = Mutex::new(None);

/// How long the handler retries writing the ledger of a target whose statements cannot be
/// cancelled from another session (SQLite): the interrupted statement may hold the write
/// lock until it ends.
const UNCANCELLABLE_PATIENCE: Duration = Duration::from_secs(30);

/// What the handler needs to mark the run in progress failed, on its own connection.
pub struct ActiveRun {
    /// The target's URL.
    pub url: DatabaseUrl,
    /// The run.
    pub run_id: RunId,
    /// The target's name (for the journal).
    pub target: String,
    /// Who runs it.
    pub operator: String,
    /// The project's journal.
    pub journal: Journal,
    /// The run's event sequence, shared with its recorder, so the handler's event takes a
    /// number nobody else uses.
    pub seq: Arc<AtomicI32>,
}

/// Installs the handler; the binaries call it once at start. A failure to install (a
/// handler already set) is ignored: cleanup on Drop still works.
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        let active = ACTIVE.lock().ok().and_then(|mut a| a.take());
        let note = active.map(|run| mark_failed(&run));
        if let Ok(mut cleanups) = CLEANUPS.lock() {
            for (_, cleanup) in cleanups.drain(..) {
                cleanup();
            }
        }
        match note {
            Some(note) => eprintln!("interrupted: {note}"),
            None => eprintln!("interrupted: throwaway databases dropped"),
        }
        std::process::exit(130);
    });
}

/// Registers a cleanup to run if the process is interrupted; returns its key.
pub fn register(cleanup: Cleanup) -> u64 {
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut cleanups) = CLEANUPS.lock() {
        cleanups.push((key, cleanup));
    }
    key
}

/// Forgets a cleanup (the resource was released normally).
pub fn unregister(key: u64) {
    if let Ok(mut cleanups) = CLEANUPS.lock() {
        cleanups.retain(|(k, _)| *k != key);
    }
}

/// The run now has its ledger row: an interruption from now on marks it failed.
pub fn run_started(run: ActiveRun) {
    if let Ok(mut active) = ACTIVE.lock() {
        *active = Some(run);
    }
}

/// The run `run_id` is over (its recorder is done). If an interruption is being handled,
/// waits for the handler to end the process instead of going on.
pub fn run_ended(run_id: &RunId) {
    if let Ok(mut active) = ACTIVE.lock()
        && active.as_ref().is_some_and(|r| r.run_id == *run_id)
    {
        *active = None;
    }
    halt_if_interrupted();
}

/// Whether Ctrl-C was pressed (SIGINT/SIGTERM received).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Called by the run between its steps: once interrupted, the run goes no further (its
/// failure policy does not start, nothing more is written); the handler records the
/// interruption and ends the process.
pub fn halt_if_interrupted() {
    if interrupted() {
        loop {
            std::thread::park();
        }
    }
}

/// Stops the run's statement where the server allows, marks the run failed in the ledger
/// (unless it already finished) and the journal; returns what was done, for the terminal.
fn mark_failed(run: &ActiveRun) -> String {
    let mut event = Event {
        run_id: Some(run.run_id.clone()),
        at: now(),
        operator: Some(run.operator.clone()),
        kind: EventKind::RunFailed {
            status: RunStatus::Failed,
            error: INTERRUPTED_ERROR.into(),
            still_applied: Vec::new(),
        },
    };
    let recorded = write_ledger(run, &mut event);
    let journaled =
        !matches!(recorded, Ok(false)) && run.journal.append(&run.target, &event).is_ok();
    match recorded {
        Ok(true) => format!(
            "run {} marked failed (interrupted) in the ledger{}",
            run.run_id,
            if journaled { " and the journal" } else { "" }
        ),
        Ok(false) => format!("run {} had already finished", run.run_id),
        Err(e) => format!(
            "run {} could not be marked failed in the ledger ({e}){}; the next apply marks it failed (interrupted)",
            run.run_id,
            if journaled {
                "; the journal records the interruption"
            } else {
                ""
            }
        ),
    }
}

const INTERRUPTED_ERROR: &str =
    "interrupted: the process was stopped (Ctrl-C, SIGINT or SIGTERM) before the run finished";

/// Marks the run failed and appends its `run.failed` event (with the run's migrations that
/// stay applied) in one transaction, on a connection of its own; `Ok(false)` when the run
/// was no longer running.
fn write_ledger(run: &ActiveRun, event: &mut Event) -> crate::Result<bool> {
    let mut db = Database::connect(&run.url, Create::Never)?;
    crate::lock::cancel_holder_statement(&mut db);
    let patience = if db.dialect().can_cancel_statements() {
        Duration::ZERO
    } else {
        UNCANCELLABLE_PATIENCE
    };
    let seq = run.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let started = Instant::now();
    loop {
        let result = db
            .conn
            .transaction::<bool, diesel::result::Error, _>(|conn| {
                let updated = diesel::update(
                    dbsafe_runs::table
                        .find(&run.run_id)
                        .filter(dbsafe_runs::status.eq(RunStatus::Running)),
                )
                .set((
                    dbsafe_runs::status.eq(RunStatus::Failed),
                    dbsafe_runs::finished_at.eq(now()),
                    dbsafe_runs::error.eq(INTERRUPTED_ERROR),
                ))
                .execute(conn)?;
                if updated == 1 {
                    let applied: Vec<String> = dbsafe_steps::table
                        .filter(dbsafe_steps::run_id.eq(&run.run_id))
                        .filter(dbsafe_steps::direction.eq("up"))
                        .filter(dbsafe_steps::status.eq(StepStatus::Applied))
                        .order(dbsafe_steps::seq)
                        .select(dbsafe_steps::version)
                        .load(conn)?;
                    if let EventKind::RunFailed { still_applied, .. } = &mut event.kind {
                        *still_applied = applied;
                    }
                    ledger::insert_event(conn, seq, event)?;
                }
                Ok(updated == 1)
            });
        match result {
            Err(_) if started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other.map_err(|e| crate::Error::db("marking the run interrupted", e)),
        }
    }
}
