#!/usr/bin/env bash
# bench/restore.sh — benchmark: `cargo dbrollback RUN --restore` (level 2) against a bare
# `pg_restore` of the same dump into an empty database, on a generated PostgreSQL database
# of about 1 GB.
#
# Each round applies a small migration with `[apply] snapshot = "always"` (run RUN, whose
# pre-run snapshot is the dump), then, in alternating order: `cargo-dbrollback dbrollback RUN
# --restore --yes --message-format json` and `createdb` + `pg_restore --jobs J` of RUN's
# dump file (J = the parallelism dbsafe's restore uses; also once with the default one job,
# for context). Goal: the restore itself (the `rollback.restore` event's duration_ms) at most
# 1.05x the bare restore; the safety snapshot (`snapshot.created`) is reported separately.
# See bench/README.md for how to read the output.
#
# Before timing anything it makes sure PostgreSQL answers (scripts/ensure-services.sh;
# skipped with DBSAFE_SKIP_ENSURE=1 or when DBSAFE_BENCH_PG_URL names another server) and
# builds dbsafe: cargo build --release --locked -p cargo-dbsafe
#
# Usage: bench/restore.sh [OPTIONS]   (options go to bench/restore_bench.py; see --help)
#   --size-mb MB      table data to generate (default 1024)
#   --rounds R        measured rounds (default 3)
#   --no-j1           skip the one-job bare pg_restore
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
        exec python3 bench/restore_bench.py --help
        ;;
    esac
done

command -v python3 >/dev/null || {
    echo "bench/restore.sh: python3 is needed (apt-get install python3)" >&2
    exit 1
}

if [[ -z ${DBSAFE_BENCH_PG_URL:-} && ${DBSAFE_SKIP_ENSURE:-0} != 1 ]]; then
    step "scripts/ensure-services.sh"
    scripts/ensure-services.sh </dev/null
fi

step "cargo build --release --locked -p cargo-dbsafe"
cargo build --release --locked -p cargo-dbsafe

exec python3 bench/restore_bench.py --bin-dir "${CARGO_TARGET_DIR:-$root/target}/release" "$@"
