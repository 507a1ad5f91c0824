#!/usr/bin/env bash
# scripts/test.sh — THE test command: build dbsafe and run its whole test suite.
#
# 1. scripts/ensure-services.sh: installs missing packages, starts PostgreSQL (127.0.0.1:5432)
#    and MariaDB (127.0.0.1:3306) when they are not answering (see that script; it honours
#    DBSAFE_TEST_PG_URL / DBSAFE_TEST_MYSQL_URL). Then scripts/ensure-pgbouncer.sh (a PgBouncer
#    in transaction mode in front of PostgreSQL, for tests/tests/pgbouncer.rs),
#    scripts/ensure-chromium.sh (a headless Chromium, for the HTML run report's test) and
#    scripts/ensure-second-postgres.sh (a second PostgreSQL cluster on 127.0.0.1:5433 for
#    the fleet tests, DBSAFE_TEST_PG2_URL). Skip all four with DBSAFE_SKIP_ENSURE=1.
#    Then scripts/ensure-sqlx-cli.sh (sqlx-cli, built once into ~/.cache/dbsafe/sqlx-cli, for
#    tests/tests/layouts.rs).
# 2. cargo build --workspace --locked: the integration tests in tests/ run the built binaries
#    from target/debug, so they must exist first.
# 3. cargo nextest run --workspace --locked --no-fail-fast [ARGS...] (cargo test --workspace
#    when cargo-nextest is not installed).
#
# Usage: scripts/test.sh [NEXTEST_ARGS...]   e.g. scripts/test.sh -E 'test(apply)'
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ ${DBSAFE_SKIP_ENSURE:-0} != 1 ]]; then
    step "scripts/ensure-services.sh"
    scripts/ensure-services.sh
    step "scripts/ensure-pgbouncer.sh, scripts/ensure-chromium.sh, scripts/ensure-second-postgres.sh"
    scripts/ensure-pgbouncer.sh
    scripts/ensure-chromium.sh
    scripts/ensure-second-postgres.sh
fi
pg_versions=$(scripts/ensure-pg-versions.sh --stop-after $$) # PostgreSQL 16 and 18 for tests/tests/pg_versions.rs
eval "$pg_versions"
# sqlx-cli 0.8 for tests/tests/layouts.rs (dbsafe and sqlx side by side); built once into a cache.
if sqlx_cli=$(scripts/ensure-sqlx-cli.sh); then
    eval "$sqlx_cli"
    export DBSAFE_REQUIRE_SQLX=1
else
    step "warning: sqlx-cli could not be installed: layouts.rs skips its side-by-side checks"
fi

step "cargo build --workspace --locked"
cargo build --workspace --locked

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace --locked --no-fail-fast $*"
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    step "cargo-nextest not installed: cargo test --workspace --locked --no-fail-fast $*"
    cargo test --workspace --locked --no-fail-fast "$@"
fi
