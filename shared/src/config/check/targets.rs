//! `[targets.NAME]` and `default-target`: the derived type of a target and its checks.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::leaves::{NonEmpty, OneOf};
use super::tolerant::{Field, Table};
use super::{Checker, Document, Section, span_of, suggest};
use crate::config::{Choice, DEFAULT_TARGET, DEFAULT_URL_ENV, Environment, TargetConfig};

/// `[targets.NAME]`. The order of the fields is the order of "known keys".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct TargetSection {
    url: Option<Field<NonEmpty>>,
    url_env: Option<Field<NonEmpty>>,
    direct_url: Option<Field<NonEmpty>>,
    direct_url_env: Option<Field<NonEmpty>>,
    environment: Option<Field<OneOf<Environment>>>,
    protected: Option<Field<bool>>,
}

/// `[targets]`: each target by name.
pub(super) type Targets = BTreeMap<String, Table<TargetSection>>;

impl Checker<'_> {
    /// Checks `[targets.NAME]` tables.
    pub(super) fn targets(
        &mut self,
        top: &Section<Document>,
        targets: Option<&Table<Targets>>,
    ) -> BTreeMap<String, TargetConfig> {
        let mut checked = BTreeMap::new();
        let Some(section) = self.section(top, "targets", targets) else {
            return checked;
        };
        for key in section.keys {
            let name = key.get_ref().as_str();
            if !is_target_name(name) {
                let message = format!(
                    "invalid target name {name:?}: use only lowercase letters, digits, `-` and `_`"
                );
                self.problem(key.span(), section.path(name), message);
            }
            let Some(target) = self.section(&section, name, section.value.get(name)) else {
                continue;
            };
            checked.insert(name.to_owned(), self.target(name, &target));
        }
        checked
    }

    /// Checks one `[targets.NAME]` table.
    fn target(&mut self, name: &str, section: &Section<TargetSection>) -> TargetConfig {
        let value = section.value;
        let (url, url_env) = self.url_pair(section, "url", &value.url, "url-env", &value.url_env);
        let (direct_url, direct_url_env) = self.url_pair(
            section,
            "direct-url",
            &value.direct_url,
            "direct-url-env",
            &value.direct_url_env,
        );
        self.direct_url_scheme(section, url, direct_url);
        let environment = self
            .take(section, "environment", &value.environment)
            .map(|choice| choice.0);
        if value.environment.is_none() {
            let allowed: Vec<&str> = Environment::ALL.iter().map(|e| e.as_str()).collect();
            let message = format!(
                "missing key `environment` for target `{name}`: set it to one of \"{}\"",
                allowed.join("\", \"")
            );
            self.problem(section.span.clone(), section.path("environment"), message);
        }
        let environment = environment.unwrap_or(Environment::Production);
        let protected = self
            .take(section, "protected", &value.protected)
            .copied()
            .unwrap_or(environment == Environment::Production);
        TargetConfig {
            name: name.to_owned(),
            url: url.map(str::to_owned),
            url_env: url_env.unwrap_or(DEFAULT_URL_ENV).to_owned(),
            direct_url: direct_url.map(str::to_owned),
            direct_url_env: direct_url_env.map(str::to_owned),
            environment,
            protected,
        }
    }

    /// Checks a URL written in the file (`url_key`) and the environment variable holding
    /// one (`env_key`): each non-empty, not both, the variable's name valid.
    fn url_pair<'v>(
        &mut self,
        section: &Section<TargetSection>,
        url_key: &str,
        url: &'v Option<Field<NonEmpty>>,
        env_key: &str,
        env: &'v Option<Field<NonEmpty>>,
    ) -> (Option<&'v str>, Option<&'v str>) {
        let url_value = self.take(section, url_key, url).map(|url| url.0.as_str());
        let env_value = self.take(section, env_key, env).map(|env| env.0.as_str());
        if let (Some(_), Some(span)) = (url_value, span_of(env)) {
            let message = format!(
                "both `{url_key}` and `{env_key}` are set: keep only one (prefer `{env_key}`, \
                 which keeps the URL and its password out of the repository)"
            );
            self.problem(span, section.path(env_key), message);
        }
        if let (Some(name), Some(span)) = (env_value, span_of(env))
            && name.contains(['=', '\0'])
        {
            let message = format!("{name:?} is not a valid environment variable name");
            self.problem(span, section.path(env_key), message);
        }
        (url_value, env_value)
    }

    /// `direct-url` bypasses a PostgreSQL connection pooler: it must be a PostgreSQL URL,
    /// on a target whose written `url` (if any) is one too.
    fn direct_url_scheme(
        &mut self,
        section: &Section<TargetSection>,
        url: Option<&str>,
        direct: Option<&str>,
    ) {
        let value = section.value;
        let is_pg = |u: &str| {
            let lower = u.trim().to_ascii_lowercase();
            lower.starts_with("postgres://") || lower.starts_with("postgresql://")
        };
        if let (Some(direct), Some(span)) = (direct, span_of(&value.direct_url))
            && !is_pg(direct)
        {
            let message = "must be a postgres:// URL that reaches the server directly, \
                           not through a connection pooler (PgBouncer in transaction mode)"
                .to_owned();
            self.problem(span, section.path("direct-url"), message);
        }
        let direct_key = [
            ("direct-url", &value.direct_url),
            ("direct-url-env", &value.direct_url_env),
        ]
        .into_iter()
        .find_map(|(key, field)| Some((key, span_of(field)?)));
        if let (Some((key, span)), Some(url)) = (direct_key, url)
            && !is_pg(url)
        {
            let message = format!(
                "`{key}` is for PostgreSQL targets behind a connection pooler, but `url` is not a postgres:// URL: remove `{key}`"
            );
            self.problem(span, section.path(key), message);
        }
    }

    /// Checks `default-target` against the targets defined (or the implicit `default`).
    pub(super) fn default_target(&mut self, top: &Section<Document>) -> Option<String> {
        let field = &top.value.default_target;
        let name = self.take(top, "default-target", field)?.0.as_str();
        let mut known: Vec<&str> = match &top.value.targets {
            Some(Table {
                value: Ok(_), keys, ..
            }) if !keys.is_empty() => keys.iter().map(|key| key.get_ref().as_str()).collect(),
            // `targets` of the wrong type is already reported.
            Some(Table { value: Err(_), .. }) => return None,
            Some(_) | None => vec![DEFAULT_TARGET],
        };
        known.sort_unstable();
        if known.contains(&name) {
            return Some(name.to_owned());
        }
        let hint = match suggest(name, &known) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("known targets: {}", known.join(", ")),
        };
        let message = format!("no target named `{name}`; {hint}");
        self.problem(span_of(field)?, top.path("default-target"), message);
        None
    }
}

/// Whether `name` is a valid target name: `[a-z0-9_-]+`.
pub(super) fn is_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
