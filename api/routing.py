"""The API's router class: NUL-checked routes and a path gate in front of each router.

FastAPI (0.16x) keeps each included router as a branch and, for every request, tries every
route of every branch in turn until one matches, then matches the chosen branch again to
handle it. With eleven routers that was about twenty route matches before a read reached
its endpoint. ``Router.matches`` first compares the request path with the static beginnings
of its own routes' paths (the part before the first ``{``): a path that starts with none of
them cannot match any of its routes, fully or partly (a partial match, the 405, needs the
path to match too), so the branch answers ``NONE`` without trying them. What matches is
unchanged; only the hopeless tries are skipped.

Contract: routers built here are included in the app without an extra prefix (their routes'
paths are the paths the app serves). A request whose scope has a ``root_path`` (the app
behind a path-prefixing proxy) skips the gate and is matched the ordinary way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope

from api.nul import CheckedRoute


class Router(APIRouter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=CheckedRoute, **kwargs)
        self._gate: tuple[str, ...] = ()
        self._gate_routes = -1

    def _starts(self) -> tuple[str, ...]:
        # Routes are added at import, before the first request; recomputed if that changes.
        if self._gate_routes != len(self.routes):
            starts = {str(getattr(route, "path", "")).split("{", 1)[0] for route in self.routes}
            self._gate = tuple(sorted(starts))
            self._gate_routes = len(self.routes)
        return self._gate

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not scope.get("root_path") and not scope.get("path", "").startswith(self._starts()):
            return Match.NONE, {}
        return super().matches(scope)
