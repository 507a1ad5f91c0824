//! The local journal (`<snapshot-dir>/journal.jsonl`): every event, one JSON line each,
//! kept outside the database so the audit trail survives a restore that rewinds the ledger.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::Event;

/// One journal line: the event and the target it concerns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JournalEntry {
    /// Target name (`journal_target`: run events carry a `target` field of their own).
    #[serde(rename = "journal_target")]
    pub target: String,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// The journal file of a project.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal in `snapshot_dir`.
    pub fn new(snapshot_dir: &Path) -> Journal {
        Journal {
            path: snapshot_dir.join("journal.jsonl"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (one `write` of one line, so concurrent writers do not interleave).
    /// Creates the directory (mode 0700) and the file (mode 0600) on first use.
    pub fn append(&self, target: &str, event: &Event) -> Result<()> {
        let entry = JournalEntry {
            target: target.to_owned(),
            event: event.clone(),
        };
        append_line(&self.path, &entry)
    }

    /// Every entry, oldest first; lines that do not parse, among them those whose run ids do
    /// not have the form of an id ([`crate::run_id::RunId`] checks them as they are read),
    /// are skipped: an id from the journal never reaches a path or the ledger unchecked.
    pub fn read(&self) -> Result<Vec<JournalEntry>> {
        self.read_lines_with(&[])
    }

    /// The entries whose line contains one of `needles` (all when empty), read as a stream:
    /// a journal grown by hundreds of fleet members is neither held in memory nor parsed
    /// whole by every apply.
    pub fn read_lines_with(&self, needles: &[&str]) -> Result<Vec<JournalEntry>> {
        use std::io::BufRead;
        let file = match fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(&self.path, e))?;
            if !needles.is_empty() && !needles.iter().any(|n| line.contains(n)) {
                continue;
            }
            if let Ok(entry) = serde_json::from_str::<JournalEntry>(&line) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

/// dbsafe's own directory in a repository (`.dbsafe/`, the default snapshot folder's parent).
const STATE_DIR: &str = ".dbsafe";

/// Appends `value` to the JSON Lines file at `path` in one `write` of one line, so that
/// concurrent writers do not interleave; creates the directory (mode 0700) and the file
/// (mode 0600) on first use, and tightens a file left more open.
pub fn append_line(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    tighten(path, 0o600)?;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io(path, e))
}

/// Creates a directory and its missing parents with mode 0700. An existing one left more
/// open by an older dbsafe is tightened to 0700, and so is `.dbsafe/` when it is the parent.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?;
        tighten(dir, 0o700)?;
        if let Some(parent) = dir.parent()
            && parent.file_name().is_some_and(|n| n == STATE_DIR)
        {
            tighten(parent, 0o700)?;
        }
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(())
}

/// Takes group and other permissions away from `path` when it has any (mode becomes
/// `mode`); leaves it alone otherwise.
#[cfg(unix)]
pub fn tighten(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .permissions()
        .mode();
    if current & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[test]
    fn entries_read_back_as_written_and_bad_run_ids_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let event = Event {
            run_id: Some("20261121T000000Z-abcd".parse().unwrap()),
            at: "2026-11-21T00:00:00.000Z".into(),
            operator: Some("me".into()),
            kind: EventKind::RunStarted {
                kind: crate::run::RunKind::Apply,
                target: "dev".into(),
                environment: "test".into(),
                url: "sqlite://x.db".into(),
                pending: vec!["1".into()],
                host: "h".into(),
                tool_version: "0".into(),
                git_commit: None,
                git_dirty: None,
                snapshot_id: None,
                fleet_run: None,
            },
        };
        journal.append("dev", &event).unwrap();
        let mut hostile = serde_json::to_value(JournalEntry {
            target: "dev".into(),
            event: event.clone(),
        })
        .unwrap();
        hostile["run_id"] = "../../x".into();
        append_line(journal.path(), &hostile).unwrap();
        let entries = journal.read().unwrap();
        assert_eq!(
            entries,
            vec![JournalEntry {
                target: "dev".into(),
                event
            }]
        );
    }
}
