//! `cargo dbsafe snapshot create|list|verify|prune`.

use clap::{Args, Subcommand};

use super::{GlobalArgs, Output, exit};
use crate::config::{Config, SnapshotStrategy};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::ledger;
use crate::preflight;
use crate::snapshot::{self, Manifest, SnapshotStore, Unusable};
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
            crate::run::validate_id(id, "snapshot id").map(drop)
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

fn bytes(manifest: &Manifest) -> u64 {
    manifest.files.iter().map(|f| f.size).sum()
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
            if output.is_json() {
                output.json_typed("snapshot", &manifest);
            } else {
                output.data(&format!(
                    "snapshot {} of {} ({}, {} in {} file(s), {} table(s), {} ms)\n  path: {}",
                    manifest.id,
                    manifest.target,
                    manifest.strategy,
                    indicatif::HumanBytes(bytes(&manifest)),
                    manifest.files.len(),
                    manifest.tables.len(),
                    manifest.duration_ms,
                    SnapshotStore::new(config).path(&manifest.id)?.display()
                ));
            }
            Ok(exit::SUCCESS)
        }
        SnapshotCommand::List => {
            let listing = SnapshotStore::new(config).list()?;
            let all: Vec<&Manifest> = listing
                .manifests
                .iter()
                .filter(|m| m.target == target.name)
                .rev()
                .collect();
            if output.is_json() {
                all.iter().for_each(|m| output.json_typed("snapshot", m));
            } else if all.is_empty() {
                output.data(&format!(
                    "no snapshots of target {} in {}",
                    target.name,
                    config.snapshot_dir.display()
                ));
            } else {
                let lines: Vec<String> = all
                    .iter()
                    .map(|m| {
                        format!(
                            "  {}  {:<13} {}  {:>10}  {} migration(s){}",
                            m.id,
                            m.strategy,
                            m.created_at,
                            indicatif::HumanBytes(bytes(m)).to_string(),
                            m.applied_migrations.len(),
                            m.run_id
                                .as_deref()
                                .map(|r| format!("  before run {r}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                output.data(&lines.join("\n"));
            }
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
            if output.is_json() {
                output.json(&serde_json::json!({
                    "type": "snapshot.verified", "snapshot_id": manifest.id, "ok": problems.is_empty(),
                    "deep": args.deep, "problems": problems, "restore_ms": restore_ms,
                }));
            } else if problems.is_empty() {
                let how = match restore_ms {
                    Some(ms) => format!(
                        "restored into a scratch database in {ms} ms; schema and every table's data match the manifest"
                    ),
                    None => format!("{} file(s) match their SHA-256", manifest.files.len()),
                };
                output.data(&format!("snapshot {} ok: {how}", manifest.id));
            }
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
                if output.is_json() {
                    output.json_typed("rollback.plan", &outcome.plan);
                } else {
                    output.data(&super::dbrollback_cmd::describe(&outcome.plan));
                }
            } else if !output.is_json() {
                output.note(&format!(
                    "restore run {}: restored snapshot {} (the state before is in safety snapshot {})",
                    outcome.run_id,
                    id,
                    outcome.safety_snapshot.as_deref().unwrap_or("?")
                ));
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
            let deleted = &pruned.deleted;
            if output.is_json() {
                output.json(&serde_json::json!({"type": "snapshot.pruned", "deleted": deleted, "dry_run": args.dry_run, "skipped": pruned.skipped}));
            } else {
                let verb = if args.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                output.data(&format!(
                    "{verb} {} snapshot(s){}",
                    deleted.len(),
                    if deleted.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", deleted.join(", "))
                    }
                ));
            }
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
    if output.is_json() {
        unusable
            .iter()
            .for_each(|u| output.json_typed("snapshot.unusable", u));
    }
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
