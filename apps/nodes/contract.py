"""The handler contract: what a node type receives, returns and raises.

Pure Python (no Django), so node types can be written and tested alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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


MAX_LOG_LINES = 200
MAX_LOG_CHARS = 2000
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


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
    # Where `emit` sends partial output (set by the worker; None: kept, not streamed).
    emit_sink: Callable[[str], None] | None = field(default=None, repr=False)
    emitted: list[str] = field(default_factory=list, repr=False)
    # Lines the handler logged with `log`, kept with the node run (bounded).
    logs: list[dict] = field(default_factory=list, repr=False)
    logs_dropped: int = field(default=0, repr=False)

    def log(self, message: str, level: str = "info") -> None:
        """Log a line for this node run: kept with the run (shown with it in the admin,
        the API and `braid status`) and sent to the `braid.node` logger. At most
        MAX_LOG_LINES lines of MAX_LOG_CHARS are kept; the rest are counted."""
        import logging
        from datetime import UTC
        from datetime import datetime as _dt

        level = level if level in LOG_LEVELS else "info"
        text = str(message)[:MAX_LOG_CHARS]
        logging.getLogger("braid.node").log(
            LOG_LEVELS[level], "%s", text,
            extra={"execution": self.execution_id, "node": self.node_id,
                   "attempt": self.attempt})
        if len(self.logs) >= MAX_LOG_LINES:
            self.logs_dropped += 1
            return
        self.logs.append({"at": _dt.now(UTC).isoformat(timespec="milliseconds"),
                          "level": level, "message": text})

    def captured_logs(self) -> list[dict]:
        if not self.logs_dropped:
            return list(self.logs)
        return [*self.logs, {"at": self.logs[-1]["at"], "level": "warning",
                             "message": f"… {self.logs_dropped} more line(s) not kept"}]

    def emit(self, text: str) -> None:
        """Stream partial output (e.g. LLM tokens) to live followers of the execution.

        Chunks are batched into `node.output.delta` frames; they are not events of
        the log. The whole text becomes durable in the node's output when it
        finishes (see `with_emitted_text`).
        """
        if not isinstance(text, str):
            raise TypeError(f"emit() takes str, not {type(text).__name__}")
        if not text:
            return
        self.emitted.append(text)
        if self.emit_sink is not None:
            self.emit_sink(text)

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


def with_emitted_text(value: Any, ctx: NodeContext) -> Any:
    """A handler's return value with the text it emitted made durable.

    Nothing emitted: unchanged. Returned None: `{"text": <all emitted text>}`. A dict
    without "text": that dict plus "text". A dict with "text", or any other value:
    unchanged (the handler said what its output is).
    """
    if not ctx.emitted:
        return value
    text = "".join(ctx.emitted)
    if value is None:
        return {"text": text}
    if isinstance(value, dict) and "text" not in value:
        return {**value, "text": text}
    return value
