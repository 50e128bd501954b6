"""Domain errors. Adapters map each class to a protocol answer (HTTP status, task retry).

Every error carries a human ``detail``; ``InvalidInput`` also carries the fields at fault,
as ``FieldError(field, message)`` with a dotted path such as ``body.worker_groups.0.name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """Base of every error the core raises on purpose."""

    title = "Error"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[FieldError] = errors or []


class Unauthenticated(DomainError):
    title = "Unauthenticated"


class Forbidden(DomainError):
    title = "Forbidden"


class NotFound(DomainError):
    title = "Not found"


class Conflict(DomainError):
    title = "Conflict"


class PreconditionFailed(DomainError):
    title = "Precondition failed"


class InvalidInput(DomainError):
    title = "Invalid input"

    @classmethod
    def on(cls, field_path: str, message: str) -> InvalidInput:
        return cls(f"{field_path}: {message}", errors=[FieldError(field_path, message)])


class RateLimited(DomainError):
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency the request needs (a cluster's Ray head, a cloud API) did not answer."""

    title = "Service unavailable"


T = TypeVar("T")


def found(row: T | None, what: str, ident: str) -> T:
    """``row``, or ``NotFound("<what> <ident> not found")`` when it is None: the one get-or-404.

    Another tenant's row is looked up with the caller's tenant id and so is None here too,
    which is why a foreign id answers exactly as a missing one."""
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row


def invalid(errors: list[FieldError]) -> InvalidInput:
    """One ``InvalidInput`` carrying every field error (its detail names the first five)."""
    return InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors[:5]), errors=errors)
