#!/usr/bin/env python3
"""bench/run_bench.py — time `dbsafe apply` against `diesel migration run` on PostgreSQL.

Called by bench/apply.sh (which installs diesel_cli and builds dbsafe first); usable alone.

It generates N migrations (bench/gen_migrations.py) into a temporary directory, then for
each round, alternating which tool goes first, and for each tool: creates a fresh database
(named after this process, the same every round), removes dbsafe's local state (.dbsafe/),
runs the tool once under a wall clock, checks that all N migrations are recorded in
__diesel_schema_migrations (and, for dbsafe, one succeeded run with N applied steps in its
ledger), and drops the database. It prints each round's times and the median of the
per-round ratios dbsafe/diesel.

    diesel migration run --database-url URL --migration-dir DIR
    cargo-dbsafe dbsafe apply --yes --target bench --config DIR/../dbsafe.toml
        (with DATABASE_URL=URL; the config sets environment = "test", snapshot = "never")

Exit status: 0 when done (and, with --max-ratio, when the median ratio is within it);
1 when the ratio is over --max-ratio; 2 when a tool failed or a check did not hold.
Only the Python standard library is used; psql does the database administration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_migrations  # noqa: E402

DB_PREFIX = "dbsafe_bench_"


class BenchError(Exception):
    pass


def masked(url: str) -> str:
    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = u.netloc.replace(f":{u.password}@", ":***@", 1)
    return urlunsplit(u._replace(netloc=netloc))


def with_database(url: str, db: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def psql(admin_url: str, sql: str) -> str:
    r = subprocess.run(
        ["psql", "-X", "-w", "-v", "ON_ERROR_STOP=1", "-Atq", "-d", admin_url, "-c", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise BenchError(f"psql failed on {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def drop_db(admin_url: str, db: str) -> None:
    psql(admin_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    with log.open("w") as out:
        start = time.perf_counter()
        r = subprocess.run(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        elapsed = time.perf_counter() - start
    if r.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise BenchError(f"{cmd[0]} exited with {r.returncode}; last lines of {log}:\n{tail}")
    return elapsed


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
    p.add_argument("--dbsafe", default="target/release/cargo-dbsafe", help="cargo-dbsafe binary")
    p.add_argument("--diesel-only", action="store_true", help="time diesel alone")
    p.add_argument("--max-ratio", type=float, help="exit 1 when the median ratio is above this")
    p.add_argument("--keep", action="store_true", help="keep the generated directory and logs")
    a = p.parse_args()
    if a.migrations < 1 or a.rounds < 1 or a.warmup < 0:
        p.error("--migrations and --rounds must be at least 1, --warmup at least 0")

    # Turn SIGTERM into SystemExit so the `finally` blocks drop the databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tools = ["diesel"] if a.diesel_only else ["diesel", "dbsafe"]
    dbsafe_bin = str(Path(a.dbsafe).resolve())
    if not a.diesel_only and not os.access(dbsafe_bin, os.X_OK):
        p.error(f"{dbsafe_bin} is not an executable (cargo build --release -p cargo-dbsafe)")
    if not shutil.which(a.diesel):
        p.error(f"diesel_cli not found ({a.diesel}); see bench/apply.sh for the install command")

    work = Path(tempfile.mkdtemp(prefix="dbsafe-bench-"))
    logs = work / "logs"
    logs.mkdir()
    mdir = gen_migrations.generate(work / "project", a.migrations, a.rows)
    project = mdir.parent
    print(f"dbsafe bench: {a.migrations} migrations in {mdir}", flush=True)
    print(f"dbsafe bench: server {masked(a.pg_url)}, {a.warmup} warm-up + {a.rounds} rounds", flush=True)
    print(f"dbsafe bench: server version {psql(a.pg_url, 'show server_version')}", flush=True)
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    print(f"dbsafe bench: load average {load:.2f} on {cpus} CPUs", flush=True)
    if load > cpus / 2:
        print("dbsafe bench: warning: the machine is busy; wall-clock figures will be noisy",
              file=sys.stderr, flush=True)

    def one(tool: str, label: str) -> float:
        db = f"{DB_PREFIX}{os.getpid()}_{tool}"
        url = with_database(a.pg_url, db)
        drop_db(a.pg_url, db)
        psql(a.pg_url, f'CREATE DATABASE "{db}"')
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        if tool == "diesel":
            cmd = [a.diesel, "migration", "run", "--database-url", url, "--migration-dir", str(mdir)]
        else:
            shutil.rmtree(project / ".dbsafe", ignore_errors=True)
            env["DATABASE_URL"] = url
            cmd = [dbsafe_bin, "dbsafe", "apply", "--yes", "--target", "bench",
                   "--config", str(project / "dbsafe.toml")]
        try:
            secs = run_timed(cmd, env, project, logs / f"{label}-{tool}.log")
            applied = int(psql(url, "SELECT count(*) FROM __diesel_schema_migrations"))
            if applied != a.migrations:
                raise BenchError(f"{tool}: {applied} migrations recorded, expected {a.migrations}")
            if tool == "dbsafe":
                steps = psql(url, "SELECT count(*) FROM dbsafe_steps WHERE status = 'applied'")
                runs = psql(url, "SELECT status FROM dbsafe_runs")
                if int(steps) != a.migrations or runs != "succeeded":
                    raise BenchError(f"dbsafe ledger: {steps} applied steps, runs {runs!r}")
        finally:
            drop_db(a.pg_url, db)
        return secs

    results: list[dict[str, float]] = []
    failed = False
    try:
        for r in range(a.warmup + a.rounds):
            order = tools if r % 2 == 0 else tools[::-1]
            label = f"warmup{r + 1}" if r < a.warmup else f"round{r - a.warmup + 1}"
            times = {tool: one(tool, label) for tool in order}
            line = "  ".join(f"{tool} {times[tool]:7.3f}s" for tool in tools)
            if not a.diesel_only:
                line += f"  ratio {times['dbsafe'] / times['diesel']:.3f}"
            note = "  (warm-up, not counted)" if r < a.warmup else ""
            print(f"{label:>8}: {line}  order {'>'.join(order)}{note}", flush=True)
            if r >= a.warmup:
                results.append(times)
    except BenchError as e:
        failed = True
        print(f"dbsafe bench: error: {e}", file=sys.stderr)
        print(f"dbsafe bench: logs kept in {work}", file=sys.stderr)
        return 2
    finally:
        if not failed and not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"median diesel migration run: {statistics.median(t['diesel'] for t in results):.3f}s")
    status = 0
    if not a.diesel_only:
        print(f"median dbsafe apply:         {statistics.median(t['dbsafe'] for t in results):.3f}s")
        ratio = statistics.median(t["dbsafe"] / t["diesel"] for t in results)
        print(f"median ratio dbsafe/diesel:  {ratio:.3f}  (goal: at most 1.15)")
        if a.max_ratio is not None and ratio > a.max_ratio:
            print(f"dbsafe bench: ratio {ratio:.3f} is over --max-ratio {a.max_ratio}", file=sys.stderr)
            status = 1
    if a.keep:
        print(f"dbsafe bench: kept {work}")
    return status


if __name__ == "__main__":
    sys.exit(main())
