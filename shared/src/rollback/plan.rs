//! The rollback plan: which runs can be rolled back, which of their migrations are still
//! applied, and what a rollback would revert (each down.sql checked against the checksum
//! recorded when its migration was applied) or which snapshot it would restore.

use std::collections::BTreeSet;

use serde::Serialize;

use super::RollbackOptions;
use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::ledger::{self, RunRow, StepRow};
use crate::migrations::MigrationSet;
use crate::run::StepStatus;
use crate::run_id::RunId;
use crate::snapshot::{Manifest, SnapshotStore};
use crate::target::Target;

/// A run that can be rolled back.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The run.
    pub run: RunRow,
    /// Its migrations that are still applied, oldest first.
    pub still_applied: Vec<String>,
}

/// One migration a revert plan takes back.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRevert {
    /// The run that applied it.
    pub run_id: RunId,
    /// Version.
    pub version: String,
    /// Directory name.
    pub name: String,
    /// The down.sql that will run.
    pub down_sql: String,
    /// When the down.sql changed since the run applied the migration and `--allow-edit`
    /// accepts it: the checksum recorded then (`None`: no down.sql was recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_edited: Option<Option<String>>,
    /// SHA-256 of the down.sql that will run.
    #[serde(skip)]
    pub down_checksum: String,
}

/// What a rollback will do (or did).
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    /// The run asked for (`None`, `""` in JSON, when a snapshot was asked for by its id).
    #[serde(serialize_with = "crate::run_id::serialize_or_empty")]
    pub run_id: Option<RunId>,
    /// Level 1: the migrations to revert, in the order they will run (newest first).
    pub reverts: Vec<PlannedRevert>,
    /// Level 2: the snapshot that will be restored.
    pub snapshot: Option<Manifest>,
    /// Level 2: the runs whose changes the restore undoes (the run and every later one).
    pub runs_undone: Vec<RunId>,
}

pub(super) fn open(target: &Target) -> Result<Database> {
    let mut db = Database::connect(&target.url, Create::Never)?;
    if !ledger::exists(&mut db)? {
        return Err(Error::Usage(format!(
            "target `{}` has no dbsafe ledger yet: nothing was applied by dbsafe, so there is no run to roll back",
            target.name
        )));
    }
    Ok(db)
}

/// Each apply run's migrations that are still applied (by the newest step of each version
/// and diesel's table).
pub(super) fn still_applied(db: &mut Database) -> Result<Vec<(RunRow, Vec<StepRow>)>> {
    let applied: BTreeSet<String> = ledger::diesel_applied(db)?.into_iter().collect();
    let latest = ledger::latest_steps(db)?;
    let runs = ledger::runs(db, i64::MAX)?;
    Ok(runs
        .into_iter()
        .filter(|run| run.kind == "apply")
        .map(|run| {
            let mut steps: Vec<StepRow> = latest
                .values()
                .filter(|s| {
                    s.run_id == run.id
                        && s.direction == "up"
                        && s.status == StepStatus::Applied
                        && applied.contains(&s.version)
                })
                .cloned()
                .collect();
            steps.sort_by(|a, b| crate::migrations::version_cmp(&a.version, &b.version));
            (run, steps)
        })
        .collect())
}

/// The runs that can be rolled back, newest first: apply runs with migrations still
/// applied, or with a snapshot to restore.
pub fn list(target: &Target) -> Result<Vec<Candidate>> {
    let mut db = open(target)?;
    Ok(still_applied(&mut db)?
        .into_iter()
        .filter(|(run, steps)| !steps.is_empty() || run.snapshot_id.is_some())
        .map(|(run, steps)| Candidate {
            run,
            still_applied: steps.into_iter().map(|s| s.version).collect(),
        })
        .collect())
}

/// Finds the run asked for: an id, a unique prefix, or the newest with migrations still applied.
fn find_run(runs: &[(RunRow, Vec<StepRow>)], asked: Option<&str>, restore: bool) -> Result<usize> {
    match asked {
        None => runs
            .iter()
            .position(|(run, steps)| {
                if restore {
                    run.snapshot_id.is_some()
                } else {
                    !steps.is_empty()
                }
            })
            .ok_or_else(|| {
                Error::Usage(
                    "no run can be rolled back: no apply run has migrations still applied".into(),
                )
            }),
        Some(id) => {
            let matches: Vec<usize> = (0..runs.len())
                .filter(|&i| runs[i].0.id.as_str().starts_with(id))
                .collect();
            match matches.as_slice() {
                [one] => Ok(*one),
                [] => {
                    let known: Vec<&str> =
                        runs.iter().take(5).map(|(r, _)| r.id.as_str()).collect();
                    Err(Error::Usage(format!(
                        "no apply run `{id}` in the ledger; {}",
                        if known.is_empty() {
                            "there are none".to_owned()
                        } else {
                            format!("newest: {} (cargo dbrollback --list)", known.join(", "))
                        }
                    )))
                }
                many => Err(Error::Usage(format!(
                    "run id prefix `{id}` is ambiguous: {}",
                    many.iter()
                        .map(|&i| runs[i].0.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

/// Works out what the rollback would do, refusing what it must not do: later runs on top
/// without `--cascade`, an edited or missing down.sql, a run with no snapshot to restore.
pub fn plan(config: &Config, target: &Target, options: &RollbackOptions) -> Result<RollbackPlan> {
    let mut db = open(target)?;
    plan_with(config, &mut db, options)
}

pub(super) fn plan_with(
    config: &Config,
    db: &mut Database,
    options: &RollbackOptions,
) -> Result<RollbackPlan> {
    if let Some(snapshot_id) = &options.snapshot {
        return plan_snapshot_restore(config, db, snapshot_id, None);
    }
    // A restore run is undone by restoring the safety snapshot it took (level 2 only).
    if let Some(asked) = &options.run
        && let Some(restore) = ledger::runs(db, i64::MAX)?
            .into_iter()
            .find(|r| r.kind == "restore" && r.id.as_str().starts_with(asked.as_str()))
    {
        let safety = restore.snapshot_id.clone().ok_or_else(|| {
            Error::Usage(format!(
                "restore run {} has no safety snapshot to restore",
                restore.id
            ))
        })?;
        return plan_snapshot_restore(config, db, &safety, Some(restore.id));
    }
    let runs = still_applied(db)?;
    let index = find_run(&runs, options.run.as_deref(), options.restore)?;
    let (run, _) = &runs[index];
    if options.restore {
        let id = run.snapshot_id.clone().ok_or_else(|| {
            Error::Usage(format!(
                "run {} has no snapshot to restore: it ran with [apply] snapshot = \"never\" (or on an unprotected target). Roll it back without --restore",
                run.id
            ))
        })?;
        let manifest = SnapshotStore::new(config).load_for_restore(&id)?;
        let runs_undone = runs[..=index]
            .iter()
            .rev()
            .map(|(r, _)| r.id.clone())
            .collect();
        return Ok(RollbackPlan {
            run_id: Some(run.id.clone()),
            reverts: Vec::new(),
            snapshot: Some(manifest),
            runs_undone,
        });
    }
    let later: Vec<&(RunRow, Vec<StepRow>)> = runs[..index]
        .iter()
        .filter(|(_, steps)| !steps.is_empty())
        .collect();
    if !later.is_empty() && !options.cascade {
        let names: Vec<String> = later
            .iter()
            .map(|(r, s)| format!("{} ({} migration(s))", r.id, s.len()))
            .collect();
        return Err(crate::error::Reason::LaterRuns.refuse(format!(
            "later runs applied migrations on top of run {}: {}. Roll those back first, or pass --cascade to roll them back too, newest first",
            run.id,
            names.join(", ")
        )));
    }
    let set = MigrationSet::load(&config.migrations_dir)?;
    let to = options
        .to
        .as_deref()
        .map(|to| resolve_to(&set, &runs, to))
        .transpose()?;
    let chosen = if options.cascade {
        &runs[..=index]
    } else {
        &runs[index..=index]
    };
    let mut planned_steps: Vec<(&RunRow, &StepRow)> = Vec::new();
    for (chosen_run, steps) in chosen {
        let mut steps: Vec<&StepRow> = steps.iter().collect();
        if chosen_run.id == run.id
            && let Some(to) = &to
        {
            steps.retain(|s| crate::migrations::version_cmp(&s.version, to).is_gt());
        }
        planned_steps.extend(steps.into_iter().rev().map(|step| (chosen_run, step)));
    }
    let unknown: Vec<&str> = options
        .allow_edit
        .iter()
        .filter(|a| {
            let digits = crate::migrations::normalise_version(a);
            !planned_steps
                .iter()
                .any(|(_, s)| s.name == **a || digits.as_deref() == Some(s.version.as_str()))
        })
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Usage(format!(
            "--allow-edit {}: not a migration this rollback reverts (see --dry-run)",
            unknown.join(", ")
        )));
    }
    let mut reverts = Vec::new();
    let mut no_down = Vec::new();
    for (chosen_run, step) in planned_steps {
        match planned(&set, chosen_run, step, &options.allow_edit)? {
            Ok(revert) => reverts.push(revert),
            Err(missing) => no_down.push(missing),
        }
    }
    if !no_down.is_empty() {
        let restore = match &run.snapshot_id {
            Some(id) => format!(
                "Restore the run's snapshot {id} instead: cargo dbrollback {} --restore",
                run.id
            ),
            None => "Restore the run's snapshot instead (--restore), if it has one".to_owned(),
        };
        return Err(crate::error::Reason::IrreversibleMigration.refuse(format!(
            "{} migration(s) of the rollback have no down.sql that can revert them: {}. \
             {restore}, or write the down.sql and roll back with --allow-edit NAME",
            no_down.len(),
            no_down.join("; ")
        )));
    }
    if reverts.is_empty() {
        return Err(Error::Usage(format!(
            "run {} has no migrations left to revert{}",
            run.id,
            options
                .to
                .as_ref()
                .map(|t| format!(" newer than {t}"))
                .unwrap_or_default()
        )));
    }
    Ok(RollbackPlan {
        run_id: Some(run.id.clone()),
        reverts,
        snapshot: None,
        runs_undone: Vec::new(),
    })
}

/// The plan of restoring snapshot `id` of this target, undoing `parent` (a restore run, or
/// none): every run since the snapshot was taken is rewound.
fn plan_snapshot_restore(
    config: &Config,
    db: &mut Database,
    id: &str,
    parent: Option<RunId>,
) -> Result<RollbackPlan> {
    let manifest = SnapshotStore::new(config).load_for_restore(id)?;
    let target = ledger::meta_get(db, "bound_target")?;
    if target.as_deref().is_some_and(|t| t != manifest.target) {
        return Err(crate::error::Reason::ForeignSnapshot.refuse(format!(
            "snapshot {id} is of target `{}`, not of this one: restore it on its own target",
            manifest.target
        )));
    }
    let mut runs_undone: Vec<RunId> = ledger::runs(db, i64::MAX)?
        .into_iter()
        .filter(|r| r.started_at >= manifest.created_at && r.restored_by.is_none())
        .map(|r| r.id)
        .collect();
    runs_undone.reverse();
    Ok(RollbackPlan {
        run_id: parent,
        reverts: Vec::new(),
        snapshot: Some(manifest),
        runs_undone,
    })
}

/// `--to VERSION` as a version: digits, the directory form (`2024-10-24-134209`) or a name.
fn resolve_to(set: &MigrationSet, runs: &[(RunRow, Vec<StepRow>)], to: &str) -> Result<String> {
    if let Some(migration) = set.get(to) {
        return Ok(migration.version.clone());
    }
    let digits = crate::migrations::normalise_version(to);
    runs.iter()
        .flat_map(|(_, steps)| steps)
        .find(|s| s.name == to || digits.as_deref() == Some(s.version.as_str()))
        .map(|s| s.version.clone())
        .ok_or_else(|| Error::Usage(format!("--to {to}: no migration with that version")))
}

/// Checks that the code being undone is the code that was done: the plan of one
/// migration, or (inner `Err`) why it has no down.sql that can revert it.
fn planned(
    set: &MigrationSet,
    run: &RunRow,
    step: &StepRow,
    allow_edit: &[String],
) -> Result<std::result::Result<PlannedRevert, String>> {
    let migration = set.get(&step.version).ok_or_else(|| {
        crate::error::Reason::MissingMigration.refuse(format!(
            "migration {} (applied by run {}) has no directory in {} any more: restore it from git before rolling back",
            step.name,
            run.id,
            set.dir.display()
        ))
    })?;
    if migration.up_checksum != step.up_checksum {
        return Err(crate::error::Reason::EditedMigration.refuse(format!(
            "{} changed since run {} applied it: the code being undone must be the code that was done. Restore the file from git (the commit of that run: {})",
            migration.up_path.display(),
            run.id,
            run.git_commit.as_deref().unwrap_or("unknown")
        )));
    }
    let (Some(down_sql), Some(checksum)) =
        (migration.revertible_down(), migration.down_checksum.clone())
    else {
        let missing = migration
            .missing_down()
            .unwrap_or(crate::migrations::MissingDown::NoFile);
        return Ok(Err(format!(
            "{} has {} ({})",
            migration.name,
            missing.describe(),
            migration.dir.display()
        )));
    };
    let allowed = allow_edit.iter().any(|a| {
        *a == migration.name
            || crate::migrations::normalise_version(a).as_deref() == Some(&migration.version)
    });
    let down_edited = migration.down_checksum != step.down_checksum;
    if down_edited && !allowed {
        return Err(crate::error::Reason::EditedDownSql.refuse(format!(
            "{} changed since run {} applied the migration: the down.sql that runs must be the one recorded then. Restore the file from git (the commit of that run: {}), or, if you fixed it on purpose, accept it for this rollback with --allow-edit {}",
            migration.down_path.display(),
            run.id,
            run.git_commit.as_deref().unwrap_or("unknown"),
            migration.name
        )));
    }
    Ok(Ok(PlannedRevert {
        run_id: run.id.clone(),
        version: migration.version.clone(),
        name: migration.name.clone(),
        down_sql: down_sql.to_owned(),
        down_edited: down_edited.then(|| step.down_checksum.clone()),
        down_checksum: checksum,
    }))
}
