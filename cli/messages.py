"""How the API's complaints read on the command line: field paths and rules in the user's words.

The API names a rejected field by where it sits in the request (``body.worker_groups.0.max_nodes``)
and states pattern rules as the regular expression pydantic checked. A user wrote a spec file
or flags, not a request body, and reads words, not regexes, so the CLI renders
``worker_groups[0].max_nodes`` and "lower-case letters, digits and '-', …".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The patterns of the API's schemas (rayplane/clusters/schemas.py, rayplane/clouds/schemas.py),
#: in words. A pattern not listed here is shown as the API gave it.
DNS_NAME = "lower-case letters, digits and '-', starting with a letter, ending with a letter or digit"
PATTERN_WORDS = {
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$": DNS_NAME,
    r"^[a-zA-Z0-9]([-a-zA-Z0-9_./]{0,61}[a-zA-Z0-9])?$": (
        "letters, digits, '-', '_', '.' and '/', starting and ending with a letter or digit, at most 63 characters"
    ),
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$": (
        "a GUID, like 00000000-0000-0000-0000-000000000000"
    ),
    r"^[-\w\._\(\)]*[-\w_\(\)]$": "letters, digits, '-', '_', '.', '(' and ')', not ending with '.'",
    r"^[a-z0-9]+$": "lower-case letters and digits only, like eastus2",
    r"^[a-zA-Z0-9][-_a-zA-Z0-9]*$": "letters, digits, '-' and '_', starting with a letter or digit",
}
_PATTERN = re.compile(r"^String should match pattern '(?P<pattern>.*)'$", re.DOTALL)
_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def field_path(field: str) -> str:
    """``body.worker_groups.0.max_nodes`` as the spec file's path, ``worker_groups[0].max_nodes``.

    Query and header locations keep their place (``query.limit``); a bare ``body`` is the
    whole document.
    """
    if field == "body":
        return "(the whole spec)"
    path = field.removeprefix("body.")
    return _INDEX.sub(r"[\1]", path)


def field_message(message: str) -> str:
    """A pattern rule in words (``must be …``); any other message as it is."""
    match = _PATTERN.match(message.strip())
    if not match:
        return message
    words = PATTERN_WORDS.get(match["pattern"])
    return f"must be {words}" if words else f"must match the pattern {match['pattern']}"


def field_errors(errors: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The API's ``(field, message)`` pairs, as the user wrote the input."""
    return [(field_path(name) if name else name, field_message(msg)) for name, msg in errors]


def detail_text(detail: str) -> str:
    """A problem's ``detail``, with the field paths and pattern rules it quotes translated."""
    parts = []
    for part in detail.split("; "):
        name, sep, msg = part.partition(": ")
        if sep and (name == "body" or name.startswith("body.")):
            parts.append(f"{field_path(name)}: {field_message(msg)}")
        else:
            parts.append(field_message(part))
    return "; ".join(parts)
