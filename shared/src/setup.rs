//! `cargo dbsafe setup`: create the target's database when it does not exist yet (as
//! `diesel setup` does), so that apply can run on it.

use std::path::Path;

use crate::connection::{Create, Database, quote};
use crate::error::{Error, Result};
use crate::snapshot::{maintenance, mysql_ident, pg_ident};
use crate::target::{Backend, DatabaseUrl};

/// Whether the database of `url` exists: the SQLite file, or the database on its server
/// (asked on the server's maintenance database, so a wrong password is still an error).
pub fn database_exists(url: &DatabaseUrl) -> Result<bool> {
    if url.backend() == Backend::Sqlite {
        return Ok(url.sqlite_path().is_some_and(Path::exists));
    }
    let name = database_name(url);
    let sql = if url.backend() == Backend::Postgres {
        format!(
            "SELECT datname AS v FROM pg_database WHERE datname = {}",
            quote(&name)
        )
    } else {
        format!(
            "SELECT CAST(SCHEMA_NAME AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            quote(&name)
        )
    };
    let rows = maintenance(url)?
        .texts(&sql)
        .map_err(|e| Error::db("looking up the database on its server", e))?;
    Ok(!rows.is_empty())
}

/// Creates the database of `url` when it does not exist; returns whether it did. A SQLite
/// file is created by opening it.
pub fn create_if_missing(url: &DatabaseUrl) -> Result<bool> {
    if database_exists(url)? {
        return Ok(false);
    }
    let name = database_name(url);
    let create = match url.backend() {
        Backend::Sqlite => {
            Database::connect(url, Create::IfMissing)?;
            return Ok(true);
        }
        Backend::Postgres => format!("CREATE DATABASE {}", pg_ident(&name)),
        Backend::Mysql => format!("CREATE DATABASE {}", mysql_ident(&name)),
    };
    maintenance(url)?
        .execute(&create)
        .map_err(|e| Error::db(format!("creating database {name}"), e))?;
    Ok(true)
}

fn database_name(url: &DatabaseUrl) -> String {
    url.server_params().map(|p| p.database).unwrap_or_default()
}
