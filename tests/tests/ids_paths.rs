//! Hostile input that must never reach outside its folder or past a guard: snapshot and run
//! ids that are paths, manifests that name other directories or databases, SQL files in
//! dbsafe.toml outside the repository, migrations that are not UTF-8, corrupt manifests on
//! restore, the confirmation prompt on a real terminal, the modes of dbsafe's local state,
//! MariaDB database names with a backtick, and prune on a protected target.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dbsafe_tests::{
    Backend, Conn, Project, Run, binary, each_backend, mysql_server, run, table_text, tree,
};
use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};
use serde_json::Value;

each_backend!(
    hostile_ids_and_manifests_stay_in_the_snapshot_folder,
    sql_files_named_in_dbsafe_toml_stay_in_the_repository,
    non_utf8_migration_files_are_bad_input_naming_the_byte,
    a_corrupt_manifest_refuses_the_restore_and_is_listed,
    local_state_is_private_and_older_modes_are_tightened,
    prune_on_a_protected_target_needs_it_named_and_confirmed,
);

/// The example id of the documented form, which every bad-id message shows.
const ID_EXAMPLE: &str = "20261121T153012Z-7f3a";

const ITEMS: &str = "2024-03-01-000001_items";
const ITEMS_UP: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50));\n";
const ITEMS_DOWN: &str = "DROP TABLE items;\n";
const MORE: &str = "2024-03-01-000002_more";
const MORE_UP: &str = "CREATE TABLE more_items (id INTEGER PRIMARY KEY);\n";
const MORE_DOWN: &str = "DROP TABLE more_items;\n";

fn snapshots_dir(p: &Project) -> PathBuf {
    p.path().join(".dbsafe/snapshots")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// `snapshot create --message-format json`: the new snapshot's id.
fn create_snapshot(p: &Project) -> String {
    let run = p.dbsafe(&["snapshot", "create", "--message-format", "json"]);
    run.expect_code(0);
    run.events()
        .into_iter()
        .find(|e| e["type"] == "snapshot")
        .and_then(|e| e["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no snapshot in {run:?}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts a refusal of a bad id: exit 2, the form named.
#[track_caller]
fn assert_bad_id(run: &Run, given: &str) {
    run.expect_code(2);
    assert!(
        run.stderr.contains(given) && run.stderr.contains(ID_EXAMPLE),
        "the message names the id and the expected form: {run:?}"
    );
}

/// A project whose first migration was applied by a run that took a snapshot, with one row.
fn applied_with_snapshot(backend: Backend) -> (Project, String) {
    let p = Project::new(backend);
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration(ITEMS, ITEMS_UP, Some(ITEMS_DOWN));
    let applied = p.apply(&[]);
    applied.expect_code(0);
    p.db.execute("INSERT INTO items (id, name) VALUES (1, 'kept')");
    (p, applied.run_id())
}

// ---------------------------------------------------------------------------------------
// A. Snapshot and run ids are not paths

fn hostile_ids_and_manifests_stay_in_the_snapshot_folder(backend: Backend) {
    let (p, run_id) = applied_with_snapshot(backend);
    let snaps = snapshots_dir(&p);
    let [run_snapshot] = p.snapshot_dirs().try_into().expect("one snapshot");
    let manifest = read_json(&snaps.join(&run_snapshot).join("manifest.json"));

    // A directory outside the snapshot folder that looks like a snapshot.
    let victim = p.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious.txt"), "keep me").unwrap();
    let mut lure = manifest.clone();
    lure["id"] = "../../victim".into();
    write_json(&victim.join("manifest.json"), &lure);
    let victim_before = tree(&victim);

    // Ids on the command line: exit 2 naming the form, before anything is read.
    assert_bad_id(
        &p.dbsafe(&["snapshot", "verify", "../../victim"]),
        "../../victim",
    );
    assert_bad_id(
        &p.dbsafe(&["snapshot", "verify", "../../victim", "--deep"]),
        "../../victim",
    );
    assert_bad_id(&p.dbsafe(&["runs", "show", "../x"]), "../x");
    assert_bad_id(
        &p.dbrollback(&["../../victim", "--restore", "--yes"]),
        "../../victim",
    );
    let mut verify = p.command("cargo-dbverify");
    verify.args(["dbverify", "--against", "../../victim"]);
    assert_bad_id(&run(verify), "../../victim");
    // A valid prefix of a run id still finds the run.
    let prefix = &run_id[..run_id.len() - 2];
    p.dbsafe(&["runs", "show", prefix]).expect_code(0);
    let dry = p.dbrollback(&[prefix, "--dry-run"]);
    dry.expect_code(0);
    assert!(dry.stdout.contains("DROP TABLE items"), "{dry:?}");

    // Manifests in the snapshot folder that name something else: a directory outside, a
    // file outside, the live database as their "template". Old, so prune would take them.
    let copy_of_real = |name: &str, edit: &dyn Fn(&mut Value)| {
        let dir = snaps.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(snaps.join(&run_snapshot))
            .unwrap()
            .flatten()
        {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let mut m = manifest.clone();
        m["id"] = name.into();
        m["run_id"] = Value::Null;
        m["created_at"] = "2000-01-01T00:00:00.000Z".into();
        edit(&mut m);
        write_json(&dir.join("manifest.json"), &m);
        dir
    };
    let points_out = copy_of_real("20000101T000000Z-0bad", &|m| {
        m["id"] = "../../victim".into()
    });
    let live_db = p.db.name.clone();
    let drops_live = copy_of_real("20000101T000001Z-0bad", &|m| {
        m["template_database"] = live_db.clone().into()
    });
    let reads_out = copy_of_real("20000101T000002Z-0bad", &|m| {
        m["files"][0]["name"] = "../../../victim/precious.txt".into()
    });
    let hostile = [&points_out, &drops_live, &reads_out];

    // Two ordinary snapshots: keep-last 1 deletes the older, keeps the run's.
    let older = create_snapshot(&p);
    let newest = create_snapshot(&p);

    let list = p.dbsafe(&["snapshot", "list"]);
    list.expect_code(1);
    for id in [&run_snapshot, &older, &newest] {
        assert!(list.stdout.contains(id.as_str()), "{list:?}");
    }
    for dir in hostile {
        assert!(list.stderr.contains(&dir.display().to_string()), "{list:?}");
    }
    assert!(list.stderr.contains("../../victim"), "{list:?}");

    let prune = p.dbsafe(&[
        "snapshot",
        "prune",
        "--keep-last",
        "1",
        "--message-format",
        "json",
    ]);
    prune.expect_code(1);
    let pruned = &prune.events()[0];
    assert_eq!(pruned["type"], "snapshot.pruned", "{prune:?}");
    assert_eq!(pruned["deleted"], serde_json::json!([older]), "{prune:?}");
    let skipped: Vec<&str> = pruned["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dir"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = hostile.iter().map(|d| d.display().to_string()).collect();
    assert_eq!(skipped, expected, "{prune:?}");

    // Nothing outside was touched; the hostile directories are left for a person to look at;
    // the live database is whole.
    assert_eq!(tree(&victim), victim_before);
    assert_eq!(
        std::fs::read_to_string(victim.join("precious.txt")).unwrap(),
        "keep me"
    );
    let mut left = vec![
        run_snapshot.clone(),
        newest,
        "20000101T000000Z-0bad".to_owned(),
        "20000101T000001Z-0bad".to_owned(),
        "20000101T000002Z-0bad".to_owned(),
    ];
    left.sort();
    assert_eq!(p.snapshot_dirs(), left);
    assert_eq!(table_text(&p.db, "items"), vec!["1|kept"]);
    p.dbsafe(&["snapshot", "verify", &run_snapshot])
        .expect_code(0);
}

// ---------------------------------------------------------------------------------------
// B. SQL files named in dbsafe.toml stay in the repository

fn sql_files_named_in_dbsafe_toml_stay_in_the_repository(backend: Backend) {
    let p = Project::new(backend);
    p.migration(ITEMS, ITEMS_UP, Some(ITEMS_DOWN));
    let outside = tempfile::tempdir().unwrap();
    let evil = outside.path().join("evil.sql");
    std::fs::write(&evil, "CREATE TABLE pwned (id INTEGER);\n").unwrap();
    p.file(
        "seeds/good.sql",
        "DELETE FROM items WHERE id = 7;\nINSERT INTO items (id, name) VALUES (7, 'seeded');\n",
    );
    std::fs::create_dir_all(p.path().join("checks")).unwrap();
    std::os::unix::fs::symlink(&evil, p.path().join("seeds/link.sql")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path().join("checks/out")).unwrap();
    let evil = evil.display().to_string();
    let up = format!(
        "../{}/evil.sql",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    let seed = |file: &str| format!("[[seed]]\nname = \"s\"\nfile = \"{file}\"\n");
    let invariant = |file: &str| {
        format!("[[invariant]]\nname = \"i\"\nsql-file = \"{file}\"\nexpect = \"= 0\"\n")
    };
    let cases = [
        (seed(&evil), "seed[0].file", "absolute path"),
        (seed(&up), "seed[0].file", "outside the repository"),
        (
            seed("seeds/link.sql"),
            "seed[0].file",
            "outside the repository",
        ),
        (
            format!(
                "{}\n{}",
                seed("seeds/good.sql").replace("\"s\"", "\"g\""),
                seed("checks/out/evil.sql")
            ),
            "seed[1].file",
            "outside the repository",
        ),
        (invariant(&evil), "invariant[0].sql-file", "absolute path"),
        (
            invariant(&up),
            "invariant[0].sql-file",
            "outside the repository",
        ),
        (
            invariant("seeds/link.sql"),
            "invariant[0].sql-file",
            "outside the repository",
        ),
    ];
    for (extra, key, why) in &cases {
        p.write_config(extra);
        let text = std::fs::read_to_string(p.path().join("dbsafe.toml")).unwrap();
        let written = extra
            .lines()
            .rfind(|l| l.starts_with("file") || l.starts_with("sql-file"))
            .unwrap();
        let line = text.lines().position(|l| l == written).unwrap() + 1;
        let located = format!("dbsafe.toml:{line}: key `{key}`");
        let apply = p.apply(&[]);
        apply.expect_code(2);
        assert!(apply.stderr.contains(&located), "{located}: {apply:?}");
        assert!(apply.stderr.contains(why), "{why}: {apply:?}");
        let mut verify = p.command("cargo-dbverify");
        verify.arg("dbverify");
        let verify = run(verify);
        verify.expect_code(2);
        assert!(verify.stderr.contains(&located), "{verify:?}");
        assert!(!p.db.has_table("pwned"), "{extra}");
        assert!(!p.db.has_table("items"), "nothing applied: {extra}");
    }

    // A seed inside the repository runs.
    p.write_config(&seed("seeds/good.sql"));
    p.apply(&[]).expect_code(0);
    assert_eq!(table_text(&p.db, "items"), vec!["7|seeded"]);
    assert!(!p.db.has_table("pwned"));
}

// ---------------------------------------------------------------------------------------
// C. Smaller promises

fn non_utf8_migration_files_are_bad_input_naming_the_byte(backend: Backend) {
    let p = Project::new(backend);
    let bad: &[u8] = b"-- caf\xe9\nSELECT 1;\n";
    for file in ["up.sql", "down.sql", "verify.sql"] {
        let _ = std::fs::remove_dir_all(p.path().join("migrations").join(ITEMS));
        p.migration(ITEMS, ITEMS_UP, Some(ITEMS_DOWN));
        let path = p.path().join("migrations").join(ITEMS).join(file);
        let mut bytes = if file == "up.sql" {
            ITEMS_UP.as_bytes().to_vec()
        } else {
            Vec::new()
        };
        let offset = bytes.len() + "-- caf".len();
        bytes.extend_from_slice(bad);
        std::fs::write(&path, &bytes).unwrap();
        let named = format!("{}: is not valid UTF-8", path.display());
        let at = format!("byte offset {offset}");
        for run in [p.apply(&[]), p.dbsafe(&["check"])] {
            run.expect_code(2);
            assert!(
                run.stderr.contains(&named) && run.stderr.contains(&at),
                "{named} {at}: {run:?}"
            );
        }
        assert!(!p.db.has_table("items"), "{file}");
        assert_eq!(p.db.diesel_versions(), Vec::<String>::new());
    }
}

fn a_corrupt_manifest_refuses_the_restore_and_is_listed(backend: Backend) {
    let (p, _) = applied_with_snapshot(backend);
    p.migration(MORE, MORE_UP, Some(MORE_DOWN));
    let second = p.apply(&[]);
    second.expect_code(0);
    let second_run = second.run_id();
    let snapshot = p.db.strings(&format!(
        "SELECT snapshot_id AS v FROM dbsafe_runs WHERE id = '{second_run}'"
    ));
    let snapshot = snapshot.first().expect("the run's snapshot").clone();
    let manifest = snapshots_dir(&p).join(&snapshot).join("manifest.json");
    std::fs::write(&manifest, "{\"id\": \"20").unwrap();
    let before = tree(p.path());
    let runs_before = table_text(&p.db, "dbsafe_runs");

    for args in [
        vec![second_run.as_str(), "--restore", "--yes"],
        vec![second_run.as_str(), "--restore", "--dry-run"],
    ] {
        let restore = p.dbrollback(&args);
        restore.expect_code(3);
        assert!(
            restore.stderr.contains(&manifest.display().to_string())
                && restore.stderr.contains("corrupt")
                && restore.stderr.contains("not restoring"),
            "{restore:?}"
        );
    }
    assert_eq!(tree(p.path()), before, "nothing written");
    assert_eq!(table_text(&p.db, "dbsafe_runs"), runs_before);
    assert_eq!(table_text(&p.db, "items"), vec!["1|kept"]);
    assert!(p.db.has_table("more_items"));

    let list = p.dbsafe(&["snapshot", "list", "--message-format", "json"]);
    list.expect_code(1);
    let unusable: Vec<Value> = list
        .events()
        .into_iter()
        .filter(|e| e["type"] == "snapshot.unusable")
        .collect();
    assert_eq!(unusable.len(), 1, "{list:?}");
    assert_eq!(
        unusable[0]["dir"],
        snapshots_dir(&p).join(&snapshot).display().to_string()
    );
    assert!(
        unusable[0]["problem"].as_str().unwrap().contains("corrupt"),
        "{list:?}"
    );
    let listed = list
        .events()
        .into_iter()
        .filter(|e| e["type"] == "snapshot")
        .count();
    assert_eq!(listed, 1, "the good snapshot is still listed: {list:?}");
}

fn local_state_is_private_and_older_modes_are_tightened(backend: Backend) {
    let (p, _) = applied_with_snapshot(backend);
    let state = p.path().join(".dbsafe");
    let snaps = snapshots_dir(&p);
    let files = [snaps.join("targets.json"), snaps.join("journal.jsonl")];
    assert_eq!(mode(&state), 0o700, ".dbsafe/");
    assert_eq!(mode(&snaps), 0o700);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // As an older dbsafe left them: open to everyone on the machine.
    for dir in [&state, &snaps] {
        set_mode(dir, 0o755);
    }
    for file in &files {
        set_mode(file, 0o644);
    }
    p.migration(MORE, MORE_UP, Some(MORE_DOWN));
    p.apply(&[]).expect_code(0);
    assert_eq!(mode(&state), 0o700, ".dbsafe/ tightened");
    assert_eq!(mode(&snaps), 0o700, "snapshots/ tightened");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{} tightened", file.display());
    }
    for dir in p.snapshot_dirs() {
        assert_eq!(mode(&snaps.join(&dir)), 0o700, "{dir}");
    }
}

/// A project whose only target is `prod` (environment production, so protected).
fn protected_project(backend: Backend) -> Project {
    let p = Project::new(backend);
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.prod]\nurl = \"{}\"\nenvironment = \"production\"\n",
            p.db.url
        ),
    );
    p.migration(ITEMS, ITEMS_UP, Some(ITEMS_DOWN));
    p.db.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY)");
    p
}

fn prune_on_a_protected_target_needs_it_named_and_confirmed(backend: Backend) {
    let p = protected_project(backend);
    let first = create_snapshot(&p);
    let second = create_snapshot(&p);
    let both = p.snapshot_dirs();
    let prune = |extra: &[&str]| {
        let mut args = vec!["snapshot", "prune", "--keep-last", "1"];
        args.extend_from_slice(extra);
        p.dbsafe(&args)
    };
    let unnamed = prune(&[]);
    unnamed.expect_code(3);
    assert!(unnamed.stderr.contains("--target prod"), "{unnamed:?}");
    let unconfirmed = prune(&["--target", "prod"]);
    unconfirmed.expect_code(3);
    assert!(unconfirmed.stderr.contains("--yes"), "{unconfirmed:?}");
    assert_eq!(p.snapshot_dirs(), both, "nothing deleted");
    // A dry run deletes nothing and needs no confirmation.
    let dry = prune(&["--dry-run"]);
    dry.expect_code(0);
    assert!(dry.stdout.contains(&first), "{dry:?}");
    assert_eq!(p.snapshot_dirs(), both);

    let confirmed = prune(&["--target", "prod", "--yes"]);
    confirmed.expect_code(0);
    assert_eq!(p.snapshot_dirs(), vec![second]);
}

/// `cargo dbsafe apply --target prod` on a real terminal (`script` from util-linux gives it
/// one), with `input` typed and then end of input; returns the exit code and the session.
fn apply_on_a_terminal(p: &Project, input: &str) -> (i32, String) {
    let command = format!(
        "{} dbsafe apply --target prod",
        binary("cargo-dbsafe").display()
    );
    let mut child = Command::new("timeout")
        .args(["30", "script", "-qec", &command, "/dev/null"])
        .current_dir(p.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", p.path())
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("DBSAFE_OPERATOR", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let session = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), session)
}

#[test]
fn the_confirmation_prompt_on_a_terminal() {
    let p = protected_project(Backend::Sqlite);
    let (code, session) = apply_on_a_terminal(&p, "staging\n");
    assert_eq!(code, 3, "{session}");
    assert!(
        session.contains("you typed \"staging\", the target is `prod`"),
        "{session}"
    );
    assert!(!session.contains("no terminal"), "{session}");
    // Ctrl-D at the prompt: refused at once (timeout would exit 124).
    let (code, session) = apply_on_a_terminal(&p, "");
    assert_eq!(code, 3, "{session}");
    assert!(session.contains("end of input"), "{session}");
    assert!(!p.db.has_table("items"), "nothing applied");
    assert!(!p.path().join(".dbsafe/snapshots").exists(), "{session}");
    // The target's name confirms.
    let (code, session) = apply_on_a_terminal(&p, "prod\n");
    assert_eq!(code, 0, "{session}");
    assert!(p.db.has_table("items"));
}

/// The statements' identifier quoting on MariaDB, for the test's own SQL.
fn mysql_quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Drops the listed MariaDB databases when the test ends.
struct DropDatabases(Vec<String>);

impl Drop for DropDatabases {
    fn drop(&mut self) {
        if let Ok(mut admin) = MysqlConnection::establish(&format!("{}/mysql", mysql_server())) {
            for name in &self.0 {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", mysql_quoted(name)));
            }
        }
    }
}

/// MariaDB: a backtick can only reach a database name through a `%60` in the URL, which
/// diesel leaves as written while the tools and dbsafe's SQL would decode it: two
/// databases. Refused before anything runs, and neither database is touched.
#[test]
fn mysql_database_name_with_a_backtick_is_refused_cleanly() {
    let n = std::process::id();
    let written = format!("dbsafe_bt%60x_{n}");
    let decoded = format!("dbsafe_bt`x_{n}");
    let _cleanup = DropDatabases(vec![written.clone(), decoded.clone()]);
    let mut admin = MysqlConnection::establish(&format!("{}/mysql", mysql_server())).unwrap();
    for name in [&written, &decoded] {
        admin
            .batch_execute(&format!("CREATE DATABASE {}", mysql_quoted(name)))
            .unwrap();
    }
    admin
        .batch_execute(&format!(
            "CREATE TABLE {}.victim (id INTEGER PRIMARY KEY); INSERT INTO {}.victim VALUES (1)",
            mysql_quoted(&decoded),
            mysql_quoted(&decoded)
        ))
        .unwrap();
    let p = Project::new(Backend::Mysql);
    p.migration(ITEMS, ITEMS_UP, Some(ITEMS_DOWN));
    let server = mysql_server();
    for url in [
        format!("{server}/{written}"),
        format!("{}/{written}", server.replacen("mysql://", "mariadb://", 1)),
    ] {
        p.file(
            "dbsafe.toml",
            &format!(
                "[targets.test]\nurl = \"{url}\"\nenvironment = \"test\"\n\n[apply]\nsnapshot = \"always\"\n"
            ),
        );
        for args in [
            vec!["apply"],
            vec!["snapshot", "create"],
            vec!["snapshot", "prune", "--keep-last", "1"],
        ] {
            let refused = p.dbsafe(&args);
            refused.expect_code(2);
            assert!(
                refused.stderr.contains("percent-encoded") && refused.stderr.contains(&decoded),
                "{refused:?}"
            );
        }
    }
    let mut probe = Conn::Mysql(admin);
    let mut strings = |sql: &str| probe.strings(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let tables = |db: &str| {
        format!(
            "SELECT CAST(table_name AS CHAR) AS v FROM information_schema.tables WHERE table_schema = '{db}'"
        )
    };
    assert_eq!(
        strings(&tables(&written)),
        Vec::<String>::new(),
        "nothing applied"
    );
    assert_eq!(strings(&tables(&decoded)), vec!["victim"]);
    let rows = strings(&format!(
        "SELECT CAST(id AS CHAR) AS v FROM {}.victim",
        mysql_quoted(&decoded)
    ));
    assert_eq!(rows, vec!["1"]);
    let mut databases = strings(
        "SELECT CAST(schema_name AS CHAR) AS v FROM information_schema.schemata WHERE schema_name LIKE 'dbsafe\\_bt%'",
    );
    databases.sort();
    let mut expected = vec![written.clone(), decoded.clone()];
    expected.sort();
    assert_eq!(databases, expected, "no scratch or copy made");
    assert!(!snapshots_dir(&p).exists(), "no snapshot taken");
}
