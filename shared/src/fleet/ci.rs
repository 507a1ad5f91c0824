//! The fleet run id of a partitioned run derived from the CI run (`--partition K/N` without
//! `--fleet-run`): the same in every job of one CI run, on any machine, without the jobs
//! talking to each other.
//!
//! The 4 hex digits are a hash of the CI system and its run (GitHub Actions
//! `GITHUB_RUN_ID` and `GITHUB_RUN_ATTEMPT`, GitLab `CI_PIPELINE_ID`, Buildkite
//! `BUILDKITE_BUILD_ID`, CircleCI `CIRCLE_WORKFLOW_ID`, Azure Pipelines `BUILD_BUILDID`,
//! Jenkins `BUILD_TAG`); the UTC second is the pipeline's creation time where the CI gives
//! it (GitLab `CI_PIPELINE_CREATED_AT`), else the commit time of the checkout's `HEAD`,
//! which every job of one CI run has checked out.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// The CI systems whose run is recognised: name, and the variables that identify one run
/// of it (the first must be set; the others are added when set).
const SYSTEMS: &[(&str, &[&str])] = &[
    ("github", &["GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"]),
    ("gitlab", &["CI_PIPELINE_ID"]),
    ("buildkite", &["BUILDKITE_BUILD_ID"]),
    ("circleci", &["CIRCLE_WORKFLOW_ID"]),
    ("azure", &["BUILD_BUILDID"]),
    ("jenkins", &["BUILD_TAG"]),
];

/// The variables that identify a CI run, for messages.
pub fn variables() -> String {
    SYSTEMS
        .iter()
        .map(|(_, vars)| vars[0])
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fleet run id of the CI run this process belongs to, when the environment names one
/// and its time can be known; `None` otherwise.
pub fn fleet_run_id(root: &Path) -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let run = ci_run(&var)?;
    let second = var("CI_PIPELINE_CREATED_AT")
        .and_then(|at| utc_second(&at))
        .or_else(|| head_commit_time(root))?;
    id_of(&run, &second)
}

/// `YYYYMMDDTHHMMSS` of an RFC 3339 time in UTC (`2026-11-30T12:00:00Z`, fractions allowed).
fn utc_second(at: &str) -> Option<String> {
    let at = at.trim();
    if !(at.ends_with('Z') || at.ends_with("+00:00")) || at.len() < 20 {
        return None;
    }
    let digits: String = at[..19].chars().filter(char::is_ascii_digit).collect();
    (digits.len() == 14 && at.as_bytes()[10] == b'T')
        .then(|| format!("{}T{}", &digits[..8], &digits[8..]))
}

/// `system:value:value...` of the first CI system whose run variable is set.
fn ci_run(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    SYSTEMS.iter().find_map(|(system, vars)| {
        var(vars[0])?;
        let values: Vec<String> = vars.iter().filter_map(|v| var(v)).collect();
        Some(format!("{system}:{}", values.join(":")))
    })
}

/// The id for `run` at the UTC second `second` (`YYYYMMDDTHHMMSS`).
fn id_of(run: &str, second: &str) -> Option<String> {
    let digest = Sha256::digest(run.as_bytes());
    let id = format!("{second}Z-{:02x}{:02x}", digest[0], digest[1]);
    crate::run_id::is_valid_id(&id).then_some(id)
}

/// The committer time of `HEAD` in the git checkout at `root` (`YYYYMMDDTHHMMSS`, UTC).
fn head_commit_time(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "show",
            "-s",
            "--format=%cd",
            "--date=format-local:%Y%m%dT%H%M%S",
            "HEAD",
        ])
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(pairs: &[(&str, &str)]) -> Option<String> {
        ci_run(&|name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn ci_runs_are_recognised_and_ids_are_valid_and_stable() {
        assert_eq!(
            run_of(&[("GITHUB_RUN_ID", "42"), ("GITHUB_RUN_ATTEMPT", "2")]).as_deref(),
            Some("github:42:2")
        );
        assert_eq!(
            run_of(&[("CI_PIPELINE_ID", "7")]).as_deref(),
            Some("gitlab:7")
        );
        assert_eq!(run_of(&[("GITHUB_RUN_ATTEMPT", "2")]), None);
        assert_eq!(run_of(&[]), None);
        let second = utc_second("2026-11-30T12:00:05Z").unwrap();
        assert_eq!(second, "20261130T120005");
        assert_eq!(utc_second("2026-11-30T12:00:05+01:00"), None);
        let id = id_of("github:42:2", &second).unwrap();
        assert!(id.starts_with("20261130T120005Z-"), "{id}");
        assert_eq!(id_of("github:42:2", &second).unwrap(), id);
        assert_ne!(id_of("github:42:3", &second).unwrap(), id);
        assert_eq!(id_of("github:42:2", "garbage"), None);
    }
}
