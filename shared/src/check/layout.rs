//! The migrations directory's findings for `check`: what the one scanner
//! ([`crate::layout::scan`]) found, as located findings with their rules (`stray-directory`,
//! `stray-file`, `duplicate-version`, `metadata-*`), and whether a migration's files hold
//! SQL: up.sql, and down.sql unless `[check] require-down = false` ([`content`], for the
//! migrations being linted).

use std::path::Path;

use super::{Finding, Level, rel};
use crate::config::{Config, with_article};
use crate::error::{Error, Result};
use crate::layout::{DIESEL_FILES, Layout, Problem, Scan, ScanFinding};
use crate::migrations::{Migration, MissingDown, holds_sql};

/// Whether a migration's files hold SQL: an up.sql of comments only, and (unless `[check]
/// require-down = false`) a down.sql that is missing, empty or only comments, are findings.
pub(crate) fn content(config: &Config, migration: &Migration) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !holds_sql(&migration.up_sql) {
        findings.push(
            Finding::new(
                "empty-up",
                Level::Error,
                "up.sql holds no SQL statement: the migration would be recorded as applied and \
                 change nothing",
            )
            .at(rel(config, &migration.up_path), Some(1))
            .help("write the migration's SQL, or delete the directory"),
        );
    }
    let missing = migration
        .missing_down()
        .filter(|missing| *missing != MissingDown::ForwardOnly);
    if let Some(missing) = missing.filter(|_| config.check.require_down) {
        let (message, line) = match missing {
            MissingDown::NoFile => (
                "down.sql is missing: the migration cannot be reverted".to_owned(),
                None,
            ),
            other => (
                format!(
                    "this is {}: reverting would record the migration as reverted and undo \
                     nothing, so dbsafe treats it as missing",
                    other.describe()
                ),
                Some(1),
            ),
        };
        findings.push(
            Finding::new("missing-down", Level::Error, message)
                .at(rel(config, &migration.down_path), line)
                .help(
                    "write the SQL that undoes up.sql (`cargo dbsafe check --roundtrip` tests \
                     it), or set `[check] require-down = false` in dbsafe.toml if this project \
                     never reverts",
                ),
        );
    }
    findings
}

/// The findings of the scan of the migrations directory. What the layout's tool refuses
/// outright (a file that is not UTF-8; in the sqlx and plain SQL layouts, every refusal
/// of their reader) stops the check (exit 2), as it stops apply; an empty up file is left
/// to [`content`].
pub(crate) fn findings(config: &Config, scan: &Scan) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for found in &scan.findings {
        let refusal = found.problem.refusal(scan.layout);
        let stops = matches!(found.problem, Problem::Refused(_))
            || (scan.layout != Layout::Diesel && refusal.is_some());
        if let (true, Some(problem)) = (stops, refusal) {
            return Err(Error::BadMigration {
                path: found.path.clone(),
                problem,
            });
        }
        findings.extend(finding(config, found));
    }
    Ok(findings)
}

/// The finding of one thing the scanner found.
fn finding(config: &Config, found: &ScanFinding) -> Option<Finding> {
    let file = rel(config, &found.path);
    let explicit = "write `run_in_transaction = true` or `run_in_transaction = false`";
    Some(match &found.problem {
        Problem::NoUpFile { files } => stray_directory(config, &found.path, files),
        Problem::StrayFile { in_migration } => {
            let place = if *in_migration {
                "a migration directory"
            } else {
                "the migrations directory"
            };
            stray_file(config, &found.path, place)
        }
        Problem::DuplicateVersion {
            name,
            version,
            other,
        } => Finding::new(
            "duplicate-version",
            Level::Error,
            format!(
                "{name} has the same version {version} as {other}: diesel records applied \
                 migrations by version only, so one of them would never run"
            ),
        )
        .at(file, None)
        .help("rename one directory so every version (the part before the first `_`) is unique"),
        Problem::MetadataInvalid { message, .. } => Finding::new(
            "metadata-invalid",
            Level::Error,
            format!(
                "metadata.toml is not valid TOML ({message}): diesel ignores the whole file and \
                 runs the migration in a transaction"
            ),
        )
        .at(file, found.line)
        .help(explicit),
        Problem::MetadataUnknownKey { key } => {
            let hint = if key
                .to_ascii_lowercase()
                .replace('-', "_")
                .contains("transaction")
            {
                "did you mean `run_in_transaction`? "
            } else {
                ""
            };
            Finding::new(
                "metadata-unknown-key",
                Level::Error,
                format!(
                    "metadata.toml has the key `{key}`, which diesel ignores: {hint}diesel reads \
                     only `run_in_transaction`"
                ),
            )
            .at(file, found.line)
            .help("remove the key, or fix its name")
        }
        Problem::MetadataWrongType { found: kind } => Finding::new(
            "metadata-wrong-type",
            Level::Error,
            format!(
                "run_in_transaction is {}, not a boolean: diesel cannot read the file and \
                 runs the migration in a transaction, whatever it says",
                with_article(kind)
            ),
        )
        .at(file, found.line)
        .help(explicit),
        // metadata-no-key says it all: needless-no-transaction stays quiet.
        Problem::MetadataNoKey => Finding::new(
            "metadata-no-key",
            Level::Error,
            "metadata.toml has no `run_in_transaction`: diesel reads that as false, so \
             the migration runs outside a transaction and a failure half-way leaves \
             its first statements applied",
        )
        .at(file, found.line)
        .help(explicit),
        // Left to `content`'s empty-up, for the migrations being linted.
        Problem::EmptyUp | Problem::Refused(_) => return None,
    })
}

/// A directory without up.sql: diesel refuses the whole migrations directory.
fn stray_directory(config: &Config, dir: &Path, files: &[String]) -> Finding {
    let typo = files
        .iter()
        .find(|file| looks_like(file, "up.sql"))
        .map(|file| format!(" (is `{file}` meant to be up.sql?)"));
    let message = format!(
        "this directory has no up.sql{}: diesel refuses to run any migration while it is here \
         (\"unknown migration format\")",
        typo.as_deref().unwrap_or("")
    );
    let help = if files.is_empty() {
        "delete the empty directory".to_owned()
    } else {
        "name the migration's file up.sql, or move the directory out of the migrations \
         directory"
            .to_owned()
    };
    Finding::new("stray-directory", Level::Error, message)
        .at(rel(config, dir), None)
        .help(help)
}

/// A file diesel does not read.
fn stray_file(config: &Config, path: &Path, place: &str) -> Finding {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let typo = DIESEL_FILES
        .iter()
        .find(|known| looks_like(&name, known))
        .map(|known| format!(" (is it meant to be {known}?)"));
    Finding::new(
        "stray-file",
        Level::Warning,
        format!(
            "diesel does not read `{name}` in {place}{}",
            typo.as_deref().unwrap_or("")
        ),
    )
    .at(rel(config, path), None)
    .help("rename it to what diesel reads, or move it out of the migrations directory")
}

/// Whether `name` looks like a typo of `known`: the same ignoring case, or a few edits away.
fn looks_like(name: &str, known: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == known || (name.len() > 3 && strsim::levenshtein(&name, known) <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_recognised() {
        assert!(looks_like("up.sq", "up.sql"));
        assert!(looks_like("UP.SQL", "up.sql"));
        assert!(looks_like("donw.sql", "down.sql"));
        assert!(!looks_like("README.md", "up.sql"));
    }

    #[test]
    fn comments_are_not_sql() {
        assert!(!holds_sql("-- Your SQL goes here\n"));
        assert!(!holds_sql("  /* nothing */ ;\n"));
        assert!(holds_sql("SELECT 1"));
    }
}
