//! GitHub Actions workflow annotations (`::error file=F,line=L,title=T::message`), which
//! GitHub shows on the lines of the pull request and in the job summary.

use std::fmt;

/// How an annotation is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `::error`: fails the check.
    Error,
    /// `::warning`.
    Warning,
}

/// One workflow annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Error or warning.
    pub level: Level,
    /// The file it points at, relative to the repository root.
    pub file: Option<String>,
    /// The 1-based line in `file`.
    pub line: Option<usize>,
    /// The title (a rule or check name).
    pub title: String,
    /// The message; may span lines.
    pub message: String,
}

impl Annotation {
    /// An annotation that points at nothing in particular.
    pub fn new(level: Level, title: impl Into<String>, message: impl Into<String>) -> Annotation {
        Annotation {
            level,
            file: None,
            line: None,
            title: title.into(),
            message: message.into(),
        }
    }

    /// The same annotation pointing at `file`, at `line` when known.
    pub fn at(mut self, file: Option<String>, line: Option<usize>) -> Annotation {
        self.file = file;
        self.line = self.file.as_ref().and(line);
        self
    }
}

impl fmt::Display for Annotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let mut properties = Vec::new();
        if let Some(file) = &self.file {
            properties.push(format!("file={}", escape_property(file)));
            if let Some(line) = self.line {
                properties.push(format!("line={line}"));
            }
        }
        properties.push(format!("title={}", escape_property(&self.title)));
        write!(
            f,
            "::{command} {}::{}",
            properties.join(","),
            escape_data(&self.message)
        )
    }
}

/// Annotations one per line.
pub fn lines(annotations: impl IntoIterator<Item = Annotation>) -> String {
    annotations.into_iter().map(|a| format!("{a}\n")).collect()
}

/// Escapes a workflow command's message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_escaped() {
        let error = Annotation::new(Level::Error, "ban-drop-column", "100% sure\nreally")
            .at(Some("migrations/a,b/up.sql".into()), Some(3));
        assert_eq!(
            error.to_string(),
            "::error file=migrations/a%2Cb/up.sql,line=3,title=ban-drop-column::100%25 sure%0Areally"
        );
        let warning = Annotation::new(Level::Warning, "roundtrip", "x").at(None, Some(4));
        assert_eq!(warning.to_string(), "::warning title=roundtrip::x");
    }
}
