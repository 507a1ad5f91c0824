//! Faults during apply: a migration failing half-way, the dbsafe process killed with
//! SIGKILL during a long migration, the server connection terminated mid-migration.
//! Afterwards the schema, diesel's table and dbsafe's ledger must agree, and the next
//! apply must converge.

use std::thread::sleep;
use std::time::{Duration, Instant};

use dbsafe_tests::{Backend, Project, TestDb, Watched, each_backend, wait_until};

each_backend!(
    migration_failing_half_way,
    on_failure_stop_keeps_earlier_migrations,
    kill_9_during_long_migration,
);

const FIRST: &str = "2024-05-01-000001_first";
const SECOND: &str = "2024-05-01-000002_second";
const BROKEN: &str = "2024-05-01-000003_broken";
const BROKEN_VERSION: &str = "20240501000003";
/// Creates a table, then fails: the second statement names a table that does not exist.
const BROKEN_UP: &str =
    "CREATE TABLE broken_t (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table (id) VALUES (1);\n";

fn two_good_and_a_broken_one(p: &Project) {
    p.migration(
        FIRST,
        "CREATE TABLE first_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE first_t;"),
    )
    .migration(
        SECOND,
        "CREATE TABLE second_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE second_t;"),
    )
    .migration(BROKEN, BROKEN_UP, Some("DROP TABLE broken_t;"));
}

fn run_status(db: &TestDb, run_id: &str) -> String {
    let rows = db.strings(&format!(
        "SELECT status AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ));
    assert_eq!(rows.len(), 1, "run {run_id} not in dbsafe_runs");
    rows.into_iter().next().unwrap()
}

/// `direction:version:status` of a run's steps, in order.
fn steps(db: &TestDb, run_id: &str) -> Vec<String> {
    db.strings(&format!(
        "SELECT {} AS v FROM dbsafe_steps WHERE run_id = '{run_id}' ORDER BY seq",
        concat(
            db.backend,
            &["direction", "':'", "version", "':'", "status"]
        )
    ))
}

fn concat(backend: Backend, parts: &[&str]) -> String {
    if backend == Backend::Mysql {
        format!("CONCAT({})", parts.join(", "))
    } else {
        parts.join(" || ")
    }
}

fn error_message(run: &dbsafe_tests::Run) -> String {
    run.events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .and_then(|e| e["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no error event in {run:?}"))
}

fn migration_failing_half_way(backend: Backend) {
    let p = Project::new(backend);
    two_good_and_a_broken_one(&p);
    let run = p.apply(&[]);
    let run_id = run.run_id();
    let message = error_message(&run);
    assert!(message.contains(BROKEN), "{message}");
    assert!(message.contains("no_such_table"), "{message}");
    let failed = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "migration.failed")
        .expect("migration.failed");
    assert_eq!(failed["version"], BROKEN_VERSION);

    if backend != Backend::Mysql {
        // One transaction per migration: nothing of the broken one remains, and the policy
        // (revert, the default) took back the two before it, newest first.
        run.expect_code(1);
        assert_eq!(failed["dirty"], false);
        assert!(!p.db.has_table("broken_t"));
        assert!(!p.db.has_table("first_t") && !p.db.has_table("second_t"));
        assert!(p.db.diesel_versions().is_empty());
        assert_eq!(run_status(&p.db, &run_id), "reverted");
        assert_eq!(
            steps(&p.db, &run_id),
            [
                "up:20240501000001:applied",
                "up:20240501000002:applied",
                "up:20240501000003:failed",
                "down:20240501000002:reverted",
                "down:20240501000001:reverted",
            ]
        );
        let error = p.db.strings(&format!(
            "SELECT error AS v FROM dbsafe_steps WHERE run_id = '{run_id}' AND status = 'failed'"
        ));
        assert!(error[0].contains("no_such_table"), "{error:?}");
        assert_eq!(
            p.db.count(&format!(
                "dbsafe_events WHERE run_id = '{run_id}' AND event_type = 'migration.reverted'"
            )),
            2
        );
        assert!(p.status_report()["dirty"].as_array().unwrap().is_empty());
        // Fixed, it applies.
        p.migration(
            BROKEN,
            "CREATE TABLE broken_t (id INTEGER PRIMARY KEY);",
            Some("DROP TABLE broken_t;"),
        );
        p.apply(&[]).expect_code(0);
        assert_eq!(p.db.diesel_versions().len(), 3);
        return;
    }

    // MariaDB: DDL commits implicitly, so the CREATE TABLE stayed. The target is dirty
    // and dbsafe says so: exit 4, the migration named.
    run.expect_code(4);
    assert_eq!(failed["dirty"], true);
    assert!(message.contains("dirty"), "{message}");
    assert!(message.contains(BROKEN_VERSION), "{message}");
    assert!(p.db.has_table("broken_t"));
    // The earlier migrations are not reverted past a dirty one: they stay, as the message says.
    assert_eq!(p.db.diesel_versions(), ["20240501000001", "20240501000002"]);
    assert!(p.db.has_table("first_t") && p.db.has_table("second_t"));
    assert_eq!(run_status(&p.db, &run_id), "failed");
    assert_eq!(
        steps(&p.db, &run_id),
        [
            "up:20240501000001:applied",
            "up:20240501000002:applied",
            "up:20240501000003:started",
        ]
    );
    let dirty = p.status_report()["dirty"].clone();
    assert_eq!(dirty.as_array().unwrap().len(), 1, "{dirty}");
    let explained = dirty[0].as_str().unwrap();
    assert!(explained.contains(BROKEN), "{explained}");
    assert!(explained.contains(&run_id), "{explained}");
    assert!(
        explained.contains(&format!("resolve {BROKEN_VERSION}")),
        "{explained}"
    );

    // Every apply is refused until it is resolved, and says which step.
    let refused = p.apply(&[]);
    refused.expect_code(3);
    let why = error_message(&refused);
    assert!(why.contains(BROKEN) && why.contains("dirty"), "{why}");
    assert_eq!(
        p.db.count("dbsafe_runs"),
        1,
        "a refused apply records no run"
    );

    // Repair by hand, record it, fix the migration: apply goes on.
    p.db.execute("DROP TABLE broken_t");
    let resolved = p.dbsafe(&["resolve", BROKEN_VERSION, "--as", "reverted"]);
    resolved.expect_code(0);
    assert_eq!(
        steps(&p.db, &run_id)[2],
        "up:20240501000003:failed",
        "resolved as reverted"
    );
    assert!(p.status_report()["dirty"].as_array().unwrap().is_empty());
    p.migration(
        BROKEN,
        "CREATE TABLE broken_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE broken_t;"),
    );
    let next = p.apply(&[]);
    next.expect_code(0);
    assert_eq!(steps(&p.db, &next.run_id()), ["up:20240501000003:applied"]);
    assert_eq!(p.db.diesel_versions().len(), 3);
    assert!(p.db.has_table("broken_t"));
}

fn on_failure_stop_keeps_earlier_migrations(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\non-failure = \"stop\"\n");
    p.migration(
        FIRST,
        "CREATE TABLE first_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE first_t;"),
    )
    .migration(
        SECOND,
        "CREATE TABLE second_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE second_t;"),
    );
    if backend == Backend::Mysql {
        // A failure that leaves MariaDB dirty stops with exit 4 whatever the policy; a
        // verify.sql that does not hold is a clean failure there, so use that.
        p.migration(
            BROKEN,
            "CREATE TABLE broken_t (id INTEGER PRIMARY KEY);",
            Some("DROP TABLE broken_t;"),
        )
        .file(
            &format!("migrations/{BROKEN}/verify.sql"),
            "SELECT count(*) = 1 FROM broken_t;\n",
        );
    } else {
        p.migration(BROKEN, BROKEN_UP, Some("DROP TABLE broken_t;"));
    }
    let run = p.apply(&[]);
    run.expect_code(1);
    let run_id = run.run_id();
    let message = error_message(&run);
    assert!(message.contains("on-failure = stop"), "{message}");
    assert_eq!(run_status(&p.db, &run_id), "failed");
    assert!(p.db.has_table("first_t") && p.db.has_table("second_t"));
    assert!(
        !run.event_types().contains(&"migration.reverted".to_owned()),
        "{:?}",
        run.event_types()
    );
    if backend == Backend::Mysql {
        // Applied, not verified, and kept: `stop` leaves what committed.
        assert_eq!(
            p.db.diesel_versions(),
            ["20240501000001", "20240501000002", BROKEN_VERSION]
        );
        assert_eq!(
            steps(&p.db, &run_id),
            [
                "up:20240501000001:applied",
                "up:20240501000002:applied",
                "up:20240501000003:applied",
            ]
        );
    } else {
        assert_eq!(p.db.diesel_versions(), ["20240501000001", "20240501000002"]);
        assert!(!p.db.has_table("broken_t"));
        assert_eq!(
            steps(&p.db, &run_id),
            [
                "up:20240501000001:applied",
                "up:20240501000002:applied",
                "up:20240501000003:failed",
            ]
        );
        let error = p.db.strings(&format!(
            "SELECT error AS v FROM dbsafe_runs WHERE id = '{run_id}'"
        ));
        assert!(error[0].contains(BROKEN), "{error:?}");
    }
}

/// `cargo dbsafe ARGS` started and watched.
fn watch(p: &Project, args: &[&str]) -> Watched {
    let mut cmd = p.command("cargo-dbsafe");
    cmd.arg("dbsafe").args(args);
    Watched::start(cmd)
}

const SLOW: &str = "2024-06-01-000002_slow";
const SLOW_VERSION: &str = "20240601000002";

/// A migration that creates a table and then runs for a long time.
fn slow_up(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\nSELECT pg_sleep(30);\n"
        }
        Backend::Mysql => "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\nSELECT SLEEP(30);\n",
        // A big insert: two billion generated rows, one in a thousand kept.
        Backend::Sqlite => {
            "CREATE TABLE slow_t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n\
             INSERT INTO slow_t (n) SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT x FROM c) WHERE x % 1000 = 0;\n"
        }
    }
}

fn kill_9_during_long_migration(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-06-01-000001_before",
        "CREATE TABLE before_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE before_t;"),
    )
    .migration(SLOW, slow_up(backend), Some("DROP TABLE slow_t;"));
    let watched = watch(&p, &["apply", "--message-format", "json"]);
    let limit = Duration::from_secs(20);
    match backend {
        // The sleep is running: the CREATE TABLE before it has run, uncommitted.
        Backend::Postgres => wait_until(limit, "pg_sleep running", || {
            !p.db
                .strings(
                    "SELECT CAST(pid AS TEXT) AS v FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'",
                )
                .is_empty()
        }),
        // DDL committed on its own; the step is `started`; the sleep is running.
        Backend::Mysql => wait_until(limit, "SLEEP running", || {
            !p.db.sessions_running("SLEEP(30)").is_empty()
                && p.db.has_table("slow_t")
                && p.db.count(&format!(
                    "dbsafe_steps WHERE version = '{SLOW_VERSION}' AND status = 'started'"
                )) == 1
        }),
        Backend::Sqlite => {
            wait_until(limit, "the slow migration to start", || {
                watched.saw(&format!(
                    "\"migration.started\",\"version\":\"{SLOW_VERSION}\""
                ))
            });
            sleep(Duration::from_millis(1000));
        }
    }
    assert!(
        watched.saw("migration.applied"),
        "the first migration was applied"
    );
    let killed_run = watched.run_id();
    let journal = format!("{}-journal", p.db.name);
    let mut watched = watched;
    watched.child.kill().expect("SIGKILL");
    let out = watched.wait();
    assert_eq!(out.code, -1, "killed by a signal\n{}", out.stdout);
    if backend == Backend::Sqlite {
        // The big insert was in flight: its rollback journal is left behind, hot.
        assert!(std::path::Path::new(&journal).exists(), "{journal}");
    }

    // Ledger and schema agree right after the kill.
    assert!(p.db.has_table("before_t"));
    assert_eq!(p.db.diesel_versions(), ["20240601000001"]);
    assert_eq!(run_status(&p.db, &killed_run), "running");
    if backend == Backend::Mysql {
        // Partial DDL stayed, and the ledger says so: a dirty step.
        assert!(p.db.has_table("slow_t"));
        assert_eq!(
            steps(&p.db, &killed_run),
            ["up:20240601000001:applied", "up:20240601000002:started"]
        );
        // The server goes on sleeping in the dead client's session, holding the lock,
        // which names the killed run.
        p.write_config("[apply]\nlock-wait = \"1s\"\n");
        let locked = p.apply(&[]);
        locked.expect_code(3);
        let why = error_message(&locked);
        assert!(
            why.contains(&format!("locked by run {killed_run}")),
            "{why}"
        );
        // End it as an operator would (KILL), then the lock is free and the target dirty.
        for id in p.db.sessions_running("SLEEP(30)") {
            p.db.execute(&format!("KILL {id}"));
        }
        wait_until(limit, "the orphaned session to end", || {
            p.db.sessions_running("SLEEP(30)").is_empty()
        });
        let dirty = p.apply(&[]);
        dirty.expect_code(3);
        let why = error_message(&dirty);
        assert!(why.contains(SLOW) && why.contains("dirty"), "{why}");
        p.db.execute("DROP TABLE slow_t");
        p.dbsafe(&["resolve", SLOW_VERSION, "--as", "reverted"])
            .expect_code(0);
    } else {
        assert!(!p.db.has_table("slow_t"));
        assert_eq!(steps(&p.db, &killed_run), ["up:20240601000001:applied"]);
        if backend == Backend::Postgres {
            // The server notices the dead client and ends its session (rolling back and
            // releasing the lock) without anyone's help, long before the 30 s sleep ends.
            wait_until(
                Duration::from_secs(10),
                "the dead client's session to end",
                || p.db.sessions_running("pg_sleep(30)").is_empty(),
            );
        }
    }

    // Replace the slow migration by a fast one: the next apply converges and marks the
    // killed run failed.
    p.migration(
        SLOW,
        "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE slow_t;"),
    );
    let next = p.apply(&[]);
    next.expect_code(0);
    let warnings: Vec<String> = next
        .events()
        .into_iter()
        .filter(|e| e["type"] == "preflight.warning")
        .map(|e| e["message"].to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&killed_run) && w.contains("interrupted")),
        "{warnings:?}"
    );
    assert_eq!(run_status(&p.db, &killed_run), "failed");
    let error = p.db.strings(&format!(
        "SELECT error AS v FROM dbsafe_runs WHERE id = '{killed_run}'"
    ));
    assert!(error[0].contains("interrupted"), "{error:?}");
    assert_eq!(run_status(&p.db, &next.run_id()), "succeeded");
    assert_eq!(steps(&p.db, &next.run_id()), ["up:20240601000002:applied"]);
    assert_eq!(p.db.diesel_versions(), ["20240601000001", SLOW_VERSION]);
    assert!(p.db.has_table("slow_t"));
    assert_eq!(p.db.count("dbsafe_runs WHERE status = 'running'"), 0);
    assert!(p.status_report()["dirty"].as_array().unwrap().is_empty());
}

/// PostgreSQL: the server ends dbsafe's session in the middle of a migration.
#[test]
fn connection_terminated_mid_migration() {
    let p = Project::new(Backend::Postgres);
    p.migration(
        "2024-07-01-000001_kept",
        "CREATE TABLE kept_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE kept_t;"),
    )
    .migration(
        "2024-07-01-000002_doomed",
        "CREATE TABLE doomed_t (id INTEGER PRIMARY KEY);\nINSERT INTO doomed_t (id) VALUES (1);\nSELECT pg_sleep(30);\n",
        Some("DROP TABLE doomed_t;"),
    );
    let watched = watch(&p, &["apply", "--message-format", "json"]);
    wait_until(Duration::from_secs(20), "pg_sleep running", || {
        !p.db.sessions_running("pg_sleep(30)").is_empty()
    });
    let terminated = p.db.strings(
        "SELECT CAST(pg_terminate_backend(pid) AS TEXT) AS v FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'",
    );
    assert_eq!(terminated, ["true"]);
    let started = Instant::now();
    let run_id = watched.run_id();
    let dbsafe_tests::Run {
        code,
        stdout,
        stderr,
    } = watched.wait();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "dbsafe did not notice promptly"
    );
    assert_ne!(code, -1, "exited, not killed");
    assert!(code == 1 || code == 4, "exit {code}\n{stdout}\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(stderr.starts_with("error:"), "{stderr}");
    let error: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("no error event\n{stdout}"));
    assert_eq!(error["exit_code"], code);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("2024-07-01-000002_doomed"), "{message}");

    // No half state: nothing of the interrupted migration, in the schema or the ledger.
    assert!(!p.db.has_table("doomed_t"));
    assert!(
        !p.db
            .diesel_versions()
            .contains(&"20240701000002".to_owned())
    );
    assert_eq!(
        p.db.count(
            "dbsafe_steps WHERE version = '20240701000002' AND status IN ('applied', 'started')"
        ),
        0
    );
    let status = run_status(&p.db, &run_id);
    if code == 1 {
        // Handled per policy (revert): the earlier migration was taken back.
        assert_eq!(status, "reverted");
        assert!(!p.db.has_table("kept_t"));
        assert!(p.db.diesel_versions().is_empty());
    } else {
        assert_ne!(status, "running", "the run's end is recorded");
        assert_eq!(p.db.has_table("kept_t"), !p.db.diesel_versions().is_empty());
    }

    // The lock went with the session: the next apply runs at once.
    p.write_config("[apply]\nlock-wait = \"2s\"\n");
    p.migration(
        "2024-07-01-000002_doomed",
        "CREATE TABLE doomed_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE doomed_t;"),
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20240701000001", "20240701000002"]);
}
