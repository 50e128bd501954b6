"""The typed values of the clusters noun: states, desired states, operations, reconcile actions.

They are ``StrEnum``s, so each is stored and serialised as its plain string (the database
columns and the JSON API keep their spelling) while code compares and passes typed values.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    """Where a cluster is in its life (the transitions are in ``rayplane.clusters.states``)."""

    PENDING = "PENDING"
    PROVISIONING = "PROVISIONING"
    RUNNING = "RUNNING"
    UPDATING = "UPDATING"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    FAILED = "FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    # Services only (a plain cluster never enters them; see ``states.SERVICE_ONLY``).
    DEPLOYING = "DEPLOYING"  # Serve applications being applied on the serving version
    ROLLING_OUT = "ROLLING_OUT"  # a new version beside the serving one, traffic moving to it
    ROLLING_BACK = "ROLLING_BACK"  # a new version being dropped, traffic back on the old one


class ClusterKind(enum.StrEnum):
    """A plain Ray cluster, or a service: a cluster that runs Ray Serve applications behind a
    stable endpoint and rolls out new versions (``/v1/services``)."""

    CLUSTER = "cluster"
    SERVICE = "service"


class DesiredState(enum.StrEnum):
    """What the user wants the cluster to be; only the API, budgets and the Marketplace set it."""

    RUNNING = "running"
    STOPPED = "stopped"
    DELETED = "deleted"


class OperationKind(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    STOP = "stop"
    START = "start"
    RETRY = "retry"
    DELETE = "delete"
    ROLLBACK = "rollback"  # services: drop the version being rolled out


class OperationStatus(enum.StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


class Action(enum.StrEnum):
    """What one reconcile pass does (``rayplane.clusters.reconcile.choose_action``)."""

    ENSURE = "ensure"
    STOP = "stop"
    TEARDOWN = "teardown"
    # Stop the nodes of a FAILED cluster, which stays FAILED (``states.ON_ENTER``).
    RELEASE = "release"
    NONE = "none"


class EventKind(enum.StrEnum):
    """Kinds of rows in a cluster's event history."""

    CREATED = "created"
    STATE_CHANGED = "state_changed"
    SCALED = "scaled"
    NODE_LOST = "node_lost"
    JOB_FINISHED = "job_finished"
    IDLE_STOP = "idle_stop"
    ERROR = "error"
    PROVIDER = "provider"
    STOP_REQUESTED = "stop_requested"
    DELETE_REQUESTED = "delete_requested"
    BUDGET_STOP = "budget_stop"
    COMPUTE_RELEASED = "compute_released"
    ROLLBACK_REQUESTED = "rollback_requested"
    ROLLOUT_FAILED = "rollout_failed"
