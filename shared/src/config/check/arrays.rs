//! Checks the arrays of tables of dbsafe.toml: `[[seed]]` and `[[invariant]]`.

use super::{Checker, INVARIANT_KEYS, SEED_KEYS, SQL_FILE_PREFIX, Section, with_article};
use crate::config::{Expectation, Invariant, Seed};
use toml::de::DeValue;

impl Checker<'_> {
    /// Checks `[[seed]]` tables.
    pub(super) fn seeds(&mut self, top: &Section) -> Vec<Seed> {
        let Some(item) = top.get("seed") else {
            return Vec::new();
        };
        let DeValue::Array(array) = item.get_ref() else {
            self.wrong_type(top, "seed", item, "an array of tables [[seed]]");
            return Vec::new();
        };
        let mut out: Vec<Seed> = Vec::new();
        for (index, entry) in array.iter().enumerate() {
            let DeValue::Table(entries) = entry.get_ref() else {
                let message = format!(
                    "expected a table [[seed]], found {}",
                    with_article(entry.get_ref().type_str())
                );
                self.problem(entry.span(), "seed".into(), message);
                continue;
            };
            let section = Section {
                name: format!("seed[{index}]"),
                entries,
            };
            self.unknown_keys(&section, SEED_KEYS);
            let name = self.non_empty(&section, "name").map(str::to_owned);
            let file = self.sql_file(&section, "file").map(str::to_owned);
            for (key, missing) in [("name", name.is_none()), ("file", file.is_none())] {
                if missing && section.get(key).is_none() {
                    self.problem(
                        entry.span(),
                        section.path(key),
                        format!("every seed needs `{key}`"),
                    );
                }
            }
            if let Some(name) = &name
                && out.iter().any(|s| &s.name == name)
            {
                self.problem(
                    entry.span(),
                    section.path("name"),
                    format!("seed name \"{name}\" is used twice: names must be unique"),
                );
            }
            let targets = self.strings(&section, "targets");
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
    fn volatile_columns(&mut self, section: &Section) -> Vec<String> {
        let list = self.strings(section, "volatile").unwrap_or_default();
        if let Some(item) = section.get("volatile") {
            for bad in list.iter().filter(|c| {
                c.rsplit_once('.')
                    .is_none_or(|(t, col)| t.is_empty() || col.is_empty())
            }) {
                self.problem(
                    item.span(),
                    section.path("volatile"),
                    format!("\"{bad}\" is not a column: write it as \"table.column\""),
                );
            }
        }
        list
    }

    /// `settings` of an `[[invariant]]`: a table of setting names to string values.
    fn settings(&mut self, section: &Section) -> Vec<(String, String)> {
        let Some(table) = self.table(section, "settings") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.entries.iter() {
            let name = key.get_ref().to_string();
            match value.get_ref() {
                DeValue::String(text) => out.push((name, text.to_string())),
                other => {
                    let message = format!(
                        "expected a string (settings are text, like \"42\"), found {}",
                        with_article(other.type_str())
                    );
                    self.problem(value.span(), table.path(&name), message);
                }
            }
        }
        out.sort();
        out
    }

    /// Checks `[[invariant]]` tables.
    pub(super) fn invariants(&mut self, top: &Section) -> Vec<Invariant> {
        let Some(item) = top.get("invariant") else {
            return Vec::new();
        };
        let DeValue::Array(array) = item.get_ref() else {
            self.wrong_type(top, "invariant", item, "an array of tables [[invariant]]");
            return Vec::new();
        };
        let mut out: Vec<Invariant> = Vec::new();
        for (index, entry) in array.iter().enumerate() {
            let DeValue::Table(entries) = entry.get_ref() else {
                let message = format!(
                    "expected a table [[invariant]], found {}",
                    with_article(entry.get_ref().type_str())
                );
                self.problem(entry.span(), "invariant".into(), message);
                continue;
            };
            let section = Section {
                name: format!("invariant[{index}]"),
                entries,
            };
            self.unknown_keys(&section, INVARIANT_KEYS);
            let name = self.non_empty(&section, "name").map(str::to_owned);
            if name.is_none() && section.get("name").is_none() {
                self.problem(
                    entry.span(),
                    section.path("name"),
                    "every invariant needs a `name`".into(),
                );
            }
            if let Some(name) = &name
                && out.iter().any(|i| &i.name == name)
            {
                self.problem(
                    entry.span(),
                    section.path("name"),
                    format!("invariant name \"{name}\" is used twice: names must be unique"),
                );
            }
            let sql = self.non_empty(&section, "sql").map(str::to_owned);
            let sql_file = self.sql_file(&section, "sql-file").map(str::to_owned);
            let sql = match (sql, sql_file) {
                (Some(_), Some(_)) => {
                    self.problem(
                        entry.span(),
                        section.path("sql"),
                        "give `sql` or `sql-file`, not both".into(),
                    );
                    None
                }
                (None, None) => {
                    self.problem(
                        entry.span(),
                        section.path("sql"),
                        "every invariant needs `sql` (a query) or `sql-file` (a file holding one)"
                            .into(),
                    );
                    None
                }
                (Some(sql), None) => Some(sql),
                (None, Some(file)) => Some(format!("{SQL_FILE_PREFIX}{file}")),
            };
            let expect = match self.string(&section, "expect") {
                Some(text) => match Expectation::parse(text) {
                    Ok(expect) => Some(expect),
                    Err(message) => {
                        let span = section.get("expect").map(|i| i.span()).unwrap_or(0..0);
                        self.problem(span, section.path("expect"), message);
                        None
                    }
                },
                None => {
                    if section.get("expect").is_none() {
                        self.problem(entry.span(), section.path("expect"), "every invariant needs `expect` (\"= 0\", \"> 0\", \"rows = 0\", \"true\", ...)".into());
                    }
                    None
                }
            };
            let severity = self.choice(&section, "severity").unwrap_or_default();
            let phase = self.choice(&section, "phase").unwrap_or_default();
            let targets = self.strings(&section, "targets");
            let role = self.non_empty(&section, "role").map(str::to_owned);
            let settings = self.settings(&section);
            let expect_error = self.non_empty(&section, "expect-error").map(str::to_owned);
            if let (Some(item), false) = (
                section.get("expect-error"),
                expect.is_none_or(|e| e == Expectation::Error),
            ) {
                self.problem(
                    item.span(),
                    section.path("expect-error"),
                    "`expect-error` names the error a refused statement must raise: it needs `expect = \"error\"`".into(),
                );
            }
            if let (Some(name), Some(sql), Some(expect)) = (name, sql, expect) {
                out.push(Invariant {
                    name,
                    sql,
                    expect,
                    severity,
                    phase,
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
