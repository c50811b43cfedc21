"""How a node runs inside a worker, and how many more of each kind it has room for.

A worker leases a run only when it has a free slot of the kind that run needs:
a thread for a blocking handler, a pool process for a "mode": "process" one, a
place on the event loop for an async one. Inline handlers (cheap built-ins)
need none. Leasing more than that only makes runs wait inside one worker, where
no other worker can take them and their timeouts tick.
"""

from __future__ import annotations

from collections import Counter

from django.conf import settings

from apps.nodes.registry import get_node_type

INLINE, ASYNC, THREAD, PROCESS = "inline", "async", "thread", "process"


def kind_of(node_type_name: str, config: dict) -> str:
    node_type = get_node_type(node_type_name)
    if node_type is None or node_type.runs_inline(config):
        # An unknown type fails at once, on the calling thread; an inline type whose
        # expressions are not proven cheap runs on a thread (a budgeted evaluation
        # may block there without stopping the worker's heartbeats).
        return INLINE
    if node_type.is_async:
        return ASYNC
    return PROCESS if node_type.wants_process(config) else THREAD


def limits() -> dict[str, int]:
    cfg = settings.BRAID
    return {THREAD: cfg["THREADS"], PROCESS: cfg["PROCESSES"], ASYNC: cfg["ASYNC_SLOTS"]}


class Slots:
    """Free slots by kind, spent as runs are leased in one transaction."""

    def __init__(self, busy: Counter | None = None):
        self.free = {kind: n - (busy or Counter())[kind] for kind, n in limits().items()}

    def take(self, node_type_name: str, config: dict) -> bool:
        kind = kind_of(node_type_name, config)
        if kind not in self.free:
            return True
        if self.free[kind] <= 0:
            return False
        self.free[kind] -= 1
        return True
