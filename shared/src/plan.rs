//! `cargo dbsafe plan`: what apply would do, touching nothing: preflight results, the
//! pending migrations in order (transactional or not), the snapshot apply would take and
//! the failure policy. `--rehearse` runs the pending migrations on a throwaway clone of the
//! target and reports each one's errors, duration and the locks it took.

use std::collections::BTreeSet;
use std::time::Instant;

use diesel::Connection;
use diesel::migration::MigrationConnection;
use diesel_migrations::MigrationHarness;
use serde::Serialize;

use crate::apply::wants_snapshot;
use crate::config::{Config, Phase};
use crate::connection::{self, Create, Database};
use crate::error::{Error, Result};
use crate::identity;
use crate::ledger;
use crate::migrations::{Migration, MigrationSet};
use crate::preflight;
use crate::run::new_run_id;
use crate::snapshot::{self, Scratch};
use crate::step::{is_transactional, millis};
use crate::target::{Backend, Target};
use crate::verify::{self, VerifyOptions};

/// A table with more estimated rows than this, locked ACCESS EXCLUSIVE, is called out.
const LARGE_TABLE_ROWS: i64 = 10_000;

/// One preflight check as plan sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightItem {
    /// What was checked.
    pub check: String,
    /// Whether apply would get past it.
    pub ok: bool,
    /// What was found.
    pub message: String,
}

/// One pending migration.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMigration {
    /// Version.
    pub version: String,
    /// Directory name.
    pub name: String,
    /// Whether it runs in one transaction with its ledger rows.
    pub transactional: bool,
    /// Whether it has a down.sql (can be reverted).
    pub reversible: bool,
}

/// The outcome of one migration on the rehearsal clone.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    /// Version.
    pub version: String,
    /// Directory name.
    pub name: String,
    /// The server's error, if it failed.
    pub error: Option<String>,
    /// Wall time.
    pub duration_ms: u64,
    /// Locks its transaction held before commit (PostgreSQL), e.g. `AccessExclusiveLock on users (52000 rows)`.
    pub locks: Vec<String>,
    /// Warnings drawn from the locks (an ACCESS EXCLUSIVE lock on a large table).
    pub warnings: Vec<String>,
}

/// What apply would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Target name.
    pub target: String,
    /// Its environment.
    pub environment: String,
    /// URL, password hidden.
    pub url: String,
    /// Preflight results.
    pub preflight: Vec<PreflightItem>,
    /// The pending migrations, in the order apply would run them.
    pub pending: Vec<PlannedMigration>,
    /// The snapshot apply would take first (its strategy), if any.
    pub snapshot: Option<String>,
    /// `[apply] on-failure`.
    pub on_failure: String,
    /// `--rehearse`: each pending migration on a throwaway clone.
    pub rehearsal: Option<Vec<Rehearsed>>,
}

impl Plan {
    /// Whether apply would be refused, or a rehearsed migration failed.
    pub fn blocked(&self) -> bool {
        self.preflight.iter().any(|p| !p.ok)
            || self.rehearsal.iter().flatten().any(|r| r.error.is_some())
    }
}

fn item(check: &str, result: Result<String>) -> PreflightItem {
    match result {
        Ok(message) => PreflightItem {
            check: check.into(),
            ok: true,
            message,
        },
        Err(e) => PreflightItem {
            check: check.into(),
            ok: false,
            message: e.to_string(),
        },
    }
}

/// Works out the plan. Reads only: never creates a file, a table or a lock.
pub fn plan(config: &Config, target: &Target, rehearse: bool) -> Result<Plan> {
    let set = MigrationSet::load(&config.migrations_dir)?;
    let mut preflight_items = Vec::new();
    preflight_items.push(item(
        "protection",
        Ok(if target.protected {
            format!(
                "target `{}` is protected: apply needs --target {} and confirmation",
                target.name, target.name
            )
        } else {
            "not protected".into()
        }),
    ));
    let mut db = match Database::connect(&target.url, Create::Never) {
        Ok(db) => Some(db),
        Err(Error::NoSqliteFile { path }) => {
            preflight_items.push(item(
                "reachable",
                Ok(format!(
                    "{} does not exist yet: apply creates it",
                    path.display()
                )),
            ));
            None
        }
        Err(e) => return Err(e),
    };
    let applied: BTreeSet<String> = match db.as_mut() {
        Some(db) => {
            preflight_items.push(item("reachable", Ok("connected".into())));
            preflight_items.push(item(
                "identity",
                identity::check(db, target, &config.snapshot_dir, false).map(|b| {
                    if b.first_use {
                        format!("{} (first use: apply binds it)", b.identity)
                    } else {
                        b.identity
                    }
                }),
            ));
            let applied = ledger::diesel_applied(db)?;
            let findings = preflight::ledger_findings(db, &set, &applied)?;
            preflight_items.push(item(
                "dirty and edited migrations",
                findings.refuse_unsafe().map(|_| "clean".into()),
            ));
            if !findings.missing_from_disk.is_empty() {
                preflight_items.push(item(
                    "applied migrations on disk",
                    Ok(format!(
                        "applied but missing from disk: {}",
                        findings.missing_from_disk.join(", ")
                    )),
                ));
            }
            preflight_items.push(item(
                "server activity",
                preflight::server_activity(db, &config.apply).map(|_| "ok".into()),
            ));
            let before = VerifyOptions {
                phase: Some(Phase::Before),
                ..Default::default()
            };
            for result in verify::verify(config, target, db, &before)? {
                let message = format!("{}: {}", result.observed, result.details.join("; "));
                let result_item = if result.fails() {
                    Err(Error::Failed(message))
                } else {
                    Ok(message)
                };
                preflight_items.push(item(&format!("precondition {}", result.name), result_item));
            }
            applied.into_iter().collect()
        }
        None => BTreeSet::new(),
    };
    let backend = target.url.backend();
    let pending: Vec<&Migration> = set
        .migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();
    let snapshot = (wants_snapshot(config, target) && !pending.is_empty())
        .then(|| {
            snapshot::resolve_strategy(config.snapshot.strategy, backend)
                .map(|s| s.as_str().to_owned())
        })
        .transpose()?;
    let rehearsal = if rehearse && !pending.is_empty() {
        drop(db.take());
        Some(rehearse_on_clone(config, target, &pending)?)
    } else {
        None
    };
    Ok(Plan {
        target: target.name.clone(),
        environment: target.environment.to_string(),
        url: target.url.redacted(),
        preflight: preflight_items,
        pending: pending
            .iter()
            .map(|m| PlannedMigration {
                version: m.version.clone(),
                name: m.name.clone(),
                transactional: is_transactional(backend, m),
                reversible: m.missing_down().is_none(),
            })
            .collect(),
        snapshot,
        on_failure: config.apply.on_failure.as_str().to_owned(),
        rehearsal,
    })
}

/// Clones the target into a scratch database (through a snapshot in a temporary
/// directory, so the target is only read), runs the pending migrations there and drops it.
fn rehearse_on_clone(
    config: &Config,
    target: &Target,
    pending: &[&Migration],
) -> Result<Vec<Rehearsed>> {
    let id = new_run_id();
    let scratch = Scratch::create(&target.url, &id)?;
    let mut clone_config = config.clone();
    clone_config.snapshot_dir =
        std::env::temp_dir().join(format!("dbsafe-rehearsal-{id}-{}", std::process::id()));
    let result = (|| {
        if let Ok(mut source) = Database::connect(&target.url, Create::Never) {
            let strategy =
                match snapshot::resolve_strategy(config.snapshot.strategy, source.backend())? {
                    crate::config::SnapshotStrategy::Template => {
                        crate::config::SnapshotStrategy::PgDump
                    }
                    other => other,
                };
            let manifest = snapshot::create(&clone_config, target, &mut source, strategy, None)?;
            drop(source);
            snapshot::restore_into(&clone_config, &manifest, scratch.url())?;
        }
        let mut clone = Database::connect(scratch.url(), Create::IfMissing)?;
        clone
            .conn
            .setup()
            .map_err(|e| Error::db("preparing the rehearsal clone", e))?;
        if clone.backend() == Backend::Postgres {
            // A restored database has no statistics yet; the lock report needs row estimates.
            clone
                .execute("ANALYZE")
                .map_err(|e| Error::db("analyzing the rehearsal clone", e))?;
        }
        let mut out = Vec::new();
        for migration in pending {
            let rehearsed = rehearse_one(&mut clone, migration);
            let failed = rehearsed.error.is_some();
            out.push(rehearsed);
            if failed {
                break;
            }
        }
        Ok(out)
    })();
    let _ = std::fs::remove_dir_all(&clone_config.snapshot_dir);
    drop(scratch);
    result
}

fn rehearse_one(clone: &mut Database, migration: &Migration) -> Rehearsed {
    let started = Instant::now();
    let backend = clone.backend();
    let mut locks = Vec::new();
    let result: std::result::Result<(), String> = if backend == Backend::Postgres
        && migration.run_in_transaction
    {
        clone
            .conn
            .transaction::<(), diesel::result::Error, _>(|conn| {
                conn.run_migration(migration).map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
                // The locks this migration's own transaction holds, before it commits.
                locks = connection::texts(
                    conn,
                    "SELECT l.mode || ' on ' || c.relname || ' (' || CAST(GREATEST(c.reltuples, 0) AS BIGINT) || ' rows)' AS v \
                     FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE l.pid = pg_backend_pid() AND l.granted AND c.relkind IN ('r', 'p') \
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relname <> '__diesel_schema_migrations' \
                     ORDER BY c.relname, l.mode",
                )?;
                Ok(())
            })
            .map_err(|e| e.to_string())
    } else {
        clone
            .conn
            .run_migration(migration)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let warnings = locks
        .iter()
        .filter(|lock| lock.starts_with("AccessExclusiveLock"))
        .filter(|lock| {
            lock.rsplit_once('(')
                .and_then(|(_, rows)| rows.trim_end_matches(" rows)").parse::<i64>().ok())
                .is_some_and(|rows| rows > LARGE_TABLE_ROWS)
        })
        .map(|lock| {
            format!("{lock}: blocks every read and write of that table until the migration commits")
        })
        .collect();
    Rehearsed {
        version: migration.version.clone(),
        name: migration.name.clone(),
        error: result.err(),
        duration_ms: millis(started),
        locks,
        warnings,
    }
}
