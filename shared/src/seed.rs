//! Seeds (`[[seed]]`): SQL run at the end of every successful apply, each in its own
//! transaction where the backend allows; and the round-trip check that running a seed
//! twice neither fails nor changes data (the runbook's "re-running the seed violates a
//! unique index").

use std::time::Instant;

use diesel::Connection;
use diesel::connection::SimpleConnection;

use crate::config::{ApplyConfig, Config, Seed};
use crate::connection::Database;
use crate::error::Result;
use crate::inspect;
use crate::step;
use crate::target::{Backend, Target};

fn seeds<'c>(config: &'c Config, target: &Target) -> impl Iterator<Item = &'c Seed> {
    config
        .seeds
        .iter()
        .filter(move |s| s.applies_to(&target.name))
}

/// Runs one seed with the target's `lock-timeout` and `statement-timeout`, as a migration
/// runs: in a transaction with the timeouts set for it only, except on MySQL, where DDL
/// would commit it anyway and the timeouts are the session's.
pub fn run_one(
    db: &mut Database,
    seed: &Seed,
    apply: &ApplyConfig,
) -> std::result::Result<u64, String> {
    let started = Instant::now();
    let backend = db.backend();
    let result = if backend == Backend::Mysql {
        step::set_timeouts(&mut db.conn, backend, apply, false).and_then(|()| db.execute(&seed.sql))
    } else {
        let prelude = step::timeouts_sql(backend, apply, true);
        db.conn.transaction(|conn| {
            conn.batch_execute(&prelude)?;
            conn.batch_execute(&seed.sql)
        })
    };
    step::reset_timeouts(&mut db.conn, backend);
    result.map_err(|e| {
        let message = e.to_string();
        format!(
            "seed {} failed: {message}{}",
            seed.name,
            timeout_hint(&message, apply)
        )
    })?;
    Ok(started.elapsed().as_millis() as u64)
}

/// What a timeout in a server message means for the operator.
fn timeout_hint(message: &str, apply: &ApplyConfig) -> String {
    if step::is_lock_timeout(message) {
        format!(
            " (it waited longer than lock-timeout = {}ms for a lock another session holds: let that session finish, or raise [apply] lock-timeout)",
            apply.lock_timeout.as_millis()
        )
    } else if let Some(limit) = apply.statement_timeout.filter(|_| {
        let m = message.to_ascii_lowercase();
        m.contains("statement timeout") || m.contains("max_statement_time")
    }) {
        format!(
            " (it ran longer than statement-timeout = {}ms: make it faster, or raise [apply] statement-timeout)",
            limit.as_millis()
        )
    } else {
        String::new()
    }
}

/// The seeds of `target`, in order, for apply to run.
pub fn for_target<'c>(config: &'c Config, target: &Target) -> Vec<&'c Seed> {
    seeds(config, target).collect()
}

/// Runs every seed twice on the shadow database: a second run that fails or changes any
/// table's data fingerprint is a problem.
pub fn check_idempotent(
    config: &Config,
    target: &Target,
    shadow: &mut Database,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for seed in seeds(config, target) {
        if let Err(e) = run_one(shadow, seed, &config.apply) {
            problems.push(format!("{e} (first run, on the shadow database)"));
            continue;
        }
        let once = inspect::data_fingerprints(shadow)?;
        if let Err(e) = run_one(shadow, seed, &config.apply) {
            problems.push(format!("{e} when run a second time: seeds run after every apply, so they must be safe to repeat (INSERT ... ON CONFLICT DO NOTHING, INSERT IGNORE, WHERE NOT EXISTS)"));
            continue;
        }
        let twice = inspect::data_fingerprints(shadow)?;
        let changes = inspect::diff_data(&once, &twice);
        if !changes.is_empty() {
            problems.push(format!(
                "seed {} changes data when run a second time ({}): seeds run after every apply, so they must be safe to repeat",
                seed.name,
                changes.join("; ")
            ));
        }
    }
    Ok(problems)
}
