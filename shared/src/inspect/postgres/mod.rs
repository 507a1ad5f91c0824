//! PostgreSQL: the schema from pg_catalog (`schema.rs`), data hashed server-side on typed
//! values (`data.rs`) in one repeatable-read snapshot with fixed session settings, which
//! other sessions can share (`snapshot.rs`).

mod data;
mod schema;
mod snapshot;

pub(super) use data::{data_fingerprints, data_fingerprints_parallel};
pub(super) use schema::schema_lines;
pub use snapshot::{DataJob, SharedSnapshot};

use diesel::PgConnection;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::{Row, ident, json_rows};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::target::Backend;

/// Schemas that hold user objects: only its own for a fleet's schema member (whose session
/// sets `dbsafe.schema`, see `dialect/postgres.rs`).
const SCOPE: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
     AND COALESCE(NULLIF(current_setting('dbsafe.schema', true), ''), n.nspname) = n.nspname";

/// Not created by an extension (those are listed as `extension` lines).
fn not_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = '{catalog}'::regclass \
         AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// Session settings that make text output (and so fingerprints) independent of the
/// connection's defaults; `SET LOCAL`, so they end with [`stable`]'s transaction. With
/// `row_security` off a table that row-level security would filter for this user fails
/// loudly instead of being fingerprinted partially. JIT is off: compiling the long hashing
/// expressions in every process (parallel workers included) costs more than it saves (a
/// fingerprint of 1 GB takes about 8% longer with it).
const SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; \
     SET LOCAL bytea_output = 'hex'; SET LOCAL lc_monetary = 'C'; \
     SET LOCAL search_path = public; SET LOCAL statement_timeout = 0; \
     SET LOCAL row_security = off; SET LOCAL jit = off";

const READ_ONLY: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Runs `f` in a read-only repeatable-read transaction (a savepoint when the caller already
/// has a transaction) with [`SETTINGS`], then rolls it back: nothing is changed and the
/// settings do not outlive the call.
fn stable<T>(pg: &mut PgConnection, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
    let fail = |e: diesel::result::Error| Error::db("preparing a PostgreSQL read snapshot", e);
    let nested = AnsiTransactionManager::transaction_manager_status_mut(pg)
        .transaction_depth()
        .map_err(fail)?
        .is_some();
    if nested {
        AnsiTransactionManager::begin_transaction(pg).map_err(fail)?;
    } else {
        AnsiTransactionManager::begin_transaction_sql(pg, READ_ONLY).map_err(fail)?;
    }
    let result = pg
        .batch_execute(SETTINGS)
        .map_err(fail)
        .and_then(|()| f(pg));
    let rolled_back = AnsiTransactionManager::rollback_transaction(pg);
    let value = result?;
    rolled_back.map_err(|e| Error::db("ending a PostgreSQL read snapshot", e))?;
    Ok(value)
}

/// `name`, or `schema.name` outside `public`.
fn qualified(schema: &str, name: &str) -> String {
    if schema == "public" {
        ident(name)
    } else {
        format!("{}.{}", ident(schema), ident(name))
    }
}

/// How SQL is written on this backend.
fn dialect() -> &'static dyn Dialect {
    Backend::Postgres.dialect()
}

fn rows(pg: &mut PgConnection, sql: &str) -> Result<Vec<Row>> {
    json_rows(pg, sql, "reading the PostgreSQL catalog")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_public_are_qualified() {
        assert_eq!(qualified("public", "users"), "users");
        assert_eq!(qualified("audit", "Log"), "audit.Log");
        assert_eq!(dialect().ident("a\"b"), "\"a\"\"b\"");
    }
}
