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


def messages_for(batch: hooks.CommittedBatch) -> list[tuple[str, dict]]:
    """One message per execution and group: the batch's events of that execution."""
    per_execution: dict[str, list] = defaultdict(list)
    clients: dict[str, str] = {}
    for event in batch.events:
        per_execution[event.execution_id].append(
            {"seq": event.seq, "type": event.type, "payload": event.payload,
             "at": event.at.isoformat()})
        clients[event.execution_id] = event.client_id
    return [(group, groups.events_message(eid, events))
            for eid, events in per_execution.items()
            for group in groups.groups_for(eid, clients[eid])]


def publish_committed(batch: hooks.CommittedBatch) -> None:
    """The after-commit subscriber of the "layer" mode."""
    publish(messages_for(batch))


def client_of(execution_id: str) -> str:
    from apps.live.selectors import client_of as lookup

    return lookup(execution_id)
