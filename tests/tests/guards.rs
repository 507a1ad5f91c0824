//! The guards of `cargo dbsafe apply`: an edited applied migration, a protected target, a
//! changed database identity and a ledger bound to another target are refused with exit 3
//! and touch nothing; passwords never appear in anything dbsafe prints or writes.

use std::path::Path;

use dbsafe_tests::{
    Backend, Project, Run, TestDb, dbsafe_in, each_backend, mysql_server, pg_server, table_text,
    tree,
};
use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection, PgConnection};

const USERS_UP: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n";
const USERS_DOWN: &str = "DROP TABLE users;\n";
const POSTS_UP: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, title VARCHAR(50));\n";
const POSTS_DOWN: &str = "DROP TABLE posts;\n";

fn users(p: &Project) {
    p.migration("2024-01-01-000001_users", USERS_UP, Some(USERS_DOWN));
}

fn posts(p: &Project) {
    p.migration("2024-01-01-000002_posts", POSTS_UP, Some(POSTS_DOWN));
}

/// The JSON error line of a failed command, checked against its exit code.
#[track_caller]
fn json_error(run: &Run) -> String {
    let events = run.events();
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("no JSON error line in {run:?}"));
    assert_eq!(error["exit_code"], run.code, "{run:?}");
    assert!(run.stderr.contains("error: "), "{run:?}");
    error["message"].as_str().expect("message").to_owned()
}

fn journal_lines(p: &Project) -> usize {
    std::fs::read_to_string(p.path().join(".dbsafe/snapshots/journal.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

each_backend!(
    edited_applied_migration_is_refused,
    protected_target_needs_explicit_target_and_yes,
    changed_identity_needs_rebind,
    ledger_bound_to_another_target_is_refused,
);

fn edited_applied_migration_is_refused(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    let first = p.apply(&[]);
    first.expect_code(0);
    let runs = p.db.count("dbsafe_runs");
    let steps = p.db.count("dbsafe_steps");
    let events = p.db.count("dbsafe_events");
    let journal = journal_lines(&p);
    assert!(journal > 0);

    let up = p.path().join("migrations/2024-01-01-000001_users/up.sql");
    std::fs::write(
        &up,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL);\n",
    )
    .unwrap();
    posts(&p);

    let refused = p.apply(&[]);
    refused.expect_code(3);
    let message = json_error(&refused);
    let file = up.display().to_string();
    assert!(message.contains(&file), "{message}");
    assert!(message.contains("20240101000001"), "{message}");
    assert!(message.contains("new migration"), "{message}");
    assert!(refused.stderr.contains(&file), "{}", refused.stderr);
    // No run.started: nothing of a run was emitted.
    assert!(
        !refused.event_types().iter().any(|t| t.starts_with("run.")),
        "{refused:?}"
    );

    // The database and the journal are as they were: no run, no step, no event, and the
    // pending migration did not run.
    assert_eq!(p.db.count("dbsafe_runs"), runs);
    assert_eq!(p.db.count("dbsafe_steps"), steps);
    assert_eq!(p.db.count("dbsafe_events"), events);
    assert!(!p.db.has_table("posts"));
    assert_eq!(p.db.diesel_versions(), ["20240101000001"]);
    assert_eq!(journal_lines(&p), journal);

    // The human form names the file too.
    let human = p.dbsafe(&["apply"]);
    human.expect_code(3);
    assert!(human.stderr.contains(&file), "{}", human.stderr);
    assert!(!p.db.has_table("posts"));

    // status says which migration was edited.
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(
        status
            .stdout
            .contains("2024-01-01-000001_users  applied by run"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("edited"), "{}", status.stdout);

    // The original text with CRLF line endings is the same migration (checksums normalise
    // line endings): apply goes on with the pending one.
    std::fs::write(&up, USERS_UP.replace('\n', "\r\n")).unwrap();
    let after = p.apply(&[]);
    after.expect_code(0);
    assert!(p.db.has_table("posts"));
    assert_eq!(p.db.diesel_versions(), ["20240101000001", "20240101000002"]);
    assert_eq!(p.db.count("dbsafe_runs"), runs + 1);
}

/// What a refused command must not have created in the database.
#[track_caller]
fn assert_untouched(p: &Project, files_before: &[String]) {
    if p.backend() == Backend::Sqlite {
        assert!(!Path::new(&p.db.name).exists(), "{} was created", p.db.name);
    } else {
        for table in [
            "dbsafe_runs",
            "dbsafe_steps",
            "dbsafe_events",
            "dbsafe_meta",
            "__diesel_schema_migrations",
            "users",
        ] {
            assert!(!p.db.has_table(table), "{table} was created");
        }
    }
    assert_eq!(tree(p.path()), files_before, "files were created");
    assert!(!p.path().join(".dbsafe").exists());
}

fn protected_target_needs_explicit_target_and_yes(backend: Backend) {
    let p = Project::new(backend);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.prod]\nurl = \"{}\"\nenvironment = \"production\"\n",
            p.db.url
        ),
    );
    users(&p);
    let files = tree(p.path());

    // The only target, chosen by default: not named, so refused.
    let unnamed = p.apply(&[]);
    unnamed.expect_code(3);
    let message = json_error(&unnamed);
    assert!(message.contains("protected"), "{message}");
    assert!(message.contains("--target prod"), "{message}");
    assert_untouched(&p, &files);

    // --yes alone does not name it.
    p.apply(&["--yes"]).expect_code(3);
    assert_untouched(&p, &files);

    // Named, but not confirmed (no terminal to ask on).
    let unconfirmed = p.apply(&["--target", "prod"]);
    unconfirmed.expect_code(3);
    let message = json_error(&unconfirmed);
    assert!(message.contains("--yes"), "{message}");
    assert_untouched(&p, &files);
    let human = p.dbsafe(&["apply", "--target", "prod"]);
    human.expect_code(3);
    assert!(human.stderr.contains("protected"), "{}", human.stderr);
    assert_untouched(&p, &files);

    // resolve changes the ledger too: the same guard.
    let resolve = p.dbsafe(&["resolve", "20240101000001", "--as", "applied"]);
    resolve.expect_code(3);
    assert!(
        resolve.stderr.contains("--target prod"),
        "{}",
        resolve.stderr
    );
    assert_untouched(&p, &files);

    // Named and confirmed: applied, recorded as a production run.
    let applied = p.apply(&["--target", "prod", "--yes"]);
    applied.expect_code(0);
    assert!(p.db.has_table("users"));
    assert_eq!(p.db.diesel_versions(), ["20240101000001"]);
    assert_eq!(
        p.db.strings(&format!(
            "SELECT environment AS v FROM dbsafe_runs WHERE id = '{}'",
            applied.run_id()
        )),
        ["production"]
    );
}

fn config_with_url(p: &Project, url: &str) {
    p.file(
        "dbsafe.toml",
        &format!("[targets.test]\nurl = \"{url}\"\nenvironment = \"test\"\n"),
    );
}

fn changed_identity_needs_rebind(backend: Backend) {
    let p = Project::new(backend);
    users(&p);
    p.apply(&[]).expect_code(0);
    let bindings = std::fs::read_to_string(p.path().join(".dbsafe/snapshots/targets.json"))
        .expect("targets.json written by the first apply");
    assert!(bindings.contains("\"test\""), "{bindings}");

    // The same target now reaches another (fresh) database.
    let other = TestDb::new(backend, p.path());
    config_with_url(&p, &other.url);
    let refused = p.apply(&[]);
    refused.expect_code(3);
    let message = json_error(&refused);
    assert!(message.contains("target `test` is bound to"), "{message}");
    assert!(message.contains("--rebind"), "{message}");
    assert!(refused.stderr.contains("--rebind"), "{}", refused.stderr);
    if backend == Backend::Sqlite {
        assert!(
            !Path::new(&other.name).exists(),
            "the refused apply created {}",
            other.name
        );
    } else {
        assert!(!other.has_table("dbsafe_runs"));
        assert!(!other.has_table("__diesel_schema_migrations"));
        assert!(!other.has_table("users"));
    }
    // status reports the binding problem without refusing to show it (a SQLite file that
    // does not exist yet is reported as such).
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    let expected = if backend == Backend::Sqlite {
        "does not exist yet"
    } else {
        "--rebind"
    };
    assert!(status.stdout.contains(expected), "{}", status.stdout);
    assert_eq!(
        std::fs::read_to_string(p.path().join(".dbsafe/snapshots/targets.json")).unwrap(),
        bindings
    );

    // --rebind: applied, and the re-bind is in the audit trail.
    let rebound = p.apply(&["--rebind"]);
    rebound.expect_code(0);
    assert!(other.has_table("users"));
    assert_eq!(other.diesel_versions(), ["20240101000001"]);
    assert!(
        rebound.event_types().contains(&"ledger.rebind".to_owned()),
        "{rebound:?}"
    );
    let rebind_events = other.strings(&format!(
        "SELECT payload AS v FROM dbsafe_events WHERE event_type = 'ledger.rebind' AND run_id = '{}'",
        rebound.run_id()
    ));
    assert_eq!(rebind_events.len(), 1, "{rebind_events:?}");
    let payload: serde_json::Value = serde_json::from_str(&rebind_events[0]).unwrap();
    assert_eq!(payload["target"], "test");
    assert!(payload["previous"].is_string(), "{payload}");
    assert_ne!(payload["previous"], payload["identity"]);
    assert_ne!(
        std::fs::read_to_string(p.path().join(".dbsafe/snapshots/targets.json")).unwrap(),
        bindings
    );

    // Now bound to the new database: a plain apply works, and the old one is refused.
    p.apply(&[]).expect_code(0);
    config_with_url(&p, &p.db.url);
    let back = p.apply(&[]);
    back.expect_code(3);
    assert!(json_error(&back).contains("--rebind"));
    assert_eq!(p.db.count("dbsafe_runs"), 1);
}

fn ledger_bound_to_another_target_is_refused(backend: Backend) {
    let p = Project::new(backend);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.a]\nurl = \"{}\"\nenvironment = \"test\"\n",
            p.db.url
        ),
    );
    users(&p);
    p.apply(&[]).expect_code(0);

    // Another project directory (no local binding) whose target `b` reaches the same database.
    let other = tempfile::tempdir().unwrap();
    let write = |relative: &str, text: &str| {
        let path = other.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "dbsafe.toml",
        &format!(
            "[targets.b]\nurl = \"{}\"\nenvironment = \"test\"\n",
            p.db.url
        ),
    );
    write("migrations/2024-01-01-000001_users/up.sql", USERS_UP);
    write("migrations/2024-01-01-000001_users/down.sql", USERS_DOWN);
    write("migrations/2024-01-01-000002_posts/up.sql", POSTS_UP);
    write("migrations/2024-01-01-000002_posts/down.sql", POSTS_DOWN);
    let files = tree(other.path());

    let refused = dbsafe_in(other.path(), &["apply", "--message-format", "json"], &[]);
    refused.expect_code(3);
    let message = json_error(&refused);
    assert!(message.contains("belongs to target `a`"), "{message}");
    assert!(message.contains("`b`"), "{message}");
    assert!(message.contains("--rebind"), "{message}");
    assert!(!p.db.has_table("posts"));
    assert_eq!(p.db.count("dbsafe_runs"), 1);
    assert_eq!(
        p.db.strings("SELECT value AS v FROM dbsafe_meta WHERE name = 'bound_target'"),
        ["a"]
    );
    assert_eq!(tree(other.path()), files, "the refused apply wrote files");

    // Re-bound on purpose: it now belongs to `b`.
    let rebound = dbsafe_in(
        other.path(),
        &["apply", "--message-format", "json", "--rebind"],
        &[],
    );
    rebound.expect_code(0);
    assert!(p.db.has_table("posts"));
    assert_eq!(
        p.db.strings("SELECT value AS v FROM dbsafe_meta WHERE name = 'bound_target'"),
        ["b"]
    );
    assert_eq!(
        p.db.count("dbsafe_events WHERE event_type = 'ledger.rebind'"),
        1
    );
    // And the first project's target `a` is now the stranger.
    let a_again = p.apply(&[]);
    a_again.expect_code(3);
    assert!(json_error(&a_again).contains("belongs to target `b`"));
}

// ---------------------------------------------------------------------------------------
// Passwords

const PASSWORD: &str = "s3cr3t-pw-xyz";
const WRONG_PASSWORD: &str = "wr0ng-pw-abc";

/// A login role (PostgreSQL) or user (MariaDB) with a password, owning / granted the test
/// database; dropped (with the database, on PostgreSQL) when the value is dropped.
struct DbUser {
    backend: Backend,
    name: String,
    database: String,
}

impl DbUser {
    fn create(db: &TestDb) -> DbUser {
        let name = format!("{}_u", db.name);
        match db.backend {
            Backend::Postgres => {
                let mut admin =
                    PgConnection::establish(&format!("{}/postgres", pg_server())).unwrap();
                admin
                    .batch_execute(&format!(
                        "CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'; ALTER DATABASE {} OWNER TO {name}",
                        db.name
                    ))
                    .unwrap();
            }
            Backend::Mysql => {
                let mut admin =
                    MysqlConnection::establish(&format!("{}/mysql", mysql_server())).unwrap();
                for host in ["127.0.0.1", "localhost"] {
                    admin
                        .batch_execute(&format!(
                            "CREATE USER '{name}'@'{host}' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON {}.* TO '{name}'@'{host}'",
                            db.name
                        ))
                        .unwrap();
                }
            }
            Backend::Sqlite => unreachable!("SQLite has no users"),
        }
        DbUser {
            backend: db.backend,
            name,
            database: db.name.clone(),
        }
    }

    /// The URL of the database as this user with `password`.
    fn url(&self, password: &str) -> String {
        let server = match self.backend {
            Backend::Postgres => pg_server(),
            _ => mysql_server(),
        };
        let (scheme, rest) = server.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!(
            "{scheme}://{}:{password}@{host}/{}",
            self.name, self.database
        )
    }
}

impl Drop for DbUser {
    fn drop(&mut self) {
        match self.backend {
            Backend::Postgres => {
                if let Ok(mut admin) = PgConnection::establish(&format!("{}/postgres", pg_server()))
                {
                    // Two statements: DROP DATABASE cannot run in the implicit transaction
                    // of a multi-statement query.
                    let _ = admin.batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.database
                    ));
                    let dropped =
                        admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
                    if let Err(e) = dropped
                        && !std::thread::panicking()
                    {
                        panic!("dropping role {}: {e}", self.name);
                    }
                }
            }
            Backend::Mysql => {
                if let Ok(mut admin) =
                    MysqlConnection::establish(&format!("{}/mysql", mysql_server()))
                {
                    for host in ["127.0.0.1", "localhost"] {
                        let _ = admin.batch_execute(&format!(
                            "DROP USER IF EXISTS '{}'@'{host}'",
                            self.name
                        ));
                    }
                }
            }
            Backend::Sqlite => {}
        }
    }
}

/// Everything a run printed.
fn printed(run: &Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

#[track_caller]
fn assert_no_password(what: &str, text: &str) {
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(
            !text.contains(secret),
            "the password appears in {what}:\n{text}"
        );
    }
}

#[test]
fn no_password_anywhere_postgres() {
    no_password_anywhere(Backend::Postgres);
}

#[test]
fn no_password_anywhere_mysql() {
    no_password_anywhere(Backend::Mysql);
}

fn no_password_anywhere(backend: Backend) {
    let p = Project::new(backend);
    let user = DbUser::create(&p.db);
    let url = user.url(PASSWORD);
    config_with_url(&p, &url);
    users(&p);
    p.migration(
        "2024-01-01-000002_broken",
        "CREATE TABLE broken (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n",
        Some("DROP TABLE broken;\n"),
    );

    // The failing migration: on PostgreSQL it rolls back and policy revert takes `users`
    // back (exit 1); on MariaDB its DDL committed, so the target is dirty (exit 4) until
    // repaired by hand and resolved.
    let failing_code = if backend == Backend::Mysql { 4 } else { 1 };
    let mut outputs: Vec<(String, Run)> = Vec::new();
    let record = |outputs: &mut Vec<(String, Run)>, label: &str, run: Run, code: i32| {
        run.expect_code(code);
        outputs.push((label.to_owned(), run));
    };
    let mut failed_ids = Vec::new();
    for format in ["human", "json"] {
        let verbose = ["--message-format", format, "-v"];
        let with = |args: &[&'static str]| [args, &verbose[..]].concat();
        let failed = p.dbsafe(&with(&["apply"]));
        failed_ids.push(
            p.db.strings("SELECT id AS v FROM dbsafe_runs ORDER BY started_at DESC, id DESC")[0]
                .clone(),
        );
        record(
            &mut outputs,
            &format!("failing apply ({format})"),
            failed,
            failing_code,
        );
        if backend == Backend::Mysql {
            p.db.execute("DROP TABLE IF EXISTS broken");
            record(
                &mut outputs,
                &format!("resolve ({format})"),
                p.dbsafe(&with(&["resolve", "20240101000002", "--as", "reverted"])),
                0,
            );
        }
        record(
            &mut outputs,
            &format!("status ({format})"),
            p.dbsafe(&with(&["status"])),
            0,
        );
        record(
            &mut outputs,
            &format!("runs ({format})"),
            p.dbsafe(&with(&["runs"])),
            0,
        );
    }
    assert!(!p.db.has_table("broken"));
    let failed_id = failed_ids[0].clone();
    let expected_status = if backend == Backend::Mysql {
        assert!(p.db.has_table("users"));
        "failed"
    } else {
        assert!(!p.db.has_table("users"), "policy revert takes users back");
        "reverted"
    };
    for id in &failed_ids {
        assert_eq!(
            p.db.strings(&format!(
                "SELECT status AS v FROM dbsafe_runs WHERE id = '{id}'"
            )),
            [expected_status]
        );
    }

    std::fs::remove_dir_all(p.path().join("migrations/2024-01-01-000002_broken")).unwrap();
    let applied = p.apply(&["-v"]);
    applied.expect_code(0);
    assert!(p.db.has_table("users"));
    let run_id = applied.run_id();
    outputs.push(("apply (json)".into(), applied));
    for format in ["human", "json"] {
        for args in [
            vec!["status"],
            vec!["runs"],
            vec!["runs", "show", &run_id],
            vec!["runs", "show", &failed_id],
            vec!["apply"],
        ] {
            let mut all = args.clone();
            all.extend(["--message-format", format, "-v"]);
            let label = format!("{} ({format})", args.join(" "));
            record(&mut outputs, &label, p.dbsafe(&all), 0);
        }
    }
    // The failure's message reached the output (so the error path was really taken)...
    let all_printed: String = outputs.iter().map(|(_, r)| printed(r)).collect();
    assert!(all_printed.contains("no_such_table"), "{all_printed}");
    // ...and the URL was shown, redacted.
    let redacted = format!("{}:***@", user.name);
    assert!(all_printed.contains(&redacted), "{all_printed}");
    for (label, run) in &outputs {
        assert_no_password(label, &printed(run));
    }

    // The ledger: every column of every row of dbsafe's tables.
    let mut ledger = String::new();
    for table in [
        "dbsafe_runs",
        "dbsafe_steps",
        "dbsafe_events",
        "dbsafe_meta",
    ] {
        let rows = table_text(&p.db, table);
        assert!(!rows.is_empty(), "{table} is empty");
        ledger.push_str(&rows.join("\n"));
        ledger.push('\n');
    }
    assert!(ledger.contains("no_such_table"), "{ledger}");
    assert!(ledger.contains(&redacted), "{ledger}");
    assert_no_password("the ledger", &ledger);

    // The local files: journal, bindings, anything else under .dbsafe/.
    let local = p.path().join(".dbsafe");
    let files = tree(&local);
    assert!(
        files.iter().any(|f| f.ends_with("journal.jsonl")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("targets.json")),
        "{files:?}"
    );
    let mut journal = String::new();
    for file in &files {
        let path = local.join(file);
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert_no_password(&path.display().to_string(), &text);
            journal.push_str(&text);
        }
    }
    assert!(journal.contains(&redacted), "{journal}");

    // A password in the query string (libpq's `?password=`) is hidden the same way.
    if backend == Backend::Postgres {
        let host = url.split('@').nth(1).unwrap();
        config_with_url(
            &p,
            &format!("postgres://{}@{host}?password={PASSWORD}", user.name),
        );
        for args in [
            &["status", "--message-format", "json"][..],
            &["apply", "--message-format", "json"][..],
            &["apply"][..],
            &["runs"][..],
        ] {
            let run = p.dbsafe(args);
            run.expect_code(0);
            assert_no_password(&args.join(" "), &printed(&run));
        }
        assert_no_password("the ledger", &table_text(&p.db, "dbsafe_events").join("\n"));
        assert_no_password(
            "the journal",
            &std::fs::read_to_string(local.join("snapshots/journal.jsonl")).unwrap(),
        );
    }
}

/// A connection refused for its credentials: a clear error, exit 1, no password shown, and
/// nothing written.
fn bad_credentials(p: &Project, url: &str, expected: &str) {
    config_with_url(p, url);
    users(p);
    let files = tree(p.path());
    for format in ["human", "json"] {
        for command in ["apply", "status", "runs"] {
            let run = p.dbsafe(&[command, "--message-format", format]);
            run.expect_code(1);
            assert!(
                run.stderr.contains("error: cannot connect to "),
                "{}",
                run.stderr
            );
            assert!(run.stderr.contains(":***@"), "{}", run.stderr);
            assert!(run.stderr.contains(expected), "{}", run.stderr);
            if format == "json" {
                assert!(json_error(&run).contains(expected));
            }
            assert_no_password(command, &printed(&run));
        }
    }
    assert_eq!(tree(p.path()), files);
    assert!(!p.db.has_table("dbsafe_runs"));
}

#[test]
fn wrong_password_mysql() {
    let p = Project::new(Backend::Mysql);
    let user = DbUser::create(&p.db);
    bad_credentials(
        &p,
        &user.url(WRONG_PASSWORD),
        &format!("Access denied for user '{}'", user.name),
    );
}

/// The local PostgreSQL trusts loopback connections (no password is checked), so an unknown
/// role stands in for a wrong password: the server refuses the credentials.
#[test]
fn unknown_role_postgres() {
    let p = Project::new(Backend::Postgres);
    let nobody = DbUser {
        backend: Backend::Postgres,
        name: format!("{}_nobody", p.db.name),
        database: p.db.name.clone(),
    };
    bad_credentials(
        &p,
        &nobody.url(WRONG_PASSWORD),
        &format!("\"{}\" does not exist", nobody.name),
    );
}
