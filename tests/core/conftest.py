"""Fixtures of the core tests that drive the reconciler against the real database."""

from __future__ import annotations

import pytest

from tests.support.scripted_provider import ScriptedProvider


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()
