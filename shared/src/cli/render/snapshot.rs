//! `cargo dbsafe snapshot create|list|verify|prune`: `snapshot`, `snapshot.verified`,
//! `snapshot.pruned` and `snapshot.unusable` lines in JSON.

use std::path::PathBuf;

use super::{JsonLine, Report};
use crate::snapshot::{Manifest, Unusable};

fn bytes(manifest: &Manifest) -> indicatif::HumanBytes {
    indicatif::HumanBytes(manifest.files.iter().map(|f| f.size).sum())
}

/// A snapshot just taken, and where it is.
pub struct Taken<'a> {
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// Its directory.
    pub path: PathBuf,
}

impl Report for Taken<'_> {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new("snapshot", self.manifest)]
    }

    fn human(&self) -> String {
        let m = self.manifest;
        format!(
            "snapshot {} of {} ({}, {} in {} file(s), {} table(s), {} ms)\n  path: {}",
            m.id,
            m.target,
            m.strategy,
            bytes(m),
            m.files.len(),
            m.tables.len(),
            m.duration_ms,
            self.path.display()
        )
    }
}

/// The snapshots of a target, newest first.
pub struct Listing<'a> {
    /// The target's name.
    pub target: &'a str,
    /// The snapshot folder, for the message when there are none.
    pub dir: &'a std::path::Path,
    /// Its snapshots.
    pub manifests: Vec<&'a Manifest>,
}

impl Report for Listing<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.manifests
            .iter()
            .map(|m| JsonLine::new("snapshot", m))
            .collect()
    }

    fn human(&self) -> String {
        if self.manifests.is_empty() {
            return format!(
                "no snapshots of target {} in {}",
                self.target,
                self.dir.display()
            );
        }
        let lines: Vec<String> = self
            .manifests
            .iter()
            .map(|m| {
                format!(
                    "  {}  {:<13} {}  {:>10}  {} migration(s){}",
                    m.id,
                    m.strategy,
                    m.created_at,
                    bytes(m).to_string(),
                    m.applied_migrations.len(),
                    m.run_id
                        .as_ref()
                        .map(|r| format!("  before run {r}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        lines.join("\n")
    }
}

/// `snapshot verify`: whether the files (and, deep, a restore of them) match the manifest.
pub struct Verified<'a> {
    /// The snapshot.
    pub manifest: &'a Manifest,
    /// Whether it was restored into a scratch database.
    pub deep: bool,
    /// What does not match.
    pub problems: &'a [String],
    /// How long the deep restore took.
    pub restore_ms: Option<u64>,
}

impl Report for Verified<'_> {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new(
            "snapshot.verified",
            &serde_json::json!({
                "snapshot_id": self.manifest.id, "ok": self.problems.is_empty(),
                "deep": self.deep, "problems": self.problems, "restore_ms": self.restore_ms,
            }),
        )]
    }

    /// Says that it is ok; problems are the command's error.
    fn human(&self) -> String {
        if !self.problems.is_empty() {
            return String::new();
        }
        let how = match self.restore_ms {
            Some(ms) => format!(
                "restored into a scratch database in {ms} ms; schema and every table's data match the manifest"
            ),
            None => format!("{} file(s) match their SHA-256", self.manifest.files.len()),
        };
        format!("snapshot {} ok: {how}", self.manifest.id)
    }
}

/// `snapshot prune`: what was (or would be) deleted.
pub struct Pruned<'a> {
    /// The snapshots deleted.
    pub deleted: &'a [String],
    /// Whether nothing was deleted, only said.
    pub dry_run: bool,
    /// The directories left alone.
    pub skipped: &'a [Unusable],
}

impl Report for Pruned<'_> {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new(
            "snapshot.pruned",
            &serde_json::json!({"deleted": self.deleted, "dry_run": self.dry_run, "skipped": self.skipped}),
        )]
    }

    fn human(&self) -> String {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        format!(
            "{verb} {} snapshot(s){}",
            self.deleted.len(),
            if self.deleted.is_empty() {
                String::new()
            } else {
                format!(": {}", self.deleted.join(", "))
            }
        )
    }
}

/// Snapshot directories whose manifest cannot be used (the command's error says so too).
pub struct UnusableDirs<'a>(pub &'a [Unusable]);

impl Report for UnusableDirs<'_> {
    fn json(&self) -> Vec<JsonLine> {
        self.0
            .iter()
            .map(|u| JsonLine::new("snapshot.unusable", u))
            .collect()
    }

    /// Nothing: the error lists them.
    fn human(&self) -> String {
        String::new()
    }
}
