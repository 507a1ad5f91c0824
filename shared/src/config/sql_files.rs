//! The SQL files dbsafe.toml names (`[[seed]] file`, `[[invariant]] sql-file`): resolved
//! inside the repository, then read.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{ConfigError, ConfigProblem, Invariant, check};

/// Reads each invariant's `sql-file` (resolved by [`resolve`]).
pub(super) fn read_invariants(
    files: &BTreeMap<String, PathBuf>,
    invariants: Vec<Invariant>,
) -> Result<Vec<Invariant>, ConfigError> {
    invariants
        .into_iter()
        .map(|mut invariant| {
            if let Some(file) = invariant.sql.strip_prefix(check::SQL_FILE_PREFIX) {
                invariant.sql = read(files, file)?;
            }
            Ok(invariant)
        })
        .collect()
}

/// The text of a SQL file named in dbsafe.toml, from where [`resolve`] found it.
pub(super) fn read(
    files: &BTreeMap<String, PathBuf>,
    written: &str,
) -> Result<String, ConfigError> {
    let Some(path) = files.get(written) else {
        let source = io::Error::new(io::ErrorKind::NotFound, "not resolved in the repository");
        return Err(ConfigError::Io {
            path: written.into(),
            source,
        });
    };
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.clone(),
        source,
    })
}

/// Resolves every SQL file dbsafe.toml names (`[[seed]] file`, `sql-file`) inside the
/// repository: relative to `root`, symlinks followed, and refused when the result is
/// outside `root` (an absolute path, `../`, a symlink out) or missing, as a located
/// problem of `config_file` (exit 2). Returns each path as written with where it is.
pub(super) fn resolve(
    config_file: &Path,
    root: &Path,
    files: &[check::FileRef],
) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let canonical_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut resolved = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files {
        match resolve_inside(&canonical_root, &file.path) {
            Ok(path) => {
                resolved.insert(file.path.clone(), path);
            }
            Err(message) => problems.push(ConfigProblem {
                line: file.line,
                key: file.key.clone(),
                message,
            }),
        }
    }
    if problems.is_empty() {
        return Ok(resolved);
    }
    problems.sort_by_key(|problem| problem.line);
    Err(ConfigError::Invalid {
        file: config_file.to_path_buf(),
        problems,
    })
}

/// `written` resolved in `root` (canonical), or why it is refused.
fn resolve_inside(root: &Path, written: &str) -> Result<PathBuf, String> {
    let inside = || {
        format!(
            "SQL files named in dbsafe.toml must be inside the repository ({}): give a path relative to it, without `..`",
            root.display()
        )
    };
    if Path::new(written).is_absolute() {
        return Err(format!("`{written}` is an absolute path; {}", inside()));
    }
    let path = std::fs::canonicalize(root.join(written)).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!(
                "`{written}` does not exist (looked for {}): create it, or fix the path",
                root.join(written).display()
            )
        } else {
            format!("cannot read `{written}`: {e}")
        }
    })?;
    if !path.starts_with(root) {
        return Err(format!(
            "`{written}` resolves to {} (symbolic links followed), outside the repository; {}",
            path.display(),
            inside()
        ));
    }
    if !path.is_file() {
        return Err(format!("`{written}` is not a file"));
    }
    Ok(path)
}
