"""Canary routing: deterministic by key, the candidate gets its share (no database)."""

from __future__ import annotations

import uuid

from apps.nodes.expressions import evaluate
from apps.workflows.routing import CANDIDATE, STABLE, Routing, route

CANARY_20 = Routing(stable_id=1, candidate_id=2, percent=20.0)


def test_a_canary_at_20_percent_gets_20_percent_of_2000_executions():
    routes = [route(CANARY_20, execution_id=str(uuid.uuid4()))[1] for _ in range(2000)]

    share = routes.count(CANDIDATE) / 2000
    assert 0.17 <= share <= 0.23


def test_the_same_idempotency_key_always_lands_on_the_same_version():
    for n in range(200):
        key = f"order-{n}"
        first = route(CANARY_20, execution_id=str(uuid.uuid4()), idempotency_key=key)
        again = [route(CANARY_20, execution_id=str(uuid.uuid4()), idempotency_key=key)
                 for _ in range(3)]
        assert again == [first] * 3


def test_a_cel_key_routes_every_execution_of_a_customer_alike():
    routing = Routing(stable_id=1, candidate_id=2, percent=30.0, key="expression",
                      expression="input.customer")
    seen: dict[str, set] = {}
    for n in range(600):
        customer = f"c{n % 40}"
        version, _ = route(routing, execution_id=str(uuid.uuid4()),
                           inputs={"customer": customer}, evaluate=evaluate)
        seen.setdefault(customer, set()).add(version)

    assert all(len(versions) == 1 for versions in seen.values())
    assert {v for versions in seen.values() for v in versions} == {1, 2}


def test_a_key_expression_that_fails_routes_to_stable():
    routing = Routing(stable_id=1, candidate_id=2, percent=99.0, key="expression",
                      expression="input.customer")

    assert route(routing, execution_id="x", inputs={}, evaluate=evaluate) == (1, STABLE)


def test_a_key_on_the_candidate_stays_there_when_the_share_grows():
    keys = [f"k{n}" for n in range(500)]
    small = Routing(stable_id=1, candidate_id=2, percent=5.0)
    large = Routing(stable_id=1, candidate_id=2, percent=50.0)
    on_small = {k for k in keys if route(small, execution_id="-", idempotency_key=k)[1]
                == CANDIDATE}
    on_large = {k for k in keys if route(large, execution_id="-", idempotency_key=k)[1]
                == CANDIDATE}

    assert on_small and on_small <= on_large


def test_no_canary_means_stable_and_100_percent_means_candidate():
    assert route(Routing(stable_id=1), execution_id="x") == (1, STABLE)
    assert route(Routing(stable_id=1, candidate_id=2, percent=100), execution_id="x") \
        == (2, CANDIDATE)
