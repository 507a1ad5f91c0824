//! A ledger cut short: a process killed while the ledger's tables were being created (on
//! MariaDB each `CREATE TABLE` commits alone) leaves `dbsafe_runs` without the others.
//! Every command must complete it before reading it, not fail with "no such table"; on
//! PostgreSQL and SQLite the ledger is created in one transaction, so a kill leaves none.

use dbsafe_tests::{Backend, Project, each_backend};

each_backend!(a_partial_ledger_is_completed_before_it_is_read);

fn a_partial_ledger_is_completed_before_it_is_read(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_items",
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE items;\n"),
    );
    // What the first table of the old, one-by-one creation left behind.
    p.db.execute(
        "CREATE TABLE dbsafe_runs (id VARCHAR(40) NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, \
         target VARCHAR(128) NOT NULL, environment VARCHAR(16) NOT NULL, operator VARCHAR(255) NOT NULL, \
         host VARCHAR(255) NOT NULL, tool_version VARCHAR(32) NOT NULL, git_commit VARCHAR(64), \
         git_dirty BOOLEAN, started_at VARCHAR(40) NOT NULL, finished_at VARCHAR(40), \
         status VARCHAR(16) NOT NULL, snapshot_id VARCHAR(64), bundle_hash VARCHAR(64), \
         error TEXT, parent_run VARCHAR(40))",
    );
    assert!(!p.db.has_table("dbsafe_steps"));
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(status.stdout.contains("pending"), "{status:?}");
    for table in ["dbsafe_meta", "dbsafe_steps", "dbsafe_events"] {
        assert!(p.db.has_table(table), "{table} was created by status");
    }
    let applied = p.apply(&[]);
    applied.expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20240101000001"]);
    assert_eq!(
        p.db.strings("SELECT value AS v FROM dbsafe_meta WHERE name = 'schema_version'"),
        [dbsafe::ledger::LEDGER_SCHEMA_VERSION.to_string()]
    );
    assert_eq!(p.db.count("dbsafe_steps"), 1);
    p.dbsafe(&["runs"]).expect_code(0);
}
