"""Kubernetes ``Status`` errors, as the API server writes them.

Every failure of the Kubernetes surface is a :class:`KubeError` carrying a ``Status`` object
(``kind: Status``, ``apiVersion: v1``, ``status: Failure``, ``message``, ``reason``,
``details``, ``code``); the route turns it into a JSON response with that HTTP code. The
message formats follow kube-apiserver (``k8s.io/apimachinery/pkg/api/errors``), so clients
that parse them (kubectl, the Python client's ``ApiException.body``) see familiar text.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class KubeError(Exception):
    """A failed request; :meth:`response` renders the Status object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers

    def status(self) -> dict[str, Any]:
        """The ``Status`` object."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.status(), status_code=self.code, headers=self.headers)


def qualified(plural: str, group: str) -> str:
    """``pods`` or ``rayclusters.ray.io``: how the API server names a resource in messages."""
    return f"{plural}.{group}" if group else plural


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def not_found(plural: str, group: str, name: str) -> KubeError:
    return KubeError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found', _details(name, group, plural))


def already_exists(plural: str, group: str, name: str) -> KubeError:
    message = f'{qualified(plural, group)} "{name}" already exists'
    return KubeError(409, "AlreadyExists", message, _details(name, group, plural))


def conflict(plural: str, group: str, name: str) -> KubeError:
    message = (
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return KubeError(409, "Conflict", message, _details(name, group, plural))


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> KubeError:
    """422 Invalid. Each cause is ``{reason, message, field}``; the message lists them the way
    ``errors.NewInvalid`` does: ``field: message`` joined, bracketed when there are several."""
    rendered = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    details = {**_details(name, group, kind), "causes": causes}
    return KubeError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def field_invalid(field: str, value: Any, detail: str) -> dict[str, str]:
    """A FieldValueInvalid cause: ``Invalid value: <value>: <detail>``."""
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {render_value(value)}: {detail}", "field": field}


def field_required(field: str, detail: str = "") -> dict[str, str]:
    message = "Required value" + (f": {detail}" if detail else "")
    return {"reason": "FieldValueRequired", "message": message, "field": field}


def render_value(value: Any) -> str:
    """How field errors print a value: strings quoted, numbers bare (Go's ``%#v``-ish)."""
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def unauthorized() -> KubeError:
    return KubeError(401, "Unauthorized", "Unauthorized")


def resource_not_found() -> KubeError:
    """What the API server answers for a path it does not serve (unknown group or resource)."""
    return KubeError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed(message: str) -> KubeError:
    return KubeError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> KubeError:
    return KubeError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        + ("" if content_type.endswith("merge-patch+json") else ", application/strategic-merge-patch+json")
        + f'; got "{content_type}"',
    )


def service_unavailable(message: str) -> KubeError:
    return KubeError(503, "ServiceUnavailable", message, {})
