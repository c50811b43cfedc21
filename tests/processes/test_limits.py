"""Concurrency limits under load on two clusters: never exceeded, never leaked."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from apps.engine.models import ConcurrencyLimit, Execution, NodeRun
from apps.engine.start import StartRequest, start_many
from apps.engine.statuses import ACTIVE_EXECUTION
from apps.workflows.services import publish_version
from tests.processes.harness import unavailable_reason
from tests.processes.test_cluster import wait_until

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "")]

GLOBAL, PER_CUSTOMER = 3, 1
def nap(seconds):
    return {"name": "nap", "nodes": [{"id": "nap", "type": "python", "config": {
        "function": "braid.sleep", "args": {"seconds": seconds}}}], "edges": []}


class Sampler(threading.Thread):
    """Counts admitted, unfinished executions every 10 ms; keeps the maxima seen."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.max_total = 0
        self.max_per_key = Counter()
        self.samples = 0

    def run(self):
        try:
            while not self.stop.is_set():
                keys = Counter(Execution.objects.filter(admitted=True, status__in=ACTIVE_EXECUTION)
                               .values_list("limit_key", flat=True))
                self.max_total = max(self.max_total, sum(keys.values()))
                for key, n in keys.items():
                    self.max_per_key[key] = max(self.max_per_key[key], n)
                self.samples += 1
                time.sleep(0.01)
        finally:
            connection.close()


def test_limits_hold_under_load_and_a_killed_worker_leaks_no_slot(cluster):
    version = publish_version("orders", nap(0.3))
    publish_version("slow", nap(3))
    ConcurrencyLimit.objects.create(max_running=GLOBAL)
    ConcurrencyLimit.objects.create(workflow=version.definition, key="input.customer",
                                    max_running=PER_CUSTOMER)
    cluster.start_ticker()
    cluster.start_qcluster(workers=2)
    cluster.start_qcluster(workers=2)
    sampler = Sampler()
    sampler.start()
    (slow,) = start_many([StartRequest(workflow="slow", priority=9)])
    running = wait_until(lambda: NodeRun.objects.filter(execution=slow,
                                                        status="running").first(),
                         20, "the slow node running")
    customers = ["ann", "bob", "cy", "dee", "eve"]
    start_many([StartRequest(workflow="orders", input={"customer": customers[i % 5]})
                for i in range(40)])
    cluster.kill_pid(int(running.worker.rsplit(":", 1)[1]))  # its slot must come back
    wait_until(lambda: Execution.objects.filter(status="succeeded").count() == 41, 90,
               "all 41 executions succeeded")
    sampler.stop.set()
    sampler.join(5)

    print(f"max running observed: {sampler.max_total} (limit {GLOBAL}); per customer: "
          f"{dict(sampler.max_per_key)} (limit {PER_CUSTOMER}); {sampler.samples} samples")
    assert sampler.samples > 50
    assert sampler.max_total == GLOBAL  # reached, never exceeded
    assert max(sampler.max_per_key.values()) == PER_CUSTOMER
    lost = NodeRun.objects.get(pk=running.pk)
    assert lost.status == "failed" and "lease expired" in lost.error_message, cluster.logs()
    assert not Execution.objects.filter(admitted=True, status__in=ACTIVE_EXECUTION).exists()


def test_a_pool_of_two_never_has_three_holders_across_two_clusters(cluster):
    from apps.engine.models import ResourcePool

    ResourcePool.objects.create(name="warehouse_db", size=2)
    spec = nap(0.2)
    spec["nodes"][0].update(pool="warehouse_db", slots=1)
    cluster.start_ticker()
    cluster.start_qcluster(workers=2)
    cluster.start_qcluster(workers=2)
    peak = []
    stop = threading.Event()

    def sample():
        try:
            while not stop.is_set():
                peak.append(NodeRun.objects.filter(status="running",
                                                   pool="warehouse_db").count())
                time.sleep(0.01)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start_many([StartRequest(definition=spec) for _ in range(20)])
    wait_until(lambda: Execution.objects.filter(status="succeeded").count() == 20, 60,
               "all 20 executions succeeded")
    stop.set()
    sampler.join(5)

    print(f"pool holders: max {max(peak)} of 2 over {len(peak)} samples")
    assert max(peak) == 2
