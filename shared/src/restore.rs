//! Restoring a target to a snapshot, shared by apply's `restore` failure policy and
//! `cargo dbrollback --restore`: restore the files, write the runs the restore rewound
//! back into the ledger from the journal (marked `restored`), then prove the result by
//! comparing fingerprints with the manifest.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::journal::{Journal, JournalEntry};
use crate::ledger::{self, RunRow, run_status};
use crate::run::now;
use crate::snapshot::{self, Manifest};
use crate::target::Target;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    /// Runs written back into the ledger from the journal.
    pub rehydrated_runs: Vec<String>,
    /// Differences between the restored database and the manifest (empty: identical).
    pub differences: Vec<String>,
    /// Wall time of the restore itself.
    pub duration_ms: u64,
}

/// Restores `manifest` into the target. The caller's connections to the target must be
/// reopened afterwards (SQLite's file is replaced).
pub fn restore_snapshot(
    config: &Config,
    target: &Target,
    manifest: &Manifest,
) -> Result<RestoreOutcome> {
    restore_snapshot_except(config, target, manifest, &[])
}

/// [`restore_snapshot`], leaving the runs in `skip` out of the ledger (the restore run
/// itself, which records its own row afterwards).
pub fn restore_snapshot_except(
    config: &Config,
    target: &Target,
    manifest: &Manifest,
    skip: &[String],
) -> Result<RestoreOutcome> {
    let started = Instant::now();
    snapshot::restore_into(config, manifest, &target.url)?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut db = Database::connect(&target.url, Create::Never)?;
    let differences = snapshot::compare(&target.url, manifest)?;
    let rehydrated_runs = rehydrate(
        &mut db,
        &Journal::new(&config.snapshot_dir),
        &target.name,
        skip,
    )?;
    Ok(RestoreOutcome {
        rehydrated_runs,
        differences,
        duration_ms,
    })
}

/// Writes every run of `target` that the journal knows and the ledger no longer has back
/// into the ledger, with its events, marked `restored`.
pub fn rehydrate(
    db: &mut Database,
    journal: &Journal,
    target: &str,
    skip: &[String],
) -> Result<Vec<String>> {
    ledger::ensure(db)?;
    let known: BTreeSet<String> = ledger::runs(db, i64::MAX)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let entries: Vec<JournalEntry> = journal
        .read()?
        .into_iter()
        .filter(|e| e.target == target)
        .collect();
    let mut order: Vec<String> = Vec::new();
    for entry in &entries {
        if let Some(id) = &entry.event.run_id
            && !known.contains(id)
            && !skip.contains(id)
            && !order.contains(id)
        {
            order.push(id.clone());
        }
    }
    let mut restored = Vec::new();
    for id in order {
        let events: Vec<&Event> = entries
            .iter()
            .filter(|e| e.event.run_id.as_deref() == Some(&id))
            .map(|e| &e.event)
            .collect();
        let Some(row) = run_row_from(&id, target, &events) else {
            continue;
        };
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
fn run_row_from(id: &str, target: &str, events: &[&Event]) -> Option<RunRow> {
    let first = events.first()?;
    let (kind, environment, host, tool_version, git_commit, git_dirty, snapshot_id) =
        events.iter().find_map(|e| match &e.kind {
            EventKind::RunStarted {
                kind,
                environment,
                host,
                tool_version,
                git_commit,
                git_dirty,
                snapshot_id,
                ..
            } => Some((
                kind.clone(),
                environment.clone(),
                host.clone(),
                tool_version.clone(),
                git_commit.clone(),
                *git_dirty,
                snapshot_id.clone(),
            )),
            _ => None,
        })?;
    let error = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunFailed { error, .. } => Some(error.clone()),
        _ => None,
    });
    Some(RunRow {
        id: id.to_owned(),
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
        status: run_status::RESTORED.into(),
        snapshot_id,
        bundle_hash: None,
        error,
        parent_run: None,
    })
}
