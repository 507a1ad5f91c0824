//! One moment of a PostgreSQL database that several sessions read (an exported snapshot).

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::data::{Table, data_tables, export_snapshot, fingerprint_tables};
use super::{READ_ONLY, SETTINGS, stable};
use crate::connection::{AnyConnection, Create, Database};
use crate::error::{Error, Result};
use crate::inspect::TableFingerprint;
use crate::target::DatabaseUrl;

/// One moment of a PostgreSQL database that several sessions read: a read-only
/// repeatable-read transaction on its own connection, with the fixed session settings, whose
/// snapshot is exported (`pg_export_snapshot`). Other sessions import it by its
/// [`SharedSnapshot::id`] (`pg_dump --snapshot=ID`, the workers of
/// [`SharedSnapshot::data_job`]) and see exactly the data and catalog this one sees; it
/// stays valid until [`SharedSnapshot::end`] (or drop), so keep it open until every reader
/// has started.
pub struct SharedSnapshot {
    db: Database,
    id: String,
}

impl SharedSnapshot {
    /// Opens a connection to `url`, begins the transaction and exports its snapshot.
    pub fn begin(url: &DatabaseUrl) -> Result<SharedSnapshot> {
        let mut db = Database::connect(url, Create::Never)?;
        let AnyConnection::Postgresql(pg) = &mut db.conn else {
            return Err(Error::Failed(
                "a shared snapshot needs a PostgreSQL database".into(),
            ));
        };
        let fail = |e: diesel::result::Error| Error::db("preparing a PostgreSQL read snapshot", e);
        AnsiTransactionManager::begin_transaction_sql(pg, READ_ONLY).map_err(fail)?;
        // The transaction sits idle while pg_dump runs: a server-wide idle timeout must not
        // end it (and with it the snapshot) half-way.
        pg.batch_execute(&format!(
            "{SETTINGS}; SET LOCAL idle_in_transaction_session_timeout = 0"
        ))
        .map_err(fail)?;
        let id = export_snapshot(pg)?;
        Ok(SharedSnapshot { db, id })
    }

    /// The exported snapshot's id, for `SET TRANSACTION SNAPSHOT` or `pg_dump --snapshot`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The connection inside the snapshot: what it reads (the schema and data fingerprints
    /// included, which nest in savepoints) is that moment. It must only read.
    pub fn database(&mut self) -> &mut Database {
        &mut self.db
    }

    /// Lists the tables to fingerprint (in the snapshot) and returns the work, which
    /// [`DataJob::run`] does on connections of its own: on another thread while this
    /// connection is busy, or while `pg_dump --snapshot` runs.
    pub fn data_job(&mut self) -> Result<DataJob> {
        let AnyConnection::Postgresql(pg) = &mut self.db.conn else {
            return Err(Error::Failed("not a PostgreSQL connection".into()));
        };
        let tables = stable(pg, |pg| data_tables(pg, None))?;
        Ok(DataJob {
            url: self.db.url().clone(),
            snapshot: self.id.clone(),
            tables,
        })
    }

    /// Ends the transaction (the snapshot can no longer be imported).
    pub fn end(mut self) -> Result<()> {
        if let AnyConnection::Postgresql(pg) = &mut self.db.conn {
            AnsiTransactionManager::rollback_transaction(pg)
                .map_err(|e| Error::db("ending a PostgreSQL read snapshot", e))?;
        }
        Ok(())
    }
}

/// Every table's data fingerprint in a [`SharedSnapshot`], to compute on other connections.
#[derive(Clone)]
pub struct DataJob {
    url: DatabaseUrl,
    snapshot: String,
    tables: Vec<Table>,
}

impl DataJob {
    /// The fingerprints, sorted by table name, on up to `jobs` connections that import the
    /// snapshot (which must still be open when this starts).
    pub fn run(self, jobs: usize) -> Result<Vec<TableFingerprint>> {
        if self.tables.is_empty() {
            return Ok(Vec::new());
        }
        fingerprint_tables(&self.url, &self.snapshot, self.tables, jobs)
    }
}
