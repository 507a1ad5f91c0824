//! Checks `[targets.NAME]` and `default-target`.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Checker, Section, TARGET_KEYS, suggest};
use crate::config::{Choice, DEFAULT_TARGET, DEFAULT_URL_ENV, Environment, TargetConfig};
use toml::de::DeValue;

impl Checker<'_> {
    /// Checks `[targets.NAME]` tables.
    pub(super) fn targets(&mut self, top: &Section) -> BTreeMap<String, TargetConfig> {
        let mut targets = BTreeMap::new();
        let Some(section) = self.table(top, "targets") else {
            return targets;
        };
        for (name, item) in section.entries.iter() {
            let name_text = name.get_ref().as_ref();
            if !is_target_name(name_text) {
                let message = format!(
                    "invalid target name {name_text:?}: use only lowercase letters, digits, \
                     `-` and `_`"
                );
                self.problem(name.span(), section.path(name_text), message);
            }
            let Some(target) = self.table(&section, name_text) else {
                continue;
            };
            let target = self.target(name_text, &target, item.span());
            targets.insert(name_text.to_owned(), target);
        }
        targets
    }

    /// Checks one `[targets.NAME]` table, whose header is at `span`.
    fn target(&mut self, name: &str, section: &Section, span: Range<usize>) -> TargetConfig {
        self.unknown_keys(section, TARGET_KEYS);
        let (url, url_env) = self.url_pair(section, "url", "url-env");
        let (direct_url, direct_url_env) = self.url_pair(section, "direct-url", "direct-url-env");
        self.direct_url_scheme(section, url, direct_url);
        let environment = self.choice(section, "environment");
        if section.get("environment").is_none() {
            let allowed: Vec<&str> = Environment::ALL.iter().map(|e| e.as_str()).collect();
            let message = format!(
                "missing key `environment` for target `{name}`: set it to one of \"{}\"",
                allowed.join("\", \"")
            );
            self.problem(span, section.path("environment"), message);
        }
        let environment = environment.unwrap_or(Environment::Production);
        let protected = self
            .boolean(section, "protected")
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
    fn url_pair<'a>(
        &mut self,
        section: &Section<'a, '_>,
        url_key: &str,
        env_key: &str,
    ) -> (Option<&'a str>, Option<&'a str>) {
        let url = self.non_empty(section, url_key);
        let url_env = self.non_empty(section, env_key);
        if let (Some(_), Some(item)) = (url, section.get(env_key)) {
            let message = format!(
                "both `{url_key}` and `{env_key}` are set: keep only one (prefer `{env_key}`, \
                 which keeps the URL and its password out of the repository)"
            );
            self.problem(item.span(), section.path(env_key), message);
        }
        if let (Some(env), Some(item)) = (url_env, section.get(env_key))
            && env.contains(['=', '\0'])
        {
            let message = format!("{env:?} is not a valid environment variable name");
            self.problem(item.span(), section.path(env_key), message);
        }
        (url, url_env)
    }

    /// `direct-url` bypasses a PostgreSQL connection pooler: it must be a PostgreSQL URL,
    /// on a target whose written `url` (if any) is one too.
    fn direct_url_scheme(&mut self, section: &Section, url: Option<&str>, direct: Option<&str>) {
        let is_pg = |u: &str| {
            let lower = u.trim().to_ascii_lowercase();
            lower.starts_with("postgres://") || lower.starts_with("postgresql://")
        };
        if let (Some(direct), Some(item)) = (direct, section.get("direct-url"))
            && !is_pg(direct)
        {
            let message = "must be a postgres:// URL that reaches the server directly, \
                           not through a connection pooler (PgBouncer in transaction mode)"
                .to_owned();
            self.problem(item.span(), section.path("direct-url"), message);
        }
        let direct_key = ["direct-url", "direct-url-env"]
            .into_iter()
            .find(|key| section.get(key).is_some());
        if let (Some(key), Some(url)) = (direct_key, url)
            && !is_pg(url)
            && let Some(item) = section.get(key)
        {
            let message = format!(
                "`{key}` is for PostgreSQL targets behind a connection pooler, but `url` is not a postgres:// URL: remove `{key}`"
            );
            self.problem(item.span(), section.path(key), message);
        }
    }

    /// Checks `default-target` against the targets defined (or the implicit `default`).
    pub(super) fn default_target(&mut self, top: &Section) -> Option<String> {
        let name = self.non_empty(top, "default-target")?;
        let mut known: Vec<&str> = match top.get("targets").map(|item| item.get_ref()) {
            Some(DeValue::Table(table)) if !table.is_empty() => table
                .iter()
                .map(|(key, _)| key.get_ref().as_ref())
                .collect(),
            // `targets` of the wrong type is already reported.
            Some(DeValue::Table(_)) | None => vec![DEFAULT_TARGET],
            Some(_) => return None,
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
        let span = top.get("default-target")?.span();
        self.problem(span, top.path("default-target"), message);
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
