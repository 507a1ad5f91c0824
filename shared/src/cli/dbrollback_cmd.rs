//! `cargo dbrollback`: the command line of rollback by run id, `--last`, `--list`.

use std::process::ExitCode;

use clap::{Args, Parser};

use super::render::rollback::{Candidates, RollbackDone};
use super::{GlobalArgs, Output, exit};
use crate::error::{Error, Result};
use crate::rollback::{self, RollbackOptions};
use crate::run_id::RunId;

/// cargo's view: `cargo dbrollback ...` runs `cargo-dbrollback dbrollback ...`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::styled())]
enum Cargo {
    Dbrollback(DbrollbackArgs),
}

/// Roll back one run by its id: revert its migrations with their down.sql (checked against
/// the checksums recorded when they were applied), or restore the snapshot taken before it.
///
/// Exit codes: 0 success; 1 the command ran and found problems; 2 bad usage (unknown run,
/// no snapshot), nothing touched; 3 refused by a guard (later runs on top without
/// --cascade, edited down.sql, protected target, dirty target, lock held, damaged
/// snapshot); 4 a down.sql failed part-way: the message says exactly what is left.
#[derive(Debug, Args)]
#[command(version, after_help = EXAMPLES)]
struct DbrollbackArgs {
    /// The run to roll back (its id, or a unique prefix; see --list), or a fleet run: each
    /// member's run of it, in the fleet's waves.
    #[arg(value_name = "RUN", conflicts_with_all = ["last", "list"])]
    run: Option<String>,
    /// Roll back the newest run that can be rolled back.
    #[arg(long)]
    last: bool,
    /// List the runs that can be rolled back, newest first.
    #[arg(long, conflicts_with_all = ["to", "restore", "cascade", "dry_run"])]
    list: bool,
    /// Revert only the run's migrations newer than VERSION.
    #[arg(long, value_name = "VERSION", conflicts_with = "restore")]
    to: Option<String>,
    /// Restore the snapshot taken before the run (after a safety snapshot of the current state).
    #[arg(long)]
    restore: bool,
    /// Roll back the later runs on top of this one first, newest first.
    #[arg(long, conflicts_with = "restore")]
    cascade: bool,
    /// Print the plan (migrations and SQL, or snapshot and what is lost); touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run this migration's down.sql although it changed since the run applied it (you
    /// fixed it after a failed rollback); recorded as a rollback.down_edited event with both
    /// checksums. Directory name or version; repeatable.
    #[arg(long, value_name = "NAME", conflicts_with = "restore")]
    allow_edit: Vec<String>,
    // Last, so that the command's own options keep their heading above the global ones
    // (and the fleet's below those).
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    fleet: super::fleet_cmd::FleetArgs,
}

const EXAMPLES: &str = "\
Examples:
  cargo dbrollback --list                the runs that can be rolled back
  cargo dbrollback --last --dry-run      the down.sql that would run, in order
  cargo dbrollback --last                revert the newest run, recorded as a rollback run
  cargo dbrollback RUN --to VERSION      revert only the run's migrations newer than VERSION
  cargo dbrollback RUN --restore         restore the snapshot taken before RUN
  cargo dbrollback --target production --yes --last";

/// Runs `cargo dbrollback` with the process arguments; returns the exit code. `version` is
/// the binary's, with its git commit.
pub fn main(version: &'static str) -> ExitCode {
    crate::interrupt::install();
    let (Cargo::Dbrollback(args), _) = super::parse_cargo::<Cargo>("dbrollback", version);
    let mut output = Output::new(&args.global);
    match run(&args, &mut output) {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(output.error(&error)),
    }
}

/// The command line of `cargo-dbrollback` (for shell completions).
pub(crate) fn command() -> clap::Command {
    <DbrollbackArgs as clap::Args>::augment_args(clap::Command::new("cargo-dbrollback"))
}

fn run(args: &DbrollbackArgs, output: &mut Output) -> Result<u8> {
    if let Some(run) = &args.run {
        crate::run_id::validate_id_prefix(run, "run id")?;
    }
    args.fleet.validate(&args.global)?;
    let config = args.global.load_config()?;
    let member = super::fleet_cmd::member_target(&config, &args.fleet, &args.global)?;
    if let Some(run) = &args.run
        && member.is_none()
        && let Some(fleet) = super::fleet_cmd::rollback_fleet(&config, &args.fleet, run)?
    {
        if args.to.is_some() || args.cascade || args.dry_run {
            return Err(Error::Usage("a fleet run is rolled back whole: --to, --cascade and --dry-run work on one target (--target MEMBER)".into()));
        }
        let fleet_run = RunId::parse(run, "fleet run id")?;
        let fleet_args = super::fleet_cmd::FleetArgs {
            fleet: Some(fleet),
            ..args.fleet.clone()
        };
        return super::fleet_cmd::rollback(
            &config,
            &fleet_args,
            &args.global,
            output,
            &fleet_run,
            args.restore,
        );
    }
    let target = match member {
        Some(member) => member,
        None if args.fleet.fleet.is_some() => {
            return Err(Error::Usage("name the fleet run to roll back: cargo dbrollback FLEET_RUN --fleet NAME (or one member's run with --target MEMBER; cargo dbsafe status --fleet NAME shows each member's last run and its fleet run)".into()));
        }
        None => args.global.resolve_target(&config)?,
    };
    if args.list {
        output.report(&Candidates(&rollback::list(&target)?));
        return Ok(exit::SUCCESS);
    }
    if args.run.is_none() && !args.last {
        return Err(Error::Usage("name the run to roll back (cargo dbrollback RUN), or pass --last; --list shows the candidates".into()));
    }
    let options = RollbackOptions {
        run: args.run.clone(),
        to: args.to.clone(),
        restore: args.restore,
        snapshot: None,
        cascade: args.cascade,
        dry_run: args.dry_run,
        allow_edit: args.allow_edit.clone(),
        confirmation: if args.dry_run {
            Default::default()
        } else {
            args.global.confirm(&target, "roll back")?
        },
        fleet_run: None,
    };
    let phase = (!args.dry_run).then(|| output.phase("rolling back"));
    let outcome = rollback::rollback(&config, &target, &options, output)?;
    drop(phase);
    if !args.dry_run {
        super::regenerate_schema(&config, &target, output);
    }
    if args.dry_run {
        output.report(&outcome.plan);
    } else {
        output.report(&RollbackDone::Rollback(&outcome));
    }
    Ok(exit::SUCCESS)
}
