//! A target: a named database from dbsafe.toml, its URL (backend chosen from the scheme,
//! password never shown), environment and protection.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Config, Environment, TargetConfig};
use crate::error::{Error, Result};

pub use crate::dialect::Backend;

/// A parsed database URL. The backend comes from the scheme, never from guessing: a URL
/// meant for a server that has a typo is an error, not a new SQLite file.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver is given (for SQLite: the file path).
    connect: String,
    sqlite_path: Option<PathBuf>,
    /// Set on a target's PostgreSQL URL: connections to it are first checked for a
    /// connection pooler in transaction mode ([`crate::pooler`]).
    pooler_check: Option<PoolerCheck>,
    /// PostgreSQL: the schema a fleet's schema member works in ([`DatabaseUrl::with_schema`]).
    schema: Option<String>,
}

/// Where a target's URL came from, for the message that refuses a pooled one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolerCheck {
    /// The target's name.
    pub target: String,
    /// Whether the URL is the target's `direct-url` (or `direct-url-env`).
    pub direct: bool,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// Parses a URL. Relative SQLite paths are taken relative to `base_dir` (the directory
    /// of dbsafe.toml), so a configuration works from any subdirectory.
    ///
    /// Accepted: `postgres://`, `postgresql://`, `mysql://`, `mariadb://`,
    /// `sqlite://PATH`, `sqlite:PATH`, `file:PATH`, and a bare file path without `:`.
    pub fn parse(url: &str, base_dir: &Path) -> Result<DatabaseUrl> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::BadUrl("the database URL is empty".into()));
        }
        let lower = url.to_ascii_lowercase();
        let server = |backend, connect: String| -> Result<DatabaseUrl> {
            let after_scheme = &connect[connect.find("://").map_or(0, |i| i + 3)..];
            if after_scheme.is_empty() || after_scheme.starts_with('/') && after_scheme.len() == 1 {
                return Err(Error::BadUrl(format!(
                    "database URL {} names no host: write it as {}://user:password@host:port/database",
                    redact(&connect),
                    backend
                )));
            }
            Ok(DatabaseUrl {
                backend,
                connect,
                sqlite_path: None,
                pooler_check: None,
                schema: None,
            })
        };
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return server(Backend::Postgres, url.to_owned());
        }
        if lower.starts_with("mysql://") {
            return server(Backend::Mysql, url.to_owned()).and_then(plain_mysql_database);
        }
        if lower.starts_with("mariadb://") {
            return server(
                Backend::Mysql,
                format!("mysql://{}", &url["mariadb://".len()..]),
            )
            .and_then(plain_mysql_database);
        }
        let sqlite_path = if let Some(rest) = strip_prefix_ci(url, "sqlite://") {
            rest
        } else if let Some(rest) = strip_prefix_ci(url, "sqlite:") {
            rest
        } else if let Some(rest) = strip_prefix_ci(url, "file:") {
            rest.split('?').next().unwrap_or(rest)
        } else if !url.contains(':') {
            url
        } else {
            let letters: String = lower
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            if ["postgres", "postgresql", "mysql", "mariadb"].contains(&letters.as_str()) {
                return Err(Error::BadUrl(format!(
                    "database URL {} is not a valid {letters} URL: write it as {letters}://user:password@host:port/database",
                    redact(url)
                )));
            }
            let scheme = url.split(':').next().unwrap_or(url);
            return Err(Error::BadUrl(format!(
                "database URL {} has an unknown scheme `{scheme}`: use postgres://, mysql://, mariadb:// or sqlite:// (a bare file path also means SQLite)",
                redact(url)
            )));
        };
        if sqlite_path.is_empty() {
            return Err(Error::BadUrl(
                "the SQLite URL names no file: write sqlite://path/to/file.db".into(),
            ));
        }
        if sqlite_path == ":memory:" {
            return Err(Error::BadUrl(
                "an in-memory SQLite database keeps nothing between commands: give a file path"
                    .into(),
            ));
        }
        let path = base_dir.join(sqlite_path);
        Ok(DatabaseUrl {
            backend: Backend::Sqlite,
            connect: path.to_string_lossy().into_owned(),
            sqlite_path: Some(path),
            pooler_check: None,
            schema: None,
        })
    }

    /// The backend the scheme names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The string handed to the driver. Contains the password: never print it.
    pub fn connection_string(&self) -> &str {
        &self.connect
    }

    /// For SQLite, the database file.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// Whether connections to this URL are checked for a connection pooler first, and for
    /// which target.
    pub fn pooler_check(&self) -> Option<&PoolerCheck> {
        self.pooler_check.as_ref()
    }

    /// The URL with any password replaced by `***`, safe to print and store.
    pub fn redacted(&self) -> String {
        match self.sqlite_path {
            Some(_) => format!("sqlite://{}", self.connect),
            None => redact(&self.connect),
        }
    }
}

/// The parts of a server URL that client tools (`pg_dump`, `mariadb-dump`) take as
/// options and environment variables: the password goes through the environment only.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerParams {
    /// Host name or address (or a socket directory).
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// User name.
    pub user: Option<String>,
    /// Password, percent-decoded. Never put it in argv or a file.
    pub password: Option<String>,
    /// Database name.
    pub database: String,
}

impl fmt::Debug for ServerParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ServerParams({:?}:{:?} user {:?} db {})",
            self.host, self.port, self.user, self.database
        )
    }
}

impl DatabaseUrl {
    /// Host, port, user, password and database of a server URL (None for SQLite).
    pub fn server_params(&self) -> Option<ServerParams> {
        if self.sqlite_path.is_some() {
            return None;
        }
        let parsed = url::Url::parse(&self.connect).ok()?;
        let decode = |s: &str| percent_decode(s);
        Some(ServerParams {
            host: parsed
                .host_str()
                .map(str::to_owned)
                .filter(|h| !h.is_empty()),
            port: parsed.port(),
            user: Some(decode(parsed.username())).filter(|u| !u.is_empty()),
            password: parsed.password().map(decode),
            database: decode(parsed.path().trim_start_matches('/')),
        })
    }

    /// The database name of a server URL (empty for SQLite).
    pub fn database_name(&self) -> String {
        self.server_params().map(|p| p.database).unwrap_or_default()
    }

    /// The same server URL with another database name (for scratch databases).
    pub fn with_database(&self, database: &str) -> DatabaseUrl {
        let mut parsed = match url::Url::parse(&self.connect) {
            Ok(parsed) => parsed,
            Err(_) => return self.clone(),
        };
        parsed.set_path(&format!("/{database}"));
        DatabaseUrl {
            backend: self.backend,
            connect: parsed.to_string(),
            sqlite_path: None,
            // Another database on the same server (scratch, shadow, staging copy), reached
            // the same way as the target: checked too, so that a command that starts with
            // one (check --roundtrip) is refused behind a pooler like the others.
            pooler_check: self.pooler_check.clone(),
            schema: self.schema.clone(),
        }
    }

    /// The same PostgreSQL database, worked on in one schema: its sessions have
    /// `search_path` set to that schema alone, so the ledger, the migrations' history table
    /// and unqualified names are the schema's (a fleet's schema member).
    pub fn with_schema(&self, schema: &str) -> DatabaseUrl {
        DatabaseUrl {
            schema: Some(schema.to_owned()),
            ..self.clone()
        }
    }

    /// The schema of a schema member ([`DatabaseUrl::with_schema`]).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

/// Refuses a MySQL URL whose database name holds a `%` escape (a backtick, quote or space
/// can only be written that way): diesel opens the name as written, undecoded, while the
/// server tools and dbsafe's own SQL would use the decoded name, another database.
fn plain_mysql_database(url: DatabaseUrl) -> Result<DatabaseUrl> {
    let written = url::Url::parse(&url.connect)
        .ok()
        .and_then(|u| u.path_segments()?.next().map(str::to_owned))
        .unwrap_or_default();
    if !written.contains('%') {
        return Ok(url);
    }
    Err(Error::BadUrl(format!(
        "the database name `{written}` in {} is percent-encoded: diesel would open `{written}` while the MySQL tools would open `{}`. Use a database name of letters, digits and `_`",
        url.redacted(),
        percent_decode(&written)
    )))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Hides the password in a URL's user info and in a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "***");
            }
        }
    } else if let Some(at) = out.rfind('@')
        && let Some(colon) = out[..at].rfind(':')
    {
        // Not a well-formed URL (`postgres:/app:pw@host`): hide whatever precedes the `@`
        // after its last `:`, which may be a user name rather than a password.
        out.replace_range(colon + 1..at, "***");
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

/// A target ready to use: its configuration and its parsed URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name in dbsafe.toml.
    pub name: String,
    /// Its environment.
    pub environment: Environment,
    /// Whether it needs an explicit `--target` and confirmation.
    pub protected: bool,
    /// Its database.
    pub url: DatabaseUrl,
}

impl Target {
    /// Resolves the target `name` (or the default one): reads `url` or the `url-env`
    /// variable (after loading `.env`) and parses it. A target with `direct-url` (or
    /// `direct-url-env`) is worked on through that URL only: its pooled `url` is the
    /// application's and is not read. A PostgreSQL target's URL is checked for a
    /// connection pooler when dbsafe connects ([`crate::pooler`]).
    pub fn resolve(config: &Config, name: Option<&str>) -> Result<Target> {
        let target: &TargetConfig = config.target(name)?;
        let direct = target.direct_url.is_some() || target.direct_url_env.is_some();
        let raw = match (&target.direct_url, &target.direct_url_env, &target.url) {
            (Some(url), _, _) => url.clone(),
            (None, Some(var), _) => std::env::var(var).map_err(|_| {
                Error::Usage(format!(
                    "target `{}` has no direct database URL: set the environment variable {var} (its `direct-url-env` in dbsafe.toml; a .env file beside dbsafe.toml works too) to a URL that reaches PostgreSQL directly, not through the pooler",
                    target.name
                ))
            })?,
            (None, None, Some(url)) => url.clone(),
            (None, None, None) => std::env::var(&target.url_env).map_err(|_| Error::NoUrl {
                target: target.name.clone(),
                var: target.url_env.clone(),
            })?,
        };
        let mut url = DatabaseUrl::parse(&raw, &config.root)?;
        if direct && url.backend != Backend::Postgres {
            return Err(Error::Usage(format!(
                "the direct URL of target `{}` ({}) is not a PostgreSQL URL: `direct-url` / `direct-url-env` bypass a PostgreSQL connection pooler and take a postgres:// URL",
                target.name,
                url.redacted()
            )));
        }
        if url.backend == Backend::Postgres {
            url.pooler_check = Some(PoolerCheck {
                target: target.name.clone(),
                direct,
            });
        }
        Ok(Target {
            name: target.name.clone(),
            environment: target.environment,
            protected: target.protected,
            url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<DatabaseUrl> {
        DatabaseUrl::parse(url, Path::new("/proj"))
    }

    #[test]
    fn scheme_picks_backend() {
        assert_eq!(
            parse("postgres://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            parse("postgresql://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(parse("mysql://u@h/db").unwrap().backend(), Backend::Mysql);
        let maria = parse("mariadb://u@h/db").unwrap();
        assert_eq!(maria.connection_string(), "mysql://u@h/db");
        assert_eq!(
            parse("sqlite://dev.db").unwrap().sqlite_path(),
            Some(Path::new("/proj/dev.db"))
        );
        assert_eq!(
            parse("sqlite:/abs/x.db").unwrap().sqlite_path(),
            Some(Path::new("/abs/x.db"))
        );
        assert_eq!(parse("db.sqlite3").unwrap().backend(), Backend::Sqlite);
    }

    #[test]
    fn typos_are_not_sqlite_files() {
        for bad in [
            "postgress://u@h/db",
            "localhost:5432/db",
            "mysq://root@h/x",
            "",
            "sqlite://",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("mysql://root@h/x"), "mysql://root@h/x");
        assert_eq!(
            redact("postgres://h/x?user=a&password=pw"),
            "postgres://h/x?user=a&password=***"
        );
        assert_eq!(redact("postgres://a:p@ss@h/x"), "postgres://a:***@h/x");
        for malformed in [
            "postgres:/app:s3cret@db/x",
            "postgres:app:s3cret@db/x",
            "mysql//app:s3cret@db/x",
            "postgress:app:s3cret@db/x",
        ] {
            let message = parse(malformed).unwrap_err().to_string();
            assert!(!message.contains("s3cret"), "{message}");
            assert!(message.contains(":***@db/x"), "{message}");
        }
        let url = parse("postgres://app:s3cret@db/x").unwrap();
        assert!(!format!("{url:?} {}", url.redacted()).contains("s3cret"));
    }
}
