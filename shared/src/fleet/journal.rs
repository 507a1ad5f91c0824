//! The fleet journal (`<snapshot-dir>/fleet-journal.jsonl`): each fleet run's start, each
//! member's outcome and its end, one JSON line each, appended by every CI job of a
//! partitioned run under the same fleet run id. Each member's own run is in its ledger,
//! linked by `fleet_run`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::now;
use crate::run_id::RunId;

/// One line of the fleet journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetEntry {
    /// `fleet.started`, `fleet.member` or `fleet.finished`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The fleet run id (a line naming anything else does not parse).
    pub fleet_run: RunId,
    /// The fleet's name.
    pub fleet: String,
    /// `apply`, `rollback` or `verify`.
    pub command: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The rest: members and partition (started), one member's outcome, totals (finished).
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// The fleet journal of a project.
#[derive(Debug, Clone)]
pub struct FleetJournal {
    path: PathBuf,
}

impl FleetJournal {
    /// The fleet journal in `snapshot_dir`.
    pub fn new(snapshot_dir: &Path) -> FleetJournal {
        FleetJournal {
            path: snapshot_dir.join("fleet-journal.jsonl"),
        }
    }

    /// Appends one entry (one write of one line; the file is private).
    pub fn append(
        &self,
        fleet_run: &RunId,
        fleet: &str,
        command: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<()> {
        let entry = FleetEntry {
            kind: kind.to_owned(),
            fleet_run: fleet_run.clone(),
            fleet: fleet.to_owned(),
            command: command.to_owned(),
            at: now(),
            data: match data {
                serde_json::Value::Object(map) => map,
                _ => Default::default(),
            },
        };
        crate::journal::append_line(&self.path, &entry)
    }

    /// Every entry, oldest first (lines that do not parse are skipped).
    pub fn read(&self) -> Result<Vec<FleetEntry>> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// The fleet a fleet run (of `command`) belongs to, if this journal knows it.
    pub fn fleet_of(&self, fleet_run: &RunId) -> Result<Option<String>> {
        Ok(self
            .read()?
            .into_iter()
            .find(|e| e.fleet_run == *fleet_run)
            .map(|e| e.fleet))
    }
}
