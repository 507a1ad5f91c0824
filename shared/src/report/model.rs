//! The run report's model: what a person looks at after a run (timeline, locks,
//! verification, row counts, snapshot and the way back), built from the ledger's record of
//! the run and independent of how it is rendered.

use serde::Serialize;

use crate::event::{Event, EventKind};
use crate::ledger::{RunRow, StepRow};
use crate::runs::RunDetail;

/// One run, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's record (id, kind, target, status, operator, times, git, error, ...).
    pub run: RunRow,
    /// Wall time of the whole run, when it finished.
    pub duration_ms: Option<i64>,
    /// What happened in order, each a bar on the timeline.
    pub timeline: Vec<Bar>,
    /// Locks a rehearsal saw, per migration (empty when none were recorded).
    pub locks: Vec<LockSeen>,
    /// Verification results recorded in the run.
    pub checks: Vec<Check>,
    /// Row counts per table before and after the run (empty when none were recorded).
    pub rows: Vec<RowChange>,
    /// How to undo the run, if anything is left to undo.
    pub rollback: Rollback,
}

/// What a bar of the timeline stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BarKind {
    /// The snapshot taken before the migrations.
    Snapshot,
    /// A migration applied (`up.sql`).
    Up,
    /// A migration reverted (`down.sql`).
    Down,
    /// A seed run after the migrations.
    Seed,
}

/// One step of the run on the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    /// What it is.
    pub kind: BarKind,
    /// The migration's directory name, the seed's name, or the snapshot id.
    pub label: String,
    /// Its status as recorded (`applied`, `reverted`, `failed`, `started`, `created`, ...).
    pub status: String,
    /// When it started, in milliseconds after the timeline's start (the run's start, or
    /// the snapshot taken just before it).
    pub start_ms: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// How many times it was tried (more than 1: lock timeouts were retried).
    pub attempts: u32,
    /// Whether it failed (or was left unfinished).
    pub failed: bool,
    /// The error, if any.
    pub error: Option<String>,
}

impl Bar {
    /// Retries after the first attempt.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

/// A lock a migration's transaction held, as a rehearsal saw it.
#[derive(Debug, Clone, Serialize)]
pub struct LockSeen {
    /// The migration.
    pub migration: String,
    /// The lock (mode and relation).
    pub lock: String,
    /// Why it matters, when it does (an ACCESS EXCLUSIVE lock on a large table).
    pub warning: Option<String>,
}

/// One verification result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: a migration's `verify.sql` (its version) or an invariant.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was observed.
    pub message: String,
}

/// A table's row count before and after the run.
#[derive(Debug, Clone, Serialize)]
pub struct RowChange {
    /// The table.
    pub table: String,
    /// Rows before the run (None: the table did not exist or was not counted).
    pub before: Option<i64>,
    /// Rows after the run (None: the table is gone or was not counted).
    pub after: Option<i64>,
    /// Whether either count is the planner's estimate rather than a count.
    pub estimated: bool,
}

impl RowChange {
    /// After minus before, when both are known.
    pub fn delta(&self) -> Option<i64> {
        Some(self.after? - self.before?)
    }
}

/// How to undo the run.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    /// Commands that undo it, each with what it does; empty when nothing is left to undo.
    pub commands: Vec<RollbackCommand>,
    /// Why there is nothing to undo, or what to know first.
    pub note: Option<String>,
}

/// One exact command that rolls the run back.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackCommand {
    /// The command line.
    pub command: String,
    /// What it does.
    pub does: String,
}

impl RunReport {
    /// Builds the report of one run from its ledger record.
    pub fn from_detail(detail: &RunDetail) -> RunReport {
        let rows = detail
            .row_counts
            .iter()
            .map(|c| RowChange {
                table: c.table.clone(),
                before: c.before.map(|n| n as i64),
                after: c.after.map(|n| n as i64),
                estimated: c.estimated,
            })
            .collect();
        RunReport::new(&detail.run, &detail.steps, &detail.events).with_rows(rows)
    }

    /// Builds the report of a run from its row, steps and events; row counts and locks are
    /// added by [`RunReport::with_rows`] / [`RunReport::with_locks`] where recorded.
    pub fn new(run: &RunRow, steps: &[StepRow], events: &[Event]) -> RunReport {
        let run = run.clone();
        let start = millis(&run.started_at);
        let duration_ms = run
            .finished_at
            .as_deref()
            .and_then(millis)
            .zip(start)
            .map(|(end, start)| end - start);
        let mut timeline = snapshot_and_seed_bars(events, start);
        timeline.extend(steps.iter().map(|s| step_bar(s, start)));
        // The snapshot is taken before the run row is written: start the timeline at the
        // earliest bar.
        let origin = timeline
            .iter()
            .map(|b| b.start_ms)
            .min()
            .unwrap_or(0)
            .min(0);
        timeline.iter_mut().for_each(|b| b.start_ms -= origin);
        timeline.sort_by_key(|b| b.start_ms);
        RunReport {
            duration_ms,
            timeline,
            locks: Vec::new(),
            checks: checks(events),
            rows: Vec::new(),
            rollback: rollback(&run, steps),
            run,
        }
    }

    /// The row counts the run recorded, per table.
    pub fn with_rows(mut self, rows: Vec<RowChange>) -> RunReport {
        self.rows = rows;
        self
    }

    /// The locks a rehearsal of the run saw.
    pub fn with_locks(mut self, locks: Vec<LockSeen>) -> RunReport {
        self.locks = locks;
        self
    }

    /// The wall time the timeline spans (at least 1 ms): the run's, or its last bar's end.
    pub fn span_ms(&self) -> i64 {
        let bars = self
            .timeline
            .iter()
            .map(|b| b.start_ms + b.duration_ms)
            .max()
            .unwrap_or(0);
        self.duration_ms.unwrap_or(0).max(bars).max(1)
    }
}

fn step_bar(step: &StepRow, run_start: Option<i64>) -> Bar {
    let failed = step.status == "failed" || step.status == "started";
    Bar {
        kind: if step.direction == "down" {
            BarKind::Down
        } else {
            BarKind::Up
        },
        label: step.name.clone(),
        status: step.status.to_string(),
        start_ms: offset(&step.started_at, run_start),
        duration_ms: step.duration_ms.unwrap_or(0).max(0),
        attempts: u32::try_from(step.attempts).unwrap_or(1).max(1),
        failed,
        error: step.error.clone(),
    }
}

/// The snapshot and seeds, which have no step row: placed by their event's time (the end)
/// and duration.
fn snapshot_and_seed_bars(events: &[Event], run_start: Option<i64>) -> Vec<Bar> {
    let mut bars = Vec::new();
    for event in events {
        let (kind, label, duration) = match &event.kind {
            EventKind::SnapshotCreated {
                snapshot_id,
                duration_ms,
                ..
            } => (BarKind::Snapshot, snapshot_id.clone(), *duration_ms),
            EventKind::SeedApplied { name, duration_ms } => {
                (BarKind::Seed, name.clone(), *duration_ms)
            }
            _ => continue,
        };
        let duration = i64::try_from(duration).unwrap_or(i64::MAX);
        bars.push(Bar {
            kind,
            label,
            status: if kind == BarKind::Seed {
                "applied".into()
            } else {
                "created".into()
            },
            start_ms: offset(&event.at, run_start) - duration,
            duration_ms: duration,
            attempts: 1,
            failed: false,
            error: None,
        });
    }
    bars
}

/// The verification the run recorded: each `verify.failed`; a succeeded run whose
/// migrations had a `verify.sql` records them passed by having applied them.
fn checks(events: &[Event]) -> Vec<Check> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::VerifyFailed { version, message } => Some(Check {
                name: if version.is_empty() {
                    "after apply".to_owned()
                } else {
                    format!("verify.sql of {version}")
                },
                passed: false,
                message: message.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn rollback(run: &RunRow, steps: &[StepRow]) -> Rollback {
    let target = &run.target;
    let id = &run.id;
    let none = |note: String| Rollback {
        commands: Vec::new(),
        note: Some(note),
    };
    if let Some(dirty) = steps.iter().find(|s| s.status == "started") {
        return none(format!(
            "the target is dirty: migration {} ran without a transaction and may be partly applied. Inspect it, finish or undo it by hand, then record what you did: cargo dbsafe resolve {} --as applied|reverted --target {target}",
            dirty.name, dirty.version
        ));
    }
    if let Some(by) = &run.restored_by {
        return none(format!(
            "restore run {by} already rewound this run's changes"
        ));
    }
    match (run.kind.as_str(), run.status.as_str()) {
        (_, "running") => none("the run has not finished: see `cargo dbsafe status`".into()),
        ("apply", "reverted" | "restored") => none(format!(
            "nothing to roll back: the run was {} when it failed",
            run.status
        )),
        ("apply", _) => {
            let mut commands = vec![RollbackCommand {
                command: format!("cargo dbrollback {id} --target {target}"),
                does: "reverts the run's migrations with their down.sql, newest first".into(),
            }];
            if let Some(snapshot) = &run.snapshot_id {
                commands.push(RollbackCommand {
                    command: format!("cargo dbrollback {id} --restore --target {target}"),
                    does: format!(
                        "restores snapshot {snapshot}, taken before the run (after a safety snapshot of the current state)"
                    ),
                });
            }
            Rollback {
                commands,
                note: Some(format!(
                    "add --dry-run to see the plan first: cargo dbrollback {id} --dry-run --target {target}"
                )),
            }
        }
        ("restore", "succeeded") => Rollback {
            commands: vec![RollbackCommand {
                command: format!("cargo dbrollback {id} --target {target}"),
                does: "undoes the restore by restoring its safety snapshot".into(),
            }],
            note: None,
        },
        ("rollback", "succeeded") => none(format!(
            "a rollback is undone by applying again: cargo dbsafe apply --target {target}"
        )),
        _ => none("nothing to roll back".into()),
    }
}

/// Milliseconds after `run_start`, negative before it (0 when a time cannot be read).
fn offset(at: &str, run_start: Option<i64>) -> i64 {
    match (millis(at), run_start) {
        (Some(at), Some(start)) => at - start,
        _ => 0,
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as dbsafe writes it
/// (`2026-11-21T15:30:12.123Z`; the fraction is optional).
pub fn millis(at: &str) -> Option<i64> {
    let (date, time) = at.trim().strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.splitn(3, ':').map(str::parse::<i64>);
    let (hh, mm, ss) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    let ms: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + hh) * 60 + mm) * 60 + ss) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn reads_dbsafe_times() {
        assert_eq!(millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(millis("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(millis("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            millis("2026-11-21T15:30:12.123Z").zip(millis("2026-11-21T15:30:10.100Z")),
            Some((1_795_275_012_123, 1_795_275_010_100))
        );
        assert_eq!(millis("yesterday"), None);
    }
}
