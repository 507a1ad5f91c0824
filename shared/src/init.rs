//! `cargo dbsafe init`: writes a commented dbsafe.toml for this repository and keeps
//! dbsafe's local state (`.dbsafe/`) out of git. Never overwrites.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::{Detected, Layout};

/// What `init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    /// The new dbsafe.toml.
    pub config: PathBuf,
    /// Whether `.dbsafe/` was added to .gitignore (false when already there).
    pub gitignore_updated: bool,
    /// The layout written, and what gave it away.
    pub layout: Detected,
    /// The `migrations-dir` written.
    pub migrations_dir: String,
}

/// Directories where projects keep plain SQL migrations, tried after `migrations`.
const SQL_DIRS: &[&str] = &["migrations", "db/migrations", "sql/migrations", "sql"];

/// What to do after `init`, one command per line, for the CLI to print.
pub const NEXT_STEPS: &[&str] = &[
    "set DATABASE_URL (or write it in a .env file), as for diesel",
    "cargo dbsafe setup      # create the database if it is missing, then apply",
    "cargo dbsafe status     # what is applied, what is pending",
    "cargo dbsafe check --update-lock   # record the migrations in dbsafe.lock; commit it",
];

/// Writes `root/dbsafe.toml`, refusing to replace an existing one.
pub fn init(root: &Path) -> Result<InitOutcome> {
    let config = root.join("dbsafe.toml");
    if config.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; dbsafe init never overwrites it. Edit it, or move it away and run init again",
            config.display()
        )));
    }
    let migrations_dir = diesel_migrations_dir(root)
        .or_else(|| {
            SQL_DIRS
                .iter()
                .find(|d| root.join(d).is_dir())
                .map(|d| (*d).to_owned())
        })
        .unwrap_or_else(|| "migrations".to_owned());
    let layout = crate::layout::detect(root, &root.join(&migrations_dir)).map_err(|message| {
        Error::Usage(format!(
            "cannot tell this project's migration layout: {message}; nothing was written"
        ))
    })?;
    fs::write(&config, template(&migrations_dir, layout.layout))
        .map_err(|e| Error::io(&config, e))?;
    let gitignore = root.join(".gitignore");
    let existing = match fs::read_to_string(&gitignore) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(gitignore, e)),
    };
    let ignored = existing
        .lines()
        .any(|l| matches!(l.trim(), ".dbsafe" | ".dbsafe/" | "/.dbsafe" | "/.dbsafe/"));
    if !ignored {
        let separator = if existing.is_empty() || existing.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        let text = format!(
            "{existing}{separator}# dbsafe's local snapshots, journal and target bindings\n.dbsafe/\n"
        );
        fs::write(&gitignore, text).map_err(|e| Error::io(gitignore, e))?;
    }
    Ok(InitOutcome {
        config,
        gitignore_updated: !ignored,
        layout,
        migrations_dir,
    })
}

/// diesel.toml's `[migrations_directory] dir`, when there is one.
fn diesel_migrations_dir(root: &Path) -> Option<String> {
    let text = fs::read_to_string(root.join("diesel.toml")).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("migrations_directory")?
        .get("dir")?
        .as_str()
        .map(str::to_owned)
}

fn template(migrations_dir: &str, layout: Layout) -> String {
    format!(
        r#"# dbsafe.toml: how dbsafe applies, records and protects this project's migrations.
# Every key is documented in dbsafe's docs/dbsafe.reference.toml.

# How the migrations are laid out: "diesel" (VERSION_NAME/up.sql + down.sql), "sqlx"
# (VERSION_NAME.sql or .up.sql + .down.sql, recorded in _sqlx_migrations) or "sql-files"
# (plain ordered .sql files, recorded in dbsafe's ledger only).
layout = "{layout}"

# The migration directory (diesel.toml's [migrations_directory] is used when this is absent).
migrations-dir = "{migrations_dir}"

# Where snapshots, the journal and target bindings live (keep it out of git).
# snapshot-dir = ".dbsafe/snapshots"

# The target used when --target is not given.
default-target = "dev"

[targets.dev]
# The URL comes from DATABASE_URL (a .env file beside this file works too), as with diesel.
url-env = "DATABASE_URL"
environment = "development"

# A production target is protected: it needs --target production and a confirmation
# (--yes where there is no terminal).
# [targets.production]
# url-env = "PRODUCTION_DATABASE_URL"
# environment = "production"

[apply]
# What to do when a migration fails: "revert" (undo this run's migrations with down.sql),
# "stop" (keep what committed), or "restore" (restore the pre-run snapshot).
on-failure = "revert"
# How long to wait for another apply holding the target's lock.
lock-wait = "60s"
# lock_timeout of each migration statement; a lock timeout is retried lock-retries times.
lock-timeout = "5s"
lock-retries = 3
# statement_timeout of each migration statement: a migration that runs longer fails (and is
# reverted) instead of holding its locks for hours. Raise it for long data migrations; "0"
# means no limit. Setting it turns squawk's require-statement-timeout lint off.
statement-timeout = "5m"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_config_that_parses_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".gitignore"), "/target").unwrap();
        let outcome = init(dir.path()).unwrap();
        assert!(outcome.gitignore_updated);
        let text = fs::read_to_string(&outcome.config).unwrap();
        let config = crate::config::Config::parse(&outcome.config, &text).unwrap();
        assert!(config.apply.statement_timeout.is_some_and(|t| !t.is_zero()));
        assert_eq!(
            fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
            "/target\n# dbsafe's local snapshots, journal and target bindings\n.dbsafe/\n"
        );
        assert!(init(dir.path()).is_err());
        assert_eq!(fs::read_to_string(&outcome.config).unwrap(), text);
    }
}
