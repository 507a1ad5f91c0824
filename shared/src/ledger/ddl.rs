//! The ledger's own schema: its DDL per backend, creating it on first use, upgrading an
//! older (or partial) one, serialised between processes.

use super::LEDGER_SCHEMA_VERSION;
use crate::connection::Database;
use crate::dialect::{Dialect, LedgerGuard};
use crate::error::{Error, Result};

pub(super) fn ddl(dialect: &dyn Dialect) -> Vec<String> {
    // Keys are VARCHAR so MySQL can index them; timestamps are RFC 3339 text, portable
    // and sortable.
    let long_text = dialect.long_text_type();
    let boolean = "BOOLEAN";
    vec![
        "CREATE TABLE IF NOT EXISTS dbsafe_meta (name VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL)".to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS dbsafe_runs (
                id VARCHAR(40) NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL,
                target VARCHAR(128) NOT NULL, environment VARCHAR(16) NOT NULL,
                operator VARCHAR(255) NOT NULL, host VARCHAR(255) NOT NULL,
                tool_version VARCHAR(32) NOT NULL, git_commit VARCHAR(64), git_dirty {boolean},
                started_at VARCHAR(40) NOT NULL, finished_at VARCHAR(40),
                status VARCHAR(16) NOT NULL, snapshot_id VARCHAR(64), bundle_hash VARCHAR(64),
                error {long_text}, parent_run VARCHAR(40), restored_by VARCHAR(40),
                fleet_run VARCHAR(40))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS dbsafe_steps (
                run_id VARCHAR(40) NOT NULL, seq INTEGER NOT NULL,
                version VARCHAR(64) NOT NULL, name VARCHAR(255) NOT NULL,
                direction VARCHAR(8) NOT NULL, status VARCHAR(16) NOT NULL,
                transactional {boolean} NOT NULL, up_checksum VARCHAR(64) NOT NULL,
                down_checksum VARCHAR(64), started_at VARCHAR(40) NOT NULL,
                finished_at VARCHAR(40), duration_ms BIGINT, attempts INTEGER NOT NULL,
                error {long_text}, PRIMARY KEY (run_id, seq))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS dbsafe_events (
                run_id VARCHAR(40) NOT NULL, seq INTEGER NOT NULL,
                event_type VARCHAR(64) NOT NULL, at VARCHAR(40) NOT NULL,
                operator VARCHAR(255), payload {long_text} NOT NULL,
                PRIMARY KEY (run_id, seq))"
        ),
    ]
}

/// The ledger's tables, in the order [`ensure`] creates them.
const TABLES: [&str; 4] = [
    "dbsafe_meta",
    "dbsafe_runs",
    "dbsafe_steps",
    "dbsafe_events",
];

/// Whether this database has a dbsafe ledger. A partial one (a process killed while a
/// backend without transactional DDL created it) is completed first, so whoever reads it
/// next finds every table.
pub fn exists(db: &mut Database) -> Result<bool> {
    let present = db
        .tables_present(&TABLES)
        .map_err(|e| Error::db("looking for dbsafe's ledger", e))?;
    match present {
        0 => Ok(false),
        n if n == TABLES.len() => Ok(true),
        _ => ensure(db).map(|()| true),
    }
}

/// Makes the ledger current: creates its tables if missing and upgrades an older (or
/// partial) one, then records [`LEDGER_SCHEMA_VERSION`], last, so a version that says
/// current means everything is there. A current ledger costs one query. Creating or
/// upgrading is serialised between processes (PostgreSQL: a transaction-scoped advisory
/// lock, all in one transaction; SQLite: `BEGIN IMMEDIATE`, all in one transaction;
/// MySQL, whose DDL commits statement by statement: a named lock, each step idempotent),
/// so concurrent first runs neither collide nor see a half-made ledger. A ledger written
/// by a newer dbsafe is refused rather than misread.
pub fn ensure(db: &mut Database) -> Result<()> {
    ensure_with(db, |_| Ok(()))
}

/// [`ensure`], then `setup` (a run's other first writes: the history table, the identity
/// rows): inside the same transaction when the ledger is created or upgraded, so a new
/// database's ledger costs one commit; on its own when the ledger is current.
pub fn ensure_with(
    db: &mut Database,
    setup: impl FnOnce(&mut Database) -> Result<()>,
) -> Result<()> {
    match recorded_version(db) {
        Some(v) if v == LEDGER_SCHEMA_VERSION => return setup(db),
        Some(v) if v > LEDGER_SCHEMA_VERSION => {
            return Err(crate::error::Reason::NewerLedger.refuse(format!(
                "this database's dbsafe ledger has schema version {v}, newer than this dbsafe understands ({LEDGER_SCHEMA_VERSION}): upgrade dbsafe (cargo install cargo-dbsafe)"
            )));
        }
        _ => {}
    }
    let fail = |e| Error::db("creating dbsafe's ledger tables", e);
    let LedgerGuard {
        begin,
        commit,
        rollback,
    } = db.dialect().ledger_guard();
    db.execute(&begin).map_err(fail)?;
    match create_or_upgrade(db).and_then(|()| setup(db)) {
        Ok(()) => db.execute(commit).map_err(fail),
        Err(e) => {
            let _ = db.execute(rollback);
            Err(e)
        }
    }
}

/// The ledger version recorded in `dbsafe_meta`, if the table and the row exist.
fn recorded_version(db: &mut Database) -> Option<i64> {
    db.texts("SELECT value AS v FROM dbsafe_meta WHERE name = 'schema_version'")
        .ok()?
        .first()
        .map(|v| v.parse().unwrap_or(i64::MAX))
}

/// Every step from nothing (or an older ledger) to the current one, each idempotent;
/// the version row is written last.
fn create_or_upgrade(db: &mut Database) -> Result<()> {
    let fail = |e| Error::db("creating or upgrading dbsafe's ledger", e);
    // Tables created just now have every column: only an older ledger needs looking at.
    let older = db
        .tables_present(&TABLES)
        .map_err(|e| Error::db("looking for dbsafe's ledger", e))?
        > 0;
    let statements = ddl(db.dialect());
    if db.dialect().transactional_ddl() {
        // Inside the guard's transaction: every table in one round trip.
        db.execute(&statements.join(";\n")).map_err(fail)?;
    } else {
        for statement in statements {
            db.execute(&statement).map_err(fail)?;
        }
    }
    // Version 2: the restore that rewound a run; version 4: the fleet run it belongs to
    // (a ledger created now has both; an older one gets them here).
    for column in ["restored_by", "fleet_run"] {
        if older && !column_exists(db, "dbsafe_runs", column)? {
            db.execute(&format!(
                "ALTER TABLE dbsafe_runs ADD COLUMN {column} VARCHAR(40)"
            ))
            .map_err(fail)?;
        }
    }
    // Version 3: the row counts a run changed.
    ensure_row_counts_table(db)?;
    super::meta_set(db, &[("schema_version", LEDGER_SCHEMA_VERSION.to_string())])
}

/// Whether `table` has `column`, read from the catalog (a failing probe would abort a
/// PostgreSQL transaction).
fn column_exists(db: &mut Database, table: &str, column: &str) -> Result<bool> {
    let sql = db.dialect().column_count_sql(table, column);
    Ok(db
        .integer(&sql)
        .map_err(|e| Error::db("reading dbsafe's ledger columns", e))?
        > 0)
}

/// `dbsafe_row_counts` (ledger version 3): the row count of each table a run changed,
/// before and after it. Idempotent.
pub(super) fn ensure_row_counts_table(db: &mut Database) -> Result<()> {
    let boolean = "BOOLEAN";
    db.execute(&format!(
        "CREATE TABLE IF NOT EXISTS dbsafe_row_counts (
            run_id VARCHAR(40) NOT NULL, table_name VARCHAR(255) NOT NULL,
            rows_before BIGINT, rows_after BIGINT, estimated {boolean} NOT NULL,
            PRIMARY KEY (run_id, table_name))"
    ))
    .map_err(|e| Error::db("upgrading dbsafe's ledger", e))
}
