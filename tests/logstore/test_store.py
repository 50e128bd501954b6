"""The log store's contract, on Azurite (the real azure-storage-blob SDK) and on the
directory fallback alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rayplane.logstore import LogKey, LogStore, OffsetMismatch, component_of, open_store
from rayplane.logstore.base import valid_path
from rayplane.logstore.retention import purge_old_logs


@pytest.fixture(params=["blob", "directory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    if request.param == "blob":
        yield open_store(request.getfixturevalue("azurite"), f"t{uuid.uuid4().hex[:12]}")
    else:
        yield open_store(f"file://{tmp_path}", "rayplane-logs")


def key(path: str = "raylet.out", node: str = "head", cluster: str = "cls_1") -> LogKey:
    return LogKey("ten_1", cluster, node, path)


def test_append_at_offsets_and_refuse_a_wrong_one(store: LogStore) -> None:
    k = key()
    assert store.size(k) == 0
    size = store.append(k, b"one\ntwo\n", offset=0)
    size = store.append(k, b"three", offset=size)
    assert size == 13 == store.size(k)
    for stale in (0, 8, 20):
        with pytest.raises(OffsetMismatch) as err:
            store.append(k, b"again", offset=stale)
        assert err.value.actual == 13
    with pytest.raises(OffsetMismatch):
        store.append(key("missing.log"), b"x", offset=5)  # nothing to continue
    assert store.read(k) == b"one\ntwo\nthree"


def test_ranges_tail_and_search(store: LogStore) -> None:
    k = key("worker-abc-01000000-42.out")
    lines = [f"line {i} {'MARK' if i % 10 == 0 else ''}".encode() for i in range(1, 2001)]
    store.append(k, b"\n".join(lines) + b"\n", offset=0)
    assert store.read(k, 5, 6) == b"1 \nlin"
    assert store.read(k, 10**9) == b""
    assert store.read(k, 0, 0) == b""
    assert store.tail(k, 2) == b"line 1999 \nline 2000 MARK\n"
    assert store.tail(k, 5000).count(b"\n") == 2000
    hits = store.search(k, "MARK")
    assert [h.line for h in hits][:3] == [10, 20, 30]
    assert len(hits) == 200
    assert hits[0].text == "line 10 MARK"
    assert len(store.search(k, "MARK", limit=3)) == 3
    with pytest.raises(FileNotFoundError):
        store.read(key("nope.log"))
    with pytest.raises(FileNotFoundError):
        store.tail(key("nope.log"), 3)


def test_list_by_node_and_component(store: LogStore) -> None:
    store.append(key("raylet.out"), b"a", offset=0)
    store.append(key("gcs_server.err", node="head"), b"bb", offset=0)
    store.append(key("serve/controller_1.log", node="cpu-1"), b"ccc", offset=0)
    store.append(key("raylet.out", cluster="cls_2"), b"other cluster", offset=0)
    files = store.files("ten_1", "cls_1")
    assert [(f.node, f.component, f.path, f.size) for f in files] == [
        ("cpu-1", "serve", "serve/controller_1.log", 3),
        ("head", "gcs_server", "gcs_server.err", 2),
        ("head", "raylet", "raylet.out", 1),
    ]
    assert store.files("ten_2", "cls_1") == []


def test_pages_in_name_order_by_node(store: LogStore) -> None:
    # "gpu" and "gpu-1" are both node names: in stored-name order "gpu-1/…" comes before
    # "gpu/…" ('-' sorts before '/'), unlike a (node, path) tuple order; pages follow the names.
    for node, path in (("gpu", "raylet.out"), ("gpu-1", "raylet.out"), ("gpu-1", "worker-1.out"), ("head", "a.log")):
        store.append(key(path, node=node), b"x", offset=0)
    names = [f.rel for f in store.files("ten_1", "cls_1")]
    assert names == [
        "gpu-1/raylet/raylet.out",
        "gpu-1/worker/worker-1.out",
        "gpu/raylet/raylet.out",
        "head/other/a.log",
    ]
    assert names == sorted(names)
    walked, after = [], None
    while page := store.files("ten_1", "cls_1", after=after, limit=3):
        walked += [f.rel for f in page]
        after = page[-1].rel
    assert walked == names
    assert [f.rel for f in store.files("ten_1", "cls_1", node="gpu")] == ["gpu/raylet/raylet.out"]
    assert [f.rel for f in store.files("ten_1", "cls_1", node="gpu-1", after="gpu-1/raylet/raylet.out")] == [
        "gpu-1/worker/worker-1.out"
    ]
    assert store.files("ten_1", "cls_1", limit=0) == []
    assert store.exists(key("raylet.out", node="gpu"))
    assert not store.exists(key("a.log", node="gpu"))


def test_names_and_components() -> None:
    assert key("raylet.out").name == "ten_1/cls_1/head/raylet/raylet.out"
    assert component_of("python-core-worker-ab_12.log") == "python-core-worker"
    assert component_of("dashboard_agent.log") == "dashboard_agent"
    assert component_of("job-driver-raysubmit_1.log") == "job-driver"
    assert component_of("events/event_RAYLET.log") == "events"
    assert component_of("something.txt") == "other"
    for bad in ("../x", "a//b", "", "/abs", "a/../b", "x y"):
        assert not valid_path(bad)
    with pytest.raises(ValueError, match="not a log file name"):
        LogKey("t", "c", "Head", "raylet.out")


def test_purge_by_last_write(store: LogStore) -> None:
    store.append(key("raylet.out"), b"a", offset=0)
    store.append(key("serve/controller_1.log", node="cpu-1"), b"b", offset=0)
    assert store.purge(datetime.now(UTC) - timedelta(days=1)) == 0
    assert len(store.files("ten_1", "cls_1")) == 2
    assert store.purge(datetime.now(UTC) + timedelta(minutes=1)) == 2
    assert store.files("ten_1", "cls_1") == []
    assert store.size(key("raylet.out")) == 0


def test_each_tenant_keeps_its_logs_for_its_own_window(store: LogStore) -> None:
    """A tenant with a 7-day window loses its logs a week after their last write; the others
    keep theirs for the deployment's 30 days, and a purge of one tenant touches no other."""
    short, default = (
        LogKey("ten_short", "cls_1", "head", "raylet.out"),
        LogKey("ten_other", "cls_2", "head", "raylet.out"),
    )
    for k in (short, default):
        store.append(k, b"line\n", offset=0)
    now = datetime.now(UTC)
    removed, cutoff = purge_old_logs(store, 30, windows={"ten_short": 7}, now=now + timedelta(days=10))
    assert removed == 1
    assert cutoff == now + timedelta(days=10) - timedelta(days=30)
    assert store.files("ten_short", "cls_1") == []
    assert store.read(default) == b"line\n"
    # Forty days on, past the default window too.
    removed, _ = purge_old_logs(store, 30, windows={"ten_short": 7}, now=now + timedelta(days=40))
    assert removed == 1
    assert store.files("ten_other", "cls_2") == []
