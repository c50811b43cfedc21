"""Releases under real concurrency on PostgreSQL.

- Threads start executions by slug while a canary is active and then aborted:
  every execution has a version, and once the abort has committed no start
  commits another execution on the aborted candidate.
- With a real qcluster and ticker, a candidate failing 30 % of its runs is
  rolled back by the ticker's judge on its own, while stable keeps succeeding.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection

from apps.engine import rollout
from apps.engine.models import Execution
from apps.engine.start import StartRequest, start_execution, start_many
from apps.workflows.models import Release, ReleaseEvent
from apps.workflows.services import publish_version
from tests.processes.harness import unavailable_reason
from tests.processes.test_cluster import wait_until

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "")]

STABLE = {"name": "Orders", "nodes": [{"id": "a", "type": "noop",
                                       "config": {"output": {"v": 1}}}]}
CANDIDATE = {"name": "Orders", "nodes": [{"id": "a", "type": "noop",
                                          "config": {"output": {"v": 2}}}]}
FLAKY = {"name": "Orders", "nodes": [
    {"id": "a", "type": "noop"},
    {"id": "boom", "type": "fail", "config": {"times": -1}},
    {"id": "ok", "type": "noop"}],
    "edges": [{"from": "a", "to": "boom", "when": "input.n % 10 < 3"},
              {"from": "a", "to": "ok", "when": "input.n % 10 >= 3"}]}


class Starter(threading.Thread):
    """Starts executions of `orders` by slug until told to stop; one or a burst at a time."""

    def __init__(self, seed: int):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.random = random.Random(seed)
        self.started: list[tuple[str, int]] = []
        self.errors: list[BaseException] = []

    def run(self):
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                if self.random.random() < 0.2:
                    burst = start_many([StartRequest(workflow="orders", input={"n": n + i})
                                        for i in range(5)])
                    self.started += [(str(e.pk), e.version_id) for e in burst]
                else:
                    execution = start_execution(StartRequest(
                        workflow="orders", input={"n": n},
                        idempotency_key=f"{self.ident}-{n}" if n % 2 else None))
                    self.started.append((str(execution.pk), execution.version_id))
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            connection.close()


def test_starts_by_slug_never_land_on_a_candidate_after_its_abort_commits(transactional_db):
    publish_version("orders", STABLE)
    candidate = publish_version("orders", CANDIDATE, make_current=False)
    rollout.deploy("orders", 2, strategy="canary", steps=[50, 100],
                   routing_key="execution_id")
    starters = [Starter(seed) for seed in range(6)]
    for starter in starters:
        starter.start()
    try:
        wait_until(lambda: Execution.objects.filter(version=candidate).count() >= 100, 60,
                   "100 executions on the candidate")
        rollout.abort("orders", reason="drill")
        on_candidate_at_abort = Execution.objects.filter(version=candidate).count()
        total_at_abort = Execution.objects.count()
        wait_until(lambda: Execution.objects.count() >= total_at_abort + 300, 60,
                   "300 more starts after the abort")
    finally:
        for starter in starters:
            starter.stop.set()
        for starter in starters:
            starter.join(30)

    assert [e for s in starters for e in s.errors] == []
    started = {pk: version for s in starters for pk, version in s.started}
    rows = dict(Execution.objects.values_list("id", "version_id"))
    assert {str(k): v for k, v in rows.items()} == started  # every start has its row
    assert None not in rows.values()
    assert Execution.objects.filter(version=candidate).count() == on_candidate_at_abort
    assert not Execution.objects.filter(version=candidate).exclude(route="candidate").exists()
    assert not Execution.objects.exclude(version=candidate).exclude(route="stable").exists()


def test_the_ticker_rolls_a_failing_canary_back_on_its_own(cluster):
    publish_version("orders", STABLE)
    publish_version("orders", FLAKY, make_current=False)
    release = rollout.deploy("orders", 2, strategy="canary", steps=[50, 100],
                             routing_key="execution_id", thresholds={"min_samples": 20})
    cluster.start_ticker()
    cluster.start_qcluster(workers=2)
    n = 0

    def rolled_back():
        nonlocal n
        start_many([StartRequest(workflow="orders", input={"n": n + i}) for i in range(20)])
        n += 20
        time.sleep(0.2)
        return Release.objects.get(pk=release.pk).state == "rolled_back"

    wait_until(rolled_back, 90, "the automatic rollback")

    event = ReleaseEvent.objects.get(release=release, kind="rollback")
    assert event.actor is None and event.severity == "critical"
    assert event.figures["candidate"]["failure_rate"] > 0.1
    assert event.figures["stable"]["failed"] == 0
    wait_until(lambda: not Execution.objects.filter(
        status__in=["pending", "running"]).exists(), 60, "every execution finished")
    stable = Execution.objects.filter(route="stable")
    assert set(stable.values_list("status", flat=True)) == {"succeeded"}
