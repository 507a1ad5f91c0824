//! Running the real client tools (`pg_dump`, `pg_restore`, `psql`, `mariadb-dump`,
//! `mariadb`) with the connection in options and the password in the environment only.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::target::{DatabaseUrl, ServerParams};

/// A client tool invocation for one server database.
pub struct Tool {
    command: Command,
    name: String,
}

impl Tool {
    /// `program` with the PostgreSQL connection of `url` (libpq variables; PGPASSWORD).
    pub fn postgres(program: &str, url: &DatabaseUrl) -> Tool {
        let params = server_params(url);
        let mut command = Command::new(program);
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

/// The major version a client tool reports (`pg_dump (PostgreSQL) 15.20` -> 15).
pub fn tool_major_version(program: &str) -> Result<u32> {
    let output = Command::new(program).arg("--version").output().map_err(|e| {
        Error::Failed(format!("`{program}` is not installed or not on PATH ({e}): install the PostgreSQL client tools"))
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .find_map(|word| word.split('.').next()?.parse::<u32>().ok())
        .ok_or_else(|| {
            Error::Failed(format!(
                "cannot read the version of {program} from `{}`",
                text.trim()
            ))
        })
}
