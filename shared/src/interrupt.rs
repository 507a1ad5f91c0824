//! Ctrl-C (SIGINT/SIGTERM): the throwaway databases this process created (shadows,
//! scratch restores, rehearsal clones) are dropped before it exits with code 130.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type Cleanup = Box<dyn Fn() + Send>;

static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Installs the handler; the binaries call it once at start. A failure to install (a
/// handler already set) is ignored: cleanup on Drop still works.
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(mut cleanups) = CLEANUPS.lock() {
            for (_, cleanup) in cleanups.drain(..) {
                cleanup();
            }
        }
        eprintln!("interrupted: throwaway databases dropped");
        std::process::exit(130);
    });
}

/// Registers a cleanup to run if the process is interrupted; returns its key.
pub fn register(cleanup: Cleanup) -> u64 {
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut cleanups) = CLEANUPS.lock() {
        cleanups.push((key, cleanup));
    }
    key
}

/// Forgets a cleanup (the resource was released normally).
pub fn unregister(key: u64) {
    if let Ok(mut cleanups) = CLEANUPS.lock() {
        cleanups.retain(|(k, _)| *k != key);
    }
}
