//! Checks the text of dbsafe.toml item by item into settings, collecting every problem with
//! its line and key rather than stopping at the first.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

mod fleets;

#[cfg(test)]
pub(super) use fleets::FLEET_KEYS;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    ApplyConfig, BUILTINS, Choice, ConfigProblem, DEFAULT_TARGET, DEFAULT_URL_ENV, Environment,
    Expectation, Invariant, KeyColumns, LintConfig, Seed, Severity, SnapshotConfig, TargetConfig,
    VerifyConfig, parse_choice, parse_duration,
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

/// The 1-based line holding byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML type's name with its article: "an integer", "a string".
pub(super) fn a(kind: &str) -> String {
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
            line: line_of(self.text, span.start),
            key,
            message,
        });
    }

    /// Records a value of the wrong type.
    fn wrong_type(&mut self, section: &Section, key: &str, item: &Item, expected: &str) {
        let message = format!(
            "expected {expected}, found {}",
            a(item.get_ref().type_str())
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
            line: line_of(self.text, span.start),
            key: section.path(key),
        });
        Some(path)
    }

    /// Checks `[check]`.
    fn check_section(&mut self, section: &Section) -> CheckSettings {
        self.unknown_keys(section, CHECK_KEYS);
        CheckSettings {
            require_down: self.boolean(section, "require-down").unwrap_or(true),
            lock_file: self.non_empty(section, "lock-file").map(PathBuf::from),
            roundtrip_column_order: self
                .choice(section, "roundtrip-column-order")
                .unwrap_or_default(),
        }
    }

    /// Checks `[lint]`: the dialect, the PostgreSQL version, and rule names that exist and
    /// appear in one list only.
    fn lint(&mut self, section: &Section) -> LintConfig {
        self.unknown_keys(section, LINT_KEYS);
        let dialect = self.choice(section, "dialect");
        let pg_version = self.non_empty(section, "pg-version").map(str::to_owned);
        if let (Some(version), Some(item)) = (&pg_version, section.get("pg-version"))
            && !crate::check::lint::valid_pg_version(version)
        {
            let message = format!(
                "invalid PostgreSQL version \"{version}\": write the major version, like \"16\" \
                 or \"15.4\""
            );
            self.problem(item.span(), section.path("pg-version"), message);
        }
        let mut seen: Vec<(String, &str)> = Vec::new();
        let mut lists = [Vec::new(), Vec::new(), Vec::new()];
        for (list, key) in lists.iter_mut().zip(["allow", "warn", "deny"]) {
            let Some(names) = self.strings(section, key) else {
                continue;
            };
            let span = section.get(key).map(|item| item.span()).unwrap_or(0..0);
            for name in names {
                if !crate::check::lint::is_configurable(&name) {
                    let known = crate::check::lint::configurable_rules();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    let hint = match suggest(&name, &known) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => "the rules are listed in docs/dbsafe.reference.toml".to_owned(),
                    };
                    let message = format!("unknown lint rule \"{name}\"; {hint}");
                    self.problem(span.clone(), section.path(key), message);
                    continue;
                }
                if let Some((_, other)) = seen.iter().find(|(seen, _)| seen == &name) {
                    let message = format!(
                        "rule \"{name}\" is in both `{other}` and `{key}`: keep it in one list"
                    );
                    self.problem(span.clone(), section.path(key), message);
                    continue;
                }
                seen.push((name.clone(), key));
                list.push(name);
            }
        }
        let [allow, warn, deny] = lists;
        LintConfig {
            dialect,
            pg_version,
            allow,
            warn,
            deny,
        }
    }

    /// Checks `[targets.NAME]` tables.
    fn targets(&mut self, top: &Section) -> BTreeMap<String, TargetConfig> {
        let mut targets = BTreeMap::new();
        let Some(section) = self.table(top, "targets") else {
            return targets;
        };
        for (name, item) in section.entries.iter() {
            let name_text = name.get_ref().as_ref();
            if !is_target_name(name_text) {
                let message = format!(
                    "invalid target name {name_text:?}: use only lowercase letters, digits, \
                     `-` and `_`"
                );
                self.problem(name.span(), section.path(name_text), message);
            }
            let Some(target) = self.table(&section, name_text) else {
                continue;
            };
            let target = self.target(name_text, &target, item.span());
            targets.insert(name_text.to_owned(), target);
        }
        targets
    }

    /// Checks one `[targets.NAME]` table, whose header is at `span`.
    fn target(&mut self, name: &str, section: &Section, span: Range<usize>) -> TargetConfig {
        self.unknown_keys(section, TARGET_KEYS);
        let (url, url_env) = self.url_pair(section, "url", "url-env");
        let (direct_url, direct_url_env) = self.url_pair(section, "direct-url", "direct-url-env");
        self.direct_url_scheme(section, url, direct_url);
        let environment = self.choice(section, "environment");
        if section.get("environment").is_none() {
            let allowed: Vec<&str> = Environment::ALL.iter().map(|e| e.as_str()).collect();
            let message = format!(
                "missing key `environment` for target `{name}`: set it to one of \"{}\"",
                allowed.join("\", \"")
            );
            self.problem(span, section.path("environment"), message);
        }
        let environment = environment.unwrap_or(Environment::Production);
        let protected = self
            .boolean(section, "protected")
            .unwrap_or(environment == Environment::Production);
        TargetConfig {
            name: name.to_owned(),
            url: url.map(str::to_owned),
            url_env: url_env.unwrap_or(DEFAULT_URL_ENV).to_owned(),
            direct_url: direct_url.map(str::to_owned),
            direct_url_env: direct_url_env.map(str::to_owned),
            environment,
            protected,
        }
    }

    /// Checks a URL written in the file (`url_key`) and the environment variable holding
    /// one (`env_key`): each non-empty, not both, the variable's name valid.
    fn url_pair<'a>(
        &mut self,
        section: &Section<'a, '_>,
        url_key: &str,
        env_key: &str,
    ) -> (Option<&'a str>, Option<&'a str>) {
        let url = self.non_empty(section, url_key);
        let url_env = self.non_empty(section, env_key);
        if let (Some(_), Some(item)) = (url, section.get(env_key)) {
            let message = format!(
                "both `{url_key}` and `{env_key}` are set: keep only one (prefer `{env_key}`, \
                 which keeps the URL and its password out of the repository)"
            );
            self.problem(item.span(), section.path(env_key), message);
        }
        if let (Some(env), Some(item)) = (url_env, section.get(env_key))
            && env.contains(['=', '\0'])
        {
            let message = format!("{env:?} is not a valid environment variable name");
            self.problem(item.span(), section.path(env_key), message);
        }
        (url, url_env)
    }

    /// `direct-url` bypasses a PostgreSQL connection pooler: it must be a PostgreSQL URL,
    /// on a target whose written `url` (if any) is one too.
    fn direct_url_scheme(&mut self, section: &Section, url: Option<&str>, direct: Option<&str>) {
        let is_pg = |u: &str| {
            let lower = u.trim().to_ascii_lowercase();
            lower.starts_with("postgres://") || lower.starts_with("postgresql://")
        };
        if let (Some(direct), Some(item)) = (direct, section.get("direct-url"))
            && !is_pg(direct)
        {
            let message = "must be a postgres:// URL that reaches the server directly, \
                           not through a connection pooler (PgBouncer in transaction mode)"
                .to_owned();
            self.problem(item.span(), section.path("direct-url"), message);
        }
        let direct_key = ["direct-url", "direct-url-env"]
            .into_iter()
            .find(|key| section.get(key).is_some());
        if let (Some(key), Some(url)) = (direct_key, url)
            && !is_pg(url)
            && let Some(item) = section.get(key)
        {
            let message = format!(
                "`{key}` is for PostgreSQL targets behind a connection pooler, but `url` is not a postgres:// URL: remove `{key}`"
            );
            self.problem(item.span(), section.path(key), message);
        }
    }

    /// Checks `default-target` against the targets defined (or the implicit `default`).
    fn default_target(&mut self, top: &Section) -> Option<String> {
        let name = self.non_empty(top, "default-target")?;
        let mut known: Vec<&str> = match top.get("targets").map(|item| item.get_ref()) {
            Some(DeValue::Table(table)) if !table.is_empty() => table
                .iter()
                .map(|(key, _)| key.get_ref().as_ref())
                .collect(),
            // `targets` of the wrong type is already reported.
            Some(DeValue::Table(_)) | None => vec![DEFAULT_TARGET],
            Some(_) => return None,
        };
        known.sort_unstable();
        if known.contains(&name) {
            return Some(name.to_owned());
        }
        let hint = match suggest(name, &known) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("known targets: {}", known.join(", ")),
        };
        let message = format!("no target named `{name}`; {hint}");
        let span = top.get("default-target")?.span();
        self.problem(span, top.path("default-target"), message);
        None
    }

    /// Checks `[apply]`.
    fn apply(&mut self, section: &Section) -> ApplyConfig {
        self.unknown_keys(section, APPLY_KEYS);
        let defaults = ApplyConfig::default();
        ApplyConfig {
            on_failure: self
                .choice(section, "on-failure")
                .unwrap_or(defaults.on_failure),
            snapshot: self
                .choice(section, "snapshot")
                .unwrap_or(defaults.snapshot),
            lock_wait: self
                .duration(section, "lock-wait", true)
                .unwrap_or(defaults.lock_wait),
            lock_timeout: self
                .duration(section, "lock-timeout", false)
                .unwrap_or(defaults.lock_timeout),
            statement_timeout: self.limit(section, "statement-timeout"),
            lock_retries: self
                .count(section, "lock-retries", 0)
                .unwrap_or(defaults.lock_retries),
            max_transaction_age: self.limit(section, "max-transaction-age"),
            max_connections: self.count(section, "max-connections", 1),
            verify: self.boolean(section, "verify").unwrap_or(false),
        }
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
                        a(other.type_str())
                    );
                    self.problem(value.span(), section.path(key), message);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Checks `[verify]`.
    fn verify(&mut self, section: &Section) -> VerifyConfig {
        self.unknown_keys(section, VERIFY_KEYS);
        let builtins = self.strings(section, "builtins");
        if let (Some(list), Some(item)) = (&builtins, section.get("builtins")) {
            for name in list.iter().filter(|n| !BUILTINS.contains(&n.as_str())) {
                let message = format!(
                    "unknown built-in check \"{name}\": expected one of {}",
                    BUILTINS.join(", ")
                );
                self.problem(item.span(), section.path("builtins"), message);
            }
        }
        let max_row_change = section.get("max-row-change").and_then(|item| {
            let parsed = match item.get_ref() {
                DeValue::String(text) => text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok()),
                _ => None,
            };
            if parsed.is_none() {
                let message = "expected a percentage string like \"1%\" or \"0.5%\"".to_owned();
                self.problem(item.span(), section.path("max-row-change"), message);
            }
            parsed
        });
        let mut duplicates = Vec::new();
        for key in self.strings(section, "duplicates").unwrap_or_default() {
            match KeyColumns::parse(&key) {
                Ok(parsed) => duplicates.push(parsed),
                Err(message) => {
                    let span = section.get("duplicates").map(|i| i.span()).unwrap_or(0..0);
                    self.problem(span, section.path("duplicates"), message);
                }
            }
        }
        VerifyConfig {
            builtins,
            ignore: self.strings(section, "ignore").unwrap_or_default(),
            max_row_change,
            unchanged_tables: self
                .strings(section, "unchanged-tables")
                .unwrap_or_default(),
            rls_enabled: self.strings(section, "rls-enabled").unwrap_or_default(),
            triggers_present: self
                .strings(section, "triggers-present")
                .unwrap_or_default(),
            duplicates,
        }
    }

    /// Checks `[[seed]]` tables.
    fn seeds(&mut self, top: &Section) -> Vec<Seed> {
        let Some(item) = top.get("seed") else {
            return Vec::new();
        };
        let DeValue::Array(array) = item.get_ref() else {
            self.wrong_type(top, "seed", item, "an array of tables [[seed]]");
            return Vec::new();
        };
        let mut out: Vec<Seed> = Vec::new();
        for (index, entry) in array.iter().enumerate() {
            let DeValue::Table(entries) = entry.get_ref() else {
                let message = format!(
                    "expected a table [[seed]], found {}",
                    a(entry.get_ref().type_str())
                );
                self.problem(entry.span(), "seed".into(), message);
                continue;
            };
            let section = Section {
                name: format!("seed[{index}]"),
                entries,
            };
            self.unknown_keys(&section, SEED_KEYS);
            let name = self.non_empty(&section, "name").map(str::to_owned);
            let file = self.sql_file(&section, "file").map(str::to_owned);
            for (key, missing) in [("name", name.is_none()), ("file", file.is_none())] {
                if missing && section.get(key).is_none() {
                    self.problem(
                        entry.span(),
                        section.path(key),
                        format!("every seed needs `{key}`"),
                    );
                }
            }
            if let Some(name) = &name
                && out.iter().any(|s| &s.name == name)
            {
                self.problem(
                    entry.span(),
                    section.path("name"),
                    format!("seed name \"{name}\" is used twice: names must be unique"),
                );
            }
            let targets = self.strings(&section, "targets");
            let volatile = self.volatile_columns(&section);
            if let (Some(name), Some(file)) = (name, file) {
                out.push(Seed {
                    name,
                    sql: file,
                    targets,
                    volatile,
                });
            }
        }
        out
    }

    /// `volatile` of a `[[seed]]`: a list of `table.column`.
    fn volatile_columns(&mut self, section: &Section) -> Vec<String> {
        let list = self.strings(section, "volatile").unwrap_or_default();
        if let Some(item) = section.get("volatile") {
            for bad in list.iter().filter(|c| {
                c.rsplit_once('.')
                    .is_none_or(|(t, col)| t.is_empty() || col.is_empty())
            }) {
                self.problem(
                    item.span(),
                    section.path("volatile"),
                    format!("\"{bad}\" is not a column: write it as \"table.column\""),
                );
            }
        }
        list
    }

    /// `settings` of an `[[invariant]]`: a table of setting names to string values.
    fn settings(&mut self, section: &Section) -> Vec<(String, String)> {
        let Some(table) = self.table(section, "settings") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.entries.iter() {
            let name = key.get_ref().to_string();
            match value.get_ref() {
                DeValue::String(text) => out.push((name, text.to_string())),
                other => {
                    let message = format!(
                        "expected a string (settings are text, like \"42\"), found {}",
                        a(other.type_str())
                    );
                    self.problem(value.span(), table.path(&name), message);
                }
            }
        }
        out.sort();
        out
    }

    /// Checks `[[invariant]]` tables.
    fn invariants(&mut self, top: &Section) -> Vec<Invariant> {
        let Some(item) = top.get("invariant") else {
            return Vec::new();
        };
        let DeValue::Array(array) = item.get_ref() else {
            self.wrong_type(top, "invariant", item, "an array of tables [[invariant]]");
            return Vec::new();
        };
        let mut out: Vec<Invariant> = Vec::new();
        for (index, entry) in array.iter().enumerate() {
            let DeValue::Table(entries) = entry.get_ref() else {
                let message = format!(
                    "expected a table [[invariant]], found {}",
                    a(entry.get_ref().type_str())
                );
                self.problem(entry.span(), "invariant".into(), message);
                continue;
            };
            let section = Section {
                name: format!("invariant[{index}]"),
                entries,
            };
            self.unknown_keys(&section, INVARIANT_KEYS);
            let name = self.non_empty(&section, "name").map(str::to_owned);
            if name.is_none() && section.get("name").is_none() {
                self.problem(
                    entry.span(),
                    section.path("name"),
                    "every invariant needs a `name`".into(),
                );
            }
            if let Some(name) = &name
                && out.iter().any(|i| &i.name == name)
            {
                self.problem(
                    entry.span(),
                    section.path("name"),
                    format!("invariant name \"{name}\" is used twice: names must be unique"),
                );
            }
            let sql = self.non_empty(&section, "sql").map(str::to_owned);
            let sql_file = self.sql_file(&section, "sql-file").map(str::to_owned);
            let sql = match (sql, sql_file) {
                (Some(_), Some(_)) => {
                    self.problem(
                        entry.span(),
                        section.path("sql"),
                        "give `sql` or `sql-file`, not both".into(),
                    );
                    None
                }
                (None, None) => {
                    self.problem(
                        entry.span(),
                        section.path("sql"),
                        "every invariant needs `sql` (a query) or `sql-file` (a file holding one)"
                            .into(),
                    );
                    None
                }
                (Some(sql), None) => Some(sql),
                (None, Some(file)) => Some(format!("{SQL_FILE_PREFIX}{file}")),
            };
            let expect = match self.string(&section, "expect") {
                Some(text) => match Expectation::parse(text) {
                    Ok(expect) => Some(expect),
                    Err(message) => {
                        let span = section.get("expect").map(|i| i.span()).unwrap_or(0..0);
                        self.problem(span, section.path("expect"), message);
                        None
                    }
                },
                None => {
                    if section.get("expect").is_none() {
                        self.problem(entry.span(), section.path("expect"), "every invariant needs `expect` (\"= 0\", \"> 0\", \"rows = 0\", \"true\", ...)".into());
                    }
                    None
                }
            };
            let severity = self.choice(&section, "severity").unwrap_or_default();
            let phase = self.choice(&section, "phase").unwrap_or_default();
            let targets = self.strings(&section, "targets");
            let role = self.non_empty(&section, "role").map(str::to_owned);
            let settings = self.settings(&section);
            let expect_error = self.non_empty(&section, "expect-error").map(str::to_owned);
            if let (Some(item), false) = (
                section.get("expect-error"),
                expect.is_none_or(|e| e == Expectation::Error),
            ) {
                self.problem(
                    item.span(),
                    section.path("expect-error"),
                    "`expect-error` names the error a refused statement must raise: it needs `expect = \"error\"`".into(),
                );
            }
            if let (Some(name), Some(sql), Some(expect)) = (name, sql, expect) {
                out.push(Invariant {
                    name,
                    sql,
                    expect,
                    severity,
                    phase,
                    targets,
                    role,
                    settings,
                    expect_error,
                });
            }
        }
        out
    }

    /// Checks `[snapshot]`.
    fn snapshot(&mut self, section: &Section) -> SnapshotConfig {
        self.unknown_keys(section, SNAPSHOT_KEYS);
        SnapshotConfig {
            strategy: self.choice(section, "strategy").unwrap_or_default(),
            keep_last: self.count(section, "keep-last", 1),
            keep_days: self.count(section, "keep-days", 1),
            keep_replaced: self.boolean(section, "keep-replaced").unwrap_or(false),
            pg_bin_dir: self.non_empty(section, "pg-bin-dir").map(PathBuf::from),
        }
    }
}

/// Whether `name` is a valid target name: `[a-z0-9_-]+`.
fn is_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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
