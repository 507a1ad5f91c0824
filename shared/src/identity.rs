//! Database identity binding: a target remembers which database it reached first
//! (PostgreSQL system identifier + database, MySQL server + schema, SQLite file), and a
//! database's ledger remembers which target it belongs to. A staging config pointed at
//! production is refused until re-bound on purpose.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::connection::Database;
use crate::error::{Error, Result};
use crate::journal::create_private_dir;
use crate::ledger;
use crate::target::Target;

/// The identity of the database a connection reaches (PostgreSQL system identifier +
/// database, MySQL server + schema, SQLite file).
pub fn identity(db: &mut Database) -> Result<String> {
    db.dialect().identity(db)
}

/// The outcome of checking a target's binding: what to record once the lock is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The identity reached now.
    pub identity: String,
    /// The identity the target was bound to before, when it differs (a re-bind).
    pub previous: Option<String>,
    /// Whether nothing was recorded yet (first use).
    pub first_use: bool,
    /// Whether dbsafe re-bound the target on its own: an unprotected target whose URL now
    /// reaches another database on this machine (a dev DATABASE_URL pointed elsewhere).
    pub automatic: bool,
    /// Whether the database's ledger already names this target and this identity (then
    /// recording the binding writes nothing there).
    pub in_ledger: bool,
}

impl Binding {
    /// Whether recording this binding is a re-bind (worth a `ledger.rebind` event).
    pub fn is_rebind(&self) -> bool {
        self.previous.is_some()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BindingsFile {
    targets: BTreeMap<String, String>,
}

fn bindings_path(snapshot_dir: &Path) -> PathBuf {
    snapshot_dir.join("targets.json")
}

fn read_bindings(snapshot_dir: &Path) -> Result<BindingsFile> {
    let path = bindings_path(snapshot_dir);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is not valid ({e}): fix or delete it (it only remembers which database each target reached)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BindingsFile::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Compares the database reached now with the target's local binding and with the
/// target the database's ledger belongs to. Refuses a mismatch unless `rebind`.
pub fn check(
    db: &mut Database,
    target: &Target,
    snapshot_dir: &Path,
    rebind: bool,
) -> Result<Binding> {
    let identity = identity(db)?;
    let local = read_bindings(snapshot_dir)?
        .targets
        .get(&target.name)
        .cloned();
    let (ledger_target, ledger_identity) = if ledger::exists(db)? {
        (
            ledger::meta_get(db, "bound_target")?,
            ledger::meta_get(db, "identity")?,
        )
    } else {
        (None, None)
    };
    let mut previous = None;
    let mut automatic = false;
    // A development database moves all the time: an unprotected development target that
    // now reaches another database on this machine, one no other target's ledger claims,
    // follows it.
    let follows = !target.protected
        && target.environment == crate::config::Environment::Development
        && is_local(&target.url)
        && ledger_target
            .as_ref()
            .is_none_or(|bound| *bound == target.name);
    if let Some(local) = &local
        && *local != identity
    {
        automatic = !rebind && follows;
        if !rebind && !automatic {
            return Err(crate::error::Reason::IdentityMismatch.refuse(format!(
                "target `{}` is bound to database {local}, but its URL now reaches {identity}.\n  \
                 If the URL points at the wrong database (staging config aimed at production?), fix it.\n  \
                 If the database really moved or was re-created, run again with --rebind.",
                target.name
            )));
        }
        previous = Some(local.clone());
    }
    if let Some(bound) = &ledger_target
        && *bound != target.name
    {
        if !rebind {
            return Err(crate::error::Reason::IdentityMismatch.refuse(format!(
                "this database's ledger says it belongs to target `{bound}`, but this command runs target `{}`.\n  \
                 Check the URL; if this database is now meant for `{}`, run again with --rebind.",
                target.name, target.name
            )));
        }
        previous = previous.or_else(|| {
            Some(format!(
                "target {bound} ({})",
                ledger_identity.clone().unwrap_or_default()
            ))
        });
    }
    Ok(Binding {
        in_ledger: ledger_target.as_deref() == Some(target.name.as_str())
            && ledger_identity.as_deref() == Some(identity.as_str()),
        first_use: local.is_none() || ledger_target.is_none(),
        identity,
        previous,
        automatic,
    })
}

/// Whether a URL reaches a database on this machine: SQLite, or a server on localhost,
/// a loopback address or a Unix socket.
fn is_local(url: &crate::target::DatabaseUrl) -> bool {
    if url.sqlite_path().is_some() {
        return true;
    }
    let text = url.connection_string();
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    host.is_empty()
        || host.starts_with('%')
        || host == "localhost"
        || host == "::1"
        || host.starts_with("127.")
}

/// The `dbsafe_meta` rows that record the binding in the ledger, for the caller to write
/// with the ledger's other setup: none when the ledger already says so.
pub fn ledger_rows(target: &Target, binding: &Binding) -> Vec<(&'static str, String)> {
    if binding.in_ledger {
        return Vec::new();
    }
    vec![
        ("bound_target", target.name.clone()),
        ("identity", binding.identity.clone()),
    ]
}

/// Records the binding locally, in the bindings file.
pub fn record(target: &Target, snapshot_dir: &Path, binding: &Binding) -> Result<()> {
    // Fleet members are applied on several threads of one process: one read-modify-write
    // of the bindings file at a time (the staging file is named by the process id).
    static BINDINGS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BINDINGS.lock().unwrap_or_else(|e| e.into_inner());
    let mut file = read_bindings(snapshot_dir)?;
    let path = bindings_path(snapshot_dir);
    create_private_dir(snapshot_dir)?;
    if file.targets.get(&target.name) != Some(&binding.identity) {
        file.targets
            .insert(target.name.clone(), binding.identity.clone());
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        // Write beside it, then rename: a concurrent reader sees the old or the new file, never half of one.
        let staging = path.with_extension(format!("json.{}", std::process::id()));
        crate::snapshot::create_private_file(&staging)?
            .write_all((text + "\n").as_bytes())
            .map_err(|e| Error::io(&staging, e))?;
        fs::rename(&staging, &path).map_err(|e| Error::io(&path, e))?;
    } else {
        // Written by an older dbsafe with the default mode: made private now.
        #[cfg(unix)]
        crate::journal::tighten(&path, 0o600)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::DatabaseUrl;

    #[test]
    fn local_urls() {
        let local = |url: &str| is_local(&DatabaseUrl::parse(url, Path::new("/")).unwrap());
        assert!(local("postgres://app:pw@localhost:5432/app"));
        assert!(local("postgres://127.0.0.1/app"));
        assert!(local("mysql://root@[::1]:3306/app"));
        assert!(local("postgres:///app"));
        assert!(local("sqlite://dev.db"));
        assert!(!local("postgres://app:pw@db.example.com:5432/app"));
        assert!(!local("mysql://root@10.0.0.7/app"));
    }
}
