"""Metrics from real worker processes: each counts what it committed; /metrics sums them."""

import time

import pytest

from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.operations import counters
from tests.operations.test_metrics import RETRIED, scrape, value_where
from tests.processes.harness import unavailable_reason
from tests.processes.test_cluster import wait_all

_REASON = unavailable_reason()
pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.django_db(transaction=True),
]


def test_counts_from_two_worker_processes_add_up_on_metrics(cluster, client):
    """Two qcluster processes run the executions; /metrics shows the whole count."""
    before = scrape(client)
    cluster.start_worker(workers=2)
    cluster.start_qcluster(workers=2)
    ids = [start_execution(StartRequest(definition=RETRIED)).pk for _ in range(60)]
    statuses = wait_all(ids, timeout=60)
    assert statuses == {"succeeded": 60}
    # Each worker process flushes what it counted within a few seconds.
    deadline = time.monotonic() + 30
    while True:
        counters.flush()  # this process's own count of the starts
        after = scrape(client)
        finished = (value_where(after, "braid_executions_finished_total", status="succeeded")
                    - value_where(before, "braid_executions_finished_total", status="succeeded"))
        if finished >= 60 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    started = (value_where(after, "braid_executions_started_total")
               - value_where(before, "braid_executions_started_total"))
    assert started == 60  # counted by this (the starting) process
    assert finished == 60  # counted by the workers, summed across processes
    workers = set(NodeRun.objects.filter(execution_id__in=ids).values_list("worker", flat=True))
    assert len(workers) >= 2
