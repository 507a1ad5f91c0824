//! What differs between the database backends, in one place: [`Backend`] names the engine
//! (from a URL's scheme, or `[lint] dialect` in dbsafe.toml), and its [`Dialect`] says how
//! to quote, set timeouts, take the target lock, write the ledger, make and drop scratch
//! databases, snapshot and read the catalog on it. One file per backend implements it
//! (`postgres.rs`, `mysql.rs`, `sqlite.rs`); the engine asks `backend.dialect()` rather than
//! matching on the backend.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SnapshotStrategy;
use crate::connection::{AnyConnection, Create, Database};
use crate::error::{Error, Result};
use crate::lock::{LockFile, LockState};
use crate::run_id::RunId;
use crate::snapshot::{Recovered, Scratch, SwapPlan};
use crate::target::DatabaseUrl;

mod mysql;
mod postgres;
mod sqlite;

/// The database engines dbsafe works with (`[lint] dialect` spells them the same way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// SQLite (bundled).
    Sqlite,
}

impl Backend {
    /// Every backend, in documentation order.
    pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::Mysql, Backend::Sqlite];

    /// Its name in dbsafe.toml, URLs' schemes and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }

    /// How SQL is written and run on this backend.
    pub fn dialect(self) -> &'static dyn Dialect {
        match self {
            Backend::Postgres => &postgres::Postgres,
            Backend::Mysql => &mysql::Mysql,
            Backend::Sqlite => &sqlite::Sqlite,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One foreign key, as the catalog describes it.
pub struct ForeignKey {
    /// Its name (SQLite: `table fk #N`).
    pub name: String,
    /// The table holding the reference.
    pub child: String,
    /// Its columns.
    pub child_columns: Vec<String>,
    /// The referenced table.
    pub parent: String,
    /// The referenced columns, in the order of `child_columns`.
    pub parent_columns: Vec<String>,
    /// Whether existing rows were checked (PostgreSQL `NOT VALID` ones were not).
    pub validated: bool,
}

/// Runs a catalog query whose column `v` holds JSON, and parses each row (unparsable
/// rows are left out).
pub(crate) fn json_rows(
    db: &mut Database,
    sql: &str,
    context: &str,
) -> Result<Vec<serde_json::Value>> {
    let rows = db
        .texts(sql)
        .map_err(|e| crate::error::Error::db(context, e))?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect())
}

/// A JSON array of strings as strings (other values left out).
pub(crate) fn json_strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON string as it is; any other value as JSON text.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// How a backend writes SQL text, as far as cutting it into statements and comments goes;
/// the default is standard SQL (SQLite).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lexicon {
    /// `#` starts a comment to the end of the line (MySQL).
    pub hash_comments: bool,
    /// A backslash escapes the next character inside `'...'` and `"..."` (MySQL).
    pub backslash_escapes: bool,
    /// `"..."` is a string, not a quoted identifier (MySQL).
    pub double_quoted_strings: bool,
    /// `$tag$ ... $tag$` is a string (PostgreSQL).
    pub dollar_quotes: bool,
    /// `/* /* */ */` nests (PostgreSQL).
    pub nested_comments: bool,
}

/// The ledger's creation guard: what serialises two processes creating or upgrading the
/// ledger at once (see [`crate::ledger::ensure`]).
pub struct LedgerGuard {
    /// Taken before the first statement.
    pub begin: String,
    /// After the last one.
    pub commit: &'static str,
    /// When a statement failed.
    pub rollback: &'static str,
}

/// One backend's way of doing what dbsafe does on every backend. Implemented once per
/// backend; reached through [`Backend::dialect`].
pub trait Dialect: Sync {
    /// The backend this is the dialect of.
    fn backend(&self) -> Backend;

    // --- quoting ---------------------------------------------------------------------

    /// How SQL text is read: comments, string quotes, escapes.
    fn lexicon(&self) -> Lexicon {
        Lexicon::default()
    }

    /// An identifier, quoted (PostgreSQL and SQLite: `"` doubled inside double quotes;
    /// MySQL: a backtick doubled inside backticks).
    fn ident(&self, name: &str) -> String;

    /// `schema.table` with each part quoted as an identifier.
    fn qualified(&self, name: &str) -> String {
        name.split('.')
            .map(|part| self.ident(part))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// A string literal that reads back exactly `text` (quotes doubled; backslashes escaped
    /// where the backend would read them as escapes).
    fn literal(&self, text: &str) -> String;

    /// [`Dialect::literal`], or `NULL`.
    fn literal_or_null(&self, text: Option<&str>) -> String {
        text.map_or_else(|| "NULL".to_owned(), |t| self.literal(t))
    }

    /// A boolean literal.
    fn bool_literal(&self, value: bool) -> &'static str {
        if value { "1" } else { "0" }
    }

    /// The type text is cast to (`CAST(x AS TEXT)`; MySQL: `CHAR`).
    fn text_type(&self) -> &'static str {
        "TEXT"
    }

    /// `parts` (SQL text expressions) joined into one text (`a || b`; MySQL: `CONCAT(a, b)`).
    fn concat(&self, parts: &[&str]) -> String {
        parts.join(" || ")
    }

    /// A binary column's bytes as lowercase hex text.
    fn hex_of(&self, column: &str) -> String {
        format!("lower(hex({column}))")
    }

    /// A binary literal of `bytes` (`X'00ff'`; PostgreSQL: `decode('00ff', 'hex')`).
    fn bytes_literal(&self, bytes: &[u8]) -> String {
        format!("X'{}'", crate::migrations::hex(bytes))
    }

    /// The type of a binary column (`BLOB`; PostgreSQL: `BYTEA`).
    fn bytes_type(&self) -> &'static str {
        "BLOB"
    }

    /// A column that records when its row was written, set by the server.
    fn created_at_column(&self) -> &'static str {
        "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    }

    /// The type a 64-bit count is cast to (`CAST(count(*) AS BIGINT)`; MySQL: `SIGNED`).
    fn bigint_type(&self) -> &'static str {
        "BIGINT"
    }

    /// A JSON array of SQL expressions, read back as text.
    fn json_array(&self, items: &str) -> String;

    /// A condition true when the value of `expr` is not true (false or NULL).
    fn is_not_true(&self, expr: &str) -> String {
        format!("NOT COALESCE({expr}, 0)")
    }

    // --- sessions, transactions and timeouts -----------------------------------------

    /// Whether an invariant can run as another role, with session settings, or expect the
    /// server to refuse its statement (PostgreSQL: `SET LOCAL ROLE`, `set_config`, the
    /// refusal caught in a `DO` block).
    fn behaviour_checks(&self) -> bool {
        false
    }

    /// Opens a session on `url` with dbsafe's session settings.
    fn open(&self, url: &DatabaseUrl, create: Create) -> Result<AnyConnection>;

    /// Whether DDL runs inside a transaction (a migration and its ledger rows can commit as
    /// one). MySQL/MariaDB DDL commits implicitly.
    fn transactional_ddl(&self) -> bool {
        true
    }

    /// The statements that set a lock timeout and a statement timeout (`None`: no limit);
    /// `in_transaction`: for the open transaction only, where the backend can.
    fn timeouts_sql(
        &self,
        lock_timeout: Duration,
        statement_timeout: Option<Duration>,
        in_transaction: bool,
    ) -> String;

    /// The statements that put session-level timeouts back to the session's defaults.
    fn reset_timeouts_sql(&self) -> String;

    /// The statement that lets a throwaway database's commits skip waiting for the disk.
    fn no_sync_sql(&self) -> Option<&'static str> {
        None
    }

    // --- the target lock ---------------------------------------------------------------

    /// The lock's file, for a backend whose lock is a file (SQLite), created if missing.
    fn lock_file(&self, _db: &Database) -> Result<Option<LockFile>> {
        Ok(None)
    }

    /// Takes the target lock for `run_id` if it is free; `file` is [`Dialect::lock_file`]'s.
    fn try_lock(
        &self,
        db: &mut Database,
        file: Option<&mut LockFile>,
        run_id: &RunId,
    ) -> Result<bool>;

    /// Who holds the target lock, as far as it can be found.
    fn lock_holder(&self, db: &mut Database, file: Option<&mut LockFile>) -> LockState;

    /// Who holds the target lock, without taking it, creating nor writing anything.
    fn probe_lock(&self, db: &mut Database) -> Result<LockState> {
        Ok(self.lock_holder(db, None))
    }

    /// Releases a lock taken by [`Dialect::try_lock`].
    fn release_lock(&self, db: &mut Database, file: Option<LockFile>);

    /// Records, where waiters read it from the ledger (MySQL), that this session holds the
    /// lock for `run_id`.
    fn announce_lock_holder(&self, _db: &mut Database, _run_id: &RunId) -> Result<()> {
        Ok(())
    }

    /// Cancels the statement the session holding the lock runs (another session of this
    /// run, stopped by Ctrl-C), where the backend can.
    fn cancel_lock_holder(&self, _db: &mut Database) {}

    /// Whether the lock belongs to the session that took it (gone with it: a new session
    /// must take it again); SQLite's lock file outlives its connection.
    fn lock_held_by_session(&self) -> bool {
        true
    }

    /// Whether [`Dialect::cancel_lock_holder`] can stop another session's statement.
    fn can_cancel_statements(&self) -> bool {
        true
    }

    // --- the ledger --------------------------------------------------------------------

    /// The column type of the ledger's long texts (errors, payloads).
    fn long_text_type(&self) -> &'static str {
        "TEXT"
    }

    /// What serialises creating or upgrading the ledger between processes.
    fn ledger_guard(&self) -> LedgerGuard;

    /// Inserts `(name, value)` rows into `table`, replacing the value of a name present.
    fn upsert_sql(&self, table: &str, values: &str) -> String {
        format!(
            "INSERT INTO {table} (name, value) VALUES {values} ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
    }

    // --- the catalog -------------------------------------------------------------------

    /// How many of the tables named `names` exist in the database / schema search path:
    /// one row, column `v`.
    fn tables_present_sql(&self, names: &[&str]) -> String;

    /// `names` as a comma-separated list of literals.
    fn literal_list(&self, names: &[&str]) -> String {
        let literals: Vec<String> = names.iter().map(|name| self.literal(name)).collect();
        literals.join(", ")
    }

    /// How many columns named `column` table `table` has (0 or 1): one row, column `v`.
    fn column_count_sql(&self, table: &str, column: &str) -> String;

    /// The server's version: one row, column `v`.
    fn server_version_sql(&self) -> &'static str;

    /// Every user table with the planner's row estimate (0 where there is none): rows of
    /// column `v`, a JSON array `[name, estimate]`.
    fn table_estimates_sql(&self) -> &'static str;

    /// Other sessions' transactions open for longer than `age`, one row each (column `v`,
    /// describing it); `None` where the backend cannot tell.
    fn old_transactions_sql(&self, _age: Duration) -> Option<String> {
        None
    }

    /// How many client sessions are connected to the server (column `v`); `None` where the
    /// backend cannot tell.
    fn client_connections_sql(&self) -> Option<&'static str> {
        None
    }

    /// The statement that gathers the planner's statistics (a restored database has none);
    /// `None` where the backend needs none.
    fn analyze_sql(&self) -> Option<&'static str> {
        None
    }

    /// Every foreign key of the database's user tables.
    fn foreign_keys(&self, db: &mut Database) -> Result<Vec<ForeignKey>>;

    /// The columns of `table`'s primary key, in key order: rows of column `v`.
    fn primary_key_sql(&self, table: &str) -> String;

    /// Every row of `table` as a JSON object (column `v`), keys in column order.
    fn rows_json_sql(&self, db: &mut Database, table: &str) -> diesel::QueryResult<String>;

    /// Every trigger as `table.trigger`: rows of column `v`.
    fn triggers_sql(&self) -> &'static str;

    /// Which of the tables named by `names` (literals, comma-separated) have row-level
    /// security enabled: rows of column `v`; `None` where the backend has none.
    fn rls_enabled_sql(&self, _names: &str) -> Option<String> {
        None
    }

    /// The identity of the database `db` reaches (server and database, or file).
    fn identity(&self, db: &mut Database) -> Result<String>;

    // --- databases beside the target ---------------------------------------------------

    /// The query listing the server's databases, as rows of `name`, that a fleet selects
    /// its members from (`None`: no server, SQLite).
    fn database_list_sql(&self) -> Option<&'static str> {
        None
    }

    /// The query listing a database's schemas, as rows of `name`, that a fleet selects its
    /// members from (`None`: no schema per tenant on this backend).
    fn schema_list_sql(&self) -> Option<&'static str> {
        None
    }

    /// The database a session opens to work on the server rather than on a database
    /// (`None`: no server, SQLite).
    fn maintenance_database(&self) -> Option<&'static str> {
        None
    }

    /// Whether the database (or file) of `url` exists.
    fn database_exists(&self, url: &DatabaseUrl) -> Result<bool>;

    /// Creates the database of `url`, empty, with the server's defaults.
    fn create_database(&self, url: &DatabaseUrl) -> Result<()> {
        let name = url.database_name();
        crate::snapshot::maintenance(url)?
            .execute(&format!("CREATE DATABASE {}", self.ident(&name)))
            .map_err(|e| Error::db(format!("creating database {name}"), e))
    }

    /// A new empty database `name` beside `url`'s, with its encoding or character set
    /// (SQLite: `name` is the file, removed if left over); returns its URL.
    fn create_scratch(&self, url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl>;

    /// Drops database `name` on the server of `url` (sessions on it ended; SQLite: the file
    /// `name` is deleted, a missing one is no error).
    fn drop_database(&self, url: &DatabaseUrl, name: &str) -> Result<()>;

    // --- snapshots and restore ------------------------------------------------------------

    /// The strategies that can snapshot this backend, `auto`'s choice first.
    fn snapshot_strategies(&self) -> &'static [SnapshotStrategy];

    /// Prepares a restore's staging database `staging` (made by [`Dialect::create_scratch`])
    /// to become the target: what a dump of the contents leaves out.
    fn prepare_staging(&self, _target: &DatabaseUrl, _staging: &str) -> Result<()> {
        Ok(())
    }

    /// The names a swap works with (see [`SwapPlan`]), before the copy is written.
    fn swap_plan(&self, target: &DatabaseUrl, staging: &str, run_id: &RunId) -> Result<SwapPlan>;

    /// Completes `plan` once the copy is written into `staging`, before the swap.
    fn complete_swap_plan(
        &self,
        _target: &DatabaseUrl,
        _staging: &DatabaseUrl,
        _plan: &mut SwapPlan,
    ) -> Result<()> {
        Ok(())
    }

    /// Swaps the restored copy in `staging` in for the target; `db` is the caller's session
    /// on the target, reopened where the swap had to close it.
    fn swap(
        &self,
        db: &mut Database,
        target: &DatabaseUrl,
        staging: Scratch,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<()>;

    /// Finishes or undoes a swap interrupted after `plan` was journaled.
    fn recover_swap(
        &self,
        target: &DatabaseUrl,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<Recovered>;
}

/// Whether `sql`, run on the server of `url` (its maintenance database), returns a row:
/// the database it names exists.
fn server_lists(url: &DatabaseUrl, sql: &str) -> Result<bool> {
    let rows = crate::snapshot::maintenance(url)?
        .texts(sql)
        .map_err(|e| Error::db("looking up the database on its server", e))?;
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_escape_once_per_backend() {
        let pg = Backend::Postgres.dialect();
        let my = Backend::Mysql.dialect();
        let lite = Backend::Sqlite.dialect();
        assert_eq!(pg.ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(lite.ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(my.ident("a`b"), "`a``b`");
        assert_eq!(pg.qualified("audit.log"), r#""audit"."log""#);
        assert_eq!(my.qualified("t"), "`t`");
        assert_eq!(pg.literal("it's"), "'it''s'");
        assert_eq!(pg.literal(r"a\b'"), r"E'a\\b'''");
        assert_eq!(lite.literal(r"a\b'"), r"'a\b'''");
        assert_eq!(my.literal(r"a\b'"), r"'a\\b'''");
        assert_eq!(pg.literal_or_null(None), "NULL");
    }

    #[test]
    fn names_are_the_toml_and_json_spelling() {
        for backend in Backend::ALL {
            let json = serde_json::to_string(&backend).unwrap();
            assert_eq!(json, format!("\"{backend}\""));
            assert_eq!(backend.dialect().backend(), backend);
        }
    }
}
