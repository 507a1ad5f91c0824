//! `cargo dbsafe apply` end to end on each backend: diesel's table, the ledger and the
//! schema agree.

use dbsafe_tests::{Backend, Project, each_backend};

each_backend!(
    fresh_apply_records_a_run,
    mixed_with_diesel_migration_run,
    target_version_stops_after_it,
    verify_sql_returning_false_leaves_nothing,
    run_in_transaction_false_is_recorded,
    a_long_failed_run_is_summed_up,
);

/// A run that fails after many migrations names the count, the first and the last and the
/// command that lists them, not every name; the JSON `run.failed` keeps the full list.
fn a_long_failed_run_is_summed_up(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\non-failure = \"stop\"\n");
    for i in 1..=40 {
        p.migration(
            &format!("2024-01-01-{i:06}_table_{i}"),
            &format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY);"),
            Some(&format!("DROP TABLE t{i};")),
        );
    }
    p.migration(
        "2024-01-01-000041_broken",
        "SELECT * FROM no_such_table;",
        Some("SELECT 1;"),
    );
    let run = p.apply(&[]);
    // On MariaDB a failed migration may have half-applied (its DDL commits alone): dirty.
    run.expect_code(if backend == Backend::Mysql { 4 } else { 1 });
    let message = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "run.failed")
        .expect("a run.failed event");
    let error = message["error"].as_str().unwrap();
    assert!(
        error.contains("40 migrations, 2024-01-01-000001_table_1 to 2024-01-01-000040_table_40; `cargo dbsafe status` lists them"),
        "{error}"
    );
    assert!(!error.contains("table_20"), "{error}");
    assert_eq!(message["still_applied"].as_array().unwrap().len(), 40);
    assert_eq!(p.db.diesel_versions().len(), 40);
}

fn fresh_apply_records_a_run(backend: Backend) {
    let p = Project::new(backend);
    p.migration("2024-01-01-000001_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);", Some("DROP TABLE users;"))
        .migration("2024-01-01-000002_posts", "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id));", Some("DROP TABLE posts;"));
    let run = p.apply(&[]);
    run.expect_code(0);
    let run_id = run.run_id();
    assert!(p.db.has_table("users") && p.db.has_table("posts"));
    assert_eq!(p.db.diesel_versions(), ["20240101000001", "20240101000002"]);
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{run_id}'"
        )),
        ["succeeded"]
    );
    assert_eq!(
        p.db.count(&format!(
            "dbsafe_steps WHERE run_id = '{run_id}' AND status = 'applied'"
        )),
        2
    );
    let checksum =
        p.db.strings("SELECT up_checksum AS v FROM dbsafe_steps WHERE version = '20240101000001'");
    assert_eq!(checksum[0].len(), 64);
    assert!(run.event_types().contains(&"migration.applied".to_owned()));

    let second = p.apply(&[]);
    second.expect_code(0);
    assert_ne!(second.run_id(), run_id);
    assert_eq!(p.db.count("dbsafe_runs"), 2);
    assert_eq!(
        p.db.count(&format!(
            "dbsafe_steps WHERE run_id = '{}'",
            second.run_id()
        )),
        0
    );

    let runs = p.dbsafe(&["runs"]);
    runs.expect_code(0);
    assert!(runs.stdout.contains(&run_id), "{}", runs.stdout);
    let status = p.dbsafe(&["status", "--message-format", "json"]);
    status.expect_code(0);
    let report = &status.events()[0];
    assert_eq!(report["migrations"][0]["applied_by"], run_id.as_str());
}

/// Version -> (state, applied_by) from `status`.
fn states(p: &Project) -> Vec<(String, String, Option<String>)> {
    p.status_report()["migrations"]
        .as_array()
        .expect("migrations array")
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
                m["applied_by"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn three_tables(p: &Project) {
    p.migration(
        "2024-02-01-000001_alpha",
        "CREATE TABLE alpha (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE alpha;"),
    )
    .migration(
        "2024-02-01-000002_beta",
        "CREATE TABLE beta (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE beta;"),
    );
}

fn mixed_with_diesel_migration_run(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    // diesel alone applies the first two, as `diesel migration run` would.
    assert_eq!(
        p.diesel_migration_run(),
        ["20240201000001", "20240201000002"]
    );
    p.migration(
        "2024-02-01-000003_gamma",
        "CREATE TABLE gamma (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE gamma;"),
    );
    let run = p.apply(&[]);
    run.expect_code(0);
    let run_id = run.run_id();
    let started = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "run.started")
        .expect("run.started");
    assert_eq!(started["pending"], serde_json::json!(["20240201000003"]));
    // Only the new one was applied (re-running the others would fail on CREATE TABLE).
    assert_eq!(
        p.db.diesel_versions(),
        ["20240201000001", "20240201000002", "20240201000003"]
    );
    assert!(p.db.has_table("gamma"));
    assert_eq!(
        p.db.strings(&format!(
            "SELECT version AS v FROM dbsafe_steps WHERE run_id = '{run_id}' AND status = 'applied'"
        )),
        ["20240201000003"]
    );
    assert_eq!(p.db.count("dbsafe_steps"), 1);
    assert_eq!(
        states(&p),
        [
            (
                "20240201000001".into(),
                "applied".into(),
                Some("diesel".into())
            ),
            (
                "20240201000002".into(),
                "applied".into(),
                Some("diesel".into())
            ),
            (
                "20240201000003".into(),
                "applied".into(),
                Some(run_id.clone())
            ),
        ]
    );

    // And the other way round: diesel sees nothing left to do after dbsafe, then applies a
    // new migration of its own, which status attributes to diesel.
    assert!(p.diesel_migration_run().is_empty());
    p.migration(
        "2024-02-01-000004_delta",
        "CREATE TABLE delta (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE delta;"),
    );
    assert_eq!(p.diesel_migration_run(), ["20240201000004"]);
    let states = states(&p);
    assert_eq!(
        states[3],
        (
            "20240201000004".into(),
            "applied".into(),
            Some("diesel".into())
        )
    );
    assert_eq!(states[2].2.as_deref(), Some(run_id.as_str()));
    let noop = p.apply(&[]);
    noop.expect_code(0);
    assert_eq!(
        p.db.count(&format!("dbsafe_steps WHERE run_id = '{}'", noop.run_id())),
        0
    );
    assert_eq!(p.db.diesel_versions().len(), 4);
}

fn target_version_stops_after_it(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    p.migration(
        "2024-02-01-000003_gamma",
        "CREATE TABLE gamma (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE gamma;"),
    );
    let run = p.apply(&["--target-version", "20240201000002"]);
    run.expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20240201000001", "20240201000002"]);
    assert!(p.db.has_table("beta") && !p.db.has_table("gamma"));
    assert_eq!(
        p.db.count(&format!(
            "dbsafe_steps WHERE run_id = '{}' AND status = 'applied'",
            run.run_id()
        )),
        2
    );
    let states = states(&p);
    assert_eq!(states[2].1, "pending");

    // A version that does not exist is a usage error and touches nothing.
    let bad = p.apply(&["--target-version", "20990101000000"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("20990101000000"), "{}", bad.stderr);
    assert_eq!(p.db.count("dbsafe_runs"), 1);

    let rest = p.apply(&[]);
    rest.expect_code(0);
    assert_eq!(p.db.diesel_versions().len(), 3);
    assert_eq!(
        p.db.strings(&format!(
            "SELECT version AS v FROM dbsafe_steps WHERE run_id = '{}'",
            rest.run_id()
        )),
        ["20240201000003"]
    );
}

fn verify_sql_returning_false_leaves_nothing(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-03-01-000001_kinds",
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY);\nINSERT INTO kinds (id) VALUES (1);",
        Some("DROP TABLE kinds;"),
    )
    .file(
        "migrations/2024-03-01-000001_kinds/verify.sql",
        "SELECT count(*) = 1 FROM kinds;\n",
    )
    .migration(
        "2024-03-01-000002_widgets",
        "CREATE TABLE widgets (id INTEGER PRIMARY KEY);\nINSERT INTO widgets (id) VALUES (1), (2);",
        Some("DROP TABLE widgets;"),
    )
    .file(
        "migrations/2024-03-01-000002_widgets/verify.sql",
        "SELECT count(*) = 1 FROM widgets;\n",
    );
    let run = p.apply(&[]);
    run.expect_code(1);
    let run_id = run.run_id();
    let types = run.event_types();
    assert!(types.contains(&"verify.failed".to_owned()), "{types:?}");
    let verify = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "verify.failed")
        .unwrap();
    assert_eq!(verify["version"], "20240301000002");
    // Nothing of the failed migration remains, and the policy (revert) took back the first.
    assert!(!p.db.has_table("widgets"));
    assert!(!p.db.has_table("kinds"));
    assert!(p.db.diesel_versions().is_empty());
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{run_id}'"
        )),
        ["reverted"]
    );
    assert_eq!(
        p.db.strings(&format!(
            "SELECT version AS v FROM dbsafe_steps WHERE run_id = '{run_id}' AND direction = 'down' AND status = 'reverted' ORDER BY seq"
        )),
        if backend == Backend::Mysql {
            // Not transactional there: the applied-but-unverified migration is reverted too.
            vec!["20240301000002", "20240301000001"]
        } else {
            vec!["20240301000001"]
        }
    );
    assert!(
        p.db.count(&format!(
            "dbsafe_events WHERE run_id = '{run_id}' AND event_type = 'verify.failed'"
        )) == 1
    );
    let error = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .expect("error event");
    assert!(
        error["message"].as_str().unwrap().contains("verify.sql"),
        "{error}"
    );

    // With verify.sql fixed, the same migrations apply; a trailing `--` comment with no
    // newline after it is part of the query as it is in an invariant.
    p.file(
        "migrations/2024-03-01-000002_widgets/verify.sql",
        "SELECT count(*) = 2 FROM widgets -- both rows, no newline after this",
    );
    let fixed = p.apply(&[]);
    fixed.expect_code(0);
    assert!(p.db.has_table("widgets") && p.db.has_table("kinds"));
    assert_eq!(p.db.diesel_versions().len(), 2);
    // Both runs usually fall in the same second, whose run ids do not sort by time: the
    // newer step (applied by the second run) must still win over the older `reverted` one.
    let fixed_id = fixed.run_id();
    for (version, state, by) in states(&p) {
        assert_eq!(state, "applied", "{version}");
        assert_eq!(by.as_deref(), Some(fixed_id.as_str()), "{version}");
    }
    // And an edit of the re-applied migration is caught.
    p.file(
        "migrations/2024-03-01-000001_kinds/up.sql",
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, edited INTEGER);",
    );
    let refused = p.apply(&[]);
    refused.expect_code(3);
    assert!(
        refused.stderr.contains("2024-03-01-000001_kinds"),
        "{}",
        refused.stderr
    );
}

fn run_in_transaction_false_is_recorded(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-04-01-000001_plain",
        "CREATE TABLE plain (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE plain;"),
    )
    .migration(
        "2024-04-01-000002_outside",
        "CREATE TABLE outside (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE outside;"),
    )
    .file(
        "migrations/2024-04-01-000002_outside/metadata.toml",
        "run_in_transaction = false\n",
    );
    let run = p.apply(&[]);
    run.expect_code(0);
    let started: Vec<_> = run
        .events()
        .into_iter()
        .filter(|e| e["type"] == "migration.started")
        .map(|e| e["transactional"].as_bool().unwrap())
        .collect();
    let transactional = |version: &str| {
        p.db.strings(&format!(
            "SELECT CASE WHEN transactional THEN 'yes' ELSE 'no' END AS v FROM dbsafe_steps WHERE version = '{version}' AND status = 'applied'"
        ))
    };
    assert_eq!(transactional("20240401000002"), ["no"]);
    // MariaDB DDL commits implicitly: nothing there is transactional.
    let plain = if backend == Backend::Mysql {
        "no"
    } else {
        "yes"
    };
    assert_eq!(transactional("20240401000001"), [plain]);
    assert_eq!(started, [plain == "yes", false]);
    assert!(p.db.has_table("outside"));
    assert_eq!(p.db.diesel_versions(), ["20240401000001", "20240401000002"]);
    // Finished steps carry an end time: nothing is left `started` (dirty).
    assert_eq!(
        p.db.count("dbsafe_steps WHERE status = 'started' OR finished_at IS NULL"),
        0
    );
    assert!(p.status_report()["dirty"].as_array().unwrap().is_empty());
}
