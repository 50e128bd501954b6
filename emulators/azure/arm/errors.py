"""ARM's error format, and the errors the ARM surface answers with.

Every failure of an ARM route is a JSON body ``{"error": {"code", "message", "target",
"details"}}`` (azure-mgmt-core's ``ARMErrorFormat``) with the HTTP status Azure uses. Handlers
raise :class:`ArmError`; the dispatcher turns it into the response, so no handler builds an
error body by hand.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class ArmError(Exception):
    """An ARM error answer: status, code, message, optional target/details and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """``{"error": {...}}``; ``target`` only when set, ``details`` always (possibly empty)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        error["details"] = self.details
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid_parameter(target: str, detail: str = "") -> ArmError:
    """AKS's 400 for a bad field: ``The value of parameter X is invalid.`` (code InvalidParameter)."""
    message = f"The value of parameter {target} is invalid."
    if detail:
        message += f" Error details: {detail}"
    message += " Please see https://aka.ms/aks-naming-rules for more details."
    return ArmError(400, "InvalidParameter", message, target=target)


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    """ARM's 404 for a missing resource."""
    message = (
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    )
    return ArmError(404, "ResourceNotFound", message)


def operation_not_allowed(what: str) -> ArmError:
    """AKS's 409 while another operation on the resource (or its cluster) is in progress.

    ``what`` is e.g. ``"Another agentpool operation (pool1 - Creating)"`` or
    ``"Another operation (Updating)"``, as AKS words it.
    """
    message = (
        f"Operation is not allowed: {what} is in progress, please wait for it to finish before starting "
        "a new operation. See https://aka.ms/aks-pending-operation for more details"
    )
    return ArmError(409, "OperationNotAllowed", message)


def precondition_failed(sent: str, current: str | None) -> ArmError:
    """ARM's 412 when If-Match / If-None-Match does not hold."""
    if current is None:
        message = f"Etag provided in if-match header {sent} does not match: the resource does not exist."
    elif sent == "*":
        message = f'The resource already exists with etag "{current}" (if-none-match: *).'
    else:
        message = f'Etag provided in if-match header {sent} does not match etag "{current}" of resource.'
    return ArmError(412, "PreconditionFailed", message)


def bad_request_content(detail: str) -> ArmError:
    """ARM's 400 for a body that is not JSON (or not an object)."""
    message = f"The request content was invalid and could not be deserialized: '{detail}'."
    return ArmError(400, "InvalidRequestContent", message)
