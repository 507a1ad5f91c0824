//! Where snapshots live: one directory per snapshot (its id) in the project's snapshot
//! folder, with its manifest; listing, reading and checking manifests so that nothing
//! outside a snapshot's own directory is ever followed.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::inspect::{SchemaFingerprint, TableFingerprint};
use crate::run_id::{ID_FORM, RunId, is_valid_id, new_id, validate_id};
use crate::target::Backend;

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
    pub run_id: Option<RunId>,
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
            crate::error::Reason::DamagedSnapshot.refuse(format!(
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

    pub(super) fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
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
pub(super) fn claim_new_dir(store: &SnapshotStore) -> Result<(String, PathBuf)> {
    loop {
        let id = new_id();
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
