"""Fan-out: committed events and emitted text reach every web process's followers.

Two modes, chosen by the configured channel layer:
- "layer" (channels-redis, production): the process that committed publishes each
  batch to the execution's and the client's groups from the after-commit hook
  (`apps.engine.hooks`), and emitted text likewise; every daphne is subscribed.
- "tail" (the in-memory layer of the embedded default): the committed events are
  in the table already; each web process tails it by id (`apps.live.tail`), and
  emitted text travels through OutputDelta rows.
Either way a consumer that misses a message refills the gap from the table.
"""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings

from apps.engine import hooks, streams
from apps.live import groups


def mode() -> str:
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    return "tail" if backend.endswith("InMemoryChannelLayer") else "layer"


def install() -> None:
    streams.set_factory(_open_stream)
    if mode() == "layer":
        hooks.subscribe(publish_committed)
    else:
        hooks.unsubscribe(publish_committed)


def _open_stream(execution_id: str, node_id: str, attempt: int):
    from apps.live.deltas import open_stream

    return open_stream(execution_id, node_id, attempt)


def publish(items: list[tuple[str, dict]]) -> None:
    from apps.live.publisher import get_publisher

    get_publisher().send(items)


def groups_by_execution(batch: hooks.CommittedBatch) -> dict[str, list[str]]:
    """Each execution of the batch and the groups its followers join."""
    found: dict[str, list[str]] = {}
    for event in batch.events:
        if event.execution_id not in found:
            found[event.execution_id] = groups.groups_for(event.execution_id, event.client_id)
    return found


def messages_for(batch: hooks.CommittedBatch, followed: set[str] | None = None,
                 by_execution: dict[str, list[str]] | None = None) -> list[tuple[str, dict]]:
    """One message per execution and group: the batch's events of that execution.

    With `followed`, only for the groups in it: an execution nobody follows
    costs no message at all (most of them, most of the time).
    """
    by_execution = groups_by_execution(batch) if by_execution is None else by_execution
    targets = {eid: names if followed is None else [g for g in names if g in followed]
               for eid, names in by_execution.items()}
    per_execution: dict[str, list] = defaultdict(list)
    for event in batch.events:
        if targets[event.execution_id]:
            per_execution[event.execution_id].append(
                {"seq": event.seq, "type": event.type, "payload": event.payload,
                 "at": event.at.isoformat()})
    return [(group, groups.events_message(eid, events))
            for eid, events in per_execution.items() for group in targets[eid]]


def publish_committed(batch: hooks.CommittedBatch) -> None:
    """The after-commit subscriber of the "layer" mode: the publisher's thread asks
    which groups have followers, then builds the messages for those only."""
    from apps.live.publisher import get_publisher

    by_execution = groups_by_execution(batch)
    get_publisher().send_lazily(
        {name for names in by_execution.values() for name in names},
        lambda followed: messages_for(batch, followed, by_execution))


def client_of(execution_id: str) -> str:
    from apps.live.selectors import client_of as lookup

    return lookup(execution_id)
