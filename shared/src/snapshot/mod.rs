//! Snapshots: a point-in-time copy of a target taken by the real tools (`pg_dump`,
//! `mariadb-dump`, SQLite's `VACUUM INTO`) or a template clone, with a manifest (files and
//! their SHA-256, applied migrations, schema and data fingerprints) that proves a restore.

mod backends;
mod store;
pub(crate) mod swap;
mod tool;

pub use backends::Scratch;
pub(crate) use backends::{derived_name, maintenance};
pub use store::{
    Listing, Manifest, SnapshotFile, SnapshotStore, Unusable, create_private_file, file_checksum,
};
pub use swap::{Recovered, Staging, SwapPlan, discard, recover};

use std::fs;
use std::path::Path;
use std::time::Instant;

use store::claim_new_dir;

use crate::config::{Config, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::inspect::{self, SchemaFingerprint, TableFingerprint};
use crate::journal::create_private_dir;
use crate::ledger;
use crate::run::now;
use crate::run_id::RunId;
use crate::target::{Backend, DatabaseUrl, Target};

/// The strategy `auto` resolves to for a backend, and a check that a named one fits it.
pub fn resolve_strategy(strategy: SnapshotStrategy, backend: Backend) -> Result<SnapshotStrategy> {
    let fitting = backend.dialect().snapshot_strategies();
    match strategy {
        SnapshotStrategy::Auto => Ok(fitting[0]),
        named if fitting.contains(&named) => Ok(named),
        other => Err(Error::Usage(format!(
            "snapshot strategy `{}` does not work on {backend}: use `auto`, or {}",
            other.as_str(),
            fitting
                .iter()
                .map(|s| format!("`{}`", s.as_str()))
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
    }
}

/// Takes a snapshot of the database `db` is connected to. `db` stays usable.
pub fn create(
    config: &Config,
    target: &Target,
    db: &mut Database,
    strategy: SnapshotStrategy,
    run_id: Option<&RunId>,
) -> Result<Manifest> {
    let strategy = resolve_strategy(strategy, db.backend())?;
    let store = SnapshotStore::new(config);
    create_private_dir(&config.snapshot_dir)?;
    let (id, dir) = claim_new_dir(&store)?;
    let started = Instant::now();
    let result = (|| -> Result<Manifest> {
        let Contents {
            applied_migrations,
            schema,
            tables,
            server_version,
            files: names,
            template_database,
            client_tools,
        } = take(
            db,
            &dir,
            strategy,
            &id,
            config.snapshot.pg_bin_dir.as_deref(),
        )?;
        let mut files = Vec::new();
        for name in names {
            let (size, sha256) = file_checksum(&dir.join(&name))?;
            files.push(SnapshotFile { name, size, sha256 });
        }
        Ok(Manifest {
            id: id.clone(),
            target: target.name.clone(),
            run_id: run_id.cloned(),
            created_at: now(),
            strategy: strategy.as_str().to_owned(),
            backend: db.backend(),
            files,
            template_database,
            server_version,
            applied_migrations,
            schema,
            tables,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            client_tools,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    })();
    match result {
        Ok(manifest) => {
            store.write_manifest(&manifest)?;
            Ok(manifest)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// What a snapshot records of its database, read at the moment its copy shows.
struct Contents {
    applied_migrations: Vec<String>,
    schema: SchemaFingerprint,
    tables: Vec<TableFingerprint>,
    server_version: String,
    /// The files written into the snapshot's directory.
    files: Vec<String>,
    /// For `template`: the database holding the copy.
    template_database: Option<String>,
    /// The client tool that wrote the files, when it matters (pg_dump).
    client_tools: Option<String>,
}

/// Connections that compute data fingerprints at once while a snapshot is taken: the
/// machine's parallelism, 2 to 8 (as pg_restore's jobs).
fn fingerprint_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(Error::Failed(format!("{what} panicked"))))
}

/// Copies the database into `dir` (or a template database) and reads what the manifest
/// records about it.
fn take(
    db: &mut Database,
    dir: &Path,
    strategy: SnapshotStrategy,
    id: &str,
    pg_bin_dir: Option<&Path>,
) -> Result<Contents> {
    match strategy {
        SnapshotStrategy::PgDump => take_pg_dump(db, dir, pg_bin_dir),
        SnapshotStrategy::Template => take_template(db, dir, id),
        _ => {
            let applied_migrations = ledger::diesel_applied(db)?;
            let schema = inspect::schema_fingerprint(db)?;
            let tables = inspect::data_fingerprints(db)?;
            let server_version = backends::server_version(db)?;
            let (files, template_database) = backends::dump(db, dir, strategy, id)?;
            Ok(Contents {
                applied_migrations,
                schema,
                tables,
                server_version,
                files,
                template_database,
                client_tools: None,
            })
        }
    }
}

/// pg_dump and every fingerprint read one exported snapshot, so the manifest describes
/// exactly what the dump holds whatever commits meanwhile; the data fingerprints run on
/// connections of their own while pg_dump runs, the schema fingerprint on the snapshot's.
fn take_pg_dump(db: &mut Database, dir: &Path, pg_bin_dir: Option<&Path>) -> Result<Contents> {
    let tools = backends::pg_tools(db, pg_bin_dir)?;
    let url = db.url().clone();
    let mut shared = inspect::SharedSnapshot::begin(&url)?;
    let job = shared.data_job()?;
    let snapshot = shared.id().to_owned();
    let (dumped, tables, read) = std::thread::scope(|scope| {
        let dump = scope.spawn(|| backends::pg_dump(&tools, &url, dir, Some(&snapshot)));
        let data = scope.spawn(move || job.run(fingerprint_jobs()));
        let reader = shared.database();
        let read = (|| -> Result<_> {
            Ok((
                ledger::diesel_applied(reader)?,
                inspect::schema_fingerprint(reader)?,
                backends::server_version(reader)?,
            ))
        })();
        (
            joined(dump, "pg_dump"),
            joined(data, "computing the data fingerprints"),
            read,
        )
    });
    // Every reader has imported the snapshot by now: it can end.
    shared.end()?;
    let file = dumped?;
    let tables = tables?;
    let (applied_migrations, schema, server_version) = read?;
    Ok(Contents {
        applied_migrations,
        schema,
        tables,
        server_version,
        files: vec![file],
        template_database: None,
        client_tools: Some(tools.describe()),
    })
}

/// Clones the database, then fingerprints the clone (tables in parallel): the manifest
/// describes the copy itself, which nothing else writes to, and the source is only held for
/// the clone.
fn take_template(db: &mut Database, dir: &Path, id: &str) -> Result<Contents> {
    let (files, template_database) = backends::dump(db, dir, SnapshotStrategy::Template, id)?;
    let copy = template_database
        .clone()
        .ok_or_else(|| Error::Failed("the template clone made no database".into()))?;
    let copy_url = db.url().with_database(&copy);
    let read = (|| -> Result<_> {
        let mut reader = Database::connect(&copy_url, Create::Never)?;
        let applied_migrations = ledger::diesel_applied(&mut reader)?;
        let schema = inspect::schema_fingerprint(&mut reader)?;
        let server_version = backends::server_version(&mut reader)?;
        // Close it now: a session on the copy would block restoring from it.
        drop(reader);
        let tables = inspect::data_fingerprints_parallel(&copy_url, fingerprint_jobs())?;
        Ok((applied_migrations, schema, tables, server_version))
    })();
    match read {
        Ok((applied_migrations, schema, tables, server_version)) => Ok(Contents {
            applied_migrations,
            schema,
            tables,
            server_version,
            files,
            template_database,
            client_tools: None,
        }),
        Err(e) => {
            let _ = db.dialect().drop_database(db.url(), &copy);
            Err(e)
        }
    }
}

/// A problem found by verifying a snapshot.
pub type Problems = Vec<String>;

/// Checks every file against the manifest's size and SHA-256.
pub fn verify_files(config: &Config, manifest: &Manifest) -> Problems {
    let dir = match SnapshotStore::new(config).path(&manifest.id) {
        Ok(dir) => dir,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    for file in &manifest.files {
        let path = dir.join(&file.name);
        match file_checksum(&path) {
            Err(_) => problems.push(format!("{} is missing or unreadable", path.display())),
            Ok((size, _)) if size != file.size => problems.push(format!(
                "{} has {size} bytes, the manifest says {} (truncated or replaced)",
                path.display(),
                file.size
            )),
            Ok((_, sha)) if sha != file.sha256 => problems.push(format!(
                "{} does not match its SHA-256 in the manifest (corrupted or modified)",
                path.display()
            )),
            Ok(_) => {}
        }
    }
    problems
}

/// [`verify_files`], and for a template snapshot, that its database is still on the server
/// (it has no files: without this a dropped copy would verify as fine).
pub fn verify_stored(config: &Config, target: &Target, manifest: &Manifest) -> Result<Problems> {
    let mut problems = verify_files(config, manifest);
    if let Some(template) = &manifest.template_database
        && !backends::template_exists(&target.url, template)?
    {
        problems.push(format!(
            "template database {template} is missing from the server (dropped?): the snapshot cannot be restored"
        ));
    }
    Ok(problems)
}

/// Restores the snapshot into a scratch database, compares every fingerprint with the
/// manifest, and drops the scratch. Returns the problems and the restore time.
pub fn verify_deep(
    config: &Config,
    target: &Target,
    manifest: &Manifest,
) -> Result<(Problems, u64)> {
    let problems = verify_stored(config, target, manifest)?;
    if !problems.is_empty() {
        return Ok((problems, 0));
    }
    let scratch = backends::Scratch::create(&target.url, &manifest.id)?;
    let started = Instant::now();
    let result = (|| -> Result<Problems> {
        crate::progress::phase("restoring into a scratch database");
        restore_into(config, manifest, scratch.url())?;
        crate::progress::phase("comparing fingerprints with the manifest");
        let elapsed_problems = compare(scratch.url(), manifest)?;
        Ok(elapsed_problems)
    })();
    let restore_ms = started.elapsed().as_millis() as u64;
    drop(scratch);
    Ok((result?, restore_ms))
}

/// Compares a database's fingerprints with a manifest's.
pub fn compare(url: &DatabaseUrl, manifest: &Manifest) -> Result<Problems> {
    let mut db = Database::connect(url, Create::Never)?;
    let schema = inspect::schema_fingerprint(&mut db)?;
    let tables = inspect::data_fingerprints(&mut db)?;
    let mut problems = inspect::diff_schema(&manifest.schema, &schema);
    problems.extend(inspect::diff_data(&manifest.tables, &tables));
    Ok(problems)
}

/// Restores a snapshot into the database at `url`, replacing its contents. Shared by the
/// `restore` failure policy and `cargo dbrollback --restore`. Refuses a snapshot whose
/// files do not match the manifest.
pub fn restore_into(config: &Config, manifest: &Manifest, url: &DatabaseUrl) -> Result<()> {
    let problems = verify_files(config, manifest);
    if !problems.is_empty() {
        return Err(crate::error::Reason::DamagedSnapshot.refuse(format!(
            "snapshot {} is damaged, not restoring it: {}",
            manifest.id,
            problems.join("; ")
        )));
    }
    backends::restore(
        &SnapshotStore::new(config).path(&manifest.id)?,
        manifest,
        url,
        config.snapshot.pg_bin_dir.as_deref(),
    )
}

/// What [`prune`] did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// The ids deleted (or that would be, with `dry_run`).
    pub deleted: Vec<String>,
    /// Snapshot directories left alone because their manifest cannot be used.
    pub skipped: Vec<Unusable>,
}

/// Deletes snapshots beyond the retention policy: keeps the newest `keep_last`, those
/// younger than `keep_days`, and always the snapshot of the newest run. Only directories
/// found in the snapshot folder whose manifest is about them are deleted; the others are
/// skipped and reported.
pub fn prune(
    config: &Config,
    target: &str,
    keep_last: Option<u32>,
    keep_days: Option<u32>,
    protect: Option<&str>,
    dry_run: bool,
) -> Result<Pruned> {
    let store = SnapshotStore::new(config);
    let listing = store.list()?;
    let mut mine: Vec<Manifest> = listing
        .manifests
        .into_iter()
        .filter(|m| m.target == target)
        .collect();
    mine.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    let cutoff = keep_days.map(|days| days_ago(days as i64));
    let mut pruned = Pruned {
        deleted: Vec::new(),
        skipped: listing.unusable,
    };
    for (index, manifest) in mine.iter().enumerate() {
        let by_count = keep_last.is_some_and(|n| index < n as usize);
        let by_age = cutoff
            .as_deref()
            .is_some_and(|c| manifest.created_at.as_str() >= c);
        let nothing_set = keep_last.is_none() && keep_days.is_none();
        let protected = Some(manifest.id.as_str()) == protect;
        if by_count || by_age || nothing_set || protected {
            continue;
        }
        if !dry_run {
            if let Some(template) = &manifest.template_database {
                backends::drop_template(config, target, template)?;
            }
            let dir = store.path(&manifest.id)?;
            fs::remove_dir_all(&dir).map_err(|e| Error::io(dir, e))?;
        }
        pruned.deleted.push(manifest.id.clone());
    }
    Ok(pruned)
}

fn days_ago(days: i64) -> String {
    crate::run::format_utc(time::OffsetDateTime::now_utc() - time::Duration::days(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_fit_their_backend() {
        use SnapshotStrategy::*;
        let resolve = |s, b| resolve_strategy(s, b).map_err(|e| e.to_string());
        assert_eq!(resolve(Auto, Backend::Postgres), Ok(PgDump));
        assert_eq!(resolve(Auto, Backend::Mysql), Ok(Mysqldump));
        assert_eq!(resolve(Auto, Backend::Sqlite), Ok(SqliteBackup));
        assert_eq!(resolve(Template, Backend::Postgres), Ok(Template));
        let refused = resolve(Mysqldump, Backend::Postgres).unwrap_err();
        assert!(
            refused.contains(
                "snapshot strategy `mysqldump` does not work on postgres: use `auto`, or `pg-dump` or `template`"
            ),
            "{refused}"
        );
        let refused = resolve(Template, Backend::Sqlite).unwrap_err();
        assert!(
            refused.contains("use `auto`, or `sqlite-backup`"),
            "{refused}"
        );
    }
}
