//! An open connection to a target, whatever its backend, with the few raw queries the
//! engine needs (single values, table existence) written once for all three backends.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::{MysqlConnection, PgConnection, SqliteConnection};

use crate::error::{Error, Result};
use crate::target::{Backend, DatabaseUrl};

pub use any::{AnyConnection, MultiBackend};

#[allow(missing_docs)] // the derive generates undocumented items
mod any {
    use diesel::{MysqlConnection, PgConnection, SqliteConnection};

    /// diesel's connection over the three backends; migrations and the ledger's queries run
    /// through it unchanged, backend-specific SQL matches on the variant.
    #[derive(diesel::MultiConnection)]
    pub enum AnyConnection {
        /// PostgreSQL.
        Postgresql(PgConnection),
        /// MySQL / MariaDB.
        Mysql(MysqlConnection),
        /// SQLite.
        Sqlite(SqliteConnection),
    }
}

/// How long a SQLite connection waits for another's lock, unless a step sets its own.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 5000;

/// Whether opening a SQLite file may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the file if missing (apply on a new database).
    IfMissing,
    /// The file must exist (commands that only read).
    Never,
}

/// An open connection with its URL.
pub struct Database {
    /// The diesel connection.
    pub conn: AnyConnection,
    url: DatabaseUrl,
    /// Set when [`Database::ensure_alive`] had to open a new session (locks held by the
    /// old one are gone); cleared by whoever takes them again.
    pub reconnected: bool,
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

#[derive(QueryableByName)]
struct IntRow {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

impl Database {
    /// Connects to `url`. Errors never contain the password.
    pub fn connect(url: &DatabaseUrl, create: Create) -> Result<Database> {
        let redacted = url.redacted();
        let fail = |e: diesel::ConnectionError| Error::Connect {
            url: redacted.clone(),
            message: scrub(&e.to_string(), url),
        };
        let conn = match url.backend() {
            Backend::Postgres => {
                let mut pg = PgConnection::establish(url.connection_string()).map_err(fail)?;
                // client_connection_check_interval (PostgreSQL 14+; older servers have no
                // such row, a no-op): if dbsafe dies mid-statement, the server ends the session
                // within a second (rolling back, freeing the lock) instead of running a long
                // migration to its end for nobody.
                pg.batch_execute(
                    "SET application_name = 'dbsafe'; \
                     SELECT set_config(name, '1000', false) FROM pg_settings \
                     WHERE name = 'client_connection_check_interval'",
                )
                .map_err(|e| Error::db("setting up the PostgreSQL session", e))?;
                crate::pooler::ensure_direct(&mut pg, url)?;
                AnyConnection::Postgresql(pg)
            }
            Backend::Mysql => AnyConnection::Mysql(
                MysqlConnection::establish(url.connection_string()).map_err(fail)?,
            ),
            Backend::Sqlite => {
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
                    SqliteConnection::establish(url.connection_string()).map_err(fail)?;
                lite.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON;"
                ))
                .map_err(|e| Error::db("setting up the SQLite connection", e))?;
                AnyConnection::Sqlite(lite)
            }
        };
        Ok(Database {
            conn,
            url: url.clone(),
            reconnected: false,
        })
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The URL this connection was opened with.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Runs SQL that returns nothing (one or several statements).
    pub fn execute(&mut self, sql: &str) -> QueryResult<()> {
        self.conn.batch_execute(sql)
    }

    /// Runs a query whose single column is named `v` and is text; returns every row.
    pub fn texts(&mut self, sql: &str) -> QueryResult<Vec<String>> {
        texts(&mut self.conn, sql)
    }

    /// Runs a query whose single column is named `v` and is a 64-bit integer.
    pub fn integer(&mut self, sql: &str) -> QueryResult<i64> {
        integer(&mut self.conn, sql)
    }

    /// Whether the connection still answers; if not, opens a new one in its place.
    /// Returns true when it had to reconnect (session state such as locks is gone).
    pub fn ensure_alive(&mut self) -> Result<bool> {
        if self.execute("SELECT 1").is_ok() {
            return Ok(false);
        }
        *self = Database::connect(&self.url, Create::Never)?;
        self.reconnected = true;
        Ok(true)
    }

    /// Whether a table of this name exists in the connection's database / schema search path.
    pub fn table_exists(&mut self, table: &str) -> QueryResult<bool> {
        Ok(self.tables_present(&[table])? > 0)
    }

    /// How many of `tables` exist (in the database / schema search path), in one query.
    pub fn tables_present(&mut self, tables: &[&str]) -> QueryResult<usize> {
        let names = tables
            .iter()
            .map(|t| quote(t))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = match self.backend() {
            Backend::Postgres => format!(
                "SELECT CAST(count(*) AS BIGINT) AS v FROM pg_catalog.pg_tables WHERE tablename IN ({names}) AND schemaname = ANY (current_schemas(false))"
            ),
            Backend::Mysql => format!(
                "SELECT CAST(count(*) AS SIGNED) AS v FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ({names})"
            ),
            Backend::Sqlite => format!(
                "SELECT count(*) AS v FROM sqlite_master WHERE type = 'table' AND name IN ({names})"
            ),
        };
        Ok(self.integer(&sql)?.max(0) as usize)
    }
}

/// Runs a query whose single column is named `v` and is text; returns every row.
pub fn texts(conn: &mut AnyConnection, sql: &str) -> QueryResult<Vec<String>> {
    Ok(diesel::sql_query(sql)
        .load::<TextRow>(conn)?
        .into_iter()
        .map(|r| r.v)
        .collect())
}

/// Runs a query whose single column is named `v` and is a 64-bit integer.
pub fn integer(conn: &mut AnyConnection, sql: &str) -> QueryResult<i64> {
    Ok(diesel::sql_query(sql).get_result::<IntRow>(conn)?.v)
}

/// Removes the URL's password from a driver message, should a driver echo it.
fn scrub(message: &str, url: &DatabaseUrl) -> String {
    let raw = url.connection_string();
    let mut message = message.replace(raw, &url.redacted());
    if let Some(password) = password_of(raw) {
        message = message.replace(&password, "***");
    }
    message
}

fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then(|| password.to_owned())
}

/// Quotes a string literal for SQL text built by dbsafe (values dbsafe itself made).
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
