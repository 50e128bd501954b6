"""Child processes that never outlive their parent and are stopped by process group.

Each child runs in a session (and so a process group) of its own, so a terminal's Ctrl-C
reaches only the supervisor, which then stops children in order; and signalling the group
reaches everything the child forked (Celery's pool, Ray's raylet and workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def die_with_parent() -> None:
    """``preexec_fn``: have the kernel send SIGTERM to the child when its parent dies.

    Without it a supervisor killed with SIGKILL would leave its children running.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:  # not Linux: best effort only
        pass


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Signal the process group led by ``pid``; False when it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_process_group(
    proc: subprocess.Popen[bytes], *, timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM
) -> int | None:
    """Send ``sig`` to the child's group, wait up to ``timeout``, then SIGKILL the group.

    Returns the child's exit status. Also waits (bounded) for the rest of the group, so
    grandchildren do not linger after this returns.
    """
    pgid = proc.pid
    signal_group(pgid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_group(pgid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(pgid):
        signal_group(pgid, signal.SIGKILL)
    return proc.returncode
