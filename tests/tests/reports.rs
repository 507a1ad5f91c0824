//! The report model seen from outside: every refusal names its stable `reason` in the JSON
//! error line (next to `exit_code` and `message`), and `cargo dbverify --message-format
//! github` writes one workflow annotation per check that did not pass.

use std::time::Duration;

use dbsafe_tests::{Backend, Project, Run, TestDb, Watched, each_backend, run, wait_until};

const USERS: &str = "2024-01-01-000001_users";
const POSTS: &str = "2024-01-01-000002_posts";

fn users(p: &Project) {
    p.migration(
        USERS,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n",
        Some("DROP TABLE users;\n"),
    );
}

fn posts(p: &Project) {
    p.migration(
        POSTS,
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title VARCHAR(50));\n",
        Some("DROP TABLE posts;\n"),
    );
}

/// The `reason` of the command's JSON error line, checked against its exit code and the
/// error on stderr.
#[track_caller]
fn reason(run: &Run, exit_code: i32) -> String {
    run.expect_code(exit_code);
    let events = run.events();
    let errors: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "{run:?}");
    let error = errors[0];
    assert_eq!(error["exit_code"], exit_code, "{run:?}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    assert!(run.stderr.contains("error: "), "{run:?}");
    error["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {error}"))
        .to_owned()
}

each_backend!(
    identity_mismatch_is_its_reason,
    dirty_target_is_its_reason,
    edited_migration_is_its_reason,
);

fn identity_mismatch_is_its_reason(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.apply(&[]).expect_code(0);
    // The target now reaches another, fresh database.
    let other = TestDb::new(backend, p.path());
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.test]\nurl = \"{}\"\nenvironment = \"test\"\n",
            other.url
        ),
    );
    let refused = p.apply(&[]);
    assert_eq!(reason(&refused, 3), "identity-mismatch");
    assert!(!refused.event_types().iter().any(|t| t.starts_with("run.")));
    assert_eq!(p.db.count("dbsafe_runs"), 1);
}

fn dirty_target_is_its_reason(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.apply(&[]).expect_code(0);
    // A step left `started` by a run that is over: the target is dirty.
    p.db.execute("UPDATE dbsafe_steps SET status = 'started', finished_at = NULL");
    posts(&p);
    let refused = p.apply(&[]);
    assert_eq!(reason(&refused, 3), "dirty-target");
    assert!(!p.db.has_table("posts"));
    assert_eq!(p.db.count("dbsafe_runs"), 1);
}

fn edited_migration_is_its_reason(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.apply(&[]).expect_code(0);
    p.file(
        &format!("migrations/{USERS}/up.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL);\n",
    );
    posts(&p);
    let refused = p.apply(&[]);
    assert_eq!(reason(&refused, 3), "edited-migration");
    assert!(!p.db.has_table("posts"));
}

#[test]
fn protected_target_without_confirmation_is_its_reason() {
    let p = Project::new(Backend::Sqlite);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.prod]\nurl = \"{}\"\nenvironment = \"production\"\n",
            p.db.url
        ),
    );
    users(&p);
    // Not named, then named but not confirmed: the same guard, the same reason.
    assert_eq!(reason(&p.apply(&[]), 3), "protected-target");
    assert_eq!(
        reason(&p.apply(&["--target", "prod"]), 3),
        "protected-target"
    );
    assert!(!std::path::Path::new(&p.db.name).exists());
    // Confirmed: applied.
    p.apply(&["--target", "prod", "--yes"]).expect_code(0);
    assert!(p.db.has_table("users"));
}

#[test]
fn lock_held_is_its_reason() {
    let p = Project::new(Backend::Sqlite);
    p.write_config("[apply]\nlock-wait = \"1s\"\n");
    users(&p);
    p.apply(&[]).expect_code(0);
    posts(&p);
    // The holder pauses right after taking the lock, before it writes anything.
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply", "--message-format", "json"])
        .env("DBSAFE_TEST_PAUSE_AT", "after-lock:4000");
    let holder = Watched::start(cmd);
    wait_until(Duration::from_secs(30), "the holder to pause", || {
        holder.saw_on_stderr("paused at after-lock")
    });
    let refused = p.apply(&[]);
    let holder = holder.wait();
    holder.expect_code(0);
    assert_eq!(reason(&refused, 3), "lock-held");
    assert!(
        refused.stdout.contains(&holder.run_id()),
        "the refusal names the holder: {refused:?}"
    );
    assert_eq!(
        p.db.count("dbsafe_runs"),
        2,
        "the refused apply recorded no run"
    );
}

#[test]
fn usage_errors_have_a_reason_too() {
    let p = Project::new(Backend::Sqlite);
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args([
        "dbsafe",
        "apply",
        "--no-such-flag",
        "--message-format",
        "json",
    ]);
    assert_eq!(reason(&run(cmd), 2), "usage");
    let unknown = p.dbsafe(&["runs", "show", "not/an/id", "--message-format", "json"]);
    assert_eq!(reason(&unknown, 2), "usage");
}

/// `cargo dbverify --message-format github`: the table, then one annotation per check
/// that did not pass, an invariant's pointing at its `name = ...` line in dbsafe.toml.
#[test]
fn dbverify_writes_one_annotation_per_failing_check() {
    let p = Project::new(Backend::Sqlite);
    p.write_config(
        "[[invariant]]\nname = \"has users\"\nsql = \"SELECT count(*) FROM users\"\nexpect = \"> 0\"\n\n\
         [[invariant]]\nname = \"no users\"\nsql = \"SELECT count(*) FROM users\"\nexpect = \"= 0\"\n\n\
         [[invariant]]\nname = \"broken, 100%\"\nsql = \"SELECT nope FROM no_such_table\"\nexpect = \"= 0\"\n\n\
         [[invariant]]\nname = \"soft\"\nsql = \"SELECT count(*) FROM users\"\nexpect = \"> 5\"\nseverity = \"warn\"\n",
    );
    users(&p);
    p.apply(&[]).expect_code(0);
    p.db.execute("INSERT INTO users (id, name) VALUES (1, 'a')");
    let config = std::fs::read_to_string(p.path().join("dbsafe.toml")).unwrap();
    let line_of = |name: &str| {
        config
            .lines()
            .position(|l| l == format!("name = \"{name}\""))
            .unwrap()
            + 1
    };

    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--message-format", "github"]);
    let out = run(cmd);
    out.expect_code(1);
    let annotations: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("::")).collect();
    // The message goes on with the details (escaped newlines), hence the prefixes.
    let expected = [
        format!(
            "::error file=dbsafe.toml,line={},title=dbverify no users::no users on target test: 1",
            line_of("no users")
        ),
        format!(
            "::error file=dbsafe.toml,line={},title=dbverify broken%2C 100%25::broken, 100%25 on target test: could not be checked",
            line_of("broken, 100%")
        ),
        format!(
            "::warning file=dbsafe.toml,line={},title=dbverify soft::soft on target test: 1",
            line_of("soft")
        ),
    ];
    assert_eq!(annotations.len(), expected.len(), "{}", out.stdout);
    for (got, prefix) in annotations.iter().zip(&expected) {
        assert!(
            got.starts_with(prefix.as_str()),
            "{got}\nshould start with\n{prefix}"
        );
    }
    // The table is there too, as in human output.
    assert!(out.stdout.contains("has users"), "{}", out.stdout);
    assert!(out.stdout.contains("FAIL"), "{}", out.stdout);

    // As many annotations as checks that did not pass in the JSON results.
    let json = {
        let mut cmd = p.command("cargo-dbverify");
        cmd.args(["dbverify", "--message-format", "json"]);
        run(cmd)
    };
    let not_passing = json
        .events()
        .iter()
        .filter(|e| e["type"] == "verify.result" && e["status"] != "pass")
        .count();
    assert_eq!(annotations.len(), not_passing, "{}", json.stdout);

    // All passing: no annotation.
    p.db.execute("DELETE FROM users");
    let mut cmd = p.command("cargo-dbverify");
    cmd.args([
        "dbverify",
        "--message-format",
        "github",
        "--only",
        "no users",
    ]);
    let passing = run(cmd);
    passing.expect_code(0);
    assert!(!passing.stdout.contains("::"), "{}", passing.stdout);
}
