//! Schema and data fingerprints (`dbsafe::inspect`) on each backend, through the library:
//! equal for equal data in any physical order, different after any one change, blind to
//! dbsafe's and diesel's bookkeeping, stable across connections and session settings.

use std::path::Path;

use dbsafe::connection::{Create, Database};
use dbsafe::inspect::{self, SchemaFingerprint, TableFingerprint};
use dbsafe::target::DatabaseUrl;
use dbsafe_tests::{Backend, TestDb, each_backend};
use diesel::connection::TransactionManager;

each_backend!(
    equal_data_in_any_order_fingerprints_equal,
    any_one_change_is_detected,
    diff_names_dropped_table_and_changed_type,
    bookkeeping_tables_are_excluded,
    fingerprints_are_stable_across_connections_and_sessions,
    one_table_and_parallel_match_the_full_run,
    every_kind_of_object_survives_a_dump_and_restore,
);

fn open(db: &TestDb, dir: &Path) -> Database {
    let url = DatabaseUrl::parse(&db.url, dir).expect("parse URL");
    Database::connect(&url, Create::Never).expect("connect")
}

fn schema(db: &TestDb, dir: &Path) -> SchemaFingerprint {
    inspect::schema_fingerprint(&mut open(db, dir)).expect("schema fingerprint")
}

fn data(db: &TestDb, dir: &Path) -> Vec<TableFingerprint> {
    inspect::data_fingerprints(&mut open(db, dir)).expect("data fingerprints")
}

/// DDL written once, adapted to the backend's spelling.
fn ddl(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Postgres => sql.to_owned(),
        Backend::Mysql => sql
            .replace("BYTEA", "BLOB")
            .replace("TIMESTAMP", "DATETIME"),
        Backend::Sqlite => sql.replace("BYTEA", "BLOB"),
    }
}

/// A binary literal from hex digits.
fn blob(backend: Backend, hex: &str) -> String {
    match backend {
        Backend::Postgres => format!("decode('{hex}', 'hex')"),
        _ => format!("X'{hex}'"),
    }
}

const ITEMS: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, note TEXT, price NUMERIC(10,2),
    ratio DOUBLE PRECISION, qty INTEGER NOT NULL DEFAULT 1, big BIGINT, flag BOOLEAN,
    made TIMESTAMP, data BYTEA);
CREATE TABLE tags (item_id INTEGER NOT NULL REFERENCES items (id), tag VARCHAR(20));
CREATE INDEX tags_tag_idx ON tags (tag);
CREATE VIEW named_items AS SELECT id, name FROM items;";

/// The rows of `items`, each an `INSERT`, by id.
fn item(backend: Backend, id: u32) -> String {
    let values = match id {
        1 => format!(
            "1, 'alpha', NULL, 10.50, 0.1, 1, 9000000000, TRUE, '2024-01-02 03:04:05', {}",
            blob(backend, "deadbeef")
        ),
        2 => "2, 'beta', 'hello', 0.00, -2.5, 3, NULL, FALSE, NULL, NULL".to_owned(),
        3 => format!(
            "3, 'gamma', '', NULL, NULL, 2, -1, NULL, '1999-12-31 23:59:59', {}",
            blob(backend, "00")
        ),
        _ => format!(
            "4, 'delta', 'x|y''z', 99999999.99, 1e300, 5, 0, TRUE, '2030-06-30 12:00:00', {}",
            blob(backend, "")
        ),
    };
    format!("INSERT INTO items VALUES ({values});")
}

/// A database with the `items` schema and rows inserted in `order`.
fn items_db(backend: Backend, dir: &Path, order: [u32; 4]) -> TestDb {
    let db = TestDb::new(backend, dir);
    db.execute(&ddl(backend, ITEMS));
    for id in order {
        db.execute(&item(backend, id));
    }
    db.execute(
        "INSERT INTO tags VALUES (1, 'red'); INSERT INTO tags VALUES (1, 'red'); \
         INSERT INTO tags VALUES (2, NULL); INSERT INTO tags VALUES (3, 'blue');",
    );
    db
}

fn hash_of<'a>(tables: &'a [TableFingerprint], table: &str) -> &'a TableFingerprint {
    tables
        .iter()
        .find(|t| t.table == table)
        .unwrap_or_else(|| panic!("no table {table} in {tables:?}"))
}

fn equal_data_in_any_order_fingerprints_equal(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let a = items_db(backend, dir.path(), [1, 2, 3, 4]);
    let b = items_db(backend, dir.path(), [4, 2, 3, 1]);
    // Move a row physically: same content, another place on disk.
    b.execute("UPDATE items SET qty = 99 WHERE id = 2; UPDATE items SET qty = 3 WHERE id = 2;");
    b.execute("DELETE FROM tags WHERE tag = 'blue'; INSERT INTO tags VALUES (3, 'blue');");

    let (schema_a, schema_b) = (schema(&a, dir.path()), schema(&b, dir.path()));
    assert_eq!(
        schema_a,
        schema_b,
        "{:?}",
        inspect::diff_schema(&schema_a, &schema_b)
    );
    let (data_a, data_b) = (data(&a, dir.path()), data(&b, dir.path()));
    assert_eq!(data_a, data_b);
    let names: Vec<&str> = data_a.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["items", "tags"]);
    assert_eq!(hash_of(&data_a, "items").rows, 4);
    assert_eq!(hash_of(&data_a, "tags").rows, 4, "duplicates count");
    assert_eq!(hash_of(&data_a, "items").hash.len(), 32);

    let lines = &schema_a.lines;
    let columns = "columns items: id, name, note, price, ratio, qty, big, flag, made, data";
    assert!(lines.iter().any(|l| l == columns), "{lines:#?}");
    for prefix in [
        "table items",
        "column items.qty: ",
        "column tags.tag: ",
        "constraint tags.",
        "view named_items: ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "{prefix}: {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("index ") && l.contains("tags_tag_idx"))
    );
    assert_eq!(schema_a.hash.len(), 64);
}

fn any_one_change_is_detected(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = items_db(backend, dir.path(), [1, 2, 3, 4]);
    let base_schema = schema(&db, dir.path());
    let base = data(&db, dir.path());
    let items = |tables: &[TableFingerprint]| hash_of(tables, "items").clone();

    // One changed value: same count, other hash; changing it back restores the hash.
    db.execute("UPDATE items SET price = 10.51 WHERE id = 1");
    let changed = data(&db, dir.path());
    assert_eq!(items(&changed).rows, 4);
    assert_ne!(items(&changed).hash, items(&base).hash);
    assert_eq!(hash_of(&changed, "tags"), hash_of(&base, "tags"));
    assert_eq!(
        inspect::diff_data(&base, &changed),
        ["content of `items` changed (4 rows, same count)"]
    );
    db.execute("UPDATE items SET price = 10.50 WHERE id = 1");
    assert_eq!(data(&db, dir.path()), base);

    // Values trading places between rows, and NULL against empty text.
    db.execute(
        "UPDATE items SET name = CASE id WHEN 1 THEN 'beta' ELSE 'alpha' END WHERE id IN (1, 2)",
    );
    assert_ne!(items(&data(&db, dir.path())).hash, items(&base).hash);
    db.execute(
        "UPDATE items SET name = CASE id WHEN 1 THEN 'alpha' ELSE 'beta' END WHERE id IN (1, 2)",
    );
    db.execute("UPDATE items SET note = '' WHERE id = 1");
    assert_ne!(items(&data(&db, dir.path())).hash, items(&base).hash);
    db.execute("UPDATE items SET note = NULL WHERE id = 1");
    // 2^32 + 1 has the same halves XORed as 0.
    db.execute("UPDATE items SET big = 4294967297 WHERE id = 4");
    assert_ne!(items(&data(&db, dir.path())).hash, items(&base).hash);
    db.execute("UPDATE items SET big = 0 WHERE id = 4");
    assert_eq!(data(&db, dir.path()), base);

    // One deleted row, one inserted row (a duplicate counts too).
    db.execute("DELETE FROM tags WHERE tag = 'blue'");
    let deleted = data(&db, dir.path());
    assert_eq!(hash_of(&deleted, "tags").rows, 3);
    assert_eq!(
        inspect::diff_data(&base, &deleted),
        ["rows of `tags` changed: 4 -> 3"]
    );
    db.execute("INSERT INTO tags VALUES (3, 'blue'); INSERT INTO tags VALUES (3, 'blue')");
    let inserted = data(&db, dir.path());
    assert_eq!(hash_of(&inserted, "tags").rows, 5);
    db.execute("DELETE FROM tags WHERE tag = 'blue'; INSERT INTO tags VALUES (3, 'blue')");
    assert_eq!(data(&db, dir.path()), base);
    assert_eq!(schema(&db, dir.path()), base_schema);

    // One added index.
    db.execute("CREATE INDEX items_name_idx ON items (name)");
    let indexed = schema(&db, dir.path());
    assert_ne!(indexed.hash, base_schema.hash);
    let index = if backend == Backend::Mysql {
        "items.items_name_idx"
    } else {
        "items_name_idx"
    };
    assert_eq!(
        inspect::diff_schema(&base_schema, &indexed),
        [format!("index `{index}` added")]
    );

    // One changed default.
    match backend {
        Backend::Sqlite => db.execute(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE items_new (
                id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, note TEXT, price NUMERIC(10,2),
                ratio DOUBLE PRECISION, qty INTEGER NOT NULL DEFAULT 7, big BIGINT, flag BOOLEAN,
                made TIMESTAMP, data BLOB);
             INSERT INTO items_new SELECT * FROM items;
             DROP VIEW named_items; DROP TABLE items;
             ALTER TABLE items_new RENAME TO items;
             CREATE INDEX items_name_idx ON items (name);
             CREATE VIEW named_items AS SELECT id, name FROM items;",
        ),
        _ => db.execute("ALTER TABLE items ALTER COLUMN qty SET DEFAULT 7"),
    }
    let defaulted = schema(&db, dir.path());
    assert_eq!(
        inspect::diff_schema(&indexed, &defaulted),
        ["default of `items.qty` changed: 1 -> 7"]
    );
    assert_eq!(
        data(&db, dir.path()),
        base,
        "schema changes leave data alone"
    );
}

fn diff_names_dropped_table_and_changed_type(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(backend, dir.path());
    db.execute(
        "CREATE TABLE folders (id INTEGER PRIMARY KEY, name VARCHAR(20));
         CREATE TABLE users (id INTEGER PRIMARY KEY, code INTEGER);",
    );
    let before = schema(&db, dir.path());
    db.execute("DROP TABLE folders");
    match backend {
        Backend::Postgres => db.execute("ALTER TABLE users ALTER COLUMN code TYPE VARCHAR(36)"),
        Backend::Mysql => db.execute("ALTER TABLE users MODIFY code VARCHAR(36)"),
        Backend::Sqlite => db.execute(
            "CREATE TABLE users_new (id INTEGER PRIMARY KEY, code VARCHAR(36));
             INSERT INTO users_new SELECT * FROM users;
             DROP TABLE users; ALTER TABLE users_new RENAME TO users;",
        ),
    }
    let after = schema(&db, dir.path());
    let (old, new) = match backend {
        Backend::Postgres => ("integer", "character varying(36)"),
        Backend::Mysql => ("int(11)", "varchar(36)"),
        Backend::Sqlite => ("INTEGER", "VARCHAR(36)"),
    };
    assert_eq!(
        inspect::diff_schema(&before, &after),
        [
            "table `folders` missing".to_owned(),
            format!("column `users.code`: {old} -> {new}"),
        ]
    );
    let back = inspect::diff_schema(&after, &before);
    assert!(
        back.contains(&"table `folders` added".to_owned()),
        "{back:?}"
    );
}

fn bookkeeping_tables_are_excluded(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = items_db(backend, dir.path(), [1, 2, 3, 4]);
    let (base_schema, base_data) = (schema(&db, dir.path()), data(&db, dir.path()));

    let mut conn = open(&db, dir.path());
    dbsafe::ledger::ensure(&mut conn).expect("ledger");
    conn.execute(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .unwrap();
    conn.execute("INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000001')")
        .unwrap();
    db.execute("CREATE INDEX dbsafe_runs_status_idx ON dbsafe_runs (status)");
    assert!(db.has_table("dbsafe_runs"));

    assert_eq!(schema(&db, dir.path()), base_schema);
    assert_eq!(data(&db, dir.path()), base_data);
    assert!(inspect::table_fingerprint(&mut conn, "dbsafe_runs").is_err());
}

fn fingerprints_are_stable_across_connections_and_sessions(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = items_db(backend, dir.path(), [1, 2, 3, 4]);
    let (base_schema, base_data) = (schema(&db, dir.path()), data(&db, dir.path()));

    // Another connection whose session settings differ, inside a transaction of its own.
    let mut conn = open(&db, dir.path());
    let odd_session = match backend {
        Backend::Postgres => {
            "SET TimeZone = 'America/New_York'; SET DateStyle = 'SQL, DMY'; \
             SET extra_float_digits = -3; SET bytea_output = 'escape'; \
             SET IntervalStyle = 'iso_8601'"
        }
        Backend::Mysql => "SET time_zone = '+05:00'",
        Backend::Sqlite => "SELECT 1",
    };
    conn.execute(odd_session).unwrap();
    assert_eq!(inspect::schema_fingerprint(&mut conn).unwrap(), base_schema);
    assert_eq!(inspect::data_fingerprints(&mut conn).unwrap(), base_data);

    // Inside a transaction the caller holds (a savepoint is used, then rolled back).
    type Manager = <dbsafe::connection::AnyConnection as diesel::Connection>::TransactionManager;
    Manager::begin_transaction(&mut conn.conn).unwrap();
    assert_eq!(inspect::data_fingerprints(&mut conn).unwrap(), base_data);
    assert_eq!(inspect::schema_fingerprint(&mut conn).unwrap(), base_schema);
    assert_session_kept(backend, &mut conn);
    Manager::rollback_transaction(&mut conn.conn).unwrap();
    assert_session_kept(backend, &mut conn);
}

/// The caller's session settings are still the odd ones it chose: fingerprinting does not
/// leak its own, inside or outside the caller's transaction.
fn assert_session_kept(backend: Backend, conn: &mut Database) {
    if backend == Backend::Postgres {
        let zone = conn
            .texts("SELECT current_setting('TimeZone') AS v")
            .unwrap();
        assert_eq!(zone, ["America/New_York"]);
    }
    if backend == Backend::Mysql {
        let zone = conn
            .texts("SELECT CAST(@@session.time_zone AS CHAR) AS v")
            .unwrap();
        assert_eq!(zone, ["+05:00"]);
    }
}

fn one_table_and_parallel_match_the_full_run(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = items_db(backend, dir.path(), [3, 1, 4, 2]);
    let all = data(&db, dir.path());
    let mut conn = open(&db, dir.path());
    let one = inspect::table_fingerprint(&mut conn, "tags").unwrap();
    assert_eq!(&one, hash_of(&all, "tags"));
    let missing = inspect::table_fingerprint(&mut conn, "nope").unwrap_err();
    assert!(missing.to_string().contains("`nope`"), "{missing}");

    let url = DatabaseUrl::parse(&db.url, dir.path()).unwrap();
    assert_eq!(inspect::data_fingerprints_parallel(&url, 3).unwrap(), all);
    assert_eq!(inspect::data_fingerprints_parallel(&url, 1).unwrap(), all);
}

const PG_RICH: &str = r#"
CREATE SCHEMA audit;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE TABLE people (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    mood mood DEFAULT 'ok', score posint, tags text[], meta jsonb, doc json,
    spent interval, born date, seen timestamptz, at time, uid uuid, price numeric,
    ratio real, small smallint, p point, pr pair, ip inet, chr char(3), raw bytea,
    name_len integer GENERATED ALWAYS AS (length(name)) STORED);
CREATE TABLE audit.log (
    id serial PRIMARY KEY, person_id bigint REFERENCES people (id) ON DELETE CASCADE,
    at timestamptz DEFAULT now(), what text);
CREATE INDEX log_what_idx ON audit.log (lower(what)) WHERE what IS NOT NULL;
CREATE FUNCTION audit.log_person() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.log (person_id, what) VALUES (NEW.id, 'insert');
    RETURN NEW;
END $$;
CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION audit.log_person();
ALTER TABLE people ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON people USING (name = current_user);
CREATE VIEW happy_people AS SELECT id, name FROM people WHERE mood = 'happy';
CREATE MATERIALIZED VIEW mood_counts AS SELECT mood, count(*) AS n FROM people GROUP BY mood;
CREATE SEQUENCE ticket_seq START 100 INCREMENT 5;
CREATE AGGREGATE audit.concat_all(text) (SFUNC = textcat, STYPE = text, INITCOND = '');
CREATE TABLE measurements (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE PROCEDURE noop() LANGUAGE sql AS $$ SELECT 1 $$;
INSERT INTO people (name, mood, score, tags, meta, doc, spent, born, seen, at, uid, price,
    ratio, small, p, pr, ip, chr, raw)
VALUES ('ann', 'happy', 5, '{a,b}', '{"k": [1, 2]}', '{"x":  1}', '1 day 02:00', '2000-02-29',
    '2024-01-01 10:00+02', '12:34:56.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1.50, 0.1,
    7, '(1,2)', ROW(1, 'x'), '10.0.0.1/8', 'ab', '\x00ff');
INSERT INTO people (name) VALUES ('bob');
INSERT INTO measurements VALUES (1, '2024-05-05'), (2, '2024-06-06');
"#;

const MYSQL_RICH: &str = r#"
CREATE TABLE people (
    id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) COLLATE utf8mb4_bin NOT NULL,
    mood ENUM('sad', 'ok', 'happy') DEFAULT 'ok', score INT CHECK (score > 0),
    seen TIMESTAMP NULL DEFAULT NULL,
    updated DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    name_len INT AS (CHAR_LENGTH(name)) VIRTUAL, meta JSON, ratio FLOAT, raw VARBINARY(10),
    UNIQUE KEY people_name (name), KEY people_mood (mood, name(10)));
CREATE TABLE log (
    id INT AUTO_INCREMENT PRIMARY KEY, person_id INT, what TEXT,
    CONSTRAINT log_person FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE);
CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW
    INSERT INTO log (person_id, what) VALUES (NEW.id, 'insert');
CREATE FUNCTION add_one(x INT) RETURNS INT DETERMINISTIC RETURN x + 1;
CREATE PROCEDURE noop(IN a INT) BEGIN SELECT a; END;
CREATE VIEW happy AS SELECT id, name FROM people WHERE mood = 'happy';
CREATE SEQUENCE ticket_seq START WITH 100 INCREMENT BY 5;
INSERT INTO people (name, mood, score, seen, meta, ratio, raw)
    VALUES ('ann', 'happy', 5, '2024-01-01 10:00:00', '{"k": [1, 2]}', 0.1, X'00ff');
INSERT INTO people (name) VALUES ('bob');
"#;

const SQLITE_RICH: &str = r#"
CREATE TABLE people (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL COLLATE NOCASE UNIQUE,
    score REAL CHECK (score >= 0), data BLOB,
    name_len INTEGER GENERATED ALWAYS AS (length(name)) VIRTUAL);
CREATE TABLE pairs (a INTEGER, b TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE strict_t (x INTEGER, y TEXT) STRICT;
CREATE INDEX people_lower ON people (lower(name));
CREATE INDEX people_score ON people (score DESC) WHERE score > 1;
CREATE TABLE log (
    id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people (id) ON DELETE CASCADE,
    what TEXT);
CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN
    INSERT INTO log (person_id, what) VALUES (NEW.id, 'insert');
END;
CREATE VIEW named AS SELECT id, name FROM people;
INSERT INTO people (name, score, data) VALUES ('ann', 2.5, X'00ff'), ('bob', NULL, NULL);
INSERT INTO pairs VALUES (1, 'x'), (2, 'y');
INSERT INTO strict_t VALUES (1, 'one');
"#;

/// `(user, password, host, port)` of a `mysql://` server URL.
fn mysql_parts(url: &str) -> (String, Option<String>, String, String) {
    let rest = url.trim_start_matches("mysql://").trim_end_matches('/');
    let (userinfo, hostport) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
        None => (userinfo.to_owned(), None),
    };
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    (user, password, host.to_owned(), port.to_owned())
}

fn run_ok(mut cmd: std::process::Command) {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies `from` into the fresh database `to` the way a snapshot restore would.
fn dump_and_restore(from: &TestDb, to: &TestDb, dir: &Path) {
    use std::process::Command;
    let file = dir.join("dump");
    match from.backend {
        Backend::Postgres => {
            let mut dump = Command::new("pg_dump");
            dump.args(["-Fc", "-f"]).arg(&file).args(["-d", &from.url]);
            run_ok(dump);
            let mut restore = Command::new("pg_restore");
            restore.args(["--no-owner", "-d", &to.url]).arg(&file);
            run_ok(restore);
        }
        Backend::Mysql => {
            let (user, password, host, port) = mysql_parts(&dbsafe_tests::mysql_server());
            let client = |program: &str| {
                let mut cmd = Command::new(program);
                cmd.args(["-h", &host, "-P", &port, "-u", &user, "--protocol=tcp"]);
                if let Some(password) = &password {
                    cmd.env("MYSQL_PWD", password);
                }
                cmd
            };
            let mut dump = client("mysqldump");
            dump.args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--result-file",
            ])
            .arg(&file)
            .arg(&from.name);
            run_ok(dump);
            let mut restore = client("mysql");
            restore
                .arg(&to.name)
                .stdin(std::fs::File::open(&file).unwrap());
            run_ok(restore);
        }
        Backend::Sqlite => {
            from.execute(&format!("VACUUM INTO '{}'", to.name.replace('\'', "''")));
        }
    }
}

fn every_kind_of_object_survives_a_dump_and_restore(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let a = TestDb::new(backend, dir.path());
    a.execute(match backend {
        Backend::Postgres => PG_RICH,
        Backend::Mysql => MYSQL_RICH,
        Backend::Sqlite => SQLITE_RICH,
    });
    let b = TestDb::new(backend, dir.path());
    dump_and_restore(&a, &b, dir.path());

    let (schema_a, schema_b) = (schema(&a, dir.path()), schema(&b, dir.path()));
    assert_eq!(
        inspect::diff_schema(&schema_a, &schema_b),
        Vec::<String>::new(),
        "{schema_a:#?}\n{schema_b:#?}"
    );
    assert_eq!(schema_a, schema_b);
    let (data_a, data_b) = (data(&a, dir.path()), data(&b, dir.path()));
    assert_eq!(data_a, data_b);
    assert_eq!(hash_of(&data_a, "people").rows, 2);
    let log = if backend == Backend::Postgres {
        "audit.log"
    } else {
        "log"
    };
    assert_eq!(hash_of(&data_a, log).rows, 2, "rows written by the trigger");

    let expected: &[&str] = match backend {
        Backend::Postgres => &[
            "schema audit",
            "enum mood: sad, ok, happy",
            "domain posint: integer CHECK (VALUE > 0)",
            "type pair: (a integer, b text)",
            "column people.id: bigint not null identity always",
            "column people.name: text not null collate C",
            "column people.mood: mood default 'ok'::mood",
            "column people.name_len: integer generated always as (length(name)) stored",
            "rls people: enabled",
            "policy people.own_rows: permissive for ALL to public using ((name = CURRENT_USER))",
            "trigger people.people_audit: CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION audit.log_person()",
            "index audit.log_what_idx: on audit.log USING btree (lower(what)) WHERE (what IS NOT NULL)",
            "sequence ticket_seq: bigint start 100 increment 5 min 1 max 9223372036854775807 cache 1",
            "sequence audit.log_id_seq: integer start 1 increment 1 min 1 max 2147483647 cache 1 owned by audit.log.id",
            "table measurements: partitioned by RANGE (at)",
            "table measurements_2024: partition of measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        ],
        Backend::Mysql => &[
            "sequence ticket_seq",
            "column people.id: int(11) not null auto_increment",
            "column people.mood: enum('sad','ok','happy') default 'ok'",
            "column people.name_len: int(11) generated always as (char_length(`name`)) virtual",
            "column people.updated: datetime on update current_timestamp() default current_timestamp()",
            "column people.name: varchar(40) not null collate utf8mb4_bin",
            "constraint people.score: CHECK (`score` > 0)",
            "constraint log.log_person: FOREIGN KEY (person_id) REFERENCES people (id) ON UPDATE RESTRICT ON DELETE CASCADE",
            "index people.people_mood: on people USING BTREE (mood, name(10))",
            "index people.people_name: on people unique USING BTREE (name)",
            "trigger people.people_audit: AFTER INSERT FOR EACH ROW, order 1, INSERT INTO log (person_id, what) VALUES (NEW.id, 'insert')",
            "view happy: select `people`.`id` AS `id`,`people`.`name` AS `name` from `people` where `people`.`mood` = 'happy'; check option NONE; security DEFINER",
        ],
        Backend::Sqlite => &[
            "table pairs: without rowid",
            "table strict_t: strict",
            "column people.name_len: INTEGER generated virtual",
            "constraint pairs.primary_key: PRIMARY KEY (a, b)",
            "constraint log.foreign_key(person_id): FOREIGN KEY (person_id) REFERENCES people (id) ON UPDATE NO ACTION ON DELETE CASCADE",
            "index people_score: on people (score desc), sql CREATE INDEX people_score ON people (score DESC) WHERE score > 1",
            "index people_lower: on people ((expression)), sql CREATE INDEX people_lower ON people (lower(name))",
            "index sqlite_autoindex_people_1: on people unique (name collate NOCASE)",
            "trigger people.people_audit: CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN INSERT INTO log (person_id, what) VALUES (NEW.id, 'insert'); END",
        ],
    };
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|e| !schema_a.lines.iter().any(|l| l == **e))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:#?} in {:#?}",
        schema_a.lines
    );
    let prefixes: &[&str] = match backend {
        Backend::Postgres => &[
            "function audit.log_person(): returns trigger, language plpgsql, md5 ",
            "aggregate audit.concat_all(text): language internal, md5 ",
            "procedure noop(): language sql, md5 ",
            "view happy_people: SELECT ",
            "matview mood_counts: SELECT ",
        ],
        Backend::Mysql => &[
            "function add_one: (IN x int(11)) returns int(11), deterministic, CONTAINS SQL, security DEFINER, sha256 ",
            "procedure noop: (IN a int(11)), CONTAINS SQL, security DEFINER, sha256 ",
        ],
        Backend::Sqlite => &["view named: CREATE VIEW", "definition people: CREATE TABLE"],
    };
    for prefix in prefixes {
        assert!(
            schema_a.lines.iter().any(|l| l.starts_with(prefix)),
            "{prefix} in {:#?}",
            schema_a.lines
        );
    }

    // Values that compare equal but read differently are still changes.
    if backend == Backend::Postgres {
        for (change, undo) in [
            ("price = 1.5", "price = 1.50"),
            ("spent = '26 hours'", "spent = '1 day 02:00'"),
            ("mood = 'ok'", "mood = 'happy'"),
        ] {
            a.execute(&format!("UPDATE people SET {change} WHERE name = 'ann'"));
            assert_ne!(data(&a, dir.path()), data_a, "{change}");
            a.execute(&format!("UPDATE people SET {undo} WHERE name = 'ann'"));
        }
        assert_eq!(data(&a, dir.path()), data_a);
    }
}
