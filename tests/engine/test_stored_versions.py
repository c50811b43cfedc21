"""Stored versions survive deploys: what today's code cannot run fails only its own run.

Each test publishes a version, then changes the code under it as a deploy would
(unregisters a function, removes a node type, tightens a config schema or the
expression limits), forgets the parsed graphs (a fresh worker process), and
runs it next to an unrelated execution.
"""

from __future__ import annotations

import dataclasses

import pytest

from apps.engine import maintenance
from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.nodes import expressions, registry
from apps.nodes.contract import NodeContext
from apps.nodes.registry import NodeType, register_function, register_node_type
from apps.workflows import specs
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

UNRELATED = {"name": "unrelated", "nodes": [
    {"id": "a", "type": "noop", "config": {"output": {"x": 1}}},
    {"id": "b", "type": "python", "config": {"function": "braid.echo"}},
], "edges": [{"from": "a", "to": "b"}]}


def deploy() -> None:
    """What a restart on new code does to the engine: parsed graphs are re-read."""
    specs._cache.clear()


def run_beside_unrelated(publish, spec: dict, change) -> tuple:
    """Publish `spec`, start it, change the code, then run it and an unrelated execution."""
    version = publish("stored", spec)
    publish("unrelated", UNRELATED)
    stored = start_execution(StartRequest(workflow="stored", input={}))
    unrelated = start_execution(StartRequest(workflow="unrelated", input={}))
    change()
    deploy()
    stored = run_until_done(stored.pk)
    unrelated = run_until_done(unrelated.pk)
    assert unrelated.status == "succeeded", unrelated.error
    assert version.pk == stored.version_id
    return stored, NodeRun.objects.filter(execution=stored)


def test_a_version_whose_function_was_unregistered_fails_only_its_own_execution(
        publish, monkeypatch):
    register_function("tests.going_away")(lambda ctx: {"ok": True})
    spec = {"name": "uses a function", "nodes": [
        {"id": "first", "type": "noop"},
        {"id": "call", "type": "python", "config": {"function": "tests.going_away"},
         "retry": {"max_attempts": 3}}],
        "edges": [{"from": "first", "to": "call"}]}

    stored, runs = run_beside_unrelated(
        publish, spec, lambda: registry._FUNCTIONS.pop("tests.going_away"))

    assert stored.status == "failed"
    assert stored.error["class"] == "configuration"
    assert stored.error["node"] == "call"
    assert "no registered function 'tests.going_away'" in stored.error["message"]
    # Not retried (configuration), and the node before it ran normally.
    assert [(r.node_id, r.status) for r in runs.order_by("id")] == [
        ("first", "succeeded"), ("call", "failed")]


def test_a_version_whose_node_type_no_longer_exists_fails_as_configuration(publish):
    @register_node_type
    class Retired(NodeType):
        name = "tests_retired"

        def run(self, ctx: NodeContext):
            return {}

    spec = {"name": "uses a type", "nodes": [{"id": "old", "type": "tests_retired"}],
            "edges": []}

    stored, _ = run_beside_unrelated(publish, spec,
                                     lambda: registry._REGISTRY.pop("tests_retired"))

    assert stored.status == "failed"
    assert stored.error["class"] == "configuration"
    assert "unknown type 'tests_retired'" in stored.error["message"]
    assert "cannot run on this deployment" in stored.error["message"]


def test_a_version_whose_config_is_no_longer_accepted_fails_as_configuration(
        publish, monkeypatch):
    class Greeter(NodeType):
        name = "tests_greeter"
        config_schema = {"type": "object", "properties": {"greeting": {"type": "string"}}}

        def run(self, ctx: NodeContext):
            return {"said": ctx.config.get("greeting")}

    monkeypatch.setitem(registry._REGISTRY, Greeter.name, Greeter())

    spec = {"name": "old config", "nodes": [
        {"id": "n", "type": "tests_greeter", "config": {"greeting": "hi"}}], "edges": []}
    renamed = {"type": "object", "properties": {"salutation": {"type": "string"}},
               "additionalProperties": False}

    stored, _ = run_beside_unrelated(
        publish, spec, lambda: monkeypatch.setattr(Greeter, "config_schema", renamed))

    assert stored.status == "failed"
    assert stored.error["class"] == "configuration"
    assert "Additional properties are not allowed ('greeting' was unexpected)" in \
        stored.error["message"]


def test_a_version_over_todays_expression_limits_loads_and_fails_only_that_node(publish):
    long_sum = "+".join(["1"] * 60)  # 119 characters, 60 levels
    spec = {"name": "long sum", "nodes": [
        {"id": "sum", "type": "transform", "config": {"output": {"n": long_sum}}}],
        "edges": []}
    before = expressions.LIMITS

    try:
        stored, _ = run_beside_unrelated(publish, spec, lambda: expressions.configure(
            dataclasses.replace(before, max_depth=20)))
    finally:
        expressions.configure(before)

    assert stored.status == "failed"
    assert stored.error["class"] == "configuration"
    assert "more than the limit of 20" in stored.error["message"]


def test_a_stored_edge_condition_over_todays_limits_fails_its_execution_not_the_claim(
        publish):
    spec = {"name": "long condition", "nodes": [
        {"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}],
        "edges": [{"from": "a", "to": "b", "when": "input.a.b.c.d.e == 1 || true"}]}
    before = expressions.LIMITS

    try:
        stored, _ = run_beside_unrelated(publish, spec, lambda: expressions.configure(
            dataclasses.replace(before, max_chars=10)))
    finally:
        expressions.configure(before)

    assert stored.status == "failed"
    assert stored.error["class"] == "configuration"
    assert "edge a → b" in stored.error["message"]
    assert "more than the limit of 10" in stored.error["message"]


def test_the_reaper_goes_on_past_a_version_this_code_cannot_run(publish, monkeypatch):
    """A lease of a run whose node type is gone expires; the reaper re-queues it."""
    @register_node_type
    class Vanishing(NodeType):
        name = "tests_vanishing"

        def run(self, ctx: NodeContext):
            return {}

    publish("stored", {"name": "vanishing", "nodes": [
        {"id": "v", "type": "tests_vanishing"}], "edges": []})
    stored = start_execution(StartRequest(workflow="stored", input={}))
    NodeRun.objects.filter(execution=stored).update(
        status="running", worker="gone:1", lease_token=1,
        lease_expires_at="2000-01-01T00:00:00Z")
    registry._REGISTRY.pop("tests_vanishing")
    deploy()

    maintenance.reap_expired_leases()

    runs = NodeRun.objects.filter(execution=stored).order_by("attempt")
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "ready")]
    assert run_until_done(stored.pk).error["class"] == "configuration"


def test_a_stored_costly_output_fails_as_configuration_instead_of_running_in_the_commit(
        publish, monkeypatch):
    """Outputs are evaluated in the transaction that finishes the execution, so
    today's validation refuses a macro there; a version stored before that rule
    fails with the reason rather than holding the transaction for its budget."""
    spec = {"name": "costly output", "nodes": [
        {"id": "items", "type": "noop", "config": {"output": {"xs": [1, 2, 3]}}}],
        "edges": [], "output": {"doubled": "nodes.items.output.xs.map(x, x * 2)"}}
    with monkeypatch.context() as earlier_code:
        earlier_code.setattr("apps.workflows.graph.is_cheap", lambda source: True)
        publish("stored", spec)
        stored = start_execution(StartRequest(workflow="stored", input={}))
    deploy()

    stored = run_until_done(stored.pk)

    assert stored.status == "failed"
    assert stored.error["class"] == "configuration"
    assert stored.error["message"].startswith(
        "output: doubled uses a comprehension macro (map, filter, all, exists, exists_one)")
