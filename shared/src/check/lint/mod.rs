//! Lint of each migration's SQL: squawk's rules on PostgreSQL, dbsafe's own on every
//! dialect, levels from `[lint]`, and `-- dbsafe:allow RULE because REASON` comments that
//! suppress one finding of the next statement.

pub(crate) mod rules;
mod squawk;

use std::collections::HashMap;
use std::path::Path;

use super::{Finding, Level, rel};
use crate::config::Config;
use crate::dialect::Backend;
use crate::lint_rules::{RULES, configurable_rules, is_configurable, squawk_rules_named};
use crate::migrations::Migration;
use crate::sql_text::{self as sql, Lines, Script};

/// A finding as a rule reports it, before its level and location are known.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    /// The rule's name.
    pub rule: String,
    /// Byte offset in the file.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// The safer way.
    pub help: Option<String>,
}

/// Whether `sql` has a statement PostgreSQL refuses inside a transaction because of
/// CONCURRENTLY (as `concurrently-in-transaction` reads it).
pub(crate) fn uses_concurrently(sql: &str) -> bool {
    sql::split(sql, Backend::Postgres)
        .statements
        .iter()
        .any(rules::is_concurrently)
}

/// The level of every rule, from the defaults and `[lint]`.
pub(crate) struct Policy {
    /// Levels set by `[lint]` (`None`: allowed, i.e. off), by canonical rule name.
    overrides: HashMap<String, Option<Level>>,
    /// Levels of squawk's rules, by name.
    squawk_levels: HashMap<String, Option<Level>>,
    squawk: squawk::Settings,
}

impl Policy {
    /// The policy `config` asks for.
    pub fn new(config: &Config) -> Policy {
        let mut overrides = HashMap::new();
        let lists = [
            (&config.lint.allow, None),
            (&config.lint.warn, Some(Level::Warning)),
            (&config.lint.deny, Some(Level::Error)),
        ];
        for (names, level) in lists {
            for name in names {
                match squawk_rules_named(name) {
                    Some(rules) => {
                        for rule in rules {
                            overrides.insert(rule.to_string(), level);
                        }
                    }
                    None => {
                        overrides.insert(name.clone(), level);
                    }
                }
            }
        }
        let mut squawk_levels = HashMap::new();
        let mut enabled = Vec::new();
        for rule in enum_iterator::all::<squawk_linter::Rule>() {
            let name = rule.to_string();
            let level = match overrides.get(&name) {
                Some(level) => *level,
                None => squawk::default_level(rule, config),
            };
            if level.is_some() && rule.expands_to().is_empty() {
                enabled.push(rule);
            }
            squawk_levels.insert(name, level);
        }
        let syntax = overrides.get("syntax-error").copied();
        Policy {
            squawk: squawk::Settings {
                rules: enabled,
                pg_version: config
                    .lint
                    .pg_version
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
                lint_despite_syntax_errors: syntax == Some(None),
            },
            overrides,
            squawk_levels,
        }
    }

    /// The level of a rule; `None` when it is off.
    pub fn level(&self, name: &str) -> Option<Level> {
        if let Some(level) = self.overrides.get(name) {
            return *level;
        }
        if let Some(info) = RULES.iter().find(|r| r.name == name) {
            return Some(info.level);
        }
        self.squawk_levels.get(name).copied().flatten()
    }
}

/// Which file of a migration is linted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Up,
    Down,
}

/// What every migration's lint shares.
pub(crate) struct Context<'a> {
    /// The configuration, for paths.
    pub config: &'a Config,
    /// Rule levels.
    pub policy: &'a Policy,
    /// The dialect the SQL is read in.
    pub dialect: Backend,
    /// When apply takes no snapshot before the migrations: why (for
    /// `destructive-without-snapshot`); `None` when it takes one.
    pub no_snapshot: Option<String>,
}

/// Lints one migration: up.sql, down.sql and its metadata.toml.
pub(crate) fn lint_migration(ctx: &Context, migration: &Migration) -> Vec<Finding> {
    let up = sql::split(&migration.up_sql, ctx.dialect);
    let mut findings = lint_file(
        ctx,
        &migration.up_path,
        &migration.up_sql,
        &up,
        Which::Up,
        migration.run_in_transaction,
    );
    let down = migration.down_sql.as_deref().map(|text| {
        let script = sql::split(text, ctx.dialect);
        findings.extend(lint_file(
            ctx,
            &migration.down_path,
            text,
            &script,
            Which::Down,
            migration.run_in_transaction,
        ));
        script
    });
    if let Some(line) = migration.no_transaction_line {
        let scripts: Vec<&Script> = std::iter::once(&up).chain(down.as_ref()).collect();
        if let Some(level) = ctx.policy.level("needless-no-transaction")
            && !rules::any_needs_no_transaction(&scripts)
        {
            findings.push(
                Finding::new(
                    "needless-no-transaction",
                    level,
                    "this migration runs outside a transaction (run_in_transaction = false) \
                     but none of its statements needs that: if one fails, the ones before it \
                     stay applied and the target is left dirty",
                )
                .at(
                    rel(ctx.config, &migration.dir.join("metadata.toml")),
                    Some(line),
                )
                .help("delete metadata.toml, or set `run_in_transaction = true`"),
            );
        }
    }
    findings
}

/// Lints one file.
fn lint_file(
    ctx: &Context,
    path: &Path,
    text: &str,
    script: &Script,
    which: Which,
    run_in_transaction: bool,
) -> Vec<Finding> {
    let mut raw = Vec::new();
    rules::concurrently(script, run_in_transaction, &mut raw);
    rules::lock_timeout(script, &mut raw);
    if which == Which::Up {
        if let Some(why) = &ctx.no_snapshot {
            rules::destructive(script, why, &mut raw);
        }
        if ctx.dialect == Backend::Postgres {
            squawk::lint(text, run_in_transaction, &ctx.policy.squawk, &mut raw);
            squawk_ignores(script, &mut raw);
        }
    }
    let mut kept: Vec<(Raw, Level)> = raw
        .into_iter()
        .filter_map(|r| ctx.policy.level(&r.rule).map(|level| (r, level)))
        .collect();
    kept.sort_by_key(|(r, _)| r.offset);
    let lines = Lines::new(text);
    let file = rel(ctx.config, path);
    let mut findings = Vec::new();
    for comment in &script.comments {
        let Some(allow) = parse_allow(comment.body) else {
            continue;
        };
        let line = Some(lines.line(comment.offset));
        let rule = match allow {
            Allow::Invalid {
                rule,
                message,
                help,
            } => {
                findings.push(
                    Finding::new(rule, Level::Error, message)
                        .at(file.clone(), line)
                        .help(help),
                );
                continue;
            }
            Allow::Rule(rule) => rule,
        };
        let next = script.statements.iter().find(|s| s.start > comment.offset);
        let found = next.and_then(|statement| {
            kept.iter().position(|(r, _)| {
                r.rule == rule && r.offset >= statement.start && r.offset < statement.end
            })
        });
        match found {
            Some(index) => {
                kept.remove(index);
            }
            None => {
                if let Some(level) = ctx.policy.level("unused-allow") {
                    findings.push(
                        Finding::new(
                            "unused-allow",
                            level,
                            format!(
                                "this comment allows `{rule}`, but the statement after it has \
                                 no such finding"
                            ),
                        )
                        .at(file.clone(), line)
                        .help(
                            "remove the comment, or put it right above the statement it is about",
                        ),
                    );
                }
            }
        }
    }
    findings.extend(kept.into_iter().map(|(r, level)| {
        let mut finding =
            Finding::new(r.rule, level, r.message).at(file.clone(), Some(lines.line(r.offset)));
        finding.help = r.help;
        finding
    }));
    findings
}

/// `-- squawk-ignore` comments suppress squawk's findings without a reason.
fn squawk_ignores(script: &Script, out: &mut Vec<Raw>) {
    for comment in &script.comments {
        if comment.body.trim_start().starts_with("squawk-ignore") {
            out.push(Raw {
                rule: "squawk-ignore".into(),
                offset: comment.offset,
                message: "a squawk-ignore comment switches squawk's rules off without saying why"
                    .into(),
                help: Some("write `-- dbsafe:allow RULE because REASON` instead".into()),
            });
        }
    }
}

/// What a `dbsafe:allow` comment says.
#[derive(Debug, PartialEq, Eq)]
enum Allow {
    /// A valid comment allowing this rule.
    Rule(String),
    /// A comment that is a finding of its own.
    Invalid {
        rule: &'static str,
        message: String,
        help: String,
    },
}

/// Reads a comment's text: `None` when it is not a `dbsafe:allow` comment.
fn parse_allow(body: &str) -> Option<Allow> {
    let rest = body.trim().strip_prefix("dbsafe:allow")?;
    let form = "write it as `-- dbsafe:allow RULE because REASON`";
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let Some(rule) = words.next() else {
        return Some(Allow::Invalid {
            rule: "allow-unknown-rule",
            message: "this dbsafe:allow comment names no rule".into(),
            help: form.into(),
        });
    };
    let rule = rule.trim_end_matches([',', ':']);
    if !is_configurable(rule) {
        let fixed = RULES.iter().any(|r| r.name == rule);
        let message = if fixed {
            format!("`{rule}` cannot be allowed in SQL: fix what it reports")
        } else {
            let known = configurable_rules();
            let close = known
                .iter()
                .filter(|k| strsim::levenshtein(rule, k) <= 2)
                .min_by_key(|k| strsim::levenshtein(rule, k));
            match close {
                Some(close) => format!("unknown rule `{rule}`: did you mean `{close}`?"),
                None => format!("unknown rule `{rule}`"),
            }
        };
        return Some(Allow::Invalid {
            rule: "allow-unknown-rule",
            message,
            help: "use a rule name from a finding (`cargo dbsafe check` prints them)".into(),
        });
    }
    let reason_word = words.next();
    let reason: Vec<&str> = words.collect();
    if !reason_word.is_some_and(|w| w.eq_ignore_ascii_case("because")) || reason.is_empty() {
        return Some(Allow::Invalid {
            rule: "allow-without-reason",
            message: format!(
                "this comment allows `{rule}` without a reason, so it suppresses nothing"
            ),
            help: format!("say why it is safe: `-- dbsafe:allow {rule} because REASON`"),
        });
    }
    Some(Allow::Rule(rule.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_comments() {
        assert_eq!(parse_allow(" an ordinary comment"), None);
        assert_eq!(parse_allow(" dbsafe:allowed"), None);
        assert_eq!(
            parse_allow(" dbsafe:allow ban-drop-column because the column was never read"),
            Some(Allow::Rule("ban-drop-column".into()))
        );
        let rule_of = |text: &str| match parse_allow(text) {
            Some(Allow::Invalid { rule, .. }) => rule,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            rule_of(" dbsafe:allow ban-drop-column"),
            "allow-without-reason"
        );
        assert_eq!(
            rule_of(" dbsafe:allow ban-drop-column because"),
            "allow-without-reason"
        );
        assert_eq!(
            rule_of(" dbsafe:allow ban-drop-colum because x"),
            "allow-unknown-rule"
        );
        assert_eq!(
            rule_of(" dbsafe:allow lock-edited because x"),
            "allow-unknown-rule"
        );
        assert_eq!(rule_of(" dbsafe:allow"), "allow-unknown-rule");
    }
}
