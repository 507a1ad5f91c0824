//! Running the real client tools (`pg_dump`, `pg_restore`, `psql`, `mariadb-dump`,
//! `mariadb`) with the connection in options and the password in the environment only,
//! and choosing which PostgreSQL client tools fit the server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::target::{DatabaseUrl, ServerParams};

/// A client tool invocation for one server database.
pub struct Tool {
    command: Command,
    name: String,
}

impl Tool {
    /// `program` (a PostgreSQL client tool from `tools`) with the connection of `url`
    /// (libpq variables; PGPASSWORD).
    pub fn postgres(tools: &PgTools, program: &str, url: &DatabaseUrl) -> Tool {
        let params = server_params(url);
        let mut command = Command::new(tools.program(program));
        command.env_remove("PGPASSWORD").env_remove("PGSERVICE");
        if let Some(host) = &params.host {
            command.env("PGHOST", host);
        }
        if let Some(port) = params.port {
            command.env("PGPORT", port.to_string());
        }
        if let Some(user) = &params.user {
            command.env("PGUSER", user);
        }
        if let Some(password) = &params.password {
            command.env("PGPASSWORD", password);
        }
        command
            .env("PGDATABASE", &params.database)
            .env("PGAPPNAME", "dbsafe");
        Tool {
            command,
            name: program.to_owned(),
        }
    }

    /// `program` with the MySQL connection of `url` as options (MYSQL_PWD for the password).
    pub fn mysql(program: &str, url: &DatabaseUrl) -> Tool {
        let params = server_params(url);
        let mut command = Command::new(program);
        command.env_remove("MYSQL_PWD");
        command.arg("--protocol=TCP");
        if let Some(host) = &params.host {
            command.arg(format!("--host={host}"));
        }
        if let Some(port) = params.port {
            command.arg(format!("--port={port}"));
        }
        if let Some(user) = &params.user {
            command.arg(format!("--user={user}"));
        }
        if let Some(password) = &params.password {
            command.env("MYSQL_PWD", password);
        }
        Tool {
            command,
            name: program.to_owned(),
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Runs it to completion; stdout goes to `stdout_file` when given. A failure names the
    /// tool and quotes its stderr.
    pub fn run(mut self, stdin_file: Option<&Path>, stdout_file: Option<&Path>) -> Result<String> {
        let fail = |message: String| Error::Failed(message);
        if let Some(path) = stdin_file {
            self.command
                .stdin(std::fs::File::open(path).map_err(|e| Error::io(path, e))?);
        } else {
            self.command.stdin(Stdio::null());
        }
        if let Some(path) = stdout_file {
            self.command
                .stdout(crate::snapshot::create_private_file(path)?);
        } else {
            self.command.stdout(Stdio::piped());
        }
        self.command.stderr(Stdio::piped());
        let output = self.command.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                fail(format!("`{}` is not installed or not on PATH: install the database client tools (Debian: postgresql-client / mariadb-client)", self.name))
            } else {
                fail(format!("cannot run {}: {e}", self.name))
            }
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(fail(format!(
                "{} failed ({}): {}",
                self.name,
                output.status,
                stderr.trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn server_params(url: &DatabaseUrl) -> ServerParams {
    url.server_params().unwrap_or(ServerParams {
        host: None,
        port: None,
        user: None,
        password: None,
        database: String::new(),
    })
}

/// The environment variable naming the directory of the PostgreSQL client tools; it
/// overrides `[snapshot] pg-bin-dir`.
pub const PG_BIN_DIR_ENV: &str = "DBSAFE_PG_BIN_DIR";

/// The PostgreSQL client tools (`pg_dump`, `pg_restore`, `psql`) dbsafe runs: those of one
/// directory, whose `pg_dump` is at least the server's major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTools {
    dir: PathBuf,
    /// Their major version.
    pub major: u32,
}

impl PgTools {
    /// The tools to use against a server of major version `server_major`: those of
    /// `$DBSAFE_PG_BIN_DIR`, else of `configured` (`[snapshot] pg-bin-dir`), else the newest
    /// found on PATH and in the usual install locations that is at least the server's.
    pub fn find(server_major: u32, configured: Option<&Path>) -> Result<PgTools> {
        let from_env = std::env::var_os(PG_BIN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(dir) = from_env.as_deref().or(configured) {
            let named = if from_env.is_some() {
                format!("${PG_BIN_DIR_ENV}")
            } else {
                "[snapshot] pg-bin-dir".to_owned()
            };
            let major = version_in(dir).ok_or_else(|| {
                Error::Usage(format!(
                    "{named} is {}, which has no runnable pg_dump: point it at the bin directory of the PostgreSQL client tools (for example /usr/lib/postgresql/{server_major}/bin)",
                    dir.display()
                ))
            })?;
            if major < server_major {
                return Err(Error::Usage(format!(
                    "{named} is {}, whose pg_dump {major} is older than the server (PostgreSQL {server_major}) and cannot dump it reliably: point it at PostgreSQL {server_major}'s client tools or newer",
                    dir.display()
                )));
            }
            return Ok(PgTools {
                dir: dir.to_owned(),
                major,
            });
        }
        let found = installed();
        choose(found, server_major).ok_or_else(|| {
            let seen = if found.is_empty() {
                "none was found on PATH or in /usr/lib/postgresql/*/bin".to_owned()
            } else {
                format!(
                    "found only {}",
                    found.iter().map(PgTools::describe).collect::<Vec<_>>().join(", ")
                )
            };
            Error::Usage(format!(
                "no pg_dump at least as new as the server (PostgreSQL {server_major}): {seen}. Install postgresql-client-{server_major} (Debian/Ubuntu, from apt.postgresql.org), or name the tools with [snapshot] pg-bin-dir or ${PG_BIN_DIR_ENV}"
            ))
        })
    }

    /// The path of one of the tools.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `pg_dump 15 (/usr/lib/postgresql/15/bin)`: what a manifest records.
    pub fn describe(&self) -> String {
        format!("pg_dump {} ({})", self.major, self.dir.display())
    }
}

/// The PostgreSQL client tools installed on this machine, with their versions: looked for
/// once per process (each candidate costs a `pg_dump --version`), however many snapshots
/// and restores it takes.
fn installed() -> &'static [PgTools] {
    static FOUND: std::sync::OnceLock<Vec<PgTools>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        candidate_dirs()
            .into_iter()
            .filter_map(|dir| version_in(&dir).map(|major| PgTools { dir, major }))
            .collect()
    })
}

/// The newest of `found` that is at least `server_major` (the first found among equals).
fn choose(found: &[PgTools], server_major: u32) -> Option<PgTools> {
    found
        .iter()
        .filter(|t| t.major >= server_major)
        .fold(None::<&PgTools>, |best, t| match best {
            Some(b) if b.major >= t.major => Some(b),
            _ => Some(t),
        })
        .cloned()
}

/// Directories that may hold PostgreSQL client tools: PATH first, then where packages
/// install them (Debian/Ubuntu, RHEL, source builds, Homebrew, Postgres.app).
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    let versioned = [
        ("/usr/lib/postgresql", "", "bin"),
        ("/usr", "pgsql-", "bin"),
        ("/opt/homebrew/opt", "postgresql@", "bin"),
        ("/usr/local/opt", "postgresql@", "bin"),
        ("/Applications/Postgres.app/Contents/Versions", "", "bin"),
    ];
    for (parent, prefix, bin) in versioned {
        if let Ok(entries) = std::fs::read_dir(parent) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path().join(bin))
                .collect();
            found.sort();
            dirs.extend(found);
        }
    }
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    let mut seen = std::collections::BTreeSet::new();
    dirs.retain(|d| {
        d.join("pg_dump").is_file() && seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone()))
    });
    dirs
}

/// The major version of the `pg_dump` in `dir` (`pg_dump (PostgreSQL) 15.20` -> 15).
fn version_in(dir: &Path) -> Option<u32> {
    let output = Command::new(dir.join("pg_dump"))
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find_map(|word| word.split('.').next()?.parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(dir: &str, major: u32) -> PgTools {
        PgTools {
            dir: dir.into(),
            major,
        }
    }

    #[test]
    fn the_newest_tools_at_least_the_servers_are_chosen() {
        let found = [
            tools("/usr/bin", 15),
            tools("/usr/lib/postgresql/18/bin", 18),
            tools("/usr/lib/postgresql/16/bin", 16),
        ];
        assert_eq!(
            choose(&found, 16),
            Some(tools("/usr/lib/postgresql/18/bin", 18))
        );
        assert_eq!(
            choose(&found, 15),
            Some(tools("/usr/lib/postgresql/18/bin", 18))
        );
        assert_eq!(choose(&found, 19), None);
        let same = [
            tools("/usr/bin", 15),
            tools("/usr/lib/postgresql/15/bin", 15),
        ];
        assert_eq!(
            choose(&same, 15),
            Some(tools("/usr/bin", 15)),
            "PATH first among equals"
        );
    }
}
