#!/usr/bin/env bash
# The real kubectl that tests/emulators/test_kubectl_*.py drive (1.30 or later). Run by
# `make kubectl`, which `make test` and .ci/run need. A no-op when kubectl is on PATH.
# The package is `kubectl` where the Kubernetes apt repository is configured; Debian's own
# `kubernetes-client` (1.20 on bookworm) is the fallback, and the tests say it is too old.
# Without apt (or root or sudo) it says what to install and leaves the tests to fail loudly.
set -euo pipefail
command -v kubectl >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  echo "kubectl is not installed: install kubectl 1.30 or later (https://kubernetes.io/docs/tasks/tools/)" >&2
  exit 0
fi
sudo_=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "kubectl is not installed and apt needs root: install kubectl 1.30 or later" >&2
    exit 0
  fi
  sudo_="sudo"
fi
echo "installing kubectl"
$sudo_ apt-get update -qq
$sudo_ apt-get install -y -qq kubectl || $sudo_ apt-get install -y -qq kubernetes-client || true
command -v kubectl >/dev/null || echo "kubectl could not be installed: install kubectl 1.30 or later" >&2
