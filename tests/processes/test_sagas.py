"""Compensation survives a SIGKILLed worker: each compensation's effect happens
once, in real worker processes (on SQLite + ORM broker and on PostgreSQL + Redis)."""

import time

import pytest

from apps.engine.models import TERMINAL_EXECUTION, Execution, NodeRun
from apps.engine.start import StartRequest, start_execution
from tests.processes.harness import unavailable_reason

_REASON = unavailable_reason(embedded_ok=True)
pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.django_db(transaction=True),
]


def ledger_step(node_id, seconds=0.0, **extra):
    return {"id": node_id, "type": "python", "config": {
        "function": "tests.ledger", "args": {"entry": node_id, "seconds": seconds}}, **extra}


def saga(charge_s: float, refund_s: float) -> dict:
    """A charge in one parallel branch, a check that fails in the other."""
    return {"name": "parallel saga", "nodes": [
        {"id": "start", "type": "noop"},
        ledger_step("charge", charge_s, compensate="refund"),
        {"id": "check", "type": "fail", "config": {"times": -1}},
        ledger_step("refund", refund_s)],
        "edges": [{"from": "start", "to": "charge"}, {"from": "start", "to": "check"}]}


def wait_until(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout}s")


def effects(folder, entry):
    return [p for p in folder.glob(f"{entry}.*") if p.suffix != ".calls"]


def calls(folder, entry):
    path = folder / f"{entry}.calls"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def run_and_kill(cluster, tmp_path, spec, victim_node: str, compensation: bool):
    cluster.start_worker(workers=2, BRAID_TEST_LEDGER=str(tmp_path))
    execution = start_execution(StartRequest(definition=spec))
    victim = wait_until(lambda: NodeRun.objects.filter(
        execution=execution, node_id=victim_node, compensation=compensation,
        status="running").first(), 60, f"{victim_node} running")
    # Leased is not yet started: kill only once the handler has recorded its call,
    # so the killed attempt is one that really ran.
    wait_until(lambda: calls(tmp_path, victim_node), 30, f"{victim_node} called")
    cluster.kill_pid(int(victim.worker.rsplit(":", 1)[1]))
    wait_until(lambda: Execution.objects.get(pk=execution.pk).status in TERMINAL_EXECUTION,
               90, "the execution finished")
    return Execution.objects.get(pk=execution.pk), victim


def test_a_worker_sigkilled_during_compensation_refunds_the_parallel_charge_once(
        cluster, tmp_path):
    execution, victim = run_and_kill(cluster, tmp_path, saga(1.0, 4.0), "refund", True)

    assert execution.status == "compensated", (execution.error, cluster.logs())
    refunds = list(NodeRun.objects.filter(execution=execution, node_id="refund")
                   .order_by("attempt"))
    assert [(r.status, r.error_class) for r in refunds] == [("failed", "resource"),
                                                            ("succeeded", "")]
    assert refunds[0].worker == victim.worker
    # The refund ran twice (once killed) under one idempotency key: one refund happened.
    (key,) = set(calls(tmp_path, "refund"))
    assert len(calls(tmp_path, "refund")) == 2
    assert len(effects(tmp_path, "refund")) == 1 and len(effects(tmp_path, "charge")) == 1
    assert key == f"{execution.pk}:refund:1"


def test_a_charge_whose_worker_dies_while_a_sibling_fails_is_settled_then_refunded(
        cluster, tmp_path):
    execution, victim = run_and_kill(cluster, tmp_path, saga(4.0, 0.0), "charge", False)

    assert execution.status == "compensated", (execution.error, cluster.logs())
    charges = list(NodeRun.objects.filter(execution=execution, node_id="charge")
                   .order_by("attempt"))
    # The lost charge was run again (same key) to learn its outcome, then refunded once.
    assert [r.status for r in charges] == ["failed", "succeeded"]
    assert len(set(calls(tmp_path, "charge"))) == 1
    assert len(effects(tmp_path, "charge")) == 1 and len(effects(tmp_path, "refund")) == 1
    assert NodeRun.objects.filter(execution=execution, compensation=True).count() == 1
