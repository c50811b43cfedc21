"""Queues: pause and resume (services), what is paused (cached), and statistics."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from apps.engine.errors import NotFound
from apps.engine.models import Execution, NodeRun, Queue
from apps.engine.statuses import ACTIVE_RUN, FAILED_EXECUTION
from apps.engine.wakeup import wake_on_commit
from apps.workflows.graph import RetryPolicy

PAUSED_TTL_S = 0.5  # claims re-read the paused set at most this often
_paused: tuple[float, frozenset[str]] = (0.0, frozenset())


def known_queues() -> list[str]:
    return list(settings.BRAID_QUEUES)


URGENT_WINDOW_S = 2.0  # how long small bites last after urgent work was seen
_urgent_seen: dict[int, float] = {}  # queue weight → when this process last claimed it


def note_claimed(weight: int) -> None:
    _urgent_seen[weight] = time.monotonic()


def queue_batch(name: str, default: int = 32) -> int:
    """How many of the queue's runs one claim may take.

    A queue's `claim_batch` (small for bulk queues) applies only while this
    worker has recently claimed work of a heavier queue: then short transactions
    let it come back for that work sooner. Otherwise the queue gets full bites.
    """
    policy = settings.BRAID_QUEUES.get(name, {})
    weight = policy.get("weight", 0)
    now = time.monotonic()
    if any(w > weight and now - t < URGENT_WINDOW_S for w, t in _urgent_seen.items()):
        return policy.get("claim_batch", default)
    return default


def queue_timeout_s(name: str) -> float:
    """The default node timeout for nodes that set none: the queue's, else Braid's.

    Every node has one, well below django-q2's task timeout, so a hung handler
    is failed (and its thread abandoned or its process killed) by the engine.
    """
    return settings.BRAID_QUEUES.get(name, {}).get("timeout_s", settings.BRAID["NODE_TIMEOUT_S"])


def queue_retry(name: str, node_retry: RetryPolicy) -> RetryPolicy:
    """The queue's default retry policy (settings `retry`), for nodes that set none."""
    policy = settings.BRAID_QUEUES.get(name, {}).get("retry")
    return RetryPolicy(**{**RetryPolicy().__dict__, **policy}) if policy else node_retry


def check_queue(name: str) -> None:
    if name not in settings.BRAID_QUEUES:
        raise NotFound(f"no queue {name!r} (queues: {', '.join(known_queues())})")


def paused_queues() -> frozenset[str]:
    """The paused queues, read at most every PAUSED_TTL_S per process."""
    global _paused
    read_at, names = _paused
    if time.monotonic() - read_at > PAUSED_TTL_S:
        names = frozenset(Queue.objects.filter(paused=True).values_list("name", flat=True))
        _paused = (time.monotonic(), names)
    return names


def ensure_queues() -> None:
    """A row for every configured queue (rows hold only operator state)."""
    Queue.objects.bulk_create([Queue(name=n) for n in settings.BRAID_QUEUES],
                              ignore_conflicts=True)


def _set_paused(name: str, paused: bool, user=None) -> Queue:
    check_queue(name)
    who = getattr(user, "get_username", lambda: "")() if user is not None else ""
    queue, _ = Queue.objects.update_or_create(name=name, defaults={"paused": paused,
                                                                   "changed_by": who})
    global _paused
    _paused = (0.0, frozenset())  # this process sees the change at once
    return queue


def pause_queue(name: str, user=None) -> Queue:
    """Stop claiming the queue's work; it stays READY, nothing is lost."""
    return _set_paused(name, True, user)


def resume_queue(name: str, user=None) -> Queue:
    """Release the queue's held work to the workers."""
    queue = _set_paused(name, False, user)
    wake_on_commit()
    return queue


def queue_stats(window_s: float = 300.0) -> list[dict]:
    """Per queue: ready, running, waiting on a timer or signal, delayed by back-off,
    completed and failed executions in the window, oldest ready age, claims per second."""
    now = timezone.now()
    since = now - timedelta(seconds=window_s)
    runs = {row["queue"]: row for row in NodeRun.objects.filter(
        status__in=ACTIVE_RUN).values("queue").annotate(
        ready=Count("id", filter=Q(status="ready") & (Q(not_before__isnull=True)
                                                      | Q(not_before__lte=now))),
        delayed=Count("id", filter=Q(status="ready", not_before__gt=now)),
        running=Count("id", filter=Q(status="running")),
        waiting=Count("id", filter=Q(status="waiting")),
        oldest=Min("created_at", filter=Q(status="ready")))}
    claims = dict(NodeRun.objects.filter(started_at__gte=since).values("queue").annotate(
        n=Count("id")).values_list("queue", "n"))
    finished = {row["queue"]: row for row in Execution.objects.filter(
        finished_at__gte=since).values("queue").annotate(
        completed=Count("id", filter=Q(status="succeeded")),
        failed=Count("id", filter=Q(status__in=FAILED_EXECUTION)))}
    paused = set(Queue.objects.filter(paused=True).values_list("name", flat=True))
    stats = []
    for name, policy in settings.BRAID_QUEUES.items():
        r, f = runs.get(name, {}), finished.get(name, {})
        oldest = r.get("oldest")
        stats.append({
            "queue": name, "weight": policy.get("weight", 0), "paused": name in paused,
            "ready": r.get("ready", 0), "delayed": r.get("delayed", 0),
            "running": r.get("running", 0), "waiting": r.get("waiting", 0),
            "completed": f.get("completed", 0), "failed": f.get("failed", 0),
            "oldest_ready_s": round((now - oldest).total_seconds(), 3) if oldest else None,
            "claims_per_s": round(claims.get(name, 0) / window_s, 3),
            "window_s": window_s})
    return stats
