#!/usr/bin/env python3
"""bench/fleet_bench.py — time `dbsafe apply --fleet` against a shell loop of
`diesel migration run` over the same databases on two PostgreSQL servers.

Called by bench/fleet.sh (which installs diesel_cli and builds dbsafe first). Creates the
databases (`dbsafe_fleetbench_NNN`, alternately on each server), times the loop, drops and
re-creates them, times `cargo-dbsafe dbsafe apply --fleet bench` (its peak memory from
wait4's rusage), checks every database, prints the figures, drops the databases.

Exit status: 0 done; 2 a tool failed or a check did not hold. Standard library only;
psql does the database administration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_migrations  # noqa: E402

PREFIX = "dbsafe_fleetbench_"


def psql(server: str, sql: str) -> str:
    r = subprocess.run(
        ["psql", "-X", "-w", "-v", "ON_ERROR_STOP=1", "-Atq", "-d", f"{server}/postgres", "-c", sql],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    if r.returncode != 0:
        sys.exit(f"psql failed on {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def databases(servers: list[str], count: int) -> list[tuple[str, str]]:
    return [(servers[i % len(servers)], f"{PREFIX}{i:03d}") for i in range(count)]


def recreate(dbs: list[tuple[str, str]]) -> None:
    for server, db in dbs:
        psql(server, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        psql(server, f"CREATE DATABASE {db}")


def drop(dbs: list[tuple[str, str]]) -> None:
    for server, db in dbs:
        psql(server, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB) of one process and its children."""
    with log.open("w") as out:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{cmd[0]} failed (exit {child.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss


def check(dbs: list[tuple[str, str]], migrations: int, fleet_run: str | None) -> None:
    for server, db in dbs:
        url = f"{server}/{db}"
        n = subprocess.run(["psql", "-X", "-Atq", "-d", url, "-c", "SELECT count(*) FROM __diesel_schema_migrations"],
                           capture_output=True, text=True).stdout.strip()
        if n != str(migrations):
            sys.exit(f"{url}: {n!r} migrations recorded, expected {migrations}")
        if fleet_run:
            runs = subprocess.run(["psql", "-X", "-Atq", "-d", url, "-c",
                                   f"SELECT count(*) FROM dbsafe_runs WHERE status = 'succeeded' AND fleet_run = '{fleet_run}'"],
                                  capture_output=True, text=True).stdout.strip()
            if runs != "1":
                sys.exit(f"{url}: no succeeded run of fleet run {fleet_run}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dbsafe", required=True)
    p.add_argument("--diesel", required=True)
    p.add_argument("--databases", type=int, default=200)
    p.add_argument("--migrations", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--keep", action="store_true", help="keep the project, logs and databases")
    a = p.parse_args()
    servers = [
        os.environ.get("DBSAFE_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
        os.environ.get("DBSAFE_BENCH_PG2_URL", "postgres://postgres@127.0.0.1:5433"),
    ]
    work = Path(tempfile.mkdtemp(prefix="dbsafe-fleet-bench-"))
    gen_migrations.generate(work, a.migrations, 20)
    (work / "dbsafe.toml").write_text(
        'migrations-dir = "migrations"\n\n[apply]\nsnapshot = "never"\n\n'
        "[fleets.bench]\n"
        f"servers = [{', '.join(repr(s).replace(chr(39), chr(34)) for s in servers)}]\n"
        f'databases = "{PREFIX}%"\nenvironment = "test"\n'
        f"canary = 1\nconcurrency = {a.concurrency}\nmax-failures = 1\n"
    )
    dbs = databases(servers, a.databases)
    loop = work / "loop.sh"
    loop.write_text(
        "#!/usr/bin/env bash\nset -e\n"
        f"for url in {' '.join(f'{s}/{d}' for s, d in dbs)}; do\n"
        f'    "{a.diesel}" migration run --database-url "$url" --migration-dir migrations\n'
        "done\n"
    )
    loop.chmod(0o755)
    print(f"{a.databases} databases on {len(servers)} servers, {a.migrations} migrations each; work dir {work}", file=sys.stderr)
    try:
        recreate(dbs)
        diesel_s, diesel_kib = timed([str(loop)], work, work / "diesel.log")
        check(dbs, a.migrations, None)
        recreate(dbs)
        cmd = [a.dbsafe, "dbsafe", "apply", "--fleet", "bench", "--message-format", "json"]
        dbsafe_s, dbsafe_kib = timed(cmd, work, work / "dbsafe.log")
        summary = [line for line in (work / "dbsafe.log").read_text().splitlines() if '"fleet.summary"' in line]
        fleet_run = summary[0].split('"fleet_run":"')[1].split('"')[0] if summary else None
        check(dbs, a.migrations, fleet_run)
    finally:
        if not a.keep:
            drop(dbs)
    ratio = dbsafe_s / diesel_s
    print(f"diesel loop          {diesel_s:8.2f} s  (peak memory of one diesel process {diesel_kib / 1024:.1f} MB)")
    print(f"dbsafe apply --fleet {dbsafe_s:8.2f} s  (peak memory {dbsafe_kib / 1024:.1f} MB, concurrency {a.concurrency})")
    print(f"ratio dbsafe/loop    {ratio:8.2f}  (goal: at most 0.50)   peak memory goal: under 64 MB")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
