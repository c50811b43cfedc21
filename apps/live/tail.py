"""The embedded default's fan-out: each web process tails the event table.

Without a shared channel layer, the process that commits (a worker) cannot
reach the web process's consumers. Events are in the table already, so while
anyone follows in this process, one task per event loop polls it by primary
key (`id > last`, an index range scan; nothing when idle) and sends what is new
to the in-memory groups, with emitted text from OutputDelta rows likewise.

On SQLite writers are serialised, so ids appear in commit order. Elsewhere a
later id can commit first; the consumers' gap refill and heartbeat catch-up
cover that.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict

from channels.layers import get_channel_layer
from django.conf import settings

from apps.live import groups, reads, selectors

log = logging.getLogger(__name__)


async def read(fn, *args):
    # Always the same reader thread: its kept connection serves 20 polls a second.
    return await reads.read(fn, *args, reader=0)


class Tailer:
    def __init__(self):
        self.followers = 0
        self.task: asyncio.Task | None = None
        self.last_event = 0
        self.last_delta = 0

    async def join(self) -> None:
        """Count a follower in; start tailing from now if not running.

        Awaited before the follower replays from the table, so every event is in
        the replay or in the tail (or both: the consumer drops duplicates).
        """
        self.followers += 1
        if self.task is None or self.task.done():
            self.last_event, self.last_delta = await read(selectors.tail_start)
            self.task = asyncio.get_running_loop().create_task(self._run())

    def leave(self) -> None:
        self.followers = max(0, self.followers - 1)

    async def _run(self) -> None:
        layer = get_channel_layer()
        poll = settings.BRAID_LIVE["POLL_S"]
        while self.followers > 0:
            try:
                busy = await self._step(layer)
            except Exception:  # a locked or restarting database: try again shortly
                log.warning("live tail failed", exc_info=True)
                busy = False
            if not busy:
                await asyncio.sleep(poll)

    async def _step(self, layer) -> bool:
        events = await read(selectors.events_since, self.last_event)
        deltas = await read(selectors.deltas_since, self.last_delta)
        # Deltas first within a round: a node's last delta precedes its completion.
        for pk, client, frame in deltas:
            self.last_delta = pk
            for group in groups.groups_for(frame["execution"], client):
                await layer.group_send(group, groups.delta_message(frame))
        per_execution: dict[str, list] = defaultdict(list)
        clients = {}
        for pk, eid, client, event in events:
            self.last_event = pk
            per_execution[eid].append(event)
            clients[eid] = client
        for eid, batch in per_execution.items():
            for group in groups.groups_for(eid, clients[eid]):
                await layer.group_send(group, groups.events_message(eid, batch))
        return bool(events or deltas)


# One tailer per event loop (tests run several loops in one process).
_tailers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tailer() -> Tailer:
    loop = asyncio.get_running_loop()
    if loop not in _tailers:
        _tailers[loop] = Tailer()
    return _tailers[loop]
