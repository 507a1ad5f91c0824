//! Snapshots end to end on each backend: `cargo dbsafe snapshot create|list|verify|prune`
//! with the real tools, manifests that match `cargo dbsafe fingerprint`, damaged snapshots
//! named by `verify`, apply's `[apply] snapshot` and `on-failure = "restore"`, and no
//! password in anything dbsafe writes or passes on the command line of the tools it runs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dbsafe_tests::{
    Backend, Project, Run, TestDb, each_backend, id_column, mysql_server, pg_server, run,
    table_text, tree,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{MysqlConnection, PgConnection};
use serde_json::Value;

each_backend!(
    create_list_verify_and_restore_match_the_live_fingerprints,
    damaged_snapshots_fail_verification_naming_the_file,
    failed_apply_with_restore_policy_ends_at_the_pre_run_fingerprints,
    failed_verification_with_restore_policy_restores,
    apply_snapshot_policy,
    prune_keeps_what_the_policy_says,
);

// ---------------------------------------------------------------------------------------
// Helpers

const ITEMS_VERSION: &str = "20240301000001";

const ITEMS_UP: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, note TEXT, amount NUMERIC(10,2),
    flag BOOLEAN, qty INTEGER NOT NULL DEFAULT 1);
CREATE TABLE tags (item_id INTEGER NOT NULL REFERENCES items (id), tag VARCHAR(20));
CREATE INDEX tags_tag_idx ON tags (tag);
";

const ITEMS_DOWN: &str = "DROP TABLE tags;\nDROP TABLE items;\n";

/// `count` rows of `items` (unicode text, NULLs in every nullable column) and two `tags`
/// per fourth item (some NULL), as two multi-row INSERTs.
fn rows_sql(count: u32) -> String {
    let items: Vec<String> = (1..=count)
        .map(|i| {
            let note = if i % 3 == 0 {
                "NULL".to_owned()
            } else {
                format!("'note {i}: ünïcödé 日本語 ñandú 🦀 it''s'")
            };
            let amount = if i % 5 == 0 {
                "NULL".to_owned()
            } else {
                format!("{}.{:02}", i * 7, i % 100)
            };
            let flag = ["NULL", "TRUE", "FALSE"][(i % 3) as usize];
            format!(
                "({i}, 'item {i} — Ωmega', {note}, {amount}, {flag}, {})",
                i % 11
            )
        })
        .collect();
    let tags: Vec<String> = (1..=count)
        .filter(|i| i % 4 == 0)
        .flat_map(|i| {
            let second = if i % 8 == 0 {
                "NULL".to_owned()
            } else {
                format!("'tag-{}'", i % 7)
            };
            [
                format!("({i}, 'größe-{}')", i % 5),
                format!("({i}, {second})"),
            ]
        })
        .collect();
    format!(
        "INSERT INTO items (id, name, note, amount, flag, qty) VALUES {};\n\
         INSERT INTO tags (item_id, tag) VALUES {};\n",
        items.join(",\n"),
        tags.join(",\n")
    )
}

/// A project whose first migration (`items`, `tags`) is applied by dbsafe, with 300 rows
/// put in directly afterwards. `config` is appended to dbsafe.toml.
fn project_with_data(backend: Backend, config: &str) -> Project {
    let p = Project::new(backend);
    p.write_config(config);
    p.migration("2024-03-01-000001_items", ITEMS_UP, Some(ITEMS_DOWN));
    p.apply(&[]).expect_code(0);
    p.db.execute(&rows_sql(300));
    p
}

/// `cargo dbsafe fingerprint --message-format json`: the `fingerprint` object.
fn fingerprint(p: &Project) -> Value {
    let run = p.dbsafe(&["fingerprint", "--message-format", "json"]);
    run.expect_code(0);
    run.events()
        .into_iter()
        .find(|e| e["type"] == "fingerprint")
        .unwrap_or_else(|| panic!("no fingerprint object in {run:?}"))
}

/// Asserts that a manifest's (or another fingerprint's) schema and tables equal `live`'s.
#[track_caller]
fn assert_same_fingerprints(what: &str, got: &Value, live: &Value) {
    assert_eq!(
        got["schema"]["hash"], live["schema"]["hash"],
        "{what}: schema hash differs\n{}\nvs live\n{}",
        got["schema"], live["schema"]
    );
    assert_eq!(got["schema"], live["schema"], "{what}: schema lines differ");
    assert_eq!(
        got["tables"], live["tables"],
        "{what}: table fingerprints differ"
    );
}

/// The row count of one table in a fingerprint or manifest.
fn rows_of(fingerprint: &Value, table: &str) -> u64 {
    fingerprint["tables"]
        .as_array()
        .expect("tables array")
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no table {table} in {fingerprint}"))["rows"]
        .as_u64()
        .unwrap()
}

fn snapshots_dir(p: &Project) -> PathBuf {
    p.path().join(".dbsafe/snapshots")
}

/// `snapshot create --message-format json ARGS`: the manifest it printed.
fn create_snapshot(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["snapshot", "create", "--message-format", "json"];
    all.extend_from_slice(args);
    let run = p.dbsafe(&all);
    run.expect_code(0);
    run.events()
        .into_iter()
        .find(|e| e["type"] == "snapshot")
        .unwrap_or_else(|| panic!("no snapshot object in {run:?}"))
}

fn id_of(manifest: &Value) -> String {
    manifest["id"].as_str().expect("snapshot id").to_owned()
}

/// The manifest.json of a snapshot, parsed.
fn read_manifest(p: &Project, id: &str) -> Value {
    let path = snapshots_dir(p).join(id).join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// SHA-256 of a file by `sha256sum`, hex.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Every line of stdout and stderr.
fn printed(run: &Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

/// Runs `cargo-dbsafe dbsafe ARGS` in the project with `PATH` set to `path`.
fn dbsafe_with_path(p: &Project, path: &str, args: &[&str]) -> Run {
    let mut cmd = p.command("cargo-dbsafe");
    cmd.arg("dbsafe").args(args).env("PATH", path);
    run(cmd)
}

/// `dir` first, then the test's own PATH.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Databases on the server whose names dbsafe derived from `db`'s (scratch databases of
/// deep verification, template snapshots).
fn derived_databases(db: &TestDb) -> Vec<String> {
    let prefix = format!("{}_dbsafe_", db.name);
    let names: Vec<Name> = match db.backend {
        Backend::Sqlite => return Vec::new(),
        Backend::Postgres => {
            let mut admin = PgConnection::establish(&format!("{}/postgres", pg_server())).unwrap();
            diesel::sql_query("SELECT datname AS v FROM pg_database")
                .load(&mut admin)
                .unwrap()
        }
        Backend::Mysql => {
            let mut admin =
                MysqlConnection::establish(&format!("{}/mysql", mysql_server())).unwrap();
            diesel::sql_query(
                "SELECT CAST(schema_name AS CHAR) AS v FROM information_schema.schemata",
            )
            .load(&mut admin)
            .unwrap()
        }
    };
    names
        .into_iter()
        .map(|n| n.v)
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// Drops what dbsafe derived from a test database (template snapshots, a scratch database
/// left by a failed test) when it goes out of scope.
struct DerivedCleanup<'a>(&'a TestDb);

impl Drop for DerivedCleanup<'_> {
    fn drop(&mut self) {
        for name in derived_databases(self.0) {
            match self.0.backend {
                Backend::Postgres => {
                    if let Ok(mut admin) =
                        PgConnection::establish(&format!("{}/postgres", pg_server()))
                    {
                        let _ = admin.batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ));
                    }
                }
                Backend::Mysql => {
                    if let Ok(mut admin) =
                        MysqlConnection::establish(&format!("{}/mysql", mysql_server()))
                    {
                        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
                    }
                }
                Backend::Sqlite => {}
            }
        }
    }
}

/// Scratch SQLite files of deep verification of snapshot `id` left in the temp directory.
fn sqlite_scratch_files(id: &str) -> Vec<PathBuf> {
    let prefix = format!("dbsafe-scratch-{id}-");
    let mut found = Vec::new();
    for dir in [PathBuf::from("/tmp"), std::env::temp_dir()] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            found.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path()),
            );
        }
    }
    found
}

/// `(user, password, host, port)` of the MariaDB server URL.
fn mysql_params() -> (String, Option<String>, String, String) {
    let server = mysql_server();
    let rest = server.strip_prefix("mysql://").expect("mysql:// URL");
    let (userinfo, hostport) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
        None => (userinfo.to_owned(), None),
    };
    let hostport = hostport.trim_end_matches('/');
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    (user, password, host.to_owned(), port.to_owned())
}

/// Loads a snapshot's files into the (empty) database `db` with the real client tools,
/// without dbsafe: what an operator would do by hand.
fn restore_by_hand(snapshot: &Path, manifest: &Value, db: &TestDb) {
    let file = snapshot.join(manifest["files"][0]["name"].as_str().unwrap());
    let out = match db.backend {
        Backend::Postgres => Command::new("pg_restore")
            .args(["--exit-on-error", "--no-owner", "--dbname", &db.url])
            .arg(&file)
            .output()
            .expect("pg_restore"),
        Backend::Mysql => {
            let (user, password, host, port) = mysql_params();
            let mut cmd = Command::new("mariadb");
            cmd.args([
                "--protocol=TCP",
                &format!("--host={host}"),
                &format!("--port={port}"),
                &format!("--user={user}"),
                &db.name,
            ])
            .stdin(std::fs::File::open(&file).unwrap());
            if let Some(password) = password {
                cmd.env("MYSQL_PWD", password);
            }
            cmd.output().expect("mariadb")
        }
        Backend::Sqlite => {
            std::fs::copy(&file, &db.name).unwrap();
            return;
        }
    };
    assert!(
        out.status.success(),
        "restoring {} by hand: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

fn expected_strategy(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "pg-dump",
        Backend::Mysql => "mysqldump",
        Backend::Sqlite => "sqlite-backup",
    }
}

fn server_version(db: &TestDb) -> String {
    let sql = match db.backend {
        Backend::Postgres => "SELECT CAST(current_setting('server_version') AS TEXT) AS v",
        Backend::Mysql => "SELECT CAST(VERSION() AS CHAR) AS v",
        Backend::Sqlite => "SELECT sqlite_version() AS v",
    };
    db.strings(sql).remove(0)
}

/// One column of `dbsafe_runs` for a run (empty string for NULL).
fn run_column(db: &TestDb, run_id: &str, column: &str) -> String {
    let text = if db.backend == Backend::Mysql {
        "CHAR"
    } else {
        "TEXT"
    };
    db.strings(&format!(
        "SELECT COALESCE(CAST({column} AS {text}), '') AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ))
    .pop()
    .unwrap_or_else(|| panic!("no run {run_id} in dbsafe_runs"))
}

// ---------------------------------------------------------------------------------------
// 1. create -> list -> verify -> verify --deep; the manifest matches the live database and
//    a restore by hand reproduces it.

fn create_list_verify_and_restore_match_the_live_fingerprints(backend: Backend) {
    let p = project_with_data(backend, "");
    let _cleanup = DerivedCleanup(&p.db);
    let live = fingerprint(&p);
    assert_eq!(rows_of(&live, "items"), 300);
    assert_eq!(rows_of(&live, "tags"), 150);

    let created = create_snapshot(&p, &[]);
    let id = id_of(&created);
    assert_eq!(p.snapshot_dirs(), std::slice::from_ref(&id));

    // What create printed is the manifest on disk.
    let manifest = read_manifest(&p, &id);
    let mut printed_manifest = created.clone();
    printed_manifest.as_object_mut().unwrap().remove("type");
    assert_eq!(printed_manifest, manifest);

    // The manifest: fingerprints equal what `cargo dbsafe fingerprint` says of the live
    // database; provenance; files with size and SHA-256.
    assert_same_fingerprints("manifest", &manifest, &live);
    assert_eq!(rows_of(&manifest, "items"), 300);
    assert_eq!(manifest["id"], id.as_str());
    assert_eq!(manifest["target"], "test");
    assert_eq!(manifest["run_id"], Value::Null);
    assert_eq!(manifest["strategy"], expected_strategy(backend));
    assert_eq!(manifest["template_database"], Value::Null);
    assert_eq!(
        manifest["applied_migrations"],
        serde_json::json!([ITEMS_VERSION])
    );
    assert_eq!(p.db.diesel_versions(), [ITEMS_VERSION]);
    assert_eq!(manifest["server_version"], server_version(&p.db).as_str());
    let version = p.dbsafe(&["--version"]);
    version.expect_code(0);
    assert_eq!(
        manifest["tool_version"].as_str().unwrap(),
        version.stdout.split_whitespace().nth(1).unwrap()
    );
    let created_at = manifest["created_at"].as_str().unwrap();
    assert!(
        created_at.len() >= 20 && created_at.ends_with('Z') && created_at.as_bytes()[10] == b'T',
        "{created_at}"
    );
    assert!(manifest["duration_ms"].is_u64());

    let dir = snapshots_dir(&p).join(&id);
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{manifest}");
    let mut expected_entries = vec!["manifest.json".to_owned()];
    for file in files {
        let name = file["name"].as_str().unwrap();
        let path = dir.join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > 0, "{} is empty", path.display());
        assert_eq!(file["size"].as_u64(), Some(size), "{name}");
        assert_eq!(
            file["sha256"].as_str(),
            Some(sha256(&path).as_str()),
            "{name}"
        );
        expected_entries.push(name.to_owned());
    }
    expected_entries.sort();
    assert_eq!(tree(&dir), expected_entries);

    // Private: the directories 0700, every file 0600.
    assert_eq!(mode(&snapshots_dir(&p)), 0o700);
    assert_eq!(mode(&dir), 0o700);
    for entry in &expected_entries {
        assert_eq!(mode(&dir.join(entry)), 0o600, "{entry}");
    }

    // list, both formats.
    let list = p.dbsafe(&["snapshot", "list"]);
    list.expect_code(0);
    assert!(list.stdout.contains(&id), "{list:?}");
    assert!(list.stdout.contains(expected_strategy(backend)), "{list:?}");
    let list_json = p.dbsafe(&["snapshot", "list", "--message-format", "json"]);
    list_json.expect_code(0);
    let listed: Vec<Value> = list_json
        .events()
        .into_iter()
        .filter(|e| e["type"] == "snapshot")
        .collect();
    assert_eq!(listed.len(), 1, "{list_json:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["files"], manifest["files"]);

    // verify (checksums) and verify --deep (restore into a scratch database).
    let verify = p.dbsafe(&["snapshot", "verify", &id]);
    verify.expect_code(0);
    assert!(
        verify.stdout.contains(&id) && verify.stdout.contains("ok"),
        "{verify:?}"
    );
    let deep = p.dbsafe(&["snapshot", "verify", &id, "--deep"]);
    deep.expect_code(0);
    assert!(deep.stdout.contains("scratch"), "{deep:?}");
    let deep_json = p.dbsafe(&[
        "snapshot",
        "verify",
        &id,
        "--deep",
        "--message-format",
        "json",
    ]);
    deep_json.expect_code(0);
    let verified = deep_json
        .events()
        .into_iter()
        .find(|e| e["type"] == "snapshot.verified")
        .unwrap_or_else(|| panic!("{deep_json:?}"));
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["deep"], true);
    assert_eq!(verified["problems"], serde_json::json!([]));
    assert!(verified["restore_ms"].is_u64(), "{verified}");
    // The scratch databases are gone; the live database is as it was.
    assert_eq!(derived_databases(&p.db), Vec::<String>::new());
    assert_eq!(sqlite_scratch_files(&id), Vec::<PathBuf>::new());
    assert_same_fingerprints("live after verify --deep", &fingerprint(&p), &live);
    assert_eq!(p.snapshot_dirs(), std::slice::from_ref(&id));

    // A restore by hand (pg_restore, mariadb, a file copy) into a fresh database gives the
    // same fingerprints, the same rows byte for byte and diesel's versions.
    let copy = Project::new(backend);
    restore_by_hand(&dir, &manifest, &copy.db);
    assert_same_fingerprints("restored copy", &fingerprint(&copy), &manifest);
    assert_eq!(copy.db.diesel_versions(), [ITEMS_VERSION]);
    for table in ["items", "tags"] {
        let restored = sorted(table_text(&copy.db, table));
        assert_eq!(restored, sorted(table_text(&p.db, table)), "{table}");
    }
    assert!(
        table_text(&copy.db, "items")
            .iter()
            .any(|row| row.contains("ünïcödé 日本語 ñandú 🦀 it's")),
        "unicode text survived"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Damaged snapshots, unknown ids, corrupt manifests.

fn damaged_snapshots_fail_verification_naming_the_file(backend: Backend) {
    let p = project_with_data(backend, "");
    let _cleanup = DerivedCleanup(&p.db);
    let first = id_of(&create_snapshot(&p, &[]));
    let id = id_of(&create_snapshot(&p, &[]));
    let manifest = read_manifest(&p, &id);
    let dir = snapshots_dir(&p).join(&id);
    let name = manifest["files"][0]["name"].as_str().unwrap().to_owned();
    let path = dir.join(&name);
    let original = std::fs::read(&path).unwrap();
    assert!(original.len() > 100);

    let live = fingerprint(&p);
    let ledger_before = table_text(&p.db, "dbsafe_events");
    let tree_before = tree(&snapshots_dir(&p));
    let manifest_bytes = std::fs::read(dir.join("manifest.json")).unwrap();

    for damage in ["corrupted", "truncated", "missing"] {
        match damage {
            "corrupted" => {
                let mut bytes = original.clone();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x01;
                std::fs::write(&path, bytes).unwrap();
            }
            "truncated" => {
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(original.len() as u64 / 2).unwrap();
            }
            _ => std::fs::remove_file(&path).unwrap(),
        }
        for deep in [false, true] {
            let mut args = vec!["snapshot", "verify", id.as_str()];
            if deep {
                args.push("--deep");
            }
            let human = p.dbsafe(&args);
            let what = format!("{damage} file, verify {}", if deep { "--deep" } else { "" });
            assert_eq!(human.code, 1, "{what}: {human:?}");
            assert!(
                human.stderr.contains(&path.display().to_string()),
                "{what}: the file is named: {human:?}"
            );
            let reason = match damage {
                "corrupted" => "SHA-256",
                "truncated" => "truncated",
                _ => "missing",
            };
            assert!(human.stderr.contains(reason), "{what}: {human:?}");

            args.extend(["--message-format", "json"]);
            let json = p.dbsafe(&args);
            assert_eq!(json.code, 1, "{what}: {json:?}");
            let verified = json
                .events()
                .into_iter()
                .find(|e| e["type"] == "snapshot.verified")
                .unwrap_or_else(|| panic!("{what}: {json:?}"));
            assert_eq!(verified["ok"], false);
            let problems = verified["problems"].as_array().unwrap();
            assert_eq!(problems.len(), 1, "{what}: {verified}");
            assert!(problems[0].as_str().unwrap().contains(&name), "{verified}");
        }
        // Nothing else changed: no scratch database left, the live database untouched.
        assert_eq!(derived_databases(&p.db), Vec::<String>::new(), "{damage}");
        assert_eq!(sqlite_scratch_files(&id), Vec::<PathBuf>::new());

        std::fs::write(&path, &original).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.dbsafe(&["snapshot", "verify", &id]).expect_code(0);
    }
    assert_same_fingerprints("live after the verifications", &fingerprint(&p), &live);
    assert_eq!(table_text(&p.db, "dbsafe_events"), ledger_before);
    assert_eq!(tree(&snapshots_dir(&p)), tree_before);
    assert_eq!(
        std::fs::read(dir.join("manifest.json")).unwrap(),
        manifest_bytes
    );
    p.dbsafe(&["snapshot", "verify", &id, "--deep"])
        .expect_code(0);

    // An unknown id: bad usage, and the ones that exist are named.
    for deep in [false, true] {
        let mut args = vec!["snapshot", "verify", "20200101T000000Z-dead"];
        if deep {
            args.push("--deep");
        }
        let unknown = p.dbsafe(&args);
        unknown.expect_code(2);
        assert!(
            unknown.stderr.contains("20200101T000000Z-dead"),
            "{unknown:?}"
        );
        assert!(
            unknown.stderr.contains(&first) && unknown.stderr.contains(&id),
            "the existing snapshots are listed: {unknown:?}"
        );
        assert!(!unknown.stderr.contains("journal.jsonl"), "{unknown:?}");
    }

    // A corrupt manifest: a clear error naming it, for verify and verify --deep; list
    // still lists the others and reports it (exit 1: a problem found).
    let manifest_path = dir.join("manifest.json");
    for corrupt in [&b"{\"id\": \"20"[..], b"", b"[1, 2, 3]"] {
        std::fs::write(&manifest_path, corrupt).unwrap();
        for deep in [false, true] {
            let mut args = vec!["snapshot", "verify", id.as_str()];
            if deep {
                args.push("--deep");
            }
            let run = p.dbsafe(&args);
            assert_eq!(run.code, 1, "{run:?}");
            assert!(
                run.stderr.contains(&manifest_path.display().to_string())
                    && run.stderr.contains("corrupt"),
                "{run:?}"
            );
            assert!(!run.stderr.contains("panicked"), "{run:?}");
        }
        let list = p.dbsafe(&["snapshot", "list"]);
        list.expect_code(1);
        assert!(list.stdout.contains(&first), "{list:?}");
        assert!(
            list.stderr.contains(&dir.display().to_string()) && list.stderr.contains("corrupt"),
            "{list:?}"
        );
    }
    assert_eq!(derived_databases(&p.db), Vec::<String>::new());
    assert_same_fingerprints("live at the end", &fingerprint(&p), &live);
}

// ---------------------------------------------------------------------------------------
// 3. on-failure = "restore"

/// A migration that changes data (and, on MariaDB, commits part of itself) and then fails.
const FAILING_UP: &str =
    "INSERT INTO items (id, name, qty) VALUES (1001, 'added by the failing migration', 7);
DELETE FROM tags WHERE item_id <= 40;
DELETE FROM items WHERE id <= 10;
UPDATE items SET note = 'changed' WHERE note IS NULL;
CREATE TABLE extra (id INTEGER PRIMARY KEY);
INSERT INTO extra VALUES (1);
INSERT INTO no_such_table VALUES (1);
";

fn failed_apply_with_restore_policy_ends_at_the_pre_run_fingerprints(backend: Backend) {
    let p = project_with_data(backend, "[apply]\non-failure = \"restore\"\n");
    let _cleanup = DerivedCleanup(&p.db);
    let first_run =
        p.db.strings("SELECT id AS v FROM dbsafe_runs")
            .pop()
            .unwrap();
    // A table with a generated id: its counter (a PostgreSQL sequence, which no rollback
    // rewinds; MariaDB's AUTO_INCREMENT) must come back too.
    p.db.execute(&format!(
        "CREATE TABLE counters ({}, label VARCHAR(20));\n\
         INSERT INTO counters (label) VALUES ('a');\n\
         INSERT INTO counters (label) VALUES ('b');\n\
         INSERT INTO counters (label) VALUES ('c');",
        id_column(backend)
    ));
    let before = fingerprint(&p);
    let items_before = sorted(table_text(&p.db, "items"));
    let tags_before = sorted(table_text(&p.db, "tags"));
    let snapshots_before = p.snapshot_dirs();

    p.migration(
        "2024-03-01-000002_break",
        &format!("INSERT INTO counters (label) VALUES ('d'), ('e'), ('f');\n{FAILING_UP}"),
        Some("DROP TABLE extra;\n"),
    );
    let failed = p.apply(&[]);
    failed.expect_code(1);
    let run_id = failed.run_id();
    assert!(failed.stderr.contains("no_such_table"), "{failed:?}");
    assert!(failed.stderr.contains("restored"), "{failed:?}");
    let types = failed.event_types();
    for expected in [
        "snapshot.created",
        "run.started",
        "migration.failed",
        "run.failed",
        "rollback.restore",
    ] {
        assert!(
            types.contains(&expected.to_owned()),
            "{expected} in {types:?}"
        );
    }
    let restored_event = failed
        .events()
        .into_iter()
        .find(|e| e["type"] == "rollback.restore")
        .unwrap();
    assert_eq!(
        restored_event["differences"],
        serde_json::json!([]),
        "{restored_event}"
    );
    assert_eq!(
        restored_event["rehydrated_runs"],
        serde_json::json!([run_id]),
        "{restored_event}"
    );

    // Exactly the pre-run state: schema, every table's rows and hash, row text.
    let after = fingerprint(&p);
    assert_same_fingerprints("after the restore", &after, &before);
    assert_eq!(sorted(table_text(&p.db, "items")), items_before);
    assert_eq!(sorted(table_text(&p.db, "tags")), tags_before);
    assert!(!p.db.has_table("extra"));
    assert_eq!(p.db.diesel_versions(), [ITEMS_VERSION]);
    p.db.execute("INSERT INTO counters (label) VALUES ('next')");
    assert_eq!(
        table_text(&p.db, "counters")
            .into_iter()
            .filter(|row| row.ends_with("|next"))
            .collect::<Vec<_>>(),
        ["4|next"],
        "the id counter is back where it was"
    );
    p.db.execute("DELETE FROM counters WHERE label = 'next'");

    // The run: in the ledger as restored, with its events and its snapshot.
    assert_eq!(run_column(&p.db, &run_id, "status"), "restored");
    let snapshot_id = run_column(&p.db, &run_id, "snapshot_id");
    assert!(!snapshot_id.is_empty());
    let new_snapshots: Vec<String> = p
        .snapshot_dirs()
        .into_iter()
        .filter(|s| !snapshots_before.contains(s))
        .collect();
    assert_eq!(new_snapshots, std::slice::from_ref(&snapshot_id));
    assert_eq!(read_manifest(&p, &snapshot_id)["run_id"], run_id.as_str());
    assert!(
        run_column(&p.db, &run_id, "error").contains("no_such_table"),
        "the error is kept"
    );
    let event_types = p.db.strings(&format!(
        "SELECT event_type AS v FROM dbsafe_events WHERE run_id = '{run_id}' ORDER BY seq"
    ));
    for expected in [
        "snapshot.created",
        "run.started",
        "migration.failed",
        "run.failed",
        "rollback.restore",
    ] {
        assert!(
            event_types.contains(&expected.to_owned()),
            "{expected} in {event_types:?}"
        );
    }
    // The run before it is still there, as it was.
    assert_eq!(run_column(&p.db, &first_run, "status"), "succeeded");

    let runs = p.dbsafe(&["runs"]);
    runs.expect_code(0);
    let line = runs
        .stdout
        .lines()
        .find(|l| l.contains(&run_id))
        .unwrap_or_else(|| panic!("{run_id} in {runs:?}"));
    assert!(line.contains("restored"), "{line}");
    let show = p.dbsafe(&["runs", "show", &run_id]);
    show.expect_code(0);
    assert!(show.stdout.contains("restored"), "{show:?}");

    // Not dirty, not locked: status is clean, and the repaired migration applies.
    let report = p.status_report();
    assert_eq!(report["dirty"], serde_json::json!([]), "{report}");
    let pending: Vec<&Value> = report["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{report}");

    p.migration(
        "2024-03-01-000002_break",
        &FAILING_UP.replace("INSERT INTO no_such_table VALUES (1);\n", ""),
        Some("DROP TABLE extra;\n"),
    );
    let repaired = p.apply(&[]);
    repaired.expect_code(0);
    assert!(p.db.has_table("extra"));
    assert_eq!(p.db.count("items WHERE id = 1001"), 1);
    assert_eq!(p.db.count("items"), 300 + 1 - 10);
    assert_eq!(run_column(&p.db, &run_id, "status"), "restored");
}

/// The policy covers a migration that ran but whose verify.sql fails: on MariaDB its DDL
/// has committed, and only the restore takes it back.
fn failed_verification_with_restore_policy_restores(backend: Backend) {
    let p = project_with_data(backend, "[apply]\non-failure = \"restore\"\n");
    let _cleanup = DerivedCleanup(&p.db);
    let before = fingerprint(&p);
    let items_before = sorted(table_text(&p.db, "items"));
    p.migration(
        "2024-03-01-000002_gadgets",
        "CREATE TABLE gadgets (id INTEGER PRIMARY KEY);\nDELETE FROM tags;\nUPDATE items SET qty = 0;\n",
        Some("DROP TABLE gadgets;\n"),
    )
    .file(
        "migrations/2024-03-01-000002_gadgets/verify.sql",
        "SELECT count(*) = 0 AS ok FROM items;\n",
    );
    let failed = p.apply(&[]);
    failed.expect_code(1);
    let run_id = failed.run_id();
    let types = failed.event_types();
    assert!(types.contains(&"verify.failed".to_owned()), "{types:?}");
    assert!(types.contains(&"rollback.restore".to_owned()), "{types:?}");
    assert_same_fingerprints("after the restore", &fingerprint(&p), &before);
    assert_eq!(sorted(table_text(&p.db, "items")), items_before);
    assert!(!p.db.has_table("gadgets"));
    assert_eq!(p.db.diesel_versions(), [ITEMS_VERSION]);
    assert_eq!(run_column(&p.db, &run_id, "status"), "restored");
    let report = p.status_report();
    assert_eq!(report["dirty"], serde_json::json!([]), "{report}");
}

// ---------------------------------------------------------------------------------------
// 4. [apply] snapshot

fn apply_snapshot_policy(backend: Backend) {
    // always: the run names its snapshot, taken before it ran.
    let p = Project::new(backend);
    let _cleanup = DerivedCleanup(&p.db);
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration("2024-03-01-000001_items", ITEMS_UP, Some(ITEMS_DOWN));
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let run_id = applied.run_id();
    let snapshot_id = run_column(&p.db, &run_id, "snapshot_id");
    assert_eq!(p.snapshot_dirs(), std::slice::from_ref(&snapshot_id));
    let manifest = read_manifest(&p, &snapshot_id);
    assert_eq!(manifest["run_id"], run_id.as_str());
    assert_eq!(manifest["applied_migrations"], serde_json::json!([]));
    assert_eq!(manifest["strategy"], expected_strategy(backend));
    let created = applied
        .events()
        .into_iter()
        .find(|e| e["type"] == "snapshot.created")
        .unwrap_or_else(|| panic!("{applied:?}"));
    assert_eq!(created["snapshot_id"], snapshot_id.as_str());
    assert_eq!(created["run_id"], run_id.as_str());
    p.dbsafe(&["snapshot", "verify", &snapshot_id])
        .expect_code(0);
    // Nothing pending: no run to snapshot for.
    p.apply(&[]).expect_code(0);
    assert_eq!(p.snapshot_dirs().len(), 1);
    // The next run with a migration takes its own, with the first migration in it.
    p.db.execute(&rows_sql(20));
    p.migration(
        "2024-03-01-000002_more",
        "CREATE TABLE more_things (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE more_things;"),
    );
    let second = p.apply(&[]);
    second.expect_code(0);
    let second_snapshot = run_column(&p.db, &second.run_id(), "snapshot_id");
    assert_ne!(second_snapshot, snapshot_id);
    let manifest = read_manifest(&p, &second_snapshot);
    assert_eq!(manifest["run_id"], second.run_id().as_str());
    assert_eq!(
        manifest["applied_migrations"],
        serde_json::json!([ITEMS_VERSION])
    );
    assert_eq!(rows_of(&manifest, "items"), 20);
    assert_eq!(p.snapshot_dirs().len(), 2);

    // never, and the default on a target that is not protected: none.
    for config in ["[apply]\nsnapshot = \"never\"\n", ""] {
        let p = Project::new(backend);
        p.write_config(config);
        p.migration("2024-03-01-000001_items", ITEMS_UP, Some(ITEMS_DOWN));
        let applied = p.apply(&[]);
        applied.expect_code(0);
        assert_eq!(run_column(&p.db, &applied.run_id(), "snapshot_id"), "");
        assert!(
            !applied
                .event_types()
                .contains(&"snapshot.created".to_owned()),
            "{config}: {applied:?}"
        );
        assert_eq!(p.snapshot_dirs(), Vec::<String>::new(), "{config}");
    }

    // A protected target takes one by default.
    let p = Project::new(backend);
    let _cleanup_protected = DerivedCleanup(&p.db);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.prod]\nurl = \"{}\"\nenvironment = \"production\"\n",
            p.db.url
        ),
    );
    p.migration("2024-03-01-000001_items", ITEMS_UP, Some(ITEMS_DOWN));
    let applied = p.apply(&["--target", "prod", "--yes"]);
    applied.expect_code(0);
    let run_id = applied.run_id();
    let snapshot_id = run_column(&p.db, &run_id, "snapshot_id");
    assert_eq!(p.snapshot_dirs(), std::slice::from_ref(&snapshot_id));
    let manifest = read_manifest(&p, &snapshot_id);
    assert_eq!(manifest["run_id"], run_id.as_str());
    assert_eq!(manifest["target"], "prod");
}

// ---------------------------------------------------------------------------------------
// 5. No password anywhere

const SNAP_PASSWORD: &str = "s3cr3t-snap-pw";

/// A login role (PostgreSQL, allowed to create the scratch databases of deep verification)
/// or user (MariaDB, granted the test database and the scratch databases derived from its
/// name) with a password, owning the test database; dropped with it.
struct PasswordUser {
    backend: Backend,
    name: String,
    database: String,
}

impl PasswordUser {
    fn create(db: &TestDb) -> PasswordUser {
        let name = format!("{}_snap", db.name);
        match db.backend {
            Backend::Postgres => {
                let mut admin =
                    PgConnection::establish(&format!("{}/postgres", pg_server())).unwrap();
                admin
                    .batch_execute(&format!(
                        "CREATE ROLE {name} LOGIN CREATEDB PASSWORD '{SNAP_PASSWORD}'; ALTER DATABASE {} OWNER TO {name}",
                        db.name
                    ))
                    .unwrap();
            }
            Backend::Mysql => {
                let mut admin =
                    MysqlConnection::establish(&format!("{}/mysql", mysql_server())).unwrap();
                let scratch = format!("{}_dbsafe_", db.name).replace('_', "\\_");
                for host in ["127.0.0.1", "localhost"] {
                    admin
                        .batch_execute(&format!(
                            "CREATE USER '{name}'@'{host}' IDENTIFIED BY '{SNAP_PASSWORD}'; \
                             GRANT ALL ON {}.* TO '{name}'@'{host}'; \
                             GRANT ALL ON `{scratch}%`.* TO '{name}'@'{host}'",
                            db.name
                        ))
                        .unwrap();
                }
            }
            Backend::Sqlite => unreachable!("SQLite has no users"),
        }
        PasswordUser {
            backend: db.backend,
            name,
            database: db.name.clone(),
        }
    }

    fn url(&self) -> String {
        let server = match self.backend {
            Backend::Postgres => pg_server(),
            _ => mysql_server(),
        };
        let (scheme, rest) = server.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!(
            "{scheme}://{}:{SNAP_PASSWORD}@{host}/{}",
            self.name, self.database
        )
    }
}

impl Drop for PasswordUser {
    fn drop(&mut self) {
        match self.backend {
            Backend::Postgres => {
                if let Ok(mut admin) = PgConnection::establish(&format!("{}/postgres", pg_server()))
                {
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
                    let _ =
                        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.database));
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

#[track_caller]
fn assert_no_snap_password(what: &str, text: &str) {
    assert!(
        !text.contains(SNAP_PASSWORD),
        "the password appears in {what}:\n{text}"
    );
}

/// Wrappers named like the client tools in a directory to put first on PATH: each appends
/// its name and argv (what the process list shows) to `tools.log`, notes whether the
/// password reached it through the environment, and execs the real tool.
fn tool_wrappers(dir: &Path, tools: &[(&str, &str)]) -> PathBuf {
    let log = dir.join("tools.log");
    for (name, env) in tools {
        let script = format!(
            "#!/bin/sh\n\
             {{ printf '%s' '{name}'; for a in \"$@\"; do printf ' %s' \"$a\"; done; echo; }} >> '{log}'\n\
             if [ \"${{{env}:-}}\" = '{SNAP_PASSWORD}' ]; then echo '{name}: password in {env}' >> '{log}'; fi\n\
             exec /usr/bin/{name} \"$@\"\n",
            log = log.display()
        );
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    log
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
    let user = PasswordUser::create(&p.db);
    let _cleanup = DerivedCleanup(&p.db);
    p.write_config("[apply]\non-failure = \"restore\"\n");
    let config = std::fs::read_to_string(p.path().join("dbsafe.toml"))
        .unwrap()
        .replace(&p.db.url, &user.url());
    p.file("dbsafe.toml", &config);

    let bin = tempfile::tempdir().unwrap();
    let (tools, env): (&[&str], &str) = match backend {
        Backend::Postgres => (&["pg_dump", "pg_restore"], "PGPASSWORD"),
        _ => (&["mariadb-dump", "mariadb"], "MYSQL_PWD"),
    };
    let log = tool_wrappers(
        bin.path(),
        &tools.iter().map(|t| (*t, env)).collect::<Vec<_>>(),
    );
    let path = path_with(bin.path());

    let mut outputs: Vec<(String, Run)> = Vec::new();
    let mut record = |label: String, run: Run, code: i32| {
        run.expect_code(code);
        outputs.push((label, run));
    };
    p.migration("2024-03-01-000001_items", ITEMS_UP, Some(ITEMS_DOWN));
    record(
        "apply".into(),
        dbsafe_with_path(&p, &path, &["apply", "--message-format", "json", "-v"]),
        0,
    );
    p.db.execute(&rows_sql(50));
    let mut ids = Vec::new();
    for format in ["human", "json"] {
        let common = ["--message-format", format, "-v"];
        let create = dbsafe_with_path(&p, &path, &[&["snapshot", "create"], &common[..]].concat());
        record(format!("snapshot create ({format})"), create, 0);
        let newest = p.snapshot_dirs().pop().unwrap();
        ids.push(newest.clone());
        for args in [
            vec!["snapshot", "list"],
            vec!["snapshot", "verify", &newest],
            vec!["snapshot", "verify", &newest, "--deep"],
            vec!["status"],
        ] {
            let label = format!("{} ({format})", args.join(" "));
            record(
                label,
                dbsafe_with_path(&p, &path, &[&args[..], &common[..]].concat()),
                0,
            );
        }
    }
    p.migration(
        "2024-03-01-000002_break",
        FAILING_UP,
        Some("DROP TABLE extra;\n"),
    );
    for format in ["human", "json"] {
        let args = ["apply", "--message-format", format, "-v"];
        record(
            format!("failing apply ({format})"),
            dbsafe_with_path(&p, &path, &args),
            1,
        );
        record(
            format!("runs ({format})"),
            dbsafe_with_path(&p, &path, &["runs", "--message-format", format]),
            0,
        );
    }
    assert_eq!(
        p.db.count("dbsafe_runs WHERE status = 'restored'"),
        2,
        "both failing applies were restored"
    );
    assert!(!p.db.has_table("extra"));
    assert_eq!(p.db.count("items"), 50);

    // The commands really ran (the restore and the URL, redacted, reached the output).
    let all: String = outputs.iter().map(|(_, r)| printed(r)).collect();
    assert!(all.contains("no_such_table"), "{all}");
    let redacted = format!("{}:***@", user.name);
    assert!(all.contains(&redacted), "{all}");
    for (label, run) in &outputs {
        assert_no_snap_password(label, &printed(run));
    }

    // The tools: argv without the password; the password in their environment instead.
    let log_text = std::fs::read_to_string(&log).expect("the wrappers ran");
    for tool in tools {
        assert!(
            log_text.lines().any(|l| l.starts_with(&format!("{tool} "))),
            "{tool} ran: {log_text}"
        );
        assert!(
            log_text.contains(&format!("{tool}: password in {env}")),
            "{tool} got the password through {env}: {log_text}"
        );
    }
    assert_no_snap_password("the argv of the client tools", &log_text);

    // The ledger: every column of every row.
    let mut ledger = String::new();
    for table in [
        "dbsafe_runs",
        "dbsafe_steps",
        "dbsafe_events",
        "dbsafe_meta",
    ] {
        ledger.push_str(&table_text(&p.db, table).join("\n"));
        ledger.push('\n');
    }
    assert!(ledger.contains(&redacted), "{ledger}");
    assert_no_snap_password("the ledger", &ledger);

    // Every file dbsafe wrote: manifests, dumps, journal, targets.json.
    let local = p.path().join(".dbsafe");
    let files: Vec<String> = tree(&local)
        .into_iter()
        .filter(|f| local.join(f).is_file())
        .collect();
    for expected in ["journal.jsonl", "targets.json", "manifest.json"] {
        assert!(
            files.iter().any(|f| f.ends_with(expected)),
            "{expected} in {files:?}"
        );
    }
    let mut journal = String::new();
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(local.join(file)).unwrap()).into_owned();
        assert_no_snap_password(file, &text);
        if file.ends_with("journal.jsonl") {
            journal = text;
        }
    }
    assert!(journal.contains(&redacted), "{journal}");
    for id in &ids {
        assert_eq!(read_manifest(&p, id)["target"], "test");
    }
    assert_eq!(derived_databases(&p.db), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// 6. prune

fn prune_keeps_what_the_policy_says(backend: Backend) {
    let p = project_with_data(backend, "");
    let _cleanup = DerivedCleanup(&p.db);
    let mut first: Vec<String> = Vec::new();
    for _ in 0..5 {
        first.push(id_of(&create_snapshot(&p, &[])));
    }
    let listed: Vec<String> = p
        .dbsafe(&["snapshot", "list", "--message-format", "json"])
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<String> = first.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "list is newest first, like runs");

    // No policy at all: bad usage, nothing deleted.
    let none = p.dbsafe(&["snapshot", "prune"]);
    none.expect_code(2);
    assert!(none.stderr.contains("--keep-last"), "{none:?}");
    assert_eq!(p.snapshot_dirs().len(), 5);

    // --dry-run says what it would delete and deletes nothing.
    let dry = p.dbsafe(&[
        "snapshot",
        "prune",
        "--keep-last",
        "2",
        "--dry-run",
        "--message-format",
        "json",
    ]);
    dry.expect_code(0);
    let pruned = &dry.events()[0];
    assert_eq!(pruned["dry_run"], true);
    let mut would: Vec<String> = pruned["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    would.sort();
    let mut oldest = first[..3].to_vec();
    oldest.sort();
    assert_eq!(would, oldest);
    let mut all_five = first.clone();
    all_five.sort();
    assert_eq!(p.snapshot_dirs(), all_five);
    let dry_human = p.dbsafe(&["snapshot", "prune", "--keep-last", "2", "--dry-run"]);
    dry_human.expect_code(0);
    assert!(dry_human.stdout.contains("would delete 3"), "{dry_human:?}");
    assert_eq!(p.snapshot_dirs(), all_five);

    // --keep-last 2: the three oldest go, directories and all.
    let prune = p.dbsafe(&["snapshot", "prune", "--keep-last", "2"]);
    prune.expect_code(0);
    for id in &first[..3] {
        assert!(prune.stdout.contains(id), "{prune:?}");
        assert!(!snapshots_dir(&p).join(id).exists(), "{id} deleted");
    }
    let mut newest_two = first[3..].to_vec();
    newest_two.sort();
    assert_eq!(p.snapshot_dirs(), newest_two);
    let list = p.dbsafe(&["snapshot", "list"]);
    assert!(
        !list.stdout.contains(&first[0]) && list.stdout.contains(&first[4]),
        "{list:?}"
    );

    // The snapshot of the newest run is never pruned, even with --keep-last 1.
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration(
        "2024-03-01-000002_more",
        "CREATE TABLE more_things (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE more_things;"),
    );
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let run_snapshot = run_column(&p.db, &applied.run_id(), "snapshot_id");
    assert!(!run_snapshot.is_empty());
    let later: Vec<String> = (0..2).map(|_| id_of(&create_snapshot(&p, &[]))).collect();

    let dry = p.dbsafe(&[
        "snapshot",
        "prune",
        "--keep-last",
        "1",
        "--dry-run",
        "--message-format",
        "json",
    ]);
    dry.expect_code(0);
    let mut would: Vec<String> = dry.events()[0]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    would.sort();
    let mut expected = vec![first[3].clone(), first[4].clone(), later[0].clone()];
    expected.sort();
    assert_eq!(would, expected);
    assert_eq!(p.snapshot_dirs().len(), 5, "dry run deleted nothing");

    p.dbsafe(&["snapshot", "prune", "--keep-last", "1"])
        .expect_code(0);
    let mut kept = vec![run_snapshot.clone(), later[1].clone()];
    kept.sort();
    assert_eq!(p.snapshot_dirs(), kept);
    // Again: nothing more to delete.
    let again = p.dbsafe(&[
        "snapshot",
        "prune",
        "--keep-last",
        "1",
        "--message-format",
        "json",
    ]);
    again.expect_code(0);
    assert_eq!(again.events()[0]["deleted"], serde_json::json!([]));

    // keep-days: a snapshot older than the limit goes, younger ones stay; the newest run's
    // snapshot stays however old.
    let newest = id_of(&create_snapshot(&p, &[]));
    for old in [&later[1], &run_snapshot] {
        let path = snapshots_dir(&p).join(old).join("manifest.json");
        let mut manifest = read_manifest(&p, old);
        manifest["created_at"] = "2020-01-01T00:00:00.000Z".into();
        std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    }
    let by_age = p.dbsafe(&[
        "snapshot",
        "prune",
        "--keep-days",
        "30",
        "--message-format",
        "json",
    ]);
    by_age.expect_code(0);
    assert_eq!(by_age.events()[0]["deleted"], serde_json::json!([later[1]]));
    let mut kept = vec![run_snapshot.clone(), newest.clone()];
    kept.sort();
    assert_eq!(p.snapshot_dirs(), kept);

    // The policy from dbsafe.toml when no flag is given.
    p.write_config("[snapshot]\nkeep-last = 1\n");
    let newer = id_of(&create_snapshot(&p, &[]));
    let from_config = p.dbsafe(&["snapshot", "prune", "--message-format", "json"]);
    from_config.expect_code(0);
    assert_eq!(
        from_config.events()[0]["deleted"],
        serde_json::json!([newest])
    );
    let mut kept = vec![run_snapshot.clone(), newer];
    kept.sort();
    assert_eq!(p.snapshot_dirs(), kept);
    p.dbsafe(&["snapshot", "verify", &run_snapshot])
        .expect_code(0);
}

// ---------------------------------------------------------------------------------------
// 7. PostgreSQL: the template strategy, strategy mismatches, an old pg_dump

#[test]
fn postgres_template_strategy() {
    let p = project_with_data(Backend::Postgres, "");
    let _cleanup = DerivedCleanup(&p.db);
    let live = fingerprint(&p);

    // No other session on the database (the test's connections are all closed).
    let manifest = create_snapshot(&p, &["--strategy", "template"]);
    let id = id_of(&manifest);
    assert_eq!(manifest["strategy"], "template");
    assert_eq!(manifest["files"], serde_json::json!([]));
    let template = manifest["template_database"]
        .as_str()
        .expect("template database named")
        .to_owned();
    assert_eq!(derived_databases(&p.db), std::slice::from_ref(&template));
    assert_same_fingerprints("template manifest", &manifest, &live);
    assert_eq!(
        read_manifest(&p, &id)["template_database"],
        template.as_str()
    );

    p.dbsafe(&["snapshot", "verify", &id]).expect_code(0);
    let deep = p.dbsafe(&[
        "snapshot",
        "verify",
        &id,
        "--deep",
        "--message-format",
        "json",
    ]);
    deep.expect_code(0);
    let verified = deep
        .events()
        .into_iter()
        .find(|e| e["type"] == "snapshot.verified")
        .unwrap();
    assert_eq!(verified["ok"], true, "{deep:?}");
    // The scratch is gone, the template kept, the live database as it was.
    assert_eq!(derived_databases(&p.db), std::slice::from_ref(&template));
    assert_same_fingerprints("live after verify --deep", &fingerprint(&p), &live);

    // A change to the template copy is caught by verify --deep.
    let copy_url = format!("{}/{template}", pg_server());
    {
        let mut copy = PgConnection::establish(&copy_url).unwrap();
        copy.batch_execute("UPDATE items SET qty = qty + 1 WHERE id = 7")
            .unwrap();
    }
    let changed = p.dbsafe(&["snapshot", "verify", &id, "--deep"]);
    changed.expect_code(1);
    assert!(changed.stderr.contains("items"), "{changed:?}");
    {
        let mut copy = PgConnection::establish(&copy_url).unwrap();
        copy.batch_execute("UPDATE items SET qty = qty - 1 WHERE id = 7")
            .unwrap();
    }
    p.dbsafe(&["snapshot", "verify", &id, "--deep"])
        .expect_code(0);

    // Another session on the database blocks the clone: said so, nothing left behind.
    {
        let _held = p.db.connect();
        let blocked = p.dbsafe(&["snapshot", "create", "--strategy", "template"]);
        blocked.expect_code(1);
        assert!(blocked.stderr.contains("Sessions connected"), "{blocked:?}");
        assert_eq!(p.snapshot_dirs(), std::slice::from_ref(&id));
        assert_eq!(derived_databases(&p.db), std::slice::from_ref(&template));
    }

    // Pruning it drops the template database.
    let second = id_of(&create_snapshot(&p, &["--strategy", "template"]));
    let prune = p.dbsafe(&["snapshot", "prune", "--keep-last", "1"]);
    prune.expect_code(0);
    assert_eq!(p.snapshot_dirs(), std::slice::from_ref(&second));
    let second_template = read_manifest(&p, &second)["template_database"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        derived_databases(&p.db),
        std::slice::from_ref(&second_template)
    );

    // A template snapshot whose database was dropped behind dbsafe's back: verify says it
    // cannot be restored, and the live database is untouched.
    {
        let mut admin = PgConnection::establish(&format!("{}/postgres", pg_server())).unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE \"{second_template}\""))
            .unwrap();
    }
    for deep in [false, true] {
        let mut args = vec!["snapshot", "verify", second.as_str()];
        if deep {
            args.push("--deep");
        }
        let gone = p.dbsafe(&args);
        gone.expect_code(1);
        assert!(
            gone.stderr.contains(&second_template) && gone.stderr.contains("missing"),
            "{gone:?}"
        );
        assert_eq!(derived_databases(&p.db), Vec::<String>::new());
    }
    assert_same_fingerprints(
        "live after verifying a lost template",
        &fingerprint(&p),
        &live,
    );
    let prune = p.dbsafe(&["snapshot", "prune", "--keep-last", "0"]);
    prune.expect_code(0);
    assert_eq!(p.snapshot_dirs(), Vec::<String>::new());
    assert_eq!(derived_databases(&p.db), Vec::<String>::new());
    assert_same_fingerprints("live at the end", &fingerprint(&p), &live);
}

#[test]
fn postgres_strategy_mismatch_and_old_pg_dump() {
    let p = project_with_data(Backend::Postgres, "");
    let _cleanup = DerivedCleanup(&p.db);
    for strategy in ["mysqldump", "sqlite-backup"] {
        let run = p.dbsafe(&["snapshot", "create", "--strategy", strategy]);
        run.expect_code(2);
        assert!(
            run.stderr.contains(strategy) && run.stderr.contains("pg-dump"),
            "{run:?}"
        );
    }
    assert_eq!(p.snapshot_dirs(), Vec::<String>::new());

    // A pg_dump older than the server.
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("pg_dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 9.6.0'; exit 0; fi\necho 'this fake pg_dump only tells its version' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // First on PATH it is passed over for the newest pg_dump that fits the server, which
    // the manifest names.
    let path = path_with(bin.path());
    let chosen = dbsafe_with_path(
        &p,
        &path,
        &["snapshot", "create", "--message-format", "json"],
    );
    chosen.expect_code(0);
    let manifest = chosen
        .events()
        .into_iter()
        .find(|e| e["type"] == "snapshot")
        .expect("the manifest");
    let tools = manifest["client_tools"].as_str().unwrap_or_default();
    assert!(
        tools.starts_with("pg_dump ") && !tools.contains(&bin.path().display().to_string()),
        "{manifest}"
    );
    std::fs::remove_dir_all(
        p.path()
            .join(".dbsafe/snapshots")
            .join(manifest["id"].as_str().unwrap()),
    )
    .unwrap();
    // Named as the tools to use, it is refused, and pg_dump is not run.
    let named = bin.path().display().to_string();
    for format in ["human", "json"] {
        let mut cmd = p.command("cargo-dbsafe");
        cmd.args(["dbsafe", "snapshot", "create", "--message-format", format])
            .env("DBSAFE_PG_BIN_DIR", &named);
        let run = dbsafe_tests::run(cmd);
        run.expect_code(2);
        let text = printed(&run);
        assert!(
            text.contains("pg_dump 9 is older than the server"),
            "{run:?}"
        );
        assert!(
            !text.contains("only tells its version"),
            "pg_dump was not run: {run:?}"
        );
        assert_eq!(
            p.snapshot_dirs(),
            Vec::<String>::new(),
            "no snapshot dir left"
        );
    }

    // apply with a snapshot to take refuses the same way, before any migration runs.
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration(
        "2024-03-01-000002_more",
        "CREATE TABLE more_things (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE more_things;"),
    );
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply"])
        .env("DBSAFE_PG_BIN_DIR", &named);
    let apply = dbsafe_tests::run(cmd);
    apply.expect_code(2);
    assert!(apply.stderr.contains("older than the server"), "{apply:?}");
    assert!(!p.db.has_table("more_things"));
    assert_eq!(p.db.diesel_versions(), [ITEMS_VERSION]);
    assert_eq!(p.snapshot_dirs(), Vec::<String>::new());
}
