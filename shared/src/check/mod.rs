//! `cargo dbsafe check`: offline checks for pre-commit hooks and CI. No database is
//! touched and no target URL is resolved: the migrations directory's layout
//! ([`layout`]), the checksums in `dbsafe.lock` ([`lockfile`]) and the lint of each
//! migration's SQL ([`lint`]) become [`Finding`]s, each naming its file, line and rule.
//!
//! The layout and the lock file are checked for every migration; the migrations' content
//! (their SQL, a usable down.sql) only for those not recorded in dbsafe.lock with the
//! checksums they have now: new or edited work. The recorded ones shipped already and are
//! not re-litigated, unless `--all`.

pub mod layout;
pub mod lint;
pub mod lockfile;

use std::path::Path;

use serde::Serialize;

pub use crate::config::LOCK_FILE_NAME;
pub use crate::lint_rules::Level;
pub use lockfile::LockOutcome;

use crate::config::{Config, ConfigError, SnapshotPolicy, TargetConfig};
use crate::dialect::Backend;
use crate::error::{Error, Result};
use crate::migrations::Migration;

/// One problem found, located where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's name, as `[lint]` and `-- dbsafe:allow` take it.
    pub rule: String,
    /// `error` or `warning`.
    pub severity: Level,
    /// The file concerned, relative to the project root with `/` separators.
    pub file: Option<String>,
    /// The 1-based line in `file`.
    pub line: Option<usize>,
    /// What is wrong and why it matters.
    pub message: String,
    /// The safer way to write it, or how to fix it.
    pub help: Option<String>,
}

impl Finding {
    /// A finding without a location.
    pub fn new(rule: impl Into<String>, severity: Level, message: impl Into<String>) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            file: None,
            line: None,
            message: message.into(),
            help: None,
        }
    }

    /// The finding located in `file` (at `line`, when known).
    pub fn at(mut self, file: String, line: Option<usize>) -> Finding {
        self.file = Some(file);
        self.line = line;
        self
    }

    /// The finding with its help.
    pub fn help(mut self, help: impl Into<String>) -> Finding {
        self.help = Some(help.into());
        self
    }
}

/// What `check` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// `--target NAME`: whose URL scheme gives the dialect and whose protection decides
    /// whether apply takes a snapshot.
    pub target: Option<String>,
    /// `--update-lock`: record new migrations in dbsafe.lock.
    pub update_lock: bool,
    /// `--allow-edit NAME`: with `--update-lock`, accept these edited, deleted or
    /// out-of-order migrations.
    pub allow_edit: Vec<String>,
    /// `--all`: lint every migration, also those recorded in dbsafe.lock.
    pub all: bool,
}

/// Where the lint dialect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialectSource {
    /// The scheme of the target's `url` in dbsafe.toml.
    TargetUrl,
    /// The scheme of the URL in the target's `url-env` variable.
    UrlEnv,
    /// `[lint] dialect`.
    Config,
    /// Nothing said: PostgreSQL.
    Default,
}

/// What `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Every finding, by file and line.
    pub findings: Vec<Finding>,
    /// How many migrations were checked.
    pub migrations: usize,
    /// How many of them were linted: those not recorded in dbsafe.lock (every one with
    /// `--all`).
    pub linted: usize,
    /// The dialect the SQL was linted in.
    pub dialect: Backend,
    /// Where the dialect came from.
    pub dialect_source: DialectSource,
    /// The target whose settings were used, when one was chosen.
    pub target: Option<String>,
    /// What happened to dbsafe.lock.
    pub lock: LockOutcome,
}

impl CheckReport {
    /// The number of findings at `level`.
    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.severity == level).count()
    }
}

/// Runs the offline checks on the migrations of `config`, writing dbsafe.lock only with
/// `--update-lock`. Errors are for what stops the check itself (an unreadable migrations
/// directory, `--allow-edit` without `--update-lock`); problems of the migrations are
/// findings.
pub fn check(config: &Config, options: &CheckOptions) -> Result<CheckReport> {
    if !options.allow_edit.is_empty() && !options.update_lock {
        return Err(Error::Usage(
            "--allow-edit only works with --update-lock: `cargo dbsafe check --update-lock \
             --allow-edit NAME`"
                .into(),
        ));
    }
    let target = match config.target(options.target.as_deref()) {
        Ok(target) => Some(target),
        Err(ConfigError::NoTarget { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    let (dialect, dialect_source) = dialect(config, target);
    let scan = crate::layout::scan(config.layout, &config.migrations_dir)?;
    let mut findings = layout::findings(config, &scan)?;
    let migrations = scan.migrations;
    let lock = lockfile::check(
        config,
        &migrations,
        options.update_lock,
        &options.allow_edit,
    )?;
    findings.extend(lock.findings);
    let linted: Vec<&Migration> = migrations
        .iter()
        .filter(|m| options.all || !lock.settled.contains(&m.name))
        .collect();
    let policy = lint::Policy::new(config);
    let context = lint::Context {
        config,
        policy: &policy,
        dialect,
        no_snapshot: no_snapshot(config, target),
    };
    findings.extend(linted.iter().flat_map(|m| layout::content(config, m)));
    findings.extend(lint_all(&context, &linted));
    findings.retain(|f| policy.level(&f.rule).is_some());
    for finding in &mut findings {
        if let Some(level) = policy.level(&finding.rule) {
            finding.severity = level;
        }
    }
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                f.file.is_none(),
                f.file.clone(),
                f.line.unwrap_or(0),
                f.severity,
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(CheckReport {
        findings,
        migrations: migrations.len(),
        linted: linted.len(),
        dialect,
        dialect_source,
        target: target.map(|t| t.name.clone()),
        lock: lock.outcome,
    })
}

/// Lints every migration, on several threads when there are many.
fn lint_all(context: &lint::Context, migrations: &[&Migration]) -> Vec<Finding> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(migrations.len().div_ceil(16))
        .max(1);
    if threads == 1 {
        return migrations
            .iter()
            .flat_map(|m| lint::lint_migration(context, m))
            .collect();
    }
    let chunk = migrations.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = migrations
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .flat_map(|m| lint::lint_migration(context, m))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

/// The dialect to lint in: the scheme of the target's URL when it is known without
/// resolving it (written in dbsafe.toml, or its `url-env` variable set), else `[lint]
/// dialect`, else PostgreSQL.
fn dialect(config: &Config, target: Option<&TargetConfig>) -> (Backend, DialectSource) {
    if let Some(target) = target {
        if let Some(dialect) = target.url.as_deref().and_then(scheme_dialect) {
            return (dialect, DialectSource::TargetUrl);
        }
        if target.url.is_none()
            && let Some(dialect) = std::env::var(&target.url_env)
                .ok()
                .as_deref()
                .and_then(scheme_dialect)
        {
            return (dialect, DialectSource::UrlEnv);
        }
    }
    match config.lint.dialect {
        Some(dialect) => (dialect, DialectSource::Config),
        None => (Backend::Postgres, DialectSource::Default),
    }
}

/// The dialect a database URL's scheme names, as the target module reads it: server
/// schemes, `sqlite:`/`file:` and a bare path (SQLite). `None` for an empty or unknown URL.
fn scheme_dialect(url: &str) -> Option<Backend> {
    let url = url.trim().to_ascii_lowercase();
    if url.is_empty() {
        return None;
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        Some(Backend::Mysql)
    } else if url.starts_with("sqlite:") || url.starts_with("file:") || !url.contains(':') {
        Some(Backend::Sqlite)
    } else {
        None
    }
}

/// Why apply takes no snapshot before the migrations of `target`; `None` when it takes one.
fn no_snapshot(config: &Config, target: Option<&TargetConfig>) -> Option<String> {
    match config.apply.snapshot {
        SnapshotPolicy::Always => None,
        SnapshotPolicy::Never => {
            Some("`[apply] snapshot = \"never\"` takes no snapshot before apply".to_owned())
        }
        SnapshotPolicy::Protected => match target {
            Some(target) if target.protected => None,
            Some(target) => Some(format!(
                "`[apply] snapshot = \"protected\"` takes none on target `{}`, which is not \
                 protected",
                target.name
            )),
            None if config.targets.values().all(|t| t.protected) => None,
            None => Some(
                "`[apply] snapshot = \"protected\"` takes none on unprotected targets".to_owned(),
            ),
        },
    }
}

/// `path` relative to the project root, with `/` separators (as shown in findings and
/// GitHub annotations); absolute when it lies outside the root.
pub(crate) fn rel(config: &Config, path: &Path) -> String {
    let shown = path.strip_prefix(&config.root).unwrap_or(path);
    let text = shown.to_string_lossy();
    if std::path::MAIN_SEPARATOR == '/' {
        text.into_owned()
    } else {
        text.replace(std::path::MAIN_SEPARATOR, "/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(scheme_dialect("postgres://a@b/c"), Some(Backend::Postgres));
        assert_eq!(scheme_dialect("MARIADB://a@b/c"), Some(Backend::Mysql));
        assert_eq!(scheme_dialect("sqlite://dev.db"), Some(Backend::Sqlite));
        assert_eq!(scheme_dialect("dev.db"), Some(Backend::Sqlite));
        assert_eq!(scheme_dialect("oracle://x"), None);
        assert_eq!(scheme_dialect(""), None);
    }
}
