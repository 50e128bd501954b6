"""What a control plane that starts again cannot vouch for: its local clusters' nodes.

The dev supervisor stops the local Ray nodes of its clusters when it stops, and a crash or a
reboot takes them too, so after a restart a local cluster recorded RUNNING may have no node
at all. Before the API serves anything, such clusters move to DEGRADED ("checking after a
restart") and are due at once; the first reconcile pass then confirms what runs, restarting
what does not, and only that pass moves them back to RUNNING. Usage intervals are left to
that pass too: it records what it observes, which closes what no longer runs.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from rayplane.clusters import store
from rayplane.clusters.states import transition
from rayplane.clusters.values import State
from rayplane.db.base import utcnow

RESTARTED = "Restarted"


def unconfirm(sessions: sessionmaker[Session], provider: str = "local") -> list[str]:
    """Mark RUNNING and UPDATING clusters on ``provider`` clouds unconfirmed; their ids."""
    with sessions() as session, session.begin():
        clusters = store.live_on_provider(session, provider, (State.RUNNING, State.UPDATING))
        now = utcnow()
        for cluster in clusters:
            transition(
                session,
                cluster,
                State.DEGRADED,
                reason="the control plane restarted; checking that the cluster's Ray nodes still run",
                code=RESTARTED,
            )
            cluster.next_reconcile_at = now
        return [c.id for c in clusters]
