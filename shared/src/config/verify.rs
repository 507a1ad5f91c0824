//! The verification settings of dbsafe.toml: `[verify]` (built-in checks and their
//! parameters) and `[[invariant]]` (the user's own SQL assertions).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The built-in checks `cargo dbverify` knows.
pub const BUILTINS: &[&str] = &[
    "drift",
    "fk-orphans",
    "duplicates",
    "row-counts",
    "checksums",
    "rls-enabled",
    "triggers-present",
    "migration-checksums",
];

/// `[verify]`: which built-in checks run and their parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyConfig {
    /// Built-ins that always run (`builtins`); default: `fk-orphans`, `migration-checksums`,
    /// plus those whose lists below are set.
    pub builtins: Option<Vec<String>>,
    /// Schema objects drift ignores, written as in the fingerprint (`index users_extra_idx`,
    /// `table audit_log`, or a bare name matching any kind).
    pub ignore: Vec<String>,
    /// `row-counts`: largest change of a table's row count against the snapshot, in percent.
    pub max_row_change: Option<f64>,
    /// `checksums`: tables whose content must equal the snapshot's.
    pub unchanged_tables: Vec<String>,
    /// `rls-enabled`: tables whose row-level security must be on (PostgreSQL).
    pub rls_enabled: Vec<String>,
    /// `triggers-present`: triggers that must exist, as `table.trigger`.
    pub triggers_present: Vec<String>,
    /// `duplicates`: declared keys that must be unique, as `table(col, col)`.
    pub duplicates: Vec<KeyColumns>,
}

/// A declared key: a table and the columns that must be unique together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumns {
    /// The table.
    pub table: String,
    /// The columns.
    pub columns: Vec<String>,
}

impl KeyColumns {
    /// Parses `table(col, col)`.
    pub fn parse(text: &str) -> Result<KeyColumns, String> {
        let bad = || format!("\"{text}\" is not a key: write it as \"table(column, column)\"");
        let (table, rest) = text.split_once('(').ok_or_else(bad)?;
        let columns: Vec<String> = rest
            .strip_suffix(')')
            .ok_or_else(bad)?
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        let table = table.trim().to_owned();
        if table.is_empty() || columns.is_empty() {
            return Err(bad());
        }
        Ok(KeyColumns { table, columns })
    }
}

/// How bad a failing invariant is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvariantSeverity {
    /// Fails the command (exit 1) and triggers apply's failure policy.
    #[default]
    Error,
    /// Reported only.
    Warn,
}

/// When an invariant runs during apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A precondition: checked before anything is touched.
    Before,
    /// Checked after the migrations (with `[apply] verify = true`).
    #[default]
    After,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Comparison {
    /// Whether `observed OP expected` holds.
    pub fn holds(self, observed: f64, expected: f64) -> bool {
        match self {
            Comparison::Eq => observed == expected,
            Comparison::Ne => observed != expected,
            Comparison::Gt => observed > expected,
            Comparison::Ge => observed >= expected,
            Comparison::Lt => observed < expected,
            Comparison::Le => observed <= expected,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::Ne => "!=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        }
    }
}

/// What an invariant's query must return.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Expectation {
    /// The single value compares with a number (`= 0`, `> 0`, `<= 10`).
    Value(Comparison, f64),
    /// The number of rows compares with a number (`rows = 0`).
    Rows(Comparison, f64),
    /// The single value is true (`true`), or false (`false`).
    Bool(bool),
    /// The statement must be refused by the server (`error`); which error, if it matters,
    /// is the invariant's `expect-error`.
    Error,
}

impl Expectation {
    /// Parses `= 0`, `> 0`, `<= N`, `!= N`, `rows = 0`, `true`, `false`.
    pub fn parse(text: &str) -> Result<Expectation, String> {
        let trimmed = text.trim();
        match trimmed {
            "true" => return Ok(Expectation::Bool(true)),
            "false" => return Ok(Expectation::Bool(false)),
            "error" => return Ok(Expectation::Error),
            _ => {}
        }
        let (rows, rest) = match trimmed.strip_prefix("rows") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, trimmed),
        };
        let ops = [
            ("<=", Comparison::Le),
            (">=", Comparison::Ge),
            ("!=", Comparison::Ne),
            ("=", Comparison::Eq),
            ("<", Comparison::Lt),
            (">", Comparison::Gt),
        ];
        let (op, number) = ops
            .iter()
            .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|n| (*op, n.trim())))
            .ok_or_else(|| expectation_help(text))?;
        let value: f64 = number.parse().map_err(|_| expectation_help(text))?;
        Ok(if rows {
            Expectation::Rows(op, value)
        } else {
            Expectation::Value(op, value)
        })
    }
}

fn expectation_help(text: &str) -> String {
    format!(
        "invalid expectation \"{text}\": write \"= 0\", \"> 0\", \"<= N\", \"!= N\", \"rows = 0\", \"true\", \"false\" or \"error\""
    )
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Value(op, n) => write!(f, "{} {n}", op.symbol()),
            Expectation::Rows(op, n) => write!(f, "rows {} {n}", op.symbol()),
            Expectation::Bool(b) => write!(f, "{b}"),
            Expectation::Error => write!(f, "error"),
        }
    }
}

/// One `[[invariant]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invariant {
    /// Its name (unique).
    pub name: String,
    /// The query (from `sql`, or read from `sql-file`).
    pub sql: String,
    /// What it must return.
    pub expect: Expectation,
    /// `error` or `warn`.
    pub severity: InvariantSeverity,
    /// `before` or `after` apply's migrations.
    pub phase: Phase,
    /// Targets it applies to (`None`: all).
    pub targets: Option<Vec<String>>,
    /// `role`: the role it runs as (`SET LOCAL ROLE`, PostgreSQL).
    pub role: Option<String>,
    /// `settings`: session settings for its transaction only (`set_config(.., true)`,
    /// PostgreSQL), such as `app.tenant_id`, in name order.
    pub settings: Vec<(String, String)>,
    /// `expect-error` (with `expect = "error"`): the SQLSTATE (five characters, like
    /// `42501`) or a fragment of the server's message the refusal must carry.
    pub expect_error: Option<String>,
}

impl Invariant {
    /// Whether it applies to `target`.
    pub fn applies_to(&self, target: &str) -> bool {
        self.targets
            .as_ref()
            .is_none_or(|t| t.iter().any(|n| n == target))
    }
}

/// One `[[seed]]`: SQL run at the end of every successful apply (and twice on the shadow by
/// `check --roundtrip`, which fails when the second run errors or changes data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Its name (unique).
    pub name: String,
    /// The SQL, read from `file`.
    pub sql: String,
    /// Targets it applies to (`None`: all).
    pub targets: Option<Vec<String>>,
    /// `volatile`: columns (`table.column`) that may change when the seed runs again
    /// (`updated_at`), left out of the idempotence comparison.
    pub volatile: Vec<String>,
}

impl Seed {
    /// Whether it applies to `target`.
    pub fn applies_to(&self, target: &str) -> bool {
        self.targets
            .as_ref()
            .is_none_or(|t| t.iter().any(|n| n == target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse() {
        assert_eq!(
            Expectation::parse("= 0").unwrap(),
            Expectation::Value(Comparison::Eq, 0.0)
        );
        assert_eq!(
            Expectation::parse(">0").unwrap(),
            Expectation::Value(Comparison::Gt, 0.0)
        );
        assert_eq!(
            Expectation::parse("<= 10").unwrap(),
            Expectation::Value(Comparison::Le, 10.0)
        );
        assert_eq!(
            Expectation::parse("rows = 0").unwrap(),
            Expectation::Rows(Comparison::Eq, 0.0)
        );
        assert_eq!(Expectation::parse("true").unwrap(), Expectation::Bool(true));
        assert_eq!(Expectation::parse("error").unwrap(), Expectation::Error);
        for bad in ["", "== 0", "rows", "> x", "maybe"] {
            assert!(Expectation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_parse() {
        let key = KeyColumns::parse("users(email, tenant_id)").unwrap();
        assert_eq!(key.table, "users");
        assert_eq!(key.columns, ["email", "tenant_id"]);
        assert!(KeyColumns::parse("users").is_err());
        assert!(KeyColumns::parse("(a)").is_err());
    }
}
