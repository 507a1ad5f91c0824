//! `cargo dbsafe resolve VERSION --as applied|reverted`: after repairing a dirty target by
//! hand, the operator records what state the migration is in, and the ledger and diesel's
//! table are made to agree with it.

use diesel::prelude::*;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::identity;
use crate::journal::Journal;
use crate::ledger::{self, __diesel_schema_migrations, step_status};
use crate::lock;
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
    sink: &mut dyn EventSink,
) -> Result<()> {
    preflight::guard_protected(target, confirmation)?;
    let mut db = Database::connect(&target.url, Create::Never)?;
    identity::check(&mut db, target, &config.snapshot_dir, false)?;
    let context = RunContext::new(&config.root);
    let lock = lock::acquire_now(&mut db, &context.id, "resolving a step")?;
    let result = resolve_locked(config, target, &mut db, &context, version, state, sink);
    lock.release(&mut db);
    result
}

fn resolve_locked(
    config: &Config,
    target: &Target,
    db: &mut Database,
    context: &RunContext,
    version: &str,
    state: ResolvedState,
    sink: &mut dyn EventSink,
) -> Result<()> {
    let dirty = if ledger::exists(db)? {
        ledger::dirty_steps(db)?
    } else {
        Vec::new()
    };
    let Some(step) = dirty
        .iter()
        .find(|s| s.version == version || s.name == version)
    else {
        let known: Vec<&str> = dirty.iter().map(|s| s.version.as_str()).collect();
        return Err(Error::Usage(format!(
            "no dirty step for migration `{version}`; {}",
            if known.is_empty() {
                "the target is not dirty".to_owned()
            } else {
                format!("dirty: {}", known.join(", "))
            }
        )));
    };
    // The step's status says what the step did: a dirty `up` step resolved as applied
    // applied, one resolved as reverted failed; a dirty `down` step (a revert that did not
    // finish) the other way round.
    let down = step.direction == "down";
    let (status, word) = match state {
        ResolvedState::Applied if down => (step_status::FAILED, "applied"),
        ResolvedState::Applied => (step_status::APPLIED, "applied"),
        ResolvedState::Reverted if down => (step_status::REVERTED, "reverted"),
        ResolvedState::Reverted => (step_status::FAILED, "reverted"),
    };
    let mut resolved = step.clone();
    resolved.status = status.into();
    resolved.error = Some(format!(
        "resolved by {} as {word}: {}",
        context.operator,
        step.error.clone().unwrap_or_default()
    ));
    let event = Event {
        run_id: Some(step.run_id.clone()),
        at: now(),
        operator: Some(context.operator.clone()),
        kind: EventKind::StepResolved {
            version: step.version.clone(),
            state: word.into(),
        },
    };
    db.conn
        .transaction(|conn| {
            ledger::finish_step(conn, &resolved)?;
            let versions = __diesel_schema_migrations::table
                .filter(__diesel_schema_migrations::version.eq(&step.version));
            diesel::delete(versions).execute(conn)?;
            if state == ResolvedState::Applied {
                diesel::insert_into(__diesel_schema_migrations::table)
                    .values(__diesel_schema_migrations::version.eq(&step.version))
                    .execute(conn)?;
            }
            let seq = ledger::last_event_seq(conn, &step.run_id)? + 1;
            ledger::insert_event(conn, seq, &event)
        })
        .map_err(|e| Error::db("recording the resolution", e))?;
    sink.emit(&event);
    Journal::new(&config.snapshot_dir).append(&target.name, &event)
}
