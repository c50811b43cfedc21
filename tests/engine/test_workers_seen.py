"""Is a worker running? Heartbeats tell "why is it not moving?" when none has been
seen, which handlers still run on abandoned threads, and failures are logged."""

import logging
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse

from apps.engine import clock, heartbeats
from apps.engine.diagnosis import ABANDONED, NO_WORKER, QUEUED, why_execution
from apps.engine.models import Execution, NodeRun, WorkerHeartbeat
from apps.engine.selectors import execution_detail
from apps.engine.start import StartRequest, start_execution

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {"name": "echo", "edges": [], "nodes": [
    {"id": "echo", "type": "python", "config": {"function": "braid.echo"}}]}


def codes(execution_id):
    return [r.code for r in why_execution(execution_id)]


def wait_for_reasons(execution_id, predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        reasons = why_execution(execution_id)
        if predicate(reasons):
            return reasons
        time.sleep(0.1)
    raise AssertionError(f"not seen within {timeout}s: {why_execution(execution_id)}")


def test_why_says_no_worker_has_been_seen_when_work_has_waited_and_none_runs():
    execution = start_execution(StartRequest(definition=ECHO))
    assert codes(execution.pk) == [QUEUED]  # just started: no verdict yet

    waited = clock.now() - timedelta(seconds=settings.BRAID["WORKER_SILENT_S"] + 30)
    NodeRun.objects.filter(execution=execution).update(created_at=waited)
    queued, silent = why_execution(execution.pk)
    assert (queued.code, silent.code) == (QUEUED, NO_WORKER)
    assert silent.message.startswith("no worker has been seen ever: start one")

    WorkerHeartbeat.objects.create(worker="gone:1", role="worker",
                                   seen_at=waited - timedelta(minutes=5))
    assert "no worker has been seen since" in why_execution(execution.pk)[1].message

    assert heartbeats.beat("worker", force=True)
    assert codes(execution.pk) == [QUEUED]
    assert NO_WORKER not in [r["code"] for r in execution_detail(execution.pk)["why"]]


def test_a_timed_out_thread_frees_its_slot_and_shows_as_abandoned_until_it_returns(
        monkeypatch, run_graph, admin_client):
    monkeypatch.setitem(settings.BRAID, "THREADS", 1)
    spec = {"name": "hung", "edges": [], "nodes": [
        {"id": "hung", "type": "python", "timeout_s": 0.5, "fallback": "next",
         "config": {"function": "tests.hang", "args": {"seconds": 10}}},
        {"id": "next", "type": "python", "config": {"function": "braid.sleep",
                                                   "args": {"seconds": 0.1}}}]}

    execution = run_graph(spec, timeout=30)

    # The only thread is still stuck in `hung`, yet `next` ran: the slot was freed.
    assert execution.status == "succeeded", execution.error
    hung = NodeRun.objects.get(execution=execution, node_id="hung")
    assert (hung.status, hung.error_class) == ("failed", "timeout")
    (reason,) = wait_for_reasons(execution.pk, lambda rs: rs)
    assert (reason.code, reason.node) == (ABANDONED, "hung")
    assert reason.message.startswith("abandoned thread: attempt 1 timed out after 0.5 s")
    page = admin_client.get(reverse("admin:engine_execution_change", args=[execution.pk]))
    assert "abandoned_thread" in page.content.decode()  # on the execution's page too
    wait_for_reasons(execution.pk, lambda rs: rs == [], 40)  # gone once the handler returned


def test_workers_log_each_failed_node_with_its_execution_node_attempt_and_class(
        caplog, run_graph):
    spec = {"name": "flaky", "edges": [], "nodes": [
        {"id": "f", "type": "fail", "config": {"times": 1, "error_class": "resource"},
         "retry": {"max_attempts": 2, "backoff_s": 0.05}}]}
    with caplog.at_level(logging.WARNING):
        execution = run_graph(spec)

    assert Execution.objects.get(pk=execution.pk).status == "succeeded"
    (record,) = [r for r in caplog.records if r.getMessage().startswith("node failed")]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        f"node failed: execution={execution.pk} node=f attempt=1 error_class=resource: ")
