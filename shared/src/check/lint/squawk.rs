//! PostgreSQL lint through the `squawk-linter` crate: which of its rules run, at what level
//! by default, and its violations turned into dbsafe's findings.

use squawk_linter::{Linter, Rule, Version};
use squawk_syntax::SourceFile;

use super::Raw;
use crate::check::Level;
use crate::config::Config;

/// A squawk rule's level when `[lint]` does not name it.
///
/// squawk's opt-in rules are off. `require-lock-timeout` is off because dbsafe's apply sets
/// `lock_timeout` for each migration ([apply] lock-timeout), and `require-statement-timeout`
/// likewise once [apply] statement-timeout is set (a warning until then).
/// `ban-concurrent-index-creation-in-transaction` is off because dbsafe's
/// `concurrently-in-transaction` reads metadata.toml as diesel does. Style preferences and
/// the compatibility rules about objects clients rarely use are warnings; the rest, errors.
pub(super) fn default_level(rule: Rule, config: &Config) -> Option<Level> {
    match rule {
        Rule::RequireLockTimeout
        | Rule::RequireTimeoutSettings
        | Rule::BanConcurrentIndexCreationInTransaction => None,
        Rule::RequireStatementTimeout => config
            .apply
            .statement_timeout
            .is_none()
            .then_some(Level::Warning),
        rule if rule.is_opt_in() => None,
        Rule::PreferBigintOverInt
        | Rule::PreferBigintOverSmallint
        | Rule::PreferIdentity
        | Rule::PreferTextField
        | Rule::PreferTimestampTz
        | Rule::PreferRobustStmts
        | Rule::PreferRepack
        | Rule::BanCharField
        | Rule::IdentifierTooLong
        | Rule::UnusedIgnore
        | Rule::BanDropView
        | Rule::BanDropFunction
        | Rule::BanDropType
        | Rule::BanDropDefault
        | Rule::BanDropSchema
        | Rule::BanDropSequence
        | Rule::BanDropDomain
        | Rule::BanDropConstraint
        | Rule::BanDropGeneratedExpression
        | Rule::BanDropExtension
        | Rule::RenamingObject
        | Rule::BanSetSchema
        | Rule::BanAlterIdentity => Some(Level::Warning),
        _ => Some(Level::Error),
    }
}

/// What squawk's linter needs besides the text.
pub(super) struct Settings {
    /// The rules that run.
    pub rules: Vec<Rule>,
    /// `[lint] pg-version`.
    pub pg_version: Option<Version>,
    /// Whether to lint a file that squawk's parser rejects.
    pub lint_despite_syntax_errors: bool,
}

/// Lints one file with squawk: its first syntax error as `syntax-error`, then each violation.
pub(super) fn lint(text: &str, run_in_transaction: bool, settings: &Settings, out: &mut Vec<Raw>) {
    let parse = SourceFile::parse(text);
    if let Some(error) = parse.errors().first() {
        out.push(Raw {
            rule: "syntax-error".into(),
            offset: usize::from(error.range().start()),
            message: format!(
                "PostgreSQL syntax error: {} (read by squawk's parser; its rules do not run on \
                 this file)",
                error.message()
            ),
            help: Some(
                "fix the SQL; if PostgreSQL accepts it, switch the rule off with `[lint] allow = \
                 [\"syntax-error\"]`"
                    .into(),
            ),
        });
        if !settings.lint_despite_syntax_errors {
            return;
        }
    }
    let mut linter = Linter::from(settings.rules.iter().copied());
    linter.settings.assume_in_transaction = run_in_transaction;
    if let Some(version) = settings.pg_version {
        linter.settings.pg_version = version;
    }
    for violation in linter.lint(&parse, text) {
        let offset = usize::from(violation.text_range.start());
        if violation.code == Rule::AddingFieldWithDefault && adds_virtual_column(text, offset) {
            // PostgreSQL 18's VIRTUAL generated columns are computed when read: adding one
            // rewrites nothing (and older servers refuse the syntax outright).
            continue;
        }
        let help = if violation.code == Rule::RequireStatementTimeout {
            // dbsafe sets the timeout for each migration itself, once configured.
            Some(STATEMENT_TIMEOUT_HELP.to_owned())
        } else {
            violation
                .help
                .or_else(|| fallback_help(violation.code).map(str::to_owned))
        };
        out.push(Raw {
            rule: violation.code.to_string(),
            offset,
            message: violation.message,
            help,
        });
    }
}

/// Whether the statement at `offset` adds a `GENERATED ALWAYS AS (...) VIRTUAL` column.
fn adds_virtual_column(text: &str, offset: usize) -> bool {
    let statement = text
        .get(offset..)
        .map_or("", |rest| rest.split(';').next().unwrap_or(rest))
        .to_ascii_uppercase();
    let words: Vec<&str> = statement
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .collect();
    words.contains(&"GENERATED") && words.contains(&"VIRTUAL")
}

/// The help of `require-statement-timeout`: the setting that makes it go away.
const STATEMENT_TIMEOUT_HELP: &str = "set `statement-timeout` in dbsafe.toml's [apply] (for \
     example `statement-timeout = \"5m\"`, as `cargo dbsafe init` writes): dbsafe then sets \
     statement_timeout for each migration and this rule is off";

/// The safer way, for the rules squawk gives no help with.
fn fallback_help(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::BanDropColumn => {
            "expand and contract: deploy code that no longer reads or writes the column, then \
             drop it in a later migration (and take a snapshot first)"
        }
        Rule::BanDropTable => {
            "deploy code that no longer uses the table, then drop it in a later migration; \
             consider renaming it first and dropping it once nothing broke"
        }
        Rule::BanDropDatabase => "drop databases by hand, not in a migration",
        Rule::ChangingColumnType => {
            "add a new column of the new type, backfill it in batches, switch the code over, \
             then drop the old column in a later migration"
        }
        Rule::RenamingColumn => {
            "add the new column, write to both and backfill, switch reads, then drop the old \
             column later; or deploy code that reads both names first"
        }
        Rule::RenamingTable | Rule::RenamingObject => {
            "create the new name (a view under the old name can bridge the two), switch the \
             code, then drop the old name in a later migration"
        }
        Rule::BanDropNotNull => {
            "make sure every client copes with NULL in this column before dropping the \
             constraint"
        }
        Rule::BanCharField => "use text or varchar instead of char(n)",
        Rule::IdentifierTooLong => "shorten the name to at most 63 bytes",
        Rule::BanDropConstraint
        | Rule::BanDropDefault
        | Rule::BanDropView
        | Rule::BanDropFunction
        | Rule::BanDropType
        | Rule::BanDropSchema
        | Rule::BanDropSequence
        | Rule::BanDropDomain
        | Rule::BanDropExtension
        | Rule::BanDropGeneratedExpression
        | Rule::BanSetSchema
        | Rule::BanAlterIdentity => {
            "deploy code that no longer depends on it first, then change it in a later \
             migration"
        }
        _ => return None,
    })
}
