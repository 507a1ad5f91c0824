//! Seeds (`[[seed]]`): SQL run at the end of every successful apply, each in its own
//! transaction where the backend allows; and the round-trip check that running a seed
//! twice neither fails nor changes data other than its `volatile` columns (the runbook's
//! "re-running the seed violates a unique index"), each change named by table, column and
//! an example key.

use std::collections::BTreeMap;
use std::time::Instant;

use diesel::Connection;
use diesel::connection::SimpleConnection;

use crate::config::{ApplyConfig, Config, Seed};
use crate::connection::Database;
use crate::error::{Error, Result};
use crate::step;
use crate::target::Target;

fn seeds<'c>(config: &'c Config, target: &Target) -> impl Iterator<Item = &'c Seed> {
    config
        .seeds
        .iter()
        .filter(move |s| s.applies_to(&target.name))
}

/// Runs one seed with the target's `lock-timeout` and `statement-timeout`, as a migration
/// runs: in a transaction with the timeouts set for it only, except on MySQL, where DDL
/// would commit it anyway and the timeouts are the session's.
pub fn run_one(
    db: &mut Database,
    seed: &Seed,
    apply: &ApplyConfig,
) -> std::result::Result<u64, String> {
    let started = Instant::now();
    let dialect = db.dialect();
    let (lock_timeout, statement_timeout) = (apply.lock_timeout, apply.statement_timeout);
    let result = if dialect.transactional_ddl() {
        let prelude = dialect.timeouts_sql(lock_timeout, statement_timeout, true);
        db.conn.transaction(|conn| {
            conn.batch_execute(&prelude)?;
            conn.batch_execute(&seed.sql)
        })
    } else {
        db.execute(&dialect.timeouts_sql(lock_timeout, statement_timeout, false))
            .and_then(|()| db.execute(&seed.sql))
    };
    let _ = db.execute(&dialect.reset_timeouts_sql());
    result.map_err(|e| {
        let message = e.to_string();
        format!(
            "seed {} failed: {message}{}",
            seed.name,
            timeout_hint(&message, apply)
        )
    })?;
    Ok(started.elapsed().as_millis() as u64)
}

/// What a timeout in a server message means for the operator.
fn timeout_hint(message: &str, apply: &ApplyConfig) -> String {
    if step::is_lock_timeout(message) {
        format!(
            " (it waited longer than lock-timeout = {}ms for a lock another session holds: let that session finish, or raise [apply] lock-timeout)",
            apply.lock_timeout.as_millis()
        )
    } else if let Some(limit) = apply.statement_timeout.filter(|_| {
        let m = message.to_ascii_lowercase();
        m.contains("statement timeout") || m.contains("max_statement_time")
    }) {
        format!(
            " (it ran longer than statement-timeout = {}ms: make it faster, or raise [apply] statement-timeout)",
            limit.as_millis()
        )
    } else {
        String::new()
    }
}

/// The seeds of `target`, in order, for apply to run.
pub fn for_target<'c>(config: &'c Config, target: &Target) -> Vec<&'c Seed> {
    seeds(config, target).collect()
}

/// Runs every seed twice on the shadow database: a second run that fails or changes data
/// (other than the seed's `volatile` columns) is a problem, named by table, column and an
/// example key.
pub fn check_idempotent(
    config: &Config,
    target: &Target,
    shadow: &mut Database,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for seed in seeds(config, target) {
        if let Err(e) = run_one(shadow, seed, &config.apply) {
            problems.push(format!("{e} (first run, on the shadow database)"));
            continue;
        }
        let once = contents(shadow)?;
        if let Err(e) = run_one(shadow, seed, &config.apply) {
            problems.push(format!("{e} when run a second time: seeds run after every apply, so they must be safe to repeat (INSERT ... ON CONFLICT DO NOTHING, INSERT IGNORE, WHERE NOT EXISTS)"));
            continue;
        }
        let twice = contents(shadow)?;
        let changes = differences(&once, &twice, &seed.volatile);
        if !changes.is_empty() {
            problems.push(format!(
                "seed {} changes data when run a second time ({}): seeds run after every apply, so they must be safe to repeat; a column that is meant to change (updated_at) goes in the seed's `volatile = [\"table.column\"]`",
                seed.name,
                changes.join("; ")
            ));
        }
    }
    Ok(problems)
}

/// One table's rows (JSON objects) and its primary key's columns.
struct TableRows {
    key: Vec<String>,
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Every user table's rows, by table name (the shadow database holds only what the
/// migrations and seeds wrote).
fn contents(db: &mut Database) -> Result<BTreeMap<String, TableRows>> {
    let mut out = BTreeMap::new();
    for table in crate::verify::baseline::counts(db, true)?.into_keys() {
        let rows = table_rows(db, &table)?;
        out.insert(table, rows);
    }
    Ok(out)
}

fn table_rows(db: &mut Database, table: &str) -> Result<TableRows> {
    let dialect = db.dialect();
    let fail = |e| Error::db(format!("reading the rows of {table}"), e);
    let key = db.texts(&dialect.primary_key_sql(table)).map_err(fail)?;
    let rows_sql = dialect.rows_json_sql(db, table).map_err(fail)?;
    let rows = db
        .texts(&rows_sql)
        .map_err(fail)?
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok(TableRows { key, rows })
}

/// What changed between two readings of the tables, one line per table and column, with
/// an example key; `volatile` columns (`table.column`) are left out.
fn differences(
    once: &BTreeMap<String, TableRows>,
    twice: &BTreeMap<String, TableRows>,
    volatile: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, after) in twice {
        let Some(before) = once.get(table) else {
            out.push(format!("it creates table `{table}`"));
            continue;
        };
        let skipped: Vec<&str> = volatile
            .iter()
            .filter_map(|v| v.rsplit_once('.'))
            .filter(|(t, _)| t == table)
            .map(|(_, c)| c)
            .collect();
        let keyed =
            |rows: &TableRows| -> BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
                rows.rows
                    .iter()
                    .map(|row| {
                        let mut row = row.clone();
                        row.retain(|c, _| !skipped.contains(&c.as_str()));
                        let key: serde_json::Map<String, serde_json::Value> = if rows.key.is_empty()
                        {
                            row.clone()
                        } else {
                            rows.key
                                .iter()
                                .map(|k| (k.clone(), row.get(k).cloned().unwrap_or_default()))
                                .collect()
                        };
                        (serde_json::Value::Object(key).to_string(), row)
                    })
                    .collect()
            };
        let (before, after) = (keyed(before), keyed(after));
        let mut columns: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (key, row) in &after {
            match before.get(key) {
                None => note(&mut columns, "(new row)", key),
                Some(old) => {
                    for (column, value) in row {
                        if old.get(column) != Some(value) {
                            note(&mut columns, column, key);
                        }
                    }
                }
            }
        }
        for key in before.keys().filter(|k| !after.contains_key(*k)) {
            note(&mut columns, "(row removed)", key);
        }
        out.extend(
            columns
                .into_iter()
                .map(|(column, (rows, key))| match column.as_str() {
                    "(new row)" => format!("table `{table}`: {rows} new row(s), e.g. key {key}"),
                    "(row removed)" => {
                        format!("table `{table}`: {rows} row(s) removed, e.g. key {key}")
                    }
                    _ => format!(
                        "table `{table}`, column `{column}`: {rows} row(s) changed, e.g. key {key}"
                    ),
                }),
        );
    }
    out
}

fn note(columns: &mut BTreeMap<String, (usize, String)>, column: &str, key: &str) {
    columns
        .entry(column.to_owned())
        .or_insert_with(|| (0, key.to_owned()))
        .0 += 1;
}
