//! Which PostgreSQL client tools a snapshot uses: `$DBSAFE_PG_BIN_DIR`, `[snapshot]
//! pg-bin-dir`, else the newest `pg_dump` at least the server's version found on PATH and
//! in the usual install locations; the manifest records which, and tools older than the
//! server are refused with the install hint.

use dbsafe_tests::{Backend, Project};
use serde_json::Value;

fn snapshot(p: &Project, env: &[(&str, &str)]) -> dbsafe_tests::Run {
    let mut cmd = p.command("cargo-dbsafe");
    cmd.args(["dbsafe", "snapshot", "create", "--message-format", "json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    dbsafe_tests::run(cmd)
}

fn client_tools(p: &Project, out: &dbsafe_tests::Run) -> String {
    let id = out
        .events()
        .into_iter()
        .find_map(|e| {
            e["snapshot_id"]
                .as_str()
                .or(e["id"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("a snapshot id in {out:?}"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.path()
                .join(".dbsafe/snapshots")
                .join(&id)
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    manifest["client_tools"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The bin directory of the server's own major version, from the server.
fn server_bin_dir(p: &Project) -> String {
    let num =
        p.db.strings("SELECT current_setting('server_version_num') AS v");
    format!(
        "/usr/lib/postgresql/{}/bin",
        num[0].parse::<u32>().unwrap() / 10000
    )
}

#[test]
fn the_tools_used_are_named_and_old_ones_refused() {
    let p = Project::new(Backend::Postgres);
    p.migration(
        "2024-01-01-000001_items",
        "CREATE TABLE items (id INTEGER PRIMARY KEY);\n",
        Some("DROP TABLE items;\n"),
    );
    p.apply(&[]).expect_code(0);

    // Found by itself: the manifest says which pg_dump wrote the dump.
    let found = snapshot(&p, &[]);
    found.expect_code(0);
    assert!(
        client_tools(&p, &found).starts_with("pg_dump "),
        "{found:?}"
    );

    // Named by the environment.
    let bin = server_bin_dir(&p);
    let named = snapshot(&p, &[("DBSAFE_PG_BIN_DIR", &bin)]);
    named.expect_code(0);
    assert!(client_tools(&p, &named).contains(&bin), "{named:?}");

    // A directory whose pg_dump is older than the server: refused, nothing written.
    let old = p.path().join("old-bin");
    std::fs::create_dir(&old).unwrap();
    let fake = old.join("pg_dump");
    std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = std::fs::read_dir(p.path().join(".dbsafe/snapshots"))
        .unwrap()
        .count();
    p.write_config(&format!("[snapshot]\npg-bin-dir = \"{}\"\n", old.display()));
    let refused = snapshot(&p, &[]);
    refused.expect_code(2);
    let all = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        all.contains("pg-bin-dir") && all.contains("pg_dump 9 is older than the server"),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::read_dir(p.path().join(".dbsafe/snapshots"))
            .unwrap()
            .count(),
        before
    );

    // A directory with no pg_dump at all.
    p.write_config("[snapshot]\npg-bin-dir = \"/nonexistent/bin\"\n");
    let missing = snapshot(&p, &[]);
    missing.expect_code(2);
    assert!(
        format!("{}{}", missing.stdout, missing.stderr).contains("has no runnable pg_dump"),
        "{missing:?}"
    );
}
