//! The migration round trip (`dbsafe::roundtrip`, behind `cargo dbsafe check --roundtrip`)
//! on each backend: a correct migration passes; a down.sql that fails, or that forgets an
//! index, is named with the server message or the schema difference; seeds must be safe
//! to run twice.

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
