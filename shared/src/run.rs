//! A run's identity and provenance: its id (a [`RunId`], `20261121T153012Z-7f3a`), who
//! ran it, where, with which tool version and which git commit; the ledger's words.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use time::OffsetDateTime;

use crate::run_id::RunId;

/// Who, where and what version: recorded on every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// The run id.
    pub id: RunId,
    /// `DBSAFE_OPERATOR`, else git's user.name, else $USER.
    pub operator: String,
    /// The machine's host name.
    pub host: String,
    /// dbsafe's version.
    pub tool_version: String,
    /// `git rev-parse HEAD` of the project, when it is a git checkout.
    pub git_commit: Option<String>,
    /// Whether the checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// The fleet run this run belongs to (`--fleet`), if any.
    pub fleet_run: Option<RunId>,
}

impl RunContext {
    /// A new run id and the provenance of the project at `root`. The provenance is read
    /// once per process and root (a fleet run starts hundreds of runs: not three `git`
    /// processes each), by the reading [`RunContext::prefetch`] started when there is one.
    pub fn new(root: &Path) -> RunContext {
        let mut known = provenance().lock().unwrap_or_else(|e| e.into_inner());
        let context = match known
            .iter()
            .position(|(r, _)| r == root)
            .map(|index| known.swap_remove(index).1)
        {
            Some(Provenance::Read(context)) => context,
            Some(Provenance::Reading(handle)) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => RunContext::read(root),
        };
        known.push((root.to_owned(), Provenance::Read(context.clone())));
        RunContext {
            id: RunId::new(),
            ..context
        }
    }

    /// Starts reading the provenance of the project at `root` in the background, so its
    /// `git` processes run while the command loads its migrations and connects; the next
    /// [`RunContext::new`] for `root` takes the result.
    pub fn prefetch(root: &Path) {
        let mut known = provenance().lock().unwrap_or_else(|e| e.into_inner());
        if !known.iter().any(|(r, _)| r == root) {
            known.push((
                root.to_owned(),
                Provenance::Reading(std::thread::spawn({
                    let root = root.to_owned();
                    move || RunContext::read(&root)
                })),
            ));
        }
    }

    fn read(root: &Path) -> RunContext {
        // The `git` processes run at once: a run waits for the slowest, not the sum. One
        // `git status` gives both the commit (`# branch.oid`) and whether tracked files
        // changed; the user name is asked only when DBSAFE_OPERATOR does not name one.
        let spawn = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(root)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        };
        let named = std::env::var("DBSAFE_OPERATOR")
            .ok()
            .filter(|s| !s.is_empty());
        let user = named
            .is_none()
            .then(|| spawn(&["config", "user.name"]))
            .flatten();
        let status = spawn(&[
            "status",
            "--porcelain=v2",
            "--branch",
            "--untracked-files=no",
        ]);
        let output = |child: Option<std::process::Child>| -> Option<String> {
            let out = child?.wait_with_output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let (user, status) = (output(user), output(status));
        let operator = named
            .or_else(|| user.filter(|s| !s.is_empty()))
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".to_owned());
        let (git_commit, git_dirty) = status.as_deref().map_or((None, None), git_state);
        RunContext {
            id: RunId::new(),
            operator,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit,
            git_dirty,
            fleet_run: None,
        }
    }

    /// This context, linked to the fleet run `fleet_run` (when there is one).
    pub fn in_fleet(mut self, fleet_run: Option<&RunId>) -> RunContext {
        self.fleet_run = fleet_run.cloned();
        self
    }
}

/// The commit and whether tracked files changed, from `git status --porcelain=v2
/// --branch`: neither before the first commit (`# branch.oid (initial)`).
fn git_state(status: &str) -> (Option<String>, Option<bool>) {
    let commit = status
        .lines()
        .find_map(|line| line.strip_prefix("# branch.oid "))
        .filter(|oid| !oid.is_empty() && oid.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned);
    let dirty = status.lines().any(|line| !line.starts_with('#'));
    let dirty = commit.as_ref().map(|_| dirty);
    (commit, dirty)
}

/// Declares a closed set of words stored in the ledger as text: the enum, its word
/// (`as_str`, `Display`, serde), parsing it back, and diesel's text mapping, so the ledger's
/// rows hold the type and no code compares free strings.
macro_rules! ledger_word {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The word stored in the ledger and shown to users.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// The value of a stored word, if it is one.
            pub fn parse(word: &str) -> Option<$name> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let word = String::deserialize(d)?;
                $name::parse(&word).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("not a ", stringify!($name), ": {}"), word))
                })
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let word = String::from_sql(bytes)?;
                $name::parse(&word).ok_or_else(|| {
                    format!(concat!("the ledger holds an unknown ", stringify!($name), " `{}`"), word).into()
                })
            }
        }
    };
}

ledger_word! {
    /// What a run did.
    RunKind {
        /// Applied pending migrations (and seeds).
        Apply = "apply",
        /// Reverted a run's migrations with their down.sql.
        Rollback = "rollback",
        /// Restored a snapshot into the target.
        Restore = "restore",
        /// Recorded the state an operator found (`resolve VERSION --as ...`).
        Resolve = "resolve",
    }
}

ledger_word! {
    /// Where a run stands.
    RunStatus {
        /// In progress (or interrupted, when no process holds the lock).
        Running = "running",
        /// Finished, everything holds.
        Succeeded = "succeeded",
        /// Failed; what committed stays.
        Failed = "failed",
        /// Failed, and its migrations were reverted.
        Reverted = "reverted",
        /// Rewound by a snapshot restore.
        Restored = "restored",
        /// Shown by `status`, never stored: left `running` by a process that is gone
        /// (no one holds the target's lock); the next run marks it failed.
        Interrupted = "interrupted",
    }
}

ledger_word! {
    /// Where one step (one migration up or down) stands.
    StepStatus {
        /// A non-transactional step began and has not finished: the target is dirty.
        Started = "started",
        /// Applied.
        Applied = "applied",
        /// Reverted with down.sql.
        Reverted = "reverted",
        /// Failed and left nothing behind.
        Failed = "failed",
    }
}

ledger_word! {
    /// Which way a step ran a migration.
    Direction {
        /// up.sql.
        Up = "up",
        /// down.sql.
        Down = "down",
    }
}

/// The provenance of a project: being read in the background, or read.
enum Provenance {
    /// `git` is running.
    Reading(std::thread::JoinHandle<RunContext>),
    /// Read (its id is replaced by each run's own).
    Read(RunContext),
}

/// Each project root's provenance, read once per process.
fn provenance() -> &'static Mutex<Vec<(PathBuf, Provenance)>> {
    static KNOWN: OnceLock<Mutex<Vec<(PathBuf, Provenance)>>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// The current time as RFC 3339 UTC with exactly three fraction digits, so times sort as text.
pub fn now() -> String {
    format_utc(OffsetDateTime::now_utc())
}

/// A UTC time as RFC 3339 with exactly three fraction digits.
pub fn format_utc(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Names for a one-line message: all of them when few, else the count, the first and the
/// last, and where to see the rest (a run of 186 migrations must not print 186 names).
pub fn names_in_brief(names: &[&str]) -> String {
    match names {
        [] => "none".to_owned(),
        [first, .., last] if names.len() > 6 => format!(
            "{} migrations, {first} to {last}; `cargo dbsafe status` lists them",
            names.len()
        ),
        _ => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_state_reads_the_commit_and_changes_from_one_status() {
        let oid = "0123456789abcdef0123456789abcdef01234567";
        let clean = format!("# branch.oid {oid}\n# branch.head main");
        assert_eq!(git_state(&clean), (Some(oid.to_owned()), Some(false)));
        let changed = format!("{clean}\n1 .M N... 100644 100644 100644 a b migrations/x/up.sql");
        assert_eq!(git_state(&changed), (Some(oid.to_owned()), Some(true)));
        let unborn =
            "# branch.oid (initial)\n# branch.head main\n1 A. N... 0 100644 100644 a b up.sql";
        assert_eq!(git_state(unborn), (None, None));
    }

    #[test]
    fn provenance_comes_from_a_real_git_repository() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(ok.status.success(), "git {args:?}: {ok:?}");
            String::from_utf8(ok.stdout).unwrap().trim().to_owned()
        };
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("up.sql"), "SELECT 1;").unwrap();
        git(&["add", "up.sql"]);
        git(&["commit", "-q", "-m", "first"]);
        let head = git(&["rev-parse", "HEAD"]);
        let context = RunContext::read(dir.path());
        assert_eq!(context.git_commit.as_deref(), Some(head.as_str()));
        assert_eq!(context.git_dirty, Some(false));
        std::fs::write(dir.path().join("up.sql"), "SELECT 2;").unwrap();
        assert_eq!(RunContext::read(dir.path()).git_dirty, Some(true));
    }

    #[test]
    fn times_have_a_fixed_width() {
        let t = now();
        assert_eq!(t.len(), "2026-11-21T15:59:37.470Z".len(), "{t}");
    }
}
