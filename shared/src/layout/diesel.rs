//! diesel's layout: `VERSION_NAME/up.sql` directories, `__diesel_schema_migrations`.

use std::path::Path;

use diesel::QueryResult;
use diesel::migration::MigrationConnection;

use super::History;
use crate::connection::{AnyConnection, Database};
use crate::error::{Error, Result};
use crate::ledger::__diesel_schema_migrations;
use crate::migrations::Migration;
use crate::target::Backend;

pub(super) struct Diesel;

impl History for Diesel {
    fn load(&self, dir: &Path) -> Result<Vec<Migration>> {
        crate::migrations::load_diesel(dir)
    }

    fn ensure(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        conn.setup().map(|_| ())
    }

    fn applied(&self, db: &mut Database) -> Result<Vec<String>> {
        use diesel::prelude::*;
        if !db
            .table_exists("__diesel_schema_migrations")
            .map_err(|e| Error::db("reading diesel's migrations table", e))?
        {
            return Ok(Vec::new());
        }
        __diesel_schema_migrations::table
            .select(__diesel_schema_migrations::version)
            .order(__diesel_schema_migrations::version)
            .load(&mut db.conn)
            .map_err(|e| Error::db("reading __diesel_schema_migrations", e))
    }

    fn record_up(
        &self,
        conn: &mut AnyConnection,
        migration: &Migration,
        _ns: i64,
    ) -> QueryResult<()> {
        insert_version(conn, &migration.version)
    }

    fn record_sql(&self, backend: Backend, migration: &Migration, up: bool) -> Option<String> {
        let version = backend.dialect().literal(&migration.version);
        Some(if up {
            format!("INSERT INTO __diesel_schema_migrations (version) VALUES ({version})")
        } else {
            format!("DELETE FROM __diesel_schema_migrations WHERE version = {version}")
        })
    }

    fn record_down(&self, conn: &mut AnyConnection, version: &str) -> QueryResult<()> {
        use diesel::prelude::*;
        let versions = __diesel_schema_migrations::table
            .filter(__diesel_schema_migrations::version.eq(version));
        diesel::delete(versions).execute(conn).map(|_| ())
    }
}

/// Records `version` in `__diesel_schema_migrations`.
pub(super) fn insert_version(conn: &mut AnyConnection, version: &str) -> QueryResult<()> {
    use diesel::prelude::*;
    diesel::insert_into(__diesel_schema_migrations::table)
        .values(__diesel_schema_migrations::version.eq(version))
        .execute(conn)
        .map(|_| ())
}
