//! Captures the git commit this build comes from for `--version` (`0.1.0 (1a2b3c4d5e6f
//! 2026-11-30)`); outside a git checkout (a published crate, a tarball) or without git, the
//! version is just the package's.

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let long = match git(&dir, &["log", "-1", "--format=%h %cs", "--abbrev=12"]) {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=DBSAFE_LONG_VERSION={long}");
    // Rebuild when HEAD moves (a commit, a checkout), not on every file change.
    for name in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", name]) {
            rerun_if_changed(&dir, &path);
        }
    }
    if let Some(head_ref) = git(&dir, &["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&dir, &["rev-parse", "--git-path", &head_ref])
    {
        rerun_if_changed(&dir, &path);
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// One line of a git command's output run in `dir`, or None when git is missing or fails.
fn git(dir: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let line = text.trim();
    (output.status.success() && !line.is_empty()).then(|| line.to_owned())
}

fn rerun_if_changed(dir: &str, path: &str) {
    let path = Path::new(dir).join(path);
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
