//! `cargo dbsafe check --roundtrip`: on a shadow database, each migration is applied, its
//! schema fingerprinted, reverted, compared with the schema before it, and applied again.
//! One pass reports every problem: the walk goes on wherever the schema is still known (a
//! migration without a usable down.sql stays applied; after a down.sql that failed or left
//! another schema, a clean shadow is rebuilt up to that migration), and stops only where
//! an up.sql fails, since what follows is built on it.

use std::path::PathBuf;

use serde::Serialize;

use crate::check::Level;
use crate::config::{Config, Severity};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::inspect::{self, SchemaFingerprint};
use crate::ledger;
use crate::migrations::{Migration, MigrationSet};
use crate::run::Direction;
use crate::run_id::new_id;
use crate::snapshot::Scratch;
use crate::target::{DatabaseUrl, Target};

/// The rule of every round-trip problem but the column order.
pub const RULE: &str = "roundtrip";
/// The rule of a down.sql that restores every column, in another order.
pub const COLUMN_ORDER_RULE: &str = "roundtrip-column-order";

/// One problem the round trip found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// [`RULE`] or [`COLUMN_ORDER_RULE`].
    pub rule: &'static str,
    /// Error, or warning (a column-order difference, unless configured as an error).
    pub severity: Level,
    /// The file concerned (a migration's up.sql or down.sql), when there is one.
    pub file: Option<PathBuf>,
    /// What is wrong, naming the migration, with the server's message or the difference.
    pub message: String,
}

impl Problem {
    fn error(file: Option<PathBuf>, message: String) -> Problem {
        Problem {
            rule: RULE,
            severity: Level::Error,
            file,
            message,
        }
    }
}

/// What to do after one migration's round trip.
enum Next {
    /// The shadow holds the schema of the migrations so far: go on.
    Continue,
    /// The shadow's schema is not what the migrations so far give: rebuild it.
    Rebuild,
    /// An up.sql failed: nothing after it can be checked.
    Stop,
}

/// The shadow database and what the walk found.
struct Walk<'a> {
    config: &'a Config,
    url: &'a DatabaseUrl,
    scratch: Option<Scratch>,
    shadow: Database,
    problems: Vec<Problem>,
    /// The shadow's schema as last fingerprinted, while nothing changed it since.
    last: Option<SchemaFingerprint>,
}

/// Round-trips the target's pending migrations (every migration with `all`) on a shadow
/// database beside the target, and runs each seed twice. Returns every problem found, in
/// migration order; empty means every migration reverts cleanly and applies again.
pub fn roundtrip(config: &Config, target: &Target, all: bool) -> Result<Vec<Problem>> {
    let set = MigrationSet::load(&config.migrations_dir)?;
    let applied = if all {
        Vec::new()
    } else {
        applied_versions(target)?
    };
    let (scratch, shadow) = new_shadow(&target.url)?;
    let mut walk = Walk {
        config,
        url: &target.url,
        scratch: Some(scratch),
        shadow,
        problems: Vec::new(),
        last: None,
    };
    let (done, to_check): (Vec<&Migration>, Vec<&Migration>) = set
        .migrations
        .iter()
        .partition(|m| applied.contains(&m.version));
    if !walk.replay(&done, " (already applied on the target)")? {
        return Ok(walk.problems);
    }
    for (index, migration) in to_check.iter().enumerate() {
        crate::progress::phase(&format!("{}: apply, revert, apply", migration.name));
        match walk.one(migration)? {
            Next::Continue => {}
            Next::Rebuild => {
                let (scratch, shadow) = new_shadow(walk.url)?;
                walk.shadow = shadow;
                walk.scratch = Some(scratch);
                walk.last = None;
                let upto: Vec<&Migration> =
                    done.iter().chain(&to_check[..=index]).copied().collect();
                if !walk.replay(&upto, "")? {
                    return Ok(walk.problems);
                }
            }
            Next::Stop => {
                let left = to_check.len() - index - 1;
                if left > 0 {
                    walk.problems.push(Problem::error(
                        None,
                        format!(
                            "{left} later migration(s) not round-tripped: they are built on {}",
                            migration.name
                        ),
                    ));
                }
                return Ok(walk.problems);
            }
        }
    }
    crate::progress::phase("seeds, twice");
    let seeds = crate::seed::check_idempotent(config, target, &mut walk.shadow)?;
    walk.problems
        .extend(seeds.into_iter().map(|s| Problem::error(None, s)));
    drop(walk.shadow);
    drop(walk.scratch);
    Ok(walk.problems)
}

/// A new empty shadow database beside `url`, with diesel's table.
fn new_shadow(url: &DatabaseUrl) -> Result<(Scratch, Database)> {
    let scratch = Scratch::create(url, &new_id())?;
    let shadow = scratch.connect_shadow()?;
    Ok((scratch, shadow))
}

fn applied_versions(target: &Target) -> Result<Vec<String>> {
    match Database::connect(&target.url, Create::Never) {
        Ok(mut db) => ledger::diesel_applied(&mut db),
        Err(Error::NoSqliteFile { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl Walk<'_> {
    /// Runs one migration on the shadow through the step executor, unrecorded; the
    /// server's message when it fails.
    fn run(&mut self, migration: &Migration, direction: Direction) -> Result<(), String> {
        crate::step::execute(&mut self.shadow, None, migration, direction, None)
            .map_err(|e| e.message)
    }

    fn fingerprint(&mut self) -> Result<SchemaFingerprint> {
        inspect::schema_fingerprint(&mut self.shadow)
    }

    /// Applies `migrations` on the shadow without checking them; false (with the problem
    /// recorded) when one fails.
    fn replay(&mut self, migrations: &[&Migration], note: &str) -> Result<bool> {
        for migration in migrations {
            if let Err(e) = self.run(migration, Direction::Up) {
                self.problems.push(Problem::error(
                    Some(migration.up_path.clone()),
                    format!("{}{note} fails on the shadow database: {e}", migration.name),
                ));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Apply, revert, compare, apply again, recording each problem; on success, the
    /// schema it leaves is remembered as the next migration's "before".
    fn one(&mut self, migration: &Migration) -> Result<Next> {
        let before = match self.last.take() {
            Some(known) => known,
            None => self.fingerprint()?,
        };
        self.check_one(migration, before)
    }

    fn check_one(&mut self, migration: &Migration, before: SchemaFingerprint) -> Result<Next> {
        let up = Some(migration.up_path.clone());
        let down = Some(migration.down_path.clone());
        if let Err(e) = self.run(migration, Direction::Up) {
            self.problems.push(Problem::error(
                up,
                format!("up.sql of {} fails: {e}", migration.name),
            ));
            return Ok(Next::Stop);
        }
        let applied = self.fingerprint()?;
        if migration.forward_only {
            // Forward only by design (sqlx): nothing to revert; the apply, the seeds and
            // the drift after are still checked.
            self.last = Some(applied);
            return Ok(Next::Continue);
        }
        if let Some(missing) = migration.missing_down() {
            // It stays applied: the schema is the one the migrations so far give.
            self.problems.push(Problem::error(
                down,
                format!(
                    "{} has {}: it cannot be rolled back",
                    migration.name,
                    missing.describe()
                ),
            ));
            self.last = Some(applied);
            return Ok(Next::Continue);
        }
        let concurrently = migration.run_in_transaction
            && migration
                .revertible_down()
                .is_some_and(crate::check::lint::uses_concurrently);
        let reverted = self.run(migration, Direction::Down);
        if concurrently {
            let server = reverted
                .as_ref()
                .err()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            self.problems.push(Problem::error(
                down.clone(),
                format!(
                    "down.sql of {} uses CONCURRENTLY but runs inside a transaction, which \
                     PostgreSQL refuses{server}; give the migration a metadata.toml with \
                     `run_in_transaction = false`",
                    migration.name
                ),
            ));
        }
        if let Err(e) = reverted {
            if !concurrently {
                self.problems.push(Problem::error(
                    down,
                    format!("down.sql of {} fails: {e}", migration.name),
                ));
            }
            // Rolled back with its transaction, the migration is still applied; anything
            // else (MySQL's DDL commits on its own) needs a clean shadow.
            let now = self.fingerprint()?;
            if now == applied {
                self.last = Some(now);
                return Ok(Next::Continue);
            }
            return Ok(Next::Rebuild);
        }
        let reverted = self.fingerprint()?;
        let (order, others) = split_differences(inspect::diff_schema(&before, &reverted));
        if !order.is_empty() {
            self.problems.push(Problem {
                rule: COLUMN_ORDER_RULE,
                severity: match self.config.check.roundtrip_column_order {
                    Severity::Warning => Level::Warning,
                    Severity::Error => Level::Error,
                },
                file: down.clone(),
                message: format!(
                    "down.sql of {} restores every column but not their order: {}",
                    migration.name,
                    order.join("; ")
                ),
            });
        }
        if !others.is_empty() {
            self.problems.push(Problem::error(
                down,
                format!(
                    "down.sql of {} does not restore the schema before it: {}",
                    migration.name,
                    others.join("; ")
                ),
            ));
            return Ok(Next::Rebuild);
        }
        if let Err(e) = self.run(migration, Direction::Up) {
            self.problems.push(Problem::error(
                up,
                format!(
                    "up.sql of {} fails when applied again after its down.sql: {e}",
                    migration.name
                ),
            ));
            return Ok(Next::Rebuild);
        }
        let again = self.fingerprint()?;
        let (_, others) = split_differences(inspect::diff_schema(&applied, &again));
        if !others.is_empty() {
            self.problems.push(Problem::error(
                up,
                format!(
                    "{} applied again after its down.sql gives another schema: {}",
                    migration.name,
                    others.join("; ")
                ),
            ));
            return Ok(Next::Rebuild);
        }
        self.last = Some(again);
        Ok(Next::Continue)
    }
}

/// Schema differences split into column-order ones and the rest.
fn split_differences(differences: Vec<String>) -> (Vec<String>, Vec<String>) {
    differences
        .into_iter()
        .partition(|d| inspect::is_column_order(d))
}
