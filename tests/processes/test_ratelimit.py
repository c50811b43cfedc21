"""A rate limit holds across two worker processes (two clusters on one bucket row)."""

import pytest

from apps.engine.models import Execution, NodeRun, RateLimit
from apps.engine.start import StartRequest, start_many
from tests.processes.harness import unavailable_reason
from tests.processes.test_cluster import wait_until

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "")]

RATE, PERIOD_S = 5, 1.0
ECHO = {"name": "echo", "nodes": [{"id": "a", "type": "python",
                                   "config": {"function": "braid.echo"}}], "edges": []}


def test_a_rate_limit_is_never_exceeded_across_two_workers(cluster):
    RateLimit.objects.create(scope="node_type", target="python", rate=RATE, period_s=PERIOD_S)
    cluster.start_ticker()
    first = cluster.start_qcluster(workers=2)
    second = cluster.start_qcluster(workers=2)
    start_many([StartRequest(definition=ECHO) for _ in range(25)])

    wait_until(lambda: Execution.objects.filter(status="succeeded").count() == 25, 40,
               "all 25 executions succeeded")

    runs = list(NodeRun.objects.order_by("started_at").values_list("started_at", "worker"))
    times = [t for t, _ in runs]
    # Token bucket: in any stretch [t_i, t_j] at most capacity + rate × length start.
    worst = max((j - i + 1) - (RATE + RATE * (times[j] - times[i]).total_seconds() / PERIOD_S)
                for i in range(len(times)) for j in range(i, len(times)))
    assert worst <= 1e-6, f"{worst:.3f} runs over the limit"
    assert (times[-1] - times[0]).total_seconds() >= (25 - RATE) / RATE * PERIOD_S - 0.5
    pids = {int(w.rsplit(":", 1)[1]) for _, w in runs}
    assert pids <= first.pids() | second.pids()
    assert len(pids) >= 2, "the work was shared by more than one worker process"
