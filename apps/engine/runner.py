"""Runs node handlers inside one worker process.

Inline handlers (cheap built-ins) run on the calling thread. Async handlers run
concurrently on one event-loop thread. Blocking handlers each get a thread of
their own, CPU-bound ones a pool process (`processes.py`). Results come back
through one queue, so the worker's main thread does all the database work and
commits finished results in groups.

A handler's timeout starts when the handler starts, not when it was handed
over. The drain loop leases only as many runs of each kind as there are free
slots (`capacity.py`), so nothing queues here; the clock starts late anyway if
a slot is slow to start (a pool process setting up Django).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from apps.engine import planning
from apps.engine.capacity import ASYNC, INLINE, PROCESS, THREAD, kind_of
from apps.engine.handlers import (
    Result,
    call_sync,
    cannot_run,
    close_stream,
    context_for,
    failure,
    outcome,
    settle,
)
from apps.engine.processes import ProcessPool, Task, payload_for
from apps.engine.transitions import Claim
from apps.nodes.contract import NodeContext, NodeError
from apps.nodes.expressions import ExpressionError
from apps.nodes.registry import get_node_type


@dataclass(eq=False)
class InFlight:
    claim: Claim
    ctx: NodeContext
    started: float
    deadline: float | None
    kind: str = INLINE
    future: object = field(default=None, repr=False)
    abandoned_at: float | None = None  # a timed-out thread still running its handler

    def begin(self) -> None:
        """The handler starts now: so does its timeout."""
        self.started = time.monotonic()
        if self.claim.timeout_s:
            self.deadline = self.started + self.claim.timeout_s


class Runner:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                             name="braid-async")
        self._loop_thread.start()
        self._processes: ProcessPool | None = None  # made on first use
        self.done: queue.SimpleQueue[tuple[InFlight, Result]] = queue.SimpleQueue()
        self.pid = os.getpid()
        # Timed-out blocking handlers still running: run id → flight. They no
        # longer hold a slot; diagnostics show them until they return.
        self.abandoned: dict[int, InFlight] = {}

    @staticmethod
    def busy(inflight) -> Counter:
        return Counter(f.kind for f in inflight)

    def start(self, claim: Claim) -> InFlight:
        node_type = get_node_type(claim.node_type)
        ctx = context_for(claim)
        flight = InFlight(claim, ctx, time.monotonic(), None,
                          kind=kind_of(claim.node_type, claim.config))
        if claim.problem:
            self.done.put((flight, cannot_run(claim)))
        elif node_type is None:
            self.done.put((flight, failure(claim, NodeError(
                f"node type {claim.node_type!r} is not installed on this worker",
                error_class="configuration", retryable=False))))
        elif claim.gate:
            # Costly incoming conditions decide first, on a thread of their own (they
            # may take the whole expression budget); then the handler starts as usual.
            threading.Thread(target=self._gate_then_run, args=(node_type, flight),
                             daemon=True, name=f"braid-gate-{claim.run_id}").start()
        else:
            self._dispatch(node_type, flight)
        return flight

    def _dispatch(self, node_type, flight: InFlight, on_own_thread: bool = False) -> None:
        """Start the handler: inline, on the event loop, in a process, or on a thread."""
        claim, ctx = flight.claim, flight.ctx
        if flight.kind == INLINE:
            self.done.put((flight, call_sync(node_type, claim, ctx)))
        elif flight.kind == ASYNC:
            flight.future = asyncio.run_coroutine_threadsafe(
                self._call_async(node_type, flight), self.loop)
            flight.future.add_done_callback(self._collect(flight))
        elif flight.kind == PROCESS:
            self._start_in_process(flight)
        elif on_own_thread:
            self._call_threaded(node_type, flight)
        else:
            threading.Thread(target=self._call_threaded, args=(node_type, flight),
                             daemon=True, name=f"braid-node-{claim.run_id}").start()

    def _gate_then_run(self, node_type, flight: InFlight) -> None:
        """On its own thread: evaluate the gate, then run the node or report it skipped."""
        claim = flight.claim
        scope = {"input": claim.input, "nodes": claim.nodes}
        try:
            taken = planning.gate_open(claim.gate, scope)
        except ExpressionError as exc:
            self.done.put((flight, failure(claim, NodeError(
                f"condition: {exc}", error_class=exc.error_class, retryable=exc.retryable),
                flight.started)))
            return
        if not taken:
            self.done.put((flight, Result(
                claim.run_id, claim.lease_token, claim.execution_id, "skipped",
                duration_ms=(time.monotonic() - flight.started) * 1000)))
        elif not flight.ctx.cancelled:  # a lease lost meanwhile: its result would be dropped
            self._dispatch(node_type, flight, on_own_thread=True)

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
                for flight, result in items:
                    if flight.ctx.logs:
                        result.logs = flight.ctx.captured_logs()
                return items

    def cancel(self, flight: InFlight) -> None:
        """Stop a run this worker no longer holds (lost lease, shutdown)."""
        flight.ctx.cancel_event.set()
        if flight.kind == PROCESS and flight.future is not None:
            self._processes.kill(flight.future)
        elif flight.future is not None:
            flight.future.cancel()  # an async handler's task

    def time_out(self, flight: InFlight) -> None:
        """The run is past its timeout: stop what can be stopped.

        An async task is cancelled; a pool process is killed (its slot starts a
        fresh one). A thread cannot be stopped: it is *abandoned* — it frees its
        slot, sees `ctx.cancelled`, and stays listed until its handler returns.
        """
        self.cancel(flight)
        if flight.kind == THREAD:
            flight.abandoned_at = time.monotonic()
            self.abandoned[flight.claim.run_id] = flight

    # --- calling handlers ------------------------------------------------------
    def _call_threaded(self, node_type, flight: InFlight) -> None:
        flight.begin()
        try:
            result = call_sync(node_type, flight.claim, flight.ctx)
        finally:
            close_old_connections()  # user functions may use the ORM on this thread
        if flight.abandoned_at is None:
            self.done.put((flight, result))
        else:  # its result was given up on at the timeout
            self.abandoned.pop(flight.claim.run_id, None)

    async def _call_async(self, node_type, flight: InFlight) -> Result:
        flight.begin()
        claim = flight.claim
        try:
            coro = node_type.run(flight.ctx)
            if claim.timeout_s:
                value = await asyncio.wait_for(coro, claim.timeout_s)
            else:
                value = await coro
            return outcome(claim, settle(flight.ctx, value), flight.started)
        except TimeoutError:
            return failure(claim, NodeError(f"timed out after {claim.timeout_s}s",
                                            error_class="timeout"), flight.started)
        except asyncio.CancelledError:
            return failure(claim, NodeError("cancelled", error_class="cancelled",
                                            retryable=False), flight.started)
        except Exception as exc:
            return failure(claim, exc, flight.started)
        finally:
            close_stream(flight.ctx)  # idempotent: flushes what a failed handler emitted

    def _start_in_process(self, flight: InFlight) -> None:
        if self._processes is None:
            self._processes = ProcessPool(settings.BRAID["PROCESSES"])
        claim = flight.claim

        def done(answer: str | None, died: str | None) -> None:
            if died is not None:
                # The child died under this run (killed, out of memory, a crash):
                # only this run fails, as `resource`, and is re-run like a run whose
                # worker died (same idempotency key, within BRAID_LEASE_LOSS_LIMIT).
                result = failure(claim, NodeError(died, error_class="resource"), flight.started)
                result.extra["crashed"] = True
            else:
                data = json.loads(answer)
                if data["ok"]:
                    result = outcome(claim, data["output"], flight.started)
                else:
                    result = failure(claim, NodeError(
                        data["message"], error_class=data["error_class"],
                        retryable=data["retryable"]), flight.started)
            self.done.put((flight, result))

        flight.future = self._processes.submit(Task(payload_for(flight.ctx), flight.begin,
                                                    done))

    def process_pids(self) -> list[int]:
        return sorted(self._processes.children) if self._processes else []


_runner: Runner | None = None


def get_runner() -> Runner:
    """One runner per process (re-made after a fork: threads do not survive it)."""
    global _runner
    if _runner is None or _runner.pid != os.getpid():
        _runner = Runner()
    return _runner
