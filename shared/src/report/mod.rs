//! The run report people look at: `cargo dbsafe runs show RUN --format markdown` (pull
//! requests, `$GITHUB_STEP_SUMMARY`) and `--format html` (one self-contained page). One
//! model ([`model::RunReport`]) built from the ledger, two renderers.

pub mod html;
pub mod markdown;
pub mod model;

use std::io::Write;
use std::path::Path;

pub use model::RunReport;

use crate::error::{Error, Result};

/// A short mark for a run status.
fn status_mark(status: &str) -> &'static str {
    match status {
        "succeeded" => "✅",
        "failed" => "❌",
        "reverted" | "restored" => "↩️",
        "running" => "⏳",
        _ => "•",
    }
}

/// A duration for people: `850 ms`, `2.4 s`, `3 min 05 s`.
fn duration_text(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// Appends `markdown` to the GitHub Actions job summary when this runs in GitHub Actions
/// (`GITHUB_STEP_SUMMARY` names the file); returns the file written, if any.
pub fn append_step_summary(markdown: &str) -> Result<Option<std::path::PathBuf>> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = Path::new(&path).to_owned();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // A blank line after it: whatever is appended next starts a new block.
    file.write_all(format!("{}\n\n", markdown.trim_end()).as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};
    use crate::ledger::{RunRow, StepRow};

    fn hostile() -> &'static str {
        "<script>alert(1)</script> | **bold** `tick` [link](http://x) & \"q\" 'a'\nline2"
    }

    /// A run's row, steps and events as the ledger holds them.
    struct Detail {
        run: RunRow,
        steps: Vec<StepRow>,
        events: Vec<Event>,
    }

    impl Detail {
        fn report(&self) -> RunReport {
            RunReport::new(&self.run, &self.steps, &self.events)
        }
    }

    fn detail() -> Detail {
        let run = RunRow {
            id: "20261121T153012Z-7f3a".parse().unwrap(),
            kind: crate::run::RunKind::Apply,
            target: "prod".into(),
            environment: "production".into(),
            operator: hostile().into(),
            host: "ci".into(),
            tool_version: "0.1.0".into(),
            git_commit: Some("abc123".into()),
            git_dirty: Some(false),
            started_at: "2026-11-21T15:30:12.000Z".into(),
            finished_at: Some("2026-11-21T15:30:14.000Z".into()),
            status: crate::run::RunStatus::Reverted,
            snapshot_id: Some("20261121T153012Z-aaaa".into()),
            bundle_hash: None,
            error: Some(hostile().into()),
            parent_run: None,
            restored_by: None,
            fleet_run: None,
        };
        let step = |seq, name: &str, status: &str, start: &str, ms, attempts| StepRow {
            run_id: run.id.clone(),
            seq,
            version: format!("00{seq}"),
            name: name.into(),
            direction: if status == "reverted" {
                crate::run::Direction::Down
            } else {
                crate::run::Direction::Up
            },
            status: crate::run::StepStatus::parse(status).expect("a step status"),
            transactional: true,
            up_checksum: "x".into(),
            down_checksum: None,
            started_at: start.into(),
            finished_at: None,
            duration_ms: Some(ms),
            attempts,
            error: (status == "failed").then(|| hostile().to_owned()),
        };
        Detail {
            steps: vec![
                step(
                    1,
                    "2026-01-01-000001_users",
                    "applied",
                    "2026-11-21T15:30:12.300Z",
                    400,
                    1,
                ),
                step(2, hostile(), "failed", "2026-11-21T15:30:12.700Z", 600, 3),
                step(
                    3,
                    "2026-01-01-000001_users",
                    "reverted",
                    "2026-11-21T15:30:13.400Z",
                    200,
                    1,
                ),
            ],
            events: vec![
                Event {
                    run_id: Some(run.id.clone()),
                    at: "2026-11-21T15:30:12.250Z".into(),
                    operator: None,
                    kind: EventKind::SnapshotCreated {
                        snapshot_id: "20261121T153012Z-aaaa".into(),
                        strategy: "pg-dump".into(),
                        bytes: 10,
                        duration_ms: 200,
                    },
                },
                Event {
                    run_id: Some(run.id.clone()),
                    at: "2026-11-21T15:30:13.300Z".into(),
                    operator: None,
                    kind: EventKind::VerifyFailed {
                        version: "002".into(),
                        message: hostile().into(),
                    },
                },
            ],
            run,
        }
    }

    #[test]
    fn model_places_every_step_on_the_timeline() {
        let report = detail().report();
        assert_eq!(report.duration_ms, Some(2000));
        let kinds: Vec<_> = report
            .timeline
            .iter()
            .map(|b| (b.kind, b.start_ms))
            .collect();
        use model::BarKind::*;
        assert_eq!(kinds, [(Snapshot, 50), (Up, 300), (Up, 700), (Down, 1400)]);
        assert_eq!(report.timeline[2].retries(), 2);
        assert!(report.timeline[2].failed);
        assert_eq!(report.checks.len(), 1);
        // Reverted when it failed: nothing left to undo.
        assert!(report.rollback.commands.is_empty());
    }

    #[test]
    fn renderers_escape_what_the_run_recorded() {
        let report = detail().report();
        let page = html::render(&report);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("http://x\""));
        assert_eq!(page.matches("<rect class=\"bar ").count(), 4);
        assert!(page.contains("bar up failed retried"));
        let md = markdown::render(&report);
        assert!(!md.contains("<script"), "{md}");
        assert!(md.contains("&lt;script&gt;"));
        assert!(
            md.contains("\\| \\*\\*bold\\*\\* \\`tick\\` \\[link\\]\\(http://x\\)"),
            "{md}"
        );
        assert!(
            !md.contains("\nline2"),
            "a line break would end the table row: {md}"
        );
    }

    #[test]
    fn row_counts_render_with_their_change() {
        let rows = vec![
            model::RowChange {
                table: "users".into(),
                before: Some(40_000),
                after: Some(38_800),
                estimated: false,
            },
            model::RowChange {
                table: "<b>new</b>".into(),
                before: None,
                after: Some(3),
                estimated: true,
            },
        ];
        let report = detail().report().with_rows(rows);
        let md = markdown::render(&report);
        assert!(md.contains("| users | 40000 | 38800 | -1200 |"), "{md}");
        assert!(
            md.contains("| &lt;b&gt;new&lt;/b&gt; | – | ≈ 3 | – |"),
            "{md}"
        );
        let page = html::render(&report);
        assert!(page.contains("<td class=\"num\">-1200</td>"), "{page}");
        assert!(page.contains("&lt;b&gt;new&lt;/b&gt;"), "{page}");
    }

    #[test]
    fn an_applied_run_names_its_rollback_commands() {
        let mut detail = detail();
        detail.run.status = crate::run::RunStatus::Succeeded;
        let report = detail.report();
        let commands: Vec<&str> = report
            .rollback
            .commands
            .iter()
            .map(|c| c.command.as_str())
            .collect();
        assert_eq!(
            commands,
            [
                "cargo dbrollback 20261121T153012Z-7f3a --target prod",
                "cargo dbrollback 20261121T153012Z-7f3a --restore --target prod"
            ]
        );
    }
}
