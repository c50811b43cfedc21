"""diagnose(execution): what an operator needs to decide what to do about one execution.

Its stuck nodes (how long they ran and how long they should have), the latest
events and node errors, the engine's "why is it not moving?" reasons, the
resource figures of the workers that hold it, and suggestions. Shown on the
alert and the execution page, and by `manage.py braid diagnose ID`.
"""

from __future__ import annotations

from django.utils import timezone

from apps.engine.diagnosis import why_execution
from apps.engine.models import ExecutionEvent, NodeRun
from apps.engine.selectors import get_execution
from apps.operations.checks import expected_s
from apps.operations.evaluator import configured
from apps.operations.models import HostSample
from apps.operations.rules import percentile, stuck_limit_s
from apps.operations.suggestions import suggest

RECENT = 20


def _expected_s(definition_id: int, version_id: int, node_id: str) -> float | None:
    rule = configured("node_stuck")
    durations = list(NodeRun.objects.filter(
        execution__definition_id=definition_id, node_id=node_id, status="succeeded",
        duration_ms__isnull=False).order_by("-id").values_list("duration_ms", flat=True)[:200])
    p95 = percentile(durations, 0.95)
    return stuck_limit_s(expected_s(version_id, node_id), None if p95 is None else p95 / 1000,
                         float(rule.threshold or 2.0), float(rule.get("min_s", 30.0)))


def _worker_figures(workers: set[str]) -> list[dict]:
    figures = []
    for worker in sorted(workers):
        host, _, pid = worker.rpartition(":")
        sample = HostSample.objects.filter(host=host).order_by("-at").first()
        if sample is None:
            figures.append({"worker": worker, "host": host, "sampled": False})
            continue
        process = next((p for p in sample.processes if str(p.get("pid")) == pid), None)
        figures.append({"worker": worker, "host": host, "sampled": True,
                        "at": sample.at.isoformat(), "cpu_percent": sample.cpu_percent,
                        "memory_percent": sample.memory_percent, "process": process})
    return figures


def diagnose(execution_id) -> dict:
    execution = get_execution(execution_id)
    now = timezone.now()
    stuck = []
    running = NodeRun.objects.filter(execution=execution, status="running")
    for run in running:
        ran_s = (now - run.started_at).total_seconds() if run.started_at else 0.0
        expected = _expected_s(execution.definition_id, execution.version_id, run.node_id)
        if expected is not None and ran_s > expected:
            stuck.append({"node": run.node_id, "attempt": run.attempt, "worker": run.worker,
                          "ran_s": round(ran_s, 1), "expected_s": round(expected, 1)})
    errors = [{"node": r.node_id, "attempt": r.attempt, "error_class": r.error_class,
               "message": r.error_message[:1000],
               "at": r.finished_at.isoformat() if r.finished_at else None}
              for r in NodeRun.objects.filter(execution=execution, status="failed")
              .order_by("-id")[:RECENT]]
    events = [{"seq": e.seq, "type": e.type, "at": e.created_at.isoformat(), "data": e.payload}
              for e in ExecutionEvent.objects.filter(execution=execution).order_by("-seq")[:RECENT]]
    why = [reason.as_dict() for reason in why_execution(execution.pk)]
    workers = {r.worker for r in running if r.worker}
    figures = _worker_figures(workers)
    hot = any(f.get("sampled") and (f["cpu_percent"] > 80 or f["memory_percent"] > 85)
              for f in figures)
    return {
        "execution": str(execution.pk),
        "workflow": execution.version.definition.slug,
        "version": execution.version.number,
        "status": execution.status,
        "error": execution.error,
        "stuck_nodes": stuck,
        "node_errors": errors,
        "recent_events": list(reversed(events)),
        "why": why,
        "workers": figures,
        "suggestions": suggest([e["error_class"] for e in errors], [w["code"] for w in why],
                               bool(stuck), hot),
    }
