//! The plain sections of dbsafe.toml, `[check]`, `[lint]`, `[apply]`, `[verify]` and
//! `[snapshot]`: their derived types and checks.

use std::path::PathBuf;

use serde::Deserialize;

use super::leaves::{Count, DurationText, NonEmpty, OneOf, Percent, Strings};
use super::tolerant::Field;
use super::{CheckSettings, Checker, Section, span_of, suggest};
use crate::config::{
    ApplyConfig, BUILTINS, FailurePolicy, KeyColumns, LintConfig, Severity, SnapshotConfig,
    SnapshotPolicy, SnapshotStrategy, VerifyConfig,
};
use crate::dialect::Backend;

/// `[check]`. The order of the fields is the order of "known keys".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct CheckSection {
    require_down: Option<Field<bool>>,
    lock_file: Option<Field<NonEmpty>>,
    roundtrip_column_order: Option<Field<OneOf<Severity>>>,
}

/// `[lint]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct LintSection {
    dialect: Option<Field<OneOf<Backend>>>,
    pg_version: Option<Field<NonEmpty>>,
    allow: Option<Field<Strings>>,
    warn: Option<Field<Strings>>,
    deny: Option<Field<Strings>>,
}

/// `[apply]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct ApplySection {
    on_failure: Option<Field<OneOf<FailurePolicy>>>,
    snapshot: Option<Field<OneOf<SnapshotPolicy>>>,
    lock_wait: Option<Field<DurationText<true>>>,
    lock_timeout: Option<Field<DurationText<false>>>,
    statement_timeout: Option<Field<DurationText<true>>>,
    lock_retries: Option<Field<Count<0>>>,
    max_transaction_age: Option<Field<DurationText<true>>>,
    max_connections: Option<Field<Count<1>>>,
    verify: Option<Field<bool>>,
}

/// `[verify]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct VerifySection {
    builtins: Option<Field<Strings>>,
    ignore: Option<Field<Strings>>,
    max_row_change: Option<Field<Percent>>,
    unchanged_tables: Option<Field<Strings>>,
    rls_enabled: Option<Field<Strings>>,
    triggers_present: Option<Field<Strings>>,
    duplicates: Option<Field<Strings>>,
}

/// `[snapshot]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct SnapshotSection {
    strategy: Option<Field<OneOf<SnapshotStrategy>>>,
    keep_last: Option<Field<Count<1>>>,
    keep_days: Option<Field<Count<1>>>,
    keep_replaced: Option<Field<bool>>,
    pg_bin_dir: Option<Field<NonEmpty>>,
}

impl Checker<'_> {
    /// Checks `[check]`.
    pub(super) fn check_section(&mut self, section: &Section<CheckSection>) -> CheckSettings {
        let value = section.value;
        CheckSettings {
            require_down: self
                .take(section, "require-down", &value.require_down)
                .copied()
                .unwrap_or(true),
            lock_file: self
                .take(section, "lock-file", &value.lock_file)
                .map(|file| PathBuf::from(&file.0)),
            roundtrip_column_order: self
                .take(
                    section,
                    "roundtrip-column-order",
                    &value.roundtrip_column_order,
                )
                .map(|choice| choice.0)
                .unwrap_or_default(),
        }
    }

    /// Checks `[lint]`: the dialect, the PostgreSQL version, and rule names that exist and
    /// appear in one list only.
    pub(super) fn lint(&mut self, section: &Section<LintSection>) -> LintConfig {
        let value = section.value;
        let dialect = self
            .take(section, "dialect", &value.dialect)
            .map(|choice| choice.0);
        let pg_version = self
            .take(section, "pg-version", &value.pg_version)
            .map(|version| version.0.clone());
        if let (Some(version), Some(span)) = (&pg_version, span_of(&value.pg_version))
            && !crate::lint_rules::valid_pg_version(version)
        {
            let message = format!(
                "invalid PostgreSQL version \"{version}\": write the major version, like \"16\" \
                 or \"15.4\""
            );
            self.problem(span, section.path("pg-version"), message);
        }
        let mut seen: Vec<(String, &str)> = Vec::new();
        let mut lists = [Vec::new(), Vec::new(), Vec::new()];
        let fields = [
            ("allow", &value.allow),
            ("warn", &value.warn),
            ("deny", &value.deny),
        ];
        for (list, (key, field)) in lists.iter_mut().zip(fields) {
            let Some(names) = self.take(section, key, field) else {
                continue;
            };
            let span = span_of(field).unwrap_or(0..0);
            for name in &names.0 {
                if !crate::lint_rules::is_configurable(name) {
                    let known = crate::lint_rules::configurable_rules();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    let hint = match suggest(name, &known) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => "the rules are listed in docs/dbsafe.reference.toml".to_owned(),
                    };
                    let message = format!("unknown lint rule \"{name}\"; {hint}");
                    self.problem(span.clone(), section.path(key), message);
                    continue;
                }
                if let Some((_, other)) = seen.iter().find(|(seen, _)| seen == name) {
                    let message = format!(
                        "rule \"{name}\" is in both `{other}` and `{key}`: keep it in one list"
                    );
                    self.problem(span.clone(), section.path(key), message);
                    continue;
                }
                seen.push((name.clone(), key));
                list.push(name.clone());
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

    /// Checks `[apply]`.
    pub(super) fn apply(&mut self, section: &Section<ApplySection>) -> ApplyConfig {
        let value = section.value;
        let defaults = ApplyConfig::default();
        let limit = |duration: &DurationText<true>| Some(duration.0).filter(|d| !d.is_zero());
        ApplyConfig {
            on_failure: self
                .take(section, "on-failure", &value.on_failure)
                .map_or(defaults.on_failure, |choice| choice.0),
            snapshot: self
                .take(section, "snapshot", &value.snapshot)
                .map_or(defaults.snapshot, |choice| choice.0),
            lock_wait: self
                .take(section, "lock-wait", &value.lock_wait)
                .map_or(defaults.lock_wait, |duration| duration.0),
            lock_timeout: self
                .take(section, "lock-timeout", &value.lock_timeout)
                .map_or(defaults.lock_timeout, |duration| duration.0),
            statement_timeout: self
                .take(section, "statement-timeout", &value.statement_timeout)
                .and_then(limit),
            lock_retries: self
                .take(section, "lock-retries", &value.lock_retries)
                .map_or(defaults.lock_retries, |count| count.0),
            max_transaction_age: self
                .take(section, "max-transaction-age", &value.max_transaction_age)
                .and_then(limit),
            max_connections: self
                .take(section, "max-connections", &value.max_connections)
                .map(|count| count.0),
            verify: self
                .take(section, "verify", &value.verify)
                .copied()
                .unwrap_or(false),
        }
    }

    /// Checks `[verify]`.
    pub(super) fn verify(&mut self, section: &Section<VerifySection>) -> VerifyConfig {
        let value = section.value;
        let builtins = self
            .take(section, "builtins", &value.builtins)
            .map(|list| list.0.clone());
        if let (Some(list), Some(span)) = (&builtins, span_of(&value.builtins)) {
            for name in list.iter().filter(|n| !BUILTINS.contains(&n.as_str())) {
                let message = format!(
                    "unknown built-in check \"{name}\": expected one of {}",
                    BUILTINS.join(", ")
                );
                self.problem(span.clone(), section.path("builtins"), message);
            }
        }
        let max_row_change = self
            .take(section, "max-row-change", &value.max_row_change)
            .map(|percent| percent.0);
        let mut duplicates = Vec::new();
        let keys = self.take(section, "duplicates", &value.duplicates);
        for key in keys.map(|keys| keys.0.as_slice()).unwrap_or_default() {
            match KeyColumns::parse(key) {
                Ok(parsed) => duplicates.push(parsed),
                Err(message) => {
                    let span = span_of(&value.duplicates).unwrap_or(0..0);
                    self.problem(span, section.path("duplicates"), message);
                }
            }
        }
        let mut strings = |key: &str, field| {
            self.take(section, key, field)
                .map(|list: &Strings| list.0.clone())
                .unwrap_or_default()
        };
        VerifyConfig {
            builtins,
            ignore: strings("ignore", &value.ignore),
            max_row_change,
            unchanged_tables: strings("unchanged-tables", &value.unchanged_tables),
            rls_enabled: strings("rls-enabled", &value.rls_enabled),
            triggers_present: strings("triggers-present", &value.triggers_present),
            duplicates,
        }
    }

    /// Checks `[snapshot]`.
    pub(super) fn snapshot(&mut self, section: &Section<SnapshotSection>) -> SnapshotConfig {
        let value = section.value;
        SnapshotConfig {
            strategy: self
                .take(section, "strategy", &value.strategy)
                .map(|choice| choice.0)
                .unwrap_or_default(),
            keep_last: self
                .take(section, "keep-last", &value.keep_last)
                .map(|count| count.0),
            keep_days: self
                .take(section, "keep-days", &value.keep_days)
                .map(|count| count.0),
            keep_replaced: self
                .take(section, "keep-replaced", &value.keep_replaced)
                .copied()
                .unwrap_or(false),
            pg_bin_dir: self
                .take(section, "pg-bin-dir", &value.pg_bin_dir)
                .map(|dir| PathBuf::from(&dir.0)),
        }
    }
}
