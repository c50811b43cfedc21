"""The durable execution protocol's database steps: claim, complete, heartbeat.

Each function is one short transaction. Handlers never run inside one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps

from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.engine.models import NodeRun
from apps.engine.transitions import (
    Batch,
    Claim,
    fail_run,
    finish_run,
    load_states,
    lock_executions,
    settle,
    update_progress,
)

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What a handler produced for one claimed run (its lease token is the fence)."""

    run_id: int
    lease_token: int
    execution_id: str
    outcome: str  # succeeded | failed | parked
    output: object = None
    error_class: str = ""
    message: str = ""
    retryable: bool = True
    duration_ms: float | None = None
    park_until: datetime | None = None
    extra: dict = field(default_factory=dict)


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


def _find(state, run_id):
    for run in list(state.latest.values()) + list(state.compensations.values()):
        if run.pk == run_id:
            return run
    return None


@retrying
def claim(worker: str, limit: int, lease_s: float) -> list[Claim]:
    """Lease up to `limit` READY runs, highest priority then oldest first.

    Candidates are read without locks; their executions are then locked with
    SKIP LOCKED. An execution locked by someone else (a completion, another
    claimer) is skipped this round: its runs are theirs to continue, or ours next
    time. On SQLite the IMMEDIATE transaction makes the whole claim exclusive.
    """
    if limit <= 0:
        return []
    now = timezone.now()
    with transaction.atomic():
        candidates = list(
            NodeRun.objects.filter(status="ready")
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .order_by("-priority", "id")
            .values_list("id", "execution_id")[: limit * 2]
        )
        if not candidates:
            return []
        executions = lock_executions({eid for _, eid in candidates}, skip_locked=True)
        if not executions:
            return []
        states = load_states(executions)
        batch = Batch(worker, now)
        for run_id, execution_id in candidates:
            if len(batch.claims) >= limit:
                break
            state = states.get(execution_id)
            run = _find(state, run_id) if state else None
            # Re-checked under the lock: a cancel or a claimer may have moved it.
            if run is None or run.status != "ready" or (run.not_before and run.not_before > now):
                continue
            batch.lease(run, state, lease_s)
        for state in states.values():
            if state.execution.id in batch.executions:
                update_progress(batch, state)
        batch.flush()
    return batch.claimed()


@retrying
def complete(results: list[Result], worker: str, capacity: int, lease_s: float) -> list[Claim]:
    """Commit many handler results in one transaction and lease ready successors.

    A result counts only if its run is still RUNNING under the same lease token:
    a run whose lease expired (and was re-queued) or that was cancelled keeps
    its newer state, and the late result is dropped.
    """
    if not results:
        return []
    with transaction.atomic():
        executions = lock_executions({r.execution_id for r in results})
        states = load_states(executions)
        batch = Batch(worker)
        changed, for_good = defaultdict(list), defaultdict(list)
        for result in results:
            state = states.get(_uuid(result.execution_id))
            run = _find(state, result.run_id) if state else None
            if run is None or run.status != "running" or run.lease_token != result.lease_token:
                log.info("dropped the late result of node run %s", result.run_id)
                continue
            eid = state.execution.id
            if result.outcome == "succeeded":
                finish_run(batch, state, run, "succeeded", output=result.output,
                           duration_ms=result.duration_ms)
                changed[eid].append(run.node_id)
            elif result.outcome == "parked":
                park(batch, state, run, result)
                changed.setdefault(eid, [])
            else:
                if fail_run(batch, state, run, result.error_class, result.message,
                            result.retryable, duration_ms=result.duration_ms):
                    changed[eid].append(run.node_id)
                    for_good[eid].append(run)
                else:
                    changed.setdefault(eid, [])
        room = [capacity]
        for eid in changed:
            settle(batch, states[eid], changed[eid], for_good[eid], lease_s, room)
        batch.flush()
    return batch.claimed()


def park(batch: Batch, state, run: NodeRun, result: Result) -> None:
    run.status = "waiting"
    run.wake_at = result.park_until
    run.wake_output = result.output
    run.lease_expires_at = None
    run.duration_ms = result.duration_ms
    batch.touch(run)
    batch.event(state.execution, "node.waiting", {
        "node": run.node_id, "attempt": run.attempt,
        "until": result.park_until.isoformat() if result.park_until else None,
        "reason": result.extra.get("reason", "timer")})


@retrying
def heartbeat(worker: str, held: dict[int, int], lease_s: float) -> set[int]:
    """Extend the leases still held; return the run ids this worker has lost."""
    if not held:
        return set()
    now = timezone.now()
    rows = NodeRun.objects.filter(id__in=list(held)).values_list("id", "status", "lease_token")
    kept = {rid for rid, status, token in rows if status == "running" and token == held[rid]}
    if kept:
        NodeRun.objects.filter(id__in=kept, status="running").update(
            lease_expires_at=now + timedelta(seconds=lease_s))
    return set(held) - kept


def _uuid(value):
    import uuid

    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
