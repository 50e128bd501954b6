"""The emulated Serve judges an application whose code sits behind an ``http(s)://`` URL on
that code, as a node that downloads it would: the module found, missing, or the download
failing as Ray's ``RuntimeEnvSetupError``."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.azure.kube.packages import FetchError, unpacked
from emulators.azure.kube.serve import ServeManager, module_missing
from tests.support.code_server import serving

APPS = Path(__file__).resolve().parents[1] / "support" / "serve_apps"


def test_a_fetched_package_holds_the_module_or_not() -> None:
    with serving(APPS, "apps.zip") as url:
        assert module_missing("echo:app", {"working_dir": url}) is None
        assert module_missing("no_such_module:app", {"working_dir": url}) == "no_such_module"
        assert (unpacked(url) / "counter.py").is_file()


def test_a_download_that_fails_is_a_runtime_env_setup_error(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("app = 1\n")
    with serving(tmp_path, "real.zip") as url:
        with pytest.raises(FetchError, match="Failed to download"):
            unpacked(url.replace("real.zip", "missing.zip"))
        serve = ServeManager(delay=lambda: 0.0)
        app = {"name": "a", "import_path": "m:app", "runtime_env": {"working_dir": url.replace("real", "gone")}}
        serve.put("scope", "head-1", {"applications": [app]})
        [status] = serve.statuses("scope", "head-1", now=float("inf")).values()
    assert status["status"] == "DEPLOY_FAILED", status
    assert "RuntimeEnvSetupError: Failed to download" in status["message"]
