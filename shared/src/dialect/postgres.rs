//! PostgreSQL: a polling session advisory lock, `SET LOCAL` timeouts, transactional DDL,
//! scratch databases cloned from `template0` with the target's encoding and locale, and
//! restores swapped in by renaming databases.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use sha2::Digest;

use super::{
    Backend, Dialect, ForeignKey, LedgerGuard, Lexicon, json_rows, json_strings, json_text,
};
use crate::config::SnapshotStrategy;
use crate::connection::{AnyConnection, Create, Database, connect_error};
use crate::error::{Error, Result};
use crate::lock::{LockFile, LockState, unknown_holder};
use crate::run_id::RunId;
use crate::snapshot::{Recovered, Scratch, SwapPlan, derived_name, maintenance, swap};
use crate::target::DatabaseUrl;

/// PostgreSQL's dialect.
pub(super) struct Postgres;

/// The advisory lock key of the target lock ("dbsafe" in ASCII).
const LOCK_KEY: i64 = 0x6462_7361_6665;

/// The advisory lock key that serialises creating the ledger ("dbledg").
const LEDGER_LOCK_KEY: i64 = 0x6462_6c65_6467;

/// The target lock's key for the target `db` reaches: [`LOCK_KEY`], or for a fleet's
/// schema member one derived from its schema, so two schemas of one database (two targets)
/// do not wait for each other.
fn lock_key(db: &Database) -> i64 {
    db.url().schema().map_or(LOCK_KEY, |schema| {
        let digest = sha2::Sha256::digest(format!("dbsafe:{schema}").as_bytes());
        i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
    })
}

/// Matches the target lock's row in `pg_locks` (alias `l`) of the current database.
fn lock_row(db: &Database) -> String {
    let key = lock_key(db) as u64;
    format!(
        "l.locktype = 'advisory' AND l.granted AND l.objid = {} AND l.classid = {} \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        key & 0xffff_ffff,
        key >> 32
    )
}

impl Dialect for Postgres {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn lexicon(&self) -> Lexicon {
        Lexicon {
            dollar_quotes: true,
            nested_comments: true,
            ..Lexicon::default()
        }
    }

    fn ident(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// A plain literal; one holding a backslash is an escape string (`E'...'`, backslashes
    /// doubled), which means the same whatever `standard_conforming_strings` says.
    fn literal(&self, text: &str) -> String {
        let quoted = text.replace('\'', "''");
        if text.contains('\\') {
            format!("E'{}'", quoted.replace('\\', "\\\\"))
        } else {
            format!("'{quoted}'")
        }
    }

    fn bool_literal(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }

    fn json_array(&self, items: &str) -> String {
        format!("json_build_array({items})::text")
    }

    fn is_not_true(&self, expr: &str) -> String {
        format!("{expr} IS NOT TRUE")
    }

    fn behaviour_checks(&self) -> bool {
        true
    }

    fn open(&self, url: &DatabaseUrl, _create: Create) -> Result<AnyConnection> {
        let mut pg =
            PgConnection::establish(url.connection_string()).map_err(connect_error(url))?;
        // client_connection_check_interval (PostgreSQL 14+; older servers do not have it,
        // a no-op): if dbsafe dies mid-statement, the server ends the session within a
        // second (rolling back, freeing the lock) instead of running a long migration to
        // its end for nobody.
        // A fleet's schema member works in its schema alone (`dbsafe.schema` scopes the
        // fingerprints and row counts); the cast fails when the schema does not exist
        // rather than letting the ledger land elsewhere.
        let schema = url.schema().map_or(String::new(), |schema| {
            let ident = self.ident(schema);
            format!(
                "; SET search_path = {ident}; SET dbsafe.schema = {}; SELECT {}::regnamespace",
                self.literal(schema),
                self.literal(&ident)
            )
        });
        // (Asked by version, not by scanning pg_settings: that view formats every setting,
        // a few milliseconds per connection of a busy server.)
        pg.batch_execute(&format!(
            "SET application_name = 'dbsafe'; \
             SELECT set_config('client_connection_check_interval', '1000', false) \
             WHERE current_setting('server_version_num')::int >= 140000{schema}"
        ))
        .map_err(|e| Error::db("setting up the PostgreSQL session", e))?;
        crate::pooler::ensure_direct(&mut pg, url)?;
        Ok(AnyConnection::Postgresql(pg))
    }

    /// `SET LOCAL` inside a transaction (safe behind PgBouncer), `SET SESSION` outside.
    fn timeouts_sql(
        &self,
        lock_timeout: Duration,
        statement_timeout: Option<Duration>,
        in_transaction: bool,
    ) -> String {
        let scope = if in_transaction { "LOCAL" } else { "SESSION" };
        format!(
            "SET {scope} lock_timeout = {}; SET {scope} statement_timeout = {}",
            lock_timeout.as_millis(),
            statement_timeout.map_or(0, |d| d.as_millis())
        )
    }

    fn reset_timeouts_sql(&self) -> String {
        "RESET lock_timeout; RESET statement_timeout".to_owned()
    }

    fn no_sync_sql(&self) -> Option<&'static str> {
        Some("SET synchronous_commit = off")
    }

    /// `pg_try_advisory_lock`, polled (a blocking one deadlocks against `CREATE INDEX
    /// CONCURRENTLY`); the holder's run id travels in `application_name`, so a waiter can
    /// name it.
    fn try_lock(
        &self,
        db: &mut Database,
        _file: Option<&mut LockFile>,
        run_id: &RunId,
    ) -> Result<bool> {
        let taken = db
            .integer(&format!(
                "SELECT CAST(CASE WHEN pg_try_advisory_lock({}) THEN 1 ELSE 0 END AS BIGINT) AS v",
                lock_key(db)
            ))
            .map_err(|e| Error::db("taking the PostgreSQL advisory lock", e))?
            == 1;
        if taken {
            db.execute(&format!(
                "SET application_name = {}",
                self.literal(&format!("dbsafe {run_id}"))
            ))
            .map_err(|e| Error::db("naming the lock holder", e))?;
        }
        Ok(taken)
    }

    fn lock_holder(&self, db: &mut Database, _file: Option<&mut LockFile>) -> LockState {
        let Ok(rows) = db.texts(&format!(
            "SELECT CAST(l.pid AS TEXT) || ' ' || COALESCE(a.application_name, '') AS v FROM pg_locks l \
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE {}",
            lock_row(db)
        )) else {
            return unknown_holder("PostgreSQL session");
        };
        let Some(row) = rows.into_iter().next() else {
            return LockState::Free;
        };
        let (pid, name) = row.split_once(' ').unwrap_or((&row, ""));
        LockState::Held {
            run: name.strip_prefix("dbsafe ").and_then(RunId::parse_opt),
            session: format!("PostgreSQL backend pid {pid}"),
        }
    }

    fn release_lock(&self, db: &mut Database, _file: Option<LockFile>) {
        let _ = db.execute(&format!(
            "SELECT pg_advisory_unlock({}); SET application_name = 'dbsafe'",
            lock_key(db)
        ));
    }

    /// `pg_cancel_backend` of the holding session.
    fn cancel_lock_holder(&self, db: &mut Database) {
        let _ = db.execute(&format!(
            "SELECT pg_cancel_backend(l.pid) FROM pg_locks l WHERE {} AND l.pid <> pg_backend_pid()",
            lock_row(db)
        ));
    }

    /// A transaction-scoped advisory lock; everything in one transaction.
    fn ledger_guard(&self) -> LedgerGuard {
        LedgerGuard {
            begin: format!("BEGIN; SELECT pg_advisory_xact_lock({LEDGER_LOCK_KEY})"),
            commit: "COMMIT",
            rollback: "ROLLBACK",
        }
    }

    /// Each name resolved through the search path by `to_regclass`, the first schema that
    /// has it, as PostgreSQL itself would: a lookup, where the `pg_tables` view costs a
    /// planned join (a few milliseconds on a new connection).
    fn tables_present_sql(&self, names: &[&str]) -> String {
        let regclasses: Vec<String> = names
            .iter()
            .map(|name| format!("to_regclass({})", self.literal(&self.ident(name))))
            .collect();
        format!(
            "SELECT CAST(count(*) AS BIGINT) AS v FROM pg_catalog.pg_class WHERE oid IN ({}) AND relkind IN ('r', 'p')",
            regclasses.join(", ")
        )
    }

    fn column_count_sql(&self, table: &str, column: &str) -> String {
        format!(
            "SELECT CAST(count(*) AS BIGINT) AS v FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = {} AND column_name = {}",
            self.literal(table),
            self.literal(column)
        )
    }

    fn server_version_sql(&self) -> &'static str {
        "SELECT CAST(current_setting('server_version') AS TEXT) AS v"
    }

    fn table_estimates_sql(&self) -> &'static str {
        "SELECT json_build_array(CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END, \
         CAST(GREATEST(c.reltuples, 0) AS BIGINT))::text AS v \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
         AND COALESCE(NULLIF(current_setting('dbsafe.schema', true), ''), n.nspname) = n.nspname"
    }

    fn old_transactions_sql(&self, age: Duration) -> Option<String> {
        Some(format!(
            "SELECT CAST(pid AS TEXT) || ' (' || COALESCE(usename, '?') || ', open ' || \
             CAST(date_trunc('second', now() - xact_start) AS TEXT) || ')' AS v \
             FROM pg_stat_activity WHERE xact_start < now() - interval '{} milliseconds' \
             AND pid <> pg_backend_pid() AND datname = current_database() ORDER BY xact_start",
            age.as_millis()
        ))
    }

    fn client_connections_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT CAST(count(*) AS BIGINT) AS v FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
    }

    fn primary_key_sql(&self, table: &str) -> String {
        format!(
            "SELECT a.attname::text AS v FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = {}::regclass AND i.indisprimary ORDER BY a.attnum",
            self.literal(&self.qualified(table))
        )
    }

    fn rows_json_sql(&self, _db: &mut Database, table: &str) -> diesel::QueryResult<String> {
        Ok(format!(
            "SELECT row_to_json(t)::text AS v FROM {} t",
            self.qualified(table)
        ))
    }

    fn foreign_keys(&self, db: &mut Database) -> Result<Vec<ForeignKey>> {
        let context = "listing foreign keys";
        let sql = "SELECT json_build_array(c.conname, \
             CASE WHEN cn.nspname = 'public' THEN cl.relname::text ELSE cn.nspname || '.' || cl.relname END, \
             ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), \
             CASE WHEN pn.nspname = 'public' THEN p.relname::text ELSE pn.nspname || '.' || p.relname END, \
             ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o), \
             c.convalidated)::text AS v \
             FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace \
             JOIN pg_class p ON p.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE c.contype = 'f' AND cn.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND COALESCE(NULLIF(current_setting('dbsafe.schema', true), ''), cn.nspname) = cn.nspname ORDER BY 1";
        Ok(json_rows(db, sql, context)?
            .iter()
            .map(|r| ForeignKey {
                name: json_text(&r[0]),
                child: json_text(&r[1]),
                child_columns: json_strings(&r[2]),
                parent: json_text(&r[3]),
                parent_columns: json_strings(&r[4]),
                validated: r[5].as_bool().unwrap_or(true),
            })
            .collect())
    }

    fn analyze_sql(&self) -> Option<&'static str> {
        Some("ANALYZE")
    }

    fn triggers_sql(&self) -> &'static str {
        "SELECT (c.relname || '.' || t.tgname)::text AS v FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
    }

    fn rls_enabled_sql(&self, names: &str) -> Option<String> {
        Some(format!(
            "SELECT relname::text AS v FROM pg_class WHERE relkind IN ('r', 'p') AND relrowsecurity AND relname IN ({names})"
        ))
    }

    /// The cluster's system identifier (or address and port) and the database name.
    fn identity(&self, db: &mut Database) -> Result<String> {
        let fail = |e| Error::db("reading the database identity", e);
        let server = db
            .texts("SELECT CAST(system_identifier AS TEXT) AS v FROM pg_control_system()")
            .or_else(|_| db.texts("SELECT COALESCE(CAST(inet_server_addr() AS TEXT), 'local') || ':' || CAST(inet_server_port() AS TEXT) AS v"))
            .map_err(fail)?;
        let name = db
            .texts("SELECT CAST(current_database() AS TEXT) AS v")
            .map_err(fail)?;
        let identity = format!("postgres:{}/{}", first(server), first(name));
        // A fleet's schema member is the database plus its schema.
        Ok(match db.url().schema() {
            Some(schema) => format!("{identity}/{schema}"),
            None => identity,
        })
    }

    fn hex_of(&self, column: &str) -> String {
        format!("encode({column}, 'hex')")
    }

    fn bytes_literal(&self, bytes: &[u8]) -> String {
        format!("decode('{}', 'hex')", crate::migrations::hex(bytes))
    }

    fn bytes_type(&self) -> &'static str {
        "BYTEA"
    }

    fn created_at_column(&self) -> &'static str {
        "TIMESTAMPTZ NOT NULL DEFAULT now()"
    }

    fn maintenance_database(&self) -> Option<&'static str> {
        Some("postgres")
    }

    fn database_list_sql(&self) -> Option<&'static str> {
        Some("SELECT datname AS name FROM pg_database WHERE datallowconn AND NOT datistemplate")
    }

    fn schema_list_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT nspname AS name FROM pg_namespace \
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
        )
    }

    fn database_exists(&self, url: &DatabaseUrl) -> Result<bool> {
        let sql = format!(
            "SELECT CAST(datname AS TEXT) AS v FROM pg_database WHERE datname = {}",
            self.literal(&url.database_name())
        );
        super::server_lists(url, &sql)
    }

    /// From `template0` with the target's encoding and locale: a dump brings everything
    /// else, and nothing of `template1` collides with it.
    fn create_scratch(&self, url: &DatabaseUrl, name: &str) -> Result<DatabaseUrl> {
        let mut admin = maintenance(url)?;
        let locale = admin
            .texts(&format!(
                "SELECT CAST(format('ENCODING %L LC_COLLATE %L LC_CTYPE %L', pg_encoding_to_char(encoding), datcollate, datctype) AS TEXT) AS v FROM pg_database WHERE datname = {}",
                self.literal(&url.database_name())
            ))
            .map_err(|e| Error::db("reading the database's encoding", e))?;
        admin
            .execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0 {}",
                self.ident(name),
                locale.first().map_or("", String::as_str)
            ))
            .map_err(|e| Error::db(format!("creating database {name}"), e))?;
        Ok(url.with_database(name))
    }

    /// `DROP DATABASE ... WITH (FORCE)`: sessions still on it are ended.
    fn drop_database(&self, url: &DatabaseUrl, name: &str) -> Result<()> {
        maintenance(url)?
            .execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.ident(name)
            ))
            .map_err(|e| Error::db(format!("dropping database {name}"), e))
    }

    fn snapshot_strategies(&self) -> &'static [SnapshotStrategy] {
        &[SnapshotStrategy::PgDump, SnapshotStrategy::Template]
    }

    fn prepare_staging(&self, target: &DatabaseUrl, staging: &str) -> Result<()> {
        swap::postgres::copy_database_properties(target, staging)
    }

    fn swap_plan(&self, target: &DatabaseUrl, staging: &str, run_id: &RunId) -> Result<SwapPlan> {
        Ok(SwapPlan {
            staging: staging.to_owned(),
            replaced: derived_name(&target.database_name(), "replaced", run_id.as_str()),
            recreate: Vec::new(),
            original: Vec::new(),
        })
    }

    fn swap(
        &self,
        db: &mut Database,
        target: &DatabaseUrl,
        staging: Scratch,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<()> {
        swap::postgres::swap(db, target, staging, plan, keep_replaced)
    }

    fn recover_swap(
        &self,
        target: &DatabaseUrl,
        plan: &SwapPlan,
        keep_replaced: bool,
    ) -> Result<Recovered> {
        swap::postgres::recover(target, plan, keep_replaced)
    }
}

fn first(rows: Vec<String>) -> String {
    rows.into_iter().next().unwrap_or_default()
}
