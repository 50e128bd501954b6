#!/usr/bin/env bash
# wrk, the HTTP load generator that tests/providers/test_local_proxy.py runs across a
# rollout (the proxy must fail no request). Run by `make wrk`, which `make test` and
# .ci/run need. A no-op when wrk is on PATH. Debian's package is `wrk`. Without apt (or
# root or sudo) it says what to install, and that one test is skipped with the same words.
set -euo pipefail
command -v wrk >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  echo "wrk is not installed: install wrk (apt-get install wrk)" >&2
  exit 0
fi
sudo_=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "wrk is not installed and apt needs root: install wrk" >&2
    exit 0
  fi
  sudo_="sudo"
fi
echo "installing wrk"
$sudo_ apt-get update -qq
$sudo_ apt-get install -y -qq wrk || true
command -v wrk >/dev/null || echo "wrk could not be installed: install wrk" >&2
