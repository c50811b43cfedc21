"""Costly or crashing CEL evaluations fail only their own run, outside any transaction.

The engine is driven in this process by two drain loops on threads (as two
workers would), on whichever database the suite runs on; the real-process
version on PostgreSQL is tests/processes/test_expression_budget.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from django.db import connection

from apps.engine import maintenance
from apps.engine.errors import InputInvalid
from apps.engine.models import ConcurrencyLimit, Execution, NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from apps.nodes import expressions, sandbox
from apps.workflows.services import publish_version
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

COSTLY = "input.xs.map(a, input.xs.filter(b, b == a).size())"  # ~12 s natively over 2,000
CRASH_MARKER = "crash-the-evaluator"

# 6,000 items: 36 million comparisons, far past the 5 s budget on any machine (2,000
# finished inside it on a fast idle one).
COSTLY_ITEMS = 6000


def costly_spec(expression: str = COSTLY, attempts: int = 2) -> dict:
    return {"name": "costly", "nodes": [
        {"id": "count", "type": "transform", "config": {"output": {"n": expression}},
         "retry": {"max_attempts": attempts, "backoff_s": 0.1, "jitter": False}},
        {"id": "after", "type": "noop"},
    ], "edges": [{"from": "count", "to": "after"}]}


PLAIN = {"name": "plain", "nodes": [
    {"id": "a", "type": "transform", "config": {"output": {"x": "input.n + 1"}}},
    {"id": "b", "type": "noop"},
    {"id": "c", "type": "transform", "config": {"output": {"y": "nodes.a.output.x * 2"}}},
], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}


@pytest.fixture
def budget():
    """Set this process's expression budget; restore the configured limits after."""
    before = expressions.LIMITS

    def _set(seconds: float):
        expressions.configure(dataclasses.replace(before, budget_s=seconds))

    yield _set
    expressions.configure(before)
    sandbox.get_sandbox().close()


@pytest.fixture
def workers():
    """Two drain loops on threads, like two worker processes sharing the database."""
    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                drain(budget_s=0.5)
                maintenance.wake_due_timers()
                maintenance.reap_expired_leases()
                stop.wait(0.01)
        finally:
            connection.close()

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


def wait_finished(execution_id, timeout: float) -> Execution:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        execution = Execution.objects.get(pk=execution_id)
        if execution.status in ("succeeded", "failed", "cancelled", "compensated"):
            return execution
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} still {execution.status} after {timeout}s")


def test_a_costly_expression_fails_after_its_budget_while_plain_executions_finish(
        budget, workers):
    budget(5.0)
    costly = start_execution(StartRequest(definition=costly_spec(),
                                          input={"xs": list(range(COSTLY_ITEMS))}))
    # Wait until the costly evaluation is under way, then start ten plain ones beside it.
    _wait_for(lambda: NodeRun.objects.filter(execution=costly, node_id="count",
                                             status="running").exists())
    plain = [start_execution(StartRequest(definition=PLAIN, input={"n": i})) for i in range(10)]

    finished = [wait_finished(e.pk, timeout=60) for e in plain]
    failed = wait_finished(costly.pk, timeout=120)

    assert [e.status for e in finished] == ["succeeded"] * 10
    assert [e.output["c"]["y"] for e in finished] == [(i + 1) * 2 for i in range(10)]
    assert failed.status == "failed"
    assert failed.error["class"] == "timeout"
    assert "budget of 5 s" in failed.error["message"]
    attempts = NodeRun.objects.filter(execution=costly, node_id="count").order_by("attempt")
    assert [(r.attempt, r.error_class) for r in attempts] == [(1, "timeout"), (2, "timeout")]
    # The plain executions did not wait for the costly one's first attempt to end:
    # its evaluation held no transaction (on SQLite: no write lock) while they ran.
    first_end = attempts[0].finished_at
    assert max(e.finished_at for e in finished) < first_end
    assert not NodeRun.objects.filter(execution=costly, node_id="after").exclude(
        status="skipped").exclude(status="cancelled").exists()


def test_an_evaluation_that_crashes_its_process_fails_only_its_run_as_resource(
        budget, monkeypatch):
    budget(5.0)
    monkeypatch.setenv(sandbox.CRASH_ENV, CRASH_MARKER)
    sandbox.get_sandbox().close()  # new children see the hook
    crashing = start_execution(StartRequest(definition=costly_spec(
        f"input.xs.map(a, '{CRASH_MARKER}')", attempts=3), input={"xs": [1, 2]}))
    plain = start_execution(StartRequest(definition=PLAIN, input={"n": 1}))

    failed = run_until_done(crashing.pk, timeout=60)
    succeeded = run_until_done(plain.pk, timeout=30)

    assert failed.status == "failed"
    assert failed.error["class"] == "resource"
    assert "died (signal 11)" in failed.error["message"]
    runs = NodeRun.objects.filter(execution=crashing, node_id="count").order_by("attempt")
    assert [(r.attempt, r.error_class) for r in runs] == [(1, "resource"), (2, "resource"),
                                                          (3, "resource")]
    assert succeeded.status == "succeeded"
    # This process (the worker) survived three crashes, and the sandbox recovers.
    assert expressions.evaluate("input.xs.map(a, a + 1)", {"input": {"xs": [1]}}) == [2]


def test_a_costly_edge_condition_is_decided_by_its_target_run_and_fails_as_timeout(
        budget, run_graph):
    budget(0.5)
    spec = {"name": "costly edge", "nodes": [
        {"id": "a", "type": "noop"},
        {"id": "b", "type": "noop", "retry": {"max_attempts": 2, "backoff_s": 0.1}}],
        "edges": [{"from": "a", "to": "b", "when": f"size({COSTLY}) > 0"}]}

    execution = run_graph(spec, input={"xs": list(range(2000))}, timeout=60)

    assert execution.status == "failed"
    assert execution.error["class"] == "timeout"
    assert execution.error["node"] == "b"
    assert execution.error["message"].startswith("condition: ")
    runs = NodeRun.objects.filter(execution=execution, node_id="b").order_by("attempt")
    assert [(r.attempt, r.error_class) for r in runs] == [(1, "timeout"), (2, "timeout")]


def test_costly_conditions_pick_a_branch_and_the_untaken_one_is_skipped(run_graph):
    spec = {"name": "costly branch", "nodes": [
        {"id": "start", "type": "noop"},
        {"id": "big", "type": "noop", "config": {"output": {"went": "big"}}},
        {"id": "small", "type": "noop", "config": {"output": {"went": "small"}}},
        {"id": "after_small", "type": "noop"},
        {"id": "join", "type": "transform", "config": {"output": {
            "went": "has(nodes.big.output) ? nodes.big.output.went : nodes.small.output.went"}}},
    ], "edges": [
        {"from": "start", "to": "big", "when": "input.xs.exists(x, x > 10)"},
        {"from": "start", "to": "small", "when": "!input.xs.exists(x, x > 10)"},
        {"from": "small", "to": "after_small"},
        {"from": "big", "to": "join"}, {"from": "after_small", "to": "join"},
    ]}

    execution = run_graph(spec, input={"xs": [1, 20]})

    assert execution.status == "succeeded", execution.error
    assert execution.output == {"join": {"went": "big"}}
    statuses = dict(NodeRun.objects.filter(execution=execution).values_list("node_id", "status"))
    assert statuses == {"start": "succeeded", "big": "succeeded", "small": "skipped",
                        "after_small": "skipped", "join": "succeeded"}


def test_a_costly_output_is_computed_by_a_transform_outside_the_finishing_commit(run_graph):
    """An output with a macro is refused when saved (it would run in the commit
    that finishes the execution); the documented way out is a transform node,
    leased and budgeted, whose output the workflow output references."""
    spec = {"name": "costly output", "nodes": [
        {"id": "a", "type": "noop"},
        {"id": "total", "type": "transform",
         "config": {"output": {"doubled": "input.xs.map(x, x * 2)"}}}],
        "edges": [{"from": "a", "to": "total"}],
        "output": {"doubled": "nodes.total.output.doubled"}}

    execution = run_graph(spec, input={"xs": [1, 2, 3]})

    assert execution.status == "succeeded"
    assert execution.output == {"doubled": [2, 4, 6]}
    total = NodeRun.objects.get(execution=execution, node_id="total")
    assert total.started_at < total.finished_at  # leased, then finished by a later commit


def test_a_transform_with_a_macro_is_leased_before_it_runs(run_graph):
    spec = {"name": "macro", "nodes": [
        {"id": "cheap", "type": "transform", "config": {"output": {"n": "size(input.xs)"}}},
        {"id": "costly", "type": "transform",
         "config": {"output": {"doubled": "input.xs.map(x, x * 2)"}}},
    ], "edges": [{"from": "cheap", "to": "costly"}]}

    execution = run_graph(spec, input={"xs": [1, 2, 3]})

    assert execution.status == "succeeded"
    assert execution.output == {"costly": {"doubled": [2, 4, 6]}}
    runs = {r.node_id: r for r in NodeRun.objects.filter(execution=execution)}
    # A fused run is leased and finished by one transaction (one timestamp); the
    # macro's run was leased by one and finished by a later one, after it ran.
    assert runs["cheap"].started_at == runs["cheap"].finished_at
    assert runs["costly"].started_at < runs["costly"].finished_at


def _wait_for(condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


def test_a_costly_limit_key_is_refused_after_its_budget_and_starts_nothing(budget):
    budget(0.5)
    version = publish_version("keyed", PLAIN)
    ConcurrencyLimit.objects.create(workflow=version.definition, max_running=1,
                                    key=f"string(size({COSTLY}))")

    with pytest.raises(InputInvalid) as err:
        start_execution(StartRequest(workflow="keyed", input={"xs": list(range(2000))}))

    assert "key cannot be computed" in err.value.message
    assert "budget of 0.5 s" in err.value.message
    assert not Execution.objects.exists()
    keyed = start_execution(StartRequest(workflow="keyed", input={"xs": [1, 2]}))
    assert keyed.limit_key == "2"
