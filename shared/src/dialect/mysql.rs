//! MySQL and MariaDB: `GET_LOCK` named after the database, session timeouts (MariaDB's
//! statement timeout in a `/*M! */` comment), DDL that commits implicitly, scratch
//! databases with the target's character set, and restores swapped in by one `RENAME TABLE`.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::{Connection, MysqlConnection};

use super::{Backend, Dialect, ForeignKey, LedgerGuard, Lexicon, json_rows, json_text};
use crate::config::SnapshotStrategy;
use crate::connection::{AnyConnection, Create, Database, connect_error};
use crate::error::{Error, Result};
use crate::lock::{LockFile, LockState, unknown_holder};
use crate::run_id::RunId;
use crate::snapshot::{Recovered, Scratch, SwapPlan, derived_name, maintenance, swap};
use crate::target::DatabaseUrl;

/// MySQL's (and MariaDB's) dialect.
pub(super) struct Mysql;

/// The name of the target lock: one per database on the server.
const LOCK_NAME: &str = "CONCAT('dbsafe:', DATABASE())";

/// The name of the lock that serialises creating the ledger.
const LEDGER_LOCK_NAME: &str = "CONCAT('dbsafe-ledger:', DATABASE())";

/// The id of the connection holding the target lock; `None` when it is free.
fn lock_connection(db: &mut Database) -> diesel::QueryResult<Option<String>> {
    let rows = db.texts(&format!(
        "SELECT COALESCE(CAST(IS_USED_LOCK({LOCK_NAME}) AS CHAR), '') AS v"
    ))?;
    Ok(rows.into_iter().next().filter(|c| !c.is_empty()))
}

impl Dialect for Mysql {
    fn backend(&self) -> Backend {
        Backend::Mysql
    }

    fn lexicon(&self) -> Lexicon {
        Lexicon {
            hash_comments: true,
            backslash_escapes: true,
            double_quoted_strings: true,
            ..Lexicon::default()
        }
    }

    fn ident(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    /// `'` doubled and `\` escaped: MySQL reads a backslash in a string as an escape under
    /// the default `sql_mode` (the one diesel's sessions keep). A server whose `sql_mode`
    /// has `NO_BACKSLASH_ESCAPES` would read such a literal with its backslashes doubled.
    fn literal(&self, text: &str) -> String {
        format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    }

    fn text_type(&self) -> &'static str {
        "CHAR"
    }

    fn bigint_type(&self) -> &'static str {
        "SIGNED"
    }

    fn json_array(&self, items: &str) -> String {
        format!("CAST(JSON_ARRAY({items}) AS CHAR)")
    }

    fn open(&self, url: &DatabaseUrl, _create: Create) -> Result<AnyConnection> {
        Ok(AnyConnection::Mysql(
            MysqlConnection::establish(url.connection_string()).map_err(connect_error(url))?,
        ))
    }

    fn transactional_ddl(&self) -> bool {
        false
    }

    /// Session settings whatever `in_transaction` says (DDL would commit the transaction);
    /// MariaDB alone reads the `/*M! ... */` part: its statement timeout, in seconds.
    fn timeouts_sql(
        &self,
        lock_timeout: Duration,
        statement_timeout: Option<Duration>,
        _in_transaction: bool,
    ) -> String {
        let seconds = lock_timeout.as_secs().max(1);
        let statement_ms = statement_timeout.map_or(0, |d| d.as_millis());
        format!(
            "SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds} /*M!, max_statement_time = {:.3} */",
            statement_ms as f64 / 1000.0
        )
    }

    fn reset_timeouts_sql(&self) -> String {
        "SET SESSION lock_wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT /*M!, max_statement_time = DEFAULT */".to_owned()
    }

    /// `GET_LOCK` without waiting; once taken, the run is named in the ledger (when there
    /// is one) from the first moment, for waiters.
    fn try_lock(
        &self,
        db: &mut Database,
        _file: Option<&mut LockFile>,
        run_id: &RunId,
    ) -> Result<bool> {
        let taken = db
            .integer(&format!(
                "SELECT CAST(COALESCE(GET_LOCK({LOCK_NAME}, 0), 0) AS SIGNED) AS v"
            ))
            .map_err(|e| Error::db("taking the MySQL lock (GET_LOCK)", e))?
            == 1;
        if taken && db.table_exists("dbsafe_meta").unwrap_or(false) {
            self.announce_lock_holder(db, run_id)?;
        }
        Ok(taken)
    }

    fn lock_holder(&self, db: &mut Database, _file: Option<&mut LockFile>) -> LockState {
        let Ok(connection) = lock_connection(db) else {
            return unknown_holder("MySQL connection");
        };
        let Some(connection) = connection else {
            return LockState::Free;
        };
        // The run recorded as holder counts only if its connection holds the lock now: an
        // entry left by an earlier run, or a lock held outside dbsafe, names no run.
        let run = crate::ledger::meta_get(db, "lock_holder")
            .ok()
            .flatten()
            .and_then(|recorded| {
                let (holder_connection, run) = recorded.split_once(' ')?;
                (holder_connection == connection)
                    .then(|| RunId::parse_opt(run))
                    .flatten()
            });
        LockState::Held {
            run,
            session: format!("MySQL connection {connection}"),
        }
    }

    fn release_lock(&self, db: &mut Database, _file: Option<LockFile>) {
        let _ = db.execute(&format!("DO RELEASE_LOCK({LOCK_NAME})"));
    }

    /// Records in the ledger (which must exist) that this connection holds the lock for
    /// `run_id`, so a waiter can name the run.
    fn announce_lock_holder(&self, db: &mut Database, run_id: &RunId) -> Result<()> {
        let connection = db
            .integer("SELECT CAST(CONNECTION_ID() AS SIGNED) AS v")
            .map_err(|e| Error::db("reading the MySQL connection id", e))?;
        crate::ledger::meta_set(db, &[("lock_holder", format!("{connection} {run_id}"))])
    }

    /// `KILL QUERY` of the holding connection.
    fn cancel_lock_holder(&self, db: &mut Database) {
        if let Ok(Some(connection)) = lock_connection(db)
            && connection.bytes().all(|b| b.is_ascii_digit())
        {
            let _ = db.execute(&format!("KILL QUERY {connection}"));
        }
    }

    fn long_text_type(&self) -> &'static str {
        "LONGTEXT"
    }

    /// A named lock (DDL commits statement by statement: each step is idempotent).
    fn ledger_guard(&self) -> LedgerGuard {
        LedgerGuard {
            begin: format!("DO GET_LOCK({LEDGER_LOCK_NAME}, 60)"),
            commit: "DO RELEASE_LOCK(CONCAT('dbsafe-ledger:', DATABASE()))",
            rollback: "DO RELEASE_LOCK(CONCAT('dbsafe-ledger:', DATABASE()))",
        }
    }

    fn upsert_sql(&self, table: &str, values: &str) -> String {
        format!(
            "INSERT INTO {table} (name, value) VALUES {values} ON DUPLICATE KEY UPDATE value = VALUES(value)"
        )
    }

    fn tables_present_sql(&self, names: &[&str]) -> String {
        let names = self.literal_list(names);
        format!(
            "SELECT CAST(count(*) AS SIGNED) AS v FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ({names})"
        )
    }

    fn column_count_sql(&self, table: &str, column: &str) -> String {
        format!(
            "SELECT CAST(count(*) AS SIGNED) AS v FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = {} AND column_name = {}",
            self.literal(table),
            self.literal(column)
        )
    }

    fn server_version_sql(&self) -> &'static str {
        "SELECT CAST(VERSION() AS CHAR) AS v"
    }

    fn table_estimates_sql(&self) -> &'static str {
        "SELECT CAST(JSON_ARRAY(TABLE_NAME, COALESCE(TABLE_ROWS, 0)) AS CHAR) AS v \
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
    }

    fn primary_key_sql(&self, table: &str) -> String {
        format!(
            "SELECT CAST(c.COLUMN_NAME AS CHAR) AS v FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = {} AND c.COLUMN_KEY = 'PRI' ORDER BY c.ORDINAL_POSITION",
            self.literal(table)
        )
    }

    fn rows_json_sql(&self, db: &mut Database, table: &str) -> diesel::QueryResult<String> {
        let columns = db.texts(&format!(
            "SELECT CAST(c.COLUMN_NAME AS CHAR) AS v FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = {} ORDER BY c.ORDINAL_POSITION",
            self.literal(table)
        ))?;
        let pairs: Vec<String> = columns
            .iter()
            .map(|c| format!("{}, {}", self.literal(c), self.qualified(c)))
            .collect();
        Ok(format!(
            "SELECT CAST(JSON_OBJECT({}) AS CHAR) AS v FROM {}",
            pairs.join(", "),
            self.qualified(table)
        ))
    }

    fn foreign_keys(&self, db: &mut Database) -> Result<Vec<ForeignKey>> {
        let context = "listing foreign keys";
        let sql = "SELECT CAST(JSON_ARRAY(CONSTRAINT_NAME, TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME) AS CHAR) AS v \
             FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION";
        let mut keys: BTreeMap<(String, String), ForeignKey> = BTreeMap::new();
        for r in json_rows(db, sql, context)? {
            let key = keys
                .entry((json_text(&r[1]), json_text(&r[0])))
                .or_insert_with(|| ForeignKey {
                    name: json_text(&r[0]),
                    child: json_text(&r[1]),
                    child_columns: Vec::new(),
                    parent: json_text(&r[3]),
                    parent_columns: Vec::new(),
                    validated: true,
                });
            key.child_columns.push(json_text(&r[2]));
            key.parent_columns.push(json_text(&r[4]));
        }
        Ok(keys.into_values().collect())
    }

    fn triggers_sql(&self) -> &'static str {
        "SELECT CAST(CONCAT(EVENT_OBJECT_TABLE, '.', TRIGGER_NAME) AS CHAR) AS v FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
    }

    /// The server's UUID (or host, port and server id) and the database name.
    fn identity(&self, db: &mut Database) -> Result<String> {
        let fail = |e| Error::db("reading the database identity", e);
        let server = db
            .texts("SELECT CAST(@@server_uuid AS CHAR) AS v")
            .or_else(|_| {
                db.texts(
                    "SELECT CAST(CONCAT(@@hostname, ':', @@port, ':', @@server_id) AS CHAR) AS v",
                )
            })
            .map_err(fail)?;
        let name = db
            .texts("SELECT CAST(COALESCE(DATABASE(), '') AS CHAR) AS v")
            .map_err(fail)?;
        let first = |rows: Vec<String>| rows.into_iter().next().unwrap_or_default();
        Ok(format!("mysql:{}/{}", first(server), first(name)))
    }

    fn concat(&self, parts: &[&str]) -> String {
        format!("CONCAT({})", parts.join(", "))
    }

    /// `information_schema`: every user may open it, while the `mysql` system database is
    /// refused to an application's own user.
    fn maintenance_database(&self) -> Option<&'static str> {
        Some("information_schema")
    }

    fn database_list_sql(&self) -> Option<&'static str> {
        Some("SELECT schema_name AS name FROM information_schema.schemata")
    }

    fn database_exists(&self, url: &DatabaseUrl) -> Result<bool> {
        let sql = format!(
            "SELECT CAST(SCHEMA_NAME AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            self.literal(&url.database_name())
        );
        super::server_lists(url, &sql)
    }

    /// With the target's character set and collation.
    fn create_scratch(&self, url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl> {
        let mut admin = maintenance(url)?;
        let charset = admin
            .texts(&format!(
                "SELECT CAST(CONCAT(DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', DEFAULT_COLLATION_NAME) AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                self.literal(&url.database_name())
            ))
            .map_err(|e| Error::db("reading the database's character set", e))?;
        let create = match charset.first() {
            Some(charset) => format!(
                "CREATE DATABASE {} CHARACTER SET {charset}",
                self.ident(name)
            ),
            None => format!("CREATE DATABASE {}", self.ident(name)),
        };
        admin
            .execute(&create)
            .map_err(|e| Error::db(format!("creating database {name}"), e))?;
        Ok(url.with_database(name))
    }

    fn drop_database(&self, url: &DatabaseUrl, name: &str) -> Result<()> {
        swap::mysql::drop_database(&mut maintenance(url)?, name)
    }

    fn snapshot_strategies(&self) -> &'static [SnapshotStrategy] {
        &[SnapshotStrategy::Mysqldump]
    }

    /// With the target's own routines, views and triggers, to put back if the swap is
    /// interrupted before its tables moved.
    fn swap_plan(&self, target: &DatabaseUrl, staging: &str, run_id: &RunId) -> Result<SwapPlan> {
        let name = target.database_name();
        let mut db = Database::connect(target, Create::Never)?;
        Ok(SwapPlan {
            staging: staging.to_owned(),
            replaced: derived_name(&name, "replaced", run_id.as_str()),
            recreate: Vec::new(),
            original: swap::mysql::objects(&mut db, &name, &name)?,
        })
    }

    /// The copy's routines, views and triggers, written for the target.
    fn complete_swap_plan(
        &self,
        target: &DatabaseUrl,
        staging: &DatabaseUrl,
        plan: &mut SwapPlan,
    ) -> Result<()> {
        let mut staged = Database::connect(staging, Create::Never)?;
        plan.recreate = swap::mysql::objects(&mut staged, &plan.staging, &target.database_name())?;
        Ok(())
    }

    fn swap(
        &self,
        db: &mut Database,
        target: &DatabaseUrl,
        staging: Scratch,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<()> {
        swap::mysql::swap(db, target, staging, plan, keep_replaced)
    }

    fn recover_swap(
        &self,
        target: &DatabaseUrl,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<Recovered> {
        swap::mysql::recover(target, plan, keep_replaced)
    }
}
