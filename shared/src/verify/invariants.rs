//! The user's `[[invariant]]` queries: run each in a transaction that is rolled back
//! (optionally as another role, with session settings), and compare what it returns with
//! its expectation; or, with `expect = "error"`, check that the server refuses the
//! statement (and with which SQLSTATE or message).

use diesel::Connection;
use diesel::connection::SimpleConnection;

use super::Finding;
use crate::config::{ApplyConfig, Expectation, Invariant};
use crate::connection::{self, Database};
use crate::error::{Error, Result};
use crate::sql_text::split;
use crate::target::Backend;

/// User SQL (an invariant's query, a migration's verify.sql) as the body of a subquery:
/// exactly one statement, without the comments and the `;` around it, and never closing
/// the parenthesis it is wrapped in. The error says what is wrong with the text.
pub(crate) fn subquery(sql: &str, backend: Backend) -> std::result::Result<&str, String> {
    let script = split(sql, backend);
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

/// An invariant's query as a subquery (or, for `expect = "error"`, its one statement);
/// one that is not exactly one statement, or that asks for what the backend cannot do
/// (`role`, `settings`, `expect = "error"` outside PostgreSQL), is bad configuration
/// (exit 2), named.
pub(super) fn query_of(invariant: &Invariant, backend: Backend) -> Result<&str> {
    let bad = |e: String| Error::Usage(format!("dbsafe.toml: invariant `{}`: {e}", invariant.name));
    let behaviour = [
        ("role", invariant.role.is_some()),
        ("settings", !invariant.settings.is_empty()),
        ("expect = \"error\"", invariant.expect == Expectation::Error),
    ];
    if !backend.dialect().behaviour_checks()
        && let Some((key, _)) = behaviour.iter().find(|(_, used)| *used)
    {
        return Err(bad(format!(
            "{key} is not supported on this backend ({backend}): behaviour checks run on PostgreSQL only. Limit the invariant with `targets = [...]` to PostgreSQL targets"
        )));
    }
    let query = subquery(&invariant.sql, backend).map_err(|e| bad(format!("{e}. Fix its SQL")))?;
    if invariant.expect == Expectation::Error && query.contains(DOLLAR_TAG) {
        return Err(bad(format!(
            "its SQL contains `{DOLLAR_TAG}`, which dbsafe uses to quote it"
        )));
    }
    Ok(query)
}

/// The dollar-quote tag prefix the refused-statement check wraps the statement in.
const DOLLAR_TAG: &str = "$dbsafe_";

/// `SET LOCAL ROLE` and `set_config(.., true)` for the invariant's transaction (PostgreSQL).
fn behaviour_prelude(invariant: &Invariant) -> String {
    let pg = Backend::Postgres.dialect();
    let mut sql = String::new();
    if let Some(role) = &invariant.role {
        sql.push_str(&format!("SET LOCAL ROLE {};\n", pg.ident(role)));
    }
    for (name, value) in &invariant.settings {
        sql.push_str(&format!(
            "SELECT set_config({}, {}, true);\n",
            pg.literal(name),
            pg.literal(value)
        ));
    }
    sql
}

/// What the query returns, as the expectation needs it: its first value, or its row count.
/// The query runs with the target's `lock-timeout` and `statement-timeout` (`apply`), set
/// for its transaction only where the backend allows.
fn observe(db: &mut Database, invariant: &Invariant, apply: &ApplyConfig) -> Result<String> {
    let query = query_of(invariant, db.backend())?;
    let dialect = db.dialect();
    let text = dialect.text_type();
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
    let timeouts = dialect.timeouts_sql(apply.lock_timeout, apply.statement_timeout, true);
    let prelude = behaviour_prelude(invariant);
    let outcome = db.conn.transaction::<(), diesel::result::Error, _>(|conn| {
        conn.batch_execute(&timeouts)?;
        if !prelude.is_empty() {
            conn.batch_execute(&prelude)?;
        }
        seen = Some(connection::texts(conn, &sql));
        Err(diesel::result::Error::RollbackTransaction)
    });
    let _ = db.execute(&dialect.reset_timeouts_sql());
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

/// `expect = "error"` (PostgreSQL): runs the statement as it is, as the invariant's role
/// and with its settings, in a transaction that is always rolled back, and returns how the
/// server refused it (`SQLSTATE message`), or `None` when it ran.
fn refusal(
    db: &mut Database,
    invariant: &Invariant,
    apply: &ApplyConfig,
) -> Result<Option<String>> {
    let statement = query_of(invariant, db.backend())?;
    // The statement runs inside a block that catches its error: the transaction goes on,
    // and SQLSTATE is kept for the comparison.
    let block = format!(
        "DO {DOLLAR_TAG}do$ BEGIN EXECUTE {DOLLAR_TAG}stmt${statement}{DOLLAR_TAG}stmt$; \
         PERFORM set_config('dbsafe.refusal', '', true); \
         EXCEPTION WHEN OTHERS THEN PERFORM set_config('dbsafe.refusal', SQLSTATE || ' ' || SQLERRM, true); \
         END {DOLLAR_TAG}do$"
    );
    let mut seen = None;
    let dialect = db.dialect();
    let timeouts = dialect.timeouts_sql(apply.lock_timeout, apply.statement_timeout, true);
    let prelude = behaviour_prelude(invariant);
    let outcome = db.conn.transaction::<(), diesel::result::Error, _>(|conn| {
        conn.batch_execute(&timeouts)?;
        conn.batch_execute(&prelude)?;
        conn.batch_execute(&block)?;
        seen = Some(connection::texts(
            conn,
            "SELECT COALESCE(current_setting('dbsafe.refusal', true), '') AS v",
        ));
        Err(diesel::result::Error::RollbackTransaction)
    });
    let _ = db.execute(&dialect.reset_timeouts_sql());
    match (seen, outcome) {
        (Some(Ok(rows)), _) => Ok(rows.into_iter().next().filter(|r| !r.is_empty())),
        (Some(Err(e)), _) | (None, Err(e)) => Err(Error::Failed(format!(
            "the statement could not be tried: {e}"
        ))),
        (None, Ok(())) => Err(Error::Failed("the statement did not run".into())),
    }
}

/// Whether a refusal (`SQLSTATE message`) is the one `expect-error` names: its SQLSTATE
/// (five characters) or a fragment of its message, case-insensitive.
fn refusal_matches(refusal: &str, wanted: Option<&str>) -> bool {
    let Some(wanted) = wanted else {
        return true;
    };
    let (state, message) = refusal.split_once(' ').unwrap_or((refusal, ""));
    state.eq_ignore_ascii_case(wanted) || message.to_lowercase().contains(&wanted.to_lowercase())
}

fn check_refused(db: &mut Database, invariant: &Invariant, apply: &ApplyConfig) -> Result<Finding> {
    let wanted = invariant.expect_error.as_deref();
    let expected = wanted.map_or("an error".to_owned(), |w| format!("error {w}"));
    Ok(match refusal(db, invariant, apply)? {
        None => Finding::new(
            false,
            "it ran without error",
            vec![format!(
                "expected {expected}{}: the statement succeeded (and was rolled back)",
                invariant
                    .role
                    .as_deref()
                    .map_or(String::new(), |r| format!(" as role {r}"))
            )],
        ),
        Some(refusal) if refusal_matches(&refusal, wanted) => {
            Finding::new(true, format!("refused: {refusal}"), Vec::new())
        }
        Some(refusal) => Finding::new(
            false,
            format!("refused: {refusal}"),
            vec![format!(
                "expected {expected}, but the server said: {refusal}"
            )],
        ),
    })
}

/// Runs one invariant.
pub(super) fn check(
    db: &mut Database,
    invariant: &Invariant,
    apply: &ApplyConfig,
) -> Result<Finding> {
    if invariant.expect == Expectation::Error {
        return check_refused(db, invariant, apply);
    }
    let observed = observe(db, invariant, apply)?;
    let holds = match invariant.expect {
        Expectation::Value(op, expected) | Expectation::Rows(op, expected) => observed
            .trim()
            .parse::<f64>()
            .is_ok_and(|value| op.holds(value, expected)),
        Expectation::Bool(expected) => truthy(&observed) == Some(expected),
        Expectation::Error => unreachable!("checked by check_refused"),
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
    use super::{refusal_matches, subquery};

    #[test]
    fn refusals_match_by_sqlstate_or_message() {
        let refusal = "42501 permission denied for table ledger_entries";
        assert!(refusal_matches(refusal, None));
        assert!(refusal_matches(refusal, Some("42501")));
        assert!(refusal_matches(refusal, Some("Permission denied")));
        assert!(!refusal_matches(refusal, Some("23505")));
    }

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
