//! `dbsafe.lock`: the checksums of every migration, committed beside the migrations
//! directory. An edited or deleted locked migration, an unrecorded one and a new one that
//! sorts before the newest locked one are findings; `--update-lock` records new migrations
//! and, for the names given with `--allow-edit`, accepts the rest.
//!
//! The format is one line per migration, sorted by version:
//! `<directory name> <sha256 of up.sql> <sha256 of down.sql, or - when there is none>`;
//! lines starting with `#` and blank lines are comments.

use std::path::Path;

use serde::Serialize;

use super::layout::MigrationFiles;
use super::{Finding, Level, rel};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::migrations::{checksum, version_of};

/// The lock file's name (in the migrations directory's parent, unless `[check] lock-file`).
pub const LOCK_FILE_NAME: &str = "dbsafe.lock";

/// The comment heading the lock file.
const HEADER: &str = "\
# dbsafe.lock: the checksums of the migrations, written by `cargo dbsafe check --update-lock`.
# Commit it. `cargo dbsafe check` fails when a migration listed here is edited or deleted.
# <migration directory> <sha256 of up.sql> <sha256 of down.sql, or - when there is none>
";

/// One migration recorded in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    up: String,
    down: Option<String>,
    /// Its line in the file (0 for an entry not read from the file).
    line: usize,
}

impl Entry {
    fn of(migration: &MigrationFiles) -> Entry {
        Entry {
            name: migration.name.clone(),
            up: checksum(&migration.up),
            down: migration.down_text().map(checksum),
            line: 0,
        }
    }

    fn version(&self) -> String {
        version_of(&self.name)
    }
}

/// What happened to the lock file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockOutcome {
    /// The lock file, relative to the project root.
    pub file: String,
    /// Whether the file was written.
    pub written: bool,
    /// New migrations recorded.
    pub added: Vec<String>,
    /// Edited, deleted or out-of-order migrations accepted with `--allow-edit`.
    pub accepted: Vec<String>,
}

/// Checks the migrations against the lock file and, with `update`, records what is new and
/// what `allow_edit` accepts. Returns the findings left and what was done.
pub(crate) fn check(
    config: &Config,
    migrations: &[MigrationFiles],
    update: bool,
    allow_edit: &[String],
) -> Result<(Vec<Finding>, LockOutcome)> {
    let path = &config.check.lock_file;
    let file = rel(config, path);
    let mut outcome = LockOutcome {
        file: file.clone(),
        ..LockOutcome::default()
    };
    let mut findings = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let allowed = |name: &str| {
        allow_edit
            .iter()
            .any(|a| a == name || *a == version_of(name))
    };
    let Some(text) = text else {
        if !allow_edit.is_empty() {
            return Err(unused_allow(allow_edit, &file));
        }
        if update {
            let entries: Vec<Entry> = migrations.iter().map(Entry::of).collect();
            outcome.added = entries.iter().map(|e| e.name.clone()).collect();
            write(path, &entries)?;
            outcome.written = true;
        } else if !migrations.is_empty() {
            findings.push(
                Finding::new(
                    "lock-missing",
                    Level::Error,
                    format!("{file} does not exist, so edits to applied migrations go unnoticed"),
                )
                .at(file.clone(), None)
                .help(format!(
                    "run `cargo dbsafe check --update-lock` and commit {file} with the migrations"
                )),
            );
        }
        return Ok((findings, outcome));
    };

    let (locked, malformed) = parse(&text);
    for (line, problem) in &malformed {
        findings.push(
            Finding::new(
                "lock-malformed",
                Level::Error,
                format!("{file} line {line} {problem}"),
            )
            .at(file.clone(), Some(*line))
            .help(format!(
                "fix the line by hand (`--update-lock` leaves a malformed {file} alone)"
            )),
        );
    }
    let newest = locked.iter().map(Entry::version).max();
    let mut result: Vec<Entry> = Vec::new();
    let mut used_allows: Vec<String> = Vec::new();
    let mut accept = |name: &str, outcome: &mut LockOutcome| -> bool {
        if update && allowed(name) {
            used_allows.push(name.to_owned());
            outcome.accepted.push(name.to_owned());
            true
        } else {
            false
        }
    };

    for entry in &locked {
        let Some(migration) = migrations.iter().find(|m| m.name == entry.name) else {
            if accept(&entry.name, &mut outcome) {
                continue;
            }
            let renamed = migrations
                .iter()
                .filter(|m| !locked.iter().any(|l| l.name == m.name))
                .find(|m| checksum(&m.up) == entry.up)
                .map(|m| format!(" (renamed to {}?)", m.name))
                .unwrap_or_default();
            findings.push(
                Finding::new(
                    "lock-deleted",
                    Level::Error,
                    format!(
                        "migration {} is recorded in {file} but its directory is gone{renamed}: \
                         databases that applied it keep its changes, and diesel silently \
                         ignores applied versions missing from disk",
                        entry.name
                    ),
                )
                .at(file.clone(), Some(entry.line))
                .help(format!(
                    "restore the directory from version control; if no database ever applied \
                     it, record its removal with `cargo dbsafe check --update-lock \
                     --allow-edit {}`",
                    entry.name
                )),
            );
            result.push(entry.clone());
            continue;
        };
        let now = Entry::of(migration);
        let up_edited = now.up != entry.up;
        let down_edited = now.down != entry.down;
        if !up_edited && !down_edited {
            result.push(entry.clone());
            continue;
        }
        if accept(&entry.name, &mut outcome) {
            result.push(now);
            continue;
        }
        result.push(entry.clone());
        if up_edited {
            findings.push(edited_up(config, migration, &file));
        }
        if down_edited {
            findings.push(edited_down(config, migration, &file));
        }
    }

    for migration in migrations
        .iter()
        .filter(|m| !locked.iter().any(|l| l.name == m.name))
    {
        let out_of_order = newest
            .as_ref()
            .filter(|newest| migration.version < **newest);
        if let Some(newest) = out_of_order {
            if accept(&migration.name, &mut outcome) {
                result.push(Entry::of(migration));
                continue;
            }
            let newest_name = locked
                .iter()
                .filter(|l| l.version() == *newest)
                .map(|l| l.name.as_str())
                .next()
                .unwrap_or(newest);
            findings.push(
                Finding::new(
                    "lock-out-of-order",
                    Level::Error,
                    format!(
                        "new migration {} sorts before {newest_name}, the newest one in {file} \
                         (a merge from an older branch?): databases that already applied \
                         {newest_name} would run it after it, a new database before it, and \
                         the two could end with different schemas",
                        migration.name
                    ),
                )
                .at(rel(config, &migration.dir.join("up.sql")), None)
                .help(format!(
                    "rename its directory so its version sorts after {newest_name} (`diesel \
                     migration generate` uses the current time), then run `cargo dbsafe check \
                     --update-lock`; if the order cannot matter, accept it with `--update-lock \
                     --allow-edit {}`",
                    migration.name
                )),
            );
        } else if update {
            outcome.added.push(migration.name.clone());
            result.push(Entry::of(migration));
        } else {
            findings.push(
                Finding::new(
                    "lock-unrecorded",
                    Level::Error,
                    format!("new migration {} is not recorded in {file}", migration.name),
                )
                .at(rel(config, &migration.dir.join("up.sql")), None)
                .help(format!(
                    "run `cargo dbsafe check --update-lock` and commit {file} with the migration"
                )),
            );
        }
    }

    let unused: Vec<String> = allow_edit
        .iter()
        .filter(|a| !used_allows.iter().any(|u| u == *a || version_of(u) == **a))
        .cloned()
        .collect();
    if update && !unused.is_empty() {
        return Err(unused_allow(&unused, &file));
    }
    if update && malformed.is_empty() {
        result.sort_by(|a, b| a.version().cmp(&b.version()).then(a.name.cmp(&b.name)));
        let before: Vec<(&str, &str, Option<&str>)> = locked
            .iter()
            .map(|e| (e.name.as_str(), e.up.as_str(), e.down.as_deref()))
            .collect();
        let after: Vec<(&str, &str, Option<&str>)> = result
            .iter()
            .map(|e| (e.name.as_str(), e.up.as_str(), e.down.as_deref()))
            .collect();
        if before != after || !text.starts_with(HEADER) {
            write(path, &result)?;
            outcome.written = true;
        }
    }
    Ok((findings, outcome))
}

/// `--allow-edit` names that match nothing to accept: a usage error.
fn unused_allow(names: &[String], file: &str) -> Error {
    Error::Usage(format!(
        "--allow-edit {}: not an edited, deleted or out-of-order migration of {file}; \
         `cargo dbsafe check` names the migrations that need it",
        names.join(", ")
    ))
}

/// The finding of an edited up.sql, saying why it is dangerous.
fn edited_up(config: &Config, migration: &MigrationFiles, file: &str) -> Finding {
    Finding::new(
        "lock-edited",
        Level::Error,
        format!(
            "up.sql of {} changed since it was recorded in {file}: every database that already \
             applied it ran the old text, and diesel never runs an applied migration again, so \
             those databases will not get this change and will differ from a new database \
             built from the files",
            migration.name
        ),
    )
    .at(rel(config, &migration.dir.join("up.sql")), None)
    .help(format!(
        "undo the edit and write a new migration for the change; if no database has applied \
         it yet, accept the edit with `cargo dbsafe check --update-lock --allow-edit {}`",
        migration.name
    ))
}

/// The finding of an edited (or removed) down.sql.
fn edited_down(config: &Config, migration: &MigrationFiles, file: &str) -> Finding {
    Finding::new(
        "lock-edited",
        Level::Error,
        format!(
            "down.sql of {} changed since it was recorded in {file}: `cargo dbrollback` checks \
             down.sql against the checksum recorded when the migration was applied, and refuses \
             to revert runs that applied the old text",
            migration.name
        ),
    )
    .at(rel(config, &migration.dir.join("down.sql")), None)
    .help(format!(
        "undo the edit; if no database has applied the migration yet, or you will revert it \
         by hand, accept the edit with `cargo dbsafe check --update-lock --allow-edit {}`",
        migration.name
    ))
}

/// The entries of a lock file and its malformed lines (line, problem).
fn parse(text: &str) -> (Vec<Entry>, Vec<(usize, String)>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut malformed = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, up, down] = fields[..] else {
            malformed.push((
                number,
                format!(
                    "has {} field(s), not 3 (`<migration> <sha256 of up.sql> <sha256 of \
                     down.sql or ->`)",
                    fields.len()
                ),
            ));
            continue;
        };
        let hash = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hash(up) || !(down == "-" || hash(down)) {
            malformed.push((
                number,
                "has a checksum that is not 64 hexadecimal digits".to_owned(),
            ));
            continue;
        }
        if entries.iter().any(|e| e.name == name) {
            malformed.push((number, format!("lists {name} a second time")));
            continue;
        }
        entries.push(Entry {
            name: name.to_owned(),
            up: up.to_ascii_lowercase(),
            down: (down != "-").then(|| down.to_ascii_lowercase()),
            line: number,
        });
    }
    (entries, malformed)
}

/// Writes the lock file: beside it first, then renamed over it.
fn write(path: &Path, entries: &[Entry]) -> Result<()> {
    let mut text = HEADER.to_owned();
    for entry in entries {
        text.push_str(&format!(
            "{} {} {}\n",
            entry.name,
            entry.up,
            entry.down.as_deref().unwrap_or("-")
        ));
    }
    let temporary = path.with_extension("lock.tmp");
    std::fs::write(&temporary, text).map_err(|e| Error::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_malformed_lines() {
        let good = "a".repeat(64);
        let text = format!("# comment\n\n1_x {good} -\n2_y {good}\n3_z zz -\n1_x {good} {good}\n");
        let (entries, malformed) = parse(&text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[0].down, None);
        let lines: Vec<usize> = malformed.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [4, 5, 6]);
    }
}
