//! The user's `[[invariant]]` queries: run each in a transaction that is rolled back, and
//! compare what it returns with its expectation.

use diesel::Connection;

use super::Finding;
use crate::config::{Expectation, Invariant};
use crate::connection::{self, Database};
use crate::error::{Error, Result};
use crate::target::Backend;

/// The query as a subquery can hold it: without the comment lines and the `;` that end it.
fn body(sql: &str) -> &str {
    let mut text = sql.trim_end();
    loop {
        let last_line = text.rfind('\n').map_or(0, |i| i + 1);
        if !text[last_line..].trim_start().starts_with("--") {
            break;
        }
        text = text[..last_line].trim_end();
    }
    text.trim_end_matches(';').trim()
}

/// What the query returns, as the expectation needs it: its first value, or its row count.
fn observe(db: &mut Database, invariant: &Invariant) -> Result<String> {
    // The query is wrapped in a subquery; the newline before its closing parenthesis ends a
    // `-- comment` on its last line.
    let query = body(&invariant.sql);
    let text = if db.backend() == Backend::Mysql {
        "CHAR"
    } else {
        "TEXT"
    };
    let sql = match invariant.expect {
        Expectation::Rows(..) => {
            format!(
                "WITH dbsafe_q AS ({query}\n) SELECT CAST(count(*) AS {text}) AS v FROM dbsafe_q"
            )
        }
        _ => format!(
            "WITH dbsafe_q(v) AS ({query}\n) SELECT COALESCE(CAST(v AS {text}), 'NULL') AS v FROM dbsafe_q"
        ),
    };
    // Whatever the query does, nothing of it stays.
    let mut seen = None;
    let outcome = db.conn.transaction::<(), diesel::result::Error, _>(|conn| {
        seen = Some(connection::texts(conn, &sql));
        Err(diesel::result::Error::RollbackTransaction)
    });
    match (seen, outcome) {
        (Some(Ok(rows)), _) => Ok(rows
            .into_iter()
            .next()
            .unwrap_or_else(|| "no rows".to_owned())),
        (Some(Err(e)), _) | (None, Err(e)) => Err(Error::Failed(format!("the query failed: {e}"))),
        (None, Ok(())) => Err(Error::Failed("the query did not run".into())),
    }
}

fn truthy(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "t" | "true" | "1" => Some(true),
        "f" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Runs one invariant.
pub(super) fn check(db: &mut Database, invariant: &Invariant) -> Result<Finding> {
    let observed = observe(db, invariant)?;
    let holds = match invariant.expect {
        Expectation::Value(op, expected) | Expectation::Rows(op, expected) => observed
            .trim()
            .parse::<f64>()
            .is_ok_and(|value| op.holds(value, expected)),
        Expectation::Bool(expected) => truthy(&observed) == Some(expected),
    };
    let details = if holds {
        Vec::new()
    } else {
        vec![format!(
            "expected {}, observed {observed}",
            invariant.expect
        )]
    };
    let shown = match invariant.expect {
        Expectation::Rows(..) => format!("{observed} row(s)"),
        _ => observed,
    };
    Ok(Finding::new(holds, shown, details))
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn body_drops_the_final_semicolon_and_comment_lines() {
        assert_eq!(body("SELECT 1;\n"), "SELECT 1");
        assert_eq!(
            body("-- why\nSELECT 1 -- one\n;\n-- end\n\n  -- really\n"),
            "-- why\nSELECT 1 -- one"
        );
        assert_eq!(body("SELECT '--' AS v"), "SELECT '--' AS v");
        assert_eq!(body("-- nothing\n"), "");
    }
}
