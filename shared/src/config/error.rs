//! Why dbsafe.toml could not be loaded: [`ConfigError`], and [`ConfigProblem`], one
//! located problem of the file (every one is reported at once).

use std::io;
use std::path::{Path, PathBuf};

/// One problem in `dbsafe.toml`, located by line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The 1-based line of the problem.
    pub line: usize,
    /// The dotted key concerned, like `apply.lock-wait` (empty for a TOML syntax error).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error(
        "configuration file {} does not exist: check the --config path, or leave --config out \
         to use the dbsafe.toml found from the current directory",
        path.display()
    )]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// A configuration file could not be read.
    #[error("cannot read {}: {source}; check that it is a readable file", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `dbsafe.toml` has problems; each names its line and key.
    #[error("{}", invalid_message(file, problems))]
    Invalid {
        /// The file with problems.
        file: PathBuf,
        /// Every problem found, in line order.
        problems: Vec<ConfigProblem>,
    },
    /// `--target` (or `default-target`) names a target that is not defined.
    #[error(
        "no target named `{name}` (known: {}): choose one of those with --target NAME, or \
         add a [targets.{name}] table to dbsafe.toml",
        known.join(", ")
    )]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The targets that exist.
        known: Vec<String>,
    },
    /// Several targets exist, none is the default and none was chosen.
    #[error(
        "several targets are defined and none is chosen: choose one with --target NAME \
         (known: {}) or set default-target in dbsafe.toml",
        known.join(", ")
    )]
    NoTarget {
        /// The targets that exist.
        known: Vec<String>,
    },
    /// `cargo metadata` failed for the `--manifest-path` given.
    #[error(
        "cannot read the cargo workspace of {}: {message}; check that --manifest-path points \
         to a Cargo.toml",
        path.display()
    )]
    Manifest {
        /// The manifest given with `--manifest-path`.
        path: PathBuf,
        /// What cargo said.
        message: String,
    },
    /// diesel.toml could not be understood while looking for the migrations directory.
    #[error(
        "invalid diesel.toml at {}: {message}; fix it, or set migrations-dir in dbsafe.toml",
        path.display()
    )]
    DieselToml {
        /// The diesel.toml concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The layout is not set and the project does not say which one it is.
    #[error("cannot tell this project's migration layout: {message}")]
    AmbiguousLayout {
        /// What was found, and how to choose.
        message: String,
    },
}

/// Renders [`ConfigError::Invalid`]: a heading, then one `FILE:LINE: key `K`: ...` line per
/// problem.
fn invalid_message(file: &Path, problems: &[ConfigProblem]) -> String {
    let file = file.display();
    let mut text = format!("invalid configuration in {file}:");
    for problem in problems {
        text.push_str(&format!("\n  {file}:{}: ", problem.line));
        if !problem.key.is_empty() {
            text.push_str(&format!("key `{}`: ", problem.key));
        }
        text.push_str(&problem.message);
    }
    text
}
