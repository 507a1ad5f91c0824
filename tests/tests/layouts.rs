//! sqlx projects and plain SQL directories end to end on each backend: apply, status,
//! check, rollback and resolve on `layout = "sqlx"` (its `_sqlx_migrations` table written
//! exactly as sqlx writes it, checked row by row and, when sqlx-cli is installed, by `sqlx
//! migrate info` / `sqlx migrate run` on the same database in both orders) and on
//! `layout = "sql-files"` (no third-party table: dbsafe's ledger is the history); layout
//! detection and `cargo dbsafe init`.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use dbsafe_tests::{Backend, Project, Run, TestDb, Watched, each_backend, wait_until};
use sha2::{Digest, Sha384};

each_backend!(
    sqlx_reversible_apply_status_rollback,
    sqlx_forward_only_migrations,
    sqlx_dirty_row_until_resolved,
    sqlx_failing_migration,
    sqlx_versions_order_as_numbers,
    sqlx_kill_9_during_a_migration,
    sqlx_tool_first_then_dbsafe,
    sql_files_apply_status_rollback,
    sql_files_applied_by_hand_are_not_run_again,
);

const USERS_UP: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50));\n";
const USERS_DOWN: &str = "DROP TABLE users;\n";
const POSTS_UP: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, title VARCHAR(50));\n";
const POSTS_DOWN: &str = "DROP TABLE posts;\n";

/// A project whose dbsafe.toml says `layout = LAYOUT`, with `extra` appended.
fn project(backend: Backend, layout: &str, extra: &str) -> Project {
    let p = Project::new(backend);
    p.write_config(&format!("{extra}\n"));
    let config = std::fs::read_to_string(p.path().join("dbsafe.toml")).unwrap();
    p.file("dbsafe.toml", &format!("layout = \"{layout}\"\n{config}"));
    p
}

/// `_sqlx_migrations` as `version|description|success|checksum hex`, by version.
fn sqlx_rows(db: &TestDb) -> Vec<String> {
    if !db.has_table("_sqlx_migrations") {
        return Vec::new();
    }
    let sql = match db.backend {
        Backend::Postgres => {
            "SELECT version::text || '|' || description || '|' || CASE WHEN success THEN '1' ELSE '0' END || '|' || encode(checksum, 'hex') AS v FROM _sqlx_migrations ORDER BY version"
        }
        Backend::Sqlite => {
            "SELECT version || '|' || description || '|' || CASE WHEN success THEN '1' ELSE '0' END || '|' || lower(hex(checksum)) AS v FROM _sqlx_migrations ORDER BY version"
        }
        Backend::Mysql => {
            "SELECT CAST(CONCAT(version, '|', description, '|', IF(success, '1', '0'), '|', LOWER(HEX(checksum))) AS CHAR) AS v FROM _sqlx_migrations ORDER BY version"
        }
    };
    db.strings(sql)
}

/// The row sqlx writes for a migration file of this project.
fn sqlx_row(p: &Project, file: &str, version: &str, description: &str) -> String {
    let text = std::fs::read(p.path().join("migrations").join(file)).unwrap();
    let hex = format!("{:x}", Sha384::digest(&text));
    format!("{version}|{description}|1|{hex}")
}

/// dbsafe's steps as `direction:version:status`, oldest first.
fn steps(db: &TestDb) -> Vec<String> {
    let sql = match db.backend {
        Backend::Mysql => {
            "SELECT CAST(CONCAT(direction, ':', version, ':', status) AS CHAR) AS v FROM dbsafe_steps ORDER BY started_at, seq"
        }
        _ => {
            "SELECT direction || ':' || version || ':' || status AS v FROM dbsafe_steps ORDER BY started_at, seq"
        }
    };
    db.strings(sql)
}

/// `status --message-format json`: version -> state.
fn states(p: &Project) -> Vec<(String, String)> {
    p.status_report()["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn state_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(v, s)| ((*v).to_owned(), (*s).to_owned()))
        .collect()
}

/// The message of the JSON `error` event of a failed command.
#[track_caller]
fn error_message(run: &Run) -> String {
    run.events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("no error event in {run:?}"))["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// sqlx-cli beside dbsafe

/// sqlx-cli: `DBSAFE_TEST_SQLX`, else where scripts/ensure-sqlx-cli.sh installs it.
/// `None` (the side-by-side checks skipped, said on stderr) only when neither exists and
/// DBSAFE_REQUIRE_SQLX is not set; scripts/test.sh installs it and sets it.
fn sqlx_cli() -> Option<PathBuf> {
    let path = std::env::var_os("DBSAFE_TEST_SQLX")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(Path::new(&home).join(".cache/dbsafe/sqlx-cli/bin/sqlx"))
        })
        .filter(|p| p.is_file());
    if path.is_none() {
        assert!(
            std::env::var_os("DBSAFE_REQUIRE_SQLX").is_none(),
            "sqlx-cli is required (DBSAFE_REQUIRE_SQLX) but not installed: run scripts/ensure-sqlx-cli.sh"
        );
        eprintln!(
            "sqlx-cli not installed: side-by-side checks skipped (scripts/ensure-sqlx-cli.sh)"
        );
    }
    path
}

/// Runs `sqlx migrate SUB --source migrations --database-url URL`; its stdout.
fn sqlx_migrate(p: &Project, sqlx: &Path, sub: &str) -> String {
    let out = Command::new(sqlx)
        .args(["migrate", sub, "--source"])
        .arg(p.path().join("migrations"))
        .args(["--database-url", &p.db.url])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run sqlx");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sqlx migrate {sub} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `sqlx migrate info` lists exactly `versions`, each installed with a matching checksum.
#[track_caller]
fn sqlx_sees_installed(p: &Project, sqlx: &Path, versions: &[&str]) {
    let info = sqlx_migrate(p, sqlx, "info");
    let lines: Vec<&str> = info.lines().filter(|l| l.contains('/')).collect();
    assert_eq!(lines.len(), versions.len(), "{info}");
    for (line, version) in lines.iter().zip(versions) {
        assert!(line.starts_with(&format!("{version}/installed")), "{info}");
        assert!(!line.contains("different checksum"), "{info}");
    }
}

// ---------------------------------------------------------------------------------------
// sqlx

fn sqlx_reversible_apply_status_rollback(backend: Backend) {
    let p = project(backend, "sqlx", "");
    p.file("migrations/1_create_users.up.sql", USERS_UP)
        .file("migrations/1_create_users.down.sql", USERS_DOWN)
        .file("migrations/2_create_posts.up.sql", POSTS_UP)
        .file("migrations/2_create_posts.down.sql", POSTS_DOWN);
    assert_eq!(
        states(&p),
        state_pairs(&[("1", "pending"), ("2", "pending")])
    );
    let run = p.apply(&[]);
    run.expect_code(0);
    assert_eq!(
        sqlx_rows(&p.db),
        [
            sqlx_row(&p, "1_create_users.up.sql", "1", "create users"),
            sqlx_row(&p, "2_create_posts.up.sql", "2", "create posts"),
        ]
    );
    assert_eq!(steps(&p.db), ["up:1:applied", "up:2:applied"]);
    assert!(!p.db.has_table("__diesel_schema_migrations"));
    assert!(p.db.has_table("users") && p.db.has_table("posts"));
    assert_eq!(
        states(&p),
        state_pairs(&[("1", "applied"), ("2", "applied")])
    );
    // Drift: a shadow built from the sqlx files matches the live schema.
    let mut verify = p.command("cargo-dbverify");
    verify.args(["dbverify", "--drift"]);
    let drift = dbsafe_tests::run(verify);
    drift.expect_code(0);
    assert!(drift.stdout.contains("matches the 2 applied"), "{drift:?}");
    let sqlx = sqlx_cli();
    if let Some(sqlx) = &sqlx {
        sqlx_sees_installed(&p, sqlx, &["1", "2"]);
        let ran = sqlx_migrate(&p, sqlx, "run");
        assert!(!ran.contains("Applied"), "sqlx applied again: {ran}");
    }

    // A nothing-to-do apply, then the rollback of the run: both tables and both rows go.
    p.apply(&[]).expect_code(0);
    p.dbrollback(&["--last"]).expect_code(0);
    assert!(sqlx_rows(&p.db).is_empty());
    assert!(!p.db.has_table("users") && !p.db.has_table("posts"));
    assert_eq!(steps(&p.db)[2..], ["down:2:reverted", "down:1:reverted"]);
    assert_eq!(
        states(&p),
        state_pairs(&[("1", "pending"), ("2", "pending")])
    );
    if let Some(sqlx) = &sqlx {
        // sqlx applies them again, and dbsafe sees its work.
        let ran = sqlx_migrate(&p, sqlx, "run");
        assert_eq!(ran.matches("Applied").count(), 2, "{ran}");
        assert_eq!(
            states(&p),
            state_pairs(&[("1", "applied"), ("2", "applied")])
        );
        p.apply(&[]).expect_code(0);
        assert_eq!(steps(&p.db).len(), 4, "dbsafe applied nothing twice");
    }
}

fn sqlx_forward_only_migrations(backend: Backend) {
    let p = project(backend, "sqlx", "[apply]\nsnapshot = \"always\"\n");
    p.file("migrations/20240101000000_create_users.sql", USERS_UP)
        .file(
            "migrations/20240102000000_create_posts.sql",
            &format!("-- no-transaction\n{POSTS_UP}"),
        );
    // check: a forward-only migration has no down by design, not an error.
    p.dbsafe(&["check", "--update-lock"]).expect_code(0);
    let check = p.dbsafe(&["check"]);
    check.expect_code(0);
    assert!(!check.stdout.contains("missing-down"), "{check:?}");
    let roundtrip = p.dbsafe(&["check", "--roundtrip"]);
    roundtrip.expect_code(0);
    assert!(
        roundtrip.stdout.contains("round trip passed"),
        "{roundtrip:?}"
    );

    let run = p.apply(&[]);
    run.expect_code(0);
    let run_id = run.run_id();
    assert_eq!(
        sqlx_rows(&p.db),
        [
            sqlx_row(
                &p,
                "20240101000000_create_users.sql",
                "20240101000000",
                "create users"
            ),
            sqlx_row(
                &p,
                "20240102000000_create_posts.sql",
                "20240102000000",
                "create posts"
            ),
        ]
    );
    if let Some(sqlx) = sqlx_cli() {
        sqlx_sees_installed(&p, &sqlx, &["20240101000000", "20240102000000"]);
    }

    // Level 1 cannot revert them: it says so and offers the run's snapshot.
    let refused = p.dbrollback(&["--last", "--message-format", "json"]);
    refused.expect_code(3);
    let message = error_message(&refused);
    assert!(message.contains("forward-only"), "{message}");
    assert!(
        message.contains(&format!("cargo dbrollback {run_id} --restore")),
        "{message}"
    );
    assert!(p.db.has_table("users"));
    // Level 2 restores the snapshot taken before the run: sqlx's table goes back too.
    p.dbrollback(&[&run_id, "--restore", "--yes"])
        .expect_code(0);
    assert!(!p.db.has_table("users") && !p.db.has_table("posts"));
    assert!(sqlx_rows(&p.db).is_empty());
    assert_eq!(
        states(&p),
        state_pairs(&[("20240101000000", "pending"), ("20240102000000", "pending")])
    );
}

fn sqlx_dirty_row_until_resolved(backend: Backend) {
    let p = project(backend, "sqlx", "");
    p.file("migrations/1_create_users.up.sql", USERS_UP)
        .file("migrations/1_create_users.down.sql", USERS_DOWN)
        .file("migrations/2_create_posts.up.sql", POSTS_UP)
        .file("migrations/2_create_posts.down.sql", POSTS_DOWN);
    p.apply(&[]).expect_code(0);
    // sqlx's dirty state: a row with success = false (as sqlx leaves a failed migration on
    // MySQL, or a crash between its statements).
    p.db.execute(&format!(
        "UPDATE _sqlx_migrations SET success = {} WHERE version = 2",
        if backend == Backend::Postgres {
            "false"
        } else {
            "0"
        }
    ));
    let report = p.status_report();
    let dirty = report["dirty"].as_array().unwrap();
    assert_eq!(dirty.len(), 1, "{report}");
    assert!(dirty[0].as_str().unwrap().contains("resolve 2"), "{report}");
    let refused = p.apply(&[]);
    refused.expect_code(3);
    assert!(error_message(&refused).contains("dirty"), "{refused:?}");
    p.dbrollback(&["--last"]).expect_code(3);

    // The operator checked: posts is complete. Recorded, the row is sqlx's again.
    p.dbsafe(&["resolve", "2", "--as", "applied"])
        .expect_code(0);
    assert_eq!(
        sqlx_rows(&p.db),
        [
            sqlx_row(&p, "1_create_users.up.sql", "1", "create users"),
            sqlx_row(&p, "2_create_posts.up.sql", "2", "create posts"),
        ]
    );
    p.apply(&[]).expect_code(0);
    if let Some(sqlx) = sqlx_cli() {
        sqlx_sees_installed(&p, &sqlx, &["1", "2"]);
    }
}

fn sqlx_failing_migration(backend: Backend) {
    let p = project(backend, "sqlx", "");
    p.file("migrations/1_create_users.up.sql", USERS_UP)
        .file("migrations/1_create_users.down.sql", USERS_DOWN)
        .file(
            "migrations/2_broken.up.sql",
            "CREATE TABLE broken_t (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n",
        )
        .file("migrations/2_broken.down.sql", "DROP TABLE broken_t;\n");
    let run = p.apply(&[]);
    assert!(error_message(&run).contains("no_such_table"), "{run:?}");
    if backend != Backend::Mysql {
        // sqlx's row commits with the migration and the ledger's rows, or not at all: the
        // broken one left nothing, and the policy (revert) took back the first with its row.
        run.expect_code(1);
        assert!(!p.db.has_table("broken_t") && !p.db.has_table("users"));
        assert!(sqlx_rows(&p.db).is_empty());
        assert_eq!(
            steps(&p.db),
            ["up:1:applied", "up:2:failed", "down:1:reverted"]
        );
    } else {
        // MariaDB's DDL commits by itself: as sqlx does there, the row went in with
        // success = false first, and stays: dirty for sqlx and dbsafe alike.
        run.expect_code(4);
        assert!(p.db.has_table("broken_t"));
        let rows = sqlx_rows(&p.db);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows[1].starts_with("2|broken|0|"), "{rows:?}");
        assert_eq!(steps(&p.db), ["up:1:applied", "up:2:started"]);
        p.apply(&[]).expect_code(3);
        // Repaired by hand and recorded: sqlx's row goes, the step is resolved.
        p.db.execute("DROP TABLE broken_t");
        p.dbsafe(&["resolve", "2", "--as", "reverted"])
            .expect_code(0);
        assert_eq!(sqlx_rows(&p.db).len(), 1);
    }
    // Fixed, it applies, and sqlx agrees.
    p.file(
        "migrations/2_broken.up.sql",
        "CREATE TABLE broken_t (id INTEGER PRIMARY KEY);\n",
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(
        sqlx_rows(&p.db),
        [
            sqlx_row(&p, "1_create_users.up.sql", "1", "create users"),
            sqlx_row(&p, "2_broken.up.sql", "2", "broken"),
        ]
    );
    if let Some(sqlx) = sqlx_cli() {
        sqlx_sees_installed(&p, &sqlx, &["1", "2"]);
    }
}

fn sqlx_versions_order_as_numbers(backend: Backend) {
    let p = project(backend, "sqlx", "");
    p.file("migrations/9_create_users.up.sql", USERS_UP)
        .file("migrations/9_create_users.down.sql", USERS_DOWN)
        .file("migrations/10_create_posts.up.sql", POSTS_UP)
        .file("migrations/10_create_posts.down.sql", POSTS_DOWN);
    let run = p.apply(&[]);
    run.expect_code(0);
    assert!(
        !run.stdout.contains("out of order"),
        "10 is newer than 9: {run:?}"
    );
    assert_eq!(steps(&p.db), ["up:9:applied", "up:10:applied"]);
    assert_eq!(
        states(&p),
        state_pairs(&[("9", "applied"), ("10", "applied")])
    );
    p.dbrollback(&["--last", "--to", "9"]).expect_code(0);
    assert_eq!(steps(&p.db)[2..], ["down:10:reverted"]);
    assert!(p.db.has_table("users") && !p.db.has_table("posts"));
    // A migration older than the newest applied one is out of order, by number.
    p.apply(&[]).expect_code(0);
    p.file(
        "migrations/8_create_tags.up.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
    )
    .file("migrations/8_create_tags.down.sql", "DROP TABLE tags;\n");
    let late = p.apply(&[]);
    late.expect_code(0);
    assert!(late.stdout.contains("out of order"), "{late:?}");
}

/// A migration that creates a table and then runs for a long time.
fn slow_up(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\nSELECT pg_sleep(30);\n"
        }
        Backend::Mysql => "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\nSELECT SLEEP(30);\n",
        Backend::Sqlite => {
            "CREATE TABLE slow_t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n\
             INSERT INTO slow_t (n) SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT x FROM c) WHERE x % 1000 = 0;\n"
        }
    }
}

fn sqlx_kill_9_during_a_migration(backend: Backend) {
    let p = project(backend, "sqlx", "");
    p.file("migrations/1_create_users.up.sql", USERS_UP)
        .file("migrations/1_create_users.down.sql", USERS_DOWN)
        .file("migrations/2_slow.up.sql", slow_up(backend))
        .file("migrations/2_slow.down.sql", "DROP TABLE slow_t;\n");
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply", "--message-format", "json"]);
    let mut watched = Watched::start(cmd);
    wait_until(Duration::from_secs(20), "the slow migration to run", || {
        watched.saw("\"migration.started\",\"version\":\"2\"")
    });
    match backend {
        Backend::Postgres => wait_until(Duration::from_secs(20), "pg_sleep running", || {
            !p.db
                .strings(
                    "SELECT CAST(pid AS TEXT) AS v FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'",
                )
                .is_empty()
        }),
        Backend::Mysql => wait_until(Duration::from_secs(20), "SLEEP running", || {
            !p.db.sessions_running("SLEEP(30)").is_empty()
        }),
        Backend::Sqlite => std::thread::sleep(Duration::from_millis(1000)),
    }
    assert!(watched.saw("migration.applied"), "the first one applied");
    watched.child.kill().expect("SIGKILL");
    assert_eq!(watched.wait().code, -1);
    let first = sqlx_row(&p, "1_create_users.up.sql", "1", "create users");
    if backend != Backend::Mysql {
        // The slow migration, its sqlx row and its ledger rows were one transaction: none.
        assert_eq!(sqlx_rows(&p.db), std::slice::from_ref(&first));
        assert!(!p.db.has_table("slow_t"));
        assert_eq!(steps(&p.db), ["up:1:applied"]);
        if backend == Backend::Postgres {
            wait_until(
                Duration::from_secs(10),
                "the dead client's session to end",
                || p.db.sessions_running("pg_sleep(30)").is_empty(),
            );
        }
        p.file(
            "migrations/2_slow.up.sql",
            "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\n",
        );
        p.apply(&[]).expect_code(0);
        assert_eq!(
            sqlx_rows(&p.db),
            [first, sqlx_row(&p, "2_slow.up.sql", "2", "slow")]
        );
    } else {
        // MariaDB: the DDL committed; sqlx's row says success = false and dbsafe's step
        // `started`: one dirty migration for both tools.
        assert!(p.db.has_table("slow_t"));
        let rows = sqlx_rows(&p.db);
        assert_eq!(rows[0], first);
        assert!(rows[1].starts_with("2|slow|0|"), "{rows:?}");
        // The server sleeps on in the dead client's session, holding the lock: end it.
        for id in p.db.sessions_running("SLEEP(30)") {
            p.db.execute(&format!("KILL {id}"));
        }
        wait_until(
            Duration::from_secs(20),
            "the orphaned session to end",
            || p.db.sessions_running("SLEEP(30)").is_empty(),
        );
        let report = p.status_report();
        assert_eq!(report["dirty"].as_array().unwrap().len(), 1, "{report}");
        p.db.execute("DROP TABLE slow_t");
        p.dbsafe(&["resolve", "2", "--as", "reverted"])
            .expect_code(0);
        assert_eq!(sqlx_rows(&p.db), [first]);
    }
}

fn sqlx_tool_first_then_dbsafe(backend: Backend) {
    let Some(sqlx) = sqlx_cli() else {
        return;
    };
    let p = project(backend, "sqlx", "");
    p.file("migrations/1_create_users.up.sql", USERS_UP)
        .file("migrations/1_create_users.down.sql", USERS_DOWN);
    if backend == Backend::Sqlite {
        // sqlx opens an existing file only (as `sqlx database create` would leave it).
        std::fs::File::create(&p.db.name).unwrap();
    }
    let ran = sqlx_migrate(&p, &sqlx, "run");
    assert!(ran.contains("Applied 1/"), "{ran}");
    // dbsafe applies nothing sqlx applied, then the new migration, which sqlx sees.
    assert_eq!(states(&p), state_pairs(&[("1", "applied")]));
    let status = p.dbsafe(&["status"]);
    assert!(status.stdout.contains("by sqlx"), "{status:?}");
    // An edit of what sqlx applied is refused, from sqlx's own checksum.
    p.file(
        "migrations/1_create_users.up.sql",
        &format!("{USERS_UP}-- edited\n"),
    );
    let refused = p.apply(&[]);
    refused.expect_code(3);
    let message = error_message(&refused);
    assert!(
        message.contains("1_create_users.up.sql") && message.contains("sha384"),
        "{message}"
    );
    p.file("migrations/1_create_users.up.sql", USERS_UP);
    p.file("migrations/2_create_posts.up.sql", POSTS_UP)
        .file("migrations/2_create_posts.down.sql", POSTS_DOWN);
    let run = p.apply(&[]);
    run.expect_code(0);
    assert_eq!(steps(&p.db), ["up:2:applied"]);
    sqlx_sees_installed(&p, &sqlx, &["1", "2"]);
    assert!(!sqlx_migrate(&p, &sqlx, "run").contains("Applied"));
    // sqlx reverts dbsafe's migration; dbsafe sees it pending, and that its ledger
    // disagrees with sqlx's table until the operator records it.
    sqlx_migrate(&p, &sqlx, "revert");
    assert_eq!(
        states(&p),
        state_pairs(&[("1", "applied"), ("2", "pending")])
    );
    let disagreements = p.status_report()["disagreements"].clone();
    assert!(
        disagreements[0]
            .as_str()
            .is_some_and(|d| d.starts_with("2:") && d.contains("_sqlx_migrations does not list it")),
        "{disagreements}"
    );
    p.dbsafe(&[
        "resolve",
        "2",
        "--as",
        "reverted",
        "--reason",
        "sqlx migrate revert",
    ])
    .expect_code(0);
    assert_eq!(p.status_report()["disagreements"], serde_json::json!([]));
    assert!(!p.db.has_table("posts"));
}

// ---------------------------------------------------------------------------------------
// Plain SQL files

fn sql_files_apply_status_rollback(backend: Backend) {
    let p = project(backend, "sql-files", "");
    p.file("migrations/0008_create_users.sql", USERS_UP)
        .file("migrations/down/0008_create_users.sql", USERS_DOWN)
        .file("migrations/0009_create_posts.sql", POSTS_UP)
        .file("migrations/0009_create_posts.down.sql", POSTS_DOWN)
        .file("migrations/README.md", "applied with psql, in order\n");
    assert_eq!(
        states(&p),
        state_pairs(&[("0008", "pending"), ("0009", "pending")])
    );
    p.apply(&[]).expect_code(0);
    assert!(p.db.has_table("users") && p.db.has_table("posts"));
    assert!(!p.db.has_table("_sqlx_migrations"));
    assert!(!p.db.has_table("__diesel_schema_migrations"));
    assert_eq!(steps(&p.db), ["up:0008:applied", "up:0009:applied"]);
    assert_eq!(
        states(&p),
        state_pairs(&[("0008", "applied"), ("0009", "applied")])
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(steps(&p.db).len(), 2, "nothing applied twice");

    // Roll back, apply again: the ledger alone says what is applied.
    p.dbrollback(&["--last"]).expect_code(0);
    assert!(!p.db.has_table("users") && !p.db.has_table("posts"));
    assert_eq!(
        states(&p),
        state_pairs(&[("0008", "pending"), ("0009", "pending")])
    );
    p.file(
        "migrations/0010_add_index.sql",
        "-- dbsafe:no-transaction\nCREATE INDEX posts_title ON posts (title);\n",
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(
        steps(&p.db)[4..],
        ["up:0008:applied", "up:0009:applied", "up:0010:applied"]
    );
    let transactional = p.db.strings(
        "SELECT CAST(transactional AS CHAR(5)) AS v FROM dbsafe_steps WHERE version = '0010'",
    );
    assert_eq!(transactional.len(), 1);
    assert!(
        matches!(transactional[0].as_str(), "0" | "false"),
        "{transactional:?}"
    );
    assert_eq!(
        states(&p),
        state_pairs(&[
            ("0008", "applied"),
            ("0009", "applied"),
            ("0010", "applied")
        ])
    );

    // A .sql file without an order prefix is refused, naming it, nothing touched.
    p.file("migrations/cleanup.sql", "DELETE FROM users;\n");
    let refused = p.apply(&[]);
    refused.expect_code(2);
    let message = error_message(&refused);
    assert!(
        message.contains("cleanup.sql") && message.contains("prefix"),
        "{message}"
    );
    assert_eq!(steps(&p.db).len(), 7);
}

fn sql_files_applied_by_hand_are_not_run_again(backend: Backend) {
    let p = project(backend, "sql-files", "");
    p.file("migrations/0008_create_users.sql", USERS_UP)
        .file("migrations/0009_create_posts.sql", POSTS_UP);
    // Applied with psql before dbsafe: the ledger cannot know which.
    p.db.execute(USERS_UP);
    let refused = p.apply(&[]);
    refused.expect_code(3);
    let message = error_message(&refused);
    assert!(
        message.contains("`table users") && message.contains("2 migration(s)"),
        "{message}"
    );
    assert!(!p.db.has_table("posts"));
    assert!(!p.db.has_table("dbsafe_steps") || steps(&p.db).is_empty());
    assert!(
        message.contains("resolve VERSION --as applied"),
        "{message}"
    );
    // Recorded as applied by the operator, only the rest runs.
    p.dbsafe(&["resolve", "0008", "--as", "applied"])
        .expect_code(0);
    assert_eq!(
        states(&p),
        state_pairs(&[("0008", "applied"), ("0009", "pending")])
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(steps(&p.db), ["up:0008:applied", "up:0009:applied"]);
    assert!(p.db.has_table("posts"));
}

// ---------------------------------------------------------------------------------------
// Configuration, detection, init

#[test]
fn layout_value_is_checked_with_its_line() {
    let p = project(Backend::Sqlite, "flyway", "");
    let run = p.dbsafe(&["status"]);
    run.expect_code(2);
    assert!(run.stderr.contains("dbsafe.toml:1"), "{run:?}");
    assert!(run.stderr.contains("\"sql-files\""), "{run:?}");
}

#[test]
fn layout_is_detected_from_files_and_dependencies_and_init_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let manifest = |deps: &str| {
        std::fs::write(
            root.join("Cargo.toml"),
            format!("[package]\nname = \"svc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
        )
        .unwrap();
    };
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/lib.rs"), "").unwrap();
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    let detect = |expected: &str| {
        let d = dbsafe::layout::detect(root, &root.join("migrations"));
        assert_eq!(d.as_ref().map(|d| d.layout.as_str()), Ok(expected), "{d:?}");
    };
    // Nothing at all: diesel, as before.
    detect("diesel");
    manifest("sqlx = \"0.8\"\n");
    detect("sqlx");
    manifest("sqlx = \"0.8\"\ndiesel = \"2\"\n");
    let ambiguous = dbsafe::layout::detect(root, &root.join("migrations")).unwrap_err();
    assert!(
        ambiguous.contains("layout = \\\"sqlx\\\"") || ambiguous.contains("layout = \"sqlx\""),
        "{ambiguous}"
    );
    std::fs::write(root.join("migrations/1_init.sql"), USERS_UP).unwrap();
    detect("sqlx");
    manifest("");
    detect("sql-files");
    std::fs::remove_file(root.join("migrations/1_init.sql")).unwrap();
    std::fs::create_dir_all(root.join("migrations/2024-01-01-000000_init")).unwrap();
    std::fs::write(
        root.join("migrations/2024-01-01-000000_init/up.sql"),
        USERS_UP,
    )
    .unwrap();
    detect("diesel");

    // init writes what it detected and says so.
    std::fs::remove_dir_all(root.join("migrations")).unwrap();
    std::fs::create_dir_all(root.join("db/migrations")).unwrap();
    std::fs::write(root.join("db/migrations/0001_init.sql"), USERS_UP).unwrap();
    let run = dbsafe_tests::dbsafe_in(root, &["init"], &[]);
    run.expect_code(0);
    let config = std::fs::read_to_string(root.join("dbsafe.toml")).unwrap();
    assert!(config.contains("layout = \"sql-files\""), "{config}");
    assert!(
        config.contains("migrations-dir = \"db/migrations\""),
        "{config}"
    );
    assert!(
        run.stderr.contains("sql-files") || run.stdout.contains("sql-files"),
        "{run:?}"
    );
}
