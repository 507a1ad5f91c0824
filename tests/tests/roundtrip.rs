//! The migration round trip (`dbsafe::roundtrip`, behind `cargo dbsafe check --roundtrip`)
//! on each backend: a correct migration passes; a down.sql that fails, or that forgets an
//! index, is named with the server message or the schema difference; seeds must be safe
//! to run twice; one pass reports every broken down.sql; a column-order difference is a
//! warning of its own rule.

use dbsafe::config::Config;
use dbsafe::roundtrip::Problem;
use dbsafe::target::Target;
use dbsafe_tests::{Backend, Project, each_backend};

each_backend!(
    correct_migrations_pass,
    failing_down_sql_is_named_with_the_server_message,
    down_sql_forgetting_an_index_is_named_with_the_difference,
    seeds_must_be_safe_to_run_twice,
    applied_migrations_are_not_round_tripped_unless_all,
    every_problem_is_reported_in_one_pass,
    column_order_is_a_warning_unless_configured,
);

/// The round trip's problems, in migration order.
fn problems(p: &Project, all: bool) -> Vec<Problem> {
    let file = p.path().join("dbsafe.toml");
    let config = Config::parse(&file, &std::fs::read_to_string(&file).unwrap()).unwrap();
    let target = Target::resolve(&config, Some("test")).unwrap();
    dbsafe::roundtrip::roundtrip(&config, &target, all).unwrap()
}

/// The messages of the round trip's problems.
fn roundtrip(p: &Project, all: bool) -> Vec<String> {
    problems(p, all).into_iter().map(|p| p.message).collect()
}

fn drop_index(backend: Backend, index: &str, table: &str) -> String {
    match backend {
        Backend::Mysql => format!("DROP INDEX {index} ON {table};"),
        _ => format!("DROP INDEX {index};"),
    }
}

fn users(p: &Project) {
    p.migration(
        "2024-01-01-000001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL);",
        Some("DROP TABLE users;"),
    );
}

fn correct_migrations_pass(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.migration(
        "2024-01-01-000002_email_index",
        "CREATE INDEX users_email_idx ON users (email);",
        Some(&drop_index(backend, "users_email_idx", "users")),
    );
    assert_eq!(roundtrip(&p, false), Vec::<String>::new());
    // The target itself is untouched: the round trip ran on a shadow.
    assert!(!p.db.has_table("users"));
}

fn failing_down_sql_is_named_with_the_server_message(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.migration(
        "2024-01-01-000002_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE tagz;"),
    );
    let problems = roundtrip(&p, false);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("down.sql of 2024-01-01-000002_tags fails"),
        "{problems:?}"
    );
    assert!(
        problems[0].to_lowercase().contains("tagz"),
        "the server message names the object: {problems:?}"
    );
}

fn down_sql_forgetting_an_index_is_named_with_the_difference(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.migration(
        "2024-01-01-000002_name",
        "ALTER TABLE users ADD COLUMN nick VARCHAR(20);\nCREATE INDEX users_email_idx ON users (email);",
        Some("ALTER TABLE users DROP COLUMN nick;"),
    );
    let problems = roundtrip(&p, false);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("does not restore the schema before it"),
        "{problems:?}"
    );
    assert!(problems[0].contains("users_email_idx"), "{problems:?}");
}

fn seeds_must_be_safe_to_run_twice(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    let insert_ignore = match backend {
        Backend::Postgres => {
            "INSERT INTO users (id, email) VALUES (1, 'a@x') ON CONFLICT DO NOTHING;"
        }
        Backend::Mysql => "INSERT IGNORE INTO users (id, email) VALUES (1, 'a@x');",
        Backend::Sqlite => "INSERT OR IGNORE INTO users (id, email) VALUES (1, 'a@x');",
    };
    p.file("seeds/good.sql", insert_ignore);
    p.file(
        "seeds/bad.sql",
        "INSERT INTO users (id, email) VALUES (2, 'b@x');",
    );
    p.write_config("[[seed]]\nname = \"good\"\nfile = \"seeds/good.sql\"\n");
    assert_eq!(roundtrip(&p, false), Vec::<String>::new());
    p.write_config("[[seed]]\nname = \"good\"\nfile = \"seeds/good.sql\"\n\n[[seed]]\nname = \"bad\"\nfile = \"seeds/bad.sql\"\n");
    let problems = roundtrip(&p, false);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("seed bad failed") && problems[0].contains("second time"),
        "{problems:?}"
    );
}

fn applied_migrations_are_not_round_tripped_unless_all(backend: Backend) {
    let p = Project::new(backend);
    // An applied migration with a broken down.sql: only --all looks at it again.
    p.migration(
        "2024-01-01-000001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE nope;"),
    );
    p.apply(&[]).expect_code(0);
    p.migration(
        "2024-01-01-000002_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE tags;"),
    );
    assert_eq!(roundtrip(&p, false), Vec::<String>::new());
    let problems = roundtrip(&p, true);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("down.sql of 2024-01-01-000001_users fails")),
        "{problems:?}"
    );
}

fn every_problem_is_reported_in_one_pass(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    // No down.sql, then one of comments only: both applied and the walk goes on.
    p.migration(
        "2024-01-01-000002_posts",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY);",
        None,
    );
    p.migration(
        "2024-01-01-000003_fill",
        "INSERT INTO posts (id) VALUES (1);",
        Some("-- Not reversible\n"),
    );
    // A down.sql that fails, then one that forgets a table: the walk goes on after each.
    p.migration(
        "2024-01-01-000004_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE tagz;"),
    );
    p.migration(
        "2024-01-01-000005_labels",
        "CREATE TABLE labels (id INTEGER PRIMARY KEY);\nCREATE TABLE colors (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE labels;"),
    );
    // A correct one after all of them, built on their schema, passes.
    p.migration(
        "2024-01-01-000006_tag_posts",
        "CREATE TABLE tag_posts (tag_id INTEGER REFERENCES tags (id), post_id INTEGER REFERENCES posts (id), color_id INTEGER REFERENCES colors (id));",
        Some("DROP TABLE tag_posts;"),
    );
    // A failing down.sql at the very end is reached too.
    p.migration(
        "2024-01-01-000007_last",
        "CREATE TABLE last_one (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE last_onez;"),
    );
    let found = problems(&p, false);
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(found.len(), 5, "{messages:#?}");
    assert!(
        messages[0].contains("2024-01-01-000002_posts has no down.sql"),
        "{messages:#?}"
    );
    assert!(
        messages[1].contains("2024-01-01-000003_fill has a down.sql of comments only"),
        "{messages:#?}"
    );
    assert!(
        messages[2].contains("down.sql of 2024-01-01-000004_tags fails")
            && messages[2].to_lowercase().contains("tagz"),
        "{messages:#?}"
    );
    assert!(
        messages[3].contains("down.sql of 2024-01-01-000005_labels does not restore")
            && messages[3].contains("colors"),
        "{messages:#?}"
    );
    assert!(
        messages[4].contains("down.sql of 2024-01-01-000007_last fails"),
        "{messages:#?}"
    );
    assert!(
        found
            .iter()
            .all(|p| p.rule == "roundtrip" && p.severity == dbsafe::check::Level::Error)
    );
    assert!(
        found[2]
            .file
            .as_ref()
            .unwrap()
            .ends_with("2024-01-01-000004_tags/down.sql")
    );
    // The target itself is untouched.
    assert!(!p.db.has_table("users"));
}

fn column_order_is_a_warning_unless_configured(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_instances",
        "CREATE TABLE instances (id INTEGER PRIMARY KEY, legacy VARCHAR(20), host VARCHAR(20));",
        Some("DROP TABLE instances;"),
    );
    // The down.sql re-adds the dropped column at the end of the table.
    p.migration(
        "2024-01-01-000002_drop_legacy",
        "ALTER TABLE instances DROP COLUMN legacy;",
        Some("ALTER TABLE instances ADD COLUMN legacy VARCHAR(20);"),
    );
    let found = problems(&p, false);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].rule, "roundtrip-column-order");
    assert_eq!(found[0].severity, dbsafe::check::Level::Warning);
    assert!(
        found[0]
            .message
            .contains("column order of `instances` changed: id, legacy, host -> id, host, legacy"),
        "{found:#?}"
    );
    // The check passes with the warning (once recorded in dbsafe.lock, the migrations are
    // not linted: ban-drop-column stays out of the way on PostgreSQL).
    p.dbsafe(&["check", "--update-lock"]);
    let run = p.dbsafe(&["check", "--roundtrip"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("warning[roundtrip-column-order]"),
        "{run:?}"
    );
    // Configured as an error, it fails the check.
    p.write_config("[check]\nroundtrip-column-order = \"error\"\n");
    let found = problems(&p, false);
    assert_eq!(found[0].severity, dbsafe::check::Level::Error);
    let run = p.dbsafe(&["check", "--roundtrip"]);
    run.expect_code(1);
    assert!(
        run.stdout.contains("error[roundtrip-column-order]"),
        "{run:?}"
    );
    // Any other difference stays an error: the type of the re-added column changed too.
    p.write_config("");
    p.migration(
        "2024-01-01-000002_drop_legacy",
        "ALTER TABLE instances DROP COLUMN legacy;",
        Some("ALTER TABLE instances ADD COLUMN legacy VARCHAR(30);"),
    );
    let found = problems(&p, false);
    assert!(
        found
            .iter()
            .any(|p| p.rule == "roundtrip" && p.message.contains("legacy")),
        "{found:#?}"
    );
}
