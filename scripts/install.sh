#!/usr/bin/env bash
# scripts/install.sh — install dbsafe from a clone in one step, then prove it on SQLite.
#
# On Debian/Ubuntu (as root, or with passwordless sudo; it never prompts):
#   1. installs the missing system packages the build links against (PACKAGES below; the
#      README and docs/ci.md list the same ones) with apt-get;
#   2. installs Rust with rustup (minimal profile) when there is no cargo;
#   3. builds and installs cargo-dbsafe, cargo-dbverify and cargo-dbrollback in one build:
#      `cargo install --locked --path cargo-dbsafe` (into ~/.cargo/bin, or --root DIR);
#   4. checks that `cargo dbsafe`, `cargo dbverify` and `cargo dbrollback` run from PATH;
#   5. runs the quickstart on a copy of examples/quickstart in a temporary directory (SQLite,
#      no server): apply, status, runs, a snapshot, dbverify, a rollback dry run.
#
# Usage: scripts/install.sh [--debug] [--root DIR] [--prebuilt DIR] [--no-packages] [--no-quickstart]
#   --debug          build without optimisations (about twice as fast to build; slower binaries)
#   --root DIR       install into DIR/bin (as cargo install --root)
#   --prebuilt DIR   copy the three binaries from DIR (a target/debug or target/release) instead
#                    of building; also DBSAFE_INSTALL_PREBUILT=DIR. The tests use it so that
#                    checking this script costs no build.
#   --no-packages    skip step 1 (the packages are there, or you install them otherwise)
#   --no-quickstart  skip step 5
set -euo pipefail

SCRIPT_NAME=install
ROOT_HINT="install the packages yourself and pass --no-packages"
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly REPO=$PWD
readonly BINARIES=(cargo-dbsafe cargo-dbverify cargo-dbrollback)
# What the build links against (PostgreSQL and MariaDB clients; SQLite is bundled) and the
# client tools snapshots use (pg_dump, mariadb-dump). Keep in step with README.md and docs/ci.md
# (tests/tests/install.rs checks that they agree).
readonly PACKAGES=(gcc libc6-dev pkg-config libpq-dev libmariadb-dev libmariadb-dev-compat postgresql-client mariadb-client)



debug=false root="" prebuilt=${DBSAFE_INSTALL_PREBUILT:-} packages=true quickstart=true
while (($#)); do
    case $1 in
    --debug) debug=true ;;
    --root)
        root=${2:?--root needs a directory}
        shift
        ;;
    --prebuilt)
        prebuilt=${2:?--prebuilt needs a directory}
        shift
        ;;
    --no-packages) packages=false ;;
    --no-quickstart) quickstart=false ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

install_packages() {
    local missing=() p
    if ! have dpkg-query; then
        log "packages: not a Debian system; make sure these (or your system's equivalents) are installed: ${PACKAGES[*]}"
        return 0
    fi
    for p in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$p")
    done
    if ! have cargo && [[ -z $prebuilt ]]; then
        have curl || missing+=(curl)
        [[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
    fi
    if ((${#missing[@]} == 0)); then
        log "packages: all present"
        return 0
    fi
    log "packages: installing ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=120)
    as_root "${apt[@]}" update </dev/null >&2 || die "apt-get update failed"
    as_root "${apt[@]}" install --no-install-recommends "${missing[@]}" </dev/null >&2 ||
        die "apt-get install ${missing[*]} failed"
}

ensure_rust() {
    [[ -n $prebuilt ]] && return 0
    if ! have cargo && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    if have cargo; then
        log "rust: $(cargo --version)"
        return 0
    fi
    log "rust: no cargo; installing Rust with rustup (minimal profile)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y -q --profile minimal </dev/null ||
        die "rustup failed; install Rust 1.95 or newer yourself, then run this again"
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
}

# Prints the directory the binaries were installed into.
install_binaries() {
    local bin_dir=${root:+$root/bin}
    bin_dir=${bin_dir:-${CARGO_HOME:-$HOME/.cargo}/bin}
    local cmd=(cargo install --locked --path cargo-dbsafe --force)
    $debug && cmd+=(--debug)
    [[ -n $root ]] && cmd+=(--root "$root")
    if [[ -n $prebuilt ]]; then
        log "binaries: copying ${BINARIES[*]} from $prebuilt into $bin_dir (instead of: ${cmd[*]})"
        mkdir -p "$bin_dir"
        local b
        for b in "${BINARIES[@]}"; do
            [[ -x $prebuilt/$b ]] || die "$prebuilt/$b is missing: build first (cargo build --workspace)"
            cp "$prebuilt/$b" "$bin_dir/$b"
        done
    else
        log "binaries: ${cmd[*]} (one build for the three subcommands; several minutes on 2 cores)"
        "${cmd[@]}" >&2 || die "the build failed (see above); the packages of step 1 are the usual cause"
    fi
    printf '%s\n' "$bin_dir"
}

check_on_path() {
    local bin_dir=$1 b
    case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *)
        log "PATH: $bin_dir is not on PATH; add it (for example in ~/.profile):"
        log "  export PATH=\"$bin_dir:\$PATH\""
        export PATH="$bin_dir:$PATH"
        ;;
    esac
    have cargo || die "cargo is not on PATH: cargo dbsafe needs it (or run cargo-dbsafe directly)"
    for b in "${BINARIES[@]}"; do
        local sub=${b#cargo-}
        cargo "$sub" --version >/dev/null || die "cargo $sub does not run: is $bin_dir/$b on PATH?"
    done
    log "installed: cargo dbsafe, cargo dbverify, cargo dbrollback ($(cargo dbsafe --version))"
}

run_quickstart() {
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/dbsafe-quickstart.XXXXXX")
    cp -r "$REPO/examples/quickstart/." "$dir/"
    rm -rf "$dir/dev.db" "$dir/dev.db.dbsafe-lock" "$dir/.dbsafe"
    log "quickstart: in $dir (SQLite, no server)"
    (
        cd "$dir"
        set -x
        cargo dbsafe apply
        cargo dbsafe status
        cargo dbsafe runs
        cargo dbsafe snapshot create
        cargo dbverify
        cargo dbrollback --last --dry-run
    ) || die "the quickstart failed in $dir (kept for a look)"
    rm -rf "$dir"
    log "quickstart: ok. Next: README.md's Quickstart, or in your project: cargo dbsafe init"
}

$packages && install_packages
ensure_rust
bin_dir=$(install_binaries)
check_on_path "$bin_dir"
$quickstart && run_quickstart
log "done"
