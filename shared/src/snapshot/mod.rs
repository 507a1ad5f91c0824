//! Snapshots: a point-in-time copy of a target taken by the real tools (`pg_dump`,
//! `mariadb-dump`, SQLite's `VACUUM INTO`) or a template clone, with a manifest (files and
//! their SHA-256, applied migrations, schema and data fingerprints) that proves a restore.

mod backends;
mod swap;
mod tool;

pub use backends::Scratch;
pub(crate) use backends::{maintenance, mysql_ident, pg_ident};
pub use swap::{Recovered, Staging, SwapPlan, discard, recover};

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::inspect::{self, SchemaFingerprint, TableFingerprint};
use crate::journal::create_private_dir;
use crate::ledger;
use crate::run::{ID_FORM, is_valid_id, new_run_id, now, validate_id};
use crate::target::{Backend, DatabaseUrl, Target};

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// File name inside the snapshot's directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A snapshot's manifest (`manifest.json` in its directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Snapshot id (same shape as run ids: sortable by time).
    pub id: String,
    /// Target name.
    pub target: String,
    /// The run it was taken for, if any.
    pub run_id: Option<String>,
    /// When it was taken (RFC 3339 UTC).
    pub created_at: String,
    /// `pg-dump`, `template`, `mysqldump` or `sqlite-backup`.
    pub strategy: String,
    /// The backend.
    pub backend: Backend,
    /// The files, with sizes and checksums (none for `template`).
    pub files: Vec<SnapshotFile>,
    /// For `template`: the database on the server holding the copy.
    pub template_database: Option<String>,
    /// The server's version.
    pub server_version: String,
    /// Versions in diesel's table when it was taken.
    pub applied_migrations: Vec<String>,
    /// Schema fingerprint when it was taken.
    pub schema: SchemaFingerprint,
    /// Per-table row counts and content hashes when it was taken.
    pub tables: Vec<TableFingerprint>,
    /// dbsafe's version.
    pub tool_version: String,
    /// The client tool that wrote the files (`pg_dump 15 (/usr/lib/postgresql/15/bin)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tools: Option<String>,
    /// How long taking it took.
    pub duration_ms: u64,
}

/// The manifest's file name in a snapshot's directory.
const MANIFEST: &str = "manifest.json";

impl Manifest {
    /// Checks that a manifest read from directory `dir_name` is about that directory and
    /// names nothing outside it: its id is the directory's name, its files are plain file
    /// names in it, and a template database is the one dbsafe named after this id.
    fn check_belongs_to(&self, dir_name: &str) -> Result<(), String> {
        if self.id != dir_name {
            return Err(format!(
                "says its id is `{}`, but it is in directory `{dir_name}`: not followed",
                self.id.escape_debug()
            ));
        }
        if let Some(file) = self.files.iter().find(|f| !is_plain_file_name(&f.name)) {
            return Err(format!(
                "names file `{}`, which is not a plain file name in the snapshot's directory",
                file.name.escape_debug()
            ));
        }
        if let Some(template) = &self.template_database
            && !template.ends_with(&template_suffix(&self.id))
        {
            return Err(format!(
                "names template database `{}`, which is not the one dbsafe made for snapshot {} (its name ends with {})",
                template.escape_debug(),
                self.id,
                template_suffix(&self.id)
            ));
        }
        Ok(())
    }
}

/// How the name of a template snapshot's database ends (see `backends::derived_name`).
fn template_suffix(id: &str) -> String {
    format!("_dbsafe_snap_{}", id.to_ascii_lowercase().replace('-', "_"))
}

/// A single normal path component: no separator, not `.` or `..`, not empty.
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains('/')
}

/// The snapshots of a folder.
#[derive(Debug, Default)]
pub struct Listing {
    /// Usable manifests, oldest first.
    pub manifests: Vec<Manifest>,
    /// Snapshot directories whose manifest cannot be used.
    pub unusable: Vec<Unusable>,
}

/// A snapshot directory that is reported, never followed: its manifest is corrupt, or is
/// not about that directory.
#[derive(Debug, Clone, Serialize)]
pub struct Unusable {
    /// The directory.
    pub dir: PathBuf,
    /// What is wrong.
    pub problem: String,
}

/// Where a project's snapshots live.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// The store of a configuration (`snapshot-dir`).
    pub fn new(config: &Config) -> SnapshotStore {
        SnapshotStore {
            dir: config.snapshot_dir.clone(),
        }
    }

    /// The directory of one snapshot. Only an id of the documented form is accepted (exit 2
    /// otherwise), so the path is always a direct child of the snapshot folder.
    pub fn path(&self, id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(validate_id(id, "snapshot id")?))
    }

    /// Every usable snapshot's manifest, oldest first, and every snapshot directory whose
    /// manifest cannot be used (corrupt, or not about that directory), with the reason.
    pub fn list(&self) -> Result<Listing> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut listing = Listing::default();
        for entry in entries.filter_map(|entry| entry.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !path.join(MANIFEST).is_file() {
                continue; // a file of the folder (journal, bindings) or a snapshot being taken
            }
            let problem = if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                "is a symbolic link, not a snapshot directory: not followed".to_owned()
            } else if !is_valid_id(&name) {
                format!("its name is not a snapshot id of the form {ID_FORM}")
            } else {
                match self.read(&name) {
                    Ok(Ok(manifest)) => {
                        listing.manifests.push(manifest);
                        continue;
                    }
                    Ok(Err(problem)) => problem,
                    Err(e) => e.to_string(),
                }
            };
            listing.unusable.push(Unusable { dir: path, problem });
        }
        listing
            .manifests
            .sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        listing.unusable.sort_by(|a, b| a.dir.cmp(&b.dir));
        Ok(listing)
    }

    /// One snapshot's manifest; an unknown id names the ones that exist, a bad id is exit 2,
    /// a corrupt manifest (or one about another directory) is exit 1.
    pub fn load(&self, id: &str) -> Result<Manifest> {
        self.read(id)?.map_err(|problem| {
            Error::Failed(format!(
                "snapshot {id}: {problem}: the snapshot cannot be trusted"
            ))
        })
    }

    /// [`SnapshotStore::load`] for a restore: a manifest that cannot be trusted refuses the
    /// restore (exit 3), as damaged files do.
    pub fn load_for_restore(&self, id: &str) -> Result<Manifest> {
        self.read(id)?.map_err(|problem| {
            Error::Refused(format!(
                "snapshot {id}: {problem}: not restoring a snapshot that cannot be trusted"
            ))
        })
    }

    /// Reads and checks `<id>/manifest.json`: the outer error is a bad or unknown id or an
    /// unreadable file, the inner one what makes the manifest unusable.
    fn read(&self, id: &str) -> Result<Result<Manifest, String>> {
        let path = self.path(id)?.join(MANIFEST);
        let text = fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                self.unknown(id)
            } else {
                Error::io(&path, e)
            }
        })?;
        Ok(match serde_json::from_str::<Manifest>(&text) {
            Err(e) => Err(format!("{} is corrupt ({e})", path.display())),
            Ok(manifest) => manifest
                .check_belongs_to(id)
                .map(|()| manifest)
                .map_err(|problem| format!("{} {problem}", path.display())),
        })
    }

    /// No snapshot `id`: names the ones there are.
    fn unknown(&self, id: &str) -> Error {
        let mut known: Vec<String> = fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| is_valid_id(n))
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        Error::Usage(format!(
            "no snapshot `{id}` in {}; {}",
            self.dir.display(),
            if known.is_empty() {
                "there are none yet".to_owned()
            } else {
                format!("snapshots: {}", known.join(", "))
            }
        ))
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let path = self.path(&manifest.id)?.join(MANIFEST);
        let text = serde_json::to_string_pretty(manifest).unwrap_or_default();
        use std::io::Write;
        create_private_file(&path)?
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(path, e))
    }
}

/// Creates (or truncates) a file with mode 0600.
pub fn create_private_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    // An existing file keeps its mode on open: one left more open by an older dbsafe is tightened.
    #[cfg(unix)]
    crate::journal::tighten(path, 0o600)?;
    Ok(file)
}

/// A new snapshot id and its directory, created here and now (mode 0700): an id that two
/// snapshots drew in the same second is drawn again, so a snapshot never writes into (nor,
/// failing, deletes) another one's directory.
fn claim_new_dir(store: &SnapshotStore) -> Result<(String, PathBuf)> {
    loop {
        let id = new_run_id();
        let dir = store.path(&id)?;
        match fs::create_dir(&dir) {
            Ok(()) => {
                #[cfg(unix)]
                crate::journal::tighten(&dir, 0o700)?;
                return Ok((id, dir));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
}

/// SHA-256 and size of a file, streaming.
pub fn file_checksum(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

/// The strategy `auto` resolves to for a backend, and a check that a named one fits it.
pub fn resolve_strategy(strategy: SnapshotStrategy, backend: Backend) -> Result<SnapshotStrategy> {
    use SnapshotStrategy::*;
    match (strategy, backend) {
        (Auto, Backend::Postgres) => Ok(PgDump),
        (Auto, Backend::Mysql) => Ok(Mysqldump),
        (Auto, Backend::Sqlite) => Ok(SqliteBackup),
        (PgDump | Template, Backend::Postgres)
        | (Mysqldump, Backend::Mysql)
        | (SqliteBackup, Backend::Sqlite) => Ok(strategy),
        (other, backend) => Err(Error::Usage(format!(
            "snapshot strategy `{}` does not work on {backend}: use `auto`, or {}",
            other.as_str(),
            match backend {
                Backend::Postgres => "`pg-dump` or `template`",
                Backend::Mysql => "`mysqldump`",
                Backend::Sqlite => "`sqlite-backup`",
            }
        ))),
    }
}

/// Takes a snapshot of the database `db` is connected to. `db` stays usable.
pub fn create(
    config: &Config,
    target: &Target,
    db: &mut Database,
    strategy: SnapshotStrategy,
    run_id: Option<&str>,
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
            run_id: run_id.map(str::to_owned),
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
    match (strategy, db.backend()) {
        (SnapshotStrategy::PgDump, Backend::Postgres) => take_pg_dump(db, dir, pg_bin_dir),
        (SnapshotStrategy::Template, Backend::Postgres) => take_template(db, dir, id),
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
            let _ = backends::drop_database(db.url(), &copy);
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
        return Err(Error::Refused(format!(
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
