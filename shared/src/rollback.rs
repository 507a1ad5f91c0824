//! `cargo dbrollback`: roll back one run by its id. Level 1 reverts the run's migrations
//! with their down.sql (checked against the checksums recorded when they were applied),
//! newest first, as a new `rollback` run; level 2 (`--restore`) restores the snapshot
//! taken before the run, after a safety snapshot of the current state.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{Config, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{EventKind, EventSink};
use crate::ledger::{self, RunRow, StepRow};
use crate::migrations::{Migration, MigrationSet};
use crate::preflight::{self, Confirmation};
use crate::restore;
use crate::run::{Direction, RunKind, now};
use crate::run::{RunStatus, StepStatus};
use crate::session::{Opening, Session};
use crate::snapshot::{self, Manifest, SnapshotStore};
use crate::step::{self, Recording};
use crate::target::Target;

/// Which run to roll back and how.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// The run id (or a unique prefix); `None` means the newest run that can be rolled back.
    pub run: Option<String>,
    /// Revert only the run's migrations newer than this version.
    pub to: Option<String>,
    /// Restore the run's pre-run snapshot instead of reverting.
    pub restore: bool,
    /// Restore this snapshot of the target (`cargo dbsafe snapshot restore ID`) rather
    /// than a run's.
    pub snapshot: Option<String>,
    /// Roll back later runs on top first, newest first.
    pub cascade: bool,
    /// Report the plan, touch nothing.
    pub dry_run: bool,
    /// `--allow-edit NAME`: accept these migrations' down.sql although it changed since the
    /// run applied them (the fixed one after a failure); recorded as `rollback.down_edited`.
    pub allow_edit: Vec<String>,
    /// How the target was chosen and confirmed.
    pub confirmation: Confirmation,
    /// The fleet run this rollback is a member's share of (`cargo dbrollback FLEET_RUN`).
    pub fleet_run: Option<String>,
}

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
    pub run_id: String,
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
    /// The run asked for (empty when a snapshot was asked for by its id).
    pub run_id: String,
    /// Level 1: the migrations to revert, in the order they will run (newest first).
    pub reverts: Vec<PlannedRevert>,
    /// Level 2: the snapshot that will be restored.
    pub snapshot: Option<Manifest>,
    /// Level 2: the runs whose changes the restore undoes (the run and every later one).
    pub runs_undone: Vec<String>,
}

/// The result of a rollback that ran.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    /// The new rollback (or restore) run.
    pub run_id: String,
    /// What it did.
    pub plan: RollbackPlan,
    /// Level 2: the safety snapshot taken of the state before the restore.
    pub safety_snapshot: Option<String>,
}

fn open(target: &Target) -> Result<Database> {
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
fn still_applied(db: &mut Database) -> Result<Vec<(RunRow, Vec<StepRow>)>> {
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
                .filter(|&i| runs[i].0.id == id || runs[i].0.id.starts_with(id))
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

fn plan_with(
    config: &Config,
    db: &mut Database,
    options: &RollbackOptions,
) -> Result<RollbackPlan> {
    if let Some(snapshot_id) = &options.snapshot {
        return plan_snapshot_restore(config, db, snapshot_id, String::new());
    }
    // A restore run is undone by restoring the safety snapshot it took (level 2 only).
    if let Some(asked) = &options.run
        && let Some(restore) = ledger::runs(db, i64::MAX)?
            .into_iter()
            .find(|r| r.kind == "restore" && (r.id == *asked || r.id.starts_with(asked.as_str())))
    {
        let safety = restore.snapshot_id.clone().ok_or_else(|| {
            Error::Usage(format!(
                "restore run {} has no safety snapshot to restore",
                restore.id
            ))
        })?;
        return plan_snapshot_restore(config, db, &safety, restore.id);
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
            run_id: run.id.clone(),
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
        return Err(Error::Refused(format!(
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
        return Err(Error::Refused(format!(
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
        run_id: run.id.clone(),
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
    parent: String,
) -> Result<RollbackPlan> {
    let manifest = SnapshotStore::new(config).load_for_restore(id)?;
    let target = ledger::meta_get(db, "bound_target")?;
    if target.as_deref().is_some_and(|t| t != manifest.target) {
        return Err(Error::Refused(format!(
            "snapshot {id} is of target `{}`, not of this one: restore it on its own target",
            manifest.target
        )));
    }
    let mut runs_undone: Vec<String> = ledger::runs(db, i64::MAX)?
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
        Error::Refused(format!(
            "migration {} (applied by run {}) has no directory in {} any more: restore it from git before rolling back",
            step.name,
            run.id,
            set.dir.display()
        ))
    })?;
    if migration.up_checksum != step.up_checksum {
        return Err(Error::Refused(format!(
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
        return Err(Error::Refused(format!(
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

/// Rolls back as `options` says. With `dry_run`, returns the plan and touches nothing.
pub fn rollback(
    config: &Config,
    target: &Target,
    options: &RollbackOptions,
    sink: &mut dyn EventSink,
) -> Result<RollbackOutcome> {
    if !options.dry_run {
        restore::report_finished(config, target, sink)?;
    }
    // What would be done is known (and a bad request refused) before anything is taken.
    let plan = plan_with(config, &mut open(target)?, options)?;
    if options.dry_run {
        return Ok(RollbackOutcome {
            run_id: String::new(),
            plan,
            safety_snapshot: None,
        });
    }
    let kind = if plan.snapshot.is_some() {
        RunKind::Restore
    } else {
        RunKind::Rollback
    };
    let opening = Opening {
        fleet_run: options.fleet_run.as_deref(),
        ..Opening::new(kind, options.confirmation)
    };
    let mut session = Session::open(config, target, opening, sink)?;
    // A restore rewinds a dirty target too; reverting on one is not safe.
    let dirty = ledger::dirty_steps(&mut session.db)?;
    if let Some(step) = dirty.first()
        && plan.snapshot.is_none()
    {
        return Err(Error::Refused(preflight::dirty_message(step)));
    }
    session.prepare_ledger()?;
    // Plan again under the lock: another process may have changed the ledger meanwhile.
    let plan = plan_with(config, &mut session.db, options)?;
    if plan.snapshot.is_some() {
        restore_run(&mut session, plan)
    } else {
        revert_run(&mut session, plan, options)
    }
}

/// The command that runs this rollback again, accepting `name`'s fixed down.sql.
fn again_command(
    target: &Target,
    plan: &RollbackPlan,
    options: &RollbackOptions,
    name: &str,
) -> String {
    let mut command = format!("cargo dbrollback {}", plan.run_id);
    if target.name != crate::config::DEFAULT_TARGET {
        command.push_str(&format!(" --target {}", target.name));
    }
    if let Some(to) = &options.to {
        command.push_str(&format!(" --to {to}"));
    }
    if options.cascade {
        command.push_str(" --cascade");
    }
    let mut names: Vec<&str> = options.allow_edit.iter().map(String::as_str).collect();
    if !names.contains(&name) {
        names.push(name);
    }
    for name in names {
        command.push_str(&format!(" --allow-edit {}", shell_word(name)));
    }
    command
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn revert_run(
    session: &mut Session<'_>,
    plan: RollbackPlan,
    options: &RollbackOptions,
) -> Result<RollbackOutcome> {
    let (config, target) = (session.config, session.target);
    let run_id = session.run_id().to_owned();
    let versions: Vec<String> = plan.reverts.iter().map(|r| r.version.clone()).collect();
    session.start(Some(&plan.run_id), None, versions)?;
    let set = MigrationSet::load(&config.migrations_dir)?;
    let total = plan.reverts.len();
    for (index, planned) in plan.reverts.iter().enumerate() {
        let migration: &Migration = set.get(&planned.version).expect("checked by the plan");
        let reverted = |duration_ms| EventKind::RollbackRevert {
            version: migration.version.clone(),
            name: migration.name.clone(),
            reverted_run: planned.run_id.clone(),
            duration_ms,
        };
        if let Some(recorded) = &planned.down_edited {
            session.emit(EventKind::RollbackDownEdited {
                version: planned.version.clone(),
                name: planned.name.clone(),
                recorded_checksum: recorded.clone(),
                checksum: planned.down_checksum.clone(),
            })?;
        }
        let recording = Recording {
            recorder: &mut session.recorder,
            seq: index as i32 + 1,
            done: &reverted,
            lock_log: None,
        };
        if let Err(failure) = step::execute(
            &mut session.db,
            Some(&config.apply),
            migration,
            Direction::Down,
            Some(recording),
        ) {
            let remaining: Vec<&str> = plan.reverts[index..]
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            let state = format!(
                "{index} of {total} reverted; {}.\n  The database now still has: {}.\n  Fix the down.sql and run `{}`: it continues from here and records the edited down.sql (or fix the database and run the same rollback again)",
                failure.describe_down(migration),
                crate::run::names_in_brief(&remaining),
                again_command(target, &plan, options, &planned.name)
            );
            let still: Vec<String> = remaining.iter().map(|n| (*n).to_owned()).collect();
            return Err(Error::Attention(session.fail(
                RunStatus::Failed,
                state,
                None,
                still,
            )));
        }
    }
    // A run none of whose migrations remain applied is now `reverted`.
    let remaining = still_applied(&mut session.db)?;
    let undone: BTreeSet<&str> = plan.reverts.iter().map(|r| r.run_id.as_str()).collect();
    for (run, steps) in &remaining {
        if undone.contains(run.id.as_str()) && steps.is_empty() {
            ledger::finish_run(
                &mut session.db.conn,
                &run.id,
                RunStatus::Reverted,
                run.finished_at.as_deref().unwrap_or(&now()),
                run.bundle_hash.as_deref(),
                run.error.as_deref(),
            )
            .map_err(|e| Error::db("writing dbsafe_runs", e))?;
        }
    }
    session.succeed(None, total)?;
    Ok(RollbackOutcome {
        run_id,
        plan,
        safety_snapshot: None,
    })
}

fn restore_run(session: &mut Session<'_>, plan: RollbackPlan) -> Result<RollbackOutcome> {
    let (config, target) = (session.config, session.target);
    let run_id = session.run_id().to_owned();
    let manifest = plan
        .snapshot
        .clone()
        .expect("a restore plan has a snapshot");
    // Refuse a damaged snapshot before taking anything else.
    let problems = snapshot::verify_files(config, &manifest);
    if !problems.is_empty() {
        return Err(Error::Refused(format!(
            "snapshot {} is damaged, not restoring it: {}",
            manifest.id,
            problems.join("; ")
        )));
    }
    // The run's own rows go in after the restore, which rewinds the ledger.
    session.announce(Vec::new(), Some(manifest.id.clone()))?;
    // The safety snapshot: the state being thrown away, in case it is wanted after all.
    // (A template clone cannot be taken while this session holds the lock in the database.)
    let strategy = match snapshot::resolve_strategy(config.snapshot.strategy, session.db.backend())?
    {
        SnapshotStrategy::Template => SnapshotStrategy::PgDump,
        other => other,
    };
    let safety = snapshot::create(config, target, &mut session.db, strategy, Some(&run_id))?;
    session.emit(EventKind::SnapshotCreated {
        snapshot_id: safety.id.clone(),
        strategy: safety.strategy.clone(),
        bytes: safety.files.iter().map(|f| f.size).sum(),
        duration_ms: safety.duration_ms,
    })?;
    // The run's own row goes into the restored copy just before the swap, with the events
    // recorded so far: the swap makes the restore and its record true at once.
    let parent = Some(plan.run_id.as_str()).filter(|p| !p.is_empty());
    let row = session
        .recorder
        .run_row(target, RunKind::Restore, parent, Some(safety.id.clone()));
    let retry = match parent {
        Some(parent) => format!(
            "cargo dbrollback {parent} --restore --target {}",
            target.name
        ),
        None => format!(
            "cargo dbsafe snapshot restore {} --target {}",
            manifest.id, target.name
        ),
    };
    let skip = [run_id.clone()];
    let mut write_own = |copy: &mut Database| -> Result<()> {
        ledger::insert_run(&mut copy.conn, &row).map_err(|e| Error::db("writing dbsafe_runs", e))
    };
    let restored = restore::restore_snapshot(
        session,
        &manifest,
        restore::RestoreRequest {
            skip: &skip,
            retry,
            write_own: &mut write_own,
        },
    );
    let outcome = match restored {
        Ok(outcome) => outcome,
        Err(e) => {
            let state = format!(
                "restoring snapshot {} failed: {e}\n  The target was not replaced: it is as it was before this command. The state before the restore is also in safety snapshot {}",
                manifest.id, safety.id
            );
            // The run has no row (it goes in with the restored copy): the event records it.
            return Err(Error::Attention(session.fail(
                RunStatus::Failed,
                state,
                None,
                Vec::new(),
            )));
        }
    };
    session.emit(EventKind::SnapshotRestored {
        snapshot_id: manifest.id.clone(),
        rehydrated_runs: outcome.rehydrated_runs.clone(),
        differences: outcome.differences.clone(),
        duration_ms: outcome.duration_ms,
    })?;
    session.succeed(None, 0)?;
    Ok(RollbackOutcome {
        run_id,
        plan,
        safety_snapshot: Some(safety.id),
    })
}
