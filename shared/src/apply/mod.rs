//! `cargo dbsafe apply`: a run session whose body is the pending migrations (each one step
//! through the step executor), the seeds and the after-run checks, with the failure policy
//! (stop / revert / restore) when something fails.

mod checks;
mod failure;

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::config::{Config, FailurePolicy, SnapshotPolicy, SnapshotStrategy};
use crate::connection::Create;
use crate::error::{Error, Result};
use crate::event::{EventKind, EventSink};
use crate::ledger;
use crate::migrations::{Migration, MigrationSet, is_diesel_setup};
use crate::preflight::{self, Confirmation};
use crate::run::{Direction, RunKind};
use crate::run_id::RunId;
use crate::session::{Opening, Session};
use crate::snapshot;
use crate::step::{self, Recording, is_transactional};
use crate::target::Target;
use crate::verify::{self, baseline::Baseline};

pub use crate::step::LockLog;
use failure::Failure;

/// What the operator asked of this apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// How the target was chosen and confirmed.
    pub confirmation: Confirmation,
    /// Stop after this version (`--target-version`).
    pub target_version: Option<String>,
    /// Accept a changed database identity and re-bind the target (`--rebind`).
    pub rebind: bool,
    /// The rehearsal's: collects, per migration version, the locks its transaction held
    /// before commit (PostgreSQL).
    pub lock_log: Option<LockLog>,
    /// The fleet run this apply is a member's share of (`--fleet`).
    pub fleet_run: Option<RunId>,
    /// Return before writing anything (no run is recorded) when every migration up to the
    /// target version is applied and nothing is dirty: a fleet's member already done.
    pub skip_when_up_to_date: bool,
}

/// The result of a successful apply (no run id: a member already up to date was left
/// alone, see [`ApplyOptions::skip_when_up_to_date`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The run's id.
    pub run_id: Option<RunId>,
    /// Versions applied, in order (empty for a no-op run).
    pub applied: Vec<String>,
}

/// Applies the pending migrations of `config` to `target` as one recorded run.
pub fn apply(
    config: &Config,
    target: &Target,
    options: &ApplyOptions,
    sink: &mut dyn EventSink,
) -> Result<ApplyOutcome> {
    // git runs, and the connection to a server opens, while the migrations load.
    crate::run::RunContext::prefetch(&config.root);
    let (set, early) = crate::session::connect_early(config, target, || {
        MigrationSet::load(&config.migrations_dir)
    })?;
    apply_loaded(config, target, &set?, early, options, sink)
}

/// [`apply`] with the migrations already loaded (a fleet loads them once for all members).
pub fn apply_set(
    config: &Config,
    target: &Target,
    set: &MigrationSet,
    options: &ApplyOptions,
    sink: &mut dyn EventSink,
) -> Result<ApplyOutcome> {
    crate::run::RunContext::prefetch(&config.root);
    apply_loaded(config, target, set, None, options, sink)
}

fn apply_loaded(
    config: &Config,
    target: &Target,
    set: &MigrationSet,
    early: Option<Result<crate::connection::Database>>,
    options: &ApplyOptions,
    sink: &mut dyn EventSink,
) -> Result<ApplyOutcome> {
    preflight::guard_protected(target, options.confirmation)?;
    verify::validate_invariants(config, target)?;
    // `--target-version` as digits, as in the directory name (`2024-10-24-134209`) or the
    // whole name: from here on, the version's digits.
    let target_version = match &options.target_version {
        Some(version) => match set.get(version) {
            Some(migration) => Some(migration.version.clone()),
            None => {
                return Err(Error::Usage(format!(
                    "--target-version {version}: no migration with that version in {}",
                    set.dir.display()
                )));
            }
        },
        None => None,
    };
    // An early connection is opened only when the journal shows no interrupted restore
    // (see `connect_early`): then there is nothing to finish, and no need to read it again.
    if early.is_none() {
        crate::restore::report_finished(config, target, sink)?;
    }
    let opening = Opening {
        kind: RunKind::Apply,
        confirmation: options.confirmation,
        rebind: options.rebind,
        fleet_run: options.fleet_run.as_ref(),
        create: Create::IfMissing,
        wait_for_lock: true,
    };
    let mut session = Session::open_with(config, target, opening, early, sink)?;
    preflight::server_activity(&mut session.db, &config.apply)?;
    let asked = Asked {
        options,
        target_version: target_version.as_deref(),
    };
    run(&mut session, set, &asked)
}

/// What this apply was asked, resolved.
struct Asked<'a> {
    options: &'a ApplyOptions,
    /// The last version to apply (the version's digits).
    target_version: Option<&'a str>,
}

/// The body of an apply inside its session.
fn run(session: &mut Session<'_>, set: &MigrationSet, asked: &Asked<'_>) -> Result<ApplyOutcome> {
    let (config, target) = (session.config, session.target);
    // Everything read-only first: a refused apply writes nothing.
    let db = &mut session.db;
    let applied = ledger::diesel_applied(db)?;
    let findings = preflight::ledger_findings(db, set, &applied)?;
    findings.refuse_unsafe()?;
    crate::layout::refuse_unrecorded(db, set)?;
    checks::check_preconditions(config, target, db)?;

    // The first dbsafe apply on a database `diesel migration run` stamped adopts what it found.
    let adopted: Vec<String> = if ledger::exists(db)? {
        Vec::new()
    } else {
        applied.clone()
    };
    let applied: BTreeSet<String> = applied.into_iter().collect();
    let newest_applied = applied
        .iter()
        .max_by(|a, b| crate::migrations::version_cmp(a, b))
        .cloned();
    let pending: Vec<&Migration> = set
        .migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .filter(|m| {
            asked
                .target_version
                .is_none_or(|v| crate::migrations::version_cmp(&m.version, v).is_le())
        })
        .collect();

    if asked.options.skip_when_up_to_date && pending.is_empty() {
        return Ok(ApplyOutcome::default());
    }
    let interrupted = session.prepare_ledger()?;

    let run_id = session.run_id().to_owned();
    let snapshot = if wants_snapshot(config, target) && !pending.is_empty() {
        let strategy = snapshot::resolve_strategy(config.snapshot.strategy, session.db.backend())?;
        if strategy == SnapshotStrategy::Template {
            return Err(Error::Usage(
                "[snapshot] strategy = \"template\" cannot run inside apply: cloning needs no other session on the database, and apply holds its lock in one. Use \"pg-dump\" (or take `cargo dbsafe snapshot create --strategy template` before applying)".into(),
            ));
        }
        let manifest = snapshot::create(config, target, &mut session.db, strategy, Some(&run_id))?;
        let bytes = manifest.files.iter().map(|f| f.size).sum();
        session.emit(EventKind::SnapshotCreated {
            snapshot_id: manifest.id.clone(),
            strategy: manifest.strategy.clone(),
            bytes,
            duration_ms: manifest.duration_ms,
        })?;
        Some(manifest)
    } else {
        None
    };
    let changes_data = !pending.is_empty() || !crate::seed::for_target(config, target).is_empty();
    let (baseline, uncounted) = checks::capture_baseline(
        config,
        &mut session.db,
        snapshot.as_ref(),
        &run_id,
        changes_data,
    )?;
    let versions = pending.iter().map(|m| m.version.clone()).collect();
    session.start(None, snapshot.as_ref().map(|m| m.id.clone()), versions)?;
    if session.binding.is_rebind() {
        let binding = session.binding.clone();
        session.emit(EventKind::LedgerRebind {
            target: target.name.clone(),
            previous: binding.previous,
            identity: binding.identity,
            automatic: binding.automatic,
        })?;
    }
    if !adopted.is_empty() {
        session.emit(EventKind::Adopt { versions: adopted })?;
    }
    let mut warnings: Vec<String> = uncounted.into_iter().collect();
    warnings.extend(
        interrupted
            .iter()
            .map(|id| format!("run {id} was interrupted before it finished; marked failed")),
    );
    warnings.extend(findings.missing_from_disk.iter().map(|v| {
        format!("version {v} is applied but has no directory in {}: diesel ignores it; restore it if it was deleted by mistake", set.dir.display())
    }));
    if let Some(newest) = &newest_applied {
        // diesel's setup migration sorts first by design, whenever `diesel setup` added it.
        let out_of_order = pending.iter().filter(|m| {
            crate::migrations::version_cmp(&m.version, newest).is_lt() && !is_diesel_setup(&m.name)
        });
        warnings.extend(out_of_order.map(|m| {
            format!("{} is older than the newest applied migration {newest}: it runs out of order (merged from an older branch?)", m.name)
        }));
    }
    warnings.extend(pending.iter().filter_map(|m| m.metadata_warning.clone()));
    for message in warnings {
        session.emit(EventKind::PreflightWarning { message })?;
    }

    let mut done: Vec<&Migration> = Vec::new();
    let body = Body {
        options: asked.options,
        baseline: baseline.as_ref(),
    };
    if let Some(failure) = run_body(&body, session, &pending, &mut done)? {
        let scope = failure::RunScope {
            snapshot: snapshot.as_ref(),
            total: pending.len(),
        };
        return Err(failure::fail_run(&scope, session, &done, failure));
    }
    let applied = done.iter().map(|m| m.version.clone()).collect();
    let hash = bundle_hash(&done);
    let count = done.len();
    session.succeed(Some(&hash), count)?;
    Ok(ApplyOutcome {
        run_id: Some(run_id),
        applied,
    })
}

/// What the body of a run works with.
struct Body<'a> {
    options: &'a ApplyOptions,
    /// Row counts and hashes before the first migration (none for a run that changes
    /// nothing and checks no counts).
    baseline: Option<&'a Baseline>,
}

/// The body of a run: each pending migration, then the seeds, then the row counts it
/// changed, then (with `[apply] verify`) the verification against the baseline. Returns
/// the first failure, with `done` holding what was applied. The row counts are recorded
/// after a failed migration or seed too (as they stand before the failure policy acts),
/// unless the target is dirty or the run was interrupted.
fn run_body<'m>(
    body: &Body<'_>,
    session: &mut Session<'_>,
    pending: &[&'m Migration],
    done: &mut Vec<&'m Migration>,
) -> Result<Option<Failure>> {
    let failure = run_steps(body, session, pending, done)?;
    if let Some(baseline) = body.baseline {
        match &failure {
            None => checks::record_row_counts(session, baseline)?,
            Some(f) if !f.dirty && !crate::interrupt::interrupted() => {
                let _ = checks::record_row_counts(session, baseline);
            }
            Some(_) => {}
        }
    }
    if failure.is_none() && session.config.apply.verify {
        return checks::verify_after(session, body.baseline);
    }
    Ok(failure)
}

/// Each pending migration, then the seeds; the first failure.
fn run_steps<'m>(
    body: &Body<'_>,
    session: &mut Session<'_>,
    pending: &[&'m Migration],
    done: &mut Vec<&'m Migration>,
) -> Result<Option<Failure>> {
    let (config, target) = (session.config, session.target);
    for (index, migration) in pending.iter().enumerate() {
        session
            .recorder
            .emit_deferred(EventKind::MigrationStarted {
                version: migration.version.clone(),
                name: migration.name.clone(),
                index: index + 1,
                total: pending.len(),
                transactional: is_transactional(session.db.backend(), migration),
            })?;
        let applied = |duration_ms| EventKind::MigrationApplied {
            version: migration.version.clone(),
            name: migration.name.clone(),
            up_checksum: migration.up_checksum.clone(),
            duration_ms,
        };
        let recording = Recording {
            recorder: &mut session.recorder,
            seq: (index + 1) as i32,
            done: &applied,
            lock_log: body.options.lock_log.as_ref(),
        };
        match step::execute(
            &mut session.db,
            Some(&config.apply),
            migration,
            Direction::Up,
            Some(recording),
        ) {
            Ok(()) => done.push(migration),
            Err(failure) => {
                if failure.applied {
                    done.push(migration);
                }
                return Ok(Some(Failure::of_step(migration, failure)));
            }
        }
    }
    crate::pause::point("before-seeds");
    for seed in crate::seed::for_target(config, target) {
        match crate::seed::run_one(&mut session.db, seed, &config.apply) {
            Ok(duration_ms) => session.emit(EventKind::SeedApplied {
                name: seed.name.clone(),
                duration_ms,
            })?,
            Err(message) => return Ok(Some(Failure::of_run(message))),
        }
    }
    Ok(None)
}

/// Whether apply takes a snapshot before running migrations: as `[apply] snapshot` says,
/// and always when the failure policy is `restore`, which needs one.
pub fn wants_snapshot(config: &Config, target: &Target) -> bool {
    config.apply.on_failure == FailurePolicy::Restore
        || match config.apply.snapshot {
            SnapshotPolicy::Always => true,
            SnapshotPolicy::Protected => target.protected,
            SnapshotPolicy::Never => false,
        }
}

/// SHA-256 over the ordered up.sql checksums of what a run applied.
fn bundle_hash(done: &[&Migration]) -> String {
    let mut hasher = Sha256::new();
    for migration in done {
        hasher.update(migration.up_checksum.as_bytes());
        hasher.update(b"\n");
    }
    crate::migrations::hex(&hasher.finalize())
}
