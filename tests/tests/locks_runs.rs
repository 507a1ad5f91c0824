//! Runs that other sessions meet, and runs that stop: `status` and `resolve` during a live
//! run and after it was killed, the holder named to a waiter from the moment the lock is
//! taken, a seed blocked by another session's lock, Ctrl-C in the middle of a migration, a
//! kill between a step's row and its event (MariaDB), and invariant SQL that tries to be
//! more than one query.

use std::time::{Duration, Instant};

use dbsafe_tests::{Backend, Project, Run, TestDb, Watched, each_backend, wait_until};

each_backend!(
    status_and_resolve_during_a_live_run_and_after_a_kill,
    waiter_names_the_holder_from_the_moment_it_locks,
    seed_blocked_by_a_lock_fails_within_lock_timeout,
    ctrl_c_during_a_migration_marks_the_run_failed,
    invariant_sql_is_one_query,
    resolve_refuses_a_database_the_target_is_not_bound_to,
);

const BEFORE: &str = "2024-10-01-000001_before";
const SLOW: &str = "2024-10-01-000002_slow";
const SLOW_VERSION: &str = "20241001000002";

/// A migration that creates `slow_t`, then works for about `seconds` seconds.
fn slow_up(backend: Backend, seconds: u32) -> String {
    match backend {
        Backend::Postgres => {
            format!("CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\nSELECT pg_sleep({seconds});\n")
        }
        Backend::Mysql => {
            format!("CREATE TABLE slow_t (id INTEGER PRIMARY KEY);\nSELECT SLEEP({seconds});\n")
        }
        // A count over generated rows: about five million a second.
        Backend::Sqlite => format!(
            "CREATE TABLE slow_t (id INTEGER PRIMARY KEY, n INTEGER);\n\
             INSERT INTO slow_t (n) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {}) SELECT x FROM c);\n",
            u64::from(seconds) * 5_000_000
        ),
    }
}

fn before_and_slow(p: &Project, seconds: u32) {
    p.migration(
        BEFORE,
        "CREATE TABLE before_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE before_t;"),
    )
    .migration(
        SLOW,
        &slow_up(p.backend(), seconds),
        Some("DROP TABLE slow_t;"),
    );
}

/// `cargo dbsafe apply --message-format json`, watched, with extra environment variables.
fn watch_apply(p: &Project, env: &[(&str, &str)]) -> Watched {
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply", "--message-format", "json"]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    Watched::start(cmd)
}

/// Waits until the slow migration is running (its sleep, or its big statement).
fn wait_for_slow_statement(p: &Project, watched: &Watched) {
    let limit = Duration::from_secs(30);
    wait_until(limit, "the slow migration to start", || {
        watched.saw(&format!(
            "\"migration.started\",\"version\":\"{SLOW_VERSION}\""
        ))
    });
    match p.backend() {
        Backend::Postgres => wait_until(limit, "pg_sleep running", || {
            !p.db.sessions_running("pg_sleep(").is_empty()
        }),
        Backend::Mysql => wait_until(limit, "SLEEP running", || {
            !p.db.sessions_running("SLEEP(").is_empty()
        }),
        Backend::Sqlite => std::thread::sleep(Duration::from_millis(500)),
    }
}

fn error_message(run: &Run) -> String {
    run.events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .and_then(|e| e["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no error event in {run:?}"))
}

fn run_column(db: &TestDb, run_id: &str, column: &str) -> String {
    let rows = db.strings(&format!(
        "SELECT {column} AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ));
    assert_eq!(rows.len(), 1, "run {run_id} not in dbsafe_runs");
    rows.into_iter().next().unwrap()
}

fn step_status(db: &TestDb, run_id: &str, version: &str) -> Vec<String> {
    db.strings(&format!(
        "SELECT status AS v FROM dbsafe_steps WHERE run_id = '{run_id}' AND version = '{version}' ORDER BY seq"
    ))
}

fn events_of(db: &TestDb, run_id: &str, event_type: &str) -> i64 {
    db.count(&format!(
        "dbsafe_events WHERE run_id = '{run_id}' AND event_type = '{event_type}'"
    ))
}

fn journal(p: &Project) -> String {
    std::fs::read_to_string(p.path().join(".dbsafe/snapshots/journal.jsonl")).unwrap_or_default()
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// During a live apply, `status` says the run is running (not dirty) and `resolve` refuses
/// (exit 3) naming it; once the process is killed, `status` says the run was interrupted.
fn status_and_resolve_during_a_live_run_and_after_a_kill(backend: Backend) {
    let p = Project::new(backend);
    before_and_slow(&p, 30);
    let watched = watch_apply(&p, &[]);
    wait_for_slow_statement(&p, &watched);
    let run_id = watched.run_id();

    let live = p.status_report();
    assert_eq!(strings(&live["dirty"]), Vec::<String>::new(), "{live}");
    let running = strings(&live["running"]);
    assert_eq!(running.len(), 1, "{live}");
    assert!(
        running[0].contains(&format!("running (run {run_id}, holder ")),
        "{running:?}"
    );
    if backend == Backend::Mysql {
        // Its step is `started` (DDL commits on MariaDB): in progress, not dirty.
        assert!(running[0].contains(SLOW), "{running:?}");
    }
    assert!(
        live["lock_holder"].as_str().unwrap().contains(&run_id),
        "{live}"
    );
    assert_eq!(strings(&live["interrupted"]), Vec::<String>::new());
    assert_eq!(live["last_runs"][0]["status"], "running", "{live}");

    let refused = p.dbsafe(&[
        "resolve",
        SLOW_VERSION,
        "--as",
        "reverted",
        "--message-format",
        "json",
    ]);
    refused.expect_code(3);
    let why = error_message(&refused);
    assert!(why.contains(&format!("locked by run {run_id}")), "{why}");
    assert_eq!(
        p.db.count("dbsafe_events WHERE event_type = 'step.resolved'"),
        0
    );

    let mut watched = watched;
    watched.child.kill().expect("SIGKILL");
    assert_eq!(watched.wait().code, -1);
    match backend {
        // The server ends the dead client's session (and its lock) within a second or so.
        Backend::Postgres => wait_until(Duration::from_secs(15), "the session to end", || {
            p.db.sessions_running("pg_sleep(").is_empty()
        }),
        // MariaDB goes on sleeping in the orphaned session, holding the lock: end it.
        Backend::Mysql => {
            for id in p.db.sessions_running("SLEEP(") {
                p.db.execute(&format!("KILL {id}"));
            }
            wait_until(Duration::from_secs(15), "the session to end", || {
                p.db.sessions_running("SLEEP(").is_empty()
            });
        }
        Backend::Sqlite => {}
    }
    let after = p.status_report();
    assert_eq!(strings(&after["interrupted"]), [run_id.as_str()], "{after}");
    assert_eq!(strings(&after["running"]), Vec::<String>::new(), "{after}");
    assert!(after["lock_holder"].is_null(), "{after}");
    assert_eq!(after["last_runs"][0]["id"], run_id.as_str());
    assert_eq!(after["last_runs"][0]["status"], "interrupted");
    let human = p.dbsafe(&["status"]);
    assert!(
        human.stdout.contains(&format!("interrupted: run {run_id}")),
        "{}",
        human.stdout
    );
    // The ledger itself is not written by status.
    assert_eq!(run_column(&p.db, &run_id, "status"), "running");

    if backend == Backend::Mysql {
        // Now the step is dirty, and resolve (under the lock) records the repair.
        let dirty = strings(&after["dirty"]);
        assert_eq!(dirty.len(), 1, "{after}");
        assert!(dirty[0].contains(SLOW), "{dirty:?}");
        p.db.execute("DROP TABLE slow_t");
        p.dbsafe(&["resolve", SLOW_VERSION, "--as", "reverted"])
            .expect_code(0);
        assert_eq!(step_status(&p.db, &run_id, SLOW_VERSION), ["failed"]);
        assert_eq!(events_of(&p.db, &run_id, "step.resolved"), 1);
    } else {
        assert_eq!(strings(&after["dirty"]), Vec::<String>::new(), "{after}");
    }
    // The next apply goes through.
    p.migration(
        SLOW,
        "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE slow_t;"),
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20241001000001", SLOW_VERSION]);
    // ... and marks the interrupted run failed.
    assert_eq!(run_column(&p.db, &run_id, "status"), "failed");
    assert!(run_column(&p.db, &run_id, "error").contains("interrupted"));
    assert_eq!(
        strings(&p.status_report()["interrupted"]),
        Vec::<String>::new()
    );
}

/// A second apply that finds the lock taken names the run holding it, even while that run
/// has only just taken it (on MariaDB too, whose holder is read from the ledger).
fn waiter_names_the_holder_from_the_moment_it_locks(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\nlock-wait = \"1s\"\n");
    p.migration(
        BEFORE,
        "CREATE TABLE before_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE before_t;"),
    );
    p.apply(&[]).expect_code(0);
    p.migration(
        SLOW,
        "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE slow_t;"),
    );
    // The holder pauses for 4 s right after taking the lock, before it writes anything.
    let holder = watch_apply(&p, &[("DBSAFE_TEST_PAUSE_AT", "after-lock:4000")]);
    wait_until(Duration::from_secs(30), "the holder to pause", || {
        holder.saw_on_stderr("paused at after-lock")
    });
    let refused = p.apply(&[]);
    let status = p.status_report();
    let holder = holder.wait();
    holder.expect_code(0);
    let holder_id = holder.run_id();
    refused.expect_code(3);
    let why = error_message(&refused);
    assert!(why.contains(&format!("locked by run {holder_id}")), "{why}");
    let waiting: Vec<serde_json::Value> = refused
        .events()
        .into_iter()
        .filter(|e| e["type"] == "lock.waiting")
        .collect();
    assert!(
        waiting.iter().any(|w| w["holder"] == holder_id.as_str()),
        "{waiting:?}"
    );
    assert!(
        status["lock_holder"]
            .as_str()
            .is_some_and(|h| h.contains(&holder_id)),
        "{status}"
    );
    assert!(p.db.has_table("slow_t"));
    assert_eq!(
        p.db.count("dbsafe_runs"),
        2,
        "the refused apply recorded no run"
    );
}

/// A seed waiting for a lock another session holds fails after `lock-timeout`, with a
/// message saying so; the run is recorded failed and nothing of the seed stays.
fn seed_blocked_by_a_lock_fails_within_lock_timeout(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-10-02-000001_colors",
        "CREATE TABLE colors (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL);",
        Some("DROP TABLE colors;"),
    );
    p.apply(&[]).expect_code(0);
    p.file(
        "seeds/colors.sql",
        "INSERT INTO colors (id, name) VALUES (1, 'red');\n",
    );
    p.write_config(
        "[apply]\nlock-timeout = \"1s\"\non-failure = \"stop\"\n\n[[seed]]\nname = \"colors\"\nfile = \"seeds/colors.sql\"\n",
    );
    // The blocker takes its lock while apply pauses just before the seeds.
    let watched = watch_apply(&p, &[("DBSAFE_TEST_PAUSE_AT", "before-seeds:1500")]);
    wait_until(Duration::from_secs(30), "apply to reach the seeds", || {
        watched.saw_on_stderr("paused at before-seeds")
    });
    let paused = Instant::now();
    let mut blocker = p.db.connect();
    match backend {
        Backend::Postgres => blocker
            .execute("BEGIN; LOCK TABLE colors IN ACCESS EXCLUSIVE MODE")
            .unwrap(),
        Backend::Mysql => blocker.execute("LOCK TABLES colors WRITE").unwrap(),
        Backend::Sqlite => blocker.execute("BEGIN IMMEDIATE").unwrap(),
    }
    if backend == Backend::Sqlite {
        // SQLite's lock is the whole file's: let go once the seed has given up (1.5 s of
        // pause + 1 s), so that apply can record the failure (it waits up to 5 s for that).
        std::thread::sleep(Duration::from_millis(4000).saturating_sub(paused.elapsed()));
        blocker.execute("ROLLBACK").unwrap();
    }
    let run_id = watched.run_id();
    let run = watched.wait();
    let took = paused.elapsed();
    run.expect_code(1);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let message = error_message(&run);
    assert!(message.contains("seed colors failed"), "{message}");
    assert!(message.contains("lock-timeout"), "{message}");
    drop(blocker);
    assert_eq!(run_column(&p.db, &run_id, "status"), "failed");
    assert!(run_column(&p.db, &run_id, "error").contains("seed colors failed"));
    assert_eq!(events_of(&p.db, &run_id, "run.failed"), 1);
    assert_eq!(p.db.count("colors"), 0);
}

/// SIGINT while a migration runs: the run is marked failed (interrupted) in the ledger and
/// the journal before the process exits with 130; the migration left nothing (MariaDB:
/// its DDL committed, so its step stays `started` and the target is dirty).
fn ctrl_c_during_a_migration_marks_the_run_failed(backend: Backend) {
    let p = Project::new(backend);
    let seconds = if backend == Backend::Sqlite { 3 } else { 30 };
    before_and_slow(&p, seconds);
    let watched = watch_apply(&p, &[]);
    wait_for_slow_statement(&p, &watched);
    let run_id = watched.run_id();
    let sent = Instant::now();
    watched.signal("INT");
    let run = watched.wait();
    assert_eq!(run.code, 130, "{run:?}");
    // PostgreSQL and MariaDB cancel the statement; SQLite waits for it to end.
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "{:?}",
        sent.elapsed()
    );
    assert!(
        run.stderr.contains(&format!(
            "run {run_id} marked failed (interrupted) in the ledger and the journal"
        )),
        "{}",
        run.stderr
    );

    assert_eq!(run_column(&p.db, &run_id, "status"), "failed");
    assert!(run_column(&p.db, &run_id, "error").contains("interrupted"));
    assert_eq!(events_of(&p.db, &run_id, "run.failed"), 1);
    assert_eq!(p.db.count("dbsafe_runs WHERE status = 'running'"), 0);
    let journaled: Vec<serde_json::Value> = journal(&p)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["run_id"] == run_id.as_str() && e["type"] == "run.failed")
        .collect();
    assert_eq!(journaled.len(), 1, "{}", journal(&p));
    assert!(
        journaled[0]["error"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    assert_eq!(
        journaled[0]["still_applied"],
        serde_json::json!(["20241001000001"]),
        "{}",
        journaled[0]
    );

    // The failure policy did not run: the first migration stays.
    assert!(p.db.has_table("before_t"));
    assert_eq!(step_status(&p.db, &run_id, "20241001000001"), ["applied"]);
    let slow_steps = step_status(&p.db, &run_id, SLOW_VERSION);
    if backend == Backend::Mysql {
        // The statement was stopped (the lock is free), the DDL stayed: dirty.
        wait_until(Duration::from_secs(10), "SLEEP to stop", || {
            p.db.sessions_running("SLEEP(").is_empty()
        });
        assert!(p.db.has_table("slow_t"));
        assert_eq!(slow_steps, ["started"]);
        let status = p.status_report();
        assert_eq!(strings(&status["dirty"]).len(), 1, "{status}");
        assert_eq!(strings(&status["interrupted"]), Vec::<String>::new());
        return;
    }
    assert!(!p.db.has_table("slow_t"));
    assert!(slow_steps.iter().all(|s| s == "failed"), "{slow_steps:?}");
    assert_eq!(p.db.diesel_versions(), ["20241001000001"]);
    p.migration(
        SLOW,
        "CREATE TABLE slow_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE slow_t;"),
    );
    p.apply(&[]).expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20241001000001", SLOW_VERSION]);
}

/// MariaDB: killed between a non-transactional step's `applied` row and its
/// `migration.applied` event, the two are rolled back together (the step stays `started`,
/// the target dirty): every `applied` step has its event.
#[test]
fn kill_between_a_step_row_and_its_event_leaves_no_step_without_its_event() {
    let p = Project::new(Backend::Mysql);
    p.migration(
        "2024-10-03-000001_first",
        "CREATE TABLE first_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE first_t;"),
    )
    .migration(
        "2024-10-03-000002_second",
        "CREATE TABLE second_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE second_t;"),
    );
    let watched = watch_apply(&p, &[("DBSAFE_TEST_PAUSE_AT", "after-step-applied")]);
    wait_until(Duration::from_secs(30), "the pause", || {
        watched.saw_on_stderr("paused at after-step-applied")
    });
    let run_id = watched.run_id();
    let mut watched = watched;
    watched.child.kill().expect("SIGKILL");
    watched.wait();

    let applied_without_event = |run: &str| {
        p.db.strings(&format!(
            "SELECT s.version AS v FROM dbsafe_steps s WHERE s.run_id = '{run}' AND s.status = 'applied' \
             AND (SELECT count(*) FROM dbsafe_events e WHERE e.run_id = s.run_id \
                  AND e.event_type = 'migration.applied' AND e.payload LIKE CONCAT('%\"', s.version, '\"%')) <> 1"
        ))
    };
    assert!(p.db.has_table("first_t"), "the DDL committed on its own");
    assert_eq!(step_status(&p.db, &run_id, "20241003000001"), ["started"]);
    assert_eq!(events_of(&p.db, &run_id, "migration.applied"), 0);
    assert_eq!(applied_without_event(&run_id), Vec::<String>::new());
    let status = p.status_report();
    assert_eq!(strings(&status["dirty"]).len(), 1, "{status}");

    // Repaired and resolved, the next apply records each step with its event.
    p.dbsafe(&["resolve", "20241003000001", "--as", "applied"])
        .expect_code(0);
    let next = p.apply(&[]);
    next.expect_code(0);
    let next_id = next.run_id();
    assert_eq!(step_status(&p.db, &next_id, "20241003000002"), ["applied"]);
    assert_eq!(events_of(&p.db, &next_id, "migration.applied"), 1);
    assert_eq!(applied_without_event(&next_id), Vec::<String>::new());
    assert_eq!(p.db.diesel_versions(), ["20241003000001", "20241003000002"]);
}

/// An invariant's SQL is one query: a second statement, or SQL that closes the subquery it
/// is wrapped in, is bad configuration (exit 2, the invariant named) and runs nothing; a
/// trailing `-- comment` is fine, in an invariant and in a migration's verify.sql.
fn invariant_sql_is_one_query(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-10-04-000001_t",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t (id) VALUES (1);",
        Some("DROP TABLE t;"),
    );
    p.apply(&[]).expect_code(0);
    let runs = p.db.count("dbsafe_runs");
    for (name, sql) in [
        ("sneaky", "SELECT 1) x; DROP TABLE t; --"),
        ("two", "SELECT count(*) FROM t; DROP TABLE t"),
        ("paren", "SELECT 1) AS x, (SELECT 2"),
    ] {
        p.write_config(&format!(
            "[[invariant]]\nname = \"{name}\"\nsql = \"{sql}\"\nexpect = \"= 1\"\n"
        ));
        let mut cmd = p.command("cargo-dbverify");
        cmd.args(["dbverify", "--message-format", "json"]);
        let verified = dbsafe_tests::run(cmd);
        verified.expect_code(2);
        let message = error_message(&verified);
        assert!(
            message.contains(&format!("invariant `{name}`")),
            "{message}"
        );
        p.apply(&[]).expect_code(2);
        assert!(p.db.has_table("t"), "{name} dropped the table");
        assert_eq!(p.db.count("t"), 1);
        assert_eq!(
            p.db.count("dbsafe_runs"),
            runs,
            "{name}: a run was recorded"
        );
    }
    p.write_config(
        "[[invariant]]\nname = \"commented\"\nsql = \"SELECT count(*) FROM t -- one row\"\nexpect = \"= 1\"\n",
    );
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--message-format", "json"]);
    dbsafe_tests::run(cmd).expect_code(0);
    p.migration(
        "2024-10-04-000002_u",
        "CREATE TABLE u (id INTEGER PRIMARY KEY);\nINSERT INTO u (id) VALUES (1);",
        Some("DROP TABLE u;"),
    )
    .file(
        "migrations/2024-10-04-000002_u/verify.sql",
        "SELECT count(*) = 1 FROM u -- exactly one row\n",
    );
    p.apply(&[]).expect_code(0);
    assert!(p.db.has_table("u"));
}

/// A seed, and an invariant, that run longer than `statement-timeout` are stopped there
/// (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`; SQLite has none).
fn long_seed_and_invariant_stop_at_statement_timeout(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-10-05-000001_t",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE t;"),
    );
    p.apply(&[]).expect_code(0);
    let (sleep, check) = if backend == Backend::Postgres {
        (
            "SELECT pg_sleep(8)",
            "SELECT count(*) = 1 FROM (SELECT pg_sleep(8)) s",
        )
    } else {
        ("SELECT SLEEP(8)", "SELECT SLEEP(8) = 0")
    };
    p.file("seeds/slow.sql", &format!("{sleep};\n"));
    p.write_config(&format!(
        "[apply]\nstatement-timeout = \"1s\"\non-failure = \"stop\"\n\n[[seed]]\nname = \"slow\"\nfile = \"seeds/slow.sql\"\n\n\
         [[invariant]]\nname = \"sleepy\"\nsql = \"{check}\"\nexpect = \"true\"\n"
    ));
    let started = Instant::now();
    let run = p.apply(&[]);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let message = error_message(&run);
    assert!(message.contains("seed slow failed"), "{message}");
    assert!(message.contains("statement-timeout"), "{message}");
    assert_eq!(run_column(&p.db, &run.run_id(), "status"), "failed");

    let started = Instant::now();
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--message-format", "json", "--only", "sleepy"]);
    let verified = dbsafe_tests::run(cmd);
    verified.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        verified.stdout.contains("timeout") || verified.stdout.contains("max_statement_time"),
        "{}",
        verified.stdout
    );
}

#[test]
fn long_seed_and_invariant_stop_at_statement_timeout_postgres() {
    long_seed_and_invariant_stop_at_statement_timeout(Backend::Postgres);
}

#[test]
fn long_seed_and_invariant_stop_at_statement_timeout_mysql() {
    long_seed_and_invariant_stop_at_statement_timeout(Backend::Mysql);
}

/// `resolve` checks the database's identity as apply does: aimed at another database than
/// the one the target is bound to, it refuses (exit 3) and writes nothing there.
fn resolve_refuses_a_database_the_target_is_not_bound_to(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-10-06-000001_t",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE t;"),
    );
    p.apply(&[]).expect_code(0);
    let other = TestDb::new(backend, p.path());
    other.execute("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)");
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.test]\nurl = \"{}\"\nenvironment = \"test\"\n",
            other.url
        ),
    );
    let refused = p.dbsafe(&[
        "resolve",
        "20241006000001",
        "--as",
        "applied",
        "--message-format",
        "json",
    ]);
    refused.expect_code(3);
    let why = error_message(&refused);
    assert!(why.contains("is bound to database"), "{why}");
    for table in ["dbsafe_runs", "dbsafe_meta", "__diesel_schema_migrations"] {
        assert!(!other.has_table(table), "{table} was created");
    }
}
