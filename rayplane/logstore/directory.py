"""The log store in a local directory, for machines without Azurite: the same names and
the same contract as the blob store, files under ``<root>/<container>/``.

Appends hold an exclusive ``flock`` on the file, so the size check and the write are one
step for every process on this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

from rayplane.logstore.base import LogFile, LogKey, LogStore, OffsetMismatch, parse_name


class DirectoryLogStore(LogStore):
    def __init__(self, root: str | Path, container: str) -> None:
        self.root = Path(root) / container

    def _path(self, key: LogKey) -> Path:
        return self.root / key.name

    def size(self, key: LogKey) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, key: LogKey, data: bytes, *, offset: int) -> int:
        path = self._path(key)
        if offset == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | (os.O_CREAT if offset == 0 else 0), 0o600)
        except FileNotFoundError:
            raise OffsetMismatch(0) from None
        with os.fdopen(fd, "ab") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            actual = os.fstat(fh.fileno()).st_size
            if actual != offset:
                raise OffsetMismatch(actual)
            fh.write(data)
            fh.flush()
            return offset + len(data)

    def files(
        self, tenant: str, cluster: str, *, node: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[LogFile]:
        base = self.root / tenant / cluster
        prefix = f"{tenant}/{cluster}/"
        found: list[LogFile] = []
        if node is not None:
            base = base / node
        if base.is_dir():
            for path in base.rglob("*"):
                if not path.is_file():
                    continue
                parsed = parse_name(prefix, path.relative_to(self.root).as_posix())
                if parsed is not None:
                    st = path.stat()
                    name, component, rel = parsed
                    found.append(LogFile(name, component, rel, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        found.sort(key=lambda f: f.rel)
        out = [f for f in found if after is None or f.rel > after]
        return out if limit is None else out[:limit]

    def purge(self, older_than: datetime, *, tenant: str | None = None, skip: frozenset[str] = frozenset()) -> int:
        removed = 0
        base = self.root / tenant if tenant else self.root
        if not base.is_dir():
            return removed
        cutoff = older_than.timestamp()
        for path in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.relative_to(self.root).parts[0] in skip:
                continue
            with contextlib.suppress(FileNotFoundError, OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()  # a node's or cluster's directory left empty
        return removed

    def read(self, key: LogKey, offset: int = 0, length: int | None = None) -> bytes:
        with self._path(key).open("rb") as fh:
            fh.seek(offset)
            return fh.read(-1 if length is None else length)
