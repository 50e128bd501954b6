"""Column types that give typed values to the ORM while the database keeps plain text/JSON."""

from __future__ import annotations

import enum
from typing import Any, Generic, TypeVar

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.StrEnum)


class StrEnumText(TypeDecorator[E], Generic[E]):
    """A ``StrEnum`` stored as its value in a ``VARCHAR``; reads give the enum member back.

    Bound parameters accept the member or its plain string (so ``column == "Running"`` and
    ``column.in_([...])`` keep working); an unknown stored value raises, loudly, on read.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_type: type[E], length: int) -> None:
        super().__init__(length)
        self.enum_type = enum_type

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_type(value)
