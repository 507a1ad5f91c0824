//! Which layout a project uses when dbsafe.toml does not say: from the migration files,
//! and from the workspace's dependencies (sqlx or diesel) read with `cargo metadata`.

use std::path::Path;

use super::Layout;

/// A detected layout and what gave it away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The layout.
    pub layout: Layout,
    /// What was found, e.g. `the workspace depends on sqlx and migrations/ holds .sql files`.
    pub reason: String,
}

/// What the migrations directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// `VERSION_NAME/up.sql` directories.
    DieselDirs,
    /// `.sql` files at the top.
    PlainFiles,
    /// Neither (missing or empty).
    Nothing,
}

fn found(dir: &Path) -> Found {
    let Ok(entries) = super::scan::list(dir) else {
        return Found::Nothing;
    };
    let mut found = Found::Nothing;
    for entry in entries {
        if entry.is_dir && entry.path.join("up.sql").is_file() {
            return Found::DieselDirs;
        }
        if !entry.is_dir && entry.name.ends_with(".sql") {
            found = Found::PlainFiles;
        }
    }
    found
}

/// Whether any package of the workspace at `root` depends on diesel, on sqlx.
fn dependencies(root: &Path) -> (bool, bool) {
    let manifest = root.join("Cargo.toml");
    if !manifest.is_file() {
        return (false, false);
    }
    let Ok(metadata) = cargo_metadata::MetadataCommand::new()
        .manifest_path(&manifest)
        .no_deps()
        .exec()
    else {
        return (false, false);
    };
    let uses = |name: &str| {
        metadata
            .workspace_packages()
            .iter()
            .any(|p| p.dependencies.iter().any(|d| d.name == name))
    };
    (uses("diesel"), uses("sqlx"))
}

/// The layout of the project at `root` whose migrations are in `dir`; an error that says
/// what was found and how to choose when the project does not tell.
pub fn detect(root: &Path, dir: &Path) -> Result<Detected, String> {
    let shown = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    let files = found(dir);
    let detected = |layout, reason: String| Ok(Detected { layout, reason });
    if files == Found::DieselDirs {
        return detected(
            Layout::Diesel,
            format!("{shown}/ holds diesel's VERSION_NAME/up.sql directories"),
        );
    }
    let (diesel, sqlx) = dependencies(root);
    match (files, diesel, sqlx) {
        (Found::PlainFiles, _, true) => detected(
            Layout::Sqlx,
            format!("the workspace depends on sqlx and {shown}/ holds .sql files"),
        ),
        (Found::PlainFiles, _, false) => detected(
            Layout::SqlFiles,
            format!("{shown}/ holds plain .sql files and the workspace does not depend on sqlx"),
        ),
        (_, true, true) => Err(format!(
            "the workspace depends on both diesel and sqlx and {shown}/ holds no migration yet: set `layout = \"diesel\"` or `layout = \"sqlx\"` in dbsafe.toml"
        )),
        (_, false, true) => detected(Layout::Sqlx, "the workspace depends on sqlx".to_owned()),
        (_, true, false) => detected(Layout::Diesel, "the workspace depends on diesel".to_owned()),
        _ => detected(
            Layout::Diesel,
            "nothing says otherwise (the default)".to_owned(),
        ),
    }
}
