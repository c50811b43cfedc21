"""Sends to the shared channel layer from sync code, off the committing thread.

One thread per process runs an event loop with a single sender task, so
messages leave in the order they were handed over and the layer's connections
live as long as the process. `send` never blocks a worker's commit path; a
message lost with a dying process is refilled by the consumers from the table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

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
            items = await self.queue.get()
            for group, message in items:
                try:
                    await layer.group_send(group, message)
                except Exception:  # Redis down: followers refill from the table later
                    log.warning("live fan-out to %s failed", group, exc_info=True)
            self.queue.task_done()

    def send(self, items: list[tuple[str, dict]]) -> None:
        """Queue (group, message) pairs for sending, in order."""
        if items:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, items)

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is sent (tests, shutdown)."""
        future = asyncio.run_coroutine_threadsafe(self.queue.join(), self.loop)
        future.result(timeout)


_publisher: Publisher | None = None
_lock = threading.Lock()


def get_publisher() -> Publisher:
    """One publisher per process (made again after a fork: threads do not survive it)."""
    global _publisher
    with _lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = Publisher()
        return _publisher
