//! Restoring a target to a snapshot, shared by apply's `restore` failure policy and
//! `cargo dbrollback --restore`: the snapshot is restored into a new database beside the
//! target and proved there against the manifest's fingerprints; the runs the restore
//! rewinds are written back into that copy's ledger from the journal; then the copy is
//! swapped in by name. The target is never emptied first, and a restore interrupted at any
//! moment is finished or undone by the next command ([`finish_interrupted`]).

use std::collections::BTreeSet;
use std::time::Instant;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Reason, Result};
use crate::event::{Event, EventKind};
use crate::journal::{Journal, JournalEntry};
use crate::ledger::{self, RunRow};
use crate::run::RunStatus;
use crate::run::now;
use crate::run_id::RunId;
use crate::session::Session;
use crate::snapshot::{self, Manifest, Recovered, Staging, SwapPlan};
use crate::target::Target;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    /// Runs written back into the ledger from the journal.
    pub rehydrated_runs: Vec<RunId>,
    /// Differences between the restored database and the manifest (empty: identical; a
    /// copy that differs is never swapped in).
    pub differences: Vec<String>,
    /// Wall time of the restore itself.
    pub duration_ms: u64,
}

/// How a restore is run by its caller.
pub struct RestoreRequest<'r> {
    /// Runs the journal should not write back (the restore run itself, which writes its
    /// own row in `write_own`).
    pub skip: &'r [RunId],
    /// The command that restores again, should this one be interrupted before the swap.
    pub retry: String,
    /// Writes the caller's own rows into the copy's ledger, just before the swap.
    pub write_own: &'r mut dyn FnMut(&mut Database) -> Result<()>,
}

/// Refuses a fleet's schema member: a restore swaps whole databases, so the other schemas
/// of its database would be rewound too.
pub fn refuse_schema_member(target: &Target) -> Result<()> {
    match target.url.schema() {
        Some(schema) => Err(Reason::SchemaMemberRestore.refuse(format!(
            "target `{}` is schema `{schema}` of a database shared with other schemas: a snapshot restore replaces the whole database, so it is refused for schema members. Roll back with down.sql (`cargo dbrollback RUN` without --restore), or restore the schema's snapshot by hand with pg_restore --schema",
            target.name
        ))),
        None => Ok(()),
    }
}

/// Restores `manifest` into the session's target. The session's connection is reopened
/// on the new database after the swap, with the target's lock taken again.
pub fn restore_snapshot(
    session: &mut Session<'_>,
    manifest: &Manifest,
    request: RestoreRequest<'_>,
) -> Result<RestoreOutcome> {
    let (config, target) = (session.config, session.target);
    refuse_schema_member(target)?;
    let run_id = session.run_id().to_owned();
    let Session { db, recorder, .. } = session;
    let started = Instant::now();
    let staging = Staging::create(&target.url, &run_id)?;
    let mut plan = staging.plan(&run_id)?;
    let swap_event = |phase: &str, plan: &SwapPlan| EventKind::RestoreSwap {
        snapshot_id: manifest.id.clone(),
        phase: phase.into(),
        plan: plan.clone(),
        retry: request.retry.clone(),
    };
    recorder.emit(db, swap_event("staging", &plan))?;
    snapshot::restore_into(config, manifest, staging.url())?;
    crate::pause::point("restore-staged");
    let duration_ms = started.elapsed().as_millis() as u64;
    let differences = snapshot::compare(staging.url(), manifest)?;
    if !differences.is_empty() {
        drop(staging);
        let _ = recorder.emit(db, ended(manifest, Recovered::Undone, false));
        return Err(Error::Failed(format!(
            "the restored copy of snapshot {} differs from the snapshot's fingerprints, so it was not swapped in and the target is unchanged: {}",
            manifest.id,
            differences.join("; ")
        )));
    }
    staging.complete(&mut plan)?;
    recorder.emit(db, swap_event("swap", &plan))?;
    let rehydrated_runs = {
        let mut copy = Database::connect(staging.url(), Create::Never)?;
        let runs = rehydrate(
            &mut copy,
            db,
            &Journal::new(&config.snapshot_dir),
            &target.name,
            request.skip,
            &run_id,
        )?;
        (request.write_own)(&mut copy)?;
        // The events recorded so far go into the copy with the rows: from the swap on, the
        // ledger is the copy's.
        recorder.ledger_ready(&mut copy)?;
        runs
    };
    crate::pause::point("restore-swap");
    staging.swap(db, &plan, config.snapshot.keep_replaced)?;
    crate::pause::point("restore-swapped");
    // Nothing could connect to the target during the swap, so this takes the lock at once
    // (if another run got in first, it sees the finished restore and our remaining writes
    // are ours alone).
    let _ = session.relock();
    session.emit(ended(manifest, Recovered::Swapped, false))?;
    Ok(RestoreOutcome {
        rehydrated_runs,
        differences,
        duration_ms,
    })
}

fn ended(manifest: &Manifest, outcome: Recovered, recovered: bool) -> EventKind {
    EventKind::RestoreEnded {
        snapshot_id: manifest.id.clone(),
        outcome: outcome_name(outcome).into(),
        recovered,
    }
}

fn outcome_name(outcome: Recovered) -> &'static str {
    match outcome {
        Recovered::Swapped => "swapped",
        Recovered::Undone => "undone",
    }
}

/// A restore the journal shows begun and never ended: the process was killed.
struct Interrupted {
    run: RunId,
    snapshot_id: String,
    /// `staging`: killed while writing the copy; `swap`: killed during the swap.
    phase: String,
    plan: SwapPlan,
    retry: String,
}

/// The newest restore of `target` with a `restore.swap` line and no `restore.ended`.
fn interrupted_restore(journal: &Journal, target: &str) -> Result<Option<Interrupted>> {
    let mut open = None;
    // Only restore events matter: the rest of a long journal is not parsed.
    let restores = journal.read_lines_with(&["\"restore.swap\"", "\"restore.ended\""])?;
    for entry in restores.into_iter().filter(|e| e.target == target) {
        let Some(run) = entry.event.run_id.clone() else {
            continue; // a restore's events all name its run
        };
        match entry.event.kind {
            EventKind::RestoreSwap {
                snapshot_id,
                phase,
                plan,
                retry,
            } => {
                open = Some(Interrupted {
                    run,
                    snapshot_id,
                    phase,
                    plan,
                    retry,
                })
            }
            EventKind::RestoreEnded { .. }
                if open.as_ref().is_some_and(|o: &Interrupted| o.run == run) =>
            {
                open = None
            }
            _ => {}
        }
    }
    Ok(open)
}

/// What `status` says about an interrupted restore of `target`, if there is one (it only
/// reads: the next apply or rollback finishes it).
pub fn interrupted(config: &Config, target: &Target) -> Result<Option<String>> {
    let journal = Journal::new(&config.snapshot_dir);
    Ok(interrupted_restore(&journal, &target.name)?.map(|r| {
        if r.phase == "staging" {
            format!(
                "restore run {} of snapshot {} was interrupted while writing its copy beside the target: the target is as it was before it. The next `cargo dbsafe apply` or `cargo dbrollback` drops the unfinished copy; to restore, run again: {}",
                r.run, r.snapshot_id, r.retry
            )
        } else {
            format!(
                "restore run {} of snapshot {} was interrupted during its swap: the next `cargo dbsafe apply` or `cargo dbrollback` finishes or undoes it (run `{}` to restore)",
                r.run, r.snapshot_id, r.retry
            )
        }
    }))
}

/// Finishes or undoes a restore of `target` that the journal shows interrupted, and says
/// what happened and what to run. apply and rollback call this before they open the
/// target; it reads only the journal when nothing was interrupted.
pub fn finish_interrupted(config: &Config, target: &Target) -> Result<Option<String>> {
    let journal = Journal::new(&config.snapshot_dir);
    let Some(r) = interrupted_restore(&journal, &target.name)? else {
        return Ok(None);
    };
    let outcome = if r.phase == "staging" {
        // The swap never began: only the copy may be left over.
        snapshot::discard(&target.url, &r.plan)?;
        Recovered::Undone
    } else {
        snapshot::recover(&target.url, &r.plan, config.snapshot.keep_replaced)?
    };
    let notice = match outcome {
        Recovered::Undone => format!(
            "restore run {} of snapshot {} was interrupted before its swap: the target is as it was before it, and its unfinished copy was dropped. To restore, run again: {}",
            r.run, r.snapshot_id, r.retry
        ),
        Recovered::Swapped => {
            let mut db = Database::connect(&target.url, Create::Never)?;
            if let Some(row) = ledger::run(&mut db, &r.run)?
                && row.status == RunStatus::Running
            {
                ledger::finish_run(
                    &mut db.conn,
                    &r.run,
                    RunStatus::Succeeded,
                    &now(),
                    None,
                    None,
                )
                .map_err(|e| Error::db("finishing an interrupted restore's run", e))?;
            }
            format!(
                "restore run {} of snapshot {} was interrupted after its swap had committed: the target is the restored snapshot, and dbsafe finished tidying up",
                r.run, r.snapshot_id
            )
        }
    };
    journal.append(
        &target.name,
        &Event {
            run_id: Some(r.run.clone()),
            at: now(),
            operator: None,
            kind: EventKind::RestoreEnded {
                snapshot_id: r.snapshot_id.clone(),
                outcome: outcome_name(outcome).into(),
                recovered: true,
            },
        },
    )?;
    Ok(Some(notice))
}

/// [`finish_interrupted`], its notice shown as a preflight warning.
pub fn report_finished(
    config: &Config,
    target: &Target,
    sink: &mut dyn crate::event::EventSink,
) -> Result<()> {
    if let Some(message) = finish_interrupted(config, target)? {
        sink.emit(&Event {
            run_id: None,
            at: now(),
            operator: None,
            kind: EventKind::PreflightWarning { message },
        });
    }
    Ok(())
}

/// Writes back into the restored copy's ledger (`db`) the runs the restore rewinds, each
/// linked to `restored_by`: those in the live target's ledger exactly as they are there
/// (run, steps, events), then any the journal knows and neither ledger has, rebuilt from
/// their events and marked `restored`.
fn rehydrate(
    db: &mut Database,
    live: &mut Database,
    journal: &Journal,
    target: &str,
    skip: &[RunId],
    restored_by: &RunId,
) -> Result<Vec<RunId>> {
    ledger::ensure(db)?;
    let mut restored = if ledger::exists(live)? {
        ledger::copy_runs(live, db, skip, restored_by)?
    } else {
        Vec::new()
    };
    let known: BTreeSet<RunId> = ledger::runs(db, i64::MAX)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let entries: Vec<JournalEntry> = journal
        .read()?
        .into_iter()
        .filter(|e| e.target == target)
        .collect();
    let mut order: Vec<RunId> = Vec::new();
    for entry in &entries {
        if let Some(id) = &entry.event.run_id
            && !known.contains(id)
            && !skip.contains(id)
            && !order.contains(id)
        {
            order.push(id.clone());
        }
    }
    for id in order {
        let events: Vec<&Event> = entries
            .iter()
            .filter(|e| e.event.run_id.as_ref() == Some(&id))
            .map(|e| &e.event)
            .collect();
        let Some(mut row) = run_row_from(&id, target, &events) else {
            continue;
        };
        row.restored_by = Some(restored_by.clone());
        let write = |db: &mut Database| -> diesel::QueryResult<()> {
            ledger::insert_run(&mut db.conn, &row)?;
            for (seq, event) in events.iter().enumerate() {
                ledger::insert_event(&mut db.conn, seq as i32 + 1, event)?;
            }
            Ok(())
        };
        write(db).map_err(|e| Error::db("writing restored runs back into the ledger", e))?;
        restored.push(id);
    }
    Ok(restored)
}

/// Rebuilds a run row from its journal events (its `run.started` carries the provenance).
fn run_row_from(id: &RunId, target: &str, events: &[&Event]) -> Option<RunRow> {
    let first = events.first()?;
    let (kind, environment, host, tool_version, git_commit, git_dirty, snapshot_id, fleet_run) =
        events.iter().find_map(|e| match &e.kind {
            EventKind::RunStarted {
                kind,
                environment,
                host,
                tool_version,
                git_commit,
                git_dirty,
                snapshot_id,
                fleet_run,
                ..
            } => Some((
                *kind,
                environment.clone(),
                host.clone(),
                tool_version.clone(),
                git_commit.clone(),
                *git_dirty,
                snapshot_id.clone(),
                fleet_run.clone(),
            )),
            _ => None,
        })?;
    let error = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunFailed { error, .. } => Some(error.clone()),
        _ => None,
    });
    Some(RunRow {
        id: id.clone(),
        kind,
        target: target.to_owned(),
        environment,
        operator: first.operator.clone().unwrap_or_default(),
        host,
        tool_version,
        git_commit,
        git_dirty,
        started_at: first.at.clone(),
        finished_at: Some(events.last().map_or_else(now, |e| e.at.clone())),
        status: RunStatus::Restored,
        snapshot_id,
        bundle_hash: None,
        error,
        parent_run: None,
        restored_by: None,
        fleet_run,
    })
}
