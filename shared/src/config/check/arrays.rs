//! The arrays of tables of dbsafe.toml, `[[seed]]` and `[[invariant]]`: their derived types
//! and checks.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::leaves::{NonEmpty, OneOf, SettingText, Strings};
use super::tolerant::{Field, List, Table};
use super::{Checker, Document, Place, SQL_FILE_PREFIX, Section, span_of, with_article};
use crate::config::{Expectation, Invariant, InvariantSeverity, Phase, Seed};

/// One `[[seed]]`. The order of the fields is the order of "known keys".
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct SeedSection {
    name: Option<Field<NonEmpty>>,
    file: Option<Field<NonEmpty>>,
    targets: Option<Field<Strings>>,
    volatile: Option<Field<Strings>>,
}

/// One `[[invariant]]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct InvariantSection {
    name: Option<Field<NonEmpty>>,
    sql: Option<Field<NonEmpty>>,
    sql_file: Option<Field<NonEmpty>>,
    expect: Option<Field<Expectation>>,
    severity: Option<Field<OneOf<InvariantSeverity>>>,
    phase: Option<Field<OneOf<Phase>>>,
    targets: Option<Field<Strings>>,
    role: Option<Field<NonEmpty>>,
    settings: Option<Table<BTreeMap<String, Field<SettingText>>>>,
    expect_error: Option<Field<NonEmpty>>,
}

impl Checker<'_> {
    /// The entries of the array of tables `[[key]]`, if present and an array; another value
    /// is recorded.
    fn array_of_tables<'v, T>(
        &mut self,
        top: &Section<Document>,
        key: &str,
        list: Option<&'v List<Table<T>>>,
    ) -> &'v [Table<T>] {
        let Some(list) = list else {
            return &[];
        };
        match &list.items {
            Ok(entries) => entries,
            Err(found) => {
                let message = format!(
                    "expected an array of tables [[{key}]], found {}",
                    with_article(found)
                );
                self.problem(list.span.clone(), top.path(key), message);
                &[]
            }
        }
    }

    /// Entry `index` of `[[key]]` as a section named `key[INDEX]` (its unknown keys
    /// recorded), if it is a table; another value is recorded.
    fn array_entry<'v, T: DeserializeOwned>(
        &mut self,
        key: &str,
        index: usize,
        entry: &'v Table<T>,
    ) -> Option<Section<'v, T>> {
        let value = match &entry.value {
            Ok(value) => value,
            Err(found) => {
                let message = format!("expected a table [[{key}]], found {}", with_article(found));
                self.problem(entry.span.clone(), key.to_owned(), message);
                return None;
            }
        };
        let section = Section {
            place: Place {
                name: format!("{key}[{index}]"),
            },
            span: entry.span.clone(),
            keys: &entry.keys,
            value,
        };
        self.unknown_keys(&section);
        Some(section)
    }

    /// Checks `[[seed]]` tables.
    pub(super) fn seeds(
        &mut self,
        top: &Section<Document>,
        list: Option<&List<Table<SeedSection>>>,
    ) -> Vec<Seed> {
        let mut out: Vec<Seed> = Vec::new();
        for (index, entry) in self.array_of_tables(top, "seed", list).iter().enumerate() {
            let Some(section) = self.array_entry("seed", index, entry) else {
                continue;
            };
            let value = section.value;
            let name = self
                .take(&section, "name", &value.name)
                .map(|name| name.0.clone());
            let file = self
                .sql_file(&section, "file", &value.file)
                .map(str::to_owned);
            for (key, missing, field) in [
                ("name", name.is_none(), &value.name),
                ("file", file.is_none(), &value.file),
            ] {
                if missing && field.is_none() {
                    let message = format!("every seed needs `{key}`");
                    self.problem(section.span.clone(), section.path(key), message);
                }
            }
            if let Some(name) = &name
                && out.iter().any(|s| &s.name == name)
            {
                self.problem(
                    section.span.clone(),
                    section.path("name"),
                    format!("seed name \"{name}\" is used twice: names must be unique"),
                );
            }
            let targets = self
                .take(&section, "targets", &value.targets)
                .map(|targets| targets.0.clone());
            let volatile = self.volatile_columns(&section);
            if let (Some(name), Some(file)) = (name, file) {
                out.push(Seed {
                    name,
                    sql: file,
                    targets,
                    volatile,
                });
            }
        }
        out
    }

    /// `volatile` of a `[[seed]]`: a list of `table.column`.
    fn volatile_columns(&mut self, section: &Section<SeedSection>) -> Vec<String> {
        let field = &section.value.volatile;
        let list = self
            .take(section, "volatile", field)
            .map(|list| list.0.clone())
            .unwrap_or_default();
        if let Some(span) = span_of(field) {
            for bad in list.iter().filter(|c| {
                c.rsplit_once('.')
                    .is_none_or(|(t, col)| t.is_empty() || col.is_empty())
            }) {
                self.problem(
                    span.clone(),
                    section.path("volatile"),
                    format!("\"{bad}\" is not a column: write it as \"table.column\""),
                );
            }
        }
        list
    }

    /// `settings` of an `[[invariant]]`: a table of setting names to string values.
    fn settings(&mut self, section: &Section<InvariantSection>) -> Vec<(String, String)> {
        let Some(table) = self.section(section, "settings", section.value.settings.as_ref()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, field) in table.value {
            match &field.value {
                Ok(text) => out.push((name.clone(), text.0.clone())),
                Err(mistake) => self.mistake(table.path(name), mistake),
            }
        }
        out.sort();
        out
    }

    /// Checks `[[invariant]]` tables.
    pub(super) fn invariants(
        &mut self,
        top: &Section<Document>,
        list: Option<&List<Table<InvariantSection>>>,
    ) -> Vec<Invariant> {
        let mut out: Vec<Invariant> = Vec::new();
        for (index, entry) in self
            .array_of_tables(top, "invariant", list)
            .iter()
            .enumerate()
        {
            let Some(section) = self.array_entry("invariant", index, entry) else {
                continue;
            };
            let value = section.value;
            let entry = section.span.clone();
            let name = self
                .take(&section, "name", &value.name)
                .map(|name| name.0.clone());
            if name.is_none() && value.name.is_none() {
                let message = "every invariant needs a `name`".into();
                self.problem(entry.clone(), section.path("name"), message);
            }
            if let Some(name) = &name
                && out.iter().any(|i| &i.name == name)
            {
                self.problem(
                    entry.clone(),
                    section.path("name"),
                    format!("invariant name \"{name}\" is used twice: names must be unique"),
                );
            }
            let sql = self
                .take(&section, "sql", &value.sql)
                .map(|sql| sql.0.clone());
            let sql_file = self
                .sql_file(&section, "sql-file", &value.sql_file)
                .map(str::to_owned);
            let sql = match (sql, sql_file) {
                (Some(_), Some(_)) => {
                    let message = "give `sql` or `sql-file`, not both".into();
                    self.problem(entry.clone(), section.path("sql"), message);
                    None
                }
                (None, None) => {
                    let message =
                        "every invariant needs `sql` (a query) or `sql-file` (a file holding one)"
                            .into();
                    self.problem(entry.clone(), section.path("sql"), message);
                    None
                }
                (Some(sql), None) => Some(sql),
                (None, Some(file)) => Some(format!("{SQL_FILE_PREFIX}{file}")),
            };
            let expect = self.take(&section, "expect", &value.expect).copied();
            if value.expect.is_none() {
                self.problem(entry.clone(), section.path("expect"), "every invariant needs `expect` (\"= 0\", \"> 0\", \"rows = 0\", \"true\", ...)".into());
            }
            let severity = self.take(&section, "severity", &value.severity);
            let phase = self.take(&section, "phase", &value.phase);
            let targets = self
                .take(&section, "targets", &value.targets)
                .map(|targets| targets.0.clone());
            let role = self
                .take(&section, "role", &value.role)
                .map(|role| role.0.clone());
            let settings = self.settings(&section);
            let expect_error = self
                .take(&section, "expect-error", &value.expect_error)
                .map(|text| text.0.clone());
            if let (Some(span), false) = (
                span_of(&value.expect_error),
                expect.is_none_or(|e| e == Expectation::Error),
            ) {
                self.problem(
                    span,
                    section.path("expect-error"),
                    "`expect-error` names the error a refused statement must raise: it needs `expect = \"error\"`".into(),
                );
            }
            if let (Some(name), Some(sql), Some(expect)) = (name, sql, expect) {
                out.push(Invariant {
                    name,
                    sql,
                    expect,
                    severity: severity.map(|choice| choice.0).unwrap_or_default(),
                    phase: phase.map(|choice| choice.0).unwrap_or_default(),
                    targets,
                    role,
                    settings,
                    expect_error,
                });
            }
        }
        out
    }
}
