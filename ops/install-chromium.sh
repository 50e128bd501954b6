#!/usr/bin/env bash
# Chromium, the browser the console's tests (tests/web) drive through Playwright for Python.
# Playwright's own browser download needs the internet; the system's chromium does not. Run
# by `make chromium`, which `make test` and .ci/run need. A no-op when chromium is on PATH.
# Debian's package is `chromium`. Without apt (or root or sudo) it says what to install, and
# the browser tests are skipped with the same words.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  echo "chromium is not installed: install chromium (apt-get install chromium)" >&2
  exit 0
fi
sudo_=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "chromium is not installed and apt needs root: install chromium" >&2
    exit 0
  fi
  sudo_="sudo"
fi
echo "installing chromium"
$sudo_ apt-get update -qq
$sudo_ apt-get install -y -qq chromium || true
command -v chromium >/dev/null || echo "chromium could not be installed: install chromium" >&2
