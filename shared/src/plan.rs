//! `cargo dbsafe plan`: what apply would do, touching nothing: preflight results, the
//! pending migrations in order (transactional or not), the snapshot apply would take and
//! the failure policy, the seeds and checks that follow. `--rehearse` runs on a throwaway
//! clone of the target exactly what apply would run, with apply's own code (migrations,
//! verify.sql, seeds, the after-run verification against its baseline), and reports each
//! step's error, duration and the locks it took.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::apply::{self, ApplyOptions, LockLog, wants_snapshot};
use crate::config::{Config, FailurePolicy, Phase, SnapshotPolicy, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::identity;
use crate::ledger;
use crate::migrations::{Migration, MigrationSet};
use crate::preflight;
use crate::run_id::new_id;
use crate::snapshot::{self, Scratch};
use crate::step::is_transactional;
use crate::target::Target;
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

/// The outcome of one step on the rehearsal clone.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    /// What ran: `migration`, `seed`, `check` (the after-run verification, listed when it
    /// fails) or `apply` (a failure before any step).
    pub step: &'static str,
    /// Version (migrations only; empty otherwise).
    pub version: String,
    /// Directory name, seed name or check name.
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
    /// The seeds apply runs after the migrations, in order.
    pub seeds: Vec<String>,
    /// The checks apply runs after the migrations and seeds (`[apply] verify = true`):
    /// built-ins and `after` invariants.
    pub checks: Vec<String>,
    /// `--rehearse`: what apply would run, on a throwaway clone, step by step.
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
    let rehearsal = if rehearse {
        drop(db.take());
        Some(rehearse_on_clone(config, target)?)
    } else {
        None
    };
    let checks = if config.apply.verify {
        let builtins = verify::selected_builtins(config, &VerifyOptions::default());
        builtins
            .into_iter()
            .map(str::to_owned)
            .chain(
                config
                    .invariants
                    .iter()
                    .filter(|i| i.phase == Phase::After && i.applies_to(&target.name))
                    .map(|i| i.name.clone()),
            )
            .collect()
    } else {
        Vec::new()
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
        seeds: crate::seed::for_target(config, target)
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        checks,
        rehearsal,
    })
}

/// Collects the events of the rehearsal's apply.
#[derive(Default)]
struct Collected(Vec<Event>);

impl EventSink for Collected {
    fn emit(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

/// Clones the target into a scratch database (through a snapshot in a temporary
/// directory, so the target is only read), runs on it exactly what apply would run, with
/// apply's own code (migrations with their verify.sql, seeds, the after-run verification
/// against its baseline), and drops it.
fn rehearse_on_clone(config: &Config, target: &Target) -> Result<Vec<Rehearsed>> {
    let id = new_id();
    let scratch = Scratch::create(&target.url, &id)?;
    let mut clone_config = config.clone();
    clone_config.snapshot_dir =
        std::env::temp_dir().join(format!("dbsafe-rehearsal-{id}-{}", std::process::id()));
    // The clone is thrown away: no snapshot of it, and a failure stops where it happened.
    clone_config.apply.snapshot = SnapshotPolicy::Never;
    clone_config.apply.on_failure = FailurePolicy::Stop;
    let result = (|| {
        if let Ok(mut source) = Database::connect(&target.url, Create::Never) {
            let strategy =
                match snapshot::resolve_strategy(config.snapshot.strategy, source.backend())? {
                    SnapshotStrategy::Template => SnapshotStrategy::PgDump,
                    other => other,
                };
            let manifest = snapshot::create(&clone_config, target, &mut source, strategy, None)?;
            drop(source);
            snapshot::restore_into(&clone_config, &manifest, scratch.url())?;
            if let Some(analyze) = scratch.url().backend().dialect().analyze_sql() {
                // A restored database has no statistics yet; the lock report needs row estimates.
                Database::connect(scratch.url(), Create::Never)?
                    .execute(analyze)
                    .map_err(|e| Error::db("analyzing the rehearsal clone", e))?;
            }
        }
        let clone = Target {
            url: scratch.url().clone(),
            protected: false,
            ..target.clone()
        };
        let log = LockLog::default();
        let options = ApplyOptions {
            // The clone's ledger names the target's database: bind it to the clone.
            rebind: true,
            lock_log: Some(log.clone()),
            ..Default::default()
        };
        let mut events = Collected::default();
        let outcome = apply::apply(&clone_config, &clone, &options, &mut events);
        let locks = log.lock().map(|l| l.clone()).unwrap_or_default();
        rehearsal_report(config, target, &events.0, &locks, outcome)
    })();
    let _ = std::fs::remove_dir_all(&clone_config.snapshot_dir);
    drop(scratch);
    result
}

/// The rehearsal's steps, from the events of its apply: each migration, each seed, each
/// failing check; the step that stopped it carries the server's message.
fn rehearsal_report(
    config: &Config,
    target: &Target,
    events: &[Event],
    locks: &[(String, Vec<String>)],
    outcome: Result<apply::ApplyOutcome>,
) -> Result<Vec<Rehearsed>> {
    let mut out: Vec<Rehearsed> = Vec::new();
    for event in events {
        match &event.kind {
            EventKind::MigrationApplied {
                version,
                name,
                duration_ms,
                ..
            } => {
                let held = locks
                    .iter()
                    .find(|(v, _)| v == version)
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default();
                out.push(rehearsed(
                    "migration",
                    version,
                    name,
                    None,
                    *duration_ms,
                    held,
                ));
            }
            EventKind::MigrationFailed {
                version,
                name,
                error,
                ..
            } => out.push(rehearsed(
                "migration",
                version,
                name,
                Some(error),
                0,
                Vec::new(),
            )),
            EventKind::VerifyFailed { version, message } if !version.is_empty() => {
                if let Some(step) = out.iter_mut().find(|r| r.version == *version) {
                    step.error
                        .get_or_insert_with(|| format!("verify.sql failed: {message}"));
                }
            }
            EventKind::VerifyFailed { message, .. } => {
                let (check, why) = message.split_once(": ").unwrap_or((message, message));
                let why = why.to_owned();
                out.push(rehearsed("check", "", check, Some(&why), 0, Vec::new()));
            }
            EventKind::SeedApplied { name, duration_ms } => {
                out.push(rehearsed("seed", "", name, None, *duration_ms, Vec::new()));
            }
            _ => {}
        }
    }
    let error = match outcome {
        Ok(_) => return Ok(out),
        Err(Error::Usage(message)) => return Err(Error::Usage(message)),
        Err(e) => e.to_string(),
    };
    if out.iter().any(|r| r.error.is_some()) {
        return Ok(out);
    }
    // A seed stopped it (the seeds ran are in `out`), or something before any step.
    let seeded: Vec<&str> = out
        .iter()
        .filter(|r| r.step == "seed")
        .map(|r| r.name.as_str())
        .collect();
    let first_line = error.lines().next().unwrap_or_default().to_owned();
    let failed_seed = crate::seed::for_target(config, target)
        .into_iter()
        .find(|s| !seeded.contains(&s.name.as_str()))
        .filter(|s| first_line.starts_with(&format!("seed {} failed", s.name)));
    match failed_seed {
        Some(seed) => out.push(rehearsed(
            "seed",
            "",
            &seed.name,
            Some(&first_line),
            0,
            Vec::new(),
        )),
        None => out.push(rehearsed("apply", "", "apply", Some(&error), 0, Vec::new())),
    }
    Ok(out)
}

fn rehearsed(
    step: &'static str,
    version: &str,
    name: &str,
    error: Option<&String>,
    duration_ms: u64,
    locks: Vec<String>,
) -> Rehearsed {
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
        step,
        version: version.to_owned(),
        name: name.to_owned(),
        error: error.cloned(),
        duration_ms,
        locks,
        warnings,
    }
}
