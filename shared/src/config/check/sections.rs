//! Checks the plain sections of dbsafe.toml: `[check]`, `[lint]`, `[apply]`, `[verify]`
//! and `[snapshot]`.

use std::path::PathBuf;

use super::{
    APPLY_KEYS, CHECK_KEYS, CheckSettings, Checker, LINT_KEYS, SNAPSHOT_KEYS, Section, VERIFY_KEYS,
    suggest,
};
use crate::config::{ApplyConfig, BUILTINS, KeyColumns, LintConfig, SnapshotConfig, VerifyConfig};
use toml::de::DeValue;

impl Checker<'_> {
    /// Checks `[check]`.
    pub(super) fn check_section(&mut self, section: &Section) -> CheckSettings {
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
    pub(super) fn lint(&mut self, section: &Section) -> LintConfig {
        self.unknown_keys(section, LINT_KEYS);
        let dialect = self.choice(section, "dialect");
        let pg_version = self.non_empty(section, "pg-version").map(str::to_owned);
        if let (Some(version), Some(item)) = (&pg_version, section.get("pg-version"))
            && !crate::lint_rules::valid_pg_version(version)
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
                if !crate::lint_rules::is_configurable(&name) {
                    let known = crate::lint_rules::configurable_rules();
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

    /// Checks `[apply]`.
    pub(super) fn apply(&mut self, section: &Section) -> ApplyConfig {
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

    /// Checks `[verify]`.
    pub(super) fn verify(&mut self, section: &Section) -> VerifyConfig {
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

    /// Checks `[snapshot]`.
    pub(super) fn snapshot(&mut self, section: &Section) -> SnapshotConfig {
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
