"""Rendering the API's OpenAPI document (deterministically, for a drift test)."""

from __future__ import annotations

import json


def render() -> str:
    # Imported here: the core never imports the web adapter at module load.
    from api.app import create_app
    from rayplane.settings import Settings

    app = create_app(Settings(env="test", cors_origins=[]))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
