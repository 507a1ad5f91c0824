#!/usr/bin/env bash
# bench/check.sh — benchmark: `cargo dbsafe check` (offline) against the `squawk` linter.
#
# Generates 300 migrations (bench/gen_migrations.py: CREATE TABLE, INSERT of 100 rows, ALTER
# TABLE ADD COLUMN, CREATE INDEX, each with a down.sql), records them in dbsafe.lock, then
# times, in one run and alternating which goes first:
#   dbsafe  cargo-dbsafe dbsafe check -q --all (layout of 600 files, dbsafe.lock, dbsafe's
#                                              rules on up.sql and down.sql, squawk's rules
#                                              on up.sql through the squawk-linter crate)
#   squawk  squawk migrations/*/up.sql         (squawk 2.68's own CLI on the same up.sql
#                                              files, its default rules)
# Both find problems in these migrations and exit 1: only the wall time counts. No database
# is needed, and none is touched.
#
# Prints each round, the median and minimum of each tool and the ratio of the medians, then
# checks the goal: dbsafe's median at most 300 ms and at most 1.5x squawk's (exit 1 when
# missed, unless --no-goal).
#
# Before timing it:
#   - builds the dbsafe binary: cargo build --release --locked -p cargo-dbsafe;
#   - installs squawk 2.68.0 when `squawk` is missing or another version (the newest that
#     builds on Rust 1.95): cargo install squawk --version 2.68.0 --locked
#
# Usage: bench/check.sh [--rounds N] [--migrations N] [--warmup N] [--keep] [--no-goal]
#   --rounds N       measured rounds (default 15)
#   --migrations N   migrations to generate (default 300)
#   --warmup N       uncounted warm-up rounds (default 2)
#   --keep           keep the generated project
#   --no-goal        report only; exit 0 even when the goal is missed
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '==> %s\n' "$*" >&2; }

rounds=15
migrations=300
warmup=2
keep=false
goal=true
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --migrations) migrations=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    --no-goal) goal=false; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    *)
        echo "bench/check.sh: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
done

command -v python3 >/dev/null || {
    echo "bench/check.sh: python3 is needed (apt-get install python3)" >&2
    exit 1
}

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! squawk --version 2>/dev/null | grep -q '2\.68\.0'; then
    step "squawk 2.68.0 not found: cargo install squawk --version 2.68.0 --locked"
    cargo install squawk --version 2.68.0 --locked
fi
step "$(squawk --version)"

step "cargo build --release --locked -p cargo-dbsafe"
cargo build --release --locked -p cargo-dbsafe
dbsafe_bin="${CARGO_TARGET_DIR:-$root/target}/release/cargo-dbsafe"

work=$(mktemp -d "${TMPDIR:-/tmp}/dbsafe-check-bench.XXXXXX")
if $keep; then
    step "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
PYTHONDONTWRITEBYTECODE=1 python3 bench/gen_migrations.py "$work/project" --count "$migrations" >&2
(cd "$work/project" && "$dbsafe_bin" dbsafe check --update-lock -q >/dev/null 2>&1 || true)

PYTHONDONTWRITEBYTECODE=1 exec python3 - "$work/project" "$dbsafe_bin" "$(command -v squawk)" \
    "$rounds" "$warmup" "$goal" <<'EOF'
import glob, os, statistics, subprocess, sys, time

project, dbsafe, squawk, rounds, warmup, goal = sys.argv[1:]
rounds, warmup, goal = int(rounds), int(warmup), goal == "true"
up_files = sorted(glob.glob(os.path.join(project, "migrations", "*", "up.sql")))
tools = {
    # --all: lint every migration, like squawk (without it, check lints only what
    # dbsafe.lock does not record: nothing here; bench/real_history.sh times that).
    "dbsafe": [dbsafe, "dbsafe", "check", "-q", "--all"],
    "squawk": [squawk] + up_files,
}
env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


def once(name):
    start = time.perf_counter()
    done = subprocess.run(tools[name], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{name} failed (exit {done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed * 1000


print(f"{len(up_files)} migrations, {warmup} warm-up + {rounds} rounds, "
      f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
times = {"dbsafe": [], "squawk": []}
for round in range(warmup + rounds):
    order = ["dbsafe", "squawk"] if round % 2 == 0 else ["squawk", "dbsafe"]
    measured = {name: once(name) for name in order}
    if round >= warmup:
        for name, ms in measured.items():
            times[name].append(ms)
        print(f"round {round - warmup + 1:2}: dbsafe {measured['dbsafe']:7.1f} ms   "
              f"squawk {measured['squawk']:7.1f} ms")
median = {name: statistics.median(t) for name, t in times.items()}
for name, t in times.items():
    print(f"{name}: median {median[name]:.1f} ms, min {min(t):.1f} ms")
ratio = median["dbsafe"] / median["squawk"]
print(f"ratio dbsafe/squawk (medians): {ratio:.2f}")
ok = median["dbsafe"] <= 300 and ratio <= 1.5
print(f"goal (<= 300 ms and <= 1.5x squawk): {'met' if ok else 'MISSED'}")
sys.exit(0 if ok or not goal else 1)
EOF
