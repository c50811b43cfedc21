"""The rules' pure decisions, without a database."""

from datetime import UTC, datetime, timedelta

from apps.operations.rules import (
    DEFAULT_RULES,
    due_to_fire,
    failure_rate_breached,
    percentile,
    rule_config,
    stuck_limit_s,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class Row:
    def __init__(self, **values):
        self.enabled = values.pop("enabled", True)
        self.severity = values.get("severity", "")
        self.threshold = values.get("threshold")
        self.for_s = values.get("for_s")


def test_a_condition_fires_only_after_holding_for_its_duration():
    assert not due_to_fire(NOW - timedelta(seconds=599), NOW, 600)
    assert due_to_fire(NOW - timedelta(seconds=600), NOW, 600)
    assert due_to_fire(NOW, NOW, 0)


def test_a_node_is_stuck_past_twice_its_recent_p95_but_never_below_the_floor():
    assert stuck_limit_s(None, 40.0, 2.0, 30.0) == 80.0
    assert stuck_limit_s(None, 0.003, 2.0, 30.0) == 30.0
    assert stuck_limit_s(None, None, 2.0, 30.0) is None
    assert stuck_limit_s(120.0, 1.0, 2.0, 30.0) == 120.0


def test_percentile_by_nearest_rank():
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_failure_rate_needs_enough_executions_and_more_than_the_threshold():
    assert not failure_rate_breached(5, 9, 0.1, 10)
    assert not failure_rate_breached(1, 10, 0.1, 10)
    assert failure_rate_breached(2, 10, 0.1, 10)


def test_rule_settings_layer_defaults_then_settings_then_the_admin_row():
    rule = rule_config("queue_backlog")
    assert (rule.threshold, rule.for_s, rule.severity) == (1000, 600.0, "warning")
    rule = rule_config("queue_backlog", {"threshold": 50})
    assert rule.threshold == 50
    rule = rule_config("queue_backlog", {"threshold": 50},
                       Row(threshold=7, for_s=0, severity="critical"))
    assert (rule.threshold, rule.for_s, rule.severity) == (7, 0.0, "critical")
    assert not rule_config("queue_backlog", None, Row(enabled=False)).enabled


def test_every_rule_has_a_severity_and_a_title():
    for name in DEFAULT_RULES:
        rule = rule_config(name)
        assert rule.severity in ("info", "warning", "critical") and rule.title
