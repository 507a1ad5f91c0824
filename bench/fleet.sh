#!/usr/bin/env bash
# bench/fleet.sh — benchmark: `cargo dbsafe apply --fleet` (concurrency 8) against a shell
# loop of `diesel migration run` over the same 200 databases on two PostgreSQL servers.
#
# 200 databases (100 on 127.0.0.1:5432, 100 on the second server of
# scripts/ensure-second-postgres.sh, 127.0.0.1:5433), 20 generated migrations each
# (bench/gen_migrations.py). Each tool runs once on fresh databases; the script prints
# both wall times, the ratio dbsafe/loop (goal: at most 0.5) and dbsafe's peak memory
# (maximum resident set size, goal: under 64 MB), and checks that every database has all
# 20 migrations in __diesel_schema_migrations (and, for dbsafe, one succeeded run linked
# to the fleet run).
#
# Before timing anything it makes sure both servers answer (skipped with
# DBSAFE_SKIP_ENSURE=1), installs diesel_cli when `diesel` is not on PATH (as
# bench/apply.sh does) and builds dbsafe in release mode.
#
# Usage: bench/fleet.sh [--databases N] [--migrations M] [--concurrency C] [--keep]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '==> %s\n' "$*" >&2; }

case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
esac

if [[ ${DBSAFE_SKIP_ENSURE:-0} != 1 ]]; then
    step "scripts/ensure-services.sh; scripts/ensure-second-postgres.sh"
    scripts/ensure-services.sh </dev/null
    scripts/ensure-second-postgres.sh </dev/null
fi

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v diesel >/dev/null; then
    step "diesel_cli not found: cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked"
    cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked
fi
step "$(diesel --version | tr -s "\n " " ")"

step "cargo build --release --locked -p cargo-dbsafe"
cargo build --release --locked -p cargo-dbsafe

exec python3 bench/fleet_bench.py \
    --dbsafe "${CARGO_TARGET_DIR:-$root/target}/release/cargo-dbsafe" \
    --diesel "$(command -v diesel)" "$@"
