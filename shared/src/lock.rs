//! One apply or rollback per target at a time: waiting for the target lock, and naming its
//! holder's run to waiters. How the lock is taken is the backend's (its
//! [`crate::dialect::Dialect`]): a polling PostgreSQL advisory lock, MySQL `GET_LOCK`, an
//! exclusive lock file beside a SQLite database.

use std::fs::File;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::connection::Database;
use crate::error::Result;
use crate::run_id::RunId;

const POLL: Duration = Duration::from_millis(200);

/// The lock file of a backend whose target lock is a file (SQLite), open.
pub struct LockFile {
    /// The open file.
    pub file: File,
    /// Its path.
    pub path: PathBuf,
}

/// A held target lock. Released by [`TargetLock::release`], or when the process or its
/// connection ends.
pub struct TargetLock {
    file: Option<LockFile>,
}

/// Who holds the target's lock, as seen from another session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody: no run is in progress.
    Free,
    /// Held by a session.
    Held {
        /// The holder's run id, when it is a dbsafe run that said so.
        run: Option<RunId>,
        /// The holding session, in the backend's words (backend pid, connection id, lock file).
        session: String,
    },
}

impl LockState {
    /// The run holding the lock, when known.
    pub fn run(&self) -> Option<&RunId> {
        match self {
            LockState::Held { run, .. } => run.as_ref(),
            LockState::Free => None,
        }
    }

    /// The holder, as a message names it: `run ID (SESSION)`, or the session alone.
    pub fn describe(&self) -> String {
        match self {
            LockState::Free => "a session that has just released it".to_owned(),
            LockState::Held {
                run: Some(run),
                session,
            } => format!("run {run} ({session})"),
            LockState::Held { run: None, session } => {
                format!("another dbsafe process (run unknown; {session})")
            }
        }
    }
}

/// Takes the target's lock for run `run_id`, waiting up to `wait`. `on_wait` is called when
/// the lock is found busy, with the holder's run id when known, and again whenever a
/// different holder becomes known while waiting.
pub fn acquire(
    db: &mut Database,
    run_id: &RunId,
    wait: Duration,
    on_wait: &mut dyn FnMut(Option<RunId>),
) -> Result<TargetLock> {
    let deadline = Instant::now() + wait;
    let mut waited = false;
    let mut reported: Option<RunId> = None;
    let dialect = db.backend().dialect();
    let mut file = dialect.lock_file(db)?;
    loop {
        if dialect.try_lock(db, file.as_mut(), run_id)? {
            return Ok(TargetLock { file });
        }
        let now_holding = dialect.lock_holder(db, file.as_mut());
        let now_run = now_holding.run().cloned();
        if !waited || (now_run.is_some() && now_run != reported) {
            waited = true;
            reported.clone_from(&now_run);
            on_wait(now_run);
        }
        if Instant::now() >= deadline {
            return Err(crate::error::Reason::LockHeld.refuse(format!(
                "the target is locked by {}; waited {}s (`lock-wait`). Let that run finish (see `cargo dbsafe runs`), or raise [apply] lock-wait",
                dialect.lock_holder(db, file.as_mut()).describe(),
                wait.as_secs()
            )));
        }
        sleep(POLL);
    }
}

/// Takes the target's lock for `run_id` if it is free, without waiting; refuses naming the
/// holder when a run holds it (`doing`: what would have been done, for the message).
pub fn acquire_now(db: &mut Database, run_id: &RunId, doing: &str) -> Result<TargetLock> {
    let dialect = db.backend().dialect();
    let mut file = dialect.lock_file(db)?;
    if dialect.try_lock(db, file.as_mut(), run_id)? {
        return Ok(TargetLock { file });
    }
    Err(crate::error::Reason::LockHeld.refuse(format!(
        "the target is locked by {}: it is still running, so {doing} now could record something untrue. Wait for it to finish (`cargo dbsafe status` shows it), then try again",
        dialect.lock_holder(db, file.as_mut()).describe()
    )))
}

/// Who holds the target's lock now, without taking it (nothing is written, no file created).
pub fn probe(db: &mut Database) -> Result<LockState> {
    db.backend().dialect().probe_lock(db)
}

/// Cancels the statement that the session holding the target's lock is running (another
/// session of this run, stopped by Ctrl-C): PostgreSQL `pg_cancel_backend`, MySQL `KILL
/// QUERY`. SQLite has no way to stop another connection's statement: nothing happens.
pub fn cancel_holder_statement(db: &mut Database) {
    db.backend().dialect().cancel_lock_holder(db);
}

/// Records, where waiters read the holder from the ledger (MySQL: the ledger must exist),
/// that this session holds the lock for `run_id`; nothing elsewhere.
pub fn announce_holder(db: &mut Database, run_id: &RunId) -> Result<()> {
    db.backend().dialect().announce_lock_holder(db, run_id)
}

impl TargetLock {
    /// Releases the lock.
    pub fn release(self, db: &mut Database) {
        db.backend().dialect().release_lock(db, self.file);
    }
}

/// The lock is busy but its holder cannot be read.
pub(crate) fn unknown_holder(session: &str) -> LockState {
    LockState::Held {
        run: None,
        session: format!("{session} unknown"),
    }
}
