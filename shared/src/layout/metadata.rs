//! diesel's `metadata.toml`, read once for the engine and `check` alike: through serde,
//! with the line of each key. diesel reads a file without `run_in_transaction` as "no
//! transaction", and a file it cannot read (invalid TOML, a value of the wrong type) as
//! "transaction"; each of these traps is a [`ScanFinding`].

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::scan::{Problem, ScanFinding};
use crate::sql_text::Lines;

/// The key diesel reads.
const KEY: &str = "run_in_transaction";

/// What diesel will do with a migration, from its metadata.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Metadata {
    /// Whether diesel runs the migration in a transaction.
    pub run_in_transaction: bool,
    /// The line of an explicit `run_in_transaction = false`.
    pub no_transaction_line: Option<usize>,
    /// A remark for the engine's warnings (the file has no `run_in_transaction`).
    pub warning: Option<String>,
}

/// Reads the metadata.toml at `path`, holding `text`, pushing its traps to `findings`.
pub(super) fn read(path: &Path, text: &str, findings: &mut Vec<ScanFinding>) -> Metadata {
    let mut found = |line: Option<usize>, problem: Problem| {
        findings.push(ScanFinding {
            path: path.to_owned(),
            line,
            problem,
        })
    };
    let transaction = Metadata {
        run_in_transaction: true,
        no_transaction_line: None,
        warning: None,
    };
    let lines = Lines::new(text);
    let keys: BTreeMap<Spanned<String>, Spanned<toml::Value>> = match toml::from_str(text) {
        Ok(keys) => keys,
        Err(error) => {
            let line = error.span().map(|span| lines.line(span.start));
            let message = error.message().trim().to_owned();
            let report = error.to_string();
            found(line, Problem::MetadataInvalid { message, report });
            return transaction;
        }
    };
    let mut value = None;
    for (key, item) in &keys {
        let line = Some(lines.line(key.span().start));
        if key.get_ref() == KEY {
            value = Some((item.get_ref(), line));
        } else {
            let key = key.get_ref().clone();
            found(line, Problem::MetadataUnknownKey { key });
        }
    }
    match value {
        Some((toml::Value::Boolean(value), line)) => Metadata {
            run_in_transaction: *value,
            no_transaction_line: if *value { None } else { line },
            warning: None,
        },
        Some((other, line)) => {
            let found_type = other.type_str();
            found(line, Problem::MetadataWrongType { found: found_type });
            transaction
        }
        None => {
            found(Some(1), Problem::MetadataNoKey);
            Metadata {
                run_in_transaction: false,
                no_transaction_line: None,
                warning: Some(format!(
                    "{} has no run_in_transaction key: diesel reads that as `false` (no transaction); write the key explicitly",
                    path.display()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> (Metadata, Vec<Problem>) {
        let mut findings = Vec::new();
        let metadata = read(Path::new("metadata.toml"), text, &mut findings);
        (metadata, findings.into_iter().map(|f| f.problem).collect())
    }

    #[test]
    fn diesel_rules() {
        let (off, problems) = read_text("# no\nrun_in_transaction = false");
        assert!(!off.run_in_transaction && problems.is_empty());
        assert_eq!(off.no_transaction_line, Some(2));
        assert!(read_text("run_in_transaction = true").0.run_in_transaction);
        let (empty, problems) = read_text("");
        assert!(!empty.run_in_transaction && empty.warning.is_some());
        assert_eq!(problems, vec![Problem::MetadataNoKey]);
        let (wrong, problems) = read_text("run_in_transaction = \"no\"");
        assert!(wrong.run_in_transaction);
        assert_eq!(
            problems,
            vec![Problem::MetadataWrongType { found: "string" }]
        );
        let (_, problems) = read_text("run_in_transaction = true\nrun-in-transaction = false");
        assert_eq!(
            problems,
            vec![Problem::MetadataUnknownKey {
                key: "run-in-transaction".into()
            }]
        );
        assert!(matches!(
            read_text("run_in_transaction = ").1[..],
            [Problem::MetadataInvalid { .. }]
        ));
    }
}
