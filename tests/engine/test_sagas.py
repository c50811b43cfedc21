"""Sagas that undo parallel work: a step still running when a sibling fails is
left to settle, then compensated if it did its work; each compensation runs
once, last completed first."""

import pytest

from apps.engine.models import NodeRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    """Where tests.ledger records each side effect (once per idempotency key)."""
    monkeypatch.setenv("BRAID_TEST_LEDGER", str(tmp_path))

    def effects(entry: str) -> list[str]:
        return sorted(p.name for p in tmp_path.glob(f"{entry}.*") if p.suffix != ".calls")

    return effects


def step(node_id, entry, seconds=0.0, fail=False, **extra):
    args = {"entry": entry, "seconds": seconds, "fail": fail}
    return {"id": node_id, "type": "python", "config": {"function": "tests.ledger",
                                                        "args": args}, **extra}


def parallel(*branches, before=()):
    """start → (before…) → every branch in parallel."""
    nodes = [{"id": "start", "type": "noop"}, *before, *branches]
    chain = ["start", *[n["id"] for n in before]]
    edges = [{"from": a, "to": b} for a, b in zip(chain, chain[1:], strict=False)]
    edges += [{"from": chain[-1], "to": b["id"]} for b in branches]
    return nodes, edges


def test_a_parallel_charge_is_refunded_when_a_sibling_branch_fails(run_graph, ledger):
    nodes, edges = parallel(step("charge", "charge", seconds=1.0, compensate="refund"),
                            {"id": "check", "type": "fail", "config": {"times": -1}})
    spec = {"name": "saga", "nodes": [*nodes, step("refund", "refund")], "edges": edges}

    execution = run_graph(spec, timeout=30)

    assert execution.status == "compensated", execution.error
    assert execution.error["node"] == "check"
    assert len(ledger("charge")) == 1 and len(ledger("refund")) == 1
    events = [(e.type, e.payload.get("node")) for e in execution.events.order_by("seq")]
    # The charge was running when the check failed: it was left to finish, then undone.
    assert events.index(("execution.compensating", None)) < events.index(
        ("node.succeeded", "charge")) < events.index(("compensation.succeeded", "refund"))
    assert not any(kind == "node.cancelled" for kind, _ in events)
    (refund,) = NodeRun.objects.filter(execution=execution, compensation=True)
    assert (refund.node_id, refund.status) == ("refund", "succeeded")


def test_parallel_steps_are_undone_once_each_last_completed_first(run_graph, ledger):
    nodes, edges = parallel(
        step("charge", "charge", seconds=1.2, compensate="refund"),
        step("ship", "ship", seconds=0.4, compensate="unship"),
        step("check", "check", seconds=0.1, fail=True),
        before=[step("reserve", "reserve", compensate="release")])
    undo = [step("refund", "refund"), step("unship", "unship"), step("release", "release")]
    spec = {"name": "saga", "nodes": [*nodes, *undo], "edges": edges}

    execution = run_graph(spec, timeout=30)

    assert execution.status == "compensated", execution.error
    compensations = NodeRun.objects.filter(execution=execution, compensation=True)
    assert [r.node_id for r in compensations.order_by("finished_seq")] == [
        "refund", "unship", "release"]
    assert all(r.status == "succeeded" and r.attempt == 1 for r in compensations)
    for entry in ("refund", "unship", "release"):
        assert len(ledger(entry)) == 1, entry


def test_a_running_sibling_that_fails_needs_no_undo_and_is_not_retried(run_graph, ledger):
    nodes, edges = parallel(
        step("charge", "charge", seconds=0.8, fail=True, compensate="refund",
             retry={"max_attempts": 3, "backoff_s": 0.1}),
        {"id": "check", "type": "fail", "config": {"times": -1}})
    spec = {"name": "saga", "nodes": [*nodes, step("refund", "refund")], "edges": edges}

    execution = run_graph(spec, timeout=30)

    assert execution.status == "failed"
    assert execution.error["node"] == "check"
    assert ledger("refund") == []
    assert NodeRun.objects.filter(execution=execution, node_id="charge").count() == 1
