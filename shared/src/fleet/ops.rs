//! The fleet commands: each resolves the members, schedules a job per member and records the
//! fleet run. A job calls the per-target function (apply, rollback, verify, plan) as the
//! single-target command would.

use diesel::prelude::*;
use serde_json::json;

use super::FleetReport;
use super::journal::FleetJournal;
use super::members::{self, Member, Members, Partition};
use super::schedule::{self, JobDone, MemberOutcome, Progress, Waves};
use crate::apply::ApplyOptions;
use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::NoEvents;
use crate::ledger::{self, dbsafe_runs};
use crate::migrations::MigrationSet;
use crate::preflight::Confirmation;
use crate::rollback::RollbackOptions;
use crate::run::RunStatus;
use crate::run_id::RunId;
use crate::verify::{CheckResult, VerifyOptions};

/// What the operator asked of a fleet command.
pub struct FleetRequest<'a> {
    /// The fleet's name (`--fleet`).
    pub fleet: String,
    /// This job's share (`--partition K/N`).
    pub partition: Option<Partition>,
    /// The fleet run id to record under, as given (`--fleet-run`, `DBSAFE_FLEET_RUN`):
    /// checked by [`FleetRequest::fleet_run`] when a fleet run starts; a new one when `None`.
    pub fleet_run: Option<String>,
    /// `--yes`: protected members are confirmed.
    pub yes: bool,
    /// Called with the progress after each member starts and finishes.
    pub on_progress: &'a (dyn Fn(&Progress) + Sync),
    /// Called with each member's outcome as it finishes.
    pub on_outcome: &'a (dyn Fn(&MemberOutcome) + Sync),
}

impl<'a> FleetRequest<'a> {
    fn members(&self, config: &Config) -> Result<Members> {
        members::resolve(config, &self.fleet, self.partition)
    }

    /// Refuses before anything is touched when a protected member is not confirmed.
    fn guard_protected(&self, members: &Members, action: &str) -> Result<Confirmation> {
        if !self.yes
            && let Some(member) = members.members.iter().find(|m| m.target.protected)
        {
            return Err(crate::error::Reason::ProtectedTarget.refuse(format!(
                "fleet `{}` has protected members ({} is {}): confirm that you mean to {action} them with --yes; nothing touched",
                self.fleet, member.name, member.target.environment
            )));
        }
        Ok(Confirmation {
            explicit_target: true,
            confirmed: self.yes,
        })
    }

    /// The id of the fleet run this request starts: the one given, checked, or a new one.
    fn fleet_run(&self) -> Result<RunId> {
        match &self.fleet_run {
            Some(id) => RunId::parse(id, "--fleet-run"),
            None => Ok(RunId::new()),
        }
    }

    /// Runs `job` over the members in waves, recording the fleet run `fleet_run` in the
    /// fleet journal.
    fn record<J>(
        &self,
        config: &Config,
        members: &Members,
        command: &str,
        fleet_run: &RunId,
        job: J,
    ) -> Result<FleetReport>
    where
        J: Fn(&Member) -> Result<JobDone> + Sync,
    {
        let fleet = &members.fleet;
        let waves = &Waves::new(
            &members.members,
            &fleet.canary,
            fleet.concurrency,
            fleet.max_failures,
        )?;
        let journal = FleetJournal::new(&config.snapshot_dir);
        let names: Vec<&str> = members.members.iter().map(|m| m.name.as_str()).collect();
        let partition = self.partition.map(|p| p.to_string());
        journal.append(
            fleet_run,
            &self.fleet,
            command,
            "fleet.started",
            json!({"partition": partition, "members": names, "unreachable": members.unreachable}),
        )?;
        let on_outcome = |outcome: &MemberOutcome| {
            let _ = journal.append(
                fleet_run,
                &self.fleet,
                command,
                "fleet.member",
                json!(outcome),
            );
            (self.on_outcome)(outcome);
        };
        let outcomes = schedule::run(
            &members.members,
            waves,
            |m| job(m),
            self.on_progress,
            &on_outcome,
        );
        let report = FleetReport {
            fleet_run: Some(fleet_run.clone()),
            fleet: self.fleet.clone(),
            command: command.to_owned(),
            partition,
            members: outcomes,
            unreachable: members.unreachable.clone(),
        };
        journal.append(
            fleet_run,
            &self.fleet,
            command,
            "fleet.finished",
            json!({"partition": report.partition, "totals": report.totals()}),
        )?;
        Ok(report)
    }
}

/// `cargo dbsafe apply --fleet NAME`: applies every member as its own run linked to one
/// fleet run; members already at the target version are skipped.
pub fn apply(
    config: &Config,
    request: &FleetRequest,
    target_version: Option<&str>,
) -> Result<FleetReport> {
    let members = request.members(config)?;
    let confirmation = request.guard_protected(&members, "apply migrations to")?;
    let set = MigrationSet::load(&config.migrations_dir)?;
    if let Some(version) = target_version
        && set.get(version).is_none()
    {
        return Err(Error::Usage(format!(
            "--target-version {version}: no migration with that version in {}",
            set.dir.display()
        )));
    }
    let wanted: Vec<&str> = set
        .migrations
        .iter()
        .map(|m| m.version.as_str())
        .filter(|v| target_version.is_none_or(|t| *v <= t))
        .collect();
    // The fleet run id is known before the first member starts: each member's run links to it.
    let fleet_run = request.fleet_run()?;
    let already = format!(
        "already at {}",
        wanted.last().copied().unwrap_or("(no migrations)")
    );
    request.record(config, &members, "apply", &fleet_run, |member| {
        // A member already done is left as it is (no run recorded), in the same session
        // that would apply it: one connection per member, the migrations read once.
        let options = ApplyOptions {
            confirmation,
            target_version: target_version.map(str::to_owned),
            rebind: false,
            fleet_run: Some(fleet_run.clone()),
            skip_when_up_to_date: true,
            ..ApplyOptions::default()
        };
        let outcome =
            crate::apply::apply_set(config, &member.target, &set, &options, &mut NoEvents)?;
        let Some(run_id) = outcome.run_id else {
            return Ok(JobDone {
                detail: already.clone(),
                up_to_date: true,
                ..JobDone::default()
            });
        };
        Ok(JobDone {
            detail: format!("{} migration(s) applied", outcome.applied.len()),
            up_to_date: outcome.applied.is_empty(),
            run_id: Some(run_id),
            failed: false,
        })
    })
}

/// `cargo dbrollback FLEET_RUN`: rolls back each member's run of that fleet run (level 1,
/// or `--restore`), in the fleet's waves, as a new fleet run.
pub fn rollback(
    config: &Config,
    request: &FleetRequest,
    of_fleet_run: &RunId,
    restore: bool,
) -> Result<FleetReport> {
    let members = request.members(config)?;
    let confirmation = request.guard_protected(&members, "roll back")?;
    let fleet_run = request.fleet_run()?;
    request.record(config, &members, "rollback", &fleet_run, |member| {
        if restore {
            crate::restore::refuse_schema_member(&member.target)?;
        }
        let Some(run) = member_run(member, of_fleet_run)? else {
            return Ok(JobDone {
                detail: format!("no applied run of fleet run {of_fleet_run}: nothing to roll back"),
                up_to_date: true,
                ..JobDone::default()
            });
        };
        let options = RollbackOptions {
            run: Some(run.as_str().to_owned()),
            restore,
            confirmation,
            fleet_run: Some(fleet_run.clone()),
            ..RollbackOptions::default()
        };
        let outcome = crate::rollback::rollback(config, &member.target, &options, &mut NoEvents)?;
        Ok(JobDone {
            detail: match outcome.safety_snapshot {
                Some(_) => format!("restored the snapshot taken before run {run}"),
                None => format!(
                    "reverted {} migration(s) of run {run}",
                    outcome.plan.reverts.len()
                ),
            },
            run_id: outcome.run_id,
            ..JobDone::default()
        })
    })
}

/// The member's apply run of `fleet_run` that still has something to roll back.
fn member_run(member: &Member, fleet_run: &RunId) -> Result<Option<RunId>> {
    let mut db = Database::connect(&member.target.url, Create::Never)?;
    if !ledger::exists(&mut db)? {
        return Ok(None);
    }
    dbsafe_runs::table
        .filter(dbsafe_runs::fleet_run.eq(fleet_run))
        .filter(dbsafe_runs::kind.eq("apply"))
        .filter(dbsafe_runs::status.eq_any([RunStatus::Succeeded, RunStatus::Failed]))
        .select(dbsafe_runs::id)
        .first::<RunId>(&mut db.conn)
        .optional()
        .map_err(|e| Error::db("reading dbsafe_runs", e))
}

/// One member's verification results.
pub type MemberChecks = (String, Vec<CheckResult>);

/// `cargo dbverify --fleet NAME`: every check on every member.
pub fn verify(
    config: &Config,
    request: &FleetRequest,
    options: &VerifyOptions,
) -> Result<(FleetReport, Vec<MemberChecks>)> {
    let members = request.members(config)?;
    let results = std::sync::Mutex::new(Vec::new());
    let waves = Waves::all(members.members.len(), members.fleet.concurrency);
    let outcomes = schedule::run(
        &members.members,
        &waves,
        |member| {
            let mut db = Database::connect(&member.target.url, Create::Never)?;
            let checks = crate::verify::verify(config, &member.target, &mut db, options)?;
            let failing: Vec<&str> = checks
                .iter()
                .filter(|r| r.fails())
                .map(|r| r.name.as_str())
                .collect();
            let failed = failing.len();
            let detail = match failed {
                0 => format!("{} check(s) passed", checks.len()),
                _ => format!(
                    "{failed} of {} check(s) failed: {}",
                    checks.len(),
                    failing.join(", ")
                ),
            };
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((member.name.clone(), checks));
            Ok(JobDone {
                detail,
                failed: failed > 0,
                ..JobDone::default()
            })
        },
        request.on_progress,
        request.on_outcome,
    );
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((view_report(request, &members, "verify", outcomes), results))
}

/// `cargo dbsafe status --fleet NAME`: each member's status report (or why there is none).
pub fn status(config: &Config, request: &FleetRequest) -> Result<super::views::FleetStatus> {
    let members = request.members(config)?;
    let reports = std::sync::Mutex::new(Vec::new());
    let waves = Waves::all(members.members.len(), members.fleet.concurrency);
    schedule::run(
        &members.members,
        &waves,
        |member| {
            let report = crate::status::status(config, &member.target);
            let failed = report.is_err();
            reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((member.name.clone(), report));
            Ok(JobDone {
                failed,
                ..JobDone::default()
            })
        },
        request.on_progress,
        &|_| {},
    );
    let reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    let set = MigrationSet::load(&config.migrations_dir)?;
    Ok(super::views::FleetStatus::new(
        &request.fleet,
        &set,
        reports,
        members.unreachable,
    ))
}

/// `cargo dbsafe plan --fleet NAME`: what each member would run.
pub fn plan(
    config: &Config,
    request: &FleetRequest,
) -> Result<(FleetReport, Vec<(String, crate::plan::Plan)>)> {
    let members = request.members(config)?;
    let plans = std::sync::Mutex::new(Vec::new());
    let waves = Waves::all(members.members.len(), members.fleet.concurrency);
    let outcomes = schedule::run(
        &members.members,
        &waves,
        |member| {
            let plan = crate::plan::plan(config, &member.target, false)?;
            let detail = format!("{} migration(s) to apply", plan.pending.len());
            let blocked = plan.blocked();
            let up_to_date = plan.pending.is_empty();
            plans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((member.name.clone(), plan));
            Ok(JobDone {
                detail,
                failed: blocked,
                up_to_date,
                ..JobDone::default()
            })
        },
        request.on_progress,
        request.on_outcome,
    );
    let mut plans = plans.into_inner().unwrap_or_else(|e| e.into_inner());
    plans.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((view_report(request, &members, "plan", outcomes), plans))
}

fn view_report(
    request: &FleetRequest,
    members: &Members,
    command: &str,
    outcomes: Vec<MemberOutcome>,
) -> FleetReport {
    FleetReport {
        fleet_run: None,
        fleet: request.fleet.clone(),
        command: command.to_owned(),
        partition: request.partition.map(|p| p.to_string()),
        members: outcomes,
        unreachable: members.unreachable.clone(),
    }
}
