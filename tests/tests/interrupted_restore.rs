//! A level 2 restore killed (`kill -9`) at each dangerous moment: while the copy is being
//! written beside the target (on PostgreSQL while the real `pg_restore` runs), before the
//! swap, during PostgreSQL's rename, and after the swap. The target must never be left
//! empty: before the swap it is exactly as it was, after it the restored snapshot; `status`
//! says what happened; the same command run again finishes the job.

use std::time::Duration;

use dbsafe_tests::{Backend, Project, Run, Watched, each_backend, finish, table_text, wait_until};
use serde_json::Value;

each_backend!(
    killed_while_writing_the_copy,
    killed_before_the_swap,
    killed_after_the_swap,
);

#[test]
fn killed_during_the_postgres_rename() {
    let p = Project::new(Backend::Postgres);
    let a = two_runs(&p, 0);
    let (_, killed) = kill_at(&p, &a, "restore-renaming");
    // The target refuses sessions while its rename is under way: status says why.
    let status = p.dbsafe(&["status"]);
    status.expect_code(4);
    assert!(
        status.stderr.contains(&format!("restore run {killed}"))
            && status.stderr.contains("interrupted"),
        "{status:?}"
    );
    restore_again_finishes(&p, &a);
}

#[test]
fn killed_while_pg_restore_runs() {
    let p = Project::new(Backend::Postgres);
    let a = two_runs(&p, 200_000);
    let mut child = p.spawn_dbrollback(&[&a, "--restore", "--yes", "--message-format", "json"]);
    let pid = child.id();
    wait_until(Duration::from_secs(60), "pg_restore to run", || {
        child_named(pid, "pg_restore")
    });
    child.kill().expect("SIGKILL");
    let _ = finish(child);
    target_untouched(&p, &a, 200_002);
    let staging = journaled_staging(&p);
    wait_until(
        Duration::from_secs(30),
        "the orphaned pg_restore to end",
        || !child_named(pid, "pg_restore") || !exists(&p, &staging),
    );
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(status.stdout.contains("interrupted"), "{status:?}");
    restore_again_finishes(&p, &a);
    assert!(
        !exists(&p, &staging),
        "the unfinished copy {staging} was dropped"
    );
}

fn killed_while_writing_the_copy(backend: Backend) {
    undone_then_finished(backend, "restore-staged");
}

fn killed_before_the_swap(backend: Backend) {
    undone_then_finished(backend, "restore-swap");
}

/// Killed before the swap: the target is as it was, `status` says so and names the
/// command, and that command finishes the restore (dropping the unfinished copy first).
fn undone_then_finished(backend: Backend, point: &str) {
    let p = Project::new(backend);
    let a = two_runs(&p, 0);
    kill_at(&p, &a, point);
    target_untouched(&p, &a, 2);
    let staging = journaled_staging(&p);
    assert!(exists(&p, &staging), "the copy {staging} is left for now");
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("interrupted")
            && status
                .stdout
                .contains(&format!("cargo dbrollback {a} --restore")),
        "{status:?}"
    );
    let again = restore_again_finishes(&p, &a);
    assert!(
        again.stdout.contains("interrupted before its swap"),
        "the rerun says what it found: {again:?}"
    );
    assert!(
        !exists(&p, &staging),
        "the unfinished copy {staging} was dropped"
    );
}

/// Killed after the swap committed: the target is already the snapshot; the next command
/// tidies up (the replaced database dropped, the restore run marked succeeded).
fn killed_after_the_swap(backend: Backend) {
    let p = Project::new(backend);
    let a = two_runs(&p, 0);
    let (_, killed) = kill_at(&p, &a, "restore-swapped");
    assert_eq!(table_text(&p.db, "items"), ["1|kept"]);
    assert!(!p.db.has_table("tags"));
    let replaced = journaled(&p, "replaced");
    let next = p.dbsafe(&["apply", "--message-format", "json"]);
    next.expect_code(0);
    assert!(
        next.stdout
            .contains("interrupted after its swap had committed"),
        "{next:?}"
    );
    assert!(
        !exists(&p, &replaced),
        "the replaced database {replaced} was dropped"
    );
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{killed}'"
        )),
        ["succeeded"]
    );
    // The apply went on to re-apply what the restore rewound.
    assert!(p.db.has_table("tags"));
}

// ---------------------------------------------------------------------------------------
// Helpers

const I1: &str = "20240101000001";
const I2: &str = "20240101000002";

/// A base run (items) and run A (tags) with a snapshot before it, then data written after
/// A (`extra` more rows in items, one tag). Returns A's id.
fn two_runs(p: &Project, extra: u32) -> String {
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration(
        "2024-01-01-000001_items",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(50) NOT NULL);\n",
        Some("DROP TABLE items;\n"),
    )
    .migration(
        "2024-01-01-000002_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL);\n",
        Some("DROP TABLE tags;\n"),
    );
    p.apply(&["--target-version", I1]).expect_code(0);
    p.db.execute("INSERT INTO items (id, label) VALUES (1, 'kept')");
    let a = p.apply(&[]);
    a.expect_code(0);
    p.db.execute("INSERT INTO items (id, label) VALUES (2, 'after a'); INSERT INTO tags (id, name) VALUES (1, 'red')");
    if extra > 0 {
        p.db.execute(&format!(
            "INSERT INTO items (id, label) SELECT g + 2, 'bulk ' || g FROM generate_series(1, {extra}) AS g"
        ));
    }
    a.run_id()
}

/// Runs `dbrollback RUN --restore` until it pauses at `point`, then kills it with SIGKILL.
/// Returns what it printed and the id of the restore run it was.
fn kill_at(p: &Project, run: &str, point: &str) -> (Run, String) {
    let mut cmd = p.command("cargo-dbrollback");
    cmd.args([
        "dbrollback",
        run,
        "--restore",
        "--yes",
        "--message-format",
        "json",
    ])
    .env("DBSAFE_TEST_PAUSE_AT", point);
    let watched = Watched::start(cmd);
    let marker = format!("paused at {point}");
    wait_until(Duration::from_secs(60), &marker, || {
        watched.saw_on_stderr(&marker)
    });
    watched.signal("KILL");
    let killed = watched.run_id();
    let out = watched.wait();
    assert_eq!(out.code, -1, "killed by a signal: {out:?}");
    (out, killed)
}

/// The target still holds run A's table and everything written after it.
fn target_untouched(p: &Project, a: &str, items: i64) {
    assert!(
        p.db.has_table("tags"),
        "tags (applied by run A) is still there"
    );
    assert_eq!(p.db.count("items"), items);
    assert_eq!(p.db.count("tags"), 1);
    assert_eq!(p.db.diesel_versions(), [I1, I2]);
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{a}'"
        )),
        ["succeeded"]
    );
}

/// The same restore command, run again, completes: the target is the snapshot taken
/// before run A, and the ledger says so.
fn restore_again_finishes(p: &Project, a: &str) -> Run {
    let again = p.dbrollback(&[a, "--restore", "--yes", "--message-format", "json"]);
    again.expect_code(0);
    assert_eq!(table_text(&p.db, "items"), ["1|kept"]);
    assert!(!p.db.has_table("tags"));
    assert_eq!(p.db.diesel_versions(), [I1]);
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{a}'"
        )),
        ["succeeded"],
        "written back exactly as it was"
    );
    assert_eq!(
        p.db.strings(&format!(
            "SELECT restored_by AS v FROM dbsafe_runs WHERE id = '{a}'"
        )),
        [again.run_id()]
    );
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{}'",
            again.run_id()
        )),
        ["succeeded"]
    );
    again
}

/// A name from the newest `restore.swap` line of the project's journal.
fn journaled(p: &Project, field: &str) -> String {
    let journal =
        std::fs::read_to_string(p.path().join(".dbsafe/snapshots/journal.jsonl")).expect("journal");
    journal
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "restore.swap")
        .and_then(|e| e["plan"][field].as_str().map(str::to_owned))
        .expect("a restore.swap line in the journal")
}

fn journaled_staging(p: &Project) -> String {
    journaled(p, "staging")
}

/// Whether a database (SQLite: a file) of this name exists on the test's server.
fn exists(p: &Project, name: &str) -> bool {
    match p.backend() {
        Backend::Sqlite => std::path::Path::new(name).exists(),
        Backend::Postgres => !p
            .db
            .strings(&format!("SELECT CAST(datname AS TEXT) AS v FROM pg_database WHERE datname = '{name}'"))
            .is_empty(),
        Backend::Mysql => !p
            .db
            .strings(&format!(
                "SELECT CAST(SCHEMA_NAME AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
            ))
            .is_empty(),
    }
}

/// Whether process `parent` has a child process whose command name is `name`.
fn child_named(parent: u32, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat
            .split_once(") ")
            .map(|(a, b)| (a.split_once(" (").map_or("", |x| x.1), b))
        else {
            return false;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok());
        comm == name && ppid == Some(parent)
    })
}
