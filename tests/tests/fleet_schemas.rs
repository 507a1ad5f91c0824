//! Fleets of a schema per tenant on one PostgreSQL database (`url` + `schemas`): each
//! schema is a member with its own ledger, diesel history table, lock, identity binding and
//! snapshot; the other schemas (and `public`) are never touched.

use dbsafe_tests::{Backend, Project};

/// The tenants' schemas, and one schema that is not a member.
const SCHEMAS: [&str; 3] = ["tenant_a", "tenant_b", "tenant_c"];

fn member(p: &Project, schema: &str) -> String {
    format!("{}.{schema}@127.0.0.1:5432", p.db.name)
}

/// Tables of `schema` (not dbsafe's), sorted.
fn tables(p: &Project, schema: &str) -> Vec<String> {
    p.db.strings(&format!(
        "SELECT CAST(tablename AS TEXT) AS v FROM pg_tables WHERE schemaname = '{schema}' AND tablename LIKE 'fleet%' ORDER BY 1"
    ))
}

/// `kind|status|fleet_run` of each run in `schema`'s ledger, oldest first.
fn runs(p: &Project, schema: &str) -> Vec<String> {
    p.db.strings(&format!(
        "SELECT kind || '|' || status || '|' || COALESCE(fleet_run, '-') AS v FROM {schema}.dbsafe_runs ORDER BY started_at, id"
    ))
}

fn versions(p: &Project, schema: &str) -> Vec<String> {
    p.db.strings(&format!(
        "SELECT version AS v FROM {schema}.__diesel_schema_migrations ORDER BY 1"
    ))
}

/// Three tenant schemas of one fresh database: apply --fleet (all three at once, each
/// holding its own lock), status --fleet, one schema's migration failing, `cargo
/// dbrollback FLEET_RUN`; each schema's tables and ledger rows checked, `public` and the
/// schema that is not a member untouched; level-2 restore refused for schema members.
#[test]
fn schema_per_tenant_fleet_applies_fails_and_rolls_back_per_schema() {
    let p = Project::new(Backend::Postgres);
    for schema in SCHEMAS.iter().chain(&["other"]) {
        p.db.execute(&format!("CREATE SCHEMA {schema}"));
    }
    p.write_config(&format!(
        "[fleets.tenants]\nurl = \"{}\"\nschemas = \"tenant%\"\nenvironment = \"test\"\ncanary = 0\nconcurrency = 3\nmax-failures = 3\n\n[apply]\nsnapshot = \"always\"\nlock-wait = \"1s\"\n",
        p.db.url
    ));
    p.migration(
        "2024-01-01-000001_a",
        "CREATE TABLE fleet_a (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE fleet_a;"),
    )
    .migration(
        "2024-01-01-000002_b",
        "CREATE TABLE fleet_b (id INTEGER PRIMARY KEY REFERENCES fleet_a (id));",
        Some("DROP TABLE fleet_b;"),
    );
    let members: Vec<String> = SCHEMAS.iter().map(|s| member(&p, s)).collect();

    // Each member pauses 2s holding its lock: were the three locks one, two members would
    // give up after lock-wait (1s).
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args([
        "dbsafe",
        "apply",
        "--fleet",
        "tenants",
        "--message-format",
        "json",
    ])
    .env("DBSAFE_TEST_PAUSE_AT", "after-lock:2000");
    let applied = dbsafe_tests::run(cmd);
    applied.expect_code(0);
    let first = applied.fleet_run();
    assert_eq!(
        applied.fleet_outcomes(),
        members
            .iter()
            .map(|m| (m.clone(), "succeeded".to_owned()))
            .collect::<Vec<_>>()
    );
    for schema in SCHEMAS {
        assert_eq!(tables(&p, schema), ["fleet_a", "fleet_b"], "{schema}");
        assert_eq!(runs(&p, schema), [format!("apply|succeeded|{first}")]);
        assert_eq!(versions(&p, schema), ["20240101000001", "20240101000002"]);
        let bound = p.db.strings(&format!(
            "SELECT value AS v FROM {schema}.dbsafe_meta WHERE name = 'identity'"
        ));
        assert!(
            bound[0].ends_with(&format!("/{}/{schema}", p.db.name)),
            "{bound:?}"
        );
    }
    for untouched in ["public", "other"] {
        assert_eq!(
            p.db.count(&format!("pg_tables WHERE schemaname = '{untouched}'")),
            0,
            "{untouched} untouched"
        );
    }
    // Each schema's snapshot is a dump of that schema alone.
    let manifests: Vec<serde_json::Value> = std::fs::read_dir(p.path().join(".dbsafe/snapshots"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("manifest.json")).ok())
        .map(|text| serde_json::from_str(&text).unwrap())
        .collect();
    assert_eq!(manifests.len(), 3);
    for manifest in &manifests {
        let target = manifest["target"].as_str().unwrap();
        let schema = target.split('.').nth(1).unwrap().split('@').next().unwrap();
        let schema_text = manifest["schema"]["lines"].to_string();
        assert!(schema_text.contains(schema), "{target}: {schema_text}");
        for other in SCHEMAS.iter().filter(|s| **s != schema) {
            assert!(!schema_text.contains(other), "{target}: {schema_text}");
        }
    }

    let status = p.dbsafe(&["status", "--fleet", "tenants"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("fleet tenants: 3 at 20240101000002"),
        "{status:?}"
    );
    assert!(status.stdout.contains(&members[1]), "{status:?}");
    // Every check on every schema: a foreign key of another schema is not this member's.
    let junit = p.path().join("verify.xml");
    let mut verify = p.command("cargo-dbverify");
    verify.args([
        "dbverify",
        "--fleet",
        "tenants",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    dbsafe_tests::run(verify).expect_code(0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");

    // tenant_b already has a table fleet_c: its migration fails there only, and its own
    // policy reverts it; the other schemas apply it.
    p.migration(
        "2024-01-01-000003_c",
        "CREATE TABLE fleet_c (id INTEGER PRIMARY KEY);",
        Some("DROP TABLE fleet_c;"),
    );
    p.db.execute("CREATE TABLE tenant_b.fleet_c (x INTEGER)");
    let failed = p.dbsafe(&["apply", "--fleet", "tenants", "--message-format", "json"]);
    failed.expect_code(1);
    let second = failed.fleet_run();
    assert_eq!(
        failed.fleet_outcomes(),
        [
            (members[0].clone(), "succeeded".to_owned()),
            (members[1].clone(), "failed".to_owned()),
            (members[2].clone(), "succeeded".to_owned()),
        ]
    );
    for schema in ["tenant_a", "tenant_c"] {
        assert_eq!(tables(&p, schema), ["fleet_a", "fleet_b", "fleet_c"]);
        assert_eq!(runs(&p, schema)[1], format!("apply|succeeded|{second}"));
    }
    assert_eq!(
        runs(&p, "tenant_b"),
        [
            format!("apply|succeeded|{first}"),
            format!("apply|reverted|{second}")
        ]
    );
    assert_eq!(versions(&p, "tenant_b").len(), 2);

    // A restore would swap the whole database: refused for schema members, nothing changed.
    let restore = p.dbrollback(&[&second, "--restore", "--message-format", "json"]);
    restore.expect_code(3);
    assert!(
        restore.stdout.contains("refused for schema members")
            || restore.stderr.contains("refused for schema members"),
        "{restore:?}"
    );
    for schema in ["tenant_a", "tenant_c"] {
        assert_eq!(tables(&p, schema), ["fleet_a", "fleet_b", "fleet_c"]);
    }

    let rolled = p.dbrollback(&[&second, "--message-format", "json"]);
    rolled.expect_code(0);
    let rollback = rolled.fleet_run();
    for schema in ["tenant_a", "tenant_c"] {
        assert_eq!(tables(&p, schema), ["fleet_a", "fleet_b"], "{schema}");
        assert_eq!(
            runs(&p, schema).last().unwrap(),
            &format!("rollback|succeeded|{rollback}")
        );
        assert_eq!(versions(&p, schema).len(), 2);
    }
    assert_eq!(
        runs(&p, "tenant_b").len(),
        2,
        "nothing of run {second} to roll back"
    );
    assert_eq!(
        tables(&p, "tenant_b"),
        ["fleet_a", "fleet_b", "fleet_c"],
        "its own fleet_c kept"
    );
}

/// `schemas` works on PostgreSQL only, and a fleet's `url` needs it: located errors.
#[test]
fn schema_fleets_are_postgres_only() {
    let p = Project::new(Backend::Sqlite);
    p.write_config(
        "[fleets.maria]\nurl = \"mysql://root@127.0.0.1:3306/app\"\nschemas = \"t%\"\nenvironment = \"test\"\n\n[fleets.lite]\nfiles = \"t/*.db\"\nschemas-from = \"SELECT 1\"\nenvironment = \"test\"\n\n[fleets.bare]\nurl = \"postgres://postgres@127.0.0.1:5432/app\"\nenvironment = \"test\"\n",
    );
    let run = p.dbsafe(&["status", "--fleet", "maria"]);
    run.expect_code(2);
    for needle in [
        "key `fleets.maria.url`",
        "is not a PostgreSQL URL",
        "key `fleets.maria.schemas`",
        "key `fleets.lite.schemas-from`",
        "a schema per tenant works on PostgreSQL only",
        "key `fleets.bare.schemas`",
        "add `schemas = \"PATTERN\"`",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
}
