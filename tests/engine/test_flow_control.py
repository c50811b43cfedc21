"""Flow-control services: a limit, pool or rate-limit change takes effect at once.

The admin and the API write these rows only through apps.engine.flow_control;
these tests call it as the API will, and check what a user sees next: runs
that go, rules that this process stops caching, and errors that name the field.
"""

import pytest

from apps.engine import flow_control, limits, protocol, ratelimits
from apps.engine.errors import InputInvalid
from apps.engine.models import ConcurrencyLimit, NodeRun, RateLimit, ResourcePool
from apps.engine.start import StartRequest, start_execution, start_many
from apps.engine.worker import drain
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {"name": "echo", "nodes": [{"id": "a", "type": "python",
                                   "config": {"function": "braid.echo"}}], "edges": []}
PARK = {"name": "park", "nodes": [{"id": "w", "type": "signal", "config": {"name": "go"}}],
        "edges": []}
POOLED = {"name": "pooled", "nodes": [{"id": "q", "type": "python", "pool": "warehouse_db",
                                       "config": {"function": "braid.echo"}}], "edges": []}


def test_deleting_a_rate_limit_lets_the_runs_it_deferred_go_now():
    bucket = flow_control.save_rate_limit(RateLimit(scope="node_type", target="python",
                                                    rate=1, period_s=3600))
    first, second = start_many([StartRequest(definition=ECHO) for _ in range(2)])
    assert len(protocol.claim("w", 10, 30).claims) == 1
    deferred = NodeRun.objects.get(execution=second)
    assert deferred.waiting_for == "rate:node_type:python" and deferred.not_before

    assert flow_control.delete_rate_limits([bucket.pk]) == 1

    assert not RateLimit.objects.exists()
    assert ratelimits.rules_for("default", 0, "python") == []
    assert run_until_done(second.pk, timeout=10).status == "succeeded"  # not in an hour


def test_changing_a_rate_limit_is_seen_by_the_next_claim_here():
    assert ratelimits.rules_for("default", 0, "python") == []  # cached: none
    bucket = flow_control.save_rate_limit(RateLimit(scope="node_type", target="python",
                                                    rate=1))
    assert ratelimits.rules_for("default", 0, "python") == [bucket.pk]


def test_loosening_a_limit_admits_what_waits():
    limit = flow_control.save_concurrency_limit(ConcurrencyLimit(max_running=1))
    first, second = (start_execution(StartRequest(definition=PARK)) for _ in range(2))
    drain(budget_s=1)
    assert NodeRun.objects.filter(execution=first).count() == 1
    assert NodeRun.objects.filter(execution=second).count() == 0  # held back by the limit

    limit.max_running = 2
    flow_control.save_concurrency_limit(limit)
    assert limits.rules()[0].max_running == 2
    drain(budget_s=1)

    assert NodeRun.objects.filter(execution=second, status="waiting").count() == 1


def test_growing_a_pool_releases_the_runs_parked_on_it():
    pool = flow_control.save_resource_pool(ResourcePool(name="warehouse_db", size=1))
    started = start_many([StartRequest(definition=POOLED) for _ in range(3)])
    protocol.claim("w", 10, 30)
    assert NodeRun.objects.filter(status="waiting", waiting_for="pool:warehouse_db").count() == 2

    pool.size = 3
    flow_control.save_resource_pool(pool)

    assert not NodeRun.objects.filter(status="waiting").exists()
    for execution in started[1:]:
        assert run_until_done(execution.pk).status == "succeeded"


def test_a_bad_value_is_refused_naming_the_field_and_nothing_is_written():
    with pytest.raises(InputInvalid) as refused:
        flow_control.save_rate_limit(RateLimit(scope="queue", target="nowhere", rate=1))
    assert refused.value.problems[0]["where"] == "target"
    assert "no queue 'nowhere'" in refused.value.problems[0]["message"]

    with pytest.raises(InputInvalid) as refused:
        flow_control.save_concurrency_limit(ConcurrencyLimit(key="input.customer",
                                                             max_running=1))
    assert [p["where"] for p in refused.value.problems] == ["key"]

    flow_control.save_resource_pool(ResourcePool(name="gpu", size=2))
    with pytest.raises(InputInvalid) as refused:
        flow_control.save_resource_pool(ResourcePool(name="gpu", size=9))
    assert refused.value.problems[0]["where"] == "name"
    assert ResourcePool.objects.get(name="gpu").size == 2
    assert not RateLimit.objects.exists() and not ConcurrencyLimit.objects.exists()


def test_a_deleted_pool_is_back_to_one_slot_and_its_waiters_still_go():
    flow_control.save_resource_pool(ResourcePool(name="warehouse_db", size=3))
    started = start_many([StartRequest(definition=POOLED) for _ in range(4)])
    assert len(protocol.claim("w", 10, 30).claims) == 3

    assert flow_control.delete_resource_pools(["warehouse_db"]) == 1

    # A node naming the pool re-creates it with one slot: the waiter waits for the
    # three holders to finish, then runs.
    assert NodeRun.objects.filter(status="waiting").count() == 1
    for claim in NodeRun.objects.filter(status="running"):
        protocol.complete([protocol.Result(claim.pk, claim.lease_token, str(claim.execution_id),
                                           "succeeded", output={})], "w", 10, 30)
    assert run_until_done(started[-1].pk).status == "succeeded"
    assert ResourcePool.objects.get(name="warehouse_db").size == 1
