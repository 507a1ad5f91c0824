//! What apply does when its body fails: the failure policy (`stop`, `revert` newest first
//! through the step executor, or `restore` the snapshot taken before the run), and the
//! message that says exactly what state the target is left in.

use crate::config::FailurePolicy;
use crate::error::Error;
use crate::event::EventKind;
use crate::ledger;
use crate::migrations::Migration;
use crate::restore::{RestoreRequest, restore_snapshot};
use crate::run::{Direction, RunStatus, names_in_brief, now};
use crate::session::Session;
use crate::snapshot::Manifest;
use crate::step::{self, Recording, StepFailure};

/// Why a run's body did not complete.
pub(super) struct Failure {
    migration: String,
    version: String,
    message: String,
    /// Part of it may have run (non-transactional): the target is dirty.
    pub(super) dirty: bool,
}

impl Failure {
    /// A failure of the run rather than of one migration (a seed, the verification).
    pub(super) fn of_run(message: String) -> Failure {
        Failure {
            migration: String::new(),
            version: String::new(),
            message,
            dirty: false,
        }
    }

    /// A migration's step failed.
    pub(super) fn of_step(migration: &Migration, failure: StepFailure) -> Failure {
        Failure {
            migration: migration.name.clone(),
            version: migration.version.clone(),
            message: failure.message,
            dirty: failure.dirty,
        }
    }
}

/// What a failed run's policy works with.
#[derive(Clone, Copy)]
pub(super) struct RunScope<'a> {
    /// The snapshot taken before the run, if any.
    pub(super) snapshot: Option<&'a Manifest>,
    /// The number of migrations the run set out to apply.
    pub(super) total: usize,
}

/// Applies the failure policy and finishes the run; the error to return.
pub(super) fn fail_run(
    scope: &RunScope<'_>,
    session: &mut Session<'_>,
    done: &[&Migration],
    failure: Failure,
) -> Error {
    // Ctrl-C: the handler records the interruption; no failure policy runs.
    crate::interrupt::halt_if_interrupted();
    let config = session.config;
    let total = scope.total;
    let run_id = session.run_id().to_owned();
    let applied_names: Vec<&str> = done.iter().map(|m| m.name.as_str()).collect();
    let still_applied: Vec<String> = applied_names.iter().map(|n| (*n).to_owned()).collect();
    // A failure of no single migration (post-apply verification) speaks for itself.
    let headline = if failure.version.is_empty() {
        failure.message.clone()
    } else {
        format!(
            "migration {} failed: {}",
            failure.migration, failure.message
        )
    };
    // The session that held the target's lock may be gone: take it again before undoing
    // anything, or another apply could run in between.
    if let Err(e) = session.relock() {
        return Error::Attention(format!(
            "{headline}\n  The connection was lost and the target's lock could not be taken again ({e}); nothing was undone: the {} earlier migration(s) of run {run_id} stay applied ({})",
            done.len(),
            names_in_brief(&applied_names)
        ));
    }
    let hash = super::bundle_hash(done);
    if config.apply.on_failure == FailurePolicy::Restore
        && let Some(manifest) = scope.snapshot
    {
        return restore_after_failure(session, manifest, &headline);
    }
    if failure.dirty {
        let state = format!(
            "{headline}\n  It ran without a transaction, so part of it may have been applied: the target is dirty.\n  \
             {} of {total} migrations of run {run_id} applied before it ({}).\n  \
             Inspect the database, finish or undo the migration by hand, then: cargo dbsafe resolve {} --as applied|reverted",
            done.len(),
            names_in_brief(&applied_names),
            failure.version
        );
        return Error::Attention(session.fail(
            RunStatus::Failed,
            state,
            Some(&hash),
            still_applied,
        ));
    }
    match config.apply.on_failure {
        FailurePolicy::Stop | FailurePolicy::Restore => {
            let state = format!(
                "{headline}\n  on-failure = stop: the {} migration(s) applied before it stay applied ({}); run {run_id} is marked failed",
                done.len(),
                names_in_brief(&applied_names)
            );
            Error::Failed(session.fail(RunStatus::Failed, state, Some(&hash), still_applied))
        }
        FailurePolicy::Revert => match revert(session, done, total + 1) {
            Ok(()) => {
                let state = format!(
                    "{headline}\n  on-failure = revert: nothing of run {run_id} remains; {} earlier migration(s) reverted{}",
                    done.len(),
                    if done.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", names_in_brief(&applied_names))
                    }
                );
                Error::Failed(session.fail(RunStatus::Reverted, state, Some(&hash), Vec::new()))
            }
            Err(revert_error) => {
                let state = format!("{headline}\n  reverting the run failed too: {revert_error}");
                Error::Attention(session.fail(RunStatus::Failed, state, Some(&hash), still_applied))
            }
        },
    }
}

/// The `restore` policy: rewinds the target to the snapshot taken before the run, writes
/// the run back into the ledger from the journal (marked `restored`) and proves the result
/// against the snapshot's fingerprints.
fn restore_after_failure(session: &mut Session<'_>, manifest: &Manifest, headline: &str) -> Error {
    let (config, target) = (session.config, session.target);
    let run_id = session.run_id().to_owned();
    let message = format!(
        "{headline}\n  on-failure = restore: the database was restored to snapshot {} taken before run {run_id}",
        manifest.id
    );
    let _ = session.emit(EventKind::RunFailed {
        status: RunStatus::Restored,
        error: message.clone(),
        still_applied: Vec::new(),
    });
    let retry = format!(
        "cargo dbrollback {run_id} --restore --target {}",
        target.name
    );
    let outcome = match restore_snapshot(
        session,
        manifest,
        RestoreRequest {
            skip: &[],
            retry,
            // The run, written back from the live ledger as it stood, ends `restored`.
            write_own: &mut |copy| {
                ledger::finish_run(
                    &mut copy.conn,
                    &run_id,
                    RunStatus::Restored,
                    &now(),
                    None,
                    Some(&message),
                )
                .map_err(|e| Error::db("writing dbsafe_runs", e))
            },
        },
    ) {
        Ok(outcome) => outcome,
        Err(e) => {
            return Error::Attention(format!(
                "{headline}\n  restoring snapshot {} failed: {e}\n  The target was not replaced: it holds what the failed run left. The snapshot is in {}",
                manifest.id,
                config.snapshot_dir.join(&manifest.id).display()
            ));
        }
    };
    let _ = session.emit(EventKind::SnapshotRestored {
        snapshot_id: manifest.id.clone(),
        rehydrated_runs: outcome.rehydrated_runs.clone(),
        differences: outcome.differences.clone(),
        duration_ms: outcome.duration_ms,
    });
    // A copy that differs from the snapshot is never swapped in (an error above).
    Error::Failed(message)
}

/// Reverts `done` newest first with down.sql, each recorded as a `down` step.
fn revert(session: &mut Session<'_>, done: &[&Migration], first_seq: usize) -> Result<(), String> {
    let config = session.config;
    let mut remaining: Vec<&str> = done.iter().map(|m| m.name.as_str()).collect();
    for (offset, migration) in done.iter().rev().enumerate() {
        let reverted = |duration_ms| EventKind::MigrationReverted {
            version: migration.version.clone(),
            name: migration.name.clone(),
            duration_ms,
        };
        let recording = Recording {
            recorder: &mut session.recorder,
            seq: (first_seq + offset) as i32,
            done: &reverted,
            lock_log: None,
        };
        step::execute(
            &mut session.db,
            Some(&config.apply),
            migration,
            Direction::Down,
            Some(recording),
        )
        .map_err(|e| {
            format!(
                "{}; still applied: {}",
                e.describe_down(migration),
                names_in_brief(&remaining)
            )
        })?;
        remaining.pop();
    }
    Ok(())
}
