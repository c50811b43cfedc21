"""SIGKILLed workers lose nothing, on the embedded default (SQLite file, django-q2's
ORM broker) as on PostgreSQL + Redis: these run in both passes of CI."""

import time
from collections import Counter

import pytest
from django.db.models import Count

from apps.engine.models import TERMINAL_EXECUTION, Execution, ExecutionEvent, NodeRun
from apps.engine.start import StartRequest, start_many
from tests.processes.harness import unavailable_reason

_REASON = unavailable_reason(embedded_ok=True)
pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.django_db(transaction=True),
]

CHAIN = {
    "name": "crash drill",
    "nodes": [
        {"id": "first", "type": "noop", "config": {"output": {"ok": True}}},
        {"id": "slow", "type": "python",
         "config": {"function": "braid.sleep", "args": {"seconds": 1.5}}},
        {"id": "last", "type": "transform", "config": {"output": {"n": "input.n"}}},
    ],
    "edges": [{"from": "first", "to": "slow"}, {"from": "slow", "to": "last"}],
    "output": {"n": "nodes.last.output.n"},
}


def wait_until(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout}s")


def test_a_sigkill_loses_nothing_on_the_embedded_default_too(cluster):
    worker = cluster.start_worker(workers=2)
    ids = [e.pk for e in start_many([StartRequest(definition=CHAIN, input={"n": n})
                                     for n in range(20)])]

    victim = wait_until(lambda: NodeRun.objects.filter(
        execution_id__in=ids, node_id="slow", status="running").first(), 60, "a slow run")
    pid = int(victim.worker.rsplit(":", 1)[1])
    held = set(NodeRun.objects.filter(status="running", worker=victim.worker)
               .values_list("execution_id", flat=True))
    cluster.kill_pid(pid)  # refuses any pid outside this test's process trees

    wait_until(lambda: not Execution.objects.filter(pk__in=ids).exclude(
        status__in=TERMINAL_EXECUTION).exists(), 120, "every execution finished")
    statuses = Counter(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == Counter({"succeeded": 20}), (statuses, cluster.logs())
    assert dict(Execution.objects.filter(pk__in=ids).values_list("input__n", "output")) == {
        n: {"n": n} for n in range(20)}
    # Every node's result was committed once; the killed worker's runs ran again.
    doubled = (NodeRun.objects.filter(execution_id__in=ids, status="succeeded")
               .values("execution_id", "node_id").annotate(n=Count("id")).filter(n__gt=1))
    assert list(doubled) == []
    lost = NodeRun.objects.filter(execution_id__in=ids, worker=victim.worker, node_id="slow",
                                  status="failed")
    assert set(lost.values_list("execution_id", flat=True)) == held
    assert {r.error_message.split(":")[0] for r in lost} == {"lease expired"}
    # Each execution's events are still numbered without gaps.
    for eid in ids:
        seqs = list(ExecutionEvent.objects.filter(execution_id=eid).values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
    assert worker.alive()
