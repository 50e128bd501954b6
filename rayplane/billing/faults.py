"""A crash-test hook: make this process die with SIGKILL at a named point.

``RAYPLANE_FAULT=<point>`` arms it. With ``RAYPLANE_FAULT_ONCE=<file>`` as well, it fires only
if it can create that file (``O_EXCL``), so a task redelivered after the crash runs through;
without it, every pass through the point dies. Unarmed (production), it costs one
environment lookup. It exists so tests can kill a real worker between two steps that no
external signal could separate reliably, such as "the Marketplace answered" and "the answer
was committed".
"""

from __future__ import annotations

import os
import signal


def crash_point(point: str) -> None:
    """SIGKILL this process here if ``RAYPLANE_FAULT`` names ``point`` (see the module doc)."""
    if os.environ.get("RAYPLANE_FAULT") != point:
        return
    marker = os.environ.get("RAYPLANE_FAULT_ONCE")
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
