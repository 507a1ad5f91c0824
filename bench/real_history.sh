#!/usr/bin/env bash
# bench/real_history.sh — benchmark: dbsafe on a "real" diesel history that has shipped.
#
# Generates the history of tests/src/real_history.rs (the `real-history` binary of the
# dbsafe-tests crate: 300 migrations plus diesel's setup migration, directory names with
# spaces, unicode, `#` and quotes, a README.md and loose .sql files, empty, comment-only
# and failing down.sql, CONCURRENTLY in a transactional down.sql, hundreds of lint
# findings), adopts dbsafe on it (`cargo dbsafe check --update-lock`), then times, in one
# run and alternating which goes first:
#   1. pre-commit   cargo-dbsafe dbsafe check -q          (layout, dbsafe.lock, lint of what
#                                                          the lock does not record: nothing)
#                   against squawk migrations/*/up.sql     (squawk 2.68's CLI, every up.sql)
#                   and, for reference, check --all -q     (lint of the whole history)
#   2. round trip   cargo-dbsafe dbsafe check --roundtrip --all -q  (every migration applied,
#                   reverted, compared and applied again on a shadow database; finds the
#                   broken down.sql and exits 1)
#                   against one `diesel migration run` of the history on an empty database.
# Prints each round, the medians and the ratios dbsafe/reference. There is no goal to
# miss: the figures go to bench/README.md.
#
# Before timing it:
#   - makes sure PostgreSQL answers (scripts/ensure-services.sh; skipped with
#     DBSAFE_SKIP_ENSURE=1, or when DBSAFE_BENCH_PG_URL names another server);
#   - installs squawk 2.68.0 and diesel_cli 2.3 when missing, as bench/check.sh and
#     bench/drift.sh do;
#   - builds: cargo build --release --locked -p cargo-dbsafe -p dbsafe-tests --bin cargo-dbsafe --bin real-history
#
# Usage: bench/real_history.sh [--rounds N] [--roundtrip-rounds N] [--migrations N] [--keep]
#   --rounds N            measured rounds of the pre-commit comparison (default 15)
#   --roundtrip-rounds N  measured rounds of the round-trip comparison (default 3)
#   --migrations N        migrations to generate, at least 200 (default 300)
#   --keep                keep the generated project
# Environment: DBSAFE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres; the
# database in it is only used to CREATE/DROP the benchmark's databases).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '==> %s\n' "$*" >&2; }

rounds=15
roundtrip_rounds=3
migrations=300
keep=false
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --roundtrip-rounds) roundtrip_rounds=$2; shift 2 ;;
    --migrations) migrations=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    *)
        echo "bench/real_history.sh: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
done

command -v python3 >/dev/null || {
    echo "bench/real_history.sh: python3 is needed (apt-get install python3)" >&2
    exit 1
}

if [[ -z ${DBSAFE_BENCH_PG_URL:-} && ${DBSAFE_SKIP_ENSURE:-0} != 1 ]]; then
    step "scripts/ensure-services.sh"
    scripts/ensure-services.sh </dev/null
fi

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! squawk --version 2>/dev/null | grep -q '2\.68\.0'; then
    step "squawk 2.68.0 not found: cargo install squawk --version 2.68.0 --locked"
    cargo install squawk --version 2.68.0 --locked
fi
if ! command -v diesel >/dev/null; then
    step "diesel_cli not found: cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked"
    cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked
fi
step "$(squawk --version), $(diesel --version | tr -s "\n " " ")"

step "cargo build --release --locked -p cargo-dbsafe -p dbsafe-tests --bin cargo-dbsafe --bin real-history"
cargo build --release --locked -p cargo-dbsafe -p dbsafe-tests --bin cargo-dbsafe --bin real-history
release="${CARGO_TARGET_DIR:-$root/target}/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/dbsafe-real-history.XXXXXX")
if $keep; then
    step "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
"$release/real-history" "$work/project" "$migrations" >&2

PYTHONDONTWRITEBYTECODE=1 exec python3 - "$work/project" "$release/cargo-dbsafe" \
    "$(command -v squawk)" "$(command -v diesel)" "$rounds" "$roundtrip_rounds" \
    "${DBSAFE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}" <<'EOF'
import glob, os, statistics, subprocess, sys, time

project, dbsafe, squawk, diesel, rounds, rt_rounds, admin_url = sys.argv[1:]
rounds, rt_rounds = int(rounds), int(rt_rounds)
server = admin_url.rsplit("/", 1)[0]
env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
mdir = os.path.join(project, "migrations")
up_files = sorted(glob.glob(os.path.join(mdir, "*", "up.sql")))


def run(cmd, ok=(0,), cwd=project):
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode not in ok:
        sys.exit(f"{cmd[0]} {cmd[1:3]} failed (exit {done.returncode}): "
                 f"{done.stdout.decode()[-300:]}{done.stderr.decode()[-700:]}")
    return elapsed, done


def psql(sql):
    subprocess.run(["psql", admin_url, "-qc", sql], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def config(url):
    with open(os.path.join(project, "dbsafe.toml"), "w") as f:
        f.write(f'[targets.bench]\nurl = "{url}"\nenvironment = "development"\n')


config(f"{server}/dbsafe_rh_unused")
_, adopt = run([dbsafe, "dbsafe", "check", "--update-lock", "--message-format", "json"], ok=(0, 1))
print(f"{len(up_files)} migrations, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
print(f"adoption: check --update-lock recorded them in dbsafe.lock "
      f"({adopt.stdout.decode().count('check.finding')} findings on the unrecorded history)")

# 1. pre-commit: check (history recorded) against squawk on every up.sql.
tools = {
    "check": ([dbsafe, "dbsafe", "check", "-q"], (0,)),
    "squawk": ([squawk] + up_files, (0, 1)),
    "check --all": ([dbsafe, "dbsafe", "check", "-q", "--all"], (1,)),
}
times = {name: [] for name in tools}
for r in range(rounds + 1):
    order = list(tools) if r % 2 == 0 else list(reversed(tools))
    measured = {name: run(tools[name][0], ok=tools[name][1])[0] * 1000 for name in order}
    if r == 0:
        continue  # warm-up
    for name, ms in measured.items():
        times[name].append(ms)
    print(f"round {r:2}: " + "   ".join(f"{n} {measured[n]:7.1f} ms" for n in tools))
med = {name: statistics.median(t) for name, t in times.items()}
for name, t in times.items():
    print(f"{name}: median {med[name]:.1f} ms, min {min(t):.1f} ms")
print(f"ratio check/squawk (medians): {med['check'] / med['squawk']:.2f}")
print(f"ratio check --all/squawk (medians): {med['check --all'] / med['squawk']:.2f}")

# 2. round trip of every migration against one diesel migration run.
rt = []
for r in range(rt_rounds):
    target, fresh = f"dbsafe_rh_target_{os.getpid()}_{r}", f"dbsafe_rh_diesel_{os.getpid()}_{r}"
    psql(f"CREATE DATABASE {target}")
    psql(f"CREATE DATABASE {fresh}")
    try:
        config(f"{server}/{target}")
        cmds = {
            "roundtrip": lambda: run([dbsafe, "dbsafe", "check", "-q", "--roundtrip", "--all"],
                                     ok=(1,))[0],
            "diesel": lambda: run([diesel, "migration", "run", "--migration-dir", mdir,
                                   "--database-url", f"{server}/{fresh}"])[0],
        }
        order = ["roundtrip", "diesel"] if r % 2 == 0 else ["diesel", "roundtrip"]
        measured = {name: cmds[name]() for name in order}
    finally:
        psql(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
        psql(f"DROP DATABASE IF EXISTS {fresh} WITH (FORCE)")
    rt.append(measured)
    print(f"round {r + 1}: check --roundtrip --all {measured['roundtrip']:7.2f} s   "
          f"diesel migration run {measured['diesel']:6.2f} s   "
          f"ratio {measured['roundtrip'] / measured['diesel']:.2f}")
m_rt = statistics.median(x["roundtrip"] for x in rt)
m_d = statistics.median(x["diesel"] for x in rt)
print(f"check --roundtrip --all: median {m_rt:.2f} s; diesel migration run: median {m_d:.2f} s; "
      f"ratio {m_rt / m_d:.2f}")
left = subprocess.run(["psql", admin_url, "-Atc",
                       "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbsafe_rh%'"],
                      env=env, stdout=subprocess.PIPE).stdout.decode().strip()
print(f"shadow databases left on the server: {left}")
EOF
