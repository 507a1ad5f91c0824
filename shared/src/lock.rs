//! One apply or rollback per target at a time: a polling PostgreSQL advisory lock (a
//! blocking one deadlocks against `CREATE INDEX CONCURRENTLY`), MySQL `GET_LOCK`, and an
//! exclusive lock file beside a SQLite database. A waiter names the holder's run.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::connection::{Database, quote};
use crate::error::{Error, Result};
use crate::target::Backend;

/// The advisory lock key on PostgreSQL ("dbsafe" in ASCII).
const PG_LOCK_KEY: i64 = 0x6462_7361_6665;
const POLL: Duration = Duration::from_millis(200);

/// A held target lock. Released by [`TargetLock::release`], or when the process or its
/// connection ends.
pub struct TargetLock {
    file: Option<(File, PathBuf)>,
}

/// Who holds the target's lock, as seen from another session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody: no run is in progress.
    Free,
    /// Held by a session.
    Held {
        /// The holder's run id, when it is a dbsafe run that said so.
        run: Option<String>,
        /// The holding session, in the backend's words (backend pid, connection id, lock file).
        session: String,
    },
}

impl LockState {
    /// The run holding the lock, when known.
    pub fn run(&self) -> Option<&str> {
        match self {
            LockState::Held { run, .. } => run.as_deref(),
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
    run_id: &str,
    wait: Duration,
    on_wait: &mut dyn FnMut(Option<String>),
) -> Result<TargetLock> {
    let deadline = Instant::now() + wait;
    let mut waited = false;
    let mut reported: Option<String> = None;
    let mut sqlite_file = match db.backend() {
        Backend::Sqlite => Some(open_lock_file(db)?),
        _ => None,
    };
    loop {
        if try_take(db, sqlite_file.as_mut(), run_id)? {
            return Ok(TargetLock { file: sqlite_file });
        }
        let now_holding = holder(db, sqlite_file.as_mut());
        let now_run = now_holding.run().map(str::to_owned);
        if !waited || (now_run.is_some() && now_run != reported) {
            waited = true;
            reported.clone_from(&now_run);
            on_wait(now_run);
        }
        if Instant::now() >= deadline {
            return Err(Error::Refused(format!(
                "the target is locked by {}; waited {}s (`lock-wait`). Let that run finish (see `cargo dbsafe runs`), or raise [apply] lock-wait",
                holder(db, sqlite_file.as_mut()).describe(),
                wait.as_secs()
            )));
        }
        sleep(POLL);
    }
}

/// Takes the target's lock for `run_id` if it is free, without waiting; refuses naming the
/// holder when a run holds it (`doing`: what would have been done, for the message).
pub fn acquire_now(db: &mut Database, run_id: &str, doing: &str) -> Result<TargetLock> {
    let mut sqlite_file = match db.backend() {
        Backend::Sqlite => Some(open_lock_file(db)?),
        _ => None,
    };
    if try_take(db, sqlite_file.as_mut(), run_id)? {
        return Ok(TargetLock { file: sqlite_file });
    }
    Err(Error::Refused(format!(
        "the target is locked by {}: it is still running, so {doing} now could record something untrue. Wait for it to finish (`cargo dbsafe status` shows it), then try again",
        holder(db, sqlite_file.as_mut()).describe()
    )))
}

/// Who holds the target's lock now, without taking it (nothing is written, no file created).
pub fn probe(db: &mut Database) -> Result<LockState> {
    let mut sqlite_file = None;
    if db.backend() == Backend::Sqlite {
        let path = lock_file_path(db);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => match file.try_lock() {
                Ok(()) => {
                    let _ = file.unlock();
                    return Ok(LockState::Free);
                }
                Err(std::fs::TryLockError::WouldBlock) => sqlite_file = Some((file, path)),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::Free),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(holder(db, sqlite_file.as_mut()))
}

/// Cancels the statement that the session holding the target's lock is running (another
/// session of this run, stopped by Ctrl-C): PostgreSQL `pg_cancel_backend`, MySQL `KILL
/// QUERY`. SQLite has no way to stop another connection's statement: nothing happens.
pub fn cancel_holder_statement(db: &mut Database) {
    match db.backend() {
        Backend::Postgres => {
            let _ = db.execute(&format!(
                "SELECT pg_cancel_backend(l.pid) FROM pg_locks l \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objid = {} AND l.classid = {} \
                 AND l.pid <> pg_backend_pid() \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                PG_LOCK_KEY & 0xffff_ffff,
                PG_LOCK_KEY >> 32
            ));
        }
        Backend::Mysql => {
            if let Ok(Some(connection)) = mysql_lock_connection(db)
                && connection.bytes().all(|b| b.is_ascii_digit())
            {
                let _ = db.execute(&format!("KILL QUERY {connection}"));
            }
        }
        Backend::Sqlite => {}
    }
}

fn try_take(
    db: &mut Database,
    sqlite_file: Option<&mut (File, PathBuf)>,
    run_id: &str,
) -> Result<bool> {
    let taken = match db.backend() {
        Backend::Postgres => try_pg(db, run_id)?,
        Backend::Mysql => try_mysql(db)?,
        Backend::Sqlite => try_file(sqlite_file.expect("opened by the caller"), run_id)?,
    };
    if taken && db.backend() == Backend::Mysql && db.table_exists("dbsafe_meta").unwrap_or(false) {
        // Named from the first moment: a waiter reads the holder from the ledger.
        announce_mysql_holder(db, run_id)?;
    }
    Ok(taken)
}

impl TargetLock {
    /// Releases the lock.
    pub fn release(self, db: &mut Database) {
        match db.backend() {
            Backend::Postgres => {
                let _ = db.execute(&format!(
                    "SELECT pg_advisory_unlock({PG_LOCK_KEY}); SET application_name = 'dbsafe'"
                ));
            }
            Backend::Mysql => {
                let _ = db.execute(&format!("DO RELEASE_LOCK({})", mysql_lock_name()));
            }
            Backend::Sqlite => {
                if let Some((file, _)) = self.file {
                    let _ = file.set_len(0);
                    let _ = file.unlock();
                }
            }
        }
    }
}

fn try_pg(db: &mut Database, run_id: &str) -> Result<bool> {
    // The holder's run id travels in application_name, so a waiter can name it.
    let taken = db
        .integer(&format!("SELECT CAST(CASE WHEN pg_try_advisory_lock({PG_LOCK_KEY}) THEN 1 ELSE 0 END AS BIGINT) AS v"))
        .map_err(|e| Error::db("taking the PostgreSQL advisory lock", e))?
        == 1;
    if taken {
        db.execute(&format!(
            "SET application_name = {}",
            quote(&format!("dbsafe {run_id}"))
        ))
        .map_err(|e| Error::db("naming the lock holder", e))?;
    }
    Ok(taken)
}

fn mysql_lock_name() -> &'static str {
    "CONCAT('dbsafe:', DATABASE())"
}

/// The id of the MySQL connection holding the lock; `None` when it is free.
fn mysql_lock_connection(db: &mut Database) -> diesel::QueryResult<Option<String>> {
    let rows = db.texts(&format!(
        "SELECT COALESCE(CAST(IS_USED_LOCK({}) AS CHAR), '') AS v",
        mysql_lock_name()
    ))?;
    Ok(rows.into_iter().next().filter(|c| !c.is_empty()))
}

fn try_mysql(db: &mut Database) -> Result<bool> {
    Ok(db
        .integer(&format!(
            "SELECT CAST(COALESCE(GET_LOCK({}, 0), 0) AS SIGNED) AS v",
            mysql_lock_name()
        ))
        .map_err(|e| Error::db("taking the MySQL lock (GET_LOCK)", e))?
        == 1)
}

/// MySQL: records in the ledger (which must exist) that this connection holds the lock for
/// `run_id`, so a waiter can name the run.
pub fn announce_mysql_holder(db: &mut Database, run_id: &str) -> Result<()> {
    let connection = db
        .integer("SELECT CAST(CONNECTION_ID() AS SIGNED) AS v")
        .map_err(|e| Error::db("reading the MySQL connection id", e))?;
    crate::ledger::meta_set(db, "lock_holder", &format!("{connection} {run_id}"))
}

fn lock_file_path(db: &Database) -> PathBuf {
    let db_path = db.url().sqlite_path().expect("SQLite has a path");
    PathBuf::from(format!("{}.dbsafe-lock", db_path.display()))
}

fn open_lock_file(db: &Database) -> Result<(File, PathBuf)> {
    let path = lock_file_path(db);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    Ok((file, path))
}

fn try_file((file, path): &mut (File, PathBuf), run_id: &str) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(run_id.as_bytes()))
                .map_err(|e| Error::io(path.clone(), e))?;
            Ok(true)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path.clone(), e)),
    }
}

/// Who holds the lock, as far as it can be found; `Free` when no session holds it.
fn holder(db: &mut Database, file: Option<&mut (File, PathBuf)>) -> LockState {
    match db.backend() {
        Backend::Postgres => {
            let Ok(rows) = db.texts(&format!(
                "SELECT CAST(l.pid AS TEXT) || ' ' || COALESCE(a.application_name, '') AS v FROM pg_locks l \
                 LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objid = {} AND l.classid = {} \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                PG_LOCK_KEY & 0xffff_ffff,
                PG_LOCK_KEY >> 32
            )) else {
                return unknown_holder("PostgreSQL session");
            };
            let Some(row) = rows.into_iter().next() else {
                return LockState::Free;
            };
            let (pid, name) = row.split_once(' ').unwrap_or((&row, ""));
            LockState::Held {
                run: name.strip_prefix("dbsafe ").map(str::to_owned),
                session: format!("PostgreSQL backend pid {pid}"),
            }
        }
        Backend::Mysql => {
            let Ok(connection) = mysql_lock_connection(db) else {
                return unknown_holder("MySQL connection");
            };
            let Some(connection) = connection else {
                return LockState::Free;
            };
            // The run recorded as holder counts only if its connection holds the lock now:
            // an entry left by an earlier run, or a lock held outside dbsafe, names no run.
            let run = crate::ledger::meta_get(db, "lock_holder")
                .ok()
                .flatten()
                .and_then(|recorded| {
                    let (holder_connection, run) = recorded.split_once(' ')?;
                    (holder_connection == connection).then(|| run.to_owned())
                });
            LockState::Held {
                run,
                session: format!("MySQL connection {connection}"),
            }
        }
        Backend::Sqlite => {
            let Some((_, path)) = file else {
                return unknown_holder("lock file");
            };
            let mut text = String::new();
            let _ = File::open(&*path).and_then(|mut f| f.read_to_string(&mut text));
            LockState::Held {
                run: Some(text.trim().to_owned()).filter(|s| !s.is_empty()),
                session: format!("lock file {}", path.display()),
            }
        }
    }
}

/// The lock is busy but its holder cannot be read.
fn unknown_holder(session: &str) -> LockState {
    LockState::Held {
        run: None,
        session: format!("{session} unknown"),
    }
}
