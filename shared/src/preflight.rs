//! Checks made before apply touches anything: protection, server activity (PostgreSQL),
//! dirty steps, edited migrations, applied versions missing from disk.

use std::collections::BTreeSet;

use crate::config::ApplyConfig;
use crate::connection::Database;
use crate::error::{Error, Result};
use crate::ledger::{self, StepRow};
use crate::migrations::MigrationSet;
use crate::run::StepStatus;
use crate::target::Target;

/// How the operator chose and confirmed the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// The target was named with `--target` (not picked by default).
    pub explicit_target: bool,
    /// The operator confirmed: `--yes`, or answered the prompt.
    pub confirmed: bool,
}

/// A protected target is touched only when named explicitly and confirmed.
pub fn guard_protected(target: &Target, how: Confirmation) -> Result<()> {
    if !target.protected {
        return Ok(());
    }
    if !how.explicit_target {
        return Err(crate::error::Reason::ProtectedTarget.refuse(format!(
            "target `{}` is protected ({}): name it explicitly with --target {}",
            target.name, target.environment, target.name
        )));
    }
    if !how.confirmed {
        return Err(crate::error::Reason::ProtectedTarget.refuse(format!(
            "target `{}` is protected ({}): confirm with --yes (no terminal to ask on)",
            target.name, target.environment
        )));
    }
    Ok(())
}

/// Checks the answer typed at the confirmation prompt of a protected target (`None`: end
/// of input, Ctrl-D): only the target's exact name confirms; anything else refuses at once
/// (exit 3), saying what was typed.
pub fn check_answer(target: &Target, answer: Option<&str>) -> Result<()> {
    let Some(answer) = answer.map(str::trim) else {
        return Err(crate::error::Reason::ProtectedTarget.refuse(format!(
            "no answer (end of input): target `{}` is protected ({}), nothing touched",
            target.name, target.environment
        )));
    };
    if answer == target.name {
        return Ok(());
    }
    Err(crate::error::Reason::ProtectedTarget.refuse(format!(
        "you typed \"{}\", the target is `{}`: not confirmed, nothing touched. Type the target's name exactly, or pass --yes",
        answer.escape_debug(),
        target.name
    )))
}

/// Where the backend can tell (PostgreSQL): refuse when transactions older than
/// `max-transaction-age` are open (a migration's lock would queue behind them and block
/// everyone) or when more than `max-connections` sessions are connected.
pub fn server_activity(db: &mut Database, config: &ApplyConfig) -> Result<()> {
    let dialect = db.dialect();
    if let Some(age) = config.max_transaction_age
        && let Some(sql) = dialect.old_transactions_sql(age)
    {
        let old = db
            .texts(&sql)
            .map_err(|e| Error::db("reading pg_stat_activity", e))?;
        if !old.is_empty() {
            return Err(crate::error::Reason::ServerBusy.refuse(format!(
                "transactions older than max-transaction-age ({}s) are open: {}. A migration's lock would wait behind them and block other queries; let them finish or end them (pg_terminate_backend), then apply again",
                age.as_secs(),
                old.join(", ")
            )));
        }
    }
    if let Some(max) = config.max_connections
        && let Some(sql) = dialect.client_connections_sql()
    {
        let count = db
            .integer(sql)
            .map_err(|e| Error::db("reading pg_stat_activity", e))?;
        if count > i64::from(max) {
            return Err(crate::error::Reason::ServerBusy.refuse(format!(
                "{count} client connections are open, more than max-connections ({max}): apply when the load is lower, or raise [apply] max-connections"
            )));
        }
    }
    Ok(())
}

/// What the ledger says about the migrations on disk.
#[derive(Debug, Clone, Default)]
pub struct LedgerFindings {
    /// Steps left `started`: the target is dirty.
    pub dirty: Vec<StepRow>,
    /// Applied migrations whose up.sql changed since: (version, file, recorded, now).
    pub changed: Vec<(String, String, String, String)>,
    /// Versions diesel says are applied that have no directory on disk.
    pub missing_from_disk: Vec<String>,
}

/// Reads the ledger and diesel's table against the migrations on disk.
pub fn ledger_findings(
    db: &mut Database,
    set: &MigrationSet,
    applied: &[String],
) -> Result<LedgerFindings> {
    let mut findings = LedgerFindings::default();
    if ledger::exists(db)? {
        findings.dirty = ledger::dirty_steps(db)?;
        let applied: BTreeSet<&String> = applied.iter().collect();
        for (version, step) in ledger::latest_steps(db)? {
            let Some(migration) = set.get(&version) else {
                continue;
            };
            if step.status == StepStatus::Applied
                && applied.contains(&version)
                && step.up_checksum != migration.up_checksum
            {
                findings.changed.push((
                    version,
                    migration.up_path.display().to_string(),
                    step.up_checksum,
                    migration.up_checksum.clone(),
                ));
            }
        }
    }
    ledger::layout_dirty_steps(db, &mut findings.dirty)?;
    for edited in crate::layout::edited(db, set)? {
        if !findings.changed.iter().any(|c| c.0 == edited.0) {
            findings.changed.push(edited);
        }
    }
    findings.missing_from_disk = applied
        .iter()
        .filter(|v| set.get(v).is_none())
        .cloned()
        .collect();
    Ok(findings)
}

impl LedgerFindings {
    /// Refuses a dirty target or an edited applied migration.
    pub fn refuse_unsafe(&self) -> Result<()> {
        if let Some(step) = self.dirty.first() {
            return Err(crate::error::Reason::DirtyTarget.refuse(dirty_message(step)));
        }
        if !self.changed.is_empty() {
            let files: Vec<String> = self
                .changed
                .iter()
                .map(|(version, file, recorded, now)| {
                    format!(
                        "  {file} (version {version}): applied with {} {}…, now {}…",
                        if recorded.len() == 96 {
                            "sha384"
                        } else {
                            "sha256"
                        },
                        &recorded[..12],
                        &now[..12]
                    )
                })
                .collect();
            return Err(crate::error::Reason::EditedMigration.refuse(format!(
                "migrations already applied by dbsafe were edited since:\n{}\n  The database ran the old text. Restore the file (git checkout -- FILE) and put the change in a new migration.",
                files.join("\n")
            )));
        }
        Ok(())
    }
}

/// How a dirty step is explained: which migration, which run, and what to do.
pub fn dirty_message(step: &StepRow) -> String {
    format!(
        "the target is dirty: migration {} (run {}) started without a transaction and never finished{}.\n  \
         Part of it may have run. Inspect the database, finish or undo the migration by hand, then record what you did:\n  \
         cargo dbsafe resolve {} --as applied   (or --as reverted)",
        step.name,
        step.run_id,
        step.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        step.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;
    use crate::target::DatabaseUrl;

    #[test]
    fn only_the_exact_name_confirms_and_end_of_input_refuses() {
        let target = Target {
            name: "prod".into(),
            environment: Environment::Production,
            protected: true,
            url: DatabaseUrl::parse("sqlite://prod.db", std::path::Path::new("/")).unwrap(),
        };
        assert!(check_answer(&target, Some("prod\n")).is_ok());
        let eof = check_answer(&target, None).unwrap_err();
        assert_eq!(crate::cli::exit::code_of(&eof), 3);
        assert!(eof.to_string().contains("end of input"), "{eof}");
        let wrong = check_answer(&target, Some("staging\n")).unwrap_err();
        assert_eq!(crate::cli::exit::code_of(&wrong), 3);
        assert!(
            wrong
                .to_string()
                .contains("you typed \"staging\", the target is `prod`"),
            "{wrong}"
        );
        assert!(!wrong.to_string().contains("no terminal"), "{wrong}");
        assert!(check_answer(&target, Some("")).is_err());
    }
}
