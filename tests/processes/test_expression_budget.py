"""Real worker processes on PostgreSQL: a costly or crashing expression fails only its run.

Skipped (with the reason) unless the database is PostgreSQL and REDIS_URL is
set. The workers get a 5 s expression budget and the sandbox's test-only crash
hook through their environment.
"""

import time

import pytest

from apps.engine.models import TERMINAL_EXECUTION, Execution, NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.nodes.sandbox import CRASH_ENV
from tests.processes.harness import unavailable_reason

_REASON = unavailable_reason()
pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.django_db(transaction=True),
]

COSTLY = "input.xs.map(a, input.xs.filter(b, b == a).size())"  # ~12 s natively over 2,000
MARKER = "crash-the-evaluator"

# 6,000 items: 36 million comparisons, far past the 5 s budget on any machine (2,000
# finished inside it on a fast idle one).
COSTLY_ITEMS = 6000
ENV = {"BRAID_EXPRESSION_BUDGET_S": "5", CRASH_ENV: MARKER}
PLAIN = {"name": "plain", "nodes": [
    {"id": "a", "type": "transform", "config": {"output": {"x": "input.n + 1"}}},
    {"id": "b", "type": "python", "config": {"function": "braid.echo"}},
    {"id": "c", "type": "transform", "config": {"output": {"y": "nodes.a.output.x * 2"}}},
], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}


def one_transform(expression: str, attempts: int) -> dict:
    return {"name": "one transform", "nodes": [
        {"id": "t", "type": "transform", "config": {"output": {"v": expression}},
         "retry": {"max_attempts": attempts, "backoff_s": 0.1, "jitter": False}}],
        "edges": []}


def wait_until(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout}s")


def finished(execution_id) -> Execution | None:
    execution = Execution.objects.get(pk=execution_id)
    return execution if execution.status in TERMINAL_EXECUTION else None


def test_a_costly_expression_fails_after_its_budget_while_ten_plain_executions_finish(
        cluster):
    cluster.env.update(ENV)
    cluster.start_ticker()
    cluster.start_qcluster(workers=2)
    costly = start_execution(StartRequest(definition=one_transform(COSTLY, attempts=2),
                                          input={"xs": list(range(COSTLY_ITEMS))}))
    wait_until(lambda: NodeRun.objects.filter(execution=costly, status="running").exists(),
               60, "the costly run leased")
    plain = [start_execution(StartRequest(definition=PLAIN, input={"n": n})) for n in range(10)]

    done = [wait_until(lambda e=e: finished(e.pk), 60, f"plain {e.pk}") for e in plain]
    failed = wait_until(lambda: finished(costly.pk), 120, "the costly execution failed")

    assert [e.status for e in done] == ["succeeded"] * 10, cluster.logs()
    assert failed.status == "failed"
    assert failed.error["class"] == "timeout"
    runs = list(NodeRun.objects.filter(execution=costly).order_by("attempt"))
    assert [(r.attempt, r.error_class) for r in runs] == [(1, "timeout"), (2, "timeout")]
    # The ten ran while the first costly attempt was still being evaluated.
    assert max(e.finished_at for e in done) < runs[0].finished_at


def test_an_evaluator_crash_fails_only_its_run_and_never_crash_loops_a_worker(cluster):
    cluster.env.update(ENV)
    cluster.start_ticker()
    workers = cluster.start_qcluster(workers=2)
    q2_before = {p.pid for p in workers.q2_processes()}
    crashing = start_execution(StartRequest(
        definition=one_transform(f"input.xs.map(a, '{MARKER}')", attempts=3),
        input={"xs": [1, 2]}))
    plain = start_execution(StartRequest(definition=PLAIN, input={"n": 1}))

    failed = wait_until(lambda: finished(crashing.pk), 60, "the crashing execution failed")
    ok = wait_until(lambda: finished(plain.pk), 60, "the plain execution finished")

    assert failed.status == "failed", cluster.logs()
    assert failed.error["class"] == "resource"
    assert "died (signal 11)" in failed.error["message"]
    runs = NodeRun.objects.filter(execution=crashing).order_by("attempt")
    assert [r.error_class for r in runs] == ["resource"] * 3
    assert ok.status == "succeeded"
    # The same q2 processes are alive: only sandbox children died.
    assert workers.alive()
    assert q2_before <= {p.pid for p in workers.q2_processes()}
