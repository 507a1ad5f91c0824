//! Migration layouts: how a project keeps its migrations on disk and which table records
//! what is applied (diesel's directories and `__diesel_schema_migrations`, sqlx's files and
//! `_sqlx_migrations`, or plain SQL files recorded in dbsafe's own ledger only).
//!
//! Everything else in dbsafe works on [`Migration`]/[`MigrationSet`] and calls in here for
//! the history table: [`applied`], [`ensure_history`], [`Harness`] and [`record_resolved`].

mod detect;
mod diesel;
mod metadata;
pub mod scan;
mod sql_files;
mod sqlx;

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use ::diesel::QueryResult;
use ::diesel::migration::Migration as DieselMigration;

use crate::connection::{AnyConnection, Database, MultiBackend};
use crate::error::Result;
use crate::migrations::Migration;
use crate::target::Backend;

pub use detect::{Detected, detect};
pub use diesel::KNOWN_FILES as DIESEL_FILES;
pub use scan::{Problem, Scan, ScanFinding, scan};

/// How the project's migrations are laid out (`layout` in dbsafe.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// diesel: `VERSION_NAME/up.sql` + `down.sql`, recorded in `__diesel_schema_migrations`.
    #[default]
    Diesel,
    /// sqlx: `VERSION_DESCRIPTION.sql` (forward only) or `.up.sql` + `.down.sql`, recorded in
    /// `_sqlx_migrations` exactly as sqlx records them.
    Sqlx,
    /// Plain SQL files ordered by their numeric prefix, optional down twins, recorded in
    /// dbsafe's ledger only.
    SqlFiles,
}

/// An error of a migration run through the [`Harness`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one layout does: read its files, keep its history table.
pub(crate) trait History: Sync {
    /// The migrations of `dir`, in any order, with what is wrong or odd about it
    /// (see [`scan`]).
    fn read(&self, dir: &Path, findings: &mut Vec<ScanFinding>) -> Result<Vec<Migration>>;
    /// Creates the history table when missing.
    fn ensure(&self, conn: &mut AnyConnection) -> QueryResult<()>;
    /// The versions recorded as applied, sorted.
    fn applied(&self, db: &mut Database) -> Result<Vec<String>>;
    /// Versions the history table itself marks dirty (sqlx's `success = false`).
    fn dirty(&self, _db: &mut Database) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// The checksum (hex) the history table recorded for each version, when it keeps one
    /// (sqlx's SHA-384 of the up file).
    fn checksums(&self, _db: &mut Database) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// Records `migration` applied, after its SQL ran (`elapsed_ns` taken).
    fn record_up(
        &self,
        conn: &mut AnyConnection,
        migration: &Migration,
        elapsed_ns: i64,
    ) -> QueryResult<()>;
    /// Records the migration of `version` reverted, after its down SQL ran.
    fn record_down(&self, conn: &mut AnyConnection, version: &str) -> QueryResult<()>;
    /// The statement that records `migration` applied (`up`) or reverted, when it is one
    /// plain statement that can travel in the migration's own batch; `None` when recording
    /// takes queries ([`History::record_up`], [`History::record_down`]).
    fn record_sql(&self, _backend: Backend, _migration: &Migration, _up: bool) -> Option<String> {
        None
    }
    /// Marks `migration` dirty before SQL that cannot be one transaction with the record
    /// runs (sqlx on MySQL); a no-op elsewhere.
    fn mark_dirty(
        &self,
        _conn: &mut AnyConnection,
        _migration: &Migration,
        _up: bool,
    ) -> QueryResult<()> {
        Ok(())
    }
}

fn history(layout: Layout) -> &'static dyn History {
    match layout {
        Layout::Diesel => &diesel::Diesel,
        Layout::Sqlx => &sqlx::Sqlx,
        Layout::SqlFiles => &sql_files::SqlFiles,
    }
}

static CURRENT: AtomicU8 = AtomicU8::new(0);

/// The layout of the project this process works on (set when its configuration loads).
pub fn current() -> Layout {
    match CURRENT.load(Ordering::Relaxed) {
        1 => Layout::Sqlx,
        2 => Layout::SqlFiles,
        _ => Layout::Diesel,
    }
}

/// Makes `layout` the one [`current`] returns.
pub fn set_current(layout: Layout) {
    CURRENT.store(layout as u8, Ordering::Relaxed);
}

impl Layout {
    /// Whether a migration without a down is normal in this layout (sqlx simple migrations).
    pub fn forward_only_allowed(self) -> bool {
        self == Layout::Sqlx
    }

    /// The tool that applies migrations outside dbsafe in this layout (`applied_by` of a
    /// migration dbsafe did not apply): `diesel`, `sqlx`, or `psql` for plain SQL files.
    pub fn outside_tool(self) -> &'static str {
        match self {
            Layout::Diesel => "diesel",
            Layout::Sqlx => "sqlx",
            Layout::SqlFiles => "psql",
        }
    }

    /// The table that records applied migrations, when the layout has one of its own.
    pub fn history_table(self) -> Option<&'static str> {
        match self {
            Layout::Diesel => Some("__diesel_schema_migrations"),
            Layout::Sqlx => Some("_sqlx_migrations"),
            Layout::SqlFiles => None,
        }
    }
}

/// The versions the current layout's history records as applied, sorted; empty when it
/// has no table yet.
pub fn applied(db: &mut Database) -> Result<Vec<String>> {
    history(current()).applied(db)
}

/// Versions the current layout's own table marks dirty (sqlx's `success = false`).
pub fn dirty_versions(db: &mut Database) -> Result<Vec<String>> {
    history(current()).dirty(db)
}

/// Applied migrations of `set` whose up file no longer has the checksum the current
/// layout's history table recorded (sqlx's): (version, file, recorded, now).
pub fn edited(
    db: &mut Database,
    set: &crate::migrations::MigrationSet,
) -> Result<Vec<(String, String, String, String)>> {
    let mut edited = Vec::new();
    for (version, recorded) in history(current()).checksums(db)? {
        let Some(migration) = set.get(&version) else {
            continue;
        };
        let now = crate::migrations::hex(&migration.history_checksum);
        if now != recorded {
            let file = migration.up_path.display().to_string();
            edited.push((version, file, recorded, now));
        }
    }
    Ok(edited)
}

/// Refuses to apply a plain SQL directory (`sql-files`, whose only history is dbsafe's
/// ledger) to a database that already has a schema when the ledger records none of its
/// migrations: they were most likely applied by hand (psql), and running them all again
/// is the accident dbsafe exists to prevent.
pub fn refuse_unrecorded(db: &mut Database, set: &crate::migrations::MigrationSet) -> Result<()> {
    if current() != Layout::SqlFiles || set.migrations.is_empty() {
        return Ok(());
    }
    if crate::ledger::exists(db)? && !crate::ledger::latest_steps(db)?.is_empty() {
        return Ok(());
    }
    // Tables and views only: a new PostgreSQL database already has its extensions.
    let schema = crate::inspect::schema_fingerprint(db)?;
    let objects: Vec<&String> = schema
        .lines
        .iter()
        .filter(|l| l.starts_with("table ") || l.starts_with("view "))
        .collect();
    let Some(first) = objects.first() else {
        return Ok(());
    };
    Err(crate::error::Reason::UnrecordedMigrations.refuse(format!(
        "the database already has {} table(s) or view(s) (`{first}`, ...) but dbsafe's ledger records none of the {} migration(s) in {}: with layout = \"sql-files\" the ledger is the only history, so dbsafe cannot tell which files were already applied by hand and would run them all again. Record each one already applied with `cargo dbsafe resolve VERSION --as applied`, then apply",
        objects.len(),
        set.migrations.len(),
        set.dir.display()
    )))
}

/// Creates the current layout's history table when missing.
pub fn ensure_history(conn: &mut AnyConnection) -> QueryResult<()> {
    history(current()).ensure(conn)
}

/// Makes the current layout's history table agree with an operator's `resolve`: the
/// migration of `version` (`migration`: its files, when on disk) applied or not.
pub fn record_resolved(
    conn: &mut AnyConnection,
    version: &str,
    migration: Option<&Migration>,
    applied: bool,
) -> QueryResult<()> {
    let layout = current();
    let history = history(layout);
    history.ensure(conn)?;
    if !applied {
        return history.record_down(conn, version);
    }
    match migration {
        Some(migration) => {
            if layout != Layout::Sqlx {
                history.record_down(conn, version)?;
            }
            history.record_up(conn, migration, -1)
        }
        None if layout == Layout::Diesel => {
            history.record_down(conn, version)?;
            diesel::insert_version(conn, version)
        }
        None => Err(::diesel::result::Error::QueryBuilderError(
            format!("migration {version} is not in the migrations directory: restore its files to record it applied").into(),
        )),
    }
}

/// The backend of a connection.
pub(crate) fn backend_of(conn: &AnyConnection) -> Backend {
    match conn {
        AnyConnection::Postgresql(_) => Backend::Postgres,
        AnyConnection::Mysql(_) => Backend::Mysql,
        AnyConnection::Sqlite(_) => Backend::Sqlite,
    }
}

/// A migration as the [`Harness`] runs it: the migration itself, or one run inside its
/// caller's transaction after a prelude ([`Migration::in_open_transaction`]).
pub trait Runnable: DieselMigration<MultiBackend> {
    /// The migration.
    fn migration(&self) -> &Migration;
}

impl Runnable for Migration {
    fn migration(&self) -> &Migration {
        self
    }
}

impl Runnable for crate::migrations::InOpenTransaction<'_> {
    fn migration(&self) -> &Migration {
        self.migration()
    }
}

/// Runs and reverts migrations with the history table of their layout: diesel's own
/// harness for diesel, the same steps with `_sqlx_migrations` (written as sqlx writes it)
/// or no third-party table for the others.
pub trait Harness {
    /// Runs the migration's up SQL and records it applied.
    fn run_migration(&mut self, step: &dyn Runnable) -> std::result::Result<(), BoxError>;
    /// Runs the migration's down SQL and records it reverted.
    fn revert_migration(&mut self, step: &dyn Runnable) -> std::result::Result<(), BoxError>;
}

impl Harness for AnyConnection {
    fn run_migration(&mut self, step: &dyn Runnable) -> std::result::Result<(), BoxError> {
        let layout = step.migration().layout;
        if layout == Layout::Diesel {
            return diesel_migrations::MigrationHarness::run_migration(self, step).map(|_| ());
        }
        run_with(self, history(layout), step, true)
    }

    fn revert_migration(&mut self, step: &dyn Runnable) -> std::result::Result<(), BoxError> {
        let layout = step.migration().layout;
        if layout == Layout::Diesel {
            return diesel_migrations::MigrationHarness::revert_migration(self, step).map(|_| ());
        }
        run_with(self, history(layout), step, false)
    }
}

/// diesel's harness steps with another history table: in one transaction when the
/// migration asks for one (never on MySQL, whose DDL commits by itself), else marked dirty
/// first where the layout does so.
fn run_with(
    conn: &mut AnyConnection,
    history: &dyn History,
    step: &dyn Runnable,
    up: bool,
) -> std::result::Result<(), BoxError> {
    use ::diesel::Connection;
    let migration = step.migration();
    let body = |conn: &mut AnyConnection| -> std::result::Result<(), BoxError> {
        let started = std::time::Instant::now();
        if up {
            step.run(conn)?;
            history.record_up(conn, migration, started.elapsed().as_nanos() as i64)?;
        } else {
            step.revert(conn)?;
            history.record_down(conn, &migration.version)?;
        }
        Ok(())
    };
    let transaction = step.metadata().run_in_transaction() && backend_of(conn) != Backend::Mysql;
    if transaction {
        conn.transaction(|conn| body(conn))
    } else {
        history.mark_dirty(conn, migration, up)?;
        body(conn)
    }
}

/// The statement that records `migration` applied (`up`) or reverted in its layout's
/// history table, when it is one plain statement (empty for a layout without a table).
pub fn record_sql(backend: Backend, migration: &Migration, up: bool) -> Option<String> {
    history(migration.layout).record_sql(backend, migration, up)
}
