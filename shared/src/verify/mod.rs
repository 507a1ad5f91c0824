//! `cargo dbverify`: invariants on a live database. Built-in checks (drift against the
//! migrations, orphaned foreign keys, duplicate keys, row counts and checksums against a
//! snapshot, RLS, triggers, migration checksums) and the user's own SQL assertions, each
//! with a result, an observed value and details; JUnit XML for CI.

pub mod baseline;
mod builtins;
mod drift;
mod invariants;

pub(crate) use invariants::subquery;

use std::time::Instant;

use serde::Serialize;

use crate::config::{BUILTINS, Config, InvariantSeverity, Phase};
use crate::connection::Database;
use crate::error::{Error, Result};
use crate::target::Target;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not hold and its severity is `error`.
    Fail,
    /// It does not hold and its severity is `warn`.
    Warn,
    /// It could not be checked (bad SQL, unsupported backend): counts as a failure.
    Error,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check's name (`fk-orphans`, or the invariant's name).
    pub name: String,
    /// `builtin` or `invariant`.
    pub kind: &'static str,
    /// `error` or `warn`.
    pub severity: InvariantSeverity,
    /// The outcome.
    pub status: Status,
    /// What was observed, in a few words.
    pub observed: String,
    /// What exactly is wrong (one line each).
    pub details: Vec<String>,
    /// Wall time.
    pub duration_ms: u64,
}

impl CheckResult {
    /// Whether this result fails the command (an `error` check that failed or errored).
    pub fn fails(&self) -> bool {
        matches!(self.status, Status::Fail)
            || (self.status == Status::Error && self.severity == InvariantSeverity::Error)
    }
}

/// A check's verdict before timing: holds or not, observed value, details.
pub(crate) struct Finding {
    holds: bool,
    observed: String,
    details: Vec<String>,
}

impl Finding {
    pub(crate) fn new(holds: bool, observed: impl Into<String>, details: Vec<String>) -> Finding {
        Finding {
            holds,
            observed: observed.into(),
            details,
        }
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Only these checks (built-in or invariant names); empty: all that apply.
    pub only: Vec<String>,
    /// A snapshot id or run id to compare row counts and checksums with.
    pub against: Option<String>,
    /// Run the drift check.
    pub drift: bool,
    /// Which invariants run: `after` (dbverify and apply's verification) or `before`.
    pub phase: Option<Phase>,
    /// What row counts and checksums compare with when there is no `against`: apply's
    /// baseline, taken before the first migration of its run.
    pub baseline: Option<baseline::Baseline>,
}

/// The built-in checks that run for this configuration and these options.
pub fn selected_builtins(config: &Config, options: &VerifyOptions) -> Vec<&'static str> {
    let verify = &config.verify;
    let mut names: Vec<&'static str> = match &verify.builtins {
        Some(list) => BUILTINS
            .iter()
            .copied()
            .filter(|b| list.iter().any(|n| n == b))
            .collect(),
        None => vec!["fk-orphans", "migration-checksums"],
    };
    let mut add = |name: &'static str, wanted: bool| {
        if wanted && !names.contains(&name) {
            names.push(name);
        }
    };
    add("duplicates", !verify.duplicates.is_empty());
    add("rls-enabled", !verify.rls_enabled.is_empty());
    add("triggers-present", !verify.triggers_present.is_empty());
    add("drift", options.drift);
    add("row-counts", options.against.is_some());
    add("checksums", options.against.is_some());
    for name in &options.only {
        if let Some(builtin) = BUILTINS.iter().find(|b| *b == name) {
            add(builtin, true);
        }
    }
    if !options.only.is_empty() {
        names.retain(|n| options.only.iter().any(|o| o == n));
    }
    names.sort_by_key(|n| BUILTINS.iter().position(|b| b == n));
    names
}

/// Refuses, before anything runs, an invariant of `target` whose SQL is not exactly one
/// query (a second statement, SQL that closes the subquery it is wrapped in): exit 2.
pub fn validate_invariants(config: &Config, target: &Target) -> Result<()> {
    let backend = target.url.backend();
    config
        .invariants
        .iter()
        .filter(|i| i.applies_to(&target.name))
        .try_for_each(|i| invariants::query_of(i, backend).map(|_| ()))
}

/// Runs the checks on `target`. A check that cannot run is an `error` result; the others
/// still run.
pub fn verify(
    config: &Config,
    target: &Target,
    db: &mut Database,
    options: &VerifyOptions,
) -> Result<Vec<CheckResult>> {
    let known: Vec<&str> = BUILTINS
        .iter()
        .copied()
        .chain(config.invariants.iter().map(|i| i.name.as_str()))
        .collect();
    if let Some(unknown) = options.only.iter().find(|o| !known.contains(&o.as_str())) {
        return Err(Error::Usage(format!(
            "--only {unknown}: no such check; known: {}",
            known.join(", ")
        )));
    }
    validate_invariants(config, target)?;
    let mut results = Vec::new();
    let phase = options.phase.unwrap_or(Phase::After);
    if phase == Phase::After {
        let against = match (&options.against, &options.baseline) {
            (Some(id), _) => Some(baseline::Baseline::from_manifest(
                &builtins::resolve_against(config, db, id)?,
            )),
            (None, Some(baseline)) => Some(baseline.clone()),
            (None, None) => None,
        };
        for name in selected_builtins(config, options) {
            let started = Instant::now();
            let finding = match name {
                "drift" => drift::check(config, target, db),
                "fk-orphans" => builtins::fk_orphans(db),
                "duplicates" => builtins::duplicates(db, &config.verify.duplicates),
                "row-counts" => {
                    builtins::row_counts(db, against.as_ref(), config.verify.max_row_change)
                }
                "checksums" => {
                    builtins::checksums(db, against.as_ref(), &config.verify.unchanged_tables)
                }
                "rls-enabled" => builtins::rls_enabled(db, &config.verify.rls_enabled),
                "triggers-present" => {
                    builtins::triggers_present(db, &config.verify.triggers_present)
                }
                "migration-checksums" => builtins::migration_checksums(config, db),
                _ => unreachable!("BUILTINS lists every name"),
            };
            // checksums without a list of must-be-unchanged tables only warns.
            let severity = if name == "checksums" && config.verify.unchanged_tables.is_empty() {
                InvariantSeverity::Warn
            } else {
                InvariantSeverity::Error
            };
            results.push(result(
                name.to_owned(),
                "builtin",
                severity,
                finding,
                started,
            ));
        }
    }
    for invariant in config
        .invariants
        .iter()
        .filter(|i| i.phase == phase && i.applies_to(&target.name))
    {
        if !options.only.is_empty() && !options.only.contains(&invariant.name) {
            continue;
        }
        let started = Instant::now();
        let finding = invariants::check(db, invariant, &config.apply);
        results.push(result(
            invariant.name.clone(),
            "invariant",
            invariant.severity,
            finding,
            started,
        ));
    }
    Ok(results)
}

fn result(
    name: String,
    kind: &'static str,
    severity: InvariantSeverity,
    finding: Result<Finding>,
    started: Instant,
) -> CheckResult {
    let (status, observed, details) = match finding {
        Ok(f) if f.holds => (Status::Pass, f.observed, f.details),
        Ok(f) => (
            if severity == InvariantSeverity::Warn {
                Status::Warn
            } else {
                Status::Fail
            },
            f.observed,
            f.details,
        ),
        Err(e) => (
            Status::Error,
            "could not be checked".to_owned(),
            vec![e.to_string()],
        ),
    };
    CheckResult {
        name,
        kind,
        severity,
        status,
        observed,
        details,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
