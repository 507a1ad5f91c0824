//! Detecting a PostgreSQL connection pooler in transaction mode (PgBouncer, Supabase's
//! pooler, ...) in front of a target, where session advisory locks, session settings and
//! diesel's named prepared statements leak between clients, so that dbsafe refuses it
//! unless the target names a `direct-url`.
//!
//! The method is a proof, not a guess: on a direct connection every client connection has
//! its own server session for its whole life, so its `pg_backend_pid()` never changes, two
//! client connections never share one, and a session setting made by one is never seen by
//! another. dbsafe opens a second, short-lived connection beside the first and asks both,
//! across separate transactions, for the backend pid and for a marker setting
//! (`dbsafe.pooler_probe`, set at session level by the first). A transaction pooler hands a
//! released server session to the next client (PgBouncer reuses the most recently released
//! one first), so the second connection lands on the first one's session (same pid, marker
//! visible) or the first one lands on the second's when it asks again (pid changed). A
//! session pooler keeps one server session per client and passes, as it should. It costs
//! one extra connection and three one-row queries, once per URL and process.

use std::collections::BTreeSet;
use std::sync::Mutex;

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::{Connection, PgConnection};

use crate::error::{Error, Result};
use crate::target::DatabaseUrl;

/// The session setting the probe marks its first connection with.
const MARKER: &str = "dbsafe.pooler_probe";

/// Connection strings found to be direct in this process (checked once each).
static DIRECT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

#[derive(QueryableByName)]
struct Probe {
    #[diesel(sql_type = Text)]
    v: String,
}

/// What one query of the probe saw: the backend pid and the marker found (before setting
/// it, when `set` is given).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    pid: String,
    marker: String,
}

fn ask(conn: &mut PgConnection, set: Option<&str>) -> QueryResult<Seen> {
    let set = set.map_or(String::new(), |nonce| {
        format!(", set_config('{MARKER}', '{nonce}', false)")
    });
    let row: Probe = diesel::sql_query(format!(
        "SELECT CAST(pg_backend_pid() AS TEXT) || ' ' || COALESCE(current_setting('{MARKER}', true), '') AS v{set}"
    ))
    .get_result(conn)?;
    let (pid, marker) = row.v.split_once(' ').unwrap_or((&row.v, ""));
    Ok(Seen {
        pid: pid.to_owned(),
        marker: marker.to_owned(),
    })
}

/// Why the probe's answers prove a transaction pooler, if they do.
fn verdict(first: &Seen, other: &Seen, again: &Seen, nonce: &str) -> Option<String> {
    if !first.marker.is_empty() {
        Some("a new connection found another client's session setting".into())
    } else if !other.marker.is_empty() {
        Some("a second connection was served by a server session another client had set up".into())
    } else if other.pid == first.pid || other.pid == again.pid {
        Some(format!(
            "two client connections were served by the same server session (backend pid {})",
            other.pid
        ))
    } else if again.pid != first.pid || again.marker != nonce {
        Some(format!(
            "one client connection was served by two server sessions (backend pids {} and {})",
            first.pid, again.pid
        ))
    } else {
        None
    }
}

/// Refuses (exit 3) a connection to a target's URL that goes through a pooler in
/// transaction mode; `conn` is the connection just opened to `url`. URLs without a
/// [`DatabaseUrl::pooler_check`] are not probed.
pub fn ensure_direct(conn: &mut PgConnection, url: &DatabaseUrl) -> Result<()> {
    let Some(check) = url.pooler_check() else {
        return Ok(());
    };
    let key = url.connection_string().to_owned();
    if DIRECT.lock().is_ok_and(|known| known.contains(&key)) {
        return Ok(());
    }
    let probing = |e: diesel::result::Error| Error::db("checking for a connection pooler", e);
    let nonce = format!("{}-{}", std::process::id(), crate::run_id::new_id());
    let first = ask(conn, Some(&nonce)).map_err(probing)?;
    let mut second = PgConnection::establish(&key).map_err(|e| Error::Connect {
        url: url.redacted(),
        message: format!("{e} (while checking for a connection pooler)"),
    })?;
    let other = ask(&mut second, None).map_err(probing)?;
    let again = ask(conn, None).map_err(probing)?;
    drop(second);
    let Some(why) = verdict(&first, &other, &again, &nonce) else {
        if let Ok(mut known) = DIRECT.lock() {
            known.insert(key);
        }
        return Ok(());
    };
    let target = &check.target;
    let fix = if check.direct {
        format!(
            "the `direct-url` of target `{target}` must reach PostgreSQL itself: point `direct-url` / `direct-url-env` of [targets.{target}] at the server's own host and port, not the pooler's"
        )
    } else {
        format!(
            "set `direct-url-env` (or `direct-url`) on [targets.{target}] in dbsafe.toml to a URL that reaches PostgreSQL directly (the server's own host and port, not the pooler's); dbsafe then does all its work through it and your application keeps the pooled URL"
        )
    };
    Err(crate::error::Reason::TransactionPooler.refuse(format!(
        "target `{target}`: {} goes through a connection pooler in transaction mode (PgBouncer or similar): {why}. There, dbsafe's lock, session settings and diesel's prepared statements would leak between clients; nothing was touched. Fix: {fix}",
        url.redacted()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(pid: &str, marker: &str) -> Seen {
        Seen {
            pid: pid.into(),
            marker: marker.into(),
        }
    }

    #[test]
    fn direct_sessions_pass_and_every_sign_of_sharing_is_caught() {
        let n = "n1";
        assert_eq!(
            verdict(&seen("10", ""), &seen("11", ""), &seen("10", n), n),
            None
        );
        // The second client got the first one's session back (PgBouncer's LIFO reuse).
        assert!(verdict(&seen("10", ""), &seen("10", n), &seen("10", n), n).is_some());
        assert!(verdict(&seen("10", ""), &seen("10", ""), &seen("10", n), n).is_some());
        // The first client, asking again, got the second one's session.
        assert!(verdict(&seen("10", ""), &seen("11", ""), &seen("11", ""), n).is_some());
        // Another dbsafe process's marker.
        assert!(verdict(&seen("10", "x"), &seen("11", ""), &seen("10", n), n).is_some());
        assert!(verdict(&seen("10", ""), &seen("11", "x"), &seen("10", n), n).is_some());
        // Same pid but the marker is gone or another's: not one session.
        assert!(verdict(&seen("10", ""), &seen("11", ""), &seen("10", "x"), n).is_some());
    }
}
