"""What a local Ray node may see of the control plane: an allowlisted environment, and,
when the control plane runs as root, an unprivileged user of its own.

Tenant code runs inside Ray nodes (a member's job is any program), so a node must not
inherit the worker's environment (database URL, ``RAYPLANE_SECRET_KEY``, Azure and
Marketplace secrets) nor be able to read the control plane's files (the secret key,
``dev.env``). Two measures:

- **Environment**: a node gets only ``ALLOWED`` names from ours (locale and ``PATH``), plus
  what Rayplane sets for it (``HOME``, ``TMPDIR``, ``USER``, Ray's own settings). Nothing
  else passes, ``RAY_*`` from the host included: a host's ``RAY_AUTH_MODE`` or
  ``RAY_ADDRESS`` never changes how Rayplane's nodes run.
- **User**: as root, nodes run as ``rayplane-ray`` (a system user created on first use, no
  login shell, no home), whose files are the node's own directories; the control plane's
  files are 0600 and owned by root, so a job cannot read them. The reconciler, as root,
  can still signal and inspect these processes. Without root, nodes run as the control
  plane's user (a developer's laptop): the environment is still clean, but a job can read
  whatever that user can; docs/security.md says so.

All local nodes share one user: clusters on one machine are not isolated from each
other's files; local clouds are for development and trusted single machines.
"""

from __future__ import annotations

import functools
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rayplane.providers.base import TerminalError

DEFAULT_NODE_USER = "rayplane-ray"
# Names a node inherits from the control plane's environment (plus any LC_*): nothing a
# secret could hide in.
ALLOWED = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NodeUser:
    """The OS user local nodes run as (None in the provider means "as we run")."""

    name: str
    uid: int
    gid: int


def node_env(*, bindir: Path, home: Path, user: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a node: ``ALLOWED`` names and ``LC_*`` from ours, the ray
    binary's directory first on ``PATH`` (a job's ``python`` is the one with Ray), and
    ``HOME``/``TMPDIR`` in the node's cluster directory (so ``~/.ray`` of the host is
    never read), then ``extra`` (Ray's settings for this node)."""
    env = {k: v for k, v in os.environ.items() if k in ALLOWED or k.startswith("LC_")}
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", FALLBACK_PATH)
    env |= {
        "HOME": str(home),
        "TMPDIR": str(home),
        "USER": user,
        "LOGNAME": user,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.update(extra or {})
    return env


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def resolve_node_user(name: str | None) -> NodeUser | None:
    """The user nodes run as: ``name`` (created if missing) when we are root, else None.

    ``name`` None or empty keeps nodes as our own user even as root (an operator's explicit
    choice, documented as unsafe for untrusted tenants)."""
    if not name or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_user(name)
    return NodeUser(name, entry.pw_uid, entry.pw_gid)


def _create_user(name: str) -> pwd.struct_passwd:
    # A system user with its own group, no home and no login: it only runs Ray nodes.
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    done = subprocess.run(
        [*argv, "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        timeout=60,
        check=False,
    )
    try:
        return pwd.getpwnam(name)  # created here, or by a concurrent caller (useradd exit 9)
    except KeyError:
        why = done.stderr.decode(errors="replace").strip()[-500:]
        raise TerminalError(
            f"could not create the user {name!r} that local Ray nodes run as: {why}", code="NodeUserMissing"
        ) from None


@functools.lru_cache(maxsize=8)
def check_can_run_ray(user: NodeUser, python: str) -> None:
    """Raise TerminalError unless ``user`` can start ``python`` and import Ray (cached per
    process once it could): a Python installed under a private home (pyenv in /root) is out
    of its reach, and every node would die at once with a less telling error."""
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('ray') else 3)"
    try:
        done = subprocess.run(
            [python, "-I", "-c", probe],
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            env={"PATH": FALLBACK_PATH, "HOME": "/", "LANG": "C.UTF-8"},
            cwd="/",
            capture_output=True,
            timeout=120,
            check=False,
        )
        failed = done.returncode != 0
        why = done.stderr.decode(errors="replace").strip()[-300:] or f"exit status {done.returncode}"
    except OSError as exc:
        failed, why = True, str(exc)
    if failed:
        raise TerminalError(
            f"the user {user.name!r} that local Ray nodes run as cannot run {python} with Ray ({why}); "
            "install Python and Rayplane where that user can read them, or grant it access",
            code="NodeUserCannotRunRay",
        )


def own(path: Path, user: NodeUser | None, mode: int) -> None:
    """Make ``path`` (a node's directory or file) the node user's, with ``mode``."""
    if user is not None:
        os.chown(path, user.uid, user.gid)
    path.chmod(mode)


def unreadable_by(user: NodeUser, root: Path) -> Path | None:
    """The first path at or under ``root`` that ``user`` could not read (a directory: read and
    enter), or an ancestor it could not enter; None when every one is readable.

    The control plane uploads a service's local ``working_dir`` with its own rights; when its
    nodes run as another user, only what that user could read itself may go, or a service
    could ship the control plane's secret key or ``dev.env`` to its own code. Judged by mode
    bits (owner, group, other) on the targets of symlinks, as the kernel would."""
    groups = set(os.getgrouplist(user.name, user.gid))

    def allowed(path: Path, need: int) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        shift = 6 if st.st_uid == user.uid else 3 if st.st_gid in groups else 0
        return (st.st_mode >> shift) & need == need

    root = root.resolve()
    for ancestor in root.parents:
        if not allowed(ancestor, 1):
            return ancestor
    for path in [root, *sorted(root.rglob("*"))]:
        if not allowed(path, 5 if path.is_dir() else 4):
            return path
    return None
