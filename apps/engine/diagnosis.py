"""Why is it not moving? Every unfinished node run says why, in a fixed vocabulary.

`explain` is a pure decision over a run's fields; `why_execution` adds what
needs the database (how many runs are ahead in the queue, which queues are
paused). Shown in the admin and the CLI, returned by the selectors the API uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q

from apps.engine import clock, limits
from apps.engine.models import Execution, NodeRun, WorkerHeartbeat
from apps.engine.queues import paused_queues
from apps.engine.statuses import ACTIVE_RUN, TERMINAL_EXECUTION

# The vocabulary (concurrency limits and pools will add theirs).
QUEUED = "queued"                  # READY, N runs ahead of it in its queue order
AHEAD_CAP = 1000  # runs ahead are counted up to this: an exact figure would scan the backlog
QUEUE_PAUSED = "queue_paused"      # READY, but its queue is paused
BACKOFF = "backoff"                # READY after a failure, not before T
RATE_LIMITED = "rate_limited"      # READY, its rate-limit bucket is empty until T
LEASED = "leased"                  # RUNNING on worker W since T
LEASE_EXPIRED = "lease_expired"    # RUNNING, but its worker stopped heart-beating
TIMER = "timer"                    # WAITING until T (delay, wait_until)
APPROVAL = "awaiting_approval"     # WAITING for an operator's decision
SIGNAL = "awaiting_signal"         # WAITING for send_signal(name)
GLOBAL_LIMIT = "global_limit"      # pending: the global concurrency limit is full
WORKFLOW_LIMIT = "workflow_limit"  # pending: its workflow's limit is full
KEY_LIMIT = "key_limit"            # pending: its key's limit is full (e.g. one per customer)
ADMISSION = "awaiting_admission"   # pending: its limits have room, a worker admits it next
PAUSED = "paused"                  # WAITING: an operator paused the execution
POOL_FULL = "pool_full"            # WAITING for slots of a resource pool
NO_WORKER = "no_worker"            # work has waited, and no worker has been seen for a while
ABANDONED = "abandoned_thread"     # a timed-out handler still runs on a worker's thread


@dataclass(frozen=True)
class Reason:
    code: str
    node: str
    message: str
    until: datetime | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["until"] = self.until.isoformat() if self.until else None
        return data


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "?"


def explain(run, *, now: datetime, paused: frozenset[str] | set[str] = frozenset(),
            ahead: int = 0) -> Reason | None:
    """Why `run` (a NodeRun or anything with its fields) has not finished; None if it has."""
    node = run.node_id
    if run.status == "ready":
        if run.not_before and run.not_before > now and run.waiting_for.startswith("rate:"):
            _, scope, target = run.waiting_for.split(":", 2)
            return Reason(RATE_LIMITED, node, f"rate-limited by {scope} {target!r} until "
                          f"{_at(run.not_before)}", run.not_before)
        if run.not_before and run.not_before > now:
            return Reason(BACKOFF, node, f"back-off after attempt {run.attempt - 1} failed, "
                          f"until {_at(run.not_before)}", run.not_before)
        if run.queue in paused:
            return Reason(QUEUE_PAUSED, node, f"queue {run.queue!r} is paused")
        behind = f"more than {AHEAD_CAP:,}" if ahead > AHEAD_CAP else str(ahead)
        return Reason(QUEUED, node, f"queued behind {behind} in queue {run.queue!r}")
    if run.status == "running":
        if run.lease_expires_at and run.lease_expires_at < now:
            return Reason(LEASE_EXPIRED, node, f"worker {run.worker} stopped responding (lease "
                          f"expired {_at(run.lease_expires_at)}); the reaper re-queues it")
        return Reason(LEASED, node, f"leased by worker {run.worker} since "
                      f"{_at(run.started_at)}", run.lease_expires_at)
    if run.status == "waiting":
        if run.waiting_for.startswith("pool:"):
            return Reason(POOL_FULL, node, f"pool {run.waiting_for[5:]!r} full (needs "
                          f"{run.pool_slots} slot{'s' if run.pool_slots > 1 else ''})")
        if run.waiting_for == "paused":
            return Reason(PAUSED, node, "held: an operator paused the execution (unpause it)")
        if run.waiting_for == "approval":
            ends = f", times out {_at(run.wake_at)}" if run.wake_at else ""
            return Reason(APPROVAL, node, f"awaiting approval{ends}", run.wake_at)
        if run.waiting_for:
            ends = f", times out {_at(run.wake_at)}" if run.wake_at else ""
            return Reason(SIGNAL, node, f"awaiting signal {run.waiting_for!r}{ends}",
                          run.wake_at)
        return Reason(TIMER, node, f"timer until {_at(run.wake_at)}", run.wake_at)
    return None


def runs_ahead(run) -> int:
    """READY, claimable runs that the claim order puts before `run`, counted up to
    AHEAD_CAP + 1 (a page view must not count a backlog of millions)."""
    now = clock.now()
    return NodeRun.objects.filter(status="ready").filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)).filter(
        Q(queue_rank__gt=run.queue_rank)
        | Q(queue_rank=run.queue_rank, priority__gt=run.priority)
        | Q(queue_rank=run.queue_rank, priority=run.priority, id__lt=run.id)
    ).order_by().values("id")[:AHEAD_CAP + 1].count()


def why_pending(execution) -> Reason:
    """Why an execution under a concurrency limit has not been admitted yet."""
    found = limits.why_pending(execution)
    if found is None:
        return Reason(ADMISSION, "", "its limits have room: the next worker admits it")
    rule, running = found
    code = (GLOBAL_LIMIT if rule.workflow_id is None
            else KEY_LIMIT if rule.key else WORKFLOW_LIMIT)
    return Reason(code, "", f"{rule.label(execution.limit_key)} reached: {running} of "
                  f"{rule.max_running} running")


def no_worker(waiting_since: datetime | None, now: datetime) -> Reason | None:
    """Work that has waited longer than WORKER_SILENT_S while no worker was seen for
    as long: nothing is running it (see heartbeats.py for why silence means that)."""
    silent_s = settings.BRAID["WORKER_SILENT_S"]
    if waiting_since is None or (now - waiting_since).total_seconds() < silent_s:
        return None
    last = WorkerHeartbeat.objects.filter(role="worker").aggregate(last=Max("seen_at"))["last"]
    if last is not None and (now - last).total_seconds() < silent_s:
        return None
    seen = (f"since {_at(last)} ({(now - last).total_seconds():.0f} s ago)" if last
            else "ever")
    return Reason(NO_WORKER, "", f"no worker has been seen {seen}: start one "
                  "(manage.py braid worker, or manage.py qcluster)", last)


def abandoned_threads(execution_id, now: datetime) -> list[Reason]:
    """Timed-out handlers of this execution still running on live workers' threads."""
    alive = now - timedelta(seconds=settings.BRAID["WORKER_SILENT_S"])
    reasons = []
    for worker, entries in WorkerHeartbeat.objects.filter(
            role="worker", seen_at__gte=alive).exclude(abandoned=[]).values_list(
            "worker", "abandoned"):
        for entry in entries:
            if entry.get("execution") == str(execution_id):
                reasons.append(Reason(ABANDONED, entry["node"], (
                    f"abandoned thread: attempt {entry['attempt']} timed out after "
                    f"{entry['timeout_s']:g} s at {entry['timed_out_at'][:19]} and its handler "
                    f"still runs on worker {worker} (a thread cannot be stopped; its result "
                    "will be dropped)")))
    return reasons


def why_execution(execution_id) -> list[Reason]:
    """A reason for each unfinished run of the execution (empty when it is finished,
    but for threads its timed-out nodes left running). Takes the id or the Execution."""
    if isinstance(execution_id, Execution):
        execution, execution_id = execution_id, execution_id.pk
    else:
        execution = Execution.objects.filter(pk=execution_id).first()
    now = clock.now()
    if execution is not None and execution.status in TERMINAL_EXECUTION:
        return abandoned_threads(execution_id, now)  # no run of it is active any more
    if execution is not None and execution.status == "pending" and not execution.admitted:
        silent = no_worker(execution.created_at, now)
        return [why_pending(execution), *([silent] if silent else [])]
    paused = paused_queues()
    reasons = []
    ready_since = []
    for run in NodeRun.objects.filter(execution_id=execution_id,
                                      status__in=ACTIVE_RUN):
        ahead = runs_ahead(run) if run.status == "ready" else 0
        reason = explain(run, now=now, paused=paused, ahead=ahead)
        if reason:
            reasons.append(reason)
        if reason and reason.code == QUEUED:
            ready_since.append(max(filter(None, [run.created_at, run.not_before])))
    silent = no_worker(min(ready_since), now) if ready_since else None
    return reasons + ([silent] if silent else []) + abandoned_threads(execution_id, now)
