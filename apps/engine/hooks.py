"""After-commit subscribers: who hears about committed state changes.

Live progress, alerts and metrics subscribe here instead of reaching into the
protocol. `Batch.flush` hands every batch's events to `transaction.on_commit`,
so a subscriber sees only what the database really holds, in `seq` order per
execution, and never slows or breaks the transaction that wrote them: a
subscriber that raises is logged and the others still run.

A subscriber is called in the process that committed (a worker, the ticker, a
web process) with a list of `CommittedEvent`s and the executions that moved;
it must be quick (publish to a channel layer, bump a counter). Anything slow
belongs in a task it enqueues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

log = logging.getLogger(__name__)


class CommittedEvent(NamedTuple):
    """One committed event (a tuple: a group commit makes one per event, and a
    frozen dataclass cost several times as much to build)."""

    execution_id: str
    seq: int
    type: str
    payload: dict
    at: datetime
    client_id: str = ""


class ExecutionInfo(NamedTuple):
    """What a subscriber may need of an execution without a query."""

    status: str
    definition_id: int
    version_id: int
    queue: str
    client_id: str = ""


@dataclass(frozen=True)
class CommittedBatch:
    events: Sequence[CommittedEvent]
    # Each execution the batch touched (by id), as it stands after the commit.
    executions: dict[str, ExecutionInfo] = field(default_factory=dict)

    @property
    def statuses(self) -> dict[str, str]:
        return {pk: info.status for pk, info in self.executions.items()}


Subscriber = Callable[[CommittedBatch], None]
_subscribers: list[Subscriber] = []


def subscribe(fn: Subscriber) -> Subscriber:
    """Register `fn` (usable as a decorator). Registering twice is harmless."""
    if fn not in _subscribers:
        _subscribers.append(fn)
    return fn


def unsubscribe(fn: Subscriber) -> None:
    if fn in _subscribers:
        _subscribers.remove(fn)


def has_subscribers() -> bool:
    return bool(_subscribers)


def publish(batch: CommittedBatch) -> None:
    for fn in list(_subscribers):
        try:
            fn(batch)
        except Exception:  # one broken subscriber must not silence the others
            log.exception("after-commit subscriber %r failed", fn)
