//! Run ids: the form `20261121T153012Z-7f3a` (sortable by time), which snapshot ids share,
//! and [`RunId`], the one type a run's id has. A `RunId` is made only by [`RunId::new`], by
//! [`RunId::parse`] of text of that form, or by reading one (serde, the ledger) that has
//! it: an id never names a file, a folder or a database unchecked.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The form of run and snapshot ids, as error messages name it.
pub const ID_FORM: &str = "YYYYMMDDTHHMMSSZ-xxxx (the UTC second, `-`, 4 lowercase hex digits; e.g. 20261121T153012Z-7f3a)";

/// The id of a run (and of a fleet run, which has the same form, generator and checks):
/// always of the form [`ID_FORM`], so it is safe as a file, folder or database name part.
/// The one exception is `RunId::sqlx_history()`, a fixed name that is just as safe.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub struct RunId(String);

impl RunId {
    /// A fresh run id: the UTC second and 4 hex digits, e.g. `20261121T153012Z-7f3a`.
    #[allow(clippy::new_without_default)] // a fresh id each call: not a default value
    pub fn new() -> RunId {
        RunId(new_id())
    }

    /// `text` as a run id when it has the form; otherwise a usage error (exit 2) naming
    /// `what` was given (`run id`, `--fleet-run`) and the expected form.
    pub fn parse(text: &str, what: &str) -> Result<RunId> {
        validate_id(text, what).map(|id| RunId(id.to_owned()))
    }

    /// `text` as a run id when it has the form.
    pub fn parse_opt(text: &str) -> Option<RunId> {
        is_valid_id(text).then(|| RunId(text.to_owned()))
    }

    /// The pseudo-run a dirty row of sqlx's own history table (`success = false`) is shown
    /// under, and its resolution recorded under, in the ledger's events: not a run of the
    /// ledger, never parsed from input nor read back.
    pub(crate) fn sqlx_history() -> RunId {
        RunId("_sqlx_migrations".to_owned())
    }

    /// The id as text (SQL binds, file names, messages).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RunId {
    type Err = Error;

    /// A run id given as a `run id` (the message of [`RunId::parse`]).
    fn from_str(text: &str) -> Result<RunId> {
        RunId::parse(text, "run id")
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for RunId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A run id read from a file (the journal, a manifest, a fleet journal) is checked like one
/// given on the command line: a line naming anything else does not parse.
impl<'de> serde::Deserialize<'de> for RunId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RunId::parse_opt(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{}` is not a run id of the form {ID_FORM}",
                text.escape_debug()
            ))
        })
    }
}

/// Run ids as a message lists them: `a, b`.
pub fn list(ids: &[RunId]) -> String {
    ids.iter().map(RunId::as_str).collect::<Vec<_>>().join(", ")
}

/// Serializes an id that may be absent as the empty string (`"run_id": ""`), as a field
/// that was a plain string always was.
pub fn serialize_or_empty<S: serde::Serializer>(
    id: &Option<RunId>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(id.as_ref().map_or("", RunId::as_str))
}

impl<DB> ToSql<Text, DB> for RunId
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.as_str().to_sql(out)
    }
}

/// The ledger lives in the target database, which the application and its operators can
/// write to: an id read from it is checked like any other text before it may name a file.
impl<DB> FromSql<Text, DB> for RunId
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        RunId::parse_opt(&text).ok_or_else(|| {
            format!(
                "the ledger holds `{}`, which is not a run id of the form {ID_FORM}",
                text.escape_debug()
            )
            .into()
        })
    }
}

/// A fresh id of the form, as text: a snapshot's id, a scratch database's name. A run's id
/// is [`RunId::new`].
pub fn new_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{nanos}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let digest = Sha256::digest(seed.as_bytes());
    let compact: String = crate::run::now()
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{compact}Z-{:02x}{:02x}", digest[0], digest[1])
}

/// What each character of an id must be, in order: `20261121T153012Z-7f3a`.
fn id_char_fits(position: usize, c: char) -> bool {
    match position {
        0..=7 | 9..=14 => c.is_ascii_digit(),
        8 => c == 'T',
        15 => c == 'Z',
        16 => c == '-',
        17..=20 => c.is_ascii_digit() || ('a'..='f').contains(&c),
        _ => false,
    }
}

/// Whether `id` has the form of a run or snapshot id ([`new_id`]): nothing else is ever
/// used as a path, a file name or a database name.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 21 && is_valid_id_prefix(id)
}

/// Whether `prefix` is a non-empty start of an id of that form (run ids may be given by a
/// unique prefix).
pub fn is_valid_id_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 21
        && prefix.chars().enumerate().all(|(i, c)| id_char_fits(i, c))
}

/// `id` when it has the form of a run or snapshot id; otherwise a usage error (exit 2)
/// naming `what` was given and the expected form.
pub fn validate_id<'a>(id: &'a str, what: &str) -> Result<&'a str> {
    if is_valid_id(id) {
        Ok(id)
    } else {
        Err(bad_id(id, what, "a"))
    }
}

/// `prefix` when it is the start of a run id; otherwise a usage error (exit 2).
pub fn validate_id_prefix<'a>(prefix: &'a str, what: &str) -> Result<&'a str> {
    if is_valid_id_prefix(prefix) {
        Ok(prefix)
    } else {
        Err(bad_id(prefix, what, "a unique start of a"))
    }
}

fn bad_id(id: &str, what: &str, how: &str) -> Error {
    Error::Usage(format!(
        "{what} `{}` is not an id: give {how} {what} of the form {ID_FORM}",
        id.escape_debug()
    ))
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_look_right() {
        let id = RunId::new();
        let id = id.as_str();
        assert_eq!(id.len(), "20261121T153012Z-7f3a".len(), "{id}");
        assert_eq!(&id[8..9], "T");
        assert_eq!(&id[15..17], "Z-");
        assert!(id[17..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_are_validated_against_their_form() {
        for _ in 0..50 {
            let id = RunId::new();
            assert!(is_valid_id(id.as_str()), "{id}");
            assert!(is_valid_id_prefix(&id.as_str()[..9]));
            assert_eq!(RunId::parse(id.as_str(), "run id").unwrap(), id);
        }
        assert!(is_valid_id("20261121T153012Z-7f3a"));
        for bad in [
            "",
            "../../x",
            "20261121T153012Z-7f3",
            "20261121T153012Z-7f3a/",
            "20261121T153012Z-7F3A",
            "20261121T153012Z-7f3a0",
            "2026112lT153012Z-7f3a",
            "..",
            "20261121T153012Z-../a",
            "_sqlx_migrations",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
            assert!(bad.parse::<RunId>().is_err(), "{bad}");
            assert!(
                serde_json::from_value::<RunId>(bad.into()).is_err(),
                "{bad}"
            );
        }
        assert!(is_valid_id_prefix("2026"));
        assert!(is_valid_id_prefix("20261121T15"));
        assert!(!is_valid_id_prefix(""));
        assert!(!is_valid_id_prefix("2026/"));
        assert!(!is_valid_id_prefix("../"));
        let error = validate_id("../../x", "snapshot id").unwrap_err();
        assert_eq!(crate::cli::exit::code_of(&error), 2);
        assert!(
            error.to_string().contains("20261121T153012Z-7f3a"),
            "{error}"
        );
        let error = RunId::parse("../x", "--fleet-run").unwrap_err();
        assert_eq!(crate::cli::exit::code_of(&error), 2);
        assert_eq!(
            error.to_string(),
            validate_id("../x", "--fleet-run").unwrap_err().to_string()
        );
    }

    #[test]
    fn a_run_id_is_a_plain_string_in_json_and_in_the_ledger() {
        let id: RunId = "20261121T153012Z-7f3a".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""20261121T153012Z-7f3a""#
        );
        assert_eq!(
            serde_json::from_str::<RunId>(r#""20261121T153012Z-7f3a""#).unwrap(),
            id
        );
        assert_eq!(format!("[{id:<23}]"), "[20261121T153012Z-7f3a  ]");

        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE t (id TEXT NOT NULL)")
            .unwrap();
        diesel::sql_query("INSERT INTO t (id) VALUES (?)")
            .bind::<Text, _>(&id)
            .execute(&mut conn)
            .unwrap();
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            id: RunId,
        }
        let rows: Vec<Row> = diesel::sql_query("SELECT id FROM t")
            .load(&mut conn)
            .unwrap();
        assert_eq!(rows[0].id, id);
        conn.batch_execute("INSERT INTO t (id) VALUES ('../../x')")
            .unwrap();
        let error = diesel::sql_query("SELECT id FROM t")
            .load::<Row>(&mut conn)
            .err()
            .expect("a hostile id in the ledger does not read as a run id");
        assert!(error.to_string().contains("../../x"), "{error}");
    }
}
