//! MariaDB / MySQL: the schema from information_schema for `DATABASE()`, data hashed
//! server-side (an MD5 per value, a 60-bit prefix of the row's MD5 summed as a DECIMAL) in
//! one consistent snapshot with the session in UTC.

use std::collections::BTreeMap;

use diesel::MysqlConnection;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::{
    Row, TableFingerprint, decimal_sum_hex, ident, is_bookkeeping, json_rows, line, normalise_sql,
    sha256_hex,
};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::target::Backend;

fn rows(my: &mut MysqlConnection, sql: &str) -> Result<Vec<Row>> {
    json_rows(my, sql, "reading MariaDB's information_schema")
}

/// How SQL is written on this backend.
fn dialect() -> &'static dyn Dialect {
    Backend::Mysql.dialect()
}

/// Runs `f` in a read-only consistent-snapshot transaction (a savepoint when the caller
/// already has one) with the session in UTC, then rolls back and restores the time zone.
fn stable<T>(
    my: &mut MysqlConnection,
    f: impl FnOnce(&mut MysqlConnection) -> Result<T>,
) -> Result<T> {
    let fail = |e: diesel::result::Error| Error::db("preparing a MariaDB read snapshot", e);
    let nested = AnsiTransactionManager::transaction_manager_status_mut(my)
        .transaction_depth()
        .map_err(fail)?
        .is_some();
    if nested {
        AnsiTransactionManager::begin_transaction(my).map_err(fail)?;
    } else {
        AnsiTransactionManager::begin_transaction_sql(
            my,
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        )
        .map_err(fail)?;
    }
    let result = my
        .batch_execute(
            "SET @dbsafe_time_zone = @@session.time_zone; SET SESSION time_zone = '+00:00'",
        )
        .map_err(fail)
        .and_then(|()| f(my));
    let restored = my.batch_execute("SET SESSION time_zone = @dbsafe_time_zone");
    let rolled_back = AnsiTransactionManager::rollback_transaction(my);
    let value = result?;
    restored
        .and(rolled_back)
        .map_err(|e| Error::db("ending a MariaDB read snapshot", e))?;
    Ok(value)
}

// ---------------------------------------------------------------------------------------
// Schema

/// Every schema line of the current database (unsorted).
pub(super) fn schema_lines(my: &mut MysqlConnection) -> Result<Vec<String>> {
    stable(my, |my| {
        let database = rows(my, "SELECT CAST(JSON_ARRAY(DATABASE()) AS CHAR) AS v")?
            .first()
            .map(|r| r.text(0))
            .unwrap_or_default();
        let mut out = Vec::new();
        let collations = tables(my, &mut out)?;
        columns(my, &collations, &mut out)?;
        indexes(my, &mut out)?;
        constraints(my, &database, &mut out)?;
        views(my, &database, &mut out)?;
        routines(my, &mut out)?;
        triggers(my, &mut out)?;
        Ok(out)
    })
}

/// Table lines; returns each base table's default collation.
fn tables(my: &mut MysqlConnection, out: &mut Vec<String>) -> Result<BTreeMap<String, String>> {
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, \
                 CREATE_OPTIONS) AS CHAR) AS v \
               FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()";
    let mut collations = BTreeMap::new();
    for r in rows(my, sql)? {
        let table = r.text(0);
        if is_bookkeeping(&table) {
            continue;
        }
        let name = ident(&table);
        match r.text(1).as_str() {
            "VIEW" => {}
            "SEQUENCE" => out.push(line("sequence", &name, "")),
            kind => {
                let mut detail = vec![
                    format!("engine {}", r.text(2)),
                    format!("collation {}", r.text(3)),
                ];
                if let Some(options) = r.non_empty(4) {
                    detail.push(format!("options {options}"));
                }
                if kind == "SYSTEM VERSIONED" {
                    detail.push("system versioned".to_owned());
                }
                out.push(line("table", &name, &detail.join(", ")));
                collations.insert(table, r.text(3));
            }
        }
    }
    Ok(collations)
}

fn columns(
    my: &mut MysqlConnection,
    collations: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) -> Result<()> {
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
                 COLUMN_DEFAULT, EXTRA, COLLATION_NAME, GENERATION_EXPRESSION) AS CHAR) AS v \
               FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
               ORDER BY TABLE_NAME, ORDINAL_POSITION";
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows(my, sql)? {
        let table = r.text(0);
        // Views' columns are listed too: keep base tables only.
        let Some(table_collation) = collations.get(&table) else {
            continue;
        };
        let column = ident(&r.text(1));
        let mut detail = r.text(2);
        if r.text(3) == "NO" {
            detail.push_str(" not null");
        }
        if let Some(collation) = r.non_empty(6).filter(|c| c != table_collation) {
            detail.push_str(&format!(" collate {collation}"));
        }
        let extra = r.text(5).to_ascii_lowercase();
        if extra.contains("auto_increment") {
            detail.push_str(" auto_increment");
        }
        let generated = if extra.contains("virtual generated") {
            Some("virtual")
        } else if extra.contains("stored generated") || extra.contains("persistent generated") {
            Some("stored")
        } else {
            None
        };
        if let Some(storage) = generated {
            detail.push_str(&format!(" generated always as ({}) {storage}", r.text(7)));
        }
        if let Some(i) = extra.find("on update ") {
            detail.push(' ');
            detail.push_str(&r.text(5)[i..]);
        }
        if extra.contains("invisible") {
            detail.push_str(" invisible");
        }
        // MariaDB writes "NULL" for a nullable column without a default.
        if let Some(default) = r.opt(4).filter(|d| d != "NULL")
            && generated.is_none()
        {
            detail.push_str(&format!(" default {default}"));
        }
        let table = ident(&table);
        out.push(line("column", &format!("{table}.{column}"), &detail));
        order.entry(table).or_default().push(column);
    }
    for (table, columns) in order {
        out.push(line("columns", &table, &columns.join(", ")));
    }
    Ok(())
}

fn indexes(my: &mut MysqlConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, \
                 COLLATION, INDEX_TYPE) AS CHAR) AS v \
               FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
               ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";
    // (table, index) -> (unique, type, columns)
    let mut found: BTreeMap<(String, String), (bool, String, Vec<String>)> = BTreeMap::new();
    for r in rows(my, sql)? {
        let table = r.text(0);
        if is_bookkeeping(&table) {
            continue;
        }
        let entry = found
            .entry((table, r.text(1)))
            .or_insert_with(|| (!r.flag(2), r.text(6), Vec::new()));
        let mut column = r
            .opt(3)
            .map_or_else(|| "(expression)".to_owned(), |c| ident(&c));
        if let Some(part) = r.non_empty(4) {
            column.push_str(&format!("({part})"));
        }
        if r.text(5) == "D" {
            column.push_str(" desc");
        }
        entry.2.push(column);
    }
    for ((table, index), (unique, kind, columns)) in found {
        let mut detail = format!("on {}", ident(&table));
        if index == "PRIMARY" {
            detail.push_str(" primary");
        } else if unique {
            detail.push_str(" unique");
        }
        detail.push_str(&format!(" USING {kind} ({})", columns.join(", ")));
        out.push(line(
            "index",
            &format!("{}.{}", ident(&table), ident(&index)),
            &detail,
        ));
    }
    Ok(())
}

fn constraints(my: &mut MysqlConnection, database: &str, out: &mut Vec<String>) -> Result<()> {
    type Key = (String, String);
    let mut kinds: BTreeMap<Key, String> = BTreeMap::new();
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE) AS CHAR) AS v \
               FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()";
    for r in rows(my, sql)? {
        if !is_bookkeeping(&r.text(0)) {
            kinds.insert((r.text(0), r.text(1)), r.text(2));
        }
    }
    // Columns and referenced columns, in order.
    let mut keys: BTreeMap<Key, (Vec<String>, String, Vec<String>)> = BTreeMap::new();
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, \
                 REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME) AS CHAR) AS v \
               FROM information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_SCHEMA = DATABASE() \
               ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION";
    for r in rows(my, sql)? {
        let entry = keys.entry((r.text(0), r.text(1))).or_default();
        entry.0.push(ident(&r.text(2)));
        if let Some(table) = r.non_empty(4) {
            let schema = r.text(3);
            entry.1 = if schema.is_empty() || schema == database {
                ident(&table)
            } else {
                format!("{}.{}", ident(&schema), ident(&table))
            };
            entry.2.push(ident(&r.text(5)));
        }
    }
    let mut rules: BTreeMap<Key, String> = BTreeMap::new();
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE) AS CHAR) AS v \
               FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()";
    for r in rows(my, sql)? {
        rules.insert(
            (r.text(0), r.text(1)),
            format!(" ON UPDATE {} ON DELETE {}", r.text(2), r.text(3)),
        );
    }
    let mut checks: BTreeMap<Key, String> = BTreeMap::new();
    // MariaDB names check constraints per table (CHECK_CONSTRAINTS has TABLE_NAME); MySQL
    // names them per schema and has no such column.
    let mariadb = "SELECT CAST(JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE) AS CHAR) AS v \
                   FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()";
    let mysql = "SELECT CAST(JSON_ARRAY(tc.TABLE_NAME, cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE) AS CHAR) AS v \
                 FROM information_schema.CHECK_CONSTRAINTS cc \
                 JOIN information_schema.TABLE_CONSTRAINTS tc \
                   ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA \
                  AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK' \
                 WHERE cc.CONSTRAINT_SCHEMA = DATABASE()";
    let found = match rows(my, mariadb) {
        Ok(found) => found,
        Err(_) => rows(my, mysql)?,
    };
    for r in found {
        checks.insert((r.text(0), r.text(1)), r.text(2));
    }
    for ((table, name), kind) in kinds {
        let key = (table.clone(), name.clone());
        let (columns, referenced, referenced_columns) = keys.remove(&key).unwrap_or_default();
        let detail = match kind.as_str() {
            "CHECK" => format!("CHECK ({})", checks.get(&key).cloned().unwrap_or_default()),
            "FOREIGN KEY" => format!(
                "FOREIGN KEY ({}) REFERENCES {referenced} ({}){}",
                columns.join(", "),
                referenced_columns.join(", "),
                rules.get(&key).cloned().unwrap_or_default()
            ),
            other => format!("{other} ({})", columns.join(", ")),
        };
        out.push(line(
            "constraint",
            &format!("{}.{}", ident(&table), ident(&name)),
            &detail,
        ));
    }
    Ok(())
}

/// Removes the database's own name from stored SQL (MariaDB qualifies every column of a
/// view with it), so that a restore under another name fingerprints the same.
fn unqualify(sql: &str, database: &str) -> String {
    if database.is_empty() {
        return sql.to_owned();
    }
    sql.replace(&format!("{}.", dialect().ident(database)), "")
}

fn views(my: &mut MysqlConnection, database: &str, out: &mut Vec<String>) -> Result<()> {
    let sql = "SELECT CAST(JSON_ARRAY(TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE) \
                 AS CHAR) AS v \
               FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()";
    for r in rows(my, sql)? {
        let detail = format!(
            "{}; check option {}; security {}",
            normalise_sql(&unqualify(&r.text(1), database)),
            r.text(2),
            r.text(3)
        );
        out.push(line("view", &ident(&r.text(0)), &detail));
    }
    Ok(())
}

fn routines(my: &mut MysqlConnection, out: &mut Vec<String>) -> Result<()> {
    let mut parameters: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let sql = "SELECT CAST(JSON_ARRAY(SPECIFIC_NAME, ROUTINE_TYPE, PARAMETER_MODE, \
                 PARAMETER_NAME, DTD_IDENTIFIER) AS CHAR) AS v \
               FROM information_schema.PARAMETERS \
               WHERE SPECIFIC_SCHEMA = DATABASE() AND ORDINAL_POSITION > 0 \
               ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION";
    for r in rows(my, sql)? {
        let mut parameter = String::new();
        if let Some(mode) = r.non_empty(2) {
            parameter.push_str(&mode);
            parameter.push(' ');
        }
        parameter.push_str(&format!("{} {}", ident(&r.text(3)), r.text(4)));
        parameters
            .entry((r.text(0), r.text(1)))
            .or_default()
            .push(parameter);
    }
    let sql = "SELECT CAST(JSON_ARRAY(ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, \
                 ROUTINE_DEFINITION, IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE) AS CHAR) AS v \
               FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()";
    for r in rows(my, sql)? {
        let (name, kind) = (r.text(0), r.text(1));
        let parameters = parameters
            .remove(&(name.clone(), kind.clone()))
            .unwrap_or_default();
        let mut detail = format!("({})", parameters.join(", "));
        if let Some(returns) = r.non_empty(2) {
            detail.push_str(&format!(" returns {returns}"));
        }
        if r.text(4) == "YES" {
            detail.push_str(", deterministic");
        }
        detail.push_str(&format!(
            ", {}, security {}, sha256 {}",
            r.text(5),
            r.text(6),
            sha256_hex(normalise_sql(&r.text(3)).as_bytes())
        ));
        out.push(line(&kind.to_ascii_lowercase(), &ident(&name), &detail));
    }
    Ok(())
}

fn triggers(my: &mut MysqlConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = "SELECT CAST(JSON_ARRAY(TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, \
                 EVENT_MANIPULATION, ACTION_ORIENTATION, ACTION_STATEMENT, ACTION_ORDER) AS CHAR) AS v \
               FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()";
    for r in rows(my, sql)? {
        let table = r.text(1);
        if is_bookkeeping(&table) {
            continue;
        }
        let detail = format!(
            "{} {} FOR EACH {}, order {}, {}",
            r.text(2),
            r.text(3),
            r.text(4),
            r.text(6),
            normalise_sql(&r.text(5))
        );
        out.push(line(
            "trigger",
            &format!("{}.{}", ident(&table), ident(&r.text(0))),
            &detail,
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Data

/// Fingerprints of every base table (or of the one named `only`), in one snapshot.
pub(super) fn data_fingerprints(
    my: &mut MysqlConnection,
    only: Option<&str>,
) -> Result<Vec<TableFingerprint>> {
    stable(my, |my| {
        let sql = "SELECT CAST(JSON_ARRAY(c.TABLE_NAME, c.COLUMN_NAME) AS CHAR) AS v \
                   FROM information_schema.COLUMNS c \
                   JOIN information_schema.TABLES t \
                     ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                   WHERE c.TABLE_SCHEMA = DATABASE() \
                     AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
                   ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION";
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in rows(my, sql)? {
            let table = r.text(0);
            if is_bookkeeping(&table) || only.is_some_and(|o| o != ident(&table)) {
                continue;
            }
            tables.entry(table).or_default().push(r.text(1));
        }
        tables
            .iter()
            .map(|(table, columns)| fingerprint(my, table, columns))
            .collect()
    })
}

fn fingerprint(
    my: &mut MysqlConnection,
    table: &str,
    columns: &[String],
) -> Result<TableFingerprint> {
    // MD5 per value keeps the row text short and unambiguous: 32 hex digits or `N` for
    // NULL, joined with `|`.
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("IFNULL(MD5({}), 'N')", dialect().ident(c)))
        .collect();
    let sql = format!(
        "SELECT CAST(JSON_ARRAY(COUNT(*), CAST(COALESCE(SUM(CAST(CONV(SUBSTRING(\
           MD5(CONCAT_WS('|', {})), 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR)) AS CHAR) AS v \
         FROM {}",
        parts.join(", "),
        dialect().ident(table)
    );
    let display = ident(table);
    let context = format!("computing the checksum of table `{display}`");
    let found = json_rows(my, &sql, &context)?;
    let row = found
        .first()
        .ok_or_else(|| Error::Failed(format!("{context}: no result")))?;
    crate::progress::table_done(&display);
    Ok(TableFingerprint {
        rows: u64::try_from(row.int(0)).unwrap_or(0),
        hash: decimal_sum_hex(&row.text(1), &display)?,
        table: display,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_removed_from_stored_sql() {
        assert_eq!(
            unqualify(
                "select `app_db`.`users`.`id` AS `id` from `app_db`.`users`",
                "app_db"
            ),
            "select `users`.`id` AS `id` from `users`"
        );
        assert_eq!(dialect().ident("a`b"), "`a``b`");
    }
}
