"""Retention: log files last written before the window are purged, fresher ones kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rayplane.logstore import LogKey, open_store
from rayplane.logstore.retention import purge_old_logs


def test_purge_old_logs_keeps_the_window(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}", "logs")
    old, fresh = LogKey("ten_1", "cls_old", "head", "raylet.out"), LogKey("ten_1", "cls_new", "head", "raylet.out")
    store.append(old, b"old\n", offset=0)
    store.append(fresh, b"fresh\n", offset=0)
    stale = time.time() - 31 * 86400
    os.utime(tmp_path / "logs" / old.name, (stale, stale))
    removed, _cutoff = purge_old_logs(store, 30)
    assert removed == 1
    assert store.files("ten_1", "cls_old") == []
    assert store.read(fresh) == b"fresh\n"
    assert not (tmp_path / "logs" / "ten_1" / "cls_old").exists()  # emptied directories go too
