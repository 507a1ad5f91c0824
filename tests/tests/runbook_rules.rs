//! The runbooks' decisive rules, inside apply and plan, against real data:
//! "row count mismatch > 1% -> rollback" decided by apply against its own baseline, with
//! the row counts recorded in the ledger; a rehearsal that runs the seeds and the checks
//! apply runs; seed idempotence that names the changed column and tolerates declared
//! volatile ones; invariants that test behaviour as another role; re-stamping after drift
//! recorded by `resolve`.

use dbsafe::config::Config;
use dbsafe::target::Target;
use dbsafe_tests::{Backend, Project, Run, each_backend, run};
use serde_json::Value;

each_backend!(
    apply_compares_with_its_own_baseline,
    rehearsal_runs_the_seeds_and_checks_apply_runs,
    seed_idempotence_names_the_column_and_tolerates_volatile_ones,
    behaviour_invariants_need_postgres_elsewhere,
    resolve_records_a_restamp_after_drift,
);

/// The columns as text joined by spaces, on each backend.
fn concat(backend: Backend, columns: &[&str]) -> String {
    let text = if backend == Backend::Mysql {
        "CHAR"
    } else {
        "TEXT"
    };
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({c} AS {text})"))
        .collect();
    match backend {
        Backend::Mysql => format!("CONCAT_WS(' ', {})", parts.join(", ")),
        _ => parts.join(" || ' ' || "),
    }
}

/// `INSERT INTO table (id, ...) SELECT g, ... FROM 1..=n` on each backend.
fn insert_series(backend: Backend, table: &str, columns: &str, values: &str, n: u32) -> String {
    match backend {
        Backend::Postgres => {
            format!(
                "INSERT INTO {table} ({columns}) SELECT {values} FROM generate_series(1, {n}) g"
            )
        }
        Backend::Mysql => format!(
            "INSERT INTO {table} ({columns}) SELECT {} FROM seq_1_to_{n}",
            values.replace('g', "seq")
        ),
        Backend::Sqlite => format!(
            "INSERT INTO {table} ({columns}) WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) SELECT {values} FROM s"
        ),
    }
}

fn json_of(out: &Run, kind: &str) -> Value {
    out.events()
        .into_iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {out:?}"))
}

// ---------------------------------------------------------------------------------------
// 1. "row count mismatch > 1% -> rollback", decided inside the run.

fn apply_compares_with_its_own_baseline(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_deliveries",
        "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, status VARCHAR(20));\nCREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(20));",
        Some("DROP TABLE customers;\nDROP TABLE deliveries;"),
    );
    p.apply(&[]).expect_code(0);
    p.db.execute(&insert_series(
        backend,
        "deliveries",
        "id, status",
        "g, 'sent'",
        1000,
    ));
    p.db.execute(&insert_series(
        backend,
        "customers",
        "id, name",
        "g, 'c'",
        10,
    ));
    let checked = "[apply]\nverify = true\nsnapshot = \"never\"\n\n[verify]\nbuiltins = [\"row-counts\", \"checksums\"]\nmax-row-change = \"1%\"\nunchanged-tables = [\"customers\"]\n";
    p.write_config(checked);

    // A lossless migration passes: the checks compare with the start of the run.
    p.migration(
        "2024-01-01-000002_flag",
        "ALTER TABLE deliveries ADD COLUMN flag INTEGER;",
        Some("ALTER TABLE deliveries DROP COLUMN flag;"),
    );
    let lossless = p.apply(&[]);
    lossless.expect_code(0);
    assert!(
        !lossless.stdout.contains("could not be checked"),
        "{lossless:?}"
    );

    // A migration that silently drops 3% of the rows fails the run, and the policy
    // reverts it.
    p.migration(
        "2024-01-01-000003_purge",
        "CREATE TABLE deliveries_purged AS SELECT * FROM deliveries WHERE id % 100 < 3;\nDELETE FROM deliveries WHERE id % 100 < 3;",
        Some("INSERT INTO deliveries SELECT * FROM deliveries_purged;\nDROP TABLE deliveries_purged;"),
    );
    // The rehearsal sees it first, on its clone, with the same baseline.
    let rehearsal = p.dbsafe(&["plan", "--rehearse", "--message-format", "json"]);
    rehearsal.expect_code(1);
    let plan = json_of(&rehearsal, "plan");
    assert!(
        plan["rehearsal"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "check"
                && s["name"] == "row-counts"
                && s["error"]
                    .as_str()
                    .unwrap()
                    .contains("`deliveries`: 1000 -> 970")),
        "{plan}"
    );
    assert_eq!(p.db.count("deliveries"), 1000);
    let lossy = p.apply(&[]);
    lossy.expect_code(1);
    let run_id = lossy.run_id();
    assert!(
        lossy.events().iter().any(|e| e["type"] == "verify.failed"
            && e["message"].as_str().unwrap().contains("row-counts")),
        "{lossy:?}"
    );
    assert_eq!(p.db.count("deliveries"), 1000);
    assert!(!p.db.has_table("deliveries_purged"));
    assert_eq!(p.db.diesel_versions().len(), 2);
    let status = p.db.strings(&format!(
        "SELECT status AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ));
    assert_eq!(status, ["reverted"]);
    let counts = p.db.strings(&format!(
        "SELECT {} AS v FROM dbsafe_row_counts WHERE run_id = '{run_id}' AND table_name = 'deliveries'",
        concat(backend, &["rows_before", "rows_after"])
    ));
    assert_eq!(counts, ["1000 970"]);
    let shown = p.dbsafe(&["runs", "show", &run_id]);
    shown.expect_code(0);
    assert!(
        shown.stdout.contains("deliveries 1 000 → 970 (-3.0%)"),
        "{shown:?}"
    );
    let markdown = p.dbsafe(&["runs", "show", &run_id, "--format", "markdown"]);
    markdown.expect_code(0);
    assert!(
        markdown
            .stdout
            .contains("| deliveries | 1000 | 970 | -30 |"),
        "{markdown:?}"
    );

    // Without row-counts as an error check, the same loss passes with a warning in the
    // run, and the run records it.
    p.write_config("[verify]\nmax-row-change = \"1%\"\n");
    let warned = p.apply(&[]);
    warned.expect_code(0);
    assert!(
        warned
            .events()
            .iter()
            .any(|e| e["type"] == "preflight.warning"
                && e["message"]
                    .as_str()
                    .unwrap()
                    .contains("deliveries 1 000 → 970 (-3.0%)")),
        "{warned:?}"
    );
    assert_eq!(p.db.count("deliveries"), 970);
    let shown = p.dbsafe(&["runs", "show", &warned.run_id(), "--message-format", "json"]);
    let detail = json_of(&shown, "run");
    let rows: Vec<&Value> = detail["row_counts"].as_array().unwrap().iter().collect();
    assert!(
        rows.iter().any(|r| r["table"] == "deliveries"
            && r["before"] == 1000
            && r["after"] == 970
            && r["estimated"] == false),
        "{detail}"
    );
    assert!(
        rows.iter()
            .any(|r| r["table"] == "deliveries_purged" && r["before"].is_null()),
        "{detail}"
    );

    // checksums against the baseline: a migration that touches a must-be-unchanged table fails.
    p.write_config(checked);
    p.migration(
        "2024-01-01-000004_rename",
        "UPDATE customers SET name = 'x' WHERE id = 1;",
        Some("UPDATE customers SET name = 'c' WHERE id = 1;"),
    );
    let touched = p.apply(&[]);
    touched.expect_code(1);
    assert!(
        touched.events().iter().any(|e| e["type"] == "verify.failed"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("`customers` changed")),
        "{touched:?}"
    );
    assert_eq!(p.db.count("customers WHERE name = 'c'"), 10);
}

// ---------------------------------------------------------------------------------------
// 2. The rehearsal runs what apply runs.

fn rehearsal_runs_the_seeds_and_checks_apply_runs(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_roles",
        "CREATE TABLE roles (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE);",
        Some("DROP TABLE roles;"),
    );
    p.apply(&[]).expect_code(0);
    // Real data the seed meets: 'admin' under another id.
    p.db.execute("INSERT INTO roles (id, name) VALUES (2, 'admin')");
    let upsert = match backend {
        Backend::Mysql => "INSERT INTO roles (id, name) VALUES (1, 'admin');",
        _ => {
            "INSERT INTO roles (id, name) VALUES (1, 'admin') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name;"
        }
    };
    p.file("seeds/roles.sql", upsert);
    p.write_config("[[seed]]\nname = \"roles\"\nfile = \"seeds/roles.sql\"\n");

    // Nothing is pending, yet the rehearsal runs the seed, and fails as apply would.
    let out = p.dbsafe(&["plan", "--rehearse", "--message-format", "json"]);
    out.expect_code(1);
    let plan = json_of(&out, "plan");
    assert_eq!(plan["pending"].as_array().unwrap().len(), 0);
    assert_eq!(plan["seeds"], serde_json::json!(["roles"]));
    let steps = plan["rehearsal"].as_array().unwrap();
    let failed = steps
        .iter()
        .find(|s| !s["error"].is_null())
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(failed["step"], "seed", "{plan}");
    assert_eq!(failed["name"], "roles");
    let message = failed["error"].as_str().unwrap().to_lowercase();
    assert!(
        message.contains("duplicate") || message.contains("unique"),
        "{message}"
    );
    // The target is untouched, and apply fails the same way.
    assert_eq!(p.db.count("roles"), 1);
    p.apply(&[]).expect_code(1);
    assert_eq!(p.db.count("roles"), 1);

    // A seed that gets through, and an after-run check that does not.
    let idempotent = "INSERT INTO roles (id, name) SELECT 3, 'viewer' FROM roles WHERE NOT EXISTS (SELECT 1 FROM roles WHERE name = 'viewer') LIMIT 1;";
    p.file("seeds/roles.sql", idempotent);
    p.write_config(
        "[apply]\nverify = true\n\n[[seed]]\nname = \"roles\"\nfile = \"seeds/roles.sql\"\n\n[[invariant]]\nname = \"a superuser exists\"\nsql = \"SELECT count(*) FROM roles WHERE name = 'superuser'\"\nexpect = \"> 0\"\n",
    );
    let out = p.dbsafe(&["plan", "--rehearse", "--message-format", "json"]);
    out.expect_code(1);
    let plan = json_of(&out, "plan");
    assert!(
        plan["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "a superuser exists"),
        "{plan}"
    );
    let steps = plan["rehearsal"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["step"] == "seed" && s["name"] == "roles" && s["error"].is_null()),
        "{plan}"
    );
    assert!(
        steps.iter().any(|s| s["step"] == "check"
            && s["name"] == "a superuser exists"
            && !s["error"].is_null()),
        "{plan}"
    );
    assert_eq!(p.db.count("roles"), 1, "the rehearsal ran on a clone");

    // Fixed: the rehearsal passes, and so does apply.
    p.file(
        "seeds/roles.sql",
        &format!("{idempotent}\nINSERT INTO roles (id, name) SELECT 4, 'superuser' FROM roles WHERE NOT EXISTS (SELECT 1 FROM roles WHERE name = 'superuser') LIMIT 1;"),
    );
    let out = p.dbsafe(&["plan", "--rehearse", "--message-format", "json"]);
    out.expect_code(0);
    assert_eq!(p.db.count("roles"), 1);
    p.apply(&[]).expect_code(0);
    assert_eq!(p.db.count("roles"), 3);
}

// ---------------------------------------------------------------------------------------
// 3. Seed idempotence with a column that is expected to change.

fn roundtrip(p: &Project) -> Vec<String> {
    let file = p.path().join("dbsafe.toml");
    let config = Config::parse(&file, &std::fs::read_to_string(&file).unwrap()).unwrap();
    let target = Target::resolve(&config, Some("test")).unwrap();
    dbsafe::roundtrip::roundtrip(&config, &target, false)
        .unwrap()
        .into_iter()
        .map(|p| p.message)
        .collect()
}

fn seed_idempotence_names_the_column_and_tolerates_volatile_ones(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_user_roles",
        "CREATE TABLE user_roles (id INTEGER PRIMARY KEY, role VARCHAR(20) NOT NULL, updated_at INTEGER NOT NULL);",
        Some("DROP TABLE user_roles;"),
    );
    // Its second run only touches updated_at (a counter here, so that it always changes).
    let touch = match backend {
        Backend::Mysql => {
            "INSERT INTO user_roles (id, role, updated_at) VALUES (1, 'admin', 0) ON DUPLICATE KEY UPDATE updated_at = updated_at + 1;"
        }
        _ => {
            "INSERT INTO user_roles (id, role, updated_at) VALUES (1, 'admin', 0) ON CONFLICT (id) DO UPDATE SET updated_at = user_roles.updated_at + 1;"
        }
    };
    p.file("seeds/user_roles.sql", touch);
    p.write_config("[[seed]]\nname = \"user_roles\"\nfile = \"seeds/user_roles.sql\"\n");
    let problems = roundtrip(&p);
    assert_eq!(problems.len(), 1, "{problems:?}");
    for needle in [
        "seed user_roles changes data when run a second time",
        "table `user_roles`, column `updated_at`",
        "{\"id\":1}",
    ] {
        assert!(problems[0].contains(needle), "{needle}: {problems:?}");
    }

    p.write_config("[[seed]]\nname = \"user_roles\"\nfile = \"seeds/user_roles.sql\"\nvolatile = [\"user_roles.updated_at\"]\n");
    assert_eq!(roundtrip(&p), Vec::<String>::new());

    // A seed that changes another column too is still caught.
    let both = touch.replace("updated_at + 1;", "updated_at + 1, role = 'root';");
    p.file("seeds/user_roles.sql", &both);
    let problems = roundtrip(&p);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("column `role`"), "{problems:?}");
    assert!(!problems[0].contains("column `updated_at`"), "{problems:?}");

    // `volatile` is checked like the rest of dbsafe.toml: located, exit 2.
    p.write_config("[[seed]]\nname = \"user_roles\"\nfile = \"seeds/user_roles.sql\"\nvolatile = [\"updated_at\"]\n");
    let out = p.dbsafe(&["status"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("seed[0].volatile") && out.stderr.contains("table.column"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Invariants that test behaviour.

fn dbverify(p: &Project, args: &[&str]) -> Run {
    let mut cmd = p.command("cargo-dbverify");
    cmd.args(["dbverify", "--message-format", "json"])
        .args(args);
    run(cmd)
}

fn result(out: &Run, name: &str) -> Value {
    out.events()
        .into_iter()
        .find(|e| e["type"] == "verify.result" && e["name"] == name)
        .unwrap_or_else(|| panic!("no result {name} in {out:?}"))
}

#[test]
fn behaviour_invariants_as_a_role_on_postgres() {
    let p = Project::new(Backend::Postgres);
    let role = format!("{}_app", p.db.name);
    p.migration(
        "2024-01-01-000001_ledger",
        "CREATE TABLE credit_lots (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, amount INTEGER NOT NULL);\n\
         ALTER TABLE credit_lots ENABLE ROW LEVEL SECURITY;\n\
         CREATE POLICY tenant ON credit_lots USING (tenant_id = current_setting('app.tenant_id')::int);\n\
         CREATE TABLE ledger_entries (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);",
        Some("DROP TABLE ledger_entries;\nDROP TABLE credit_lots;"),
    );
    p.apply(&[]).expect_code(0);
    p.db.execute(&format!(
        "DROP ROLE IF EXISTS \"{role}\"; CREATE ROLE \"{role}\";\n\
         GRANT SELECT ON credit_lots TO \"{role}\"; GRANT SELECT, INSERT ON ledger_entries TO \"{role}\";\n\
         INSERT INTO credit_lots VALUES (1, 1, 100), (2, 2, 200);\n\
         INSERT INTO ledger_entries VALUES (1, 10), (2, 20);"
    ));
    let config = format!(
        "[[invariant]]\nname = \"tenant isolation\"\nrole = \"{role}\"\nsettings = {{ \"app.tenant_id\" = \"1\" }}\nsql = \"SELECT * FROM credit_lots WHERE tenant_id = 2\"\nexpect = \"rows = 0\"\n\n\
         [[invariant]]\nname = \"own lots visible\"\nrole = \"{role}\"\nsettings = {{ \"app.tenant_id\" = \"1\" }}\nsql = \"SELECT count(*) FROM credit_lots\"\nexpect = \"= 1\"\n\n\
         [[invariant]]\nname = \"ledger is append-only\"\nrole = \"{role}\"\nsql = \"UPDATE ledger_entries SET amount = 0\"\nexpect = \"error\"\nexpect-error = \"42501\"\n"
    );
    p.write_config(&config);
    let out = dbverify(&p, &[]);
    out.expect_code(0);
    assert_eq!(result(&out, "tenant isolation")["status"], "pass");
    assert_eq!(result(&out, "own lots visible")["status"], "pass");
    let refused = result(&out, "ledger is append-only");
    assert_eq!(refused["status"], "pass", "{refused}");
    assert!(
        refused["observed"].as_str().unwrap().contains("42501"),
        "{refused}"
    );

    // The runbook's rules broken: the role may update the ledger, and RLS is off.
    p.db.execute(&format!(
        "GRANT UPDATE ON ledger_entries TO \"{role}\"; ALTER TABLE credit_lots DISABLE ROW LEVEL SECURITY;"
    ));
    let out = dbverify(&p, &[]);
    out.expect_code(1);
    assert_eq!(result(&out, "tenant isolation")["status"], "fail");
    let ran = result(&out, "ledger is append-only");
    assert_eq!(ran["status"], "fail", "{ran}");
    assert!(
        ran["details"][0]
            .as_str()
            .unwrap()
            .contains("the statement succeeded"),
        "{ran}"
    );
    // The UPDATE that ran was rolled back.
    assert_eq!(p.db.count("ledger_entries WHERE amount = 0"), 0);

    // Refused, but with another error than the one expected.
    p.db.execute(&format!("REVOKE UPDATE ON ledger_entries FROM \"{role}\";"));
    p.write_config(&config.replace("\"42501\"", "\"23505\""));
    let out = dbverify(&p, &["--only", "ledger is append-only"]);
    out.expect_code(1);
    let other = result(&out, "ledger is append-only");
    assert!(
        other["details"][0]
            .as_str()
            .unwrap()
            .contains("but the server said: 42501"),
        "{other}"
    );

    // A second statement is refused before anything runs.
    p.write_config(&config.replace(
        "UPDATE ledger_entries SET amount = 0",
        "UPDATE ledger_entries SET amount = 0; DELETE FROM ledger_entries",
    ));
    let out = dbverify(&p, &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("2 statements"), "{out:?}");
    assert_eq!(p.db.count("ledger_entries"), 2);
    p.db.execute(&format!(
        "REVOKE ALL ON credit_lots FROM \"{role}\"; REVOKE ALL ON ledger_entries FROM \"{role}\"; DROP ROLE \"{role}\";"
    ));
}

fn behaviour_invariants_need_postgres_elsewhere(backend: Backend) {
    if backend == Backend::Postgres {
        return;
    }
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_ledger",
        "CREATE TABLE ledger_entries (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);",
        Some("DROP TABLE ledger_entries;"),
    );
    p.apply(&[]).expect_code(0);
    for extra in [
        "role = \"app\"\nexpect = \"rows = 0\"",
        "expect = \"error\"",
    ] {
        p.write_config(&format!(
            "[[invariant]]\nname = \"append-only\"\nsql = \"SELECT * FROM ledger_entries\"\n{extra}\n"
        ));
        let out = dbverify(&p, &[]);
        out.expect_code(2);
        assert!(
            out.stderr.contains("invariant `append-only`")
                && out.stderr.contains("not supported on this backend"),
            "{out:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 8. Re-stamping after drift, recorded.

fn status_json(p: &Project) -> Value {
    json_of(&p.dbsafe(&["status", "--message-format", "json"]), "status")
}

fn resolve_records_a_restamp_after_drift(backend: Backend) {
    let p = Project::new(backend);
    p.migration(
        "2024-01-01-000001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE users;"),
    );
    p.migration(
        "2024-01-01-000002_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE tags;"),
    );
    p.apply(&[]).expect_code(0);
    // Someone dropped `tags` by hand: the schema matches version 1, diesel's table says 2.
    p.db.execute("DROP TABLE tags");
    let out = p.dbsafe(&[
        "resolve",
        "20240101000002",
        "--as",
        "reverted",
        "--reason",
        "tags dropped by hand in incident 42",
        "--message-format",
        "json",
    ]);
    out.expect_code(0);
    assert_eq!(p.db.diesel_versions(), ["20240101000001"]);
    let event = json_of(&out, "step.resolved");
    assert_eq!(event["state"], "reverted");
    assert_eq!(event["reason"], "tags dropped by hand in incident 42");
    assert_eq!(event["operator"], "tester");
    let run_id = event["run_id"].as_str().unwrap().to_owned();
    let kind = p.db.strings(&format!(
        "SELECT kind AS v FROM dbsafe_runs WHERE id = '{run_id}'"
    ));
    assert_eq!(kind, ["resolve"]);
    let step = p.db.strings(&format!(
        "SELECT {} AS v FROM dbsafe_steps WHERE run_id = '{run_id}'",
        concat(backend, &["direction", "status"])
    ));
    assert_eq!(step, ["down reverted"]);
    let payload = p.db.strings(&format!(
        "SELECT payload AS v FROM dbsafe_events WHERE run_id = '{run_id}' AND event_type = 'step.resolved'"
    ));
    assert!(payload[0].contains("incident 42"), "{payload:?}");
    let status = status_json(&p);
    assert_eq!(status["disagreements"], serde_json::json!([]), "{status}");
    assert!(
        status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["version"] == "20240101000002" && m["state"] == "pending"),
        "{status}"
    );
    // apply puts it back.
    p.apply(&[]).expect_code(0);
    assert!(p.db.has_table("tags"));

    // The reverse: diesel's table lost a version the ledger says applied; status flags it.
    p.db.execute("DELETE FROM __diesel_schema_migrations WHERE version = '20240101000002'");
    let status = status_json(&p);
    let flagged = status["disagreements"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "{status}");
    assert!(
        flagged[0].as_str().unwrap().contains("20240101000002"),
        "{status}"
    );
    p.dbsafe(&[
        "resolve",
        "20240101000002",
        "--as",
        "applied",
        "--reason",
        "tags is there",
    ])
    .expect_code(0);
    assert_eq!(p.db.diesel_versions().len(), 2);
    assert_eq!(status_json(&p)["disagreements"], serde_json::json!([]));

    // An unknown version: exit 2, nothing recorded.
    let runs = p.db.count("dbsafe_runs");
    let out = p.dbsafe(&["resolve", "20990101000000", "--as", "applied"]);
    out.expect_code(2);
    assert!(out.stderr.contains("20990101000000"), "{out:?}");
    assert_eq!(p.db.count("dbsafe_runs"), runs);
}
