//! `cargo dbsafe status`: the target, its identity, each migration's state (applied by
//! dbsafe, by diesel alone, pending, missing from disk, edited since applied), dirty
//! steps and the last runs. Reads only.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::identity;
use crate::ledger::{self, RunRow, StepRow};
use crate::lock::{self, LockState};
use crate::migrations::MigrationSet;
use crate::preflight;
use crate::restore;
use crate::run::{RunStatus, StepStatus};
use crate::run_id::RunId;
use crate::target::{Backend, Target};

/// One migration's state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MigrationState {
    /// Version.
    pub version: String,
    /// Directory name (empty when missing from disk).
    pub name: String,
    /// `applied`, `pending` or `missing-from-disk`.
    pub state: String,
    /// The run that applied it, or `diesel` when applied outside dbsafe.
    pub applied_by: Option<String>,
    /// True when up.sql changed since dbsafe applied it.
    pub edited: bool,
    /// Why its down.sql cannot revert it (`no down.sql`, `an empty down.sql`, `a down.sql of
    /// comments only, no SQL`); `None` when it can, or when the directory is missing.
    pub missing_down: Option<String>,
}

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Target name.
    pub target: String,
    /// Its environment.
    pub environment: String,
    /// Whether it is protected.
    pub protected: bool,
    /// Backend.
    pub backend: Backend,
    /// URL, password hidden.
    pub url: String,
    /// The database identity reached now.
    pub identity: String,
    /// A binding problem (identity changed, other target's database), if any.
    pub binding_problem: Option<String>,
    /// Whether the database has a dbsafe ledger yet.
    pub ledger: bool,
    /// Every migration, on disk or applied.
    pub migrations: Vec<MigrationState>,
    /// Explanations of dirty steps, with what to do.
    pub dirty: Vec<String>,
    /// Versions the ledger and diesel's table disagree about (the ledger's newest step says
    /// applied and diesel's table does not list it, or the reverse), with what to do.
    pub disagreements: Vec<String>,
    /// Steps in progress: their run holds the target's lock now (`running (run ID, holder ...)`).
    pub running: Vec<String>,
    /// Runs left `running` in the ledger by a process that is gone (nobody holds the lock
    /// for them): interrupted; the next apply marks them failed.
    pub interrupted: Vec<RunId>,
    /// Who holds the target's lock now (`run ID (session)`), if anyone.
    pub lock_holder: Option<String>,
    /// The newest runs.
    pub last_runs: Vec<RunRow>,
    /// A restore that was interrupted (from the journal), what it left and what to run.
    pub interrupted_restore: Option<String>,
    /// Versions applied by diesel outside dbsafe (`diesel migration run`).
    pub outside_dbsafe: Vec<String>,
}

impl StatusReport {
    /// Number of pending migrations.
    pub fn pending(&self) -> usize {
        self.migrations
            .iter()
            .filter(|m| m.state == "pending")
            .count()
    }
}

/// Reads the status of `target`.
pub fn status(config: &Config, target: &Target) -> Result<StatusReport> {
    let set = MigrationSet::load(&config.migrations_dir)?;
    let interrupted_restore = restore::interrupted(config, target)?;
    let mut db = match Database::connect(&target.url, Create::Never) {
        Err(Error::NoSqliteFile { path }) => return Ok(not_created(target, &set, &path)),
        // A restore killed mid-swap can leave the target closed to sessions.
        Err(e) if interrupted_restore.is_some() => {
            return Err(Error::Attention(format!(
                "{e}\n  {}",
                interrupted_restore.unwrap_or_default()
            )));
        }
        other => other?,
    };
    let identity_now = identity::identity(&mut db)?;
    let binding_problem = identity::check(&mut db, target, &config.snapshot_dir, false)
        .err()
        .map(|e| e.to_string());
    let applied = ledger::diesel_applied(&mut db)?;
    let findings = preflight::ledger_findings(&mut db, &set, &applied)?;
    let has_ledger = ledger::exists(&mut db)?;
    let latest = if has_ledger {
        ledger::latest_steps(&mut db)?
    } else {
        Default::default()
    };
    let applied_set: BTreeSet<&String> = applied.iter().collect();
    let edited: BTreeSet<&String> = findings.changed.iter().map(|c| &c.0).collect();

    let mut migrations: Vec<MigrationState> = set
        .migrations
        .iter()
        .map(|m| {
            let is_applied = applied_set.contains(&m.version);
            MigrationState {
                version: m.version.clone(),
                name: m.name.clone(),
                state: if is_applied { "applied" } else { "pending" }.into(),
                applied_by: is_applied.then(|| match latest.get(&m.version) {
                    Some(step) if step.status == StepStatus::Applied => step.run_id.to_string(),
                    _ => crate::layout::current().outside_tool().to_owned(),
                }),
                edited: edited.contains(&m.version),
                missing_down: m.missing_down().map(|d| d.describe().to_owned()),
            }
        })
        .collect();
    migrations.extend(findings.missing_from_disk.iter().map(|v| MigrationState {
        version: v.clone(),
        name: String::new(),
        state: "missing-from-disk".into(),
        applied_by: latest.get(v).map(|s| s.run_id.to_string()),
        edited: false,
        missing_down: None,
    }));
    migrations.sort_by(|a, b| crate::migrations::version_cmp(&a.version, &b.version));
    let lock = lock::probe(&mut db)?;
    let mut last_runs = if has_ledger {
        ledger::runs(&mut db, 5)?
    } else {
        Vec::new()
    };
    let running_runs = if has_ledger {
        ledger::runs(&mut db, i64::MAX)?
            .into_iter()
            .filter(|r| r.status == RunStatus::Running)
            .collect()
    } else {
        Vec::new()
    };
    let live = live(findings.dirty, running_runs, &mut last_runs, &lock);

    Ok(StatusReport {
        target: target.name.clone(),
        environment: target.environment.to_string(),
        protected: target.protected,
        backend: db.backend(),
        url: target.url.redacted(),
        identity: identity_now,
        binding_problem,
        ledger: has_ledger,
        dirty: live.dirty.iter().map(preflight::dirty_message).collect(),
        disagreements: disagreements(&latest, &applied_set),
        running: live.running,
        interrupted: live.interrupted,
        lock_holder: (lock != LockState::Free).then(|| lock.describe()),
        last_runs,
        interrupted_restore,
        outside_dbsafe: migrations
            .iter()
            .filter(|m| m.applied_by.as_deref() == Some(crate::layout::current().outside_tool()))
            .map(|m| m.version.clone())
            .collect(),
        migrations,
    })
}

/// Versions whose newest ledger step and diesel's table disagree.
fn disagreements(
    latest: &std::collections::BTreeMap<String, StepRow>,
    applied: &BTreeSet<&String>,
) -> Vec<String> {
    let fix =
        "find out which is true (cargo dbverify --drift), then record it: cargo dbsafe resolve";
    let table = crate::layout::current()
        .history_table()
        .unwrap_or("the history table");
    latest
        .iter()
        .filter_map(|(version, step)| {
            let ledger_applied = step.status == StepStatus::Applied && step.direction == "up";
            let ledger_reverted = step.status == StepStatus::Reverted;
            let in_diesel = applied.contains(version);
            if ledger_applied && !in_diesel {
                Some(format!(
                    "{version}: the ledger says applied (run {}) but {table} does not list it; {fix} {version} --as applied|reverted --reason TEXT",
                    step.run_id
                ))
            } else if ledger_reverted && in_diesel {
                Some(format!(
                    "{version}: {table} lists it but the ledger says reverted (run {}); {fix} {version} --as applied|reverted --reason TEXT",
                    step.run_id
                ))
            } else {
                None
            }
        })
        .collect()
}

/// What the lock says about the ledger's unfinished steps and runs.
struct Live {
    /// `started` steps of runs that are over: the target is dirty.
    dirty: Vec<StepRow>,
    /// Steps and runs in progress, explained.
    running: Vec<String>,
    /// Runs left `running` by a process that is gone.
    interrupted: Vec<RunId>,
}

/// Splits the ledger's unfinished steps and runs into those of the run holding the lock
/// (in progress) and the others (dirty steps, interrupted runs); the last runs of an
/// interrupted run show `interrupted`.
fn live(
    dirty: Vec<StepRow>,
    running_runs: Vec<RunRow>,
    last_runs: &mut [RunRow],
    lock: &LockState,
) -> Live {
    // A lock held by a session that did not say which run it is: the newest run still
    // `running` is the likely holder, so none is called interrupted.
    let holder = match lock {
        LockState::Free => None,
        LockState::Held { run: Some(run), .. } => Some(run),
        LockState::Held { run: None, .. } => running_runs.first().map(|r| &r.id),
    };
    let holder_row = running_runs.iter().find(|r| Some(&r.id) == holder);
    let by = holder_row.map_or_else(String::new, |r| {
        format!(", started {} by {} on {}", r.started_at, r.operator, r.host)
    });
    let session = match lock {
        LockState::Held { session, .. } => session.as_str(),
        LockState::Free => "",
    };
    let describe = |what: String| {
        format!(
            "{what} is running (run {}, holder {session}{by})",
            holder.map_or("?", RunId::as_str)
        )
    };
    let (in_progress, dirty): (Vec<StepRow>, Vec<StepRow>) =
        dirty.into_iter().partition(|s| Some(&s.run_id) == holder);
    let mut running: Vec<String> = in_progress
        .iter()
        .map(|s| describe(format!("migration {}", s.name)))
        .collect();
    if running.is_empty() && holder_row.is_some() {
        running.push(describe(format!(
            "the {} run",
            holder_row.map_or("", |r| r.kind.as_str())
        )));
    }
    let interrupted: Vec<RunId> = running_runs
        .iter()
        .filter(|r| Some(&r.id) != holder)
        .map(|r| r.id.clone())
        .collect();
    for run in last_runs.iter_mut() {
        if interrupted.contains(&run.id) {
            run.status = RunStatus::Interrupted;
        }
    }
    Live {
        dirty,
        running,
        interrupted,
    }
}

/// The status of a SQLite target whose file does not exist yet: everything is pending.
fn not_created(target: &Target, set: &MigrationSet, path: &std::path::Path) -> StatusReport {
    StatusReport {
        target: target.name.clone(),
        environment: target.environment.to_string(),
        protected: target.protected,
        backend: target.url.backend(),
        url: target.url.redacted(),
        identity: format!(
            "none: {} does not exist yet (the first apply creates it)",
            path.display()
        ),
        binding_problem: None,
        ledger: false,
        migrations: set
            .migrations
            .iter()
            .map(|m| MigrationState {
                version: m.version.clone(),
                name: m.name.clone(),
                state: "pending".into(),
                applied_by: None,
                edited: false,
                missing_down: m.missing_down().map(|d| d.describe().to_owned()),
            })
            .collect(),
        dirty: Vec::new(),
        disagreements: Vec::new(),
        running: Vec::new(),
        interrupted: Vec::new(),
        lock_holder: None,
        last_runs: Vec::new(),
        interrupted_restore: None,
        outside_dbsafe: Vec::new(),
    }
}
