//! `cargo dbsafe check`: offline, with no server and no DATABASE_URL; the migrations
//! directory's layout, dbsafe.lock (edit, delete, out-of-order, the update flow), each lint
//! rule with a failing and a passing sample, `-- dbsafe:allow` comments, and the human,
//! JSON Lines and GitHub outputs.

use std::path::Path;

use dbsafe_tests::{Run, dbsafe_in};
use serde_json::Value;

/// A PostgreSQL target whose server cannot be reached (nothing listens on port 1).
const PG_UNREACHABLE: &str = "[targets.dev]\nurl = \"postgres://app:secret@127.0.0.1:1/app\"\nenvironment = \"development\"\n";

/// The table every lint sample works on, created by the first migration.
const BASE_UP: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email text, team_id bigint);\nCREATE TABLE teams (id bigint PRIMARY KEY);\n";
const BASE_DOWN: &str = "DROP TABLE teams;\nDROP TABLE users;\n";
const BASE: &str = "2024-01-01-000000_base";
const SAMPLE: &str = "2024-01-02-000000_sample";
const NO_TRANSACTION: &str = "run_in_transaction = false\n";

/// A project directory with a dbsafe.toml and a migrations directory, and no database.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(config: &str) -> Project {
        let project = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        project.file("dbsafe.toml", config);
        std::fs::create_dir_all(project.path().join("migrations")).unwrap();
        project
    }

    /// A project whose target is PostgreSQL (unreachable), with the base migration.
    fn pg(extra: &str) -> Project {
        let project = Project::new(&format!("{PG_UNREACHABLE}\n{extra}"));
        project.migration(BASE, BASE_UP, Some(BASE_DOWN));
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, relative: &str, text: &str) -> &Project {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path().join(relative)).unwrap()
    }

    fn migration(&self, name: &str, up: &str, down: Option<&str>) -> &Project {
        self.file(&format!("migrations/{name}/up.sql"), up);
        if let Some(down) = down {
            self.file(&format!("migrations/{name}/down.sql"), down);
        }
        self
    }

    /// `cargo dbsafe check ARGS` with a cleared environment (no DATABASE_URL).
    fn check(&self, args: &[&str]) -> Run {
        self.check_env(args, &[])
    }

    fn check_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec!["check"];
        all.extend_from_slice(args);
        dbsafe_in(self.path(), &all, env)
    }

    /// `check --message-format json ARGS`: the findings and the summary.
    fn json(&self, args: &[&str]) -> (Run, Vec<Finding>, Value) {
        let mut all = vec!["--message-format", "json"];
        all.extend_from_slice(args);
        let run = self.check(&all);
        let events = run.events();
        let findings = events
            .iter()
            .filter(|e| e["type"] == "check.finding")
            .map(|e| Finding {
                rule: e["rule"].as_str().unwrap().to_owned(),
                severity: e["severity"].as_str().unwrap().to_owned(),
                file: e["file"].as_str().unwrap_or("").to_owned(),
                line: e["line"].as_u64().map(|l| l as usize),
                message: e["message"].as_str().unwrap().to_owned(),
                help: e["help"].as_str().unwrap_or("").to_owned(),
            })
            .collect();
        let summary = events
            .iter()
            .find(|e| e["type"] == "check.summary")
            .cloned()
            .unwrap_or(Value::Null);
        (run, findings, summary)
    }

    /// The findings of a check that also records the migrations in dbsafe.lock, so lock
    /// findings stay out of the way.
    fn lint(&self) -> (Run, Vec<Finding>) {
        let (run, findings, _) = self.json(&["--update-lock"]);
        (run, findings)
    }
}

#[derive(Debug, Clone)]
struct Finding {
    rule: String,
    severity: String,
    file: String,
    line: Option<usize>,
    message: String,
    help: String,
}

/// The findings of `rule`.
fn of<'a>(findings: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.rule == rule).collect()
}

fn sample_file() -> String {
    format!("migrations/{SAMPLE}/up.sql")
}

// ---------------------------------------------------------------------------------------
// No database

#[test]
fn check_needs_no_database_nor_url() {
    // A written URL pointing at a port nothing listens on: the dialect comes from its
    // scheme, nothing connects.
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "CREATE INDEX users_email ON users (email);\n",
        Some("DROP INDEX users_email;\n"),
    );
    let started = std::time::Instant::now();
    let (run, findings, summary) = p.json(&["--update-lock"]);
    assert!(started.elapsed().as_secs() < 10, "{run:?}");
    run.expect_code(1);
    assert_eq!(summary["dialect"], "postgres", "{run:?}");
    assert_eq!(summary["dialect_source"], "target-url");
    assert_eq!(of(&findings, "require-concurrent-index-creation").len(), 1);
    assert!(
        !run.stdout.contains("secret") && !run.stderr.contains("secret"),
        "{run:?}"
    );

    // url-env without the variable (the environment is cleared): [lint] dialect decides.
    let p = Project::new(
        "[targets.ci]\nurl-env = \"DATABASE_URL\"\nenvironment = \"test\"\n[lint]\ndialect = \"sqlite\"\n",
    );
    p.migration(BASE, BASE_UP, Some(BASE_DOWN));
    let (run, _, summary) = p.json(&["--update-lock"]);
    run.expect_code(0);
    assert_eq!(summary["dialect"], "sqlite");
    assert_eq!(summary["dialect_source"], "config");
    // With the variable set (to a server that is not there), its scheme wins.
    let run = p.check_env(
        &["--message-format", "json"],
        &[("DATABASE_URL", "mysql://root@127.0.0.1:1/app")],
    );
    run.expect_code(0);
    assert!(run.stdout.contains("\"dialect\":\"mysql\""), "{run:?}");
    assert!(
        run.stdout.contains("\"dialect_source\":\"url-env\""),
        "{run:?}"
    );

    // No dbsafe.toml at all: the default target reads DATABASE_URL, unset: PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    let run = dbsafe_in(dir.path(), &["check"], &[]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(
            "checked 0 migration(s) as postgres (from the default): 0 error(s), 0 warning(s)"
        ),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Lint rules: a failing and a passing sample each

/// One lint sample: the extra dbsafe.toml text, the migration's up.sql, and its
/// metadata.toml when it has one.
struct Sample {
    config: &'static str,
    up: &'static str,
    metadata: Option<&'static str>,
}

const fn sample(up: &'static str) -> Sample {
    Sample {
        config: "",
        up,
        metadata: None,
    }
}

/// Checks `sample` as the second migration of a PostgreSQL project; its findings.
fn lint_sample(sample: &Sample) -> (Run, Vec<Finding>) {
    let p = Project::pg(sample.config);
    p.migration(SAMPLE, sample.up, Some("SELECT 1;\n"));
    if let Some(metadata) = sample.metadata {
        p.file(&format!("migrations/{SAMPLE}/metadata.toml"), metadata);
    }
    p.lint()
}

/// `rule` is reported on the sample's up.sql at `line` for `failing`, and not for `passing`.
#[track_caller]
fn rule_fails_and_passes(rule: &str, line: usize, failing: Sample, passing: Sample) {
    let (run, findings) = lint_sample(&failing);
    let found = of(&findings, rule);
    assert_eq!(
        found.len(),
        1,
        "{rule} on {:?}: {findings:#?}\n{run:?}",
        failing.up
    );
    assert_eq!(found[0].file, sample_file(), "{rule}");
    assert_eq!(found[0].line, Some(line), "{rule}: {found:#?}");
    assert!(
        !found[0].message.is_empty() && !found[0].help.is_empty(),
        "{found:#?}"
    );
    if found[0].severity == "error" {
        run.expect_code(1);
    }
    let (_, findings) = lint_sample(&passing);
    assert!(
        of(&findings, rule).is_empty(),
        "{rule} on {:?}: {findings:#?}",
        passing.up
    );
}

#[test]
fn squawk_rules_fail_and_pass() {
    let cases: Vec<(&str, usize, Sample, Sample)> = vec![
        (
            "require-concurrent-index-creation",
            1,
            sample("CREATE INDEX users_email ON users (email);\n"),
            Sample {
                metadata: Some(NO_TRANSACTION),
                ..sample("CREATE INDEX CONCURRENTLY users_email ON users (email);\n")
            },
        ),
        (
            "adding-required-field",
            2,
            sample(
                "-- a NOT NULL column without a default\nALTER TABLE users ADD COLUMN name text NOT NULL;\n",
            ),
            sample("ALTER TABLE users ADD COLUMN name text NOT NULL DEFAULT '';\n"),
        ),
        (
            "constraint-missing-not-valid",
            1,
            sample("ALTER TABLE users ADD CONSTRAINT positive_id CHECK (id > 0);\n"),
            sample("ALTER TABLE users ADD CONSTRAINT positive_id CHECK (id > 0) NOT VALID;\n"),
        ),
        (
            "adding-foreign-key-constraint",
            1,
            sample(
                "ALTER TABLE users ADD CONSTRAINT users_team FOREIGN KEY (team_id) REFERENCES teams (id);\n",
            ),
            sample(
                "ALTER TABLE users ADD CONSTRAINT users_team FOREIGN KEY (team_id) REFERENCES teams (id) NOT VALID;\n",
            ),
        ),
        (
            "changing-column-type",
            1,
            sample("ALTER TABLE users ALTER COLUMN email TYPE varchar(100);\n"),
            sample("ALTER TABLE users ADD COLUMN email_short varchar(100);\n"),
        ),
        (
            "renaming-column",
            1,
            sample("ALTER TABLE users RENAME COLUMN email TO mail;\n"),
            sample("ALTER TABLE users ADD COLUMN mail text;\n"),
        ),
        (
            "renaming-table",
            1,
            sample("ALTER TABLE users RENAME TO people;\n"),
            sample("CREATE VIEW people AS SELECT * FROM users;\n"),
        ),
        (
            "ban-drop-column",
            1,
            sample("ALTER TABLE users DROP COLUMN email;\n"),
            sample("ALTER TABLE users ALTER COLUMN email DROP DEFAULT;\n"),
        ),
        (
            "ban-drop-table",
            1,
            sample("DROP TABLE teams;\n"),
            sample("DROP VIEW IF EXISTS people;\n"),
        ),
        (
            // dbsafe's apply sets lock_timeout itself: squawk's rule is off unless asked for.
            "require-lock-timeout",
            1,
            Sample {
                config: "[lint]\ndeny = [\"require-lock-timeout\"]\n",
                ..sample("ALTER TABLE users ADD COLUMN age bigint;\n")
            },
            sample("ALTER TABLE users ADD COLUMN age bigint;\n"),
        ),
        (
            // A warning until [apply] statement-timeout is set; then apply sets it.
            "require-statement-timeout",
            1,
            sample("ALTER TABLE users ADD COLUMN age bigint;\n"),
            Sample {
                config: "[apply]\nstatement-timeout = \"1m\"\n",
                ..sample("ALTER TABLE users ADD COLUMN age bigint;\n")
            },
        ),
        (
            "syntax-error",
            1,
            sample("CREATE TABLE (id bigint;\n"),
            sample("CREATE TABLE pets (id bigint PRIMARY KEY);\n"),
        ),
    ];
    for (rule, line, failing, passing) in cases {
        rule_fails_and_passes(rule, line, failing, passing);
    }
}

#[test]
fn a_virtual_generated_column_is_not_a_rewrite() {
    // PostgreSQL 18 computes a VIRTUAL generated column when it is read: adding one rewrites
    // nothing, unlike a STORED one, which squawk rightly reports.
    rule_fails_and_passes(
        "adding-field-with-default",
        1,
        sample(
            "ALTER TABLE orders ADD COLUMN total integer GENERATED ALWAYS AS (price * qty) STORED;\n",
        ),
        sample(
            "ALTER TABLE orders ADD COLUMN total integer GENERATED ALWAYS AS (price * qty) VIRTUAL;\n",
        ),
    );
}

#[test]
fn dbsafe_rules_fail_and_pass() {
    let never = "[apply]\nsnapshot = \"never\"\n";
    let cases: Vec<(&str, usize, Sample, Sample)> = vec![
        (
            "concurrently-in-transaction",
            1,
            sample("CREATE INDEX CONCURRENTLY users_email ON users (email);\n"),
            Sample {
                metadata: Some(NO_TRANSACTION),
                ..sample("CREATE INDEX CONCURRENTLY users_email ON users (email);\n")
            },
        ),
        (
            "concurrently-not-alone",
            2,
            Sample {
                metadata: Some(NO_TRANSACTION),
                ..sample(
                    "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
                )
            },
            Sample {
                metadata: Some(NO_TRANSACTION),
                ..sample(
                    "-- alone in its file\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
                )
            },
        ),
        (
            "destructive-without-snapshot",
            2,
            Sample {
                config: never,
                ..sample("-- clean up\nTRUNCATE teams;\n")
            },
            Sample {
                config: "[apply]\nsnapshot = \"always\"\n",
                ..sample("TRUNCATE teams;\n")
            },
        ),
        (
            "destructive-without-snapshot",
            1,
            Sample {
                config: never,
                ..sample("DELETE FROM teams;\n")
            },
            Sample {
                config: never,
                ..sample("DELETE FROM teams WHERE id = 1;\n")
            },
        ),
        (
            "lock-timeout-disabled",
            1,
            sample("SET lock_timeout = 0;\nALTER TABLE users ADD COLUMN age bigint;\n"),
            sample("SET lock_timeout = '10s';\nALTER TABLE users ADD COLUMN age bigint;\n"),
        ),
        (
            "squawk-ignore",
            1,
            sample("-- squawk-ignore ban-drop-column\nALTER TABLE users DROP COLUMN email;\n"),
            sample(
                "-- dbsafe:allow ban-drop-column because nothing reads it since v2\nALTER TABLE users DROP COLUMN email;\n",
            ),
        ),
        (
            "unused-allow",
            1,
            sample(
                "-- dbsafe:allow ban-drop-column because it is unused\nALTER TABLE users ADD COLUMN age bigint;\n",
            ),
            sample(
                "-- dbsafe:allow ban-drop-column because it is unused\nALTER TABLE users DROP COLUMN email;\n",
            ),
        ),
    ];
    for (rule, line, failing, passing) in cases {
        rule_fails_and_passes(rule, line, failing, passing);
    }

    // needless-no-transaction is reported on metadata.toml.
    let (_, findings) = lint_sample(&Sample {
        metadata: Some("# plain DDL\nrun_in_transaction = false\n"),
        ..sample("ALTER TABLE users ADD COLUMN age bigint;\n")
    });
    let found = of(&findings, "needless-no-transaction");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, format!("migrations/{SAMPLE}/metadata.toml"));
    assert_eq!(found[0].line, Some(2));
    assert_eq!(found[0].severity, "warning");
    let (_, findings) = lint_sample(&Sample {
        metadata: Some(NO_TRANSACTION),
        ..sample("CREATE INDEX CONCURRENTLY users_email ON users (email);\n")
    });
    assert!(
        of(&findings, "needless-no-transaction").is_empty(),
        "{findings:#?}"
    );

    // CONCURRENTLY in down.sql counts too: reverting runs in a transaction as well.
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "ALTER TABLE users ADD COLUMN age bigint;\n",
        Some("DROP INDEX CONCURRENTLY users_email;\n"),
    );
    let (_, findings) = p.lint();
    let found = of(&findings, "concurrently-in-transaction");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, format!("migrations/{SAMPLE}/down.sql"));
}

#[test]
fn destructive_statements_follow_the_snapshot_policy_and_target() {
    let targets = "[targets.dev]\nurl = \"sqlite://dev.db\"\nenvironment = \"development\"\n\
                   [targets.prod]\nurl = \"postgres://app@127.0.0.1:1/app\"\nenvironment = \"production\"\n";
    let p = Project::new(&format!("default-target = \"dev\"\n{targets}"));
    p.migration(BASE, BASE_UP, Some(BASE_DOWN));
    p.migration(
        SAMPLE,
        "ALTER TABLE users DROP COLUMN email;\nDROP TABLE teams;\n",
        None,
    );
    // The default target, dev, is not protected: apply takes no snapshot there.
    let (_, findings, summary) = p.json(&["--update-lock"]);
    assert_eq!(summary["target"], "dev");
    assert_eq!(summary["dialect"], "sqlite");
    let found = of(&findings, "destructive-without-snapshot");
    assert_eq!(found.len(), 2, "{findings:#?}");
    assert!(
        found[0].message.contains("`DROP COLUMN email`"),
        "{found:#?}"
    );
    assert!(
        found[0]
            .message
            .contains("target `dev`, which is not protected"),
        "{found:#?}"
    );
    assert_eq!(found[1].line, Some(2));
    // SQLite: squawk's PostgreSQL rules do not run.
    assert!(of(&findings, "ban-drop-column").is_empty(), "{findings:#?}");
    // The protected production target gets a snapshot: nothing to say. (The migrations
    // are recorded in dbsafe.lock now: --all lints them again.)
    let (_, findings, summary) = p.json(&["--target", "prod", "--all"]);
    assert_eq!(summary["dialect"], "postgres");
    assert!(
        of(&findings, "destructive-without-snapshot").is_empty(),
        "{findings:#?}"
    );
    assert_eq!(of(&findings, "ban-drop-column").len(), 1, "{findings:#?}");
    // An unknown target is a usage error.
    p.check(&["--target", "nope"]).expect_code(2);
}

#[test]
fn mysql_and_sqlite_get_dbsafe_rules_only() {
    for url in ["mysql://root@127.0.0.1:1/app", "sqlite://app.db"] {
        let p = Project::new(&format!(
            "[targets.t]\nurl = \"{url}\"\nenvironment = \"test\"\n[apply]\nsnapshot = \"never\"\n"
        ));
        p.migration(
            BASE,
            "# MySQL comment; or not\nCREATE TABLE users (id bigint PRIMARY KEY, note text);\n",
            Some("DROP TABLE users;\n"),
        );
        p.migration(
            SAMPLE,
            "CREATE INDEX users_note ON users (note(10));\nDELETE FROM users;\n",
            Some("SELECT 1;\n"),
        );
        let (run, findings) = p.lint();
        let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        if url.starts_with("mysql") {
            // `#` starts a comment in MySQL: the base migration is one statement.
            assert_eq!(rules, ["destructive-without-snapshot"], "{run:?}");
        } else {
            assert!(rules.contains(&"destructive-without-snapshot"), "{run:?}");
            assert!(
                !rules.contains(&"require-concurrent-index-creation"),
                "{run:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Suppression and [lint]

#[test]
fn allow_comments_need_a_reason_and_suppress_one_finding() {
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "-- dbsafe:allow ban-drop-column because nothing has read it since v2.3\n\
         ALTER TABLE users DROP COLUMN email;\n\
         ALTER TABLE users DROP COLUMN team_id;\n",
        Some("SELECT 1;\n"),
    );
    let (run, findings) = p.lint();
    let found = of(&findings, "ban-drop-column");
    // The comment suppresses the finding of the next statement only.
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].line, Some(3));
    run.expect_code(1);

    // Without a reason: a finding of its own, and nothing is suppressed.
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "-- dbsafe:allow ban-drop-column\nALTER TABLE users DROP COLUMN email;\n",
        Some("SELECT 1;\n"),
    );
    let (run, findings) = p.lint();
    run.expect_code(1);
    let found = of(&findings, "allow-without-reason");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].line, Some(1));
    assert_eq!(found[0].severity, "error");
    assert!(found[0].help.contains("because REASON"), "{found:#?}");
    assert_eq!(of(&findings, "ban-drop-column").len(), 1);

    // A misspelt rule is named with the likely one.
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "/* dbsafe:allow ban-drop-colum because old */\nALTER TABLE users DROP COLUMN email;\n",
        Some("SELECT 1;\n"),
    );
    let (_, findings) = p.lint();
    let found = of(&findings, "allow-unknown-rule");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert!(
        found[0].message.contains("did you mean `ban-drop-column`?"),
        "{found:#?}"
    );

    // A suppressed error leaves a passing check.
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "-- dbsafe:allow ban-drop-column because nothing reads it\nALTER TABLE users DROP COLUMN email;\n",
        Some("SELECT 1;\n"),
    );
    let (run, findings) = p.lint();
    run.expect_code(0);
    assert!(
        findings.iter().all(|f| f.severity == "warning"),
        "{findings:#?}"
    );
}

#[test]
fn lint_levels_come_from_the_config() {
    let up = "ALTER TABLE users DROP COLUMN email;\n";
    let levels = |config: &str| {
        let p = Project::pg(&format!("[apply]\nsnapshot = \"never\"\n{config}"));
        p.migration(SAMPLE, up, Some("SELECT 1;\n"));
        let (run, findings) = p.lint();
        let level = |rule: &str| of(&findings, rule).first().map(|f| f.severity.clone());
        (
            run.code,
            level("ban-drop-column"),
            level("destructive-without-snapshot"),
        )
    };
    assert_eq!(
        levels(""),
        (1, Some("error".into()), Some("warning".into()))
    );
    assert_eq!(
        levels("[lint]\nallow = [\"ban-drop-column\"]\n"),
        (0, None, Some("warning".into()))
    );
    assert_eq!(
        levels("[lint]\nwarn = [\"ban-drop-column\"]\ndeny = [\"destructive-without-snapshot\"]\n"),
        (1, Some("warning".into()), Some("error".into()))
    );
    // squawk's opt-in rules run once named.
    let p = Project::pg("[lint]\nwarn = [\"ban-drop-index\"]\n");
    p.migration(
        SAMPLE,
        "DROP INDEX CONCURRENTLY users_email;\n",
        Some("SELECT 1;\n"),
    );
    p.file(
        &format!("migrations/{SAMPLE}/metadata.toml"),
        NO_TRANSACTION,
    );
    let (_, findings) = p.lint();
    assert_eq!(of(&findings, "ban-drop-index").len(), 1, "{findings:#?}");
}

// ---------------------------------------------------------------------------------------
// dbsafe.lock

const A: &str = "2024-01-01-000001_a";
const B: &str = "2024-01-01-000002_b";
const C: &str = "2024-01-01-000003_c";

/// A SQLite project (no squawk) with migrations A and C, locked.
fn locked_project() -> Project {
    let p = Project::new("[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n");
    p.migration(
        A,
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE a;\n"),
    );
    p.migration(
        C,
        "CREATE TABLE c (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE c;\n"),
    );
    let run = p.check(&["--update-lock"]);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("dbsafe.lock: recorded 2 new migration(s)"),
        "{run:?}"
    );
    p
}

#[test]
fn lock_file_is_required_and_written_by_update_lock() {
    // No migrations, no lock: nothing to lock.
    let p = Project::new("[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n");
    p.check(&[]).expect_code(0);
    p.migration(A, "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", None);
    p.file("dbsafe.toml", "[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n[check]\nrequire-down = false\n");
    let (run, findings, _) = p.json(&[]);
    run.expect_code(1);
    let found = of(&findings, "lock-missing");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, "dbsafe.lock");
    assert!(found[0].help.contains("--update-lock"), "{found:#?}");

    let run = p.check(&["--update-lock"]);
    run.expect_code(0);
    let lock = p.read("dbsafe.lock");
    let lines: Vec<&str> = lock.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 1, "{lock}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[0], A);
    assert_eq!(fields[1].len(), 64);
    // No down.sql: `-`.
    assert_eq!(fields[2], "-");
    p.check(&[]).expect_code(0);
    // Nothing new: the file is left as it is.
    let again = p.check(&["--update-lock"]);
    again.expect_code(0);
    assert_eq!(p.read("dbsafe.lock"), lock);
    assert!(again.stderr.is_empty(), "{again:?}");
}

#[test]
fn edited_locked_migration_fails_until_allowed() {
    let p = locked_project();
    let lock = p.read("dbsafe.lock");
    // Line endings alone are not an edit.
    p.file(
        &format!("migrations/{A}/up.sql"),
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\r\n",
    );
    p.check(&[]).expect_code(0);

    p.file(
        &format!("migrations/{A}/up.sql"),
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);\n",
    );
    let (run, findings, _) = p.json(&[]);
    run.expect_code(1);
    let found = of(&findings, "lock-edited");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, format!("migrations/{A}/up.sql"));
    assert!(found[0].message.contains("ran the old text"), "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("never runs an applied migration again"),
        "{found:#?}"
    );
    assert!(
        found[0]
            .help
            .contains(&format!("--update-lock --allow-edit {A}")),
        "{found:#?}"
    );

    // --update-lock alone does not accept it.
    p.check(&["--update-lock"]).expect_code(1);
    assert_eq!(p.read("dbsafe.lock"), lock);
    // --allow-edit needs --update-lock; a name with nothing to accept is refused.
    p.check(&["--allow-edit", A]).expect_code(2);
    p.check(&["--update-lock", "--allow-edit", C])
        .expect_code(2);
    assert_eq!(p.read("dbsafe.lock"), lock);

    let run = p.check(&["--update-lock", "--allow-edit", A]);
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!("accepted the change to {A}")),
        "{run:?}"
    );
    assert!(run.stderr.contains("ran the old text"), "{run:?}");
    assert_ne!(p.read("dbsafe.lock"), lock);
    p.check(&[]).expect_code(0);

    // An edited down.sql is named too.
    p.file(
        &format!("migrations/{C}/down.sql"),
        "DROP TABLE IF EXISTS c;\n",
    );
    let (run, findings, _) = p.json(&[]);
    run.expect_code(1);
    let found = of(&findings, "lock-edited");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, format!("migrations/{C}/down.sql"));
    assert!(found[0].message.contains("cargo dbrollback"), "{found:#?}");
    // The version works as the name.
    p.check(&["--update-lock", "--allow-edit", "20240101000003"])
        .expect_code(0);
}

#[test]
fn deleted_locked_migration_fails_until_allowed() {
    let p = locked_project();
    std::fs::rename(
        p.path().join(format!("migrations/{A}")),
        p.path().join("migrations/2024-01-01-000004_a_renamed"),
    )
    .unwrap();
    let (run, findings, _) = p.json(&[]);
    run.expect_code(1);
    let found = of(&findings, "lock-deleted");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, "dbsafe.lock");
    assert_eq!(found[0].line, Some(4), "{found:#?}");
    assert!(
        found[0].message.contains(&format!("migration {A}")),
        "{found:#?}"
    );
    assert!(
        found[0]
            .message
            .contains("renamed to 2024-01-01-000004_a_renamed?"),
        "{found:#?}"
    );
    // The renamed directory is a new migration, not recorded yet.
    assert_eq!(of(&findings, "lock-unrecorded").len(), 1, "{findings:#?}");

    std::fs::remove_dir_all(p.path().join("migrations/2024-01-01-000004_a_renamed")).unwrap();
    p.check(&["--update-lock"]).expect_code(1);
    p.check(&["--update-lock", "--allow-edit", A])
        .expect_code(0);
    assert!(!p.read("dbsafe.lock").contains(A));
    p.check(&[]).expect_code(0);
}

#[test]
fn new_migration_before_the_newest_locked_one_fails() {
    let p = locked_project();
    p.migration(
        B,
        "CREATE TABLE b (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE b;\n"),
    );
    let (run, findings, _) = p.json(&[]);
    run.expect_code(1);
    let found = of(&findings, "lock-out-of-order");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].file, format!("migrations/{B}/up.sql"));
    assert!(
        found[0].message.contains(&format!("sorts before {C}")),
        "{found:#?}"
    );
    assert!(found[0].message.contains("older branch"), "{found:#?}");
    // --update-lock does not record it on its own.
    p.check(&["--update-lock"]).expect_code(1);
    assert!(!p.read("dbsafe.lock").contains(B));
    p.check(&["--update-lock", "--allow-edit", B])
        .expect_code(0);
    let lock = p.read("dbsafe.lock");
    let names: Vec<&str> = lock
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, [A, B, C]);

    // A new migration after the newest one only needs recording.
    let d = "2024-01-01-000005_d";
    p.migration(
        d,
        "CREATE TABLE d (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE d;\n"),
    );
    let (run, findings, _) = p.json(&[]);
    run.expect_code(1);
    assert_eq!(of(&findings, "lock-unrecorded").len(), 1, "{findings:#?}");
    let (run, findings, summary) = p.json(&["--update-lock"]);
    run.expect_code(0);
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(summary["lock"]["added"][0], d);
    assert_eq!(summary["lock"]["written"], true);
}

#[test]
fn malformed_lock_lines_are_named() {
    let p = locked_project();
    let lock = p.read("dbsafe.lock");
    p.file(
        "dbsafe.lock",
        &format!("{lock}2024-01-01-000009_x deadbeef -\n"),
    );
    let (run, findings, _) = p.json(&["--update-lock"]);
    run.expect_code(1);
    let found = of(&findings, "lock-malformed");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(found[0].line, Some(6), "{found:#?}");
    // A malformed file is never rewritten.
    assert!(p.read("dbsafe.lock").contains("deadbeef"));
}

// ---------------------------------------------------------------------------------------
// Layout

#[test]
fn malformed_migration_directories_are_named() {
    let p = Project::new("[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n");
    p.migration(
        A,
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE a;\n"),
    );
    // A typo: diesel refuses the whole directory.
    p.file(
        "migrations/2024-01-01-000002_typo/up.sq",
        "CREATE TABLE b (id INTEGER);\n",
    );
    // diesel's placeholders only.
    p.migration(
        "2024-01-01-000003_empty",
        "-- Your SQL goes here\n",
        Some("-- This file should undo anything in `up.sql`\n"),
    );
    // No down.sql; a stray backup file.
    p.migration(
        "2024-01-01-000004_nodown",
        "CREATE TABLE d (id INTEGER);\n",
        None,
    );
    p.file("migrations/2024-01-01-000004_nodown/up.sql.orig", "x");
    // metadata.toml traps.
    p.migration(
        "2024-01-01-000005_nokey",
        "CREATE TABLE e (id INTEGER);\n",
        Some("DROP TABLE e;\n"),
    );
    p.file(
        "migrations/2024-01-01-000005_nokey/metadata.toml",
        "# nothing\n",
    );
    p.migration(
        "2024-01-01-000006_wrongtype",
        "CREATE TABLE f (id INTEGER);\n",
        Some("DROP TABLE f;\n"),
    );
    p.file(
        "migrations/2024-01-01-000006_wrongtype/metadata.toml",
        "run_in_transaction = \"no\"\n",
    );
    p.migration(
        "2024-01-01-000007_typokey",
        "CREATE TABLE g (id INTEGER);\n",
        Some("DROP TABLE g;\n"),
    );
    p.file(
        "migrations/2024-01-01-000007_typokey/metadata.toml",
        "run_in_transaction = true\nrun_in_transactions = false\n",
    );
    p.migration(
        "2024-01-01-000008_invalid",
        "CREATE TABLE h (id INTEGER);\n",
        Some("DROP TABLE h;\n"),
    );
    p.file(
        "migrations/2024-01-01-000008_invalid/metadata.toml",
        "run_in_transaction = \n",
    );
    // Two directories with one version.
    p.migration(
        "2024-01-01-000001_again",
        "CREATE TABLE i (id INTEGER);\n",
        Some("DROP TABLE i;\n"),
    );
    // A stray file, and hidden entries that are fine.
    p.file("migrations/README.md", "notes\n");
    p.file("migrations/.keep", "");
    p.file("migrations/.invariants/x.sql", "SELECT 1");

    let (run, findings) = p.lint();
    run.expect_code(1);
    let located: Vec<(String, String, Option<usize>)> = findings
        .iter()
        .map(|f| (f.rule.clone(), f.file.clone(), f.line))
        .collect();
    let has = |rule: &str, file: &str, line: Option<usize>| {
        assert!(
            located.contains(&(rule.to_owned(), file.to_owned(), line)),
            "no {rule} on {file}:{line:?} in {located:#?}"
        );
    };
    has("stray-directory", "migrations/2024-01-01-000002_typo", None);
    has(
        "empty-up",
        "migrations/2024-01-01-000003_empty/up.sql",
        Some(1),
    );
    has(
        "missing-down",
        "migrations/2024-01-01-000003_empty/down.sql",
        Some(1),
    );
    has(
        "missing-down",
        "migrations/2024-01-01-000004_nodown/down.sql",
        None,
    );
    has(
        "stray-file",
        "migrations/2024-01-01-000004_nodown/up.sql.orig",
        None,
    );
    has(
        "metadata-no-key",
        "migrations/2024-01-01-000005_nokey/metadata.toml",
        Some(1),
    );
    has(
        "metadata-wrong-type",
        "migrations/2024-01-01-000006_wrongtype/metadata.toml",
        Some(1),
    );
    has(
        "metadata-unknown-key",
        "migrations/2024-01-01-000007_typokey/metadata.toml",
        Some(2),
    );
    has(
        "metadata-invalid",
        "migrations/2024-01-01-000008_invalid/metadata.toml",
        Some(1),
    );
    has(
        "duplicate-version",
        "migrations/2024-01-01-000001_again",
        None,
    );
    has("stray-file", "migrations/README.md", None);
    let message = |rule: &str| of(&findings, rule)[0].message.clone();
    assert!(message("stray-directory").contains("is `up.sq` meant to be up.sql?"));
    assert!(message("metadata-no-key").contains("diesel reads that as false"));
    assert!(message("metadata-wrong-type").contains("runs the migration in a transaction"));
    assert!(message("metadata-unknown-key").contains("did you mean `run_in_transaction`?"));
    assert_eq!(findings.len(), 11, "{located:#?}");
    // The CONCURRENTLY rule reads metadata as diesel does: no key means no transaction.
    assert!(of(&findings, "needless-no-transaction").is_empty());

    // Without require-down, a missing down.sql is fine.
    let p = Project::new(
        "[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n[check]\nrequire-down = false\n",
    );
    p.migration(A, "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", None);
    let (run, findings) = p.lint();
    run.expect_code(0);
    assert!(findings.is_empty(), "{findings:#?}");

    // No migrations directory: bad configuration, exit 2.
    std::fs::remove_dir_all(p.path().join("migrations")).unwrap();
    let run = p.check(&[]);
    run.expect_code(2);
    assert!(run.stderr.contains("does not exist"), "{run:?}");
}

// ---------------------------------------------------------------------------------------
// Output

#[test]
fn human_json_and_github_output() {
    let p = Project::pg("");
    p.migration(
        SAMPLE,
        "-- add a column\nALTER TABLE users ADD COLUMN age bigint NOT NULL;\n",
        Some("ALTER TABLE users DROP COLUMN age;\n"),
    );
    p.check(&["--update-lock"]);
    // Recorded in dbsafe.lock, the sample is linted only with --all.
    let (_, findings, summary) = p.json(&[]);
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(summary["linted"], 0);

    let human = p.check(&["--all"]);
    human.expect_code(1);
    let file = sample_file();
    assert!(
        human.stdout.contains(&format!(
            "{file}:2: error[adding-required-field]: Adding a new column that is `NOT NULL`"
        )),
        "{human:?}"
    );
    assert!(human.stdout.contains("\n  help: "), "{human:?}");
    assert!(
        human
            .stdout
            .contains(&format!("{file}:2: warning[require-statement-timeout]: ")),
        "{human:?}"
    );
    assert!(
        human.stdout.ends_with(
            "checked 2 migration(s) as postgres (from the URL of target dev): 1 error(s), 1 warning(s)\n"
        ),
        "{human:?}"
    );
    assert!(
        human.stderr.contains("error: check found 1 error(s)"),
        "{human:?}"
    );
    // --quiet keeps the errors only.
    let quiet = p.check(&["-q", "--all"]);
    assert!(
        quiet.stdout.contains("error[adding-required-field]"),
        "{quiet:?}"
    );
    assert!(!quiet.stdout.contains("warning["), "{quiet:?}");

    let (json, findings, summary) = p.json(&["--all"]);
    json.expect_code(1);
    assert_eq!(
        json.event_types(),
        ["check.finding", "check.finding", "check.summary", "error"]
    );
    assert_eq!(findings[0].rule, "adding-required-field");
    assert_eq!(findings[0].line, Some(2));
    assert_eq!(summary["errors"], 1);
    assert_eq!(summary["warnings"], 1);
    assert_eq!(summary["migrations"], 2);

    let github = p.check(&["--message-format", "github", "--all"]);
    github.expect_code(1);
    let lines: Vec<&str> = github.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "::error file={file},line=2,title=adding-required-field::Adding a new column"
        )),
        "{github:?}"
    );
    assert!(lines[0].contains("%0Ahelp: "), "{github:?}");
    assert!(
        lines[1].starts_with(&format!(
            "::warning file={file},line=2,title=require-statement-timeout::"
        )),
        "{github:?}"
    );

    // A clean project exits 0 in every format.
    let p = Project::pg("[apply]\nstatement-timeout = \"1m\"\n");
    p.check(&["--update-lock"]).expect_code(0);
    for format in ["human", "json", "github"] {
        p.check(&["--message-format", format]).expect_code(0);
    }
}

#[test]
fn invalid_config_is_shown_as_findings() {
    let p = Project::new(
        "[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n[lint]\ndeny = [\"no-such-rule\"]\n",
    );
    let run = p.check(&["--message-format", "github"]);
    run.expect_code(2);
    assert!(
        run.stdout.starts_with(
            "::error file=dbsafe.toml,line=5,title=config::key `lint.deny`: unknown lint rule"
        ),
        "{run:?}"
    );
    let run = p.check(&[]);
    run.expect_code(2);
    assert!(
        run.stdout.starts_with("dbsafe.toml:5: error[config]: "),
        "{run:?}"
    );
}

#[test]
fn help_lists_the_flags() {
    let p = Project::new("");
    let run = p.check(&["--help"]);
    run.expect_code(0);
    for flag in [
        "--update-lock",
        "--allow-edit <NAME>",
        "--roundtrip",
        "--all",
        "github",
    ] {
        assert!(run.stdout.contains(flag), "{flag}: {run:?}");
    }
}

#[test]
fn roundtrip_flag_round_trips_on_the_target() {
    let p = Project::new("[targets.t]\nurl = \"sqlite://app.db\"\nenvironment = \"test\"\n");
    p.migration(
        A,
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\nCREATE INDEX a_id ON a (id);\n",
        Some("DROP TABLE a;\n"),
    );
    let run = p.check(&["--update-lock", "--roundtrip"]);
    run.expect_code(0);
    assert!(run.stdout.ends_with("; round trip passed\n"), "{run:?}");
    // A down.sql that leaves the table behind.
    p.file(&format!("migrations/{A}/down.sql"), "DROP INDEX a_id;\n");
    let (run, findings, summary) =
        p.json(&["--update-lock", "--allow-edit", A, "--roundtrip", "--all"]);
    run.expect_code(1);
    let found = of(&findings, "roundtrip");
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert!(found[0].message.contains(A), "{found:#?}");
    assert_eq!(summary["roundtrip_problems"], 1);
    // --all alone lints every migration (no round trip, no server).
    p.check(&["--all"]).expect_code(0);

    // A protected target is named and confirmed before a shadow database is made beside it.
    let p =
        Project::new("[targets.prod]\nurl = \"sqlite://prod.db\"\nenvironment = \"production\"\n");
    p.migration(
        A,
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE a;\n"),
    );
    p.check(&["--update-lock"]).expect_code(0);
    let run = p.check(&["--roundtrip"]);
    run.expect_code(3);
    assert!(run.stderr.contains("--target prod"), "{run:?}");
    p.check(&["--roundtrip", "--target", "prod"]).expect_code(3);
    p.check(&["--roundtrip", "--target", "prod", "--yes"])
        .expect_code(0);
}
