#!/usr/bin/env bash
# scripts/ensure-pgbouncer.sh — make sure a PgBouncer in *transaction* pooling mode answers
# in front of the test PostgreSQL, for tests/tests/pgbouncer.rs. Called by scripts/test.sh.
#
#   1. installs the Debian package `pgbouncer` (apt-get, non-interactive, quiet) when the
#      `pgbouncer` program is missing;
#   2. starts our own pgbouncer (not the Debian service) as an unprivileged user (`postgres`
#      when run as root, else the current user) on 127.0.0.1:$DBSAFE_PGBOUNCER_PORT
#      (default 6433), pool_mode = transaction, every database name forwarded to the test
#      server (`* =`), auth_type = trust (the local test server trusts user postgres on
#      loopback); files (ini, userlist, log, pid) in $DBSAFE_PGBOUNCER_DIR (default
#      /tmp/dbsafe-pgbouncer);
#   3. waits until it answers a query, and fails with a clear message otherwise.
#
# Tests find it through DBSAFE_TEST_PGBOUNCER_URL (default postgres://postgres@127.0.0.1:6433).
# When that variable is set, this script only checks that it answers (it manages nothing);
# with another DBSAFE_PGBOUNCER_PORT, point DBSAFE_TEST_PGBOUNCER_URL at it for the tests.
# The server behind it is DBSAFE_TEST_PG_URL's host and port (default 127.0.0.1:5432).
#
# Usage: scripts/ensure-pgbouncer.sh [--stop]
#   --stop  stop the pgbouncer this script started
set -euo pipefail

SCRIPT_NAME=ensure-pgbouncer
ROOT_HINT="install pgbouncer yourself"
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT=${DBSAFE_PGBOUNCER_PORT:-6433}
DIR=${DBSAFE_PGBOUNCER_DIR:-/tmp/dbsafe-pgbouncer}
WAIT_SECS=${DBSAFE_SERVICES_WAIT:-60}

pgbouncer_bin() {
    if have pgbouncer; then command -v pgbouncer; elif [[ -x /usr/sbin/pgbouncer ]]; then echo /usr/sbin/pgbouncer; fi
}

answers() { psql -X -w "$1" -Atqc 'select 1' </dev/null >/dev/null 2>&1; }

if [[ ${1:-} == --stop ]]; then
    if [[ -f $DIR/pgbouncer.pid ]]; then
        kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null || true
        log "stopped pgbouncer (pid file $DIR/pgbouncer.pid)"
    fi
    exit 0
fi

if [[ -n ${DBSAFE_TEST_PGBOUNCER_URL:-} ]]; then
    shown=$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$DBSAFE_TEST_PGBOUNCER_URL")
    answers "${DBSAFE_TEST_PGBOUNCER_URL%/}/postgres" ||
        die "the PgBouncer at DBSAFE_TEST_PGBOUNCER_URL=$shown does not answer 'select 1' on database postgres"
    log "using DBSAFE_TEST_PGBOUNCER_URL=$shown (not managed here)"
    exit 0
fi

url="postgres://postgres@127.0.0.1:$PORT/postgres"
# The pool mode, from PgBouncer's admin console (empty when that is not a PgBouncer).
pool_mode() {
    psql -X -w "postgres://postgres@127.0.0.1:$PORT/pgbouncer" -Atc 'SHOW CONFIG' </dev/null 2>/dev/null |
        awk -F'|' '$1 == "pool_mode" { print $2 }'
}
if answers "$url"; then
    mode=$(pool_mode || true)
    [[ $mode == transaction ]] ||
        die "something answers on 127.0.0.1:$PORT but it is not a PgBouncer in transaction mode (pool_mode: ${mode:-unknown}); stop it or set DBSAFE_PGBOUNCER_PORT"
    log "PgBouncer answers on 127.0.0.1:$PORT (pool_mode transaction)"
    exit 0
fi

# 1. The package.
if [[ -z $(pgbouncer_bin) ]]; then
    have apt-get || die "pgbouncer is not installed and there is no apt-get to install it: install PgBouncer (1.18 or newer) yourself"
    log "installing the Debian package pgbouncer"
    apt_install pgbouncer
fi
bin=$(pgbouncer_bin)
[[ -n $bin ]] || die "pgbouncer is still not on PATH after installing it"

# 2. Our own instance, unprivileged.
server_host=127.0.0.1 server_port=5432
if [[ -n ${DBSAFE_TEST_PG_URL:-} && $DBSAFE_TEST_PG_URL =~ ^postgres(ql)?://([^@/]*@)?([^:/?]+)(:([0-9]+))? ]]; then
    server_host=${BASH_REMATCH[3]} server_port=${BASH_REMATCH[5]:-5432}
fi
run_as=()
owner=$(id -un)
if [[ $EUID -eq 0 ]]; then
    owner=postgres
    id -u "$owner" >/dev/null 2>&1 || owner=nobody
    run_as=(runuser -u "$owner" --)
fi
mkdir -p "$DIR"
cat >"$DIR/pgbouncer.ini" <<INI
;; written by dbsafe scripts/ensure-pgbouncer.sh: a test pooler in transaction mode
[databases]
* = host=$server_host port=$server_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 10
max_client_conn = 500
server_reset_query =
server_idle_timeout = 10
ignore_startup_parameters = extra_float_digits,options
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
printf '"postgres" ""\n' >"$DIR/userlist.txt"
chown -R "$owner" "$DIR" 2>/dev/null || true
rm -f "$DIR/pgbouncer.pid"
log "starting $bin as $owner on 127.0.0.1:$PORT (transaction pooling in front of $server_host:$server_port; log $DIR/pgbouncer.log)"
"${run_as[@]}" "$bin" -d -q "$DIR/pgbouncer.ini" </dev/null >/dev/null 2>&1 ||
    die "pgbouncer did not start; see $DIR/pgbouncer.log"

# 3. Wait until it answers.
deadline=$((SECONDS + WAIT_SECS))
until answers "$url"; do
    ((SECONDS < deadline)) || die "PgBouncer did not answer on 127.0.0.1:$PORT within ${WAIT_SECS}s; see $DIR/pgbouncer.log"
    sleep 0.5
done
log "PgBouncer ready at postgres://postgres@127.0.0.1:$PORT (pool_mode transaction)"
