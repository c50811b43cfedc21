"""The release_stopped rule: a stopped release opens an alert for an operator."""

from __future__ import annotations

import pytest

from apps.engine import rollout
from apps.engine.rollout_judge import judge_releases
from apps.engine.worker import drain
from apps.operations import evaluator, services
from apps.operations.models import Alert
from apps.workflows.services import publish_version

pytestmark = pytest.mark.django_db

OK = {"name": "Orders", "nodes": [{"id": "a", "type": "noop"}]}
BROKEN = {"name": "Orders", "nodes": [{"id": "boom", "type": "fail",
                                       "config": {"times": -1, "message": "v2 is broken"}}]}


def test_a_failed_smoke_run_opens_one_alert_until_resolved():
    publish_version("orders", OK)
    publish_version("orders", BROKEN, make_current=False)
    rollout.deploy("orders", 2, strategy="blue_green", smoke_inputs=[{"input": {}}])
    while drain(budget_s=5):
        pass
    judge_releases()

    evaluator.evaluate()
    evaluator.evaluate()

    [alert] = Alert.objects.filter(rule="release_stopped", state="open")
    assert alert.severity == "critical"
    assert alert.title.startswith("release of orders stopped: smoke run 1 of 1 failed")
    assert "v2 is broken" in alert.title
    services.resolve(alert, None, "fixed")
    evaluator.evaluate()
    assert not Alert.objects.filter(rule="release_stopped", state="open").exists()
