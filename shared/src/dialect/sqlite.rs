//! SQLite: a file, not a server. The target lock is an exclusive lock on a file beside the
//! database, timeouts are `busy_timeout`, scratch databases are files, and a restore is a
//! synced file renamed over the target.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

use super::{Backend, Dialect, ForeignKey, LedgerGuard, json_rows, json_text};
use crate::config::SnapshotStrategy;
use crate::connection::{AnyConnection, Create, Database, SQLITE_BUSY_TIMEOUT_MS, connect_error};
use crate::error::{Error, Result};
use crate::lock::{LockFile, LockState, unknown_holder};
use crate::run_id::RunId;
use crate::snapshot::{Recovered, Scratch, SwapPlan, swap};
use crate::target::DatabaseUrl;

/// SQLite's dialect.
pub(super) struct Sqlite;

fn lock_file_path(db: &Database) -> PathBuf {
    let db_path = db.url().sqlite_path().expect("SQLite has a path");
    PathBuf::from(format!("{}.dbsafe-lock", db_path.display()))
}

impl Dialect for Sqlite {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn ident(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// `'` doubled; SQLite has no backslash escapes.
    fn literal(&self, text: &str) -> String {
        format!("'{}'", text.replace('\'', "''"))
    }

    fn json_array(&self, items: &str) -> String {
        format!("json_array({items})")
    }

    /// Refuses a missing file unless `create`, and a missing directory always; sets the
    /// busy timeout and turns foreign keys on.
    fn open(&self, url: &DatabaseUrl, create: Create) -> Result<AnyConnection> {
        let path = url.sqlite_path().expect("a SQLite URL has a path");
        if create == Create::Never && !path.exists() {
            return Err(Error::NoSqliteFile {
                path: path.to_owned(),
            });
        }
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            return Err(Error::BadUrl(format!(
                "the directory of SQLite database {} does not exist: check the URL or create the directory",
                path.display()
            )));
        }
        let mut lite =
            SqliteConnection::establish(url.connection_string()).map_err(connect_error(url))?;
        lite.batch_execute(&format!(
            "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON;"
        ))
        .map_err(|e| Error::db("setting up the SQLite connection", e))?;
        Ok(AnyConnection::Sqlite(lite))
    }

    /// `busy_timeout`, which holds for the whole connection; SQLite has no statement timeout.
    fn timeouts_sql(
        &self,
        lock_timeout: Duration,
        _statement_timeout: Option<Duration>,
        _in_transaction: bool,
    ) -> String {
        format!("PRAGMA busy_timeout = {}", lock_timeout.as_millis())
    }

    fn reset_timeouts_sql(&self) -> String {
        format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    }

    fn no_sync_sql(&self) -> Option<&'static str> {
        Some("PRAGMA synchronous = OFF")
    }

    /// `DATABASE.dbsafe-lock` beside the database file.
    fn lock_file(&self, db: &Database) -> Result<Option<LockFile>> {
        let path = lock_file_path(db);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Some(LockFile { file, path }))
    }

    /// An exclusive lock on the lock file, which then holds the run id.
    fn try_lock(
        &self,
        _db: &mut Database,
        file: Option<&mut LockFile>,
        run_id: &RunId,
    ) -> Result<bool> {
        let LockFile { file, path } = file.expect("opened by the caller");
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)
                    .and_then(|_| file.rewind())
                    .and_then(|_| file.write_all(run_id.as_str().as_bytes()))
                    .map_err(|e| Error::io(path.clone(), e))?;
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path.clone(), e)),
        }
    }

    fn lock_holder(&self, _db: &mut Database, file: Option<&mut LockFile>) -> LockState {
        let Some(LockFile { path, .. }) = file else {
            return unknown_holder("lock file");
        };
        let mut text = String::new();
        let _ = File::open(&*path).and_then(|mut f| f.read_to_string(&mut text));
        LockState::Held {
            run: RunId::parse_opt(text.trim()),
            session: format!("lock file {}", path.display()),
        }
    }

    /// Opens the lock file only if it exists, and only tries its lock.
    fn probe_lock(&self, db: &mut Database) -> Result<LockState> {
        let path = lock_file_path(db);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => match file.try_lock() {
                Ok(()) => {
                    let _ = file.unlock();
                    Ok(LockState::Free)
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    Ok(self.lock_holder(db, Some(&mut LockFile { file, path })))
                }
                Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockState::Free),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn release_lock(&self, _db: &mut Database, file: Option<LockFile>) {
        if let Some(LockFile { file, .. }) = file {
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }

    fn lock_held_by_session(&self) -> bool {
        false
    }

    /// Another connection's statement cannot be stopped from outside.
    fn can_cancel_statements(&self) -> bool {
        false
    }

    /// `BEGIN IMMEDIATE`; everything in one transaction.
    fn ledger_guard(&self) -> LedgerGuard {
        LedgerGuard {
            begin: "BEGIN IMMEDIATE".to_owned(),
            commit: "COMMIT",
            rollback: "ROLLBACK",
        }
    }

    fn tables_present_sql(&self, names: &[&str]) -> String {
        let names = self.literal_list(names);
        format!(
            "SELECT count(*) AS v FROM sqlite_master WHERE type = 'table' AND name IN ({names})"
        )
    }

    fn column_count_sql(&self, table: &str, column: &str) -> String {
        format!(
            "SELECT count(*) AS v FROM pragma_table_info({}) WHERE name = {}",
            self.literal(table),
            self.literal(column)
        )
    }

    fn server_version_sql(&self) -> &'static str {
        "SELECT sqlite_version() AS v"
    }

    fn table_estimates_sql(&self) -> &'static str {
        "SELECT json_array(name, 0) AS v FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    }

    fn primary_key_sql(&self, table: &str) -> String {
        format!(
            "SELECT name AS v FROM pragma_table_info({}) WHERE pk > 0 ORDER BY pk",
            self.literal(table)
        )
    }

    fn rows_json_sql(&self, db: &mut Database, table: &str) -> diesel::QueryResult<String> {
        let columns = db.texts(&format!(
            "SELECT name AS v FROM pragma_table_info({}) ORDER BY cid",
            self.literal(table)
        ))?;
        let pairs: Vec<String> = columns
            .iter()
            .map(|c| format!("{}, {}", self.literal(c), self.qualified(c)))
            .collect();
        Ok(format!(
            "SELECT json_object({}) AS v FROM {}",
            pairs.join(", "),
            self.qualified(table)
        ))
    }

    fn foreign_keys(&self, db: &mut Database) -> Result<Vec<ForeignKey>> {
        let context = "listing foreign keys";
        let tables = db
            .texts("SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(|e| Error::db(context, e))?;
        let mut out = Vec::new();
        for table in tables {
            let sql = format!(
                "SELECT json_array(id, \"table\", \"from\", \"to\") AS v FROM pragma_foreign_key_list({}) ORDER BY id, seq",
                self.literal(&table)
            );
            let mut keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
            for r in json_rows(db, &sql, context)? {
                let id = r[0].as_i64().unwrap_or(0);
                let key = keys.entry(id).or_insert_with(|| ForeignKey {
                    name: format!("{table} fk #{id}"),
                    child: table.clone(),
                    child_columns: Vec::new(),
                    parent: json_text(&r[1]),
                    parent_columns: Vec::new(),
                    validated: true,
                });
                key.child_columns.push(json_text(&r[2]));
                // A missing "to" means the parent's primary key.
                key.parent_columns.push(if r[3].is_null() {
                    String::new()
                } else {
                    json_text(&r[3])
                });
            }
            for mut key in keys.into_values() {
                if key.parent_columns.iter().any(String::is_empty) {
                    key.parent_columns = db
                        .texts(&format!(
                            "SELECT name AS v FROM pragma_table_info({}) WHERE pk > 0 ORDER BY pk",
                            self.literal(&key.parent)
                        ))
                        .map_err(|e| Error::db(context, e))?;
                }
                out.push(key);
            }
        }
        Ok(out)
    }

    fn triggers_sql(&self) -> &'static str {
        "SELECT tbl_name || '.' || name AS v FROM sqlite_master WHERE type = 'trigger'"
    }

    /// The database file's canonical path.
    fn identity(&self, db: &mut Database) -> Result<String> {
        let path = db.url().sqlite_path().expect("SQLite has a path");
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        Ok(format!("sqlite:{}", canonical.display()))
    }

    fn database_exists(&self, url: &DatabaseUrl) -> Result<bool> {
        Ok(url.sqlite_path().is_some_and(Path::exists))
    }

    /// Opening the file creates it.
    fn create_database(&self, url: &DatabaseUrl) -> Result<()> {
        Database::connect(url, Create::IfMissing).map(drop)
    }

    fn create_scratch(&self, _url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl> {
        let _ = fs::remove_file(name);
        DatabaseUrl::parse(name, Path::new("/"))
    }

    fn drop_database(&self, _url: &DatabaseUrl, name: &str) -> Result<()> {
        let _ = fs::remove_file(name);
        Ok(())
    }

    fn snapshot_strategies(&self) -> &'static [SnapshotStrategy] {
        &[SnapshotStrategy::SqliteBackup]
    }

    /// Beside the target file, for `keep-replaced`.
    fn swap_plan(&self, target: &DatabaseUrl, staging: &str, run_id: &RunId) -> Result<SwapPlan> {
        Ok(SwapPlan {
            staging: staging.to_owned(),
            replaced: swap::sqlite::replaced_file(target, run_id)?
                .to_string_lossy()
                .into_owned(),
            recreate: Vec::new(),
            original: Vec::new(),
        })
    }

    fn swap(
        &self,
        db: &mut Database,
        target: &DatabaseUrl,
        staging: Scratch,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<()> {
        swap::sqlite::swap(db, target, staging, plan, keep_replaced)
    }

    fn recover_swap(
        &self,
        _target: &DatabaseUrl,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<Recovered> {
        Ok(swap::sqlite::recover(plan, keep_replaced))
    }
}
