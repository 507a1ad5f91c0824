//! `cargo dbsafe check`'s findings (`file:line: severity[rule]: message`, `check.finding`
//! lines, or an annotation each) and its closing summary (`check.summary`).

use console::Style;

use super::github::{self, Annotation};
use super::{HumanStream, JsonLine, Report};
use crate::check::{CheckReport, DialectSource, Finding, Level};

/// Findings, shown as they are found.
pub struct CheckFindings<'a> {
    /// The findings.
    pub findings: &'a [Finding],
    /// Only the errors in text (`--quiet`); JSON has every finding.
    pub errors_only: bool,
}

impl CheckFindings<'_> {
    fn shown(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| !self.errors_only || f.severity == Level::Error)
    }
}

impl Report for CheckFindings<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.findings
            .iter()
            .map(|f| JsonLine::new("check.finding", f))
            .collect()
    }

    fn human(&self) -> String {
        self.shown().map(|f| format!("{}\n", human(f))).collect()
    }

    fn github(&self) -> String {
        github::lines(self.shown().map(annotation))
    }

    fn stream(&self) -> HumanStream {
        HumanStream::Always
    }
}

/// `file:line: severity[rule]: message`, then `  help: ...`.
fn human(finding: &Finding) -> String {
    let style = match finding.severity {
        Level::Error => Style::new().red().bold(),
        Level::Warning => Style::new().yellow().bold(),
    };
    let mut text = String::new();
    if let Some(file) = &finding.file {
        text.push_str(file);
        if let Some(line) = finding.line {
            text.push_str(&format!(":{line}"));
        }
        text.push_str(": ");
    }
    text.push_str(&format!(
        "{}: {}",
        style.apply_to(format!("{}[{}]", finding.severity.as_str(), finding.rule)),
        finding.message
    ));
    if let Some(help) = &finding.help {
        text.push_str(&format!(
            "\n  {} {help}",
            Style::new().cyan().apply_to("help:")
        ));
    }
    text
}

/// `::error file=F,line=L,title=RULE::message` (the help on a line of its own).
fn annotation(finding: &Finding) -> Annotation {
    let level = match finding.severity {
        Level::Error => github::Level::Error,
        Level::Warning => github::Level::Warning,
    };
    let mut message = finding.message.clone();
    if let Some(help) = &finding.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    Annotation::new(level, &finding.rule, message).at(finding.file.clone(), finding.line)
}

/// What the round trip found.
#[derive(Debug, Clone, Copy)]
pub struct RoundtripCounts {
    /// Its errors.
    pub errors: usize,
    /// Its warnings.
    pub warnings: usize,
}

/// The closing line of a check.
pub struct CheckSummary<'a> {
    /// The check's report.
    pub report: &'a CheckReport,
    /// What the round trip found, when it ran.
    pub roundtrip: Option<RoundtripCounts>,
}

impl Report for CheckSummary<'_> {
    fn json(&self) -> Vec<JsonLine> {
        let report = self.report;
        vec![JsonLine::new(
            "check.summary",
            &serde_json::json!({
                "migrations": report.migrations,
                "errors": report.count(Level::Error),
                "warnings": report.count(Level::Warning),
                "dialect": report.dialect,
                "dialect_source": report.dialect_source,
                "target": report.target,
                "lock": report.lock,
                "linted": report.linted,
                "roundtrip_problems": self.roundtrip.map(|r| r.errors),
                "roundtrip_warnings": self.roundtrip.map(|r| r.warnings),
            }),
        )]
    }

    fn human(&self) -> String {
        let report = self.report;
        let source = match report.dialect_source {
            DialectSource::TargetUrl | DialectSource::UrlEnv => format!(
                "the URL of target {}",
                report.target.as_deref().unwrap_or("?")
            ),
            DialectSource::Config => "[lint] dialect".to_owned(),
            DialectSource::Default => "the default".to_owned(),
        };
        let roundtrip = match self.roundtrip {
            Some(RoundtripCounts { errors: 0, .. }) => "; round trip passed",
            Some(_) => "; round trip failed",
            None => "",
        };
        let linted = match report.migrations - report.linted {
            0 => String::new(),
            settled => format!(
                "; linted {} new or edited, not the {settled} recorded in {} (--all lints them)",
                report.linted, report.lock.file
            ),
        };
        format!(
            "checked {} migration(s) as {} (from {source}): {} error(s), {} \
             warning(s){linted}{roundtrip}",
            report.migrations,
            report.dialect,
            report.count(Level::Error),
            report.count(Level::Warning)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_become_escaped_annotations() {
        let finding = Finding::new("ban-drop-column", Level::Error, "100% sure\nreally")
            .at("migrations/a,b/up.sql".into(), Some(3))
            .help("do: this");
        assert_eq!(
            annotation(&finding).to_string(),
            "::error file=migrations/a%2Cb/up.sql,line=3,title=ban-drop-column::100%25 sure%0Areally%0Ahelp: do: this"
        );
        let warning = Finding::new("roundtrip", Level::Warning, "x");
        assert_eq!(
            annotation(&warning).to_string(),
            "::warning title=roundtrip::x"
        );
    }
}
