//! Whether the migrations directory is well formed, as diesel reads it: every directory is
//! a migration with an up.sql, nothing stray beside them, metadata.toml with an explicit
//! boolean `run_in_transaction`, and no two migrations with one version ([`scan`], for
//! every migration); and whether a migration's files hold SQL: up.sql, and down.sql unless
//! `[check] require-down = false` ([`content`], for the migrations being linted).

use std::path::{Path, PathBuf};

use super::{Finding, Level, rel};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::migrations::{MigrationSet, MissingDown, holds_sql, version_of};

/// The files a migration directory may hold.
const KNOWN_FILES: &[&str] = &["up.sql", "down.sql", "metadata.toml", "verify.sql"];

/// One migration directory as read from disk.
#[derive(Debug, Clone)]
pub(crate) struct MigrationFiles {
    /// The directory name.
    pub name: String,
    /// diesel's version of it.
    pub version: String,
    /// The directory.
    pub dir: PathBuf,
    /// up.sql's text.
    pub up: String,
    /// down.sql's text, when the file exists.
    pub down: Option<String>,
    /// The up file.
    pub up_file: PathBuf,
    /// The down file, or where it would be.
    pub down_file: PathBuf,
    /// Forward only by design (sqlx's simple migrations): no down is expected.
    pub forward_only: bool,
    /// Whether diesel runs it in a transaction.
    pub run_in_transaction: bool,
    /// The line of `run_in_transaction = false` in metadata.toml, when set so.
    pub no_transaction_line: Option<usize>,
}

impl MigrationFiles {
    /// down.sql's text when present and not blank, as the checksums count it.
    pub fn down_text(&self) -> Option<&str> {
        self.down.as_deref().filter(|text| !text.trim().is_empty())
    }
}

/// Whether a migration's files hold SQL: an up.sql of comments only, and (unless `[check]
/// require-down = false`) a down.sql that is missing, empty or only comments, are findings.
pub(crate) fn content(config: &Config, migration: &MigrationFiles) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !holds_sql(&migration.up) {
        findings.push(
            Finding::new(
                "empty-up",
                Level::Error,
                "up.sql holds no SQL statement: the migration would be recorded as applied and \
                 change nothing",
            )
            .at(rel(config, &migration.up_file), Some(1))
            .help("write the migration's SQL, or delete the directory"),
        );
    }
    let missing = MissingDown::of(migration.down.as_deref()).filter(|_| !migration.forward_only);
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
                .at(rel(config, &migration.down_file), line)
                .help(
                    "write the SQL that undoes up.sql (`cargo dbsafe check --roundtrip` tests \
                     it), or set `[check] require-down = false` in dbsafe.toml if this project \
                     never reverts",
                ),
        );
    }
    findings
}

/// Reads every migration of `config.migrations_dir`, with the findings about its layout.
pub(crate) fn scan(config: &Config) -> Result<(Vec<MigrationFiles>, Vec<Finding>)> {
    if config.layout != Layout::Diesel {
        return scan_files(config);
    }
    let dir = &config.migrations_dir;
    let entries = crate::migrations::read_migrations_dir(dir)?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        names.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    names.sort();
    let mut findings = Vec::new();
    let mut migrations = Vec::new();
    for (name, path) in names {
        if name.starts_with('.') {
            continue;
        }
        if !path.is_dir() {
            findings.push(stray_file(config, &path, "the migrations directory"));
            continue;
        }
        if let Some(migration) = read_migration(config, &path, &name, &mut findings)? {
            migrations.push(migration);
        }
    }
    migrations.sort_by(|a, b| a.version.cmp(&b.version).then(a.name.cmp(&b.name)));
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            findings.push(
                Finding::new(
                    "duplicate-version",
                    Level::Error,
                    format!(
                        "{} has the same version {} as {}: diesel records applied migrations by \
                         version only, so one of them would never run",
                        pair[1].name, pair[1].version, pair[0].name
                    ),
                )
                .at(rel(config, &pair[1].dir), None)
                .help("rename one directory so every version (the part before the first `_`) is unique"),
            );
        }
    }
    Ok((migrations, findings))
}

/// The migrations of a sqlx or plain SQL layout, as its reader reads them (a name it
/// refuses is an error, exit 2).
fn scan_files(config: &Config) -> Result<(Vec<MigrationFiles>, Vec<Finding>)> {
    let set = MigrationSet::load_as(config.layout, &config.migrations_dir)?;
    let migrations = set
        .migrations
        .into_iter()
        .map(|m| MigrationFiles {
            name: m.name,
            version: m.version,
            dir: m.dir,
            up_file: m.up_path,
            down_file: m.down_path,
            forward_only: m.forward_only,
            up: m.up_sql,
            down: m.down_sql,
            run_in_transaction: m.run_in_transaction,
            no_transaction_line: (!m.run_in_transaction).then_some(1),
        })
        .collect();
    Ok((migrations, Vec::new()))
}

/// Reads one directory of the migrations directory; `None` when it is not a migration.
fn read_migration(
    config: &Config,
    dir: &Path,
    name: &str,
    findings: &mut Vec<Finding>,
) -> Result<Option<MigrationFiles>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.starts_with('.') {
            files.push(file);
        }
    }
    files.sort();
    if !files.iter().any(|f| f == "up.sql") {
        findings.push(stray_directory(config, dir, &files));
        return Ok(None);
    }
    for file in files.iter().filter(|f| !KNOWN_FILES.contains(&f.as_str())) {
        findings.push(stray_file(config, &dir.join(file), "a migration directory"));
    }
    let read = |file: &str| crate::migrations::read_migration_file(&dir.join(file));
    let up = read("up.sql")?.unwrap_or_default();
    let down = read("down.sql")?;
    // Read only to refuse, offline, a verify.sql that apply could not read (not UTF-8).
    read("verify.sql")?;
    let (run_in_transaction, no_transaction_line) = match read("metadata.toml")? {
        None => (true, None),
        Some(text) => metadata(config, &dir.join("metadata.toml"), &text, findings),
    };
    Ok(Some(MigrationFiles {
        name: name.to_owned(),
        version: version_of(name),
        dir: dir.to_owned(),
        up_file: dir.join("up.sql"),
        down_file: dir.join("down.sql"),
        forward_only: false,
        up,
        down,
        run_in_transaction,
        no_transaction_line,
    }))
}

/// Reads metadata.toml as diesel does, reporting its traps: diesel reads a file without
/// `run_in_transaction` as "no transaction", and a file it cannot read (invalid TOML, a
/// value of the wrong type) as "transaction". Returns what diesel will do and the line of
/// an explicit `run_in_transaction = false`.
fn metadata(
    config: &Config,
    path: &Path,
    text: &str,
    findings: &mut Vec<Finding>,
) -> (bool, Option<usize>) {
    let file = rel(config, path);
    let explicit = "write `run_in_transaction = true` or `run_in_transaction = false`";
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(error) => {
            let line = error.span().map(|span| line_of(text, span.start));
            findings.push(
                Finding::new(
                    "metadata-invalid",
                    Level::Error,
                    format!(
                        "metadata.toml is not valid TOML ({}): diesel ignores the whole file and \
                         runs the migration in a transaction",
                        error.message().trim()
                    ),
                )
                .at(file, line)
                .help(explicit),
            );
            return (true, None);
        }
    };
    let key_line = |key: &str| {
        text.lines()
            .position(|line| line.trim_start().starts_with(key))
            .map(|i| i + 1)
    };
    for key in table.keys().filter(|key| *key != "run_in_transaction") {
        let hint = if key
            .to_ascii_lowercase()
            .replace('-', "_")
            .contains("transaction")
        {
            "did you mean `run_in_transaction`? ".to_owned()
        } else {
            String::new()
        };
        findings.push(
            Finding::new(
                "metadata-unknown-key",
                Level::Error,
                format!(
                    "metadata.toml has the key `{key}`, which diesel ignores: {hint}diesel reads \
                     only `run_in_transaction`"
                ),
            )
            .at(file.clone(), key_line(key))
            .help("remove the key, or fix its name"),
        );
    }
    match table.get("run_in_transaction") {
        Some(toml::Value::Boolean(value)) => {
            let line = (!value).then(|| key_line("run_in_transaction").unwrap_or(1));
            (*value, line)
        }
        Some(other) => {
            findings.push(
                Finding::new(
                    "metadata-wrong-type",
                    Level::Error,
                    format!(
                        "run_in_transaction is {}, not a boolean: diesel cannot read the file and \
                         runs the migration in a transaction, whatever it says",
                        a(other.type_str())
                    ),
                )
                .at(file, key_line("run_in_transaction"))
                .help(explicit),
            );
            (true, None)
        }
        None => {
            findings.push(
                Finding::new(
                    "metadata-no-key",
                    Level::Error,
                    "metadata.toml has no `run_in_transaction`: diesel reads that as false, so \
                     the migration runs outside a transaction and a failure half-way leaves \
                     its first statements applied",
                )
                .at(file, Some(1))
                .help(explicit),
            );
            // metadata-no-key says it all: needless-no-transaction stays quiet.
            (false, None)
        }
    }
}

/// A TOML type's name with its article.
fn a(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// The 1-based line of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    super::lint::sql::Lines::new(text).line(offset)
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
    let typo = KNOWN_FILES
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
