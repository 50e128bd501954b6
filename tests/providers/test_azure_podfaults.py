"""What the kubelet writes into a Ray pod's status, said plainly (``podfaults.pod_faults``)."""

from __future__ import annotations

from typing import Any

from rayplane.providers.azure.podfaults import pod_faults

IMAGE = "myacr.azurecr.io/ray-gpu:1.4"
ERROR = f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": not found'


def pod(name: str, group: str | None, *statuses: dict[str, Any], **status: Any) -> dict[str, Any]:
    labels = {"ray.io/node-type": "head"} if group is None else {"ray.io/node-type": "worker", "ray.io/group": group}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"phase": "Running", "containerStatuses": list(statuses), **status},
    }


def waiting(reason: str, message: str, image: str = IMAGE) -> dict[str, Any]:
    return {"name": "ray-worker", "image": image, "state": {"waiting": {"reason": reason, "message": message}}}


def test_a_pull_error_and_the_back_off_after_it_read_the_same() -> None:
    first = pod_faults([pod("w-1", "gpu", waiting("ErrImagePull", ERROR), phase="Pending")])
    later = pod_faults(
        [pod("w-1", "gpu", waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}": ErrImagePull: {ERROR}'))]
    )
    assert first == later
    [event] = first
    assert event.code == "ImagePullFailed"
    assert "a node of group 'gpu' (w-1)" in event.reason
    assert IMAGE in event.reason
    assert "not found" in event.reason
    assert "--attach-acr" in event.reason


def test_a_head_with_two_containers_of_one_image_is_said_once() -> None:
    sidecar = {**waiting("ErrImagePull", ERROR), "name": "autoscaler"}
    [event] = pod_faults([pod("h", None, waiting("ErrImagePull", ERROR), sidecar)])
    assert event.reason.startswith("the head (h) cannot start")


def test_oom_kills_count_restarts_and_crash_loops_give_the_exit_code() -> None:
    oom = {
        "name": "ray-worker",
        "image": IMAGE,
        "restartCount": 2,
        "state": {"running": {}},
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    }
    crash = {
        **waiting("CrashLoopBackOff", "back-off 40s restarting failed container"),
        "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
    }
    [killed, looping] = pod_faults([pod("w-2", "cpu", oom), pod("w-3", "cpu", crash)])
    assert (killed.code, looping.code) == ("OutOfMemory", "CrashLoop")
    assert "restart 2" in killed.reason
    assert "more memory" in killed.reason
    assert "exit code 1, Error" in looping.reason


def test_an_evicted_pod_says_what_happens_next_and_a_healthy_one_says_nothing() -> None:
    evicted = pod("w-4", "spot", phase="Failed", reason="Evicted", message="The node aks-x was evicted.")
    healthy = pod("w-5", "cpu", {"name": "ray-worker", "image": IMAGE, "state": {"running": {}}, "lastState": {}})
    [event] = pod_faults([evicted, healthy])
    assert event.code == "NodeEvicted"
    assert "The node aks-x was evicted." in event.reason
    assert "Rayplane replaces the node" in event.reason
