#!/usr/bin/env bash
# bench/apply.sh — benchmark: `cargo dbsafe apply` (no snapshot) against `diesel migration run`.
#
# Applies the same 300 generated migrations (CREATE TABLE, INSERT, ALTER TABLE ADD COLUMN,
# CREATE INDEX) on the same PostgreSQL server, each tool on a fresh database, alternating
# which goes first, 1 warm-up + 5 rounds, and prints each round's times and the median
# ratio dbsafe/diesel (goal: at most 1.15).
#
# Before timing anything it:
#   - makes sure PostgreSQL answers (scripts/ensure-services.sh; skipped with
#     DBSAFE_SKIP_ENSURE=1, or when DBSAFE_BENCH_PG_URL names another server);
#   - installs diesel_cli when `diesel` is not on PATH:
#       cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked
#   - builds the dbsafe binary: cargo build --release --locked -p cargo-dbsafe
#
# Usage: bench/apply.sh [OPTIONS]   (options go to bench/run_bench.py; see --help)
#   --rounds R        measured rounds (default 5)
#   --migrations N    migrations to generate (default 300)
#   --warmup W        uncounted warm-up rounds (default 1)
#   --max-ratio X     exit 1 when the median ratio is above X (e.g. 1.15)
#   --diesel-only     time diesel alone (no dbsafe build)
#   --keep            keep the generated project and logs
# Environment: DBSAFE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres; the
# database in it is only used to CREATE/DROP the benchmark's databases).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '==> %s\n' "$*" >&2; }

diesel_only=false
for arg in "$@"; do
    case $arg in
    --diesel-only) diesel_only=true ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exec python3 bench/run_bench.py --help
        ;;
    esac
done

command -v python3 >/dev/null || {
    echo "bench/apply.sh: python3 is needed (apt-get install python3)" >&2
    exit 1
}

if [[ -z ${DBSAFE_BENCH_PG_URL:-} && ${DBSAFE_SKIP_ENSURE:-0} != 1 ]]; then
    step "scripts/ensure-services.sh"
    scripts/ensure-services.sh </dev/null
fi

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v diesel >/dev/null; then
    step "diesel_cli not found: cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked"
    cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked
fi
step "$(diesel --version | tr -s "\n " " ")"

dbsafe_bin="${CARGO_TARGET_DIR:-$root/target}/release/cargo-dbsafe"
if ! $diesel_only; then
    step "cargo build --release --locked -p cargo-dbsafe"
    cargo build --release --locked -p cargo-dbsafe
fi

exec python3 bench/run_bench.py --dbsafe "$dbsafe_bin" --diesel "$(command -v diesel)" "$@"
