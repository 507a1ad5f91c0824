//! The core's error type: every failure names what is wrong and how to fix it, and maps to
//! one of the documented exit codes.

use std::path::PathBuf;

use crate::config::ConfigError;

/// How bad an error is; the CLI turns this into the documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The command ran and found problems, or an apply failed and was undone (exit 1).
    Failed,
    /// Bad usage or configuration; nothing was touched (exit 2).
    Usage,
    /// Refused by a guard: protection, identity, dirty target, lock, checksum (exit 3).
    Refused,
    /// The database needs attention: dbsafe could not undo a failure (exit 4).
    Attention,
}

/// Every error the dbsafe core returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// dbsafe.toml is missing, malformed or names an unknown target.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A database URL that dbsafe cannot use.
    #[error("{0}")]
    BadUrl(String),
    /// The target has no URL: neither `url` nor the variable `url-env` names is set.
    #[error(
        "target `{target}` has no database URL: set the environment variable {var} (a .env file beside dbsafe.toml works too) or give the target a `url` in dbsafe.toml"
    )]
    NoUrl {
        /// The target's name.
        target: String,
        /// The environment variable that was read.
        var: String,
    },
    /// Connecting to the database failed.
    #[error(
        "cannot connect to {url}: {message}\n  check that the server is running and the URL (host, port, user, database) is right"
    )]
    Connect {
        /// The URL with its password hidden.
        url: String,
        /// The driver's message.
        message: String,
    },
    /// A SQLite database file that does not exist, for a command that only reads.
    #[error(
        "SQLite database {path} does not exist: check the URL, or run `cargo dbsafe apply` to create it"
    )]
    NoSqliteFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// The migrations directory is missing or unreadable.
    #[error(
        "migrations directory {path} {problem}: create it, or set `migrations-dir` in dbsafe.toml (or `[migrations_directory] dir` in diesel.toml)"
    )]
    MigrationsDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// One migration directory is malformed.
    #[error("migration {path}: {problem}")]
    BadMigration {
        /// The migration's directory or file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A query failed outside of a migration (ledger, inspection).
    #[error("{context}: {message}")]
    Database {
        /// What dbsafe was doing.
        context: String,
        /// The server's message.
        message: String,
    },
    /// A guard refused the command (exit 3).
    #[error("{0}")]
    Refused(String),
    /// Bad usage that clap could not catch (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed in a controlled way (exit 1): the message says what happened.
    #[error("{0}")]
    Failed(String),
    /// A failure dbsafe could not undo (exit 4): the message says exactly what state the database is in.
    #[error("{0}")]
    Attention(String),
    /// A local file (journal, bindings, lock file) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The severity, which decides the exit code.
    pub fn severity(&self) -> Severity {
        match self {
            Error::Config(_)
            | Error::BadUrl(_)
            | Error::NoUrl { .. }
            | Error::MigrationsDir { .. }
            | Error::BadMigration { .. }
            | Error::NoSqliteFile { .. }
            | Error::Usage(_) => Severity::Usage,
            Error::Refused(_) => Severity::Refused,
            Error::Attention(_) => Severity::Attention,
            Error::Connect { .. }
            | Error::Database { .. }
            | Error::Failed(_)
            | Error::Io { .. } => Severity::Failed,
        }
    }

    /// Wraps a diesel error with what dbsafe was doing.
    pub fn db(context: impl Into<String>, err: impl std::fmt::Display) -> Error {
        Error::Database {
            context: context.into(),
            message: err.to_string(),
        }
    }

    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
