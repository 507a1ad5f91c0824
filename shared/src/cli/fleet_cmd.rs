//! `--fleet NAME`, `--partition K/N`, `--fleet-run ID`: the fleet flags of the three
//! commands, and how a fleet command's progress and report are shown.

use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::render::Report;
use super::render::fleet as render;
use super::{GlobalArgs, Output, exit};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleet::{self, FleetReport, FleetRequest, MemberOutcome, Partition, Progress};
use crate::run_id::RunId;
use crate::verify::VerifyOptions;

/// Flags that make a command work on a whole fleet.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Fleet options")]
pub struct FleetArgs {
    /// Work on every member of this fleet ([fleets.NAME] in dbsafe.toml) as one fleet run.
    #[arg(long, global = true, value_name = "NAME")]
    pub fleet: Option<String>,
    /// Take only this stable share of the fleet's members, as one of N CI jobs (e.g. 2/4).
    #[arg(long, global = true, value_name = "K/N")]
    pub partition: Option<String>,
    /// Record under this fleet run id (the same in every job of a partitioned run; default
    /// DBSAFE_FLEET_RUN, else with --partition one derived from the CI run, else a new id).
    #[arg(long, global = true, value_name = "ID")]
    pub fleet_run: Option<String>,
}

impl FleetArgs {
    /// Refuses fleet flags that make no sense together (exit 2), before anything is read.
    pub fn validate(&self, global: &GlobalArgs) -> Result<()> {
        if self.fleet.is_none() && (self.partition.is_some() || self.fleet_run.is_some()) {
            return Err(Error::Usage(
                "--partition and --fleet-run need --fleet NAME".into(),
            ));
        }
        if self.fleet.is_some() && global.database_url.is_some() {
            return Err(Error::Usage(
                "--database-url names one database: a fleet's members come from [fleets.NAME] in dbsafe.toml".into(),
            ));
        }
        if global.target.is_some() && (self.partition.is_some() || self.fleet_run.is_some()) {
            return Err(Error::Usage(
                "--fleet NAME --target MEMBER works on one member: --partition and --fleet-run are for the whole fleet".into(),
            ));
        }
        if let Some(partition) = &self.partition {
            Partition::parse(partition)?;
        }
        if let Some(id) = &self.fleet_run {
            crate::run_id::validate_id(id, "--fleet-run")?;
        }
        Ok(())
    }

    /// `--fleet-run`, else DBSAFE_FLEET_RUN; with `--partition`, else the id derived from
    /// the CI run (the same in every job of the matrix), which must then be found.
    fn fleet_run(&self, root: &std::path::Path) -> Result<Option<String>> {
        let given = self.fleet_run.clone().or_else(|| {
            std::env::var("DBSAFE_FLEET_RUN")
                .ok()
                .filter(|s| !s.is_empty())
        });
        let Some(partition) = &self.partition else {
            return Ok(given);
        };
        match given.or_else(|| fleet::ci::fleet_run_id(root)) {
            Some(id) => {
                crate::run_id::validate_id(&id, "--fleet-run").map(|id| Some(id.to_owned()))
            }
            None => Err(Error::Usage(format!(
                "--partition {partition}: give every job of the matrix the same --fleet-run ID (or DBSAFE_FLEET_RUN), made once, e.g. `date -u +%Y%m%dT%H%M%SZ-$(openssl rand -hex 2)`, so their shares are one fleet run; in CI it is derived from the CI run ({}) and the commit time of a git checkout, none of which is here",
                fleet::ci::variables()
            ))),
        }
    }
}

/// With `--fleet NAME --target MEMBER`: the member as a target, for any single-target
/// command (status, runs, resolve, rollback of one run, verify); `None` without `--fleet`.
pub fn member_target(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
) -> Result<Option<crate::target::Target>> {
    let (Some(fleet), Some(name)) = (&args.fleet, &global.target) else {
        return Ok(None);
    };
    let members = fleet::members::resolve(config, fleet, None)?;
    match members.members.into_iter().find(|m| &m.name == name) {
        Some(member) => Ok(Some(member.target)),
        None => Err(Error::Usage(format!(
            "fleet `{fleet}` has no member `{name}`: `cargo dbsafe status --fleet {fleet}` lists its members"
        ))),
    }
}

/// Shows a fleet command's progress: one redrawn line on a terminal, failures as notes.
struct Display<'o> {
    output: &'o Output,
    bar: Option<ProgressBar>,
}

impl<'o> Display<'o> {
    fn new(output: &'o Output, fleet: &str) -> Display<'o> {
        let bar = output.progress_allowed().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("fleet {fleet}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Display { output, bar }
    }

    fn progress(&self, p: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "wave {}: {}/{} done, {} failed, {} running",
                p.wave, p.done, p.total, p.failed, p.running
            ));
        }
    }

    fn outcome(&self, outcome: &MemberOutcome) {
        let report = render::Member(outcome);
        // The bar is drawn only for human output.
        match &self.bar {
            Some(bar) => {
                let line = report.human();
                if !line.is_empty() {
                    bar.println(line);
                }
            }
            None => self.output.report(&report),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs `f` with a request whose progress and outcomes go to `output`.
fn with_request<T>(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
    output: &Output,
    f: impl FnOnce(&FleetRequest) -> Result<T>,
) -> Result<T> {
    let fleet = args.fleet.clone().unwrap_or_default();
    let partition = args
        .partition
        .as_deref()
        .map(Partition::parse)
        .transpose()?;
    let fleet_run = args.fleet_run(&config.root)?;
    let display = Display::new(output, &fleet);
    let on_progress = |p: &Progress| display.progress(p);
    let on_outcome = |o: &MemberOutcome| display.outcome(o);
    let request = FleetRequest {
        fleet,
        partition,
        fleet_run,
        yes: global.yes,
        on_progress: &on_progress,
        on_outcome: &on_outcome,
    };
    let result = f(&request);
    display.finish();
    result
}

/// `cargo dbsafe apply --fleet NAME`.
pub fn apply(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
    output: &Output,
    target_version: Option<&str>,
) -> Result<u8> {
    let report = with_request(config, args, global, output, |r| {
        fleet::apply(config, r, target_version)
    })?;
    finish_report(&report, output)
}

/// `cargo dbrollback FLEET_RUN`.
pub fn rollback(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
    output: &Output,
    of_fleet_run: &RunId,
    restore: bool,
) -> Result<u8> {
    let report = with_request(config, args, global, output, |r| {
        fleet::rollback(config, r, of_fleet_run, restore)
    })?;
    finish_report(&report, output)
}

/// The fleet a `cargo dbrollback RUN` means, when RUN is a fleet run: `--fleet`, else the
/// fleet journal's record of it.
pub fn rollback_fleet(config: &Config, args: &FleetArgs, run: &str) -> Result<Option<String>> {
    if args.fleet.is_some() {
        return Ok(args.fleet.clone());
    }
    let Some(run) = RunId::parse_opt(run) else {
        return Ok(None);
    };
    fleet::journal::FleetJournal::new(&config.snapshot_dir).fleet_of(&run)
}

/// `cargo dbsafe status --fleet NAME`.
pub fn status(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
    output: &Output,
) -> Result<u8> {
    let status = with_request(config, args, global, output, |r| fleet::status(config, r))?;
    output.report(&status);
    if status.unreadable > 0 || !status.unreachable.is_empty() {
        return Err(Error::Failed(format!(
            "fleet `{}`: {}",
            status.fleet,
            status.totals()
        )));
    }
    Ok(exit::SUCCESS)
}

/// `cargo dbsafe plan --fleet NAME`.
pub fn plan(config: &Config, args: &FleetArgs, global: &GlobalArgs, output: &Output) -> Result<u8> {
    let (report, plans) = with_request(config, args, global, output, |r| fleet::plan(config, r))?;
    output.report(&render::Plans(&plans));
    finish_report(&report, output)
}

/// `cargo dbverify --fleet NAME`: writes one JUnit file with a suite per member.
pub fn verify(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
    output: &Output,
    options: &VerifyOptions,
    junit: Option<&std::path::Path>,
) -> Result<u8> {
    let (report, results) = with_request(config, args, global, output, |r| {
        fleet::verify(config, r, options)
    })?;
    if let Some(path) = junit {
        let suites = results
            .iter()
            .map(|(m, checks)| (m.as_str(), checks.as_slice()));
        let xml = super::render::junit::verify_results(suites)?;
        std::fs::write(path, xml).map_err(|e| Error::io(path, e))?;
    }
    output.report(&render::Verified(&results));
    finish_report(&report, output)
}

/// Prints the summary (a table of the members that need reading, and the totals) and
/// returns the fleet's exit code as an error when a member did not succeed.
fn finish_report(report: &FleetReport, output: &Output) -> Result<u8> {
    output.report(&render::Summary(report));
    report.result().map(|()| exit::SUCCESS)
}
