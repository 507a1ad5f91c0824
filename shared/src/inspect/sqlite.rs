//! SQLite: the schema from sqlite_schema and the table-valued pragmas, data streamed one
//! quoted text per row and hashed in Rust (SQLite has no MD5), in one read transaction.

use std::collections::BTreeMap;

use diesel::SqliteConnection;
use diesel::connection::{AnsiTransactionManager, DefaultLoadingMode, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::Binary;
use sha2::{Digest, Sha256};

use super::{
    Row, TableFingerprint, ident, is_bookkeeping, json_rows, line, normalise_sql, sum_hex,
};
use crate::dialect::Dialect;
use crate::error::{Error, Result};
use crate::target::Backend;

fn rows(lite: &mut SqliteConnection, sql: &str) -> Result<Vec<Row>> {
    json_rows(lite, sql, "reading the SQLite schema")
}

/// How SQL is written on this backend.
fn dialect() -> &'static dyn Dialect {
    Backend::Sqlite.dialect()
}

/// User tables and views of the main database, without SQLite's own `sqlite_*`.
const USER: &str = "tl.schema = 'main' AND tl.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";

/// Runs `f` in a read transaction (a savepoint when the caller already has one), then rolls
/// it back.
fn stable<T>(
    lite: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    AnsiTransactionManager::begin_transaction(lite)
        .map_err(|e| Error::db("opening a SQLite read transaction", e))?;
    let result = f(lite);
    let rolled_back = AnsiTransactionManager::rollback_transaction(lite);
    let value = result?;
    rolled_back.map_err(|e| Error::db("ending a SQLite read transaction", e))?;
    Ok(value)
}

// ---------------------------------------------------------------------------------------
// Schema

/// Every schema line of the main database (unsorted).
pub(super) fn schema_lines(lite: &mut SqliteConnection) -> Result<Vec<String>> {
    stable(lite, |lite| {
        let mut out = Vec::new();
        objects(lite, &mut out)?;
        columns(lite, &mut out)?;
        foreign_keys(lite, &mut out)?;
        indexes(lite, &mut out)?;
        Ok(out)
    })
}

/// Tables (with their normalised definition), views and triggers.
fn objects(lite: &mut SqliteConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_array(tl.name, tl.type, tl.wr, tl.strict, m.sql) AS v \
         FROM pragma_table_list tl LEFT JOIN sqlite_master m ON m.name = tl.name \
         WHERE {USER} AND tl.type <> 'view'"
    );
    for r in rows(lite, &sql)? {
        let table = r.text(0);
        if is_bookkeeping(&table) {
            continue;
        }
        let name = ident(&table);
        let mut detail = Vec::new();
        match r.text(1).as_str() {
            "virtual" => detail.push("virtual"),
            "shadow" => detail.push("shadow"),
            _ => {}
        }
        if r.flag(2) {
            detail.push("without rowid");
        }
        if r.flag(3) {
            detail.push("strict");
        }
        out.push(line("table", &name, &detail.join(", ")));
        if let Some(sql) = r.non_empty(4) {
            out.push(line("definition", &name, &normalise_sql(&sql)));
        }
    }
    let sql = "SELECT json_array(type, name, tbl_name, sql) AS v FROM sqlite_master \
               WHERE type IN ('view', 'trigger')";
    for r in rows(lite, sql)? {
        let sql = normalise_sql(&r.text(3));
        if r.text(0) == "view" {
            out.push(line("view", &ident(&r.text(1)), &sql));
        } else if !is_bookkeeping(&r.text(2)) {
            let name = format!("{}.{}", ident(&r.text(2)), ident(&r.text(1)));
            out.push(line("trigger", &name, &sql));
        }
    }
    Ok(())
}

fn columns(lite: &mut SqliteConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_array(tl.name, c.name, c.type, c.\"notnull\", c.dflt_value, c.pk, c.hidden) AS v \
         FROM pragma_table_list tl, pragma_table_xinfo(tl.name, tl.schema) c \
         WHERE {USER} AND tl.type <> 'view' AND c.hidden <> 1 \
         ORDER BY tl.name, c.cid"
    );
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut keys: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for r in rows(lite, &sql)? {
        if is_bookkeeping(&r.text(0)) {
            continue;
        }
        let table = ident(&r.text(0));
        let column = ident(&r.text(1));
        let mut detail = r.non_empty(2).unwrap_or_else(|| "untyped".to_owned());
        if r.flag(3) {
            detail.push_str(" not null");
        }
        match r.int(6) {
            2 => detail.push_str(" generated virtual"),
            3 => detail.push_str(" generated stored"),
            _ => {}
        }
        if let Some(default) = r.opt(4) {
            detail.push_str(&format!(" default {default}"));
        }
        out.push(line("column", &format!("{table}.{column}"), &detail));
        if r.int(5) > 0 {
            keys.entry(table.clone())
                .or_default()
                .push((r.int(5), column.clone()));
        }
        order.entry(table).or_default().push(column);
    }
    for (table, columns) in order {
        out.push(line("columns", &table, &columns.join(", ")));
    }
    for (table, mut key) in keys {
        key.sort();
        let columns: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
        out.push(line(
            "constraint",
            &format!("{table}.primary_key"),
            &format!("PRIMARY KEY ({})", columns.join(", ")),
        ));
    }
    Ok(())
}

fn foreign_keys(lite: &mut SqliteConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_array(tl.name, f.id, f.\"table\", f.\"from\", f.\"to\", f.on_update, \
           f.on_delete, f.\"match\") AS v \
         FROM pragma_table_list tl, pragma_foreign_key_list(tl.name, tl.schema) f \
         WHERE {USER} AND tl.type = 'table' \
         ORDER BY tl.name, f.id, f.seq"
    );
    // (table, id) -> (columns, referenced table, referenced columns, rules)
    type Fk = (Vec<String>, String, Vec<String>, String);
    let mut found: BTreeMap<(String, i64), Fk> = BTreeMap::new();
    for r in rows(lite, &sql)? {
        if is_bookkeeping(&r.text(0)) {
            continue;
        }
        let entry = found.entry((r.text(0), r.int(1))).or_default();
        entry.0.push(ident(&r.text(3)));
        entry.1 = ident(&r.text(2));
        if let Some(to) = r.opt(4) {
            entry.2.push(ident(&to));
        }
        entry.3 = format!(" ON UPDATE {} ON DELETE {}", r.text(5), r.text(6));
        if r.text(7) != "NONE" {
            entry.3.push_str(&format!(" MATCH {}", r.text(7)));
        }
    }
    for ((table, _), (columns, referenced, to, rules)) in found {
        let columns = columns.join(", ");
        let to = if to.is_empty() {
            String::new()
        } else {
            format!(" ({})", to.join(", "))
        };
        out.push(line(
            "constraint",
            &format!("{}.foreign_key({columns})", ident(&table)),
            &format!("FOREIGN KEY ({columns}) REFERENCES {referenced}{to}{rules}"),
        ));
    }
    Ok(())
}

fn indexes(lite: &mut SqliteConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_array(tl.name, il.name, il.\"unique\", il.origin, il.partial, \
           ix.name, ix.\"desc\", ix.coll, ix.cid, m.sql) AS v \
         FROM pragma_table_list tl, pragma_index_list(tl.name, tl.schema) il, \
           pragma_index_xinfo(il.name, tl.schema) ix \
         LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = il.name \
         WHERE {USER} AND tl.type = 'table' AND ix.key = 1 \
         ORDER BY tl.name, il.name, ix.seqno"
    );
    // (table, index) -> (detail head, columns, SQL to show)
    type Index = (String, Vec<String>, Option<String>);
    let mut found: BTreeMap<(String, String), Index> = BTreeMap::new();
    for r in rows(lite, &sql)? {
        let table = r.text(0);
        if is_bookkeeping(&table) {
            continue;
        }
        let entry = found.entry((table.clone(), r.text(1))).or_insert_with(|| {
            let mut head = format!("on {}", ident(&table));
            if r.text(3) == "pk" {
                head.push_str(" primary");
            } else if r.flag(2) {
                head.push_str(" unique");
            }
            let sql = r.flag(4).then(|| normalise_sql(&r.text(9)));
            (head, Vec::new(), sql)
        });
        let mut column = match r.opt(5) {
            Some(name) => ident(&name),
            None if r.int(8) == -1 => "rowid".to_owned(),
            None => {
                // An expression: only the SQL says which.
                entry.2 = Some(normalise_sql(&r.text(9)));
                "(expression)".to_owned()
            }
        };
        if r.flag(6) {
            column.push_str(" desc");
        }
        if let Some(collation) = r.non_empty(7).filter(|c| c != "BINARY") {
            column.push_str(&format!(" collate {collation}"));
        }
        entry.1.push(column);
    }
    for ((_, index), (head, columns, sql)) in found {
        let mut detail = format!("{head} ({})", columns.join(", "));
        if let Some(sql) = sql {
            detail.push_str(&format!(", sql {sql}"));
        }
        out.push(line("index", &ident(&index), &detail));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Data

#[derive(QueryableByName)]
struct BlobRow {
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
}

/// Columns per parenthesised group: keeps the expression shallow on wide tables.
const GROUP: usize = 100;

/// Fingerprints of every table (or of the one named `only`), in one read transaction.
pub(super) fn data_fingerprints(
    lite: &mut SqliteConnection,
    only: Option<&str>,
) -> Result<Vec<TableFingerprint>> {
    stable(lite, |lite| {
        let sql = format!(
            "SELECT json_array(tl.name, c.name) AS v \
             FROM pragma_table_list tl, pragma_table_xinfo(tl.name, tl.schema) c \
             WHERE {USER} AND tl.type IN ('table', 'shadow') AND c.hidden <> 1 \
             ORDER BY tl.name, c.cid"
        );
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in rows(lite, &sql)? {
            let table = r.text(0);
            if is_bookkeeping(&table) || only.is_some_and(|o| o != ident(&table)) {
                continue;
            }
            tables.entry(table).or_default().push(r.text(1));
        }
        tables
            .iter()
            .map(|(table, columns)| fingerprint(lite, table, columns))
            .collect()
    })
}

/// The row as text: every value `quote()`d (unambiguous: strings quoted, blobs `X'..'`,
/// `NULL`), joined with `|`.
fn row_text(columns: &[String]) -> String {
    let groups: Vec<String> = columns
        .chunks(GROUP)
        .map(|chunk| {
            let parts: Vec<String> = chunk
                .iter()
                .map(|c| format!("quote({})", dialect().ident(c)))
                .collect();
            format!("({})", parts.join(" || '|' || "))
        })
        .collect();
    groups.join(" || '|' || ")
}

fn fingerprint(
    lite: &mut SqliteConnection,
    table: &str,
    columns: &[String],
) -> Result<TableFingerprint> {
    let display = ident(table);
    let context = format!("computing the checksum of table `{display}`");
    let sql = format!(
        "SELECT CAST({} AS BLOB) AS v FROM {}",
        row_text(columns),
        dialect().ident(table)
    );
    let mut rows = 0u64;
    let mut sum = 0u128;
    let iter = diesel::sql_query(sql)
        .load_iter::<BlobRow, DefaultLoadingMode>(lite)
        .map_err(|e| Error::db(&context, e))?;
    for row in iter {
        let row = row.map_err(|e| Error::db(&context, e))?;
        sum += u128::from(prefix60(&row.v));
        rows += 1;
    }
    crate::progress::table_done(&display);
    Ok(TableFingerprint {
        table: display,
        rows,
        hash: sum_hex(sum as i128),
    })
}

/// The first 60 bits of the SHA-256 of a row's text.
fn prefix60(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_text_quotes_every_value() {
        assert_eq!(
            row_text(&["a".into(), "b\"c".into()]),
            "(quote(\"a\") || '|' || quote(\"b\"\"c\"))"
        );
        let wide: Vec<String> = (0..150).map(|i| format!("c{i}")).collect();
        assert_eq!(row_text(&wide).matches(") || '|' || (").count(), 1);
    }

    #[test]
    fn prefix_is_sixty_bits() {
        assert!(prefix60(b"x") < 1 << 60);
        assert_ne!(prefix60(b"x"), prefix60(b"y"));
    }
}
