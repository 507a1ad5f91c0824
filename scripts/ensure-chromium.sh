#!/usr/bin/env bash
# scripts/ensure-chromium.sh — make sure a headless Chromium is installed, for the test that
# renders `cargo dbsafe runs show --format html` in a real browser. Called by scripts/test.sh.
#
# Installs the Debian package `chromium` (apt-get, non-interactive, quiet) when no
# chromium is found, and prints nothing else on success. The test finds the browser through
# DBSAFE_TEST_CHROMIUM (a program name or path; default: chromium, else chromium-browser);
# when that variable is set, this script only checks that it runs.
set -euo pipefail

SCRIPT_NAME=ensure-chromium
ROOT_HINT="install chromium yourself"
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"


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
apt_install chromium
have chromium || die "chromium is still not on PATH after installing it"
log "chromium: installed ($(chromium --version 2>/dev/null || echo unknown version))"
