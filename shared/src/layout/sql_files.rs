//! Plain SQL directories: `0008_create_webhook_events.sql` files ordered by their numeric
//! or timestamp prefix, optional down twins (`down/NAME.sql` or `NAME.down.sql`),
//! `-- dbsafe:no-transaction` on the first line for statements that cannot run in a
//! transaction. No third-party table: dbsafe's `dbsafe_steps` is the history.

use std::path::Path;

use diesel::QueryResult;

use super::scan::{self, ScanFinding};
use super::{History, Layout};
use crate::connection::{AnyConnection, Database};
use crate::error::Result;
use crate::ledger;
use crate::migrations::{Migration, MigrationSource};
use crate::run::StepStatus;

pub(super) struct SqlFiles;

/// The first line that runs a file without a transaction.
pub const NO_TRANSACTION: &str = "-- dbsafe:no-transaction";

impl History for SqlFiles {
    fn read(&self, dir: &Path, findings: &mut Vec<ScanFinding>) -> Result<Vec<Migration>> {
        let mut migrations = Vec::new();
        for (name, path) in super::sqlx::sql_files_in(dir)? {
            let Some(stem) = name.strip_suffix(".sql") else {
                continue;
            };
            if stem.ends_with(".down") {
                continue;
            }
            let digits: String = stem.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                findings.push(ScanFinding::refused(path, "has no numeric or timestamp prefix (like `0008_name.sql`): rename it so dbsafe knows its place in the order, or move it out of the migrations directory".into()));
                continue;
            }
            let up_sql = scan::read_text(&path, findings)?.unwrap_or_default();
            let twin = dir.join(format!("{stem}.down.sql"));
            let in_down_dir = dir.join("down").join(&name);
            let (down, down_path) = match scan::read_text(&in_down_dir, findings)? {
                Some(text) => (Some(text), in_down_dir),
                None => (scan::read_text(&twin, findings)?, twin),
            };
            let run_in_transaction = !up_sql.trim_start().starts_with(NO_TRANSACTION);
            migrations.push(Migration::new(MigrationSource {
                layout: Layout::SqlFiles,
                version: digits,
                name: stem.to_owned(),
                description: stem.to_owned(),
                dir: dir.to_owned(),
                up_path: path,
                down_path,
                up_sql,
                down,
                verify_sql: None,
                run_in_transaction,
                forward_only: false,
                history_checksum: Vec::new(),
            }));
        }
        Ok(migrations)
    }

    fn ensure(&self, _conn: &mut AnyConnection) -> QueryResult<()> {
        Ok(())
    }

    /// The versions whose newest step (of a run not rewound by a restore) applied them.
    fn applied(&self, db: &mut Database) -> Result<Vec<String>> {
        if !ledger::exists(db)? {
            return Ok(Vec::new());
        }
        Ok(ledger::latest_steps(db)?
            .into_iter()
            .filter(|(_, step)| step.status == StepStatus::Applied)
            .map(|(version, _)| version)
            .collect())
    }

    fn record_up(&self, _conn: &mut AnyConnection, _m: &Migration, _ns: i64) -> QueryResult<()> {
        Ok(())
    }

    fn record_down(&self, _conn: &mut AnyConnection, _version: &str) -> QueryResult<()> {
        Ok(())
    }

    fn record_sql(&self, _: crate::target::Backend, _: &Migration, _: bool) -> Option<String> {
        Some(String::new())
    }
}
