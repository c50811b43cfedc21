"""Rate limits: token buckets per queue, workflow and node type, shared by all workers."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.engine import protocol
from apps.engine.diagnosis import RATE_LIMITED, why_execution
from apps.engine.models import NodeRun, RateLimit
from apps.engine.ratelimits import refill, seconds_until_token
from apps.engine.start import StartRequest, start_execution, start_many
from apps.workflows.services import publish_version
from tests.conftest import run_until_done

ECHO = {"name": "echo", "nodes": [{"id": "a", "type": "python",
                                   "config": {"function": "braid.echo"}}], "edges": []}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_bucket_refills_at_its_rate_up_to_its_capacity():
    assert refill(None, None, T0, rate=10, period_s=60, capacity=10) == 10
    assert refill(0, T0, T0 + timedelta(seconds=30), rate=10, period_s=60, capacity=10) == 5
    assert refill(9, T0, T0 + timedelta(hours=1), rate=10, period_s=60, capacity=10) == 10
    assert seconds_until_token(0.5, rate=10, period_s=60) == 3.0
    assert seconds_until_token(2, rate=10, period_s=60) == 0


@pytest.mark.django_db(transaction=True)
def test_a_node_type_limit_lets_a_burst_through_then_defers_the_rest():
    RateLimit.objects.create(scope="node_type", target="python", rate=3, period_s=60)
    started = start_many([StartRequest(definition=ECHO) for _ in range(5)])

    got = protocol.claim("w", 10, 30)

    assert len(got.claims) == 3
    deferred = NodeRun.objects.filter(status="ready")
    assert deferred.count() == 2
    assert all(r.waiting_for == "rate:node_type:python" for r in deferred)
    (reason,) = why_execution(started[-1].pk)
    assert reason.code == RATE_LIMITED and "until" in reason.message
    assert protocol.claim("w", 10, 30).claims == []  # still no token


@pytest.mark.django_db(transaction=True)
def test_deferred_runs_run_when_tokens_come_back():
    RateLimit.objects.create(scope="queue", target="background", rate=2, period_s=0.5)
    started = start_many([StartRequest(definition=ECHO, queue="background")
                          for _ in range(4)])

    for execution in started:
        assert run_until_done(execution.pk, timeout=10).status == "succeeded"
    firsts = sorted(NodeRun.objects.values_list("started_at", flat=True))
    assert (firsts[-1] - firsts[0]).total_seconds() >= 0.2  # the last two had to wait


@pytest.mark.django_db(transaction=True)
def test_a_workflow_limit_applies_to_that_workflow_only():
    publish_version("limited", ECHO)
    publish_version("free", ECHO)
    RateLimit.objects.create(scope="workflow", target="limited", rate=1, period_s=60)
    start_many([StartRequest(workflow="limited") for _ in range(3)]
               + [StartRequest(workflow="free") for _ in range(3)])

    claims = protocol.claim("w", 10, 30).claims

    assert len(claims) == 4  # one of "limited", all three of "free"


@pytest.mark.django_db(transaction=True)
def test_successors_of_a_limited_type_are_not_continued_locally():
    RateLimit.objects.create(scope="node_type", target="python", rate=1, period_s=60)
    spec = {"name": "two", "nodes": [
        {"id": "a", "type": "python", "config": {"function": "braid.echo"}},
        {"id": "b", "type": "python", "config": {"function": "braid.echo"}}],
        "edges": [{"from": "a", "to": "b"}]}
    execution = start_execution(StartRequest(definition=spec))
    (claim,) = protocol.claim("w", 10, 30).claims
    done = protocol.Result(claim.run_id, claim.lease_token, claim.execution_id, "succeeded",
                           output={})

    assert protocol.complete([done], "w", 10, 30) == []
    assert protocol.claim("w", 10, 30).claims == []  # b waits for a token
    assert NodeRun.objects.get(execution=execution, node_id="b").status == "ready"


@pytest.mark.django_db
def test_a_rule_must_name_something_that_exists():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        RateLimit(scope="queue", target="nope", rate=1).full_clean()
    with pytest.raises(ValidationError):
        RateLimit(scope="node_type", target="nope", rate=1).full_clean()
    RateLimit(scope="node_type", target="http", rate=100).full_clean()
