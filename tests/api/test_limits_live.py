"""Item 4 of issue 11, measured on a real server: an unauthenticated 50 MB body is answered
before the client has finished sending it, and the server's memory does not grow with it."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.marketplace.support import LiveApi

MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def live(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[LiveApi]:
    env = {
        "RAYPLANE_ENV": "test",
        "RAYPLANE_DATABASE_URL": database_url,
        "RAYPLANE_REDIS_URL": redis_url,
        "RAYPLANE_SECRET_KEY": "live-limits-key",
        "RAYPLANE_ENTRA_AUTHORITY": "https://127.0.0.1:9",
    }
    api = LiveApi(env, tmp_path / "api.log").start()
    yield api
    api.stop()


def send_until_answered(port: int, head: bytes, total: int) -> tuple[bytes, int]:
    """Send ``head`` then up to ``total`` body bytes, stopping as soon as an answer arrives;
    returns (the answer's first bytes, body bytes sent)."""
    sent = 0
    block = b"x" * (256 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        s.setblocking(False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s] if sent < total else [], [], 1)
            if readable:
                return s.recv(4096), sent
            if writable:
                try:
                    sent += s.send(block[: total - sent])
                except (BrokenPipeError, ConnectionResetError):
                    s.setblocking(True)
                    return s.recv(4096), sent
    raise AssertionError("no answer")


def test_an_unauthenticated_50_mb_body_is_refused_unread(live: LiveApi) -> None:
    assert live.proc is not None
    before = rss_bytes(live.proc.pid)
    total = 50 * MB
    # A declared length: refused at once (the limit is known before anything is read).
    head = (
        f"POST /v1/clusters HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n"
    ).encode()
    answer, sent = send_until_answered(live.port, head, total)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < total
    # Chunked, with a credential that is wrong: refused as it starts, the rest never read.
    head = (
        b"POST /v1/clusters HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer nope\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % MB + b" " * MB + b"\r\n"
    sent_chunks = 0
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(head)
        s.settimeout(0.05)
        answer = b""
        deadline = time.monotonic() + 60
        while not answer and time.monotonic() < deadline and sent_chunks < 50:
            try:
                s.sendall(chunk)
                sent_chunks += 1
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass
            try:
                answer = s.recv(4096)
            except TimeoutError:
                continue
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert sent_chunks < 50
    assert rss_bytes(live.proc.pid) - before < 20 * MB
