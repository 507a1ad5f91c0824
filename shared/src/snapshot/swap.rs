//! Replacing a target by a restored copy without ever emptying it first: the snapshot is
//! restored into a staging database beside the target, checked there, and swapped in by
//! name in one step (PostgreSQL `ALTER DATABASE ... RENAME` in one transaction, MariaDB one
//! `RENAME TABLE` of every table, SQLite a synced file renamed over the old one). Until the
//! swap commits the target is exactly as it was; after it, the replaced database is dropped
//! (or kept, `[snapshot] keep-replaced`). An interrupted swap is finished or undone from the
//! journal by [`recover`].

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

use super::backends::{
    self, Scratch, database_name, derived_name, maintenance, mysql_ident, pg_ident,
};
use crate::connection::{Create, Database, quote};
use crate::error::{Error, Result};
use crate::target::{Backend, DatabaseUrl};

/// The names a swap works with, journaled before it starts so that an interrupted swap
/// can be finished or undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPlan {
    /// The database (SQLite: the file) holding the restored copy.
    pub staging: String,
    /// The name the target's current database (or tables, or file) gets once swapped out.
    pub replaced: String,
    /// MariaDB: the routines, views and triggers of the copy, written for the target, to
    /// create there after the tables moved (they cannot move between databases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recreate: Vec<String>,
    /// MariaDB: the target's own routines, views and triggers, to put back if the swap is
    /// interrupted before its tables moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub original: Vec<String>,
}

/// A restored copy of a snapshot beside the target, dropped unless swapped in.
pub struct Staging {
    scratch: Scratch,
    target: DatabaseUrl,
}

impl Staging {
    /// A new empty database beside `target` (same owner, encoding and settings on
    /// PostgreSQL; same character set on MariaDB; a file in the same directory on SQLite).
    pub fn create(target: &DatabaseUrl, run_id: &str) -> Result<Staging> {
        let scratch = Scratch::beside(target, run_id)?;
        if target.backend() == Backend::Postgres {
            copy_pg_database_properties(target, &database_name(scratch.url()))?;
        }
        Ok(Staging {
            scratch,
            target: target.clone(),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &DatabaseUrl {
        self.scratch.url()
    }

    /// The names the swap will use (and on MariaDB the target's own routines, views and
    /// triggers), to be journaled before the copy is written.
    pub fn plan(&self, run_id: &str) -> Result<SwapPlan> {
        let staging = self.scratch.name().to_owned();
        let target_name = database_name(&self.target);
        let (replaced, original) = match self.target.backend() {
            Backend::Sqlite => (
                replaced_file(&self.target, run_id)?
                    .to_string_lossy()
                    .into_owned(),
                Vec::new(),
            ),
            Backend::Postgres => (derived_name(&target_name, "replaced", run_id), Vec::new()),
            Backend::Mysql => {
                let mut target = Database::connect(&self.target, Create::Never)?;
                (
                    derived_name(&target_name, "replaced", run_id),
                    mysql_objects(&mut target, &target_name, &target_name)?,
                )
            }
        };
        Ok(SwapPlan {
            staging,
            replaced,
            recreate: Vec::new(),
            original,
        })
    }

    /// Adds to `plan` what the written copy needs after the swap (MariaDB: its routines,
    /// views and triggers, written for the target), to be journaled before [`Staging::swap`].
    pub fn complete(&self, plan: &mut SwapPlan) -> Result<()> {
        if self.target.backend() == Backend::Mysql {
            let mut staged = Database::connect(self.url(), Create::Never)?;
            plan.recreate =
                mysql_objects(&mut staged, &plan.staging, &database_name(&self.target))?;
        }
        Ok(())
    }

    /// Swaps the copy in for the target. `db` is the caller's session on the target: on
    /// PostgreSQL it is closed for the rename and reopened on the new database (the caller
    /// takes its lock again); elsewhere it stays open. The replaced database is dropped
    /// unless `keep_replaced`.
    pub fn swap(self, db: &mut Database, plan: &SwapPlan, keep_replaced: bool) -> Result<()> {
        let Staging { scratch, target } = self;
        match target.backend() {
            Backend::Postgres => {
                // The rename needs every session on the target closed, this one included.
                *db = maintenance(&target)?;
                let swapped = swap_postgres(db, &database_name(&target), plan);
                let reopened = Database::connect(&target, Create::Never);
                swapped?;
                scratch.disarm();
                *db = reopened?;
                if !keep_replaced {
                    backends::drop_database(&target, &plan.replaced)?;
                }
            }
            Backend::Mysql => {
                swap_mysql(db, &database_name(&target), plan)?;
                drop(scratch);
                finish_mysql(db, plan, keep_replaced)?;
            }
            Backend::Sqlite => {
                let path = target
                    .sqlite_path()
                    .ok_or_else(|| Error::Failed("not a SQLite URL".into()))?
                    .to_owned();
                swap_sqlite(db, &path, plan, keep_replaced)?;
                scratch.disarm();
                *db = Database::connect(&target, Create::Never)?;
            }
        }
        Ok(())
    }
}

/// What [`recover`] found and did about an interrupted swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The swap had committed: the copy is the target; what was left was tidied up.
    Swapped,
    /// The swap never happened: the target is as it was; the copy was discarded.
    Undone,
}

/// Finishes or undoes a swap that was interrupted (the process killed) after `plan` was
/// journaled, from what is on the server now.
pub fn recover(target: &DatabaseUrl, plan: &SwapPlan, keep_replaced: bool) -> Result<Recovered> {
    match target.backend() {
        Backend::Postgres => {
            let mut admin = maintenance(target)?;
            let name = database_name(target);
            let exists = |admin: &mut Database, db: &str| -> Result<bool> {
                Ok(!admin
                    .texts(&format!(
                        "SELECT CAST(datname AS TEXT) AS v FROM pg_database WHERE datname = {}",
                        quote(db)
                    ))
                    .map_err(|e| Error::db("looking for an interrupted restore's databases", e))?
                    .is_empty())
            };
            allow_connections(&mut admin, &name)?;
            if exists(&mut admin, &plan.staging)? && exists(&mut admin, &name)? {
                backends::drop_database(target, &plan.staging)?;
                return Ok(Recovered::Undone);
            }
            if exists(&mut admin, &plan.replaced)? {
                allow_connections(&mut admin, &plan.replaced)?;
                if !keep_replaced {
                    backends::drop_database(target, &plan.replaced)?;
                }
            }
            Ok(Recovered::Swapped)
        }
        Backend::Mysql => {
            let mut db = Database::connect(target, Create::Never)?;
            let staged_tables = mysql_tables(&mut db, &plan.staging)?;
            if !staged_tables.is_empty() {
                run_ignoring_existing(&mut db, &plan.original)?;
                drop_mysql_database(&mut db, &plan.staging)?;
                return Ok(Recovered::Undone);
            }
            finish_mysql(&mut db, plan, keep_replaced)?;
            Ok(Recovered::Swapped)
        }
        Backend::Sqlite => {
            let staging = Path::new(&plan.staging);
            if staging.exists() {
                let _ = fs::remove_file(staging);
                return Ok(Recovered::Undone);
            }
            if !keep_replaced {
                let _ = fs::remove_file(&plan.replaced);
            }
            Ok(Recovered::Swapped)
        }
    }
}

/// Drops what is left of a copy whose swap never began (the process was killed while
/// writing it): the target was never touched.
pub fn discard(target: &DatabaseUrl, plan: &SwapPlan) -> Result<()> {
    match target.backend() {
        Backend::Sqlite => {
            let _ = fs::remove_file(&plan.staging);
            Ok(())
        }
        Backend::Postgres => backends::drop_database(target, &plan.staging),
        Backend::Mysql => drop_mysql_database(&mut maintenance(target)?, &plan.staging),
    }
}

/// Gives the staging database the target's owner, encoding, locale, connection limit,
/// per-database settings, grants and comment: what `pg_dump` of the contents leaves out.
fn copy_pg_database_properties(target: &DatabaseUrl, staging: &str) -> Result<()> {
    let mut admin = maintenance(target)?;
    let name = quote(&database_name(target));
    let fail = |e| Error::db("copying the target database's properties to the restore", e);
    let staged = pg_ident(staging);
    let mut sql = Vec::new();
    let owner = admin
        .texts(&format!(
            "SELECT CAST(pg_get_userbyid(datdba) AS TEXT) AS v FROM pg_database WHERE datname = {name}"
        ))
        .map_err(fail)?;
    if let Some(owner) = owner.first() {
        sql.push(format!(
            "ALTER DATABASE {staged} OWNER TO {}",
            pg_ident(owner)
        ));
    }
    let limit = admin
        .texts(&format!(
            "SELECT CAST(datconnlimit AS TEXT) AS v FROM pg_database WHERE datname = {name}"
        ))
        .map_err(fail)?;
    if let Some(limit) = limit.first() {
        sql.push(format!("ALTER DATABASE {staged} CONNECTION LIMIT {limit}"));
    }
    // Settings are stored as `name=value`; list settings keep their own quoting.
    let settings = admin
        .texts(&format!(
            "SELECT CAST(json_build_array(COALESCE(r.rolname, ''), c) AS TEXT) AS v \
             FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c \
             LEFT JOIN pg_roles r ON r.oid = s.setrole \
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = {name})"
        ))
        .map_err(fail)?;
    for row in settings {
        let Ok((role, setting)) = serde_json::from_str::<(String, String)>(&row) else {
            continue;
        };
        let Some((key, value)) = setting.split_once('=') else {
            continue;
        };
        let list = matches!(
            key,
            "search_path"
                | "temp_tablespaces"
                | "session_preload_libraries"
                | "local_preload_libraries"
        );
        let value = if list { value.to_owned() } else { quote(value) };
        // `ALTER ROLE ALL IN DATABASE` is `ALTER DATABASE ... SET`.
        let role = if role.is_empty() {
            "ALL".to_owned()
        } else {
            pg_ident(&role)
        };
        sql.push(format!(
            "ALTER ROLE {role} IN DATABASE {staged} SET {} = {value}",
            pg_ident(key)
        ));
    }
    let grants = admin
        .texts(&format!(
            "SELECT CAST(json_build_array(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, \
               a.privilege_type, a.is_grantable) AS TEXT) AS v \
             FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a WHERE d.datname = {name}"
        ))
        .map_err(fail)?;
    let has_acl = admin
        .integer(&format!(
            "SELECT CAST(count(*) AS BIGINT) AS v FROM pg_database WHERE datname = {name} AND datacl IS NOT NULL"
        ))
        .map_err(fail)?
        > 0;
    if has_acl {
        sql.push(format!("REVOKE ALL ON DATABASE {staged} FROM PUBLIC"));
        for row in grants {
            let Ok((grantee, privilege, grantable)) =
                serde_json::from_str::<(String, String, bool)>(&row)
            else {
                continue;
            };
            let grantee = if grantee == "PUBLIC" {
                grantee
            } else {
                pg_ident(&grantee)
            };
            sql.push(format!(
                "GRANT {privilege} ON DATABASE {staged} TO {grantee}{}",
                if grantable { " WITH GRANT OPTION" } else { "" }
            ));
        }
    }
    let comment = admin
        .texts(&format!(
            "SELECT CAST(shobj_description(oid, 'pg_database') AS TEXT) AS v FROM pg_database \
             WHERE datname = {name} AND shobj_description(oid, 'pg_database') IS NOT NULL"
        ))
        .map_err(fail)?;
    if let Some(comment) = comment.first() {
        sql.push(format!(
            "COMMENT ON DATABASE {staged} IS {}",
            quote(comment)
        ));
    }
    for statement in sql {
        admin.execute(&statement).map_err(fail)?;
    }
    Ok(())
}

fn allow_connections(admin: &mut Database, name: &str) -> Result<()> {
    let exists = admin
        .integer(&format!(
            "SELECT CAST(count(*) AS BIGINT) AS v FROM pg_database WHERE datname = {}",
            quote(name)
        ))
        .map_err(|e| Error::db("looking up a database", e))?
        > 0;
    if exists {
        admin
            .execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                pg_ident(name)
            ))
            .map_err(|e| Error::db(format!("allowing connections to {name} again"), e))?;
    }
    Ok(())
}

/// Closes the target to new sessions, ends the others (a run waiting for the lock among
/// them), then renames the target away and the copy in, in one transaction.
fn swap_postgres(admin: &mut Database, target: &str, plan: &SwapPlan) -> Result<()> {
    let fail = |e| Error::db(format!("swapping the restored copy in for {target}"), e);
    admin
        .execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            pg_ident(target)
        ))
        .map_err(fail)?;
    crate::pause::point("restore-renaming");
    let result = (|| -> Result<()> {
        let mut attempts = 0;
        loop {
            admin
                .execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                    quote(target)
                ))
                .map_err(fail)?;
            let renamed = admin.execute(&format!(
                "BEGIN; ALTER DATABASE {t} RENAME TO {r}; ALTER DATABASE {s} RENAME TO {t}; COMMIT",
                t = pg_ident(target),
                r = pg_ident(&plan.replaced),
                s = pg_ident(&plan.staging),
            ));
            match renamed {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let _ = admin.execute("ROLLBACK");
                    attempts += 1;
                    // A terminated session takes a moment to go away.
                    if attempts >= 50 {
                        return Err(fail(e));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    })();
    // Whichever database now has the old target's name-or-not, both accept sessions again.
    let reopen = allow_connections(admin, &plan.replaced).and(allow_connections(admin, target));
    result?;
    reopen
}

#[derive(QueryableByName)]
struct ShowCreate {
    #[diesel(sql_type = Text, column_name = "Create Procedure")]
    procedure: String,
}

#[derive(QueryableByName)]
struct ShowCreateFunction {
    #[diesel(sql_type = Text, column_name = "Create Function")]
    function: String,
}

#[derive(QueryableByName)]
struct ShowCreateView {
    #[diesel(sql_type = Text, column_name = "Create View")]
    view: String,
}

#[derive(QueryableByName)]
struct ShowCreateTrigger {
    #[diesel(sql_type = Text, column_name = "SQL Original Statement")]
    trigger: String,
}

/// The routines, views and triggers of MariaDB database `database`, as statements that
/// create them in `into` (run on a session whose default database is `into`).
fn mysql_objects(db: &mut Database, database: &str, into: &str) -> Result<Vec<String>> {
    let fail = |e| {
        Error::db(
            format!("reading the routines, views and triggers of {database}"),
            e,
        )
    };
    let list = |db: &mut Database, sql: String| db.texts(&sql).map_err(fail);
    let schema = quote(database);
    let qualified = |name: &str| format!("{}.{}", mysql_ident(database), mysql_ident(name));
    let retarget = |sql: String| {
        sql.replace(
            &format!("{}.", mysql_ident(database)),
            &format!("{}.", mysql_ident(into)),
        )
    };
    let mut out = Vec::new();
    for (kind, name) in list(
        db,
        format!(
            "SELECT CAST(CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) AS CHAR) AS v FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {schema} ORDER BY ROUTINE_NAME"
        ),
    )?
    .iter()
    .filter_map(|r| r.split_once(' '))
    .map(|(k, n)| (k.to_owned(), n.to_owned()))
    .collect::<Vec<_>>()
    {
        let sql = format!("SHOW CREATE {kind} {}", qualified(&name));
        let text = if kind == "FUNCTION" {
            diesel::sql_query(sql).get_result::<ShowCreateFunction>(&mut db.conn).map(|r| r.function)
        } else {
            diesel::sql_query(sql).get_result::<ShowCreate>(&mut db.conn).map(|r| r.procedure)
        }
        .map_err(fail)?;
        out.push(retarget(text));
    }
    // Views in an order that creates each after the views it reads (as mysqldump does, by
    // retrying: a view whose dependency is missing is created in a later round).
    for name in list(
        db,
        format!(
            "SELECT CAST(TABLE_NAME AS CHAR) AS v FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {schema} ORDER BY TABLE_NAME"
        ),
    )? {
        let text = diesel::sql_query(format!("SHOW CREATE VIEW {}", qualified(&name)))
            .get_result::<ShowCreateView>(&mut db.conn)
            .map_err(fail)?
            .view;
        out.push(retarget(text));
    }
    for name in list(
        db,
        format!(
            "SELECT CAST(TRIGGER_NAME AS CHAR) AS v FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {schema} ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER"
        ),
    )? {
        let text = diesel::sql_query(format!("SHOW CREATE TRIGGER {}", qualified(&name)))
            .get_result::<ShowCreateTrigger>(&mut db.conn)
            .map_err(fail)?
            .trigger;
        out.push(retarget(text));
    }
    Ok(out)
}

fn mysql_tables(db: &mut Database, database: &str) -> Result<Vec<String>> {
    db.texts(&format!(
        "SELECT CAST(TABLE_NAME AS CHAR) AS v FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        quote(database)
    ))
    .map_err(|e| Error::db(format!("listing the tables of {database}"), e))
}

/// Drops the views, triggers and routines of `database` (they cannot move with its tables).
fn drop_mysql_objects(db: &mut Database, database: &str) -> Result<()> {
    let fail = |e| {
        Error::db(
            format!("setting aside the views and triggers of {database}"),
            e,
        )
    };
    let schema = quote(database);
    let mut drops = Vec::new();
    for t in db
        .texts(&format!("SELECT CAST(TRIGGER_NAME AS CHAR) AS v FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {schema}"))
        .map_err(fail)?
    {
        drops.push(format!("DROP TRIGGER {}.{}", mysql_ident(database), mysql_ident(&t)));
    }
    for v in db
        .texts(&format!("SELECT CAST(TABLE_NAME AS CHAR) AS v FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {schema}"))
        .map_err(fail)?
    {
        drops.push(format!("DROP VIEW {}.{}", mysql_ident(database), mysql_ident(&v)));
    }
    for r in db
        .texts(&format!("SELECT CAST(CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) AS CHAR) AS v FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {schema}"))
        .map_err(fail)?
    {
        if let Some((kind, name)) = r.split_once(' ') {
            drops.push(format!("DROP {kind} {}.{}", mysql_ident(database), mysql_ident(name)));
        }
    }
    for statement in drops {
        db.execute(&statement).map_err(fail)?;
    }
    Ok(())
}

/// Moves every table of the target into the replaced database and every table of the copy
/// into the target, in one `RENAME TABLE` (atomic in MariaDB); the views, triggers and
/// routines, which cannot move, are dropped first and created again by [`finish_mysql`].
fn swap_mysql(db: &mut Database, target: &str, plan: &SwapPlan) -> Result<()> {
    let fail = |e| Error::db(format!("swapping the restored copy in for {target}"), e);
    drop_mysql_objects(db, &plan.staging)?;
    drop_mysql_objects(db, target)?;
    let charset = db
        .texts(&format!(
            "SELECT CAST(CONCAT(DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', DEFAULT_COLLATION_NAME) AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            quote(target)
        ))
        .map_err(fail)?
        .into_iter()
        .next()
        .unwrap_or_else(|| "utf8mb4".into());
    db.execute(&format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {charset}",
        mysql_ident(&plan.replaced)
    ))
    .map_err(fail)?;
    let mut moves = Vec::new();
    for table in mysql_tables(db, target)? {
        moves.push(format!(
            "{}.{} TO {}.{}",
            mysql_ident(target),
            mysql_ident(&table),
            mysql_ident(&plan.replaced),
            mysql_ident(&table)
        ));
    }
    for table in mysql_tables(db, &plan.staging)? {
        moves.push(format!(
            "{}.{} TO {}.{}",
            mysql_ident(&plan.staging),
            mysql_ident(&table),
            mysql_ident(target),
            mysql_ident(&table)
        ));
    }
    if !moves.is_empty() {
        db.execute(&format!("RENAME TABLE {}", moves.join(", ")))
            .map_err(fail)?;
    }
    Ok(())
}

/// After the tables moved: the copy's routines, views and triggers created in the target,
/// the emptied staging database dropped, the replaced one too unless kept.
fn finish_mysql(db: &mut Database, plan: &SwapPlan, keep_replaced: bool) -> Result<()> {
    run_ignoring_existing(db, &plan.recreate)?;
    drop_mysql_database(db, &plan.staging)?;
    if !keep_replaced {
        drop_mysql_database(db, &plan.replaced)?;
    }
    Ok(())
}

fn drop_mysql_database(db: &mut Database, name: &str) -> Result<()> {
    db.execute(&format!("DROP DATABASE IF EXISTS {}", mysql_ident(name)))
        .map_err(|e| Error::db(format!("dropping database {name}"), e))
}

/// Runs each statement; one whose object already exists (a retry after an interruption)
/// is skipped. Views that read views not yet created are retried in later rounds.
fn run_ignoring_existing(db: &mut Database, statements: &[String]) -> Result<()> {
    let mut pending: Vec<&String> = statements.iter().collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for statement in &pending {
            match db.execute(statement) {
                Ok(()) => {}
                Err(e) if e.to_string().contains("already exists") => {}
                Err(e) => {
                    last_error = Some(e);
                    failed.push(*statement);
                }
            }
        }
        if failed.len() == pending.len() {
            return Err(Error::db(
                "creating the restored routines, views and triggers",
                last_error.expect("a statement failed"),
            ));
        }
        pending = failed;
    }
    Ok(())
}

/// Where a swapped-out SQLite file is kept when `keep-replaced` is set.
fn replaced_file(target: &DatabaseUrl, run_id: &str) -> Result<PathBuf> {
    let path = target
        .sqlite_path()
        .ok_or_else(|| Error::Failed("not a SQLite URL".into()))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".dbsafe-replaced-{run_id}"));
    Ok(path.with_file_name(name))
}

/// Checkpoints the target's write-ahead log into its file (so no log of the old file is
/// left for the new one), keeps the old file by a hard link when asked, renames the synced
/// copy over the target and syncs the directory.
fn swap_sqlite(db: &mut Database, path: &Path, plan: &SwapPlan, keep_replaced: bool) -> Result<()> {
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").map_err(|e| {
        Error::db(
            "checkpointing the SQLite write-ahead log before the swap",
            e,
        )
    })?;
    let staging = Path::new(&plan.staging);
    File::open(staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(staging, e))?;
    if keep_replaced {
        let _ = fs::remove_file(&plan.replaced);
        fs::hard_link(path, &plan.replaced).map_err(|e| Error::io(&plan.replaced, e))?;
    }
    fs::rename(staging, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
