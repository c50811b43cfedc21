"""The handler contract: what a node type receives, returns and raises.

Pure Python (no Django), so node types can be written and tested alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ERROR_CLASSES = ("execution", "timeout", "resource", "configuration", "cancelled")


class NodeError(Exception):
    """A handler failure with an error class that drives retry decisions."""

    error_class = "execution"
    retryable = True

    def __init__(self, message: str, *, error_class: str | None = None,
                 retryable: bool | None = None):
        super().__init__(message)
        if error_class is not None:
            if error_class not in ERROR_CLASSES:
                raise ValueError(f"unknown error class {error_class!r}")
            self.error_class = error_class
        if retryable is not None:
            self.retryable = retryable


class ConfigurationError(NodeError):
    error_class = "configuration"
    retryable = False


class ResourceError(NodeError):
    error_class = "resource"


class NodeTimeout(NodeError):
    error_class = "timeout"


@dataclass(frozen=True)
class Park:
    """Returned by a handler to park the node as WAITING without holding a worker.

    At `until` the ticker completes the node with `output`; no worker runs it
    again. With `signal`, `send_signal(execution, signal, payload)` completes it
    first (with the output the node type's `accept_signal` makes of the payload);
    `until=None` then waits for the signal alone. A wait measured from now also
    gives `after_s`: the engine then counts it on the database's clock, so a
    host whose clock is off still wakes it on time (`until` is its estimate).
    """

    until: datetime | None
    output: Any = None
    reason: str = "timer"
    signal: str | None = None
    after_s: float | None = None


@dataclass
class NodeContext:
    """What a handler sees: the execution input, upstream nodes, its own config.

    `nodes` maps each finished node id to {"status": ..., "output": ...} (output
    only when it succeeded), like the `nodes` variable of CEL expressions.
    `attempt` counts retries by policy; a re-run after a lost worker repeats it.
    """

    execution_id: str
    node_id: str
    node_type: str
    attempt: int
    config: dict
    input: dict
    nodes: dict[str, dict]
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def idempotency_key(self) -> str:
        """`execution:node:attempt`; a re-run after a lost worker keeps the same key."""
        return f"{self.execution_id}:{self.node_id}:{self.attempt}"

    @property
    def cancelled(self) -> bool:
        """True once the execution was cancelled or the lease lost: stop soon."""
        return self.cancel_event.is_set()

    def expression_context(self) -> dict:
        return {"input": self.input, "nodes": self.nodes}
