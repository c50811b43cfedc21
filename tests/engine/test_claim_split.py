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
