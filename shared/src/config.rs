//! dbsafe.toml: finding, parsing and validating the configuration.
//!
//! [`Config::discover`] finds the file (`--config`, `--manifest-path` or a walk up from the
//! working directory), [`Config::parse`] checks it strictly: an unknown key, a wrong type or
//! a bad value is a [`ConfigProblem`] with its line, and every problem of the file is
//! reported at once in [`ConfigError::Invalid`]. `docs/dbsafe.reference.toml` documents
//! every key.

mod check;
mod choice;
mod duration;
mod error;
mod fleet;
mod sql_files;
#[cfg(test)]
mod tests;
mod verify;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dialect::Backend;
use crate::sql_text::Lines;

pub use crate::layout::Layout;

pub(crate) use check::with_article;
pub(crate) use choice::{Choice, parse_choice};
pub use duration::parse_duration;
pub use error::{ConfigError, ConfigProblem};
pub use fleet::{Canary, Databases, FleetConfig, Servers};
pub use verify::{
    BUILTINS, Comparison, Expectation, Invariant, InvariantSeverity, KeyColumns, Phase, Seed,
    VerifyConfig,
};

/// The name of dbsafe's configuration file, at the root of the user's repository.
pub const FILE_NAME: &str = "dbsafe.toml";

/// The lock file's name (in the migrations directory's parent, unless `[check] lock-file`).
pub const LOCK_FILE_NAME: &str = "dbsafe.lock";

/// [`Config::layout_reason`] when dbsafe.toml sets `layout`.
pub const LAYOUT_SET: &str = "set in dbsafe.toml";

/// The name of the target dbsafe uses when `dbsafe.toml` defines none.
pub const DEFAULT_TARGET: &str = "default";

/// The environment variable holding a target's URL when neither `url` nor `url-env` is set.
pub const DEFAULT_URL_ENV: &str = "DATABASE_URL";

/// dbsafe's checked configuration: what `dbsafe.toml` says, with every default filled in and
/// every path absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `dbsafe.toml` that was read; `None` when there is none (defaults are used).
    pub file: Option<PathBuf>,
    /// The directory holding `dbsafe.toml` (or the start directory when there is none).
    pub root: PathBuf,
    /// Where the migrations live: `migrations-dir`, else diesel.toml's
    /// `[migrations_directory] dir`, else `ROOT/migrations`.
    pub migrations_dir: PathBuf,
    /// How the migrations are laid out (`layout`, else detected from the files and the
    /// crate's dependencies).
    pub layout: Layout,
    /// Why this layout: `set in dbsafe.toml`, or what detection found.
    pub layout_reason: String,
    /// Where snapshots and the local journal live: `snapshot-dir`, else
    /// `ROOT/.dbsafe/snapshots`.
    pub snapshot_dir: PathBuf,
    /// The target used when `--target` is not given (`default-target`).
    pub default_target: Option<String>,
    /// The targets by name (`[targets.NAME]`); when the file defines none, a single target
    /// named `default` reading `DATABASE_URL`, environment development.
    pub targets: BTreeMap<String, TargetConfig>,
    /// How `apply` behaves (`[apply]`).
    pub apply: ApplyConfig,
    /// How snapshots are taken and kept (`[snapshot]`).
    pub snapshot: SnapshotConfig,
    /// Built-in checks of `cargo dbverify` (`[verify]`).
    pub verify: VerifyConfig,
    /// The user's own SQL assertions (`[[invariant]]`).
    pub invariants: Vec<Invariant>,
    /// SQL run at the end of every successful apply (`[[seed]]`).
    pub seeds: Vec<Seed>,
    /// What `cargo dbsafe check` requires of the migration files (`[check]`).
    pub check: CheckConfig,
    /// How `cargo dbsafe check` lints the migrations' SQL (`[lint]`).
    pub lint: LintConfig,
    /// The fleets by name (`[fleets.NAME]`).
    pub fleets: BTreeMap<String, FleetConfig>,
}

/// What `cargo dbsafe check` requires of the migration files (`[check]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Every migration needs a non-empty down.sql (`require-down`, default true).
    pub require_down: bool,
    /// The lock file of the migrations' checksums (`lock-file`, default `dbsafe.lock` in
    /// the migrations directory's parent).
    pub lock_file: PathBuf,
    /// How the round trip reports a down.sql that restores every column but in another
    /// order (`roundtrip-column-order`, default warning).
    pub roundtrip_column_order: Severity,
}

/// How a finding that may be tolerated is reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported, does not fail the check.
    #[default]
    Warning,
    /// Fails the check.
    Error,
}

/// How `cargo dbsafe check` lints the migrations' SQL (`[lint]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    /// The dialect when the target's URL is not known offline (`dialect`); `None`: postgres.
    pub dialect: Option<Backend>,
    /// The PostgreSQL version squawk's rules assume (`pg-version`, like "15" or "16.2").
    pub pg_version: Option<String>,
    /// Rules switched off (`allow`).
    pub allow: Vec<String>,
    /// Rules reported as warnings (`warn`).
    pub warn: Vec<String>,
    /// Rules reported as errors, failing the check (`deny`).
    pub deny: Vec<String>,
}

/// One database dbsafe can work on (`[targets.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// The target's name, as given to `--target`.
    pub name: String,
    /// The URL written in the file (`url`); when `None`, the URL is read from `url_env`.
    pub url: Option<String>,
    /// The environment variable holding the URL (`url-env`, default `DATABASE_URL`).
    pub url_env: String,
    /// A URL that reaches PostgreSQL directly, bypassing a connection pooler (`direct-url`):
    /// when it (or `direct_url_env`) is set, dbsafe does all its work through it.
    pub direct_url: Option<String>,
    /// The environment variable holding the direct URL (`direct-url-env`).
    pub direct_url_env: Option<String>,
    /// What kind of database this is (`environment`).
    pub environment: Environment,
    /// Whether the target is only touched when named with `--target` and confirmed
    /// (`protected`, default: true for production).
    pub protected: bool,
}

/// The kind of database a target is. Production targets are protected by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's own database.
    Development,
    /// A database for automated tests.
    Test,
    /// A pre-production database.
    Staging,
    /// The live database.
    Production,
}

/// What `apply` does when a migration or the verification after it fails (`on-failure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Keep what committed and mark the run failed.
    Stop,
    /// Revert the run's applied migrations with their `down.sql`.
    #[default]
    Revert,
    /// Restore the snapshot taken before the run.
    Restore,
}

/// When `apply` takes a snapshot before running migrations (`[apply] snapshot`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotPolicy {
    /// Before every apply that has migrations to run.
    Always,
    /// Only on protected targets.
    #[default]
    Protected,
    /// Never.
    Never,
}

/// How a snapshot is taken (`[snapshot] strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotStrategy {
    /// The usual strategy for the target's backend: `pg-dump`, `mysqldump` or
    /// `sqlite-backup`.
    #[default]
    Auto,
    /// PostgreSQL: `pg_dump` in custom format.
    PgDump,
    /// PostgreSQL: `CREATE DATABASE ... TEMPLATE`, a fast clone on the same server.
    Template,
    /// MySQL/MariaDB: `mysqldump --single-transaction`.
    Mysqldump,
    /// SQLite: the online backup API.
    SqliteBackup,
}

/// How `apply` behaves (`[apply]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConfig {
    /// What to do when a migration or verification fails (`on-failure`, default revert).
    pub on_failure: FailurePolicy,
    /// When to snapshot before applying (`snapshot`, default protected).
    pub snapshot: SnapshotPolicy,
    /// How long to wait for another apply's lock on the target (`lock-wait`, default 60s).
    pub lock_wait: Duration,
    /// The `lock_timeout` of each migration statement (`lock-timeout`, default 5s; never 0).
    pub lock_timeout: Duration,
    /// The `statement_timeout` of each migration statement (`statement-timeout`); `None`
    /// (the default, or `"0"`) means no limit.
    pub statement_timeout: Option<Duration>,
    /// How many times a migration that hit the lock timeout is retried (`lock-retries`,
    /// default 3).
    pub lock_retries: u32,
    /// PostgreSQL preflight: refuse to apply while a transaction is older than this
    /// (`max-transaction-age`); `None` (the default, or `"0"`) skips the check.
    pub max_transaction_age: Option<Duration>,
    /// PostgreSQL preflight: refuse to apply while the server has more connections than
    /// this (`max-connections`); `None` (the default) skips the check.
    pub max_connections: Option<u32>,
    /// Run dbverify's checks and the `after` invariants after the migrations, inside the
    /// run; a failure triggers the failure policy (`verify`, default false).
    pub verify: bool,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        ApplyConfig {
            on_failure: FailurePolicy::default(),
            snapshot: SnapshotPolicy::default(),
            lock_wait: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: None,
            lock_retries: 3,
            max_transaction_age: None,
            max_connections: None,
            verify: false,
        }
    }
}

/// How snapshots are taken and kept (`[snapshot]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// How snapshots are taken (`strategy`, default auto).
    pub strategy: SnapshotStrategy,
    /// Pruning keeps at least this many snapshots per target (`keep-last`); `None` keeps all.
    pub keep_last: Option<u32>,
    /// Pruning keeps snapshots younger than this many days (`keep-days`); `None` keeps all.
    pub keep_days: Option<u32>,
    /// The directory of the PostgreSQL client tools to use (`pg-bin-dir`; the environment's
    /// `DBSAFE_PG_BIN_DIR` overrides it); `None`: the newest found that fits the server.
    pub pg_bin_dir: Option<PathBuf>,
    /// A restore keeps the database it replaced, renamed beside the target
    /// (`keep-replaced`, default false: dropped once the swap committed).
    pub keep_replaced: bool,
}

impl Config {
    /// Detects the layout again for a new `migrations_dir` (`--migration-dir`), unless
    /// dbsafe.toml sets it.
    pub fn redetect_layout(&mut self) -> Result<(), ConfigError> {
        if self.layout_reason != LAYOUT_SET {
            let detected = crate::layout::detect(&self.root, &self.migrations_dir)
                .map_err(|message| ConfigError::AmbiguousLayout { message })?;
            self.layout = detected.layout;
            self.layout_reason = detected.reason;
        }
        crate::layout::set_current(self.layout);
        Ok(())
    }

    /// Finds and loads the configuration.
    ///
    /// `explicit` (`--config PATH`, which must exist) wins; else, with `manifest_path`
    /// (`--manifest-path` to a Cargo.toml), `dbsafe.toml` is looked for at the root of the
    /// cargo workspace (through `cargo metadata --no-deps`); else every directory from
    /// `start_dir` up to the filesystem root is searched. When no file is found the defaults
    /// apply, with `root` = `start_dir` (or the cargo workspace root). Relative paths are
    /// taken from `start_dir`.
    pub fn discover(
        start_dir: &Path,
        explicit: Option<&Path>,
        manifest_path: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let start_dir = absolute(start_dir);
        if let Some(path) = explicit {
            let path = absolute(&start_dir.join(path));
            if !path.exists() {
                return Err(ConfigError::NotFound { path });
            }
            return Config::load(&path);
        }
        if let Some(manifest) = manifest_path {
            let root = workspace_root(&start_dir.join(manifest))?;
            let file = root.join(FILE_NAME);
            return if file.is_file() {
                Config::load(&file)
            } else {
                Config::assemble(None, root, check::Settings::default())
            };
        }
        for dir in start_dir.ancestors() {
            let file = dir.join(FILE_NAME);
            if file.is_file() {
                return Config::load(&file);
            }
        }
        Config::assemble(None, start_dir, check::Settings::default())
    }

    /// Parses and checks the text of `file`; `root` is the file's directory.
    ///
    /// Besides the text, only `diesel.toml` beside `file` is read (when `migrations-dir` is
    /// not set), for its `[migrations_directory] dir`.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = absolute(file);
        let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let settings = check::check(text).map_err(|problems| ConfigError::Invalid {
            file: file.clone(),
            problems,
        })?;
        Config::assemble(Some(file), root, settings)
    }

    /// The target to work on: `name` (from `--target`), else `default-target`, else the only
    /// target, else the one named `default`.
    pub fn target(&self, name: Option<&str>) -> Result<&TargetConfig, ConfigError> {
        let known = || self.targets.keys().cloned().collect::<Vec<_>>();
        let only = match self.targets.len() {
            1 => self.targets.keys().next().map(String::as_str),
            _ => None,
        };
        let fallback = self
            .targets
            .contains_key(DEFAULT_TARGET)
            .then_some(DEFAULT_TARGET);
        let chosen = name
            .or(self.default_target.as_deref())
            .or(only)
            .or(fallback);
        let Some(chosen) = chosen else {
            return Err(ConfigError::NoTarget { known: known() });
        };
        self.targets
            .get(chosen)
            .ok_or_else(|| ConfigError::UnknownTarget {
                name: chosen.to_owned(),
                known: known(),
            })
    }

    /// Loads `ROOT/.env`, when present, into the process environment without overriding
    /// variables already set, as diesel users expect for `DATABASE_URL`. Like diesel_cli, a
    /// missing or unreadable `.env` is ignored.
    pub fn load_dotenv(&self) {
        let _ = dotenvy::from_path(self.root.join(".env"));
    }

    /// Reads and parses `file`.
    fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        Config::parse(file, &text)
    }

    /// Turns checked settings into a configuration: paths made absolute from `root`,
    /// diesel.toml consulted for the migrations directory, the default target added.
    fn assemble(
        file: Option<PathBuf>,
        root: PathBuf,
        settings: check::Settings,
    ) -> Result<Config, ConfigError> {
        let root = absolute(&root);
        let migrations_dir = match settings.migrations_dir {
            Some(dir) => absolute(&root.join(dir)),
            None => diesel_migrations_dir(&root)?.unwrap_or_else(|| root.join("migrations")),
        };
        let (layout, layout_reason) = match settings.layout {
            Some(layout) => (layout, LAYOUT_SET.to_owned()),
            None => {
                let detected = crate::layout::detect(&root, &migrations_dir)
                    .map_err(|message| ConfigError::AmbiguousLayout { message })?;
                (detected.layout, detected.reason)
            }
        };
        crate::layout::set_current(layout);
        let snapshot_dir = match settings.snapshot_dir {
            Some(dir) => absolute(&root.join(dir)),
            None => root.join(".dbsafe").join("snapshots"),
        };
        let config_file = file.clone().unwrap_or_else(|| root.join(FILE_NAME));
        let sql_files = sql_files::resolve(&config_file, &root, &settings.sql_files)?;
        let invariants = sql_files::read_invariants(&sql_files, settings.invariants)?;
        let seeds = settings
            .seeds
            .into_iter()
            .map(|mut seed| {
                seed.sql = sql_files::read(&sql_files, &seed.sql)?;
                Ok(seed)
            })
            .collect::<Result<Vec<Seed>, ConfigError>>()?;
        let lock_file = match settings.check.lock_file {
            Some(file) => absolute(&root.join(file)),
            None => migrations_dir
                .parent()
                .unwrap_or(&root)
                .join(LOCK_FILE_NAME),
        };
        let check = CheckConfig {
            require_down: settings.check.require_down,
            lock_file,
            roundtrip_column_order: settings.check.roundtrip_column_order,
        };
        let mut targets = settings.targets;
        if targets.is_empty() {
            let target = TargetConfig {
                name: DEFAULT_TARGET.to_owned(),
                url: None,
                url_env: DEFAULT_URL_ENV.to_owned(),
                direct_url: None,
                direct_url_env: None,
                environment: Environment::Development,
                protected: false,
            };
            targets.insert(target.name.clone(), target);
        }
        Ok(Config {
            file,
            root,
            migrations_dir,
            layout,
            layout_reason,
            snapshot_dir,
            default_target: settings.default_target,
            targets,
            apply: settings.apply,
            snapshot: settings.snapshot,
            verify: settings.verify,
            invariants,
            seeds,
            check,
            lint: settings.lint,
            fleets: settings.fleets,
        })
    }
}

/// `path` made absolute from the current directory, without resolving symlinks (`.`
/// components are dropped). Left as is in the unlikely case the current directory is unknown.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The root of the cargo workspace holding `manifest`, from `cargo metadata --no-deps`.
fn workspace_root(manifest: &Path) -> Result<PathBuf, ConfigError> {
    cargo_metadata::MetadataCommand::new()
        .manifest_path(manifest)
        .no_deps()
        .exec()
        .map(|metadata| metadata.workspace_root.into_std_path_buf())
        .map_err(|error| ConfigError::Manifest {
            path: manifest.to_path_buf(),
            message: error.to_string().trim().to_owned(),
        })
}

/// The `[migrations_directory] dir` of `ROOT/diesel.toml`, relative to that file's
/// directory; `None` when the file or the setting is absent. Other keys are diesel's and
/// are ignored.
fn diesel_migrations_dir(root: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let path = root.join("diesel.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    let invalid = |message: String| ConfigError::DieselToml {
        path: path.clone(),
        message,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|error| {
        let line = error
            .span()
            .map_or(1, |span| Lines::new(&text).line(span.start));
        invalid(format!("line {line}: {}", error.message().trim()))
    })?;
    let Some(section) = table.get("migrations_directory") else {
        return Ok(None);
    };
    let Some(section) = section.as_table() else {
        return Err(invalid(format!(
            "`migrations_directory` must be a table, found {}",
            check::with_article(section.type_str())
        )));
    };
    match section.get("dir") {
        Some(toml::Value::String(dir)) => Ok(Some(absolute(&root.join(dir)))),
        Some(other) => Err(invalid(format!(
            "`migrations_directory.dir` must be a string, found {}",
            check::with_article(other.type_str())
        ))),
        None => Err(invalid(
            "[migrations_directory] has no `dir` key (diesel requires it)".to_owned(),
        )),
    }
}
