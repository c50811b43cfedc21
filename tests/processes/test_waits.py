"""A thousand parked waits on real processes: no process per wait, all finish."""

import time

import pytest

from apps.engine.models import Execution, NodeRun
from apps.engine.start import StartRequest, start_many
from tests.processes.harness import unavailable_reason
from tests.processes.test_cluster import wait_until

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "")]

WAIT = {"name": "wait", "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 1}},
                                  {"id": "after", "type": "noop"}],
        "edges": [{"from": "wait", "to": "after"}]}


def test_a_thousand_one_second_waits_need_no_process_each(cluster):
    worker = cluster.start_worker(workers=2)
    processes_before = len(worker.tree())
    started = time.monotonic()
    start_many([StartRequest(definition=WAIT) for _ in range(1000)])

    wait_until(lambda: NodeRun.objects.filter(node_id="wait", status="waiting").count() > 900,
               20, "the waits parked")
    parked_processes = len(worker.tree())
    wait_until(lambda: Execution.objects.filter(status="succeeded").count() == 1000, 60,
               "all 1,000 executions succeeded")
    took = time.monotonic() - started

    print(f"1,000 one-second waits done in {took:.2f}s with {parked_processes} processes")
    assert parked_processes == processes_before  # parked in the database, not in processes
    assert not NodeRun.objects.exclude(status="succeeded").exists()
