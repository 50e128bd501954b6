"""The console's plain words for what providers report."""

from __future__ import annotations

from web.wording import plain


def test_kubernetes_words_become_plain_ones() -> None:
    reason = (
        "the cpu pods cannot be scheduled: 0/3 nodes are available. The cluster autoscaler: "
        "NotTriggerScaleUp after AKS's reservations and DaemonSets; Kubernetes is backing off (OOMKilled)"
    )
    said = plain(reason)
    for word in ("pod", "Kubernetes", "AKS", "DaemonSet", "OOMKilled", "scheduled"):
        assert word.lower() not in said.lower(), (word, said)
    assert said.startswith("the cpu nodes cannot be placed: 0/3 nodes are available.")


def test_other_text_is_left_as_written() -> None:
    assert plain("image 'rayproject/ray:2.60.0' exit code 137") == "image 'rayproject/ray:2.60.0' exit code 137"
