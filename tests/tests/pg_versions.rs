//! The focused end-to-end set on the PostgreSQL versions users run besides the suite's 15:
//! 16 and 18. apply under every failure policy, snapshots (pg-dump and template) created,
//! deep-verified and restored with equal fingerprints, drift with no false difference on a
//! schema that uses each version's new catalog features, rollback by run id, and a
//! migration history that only applies from 16 on.
//!
//! The servers are the throwaway clusters of `scripts/ensure-pg-versions.sh`, which
//! `scripts/test.sh` runs; it exports `DBSAFE_TEST_PG16_URL` / `DBSAFE_TEST_PG18_URL` and the
//! bin directories of their client tools, `DBSAFE_TEST_PG16_BIN` / `DBSAFE_TEST_PG18_BIN`.
//! dbsafe is given those tools only by PATH, so the tests prove it picks pg_dump 16/18 by
//! itself. Without the variables every test here fails and names the command to run
//! (`scripts/test.sh -E 'binary(pg_versions)'`): a version left out must not look tested.

use std::path::PathBuf;

use dbsafe_tests::{Project, Run, pg_server, run, table_text};
use serde_json::Value;

/// One `#[test]` per version for each `fn NAME(server: &Server)`: `NAME::pg16`, `NAME::pg18`.
macro_rules! each_version {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn pg16() {
                    super::$name(&super::Server::get(16))
                }
                #[test]
                fn pg18() {
                    super::$name(&super::Server::get(18))
                }
            }
        )*
    };
}

each_version!(
    apply_with_every_failure_policy,
    snapshots_deep_verify_and_restore_keep_the_fingerprints,
    drift_sees_no_false_difference_and_the_real_ones,
    rollback_by_run_id,
    history_that_needs_16_applies,
);

// ---------------------------------------------------------------------------------------
// The servers and the commands run against them

/// A PostgreSQL server of one major version, from the environment.
struct Server {
    major: u32,
    /// URL without a database.
    url: String,
    /// The bin directory of its own client tools, put first on dbsafe's PATH when known.
    bin: Option<PathBuf>,
}

impl Server {
    /// The server of `major`; panics naming the command that starts it when it is not set.
    fn get(major: u32) -> Server {
        let var = format!("DBSAFE_TEST_PG{major}_URL");
        let url = std::env::var(&var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            panic!(
                "{var} is not set: these tests run on PostgreSQL {major} started by \
                 scripts/ensure-pg-versions.sh; run them with `scripts/test.sh -E 'binary(pg_versions)'` \
                 (or set {var} to a PostgreSQL {major} server URL without a database)"
            )
        });
        let bin = std::env::var_os(format!("DBSAFE_TEST_PG{major}_BIN"))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let server = Server { major, url, bin };
        let p = server.project();
        let num: u32 =
            p.db.strings("SELECT current_setting('server_version_num') AS v")[0]
                .parse()
                .unwrap();
        assert_eq!(
            num / 10000,
            major,
            "{var} is not a PostgreSQL {major} server"
        );
        server
    }

    /// A project on a fresh database of this server.
    fn project(&self) -> Project {
        Project::on_postgres(&self.url)
    }

    /// PATH for dbsafe: this version's client tools first, then the test's own PATH.
    fn path(&self) -> String {
        let path = std::env::var("PATH").unwrap_or_default();
        match &self.bin {
            Some(bin) => format!("{}:{path}", bin.display()),
            None => path,
        }
    }

    /// Runs `BINARY SUBCOMMAND ARGS --message-format json` in the project with [`Self::path`].
    fn json(&self, p: &Project, binary: &str, args: &[&str]) -> Run {
        let mut cmd = p.command(binary);
        cmd.arg(binary.trim_start_matches("cargo-"))
            .args(args)
            .args(["--message-format", "json"])
            .env("PATH", self.path());
        run(cmd)
    }

    fn dbsafe(&self, p: &Project, args: &[&str]) -> Run {
        self.json(p, "cargo-dbsafe", args)
    }
}

/// The `type` event of a run; panics with the output when there is none.
#[track_caller]
fn event(out: &Run, kind: &str) -> Value {
    out.events()
        .into_iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {out:?}"))
}

/// Asserts that a manifest's (or another fingerprint's) schema and tables equal `live`'s.
#[track_caller]
fn assert_same_fingerprints(what: &str, got: &Value, live: &Value) {
    assert_eq!(
        got["schema"], live["schema"],
        "{what}: the schema fingerprint differs"
    );
    assert_eq!(
        got["tables"], live["tables"],
        "{what}: the table fingerprints differ"
    );
}

/// The schema lines of a fingerprint.
fn schema_lines(fingerprint: &Value) -> Vec<String> {
    fingerprint["schema"]["lines"]
        .as_array()
        .expect("schema lines")
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The schema: what every version has, syntax PostgreSQL 16 added, catalog features of 18

const BASE: &str = "2024-05-01-000001_base";
const V16: &str = "2024-05-01-000002_needs_16";
const V18: &str = "2024-05-01-000003_needs_18";

const BASE_UP: &str = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE owners (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    mood mood NOT NULL DEFAULT 'ok'
);
CREATE TABLE pets (
    id SERIAL PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    name VARCHAR(40) NOT NULL,
    born DATE,
    weight NUMERIC(6, 2) CHECK (weight > 0)
);
CREATE INDEX pets_owner ON pets (owner_id) INCLUDE (name);
CREATE VIEW pet_names AS SELECT p.name, o.name AS owner FROM pets p JOIN owners o ON o.id = p.owner_id;
CREATE FUNCTION trim_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.name := trim(NEW.name); RETURN NEW; END $$;
CREATE TRIGGER pets_trim BEFORE INSERT OR UPDATE ON pets FOR EACH ROW EXECUTE FUNCTION trim_name();
CREATE TABLE events (id INTEGER NOT NULL, at DATE NOT NULL, what TEXT) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
";
const BASE_DOWN: &str =
    "DROP TABLE events; DROP TRIGGER pets_trim ON pets; DROP FUNCTION trim_name();
DROP VIEW pet_names; DROP TABLE pets; DROP TABLE owners; DROP TYPE mood;";

/// PostgreSQL 16 syntax: SQL/JSON `IS JSON`, numeric literals with underscores, hex
/// integer literals. PostgreSQL 15 refuses each.
const V16_UP: &str = "CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    doc TEXT NOT NULL CONSTRAINT doc_is_object CHECK (doc IS JSON OBJECT),
    budget BIGINT NOT NULL DEFAULT 1_000_000,
    flags INTEGER NOT NULL DEFAULT 0x1F
);
";
const V16_DOWN: &str = "DROP TABLE documents;";

/// PostgreSQL 18 catalog features: named NOT NULL constraints (rows of pg_constraint, NO
/// INHERIT and NOT VALID ones too), virtual generated columns, NOT ENFORCED checks, a
/// primary key WITHOUT OVERLAPS, a partition inheriting a named NOT NULL.
const V18_UP: &str = "CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    price NUMERIC(10, 2) CONSTRAINT price_present NOT NULL,
    qty INTEGER NOT NULL,
    total NUMERIC GENERATED ALWAYS AS (price * qty) VIRTUAL,
    note TEXT,
    CONSTRAINT qty_positive CHECK (qty > 0) NOT ENFORCED
);
CREATE TABLE order_lines (
    id INTEGER CONSTRAINT line_id_present NOT NULL NO INHERIT,
    order_id INTEGER REFERENCES orders (id)
);
CREATE TABLE bookings (
    room INT4RANGE,
    during TSRANGE,
    CONSTRAINT bookings_pk PRIMARY KEY (room, during WITHOUT OVERLAPS)
);
CREATE TABLE parts (id INTEGER CONSTRAINT parts_id_present NOT NULL, k INTEGER NOT NULL)
    PARTITION BY RANGE (id);
CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100);
INSERT INTO orders (id, price, qty, note) VALUES (1, 2.50, 4, NULL), (2, 10, 1, 'x');
ALTER TABLE orders ADD CONSTRAINT note_present NOT NULL note NOT VALID;
";
const V18_DOWN: &str =
    "DROP TABLE parts; DROP TABLE bookings; DROP TABLE order_lines; DROP TABLE orders;";

/// A project with the migrations that `server` can run: the base, 16's and (on 18) 18's.
fn features_project(server: &Server, config: &str) -> Project {
    let p = server.project();
    p.write_config(config);
    p.migration(BASE, BASE_UP, Some(BASE_DOWN));
    p.migration(V16, V16_UP, Some(V16_DOWN));
    if server.major >= 18 {
        p.migration(V18, V18_UP, Some(V18_DOWN));
    }
    p
}

/// Rows in every table of the features schema.
fn add_rows(server: &Server, p: &Project) {
    p.db.execute(
        "INSERT INTO owners (name, mood) VALUES ('ann', 'happy'), ('bo', 'sad');
         INSERT INTO pets (owner_id, name, born, weight) VALUES
             (1, '  rex ', '2020-02-29', 12.5), (1, 'tom', NULL, NULL), (2, 'ünï 🦀', '2019-01-01', 3);
         INSERT INTO events (id, at, what) VALUES (1, '2024-03-01', 'vet'), (2, '2024-07-01', NULL);
         INSERT INTO documents (id, doc) VALUES (1, '{\"a\": 1}'), (2, '{\"b\": [1, 2]}');",
    );
    if server.major >= 18 {
        p.db.execute(
            "INSERT INTO order_lines VALUES (1, 1), (2, 2);
             INSERT INTO bookings VALUES ('[1,2)', '[2024-01-01,2024-01-02)');
             INSERT INTO parts VALUES (5, 1);",
        );
    }
}

/// Lines each version's features must leave in the schema fingerprint (the fingerprint
/// sees them, so drift and snapshot checks do).
fn feature_lines(server: &Server) -> Vec<&'static str> {
    let mut lines = vec![
        "constraint documents.doc_is_object: CHECK (doc IS JSON OBJECT)",
        "column documents.budget: bigint not null default 1000000",
    ];
    if server.major >= 18 {
        lines.extend([
            "column orders.total: numeric generated always as ((price * (qty)::numeric)) virtual",
            "constraint orders.price_present: NOT NULL price",
            "constraint orders.note_present: NOT NULL note NOT VALID",
            "constraint order_lines.line_id_present: NOT NULL id NO INHERIT",
            "constraint parts_low.parts_id_present: NOT NULL id",
            "constraint orders.qty_positive: CHECK (qty > 0) NOT ENFORCED",
            "constraint bookings.bookings_pk: PRIMARY KEY (room, during WITHOUT OVERLAPS)",
        ]);
    }
    lines
}

/// Asserts that the fingerprint shows every feature line.
#[track_caller]
fn assert_features(server: &Server, fingerprint: &Value) {
    let lines = schema_lines(fingerprint);
    for expected in feature_lines(server) {
        assert!(
            lines.iter().any(|l| l == expected),
            "PostgreSQL {}: no line `{expected}` in\n{}",
            server.major,
            lines.join("\n")
        );
    }
}

/// The client tools a snapshot manifest names: pg_dump at least the server's, and the
/// server's own (the wheel's, first on PATH) when none newer is installed.
#[track_caller]
fn assert_client_tools(server: &Server, manifest: &Value) {
    let tools = manifest["client_tools"].as_str().unwrap_or_default();
    let major: u32 = tools
        .strip_prefix("pg_dump ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("client_tools `{tools}` in {manifest}"));
    assert!(
        major >= server.major,
        "{tools} for PostgreSQL {}",
        server.major
    );
    if let (Some(bin), true) = (&server.bin, major == server.major) {
        assert_eq!(tools, format!("pg_dump {major} ({})", bin.display()));
    }
}

// ---------------------------------------------------------------------------------------
// apply under each failure policy

fn apply_with_every_failure_policy(server: &Server) {
    for policy in ["stop", "revert", "restore"] {
        let p = features_project(server, &format!("[apply]\non-failure = \"{policy}\"\n"));
        server.dbsafe(&p, &["apply"]).expect_code(0);
        add_rows(server, &p);
        let before = p.fingerprint();
        let versions_before = p.db.diesel_versions();
        p.migration(
            "2024-05-02-000001_extra",
            "CREATE TABLE extra (id INTEGER PRIMARY KEY); INSERT INTO extra VALUES (1);",
            Some("DROP TABLE extra;"),
        );
        p.migration(
            "2024-05-02-000002_broken",
            "DELETE FROM pets; INSERT INTO no_such_table VALUES (1);",
            Some("SELECT 1;"),
        );
        let failed = server.dbsafe(&p, &["apply"]);
        failed.expect_code(1);
        assert!(failed.stderr.contains("no_such_table"), "{failed:?}");
        let status = p.db.strings(&format!(
            "SELECT status AS v FROM dbsafe_runs WHERE id = '{}'",
            failed.run_id()
        ));
        assert_eq!(table_text(&p.db, "pets").len(), 3, "{policy}: pets kept");
        if policy == "stop" {
            assert_eq!(status, ["failed"]);
            assert!(p.db.has_table("extra"), "stop keeps what committed");
            assert_eq!(p.db.diesel_versions().len(), versions_before.len() + 1);
        } else {
            assert!(!p.db.has_table("extra"), "{policy}: {failed:?}");
            assert_eq!(p.db.diesel_versions(), versions_before, "{policy}");
            assert_same_fingerprints(policy, &p.fingerprint(), &before);
        }
        if policy == "restore" {
            let restored = event(&failed, "rollback.restore");
            let id = restored["snapshot_id"]
                .as_str()
                .expect("the pre-run snapshot");
            let manifest: Value = serde_json::from_str(
                &std::fs::read_to_string(
                    p.path()
                        .join(".dbsafe/snapshots")
                        .join(id)
                        .join("manifest.json"),
                )
                .unwrap(),
            )
            .unwrap();
            assert_client_tools(server, &manifest);
        }
    }
}

// ---------------------------------------------------------------------------------------
// snapshots: pg-dump and template, verify --deep, restore

/// `snapshot create --strategy STRATEGY`: the manifest it printed.
fn create_snapshot(server: &Server, p: &Project, strategy: &str) -> Value {
    let out = server.dbsafe(p, &["snapshot", "create", "--strategy", strategy]);
    out.expect_code(0);
    event(&out, "snapshot")
}

fn snapshots_deep_verify_and_restore_keep_the_fingerprints(server: &Server) {
    let p = features_project(server, "");
    server.dbsafe(&p, &["apply"]).expect_code(0);
    add_rows(server, &p);
    let live = p.fingerprint();
    assert_features(server, &live);
    let pets = table_text(&p.db, "pets");

    for strategy in ["pg-dump", "template"] {
        let manifest = create_snapshot(server, &p, strategy);
        assert_eq!(manifest["strategy"], strategy);
        assert_same_fingerprints(strategy, &manifest, &live);
        if strategy == "pg-dump" {
            assert_client_tools(server, &manifest);
        }
        let id = manifest["id"].as_str().unwrap();
        let deep = server.dbsafe(&p, &["snapshot", "verify", id, "--deep"]);
        deep.expect_code(0);
        let verified = event(&deep, "snapshot.verified");
        assert_eq!(verified["ok"], true, "{verified}");
        assert_eq!(verified["problems"], serde_json::json!([]));

        // Changed afterwards, then restored: the live fingerprints are the snapshot's.
        p.db.execute("DELETE FROM pets WHERE id = 2; DROP VIEW pet_names; DROP TABLE documents;");
        let restored = server.dbsafe(&p, &["snapshot", "restore", id, "--yes"]);
        restored.expect_code(0);
        assert_same_fingerprints(&format!("{strategy} restored"), &p.fingerprint(), &live);
        assert_eq!(table_text(&p.db, "pets"), pets, "{strategy}");
    }
}

// ---------------------------------------------------------------------------------------
// drift

/// `cargo dbverify --drift`: the drift result.
fn drift(server: &Server, p: &Project) -> Value {
    let out = server.json(p, "cargo-dbverify", &["--drift"]);
    out.events()
        .into_iter()
        .find(|e| e["type"] == "verify.result" && e["name"] == "drift")
        .unwrap_or_else(|| panic!("no drift result in {out:?}"))
}

fn drift_sees_no_false_difference_and_the_real_ones(server: &Server) {
    let p = features_project(server, "");
    server.dbsafe(&p, &["apply"]).expect_code(0);
    add_rows(server, &p);
    let clean = drift(server, &p);
    assert_eq!(clean["status"], "pass", "{clean}");

    // A change made by hand to a feature of the version is drift, named.
    let (change, named) = if server.major >= 18 {
        (
            "ALTER TABLE orders RENAME CONSTRAINT price_present TO price_required",
            "price_required",
        )
    } else {
        (
            "ALTER TABLE documents DROP CONSTRAINT doc_is_object, \
             ADD CONSTRAINT doc_is_object CHECK (doc IS JSON)",
            "doc_is_object",
        )
    };
    p.db.execute(change);
    let drifted = drift(server, &p);
    assert_eq!(drifted["status"], "fail", "{drifted}");
    assert!(drifted.to_string().contains(named), "{drifted}");
}

// ---------------------------------------------------------------------------------------
// rollback by run id: level 1 (down.sql) and level 2 (the pre-run snapshot)

fn rollback_by_run_id(server: &Server) {
    let p = server.project();
    p.write_config("[apply]\nsnapshot = \"always\"\n");
    p.migration(BASE, BASE_UP, Some(BASE_DOWN));
    server.dbsafe(&p, &["apply"]).expect_code(0);
    add_base_rows(&p);
    let after_base = p.fingerprint();
    p.migration(V16, V16_UP, Some(V16_DOWN));
    if server.major >= 18 {
        p.migration(V18, V18_UP, Some(V18_DOWN));
    }

    let second = server.dbsafe(&p, &["apply"]);
    second.expect_code(0);
    let reverted = server.json(&p, "cargo-dbrollback", &[&second.run_id(), "--yes"]);
    reverted.expect_code(0);
    assert_same_fingerprints("after level 1", &p.fingerprint(), &after_base);
    assert_eq!(p.db.diesel_versions(), ["20240501000001"]);

    let third = server.dbsafe(&p, &["apply"]);
    third.expect_code(0);
    p.db.execute("DELETE FROM pets");
    let restored = server.json(
        &p,
        "cargo-dbrollback",
        &[&third.run_id(), "--restore", "--yes"],
    );
    restored.expect_code(0);
    assert_same_fingerprints("after level 2", &p.fingerprint(), &after_base);
    assert_eq!(p.db.diesel_versions(), ["20240501000001"]);
}

fn add_base_rows(p: &Project) {
    p.db.execute(
        "INSERT INTO owners (name) VALUES ('ann');
         INSERT INTO pets (owner_id, name) VALUES (1, 'rex'), (1, 'tom');",
    );
}

// ---------------------------------------------------------------------------------------
// a migration history that only applies from 16 on

fn history_that_needs_16_applies(server: &Server) {
    let p = features_project(server, "");
    server.dbsafe(&p, &["apply"]).expect_code(0);
    assert!(p.db.has_table("documents"));
    p.db.execute("INSERT INTO documents (id, doc) VALUES (1, '{}')");
    assert_eq!(table_text(&p.db, "documents"), ["1|{}|1000000|31"]);

    // The same history on the suite's own server, when that is older than 16: refused by
    // the server, reverted, nothing left.
    let old = Project::on_postgres(&pg_server());
    let old_major: u32 = old
        .db
        .strings("SELECT current_setting('server_version_num') AS v")[0]
        .parse::<u32>()
        .unwrap()
        / 10000;
    if old_major < 16 {
        old.migration(BASE, BASE_UP, Some(BASE_DOWN));
        old.migration(V16, V16_UP, Some(V16_DOWN));
        let refused = old.apply(&[]);
        refused.expect_code(1);
        assert!(refused.stderr.contains("syntax error"), "{refused:?}");
        assert!(old.db.diesel_versions().is_empty());
        assert!(!old.db.has_table("owners"));
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL 18: what the fingerprint got wrong before

/// A virtual generated column is not a column with a default of the same expression.
#[test]
fn pg18_virtual_generated_column_is_not_a_default() {
    let p = Server::get(18).project();
    p.db.execute(
        "CREATE TABLE computed (x INTEGER, y INTEGER GENERATED ALWAYS AS (5) VIRTUAL);
         CREATE TABLE defaulted (x INTEGER, y INTEGER DEFAULT 5);",
    );
    let lines = schema_lines(&p.fingerprint());
    assert!(
        lines.contains(&"column computed.y: integer generated always as (5) virtual".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"column defaulted.y: integer default 5".to_owned()),
        "{lines:?}"
    );
}

/// Named NOT NULL constraints are schema: a rename is a difference.
#[test]
fn pg18_not_null_constraint_names_are_fingerprinted() {
    let p = Server::get(18).project();
    p.db.execute("CREATE TABLE t (a INTEGER CONSTRAINT a_present NOT NULL)");
    let before = p.fingerprint();
    assert!(
        schema_lines(&before).contains(&"constraint t.a_present: NOT NULL a".to_owned()),
        "{before}"
    );
    p.db.execute("ALTER TABLE t RENAME CONSTRAINT a_present TO a_required");
    assert_ne!(p.fingerprint()["schema"], before["schema"]);
}

/// A NOT VALID NOT NULL column may still hold NULLs: those rows' content counts in the
/// table's hash (it was dropped: the column was hashed as never NULL).
#[test]
fn pg18_rows_with_nulls_under_a_not_valid_not_null_are_hashed() {
    let server = Server::get(18);
    let hash_with = |id: i32| {
        let p = server.project();
        p.db.execute(&format!(
            "CREATE TABLE t (id INTEGER, v TEXT);
             INSERT INTO t VALUES ({id}, NULL), (2, 'x');
             ALTER TABLE t ADD CONSTRAINT v_present NOT NULL v NOT VALID;"
        ));
        p.fingerprint()["tables"][0]["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(hash_with(1), hash_with(7));
}
