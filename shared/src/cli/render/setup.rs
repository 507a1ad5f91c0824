//! What `cargo dbsafe init` wrote (an `init` line in JSON) and whether the schema file was
//! regenerated after the schema changed (a `schema.file` line).

use super::{HumanStream, JsonLine, Report};
use crate::init::{InitOutcome, NEXT_STEPS};
use crate::print_schema::SchemaFile;

impl Report for InitOutcome {
    fn json(&self) -> Vec<JsonLine> {
        vec![JsonLine::new(
            "init",
            &serde_json::json!({
                "config": self.config,
                "gitignore_updated": self.gitignore_updated,
                "next_steps": NEXT_STEPS,
                "layout": self.layout.layout.as_str(),
                "layout_reason": self.layout.reason,
                "migrations_dir": self.migrations_dir,
            }),
        )]
    }

    fn human(&self) -> String {
        let mut lines = vec![
            format!("wrote {}", self.config.display()),
            format!(
                "layout = \"{}\", migrations-dir = \"{}\": {}",
                self.layout.layout, self.migrations_dir, self.layout.reason
            ),
        ];
        if self.gitignore_updated {
            lines.push("added .dbsafe/ to .gitignore".into());
        }
        lines.push("next:".into());
        lines.extend(NEXT_STEPS.iter().map(|step| format!("  {step}")));
        lines.join("\n")
    }

    fn stream(&self) -> HumanStream {
        HumanStream::Notes
    }
}

impl Report for SchemaFile {
    fn json(&self) -> Vec<JsonLine> {
        let Some(serde_json::Value::Object(mut fields)) = SchemaFile::json(self) else {
            return Vec::new();
        };
        fields.remove("type");
        vec![JsonLine::new("schema.file", &fields)]
    }

    fn human(&self) -> String {
        self.describe().unwrap_or_default()
    }

    fn stream(&self) -> HumanStream {
        HumanStream::Notes
    }
}
