//! `cargo dbsafe resolve VERSION --as applied|reverted [--reason TEXT]`: after repairing a
//! dirty target by hand, or finding by drift that the schema matches an older version than
//! the migrations table says, the operator records what state the migration is in, and the
//! ledger and diesel's table are made to agree with it (a `step.resolved` event with the
//! operator and the reason; outside a dirty step, a `resolve` run of one step).

use diesel::prelude::*;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::identity;
use crate::journal::Journal;
use crate::ledger::{self, RunRow, StepRow, run_status, step_status};
use crate::lock;
use crate::migrations::MigrationSet;
use crate::preflight::{self, Confirmation};
use crate::run::{RunContext, now};
use crate::target::Target;

/// What the operator says the migration's state is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedState {
    /// The migration's changes are all in place.
    Applied,
    /// None of the migration's changes remain.
    Reverted,
}

/// Marks the dirty step of `version` resolved: like apply, only on a protected target
/// named and confirmed, on the database the target is bound to, and under the target's
/// lock, which it refuses to wait for (a run holding it may still be writing that step).
pub fn resolve(
    config: &Config,
    target: &Target,
    version: &str,
    state: ResolvedState,
    confirmation: Confirmation,
    reason: Option<&str>,
    sink: &mut dyn EventSink,
) -> Result<()> {
    preflight::guard_protected(target, confirmation)?;
    let mut db = Database::connect(&target.url, Create::Never)?;
    identity::check(&mut db, target, &config.snapshot_dir, false)?;
    let context = RunContext::new(&config.root);
    let lock = lock::acquire_now(&mut db, &context.id, "resolving a step")?;
    let asked = Asked {
        version,
        state,
        reason,
    };
    let result = resolve_locked(config, target, &mut db, &context, &asked, sink);
    lock.release(&mut db);
    result
}

/// What the operator asked to record.
struct Asked<'a> {
    version: &'a str,
    state: ResolvedState,
    reason: Option<&'a str>,
}

impl Asked<'_> {
    fn word(&self) -> &'static str {
        match self.state {
            ResolvedState::Applied => "applied",
            ResolvedState::Reverted => "reverted",
        }
    }

    fn event(&self, run_id: &str, version: &str, operator: &str) -> Event {
        Event {
            run_id: Some(run_id.to_owned()),
            at: now(),
            operator: Some(operator.to_owned()),
            kind: EventKind::StepResolved {
                version: version.to_owned(),
                state: self.word().into(),
                reason: self.reason.map(str::to_owned),
            },
        }
    }
}

/// Makes diesel's table say `version` is applied or not, in `conn`'s transaction.
/// Makes the layout's history table (diesel's, sqlx's; none for plain SQL files) say what
/// the operator found.
fn set_history_state(
    conn: &mut crate::connection::AnyConnection,
    version: &str,
    migration: Option<&crate::migrations::Migration>,
    state: ResolvedState,
) -> QueryResult<()> {
    crate::layout::record_resolved(conn, version, migration, state == ResolvedState::Applied)
}

fn resolve_locked(
    config: &Config,
    target: &Target,
    db: &mut Database,
    context: &RunContext,
    asked: &Asked<'_>,
    sink: &mut dyn EventSink,
) -> Result<()> {
    let (version, state) = (asked.version, asked.state);
    let dirty = if ledger::exists(db)? {
        ledger::dirty_steps(db)?
    } else {
        // Only sqlx's own dirty rows can be there; recording their resolution needs the ledger.
        let mut dirty = Vec::new();
        ledger::layout_dirty_steps(db, &mut dirty)?;
        if !dirty.is_empty() {
            ledger::ensure(db)?;
        }
        dirty
    };
    let Some(step) = dirty
        .iter()
        .find(|s| s.version == version || s.name == version)
    else {
        return resolve_version(config, target, db, context, asked, &dirty, sink);
    };
    // The step's status says what the step did: a dirty `up` step resolved as applied
    // applied, one resolved as reverted failed; a dirty `down` step (a revert that did not
    // finish) the other way round.
    let down = step.direction == "down";
    let status = match state {
        ResolvedState::Applied if down => step_status::FAILED,
        ResolvedState::Applied => step_status::APPLIED,
        ResolvedState::Reverted if down => step_status::REVERTED,
        ResolvedState::Reverted => step_status::FAILED,
    };
    let word = asked.word();
    let migration = crate::migrations::MigrationSet::load(&config.migrations_dir)
        .ok()
        .and_then(|set| set.get(&step.version).cloned());
    let mut resolved = step.clone();
    resolved.status = status.into();
    resolved.error = Some(format!(
        "resolved by {} as {word}{}: {}",
        context.operator,
        asked.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
        step.error.clone().unwrap_or_default()
    ));
    let event = asked.event(&step.run_id, &step.version, &context.operator);
    db.conn
        .transaction(|conn| {
            ledger::finish_step(conn, &resolved)?;
            set_history_state(conn, &step.version, migration.as_ref(), state)?;
            let seq = ledger::last_event_seq(conn, &step.run_id)? + 1;
            ledger::insert_event(conn, seq, &event)
        })
        .map_err(|e| Error::db("recording the resolution", e))?;
    sink.emit(&event);
    Journal::new(&config.snapshot_dir).append(&target.name, &event)
}

/// A version that is not a dirty step: any migration on disk or applied. Records a
/// `resolve` run of one step (`up`/`applied` or `down`/`reverted`), so the ledger's newest
/// step for the version says what the operator found, and sets diesel's table to match.
fn resolve_version(
    config: &Config,
    target: &Target,
    db: &mut Database,
    context: &RunContext,
    asked: &Asked<'_>,
    dirty: &[StepRow],
    sink: &mut dyn EventSink,
) -> Result<()> {
    let set = MigrationSet::load(&config.migrations_dir)?;
    let applied = ledger::diesel_applied(db)?;
    let migration = set
        .migrations
        .iter()
        .find(|m| m.version == asked.version || m.name == asked.version);
    let version = match migration {
        Some(m) => m.version.clone(),
        None if applied.iter().any(|v| v == asked.version) => asked.version.to_owned(),
        None => {
            return Err(Error::Usage(format!(
                "no migration `{}` in {} nor in __diesel_schema_migrations; {}",
                asked.version,
                set.dir.display(),
                if dirty.is_empty() {
                    "give the version of an applied or pending migration (cargo dbsafe status lists them)".to_owned()
                } else {
                    let known: Vec<&str> = dirty.iter().map(|s| s.version.as_str()).collect();
                    format!("dirty: {}", known.join(", "))
                }
            )));
        }
    };
    ledger::ensure(db)?;
    let finished = now();
    let word = asked.word();
    let note = format!(
        "resolved by {} as {word}{}",
        context.operator,
        asked.reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    let run = RunRow {
        id: context.id.clone(),
        kind: "resolve".into(),
        target: target.name.clone(),
        environment: target.environment.to_string(),
        operator: context.operator.clone(),
        host: context.host.clone(),
        tool_version: context.tool_version.clone(),
        git_commit: context.git_commit.clone(),
        git_dirty: context.git_dirty,
        started_at: finished.clone(),
        finished_at: Some(finished.clone()),
        status: run_status::SUCCEEDED.into(),
        snapshot_id: None,
        bundle_hash: None,
        error: None,
        parent_run: None,
        restored_by: None,
        fleet_run: None,
    };
    let (direction, status) = match asked.state {
        ResolvedState::Applied => ("up", step_status::APPLIED),
        ResolvedState::Reverted => ("down", step_status::REVERTED),
    };
    let step = StepRow {
        run_id: context.id.clone(),
        seq: 1,
        version: version.clone(),
        name: migration.map_or_else(|| version.clone(), |m| m.name.clone()),
        direction: direction.into(),
        status: status.into(),
        transactional: true,
        up_checksum: migration.map(|m| m.up_checksum.clone()).unwrap_or_default(),
        down_checksum: migration.and_then(|m| m.down_checksum.clone()),
        started_at: finished.clone(),
        finished_at: Some(finished),
        duration_ms: Some(0),
        attempts: 1,
        error: Some(note),
    };
    let event = asked.event(&context.id, &version, &context.operator);
    crate::layout::ensure_history(&mut db.conn)
        .map_err(|e| Error::db("creating the migrations history table", e))?;
    db.conn
        .transaction(|conn| {
            ledger::insert_run(conn, &run)?;
            ledger::insert_step(conn, &step)?;
            set_history_state(conn, &version, migration, asked.state)?;
            ledger::insert_event(conn, 1, &event)
        })
        .map_err(|e| Error::db("recording the resolution", e))?;
    sink.emit(&event);
    Journal::new(&config.snapshot_dir).append(&target.name, &event)
}
