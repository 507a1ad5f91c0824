//! The enumerated settings of dbsafe.toml ([`Choice`]): their names in the file and in
//! output, parsed with an error that lists the allowed ones.

use std::fmt;
use std::str::FromStr;

use crate::dialect::Backend;

use super::{
    Environment, FailurePolicy, InvariantSeverity, Layout, Phase, Severity, SnapshotPolicy,
    SnapshotStrategy,
};

/// An enumerated setting: its values and their names in `dbsafe.toml`.
pub(crate) trait Choice: Copy + 'static {
    /// Every value, in documentation order.
    const ALL: &'static [Self];
    /// The value's name in `dbsafe.toml`.
    fn name(self) -> &'static str;
}

/// Implements [`Choice`], `as_str`, `Display` and `FromStr` for an enumerated setting.
macro_rules! choice {
    ($type:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl Choice for $type {
            const ALL: &'static [Self] = &[$($type::$variant),+];
            fn name(self) -> &'static str {
                self.as_str()
            }
        }

        impl $type {
            /// The name of this value in `dbsafe.toml` and in output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = String;

            /// Parses a value by its name; the error lists the allowed names.
            fn from_str(text: &str) -> Result<Self, String> {
                parse_choice(text)
            }
        }
    };
}

choice!(Environment {
    Development => "development",
    Test => "test",
    Staging => "staging",
    Production => "production",
});
choice!(InvariantSeverity { Error => "error", Warn => "warn" });
choice!(Phase { Before => "before", After => "after" });
choice!(Severity { Warning => "warning", Error => "error" });
choice!(FailurePolicy { Stop => "stop", Revert => "revert", Restore => "restore" });
choice!(SnapshotPolicy { Always => "always", Protected => "protected", Never => "never" });
choice!(Layout {
    Diesel => "diesel",
    Sqlx => "sqlx",
    SqlFiles => "sql-files",
});
choice!(SnapshotStrategy {
    Auto => "auto",
    PgDump => "pg-dump",
    Template => "template",
    Mysqldump => "mysqldump",
    SqliteBackup => "sqlite-backup",
});

impl Choice for Backend {
    const ALL: &'static [Self] = &Backend::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Finds the value of `T` named `text`; the error names the value and lists the allowed ones.
pub(crate) fn parse_choice<T: Choice>(text: &str) -> Result<T, String> {
    T::ALL
        .iter()
        .copied()
        .find(|value| value.name() == text)
        .ok_or_else(|| {
            let allowed: Vec<String> = T::ALL
                .iter()
                .map(|value| format!("\"{}\"", value.name()))
                .collect();
            format!(
                "invalid value \"{text}\": expected one of {}",
                allowed.join(", ")
            )
        })
}
