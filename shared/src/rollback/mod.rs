//! `cargo dbrollback`: roll back one run by its id. Level 1 reverts the run's migrations
//! with their down.sql (checked against the checksums recorded when they were applied),
//! newest first, as a new `rollback` run; level 2 (`--restore`) restores the snapshot
//! taken before the run, after a safety snapshot of the current state.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{Config, SnapshotStrategy};
use crate::connection::Database;
use crate::error::{Error, Result};
use crate::event::{EventKind, EventSink};
use crate::ledger;
use crate::migrations::{Migration, MigrationSet};
use crate::preflight::{self, Confirmation};
use crate::restore;
use crate::run::{Direction, RunKind, RunStatus, now};
use crate::run_id::RunId;
use crate::session::{Opening, Session};
use crate::snapshot;
use crate::step::{self, Recording};
use crate::target::Target;

mod plan;

pub use plan::{Candidate, PlannedRevert, RollbackPlan, list, plan};
use plan::{open, plan_with, still_applied};

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
    pub fleet_run: Option<RunId>,
}

/// The result of a rollback that ran.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    /// The new rollback (or restore) run (`""` in JSON for a dry run, which runs nothing).
    #[serde(serialize_with = "crate::run_id::serialize_or_empty")]
    pub run_id: Option<RunId>,
    /// What it did.
    pub plan: RollbackPlan,
    /// Level 2: the safety snapshot taken of the state before the restore.
    pub safety_snapshot: Option<String>,
}

/// Rolls back as `options` says. With `dry_run`, returns the plan and touches nothing.
pub fn rollback(
    config: &Config,
    target: &Target,
    options: &RollbackOptions,
    sink: &mut dyn EventSink,
) -> Result<RollbackOutcome> {
    if !options.dry_run {
        crate::run::RunContext::prefetch(&config.root);
        restore::report_finished(config, target, sink)?;
    }
    // What would be done is known (and a bad request refused) before anything is taken.
    let mut db = open(target)?;
    let plan = plan_with(config, &mut db, options)?;
    if options.dry_run {
        return Ok(RollbackOutcome {
            run_id: None,
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
        fleet_run: options.fleet_run.as_ref(),
        ..Opening::new(kind, options.confirmation)
    };
    // The session runs on the connection the plan was read on.
    let mut session = Session::open_with(config, target, opening, Some(Ok(db)), sink)?;
    // A restore rewinds a dirty target too; reverting on one is not safe.
    let dirty = ledger::dirty_steps(&mut session.db)?;
    if let Some(step) = dirty.first()
        && plan.snapshot.is_none()
    {
        return Err(crate::error::Reason::DirtyTarget.refuse(preflight::dirty_message(step)));
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
    let mut command = format!(
        "cargo dbrollback {}",
        plan.run_id.as_ref().map_or("", RunId::as_str)
    );
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
    session.start(plan.run_id.as_ref(), None, versions)?;
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
    let undone: BTreeSet<&RunId> = plan.reverts.iter().map(|r| &r.run_id).collect();
    for (run, steps) in &remaining {
        if undone.contains(&run.id) && steps.is_empty() {
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
        run_id: Some(run_id),
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
        return Err(crate::error::Reason::DamagedSnapshot.refuse(format!(
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
    let parent = plan.run_id.as_ref();
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
        run_id: Some(run_id),
        plan,
        safety_snapshot: Some(safety.id),
    })
}
