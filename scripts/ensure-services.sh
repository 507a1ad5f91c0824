#!/usr/bin/env bash
# scripts/ensure-services.sh — make sure everything dbsafe's build and tests need is here.
#
# Idempotent, never prompts, bounded in time. On a machine that already has it all, it is a
# quick no-op. Otherwise, on Debian/Ubuntu (as root, or with passwordless sudo) it:
#   1. installs the missing Debian packages (build: gcc, libc6-dev, pkg-config, libpq-dev,
#      libmariadb-dev, libmariadb-dev-compat; clients: postgresql-client, mariadb-client;
#      servers: postgresql, mariadb-server; sqlite3 as an extra when installing anyway).
#      `apt-get update` runs only when something is missing;
#   2. starts PostgreSQL on 127.0.0.1:5432 when it does not answer (creating a cluster when
#      there is none) and makes user `postgres` able to log in over loopback TCP without a
#      password (a `trust` line in pg_hba.conf, then a reload);
#   3. starts MariaDB on 127.0.0.1:3306 when it does not answer (initialising the data
#      directory when empty) and makes `root` with an empty password work over TCP;
#   4. waits (up to DBSAFE_SERVICES_WAIT seconds, default 60) until both answer a query,
#      and fails with a clear message otherwise.
#
# Environment:
#   DBSAFE_TEST_PG_URL     use this PostgreSQL instead (not installed/started/changed here;
#                          only checked to answer)
#   DBSAFE_TEST_MYSQL_URL  use this MySQL/MariaDB instead (same)
#   DBSAFE_SERVICES_WAIT   seconds to wait for a server to answer (default 60)
#
# Usage: scripts/ensure-services.sh [--packages-only]
#   --packages-only  only install missing packages (what the build needs); start nothing
set -euo pipefail

SCRIPT_NAME=ensure-services
ROOT_HINT=""
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

readonly PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres
readonly MY_HOST=127.0.0.1 MY_PORT=3306 MY_USER=root
WAIT_SECS=${DBSAFE_SERVICES_WAIT:-60}
HBA_MARKER='# dbsafe scripts/ensure-services.sh: loopback TCP without password for user postgres (test setup)'

# Hide the password part of a URL: postgres://app:secret@h/db -> postgres://app:***@h/db
mask_url() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }


# Poll `cmd...` once a second until it succeeds or $2 seconds have passed.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
    log "$what answers"
}

port_open() { timeout 2 bash -c ": </dev/tcp/$1/$2" 2>/dev/null; }


packages_only=false
for arg in "$@"; do
    case $arg in
    --packages-only) packages_only=true ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

manage_pg=true
manage_my=true
[[ -n ${DBSAFE_TEST_PG_URL:-} ]] && manage_pg=false
[[ -n ${DBSAFE_TEST_MYSQL_URL:-} ]] && manage_my=false

# ---------------------------------------------------------------------------------------
# 1. Packages
# ---------------------------------------------------------------------------------------
pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

ensure_packages() {
    local missing=() p
    if ! have dpkg-query; then
        # Not Debian: we cannot install anything, only say what is needed if it is absent.
        have pkg-config || missing+=(pkg-config)
        have cc || missing+=("a C compiler")
        have pg_dump || missing+=("PostgreSQL client (psql, pg_dump)")
        have mariadb-dump || have mysqldump || missing+=("MariaDB client (mariadb, mariadb-dump)")
        if ((${#missing[@]})); then
            die "not a Debian system; install these yourself: ${missing[*]} (plus libpq and libmariadb development files, and the servers unless DBSAFE_TEST_PG_URL / DBSAFE_TEST_MYSQL_URL point elsewhere)"
        fi
        return 0
    fi
    for p in gcc libc6-dev pkg-config libpq-dev libmariadb-dev libmariadb-dev-compat; do
        pkg_installed "$p" || missing+=("$p")
    done
    # Clients are needed even against external servers (pg_dump / mariadb-dump for snapshots).
    { have psql && have pg_dump && have pg_isready; } || missing+=(postgresql-client)
    { have mariadb && { have mariadb-dump || have mysqldump; }; } || missing+=(mariadb-client)
    if $manage_pg && ! { have pg_ctlcluster && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }; then
        missing+=(postgresql)
    fi
    if $manage_my && [[ ! -x /usr/sbin/mariadbd ]]; then
        missing+=(mariadb-server)
    fi
    if ((${#missing[@]} == 0)); then
        log "packages: all present"
        return 0
    fi
    have sqlite3 || missing+=(sqlite3) # optional: handy for poking at SQLite targets
    have apt-get || die "missing packages (${missing[*]}) and no apt-get to install them"
    log "packages: installing ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q
        -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    as_root "${apt[@]}" update </dev/null >&2 || die "apt-get update failed"
    as_root "${apt[@]}" install --no-install-recommends "${missing[@]}" </dev/null >&2 ||
        die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------
# 2. PostgreSQL
# ---------------------------------------------------------------------------------------
pg_answering() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 </dev/null >/dev/null 2>&1; }
pg_login_ok() {
    psql -X -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -Atqc 'select 1' \
        </dev/null >/dev/null 2>&1
}

# Prints "VERSION NAME STATUS" of the local cluster configured for port 5432, if any.
pg_cluster_on_port() {
    have pg_lsclusters || return 0
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $4; exit }'
}

pg_start_local() {
    have pg_lsclusters || die "PostgreSQL is not answering on $PG_HOST:$PG_PORT and postgresql-common is not installed"
    local cluster ver name status
    cluster=$(pg_cluster_on_port)
    if [[ -z $cluster ]]; then
        # No cluster on our port (none at all on a fresh install without a started
        # postinst, or one that went to another port because 5432 was busy then): create
        # one for this port, leaving any other cluster alone.
        ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)
        [[ -n $ver ]] || die "no PostgreSQL server version found under /usr/lib/postgresql"
        name=main
        if [[ -d /etc/postgresql/$ver/main ]]; then
            name=dbsafe
        fi
        log "PostgreSQL: creating cluster $ver/$name on port $PG_PORT"
        as_root pg_createcluster -p "$PG_PORT" --locale C.UTF-8 -e UTF8 "$ver" "$name" </dev/null >&2 ||
            die "pg_createcluster -p $PG_PORT $ver $name failed"
        cluster="$ver $name down"
    fi
    read -r ver name status <<<"$cluster"
    as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    if [[ $status != online ]]; then
        log "PostgreSQL: starting cluster $ver/$name"
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null >&2 ||
            die "pg_ctlcluster $ver $name start failed; see /var/log/postgresql/postgresql-$ver-$name.log"
    fi
}

# Put trust lines for user postgres on loopback TCP at the top of the local cluster's
# pg_hba.conf (Debian defaults to scram-sha-256 there), then reload.
pg_fix_auth() {
    local cluster ver name status hba tmp
    cluster=$(pg_cluster_on_port)
    [[ -n $cluster ]] || return 1 # not a cluster of ours: leave it alone
    read -r ver name status <<<"$cluster"
    hba=$(as_root runuser -u postgres -- psql -X -w -p "$PG_PORT" -Atqc 'show hba_file' </dev/null 2>/dev/null || true)
    [[ -n $hba ]] || hba=/etc/postgresql/$ver/$name/pg_hba.conf
    as_root test -f "$hba" || return 1
    if as_root grep -qF "$HBA_MARKER" "$hba"; then
        log "PostgreSQL: $hba already has dbsafe's trust lines"
    else
        log "PostgreSQL: adding trust for user $PG_USER on 127.0.0.1/32 and ::1/128 to $hba"
        tmp=$(mktemp)
        {
            printf '%s\n' "$HBA_MARKER"
            printf 'host    all    %s    127.0.0.1/32    trust\n' "$PG_USER"
            printf 'host    all    %s    ::1/128         trust\n' "$PG_USER"
            as_root cat "$hba"
        } >"$tmp"
        as_root tee "$hba" <"$tmp" >/dev/null # keeps the file's owner and mode
        rm -f "$tmp"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload </dev/null >&2 || return 1
    sleep 1
}

ensure_postgres() {
    if ! $manage_pg; then
        local shown
        shown=$(mask_url "$DBSAFE_TEST_PG_URL")
        log "PostgreSQL: using DBSAFE_TEST_PG_URL=$shown (not managed here)"
        pg_external_ok() { psql -X -w "$DBSAFE_TEST_PG_URL" -Atqc 'select 1' </dev/null >/dev/null 2>&1; }
        wait_for "PostgreSQL at $shown" "$WAIT_SECS" pg_external_ok ||
            die "PostgreSQL at DBSAFE_TEST_PG_URL=$shown does not answer 'select 1' after ${WAIT_SECS}s"
        return 0
    fi
    if ! pg_answering; then
        log "PostgreSQL: not answering on $PG_HOST:$PG_PORT"
        pg_start_local
        wait_for "PostgreSQL on $PG_HOST:$PG_PORT" "$WAIT_SECS" pg_answering ||
            die "PostgreSQL did not answer on $PG_HOST:$PG_PORT within ${WAIT_SECS}s; see /var/log/postgresql/"
    fi
    if ! pg_login_ok; then
        log "PostgreSQL: user $PG_USER cannot log in over TCP without a password; fixing pg_hba.conf"
        pg_fix_auth || true
        pg_login_ok || die "PostgreSQL answers on $PG_HOST:$PG_PORT but 'psql -h $PG_HOST -U $PG_USER' fails without a password.
Allow it (a 'host all $PG_USER 127.0.0.1/32 trust' line in pg_hba.conf), or set DBSAFE_TEST_PG_URL."
    fi
    log "PostgreSQL: ready at postgres://$PG_USER@$PG_HOST:$PG_PORT ($(psql -X -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -Atqc 'show server_version' </dev/null 2>/dev/null))"
}

# ---------------------------------------------------------------------------------------
# 3. MariaDB
# ---------------------------------------------------------------------------------------
my_client() { if have mariadb; then echo mariadb; else echo mysql; fi; }
my_login_ok() {
    "$(my_client)" --no-defaults --protocol=TCP -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" \
        --connect-timeout=3 -e 'select 1' </dev/null >/dev/null 2>&1
}
my_answering() { port_open "$MY_HOST" "$MY_PORT"; }
my_datadir() {
    local d
    d=$(my_print_defaults --mysqld 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n1)
    echo "${d:-/var/lib/mysql}"
}

my_start_local() {
    [[ -x /usr/sbin/mariadbd ]] || die "MariaDB is not answering on $MY_HOST:$MY_PORT and /usr/sbin/mariadbd is not installed"
    local datadir
    datadir=$(my_datadir)
    if ! as_root test -d "$datadir/mysql"; then
        log "MariaDB: initialising data directory $datadir"
        as_root install -d -o mysql -g mysql -m 0750 "$datadir"
        as_root mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db </dev/null >&2 ||
            die "mariadb-install-db failed"
    fi
    as_root install -d -o mysql -g mysql -m 0755 /run/mysqld
    as_root install -d -o mysql -g adm -m 2750 /var/log/mysql
    log "MariaDB: starting /usr/sbin/mariadbd (output in /var/log/mysql/dbsafe-mariadbd.log)"
    as_root start-stop-daemon --start --oknodo --background \
        --output /var/log/mysql/dbsafe-mariadbd.log \
        --exec /usr/sbin/mariadbd -- --user=mysql </dev/null >&2 ||
        die "could not start /usr/sbin/mariadbd"
}

# Debian's root@localhost authenticates by unix_socket only: let it in with an empty password
# too (over TCP), through the socket where root is recognised as the OS user.
my_fix_auth() {
    local client
    client=$(my_client)
    as_root "$client" -uroot >&2 <<'SQL' || return 1
ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
}

ensure_mariadb() {
    if ! $manage_my; then
        local shown url re user pass host port
        url=$DBSAFE_TEST_MYSQL_URL
        shown=$(mask_url "$url")
        log "MariaDB: using DBSAFE_TEST_MYSQL_URL=$shown (not managed here)"
        re='^mysql://(([^:@/]*)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?'
        [[ $url =~ $re ]] || die "DBSAFE_TEST_MYSQL_URL=$shown is not a mysql://user:password@host:port/db URL"
        user=${BASH_REMATCH[2]:-root} pass=${BASH_REMATCH[4]:-} host=${BASH_REMATCH[5]} port=${BASH_REMATCH[7]:-3306}
        pass=$(printf '%b' "${pass//%/\\x}") # percent-decoding
        my_external_ok() {
            MYSQL_PWD=$pass "$(my_client)" --no-defaults --protocol=TCP -h "$host" -P "$port" -u "$user" \
                --connect-timeout=3 -e 'select 1' </dev/null >/dev/null 2>&1
        }
        wait_for "MariaDB at $shown" "$WAIT_SECS" my_external_ok ||
            die "MySQL/MariaDB at DBSAFE_TEST_MYSQL_URL=$shown does not answer 'select 1' after ${WAIT_SECS}s"
        return 0
    fi
    if ! my_answering; then
        log "MariaDB: not answering on $MY_HOST:$MY_PORT"
        my_start_local
        wait_for "MariaDB on $MY_HOST:$MY_PORT" "$WAIT_SECS" my_answering ||
            die "MariaDB did not answer on $MY_HOST:$MY_PORT within ${WAIT_SECS}s; see /var/log/mysql/"
    fi
    if ! my_login_ok; then
        # Right after start-up the port can answer before logins work: give it a moment.
        wait_for "MariaDB login" 5 my_login_ok 2>/dev/null || {
            log "MariaDB: root cannot log in over TCP with an empty password; fixing root's authentication"
            my_fix_auth || true
            my_login_ok || die "MariaDB answers on $MY_HOST:$MY_PORT but '$(my_client) -h $MY_HOST -u$MY_USER' fails with an empty password.
Allow it, or set DBSAFE_TEST_MYSQL_URL."
        }
    fi
    log "MariaDB: ready at mysql://$MY_USER@$MY_HOST:$MY_PORT ($("$(my_client)" --no-defaults --protocol=TCP -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" -N -e 'select version()' </dev/null 2>/dev/null))"
}

ensure_packages
if $packages_only; then
    exit 0
fi
ensure_postgres
ensure_mariadb
