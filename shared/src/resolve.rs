//! `cargo dbsafe resolve VERSION --as applied|reverted [--reason TEXT]`: after repairing a
//! dirty target by hand, or finding by drift that the schema matches an older version than
//! the migrations table says, the operator records what state the migration is in, and the
//! ledger and diesel's table are made to agree with it (a `step.resolved` event with the
//! operator and the reason; outside a dirty step, a `resolve` run of one step).

use diesel::prelude::*;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::ledger::{self, StepRow};
use crate::migrations::MigrationSet;
use crate::preflight::Confirmation;
use crate::run::{Direction, RunKind, RunStatus, StepStatus, now};
use crate::run_id::RunId;
use crate::session::{Opening, Session};
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
    let opening = Opening {
        wait_for_lock: false,
        ..Opening::new(RunKind::Resolve, confirmation)
    };
    let mut session = Session::open(config, target, opening, sink)?;
    let asked = Asked {
        version,
        state,
        reason,
    };
    resolve_locked(&mut session, &asked)
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

    fn event(&self, run_id: &RunId, version: &str, operator: &str) -> Event {
        Event {
            run_id: Some(run_id.clone()),
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

fn resolve_locked(session: &mut Session<'_>, asked: &Asked<'_>) -> Result<()> {
    let config = session.config;
    let context = session.recorder.context.clone();
    let db = &mut session.db;
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
        return resolve_version(session, asked, &dirty);
    };
    // The step's status says what the step did: a dirty `up` step resolved as applied
    // applied, one resolved as reverted failed; a dirty `down` step (a revert that did not
    // finish) the other way round.
    let down = step.direction == "down";
    let status = match state {
        ResolvedState::Applied if down => StepStatus::Failed,
        ResolvedState::Applied => StepStatus::Applied,
        ResolvedState::Reverted if down => StepStatus::Reverted,
        ResolvedState::Reverted => StepStatus::Failed,
    };
    let word = asked.word();
    let migration = crate::migrations::MigrationSet::load(&config.migrations_dir)
        .ok()
        .and_then(|set| set.get(&step.version).cloned());
    let mut resolved = step.clone();
    resolved.status = status;
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
    session.recorder.publish(&event)
}

/// A version that is not a dirty step: any migration on disk or applied. Records a
/// `resolve` run of one step (`up`/`applied` or `down`/`reverted`), so the ledger's newest
/// step for the version says what the operator found, and sets diesel's table to match.
fn resolve_version(session: &mut Session<'_>, asked: &Asked<'_>, dirty: &[StepRow]) -> Result<()> {
    let (config, target) = (session.config, session.target);
    let context = session.recorder.context.clone();
    let db = &mut session.db;
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
    // A run of one step, finished as it is written: one transaction records it all.
    let mut run = session
        .recorder
        .run_row(target, RunKind::Resolve, None, None);
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(finished.clone());
    let db = &mut session.db;
    let (direction, status) = match asked.state {
        ResolvedState::Applied => (Direction::Up, StepStatus::Applied),
        ResolvedState::Reverted => (Direction::Down, StepStatus::Reverted),
    };
    let step = StepRow {
        run_id: context.id.clone(),
        seq: 1,
        version: version.clone(),
        name: migration.map_or_else(|| version.clone(), |m| m.name.clone()),
        direction,
        status,
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
    session.recorder.publish(&event)
}
