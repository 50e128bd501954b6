"""What of an upstream's error text may reach a client: one line, no paths, bounded.

A server we call (a cluster's Ray dashboard, Azure, the Marketplace, Entra) may answer an
error with its whole traceback, its file paths and its configuration. Clients get
``one_line(text)``: the line that says what went wrong (for a Python traceback, its last
line, the exception; otherwise the first line), with file-system paths replaced by
``<path>``, whitespace collapsed, cut at ``limit`` characters. The full text belongs in
the log, at WARNING, where the request id (bound by the API's middleware) ties it to the
answer the client got.
"""

from __future__ import annotations

import re

LIMIT = 200
# An absolute POSIX path (not the "//" of a URL: no word, ":", "/" or "." just before it),
# a home-relative one, or a Windows drive path.
_PATH = re.compile(r"""(?<![\w:/.<])(?:~|[A-Za-z]:\\|\\\\)?/[^\s'"(),;:]+|[A-Za-z]:\\[^\s'"(),;]+""")
_TRACEBACK = "Traceback (most recent call last)"


def _line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    if _TRACEBACK in text:
        # The exception is the last line that is not a frame ("File …") or a caret marker.
        for line in reversed(lines):
            if not line.startswith(("File ", "^", "~")) and _TRACEBACK not in line:
                return line
    return lines[0]


def one_line(text: str, limit: int = LIMIT) -> str:
    """The client-safe summary of an upstream's error text (see the module docstring)."""
    line = _PATH.sub("<path>", _line(text))
    line = " ".join(line.split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line or "no detail given"
