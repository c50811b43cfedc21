"""The ticker's and reaper's work: timers, expired leases, deadlines, lost wake-ups.

Every step is a conditional transaction over locked executions (SKIP LOCKED),
so any number of tickers on any number of hosts can run it safely.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from apps.engine import clock, pools
from apps.engine.models import TERMINAL_EXECUTION, Execution, NodeRun
from apps.engine.protocol import retrying
from apps.engine.purge import delete_executions
from apps.engine.statuses import DEADLINE_EXECUTION
from apps.engine.transitions import (
    LEASE_EXPIRED,
    Batch,
    fail_or_compensate,
    fail_run,
    finish_run,
    load_states,
    lock_executions,
    settle,
)
from apps.engine.wakeup import wake_workers
from apps.engine.writelock import write_transaction

log = logging.getLogger(__name__)
BATCH = 500


def _runs_by_execution(rows):
    grouped = defaultdict(list)
    for run_id, execution_id in rows:
        grouped[execution_id].append(run_id)
    return grouped


@retrying
def wake_due_timers(limit: int = BATCH) -> int:
    """Complete parked runs whose wake time has come (no worker runs them again)."""
    now = clock.now()
    with write_transaction():
        due = _runs_by_execution(NodeRun.objects.filter(status="waiting", wake_at__lte=now)
                                 .order_by("wake_at").values_list("id", "execution_id")[:limit])
        if not due:
            return 0
        states = load_states(lock_executions(due, skip_locked=True))
        batch = Batch("ticker", now)
        woken = 0
        for execution_id, state in states.items():
            changed = []
            for run in list(state.latest.values()) + list(state.compensations.values()):
                if run.pk in due[execution_id] and run.status == "waiting":
                    finish_run(batch, state, run, "succeeded", output=run.wake_output)
                    changed.append(run.node_id)
            if changed:
                woken += len(changed)
                settle(batch, state, changed, [], 0, [0])
        batch.flush()
        if any(r.status == "ready" for r in batch.new_runs):
            transaction.on_commit(wake_workers)
    return woken


@retrying
def reap_expired_leases(limit: int = BATCH) -> int:
    """Re-queue runs whose worker stopped heart-beating (killed) as a new attempt."""
    now = clock.now()
    with write_transaction():
        expired = _runs_by_execution(
            NodeRun.objects.filter(status="running", lease_expires_at__lt=now)
            .values_list("id", "execution_id")[:limit])
        if not expired:
            return 0
        states = load_states(lock_executions(expired, skip_locked=True))
        batch = Batch("reaper", now)
        reaped = 0
        for execution_id, state in states.items():
            changed, for_good = [], []
            for run in list(state.latest.values()) + list(state.compensations.values()):
                if (run.pk in expired[execution_id] and run.status == "running"
                        and run.lease_expires_at and run.lease_expires_at < now):
                    reaped += 1
                    message = f"{LEASE_EXPIRED}: worker {run.worker or '?'} stopped responding"
                    if fail_run(batch, state, run, "resource", message, True, lost_lease=True):
                        changed.append(run.node_id)
                        for_good.append(run)
            if for_good:
                settle(batch, state, changed, for_good, 0, [0])
        batch.flush()
        if reaped:
            transaction.on_commit(wake_workers)
    if reaped:
        log.warning("re-queued %d node run(s) with expired leases", reaped)
    return reaped


@retrying
def time_out_deadlines(limit: int = BATCH) -> int:
    """Fail executions past their deadline (class `timeout`), compensating if they can."""
    now = clock.now()
    with write_transaction():
        ids = list(Execution.objects.filter(
            deadline__lt=now, status__in=DEADLINE_EXECUTION)
            .values_list("id", flat=True)[:limit])
        if not ids:
            return 0
        states = load_states(lock_executions(ids, skip_locked=True))
        batch = Batch("reaper", now)
        for state in states.values():
            if state.execution.status in DEADLINE_EXECUTION:
                fail_or_compensate(batch, state, {
                    "class": "timeout", "node": None,
                    "message": f"deadline {state.execution.deadline.isoformat()} exceeded"})
        batch.flush()
        if any(r.status == "ready" for r in batch.new_runs):
            transaction.on_commit(wake_workers)
    return len(states)


def resend_lost_wakeups() -> int:
    """Ready work older than LOST_WAKEUP_S means its wake-up may be lost: send one."""
    now = clock.now()
    cutoff = now - timedelta(seconds=settings.BRAID["LOST_WAKEUP_S"])
    stale = NodeRun.objects.filter(status="ready").filter(
        Q(not_before__isnull=True, created_at__lt=cutoff) | Q(not_before__lt=cutoff)).exists()
    # Executions awaiting admission: a worker checks whether their limit has room.
    stale = stale or Execution.objects.filter(status="pending", admitted=False,
                                              created_at__lt=cutoff).exists()
    return wake_workers(1) if stale else 0


def wake_for_backoffs(since) -> int:
    """Retries whose back-off ended since the last tick need a worker now."""
    now = clock.now()
    due = NodeRun.objects.filter(status="ready", not_before__gt=since,
                                 not_before__lte=now).exists()
    return wake_workers() if due else 0


def purge_expired(limit: int = BATCH) -> int:
    """Delete finished executions older than their queue's `retention_days`.

    Their node runs and events go with them (a cascade); unfinished executions
    are never touched. A batch at a time, so a big backlog of old rows spreads
    over several reaper passes instead of one long transaction.
    """
    deleted = 0
    now = clock.now()
    for queue, policy in settings.BRAID_QUEUES.items():
        days = policy.get("retention_days")
        if not days:
            continue
        cutoff = now - timedelta(days=days)
        # created_at <= finished_at: the created_at bound lets its index find them.
        ids = list(Execution.objects.filter(
            queue=queue, status__in=sorted(TERMINAL_EXECUTION), created_at__lt=cutoff,
            finished_at__lt=cutoff).values_list("id", flat=True)[:limit])
        if ids:
            deleted += delete_executions(ids)[0]
    return deleted


@retrying
def release_pools_with_room() -> int:
    with write_transaction():
        return pools.release_pools_with_room()


def reap() -> dict:
    """One reaper pass (also `manage.py braid reap` and a django-q2 schedule)."""
    return {
        "pool_waits_released": release_pools_with_room(),
        "expired_executions_deleted": purge_expired(),
        "timers_woken": wake_due_timers(),
        "leases_reaped": reap_expired_leases(),
        "deadlines_timed_out": time_out_deadlines(),
        "wakeups_resent": resend_lost_wakeups(),
    }
