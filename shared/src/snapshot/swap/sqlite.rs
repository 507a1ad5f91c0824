//! SQLite's swap: the synced copy renamed over the target file (the old one kept by a hard
//! link when asked), the directory synced.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::{Recovered, SwapPlan};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::run_id::RunId;
use crate::snapshot::Scratch;
use crate::target::DatabaseUrl;

/// Swaps the copy in; `db` is reopened on the new file.
pub(crate) fn swap(
    db: &mut Database,
    target: &DatabaseUrl,
    scratch: Scratch,
    plan: &SwapPlan,
    keep_replaced: bool,
) -> Result<()> {
    let path = target
        .sqlite_path()
        .ok_or_else(|| Error::Failed("not a SQLite URL".into()))?
        .to_owned();
    swap_files(db, &path, plan, keep_replaced)?;
    scratch.disarm();
    *db = Database::connect(target, Create::Never)?;
    Ok(())
}

/// Finishes or undoes an interrupted swap: a staging file still there means the rename
/// never happened.
pub(crate) fn recover(plan: &SwapPlan, keep_replaced: bool) -> Recovered {
    let staging = Path::new(&plan.staging);
    if staging.exists() {
        let _ = fs::remove_file(staging);
        return Recovered::Undone;
    }
    if !keep_replaced {
        let _ = fs::remove_file(&plan.replaced);
    }
    Recovered::Swapped
}

/// Where a swapped-out SQLite file is kept when `keep-replaced` is set.
pub(crate) fn replaced_file(target: &DatabaseUrl, run_id: &RunId) -> Result<PathBuf> {
    let path = target
        .sqlite_path()
        .ok_or_else(|| Error::Failed("not a SQLite URL".into()))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".dbsafe-replaced-{run_id}"));
    Ok(path.with_file_name(name))
}

/// Checkpoints the target's write-ahead log into its file (so no log of the old file is
/// left for the new one), keeps the old file by a hard link when asked, renames the synced
/// copy over the target and syncs the directory.
fn swap_files(db: &mut Database, path: &Path, plan: &SwapPlan, keep_replaced: bool) -> Result<()> {
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").map_err(|e| {
        Error::db(
            "checkpointing the SQLite write-ahead log before the swap",
            e,
        )
    })?;
    let staging = Path::new(&plan.staging);
    File::open(staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(staging, e))?;
    if keep_replaced {
        let _ = fs::remove_file(&plan.replaced);
        fs::hard_link(path, &plan.replaced).map_err(|e| Error::io(&plan.replaced, e))?;
    }
    fs::rename(staging, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
