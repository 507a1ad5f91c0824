//! Output: run events as human text (colours and a progress bar only on a
//! terminal, never in CI) or as JSON Lines; reports through their renderers (`render`);
//! errors with their exit code and reason; a broken pipe ends quietly.

use std::io::{BufRead, IsTerminal, Write};

use console::{Style, Term};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::exit;
use super::render::{ErrorReport, HumanStream, Report};
use super::{ColorChoice, GlobalArgs, MessageFormat, in_ci, interactive};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, EventSink};
use crate::run_id::RunId;
use crate::target::Target;

/// Where and how a command writes: data to stdout, diagnostics and progress to stderr.
pub struct Output {
    format: MessageFormat,
    quiet: bool,
    verbose: bool,
    progress_allowed: bool,
    bar: Option<ProgressBar>,
    /// The kind of the run being shown (`apply`, `rollback`, `restore`), for its wording.
    run_kind: String,
}

impl Output {
    /// Output as the global flags and the environment ask.
    pub fn new(args: &GlobalArgs) -> Output {
        let colors = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => match std::env::var("CARGO_TERM_COLOR").as_deref() {
                Ok("always") => true,
                Ok("never") => false,
                _ => {
                    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::io::stderr().is_terminal()
                }
            },
        };
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors);
        let progress_allowed = args.message_format == MessageFormat::Human
            && !args.quiet
            && std::io::stderr().is_terminal()
            && !in_ci();
        if progress_allowed {
            super::progress::install();
        }
        Output {
            format: args.message_format,
            quiet: args.quiet,
            verbose: args.verbose > 0,
            progress_allowed,
            bar: None,
            run_kind: String::new(),
        }
    }

    /// Whether a progress display may be drawn (human output on a terminal, not in CI).
    pub fn progress_allowed(&self) -> bool {
        self.progress_allowed
    }

    /// Whether output is JSON Lines.
    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// Writes one JSON line to stdout.
    pub fn json<T: Serialize>(&self, value: &T) {
        let line = serde_json::to_string(value).unwrap_or_default();
        stdout_line(&line);
    }

    /// Writes a report in the chosen format: its JSON Lines, its annotations (github) or
    /// its text for people.
    pub fn report(&self, report: &dyn Report) {
        let text = match self.format {
            MessageFormat::Json => {
                for line in report.json() {
                    self.json(&line.object());
                }
                return;
            }
            MessageFormat::Human => report.human(),
            MessageFormat::Github => report.github(),
        };
        if text.is_empty() {
            return;
        }
        match report.stream() {
            HumanStream::Data => self.data(&text),
            HumanStream::Always => stdout_line(text.trim_end_matches('\n')),
            HumanStream::Notes => self.note(text.trim_end_matches('\n')),
        }
    }

    /// Writes human data (a report) to stdout.
    pub fn data(&self, text: &str) {
        if !self.quiet {
            stdout_line(text.trim_end_matches('\n'));
        }
    }

    /// Writes a human diagnostic line to stderr (above the progress bar, if any).
    pub fn note(&self, text: &str) {
        if self.quiet || self.is_json() {
            return;
        }
        match self.bar.as_ref().filter(|bar| !bar.is_finished()) {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    /// A note that also becomes the message of the spinner or bar shown, if any.
    fn note_phase(&self, text: &str) {
        self.note(text);
        if let Some(bar) = &self.bar {
            super::progress::attach(bar, text);
        }
    }

    /// Shows `phase` with a spinner and the time elapsed on stderr while a long operation
    /// runs (a snapshot, a restore, a rehearsal, a shadow database): only on a terminal, never
    /// in CI, with JSON, with --quiet or when stderr is piped. Cleared when the returned
    /// guard drops; events printed meanwhile go above it.
    pub fn phase(&mut self, phase: &str) -> Phase {
        if !self.progress_allowed {
            return Phase(None);
        }
        let spinner = ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::term(Term::stderr(), 10),
        );
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(phase.to_owned());
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        super::progress::attach(&spinner, phase);
        if self.bar.as_ref().is_none_or(ProgressBar::is_finished) {
            self.bar = Some(spinner.clone());
        }
        Phase(Some(spinner))
    }

    /// Reports an error: on stderr always, and as a `{"type":"error"}` line in JSON mode.
    /// Returns the exit code.
    pub fn error(&mut self, error: &Error) -> u8 {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let report = ErrorReport {
            error,
            exit_code: exit::code_of(error),
        };
        if self.is_json() {
            report
                .json()
                .into_iter()
                .for_each(|l| self.json(&l.object()));
        }
        let _ = writeln!(std::io::stderr(), "{}", report.human());
        report.exit_code
    }

    fn human_event(&mut self, event: &Event) {
        let green = Style::new().green();
        let yellow = Style::new().yellow();
        let red = Style::new().red();
        let dim = Style::new().dim();
        let run = event.run_id.as_ref().map_or("-", RunId::as_str);
        match &event.kind {
            EventKind::RunStarted {
                kind,
                target,
                environment,
                url,
                pending,
                snapshot_id,
                ..
            } => {
                self.run_kind = kind.to_string();
                let what = match (kind.as_str(), pending.is_empty(), snapshot_id) {
                    ("restore", _, Some(snapshot)) => format!("snapshot {snapshot}"),
                    ("apply", true, _) => "nothing to apply".to_owned(),
                    _ => format!("{} migration(s)", pending.len()),
                };
                self.note(&format!(
                    "{} {kind} on {target} ({environment}, {url}): {what}",
                    dim.apply_to(format!("run {run}"))
                ));
                if self.progress_allowed && !pending.is_empty() {
                    let bar = ProgressBar::with_draw_target(
                        Some(pending.len() as u64),
                        indicatif::ProgressDrawTarget::term(Term::stderr(), 10),
                    );
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    super::progress::attach(&bar, "preflight, lock, snapshot");
                    if let Some(previous) = self.bar.take() {
                        previous.finish_and_clear();
                    }
                    self.bar = Some(bar);
                }
            }
            EventKind::PreflightWarning { message } => {
                self.note(&format!("{} {message}", yellow.apply_to("warning:")))
            }
            EventKind::LockWaiting { holder } => self.note(&format!(
                "waiting for the target's lock, held by {}",
                holder
                    .as_ref()
                    .map_or("another dbsafe process".to_owned(), |h| format!("run {h}"))
            )),
            EventKind::LockAcquired {} => {}
            EventKind::MigrationStarted {
                name,
                index,
                total,
                transactional,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    super::progress::attach(bar, name);
                } else if self.verbose {
                    let tx = if *transactional {
                        "in a transaction"
                    } else {
                        "no transaction"
                    };
                    self.note(&format!("  [{index}/{total}] {name} ({tx})"));
                }
            }
            EventKind::MigrationRetry {
                version,
                attempt,
                message,
            } => self.note(&format!(
                "  {} {version}: lock timeout on attempt {attempt}, retrying ({message})",
                yellow.apply_to("retry")
            )),
            EventKind::MigrationApplied {
                name, duration_ms, ..
            } => {
                self.note(&format!(
                    "  {} {name} {}",
                    green.apply_to("applied"),
                    dim.apply_to(format!("({duration_ms} ms)"))
                ));
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            EventKind::MigrationFailed {
                name, error, dirty, ..
            } => {
                let tag = if *dirty {
                    " (no transaction: the target is dirty)"
                } else {
                    ""
                };
                self.note(&format!(
                    "  {} {name}{tag}: {error}",
                    red.apply_to("failed")
                ));
            }
            EventKind::VerifyFailed { version, message } => {
                let of = if version.is_empty() {
                    String::new()
                } else {
                    format!(" {version}")
                };
                self.note(&format!(
                    "  {}{of}: {message}",
                    red.apply_to("verify failed")
                ))
            }
            EventKind::MigrationReverted {
                name, duration_ms, ..
            } => self.note(&format!(
                "  {} {name} {}",
                yellow.apply_to("reverted"),
                dim.apply_to(format!("({duration_ms} ms)"))
            )),
            EventKind::RunSucceeded {
                applied,
                duration_ms,
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.note(&format!(
                    "{} run {run}: {applied} migration(s) {} in {duration_ms} ms",
                    green.apply_to("succeeded"),
                    if self.run_kind == "apply" {
                        "applied"
                    } else {
                        "reverted"
                    }
                ));
            }
            EventKind::RunFailed { status, .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.note(&format!("{} run {run} ({status})", red.apply_to("failed")));
            }
            EventKind::LedgerRebind {
                target,
                previous,
                identity,
                automatic,
            } => self.note(&format!(
                "{} target {target} re-bound to {identity} (was {}){}",
                yellow.apply_to("rebind:"),
                previous.as_deref().unwrap_or("unbound"),
                if *automatic {
                    "; it is unprotected and its URL now reaches another database on this \
                     machine, so it follows it (recorded as ledger.rebind)"
                } else {
                    ""
                }
            )),
            EventKind::RollbackRevert {
                name,
                reverted_run,
                duration_ms,
                ..
            } => {
                self.note(&format!(
                    "  {} {name} of run {reverted_run} {}",
                    yellow.apply_to("reverted"),
                    dim.apply_to(format!("({duration_ms} ms)"))
                ));
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            EventKind::Adopt { versions } => self.note(&format!(
                "{} {} migration(s) applied by {} outside dbsafe, recorded as found (an \
                 `adopt` event); `cargo dbverify --drift` checks the schema matches them",
                yellow.apply_to("adopted"),
                versions.len(),
                crate::layout::current().outside_tool()
            )),
            EventKind::RollbackDownEdited { name, .. } => self.note(&format!(
                "  {} {name}: running its edited down.sql (--allow-edit), recorded as rollback.down_edited",
                yellow.apply_to("edited")
            )),
            EventKind::SeedApplied { name, duration_ms } => self.note(&format!(
                "  {} {name} {}",
                green.apply_to("seeded"),
                dim.apply_to(format!("({duration_ms} ms)"))
            )),
            EventKind::StepResolved { version, state, .. } => {
                self.note(&format!("resolved {version} as {state}"))
            }
            EventKind::SnapshotCreated {
                snapshot_id,
                strategy,
                bytes,
                duration_ms,
            } => self.note(&format!(
                "{} {snapshot_id} ({strategy}, {}, {duration_ms} ms)",
                green.apply_to("snapshot"),
                indicatif::HumanBytes(*bytes)
            )),
            EventKind::RestoreSwap {
                snapshot_id, phase, ..
            } => self.note_phase(&if phase == "staging" {
                format!(
                    "{} snapshot {snapshot_id} into a new database beside the target",
                    yellow.apply_to("restoring")
                )
            } else {
                format!(
                    "{} the restored and checked copy of snapshot {snapshot_id} in for the target",
                    yellow.apply_to("swapping")
                )
            }),
            EventKind::RestoreEnded {
                snapshot_id,
                outcome,
                recovered,
            } => self.note(&format!(
                "{} restore of snapshot {snapshot_id}: {}{}",
                yellow.apply_to("restore"),
                if outcome == "swapped" {
                    "swapped in"
                } else {
                    "undone, the target is as it was"
                },
                if *recovered {
                    " (finished after an interruption)"
                } else {
                    ""
                }
            )),
            EventKind::SnapshotRestored {
                snapshot_id,
                rehydrated_runs,
                differences,
                duration_ms,
            } => {
                self.note(&format!(
                    "{} snapshot {snapshot_id} in {duration_ms} ms; runs written back from the journal: {}",
                    yellow.apply_to("restored"),
                    if rehydrated_runs.is_empty() { "none".to_owned() } else { crate::run_id::list(rehydrated_runs) }
                ));
                if differences.is_empty() {
                    self.note("  the database matches the snapshot's schema and data fingerprints");
                }
                for difference in differences {
                    self.note(&format!("  {} {difference}", red.apply_to("differs:")));
                }
            }
        }
    }
}

/// A phase shown by [`Output::phase`]; dropping it clears the spinner.
pub struct Phase(Option<ProgressBar>);

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(spinner) = self.0.take() {
            super::progress::detach();
            spinner.finish_and_clear();
        }
    }
}

impl EventSink for Output {
    fn emit(&mut self, event: &Event) {
        if self.is_json() {
            self.json(event);
        } else {
            self.human_event(event);
        }
    }
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the process quietly with 0.
fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(i32::from(exit::SUCCESS));
    }
}

/// Asks the operator to type the target's name to confirm an action on a protected target:
/// `Ok(true)` when they did; a refusal (exit 3) saying what was typed, or at once on
/// end of input (Ctrl-D). Read as a plain line (the terminal's own line editing), so Ctrl-D
/// and Ctrl-C act as they do everywhere.
pub fn prompt_confirmation(target: &Target, action: &str) -> Result<bool> {
    if !interactive() {
        return Ok(false);
    }
    let term = Term::stderr();
    let bold = Style::new().bold();
    let _ = term.write_line(&format!(
        "{} is protected ({}, {}). Type its name to {action}:",
        bold.apply_to(&target.name),
        target.environment,
        target.url.redacted()
    ));
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("<terminal>", e))?;
    crate::preflight::check_answer(target, (read > 0).then_some(line.as_str())).map(|()| true)
}
