"""The expression sandbox: costly evaluations run in child processes under a budget."""

from __future__ import annotations

import os

import pytest

from apps.nodes import sandbox
from apps.nodes.expressions import ExpressionError, evaluate

COSTLY = "input.xs.map(a, input.xs.filter(b, b == a).size())"
XS = {"input": {"xs": list(range(2000))}}


@pytest.fixture
def pool():
    pool = sandbox.Sandbox(1)
    yield pool
    pool.close()


def test_a_costly_evaluation_runs_in_a_child_process_and_answers_json(pool):
    assert pool.evaluate("input.xs.map(x, x * 2)", {"input": {"xs": [1, 2]}}, 5) == [2, 4]
    [child] = pool._idle
    assert child.proc.pid != os.getpid()


def test_an_evaluation_past_its_budget_is_stopped_as_timeout_and_its_child_killed(pool):
    pool.evaluate("input.xs.map(x, x)", {"input": {"xs": [1]}}, 5)
    [child] = pool._idle

    with pytest.raises(ExpressionError) as info:
        pool.evaluate(COSTLY, XS, 0.3)

    assert info.value.error_class == "timeout"
    assert info.value.retryable is True
    assert "longer than its budget of 0.3 s" in str(info.value)
    assert child.proc.returncode == -9
    assert pool.evaluate("input.xs.map(x, x + 1)", {"input": {"xs": [1]}}, 5) == [2]


def test_a_child_that_dies_fails_the_evaluation_as_resource_and_is_replaced(
        pool, monkeypatch):
    monkeypatch.setenv(sandbox.CRASH_ENV, "boom")

    with pytest.raises(ExpressionError) as info:
        pool.evaluate("input.xs.map(x, 'boom')", {"input": {"xs": [1]}}, 5)

    assert info.value.error_class == "resource"
    assert "died (signal 11)" in str(info.value)
    assert pool.evaluate("input.xs.map(x, x)", {"input": {"xs": [7]}}, 5) == [7]


def test_a_data_error_in_the_sandbox_is_a_configuration_error(pool):
    with pytest.raises(ExpressionError) as info:
        pool.evaluate("input.xs.map(x, x.nope)", {"input": {"xs": [{"a": 1}]}}, 5)

    assert info.value.error_class == "configuration"
    assert "nope" in str(info.value)


def test_evaluate_runs_cheap_expressions_here_and_costly_ones_in_the_sandbox(monkeypatch):
    calls = []
    real = sandbox.evaluate
    monkeypatch.setattr(sandbox, "evaluate", lambda *a: calls.append(a[0]) or real(*a))

    assert evaluate("input.n + 1", {"input": {"n": 1}}) == 2
    assert evaluate("input.xs.filter(x, x > 1)", {"input": {"xs": [1, 2, 3]}}) == [2, 3]

    assert calls == ["input.xs.filter(x, x > 1)"]
