"""The release judge: a ticker hook that moves active releases on their own.

Every JUDGE_EVERY_S (not every tick: figures change slowly, and this keeps the
judge's cost far under 1 % of a worker) it reads each active release:
- canary: candidate and stable figures over the sliding window, then
  `health.judge` decides hold, promote (next step, or complete at 100 %) or
  roll back, recorded with every figure in the release log;
- blue-green: the smoke executions; all succeeded and matching → switch, any
  failure, mismatch or a timeout → the release fails (a critical audit entry).
It never runs on the start path. Several tickers may run it at once: every
action names the release and step it judged, so the loser gets a conflict.
"""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from apps.engine.models import Execution
from apps.engine.rollout import figures, window_start
from apps.engine.statuses import SUCCESSFUL_EXECUTION, UNSUCCESSFUL_EXECUTION
from apps.workflows import releases
from apps.workflows.errors import ReleaseConflict
from apps.workflows.health import PROMOTE, ROLLBACK, judge
from apps.workflows.models import Release, Severity

log = logging.getLogger(__name__)

JUDGE_EVERY_S = 5.0
_next_run = 0.0


def judge_tick() -> None:
    """The ticker hook: judge at most once every JUDGE_EVERY_S."""
    global _next_run
    if time.monotonic() < _next_run:
        return
    _next_run = time.monotonic() + JUDGE_EVERY_S
    judge_releases()


def judge_releases(now=None) -> list[tuple[Release, str]]:
    """Judge every active release once; return what was done to each."""
    now = now or timezone.now()
    done = []
    for release in Release.objects.filter(state__in=("smoke", "canary")).select_related(
            "definition", "stable_version", "candidate_version"):
        try:
            if release.state == "canary":
                done.append((release, judge_canary(release, now)))
            else:
                done.append((release, judge_smoke(release, now)))
        except ReleaseConflict:  # someone (a person, another ticker) acted first
            done.append((release, "conflict"))
        except Exception:  # one broken release must not stop the judging of the others
            log.exception("judging release %s of %s failed", release.pk,
                          release.definition.slug)
            done.append((release, "error"))
    return done


def judge_canary(release: Release, now) -> str:
    limits = release.thresholds
    since = window_start(release, limits["window_s"], now)
    definition_id = release.definition_id
    candidate, in_step = figures(definition_id, release.candidate_version_id, since,
                                 route="candidate", step_since=release.step_started_at)
    stable, _ = figures(definition_id, release.stable_version_id, since, route="stable")
    age = (now - release.step_started_at).total_seconds()
    verdict = judge(candidate, stable, limits, step_finished=in_step, step_age_s=age)
    slug = release.definition.slug
    if verdict.decision == ROLLBACK:
        releases.rollback(slug, reason=f"automatic rollback: {verdict.reason}",
                          figures=verdict.figures, release_id=release.pk,
                          severity=Severity.CRITICAL)
    elif verdict.decision == PROMOTE:
        releases.promote(slug, reason=f"automatic promotion: {verdict.reason}",
                         figures=verdict.figures, release_id=release.pk,
                         expect_step=release.step_index)
    return verdict.decision


def judge_smoke(release: Release, now) -> str:
    ids = release.smoke_execution_ids
    slug = release.definition.slug
    age = (now - release.created_at).total_seconds()
    if not ids:  # the deploy has not recorded them yet (or died before it could)
        if age > release.smoke_timeout_s:
            releases.fail_smoke(slug, release.pk, "smoke executions were never started", {})
            return "failed"
        return "hold"
    runs = {str(r["id"]): r for r in Execution.objects.filter(pk__in=ids).values(
        "id", "status", "output", "error")}
    for i, item in enumerate(release.smoke_inputs):
        run = runs.get(ids[i]) if i < len(ids) else None
        if run is None:
            continue
        figures_ = {"smoke_run": i, "execution": ids[i], "status": run["status"],
                    "input": item["input"]}
        if run["status"] in UNSUCCESSFUL_EXECUTION:
            releases.fail_smoke(slug, release.pk, f"smoke run {i + 1} of {len(ids)} "
                                f"{run['status']}: {(run['error'] or {}).get('message', '')}"
                                .rstrip(": "), {**figures_, "error": run["error"]})
            return "failed"
        if run["status"] in SUCCESSFUL_EXECUTION and "expected" in item:
            mismatch = mismatches(item["expected"], run["output"])
            if mismatch:
                releases.fail_smoke(slug, release.pk, f"smoke run {i + 1} of {len(ids)} "
                                    f"output does not match: {', '.join(sorted(mismatch))}",
                                    {**figures_, "expected": item["expected"],
                                     "output": run["output"]})
                return "failed"
    if all(runs.get(i, {}).get("status") in SUCCESSFUL_EXECUTION for i in ids):
        releases.promote(slug, reason=f"all {len(ids)} smoke runs succeeded and matched: "
                         "traffic switched", figures={"smoke_runs": len(ids),
                                                      "executions": ids},
                         release_id=release.pk)
        return "promote"
    if age > release.smoke_timeout_s:
        pending = [i for i in ids
                   if runs.get(i, {}).get("status") not in SUCCESSFUL_EXECUTION]
        releases.fail_smoke(slug, release.pk, f"{len(pending)} smoke run(s) not finished "
                            f"after {release.smoke_timeout_s:g} s", {"pending": pending})
        return "failed"
    return "hold"


def mismatches(expected: dict, output) -> list[str]:
    """The expected keys whose value differs in the output (extra output keys are fine)."""
    output = output if isinstance(output, dict) else {}
    return [k for k, v in expected.items() if k not in output or output[k] != v]
