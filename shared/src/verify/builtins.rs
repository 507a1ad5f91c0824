//! The built-in checks other than drift: orphaned foreign keys, duplicate keys, row counts
//! and checksums against a snapshot, RLS, triggers, migration checksums.

use std::collections::BTreeMap;

use super::Finding;
use super::baseline::{self, Baseline, Counted};
use crate::config::{Config, KeyColumns};
use crate::connection::{Database, quote};
use crate::error::{Error, Result};
use crate::inspect;
use crate::ledger;
use crate::migrations::MigrationSet;
use crate::preflight;
use crate::snapshot::{Manifest, SnapshotStore};
use crate::target::Backend;

/// Quotes an identifier for the backend; `schema.table` becomes `"schema"."table"`.
pub(crate) fn ident(backend: Backend, name: &str) -> String {
    let one = |part: &str| match backend {
        Backend::Mysql => format!("`{}`", part.replace('`', "``")),
        _ => format!("\"{}\"", part.replace('"', "\"\"")),
    };
    name.split('.').map(one).collect::<Vec<_>>().join(".")
}

/// One foreign key: child table and columns, parent table and columns.
struct ForeignKey {
    name: String,
    child: String,
    child_columns: Vec<String>,
    parent: String,
    parent_columns: Vec<String>,
    validated: bool,
}

pub(super) fn json_rows(
    db: &mut Database,
    sql: &str,
    context: &str,
) -> Result<Vec<serde_json::Value>> {
    let rows = db.texts(sql).map_err(|e| Error::db(context, e))?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect())
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

fn foreign_keys(db: &mut Database) -> Result<Vec<ForeignKey>> {
    let context = "listing foreign keys";
    match db.backend() {
        Backend::Postgres => {
            let sql = "SELECT json_build_array(c.conname, \
                 CASE WHEN cn.nspname = 'public' THEN cl.relname::text ELSE cn.nspname || '.' || cl.relname END, \
                 ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), \
                 CASE WHEN pn.nspname = 'public' THEN p.relname::text ELSE pn.nspname || '.' || p.relname END, \
                 ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o), \
                 c.convalidated)::text AS v \
                 FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace \
                 JOIN pg_class p ON p.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
                 WHERE c.contype = 'f' AND cn.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1";
            Ok(json_rows(db, sql, context)?
                .iter()
                .map(|r| ForeignKey {
                    name: text(&r[0]),
                    child: text(&r[1]),
                    child_columns: strings(&r[2]),
                    parent: text(&r[3]),
                    parent_columns: strings(&r[4]),
                    validated: r[5].as_bool().unwrap_or(true),
                })
                .collect())
        }
        Backend::Mysql => {
            let sql = "SELECT CAST(JSON_ARRAY(CONSTRAINT_NAME, TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME) AS CHAR) AS v \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL \
                 ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION";
            let mut keys: BTreeMap<(String, String), ForeignKey> = BTreeMap::new();
            for r in json_rows(db, sql, context)? {
                let key = keys
                    .entry((text(&r[1]), text(&r[0])))
                    .or_insert_with(|| ForeignKey {
                        name: text(&r[0]),
                        child: text(&r[1]),
                        child_columns: Vec::new(),
                        parent: text(&r[3]),
                        parent_columns: Vec::new(),
                        validated: true,
                    });
                key.child_columns.push(text(&r[2]));
                key.parent_columns.push(text(&r[4]));
            }
            Ok(keys.into_values().collect())
        }
        Backend::Sqlite => {
            let tables = db
                .texts("SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
                .map_err(|e| Error::db(context, e))?;
            let mut out = Vec::new();
            for table in tables {
                let sql = format!(
                    "SELECT json_array(id, \"table\", \"from\", \"to\") AS v FROM pragma_foreign_key_list({}) ORDER BY id, seq",
                    quote(&table)
                );
                let mut keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
                for r in json_rows(db, &sql, context)? {
                    let id = r[0].as_i64().unwrap_or(0);
                    let key = keys.entry(id).or_insert_with(|| ForeignKey {
                        name: format!("{table} fk #{id}"),
                        child: table.clone(),
                        child_columns: Vec::new(),
                        parent: text(&r[1]),
                        parent_columns: Vec::new(),
                        validated: true,
                    });
                    key.child_columns.push(text(&r[2]));
                    // A missing "to" means the parent's primary key.
                    key.parent_columns.push(if r[3].is_null() {
                        String::new()
                    } else {
                        text(&r[3])
                    });
                }
                for mut key in keys.into_values() {
                    if key.parent_columns.iter().any(String::is_empty) {
                        key.parent_columns = db
                            .texts(&format!("SELECT name AS v FROM pragma_table_info({}) WHERE pk > 0 ORDER BY pk", quote(&key.parent)))
                            .map_err(|e| Error::db(context, e))?;
                    }
                    out.push(key);
                }
            }
            Ok(out)
        }
    }
}

/// Rows whose foreign keys point nowhere, for every foreign key (NOT VALID ones and
/// SQLite tables written with enforcement off included).
pub(super) fn fk_orphans(db: &mut Database) -> Result<Finding> {
    let backend = db.backend();
    let keys = foreign_keys(db)?;
    let mut details = Vec::new();
    let mut total = 0i64;
    for key in &keys {
        let not_null: Vec<String> = key
            .child_columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", ident(backend, c)))
            .collect();
        let joins: Vec<String> = key
            .child_columns
            .iter()
            .zip(&key.parent_columns)
            .map(|(c, p)| format!("p.{} = c.{}", ident(backend, p), ident(backend, c)))
            .collect();
        let sql = format!(
            "SELECT count(*) AS v FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
            ident(backend, &key.child),
            not_null.join(" AND "),
            ident(backend, &key.parent),
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
    let backend = db.backend();
    let mut details = Vec::new();
    let mut total = 0i64;
    for key in keys {
        let columns: Vec<String> = key.columns.iter().map(|c| ident(backend, c)).collect();
        let not_null: Vec<String> = columns.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT count(*) AS v FROM (SELECT 1 AS one FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1) d",
            ident(backend, &key.table),
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
    crate::run::validate_id(id, "--against run or snapshot id")?;
    if store.path(id)?.join("manifest.json").is_file() {
        return store.load(id);
    }
    if ledger::exists(db)?
        && let Some(run) = ledger::run(db, id)?
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
    if db.backend() != Backend::Postgres {
        return Err(Error::Usage("rls-enabled needs PostgreSQL".into()));
    }
    let list: Vec<String> = tables.iter().map(|t| quote(t)).collect();
    let enabled = db
        .texts(&format!(
            "SELECT relname::text AS v FROM pg_class WHERE relkind IN ('r', 'p') AND relrowsecurity AND relname IN ({})",
            list.join(", ")
        ))
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
    let sql = match db.backend() {
        Backend::Postgres => {
            "SELECT (c.relname || '.' || t.tgname)::text AS v FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
        }
        Backend::Mysql => {
            "SELECT CAST(CONCAT(EVENT_OBJECT_TABLE, '.', TRIGGER_NAME) AS CHAR) AS v FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
        }
        Backend::Sqlite => {
            "SELECT tbl_name || '.' || name AS v FROM sqlite_master WHERE type = 'trigger'"
        }
    };
    let present = db
        .texts(sql)
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
