//! diesel's layout: `VERSION_NAME/up.sql` directories, `__diesel_schema_migrations`.

use std::path::Path;

use diesel::QueryResult;
use diesel::migration::MigrationConnection;

use super::scan::{self, Problem, ScanFinding};
use super::{History, Layout, metadata};
use crate::connection::{AnyConnection, Database};
use crate::error::{Error, Result};
use crate::ledger::__diesel_schema_migrations;
use crate::migrations::{Migration, MigrationSource, version_of};
use crate::target::Backend;

/// The files a migration directory may hold.
pub const KNOWN_FILES: &[&str] = &["up.sql", "down.sql", "metadata.toml", "verify.sql"];

pub(super) struct Diesel;

impl History for Diesel {
    /// Every directory is a migration with an up.sql; files beside them, and files in
    /// them other than up.sql, down.sql, metadata.toml and verify.sql, are stray.
    fn read(&self, dir: &Path, findings: &mut Vec<ScanFinding>) -> Result<Vec<Migration>> {
        let mut migrations = Vec::new();
        for entry in scan::entries(dir)? {
            if !entry.is_dir {
                findings.push(ScanFinding {
                    path: entry.path,
                    line: None,
                    problem: Problem::StrayFile {
                        in_migration: false,
                    },
                });
                continue;
            }
            if let Some(migration) = read_migration(&entry.path, &entry.name, findings)? {
                migrations.push(migration);
            }
        }
        Ok(migrations)
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

/// Reads one directory of the migrations directory; `None` when it has no up.sql.
fn read_migration(
    dir: &Path,
    name: &str,
    findings: &mut Vec<ScanFinding>,
) -> Result<Option<Migration>> {
    let listing = scan::list(dir).map_err(|e| Error::io(dir, e))?;
    let files: Vec<String> = listing.into_iter().map(|e| e.name).collect();
    if !files.iter().any(|f| f == "up.sql") {
        findings.push(ScanFinding {
            path: dir.to_owned(),
            line: None,
            problem: Problem::NoUpFile { files },
        });
        return Ok(None);
    }
    let mut read = |file: &str| -> Result<Option<String>> {
        if files.iter().any(|f| f == file) {
            scan::read_text(&dir.join(file), findings)
        } else {
            Ok(None)
        }
    };
    let up_sql = read("up.sql")?.unwrap_or_default();
    let down = read("down.sql")?;
    let verify_sql = read("verify.sql")?.filter(|s| !s.trim().is_empty());
    let metadata_text = read("metadata.toml")?;
    for file in files.iter().filter(|f| !KNOWN_FILES.contains(&f.as_str())) {
        findings.push(ScanFinding {
            path: dir.join(file),
            line: None,
            problem: Problem::StrayFile { in_migration: true },
        });
    }
    let metadata =
        metadata_text.map(|text| metadata::read(&dir.join("metadata.toml"), &text, findings));
    let mut migration = Migration::new(MigrationSource {
        layout: Layout::Diesel,
        version: version_of(name),
        name: name.to_owned(),
        description: name.to_owned(),
        dir: dir.to_owned(),
        up_path: dir.join("up.sql"),
        down_path: dir.join("down.sql"),
        up_sql,
        down,
        verify_sql,
        run_in_transaction: metadata.as_ref().is_none_or(|m| m.run_in_transaction),
        forward_only: false,
        history_checksum: Vec::new(),
    });
    if let Some(metadata) = metadata {
        migration.no_transaction_line = metadata.no_transaction_line;
        migration.metadata_warning = metadata.warning;
    }
    Ok(Some(migration))
}
