"""Let the user local Ray nodes run as reach this interpreter (tests run as root here).

As root, the local provider starts Ray nodes as an unprivileged user and refuses to when
that user cannot run the Ray interpreter (``NodeUserCannotRunRay``). This machine's Python
comes from a pyenv under ``/root`` (mode 0700), out of any other user's reach; a production
image installs Python where every user can read it. So the test session adds only the
search bit (``o+x``: pass through, never list or read) to the directories above the
interpreter and the virtualenv that lack it, which is what an operator would do.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from rayplane.providers.local.isolation import DEFAULT_NODE_USER, resolve_node_user


def grant_node_user_access() -> None:
    if os.geteuid() != 0:
        return
    resolve_node_user(DEFAULT_NODE_USER)  # created here if missing, as the provider would
    for path in (Path(sys.executable).resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()):
        for parent in reversed(path.parents):
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
