//! The README's set-up, as a new user meets it: its first command (scripts/install.sh) run in
//! a clean copy of the repository with an empty HOME and CARGO_HOME, its quickstart commands
//! as written, the apt packages it names against the install script's and docs/ci.md's, and
//! docs/ci.md's workflow through actionlint.
//!
//! The install test copies the binaries already built (`DBSAFE_INSTALL_PREBUILT`) instead of
//! running `cargo install`: every other step of the script runs for real, and a release build
//! on CI's 2 cores would take most of its time budget.

use std::path::{Path, PathBuf};
use std::process::Command;

use dbsafe_tests::{binary, run};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative)).expect(relative)
}

/// The text of the `## TITLE` section of a markdown file, up to the next `## `.
fn section<'a>(markdown: &'a str, title: &str) -> &'a str {
    let start = markdown
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no `## {title}` section"));
    let rest = &markdown[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The code blocks of a markdown text whose fence names `lang`.
fn code_blocks(text: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(fence)) if fence.trim() == lang => current = Some(String::new()),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The command lines of a shell block, comments stripped.
fn commands(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The directory holding the built binaries (target/debug).
fn built_binaries() -> PathBuf {
    binary("cargo-dbsafe")
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// The directory of the cargo that runs the tests, for `cargo dbsafe` to work in a clean PATH.
fn cargo_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let cargo = if cargo.is_absolute() {
        cargo
    } else {
        let out = Command::new("sh")
            .args(["-c", "command -v cargo"])
            .output()
            .expect("sh");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    cargo.parent().expect("cargo's directory").to_path_buf()
}

/// A shell command in `dir` with a clean environment: HOME and CARGO_HOME empty, PATH only
/// the system's and cargo's (and `extra_path` first), CI set, no terminal.
fn clean_shell(dir: &Path, home: &Path, extra_path: Option<&Path>, script: &str) -> Command {
    let mut path = format!("{}:/usr/local/bin:/usr/bin:/bin", cargo_dir().display());
    if let Some(extra) = extra_path {
        path = format!("{}:{path}", extra.display());
    }
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env_clear()
        .env("HOME", home)
        .env("CARGO_HOME", home.join(".cargo"))
        .env("PATH", path)
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .env("DBSAFE_OPERATOR", "tester")
        .stdin(std::process::Stdio::null());
    // The toolchain of the cargo found on PATH (a rustup proxy needs its home).
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".rustup")));
    if let Some(rustup_home) = rustup_home {
        cmd.env("RUSTUP_HOME", rustup_home);
    }
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        cmd.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    cmd
}

/// A copy of the repository's tracked files (what a fresh clone has: no target/, no .dbsafe/).
fn clean_clone(into: &Path) {
    let root = repo_root();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let relative = Path::new(std::str::from_utf8(file).expect("utf-8 path"));
        let from = root.join(relative);
        if !from.is_file() {
            continue;
        }
        let to = into.join(relative);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
    }
}

#[test]
fn readme_install_command_sets_up_everything_in_a_clean_clone() {
    let readme = read("README.md");
    let install = section(&readme, "Install");
    let blocks = code_blocks(install, "sh");
    let first = commands(&blocks[0]);
    assert_eq!(first.len(), 1, "the README's first block is one command");
    assert!(first[0].starts_with("scripts/install.sh"), "{first:?}");
    let second = commands(&blocks[1]);
    assert_eq!(second, ["scripts/test.sh"]);
    // The second command is what CI runs (.ci/run's last step).
    assert!(read(".ci/run").contains("\nscripts/test.sh </dev/null\n"));

    let tmp = tempfile::tempdir().expect("tempdir");
    let clone = tmp.path().join("dbsafe");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    clean_clone(&clone);
    assert!(!clone.join("target").exists());
    let mut cmd = clean_shell(&clone, &home, None, &first[0]);
    cmd.env("DBSAFE_INSTALL_PREBUILT", built_binaries())
        .env("TMPDIR", tmp.path());
    let out = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");

    let bin = home.join(".cargo/bin");
    for name in ["cargo-dbsafe", "cargo-dbverify", "cargo-dbrollback"] {
        assert!(bin.join(name).is_file(), "{name} not installed in {bin:?}");
    }
    assert!(out.stderr.contains("is not on PATH"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("installed: cargo dbsafe, cargo dbverify, cargo dbrollback"),
        "{}",
        out.stderr
    );
    // The quickstart ran through cargo: apply, a snapshot, dbverify, a rollback dry run.
    assert!(
        out.stderr.contains("3 migration(s) applied"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("snapshot "), "{}", out.stdout);
    assert!(
        out.stdout.contains("migration-checksums  pass"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("would revert 3 migration(s)"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("quickstart: ok"), "{}", out.stderr);
    // It worked on a temporary copy: the clone's example is untouched, the copy removed.
    assert!(!clone.join("examples/quickstart/dev.db").exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dbsafe-quickstart")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn readme_quickstart_commands_run_as_written() {
    let readme = read("README.md");
    let quickstart = section(&readme, "Quickstart (SQLite, no server)");
    let lines: Vec<String> = code_blocks(quickstart, "sh")
        .iter()
        .flat_map(|b| commands(b))
        .collect();
    assert!(
        lines[0].starts_with("cd examples/quickstart && "),
        "{lines:?}"
    );
    assert!(lines.len() >= 10, "{lines:?}");

    let tmp = tempfile::tempdir().expect("tempdir");
    let example = tmp.path().join("examples/quickstart");
    std::fs::create_dir_all(&example).expect("mkdir");
    for entry in ["dbsafe.toml", "diesel.toml", "dbsafe.lock", "migrations"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(repo_root().join("examples/quickstart").join(entry))
            .arg(&example)
            .status()
            .expect("cp");
        assert!(status.success());
    }
    let script = format!("set -x\n{}\n", lines.join("\n"));
    let out = run(clean_shell(
        tmp.path(),
        tmp.path(),
        Some(&built_binaries()),
        &script,
    ));
    assert_eq!(out.code, 0, "{out:?}");

    // The database afterwards: the last command rolled the first run back.
    let db = example.join("dev.db");
    let conn_check = Command::new(binary("cargo-dbsafe"))
        .args(["dbsafe", "status", "--message-format", "json"])
        .current_dir(&example)
        .env("CI", "true")
        .output()
        .expect("status");
    let status: serde_json::Value =
        serde_json::from_slice(&conn_check.stdout).expect("status JSON");
    assert!(db.is_file());
    let pending = status["migrations"]
        .as_array()
        .expect("migrations")
        .iter()
        .filter(|m| m["state"] == "pending")
        .count();
    assert_eq!(pending, 3, "{status}");
    assert!(
        out.stdout
            .contains("(1 no-op run(s) with nothing to apply not shown"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("restored into a scratch database"));
    assert!(example.join(".dbsafe/snapshots").is_dir());
}

/// The `apt-get install` package names in a text.
fn apt_packages(text: &str) -> Vec<Vec<String>> {
    text.match_indices("apt-get install")
        .map(|(at, _)| {
            let line = text[at..].lines().next().unwrap_or("");
            // Up to the end of the command: a closing backtick or a comment.
            let line = line.split(['`', '#']).next().unwrap_or("");
            line.split_whitespace()
                .skip(2)
                .filter(|w| !w.starts_with('-'))
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn readme_install_script_and_ci_doc_name_the_same_packages() {
    let script = read("scripts/install.sh");
    let line = script
        .lines()
        .find(|l| l.starts_with("readonly PACKAGES=("))
        .expect("PACKAGES in install.sh");
    let mut expected: Vec<String> = line
        .trim_start_matches("readonly PACKAGES=(")
        .trim_end_matches(')')
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    expected.sort();
    // The README's sentence wraps: join its lines first.
    let readme = read("README.md").replace('\n', " ");
    let ci = read("docs/ci.md");
    let mut found = apt_packages(&readme);
    found.extend(apt_packages(&ci));
    assert!(found.len() >= 3, "{found:?}");
    for mut packages in found {
        packages.sort();
        assert_eq!(packages, expected);
    }
}

#[test]
fn docs_ci_workflow_passes_actionlint() {
    let ci = read("docs/ci.md");
    let workflow = code_blocks(&ci, "yaml")
        .into_iter()
        .find(|b| b.contains("jobs:"))
        .expect("a workflow in docs/ci.md");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join(".github/workflows/migrations.yml");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, &workflow).expect("write");
    let mut cmd = Command::new(repo_root().join("scripts/actionlint.sh"));
    cmd.arg(&file).current_dir(tmp.path());
    let out = run(cmd);
    assert_ne!(
        out.code, 2,
        "actionlint could not run, so docs/ci.md's workflow is NOT checked: {}",
        out.stderr
    );
    assert_eq!(
        out.code, 0,
        "actionlint findings:\n{}{}",
        out.stdout, out.stderr
    );

    // And it does find a broken workflow.
    std::fs::write(&file, workflow.replace("runs-on:", "runs_on:")).expect("write");
    let mut cmd = Command::new(repo_root().join("scripts/actionlint.sh"));
    cmd.arg(&file);
    assert_eq!(run(cmd).code, 1);
}

/// `cargo install --locked --path cargo-dbsafe` (and `cargo install cargo-dbsafe` for a
/// release) installs every binary target of that one package: the three subcommands.
#[test]
fn one_package_builds_the_three_subcommands() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let bins_of = |package: &serde_json::Value| -> Vec<String> {
        let mut bins: Vec<String> = package["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|t| t["kind"] == serde_json::json!(["bin"]))
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect();
        bins.sort();
        bins
    };
    let dbsafe = packages
        .iter()
        .find(|p| p["name"] == "cargo-dbsafe")
        .expect("package cargo-dbsafe");
    assert_eq!(
        bins_of(dbsafe),
        ["cargo-dbrollback", "cargo-dbsafe", "cargo-dbverify"]
    );
    // No other package builds a binary of the same name (cargo would warn of a collision).
    let others: Vec<String> = packages
        .iter()
        .filter(|p| p["name"] != "cargo-dbsafe")
        .flat_map(bins_of)
        .filter(|bin| bin.starts_with("cargo-db"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    // And the README says so.
    assert!(read("README.md").contains("`cargo install --locked cargo-dbsafe`"));
}
