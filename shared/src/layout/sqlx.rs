//! sqlx's layout: `VERSION_DESCRIPTION.sql` (forward only) or `VERSION_DESCRIPTION.up.sql`
//! with `.down.sql`, `-- no-transaction` first line, recorded in `_sqlx_migrations` with
//! exactly the DDL and row contents sqlx 0.8 writes (checksum: SHA-384 of the file's text).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use diesel::QueryResult;
use diesel::connection::SimpleConnection;
use sha2::{Digest, Sha384};

use super::scan::{self, ScanFinding};
use super::{History, Layout, backend_of};
use crate::connection::{AnyConnection, Database};
use crate::error::{Error, Result};
use crate::migrations::{Migration, MigrationSource};
use crate::target::Backend;

pub(super) struct Sqlx;

/// sqlx's table.
pub const TABLE: &str = "_sqlx_migrations";

/// The files of `dir` ending in `.sql`, sorted by name (hidden ones skipped).
pub(super) fn sql_files_in(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(scan::entries(dir)?
        .into_iter()
        .filter(|entry| entry.name.ends_with(".sql") && !entry.is_dir && entry.path.is_file())
        .map(|entry| (entry.name, entry.path))
        .collect())
}

#[derive(Default)]
struct Pair {
    up: Option<(PathBuf, String, bool)>,
    down: Option<String>,
    description: String,
}

/// A file name as sqlx reads it: version, description (`_` as spaces), kind (`up`,
/// `down` or `simple`); `None` for a name sqlx ignores.
fn parse_name(name: &str) -> Option<(&str, String, &'static str)> {
    let (version, rest) = name.split_once('_')?;
    let (kind, suffix) = if rest.ends_with(".up.sql") {
        ("up", ".up.sql")
    } else if rest.ends_with(".down.sql") {
        ("down", ".down.sql")
    } else if rest.ends_with(".sql") {
        ("simple", ".sql")
    } else {
        return None;
    };
    Some((
        version,
        rest.trim_end_matches(suffix).replace('_', " "),
        kind,
    ))
}

impl History for Sqlx {
    fn read(&self, dir: &Path, findings: &mut Vec<ScanFinding>) -> Result<Vec<Migration>> {
        let mut pairs: BTreeMap<i64, Pair> = BTreeMap::new();
        for (name, path) in sql_files_in(dir)? {
            let Some((version, description, kind)) = parse_name(&name) else {
                continue;
            };
            let Ok(number) = version.parse::<i64>() else {
                findings.push(ScanFinding::refused(path, format!("has the version `{version}`, which is not a whole number: sqlx refuses it too; name it VERSION_DESCRIPTION.sql")));
                continue;
            };
            let text = scan::read_text(&path, findings)?.unwrap_or_default();
            let pair = pairs.entry(number).or_default();
            let duplicate = match kind {
                "down" => pair.down.replace(text).is_some(),
                _ => pair
                    .up
                    .replace((path.clone(), text, kind == "simple"))
                    .is_some(),
            };
            if duplicate {
                findings.push(ScanFinding::refused(path, format!(
                    "has the same version {number} as another migration: rename one so every version is unique"
                )));
            }
            if kind != "down" || pair.description.is_empty() {
                pair.description = description;
            }
        }
        Ok(pairs
            .into_iter()
            .filter_map(|(version, pair)| migration(dir, version, pair, findings))
            .collect())
    }

    fn ensure(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        let dialect = backend_of(conn).dialect();
        let (time, blob) = (dialect.created_at_column(), dialect.bytes_type());
        conn.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (\n    version BIGINT PRIMARY KEY,\n    description TEXT NOT NULL,\n    installed_on {time},\n    success BOOLEAN NOT NULL,\n    checksum {blob} NOT NULL,\n    execution_time BIGINT NOT NULL\n);"
        ))
    }

    fn applied(&self, db: &mut Database) -> Result<Vec<String>> {
        self.versions(db, "success = true")
    }

    fn dirty(&self, db: &mut Database) -> Result<Vec<String>> {
        self.versions(db, "success = false")
    }

    fn checksums(&self, db: &mut Database) -> Result<Vec<(String, String)>> {
        let dialect = db.dialect();
        let text = dialect.text_type();
        let version = format!("CAST(version AS {text})");
        let pair = dialect.concat(&[&version, "'|'", &dialect.hex_of("checksum")]);
        let pair = format!("CAST({pair} AS {text})");
        Ok(self
            .select(db, &format!("{pair} AS v"), "success = true")?
            .into_iter()
            .filter_map(|row| {
                let (version, checksum) = row.split_once('|')?;
                Some((version.to_owned(), checksum.to_owned()))
            })
            .collect())
    }

    fn record_up(&self, conn: &mut AnyConnection, m: &Migration, ns: i64) -> QueryResult<()> {
        use diesel::RunQueryDsl;
        let backend = backend_of(conn);
        // sqlx's MySQL steps insert the row with success = FALSE before the SQL runs; a
        // resolved dirty row is there too.
        let updated = diesel::sql_query(format!(
            "UPDATE {TABLE} SET success = TRUE, execution_time = {ns} WHERE version = {}",
            m.version
        ))
        .execute(conn)?;
        if updated > 0 {
            return Ok(());
        }
        conn.batch_execute(&format!(
            "INSERT INTO {TABLE} ( version, description, success, checksum, execution_time ) VALUES ( {}, {}, TRUE, {}, {ns} )",
            m.version,
            text_literal(backend, &m.description),
            bytes_literal(backend, &m.history_checksum)
        ))
    }

    fn record_down(&self, conn: &mut AnyConnection, version: &str) -> QueryResult<()> {
        let version: i64 = version.parse().unwrap_or(-1);
        conn.batch_execute(&format!("DELETE FROM {TABLE} WHERE version = {version}"))
    }

    fn mark_dirty(&self, conn: &mut AnyConnection, m: &Migration, up: bool) -> QueryResult<()> {
        // Where DDL commits as it goes (MySQL), sqlx writes the row `success = FALSE` first.
        let backend = backend_of(conn);
        if backend.dialect().transactional_ddl() {
            return Ok(());
        }
        match up {
            true => conn.batch_execute(&format!(
                "INSERT INTO {TABLE} ( version, description, success, checksum, execution_time ) VALUES ( {}, {}, FALSE, {}, -1 )",
                m.version,
                text_literal(backend, &m.description),
                bytes_literal(backend, &m.history_checksum)
            )),
            false => conn.batch_execute(&format!(
                "UPDATE {TABLE} SET success = FALSE WHERE version = {}",
                m.version
            )),
        }
    }
}

impl Sqlx {
    fn versions(&self, db: &mut Database, condition: &str) -> Result<Vec<String>> {
        let text = db.dialect().text_type();
        self.select(db, &format!("CAST(version AS {text}) AS v"), condition)
    }

    /// One text column `v` of `_sqlx_migrations`'s rows matching `condition`, by version;
    /// empty when the table does not exist.
    fn select(&self, db: &mut Database, column: &str, condition: &str) -> Result<Vec<String>> {
        if !db
            .table_exists(TABLE)
            .map_err(|e| Error::db("reading _sqlx_migrations", e))?
        {
            return Ok(Vec::new());
        }
        db.texts(&format!(
            "SELECT {column} FROM {TABLE} WHERE {condition} ORDER BY version"
        ))
        .map_err(|e| Error::db("reading _sqlx_migrations", e))
    }
}

/// The migration of one version; `None` (and a finding) for a .down.sql without its up.
fn migration(
    dir: &Path,
    version: i64,
    pair: Pair,
    findings: &mut Vec<ScanFinding>,
) -> Option<Migration> {
    let Some((up_path, up_sql, simple)) = pair.up else {
        findings.push(ScanFinding::refused(
            dir.join(format!(
                "{version}_{}.down.sql",
                pair.description.replace(' ', "_")
            )),
            "has no .up.sql twin: sqlx needs both halves of a reversible migration".into(),
        ));
        return None;
    };
    if simple && pair.down.is_some() {
        findings.push(ScanFinding::refused(
            up_path.clone(),
            "is a simple migration but has a .down.sql: rename it NAME.up.sql so sqlx reads the pair as reversible".into(),
        ));
    }
    let file_name = up_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file_name
        .trim_end_matches(".sql")
        .trim_end_matches(".up")
        .to_owned();
    let down_path = dir.join(format!("{name}.down.sql"));
    Some(Migration::new(MigrationSource {
        layout: Layout::Sqlx,
        version: version.to_string(),
        name,
        description: pair.description,
        dir: dir.to_owned(),
        run_in_transaction: !up_sql.starts_with("-- no-transaction"),
        history_checksum: Sha384::digest(up_sql.as_bytes()).to_vec(),
        up_path,
        down_path,
        up_sql,
        down: pair.down,
        verify_sql: None,
        forward_only: simple,
    }))
}

fn text_literal(backend: Backend, text: &str) -> String {
    backend.dialect().literal(text)
}

fn bytes_literal(backend: Backend, bytes: &[u8]) -> String {
    backend.dialect().bytes_literal(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_sqlx_reads_them() {
        assert_eq!(
            parse_name("20240101000000_create_users.up.sql"),
            Some(("20240101000000", "create users".to_owned(), "up"))
        );
        assert_eq!(
            parse_name("1_a_b.sql"),
            Some(("1", "a b".to_owned(), "simple"))
        );
        assert_eq!(parse_name("2_x.down.sql").map(|p| p.2), Some("down"));
        assert_eq!(parse_name("README.md"), None);
    }
}
