"""The committed OpenAPI document is the app's; every operation documents its errors."""

from __future__ import annotations

import json
from pathlib import Path

from api.openapi import render

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert committed == render(), "openapi/openapi.json is stale: run `rayplane openapi`"


def test_every_v1_operation_documents_problem_responses() -> None:
    doc = json.loads(render())
    assert doc["openapi"].startswith("3.1")
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            responses = op["responses"]
            for code in ("401", "429", "500"):
                assert code in responses, (method, path, code)
                assert "application/problem+json" in responses[code]["content"], (method, path, code)
