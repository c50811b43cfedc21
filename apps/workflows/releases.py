"""Releases: deploy a version immediately, blue-green or as a canary; promote,
abort, roll back. Every change appends to the release log in its transaction.

Each service locks the workflow's definition row first (`SELECT … FOR UPDATE`),
so actions on one workflow run one at a time and a start that routes to a
candidate (it holds `FOR KEY SHARE` on that row) either commits before an abort
or sees the abort.

Starting the smoke executions of a blue-green release and judging health need
the engine (a floor above): see apps/engine/rollout.py and rollout_judge.py.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.nodes.expressions import check_expression
from apps.workflows import health, permissions
from apps.workflows.errors import NotFound, ReleaseConflict, ReleaseInvalid
from apps.workflows.models import (
    Release,
    ReleaseEvent,
    ReleaseState,
    Severity,
    Strategy,
    WorkflowDefinition,
    WorkflowVersion,
)
from apps.workflows.routing import KEY_EXPRESSION, KEY_IDEMPOTENCY, KEY_KINDS

DEFAULT_STEPS = (5, 25, 50, 100)


# --- reading ----------------------------------------------------------------------------

def definition_of(slug: str) -> WorkflowDefinition:
    definition = WorkflowDefinition.objects.filter(slug=slug, adhoc=False).first()
    if definition is None:
        raise NotFound(f"no workflow {slug!r}")
    return definition


def active_release(definition) -> Release | None:
    return (Release.objects.filter(definition=definition, state__in=("smoke", "canary"))
            .select_related("stable_version", "candidate_version").first())


def version_number(definition, number: int) -> WorkflowVersion:
    version = WorkflowVersion.objects.filter(definition=definition, number=number).first()
    if version is None:
        raise NotFound(f"workflow {definition.slug!r} has no version {number}")
    return version


# --- deploy ------------------------------------------------------------------------------

def check_steps(steps) -> list[int]:
    """Canary percents: increasing whole numbers from 1 to 100, ending at 100."""
    if not isinstance(steps, list | tuple) or not steps:
        raise ReleaseInvalid("steps must be a non-empty list of percents, e.g. 5,25,50,100")
    problems = []
    for i, step in enumerate(steps):
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            problems.append({"where": f"steps[{i}]", "node": None,
                             "message": f"must be a whole percent from 1 to 100, not {step!r}"})
    if not problems:
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            problems.append({"where": "steps", "node": None, "message": "must increase"})
        if steps[-1] != 100:
            problems.append({"where": "steps", "node": None,
                             "message": "must end at 100 (the candidate takes all traffic)"})
    if problems:
        raise ReleaseInvalid("invalid canary steps", problems)
    return list(steps)


def check_smoke_inputs(smoke_inputs) -> list[dict]:
    """[{"input": {...}, "expected": {...}?}, ...]: at least one."""
    if not isinstance(smoke_inputs, list) or not smoke_inputs:
        raise ReleaseInvalid("a blue-green release needs at least one smoke input: "
                             '[{"input": {...}, "expected": {...}}]')
    problems = []
    for i, item in enumerate(smoke_inputs):
        where = f"smoke_inputs[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("input"), dict):
            problems.append({"where": where, "node": None,
                             "message": 'must be an object with an "input" object'})
            continue
        if "expected" in item and not isinstance(item["expected"], dict):
            problems.append({"where": f"{where}.expected", "node": None,
                             "message": "must be an object (the output keys to match)"})
        for key in sorted(set(item) - {"input", "expected"}):
            problems.append({"where": f"{where}.{key}", "node": None,
                             "message": "is not a field (input, expected)"})
    if problems:
        raise ReleaseInvalid("invalid smoke inputs", problems)
    return smoke_inputs


def _check_routing(key: str, expression: str) -> None:
    if key not in KEY_KINDS:
        raise ReleaseInvalid(f"routing key must be one of {', '.join(KEY_KINDS)}, not {key!r}")
    if key == KEY_EXPRESSION:
        problems = check_expression(expression or "")
        if problems:
            raise ReleaseInvalid("invalid routing expression", [
                {"where": "routing_expression", "node": None, "message": p} for p in problems])


def _thresholds(given) -> dict:
    if given is not None and not isinstance(given, dict):
        raise ReleaseInvalid("thresholds must be an object")
    try:
        return health.thresholds(given)
    except ValueError as exc:
        raise ReleaseInvalid(str(exc), [{"where": "thresholds", "node": None,
                                         "message": str(exc)}]) from None


@transaction.atomic
def deploy(slug: str, number: int, *, strategy: str = Strategy.IMMEDIATE, steps=None,
           thresholds: dict | None = None, smoke_inputs=None, smoke_timeout_s: float = 300.0,
           routing_key: str = KEY_IDEMPOTENCY, routing_expression: str = "",
           reason: str = "", user=None) -> Release:
    """Start shipping version `number` of `slug`; see the module docstring."""
    definition = _lock(slug)
    permissions.check_deploy(user, definition)
    candidate = version_number(definition, number)
    if strategy not in Strategy.values:
        raise ReleaseInvalid(f"strategy must be one of {', '.join(Strategy.values)}, "
                             f"not {strategy!r}")
    current = active_release(definition)
    if current is not None:
        raise ReleaseConflict(f"{slug} already has an active {current.strategy} release of "
                              f"v{current.candidate_version.number}; promote, abort or roll "
                              "it back first")
    if strategy == Strategy.CANARY and definition.current_version_id is None:
        raise ReleaseConflict(f"{slug} has no current version for a canary to compare with; "
                              "deploy it immediately or blue-green")
    if strategy != Strategy.IMMEDIATE and candidate.pk == definition.current_version_id:
        raise ReleaseConflict(f"v{number} is already the current version of {slug}")
    limits = _thresholds(thresholds)
    release = Release(definition=definition, strategy=strategy,
                      stable_version_id=definition.current_version_id,
                      candidate_version=candidate, thresholds=limits, reason=reason,
                      created_by=_user(user), smoke_timeout_s=smoke_timeout_s,
                      routing_key=routing_key, routing_expression=routing_expression)
    if strategy == Strategy.CANARY:
        _check_routing(routing_key, routing_expression)
        release.steps = check_steps(list(steps or DEFAULT_STEPS))
        release.state = ReleaseState.CANARY
        release.step_started_at = timezone.now()
    elif strategy == Strategy.BLUE_GREEN:
        release.smoke_inputs = check_smoke_inputs(smoke_inputs)
        if not smoke_timeout_s or smoke_timeout_s <= 0:
            raise ReleaseInvalid("smoke_timeout_s must be positive")
        release.state = ReleaseState.SMOKE
    else:
        release.state = ReleaseState.COMPLETED
        release.finished_at = timezone.now()
    release.save()
    audit(release, "deploy", user, reason or f"deploy v{number} ({strategy})",
          {"strategy": strategy, "version": number, "steps": release.steps,
           "thresholds": limits if strategy == Strategy.CANARY else {},
           "smoke_runs": len(release.smoke_inputs),
           "previous": release.stable_version.number if release.stable_version else None})
    if strategy == Strategy.CANARY:
        _route(definition, release)
        audit(release, "step", user, f"canary at {release.percent:g}%",
              {"step": 1, "percent": release.percent})
    elif strategy == Strategy.IMMEDIATE:
        _switch(definition, candidate)
    return release


def switch_now(definition: WorkflowDefinition, version: WorkflowVersion, *, user=None,
               reason: str = "") -> Release:
    """Make `version` current at once, recorded as an immediate release (no permission
    check: the caller, e.g. publish_version, has decided; the definition is locked)."""
    release = Release.objects.create(
        definition=definition, strategy=Strategy.IMMEDIATE, state=ReleaseState.COMPLETED,
        stable_version_id=definition.current_version_id, candidate_version=version,
        reason=reason, created_by=_user(user), finished_at=timezone.now())
    _switch(definition, version)
    audit(release, "deploy", user, reason or f"v{version.number} made current",
          {"strategy": Strategy.IMMEDIATE, "version": version.number,
           "previous": _number(release.stable_version)})
    return release


# --- promote, abort, roll back ---------------------------------------------------------

@transaction.atomic
def promote(slug: str, *, user=None, reason: str = "", figures: dict | None = None,
            release_id: int | None = None, expect_step: int | None = None) -> Release:
    """One step further: the next canary percent, or all traffic to the candidate.

    The judge passes `release_id` and `expect_step`: when another ticker or a
    person acted first, the release has moved on and this is a conflict.
    """
    definition = _lock(slug)
    permissions.check_promote(user, definition)
    release = _active(definition, release_id)
    if expect_step is not None and release.step_index != expect_step:
        raise ReleaseConflict(f"{slug}: the release moved to another step meanwhile")
    who = "manual" if user is not None or not figures else "automatic"
    if release.state == ReleaseState.CANARY and release.step_index + 1 < len(release.steps):
        release.step_index += 1
        release.step_started_at = timezone.now()
        release.save(update_fields=["step_index", "step_started_at"])
        _route(definition, release)
        audit(release, "promote", user, reason or f"{who} promotion to "
              f"{release.percent:g}%", {**(figures or {}), "step": release.step_index + 1,
                                        "percent": release.percent})
        return release
    _finish(release, ReleaseState.COMPLETED)
    _switch(definition, release.candidate_version)
    audit(release, "complete", user, reason or f"{who} promotion: "
          f"v{release.candidate_version.number} takes all traffic", figures or {})
    return release


@transaction.atomic
def abort(slug: str, *, user=None, reason: str = "") -> Release:
    """Stop the active release; new executions go to the stable version."""
    definition = _lock(slug)
    permissions.check_abort(user, definition)
    release = _active(definition)
    _finish(release, ReleaseState.ABORTED)
    _route(definition, None)
    audit(release, "abort", user, reason or "aborted", {}, Severity.WARNING)
    return release


@transaction.atomic
def rollback(slug: str, to: int | None = None, *, user=None, reason: str = "",
             figures: dict | None = None, release_id: int | None = None,
             severity: str = Severity.WARNING) -> Release:
    """Back to an earlier version, at once, for new executions.

    With an active release and no `to`: the release ends and its stable version
    keeps (or takes back) all traffic. Otherwise `to` (default: the version that
    was current before the current one) becomes current, recorded as a release.
    """
    definition = _lock(slug)
    permissions.check_rollback(user, definition)
    release = active_release(definition)
    if release_id is not None and (release is None or release.pk != release_id):
        raise ReleaseConflict(f"{slug}: that release is no longer active")
    if release is not None:
        _finish(release, ReleaseState.ROLLED_BACK)
        _route(definition, None)
        if to is None:
            audit(release, "rollback", user, reason or "rolled back: stable "
                  f"v{_number(release.stable_version)} keeps all traffic", figures or {},
                  severity)
            return release
    target = version_number(definition, to) if to is not None else _previous(definition)
    if target.pk == definition.current_version_id and release is None:
        raise ReleaseConflict(f"v{target.number} is already the current version of {slug}")
    rolled = Release.objects.create(
        definition=definition, strategy=Strategy.IMMEDIATE, state=ReleaseState.ROLLED_BACK,
        stable_version_id=definition.current_version_id, candidate_version=target,
        reason=reason, created_by=_user(user), finished_at=timezone.now())
    _switch(definition, target)
    audit(rolled, "rollback", user, reason or f"rolled back to v{target.number}",
          {**(figures or {}), "from": _number(rolled.stable_version), "to": target.number},
          severity)
    return rolled


@transaction.atomic
def fail_smoke(slug: str, release_id: int, reason: str, figures: dict) -> Release:
    """A blue-green smoke run failed, did not match, or timed out: stop the release."""
    definition = _lock(slug)
    release = _active(definition, release_id)
    _finish(release, ReleaseState.FAILED)
    audit(release, "smoke_failed", None, reason, figures, Severity.CRITICAL)
    return release


def record_smoke_runs(release_id: int, execution_ids: list[str]) -> None:
    Release.objects.filter(pk=release_id).update(smoke_execution_ids=execution_ids)


# --- helpers ------------------------------------------------------------------------------

def audit(release, kind: str, user, reason: str, figures: dict,
          severity: str = Severity.INFO) -> ReleaseEvent:
    """Append one entry to the release log (inside the caller's transaction)."""
    return ReleaseEvent.objects.create(
        definition_id=release.definition_id, release=release, kind=kind, severity=severity,
        actor=_user(user), actor_name=getattr(user, "username", "") if user else "",
        reason=reason, figures=figures)


def _lock(slug: str) -> WorkflowDefinition:
    definition = (WorkflowDefinition.objects.select_for_update()
                  .filter(slug=slug, adhoc=False).first())
    if definition is None:
        raise NotFound(f"no workflow {slug!r}")
    return definition


def _active(definition, release_id: int | None = None) -> Release:
    release = active_release(definition)
    if release is None:
        raise ReleaseConflict(f"{definition.slug} has no active release")
    if release_id is not None and release.pk != release_id:
        raise ReleaseConflict(f"{definition.slug}: that release is no longer active")
    return release


def _finish(release: Release, state: str) -> None:
    release.state = state
    release.finished_at = timezone.now()
    release.save(update_fields=["state", "finished_at"])


def _route(definition: WorkflowDefinition, release: Release | None) -> None:
    """Copy the canary's routing onto the definition row (None: all to stable)."""
    canary = release is not None and release.state == ReleaseState.CANARY
    definition.canary_version_id = release.candidate_version_id if canary else None
    definition.canary_percent = release.percent if canary else 0.0
    definition.canary_key = release.routing_key if canary else ""
    definition.canary_key_expression = release.routing_expression if canary else ""
    definition.save(update_fields=["canary_version", "canary_percent", "canary_key",
                                   "canary_key_expression", "updated_at"])


def _switch(definition: WorkflowDefinition, version: WorkflowVersion) -> None:
    definition.current_version = version
    definition.save(update_fields=["current_version", "updated_at"])


def _previous(definition: WorkflowDefinition) -> WorkflowVersion:
    """The version that served before the current one (else the highest number below it)."""
    last = (Release.objects.filter(definition=definition,
                                   candidate_version_id=definition.current_version_id,
                                   stable_version__isnull=False)
            .exclude(state__in=("smoke", "canary")).select_related("stable_version").first())
    if last is not None and last.stable_version_id != definition.current_version_id:
        return last.stable_version
    current = _number(definition.current_version) or 0
    below = (WorkflowVersion.objects.filter(definition=definition, number__lt=current)
             .order_by("-number").first())
    if below is None:
        raise ReleaseConflict(f"{definition.slug} has no earlier version to roll back to")
    return below


def _number(version) -> int | None:
    return version.number if version is not None else None


def _user(user):
    return user if getattr(user, "pk", None) else None
