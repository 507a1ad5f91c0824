//! `cargo dbsafe runs show RUN --format markdown|html`: the run report, from the ledger of
//! each backend, with what the run recorded escaped; Markdown appended to
//! `$GITHUB_STEP_SUMMARY`; the HTML page rendered by a real headless Chromium (installed by
//! scripts/ensure-chromium.sh; `DBSAFE_TEST_CHROMIUM` names another) with no console
//! message, one timeline bar per step in its DOM, and a screenshot that is not blank.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbsafe_tests::{Backend, Project, Run, Watched, each_backend, run, wait_until};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

each_backend!(markdown_and_html_reports_of_a_reverted_run);

/// A table name that is also an attempt at markup, in the failing migration's error.
const HOSTILE: &str = "<script>alert(1)</script>|**x**";

/// Two migrations, the second failing on a missing relation whose name is [`HOSTILE`]; the
/// run is reverted (MariaDB: failed with the target dirty, its DDL having no transaction).
/// Returns its id.
fn reverted_run(p: &Project, extra_config: &str) -> String {
    p.write_config(extra_config);
    p.migration(
        "2024-10-01-000001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(40));\nINSERT INTO users VALUES (1, 'ada');",
        Some("DROP TABLE users;"),
    );
    let quote = if p.backend() == Backend::Mysql {
        '`'
    } else {
        '"'
    };
    p.migration(
        "2024-10-01-000002_broken",
        &format!("INSERT INTO users SELECT * FROM {quote}{HOSTILE}{quote};"),
        Some("SELECT 1;"),
    );
    let out = p.apply(&[]);
    out.expect_code(if p.backend() == Backend::Mysql { 4 } else { 1 });
    out.run_id()
}

fn show(p: &Project, id: &str, format: &str, summary: Option<&Path>) -> Run {
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "runs", "show", id, "--format", format]);
    if let Some(file) = summary {
        cmd.env("GITHUB_STEP_SUMMARY", file);
    }
    run(cmd)
}

fn markdown_and_html_reports_of_a_reverted_run(backend: Backend) {
    let p = Project::new(backend);
    let id = reverted_run(&p, "");
    let summary = p.path().join("step-summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();

    let md = show(&p, &id, "markdown", Some(&summary));
    md.expect_code(0);
    let text = &md.stdout;
    let mysql = backend == Backend::Mysql;
    let status = if mysql { "failed" } else { "reverted" };
    assert!(
        text.contains(&format!("dbsafe apply run `{id}`: {status}")),
        "{text}"
    );
    let mut rows = vec![
        "| up | 2024-10-01-000001\\_users | applied |",
        if mysql {
            "| up | 2024-10-01-000002\\_broken | ❌ **started** |"
        } else {
            "| up | 2024-10-01-000002\\_broken | ❌ **failed** |"
        },
    ];
    if !mysql {
        rows.push("| down | 2024-10-01-000001\\_users | reverted |");
    }
    for row in &rows {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
    assert_eq!(
        text.matches("\n| up |").count() + text.matches("\n| down |").count(),
        rows.len()
    );
    assert!(!text.contains("<script"), "{text}");
    assert!(
        text.contains(r"&lt;script&gt;alert\(1\)&lt;/script&gt;\|\*\*x\*\*"),
        "{text}"
    );
    let rollback = if mysql {
        "cargo dbsafe resolve 20241001000002 --as applied\\|reverted --target test"
    } else {
        "nothing to roll back: the run was reverted"
    };
    assert!(text.contains(rollback), "{text}");
    let written = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(written, format!("earlier step\n{}\n\n", text.trim_end()));

    // Without GITHUB_STEP_SUMMARY nothing is written anywhere but stdout.
    let again = show(&p, &id, "markdown", None);
    assert_eq!(again.stdout, md.stdout);
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), written);

    let html = show(&p, &id, "html", None);
    html.expect_code(0);
    let page = &html.stdout;
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert_eq!(
        page.matches("<rect class=\"bar ").count(),
        rows.len(),
        "{page}"
    );
    assert_eq!(page.matches("class=\"bar up failed").count(), 1, "{page}");
    assert!(!page.contains("<script"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "{external} in {page}");
    }

    // A run id that is not in the ledger: exit 2, as for the text format.
    show(&p, "20200101T000000Z-0000", "html", None).expect_code(2);
}

/// The headless browser: `DBSAFE_TEST_CHROMIUM`, else `chromium`, else `chromium-browser`.
fn chromium() -> String {
    let candidates = match std::env::var("DBSAFE_TEST_CHROMIUM") {
        Ok(one) => vec![one],
        Err(_) => vec!["chromium".to_owned(), "chromium-browser".to_owned()],
    };
    for candidate in &candidates {
        let works = Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return candidate.clone();
        }
    }
    panic!(
        "no headless Chromium found (tried {candidates:?}): run scripts/ensure-chromium.sh (scripts/test.sh does), or set DBSAFE_TEST_CHROMIUM"
    );
}

/// What Chromium printed and produced for one page.
struct Rendered {
    dom: String,
    log: String,
}

/// Renders `page` headless with a fresh profile: `--dump-dom` (stdout) plus the console
/// log on stderr, and a screenshot into `png` when given.
fn render(page: &Path, png: Option<&Path>, profile: &Path) -> Rendered {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Containers often have a tiny /dev/shm.
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1100,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match png {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait for chromium").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "chromium did not finish rendering {} within 90 s",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed: {log}");
    Rendered {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        log,
    }
}

/// Console messages in Chromium's log (`CONSOLE(line)] "..."`, uncaught errors).
fn console_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn profile(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    path
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let p = Project::new(Backend::Postgres);
    let id = reverted_run(&p, "[apply]\nsnapshot = \"always\"\n");
    let html = show(&p, &id, "html", None);
    html.expect_code(0);
    let page = p.path().join("report.html");
    std::fs::write(&page, &html.stdout).unwrap();

    // The console check can fail: a page that logs an error is caught.
    let control = p.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><script>console.error('dbsafe-console-probe')</script></body></html>",
    )
    .unwrap();
    let caught = render(&control, None, &profile(p.path(), "profile-control"));
    assert!(
        console_lines(&caught.log)
            .iter()
            .any(|l| l.contains("dbsafe-console-probe")),
        "chromium's console is not visible in its log, so the report's check would prove nothing:\n{}",
        caught.log
    );

    let rendered = render(&page, None, &profile(p.path(), "profile-dom"));
    assert_eq!(
        console_lines(&rendered.log),
        Vec::<&str>::new(),
        "{}",
        rendered.log
    );
    let dom = &rendered.dom;
    assert!(dom.contains("<svg id=\"timeline\""), "{dom}");
    // Snapshot, two migrations up (one failed), one down: one bar each.
    assert_eq!(dom.matches("<rect class=\"bar ").count(), 4, "{dom}");
    assert_eq!(
        dom.matches("<rect class=\"bar snapshot").count(),
        1,
        "{dom}"
    );
    assert_eq!(
        dom.matches("<rect class=\"bar up failed").count(),
        1,
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");

    // The screenshot shows the page: a PNG of the window's size, much richer than a
    // screenshot of an empty page of the same size.
    let shot = p.path().join("report.png");
    let shown = render(&page, Some(&shot), &profile(p.path(), "profile-shot"));
    assert_eq!(
        console_lines(&shown.log),
        Vec::<&str>::new(),
        "{}",
        shown.log
    );
    let blank_page = p.path().join("blank.html");
    std::fs::write(&blank_page, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_shot = p.path().join("blank.png");
    render(
        &blank_page,
        Some(&blank_shot),
        &profile(p.path(), "profile-blank"),
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    let blank = std::fs::read(&blank_shot).expect("chromium wrote the blank screenshot");
    assert_eq!(png_size(&png), (1100, 900));
    assert_eq!(png_size(&blank), (1100, 900));
    assert!(
        png.len() > 8 * blank.len(),
        "the report's screenshot ({} bytes) is hardly richer than a blank page's ({} bytes)",
        png.len(),
        blank.len()
    );
}

#[test]
fn a_migration_retried_after_a_lock_timeout_is_marked_on_the_timeline() {
    let p = Project::new(Backend::Postgres);
    p.write_config("[apply]\nlock-timeout = \"200ms\"\nlock-retries = 3\n");
    p.migration(
        "2024-10-02-000001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE users;"),
    );
    p.apply(&[]).expect_code(0);
    p.migration(
        "2024-10-02-000002_email",
        "ALTER TABLE users ADD COLUMN email TEXT;",
        Some("ALTER TABLE users DROP COLUMN email;"),
    );
    // Another session reads the table in an open transaction: the ALTER waits for it.
    let mut reader = PgConnection::establish(&p.db.url).expect("connect");
    reader
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS SHARE MODE;")
        .expect("lock users");
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply", "--message-format", "json"]);
    let apply = Watched::start(cmd);
    wait_until(Duration::from_secs(30), "a migration.retry event", || {
        apply.saw("\"type\":\"migration.retry\"")
    });
    reader.batch_execute("COMMIT").expect("release users");
    let out = apply.wait();
    out.expect_code(0);
    let id = out.run_id();

    let md = show(&p, &id, "markdown", None);
    md.expect_code(0);
    assert!(
        md.stdout
            .contains("| up | 2024-10-02-000002\\_email | applied ↻ 1 retries |"),
        "{}",
        md.stdout
    );
    let html = show(&p, &id, "html", None);
    assert_eq!(
        html.stdout
            .matches("<rect class=\"bar up retried\"")
            .count(),
        1,
        "{}",
        html.stdout
    );
    assert!(html.stdout.contains("↻ 1 retries"), "{}", html.stdout);
}
