# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit openapi bench clean

# rayplane and, as a distribution of its own, the Azure emulator (a dev and test component that
# is not in the production wheel or image).
$(STAMP): pyproject.toml emulators/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,local,embedded]' -e ./emulators 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import rayplane, cli, ops, emulators.azure, fastapi, celery, ray"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rayplane dev

test: $(STAMP) lint typecheck unit

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
