//! `cargo dbsafe setup`: create the target's database when it does not exist yet (as
//! `diesel setup` does), so that apply can run on it.

use crate::error::Result;
use crate::target::DatabaseUrl;

/// Whether the database of `url` exists: the SQLite file, or the database on its server
/// (asked on the server's maintenance database, so a wrong password is still an error).
pub fn database_exists(url: &DatabaseUrl) -> Result<bool> {
    url.backend().dialect().database_exists(url)
}

/// Creates the database of `url` when it does not exist; returns whether it did. A SQLite
/// file is created by opening it.
pub fn create_if_missing(url: &DatabaseUrl) -> Result<bool> {
    if database_exists(url)? {
        return Ok(false);
    }
    url.backend().dialect().create_database(url)?;
    Ok(true)
}
