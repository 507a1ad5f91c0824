//! `cargo dbsafe status`: the target, its identity, each migration's state (applied by
//! dbsafe, by diesel alone, pending, missing from disk, edited since applied), dirty
//! steps and the last runs. Reads only.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::identity;
use crate::ledger::{self, RunRow, step_status};
use crate::migrations::MigrationSet;
use crate::preflight;
use crate::restore;
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
                    Some(step) if step.status == step_status::APPLIED => step.run_id.clone(),
                    _ => "diesel".to_owned(),
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
        applied_by: latest.get(v).map(|s| s.run_id.clone()),
        edited: false,
        missing_down: None,
    }));
    migrations.sort_by(|a, b| a.version.cmp(&b.version));

    Ok(StatusReport {
        target: target.name.clone(),
        environment: target.environment.to_string(),
        protected: target.protected,
        backend: db.backend(),
        url: target.url.redacted(),
        identity: identity_now,
        binding_problem,
        ledger: has_ledger,
        dirty: findings
            .dirty
            .iter()
            .map(preflight::dirty_message)
            .collect(),
        last_runs: if has_ledger {
            ledger::runs(&mut db, 5)?
        } else {
            Vec::new()
        },
        interrupted_restore,
        outside_dbsafe: migrations
            .iter()
            .filter(|m| m.applied_by.as_deref() == Some("diesel"))
            .map(|m| m.version.clone())
            .collect(),
        migrations,
    })
}

/// The status of a SQLite target whose file does not exist yet: everything is pending.
fn not_created(target: &Target, set: &MigrationSet, path: &std::path::Path) -> StatusReport {
    StatusReport {
        target: target.name.clone(),
        environment: target.environment.to_string(),
        protected: target.protected,
        backend: Backend::Sqlite,
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
        last_runs: Vec::new(),
        interrupted_restore: None,
        outside_dbsafe: Vec::new(),
    }
}
