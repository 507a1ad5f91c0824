//! `[fleets.NAME]`: the derived type of a fleet and its checks.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;

use super::super::fleet::{
    Canary, DEFAULT_CANARY, DEFAULT_CONCURRENCY, DEFAULT_MAX_FAILURES, Databases, FleetConfig,
    Servers,
};
use super::super::{Choice, Environment, TargetConfig};
use super::leaves::{Count, NonEmpty, OneOf, Strings};
use super::tolerant::{Field, Table};
use super::{Checker, Document, Section, is_target_name, span_of, suggest};

/// Whether a URL is a PostgreSQL one (its scheme).
fn is_postgres(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `[fleets.NAME]`. The order of the fields is the order of "known keys".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct FleetSection {
    targets: Option<Field<Strings>>,
    servers: Option<Field<Strings>>,
    servers_env: Option<Field<NonEmpty>>,
    databases: Option<Field<NonEmpty>>,
    databases_from: Option<Field<NonEmpty>>,
    url: Option<Field<NonEmpty>>,
    url_env: Option<Field<NonEmpty>>,
    schemas: Option<Field<NonEmpty>>,
    schemas_from: Option<Field<NonEmpty>>,
    files: Option<Field<NonEmpty>>,
    environment: Option<Field<OneOf<Environment>>>,
    protected: Option<Field<bool>>,
    canary: Option<Field<Canary>>,
    concurrency: Option<Field<Count<1>>>,
    max_failures: Option<Field<Count<1>>>,
}

/// `[fleets]`: each fleet by name.
pub(super) type Fleets = BTreeMap<String, Table<FleetSection>>;

impl Checker<'_> {
    /// Checks `[fleets.NAME]` tables against the targets defined.
    pub(super) fn fleets(
        &mut self,
        top: &Section<Document>,
        fleets: Option<&Table<Fleets>>,
        targets: &BTreeMap<String, TargetConfig>,
    ) -> BTreeMap<String, FleetConfig> {
        let mut checked = BTreeMap::new();
        let Some(section) = self.section(top, "fleets", fleets) else {
            return checked;
        };
        for key in section.keys {
            let name = key.get_ref().as_str();
            if !is_target_name(name) {
                let message = format!(
                    "invalid fleet name {name:?}: use only lowercase letters, digits, `-` and `_`"
                );
                self.problem(key.span(), section.path(name), message);
            }
            let Some(fleet) = self.section(&section, name, section.value.get(name)) else {
                continue;
            };
            checked.insert(name.to_owned(), self.fleet(name, &fleet, targets));
        }
        checked
    }

    fn fleet(
        &mut self,
        name: &str,
        section: &Section<FleetSection>,
        targets: &BTreeMap<String, TargetConfig>,
    ) -> FleetConfig {
        let value = section.value;
        let members = self.member_targets(section, targets);
        let servers = self.servers(section);
        let databases = self.databases(section, &servers);
        let (url, url_env) = self.database_url(section);
        let has_url = url.is_some() || url_env.is_some();
        let schemas = self.schemas(section, &servers, url.as_deref(), has_url);
        let files = self
            .take(section, "files", &value.files)
            .map(|files| files.0.clone());
        if let (Some(_), true, Some(span)) = (
            &files,
            servers != Servers::None || has_url,
            span_of(&value.files),
        ) {
            let message =
                "`files` (SQLite) and `servers` or `url` cannot be mixed in one fleet: make two fleets"
                    .into();
            self.problem(span, section.path("files"), message);
        }
        if members.is_empty() && servers == Servers::None && files.is_none() && !has_url {
            let message = format!(
                "fleet `{name}` has no members: list `targets = [...]`, or `servers = [...]` with \
                 `databases = \"PATTERN\"`, or `url = \"postgres://...\"` with `schemas = \"PATTERN\"`, \
                 or SQLite `files = \"DIR/*.db\"`"
            );
            self.problem(section.first_key_span(), section.path("targets"), message);
        }
        let discovered = servers != Servers::None || files.is_some() || has_url;
        let environment = self
            .take(section, "environment", &value.environment)
            .map(|choice| choice.0);
        if discovered && environment.is_none() && value.environment.is_none() {
            let allowed: Vec<&str> = Environment::ALL.iter().map(|e| e.as_str()).collect();
            let message = format!(
                "missing key `environment` for the members fleet `{name}` discovers: set it to one of \"{}\"",
                allowed.join("\", \"")
            );
            self.problem(
                section.first_key_span(),
                section.path("environment"),
                message,
            );
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
                .take(section, "protected", &value.protected)
                .copied()
                .unwrap_or(environment == Environment::Production),
            canary: self
                .take(section, "canary", &value.canary)
                .cloned()
                .unwrap_or(Canary::Count(DEFAULT_CANARY)),
            concurrency: self
                .take(section, "concurrency", &value.concurrency)
                .map_or(DEFAULT_CONCURRENCY, |count| count.0),
            max_failures: self
                .take(section, "max-failures", &value.max_failures)
                .map_or(DEFAULT_MAX_FAILURES, |count| count.0),
        }
    }

    /// `targets = [...]`: each must name a `[targets.NAME]`.
    fn member_targets(
        &mut self,
        section: &Section<FleetSection>,
        targets: &BTreeMap<String, TargetConfig>,
    ) -> Vec<String> {
        let field = &section.value.targets;
        let names = self
            .take(section, "targets", field)
            .map(|names| names.0.clone())
            .unwrap_or_default();
        let span = span_of(field).unwrap_or(0..0);
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
    fn servers(&mut self, section: &Section<FleetSection>) -> Servers {
        let value = section.value;
        let listed = self.take(section, "servers", &value.servers);
        let env = self.take(section, "servers-env", &value.servers_env);
        if let (Some(_), Some(_), Some(span)) = (listed, env, span_of(&value.servers_env)) {
            let message = "both `servers` and `servers-env` are set: keep only one".to_owned();
            self.problem(span, section.path("servers-env"), message);
        }
        if let Some(urls) = listed {
            let span = span_of(&value.servers).unwrap_or(0..0);
            for url in &urls.0 {
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
            return Servers::Listed(urls.0.clone());
        }
        env.map_or(Servers::None, |var| Servers::Env(var.0.clone()))
    }

    /// `databases` or `databases-from` (one of them), needed with servers.
    fn databases(&mut self, section: &Section<FleetSection>, servers: &Servers) -> Databases {
        let value = section.value;
        let databases = self.names(
            section,
            ("databases", &value.databases),
            ("databases-from", &value.databases_from),
        );
        let has_servers = *servers != Servers::None;
        if has_servers && databases == Databases::None {
            let message = "the fleet's servers need `databases = \"PATTERN\"` (SQL LIKE, e.g. \"tenant_%\") or `databases-from = \"SELECT ...\"`".to_owned();
            let span = span_of(&value.servers)
                .or(span_of(&value.servers_env))
                .unwrap_or(0..0);
            self.problem(span, section.path("databases"), message);
        }
        if !has_servers && databases != Databases::None {
            let (key, field) = if matches!(databases, Databases::Query(_)) {
                ("databases-from", &value.databases_from)
            } else {
                ("databases", &value.databases)
            };
            let span = span_of(field).unwrap_or(0..0);
            let message = format!("`{key}` needs `servers = [...]` or `servers-env` to look on");
            self.problem(span, section.path(key), message);
        }
        databases
    }

    /// `url = "postgres://..."` or `url-env = "VAR"` (one of them): the database whose
    /// schemas are members.
    fn database_url(
        &mut self,
        section: &Section<FleetSection>,
    ) -> (Option<String>, Option<String>) {
        let value = section.value;
        let url = self
            .take(section, "url", &value.url)
            .map(|url| url.0.clone());
        let env = self
            .take(section, "url-env", &value.url_env)
            .map(|env| env.0.clone());
        if let (Some(_), Some(_), Some(span)) = (&url, &env, span_of(&value.url_env)) {
            let message = "both `url` and `url-env` are set: keep only one".to_owned();
            self.problem(span, section.path("url-env"), message);
        }
        if let (Some(url), Some(span)) = (&url, span_of(&value.url))
            && !is_postgres(url)
        {
            let message = format!(
                "{} is not a PostgreSQL URL: a fleet's `url` names the one database whose schemas are members (`schemas`), and schema members are PostgreSQL only",
                crate::target::redact(url)
            );
            self.problem(span, section.path("url"), message);
        }
        (url, env)
    }

    /// `schemas` or `schemas-from` (one of them): needed with `url`, PostgreSQL only.
    fn schemas(
        &mut self,
        section: &Section<FleetSection>,
        servers: &Servers,
        url: Option<&str>,
        has_url: bool,
    ) -> Databases {
        let value = section.value;
        let schemas = self.names(
            section,
            ("schemas", &value.schemas),
            ("schemas-from", &value.schemas_from),
        );
        let (key, field) = if matches!(schemas, Databases::Query(_)) {
            ("schemas-from", &value.schemas_from)
        } else {
            ("schemas", &value.schemas)
        };
        let span: Range<usize> = span_of(field).unwrap_or(0..0);
        if has_url && schemas == Databases::None {
            let message = "a fleet's `url` names one database: add `schemas = \"PATTERN\"` (SQL LIKE, e.g. \"tenant_%\") or `schemas-from = \"SELECT ...\"` for a schema per tenant (one database alone is a [targets.NAME])".to_owned();
            let span = span_of(&value.url)
                .or(span_of(&value.url_env))
                .unwrap_or(0..0);
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
        if not_postgres || value.files.is_some() {
            let message = format!(
                "`{key}`: a schema per tenant works on PostgreSQL only (`search_path` per member); on MariaDB a schema is a database (use `databases`), SQLite has none (use `files`)"
            );
            self.problem(span, section.path(key), message);
        }
        schemas
    }

    /// `KEY = "PATTERN"` or `KEY-from = "SELECT ..."` (one of them).
    fn names(
        &mut self,
        section: &Section<FleetSection>,
        (key, like): (&str, &Option<Field<NonEmpty>>),
        (from, query): (&str, &Option<Field<NonEmpty>>),
    ) -> Databases {
        let like_value = self.take(section, key, like);
        let query_value = self.take(section, from, query);
        if let (Some(_), Some(_), Some(span)) = (like_value, query_value, span_of(query)) {
            let message = format!("both `{key}` and `{from}` are set: keep only one");
            self.problem(span, section.path(from), message);
        }
        match (like_value, query_value) {
            (Some(pattern), _) => Databases::Like(pattern.0.clone()),
            (None, Some(sql)) => Databases::Query(sql.0.clone()),
            (None, None) => Databases::None,
        }
    }
}
