"""The pure decisions of the execution protocol (apps/engine/planning.py), without a database."""

from __future__ import annotations

import random

import pytest

from apps.engine.planning import (
    NodeState,
    advance,
    compensation_order,
    execution_output,
    expression_scope,
    is_finished,
    retry_delay,
)
from apps.nodes.expressions import ExpressionError
from apps.nodes.registry import node_types
from apps.workflows.graph import Graph, RetryPolicy, parse_graph


def build(nodes: list, edges: list = (), **top) -> Graph:
    """nodes: ids (noop nodes) or dicts; edges: (from, to) or (from, to, when)."""
    spec = {
        "name": "plan",
        "nodes": [{"id": n, "type": "noop"} if isinstance(n, str) else {"type": "noop", **n}
                  for n in nodes],
        "edges": [dict(zip(("from", "to", "when"), e, strict=False)) for e in edges],
        **top,
    }
    return parse_graph(spec, node_types())


def done(**statuses) -> dict[str, NodeState]:
    """done(a="succeeded", b=("succeeded", {"x": 1})) → state by node id."""
    return {node_id: NodeState(*value) if isinstance(value, tuple) else NodeState(value)
            for node_id, value in statuses.items()}


def ok(output=None):
    return ("succeeded", {} if output is None else output)


# --- readiness ------------------------------------------------------------------------------

def test_linear_chain_readies_one_node_at_a_time():
    graph = build(["a", "b", "c"], [("a", "b"), ("b", "c")])

    assert graph.entry_nodes == ("a",)
    first = advance(graph, done(a=ok()), {}, ["a"])
    assert (first.ready, first.skipped, first.errors) == (["b"], [], [])
    second = advance(graph, done(a=ok(), b=ok()), {}, ["b"])
    assert second.ready == ["c"]


def test_unfinished_node_readies_nothing():
    graph = build(["a", "b"], [("a", "b")])
    for status in ("ready", "running", "waiting"):
        plan = advance(graph, done(a=status), {}, ["a"])
        assert plan.ready == [] and plan.skipped == []


def test_node_that_already_has_a_run_is_not_planned_again():
    graph = build(["a", "b"], [("a", "b")])
    plan = advance(graph, done(a=ok(), b="running"), {}, ["a"])
    assert plan.ready == [] and plan.skipped == []


def test_fan_out_readies_every_branch():
    graph = build(["a", "b1", "b2", "b3"], [("a", "b1"), ("a", "b2"), ("a", "b3")])
    assert advance(graph, done(a=ok()), {}, ["a"]).ready == ["b1", "b2", "b3"]


def fan_in() -> Graph:
    return build(["a", "b1", "b2", "b3", "join"],
                 [("a", "b1"), ("a", "b2"), ("a", "b3"),
                  ("b1", "join"), ("b2", "join"), ("b3", "join")])


def test_join_waits_for_every_incoming_edge():
    graph = fan_in()

    assert advance(graph, done(a=ok(), b1=ok(), b2="running", b3="ready"), {},
                   ["b1"]).ready == []
    assert advance(graph, done(a=ok(), b1=ok(), b2=ok(), b3="running"), {},
                   ["b2"]).ready == []
    plan = advance(graph, done(a=ok(), b1=ok(), b2=ok(), b3=ok()), {}, ["b3"])
    assert plan.ready == ["join"] and plan.skipped == []


def test_join_runs_once_when_its_sources_finish_together():
    plan = advance(fan_in(), done(a=ok(), b1=ok(), b2=ok(), b3=ok()), {}, ["b1", "b2", "b3"])
    assert plan.ready == ["join"]


def test_join_runs_if_any_incoming_edge_is_taken():
    graph = build(["a", "x", "y", "join"],
                  [("a", "x", "input.go == 'x'"), ("a", "y", "input.go == 'y'"),
                   ("x", "join"), ("y", "join")])

    first = advance(graph, done(a=ok()), {"go": "y"}, ["a"])
    assert first.ready == ["y"] and first.skipped == ["x"]
    second = advance(graph, done(a=ok(), x="skipped", y=ok()), {"go": "y"}, ["y"])
    assert second.ready == ["join"]


def test_join_runs_if_one_branch_failed_and_another_succeeded():
    plan = advance(fan_in(), done(a=ok(), b1="failed", b2=ok(), b3="skipped"), {}, ["b1"])
    assert plan.ready == ["join"]


def test_join_is_skipped_when_every_incoming_edge_is_skipped():
    graph = build(["a", "x", "y", "join", "after"],
                  [("a", "x", "input.n > 10"), ("a", "y", "input.n > 20"),
                   ("x", "join"), ("y", "join"), ("join", "after")])

    plan = advance(graph, done(a=ok()), {"n": 1}, ["a"])
    assert plan.ready == []
    assert plan.skipped == ["x", "y", "join", "after"]


def test_skip_propagates_through_several_levels_and_stops_at_a_live_join():
    # a ─(false)→ b → c → d ; a → e → d: the skip runs down b, c and waits at d for e.
    graph = build(["a", "b", "c", "d", "e"],
                  [("a", "b", "false"), ("b", "c"), ("c", "d"), ("a", "e"), ("e", "d")])

    first = advance(graph, done(a=ok()), {}, ["a"])
    assert first.ready == ["e"]
    assert first.skipped == ["b", "c"]
    second = advance(graph, done(a=ok(), b="skipped", c="skipped", e=ok()), {}, ["e"])
    assert second.ready == ["d"]


def test_failed_node_without_fallback_skips_its_successors():
    graph = build(["a", "b", "c"], [("a", "b"), ("b", "c")])
    plan = advance(graph, done(a="failed"), {}, ["a"])
    assert plan.ready == [] and plan.skipped == ["b", "c"]


def test_cancelled_node_does_not_take_its_edges():
    graph = build(["a", "b"], [("a", "b")])
    assert advance(graph, done(a="cancelled"), {}, ["a"]).skipped == ["b"]


# --- conditions ---------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, ready, skipped", [
    ({"amount": 500}, ["review"], ["fast"]),
    ({"amount": 5}, ["fast"], ["review"]),
])
def test_condition_over_input_picks_the_branch(inputs, ready, skipped):
    graph = build(["a", "review", "fast"],
                  [("a", "review", "input.amount > 100"), ("a", "fast", "input.amount <= 100")])
    plan = advance(graph, done(a=ok()), inputs, ["a"])
    assert (plan.ready, plan.skipped, plan.errors) == (ready, skipped, [])


@pytest.mark.parametrize("score, ready, skipped", [(7, ["hi"], ["lo"]), (3, ["lo"], ["hi"])])
def test_condition_over_node_output_picks_the_branch(score, ready, skipped):
    graph = build(["a", "hi", "lo"], [("a", "hi", "nodes.a.output.score > 5"),
                                      ("a", "lo", "nodes.a.output.score <= 5")])
    plan = advance(graph, done(a=ok({"score": score})), {}, ["a"])
    assert (plan.ready, plan.skipped) == (ready, skipped)


def test_condition_can_combine_input_and_several_upstream_outputs():
    graph = build(["a", "b", "c"], [("a", "c", "nodes.a.output.ok && nodes.b.output.n "
                                               "> input.min"), ("b", "c")])
    state = done(a=ok({"ok": True}), b=ok({"n": 4}))
    assert advance(graph, state, {"min": 3}, ["b"]).ready == ["c"]
    # the a→c condition is false, but b→c is taken: the join still runs
    assert advance(graph, state, {"min": 9}, ["b"]).ready == ["c"]


def test_condition_is_not_evaluated_when_its_source_failed():
    graph = build(["a", "b"], [("a", "b", "nodes.a.output.ok")])
    plan = advance(graph, done(a="failed"), {}, ["a"])
    assert plan.skipped == ["b"] and plan.errors == []


def test_cel_error_in_a_condition_is_reported_in_the_plan_not_raised():
    graph = build(["a", "b", "c"], [("a", "b", "nodes.a.output.missing > 1"),
                                    ("a", "c", "input.count")])
    plan = advance(graph, done(a=ok({"present": 1})), {"count": 3}, ["a"])

    assert plan.ready == []
    assert plan.skipped == ["b", "c"]
    assert len(plan.errors) == 2
    assert plan.errors[0].startswith("edge a → b: ") and "missing" in plan.errors[0]
    assert plan.errors[1].startswith("edge a → c: ") and "not true or false" in plan.errors[1]


def test_condition_on_a_skipped_nodes_output_is_an_error_and_not_taken():
    graph = build(["a", "s", "b"], [("a", "s", "false"), ("s", "b"),
                                    ("a", "b", "nodes.s.output.x == 1")])
    plan = advance(graph, done(a=ok()), {}, ["a"])
    assert plan.skipped == ["s", "b"]
    assert len(plan.errors) == 1 and plan.errors[0].startswith("edge a → b")


def test_expression_scope_shows_only_nodes_that_ran_and_outputs_of_succeeded_ones():
    scope = expression_scope({"k": 1}, done(a=ok({"x": 1}), b="failed", c="running",
                                            d="skipped"))
    assert scope == {"input": {"k": 1},
                     "nodes": {"a": {"status": "succeeded", "output": {"x": 1}},
                               "b": {"status": "failed"}}}


def test_a_node_cancelled_before_it_started_did_not_run():
    state = {"a": NodeState("cancelled", None, ran=False), "b": NodeState("cancelled")}
    assert expression_scope({}, state)["nodes"] == {"b": {"status": "cancelled"}}


@pytest.mark.parametrize("status", ["skipped", "ready", "running", "waiting", None])
def test_has_is_false_for_a_node_that_did_not_run(status):
    graph = build(["a", "x", "join"], [("a", "x"), ("a", "join"), ("x", "join")],
                  output={"x_ran": "has(nodes.x)",
                          "x_output": "has(nodes.x) && has(nodes.x.output)"})
    state = done(a=ok(), join=ok())
    if status:
        state["x"] = NodeState(status)
    assert execution_output(graph, state, {}) == {"x_ran": False, "x_output": False}


def test_has_is_true_for_a_node_that_ran_and_has_output_only_if_it_succeeded():
    graph = build(["a", "x"], [("a", "x")],
                  output={"x_ran": "has(nodes.x)",
                          "x_output": "has(nodes.x) && has(nodes.x.output)"})
    assert execution_output(graph, done(a=ok(), x=ok()), {}) == {
        "x_ran": True, "x_output": True}
    assert execution_output(graph, done(a=ok(), x="failed"), {}) == {
        "x_ran": True, "x_output": False}


# --- fallback links -----------------------------------------------------------------------

def with_fallback() -> Graph:
    # a → b → end ; a fails → rescue → end
    return build([{"id": "a", "fallback": "rescue"}, "b", "rescue", "end"],
                 [("a", "b"), ("b", "end"), ("rescue", "end")])


def test_fallback_runs_when_its_source_failed_and_takes_over_its_outgoing_edges():
    graph = with_fallback()
    assert graph.entry_nodes == ("a",)

    plan = advance(graph, done(a="failed"), {}, ["a"])
    assert plan.ready == ["rescue"]
    assert plan.skipped == []  # b waits for the fallback
    after = advance(graph, done(a="failed", rescue=ok()), {}, ["rescue"])
    assert after.ready == ["b"]  # end still waits for b
    assert advance(graph, done(a="failed", rescue=ok(), b=ok()), {}, ["b"]).ready == ["end"]


def test_successors_are_skipped_when_the_fallback_fails_too():
    graph = with_fallback()
    plan = advance(graph, done(a="failed", rescue="failed"), {}, ["rescue"])
    assert plan.ready == [] and plan.skipped == ["b", "end"]


def test_a_chain_of_fallbacks_hands_the_edges_down_to_the_one_that_ran():
    graph = build([{"id": "a", "fallback": "f1"}, {"id": "f1", "fallback": "f2"}, "f2", "b"],
                  [("a", "b", "input.go")])
    state = done(a="failed", f1="failed")
    assert advance(graph, state, {"go": True}, ["f1"]).ready == ["f2"]
    state["f2"] = NodeState(*ok())
    assert advance(graph, state, {"go": True}, ["f2"]).ready == ["b"]
    assert advance(graph, state, {"go": False}, ["f2"]).skipped == ["b"]  # `when` still holds


def test_fallback_is_skipped_when_its_source_succeeds():
    graph = with_fallback()
    plan = advance(graph, done(a=ok()), {}, ["a"])
    assert plan.ready == ["b"]
    assert plan.skipped == ["rescue"]
    assert advance(graph, done(a=ok(), b=ok(), rescue="skipped"), {},
                   ["b"]).ready == ["end"]


def test_fallback_is_skipped_when_its_source_was_skipped():
    graph = build(["s", {"id": "a", "fallback": "rescue"}, "rescue"],
                  [("s", "a", "false")])
    plan = advance(graph, done(s=ok()), {}, ["s"])
    assert plan.skipped == ["a", "rescue"]


def test_compensating_nodes_are_never_planned_in_the_normal_flow():
    graph = build([{"id": "a", "compensate": "undo_a"}, "b", "undo_a"], [("a", "b")])
    assert graph.entry_nodes == ("a",)
    plan = advance(graph, done(a=ok()), {}, ["a", "undo_a"])
    assert plan.ready == ["b"] and plan.skipped == []


def test_is_finished_when_every_forward_node_is_terminal():
    graph = build([{"id": "a", "compensate": "undo"}, "b", "undo"], [("a", "b")])
    assert not is_finished(graph, {"a": "succeeded"})
    assert not is_finished(graph, {"a": "succeeded", "b": "running"})
    assert is_finished(graph, {"a": "succeeded", "b": "skipped"})  # undo never ran


# --- retry back-off -----------------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=10, backoff_s=1.0, max_backoff_s=5.0, jitter=False,
                     retry_on=("execution", "timeout", "resource"))


def test_no_retry_when_the_error_is_not_retryable():
    assert retry_delay(POLICY, 1, "execution", retryable=False) is None


@pytest.mark.parametrize("error_class", ["configuration", "cancelled"])
def test_no_retry_when_the_error_class_is_not_in_retry_on(error_class):
    assert retry_delay(POLICY, 1, error_class, retryable=True) is None


def test_retry_on_narrows_the_classes_that_are_retried():
    policy = RetryPolicy(max_attempts=3, jitter=False, retry_on=("timeout",))
    assert retry_delay(policy, 1, "timeout", True) == 0.5
    assert retry_delay(policy, 1, "execution", True) is None


def test_no_retry_once_attempts_are_exhausted():
    policy = RetryPolicy(max_attempts=3, jitter=False)
    assert retry_delay(policy, 2, "execution", True) is not None
    assert retry_delay(policy, 3, "execution", True) is None
    assert retry_delay(policy, 4, "execution", True) is None


def test_default_policy_never_retries():
    assert retry_delay(RetryPolicy(), 1, "execution", True) is None


def test_backoff_grows_exponentially_and_is_capped_at_max_backoff():
    delays = [retry_delay(POLICY, attempt, "execution", True) for attempt in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_without_jitter_the_delay_is_exact_and_ignores_the_rng():
    assert retry_delay(POLICY, 3, "timeout", True, random.Random(1)) == 4.0


def test_jitter_draws_within_half_to_full_delay():
    policy = RetryPolicy(max_attempts=10, backoff_s=1.0, max_backoff_s=5.0, jitter=True)
    for seed in range(200):
        rng = random.Random(seed)
        for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 5.0)):
            delay = retry_delay(policy, attempt, "resource", True, rng)
            assert full / 2 <= delay <= full


def test_jitter_spreads_retries_and_is_reproducible_with_a_seed():
    policy = RetryPolicy(max_attempts=10, backoff_s=2.0, max_backoff_s=60.0, jitter=True)
    draws = {retry_delay(policy, 2, "execution", True, random.Random(seed)) for seed in range(50)}
    assert len(draws) > 40
    assert (retry_delay(policy, 2, "execution", True, random.Random(7))
            == retry_delay(policy, 2, "execution", True, random.Random(7)))


def test_zero_backoff_retries_at_once_even_with_jitter():
    policy = RetryPolicy(max_attempts=3, backoff_s=0, max_backoff_s=0, jitter=True)
    assert retry_delay(policy, 1, "execution", True, random.Random(0)) == 0


# --- compensation and output --------------------------------------------------------------

def saga() -> Graph:
    return build([{"id": "reserve", "compensate": "release"}, "audit",
                  {"id": "charge", "compensate": "refund"}, "ship", "release", "refund"],
                 [("reserve", "audit"), ("audit", "charge"), ("charge", "ship")])


def test_compensation_runs_in_reverse_completion_order_for_nodes_with_compensate():
    assert compensation_order(saga(), ["reserve", "audit", "charge"]) == ["refund", "release"]


def test_compensation_follows_the_actual_completion_order():
    assert compensation_order(saga(), ["charge", "reserve"]) == ["release", "refund"]


def test_compensation_of_nothing_or_of_uncompensated_nodes_is_empty():
    assert compensation_order(saga(), []) == []
    assert compensation_order(saga(), ["audit", "ship", "gone"]) == []


def test_execution_output_evaluates_the_output_expressions():
    graph = build(["a", "b"], [("a", "b")],
                  output={"total": "nodes.a.output.n + nodes.b.output.n", "who": "input.who",
                          "both": "[nodes.a.output.n, nodes.b.output.n]"})
    state = done(a=ok({"n": 2}), b=ok({"n": 3}))
    assert execution_output(graph, state, {"who": "ada"}) == {"total": 5, "who": "ada",
                                                              "both": [2, 3]}


def test_execution_output_expression_error_raises():
    graph = build(["a"], output={"x": "nodes.a.output.missing"})
    with pytest.raises(ExpressionError):
        execution_output(graph, done(a=ok({})), {})


def test_execution_output_defaults_to_the_outputs_of_succeeded_sinks():
    graph = build(["a", "left", "right", "mid", "end"],
                  [("a", "left"), ("a", "right"), ("a", "mid"), ("mid", "end")])
    assert graph.sinks == ("left", "right", "end")
    state = done(a=ok({"a": 1}), left=ok({"l": 1}), right="skipped", mid=ok({"m": 1}),
                 end=ok({"e": 1}))
    assert execution_output(graph, state, {}) == {"left": {"l": 1}, "end": {"e": 1}}
