#!/usr/bin/env bash
# scripts/ensure-sqlx-cli.sh — make sure sqlx-cli 0.8 (the `sqlx` program) is installed, for
# tests/tests/layouts.rs, which checks that dbsafe and the real sqlx tooling agree on the same
# database. Called by scripts/test.sh; installs only once.
#
# Installs into $DBSAFE_SQLX_CLI_DIR (default ~/.cache/dbsafe/sqlx-cli) with
# `cargo install sqlx-cli --version '~0.8' --no-default-features
#  --features rustls,postgres,sqlite,mysql --locked --root DIR` (a few minutes on 2 cores),
# quietly, and prints `export DBSAFE_TEST_SQLX=DIR/bin/sqlx` for the caller to eval.
# When DBSAFE_TEST_SQLX is already set and runs, it only prints it back.
set -euo pipefail

SCRIPT_NAME=ensure-sqlx-cli
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DIR=${DBSAFE_SQLX_CLI_DIR:-${HOME}/.cache/dbsafe/sqlx-cli}

if [[ -n ${DBSAFE_TEST_SQLX:-} ]] && "$DBSAFE_TEST_SQLX" --version >/dev/null 2>&1; then
    printf 'export DBSAFE_TEST_SQLX=%q\n' "$DBSAFE_TEST_SQLX"
    exit 0
fi
BIN="$DIR/bin/sqlx"
if ! "$BIN" --version >/dev/null 2>&1; then
    log "installing sqlx-cli 0.8 into $DIR (once; a few minutes)"
    mkdir -p "$DIR"
    if ! cargo install sqlx-cli --version '~0.8' --no-default-features \
        --features rustls,postgres,sqlite,mysql --locked --root "$DIR" --quiet \
        >"$DIR/install.log" 2>&1; then
        log "cargo install sqlx-cli failed; see $DIR/install.log"
        tail -20 "$DIR/install.log" >&2
        exit 1
    fi
fi
printf 'export DBSAFE_TEST_SQLX=%q\n' "$BIN"
