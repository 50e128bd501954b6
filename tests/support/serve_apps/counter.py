"""A Serve app for tests: counts the requests its replica answered (a restart starts again at 1)."""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from starlette.requests import Request


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, request: Request) -> dict[str, Any]:
        self.count += 1
        return {"app": "counter", "count": self.count, "pid": os.getpid()}


# No CPU: the test cluster is one small head.
app = serve.deployment(ray_actor_options={"num_cpus": 0})(Counter).bind()
