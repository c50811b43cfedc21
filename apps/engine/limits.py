"""Concurrency limits: admission control of executions (global, per workflow, per key).

Admission happens inside a worker's claim transaction: pending executions are
taken in priority order, the limit rows they fall under are locked (a mutex
per limit, so admissions never race), running executions are counted, and an
execution is admitted only if every one of its limits has room. A slot is an
unfinished admitted execution, so it is freed by finishing, never by a worker:
a killed worker cannot leak one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from django.db.models import Count

from apps.engine.models import ConcurrencyLimit, Execution
from apps.engine.statuses import ACTIVE_EXECUTION
from apps.nodes.expressions import ExpressionError, evaluate

RULES_TTL_S = 1.0


@dataclass(frozen=True)
class Rule:
    id: int
    workflow_id: int | None
    key: str
    max_running: int

    def label(self, key_value: str = "") -> str:
        if self.workflow_id is None:
            return "global limit"
        return f"key limit ({key_value!r})" if self.key else "workflow limit"


_rules: tuple[float, list[Rule]] = (0.0, [])


def rules() -> list[Rule]:
    global _rules
    read_at, cached = _rules
    if time.monotonic() - read_at > RULES_TTL_S:
        cached = [Rule(*row) for row in ConcurrencyLimit.objects.values_list(
            "id", "workflow_id", "key", "max_running")]
        _rules = (time.monotonic(), cached)
    return cached


def forget_rules() -> None:
    global _rules, _orphans_checked
    _rules = (0.0, [])
    _orphans_checked = 0.0


def limits_changed(**_kwargs) -> None:
    """A limit was saved or deleted (admin, service, shell): re-read the rules here
    and wake a worker, whose claim admits what now fits (a loosened or deleted
    limit must not leave executions pending until the next lost-wake-up check)."""
    from apps.engine.wakeup import wake_on_commit

    forget_rules()
    wake_on_commit(1)


def any_limits() -> bool:
    return bool(rules())


_orphans_checked = 0.0


def needs_admission() -> bool:
    """Whether a claim should run admission at all.

    With limits, always. Without any, executions started under a limit that was
    since deleted still wait, unadmitted: look for them at most every
    RULES_TTL_S per process, so a claim on a limit-free deployment stays free.
    """
    global _orphans_checked
    if rules():
        return True
    if time.monotonic() - _orphans_checked < RULES_TTL_S:
        return False
    _orphans_checked = time.monotonic()
    return Execution.objects.filter(status="pending", admitted=False).exists()


def rules_for(definition_id: int) -> list[Rule]:
    return [r for r in rules() if r.workflow_id in (None, definition_id)]


def key_of(definition_id: int, inputs: dict) -> str:
    """The value of the workflow's keyed limit for this input ('' when it has none)."""
    for rule in rules_for(definition_id):
        if rule.key:
            value = evaluate(rule.key, {"input": inputs, "nodes": {}})
            return str(value)[:200]
    return ""


def _slot(rule: Rule, execution: Execution) -> tuple[int, str]:
    return rule.id, execution.limit_key if rule.key else ""


def count_running(rule: Rule, keys: set[str]) -> Counter:
    """Admitted, unfinished executions under `rule` (per key for a keyed rule)."""
    active = Execution.objects.filter(admitted=True, status__in=ACTIVE_EXECUTION)
    if rule.workflow_id is not None:
        active = active.filter(definition_id=rule.workflow_id)
    if not rule.key:
        return Counter({(rule.id, ""): active.count()})
    rows = active.filter(limit_key__in=keys).values("limit_key").annotate(n=Count("id"))
    return Counter({(rule.id, row["limit_key"]): row["n"] for row in rows})


class Admission:
    """Counts under the locked limits, spent as executions are admitted."""

    def __init__(self, executions: list[Execution]):
        needed = {r.id: r for e in executions for r in rules_for(e.definition_id)}
        self.rules = needed
        if needed:
            list(ConcurrencyLimit.objects.select_for_update().filter(
                id__in=sorted(needed)).order_by("id"))
        self.running = Counter()
        for rule in needed.values():
            keys = {e.limit_key for e in executions if rule.workflow_id in (None, e.definition_id)}
            self.running.update(count_running(rule, keys))

    def blocked_by(self, execution: Execution) -> Rule | None:
        for rule in rules_for(execution.definition_id):
            if self.running[_slot(rule, execution)] >= rule.max_running:
                return rule
        return None

    def take(self, execution: Execution) -> None:
        for rule in rules_for(execution.definition_id):
            self.running[_slot(rule, execution)] += 1


def why_pending(execution: Execution) -> tuple[Rule, int] | None:
    """The limit keeping a pending execution out, with how many run under it now."""
    for rule in rules_for(execution.definition_id):
        running = count_running(rule, {execution.limit_key})[_slot(rule, execution)]
        if running >= rule.max_running:
            return rule, running
    return None


__all__ = ["ExpressionError", "Admission", "key_of", "rules_for", "why_pending"]
