"""Real qcluster and ticker processes on PostgreSQL + Redis: scale-out, crashes, lost wake-ups.

Skipped (with the reason) unless the database is PostgreSQL and REDIS_URL is set;
CI's second pass sets both. The children share this test's database, so the
tests use transactional_db: what the test starts is committed before they look.
"""

import socket
import time
from collections import Counter

import pytest
from django.db.models import Count

from apps.engine.models import TERMINAL_EXECUTION, Execution, NodeRun
from apps.engine.start import StartRequest, start_execution, start_many, wait_for
from apps.engine.wakeup import broker
from tests.processes.harness import unavailable_reason

_REASON = unavailable_reason()
pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.django_db(transaction=True),
]

WIDTH = 10


def fan_out_fan_in(width: int = WIDTH) -> dict:
    """start → b0..b{width-1} → join; the join sums every branch, so it needs them all."""
    branches = [{"id": f"b{i}", "type": "transform",
                 "config": {"output": {"v": f"input.n * 10 + {i}"}}} for i in range(width)]
    total = " + ".join(f"nodes.b{i}.output.v" for i in range(width))
    return {
        "name": "fan out, fan in",
        "nodes": [{"id": "start", "type": "noop", "config": {"output": {"go": True}}},
                  *branches,
                  {"id": "join", "type": "transform", "config": {"output": {"sum": total}}}],
        "edges": [{"from": "start", "to": b["id"]} for b in branches]
        + [{"from": b["id"], "to": "join"} for b in branches],
        "output": {"sum": "nodes.join.output.sum", "n": "input.n"},
    }


def expected_sum(n: int, width: int = WIDTH) -> int:
    return sum(n * 10 + i for i in range(width))


def wait_all(ids, timeout: float) -> Counter:
    """Poll until every execution is finished or `timeout` passed; the status counts."""
    end = time.monotonic() + timeout
    while True:
        statuses = Counter(Execution.objects.filter(pk__in=ids)
                           .values_list("status", flat=True))
        if set(statuses) <= TERMINAL_EXECUTION or time.monotonic() >= end:
            return statuses
        time.sleep(0.1)


def wait_until(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not seen within {timeout}s")


def test_two_clusters_run_fan_out_fan_in_and_every_join_runs_once(cluster):
    cluster.start_ticker()
    first = cluster.start_qcluster(workers=2)
    second = cluster.start_qcluster(workers=2)

    executions = start_many([StartRequest(definition=fan_out_fan_in(), input={"n": n})
                             for n in range(200)])
    ids = [e.pk for e in executions]
    statuses = wait_all(ids, 45)

    assert statuses == Counter({"succeeded": 200}), (statuses, cluster.logs())
    for _status, output, data in Execution.objects.filter(pk__in=ids).values_list(
            "status", "output", "input"):
        assert output == {"sum": expected_sum(data["n"]), "n": data["n"]}
    joins = list(NodeRun.objects.filter(execution_id__in=ids, node_id="join")
                 .values_list("execution_id", "status"))
    assert len(joins) == 200 and {eid for eid, _ in joins} == set(ids)
    assert {status for _, status in joins} == {"succeeded"}
    doubled = (NodeRun.objects.filter(execution_id__in=ids, status="succeeded")
               .values("execution_id", "node_id").annotate(n=Count("id")).filter(n__gt=1))
    assert list(doubled) == []
    runs = NodeRun.objects.filter(execution_id__in=ids)
    assert runs.filter(status="succeeded").count() == 200 * (WIDTH + 2)
    assert runs.exclude(status="succeeded").count() == 0
    # The work ran in q2 worker processes of the clusters this test started.
    pids = {int(w.rsplit(":", 1)[1]) for w in runs.values_list("worker", flat=True).distinct()}
    assert pids <= first.pids() | second.pids()


def test_sigkilled_worker_loses_its_lease_and_the_node_runs_again(cluster):
    cluster.start_ticker()
    q = cluster.start_qcluster(workers=2)
    spec = {
        "name": "crash drill",
        "nodes": [
            {"id": "slow", "type": "python",
             "config": {"function": "braid.sleep", "args": {"seconds": 3}}},
            {"id": "after", "type": "transform",
             "config": {"output": {"slept": "nodes.slow.output.slept_s"}}},
        ],
        "edges": [{"from": "slow", "to": "after"}],
        "output": {"slept": "nodes.after.output.slept"},
    }
    execution = start_execution(StartRequest(definition=spec))

    running = wait_until(lambda: NodeRun.objects.filter(
        execution=execution, node_id="slow", status="running").first(), 15, "slow RUNNING")
    host, pid = running.worker.rsplit(":", 1)
    assert host == socket.gethostname()
    cluster.kill_pid(int(pid))  # refuses any pid outside this test's process trees

    finished = wait_for(execution.pk, 40)
    assert finished.status == "succeeded", (finished.status, finished.error, cluster.logs())
    assert finished.output == {"slept": 3.0}
    runs = list(NodeRun.objects.filter(execution=execution, node_id="slow").order_by("attempt"))
    assert [r.attempt for r in runs] == [1, 2]
    lost, rerun = runs
    assert lost.worker == running.worker
    assert lost.status == "failed" and lost.error_class == "resource"
    assert "lease expired" in lost.error_message
    assert rerun.status == "succeeded" and rerun.worker != running.worker
    assert int(rerun.worker.rsplit(":", 1)[1]) in q.pids()
    assert NodeRun.objects.filter(execution=execution, status="succeeded").values(
        "node_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    # django-q2 replaced the killed worker: the cluster is back to full strength.
    wait_until(lambda: int(pid) not in q.pids() and len(q.q2_processes()) >= q.workers + 2,
               10, "the killed worker replaced")


def test_wakeups_lost_when_redis_is_flushed_are_resent_by_the_ticker(cluster):
    spec = {
        "name": "wait then finish",
        "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 1}},
                  {"id": "done", "type": "transform",
                   "config": {"output": {"n": "input.n"}}}],
        "edges": [{"from": "wait", "to": "done"}],
        "output": {"n": "nodes.done.output.n"},
    }
    cluster.start_ticker()
    q = cluster.start_qcluster(workers=2)

    # 1. Redis is wiped again and again while 100 executions are in flight.
    first = [e.pk for e in start_many([StartRequest(definition=spec, input={"n": n})
                                       for n in range(100)])]
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        cluster.flush_redis()
        time.sleep(0.2)
    statuses = wait_all(first, 30)
    assert statuses == Counter({"succeeded": 100}), (statuses, cluster.logs())

    # 2. Wake-ups that certainly sat in Redis are lost: no cluster consumed them before
    #    the flush, so only the ticker's re-send can get these executions going.
    cluster.stop_child(q)
    second = [e.pk for e in start_many([StartRequest(definition=spec, input={"n": n})
                                        for n in range(100, 200)])]
    assert broker().queue_size() > 0
    cluster.flush_redis()
    assert broker().queue_size() == 0
    cluster.start_qcluster(workers=2)
    statuses = wait_all(second, 30)
    assert statuses == Counter({"succeeded": 100}), (statuses, cluster.logs())

    outputs = dict(Execution.objects.filter(pk__in=first + second)
                   .values_list("input__n", "output"))
    assert outputs == {n: {"n": n} for n in range(200)}
    assert not NodeRun.objects.filter(execution_id__in=first + second).exclude(
        status="succeeded").exists()
