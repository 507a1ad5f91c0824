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

/// Why a command stopped: a stable kebab-case code that scripts can branch on, printed as
/// `reason` in the JSON error line and listed in the README. Each belongs to one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, enum_iterator::Sequence)]
pub enum Reason {
    /// A protected target not named with --target, or not confirmed (--yes, the prompt).
    ProtectedTarget,
    /// The target's URL reaches another database than the one it is bound to, or the
    /// database's ledger belongs to another target.
    IdentityMismatch,
    /// Another run holds the target's lock.
    LockHeld,
    /// A migration step was left half done (`started`) and must be resolved by hand.
    DirtyTarget,
    /// An applied migration's up.sql changed since it was applied.
    EditedMigration,
    /// A down.sql changed since its migration was applied (rollback without --allow-edit).
    EditedDownSql,
    /// A migration that a run applied has no directory on disk any more.
    MissingMigration,
    /// A migration to roll back has no down.sql that can revert it.
    IrreversibleMigration,
    /// Later runs applied migrations on top of the run to roll back (no --cascade).
    LaterRuns,
    /// The database has tables but the ledger records none of the `sql-files` migrations.
    UnrecordedMigrations,
    /// Old transactions or too many connections on the PostgreSQL server.
    ServerBusy,
    /// The URL goes through a connection pooler in transaction mode.
    TransactionPooler,
    /// The ledger was written by a newer dbsafe.
    NewerLedger,
    /// A snapshot whose files or manifest do not match: it cannot be trusted.
    DamagedSnapshot,
    /// A snapshot of another target.
    ForeignSnapshot,
    /// A snapshot restore of a fleet's schema member (it would swap the whole database).
    SchemaMemberRestore,
    /// A fleet command in which a member was refused by one of these guards.
    MemberRefused,
    /// dbsafe.toml is missing, malformed or names an unknown target.
    InvalidConfig,
    /// A database URL that dbsafe cannot use.
    BadUrl,
    /// The target has no URL (its `url-env` variable is not set).
    NoUrl,
    /// The database server could not be reached or refused the login.
    ConnectFailed,
    /// A SQLite database file that does not exist, for a command that only reads.
    NoDatabase,
    /// The migrations directory is missing or unreadable.
    MigrationsDir,
    /// A migration directory is malformed.
    BadMigration,
    /// Bad usage of the command line.
    Usage,
    /// A query failed outside of a migration (ledger, inspection).
    DatabaseError,
    /// A local file could not be read or written.
    IoError,
    /// The command ran and failed in a controlled way (checks failed, a migration failed
    /// and was undone).
    Failed,
    /// A failure dbsafe could not undo: the database needs attention.
    NeedsAttention,
}

impl Reason {
    /// The code, as printed (kebab-case, stable).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ProtectedTarget => "protected-target",
            Reason::IdentityMismatch => "identity-mismatch",
            Reason::LockHeld => "lock-held",
            Reason::DirtyTarget => "dirty-target",
            Reason::EditedMigration => "edited-migration",
            Reason::EditedDownSql => "edited-down-sql",
            Reason::MissingMigration => "missing-migration",
            Reason::IrreversibleMigration => "irreversible-migration",
            Reason::LaterRuns => "later-runs",
            Reason::UnrecordedMigrations => "unrecorded-migrations",
            Reason::ServerBusy => "server-busy",
            Reason::TransactionPooler => "transaction-pooler",
            Reason::NewerLedger => "newer-ledger",
            Reason::DamagedSnapshot => "damaged-snapshot",
            Reason::ForeignSnapshot => "foreign-snapshot",
            Reason::SchemaMemberRestore => "schema-member-restore",
            Reason::MemberRefused => "member-refused",
            Reason::InvalidConfig => "invalid-config",
            Reason::BadUrl => "bad-url",
            Reason::NoUrl => "no-url",
            Reason::ConnectFailed => "connect-failed",
            Reason::NoDatabase => "no-database",
            Reason::MigrationsDir => "migrations-dir",
            Reason::BadMigration => "bad-migration",
            Reason::Usage => "usage",
            Reason::DatabaseError => "database-error",
            Reason::IoError => "io-error",
            Reason::Failed => "failed",
            Reason::NeedsAttention => "needs-attention",
        }
    }

    /// A guard's refusal for this reason (exit 3).
    pub fn refuse(self, message: impl Into<String>) -> Error {
        Error::refused(self, message)
    }

    /// The exit code a command stopped for this reason ends with.
    pub fn severity(self) -> Severity {
        match self {
            Reason::InvalidConfig
            | Reason::BadUrl
            | Reason::NoUrl
            | Reason::NoDatabase
            | Reason::MigrationsDir
            | Reason::BadMigration
            | Reason::Usage => Severity::Usage,
            Reason::ConnectFailed | Reason::DatabaseError | Reason::IoError | Reason::Failed => {
                Severity::Failed
            }
            Reason::NeedsAttention => Severity::Attention,
            _ => Severity::Refused,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
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
    /// A guard refused the command (exit 3); `reason` says which guard.
    #[error("{message}")]
    Refused {
        /// The guard that refused, as a stable code.
        reason: Reason,
        /// What was refused and how to go on.
        message: String,
    },
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
            Error::Refused { .. } => Severity::Refused,
            other => other.reason().severity(),
        }
    }

    /// A guard's refusal (exit 3).
    pub fn refused(reason: Reason, message: impl Into<String>) -> Error {
        Error::Refused {
            reason,
            message: message.into(),
        }
    }

    /// The stable code of why the command stopped, for scripts (`reason` in the JSON error).
    pub fn reason(&self) -> Reason {
        match self {
            Error::Refused { reason, .. } => *reason,
            Error::Config(_) => Reason::InvalidConfig,
            Error::BadUrl(_) => Reason::BadUrl,
            Error::NoUrl { .. } => Reason::NoUrl,
            Error::Connect { .. } => Reason::ConnectFailed,
            Error::NoSqliteFile { .. } => Reason::NoDatabase,
            Error::MigrationsDir { .. } => Reason::MigrationsDir,
            Error::BadMigration { .. } => Reason::BadMigration,
            Error::Database { .. } => Reason::DatabaseError,
            Error::Usage(_) => Reason::Usage,
            Error::Failed(_) => Reason::Failed,
            Error::Attention(_) => Reason::NeedsAttention,
            Error::Io { .. } => Reason::IoError,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of reasons lists every code with its exit code, and nothing else.
    #[test]
    fn the_readme_lists_every_reason_with_its_exit_code() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|l| *l != "| reason | meaning | exit | what to do |")
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let mut listed = 0;
        for reason in enum_iterator::all::<Reason>() {
            let exit = match reason.severity() {
                Severity::Failed => 1,
                Severity::Usage => 2,
                Severity::Refused => 3,
                Severity::Attention => 4,
            };
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{reason}` |")))
                .unwrap_or_else(|| panic!("the README does not list reason `{reason}`"));
            assert!(row.contains(&format!(" | {exit} | ")), "{row}: exit {exit}");
            listed += 1;
        }
        assert_eq!(rows.len(), listed, "{rows:#?}");
    }

    #[test]
    fn a_refusal_keeps_its_reason_and_exit_code() {
        let error = Reason::LockHeld.refuse("locked");
        assert_eq!(error.reason().as_str(), "lock-held");
        assert_eq!(error.severity(), Severity::Refused);
        assert_eq!(error.to_string(), "locked");
        assert_eq!(
            serde_json::to_value(Reason::DirtyTarget).unwrap(),
            "dirty-target"
        );
        assert_eq!(Error::Failed("x".into()).reason(), Reason::Failed);
    }
}
