"""Retention: delete what is past its keep-by date in small batches, by indexed time.

Finished executions go after their queue's `retention_days` (with their node
runs and events, by cascade); host samples after a day; delivered
notifications after 30 days. Each batch is its own short transaction, so the
engine never waits long for a lock; `prune` reports the longest one.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.engine.models import Execution
from apps.engine.purge import delete_executions
from apps.engine.statuses import TERMINAL_EXECUTION
from apps.operations.models import HostSample, Notification

BATCH = 50  # executions a transaction (each with its runs, events, logs): short locks
SAMPLES_KEEP = timedelta(days=1)
NOTIFICATIONS_KEEP = timedelta(days=30)


def expired_executions(queue: str, days: float, now):
    """Finished executions of `queue` older than `days`. created_at ≤ finished_at, so the
    created_at bound lets the index on created_at find them without a scan."""
    cutoff = now - timedelta(days=days)
    return Execution.objects.filter(queue=queue, created_at__lt=cutoff, finished_at__lt=cutoff,
                                    status__in=sorted(TERMINAL_EXECUTION))


def plan(now=None) -> dict[str, int]:
    """What a prune would delete now, per queue (a dry run)."""
    now = now or timezone.now()
    counts = {}
    for queue, policy in settings.BRAID_QUEUES.items():
        days = policy.get("retention_days")
        if days:
            counts[queue] = expired_executions(queue, days, now).count()
    return counts


def prune(now=None, batch: int = BATCH, max_batches: int | None = None) -> dict:
    """Delete everything past retention; returns what went and the longest pause (ms)."""
    now = now or timezone.now()
    report = {"executions": 0, "rows": 0, "batches": 0, "longest_batch_ms": 0.0}
    for queue, policy in settings.BRAID_QUEUES.items():
        days = policy.get("retention_days")
        if not days:
            continue
        while max_batches is None or report["batches"] < max_batches:
            ids = list(expired_executions(queue, days, now).order_by("created_at")
                       .values_list("id", flat=True)[:batch])
            if not ids:
                break
            started = time.perf_counter()
            executions, rows = delete_executions(ids)
            elapsed = (time.perf_counter() - started) * 1000
            report["executions"] += executions
            report["rows"] += rows
            report["batches"] += 1
            report["longest_batch_ms"] = max(report["longest_batch_ms"], round(elapsed, 1))
    report["host_samples"] = HostSample.objects.filter(at__lt=now - SAMPLES_KEEP).delete()[0]
    report["notifications"] = Notification.objects.filter(
        state__in=["sent", "failed"], created_at__lt=now - NOTIFICATIONS_KEEP).delete()[0]
    return report
