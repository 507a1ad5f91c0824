#!/usr/bin/env bash
# scripts/ensure-second-postgres.sh — a second, throwaway PostgreSQL cluster beside the first,
# for the fleet tests (a fleet spread over two servers; one server stopped mid-run).
#
# Idempotent, quiet, never prompting. initdb into $DBSAFE_PG2_DIR (default
# /tmp/dbsafe-pg2) and start it with pg_ctl on $DBSAFE_PG2_PORT (default 5433), trust auth
# on 127.0.0.1, user postgres. As root, initdb refuses to run: everything runs as the
# `postgres` user through runuser. Does nothing when the port already answers.
# The tests find it through DBSAFE_TEST_PG2_URL (default postgres://postgres@127.0.0.1:5433).
#
# Usage: scripts/ensure-second-postgres.sh [start|stop]
set -euo pipefail
SCRIPT_NAME=ensure-second-postgres ROOT_HINT="start a PostgreSQL server on port ${DBSAFE_PG2_PORT:-5433} yourself"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT=${DBSAFE_PG2_PORT:-5433}
DIR=${DBSAFE_PG2_DIR:-/tmp/dbsafe-pg2}
BIN=${DBSAFE_PG2_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[[ -x $BIN/pg_ctl ]] || die "no PostgreSQL binaries in /usr/lib/postgresql/*/bin (run scripts/ensure-services.sh, or set DBSAFE_PG2_BIN)"

as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
answers() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" </dev/null; }

case ${1:-start} in
-h | --help) usage; exit 0 ;;
start | stop) ;;
*) die "unknown argument $1: use start (the default) or stop" ;;
esac
if [[ ${1:-start} == stop ]]; then
    [[ -f $DIR/postmaster.pid ]] && as_pg "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null </dev/null
    exit 0
fi
answers && exit 0
if [[ ! -f $DIR/PG_VERSION ]]; then
    rm -rf "$DIR"
    mkdir -p "$DIR"
    [[ $(id -u) == 0 ]] && chown postgres: "$DIR"
    chmod 700 "$DIR"
    as_pg "$BIN/initdb" -D "$DIR" -U postgres -A trust --no-sync >/dev/null </dev/null
fi
# A stale pid file from a killed server would stop pg_ctl start.
if [[ -f $DIR/postmaster.pid ]] && ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    rm -f "$DIR/postmaster.pid"
fi
as_pg "$BIN/pg_ctl" -D "$DIR" -w -t 60 -l "$DIR/server.log" \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" \
    start >/dev/null </dev/null
answers || die "the server on port $PORT did not start; see $DIR/server.log"
