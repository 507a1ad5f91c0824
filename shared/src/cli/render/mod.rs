//! The report model: every output that is not a run event (status, plan, runs, verify
//! results, check findings, fingerprints, snapshots, rollback plans, errors) is a typed
//! [`Report`], rendered by one of the renderers that `--message-format` chooses: human
//! text, JSON Lines (each object with its `type`), or GitHub Actions workflow annotations;
//! verification results are also written as JUnit XML ([`junit`]).

pub mod check;
pub mod fleet;
pub mod github;
pub mod junit;
pub mod plan;
pub mod rollback;
pub mod runs;
pub mod setup;
pub mod snapshot;
pub mod status;
pub mod verify;

use serde::Serialize;

use crate::error::Error;

/// One JSON line of a report: its `type` and its fields.
pub struct JsonLine {
    /// The `type` field (stable: scripts branch on it).
    pub kind: &'static str,
    /// The other fields (an object; anything else is put under `value`).
    pub value: serde_json::Value,
}

impl JsonLine {
    /// A line of `kind` with the fields of `value`.
    pub fn new(kind: &'static str, value: &impl Serialize) -> JsonLine {
        JsonLine {
            kind,
            value: serde_json::to_value(value).unwrap_or_default(),
        }
    }

    /// The same line with one more field.
    pub fn with(mut self, key: &str, value: impl Serialize) -> JsonLine {
        if let serde_json::Value::Object(map) = &mut self.value {
            map.insert(key.into(), serde_json::to_value(value).unwrap_or_default());
        }
        self
    }

    /// The object as written: the fields with `type` added.
    pub fn object(self) -> serde_json::Map<String, serde_json::Value> {
        let mut object = match self.value {
            serde_json::Value::Object(map) => map,
            other => [("value".to_owned(), other)].into_iter().collect(),
        };
        object.insert("type".into(), self.kind.into());
        object
    }
}

/// Where the human text of a report goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HumanStream {
    /// Stdout: the command's data (left out with --quiet).
    Data,
    /// Stdout, also with --quiet (the report leaves out what --quiet hides itself).
    Always,
    /// Stderr: notes about what was done (left out with --quiet).
    Notes,
}

/// Something a command reports, renderable in every `--message-format`.
pub trait Report {
    /// The JSON Lines of `--message-format json`, in order.
    fn json(&self) -> Vec<JsonLine>;

    /// The text for people (`human`); empty for nothing.
    fn human(&self) -> String;

    /// The text of `--message-format github`: workflow annotations where the report has
    /// something to point at, else the human text.
    fn github(&self) -> String {
        self.human()
    }

    /// Where the human (and GitHub) text goes.
    fn stream(&self) -> HumanStream {
        HumanStream::Data
    }
}

/// An error as reported: its exit code, its message and its stable reason code.
pub struct ErrorReport<'e> {
    /// The error.
    pub error: &'e Error,
    /// Its exit code.
    pub exit_code: u8,
}

impl Report for ErrorReport<'_> {
    fn json(&self) -> Vec<JsonLine> {
        vec![error_line(
            self.exit_code,
            &self.error.to_string(),
            self.error.reason(),
        )]
    }

    fn human(&self) -> String {
        let red = console::Style::new().red().bold();
        format!("{} {}", red.apply_to("error:"), self.error)
    }

    fn stream(&self) -> HumanStream {
        HumanStream::Notes
    }
}

/// The `{"type":"error"}` line: `exit_code`, `message` and `reason`.
pub fn error_line(exit_code: u8, message: &str, reason: crate::error::Reason) -> JsonLine {
    JsonLine::new(
        "error",
        &serde_json::json!({"exit_code": exit_code, "message": message, "reason": reason}),
    )
}

/// The first line of a text (a one-line summary of a longer message).
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
