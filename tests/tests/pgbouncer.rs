//! dbsafe behind a real PgBouncer in transaction pooling mode (started by
//! scripts/ensure-pgbouncer.sh; found through `DBSAFE_TEST_PGBOUNCER_URL`, default
//! postgres://postgres@127.0.0.1:6433): a target whose URL goes through the pooler is
//! refused (exit 3, nothing touched) unless it names a `direct-url`; with one, apply,
//! verify, rollback, restore and concurrent applies behave exactly as on a plain target.

use dbsafe_tests::{Backend, Project, Run, finish, run};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

/// The PgBouncer in front of the test server, without a database.
fn pgbouncer() -> String {
    let url = std::env::var("DBSAFE_TEST_PGBOUNCER_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6433".into());
    if let Err(e) = PgConnection::establish(&format!("{url}/postgres")) {
        panic!(
            "no PgBouncer answers at {url} ({e}): run scripts/ensure-pgbouncer.sh (scripts/test.sh does), or set DBSAFE_TEST_PGBOUNCER_URL"
        );
    }
    url
}

/// The project's database as the application reaches it: through PgBouncer.
fn pooled_url(p: &Project) -> String {
    format!("{}/{}", pgbouncer(), p.db.name)
}

/// A PostgreSQL project whose target `test` reaches its database through PgBouncer, with
/// the direct URL in `.env` (`DBSAFE_DIRECT_URL`) when `direct` is set.
fn pooled_project(direct: bool) -> Project {
    let p = Project::new(Backend::Postgres);
    let direct_key = if direct {
        "direct-url-env = \"DBSAFE_DIRECT_URL\"\n"
    } else {
        ""
    };
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.test]\nurl = \"{}\"\n{direct_key}environment = \"test\"\n\n{CONFIG}",
            pooled_url(&p)
        ),
    );
    p.file(".env", &format!("DBSAFE_DIRECT_URL={}\n", p.db.url));
    p
}

/// The same project on a plain target: the reference behaviour.
fn plain_project() -> Project {
    let p = Project::new(Backend::Postgres);
    p.write_config(CONFIG);
    p
}

const CONFIG: &str = "[apply]\nsnapshot = \"always\"\n\n[[invariant]]\nname = \"no-orphan-posts\"\nsql = \"SELECT count(*) FROM posts WHERE user_id NOT IN (SELECT id FROM users)\"\nexpect = \"= 0\"\n";

fn migrations(p: &Project, slow: bool) {
    let pause = if slow { "SELECT pg_sleep(0.5);" } else { "" };
    p.migration(
        "2024-09-01-000001_users",
        &format!("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nINSERT INTO users VALUES (1, 'ada');\n{pause}"),
        Some("DROP TABLE users;"),
    );
    p.migration(
        "2024-09-01-000002_posts",
        &format!("CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id));\n{pause}"),
        Some("DROP TABLE posts;"),
    );
}

fn dbverify(p: &Project) -> Run {
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--message-format", "json"]);
    run(cmd)
}

/// What a person (or a test) can observe of a project's database and ledger.
fn ledger(p: &Project) -> Vec<String> {
    let mut seen = p.db.strings(
        "SELECT r.kind || ' ' || r.status || ': ' || COALESCE(string_agg(s.version || ' ' || s.direction || ' ' || s.status, ', ' ORDER BY s.seq), '') AS v \
         FROM dbsafe_runs r LEFT JOIN dbsafe_steps s ON s.run_id = r.id GROUP BY r.id, r.kind, r.status, r.started_at ORDER BY r.started_at, r.id",
    );
    seen.push(format!("diesel: {:?}", p.db.diesel_versions()));
    seen.push(format!(
        "tables: users {} posts {}",
        p.db.has_table("users"),
        p.db.has_table("posts")
    ));
    seen
}

/// Exit code and JSON event types: the commands' observable behaviour.
fn outcome(name: &str, out: &Run) -> String {
    format!("{name}: exit {} {:?}", out.code, out.event_types())
}

/// apply -> verify -> status -> rollback -> apply -> rollback --restore, as seen from outside.
fn lifecycle(p: &Project) -> Vec<String> {
    migrations(p, false);
    let mut seen = Vec::new();
    let apply = p.apply(&[]);
    seen.push(outcome("apply", &apply));
    let first = apply.run_id();
    seen.extend(ledger(p));
    seen.push(outcome("dbverify", &dbverify(p)));
    seen.push(outcome(
        "status",
        &p.dbsafe(&["status", "--message-format", "json"]),
    ));
    seen.push(outcome(
        "rollback",
        &p.dbrollback(&[&first, "--message-format", "json"]),
    ));
    seen.extend(ledger(p));
    let again = p.apply(&[]);
    seen.push(outcome("apply again", &again));
    let restore = p.dbrollback(&[&again.run_id(), "--restore", "--message-format", "json"]);
    seen.push(outcome("rollback --restore", &restore));
    seen.extend(ledger(p));
    seen
}

#[test]
fn a_pooled_url_without_direct_url_is_refused_and_nothing_is_touched() {
    let p = pooled_project(false);
    migrations(&p, false);
    let children: Vec<_> = (0..3)
        .map(|_| p.spawn_dbsafe(&["apply", "--message-format", "json"]))
        .collect();
    let mut outs: Vec<Run> = children.into_iter().map(finish).collect();
    outs.push(p.dbsafe(&["status"]));
    outs.push(p.dbrollback(&["--list"]));
    for out in &outs {
        out.expect_code(3);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("connection pooler in transaction mode")
                && text.contains("`direct-url-env` (or `direct-url`) on [targets.test]"),
            "{out:?}"
        );
        assert!(!text.contains("already exists"), "{out:?}");
    }
    assert!(!p.db.has_table("dbsafe_runs"), "no ledger was created");
    assert!(!p.db.has_table("users"));
    assert!(p.db.diesel_versions().is_empty());
}

#[test]
fn a_direct_url_that_is_pooled_too_is_refused() {
    let p = pooled_project(true);
    p.file(".env", &format!("DBSAFE_DIRECT_URL={}\n", pooled_url(&p)));
    migrations(&p, false);
    let out = p.apply(&[]);
    out.expect_code(3);
    assert!(
        out.stderr
            .contains("the `direct-url` of target `test` must reach PostgreSQL itself"),
        "{out:?}"
    );
    assert!(!p.db.has_table("dbsafe_runs"));
}

#[test]
fn behind_pgbouncer_with_direct_url_everything_behaves_as_without_it() {
    let plain = plain_project();
    let expected = lifecycle(&plain);
    let pooled = pooled_project(true);
    let seen = lifecycle(&pooled);
    assert_eq!(seen, expected);
    assert!(expected[0].starts_with("apply: exit 0"), "{expected:#?}");
    assert!(
        expected
            .iter()
            .all(|l| !l.contains(": exit ") || l.contains(": exit 0")),
        "{expected:#?}"
    );
    // The application, through the pooler, sees what dbsafe applies through the direct URL.
    pooled.apply(&[]).expect_code(0);
    let mut app = PgConnection::establish(&pooled_url(&pooled)).expect("connect through PgBouncer");
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let users: Count = diesel::sql_query("SELECT count(*) AS n FROM users")
        .get_result(&mut app)
        .expect("query through PgBouncer");
    assert_eq!(users.n, 1);
}

/// Three applies at once: one applies, the others wait for the lock and find nothing to do.
fn concurrent(p: &Project) -> Vec<String> {
    migrations(p, true);
    let children: Vec<_> = (0..3)
        .map(|_| p.spawn_dbsafe(&["apply", "--message-format", "json"]))
        .collect();
    let outs: Vec<Run> = children.into_iter().map(finish).collect();
    let mut seen: Vec<String> = outs
        .iter()
        .map(|out| {
            assert!(!out.stderr.contains("already exists"), "{out:?}");
            let applied = out
                .event_types()
                .iter()
                .filter(|t| *t == "migration.applied")
                .count();
            format!("exit {} applied {applied}", out.code)
        })
        .collect();
    // Which process applied is a race: compare the runs' records as a set.
    seen.extend(ledger(p));
    seen.sort();
    seen
}

#[test]
fn concurrent_applies_behind_pgbouncer_apply_once() {
    let expected = concurrent(&plain_project());
    let seen = concurrent(&pooled_project(true));
    assert_eq!(seen, expected);
    let exits: Vec<&String> = expected.iter().filter(|l| l.starts_with("exit")).collect();
    assert_eq!(
        exits,
        ["exit 0 applied 0", "exit 0 applied 0", "exit 0 applied 2"],
        "{expected:#?}"
    );
}

#[test]
fn a_direct_url_variable_that_is_not_set_is_a_usage_error() {
    let p = pooled_project(true);
    p.file(".env", "");
    migrations(&p, false);
    let out = p.apply(&[]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("target `test` has no direct database URL: set the environment variable DBSAFE_DIRECT_URL"),
        "{out:?}"
    );
    assert!(!p.db.has_table("dbsafe_runs"));
}
