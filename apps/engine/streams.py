"""Where `ctx.emit(text)` goes: the seam between node handlers and live followers.

The engine knows nothing of WebSockets. A higher floor (apps/live) registers a
factory; the first `emit` of a running node opens one stream through it, and
the worker closes (flushes) that stream when the handler returns, before the
result is committed. With no factory registered, emitted text is only kept for
the node's output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class OutputStream(Protocol):
    def write(self, text: str) -> None: ...

    def close(self) -> None: ...


StreamFactory = Callable[[str, str, int], OutputStream]
_factory: StreamFactory | None = None


def set_factory(factory: StreamFactory | None) -> None:
    """Register who streams emitted text: factory(execution_id, node_id, attempt)."""
    global _factory
    _factory = factory


class LazySink:
    """A node's `emit_sink`: opens its stream on the first chunk (most nodes emit none)."""

    __slots__ = ("execution_id", "node_id", "attempt", "stream", "closed")

    def __init__(self, execution_id: str, node_id: str, attempt: int):
        self.execution_id, self.node_id, self.attempt = execution_id, node_id, attempt
        self.stream: OutputStream | None = None
        self.closed = False

    def __call__(self, text: str) -> None:
        if self.closed:  # a handler still talking after its result was taken
            return
        if self.stream is None:
            if _factory is None:
                return
            self.stream = _factory(self.execution_id, self.node_id, self.attempt)
        self.stream.write(text)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.stream is not None:
            try:
                self.stream.close()
            except Exception:  # streaming is best effort; the output is the record
                log.exception("closing the output stream of %s/%s failed",
                              self.execution_id, self.node_id)
