//! Tests of dbsafe.toml discovery, parsing and validation.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The reference configuration shipped in `docs/`.
const REFERENCE: &str = include_str!("../../../docs/dbsafe.reference.toml");

/// Where [`parse`] pretends the file lives (nothing exists there, so no diesel.toml).
const FILE: &str = "/nonexistent-dbsafe-test/dbsafe.toml";

/// Parses `text` as if it were [`FILE`].
fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new(FILE), text)
}

/// The problems found in `text`, which must be invalid.
fn problems(text: &str) -> Vec<ConfigProblem> {
    match parse(text) {
        Err(ConfigError::Invalid { file, problems }) => {
            assert_eq!(file, Path::new(FILE));
            problems
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

/// The single problem found in `text`.
fn problem(text: &str) -> ConfigProblem {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

/// Writes `text` to `path`, creating its directory.
fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A temporary directory, with symlinks resolved so paths compare equal.
fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

#[test]
fn defaults_without_a_file() {
    let (_guard, root) = temp_dir();
    let config = Config::discover(&root, None, None).unwrap();
    assert_eq!(config.file, None);
    assert_eq!(config.root, root);
    assert_eq!(config.migrations_dir, root.join("migrations"));
    assert_eq!(config.snapshot_dir, root.join(".dbsafe/snapshots"));
    assert_eq!(config.default_target, None);
    let target = &config.targets["default"];
    assert_eq!(config.targets.len(), 1);
    assert_eq!(target.name, "default");
    assert_eq!(target.url, None);
    assert_eq!(target.url_env, "DATABASE_URL");
    assert_eq!(target.environment, Environment::Development);
    assert!(!target.protected);
    let apply = &config.apply;
    assert_eq!(apply.on_failure, FailurePolicy::Revert);
    assert_eq!(apply.snapshot, SnapshotPolicy::Protected);
    assert_eq!(apply.lock_wait, Duration::from_secs(60));
    assert_eq!(apply.lock_timeout, Duration::from_secs(5));
    assert_eq!(apply.statement_timeout, None);
    assert_eq!(apply.lock_retries, 3);
    assert_eq!(apply.max_transaction_age, None);
    assert_eq!(apply.max_connections, None);
    assert_eq!(config.snapshot.strategy, SnapshotStrategy::Auto);
    assert_eq!(config.snapshot.keep_last, None);
    assert_eq!(config.snapshot.keep_days, None);
    assert_eq!(config.target(None).unwrap().name, "default");
}

#[test]
fn an_empty_file_means_defaults() {
    let config = parse("# nothing yet\n").unwrap();
    assert_eq!(config.file.as_deref(), Some(Path::new(FILE)));
    assert_eq!(config.root, Path::new("/nonexistent-dbsafe-test"));
    assert_eq!(config.apply, ApplyConfig::default());
    assert_eq!(config.snapshot, SnapshotConfig::default());
    assert_eq!(config.targets.keys().collect::<Vec<_>>(), ["default"]);
}

#[test]
fn protected_defaults_to_production_and_can_be_set() {
    let config = parse(
        r#"
[targets.prod]
environment = "production"
[targets.stage]
environment = "staging"
protected = true
[targets.prod-unprotected]
environment = "production"
protected = false
"#,
    )
    .unwrap();
    assert!(config.targets["prod"].protected);
    assert!(config.targets["stage"].protected);
    assert!(!config.targets["prod-unprotected"].protected);
    assert_eq!(config.targets["prod"].url_env, "DATABASE_URL");
}

#[test]
fn discovery_walks_up_from_a_nested_directory() {
    let (_guard, root) = temp_dir();
    write(
        &root.join("dbsafe.toml"),
        "migrations-dir = \"db/migrations\"\nsnapshot-dir = \"../snaps\"\n",
    );
    let nested = root.join("a/b/c");
    fs::create_dir_all(&nested).unwrap();
    let config = Config::discover(&nested, None, None).unwrap();
    assert_eq!(config.file, Some(root.join("dbsafe.toml")));
    assert_eq!(config.root, root);
    assert_eq!(config.migrations_dir, root.join("db/migrations"));
    assert_eq!(config.snapshot_dir, root.join("../snaps"));
}

#[test]
fn explicit_config_must_exist() {
    let (_guard, root) = temp_dir();
    let missing = root.join("nope.toml");
    let error = Config::discover(&root, Some(&missing), None).unwrap_err();
    assert!(matches!(&error, ConfigError::NotFound { path } if *path == missing));
    assert!(error.to_string().contains("--config"), "{error}");
}

#[test]
fn explicit_config_wins_and_is_relative_to_the_start_directory() {
    let (_guard, root) = temp_dir();
    write(&root.join("dbsafe.toml"), "default-target = \"nope\"\n");
    write(
        &root.join("conf/other.toml"),
        "[targets.ci]\nenvironment = \"test\"\n",
    );
    let config = Config::discover(&root, Some(Path::new("conf/other.toml")), None).unwrap();
    assert_eq!(config.file, Some(root.join("conf/other.toml")));
    assert_eq!(config.root, root.join("conf"));
    assert_eq!(config.target(None).unwrap().name, "ci");
}

#[test]
fn manifest_path_finds_the_workspace_root() {
    let (_guard, root) = temp_dir();
    write(
        &root.join("Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    );
    write(&root.join("src/lib.rs"), "");
    let elsewhere = root.join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let manifest = root.join("Cargo.toml");

    let config = Config::discover(&elsewhere, None, Some(&manifest)).unwrap();
    assert_eq!(config.file, None);
    assert_eq!(config.root, root);

    write(&root.join("dbsafe.toml"), "[apply]\nlock-retries = 7\n");
    let config = Config::discover(&elsewhere, None, Some(&manifest)).unwrap();
    assert_eq!(config.file, Some(root.join("dbsafe.toml")));
    assert_eq!(config.apply.lock_retries, 7);

    let missing = root.join("missing/Cargo.toml");
    let error = Config::discover(&root, None, Some(&missing)).unwrap_err();
    assert!(matches!(error, ConfigError::Manifest { .. }), "{error:?}");
}

#[test]
fn migrations_dir_falls_back_to_diesel_toml() {
    let (_guard, root) = temp_dir();
    write(
        &root.join("diesel.toml"),
        "[print_schema]\nfile = \"src/schema.rs\"\n\n[migrations_directory]\ndir = \"db/migrations\"\n",
    );
    let config = Config::discover(&root, None, None).unwrap();
    assert_eq!(config.migrations_dir, root.join("db/migrations"));

    write(&root.join("dbsafe.toml"), "migrations-dir = \"mine\"\n");
    let config = Config::discover(&root, None, None).unwrap();
    assert_eq!(config.migrations_dir, root.join("mine"));
}

#[test]
fn diesel_toml_without_the_setting_means_migrations() {
    let (_guard, root) = temp_dir();
    write(
        &root.join("diesel.toml"),
        "[print_schema]\nfile = \"src/schema.rs\"\n",
    );
    let config = Config::discover(&root, None, None).unwrap();
    assert_eq!(config.migrations_dir, root.join("migrations"));
}

#[test]
fn malformed_diesel_toml_is_an_error() {
    let (_guard, root) = temp_dir();
    write(
        &root.join("diesel.toml"),
        "[migrations_directory]\ndir = \n",
    );
    let error = Config::discover(&root, None, None).unwrap_err();
    let ConfigError::DieselToml { path, message } = &error else {
        panic!("expected a diesel.toml error, got {error:?}");
    };
    assert_eq!(*path, root.join("diesel.toml"));
    assert!(message.starts_with("line 2:"), "{message}");
    assert!(error.to_string().contains("migrations-dir"), "{error}");

    write(
        &root.join("diesel.toml"),
        "[migrations_directory]\ndir = 3\n",
    );
    let error = Config::discover(&root, None, None).unwrap_err();
    assert!(error.to_string().contains("must be a string"), "{error}");
}

#[test]
fn syntax_error_has_a_line() {
    let found = problem("[apply]\nlock-wait = \"5s\"\nlock-timeout = = 3\n");
    assert_eq!(found.line, 3);
    assert_eq!(found.key, "");
    assert!(found.message.starts_with("TOML syntax error"), "{found:?}");

    let found = problem("[apply]\nlock-wait = \"5s\"\nlock-wait = \"6s\"\n");
    assert_eq!(found.line, 3);
    assert!(found.message.contains("duplicate key"), "{found:?}");
}

#[test]
fn unknown_key_is_located_and_suggested() {
    let found = problem("[apply]\n\nlock-wiat = \"5s\"\n");
    assert_eq!(found.line, 3);
    assert_eq!(found.key, "apply.lock-wiat");
    assert!(
        found.message.contains("unknown key `lock-wiat`"),
        "{found:?}"
    );
    assert!(
        found.message.contains("did you mean `lock-wait`?"),
        "{found:?}"
    );

    let found = problem("[targets.dev]\nenvironment = \"test\"\nurl_env = \"X\"\n");
    assert!(
        found.message.contains("did you mean `url-env`?"),
        "{found:?}"
    );

    let found = problem("[target.dev]\nenvironment = \"test\"\n");
    assert_eq!((found.line, found.key.as_str()), (1, "target"));
    assert!(
        found.message.contains("did you mean `targets`?"),
        "{found:?}"
    );

    let found = problem("colour = \"red\"\n");
    assert!(
        found.message.contains("known keys: migrations-dir"),
        "{found:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"migrations-dir = 5
default-target = "prod"

[targets.dev]
environment = "dev"
url = "sqlite://dev.db"
url-env = "DEV_URL"

[apply]
on-failure = "panic"
lock-wait = "5 minutes"
lock-retries = -1
max-connections = 0
surprise = true

[snapshot]
keep-last = "3"
"#;
    let found = problems(text);
    let located: Vec<(usize, &str)> = found
        .iter()
        .map(|problem| (problem.line, problem.key.as_str()))
        .collect();
    assert_eq!(
        located,
        [
            (1, "migrations-dir"),
            (2, "default-target"),
            (5, "targets.dev.environment"),
            (7, "targets.dev.url-env"),
            (10, "apply.on-failure"),
            (11, "apply.lock-wait"),
            (12, "apply.lock-retries"),
            (13, "apply.max-connections"),
            (14, "apply.surprise"),
            (17, "snapshot.keep-last"),
        ],
        "{found:#?}"
    );
    let error = parse(text).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("invalid configuration in {FILE}:\n  {FILE}:1: key `migrations-dir`: expected a string, found an integer\n")),
        "{error}"
    );
    assert_eq!(error.lines().count(), 11, "{error}");
}

#[test]
fn wrong_types_say_what_was_expected() {
    let found = problem("[apply]\nlock-retries = \"3\"\n");
    assert_eq!(found.message, "expected an integer, found a string");
    let found = problem("[apply]\nlock-wait = 60\n");
    assert!(
        found.message.starts_with("expected a duration string"),
        "{found:?}"
    );
    let found = problem("[targets.dev]\nenvironment = \"test\"\nprotected = \"yes\"\n");
    assert_eq!(
        found.message,
        "expected a boolean (true or false), found a string"
    );
    let found = problem("apply = 3\n");
    assert_eq!(found.message, "expected a table [apply], found an integer");
    let found = problem("[[snapshot]]\nstrategy = \"auto\"\n");
    assert_eq!(found.key, "snapshot");
}

#[test]
fn bad_enum_lists_allowed_values() {
    let found = problem("[snapshot]\nstrategy = \"pg_dump\"\n");
    assert_eq!(found.key, "snapshot.strategy");
    assert_eq!(
        found.message,
        "invalid value \"pg_dump\": expected one of \"auto\", \"pg-dump\", \"template\", \
         \"mysqldump\", \"sqlite-backup\""
    );
    let found = problem("[targets.x]\nenvironment = \"prod\"\n");
    assert!(found.message.contains("\"production\""), "{found:?}");
    let found = problem("[apply]\nsnapshot = \"sometimes\"\n");
    assert!(
        found
            .message
            .contains("\"always\", \"protected\", \"never\"")
    );
}

#[test]
fn bad_duration_names_the_value() {
    let found = problem("[apply]\nlock-timeout = \"5 s\"\n");
    assert_eq!((found.line, found.key.as_str()), (2, "apply.lock-timeout"));
    assert!(
        found.message.contains("invalid duration \"5 s\""),
        "{found:?}"
    );
    let found = problem("[apply]\nlock-timeout = \"0\"\n");
    assert!(found.message.contains("above zero"), "{found:?}");
}

#[test]
fn zero_limits_mean_no_limit() {
    let config = parse(
        "[apply]\nstatement-timeout = \"0\"\nmax-transaction-age = \"0s\"\nlock-wait = \"0\"\n",
    )
    .unwrap();
    assert_eq!(config.apply.statement_timeout, None);
    assert_eq!(config.apply.max_transaction_age, None);
    assert_eq!(config.apply.lock_wait, Duration::ZERO);
    let config = parse("[apply]\nstatement-timeout = \"1m30s\"\n").unwrap();
    assert_eq!(
        config.apply.statement_timeout,
        Some(Duration::from_secs(90))
    );
}

#[test]
fn url_and_url_env_together_are_refused() {
    let found = problem(
        "[targets.dev]\nenvironment = \"development\"\nurl = \"sqlite://a.db\"\nurl-env = \"DEV_URL\"\n",
    );
    assert_eq!((found.line, found.key.as_str()), (4, "targets.dev.url-env"));
    assert!(found.message.contains("keep only one"), "{found:?}");
}

#[test]
fn direct_url_keys_are_checked() {
    let found = problem(
        "[targets.p]\nenvironment = \"production\"\nurl-env = \"APP_URL\"\ndirect-url = \"postgres://h/db\"\ndirect-url-env = \"DIRECT_URL\"\n",
    );
    assert_eq!(
        (found.line, found.key.as_str()),
        (5, "targets.p.direct-url-env")
    );
    assert!(found.message.contains("keep only one"), "{found:?}");

    let found = problem("[targets.p]\nenvironment = \"test\"\ndirect-url = \"mysql://h/db\"\n");
    assert_eq!(
        (found.line, found.key.as_str()),
        (3, "targets.p.direct-url")
    );
    assert!(found.message.contains("postgres://"), "{found:?}");

    let found = problem(
        "[targets.p]\nenvironment = \"test\"\nurl = \"sqlite://a.db\"\ndirect-url-env = \"D\"\n",
    );
    assert_eq!(
        (found.line, found.key.as_str()),
        (4, "targets.p.direct-url-env")
    );
    assert!(found.message.contains("not a postgres:// URL"), "{found:?}");

    let found = problem("[targets.p]\nenvironment = \"test\"\ndirect_url = \"postgres://h/db\"\n");
    assert_eq!(found.key, "targets.p.direct_url");
    assert!(found.message.contains("direct-url"), "{found:?}");

    let config = parse(
        "[targets.p]\nenvironment = \"test\"\nurl-env = \"APP_URL\"\ndirect-url-env = \"DIRECT_URL\"\n",
    )
    .unwrap();
    assert_eq!(
        config.targets["p"].direct_url_env.as_deref(),
        Some("DIRECT_URL")
    );
    assert_eq!(config.targets["p"].direct_url, None);
}

#[test]
fn target_checks() {
    let found = problem("[targets.Prod]\nenvironment = \"production\"\n");
    assert_eq!((found.line, found.key.as_str()), (1, "targets.Prod"));
    assert!(found.message.contains("invalid target name"), "{found:?}");

    let found = problem("[targets.\"a b\"]\nenvironment = \"test\"\n");
    assert_eq!(found.key, "targets.\"a b\"");

    let found = problem("\n[targets.dev]\nurl-env = \"DEV_URL\"\n");
    assert_eq!(
        (found.line, found.key.as_str()),
        (2, "targets.dev.environment")
    );
    assert!(
        found.message.contains("missing key `environment`"),
        "{found:?}"
    );

    let found = problem("[targets.dev]\nenvironment = \"test\"\nurl = \"\"\n");
    assert!(found.message.contains("must not be empty"), "{found:?}");

    let config = parse("[targets.ci]\nenvironment = \"test\"\nurl = \"sqlite://ci.db\"\n").unwrap();
    let ci = &config.targets["ci"];
    assert_eq!(ci.url.as_deref(), Some("sqlite://ci.db"));
    assert_eq!(ci.environment, Environment::Test);
    assert!(!ci.protected);
}

#[test]
fn default_target_must_exist() {
    let text = "default-target = \"prdo\"\n[targets.prod]\nenvironment = \"production\"\n";
    let found = problem(text);
    assert_eq!((found.line, found.key.as_str()), (1, "default-target"));
    assert_eq!(
        found.message,
        "no target named `prdo`; did you mean `prod`?"
    );

    let found = problem("default-target = \"staging\"\n");
    assert!(
        found.message.contains("known targets: default"),
        "{found:?}"
    );

    let config = parse("default-target = \"default\"\n").unwrap();
    assert_eq!(config.target(None).unwrap().name, "default");
}

#[test]
fn target_selection_rules() {
    let text = r#"
[targets.dev]
environment = "development"
[targets.prod]
environment = "production"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.target(Some("prod")).unwrap().name, "prod");
    let error = config.target(None).unwrap_err();
    assert!(matches!(&error, ConfigError::NoTarget { known } if known == &["dev", "prod"]));
    assert!(
        error
            .to_string()
            .contains("--target NAME (known: dev, prod) or set default-target"),
        "{error}"
    );
    let error = config.target(Some("staging")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownTarget { name, known } if name == "staging" && known == &["dev", "prod"])
    );
    assert!(error.to_string().contains("known: dev, prod"), "{error}");

    let config = parse(&format!("default-target = \"dev\"\n{text}")).unwrap();
    assert_eq!(config.target(None).unwrap().name, "dev");
    assert_eq!(config.target(Some("prod")).unwrap().name, "prod");

    let config = parse("[targets.only]\nenvironment = \"test\"\n").unwrap();
    assert_eq!(config.target(None).unwrap().name, "only");

    let with_default = format!("{text}[targets.default]\nenvironment = \"development\"\n");
    let config = parse(&with_default).unwrap();
    assert_eq!(config.target(None).unwrap().name, "default");
}

#[test]
fn reference_file_is_valid_and_complete() {
    // The reference's second invariant reads its query from a file beside it.
    let dir = tempfile::tempdir().unwrap();
    let sql_file = dir
        .path()
        .join("migrations/.invariants/users_not_empty.sql");
    std::fs::create_dir_all(sql_file.parent().unwrap()).unwrap();
    std::fs::write(&sql_file, "SELECT id FROM users LIMIT 1").unwrap();
    std::fs::create_dir_all(dir.path().join("seeds")).unwrap();
    std::fs::write(dir.path().join("seeds/countries.sql"), "SELECT 1").unwrap();
    let parsed = Config::parse(&dir.path().join("dbsafe.toml"), REFERENCE).unwrap();
    assert_eq!(parsed.invariants.len(), 3);
    assert_eq!(parsed.invariants[1].sql, "SELECT id FROM users LIMIT 1");
    let behaviour = &parsed.invariants[2];
    assert_eq!(behaviour.expect.to_string(), "error");
    assert_eq!(behaviour.role.as_deref(), Some("app"));
    assert_eq!(behaviour.expect_error.as_deref(), Some("42501"));
    assert_eq!(
        behaviour.settings,
        [("app.tenant_id".to_owned(), "42".to_owned())]
    );
    assert_eq!(parsed.seeds[0].volatile, ["countries.updated_at"]);
    assert_eq!(parsed.invariants[0].expect.to_string(), "= 0");
    assert_eq!(parsed.verify.max_row_change, Some(1.0));
    let config = Config {
        root: "/nonexistent-dbsafe-test".into(),
        migrations_dir: "/nonexistent-dbsafe-test/migrations".into(),
        ..parsed
    };
    assert_eq!(config.default_target.as_deref(), Some("dev"));
    assert_eq!(config.targets.len(), 4);
    let dev = &config.targets["dev"];
    assert_eq!(dev.url_env, "DATABASE_URL");
    assert_eq!(dev.environment, Environment::Development);
    assert!(!dev.protected);
    let prod = &config.targets["production"];
    assert_eq!(prod.url_env, "PRODUCTION_DATABASE_URL");
    assert!(prod.protected);
    assert_eq!(
        config.targets["ci"].url.as_deref(),
        Some("postgres://dbsafe@localhost:6432/app_ci")
    );
    assert_eq!(
        config.targets["ci"].direct_url.as_deref(),
        Some("postgres://dbsafe@localhost:5432/app_ci")
    );
    assert_eq!(
        prod.direct_url_env.as_deref(),
        Some("PRODUCTION_DIRECT_URL")
    );
    let apply = &config.apply;
    assert_eq!(apply.on_failure, FailurePolicy::Revert);
    assert_eq!(apply.lock_timeout, Duration::from_secs(5));
    assert_eq!(apply.statement_timeout, None);
    assert_eq!(apply.max_connections, Some(200));
    assert_eq!(config.snapshot.strategy, SnapshotStrategy::Auto);
    let tenants = &config.fleets["tenants"];
    assert_eq!(tenants.databases, super::Databases::Like("tenant_%".into()));
    assert_eq!(
        (tenants.concurrency, tenants.max_failures, tenants.protected),
        (8, 1, true)
    );
    assert_eq!(
        config.fleets["pre-production"].canary,
        super::Canary::Members(vec!["ci".into()])
    );
    assert_eq!(
        config.fleets["regional"].servers,
        super::Servers::Env("REGIONAL_SERVERS".into())
    );
    assert_eq!(config.fleets["local"].canary, super::Canary::Count(0));
    assert_eq!(config.snapshot.keep_last, Some(10));
    assert_eq!(config.snapshot.keep_days, Some(30));
    assert_eq!(
        config.migrations_dir,
        Path::new("/nonexistent-dbsafe-test/migrations")
    );

    // Every key the checker knows is set, uncommented, in the reference.
    let sections = check::section_keys();
    let tables: Vec<&str> = sections[1..]
        .iter()
        .map(|(name, _)| name.split('.').next().unwrap())
        .collect();
    let top = sections[0].1.iter().filter(|key| !tables.contains(key));
    let all = top.chain(sections[1..].iter().flat_map(|(_, keys)| keys.iter()));
    assert!(sections.iter().all(|(_, keys)| !keys.is_empty()));
    for key in all {
        let assignment = format!("\n{key} = ");
        assert!(
            REFERENCE.contains(&assignment),
            "`{key}` is missing from the reference"
        );
    }
}

#[test]
fn enums_display_and_parse_by_name() {
    assert_eq!(Environment::Production.to_string(), "production");
    assert_eq!("staging".parse(), Ok(Environment::Staging));
    assert_eq!(SnapshotStrategy::SqliteBackup.to_string(), "sqlite-backup");
    assert_eq!(FailurePolicy::default(), FailurePolicy::Revert);
    assert!("later".parse::<SnapshotPolicy>().is_err());
}

#[test]
fn dotenv_is_loaded_without_overriding() {
    let (_guard, root) = temp_dir();
    let path = std::env::var("PATH").unwrap();
    write(
        &root.join(".env"),
        "DBSAFE_CONFIG_TEST_DOTENV=from-dotenv\nPATH=overridden\n",
    );
    let config = Config::discover(&root, None, None).unwrap();
    config.load_dotenv();
    assert_eq!(
        std::env::var("DBSAFE_CONFIG_TEST_DOTENV").as_deref(),
        Ok("from-dotenv")
    );
    assert_eq!(std::env::var("PATH").unwrap(), path);
}

#[test]
fn invariant_and_verify_problems_are_located() {
    let text = "[verify]\nbuiltins = [\"drift\", \"orphans\"]\nmax-row-change = 5\nduplicates = [\"users\"]\n\n[[invariant]]\nname = \"a\"\nsql = \"SELECT 1\"\nexpect = \"== 1\"\n\n[[invariant]]\nsql = \"SELECT 1\"\nexpect = \"true\"\nphase = \"during\"\n";
    let found = problems(text);
    let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
    let all = found
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains("unknown built-in check \"orphans\""), "{all}");
    assert!(all.contains("verify.max-row-change"), "{all}");
    assert!(all.contains("table(column, column)"), "{all}");
    assert!(all.contains("invalid expectation \"== 1\""), "{all}");
    assert!(all.contains("invariant[1].name"), "{all}");
    assert!(all.contains("invariant[1].phase"), "{all}");
    assert!(lines.contains(&9) && lines.contains(&14), "{lines:?}");
}

#[test]
fn behaviour_and_volatile_problems_are_located() {
    let text = "[[invariant]]\nname = \"a\"\nsql = \"SELECT 1\"\nexpect = \"= 0\"\nexpect-error = \"42501\"\nsettings = { \"app.tenant_id\" = 42 }\nrole = 7\n\n[[seed]]\nname = \"s\"\nfile = \"s.sql\"\nvolatile = [\"updated_at\"]\n";
    let found = problems(text);
    let all = found
        .iter()
        .map(|p| format!("{}: {}: {}", p.line, p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("5: invariant[0].expect-error: `expect-error` names the error"),
        "{all}"
    );
    assert!(
        all.contains("6: invariant[0].settings.\"app.tenant_id\": expected a string"),
        "{all}"
    );
    assert!(
        all.contains("7: invariant[0].role: expected a string"),
        "{all}"
    );
    assert!(
        all.contains("12: seed[0].volatile: \"updated_at\" is not a column"),
        "{all}"
    );
}

#[test]
fn check_and_lint_sections() {
    let config = parse("# defaults\n").unwrap();
    assert!(config.check.require_down);
    assert_eq!(
        config.check.lock_file,
        Path::new("/nonexistent-dbsafe-test/dbsafe.lock")
    );
    assert_eq!(config.lint, LintConfig::default());

    let config = parse(
        "migrations-dir = \"db/migrations\"\n[check]\nrequire-down = false\n[lint]\ndialect = \"mysql\"\npg-version = \"16.2\"\nallow = [\"ban-drop-column\"]\nwarn = [\"prefer-timestamptz\"]\ndeny = [\"destructive-without-snapshot\"]\n",
    )
    .unwrap();
    assert!(!config.check.require_down);
    // Beside the migrations directory, not at the root.
    assert_eq!(
        config.check.lock_file,
        Path::new("/nonexistent-dbsafe-test/db/dbsafe.lock")
    );
    assert_eq!(config.lint.dialect, Some(Backend::Mysql));
    assert_eq!(config.lint.pg_version.as_deref(), Some("16.2"));
    assert_eq!(config.lint.allow, ["ban-drop-column"]);
    assert_eq!(config.lint.deny, ["destructive-without-snapshot"]);

    let config = parse("[check]\nlock-file = \"locks/migrations.lock\"\n").unwrap();
    assert_eq!(
        config.check.lock_file,
        Path::new("/nonexistent-dbsafe-test/locks/migrations.lock")
    );

    let found = problems(
        "[check]\nrequire-down = \"no\"\nlockfile = \"x\"\n[lint]\ndialect = \"oracle\"\npg-version = \"sixteen\"\nallow = [\"ban-drop-colum\"]\nwarn = [\"renaming-table\"]\ndeny = [\"renaming-table\"]\n",
    );
    let all = found
        .iter()
        .map(|p| format!("{}: {}: {}", p.line, p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("2: check.require-down: expected a boolean"),
        "{all}"
    );
    assert!(all.contains("did you mean `lock-file`?"), "{all}");
    assert!(
        all.contains("5: lint.dialect: invalid value \"oracle\""),
        "{all}"
    );
    assert!(
        all.contains("6: lint.pg-version: invalid PostgreSQL version"),
        "{all}"
    );
    assert!(
        all.contains(
            "7: lint.allow: unknown lint rule \"ban-drop-colum\"; did you mean `ban-drop-column`?"
        ),
        "{all}"
    );
    assert!(
        all.contains("9: lint.deny: rule \"renaming-table\" is in both `warn` and `deny`"),
        "{all}"
    );
    // A check that cannot be configured is not a lint rule.
    let problem = problem("[lint]\nallow = [\"lock-edited\"]\n");
    assert!(problem.message.contains("unknown lint rule"), "{problem:?}");
}

#[test]
fn values_serde_cannot_hold_are_reported_by_their_type() {
    let huge = "99999999999999999999999999999999999999999";
    let found = problem(&format!("[apply]\nlock-retries = {huge}\n"));
    assert_eq!(
        found.message,
        format!("expected a whole number from 0 to 4294967295, found {huge}")
    );
    let found = problem("[apply]\nmax-connections = 0x0\n");
    assert_eq!(
        found.message,
        "expected a whole number from 1 to 4294967295, found 0x0"
    );
    let found = problems("[apply]\nlock-wait = 1e999\nlock-retries = -1_0\n");
    assert_eq!(
        found[0].message,
        "expected a duration string like \"5s\", \"250ms\" or \"2m\", found a float"
    );
    assert_eq!(
        found[1].message,
        "expected a whole number from 0 to 4294967295, found -10"
    );
    let found = problems(&format!(
        "snapshot = 1979-05-27\nseed = {huge}\nfleets = 1e999\n"
    ));
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "expected a table [snapshot], found a datetime",
            "expected an array of tables [[seed]], found an integer",
            "expected a table [fleets], found a float",
        ]
    );
}
