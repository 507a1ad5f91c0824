//! The one reader of a migrations directory: every layout's files become the one
//! [`Migration`] model, and everything wrong or odd about the directory (a directory
//! without up.sql, stray files, an empty up file, two migrations with one version, a bad
//! metadata.toml, a file that is not UTF-8, a name the layout refuses) becomes a
//! [`ScanFinding`], as data. The engine ([`crate::migrations::MigrationSet::load`]) refuses
//! the directory on the first finding with a [`Problem::refusal`]; `cargo dbsafe check` turns
//! them into located findings.

use std::path::{Path, PathBuf};

use super::{Layout, history};
use crate::error::{Error, Result};
use crate::migrations::{Migration, version_cmp_in};

/// A migrations directory as read.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The layout it was read in.
    pub layout: Layout,
    /// The migrations directory.
    pub dir: PathBuf,
    /// Every migration, sorted by version (then name), also those a finding is about.
    pub migrations: Vec<Migration>,
    /// What is wrong or odd, in the order the directory was read.
    pub findings: Vec<ScanFinding>,
}

/// Something wrong or odd about one file or directory of a migrations directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFinding {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// The 1-based line in `path`, when it is about one.
    pub line: Option<usize>,
    /// What it is.
    pub problem: Problem,
}

/// What a [`ScanFinding`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A directory without up.sql (diesel refuses the whole migrations directory): the
    /// files it holds, to spot a typo.
    NoUpFile {
        /// The directory's files, sorted, hidden ones left out.
        files: Vec<String>,
    },
    /// A file the layout does not read (a README, a loose file, `up.sq`).
    StrayFile {
        /// Inside a migration's directory rather than at the top.
        in_migration: bool,
    },
    /// An up file that is empty or whitespace.
    EmptyUp,
    /// A second migration with the version of another.
    DuplicateVersion {
        /// The second migration's name.
        name: String,
        /// The version both have.
        version: String,
        /// The first one's name.
        other: String,
    },
    /// metadata.toml is not TOML (diesel then ignores the whole file).
    MetadataInvalid {
        /// The parser's message.
        message: String,
        /// The parser's whole report, with the excerpt.
        report: String,
    },
    /// metadata.toml's `run_in_transaction` is not a boolean.
    MetadataWrongType {
        /// The TOML type found (`string`, `integer`, ...).
        found: &'static str,
    },
    /// metadata.toml has no `run_in_transaction` (diesel reads that as false).
    MetadataNoKey,
    /// metadata.toml has a key diesel ignores.
    MetadataUnknownKey {
        /// The key.
        key: String,
    },
    /// Anything else the layout's tool refuses (a file that is not UTF-8, a name sqlx
    /// cannot read, ...): what is wrong, as the end of "PATH: ...".
    Refused(String),
}

impl Problem {
    /// Why the engine refuses to run any migration of the directory because of it, as the
    /// end of "PATH: ..." in `layout`; `None` when it is only worth a remark.
    pub fn refusal(&self, layout: Layout) -> Option<String> {
        Some(match self {
            Problem::StrayFile { .. } | Problem::MetadataNoKey | Problem::MetadataUnknownKey { .. } => {
                return None;
            }
            Problem::NoUpFile { .. } => "has no up.sql: name the file up.sql, or move the directory out of the migrations directory".to_owned(),
            Problem::EmptyUp if layout == Layout::Diesel => {
                "is empty: write the migration's SQL, or delete the directory".to_owned()
            }
            Problem::EmptyUp => "is empty: write the migration's SQL, or delete the file".to_owned(),
            Problem::DuplicateVersion { version, other, .. } => format!(
                "has the same version {version} as {other}: rename one so every version is unique"
            ),
            Problem::MetadataInvalid { report, .. } => format!("is not valid TOML: {report}"),
            Problem::MetadataWrongType { found } => format!(
                "run_in_transaction must be true or false, not {found}: diesel would ignore it and run the migration in a transaction"
            ),
            Problem::Refused(problem) => problem.clone(),
        })
    }
}

impl ScanFinding {
    /// Something the layout's tool refuses, at `path`.
    pub(super) fn refused(path: PathBuf, problem: String) -> ScanFinding {
        ScanFinding {
            path,
            line: None,
            problem: Problem::Refused(problem),
        }
    }
}

impl Scan {
    /// The engine's error for the first finding that refuses the directory, if any.
    pub fn refusal(&self) -> Option<Error> {
        self.findings.iter().find_map(|finding| {
            let problem = finding.problem.refusal(self.layout)?;
            Some(Error::BadMigration {
                path: finding.path.clone(),
                problem,
            })
        })
    }
}

/// Reads every migration under `dir` in `layout`. Only a missing or unreadable directory
/// (or a file that exists but cannot be read) is an error; everything else is a finding.
pub fn scan(layout: Layout, dir: &Path) -> Result<Scan> {
    let mut findings = Vec::new();
    let mut migrations = history(layout).read(dir, &mut findings)?;
    migrations
        .sort_by(|a, b| version_cmp_in(layout, &a.version, &b.version).then(a.name.cmp(&b.name)));
    for migration in &migrations {
        if migration.up_sql.trim().is_empty() {
            findings.push(ScanFinding {
                path: migration.up_path.clone(),
                line: None,
                problem: Problem::EmptyUp,
            });
        }
    }
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            findings.push(ScanFinding {
                path: if layout == Layout::Diesel {
                    pair[1].dir.clone()
                } else {
                    pair[1].up_path.clone()
                },
                line: None,
                problem: Problem::DuplicateVersion {
                    name: pair[1].name.clone(),
                    version: pair[1].version.clone(),
                    other: pair[0].name.clone(),
                },
            });
        }
    }
    Ok(Scan {
        layout,
        dir: dir.to_owned(),
        migrations,
        findings,
    })
}

/// One entry of a directory: its name and path, and whether it is a directory (following
/// a symbolic link).
pub(super) struct Entry {
    /// The file name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// The entries of the migrations directory `dir` not hidden (no leading `.`), sorted by
/// name. A missing or unreadable migrations directory is an error naming it.
pub(super) fn entries(dir: &Path) -> Result<Vec<Entry>> {
    list(dir).map_err(|e| Error::MigrationsDir {
        path: dir.to_owned(),
        problem: if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read ({e})")
        },
    })
}

/// The entries of `dir` not hidden (no leading `.`), sorted by name.
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_dir = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => path.is_dir(),
            Ok(kind) => kind.is_dir(),
            Err(_) => path.is_dir(),
        };
        entries.push(Entry { name, path, is_dir });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// A migration's file as text; `None` when it does not exist. A file that is not UTF-8
/// is a finding naming the offset of its first invalid byte (its text is then read lossily).
pub(super) fn read_text(path: &Path, findings: &mut Vec<ScanFinding>) -> Result<Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            findings.push(ScanFinding {
                path: path.to_owned(),
                line: Some(line),
                problem: Problem::Refused(format!(
                    "is not valid UTF-8: the first invalid byte is at byte offset {valid} (line {line}); save the file as UTF-8"
                )),
            });
            Ok(Some(String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::MigrationSet;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn problems(scan: &Scan) -> Vec<(String, Problem)> {
        scan.findings
            .iter()
            .map(|f| {
                let name = f
                    .path
                    .strip_prefix(&scan.dir)
                    .unwrap()
                    .display()
                    .to_string();
                (name, f.problem.clone())
            })
            .collect()
    }

    #[test]
    fn diesel_directory_findings_are_data() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("README.md"), b"# migrations");
        write(&root.join(".hidden"), b"");
        write(&root.join("1_a/up.sql"), b"CREATE TABLE a (id int);");
        write(&root.join("1_a/down.sql"), b"-- Not reversible\n");
        write(&root.join("1_a/notes.txt"), b"");
        write(&root.join("1_b/up.sql"), b"  \n");
        write(
            &root.join("1_b/metadata.toml"),
            b"run-in-transaction = false",
        );
        write(&root.join("2_typo/up.sq"), b"SELECT 1;");
        write(&root.join("3_bytes/up.sql"), b"SELECT 1;\n-- caf\xe9\n");
        let scan = scan(Layout::Diesel, root).unwrap();
        let names: Vec<&str> = scan.migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["1_a", "1_b", "3_bytes"]);
        let utf8 = "is not valid UTF-8: the first invalid byte is at byte offset 16 (line 2); save the file as UTF-8";
        assert_eq!(
            problems(&scan),
            vec![
                (
                    "1_a/notes.txt".into(),
                    Problem::StrayFile { in_migration: true }
                ),
                (
                    "1_b/metadata.toml".into(),
                    Problem::MetadataUnknownKey {
                        key: "run-in-transaction".into()
                    }
                ),
                ("1_b/metadata.toml".into(), Problem::MetadataNoKey),
                (
                    "2_typo".into(),
                    Problem::NoUpFile {
                        files: vec!["up.sq".into()]
                    }
                ),
                ("3_bytes/up.sql".into(), Problem::Refused(utf8.into())),
                (
                    "README.md".into(),
                    Problem::StrayFile {
                        in_migration: false
                    }
                ),
                ("1_b/up.sql".into(), Problem::EmptyUp),
                (
                    "1_b".into(),
                    Problem::DuplicateVersion {
                        name: "1_b".into(),
                        version: "1".into(),
                        other: "1_a".into()
                    }
                ),
            ]
        );
        assert_eq!(
            scan.migrations[0].missing_down(),
            Some(crate::migrations::MissingDown::CommentsOnly)
        );
        assert!(!scan.migrations[1].run_in_transaction);
        assert!(scan.migrations[1].metadata_warning.is_some());
        // The engine refuses the directory on the first finding that refuses it.
        let error = MigrationSet::load_as(Layout::Diesel, root)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("2_typo") && error.contains("has no up.sql"),
            "{error}"
        );
    }

    #[test]
    fn sqlx_and_sql_files_refusals_are_findings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("1_a.sql"), b"SELECT 1;");
        write(&root.join("x_b.sql"), b"SELECT 1;");
        write(&root.join("2_c.down.sql"), b"SELECT 1;");
        write(&root.join("notes.md"), b"");
        let scan = scan(Layout::Sqlx, root).unwrap();
        assert_eq!(scan.migrations.len(), 1);
        let refused: Vec<String> = problems(&scan).into_iter().map(|(name, _)| name).collect();
        assert_eq!(refused, ["x_b.sql", "2_c.down.sql"]);
        let error = MigrationSet::load_as(Layout::Sqlx, root)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a whole number"), "{error}");

        let plain = tempfile::tempdir().unwrap();
        write(&plain.path().join("0001_a.sql"), b"SELECT 1;");
        write(&plain.path().join("0001_b.sql"), b"SELECT 2;");
        write(&plain.path().join("b.sql"), b"SELECT 3;");
        let scan = super::scan(Layout::SqlFiles, plain.path()).unwrap();
        assert!(matches!(
            &problems(&scan)[..],
            [(no_prefix, Problem::Refused(_)), (twin, Problem::DuplicateVersion { .. })]
                if no_prefix == "b.sql" && twin == "0001_b.sql"
        ));
    }
}
