//! `cargo dbsafe apply`: preflight -> lock -> each pending migration recorded as a step of
//! one run (in the migration's own transaction where the backend allows) -> run status,
//! with the failure policy (stop / revert) when a migration fails.

use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::{Duration, Instant};

use diesel::Connection;
use sha2::{Digest, Sha256};

use crate::config::{ApplyConfig, Config, FailurePolicy, Phase, SnapshotPolicy, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::identity;
use crate::journal::Journal;
use crate::layout::Harness;
use crate::ledger::{self, run_status, step_status};
use crate::lock;
use crate::migrations::{Migration, MigrationSet, is_diesel_setup};
use crate::preflight::{self, Confirmation};
use crate::recorder::Recorder;
use crate::restore::{self, RestoreRequest, restore_snapshot};
use crate::run::{RunContext, names_in_brief, now};
use crate::snapshot::{self, Manifest};
use crate::step::{
    self, StepError, is_lock_timeout, is_transactional, millis, new_step, reset_timeouts,
    run_verify, set_timeouts, timeouts_sql,
};
use crate::target::{Backend, Target};
use crate::verify::{self, VerifyOptions, baseline::Baseline};

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
    pub fleet_run: Option<String>,
}

/// Locks each migration's transaction held before commit, by version, in order.
pub type LockLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<String>)>>>;

/// The result of a successful apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The run's id.
    pub run_id: String,
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
    let set = MigrationSet::load(&config.migrations_dir)?;
    preflight::guard_protected(target, options.confirmation)?;
    verify::validate_invariants(config, target)?;
    // `--target-version` as digits, as in the directory name (`2024-10-24-134209`) or the
    // whole name: from here on, the version's digits.
    let mut options = options.clone();
    if let Some(version) = &options.target_version {
        let Some(migration) = set.get(version) else {
            return Err(Error::Usage(format!(
                "--target-version {version}: no migration with that version in {}",
                set.dir.display()
            )));
        };
        options.target_version = Some(migration.version.clone());
    }
    let options = &options;
    restore::report_finished(config, target, sink)?;
    // A refused apply leaves nothing behind: not even the empty SQLite file that opening
    // the connection created.
    let new_sqlite_file = target.url.sqlite_path().filter(|path| !path.exists());
    let mut db = Database::connect(&target.url, Create::IfMissing)?;
    let binding = identity::check(&mut db, target, &config.snapshot_dir, options.rebind)
        .inspect_err(|_| {
            if let Some(path) = new_sqlite_file
                && std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
            {
                let _ = std::fs::remove_file(path);
            }
        })?;
    preflight::server_activity(&mut db, &config.apply)?;

    let journal = Journal::new(&config.snapshot_dir);
    let mut recorder = Recorder::new(
        RunContext::new(&config.root).in_fleet(options.fleet_run.as_deref()),
        &target.name,
        journal,
        sink,
    );
    let run_id = recorder.context.id.clone();
    // Waiting is shown as it begins; it is recorded (journal, ledger) only once the lock is
    // taken and the run exists.
    let mut waiting = Vec::new();
    let lock = lock::acquire(&mut db, &run_id, config.apply.lock_wait, &mut |holder| {
        let event = recorder.event(EventKind::LockWaiting { holder });
        recorder.show(&event);
        waiting.push(event);
    })?;
    crate::pause::point("after-lock");
    for event in waiting {
        recorder.record_shown(event)?;
    }
    let result = apply_locked(
        config,
        target,
        options,
        &set,
        &binding,
        &mut db,
        &mut recorder,
    );
    lock.release(&mut db);
    result
}

fn apply_locked(
    config: &Config,
    target: &Target,
    options: &ApplyOptions,
    set: &MigrationSet,
    binding: &identity::Binding,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
) -> Result<ApplyOutcome> {
    // Everything read-only first: a refused apply writes nothing.
    let applied = ledger::diesel_applied(db)?;
    let findings = preflight::ledger_findings(db, set, &applied)?;
    findings.refuse_unsafe()?;
    crate::layout::refuse_unrecorded(db, set)?;
    check_preconditions(config, target, db)?;

    // The first dbsafe apply on a database `diesel migration run` stamped adopts what it found.
    let adopted: Vec<String> = if ledger::exists(db)? {
        Vec::new()
    } else {
        applied.clone()
    };
    ledger::ensure(db)?;
    crate::layout::ensure_history(&mut db.conn)
        .map_err(|e| Error::db("creating the migrations history table", e))?;
    identity::record(db, target, &config.snapshot_dir, binding)?;
    if db.backend() == Backend::Mysql {
        lock::announce_mysql_holder(db, &recorder.context.id)?;
    }
    let interrupted = ledger::running_runs(db)?;

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
            options
                .target_version
                .as_ref()
                .is_none_or(|v| crate::migrations::version_cmp(&m.version, v).is_le())
        })
        .collect();

    let context = recorder.context.clone();
    let started = Instant::now();
    let snapshot = if wants_snapshot(config, target) && !pending.is_empty() {
        let strategy = snapshot::resolve_strategy(config.snapshot.strategy, db.backend())?;
        if strategy == SnapshotStrategy::Template {
            return Err(Error::Usage(
                "[snapshot] strategy = \"template\" cannot run inside apply: cloning needs no other session on the database, and apply holds its lock in one. Use \"pg-dump\" (or take `cargo dbsafe snapshot create --strategy template` before applying)".into(),
            ));
        }
        let manifest = snapshot::create(config, target, db, strategy, Some(&context.id))?;
        let bytes = manifest.files.iter().map(|f| f.size).sum();
        recorder.emit(
            db,
            EventKind::SnapshotCreated {
                snapshot_id: manifest.id.clone(),
                strategy: manifest.strategy.clone(),
                bytes,
                duration_ms: manifest.duration_ms,
            },
        )?;
        Some(manifest)
    } else {
        None
    };
    let changes_data = !pending.is_empty() || !crate::seed::for_target(config, target).is_empty();
    let (baseline, uncounted) =
        capture_baseline(config, db, snapshot.as_ref(), &context.id, changes_data)?;
    let snapshot_id = snapshot.as_ref().map(|m| m.id.clone());
    ledger::insert_run(
        &mut db.conn,
        &recorder.run_row(target, "apply", None, snapshot_id.clone()),
    )
    .map_err(|e| Error::db("writing dbsafe_runs", e))?;
    recorder.ledger_ready(db)?;
    let versions = pending.iter().map(|m| m.version.clone()).collect();
    let started_event = recorder.run_started(target, "apply", versions, snapshot_id);
    recorder.emit(db, started_event)?;
    if binding.is_rebind() {
        recorder.emit(
            db,
            EventKind::LedgerRebind {
                target: target.name.clone(),
                previous: binding.previous.clone(),
                identity: binding.identity.clone(),
                automatic: binding.automatic,
            },
        )?;
    }
    if !adopted.is_empty() {
        recorder.emit(db, EventKind::Adopt { versions: adopted })?;
    }
    let mut warnings: Vec<String> = uncounted.into_iter().collect();
    for id in ledger::mark_interrupted(db, &interrupted)? {
        warnings.push(format!(
            "run {id} was interrupted before it finished; marked failed"
        ));
    }
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
        recorder.emit(db, EventKind::PreflightWarning { message })?;
    }

    let mut done: Vec<&Migration> = Vec::new();
    let body = Body {
        config,
        target,
        options,
        baseline: baseline.as_ref(),
    };
    if let Some(failure) = run_body(&body, db, recorder, &pending, &mut done)? {
        let scope = RunScope {
            config,
            target,
            snapshot: snapshot.as_ref(),
            total: pending.len(),
        };
        return fail_run(&scope, db, recorder, &done, failure);
    }
    recorder.succeed(db, Some(&bundle_hash(&done)), done.len(), started)?;
    Ok(ApplyOutcome {
        run_id: context.id,
        applied: done.iter().map(|m| m.version.clone()).collect(),
    })
}

/// What the body of a run works with.
struct Body<'a> {
    config: &'a Config,
    target: &'a Target,
    options: &'a ApplyOptions,
    /// Row counts and hashes before the first migration (none for a run that changes
    /// nothing and checks no counts).
    baseline: Option<&'a Baseline>,
}

/// Before the first migration: what the after-run checks compare with. From the pre-run
/// snapshot's manifest when there is one; else the row counts of every table (exact where
/// `row-counts` runs after the migrations, else exact up to a million estimated rows) and
/// the content hashes of the tables `checksums` covers, when it runs. None when the run
/// has nothing to run that changes data (`changes_data`) and no check needs one. Counting
/// waits for locks no longer than `lock-timeout`: when no check needs the baseline, a
/// table it could not count makes a warning (returned) rather than a refusal.
fn capture_baseline(
    config: &Config,
    db: &mut Database,
    snapshot: Option<&Manifest>,
    run_id: &str,
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
fn record_row_counts(
    config: &Config,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    baseline: &Baseline,
) -> Result<()> {
    let exact = baseline.tables.values().all(|c| !c.estimated);
    let after = match verify::baseline::bounded(db, &config.apply, |db| {
        verify::baseline::counts(db, exact)
    }) {
        Ok(after) => after,
        Err(e) => {
            let message = format!("the row counts after the run could not be read: {e}");
            return recorder.emit(db, EventKind::PreflightWarning { message });
        }
    };
    let changed = verify::baseline::changes(baseline, &after);
    ledger::insert_row_counts(db, &recorder.context.id, &changed)?;
    let Some(max) = config.verify.max_row_change else {
        return Ok(());
    };
    for change in changed
        .iter()
        .filter(|c| c.percent().is_some_and(|p| p.abs() > max))
    {
        recorder.emit(
            db,
            EventKind::PreflightWarning {
                message: format!(
                    "row count changed by more than max-row-change = {max}% in this run: {}",
                    change.describe()
                ),
            },
        )?;
    }
    Ok(())
}

/// The body of a run: each pending migration, then the seeds, then the row counts it
/// changed, then (with `[apply] verify`) the verification against the baseline. Returns
/// the first failure, with `done` holding what was applied. The row counts are recorded
/// after a failed migration or seed too (as they stand before the failure policy acts),
/// unless the target is dirty or the run was interrupted.
fn run_body<'m>(
    body: &Body<'_>,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    pending: &[&'m Migration],
    done: &mut Vec<&'m Migration>,
) -> Result<Option<Failure>> {
    let failure = run_steps(body, db, recorder, pending, done)?;
    if let Some(baseline) = body.baseline {
        match &failure {
            None => record_row_counts(body.config, db, recorder, baseline)?,
            Some(f) if !f.dirty && !crate::interrupt::interrupted() => {
                let _ = record_row_counts(body.config, db, recorder, baseline);
            }
            Some(_) => {}
        }
    }
    if failure.is_none() && body.config.apply.verify {
        return verify_after(body.config, body.target, db, recorder, body.baseline);
    }
    Ok(failure)
}

/// Each pending migration, then the seeds; the first failure.
fn run_steps<'m>(
    body: &Body<'_>,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    pending: &[&'m Migration],
    done: &mut Vec<&'m Migration>,
) -> Result<Option<Failure>> {
    let Body {
        config,
        target,
        options,
        ..
    } = *body;
    for (index, migration) in pending.iter().enumerate() {
        recorder.emit_deferred(EventKind::MigrationStarted {
            version: migration.version.clone(),
            name: migration.name.clone(),
            index: index + 1,
            total: pending.len(),
            transactional: is_transactional(db.backend(), migration),
        })?;
        let seq = (index + 1) as i32;
        match apply_one(db, recorder, &config.apply, options, migration, seq) {
            Ok(()) => done.push(migration),
            Err(failure) => {
                if failure.applied {
                    done.push(migration);
                }
                return Ok(Some(failure));
            }
        }
    }
    crate::pause::point("before-seeds");
    for seed in crate::seed::for_target(config, target) {
        match crate::seed::run_one(db, seed, &config.apply) {
            Ok(duration_ms) => recorder.emit(
                db,
                EventKind::SeedApplied {
                    name: seed.name.clone(),
                    duration_ms,
                },
            )?,
            Err(message) => return Ok(Some(Failure::of_run(message))),
        }
    }
    Ok(None)
}

/// The `phase = "before"` invariants: a failing one stops apply before anything is touched.
fn check_preconditions(config: &Config, target: &Target, db: &mut Database) -> Result<()> {
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
fn verify_after(
    config: &Config,
    target: &Target,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    baseline: Option<&Baseline>,
) -> Result<Option<Failure>> {
    let options = VerifyOptions {
        baseline: baseline.cloned(),
        ..Default::default()
    };
    let results = verify::verify(config, target, db, &options)?;
    let failed: Vec<&verify::CheckResult> = results.iter().filter(|r| r.fails()).collect();
    if failed.is_empty() {
        return Ok(None);
    }
    for result in &failed {
        recorder.emit(
            db,
            EventKind::VerifyFailed {
                version: String::new(),
                message: format!(
                    "{}: {} {}",
                    result.name,
                    result.observed,
                    result.details.join("; ")
                ),
            },
        )?;
    }
    let names: Vec<&str> = failed.iter().map(|r| r.name.as_str()).collect();
    Ok(Some(Failure::of_run(format!(
        "verification after the migrations failed: {}",
        names.join(", ")
    ))))
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

/// Why a migration did not apply.
struct Failure {
    migration: String,
    version: String,
    message: String,
    /// Part of it may have run (non-transactional): the target is dirty.
    dirty: bool,
    /// It was applied (and committed) but its verify.sql failed: the policy must revert it too.
    applied: bool,
}

impl Failure {
    /// A failure of the run rather than of one migration (a seed, the verification).
    fn of_run(message: String) -> Failure {
        Failure {
            migration: String::new(),
            version: String::new(),
            message,
            dirty: false,
            applied: false,
        }
    }
}

/// What a failed run's policy works with.
#[derive(Clone, Copy)]
struct RunScope<'a> {
    config: &'a Config,
    target: &'a Target,
    /// The snapshot taken before the run, if any.
    snapshot: Option<&'a Manifest>,
    /// The number of migrations the run set out to apply.
    total: usize,
}

/// The locks this session's transaction holds on user tables (PostgreSQL), like
/// `AccessExclusiveLock on users (52000 rows)`.
fn held_locks(conn: &mut crate::connection::AnyConnection) -> diesel::QueryResult<Vec<String>> {
    crate::connection::texts(
        conn,
        "SELECT l.mode || ' on ' || c.relname || ' (' || CAST(GREATEST(c.reltuples, 0) AS BIGINT) || ' rows)' AS v \
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE l.pid = pg_backend_pid() AND l.granted AND c.relkind IN ('r', 'p') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relname NOT IN ('__diesel_schema_migrations', '_sqlx_migrations') \
         AND c.relname NOT LIKE 'dbsafe\\_%' ORDER BY c.relname, l.mode",
    )
}

fn apply_one(
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    config: &ApplyConfig,
    options: &ApplyOptions,
    migration: &Migration,
    seq: i32,
) -> Result<(), Failure> {
    let backend = db.backend();
    let failure = |message: String, dirty| Failure {
        migration: migration.name.clone(),
        version: migration.version.clone(),
        message,
        dirty,
        applied: false,
    };
    if is_transactional(backend, migration) {
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let mut step = new_step(recorder, migration, seq, true, step_status::APPLIED);
            let result = db.conn.transaction::<Event, StepError, _>(|conn| {
                let prelude = timeouts_sql(backend, config, true);
                conn.run_migration(&migration.in_open_transaction(prelude))
                    .map_err(|e| StepError::Migration(e.to_string()))?;
                run_verify(conn, backend, migration)?;
                if let Some(log) = options
                    .lock_log
                    .as_ref()
                    .filter(|_| backend == Backend::Postgres)
                {
                    let locks =
                        held_locks(conn).map_err(|e| StepError::Migration(e.to_string()))?;
                    if let Ok(mut log) = log.lock() {
                        log.push((migration.version.clone(), locks));
                    }
                }
                step.finished_at = Some(now());
                step.duration_ms = Some(millis(started) as i64);
                step.attempts = attempt;
                Ok(recorder.write_step_in(
                    conn,
                    backend,
                    &step,
                    EventKind::MigrationApplied {
                        version: migration.version.clone(),
                        name: migration.name.clone(),
                        up_checksum: migration.up_checksum.clone(),
                        duration_ms: millis(started),
                    },
                )?)
            });
            match result {
                Ok(event) => {
                    recorder.committed();
                    let _ = recorder.publish(&event);
                    return Ok(());
                }
                Err(e)
                    if is_lock_timeout(&e.to_string()) && attempt <= config.lock_retries as i32 =>
                {
                    let _ = recorder.emit(
                        db,
                        EventKind::MigrationRetry {
                            version: migration.version.clone(),
                            attempt: attempt as u32,
                            message: e.to_string(),
                        },
                    );
                    sleep(
                        Duration::from_millis(500 * 2u64.pow(attempt as u32 - 1))
                            .min(Duration::from_secs(10)),
                    );
                    attempt += 1;
                }
                Err(e) => {
                    let message = e.to_string();
                    let _ = db.ensure_alive();
                    step.status = step_status::FAILED.into();
                    step.finished_at = Some(now());
                    step.duration_ms = Some(millis(started) as i64);
                    step.attempts = attempt;
                    step.error = Some(message.clone());
                    let _ = ledger::insert_step(&mut db.conn, &step);
                    if let StepError::Verify(m) = &e {
                        let _ = recorder.emit(
                            db,
                            EventKind::VerifyFailed {
                                version: migration.version.clone(),
                                message: m.clone(),
                            },
                        );
                    }
                    let _ = recorder.emit(
                        db,
                        EventKind::MigrationFailed {
                            version: migration.version.clone(),
                            name: migration.name.clone(),
                            error: message.clone(),
                            dirty: false,
                        },
                    );
                    return Err(failure(message, false));
                }
            }
        }
    }

    // No transaction: `started` before, `applied` after; a `started` left behind is dirty.
    let started = Instant::now();
    let mut step = new_step(recorder, migration, seq, false, step_status::STARTED);
    ledger::insert_step(&mut db.conn, &step)
        .map_err(|e| failure(format!("writing dbsafe_steps: {e}"), false))?;
    set_timeouts(&mut db.conn, backend, config, false)
        .map_err(|e| failure(format!("setting the migration's timeouts: {e}"), false))?;
    let result = db
        .conn
        .run_migration(migration)
        .map_err(|e| StepError::Migration(e.to_string()));
    // verify.sql runs with the migration's timeouts too.
    let verify = result
        .as_ref()
        .map(|_| run_verify(&mut db.conn, backend, migration));
    reset_timeouts(&mut db.conn, backend);
    step.finished_at = Some(now());
    step.duration_ms = Some(millis(started) as i64);
    match result {
        Ok(_) => {
            let verify = verify.unwrap_or(Ok(()));
            step.status = step_status::APPLIED.into();
            if let Err(e) = &verify {
                step.error = Some(e.to_string());
            }
            let applied = EventKind::MigrationApplied {
                version: migration.version.clone(),
                name: migration.name.clone(),
                up_checksum: migration.up_checksum.clone(),
                duration_ms: millis(started),
            };
            step::finish_step_recorded(db, recorder, &step, applied)
                .map_err(|e| failure(format!("writing dbsafe_steps: {e}"), false))?;
            if let Err(e) = verify {
                // Applied but not verified: it is part of the run, so the policy may revert it.
                let _ = recorder.emit(
                    db,
                    EventKind::VerifyFailed {
                        version: migration.version.clone(),
                        message: e.to_string(),
                    },
                );
                return Err(Failure {
                    applied: true,
                    ..failure(format!("{e} (the migration itself was applied)"), false)
                });
            }
            Ok(())
        }
        Err(e) => {
            let message = e.to_string();
            let _ = db.ensure_alive();
            step.error = Some(message.clone());
            let failed = EventKind::MigrationFailed {
                version: migration.version.clone(),
                name: migration.name.clone(),
                error: message.clone(),
                dirty: true,
            };
            let _ = step::finish_step_recorded(db, recorder, &step, failed);
            Err(failure(message, true))
        }
    }
}

fn fail_run(
    scope: &RunScope<'_>,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    done: &[&Migration],
    failure: Failure,
) -> Result<ApplyOutcome> {
    // Ctrl-C: the handler records the interruption; no failure policy runs.
    crate::interrupt::halt_if_interrupted();
    let RunScope {
        config,
        target,
        snapshot,
        total,
    } = *scope;
    let run_id = recorder.context.id.clone();
    let applied_names: Vec<&str> = done.iter().map(|m| m.name.as_str()).collect();
    // A failure of no single migration (post-apply verification) speaks for itself.
    let headline = if failure.version.is_empty() {
        failure.message.clone()
    } else {
        format!(
            "migration {} failed: {}",
            failure.migration, failure.message
        )
    };
    if std::mem::take(&mut db.reconnected) && db.backend() != Backend::Sqlite {
        // The session that held the target's lock is gone: take it again before undoing
        // anything, or another apply could run in between.
        if let Err(e) = lock::acquire(db, &run_id, config.apply.lock_wait, &mut |_| {}) {
            let state = format!(
                "{headline}\n  The connection was lost and the target's lock could not be taken again ({e}); nothing was undone: the {} earlier migration(s) of run {run_id} stay applied ({})",
                done.len(),
                names_in_brief(&applied_names)
            );
            return Err(Error::Attention(state));
        }
    }
    let finish = |db: &mut Database, recorder: &mut Recorder<'_>, status: &str, error: String| {
        let _ = ledger::finish_run(
            &mut db.conn,
            &run_id,
            status,
            &now(),
            Some(&bundle_hash(done)),
            Some(&error),
        );
        let _ = recorder.emit(
            db,
            EventKind::RunFailed {
                status: status.into(),
                error: error.clone(),
                // What stays applied, in full (the message names only the first and last).
                still_applied: if status == run_status::REVERTED {
                    Vec::new()
                } else {
                    applied_names.iter().map(|n| (*n).to_owned()).collect()
                },
            },
        );
        error
    };
    if config.apply.on_failure == FailurePolicy::Restore
        && let Some(manifest) = snapshot
    {
        return Err(restore_after_failure(
            config, target, manifest, db, recorder, &headline,
        ));
    }
    if failure.dirty {
        let state = format!(
            "{headline}\n  It ran without a transaction, so part of it may have been applied: the target is dirty.\n  \
             {} of {total} migrations of run {run_id} applied before it ({}).\n  \
             Inspect the database, finish or undo the migration by hand, then: cargo dbsafe resolve {} --as applied|reverted",
            done.len(),
            names_in_brief(&applied_names),
            failure.version
        );
        return Err(Error::Attention(finish(
            db,
            recorder,
            run_status::FAILED,
            state,
        )));
    }
    match config.apply.on_failure {
        FailurePolicy::Stop | FailurePolicy::Restore => {
            let state = format!(
                "{headline}\n  on-failure = stop: the {} migration(s) applied before it stay applied ({}); run {run_id} is marked failed",
                done.len(),
                names_in_brief(&applied_names)
            );
            Err(Error::Failed(finish(
                db,
                recorder,
                run_status::FAILED,
                state,
            )))
        }
        FailurePolicy::Revert => match revert(db, recorder, &config.apply, done, total + 1) {
            Ok(()) => {
                let state = format!(
                    "{headline}\n  on-failure = revert: nothing of run {run_id} remains; {} earlier migration(s) reverted{}",
                    done.len(),
                    if done.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", names_in_brief(&applied_names))
                    }
                );
                Err(Error::Failed(finish(
                    db,
                    recorder,
                    run_status::REVERTED,
                    state,
                )))
            }
            Err(revert_error) => {
                let state = format!("{headline}\n  reverting the run failed too: {revert_error}");
                Err(Error::Attention(finish(
                    db,
                    recorder,
                    run_status::FAILED,
                    state,
                )))
            }
        },
    }
}

/// The `restore` policy: rewinds the target to the snapshot taken before the run, writes
/// the run back into the ledger from the journal (marked `restored`) and proves the result
/// against the snapshot's fingerprints.
fn restore_after_failure(
    config: &Config,
    target: &Target,
    manifest: &Manifest,
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    headline: &str,
) -> Error {
    let run_id = recorder.context.id.clone();
    let message = format!(
        "{headline}\n  on-failure = restore: the database was restored to snapshot {} taken before run {run_id}",
        manifest.id
    );
    let _ = recorder.emit(
        db,
        EventKind::RunFailed {
            status: run_status::RESTORED.into(),
            error: message.clone(),
            still_applied: Vec::new(),
        },
    );
    let retry = format!(
        "cargo dbrollback {run_id} --restore --target {}",
        target.name
    );
    let outcome = match restore_snapshot(
        config,
        target,
        manifest,
        db,
        recorder,
        RestoreRequest {
            skip: &[],
            retry,
            // The run, written back from the live ledger as it stood, ends `restored`.
            write_own: &mut |copy: &mut Database| {
                ledger::finish_run(
                    &mut copy.conn,
                    &run_id,
                    run_status::RESTORED,
                    &now(),
                    None,
                    Some(&message),
                )
                .map_err(|e| Error::db("writing dbsafe_runs", e))
            },
        },
    ) {
        Ok(outcome) => outcome,
        Err(e) => {
            return Error::Attention(format!(
                "{headline}\n  restoring snapshot {} failed: {e}\n  The target was not replaced: it holds what the failed run left. The snapshot is in {}",
                manifest.id,
                config.snapshot_dir.join(&manifest.id).display()
            ));
        }
    };
    let _ = recorder.emit(
        db,
        EventKind::SnapshotRestored {
            snapshot_id: manifest.id.clone(),
            rehydrated_runs: outcome.rehydrated_runs.clone(),
            differences: outcome.differences.clone(),
            duration_ms: outcome.duration_ms,
        },
    );
    // A copy that differs from the snapshot is never swapped in (an error above).
    Error::Failed(message)
}

fn bundle_hash(done: &[&Migration]) -> String {
    let mut hasher = Sha256::new();
    for migration in done {
        hasher.update(migration.up_checksum.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reverts `done` newest first with down.sql, each recorded as a `down` step.
fn revert(
    db: &mut Database,
    recorder: &mut Recorder<'_>,
    config: &ApplyConfig,
    done: &[&Migration],
    first_seq: usize,
) -> Result<(), String> {
    let mut remaining: Vec<&str> = done.iter().map(|m| m.name.as_str()).collect();
    for (offset, migration) in done.iter().rev().enumerate() {
        let reverted = |version: String, name: String, duration_ms| EventKind::MigrationReverted {
            version,
            name,
            duration_ms,
        };
        step::revert_one(
            db,
            recorder,
            config,
            migration,
            (first_seq + offset) as i32,
            &reverted,
        )
        .map_err(|e| format!("{e}; still applied: {}", names_in_brief(&remaining)))?;
        remaining.pop();
    }
    Ok(())
}
