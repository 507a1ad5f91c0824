//! Adopting dbsafe on a diesel history that has already shipped (the generated history of
//! `dbsafe_tests::real_history`): every directory name survives dbsafe.lock, the shipped
//! history is not linted again after `check --update-lock`, diesel's setup migration is
//! never out of order, the round trip reports every broken down.sql in one pass, "missing
//! down" means one thing for check, status and rollback, and a fixed down.sql is accepted
//! for one rollback with `--allow-edit`.

use std::path::Path;

use dbsafe_tests::real_history::{self, DIESEL_SETUP, History};
use dbsafe_tests::{Backend, Project, Run, TestDb, dbsafe_in, each_backend, id_column};
use serde_json::Value;

/// A project directory with the generated history of `count` migrations and a target
/// `dev` on `url` (a server that is never reached for the offline checks).
fn history_project(count: usize, url: &str) -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dbsafe.toml"),
        format!("[targets.dev]\nurl = \"{url}\"\nenvironment = \"development\"\n"),
    )
    .unwrap();
    let history = real_history::write_history(&dir.path().join("migrations"), count);
    (dir, history)
}

const OFFLINE_PG: &str = "postgres://app@127.0.0.1:1/app";

/// `check --message-format json ARGS` in `dir`: the run, its findings and its summary.
fn check(dir: &Path, args: &[&str]) -> (Run, Vec<Value>, Value) {
    let mut all = vec!["check", "--message-format", "json"];
    all.extend_from_slice(args);
    let run = dbsafe_in(dir, &all, &[]);
    let events = run.events();
    let findings = events
        .iter()
        .filter(|e| e["type"] == "check.finding")
        .cloned()
        .collect();
    let summary = events
        .iter()
        .find(|e| e["type"] == "check.summary")
        .cloned()
        .unwrap_or(Value::Null);
    (run, findings, summary)
}

fn rules(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

/// The findings whose file lies in migration `name`.
fn of_migration<'a>(findings: &'a [Value], name: &str) -> Vec<&'a Value> {
    let prefix = format!("migrations/{name}/");
    findings
        .iter()
        .filter(|f| {
            f["file"]
                .as_str()
                .is_some_and(|file| file.starts_with(&prefix))
        })
        .collect()
}

#[test]
fn lock_file_round_trips_every_directory_name() {
    let (dir, history) = history_project(300, OFFLINE_PG);
    let p = dir.path();
    // More names diesel accepts: leading and doubled spaces, a trailing space, a tab.
    let extra = [
        "2030-01-01-000000_ leading space",
        "2030-01-02-000000_two  spaces",
        "2030-01-03-000000_trailing space ",
        "2030-01-04-000000_tab\there",
        "2030-01-05-000000_back\\slash \"and\" 'quotes' #7",
    ];
    for name in extra {
        let m = p.join("migrations").join(name);
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("up.sql"),
            "CREATE TABLE IF NOT EXISTS x (id bigint);\n",
        )
        .unwrap();
        std::fs::write(m.join("down.sql"), "DROP TABLE IF EXISTS x;\n").unwrap();
    }
    assert!(history.odd_names.len() >= 5, "{:?}", history.odd_names);

    let (run, _, summary) = check(p, &["--update-lock"]);
    assert_eq!(summary["lock"]["written"], true, "{run:?}");
    assert_eq!(summary["lock"]["added"].as_array().unwrap().len(), 306);
    // The unchanged tree passes the lock check: every name was written and read back.
    let (run, findings, _) = check(p, &[]);
    run.expect_code(0);
    let lock_findings: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"].as_str().unwrap().starts_with("lock-"))
        .collect();
    assert!(lock_findings.is_empty(), "{lock_findings:#?}");
    let lock = std::fs::read_to_string(p.join("dbsafe.lock")).unwrap();
    let entries = lock.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(entries, 306, "{lock}");
    // Plain names, and names with inner spaces, are written as they are; a name that
    // could not be read back so is quoted.
    assert!(lock.contains("\n2018-01-21-201500_Add audit log to invoices 20 "));
    assert!(lock.contains("\n2018-04-05-161500_it's \"quoted\" "));
    assert!(lock.contains("\n\"2030-01-03-000000_trailing space \" "));
    assert!(lock.contains("\n\"2030-01-04-000000_tab\\u{9}here\" "));
    // Nothing changes: --update-lock leaves the file alone.
    check(p, &["--update-lock"]).0.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(p.join("dbsafe.lock")).unwrap(),
        lock
    );
    // Editing one of the odd-named migrations is found, under its own name.
    let edited = &history.odd_names[0];
    std::fs::write(
        p.join("migrations").join(edited).join("down.sql"),
        "SELECT 1;\n",
    )
    .unwrap();
    let (run, findings, _) = check(p, &[]);
    run.expect_code(1);
    let found: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "lock-edited")
        .collect();
    assert_eq!(found.len(), 1, "{findings:#?}");
    assert_eq!(
        found[0]["file"],
        format!("migrations/{edited}/down.sql"),
        "{found:#?}"
    );
}

#[test]
fn an_old_lock_file_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("dbsafe.toml"), "[lint]\ndialect = \"sqlite\"\n").unwrap();
    let m = p.join("migrations/2024-01-01-000000_users");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("up.sql"), "CREATE TABLE users (id INTEGER);\n").unwrap();
    // A lock file as earlier versions wrote it (no down.sql: `-`), hand-indented.
    let up = dbsafe::migrations::checksum("CREATE TABLE users (id INTEGER);\n");
    std::fs::write(
        p.join("dbsafe.toml"),
        "[lint]\ndialect = \"sqlite\"\n[check]\nrequire-down = false\n",
    )
    .unwrap();
    std::fs::write(
        p.join("dbsafe.lock"),
        format!("# old header\n2024-01-01-000000_users {up} -\n"),
    )
    .unwrap();
    let (run, findings, _) = check(p, &[]);
    run.expect_code(0);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn shipped_history_is_not_linted_again_after_adoption() {
    let (dir, history) = history_project(300, OFFLINE_PG);
    let p = dir.path();
    // Before adoption: hundreds of findings on migrations that shipped years ago.
    let (run, findings, summary) = check(p, &[]);
    run.expect_code(1);
    assert!(summary["errors"].as_u64().unwrap() > 150, "{summary}");
    assert!(summary["warnings"].as_u64().unwrap() > 300, "{summary}");
    for name in history.missing_down() {
        assert!(
            of_migration(&findings, &name)
                .iter()
                .any(|f| f["rule"] == "missing-down"),
            "{name}: {findings:#?}"
        );
    }

    // Adoption: one `check --update-lock` records the history.
    let adopt = dbsafe_in(p, &["check", "--update-lock"], &[]);
    assert!(
        adopt.stderr.contains(
            "from now on `cargo dbsafe check` lints only migrations that are not recorded"
        ),
        "{adopt:?}"
    );
    // From then on, the history is quiet: only the files beside the migrations are named.
    let (run, findings, summary) = check(p, &[]);
    run.expect_code(0);
    assert_eq!(summary["linted"], 0, "{summary}");
    assert_eq!(summary["migrations"], 301);
    let files: Vec<&str> = findings
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    let loose: Vec<String> = history
        .loose_files
        .iter()
        .map(|f| format!("migrations/{f}"))
        .collect();
    assert_eq!(files, loose, "{findings:#?}");
    assert!(rules(&findings).iter().all(|r| r == "stray-file"));
    // The summary says what was not linted and how to lint it.
    let human = dbsafe_in(p, &["check"], &[]);
    assert!(
        human.stdout.contains(
            "linted 0 new or edited, not the 301 recorded in dbsafe.lock (--all lints them)"
        ),
        "{human:?}"
    );
    // --all lints everything again.
    let (run, _, summary) = check(p, &["--all"]);
    run.expect_code(1);
    assert!(summary["errors"].as_u64().unwrap() > 150, "{summary}");

    // New work is linted: a new migration with an unsafe index and no down.sql.
    let new = "2031-01-01-000000_index users";
    let m = p.join("migrations").join(new);
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("up.sql"),
        "CREATE INDEX t1_created ON t1 (created_at);\n",
    )
    .unwrap();
    let (run, findings, summary) = check(p, &[]);
    run.expect_code(1);
    assert_eq!(summary["linted"], 1);
    let about_new = of_migration(&findings, new);
    let new_rules: Vec<&str> = about_new
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for rule in [
        "require-concurrent-index-creation",
        "missing-down",
        "lock-unrecorded",
    ] {
        assert!(new_rules.contains(&rule), "{rule}: {findings:#?}");
    }
    let others: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] != "stray-file" && !about_new.contains(f))
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    std::fs::remove_dir_all(&m).unwrap();

    // An edited shipped migration is linted again (and is a lock error).
    let shipped = &history.migrations[3];
    let up = p.join("migrations").join(shipped).join("up.sql");
    let text = std::fs::read_to_string(&up).unwrap();
    std::fs::write(&up, format!("{text}ALTER TABLE t1 DROP COLUMN name;\n")).unwrap();
    let (run, findings, _) = check(p, &[]);
    run.expect_code(1);
    let edited_rules = rules(
        &of_migration(&findings, shipped)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(
        edited_rules.contains(&"lock-edited".to_owned()),
        "{findings:#?}"
    );
    assert!(
        edited_rules.contains(&"ban-drop-column".to_owned()),
        "{findings:#?}"
    );
}

#[test]
fn diesel_setup_added_later_is_never_out_of_order() {
    let (dir, _) = history_project(200, OFFLINE_PG);
    let p = dir.path();
    let setup = p.join("migrations").join(DIESEL_SETUP);
    let aside = p.join("setup-aside");
    std::fs::rename(&setup, &aside).unwrap();
    dbsafe_in(p, &["check", "--update-lock"], &[]);
    // `diesel setup` adds its migration after the others exist.
    std::fs::rename(&aside, &setup).unwrap();
    let (run, findings, _) = check(p, &[]);
    run.expect_code(1);
    let about: Vec<String> = rules(
        &of_migration(&findings, DIESEL_SETUP)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(
        about.contains(&"lock-unrecorded".to_owned()),
        "{findings:#?}"
    );
    assert!(!rules(&findings).contains(&"lock-out-of-order".to_owned()));
    for finding in of_migration(&findings, DIESEL_SETUP) {
        assert!(!finding.to_string().contains("rename"), "{finding}");
    }
    // Recording it needs no --allow-edit.
    let (run, _, summary) = check(p, &["--update-lock"]);
    run.expect_code(0);
    assert_eq!(summary["lock"]["added"][0], DIESEL_SETUP);
}

each_backend!(
    diesel_setup_applied_later_is_not_out_of_order,
    target_version_takes_the_directory_form,
    missing_down_means_one_thing_everywhere,
    fixed_down_sql_is_accepted_for_one_rollback_with_allow_edit,
    database_stamped_by_diesel_is_adopted_by_the_first_apply,
    dev_target_follows_its_url_to_another_local_database,
);

fn table(p: &Project, name: &str) -> (String, String) {
    (
        format!(
            "CREATE TABLE {name} ({}, note VARCHAR(20));\n",
            id_column(p.backend())
        ),
        format!("DROP TABLE {name};\n"),
    )
}

fn add_table(p: &Project, version: &str, name: &str) -> String {
    let dir = format!("{version}_create {name}");
    let (up, down) = table(p, name);
    p.migration(&dir, &up, Some(&down));
    dir
}

fn warnings_of(run: &Run) -> Vec<String> {
    run.events()
        .iter()
        .filter(|e| e["type"] == "preflight.warning")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

fn diesel_setup_applied_later_is_not_out_of_order(backend: Backend) {
    let p = Project::new(backend);
    add_table(&p, "2024-01-01-000001", "accounts");
    p.apply(&[]).expect_code(0);
    // diesel setup's body is PostgreSQL's; the name is what matters.
    let body = if backend == Backend::Postgres {
        "CREATE OR REPLACE FUNCTION diesel_noop() RETURNS VOID AS $$ BEGIN END; $$ LANGUAGE plpgsql;\n"
    } else {
        "CREATE TABLE diesel_setup_marker (id INTEGER);\n"
    };
    p.migration(DIESEL_SETUP, body, Some("SELECT 1;\n"));
    // An ordinary older migration is still called out of order.
    add_table(&p, "2023-01-01-000000", "legacy");
    let run = p.apply(&[]);
    run.expect_code(0);
    let warnings = warnings_of(&run);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("2023-01-01-000000_create legacy"),
        "{warnings:#?}"
    );
    assert!(!warnings[0].contains(DIESEL_SETUP), "{warnings:#?}");
    assert!(
        p.db.diesel_versions()
            .contains(&"00000000000000".to_owned())
    );
}

fn target_version_takes_the_directory_form(backend: Backend) {
    let p = Project::new(backend);
    add_table(&p, "2024-10-24-134209", "a");
    add_table(&p, "2024-10-25-000000", "b");
    add_table(&p, "2024-10-26-000000", "c");
    p.apply(&["--target-version", "2024-10-24-134209"])
        .expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20241024134209"]);
    p.apply(&["--target-version", "20241025000000"])
        .expect_code(0);
    assert_eq!(p.db.diesel_versions().len(), 2);
    p.apply(&[]).expect_code(0);
    // --to of dbrollback takes it too.
    let out = p.dbrollback(&["--last", "--to", "2024-10-25-000000", "--dry-run"]);
    out.expect_code(0);
    assert!(out.stdout.contains("2024-10-26-000000_create c"), "{out:?}");
    assert!(!out.stdout.contains("create b"), "{out:?}");
    // A version that does not exist is bad usage, touching nothing.
    let bad = p.apply(&["--target-version", "2099-01-01-000000"]);
    bad.expect_code(2);
    assert_eq!(p.db.diesel_versions().len(), 3);
}

fn missing_down_means_one_thing_everywhere(backend: Backend) {
    let p = Project::new(backend);
    let a = add_table(&p, "2024-01-01-000001", "a");
    let b = "2024-01-01-000002_fill a".to_owned();
    p.migration(
        &b,
        "INSERT INTO a (note) VALUES ('x');\n",
        Some("-- Not reversible\n"),
    );
    let c = "2024-01-01-000003_fill a again".to_owned();
    p.migration(&c, "INSERT INTO a (note) VALUES ('y');\n", Some(" \n\t\n"));
    let applied = p.apply(&[]);
    applied.expect_code(0);

    // check: both are missing-down.
    let (_, findings, _) = check(p.path(), &["--update-lock"]);
    for name in [&b, &c] {
        assert!(
            of_migration(&findings, name)
                .iter()
                .any(|f| f["rule"] == "missing-down"),
            "{name}: {findings:#?}"
        );
    }
    assert!(
        !of_migration(&findings, &a)
            .iter()
            .any(|f| f["rule"] == "missing-down"),
        "{findings:#?}"
    );

    // status says so for each.
    let report = p.status_report();
    let missing: Vec<(String, Value)> = report["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["missing_down"].clone(),
            )
        })
        .collect();
    assert_eq!(
        missing,
        [
            (a.clone(), Value::Null),
            (b.clone(), "a down.sql of comments only, no SQL".into()),
            (c.clone(), "an empty down.sql".into()),
        ]
    );
    let text = p.dbsafe(&["status"]);
    assert!(
        text.stdout.contains(&format!(
            "{b}  applied by run {}  (has a down.sql of comments only",
            applied.run_id()
        )),
        "{text:?}"
    );

    // dbrollback --dry-run and the rollback itself refuse, naming both, touching nothing.
    let before = p.db.diesel_versions();
    for dry_run in [true, false] {
        let mut args = vec!["--last", "--message-format", "json"];
        if dry_run {
            args.push("--dry-run");
        }
        let out = p.dbrollback(&args);
        out.expect_code(3);
        let error = out
            .events()
            .into_iter()
            .find(|e| e["type"] == "error")
            .unwrap();
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("2 migration(s)"), "{message}");
        assert!(
            message.contains(&format!("{b} has a down.sql of comments only")),
            "{message}"
        );
        assert!(
            message.contains(&format!("{c} has an empty down.sql")),
            "{message}"
        );
        assert_eq!(p.db.diesel_versions(), before);
    }
    assert_eq!(p.db.count("a"), 2);
}

fn ledger_payloads(db: &TestDb, kind: &str) -> Vec<Value> {
    db.strings(&format!(
        "SELECT payload AS v FROM dbsafe_events WHERE event_type = '{kind}' ORDER BY seq"
    ))
    .iter()
    .map(|p| serde_json::from_str(p).unwrap())
    .collect()
}

fn fixed_down_sql_is_accepted_for_one_rollback_with_allow_edit(backend: Backend) {
    let p = Project::new(backend);
    let a = add_table(&p, "2024-01-01-000001", "a");
    let b = "2024-01-01-000002_create b".to_owned();
    let (up, _) = table(&p, "b");
    // The down.sql that shipped has a typo.
    p.migration(&b, &up, Some("DROP TABLE bb;\n"));
    let applied = p.apply(&[]);
    applied.expect_code(0);
    let run = applied.run_id();

    let failed = p.dbrollback(&[&run, "--message-format", "json"]);
    failed.expect_code(4);
    let message = failed
        .events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let command = format!("cargo dbrollback {run} --target test --allow-edit '{b}'");
    assert!(message.contains(&command), "{message}");
    if backend == Backend::Mysql {
        // MySQL's DDL is not transactional: the failed step is dirty until resolved.
        p.dbsafe(&["resolve", "20240101000002", "--as", "applied"])
            .expect_code(0);
    }

    // The fixed file alone is refused: its checksum changed. The refusal names the flag.
    let down = p.path().join("migrations").join(&b).join("down.sql");
    std::fs::write(&down, "DROP TABLE b;\n").unwrap();
    let refused = p.dbrollback(&[&run, "--message-format", "json"]);
    refused.expect_code(3);
    assert!(
        refused.stdout.contains(&format!("--allow-edit {b}")),
        "{refused:?}"
    );
    assert!(p.db.has_table("b"));
    // A name that is not part of the rollback is bad usage.
    p.dbrollback(&[&run, "--allow-edit", "2099-01-01-000000_x"])
        .expect_code(2);

    // The dry run shows the edited down.sql; the rollback runs it and records both checksums.
    let dry = p.dbrollback(&[&run, "--allow-edit", &b, "--dry-run"]);
    dry.expect_code(0);
    assert!(dry.stdout.contains("accepted with --allow-edit"), "{dry:?}");
    let done = p.dbrollback(&[&run, "--allow-edit", &b, "--message-format", "json"]);
    done.expect_code(0);
    assert!(!p.db.has_table("b") && !p.db.has_table("a"));
    let edited = ledger_payloads(&p.db, "rollback.down_edited");
    assert_eq!(edited.len(), 1, "{edited:#?}");
    assert_eq!(edited[0]["name"], b.as_str());
    assert_eq!(
        edited[0]["recorded_checksum"],
        dbsafe::migrations::checksum("DROP TABLE bb;\n")
    );
    assert_eq!(
        edited[0]["checksum"],
        dbsafe::migrations::checksum("DROP TABLE b;\n")
    );
    assert!(
        done.event_types()
            .contains(&"rollback.down_edited".to_owned()),
        "{done:?}"
    );
    let _ = a;
}

/// The whole generated history round-tripped in one pass on PostgreSQL: every broken
/// down.sql is named, with the server's message or the difference.
#[test]
fn roundtrip_of_the_history_reports_every_problem_in_one_pass() {
    let db_dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Postgres, db_dir.path());
    let (dir, history) = history_project(200, &db.url);
    let p = dir.path();
    dbsafe_in(p, &["check", "--update-lock"], &[]);
    let (run, findings, summary) = check(p, &["--roundtrip", "--all"]);
    run.expect_code(1);
    let roundtrip: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"].as_str().unwrap().starts_with("roundtrip"))
        .collect();
    let message_of = |name: &str| -> Vec<String> {
        roundtrip
            .iter()
            .filter(|f| f["file"].as_str().unwrap_or("").contains(name))
            .map(|f| {
                format!(
                    "{}: {}",
                    f["rule"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                )
            })
            .collect()
    };
    let expect = |names: &[String], needle: &str| {
        for name in names {
            let messages = message_of(name);
            assert_eq!(messages.len(), 1, "{name}: {roundtrip:#?}");
            assert!(messages[0].contains(needle), "{needle} not in {messages:?}");
        }
    };
    expect(&history.no_down, "roundtrip: ");
    expect(&history.no_down, "has no down.sql");
    expect(&history.empty_down, "has an empty down.sql");
    expect(&history.comment_down, "has a down.sql of comments only");
    expect(&history.failing_down, "fails: table ");
    expect(&history.failing_down, "does not exist");
    expect(
        &history.concurrently_down,
        "CONCURRENTLY but runs inside a transaction",
    );
    expect(
        &history.concurrently_down,
        "cannot run inside a transaction block",
    );
    expect(
        &history.leaky_down,
        "does not restore the schema before it: table `",
    );
    expect(&history.column_order_down, "roundtrip-column-order: ");
    expect(
        &history.column_order_down,
        "column order of `instances` changed",
    );
    let broken = history.missing_down().len()
        + history.failing_down.len()
        + history.concurrently_down.len()
        + history.leaky_down.len();
    assert_eq!(roundtrip.len(), broken + 1, "{roundtrip:#?}");
    assert_eq!(summary["roundtrip_problems"], broken);
    assert_eq!(summary["roundtrip_warnings"], 1);
    // Nothing was applied to the target itself.
    assert!(db.diesel_versions().is_empty());
}

fn database_stamped_by_diesel_is_adopted_by_the_first_apply(backend: Backend) {
    let p = Project::new(backend);
    let a = add_table(&p, "2024-01-01-000001", "a");
    let b = add_table(&p, "2024-01-01-000002", "b");
    // `diesel migration run` outside dbsafe.
    assert_eq!(p.diesel_migration_run().len(), 2);
    let status = p.dbsafe(&["status"]);
    status.expect_code(0);
    assert_eq!(
        status.stdout.matches("outside dbsafe").count(),
        1,
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains(
            "note: 2 migration(s) were applied by diesel outside dbsafe (`diesel migration run`): `cargo dbverify --drift` checks the schema matches them; the first `cargo dbsafe apply` records them as found"
        ),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains(&format!("{a}  applied by diesel\n")),
        "{}",
        status.stdout
    );
    let json = p.dbsafe(&["status", "--message-format", "json"]);
    let report = json
        .events()
        .into_iter()
        .find(|e| e["type"] == "status")
        .unwrap();
    assert_eq!(
        report["outside_dbsafe"],
        serde_json::json!(["20240101000001", "20240101000002"])
    );

    add_table(&p, "2024-01-01-000003", "c");
    let first = p.apply(&[]);
    first.expect_code(0);
    let adopt: Vec<Value> = first
        .events()
        .into_iter()
        .filter(|e| e["type"] == "adopt")
        .collect();
    assert_eq!(adopt.len(), 1, "{first:?}");
    assert_eq!(
        adopt[0]["versions"],
        serde_json::json!(["20240101000001", "20240101000002"])
    );
    let recorded = ledger_payloads(&p.db, "adopt");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["versions"], adopt[0]["versions"]);
    assert_eq!(p.db.diesel_versions().len(), 3);
    // Only the first apply adopts.
    add_table(&p, "2024-01-01-000004", "d");
    let second = p.apply(&[]);
    second.expect_code(0);
    assert!(!second.event_types().contains(&"adopt".to_owned()));
    assert_eq!(ledger_payloads(&p.db, "adopt").len(), 1);
    let _ = b;
}

fn dev_config(p: &Project, extra: &str) {
    p.file(
        "dbsafe.toml",
        &format!(
            "[targets.dev]\nurl-env = \"DATABASE_URL\"\nenvironment = \"development\"\n{extra}"
        ),
    );
}

fn apply_with_url(p: &Project, url: &str, args: &[&str]) -> Run {
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply", "--message-format", "json"])
        .args(args)
        .env("DATABASE_URL", url);
    dbsafe_tests::run(cmd)
}

fn dev_target_follows_its_url_to_another_local_database(backend: Backend) {
    let p = Project::new(backend);
    dev_config(&p, "");
    add_table(&p, "2024-01-01-000001", "a");
    apply_with_url(&p, &p.db.url, &[]).expect_code(0);

    // DATABASE_URL now points at another database on this machine: the target follows.
    let other = TestDb::new(backend, p.path());
    let moved = apply_with_url(&p, &other.url, &[]);
    moved.expect_code(0);
    let rebind: Vec<Value> = moved
        .events()
        .into_iter()
        .filter(|e| e["type"] == "ledger.rebind")
        .collect();
    assert_eq!(rebind.len(), 1, "{moved:?}");
    assert_eq!(rebind[0]["automatic"], true);
    assert!(rebind[0]["previous"].is_string());
    assert!(other.has_table("a"));
    assert_eq!(ledger_payloads(&other, "ledger.rebind").len(), 1);
    let human = {
        let mut cmd = p.command("cargo-dbsafe");
        cmd.args(["dbsafe", "apply"]).env("DATABASE_URL", &p.db.url);
        dbsafe_tests::run(cmd)
    };
    human.expect_code(0);
    assert!(
        human.stderr.contains("re-bound")
            && human.stderr.contains("another database on this machine"),
        "{human:?}"
    );

    // A protected target never follows.
    dev_config(&p, "protected = true\n");
    let refused = apply_with_url(&p, &other.url, &["--target", "dev", "--yes"]);
    refused.expect_code(3);
    assert!(refused.stdout.contains("--rebind"), "{refused:?}");

    // Nor does a target reaching a database whose ledger belongs to another target.
    p.file(
        "dbsafe.toml",
        "[targets.dev]\nurl-env = \"DATABASE_URL\"\nenvironment = \"development\"\n\
         [targets.dev2]\nurl-env = \"OTHER_URL\"\nenvironment = \"development\"\n",
    );
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args([
        "dbsafe",
        "apply",
        "--message-format",
        "json",
        "--target",
        "dev2",
    ])
    .env("OTHER_URL", &p.db.url);
    let stranger = dbsafe_tests::run(cmd);
    stranger.expect_code(3);
    assert!(
        stranger.stdout.contains("belongs to target `dev`"),
        "{stranger:?}"
    );
    // And a test target (not development) is still refused, as before.
    p.file(
        "dbsafe.toml",
        "[targets.dev]\nurl-env = \"DATABASE_URL\"\nenvironment = \"test\"\n",
    );
    apply_with_url(&p, &other.url, &[]).expect_code(3);
}

/// diesel.toml asking for src/schema.rs, on a PostgreSQL project with one table.
fn schema_project() -> Project {
    let p = Project::new(Backend::Postgres);
    p.file("diesel.toml", "[print_schema]\nfile = \"src/schema.rs\"\n");
    add_table(&p, "2024-01-01-000001", "accounts");
    p
}

/// PATH with the directory of the diesel CLI (on PATH, or where `cargo install` puts it).
fn path_with_diesel() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin"))
        .unwrap_or_default();
    let path = format!("{path}:{}", cargo_bin.display());
    let found = std::env::split_paths(&path).any(|dir| dir.join("diesel").is_file());
    assert!(
        found,
        "this test runs the real diesel CLI: cargo install diesel_cli --no-default-features --features postgres"
    );
    path
}

#[test]
fn schema_rs_is_regenerated_by_diesel_print_schema() {
    let p = schema_project();
    let path = path_with_diesel();
    let with_diesel = |binary: &str, args: &[&str]| {
        let mut cmd = p.command(binary);
        cmd.args(args).env("PATH", &path);
        dbsafe_tests::run(cmd)
    };
    let applied = with_diesel(
        "cargo-dbsafe",
        &["dbsafe", "apply", "--message-format", "json"],
    );
    applied.expect_code(0);
    let report = applied
        .events()
        .into_iter()
        .find(|e| e["type"] == "schema.file")
        .unwrap_or_else(|| panic!("{applied:?}"));
    assert_eq!(report["status"], "written", "{report}");
    let schema = std::fs::read_to_string(p.path().join("src/schema.rs")).unwrap();
    assert!(
        schema.contains("table!") && schema.contains("accounts (id)"),
        "{schema}"
    );
    // A rollback regenerates it too.
    add_table(&p, "2024-01-01-000002", "orders");
    with_diesel("cargo-dbsafe", &["dbsafe", "apply"]).expect_code(0);
    assert!(
        std::fs::read_to_string(p.path().join("src/schema.rs"))
            .unwrap()
            .contains("orders (id)")
    );
    let rolled = with_diesel("cargo-dbrollback", &["dbrollback", "--last"]);
    rolled.expect_code(0);
    assert!(
        rolled
            .stderr
            .contains("src/schema.rs regenerated by `diesel print-schema`"),
        "{rolled:?}"
    );
    let schema = std::fs::read_to_string(p.path().join("src/schema.rs")).unwrap();
    assert!(
        !schema.contains("orders (id)") && schema.contains("accounts (id)"),
        "{schema}"
    );
}

#[test]
fn missing_diesel_cli_is_said_clearly() {
    let p = schema_project();
    p.file("src/schema.rs", "// old\n");
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply"]).env("PATH", empty.path());
    let run = dbsafe_tests::run(cmd);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("schema: src/schema.rs NOT regenerated: the diesel CLI is not installed"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("src/schema.rs")).unwrap(),
        "// old\n"
    );
    assert!(p.db.has_table("accounts"));
    // Without [print_schema] in diesel.toml, nothing is said.
    p.file(
        "diesel.toml",
        "[migrations_directory]\ndir = \"migrations\"\n",
    );
    add_table(&p, "2024-01-01-000002", "orders");
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "apply"]).env("PATH", empty.path());
    let run = dbsafe_tests::run(cmd);
    run.expect_code(0);
    assert!(!run.stderr.contains("schema:"), "{run:?}");
}
