"""/docs and /redoc work with no internet: their scripts and styles come from the package."""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize(("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
async def test_the_docs_pages_load_nothing_from_elsewhere(client: httpx.AsyncClient, page: str, asset: str) -> None:
    r = await client.get(page)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert sources, r.text
    assert [s for s in sources if s.startswith(("http://", "https://", "//"))] == []
    assert f"/docs-assets/{asset}" in sources
    script = await client.get(f"/docs-assets/{asset}")
    assert script.status_code == 200
    assert len(script.content) > 100_000  # the real bundle, not a stub
