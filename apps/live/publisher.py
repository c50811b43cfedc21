"""Sends to the shared channel layer from sync code, off the committing thread.

One thread per process runs an event loop with a single sender task, so
messages leave in the order they were handed over and the layer's connections
live as long as the process. `send` never blocks a worker's commit path; a
message lost with a dying process is refilled by the consumers from the table.

Most groups have no follower at any moment (nobody watches a given execution
or client), and channels-redis's `group_send` costs two Redis round trips to find
that out, per group and batch. The sender first asks, for everything queued so
far, which groups have members (one pipelined ZCARD per Redis host) and sends
only to those. A follower that joins just after that question misses nothing:
consumers join their group *before* replaying from the table, and the events
were committed before they were published.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue | None = None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True,
                         name="braid-live-publisher").start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        ready.set()
        self.loop.run_until_complete(self._send_forever())

    async def _send_forever(self) -> None:
        layer = get_channel_layer()
        while True:
            entries = [await self.queue.get()]
            while not self.queue.empty():  # everything queued meanwhile, in one pass
                entries.append(self.queue.get_nowait())
            try:
                followed = await followed_groups(
                    layer, {name for names, _ in entries for name in names})
            except Exception:  # Redis down: followers refill from the table later
                log.warning("live fan-out of %d batch(es) failed", len(entries), exc_info=True)
                followed = set()
            for _, build in entries:
                try:
                    items = build(followed)
                except Exception:
                    log.exception("live fan-out: building a message failed")
                    items = []
                for group, message in items:
                    if followed is not None and group not in followed:
                        continue
                    try:
                        await layer.group_send(group, message)
                    except Exception:  # Redis down: followers refill from the table later
                        log.warning("live fan-out to %s failed", group, exc_info=True)
            for _ in entries:
                self.queue.task_done()

    def send(self, items: list[tuple[str, dict]]) -> None:
        """Queue (group, message) pairs for sending, in order."""
        if items:
            self.send_lazily({group for group, _ in items}, lambda _followed: items)

    def send_lazily(self, names: set[str],
                    build: Callable[[set[str] | None], list[tuple[str, dict]]]) -> None:
        """Queue messages for the groups `names`, built on the publisher's thread by
        `build(followed)` once it knows which of them have followers (None: all)."""
        if names:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (names, build))

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is sent (tests, shutdown)."""
        future = asyncio.run_coroutine_threadsafe(self.queue.join(), self.loop)
        future.result(timeout)


async def followed_groups(layer, names: set[str]) -> set[str] | None:
    """The groups among `names` that have members, asked in one pipeline per Redis host.

    None (send to every group) for a layer without channels-redis's group keys.
    A group whose members all expired still counts: `group_send` cleans it up.
    """
    if not names or not all(hasattr(layer, attr) for attr in
                            ("_group_key", "consistent_hash", "connection")):
        return None
    by_host: dict[int, list[str]] = defaultdict(list)
    for name in names:
        by_host[layer.consistent_hash(name)].append(name)
    followed = set()
    for index, group_names in by_host.items():
        pipe = layer.connection(index).pipeline(transaction=False)
        for name in group_names:
            pipe.zcard(layer._group_key(name))
        counts = await pipe.execute()
        followed.update(name for name, count in zip(group_names, counts, strict=True) if count)
    return followed


_publisher: Publisher | None = None
_lock = threading.Lock()


def get_publisher() -> Publisher:
    """One publisher per process (made again after a fork: threads do not survive it)."""
    global _publisher
    with _lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = Publisher()
        return _publisher
