"""Plain words for what clusters report: no Kubernetes words reach a page.

Event reasons and state reasons are written for operators (on Azure they name pods, the
scheduler, DaemonSets …). The console shows them through :func:`plain`, which swaps those
terms for what a Ray user knows, and :data:`EXPLAIN` adds a sentence per known event code.
The swap is word-based on purpose: the rest of the text (an image name, an exit code, a size)
stays as the provider wrote it.
"""

from __future__ import annotations

import re

# Longest first within a family, so "cluster autoscaler" wins over "autoscaler" and "pods" over "pod".
_TERMS: tuple[tuple[str, str], ...] = (
    (r"\bKubeRay\b", "Rayplane"),
    (r"\bRayClusters?\b", "cluster"),
    (r"\bKubernetes\b", "the cloud"),
    (r"\bkubelet\b", "node agent"),
    (r"\bkubeconfig\b", "cloud access"),
    (r"\bAKS's\b", "Azure's"),
    (r"\bAKS\b", "Azure"),
    (r"\bDaemonSets?\b", "system services"),
    (r"\b[Nn]amespaces?\b", "cluster space"),
    (r"\bthe cluster autoscaler\b", "Azure's autoscaler"),
    (r"\bthe scheduler\b", "placement"),
    (r"\bcannot be scheduled\b", "cannot be placed"),
    (r"\bcan never be scheduled\b", "can never be placed"),
    (r"\b[Pp]ods\b", "nodes"),
    (r"\b[Pp]od\b", "node"),
    (r"\bOOMKilled\b", "out of memory"),
    (r"\bCrashLoopBackOff\b", "restarting repeatedly"),
    (r"\bImagePullBackOff\b|\bErrImagePull\b", "image not pulled"),
    (r"\bUnschedulable\b", "no room"),
    (r"\bNotTriggerScaleUp\b", "no node added"),
)
_COMPILED = tuple((re.compile(pattern), word) for pattern, word in _TERMS)

# A sentence for each cause the reconciler and providers record (by event code).
EXPLAIN: dict[str, str] = {
    "ProvisioningTimeout": "The nodes did not all come up in time; the cluster gave up waiting.",
    "NodeLost": "A node stopped answering; Rayplane replaces it.",
    "NodeEvicted": "The cloud took a node back (often a spot VM); Rayplane replaces it.",
    "NodeStartFailed": "A node could not start; Rayplane tries again.",
    "NotTriggerScaleUp": "The cloud could not add a node of this size now (quota or capacity).",
    "ImagePullFailed": "The container image could not be downloaded; check its name and access.",
    "CrashLoop": "Ray keeps exiting on a node; its logs say why.",
    "OutOfMemory": "A node ran out of memory; use a larger size or less memory per task.",
    "HeadNotReady": "The head node is still starting.",
    "RayNotInstalled": "Ray is not installed where the nodes run.",
    "NoFreePorts": "No free network ports were left for a node on this machine.",
    "PortTaken": "A port the cluster needs is used by something else.",
    "StopIncomplete": "Some nodes were still running after the stop; Rayplane tries again.",
    "TeardownIncomplete": "Some resources were still there after the delete; Rayplane tries again.",
    "ProviderUnavailable": "The cloud could not be reached; Rayplane tries again.",
    "KubernetesUnreachable": "The cloud account's compute service could not be reached; Rayplane tries again.",
    "NoKubeconfig": "The cloud account is not set up for clusters yet.",
    "RayTokenMissing": "The cluster's access token is missing; it gets one when it starts.",
    "InvalidConfiguration": "The cluster's settings were refused by the cloud.",
}


def plain(text: str) -> str:
    """``text`` with every Kubernetes term swapped for a plain one."""
    for pattern, word in _COMPILED:
        text = pattern.sub(word, text)
    return text
