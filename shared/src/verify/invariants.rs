//! The user's `[[invariant]]` queries: run each in a transaction that is rolled back, and
//! compare what it returns with its expectation.

use diesel::Connection;
use diesel::connection::SimpleConnection;

use super::Finding;
use crate::check::lint::sql::split;
use crate::config::{ApplyConfig, Dialect, Expectation, Invariant};
use crate::connection::{self, Database};
use crate::error::{Error, Result};
use crate::target::Backend;

/// User SQL (an invariant's query, a migration's verify.sql) as the body of a subquery:
/// exactly one statement, without the comments and the `;` around it, and never closing
/// the parenthesis it is wrapped in. The error says what is wrong with the text.
pub(crate) fn subquery(sql: &str, backend: Backend) -> std::result::Result<&str, String> {
    let dialect = match backend {
        Backend::Postgres => Dialect::Postgres,
        Backend::Mysql => Dialect::Mysql,
        Backend::Sqlite => Dialect::Sqlite,
    };
    let script = split(sql, dialect);
    let statement = match script.statements.as_slice() {
        [] => return Err("it holds no query".into()),
        [one] => one,
        many => {
            return Err(format!(
                "it holds {} statements; it must be one query (a second one would run unchecked, or not at all)",
                many.len()
            ));
        }
    };
    let mut open: u32 = 0;
    for token in &statement.tokens {
        if token.is_punct('(') {
            open += 1;
        } else if token.is_punct(')') {
            open = open.checked_sub(1).ok_or_else(|| {
                format!(
                    "it closes a parenthesis it never opened (at byte {}): it must be one query",
                    token.offset
                )
            })?;
        }
    }
    let last = statement.tokens.last().expect("a statement has tokens");
    Ok(&sql[statement.start..last.offset + last.text.len()])
}

/// An invariant's query as a subquery; one that is not exactly one query is bad
/// configuration (exit 2), named.
pub(super) fn query_of(invariant: &Invariant, backend: Backend) -> Result<&str> {
    subquery(&invariant.sql, backend).map_err(|e| {
        Error::Usage(format!(
            "invariant `{}`: {e}. Fix its SQL in dbsafe.toml",
            invariant.name
        ))
    })
}

/// What the query returns, as the expectation needs it: its first value, or its row count.
/// The query runs with the target's `lock-timeout` and `statement-timeout` (`apply`), set
/// for its transaction only where the backend allows.
fn observe(db: &mut Database, invariant: &Invariant, apply: &ApplyConfig) -> Result<String> {
    let query = query_of(invariant, db.backend())?;
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
    let timeouts = crate::step::timeouts_sql(db.backend(), apply, true);
    let outcome = db.conn.transaction::<(), diesel::result::Error, _>(|conn| {
        conn.batch_execute(&timeouts)?;
        seen = Some(connection::texts(conn, &sql));
        Err(diesel::result::Error::RollbackTransaction)
    });
    let backend = db.backend();
    crate::step::reset_timeouts(&mut db.conn, backend);
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
pub(super) fn check(
    db: &mut Database,
    invariant: &Invariant,
    apply: &ApplyConfig,
) -> Result<Finding> {
    let observed = observe(db, invariant, apply)?;
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
    use super::subquery;
    use crate::target::Backend;

    #[test]
    fn one_statement_without_its_semicolon_and_comments() {
        for backend in [Backend::Postgres, Backend::Mysql, Backend::Sqlite] {
            assert_eq!(subquery("SELECT 1;\n", backend).unwrap(), "SELECT 1");
            assert_eq!(
                subquery(
                    "-- why\nSELECT 1 -- one\n;\n-- end\n\n  -- really\n",
                    backend
                )
                .unwrap(),
                "SELECT 1"
            );
            assert_eq!(
                subquery("SELECT '--' AS v -- trailing", backend).unwrap(),
                "SELECT '--' AS v"
            );
            assert_eq!(
                subquery("SELECT count(*) = 0 FROM (SELECT ';' AS x) q", backend).unwrap(),
                "SELECT count(*) = 0 FROM (SELECT ';' AS x) q"
            );
            assert!(subquery("-- nothing\n", backend).is_err());
            let two = subquery("SELECT 1; DROP TABLE t", backend).unwrap_err();
            assert!(two.contains("2 statements"), "{two}");
            let closes = subquery("SELECT 1) x; DROP TABLE t; --", backend).unwrap_err();
            assert!(closes.contains("statements"), "{closes}");
            let paren = subquery("SELECT 1) AS x, (SELECT 2", backend).unwrap_err();
            assert!(paren.contains("parenthesis"), "{paren}");
        }
    }
}
