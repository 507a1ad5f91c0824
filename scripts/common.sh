# scripts/common.sh — what every dbsafe script shares; sourced, not run:
#   SCRIPT_NAME=ensure-x ROOT_HINT="install x yourself"; source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# SCRIPT_NAME prefixes the messages; ROOT_HINT ends the message of a missing root.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

# Runs a command as root: directly, or through passwordless sudo (never prompting).
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif have sudo && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root for: $* (run as root, set up passwordless sudo${ROOT_HINT:+, or $ROOT_HINT})"
    fi
}

# Installs Debian packages non-interactively, quietly, never prompting; `apt-get update`
# runs only when the install cannot find them.
apt_install() {
    have apt-get || die "cannot install $* without apt-get${ROOT_HINT:+: $ROOT_HINT}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=120
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! as_root "${apt[@]}" install --no-install-recommends "$@" </dev/null >/dev/null 2>&1; then
        as_root "${apt[@]}" update </dev/null >/dev/null 2>&1 || die "apt-get update failed"
        as_root "${apt[@]}" install --no-install-recommends "$@" </dev/null >&2 ||
            die "apt-get install $* failed"
    fi
}
