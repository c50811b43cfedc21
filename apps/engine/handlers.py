"""Calling a node handler and turning what it did into a `Result`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from apps.engine.streams import LazySink
from apps.engine.transitions import Claim
from apps.nodes import payloads
from apps.nodes.contract import ConfigurationError, NodeContext, NodeError, Park, with_emitted_text
from apps.nodes.registry import get_node_type


@dataclass
class Result:
    """What a handler produced for one claimed run (its lease token is the fence)."""

    run_id: int
    lease_token: int
    execution_id: str
    outcome: str  # succeeded | failed | parked | skipped (a gate found no link taken)
    output: object = None
    error_class: str = ""
    message: str = ""
    retryable: bool = True
    duration_ms: float | None = None
    park_until: datetime | None = None
    extra: dict = field(default_factory=dict)
    logs: list = field(default_factory=list)  # what the handler logged with ctx.log


def context_for(claim: Claim) -> NodeContext:
    return NodeContext(execution_id=claim.execution_id, node_id=claim.node_id,
                       node_type=claim.node_type, attempt=claim.attempt, config=claim.config,
                       input=claim.input, nodes=claim.nodes,
                       emit_sink=LazySink(claim.execution_id, claim.node_id, claim.attempt))


def settle(ctx: NodeContext, value):
    """After the handler: flush its output stream; the emitted text joins its output."""
    close_stream(ctx)
    return with_emitted_text(value, ctx)


def close_stream(ctx: NodeContext) -> None:
    if isinstance(ctx.emit_sink, LazySink):
        ctx.emit_sink.close()


def outcome(claim: Claim, value, started: float) -> Result:
    """A handler's return value as a Result; non-JSON or oversize output fails the node."""
    elapsed = (time.monotonic() - started) * 1000
    if isinstance(value, Park):
        return Result(claim.run_id, claim.lease_token, claim.execution_id, "parked",
                      output=value.output, park_until=value.until, duration_ms=elapsed,
                      extra={"reason": value.reason, "signal": value.signal,
                             "after_s": value.after_s})
    try:
        payloads.check(value, "output", settings.BRAID["MAX_PAYLOAD_BYTES"])
    except payloads.PayloadError as exc:
        return failure(claim, NodeError(str(exc), retryable=False), started)
    return Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                  output=value, duration_ms=elapsed)


def failure(claim: Claim, exc: BaseException, started: float | None = None) -> Result:
    """An exception as a classified failure (NodeError keeps its class)."""
    if isinstance(exc, NodeError):
        error_class, retryable, message = exc.error_class, exc.retryable, str(exc)
    else:
        error_class, retryable = "execution", True
        message = f"{type(exc).__name__}: {exc}"
    elapsed = (time.monotonic() - started) * 1000 if started is not None else None
    return Result(claim.run_id, claim.lease_token, claim.execution_id, "failed",
                  error_class=error_class, message=message, retryable=retryable,
                  duration_ms=elapsed)


def cannot_run(claim: Claim) -> Result:
    """The failure of a node this deployment cannot run (see Node.problem)."""
    return failure(claim, ConfigurationError(
        f"node {claim.node_id!r} cannot run on this deployment: {claim.problem}"))


def call_sync(node_type, claim: Claim, ctx: NodeContext | None = None) -> Result:
    if claim.problem:
        return cannot_run(claim)
    started = time.monotonic()
    ctx = ctx or context_for(claim)
    try:
        return outcome(claim, settle(ctx, node_type.run(ctx)), started)
    except Exception as exc:  # every failure becomes a classified result
        close_stream(ctx)
        return failure(claim, exc, started)


def is_pure(node) -> bool:
    """May this graph node run inside the transaction that leased it? Only a pure
    type whose expressions are all proven cheap, on a node this code can run."""
    if node.problem:
        return False
    node_type = get_node_type(node.type)
    return node_type is not None and node_type.fusable(node.config)
