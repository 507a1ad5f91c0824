#!/usr/bin/env python3
"""bench/drift_bench.py — time `cargo dbverify --only drift` against `diesel migration run`.

Called by bench/drift.sh (which installs diesel_cli and builds cargo-dbverify first); usable
alone.

It generates N migrations (bench/gen_migrations.py) into a temporary directory and applies
them once, with `diesel migration run`, to a fresh "live" database. Then, for each round,
alternating which goes first:

    dbverify  cargo-dbverify dbverify --only drift --message-format json --target bench
              on the live database (with DATABASE_URL set; the check builds a shadow
              database from the N applied migrations with diesel's harness, fingerprints it
              and the live schema, and diffs them); it must pass;
    diesel    diesel migration run --database-url URL --migration-dir DIR
              on a fresh empty database created and dropped around the timing (the same
              N migrations: the cost the drift check's shadow build is compared with).

It prints each round's times, the drift check's own duration (from its JSON result) and the
median of the per-round ratios dbverify/diesel (goal: at most 1.5). Afterwards it checks
that no shadow database was left behind on the server.

With --profile it also times, once each, what the drift check is made of: creating and
dropping an empty database, the schema fingerprint of the live database (through
`cargo dbsafe fingerprint`, when --dbsafe names a binary; that includes the table data
hashes and is an upper bound), and a drift check on a database with one object changed
(which walks all N migrations to find the best-matching version).

Exit status: 0 when done (and, with --max-ratio, when the median ratio is within it);
1 when the ratio is over --max-ratio; 2 when a tool failed or a check did not hold.
Only the Python standard library is used; psql does the database administration.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_migrations  # noqa: E402
from run_bench import BenchError, drop_db, masked, psql, with_database  # noqa: E402

DB_PREFIX = "dbsafe_drift_"


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, str]:
    """Runs cmd, its output to `log`; returns (seconds, stdout). A non-zero exit is an error."""
    start = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    log.write_text(f"$ {' '.join(cmd)}\nexit {r.returncode}\n--- stdout\n{r.stdout}--- stderr\n{r.stderr}")
    if r.returncode != 0:
        tail = "".join((r.stdout + r.stderr).splitlines(keepends=True)[-20:])
        raise BenchError(f"{Path(cmd[0]).name} exited with {r.returncode} (log {log}):\n{tail}")
    return elapsed, r.stdout


def drift_result(stdout: str) -> dict:
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "verify.result" and event.get("name") == "drift":
            return event
    raise BenchError(f"no drift result in the output:\n{stdout}")


def leftovers(admin_url: str, live: str) -> list[str]:
    out = psql(admin_url, f"SELECT datname FROM pg_database WHERE datname LIKE '{live}%' AND datname <> '{live}'")
    return [line for line in out.splitlines() if line]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--migrations", type=int, default=300, help="migrations to generate (300)")
    p.add_argument("--rows", type=int, default=100, help="rows per INSERT migration (100)")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (5)")
    p.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted (1)")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("DBSAFE_BENCH_PG_URL")
        or os.environ.get("DBSAFE_TEST_PG_URL")
        or "postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server URL; its database is used for CREATE/DROP DATABASE",
    )
    p.add_argument("--diesel", default=shutil.which("diesel") or "diesel", help="diesel_cli binary")
    p.add_argument("--dbverify", default="target/release/cargo-dbverify", help="cargo-dbverify binary")
    p.add_argument("--dbsafe", help="cargo-dbsafe binary (only for --profile's fingerprint timing)")
    p.add_argument("--max-ratio", type=float, help="exit 1 when the median ratio is above this")
    p.add_argument("--profile", action="store_true", help="also time the parts of the drift check")
    p.add_argument("--keep", action="store_true", help="keep the generated directory and logs")
    a = p.parse_args()
    if a.migrations < 1 or a.rounds < 1 or a.warmup < 0:
        p.error("--migrations and --rounds must be at least 1, --warmup at least 0")

    # Turn SIGTERM into SystemExit so the `finally` blocks drop the databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    dbverify_bin = str(Path(a.dbverify).resolve())
    if not os.access(dbverify_bin, os.X_OK):
        p.error(f"{dbverify_bin} is not an executable (cargo build --release -p cargo-dbsafe)")
    if not shutil.which(a.diesel):
        p.error(f"diesel_cli not found ({a.diesel}); see bench/drift.sh for the install command")

    work = Path(tempfile.mkdtemp(prefix="dbsafe-drift-"))
    logs = work / "logs"
    logs.mkdir()
    mdir = gen_migrations.generate(work / "project", a.migrations, a.rows)
    project = mdir.parent
    live = f"{DB_PREFIX}{os.getpid()}_live"
    fresh = f"{DB_PREFIX}{os.getpid()}_diesel"
    live_url = with_database(a.pg_url, live)
    print(f"drift bench: {a.migrations} migrations in {mdir}", flush=True)
    print(f"drift bench: server {masked(a.pg_url)}, {a.warmup} warm-up + {a.rounds} rounds", flush=True)
    print(f"drift bench: server version {psql(a.pg_url, 'show server_version')}", flush=True)
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    print(f"drift bench: load average {load:.2f} on {cpus} CPUs", flush=True)
    if load > cpus / 2:
        print("drift bench: warning: the machine is busy; wall-clock figures will be noisy",
              file=sys.stderr, flush=True)

    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    diesel_cmd = [a.diesel, "migration", "run", "--migration-dir", str(mdir), "--database-url"]
    verify_env = dict(env, DATABASE_URL=live_url)
    verify_cmd = [dbverify_bin, "dbverify", "--only", "drift", "--message-format", "json",
                  "--target", "bench", "--config", str(project / "dbsafe.toml")]

    def time_dbverify(label: str) -> tuple[float, int]:
        secs, out = run_timed(verify_cmd, verify_env, project, logs / f"{label}-dbverify.log")
        result = drift_result(out)
        if result["status"] != "pass":
            raise BenchError(f"drift did not pass: {result}")
        return secs, int(result["duration_ms"])

    def time_diesel(label: str) -> float:
        drop_db(a.pg_url, fresh)
        psql(a.pg_url, f'CREATE DATABASE "{fresh}"')
        try:
            url = with_database(a.pg_url, fresh)
            secs, _ = run_timed(diesel_cmd + [url], env, project, logs / f"{label}-diesel.log")
            applied = int(psql(url, "SELECT count(*) FROM __diesel_schema_migrations"))
            if applied != a.migrations:
                raise BenchError(f"diesel: {applied} migrations recorded, expected {a.migrations}")
        finally:
            drop_db(a.pg_url, fresh)
        return secs

    results: list[dict[str, float]] = []
    status = 0
    failed = False
    try:
        drop_db(a.pg_url, live)
        psql(a.pg_url, f'CREATE DATABASE "{live}"')
        start = time.perf_counter()
        run_timed(diesel_cmd + [live_url], env, project, logs / "live-diesel.log")
        print(f"drift bench: applied the migrations to {live} in {time.perf_counter() - start:.3f}s",
              flush=True)

        for r in range(a.warmup + a.rounds):
            order = ["dbverify", "diesel"] if r % 2 == 0 else ["diesel", "dbverify"]
            label = f"warmup{r + 1}" if r < a.warmup else f"round{r - a.warmup + 1}"
            times: dict[str, float] = {}
            for tool in order:
                if tool == "dbverify":
                    times["dbverify"], times["check_ms"] = time_dbverify(label)
                else:
                    times["diesel"] = time_diesel(label)
            note = "  (warm-up, not counted)" if r < a.warmup else ""
            print(
                f"{label:>8}: dbverify {times['dbverify']:7.3f}s (drift check {times['check_ms'] / 1000:.3f}s)"
                f"  diesel {times['diesel']:7.3f}s  ratio {times['dbverify'] / times['diesel']:.3f}"
                f"  order {'>'.join(order)}{note}",
                flush=True,
            )
            if r >= a.warmup:
                results.append(times)

        left = leftovers(a.pg_url, live)
        if left:
            raise BenchError(f"shadow databases left behind: {left}")

        if a.profile:
            profile(a, project, logs, live, live_url, verify_cmd, verify_env, env)
    except BenchError as e:
        failed = True
        print(f"drift bench: error: {e}", file=sys.stderr)
        print(f"drift bench: logs kept in {work}", file=sys.stderr)
        return 2
    finally:
        drop_db(a.pg_url, live)
        drop_db(a.pg_url, fresh)
        for name in leftovers(a.pg_url, live):
            drop_db(a.pg_url, name)
        if not failed and not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    med_verify = statistics.median(t["dbverify"] for t in results)
    med_diesel = statistics.median(t["diesel"] for t in results)
    ratio = statistics.median(t["dbverify"] / t["diesel"] for t in results)
    print(f"median dbverify --only drift:   {med_verify:.3f}s"
          f"  (the check itself {statistics.median(t['check_ms'] for t in results) / 1000:.3f}s)")
    print(f"median diesel migration run:    {med_diesel:.3f}s")
    print(f"median ratio dbverify/diesel:   {ratio:.3f}  (goal: at most 1.5)")
    if a.max_ratio is not None and ratio > a.max_ratio:
        print(f"drift bench: ratio {ratio:.3f} is over --max-ratio {a.max_ratio}", file=sys.stderr)
        status = 1
    if a.keep:
        print(f"drift bench: kept {work}")
    return status


def profile(a, project: Path, logs: Path, live: str, live_url: str, verify_cmd: list[str],
            verify_env: dict[str, str], env: dict[str, str]) -> None:
    """Times the parts of a drift check once each (see the module's doc)."""
    print("profile:", flush=True)
    scratch = f"{DB_PREFIX}{os.getpid()}_empty"
    start = time.perf_counter()
    psql(a.pg_url, f'CREATE DATABASE "{scratch}"')
    drop_db(a.pg_url, scratch)
    print(f"  create + drop an empty database (psql):        {time.perf_counter() - start:.3f}s",
          flush=True)
    if a.dbsafe:
        cmd = [str(Path(a.dbsafe).resolve()), "dbsafe", "fingerprint", "--message-format", "json",
               "--target", "bench", "--config", str(project / "dbsafe.toml")]
        secs, _ = run_timed(cmd, verify_env, project, logs / "profile-fingerprint.log")
        print(f"  cargo dbsafe fingerprint of the live database:  {secs:.3f}s "
              "(schema and every table's data)", flush=True)
    # One object changed by hand: the check then walks every migration on a second shadow.
    psql(live_url, "CREATE INDEX drift_bench_extra_idx ON bench_t000 (qty)")
    start = time.perf_counter()
    r = subprocess.run(verify_cmd, env=verify_env, cwd=project, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    secs = time.perf_counter() - start
    (logs / "profile-drifted.log").write_text(r.stdout + r.stderr)
    if r.returncode != 1:
        raise BenchError(f"drift on a changed schema exited {r.returncode}, expected 1:\n{r.stdout}{r.stderr}")
    verdict = drift_result(r.stdout)["details"][-1]
    print(f"  drift with one index added (walks all {a.migrations}): {secs:.3f}s: {verdict}", flush=True)
    psql(live_url, "DROP INDEX drift_bench_extra_idx")


if __name__ == "__main__":
    sys.exit(main())
