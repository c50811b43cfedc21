"""The durable execution protocol's database steps: claim, complete, heartbeat.

Each function is one short transaction. Handlers never run inside one, except
*pure* ones whose expressions are proven cheap (noop, fail, delay, a transform
without comprehension macros: no side effects, microseconds),
which are fused into the transaction that leased them: a chain of glue nodes
costs one commit, not one per node.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps

from django.db import OperationalError, connection
from django.db.models import Q

from apps.engine import clock, planning, rows
from apps.engine.capacity import Slots
from apps.engine.handlers import Result, call_sync, is_pure
from apps.engine.limits import Admission, needs_admission
from apps.engine.models import Execution, NodeRun
from apps.engine.pools import PREFIX, Pools
from apps.engine.queues import note_claimed, paused_queues, queue_batch
from apps.engine.ratelimits import Buckets, rules_for
from apps.engine.statuses import E, R
from apps.engine.transitions import (
    Batch,
    Claim,
    ExecutionState,
    fail_run,
    finish_run,
    load_states,
    lock_executions,
    lock_free_executions,
    settle,
    update_progress,
)
from apps.engine.wakeup import wake_on_commit
from apps.engine.writelock import write_transaction
from apps.nodes.registry import get_node_type

log = logging.getLogger(__name__)
MAX_FUSED_ROUNDS = 64  # bounds the work one transaction does on a long pure chain

__all__ = ["Result", "Claimed", "claim", "complete", "heartbeat", "release", "retrying"]


@dataclass
class Claimed:
    claims: list[Claim]
    # Ready work existed but other workers held its executions: try again soon.
    contended: bool = False
    fused: int = 0  # pure runs leased and finished inside the claim
    set_aside: int = 0  # runs parked on a full pool or deferred by a rate limit
    # Candidates read as READY that another worker ran and committed before the
    # lock: the work moved on, more may be behind it, so look again at once.
    stale: int = 0


def retrying(fn):
    """Retry a transaction that lost to a lock timeout or a deadlock (nothing was written)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        for attempt in range(5):
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                if attempt == 4:
                    raise
                log.warning("retrying %s after %s", fn.__name__, exc)
                time.sleep(0.05 * (attempt + 1))
        return None

    return wrapper


def ready_candidates(now, paused, n: int) -> list[tuple[int, object]]:
    """(run id, execution id) of up to `n` READY runs, in claim order."""
    if connection.vendor == "postgresql":
        return rows.ready_candidates(now, paused, n)
    ready = NodeRun.objects.filter(status=R.READY).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now))
    if paused:
        ready = ready.exclude(queue__in=paused)
    return list(ready.order_by("-queue_rank", "-priority", "id")
                .values_list("id", "execution_id")[:n])


def _find(state, run_id):
    for run in list(state.latest.values()) + list(state.compensations.values()):
        if run.pk == run_id:
            return run
    return None


@retrying
def claim(worker: str, limit: int, lease_s: float, caps: dict | None = None, *,
          slots: Slots | None = None) -> Claimed:
    """Lease up to `limit` READY runs of unpaused queues: by queue weight, then
    priority, then age.

    1. Read candidates without locks.
    2. Lock just enough of their executions with SKIP LOCKED. An execution
       locked by someone else (a completion, another claimer) is skipped: its
       runs are theirs to continue, or ours on the next try. On SQLite the
       IMMEDIATE transaction makes the whole claim exclusive.
    3. Re-check each run under the lock, lease it, then run pure handlers at once.
    `caps` bounds how many runs of a queue this claim may take (its worker share);
    `slots` the runs of each kind (thread, process, event loop) the worker has
    room for: the rest stay READY for other workers.
    """
    if limit <= 0:
        return Claimed([])
    now = clock.now()
    with write_transaction():
        paused = paused_queues()
        candidates = ready_candidates(now, paused, limit * 2)
        wanted = list(dict.fromkeys(eid for _, eid in candidates))
        executions = lock_free_executions(wanted, limit) if wanted else {}
        contended = len(executions) < min(limit, len(wanted))
        states = load_states(executions)
        batch = Batch(worker, now)
        batch.slots = slots
        picked = []
        stale = 0
        for run_id, execution_id in candidates:
            state = states.get(execution_id)
            run = _find(state, run_id) if state else None
            # Re-checked under the lock: a cancel or a claimer may have moved it.
            if run is None or run.status != R.READY or (run.not_before and run.not_before > now) \
                    or run.queue in paused:
                stale += state is not None
                continue
            node_type = state.graph.nodes[run.node_id].type
            picked.append((run, state, rules_for(run.queue, state.execution.definition_id,
                                                 node_type)))
        pools = Pools({run.pool for run, *_ in picked if run.pool})
        buckets = Buckets.lock({i for *_, ids in picked for i in ids}, now)
        per_queue = Counter()
        set_aside = 0
        for run, state, rule_ids in picked:
            if len(batch.claims) >= limit:
                break
            if per_queue[run.queue] >= min(queue_batch(run.queue),
                                           (caps or {}).get(run.queue, limit)):
                continue
            if not batch.fits(state, run.node_id):
                continue  # no free slot of its kind here: another worker takes it
            per_queue[run.queue] += 1
            if run.pool:
                if not pools.fits(run):
                    park_on_pool(batch, state, run)
                    set_aside += 1
                    continue
                pools.take(run)
            deferred = buckets.take(rule_ids) if rule_ids else None
            if deferred is not None:
                if run.pool:
                    pools.give_back(run)
                defer(batch, run, *deferred)
                set_aside += 1
                continue
            batch.lease(run, state, lease_s)
            note_claimed(run.queue_rank)
        buckets.save()
        for state in states.values():
            if state.execution.id in batch.executions:
                update_progress(batch, state)
        room = [max(0, limit - len(batch.claims))]
        admitted = admit(batch, states, room, paused, lease_s) if room[0] else 0
        fused = _fuse_pure(batch, states, lease_s, room)
        batch.flush()
    if not candidates and not admitted:
        return Claimed([], contended)
    return Claimed(batch.claimed(), contended, fused, set_aside, stale)


@retrying
def complete(results: list[Result], worker: str, capacity: int, lease_s: float, *,
             slots: Slots | None = None) -> list[Claim]:
    """Commit many handler results in one transaction and lease ready successors.

    A result counts only if its run is still RUNNING under the same lease token:
    a run whose lease expired (and was re-queued) or that was cancelled keeps
    its newer state, and the late result is dropped. Ready successors beyond
    `capacity` stay READY and another worker is woken for them.
    """
    if not results:
        return []
    with write_transaction():
        executions = lock_executions({_uuid(r.execution_id) for r in results})
        states = load_states(executions)
        batch = Batch(worker)
        batch.slots = slots
        changed, for_good = defaultdict(list), defaultdict(list)
        for result in results:
            state = states.get(_uuid(result.execution_id))
            run = _find(state, result.run_id) if state else None
            if run is None or run.status != R.RUNNING or run.lease_token != result.lease_token:
                log.info("dropped the late result of node run %s", result.run_id,
                         extra={"execution": result.execution_id,
                                "node": run.node_id if run else None})
                continue
            apply_result(batch, state, run, result, changed, for_good)
            if result.logs:
                batch.node_logs.append((run, result.logs))
        room = [capacity]
        for eid in changed:
            settle(batch, states[eid], changed[eid], for_good[eid], lease_s, room)
        _fuse_pure(batch, states, lease_s, room)
        batch.flush()
        if any(r.status == R.READY and r.not_before is None for r in batch.new_runs):
            wake_on_commit(1)
    return batch.claimed()


def admit(batch: Batch, states: dict, room: list[int], paused, lease_s: float) -> int:
    """Admit pending executions under concurrency limits, in priority order.

    An execution none of whose limits exist any more is admitted at once.
    """
    if not needs_admission():
        return 0
    waiting = Execution.objects.filter(status=E.PENDING, admitted=False)
    if paused:
        waiting = waiting.exclude(queue__in=paused)
    order = list(waiting.order_by("-priority", "created_at")
                 .values_list("id", flat=True)[: room[0] * 4])
    locked = lock_executions(order, skip_locked=True) if order else {}
    if not locked:
        return 0
    admission = Admission(list(locked.values()))
    admitted = 0
    for execution_id in order:
        execution = locked.get(execution_id)
        if execution is None or execution.admitted or execution.status != E.PENDING:
            continue
        if room[0] <= 0 or admission.blocked_by(execution):
            continue  # a busy key must not hold back the executions behind it
        admission.take(execution)
        execution.admitted = True
        state = states[execution.id] = ExecutionState(execution, [])
        batch.event(execution, "execution.admitted", {"by": batch.worker})
        for node_id in state.graph.entry_nodes:
            run = batch.add_run(state, node_id)
            # Pools and rate limits are checked by the claim: such runs wait for it.
            gated = run.pool or rules_for(run.queue, execution.definition_id,
                                          state.graph.nodes[node_id].type)
            if room[0] > 0 and not gated and batch.fits(state, node_id):
                room[0] -= 1
                batch.lease(run, state, lease_s)
        update_progress(batch, state)
        admitted += 1
    return admitted


def park_on_pool(batch: Batch, state, run: NodeRun) -> None:
    """No room in the run's pool: it waits, holding no worker, until a holder finishes."""
    run.status = R.WAITING
    run.waiting_for = PREFIX + run.pool
    batch.touch(run)
    batch.event(state.execution, "node.waiting", {
        "node": run.node_id, "attempt": run.attempt, "until": None, "reason": "pool",
        "pool": run.pool, "slots": run.pool_slots})
    update_progress(batch, state)


def defer(batch: Batch, run: NodeRun, until, rule) -> None:
    """A run whose rate-limit bucket is empty waits (READY, not before `until`)."""
    run.not_before = until
    run.waiting_for = f"rate:{rule.scope}:{rule.target}"
    batch.touch(run)


def apply_result(batch: Batch, state, run: NodeRun, result: Result, changed, for_good) -> None:
    eid = state.execution.id
    changed.setdefault(eid, [])
    if result.outcome == R.SUCCEEDED:
        finish_run(batch, state, run, R.SUCCEEDED, output=result.output,
                   duration_ms=result.duration_ms)
        changed[eid].append(run.node_id)
    elif result.outcome == "parked":
        park(batch, state, run, result)
    elif result.outcome == R.SKIPPED:  # its costly incoming conditions were all false
        finish_run(batch, state, run, R.SKIPPED, duration_ms=result.duration_ms)
        changed[eid].append(run.node_id)
    elif fail_run(batch, state, run, result.error_class, result.message, result.retryable,
                  duration_ms=result.duration_ms,
                  lost_lease=result.extra.get("crashed", False)):
        changed[eid].append(run.node_id)
        for_good[eid].append(run)


def _fuse_pure(batch: Batch, states: dict, lease_s: float, room: list[int]) -> int:
    """Run the pure handlers of runs leased in this batch, inside this transaction.

    Each round runs what the previous round made ready, so a chain of pure nodes
    finishes in one commit. A fused run frees its in-flight slot at once.
    """
    fused: set[int] = set()
    for _ in range(MAX_FUSED_ROUNDS):
        todo = [(run, state) for run, state in batch.claims
                if id(run) not in fused and run.status == R.RUNNING
                and is_pure(state.graph.nodes[run.node_id])
                and not planning.has_costly_condition(state.graph, run.node_id)]
        if not todo:
            break
        if fused:
            # A later round's rows carry the time that round ran: a chain's last node,
            # and so the execution's finished_at, is stamped when it ran, not when
            # the transaction began (its selects and locks, the earlier rounds).
            batch.now = clock.now()
        changed, for_good = defaultdict(list), defaultdict(list)
        for run, state in todo:
            fused.add(id(run))
            room[0] += 1
            claim = batch.claim_for(run, state)
            result = call_sync(get_node_type(claim.node_type), claim)
            apply_result(batch, state, run, result, changed, for_good)
        for eid in changed:
            settle(batch, states[eid], changed[eid], for_good[eid], lease_s, room)
    batch.claims = [(r, s) for r, s in batch.claims if id(r) not in fused]
    return len(fused)


def park(batch: Batch, state, run: NodeRun, result: Result) -> None:
    run.status = R.WAITING
    after_s = result.extra.get("after_s")
    # A wait measured from now is counted on the database's clock (see clock.py).
    run.wake_at = (batch.now + timedelta(seconds=after_s) if after_s is not None
                   else result.park_until)
    run.wake_output = result.output
    run.waiting_for = result.extra.get("signal") or ""
    run.lease_expires_at = None
    run.duration_ms = result.duration_ms
    batch.touch(run)
    batch.event(state.execution, "node.waiting", {
        "node": run.node_id, "attempt": run.attempt,
        "until": run.wake_at.isoformat() if run.wake_at else None,
        "reason": result.extra.get("reason", "timer"),
        "signal": result.extra.get("signal")})
    update_progress(batch, state)


@retrying
def heartbeat(worker: str, held: dict[int, int], lease_s: float) -> set[int]:
    """Extend the leases still held; return the run ids this worker has lost."""
    if not held:
        return set()
    now = clock.now()
    rows = NodeRun.objects.filter(id__in=list(held)).values_list("id", "status", "lease_token")
    kept = {rid for rid, status, token in rows if status == R.RUNNING and token == held[rid]}
    if kept:
        NodeRun.objects.filter(id__in=kept, status=R.RUNNING).update(
            lease_expires_at=now + timedelta(seconds=lease_s))
    return set(held) - kept


@retrying
def release(held: dict[int, int]) -> int:
    """Give leases back (graceful shutdown): the runs are READY again, same attempt.

    Only runs still held under the same token move; a handler that was stopped
    mid-way runs again from the start, which its idempotency key makes safe.
    """
    if not held:
        return 0
    released = 0
    with write_transaction():
        rows = NodeRun.objects.select_for_update().filter(id__in=list(held), status=R.RUNNING)
        for run in rows:
            if run.lease_token == held[run.pk]:
                released += NodeRun.objects.filter(pk=run.pk).update(
                    status=R.READY, worker="", lease_expires_at=None, started_at=None)
    return released


def _uuid(value):
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
