"""Releases with the engine's part: smoke executions and execution figures.

Admin, API and CLI call these (they re-export the workflows floor's promote,
abort and rollback). A blue-green deploy validates the smoke inputs against
the candidate's input schema, commits the release, then starts its smoke
executions pinned to the candidate; the judge (rollout_judge.py) switches or
fails it when they finish.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from apps.engine.errors import InputInvalid
from apps.engine.models import Execution
from apps.engine.start import StartRequest, check_input, start_many
from apps.engine.statuses import FAILED_EXECUTION, SUCCESSFUL_EXECUTION
from apps.workflows import permissions, releases
from apps.workflows.errors import BraidError
from apps.workflows.health import Figures, p95
from apps.workflows.models import Release, ReleaseEvent, Strategy
from apps.workflows.routing import CANDIDATE, STABLE

promote = releases.promote
abort = releases.abort
rollback = releases.rollback

FAILURES = FAILED_EXECUTION
FINISHED = SUCCESSFUL_EXECUTION | FAILED_EXECUTION  # cancelled says nothing about health
MAX_ROWS = 5000  # newest finished executions per version read for one figure


def deploy(slug: str, number: int, *, user=None, **options) -> Release:
    """Deploy version `number` of `slug` (see releases.deploy for the options)."""
    smoke_inputs = options.get("smoke_inputs")
    if options.get("strategy") == Strategy.BLUE_GREEN:
        releases.check_smoke_inputs(smoke_inputs)
        definition = releases.definition_of(slug)
        permissions.check_deploy(user, definition)
        _check_smoke_against_schema(releases.version_number(definition, number), smoke_inputs)
    release = releases.deploy(slug, number, user=user, **options)
    if release.strategy == Strategy.BLUE_GREEN:
        started = start_many([
            StartRequest(version_id=release.candidate_version_id, input=item["input"],
                         client_id=f"smoke:release:{release.pk}", user=user)
            for item in release.smoke_inputs])
        ids = [str(e.pk) for e in started]
        releases.record_smoke_runs(release.pk, ids)
        release.smoke_execution_ids = ids
    return release


def _check_smoke_against_schema(version, smoke_inputs) -> None:
    problems = []
    for i, item in enumerate(smoke_inputs):
        try:
            check_input(version, item["input"])
        except BraidError as exc:
            problems += [{**p, "where": f"smoke_inputs[{i}].{p.get('where')}"}
                         for p in exc.problems] or [
                {"where": f"smoke_inputs[{i}]", "node": None, "message": exc.message}]
    if problems:
        raise InputInvalid("smoke inputs do not fit the candidate's input schema", problems)


# --- figures ----------------------------------------------------------------------------

def figures(definition_id: int, version_id: int, since, *, route: str | None = None,
            step_since=None) -> tuple[Figures, int]:
    """(Figures of executions of a version created since `since`, how many finished
    since `step_since`), over at most the newest MAX_ROWS finished executions.

    PostgreSQL aggregates in the database (one row back); elsewhere the rows
    are read and counted here. The judge calls this twice per canary every
    JUDGE_EVERY_S, so it must stay cheap.
    """
    if connection.vendor == "postgresql":
        return _figures_sql(definition_id, version_id, since, route, step_since)
    return _figures_rows(definition_id, version_id, since, route, step_since)


def _figures_rows(definition_id, version_id, since, route, step_since) -> tuple[Figures, int]:
    rows = Execution.objects.filter(definition_id=definition_id, version_id=version_id,
                                    created_at__gte=since, status__in=FINISHED)
    if route:
        rows = rows.filter(route=route)
    rows = list(rows.order_by("-created_at").values_list(
        "status", "created_at", "finished_at")[:MAX_ROWS])
    durations = [(f - c).total_seconds() * 1000 for _, c, f in rows if f and c]
    failed = sum(1 for status, _, _ in rows if status in FAILURES)
    in_step = sum(1 for _, c, _ in rows if step_since is None or c >= step_since)
    return Figures(finished=len(rows), failed=failed, p95_ms=p95(durations)), in_step


# percentile_disc(0.95) is the nearest-rank p95, as health.p95 computes it.
_FIGURES_SQL = f"""
WITH recent AS (
    SELECT status, created_at, finished_at FROM {Execution._meta.db_table}
    WHERE definition_id = %(definition)s AND version_id = %(version)s
      AND created_at >= %(since)s AND status = ANY(%(finished)s)
      AND (%(route)s::text IS NULL OR route = %(route)s)
    ORDER BY created_at DESC LIMIT {MAX_ROWS})
SELECT count(*),
       count(*) FILTER (WHERE status = ANY(%(failures)s)),
       percentile_disc(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - created_at) * 1000),
       count(*) FILTER (WHERE created_at >= %(step_since)s)
FROM recent"""


def _figures_sql(definition_id, version_id, since, route, step_since) -> tuple[Figures, int]:
    with connection.cursor() as cursor:
        cursor.execute(_FIGURES_SQL, {
            "definition": definition_id, "version": version_id, "since": since,
            "finished": list(FINISHED), "failures": list(FAILURES), "route": route,
            "step_since": step_since or since})
        finished, failed, p95_ms, in_step = cursor.fetchone()
    return Figures(finished=finished, failed=failed,
                   p95_ms=float(p95_ms) if p95_ms is not None else None), in_step


def window_start(release: Release, window_s: float, now=None):
    now = now or timezone.now()
    return max(release.created_at, now - timedelta(seconds=window_s))


def release_state(slug: str, user=None) -> dict:
    """The live state of a workflow's current (or latest) release, with figures and log."""
    definition = releases.definition_of(slug)
    permissions.check_view(user, definition)
    release = (Release.objects.filter(definition=definition)
               .select_related("stable_version", "candidate_version", "created_by").first())
    state = {"workflow": slug,
             "current_version": definition.current_version.number
             if definition.current_version else None,
             "release": None, "versions": [], "log": []}
    if release is None:
        return state
    state["release"] = describe(release)
    since = window_start(release, release.thresholds.get("window_s", 600.0))
    for version, route in ((release.stable_version, STABLE),
                           (release.candidate_version, CANDIDATE)):
        if version is None:
            continue
        figs, _ = figures(definition.pk, version.pk, since,
                          route=route if release.strategy == Strategy.CANARY else None)
        started = Execution.objects.filter(definition=definition, version=version,
                                           created_at__gte=release.created_at)
        if release.strategy == Strategy.CANARY:
            started = started.filter(route=route)
        role = route if release.strategy == Strategy.CANARY else (
            "previous" if route == STABLE else "deployed")
        state["versions"].append({"version": version.number, "role": role,
                                  "started": started.count(), **figs.as_dict()})
    if release.smoke_execution_ids:
        state["smoke"] = [
            {"execution": str(e["id"]), "status": e["status"]}
            for e in Execution.objects.filter(pk__in=release.smoke_execution_ids)
            .values("id", "status")]
    state["log"] = [event_dict(e) for e in ReleaseEvent.objects.filter(definition=definition)
                    .select_related("release__candidate_version")[:50]]
    return state


def describe(release: Release) -> dict:
    return {
        "id": release.pk, "strategy": release.strategy, "state": release.state,
        "candidate_version": release.candidate_version.number,
        "stable_version": release.stable_version.number if release.stable_version else None,
        "steps": release.steps, "step": release.step_index + 1 if release.steps else None,
        "percent": release.percent, "routing_key": release.routing_key,
        "routing_expression": release.routing_expression, "thresholds": release.thresholds,
        "smoke_inputs": release.smoke_inputs, "reason": release.reason,
        "created_by": release.created_by.get_username() if release.created_by else None,
        "created_at": release.created_at.isoformat(),
        "step_started_at": release.step_started_at.isoformat()
        if release.step_started_at else None,
        "finished_at": release.finished_at.isoformat() if release.finished_at else None,
    }


def event_dict(event: ReleaseEvent) -> dict:
    return {"at": event.created_at.isoformat(), "kind": event.kind,
            "severity": event.severity, "actor": event.actor_name or "system",
            "reason": event.reason, "figures": event.figures, "release": event.release_id}


def history(slug: str, user=None, limit: int = 50) -> list[dict]:
    definition = releases.definition_of(slug)
    permissions.check_view(user, definition)
    return [describe(r) for r in Release.objects.filter(definition=definition)
            .select_related("stable_version", "candidate_version", "created_by")[:limit]]


def active_releases():
    return (Release.objects.filter(Q(state="smoke") | Q(state="canary"))
            .select_related("definition", "stable_version", "candidate_version"))
