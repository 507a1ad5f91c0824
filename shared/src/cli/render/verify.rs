//! `cargo dbverify`'s results (a table, `verify.result` and `verify.summary` lines, an
//! annotation per failing check) and `cargo dbsafe fingerprint`.

use console::Style;

use super::github::{self, Annotation, Level};
use super::{JsonLine, Report};
use crate::inspect::{SchemaFingerprint, TableFingerprint};
use crate::verify::{CheckResult, Status};

/// The results of the checks on one target.
pub struct VerifyResults<'a> {
    /// The target's name.
    pub target: &'a str,
    /// Each check's result, in order.
    pub results: &'a [CheckResult],
    /// dbsafe.toml's text and its path relative to the project root, to point the
    /// annotations of invariants at their `[[invariant]]`.
    pub config: Option<(String, String)>,
}

impl VerifyResults<'_> {
    /// How many checks fail the command.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| r.fails()).count()
    }

    /// One annotation per check that did not pass (a warning for a `warn` check).
    pub(super) fn annotations(&self) -> impl Iterator<Item = Annotation> + '_ {
        self.results.iter().filter_map(|r| self.annotation(r))
    }

    fn annotation(&self, result: &CheckResult) -> Option<Annotation> {
        let level = match result.status {
            Status::Pass => return None,
            Status::Fail | Status::Error => Level::Error,
            Status::Warn => Level::Warning,
        };
        let mut message = format!(
            "{} on target {}: {}",
            result.name, self.target, result.observed
        );
        for detail in &result.details {
            message.push_str(&format!("\n{detail}"));
        }
        let annotation = Annotation::new(level, format!("dbverify {}", result.name), message);
        Some(match (&self.config, result.kind) {
            (Some((text, file)), "invariant") => {
                annotation.at(Some(file.clone()), invariant_line(text, &result.name))
            }
            _ => annotation,
        })
    }
}

/// The line of `name = "NAME"` in dbsafe.toml, where the invariant is defined.
fn invariant_line(config: &str, name: &str) -> Option<usize> {
    let quoted = toml::Value::String(name.to_owned()).to_string();
    config
        .lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix("name")
                .map(str::trim_start)
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|value| value.trim() == quoted)
        })
        .map(|index| index + 1)
}

impl Report for VerifyResults<'_> {
    fn json(&self) -> Vec<JsonLine> {
        let mut lines: Vec<JsonLine> = self
            .results
            .iter()
            .map(|r| JsonLine::new("verify.result", r))
            .collect();
        lines.push(JsonLine::new(
            "verify.summary",
            &serde_json::json!({"target": self.target, "checks": self.results.len(), "failed": self.failed()}),
        ));
        lines
    }

    /// An aligned table, details indented under each check.
    fn human(&self) -> String {
        if self.results.is_empty() {
            return "no checks to run: configure [verify] or [[invariant]] in dbsafe.toml".into();
        }
        let width = self.results.iter().map(|r| r.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for result in self.results {
            let (style, word) = match result.status {
                Status::Pass => (Style::new().green(), "pass"),
                Status::Fail => (Style::new().red().bold(), "FAIL"),
                Status::Warn => (Style::new().yellow(), "warn"),
                Status::Error => (Style::new().red().bold(), "ERROR"),
            };
            out.push_str(&format!(
                "{:<width$}  {:<5}  {}\n",
                result.name,
                style.apply_to(word),
                result.observed
            ));
            for detail in &result.details {
                out.push_str(&format!("{:<width$}         {detail}\n", ""));
            }
        }
        out
    }

    /// The table, then one annotation per check that did not pass (a warning for a
    /// `warn` check).
    fn github(&self) -> String {
        format!("{}{}", self.human(), github::lines(self.annotations()))
    }
}

/// `cargo dbsafe fingerprint`: the schema's hash and every table's rows and content hash.
pub struct Fingerprint<'a> {
    /// The target's name.
    pub target: &'a str,
    /// The schema fingerprint.
    pub schema: &'a SchemaFingerprint,
    /// Each table's fingerprint.
    pub tables: &'a [TableFingerprint],
    /// Whether the human text lists the schema's canonical lines.
    pub show_schema: bool,
}

impl Report for Fingerprint<'_> {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new(
            "fingerprint",
            &serde_json::json!({"target": self.target, "schema": self.schema, "tables": self.tables}),
        )]
    }

    fn human(&self) -> String {
        let mut text = format!(
            "schema {} ({} objects)\n",
            self.schema.hash,
            self.schema.lines.len()
        );
        if self.show_schema {
            for line in &self.schema.lines {
                text.push_str(&format!("  {line}\n"));
            }
        }
        for table in self.tables {
            text.push_str(&format!(
                "table {}  {} rows  {}\n",
                table.table, table.rows, table.hash
            ));
        }
        text
    }
}
