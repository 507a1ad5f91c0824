//! `cargo dbsafe apply` end to end on each backend: diesel's table, the ledger and the
//! schema agree.

use dbsafe_tests::{Backend, Project, each_backend};

each_backend!(fresh_apply_records_a_run);

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
