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

from apps.engine import planning
from apps.engine.handlers import Result, call_sync, cannot_run, context_for, failure, outcome
from apps.engine.processes import make_pool, payload_for, run_in_process
from apps.engine.transitions import Claim
from apps.nodes.contract import NodeContext, NodeError
from apps.nodes.expressions import ExpressionError
from apps.nodes.registry import get_node_type


@dataclass
class InFlight:
    claim: Claim
    ctx: NodeContext
    started: float
    deadline: float | None
    future: object = field(default=None, repr=False)
    gate: object = field(default=None, repr=False)  # deciding a costly incoming condition


class Runner:
    def __init__(self, threads: int):
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                             name="braid-async")
        self._loop_thread.start()
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="braid-node")
        self._processes = None  # made on first use: most workers never need one
        self.done: queue.SimpleQueue[tuple[InFlight, Result]] = queue.SimpleQueue()
        self.pid = os.getpid()

    def start(self, claim: Claim) -> InFlight:
        node_type = get_node_type(claim.node_type)
        ctx = context_for(claim)
        now = time.monotonic()
        flight = InFlight(claim, ctx, now, now + claim.timeout_s if claim.timeout_s else None)
        if claim.problem:
            self.done.put((flight, cannot_run(claim)))
        elif node_type is None:
            self.done.put((flight, failure(claim, NodeError(
                f"node type {claim.node_type!r} is not installed on this worker",
                error_class="configuration", retryable=False))))
        elif claim.gate:
            # A costly incoming condition decides first, on the pool (it may take
            # the whole expression budget); then the handler starts as usual.
            flight.gate = self.pool.submit(self._gate_then_run, node_type, flight)
            flight.gate.add_done_callback(self._collect_gate(flight))
        else:
            self._dispatch(node_type, flight)
        return flight

    def _dispatch(self, node_type, flight: InFlight, on_pool_thread: bool = False) -> None:
        """Start the handler: inline, on the event loop, in a process, or on the pool."""
        claim, ctx = flight.claim, flight.ctx
        if node_type.runs_inline(claim.config):
            self.done.put((flight, call_sync(node_type, claim, ctx)))
        elif node_type.is_async:
            flight.future = asyncio.run_coroutine_threadsafe(
                self._call_async(node_type, flight), self.loop)
            flight.future.add_done_callback(self._collect(flight))
        elif node_type.wants_process(claim.config):
            if self._processes is None:
                self._processes = make_pool(settings.BRAID["PROCESSES"])
            flight.future = self._processes.submit(run_in_process, payload_for(ctx))
            flight.future.add_done_callback(self._collect_process(flight))
        elif on_pool_thread:
            self.done.put((flight, self._call_threaded(node_type, flight)))
        else:
            flight.future = self.pool.submit(self._call_threaded, node_type, flight)
            flight.future.add_done_callback(self._collect(flight))

    def _gate_then_run(self, node_type, flight: InFlight) -> Result | None:
        """On a pool thread: decide the gate; a Result if the node does not run."""
        claim = flight.claim
        scope = {"input": claim.input, "nodes": claim.nodes}
        try:
            taken = planning.gate_open(claim.gate, scope)
        except ExpressionError as exc:
            return failure(claim, NodeError(f"condition: {exc}", error_class=exc.error_class,
                                            retryable=exc.retryable), flight.started)
        if not taken:
            return Result(claim.run_id, claim.lease_token, claim.execution_id, "skipped",
                          duration_ms=(time.monotonic() - flight.started) * 1000)
        if not flight.ctx.cancelled:
            self._dispatch(node_type, flight, on_pool_thread=True)
        return None

    def _collect_gate(self, flight: InFlight):
        def done(future):
            if not future.cancelled() and future.result() is not None:
                self.done.put((flight, future.result()))

        return done

    def _collect_process(self, flight: InFlight):
        def done(future):
            if future.cancelled():
                return
            claim = flight.claim
            try:
                answer = json.loads(future.result())
            except Exception as exc:  # the child died (killed, out of memory)
                self.done.put((flight, failure(claim, NodeError(
                    f"process pool: {type(exc).__name__}: {exc}", error_class="resource"),
                    flight.started)))
                return
            if answer["ok"]:
                result = outcome(claim, answer["output"], flight.started)
            else:
                result = failure(claim, NodeError(answer["message"],
                                                  error_class=answer["error_class"],
                                                  retryable=answer["retryable"]),
                                 flight.started)
            self.done.put((flight, result))

        return done

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
        if flight.gate is not None:
            flight.gate.cancel()  # not started yet: the handler never runs
        if flight.future is not None:
            # Cancels an async handler's task; a started thread cannot be stopped, so
            # it sees ctx.cancelled and its late result is dropped.
            flight.future.cancel()

    # --- calling handlers ------------------------------------------------------
    def _call_threaded(self, node_type, flight: InFlight) -> Result:
        try:
            return call_sync(node_type, flight.claim, flight.ctx)
        finally:
            close_old_connections()  # user functions may use the ORM on this thread

    async def _call_async(self, node_type, flight: InFlight) -> Result:
        claim = flight.claim
        try:
            coro = node_type.run(flight.ctx)
            if claim.timeout_s:
                value = await asyncio.wait_for(coro, claim.timeout_s)
            else:
                value = await coro
            return outcome(claim, value, flight.started)
        except TimeoutError:
            return failure(claim, NodeError(f"timed out after {claim.timeout_s}s",
                                            error_class="timeout"), flight.started)
        except asyncio.CancelledError:
            return failure(claim, NodeError("cancelled", error_class="cancelled",
                                            retryable=False), flight.started)
        except Exception as exc:
            return failure(claim, exc, flight.started)


_runner: Runner | None = None


def get_runner() -> Runner:
    """One runner per process (re-made after a fork: threads do not survive it)."""
    global _runner
    if _runner is None or _runner.pid != os.getpid():
        _runner = Runner(settings.BRAID["THREADS"])
    return _runner
