//! `--fleet NAME`, `--partition K/N`, `--fleet-run ID`: the fleet flags of the three
//! commands, and how a fleet command's progress and report are shown.

use std::time::Duration;

use clap::Args;
use console::Style;
use indicatif::{ProgressBar, ProgressStyle};

use super::{GlobalArgs, Output, exit};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleet::{
    self, FleetReport, FleetRequest, MemberOutcome, MemberStatus, Partition, Progress,
};
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
    /// DBSAFE_FLEET_RUN, else a new id).
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
            if self.fleet_run().is_none() {
                return Err(Error::Usage(format!(
                    "--partition {partition}: give every job of the matrix the same --fleet-run ID (or DBSAFE_FLEET_RUN), made once, e.g. `date -u +%Y%m%dT%H%M%SZ-$(openssl rand -hex 2)`, so their shares are one fleet run"
                )));
            }
        }
        if let Some(id) = &self.fleet_run {
            crate::run::validate_id(id, "--fleet-run")?;
        }
        Ok(())
    }

    fn fleet_run(&self) -> Option<String> {
        self.fleet_run.clone().or_else(|| {
            std::env::var("DBSAFE_FLEET_RUN")
                .ok()
                .filter(|s| !s.is_empty())
        })
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
        if self.output.is_json() {
            self.output.json_typed("fleet.member", outcome);
        } else if outcome.status.is_failure() {
            let line = format!(
                "{} {}: {}",
                Style::new().red().apply_to(outcome.status.as_str()),
                outcome.member,
                first_line(&outcome.detail)
            );
            match &self.bar {
                Some(bar) => bar.println(line),
                None => self.output.note(&line),
            }
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
    let display = Display::new(output, &fleet);
    let on_progress = |p: &Progress| display.progress(p);
    let on_outcome = |o: &MemberOutcome| display.outcome(o);
    let request = FleetRequest {
        fleet,
        partition,
        fleet_run: args.fleet_run(),
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
    let report = with_request(args, global, output, |r| {
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
    of_fleet_run: &str,
    restore: bool,
) -> Result<u8> {
    let report = with_request(args, global, output, |r| {
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
    if !crate::run::is_valid_id(run) {
        return Ok(None);
    }
    fleet::journal::FleetJournal::new(&config.snapshot_dir).fleet_of(run)
}

/// `cargo dbsafe status --fleet NAME`.
pub fn status(
    config: &Config,
    args: &FleetArgs,
    global: &GlobalArgs,
    output: &Output,
) -> Result<u8> {
    let status = with_request(args, global, output, |r| fleet::status(config, r))?;
    if output.is_json() {
        output.json_typed("fleet.status", &status);
    } else {
        let mut text = String::new();
        let width = status
            .members
            .iter()
            .map(|m| m.member.len())
            .max()
            .unwrap_or(6)
            .max(6);
        text.push_str(&format!(
            "{:<width$}  {:<16} {:>7}  {:<5}  {:<21}  {}\n",
            "member", "version", "pending", "dirty", "last run", "status"
        ));
        for m in &status.members {
            match &m.error {
                Some(e) => text.push_str(&format!(
                    "{:<width$}  {}\n",
                    m.member,
                    Style::new().red().apply_to(first_line(e))
                )),
                None => text.push_str(&format!(
                    "{:<width$}  {:<16} {:>7}  {:<5}  {:<21}  {}\n",
                    m.member,
                    m.version.as_deref().unwrap_or("-"),
                    m.pending,
                    if m.dirty { "DIRTY" } else { "no" },
                    m.last_run.as_deref().unwrap_or("-"),
                    m.last_status.as_deref().unwrap_or("-")
                )),
            }
        }
        for u in &status.unreachable {
            text.push_str(&format!(
                "server {} unreachable: {}\n",
                u.server,
                first_line(&u.error)
            ));
        }
        text.push_str(&format!("fleet {}: {}", status.fleet, status.totals()));
        output.data(&text);
    }
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
    let (report, plans) = with_request(args, global, output, |r| fleet::plan(config, r))?;
    if output.is_json() {
        for (member, plan) in &plans {
            let mut value = serde_json::to_value(plan).unwrap_or_default();
            value["member"] = member.clone().into();
            output.json_typed("plan", &value);
        }
    } else {
        let mut text = String::new();
        for (member, plan) in &plans {
            let versions: Vec<&str> = plan.pending.iter().map(|m| m.version.as_str()).collect();
            text.push_str(&format!(
                "{member}: {}\n",
                if versions.is_empty() {
                    "nothing to apply".to_owned()
                } else {
                    format!("would apply {}", versions.join(", "))
                }
            ));
        }
        output.data(&text);
    }
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
    let (report, results) =
        with_request(args, global, output, |r| fleet::verify(config, r, options))?;
    if let Some(path) = junit {
        std::fs::write(path, junit_xml(&results)).map_err(|e| Error::io(path, e))?;
    }
    if output.is_json() {
        for (member, checks) in &results {
            for check in checks {
                let mut value = serde_json::to_value(check).unwrap_or_default();
                value["member"] = member.clone().into();
                output.json_typed("verify.result", &value);
            }
        }
    }
    finish_report(&report, output)
}

/// One JUnit document with a `<testsuite>` per member, built from each member's own.
fn junit_xml(results: &[(String, Vec<crate::verify::CheckResult>)]) -> String {
    let mut suites = String::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for (member, checks) in results {
        let xml = crate::verify::junit_xml(member, checks);
        let start = xml.find("  <testsuite ").unwrap_or(0);
        let end = xml.rfind("</testsuites>").unwrap_or(xml.len());
        suites.push_str(&xml[start..end]);
        tests += checks.len();
        failures += checks
            .iter()
            .filter(|c| c.status == crate::verify::Status::Fail)
            .count();
        errors += checks
            .iter()
            .filter(|c| c.status == crate::verify::Status::Error)
            .count();
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"dbverify\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n{suites}</testsuites>\n"
    )
}

/// Prints the summary (a table of the members that need reading, and the totals) and
/// returns the fleet's exit code as an error when a member did not succeed.
fn finish_report(report: &FleetReport, output: &Output) -> Result<u8> {
    if output.is_json() {
        // Members never started were not streamed as they finished.
        report
            .members
            .iter()
            .filter(|m| m.status == MemberStatus::Skipped)
            .for_each(|m| output.json_typed("fleet.member", m));
        output.json_typed("fleet.summary", &serde_json::json!({
            "fleet_run": report.fleet_run, "fleet": report.fleet, "command": report.command,
            "partition": report.partition, "totals": report.totals(), "unreachable": report.unreachable,
            "members": report.members.len(),
        }));
    } else {
        output.data(&summary_table(report));
    }
    report.result().map(|()| exit::SUCCESS)
}

/// Every member when there are few; otherwise only those that failed (the totals count
/// the rest).
fn summary_table(report: &FleetReport) -> String {
    const ALL_UP_TO: usize = 40;
    let few = report.members.len() <= ALL_UP_TO;
    let shown: Vec<&MemberOutcome> = report
        .members
        .iter()
        .filter(|m| few || m.status.is_failure())
        .collect();
    let width = shown
        .iter()
        .map(|m| m.member.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut text = String::new();
    if !shown.is_empty() {
        text.push_str(&format!(
            "{:<width$}  {:<6}  {:<15}  {:<21}  {}\n",
            "member", "wave", "status", "run", "detail"
        ));
    }
    for m in &shown {
        let style = if m.status.is_failure() {
            Style::new().red()
        } else {
            Style::new()
        };
        text.push_str(&format!(
            "{:<width$}  {:<6}  {:<15}  {:<21}  {}\n",
            m.member,
            m.wave,
            style.apply_to(m.status.as_str()),
            m.run_id.as_deref().unwrap_or("-"),
            first_line(&m.detail)
        ));
    }
    if shown.len() < report.members.len() {
        let rest = report.members.len() - shown.len();
        text.push_str(&format!(
            "({rest} other members not listed; --message-format json lists each)\n"
        ));
    }
    for u in &report.unreachable {
        text.push_str(&format!(
            "server {} unreachable: {}\n",
            u.server,
            first_line(&u.error)
        ));
    }
    let run = if report.fleet_run.is_empty() {
        String::new()
    } else {
        format!(" run {}", report.fleet_run)
    };
    let share = report
        .partition
        .as_deref()
        .map(|p| format!(" (partition {p})"))
        .unwrap_or_default();
    text.push_str(&format!(
        "fleet {}{run}{share} {}: {}",
        report.fleet,
        report.command,
        report.totals()
    ));
    text
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
