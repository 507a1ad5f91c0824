//! The per-backend halves of snapshots: dump with the real tools, restore, scratch
//! databases for deep verification, and server versions.

use std::fs;
use std::path::{Path, PathBuf};

use super::tool::{PgTools, Tool};
use crate::config::{Config, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::target::DatabaseUrl;

/// gzip level of `pg_dump -Fc`: level 1 compresses text well at a fraction of the CPU
/// time of the default (6), which is where bare `pg_dump -Fc` spends most of its time.
const PG_DUMP_COMPRESSION: &str = "1";
const PG_DUMP_FILE: &str = "dump.pgdump";
const MYSQL_DUMP_FILE: &str = "dump.sql";
const SQLITE_FILE: &str = "database.sqlite";

/// The server's version string.
pub fn server_version(db: &mut Database) -> Result<String> {
    let rows = db
        .texts(db.dialect().server_version_sql())
        .map_err(|e| Error::db("reading the server version", e))?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// A name for a database derived from `base` that fits PostgreSQL's 63-byte limit.
pub(crate) fn derived_name(base: &str, tag: &str, id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let suffix = format!("_dbsafe_{tag}_{id}");
    let keep = 63usize.saturating_sub(suffix.len()).min(base.len());
    format!("{}{suffix}", &base[..keep])
}

/// A session on the server of `url` that is not on its database (its dialect's
/// maintenance database).
pub(crate) fn maintenance(url: &DatabaseUrl) -> Result<Database> {
    let name = url
        .backend()
        .dialect()
        .maintenance_database()
        .ok_or_else(|| Error::Failed(format!("{} has no server", url.redacted())))?;
    Database::connect(&url.with_database(name), Create::Never)
}

/// Writes the snapshot's files into `dir`; returns their names and, for `template`, the
/// database holding the copy.
pub fn dump(
    db: &mut Database,
    dir: &Path,
    strategy: SnapshotStrategy,
    id: &str,
) -> Result<(Vec<String>, Option<String>)> {
    match strategy {
        SnapshotStrategy::Template => {
            let url = db.url().clone();
            let source = url.database_name();
            let copy = derived_name(&source, "snap", id);
            // CREATE DATABASE ... TEMPLATE needs no other session on the source, this one included.
            *db = maintenance(&url)?;
            let result = clone_database(db, &source, &copy);
            *db = Database::connect(&url, Create::Never)?;
            result?;
            Ok((Vec::new(), Some(copy)))
        }
        SnapshotStrategy::Mysqldump => {
            let file = dir.join(MYSQL_DUMP_FILE);
            let program = if which("mariadb-dump") {
                "mariadb-dump"
            } else {
                "mysqldump"
            };
            crate::progress::phase(program);
            crate::progress::writing(&file);
            Tool::mysql(program, db.url())
                .args([
                    "--single-transaction",
                    "--routines",
                    "--triggers",
                    "--events",
                    "--hex-blob",
                    "--skip-dump-date",
                    "--no-tablespaces",
                ])
                .args([db.url().database_name()])
                .run(None, Some(&file))?;
            Ok((vec![MYSQL_DUMP_FILE.to_owned()], None))
        }
        SnapshotStrategy::SqliteBackup => {
            let file = dir.join(SQLITE_FILE);
            crate::progress::phase("copying (VACUUM INTO)");
            crate::progress::writing(&file);
            let into = db.dialect().literal(&file.to_string_lossy());
            db.execute(&format!("VACUUM INTO {into}"))
                .map_err(|e| Error::db("copying the SQLite database (VACUUM INTO)", e))?;
            restrict(&file)?;
            Ok((vec![SQLITE_FILE.to_owned()], None))
        }
        SnapshotStrategy::Auto | SnapshotStrategy::PgDump => {
            unreachable!("resolved before; pg-dump is taken by snapshot::take_pg_dump")
        }
    }
}

/// The server's `server_version_num` (150004 for 15.4); 0 when unreadable.
fn server_version_num(db: &mut Database) -> Result<u32> {
    Ok(db
        .texts("SELECT CAST(current_setting('server_version_num') AS TEXT) AS v")
        .map_err(|e| Error::db("reading the server version", e))?
        .first()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0))
}

/// The PostgreSQL client tools for the server `db` is on: at least its version (see
/// [`PgTools::find`]); a `pg_dump` older than the server cannot dump it reliably.
pub fn pg_tools(db: &mut Database, configured: Option<&Path>) -> Result<PgTools> {
    PgTools::find(server_version_num(db)? / 10000, configured)
}

/// `pg_dump` of the database at `url` into `dir`'s dump file (mode 0600), in the exported
/// snapshot `snapshot` when given (which must stay open until pg_dump has started), and
/// returns the file's name.
///
/// Custom format, gzip level 1: level 1 compresses a typical database 3 to 4 times at a
/// fraction of the CPU time of the default (6), which is where bare `pg_dump -Fc` spends most
/// of its time; uncompressed (level 0) is a little faster still on an idle machine but writes
/// (and keeps, per snapshot) 3 times the bytes. One file, so pg_restore --jobs can restore it
/// in parallel and `verify` has one checksum to check.
pub fn pg_dump(
    tools: &PgTools,
    url: &DatabaseUrl,
    dir: &Path,
    snapshot: Option<&str>,
) -> Result<String> {
    let file = dir.join(PG_DUMP_FILE);
    super::create_private_file(&file)?;
    let mut tool = Tool::postgres(tools, "pg_dump", url).args([
        "--format=custom",
        "--compress",
        PG_DUMP_COMPRESSION,
        "--no-password",
    ]);
    if let Some(id) = snapshot {
        tool = tool.args([format!("--snapshot={id}")]);
    }
    if let Some(schema) = url.schema() {
        // A schema member's snapshot is its schema (double quotes: the name, not a pattern).
        tool = tool.args([format!("--schema=\"{}\"", schema.replace('"', "\"\""))]);
    }
    crate::progress::phase("pg_dump");
    crate::progress::writing(&file);
    tool.args(["--file"]).args([&file]).run(None, None)?;
    Ok(PG_DUMP_FILE.to_owned())
}

fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `CREATE DATABASE copy TEMPLATE source`, explaining which sessions block it.
///
/// On PostgreSQL 15 and later with `STRATEGY = FILE_COPY`: a checkpoint, then the files
/// copied and synced once. The default there (`WAL_LOG`) reads every page through shared
/// buffers and writes it to the WAL, then again to the data files later: twice the writes,
/// and checkpoints forced on everyone else (2 to 3 times slower on a 1.5 GB database).
fn clone_database(admin: &mut Database, source: &str, copy: &str) -> Result<()> {
    let strategy = if server_version_num(admin).unwrap_or(0) >= 150000 {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };
    let pg = admin.dialect();
    admin.execute(&format!("CREATE DATABASE {} TEMPLATE {}{strategy}", pg.ident(copy), pg.ident(source))).map_err(|e| {
        let sessions = admin
            .texts(&format!(
                "SELECT CAST(pid AS TEXT) || ' (' || COALESCE(usename, '?') || ', ' || COALESCE(application_name, '') || ')' AS v FROM pg_stat_activity WHERE datname = {}",
                pg.literal(source)
            ))
            .unwrap_or_default();
        Error::Failed(format!(
            "cannot clone database {source} with CREATE DATABASE ... TEMPLATE: {e}.{}",
            if sessions.is_empty() {
                String::new()
            } else {
                format!(" Sessions connected to it block the clone: {}. Close them, or use the pg-dump strategy.", sessions.join(", "))
            }
        ))
    })
}

/// Whether the database holding a template snapshot is still on the server of `url`.
pub fn template_exists(url: &DatabaseUrl, template: &str) -> Result<bool> {
    template_exists_on(&mut maintenance(url)?, template)
}

fn template_exists_on(admin: &mut Database, template: &str) -> Result<bool> {
    let rows = admin
        .texts(&format!(
            "SELECT CAST(datname AS TEXT) AS v FROM pg_database WHERE datname = {}",
            admin.dialect().literal(template)
        ))
        .map_err(|e| Error::db(format!("looking for template database {template}"), e))?;
    Ok(!rows.is_empty())
}

/// Fills the throwaway database at `url` (a [`Scratch`]: a deep verification's scratch or
/// a restore's staging copy, never a target) with the snapshot in `dir`.
pub fn restore(
    dir: &Path,
    manifest: &super::Manifest,
    url: &DatabaseUrl,
    pg_bin_dir: Option<&Path>,
) -> Result<()> {
    if !is_throwaway(url) {
        return Err(Error::Failed(format!(
            "refusing to restore into {}: snapshots are restored into a new database beside the target, then swapped in",
            url.redacted()
        )));
    }
    match manifest.strategy.as_str() {
        "pg-dump" => {
            let jobs = std::thread::available_parallelism()
                .map_or(2, |n| n.get().clamp(2, 8))
                .to_string();
            let tools = pg_tools(&mut Database::connect(url, Create::Never)?, pg_bin_dir)?;
            crate::progress::phase("pg_restore");
            Tool::postgres(&tools, "pg_restore", url)
                .args([
                    "--exit-on-error",
                    "--no-password",
                    "--jobs",
                    &jobs,
                    "--dbname",
                ])
                .args([url.database_name()])
                .args([dir.join(PG_DUMP_FILE)])
                .run(None, None)?;
            Ok(())
        }
        "template" => {
            let copy = manifest.template_database.as_deref().ok_or_else(|| {
                Error::Failed("template snapshot without a template database".into())
            })?;
            let into = url.database_name();
            let mut admin = maintenance(url)?;
            let pg = admin.dialect();
            if !template_exists_on(&mut admin, copy)? {
                return Err(Error::Failed(format!(
                    "the database {copy} holding template snapshot {} is no longer on the server: nothing restored",
                    manifest.id
                )));
            }
            // The throwaway was made empty; the clone takes its place under the same name.
            let owner = admin
                .texts(&format!(
                    "SELECT CAST(pg_get_userbyid(datdba) AS TEXT) AS v FROM pg_database WHERE datname = {}",
                    pg.literal(&into)
                ))
                .map_err(|e| Error::db("reading the owner of the restore's database", e))?;
            pg.drop_database(url, &into)?;
            clone_database(&mut admin, copy, &into)?;
            if let Some(owner) = owner.first() {
                admin
                    .execute(&format!(
                        "ALTER DATABASE {} OWNER TO {}",
                        pg.ident(&into),
                        pg.ident(owner)
                    ))
                    .map_err(|e| Error::db("giving the restored database its owner", e))?;
            }
            Ok(())
        }
        "mysqldump" => {
            let program = if which("mariadb") { "mariadb" } else { "mysql" };
            crate::progress::phase("loading the dump");
            Tool::mysql(program, url)
                .args([format!("--database={}", url.database_name())])
                .run(Some(&dir.join(MYSQL_DUMP_FILE)), None)?;
            Ok(())
        }
        "sqlite-backup" => {
            let path = url
                .sqlite_path()
                .ok_or_else(|| Error::Failed("not a SQLite URL".into()))?;
            fs::copy(dir.join(SQLITE_FILE), path).map_err(|e| Error::io(path, e))?;
            restrict(path)?;
            fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(path, e))
        }
        other => Err(Error::Failed(format!(
            "snapshot strategy `{other}` in the manifest is unknown to this dbsafe"
        ))),
    }
}

/// Whether `url` names a database (or file) dbsafe made to throw away or swap in.
fn is_throwaway(url: &DatabaseUrl) -> bool {
    match url.sqlite_path() {
        Some(path) => path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("dbsafe-")),
        None => url.database_name().contains("_dbsafe_"),
    }
}

/// Drops the database a template snapshot keeps on the server.
pub fn drop_template(config: &Config, target: &str, template: &str) -> Result<()> {
    let target = crate::target::Target::resolve(config, Some(target))?;
    let url = &target.url;
    url.backend().dialect().drop_database(url, template)
}

/// A throwaway database for deep verification, dropped on drop (and on Ctrl-C).
pub struct Scratch {
    url: DatabaseUrl,
    name: String,
    interrupt_key: u64,
}

impl Scratch {
    /// A new empty database beside `url`'s (a temporary file for SQLite).
    pub fn create(url: &DatabaseUrl, id: &str) -> Result<Scratch> {
        let sqlite =
            std::env::temp_dir().join(format!("dbsafe-scratch-{id}-{}.sqlite", std::process::id()));
        Scratch::make(url, id, "scratch", sqlite)
    }

    /// A new empty database beside `url`'s to restore a snapshot into and swap in: on the
    /// same server, or for SQLite a file in the same directory (a rename stays atomic).
    pub fn beside(url: &DatabaseUrl, id: &str) -> Result<Scratch> {
        let sqlite = match url.sqlite_path() {
            Some(path) => {
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(format!(".dbsafe-restore-{id}"));
                path.with_file_name(name)
            }
            None => PathBuf::new(),
        };
        Scratch::make(url, id, "restore", sqlite)
    }

    fn make(url: &DatabaseUrl, id: &str, tag: &str, sqlite: PathBuf) -> Result<Scratch> {
        let name = match url.sqlite_path() {
            Some(_) => sqlite.to_string_lossy().into_owned(),
            None => derived_name(&url.database_name(), tag, id),
        };
        let scratch_url = url.backend().dialect().create_scratch(url, &name)?;
        Ok(Scratch::guarded(scratch_url, name))
    }

    /// Its database name (SQLite: its file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the database: it has become something else (swapped in as the target).
    pub fn disarm(self) {
        crate::interrupt::unregister(self.interrupt_key);
        std::mem::forget(self);
    }

    /// Its URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A session on it for building a shadow schema: the database is thrown away, so its
    /// commits do not wait for the disk (each migration still commits on its own).
    pub fn connect_shadow(&self) -> Result<Database> {
        let mut shadow = Database::connect(&self.url, Create::IfMissing)?;
        if let Some(sql) = shadow.dialect().no_sync_sql() {
            shadow
                .execute(sql)
                .map_err(|e| Error::db("setting up the shadow database", e))?;
        }
        crate::layout::ensure_history(&mut shadow.conn)
            .map_err(|e| Error::db("creating the history table on the shadow database", e))?;
        Ok(shadow)
    }

    fn guarded(url: DatabaseUrl, name: String) -> Scratch {
        let (cleanup_url, cleanup_name) = (url.clone(), name.clone());
        let interrupt_key =
            crate::interrupt::register(Box::new(move || drop_scratch(&cleanup_url, &cleanup_name)));
        Scratch {
            url,
            name,
            interrupt_key,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::interrupt::unregister(self.interrupt_key);
        drop_scratch(&self.url, &self.name);
    }
}

/// Drops a scratch database (or deletes a scratch SQLite file), ignoring failures.
fn drop_scratch(url: &DatabaseUrl, name: &str) {
    let _ = url.backend().dialect().drop_database(url, name);
}
