"""Runtime-env packages that the simulated Ray nodes fetch: ``http(s)://`` zip archives.

A real node downloads a remote ``working_dir`` when it sets up an application's runtime
environment and unpacks it; the emulated Serve does the same so that an application whose
code sits behind a URL is judged on that code (its module found or not), not waved through.
Archives are fetched once per URI and process (a URI names immutable code, as Ray assumes
when it caches packages by URI). Other remote schemes (``azure://``, ``s3://``, ...) cannot
be reached from here and are taken to hold the module.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import zipfile
from pathlib import Path

import httpx

MAX_PACKAGE_BYTES = 64 * 1024 * 1024
_lock = threading.Lock()
_root = Path(tempfile.mkdtemp(prefix="emulated-ray-packages-"))
_fetched: dict[str, Path] = {}


class FetchError(Exception):
    """The package could not be downloaded or unpacked; the text is what Ray would report."""


def unpacked(uri: str) -> Path:
    """The directory holding ``uri``'s archive, unpacked; the top directory of an archive
    that holds only one is taken as its root, as Ray does for ``working_dir`` zips."""
    with _lock:
        if uri in _fetched:
            return _fetched[uri]
    try:
        with httpx.stream("GET", uri, timeout=10.0, follow_redirects=True) as r:
            r.raise_for_status()
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MAX_PACKAGE_BYTES:
                    raise FetchError(f"{uri}: larger than {MAX_PACKAGE_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise FetchError(f"Failed to download runtime_env file package {uri}: {exc}") from None
    target = _root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            for name in archive.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise FetchError(f"{uri}: unsafe member {name!r}")
            archive.extractall(target)
    except zipfile.BadZipFile:
        raise FetchError(f"{uri}: not a zip archive") from None
    entries = list(target.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else target
    with _lock:
        _fetched[uri] = root
    return root
