//! Test support: a fresh database per test on SQLite, PostgreSQL or MariaDB, a temporary
//! project with migrations and a dbsafe.toml, and the real binaries run against them.
//!
//! Servers come from `DBSAFE_TEST_PG_URL` and `DBSAFE_TEST_MYSQL_URL` (default: the local
//! servers that `scripts/test.sh` makes sure are running).

pub mod real_history;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::{MysqlConnection, PgConnection, SqliteConnection};

/// A database engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in the project directory.
    Sqlite,
    /// A database on the PostgreSQL server.
    Postgres,
    /// A database on the MariaDB/MySQL server.
    Mysql,
}

/// Generates one `#[test]` per backend for each named function `fn NAME(backend: Backend)`:
/// `NAME::sqlite`, `NAME::postgres`, `NAME::mysql`.
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::Backend::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name($crate::Backend::Postgres)
                }
                #[test]
                fn mysql() {
                    super::$name($crate::Backend::Mysql)
                }
            }
        )*
    };
}

/// The PostgreSQL server URL without a database.
pub fn pg_server() -> String {
    std::env::var("DBSAFE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The MariaDB/MySQL server URL without a database.
pub fn mysql_server() -> String {
    std::env::var("DBSAFE_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "dbsafe_t{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos % 100_000
    )
}

/// A fresh database, dropped when the value is dropped.
pub struct TestDb {
    /// Its engine.
    pub backend: Backend,
    /// The URL dbsafe is given.
    pub url: String,
    /// Database name (SQLite: file path).
    pub name: String,
}

/// A connection the test uses to look at (or change) the database directly.
pub enum Conn {
    /// PostgreSQL.
    Pg(PgConnection),
    /// MySQL.
    Mysql(MysqlConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    v: String,
}

impl Conn {
    /// Runs statements.
    pub fn execute(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Pg(c) => c.batch_execute(sql),
            Conn::Mysql(c) => c.batch_execute(sql),
            Conn::Sqlite(c) => c.batch_execute(sql),
        }
    }

    /// Runs a query whose one column is named `v` and is text.
    pub fn strings(&mut self, sql: &str) -> QueryResult<Vec<String>> {
        let q = diesel::sql_query(sql);
        let rows: Vec<Row> = match self {
            Conn::Pg(c) => q.load(c)?,
            Conn::Mysql(c) => q.load(c)?,
            Conn::Sqlite(c) => q.load(c)?,
        };
        Ok(rows.into_iter().map(|r| r.v).collect())
    }
}

impl TestDb {
    /// Creates a fresh database; a SQLite one is a file in `dir`.
    pub fn new(backend: Backend, dir: &Path) -> TestDb {
        let name = unique_name();
        match backend {
            Backend::Sqlite => {
                let path = dir.join(format!("{name}.db"));
                TestDb {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    name: path.display().to_string(),
                }
            }
            Backend::Postgres => TestDb::postgres_on(&pg_server()),
            Backend::Mysql => {
                let mut admin = MysqlConnection::establish(&format!("{}/mysql", mysql_server()))
                    .unwrap_or_else(|e| {
                        panic!(
                            "MariaDB at {} is not reachable ({e}); run scripts/test.sh",
                            mysql_server()
                        )
                    });
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create database");
                TestDb {
                    backend,
                    url: format!("{}/{name}", mysql_server()),
                    name,
                }
            }
        }
    }

    /// Creates a fresh database on the PostgreSQL server at `server` (a URL without a
    /// database, as [`pg_server`] returns); it is dropped there again.
    pub fn postgres_on(server: &str) -> TestDb {
        let name = unique_name();
        let mut admin =
            PgConnection::establish(&format!("{server}/postgres")).unwrap_or_else(|e| {
                panic!("PostgreSQL at {server} is not reachable ({e}); run scripts/test.sh")
            });
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        TestDb {
            backend: Backend::Postgres,
            url: format!("{server}/{name}"),
            name,
        }
    }

    /// A new connection to this database.
    pub fn connect(&self) -> Conn {
        match self.backend {
            Backend::Postgres => Conn::Pg(PgConnection::establish(&self.url).expect("connect")),
            Backend::Mysql => Conn::Mysql(MysqlConnection::establish(&self.url).expect("connect")),
            Backend::Sqlite => {
                Conn::Sqlite(SqliteConnection::establish(&self.name).expect("connect"))
            }
        }
    }

    /// One text column `v` of a query, every row.
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.connect()
            .strings(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A count as a number: `SELECT count(*) FROM ...`; pass only the FROM/WHERE part.
    pub fn count(&self, from_where: &str) -> i64 {
        let cast = if self.backend == Backend::Mysql {
            "CHAR"
        } else {
            "TEXT"
        };
        let sql = format!("SELECT CAST(count(*) AS {cast}) AS v FROM {from_where}");
        self.strings(&sql)[0].parse().unwrap()
    }

    /// Runs statements directly.
    pub fn execute(&self, sql: &str) {
        self.connect()
            .execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Whether a table exists.
    pub fn has_table(&self, table: &str) -> bool {
        let sql = match self.backend {
            Backend::Postgres => format!(
                "SELECT tablename AS v FROM pg_tables WHERE schemaname = 'public' AND tablename = '{table}'"
            ),
            Backend::Mysql => format!(
                "SELECT CAST(table_name AS CHAR) AS v FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
            Backend::Sqlite => format!(
                "SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        };
        !self.strings(&sql).is_empty()
    }

    /// Versions in diesel's table, sorted.
    pub fn diesel_versions(&self) -> Vec<String> {
        if !self.has_table("__diesel_schema_migrations") {
            return Vec::new();
        }
        self.strings("SELECT version AS v FROM __diesel_schema_migrations ORDER BY version")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.backend {
            Backend::Sqlite => {}
            Backend::Postgres => {
                // The server this database is on: its URL without the database name.
                let server = self
                    .url
                    .strip_suffix(&format!("/{}", self.name))
                    .map_or_else(pg_server, str::to_owned);
                if let Ok(mut admin) = PgConnection::establish(&format!("{server}/postgres")) {
                    let _ = admin.batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ));
                }
            }
            Backend::Mysql => {
                if let Ok(mut admin) =
                    MysqlConnection::establish(&format!("{}/mysql", mysql_server()))
                {
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
                }
            }
        }
    }
}

/// The path of a workspace binary built by `cargo build --workspace`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A temporary project directory with a database, migrations and a dbsafe.toml.
pub struct Project {
    /// The project directory.
    pub dir: tempfile::TempDir,
    /// Its database.
    pub db: TestDb,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The JSON Lines of stdout.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `type`s of the JSON events, in order.
    pub fn event_types(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect()
    }

    /// `(member, FIELD)` of each `fleet.member` line of a JSON fleet command, in output order.
    pub fn fleet_members(&self, field: &str) -> Vec<(String, String)> {
        self.events()
            .iter()
            .filter(|e| e["type"] == "fleet.member")
            .map(|e| {
                let text = |key: &str| {
                    e[key]
                        .as_str()
                        .unwrap_or_else(|| panic!("no {key} in {e}"))
                        .to_owned()
                };
                (text("member"), text(field))
            })
            .collect()
    }

    /// `(member, status)` of each `fleet.member` line, sorted by member.
    pub fn fleet_outcomes(&self) -> Vec<(String, String)> {
        let mut out = self.fleet_members("status");
        out.sort();
        out
    }

    /// The `fleet.summary` line of a JSON fleet command.
    pub fn fleet_summary(&self) -> serde_json::Value {
        self.events()
            .into_iter()
            .find(|e| e["type"] == "fleet.summary")
            .unwrap_or_else(|| panic!("no fleet.summary in {self:?}"))
    }

    /// The fleet run id in the `fleet.summary` line.
    pub fn fleet_run(&self) -> String {
        self.fleet_summary()["fleet_run"]
            .as_str()
            .unwrap_or_else(|| panic!("no fleet run id in {self:?}"))
            .to_owned()
    }

    /// The run id of the first event that has one.
    pub fn run_id(&self) -> String {
        self.events()
            .iter()
            .find_map(|e| e["run_id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no run id in {self:?}"))
    }

    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Project {
    /// A project with a target `test` (environment test) on a fresh database.
    pub fn new(backend: Backend) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDb::new(backend, dir.path());
        Project::with_db(dir, db)
    }

    /// A project with a target `test` on a fresh database of the PostgreSQL server at
    /// `server` (a URL without a database).
    pub fn on_postgres(server: &str) -> Project {
        Project::with_db(
            tempfile::tempdir().expect("temp dir"),
            TestDb::postgres_on(server),
        )
    }

    fn with_db(dir: tempfile::TempDir, db: TestDb) -> Project {
        let project = Project { dir, db };
        project.write_config("");
        std::fs::create_dir_all(project.path().join("migrations")).unwrap();
        project
    }

    /// The project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// Writes dbsafe.toml with the `test` target and `extra` TOML appended.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[targets.test]\nurl = \"{}\"\nenvironment = \"test\"\n\n{extra}\n",
            self.db.url
        );
        self.file("dbsafe.toml", &text);
    }

    /// Writes a file relative to the project.
    pub fn file(&self, relative: &str, text: &str) -> &Project {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Adds a migration directory `migrations/NAME` with up.sql and (when given) down.sql.
    pub fn migration(&self, name: &str, up: &str, down: Option<&str>) -> &Project {
        self.file(&format!("migrations/{name}/up.sql"), up);
        if let Some(down) = down {
            self.file(&format!("migrations/{name}/down.sql"), down);
        }
        self
    }

    /// A `Command` for a workspace binary in the project directory, with a clean
    /// environment (no DATABASE_URL, CI=true, no terminal).
    pub fn command(&self, binary_name: &str) -> Command {
        let mut cmd = Command::new(binary(binary_name));
        cmd.current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env("DBSAFE_OPERATOR", "tester")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs `cargo-dbsafe dbsafe ARGS` and waits.
    pub fn dbsafe(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("cargo-dbsafe");
        cmd.arg("dbsafe").args(args);
        run(cmd)
    }

    /// Runs `cargo-dbsafe dbsafe apply --message-format json ARGS`.
    pub fn apply(&self, args: &[&str]) -> Run {
        let mut all = vec!["apply", "--message-format", "json"];
        all.extend_from_slice(args);
        self.dbsafe(&all)
    }
}

/// Runs a command to completion.
pub fn run(mut cmd: Command) -> Run {
    let out: Output = cmd.output().expect("run binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A portable `CREATE TABLE` body column type for an auto id on each backend.
pub fn id_column(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "id SERIAL PRIMARY KEY",
        Backend::Mysql => "id INTEGER AUTO_INCREMENT PRIMARY KEY",
        Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
    }
}

impl Project {
    /// Applies the pending migrations with diesel's own harness on a direct connection
    /// (`FileBasedMigrations` + `MigrationHarness::run_pending_migrations`, the code path of
    /// `diesel migration run`); returns the versions diesel applied.
    pub fn diesel_migration_run(&self) -> Vec<String> {
        use diesel_migrations::{FileBasedMigrations, MigrationHarness};
        let source = FileBasedMigrations::from_path(self.path().join("migrations"))
            .expect("diesel reads the migrations directory");
        let versions = match self.db.connect() {
            Conn::Pg(mut c) => c
                .run_pending_migrations(source)
                .map(|v| v.iter().map(ToString::to_string).collect()),
            Conn::Mysql(mut c) => c
                .run_pending_migrations(source)
                .map(|v| v.iter().map(ToString::to_string).collect()),
            Conn::Sqlite(mut c) => c
                .run_pending_migrations(source)
                .map(|v| v.iter().map(ToString::to_string).collect()),
        };
        versions.unwrap_or_else(|e| panic!("diesel migration run: {e}"))
    }

    /// Starts `cargo-dbsafe dbsafe ARGS` without waiting, stdout and stderr piped.
    pub fn spawn_dbsafe(&self, args: &[&str]) -> std::process::Child {
        let mut cmd = self.command("cargo-dbsafe");
        cmd.arg("dbsafe")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().expect("spawn cargo-dbsafe")
    }
}

/// Waits for a spawned command and collects what it printed.
pub fn finish(child: std::process::Child) -> Run {
    let out = child.wait_with_output().expect("wait for binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `Command` for a workspace binary run in `dir` (any directory, not only a project's),
/// with the same clean environment as [`Project::command`]. The variables cargo's own
/// tools need (`CARGO`, `RUSTUP_HOME`, `RUSTUP_TOOLCHAIN`, `CARGO_HOME`) are passed on when
/// set, so `--manifest-path` can run `cargo metadata`.
pub fn command_in(dir: &Path, binary_name: &str) -> Command {
    let mut cmd = Command::new(binary(binary_name));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .env("DBSAFE_OPERATOR", "tester")
        .stdin(std::process::Stdio::null());
    for var in ["CARGO", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_HOME"] {
        if let Ok(value) = std::env::var(var) {
            cmd.env(var, value);
        }
    }
    cmd
}

/// Runs `cargo-dbsafe dbsafe ARGS` in `dir` with extra environment variables `env`.
pub fn dbsafe_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command_in(dir, "cargo-dbsafe");
    cmd.arg("dbsafe").args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    run(cmd)
}

/// Every file and directory under `dir`, as sorted relative paths (`a/b.txt`): compare two
/// listings to show a command created nothing.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every row of `table` as one line of text, its columns joined with `|` (NULLs empty), on
/// any backend: for asserting what a table contains, or does not.
pub fn table_text(db: &TestDb, table: &str) -> Vec<String> {
    let columns = match db.backend {
        Backend::Postgres => db.strings(&format!(
            "SELECT CAST(column_name AS TEXT) AS v FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        )),
        Backend::Mysql => db.strings(&format!(
            "SELECT CAST(column_name AS CHAR) AS v FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}' ORDER BY ordinal_position"
        )),
        Backend::Sqlite => db.strings(&format!(
            "SELECT name AS v FROM pragma_table_info('{table}') ORDER BY cid"
        )),
    };
    assert!(
        !columns.is_empty(),
        "table {table} has no columns (missing?)"
    );
    let text = if db.backend == Backend::Mysql {
        "CHAR"
    } else {
        "TEXT"
    };
    let joined = columns
        .iter()
        .map(|c| format!("COALESCE(CAST({c} AS {text}), '')"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let sql = match db.backend {
        Backend::Mysql => format!(
            "SELECT CAST(CONCAT_WS('|', {}) AS CHAR) AS v FROM {table}",
            columns
                .iter()
                .map(|c| format!("COALESCE(CAST({c} AS CHAR), '')"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("SELECT {joined} AS v FROM {table}"),
    };
    db.strings(&sql)
}

impl Project {
    /// Runs `cargo-dbrollback dbrollback ARGS` and waits.
    pub fn dbrollback(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("cargo-dbrollback");
        cmd.arg("dbrollback").args(args);
        run(cmd)
    }

    /// Starts `cargo-dbrollback dbrollback ARGS` without waiting, stdout and stderr piped.
    pub fn spawn_dbrollback(&self, args: &[&str]) -> std::process::Child {
        let mut cmd = self.command("cargo-dbrollback");
        cmd.arg("dbrollback")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().expect("spawn cargo-dbrollback")
    }

    /// `cargo dbsafe fingerprint --message-format json`: the `fingerprint` object, with the
    /// schema (`schema.hash`, `schema.lines`) and every table's `rows` and `hash`.
    pub fn fingerprint(&self) -> serde_json::Value {
        let out = self.dbsafe(&["fingerprint", "--message-format", "json"]);
        out.expect_code(0);
        out.events()
            .into_iter()
            .find(|e| e["type"] == "fingerprint")
            .unwrap_or_else(|| panic!("no fingerprint object in {out:?}"))
    }
}

/// A process the test watches while it runs: its stdout and stderr lines as they come.
pub struct Watched {
    /// The process.
    pub child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Watched {
    /// Starts `cmd` (stdout and stderr piped) and reads both as lines in the background.
    pub fn start(mut cmd: Command) -> Watched {
        use std::io::BufRead;
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn binary");
        let mut readers = Vec::new();
        let mut follow = |stream: Box<dyn std::io::Read + Send>| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = std::sync::Arc::clone(&lines);
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    sink.lock().unwrap().push(line);
                }
            }));
            lines
        };
        let stdout = follow(Box::new(child.stdout.take().unwrap()));
        let stderr = follow(Box::new(child.stderr.take().unwrap()));
        Watched {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Whether a stdout line contains `needle` yet.
    pub fn saw(&self, needle: &str) -> bool {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Whether a stderr line contains `needle` yet.
    pub fn saw_on_stderr(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// The run id of the first JSON event on stdout that has one.
    pub fn run_id(&self) -> String {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|e| e["run_id"].as_str().map(str::to_owned))
            .expect("an event with a run id")
    }

    /// Sends a signal (`INT`, `TERM`, `KILL`) to the process, as `kill -SIG` does.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Waits for the process; returns what it did (code -1 when a signal ended it).
    pub fn wait(mut self) -> Run {
        let status = self.child.wait().expect("wait");
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().unwrap().join("\n"),
            stderr: self.stderr.lock().unwrap().join("\n"),
        }
    }
}

/// Polls `ready` every 50ms for up to `limit`; panics naming `what` on timeout.
pub fn wait_until(limit: std::time::Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Project {
    /// `cargo dbsafe status --message-format json`, which must exit 0: its `status` object.
    pub fn status_report(&self) -> serde_json::Value {
        let status = self.dbsafe(&["status", "--message-format", "json"]);
        status.expect_code(0);
        status
            .events()
            .into_iter()
            .find(|e| e["type"] == "status")
            .unwrap_or_else(|| panic!("no status object in {status:?}"))
    }

    /// The directories in the project's snapshot folder (named like ids), sorted.
    pub fn snapshot_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = std::fs::read_dir(self.path().join(".dbsafe/snapshots"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }
}

impl TestDb {
    /// Sessions on this database (other than the asker's) whose statement contains
    /// `needle` (none on SQLite).
    pub fn sessions_running(&self, needle: &str) -> Vec<String> {
        match self.backend {
            Backend::Postgres => self.strings(&format!(
                "SELECT CAST(pid AS TEXT) AS v FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND query LIKE '%{needle}%' AND state = 'active'"
            )),
            Backend::Mysql => self.strings(&format!(
                "SELECT CAST(id AS CHAR) AS v FROM information_schema.processlist WHERE db = DATABASE() \
                 AND id <> CONNECTION_ID() AND info LIKE '%{needle}%'"
            )),
            Backend::Sqlite => Vec::new(),
        }
    }
}
