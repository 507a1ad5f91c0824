//! `cargo dbsafe snapshot create|list|verify|prune`.

use clap::{Args, Subcommand};

use super::render::rollback::RollbackDone;
use super::render::snapshot as render;
use super::{GlobalArgs, Output, exit};
use crate::config::{Config, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::ledger;
use crate::preflight;
use crate::snapshot::{self, SnapshotStore, Unusable};
use crate::target::Target;

/// The `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of the target now, with its manifest and fingerprints.
    Create(CreateArgs),
    /// List the snapshots of the target, newest first.
    List,
    /// Check a snapshot's files against its manifest; --deep restores it into a scratch
    /// database and compares every fingerprint.
    Verify(VerifyArgs),
    /// Delete snapshots beyond the retention policy ([snapshot] keep-last / keep-days).
    Prune(PruneArgs),
    /// Restore a verified snapshot of the target as a recorded restore run: a safety
    /// snapshot first, the copy written beside the target and proved, then swapped in.
    Restore(RestoreArgs),
}

/// `snapshot restore` flags.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot id.
    #[arg(required_unless_present = "last")]
    id: Option<String>,
    /// The target's newest snapshot.
    #[arg(long, conflicts_with = "id")]
    last: bool,
    /// Say what would be restored and lost, touch nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `snapshot create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// auto, pg-dump, template, mysqldump or sqlite-backup (default: [snapshot] strategy).
    #[arg(long, value_name = "STRATEGY")]
    strategy: Option<SnapshotStrategy>,
}

/// `snapshot verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot id.
    #[arg(required_unless_present = "last")]
    id: Option<String>,
    /// The target's newest snapshot.
    #[arg(long, conflicts_with = "id")]
    last: bool,
    /// Restore into a scratch database and compare fingerprints with the manifest.
    #[arg(long)]
    deep: bool,
}

/// `snapshot prune` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep at least the newest N snapshots (default: [snapshot] keep-last).
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep snapshots younger than D days (default: [snapshot] keep-days).
    #[arg(long, value_name = "D")]
    keep_days: Option<u32>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Refuses a snapshot id argument that does not have the form of an id (exit 2).
pub fn validate_ids(command: &SnapshotCommand) -> Result<()> {
    match command {
        SnapshotCommand::Verify(VerifyArgs { id: Some(id), .. })
        | SnapshotCommand::Restore(RestoreArgs { id: Some(id), .. }) => {
            crate::run_id::validate_id(id, "snapshot id").map(drop)
        }
        _ => Ok(()),
    }
}

/// The snapshot `id`, or the target's newest one for `--last`.
pub(super) fn chosen_id(id: &Option<String>, config: &Config, target: &Target) -> Result<String> {
    if let Some(id) = id {
        return Ok(id.clone());
    }
    SnapshotStore::new(config)
        .list()?
        .manifests
        .into_iter()
        .rfind(|m| m.target == target.name)
        .map(|m| m.id)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--last: target `{}` has no snapshots in {}",
                target.name,
                config.snapshot_dir.display()
            ))
        })
}

/// Runs a `snapshot` subcommand.
pub fn run(
    command: &SnapshotCommand,
    config: &Config,
    target: &Target,
    global: &GlobalArgs,
    output: &mut Output,
) -> Result<u8> {
    match command {
        SnapshotCommand::Create(args) => {
            let mut db = Database::connect(&target.url, Create::Never)?;
            let strategy = args.strategy.unwrap_or(config.snapshot.strategy);
            let phase = output.phase(&format!("taking a snapshot of {}", target.name));
            let manifest = snapshot::create(config, target, &mut db, strategy, None)?;
            drop(phase);
            output.report(&render::Taken {
                path: SnapshotStore::new(config).path(&manifest.id)?,
                manifest: &manifest,
            });
            Ok(exit::SUCCESS)
        }
        SnapshotCommand::List => {
            let listing = SnapshotStore::new(config).list()?;
            output.report(&render::Listing {
                target: &target.name,
                dir: &config.snapshot_dir,
                manifests: listing
                    .manifests
                    .iter()
                    .filter(|m| m.target == target.name)
                    .rev()
                    .collect(),
            });
            report_unusable(&listing.unusable, output)
        }
        SnapshotCommand::Verify(args) => {
            let store = SnapshotStore::new(config);
            let manifest = store.load(&chosen_id(&args.id, config, target)?)?;
            let phase = output.phase(&if args.deep {
                format!("verifying snapshot {}", manifest.id)
            } else {
                format!("checking the files of snapshot {}", manifest.id)
            });
            let (problems, restore_ms) = if args.deep {
                let (problems, ms) = snapshot::verify_deep(config, target, &manifest)?;
                (problems, Some(ms))
            } else {
                (snapshot::verify_stored(config, target, &manifest)?, None)
            };
            drop(phase);
            output.report(&render::Verified {
                manifest: &manifest,
                deep: args.deep,
                problems: &problems,
                restore_ms,
            });
            if problems.is_empty() {
                Ok(exit::SUCCESS)
            } else {
                Err(Error::Failed(format!(
                    "snapshot {} failed verification:\n  {}",
                    manifest.id,
                    problems.join("\n  ")
                )))
            }
        }
        SnapshotCommand::Restore(args) => {
            let id = chosen_id(&args.id, config, target)?;
            let options = crate::rollback::RollbackOptions {
                snapshot: Some(id.clone()),
                restore: true,
                dry_run: args.dry_run,
                confirmation: if args.dry_run {
                    Default::default()
                } else {
                    global.confirm(target, "restore a snapshot")?
                },
                ..Default::default()
            };
            let phase = output.phase(&format!("restoring snapshot {id}"));
            let outcome = crate::rollback::rollback(config, target, &options, output)?;
            drop(phase);
            if args.dry_run {
                output.report(&outcome.plan);
            } else {
                output.report(&RollbackDone::Restore(&outcome, &id));
            }
            Ok(exit::SUCCESS)
        }
        SnapshotCommand::Prune(args) => {
            let keep_last = args.keep_last.or(config.snapshot.keep_last);
            let keep_days = args.keep_days.or(config.snapshot.keep_days);
            if keep_last.is_none() && keep_days.is_none() {
                return Err(Error::Usage(
                    "no retention policy: pass --keep-last N and/or --keep-days D, or set [snapshot] keep-last / keep-days".into(),
                ));
            }
            if !args.dry_run {
                preflight::guard_protected(target, global.confirm(target, "prune snapshots")?)?;
            }
            let newest_run_snapshot = newest_run_snapshot(target)?;
            let pruned = snapshot::prune(
                config,
                &target.name,
                keep_last,
                keep_days,
                newest_run_snapshot.as_deref(),
                args.dry_run,
            )?;
            output.report(&render::Pruned {
                deleted: &pruned.deleted,
                dry_run: args.dry_run,
                skipped: &pruned.skipped,
            });
            report_unusable(&pruned.skipped, output)
        }
    }
}

/// Reports the snapshot directories whose manifest cannot be used (never followed): the
/// command found problems (exit 1).
fn report_unusable(unusable: &[Unusable], output: &mut Output) -> Result<u8> {
    if unusable.is_empty() {
        return Ok(exit::SUCCESS);
    }
    output.report(&render::UnusableDirs(unusable));
    let lines: Vec<String> = unusable
        .iter()
        .map(|u| format!("{}: {}", u.dir.display(), u.problem))
        .collect();
    Err(Error::Failed(format!(
        "{} snapshot director(y/ies) left alone, never followed (inspect, then repair or delete by hand):\n  {}",
        unusable.len(),
        lines.join("\n  ")
    )))
}

/// The snapshot of the newest run that has one: never pruned.
fn newest_run_snapshot(target: &Target) -> Result<Option<String>> {
    let mut db = match Database::connect(&target.url, Create::Never) {
        Ok(db) => db,
        Err(_) => return Ok(None),
    };
    if !ledger::exists(&mut db)? {
        return Ok(None);
    }
    Ok(ledger::runs(&mut db, i64::MAX)?
        .into_iter()
        .find_map(|r| r.snapshot_id))
}
