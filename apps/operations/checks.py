"""Each alert rule's check: what holds right now, read with cheap indexed queries.

A check returns `Finding`s; `evaluator.py` turns them into alerts (dedupe,
`for_s`, auto-resolve). Every query here is bounded (a time window, an index,
a LIMIT) so the evaluator stays cheap on tables of millions of rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q

from apps.engine.models import Execution, NodeRun
from apps.engine.queues import paused_queues
from apps.engine.statuses import DEADLINE_EXECUTION, FAILED_EXECUTION
from apps.operations.models import Alert
from apps.operations.monitor import latest_hosts
from apps.operations.rules import Finding, RuleConfig, percentile, stuck_limit_s

FAILED = ("failed",)
MAX_LISTED = 20  # execution ids listed in one alert's details


def execution_failed(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Per workflow: executions that failed (no compensation could undo them) since
    the last time an operator resolved this workflow's alert (at most a day back)."""
    since_default = now - timedelta(seconds=rule.get("window_s", 86400))
    rows = (Execution.objects.filter(status__in=FAILED, created_at__gte=since_default)
            .values_list("id", "definition_id", "definition__slug", "finished_at", "error")
            .order_by("-created_at")[:5000])
    by_workflow: dict[int, list] = {}
    resolved_at: dict[int, datetime | None] = {}
    for pk, definition_id, slug, finished_at, error in rows:
        if definition_id not in resolved_at:
            resolved_at[definition_id] = _last_resolved(rule.name, definition_id)
        last_resolved = resolved_at[definition_id]
        if last_resolved and finished_at and finished_at <= last_resolved:
            continue
        by_workflow.setdefault(definition_id, []).append((pk, slug, error))
    findings = []
    for definition_id, items in by_workflow.items():
        slug = items[0][1]
        first_error = (items[0][2] or {}).get("message", "") if isinstance(items[0][2], dict) \
            else ""
        findings.append(Finding(
            key=str(definition_id),
            title=f"{len(items)} execution(s) of {slug} failed and need an operator",
            subject_kind="workflow", subject_id=slug, workflow_id=definition_id,
            execution_id=str(items[0][0]),
            details={"count": len(items), "executions": [str(i[0]) for i in items[:MAX_LISTED]],
                     "latest_error": first_error[:500],
                     "action": "open the execution: retry the node, skip it with an output, "
                               "resume or compensate"}))
    return findings


def _last_resolved(rule: str, definition_id: int):
    return (Alert.objects.filter(rule=rule, state="resolved",
                                 dedupe_key=f"{rule}:{definition_id}")
            .order_by("-resolved_at").values_list("resolved_at", flat=True).first())


def node_stuck(rule: RuleConfig, now: datetime) -> list[Finding]:
    """RUNNING node runs longer than `threshold` × the p95 of their node's recent
    successful runs (never less than `min_s`)."""
    min_s = float(rule.get("min_s", 30.0))
    running = list(NodeRun.objects.filter(status="running",
                                          started_at__lte=now - timedelta(seconds=min_s))
                   .values_list("id", "execution_id", "node_id", "started_at", "worker",
                                "execution__definition_id", "execution__definition__slug",
                                "execution__version_id")
                   .order_by("started_at")[:200])
    findings, p95_cache = [], {}
    for (run_id, execution_id, node_id, started_at, worker, definition_id, slug,
         version_id) in running:
        key = (definition_id, node_id)
        if key not in p95_cache:
            durations = list(NodeRun.objects.filter(
                execution__definition_id=definition_id, node_id=node_id, status="succeeded",
                duration_ms__isnull=False).order_by("-id").values_list("duration_ms",
                                                                      flat=True)[:200])
            p95 = percentile(durations, 0.95)
            p95_cache[key] = None if p95 is None else p95 / 1000
        limit = stuck_limit_s(expected_s(version_id, node_id), p95_cache[key],
                              float(rule.threshold or 2.0), min_s)
        ran_s = (now - started_at).total_seconds()
        if limit is not None and ran_s > limit:
            findings.append(Finding(
                key=str(run_id), subject_kind="node_run", subject_id=str(run_id),
                title=f"{slug}: node {node_id} has run {ran_s:.0f} s (expected at most "
                      f"{limit:.0f} s)",
                workflow_id=definition_id, execution_id=str(execution_id),
                details={"node": node_id, "ran_s": round(ran_s, 1),
                         "expected_s": round(limit, 1), "worker": worker,
                         "action": "see the execution's diagnosis; cancel or retry the node"}))
    return findings


def expected_s(version_id: int, node_id: str) -> float | None:
    """The node's declared `expected_s`, if its version says (and today's code reads it)."""
    from apps.workflows.specs import graph_for

    try:
        return graph_for(version_id).nodes[node_id].expected_s
    except Exception:  # a version this code cannot read: fall back on its history
        return None


def deadline_passed(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Unfinished executions past their deadline (the reaper should have timed them out)."""
    rows = (Execution.objects.filter(deadline__lt=now,
                                     status__in=DEADLINE_EXECUTION)
            .values_list("id", "definition_id", "definition__slug", "deadline")[:100])
    return [Finding(key=str(pk), subject_kind="execution", subject_id=str(pk),
                    title=f"{slug}: execution {str(pk)[:8]} is past its deadline",
                    workflow_id=definition_id, execution_id=str(pk),
                    details={"deadline": deadline.isoformat(),
                             "action": "check that a ticker (braid ticker or braid worker) "
                                       "runs; cancel the execution if it must stop"})
            for pk, definition_id, slug, deadline in rows]


def _ready_by_queue(now: datetime):
    return (NodeRun.objects.filter(status="ready")
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .values("queue").annotate(n=Count("id"), oldest=Min("created_at")).order_by())


def queue_backlog(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Queues with more than `threshold` runs ready to claim."""
    threshold = int(rule.threshold or 1000)
    return [Finding(key=row["queue"], subject_kind="queue", subject_id=row["queue"],
                    title=f"queue {row['queue']}: {row['n']} runs waiting for a worker",
                    details={"ready": row["n"], "threshold": threshold,
                             "action": "add workers (more qcluster processes or hosts), or "
                                       "check for a slow node type holding them"})
            for row in _ready_by_queue(now) if row["n"] > threshold]


def queue_unclaimed(rule: RuleConfig, now: datetime) -> list[Finding]:
    """A queue that is not paused has had ready work for `idle_s` and nobody took it:
    no worker runs, or none reaches the database or broker."""
    paused = paused_queues()
    findings = []
    for row in _ready_by_queue(now):
        if row["queue"] in paused or row["oldest"] is None:
            continue
        age = (now - row["oldest"]).total_seconds()
        if age > float(rule.get("idle_s", 60.0)):
            findings.append(Finding(
                key=row["queue"], subject_kind="queue", subject_id=row["queue"],
                title=f"queue {row['queue']}: work waiting {age:.0f} s, no worker claims it",
                details={"ready": row["n"], "oldest_s": round(age, 1),
                         "action": "start braid worker (or qcluster) processes; check that "
                                   "they reach the database and the broker"}))
    return findings


def host_cpu(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Worker hosts whose CPU use is over `threshold` percent."""
    threshold = float(rule.threshold or 80)
    return [Finding(key=s.host, subject_kind="host", subject_id=s.host,
                    title=f"host {s.host}: CPU {s.cpu_percent:.0f} % (over {threshold:.0f} %)",
                    details={"cpu_percent": s.cpu_percent, "threshold": threshold,
                             "action": "add worker hosts or lower BRAID_WORKERS here"})
            for s in latest_hosts() if s.cpu_percent > threshold]


def host_memory(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Worker hosts whose memory use is over `threshold` percent of their limit."""
    threshold = float(rule.threshold or 85)
    return [Finding(key=s.host, subject_kind="host", subject_id=s.host,
                    title=f"host {s.host}: memory {s.memory_percent:.0f} % "
                          f"(over {threshold:.0f} %)",
                    details={"memory_percent": s.memory_percent, "threshold": threshold,
                             "action": "lower BRAID_THREADS / BRAID_PROCESSES or add memory"})
            for s in latest_hosts() if s.memory_percent > threshold]


def failure_rate(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Workflows whose finished executions failed more than `threshold` of the time
    in the last `window_s` (at least `min_count` finished)."""
    from apps.operations.rules import failure_rate_breached

    window = now - timedelta(seconds=float(rule.get("window_s", 300)))
    threshold = float(rule.threshold or 0.1)
    rows = (Execution.objects.filter(created_at__gte=window - timedelta(hours=1),
                                     finished_at__gte=window)
            .values("definition_id", "definition__slug")
            .annotate(total=Count("id"),
                      failed=Count("id", filter=Q(status__in=FAILED_EXECUTION)))
            .order_by())
    findings = []
    for row in rows:
        if failure_rate_breached(row["failed"], row["total"], threshold,
                                 int(rule.get("min_count", 10))):
            rate = row["failed"] / row["total"]
            findings.append(Finding(
                key=str(row["definition_id"]), subject_kind="workflow",
                subject_id=row["definition__slug"], workflow_id=row["definition_id"],
                title=f"{row['definition__slug']}: {rate:.0%} of executions failed "
                      f"in {rule.get('window_s', 300):.0f} s",
                details={"failed": row["failed"], "total": row["total"],
                         "rate": round(rate, 4), "threshold": threshold,
                         "action": "look at the latest errors; roll back a recent deploy"}))
    return findings


def db_connections(rule: RuleConfig, now: datetime) -> list[Finding]:
    """PostgreSQL connections in use over `threshold` of max_connections."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), current_setting('max_connections')::int "
                       "FROM pg_stat_activity")
        used, maximum = cursor.fetchone()
    threshold = float(rule.threshold or 0.8)
    if maximum and used / maximum > threshold:
        return [Finding(key="default", subject_kind="database",
                        subject_id=settings.DATABASES["default"].get("NAME", ""),
                        title=f"database: {used} of {maximum} connections in use",
                        details={"used": used, "max": maximum, "threshold": threshold,
                                 "action": "put pgbouncer in front, or lower CONN_MAX_AGE / "
                                           "the number of worker processes"})]
    return []


def release_stopped(rule: RuleConfig, now: datetime) -> list[Finding]:
    """Per workflow: critical release-log entries (a blue-green smoke run failed, the
    judge rolled a canary back) since an operator last resolved this workflow's alert."""
    from apps.workflows.models import ReleaseEvent

    since = now - timedelta(seconds=rule.get("window_s", 86400))
    rows = (ReleaseEvent.objects.filter(severity="critical", created_at__gte=since)
            .order_by("-created_at")
            .values_list("definition_id", "definition__slug", "kind", "reason", "created_at")
            [:500])
    by_workflow: dict[int, list] = {}
    for definition_id, slug, kind, reason, created_at in rows:
        last_resolved = _last_resolved(rule.name, definition_id)
        if last_resolved and created_at <= last_resolved:
            continue
        by_workflow.setdefault(definition_id, []).append((slug, kind, reason))
    return [Finding(key=str(definition_id), subject_kind="workflow", subject_id=items[0][0],
                    workflow_id=definition_id,
                    title=f"release of {items[0][0]} stopped: {items[0][2]}"[:250],
                    details={"count": len(items), "latest": items[0][1],
                             "reasons": [i[2] for i in items[:MAX_LISTED]],
                             "action": "open the workflow's Releases page: read the figures "
                                       "in the release log, fix, deploy again"})
            for definition_id, items in by_workflow.items()]


CHECKS = {
    "execution_failed": execution_failed,
    "node_stuck": node_stuck,
    "deadline_passed": deadline_passed,
    "queue_backlog": queue_backlog,
    "failure_rate": failure_rate,
    "queue_unclaimed": queue_unclaimed,
    "host_cpu": host_cpu,
    "host_memory": host_memory,
    "db_connections": db_connections,
    "release_stopped": release_stopped,
}
