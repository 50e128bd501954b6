"""Stop, start, retry and delete a cluster or a service, and show its timeline: the commands
``rayplane clusters …`` and ``rayplane services …`` share, written once over a :class:`Kind`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable

from cli.context import OutputFormat, client, confirm, fmt, resolve_ref
from cli.kinds import Kind, R
from cli.output import dump, notice, out, render_list
from cli.views import EVENT_COLUMNS, event_text
from cli.watch import EventFeed, follow_to, request_goes_on

#: What each action leaves a cluster or service in, and the states in which there is nothing
#: to do: (goal, {state: how to say it is there already}).
ALREADY: dict[str, tuple[str, dict[str, str]]] = {
    "stop": ("STOPPED", {"STOPPED": "already stopped", "STOPPING": "already stopping"}),
    "start": ("RUNNING", {"RUNNING": "already running", "STARTING": "already starting"}),
    "retry": ("RUNNING", {}),
    "delete": ("DELETED", {"DELETED": "already deleted", "DELETING": "already being deleted"}),
}
#: The desired state each action asks for: a cluster STOPPED with a start pending is not "already stopped".
DESIRED = {"stop": "stopped", "start": "running", "retry": "running", "delete": "deleted"}
#: What a stop or delete asked for already, whose state has not moved yet, is on its way (a
#: desired state of "running" says less: it is also that of a FAILED or a provisioning one).
ON_ITS_WAY = {"stop": "already stopping", "delete": "already being deleted"}


def already_there(action: str, state: str, desired: str) -> str | None:
    """How to say that ``action`` has nothing to do on a resource in ``state``, wanting ``desired``."""
    goal, already = ALREADY[action]
    if state in already and (state == "DELETED" or desired == DESIRED[action]):
        return already[state]
    if action in ON_ITS_WAY and desired == DESIRED[action] and state != goal:
        return ON_ITS_WAY[action]
    return None


def request_action(
    kind: Kind[R],
    ref: str,
    action: str,
    wait_: bool,
    timeout: float,
    show: Callable[[R], None],
    yes: bool = True,
) -> None:
    """Request ``action`` on the cluster or service the user named, or say why there is nothing to do.

    One already where the action would take it is not asked again: the answer names what
    the user typed and is the same however often the command runs (exit 0).
    """
    goal = ALREADY[action][0]
    with client() as api:
        r = resolve_ref(api, kind, ref)
        where = f"{kind.noun} {ref!r}" + (f" ({r['id']})" if r["id"] != ref else "")
        settled = already_there(action, r["state"], r["desired_state"])
        if settled:
            notice(f"{where} is {settled}")
            if wait_ and r["state"] != goal:
                r = follow_to(api, r, goal, timeout, verb=action, kind=kind)
            show(r)
            return
        if action == "delete":
            confirm(f"Delete {where} and stop everything running on it?", yes)
        feed = EventFeed(api, r["id"], kind)
        if wait_:
            feed.skip_existing()
        accepted = kind.act(api, r["id"], action)
        r = accepted.resource
        with request_goes_on(r["name"], goal, action, kind) if wait_ else contextlib.nullcontext():
            notice(f"{action.capitalize()} requested for {r['name']} ({r['id']})")
            if wait_:
                r = follow_to(api, accepted, goal, timeout, feed, verb=action, kind=kind)
    show(r)


def show_events(kind: Kind[R], ref: str, follow: bool, output: OutputFormat | None) -> None:
    """A cluster's or service's events, oldest first; with ``follow``, new ones as they come
    until it is DELETED (one JSON object per line with ``-o json``)."""
    form = fmt(output)
    with client() as api:
        r = resolve_ref(api, kind, ref)
        feed = EventFeed(api, r["id"], kind)
        first = feed.poll()
        if not follow:
            render_list(first, EVENT_COLUMNS, form, empty=f"No events for {r['name']}.")
            return
        batch = first
        while True:
            for event in batch:
                if form == "table":
                    out().print(event_text(event), soft_wrap=True)
                else:  # one JSON object per line, or one YAML document per event
                    sys.stdout.write(json.dumps(event) + "\n" if form == "json" else f"---\n{dump(event, form)}\n")
                    sys.stdout.flush()
            if r["state"] == "DELETED":
                return
            time.sleep(1.0)
            batch = feed.poll()
            r = kind.get(api, r["id"]).body
