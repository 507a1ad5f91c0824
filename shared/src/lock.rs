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
        let taken = match db.backend() {
            Backend::Postgres => try_pg(db, run_id)?,
            Backend::Mysql => try_mysql(db)?,
            Backend::Sqlite => try_file(sqlite_file.as_mut().expect("opened above"), run_id)?,
        };
        if taken {
            return Ok(TargetLock { file: sqlite_file });
        }
        let now_holding = holder(db, sqlite_file.as_mut());
        if !waited || (now_holding.is_some() && now_holding != reported) {
            waited = true;
            reported.clone_from(&now_holding);
            on_wait(now_holding);
        }
        if Instant::now() >= deadline {
            let holder = holder(db, sqlite_file.as_mut())
                .map_or("another dbsafe process (run unknown)".to_owned(), |id| {
                    format!("run {id}")
                });
            return Err(Error::Refused(format!(
                "the target is locked by {holder}; waited {}s (`lock-wait`). Let that run finish (see `cargo dbsafe runs`), or raise [apply] lock-wait",
                wait.as_secs()
            )));
        }
        sleep(POLL);
    }
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

fn open_lock_file(db: &Database) -> Result<(File, PathBuf)> {
    let db_path = db.url().sqlite_path().expect("SQLite has a path");
    let path = PathBuf::from(format!("{}.dbsafe-lock", db_path.display()));
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

/// The run id of the process holding the lock, when it can be found.
fn holder(db: &mut Database, file: Option<&mut (File, PathBuf)>) -> Option<String> {
    match db.backend() {
        Backend::Postgres => db
            .texts(&format!(
                "SELECT a.application_name AS v FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objid = {} AND l.classid = {} \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                PG_LOCK_KEY & 0xffff_ffff,
                PG_LOCK_KEY >> 32
            ))
            .ok()?
            .into_iter()
            .find_map(|name| name.strip_prefix("dbsafe ").map(str::to_owned)),
        Backend::Mysql => {
            // The run recorded as holder counts only if its connection holds the lock now:
            // an entry left by an earlier run, or a lock held outside dbsafe, names no run.
            let connection = db
                .texts(&format!(
                    "SELECT CAST(IS_USED_LOCK({}) AS CHAR) AS v",
                    mysql_lock_name()
                ))
                .ok()?
                .into_iter()
                .next()?;
            let recorded = crate::ledger::meta_get(db, "lock_holder").ok().flatten()?;
            let (holder_connection, run) = recorded.split_once(' ')?;
            (holder_connection == connection).then(|| run.to_owned())
        }
        Backend::Sqlite => {
            let (_, path) = file?;
            let mut text = String::new();
            File::open(path).ok()?.read_to_string(&mut text).ok()?;
            Some(text.trim().to_owned()).filter(|s| !s.is_empty())
        }
    }
}
