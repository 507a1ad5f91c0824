//! PostgreSQL's swap: the staging database gets the target's properties, then the target
//! is closed to new sessions, the others ended, and both databases renamed in one
//! transaction.

use super::{Recovered, SwapPlan};
use crate::connection::{Create, Database};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::snapshot::{Scratch, maintenance};
use crate::target::{Backend, DatabaseUrl};

fn pg() -> &'static dyn Dialect {
    Backend::Postgres.dialect()
}

/// Swaps the copy in: `db` (the caller's session on the target) is closed for the rename
/// and reopened on the new database (the caller takes its lock again). The replaced
/// database is dropped unless `keep_replaced`.
pub(crate) fn swap(
    db: &mut Database,
    target: &DatabaseUrl,
    scratch: Scratch,
    plan: &SwapPlan,
    keep_replaced: bool,
) -> Result<()> {
    // The rename needs every session on the target closed, this one included.
    *db = maintenance(target)?;
    let swapped = swap_databases(db, &target.database_name(), plan);
    let reopened = Database::connect(target, Create::Never);
    swapped?;
    scratch.disarm();
    *db = reopened?;
    // The session that held the target's lock is gone: whoever holds a lock takes it again.
    db.reconnected = true;
    if !keep_replaced {
        pg().drop_database(target, &plan.replaced)?;
    }
    Ok(())
}

/// Finishes or undoes an interrupted swap from the databases on the server.
pub(crate) fn recover(
    target: &DatabaseUrl,
    plan: &SwapPlan,
    keep_replaced: bool,
) -> Result<Recovered> {
    let mut admin = maintenance(target)?;
    let name = target.database_name();
    let exists = |admin: &mut Database, db: &str| -> Result<bool> {
        Ok(!admin
            .texts(&format!(
                "SELECT CAST(datname AS TEXT) AS v FROM pg_database WHERE datname = {}",
                pg().literal(db)
            ))
            .map_err(|e| Error::db("looking for an interrupted restore's databases", e))?
            .is_empty())
    };
    allow_connections(&mut admin, &name)?;
    if exists(&mut admin, &plan.staging)? && exists(&mut admin, &name)? {
        pg().drop_database(target, &plan.staging)?;
        return Ok(Recovered::Undone);
    }
    if exists(&mut admin, &plan.replaced)? {
        allow_connections(&mut admin, &plan.replaced)?;
        if !keep_replaced {
            pg().drop_database(target, &plan.replaced)?;
        }
    }
    Ok(Recovered::Swapped)
}

/// Gives the staging database the target's owner, encoding, locale, connection limit,
/// per-database settings, grants and comment: what `pg_dump` of the contents leaves out.
pub(crate) fn copy_database_properties(target: &DatabaseUrl, staging: &str) -> Result<()> {
    let mut admin = maintenance(target)?;
    let name = pg().literal(&target.database_name());
    let fail = |e| Error::db("copying the target database's properties to the restore", e);
    let staged = pg().ident(staging);
    let mut sql = Vec::new();
    let owner = admin
        .texts(&format!(
            "SELECT CAST(pg_get_userbyid(datdba) AS TEXT) AS v FROM pg_database WHERE datname = {name}"
        ))
        .map_err(fail)?;
    if let Some(owner) = owner.first() {
        sql.push(format!(
            "ALTER DATABASE {staged} OWNER TO {}",
            pg().ident(owner)
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
        let value = if list {
            value.to_owned()
        } else {
            pg().literal(value)
        };
        // `ALTER ROLE ALL IN DATABASE` is `ALTER DATABASE ... SET`.
        let role = if role.is_empty() {
            "ALL".to_owned()
        } else {
            pg().ident(&role)
        };
        sql.push(format!(
            "ALTER ROLE {role} IN DATABASE {staged} SET {} = {value}",
            pg().ident(key)
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
                pg().ident(&grantee)
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
            pg().literal(comment)
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
            pg().literal(name)
        ))
        .map_err(|e| Error::db("looking up a database", e))?
        > 0;
    if exists {
        admin
            .execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                pg().ident(name)
            ))
            .map_err(|e| Error::db(format!("allowing connections to {name} again"), e))?;
    }
    Ok(())
}

/// Closes the target to new sessions, ends the others (a run waiting for the lock among
/// them), then renames the target away and the copy in, in one transaction.
fn swap_databases(admin: &mut Database, target: &str, plan: &SwapPlan) -> Result<()> {
    let fail = |e| Error::db(format!("swapping the restored copy in for {target}"), e);
    admin
        .execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            pg().ident(target)
        ))
        .map_err(fail)?;
    crate::pause::point("restore-renaming");
    let result = (|| -> Result<()> {
        let mut attempts = 0;
        loop {
            admin
                .execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                    pg().literal(target)
                ))
                .map_err(fail)?;
            let renamed = admin.execute(&format!(
                "BEGIN; ALTER DATABASE {t} RENAME TO {r}; ALTER DATABASE {s} RENAME TO {t}; COMMIT",
                t = pg().ident(target),
                r = pg().ident(&plan.replaced),
                s = pg().ident(&plan.staging),
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
