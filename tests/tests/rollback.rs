//! `cargo dbrollback` end to end on each backend: level 1 (revert a run's migrations with
//! their checksum-checked down.sql, as a recorded rollback run), `--cascade`, `--to`,
//! `--last`, `--list`, `--dry-run`, a down.sql failing half-way, the process killed during a
//! revert, and level 2 (`--restore` of the pre-run snapshot after a safety snapshot, the
//! rewound runs written back from the journal). After each, the schema (by fingerprint),
//! diesel's table and dbsafe's ledger must agree with what the command said it did.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use dbsafe_tests::{Backend, Project, Run, TestDb, each_backend, finish, table_text, wait_until};
use serde_json::Value;

each_backend!(
    revert_the_newest_run,
    later_runs_need_cascade,
    edited_or_missing_files_are_refused,
    failing_down_sql_in_the_middle,
    restore_the_snapshot_before_a_run,
    to_version_keeps_the_older_migrations,
    last_list_and_dry_run,
    unknown_run_no_snapshot_and_corrupt_snapshot,
    protected_target_needs_target_and_yes,
);

// ---------------------------------------------------------------------------------------
// Helpers

/// `cargo dbrollback ARGS --message-format json`.
fn rollback(p: &Project, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--message-format", "json"]);
    p.dbrollback(&all)
}

/// The message of the JSON `error` event of a failed command.
#[track_caller]
fn error_message(run: &Run) -> String {
    let error = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("no error event in {run:?}"));
    assert_eq!(error["exit_code"], run.code, "{run:?}");
    error["message"].as_str().unwrap().to_owned()
}

/// The first JSON event of a type.
#[track_caller]
fn event(run: &Run, kind: &str) -> Value {
    run.events()
        .into_iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {run:?}"))
}

fn concat(backend: Backend, parts: &[&str]) -> String {
    if backend == Backend::Mysql {
        format!("CONCAT({})", parts.join(", "))
    } else {
        parts.join(" || ")
    }
}

/// One column of a run's row in dbsafe_runs (NULL as empty).
fn run_field(db: &TestDb, run_id: &str, column: &str) -> String {
    let rows = db.strings(&format!(
        "SELECT COALESCE({column}, '') AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ));
    assert_eq!(rows.len(), 1, "run {run_id} not in dbsafe_runs");
    rows.into_iter().next().unwrap()
}

fn run_status(db: &TestDb, run_id: &str) -> String {
    run_field(db, run_id, "status")
}

/// `direction:version:status` of a run's steps, in order.
fn steps(db: &TestDb, run_id: &str) -> Vec<String> {
    db.strings(&format!(
        "SELECT {} AS v FROM dbsafe_steps WHERE run_id = '{run_id}' ORDER BY seq",
        concat(
            db.backend,
            &["direction", "':'", "version", "':'", "status"]
        )
    ))
}

/// The types of a run's events in the ledger, in order.
fn ledger_events(db: &TestDb, run_id: &str) -> Vec<String> {
    db.strings(&format!(
        "SELECT event_type AS v FROM dbsafe_events WHERE run_id = '{run_id}' ORDER BY seq"
    ))
}

/// The JSON payloads of a run's events of one type in the ledger, in order.
fn ledger_payloads(db: &TestDb, run_id: &str, kind: &str) -> Vec<Value> {
    db.strings(&format!(
        "SELECT payload AS v FROM dbsafe_events \
         WHERE run_id = '{run_id}' AND event_type = '{kind}' ORDER BY seq"
    ))
    .iter()
    .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("{p}: {e}")))
    .collect()
}

fn journal_path(p: &Project) -> PathBuf {
    p.path().join(".dbsafe/snapshots/journal.jsonl")
}

fn journal(p: &Project) -> Vec<Value> {
    std::fs::read_to_string(journal_path(p))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The run ids the journal has events of, in order of first appearance.
fn journal_runs(p: &Project) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for entry in journal(p) {
        if let Some(id) = entry["run_id"].as_str()
            && !ids.iter().any(|i| i == id)
        {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// Everything a refused command must leave as it was: the schema and data fingerprints,
/// diesel's table, the ledger's rows, the journal, and the snapshot directory.
#[derive(Debug, PartialEq)]
struct State {
    fingerprint: Value,
    diesel: Vec<String>,
    runs: Vec<String>,
    steps: i64,
    events: i64,
    journal: usize,
    files: Vec<String>,
}

fn state(p: &Project) -> State {
    State {
        fingerprint: p.fingerprint(),
        diesel: p.db.diesel_versions(),
        runs: p.db.strings(&format!(
            "SELECT {} AS v FROM dbsafe_runs ORDER BY started_at, id",
            concat(p.backend(), &["id", "':'", "status"])
        )),
        steps: p.db.count("dbsafe_steps"),
        events: p.db.count("dbsafe_events"),
        journal: journal(p).len(),
        files: dbsafe_tests::tree(&p.path().join(".dbsafe")),
    }
}

/// A `DROP INDEX` on each backend (MariaDB names the table).
fn drop_index(backend: Backend, index: &str, table: &str) -> String {
    match backend {
        Backend::Mysql => format!("DROP INDEX {index} ON {table};\n"),
        _ => format!("DROP INDEX {index};\n"),
    }
}

// Run A: two migrations; run B: one more, which also indexes a table of A.
const ACCOUNTS: &str = "2024-03-01-000001_accounts";
const ORDERS: &str = "2024-03-01-000002_orders";
const NOTES: &str = "2024-03-01-000003_notes";
const V1: &str = "20240301000001";
const V2: &str = "20240301000002";
const V3: &str = "20240301000003";

fn notes_down(backend: Backend) -> String {
    format!(
        "{}DROP TABLE notes;\n",
        drop_index(backend, "accounts_name", "accounts")
    )
}

fn a_and_b_migrations(p: &Project) {
    p.migration(
        ACCOUNTS,
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n",
        Some("DROP TABLE accounts;\n"),
    )
    .migration(
        ORDERS,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, \
         total INTEGER DEFAULT 0);\n\
         CREATE INDEX orders_account ON orders (account_id);\n",
        Some("DROP TABLE orders;\n"),
    )
    .migration(
        NOTES,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(200));\n\
         CREATE INDEX accounts_name ON accounts (name);\n",
        Some(&notes_down(p.backend())),
    );
}

/// Applies run A (ACCOUNTS, ORDERS) and run B (NOTES); returns their ids and the
/// fingerprint taken between them.
fn runs_a_and_b(p: &Project) -> (String, String, Value) {
    a_and_b_migrations(p);
    let a = p.apply(&["--target-version", V2]);
    a.expect_code(0);
    p.db.execute("INSERT INTO accounts (id, name) VALUES (1, 'ada')");
    let after_a = p.fingerprint();
    let b = p.apply(&[]);
    b.expect_code(0);
    assert_eq!(p.db.diesel_versions(), [V1, V2, V3]);
    (a.run_id(), b.run_id(), after_a)
}

// ---------------------------------------------------------------------------------------
// 1. Revert the newest run

fn revert_the_newest_run(backend: Backend) {
    let p = Project::new(backend);
    let (a, b, after_a) = runs_a_and_b(&p);
    assert_ne!(p.fingerprint()["schema"], after_a["schema"]);

    let out = rollback(&p, &[&b]);
    out.expect_code(0);
    let rb = out.run_id();
    assert_ne!(rb, b);

    // The schema and data are exactly as after A; diesel's table agrees.
    assert_eq!(p.fingerprint(), after_a);
    assert_eq!(p.db.diesel_versions(), [V1, V2]);
    assert!(p.db.has_table("accounts") && !p.db.has_table("notes"));

    // The ledger: B reverted, A untouched, and a rollback run recorded as such.
    assert_eq!(run_status(&p.db, &b), "reverted");
    assert_eq!(run_status(&p.db, &a), "succeeded");
    assert_eq!(run_field(&p.db, &rb, "kind"), "rollback");
    assert_eq!(run_field(&p.db, &rb, "status"), "succeeded");
    assert_eq!(run_field(&p.db, &rb, "parent_run"), b);
    assert_eq!(run_field(&p.db, &rb, "operator"), "tester");
    assert_eq!(steps(&p.db, &rb), [format!("down:{V3}:reverted")]);
    assert_eq!(
        ledger_events(&p.db, &rb),
        ["run.started", "rollback.revert", "run.succeeded"]
    );
    let reverted = &ledger_payloads(&p.db, &rb, "rollback.revert")[0];
    assert_eq!(reverted["version"], V3);
    assert_eq!(reverted["name"], NOTES);
    assert_eq!(reverted["reverted_run"], b.as_str());
    // The step recorded the checksums it checked: those of the apply.
    assert_eq!(
        p.db.strings(&format!(
            "SELECT down_checksum AS v FROM dbsafe_steps WHERE run_id = '{rb}'"
        )),
        p.db.strings(&format!(
            "SELECT down_checksum AS v FROM dbsafe_steps WHERE run_id = '{b}'"
        ))
    );

    // The output said so, and the journal has the same events.
    let printed = event(&out, "rollback.revert");
    assert_eq!(printed["run_id"], rb.as_str());
    assert_eq!(printed["reverted_run"], b.as_str());
    assert_eq!(
        out.event_types(),
        ["run.started", "rollback.revert", "run.succeeded"]
    );
    let journaled: Vec<String> = journal(&p)
        .into_iter()
        .filter(|e| e["run_id"] == rb.as_str())
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        journaled,
        ["run.started", "rollback.revert", "run.succeeded"]
    );

    // B's migration is pending again, and applies again as a new run.
    let again = p.apply(&[]);
    again.expect_code(0);
    assert_eq!(p.db.diesel_versions(), [V1, V2, V3]);
    assert!(p.db.has_table("notes"));
    // Reverting that run, in human output this time, says what it did.
    let human = p.dbrollback(&[&again.run_id()]);
    human.expect_code(0);
    assert!(
        human.stderr.contains(&format!(
            "reverted 1 migration(s) of run {}",
            again.run_id()
        )),
        "{human:?}"
    );
    assert_eq!(p.fingerprint(), after_a);
}

// ---------------------------------------------------------------------------------------
// 2. Later runs on top: refused, or rolled back first with --cascade

fn later_runs_need_cascade(backend: Backend) {
    let p = Project::new(backend);
    drop(p.db.connect()); // SQLite: the empty database file exists, to fingerprint.
    let empty = p.fingerprint();
    let no_tables = |f: &Value| {
        f["tables"] == serde_json::json!([])
            && !f["schema"]["lines"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().starts_with("table "))
    };
    assert!(no_tables(&empty), "{empty}");
    let (a, b, _) = runs_a_and_b(&p);

    let before = state(&p);
    let refused = rollback(&p, &[&a]);
    refused.expect_code(3);
    let message = error_message(&refused);
    assert!(message.contains(&b), "{message}");
    assert!(message.contains("--cascade"), "{message}");
    assert_eq!(state(&p), before, "a refused rollback changed something");

    let out = rollback(&p, &[&a, "--cascade"]);
    out.expect_code(0);
    let rb = out.run_id();
    // Back to the fingerprint before A: an empty schema (dbsafe's and diesel's tables aside).
    assert_eq!(p.fingerprint(), empty);
    assert!(p.db.diesel_versions().is_empty());
    assert_eq!(run_status(&p.db, &a), "reverted");
    assert_eq!(run_status(&p.db, &b), "reverted");
    assert_eq!(run_field(&p.db, &rb, "parent_run"), a);
    // Newest first: B's migration, then A's.
    assert_eq!(
        steps(&p.db, &rb),
        [
            format!("down:{V3}:reverted"),
            format!("down:{V2}:reverted"),
            format!("down:{V1}:reverted"),
        ]
    );
    let whose: Vec<(String, String)> = ledger_payloads(&p.db, &rb, "rollback.revert")
        .iter()
        .map(|e| {
            (
                e["version"].as_str().unwrap().to_owned(),
                e["reverted_run"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        whose,
        [
            (V3.to_owned(), b.clone()),
            (V2.to_owned(), a.clone()),
            (V1.to_owned(), a.clone()),
        ]
    );
    // Nothing is left to roll back.
    let nothing = rollback(&p, &["--last"]);
    nothing.expect_code(2);
    assert!(
        error_message(&nothing).contains("no run can be rolled back"),
        "{nothing:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. The code being undone must be the code that was done

fn edited_or_missing_files_are_refused(backend: Backend) {
    let p = Project::new(backend);
    a_and_b_migrations(&p);
    std::fs::remove_dir_all(p.path().join("migrations").join(NOTES)).unwrap();
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let a = applied.run_id();
    let before = state(&p);

    let dir = |m: &str| p.path().join("migrations").join(m);
    let refused = |args: &[&str], needle: &str| {
        for dry_run in [false, true] {
            let mut args = args.to_vec();
            if dry_run {
                args.push("--dry-run");
            }
            let out = rollback(&p, &args);
            out.expect_code(3);
            let message = error_message(&out);
            assert!(message.contains(needle), "{needle} not in: {message}");
            assert_eq!(state(&p), before, "a refused rollback changed something");
        }
    };

    // An edited down.sql (the newest migration's: it would run first).
    let down = dir(ORDERS).join("down.sql");
    let original_down = std::fs::read_to_string(&down).unwrap();
    std::fs::write(&down, "DROP TABLE IF EXISTS orders;\n").unwrap();
    refused(&[&a], &down.display().to_string());
    std::fs::write(&down, &original_down).unwrap();

    // An edited up.sql of the older one: refused before the newer one is reverted.
    let up = dir(ACCOUNTS).join("up.sql");
    let original_up = std::fs::read_to_string(&up).unwrap();
    std::fs::write(
        &up,
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL);\n",
    )
    .unwrap();
    refused(&[&a], &up.display().to_string());
    std::fs::write(&up, &original_up).unwrap();

    // A deleted down.sql.
    let old_down = dir(ACCOUNTS).join("down.sql");
    let original_old_down = std::fs::read_to_string(&old_down).unwrap();
    std::fs::remove_file(&old_down).unwrap();
    refused(&[&a], &dir(ACCOUNTS).display().to_string());
    refused(&[&a], "no down.sql");
    std::fs::write(&old_down, &original_old_down).unwrap();

    // A migration directory gone altogether.
    let moved = p.path().join("orders-elsewhere");
    std::fs::rename(dir(ORDERS), &moved).unwrap();
    refused(&[&a], ORDERS);
    std::fs::rename(&moved, dir(ORDERS)).unwrap();

    // Line endings alone are not an edit (checksums normalise CRLF to LF).
    std::fs::write(&down, original_down.replace('\n', "\r\n")).unwrap();
    let out = rollback(&p, &[&a]);
    out.expect_code(0);
    assert!(p.db.diesel_versions().is_empty());
    assert!(!p.db.has_table("accounts") && !p.db.has_table("orders"));
    assert_eq!(run_status(&p.db, &a), "reverted");
}

// ---------------------------------------------------------------------------------------
// 4. A down.sql failing half-way

const ONE: &str = "2024-04-01-000001_one";
const TWO: &str = "2024-04-01-000002_two";
const THREE: &str = "2024-04-01-000003_three";
const F1: &str = "20240401000001";
const F2: &str = "20240401000002";
const F3: &str = "20240401000003";

fn failing_down_sql_in_the_middle(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        ONE,
        "CREATE TABLE f1 (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE f1;\n"),
    )
    .migration(
        TWO,
        "CREATE TABLE f2a (id INTEGER PRIMARY KEY);\nCREATE TABLE f2b (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE f2a;\nDROP TABLE f2b;\n"),
    )
    .migration(
        THREE,
        "CREATE TABLE f3 (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE f3;\n"),
    );
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let run = applied.run_id();
    // Someone renamed a table by hand: TWO's down.sql drops f2a, then fails on f2b.
    p.db.execute("ALTER TABLE f2b RENAME TO f2b_moved");

    let failed = rollback(&p, &[&run]);
    failed.expect_code(4);
    let failed_run = failed.run_id();
    let message = error_message(&failed);
    assert!(message.contains("1 of 3 reverted"), "{message}");
    assert!(
        message.contains(&format!("down.sql of {TWO} failed")),
        "{message}"
    );
    assert!(message.contains("f2b"), "the server's message: {message}");
    assert!(
        message.contains(&format!("still has: {TWO}, {ONE}")),
        "{message}"
    );
    assert_eq!(run_status(&p.db, &failed_run), "failed");
    assert!(
        run_field(&p.db, &failed_run, "error").contains("1 of 3 reverted"),
        "the run records the state"
    );
    assert_eq!(run_status(&p.db, &run), "succeeded", "still partly applied");
    // The newest migration's revert committed.
    assert!(!p.db.has_table("f3"));
    assert!(p.db.has_table("f1") && p.db.has_table("f2b_moved"));
    assert_eq!(p.db.diesel_versions(), [F1, F2]);
    assert_eq!(
        event(&failed, "run.failed")["error"].as_str().unwrap(),
        message.as_str()
    );

    if backend != Backend::Mysql {
        // One transaction: nothing of the failed down.sql stayed.
        assert!(p.db.has_table("f2a"), "DROP TABLE f2a was rolled back");
        assert_eq!(steps(&p.db, &failed_run), [format!("down:{F3}:reverted")]);
        assert!(!message.contains("dirty"), "{message}");
    } else {
        // MariaDB: DDL commits on its own. f2a is gone and the target is dirty.
        assert!(!p.db.has_table("f2a"));
        assert!(message.contains("dirty"), "{message}");
        assert!(message.contains(&format!("resolve {F2}")), "{message}");
        assert_eq!(
            steps(&p.db, &failed_run),
            [format!("down:{F3}:reverted"), format!("down:{F2}:started")]
        );
        // Nothing runs on a dirty target until it is resolved.
        let refused = rollback(&p, &[&run]);
        refused.expect_code(3);
        assert!(error_message(&refused).contains("dirty"), "{refused:?}");
        // Repair: TWO is fully applied again, and recorded so.
        p.db.execute("CREATE TABLE f2a (id INTEGER PRIMARY KEY)");
    }

    // Repair the database (not the file: its checksum was recorded), then run the same
    // rollback again: it continues where it stopped.
    p.db.execute("ALTER TABLE f2b_moved RENAME TO f2b");
    if backend == Backend::Mysql {
        p.dbsafe(&["resolve", F2, "--as", "applied"]).expect_code(0);
        // The revert did not happen: its step failed, and the migration is still applied.
        assert_eq!(
            steps(&p.db, &failed_run),
            [format!("down:{F3}:reverted"), format!("down:{F2}:failed")]
        );
        assert_eq!(p.db.diesel_versions(), [F1, F2]);
        let status = p.dbsafe(&["status", "--message-format", "json"]);
        status.expect_code(0);
        let report = event(&status, "status");
        assert_eq!(report["dirty"], serde_json::json!([]), "{report}");
    }
    let list = rollback(&p, &["--list"]);
    list.expect_code(0);
    assert_eq!(
        event(&list, "rollback.candidate")["still_applied"],
        serde_json::json!([F1, F2])
    );
    let again = rollback(&p, &[&run]);
    again.expect_code(0);
    let again_run = again.run_id();
    assert_eq!(
        steps(&p.db, &again_run),
        [format!("down:{F2}:reverted"), format!("down:{F1}:reverted")]
    );
    assert!(p.db.diesel_versions().is_empty());
    for table in ["f1", "f2a", "f2b", "f3"] {
        assert!(!p.db.has_table(table), "{table} is still there");
    }
    assert_eq!(run_status(&p.db, &run), "reverted");
    assert_eq!(run_status(&p.db, &failed_run), "failed");
    assert_eq!(run_status(&p.db, &again_run), "succeeded");
}

// ---------------------------------------------------------------------------------------
// 5. Level 2: restore the snapshot taken before a run

const ITEMS: &str = "2024-05-01-000001_items";
const TAGS: &str = "2024-05-01-000002_tags";
const PRICES: &str = "2024-05-01-000003_prices";
const I1: &str = "20240501000001";
const I2: &str = "20240501000002";
const I3: &str = "20240501000003";

/// Three runs with snapshots: BASE (items), A (tags), B (prices), data written after each.
/// Returns the run ids.
fn three_runs_with_snapshots(p: &Project) -> (String, String, String) {
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration(
        ITEMS,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(50) NOT NULL);\n",
        Some("DROP TABLE items;\n"),
    )
    .migration(
        TAGS,
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL);\n",
        Some("DROP TABLE tags;\n"),
    )
    .migration(
        PRICES,
        "CREATE TABLE prices (item_id INTEGER NOT NULL, cents INTEGER NOT NULL);\n",
        Some("DROP TABLE prices;\n"),
    );
    let base = p.apply(&["--target-version", I1]);
    base.expect_code(0);
    p.db.execute("INSERT INTO items (id, label) VALUES (1, 'kept')");
    let a = p.apply(&["--target-version", I2]);
    a.expect_code(0);
    p.db.execute(
        "INSERT INTO items (id, label) VALUES (2, 'after a'); \
         INSERT INTO tags (id, name) VALUES (1, 'red')",
    );
    let b = p.apply(&[]);
    b.expect_code(0);
    p.db.execute(
        "INSERT INTO items (id, label) VALUES (3, 'after b'); \
         INSERT INTO prices (item_id, cents) VALUES (2, 150)",
    );
    (base.run_id(), a.run_id(), b.run_id())
}

fn manifest(p: &Project, snapshot_id: &str) -> Value {
    let path = p
        .path()
        .join(".dbsafe/snapshots")
        .join(snapshot_id)
        .join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn rows_of(tables: &Value, table: &str) -> u64 {
    tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no table {table} in {tables}"))["rows"]
        .as_u64()
        .unwrap()
}

fn restore_the_snapshot_before_a_run(backend: Backend) {
    let p = Project::new(backend);
    let (base, a, b) = three_runs_with_snapshots(&p);
    let a_snapshot = run_field(&p.db, &a, "snapshot_id");
    assert!(!a_snapshot.is_empty(), "run A took a snapshot");
    let before_a = manifest(&p, &a_snapshot);
    assert_eq!(before_a["run_id"], a.as_str());
    assert_eq!(before_a["applied_migrations"], serde_json::json!([I1]));

    let out = rollback(&p, &[&a, "--restore", "--yes"]);
    out.expect_code(0);
    let restore_run = out.run_id();
    let restored = event(&out, "rollback.restore");
    assert_eq!(restored["snapshot_id"], a_snapshot.as_str());
    assert_eq!(restored["rehydrated_runs"], serde_json::json!([a, b]));
    assert_eq!(restored["differences"], serde_json::json!([]));
    let safety = event(&out, "snapshot.created")["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(safety, a_snapshot);

    // The database is the snapshot: its fingerprints are the manifest's.
    let now = p.fingerprint();
    assert_eq!(now["schema"], before_a["schema"]);
    assert_eq!(now["tables"], before_a["tables"]);
    // Data written after the snapshot is gone; what came before it is kept.
    assert_eq!(table_text(&p.db, "items"), ["1|kept"]);
    assert!(!p.db.has_table("tags") && !p.db.has_table("prices"));
    assert_eq!(p.db.diesel_versions(), [I1]);

    // The safety snapshot holds the state that was thrown away.
    let list = p.dbsafe(&["snapshot", "list", "--message-format", "json"]);
    list.expect_code(0);
    let listed: Vec<Value> = list
        .events()
        .into_iter()
        .filter(|e| e["type"] == "snapshot")
        .collect();
    let safety_manifest = listed
        .iter()
        .find(|m| m["id"] == safety.as_str())
        .unwrap_or_else(|| panic!("safety snapshot {safety} not listed: {listed:?}"));
    assert_eq!(safety_manifest["run_id"], restore_run.as_str());
    assert_eq!(
        safety_manifest["applied_migrations"],
        serde_json::json!([I1, I2, I3])
    );
    assert_eq!(rows_of(&safety_manifest["tables"], "items"), 3);
    assert_eq!(rows_of(&safety_manifest["tables"], "tags"), 1);
    assert_eq!(rows_of(&safety_manifest["tables"], "prices"), 1);
    assert!(listed.iter().any(|m| m["id"] == a_snapshot.as_str()));
    p.dbsafe(&["snapshot", "verify", &safety]).expect_code(0);

    // The ledger shows every run: the rewound ones written back, marked restored.
    let runs = p.dbsafe(&["runs", "--message-format", "json"]);
    runs.expect_code(0);
    let mut listed: Vec<(String, String, String)> = runs
        .events()
        .into_iter()
        .filter(|e| e["type"] == "run")
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.reverse();
    assert_eq!(
        listed,
        [
            (base.clone(), "apply".into(), "succeeded".into()),
            (a.clone(), "apply".into(), "succeeded".into()),
            (b.clone(), "apply".into(), "succeeded".into()),
            (restore_run.clone(), "restore".into(), "succeeded".into()),
        ]
    );
    // Written back exactly as they were, linked to the restore that rewound them.
    assert_eq!(run_field(&p.db, &a, "restored_by"), restore_run);
    assert_eq!(run_field(&p.db, &b, "restored_by"), restore_run);
    assert_eq!(run_field(&p.db, &base, "restored_by"), "");
    assert_eq!(run_field(&p.db, &restore_run, "parent_run"), a);
    assert_eq!(run_field(&p.db, &restore_run, "snapshot_id"), safety);
    assert_eq!(
        ledger_events(&p.db, &restore_run),
        [
            "run.started",
            "snapshot.created",
            "restore.swap",
            "restore.swap",
            "restore.ended",
            "rollback.restore",
            "run.succeeded"
        ]
    );
    // The restored runs' events are back too.
    for run in [&a, &b] {
        let events = ledger_events(&p.db, run);
        assert!(
            events.contains(&"run.succeeded".to_owned())
                && events.contains(&"migration.applied".to_owned()),
            "{run}: {events:?}"
        );
    }
    // And the journal still has all of them.
    let journaled = journal_runs(&p);
    for run in [&base, &a, &b, &restore_run] {
        assert!(journaled.contains(run), "{run} not in the journal");
    }

    // The ledger is consistent: the rewound migrations apply again.
    let again = p.apply(&[]);
    again.expect_code(0);
    assert_eq!(
        steps(&p.db, &again.run_id()),
        [format!("up:{I2}:applied"), format!("up:{I3}:applied")]
    );
    assert_eq!(p.db.diesel_versions(), [I1, I2, I3]);
}

// ---------------------------------------------------------------------------------------
// 6. kill -9 during a revert

const KEEP: &str = "2024-06-01-000001_keep";
const PAIR: &str = "2024-06-01-000002_pair";
const K1: &str = "20240601000001";
const K2: &str = "20240601000002";

/// Applies KEEP and PAIR in one run; PAIR's down.sql drops side_t and then runs `slow`
/// (whose speed the test controls through the database) before dropping slow_t.
fn kill_setup(p: &Project, slow: &str) -> String {
    p.write_config("[apply]\nlock-timeout = \"120s\"\nlock-wait = \"20s\"\n");
    p.migration(
        KEEP,
        "CREATE TABLE keep_t (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE keep_t;\n"),
    )
    .migration(
        PAIR,
        "CREATE TABLE side_t (id INTEGER PRIMARY KEY);\n\
         CREATE TABLE slow_t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n\
         INSERT INTO side_t (id) VALUES (1);\n\
         INSERT INTO slow_t (id, n) VALUES (1, 1);\n",
        Some(&format!("DROP TABLE side_t;\n{slow}DROP TABLE slow_t;\n")),
    );
    let applied = p.apply(&[]);
    applied.expect_code(0);
    applied.run_id()
}

/// After the kill: PAIR is still fully applied, in the schema, diesel's table and the ledger.
fn assert_nothing_half_reverted(p: &Project, run: &str, killed: &str) {
    assert!(p.db.has_table("side_t"), "side_t was dropped");
    assert_eq!(table_text(&p.db, "side_t"), ["1"]);
    assert!(p.db.has_table("slow_t") && p.db.has_table("keep_t"));
    assert_eq!(p.db.diesel_versions(), [K1, K2]);
    assert!(
        steps(&p.db, killed).is_empty(),
        "{:?}",
        steps(&p.db, killed)
    );
    assert_eq!(run_status(&p.db, killed), "running");
    assert_eq!(run_status(&p.db, run), "succeeded");
}

/// The next rollback converges and marks the killed run failed (interrupted).
fn assert_rerun_converges(p: &Project, run: &str, killed: &str) {
    let next = rollback(p, &[run]);
    next.expect_code(0);
    assert_eq!(
        steps(&p.db, &next.run_id()),
        [format!("down:{K2}:reverted"), format!("down:{K1}:reverted")]
    );
    assert!(p.db.diesel_versions().is_empty());
    for table in ["keep_t", "side_t", "slow_t"] {
        assert!(!p.db.has_table(table), "{table}");
    }
    assert_eq!(run_status(&p.db, run), "reverted");
    assert_eq!(run_status(&p.db, killed), "failed");
    assert!(
        run_field(&p.db, killed, "error").contains("interrupted"),
        "{}",
        run_field(&p.db, killed, "error")
    );
    assert_eq!(p.db.count("dbsafe_runs WHERE status = 'running'"), 0);
}

#[test]
fn kill_9_during_revert_postgres() {
    let p = Project::new(Backend::Postgres);
    // PostgreSQL: the slow part is a lock another session holds on slow_t.
    let run = kill_setup(&p, "");
    let mut holder = p.db.connect();
    holder
        .execute("BEGIN; LOCK TABLE slow_t IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let waiting = || {
        p.db.strings(
            "SELECT CAST(pid AS TEXT) AS v FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND wait_event_type = 'Lock' AND query LIKE '%DROP TABLE slow_t%'",
        )
    };
    let mut child = p.spawn_dbrollback(&[&run, "--message-format", "json"]);
    wait_until(
        Duration::from_secs(20),
        "the revert to wait for the lock",
        || !waiting().is_empty(),
    );
    child.kill().expect("SIGKILL");
    let killed = finish(child);
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
    let killed_run = killed.run_id();
    // Let the orphaned session go on: it drops slow_t, then finds its client gone and
    // rolls back, never committing.
    holder.execute("COMMIT").unwrap();
    drop(holder);
    wait_until(
        Duration::from_secs(20),
        "the dead client's session to end",
        || {
            p.db.strings(
                "SELECT CAST(pid AS TEXT) AS v FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .is_empty()
        },
    );
    assert_nothing_half_reverted(&p, &run, &killed_run);
    assert_rerun_converges(&p, &run, &killed_run);
}

#[test]
fn kill_9_during_revert_sqlite() {
    let p = Project::new(Backend::Sqlite);
    // SQLite: the slow part is a count whose length is a value in slow_t.
    let run = kill_setup(
        &p,
        "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL \
         SELECT x + 1 FROM c WHERE x < (SELECT max(n) FROM slow_t)) SELECT x FROM c);\n",
    );
    p.db.execute("UPDATE slow_t SET n = 2000000000");
    let journal = format!("{}-journal", p.db.name);
    let mut child = p.spawn_dbrollback(&[&run, "--message-format", "json"]);
    // DROP TABLE side_t ran inside the revert's transaction: the rollback journal stays
    // (ledger writes commit within milliseconds; the slow count holds it for long).
    let mut seen_since: Option<Instant> = None;
    wait_until(
        Duration::from_secs(30),
        "the revert's transaction to be open",
        || {
            if std::path::Path::new(&journal).exists() {
                let since = *seen_since.get_or_insert_with(Instant::now);
                since.elapsed() > Duration::from_millis(700)
            } else {
                seen_since = None;
                false
            }
        },
    );
    child.kill().expect("SIGKILL");
    let killed = finish(child);
    assert_eq!(killed.code, -1, "killed by a signal: {killed:?}");
    assert!(
        std::path::Path::new(&journal).exists(),
        "a hot journal is left"
    );
    let killed_run = killed.run_id();
    assert_nothing_half_reverted(&p, &run, &killed_run);
    // Make the slow part fast through the data, not the file (its checksum is recorded).
    p.db.execute("UPDATE slow_t SET n = 1");
    assert_rerun_converges(&p, &run, &killed_run);
}

// ---------------------------------------------------------------------------------------
// 7. --to VERSION

const T1: &str = "20240701000001";
const T2: &str = "20240701000002";
const T3: &str = "20240701000003";

fn to_version_keeps_the_older_migrations(backend: Backend) {
    let p = Project::new(backend);
    for (n, table) in [(1, "t1"), (2, "t2"), (3, "t3")] {
        p.migration(
            &format!("2024-07-01-00000{n}_{table}"),
            &format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY);\n"),
            Some(&format!("DROP TABLE {table};\n")),
        );
    }
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let run = applied.run_id();

    // A version not in the run, or one leaving nothing to revert: usage errors.
    let before = state(&p);
    let unknown = rollback(&p, &[&run, "--to", "20990101000000"]);
    unknown.expect_code(2);
    assert!(
        error_message(&unknown).contains("20990101000000"),
        "{unknown:?}"
    );
    let newest = rollback(&p, &[&run, "--to", T3]);
    newest.expect_code(2);
    assert!(
        error_message(&newest).contains(&format!("no migrations left to revert newer than {T3}")),
        "{newest:?}"
    );
    assert_eq!(state(&p), before);

    let out = rollback(&p, &[&run, "--to", T1]);
    out.expect_code(0);
    let rb = out.run_id();
    assert_eq!(
        steps(&p.db, &rb),
        [format!("down:{T3}:reverted"), format!("down:{T2}:reverted")]
    );
    assert_eq!(p.db.diesel_versions(), [T1]);
    assert!(p.db.has_table("t1") && !p.db.has_table("t2") && !p.db.has_table("t3"));
    // The run is still partly applied: not marked reverted.
    assert_eq!(run_status(&p.db, &run), "succeeded");
    let list = rollback(&p, &["--list"]);
    list.expect_code(0);
    assert_eq!(
        event(&list, "rollback.candidate")["still_applied"],
        serde_json::json!([T1])
    );

    // The rest of it, later.
    let rest = rollback(&p, &[&run]);
    rest.expect_code(0);
    assert_eq!(
        steps(&p.db, &rest.run_id()),
        [format!("down:{T1}:reverted")]
    );
    assert!(p.db.diesel_versions().is_empty());
    assert_eq!(run_status(&p.db, &run), "reverted");
}

// ---------------------------------------------------------------------------------------
// 8. --last, --list, --dry-run

fn last_list_and_dry_run(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    let (a, b, _) = runs_a_and_b(&p);
    // A run that applied nothing is not a candidate for --last.
    let noop = p.apply(&[]);
    noop.expect_code(0);
    let a_snapshot = run_field(&p.db, &a, "snapshot_id");
    let b_snapshot = run_field(&p.db, &b, "snapshot_id");

    // --list: newest first, with what is still applied and the snapshot.
    let list = rollback(&p, &["--list"]);
    list.expect_code(0);
    let candidates: Vec<Value> = list.events();
    assert!(
        candidates.iter().all(|c| c["type"] == "rollback.candidate"),
        "{list:?}"
    );
    let ids: Vec<&str> = candidates
        .iter()
        .map(|c| c["run"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()], "{list:?}");
    assert_eq!(candidates[0]["still_applied"], serde_json::json!([V3]));
    assert_eq!(candidates[1]["still_applied"], serde_json::json!([V1, V2]));
    assert_eq!(candidates[0]["run"]["snapshot_id"], b_snapshot.as_str());
    let human = p.dbrollback(&["--list"]);
    human.expect_code(0);
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{human:?}");
    assert!(
        lines[0].contains(&b) && lines[0].contains("1 migration(s) still applied"),
        "{human:?}"
    );
    assert!(
        lines[1].contains(&a) && lines[1].contains(&a_snapshot),
        "{human:?}"
    );

    let before = state(&p);

    // Level 1 dry run: the migrations and their SQL, newest first.
    let dry = p.dbrollback(&["--last", "--dry-run"]);
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("would revert 1 migration(s)"),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains(&format!("-- {NOTES} (run {b})")),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains(notes_down(backend).trim_end()),
        "{dry:?}"
    );
    let dry = rollback(&p, &[&a, "--cascade", "--dry-run"]);
    dry.expect_code(0);
    let plan = event(&dry, "rollback.plan");
    assert_eq!(plan["run_id"], a.as_str());
    let order: Vec<&str> = plan["reverts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(order, [V3, V2, V1]);
    assert_eq!(plan["reverts"][2]["down_sql"], "DROP TABLE accounts;\n");
    assert_eq!(plan["reverts"][0]["run_id"], b.as_str());

    // Level 2 dry run: the snapshot and what would be lost.
    let dry = p.dbrollback(&[&a, "--restore", "--dry-run"]);
    dry.expect_code(0);
    assert!(
        dry.stdout
            .contains(&format!("would restore snapshot {a_snapshot}")),
        "{dry:?}"
    );
    assert!(dry.stdout.contains("Lost: every change since"), "{dry:?}");
    assert!(
        dry.stdout.contains(&b) && dry.stdout.contains(&a),
        "{dry:?}"
    );
    let dry = rollback(&p, &[&a, "--restore", "--dry-run"]);
    dry.expect_code(0);
    let plan = event(&dry, "rollback.plan");
    assert_eq!(plan["snapshot"]["id"], a_snapshot.as_str());
    // Oldest first, the run itself included (and the run after it that applied nothing).
    assert_eq!(
        plan["runs_undone"],
        serde_json::json!([a, b, noop.run_id()])
    );
    assert_eq!(plan["reverts"], serde_json::json!([]));

    // None of that touched anything.
    assert_eq!(state(&p), before, "a dry run changed something");

    // --last names the newest run with migrations still applied: B, then A.
    let first = rollback(&p, &["--last"]);
    first.expect_code(0);
    assert_eq!(run_field(&p.db, &first.run_id(), "parent_run"), b);
    assert_eq!(p.db.diesel_versions(), [V1, V2]);
    let second = rollback(&p, &["--last"]);
    second.expect_code(0);
    assert_eq!(run_field(&p.db, &second.run_id(), "parent_run"), a);
    assert!(p.db.diesel_versions().is_empty());
    let none = rollback(&p, &["--last"]);
    none.expect_code(2);
    assert!(
        error_message(&none).contains("no run can be rolled back"),
        "{none:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 9. Clear errors, nothing touched

fn unknown_run_no_snapshot_and_corrupt_snapshot(backend: Backend) {
    let p = Project::new(backend);
    // No ledger yet: nothing to roll back, and nothing created.
    let fresh = rollback(&p, &["--last"]);
    fresh.expect_code(2);
    if backend == Backend::Sqlite {
        assert!(!std::path::Path::new(&p.db.name).exists(), "{fresh:?}");
    } else {
        assert!(!p.db.has_table("dbsafe_runs"));
    }

    // A run without a snapshot (the default policy takes none on an unprotected target).
    a_and_b_migrations(&p);
    let plain = p.apply(&["--target-version", V2]);
    plain.expect_code(0);
    let plain = plain.run_id();
    let before = state(&p);

    let unknown = rollback(&p, &["20990101T000000Z-dead"]);
    unknown.expect_code(2);
    let message = error_message(&unknown);
    assert!(
        message.contains("no apply run `20990101T000000Z-dead`"),
        "{message}"
    );
    assert!(message.contains(&plain), "the runs that exist: {message}");
    assert!(message.contains("--list"), "{message}");

    let no_snapshot = rollback(&p, &[&plain, "--restore", "--yes"]);
    no_snapshot.expect_code(2);
    let message = error_message(&no_snapshot);
    assert!(message.contains(&plain), "{message}");
    assert!(message.contains("no snapshot to restore"), "{message}");
    assert_eq!(state(&p), before);

    // A run with a snapshot whose file is damaged.
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    let with_snapshot = p.apply(&[]);
    with_snapshot.expect_code(0);
    let run = with_snapshot.run_id();
    let snapshot_id = run_field(&p.db, &run, "snapshot_id");
    let snapshot = manifest(&p, &snapshot_id);
    let file = p
        .path()
        .join(".dbsafe/snapshots")
        .join(&snapshot_id)
        .join(snapshot["files"][0]["name"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    p.db.execute("INSERT INTO accounts (id, name) VALUES (7, 'after')");
    let before = state(&p);
    let corrupt = rollback(&p, &[&run, "--restore", "--yes"]);
    corrupt.expect_code(3);
    let message = error_message(&corrupt);
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("SHA-256"), "{message}");
    assert_eq!(state(&p), before, "a refused restore changed something");
    assert_eq!(table_text(&p.db, "accounts"), ["7|after"]);
}

fn protected_target_needs_target_and_yes(backend: Backend) {
    let p = Project::new(backend);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.prod]\nurl = \"{}\"\nenvironment = \"production\"\n\n\
             [apply]\nsnapshot = \"never\"\n",
            p.db.url
        ),
    );
    a_and_b_migrations(&p);
    let applied = p.apply(&["--target", "prod", "--yes"]);
    applied.expect_code(0);
    let run = applied.run_id();
    let before = state(&p);

    let unnamed = rollback(&p, &[&run, "--yes"]);
    unnamed.expect_code(3);
    assert!(
        error_message(&unnamed).contains("name it explicitly with --target prod"),
        "{unnamed:?}"
    );
    let unconfirmed = rollback(&p, &[&run, "--target", "prod"]);
    unconfirmed.expect_code(3);
    assert!(
        error_message(&unconfirmed).contains("confirm with --yes"),
        "{unconfirmed:?}"
    );
    assert_eq!(state(&p), before);
    // A dry run touches nothing, so it needs no confirmation.
    rollback(&p, &[&run, "--dry-run"]).expect_code(0);

    let done = rollback(&p, &[&run, "--target", "prod", "--yes"]);
    done.expect_code(0);
    assert!(p.db.diesel_versions().is_empty());
    assert_eq!(
        run_field(&p.db, &done.run_id(), "environment"),
        "production"
    );
}

// ---------------------------------------------------------------------------------------
// A revert blocked by another session's lock gives up after lock-timeout

const LOCKED: &str = "2024-06-02-000002_locked";
const L1: &str = "20240602000001";
const L2: &str = "20240602000002";

#[test]
fn revert_blocked_by_a_lock_times_out_postgres() {
    revert_blocked_by_a_lock_times_out(Backend::Postgres);
}

#[test]
fn revert_blocked_by_a_lock_times_out_mysql() {
    revert_blocked_by_a_lock_times_out(Backend::Mysql);
}

fn revert_blocked_by_a_lock_times_out(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\nlock-timeout = \"1s\"\nlock-retries = 0\n");
    p.migration(
        "2024-06-02-000001_free",
        "CREATE TABLE free_t (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE free_t;\n"),
    )
    .migration(
        LOCKED,
        "CREATE TABLE locked_t (id INTEGER PRIMARY KEY);\nINSERT INTO locked_t (id) VALUES (1);\n",
        Some("DROP TABLE locked_t;\n"),
    );
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let run = applied.run_id();

    // A long transaction elsewhere uses locked_t (a report reading it; a writer on MariaDB).
    let mut holder = p.db.connect();
    holder
        .execute(match backend {
            Backend::Postgres => "BEGIN; LOCK TABLE locked_t IN ACCESS SHARE MODE;",
            _ => "START TRANSACTION; INSERT INTO locked_t (id) VALUES (2);",
        })
        .unwrap();
    let mut child = p.spawn_dbrollback(&[&run, "--message-format", "json"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = finish(child);
            panic!("the revert waited for the lock far beyond lock-timeout (1s): {out:?}");
        }
        sleep(Duration::from_millis(100));
    }
    let blocked = finish(child);
    blocked.expect_code(4);
    let message = error_message(&blocked);
    assert!(message.contains("0 of 2 reverted"), "{message}");
    assert!(
        message.contains(&format!("down.sql of {LOCKED} failed")),
        "{message}"
    );
    assert!(message.to_lowercase().contains("lock"), "{message}");
    // Nothing changed.
    assert!(p.db.has_table("locked_t") && p.db.has_table("free_t"));
    assert_eq!(p.db.diesel_versions(), [L1, L2]);
    holder.execute("COMMIT").unwrap();
    drop(holder);
    if backend == Backend::Mysql {
        // No transaction around MariaDB DDL: dbsafe cannot know that nothing ran.
        assert!(message.contains("dirty"), "{message}");
        p.dbsafe(&["resolve", L2, "--as", "applied"]).expect_code(0);
    }

    // The lock gone, the same rollback completes.
    let again = rollback(&p, &[&run]);
    again.expect_code(0);
    assert!(p.db.diesel_versions().is_empty());
    assert!(!p.db.has_table("locked_t") && !p.db.has_table("free_t"));
    assert_eq!(run_status(&p.db, &run), "reverted");
}
