//! Drift: the live schema against a shadow database built from the migrations the target
//! says are applied, and which migration version the live schema really matches.

use super::Finding;
use crate::config::Config;
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::inspect::{self, SchemaFingerprint};
use crate::ledger;
use crate::migrations::{Migration, MigrationSet};
use crate::run::Direction;
use crate::run_id::new_id;
use crate::snapshot::Scratch;
use crate::target::Target;

/// Whether a fingerprint line is one the configuration says to ignore: `KIND NAME` or a
/// bare `NAME` (MariaDB and table-scoped objects are `table.name`, which `KIND name` and
/// `name` match too, so one ignore list works on every backend).
fn ignored(line: &str, ignore: &[String]) -> bool {
    let object = line.split(": ").next().unwrap_or(line);
    let (kind, name) = object.split_once(' ').unwrap_or(("", object));
    let short = name.rsplit_once('.').map(|(_, short)| short);
    ignore.iter().any(|i| {
        i == object
            || i == name
            || short.is_some_and(|short| short == i || i.split_once(' ') == Some((kind, short)))
    })
}

fn filtered(fingerprint: SchemaFingerprint, ignore: &[String]) -> SchemaFingerprint {
    if ignore.is_empty() {
        return fingerprint;
    }
    SchemaFingerprint::from_lines(
        fingerprint
            .lines
            .into_iter()
            .filter(|l| !ignored(l, ignore))
            .collect(),
    )
}

/// How far apart two schemas are: the number of fingerprint lines (objects) in one and not
/// the other, so a missing table counts with its columns and indexes.
fn distance(a: &SchemaFingerprint, b: &SchemaFingerprint) -> usize {
    let a_lines: std::collections::BTreeSet<&String> = a.lines.iter().collect();
    let b_lines: std::collections::BTreeSet<&String> = b.lines.iter().collect();
    a_lines.symmetric_difference(&b_lines).count()
}

/// Builds a shadow from the applied migrations and diffs it with the live schema. The
/// shadow is dropped afterwards, also on failure.
pub(super) fn check(config: &Config, target: &Target, db: &mut Database) -> Result<Finding> {
    let ignore = &config.verify.ignore;
    let set = MigrationSet::load(&config.migrations_dir)?;
    let applied = ledger::diesel_applied(db)?;
    let mut details = Vec::new();
    let migrations: Vec<&Migration> = applied
        .iter()
        .filter_map(|version| {
            let found = set.get(version);
            if found.is_none() {
                details.push(format!("applied version {version} has no migration on disk: the shadow cannot include it"));
            }
            found
        })
        .collect();
    let live = filtered(inspect::schema_fingerprint(db)?, ignore);

    let scratch = Scratch::create(&target.url, &new_id())?;
    let shadow = build(&scratch, &migrations, None)?;
    let shadow = filtered(shadow, ignore);
    let differences = inspect::diff_schema(&shadow, &live);
    drop(scratch);
    if differences.is_empty() && details.is_empty() {
        return Ok(Finding::new(
            true,
            format!(
                "schema matches the {} applied migration(s)",
                migrations.len()
            ),
            Vec::new(),
        ));
    }
    let count = differences.len();
    details.extend(differences);

    // Which version does the live schema match best? Walk the migrations on a new shadow.
    let walk = Scratch::create(&target.url, &new_id())?;
    let empty = filtered(
        inspect::schema_fingerprint(&mut Database::connect(walk.url(), Create::IfMissing)?)?,
        ignore,
    );
    let mut best = (
        distance(&empty, &live),
        "none (the empty schema)".to_owned(),
    );
    let all: Vec<&Migration> = set.migrations.iter().collect();
    let mut closest = |migration: &Migration, fingerprint: &SchemaFingerprint| {
        let apart = distance(&filtered(fingerprint.clone(), ignore), &live);
        if apart <= best.0 {
            best = (apart, migration.version.clone());
        }
    };
    build(&walk, &all, Some(&mut closest))?;
    drop(walk);
    let claimed = applied.last().cloned().unwrap_or_else(|| "none".into());
    let verdict = if best.0 == 0 {
        format!(
            "the live schema is exactly the schema after version {}, though the migrations table says {claimed} is applied",
            best.1
        )
    } else {
        format!(
            "the live schema matches version {} best ({} object(s) differ); the migrations table says {claimed}",
            best.1, best.0
        )
    };
    details.push(verdict);
    Ok(Finding::new(
        false,
        format!("{count} difference(s) from the applied migrations"),
        details,
    ))
}

/// Called with each migration and the schema it leaves behind.
type AfterEach<'f> = dyn FnMut(&Migration, &SchemaFingerprint) + 'f;

/// Applies `migrations` in order to the scratch database through the step executor (as
/// `diesel migration run` would: each in its transaction with its history row), calling `after_each` (for the walk) with each migration's
/// resulting fingerprint. Returns the final schema fingerprint.
fn build(
    scratch: &Scratch,
    migrations: &[&Migration],
    mut after_each: Option<&mut AfterEach<'_>>,
) -> Result<SchemaFingerprint> {
    let mut shadow = scratch.connect_shadow()?;
    for migration in migrations {
        crate::step::execute(&mut shadow, None, migration, Direction::Up, None).map_err(|e| {
            Error::Failed(format!(
                "migration {} fails on the shadow database: {}",
                migration.name, e.message
            ))
        })?;
        if let Some(after_each) = after_each.as_mut() {
            after_each(migration, &inspect::schema_fingerprint(&mut shadow)?);
        }
    }
    inspect::schema_fingerprint(&mut shadow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_matches_kind_and_name_or_name() {
        let ignore = vec!["index users_extra_idx".to_owned(), "audit".to_owned()];
        assert!(ignored(
            "index users_extra_idx: on users USING btree (x)",
            &ignore
        ));
        assert!(ignored("table audit", &ignore));
        assert!(ignored("index posts.audit: on posts", &ignore));
        // MariaDB's table-scoped index names match `KIND name` too, not another kind.
        assert!(ignored(
            "index users.users_extra_idx: on users (x)",
            &ignore
        ));
        assert!(!ignored(
            "constraint users.users_extra_idx: UNIQUE",
            &ignore
        ));
        assert!(!ignored("index users_email_idx: on users", &ignore));
        assert!(!ignored("table audits", &ignore));
    }
}
