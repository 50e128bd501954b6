"""The protobuf body decoder on hand-built messages: the wire types and the special messages
(Time, Quantity, IntOrString, bytes maps, packed and negative integers, inline structs)
kubectl's generators do not all produce."""

from __future__ import annotations

import pytest

from emulators.azure.kube.errors import KubeError
from emulators.azure.kube.protobuf import MAGIC, decode_body


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def msg(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def num(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + msg(1, msg(1, api_version) + msg(2, kind)) + msg(2, raw)


def test_special_messages_and_wire_types() -> None:
    meta = msg(1, "web") + msg(2, "") + num(7, 0) + msg(8, num(1, 1767225600)) + msg(11, msg(1, "app") + msg(2, "web"))
    container = (
        msg(1, "c")
        + msg(2, "img")
        + msg(8, msg(1, msg(1, "cpu") + msg(2, msg(1, "500m"))))  # resources.limits: map<string, Quantity>
        + msg(6, num(3, 8080) + msg(4, "TCP"))  # ports[0]
    )
    volume = msg(1, "v") + msg(2, msg(2, b""))  # Volume{name, VolumeSource{emptyDir: {}}} (inline)
    pod_spec = msg(2, container) + msg(1, volume) + num(4, -1 & ((1 << 64) - 1))  # terminationGracePeriodSeconds
    strategy = msg(1, "RollingUpdate") + msg(2, msg(2, num(1, 1) + msg(3, "25%")))  # maxSurge: IntOrString
    spec = num(1, 0) + msg(3, msg(2, pod_spec)) + msg(4, strategy)
    obj = decode_body(envelope("apps/v1", "Deployment", msg(1, meta) + msg(2, spec)))
    assert obj["metadata"] == {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}}
    assert obj["spec"]["replicas"] == 0
    assert obj["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}
    template = obj["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == -1
    assert template["volumes"] == [{"name": "v", "emptyDir": {}}]
    (c,) = template["containers"]
    assert c["resources"] == {"limits": {"cpu": "500m"}}
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


def test_bytes_maps_packed_integers_and_doubles() -> None:
    secret = msg(1, msg(1, "s")) + msg(2, msg(1, "k") + msg(2, b"\x00\xff")) + msg(3, "Opaque")
    assert decode_body(envelope("v1", "Secret", secret))["data"] == {"k": "AP8="}
    exit_codes = msg(2, "In") + msg(3, varint(1) + varint(42))  # packed repeated int32
    rule = msg(1, "FailJob") + msg(2, exit_codes)
    job_spec = msg(11, msg(1, rule)) + num(10, 0)  # podFailurePolicy, suspend: false (a pointer)
    job = decode_body(envelope("batch/v1", "Job", msg(1, msg(1, "j")) + msg(2, job_spec)))
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"] == {"operator": "In", "values": [1, 42]}
    assert job["spec"]["suspend"] is False


def test_malformed_and_unknown_bodies() -> None:
    with pytest.raises(KubeError) as caught:
        decode_body(envelope("v1", "ConfigMap", b"\x0a\x05ab"))  # truncated
    assert caught.value.code == 400
    with pytest.raises(KubeError) as caught:
        decode_body(envelope("example.com/v1", "Widget", b""))
    assert caught.value.code == 415
    assert "Widget" in caught.value.message
    # Unknown field numbers are skipped.
    assert decode_body(envelope("v1", "ConfigMap", msg(1, msg(1, "c")) + num(99, 7))) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
    }
