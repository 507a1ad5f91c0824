//! `dbsafe.lock`: the checksums of every migration, committed beside the migrations
//! directory. An edited or deleted locked migration, an unrecorded one and a new one that
//! sorts before the newest locked one are findings; `--update-lock` records new migrations
//! and, for the names given with `--allow-edit`, accepts the rest.
//!
//! The format is one line per migration, sorted by version:
//! `<directory name> <sha256 of up.sql> <sha256 of down.sql, or - when there is none>`;
//! lines starting with `#` and blank lines are comments. The name is everything before the
//! two checksums, so spaces in it need no quoting; a name that could not be read back
//! that way (starting with `#`, `"` or whitespace, ending with whitespace, holding a
//! control character) is written in double quotes with `\"`, `\\` and `\u{..}` escapes.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::{Finding, Level, rel};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::migrations::{Migration, is_diesel_setup, version_of};

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
    fn of(migration: &Migration) -> Entry {
        Entry {
            name: migration.name.clone(),
            up: migration.up_checksum.clone(),
            down: migration.down_checksum.clone(),
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
    /// Whether it was written for the first time (adopting dbsafe on a history).
    pub created: bool,
    /// New migrations recorded.
    pub added: Vec<String>,
    /// Edited, deleted or out-of-order migrations accepted with `--allow-edit`.
    pub accepted: Vec<String>,
}

/// What the lock file says about the migrations, besides its findings.
pub(crate) struct LockCheck {
    /// The findings.
    pub findings: Vec<Finding>,
    /// What was done.
    pub outcome: LockOutcome,
    /// The migrations recorded in the lock file (as it was before this check) with the
    /// checksums they still have: the shipped history, which lint leaves alone.
    pub settled: BTreeSet<String>,
}

/// Checks the migrations against the lock file and, with `update`, records what is new and
/// what `allow_edit` accepts. Returns the findings left and what was done.
pub(crate) fn check(
    config: &Config,
    migrations: &[Migration],
    update: bool,
    allow_edit: &[String],
) -> Result<LockCheck> {
    let (findings, outcome, settled) = check_lock(config, migrations, update, allow_edit)?;
    Ok(LockCheck {
        findings,
        outcome,
        settled,
    })
}

fn check_lock(
    config: &Config,
    migrations: &[Migration],
    update: bool,
    allow_edit: &[String],
) -> Result<(Vec<Finding>, LockOutcome, BTreeSet<String>)> {
    let mut settled = BTreeSet::new();
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
            outcome.created = true;
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
        return Ok((findings, outcome, settled));
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
    let newest = locked
        .iter()
        .map(Entry::version)
        .max_by(|a, b| crate::migrations::version_cmp(a, b));
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
                .find(|m| m.up_checksum == entry.up)
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
            settled.insert(entry.name.clone());
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
            .filter(|newest| crate::migrations::version_cmp(&migration.version, newest).is_lt())
            .filter(|_| !is_diesel_setup(&migration.name));
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
                .at(rel(config, &migration.up_path), None)
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
                .at(rel(config, &migration.up_path), None)
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
    Ok((findings, outcome, settled))
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
fn edited_up(config: &Config, migration: &Migration, file: &str) -> Finding {
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
    .at(rel(config, &migration.up_path), None)
    .help(format!(
        "undo the edit and write a new migration for the change; if no database has applied \
         it yet, accept the edit with `cargo dbsafe check --update-lock --allow-edit {}`",
        migration.name
    ))
}

/// The finding of an edited (or removed) down.sql.
fn edited_down(config: &Config, migration: &Migration, file: &str) -> Finding {
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
    .at(rel(config, &migration.down_path), None)
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
        let line = line.trim_end();
        if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (name, up, down) = match fields(line) {
            Ok(fields) => fields,
            Err(problem) => {
                malformed.push((number, problem));
                continue;
            }
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
            name,
            up: up.to_ascii_lowercase(),
            down: (down != "-").then(|| down.to_ascii_lowercase()),
            line: number,
        });
    }
    (entries, malformed)
}

/// A line's name and two checksums: the checksums are its last two words, the name is
/// what comes before them (quoted or not).
fn fields(line: &str) -> std::result::Result<(String, &str, &str), String> {
    let malformed = || {
        format!(
            "has {} field(s), not 3 (`<migration> <sha256 of up.sql> <sha256 of down.sql or ->`)",
            line.split_whitespace().count()
        )
    };
    let (rest, down) = last_word(line.trim_end()).ok_or_else(malformed)?;
    let (name, up) = last_word(rest).ok_or_else(malformed)?;
    let name = name.trim_start();
    if name.is_empty() {
        return Err(malformed());
    }
    match name.strip_prefix('"') {
        Some(quoted) => unquote(quoted)
            .map(|name| (name, up, down))
            .ok_or_else(|| "has a badly quoted migration name (`\"...\"`)".to_owned()),
        None => Ok((name.to_owned(), up, down)),
    }
}

/// `text` split before its last word: (what precedes it, without trailing whitespace; the word).
fn last_word(text: &str) -> Option<(&str, &str)> {
    let at = text.rfind(char::is_whitespace)?;
    let width = text[at..].chars().next().map_or(1, char::len_utf8);
    Some((text[..at].trim_end(), &text[at + width..]))
}

/// Whether a name must be quoted to be read back unchanged.
fn needs_quotes(name: &str) -> bool {
    name.is_empty()
        || name.starts_with(['#', '"'])
        || name.starts_with(char::is_whitespace)
        || name.ends_with(char::is_whitespace)
        || name.chars().any(char::is_control)
}

/// A name as written in the lock file: as it is, or quoted when it must be.
fn quote(name: &str) -> String {
    if !needs_quotes(name) {
        return name.to_owned();
    }
    let mut out = String::from('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The name inside quotes (`text` starts after the opening quote and must end with the
/// closing one); `None` when malformed.
fn unquote(text: &str) -> Option<String> {
    let body = text.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'u' => {
                    let rest = chars.as_str().strip_prefix('{')?;
                    let end = rest.find('}')?;
                    out.push(char::from_u32(u32::from_str_radix(&rest[..end], 16).ok()?)?);
                    chars = rest[end + 1..].chars();
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

/// Writes the lock file: beside it first, then renamed over it.
fn write(path: &Path, entries: &[Entry]) -> Result<()> {
    let mut text = HEADER.to_owned();
    for entry in entries {
        text.push_str(&format!(
            "{} {} {}\n",
            quote(&entry.name),
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

    #[test]
    fn every_name_reads_back_unchanged() {
        let good = "b".repeat(64);
        let names = [
            "2020-03-02-101500_Add audit log to invoices",
            "2021-01-01-000000_two  spaces\tand tab",
            "2021-01-02-000000_caf\u{e9} \u{1f680}",
            "#2021-01-03-000000_hash",
            "2021-01-04-000000_#inside",
            "\"2021-01-05-000000_quoted\"",
            "2021-01-06-000000_it's \"quoted\" \\ back",
            " 2021-01-07-000000_leading",
            "2021-01-08-000000_trailing ",
            "2021-01-09-000000_new\nline",
            "2021-01-10-000000_ends with - ",
        ];
        for name in names {
            let line = format!("{} {good} -", quote(name));
            let (entries, malformed) = parse(&line);
            assert!(malformed.is_empty(), "{name:?}: {malformed:?} in {line:?}");
            assert_eq!(entries[0].name, name, "{line:?}");
            assert_eq!(entries[0].up, good);
            let line = format!("{} {good} {good}\n", quote(name));
            assert_eq!(parse(&line).0[0].down.as_deref(), Some(good.as_str()));
        }
        // Names without anything special are written as they are (old lock files read on).
        assert_eq!(quote("2024-01-01-000000_x"), "2024-01-01-000000_x");
        assert_eq!(
            quote("2020-03-02-101500_Add audit log"),
            "2020-03-02-101500_Add audit log"
        );
        // Tabs or several spaces between the fields (a hand-edited file) read too.
        let (entries, _) = parse(&format!("1_x\t{good}   -  \n"));
        assert_eq!(entries[0].name, "1_x");
        // A bad quote is malformed, not a strange name.
        assert_eq!(parse(&format!("\"1_x {good} -")).1.len(), 1);
    }
}
