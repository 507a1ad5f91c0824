//! `cargo dbsafe check --roundtrip`: on a shadow database, each migration is applied, its
//! schema fingerprinted, reverted, compared with the schema before it, and applied again;
//! a `down.sql` that fails or leaves a different schema is named with the difference.

use diesel::migration::MigrationConnection;
use diesel_migrations::MigrationHarness;

use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::inspect::{self, SchemaFingerprint};
use crate::ledger;
use crate::migrations::{Migration, MigrationSet};
use crate::run::new_run_id;
use crate::snapshot::Scratch;
use crate::target::Target;

/// Round-trips the target's pending migrations (every migration with `all`) on a shadow
/// database beside the target. Returns the problems found; empty means every migration
/// reverts cleanly and applies again.
pub fn roundtrip(config: &Config, target: &Target, all: bool) -> Result<Vec<String>> {
    let set = MigrationSet::load(&config.migrations_dir)?;
    let applied = if all {
        Vec::new()
    } else {
        applied_versions(target)?
    };
    let scratch = Scratch::create(&target.url, &new_run_id())?;
    let mut shadow = Database::connect(scratch.url(), Create::IfMissing)?;
    shadow
        .conn
        .setup()
        .map_err(|e| Error::db("creating diesel's table on the shadow database", e))?;
    let mut problems = Vec::new();
    for migration in set
        .migrations
        .iter()
        .filter(|m| applied.contains(&m.version))
    {
        if let Err(e) = shadow.conn.run_migration(migration) {
            problems.push(format!(
                "{} (already applied on the target) fails on the shadow database: {e}",
                migration.name
            ));
            return Ok(problems);
        }
    }
    for migration in set
        .migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
    {
        crate::progress::phase(&format!("{}: apply, revert, apply", migration.name));
        if let Err(problem) = roundtrip_one(&mut shadow, migration) {
            problems.push(problem);
            // What follows would be built on a broken schema.
            break;
        }
    }
    crate::progress::phase("seeds, twice");
    problems.extend(crate::seed::check_idempotent(config, target, &mut shadow)?);
    drop(shadow);
    drop(scratch);
    Ok(problems)
}

fn applied_versions(target: &Target) -> Result<Vec<String>> {
    match Database::connect(&target.url, Create::Never) {
        Ok(mut db) => ledger::diesel_applied(&mut db),
        Err(Error::NoSqliteFile { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn fingerprint(shadow: &mut Database) -> std::result::Result<SchemaFingerprint, String> {
    inspect::schema_fingerprint(shadow).map_err(|e| e.to_string())
}

/// Apply, revert, compare, apply again. The error is the problem, in words.
fn roundtrip_one(shadow: &mut Database, migration: &Migration) -> std::result::Result<(), String> {
    let before = fingerprint(shadow)?;
    shadow
        .conn
        .run_migration(migration)
        .map_err(|e| format!("up.sql of {} fails: {e}", migration.name))?;
    let applied = fingerprint(shadow)?;
    if migration.down_sql.is_none() {
        return Err(format!(
            "{} has no down.sql: it cannot be rolled back",
            migration.name
        ));
    }
    shadow
        .conn
        .revert_migration(migration)
        .map_err(|e| format!("down.sql of {} fails: {e}", migration.name))?;
    let reverted = fingerprint(shadow)?;
    let differences = inspect::diff_schema(&before, &reverted);
    if !differences.is_empty() {
        return Err(format!(
            "down.sql of {} does not restore the schema before it: {}",
            migration.name,
            differences.join("; ")
        ));
    }
    shadow.conn.run_migration(migration).map_err(|e| {
        format!(
            "up.sql of {} fails when applied again after its down.sql: {e}",
            migration.name
        )
    })?;
    let again = fingerprint(shadow)?;
    let differences = inspect::diff_schema(&applied, &again);
    if !differences.is_empty() {
        return Err(format!(
            "{} applied again after its down.sql gives another schema: {}",
            migration.name,
            differences.join("; ")
        ));
    }
    Ok(())
}
