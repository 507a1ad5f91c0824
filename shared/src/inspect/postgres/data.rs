//! PostgreSQL's data fingerprints: each table hashed server-side, row by row, on typed
//! values with each column's own hash function, on one or several connections sharing one
//! snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;

use diesel::PgConnection;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::{READ_ONLY, SCOPE, SETTINGS, dialect, not_extension, qualified, rows, stable};
use crate::connection::{AnyConnection, Create, Database};
use crate::error::{Error, Result};
use crate::inspect::{TableFingerprint, decimal_sum_hex, is_bookkeeping, json_rows};
use crate::target::DatabaseUrl;

/// A user table and what hashing its rows needs.
#[derive(Debug, Clone)]
pub(super) struct Table {
    schema: String,
    name: String,
    /// Name as the fingerprints write it.
    display: String,
    /// On-disk size, to start the largest tables first.
    bytes: i64,
    columns: Vec<Column>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// The type (a domain's base type) when it is a built-in, else empty.
    builtin: String,
    typmod: i64,
    not_null: bool,
}

/// A NOT VALID NOT NULL constraint on column `a` (PostgreSQL 18): `attnotnull` is set
/// though old rows may still hold NULLs, so the column is hashed as nullable.
const NOT_VALIDATED: &str = "SELECT 1 FROM pg_catalog.pg_constraint nn \
     WHERE nn.conrelid = a.attrelid AND nn.contype = 'n' AND nn.conkey[1] = a.attnum \
     AND NOT nn.convalidated";

/// The plain tables of the database (partitions included, partitioned parents and foreign
/// tables not: their rows live elsewhere), with their columns.
pub(super) fn data_tables(pg: &mut PgConnection, only: Option<&str>) -> Result<Vec<Table>> {
    let sql = format!(
        "SELECT json_build_array(c.oid::bigint, n.nspname, c.relname, \
           pg_catalog.pg_relation_size(c.oid))::text AS v \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    let mut tables: BTreeMap<i64, Table> = BTreeMap::new();
    for r in rows(pg, &sql)? {
        let (schema, name) = (r.text(1), r.text(2));
        let display = qualified(&schema, &name);
        if is_bookkeeping(&name) || only.is_some_and(|o| o != display) {
            continue;
        }
        tables.insert(
            r.int(0),
            Table {
                schema,
                name,
                display,
                bytes: r.int(3),
                columns: Vec::new(),
            },
        );
    }
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<String> = tables.keys().map(i64::to_string).collect();
    let sql = format!(
        "SELECT json_build_array(a.attrelid::bigint, a.attname, \
           CASE WHEN bn.nspname = 'pg_catalog' THEN bt.typname END, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
           a.attnotnull AND NOT EXISTS ({NOT_VALIDATED}))::text AS v \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         JOIN pg_catalog.pg_namespace bn ON bn.oid = bt.typnamespace \
         WHERE a.attrelid IN ({}) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        oids.join(", ")
    );
    for r in rows(pg, &sql)? {
        if let Some(table) = tables.get_mut(&r.int(0)) {
            table.columns.push(Column {
                name: r.text(1),
                builtin: r.text(2),
                typmod: r.int(3),
                not_null: r.flag(4),
            });
        }
    }
    Ok(tables.into_values().collect())
}

/// Hashes one column's value into the running row hash `seed` with the type's own hash
/// function (never its text where the binary value is exact and stable across restores).
/// NULLs are hashed as a zero value; the row's NULL mask tells them apart.
fn hash_step(column: &Column, seed: &str) -> String {
    let c = format!("t.{}", dialect().ident(&column.name));
    let or = |zero: &str| {
        if column.not_null {
            c.clone()
        } else {
            format!("coalesce({c}, {zero})")
        }
    };
    match column.builtin.as_str() {
        "int2" | "int4" => format!("hashint4extended({}::int4, {seed})", or("0")),
        "bool" => format!("hashint4extended({}::int4, {seed})", or("false")),
        // hashint8extended hashes the two halves XORed together: add the high half so
        // that values such as 1 and 4294967296 do not collide.
        "int8" => {
            let v = or("0");
            format!("hashint4extended(({v} >> 32)::int4, hashint8extended({v}, {seed}))")
        }
        "float4" | "float8" => format!("hashfloat8extended({}::float8, {seed})", or("0")),
        // Unconstrained numeric keeps its display scale (1.0 vs 1.00): hash the text.
        "numeric" if column.typmod >= 0 => {
            format!("hash_numeric_extended({}, {seed})", or("0"))
        }
        "text" | "varchar" | "name" => {
            format!("hashtextextended({}::text COLLATE \"C\", {seed})", or("''"))
        }
        // The same hash as its text (trailing spaces ignored) without making that text
        // (a third less time per char(n) column).
        "bpchar" => format!("hashbpcharextended({} COLLATE \"C\", {seed})", or("''")),
        // bytea's own hash function is only reachable through an array of it; a NULL
        // element would drop the seed, hence the empty value.
        "bytea" => format!("hash_array_extended(ARRAY[{}], {seed})", or("''::bytea")),
        "date" => format!("timestamp_hash_extended(coalesce({c}::timestamp, 'epoch'), {seed})"),
        // Timestamps hash like int8 (the halves XORed): a change collides only when it
        // moves the value by a multiple of 2^32 microseconds and exactly mirrors the low bits.
        "timestamp" => format!("timestamp_hash_extended({}, {seed})", or("'epoch'")),
        "timestamptz" => {
            format!("timestamp_hash_extended(coalesce({c} AT TIME ZONE 'UTC', 'epoch'), {seed})")
        }
        "time" => format!("time_hash_extended({}, {seed})", or("'00:00'")),
        "uuid" => format!(
            "uuid_hash_extended({}, {seed})",
            or("'00000000-0000-0000-0000-000000000000'")
        ),
        "jsonb" => format!("jsonb_hash_extended({}, {seed})", or("'null'")),
        // Everything else (enums, whose binary form is an OID that a restore changes;
        // intervals and citext, whose hashes ignore differences; arrays, composites,
        // extension types) by its text under the fixed session settings.
        _ => format!("hashtextextended(coalesce({c}::text, '') COLLATE \"C\", {seed})"),
    }
}

/// Columns per chained group: keeps the nesting of function calls shallow on wide tables.
const GROUP: usize = 50;

/// The per-row hash: a chain through the NULL masks and every column, each step seeded
/// with the previous one (a sum of independent column hashes would not notice values
/// trading places between rows).
fn row_hash(columns: &[Column]) -> String {
    if columns.is_empty() {
        return "1::bigint".to_owned();
    }
    // The NULL masks seed the first group.
    let mut seed = String::from("0");
    let nullable: Vec<&Column> = columns.iter().filter(|c| !c.not_null).collect();
    for chunk in nullable.chunks(30) {
        let bits: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("((t.{} IS NULL)::int4 << {i})", dialect().ident(&c.name)))
            .collect();
        seed = format!("hashint4extended({}, {seed})", bits.join(" | "));
    }
    let mut groups: Vec<String> = columns
        .chunks(GROUP)
        .enumerate()
        .map(|(g, chunk)| {
            let start = if g == 0 { seed.clone() } else { g.to_string() };
            chunk
                .iter()
                .fold(start, |expr, column| hash_step(column, &expr))
        })
        .collect();
    if groups.len() == 1 {
        return groups.remove(0);
    }
    groups.into_iter().fold(String::from("0"), |expr, group| {
        format!("hash_numeric_extended(({group})::numeric, {expr})")
    })
}

fn fingerprint(pg: &mut PgConnection, table: &Table) -> Result<TableFingerprint> {
    let sql = format!(
        "SELECT json_build_array(count(*), coalesce(sum({}), 0)::text)::text AS v FROM ONLY {}.{} t",
        row_hash(&table.columns),
        dialect().ident(&table.schema),
        dialect().ident(&table.name)
    );
    let context = format!("computing the checksum of table `{}`", table.display);
    let found = json_rows(pg, &sql, &context)?;
    let row = found
        .first()
        .ok_or_else(|| Error::Failed(format!("{context}: no result")))?;
    crate::progress::table_done(&table.display);
    Ok(TableFingerprint {
        table: table.display.clone(),
        rows: u64::try_from(row.int(0)).unwrap_or(0),
        hash: decimal_sum_hex(&row.text(1), &table.display)?,
    })
}

/// Fingerprints of every user table (or of the one named `only`), in one snapshot.
pub(crate) fn data_fingerprints(
    pg: &mut PgConnection,
    only: Option<&str>,
) -> Result<Vec<TableFingerprint>> {
    stable(pg, |pg| {
        let tables = data_tables(pg, only)?;
        tables.iter().map(|t| fingerprint(pg, t)).collect()
    })
}

/// [`data_fingerprints`] on up to `jobs` connections sharing one exported snapshot.
pub(crate) fn data_fingerprints_parallel(
    leader: &mut PgConnection,
    url: &DatabaseUrl,
    jobs: usize,
) -> Result<Vec<TableFingerprint>> {
    stable(leader, |leader| {
        let snapshot = export_snapshot(leader)?;
        let tables = data_tables(leader, None)?;
        fingerprint_tables(url, &snapshot, tables, jobs)
    })
}

pub(super) fn export_snapshot(pg: &mut PgConnection) -> Result<String> {
    Ok(json_rows(
        pg,
        "SELECT json_build_array(pg_catalog.pg_export_snapshot())::text AS v",
        "exporting a PostgreSQL snapshot",
    )?
    .first()
    .map(|r| r.text(0))
    .unwrap_or_default())
}

/// Fingerprints `tables` on up to `jobs` new connections that import `snapshot` (exported
/// by a transaction that stays open until this returns); the largest tables start first.
pub(super) fn fingerprint_tables(
    url: &DatabaseUrl,
    snapshot: &str,
    mut tables: Vec<Table>,
    jobs: usize,
) -> Result<Vec<TableFingerprint>> {
    // Largest last: workers pop from the end.
    tables.sort_by_key(|t| t.bytes);
    let workers = jobs.max(1).min(tables.len());
    let queue = Mutex::new(tables);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| worker(url, snapshot, &queue, &results)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Failed("a fingerprint worker panicked".into())))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    let mut all = results.into_inner().unwrap_or_default();
    all.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(all)
}

fn worker(
    url: &DatabaseUrl,
    snapshot: &str,
    queue: &Mutex<Vec<Table>>,
    results: &Mutex<Vec<TableFingerprint>>,
) -> Result<()> {
    let mut db = Database::connect(url, Create::Never)?;
    let AnyConnection::Postgresql(pg) = &mut db.conn else {
        return Err(Error::Failed("not a PostgreSQL connection".into()));
    };
    let fail = |e: diesel::result::Error| Error::db("importing the PostgreSQL snapshot", e);
    AnsiTransactionManager::begin_transaction_sql(pg, READ_ONLY).map_err(fail)?;
    pg.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT {}; {SETTINGS}",
        dialect().literal(snapshot)
    ))
    .map_err(fail)?;
    let outcome = (|| loop {
        let next = queue.lock().ok().and_then(|mut q| q.pop());
        let Some(table) = next else {
            return Ok(());
        };
        let done = fingerprint(pg, &table)?;
        if let Ok(mut all) = results.lock() {
            all.push(done);
        }
    })();
    let _ = AnsiTransactionManager::rollback_transaction(pg);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, builtin: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            builtin: builtin.into(),
            typmod: -1,
            not_null,
        }
    }

    #[test]
    fn row_hash_chains_columns_and_masks_nulls() {
        let expr = row_hash(&[column("id", "int4", true), column("Name", "text", false)]);
        assert_eq!(
            expr,
            "hashtextextended(coalesce(t.\"Name\", '')::text COLLATE \"C\", \
             hashint4extended(t.\"id\"::int4, \
             hashint4extended(((t.\"Name\" IS NULL)::int4 << 0), 0)))"
        );
        assert_eq!(row_hash(&[]), "1::bigint");
    }

    #[test]
    fn wide_tables_are_hashed_in_groups() {
        let columns: Vec<Column> = (0..120)
            .map(|i| column(&format!("c{i}"), "int4", true))
            .collect();
        let expr = row_hash(&columns);
        assert_eq!(expr.matches("hash_numeric_extended(").count(), 3);
        assert!(expr.contains("hashint4extended(t.\"c50\"::int4, 1)"));
        assert_eq!(expr.matches("hashint4extended(").count(), 120);
    }
}
