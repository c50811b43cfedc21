"""The alert rules: their defaults, and the pure decisions they make.

A rule's check (in `checks.py`) reads the database and returns `Finding`s —
problems that hold right now. Whether a finding becomes an alert (it must have
held for `for_s`), and which open alerts resolve, is decided here without a
database, so each rule's logic is tested as plain functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Defaults; settings.BRAID_ALERT_RULES overrides them per deployment and a
# RuleSetting row (admin) per rule at run time. `threshold` and `for_s` mean what
# each rule's docstring in checks.py says.
DEFAULT_RULES: dict[str, dict] = {
    "execution_failed": {"severity": "critical", "title": "Executions failed and need an operator"},
    "node_stuck": {"severity": "warning", "threshold": 2.0, "min_s": 30.0,
                   "title": "A node runs far longer than usual"},
    "deadline_passed": {"severity": "warning", "for_s": 30.0,
                        "title": "An execution is past its deadline"},
    "queue_backlog": {"severity": "warning", "threshold": 1000, "for_s": 600.0,
                      "title": "Queue backlog is high"},
    "failure_rate": {"severity": "critical", "threshold": 0.10, "window_s": 300.0,
                     "min_count": 10, "title": "Workflow failure rate is high"},
    "queue_unclaimed": {"severity": "critical", "idle_s": 60.0,
                        "title": "A queue has work but no worker claims it"},
    "host_cpu": {"severity": "warning", "threshold": 80.0, "for_s": 120.0,
                 "title": "Worker host CPU is high"},
    "host_memory": {"severity": "warning", "threshold": 85.0, "for_s": 60.0,
                    "title": "Worker host memory is high"},
    "db_connections": {"severity": "warning", "threshold": 0.8, "for_s": 60.0,
                       "title": "Database connections near their maximum"},
    "release_stopped": {"severity": "critical", "window_s": 86400.0,
                        "title": "A release stopped: failed smoke run or automatic rollback"},
}


@dataclass(frozen=True)
class RuleConfig:
    name: str
    severity: str
    title: str
    enabled: bool = True
    threshold: float | None = None
    for_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.extra.get(key, default)


def rule_config(name: str, overrides: dict | None = None, row=None) -> RuleConfig:
    """Defaults ← settings overrides ← the admin's RuleSetting row (fields that are set)."""
    merged = dict(DEFAULT_RULES[name])
    merged.update(overrides or {})
    enabled = merged.pop("enabled", True)
    if row is not None:
        enabled = row.enabled
        for key in ("severity", "threshold", "for_s"):
            value = getattr(row, key)
            if value not in (None, ""):
                merged[key] = value
    severity = merged.pop("severity")
    title = merged.pop("title")
    threshold = merged.pop("threshold", None)
    for_s = float(merged.pop("for_s", 0.0))
    return RuleConfig(name=name, severity=severity, title=title, enabled=enabled,
                      threshold=threshold, for_s=for_s, extra=merged)


@dataclass(frozen=True)
class Finding:
    """A problem that holds now. `key` identifies its subject within the rule."""

    key: str
    title: str
    subject_kind: str
    subject_id: str = ""
    details: dict = field(default_factory=dict)
    workflow_id: int | None = None
    execution_id: str | None = None
    severity: str | None = None  # the rule's, unless the finding says otherwise


def dedupe_key(rule: str, finding_key: str) -> str:
    return f"{rule}:{finding_key}"[:255]


def due_to_fire(since: datetime, now: datetime, for_s: float) -> bool:
    """A condition fires once it has held for `for_s` (0: at once)."""
    return now - since >= timedelta(seconds=for_s)


def stuck_limit_s(expected_s: float | None, recent_p95_s: float | None, factor: float,
                  min_s: float) -> float | None:
    """How long a node may run before it counts as stuck; None when we cannot tell.

    Its own `expected_s` wins; else `factor` × the p95 of its recent runs; never
    below `min_s`, so a node that usually takes 3 ms is not stuck at 7 ms.
    """
    if expected_s:
        return max(float(expected_s), min_s)
    if recent_p95_s is None:
        return None
    return max(factor * recent_p95_s, min_s)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def failure_rate_breached(failed: int, total: int, threshold: float, min_count: int) -> bool:
    return total >= min_count and total > 0 and failed / total > threshold
