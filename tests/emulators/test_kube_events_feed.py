"""The emulated API server's bookkeeping behind ``kubectl get events`` and watches, in process:
the event recorder folds repeats and keeps a bounded history, and the change feed that serves
watches is bounded per cluster and overall."""

from __future__ import annotations

from pathlib import Path

from emulators.azure.fleet import Fleet
from emulators.azure.kube.api import KubeAPI
from emulators.azure.kube.events import SCHEDULER, EventRecorder
from emulators.azure.kube.objects import ObjectStore
from emulators.azure.kube.watch import ChangeFeed
from emulators.azure.store import DocumentStore


def test_event_recorder_folds_repeats_and_is_bounded(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "state.db")
    api = KubeAPI(ObjectStore(store), Fleet(store))
    api.ensure_cluster("c")
    recorder = EventRecorder(api, per_cluster=3)
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "default", "uid": "u1"}}
    first = recorder.record("c", pod, "Warning", "FailedScheduling", "0/1 nodes are available.", component=SCHEDULER)
    again = recorder.record("c", pod, "Warning", "FailedScheduling", "0/1 nodes are available.", component=SCHEDULER)
    assert first is not None
    assert again is not None
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["count"] == 2
    assert again["firstTimestamp"] == first["firstTimestamp"]
    for n in range(5):
        recorder.record("c", pod, "Normal", "Other", f"message {n}", component=SCHEDULER)
    stored = api.objects.select("c", "core/events", "default")
    assert [e["message"] for e in stored if e["reason"] == "Other"] == ["message 2", "message 3", "message 4"]
    assert all(e["reason"] != "FailedScheduling" for e in stored)
    off = EventRecorder(api, enabled=lambda: False)  # the record_events knob
    assert off.record("c", pod, "Normal", "Other", "not written", component=SCHEDULER) is None
    assert (
        recorder.record("c", {**pod, "metadata": {"name": "x", "namespace": "gone"}}, "Normal", "R", "m", component="k")
        is None
    )


def test_change_feed_is_bounded_per_cluster_and_overall(tmp_path: Path) -> None:
    objects = ObjectStore(DocumentStore(tmp_path / "state.db"))
    feed = ChangeFeed(objects, capacity=3, total=5)
    start = int(objects.resource_version)
    for n in range(4):
        objects.put("a", "core/configmaps", {"metadata": {"name": f"cm{n}", "namespace": "default"}})
    held = feed.since("a", int(objects.resource_version) - 3)
    assert held is not None
    assert len(held) == 3
    assert feed.since("a", start) is None  # the first change of "a" was evicted
    for n in range(3):
        objects.put("b", "core/configmaps", {"metadata": {"name": f"cm{n}", "namespace": "default"}})
    # At most five changes overall: "a" lost its oldest ones to "b"'s.
    assert len(feed.since("b", start) or []) == 3
    left = feed.since("a", feed.floor("a")) or []
    assert [c.new["metadata"]["name"] for c in left if c.new is not None] == ["cm3"]
    drops = feed.drops("b")
    objects.drop_cluster("b")
    assert feed.drops("b") == drops + 1
