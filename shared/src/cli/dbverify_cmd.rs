//! `cargo dbverify`: the command line of verification.

use std::path::PathBuf;
use std::process::ExitCode;

use super::render::{junit, verify::VerifyResults};
use super::{GlobalArgs, Output, exit};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::verify::{self, VerifyOptions};
use clap::{Args, Parser};

/// cargo's view: `cargo dbverify ...` runs `cargo-dbverify dbverify ...`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::styled())]
enum Cargo {
    Dbverify(DbverifyArgs),
}

/// Verify invariants on a live database: built-in checks ([verify] in dbsafe.toml), the
/// [[invariant]] SQL assertions, drift against the migrations, comparison with a snapshot.
///
/// Exit codes: 0 every `error` check passed; 1 an `error` check failed or could not run;
/// 2 bad usage or configuration; 3 refused by a guard.
#[derive(Debug, Args)]
#[command(version, after_help = EXAMPLES)]
struct DbverifyArgs {
    /// Run only this check (a built-in or an invariant's name); repeatable.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Compare row counts and checksums with this snapshot, or with this run's pre-run snapshot.
    #[arg(long, value_name = "RUN|SNAPSHOT")]
    against: Option<String>,
    /// Compare with the target's newest snapshot (as --against with its id).
    #[arg(long, conflicts_with = "against")]
    last: bool,
    /// Check drift: build a shadow database from the applied migrations and diff schemas.
    #[arg(long)]
    drift: bool,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    // Last, so that the command's own options keep their heading above the global ones
    // (and the fleet's below those).
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    fleet: super::fleet_cmd::FleetArgs,
}

const EXAMPLES: &str = "\
Examples:
  cargo dbverify                         every configured check and invariant
  cargo dbverify --drift                 also compare the live schema with the migrations
  cargo dbverify --last                  row counts and checksums against the newest snapshot
  cargo dbverify --only fk-orphans --junit verify.xml
  cargo dbverify --target staging --message-format json";

/// Runs `cargo dbverify` with the process arguments; returns the exit code. `version` is
/// the binary's, with its git commit.
pub fn main(version: &'static str) -> ExitCode {
    crate::interrupt::install();
    let (Cargo::Dbverify(args), _) = super::parse_cargo::<Cargo>("dbverify", version);
    let mut output = Output::new(&args.global);
    match run(&args, &mut output) {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(output.error(&error)),
    }
}

/// The command line of `cargo-dbverify` (for shell completions).
pub(crate) fn command() -> clap::Command {
    <DbverifyArgs as clap::Args>::augment_args(clap::Command::new("cargo-dbverify"))
}

fn run(args: &DbverifyArgs, output: &mut Output) -> Result<u8> {
    if let Some(id) = &args.against {
        crate::run_id::validate_id(id, "--against run or snapshot id")?;
    }
    args.fleet.validate(&args.global)?;
    let config = args.global.load_config()?;
    let target = match super::fleet_cmd::member_target(&config, &args.fleet, &args.global)? {
        Some(member) => member,
        None if args.fleet.fleet.is_some() => return fleet(args, &config, output),
        None => args.global.resolve_target(&config)?,
    };
    let against = match args.last {
        true => Some(super::snapshot_cmd::chosen_id(&None, &config, &target)?),
        false => args.against.clone(),
    };
    let mut db = Database::connect(&target.url, Create::Never)?;
    let options = VerifyOptions {
        only: args.only.clone(),
        against,
        drift: args.drift,
        phase: None,
        ..Default::default()
    };
    let phase = output.phase(if args.drift {
        "verifying (drift: building shadow databases)"
    } else {
        "verifying"
    });
    let results = verify::verify(&config, &target, &mut db, &options)?;
    drop(phase);
    if let Some(path) = &args.junit {
        let xml = junit::verify_results([(target.name.as_str(), results.as_slice())])?;
        std::fs::write(path, xml).map_err(|e| Error::io(path, e))?;
    }
    let report = VerifyResults {
        target: &target.name,
        results: &results,
        config: config_text(&config),
    };
    output.report(&report);
    let failed = report.failed();
    if failed > 0 {
        return Err(Error::Failed(format!(
            "{failed} of {} check(s) failed on target {}",
            results.len(),
            target.name
        )));
    }
    Ok(exit::SUCCESS)
}

/// `cargo dbverify --fleet NAME`: every check on every member.
fn fleet(args: &DbverifyArgs, config: &crate::config::Config, output: &Output) -> Result<u8> {
    if args.last {
        return Err(Error::Usage(
            "--last compares one target with its newest snapshot: name the member with --fleet NAME --target MEMBER".into(),
        ));
    }
    let options = VerifyOptions {
        only: args.only.clone(),
        against: args.against.clone(),
        drift: args.drift,
        phase: None,
        ..Default::default()
    };
    let junit = args.junit.as_deref();
    super::fleet_cmd::verify(config, &args.fleet, &args.global, output, &options, junit)
}

/// dbsafe.toml's text and its path relative to the project root (for annotations that
/// point at an invariant's definition), when there is one.
pub(super) fn config_text(config: &crate::config::Config) -> Option<(String, String)> {
    let file = config.file.as_ref()?;
    let text = std::fs::read_to_string(file).ok()?;
    let relative = file.strip_prefix(&config.root).unwrap_or(file);
    Some((text, relative.to_string_lossy().replace('\\', "/")))
}
