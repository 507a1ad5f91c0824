#!/usr/bin/env bash
# bench/drift.sh — benchmark: `cargo dbverify --only drift` against `diesel migration run`.
#
# Generates 300 migrations (bench/gen_migrations.py: CREATE TABLE, INSERT, ALTER TABLE ADD
# COLUMN, CREATE INDEX), applies them once to a fresh PostgreSQL database with diesel, then
# alternates, 1 warm-up + 5 rounds: the drift check on that database (a shadow database
# built from the 300 applied migrations with diesel's harness, fingerprinted and diffed
# with the live schema) and `diesel migration run` of the same migrations on a fresh empty
# database. Prints each round's times and the median ratio dbverify/diesel (goal: at most
# 1.5), and checks that no shadow database is left on the server.
#
# Before timing anything it:
#   - makes sure PostgreSQL answers (scripts/ensure-services.sh; skipped with
#     DBSAFE_SKIP_ENSURE=1, or when DBSAFE_BENCH_PG_URL names another server);
#   - installs diesel_cli when `diesel` is not on PATH:
#       cargo install diesel_cli --version '~2.3' --no-default-features --features postgres --locked
#   - builds the binaries: cargo build --release --locked -p cargo-dbsafe
#     (cargo-dbsafe only serves --profile's fingerprint timing).
#
# Usage: bench/drift.sh [OPTIONS]   (options go to bench/drift_bench.py; see --help)
#   --rounds R        measured rounds (default 5)
#   --migrations N    migrations to generate (default 300)
#   --warmup W        uncounted warm-up rounds (default 1)
#   --max-ratio X     exit 1 when the median ratio is above X (e.g. 1.5)
#   --profile         also time the parts: empty database create/drop, a fingerprint, and
#                     a drift check that has to walk every migration for the best version
#   --keep            keep the generated project and logs
# Environment: DBSAFE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres; the
# database in it is only used to CREATE/DROP the benchmark's databases).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '==> %s\n' "$*" >&2; }

for arg in "$@"; do
    case $arg in
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exec python3 bench/drift_bench.py --help
        ;;
    esac
done

command -v python3 >/dev/null || {
    echo "bench/drift.sh: python3 is needed (apt-get install python3)" >&2
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

release="${CARGO_TARGET_DIR:-$root/target}/release"
step "cargo build --release --locked -p cargo-dbsafe"
cargo build --release --locked -p cargo-dbsafe

exec python3 bench/drift_bench.py --dbverify "$release/cargo-dbverify" --dbsafe "$release/cargo-dbsafe" \
    --diesel "$(command -v diesel)" "$@"
