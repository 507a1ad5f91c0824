//! `cargo dbsafe`: the command line of init, status, apply, runs and resolve.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::snapshot_cmd::SnapshotCommand;
use super::{GlobalArgs, Output, cargo_args, report};
use crate::apply::{ApplyOptions, apply};
use crate::error::{Error, Result};
use crate::resolve::{ResolvedState, resolve};

/// cargo's view: `cargo dbsafe ...` runs `cargo-dbsafe dbsafe ...`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::styled())]
enum Cargo {
    Dbsafe(DbsafeArgs),
}

/// Safe, recorded diesel migrations: apply as runs with ids, see what is applied, audit runs.
///
/// Exit codes: 0 success; 1 the command ran and found problems (an apply failed and was
/// reverted); 2 bad usage or configuration, nothing touched; 3 refused by a guard
/// (protected target, identity changed, dirty target, lock held, edited migration);
/// 4 the database needs attention (a failure dbsafe could not undo).
#[derive(Debug, Args)]
#[command(version)]
struct DbsafeArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented dbsafe.toml for this repository and add .dbsafe/ to .gitignore.
    Init,
    /// Show the target, its identity, applied and pending migrations, dirty steps, last runs.
    Status,
    /// What apply would do, touching nothing; --rehearse runs it on a throwaway clone.
    Plan(PlanArgs),
    /// Apply pending migrations as one recorded run: preflight, lock, migrations, status.
    Apply(ApplyArgs),
    /// List the runs in the target's ledger, or show one with its steps and events.
    Runs(RunsArgs),
    /// Record how a dirty step was repaired by hand, so applying can go on.
    Resolve(ResolveArgs),
    /// Take, list, verify and prune snapshots of the target.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Print the target's schema fingerprint and every table's row count and content hash.
    Fingerprint(FingerprintArgs),
    /// Check migrations offline (layout, dbsafe.lock, lint) for pre-commit hooks and CI.
    Check(super::check_cmd::CheckArgs),
}

#[derive(Debug, Args)]
struct FingerprintArgs {
    /// Tables hashed at once on separate connections (PostgreSQL; one consistent snapshot).
    #[arg(long, default_value_t = 2, value_name = "N")]
    jobs: usize,
    /// Also print the schema's canonical lines.
    #[arg(long)]
    schema: bool,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Run the pending migrations on a throwaway clone of the target and report each one's
    /// errors, duration and locks (PostgreSQL); the clone is dropped afterwards.
    #[arg(long)]
    rehearse: bool,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// Stop after this migration version.
    #[arg(long, value_name = "VERSION")]
    target_version: Option<String>,
    /// Accept that the target now reaches a different database and bind it to this one.
    #[arg(long)]
    rebind: bool,
}

#[derive(Debug, Args)]
struct RunsArgs {
    #[command(subcommand)]
    show: Option<RunsCommand>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    limit: i64,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// One run with its steps and events.
    Show {
        /// The run id (or a unique prefix of it).
        run: String,
    },
}

#[derive(Debug, Args)]
struct ResolveArgs {
    /// The dirty migration's version.
    version: String,
    /// What state the migration is in now that you repaired it.
    #[arg(long = "as", value_enum, value_name = "STATE")]
    state: StateArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateArg {
    /// All of the migration's changes are in place.
    Applied,
    /// None of them remain.
    Reverted,
}

/// Refuses an id argument that does not have the form of an id (exit 2), before anything
/// is read or touched.
fn validate_ids(command: &Command) -> Result<()> {
    match command {
        Command::Runs(RunsArgs {
            show: Some(RunsCommand::Show { run }),
            ..
        }) => crate::run::validate_id_prefix(run, "run id").map(drop),
        Command::Snapshot(snapshot) => super::snapshot_cmd::validate_ids(snapshot),
        _ => Ok(()),
    }
}

/// Runs `cargo dbsafe` with the process arguments; returns the exit code.
pub fn main() -> ExitCode {
    crate::interrupt::install();
    let argv = cargo_args("dbsafe");
    let Cargo::Dbsafe(args) =
        Cargo::try_parse_from(&argv).unwrap_or_else(|e| super::usage_error(e, &argv));
    let mut output = Output::new(&args.global);
    match run(&args, &mut output) {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(output.error(&error)),
    }
}

fn run(args: &DbsafeArgs, output: &mut Output) -> Result<u8> {
    let global = &args.global;
    validate_ids(&args.command)?;
    if let Command::Init = args.command {
        let root = match &global.manifest_path {
            Some(_) => global.load_config()?.root,
            None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
        };
        let outcome = crate::init::init(&root)?;
        if output.is_json() {
            output.json_typed("init", &serde_json::json!({"config": outcome.config, "gitignore_updated": outcome.gitignore_updated}));
        } else {
            output.note(&format!("wrote {}", outcome.config.display()));
            if outcome.gitignore_updated {
                output.note("added .dbsafe/ to .gitignore");
            }
        }
        return Ok(super::exit::SUCCESS);
    }
    if let Command::Check(check_args) = &args.command {
        // Offline: no target URL is resolved.
        return super::check_cmd::run(check_args, global, output);
    }
    let config = global.load_config()?;
    let target = global.resolve_target(&config)?;
    match &args.command {
        Command::Init | Command::Check(_) => unreachable!("handled above"),
        Command::Status => {
            let status = crate::status::status(&config, &target)?;
            if output.is_json() {
                output.json_typed("status", &status);
            } else {
                output.data(&report::status(&status));
            }
        }
        Command::Plan(plan_args) => {
            let plan = crate::plan::plan(&config, &target, plan_args.rehearse)?;
            if output.is_json() {
                output.json_typed("plan", &plan);
            } else {
                output.data(&report::plan(&plan));
            }
            if plan.blocked() {
                return Err(Error::Failed(
                    "apply would not get through: see the plan above".into(),
                ));
            }
        }
        Command::Apply(apply_args) => {
            let options = ApplyOptions {
                confirmation: global.confirm(&target, "apply migrations")?,
                target_version: apply_args.target_version.clone(),
                rebind: apply_args.rebind,
            };
            let outcome = apply(&config, &target, &options, output)?;
            if !outcome.applied.is_empty() {
                super::regenerate_schema(&config, &target, output);
            }
        }
        Command::Runs(runs_args) => match &runs_args.show {
            None => {
                let runs = crate::runs::list(&target, runs_args.limit)?;
                if output.is_json() {
                    runs.iter().for_each(|r| output.json_typed("run", r));
                } else {
                    output.data(&report::runs(&runs));
                }
            }
            Some(RunsCommand::Show { run }) => {
                let detail = crate::runs::show(&target, run)?;
                if output.is_json() {
                    output.json_typed("run", &detail);
                } else {
                    output.data(&report::run_detail(&detail));
                }
            }
        },
        Command::Resolve(resolve_args) => {
            let state = match resolve_args.state {
                StateArg::Applied => ResolvedState::Applied,
                StateArg::Reverted => ResolvedState::Reverted,
            };
            let confirmation = global.confirm(&target, "resolve a dirty step")?;
            crate::preflight::guard_protected(&target, confirmation)?;
            resolve(&config, &target, &resolve_args.version, state, output)?;
        }
        Command::Fingerprint(args) => {
            let mut db = crate::connection::Database::connect(
                &target.url,
                crate::connection::Create::Never,
            )?;
            let schema = crate::inspect::schema_fingerprint(&mut db)?;
            let tables = crate::inspect::data_fingerprints_parallel(&target.url, args.jobs)?;
            if output.is_json() {
                output.json(&serde_json::json!({"type": "fingerprint", "target": target.name, "schema": schema, "tables": tables}));
            } else {
                let mut text = format!("schema {} ({} objects)\n", schema.hash, schema.lines.len());
                if args.schema {
                    schema
                        .lines
                        .iter()
                        .for_each(|l| text.push_str(&format!("  {l}\n")));
                }
                for table in &tables {
                    text.push_str(&format!(
                        "table {}  {} rows  {}\n",
                        table.table, table.rows, table.hash
                    ));
                }
                output.data(&text);
            }
        }
        Command::Snapshot(command) => {
            return super::snapshot_cmd::run(command, &config, &target, global, output);
        }
    }
    Ok(super::exit::SUCCESS)
}
