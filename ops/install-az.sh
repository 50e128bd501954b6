#!/usr/bin/env bash
# Installs the real Azure CLI (tests/support/az-requirements.txt) into a venv of its own,
# .cache/az-venv, for tests/emulators/test_az_cli.py. Idempotent: when the stamp file holds the
# hash of the requirements file, nothing is done. Run by `make az` (which `make test` needs).
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=tests/support/az-requirements.txt
VENV=${AZ_VENV:-.cache/az-venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$want" ] && [ -x "$VENV/bin/az" ]; then
  exit 0
fi
echo "installing the Azure CLI into $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" 2>&1 | grep -v "is ignored: it is neither" || true
"$VENV/bin/python" -c "import azure.cli.core"
"$VENV/bin/az" version --output none
echo "$want" >"$VENV/.stamp"
