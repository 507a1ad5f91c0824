//! Checks the text of dbsafe.toml into settings, collecting every problem with its line and
//! key rather than stopping at the first. Serde reads the file into the derived types of each
//! section ([`Document`], and those of `check/*.rs`) through the wrappers of [`tolerant`],
//! which keep each value's span and never fail; the checker then reports, in line order,
//! unknown keys (against the fields serde's derive declares), wrong types and bad values.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

mod arrays;
mod fleets;
mod leaves;
mod sections;
mod targets;
mod tolerant;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeTable;

use crate::layout::Layout;
use crate::sql_text::Lines;
use arrays::{InvariantSection, SeedSection};
use fleets::Fleets;
use leaves::{NonEmpty, OneOf};
use sections::{ApplySection, CheckSection, LintSection, SnapshotSection, VerifySection};
use targets::{Targets, is_target_name};
use tolerant::{Field, List, Mistake, Table, fields_of};

use super::{
    ApplyConfig, ConfigProblem, Invariant, LintConfig, Seed, Severity, SnapshotConfig,
    TargetConfig, VerifyConfig,
};

/// How a `sql-file` reference is carried until the caller reads it.
pub(super) const SQL_FILE_PREFIX: &str = "\u{0}sql-file:";

/// The top level of dbsafe.toml. The order of the fields is the order of "known keys".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Document {
    migrations_dir: Option<Field<NonEmpty>>,
    layout: Option<Field<OneOf<Layout>>>,
    snapshot_dir: Option<Field<NonEmpty>>,
    default_target: Option<Field<NonEmpty>>,
    targets: Option<Table<Targets>>,
    apply: Option<Table<ApplySection>>,
    snapshot: Option<Table<SnapshotSection>>,
    verify: Option<Table<VerifySection>>,
    invariant: Option<List<Table<InvariantSection>>>,
    seed: Option<List<Table<SeedSection>>>,
    check: Option<Table<CheckSection>>,
    lint: Option<Table<LintSection>>,
    fleets: Option<Table<Fleets>>,
}

/// The keys of each section, as `[NAME]` (empty for the top level) and the keys its derived
/// type declares, in declaration order.
#[cfg(test)]
pub(super) fn section_keys() -> Vec<(&'static str, &'static [&'static str])> {
    let keys = |fields: Option<&'static [&'static str]>| fields.unwrap_or_default();
    vec![
        ("", keys(fields_of::<Document>())),
        ("targets.NAME", keys(fields_of::<targets::TargetSection>())),
        ("apply", keys(fields_of::<ApplySection>())),
        ("snapshot", keys(fields_of::<SnapshotSection>())),
        ("verify", keys(fields_of::<VerifySection>())),
        ("invariant", keys(fields_of::<InvariantSection>())),
        ("seed", keys(fields_of::<SeedSection>())),
        ("check", keys(fields_of::<CheckSection>())),
        ("lint", keys(fields_of::<LintSection>())),
        ("fleets.NAME", keys(fields_of::<fleets::FleetSection>())),
    ]
}

/// What dbsafe.toml says once checked; paths are still as written (relative to the root).
#[derive(Debug, Default)]
pub(super) struct Settings {
    /// `migrations-dir`.
    pub migrations_dir: Option<PathBuf>,
    /// `layout`, when set.
    pub layout: Option<Layout>,
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
        let deserializer = toml::de::Deserializer::from(document);
        match Table::<Document>::deserialize(deserializer) {
            Ok(document) => {
                let settings = checker.document(&document);
                if checker.problems.is_empty() {
                    return Ok(settings);
                }
            }
            // The wrappers accept any value; only a number too large for serde where a
            // table is expected gets here.
            Err(error) => {
                let message = error.message().trim().to_owned();
                checker.problem(error.span().unwrap_or(0..0), String::new(), message);
            }
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

/// Where a table is in the document, for the keys and messages of its problems.
#[derive(Default)]
struct Place {
    /// Its dotted name, like `apply` or `targets.prod` (empty for the top level).
    name: String,
}

impl Place {
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

/// A table being checked: where it is, its keys and span as written, and what serde read.
struct Section<'v, T> {
    place: Place,
    /// Where the table is.
    span: Range<usize>,
    /// Its keys as written, with their spans.
    keys: &'v [Spanned<String>],
    /// The table as read by serde.
    value: &'v T,
}

impl<T: DeserializeOwned> Section<'_, T> {
    /// The dotted path of `key`, one of `T`'s fields (or any key when `T` is a map).
    fn path(&self, key: &str) -> String {
        self.assert_declares(key);
        self.place.path(key)
    }

    /// In debug builds, panics unless `T` declares `key` (or is a map): the checker names
    /// the fields it reads by their keys, which must be the ones serde reads them from.
    fn assert_declares(&self, key: &str) {
        debug_assert!(
            fields_of::<T>().is_none_or(|known| known.contains(&key)),
            "`{key}` is not a key of [{}]",
            self.place.name
        );
    }

    /// The span of the first key as written (in the file's sorted order), else of nothing.
    fn first_key_span(&self) -> Range<usize> {
        self.keys.first().map_or(0..0, Spanned::span)
    }
}

/// The span of a setting when it is present, whatever its value.
fn span_of<T>(field: &Option<Field<T>>) -> Option<Range<usize>> {
    field.as_ref().map(|field| field.span.clone())
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

    /// Records what is wrong with the value of `key`.
    fn mistake(&mut self, key: String, mistake: &Mistake) {
        match mistake {
            Mistake::Said { span, message } => self.problem(span.clone(), key, message.clone()),
            Mistake::OutOfRange { span, min } => {
                // As the TOML parser shows an integer: its digits without `_`.
                let written = self.text[span.clone()].replace('_', "");
                let message = format!(
                    "expected a whole number from {min} to {}, found {written}",
                    u32::MAX
                );
                self.problem(span.clone(), key, message);
            }
        }
    }

    /// The setting `key` of `section`, if present and valid; otherwise what is wrong with
    /// it is recorded.
    fn take<'v, T: DeserializeOwned, V>(
        &mut self,
        section: &Section<T>,
        key: &str,
        field: &'v Option<Field<V>>,
    ) -> Option<&'v V> {
        section.assert_declares(key);
        match &field.as_ref()?.value {
            Ok(value) => Some(value),
            Err(mistake) => {
                self.mistake(section.path(key), mistake);
                None
            }
        }
    }

    /// The section under `key` of `parent`, if present and a table (its unknown keys
    /// recorded); a value of another type is recorded.
    fn section<'v, P: DeserializeOwned, T: DeserializeOwned>(
        &mut self,
        parent: &Section<P>,
        key: &str,
        table: Option<&'v Table<T>>,
    ) -> Option<Section<'v, T>> {
        let table = table?;
        let path = parent.path(key);
        let value = match &table.value {
            Ok(value) => value,
            Err(found) => {
                let message = format!("expected a table [{path}], found {}", with_article(found));
                self.problem(table.span.clone(), path, message);
                return None;
            }
        };
        let section = Section {
            place: Place { name: path },
            span: table.span.clone(),
            keys: &table.keys,
            value,
        };
        self.unknown_keys(&section);
        Some(section)
    }

    /// Records every key of `section` that its type does not declare, with a suggestion
    /// when one known key is an obvious typo away.
    fn unknown_keys<T: DeserializeOwned>(&mut self, section: &Section<T>) {
        let Some(known) = fields_of::<T>() else {
            return;
        };
        for key in section.keys {
            let name = key.get_ref().as_str();
            if known.contains(&name) {
                continue;
            }
            let hint = match suggest(name, known) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("known keys: {}", known.join(", ")),
            };
            let message = format!("unknown key `{name}` {}; {hint}", section.place.title());
            self.problem(key.span(), section.place.path(name), message);
        }
    }

    /// Checks the whole document.
    fn document(&mut self, document: &Table<Document>) -> Settings {
        let Ok(value) = &document.value else {
            return Settings::default();
        };
        let top = Section {
            place: Place::default(),
            span: document.span.clone(),
            keys: &document.keys,
            value,
        };
        self.unknown_keys(&top);
        let migrations_dir = self.take(&top, "migrations-dir", &value.migrations_dir);
        let layout = self
            .take(&top, "layout", &value.layout)
            .map(|layout| layout.0);
        let snapshot_dir = self.take(&top, "snapshot-dir", &value.snapshot_dir);
        let targets = self.targets(&top, value.targets.as_ref());
        let fleets = self.fleets(&top, value.fleets.as_ref(), &targets);
        let default_target = self.default_target(&top);
        let apply = match self.section(&top, "apply", value.apply.as_ref()) {
            Some(section) => self.apply(&section),
            None => ApplyConfig::default(),
        };
        let snapshot = match self.section(&top, "snapshot", value.snapshot.as_ref()) {
            Some(section) => self.snapshot(&section),
            None => SnapshotConfig::default(),
        };
        let verify = match self.section(&top, "verify", value.verify.as_ref()) {
            Some(section) => self.verify(&section),
            None => VerifyConfig::default(),
        };
        let invariants = self.invariants(&top, value.invariant.as_ref());
        let seeds = self.seeds(&top, value.seed.as_ref());
        let check = match self.section(&top, "check", value.check.as_ref()) {
            Some(section) => self.check_section(&section),
            None => CheckSettings::default(),
        };
        let lint = match self.section(&top, "lint", value.lint.as_ref()) {
            Some(section) => self.lint(&section),
            None => LintConfig::default(),
        };
        Settings {
            migrations_dir: migrations_dir.map(|dir| PathBuf::from(&dir.0)),
            layout,
            snapshot_dir: snapshot_dir.map(|dir| PathBuf::from(&dir.0)),
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

    /// The SQL file named by `key` of `section`, remembered to be read (and kept inside the
    /// repository) by the caller.
    fn sql_file<'v, T: DeserializeOwned>(
        &mut self,
        section: &Section<T>,
        key: &str,
        field: &'v Option<Field<NonEmpty>>,
    ) -> Option<&'v str> {
        let path = &self.take(section, key, field)?.0;
        let span = span_of(field).unwrap_or(0..0);
        self.sql_files.push(FileRef {
            path: path.clone(),
            line: Lines::new(self.text).line(span.start),
            key: section.path(key),
        });
        Some(path)
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
