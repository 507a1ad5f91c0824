//! MariaDB's swap: every table moved by one `RENAME TABLE` (atomic), the routines, views
//! and triggers, which cannot move between databases, dropped before and created again
//! after from statements journaled in the plan.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{Recovered, SwapPlan};
use crate::connection::{Create, Database};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::snapshot::Scratch;
use crate::target::{Backend, DatabaseUrl};

fn my() -> &'static dyn Dialect {
    Backend::Mysql.dialect()
}

/// Swaps the copy in on `db` (the caller's session on the target, which stays open); the
/// emptied staging database is dropped, the replaced one too unless `keep_replaced`.
pub(crate) fn swap(
    db: &mut Database,
    target: &DatabaseUrl,
    scratch: Scratch,
    plan: &SwapPlan,
    keep_replaced: bool,
) -> Result<()> {
    swap_tables(db, &target.database_name(), plan)?;
    drop(scratch);
    finish(db, plan, keep_replaced)
}

/// Finishes or undoes an interrupted swap: tables still in the staging database mean the
/// rename never happened.
pub(crate) fn recover(
    target: &DatabaseUrl,
    plan: &SwapPlan,
    keep_replaced: bool,
) -> Result<Recovered> {
    let mut db = Database::connect(target, Create::Never)?;
    let staged_tables = tables(&mut db, &plan.staging)?;
    if !staged_tables.is_empty() {
        run_ignoring_existing(&mut db, &plan.original)?;
        drop_database(&mut db, &plan.staging)?;
        return Ok(Recovered::Undone);
    }
    finish(&mut db, plan, keep_replaced)?;
    Ok(Recovered::Swapped)
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
pub(crate) fn objects(db: &mut Database, database: &str, into: &str) -> Result<Vec<String>> {
    let fail = |e| {
        Error::db(
            format!("reading the routines, views and triggers of {database}"),
            e,
        )
    };
    let list = |db: &mut Database, sql: String| db.texts(&sql).map_err(fail);
    let schema = my().literal(database);
    let qualified = |name: &str| format!("{}.{}", my().ident(database), my().ident(name));
    let retarget = |sql: String| {
        sql.replace(
            &format!("{}.", my().ident(database)),
            &format!("{}.", my().ident(into)),
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

fn tables(db: &mut Database, database: &str) -> Result<Vec<String>> {
    db.texts(&format!(
        "SELECT CAST(TABLE_NAME AS CHAR) AS v FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        my().literal(database)
    ))
    .map_err(|e| Error::db(format!("listing the tables of {database}"), e))
}

/// Drops the views, triggers and routines of `database` (they cannot move with its tables).
fn drop_objects(db: &mut Database, database: &str) -> Result<()> {
    let fail = |e| {
        Error::db(
            format!("setting aside the views and triggers of {database}"),
            e,
        )
    };
    let schema = my().literal(database);
    let mut drops = Vec::new();
    for t in db
        .texts(&format!("SELECT CAST(TRIGGER_NAME AS CHAR) AS v FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {schema}"))
        .map_err(fail)?
    {
        drops.push(format!("DROP TRIGGER {}.{}", my().ident(database), my().ident(&t)));
    }
    for v in db
        .texts(&format!("SELECT CAST(TABLE_NAME AS CHAR) AS v FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {schema}"))
        .map_err(fail)?
    {
        drops.push(format!("DROP VIEW {}.{}", my().ident(database), my().ident(&v)));
    }
    for r in db
        .texts(&format!("SELECT CAST(CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) AS CHAR) AS v FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {schema}"))
        .map_err(fail)?
    {
        if let Some((kind, name)) = r.split_once(' ') {
            drops.push(format!("DROP {kind} {}.{}", my().ident(database), my().ident(name)));
        }
    }
    for statement in drops {
        db.execute(&statement).map_err(fail)?;
    }
    Ok(())
}

/// Moves every table of the target into the replaced database and every table of the copy
/// into the target, in one `RENAME TABLE` (atomic in MariaDB); the views, triggers and
/// routines, which cannot move, are dropped first and created again by [`finish`].
fn swap_tables(db: &mut Database, target: &str, plan: &SwapPlan) -> Result<()> {
    let fail = |e| Error::db(format!("swapping the restored copy in for {target}"), e);
    drop_objects(db, &plan.staging)?;
    drop_objects(db, target)?;
    let charset = db
        .texts(&format!(
            "SELECT CAST(CONCAT(DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', DEFAULT_COLLATION_NAME) AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            my().literal(target)
        ))
        .map_err(fail)?
        .into_iter()
        .next()
        .unwrap_or_else(|| "utf8mb4".into());
    db.execute(&format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {charset}",
        my().ident(&plan.replaced)
    ))
    .map_err(fail)?;
    let mut moves = Vec::new();
    for table in tables(db, target)? {
        moves.push(format!(
            "{}.{} TO {}.{}",
            my().ident(target),
            my().ident(&table),
            my().ident(&plan.replaced),
            my().ident(&table)
        ));
    }
    for table in tables(db, &plan.staging)? {
        moves.push(format!(
            "{}.{} TO {}.{}",
            my().ident(&plan.staging),
            my().ident(&table),
            my().ident(target),
            my().ident(&table)
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
fn finish(db: &mut Database, plan: &SwapPlan, keep_replaced: bool) -> Result<()> {
    run_ignoring_existing(db, &plan.recreate)?;
    drop_database(db, &plan.staging)?;
    if !keep_replaced {
        drop_database(db, &plan.replaced)?;
    }
    Ok(())
}

pub(crate) fn drop_database(db: &mut Database, name: &str) -> Result<()> {
    db.execute(&format!("DROP DATABASE IF EXISTS {}", my().ident(name)))
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
