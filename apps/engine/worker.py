"""The worker's drain loop: one wake-up runs as many node runs as are ready."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time

from django.conf import settings

from apps.engine import heartbeats, protocol
from apps.engine.capacity import Slots
from apps.engine.handlers import Result, failure
from apps.engine.runner import InFlight, get_runner
from apps.engine.wakeup import wake_workers
from apps.nodes.contract import NodeError

log = logging.getLogger(__name__)
IDLE_CLAIM_S = 0.1  # while busy, how often to look for new work after an empty claim
GATHER_MIN = 8  # runs still in flight for a completion to wait GATHER_S for more
GATHER_S = 0.002


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Graceful shutdown: `braid worker` sends SIGUSR1 to its worker processes before
# stopping the cluster. A drain then claims nothing new, lets what it holds
# finish for up to BRAID["HANDBACK_S"], and hands the rest back as READY.
_stop = threading.Event()


def request_stop(*_args) -> None:
    _stop.set()


def _install_stop_handler() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, request_stop)


def drain(budget_s: float | None = None) -> int:
    """Claim, run and complete ready node runs until none are left or the budget ends.

    1. Claim up to the free in-flight room (priority order).
    2. Start each handler (inline, async loop or thread pool).
    3. Wait for results; time out overdue ones.
    4. Complete every finished result in one transaction; ready successors come
       back already leased to this worker and start at once.
    5. Heartbeat leases; drop runs the database says we lost (cancel, reaper).
    Returns the number of node runs finished.
    """
    cfg = settings.BRAID
    budget = cfg["DRAIN_BUDGET_S"] if budget_s is None else budget_s
    lease_s, max_inflight, batch = cfg["LEASE_S"], cfg["MAX_INFLIGHT"], cfg["CLAIM_BATCH"]
    me = worker_id()
    runner = get_runner()
    heartbeats.beat("worker", heartbeats.abandoned_of(runner),
                    stats=heartbeats.executor_stats(runner, ()))
    inflight: dict[int, InFlight] = {}
    end = time.monotonic() + budget
    next_claim = 0.0
    next_beat = time.monotonic() + lease_s / 3
    finished = 0
    handback_at = None
    while True:
        now = time.monotonic()
        if _stop.is_set() and handback_at is None:
            handback_at = now + cfg["HANDBACK_S"]
            log.info("stopping: finishing %d node run(s), handing back the rest in %.0f s",
                     len(inflight), cfg["HANDBACK_S"])
        if handback_at is not None and now >= handback_at:
            _hand_back(runner, inflight)
            break
        stopping = now >= end or handback_at is not None
        free = max_inflight - len(inflight)
        progressed = contended = False
        # With nothing in flight, always look again before quitting: a short
        # claim's back-off must not end a drain while work is left.
        if free > 0 and not stopping and (now >= next_claim or not inflight):
            want = min(free, batch)
            got = protocol.claim(me, want, lease_s, share_caps(inflight, max_inflight),
                                 slots=Slots(runner.busy(inflight.values())))
            contended = got.contended
            # Pure runs finish inside the claim: they count as work done. Runs set
            # aside (full pool, empty bucket) left the queue: look behind them.
            taken = len(got.claims) + got.fused
            # Stale candidates count as progress: another worker took them between
            # our read and our lock, and quitting here left one worker draining a
            # backlog alone (seen in W1: the second worker idle for half the run).
            progressed = taken > 0 or got.set_aside > 0 or got.stale > 0
            finished += got.fused
            next_claim = 0.0 if taken >= want or contended else now + IDLE_CLAIM_S
            for c in got.claims:
                inflight[c.run_id] = runner.start(c)
        if not inflight:
            if not progressed and not contended:
                break
            if contended and not progressed:
                # Another worker holds those executions for a few milliseconds.
                time.sleep(random.uniform(0.001, 0.005))
            continue
        claim_now = not stopping and len(inflight) < max_inflight
        done = runner.wait(_wait_for(inflight, next_beat, next_claim, claim_now))
        if done and len(inflight) - len(done) >= GATHER_MIN:
            # Many runs in flight finish close together (I/O answers): a few ms more
            # gather them into one completion transaction instead of one each.
            time.sleep(GATHER_S)
            done += runner.wait(0)
        results = [r for _, r in done if inflight.pop(r.run_id, None) is not None]
        overdue = _overdue(runner, inflight)
        if overdue:
            results += overdue
            if runner.abandoned:
                heartbeats.watch_abandoned(runner)  # shown in diagnostics until they return
        if results:
            finished += len(results)
            room = 0 if stopping else max_inflight - len(inflight)
            for c in protocol.complete(results, me, room, lease_s,
                                       slots=Slots(runner.busy(inflight.values()))):
                inflight[c.run_id] = runner.start(c)
        if time.monotonic() >= next_beat:
            held = {rid: f.claim.lease_token for rid, f in inflight.items()}
            for rid in protocol.heartbeat(me, held, lease_s):
                flight = inflight.pop(rid)
                log.info("lost the lease of node run %s; stopping it", rid,
                         extra={"execution": flight.claim.execution_id,
                                "node": flight.claim.node_id, "attempt": flight.claim.attempt})
                runner.cancel(flight)
            heartbeats.beat("worker", heartbeats.abandoned_of(runner),
                            stats=heartbeats.executor_stats(runner, inflight.values()))
            next_beat = time.monotonic() + lease_s / 3
    if time.monotonic() >= end or _stop.is_set():
        wake_workers()  # hand what is left to a fresh wake-up (another worker, or later)
    return finished


def _hand_back(runner, inflight: dict[int, InFlight]) -> None:
    """Release runs still running at shutdown: READY again, same attempt, no failure."""
    held = {rid: f.claim.lease_token for rid, f in inflight.items()}
    for flight in inflight.values():
        runner.cancel(flight)
    released = protocol.release(held)
    log.warning("handed back %d node run(s) at shutdown", released)
    inflight.clear()


def share_caps(inflight: dict[int, InFlight], max_inflight: int) -> dict[str, int]:
    """Room left per queue under its `worker_share` of this worker's in-flight slots.

    The share bounds what a worker takes on; the next steps of executions it is
    already running continue regardless.
    """
    caps = {}
    for queue, policy in settings.BRAID_QUEUES.items():
        share = policy.get("worker_share")
        if share is not None:
            held = sum(1 for f in inflight.values() if f.claim.queue == queue)
            caps[queue] = max(0, int(share * max_inflight) - held)
    return caps


def _wait_for(inflight: dict[int, InFlight], next_beat: float, next_claim: float,
              claim_now: bool = False) -> float:
    """How long to block for results. `next_claim` 0 means the last claim was full:
    more may be ready, so with room left only the results already in are taken."""
    now = time.monotonic()
    if claim_now and next_claim <= now:
        return 0.0
    deadlines = [f.deadline for f in inflight.values() if f.deadline is not None]
    until = min([next_beat, *deadlines, next_claim if next_claim else now + 0.2])
    return max(0.0, min(until - now, 0.2))


def _overdue(runner, inflight: dict[int, InFlight]) -> list[Result]:
    """Handlers past their timeout: fail them `timeout`; kill the process or
    abandon the thread (`Runner.time_out`), which frees their slot."""
    now = time.monotonic()
    results = []
    for rid, flight in list(inflight.items()):
        if flight.deadline is not None and now >= flight.deadline:
            runner.time_out(flight)
            del inflight[rid]
            results.append(failure(flight.claim, NodeError(
                f"timed out after {flight.claim.timeout_s}s", error_class="timeout"),
                flight.started))
    return results
