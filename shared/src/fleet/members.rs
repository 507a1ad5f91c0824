//! Resolving a fleet's members: its named targets, the databases on its servers that match
//! a pattern or a query (or, a schema per tenant, the schemas of those databases or of its
//! one `url`), and SQLite files matching a pattern. Each member is a [`Target`]
//! like any other (identity binding, protection, its own ledger and lock).

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, Databases, FleetConfig, Servers};
use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::target::{DatabaseUrl, Target};

/// One member of a fleet.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member's target name: a named target's own, `DATABASE@HOST:PORT` for a database
    /// found on a server, the file name for a SQLite file.
    pub name: String,
    /// The member as a target.
    pub target: Target,
}

/// A server whose databases could not be listed.
#[derive(Debug, Clone, Serialize)]
pub struct Unreachable {
    /// The server, password hidden.
    pub server: String,
    /// Why.
    pub error: String,
}

/// A fleet's members, sorted by name, and the servers that did not answer.
#[derive(Debug, Clone)]
pub struct Members {
    /// The fleet's configuration.
    pub fleet: FleetConfig,
    /// Every member found.
    pub members: Vec<Member>,
    /// Servers whose databases could not be listed (their members are unknown).
    pub unreachable: Vec<Unreachable>,
}

/// A stable share of a fleet: `K/N` as cargo-nextest partitions tests (by a hash of the
/// member's name, so a member stays in its share when others come and go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Which share, from 1.
    pub index: u32,
    /// How many shares.
    pub count: u32,
}

impl Partition {
    /// Parses `K/N` (1 <= K <= N).
    pub fn parse(text: &str) -> Result<Partition> {
        let bad = || {
            Error::Usage(format!(
                "--partition {text:?}: write K/N with 1 <= K <= N, e.g. --partition 2/4 for the second of four CI jobs"
            ))
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }

    /// Whether the member `name` is in this share.
    pub fn contains(&self, name: &str) -> bool {
        let digest = Sha256::digest(name.as_bytes());
        let hash = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        hash % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The fleet `name` of `config` with its members (only those of `partition`, when given).
pub fn resolve(config: &Config, name: &str, partition: Option<Partition>) -> Result<Members> {
    let Some(fleet) = config.fleets.get(name) else {
        let known: Vec<&str> = config.fleets.keys().map(String::as_str).collect();
        return Err(Error::Usage(if known.is_empty() {
            format!(
                "no fleet named `{name}`: dbsafe.toml defines none; add a [fleets.{name}] table (see docs/dbsafe.reference.toml)"
            )
        } else {
            format!(
                "no fleet named `{name}`; known fleets: {}",
                known.join(", ")
            )
        }));
    };
    let mut members = Vec::new();
    for target in &fleet.targets {
        members.push(Member {
            name: target.clone(),
            target: Target::resolve(config, Some(target))?,
        });
    }
    let mut unreachable = Vec::new();
    let mut databases = Vec::new();
    for server in servers(&fleet.servers)? {
        let url = DatabaseUrl::parse(&server, &config.root)?;
        match server_databases(fleet, &url) {
            Ok(found) => databases.extend(found),
            Err(e) => unreachable.push(Unreachable {
                server: url.redacted(),
                error: e.to_string(),
            }),
        }
    }
    if let Some(url) = database_url(config, fleet)? {
        databases.push(url);
    }
    for database in databases {
        if fleet.schemas == Databases::None {
            members.push(discovered(fleet, database));
            continue;
        }
        let Some(list) = database.backend().dialect().schema_list_sql() else {
            return Err(Error::Usage(format!(
                "fleet `{name}`: `schemas` needs PostgreSQL, and {} is {}: a schema per tenant works on PostgreSQL only",
                database.redacted(),
                database.backend()
            )));
        };
        match schema_members(fleet, &database, list) {
            Ok(found) => members.extend(found),
            Err(e) => unreachable.push(Unreachable {
                server: database.redacted(),
                error: e.to_string(),
            }),
        }
    }
    if let Some(pattern) = &fleet.files {
        members.extend(file_members(config, fleet, pattern)?);
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = members.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(Error::Usage(format!(
            "fleet `{name}` lists member `{}` twice: a target and a discovered database may not be the same",
            pair[0].name
        )));
    }
    if let Some(partition) = partition {
        members.retain(|m| partition.contains(&m.name));
    }
    Ok(Members {
        fleet: fleet.clone(),
        members,
        unreachable,
    })
}

/// The server URLs, from the file or from the `servers-env` variable.
fn servers(servers: &Servers) -> Result<Vec<String>> {
    match servers {
        Servers::None => Ok(Vec::new()),
        Servers::Listed(urls) => Ok(urls.clone()),
        Servers::Env(var) => {
            let text = std::env::var(var).map_err(|_| {
                Error::Usage(format!(
                    "the fleet's `servers-env` names {var}, which is not set: set it to the server URLs, separated by spaces or commas"
                ))
            })?;
            Ok(text
                .split([' ', ',', '\n', '\t'])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        }
    }
}

/// The fleet's one database whose schemas are members (`url`, `url-env`).
fn database_url(config: &Config, fleet: &FleetConfig) -> Result<Option<DatabaseUrl>> {
    let raw = match (&fleet.url, &fleet.url_env) {
        (Some(url), _) => url.clone(),
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            Error::Usage(format!(
                "the fleet's `url-env` names {var}, which is not set: set it to the URL of the database whose schemas are members"
            ))
        })?,
        (None, None) => return Ok(None),
    };
    DatabaseUrl::parse(&raw, &config.root).map(Some)
}

/// The databases of one server that are members.
fn server_databases(fleet: &FleetConfig, server: &DatabaseUrl) -> Result<Vec<DatabaseUrl>> {
    let params = server
        .server_params()
        .unwrap_or_else(|| unreachable!("a server URL"));
    let dialect = server.backend().dialect();
    let (Some(list), Some(maintenance)) =
        (dialect.database_list_sql(), dialect.maintenance_database())
    else {
        unreachable!("a server URL")
    };
    let admin = if params.database.is_empty() {
        server.with_database(maintenance)
    } else {
        server.clone()
    };
    let mut db = Database::connect(&admin, Create::Never)?;
    let names = names(&mut db, &fleet.databases, list)
        .map_err(|e| Error::db(format!("listing the databases of {}", server.redacted()), e))?;
    Ok(names
        .iter()
        .map(|database| server.with_database(database))
        .collect())
}

/// The schemas of one PostgreSQL database that are members.
fn schema_members(fleet: &FleetConfig, database: &DatabaseUrl, list: &str) -> Result<Vec<Member>> {
    let mut db = Database::connect(database, Create::Never)?;
    let names = names(&mut db, &fleet.schemas, list)
        .map_err(|e| Error::db(format!("listing the schemas of {}", database.redacted()), e))?;
    Ok(names
        .iter()
        .map(|schema| discovered(fleet, database.with_schema(schema)))
        .collect())
}

/// The names `list` (a query of `name`s) gives that `selection` takes, sorted.
fn names(db: &mut Database, selection: &Databases, list: &str) -> diesel::QueryResult<Vec<String>> {
    let name_type = db.dialect().text_type();
    let sql = match selection {
        Databases::Like(pattern) => format!(
            "SELECT CAST(name AS {name_type}) AS v FROM ({list}) AS d WHERE name LIKE {} ORDER BY 1",
            db.dialect().literal(pattern)
        ),
        Databases::Query(query) => format!(
            "WITH d(name) AS ({}) SELECT CAST(name AS {name_type}) AS v FROM d ORDER BY 1",
            query.trim().trim_end_matches(';')
        ),
        Databases::None => return Ok(Vec::new()),
    };
    db.texts(&sql)
}

/// A member found on a server: named `DATABASE@HOST:PORT`, or `DATABASE.SCHEMA@HOST:PORT`
/// for a schema member.
fn discovered(fleet: &FleetConfig, url: DatabaseUrl) -> Member {
    let params = url
        .server_params()
        .unwrap_or_else(|| unreachable!("a server URL"));
    let host = params.host.unwrap_or_else(|| "localhost".into());
    let port = params.port.map(|p| format!(":{p}")).unwrap_or_default();
    let schema = url.schema().map(|s| format!(".{s}")).unwrap_or_default();
    let name = format!("{}{schema}@{host}{port}", params.database);
    Member {
        name: name.clone(),
        target: Target {
            name,
            environment: fleet.environment,
            protected: fleet.protected,
            url,
        },
    }
}

/// SQLite files matching `pattern` (`*` and `?` in the file name only).
fn file_members(config: &Config, fleet: &FleetConfig, pattern: &str) -> Result<Vec<Member>> {
    let full = config.root.join(pattern);
    let dir = full.parent().unwrap_or(&config.root).to_path_buf();
    let file_pattern = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !wildcard(&file_pattern, &file_name) || !entry.path().is_file() {
            continue;
        }
        members.push(Member {
            name: file_name.clone(),
            target: Target {
                name: file_name,
                environment: fleet.environment,
                protected: fleet.protected,
                url: DatabaseUrl::parse(&entry.path().to_string_lossy(), Path::new("/"))?,
            },
        });
    }
    Ok(members)
}

/// Whether `text` matches `pattern` (`*` any run of characters, `?` one character).
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        assert!(wildcard("tenant_*.db", "tenant_001.db"));
        assert!(wildcard("t?.db", "t1.db"));
        assert!(!wildcard("tenant_*.db", "tenant_001.db-journal"));
        assert!(!wildcard("tenant_*.db", "other.db"));
    }

    #[test]
    fn partitions_split_members_into_disjoint_shares() {
        let names: Vec<String> = (0..200).map(|i| format!("tenant_{i}@db:5432")).collect();
        let shares: Vec<Partition> = (1..=3)
            .map(|k| Partition::parse(&format!("{k}/3")).unwrap())
            .collect();
        for name in &names {
            assert_eq!(shares.iter().filter(|p| p.contains(name)).count(), 1);
        }
        assert!(
            shares
                .iter()
                .all(|p| names.iter().filter(|n| p.contains(n)).count() > 40)
        );
        for bad in ["0/2", "3/2", "x", "1/0", "1-2"] {
            assert!(Partition::parse(bad).is_err(), "{bad}");
        }
    }
}
