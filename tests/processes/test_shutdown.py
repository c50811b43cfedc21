"""Graceful shutdown: SIGTERM to `braid worker` finishes or hands back, losing nothing."""

import time

import pytest

from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution, wait_for
from tests.processes.harness import unavailable_reason
from tests.processes.test_cluster import wait_until

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "")]


def sleeper(seconds: float) -> dict:
    return {"name": "sleeper", "nodes": [
        {"id": "slow", "type": "python",
         "config": {"function": "braid.sleep", "args": {"seconds": seconds}}}], "edges": []}


def test_sigterm_hands_back_a_long_node_which_another_worker_then_runs(cluster):
    first = cluster.start_worker(workers=1, BRAID_HANDBACK_S="1")
    execution = start_execution(StartRequest(definition=sleeper(6)))
    running = wait_until(lambda: NodeRun.objects.filter(
        execution=execution, status="running").first(), 15, "slow RUNNING")

    stopped_at = time.monotonic()
    cluster.stop_child(first, grace=20)
    took = time.monotonic() - stopped_at

    assert not first.alive()
    assert took < 10, f"stop took {took:.1f}s\n{cluster.logs()}"
    handed_back = NodeRun.objects.get(pk=running.pk)
    assert (handed_back.status, handed_back.worker, handed_back.attempt) == ("ready", "", 1)

    cluster.start_worker(workers=1)
    finished = wait_for(execution.pk, 30)
    assert finished.status == "succeeded", (finished.error, cluster.logs())
    runs = list(NodeRun.objects.filter(execution=execution))
    assert [(r.attempt, r.status, r.lease_losses) for r in runs] == [(1, "succeeded", 0)]


def test_sigterm_lets_a_short_node_finish(cluster):
    worker = cluster.start_worker(workers=1, BRAID_HANDBACK_S="20")
    execution = start_execution(StartRequest(definition=sleeper(1.5)))
    wait_until(lambda: NodeRun.objects.filter(execution=execution, status="running").exists(),
               15, "slow RUNNING")

    cluster.stop_child(worker, grace=25)

    execution.refresh_from_db()
    assert execution.status == "succeeded", cluster.logs()
    assert [r.attempt for r in NodeRun.objects.filter(execution=execution)] == [1]
