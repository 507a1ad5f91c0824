//! dbsafe's own tables in the target (`dbsafe_meta`, `dbsafe_runs`, `dbsafe_steps`,
//! `dbsafe_events`), created on first use with their own schema version, beside diesel's
//! `__diesel_schema_migrations`, which stays the source of truth for what is applied.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::Serialize;

use crate::connection::{AnyConnection, Database};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::target::Backend;
use crate::verify::baseline::RowChange;

/// The version of the ledger's own schema; later releases upgrade older ledgers in [`ensure`].
/// Version 2 added `dbsafe_runs.restored_by`; version 3 the table `dbsafe_row_counts`;
/// version 4 `dbsafe_runs.fleet_run`.
pub const LEDGER_SCHEMA_VERSION: i64 = 4;

pub use schema::*;

/// The ledger's tables and diesel's, for diesel's query builder.
#[allow(missing_docs)] // columns are documented in the DDL below
pub mod schema {
    diesel::table! {
        /// Key-value facts about the target: ledger version, bound identity.
        dbsafe_meta (name) {
            /// The fact's name.
            name -> Text,
            /// Its value.
            value -> Text,
        }
    }

    diesel::table! {
        /// One row per run.
        dbsafe_runs (id) {
            id -> Text,
            kind -> Text,
            target -> Text,
            environment -> Text,
            operator -> Text,
            host -> Text,
            tool_version -> Text,
            git_commit -> Nullable<Text>,
            git_dirty -> Nullable<Bool>,
            started_at -> Text,
            finished_at -> Nullable<Text>,
            status -> Text,
            snapshot_id -> Nullable<Text>,
            bundle_hash -> Nullable<Text>,
            error -> Nullable<Text>,
            parent_run -> Nullable<Text>,
            restored_by -> Nullable<Text>,
            fleet_run -> Nullable<Text>,
        }
    }

    diesel::table! {
        /// One row per migration applied or reverted in a run.
        dbsafe_steps (run_id, seq) {
            run_id -> Text,
            seq -> Integer,
            version -> Text,
            name -> Text,
            direction -> Text,
            status -> Text,
            transactional -> Bool,
            up_checksum -> Text,
            down_checksum -> Nullable<Text>,
            started_at -> Text,
            finished_at -> Nullable<Text>,
            duration_ms -> Nullable<BigInt>,
            attempts -> Integer,
            error -> Nullable<Text>,
        }
    }

    diesel::table! {
        /// The append-only audit trail.
        dbsafe_events (run_id, seq) {
            run_id -> Text,
            seq -> Integer,
            event_type -> Text,
            at -> Text,
            operator -> Nullable<Text>,
            payload -> Text,
        }
    }

    diesel::table! {
        /// The row count of each table a run changed, before and after it (version 3).
        dbsafe_row_counts (run_id, table_name) {
            run_id -> Text,
            table_name -> Text,
            rows_before -> Nullable<BigInt>,
            rows_after -> Nullable<BigInt>,
            estimated -> Bool,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(dbsafe_runs, dbsafe_steps);

    diesel::table! {
        /// diesel's own table (read only: diesel_cli reads it).
        __diesel_schema_migrations (version) {
            version -> Text,
            run_on -> Timestamp,
        }
    }
}

/// A run as stored in `dbsafe_runs`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable, Serialize)]
#[diesel(table_name = dbsafe_runs)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// `apply`, `rollback` or `restore`.
    pub kind: String,
    /// Target name.
    pub target: String,
    /// Target environment.
    pub environment: String,
    /// Who ran it.
    pub operator: String,
    /// Where.
    pub host: String,
    /// dbsafe's version.
    pub tool_version: String,
    /// git commit of the project.
    pub git_commit: Option<String>,
    /// Whether the checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: Option<String>,
    /// `running`, `succeeded`, `failed`, `reverted`, `restored`.
    pub status: String,
    /// The snapshot taken before the run.
    pub snapshot_id: Option<String>,
    /// SHA-256 over the ordered checksums of what it applied.
    pub bundle_hash: Option<String>,
    /// The error, if any.
    pub error: Option<String>,
    /// For a rollback, the run it undid.
    pub parent_run: Option<String>,
    /// The run whose snapshot restore rewound this one's changes (its record was written
    /// back as it was, with this link).
    pub restored_by: Option<String>,
    /// The fleet run this run is a member's share of (`apply --fleet`), if any.
    pub fleet_run: Option<String>,
}

/// A step as stored in `dbsafe_steps`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable, Serialize)]
#[diesel(table_name = dbsafe_steps)]
pub struct StepRow {
    /// The run.
    pub run_id: String,
    /// Order within the run.
    pub seq: i32,
    /// Migration version.
    pub version: String,
    /// Migration directory name.
    pub name: String,
    /// `up` or `down`.
    pub direction: String,
    /// `started`, `applied`, `reverted`, `failed`.
    pub status: String,
    /// Whether it ran in one transaction.
    pub transactional: bool,
    /// SHA-256 of up.sql.
    pub up_checksum: String,
    /// SHA-256 of down.sql.
    pub down_checksum: Option<String>,
    /// Start.
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Wall time.
    pub duration_ms: Option<i64>,
    /// Tries (lock timeouts are retried).
    pub attempts: i32,
    /// The error, if any.
    pub error: Option<String>,
}

/// A row of `dbsafe_row_counts`.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = dbsafe_row_counts)]
struct RowCountRow {
    run_id: String,
    table_name: String,
    rows_before: Option<i64>,
    rows_after: Option<i64>,
    estimated: bool,
}

/// Step statuses.
pub mod step_status {
    /// A non-transactional step began and has not finished: the target is dirty.
    pub const STARTED: &str = "started";
    /// Applied.
    pub const APPLIED: &str = "applied";
    /// Reverted with down.sql.
    pub const REVERTED: &str = "reverted";
    /// Failed and left nothing behind.
    pub const FAILED: &str = "failed";
}

/// Run statuses.
pub mod run_status {
    /// In progress (or interrupted, when no process holds the lock).
    pub const RUNNING: &str = "running";
    /// Finished, everything holds.
    pub const SUCCEEDED: &str = "succeeded";
    /// Failed; what committed stays.
    pub const FAILED: &str = "failed";
    /// Failed, and its migrations were reverted.
    pub const REVERTED: &str = "reverted";
    /// Rewound by a snapshot restore.
    pub const RESTORED: &str = "restored";
}

fn ddl(backend: Backend) -> Vec<String> {
    // Keys are VARCHAR so MySQL can index them; timestamps are RFC 3339 text, portable
    // and sortable.
    let long_text = if backend == Backend::Mysql {
        "LONGTEXT"
    } else {
        "TEXT"
    };
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
                error {long_text}, parent_run VARCHAR(40), restored_by VARCHAR(40))"
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
    match recorded_version(db) {
        Some(v) if v == LEDGER_SCHEMA_VERSION => return Ok(()),
        Some(v) if v > LEDGER_SCHEMA_VERSION => {
            return Err(Error::Refused(format!(
                "this database's dbsafe ledger has schema version {v}, newer than this dbsafe understands ({LEDGER_SCHEMA_VERSION}): upgrade dbsafe (cargo install cargo-dbsafe)"
            )));
        }
        _ => {}
    }
    let fail = |e| Error::db("creating dbsafe's ledger tables", e);
    let (begin, commit, rollback) = match db.backend() {
        Backend::Postgres => (
            format!("BEGIN; SELECT pg_advisory_xact_lock({LEDGER_LOCK_KEY})"),
            "COMMIT",
            "ROLLBACK",
        ),
        Backend::Sqlite => ("BEGIN IMMEDIATE".to_owned(), "COMMIT", "ROLLBACK"),
        Backend::Mysql => (
            "DO GET_LOCK(CONCAT('dbsafe-ledger:', DATABASE()), 60)".to_owned(),
            "DO RELEASE_LOCK(CONCAT('dbsafe-ledger:', DATABASE()))",
            "DO RELEASE_LOCK(CONCAT('dbsafe-ledger:', DATABASE()))",
        ),
    };
    db.execute(&begin).map_err(fail)?;
    match create_or_upgrade(db) {
        Ok(()) => db.execute(commit).map_err(fail),
        Err(e) => {
            let _ = db.execute(rollback);
            Err(e)
        }
    }
}

/// The advisory lock key that serialises creating the ledger on PostgreSQL ("dbledg").
const LEDGER_LOCK_KEY: i64 = 0x6462_6c65_6467;

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
    for statement in ddl(db.backend()) {
        db.execute(&statement).map_err(fail)?;
    }
    // Version 2: the restore that rewound a run; version 4: the fleet run it belongs to.
    for column in ["restored_by", "fleet_run"] {
        if !column_exists(db, "dbsafe_runs", column)? {
            db.execute(&format!(
                "ALTER TABLE dbsafe_runs ADD COLUMN {column} VARCHAR(40)"
            ))
            .map_err(fail)?;
        }
    }
    // Version 3: the row counts a run changed.
    ensure_row_counts_table(db)?;
    let version = format!("('schema_version', '{LEDGER_SCHEMA_VERSION}')");
    db.execute(&if db.backend() == Backend::Mysql {
        format!(
            "INSERT INTO dbsafe_meta (name, value) VALUES {version} ON DUPLICATE KEY UPDATE value = VALUES(value)"
        )
    } else {
        format!(
            "INSERT INTO dbsafe_meta (name, value) VALUES {version} ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
    })
    .map_err(fail)
}

/// Whether `table` has `column`, read from the catalog (a failing probe would abort a
/// PostgreSQL transaction).
fn column_exists(db: &mut Database, table: &str, column: &str) -> Result<bool> {
    let sql = match db.backend() {
        Backend::Postgres => format!(
            "SELECT CAST(count(*) AS BIGINT) AS v FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}' AND column_name = '{column}'"
        ),
        Backend::Mysql => format!(
            "SELECT CAST(count(*) AS SIGNED) AS v FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'"
        ),
        Backend::Sqlite => format!(
            "SELECT count(*) AS v FROM pragma_table_info('{table}') WHERE name = '{column}'"
        ),
    };
    Ok(db
        .integer(&sql)
        .map_err(|e| Error::db("reading dbsafe's ledger columns", e))?
        > 0)
}

/// `dbsafe_row_counts` (ledger version 3): the row count of each table a run changed,
/// before and after it. Idempotent.
fn ensure_row_counts_table(db: &mut Database) -> Result<()> {
    let boolean = "BOOLEAN";
    db.execute(&format!(
        "CREATE TABLE IF NOT EXISTS dbsafe_row_counts (
            run_id VARCHAR(40) NOT NULL, table_name VARCHAR(255) NOT NULL,
            rows_before BIGINT, rows_after BIGINT, estimated {boolean} NOT NULL,
            PRIMARY KEY (run_id, table_name))"
    ))
    .map_err(|e| Error::db("upgrading dbsafe's ledger", e))
}

/// Records the row counts a run changed.
pub fn insert_row_counts(db: &mut Database, run_id: &str, changes: &[RowChange]) -> Result<()> {
    let rows: Vec<RowCountRow> = changes
        .iter()
        .map(|c| RowCountRow {
            run_id: run_id.to_owned(),
            table_name: c.table.clone(),
            rows_before: c.before.map(|n| n as i64),
            rows_after: c.after.map(|n| n as i64),
            estimated: c.estimated,
        })
        .collect();
    write_row_counts(&mut db.conn, &rows).map_err(|e| Error::db("writing dbsafe_row_counts", e))
}

fn write_row_counts(conn: &mut AnyConnection, rows: &[RowCountRow]) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    let backend = match conn {
        AnyConnection::Postgresql(_) => Backend::Postgres,
        AnyConnection::Mysql(_) => Backend::Mysql,
        AnyConnection::Sqlite(_) => Backend::Sqlite,
    };
    let number = |n: Option<i64>| n.map_or_else(|| "NULL".to_owned(), |n| n.to_string());
    // Many rows per INSERT: one round trip per few hundred tables, not one per table.
    for chunk in rows.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                format!(
                    "({}, {}, {}, {}, {})",
                    literal(backend, &row.run_id),
                    literal(backend, &row.table_name),
                    number(row.rows_before),
                    number(row.rows_after),
                    sql_bool(backend, row.estimated)
                )
            })
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO dbsafe_row_counts (run_id, table_name, rows_before, rows_after, estimated) VALUES {}",
            values.join(", ")
        ))?;
    }
    Ok(())
}

/// A boolean literal on `backend`.
fn sql_bool(backend: Backend, value: bool) -> &'static str {
    match (backend, value) {
        (Backend::Postgres, true) => "TRUE",
        (Backend::Postgres, false) => "FALSE",
        (_, true) => "1",
        (_, false) => "0",
    }
}

fn row_count_rows(db: &mut Database, run_id: &str) -> Result<Vec<RowCountRow>> {
    if !db
        .table_exists("dbsafe_row_counts")
        .map_err(|e| Error::db("reading dbsafe_row_counts", e))?
    {
        return Ok(Vec::new());
    }
    dbsafe_row_counts::table
        .filter(dbsafe_row_counts::run_id.eq(run_id))
        .order(dbsafe_row_counts::table_name)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_row_counts", e))
}

/// The row counts a run changed, by table (empty for a ledger older than version 3).
pub fn row_counts(db: &mut Database, run_id: &str) -> Result<Vec<RowChange>> {
    Ok(row_count_rows(db, run_id)?
        .into_iter()
        .map(|r| RowChange {
            table: r.table_name,
            before: r.rows_before.map(|n| n.max(0) as u64),
            after: r.rows_after.map(|n| n.max(0) as u64),
            estimated: r.estimated,
        })
        .collect())
}

/// Reads a `dbsafe_meta` value.
pub fn meta_get(db: &mut Database, key: &str) -> Result<Option<String>> {
    dbsafe_meta::table
        .find(key)
        .select(dbsafe_meta::value)
        .first::<String>(&mut db.conn)
        .optional()
        .map_err(|e| Error::db("reading dbsafe_meta", e))
}

/// Writes a `dbsafe_meta` value.
pub fn meta_set(db: &mut Database, key: &str, value: &str) -> Result<()> {
    let conn = &mut db.conn;
    conn.transaction(|conn| {
        diesel::delete(dbsafe_meta::table.find(key)).execute(conn)?;
        diesel::insert_into(dbsafe_meta::table)
            .values((dbsafe_meta::name.eq(key), dbsafe_meta::value.eq(value)))
            .execute(conn)
    })
    .map(|_| ())
    .map_err(|e| Error::db("writing dbsafe_meta", e))
}

/// Inserts a run row.
pub fn insert_run(conn: &mut AnyConnection, run: &RunRow) -> QueryResult<()> {
    diesel::insert_into(dbsafe_runs::table)
        .values(run)
        .execute(conn)
        .map(|_| ())
}

/// Sets a run's final status.
pub fn finish_run(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    finished_at: &str,
    bundle_hash: Option<&str>,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::update(dbsafe_runs::table.find(id))
        .set((
            dbsafe_runs::status.eq(status),
            dbsafe_runs::finished_at.eq(finished_at),
            dbsafe_runs::bundle_hash.eq(bundle_hash),
            dbsafe_runs::error.eq(error),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Inserts a step row.
pub fn insert_step(conn: &mut AnyConnection, step: &StepRow) -> QueryResult<()> {
    diesel::insert_into(dbsafe_steps::table)
        .values(step)
        .execute(conn)
        .map(|_| ())
}

/// Updates a step's outcome.
pub fn finish_step(conn: &mut AnyConnection, step: &StepRow) -> QueryResult<()> {
    diesel::update(dbsafe_steps::table.find((&step.run_id, step.seq)))
        .set((
            dbsafe_steps::status.eq(&step.status),
            dbsafe_steps::finished_at.eq(&step.finished_at),
            dbsafe_steps::duration_ms.eq(step.duration_ms),
            dbsafe_steps::attempts.eq(step.attempts),
            dbsafe_steps::error.eq(&step.error),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A string as a SQL literal that means the same whatever the session's settings: on
/// PostgreSQL an escape string (`E'...'`, backslashes doubled), on SQLite a plain one.
fn literal(backend: Backend, text: &str) -> String {
    match backend {
        Backend::Postgres => format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''")),
        _ => format!("'{}'", text.replace('\'', "''")),
    }
}

fn literal_or_null(backend: Backend, text: Option<&str>) -> String {
    text.map_or_else(|| "NULL".to_owned(), |t| literal(backend, t))
}

/// One batch writing a step row and event rows: a single round trip where separate
/// inserts would take one each, inside the migration's transaction. PostgreSQL and SQLite
/// only (their migrations run in transactions); MySQL uses [`insert_step`] and
/// [`insert_event`].
pub fn step_and_events_sql(backend: Backend, step: &StepRow, events: &[(i32, &Event)]) -> String {
    let bool_sql = |b: bool| sql_bool(backend, b);
    let mut sql = format!(
        "INSERT INTO dbsafe_steps (run_id, seq, version, name, direction, status, transactional, up_checksum, down_checksum, started_at, finished_at, duration_ms, attempts, error) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});\n",
        literal(backend, &step.run_id),
        step.seq,
        literal(backend, &step.version),
        literal(backend, &step.name),
        literal(backend, &step.direction),
        literal(backend, &step.status),
        bool_sql(step.transactional),
        literal(backend, &step.up_checksum),
        literal_or_null(backend, step.down_checksum.as_deref()),
        literal(backend, &step.started_at),
        literal_or_null(backend, step.finished_at.as_deref()),
        step.duration_ms
            .map_or_else(|| "NULL".to_owned(), |d| d.to_string()),
        step.attempts,
        literal_or_null(backend, step.error.as_deref()),
    );
    for (seq, event) in events {
        sql.push_str(&format!(
            "INSERT INTO dbsafe_events (run_id, seq, event_type, at, operator, payload) VALUES ({}, {seq}, {}, {}, {}, {});\n",
            literal(backend, event.run_id.as_deref().unwrap_or_default()),
            literal(backend, &event.kind.type_name()),
            literal(backend, &event.at),
            literal_or_null(backend, event.operator.as_deref()),
            literal(backend, &serde_json::to_string(event).unwrap_or_default()),
        ));
    }
    sql
}

/// Appends an event.
pub fn insert_event(conn: &mut AnyConnection, seq: i32, event: &Event) -> QueryResult<()> {
    let payload = serde_json::to_string(event).unwrap_or_default();
    diesel::insert_into(dbsafe_events::table)
        .values((
            dbsafe_events::run_id.eq(event.run_id.clone().unwrap_or_default()),
            dbsafe_events::seq.eq(seq),
            dbsafe_events::event_type.eq(event.kind.type_name()),
            dbsafe_events::at.eq(&event.at),
            dbsafe_events::operator.eq(&event.operator),
            dbsafe_events::payload.eq(payload),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The highest event sequence number of a run (0 when it has none).
pub fn last_event_seq(conn: &mut AnyConnection, run_id: &str) -> QueryResult<i32> {
    dbsafe_events::table
        .filter(dbsafe_events::run_id.eq(run_id))
        .select(diesel::dsl::max(dbsafe_events::seq))
        .first::<Option<i32>>(conn)
        .map(|seq| seq.unwrap_or(0))
}

/// The newest runs first, at most `limit`.
pub fn runs(db: &mut Database, limit: i64) -> Result<Vec<RunRow>> {
    dbsafe_runs::table
        .order((dbsafe_runs::started_at.desc(), dbsafe_runs::id.desc()))
        .limit(limit)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

/// How many migration steps each run recorded, by run id (runs without steps are absent).
pub fn step_counts(db: &mut Database) -> Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = dbsafe_steps::table
        .group_by(dbsafe_steps::run_id)
        .select((dbsafe_steps::run_id, diesel::dsl::count_star()))
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))?;
    Ok(rows.into_iter().collect())
}

/// One run by id.
pub fn run(db: &mut Database, id: &str) -> Result<Option<RunRow>> {
    dbsafe_runs::table
        .find(id)
        .first(&mut db.conn)
        .optional()
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

/// A run's steps in order.
pub fn steps(db: &mut Database, run_id: &str) -> Result<Vec<StepRow>> {
    dbsafe_steps::table
        .filter(dbsafe_steps::run_id.eq(run_id))
        .order(dbsafe_steps::seq)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))
}

/// A run's events in order, as they were emitted.
pub fn events(db: &mut Database, run_id: &str) -> Result<Vec<Event>> {
    let payloads: Vec<String> = dbsafe_events::table
        .filter(dbsafe_events::run_id.eq(run_id))
        .order(dbsafe_events::seq)
        .select(dbsafe_events::payload)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_events", e))?;
    Ok(payloads
        .iter()
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect())
}

/// An event row as stored in `dbsafe_events`, copied as it is.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = dbsafe_events)]
pub struct EventRow {
    /// The run.
    pub run_id: String,
    /// Order within the run.
    pub seq: i32,
    /// The event's `type`.
    pub event_type: String,
    /// When.
    pub at: String,
    /// Who.
    pub operator: Option<String>,
    /// The whole event, JSON.
    pub payload: String,
}

/// Copies runs of `from`'s ledger into `to`'s exactly as they are (run row, steps,
/// events), each linked to the run `restored_by`; the runs `to` already has, and those in
/// `skip`, are left out. Returns the ids copied, oldest first.
pub fn copy_runs(
    from: &mut Database,
    to: &mut Database,
    skip: &[String],
    restored_by: &str,
) -> Result<Vec<String>> {
    let have: std::collections::BTreeSet<String> =
        runs(to, i64::MAX)?.into_iter().map(|r| r.id).collect();
    let mut copied = Vec::new();
    let mut wanted = runs(from, i64::MAX)?;
    wanted.reverse();
    for mut run in wanted {
        if have.contains(&run.id) || skip.contains(&run.id) {
            continue;
        }
        let steps = steps(from, &run.id)?;
        let events: Vec<EventRow> = dbsafe_events::table
            .filter(dbsafe_events::run_id.eq(&run.id))
            .order(dbsafe_events::seq)
            .load(&mut from.conn)
            .map_err(|e| Error::db("reading dbsafe_events", e))?;
        run.restored_by = Some(restored_by.to_owned());
        let counts = row_count_rows(from, &run.id)?;
        if !counts.is_empty() {
            ensure_row_counts_table(to)?;
        }
        to.conn
            .transaction(|conn| {
                insert_run(conn, &run)?;
                for step in &steps {
                    insert_step(conn, step)?;
                }
                for event in &events {
                    diesel::insert_into(dbsafe_events::table)
                        .values(event)
                        .execute(conn)?;
                }
                write_row_counts(conn, &counts)?;
                Ok::<_, diesel::result::Error>(())
            })
            .map_err(|e| Error::db("writing the rewound runs into the restored ledger", e))?;
        copied.push(run.id);
    }
    Ok(copied)
}

/// Steps left `started` by a non-transactional migration that never finished: each makes
/// the target dirty. Versions the layout's own table marks dirty (sqlx's `success =
/// false`) without such a step come after, as [`layout_dirty_steps`] describes them.
pub fn dirty_steps(db: &mut Database) -> Result<Vec<StepRow>> {
    let mut steps = started_steps(db)?;
    layout_dirty_steps(db, &mut steps)?;
    Ok(steps)
}

/// Adds to `steps` a `started` row for each version the layout's own history table marks
/// dirty (sqlx's `success = false`, left by sqlx or by dbsafe on MySQL) that `steps` lacks.
pub fn layout_dirty_steps(db: &mut Database, steps: &mut Vec<StepRow>) -> Result<()> {
    for version in crate::layout::dirty_versions(db)? {
        if steps.iter().any(|s| s.version == version) {
            continue;
        }
        steps.push(StepRow {
            run_id: "_sqlx_migrations".into(),
            seq: 0,
            name: version.clone(),
            version,
            direction: "up".into(),
            status: step_status::STARTED.into(),
            transactional: false,
            up_checksum: String::new(),
            down_checksum: None,
            started_at: crate::run::now(),
            finished_at: None,
            duration_ms: None,
            attempts: 1,
            error: Some(
                "_sqlx_migrations records it with success = false, sqlx's dirty state".into(),
            ),
        });
    }
    Ok(())
}

fn started_steps(db: &mut Database) -> Result<Vec<StepRow>> {
    dbsafe_steps::table
        .filter(dbsafe_steps::status.eq(step_status::STARTED))
        // Not of a run rewound by a snapshot restore: its record is kept as it was, but
        // its steps describe a past the database no longer has.
        .filter(
            dbsafe_steps::run_id.eq_any(
                dbsafe_runs::table
                    .filter(dbsafe_runs::restored_by.is_null())
                    .select(dbsafe_runs::id),
            ),
        )
        .order((dbsafe_steps::run_id, dbsafe_steps::seq))
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))
}

/// For each version, the newest step that applied or reverted it: what dbsafe believes
/// about it, with the checksums recorded then.
pub fn latest_steps(db: &mut Database) -> Result<BTreeMap<String, StepRow>> {
    let rows: Vec<StepRow> = dbsafe_steps::table
        .filter(dbsafe_steps::status.eq_any([step_status::APPLIED, step_status::REVERTED]))
        // Not of a run rewound by a snapshot restore: its record is kept as it was, but
        // its steps describe a past the database no longer has.
        .filter(
            dbsafe_steps::run_id.eq_any(
                dbsafe_runs::table
                    .filter(dbsafe_runs::restored_by.is_null())
                    .select(dbsafe_runs::id),
            ),
        )
        // By time first: run ids sort by time only to the second (their suffix is random),
        // and runs never overlap (the target lock), so step start times order them.
        .order((
            dbsafe_steps::started_at,
            dbsafe_steps::run_id,
            dbsafe_steps::seq,
        ))
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_steps", e))?;
    Ok(rows
        .into_iter()
        .map(|row| (row.version.clone(), row))
        .collect())
}

/// Runs left `running` by a process that no longer holds the lock.
pub fn running_runs(db: &mut Database) -> Result<Vec<String>> {
    dbsafe_runs::table
        .filter(dbsafe_runs::status.eq(run_status::RUNNING))
        .select(dbsafe_runs::id)
        .load(&mut db.conn)
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

/// Marks runs left `running` (found by [`running_runs`] while holding the lock, so no
/// process runs them any more) as failed, interrupted. Returns their ids.
pub fn mark_interrupted(db: &mut Database, ids: &[String]) -> Result<Vec<String>> {
    for id in ids {
        finish_run(
            &mut db.conn,
            id,
            run_status::FAILED,
            &crate::run::now(),
            None,
            Some("interrupted: the process stopped before the run finished"),
        )
        .map_err(|e| Error::db("writing dbsafe_runs", e))?;
    }
    Ok(ids.to_vec())
}

/// The applied versions, sorted, from the project's layout's history table (diesel's
/// `__diesel_schema_migrations`, sqlx's `_sqlx_migrations`, or this ledger for plain SQL
/// files); empty when it does not exist. Kept under its old name for callers.
pub fn diesel_applied(db: &mut Database) -> Result<Vec<String>> {
    crate::layout::applied(db)
}

#[cfg(test)]
mod tests {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::event::EventKind;

    #[test]
    fn batched_rows_read_back_exactly_with_quotes_and_backslashes() {
        let mut conn =
            AnyConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
        for statement in ddl(Backend::Sqlite) {
            conn.batch_execute(&statement).unwrap();
        }
        let tricky = r#"it's a "name" with \ and \' and ''"#;
        let step = StepRow {
            run_id: "r1".into(),
            seq: 1,
            version: "1".into(),
            name: tricky.into(),
            direction: "up".into(),
            status: "applied".into(),
            transactional: true,
            up_checksum: "abc".into(),
            down_checksum: None,
            started_at: "t".into(),
            finished_at: Some("t2".into()),
            duration_ms: Some(5),
            attempts: 1,
            error: None,
        };
        let event = Event {
            run_id: Some("r1".into()),
            at: "t".into(),
            operator: Some(tricky.into()),
            kind: EventKind::PreflightWarning {
                message: tricky.into(),
            },
        };
        conn.batch_execute(&step_and_events_sql(Backend::Sqlite, &step, &[(1, &event)]))
            .unwrap();
        let rows: Vec<StepRow> = dbsafe_steps::table.load(&mut conn).unwrap();
        assert_eq!(rows, vec![step]);
        let payload: String = dbsafe_events::table
            .select(dbsafe_events::payload)
            .first(&mut conn)
            .unwrap();
        assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), event);
        assert_eq!(
            literal(Backend::Postgres, tricky),
            r#"E'it''s a "name" with \\ and \\'' and '''''"#
        );
    }
}
