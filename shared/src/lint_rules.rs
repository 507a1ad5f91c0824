//! The rules of `cargo dbsafe check` by name: dbsafe's own, with their level when `[lint]`
//! does not name them and whether it may, and squawk's; and the PostgreSQL versions squawk
//! reads. A leaf module: dbsafe.toml's `[lint]` is checked against it and the lint reads
//! it, so the configuration does not depend on the lint.

use std::str::FromStr;

use enum_iterator::all;
use serde::Serialize;
use squawk_linter::{Rule, Version};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fails the check (exit 1).
    Error,
    /// Reported only.
    Warning,
}

impl Level {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One of dbsafe's rules.
pub(crate) struct RuleInfo {
    /// Its name.
    pub name: &'static str,
    /// Its level when `[lint]` does not name it.
    pub level: Level,
    /// Whether `[lint]` and `-- dbsafe:allow` may change it.
    pub configurable: bool,
}

const fn rule(name: &'static str, level: Level, configurable: bool) -> RuleInfo {
    RuleInfo {
        name,
        level,
        configurable,
    }
}

/// dbsafe's rules: the lint rules and the layout and lock checks (the documentation of each
/// is in docs/dbsafe.reference.toml, `[lint]`).
pub(crate) const RULES: &[RuleInfo] = &[
    rule("concurrently-in-transaction", Level::Error, true),
    rule("concurrently-not-alone", Level::Error, true),
    rule("destructive-without-snapshot", Level::Warning, true),
    rule("needless-no-transaction", Level::Warning, true),
    rule("lock-timeout-disabled", Level::Error, true),
    rule("syntax-error", Level::Error, true),
    rule("squawk-ignore", Level::Warning, true),
    rule("unused-allow", Level::Warning, true),
    rule("stray-file", Level::Warning, true),
    rule("stray-directory", Level::Error, true),
    rule("allow-without-reason", Level::Error, false),
    rule("allow-unknown-rule", Level::Error, false),
    rule("empty-up", Level::Error, false),
    rule("missing-down", Level::Error, false),
    rule("duplicate-version", Level::Error, false),
    rule("metadata-invalid", Level::Error, false),
    rule("metadata-no-key", Level::Error, false),
    rule("metadata-wrong-type", Level::Error, false),
    rule("metadata-unknown-key", Level::Error, false),
    rule("lock-missing", Level::Error, false),
    rule("lock-malformed", Level::Error, false),
    rule("lock-edited", Level::Error, false),
    rule("lock-deleted", Level::Error, false),
    rule("lock-out-of-order", Level::Error, false),
    rule("lock-unrecorded", Level::Error, false),
];

/// Whether `[lint]` (and `-- dbsafe:allow`) may name this rule: one of dbsafe's
/// configurable rules or one of squawk's.
pub fn is_configurable(name: &str) -> bool {
    RULES.iter().any(|r| r.name == name && r.configurable) || squawk_rules_named(name).is_some()
}

/// Every rule `[lint]` may name.
pub fn configurable_rules() -> Vec<String> {
    RULES
        .iter()
        .filter(|r| r.configurable)
        .map(|r| r.name.to_owned())
        .chain(squawk_rule_names())
        .collect()
}

/// Every squawk rule name, aliases excluded.
fn squawk_rule_names() -> Vec<String> {
    all::<Rule>()
        .filter(|rule| rule.expands_to().is_empty())
        .map(|rule| rule.to_string())
        .collect()
}

/// The squawk rules a name stands for: itself, or what an alias expands to.
pub(crate) fn squawk_rules_named(name: &str) -> Option<Vec<Rule>> {
    let rule = Rule::from_str(name).ok()?;
    Some(match rule.expands_to() {
        [] => vec![rule],
        expanded => expanded.to_vec(),
    })
}

/// Whether `text` is a PostgreSQL version for `[lint] pg-version`: one squawk
/// understands ("15", "16.2").
pub fn valid_pg_version(text: &str) -> bool {
    Version::from_str(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_known() {
        assert!(is_configurable("require-concurrent-index-creation"));
        assert!(is_configurable("prefer-timestamptz"));
        assert!(is_configurable("destructive-without-snapshot"));
        assert!(!is_configurable("lock-edited"));
        assert!(!is_configurable("no-such-rule"));
        assert!(valid_pg_version("16"));
        assert!(!valid_pg_version("sixteen"));
    }
}
