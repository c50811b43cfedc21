"""Runs node handlers inside one worker process.

Inline handlers (cheap built-ins) run on the calling thread. Async handlers run
concurrently on one event-loop thread. Blocking handlers run on a thread pool.
Results come back through one queue, so the worker's main thread does all the
database work and commits finished results in groups.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from apps.engine.protocol import Result
from apps.engine.transitions import Claim
from apps.nodes.contract import NodeContext, NodeError, Park
from apps.nodes.registry import get_node_type


@dataclass
class InFlight:
    claim: Claim
    ctx: NodeContext
    started: float
    deadline: float | None
    future: object = field(default=None, repr=False)


class Runner:
    def __init__(self, threads: int):
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                             name="braid-async")
        self._loop_thread.start()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="braid-node")
        self.done: queue.SimpleQueue[tuple[InFlight, Result]] = queue.SimpleQueue()
        self.pid = os.getpid()

    def start(self, claim: Claim) -> InFlight:
        node_type = get_node_type(claim.node_type)
        ctx = NodeContext(execution_id=claim.execution_id, node_id=claim.node_id,
                          node_type=claim.node_type, attempt=claim.attempt,
                          config=claim.config, input=claim.input, nodes=claim.nodes)
        now = time.monotonic()
        flight = InFlight(claim, ctx, now, now + claim.timeout_s if claim.timeout_s else None)
        if node_type is None:
            self.done.put((flight, failure(claim, flight, NodeError(
                f"node type {claim.node_type!r} is not installed on this worker",
                error_class="configuration", retryable=False))))
        elif node_type.inline:
            self.done.put((flight, self._call(node_type, flight)))
        elif node_type.is_async:
            flight.future = asyncio.run_coroutine_threadsafe(
                self._call_async(node_type, flight), self.loop)
            flight.future.add_done_callback(self._collect(flight))
        else:
            flight.future = self.pool.submit(self._call_threaded, node_type, flight)
            flight.future.add_done_callback(self._collect(flight))
        return flight

    def _collect(self, flight: InFlight):
        def done(future):
            if not future.cancelled():
                self.done.put((flight, future.result()))

        return done

    def wait(self, timeout: float) -> list[tuple[InFlight, Result]]:
        """Results finished so far; block up to `timeout` for the first one."""
        items = []
        try:
            items.append(self.done.get(timeout=max(0.0, timeout)) if timeout > 0
                         else self.done.get_nowait())
        except queue.Empty:
            return items
        while True:
            try:
                items.append(self.done.get_nowait())
            except queue.Empty:
                return items

    def cancel(self, flight: InFlight) -> None:
        flight.ctx.cancel_event.set()
        if flight.future is not None:
            # Cancels an async handler's task; a started thread cannot be stopped, so
            # it sees ctx.cancelled and its late result is dropped.
            flight.future.cancel()

    # --- calling handlers ------------------------------------------------------
    def _call(self, node_type, flight: InFlight) -> Result:
        try:
            return outcome(flight, node_type.run(flight.ctx))
        except Exception as exc:  # every failure becomes a classified result
            return failure(flight.claim, flight, exc)

    def _call_threaded(self, node_type, flight: InFlight) -> Result:
        try:
            return self._call(node_type, flight)
        finally:
            close_old_connections()  # user functions may use the ORM on this thread

    async def _call_async(self, node_type, flight: InFlight) -> Result:
        try:
            coro = node_type.run(flight.ctx)
            if flight.claim.timeout_s:
                value = await asyncio.wait_for(coro, flight.claim.timeout_s)
            else:
                value = await coro
            return outcome(flight, value)
        except TimeoutError:
            return failure(flight.claim, flight, NodeError(
                f"timed out after {flight.claim.timeout_s}s", error_class="timeout"))
        except asyncio.CancelledError:
            return failure(flight.claim, flight, NodeError("cancelled", error_class="cancelled",
                                                           retryable=False))
        except Exception as exc:
            return failure(flight.claim, flight, exc)


def _elapsed_ms(flight: InFlight) -> float:
    return (time.monotonic() - flight.started) * 1000


def outcome(flight: InFlight, value) -> Result:
    claim = flight.claim
    if isinstance(value, Park):
        return Result(claim.run_id, claim.lease_token, claim.execution_id, "parked",
                      output=value.output, park_until=value.until,
                      duration_ms=_elapsed_ms(flight), extra={"reason": value.reason})
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError) as exc:
        return failure(claim, flight, NodeError(f"output is not JSON: {exc}", retryable=False))
    if size > settings.BRAID["MAX_PAYLOAD_BYTES"]:
        return failure(claim, flight, NodeError(
            f"output is {size} bytes, more than {settings.BRAID['MAX_PAYLOAD_BYTES']}",
            retryable=False))
    return Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                  output=value, duration_ms=_elapsed_ms(flight))


def failure(claim: Claim, flight: InFlight | None, exc: BaseException) -> Result:
    if isinstance(exc, NodeError):
        error_class, retryable, message = exc.error_class, exc.retryable, str(exc)
    else:
        error_class, retryable = "execution", True
        message = f"{type(exc).__name__}: {exc}"
    return Result(claim.run_id, claim.lease_token, claim.execution_id, "failed",
                  error_class=error_class, message=message, retryable=retryable,
                  duration_ms=_elapsed_ms(flight) if flight else None)


_runner: Runner | None = None


def get_runner() -> Runner:
    """One runner per process (re-made after a fork: threads do not survive it)."""
    global _runner
    if _runner is None or _runner.pid != os.getpid():
        _runner = Runner(settings.BRAID["THREADS"])
    return _runner
