//! The built-in checks other than drift: orphaned foreign keys, duplicate keys, row counts
//! and checksums against a snapshot, RLS, triggers, migration checksums.

use super::Finding;
use super::baseline::{self, Baseline, Counted};
use crate::config::{Config, KeyColumns};
use crate::connection::Database;
use crate::dialect::ForeignKey;
use crate::error::{Error, Result};
use crate::inspect;
use crate::ledger;
use crate::migrations::MigrationSet;
use crate::preflight;
use crate::run_id::RunId;
use crate::snapshot::{Manifest, SnapshotStore};

fn foreign_keys(db: &mut Database) -> Result<Vec<ForeignKey>> {
    db.dialect().foreign_keys(db)
}

/// Rows whose foreign keys point nowhere, for every foreign key (NOT VALID ones and
/// SQLite tables written with enforcement off included).
pub(super) fn fk_orphans(db: &mut Database) -> Result<Finding> {
    let dialect = db.dialect();
    let keys = foreign_keys(db)?;
    let mut details = Vec::new();
    let mut total = 0i64;
    for key in &keys {
        let not_null: Vec<String> = key
            .child_columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", dialect.qualified(c)))
            .collect();
        let joins: Vec<String> = key
            .child_columns
            .iter()
            .zip(&key.parent_columns)
            .map(|(c, p)| format!("p.{} = c.{}", dialect.qualified(p), dialect.qualified(c)))
            .collect();
        let sql = format!(
            "SELECT count(*) AS v FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
            dialect.qualified(&key.child),
            not_null.join(" AND "),
            dialect.qualified(&key.parent),
            joins.join(" AND ")
        );
        let orphans = db
            .integer(&sql)
            .map_err(|e| Error::db(format!("counting orphans of {}", key.name), e))?;
        if orphans > 0 {
            total += orphans;
            details.push(format!(
                "{orphans} row(s) of `{}` ({}) point to no row of `{}` ({}) [foreign key {}{}]",
                key.child,
                key.child_columns.join(", "),
                key.parent,
                key.parent_columns.join(", "),
                key.name,
                if key.validated { "" } else { ", NOT VALID" }
            ));
        }
    }
    Ok(Finding::new(
        total == 0,
        format!("{total} orphan row(s) under {} foreign key(s)", keys.len()),
        details,
    ))
}

/// Values of declared keys that occur more than once.
pub(super) fn duplicates(db: &mut Database, keys: &[KeyColumns]) -> Result<Finding> {
    let dialect = db.dialect();
    let mut details = Vec::new();
    let mut total = 0i64;
    for key in keys {
        let columns: Vec<String> = key.columns.iter().map(|c| dialect.qualified(c)).collect();
        let not_null: Vec<String> = columns.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT count(*) AS v FROM (SELECT 1 AS one FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1) d",
            dialect.qualified(&key.table),
            not_null.join(" AND "),
            columns.join(", ")
        );
        let duplicated = db
            .integer(&sql)
            .map_err(|e| Error::db(format!("looking for duplicates in {}", key.table), e))?;
        if duplicated > 0 {
            total += duplicated;
            details.push(format!(
                "{duplicated} value(s) of `{}({})` occur more than once: a unique index on them would fail",
                key.table,
                key.columns.join(", ")
            ));
        }
    }
    Ok(Finding::new(
        total == 0,
        format!("{total} duplicated key value(s) in {} key(s)", keys.len()),
        details,
    ))
}

/// The manifest to compare with: a snapshot id, or a run id whose pre-run snapshot is used.
pub(super) fn resolve_against(config: &Config, db: &mut Database, id: &str) -> Result<Manifest> {
    let store = SnapshotStore::new(config);
    let run_id = RunId::parse(id, "--against run or snapshot id")?;
    if store.path(id)?.join("manifest.json").is_file() {
        return store.load(id);
    }
    if ledger::exists(db)?
        && let Some(run) = ledger::run(db, &run_id)?
    {
        let snapshot = run.snapshot_id.ok_or_else(|| {
            Error::Usage(format!("run {id} has no pre-run snapshot to compare with (it ran with [apply] snapshot = \"never\")"))
        })?;
        return store.load(&snapshot);
    }
    Err(Error::Usage(format!(
        "--against {id}: no snapshot or run with that id (see `cargo dbsafe snapshot list` and `cargo dbsafe runs`)"
    )))
}

/// Each table's row count against the baseline's, within `max_change` percent.
pub(super) fn row_counts(
    db: &mut Database,
    against: Option<&Baseline>,
    max_change: Option<f64>,
) -> Result<Finding> {
    let baseline = against.ok_or_else(|| {
        Error::Usage(
            "row-counts needs --against RUN|SNAPSHOT (apply compares with the start of its run)"
                .into(),
        )
    })?;
    let live = baseline::counts(db, true)?;
    let mut details = Vec::new();
    let mut worst = (0.0f64, String::new());
    for (table, before) in &baseline.tables {
        let Some(now) = live.get(table) else {
            details.push(format!(
                "table `{table}` is gone ({} rows at {})",
                before.rows, baseline.source
            ));
            worst = (100.0, table.clone());
            continue;
        };
        let change =
            (now.rows as f64 - before.rows as f64).abs() * 100.0 / (before.rows.max(1) as f64);
        if change > worst.0 {
            worst = (change, table.clone());
        }
        if max_change.is_some_and(|max| change > max) {
            details.push(format!(
                "`{table}`: {} -> {} rows ({change:.2}% change, more than {}%) since {}",
                before.rows,
                now.rows,
                max_change.unwrap_or(0.0),
                baseline.source
            ));
        }
    }
    let observed = if worst.1.is_empty() {
        "no row count changed".to_owned()
    } else {
        format!("largest change {:.2}% (`{}`)", worst.0, worst.1)
    };
    Ok(Finding::new(details.is_empty(), observed, details))
}

/// Table contents against the baseline's: the listed tables must be unchanged (without a
/// list, every table is compared and differences are reported).
pub(super) fn checksums(
    db: &mut Database,
    against: Option<&Baseline>,
    unchanged: &[String],
) -> Result<Finding> {
    let baseline = against.ok_or_else(|| {
        Error::Usage(
            "checksums needs --against RUN|SNAPSHOT (apply compares with the start of its run)"
                .into(),
        )
    })?;
    let mut details = Vec::new();
    let mut same = 0;
    let compared: Vec<(&String, &Counted)> = baseline
        .tables
        .iter()
        .filter(|(t, _)| unchanged.is_empty() || unchanged.contains(t))
        .collect();
    for name in unchanged
        .iter()
        .filter(|n| !baseline.tables.contains_key(*n))
    {
        details.push(format!(
            "table `{name}` did not exist at {}",
            baseline.source
        ));
    }
    for (table, before) in &compared {
        let Some(hash) = &before.hash else {
            details.push(format!(
                "`{table}` has no content hash at {}",
                baseline.source
            ));
            continue;
        };
        match inspect::table_fingerprint(db, table) {
            Ok(now) if now.rows == before.rows && now.hash == *hash => same += 1,
            Ok(now) => details.push(format!(
                "`{table}` changed since {} ({} -> {} rows)",
                baseline.source, before.rows, now.rows
            )),
            Err(_) => details.push(format!("`{table}` is gone")),
        }
    }
    Ok(Finding::new(
        details.is_empty(),
        format!("{same} of {} table(s) unchanged", compared.len()),
        details,
    ))
}

/// Row-level security enabled on the listed tables (PostgreSQL).
pub(super) fn rls_enabled(db: &mut Database, tables: &[String]) -> Result<Finding> {
    let dialect = db.dialect();
    let list: Vec<String> = tables.iter().map(|t| dialect.literal(t)).collect();
    let Some(sql) = dialect.rls_enabled_sql(&list.join(", ")) else {
        return Err(Error::Usage("rls-enabled needs PostgreSQL".into()));
    };
    let enabled = db
        .texts(&sql)
        .map_err(|e| Error::db("reading row-level security flags", e))?;
    let details: Vec<String> = tables
        .iter()
        .filter(|t| !enabled.contains(t))
        .map(|t| format!("row-level security is not enabled on `{t}` (ALTER TABLE {t} ENABLE ROW LEVEL SECURITY)"))
        .collect();
    Ok(Finding::new(
        details.is_empty(),
        format!(
            "{} of {} table(s) with RLS enabled",
            tables.len() - details.len(),
            tables.len()
        ),
        details,
    ))
}

/// The listed triggers (`table.trigger`) exist.
pub(super) fn triggers_present(db: &mut Database, triggers: &[String]) -> Result<Finding> {
    let present = db
        .texts(db.dialect().triggers_sql())
        .map_err(|e| Error::db("listing triggers", e))?;
    let details: Vec<String> = triggers
        .iter()
        .filter(|t| !present.contains(t))
        .map(|t| format!("trigger `{t}` is missing"))
        .collect();
    Ok(Finding::new(
        details.is_empty(),
        format!(
            "{} of {} trigger(s) present",
            triggers.len() - details.len(),
            triggers.len()
        ),
        details,
    ))
}

/// Migration files on disk against the checksums the ledger recorded when they were applied.
pub(super) fn migration_checksums(config: &Config, db: &mut Database) -> Result<Finding> {
    let set = MigrationSet::load(&config.migrations_dir)?;
    let applied = ledger::diesel_applied(db)?;
    let findings = preflight::ledger_findings(db, &set, &applied)?;
    let mut details: Vec<String> = findings
        .changed
        .iter()
        .map(|(version, file, _, _)| {
            format!("{file} (version {version}) changed since it was applied")
        })
        .collect();
    details.extend(findings.missing_from_disk.iter().map(|v| {
        format!(
            "version {v} is applied but has no directory in {}",
            set.dir.display()
        )
    }));
    let observed = format!(
        "{} edited, {} missing from disk, of {} applied",
        findings.changed.len(),
        findings.missing_from_disk.len(),
        applied.len()
    );
    Ok(Finding::new(details.is_empty(), observed, details))
}
