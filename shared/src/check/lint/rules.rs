//! dbsafe's own lint rules, for every dialect: what diesel's way of running a migration
//! makes dangerous (CONCURRENTLY in a transaction or beside other statements, a migration
//! needlessly outside a transaction, a disabled lock timeout) and destructive statements
//! when apply takes no snapshot.

use super::Raw;
use crate::sql_text::{Kind, Script, Statement};

/// The leading keywords of a statement, for messages: `CREATE INDEX CONCURRENTLY`.
fn describe(statement: &Statement, upto: Option<&str>) -> String {
    let mut words = Vec::new();
    for token in statement.tokens.iter().take(6) {
        words.push(token.text.to_ascii_uppercase());
        if upto.is_some_and(|w| token.is(w)) {
            break;
        }
        if upto.is_none() && words.len() == 2 {
            break;
        }
    }
    words.join(" ")
}

/// Whether a statement uses CONCURRENTLY in a way PostgreSQL refuses inside a transaction
/// (`REFRESH MATERIALIZED VIEW CONCURRENTLY` is allowed there).
pub(crate) fn is_concurrently(statement: &Statement) -> bool {
    statement.has("CONCURRENTLY") && !statement.starts_with(&["REFRESH"])
}

/// Whether a statement cannot run inside a transaction block.
fn needs_no_transaction(statement: &Statement) -> bool {
    is_concurrently(statement)
        || statement.starts_with(&["VACUUM"])
        || statement.starts_with(&["CREATE", "DATABASE"])
        || statement.starts_with(&["DROP", "DATABASE"])
        || statement.starts_with(&["CREATE", "TABLESPACE"])
        || statement.starts_with(&["DROP", "TABLESPACE"])
        || statement.starts_with(&["ALTER", "SYSTEM"])
        || statement.starts_with(&["ALTER", "TYPE"]) && statement.has("VALUE")
        || statement.starts_with(&["CREATE", "SUBSCRIPTION"])
        || statement.starts_with(&["DROP", "SUBSCRIPTION"])
        || ["BEGIN", "COMMIT", "END", "START", "ROLLBACK"]
            .iter()
            .any(|word| statement.starts_with(&[word]))
}

/// `concurrently-in-transaction` and `concurrently-not-alone`.
pub(crate) fn concurrently(script: &Script, run_in_transaction: bool, out: &mut Vec<Raw>) {
    let count = script.statements.len();
    for statement in script.statements.iter().filter(|s| is_concurrently(s)) {
        let what = describe(statement, Some("CONCURRENTLY"));
        if run_in_transaction {
            out.push(Raw {
                rule: "concurrently-in-transaction".into(),
                offset: statement.start,
                message: format!(
                    "`{what}` cannot run inside a transaction, and diesel runs this migration \
                     in one: PostgreSQL refuses it (\"cannot run inside a transaction block\")"
                ),
                help: Some(
                    "add a metadata.toml beside up.sql with `run_in_transaction = false`, and \
                     keep this statement alone in its file"
                        .into(),
                ),
            });
        }
        if count > 1 {
            out.push(Raw {
                rule: "concurrently-not-alone".into(),
                offset: statement.start,
                message: format!(
                    "`{what}` shares its file with {} other statement(s): PostgreSQL runs the \
                     statements of one file (one PQexec) as a single implicit transaction, even \
                     with run_in_transaction = false, so it fails there",
                    count - 1
                ),
                help: Some(
                    "move every other statement into a migration of its own, so this file \
                     holds only this statement"
                        .into(),
                ),
            });
        }
    }
}

/// Whether a migration with these scripts (up.sql, then down.sql) has a statement that needs
/// to run outside a transaction.
pub(crate) fn any_needs_no_transaction(scripts: &[&Script]) -> bool {
    scripts
        .iter()
        .flat_map(|script| &script.statements)
        .any(needs_no_transaction)
}

/// `destructive-without-snapshot`: statements that delete data, when apply takes no
/// snapshot (`why` says which setting makes it so).
pub(crate) fn destructive(script: &Script, why: &str, out: &mut Vec<Raw>) {
    for statement in &script.statements {
        let Some(what) = destroys(statement) else {
            continue;
        };
        out.push(Raw {
            rule: "destructive-without-snapshot".into(),
            offset: statement.start,
            message: format!(
                "{what} deletes data, and {why}: if it is a mistake there is no snapshot to \
                 restore (`cargo dbrollback --restore`), and down.sql cannot bring data back"
            ),
            help: Some(
                "set `[apply] snapshot = \"always\"` in dbsafe.toml (or take one with `cargo \
                 dbsafe snapshot create` before applying); if the data is really not needed, \
                 say so above the statement: `-- dbsafe:allow destructive-without-snapshot \
                 because REASON`"
                    .into(),
            ),
        });
    }
}

/// What a statement destroys, in words, if it deletes data.
fn destroys(statement: &Statement) -> Option<String> {
    let tokens = &statement.tokens;
    let named = |skip: usize| {
        tokens
            .iter()
            .skip(skip)
            .find(|t| !(t.is("IF") || t.is("EXISTS") || t.is("TEMPORARY") || t.is("TABLE")))
            .map(|t| t.text.to_owned())
            .unwrap_or_default()
    };
    for kind in ["TABLE", "SCHEMA", "DATABASE"] {
        if statement.starts_with(&["DROP", kind])
            || kind == "TABLE" && statement.starts_with(&["DROP", "TEMPORARY", "TABLE"])
        {
            return Some(format!("`DROP {kind} {}`", named(2)));
        }
    }
    if statement.starts_with(&["TRUNCATE"]) {
        return Some(format!("`TRUNCATE {}`", named(1)));
    }
    if statement.starts_with(&["DELETE"]) && !statement.has_top_level("WHERE") {
        return Some("`DELETE` without WHERE".to_owned());
    }
    if statement.starts_with(&["ALTER", "TABLE"]) {
        return dropped_column(statement).map(|column| format!("`DROP COLUMN {column}`"));
    }
    None
}

/// The column an `ALTER TABLE` drops, if any: an action `DROP [COLUMN] [IF EXISTS] name` at
/// the top level (not `DROP CONSTRAINT`, `DROP DEFAULT`, `DROP NOT NULL`, ...).
fn dropped_column(statement: &Statement) -> Option<String> {
    let tokens = &statement.tokens;
    for (i, token) in tokens.iter().enumerate() {
        if token.depth != 0 || !token.is("DROP") {
            continue;
        }
        // An action starts after the table name or a comma; `ALTER COLUMN x DROP DEFAULT`
        // has a column name before DROP, not a comma.
        let after_comma = i > 0 && tokens[i - 1].is_punct(',');
        let after_name = i >= 3 && !tokens[i - 1].is_punct(',') && {
            // ALTER TABLE [IF EXISTS] [ONLY] name [*] DROP
            let head: Vec<_> = tokens[2..i]
                .iter()
                .filter(|t| !(t.is("IF") || t.is("EXISTS") || t.is("ONLY") || t.is_punct('*')))
                .collect();
            head.len() == 1 || head.len() == 3 && head[1].is_punct('.')
        };
        if !after_comma && !after_name {
            continue;
        }
        let mut rest = tokens[i + 1..]
            .iter()
            .filter(|t| !(t.is("IF") || t.is("EXISTS")));
        let next = rest.next()?;
        if next.is("COLUMN") {
            return rest.next().map(|t| t.text.to_owned());
        }
        let not_column = [
            "CONSTRAINT",
            "INDEX",
            "KEY",
            "PRIMARY",
            "FOREIGN",
            "CHECK",
            "PARTITION",
            "DEFAULT",
            "NOT",
            "EXPRESSION",
            "IDENTITY",
            "TRIGGER",
            "SYSTEM",
            "PERIOD",
        ];
        if next.kind != Kind::Punct && !not_column.iter().any(|w| next.is(w)) {
            return Some(next.text.to_owned());
        }
    }
    None
}

/// `lock-timeout-disabled`: `SET lock_timeout = 0` (or DEFAULT) switches off the lock
/// timeout dbsafe sets for each migration.
pub(crate) fn lock_timeout(script: &Script, out: &mut Vec<Raw>) {
    for statement in &script.statements {
        let tokens = &statement.tokens;
        if !statement.starts_with(&["SET"]) {
            continue;
        }
        let mut rest = tokens[1..]
            .iter()
            .skip_while(|t| t.is("SESSION") || t.is("LOCAL"));
        if !rest.next().is_some_and(|t| t.is("lock_timeout")) {
            continue;
        }
        let Some(value) = rest.find(|t| !(t.is("TO") || t.is_punct('='))) else {
            continue;
        };
        let text = value.text.trim_matches(['\'', '"']);
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        let zero = !digits.is_empty() && digits.bytes().all(|b| b == b'0');
        if zero || value.is("DEFAULT") {
            out.push(Raw {
                rule: "lock-timeout-disabled".into(),
                offset: statement.start,
                message: format!(
                    "`SET lock_timeout {}` switches off the lock timeout dbsafe sets for each \
                     migration ([apply] lock-timeout): a statement waiting for a lock would queue \
                     every other query of the table behind it, without limit",
                    value.text
                ),
                help: Some(
                    "remove it; to give this migration longer, set a larger limit, like `SET \
                     LOCAL lock_timeout = '30s'`, or raise [apply] lock-timeout"
                        .into(),
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Backend;
    use crate::sql_text::split;

    fn destroyed(sql: &str) -> Option<String> {
        destroys(&split(sql, Backend::Postgres).statements[0])
    }

    #[test]
    fn destructive_statements() {
        assert_eq!(
            destroyed("DROP TABLE users").as_deref(),
            Some("`DROP TABLE users`")
        );
        assert!(destroyed("DROP TABLE IF EXISTS users").is_some());
        assert!(destroyed("TRUNCATE users").is_some());
        assert!(destroyed("DELETE FROM users").is_some());
        assert!(destroyed("DELETE FROM users WHERE id = 1").is_none());
        assert_eq!(
            destroyed("ALTER TABLE users DROP COLUMN email").as_deref(),
            Some("`DROP COLUMN email`")
        );
        assert!(destroyed("ALTER TABLE public.users DROP email").is_some());
        assert!(destroyed("ALTER TABLE users ADD COLUMN a int, DROP COLUMN b").is_some());
        assert!(destroyed("ALTER TABLE users DROP CONSTRAINT users_pkey").is_none());
        assert!(destroyed("ALTER TABLE users ALTER COLUMN a DROP DEFAULT").is_none());
        assert!(destroyed("ALTER TABLE users ALTER COLUMN a DROP NOT NULL").is_none());
        assert!(destroyed("DROP INDEX users_email").is_none());
        assert!(destroyed("CREATE TABLE drop_log (a int)").is_none());
    }

    #[test]
    fn lock_timeouts() {
        let mut out = Vec::new();
        for sql in [
            "SET lock_timeout = 0",
            "SET LOCAL lock_timeout TO '0'",
            "SET lock_timeout = DEFAULT",
            "SET lock_timeout = '0ms'",
        ] {
            lock_timeout(&split(sql, Backend::Postgres), &mut out);
        }
        assert_eq!(out.len(), 4);
        out.clear();
        for sql in ["SET lock_timeout = '10s'", "SET statement_timeout = 0"] {
            lock_timeout(&split(sql, Backend::Postgres), &mut out);
        }
        assert!(out.is_empty());
    }
}
