"""The periodic alert evaluator: every rule's check, then the inbox made to match.

It runs from the ticker (`evaluate_when_due`, a tick hook) every
BRAID_ALERT_EVERY_S, once across all tickers (a job lease), and also records
this host's resource sample (`monitor.record_when_due`).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from apps.operations import leases, monitor, services
from apps.operations.checks import CHECKS
from apps.operations.models import RuleSetting
from apps.operations.rules import rule_config

log = logging.getLogger(__name__)

_next_at = 0.0


def every_s() -> float:
    return float(getattr(settings, "BRAID_ALERT_EVERY_S", 15.0))


def rules() -> list:
    overrides = getattr(settings, "BRAID_ALERT_RULES", {})
    rows = {row.rule: row for row in RuleSetting.objects.all()}
    return [rule_config(name, overrides.get(name), rows.get(name)) for name in CHECKS]


def configured(name: str):
    """One rule as configured now: defaults ← settings ← the admin's row."""
    return rule_config(name, getattr(settings, "BRAID_ALERT_RULES", {}).get(name),
                       RuleSetting.objects.filter(rule=name).first())


def evaluate(now=None) -> dict[str, dict]:
    """Run every rule once; returns {rule: {opened, bumped, resolved}}."""
    now = now or timezone.now()
    results = {}
    for rule in rules():
        try:
            findings = CHECKS[rule.name](rule, now) if rule.enabled else []
            results[rule.name] = services.sync_rule(rule, findings, now)
        except Exception:  # one broken rule must not silence the others
            log.exception("alert rule %s failed", rule.name)
    return results


def evaluate_when_due() -> None:
    """Tick hook: cheap (one clock read) except every `every_s`."""
    global _next_at
    if time.monotonic() < _next_at:
        return
    _next_at = time.monotonic() + every_s()
    monitor.record_when_due()
    if leases.take("alerts", every_s() * 0.9):
        evaluate()
