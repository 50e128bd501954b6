"""Fixtures shared by the provider tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Serve application's ``working_dir``: module ``fruit`` with the builder ``app`` (the
    emulator's Serve finds it there; an import path outside it fails as Ray's would)."""
    path = tmp_path_factory.mktemp("serve_app")
    (path / "fruit.py").write_text("def app(args):\n    return None\n")
    return path
