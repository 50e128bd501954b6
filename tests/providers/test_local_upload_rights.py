"""A service's local ``working_dir`` is uploaded with the control plane's rights, so only what
the nodes' own user could read may go (``isolation.unreadable_by``): a service must not ship
the control plane's secret key or ``dev.env`` to its own code. Runs as root (as CI does)
with the nodes' user created if missing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayplane.providers.local import isolation
from rayplane.providers.local.isolation import NodeUser

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="judging another user's rights needs a second user (root)")


@pytest.fixture
def user() -> NodeUser:
    found = isolation.resolve_node_user(isolation.DEFAULT_NODE_USER)
    assert found is not None
    return found


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may enter (pytest's own temporary root is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="rp-upload-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def app(base: Path) -> Path:
    root = base / "app"
    (root / "pkg").mkdir(parents=True)
    (root / "main.py").write_text("app = 1\n")
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    for path in (root, root / "pkg"):
        path.chmod(0o755)
    for path in (root / "main.py", root / "pkg" / "mod.py"):
        path.chmod(0o644)
    return root


def test_a_world_readable_tree_goes(user: NodeUser, app: Path) -> None:
    assert isolation.unreadable_by(user, app) is None


def test_a_file_only_the_control_plane_reads_is_refused(user: NodeUser, app: Path) -> None:
    secret = app / "pkg" / "dev.env"
    secret.write_text("RAYPLANE_SECRET_KEY=x\n")
    secret.chmod(0o600)
    assert isolation.unreadable_by(user, app) == secret


def test_a_symlink_is_judged_by_its_target(user: NodeUser, app: Path, base: Path) -> None:
    target = base / "key"
    target.write_text("secret")
    target.chmod(0o600)
    (app / "link").symlink_to(target)
    assert isolation.unreadable_by(user, app) == app / "link"


def test_a_closed_directory_or_ancestor_is_refused(user: NodeUser, app: Path, base: Path) -> None:
    (app / "pkg").chmod(0o700)
    assert isolation.unreadable_by(user, app) == app / "pkg"
    (app / "pkg").chmod(0o755)
    base.chmod(0o700)
    try:
        assert isolation.unreadable_by(user, app) == base
    finally:
        base.chmod(0o755)


def test_the_owner_bits_count_for_the_owner(user: NodeUser, app: Path) -> None:
    mine = app / "mine.py"
    mine.write_text("y = 1\n")
    mine.chmod(0o400)
    os.chown(mine, user.uid, user.gid)
    assert isolation.unreadable_by(user, app) is None
