//! The CLI plumbing the three binaries share: global flags, loading the configuration and
//! target, the confirmation prompt, output (human or JSON Lines) and exit codes.

mod check_cmd;
mod completions;
mod dbrollback_cmd;
mod dbsafe_cmd;
mod dbverify_cmd;
pub mod exit;
mod fleet_cmd;
pub mod output;
mod progress;
pub mod render;
mod snapshot_cmd;

pub use dbrollback_cmd::main as dbrollback_main;
pub use dbsafe_cmd::main as dbsafe_main;
pub use dbverify_cmd::main as dbverify_main;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::preflight::Confirmation;
use crate::target::Target;

pub use output::Output;

/// How output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    /// Text for people (colours and progress bars on a terminal).
    Human,
    /// JSON Lines: one event per line with `type` and `run_id`.
    Json,
    /// GitHub annotations from `check` and `dbverify`; like human elsewhere.
    Github,
}

/// When to use colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR or CARGO_TERM_COLOR say otherwise.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The heading of the flags every command takes, apart from the command's own.
pub const GLOBAL_HEADING: &str = "Global options";

/// Flags every dbsafe command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub struct GlobalArgs {
    /// The target in dbsafe.toml (default: `default-target`, or the only one).
    #[arg(long, global = true, value_name = "NAME")]
    pub target: Option<String>,
    /// Use this database instead of the target's `url` / `url-env` (as diesel's
    /// --database-url; a relative SQLite path is relative to the current directory).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Use this migration directory instead of `migrations-dir` (as diesel's --migration-dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub migration_dir: Option<PathBuf>,
    /// Use this dbsafe.toml instead of searching for one.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Find dbsafe.toml at the root of the cargo workspace of this Cargo.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human, value_name = "FMT")]
    pub message_format: MessageFormat,
    /// Colours (also: CARGO_TERM_COLOR, NO_COLOR).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Confirm a protected target without a prompt (needed where there is no terminal).
    #[arg(long, global = true)]
    pub yes: bool,
}

impl GlobalArgs {
    /// Finds and loads dbsafe.toml (and `.env`) from the working directory.
    pub fn load_config(&self) -> Result<Config> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let mut config =
            Config::discover(&cwd, self.config.as_deref(), self.manifest_path.as_deref())?;
        config.load_dotenv();
        if let Some(dir) = &self.migration_dir {
            let dir = cwd.join(dir);
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "--migration-dir {}: no such directory",
                    dir.display()
                )));
            }
            let default_lock = config
                .migrations_dir
                .parent()
                .map(|p| p.join(crate::check::LOCK_FILE_NAME));
            if default_lock.as_ref() == Some(&config.check.lock_file) {
                config.check.lock_file = dir
                    .parent()
                    .unwrap_or(&cwd)
                    .join(crate::check::LOCK_FILE_NAME);
            }
            config.migrations_dir = dir;
            config.redetect_layout()?;
        }
        Ok(config)
    }

    /// Resolves the target to work on; `--database-url` replaces its URL.
    pub fn resolve_target(&self, config: &Config) -> Result<Target> {
        let Some(raw) = &self.database_url else {
            return Target::resolve(config, self.target.as_deref());
        };
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let target = config.target(self.target.as_deref())?;
        Ok(Target {
            name: target.name.clone(),
            environment: target.environment,
            protected: target.protected,
            url: crate::target::DatabaseUrl::parse(raw, &cwd)?,
        })
    }

    /// How the target was chosen and confirmed. For a protected target named explicitly
    /// without --yes, asks on the terminal when there is one (never in CI).
    pub fn confirm(&self, target: &Target, action: &str) -> Result<Confirmation> {
        let explicit_target = self.target.is_some();
        let mut confirmed = self.yes;
        if target.protected && explicit_target && !confirmed && interactive() {
            confirmed = output::prompt_confirmation(target, action)?;
        }
        Ok(Confirmation {
            explicit_target,
            confirmed,
        })
    }
}

/// Whether a person can answer a prompt: stdin and stderr are terminals and this is not CI.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !in_ci()
}

/// Whether this runs in CI (the `CI` variable is set to anything but `false`/`0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Parses the process arguments of `cargo NAME ...` (or `cargo-NAME ...`) into `C`, with
/// `version` (the binary's, with its git commit) for `--version`; exits on bad usage.
pub(crate) fn parse_cargo<C: clap::Parser>(
    subcommand: &str,
    version: &'static str,
) -> (C, Vec<std::ffi::OsString>) {
    let argv = cargo_args(subcommand);
    let parsed = C::command()
        .mut_subcommand(subcommand, |c| c.version(version))
        .try_get_matches_from(&argv)
        .and_then(|m| C::from_arg_matches(&m))
        .unwrap_or_else(|e| usage_error(e, &argv));
    (parsed, argv)
}

/// Lets a binary run both as `cargo NAME ...` (cargo passes NAME first) and directly as
/// `cargo-NAME ...`: inserts NAME when it is missing.
pub fn cargo_args(subcommand: &str) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != subcommand) {
        args.insert(1.min(args.len()), subcommand.into());
    }
    args
}

/// Reports a command line clap could not parse, then exits: help and version print as
/// usual (exit 0); an error exits 2 and, with `--message-format json`, also writes its
/// `{"type":"error"}` line on stdout like every other error.
pub fn usage_error(error: clap::Error, argv: &[std::ffi::OsString]) -> ! {
    let json = argv
        .windows(2)
        .any(|w| w[0] == "--message-format" && w[1] == "json")
        || argv.iter().any(|a| a == "--message-format=json");
    if error.use_stderr() && json {
        let text = error.render().to_string();
        let message = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
        let line = render::error_line(exit::USAGE, message, crate::error::Reason::Usage);
        println!("{}", serde_json::Value::Object(line.object()));
    }
    error.exit()
}

/// Regenerates the schema file after the schema changed (`diesel print-schema`, when
/// diesel.toml asks for one) and says what happened.
pub(crate) fn regenerate_schema(
    config: &crate::config::Config,
    target: &crate::target::Target,
    output: &Output,
) {
    output.report(&crate::print_schema::regenerate(config, target));
}
