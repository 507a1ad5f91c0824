//! Records a run as it happens: each event goes to the ledger (inside the migration's own
//! transaction where there is one), then to the local journal and the output sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use diesel::{Connection, QueryResult};

use crate::connection::{AnyConnection, Database};
use crate::error::Result;
use crate::event::{Event, EventKind, EventSink};
use crate::interrupt;
use crate::journal::Journal;
use crate::ledger::{self, RunRow, StepRow};
use crate::run::{RunContext, now};
use crate::run::{RunKind, RunStatus};
use crate::run_id::RunId;
use crate::target::{Backend, Target};

/// Writes one run's events everywhere they belong.
pub struct Recorder<'a> {
    /// The run's identity and provenance.
    pub context: RunContext,
    target: String,
    journal: Journal,
    sink: &'a mut dyn EventSink,
    /// The last event sequence number taken (shared with the Ctrl-C handler).
    next_seq: Arc<AtomicI32>,
    /// Events emitted before the ledger existed, written once it does.
    unwritten: Vec<(i32, Event)>,
    ledger_ready: bool,
}

impl<'a> Recorder<'a> {
    /// A recorder for a new run on `target`.
    pub fn new(
        context: RunContext,
        target: &str,
        journal: Journal,
        sink: &'a mut dyn EventSink,
    ) -> Recorder<'a> {
        Recorder {
            context,
            target: target.to_owned(),
            journal,
            sink,
            next_seq: Arc::new(AtomicI32::new(0)),
            unwritten: Vec::new(),
            ledger_ready: false,
        }
    }

    /// The ledger row of this run as it starts (`kind` apply, rollback or restore).
    pub fn run_row(
        &self,
        target: &Target,
        kind: RunKind,
        parent: Option<&RunId>,
        snapshot_id: Option<String>,
    ) -> RunRow {
        let context = &self.context;
        RunRow {
            id: context.id.clone(),
            kind,
            target: target.name.clone(),
            environment: target.environment.to_string(),
            operator: context.operator.clone(),
            host: context.host.clone(),
            tool_version: context.tool_version.clone(),
            git_commit: context.git_commit.clone(),
            git_dirty: context.git_dirty,
            started_at: now(),
            finished_at: None,
            status: RunStatus::Running,
            snapshot_id,
            bundle_hash: None,
            error: None,
            parent_run: parent.cloned(),
            restored_by: None,
            fleet_run: context.fleet_run.clone(),
        }
    }

    /// This run's `run.started` event: what it is about to do and its provenance, enough
    /// for the journal to rebuild the run's row after a restore.
    pub fn run_started(
        &self,
        target: &Target,
        kind: RunKind,
        pending: Vec<String>,
        snapshot_id: Option<String>,
    ) -> EventKind {
        let context = &self.context;
        EventKind::RunStarted {
            kind,
            target: target.name.clone(),
            environment: target.environment.to_string(),
            url: target.url.redacted(),
            pending,
            host: context.host.clone(),
            tool_version: context.tool_version.clone(),
            git_commit: context.git_commit.clone(),
            git_dirty: context.git_dirty,
            snapshot_id,
            fleet_run: context.fleet_run.clone(),
        }
    }

    /// Marks this run succeeded in the ledger and emits `run.succeeded` with the number of
    /// migrations it applied or reverted and its wall time since `started`: the row and the
    /// event in one ledger transaction.
    pub fn succeed(
        &mut self,
        db: &mut Database,
        bundle_hash: Option<&str>,
        migrations: usize,
        started: std::time::Instant,
    ) -> Result<()> {
        interrupt::halt_if_interrupted();
        let event = self.event(EventKind::RunSucceeded {
            applied: migrations,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        let seq = self.seq();
        let id = self.context.id.clone();
        let events = self.ledger_ready.then(|| self.pending_with(seq, &event));
        db.conn
            .transaction(|conn| {
                ledger::finish_run(conn, &id, RunStatus::Succeeded, &now(), bundle_hash, None)?;
                events.map_or(Ok(()), |events| insert_events(conn, &events))
            })
            .map_err(|e| crate::Error::db("writing dbsafe_runs", e))?;
        self.settle(seq, &event);
        self.publish(&event)
    }

    /// Writes the run's ledger row, the events emitted before it and `kind`'s event
    /// (`run.started`) in one ledger transaction; from then on events go to the ledger
    /// too (see [`Recorder::ledger_ready`]).
    pub fn start(&mut self, db: &mut Database, row: &RunRow, kind: EventKind) -> Result<()> {
        let event = self.event(kind);
        let seq = self.seq();
        let events = self.pending_with(seq, &event);
        db.conn
            .transaction(|conn| {
                ledger::insert_run(conn, row)?;
                insert_events(conn, &events)
            })
            .map_err(|e| crate::Error::db("writing dbsafe_runs", e))?;
        self.unwritten.clear();
        self.ledger_ready(db)?;
        self.publish(&event)
    }

    /// The events not yet in the ledger, then `event` as `seq`.
    fn pending_with<'e>(&'e self, seq: i32, event: &'e Event) -> Vec<(i32, &'e Event)> {
        let mut events: Vec<(i32, &Event)> = self.unwritten.iter().map(|(s, e)| (*s, e)).collect();
        events.push((seq, event));
        events
    }

    /// After a ledger transaction that wrote the pending events (when the ledger is
    /// ready): they are written; else `event` waits with them.
    fn settle(&mut self, seq: i32, event: &Event) {
        if self.ledger_ready {
            self.unwritten.clear();
        } else {
            self.unwritten.push((seq, event.clone()));
        }
    }

    /// An event of this run, stamped now.
    pub fn event(&self, kind: EventKind) -> Event {
        Event {
            run_id: Some(self.context.id.clone()),
            at: now(),
            operator: Some(self.context.operator.clone()),
            kind,
        }
    }

    fn seq(&mut self) -> i32 {
        self.next_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// From now on events go to the ledger too; writes the ones emitted before. The run's
    /// row exists: from now on Ctrl-C marks it failed (interrupted).
    pub fn ledger_ready(&mut self, db: &mut Database) -> Result<()> {
        for (seq, event) in std::mem::take(&mut self.unwritten) {
            ledger::insert_event(&mut db.conn, seq, &event)
                .map_err(|e| crate::Error::db("writing dbsafe_events", e))?;
        }
        self.ledger_ready = true;
        interrupt::run_started(interrupt::ActiveRun {
            url: db.url().clone(),
            run_id: self.context.id.clone(),
            target: self.target.clone(),
            operator: self.context.operator.clone(),
            journal: self.journal.clone(),
            seq: Arc::clone(&self.next_seq),
        });
        Ok(())
    }

    /// Emits an event now: ledger (when ready; a failed ledger write is not fatal, the
    /// journal still has it), journal, sink.
    pub fn emit(&mut self, db: &mut Database, kind: EventKind) -> Result<()> {
        let event = self.event(kind);
        let seq = self.seq();
        if self.ledger_ready {
            for (seq, event) in std::mem::take(&mut self.unwritten) {
                let _ = ledger::insert_event(&mut db.conn, seq, &event);
            }
            let _ = ledger::insert_event(&mut db.conn, seq, &event);
        } else {
            self.unwritten.push((seq, event.clone()));
        }
        self.publish(&event)
    }

    /// Inside a step's transaction: once Ctrl-C was pressed, the step must not commit.
    fn refuse_if_interrupted() -> QueryResult<()> {
        if interrupt::interrupted() {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        Ok(())
    }

    /// Shows an event on the output only, now: for what happens before the run exists
    /// (waiting for the lock). Record it with [`Recorder::record_shown`] once it does.
    pub fn show(&mut self, event: &Event) {
        self.sink.emit(event);
    }

    /// Records an event that [`Recorder::show`] already showed: in the journal now, in the
    /// ledger with the events emitted before the ledger was ready.
    pub fn record_shown(&mut self, event: Event) -> Result<()> {
        debug_assert!(
            !self.ledger_ready,
            "record_shown is for events before the run's ledger rows"
        );
        let seq = self.seq();
        self.journal.append(&self.target, &event)?;
        self.unwritten.push((seq, event));
        Ok(())
    }

    /// Shows and journals an event now, and writes it into the ledger with the next
    /// ledger write (inside the next migration's own transaction), which saves a commit
    /// per migration.
    pub fn emit_deferred(&mut self, kind: EventKind) -> Result<()> {
        let event = self.event(kind);
        let seq = self.seq();
        self.unwritten.push((seq, event.clone()));
        self.publish(&event)
    }

    /// Writes an event, and any deferred ones, into the ledger inside the caller's
    /// transaction; once it committed, call [`Recorder::committed`] and publish the event.
    pub fn write_in(&mut self, conn: &mut AnyConnection, kind: EventKind) -> QueryResult<Event> {
        Self::refuse_if_interrupted()?;
        let event = self.event(kind);
        let seq = self.seq();
        insert_events(conn, &self.pending_with(seq, &event))?;
        Ok(event)
    }

    /// Inside a step's open transaction (begun by a plain `BEGIN`): the step row, the
    /// deferred events and `kind`'s event, then `COMMIT`, in one batch: the migration's
    /// ledger rows and its commit cost one round trip. Once it returns, call
    /// [`Recorder::committed`] and publish the event.
    pub fn write_step_and_commit(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        step: &StepRow,
        kind: EventKind,
    ) -> QueryResult<Event> {
        use diesel::connection::SimpleConnection;
        Self::refuse_if_interrupted()?;
        let event = self.event(kind);
        let seq = self.seq();
        let events = self.pending_with(seq, &event);
        let mut batch = ledger::step_and_events_sql(backend, step, &events);
        batch.push_str("COMMIT");
        conn.batch_execute(&batch)?;
        Ok(event)
    }

    /// The transaction that [`Recorder::write_in`] wrote into committed: the deferred
    /// events are in the ledger now.
    pub fn committed(&mut self) {
        self.unwritten.clear();
    }

    /// Sends an already recorded event to the journal and the sink. Once Ctrl-C was
    /// pressed, the run goes no further than this event.
    pub fn publish(&mut self, event: &Event) -> Result<()> {
        self.sink.emit(event);
        let written = self.journal.append(&self.target, event);
        interrupt::halt_if_interrupted();
        written
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        interrupt::run_ended(&self.context.id);
    }
}

/// Inserts events into the ledger inside the caller's transaction.
fn insert_events(conn: &mut AnyConnection, events: &[(i32, &Event)]) -> QueryResult<()> {
    for (seq, event) in events {
        ledger::insert_event(conn, *seq, event)?;
    }
    Ok(())
}
