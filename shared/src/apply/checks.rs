//! Apply's checks around its migrations: the `before` invariants, the baseline taken
//! before the first migration, the row counts a run changed, and `[apply] verify`.

use super::failure::Failure;
use crate::config::{Config, Phase};
use crate::connection::Database;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::ledger;
use crate::run_id::RunId;
use crate::session::Session;
use crate::snapshot::Manifest;
use crate::target::Target;
use crate::verify::{self, VerifyOptions, baseline::Baseline};

/// Before the first migration: what the after-run checks compare with. From the pre-run
/// snapshot's manifest when there is one; else the row counts of every table (exact where
/// `row-counts` runs after the migrations, else exact up to a million estimated rows) and
/// the content hashes of the tables `checksums` covers, when it runs. None when the run
/// has nothing to run that changes data (`changes_data`) and no check needs one. Counting
/// waits for locks no longer than `lock-timeout`: when no check needs the baseline, a
/// table it could not count makes a warning (returned) rather than a refusal.
pub(super) fn capture_baseline(
    config: &Config,
    db: &mut Database,
    snapshot: Option<&Manifest>,
    run_id: &RunId,
    changes_data: bool,
) -> Result<(Option<Baseline>, Option<String>)> {
    if let Some(manifest) = snapshot {
        return Ok((Some(Baseline::from_manifest(manifest)), None));
    }
    let checks = if config.apply.verify {
        verify::selected_builtins(config, &VerifyOptions::default())
    } else {
        Vec::new()
    };
    let compares = checks.contains(&"row-counts") || checks.contains(&"checksums");
    if !changes_data && !compares {
        return Ok((None, None));
    }
    let unchanged = &config.verify.unchanged_tables;
    let hashed: Option<&[String]> = match checks.contains(&"checksums") {
        true if unchanged.is_empty() => None,
        true => Some(unchanged),
        false => Some(&[]),
    };
    let exact = checks.contains(&"row-counts");
    match verify::baseline::bounded(db, &config.apply, |db| {
        Baseline::capture(db, run_id, exact, hashed)
    }) {
        Ok(baseline) => Ok((Some(baseline), None)),
        Err(e) if !compares => Ok((
            None,
            Some(format!(
                "the row counts before the run could not be read, so this run records none: {e}"
            )),
        )),
        Err(e) => Err(Error::Failed(format!(
            "the baseline of row-counts/checksums could not be read before the first migration, nothing was touched: {e}"
        ))),
    }
}

/// After the migrations and seeds: records in the ledger the row count of each table the
/// run changed, before and after, and warns of each that changed by more than
/// `max-row-change`. Tables it cannot count within `lock-timeout` make a warning.
pub(super) fn record_row_counts(session: &mut Session<'_>, baseline: &Baseline) -> Result<()> {
    let config = session.config;
    let exact = baseline.tables.values().all(|c| !c.estimated);
    let after = match verify::baseline::bounded(&mut session.db, &config.apply, |db| {
        verify::baseline::counts(db, exact)
    }) {
        Ok(after) => after,
        Err(e) => {
            let message = format!("the row counts after the run could not be read: {e}");
            return session.emit(EventKind::PreflightWarning { message });
        }
    };
    let changed = verify::baseline::changes(baseline, &after);
    let run_id = session.run_id().to_owned();
    ledger::insert_row_counts(&mut session.db, &run_id, &changed)?;
    let Some(max) = config.verify.max_row_change else {
        return Ok(());
    };
    for change in changed
        .iter()
        .filter(|c| c.percent().is_some_and(|p| p.abs() > max))
    {
        session.emit(EventKind::PreflightWarning {
            message: format!(
                "row count changed by more than max-row-change = {max}% in this run: {}",
                change.describe()
            ),
        })?;
    }
    Ok(())
}

/// The `phase = "before"` invariants: a failing one stops apply before anything is touched.
pub(super) fn check_preconditions(
    config: &Config,
    target: &Target,
    db: &mut Database,
) -> Result<()> {
    if !config
        .invariants
        .iter()
        .any(|i| i.phase == Phase::Before && i.applies_to(&target.name))
    {
        return Ok(());
    }
    let options = VerifyOptions {
        phase: Some(Phase::Before),
        ..Default::default()
    };
    let failed: Vec<String> = verify::verify(config, target, db, &options)?
        .into_iter()
        .filter(|r| r.fails())
        .map(|r| format!("{}: {}", r.name, r.details.join("; ")))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "precondition(s) failed, nothing was touched:\n  {}",
        failed.join("\n  ")
    )))
}

/// `[apply] verify = true`: dbverify's checks and the `after` invariants, inside the run,
/// row counts and checksums against the baseline. Each failing check is recorded as
/// `verify.failed`; the failure goes to the policy.
pub(super) fn verify_after(
    session: &mut Session<'_>,
    baseline: Option<&Baseline>,
) -> Result<Option<Failure>> {
    let options = VerifyOptions {
        baseline: baseline.cloned(),
        ..Default::default()
    };
    let results = verify::verify(session.config, session.target, &mut session.db, &options)?;
    let failed: Vec<&verify::CheckResult> = results.iter().filter(|r| r.fails()).collect();
    if failed.is_empty() {
        return Ok(None);
    }
    for result in &failed {
        session.emit(EventKind::VerifyFailed {
            version: String::new(),
            message: format!(
                "{}: {} {}",
                result.name,
                result.observed,
                result.details.join("; ")
            ),
        })?;
    }
    let names: Vec<&str> = failed.iter().map(|r| r.name.as_str()).collect();
    Ok(Some(Failure::of_run(format!(
        "verification after the migrations failed: {}",
        names.join(", ")
    ))))
}
