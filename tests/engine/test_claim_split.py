"""Two claimers reading the same ready runs split them instead of one waiting for
the other's commit (PostgreSQL: SKIP LOCKED over the candidates, in priority order)."""

import threading

import pytest
from django.db import connection, connections, transaction

from apps.engine import protocol
from apps.engine.models import Execution, NodeRun
from apps.engine.start import StartRequest, start_many

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {"name": "echo", "nodes": [{"id": "a", "type": "python",
                                   "config": {"function": "braid.echo"}}], "edges": []}


def hold_locks(ids, holding: threading.Event, release: threading.Event) -> None:
    """Another claimer: hold these executions' row locks until told to let go."""
    try:
        with transaction.atomic():
            list(Execution.objects.select_for_update().filter(id__in=ids).order_by("id"))
            holding.set()
            release.wait(30)
    finally:
        connections.close_all()


def test_a_claimer_takes_the_next_free_executions_when_the_first_are_held():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; on SQLite a claim's IMMEDIATE transaction "
                    "is exclusive, so nothing is ever held by another claimer")
    started = start_many([StartRequest(definition=ECHO, priority=9 - i // 4)
                          for i in range(12)])
    by_priority = [e.pk for e in sorted(started, key=lambda e: -e.priority)]
    first = by_priority[:4]  # the highest priority: every claimer's first candidates
    holding, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_locks, args=(first, holding, release))
    holder.start()
    assert holding.wait(10)
    try:
        got = protocol.claim("w2", 4, 30)
    finally:
        release.set()
        holder.join(10)

    claimed = {str(c.execution_id) for c in got.claims}
    assert claimed == {str(pk) for pk in by_priority[4:8]}  # the next 4, by priority
    assert not got.contended  # it filled its batch
    assert NodeRun.objects.filter(status="running").count() == 4


THREE = {"name": "three", "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}],
         "edges": [{"from": "a", "to": "b"}]}


def run_first_claim_after_another_worker(monkeypatch, how_many: int):
    """Make the next claim find its first `how_many` candidates already run by another
    worker between its unlocked read and its lock (what that worker's commit does)."""
    real = protocol.lock_free_executions
    calls = []

    def raced(wanted, limit):
        if not calls:
            NodeRun.objects.filter(execution_id__in=wanted[:how_many],
                                   status="ready").update(status="succeeded")
        calls.append(wanted)
        return real(wanted, limit)

    monkeypatch.setattr(protocol, "lock_free_executions", raced)
    return calls


def test_candidates_another_worker_ran_meanwhile_are_reported_stale(monkeypatch):
    start_many([StartRequest(definition=THREE) for _ in range(3)])
    run_first_claim_after_another_worker(monkeypatch, 3)
    got = protocol.claim("w1", 3, 30)
    assert (got.claims, got.fused, got.stale, got.contended) == ([], 0, 3, False)


def test_a_drain_goes_on_past_a_claim_whose_candidates_were_all_taken(monkeypatch):
    # Before: a claim that found only stale candidates ended the drain, and the
    # backlog behind them waited for the next wake-up (in W1, one worker drained
    # half of it alone while the other sat idle).
    from django.conf import settings

    from apps.engine.worker import drain

    started = sorted(start_many([StartRequest(definition=THREE) for _ in range(8)]),
                     key=lambda e: NodeRun.objects.get(execution=e, node_id="a").pk)
    monkeypatch.setitem(settings.BRAID, "CLAIM_BATCH", 4)
    # The first claim reads all 8 and locks the first 4, which "another worker" ran.
    run_first_claim_after_another_worker(monkeypatch, 4)
    drain(10)
    behind = Execution.objects.filter(pk__in=[e.pk for e in started[4:]])
    assert set(behind.values_list("status", flat=True)) == {"succeeded"}
