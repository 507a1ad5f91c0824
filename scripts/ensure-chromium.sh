#!/usr/bin/env bash
# scripts/ensure-chromium.sh — make sure a headless Chromium is installed, for the test that
# renders `cargo dbsafe runs show --format html` in a real browser. Called by scripts/test.sh.
#
# Installs the Debian package `chromium` (apt-get, non-interactive, quiet) when no
# chromium is found, and prints nothing else on success. The test finds the browser through
# DBSAFE_TEST_CHROMIUM (a program name or path; default: chromium, else chromium-browser);
# when that variable is set, this script only checks that it runs.
set -euo pipefail

log() { printf 'ensure-chromium: %s\n' "$*" >&2; }
die() {
    printf 'ensure-chromium: error: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif have sudo && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root for: $* (run as root, set up passwordless sudo, or install chromium yourself)"
    fi
}

if [[ -n ${DBSAFE_TEST_CHROMIUM:-} ]]; then
    have "$DBSAFE_TEST_CHROMIUM" || die "DBSAFE_TEST_CHROMIUM=$DBSAFE_TEST_CHROMIUM is not a program"
    exit 0
fi
if have chromium || have chromium-browser; then
    log "chromium: present"
    exit 0
fi
have apt-get || die "chromium is not installed and there is no apt-get to install it: install Chromium yourself, or set DBSAFE_TEST_CHROMIUM"
log "installing the Debian package chromium (quietly; this takes a while)"
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=120
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
if ! as_root "${apt[@]}" install --no-install-recommends chromium </dev/null >/dev/null 2>&1; then
    as_root "${apt[@]}" update </dev/null >/dev/null 2>&1 || die "apt-get update failed"
    as_root "${apt[@]}" install --no-install-recommends chromium </dev/null >/dev/null ||
        die "apt-get install chromium failed"
fi
have chromium || die "chromium is still not on PATH after installing it"
log "chromium: installed ($(chromium --version 2>/dev/null || echo unknown version))"
