"""Rate limits per queue, workflow and node type: token buckets in the database.

A claim locks the buckets its candidates need (in id order, after their
executions), takes one token per leased run, and defers a run that finds a
bucket empty: READY with a not-before time when the next token arrives, so it
holds no worker and the ticker wakes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.engine.models import RateLimit
from apps.workflows.models import WorkflowDefinition

RULES_TTL_S = 1.0
DEFERRED_PREFIX = "rate:"  # waiting_for of a run deferred by a bucket: rate:<scope>:<target>
_rules: tuple[float, dict] = (0.0, {})


def refill(tokens: float | None, refilled_at: datetime | None, now: datetime, *,
           rate: int, period_s: float, capacity: int) -> float:
    """Tokens in the bucket at `now` (pure)."""
    if tokens is None or refilled_at is None:
        return float(capacity)
    elapsed = max(0.0, (now - refilled_at).total_seconds())
    return min(float(capacity), tokens + elapsed * rate / period_s)


def seconds_until_token(tokens: float, *, rate: int, period_s: float) -> float:
    """How long until the bucket holds one whole token (pure)."""
    return max(0.0, (1.0 - tokens) * period_s / rate)


def rules() -> dict:
    """{(scope, key): rule id}, keys being queue names, definition ids and node types."""
    global _rules
    read_at, cached = _rules
    if time.monotonic() - read_at < RULES_TTL_S:
        return cached
    found = {}
    rows = list(RateLimit.objects.values_list("id", "scope", "target"))
    slugs = {target for _, scope, target in rows if scope == "workflow"}
    ids = dict(WorkflowDefinition.objects.filter(slug__in=slugs).values_list("slug", "id"))
    for rule_id, scope, target in rows:
        key = ids.get(target) if scope == "workflow" else target
        if key is not None:
            found[(scope, key)] = rule_id
    _rules = (time.monotonic(), found)
    return found


def forget_rules() -> None:
    global _rules
    _rules = (0.0, {})


def rules_for(queue: str, definition_id: int, node_type: str) -> list[int]:
    table = rules()
    if not table:
        return []
    keys = (("queue", queue), ("workflow", definition_id), ("node_type", node_type))
    return [table[k] for k in keys if k in table]


@dataclass
class Buckets:
    """The locked buckets of one claim, spent in memory and saved at the end."""

    rows: dict[int, RateLimit]
    now: datetime

    @classmethod
    def lock(cls, rule_ids: set[int], now: datetime) -> Buckets:
        rows = {}
        if rule_ids:
            for row in RateLimit.objects.select_for_update().filter(
                    id__in=sorted(rule_ids)).order_by("id"):
                # A claimer that read the clock before another one's refill must not
                # move the refill time back (that would mint tokens twice).
                moment = max(now, row.refilled_at) if row.refilled_at else now
                row.tokens = refill(row.tokens, row.refilled_at, moment, rate=row.rate,
                                    period_s=row.period_s, capacity=row.capacity)
                row.refilled_at = moment
                rows[row.id] = row
        return cls(rows, now)

    def take(self, rule_ids: list[int]) -> tuple[datetime, RateLimit] | None:
        """Take a token from every bucket, or none: then (retry at, the empty bucket)."""
        empty = [self.rows[i] for i in rule_ids if i in self.rows and self.rows[i].tokens < 1]
        if empty:
            row = max(empty, key=lambda r: seconds_until_token(
                r.tokens, rate=r.rate, period_s=r.period_s))
            wait = seconds_until_token(row.tokens, rate=row.rate, period_s=row.period_s)
            return self.now + timedelta(seconds=wait), row
        for i in rule_ids:
            if i in self.rows:
                self.rows[i].tokens -= 1
        return None

    def save(self) -> None:
        for row in self.rows.values():
            RateLimit.objects.filter(pk=row.pk).update(tokens=row.tokens,
                                                       refilled_at=row.refilled_at)
