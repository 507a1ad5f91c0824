//! Eight `apply` processes at once on one project and database: the target lock lets one
//! apply at a time, so every migration is applied exactly once; the others wait, or with
//! a short `lock-wait` fail naming the run that holds the lock.

use std::collections::BTreeSet;

use dbsafe_tests::{Backend, Project, Run, each_backend, finish};

each_backend!(
    eight_concurrent_applies_wait_their_turn,
    short_lock_wait_fails_naming_the_holder,
    lock_held_outside_a_run_names_no_run,
);

const PROCESSES: usize = 8;
const MIGRATIONS: usize = 6;

/// Something that takes a while inside a migration (roughly `tenths` tenths of a second).
fn slow_statement(backend: Backend, table: &str, tenths: u32) -> String {
    match backend {
        Backend::Postgres => format!("SELECT pg_sleep({});", f64::from(tenths) / 10.0),
        Backend::Mysql => format!("SELECT SLEEP({});", f64::from(tenths) / 10.0),
        // An insert that takes a while: a count over generated rows (about five million a
        // second), without growing the file much.
        Backend::Sqlite => format!(
            "INSERT INTO {table} (n) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {}) SELECT x FROM c);",
            tenths * 500_000
        ),
    }
}

fn versions() -> Vec<String> {
    (1..=MIGRATIONS)
        .map(|i| format!("2024080100000{i}"))
        .collect()
}

/// Migrations that each create a table, record themselves in `hits` (so a second
/// application would show) and take a while.
fn slow_migrations(p: &Project, tenths: u32) {
    let backend = p.backend();
    p.migration(
        "2024-08-01-000000_hits",
        "CREATE TABLE hits (version VARCHAR(20) NOT NULL);",
        Some("DROP TABLE hits;"),
    );
    for i in 1..=MIGRATIONS {
        let table = format!("t{i}");
        p.migration(
            &format!("2024-08-01-00000{i}_step"),
            &format!(
                "CREATE TABLE {table} (id INTEGER PRIMARY KEY, n INTEGER);\n\
                 INSERT INTO hits (version) VALUES ('2024080100000{i}');\n{}\n",
                slow_statement(backend, &table, tenths)
            ),
            Some(&format!("DROP TABLE {table};")),
        );
    }
}

fn apply_concurrently(p: &Project) -> Vec<Run> {
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| p.spawn_dbsafe(&["apply", "--message-format", "json"]))
        .collect();
    children.into_iter().map(finish).collect()
}

/// Every migration is in diesel's table, applied by exactly one `applied` step, its
/// `hits` row written once; returns the id of the one run that applied them.
fn assert_applied_exactly_once(p: &Project) -> String {
    let mut all = vec!["20240801000000".to_owned()];
    all.extend(versions());
    assert_eq!(p.db.diesel_versions(), all);
    for version in &all {
        assert_eq!(
            p.db.count(&format!(
                "dbsafe_steps WHERE version = '{version}' AND status = 'applied'"
            )),
            1,
            "applied steps of {version}"
        );
    }
    assert_eq!(
        p.db.count("dbsafe_steps WHERE status <> 'applied'"),
        0,
        "no failed, started or reverted step"
    );
    for version in versions() {
        assert_eq!(
            p.db.count(&format!("hits WHERE version = '{version}'")),
            1,
            "hits of {version}"
        );
    }
    assert_eq!(p.db.count("hits"), MIGRATIONS as i64);
    let appliers =
        p.db.strings("SELECT DISTINCT run_id AS v FROM dbsafe_steps");
    assert_eq!(
        appliers.len(),
        1,
        "one run applied everything: {appliers:?}"
    );
    assert_eq!(
        p.db.count("dbsafe_runs WHERE status <> 'succeeded'"),
        0,
        "every recorded run succeeded"
    );
    appliers.into_iter().next().unwrap()
}

fn eight_concurrent_applies_wait_their_turn(backend: Backend) {
    let p = Project::new(backend);
    slow_migrations(&p, 3);
    let runs = apply_concurrently(&p);
    for run in &runs {
        run.expect_code(0);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let applier = assert_applied_exactly_once(&p);
    // Every process recorded its run; all but one found nothing left to do.
    let ids: BTreeSet<String> = runs.iter().map(Run::run_id).collect();
    assert_eq!(ids.len(), PROCESSES, "distinct run ids");
    assert_eq!(p.db.count("dbsafe_runs"), PROCESSES as i64);
    assert!(ids.contains(&applier));
    // The others waited for the lock; those that saw the holder named a real run.
    let waits: Vec<serde_json::Value> = runs
        .iter()
        .flat_map(Run::events)
        .filter(|e| e["type"] == "lock.waiting")
        .collect();
    assert!(!waits.is_empty(), "nobody waited for the lock");
    for wait in &waits {
        if let Some(holder) = wait["holder"].as_str() {
            assert!(ids.contains(holder), "unknown holder {holder}");
        }
    }
    assert!(
        waits.iter().any(|w| w["holder"] == applier.as_str()),
        "someone waited for the run that applied the migrations: {waits:?}"
    );
    // Waiting is said while it happens, not once it is over: every process that waited
    // said so before the run that applied the migrations (and held the lock) finished.
    let applier_end = p.db.strings(&format!(
        "SELECT finished_at AS v FROM dbsafe_runs WHERE id = '{applier}'"
    ));
    for run in &runs {
        if let Some(first) = run.events().iter().find(|e| e["type"] == "lock.waiting") {
            let at = first["at"].as_str().unwrap();
            assert!(
                at < applier_end[0].as_str(),
                "lock.waiting at {at}, after the holder finished at {}",
                applier_end[0]
            );
        }
    }
}

fn short_lock_wait_fails_naming_the_holder(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\nlock-wait = \"1s\"\n");
    // About 3 s of migrations: longer than anyone waits.
    slow_migrations(&p, 5);
    let runs = apply_concurrently(&p);
    let applier = assert_applied_exactly_once(&p);
    let (ok, refused): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| r.code == 0);
    assert!(!refused.is_empty(), "nobody gave up waiting");
    for run in &refused {
        run.expect_code(3);
        let error = run
            .events()
            .into_iter()
            .find(|e| e["type"] == "error")
            .unwrap_or_else(|| panic!("no error event: {run:?}"));
        assert_eq!(error["exit_code"], 3);
        let waiting = run
            .events()
            .into_iter()
            .find(|e| e["type"] == "lock.waiting")
            .unwrap_or_else(|| panic!("a refused process said it was waiting: {run:?}"));
        assert!(waiting["at"].as_str() < error["at"].as_str().or(Some("~")));
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("locked by run {applier}")),
            "{message}"
        );
        assert!(run.stderr.contains(&applier), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    // A refused process records no run; every one that got the lock does.
    assert!(ok.iter().any(|r| r.run_id() == applier));
    assert_eq!(p.db.count("dbsafe_runs"), ok.len() as i64);
    for run in &ok {
        assert_eq!(
            p.db.strings(&format!(
                "SELECT status AS v FROM dbsafe_runs WHERE id = '{}'",
                run.run_id()
            )),
            ["succeeded"]
        );
    }
}

/// The lock held by a session that is not a dbsafe run (an orphan, an operator): apply gives
/// up after `lock-wait` without naming a run, and never names an earlier run that finished.
fn lock_held_outside_a_run_names_no_run(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[apply]\nlock-wait = \"1s\"\n");
    p.migration(
        "2024-09-01-000001_one",
        "CREATE TABLE one_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE one_t;"),
    );
    let first = p.apply(&[]);
    first.expect_code(0);
    let finished = first.run_id();
    p.migration(
        "2024-09-01-000002_two",
        "CREATE TABLE two_t (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE two_t;"),
    );

    // Take dbsafe's lock from outside, the way dbsafe takes it.
    let mut conn = p.db.connect();
    let lock_file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(format!("{}.dbsafe-lock", p.db.name));
    match backend {
        Backend::Postgres => conn
            .execute("SELECT pg_advisory_lock(110374005335653)")
            .unwrap(),
        Backend::Mysql => conn
            .execute("DO GET_LOCK(CONCAT('dbsafe:', DATABASE()), 0)")
            .unwrap(),
        Backend::Sqlite => lock_file.as_ref().unwrap().lock().unwrap(),
    }
    let refused = p.apply(&[]);
    refused.expect_code(3);
    let message = refused
        .events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .and_then(|e| e["message"].as_str().map(str::to_owned))
        .unwrap();
    assert!(message.contains("locked by"), "{message}");
    assert!(
        !message.contains(&finished),
        "names a finished run: {message}"
    );
    assert!(!message.contains("locked by run "), "{message}");
    for waiting in refused
        .events()
        .iter()
        .filter(|e| e["type"] == "lock.waiting")
    {
        assert!(waiting["holder"].is_null(), "{waiting}");
    }
    assert!(!p.db.has_table("two_t"));
    assert_eq!(p.db.count("dbsafe_runs"), 1);

    // Released, the next apply goes ahead.
    drop(conn);
    drop(lock_file);
    p.apply(&[]).expect_code(0);
    assert!(p.db.has_table("two_t"));
}
