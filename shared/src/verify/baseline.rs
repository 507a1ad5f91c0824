//! What apply's after-run checks compare with: each table's row count (exact, or the
//! planner's estimate where counting would be too costly) and, for the tables the
//! `checksums` check covers, a content hash, taken before the first migration of a run
//! (from the pre-run snapshot's manifest when there is one); and the row counts a run
//! changed, as the ledger records them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ApplyConfig;
use crate::connection::Database;
use crate::dialect::{json_rows, json_text as text};
use crate::error::{Error, Result};
use crate::inspect;
use crate::run_id::RunId;
use crate::snapshot::Manifest;

/// Above this many estimated rows, a table that no check needs counted exactly is
/// recorded with the planner's estimate.
const EXACT_UP_TO: u64 = 1_000_000;

/// One table's size at the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Rows.
    pub rows: u64,
    /// Whether `rows` is the planner's estimate rather than `count(*)`.
    pub estimated: bool,
    /// The content hash, for the tables a `checksums` check compares.
    pub hash: Option<String>,
}

/// The state after-run checks compare with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Where it comes from, for messages: `snapshot ID`, `the start of run ID`.
    pub source: String,
    /// Each user table by name (as fingerprints name it).
    pub tables: BTreeMap<String, Counted>,
}

impl Baseline {
    /// A snapshot's row counts and content hashes, all exact.
    pub fn from_manifest(manifest: &Manifest) -> Baseline {
        Baseline {
            source: format!("snapshot {}", manifest.id),
            tables: manifest
                .tables
                .iter()
                .map(|t| {
                    let counted = Counted {
                        rows: t.rows,
                        estimated: false,
                        hash: Some(t.hash.clone()),
                    };
                    (t.table.clone(), counted)
                })
                .collect(),
        }
    }

    /// Reads the baseline of a run from the live database: row counts (exact when `exact`,
    /// else exact up to a million estimated rows) and the content hashes of `hashed`
    /// tables (`None`: every table).
    pub fn capture(
        db: &mut Database,
        run_id: &RunId,
        exact: bool,
        hashed: Option<&[String]>,
    ) -> Result<Baseline> {
        let mut tables = counts(db, exact)?;
        for (name, counted) in tables.iter_mut() {
            if hashed.is_none_or(|list| list.contains(name)) {
                counted.hash = Some(inspect::table_fingerprint(db, name)?.hash);
            }
        }
        Ok(Baseline {
            source: format!("the start of run {run_id}"),
            tables,
        })
    }
}

/// Runs `read` with the target's `lock-timeout` and `statement-timeout` for the session,
/// then the session's defaults again: counting a table another session holds locked gives
/// up instead of waiting for it.
pub fn bounded<T>(
    db: &mut Database,
    apply: &ApplyConfig,
    read: impl FnOnce(&mut Database) -> Result<T>,
) -> Result<T> {
    let dialect = db.dialect();
    db.execute(&dialect.timeouts_sql(apply.lock_timeout, apply.statement_timeout, false))
        .map_err(|e| Error::db("setting the timeouts for counting rows", e))?;
    let result = read(db);
    let _ = db.execute(&dialect.reset_timeouts_sql());
    result
}

/// One table's row count before and after a run (`None`: the table did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowChange {
    /// The table.
    pub table: String,
    /// Rows before the run.
    pub before: Option<u64>,
    /// Rows after it.
    pub after: Option<u64>,
    /// Whether either count is the planner's estimate.
    pub estimated: bool,
}

impl RowChange {
    /// The change in percent of the count before (`None` for a new or dropped table).
    pub fn percent(&self) -> Option<f64> {
        let (before, after) = (self.before?, self.after?);
        Some((after as f64 - before as f64) * 100.0 / (before.max(1) as f64))
    }

    /// `deliveries 40 000 → 38 800 (-3.0%)`.
    pub fn describe(&self) -> String {
        let count = |n: Option<u64>| n.map_or("(none)".to_owned(), grouped);
        let change = match self.percent() {
            Some(p) => format!(" ({p:+.1}%)"),
            None if self.before.is_none() => " (new table)".to_owned(),
            None => " (dropped)".to_owned(),
        };
        format!(
            "{} {} → {}{change}{}",
            self.table,
            count(self.before),
            count(self.after),
            if self.estimated { ", estimated" } else { "" }
        )
    }
}

/// `40000` as `40 000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The tables whose row count differs between `before` and `after` (a table that appeared
/// or disappeared counts as from or to none; an empty one that did is no row change).
pub fn changes(before: &Baseline, after: &BTreeMap<String, Counted>) -> Vec<RowChange> {
    let mut names: Vec<&String> = before.tables.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (b, a) = (before.tables.get(name), after.get(name));
            if b.map_or(0, |c| c.rows) == a.map_or(0, |c| c.rows) {
                return None;
            }
            Some(RowChange {
                table: name.clone(),
                before: b.map(|c| c.rows),
                after: a.map(|c| c.rows),
                estimated: b.is_some_and(|c| c.estimated) || a.is_some_and(|c| c.estimated),
            })
        })
        .collect()
}

/// Each user table's row count: `count(*)`, or the planner's estimate for a table estimated
/// above a million rows unless `exact`.
pub fn counts(db: &mut Database, exact: bool) -> Result<BTreeMap<String, Counted>> {
    let dialect = db.dialect();
    let sql = dialect.table_estimates_sql();
    let mut out = BTreeMap::new();
    let mut to_count = Vec::new();
    for row in json_rows(db, sql, "listing tables and their sizes")? {
        let name = text(&row[0]);
        if inspect::is_bookkeeping(&name) {
            continue;
        }
        let estimate = row[1].as_u64().unwrap_or(0);
        if exact || estimate <= EXACT_UP_TO {
            to_count.push(name);
        } else {
            out.insert(
                name,
                Counted {
                    rows: estimate,
                    estimated: true,
                    hash: None,
                },
            );
        }
    }
    // Exact counts, many tables per query: one round trip per hundred tables, not per table.
    for chunk in to_count.chunks(100) {
        let sql = chunk
            .iter()
            .map(|name| {
                let (label, table) = (dialect.literal(name), dialect.qualified(name));
                format!(
                    "SELECT {} AS v FROM {table}",
                    dialect.json_array(&format!("{label}, count(*)"))
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for row in json_rows(db, &sql, "counting the rows of the tables")? {
            out.insert(
                text(&row[0]),
                Counted {
                    rows: row[1].as_u64().unwrap_or(0),
                    estimated: false,
                    hash: None,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_the_runbook_writes_them() {
        let change = RowChange {
            table: "deliveries".into(),
            before: Some(40_000),
            after: Some(38_800),
            estimated: false,
        };
        assert_eq!(change.describe(), "deliveries 40 000 → 38 800 (-3.0%)");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1 234 567");
    }
}
