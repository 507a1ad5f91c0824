//! `[fleets.NAME]`: a named set of targets applied, verified and rolled back as one fleet run.

use super::Environment;

/// One fleet as dbsafe.toml describes it (members are resolved later, by `crate::fleet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The fleet's name, as given to `--fleet`.
    pub name: String,
    /// Named targets of `[targets]` that are members (`targets`).
    pub targets: Vec<String>,
    /// Server URLs without a database (`servers`), or read from `servers-env`.
    pub servers: Servers,
    /// Which databases of the servers are members.
    pub databases: Databases,
    /// One PostgreSQL database whose schemas are members (`url`).
    pub url: Option<String>,
    /// The variable holding that database's URL (`url-env`).
    pub url_env: Option<String>,
    /// Which schemas of each database (`url`, or each of the servers' databases) are
    /// members, a schema per tenant (`schemas`, `schemas-from`; PostgreSQL only). Each schema
    /// member works with `search_path` set to its schema alone.
    pub schemas: Databases,
    /// SQLite files that are members (`files`, a path whose file name may hold `*` and `?`,
    /// relative to dbsafe.toml's directory).
    pub files: Option<String>,
    /// The environment of discovered members (`environment`; named targets keep their own).
    pub environment: Environment,
    /// Whether discovered members are protected (`protected`, default: production).
    pub protected: bool,
    /// The first wave (`canary`): a number of members, or members by name.
    pub canary: Canary,
    /// Members applied at once after the canary wave (`concurrency`, default 4).
    pub concurrency: u32,
    /// No new member is started after this many failed (`max-failures`, default 1).
    pub max_failures: u32,
}

/// Where a fleet's servers come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Servers {
    /// No servers (named targets or files only).
    #[default]
    None,
    /// `servers = [...]`.
    Listed(Vec<String>),
    /// `servers-env = "VAR"`: the variable holds URLs separated by spaces, commas or newlines.
    Env(String),
}

/// Which databases of a fleet's servers (or which schemas of a database) are members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Databases {
    /// None (no servers; no schema members).
    #[default]
    None,
    /// `databases = "tenant_%"` (`schemas = ...`): a SQL LIKE pattern on the names.
    Like(String),
    /// `databases-from = "SELECT ..."` (`schemas-from`): a query on each server (database)
    /// returning one name per row.
    Query(String),
}

/// The canary wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    /// The first N members (in member order).
    Count(u32),
    /// These members, by name.
    Members(Vec<String>),
}

/// Defaults of a fleet's scheduling keys.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// Default `max-failures`.
pub const DEFAULT_MAX_FAILURES: u32 = 1;
/// Default `canary`.
pub const DEFAULT_CANARY: u32 = 1;
