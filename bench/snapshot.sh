#!/usr/bin/env bash
# bench/snapshot.sh — benchmark: dbsafe's snapshots and fingerprints against the bare tools
# on a generated PostgreSQL database of about 1 GB.
#
# Side by side in one run, several rounds in rotating order, medians and their ratios:
#   (a) bare `pg_dump -Fc -f FILE DB`  vs  `cargo-dbsafe dbsafe snapshot create --strategy pg-dump`
#       (goal: at most 1.3x, better below 1.0x)
#   (b) `snapshot create --strategy template`  vs  bare pg_dump -Fc   (goal: 10x faster)
#   (c) `cargo-dbsafe dbsafe fingerprint --jobs 2`  vs  `pg_dump --data-only DB | sha256sum`
#       (goal: 2.5x faster) and vs `SELECT count(*)` of every table (goal: within 2x)
#   (d) peak RSS of each command (GNU time; `apt-get install -y time` when missing)
# See bench/README.md for how to read the output.
#
# Before timing anything it makes sure PostgreSQL answers (scripts/ensure-services.sh;
# skipped with DBSAFE_SKIP_ENSURE=1 or when DBSAFE_BENCH_PG_URL names another server) and
# builds dbsafe: cargo build --release --locked -p cargo-dbsafe
#
# Usage: bench/snapshot.sh [OPTIONS]   (options go to bench/snapshot_bench.py; see --help)
#   --size-mb MB      table data to generate (default 1024)
#   --rounds R        measured rounds (default 3)
#   --jobs J          fingerprint --jobs (default 2)
#   --only PART       pg-dump, template or fingerprint (repeatable)
#   --reuse-db        use an existing dbsafe_bench_big as it is; --keep-db keeps it at the end
# Environment: DBSAFE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres; its
# database is only used for CREATE/DROP DATABASE).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '==> %s\n' "$*" >&2; }

for arg in "$@"; do
    case $arg in
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exec python3 bench/snapshot_bench.py --help
        ;;
    esac
done

command -v python3 >/dev/null || {
    echo "bench/snapshot.sh: python3 is needed (apt-get install python3)" >&2
    exit 1
}
[[ -x /usr/bin/time ]] || step "GNU time not found (apt-get install -y time): peak RSS falls back to wait4, which counts the parent's size"

if [[ -z ${DBSAFE_BENCH_PG_URL:-} && ${DBSAFE_SKIP_ENSURE:-0} != 1 ]]; then
    step "scripts/ensure-services.sh"
    scripts/ensure-services.sh </dev/null
fi

step "cargo build --release --locked -p cargo-dbsafe"
cargo build --release --locked -p cargo-dbsafe

exec python3 bench/snapshot_bench.py --dbsafe "${CARGO_TARGET_DIR:-$root/target}/release/cargo-dbsafe" "$@"
