"""An execution keeps its version for life, whatever releases do meanwhile:
a retry and a re-run from a node after a rollback run the version it started on."""

from __future__ import annotations

import pytest

from apps.engine import rollout
from apps.engine.start import StartRequest, start_execution
from apps.operations.interventions import rerun_from, retry_node
from apps.workflows.services import publish_version
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db

V1 = {"name": "Ship", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"v": 1}}}],
      "output": {"v": "nodes.a.output.v"}}
# Fails its first attempt (no retry policy), succeeds when an operator retries it.
V2 = {"name": "Ship", "nodes": [
    {"id": "a", "type": "noop", "config": {"output": {"v": 2}}},
    {"id": "flaky", "type": "fail", "config": {"times": 1, "output": {"ok": True}}}],
    "edges": [{"from": "a", "to": "flaky"}], "output": {"v": "nodes.a.output.v"}}


def test_a_retry_and_a_rerun_after_a_rollback_stay_on_the_started_version():
    publish_version("ship", V1)
    publish_version("ship", V2, make_current=False)
    rollout.deploy("ship", 2, strategy="canary", steps=[100])
    failed = run_until_done(start_execution(StartRequest(workflow="ship")).pk)
    assert (failed.version.number, failed.route, failed.status) == (2, "candidate", "failed")

    rollout.rollback("ship", reason="v2 fails")
    assert start_execution(StartRequest(workflow="ship")).version.number == 1
    retry_node(failed.pk, "flaky", reason="try again")
    retried = run_until_done(failed.pk)
    rerun = run_until_done(rerun_from(failed.pk, "a").pk)

    assert (retried.version.number, retried.status, retried.output) == (2, "succeeded", {"v": 2})
    assert rerun.version.number == 2  # its own first attempt of `flaky` fails again
    assert rerun.node_runs.get(node_id="a").output == {"v": 2}
