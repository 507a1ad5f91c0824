//! `cargo dbsafe`: the command line of init, status, apply, runs and resolve.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::render::{runs::RunsListing, verify::Fingerprint};
use super::snapshot_cmd::SnapshotCommand;
use super::{GlobalArgs, Output};
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
#[command(version, after_help = EXAMPLES)]
struct DbsafeArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    fleet: super::fleet_cmd::FleetArgs,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  cargo dbsafe init                      write dbsafe.toml, then follow the steps it prints
  cargo dbsafe setup                     create the database when missing, then apply
  cargo dbsafe status                    what is applied and pending, and what to run next
  cargo dbsafe plan --rehearse           try the pending migrations on a throwaway clone
  cargo dbsafe apply --target production --yes
  cargo dbsafe runs show --last          the newest run with its steps and events
  cargo dbsafe snapshot verify --last --deep
  cargo dbsafe --database-url sqlite://dev.db --migration-dir migrations status
  cargo dbsafe completions bash > ~/.local/share/bash-completion/completions/cargo-dbsafe";

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented dbsafe.toml for this repository and add .dbsafe/ to .gitignore.
    Init,
    /// Show the target, its identity, applied and pending migrations, dirty steps, last runs.
    Status,
    /// Create the target's database when it does not exist (as `diesel setup`), then apply.
    Setup(ApplyArgs),
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
    /// Print shell completions for cargo-dbsafe, cargo-dbverify and cargo-dbrollback.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  cargo dbsafe completions bash > ~/.local/share/bash-completion/completions/cargo-dbsafe
  cargo dbsafe completions zsh > ~/.zfunc/_cargo-dbsafe
  cargo dbsafe completions fish > ~/.config/fish/completions/cargo-dbsafe.fish
They complete the binaries' own names (`cargo-dbsafe status`, which runs the same command).";

#[derive(Debug, Args)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
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
    /// Also list the no-op runs (an apply with nothing to apply), folded by default.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// One run with its steps and events.
    Show {
        /// The run id (or a unique prefix of it).
        #[arg(required_unless_present = "last")]
        run: Option<String>,
        /// The newest run.
        #[arg(long, conflicts_with = "run")]
        last: bool,
        /// `markdown` for a pull-request comment (also appended to $GITHUB_STEP_SUMMARY in
        /// GitHub Actions), `html` for one self-contained page with the run's timeline.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text, value_name = "FORMAT")]
        format: ReportFormat,
    },
}

/// How `runs show` writes the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Text (or JSON with --message-format json).
    Text,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// One HTML page, no network needed.
    Html,
}

#[derive(Debug, Args)]
struct ResolveArgs {
    /// The migration's version: a dirty step, or any applied or pending version whose
    /// record is wrong (after drift).
    version: String,
    /// What state the migration is in now that you repaired it.
    #[arg(long = "as", value_enum, value_name = "STATE")]
    state: StateArg,
    /// Why, recorded with the resolution (event `step.resolved`).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateArg {
    /// All of the migration's changes are in place.
    Applied,
    /// None of them remain.
    Reverted,
}

/// `status`, `plan` and `apply` with `--fleet NAME`: over every member of the fleet.
fn fleet(args: &DbsafeArgs, config: &crate::config::Config, output: &Output) -> Result<u8> {
    use super::fleet_cmd;
    let (fleet, global) = (&args.fleet, &args.global);
    match &args.command {
        Command::Status => fleet_cmd::status(config, fleet, global, output),
        Command::Plan(_) => fleet_cmd::plan(config, fleet, global, output),
        Command::Apply(apply_args) => {
            if apply_args.rebind {
                return Err(Error::Usage(
                    "--rebind re-binds one target: run it with --target MEMBER, not --fleet".into(),
                ));
            }
            fleet_cmd::apply(
                config,
                fleet,
                global,
                output,
                apply_args.target_version.as_deref(),
            )
        }
        _ => Err(Error::Usage(
            "--fleet works with status, plan and apply (and cargo dbverify, cargo dbrollback)"
                .into(),
        )),
    }
}

/// Refuses an id argument that does not have the form of an id (exit 2), before anything
/// is read or touched.
fn validate_ids(command: &Command) -> Result<()> {
    match command {
        Command::Runs(RunsArgs {
            show: Some(RunsCommand::Show { run: Some(run), .. }),
            ..
        }) => crate::run_id::validate_id_prefix(run, "run id").map(drop),
        Command::Snapshot(snapshot) => super::snapshot_cmd::validate_ids(snapshot),
        _ => Ok(()),
    }
}

/// `runs show --format markdown|html`: the report on stdout; Markdown is also appended to
/// the GitHub Actions job summary when `GITHUB_STEP_SUMMARY` is set.
fn show_report(
    detail: &crate::runs::RunDetail,
    format: ReportFormat,
    output: &Output,
) -> Result<()> {
    let model = crate::report::RunReport::from_detail(detail);
    if format == ReportFormat::Html {
        output.data(&crate::report::html::render(&model));
        return Ok(());
    }
    let markdown = crate::report::markdown::render(&model);
    output.data(&markdown);
    if let Some(path) = crate::report::append_step_summary(&markdown)? {
        output.note(&format!("appended the report to {}", path.display()));
    }
    Ok(())
}

/// Runs `cargo dbsafe` with the process arguments; returns the exit code. `version` is the
/// binary's, with its git commit.
pub fn main(version: &'static str) -> ExitCode {
    crate::interrupt::install();
    let (Cargo::Dbsafe(args), _) = super::parse_cargo::<Cargo>("dbsafe", version);
    let mut output = Output::new(&args.global);
    match run(&args, &mut output) {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(output.error(&error)),
    }
}

/// The command line of `cargo-dbsafe` (for shell completions).
pub(crate) fn command() -> clap::Command {
    <DbsafeArgs as Args>::augment_args(clap::Command::new("cargo-dbsafe"))
}

fn run(args: &DbsafeArgs, output: &mut Output) -> Result<u8> {
    let global = &args.global;
    validate_ids(&args.command)?;
    match &args.command {
        Command::Init => return init(global, output),
        // Offline: no target URL is resolved.
        Command::Check(check_args) => return super::check_cmd::run(check_args, global, output),
        Command::Completions(completions) => {
            super::completions::write(completions.shell);
            return Ok(super::exit::SUCCESS);
        }
        _ => {}
    }
    args.fleet.validate(global)?;
    let config = global.load_config()?;
    let target = match super::fleet_cmd::member_target(&config, &args.fleet, global)? {
        Some(member) => member,
        None if args.fleet.fleet.is_some() => return fleet(args, &config, output),
        None => global.resolve_target(&config)?,
    };
    match &args.command {
        Command::Init | Command::Check(_) | Command::Completions(_) => {
            unreachable!("handled above")
        }
        Command::Status => {
            let status = crate::status::status(&config, &target)
                .map_err(|e| missing_database(e, &target))?;
            output.report(&status);
        }
        Command::Setup(apply_args) => {
            // A protected target is confirmed before its database is created.
            let confirmation = global.confirm(&target, "set up (create the database, apply)")?;
            crate::preflight::guard_protected(&target, confirmation)?;
            if crate::setup::create_if_missing(&target.url)? {
                output.note(&format!("created database {}", target.url.redacted()));
            }
            apply_command(confirmation, &config, &target, apply_args, output)?;
        }
        Command::Plan(plan_args) => {
            let phase = output.phase(if plan_args.rehearse {
                "rehearsing the pending migrations on a throwaway clone"
            } else {
                "planning"
            });
            let plan = crate::plan::plan(&config, &target, plan_args.rehearse)?;
            drop(phase);
            output.report(&plan);
            if plan.blocked() {
                return Err(Error::Failed(
                    "apply would not get through: see the plan above".into(),
                ));
            }
        }
        Command::Apply(apply_args) => {
            let confirmation = global.confirm(&target, "apply migrations")?;
            apply_command(confirmation, &config, &target, apply_args, output)?;
        }
        Command::Runs(runs_args) => match &runs_args.show {
            None => {
                let runs = crate::runs::list_with_steps(&target, runs_args.limit)?;
                output.report(&RunsListing {
                    listing: &runs,
                    all: runs_args.all,
                });
            }
            Some(RunsCommand::Show { run, format, .. }) => {
                let id = match run {
                    Some(run) => run.clone(),
                    None => newest_run(&target)?.to_string(),
                };
                let detail = crate::runs::show(&target, &id)?;
                match format {
                    ReportFormat::Text => output.report(&detail),
                    ReportFormat::Markdown | ReportFormat::Html => {
                        show_report(&detail, *format, output)?;
                    }
                }
            }
        },
        Command::Resolve(resolve_args) => {
            let state = match resolve_args.state {
                StateArg::Applied => ResolvedState::Applied,
                StateArg::Reverted => ResolvedState::Reverted,
            };
            let confirmation = global.confirm(&target, "record a migration's state")?;
            resolve(
                &config,
                &target,
                &resolve_args.version,
                state,
                confirmation,
                resolve_args.reason.as_deref(),
                output,
            )?;
        }
        Command::Fingerprint(args) => {
            let mut db = crate::connection::Database::connect(
                &target.url,
                crate::connection::Create::Never,
            )?;
            let phase = output.phase("fingerprinting the schema and every table");
            let schema = crate::inspect::schema_fingerprint(&mut db)?;
            let tables = crate::inspect::data_fingerprints_parallel(&target.url, args.jobs)?;
            drop(phase);
            output.report(&Fingerprint {
                target: &target.name,
                schema: &schema,
                tables: &tables,
                show_schema: args.schema,
            });
        }
        Command::Snapshot(command) => {
            return super::snapshot_cmd::run(command, &config, &target, global, output);
        }
    }
    Ok(super::exit::SUCCESS)
}

fn init(global: &GlobalArgs, output: &mut Output) -> Result<u8> {
    let root = match &global.manifest_path {
        Some(_) => global.load_config()?.root,
        None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
    };
    output.report(&crate::init::init(&root)?);
    Ok(super::exit::SUCCESS)
}

fn apply_command(
    confirmation: crate::preflight::Confirmation,
    config: &crate::config::Config,
    target: &crate::target::Target,
    apply_args: &ApplyArgs,
    output: &mut Output,
) -> Result<()> {
    let options = ApplyOptions {
        confirmation,
        target_version: apply_args.target_version.clone(),
        rebind: apply_args.rebind,
        ..Default::default()
    };
    let outcome = apply(config, target, &options, output)?;
    if !outcome.applied.is_empty() {
        super::regenerate_schema(config, target, output);
    }
    Ok(())
}

/// The id of the target's newest run (`--last`).
fn newest_run(target: &crate::target::Target) -> Result<crate::run_id::RunId> {
    crate::runs::list(target, 1)?
        .into_iter()
        .next()
        .map(|r| r.id)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--last: the ledger of target `{}` has no runs yet",
                target.name
            ))
        })
}

/// A connection error on a database that does not exist says how to create it.
fn missing_database(error: Error, target: &crate::target::Target) -> Error {
    if !matches!(error, Error::Connect { .. })
        || crate::setup::database_exists(&target.url).unwrap_or(true)
    {
        return error;
    }
    Error::Failed(format!(
        "{error}\n  the database does not exist yet: `cargo dbsafe setup` creates it and applies the migrations"
    ))
}
