"""Real timeouts and capacity: a timeout starts with its handler, a worker leases
only what it has room for, and a stuck handler cannot take its pool down."""

import os
import time

import psutil
import pytest
from django.conf import settings

from apps.engine import protocol
from apps.engine.capacity import Slots
from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def braid(monkeypatch):
    """Set BRAID settings for one test (the dict is shared, so restore it after)."""
    def _set(**values):
        for key, value in values.items():
            monkeypatch.setitem(settings.BRAID, key, value)
    return _set


def sleepers(count: int, seconds: float, timeout_s: float) -> dict:
    return {"name": "sleepers", "edges": [], "nodes": [
        {"id": f"s{i}", "type": "python", "timeout_s": timeout_s,
         "config": {"function": "braid.sleep", "args": {"seconds": seconds}}}
        for i in range(count)]}


def python(node_id, function, mode="process", **extra):
    config = {"function": function, "mode": mode, "args": extra.pop("args", {})}
    return {"id": node_id, "type": "python", "config": config, **extra}


def test_16_one_second_nodes_on_4_threads_all_run_to_completion_with_a_2_5_s_timeout(
        braid, run_graph):
    braid(THREADS=4)

    execution = run_graph(sleepers(16, 1.0, 2.5), timeout=60)

    assert execution.status == "succeeded", execution.error
    failed = NodeRun.objects.filter(execution=execution).exclude(status="succeeded")
    assert list(failed.values_list("node_id", "error_message")) == []


def test_a_worker_leases_no_more_blocking_runs_than_it_has_threads(braid):
    braid(THREADS=4)
    execution = start_execution(StartRequest(definition=sleepers(16, 1.0, 2.5)))

    got = protocol.claim("w:1", 64, 30, slots=Slots())

    assert len(got.claims) == 4
    statuses = list(NodeRun.objects.filter(execution=execution).values_list("status", flat=True))
    assert sorted(statuses) == ["ready"] * 12 + ["running"] * 4
    # With all four threads busy, the next claim takes none of them.
    busy = Slots(protocol.Counter({"thread": 4}))
    assert protocol.claim("w:1", 64, 30, slots=busy).claims == []


def test_a_dead_process_pool_child_fails_only_its_run_and_the_pool_recovers(
        braid, run_graph, tmp_path):
    braid(PROCESSES=2)
    spec = {"name": "pool", "edges": [], "nodes": [
        # No retries of its own: a crash is re-run like a lost worker, not a failure.
        python("dies", "tests.die_once", args={"marker": str(tmp_path / "died")}),
        python("fib", "braid.fib", args={"n": 25})]}

    execution = run_graph(spec, timeout=120)

    assert execution.status == "succeeded", execution.error
    dies = list(NodeRun.objects.filter(execution=execution, node_id="dies").order_by("attempt"))
    assert [(r.status, r.error_class) for r in dies] == [("failed", "resource"),
                                                         ("succeeded", "")]
    assert "pool process" in dies[0].error_message and "died" in dies[0].error_message
    assert dies[1].idempotency_key == dies[0].idempotency_key  # the same logical attempt
    (fib,) = NodeRun.objects.filter(execution=execution, node_id="fib")
    assert (fib.status, fib.attempt, fib.output["fib"]) == ("succeeded", 1, 75025)
    assert dies[1].output["pid"] not in (os.getpid(), dies[1].output["died"])


def test_a_timed_out_process_node_has_its_process_killed_and_the_pool_recovers(
        braid, run_graph, tmp_path):
    braid(PROCESSES=1)
    pid_file = tmp_path / "pid"
    spec = {"name": "stuck", "nodes": [
        python("stuck", "tests.hang", timeout_s=1, fallback="after",
               args={"pid_file": str(pid_file), "seconds": 600}),
        python("after", "braid.fib", args={"n": 5})], "edges": []}

    execution = run_graph(spec, timeout=120)

    stuck = NodeRun.objects.get(execution=execution, node_id="stuck")
    assert (stuck.status, stuck.error_class) == ("failed", "timeout")
    hung_pid = int(pid_file.read_text())
    end = time.monotonic() + 10
    while psutil.pid_exists(hung_pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not psutil.pid_exists(hung_pid)
    after = NodeRun.objects.get(execution=execution, node_id="after")
    assert after.status == "succeeded" and after.output["pid"] != hung_pid
