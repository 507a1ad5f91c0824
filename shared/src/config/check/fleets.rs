//! Checks `[fleets.NAME]` tables.

use std::collections::BTreeMap;

use toml::de::DeValue;

use super::super::fleet::{
    Canary, DEFAULT_CANARY, DEFAULT_CONCURRENCY, DEFAULT_MAX_FAILURES, Databases, FleetConfig,
    Servers,
};
use super::super::{Choice, Environment, TargetConfig};
use super::{Checker, Section, is_target_name, suggest};

/// Whether a URL is a PostgreSQL one (its scheme).
fn is_postgres(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Keys allowed in a `[fleets.NAME]` table.
pub(in crate::config) const FLEET_KEYS: &[&str] = &[
    "targets",
    "servers",
    "servers-env",
    "databases",
    "databases-from",
    "url",
    "url-env",
    "schemas",
    "schemas-from",
    "files",
    "environment",
    "protected",
    "canary",
    "concurrency",
    "max-failures",
];

impl Checker<'_> {
    /// Checks `[fleets.NAME]` tables against the targets defined.
    pub(super) fn fleets(
        &mut self,
        top: &Section,
        targets: &BTreeMap<String, TargetConfig>,
    ) -> BTreeMap<String, FleetConfig> {
        let mut fleets = BTreeMap::new();
        let Some(section) = self.table(top, "fleets") else {
            return fleets;
        };
        for (name, _) in section.entries.iter() {
            let name_text = name.get_ref().as_ref();
            if !is_target_name(name_text) {
                let message = format!(
                    "invalid fleet name {name_text:?}: use only lowercase letters, digits, `-` and `_`"
                );
                self.problem(name.span(), section.path(name_text), message);
            }
            let Some(fleet) = self.table(&section, name_text) else {
                continue;
            };
            let fleet = self.fleet(name_text, &fleet, targets);
            fleets.insert(name_text.to_owned(), fleet);
        }
        fleets
    }

    fn fleet(
        &mut self,
        name: &str,
        section: &Section,
        targets: &BTreeMap<String, TargetConfig>,
    ) -> FleetConfig {
        self.unknown_keys(section, FLEET_KEYS);
        let members = self.member_targets(section, targets);
        let servers = self.servers(section);
        let databases = self.databases(section, &servers);
        let (url, url_env) = self.database_url(section);
        let has_url = url.is_some() || url_env.is_some();
        let schemas = self.schemas(section, &servers, url.as_deref(), has_url);
        let files = self.non_empty(section, "files").map(str::to_owned);
        if let (Some(_), true, Some(item)) = (
            &files,
            servers != Servers::None || has_url,
            section.get("files"),
        ) {
            let message =
                "`files` (SQLite) and `servers` or `url` cannot be mixed in one fleet: make two fleets"
                    .into();
            self.problem(item.span(), section.path("files"), message);
        }
        if members.is_empty() && servers == Servers::None && files.is_none() && !has_url {
            let message = format!(
                "fleet `{name}` has no members: list `targets = [...]`, or `servers = [...]` with \
                 `databases = \"PATTERN\"`, or `url = \"postgres://...\"` with `schemas = \"PATTERN\"`, \
                 or SQLite `files = \"DIR/*.db\"`"
            );
            let span = section
                .entries
                .iter()
                .next()
                .map_or(0..0, |(k, _)| k.span());
            self.problem(span, section.path("targets"), message);
        }
        let discovered = servers != Servers::None || files.is_some() || has_url;
        let environment = self.choice(section, "environment");
        if discovered && environment.is_none() && section.get("environment").is_none() {
            let allowed: Vec<&str> = Environment::ALL.iter().map(|e| e.as_str()).collect();
            let message = format!(
                "missing key `environment` for the members fleet `{name}` discovers: set it to one of \"{}\"",
                allowed.join("\", \"")
            );
            let span = section
                .entries
                .iter()
                .next()
                .map_or(0..0, |(k, _)| k.span());
            self.problem(span, section.path("environment"), message);
        }
        let environment = environment.unwrap_or(Environment::Production);
        FleetConfig {
            name: name.to_owned(),
            targets: members,
            servers,
            databases,
            url,
            url_env,
            schemas,
            files,
            environment,
            protected: self
                .boolean(section, "protected")
                .unwrap_or(environment == Environment::Production),
            canary: self.canary(section),
            concurrency: self
                .count(section, "concurrency", 1)
                .unwrap_or(DEFAULT_CONCURRENCY),
            max_failures: self
                .count(section, "max-failures", 1)
                .unwrap_or(DEFAULT_MAX_FAILURES),
        }
    }

    /// `targets = [...]`: each must name a `[targets.NAME]`.
    fn member_targets(
        &mut self,
        section: &Section,
        targets: &BTreeMap<String, TargetConfig>,
    ) -> Vec<String> {
        let names = self.strings(section, "targets").unwrap_or_default();
        let span = section.get("targets").map_or(0..0, |item| item.span());
        let known: Vec<&str> = targets.keys().map(String::as_str).collect();
        for name in &names {
            if !targets.contains_key(name) {
                let hint = match suggest(name, &known) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("known targets: {}", known.join(", ")),
                };
                let message = format!("no target named `{name}`; {hint}");
                self.problem(span.clone(), section.path("targets"), message);
            }
        }
        names
    }

    /// `servers = [...]` or `servers-env = "VAR"` (one of them), server URLs only.
    fn servers(&mut self, section: &Section) -> Servers {
        let listed = self.strings(section, "servers");
        let env = self.non_empty(section, "servers-env");
        if let (Some(_), Some(_), Some(item)) = (&listed, env, section.get("servers-env")) {
            let message = "both `servers` and `servers-env` are set: keep only one".to_owned();
            self.problem(item.span(), section.path("servers-env"), message);
        }
        if let Some(urls) = listed {
            let span = section.get("servers").map_or(0..0, |item| item.span());
            for url in &urls {
                let lower = url.to_ascii_lowercase();
                if !["postgres://", "postgresql://", "mysql://", "mariadb://"]
                    .iter()
                    .any(|scheme| lower.starts_with(scheme))
                {
                    let message = format!(
                        "{} is not a server URL: write postgres://user@host:port or mysql://user@host:port (SQLite members go in `files`)",
                        crate::target::redact(url)
                    );
                    self.problem(span.clone(), section.path("servers"), message);
                }
            }
            return Servers::Listed(urls);
        }
        env.map_or(Servers::None, |var| Servers::Env(var.to_owned()))
    }

    /// `databases` or `databases-from` (one of them), needed with servers.
    fn databases(&mut self, section: &Section, servers: &Servers) -> Databases {
        let databases = self.names(section, "databases");
        let has_servers = *servers != Servers::None;
        if has_servers && databases == Databases::None {
            let message = "the fleet's servers need `databases = \"PATTERN\"` (SQL LIKE, e.g. \"tenant_%\") or `databases-from = \"SELECT ...\"`".to_owned();
            let span = section
                .get("servers")
                .or(section.get("servers-env"))
                .map_or(0..0, |item| item.span());
            self.problem(span, section.path("databases"), message);
        }
        if !has_servers && databases != Databases::None {
            let key = if matches!(databases, Databases::Query(_)) {
                "databases-from"
            } else {
                "databases"
            };
            let span = section.get(key).map_or(0..0, |item| item.span());
            let message = format!("`{key}` needs `servers = [...]` or `servers-env` to look on");
            self.problem(span, section.path(key), message);
        }
        databases
    }

    /// `url = "postgres://..."` or `url-env = "VAR"` (one of them): the database whose
    /// schemas are members.
    fn database_url(&mut self, section: &Section) -> (Option<String>, Option<String>) {
        let url = self.non_empty(section, "url").map(str::to_owned);
        let env = self.non_empty(section, "url-env").map(str::to_owned);
        if let (Some(_), Some(_), Some(item)) = (&url, &env, section.get("url-env")) {
            let message = "both `url` and `url-env` are set: keep only one".to_owned();
            self.problem(item.span(), section.path("url-env"), message);
        }
        if let (Some(url), Some(item)) = (&url, section.get("url"))
            && !is_postgres(url)
        {
            let message = format!(
                "{} is not a PostgreSQL URL: a fleet's `url` names the one database whose schemas are members (`schemas`), and schema members are PostgreSQL only",
                crate::target::redact(url)
            );
            self.problem(item.span(), section.path("url"), message);
        }
        (url, env)
    }

    /// `schemas` or `schemas-from` (one of them): needed with `url`, PostgreSQL only.
    fn schemas(
        &mut self,
        section: &Section,
        servers: &Servers,
        url: Option<&str>,
        has_url: bool,
    ) -> Databases {
        let schemas = self.names(section, "schemas");
        let key = if matches!(schemas, Databases::Query(_)) {
            "schemas-from"
        } else {
            "schemas"
        };
        let span = section.get(key).map_or(0..0, |item| item.span());
        if has_url && schemas == Databases::None {
            let message = "a fleet's `url` names one database: add `schemas = \"PATTERN\"` (SQL LIKE, e.g. \"tenant_%\") or `schemas-from = \"SELECT ...\"` for a schema per tenant (one database alone is a [targets.NAME])".to_owned();
            let span = section
                .get("url")
                .or(section.get("url-env"))
                .map_or(0..0, |item| item.span());
            self.problem(span, section.path("schemas"), message);
        }
        if schemas == Databases::None {
            return schemas;
        }
        if !has_url && *servers == Servers::None {
            let message = format!(
                "`{key}` needs `url = \"postgres://...\"` (or `url-env`, or `servers`) naming the database(s) whose schemas are members"
            );
            self.problem(span.clone(), section.path(key), message);
        }
        let not_postgres = match servers {
            Servers::Listed(urls) => urls.iter().any(|u| !is_postgres(u)),
            _ => false,
        } || url.is_some_and(|u| !is_postgres(u));
        if not_postgres || section.get("files").is_some() {
            let message = format!(
                "`{key}`: a schema per tenant works on PostgreSQL only (`search_path` per member); on MariaDB a schema is a database (use `databases`), SQLite has none (use `files`)"
            );
            self.problem(span, section.path(key), message);
        }
        schemas
    }

    /// `KEY = "PATTERN"` or `KEY-from = "SELECT ..."` (one of them).
    fn names(&mut self, section: &Section, key: &str) -> Databases {
        let from = format!("{key}-from");
        let like = self.non_empty(section, key);
        let query = self.non_empty(section, &from);
        if let (Some(_), Some(_), Some(item)) = (like, query, section.get(&from)) {
            let message = format!("both `{key}` and `{from}` are set: keep only one");
            self.problem(item.span(), section.path(&from), message);
        }
        match (like, query) {
            (Some(pattern), _) => Databases::Like(pattern.to_owned()),
            (None, Some(sql)) => Databases::Query(sql.to_owned()),
            (None, None) => Databases::None,
        }
    }

    /// `canary = N` or `canary = ["member", ...]`.
    fn canary(&mut self, section: &Section) -> Canary {
        match section.get("canary").map(|item| item.get_ref()) {
            None => Canary::Count(DEFAULT_CANARY),
            Some(DeValue::Array(_)) => {
                Canary::Members(self.strings(section, "canary").unwrap_or_default())
            }
            Some(_) => Canary::Count(self.count(section, "canary", 0).unwrap_or(DEFAULT_CANARY)),
        }
    }
}
