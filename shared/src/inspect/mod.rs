//! Schema and data fingerprints per backend: a canonical, sorted text of a database's
//! schema with its hash, each table's row count with an order-independent content hash, and
//! readable differences between two fingerprints.
//!
//! dbsafe's own tables (`dbsafe_*`) and diesel's `__diesel_schema_migrations` are left out of
//! both fingerprints: they are bookkeeping, and a restore rewrites them.
//!
//! # Schema lines
//!
//! One object per line, `KIND NAME` or `KIND NAME: DETAIL`, sorted. `NAME` is one token:
//! identifiers made only of letters, digits, `_` and `$` are written bare, others in double
//! quotes; table-scoped objects are written `table.object`; PostgreSQL objects outside the
//! `public` schema carry their schema (`audit.log`). Kinds:
//!
//! ```text
//! schema audit
//! extension pgcrypto: version 1.3, schema public
//! enum mood: sad, ok, happy
//! domain posint: integer not null check (VALUE > 0)
//! sequence users_id_seq: integer start 1 increment 1 min 1 max 2147483647 cache 1 owned by users.id
//! table users
//! columns users: id, email, active
//! column users.id: integer not null default nextval('users_id_seq'::regclass)
//! column users.email: character varying(255) not null
//! constraint posts.posts_user_id_fkey: FOREIGN KEY (user_id) REFERENCES users(id)
//! index users_email_idx: on users unique USING btree (email)
//! rls users: enabled, forced
//! policy users.own_rows: permissive for ALL to public using (owner = CURRENT_USER)
//! trigger users.users_audit: CREATE TRIGGER users_audit AFTER INSERT ON users ...
//! view active_users: SELECT users.id FROM users WHERE users.active
//! function add(integer, integer): returns integer, language sql, md5 0f3c...
//! ```
//!
//! A column's detail is its type, then `not null`, then attributes (`collate`, `identity`,
//! `generated`, `auto_increment`, `on update`, ...), then `default EXPR` last, so
//! [`diff_schema`] can say which part changed. SQLite adds a `definition TABLE` line with
//! the table's normalised `CREATE TABLE` text (CHECK constraints and clauses the pragmas do
//! not show).
//!
//! # Data fingerprints
//!
//! Each table is read in one streaming pass; the hash is the sum of a per-row hash, so the
//! physical order of rows does not matter, duplicates count, and memory does not grow with
//! the table. PostgreSQL hashes typed values server-side (each column's own hash function,
//! chained so that values cannot trade places between rows unnoticed); MariaDB sums a
//! 60-bit prefix of an MD5 of the row server-side; SQLite streams one quoted text per row
//! and sums a 60-bit prefix of its SHA-256 in Rust. Every hash is written as 32 hex digits.
//! Sessions are fixed first (PostgreSQL: TimeZone UTC, ISO dates, `extra_float_digits` 3,
//! hex bytea; MariaDB: UTC) and every table is read in one consistent snapshot.

use diesel::connection::Connection;
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connection::{AnyConnection, Create, Database};
use crate::error::{Error, Result};
use crate::target::DatabaseUrl;

mod diff;
mod mysql;
mod postgres;
mod sqlite;

pub use diff::{diff_data, diff_schema, is_column_order};
pub use postgres::{DataJob, SharedSnapshot};

/// Canonical, sorted text of a database's schema and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaFingerprint {
    /// SHA-256 (hex) of `lines` joined with `\n`.
    pub hash: String,
    /// One object per line, sorted (see the module documentation for the format).
    pub lines: Vec<String>,
}

impl SchemaFingerprint {
    /// A fingerprint of these lines: sorted, duplicates kept, hashed.
    pub fn from_lines(mut lines: Vec<String>) -> SchemaFingerprint {
        lines.sort();
        let hash = sha256_hex(lines.join("\n").as_bytes());
        SchemaFingerprint { hash, lines }
    }
}

/// One table's data: row count + order-independent content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    /// The table's name as schema lines write it.
    pub table: String,
    /// Number of rows.
    pub rows: u64,
    /// Order-independent content hash (32 hex digits).
    pub hash: String,
}

/// Whether a table is dbsafe's, diesel's or sqlx's bookkeeping, left out of every fingerprint.
pub fn is_bookkeeping(table: &str) -> bool {
    table.starts_with("dbsafe_")
        || table == "__diesel_schema_migrations"
        || table == "_sqlx_migrations"
}

/// The schema fingerprint of the connected database.
pub fn schema_fingerprint(db: &mut Database) -> Result<SchemaFingerprint> {
    let lines = match &mut db.conn {
        AnyConnection::Postgresql(pg) => postgres::schema_lines(pg)?,
        AnyConnection::Mysql(my) => mysql::schema_lines(my)?,
        AnyConnection::Sqlite(lite) => sqlite::schema_lines(lite)?,
    };
    Ok(SchemaFingerprint::from_lines(lines))
}

/// The data fingerprint of every user table, sorted by name, read in one consistent
/// snapshot.
pub fn data_fingerprints(db: &mut Database) -> Result<Vec<TableFingerprint>> {
    let mut all = match &mut db.conn {
        AnyConnection::Postgresql(pg) => postgres::data_fingerprints(pg, None)?,
        AnyConnection::Mysql(my) => mysql::data_fingerprints(my, None)?,
        AnyConnection::Sqlite(lite) => sqlite::data_fingerprints(lite, None)?,
    };
    all.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(all)
}

/// The data fingerprint of one table, named as [`data_fingerprints`] names it (`users`,
/// `audit.log` on PostgreSQL outside `public`).
pub fn table_fingerprint(db: &mut Database, table: &str) -> Result<TableFingerprint> {
    let found = match &mut db.conn {
        AnyConnection::Postgresql(pg) => postgres::data_fingerprints(pg, Some(table))?,
        AnyConnection::Mysql(my) => mysql::data_fingerprints(my, Some(table))?,
        AnyConnection::Sqlite(lite) => sqlite::data_fingerprints(lite, Some(table))?,
    };
    found.into_iter().next().ok_or_else(|| {
        Error::Failed(format!(
            "table `{table}` does not exist in {} (or is dbsafe's own bookkeeping)",
            db.url().redacted()
        ))
    })
}

/// [`data_fingerprints`] with up to `jobs` tables read at once on separate connections.
///
/// On PostgreSQL every connection imports one exported snapshot, so the result is the same
/// consistent picture as the sequential version; the largest tables start first. Other
/// backends (and `jobs <= 1`) read sequentially on one connection.
pub fn data_fingerprints_parallel(url: &DatabaseUrl, jobs: usize) -> Result<Vec<TableFingerprint>> {
    let mut db = Database::connect(url, Create::Never)?;
    if jobs <= 1 {
        return data_fingerprints(&mut db);
    }
    let mut all = match &mut db.conn {
        AnyConnection::Postgresql(pg) => postgres::data_fingerprints_parallel(pg, url, jobs)?,
        _ => return data_fingerprints(&mut db),
    };
    all.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(all)
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the backends.

/// SHA-256 of bytes as lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// An order-independent sum written as 32 hex digits (two's complement for a negative sum).
fn sum_hex(sum: i128) -> String {
    format!("{:032x}", sum as u128)
}

/// Parses a server's decimal sum into [`sum_hex`] form.
fn decimal_sum_hex(text: &str, table: &str) -> Result<String> {
    text.trim()
        .parse::<i128>()
        .map(sum_hex)
        .map_err(|_| Error::Failed(format!("unexpected checksum `{text}` for table `{table}`")))
}

/// An identifier as the schema lines write it: bare when made only of letters, digits, `_`
/// and `$`; otherwise in double quotes with inner quotes doubled.
pub(crate) fn ident(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `KIND NAME` or `KIND NAME: DETAIL`.
fn line(kind: &str, name: &str, detail: &str) -> String {
    if detail.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {name}: {detail}")
    }
}

/// Collapses runs of whitespace outside quotes into one space and trims the ends, so stored
/// SQL compares by content rather than layout.
pub(crate) fn normalise_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut pending_space = false;
    for c in sql.trim().chars() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => pending_space = true,
            None => {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                if matches!(c, '\'' | '"' | '`') {
                    quote = Some(c);
                } else if c == '[' {
                    quote = Some(']');
                }
                out.push(c);
            }
        }
    }
    out
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

/// One result row, sent by the server as a JSON array in a text column `v` (one query
/// shape for every catalog query on every backend).
struct Row(Vec<serde_json::Value>);

impl Row {
    /// Column `i` as text; NULL is empty.
    fn text(&self, i: usize) -> String {
        self.opt(i).unwrap_or_default()
    }

    /// Column `i` as text; NULL is `None`.
    fn opt(&self, i: usize) -> Option<String> {
        match self.0.get(i)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Column `i` as text; NULL and empty are `None`.
    fn non_empty(&self, i: usize) -> Option<String> {
        self.opt(i).filter(|s| !s.is_empty())
    }

    /// Column `i` as a flag (`true`, non-zero, `YES`).
    fn flag(&self, i: usize) -> bool {
        match self.0.get(i) {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(serde_json::Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "t" | "true" | "yes" | "1")
            }
            _ => false,
        }
    }

    /// Column `i` as an integer (0 when NULL or not a number).
    fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// Column `i` as a list of texts (a JSON array, or a string holding one).
    fn list(&self, i: usize) -> Vec<String> {
        let value = match self.0.get(i) {
            Some(serde_json::Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
            Some(v) => v.clone(),
            None => serde_json::Value::Null,
        };
        match value {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Runs a query whose one text column `v` holds a JSON array per row.
fn json_rows<C>(conn: &mut C, sql: &str, context: &str) -> Result<Vec<Row>>
where
    C: Connection,
    for<'a> SqlQuery: LoadQuery<'a, C, TextRow>,
{
    let texts = diesel::sql_query(sql)
        .load::<TextRow>(conn)
        .map_err(|e| Error::db(context, e))?;
    texts
        .into_iter()
        .map(|row| match serde_json::from_str(&row.v) {
            Ok(serde_json::Value::Array(values)) => Ok(Row(values)),
            _ => Err(Error::Failed(format!(
                "{context}: the server returned an unexpected row `{}`",
                row.v
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bare_or_quoted() {
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("Users_2$"), "Users_2$");
        assert_eq!(ident("my table"), "\"my table\"");
        assert_eq!(ident("a.b"), "\"a.b\"");
        assert_eq!(ident("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(ident(""), "\"\"");
    }

    #[test]
    fn sql_whitespace_is_normalised_outside_quotes() {
        assert_eq!(
            normalise_sql("  CREATE TABLE t (\n\ta  TEXT DEFAULT '  x\n  ' ,\n b  INT)\n"),
            "CREATE TABLE t ( a TEXT DEFAULT '  x\n  ' , b INT)"
        );
        assert_eq!(normalise_sql("\"a  b\"   [c  d]"), "\"a  b\" [c  d]");
    }

    #[test]
    fn sums_are_fixed_width_hex() {
        assert_eq!(sum_hex(0), "0".repeat(32));
        assert_eq!(sum_hex(255), format!("{}ff", "0".repeat(30)));
        assert_eq!(sum_hex(-1), "f".repeat(32));
        assert_eq!(decimal_sum_hex(" 16 ", "t").unwrap(), sum_hex(16));
        assert!(decimal_sum_hex("x", "t").is_err());
    }

    #[test]
    fn schema_hash_ignores_input_order() {
        let a = SchemaFingerprint::from_lines(vec!["table b".into(), "table a".into()]);
        let b = SchemaFingerprint::from_lines(vec!["table a".into(), "table b".into()]);
        assert_eq!(a, b);
        assert_eq!(a.lines, ["table a", "table b"]);
        assert_eq!(a.hash, sha256_hex(b"table a\ntable b"));
    }
}
