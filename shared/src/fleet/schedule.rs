//! Scheduling a fleet run: a canary wave first, then the rest with bounded concurrency on
//! worker threads, no new member started once `max-failures` members failed (or a canary
//! failed). Each member's job is one of the per-target functions (apply, rollback, verify,
//! status); this module only decides when each runs.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::members::Member;
use crate::config::Canary;
use crate::error::{Error, Result, Severity};
use crate::run_id::RunId;

/// What became of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberStatus {
    /// The job succeeded.
    Succeeded,
    /// Nothing to do: the member already is where the run takes it.
    UpToDate,
    /// The job ran and failed (its own failure policy acted).
    Failed,
    /// A guard refused the member (identity changed, dirty, lock held, protected).
    Refused,
    /// The member's server did not answer.
    Unreachable,
    /// A failure that could not be undone: the member needs attention.
    NeedsAttention,
    /// Not started: the run stopped scheduling (max-failures, or a canary failed).
    Skipped,
}

impl MemberStatus {
    /// Whether this counts as a failure of the fleet run.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            MemberStatus::Succeeded | MemberStatus::UpToDate | MemberStatus::Skipped
        )
    }

    /// The status of a member whose job returned `error`.
    pub fn of_error(error: &Error) -> MemberStatus {
        match (error, error.severity()) {
            (Error::Connect { .. }, _) => MemberStatus::Unreachable,
            (_, Severity::Refused) => MemberStatus::Refused,
            (_, Severity::Attention) => MemberStatus::NeedsAttention,
            _ => MemberStatus::Failed,
        }
    }

    /// As written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Succeeded => "succeeded",
            MemberStatus::UpToDate => "up-to-date",
            MemberStatus::Failed => "failed",
            MemberStatus::Refused => "refused",
            MemberStatus::Unreachable => "unreachable",
            MemberStatus::NeedsAttention => "needs-attention",
            MemberStatus::Skipped => "skipped",
        }
    }
}

/// What a member's job reports when it returns normally.
#[derive(Debug, Clone, Default)]
pub struct JobDone {
    /// The member's run, if one was recorded.
    pub run_id: Option<RunId>,
    /// A short description (`3 migration(s) applied`).
    pub detail: String,
    /// Whether there was nothing to do.
    pub up_to_date: bool,
    /// Whether the job found problems without an error (verify: a check failed).
    pub failed: bool,
}

/// One member's outcome in a fleet run.
#[derive(Debug, Clone, Serialize)]
pub struct MemberOutcome {
    /// Member name.
    pub member: String,
    /// `canary` or `rest`.
    pub wave: String,
    /// What became of it.
    pub status: MemberStatus,
    /// The member's own run, if one was recorded.
    pub run_id: Option<RunId>,
    /// What was done, or the error.
    pub detail: String,
    /// Wall time.
    pub duration_ms: u64,
}

/// How members are scheduled.
#[derive(Debug, Clone)]
pub struct Waves {
    /// The canary wave, indexes into the members.
    pub canary: Vec<usize>,
    /// The rest.
    pub rest: Vec<usize>,
    /// Members at once in the second wave.
    pub concurrency: usize,
    /// Failures after which no new member starts.
    pub max_failures: usize,
}

impl Waves {
    /// The waves of `members` as the fleet's `canary` says.
    pub fn new(
        members: &[Member],
        canary: &Canary,
        concurrency: u32,
        max_failures: u32,
    ) -> Result<Waves> {
        let canary: Vec<usize> = match canary {
            Canary::Count(n) => (0..members.len().min(*n as usize)).collect(),
            Canary::Members(names) => {
                let mut indexes = Vec::new();
                for name in names {
                    match members.iter().position(|m| &m.name == name) {
                        Some(index) => indexes.push(index),
                        None => {
                            return Err(Error::Usage(format!(
                                "canary `{name}` is not a member of this fleet (or not in this --partition): name members as `cargo dbsafe status --fleet NAME` lists them"
                            )));
                        }
                    }
                }
                indexes
            }
        };
        let rest = (0..members.len()).filter(|i| !canary.contains(i)).collect();
        Ok(Waves {
            canary,
            rest,
            concurrency: concurrency.max(1) as usize,
            max_failures: max_failures.max(1) as usize,
        })
    }

    /// One wave of everything, `concurrency` at once, never stopping (status, plan).
    pub fn all(count: usize, concurrency: u32) -> Waves {
        Waves {
            canary: Vec::new(),
            rest: (0..count).collect(),
            concurrency: concurrency.max(1) as usize,
            max_failures: usize::MAX,
        }
    }
}

/// Where a fleet run is, for a progress display.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// `canary` or `rest`.
    pub wave: String,
    /// Members finished (any status but skipped).
    pub done: usize,
    /// Of which failed.
    pub failed: usize,
    /// Members running now.
    pub running: usize,
    /// Members in the run.
    pub total: usize,
}

struct State {
    next: usize,
    failures: usize,
    stop: bool,
    progress: Progress,
    outcomes: Vec<Option<MemberOutcome>>,
}

/// Runs `job` for each member, wave by wave; returns every member's outcome in member
/// order (members never started are `skipped`). `on_change` sees the progress after each
/// start and finish; `on_outcome` each finished member.
pub fn run<J>(
    members: &[Member],
    waves: &Waves,
    job: J,
    on_change: &(dyn Fn(&Progress) + Sync),
    on_outcome: &(dyn Fn(&MemberOutcome) + Sync),
) -> Vec<MemberOutcome>
where
    J: Fn(&Member) -> Result<JobDone> + Sync,
{
    let pool = Pool {
        members,
        waves,
        job,
        on_change,
        on_outcome,
        state: Mutex::new(State {
            next: 0,
            failures: 0,
            stop: false,
            progress: Progress {
                total: members.len(),
                ..Progress::default()
            },
            outcomes: vec![None; members.len()],
        }),
    };
    for (name, wave) in [("canary", &waves.canary), ("rest", &waves.rest)] {
        pool.wave(name, wave);
    }
    let outcomes = pool
        .state
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .outcomes;
    outcomes
        .into_iter()
        .zip(members)
        .enumerate()
        .map(|(i, (outcome, member))| {
            outcome.unwrap_or_else(|| MemberOutcome {
                member: member.name.clone(),
                wave: if waves.canary.contains(&i) {
                    "canary"
                } else {
                    "rest"
                }
                .into(),
                status: MemberStatus::Skipped,
                run_id: None,
                detail: "not started: the fleet run stopped after its failures".into(),
                duration_ms: 0,
            })
        })
        .collect()
}

/// The workers' shared view of a fleet run.
struct Pool<'a, J> {
    members: &'a [Member],
    waves: &'a Waves,
    job: J,
    on_change: &'a (dyn Fn(&Progress) + Sync),
    on_outcome: &'a (dyn Fn(&MemberOutcome) + Sync),
    state: Mutex<State>,
}

impl<J> Pool<'_, J>
where
    J: Fn(&Member) -> Result<JobDone> + Sync,
{
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one wave on up to `concurrency` worker threads.
    fn wave(&self, name: &str, wave: &[usize]) {
        {
            let mut s = self.lock();
            if s.stop || wave.is_empty() {
                return;
            }
            s.next = 0;
            s.progress.wave = name.to_owned();
        }
        std::thread::scope(|scope| {
            for _ in 0..self.waves.concurrency.min(wave.len()) {
                scope.spawn(|| while self.next_member(name, wave) {});
            }
        });
        // A failed canary stops the run: that is what the canary is for.
        let mut s = self.lock();
        if name == "canary" && s.failures > 0 {
            s.stop = true;
        }
    }

    /// Takes the wave's next member and runs its job; false when nothing more may start.
    fn next_member(&self, wave_name: &str, wave: &[usize]) -> bool {
        let index = {
            let mut s = self.lock();
            if s.stop || s.failures >= self.waves.max_failures || s.next >= wave.len() {
                return false;
            }
            s.next += 1;
            s.progress.running += 1;
            (self.on_change)(&s.progress);
            wave[s.next - 1]
        };
        let member = &self.members[index];
        let started = Instant::now();
        let (status, run_id, detail) = match (self.job)(member) {
            Ok(done) if done.failed => (MemberStatus::Failed, done.run_id, done.detail),
            Ok(done) if done.up_to_date => (MemberStatus::UpToDate, done.run_id, done.detail),
            Ok(done) => (MemberStatus::Succeeded, done.run_id, done.detail),
            Err(e) => (
                MemberStatus::of_error(&e),
                run_id_in(&e.to_string()),
                e.to_string(),
            ),
        };
        let outcome = MemberOutcome {
            member: member.name.clone(),
            wave: wave_name.to_owned(),
            status,
            run_id,
            detail,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let mut s = self.lock();
        s.progress.running -= 1;
        s.progress.done += 1;
        if status.is_failure() {
            s.failures += 1;
            s.progress.failed += 1;
        }
        (self.on_outcome)(&outcome);
        (self.on_change)(&s.progress);
        s.outcomes[index] = Some(outcome);
        true
    }
}

/// The first run id an error message names (`run 20261121T153012Z-7f3a ...`), if any.
fn run_id_in(message: &str) -> Option<RunId> {
    message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .find_map(RunId::parse_opt)
}
