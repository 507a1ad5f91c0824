//! A generated PostgreSQL diesel history with what real, shipped histories hold and small
//! fixtures lack: directory names with spaces, unicode, `#` and quotes; a README.md and
//! loose `.sql` files beside the migrations; empty, whitespace-only, comment-only
//! (`-- Not reversible`) and absent down.sql; down.sql that fail; `CREATE INDEX
//! CONCURRENTLY` in a down.sql that runs in a transaction; a down.sql that re-adds a
//! dropped column at the end of its table; one that forgets a table; hundreds of lint
//! findings; and diesel's own `00000000000000_diesel_initial_setup`.
//!
//! Every up.sql applies, in order, on an empty PostgreSQL database (`diesel migration run`
//! gets through the whole history); [`History`] names the migrations whose down.sql is
//! broken, and how.

use std::fmt::Write as _;
use std::path::Path;

/// diesel's setup migration, as `diesel setup` writes it for PostgreSQL.
pub const DIESEL_SETUP: &str = "00000000000000_diesel_initial_setup";

const DIESEL_SETUP_UP: &str = r#"-- This file was automatically created by Diesel to setup helper functions
-- and other internal bookkeeping. This file is safe to edit, any future
-- changes will be added to existing projects as new migrations.




-- Sets up a trigger for the given table to automatically set a column called
-- `updated_at` whenever the row is modified (unless `updated_at` was included
-- in the modified columns)
--
-- # Example
--
-- ```sql
-- CREATE TABLE users (id SERIAL PRIMARY KEY, updated_at TIMESTAMP NOT NULL DEFAULT NOW());
--
-- SELECT diesel_manage_updated_at('users');
-- ```
CREATE OR REPLACE FUNCTION diesel_manage_updated_at(_tbl regclass) RETURNS VOID AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s
                    FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', _tbl);
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION diesel_set_updated_at() RETURNS trigger AS $$
BEGIN
    IF (
        NEW IS DISTINCT FROM OLD AND
        NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
    ) THEN
        NEW.updated_at := current_timestamp;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"#;

const DIESEL_SETUP_DOWN: &str = r#"-- This file was automatically created by Diesel to setup helper functions
-- and other internal bookkeeping. This file is safe to edit, any future
-- changes will be added to existing projects as new migrations.

DROP FUNCTION IF EXISTS diesel_manage_updated_at(_tbl regclass);
DROP FUNCTION IF EXISTS diesel_set_updated_at();
"#;

/// What the generated history holds, by directory name.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every migration directory, in version order (diesel's setup first).
    pub migrations: Vec<String>,
    /// Names with spaces, unicode, `#` or quotes.
    pub odd_names: Vec<String>,
    /// Without down.sql.
    pub no_down: Vec<String>,
    /// With an empty or whitespace-only down.sql.
    pub empty_down: Vec<String>,
    /// With a down.sql of comments only.
    pub comment_down: Vec<String>,
    /// With a down.sql that fails on PostgreSQL.
    pub failing_down: Vec<String>,
    /// With `CREATE INDEX CONCURRENTLY` in a down.sql that runs in a transaction.
    pub concurrently_down: Vec<String>,
    /// With a down.sql that re-adds a dropped column at the end of its table.
    pub column_order_down: Vec<String>,
    /// With a down.sql that leaves a table behind.
    pub leaky_down: Vec<String>,
    /// Files beside the migrations that diesel does not read.
    pub loose_files: Vec<String>,
}

impl History {
    /// Every migration whose down.sql cannot revert it (none, empty, comments only).
    pub fn missing_down(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .no_down
            .iter()
            .chain(&self.empty_down)
            .chain(&self.comment_down)
            .cloned()
            .collect();
        all.sort();
        all
    }
}

/// One migration being written.
struct Writer<'a> {
    dir: &'a Path,
    history: History,
    /// The newest ordinary table, which the next migrations change.
    table: String,
    tables: usize,
}

impl Writer<'_> {
    fn write(&mut self, name: &str, up: &str, down: Option<&str>) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).expect("create migration directory");
        std::fs::write(path.join("up.sql"), up).expect("write up.sql");
        if let Some(down) = down {
            std::fs::write(path.join("down.sql"), down).expect("write down.sql");
        }
        self.history.migrations.push(name.to_owned());
    }

    fn no_transaction(&self, name: &str) {
        std::fs::write(
            self.dir.join(name).join("metadata.toml"),
            "run_in_transaction = false\n",
        )
        .expect("write metadata.toml");
    }

    /// An ordinary migration, the `i`th, of one of six kinds.
    fn ordinary(&mut self, name: &str, i: usize) {
        let t = self.table.clone();
        match i % 6 {
            0 => {
                self.tables += 1;
                let table = format!("t{}", self.tables);
                let up = format!(
                    "CREATE TABLE {table} (\n    id serial PRIMARY KEY,\n    name varchar(100),\n    created_at timestamp NOT NULL DEFAULT now()\n);\n"
                );
                self.write(name, &up, Some(&format!("DROP TABLE {table};\n")));
                self.table = table;
            }
            1 => self.write(
                name,
                &format!("ALTER TABLE {t} ADD COLUMN c{i} integer NOT NULL;\n"),
                Some(&format!("ALTER TABLE {t} DROP COLUMN c{i};\n")),
            ),
            2 => self.write(
                name,
                &format!("CREATE INDEX {t}_name_{i} ON {t} (name);\n"),
                Some(&format!("DROP INDEX {t}_name_{i};\n")),
            ),
            3 => self.write(
                name,
                &format!("ALTER TABLE {t} ADD COLUMN ref{i} integer REFERENCES t1 (id);\n"),
                Some(&format!("ALTER TABLE {t} DROP COLUMN ref{i};\n")),
            ),
            4 => self.write(
                name,
                &format!("ALTER TABLE {t} ALTER COLUMN name TYPE varchar(200);\n"),
                Some(&format!(
                    "ALTER TABLE {t} ALTER COLUMN name TYPE varchar(100);\n"
                )),
            ),
            _ => {
                self.write(
                    name,
                    &format!("CREATE INDEX CONCURRENTLY {t}_created_{i} ON {t} (created_at);\n"),
                    Some(&format!("DROP INDEX CONCURRENTLY {t}_created_{i};\n")),
                );
                self.no_transaction(name);
            }
        }
    }
}

/// The `i`th version: increasing, every one a valid date and time.
fn version(i: usize) -> String {
    format!(
        "{:04}-{:02}-{:02}-{:02}1500",
        2018 + i / 336,
        1 + (i / 28) % 12,
        1 + i % 28,
        i % 24
    )
}

/// The special migrations, by position in the history: (position, kind).
const SPECIALS: &[(usize, &str)] = &[
    (20, "spaces"),
    (31, "no-down"),
    (45, "unicode"),
    (52, "empty-down"),
    (67, "hash"),
    (74, "comment-down"),
    (88, "quotes"),
    (95, "failing-down"),
    (110, "blank-down"),
    (123, "concurrently-setup"),
    (124, "concurrently-down"),
    (139, "column-order-setup"),
    (140, "column-order"),
    (152, "comment-down-2"),
    (166, "failing-down-2"),
    (181, "leaky-down"),
    (190, "spaces"),
];

/// Writes a history of `count` migrations (at least 200) plus diesel's setup migration into
/// `dir` (created when missing), with a README.md and loose `.sql` files.
pub fn write_history(dir: &Path, count: usize) -> History {
    assert!(count >= 200, "the special migrations need 200 positions");
    std::fs::create_dir_all(dir).expect("create migrations directory");
    let mut w = Writer {
        dir,
        history: History::default(),
        table: "t1".into(),
        tables: 0,
    };
    w.write(DIESEL_SETUP, DIESEL_SETUP_UP, Some(DIESEL_SETUP_DOWN));
    // t1 first: the foreign keys point at it.
    w.ordinary(&format!("{}_create_t1", version(0)), 0);
    for i in 1..count {
        let v = version(i);
        match SPECIALS.iter().find(|(at, _)| *at == i).map(|(_, k)| *k) {
            Some(kind) => special(&mut w, kind, &v, i),
            None => {
                let name = if i % 25 == 7 {
                    format!("{v}_Change {} step {i}", w.table)
                } else {
                    format!("{v}_change_{}_{i}", w.table)
                };
                if name.contains(' ') {
                    w.history.odd_names.push(name.clone());
                }
                w.ordinary(&name, i);
            }
        }
    }
    std::fs::write(
        dir.join("README.md"),
        "# Migrations\n\nRun them with `diesel migration run`.\n",
    )
    .expect("write README.md");
    let mut loose = String::new();
    for table in 1..=w.tables {
        let _ = writeln!(loose, "-- t{table}: see its migration");
    }
    std::fs::write(dir.join("schema_notes.sql"), loose).expect("write a loose file");
    std::fs::write(
        dir.join("seed_dev.sql"),
        "INSERT INTO t1 (name) VALUES ('dev');\n",
    )
    .expect("write a loose file");
    w.history.loose_files = vec![
        "README.md".into(),
        "schema_notes.sql".into(),
        "seed_dev.sql".into(),
    ];
    w.history
}

/// Writes the special migration `kind` at version `v`.
fn special(w: &mut Writer<'_>, kind: &str, v: &str, i: usize) {
    let t = w.table.clone();
    let plain_up = format!("UPDATE {t} SET name = lower(name);\n");
    match kind {
        "spaces" => {
            let name = format!("{v}_Add audit log to invoices {i}");
            w.history.odd_names.push(name.clone());
            w.ordinary(&name, i);
        }
        "unicode" => {
            let name = format!("{v}_ajouter_café_ünïcode_名前");
            w.history.odd_names.push(name.clone());
            w.ordinary(&name, i);
        }
        "hash" => {
            let name = format!("{v}_fix #123 invoices");
            w.history.odd_names.push(name.clone());
            w.ordinary(&name, i);
        }
        "quotes" => {
            let name = format!("{v}_it's \"quoted\"");
            w.history.odd_names.push(name.clone());
            w.ordinary(&name, i);
        }
        "no-down" => {
            let name = format!("{v}_backfill_{t}_names");
            w.write(&name, &plain_up, None);
            w.history.no_down.push(name);
        }
        "empty-down" | "blank-down" => {
            let name = format!("{v}_normalise_{t}_{i}");
            let down = if kind == "empty-down" {
                ""
            } else {
                "  \n\n\t\n"
            };
            w.write(&name, &plain_up, Some(down));
            w.history.empty_down.push(name);
        }
        "comment-down" | "comment-down-2" => {
            let name = format!("{v}_lowercase_{t}_{i}");
            w.write(&name, &plain_up, Some("-- Not reversible\n"));
            w.history.comment_down.push(name);
        }
        "failing-down" | "failing-down-2" => {
            let name = format!("{v}_archive_{t}_{i}");
            let up = format!("CREATE TABLE {t}_archive_{i} (id integer PRIMARY KEY);\n");
            // The table's name is misspelt: the down.sql fails.
            let down = format!("DROP TABLE {t}_archiv_{i};\n");
            w.write(&name, &up, Some(&down));
            w.history.failing_down.push(name);
        }
        "concurrently-setup" => {
            let name = format!("{v}_index_t1_lookup");
            w.write(
                &name,
                "CREATE INDEX t1_lookup ON t1 (name);\n",
                Some("DROP INDEX t1_lookup;\n"),
            );
        }
        "concurrently-down" => {
            // The down.sql makes the index again CONCURRENTLY, but in a transaction.
            let name = format!("{v}_drop_t1_lookup");
            w.write(
                &name,
                "DROP INDEX t1_lookup;\n",
                Some("CREATE INDEX CONCURRENTLY t1_lookup ON t1 (name);\n"),
            );
            w.history.concurrently_down.push(name);
        }
        "column-order-setup" => {
            let name = format!("{v}_create_instances");
            w.write(
                &name,
                "CREATE TABLE instances (id serial PRIMARY KEY, legacy text, host text NOT NULL DEFAULT '');\n",
                Some("DROP TABLE instances;\n"),
            );
        }
        "column-order" => {
            let name = format!("{v}_drop_instances_legacy");
            w.write(
                &name,
                "ALTER TABLE instances DROP COLUMN legacy;\n",
                Some("ALTER TABLE instances ADD COLUMN legacy text;\n"),
            );
            w.history.column_order_down.push(name);
        }
        "leaky-down" => {
            let name = format!("{v}_create_{t}_tags");
            w.write(
                &name,
                &format!(
                    "CREATE TABLE {t}_tags (id integer PRIMARY KEY, tag text);\nCREATE INDEX {t}_tags_tag ON {t}_tags (tag);\n"
                ),
                Some(&format!("DROP INDEX {t}_tags_tag;\n")),
            );
            w.history.leaky_down.push(name);
        }
        other => unreachable!("unknown special migration {other}"),
    }
}
