//! The terminal's side of [`crate::progress`]: the engine's phases, tables hashed and bytes
//! written become the message of the spinner or bar shown (with its elapsed time). Installed
//! only where progress bars are allowed (a terminal, not CI, not JSON, not --quiet).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar};

/// What is shown now.
struct Shown {
    bar: ProgressBar,
    /// The operation (`taking a snapshot of dev`, or the migration running).
    base: String,
    phase: String,
    tables: u64,
    file: Option<PathBuf>,
}

static SHOWN: Mutex<Option<Shown>> = Mutex::new(None);

/// Receives the engine's progress and draws it on the bar attached with [`attach`].
struct Terminal;

impl crate::progress::Progress for Terminal {
    fn phase(&self, phase: &str) {
        update(|shown| {
            shown.phase = phase.to_owned();
            shown.file = None;
        });
    }

    fn table_done(&self, _table: &str) {
        update(|shown| shown.tables += 1);
    }

    fn writing(&self, file: &Path) {
        update(|shown| shown.file = Some(file.to_owned()));
    }
}

/// Installs the terminal receiver, and a thread that shows the growing size of the file
/// being written four times a second.
pub fn install() {
    crate::progress::install(Box::new(Terminal));
    let _ = std::thread::Builder::new()
        .name("dbsafe-progress".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                update(|_| {});
            }
        });
}

/// Shows the engine's progress on `bar`, after `base`.
pub fn attach(bar: &ProgressBar, base: &str) {
    if let Ok(mut shown) = SHOWN.lock() {
        *shown = Some(Shown {
            bar: bar.clone(),
            base: base.to_owned(),
            phase: String::new(),
            tables: 0,
            file: None,
        });
    }
    update(|_| {});
}

/// Stops showing progress on the attached bar.
pub fn detach() {
    if let Ok(mut shown) = SHOWN.lock() {
        *shown = None;
    }
}

fn update(change: impl FnOnce(&mut Shown)) {
    let Ok(mut guard) = SHOWN.lock() else {
        return;
    };
    let Some(shown) = guard.as_mut() else {
        return;
    };
    change(shown);
    if !shown.bar.is_finished() {
        shown.bar.set_message(message(shown));
    }
}

/// `taking a snapshot of dev: pg_dump, 12.5 MiB written, 3 table(s) hashed`.
fn message(shown: &Shown) -> String {
    let mut parts = Vec::new();
    if !shown.phase.is_empty() {
        parts.push(shown.phase.clone());
    }
    if let Some(size) = shown
        .file
        .as_deref()
        .and_then(|f| std::fs::metadata(f).ok())
    {
        parts.push(format!("{} written", HumanBytes(size.len())));
    }
    if shown.tables > 0 {
        parts.push(format!("{} table(s) hashed", shown.tables));
    }
    match (shown.base.is_empty(), parts.is_empty()) {
        (_, true) => shown.base.clone(),
        (true, false) => parts.join(", "),
        (false, false) => format!("{}: {}", shown.base, parts.join(", ")),
    }
}
