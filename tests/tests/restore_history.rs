//! What a level 2 restore does to the record: the runs it rewinds are written back exactly
//! as the ledger had them (run rows, steps, events), linked to the restore by
//! `restored_by`; any verified snapshot can be restored by id as a recorded restore run;
//! and a restore run is itself undone by restoring the safety snapshot it took.

use dbsafe_tests::{Backend, Project, Run, each_backend, table_text};
use serde_json::Value;

each_backend!(
    the_ledger_written_back_equals_the_one_before,
    a_snapshot_restored_by_id_and_the_restore_undone,
);

const I1: &str = "20240101000001";

fn migrations(p: &Project) {
    p.migration(
        "2024-01-01-000001_items",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label VARCHAR(50) NOT NULL);\n",
        Some("DROP TABLE items;\n"),
    )
    .migration(
        "2024-01-01-000002_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL);\n",
        Some("DROP TABLE tags;\n"),
    )
    .migration(
        "2024-01-01-000003_prices",
        "CREATE TABLE prices (item_id INTEGER NOT NULL, cents INTEGER NOT NULL);\n",
        Some("DROP TABLE prices;\n"),
    );
}

fn json(p: &Project, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--message-format", "json"]);
    p.dbsafe(&all)
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

/// Every row of the ledger's run, step and event tables, the runs without their 17th
/// column (`restored_by`; later columns such as `fleet_run` follow it), leaving out the
/// rows of `skip_run`.
fn ledger_dump(p: &Project, skip_run: &str) -> Vec<String> {
    let runs = table_text(&p.db, "dbsafe_runs").into_iter().map(|r| {
        let mut columns: Vec<&str> = r.split('|').collect();
        columns.remove(16);
        format!("run {}", columns.join("|"))
    });
    let steps = table_text(&p.db, "dbsafe_steps")
        .into_iter()
        .map(|r| format!("step {r}"));
    let events = table_text(&p.db, "dbsafe_events")
        .into_iter()
        .map(|r| format!("event {r}"));
    sorted(
        runs.chain(steps)
            .chain(events)
            .filter(|r| !r.contains(skip_run))
            .collect(),
    )
}

fn restored_by(p: &Project, run: &str) -> String {
    p.db.strings(&format!(
        "SELECT COALESCE(restored_by, '') AS v FROM dbsafe_runs WHERE id = '{run}'"
    ))
    .concat()
}

fn the_ledger_written_back_equals_the_one_before(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    migrations(&p);
    let base = p.apply(&["--target-version", I1]);
    base.expect_code(0);
    let a = p.apply(&["--target-version", "20240101000002"]);
    a.expect_code(0);
    let b = p.apply(&[]);
    b.expect_code(0);
    // A run whose own status is not `succeeded` must keep it too.
    let reverted = p.dbrollback(&[&b.run_id(), "--yes", "--message-format", "json"]);
    reverted.expect_code(0);
    let before = ledger_dump(&p, "no run has this id");

    let restore = p.dbrollback(&[
        &a.run_id(),
        "--restore",
        "--yes",
        "--message-format",
        "json",
    ]);
    restore.expect_code(0);
    let restore_run = restore.run_id();
    assert_eq!(
        ledger_dump(&p, &restore_run),
        before,
        "the ledger after the restore, its own run aside"
    );
    for run in [a.run_id(), b.run_id(), reverted.run_id()] {
        assert_eq!(
            restored_by(&p, &run),
            restore_run,
            "run {run} is linked to the restore"
        );
    }
    assert_eq!(restored_by(&p, &base.run_id()), "");
    // `runs show` of a written-back run has its steps.
    let shown = p.dbsafe(&["runs", "show", &a.run_id()]);
    shown.expect_code(0);
    assert!(!shown.stdout.contains("steps: none"), "{shown:?}");
    // The rewound runs' steps no longer count: nothing is dirty, I2 and I3 are pending.
    let report = p.status_report();
    assert_eq!(report["dirty"], serde_json::json!([]));
    let pending: Vec<&Value> = report["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "{report}");
}

fn a_snapshot_restored_by_id_and_the_restore_undone(backend: Backend) {
    let p = Project::new(backend);
    migrations(&p);
    p.apply(&["--target-version", I1]).expect_code(0);
    p.db.execute("INSERT INTO items (id, label) VALUES (1, 'kept')");
    let taken = json(&p, &["snapshot", "create"]);
    taken.expect_code(0);
    let snapshot = taken
        .events()
        .into_iter()
        .find(|e| e["type"] == "snapshot")
        .and_then(|e| e["id"].as_str().map(str::to_owned))
        .expect("the snapshot's id");
    p.apply(&[]).expect_code(0);
    p.db.execute("INSERT INTO items (id, label) VALUES (2, 'later'); INSERT INTO tags (id, name) VALUES (1, 'red')");

    // Refused without confirmation when the target is protected is covered elsewhere; a
    // dry run touches nothing.
    let dry = p.dbsafe(&["snapshot", "restore", &snapshot, "--dry-run"]);
    dry.expect_code(0);
    assert!(
        dry.stdout
            .contains(&format!("would restore snapshot {snapshot}")),
        "{dry:?}"
    );
    assert!(p.db.has_table("tags"));

    let restored = json(&p, &["snapshot", "restore", &snapshot, "--yes"]);
    restored.expect_code(0);
    let restore_run = restored.run_id();
    assert_eq!(table_text(&p.db, "items"), ["1|kept"]);
    assert!(!p.db.has_table("tags") && !p.db.has_table("prices"));
    assert_eq!(p.db.diesel_versions(), [I1]);
    for (column, value) in [("kind", "restore"), ("status", "succeeded")] {
        assert_eq!(
            p.db.strings(&format!(
                "SELECT {column} AS v FROM dbsafe_runs WHERE id = '{restore_run}'"
            )),
            [value]
        );
    }

    // Undo the restore: its safety snapshot comes back.
    let undone = p.dbrollback(&[&restore_run, "--yes", "--message-format", "json"]);
    undone.expect_code(0);
    assert!(p.db.has_table("tags") && p.db.has_table("prices"));
    assert_eq!(table_text(&p.db, "items").len(), 2);
    assert_eq!(p.db.diesel_versions().len(), 3);
    assert_eq!(
        p.db.strings(&format!(
            "SELECT COALESCE(parent_run, '') AS v FROM dbsafe_runs WHERE id = '{}'",
            undone.run_id()
        )),
        [restore_run]
    );
    // A snapshot id of the wrong form is bad usage.
    p.dbsafe(&["snapshot", "restore", "../../etc", "--yes"])
        .expect_code(2);
}

/// `pg_dump --schema-only` of the target, without the random `\restrict` lines of newer
/// pg_dump releases.
fn schema_dump(p: &Project) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--schema-only", "--no-password", &p.db.url])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_postgres_restore_is_exact_to_the_schema_comments() {
    let p = Project::new(Backend::Postgres);
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    migrations(&p);
    p.apply(&["--target-version", I1]).expect_code(0);
    p.db.execute(
        "COMMENT ON SCHEMA public IS 'where the app lives'; \
         CREATE SCHEMA audit; COMMENT ON SCHEMA audit IS 'append only'; \
         GRANT USAGE ON SCHEMA audit TO PUBLIC",
    );
    let before = schema_dump(&p);
    let a = p.apply(&[]);
    a.expect_code(0);
    // The fingerprint sees schema-level comments, so a restore that lost one cannot pass.
    let print = p.fingerprint();
    let lines: Vec<&str> = print["schema"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| l.starts_with("schema-props"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("schema-props public:") && l.contains("'where the app lives'")),
        "{lines:?}"
    );
    p.dbrollback(&[&a.run_id(), "--restore", "--yes"])
        .expect_code(0);
    assert_eq!(schema_dump(&p), before);
}
