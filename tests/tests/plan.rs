//! `cargo dbsafe plan [--rehearse]` end to end: the dry run touches nothing; the rehearsal
//! runs the pending migrations on a throwaway clone, reports a failing one and the ACCESS
//! EXCLUSIVE lock an ALTER TABLE takes on a large table, and leaves no clone behind.

use dbsafe_tests::{Backend, Project, each_backend, pg_server};

each_backend!(
    plan_touches_nothing,
    rehearsal_reports_a_failing_migration_and_leaves_no_clone
);

fn plan_json(p: &Project, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["plan", "--message-format", "json"];
    all.extend_from_slice(args);
    let run = p.dbsafe(&all);
    let plan = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "plan")
        .unwrap_or_else(|| panic!("no plan in {run:?}"));
    (run.code, plan)
}

fn users(p: &Project) {
    p.migration(
        "2024-01-01-000001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50));",
        Some("DROP TABLE users;"),
    );
}

fn plan_touches_nothing(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.apply(&[]).expect_code(0);
    p.db.execute("INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b')");
    p.migration(
        "2024-01-01-000002_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE tags;"),
    );
    let before = p.fingerprint();
    let runs_before = p.db.count("dbsafe_runs");
    let (code, plan) = plan_json(&p, &[]);
    assert_eq!(code, 0, "{plan}");
    let pending: Vec<&str> = plan["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["20240101000002"]);
    assert_eq!(
        plan["pending"][0]["transactional"],
        backend != Backend::Mysql
    );
    assert_eq!(plan["on_failure"], "revert");
    assert!(
        plan["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["ok"] == true),
        "{plan}"
    );
    assert_eq!(p.fingerprint(), before);
    assert_eq!(p.db.count("dbsafe_runs"), runs_before);
    assert!(!p.db.has_table("tags"));

    // A refusal apply would meet shows in the plan, and plan exits 1.
    p.file(
        "migrations/2024-01-01-000001_users/up.sql",
        "CREATE TABLE users (id BIGINT PRIMARY KEY);",
    );
    let (code, plan) = plan_json(&p, &[]);
    assert_eq!(code, 1, "{plan}");
    assert!(
        plan["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["ok"] == false && i["message"].as_str().unwrap().contains("up.sql")),
        "{plan}"
    );
}

fn rehearsal_reports_a_failing_migration_and_leaves_no_clone(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.apply(&[]).expect_code(0);
    let insert = match backend {
        Backend::Postgres => {
            "INSERT INTO users (id, name) SELECT g, 'n' FROM generate_series(1, 20000) g"
        }
        Backend::Mysql => "INSERT INTO users (id, name) SELECT seq, 'n' FROM seq_1_to_20000",
        Backend::Sqlite => {
            "INSERT INTO users (id, name) WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000) SELECT g, 'n' FROM s"
        }
    };
    p.db.execute(insert);
    p.migration(
        "2024-01-01-000002_flag",
        "ALTER TABLE users ADD COLUMN flag INTEGER NOT NULL DEFAULT 0;",
        Some("ALTER TABLE users DROP COLUMN flag;"),
    );
    p.migration(
        "2024-01-01-000003_broken",
        "ALTER TABLE nope ADD COLUMN x INTEGER;",
        Some("SELECT 1;"),
    );
    let before = p.fingerprint();
    let (code, plan) = plan_json(&p, &["--rehearse"]);
    assert_eq!(code, 1, "a failing rehearsal makes plan exit 1: {plan}");
    let rehearsal = plan["rehearsal"].as_array().expect("rehearsal results");
    assert_eq!(rehearsal.len(), 2, "{plan}");
    assert!(rehearsal[0]["error"].is_null(), "{plan}");
    assert!(
        rehearsal[1]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nope"),
        "{plan}"
    );
    if backend == Backend::Postgres {
        let locks: Vec<&str> = rehearsal[0]["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(
            locks
                .iter()
                .any(|l| l.starts_with("AccessExclusiveLock on users")),
            "{locks:?}"
        );
        let warnings = rehearsal[0]["warnings"].as_array().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().unwrap().contains("AccessExclusiveLock on users")),
            "{plan}"
        );
    }
    // The target is untouched, and no clone is left behind.
    assert_eq!(p.fingerprint(), before);
    assert!(p.db.diesel_versions().len() == 1);
    match backend {
        Backend::Postgres => {
            let admin = dbsafe_tests::TestDb {
                backend,
                url: format!("{}/postgres", pg_server()),
                name: String::new(),
            };
            let left = admin.strings(&format!(
                "SELECT datname AS v FROM pg_database WHERE datname LIKE '{}_dbsafe_%'",
                p.db.name
            ));
            std::mem::forget(admin);
            assert!(left.is_empty(), "{left:?}");
        }
        Backend::Mysql => {
            let left = p.db.strings(&format!("SELECT CAST(SCHEMA_NAME AS CHAR) AS v FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{}_dbsafe_%'", p.db.name));
            assert!(left.is_empty(), "{left:?}");
        }
        Backend::Sqlite => {}
    }
}
