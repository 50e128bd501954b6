"""Azurite for `rayplane dev` and the tests: where it is missing, a clear reason and the
directory store instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.azurite import AzuriteUnavailable, find
from ops.dev import Supervisor
from rayplane.settings import Settings


def test_missing_azurite_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURITE_DIR", str(tmp_path / "nothing"))
    with pytest.raises(AzuriteUnavailable, match="make azurite"):
        find()


def test_dev_falls_back_to_the_directory_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURITE_DIR", str(tmp_path / "nothing"))
    supervisor = Supervisor(Settings(data_dir=tmp_path / "data"))
    assert supervisor._log_store() == {}  # RAYPLANE_LOG_STORE_URL stays unset: the directory
    assert supervisor.log_store_note.startswith(f"in file://{tmp_path / 'data' / 'cluster-logs'} (no Azurite:")


def test_a_configured_store_is_kept(tmp_path: Path) -> None:
    supervisor = Supervisor(Settings(data_dir=tmp_path, log_store_url="file:///elsewhere"))
    assert supervisor._log_store() == {}
    assert "configured" in supervisor.log_store_note


def test_dev_starts_azurite_when_installed(tmp_path: Path) -> None:
    try:
        find()
    except AzuriteUnavailable as exc:
        pytest.skip(str(exc))
    supervisor = Supervisor(Settings(data_dir=tmp_path))
    supervisor.log_dir.mkdir(parents=True)
    try:
        env = supervisor._log_store()
        assert "BlobEndpoint=http://127.0.0.1:" in env["RAYPLANE_LOG_STORE_URL"]
        assert supervisor.log_store_note.startswith("Azurite (Blob Storage) on 127.0.0.1:")
    finally:
        assert supervisor.azurite is not None
        supervisor.azurite.stop()
