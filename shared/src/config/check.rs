//! Checks the text of dbsafe.toml item by item into settings, collecting every problem with
//! its line and key rather than stopping at the first.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

mod arrays;
mod fleets;
mod sections;
mod targets;

use targets::is_target_name;

#[cfg(test)]
pub(super) use fleets::FLEET_KEYS;

use crate::sql_text::Lines;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    ApplyConfig, Choice, ConfigProblem, Invariant, LintConfig, Seed, Severity, SnapshotConfig,
    TargetConfig, VerifyConfig, parse_choice, parse_duration,
};

/// Keys allowed at the top level of dbsafe.toml.
pub(super) const TOP_KEYS: &[&str] = &[
    "migrations-dir",
    "layout",
    "snapshot-dir",
    "default-target",
    "targets",
    "apply",
    "snapshot",
    "verify",
    "invariant",
    "seed",
    "check",
    "lint",
    "fleets",
];
/// Keys allowed in `[check]`.
pub(super) const CHECK_KEYS: &[&str] = &["require-down", "lock-file", "roundtrip-column-order"];
/// Keys allowed in `[lint]`.
pub(super) const LINT_KEYS: &[&str] = &["dialect", "pg-version", "allow", "warn", "deny"];
/// Keys allowed in a `[targets.NAME]` table.
pub(super) const TARGET_KEYS: &[&str] = &[
    "url",
    "url-env",
    "direct-url",
    "direct-url-env",
    "environment",
    "protected",
];
/// Keys allowed in `[apply]`.
pub(super) const APPLY_KEYS: &[&str] = &[
    "on-failure",
    "snapshot",
    "lock-wait",
    "lock-timeout",
    "statement-timeout",
    "lock-retries",
    "max-transaction-age",
    "max-connections",
    "verify",
];
/// How a `sql-file` reference is carried until the caller reads it.
pub(super) const SQL_FILE_PREFIX: &str = "\u{0}sql-file:";
/// Keys allowed in `[verify]`.
pub(super) const VERIFY_KEYS: &[&str] = &[
    "builtins",
    "ignore",
    "max-row-change",
    "unchanged-tables",
    "rls-enabled",
    "triggers-present",
    "duplicates",
];
/// Keys allowed in a `[[seed]]`.
pub(super) const SEED_KEYS: &[&str] = &["name", "file", "targets", "volatile"];
/// Keys allowed in an `[[invariant]]`.
pub(super) const INVARIANT_KEYS: &[&str] = &[
    "name",
    "sql",
    "sql-file",
    "expect",
    "severity",
    "phase",
    "targets",
    "role",
    "settings",
    "expect-error",
];
/// Keys allowed in `[snapshot]`.
pub(super) const SNAPSHOT_KEYS: &[&str] = &[
    "strategy",
    "keep-last",
    "keep-days",
    "keep-replaced",
    "pg-bin-dir",
];

/// What dbsafe.toml says once checked; paths are still as written (relative to the root).
#[derive(Debug, Default)]
pub(super) struct Settings {
    /// `migrations-dir`.
    pub migrations_dir: Option<PathBuf>,
    /// `layout`, when set.
    pub layout: Option<crate::layout::Layout>,
    /// `snapshot-dir`.
    pub snapshot_dir: Option<PathBuf>,
    /// `default-target`, known to name a target.
    pub default_target: Option<String>,
    /// `[targets.NAME]`, possibly empty.
    pub targets: BTreeMap<String, TargetConfig>,
    /// `[apply]`.
    pub apply: ApplyConfig,
    /// `[snapshot]`.
    pub snapshot: SnapshotConfig,
    /// `[verify]`.
    pub verify: VerifyConfig,
    /// `[[invariant]]`, with `sql-file` paths still relative (read by the caller).
    pub invariants: Vec<Invariant>,
    /// `[[seed]]`, with `sql` holding the file path (read by the caller).
    pub seeds: Vec<Seed>,
    /// `[check]`.
    pub check: CheckSettings,
    /// `[lint]`.
    pub lint: LintConfig,
    /// `[fleets.NAME]`.
    pub fleets: BTreeMap<String, super::FleetConfig>,
    /// Every file named as SQL to run (`[[seed]] file`, `[[invariant]] sql-file`), with
    /// where: the caller checks that each stays inside the repository.
    pub sql_files: Vec<FileRef>,
}

/// A file dbsafe.toml names, as written, with the line and key that name it.
#[derive(Debug, Clone)]
pub(super) struct FileRef {
    /// The path as written (relative to the root).
    pub path: String,
    /// The 1-based line of the value.
    pub line: usize,
    /// The dotted key, like `seed[0].file`.
    pub key: String,
}

/// `[check]` as written: the lock file is still relative to the root.
#[derive(Debug)]
pub(super) struct CheckSettings {
    /// `require-down` (default true).
    pub require_down: bool,
    /// `lock-file`.
    pub lock_file: Option<PathBuf>,
    /// `roundtrip-column-order` (default warning).
    pub roundtrip_column_order: Severity,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            require_down: true,
            lock_file: None,
            roundtrip_column_order: Severity::Warning,
        }
    }
}

/// Checks `text`: the settings, or every problem found, in line order. A TOML syntax error
/// stops the check there (each syntax error is reported, but the keys are not checked).
pub(super) fn check(text: &str) -> Result<Settings, Vec<ConfigProblem>> {
    let mut checker = Checker {
        text,
        problems: Vec::new(),
        sql_files: Vec::new(),
    };
    let (document, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        let top = Section {
            name: String::new(),
            entries: document.get_ref(),
        };
        let settings = checker.document(&top);
        if checker.problems.is_empty() {
            return Ok(settings);
        }
    } else {
        for error in errors {
            let message = format!("TOML syntax error: {}", error.message().trim());
            checker.problem(error.span().unwrap_or(0..0), String::new(), message);
        }
        // A syntax error often confuses the parser for the rest of its line: keep the first.
        checker.problems.sort_by_key(|problem| problem.line);
        checker.problems.dedup_by_key(|problem| problem.line);
    }
    checker.problems.sort_by_key(|problem| problem.line);
    Err(checker.problems)
}

/// A TOML type's name with its article: "an integer", "a string".
pub(crate) fn with_article(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// A value of the document with its byte span.
type Item<'i> = Spanned<DeValue<'i>>;

/// A table of the document being checked.
struct Section<'a, 'i> {
    /// Its dotted name, like `apply` or `targets.prod` (empty for the top level).
    name: String,
    /// Its keys and values.
    entries: &'a DeTable<'i>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.entries.get(key)
    }

    /// The dotted path of `key` in this table, as shown in problems.
    fn path(&self, key: &str) -> String {
        let key = if is_bare_key(key) {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        if self.name.is_empty() {
            key
        } else {
            format!("{}.{key}", self.name)
        }
    }

    /// How this table is named in messages.
    fn title(&self) -> String {
        if self.name.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in [{}]", self.name)
        }
    }
}

/// Collects problems while reading the document.
struct Checker<'t> {
    /// The file's text, to turn byte spans into lines.
    text: &'t str,
    /// Every problem found so far.
    problems: Vec<ConfigProblem>,
    /// Every SQL file named so far.
    sql_files: Vec<FileRef>,
}

impl Checker<'_> {
    /// Records a problem at `span`.
    fn problem(&mut self, span: Range<usize>, key: String, message: String) {
        self.problems.push(ConfigProblem {
            line: Lines::new(self.text).line(span.start),
            key,
            message,
        });
    }

    /// Records a value of the wrong type.
    fn wrong_type(&mut self, section: &Section, key: &str, item: &Item, expected: &str) {
        let message = format!(
            "expected {expected}, found {}",
            with_article(item.get_ref().type_str())
        );
        self.problem(item.span(), section.path(key), message);
    }

    /// Records every key of `section` that is not in `known`, with a suggestion when one
    /// known key is an obvious typo away.
    fn unknown_keys(&mut self, section: &Section, known: &[&str]) {
        for (key, _) in section.entries.iter() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match suggest(name, known) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("known keys: {}", known.join(", ")),
            };
            let message = format!("unknown key `{name}` {}; {hint}", section.title());
            self.problem(key.span(), section.path(name), message);
        }
    }

    /// The table under `key`, if present and a table.
    fn table<'a, 'i>(&mut self, section: &Section<'a, 'i>, key: &str) -> Option<Section<'a, 'i>> {
        let item = section.get(key)?;
        match item.get_ref() {
            DeValue::Table(entries) => Some(Section {
                name: section.path(key),
                entries,
            }),
            _ => {
                self.wrong_type(
                    section,
                    key,
                    item,
                    &format!("a table [{}]", section.path(key)),
                );
                None
            }
        }
    }

    /// The string under `key`, if present and a string.
    fn string<'a>(&mut self, section: &Section<'a, '_>, key: &str) -> Option<&'a str> {
        let item = section.get(key)?;
        match item.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            _ => {
                self.wrong_type(section, key, item, "a string");
                None
            }
        }
    }

    /// The string under `key`, if present, a string and not empty.
    fn non_empty<'a>(&mut self, section: &Section<'a, '_>, key: &str) -> Option<&'a str> {
        let text = self.string(section, key)?;
        if text.is_empty() {
            let span = section.get(key)?.span();
            let message = "must not be empty: give a value or remove the key".to_owned();
            self.problem(span, section.path(key), message);
            return None;
        }
        Some(text)
    }

    /// The boolean under `key`, if present and a boolean.
    fn boolean(&mut self, section: &Section, key: &str) -> Option<bool> {
        let item = section.get(key)?;
        match item.get_ref() {
            DeValue::Boolean(value) => Some(*value),
            _ => {
                self.wrong_type(section, key, item, "a boolean (true or false)");
                None
            }
        }
    }

    /// The whole number under `key`, if present and from `min` to `u32::MAX`.
    fn count(&mut self, section: &Section, key: &str, min: u32) -> Option<u32> {
        let item = section.get(key)?;
        let DeValue::Integer(integer) = item.get_ref() else {
            self.wrong_type(section, key, item, "an integer");
            return None;
        };
        let value = i128::from_str_radix(integer.as_str(), integer.radix()).ok();
        match value.and_then(|value| u32::try_from(value).ok()) {
            Some(value) if value >= min => Some(value),
            _ => {
                let message = format!(
                    "expected a whole number from {min} to {}, found {integer}",
                    u32::MAX
                );
                self.problem(item.span(), section.path(key), message);
                None
            }
        }
    }

    /// The duration under `key`, if present and valid; zero is refused unless `zero_ok`.
    fn duration(&mut self, section: &Section, key: &str, zero_ok: bool) -> Option<Duration> {
        let item = section.get(key)?;
        let DeValue::String(text) = item.get_ref() else {
            let expected = "a duration string like \"5s\", \"250ms\" or \"2m\"";
            self.wrong_type(section, key, item, expected);
            return None;
        };
        match parse_duration(text) {
            Ok(duration) if duration.is_zero() && !zero_ok => {
                let message = format!("\"{text}\" is not allowed: the duration must be above zero");
                self.problem(item.span(), section.path(key), message);
                None
            }
            Ok(duration) => Some(duration),
            Err(message) => {
                self.problem(item.span(), section.path(key), message);
                None
            }
        }
    }

    /// An optional limit under `key`: a duration where zero (or absence) means no limit.
    fn limit(&mut self, section: &Section, key: &str) -> Option<Duration> {
        self.duration(section, key, true)
            .filter(|duration| !duration.is_zero())
    }

    /// The enumerated value under `key`, if present and one of the allowed names.
    fn choice<T: Choice>(&mut self, section: &Section, key: &str) -> Option<T> {
        let item = section.get(key)?;
        let DeValue::String(text) = item.get_ref() else {
            self.wrong_type(section, key, item, "a string");
            return None;
        };
        match parse_choice(text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.problem(item.span(), section.path(key), message);
                None
            }
        }
    }

    /// Checks the whole document.
    fn document(&mut self, top: &Section) -> Settings {
        self.unknown_keys(top, TOP_KEYS);
        let migrations_dir = self.non_empty(top, "migrations-dir").map(PathBuf::from);
        let layout = self.choice(top, "layout");
        let snapshot_dir = self.non_empty(top, "snapshot-dir").map(PathBuf::from);
        let targets = self.targets(top);
        let fleets = self.fleets(top, &targets);
        let default_target = self.default_target(top);
        let apply = match self.table(top, "apply") {
            Some(section) => self.apply(&section),
            None => ApplyConfig::default(),
        };
        let snapshot = match self.table(top, "snapshot") {
            Some(section) => self.snapshot(&section),
            None => SnapshotConfig::default(),
        };
        let verify = match self.table(top, "verify") {
            Some(section) => self.verify(&section),
            None => VerifyConfig::default(),
        };
        let invariants = self.invariants(top);
        let seeds = self.seeds(top);
        let check = match self.table(top, "check") {
            Some(section) => self.check_section(&section),
            None => CheckSettings::default(),
        };
        let lint = match self.table(top, "lint") {
            Some(section) => self.lint(&section),
            None => LintConfig::default(),
        };
        Settings {
            migrations_dir,
            layout,
            snapshot_dir,
            default_target,
            targets,
            apply,
            snapshot,
            verify,
            invariants,
            seeds,
            check,
            lint,
            fleets,
            sql_files: std::mem::take(&mut self.sql_files),
        }
    }

    /// The non-empty string under `key`, remembered as a SQL file to read.
    fn sql_file<'a>(&mut self, section: &Section<'a, '_>, key: &str) -> Option<&'a str> {
        let path = self.non_empty(section, key)?;
        let span = section.get(key).map(|item| item.span()).unwrap_or(0..0);
        self.sql_files.push(FileRef {
            path: path.to_owned(),
            line: Lines::new(self.text).line(span.start),
            key: section.path(key),
        });
        Some(path)
    }

    /// The list of strings under `key`, if present and one.
    fn strings(&mut self, section: &Section, key: &str) -> Option<Vec<String>> {
        let item = section.get(key)?;
        let DeValue::Array(array) = item.get_ref() else {
            self.wrong_type(section, key, item, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for value in array.iter() {
            match value.get_ref() {
                DeValue::String(text) => out.push(text.to_string()),
                other => {
                    let message = format!(
                        "expected an array of strings, found {} in it",
                        with_article(other.type_str())
                    );
                    self.problem(value.span(), section.path(key), message);
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// Whether `key` can be written in TOML without quotes.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The known key `name` was obviously meant to be, if any: the same but for case or `_`
/// in place of `-`, or one edit away (two for long names).
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let normal = name.to_ascii_lowercase().replace('_', "-");
    let limit = if name.len() >= 8 { 2 } else { 1 };
    known
        .iter()
        .map(|&candidate| (strsim::osa_distance(&normal, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}
