//! An open connection to a target, whatever its backend, with the few raw queries the
//! engine needs (single values, table existence) written once for all three backends.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::target::{Backend, DatabaseUrl};

pub use any::{AnyConnection, MultiBackend};

#[allow(missing_docs)] // the derive generates undocumented items
mod any {
    use diesel::{MysqlConnection, PgConnection, SqliteConnection};

    /// diesel's connection over the three backends; migrations and the ledger's queries run
    /// through it unchanged, backend-specific SQL comes from the backend's dialect.
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
        let conn = url.backend().dialect().open(url, create)?;
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

    /// How SQL is written on this connection's backend.
    pub fn dialect(&self) -> &'static dyn Dialect {
        self.url.backend().dialect()
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
        let sql = self.backend().dialect().tables_present_sql(tables);
        Ok(self.integer(&sql)?.max(0) as usize)
    }
}

impl AnyConnection {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            AnyConnection::Postgresql(_) => Backend::Postgres,
            AnyConnection::Mysql(_) => Backend::Mysql,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
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

/// What a failed connection to `url` is reported as: the driver's message, never the password.
pub(crate) fn connect_error(url: &DatabaseUrl) -> impl Fn(diesel::ConnectionError) -> Error {
    let redacted = url.redacted();
    move |e| Error::Connect {
        url: redacted.clone(),
        message: scrub(&e.to_string(), url),
    }
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
