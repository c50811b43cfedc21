"""Resource pools: a pool of N never has more than N slots held; waiters hold no worker."""

import pytest

from apps.engine import protocol
from apps.engine.control import cancel_execution
from apps.engine.diagnosis import POOL_FULL, why_execution
from apps.engine.maintenance import release_pools_with_room
from apps.engine.models import NodeRun, ResourcePool
from apps.engine.start import StartRequest, start_execution, start_many
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)


def db_node(slots=1, priority_spec=None):
    return {"name": "db", "nodes": [{"id": "q", "type": "python", "pool": "warehouse_db",
                                     "slots": slots, "config": {"function": "braid.echo"}}],
            "edges": []}


def holders():
    return NodeRun.objects.filter(status="running", pool="warehouse_db").count()


def test_a_pool_of_two_never_has_three_holders():
    ResourcePool.objects.create(name="warehouse_db", size=2)
    started = start_many([StartRequest(definition=db_node()) for _ in range(5)])

    claims = protocol.claim("w", 10, 30).claims

    assert len(claims) == 2 and holders() == 2
    parked = NodeRun.objects.filter(status="waiting", waiting_for="pool:warehouse_db")
    assert parked.count() == 3
    assert protocol.claim("w", 10, 30).claims == []  # the parked runs left the claim query
    (reason,) = why_execution(started[-1].pk)
    assert reason.code == POOL_FULL


def test_a_finishing_holder_lets_the_highest_priority_waiter_go():
    ResourcePool.objects.create(name="warehouse_db", size=1)
    first = start_execution(StartRequest(definition=db_node(), priority=5))
    (claim,) = protocol.claim("w", 10, 30).claims
    low = start_execution(StartRequest(definition=db_node(), priority=1))
    high = start_execution(StartRequest(definition=db_node(), priority=9))
    protocol.claim("w", 10, 30)  # both park

    done = protocol.Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                           output={})
    protocol.complete([done], "w", 10, 30)

    assert NodeRun.objects.get(execution=high).status == "ready"
    assert NodeRun.objects.get(execution=low).status == "waiting"
    (next_claim,) = protocol.claim("w", 10, 30).claims
    assert next_claim.execution_id == str(high.pk)
    assert first.pk != high.pk


def test_a_node_taking_more_slots_waits_for_all_of_them():
    ResourcePool.objects.create(name="warehouse_db", size=3)
    start_many([StartRequest(definition=db_node(slots=2)) for _ in range(2)])

    assert len(protocol.claim("w", 10, 30).claims) == 1  # 2 + 2 > 3


def test_cancel_frees_the_slot_and_a_resize_releases_waiters():
    ResourcePool.objects.create(name="warehouse_db", size=1)
    first, second, third = start_many([StartRequest(definition=db_node()) for _ in range(3)])
    protocol.claim("w", 10, 30)

    cancel_execution(first.pk)  # its running node gives its slot back
    assert NodeRun.objects.filter(status="ready").count() == 1

    ResourcePool.objects.filter(name="warehouse_db").update(size=5)
    assert release_pools_with_room() == 1
    for execution in (second, third):
        assert run_until_done(execution.pk).status == "succeeded"


def test_an_unknown_pool_starts_with_one_slot():
    start_many([StartRequest(definition=db_node()) for _ in range(2)])

    assert len(protocol.claim("w", 10, 30).claims) == 1
    assert ResourcePool.objects.get(name="warehouse_db").size == 1
