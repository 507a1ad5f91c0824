//! `cargo dbverify` end to end on each backend: drift against a shadow built from the
//! applied migrations (and the version the live schema really matches), `[verify] ignore`,
//! orphaned foreign keys and duplicate keys, row counts and checksums against a run's
//! pre-run snapshot, the user's `[[invariant]]` queries with every expectation form,
//! severity, targets, sql-file, apply's `before` preconditions and `[apply] verify`,
//! broken SQL, JUnit XML, RLS and triggers, and migration checksums.

use std::path::Path;
use std::process::Command;

use dbsafe_tests::{Backend, Project, Run, TestDb, each_backend, run};
use serde_json::Value;

each_backend!(
    drift_names_a_dropped_table_a_changed_type_and_the_best_version,
    drift_reports_an_added_index_unless_ignored,
    drift_shadow_that_cannot_be_built_is_an_error_and_dropped,
    fk_orphans_are_counted_and_named,
    duplicates_on_declared_keys_are_counted_and_named,
    row_counts_and_checksums_against_a_run,
    invariants_with_every_expectation_form,
    invariant_severity_targets_and_sql_file,
    failing_before_invariant_stops_apply_untouched,
    apply_verify_failure_reverts_the_run,
    broken_invariant_sql_is_an_error_and_the_others_run,
    junit_counts_match_the_results,
    triggers_present_pass_and_fail,
    migration_checksums_fail_after_an_edit,
);

// ---------------------------------------------------------------------------------------
// Helpers

const USERS: &str = "2024-01-01-000001_users";
const POSTS: &str = "2024-01-01-000002_posts";
const AUDIT: &str = "2024-01-01-000003_audit";

/// Three migrations: `users`, `posts` (a named foreign key to users) and `audit`.
fn three_tables(p: &Project) {
    p.migration(
        USERS,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, age INTEGER);\n",
        Some("DROP TABLE users;\n"),
    )
    .migration(
        POSTS,
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER, title VARCHAR(200),\n    \
         CONSTRAINT posts_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id));\n",
        Some("DROP TABLE posts;\n"),
    )
    .migration(
        AUDIT,
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what VARCHAR(200));\n",
        Some("DROP TABLE audit;\n"),
    );
}

/// `cargo-dbverify dbverify --message-format json ARGS`.
fn dbverify(p: &Project, args: &[&str]) -> Run {
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--message-format", "json"])
        .args(args);
    run(cmd)
}

/// `cargo-dbverify dbverify ARGS` with the human output.
fn dbverify_human(p: &Project, args: &[&str]) -> Run {
    let mut cmd = p.command("cargo-dbverify");
    cmd.arg("dbverify").args(args);
    run(cmd)
}

/// The `verify.result` events, in order.
fn results(out: &Run) -> Vec<Value> {
    out.events()
        .into_iter()
        .filter(|e| e["type"] == "verify.result")
        .collect()
}

/// The names of the checks that ran, in order.
fn names(out: &Run) -> Vec<String> {
    results(out)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The result of one check; panics when it did not run.
#[track_caller]
fn result(out: &Run, name: &str) -> Value {
    results(out)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no result for {name} in\n{}\n{}", out.stdout, out.stderr))
}

/// A check's details, one line each.
fn details(result: &Value) -> Vec<String> {
    result["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a check's status (`pass`, `fail`, `warn`, `error`).
#[track_caller]
fn assert_status(out: &Run, name: &str, status: &str) -> Value {
    let r = result(out, name);
    assert_eq!(r["status"], status, "{name}: {r}\n{}", out.stderr);
    r
}

/// Asserts that one of the details contains every one of `parts`.
#[track_caller]
fn assert_detail(result: &Value, parts: &[&str]) {
    let lines = details(result);
    assert!(
        lines.iter().any(|l| parts.iter().all(|p| l.contains(p))),
        "no detail with {parts:?} in {lines:#?}"
    );
}

/// The `verify.summary` event.
fn summary(out: &Run) -> Value {
    out.events()
        .into_iter()
        .find(|e| e["type"] == "verify.summary")
        .unwrap_or_else(|| panic!("no verify.summary in {out:?}"))
}

/// The tables of the database (any schema object that is a base table), sorted.
fn tables(db: &TestDb) -> Vec<String> {
    let sql = match db.backend {
        Backend::Postgres => {
            "SELECT tablename::text AS v FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        }
        Backend::Mysql => {
            "SELECT CAST(table_name AS CHAR) AS v FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY 1"
        }
        Backend::Sqlite => {
            "SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        }
    };
    db.strings(sql)
}

/// Databases on the server created beside the test's (shadows, scratch copies).
fn scratch_databases(db: &TestDb) -> Vec<String> {
    match db.backend {
        Backend::Sqlite => Vec::new(),
        Backend::Postgres => db.strings(&format!(
            "SELECT datname::text AS v FROM pg_database WHERE datname LIKE '{0}%' AND datname <> '{0}'",
            db.name
        )),
        Backend::Mysql => db.strings(&format!(
            "SELECT CAST(schema_name AS CHAR) AS v FROM information_schema.schemata \
             WHERE schema_name LIKE '{0}%' AND schema_name <> '{0}'",
            db.name
        )),
    }
}

/// Changes `users.age` from INTEGER to BIGINT by hand (SQLite: by rebuilding the table).
fn change_age_type(db: &TestDb) {
    match db.backend {
        Backend::Postgres => db.execute("ALTER TABLE users ALTER COLUMN age TYPE BIGINT"),
        Backend::Mysql => db.execute("ALTER TABLE users MODIFY age BIGINT"),
        Backend::Sqlite => db.execute(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE users_new (id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, age BIGINT);
             INSERT INTO users_new SELECT id, email, age FROM users;
             DROP TABLE users;
             ALTER TABLE users_new RENAME TO users;",
        ),
    }
}

/// The two type names the fingerprint shows for INTEGER and BIGINT.
fn int_and_bigint(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Postgres => ("integer", "bigint"),
        Backend::Mysql => ("int(11)", "bigint(20)"),
        Backend::Sqlite => ("INTEGER", "BIGINT"),
    }
}

/// The name an index on `users` has in drift's report.
fn users_index(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Mysql => format!("users.{name}"),
        _ => name.to_owned(),
    }
}

/// What the server says about a missing table, in part.
fn no_such_table_message(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "relation \"no_such_table\" does not exist",
        Backend::Mysql => "no_such_table' doesn't exist",
        Backend::Sqlite => "no such table: no_such_table",
    }
}

// ---------------------------------------------------------------------------------------
// Drift

fn drift_names_a_dropped_table_a_changed_type_and_the_best_version(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    p.apply(&[]).expect_code(0);
    let all = ["20240101000001", "20240101000002", "20240101000003"];

    // Right after apply the schema is what the migrations say.
    let clean = dbverify(&p, &["--drift"]);
    clean.expect_code(0);
    let drift = assert_status(&clean, "drift", "pass");
    assert_eq!(
        drift["observed"],
        "schema matches the 3 applied migration(s)"
    );
    assert!(details(&drift).is_empty(), "{drift}");

    // The ledger says head, but the newest migration's table is gone: exactly version 2.
    p.db.execute("DROP TABLE audit");
    let stamped = dbverify(&p, &["--drift"]);
    stamped.expect_code(1);
    let drift = assert_status(&stamped, "drift", "fail");
    assert_eq!(details(&drift)[0], "table `audit` missing");
    assert_detail(
        &drift,
        &[
            "exactly the schema after version 20240101000002",
            "says 20240101000003 is applied",
        ],
    );

    // And a column's type changed by hand: both named, old and new types, best version 2.
    change_age_type(&p.db);
    let out = dbverify(&p, &["--drift"]);
    out.expect_code(1);
    let drift = assert_status(&out, "drift", "fail");
    assert_eq!(
        drift["observed"],
        "2 difference(s) from the applied migrations"
    );
    let (old, new) = int_and_bigint(backend);
    assert_detail(&drift, &["table `audit` missing"]);
    assert_detail(&drift, &["column `users.age`", &format!("{old} -> {new}")]);
    assert_detail(
        &drift,
        &[
            "matches version 20240101000002 best",
            "the migrations table says 20240101000003",
        ],
    );
    assert_eq!(details(&drift).len(), 3, "{drift}");
    // The other checks still ran and passed; the summary counts one failure.
    assert_status(&out, "fk-orphans", "pass");
    assert_status(&out, "migration-checksums", "pass");
    assert_eq!(summary(&out)["failed"], 1);
    let error = out.events().into_iter().find(|e| e["type"] == "error");
    assert_eq!(
        error.expect("an error event")["message"],
        "1 of 3 check(s) failed on target test"
    );

    // The human table says the same.
    let human = dbverify_human(&p, &["--drift"]);
    human.expect_code(1);
    assert!(human.stdout.contains("drift "), "{}", human.stdout);
    assert!(human.stdout.contains("FAIL"), "{}", human.stdout);
    assert!(
        human.stdout.contains(&format!("{old} -> {new}")),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stderr
            .contains("1 of 3 check(s) failed on target test"),
        "{}",
        human.stderr
    );

    // Nothing was touched: the ledger still says head, the tables are as left, no shadow
    // database is left behind.
    assert_eq!(p.db.diesel_versions(), all);
    assert!(!p.db.has_table("audit"));
    assert!(
        scratch_databases(&p.db).is_empty(),
        "{:?}",
        scratch_databases(&p.db)
    );
}

fn drift_reports_an_added_index_unless_ignored(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    p.apply(&[]).expect_code(0);
    p.db.execute("CREATE INDEX users_extra_idx ON users (email)");

    let out = dbverify(&p, &["--only", "drift"]);
    out.expect_code(1);
    assert_eq!(names(&out), ["drift"]);
    let drift = assert_status(&out, "drift", "fail");
    assert_eq!(
        details(&drift)[0],
        format!("index `{}` added", users_index(backend, "users_extra_idx"))
    );
    assert_eq!(
        drift["observed"],
        "1 difference(s) from the applied migrations"
    );

    // Ignored by kind and name, the same line on every backend: drift passes.
    p.write_config("[verify]\nignore = [\"index users_extra_idx\"]\n");
    let ignored = dbverify(&p, &["--only", "drift"]);
    ignored.expect_code(0);
    assert_status(&ignored, "drift", "pass");
    // By bare name too.
    p.write_config("[verify]\nignore = [\"users_extra_idx\"]\n");
    dbverify(&p, &["--only", "drift"]).expect_code(0);

    // The ignore list hides only what it names: another index is still reported.
    p.db.execute("CREATE INDEX posts_title_idx ON posts (title)");
    let other = dbverify(&p, &["--only", "drift"]);
    other.expect_code(1);
    let drift = assert_status(&other, "drift", "fail");
    assert_eq!(
        details(&drift)[0],
        format!(
            "index `{}` added",
            match backend {
                Backend::Mysql => "posts.posts_title_idx",
                _ => "posts_title_idx",
            }
        )
    );
    assert!(
        !details(&drift)
            .iter()
            .any(|d| d.contains("users_extra_idx")),
        "{drift}"
    );
}

fn drift_shadow_that_cannot_be_built_is_an_error_and_dropped(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    p.apply(&[]).expect_code(0);
    // An applied migration edited into something that does not run.
    p.file(
        &format!("migrations/{POSTS}/up.sql"),
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES nowhere_at_all (id), title VARCHAR(200));\nINSERT INTO no_such_table VALUES (1);\n",
    );
    let out = dbverify(&p, &["--drift"]);
    out.expect_code(1);
    let drift = assert_status(&out, "drift", "error");
    assert_eq!(drift["observed"], "could not be checked");
    assert_detail(&drift, &["2024-01-01-000002_posts", "shadow database"]);
    // migration-checksums names the edit.
    let checksums = assert_status(&out, "migration-checksums", "fail");
    assert_detail(
        &checksums,
        &["up.sql", "20240101000002", "changed since it was applied"],
    );
    assert!(
        scratch_databases(&p.db).is_empty(),
        "{:?}",
        scratch_databases(&p.db)
    );
}

// ---------------------------------------------------------------------------------------
// Orphans and duplicates

/// Inserts rows of `posts` whose user does not exist, as each backend allows it: on
/// PostgreSQL the foreign key is dropped and added back NOT VALID, on MariaDB and SQLite
/// the checks are off for the connection.
fn plant_orphans(db: &TestDb, rows: &str) {
    match db.backend {
        Backend::Postgres => db.execute(&format!(
            "ALTER TABLE posts DROP CONSTRAINT posts_user_id_fkey;
             INSERT INTO posts (id, user_id, title) VALUES {rows};
             ALTER TABLE posts ADD CONSTRAINT posts_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"
        )),
        Backend::Mysql => db.execute(&format!(
            "SET foreign_key_checks = 0;
             INSERT INTO posts (id, user_id, title) VALUES {rows};
             SET foreign_key_checks = 1;"
        )),
        Backend::Sqlite => db.execute(&format!(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO posts (id, user_id, title) VALUES {rows};"
        )),
    }
}

fn fk_orphans_are_counted_and_named(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    p.apply(&[]).expect_code(0);
    p.db.execute(
        "INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x');
         INSERT INTO posts (id, user_id, title) VALUES (1, 1, 'one'), (2, 2, 'two'), (3, NULL, 'no author');",
    );
    let clean = dbverify(&p, &["--only", "fk-orphans"]);
    clean.expect_code(0);
    let fk = assert_status(&clean, "fk-orphans", "pass");
    assert_eq!(fk["observed"], "0 orphan row(s) under 1 foreign key(s)");

    plant_orphans(
        &p.db,
        "(10, 99, 'gone'), (11, 98, 'gone too'), (12, 98, 'and again')",
    );
    assert_eq!(p.db.count("posts"), 6);
    let out = dbverify(&p, &[]);
    out.expect_code(1);
    let fk = assert_status(&out, "fk-orphans", "fail");
    assert_eq!(fk["observed"], "3 orphan row(s) under 1 foreign key(s)");
    let expected_name = match backend {
        Backend::Sqlite => "posts fk #0",
        _ => "posts_user_id_fkey",
    };
    assert_detail(
        &fk,
        &[
            "3 row(s) of `posts` (user_id) point to no row of `users` (id)",
            expected_name,
        ],
    );
    if backend == Backend::Postgres {
        assert_detail(&fk, &["NOT VALID"]);
    }
    assert_eq!(details(&fk).len(), 1, "{fk}");
    // The check only reads: the orphans are still there.
    assert_eq!(p.db.count("posts"), 6);
}

fn duplicates_on_declared_keys_are_counted_and_named(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[verify]\nduplicates = [\"users(email)\", \"posts(user_id, title)\"]\n");
    three_tables(&p);
    p.apply(&[]).expect_code(0);
    p.db.execute(
        "INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x');
         INSERT INTO posts (id, user_id, title) VALUES (1, 1, 't'), (2, 1, 'u'), (3, 2, 't'), (4, NULL, 'z'), (5, NULL, 'z');",
    );
    // Configured keys make `duplicates` run without asking; NULLs are not duplicates.
    let clean = dbverify(&p, &[]);
    clean.expect_code(0);
    let dup = assert_status(&clean, "duplicates", "pass");
    assert_eq!(dup["observed"], "0 duplicated key value(s) in 2 key(s)");

    p.db.execute(
        "INSERT INTO users (id, email) VALUES (4, 'a@x'), (5, 'c@x'), (6, 'c@x'), (7, 'd@x');
         INSERT INTO posts (id, user_id, title) VALUES (6, 1, 't');",
    );
    let out = dbverify(&p, &["--only", "duplicates"]);
    out.expect_code(1);
    assert_eq!(names(&out), ["duplicates"]);
    let dup = assert_status(&out, "duplicates", "fail");
    assert_eq!(dup["observed"], "3 duplicated key value(s) in 2 key(s)");
    assert_detail(&dup, &["2 value(s) of `users(email)` occur more than once"]);
    assert_detail(
        &dup,
        &["1 value(s) of `posts(user_id, title)` occur more than once"],
    );
}

// ---------------------------------------------------------------------------------------
// Row counts and checksums against a run's pre-run snapshot

fn row_counts_and_checksums_against_a_run(backend: Backend) {
    let p = Project::new(backend);
    p.write_config(
        "[apply]\nsnapshot = \"always\"\n\n[verify]\nmax-row-change = \"1%\"\nunchanged-tables = [\"others\"]\n",
    );
    p.migration(
        "2024-02-01-000001_tables",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n\
         CREATE TABLE others (id INTEGER PRIMARY KEY, label VARCHAR(50));\n",
        Some("DROP TABLE others;\nDROP TABLE items;\n"),
    );
    p.apply(&[]).expect_code(0);
    let items: Vec<String> = (1..=200).map(|i| format!("({i}, 'item {i}')")).collect();
    let others: Vec<String> = (1..=40).map(|i| format!("({i}, 'other {i}')")).collect();
    p.db.execute(&format!(
        "INSERT INTO items (id, name) VALUES {};\nINSERT INTO others (id, label) VALUES {};",
        items.join(", "),
        others.join(", ")
    ));

    // A migration that deletes 5% of `items` (10 of 200 rows).
    p.migration(
        "2024-02-01-000002_prune_items",
        "DELETE FROM items WHERE id % 20 = 0;\n",
        Some("SELECT 1;\n"),
    );
    let pruned = p.apply(&[]);
    pruned.expect_code(0);
    let run_id = pruned.run_id();
    assert_eq!(p.db.count("items"), 190);
    let snapshot_id = p.db.strings(&format!(
        "SELECT snapshot_id AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ));
    assert_eq!(snapshot_id.len(), 1, "the run has a pre-run snapshot");

    let out = dbverify(&p, &["--against", &run_id]);
    out.expect_code(1);
    let counts = assert_status(&out, "row-counts", "fail");
    assert_eq!(counts["observed"], "largest change 5.00% (`items`)");
    assert_detail(
        &counts,
        &["`items`: 200 -> 190 rows (5.00% change, more than 1%)"],
    );
    assert_eq!(details(&counts).len(), 1, "only items is named: {counts}");
    // `others` is untouched: checksums (on the must-be-unchanged tables) pass.
    let sums = assert_status(&out, "checksums", "pass");
    assert_eq!(sums["observed"], "1 of 1 table(s) unchanged");
    // The snapshot's own id works the same.
    let by_snapshot = dbverify(&p, &["--against", &snapshot_id[0], "--only", "row-counts"]);
    by_snapshot.expect_code(1);
    assert_eq!(names(&by_snapshot), ["row-counts"]);
    assert_status(&by_snapshot, "row-counts", "fail");
    // With 10% allowed it passes.
    p.write_config(
        "[apply]\nsnapshot = \"always\"\n\n[verify]\nmax-row-change = \"10%\"\nunchanged-tables = [\"others\"]\n",
    );
    let tolerant = dbverify(&p, &["--against", &run_id]);
    tolerant.expect_code(0);
    assert_status(&tolerant, "row-counts", "pass");
    p.write_config(
        "[apply]\nsnapshot = \"always\"\n\n[verify]\nmax-row-change = \"1%\"\nunchanged-tables = [\"others\"]\n",
    );

    // A run that only adds a column: row counts hold and the untouched table's content too.
    p.migration(
        "2024-02-01-000003_items_note",
        "ALTER TABLE items ADD COLUMN note VARCHAR(50);\n",
        Some("ALTER TABLE items DROP COLUMN note;\n"),
    );
    let added = p.apply(&[]);
    added.expect_code(0);
    let added_id = added.run_id();
    let out = dbverify(&p, &["--against", &added_id]);
    out.expect_code(0);
    let counts = assert_status(&out, "row-counts", "pass");
    assert_eq!(counts["observed"], "no row count changed");
    let sums = assert_status(&out, "checksums", "pass");
    assert_eq!(sums["observed"], "1 of 1 table(s) unchanged");

    // A change by hand to a table that must be unchanged fails checksums, naming it.
    p.db.execute("UPDATE others SET label = 'edited' WHERE id = 7");
    let out = dbverify(&p, &["--against", &added_id]);
    out.expect_code(1);
    assert_status(&out, "row-counts", "pass");
    let sums = assert_status(&out, "checksums", "fail");
    assert_eq!(sums["observed"], "0 of 1 table(s) unchanged");
    assert_detail(
        &sums,
        &["`others` changed since snapshot", "(40 -> 40 rows)"],
    );

    // An unknown id is bad usage: exit 2, naming where to look.
    let unknown = dbverify(&p, &["--against", "20990101T000000Z-dead"]);
    unknown.expect_code(2);
    assert!(results(&unknown).is_empty(), "{unknown:?}");
    assert!(
        unknown.stdout.contains("no snapshot or run with that id"),
        "{unknown:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The user's invariants

/// A table `t` with n = 10, 20, 30, 40, 50.
fn numbers_migration(p: &Project) {
    p.migration(
        "2024-03-01-000001_numbers",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n\
         INSERT INTO t (id, n) VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50);\n",
        Some("DROP TABLE t;\n"),
    );
}

/// One `[[invariant]]` table.
fn invariant(name: &str, sql: &str, expect: &str, extra: &str) -> String {
    format!("[[invariant]]\nname = \"{name}\"\nsql = \"{sql}\"\nexpect = \"{expect}\"\n{extra}\n")
}

fn invariants_with_every_expectation_form(backend: Backend) {
    let p = Project::new(backend);
    // name, sql, expectation, expected status, expected observed value.
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "eq pass",
            "SELECT count(*) FROM t WHERE n < 0",
            "= 0",
            "pass",
            "0",
        ),
        ("eq fail", "SELECT count(*) FROM t", "= 0", "fail", "5"),
        ("gt pass", "SELECT count(*) FROM t", "> 0", "pass", "5"),
        (
            "gt fail",
            "SELECT count(*) FROM t WHERE n > 1000",
            "> 0",
            "fail",
            "0",
        ),
        ("le pass", "SELECT max(n) FROM t", "<= 50", "pass", "50"),
        ("le fail", "SELECT max(n) FROM t", "<= 49", "fail", "50"),
        ("ne pass", "SELECT count(*) FROM t", "!= 3", "pass", "5"),
        ("ne fail", "SELECT count(*) FROM t", "!= 5", "fail", "5"),
        (
            "rows pass",
            "SELECT id FROM t WHERE n < 0",
            "rows = 0",
            "pass",
            "0 row(s)",
        ),
        (
            "rows fail",
            "SELECT id, n FROM t WHERE n > 20",
            "rows = 0",
            "fail",
            "3 row(s)",
        ),
        (
            "true pass",
            "SELECT count(*) = 5 FROM t",
            "true",
            "pass",
            "",
        ),
        (
            "true fail",
            "SELECT count(*) = 4 FROM t",
            "true",
            "fail",
            "",
        ),
        (
            "false pass",
            "SELECT count(*) = 4 FROM t",
            "false",
            "pass",
            "",
        ),
        (
            "false fail",
            "SELECT count(*) = 5 FROM t",
            "false",
            "fail",
            "",
        ),
    ];
    let config: String = cases
        .iter()
        .map(|(name, sql, expect, _, _)| invariant(name, sql, expect, ""))
        .collect();
    p.write_config(&config);
    numbers_migration(&p);
    p.apply(&[]).expect_code(0);

    let out = dbverify(&p, &[]);
    out.expect_code(1);
    // The built-ins first, then the invariants in the order of the file.
    let mut expected_names = vec!["fk-orphans".to_owned(), "migration-checksums".to_owned()];
    expected_names.extend(cases.iter().map(|c| c.0.to_owned()));
    assert_eq!(names(&out), expected_names);
    for (name, _, expect, status, observed) in cases {
        let r = assert_status(&out, name, status);
        assert_eq!(r["kind"], "invariant");
        assert_eq!(r["severity"], "error");
        if !observed.is_empty() {
            assert_eq!(r["observed"], *observed, "{name}: {r}");
        }
        if *status == "fail" {
            assert_detail(&r, &[&format!("expected {expect}, observed")]);
        } else {
            assert!(details(&r).is_empty(), "{name}: {r}");
        }
    }
    assert_eq!(summary(&out)["failed"], 7);
    assert_eq!(summary(&out)["checks"], 16);

    // Only the passing ones: exit 0, and --only runs nothing else.
    let mut args = Vec::new();
    for (name, _, _, status, _) in cases {
        if *status == "pass" {
            args.extend(["--only", name]);
        }
    }
    let passing = dbverify(&p, &args);
    passing.expect_code(0);
    assert_eq!(names(&passing).len(), 7);
    // One failing one alone: exit 1.
    dbverify(&p, &["--only", "le fail"]).expect_code(1);
    // The invariants' queries change nothing (each runs in a transaction rolled back).
    assert_eq!(p.db.count("t"), 5);
}

fn invariant_severity_targets_and_sql_file(backend: Backend) {
    let p = Project::new(backend);
    // Files as people write them: comment lines, a `;`, a comment after the query.
    p.file(
        "checks/big.sql",
        "-- more than 100 rows?\nSELECT count(*) FROM t WHERE n > 100;\n-- (none expected)\n",
    );
    p.file("checks/some.sql", "SELECT count(*)\nFROM t -- every row\n");
    let config = format!(
        "[targets.other]\nurl = \"{}\"\nenvironment = \"test\"\n\n{}{}{}{}{}",
        p.db.url,
        invariant(
            "soft",
            "SELECT count(*) FROM t",
            "= 0",
            "severity = \"warn\""
        ),
        invariant(
            "only other",
            "SELECT count(*) FROM t",
            "< 0",
            "targets = [\"other\"]"
        ),
        invariant(
            "only test",
            "SELECT count(*) FROM t",
            "= 5",
            "targets = [\"test\"]"
        ),
        "[[invariant]]\nname = \"file pass\"\nsql-file = \"checks/big.sql\"\nexpect = \"= 0\"\n\n",
        "[[invariant]]\nname = \"file fail\"\nsql-file = \"checks/some.sql\"\nexpect = \"> 5\"\nseverity = \"warn\"\n",
    );
    p.write_config(&config);
    numbers_migration(&p);
    p.apply(&["--target", "test"]).expect_code(0);

    // On `test`: the warning is reported but fails nothing (exit 0); `only other` does not
    // run; the sql-file invariants run what their files say.
    let out = dbverify(&p, &["--target", "test"]);
    out.expect_code(0);
    assert_eq!(
        names(&out),
        [
            "fk-orphans",
            "migration-checksums",
            "soft",
            "only test",
            "file pass",
            "file fail"
        ]
    );
    let soft = assert_status(&out, "soft", "warn");
    assert_eq!(soft["severity"], "warn");
    assert_eq!(soft["observed"], "5");
    assert_detail(&soft, &["expected = 0, observed 5"]);
    assert_status(&out, "only test", "pass");
    let file = assert_status(&out, "file pass", "pass");
    assert_eq!(file["observed"], "0");
    let file = assert_status(&out, "file fail", "warn");
    assert_eq!(file["observed"], "5");
    assert_eq!(summary(&out)["failed"], 0);
    let human = dbverify_human(&p, &["--target", "test"]);
    human.expect_code(0);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("soft ") && l.contains("warn")),
        "{}",
        human.stdout
    );

    // On `other`: `only other` runs (and fails), `only test` does not.
    let other = dbverify(&p, &["--target", "other"]);
    other.expect_code(1);
    assert_eq!(
        names(&other),
        [
            "fk-orphans",
            "migration-checksums",
            "soft",
            "only other",
            "file pass",
            "file fail"
        ]
    );
    assert_status(&other, "only other", "fail");
    // --only a name that exists but is for another target runs nothing of it.
    let restricted = dbverify(&p, &["--target", "test", "--only", "only other"]);
    restricted.expect_code(0);
    assert!(results(&restricted).is_empty(), "{restricted:?}");

    // The file is read when the config is: a changed file changes the verdict.
    p.file("checks/big.sql", "SELECT count(*) FROM t WHERE n > 10\n");
    let edited = dbverify(&p, &["--target", "test", "--only", "file pass"]);
    edited.expect_code(1);
    let file = assert_status(&edited, "file pass", "fail");
    assert_eq!(file["observed"], "4");
    // A missing file is a configuration error (exit 2) naming it.
    std::fs::remove_file(p.path().join("checks/big.sql")).unwrap();
    let missing = dbverify(&p, &["--target", "test"]);
    missing.expect_code(2);
    assert!(missing.stdout.contains("checks/big.sql"), "{missing:?}");
}

fn failing_before_invariant_stops_apply_untouched(backend: Backend) {
    let p = Project::new(backend);
    p.write_config(&format!(
        "{}{}",
        invariant(
            "maintenance window is open",
            "SELECT 1",
            "= 0",
            "phase = \"before\""
        ),
        invariant("server answers", "SELECT 1", "= 1", "phase = \"before\""),
    ));
    numbers_migration(&p);
    let out = p.apply(&[]);
    out.expect_code(1);
    let error = out
        .events()
        .into_iter()
        .find(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("no error event in {out:?}"));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("precondition(s) failed, nothing was touched"),
        "{message}"
    );
    assert!(message.contains("maintenance window is open"), "{message}");
    assert!(message.contains("expected = 0, observed 1"), "{message}");
    assert!(!message.contains("server answers"), "{message}");
    // Untouched: no tables at all, neither the migration's nor diesel's nor the ledger.
    assert_eq!(tables(&p.db), Vec::<String>::new());

    // `before` invariants are apply's preconditions, not dbverify's checks.
    let verify = dbverify(&p, &["--only", "maintenance window is open"]);
    verify.expect_code(0);
    assert!(results(&verify).is_empty(), "{verify:?}");

    // With the precondition holding, apply goes ahead.
    p.write_config(&invariant(
        "server answers",
        "SELECT 1",
        "= 1",
        "phase = \"before\"",
    ));
    p.apply(&[]).expect_code(0);
    assert_eq!(p.db.count("t"), 5);
    assert_eq!(p.db.diesel_versions(), ["20240301000001"]);

    // A precondition about the data: the table must be empty before it is dropped.
    p.write_config(&invariant(
        "t is empty before the drop",
        "SELECT count(*) FROM t",
        "= 0",
        "phase = \"before\"",
    ));
    p.migration(
        "2024-03-01-000002_drop_t",
        "DROP TABLE t;\n",
        Some("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n"),
    );
    let refused = p.apply(&[]);
    refused.expect_code(1);
    assert!(
        refused.stdout.contains("t is empty before the drop"),
        "{refused:?}"
    );
    assert_eq!(p.db.count("t"), 5);
    assert_eq!(p.db.diesel_versions(), ["20240301000001"]);
    assert_eq!(p.db.count("dbsafe_runs"), 1);
}

fn apply_verify_failure_reverts_the_run(backend: Backend) {
    let p = Project::new(backend);
    let config = format!(
        "[apply]\nverify = true\n\n{}{}",
        invariant("t has five rows", "SELECT count(*) FROM t", "= 5", ""),
        invariant(
            "only a warning",
            "SELECT count(*) FROM t",
            "= 0",
            "severity = \"warn\""
        ),
    );
    p.write_config(&config);
    numbers_migration(&p);
    // Passing after-invariants (and a warning): the run succeeds.
    let ok = p.apply(&[]);
    ok.expect_code(0);
    let ok_id = ok.run_id();
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{ok_id}'"
        )),
        ["succeeded"]
    );
    assert_eq!(
        p.db.count("dbsafe_events WHERE event_type = 'verify.failed'"),
        0
    );

    // A migration that breaks an after-invariant: verification fails, the run is reverted.
    p.migration(
        "2024-03-01-000002_more_rows",
        "INSERT INTO t (id, n) VALUES (6, 60);\nCREATE TABLE extra (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE extra;\nDELETE FROM t WHERE id = 6;\n"),
    );
    let failed = p.apply(&[]);
    failed.expect_code(1);
    let run_id = failed.run_id();
    assert!(
        failed.event_types().contains(&"verify.failed".to_owned()),
        "{failed:?}"
    );
    assert_eq!(
        p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{run_id}'"
        )),
        ["reverted"]
    );
    let payloads = p.db.strings(&format!(
        "SELECT payload AS v FROM dbsafe_events WHERE run_id = '{run_id}' AND event_type = 'verify.failed'"
    ));
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    assert!(payloads[0].contains("t has five rows"), "{payloads:?}");
    assert!(!payloads[0].contains("only a warning"), "{payloads:?}");
    // The migration is undone: diesel's table, the schema and the data are as before.
    assert_eq!(p.db.diesel_versions(), ["20240301000001"]);
    assert!(!p.db.has_table("extra"));
    assert_eq!(p.db.count("t"), 5);
}

fn broken_invariant_sql_is_an_error_and_the_others_run(backend: Backend) {
    let p = Project::new(backend);
    p.write_config(&format!(
        "{}{}{}",
        invariant("broken", "SELECT count(*) FROM no_such_table", "= 0", ""),
        invariant("after the broken one", "SELECT count(*) FROM t", "= 5", ""),
        invariant("failing one", "SELECT count(*) FROM t", "= 4", ""),
    ));
    numbers_migration(&p);
    p.apply(&[]).expect_code(0);
    let out = dbverify(&p, &[]);
    out.expect_code(1);
    let broken = assert_status(&out, "broken", "error");
    assert_eq!(broken["observed"], "could not be checked");
    assert_detail(
        &broken,
        &["the query failed", no_such_table_message(backend)],
    );
    assert_status(&out, "after the broken one", "pass");
    assert_status(&out, "failing one", "fail");
    assert_status(&out, "fk-orphans", "pass");
    assert_eq!(summary(&out)["failed"], 2);
    // Alone, the broken one still fails the command.
    dbverify(&p, &["--only", "broken"]).expect_code(1);
    // And it is shown with the server's message in the human table.
    let human = dbverify_human(&p, &[]);
    human.expect_code(1);
    assert!(human.stdout.contains("ERROR"), "{}", human.stdout);
    assert!(
        human.stdout.contains(no_such_table_message(backend)),
        "{}",
        human.stdout
    );
}

// ---------------------------------------------------------------------------------------
// JUnit XML

/// Parses a JUnit file with python3's XML parser: the counts in the attributes of
/// `<testsuites>` and `<testsuite>`, the `<testcase>`, `<failure>` and `<error>` elements,
/// and each test case's name and outcome.
fn parse_junit(path: &Path) -> Value {
    let script = r#"
import json, sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
root = doc.documentElement
suites = doc.getElementsByTagName("testsuite")
cases = doc.getElementsByTagName("testcase")
def outcome(case):
    for tag in ("failure", "error", "system-out", "skipped"):
        found = case.getElementsByTagName(tag)
        if found:
            return {"tag": tag, "message": found[0].getAttribute("message"),
                    "text": "".join(n.data for n in found[0].childNodes if n.nodeType == n.TEXT_NODE)}
    return {"tag": "pass"}
print(json.dumps({
    "root": root.tagName,
    "root_attrs": {k: root.getAttribute(k) for k in ("tests", "failures", "errors")},
    "suites": [{k: s.getAttribute(k) for k in ("name", "tests", "failures", "errors")} for s in suites],
    "cases": [dict(name=c.getAttribute("name"), classname=c.getAttribute("classname"), **outcome(c)) for c in cases],
    "failures": len(doc.getElementsByTagName("failure")),
    "errors": len(doc.getElementsByTagName("error")),
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the JUnit file does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn junit_counts_match_the_results(backend: Backend) {
    let p = Project::new(backend);
    p.write_config(&format!(
        "{}{}{}{}",
        invariant(
            "count <ok> & \\\"fine\\\"",
            "SELECT count(*) FROM t",
            "= 5",
            ""
        ),
        invariant(
            "too many 'rows'",
            "SELECT count(*) FROM t WHERE n >= 10",
            "< 3",
            ""
        ),
        invariant("broken", "SELECT nope FROM no_such_table", "= 0", ""),
        invariant(
            "soft",
            "SELECT count(*) FROM t",
            "= 0",
            "severity = \"warn\""
        ),
    ));
    numbers_migration(&p);
    p.apply(&[]).expect_code(0);
    let xml = p.path().join("reports/dbverify.xml");
    std::fs::create_dir_all(xml.parent().unwrap()).unwrap();
    let out = dbverify(&p, &["--junit", xml.to_str().unwrap()]);
    out.expect_code(1);
    let all = results(&out);
    let count = |status: &str| all.iter().filter(|r| r["status"] == status).count();
    assert_eq!(
        (all.len(), count("fail"), count("error"), count("warn")),
        (6, 1, 1, 1)
    );

    let junit = parse_junit(&xml);
    assert_eq!(junit["root"], "testsuites");
    for attrs in [&junit["root_attrs"], &junit["suites"][0]] {
        assert_eq!(attrs["tests"], all.len().to_string(), "{junit}");
        assert_eq!(attrs["failures"], count("fail").to_string(), "{junit}");
        assert_eq!(attrs["errors"], count("error").to_string(), "{junit}");
    }
    assert_eq!(junit["suites"].as_array().unwrap().len(), 1);
    assert_eq!(junit["suites"][0]["name"], "dbverify test");
    assert_eq!(junit["failures"], count("fail"));
    assert_eq!(junit["errors"], count("error"));
    let cases = junit["cases"].as_array().unwrap();
    assert_eq!(cases.len(), all.len());
    // One test case per result, in the same order, names unescaped back to the original.
    for (case, result) in cases.iter().zip(&all) {
        assert_eq!(case["name"], result["name"], "{junit}");
        let tag = match result["status"].as_str().unwrap() {
            "pass" => "pass",
            "fail" => "failure",
            "error" => "error",
            _ => "system-out",
        };
        assert_eq!(case["tag"], tag, "{case}");
        assert_eq!(
            case["classname"],
            format!("dbverify.{}", result["kind"].as_str().unwrap())
        );
    }
    let named = |name: &str| cases.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(named("count <ok> & \"fine\"")["tag"], "pass");
    let failure = named("too many 'rows'");
    assert_eq!(failure["message"], "5");
    assert!(
        failure["text"]
            .as_str()
            .unwrap()
            .contains("expected < 3, observed 5"),
        "{failure}"
    );
    let error = named("broken");
    assert_eq!(error["message"], "could not be checked");
    assert!(
        error["text"].as_str().unwrap().contains("no_such_table"),
        "{error}"
    );
    assert!(
        named("soft")["text"]
            .as_str()
            .unwrap()
            .starts_with("warning: 5"),
        "{junit}"
    );

    // All passing: zero failures and errors, and the file is replaced.
    let passing = dbverify(
        &p,
        &[
            "--junit",
            xml.to_str().unwrap(),
            "--only",
            "count <ok> & \"fine\"",
        ],
    );
    passing.expect_code(0);
    let junit = parse_junit(&xml);
    assert_eq!(junit["root_attrs"]["tests"], "1");
    assert_eq!(junit["root_attrs"]["failures"], "0");
    assert_eq!(junit["root_attrs"]["errors"], "0");
    assert_eq!(junit["cases"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// RLS, triggers, migration checksums

#[test]
fn rls_enabled_and_triggers_present_on_postgres() {
    let p = Project::new(Backend::Postgres);
    p.write_config(
        "[verify]\nrls-enabled = [\"docs\"]\ntriggers-present = [\"docs.docs_touch\"]\n",
    );
    p.migration(
        "2024-04-01-000001_docs",
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, updated_at TIMESTAMPTZ);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION docs_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER docs_touch BEFORE UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION docs_touch();
",
        Some("DROP TABLE notes;\nDROP TABLE docs;\nDROP FUNCTION docs_touch();\n"),
    );
    p.apply(&[]).expect_code(0);

    let out = dbverify(&p, &[]);
    out.expect_code(0);
    let rls = assert_status(&out, "rls-enabled", "pass");
    assert_eq!(rls["observed"], "1 of 1 table(s) with RLS enabled");
    let triggers = assert_status(&out, "triggers-present", "pass");
    assert_eq!(triggers["observed"], "1 of 1 trigger(s) present");

    // A table without RLS, and a trigger dropped by hand.
    p.write_config(
        "[verify]\nrls-enabled = [\"docs\", \"notes\"]\ntriggers-present = [\"docs.docs_touch\", \"docs.docs_audit\"]\n",
    );
    p.db.execute("DROP TRIGGER docs_touch ON docs");
    let out = dbverify(&p, &[]);
    out.expect_code(1);
    let rls = assert_status(&out, "rls-enabled", "fail");
    assert_eq!(rls["observed"], "1 of 2 table(s) with RLS enabled");
    assert_detail(&rls, &["row-level security is not enabled on `notes`"]);
    assert_eq!(details(&rls).len(), 1);
    let triggers = assert_status(&out, "triggers-present", "fail");
    assert_eq!(triggers["observed"], "0 of 2 trigger(s) present");
    assert_detail(&triggers, &["trigger `docs.docs_touch` is missing"]);
    assert_detail(&triggers, &["trigger `docs.docs_audit` is missing"]);

    // RLS turned off on docs by hand is caught too; turning it on for notes fixes notes.
    p.db.execute(
        "ALTER TABLE docs DISABLE ROW LEVEL SECURITY; ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
    );
    let out = dbverify(&p, &["--only", "rls-enabled"]);
    out.expect_code(1);
    let rls = assert_status(&out, "rls-enabled", "fail");
    assert_detail(&rls, &["`docs`"]);
    assert!(
        !details(&rls).iter().any(|d| d.contains("`notes`")),
        "{rls}"
    );
}

#[test]
fn rls_enabled_is_an_error_off_postgres() {
    let p = Project::new(Backend::Sqlite);
    p.write_config("[verify]\nrls-enabled = [\"docs\"]\n");
    p.migration(
        "2024-04-01-000001_docs",
        "CREATE TABLE docs (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE docs;\n"),
    );
    p.apply(&[]).expect_code(0);
    let out = dbverify(&p, &[]);
    out.expect_code(1);
    let rls = assert_status(&out, "rls-enabled", "error");
    assert_detail(&rls, &["rls-enabled needs PostgreSQL"]);
    assert_status(&out, "fk-orphans", "pass");
}

/// A trigger on `docs` per backend.
fn trigger_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CREATE FUNCTION docs_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.n := NEW.n + 1; RETURN NEW; END $$;
CREATE TRIGGER docs_count BEFORE INSERT ON docs FOR EACH ROW EXECUTE FUNCTION docs_count();
"
        }
        Backend::Mysql => {
            "CREATE TRIGGER docs_count BEFORE INSERT ON docs FOR EACH ROW SET NEW.n = NEW.n + 1;\n"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER docs_count AFTER INSERT ON docs BEGIN UPDATE docs SET n = n + 1 WHERE id = NEW.id; END;\n"
        }
    }
}

fn triggers_present_pass_and_fail(backend: Backend) {
    let p = Project::new(backend);
    p.write_config("[verify]\ntriggers-present = [\"docs.docs_count\"]\n");
    p.migration(
        "2024-04-01-000001_docs",
        &format!(
            "CREATE TABLE docs (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);\n{}",
            trigger_sql(backend)
        ),
        Some("DROP TABLE docs;\n"),
    );
    p.apply(&[]).expect_code(0);
    p.db.execute("INSERT INTO docs (id, n) VALUES (1, 1)");
    assert_eq!(p.db.count("docs WHERE n = 2"), 1, "the trigger fired");
    let out = dbverify(&p, &[]);
    out.expect_code(0);
    assert_status(&out, "triggers-present", "pass");

    p.db.execute(match backend {
        Backend::Postgres => "DROP TRIGGER docs_count ON docs",
        _ => "DROP TRIGGER docs_count",
    });
    let out = dbverify(&p, &["--only", "triggers-present"]);
    out.expect_code(1);
    let triggers = assert_status(&out, "triggers-present", "fail");
    assert_eq!(triggers["observed"], "0 of 1 trigger(s) present");
    assert_detail(&triggers, &["trigger `docs.docs_count` is missing"]);
}

fn migration_checksums_fail_after_an_edit(backend: Backend) {
    let p = Project::new(backend);
    three_tables(&p);
    p.apply(&[]).expect_code(0);
    let out = dbverify(&p, &["--only", "migration-checksums"]);
    out.expect_code(0);
    let sums = assert_status(&out, "migration-checksums", "pass");
    assert_eq!(
        sums["observed"],
        "0 edited, 0 missing from disk, of 3 applied"
    );

    // Editing an applied up.sql, even by a comment, is named.
    let up = p.path().join(format!("migrations/{USERS}/up.sql"));
    let text = std::fs::read_to_string(&up).unwrap();
    std::fs::write(&up, format!("-- reviewed\n{text}")).unwrap();
    let out = dbverify(&p, &[]);
    out.expect_code(1);
    let sums = assert_status(&out, "migration-checksums", "fail");
    assert_eq!(
        sums["observed"],
        "1 edited, 0 missing from disk, of 3 applied"
    );
    assert_detail(
        &sums,
        &[
            &format!("{USERS}/up.sql"),
            "(version 20240101000001) changed since it was applied",
        ],
    );
    // Line endings alone are not an edit.
    std::fs::write(&up, text.replace('\n', "\r\n")).unwrap();
    dbverify(&p, &["--only", "migration-checksums"]).expect_code(0);

    // An applied migration whose directory is gone is named too.
    std::fs::remove_dir_all(p.path().join(format!("migrations/{AUDIT}"))).unwrap();
    let out = dbverify(&p, &["--only", "migration-checksums"]);
    out.expect_code(1);
    let sums = assert_status(&out, "migration-checksums", "fail");
    assert_eq!(
        sums["observed"],
        "0 edited, 1 missing from disk, of 3 applied"
    );
    assert_detail(
        &sums,
        &["version 20240101000003 is applied but has no directory"],
    );
}

// ---------------------------------------------------------------------------------------
// Ctrl-C

/// The shadow database is dropped "also on failure and Ctrl-C": on failure see
/// `drift_shadow_that_cannot_be_built_is_an_error_and_dropped`; on SIGINT the handler
/// (`dbsafe::interrupt`) drops it before the process exits.
#[test]
fn interrupted_drift_drops_its_shadow() {
    let p = Project::new(Backend::Postgres);
    for i in 0..150 {
        p.migration(
            &format!("2024-05-01-{:06}_t{i}", i + 1),
            &format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT);\nCREATE INDEX t{i}_v ON t{i} (v);\n"),
            Some(&format!("DROP TABLE t{i};\n")),
        );
    }
    p.apply(&[]).expect_code(0);
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--only", "drift"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn cargo-dbverify");
    // Wait for the shadow to exist, then interrupt as a terminal's Ctrl-C would.
    let started = std::time::Instant::now();
    while scratch_databases(&p.db).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no shadow database appeared"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("dbverify finished before it could be interrupted");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(0), "dbverify was not interrupted");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(scratch_databases(&p.db), Vec::<String>::new());
}
