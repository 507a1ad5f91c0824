//! Progress of long operations, for whoever shows it: the engine reports its phases, the
//! tables it has hashed and the files it is writing here; the CLI installs a [`Progress`]
//! that draws them on a terminal. Without one installed (CI, piped output, JSON, tests)
//! every call is a no-op: the engine itself never prints.

use std::path::Path;
use std::sync::OnceLock;

/// Receives the progress of the operation under way.
pub trait Progress: Send + Sync {
    /// A new phase began (`dumping`, `restoring into a scratch database`, ...).
    fn phase(&self, phase: &str);
    /// One more table's data fingerprint is done.
    fn table_done(&self, table: &str);
    /// The phase writes `file`: its growing size is the progress.
    fn writing(&self, file: &Path);
}

static PROGRESS: OnceLock<Box<dyn Progress>> = OnceLock::new();

/// Installs the process's progress receiver (the first one stays).
pub fn install(progress: Box<dyn Progress>) {
    let _ = PROGRESS.set(progress);
}

/// Reports a new phase.
pub fn phase(phase: &str) {
    if let Some(progress) = PROGRESS.get() {
        progress.phase(phase);
    }
}

/// Reports one more table fingerprinted.
pub fn table_done(table: &str) {
    if let Some(progress) = PROGRESS.get() {
        progress.table_done(table);
    }
}

/// Reports that the current phase writes `file`.
pub fn writing(file: &Path) {
    if let Some(progress) = PROGRESS.get() {
        progress.writing(file);
    }
}
