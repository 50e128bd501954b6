"""A Serve app for tests: echoes the request path with a greeting that ``user_config`` sets."""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from starlette.requests import Request


class Echo:
    def __init__(self) -> None:
        self.greeting = "hello"

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve calls this with the deployment's ``user_config``, without a restart."""
        self.greeting = str(config.get("greeting", "hello"))

    async def __call__(self, request: Request) -> dict[str, Any]:
        return {"app": "echo", "greeting": self.greeting, "path": request.url.path, "pid": os.getpid()}


# No CPU: the test cluster is one small head.
app = serve.deployment(ray_actor_options={"num_cpus": 0})(Echo).bind()
