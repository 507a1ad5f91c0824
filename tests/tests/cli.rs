//! The command line end to end: bad input (each with a clear message, its documented exit
//! code, and nothing created), how dbsafe.toml, `.env`, diesel.toml, `--config` and
//! `--manifest-path` are found, `init`, usage errors of dbverify and dbrollback, both
//! invocation forms, JSON Lines, `runs show`, and snapshots of every `--help` and of a few
//! transcripts.

use std::path::Path;

use dbsafe_tests::{Backend, Project, Run, TestDb, command_in, dbsafe_in, each_backend, run, tree};

const USERS_UP: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n";
const USERS_DOWN: &str = "DROP TABLE users;\n";
const POSTS_UP: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, title VARCHAR(50));\n";
const POSTS_DOWN: &str = "DROP TABLE posts;\n";

fn two_migrations(p: &Project) {
    p.migration("2024-01-01-000001_users", USERS_UP, Some(USERS_DOWN))
        .migration("2024-01-01-000002_posts", POSTS_UP, Some(POSTS_DOWN));
}

/// The message of the one JSON error line of a failed command; checks the line's exit code,
/// that it is the only line on stdout, and that stderr has the same error.
#[track_caller]
fn json_error(run: &Run) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {run:?}");
    let error: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(error["type"], "error", "{run:?}");
    assert_eq!(error["exit_code"], run.code, "{run:?}");
    let message = error["message"].as_str().expect("message").to_owned();
    assert!(
        run.stderr
            .contains(&format!("error: {}", message.lines().next().unwrap())),
        "{run:?}"
    );
    message
}

/// Runs `args` in human and JSON mode, expecting `code` each time and that nothing was
/// created (no file in the project, no table in the database); returns the JSON message.
#[track_caller]
fn refused_cleanly(p: &Project, args: &[&str], code: i32) -> String {
    let before = tree(p.path());
    let human = p.dbsafe(args);
    human.expect_code(code);
    assert!(human.stdout.is_empty(), "{human:?}");
    assert!(human.stderr.starts_with("error: "), "{human:?}");
    let mut json_args = args.to_vec();
    json_args.extend(["--message-format", "json"]);
    let json = p.dbsafe(&json_args);
    json.expect_code(code);
    let message = json_error(&json);
    assert_eq!(
        human.stderr.trim_end(),
        format!("error: {message}"),
        "human and JSON report the same error"
    );
    assert_eq!(tree(p.path()), before, "a refused command created files");
    assert!(!p.path().join(".dbsafe").exists());
    assert_nothing_in_db(&p.db);
    message
}

#[track_caller]
fn assert_nothing_in_db(db: &TestDb) {
    if db.backend == Backend::Sqlite {
        assert!(!Path::new(&db.name).exists(), "{} was created", db.name);
    } else {
        for table in ["dbsafe_runs", "dbsafe_meta", "__diesel_schema_migrations"] {
            assert!(!db.has_table(table), "{table} was created");
        }
    }
}

fn config_path(p: &Project) -> String {
    p.path().join("dbsafe.toml").display().to_string()
}

fn write_test_config(p: &Project, rest: &str) {
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.test]\nurl = \"{}\"\nenvironment = \"test\"\n{rest}",
            p.db.url
        ),
    );
}

// ---------------------------------------------------------------------------------------
// Bad input

#[test]
fn malformed_toml() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    write_test_config(&p, "[apply\non-failure = \"stop\"\n");
    for command in [&["apply"][..], &["status"], &["runs"]] {
        let message = refused_cleanly(&p, command, 2);
        assert!(
            message.contains(&format!("{}:4: TOML syntax error", config_path(&p))),
            "{message}"
        );
    }
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    write_test_config(&p, "protcted = false\n");
    let message = refused_cleanly(&p, &["apply"], 2);
    let file = config_path(&p);
    assert!(
        message.contains(&format!(
            "{file}:4: key `targets.test.protcted`: unknown key `protcted`"
        )),
        "{message}"
    );
    assert!(message.contains("did you mean `protected`?"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    write_test_config(
        &p,
        "protcted = true\n\n[apply]\nlock-wiat = \"5s\"\non-failure = \"nope\"\nlock-retries = \"3\"\nlock-timeout = \"5 parsecs\"\n",
    );
    let message = refused_cleanly(&p, &["apply"], 2);
    let file = config_path(&p);
    let expected = [
        (4, "targets.test.protcted", "did you mean `protected`?"),
        (7, "apply.lock-wiat", "did you mean `lock-wait`?"),
        (8, "apply.on-failure", "\"revert\""),
        (9, "apply.lock-retries", "integer"),
        (10, "apply.lock-timeout", "5 parsecs"),
    ];
    for (line, key, hint) in expected {
        let found = message
            .lines()
            .find(|l| l.contains(&format!("{file}:{line}: key `{key}`")))
            .unwrap_or_else(|| panic!("line {line} ({key}) is not reported:\n{message}"));
        assert!(found.contains(hint), "{found}");
    }
    assert_eq!(message.lines().count(), 1 + expected.len(), "{message}");
}

each_backend!(missing_migrations_dir);

fn missing_migrations_dir(backend: Backend) {
    let p = Project::new(backend);
    std::fs::remove_dir(p.path().join("migrations")).unwrap();
    for command in [&["apply"][..], &["status"]] {
        let message = refused_cleanly(&p, command, 2);
        let dir = p.path().join("migrations").display().to_string();
        assert!(
            message.contains(&format!("migrations directory {dir} does not exist")),
            "{message}"
        );
        assert!(message.contains("migrations-dir"), "{message}");
    }
}

#[test]
fn unreachable_servers() {
    for url in [
        "postgres://app:pw-must-not-show@127.0.0.1:1/appdb",
        "mysql://app:pw-must-not-show@127.0.0.1:1/appdb",
    ] {
        let p = Project::new(Backend::Sqlite);
        two_migrations(&p);
        p.file(
            "dbsafe.toml",
            &format!("[targets.test]\nurl = \"{url}\"\nenvironment = \"test\"\n"),
        );
        let shown = url.replace("pw-must-not-show", "***");
        for command in [
            &["apply"][..],
            &["status"],
            &["runs"],
            &["runs", "show", "20261121T153012Z-7f3a"],
        ] {
            let message = refused_cleanly(&p, command, 1);
            assert!(
                message.starts_with(&format!("cannot connect to {shown}: ")),
                "{message}"
            );
            assert!(
                message.contains("check that the server is running"),
                "{message}"
            );
            assert!(!message.contains("pw-must-not-show"), "{message}");
        }
    }
}

#[test]
fn wrong_scheme_is_not_a_sqlite_file() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let unknown = |scheme: &str| {
        format!(
            "has an unknown scheme `{scheme}`: use postgres://, mysql://, mariadb:// or sqlite://"
        )
    };
    let malformed = |scheme: &str| {
        format!("is not a valid {scheme} URL: write it as {scheme}://user:password@host")
    };
    for (url, expected) in [
        (
            "postgress://app:pw-must-not-show@127.0.0.1/appdb",
            unknown("postgress"),
        ),
        ("mysq://root@127.0.0.1/appdb", unknown("mysq")),
        // A known scheme without `//`: said so, with the form to write, password hidden.
        (
            "postgres:/app:pw-must-not-show@127.0.0.1/appdb",
            malformed("postgres"),
        ),
        (
            "mysql//app:pw-must-not-show@127.0.0.1/appdb",
            malformed("mysql"),
        ),
        // No `:` at all: a relative SQLite path, whose directory does not exist.
        ("postgres//127.0.0.1/appdb", "does not exist".to_owned()),
    ] {
        p.file(
            "dbsafe.toml",
            &format!("[targets.test]\nurl = \"{url}\"\nenvironment = \"test\"\n"),
        );
        let message = refused_cleanly(&p, &["apply"], 2);
        assert!(message.contains(&expected), "{message}");
        assert!(!message.contains("pw-must-not-show"), "{message}");
    }
    // Nothing named like any of those URLs appeared anywhere in the project.
    assert!(
        tree(p.path())
            .iter()
            .all(|f| !f.contains("postgres") && !f.contains("mysq") && !f.contains("appdb")),
        "{:?}",
        tree(p.path())
    );
}

#[test]
fn sqlite_directory_that_does_not_exist() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    p.file(
        "dbsafe.toml",
        "[targets.test]\nurl = \"sqlite://nowhere/app.db\"\nenvironment = \"test\"\n",
    );
    let message = refused_cleanly(&p, &["apply"], 2);
    let file = p.path().join("nowhere/app.db").display().to_string();
    assert!(
        message.contains(&format!("SQLite database {file} does not exist")),
        "{message}"
    );
    assert!(!p.path().join("nowhere").exists());
    // status only reads: it says the file does not exist yet rather than creating it.
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(status.stdout.contains("does not exist yet"), "{status:?}");
    assert!(!p.path().join("nowhere").exists(), "{status:?}");
}

#[test]
fn no_database_url() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    std::fs::remove_file(p.path().join("dbsafe.toml")).unwrap();
    for command in [&["apply"][..], &["status"], &["runs"]] {
        let message = refused_cleanly(&p, command, 2);
        assert!(
            message.contains("target `default` has no database URL"),
            "{message}"
        );
        assert!(message.contains("DATABASE_URL"), "{message}");
    }
    // A target reading another variable names that one.
    p.file(
        "dbsafe.toml",
        "[targets.ci]\nurl-env = \"CI_DATABASE_URL\"\nenvironment = \"test\"\n",
    );
    let message = refused_cleanly(&p, &["apply"], 2);
    assert!(message.contains("target `ci`"), "{message}");
    assert!(message.contains("CI_DATABASE_URL"), "{message}");
}

#[test]
fn unknown_target() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let message = refused_cleanly(&p, &["apply", "--target", "tset"], 2);
    assert!(message.contains("no target named `tset`"), "{message}");
    assert!(message.contains("known: test"), "{message}");
}

#[test]
fn usage_errors_exit_2_in_both_formats() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let human = p.dbsafe(&["apply", "--bogus"]);
    human.expect_code(2);
    assert!(human.stderr.contains("--bogus"), "{human:?}");
    let json = p.dbsafe(&["apply", "--message-format", "json", "--bogus"]);
    json.expect_code(2);
    assert!(json_error(&json).contains("--bogus"));
    let json = p.dbsafe(&["--message-format=json", "runs", "show"]);
    json.expect_code(2);
    assert!(json_error(&json).contains("<RUN>"));
    assert!(!Path::new(&p.db.name).exists());
}

#[test]
fn unknown_run_id_lists_the_runs() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let first = p.apply(&[]);
    first.expect_code(0);
    let second = p.apply(&[]);
    second.expect_code(0);
    let unknown = "20200101T000000Z-dead";
    let run = p.dbsafe(&["runs", "show", unknown, "--message-format", "json"]);
    run.expect_code(2);
    let message = json_error(&run);
    assert!(message.contains(&format!("`{unknown}`")), "{message}");
    assert!(message.contains(&first.run_id()), "{message}");
    assert!(message.contains(&second.run_id()), "{message}");
    // Not an id at all: refused for its form, naming the form.
    for id in ["NOPE", "", "../x"] {
        let run = p.dbsafe(&["runs", "show", id, "--message-format", "json"]);
        run.expect_code(2);
        let message = json_error(&run);
        assert!(
            message.contains(&format!("`{id}` is not an id")),
            "{message}"
        );
        assert!(message.contains("YYYYMMDDTHHMMSSZ-xxxx"), "{message}");
    }
    // A prefix of both ids: ambiguous, and said so.
    let run = p.dbsafe(&["runs", "show", "20", "--message-format", "json"]);
    run.expect_code(2);
    let message = json_error(&run);
    assert!(message.contains("start of several runs"), "{message}");
    assert!(message.contains(&first.run_id()), "{message}");
    assert!(message.contains(&second.run_id()), "{message}");
    // A database without a ledger: no runs yet.
    let fresh = Project::new(Backend::Sqlite);
    two_migrations(&fresh);
    let run = fresh.dbsafe(&["runs", "show", unknown]);
    run.expect_code(2);
    assert!(run.stderr.contains("does not exist"), "{run:?}");
    assert!(!Path::new(&fresh.db.name).exists());
    fresh
        .db
        .execute("CREATE TABLE app (id INTEGER PRIMARY KEY)");
    let run = fresh.dbsafe(&["runs", "show", unknown]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "no run `{unknown}` in the ledger of target `test`; it has no runs yet"
        )),
        "{run:?}"
    );
    assert!(!fresh.db.has_table("dbsafe_runs"));
}

// ---------------------------------------------------------------------------------------
// Finding the configuration

each_backend!(dotenv_provides_database_url);

fn dotenv_provides_database_url(backend: Backend) {
    let p = Project::new(backend);
    two_migrations(&p);
    std::fs::remove_file(p.path().join("dbsafe.toml")).unwrap();
    p.file(
        ".env",
        &format!("# local settings\nDATABASE_URL={}\n", p.db.url),
    );
    let run = p.apply(&[]);
    run.expect_code(0);
    assert!(p.db.has_table("users") && p.db.has_table("posts"));
    assert_eq!(
        p.db.strings(&format!(
            "SELECT target AS v FROM dbsafe_runs WHERE id = '{}'",
            run.run_id()
        )),
        ["default"]
    );
    assert_eq!(
        p.db.strings("SELECT environment AS v FROM dbsafe_runs"),
        ["development"]
    );
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("target: default (development)"),
        "{}",
        status.stdout
    );

    // A variable already set wins over .env, as with diesel.
    let other = TestDb::new(backend, p.path());
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply", "--message-format", "json", "--rebind"])
        .env("DATABASE_URL", &other.url);
    run_ok(cmd);
    assert!(other.has_table("users"));
    assert_eq!(p.db.count("dbsafe_runs"), 1);
}

#[track_caller]
fn run_ok(cmd: std::process::Command) -> Run {
    let out = run(cmd);
    out.expect_code(0);
    out
}

#[test]
fn diesel_toml_migrations_directory_is_honoured() {
    let p = Project::new(Backend::Sqlite);
    std::fs::remove_dir(p.path().join("migrations")).unwrap();
    p.file(
        "diesel.toml",
        "[print_schema]\nfile = \"src/schema.rs\"\n\n[migrations_directory]\ndir = \"db/migrations\"\n",
    );
    p.file("db/migrations/2024-01-01-000001_users/up.sql", USERS_UP)
        .file("db/migrations/2024-01-01-000001_users/down.sql", USERS_DOWN);
    p.apply(&[]).expect_code(0);
    assert!(p.db.has_table("users"));
    assert!(!p.path().join("migrations").exists());

    // migrations-dir in dbsafe.toml wins over diesel.toml.
    p.file("other/2024-01-01-000002_posts/up.sql", POSTS_UP);
    p.file(
        "dbsafe.toml",
        &format!(
            "migrations-dir = \"other\"\n\n[targets.test]\nurl = \"{}\"\nenvironment = \"test\"\n",
            p.db.url
        ),
    );
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("2024-01-01-000002_posts  pending"),
        "{}",
        status.stdout
    );
    assert!(
        !status.stdout.contains("2024-01-01-000001_users  applied"),
        "{}",
        status.stdout
    );
}

#[test]
fn dbsafe_toml_is_found_from_a_subdirectory() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    // A relative SQLite URL is relative to dbsafe.toml, not to the working directory.
    p.file(
        "dbsafe.toml",
        "[targets.test]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n",
    );
    let deep = p.path().join("src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    let run = dbsafe_in(&deep, &["apply", "--message-format", "json"], &[]);
    run.expect_code(0);
    assert!(p.path().join("app.db").exists());
    assert!(p.path().join(".dbsafe/snapshots/journal.jsonl").exists());
    assert_eq!(
        tree(&deep),
        Vec::<String>::new(),
        "nothing in the subdirectory"
    );
    let status = dbsafe_in(&deep, &["status"], &[]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("2 applied, 0 pending"),
        "{}",
        status.stdout
    );
}

#[test]
fn explicit_config_wins() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    // The dbsafe.toml found by walking up points at another database.
    p.file(
        "dbsafe.toml",
        "[targets.decoy]\nurl = \"sqlite://decoy.db\"\nenvironment = \"test\"\n",
    );
    // Paths in the --config file are relative to that file.
    p.file(
        "config/ci.toml",
        &format!(
            "migrations-dir = \"../migrations\"\n\n[targets.test]\nurl = \"{}\"\nenvironment = \"test\"\n",
            p.db.url
        ),
    );
    p.apply(&["--config", "config/ci.toml"]).expect_code(0);
    assert!(p.db.has_table("users"));
    assert!(!p.path().join("decoy.db").exists());
    assert!(
        p.path()
            .join("config/.dbsafe/snapshots/journal.jsonl")
            .exists()
    );

    let missing = p.path().join("config/nope.toml");
    let message = refused_cleanly(
        &Project::new(Backend::Sqlite),
        &["status", "--config", missing.to_str().unwrap()],
        2,
    );
    assert!(
        message.contains(&format!(
            "configuration file {} does not exist",
            missing.display()
        )),
        "{message}"
    );
}

#[test]
fn manifest_path_finds_the_workspace_root() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    p.file(
        "Cargo.toml",
        "[workspace]\nmembers = [\"app\"]\nresolver = \"2\"\n",
    )
    .file(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .file("app/src/lib.rs", "");
    let elsewhere = tempfile::tempdir().unwrap();
    let manifest = p.path().join("app/Cargo.toml");
    let run = dbsafe_in(
        elsewhere.path(),
        &[
            "apply",
            "--message-format",
            "json",
            "--manifest-path",
            manifest.to_str().unwrap(),
        ],
        &[],
    );
    run.expect_code(0);
    assert!(p.db.has_table("users") && p.db.has_table("posts"));
    assert!(p.path().join(".dbsafe/snapshots/journal.jsonl").exists());
    assert_eq!(tree(elsewhere.path()), Vec::<String>::new());

    let bad = dbsafe_in(
        elsewhere.path(),
        &["status", "--manifest-path", "no/such/Cargo.toml"],
        &[],
    );
    bad.expect_code(2);
    assert!(bad.stderr.contains("no/such/Cargo.toml"), "{}", bad.stderr);
    assert!(bad.stderr.contains("--manifest-path"), "{}", bad.stderr);
}

// ---------------------------------------------------------------------------------------
// init

#[test]
fn init_writes_a_working_config_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join(".gitignore"), "/target").unwrap();
    std::fs::create_dir_all(root.join("migrations/2024-01-01-000001_users")).unwrap();
    std::fs::write(
        root.join("migrations/2024-01-01-000001_users/up.sql"),
        USERS_UP,
    )
    .unwrap();

    let init = dbsafe_in(root, &["init"], &[]);
    init.expect_code(0);
    assert!(init.stderr.contains("wrote "), "{init:?}");
    let config = std::fs::read_to_string(root.join("dbsafe.toml")).unwrap();
    assert!(config.contains("[targets.dev]"), "{config}");
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore")).unwrap(),
        "/target\n# dbsafe's local snapshots, journal and target bindings\n.dbsafe/\n"
    );

    // The written file parses and works: status and apply with DATABASE_URL.
    let env = [("DATABASE_URL", "sqlite://app.db")];
    let status = dbsafe_in(root, &["status"], &env);
    status.expect_code(0);
    assert!(
        status.stdout.contains("target: dev (development)"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("0 applied, 1 pending"),
        "{}",
        status.stdout
    );
    dbsafe_in(root, &["apply"], &env).expect_code(0);
    assert!(root.join("app.db").exists());

    // A second init: refused, nothing changed.
    std::fs::write(root.join("dbsafe.toml"), format!("{config}# edited\n")).unwrap();
    let again = dbsafe_in(root, &["init", "--message-format", "json"], &[]);
    again.expect_code(2);
    let message = json_error(&again);
    assert!(message.contains("already exists"), "{message}");
    assert!(message.contains("never overwrites"), "{message}");
    assert_eq!(
        std::fs::read_to_string(root.join("dbsafe.toml")).unwrap(),
        format!("{config}# edited\n")
    );
    // .gitignore already ignores .dbsafe/: not added twice.
    std::fs::remove_file(root.join("dbsafe.toml")).unwrap();
    let json = dbsafe_in(root, &["init", "--message-format", "json"], &[]);
    json.expect_code(0);
    let event: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(event["type"], "init");
    assert_eq!(event["gitignore_updated"], false);
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore"))
            .unwrap()
            .matches(".dbsafe/")
            .count(),
        1
    );
}

#[test]
fn init_uses_diesel_migrations_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("diesel.toml"),
        "[migrations_directory]\ndir = \"db/migrations\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("db/migrations/2024-01-01-000001_users")).unwrap();
    std::fs::write(
        root.join("db/migrations/2024-01-01-000001_users/up.sql"),
        USERS_UP,
    )
    .unwrap();
    dbsafe_in(root, &["init"], &[]).expect_code(0);
    let config = std::fs::read_to_string(root.join("dbsafe.toml")).unwrap();
    assert!(
        config.contains("migrations-dir = \"db/migrations\""),
        "{config}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".gitignore")).unwrap(),
        "# dbsafe's local snapshots, journal and target bindings\n.dbsafe/\n"
    );
    let status = dbsafe_in(root, &["status"], &[("DATABASE_URL", "app.db")]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("2024-01-01-000001_users  pending"),
        "{}",
        status.stdout
    );
}

// ---------------------------------------------------------------------------------------
// Usage errors of cargo dbverify and cargo dbrollback, and the invocation forms

#[test]
fn dbverify_unknown_check_is_bad_usage_naming_the_known_ones() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    write_test_config(
        &p,
        "[[invariant]]\nname = \"users exist\"\nsql = \"SELECT count(*) FROM users\"\nexpect = \">= 0\"\n",
    );
    p.dbsafe(&["apply"]).expect_code(0);
    let before = tree(p.path());
    let known = "drift, fk-orphans, duplicates, row-counts, checksums, rls-enabled, \
                 triggers-present, migration-checksums, users exist";

    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--only", "fk-orphans", "--only", "nope"]);
    let out = run(cmd);
    out.expect_code(2);
    assert_eq!(
        out.stderr.lines().next().unwrap_or(""),
        format!("error: --only nope: no such check; known: {known}"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");

    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--only", "nope", "--message-format", "json"]);
    let out = run(cmd);
    out.expect_code(2);
    assert_eq!(
        json_error(&out),
        format!("--only nope: no such check; known: {known}")
    );

    // A misspelt flag is clap's usage error, also exit 2.
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--drfit"]);
    let out = run(cmd);
    out.expect_code(2);
    assert!(out.stderr.contains("--drfit"), "{out:?}");
    assert_eq!(tree(p.path()), before);

    // Both invocation forms run the checks: cargo's (`cargo-dbverify dbverify ...`) and the
    // binary alone; the named invariant runs by itself.
    for args in [
        &["dbverify", "--only", "users exist"][..],
        &["--only", "users exist"][..],
    ] {
        let mut cmd = p.command("cargo-dbverify");
        cmd.args(args);
        let out = run(cmd);
        out.expect_code(0);
        assert!(out.stderr.is_empty(), "{out:?}");
        assert!(
            out.stdout.starts_with("users exist  pass   0\n"),
            "{args:?}: {out:?}"
        );
    }
    assert_eq!(tree(p.path()), before);
}

/// `cargo dbrollback` with no run and no --last, or with flags that do not go together:
/// a usage error saying what to pass, in both invocation forms and both output formats,
/// and nothing created.
#[test]
fn dbrollback_needs_a_run_or_last() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let before = tree(p.path());
    for args in [&["dbrollback"][..], &[][..]] {
        let human = run({
            let mut cmd = p.command("cargo-dbrollback");
            cmd.args(args);
            cmd
        });
        human.expect_code(2);
        assert!(human.stdout.is_empty(), "{human:?}");
        assert_eq!(
            human.stderr,
            "error: name the run to roll back (cargo dbrollback RUN), or pass --last; --list shows the candidates\n"
        );
        let json = run({
            let mut cmd = p.command("cargo-dbrollback");
            cmd.args(args).args(["--message-format", "json"]);
            cmd
        });
        json.expect_code(2);
        let message = json_error(&json);
        assert!(
            message.starts_with("name the run to roll back (cargo dbrollback RUN), or pass --last"),
            "{message}"
        );
    }
    for args in [
        &["dbrollback", "20261121T153012Z-7f3a", "--last"][..],
        &["dbrollback", "--list", "--restore"],
        &["dbrollback", "--last", "--restore", "--cascade"],
        &[
            "dbrollback",
            "--last",
            "--restore",
            "--to",
            "20240101000001",
        ],
    ] {
        let mut cmd = p.command("cargo-dbrollback");
        cmd.args(args);
        let out = run(cmd);
        out.expect_code(2);
        assert!(
            out.stderr.starts_with("error: the argument"),
            "{args:?}: {out:?}"
        );
    }
    assert_eq!(tree(p.path()), before, "a refused command created files");
    assert_nothing_in_db(&p.db);
}

#[test]
fn both_invocation_forms() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let mut direct = p.command("cargo-dbsafe");
    direct.args(["apply", "--message-format", "json"]);
    let applied = run_ok(direct);
    assert!(p.db.has_table("posts"));
    assert!(applied.run_id().len() > 16);

    let via_cargo = p.dbsafe(&["status"]);
    via_cargo.expect_code(0);
    let mut direct = p.command("cargo-dbsafe");
    direct.arg("status");
    let direct = run_ok(direct);
    assert_eq!(direct.stdout, via_cargo.stdout);
    assert!(
        direct.stdout.contains("2 applied, 0 pending"),
        "{}",
        direct.stdout
    );

    let mut version = p.command("cargo-dbsafe");
    version.args(["dbsafe", "--version"]);
    let version = run_ok(version);
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
}

// ---------------------------------------------------------------------------------------
// JSON Lines and runs show

each_backend!(json_lines_are_well_formed, runs_show_by_id_and_prefix);

fn json_lines_are_well_formed(backend: Backend) {
    let p = Project::new(backend);
    two_migrations(&p);
    let run = p.apply(&[]);
    run.expect_code(0);
    assert!(run.stderr.is_empty(), "{run:?}");
    let run_id = run.run_id();
    let id_shape = |id: &str| {
        id.len() == 21
            && id[..8].chars().all(|c| c.is_ascii_digit())
            && &id[8..9] == "T"
            && id[9..15].chars().all(|c| c.is_ascii_digit())
            && &id[15..17] == "Z-"
            && id[17..].chars().all(|c| c.is_ascii_hexdigit())
    };
    assert!(id_shape(&run_id), "{run_id}");
    let mut types = Vec::new();
    for line in run.stdout.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let kind = event["type"]
            .as_str()
            .unwrap_or_else(|| panic!("no type: {line}"));
        assert_eq!(event["run_id"], run_id.as_str(), "{line}");
        assert!(
            event["at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        types.push(kind.to_owned());
    }
    assert_eq!(types.first().map(String::as_str), Some("run.started"));
    assert_eq!(types.last().map(String::as_str), Some("run.succeeded"));
    assert_eq!(
        types.iter().filter(|t| *t == "migration.applied").count(),
        2,
        "{types:?}"
    );
    // The same events are in the ledger, in order.
    let stored = p.db.strings(&format!(
        "SELECT event_type AS v FROM dbsafe_events WHERE run_id = '{run_id}' ORDER BY seq"
    ));
    assert_eq!(stored, types);

    let status = p.dbsafe(&["status", "--message-format", "json"]);
    status.expect_code(0);
    let lines: Vec<serde_json::Value> = status
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "status");
    assert_eq!(lines[0]["migrations"].as_array().unwrap().len(), 2);

    p.apply(&[]).expect_code(0);
    let runs = p.dbsafe(&["runs", "--message-format", "json"]);
    runs.expect_code(0);
    let rows: Vec<serde_json::Value> = runs
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["type"] == "run" && r["status"] == "succeeded")
    );
    assert_eq!(rows[1]["id"], run_id.as_str(), "newest first");
}

/// The shortest prefix of `id` that `other` does not share.
fn unique_prefix<'a>(id: &'a str, other: &str) -> &'a str {
    let common = id
        .chars()
        .zip(other.chars())
        .take_while(|(a, b)| a == b)
        .count();
    &id[..common + 1]
}

fn runs_show_by_id_and_prefix(backend: Backend) {
    let p = Project::new(backend);
    two_migrations(&p);
    let first = p.apply(&[]);
    first.expect_code(0);
    let first_id = first.run_id();
    let second = p.apply(&[]);
    second.expect_code(0);
    let prefix = unique_prefix(&first_id, &second.run_id());

    for id in [first_id.as_str(), prefix] {
        let shown = p.dbsafe(&["runs", "show", id, "--message-format", "json"]);
        shown.expect_code(0);
        let detail: serde_json::Value = serde_json::from_str(shown.stdout.trim()).unwrap();
        assert_eq!(detail["type"], "run");
        assert_eq!(detail["run"]["id"], first_id.as_str());
        assert_eq!(detail["run"]["status"], "succeeded");
        assert_eq!(detail["run"]["operator"], "tester");
        let steps = detail["steps"].as_array().unwrap();
        let versions: Vec<&str> = steps
            .iter()
            .map(|s| s["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["20240101000001", "20240101000002"]);
        assert!(steps.iter().all(|s| s["status"] == "applied"
            && s["up_checksum"].as_str().unwrap().len() == 64));
        let events: Vec<&str> = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            events,
            [
                "run.started",
                "migration.started",
                "migration.applied",
                "migration.started",
                "migration.applied",
                "run.succeeded"
            ]
        );

        let human = p.dbsafe(&["runs", "show", id]);
        human.expect_code(0);
        let text = &human.stdout;
        assert!(
            text.starts_with(&format!("run {first_id} (apply, succeeded)")),
            "{text}"
        );
        assert!(text.contains("operator:  tester on "), "{text}");
        assert!(
            text.contains("1. up   applied  2024-01-01-000001_users"),
            "{text}"
        );
        assert!(
            text.contains("2. up   applied  2024-01-01-000002_posts"),
            "{text}"
        );
        assert!(text.contains("run.succeeded"), "{text}");
    }
    // The no-op run has no steps.
    let shown = p.dbsafe(&["runs", "show", &second.run_id()]);
    shown.expect_code(0);
    assert!(shown.stdout.contains("steps\n  none\n"), "{}", shown.stdout);
}

// ---------------------------------------------------------------------------------------
// Snapshots: help and transcripts

/// Replaces what changes from run to run (temp paths, run ids, times, durations, host names,
/// database names) with placeholders, then snapshots.
macro_rules! snapshot {
    ($name:expr, $text:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d{8}T\d{6}Z-[0-9a-f]{4}", "[RUN_ID]");
        settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]");
        settings.add_filter(r"dbsafe_t\d+_\d+_\d+", "[DB]");
        settings.add_filter(r"\d+ ms", "[N] ms");
        settings.add_filter(r"(operator: +tester on ).*", "$1[HOST]");
        settings.add_filter(r"(dbsafe: +)\d+\.\d+\.\d+\S*", "$1[VERSION]");
        settings.bind(|| insta::assert_snapshot!($name, $text));
    }};
}

fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command_in(dir.path(), "cargo-dbsafe");
    cmd.args(args);
    let out = run(cmd);
    out.expect_code(0);
    assert!(out.stderr.is_empty(), "{out:?}");
    out.stdout
}

#[test]
fn help_snapshots() {
    snapshot!("help_dbsafe", help(&["dbsafe", "--help"]));
    let short = help(&["dbsafe", "-h"]);
    // -h and --help describe the command the same way (not the core crate's description).
    assert!(
        short.starts_with("Safe, recorded diesel migrations: apply as runs with ids"),
        "{short}"
    );
    snapshot!("help_dbsafe_short", short);
    for sub in ["init", "status", "apply", "runs", "resolve"] {
        snapshot!(format!("help_{sub}"), help(&["dbsafe", sub, "--help"]));
    }
    snapshot!(
        "help_runs_show",
        help(&["dbsafe", "runs", "show", "--help"])
    );
    // `help SUBCOMMAND` and the direct form print the same text.
    assert_eq!(
        help(&["dbsafe", "help", "apply"]),
        help(&["dbsafe", "apply", "--help"])
    );
    assert_eq!(
        help(&["apply", "--help"]),
        help(&["dbsafe", "apply", "--help"])
    );
}

#[test]
fn help_snapshot_dbverify() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let mut cmd = command_in(dir.path(), "cargo-dbverify");
        cmd.args(args);
        let out = run(cmd);
        out.expect_code(0);
        assert!(out.stderr.is_empty(), "{out:?}");
        out.stdout
    };
    let long = help(&["dbverify", "--help"]);
    snapshot!("help_dbverify", long);
    // The direct form prints the same text.
    assert_eq!(help(&["--help"]), long);
    // -h describes the command too (not the core crate), with every flag.
    let short = help(&["dbverify", "-h"]);
    assert!(
        short.starts_with("Verify invariants on a live database: built-in checks"),
        "{short}"
    );
    for flag in [
        "--only <NAME>",
        "--against <RUN|SNAPSHOT>",
        "--drift",
        "--junit <FILE>",
    ] {
        assert!(short.contains(flag), "{flag}: {short}");
    }
    assert_eq!(tree(dir.path()), Vec::<String>::new());
}

#[test]
fn help_snapshot_dbrollback() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let mut cmd = command_in(dir.path(), "cargo-dbrollback");
        cmd.args(args);
        let out = run(cmd);
        out.expect_code(0);
        assert!(out.stderr.is_empty(), "{out:?}");
        out.stdout
    };
    let long = help(&["dbrollback", "--help"]);
    snapshot!("help_dbrollback", long);
    // The direct form prints the same text.
    assert_eq!(help(&["--help"]), long);
    assert!(
        help(&["dbrollback", "-h"]).starts_with("Roll back one run by its id"),
        "-h describes the command"
    );
}

/// A transcript of commands in a project: each command line, its exit code, stdout and
/// stderr, with the project path replaced by `[PROJECT]`.
struct Transcript<'a> {
    project: &'a Project,
    text: String,
}

impl Transcript<'_> {
    fn new(project: &Project) -> Transcript<'_> {
        Transcript {
            project,
            text: String::new(),
        }
    }

    fn run(&mut self, args: &[&str]) -> Run {
        let out = self.project.dbsafe(args);
        let root = self.project.path().display().to_string();
        let clean = |s: &str| s.replace(&root, "[PROJECT]");
        self.text.push_str(&format!(
            "$ cargo dbsafe {}\nexit code: {}\n--- stdout\n{}--- stderr\n{}\n",
            clean(&args.join(" ")),
            out.code,
            clean(&out.stdout),
            clean(&out.stderr)
        ));
        out
    }
}

#[test]
fn transcript_apply_status_runs() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    let mut t = Transcript::new(&p);
    t.run(&["status"]).expect_code(0);
    t.run(&["apply"]).expect_code(0);
    t.run(&["status"]).expect_code(0);
    t.run(&["apply"]).expect_code(0);
    let runs = t.run(&["runs"]);
    runs.expect_code(0);
    assert!(runs.stdout.contains("(1 no-op run(s)"), "{runs:?}");
    let runs = t.run(&["runs", "--all"]);
    runs.expect_code(0);
    let oldest = runs
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    t.run(&["runs", "show", &oldest]).expect_code(0);
    snapshot!("transcript_apply_status_runs", t.text);
    assert!(p.db.has_table("posts"));
    assert_eq!(p.db.count("dbsafe_runs"), 2);
}

#[test]
fn transcript_failures_and_refusals() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    p.migration(
        "2024-01-01-000003_broken",
        "CREATE TABLE broken (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n",
        Some("DROP TABLE broken;\n"),
    );
    let mut t = Transcript::new(&p);
    t.run(&["apply"]).expect_code(1);
    assert!(!p.db.has_table("users") && !p.db.has_table("broken"));
    std::fs::remove_dir_all(p.path().join("migrations/2024-01-01-000003_broken")).unwrap();
    t.run(&["apply"]).expect_code(0);
    std::fs::write(
        p.path().join("migrations/2024-01-01-000001_users/up.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    t.run(&["apply"]).expect_code(3);
    t.run(&["status"]).expect_code(0);
    t.run(&["runs", "show", "NOPE"]).expect_code(2);
    write_test_config(
        &p,
        "protcted = true\n\n[apply]\nlock-wiat = \"5s\"\non-failure = \"nope\"\n",
    );
    t.run(&["apply"]).expect_code(2);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.prod]\nurl = \"{}\"\nenvironment = \"production\"\n",
            p.db.url
        ),
    );
    t.run(&["apply"]).expect_code(3);
    t.run(&["apply", "--target", "prod"]).expect_code(3);
    snapshot!("transcript_failures_and_refusals", t.text);
    assert_eq!(p.db.count("dbsafe_runs"), 2);
}

// ---------------------------------------------------------------------------------------
// setup, --database-url, --migration-dir, --last, completions, --version

each_backend!(setup_creates_the_missing_database_then_applies);

/// `setup --database-url URL --migration-dir DIR` on a database that does not exist yet:
/// `status` says to run setup (servers) or that apply creates it (SQLite); setup creates it
/// and applies the migrations of DIR; the target's own database is untouched.
fn setup_creates_the_missing_database_then_applies(backend: Backend) {
    let p = Project::new(backend);
    p.migration("2024-01-01-000001_users", USERS_UP, Some(USERS_DOWN));
    std::fs::rename(p.path().join("migrations"), p.path().join("migs")).unwrap();
    let fresh = format!("{}_fresh", p.db.name);
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", p.path().join("fresh.db").display()),
        Backend::Postgres => format!("{}/{fresh}", dbsafe_tests::pg_server()),
        Backend::Mysql => format!("{}/{fresh}", dbsafe_tests::mysql_server()),
    };
    let flags = ["--database-url", url.as_str(), "--migration-dir", "migs"];
    let status = p.dbsafe(&[&["status"][..], &flags].concat());
    if backend == Backend::Sqlite {
        status.expect_code(0);
        assert!(
            status.stdout.contains("next: cargo dbsafe plan"),
            "{status:?}"
        );
    } else {
        status.expect_code(1);
        assert!(
            status.stderr.contains("`cargo dbsafe setup` creates it"),
            "{status:?}"
        );
    }
    // A protected target is confirmed before anything is created.
    p.file(
        "prod.toml",
        "[targets.prod]\nurl-env = \"PROD_URL\"\nenvironment = \"production\"\n",
    );
    let refused = p.dbsafe(
        &[
            &["setup", "--config", "prod.toml", "--target", "prod"][..],
            &flags,
        ]
        .concat(),
    );
    refused.expect_code(3);
    let still_missing = p.dbsafe(&[&["status"][..], &flags].concat());
    assert_eq!(still_missing.code, status.code, "{still_missing:?}");
    if backend == Backend::Sqlite {
        assert!(!p.path().join("fresh.db").exists());
    }
    p.dbsafe(&[&["setup"][..], &flags].concat()).expect_code(0);
    let status = p.dbsafe(&[&["status", "--message-format", "json"][..], &flags].concat());
    status.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["migrations"][0]["state"], "applied", "{report}");
    assert!(report["ledger"].as_bool().unwrap(), "{report}");
    assert!(
        !p.db.has_table("users"),
        "the target's own database was touched"
    );
    // Run again: nothing to create, a no-op apply.
    p.dbsafe(&[&["setup"][..], &flags].concat()).expect_code(0);
    match backend {
        Backend::Sqlite => assert!(p.path().join("fresh.db").is_file()),
        Backend::Postgres => {
            p.db.execute(&format!("DROP DATABASE \"{fresh}\" WITH (FORCE)"))
        }
        Backend::Mysql => p.db.execute(&format!("DROP DATABASE `{fresh}`")),
    }
}

#[test]
fn last_completions_init_and_version() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    p.apply(&[]).expect_code(0);
    let newest = p.apply(&[]).run_id();
    let show = p.dbsafe(&["runs", "show", "--last", "--message-format", "json"]);
    show.expect_code(0);
    let shown: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(shown["run"]["id"], newest.as_str());
    let listing = p.dbsafe(&["runs", "--message-format", "json"]);
    let counts: Vec<i64> = listing
        .events()
        .iter()
        .map(|r| r["migrations"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [0, 2]);

    p.dbsafe(&["snapshot", "verify", "--last"]).expect_code(2);
    let first = p.dbsafe(&["snapshot", "create"]);
    first.expect_code(0);
    assert!(first.stdout.contains("path: "), "{first:?}");
    let second = p.dbsafe(&["snapshot", "create", "--message-format", "json"]);
    let second_id = second.events()[0]["id"].as_str().unwrap().to_owned();
    let verify = p.dbsafe(&["snapshot", "verify", "--last", "--message-format", "json"]);
    verify.expect_code(0);
    assert_eq!(verify.events()[0]["snapshot_id"], second_id.as_str());
    let list = p.dbsafe(&["snapshot", "list"]);
    assert!(
        list.stdout.lines().next().unwrap().contains(&second_id),
        "{list:?}"
    );
    // dbverify --last compares with the newest snapshot: a row added since shows.
    p.db.execute("INSERT INTO users (id, name) VALUES (1, 'a')");
    let mut verify = p.command("cargo-dbverify");
    verify.args(["dbverify", "--last", "--message-format", "json"]);
    let verify = run(verify);
    let row_counts = verify
        .events()
        .into_iter()
        .find(|e| e["name"] == "row-counts")
        .unwrap_or_else(|| panic!("no row-counts check: {verify:?}"));
    assert!(row_counts.to_string().contains("users"), "{row_counts}");

    // Bad --migration-dir and --database-url: exit 2 naming the problem, nothing touched.
    let bad_dir = p.dbsafe(&["status", "--migration-dir", "no-such-dir"]);
    bad_dir.expect_code(2);
    assert!(
        bad_dir.stderr.contains("no-such-dir: no such directory"),
        "{bad_dir:?}"
    );
    let bad_url = p.dbsafe(&["status", "--database-url", "postgress://u:secret@h/db"]);
    bad_url.expect_code(2);
    assert!(!bad_url.stderr.contains("secret"), "{bad_url:?}");

    for shell in ["bash", "zsh", "fish"] {
        let out = p.dbsafe(&["completions", shell]);
        out.expect_code(0);
        for name in [
            "cargo-dbsafe",
            "cargo-dbverify",
            "cargo-dbrollback",
            "--database-url",
        ] {
            assert!(out.stdout.contains(name), "{shell}: {name}");
        }
    }

    let root = p.path().join("fresh");
    std::fs::create_dir_all(&root).unwrap();
    let init = dbsafe_in(&root, &["init"], &[]);
    init.expect_code(0);
    assert!(init.stderr.contains("cargo dbsafe setup"), "{init:?}");
    let config = std::fs::read_to_string(root.join("dbsafe.toml")).unwrap();
    assert!(
        config.contains("\nstatement-timeout = \"5m\"\n"),
        "{config}"
    );

    // Built from this checkout: `cargo-dbsafe 0.1.0 (1a2b3c4d5e6f 2026-11-30)`, a commit of
    // this repository (build.rs; the newest one unless committed since the last build).
    let version = p.dbsafe(&["--version"]);
    version.expect_code(0);
    let words: Vec<&str> = version.stdout.split_whitespace().collect();
    assert_eq!(words[..2], ["cargo-dbsafe", env!("CARGO_PKG_VERSION")]);
    let in_git = std::process::Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git {
        let commit = words[2].trim_start_matches('(');
        assert!(
            commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{version:?}"
        );
        let known = std::process::Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(
            known.success(),
            "{commit} is not a commit of this repository"
        );
    }
}

// ---------------------------------------------------------------------------------------
// progress

/// On a terminal (a pseudo-terminal from `script`), `snapshot create` and `snapshot verify
/// --deep` show their phase, the tables hashed and the time elapsed; piped, or in CI, nothing
/// but the report.
#[test]
fn progress_shows_on_a_terminal_only() {
    let p = Project::new(Backend::Sqlite);
    two_migrations(&p);
    p.apply(&[]).expect_code(0);
    let exe = dbsafe_tests::binary("cargo-dbsafe");
    let on_terminal = |args: &str| {
        let mut cmd = std::process::Command::new("script");
        cmd.args([
            "-qec",
            &format!("{} dbsafe {args}", exe.display()),
            "/dev/null",
        ])
        .current_dir(p.path())
        .env_remove("CI")
        .env("COLUMNS", "200")
        .env("DBSAFE_OPERATOR", "tester")
        .stdin(std::process::Stdio::null());
        run(cmd)
    };
    let created = on_terminal("snapshot create");
    assert_eq!(created.code, 0, "{created:?}");
    assert!(
        created.stdout.contains("taking a snapshot of test")
            && created.stdout.contains("table(s) hashed")
            && shows_elapsed(&created.stdout),
        "{created:?}"
    );
    let verified = on_terminal("snapshot verify --deep --last");
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(
        verified
            .stdout
            .contains("restoring into a scratch database")
            && verified
                .stdout
                .contains("comparing fingerprints with the manifest"),
        "{verified:?}"
    );

    // Piped (and CI=true, as Project::command sets): the report alone, no progress.
    let piped = p.dbsafe(&["snapshot", "create"]);
    piped.expect_code(0);
    assert!(piped.stderr.is_empty(), "{piped:?}");
    assert!(!piped.stdout.contains("hashed"), "{piped:?}");
    let mut no_ci = p.command("cargo-dbsafe");
    no_ci
        .env_remove("CI")
        .args(["dbsafe", "snapshot", "verify", "--deep", "--last"]);
    let no_ci = run(no_ci);
    assert_eq!(no_ci.code, 0, "{no_ci:?}");
    assert!(no_ci.stderr.is_empty(), "{no_ci:?}");
}

/// Whether a terminal transcript shows an elapsed time, as `(3s)`.
fn shows_elapsed(text: &str) -> bool {
    text.split('(').any(|part| {
        part.split_once("s)")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}
