//! `cargo dbsafe check`: runs the offline checks (and `--roundtrip` on a server) and renders
//! the findings as text (`file:line: severity[rule]: message`), JSON Lines
//! (`check.finding`, then `check.summary`) or GitHub Actions workflow commands
//! (`::error file=...,line=...,title=RULE::message`).

use std::io::Write;

use clap::Args;
use console::Style;

use super::{GlobalArgs, MessageFormat, Output, exit};
use crate::check::{CheckOptions, CheckReport, DialectSource, Finding, Level};
use crate::config::ConfigError;
use crate::error::{Error, Result};

/// `cargo dbsafe check` flags.
#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// Record new migrations in dbsafe.lock.
    #[arg(long)]
    update_lock: bool,
    /// With --update-lock: accept the edit, deletion or out-of-order addition of this
    /// migration (directory name or version; repeatable). Databases that already applied it
    /// ran the old text and will not run it again.
    #[arg(long, value_name = "NAME", requires = "update_lock")]
    allow_edit: Vec<String>,
    /// Also round-trip the pending migrations on a shadow database (apply, revert, compare
    /// the schema, apply again) and run each seed twice; needs the target's server.
    #[arg(long)]
    roundtrip: bool,
    /// Lint every migration, also those recorded in dbsafe.lock (by default only new or
    /// edited ones are linted: the recorded ones shipped already); with --roundtrip, also
    /// round-trip every migration, not only the pending ones.
    #[arg(long)]
    all: bool,
}

/// Runs `cargo dbsafe check`; returns the exit code (1 when a finding is an error).
pub(super) fn run(args: &CheckArgs, global: &GlobalArgs, output: &mut Output) -> Result<u8> {
    let format = global.message_format;
    let config = match global.load_config() {
        Ok(config) => config,
        Err(Error::Config(ConfigError::Invalid { file, problems })) => {
            // Shown like every other finding, so CI annotates dbsafe.toml's lines.
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let findings: Vec<Finding> = problems
                .into_iter()
                .map(|problem| {
                    let message = match problem.key.as_str() {
                        "" => problem.message,
                        key => format!("key `{key}`: {}", problem.message),
                    };
                    Finding::new("config", Level::Error, message)
                        .at(name.clone(), Some(problem.line))
                })
                .collect();
            findings
                .iter()
                .for_each(|f| render_finding(output, format, global.quiet, f));
            return Err(Error::Usage(format!(
                "{} is invalid ({} problem(s)): fix it and run the check again",
                file.display(),
                findings.len()
            )));
        }
        Err(error) => return Err(error),
    };
    let options = CheckOptions {
        target: global.target.clone(),
        update_lock: args.update_lock,
        allow_edit: args.allow_edit.clone(),
        all: args.all,
    };
    let mut report = crate::check::check(&config, &options)?;
    lock_notes(output, &report);
    let mut roundtrip = None;
    if args.roundtrip {
        let target = global.resolve_target(&config)?;
        // The shadow database is created on the target's server: a protected target is
        // named and confirmed like for apply.
        let confirmation = global.confirm(&target, "create a shadow database beside it")?;
        crate::preflight::guard_protected(&target, confirmation)?;
        let phase = output.phase("round trip of the migrations on a shadow database");
        let problems = crate::roundtrip::roundtrip(&config, &target, args.all)?;
        drop(phase);
        let findings: Vec<Finding> = problems
            .into_iter()
            .map(|problem| {
                let finding = Finding::new(problem.rule, problem.severity, problem.message);
                match &problem.file {
                    Some(file) => finding.at(crate::check::rel(&config, file), None),
                    None => finding,
                }
            })
            .collect();
        roundtrip = Some(RoundtripCounts {
            errors: findings
                .iter()
                .filter(|f| f.severity == Level::Error)
                .count(),
            warnings: findings
                .iter()
                .filter(|f| f.severity == Level::Warning)
                .count(),
        });
        report.findings.extend(findings);
    }
    for finding in &report.findings {
        render_finding(output, format, global.quiet, finding);
    }
    let errors = report.count(Level::Error);
    let warnings = report.count(Level::Warning);
    match format {
        MessageFormat::Json => output.json(&serde_json::json!({
            "type": "check.summary",
            "migrations": report.migrations,
            "errors": errors,
            "warnings": warnings,
            "dialect": report.dialect,
            "dialect_source": report.dialect_source,
            "target": report.target,
            "lock": report.lock,
            "linted": report.linted,
            "roundtrip_problems": roundtrip.map(|r| r.errors),
            "roundtrip_warnings": roundtrip.map(|r| r.warnings),
        })),
        _ if !global.quiet => line(&summary(&report, errors, warnings, roundtrip)),
        _ => {}
    }
    if errors > 0 {
        return Err(Error::Failed(format!(
            "check found {errors} error(s): fix them, or see the help line under each"
        )));
    }
    Ok(exit::SUCCESS)
}

/// What the round trip found.
#[derive(Debug, Clone, Copy)]
struct RoundtripCounts {
    errors: usize,
    warnings: usize,
}

/// The closing line of a text report.
fn summary(
    report: &CheckReport,
    errors: usize,
    warnings: usize,
    roundtrip: Option<RoundtripCounts>,
) -> String {
    let source = match report.dialect_source {
        DialectSource::TargetUrl | DialectSource::UrlEnv => format!(
            "the URL of target {}",
            report.target.as_deref().unwrap_or("?")
        ),
        DialectSource::Config => "[lint] dialect".to_owned(),
        DialectSource::Default => "the default".to_owned(),
    };
    let roundtrip = match roundtrip {
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
        "checked {} migration(s) as {} (from {source}): {errors} error(s), {warnings} \
         warning(s){linted}{roundtrip}",
        report.migrations, report.dialect
    )
}

/// Tells what `--update-lock` did, on stderr.
fn lock_notes(output: &Output, report: &CheckReport) {
    let lock = &report.lock;
    if !lock.added.is_empty() {
        output.note(&format!(
            "{}: recorded {} new migration(s)",
            lock.file,
            lock.added.len()
        ));
    }
    if lock.created && !lock.added.is_empty() {
        output.note(&format!(
            "{}: from now on `cargo dbsafe check` lints only migrations that are not recorded \
             in it (new or edited); the recorded history shipped already (`check --all` lints \
             it too)",
            lock.file
        ));
    }
    for name in &lock.accepted {
        output.note(&format!(
            "{}: accepted the change to {name}; databases that already applied it ran the old \
             text and will not run it again",
            lock.file
        ));
    }
    if lock.written && lock.added.is_empty() && lock.accepted.is_empty() {
        output.note(&format!("{}: rewritten", lock.file));
    }
}

/// Writes one finding in the chosen format; with `--quiet`, only errors.
fn render_finding(output: &Output, format: MessageFormat, quiet: bool, finding: &Finding) {
    match format {
        MessageFormat::Json => output.json_typed("check.finding", finding),
        _ if quiet && finding.severity != Level::Error => {}
        MessageFormat::Github => line(&github(finding)),
        MessageFormat::Human => line(&human(finding)),
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

/// A GitHub Actions workflow command: `::error file=F,line=L,title=RULE::message`.
fn github(finding: &Finding) -> String {
    let command = match finding.severity {
        Level::Error => "error",
        Level::Warning => "warning",
    };
    let mut properties = Vec::new();
    if let Some(file) = &finding.file {
        properties.push(format!("file={}", escape_property(file)));
        if let Some(line) = finding.line {
            properties.push(format!("line={line}"));
        }
    }
    properties.push(format!("title={}", escape_property(&finding.rule)));
    let mut message = finding.message.clone();
    if let Some(help) = &finding.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    format!(
        "::{command} {}::{}",
        properties.join(","),
        escape_data(&message)
    )
}

/// Escapes a workflow command's message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Writes a line to stdout; a closed pipe ends the process quietly with 0.
fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(i32::from(exit::SUCCESS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_commands_are_escaped() {
        let finding = Finding::new("ban-drop-column", Level::Error, "100% sure\nreally")
            .at("migrations/a,b/up.sql".into(), Some(3))
            .help("do: this");
        assert_eq!(
            github(&finding),
            "::error file=migrations/a%2Cb/up.sql,line=3,title=ban-drop-column::100%25 sure%0Areally%0Ahelp: do: this"
        );
        let warning = Finding::new("roundtrip", Level::Warning, "x");
        assert_eq!(github(&warning), "::warning title=roundtrip::x");
    }
}
