"""deploy/prometheus/rules.yml and deploy/grafana/braid.json use series Braid really serves.

promtool is not installed in CI (it comes only with the whole Prometheus
server package), so this checks the shape Prometheus requires and, more
usefully, that every braid_* series named exists on a real scrape.
"""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"\bbraid_[a-z_]+\b")
TOKEN = "rules-test-token"


@pytest.fixture
def served(client, db) -> set[str]:
    """The metric names /metrics serves (families and their _total/_bucket/… samples)."""
    with override_settings(BRAID_METRICS_TOKEN=TOKEN):
        text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE braid_"):
            name, kind = line.split()[2:4]
            names.add(name)
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names.update(name + s for s in suffixes.get(kind, []))
    return names


def test_prometheus_rules_have_the_shape_prometheus_requires_and_name_real_series(served):
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    [group] = rules["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {"BraidWorkflowFailureRateHigh", "BraidQueueBacklogHigh",
            "BraidExecutionRunningTooLong"} <= set(alerts)
    assert alerts["BraidWorkflowFailureRateHigh"]["for"] == "5m"
    assert "> 0.10" in alerts["BraidWorkflowFailureRateHigh"]["expr"]
    assert alerts["BraidQueueBacklogHigh"]["for"] == "10m"
    assert "> 1000" in alerts["BraidQueueBacklogHigh"]["expr"]
    assert "> 3600" in alerts["BraidExecutionRunningTooLong"]["expr"]
    for name, rule in alerts.items():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["expr"].count("(") == rule["expr"].count(")"), name
        used = set(SERIES.findall(rule["expr"]))
        assert used and used <= served, f"{name} uses series /metrics lacks: {used - served}"


def test_the_grafana_dashboard_plots_only_real_series(served):
    dashboard = json.loads((ROOT / "deploy/grafana/braid.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        used = set(SERIES.findall(expr))
        assert used and used <= served, f"{expr!r} uses series /metrics lacks: {used - served}"
