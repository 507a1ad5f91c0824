//! `cargo dbsafe check`: runs the offline checks (and `--roundtrip` on a server); the
//! findings and the summary are rendered by `render::check`.

use clap::Args;

use super::render::check::{CheckFindings, CheckSummary, RoundtripCounts};
use super::{GlobalArgs, Output, exit};
use crate::check::{CheckOptions, CheckReport, Finding, Level};
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
            output.report(&CheckFindings {
                findings: &findings,
                errors_only: global.quiet,
            });
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
    output.report(&CheckFindings {
        findings: &report.findings,
        errors_only: global.quiet,
    });
    output.report(&CheckSummary {
        report: &report,
        roundtrip,
    });
    let errors = report.count(Level::Error);
    if errors > 0 {
        return Err(Error::Failed(format!(
            "check found {errors} error(s): fix them, or see the help line under each"
        )));
    }
    Ok(exit::SUCCESS)
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
