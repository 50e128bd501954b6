"""Watching a cluster or a service: new events as they are recorded, and waiting for an
operation to end.

The events endpoint pages oldest first and its last page has no ``next_cursor``, so a
watcher keeps the cursor that fetched the last page, reads that page again on each poll,
and prints only the events whose ids it has not printed yet.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic

from rich.console import Group
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from cli.client import Accepted, ApiError, ApiUnreachable, ClusterEvent, Operation, RayplaneClient
from cli.context import EXIT_CONFLICT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TIMEOUT, CliError
from cli.kinds import CLUSTERS, Kind, R
from cli.output import duration, err, notice, styled_state
from cli.views import event_text, one_line

POLL_SECONDS = 1.0


@dataclass
class EventFeed:
    """New events of one cluster (or of one service, with ``kind``), each returned once."""

    api: RayplaneClient
    resource_id: str
    kind: Kind[Any] = CLUSTERS
    cursor: str | None = None
    seen: set[str] = field(default_factory=set)

    def poll(self) -> list[ClusterEvent]:
        new: list[ClusterEvent] = []
        while True:
            page = self.kind.events(self.api, self.resource_id, self.cursor)
            for event in page["items"]:
                if event["id"] not in self.seen:
                    self.seen.add(event["id"])
                    new.append(event)
            if not page["next_cursor"]:
                return new
            self.cursor = page["next_cursor"]

    def skip_existing(self) -> None:
        """Mark what is there now as seen, so only later events are reported."""
        self.poll()


@dataclass
class Waiter(Generic[R]):
    """Polls until the operation (or, without one, the resource's state) settles.

    ``done`` says when the cluster or service is where the caller wants it (used without
    an operation); a FAILED one ends the wait unless FAILED is what is awaited.
    """

    api: RayplaneClient
    kind: Kind[R]
    resource: R
    operation_id: str | None
    done: Callable[[R], bool]
    goal: str
    timeout: float
    feed: EventFeed | None = None
    started: float = field(default_factory=time.monotonic)
    hiccup: bool = False

    def _status(self) -> Spinner:
        c = self.resource
        label = Text.assemble(
            (c["name"], "bold"),
            "  ",
            (c["state"], styled_state(c["state"]) or ""),
            f"  waiting for {self.goal}  {duration(time.monotonic() - self.started)}",
        )
        return Spinner("dots", text=label)

    def _check(self, op: Operation | None) -> bool:
        c = self.resource
        noun = self.kind.noun
        if op is not None:
            if op["status"] == "Succeeded":
                return True
            if op["status"] == "Failed":
                why = str(op.get("error_message") or c.get("state_reason") or "no reason given")
                code = f" [{op['error_code']}]" if op.get("error_code") else ""
                more = self.kind.failure(c)
                also = f" ({one_line(more)})" if more and more not in why else ""
                raise CliError(f"{noun} {c['name']} {op['kind']} failed: {why}{code}{also}", EXIT_FAILURE)
            if op["status"] == "Canceled":
                why = op.get("error_message") or "a later request replaced it"
                raise CliError(f"the {op['kind']} of {c['name']} was canceled: {why}", EXIT_CONFLICT)
            return False
        if self.done(c):
            return True
        if c["state"] == "FAILED":
            code = f" [{c['state_code']}]" if c.get("state_code") else ""
            raise CliError(f"{noun} {c['name']} FAILED: {c.get('state_reason') or 'no reason given'}{code}")
        return False

    def _step(self, show: Callable[[Text], None]) -> bool:
        """One poll; a hiccup of the API (no answer, 429, 5xx) is shown once and retried."""
        try:
            finished = self._poll(show)
        except (ApiUnreachable, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status < 500 and exc.status != 429:
                raise
            if not self.hiccup:
                show(Text(f"the API did not answer ({exc}); still trying", style="yellow"))
            self.hiccup = True
            return False
        self.hiccup = False
        return finished

    def _poll(self, show: Callable[[Text], None]) -> bool:
        self._show_events(show)
        # The operation first: once it has settled, the resource read after it is settled too.
        op = self.api.get_operation(self.operation_id) if self.operation_id else None
        self.resource = self.kind.get(self.api, self.resource["id"]).body
        finished = self._check(op)
        if finished:
            self._show_events(show)
        return finished

    def _show_events(self, show: Callable[[Text], None]) -> None:
        if self.feed is None:
            return
        for event in self.feed.poll():
            if not self._beside_the_point(event):
                show(event_text(event))

    def _beside_the_point(self, event: ClusterEvent) -> bool:
        """A move to UPDATING while the cluster is on its way to DELETED or STOPPED.

        A reconcile pass that began before the request sees the new generation and records
        RUNNING → UPDATING just before it notices the delete; nothing is updated. The event
        stays in ``clusters events``; a wait for the delete does not show it.
        """
        return self.goal in ("DELETED", "STOPPED") and event.get("to_state") == "UPDATING"

    def run(self) -> R:
        """Wait; the settled resource, or :class:`CliError` (failure, cancel, timeout)."""
        console = err()
        deadline = self.started + self.timeout
        if console.is_terminal:
            with Live(self._status(), console=console, transient=True, refresh_per_second=8) as live:
                while not self._step(live.console.print):
                    live.update(Group(self._status()))
                    self._sleep(deadline)
        else:
            while not self._step(lambda t: console.print(t, soft_wrap=True)):
                self._sleep(deadline)
        return self.resource

    def _sleep(self, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise CliError(
                f"timed out after {duration(self.timeout)} waiting for {self.resource['name']} to be {self.goal}"
                f" (it is {self.resource['state']}; the request goes on)",
                EXIT_TIMEOUT,
            )
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def follow_to(
    api: RayplaneClient,
    accepted: Accepted[R] | R,
    goal: str,
    timeout: float,
    feed: EventFeed | None = None,
    done: Callable[[R], bool] | None = None,
    verb: str | None = None,
    *,
    kind: Kind[R],
) -> R:
    """Follow an accepted request (or a cluster or service) to ``goal``, printing events as they come.

    ``verb`` names the request (``delete``…) for Ctrl-C, which stops the waiting and says
    the request goes on and how to follow it (exit 130).
    """
    if isinstance(accepted, Accepted):
        resource, op = accepted.resource, accepted.operation_id
    else:
        resource, op = accepted, None
    feed = feed or EventFeed(api, resource["id"], kind)
    check = done or (lambda r: r["state"] == goal)
    with request_goes_on(resource["name"], goal, verb, kind):
        settled = Waiter(api, kind, resource, op, check, goal, timeout, feed).run()
    notice(f"{settled['name']} is {settled['state']}", styled_state(settled["state"]) or "")
    return settled


@contextlib.contextmanager
def request_goes_on(name: str, goal: str, verb: str | None, kind: Kind[Any] = CLUSTERS) -> Iterator[None]:
    """Ctrl-C from here on stops the waiting, not the request: say so and how to follow it (exit 130).

    Commands enter it as soon as the API accepted their request, so that a Ctrl-C that lands
    between the acceptance and the waiting is told the same way.
    """
    try:
        yield
    except KeyboardInterrupt:
        going_on = f"the {verb} of {name} goes on" if verb else f"{name} is not changed by it"
        raise CliError(
            f"stopped waiting; {going_on}. Follow it with: {kind.follow_hint(name, goal)}", EXIT_INTERRUPTED
        ) from None
