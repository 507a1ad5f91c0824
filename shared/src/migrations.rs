//! The migration set on disk, one model for every layout (see [`crate::layout`]): diesel's
//! (`<version>_<name>/up.sql`, `down.sql`, optional `metadata.toml` and dbsafe's
//! `verify.sql`), sqlx's files, plain SQL files; with SHA-256 checksums.

use std::fmt;
use std::path::{Path, PathBuf};

use diesel::backend::Backend as DieselBackend;
use diesel::connection::BoxableConnection;
use diesel::migration::{self, MigrationMetadata, MigrationName, MigrationVersion};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::layout::Layout;

/// One migration directory.
#[derive(Debug, Clone)]
pub struct Migration {
    /// diesel's version: the directory name up to the first `_`, dashes removed.
    pub version: String,
    /// The directory name, e.g. `2024-01-01-000000_create_users`.
    pub name: String,
    /// The directory.
    pub dir: PathBuf,
    /// Contents of up.sql.
    pub up_sql: String,
    /// Contents of down.sql, when present and not blank (it may still hold only comments:
    /// [`Migration::missing_down`] says whether it can revert the migration).
    pub down_sql: Option<String>,
    /// Contents of verify.sql, when present.
    pub verify_sql: Option<String>,
    /// Whether diesel runs it in a transaction (metadata.toml).
    pub run_in_transaction: bool,
    /// A remark about metadata.toml worth showing (diesel reads a file without the key as "no transaction").
    pub metadata_warning: Option<String>,
    /// The line of metadata.toml's `run_in_transaction = false` (line 1 of the up file for
    /// the layouts that say so there), when the migration runs outside a transaction by
    /// request.
    pub no_transaction_line: Option<usize>,
    /// SHA-256 of up.sql, line endings normalised to LF.
    pub up_checksum: String,
    /// SHA-256 of down.sql, when present.
    pub down_checksum: Option<String>,
    /// The layout it was read in.
    pub layout: Layout,
    /// The up file (`up.sql` for diesel).
    pub up_path: PathBuf,
    /// The down file, or where it would be (`down.sql` for diesel).
    pub down_path: PathBuf,
    /// A forward-only migration (sqlx's simple `VERSION_NAME.sql`): no down by design.
    pub forward_only: bool,
    /// The description its layout's history table records (sqlx's).
    pub description: String,
    /// The checksum its layout's history table records (sqlx's SHA-384 of the up file).
    pub history_checksum: Vec<u8>,
    missing_down: Option<MissingDown>,
    diesel_name: DieselName,
}

/// What a layout read from disk for one migration ([`Migration::new`] makes the model).
#[derive(Debug, Clone)]
pub struct MigrationSource {
    /// The layout.
    pub layout: Layout,
    /// The version, as its history table writes it.
    pub version: String,
    /// Its name (directory name, or file name without `.sql`).
    pub name: String,
    /// The history table's description.
    pub description: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The up file.
    pub up_path: PathBuf,
    /// The down file, or where it would be.
    pub down_path: PathBuf,
    /// The up file's text.
    pub up_sql: String,
    /// The down file's text, when there is one.
    pub down: Option<String>,
    /// verify.sql's text, when present.
    pub verify_sql: Option<String>,
    /// Whether it runs in a transaction.
    pub run_in_transaction: bool,
    /// Forward only by design (no down expected).
    pub forward_only: bool,
    /// The history table's checksum.
    pub history_checksum: Vec<u8>,
}

/// The migrations of a directory, sorted by version.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    /// The migrations directory.
    pub dir: PathBuf,
    /// Sorted by version.
    pub migrations: Vec<Migration>,
}

/// SHA-256 (hex) of a file's text with line endings normalised to LF.
pub fn checksum(text: &str) -> String {
    let normalised = text.replace("\r\n", "\n");
    hex(&Sha256::digest(normalised.as_bytes()))
}

/// Bytes as lowercase hex (a checksum).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// Why a migration has no down.sql that can revert it. Everything that asks whether a
/// migration can be reverted (check, status, plan, rollback, the round trip) asks this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingDown {
    /// There is no down.sql.
    NoFile,
    /// down.sql is empty or whitespace.
    Empty,
    /// down.sql holds only comments (`-- Not reversible`).
    CommentsOnly,
    /// A forward-only migration (sqlx's simple `VERSION_NAME.sql`): no down by design.
    ForwardOnly,
}

impl MissingDown {
    /// What is wrong, as the end of "NAME has ...": `no down.sql`, `an empty down.sql`, ...
    pub fn describe(self) -> &'static str {
        match self {
            MissingDown::NoFile => "no down.sql",
            MissingDown::Empty => "an empty down.sql",
            MissingDown::CommentsOnly => "a down.sql of comments only, no SQL",
            MissingDown::ForwardOnly => {
                "no down: it is a forward-only migration (VERSION_NAME.sql; a reversible one is .up.sql + .down.sql)"
            }
        }
    }

    /// Why a down.sql text (`None`: no file) cannot revert a migration; `None` when it holds SQL.
    pub fn of(down: Option<&str>) -> Option<MissingDown> {
        match down {
            None => Some(MissingDown::NoFile),
            Some(text) if text.trim().is_empty() => Some(MissingDown::Empty),
            Some(text) if !holds_sql(text) => Some(MissingDown::CommentsOnly),
            Some(_) => None,
        }
    }
}

/// Whether `text` holds anything but whitespace, comments and empty statements.
pub fn holds_sql(text: &str) -> bool {
    // The dialect only matters for `#` comments and quotes, which a file of comments lacks.
    !crate::sql_text::split(text, crate::target::Backend::Postgres)
        .statements
        .is_empty()
}

/// diesel's setup migration (`diesel setup` adds it, after other migrations may exist): its
/// all-zero version sorts first by design, so it is never "out of order".
pub fn is_diesel_setup(name: &str) -> bool {
    version_of(name).bytes().all(|b| b == b'0') && name.contains("diesel_initial_setup")
}

/// diesel's version of a migration directory name.
pub fn version_of(dir_name: &str) -> String {
    dir_name
        .split('_')
        .next()
        .unwrap_or(dir_name)
        .replace('-', "")
}

impl MigrationSet {
    /// Reads every migration under `dir` in the project's layout ([`crate::layout::current`]).
    pub fn load(dir: &Path) -> Result<MigrationSet> {
        Self::load_as(crate::layout::current(), dir)
    }

    /// Reads every migration under `dir` in `layout` ([`crate::layout::scan`]), sorted by
    /// version (numerically where versions are numbers); the first finding that refuses
    /// the directory (a directory without up.sql, an empty up file, two migrations with one
    /// version, a file that is not UTF-8, a malformed metadata.toml, ...) is the error.
    pub fn load_as(layout: Layout, dir: &Path) -> Result<MigrationSet> {
        let scan = crate::layout::scan(layout, dir)?;
        if let Some(error) = scan.refusal() {
            return Err(error);
        }
        Ok(MigrationSet {
            dir: scan.dir,
            migrations: scan.migrations,
        })
    }
}

/// Two versions in the project's layout's order ([`crate::layout::current`]).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    version_cmp_in(crate::layout::current(), a, b)
}

/// Two versions in `layout`'s order: diesel's as text (as diesel sorts them), the others by
/// number when both are digits (sqlx's `9` before `10`), else as text.
pub(crate) fn version_cmp_in(layout: Layout, a: &str, b: &str) -> std::cmp::Ordering {
    let digits = |v: &str| v.bytes().all(|c| c.is_ascii_digit());
    if layout != Layout::Diesel && digits(a) && digits(b) {
        let (ta, tb) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(a.cmp(b))
    } else {
        a.cmp(b)
    }
}

impl MigrationSet {
    /// The migration with this version, written as digits (`20241024134209`), as in its
    /// directory name (`2024-10-24-134209`), or its whole directory name.
    pub fn get(&self, version: &str) -> Option<&Migration> {
        let digits = normalise_version(version);
        self.migrations
            .iter()
            .find(|m| m.name == version || digits.as_deref() == Some(m.version.as_str()))
    }
}

/// A version written as digits or as in a directory name (`2024-10-24-134209`), as digits;
/// `None` for text that is not a version.
pub fn normalise_version(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .then(|| text.replace('-', ""))
        .filter(|digits| !digits.is_empty())
}

impl Migration {
    /// The model of a migration a layout read.
    pub fn new(source: MigrationSource) -> Migration {
        let missing_down = if source.forward_only {
            Some(MissingDown::ForwardOnly)
        } else {
            MissingDown::of(source.down.as_deref())
        };
        let down_sql = source.down.filter(|s| !s.trim().is_empty());
        Migration {
            diesel_name: DieselName {
                version: source.version.clone(),
                name: source.name.clone(),
            },
            up_checksum: checksum(&source.up_sql),
            down_checksum: down_sql.as_deref().map(checksum),
            missing_down,
            version: source.version,
            name: source.name,
            dir: source.dir,
            up_sql: source.up_sql,
            down_sql,
            verify_sql: source.verify_sql,
            run_in_transaction: source.run_in_transaction,
            metadata_warning: None,
            no_transaction_line: (!source.run_in_transaction).then_some(1),
            layout: source.layout,
            up_path: source.up_path,
            down_path: source.down_path,
            forward_only: source.forward_only,
            description: source.description,
            history_checksum: source.history_checksum,
        }
    }

    /// Why this migration's down.sql cannot revert it; `None` when it holds SQL.
    pub fn missing_down(&self) -> Option<MissingDown> {
        self.missing_down
    }

    /// The down.sql that reverts this migration, when it holds SQL.
    pub fn revertible_down(&self) -> Option<&str> {
        self.down_sql
            .as_deref()
            .filter(|_| self.missing_down().is_none())
    }
}

#[derive(Debug, Clone)]
struct DieselName {
    version: String,
    name: String,
}

impl fmt::Display for DieselName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl MigrationName for DieselName {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(&self.version)
    }
}

struct Transactional(bool);

impl MigrationMetadata for Transactional {
    fn run_in_transaction(&self) -> bool {
        self.0
    }
}

const IN_TRANSACTION: Transactional = Transactional(true);
const NO_TRANSACTION: Transactional = Transactional(false);

impl<DB: DieselBackend> diesel::migration::Migration<DB> for Migration {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> migration::Result<()> {
        conn.batch_execute(&self.up_sql)?;
        Ok(())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> migration::Result<()> {
        match (self.revertible_down(), self.missing_down()) {
            (Some(sql), _) => Ok(conn.batch_execute(sql)?),
            (None, missing) => Err(format!(
                "{} has {}",
                self.name,
                missing.unwrap_or(MissingDown::NoFile).describe()
            )
            .into()),
        }
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        if self.run_in_transaction {
            &IN_TRANSACTION
        } else {
            &NO_TRANSACTION
        }
    }

    fn name(&self) -> &dyn MigrationName {
        &self.diesel_name
    }
}

/// A migration run inside a transaction its caller already holds: `prelude` (the
/// migration's session settings) goes to the server in the same batch as up.sql, and diesel
/// opens no nested transaction (savepoint) of its own. Saves three round trips a migration.
pub struct InOpenTransaction<'a> {
    migration: &'a Migration,
    prelude: String,
}

impl InOpenTransaction<'_> {
    /// The migration.
    pub fn migration(&self) -> &Migration {
        self.migration
    }
}

impl Migration {
    /// This migration, to run inside the caller's transaction after `prelude`.
    pub fn in_open_transaction(&self, prelude: String) -> InOpenTransaction<'_> {
        InOpenTransaction {
            migration: self,
            prelude,
        }
    }
}

impl<DB: DieselBackend> diesel::migration::Migration<DB> for InOpenTransaction<'_> {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> migration::Result<()> {
        conn.batch_execute(&format!("{};\n{}", self.prelude, self.migration.up_sql))?;
        Ok(())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> migration::Result<()> {
        diesel::migration::Migration::<DB>::revert(self.migration, conn)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        &NO_TRANSACTION
    }

    fn name(&self) -> &dyn MigrationName {
        &self.migration.diesel_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_ignore_line_endings() {
        assert_eq!(checksum("a\r\nb\n"), checksum("a\nb\n"));
        assert_ne!(checksum("a\nb\n"), checksum("a\nc\n"));
    }

    #[test]
    fn versions_follow_diesel() {
        assert_eq!(
            version_of("2024-01-01-000000_create_users"),
            "20240101000000"
        );
        assert_eq!(version_of("00001_x_y"), "00001");
    }

    #[test]
    fn missing_down_has_one_meaning() {
        assert_eq!(MissingDown::of(None), Some(MissingDown::NoFile));
        assert_eq!(MissingDown::of(Some(" \n\t")), Some(MissingDown::Empty));
        for comments in ["-- Not reversible\n", "/* no */ ;\n", "-- a\n-- b\n"] {
            assert_eq!(
                MissingDown::of(Some(comments)),
                Some(MissingDown::CommentsOnly),
                "{comments}"
            );
        }
        assert_eq!(MissingDown::of(Some("-- undo\nDROP TABLE t;")), None);
    }

    #[test]
    fn versions_in_either_form() {
        assert_eq!(
            normalise_version("2024-10-24-134209").as_deref(),
            Some("20241024134209")
        );
        assert_eq!(
            normalise_version("20241024134209").as_deref(),
            Some("20241024134209")
        );
        assert_eq!(normalise_version("2024_x"), None);
        assert_eq!(normalise_version("-"), None);
        assert!(is_diesel_setup("00000000000000_diesel_initial_setup"));
        assert!(!is_diesel_setup("2024-01-01-000000_diesel_initial_setup"));
    }

    #[test]
    fn versions_order_by_number_outside_diesel() {
        use std::cmp::Ordering::{Greater, Less};
        assert_eq!(version_cmp_in(Layout::Sqlx, "9", "10"), Less);
        assert_eq!(version_cmp_in(Layout::SqlFiles, "0010", "9"), Greater);
        assert_eq!(version_cmp_in(Layout::Diesel, "9", "10"), Greater);
        assert_eq!(version_cmp_in(Layout::Sqlx, "x", "y"), Less);
    }
}
