//! Fleets: `apply --fleet` over databases on two PostgreSQL servers, a MariaDB server and
//! SQLite files, with canary waves, max-failures, resuming, partitions, fleet status,
//! verify and rollback of a fleet run; faults: a member's migration fails, a server stops
//! mid-run, a member's identity changed.
//!
//! The second PostgreSQL server comes from `DBSAFE_TEST_PG2_URL` (default
//! postgres://postgres@127.0.0.1:5433, started by scripts/ensure-second-postgres.sh).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dbsafe_tests::{
    Backend, Conn, Project, Run, Watched, mysql_server, pg_server, run, wait_until,
};
use diesel::prelude::*;
use diesel::{MysqlConnection, PgConnection, SqliteConnection};

/// The second PostgreSQL server.
fn pg2_server() -> String {
    std::env::var("DBSAFE_TEST_PG2_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433".into())
}

/// Starts (or stops) a PostgreSQL cluster with scripts/ensure-second-postgres.sh.
fn pg_cluster(action: &str, port: u16, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ensure-second-postgres.sh");
    let status = Command::new(script)
        .arg(action)
        .env("DBSAFE_PG2_PORT", port.to_string())
        .env("DBSAFE_PG2_DIR", dir)
        .status()
        .expect("run ensure-second-postgres.sh");
    assert!(
        status.success(),
        "ensure-second-postgres.sh {action} failed"
    );
}

/// One member database of a test fleet.
struct Member {
    /// The name dbsafe gives it.
    name: String,
    /// Its URL (SQLite: file path).
    url: String,
    /// Its server without a database (empty for SQLite).
    server: String,
    /// Database name (SQLite: file path).
    db: String,
}

/// A project whose fleet `tenants` has members on servers or in SQLite files; the
/// databases are dropped at the end.
struct Fleet {
    project: Project,
    backend: Backend,
    members: Vec<Member>,
}

fn admin(backend: Backend, server: &str) -> Conn {
    match backend {
        Backend::Postgres => {
            Conn::Pg(PgConnection::establish(&format!("{server}/postgres")).expect("admin"))
        }
        Backend::Mysql => {
            Conn::Mysql(MysqlConnection::establish(&format!("{server}/mysql")).expect("admin"))
        }
        Backend::Sqlite => unreachable!(),
    }
}

impl Fleet {
    /// `per_server` members on each of `servers` (SQLite: files), a fleet `tenants` over
    /// them with `settings`, and two migrations.
    fn new(backend: Backend, servers: &[String], per_server: usize, settings: &str) -> Fleet {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "fl{}x{}y",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let project = Project::new(Backend::Sqlite);
        let mut members = Vec::new();
        let mut i = 0;
        for server in servers {
            for _ in 0..per_server {
                let db = format!("{prefix}{i:02}");
                i += 1;
                if backend == Backend::Sqlite {
                    let path = project.path().join(format!("tenants/{db}.db"));
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, "").unwrap();
                    members.push(Member {
                        name: format!("{db}.db"),
                        url: path.display().to_string(),
                        server: String::new(),
                        db: path.display().to_string(),
                    });
                    continue;
                }
                admin(backend, server)
                    .execute(&format!("CREATE DATABASE {db}"))
                    .expect("create database");
                let host_port = server.rsplit('@').next().unwrap();
                members.push(Member {
                    name: format!("{db}@{host_port}"),
                    url: format!("{server}/{db}"),
                    server: server.clone(),
                    db,
                });
            }
        }
        let source = if backend == Backend::Sqlite {
            format!("files = \"tenants/{prefix}*.db\"")
        } else {
            let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
            format!("servers = [{}]\ndatabases = \"{prefix}%\"", list.join(", "))
        };
        project.write_config(&format!(
            "[fleets.tenants]\n{source}\nenvironment = \"test\"\n{settings}\n"
        ));
        project
            .migration(
                "2024-01-01-000001_a",
                "CREATE TABLE fleet_a (id INTEGER PRIMARY KEY);",
                Some("DROP TABLE fleet_a;"),
            )
            .migration(
                "2024-01-01-000002_b",
                "CREATE TABLE fleet_b (id INTEGER PRIMARY KEY);",
                Some("DROP TABLE fleet_b;"),
            );
        Fleet {
            project,
            backend,
            members,
        }
    }

    fn conn(&self, i: usize) -> Conn {
        let url = &self.members[i].url;
        match self.backend {
            Backend::Postgres => Conn::Pg(PgConnection::establish(url).expect("connect")),
            Backend::Mysql => Conn::Mysql(MysqlConnection::establish(url).expect("connect")),
            Backend::Sqlite => Conn::Sqlite(SqliteConnection::establish(url).expect("connect")),
        }
    }

    fn strings(&self, i: usize, sql: &str) -> Vec<String> {
        self.conn(i)
            .strings(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn tables(&self, i: usize) -> Vec<String> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT CAST(tablename AS TEXT) AS v FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'fleet%' ORDER BY 1"
            }
            Backend::Mysql => {
                "SELECT CAST(table_name AS CHAR) AS v FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'fleet%' ORDER BY 1"
            }
            Backend::Sqlite => {
                "SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name LIKE 'fleet%' ORDER BY 1"
            }
        };
        self.strings(i, sql)
    }

    /// `(kind, status, fleet_run)` of each run in member `i`'s ledger, oldest first.
    fn runs(&self, i: usize) -> Vec<(String, String, String)> {
        if self.strings(i, &ledger_exists(self.backend)) != ["1"] {
            return Vec::new();
        }
        let sql = format!(
            "SELECT {} AS v FROM dbsafe_runs ORDER BY started_at, id",
            concat(self.backend)
        );
        self.strings(i, &sql)
            .into_iter()
            .map(|v| {
                let parts: Vec<&str> = v.split('|').collect();
                (
                    parts[0].to_owned(),
                    parts[1].to_owned(),
                    parts[2].to_owned(),
                )
            })
            .collect()
    }

    fn dbsafe(&self, args: &[&str]) -> Run {
        self.project.dbsafe(args)
    }

    fn command(&self, binary: &str, args: &[&str]) -> Run {
        let mut cmd = self.project.command(binary);
        cmd.arg(binary.trim_start_matches("cargo-")).args(args);
        run(cmd)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for member in &self.members {
            let sql = match self.backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", member.db),
                Backend::Mysql => format!("DROP DATABASE IF EXISTS {}", member.db),
                Backend::Sqlite => continue,
            };
            let url = match self.backend {
                Backend::Postgres => format!("{}/postgres", member.server),
                _ => format!("{}/mysql", member.server),
            };
            if let Ok(mut c) = PgConnection::establish(&url)
                .map(Conn::Pg)
                .or_else(|_| MysqlConnection::establish(&url).map(Conn::Mysql))
            {
                let _ = c.execute(&sql);
            }
        }
    }
}

fn concat(backend: Backend) -> String {
    match backend {
        Backend::Mysql => "CONCAT(kind, '|', status, '|', COALESCE(fleet_run, '-'))".into(),
        _ => "kind || '|' || status || '|' || COALESCE(fleet_run, '-')".into(),
    }
}

fn ledger_exists(backend: Backend) -> String {
    match backend {
        Backend::Postgres => "SELECT CAST(count(*) AS TEXT) AS v FROM pg_tables WHERE schemaname = 'public' AND tablename = 'dbsafe_runs'".into(),
        Backend::Mysql => "SELECT CAST(count(*) AS CHAR) AS v FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'dbsafe_runs'".into(),
        Backend::Sqlite => "SELECT CAST(count(*) AS TEXT) AS v FROM sqlite_master WHERE name = 'dbsafe_runs'".into(),
    }
}

/// A fleet spread over both PostgreSQL servers: one fleet run applies every member (each
/// member's run linked to it), a second apply skips them all, status shows the whole,
/// dbverify writes a suite per member, and `cargo dbrollback FLEET_RUN` reverts each.
#[test]
fn fleet_over_two_postgres_servers_applies_resumes_verifies_and_rolls_back() {
    let fleet = Fleet::new(
        Backend::Postgres,
        &[pg_server(), pg2_server()],
        3,
        "canary = 1\nconcurrency = 4\nmax-failures = 1",
    );
    let applied = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    applied.expect_code(0);
    let fleet_run = applied.fleet_run();
    let all_succeeded: Vec<(String, String)> = fleet
        .members
        .iter()
        .map(|m| (m.name.clone(), "succeeded".to_owned()))
        .collect();
    assert_eq!(applied.fleet_outcomes(), all_succeeded);
    let canary: Vec<_> = applied
        .events()
        .into_iter()
        .filter(|e| e["type"] == "fleet.member" && e["wave"] == "canary")
        .collect();
    assert_eq!(canary.len(), 1);
    assert_eq!(
        canary[0]["member"],
        fleet.members[0].name.as_str(),
        "the canary is the first member"
    );
    for i in 0..6 {
        assert_eq!(fleet.tables(i), ["fleet_a", "fleet_b"]);
        assert_eq!(
            fleet.runs(i),
            [("apply".into(), "succeeded".into(), fleet_run.clone())]
        );
    }
    // Each member's run.started event carries the fleet run, in the ledger and the journal.
    let started = fleet.strings(
        4,
        "SELECT payload AS v FROM dbsafe_events WHERE event_type = 'run.started'",
    );
    assert!(
        started[0].contains(&format!("\"fleet_run\":\"{fleet_run}\"")),
        "{started:?}"
    );
    let journal =
        std::fs::read_to_string(fleet.project.path().join(".dbsafe/snapshots/journal.jsonl"))
            .unwrap();
    let linked = journal
        .lines()
        .filter(|l| {
            l.contains("run.started") && l.contains(&format!("\"fleet_run\":\"{fleet_run}\""))
        })
        .count();
    assert_eq!(linked, 6);
    // The members really are on two servers.
    let ids: std::collections::BTreeSet<String> = (0..6)
        .map(|i| {
            fleet.strings(
                i,
                "SELECT CAST(system_identifier AS TEXT) AS v FROM pg_control_system()",
            )[0]
            .clone()
        })
        .collect();
    assert_eq!(ids.len(), 2);

    let again = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    again.expect_code(0);
    assert!(
        again
            .fleet_outcomes()
            .iter()
            .all(|(_, s)| s == "up-to-date"),
        "{again:?}"
    );
    assert!(
        (0..6).all(|i| fleet.runs(i).len() == 1),
        "a member at the target version gets no new run"
    );

    let status = fleet.dbsafe(&["status", "--fleet", "tenants", "--message-format", "json"]);
    status.expect_code(0);
    let view = &status.events()[0];
    assert_eq!(view["at_latest"], 6);
    assert_eq!(view["behind"], 0);
    assert_eq!(
        view["members"][3]["last_run"].as_str().map(str::len),
        Some(21)
    );
    assert_eq!(view["members"][3]["fleet_run"], fleet_run.as_str());
    let human = fleet.dbsafe(&["status", "--fleet", "tenants"]);
    assert!(
        human.stdout.contains("fleet tenants: 6 at 20240101000002"),
        "{human:?}"
    );

    let junit = fleet.project.path().join("fleet.xml");
    fleet
        .command(
            "cargo-dbverify",
            &["--fleet", "tenants", "--junit", junit.to_str().unwrap()],
        )
        .expect_code(0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 6, "{xml}");
    assert!(
        fleet
            .members
            .iter()
            .all(|m| xml.contains(&format!("dbverify {}", m.name)))
    );

    let rolled = fleet.command(
        "cargo-dbrollback",
        &[&fleet_run, "--message-format", "json"],
    );
    rolled.expect_code(0);
    let rollback_run = rolled.fleet_run();
    assert_ne!(rollback_run, fleet_run);
    for i in 0..6 {
        assert!(
            fleet.tables(i).is_empty(),
            "member {i}: {:?}",
            fleet.tables(i)
        );
        assert_eq!(
            fleet.runs(i)[1],
            ("rollback".into(), "succeeded".into(), rollback_run.clone())
        );
    }
    // The fleet journal has the start, each member and the end of both fleet runs.
    let journal = std::fs::read_to_string(
        fleet
            .project
            .path()
            .join(".dbsafe/snapshots/fleet-journal.jsonl"),
    )
    .unwrap();
    for id in [&fleet_run, &rollback_run] {
        let lines: Vec<&str> = journal
            .lines()
            .filter(|l| l.contains(id.as_str()) && l.contains("\"fleet_run\""))
            .collect();
        assert!(
            lines.first().unwrap().contains("fleet.started")
                && lines.last().unwrap().contains("fleet.finished")
        );
    }
}

/// One member's migration fails: the canary wave goes first, `max-failures` stops new
/// members, the failed member is reverted by its own policy, those never started are
/// untouched, and the report says exactly that; the same command then resumes.
fn member_failure_respects_waves_and_max_failures(backend: Backend) {
    let servers = match backend {
        Backend::Postgres => vec![pg_server(), pg2_server()],
        Backend::Mysql => vec![mysql_server()],
        Backend::Sqlite => vec![String::new()],
    };
    let per_server = 6 / servers.len();
    let fleet = Fleet::new(
        backend,
        &servers,
        per_server,
        "canary = 1\nconcurrency = 1\nmax-failures = 1",
    );
    // Member 2 already has a table called fleet_b: its second migration fails.
    fleet
        .conn(2)
        .execute("CREATE TABLE fleet_b (x INTEGER)")
        .unwrap();
    // MySQL's DDL commits as it goes: a failed migration leaves the member dirty (exit 4)
    // where PostgreSQL and SQLite revert it (exit 1).
    let mysql = backend == Backend::Mysql;
    let (failure, code) = if mysql {
        ("needs-attention", 4)
    } else {
        ("failed", 1)
    };
    let failed = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    failed.expect_code(code);
    let expected: Vec<(String, String)> = [
        "succeeded",
        "succeeded",
        failure,
        "skipped",
        "skipped",
        "skipped",
    ]
    .iter()
    .zip(&fleet.members)
    .map(|(s, m)| (m.name.clone(), s.to_string()))
    .collect();
    assert_eq!(failed.fleet_outcomes(), expected, "{failed:?}");
    assert_eq!(
        failed.fleet_summary()["totals"],
        format!("2 succeeded, 1 {failure}, 3 skipped")
    );
    for i in [0, 1] {
        assert_eq!(fleet.tables(i), ["fleet_a", "fleet_b"]);
    }
    for i in 3..6 {
        assert!(
            fleet.tables(i).is_empty() && fleet.runs(i).is_empty(),
            "member {i} was never started"
        );
    }
    fleet.conn(2).execute("DROP TABLE fleet_b").unwrap();
    if mysql {
        assert_eq!(fleet.runs(2)[0].1, "failed");
        // The operator repairs the member, then records it: one member, named in its fleet.
        let member = fleet.members[2].name.as_str();
        fleet
            .dbsafe(&[
                "resolve",
                "20240101000002",
                "--as",
                "reverted",
                "--fleet",
                "tenants",
                "--target",
                member,
            ])
            .expect_code(0);
    } else {
        assert_eq!(
            fleet.tables(2),
            [] as [&str; 0],
            "the failed member's own policy reverted fleet_a"
        );
        assert_eq!(fleet.runs(2)[0].1, "reverted");
    }

    let resumed = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    resumed.expect_code(0);
    let statuses: Vec<String> = resumed
        .fleet_outcomes()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        statuses,
        [
            "up-to-date",
            "up-to-date",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded"
        ]
    );
    assert!((0..6).all(|i| fleet.tables(i) == ["fleet_a", "fleet_b"]));
    let runs = fleet.runs(2);
    assert_eq!(
        (
            runs.last().unwrap().0.as_str(),
            runs.last().unwrap().1.as_str()
        ),
        ("apply", "succeeded"),
        "the failed member was retried as a new run"
    );

    // A failed canary stops the run, whatever max-failures says.
    fleet.project.migration(
        "2024-01-01-000003_c",
        "CREATE TABLE fleet_c (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE fleet_c;"),
    );
    fleet
        .conn(0)
        .execute("CREATE TABLE fleet_c (x INTEGER)")
        .unwrap();
    let config = std::fs::read_to_string(fleet.project.path().join("dbsafe.toml")).unwrap();
    fleet.project.file(
        "dbsafe.toml",
        &config.replace("max-failures = 1", "max-failures = 5"),
    );
    let canary_failed = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    canary_failed.expect_code(code);
    assert_eq!(
        canary_failed.fleet_summary()["totals"],
        format!("1 {failure}, 5 skipped")
    );
    assert!((1..6).all(|i| !fleet.tables(i).contains(&"fleet_c".to_owned())));
}

/// A member whose database changed (its target's URL now reaches another database) is
/// refused by its identity binding; the others are applied; the fleet exits 3.
fn member_identity_changed_is_refused(backend: Backend) {
    let p = Project::new(backend);
    let dbs: Vec<dbsafe_tests::TestDb> = (0..3)
        .map(|_| dbsafe_tests::TestDb::new(backend, p.path()))
        .collect();
    let config = |urls: &[&str]| {
        let mut text = String::from(
            "[fleets.tenants]\ntargets = [\"one\", \"three\", \"two\"]\ncanary = 0\nmax-failures = 3\n",
        );
        for (name, url) in ["one", "two", "three"].iter().zip(urls) {
            text.push_str(&format!(
                "[targets.{name}]\nurl = \"{url}\"\nenvironment = \"test\"\n"
            ));
        }
        p.file("dbsafe.toml", &text);
    };
    config(&[&dbs[0].url, &dbs[1].url, &dbs[2].url]);
    p.migration(
        "2024-01-01-000001_a",
        "CREATE TABLE fleet_a (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE fleet_a;"),
    );
    p.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"])
        .expect_code(0);
    p.migration(
        "2024-01-01-000002_b",
        "CREATE TABLE fleet_b (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE fleet_b;"),
    );
    // `two` now reaches a fresh database: its identity changed.
    let other = dbsafe_tests::TestDb::new(backend, p.path());
    config(&[&dbs[0].url, &other.url, &dbs[2].url]);
    let run = p.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    run.expect_code(3);
    assert_eq!(
        run.fleet_outcomes(),
        [
            ("one".into(), "succeeded".into()),
            ("three".into(), "succeeded".into()),
            ("two".into(), "refused".into())
        ]
    );
    let refused = run
        .events()
        .into_iter()
        .find(|e| e["member"] == "two")
        .unwrap();
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("is bound to database"),
        "{refused}"
    );
    assert!(dbs[0].has_table("fleet_b") && dbs[2].has_table("fleet_b"));
    assert!(
        !other.has_table("fleet_a") && !other.has_table("dbsafe_runs"),
        "nothing touched on the other database"
    );
}

dbsafe_tests::each_backend!(
    member_failure_respects_waves_and_max_failures,
    member_identity_changed_is_refused
);

/// A server stopped mid-run: its members are reported unreachable, the members of the
/// other server are applied, and once it is back the same command finishes the fleet.
#[test]
fn server_stopped_mid_run_is_unreachable_and_the_run_resumes() {
    // Not under a private temporary directory: the server runs as the postgres user.
    let data = std::path::PathBuf::from(format!("/tmp/dbsafe-fleet-stop-{}", std::process::id()));
    let port = 5434 + (std::process::id() % 500) as u16;
    pg_cluster("start", port, &data);
    let third = format!("postgres://postgres@127.0.0.1:{port}");
    let fleet = Fleet::new(
        Backend::Postgres,
        &[pg_server(), third.clone()],
        2,
        "canary = 0\nconcurrency = 1\nmax-failures = 10",
    );
    let mut cmd = fleet.project.command("cargo-dbsafe");
    cmd.args([
        "dbsafe",
        "apply",
        "--fleet",
        "tenants",
        "--message-format",
        "json",
    ])
    .env("DBSAFE_TEST_PAUSE_AT", "after-lock:1500");
    let watched = Watched::start(cmd);
    // Members 0 and 1 are on the first server; stop the other while member 1 is running.
    wait_until(Duration::from_secs(30), "member 0 done", || {
        watched.saw(&fleet.members[0].name)
    });
    pg_cluster("stop", port, &data);
    let stopped = watched.wait();
    stopped.expect_code(1);
    assert_eq!(
        stopped.fleet_outcomes(),
        [
            (fleet.members[0].name.clone(), "succeeded".into()),
            (fleet.members[1].name.clone(), "succeeded".into()),
            (fleet.members[2].name.clone(), "unreachable".into()),
            (fleet.members[3].name.clone(), "unreachable".into()),
        ],
        "{stopped:?}"
    );
    assert!(
        stopped.fleet_summary()["totals"]
            .as_str()
            .unwrap()
            .contains("2 unreachable")
    );
    let status = fleet.dbsafe(&["status", "--fleet", "tenants"]);
    status.expect_code(1);
    assert!(
        status.stdout.contains(&format!(
            "server postgres://postgres@127.0.0.1:{port} unreachable"
        )),
        "{status:?}"
    );

    pg_cluster("start", port, &data);
    let resumed = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    resumed.expect_code(0);
    let statuses: Vec<String> = resumed
        .fleet_outcomes()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        statuses,
        ["up-to-date", "up-to-date", "succeeded", "succeeded"]
    );
    assert!((0..4).all(|i| fleet.tables(i) == ["fleet_a", "fleet_b"]));
    drop(fleet);
    pg_cluster("stop", port, &data);
    let _ = std::fs::remove_dir_all(&data);
}

/// N CI jobs share one fleet run with `--partition K/N --fleet-run ID`: the shares are
/// disjoint and cover the fleet, every member's run carries the id, status shows the whole.
#[test]
fn partitions_apply_one_fleet_run_together() {
    let fleet = Fleet::new(Backend::Sqlite, &[String::new()], 8, "concurrency = 3");
    let id = "20261130T120000Z-abcd";
    let mut seen = Vec::new();
    for k in ["1/3", "2/3", "3/3"] {
        let share = fleet.dbsafe(&[
            "apply",
            "--fleet",
            "tenants",
            "--partition",
            k,
            "--fleet-run",
            id,
            "--message-format",
            "json",
        ]);
        share.expect_code(0);
        assert_eq!(share.fleet_summary()["partition"], k);
        seen.extend(share.fleet_outcomes().into_iter().map(|(m, _)| m));
    }
    seen.sort();
    let names: Vec<String> = fleet.members.iter().map(|m| m.name.clone()).collect();
    assert_eq!(seen, names, "each member in exactly one share");
    assert!((0..8).all(|i| fleet.runs(i) == [("apply".into(), "succeeded".into(), id.into())]));
    let status = fleet.dbsafe(&["status", "--fleet", "tenants"]);
    assert!(
        status.stdout.contains("fleet tenants: 8 at 20240101000002"),
        "{status:?}"
    );
    // Bad partitions and fleet run ids are usage errors, nothing touched.
    for args in [
        vec!["--partition", "4/3", "--fleet-run", id],
        vec!["--fleet-run", "yesterday"],
        vec!["--partition", "1/3"],
    ] {
        let mut all = vec!["apply", "--fleet", "tenants"];
        all.extend(args);
        let bad = fleet.dbsafe(&all);
        bad.expect_code(2);
        if all.contains(&"1/3") {
            assert!(
                bad.stderr
                    .contains("give every job of the matrix the same --fleet-run ID"),
                "{bad:?}"
            );
        }
    }
    assert!((0..8).all(|i| fleet.runs(i).len() == 1), "nothing touched");
}

/// `[fleets.NAME]` is checked strictly, with the line and key of each problem; a fleet of
/// protected members needs --yes; unknown fleets are named.
#[test]
fn fleet_config_is_strict_and_protected_members_need_yes() {
    let p = Project::new(Backend::Sqlite);
    p.write_config("[fleets.bad]\nservers = [\"postgres://x@h:5432\"]\nconcurency = 2\ntargets = [\"tset\"]\n\n[fleets.other]\nfiles = \"t/*.db\"\ndatabases = \"x%\"\nenvironment = \"test\"\n");
    let run = p.dbsafe(&["status", "--fleet", "bad"]);
    run.expect_code(2);
    for needle in [
        "fleets.bad.concurency",
        "did you mean `concurrency`?",
        "no target named `tset`; did you mean `test`?",
        "need `databases = \"PATTERN\"`",
        "missing key `environment`",
        "`databases` needs `servers = [...]`",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert!(
        run.stderr
            .contains("dbsafe.toml:8: key `fleets.bad.targets`"),
        "{}",
        run.stderr
    );

    p.write_config("[fleets.prod]\nfiles = \"t/*.db\"\nenvironment = \"production\"\n");
    p.file("t/a.db", "");
    p.migration(
        "2024-01-01-000001_a",
        "CREATE TABLE fleet_a (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE fleet_a;"),
    );
    let refused = p.dbsafe(&["apply", "--fleet", "prod"]);
    refused.expect_code(3);
    assert!(
        refused
            .stderr
            .contains("confirm that you mean to apply migrations to them with --yes"),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::metadata(p.path().join("t/a.db")).unwrap().len(),
        0,
        "nothing touched"
    );
    p.dbsafe(&["apply", "--fleet", "prod", "--yes"])
        .expect_code(0);
    let unknown = p.dbsafe(&["apply", "--fleet", "nope"]);
    unknown.expect_code(2);
    assert!(
        unknown
            .stderr
            .contains("no fleet named `nope`; known fleets: prod"),
        "{unknown:?}"
    );
    p.dbsafe(&["apply", "--fleet", "prod", "--target", "test"])
        .expect_code(2);
}

/// `plan --fleet` shows what each member would run; `dbverify --fleet` runs every check on
/// every member and exits 1 when one member fails, with that member's suite failing.
#[test]
fn plan_and_verify_cover_every_member() {
    let fleet = Fleet::new(Backend::Sqlite, &[String::new()], 3, "concurrency = 2");
    let config = std::fs::read_to_string(fleet.project.path().join("dbsafe.toml")).unwrap();
    fleet.project.file(
        "dbsafe.toml",
        &format!("{config}\n[[invariant]]\nname = \"fleet_a is empty\"\nsql = \"SELECT count(*) FROM fleet_a\"\nexpect = \"= 0\"\n"),
    );
    let plan = fleet.dbsafe(&["plan", "--fleet", "tenants", "--message-format", "json"]);
    plan.expect_code(0);
    let plans: Vec<_> = plan
        .events()
        .into_iter()
        .filter(|e| e["type"] == "plan")
        .collect();
    assert_eq!(plans.len(), 3);
    for (plan, member) in plans.iter().zip(&fleet.members) {
        assert_eq!(plan["member"], member.name.as_str());
        assert_eq!(plan["pending"].as_array().unwrap().len(), 2);
    }
    assert!(
        (0..3).all(|i| fleet.runs(i).is_empty() && fleet.tables(i).is_empty()),
        "plan touches nothing"
    );

    fleet
        .dbsafe(&["apply", "--fleet", "tenants"])
        .expect_code(0);
    fleet
        .conn(1)
        .execute("INSERT INTO fleet_a (id) VALUES (1)")
        .unwrap();
    let junit = fleet.project.path().join("verify.xml");
    let verify = fleet.command(
        "cargo-dbverify",
        &["--fleet", "tenants", "--junit", junit.to_str().unwrap()],
    );
    verify.expect_code(1);
    assert!(
        verify
            .stdout
            .contains(&format!("{}  rest    failed", fleet.members[1].name)),
        "{verify:?}"
    );
    assert!(
        verify.stdout.contains("failed: fleet_a is empty"),
        "{verify:?}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 3);
    let failing_suite = xml
        .split("<testsuite ")
        .find(|suite| suite.contains("<failure"))
        .unwrap();
    assert!(failing_suite.contains(&fleet.members[1].name), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
}

/// `cargo dbrollback FLEET_RUN --restore`: every member is put back to the snapshot taken
/// before its run of that fleet run (its later rows gone with it), in the fleet's waves, as
/// one new fleet run; each member's ledger keeps the rewound run and records the restore.
fn fleet_rollback_restores_each_member(backend: Backend) {
    let servers = match backend {
        Backend::Postgres => vec![pg_server(), pg2_server()],
        _ => vec![String::new()],
    };
    let fleet = Fleet::new(
        backend,
        &servers,
        4 / servers.len(),
        "canary = 1\nconcurrency = 2\nmax-failures = 1\n\n[apply]\nsnapshot = \"always\"",
    );
    fleet
        .dbsafe(&["apply", "--fleet", "tenants"])
        .expect_code(0);
    for i in 0..4 {
        fleet
            .conn(i)
            .execute(&format!("INSERT INTO fleet_a (id) VALUES ({i})"))
            .unwrap();
    }
    fleet.project.migration(
        "2024-01-01-000003_c",
        "CREATE TABLE fleet_c (id INTEGER PRIMARY KEY); INSERT INTO fleet_a (id) VALUES (100);",
        None,
    );
    let applied = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    applied.expect_code(0);
    let second = applied.fleet_run();
    for i in 0..4 {
        fleet
            .conn(i)
            .execute("INSERT INTO fleet_c (id) VALUES (1)")
            .unwrap();
    }

    let restored = fleet.command(
        "cargo-dbrollback",
        &[&second, "--restore", "--message-format", "json"],
    );
    restored.expect_code(0);
    let restore_run = restored.fleet_run();
    let waves = restored.fleet_members("wave");
    assert_eq!(waves.len(), 4, "{restored:?}");
    assert_eq!(
        waves[0],
        (fleet.members[0].name.clone(), "canary".to_owned()),
        "the canary is restored first, alone"
    );
    assert!(waves[1..].iter().all(|(_, w)| w == "rest"), "{waves:?}");
    assert_eq!(restored.fleet_outcomes().len(), 4);
    assert!(
        restored
            .fleet_outcomes()
            .iter()
            .all(|(_, s)| s == "succeeded"),
        "{restored:?}"
    );
    for i in 0..4 {
        assert_eq!(fleet.tables(i), ["fleet_a", "fleet_b"], "member {i}");
        assert_eq!(
            fleet.strings(i, "SELECT CAST(id AS TEXT) AS v FROM fleet_a ORDER BY id"),
            [i.to_string()],
            "member {i}: rows of before the run kept, the run's own gone"
        );
        let runs = fleet.runs(i);
        assert_eq!(
            runs.iter()
                .filter(|(kind, _, fleet_run)| kind == "apply" && *fleet_run == second)
                .count(),
            1,
            "member {i}: the rewound run stays in the ledger: {runs:?}"
        );
        let last = runs.last().unwrap();
        assert_eq!(
            (last.1.as_str(), last.2.as_str()),
            ("succeeded", restore_run.as_str()),
            "member {i}: {runs:?}"
        );
    }
    // The members are at the first fleet run's version again: applying resumes from there.
    let again = fleet.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    again.expect_code(0);
    assert!(again.fleet_outcomes().iter().all(|(_, s)| s == "succeeded"));
}

#[test]
fn fleet_rollback_restores_each_member_postgres_over_two_servers() {
    fleet_rollback_restores_each_member(Backend::Postgres);
}

#[test]
fn fleet_rollback_restores_each_member_sqlite() {
    fleet_rollback_restores_each_member(Backend::Sqlite);
}

/// `--partition K/N` without `--fleet-run` in CI: every job derives the same fleet run id
/// from the CI run (GitHub Actions' run id and attempt; the commit time of the checkout),
/// so two partition processes make one fleet run; another attempt is another fleet run.
#[test]
fn partitions_in_ci_derive_one_fleet_run() {
    let fleet = Fleet::new(Backend::Sqlite, &[String::new()], 6, "concurrency = 2");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .current_dir(fleet.project.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
            .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "deploy"]);
    let share = |k: &str, attempt: &str| {
        let mut cmd = fleet.project.command("cargo-dbsafe");
        cmd.args([
            "dbsafe",
            "apply",
            "--fleet",
            "tenants",
            "--partition",
            k,
            "--message-format",
            "json",
        ])
        .env("GITHUB_RUN_ID", "987654")
        .env("GITHUB_RUN_ATTEMPT", attempt);
        let out = run(cmd);
        out.expect_code(0);
        out.fleet_run()
    };
    let first = share("1/2", "1");
    let second = share("2/2", "1");
    assert_eq!(first, second, "one fleet run for both jobs");
    assert!(first.starts_with("20260102T030405Z-"), "{first}");
    assert!(
        (0..6).all(|i| fleet.runs(i) == [("apply".into(), "succeeded".into(), first.clone())]),
        "every member applied once, under the derived fleet run"
    );
    let retried = share("1/2", "2");
    assert_ne!(retried, first, "another attempt is another fleet run");
}
