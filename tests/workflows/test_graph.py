"""parse_graph: graph spec v1 → Graph, or GraphInvalid listing every problem (no database).

Also checks the published JSON Schema (schema/workflow-v1.schema.json) against the
examples and against parse_graph on a few invalid definitions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from apps.nodes.registry import node_types
from apps.workflows.graph import Edge, GraphInvalid, Limits, Problem, RetryPolicy, parse_graph
from apps.workflows.specs import limits as deployment_limits

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
SCHEMA_PATH = ROOT / "schema" / "workflow-v1.schema.json"
DEFAULT_LIMITS = Limits()
BUILTIN_TYPES = ("noop", "transform", "python", "http", "delay", "fail")


# --- helpers ------------------------------------------------------------------------------

def node(node_id: str, type_: str = "noop", **fields) -> dict:
    return {"id": node_id, "type": type_, **fields}


def edge(source: str, target: str, when: str | None = None) -> dict:
    item = {"from": source, "to": target}
    if when is not None:
        item["when"] = when
    return item


def spec(nodes: list[dict], edges: list[dict] | None = None, **top) -> dict:
    definition = {"name": "test", "nodes": nodes}
    if edges is not None:
        definition["edges"] = edges
    definition.update(top)
    return definition


def parse(definition, limits: Limits = DEFAULT_LIMITS):
    return parse_graph(definition, node_types(), limits)


def problems_of(definition, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    with pytest.raises(GraphInvalid) as info:
        parse(definition, limits)
    assert info.value.problems, "GraphInvalid must list at least one problem"
    assert str(info.value)  # a readable summary for logs
    return info.value.problems


def only_problem(definition, limits: Limits = DEFAULT_LIMITS) -> Problem:
    problems = problems_of(definition, limits)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def has_problem(problems: list[Problem], where: str, *fragments: str,
                node: str | None = "any") -> bool:
    return any(
        p.where == where and all(f in p.message for f in fragments)
        and (node == "any" or p.node == node)
        for p in problems
    )


@pytest.fixture(scope="module")
def workflow_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def schema_validator(workflow_schema) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(workflow_schema)


# --- a valid graph --------------------------------------------------------------------------

def saga_spec() -> dict:
    """start → charge → ship → done, charge falls back to manual → done; charge is undone by
    refund, ship by recall."""
    return spec(
        [
            node("start", config={"output": {"ok": True}}),
            node("charge", "python", config={"function": "braid.charge_card"},
                 retry={"max_attempts": 3, "backoff_s": 1, "max_backoff_s": 4,
                        "jitter": False, "retry_on": ["resource"]},
                 timeout_s=30, fallback="manual", compensate="refund"),
            node("ship", "python", config={"function": "braid.ship_order"},
                 compensate="recall"),
            node("manual", "transform", config={"output": {"by": "'hand'"}}),
            node("done", "transform", config={"output": {"ok": "true"}}),
            node("refund", "python", config={"function": "braid.refund_card"}),
            node("recall", "noop"),
        ],
        [edge("start", "charge"), edge("charge", "ship", "input.amount > 0"),
         edge("ship", "done"), edge("manual", "done")],
        description="a saga", input_schema={"type": "object"}, deadline_s=60,
        output={"ok": "nodes.done.output.ok"}, version="1", tags=["demo"],
    )


def test_valid_graph_parses_into_nodes_edges_and_roles():
    graph = parse(saga_spec())

    assert graph.name == "test"
    assert list(graph.nodes) == ["start", "charge", "ship", "manual", "done", "refund", "recall"]
    assert graph.entry_nodes == ("start",)
    assert graph.sinks == ("done",)
    assert graph.compensators == frozenset({"refund", "recall"})
    assert graph.forward_nodes == ("start", "charge", "ship", "manual", "done")
    assert graph.deadline_s == 60.0
    assert graph.input_schema == {"type": "object"}
    assert graph.output == {"ok": "nodes.done.output.ok"}
    assert graph.edges[1] == Edge("charge", "ship", "input.amount > 0")


def test_valid_graph_node_fields_are_parsed():
    charge = parse(saga_spec()).nodes["charge"]

    assert charge.type == "python"
    assert charge.config == {"function": "braid.charge_card"}
    assert charge.retry == RetryPolicy(max_attempts=3, backoff_s=1.0, max_backoff_s=4.0,
                                       jitter=False, retry_on=("resource",))
    assert charge.timeout_s == 30.0
    assert charge.fallback == "manual"
    assert charge.compensate == "refund"


def test_incoming_and_outgoing_include_fallback_links():
    graph = parse(saga_spec())

    assert graph.outgoing("charge") == (Edge("charge", "ship", "input.amount > 0"),
                                        Edge("charge", "manual", on_failure=True))
    assert graph.incoming("manual") == (Edge("charge", "manual", on_failure=True),)
    assert graph.incoming("done") == (Edge("ship", "done"), Edge("manual", "done"))
    assert graph.incoming("start") == ()
    assert graph.outgoing("done") == ()
    # compensating nodes are linked by `compensate`, never by edges
    assert graph.incoming("refund") == () and graph.outgoing("refund") == ()


def test_fallback_target_is_not_an_entry_node_and_fallback_link_does_not_make_a_sink():
    graph = parse(spec([node("a", fallback="f"), node("f")]))

    assert graph.entry_nodes == ("a",)
    # `a` has only a fallback link out: for the normal flow it is a sink, and so is `f`
    assert graph.sinks == ("a", "f")


def test_defaults_when_optional_fields_are_missing():
    graph = parse({"name": "minimal", "nodes": [{"id": "only", "type": "noop"}]})

    only = graph.nodes["only"]
    assert graph.edges == ()
    assert graph.output is None and graph.input_schema is None and graph.deadline_s is None
    assert only.config == {} and only.retry == RetryPolicy()
    assert only.timeout_s is None and only.fallback is None and only.compensate is None
    assert graph.entry_nodes == graph.sinks == ("only",)


def test_parallel_entry_nodes_and_join():
    graph = parse(spec([node("a"), node("b"), node("j")], [edge("a", "j"), edge("b", "j")]))

    assert graph.entry_nodes == ("a", "b")
    assert graph.sinks == ("j",)
    assert {e.source for e in graph.incoming("j")} == {"a", "b"}


def test_cel_comprehension_macros_are_valid_conditions():
    graph = parse(spec([node("a"), node("b")],
                       [edge("a", "b", "input.items.exists(i, i.qty > 0)")]))
    assert graph.edges[0].when == "input.items.exists(i, i.qty > 0)"


# --- each kind of problem, reported with its node id / edge ---------------------------------

def test_definition_must_be_an_object():
    problem = only_problem(["not", "an", "object"])
    assert (problem.where, problem.message) == ("definition", "must be a JSON object")


def test_cycle_is_reported_with_its_path():
    definition = spec([node("a"), node("b"), node("c"), node("d")],
                      [edge("a", "b"), edge("b", "c"), edge("c", "d"), edge("d", "b")])
    problem = only_problem(definition)

    assert problem.message == "cycle: b → c → d → b"
    assert problem.where == "node 'b'" and problem.node == "b"


def test_self_loop_is_a_cycle():
    problem = only_problem(spec([node("a"), node("b")], [edge("a", "b"), edge("b", "b")]))
    assert problem.message == "cycle: b → b"


def test_cycle_through_a_fallback_link_is_reported():
    definition = spec([node("a", fallback="f"), node("f"), node("g")],
                      [edge("a", "g")])
    assert parse(definition)  # no cycle yet
    definition["edges"].append(edge("g", "a"))
    problems = problems_of(definition)
    assert has_problem(problems, "node 'a'", "cycle: a → g → a")


def test_dangling_edges_name_the_missing_end():
    problems = problems_of(spec([node("a")], [edge("a", "ghost"), edge("phantom", "a")]))

    assert has_problem(problems, "edge a → ghost", "dangling: to 'ghost' is not a node",
                       node="ghost")
    assert has_problem(problems, "edge phantom → a", "dangling: from 'phantom' is not a node",
                       node="phantom")
    assert len(problems) == 2


def test_edge_with_non_string_ends_is_reported_not_crashing():
    problems = problems_of(spec([node("a"), node("b")], [{"from": ["a"], "to": {"id": "b"}}]))

    assert has_problem(problems, "edge ['a'] → {'id': 'b'}", "dangling: from ['a']", node=None)
    assert has_problem(problems, "edge ['a'] → {'id': 'b'}", "dangling: to {'id': 'b'}")


def test_duplicate_edge_is_reported():
    problem = only_problem(spec([node("a"), node("b")],
                                [edge("a", "b"), edge("a", "b", "input.x == 1")]))
    assert (problem.where, problem.message, problem.node) == ("edge a → b", "duplicate edge",
                                                              "a")


def test_duplicate_node_id_is_reported():
    problem = only_problem(spec([node("a"), node("b"), node("a", "delay")], [edge("a", "b")]))
    assert (problem.where, problem.message, problem.node) == ("node 'a'", "duplicate id", "a")


@pytest.mark.parametrize("bad_id", ["1st", "has-dash", "x" * 65, "", None, 7])
def test_invalid_node_id_is_reported(bad_id):
    problems = problems_of(spec([node("ok"), {"id": bad_id, "type": "noop"}]))
    assert len(problems) == 1
    assert "id must be a name of letters, digits and _" in problems[0].message
    assert problems[0].where in (f"node {bad_id!r}", "nodes[1]")


def test_unknown_node_type_lists_the_known_types():
    problem = only_problem(spec([node("a"), node("b", "teleport")], [edge("a", "b")]))

    assert problem.where == "node 'b'" and problem.node == "b"
    assert problem.message.startswith("unknown type 'teleport' (known: ")
    for known in BUILTIN_TYPES:
        assert known in problem.message


def test_node_without_type_is_an_unknown_type():
    problem = only_problem(spec([{"id": "a"}]))
    assert problem.message.startswith("unknown type None")


def test_unreachable_nodes_are_reported():
    # `c` compensates `a` but also feeds `a`: neither can ever run in the normal flow.
    definition = spec([node("start"), node("a", compensate="c"), node("c")],
                      [edge("c", "a")])
    problems = problems_of(definition)

    assert has_problem(problems, "node 'a'", "unreachable from any entry node", node="a")
    assert has_problem(problems, "node 'c'", "unreachable from any entry node", node="c")
    assert has_problem(problems, "node 'a' compensate", "must have no edges")
    assert not has_problem(problems, "node 'start'", "unreachable")


def test_no_entry_node_is_reported():
    definition = spec([node("a", compensate="c"), node("c")], [edge("c", "a")])
    assert has_problem(problems_of(definition), "nodes", "no entry node")


@pytest.mark.parametrize("when, fragments", [
    ("input.amount >", ("bad condition:", "Failed to parse")),
    ("amount > 3", ("bad condition:", "unknown variable 'amount'")),
    ("lower(input.name) == 'x'", ("bad condition:", "unknown function 'lower'")),
    ("", ("bad condition:", "expression is empty")),
])
def test_bad_cel_condition_is_reported_on_its_edge(when, fragments):
    problem = only_problem(spec([node("a"), node("b")], [edge("a", "b", when)]))
    assert problem.where == "edge a → b" and problem.node == "a"
    assert all(f in problem.message for f in fragments), problem.message


def test_condition_must_be_a_string():
    problem = only_problem(spec([node("a"), node("b")], [{"from": "a", "to": "b", "when": True}]))
    assert problem.message == "bad condition: when must be a CEL string"


def test_bad_cel_in_output_expressions_is_reported_per_key():
    problems = problems_of(spec([node("a")], output={
        "ok": "nodes.a.output", "syntax": "nodes.a.output.(", "var": "result.x",
        "fn": "shout(input.x)", "type": 3}))

    assert has_problem(problems, "output.syntax", "bad expression:", "Failed to parse")
    assert has_problem(problems, "output.var", "unknown variable 'result'")
    assert has_problem(problems, "output.fn", "unknown function 'shout'")
    assert has_problem(problems, "output.type", "must be a CEL string")
    assert len(problems) == 4


def test_output_must_be_an_object():
    problem = only_problem(spec([node("a")], output=["nodes.a.output"]))
    assert problem.where == "output"


def test_bad_cel_in_transform_config_is_reported_on_the_node():
    problem = only_problem(spec([node("t", "transform", config={"output": {"x": "now()"}})]))
    assert problem.where == "node 't'" and problem.node == "t"
    assert problem.message == "config/output/x: unknown function 'now'"


@pytest.mark.parametrize("type_, config, fragment", [
    ("transform", {}, "config: 'output' is a required property"),
    ("transform", {"output": {"x": 1}}, "config/output/x: 1 is not of type 'string'"),
    ("delay", {"seconds": -1}, "config/seconds: -1 is less than the minimum of 0"),
    ("delay", {}, "config: 'seconds' is a required property"),
    ("python", {"function": "os.system"}, "config/function: no registered function "
                                          "'os.system'"),
    ("python", {"function": "braid.echo", "module": "os"}, "Additional properties"),
    ("http", {"url": "ftp://example.com"}, "config/url: 'ftp://example.com' does not match"),
    ("fail", {"error_class": "bogus"}, "config/error_class: 'bogus' is not one of"),
    ("noop", {"output": 1, "extra": 2}, "Additional properties are not allowed ('extra'"),
])
def test_bad_config_for_the_node_type_is_reported(type_, config, fragment):
    problem = only_problem(spec([node("n", type_, config=config)]))
    assert problem.where == "node 'n'" and problem.node == "n"
    assert fragment in problem.message, problem.message


def test_config_must_be_an_object():
    problem = only_problem(spec([node("n", config=["output"])]))
    assert problem.message == "config must be an object"


def test_unknown_fallback_and_compensate_targets_are_reported():
    problems = problems_of(spec([node("a", fallback="rescue", compensate="undo")]))

    assert has_problem(problems, "node 'a' fallback", "unknown fallback target 'rescue'",
                       node="a")
    assert has_problem(problems, "node 'a' compensate", "unknown compensate target 'undo'",
                       node="a")
    assert len(problems) == 2


def test_fallback_and_compensate_must_be_node_ids():
    problems = problems_of(spec([node("a", fallback=3, compensate=["b"])]))
    assert has_problem(problems, "node 'a' fallback", "must be a node id")
    assert has_problem(problems, "node 'a' compensate", "must be a node id")


def test_node_cannot_be_its_own_fallback():
    problems = problems_of(spec([node("a", fallback="a")]))
    assert has_problem(problems, "node 'a' fallback", "cannot be its own fallback")


def test_fallback_target_with_incoming_edges_is_reported():
    problem = only_problem(spec([node("a", fallback="f"), node("b"), node("f")],
                                [edge("a", "b"), edge("b", "f")]))
    assert problem.where == "node 'a' fallback" and problem.node == "a"
    assert "fallback target 'f' must have no incoming edges" in problem.message


def test_shared_compensator_is_reported():
    problem = only_problem(spec([node("a", compensate="undo"), node("b", compensate="undo"),
                                 node("undo")], [edge("a", "b")]))
    assert problem.where == "node 'b' compensate" and problem.node == "b"
    assert problem.message == "'undo' already compensates 'a'"


def test_compensator_with_edges_or_as_fallback_is_reported():
    problems = problems_of(spec(
        [node("a", compensate="undo", fallback="undo"), node("b", compensate="c"), node("c"),
         node("undo")],
        [edge("a", "b"), edge("c", "b")]))

    assert has_problem(problems, "node 'a' compensate", "compensating node 'undo' must have no "
                       "edges and be no fallback")
    assert has_problem(problems, "node 'b' compensate", "compensating node 'c' must have no "
                       "edges")


def test_compensator_cannot_have_its_own_fallback_or_compensate():
    problems = problems_of(spec([node("a", compensate="undo"), node("undo", compensate="u2"),
                                 node("u2")]))
    assert has_problem(problems, "node 'undo'", "a compensating node cannot have its own "
                       "fallback or compensate", node="undo")


def test_oversize_definition_is_refused_before_parsing():
    definition = spec([node(f"n{i}", config={"output": {"pad": "x" * 50}}) for i in range(10)],
                      bogus="unknown field too")
    problem = only_problem(definition, Limits(max_bytes=400))

    assert problem.where == "definition"
    assert "more than the limit of 400" in problem.message
    size = len(json.dumps(definition, separators=(",", ":")))
    assert problem.message == f"is {size} bytes, more than the limit of 400"
    assert parse(spec([node("n")]), Limits(max_bytes=400))


def test_too_many_nodes_is_reported():
    definition = spec([node(f"n{i}") for i in range(4)],
                      [edge("n0", "n1"), edge("n1", "n2"), edge("n2", "n3")])
    problem = only_problem(definition, Limits(max_nodes=3))

    assert (problem.where, problem.message) == (
        "nodes", "has 4 nodes, more than the limit of 3 (BRAID_MAX_NODES)")
    assert parse(definition, Limits(max_nodes=4))


def test_a_definition_of_3000_nodes_stops_at_max_nodes_with_one_problem():
    # Every node is also wrong in other ways; past MAX_NODES none of that is listed.
    definition = spec([node(f"n{i}", "no-such-type", bogus=1) for i in range(3000)],
                      [edge(f"n{i}", f"n{i + 1}") for i in range(2999)])
    problem = only_problem(definition, deployment_limits())

    assert problem.where == "nodes"
    assert problem.message.startswith("has 3000 nodes, more than the limit of 500")


def test_a_graph_of_thousands_of_nodes_is_indexed_in_one_pass():
    # Linear, not one scan of every edge per node: 3,000 nodes parse (measured ≈ 0.1 s).
    definition = spec([node(f"n{i}") for i in range(3000)],
                      [edge(f"n{i}", f"n{i + 1}") for i in range(2999)])
    graph = parse(definition, Limits(max_nodes=3000, max_bytes=10**7))

    assert graph.entry_nodes == ("n0",) and graph.sinks == ("n2999",)
    assert [e.target for e in graph.outgoing("n1500")] == ["n1501"]
    assert [e.source for e in graph.incoming("n1500")] == ["n1499"]


@pytest.mark.parametrize("where", ["config", "input_schema", "top"])
def test_a_definition_nested_10000_deep_is_refused_without_recursion_error(where):
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    definition = spec([node("a", config={"output": deep} if where == "config" else {})])
    if where == "input_schema":
        definition["input_schema"] = {"type": "object", "default": deep}
    elif where == "top":
        definition["tags"] = deep
    problem = only_problem(definition)

    assert (problem.where, problem.message) == ("definition",
                                                "is nested more than 64 levels deep")


@pytest.mark.parametrize("nodes", [None, [], {"a": {"type": "noop"}}])
def test_nodes_must_be_a_non_empty_list(nodes):
    definition = {"name": "x"} if nodes is None else {"name": "x", "nodes": nodes}
    problem = only_problem(definition)
    assert (problem.where, problem.message) == ("nodes", "must be a non-empty list")


def test_node_must_be_an_object():
    problems = problems_of(spec([node("a"), "b"]))
    assert has_problem(problems, "nodes[1]", "must be an object")


@pytest.mark.parametrize("timeout", [0, -5, "10", True, float("nan"), float("inf")])
def test_timeout_must_be_a_positive_number(timeout):
    problem = only_problem(spec([node("a", timeout_s=timeout)]))
    assert problem.where == "node 'a' timeout_s" and problem.node == "a"
    assert "must be a positive number" in problem.message


def test_timeout_above_the_limit_is_reported():
    problem = only_problem(spec([node("a", timeout_s=60)]), Limits(max_timeout_s=30))
    assert problem.message == "is 60, more than the limit of 30"


@pytest.mark.parametrize("retry, where, fragment", [
    ({"max_attempts": 0}, "retry.max_attempts", "from 1 to 50"),
    ({"max_attempts": 51}, "retry.max_attempts", "from 1 to 50"),
    ({"max_attempts": 2.5}, "retry.max_attempts", "from 1 to 50"),
    ({"max_attempts": "3"}, "retry.max_attempts", "from 1 to 50"),
    ({"max_attempts": True}, "retry.max_attempts", "from 1 to 50"),
    ({"backoff_s": -1}, "retry.backoff_s", "must be a number ≥ 0"),
    ({"max_backoff_s": "soon"}, "retry.max_backoff_s", "must be a number ≥ 0"),
    ({"backoff_s": 10, "max_backoff_s": 5}, "retry.max_backoff_s", "must be ≥ backoff_s"),
    ({"jitter": "yes"}, "retry.jitter", "must be true or false"),
    ({"retry_on": ["sometimes"]}, "retry.retry_on", "must be a list of execution, timeout"),
    ({"retry_on": "timeout"}, "retry.retry_on", "must be a list of"),
    ({"attempts": 3}, "retry", "unknown field 'attempts'"),
    ([3], "retry", "must be an object"),
])
def test_bad_retry_fields_are_reported(retry, where, fragment):
    problem = only_problem(spec([node("a", retry=retry)]))
    assert problem.where == f"node 'a' {where}" and problem.node == "a"
    assert fragment in problem.message, problem.message


def test_unknown_top_level_field_is_reported():
    problem = only_problem(spec([node("a")], triggers=["cron"]))
    assert (problem.where, problem.message) == ("triggers", "is not a field of the workflow spec")


def test_unknown_node_and_edge_fields_are_reported():
    problems = problems_of(spec([node("a", retries=3), node("b")],
                                [{"from": "a", "to": "b", "if": "true"}]))
    assert has_problem(problems, "node 'a'", "unknown field 'retries'", node="a")
    assert has_problem(problems, "edge a → b", "unknown field 'if'")


@pytest.mark.parametrize("name", [None, "", "   ", 5])
def test_name_is_required(name):
    definition = spec([node("a")])
    if name is None:
        del definition["name"]
    else:
        definition["name"] = name
    problem = only_problem(definition)
    assert problem.where == "name"


@pytest.mark.parametrize("input_schema, fragment", [
    ("object", "must be a JSON Schema object"),
    ({"type": "nothing"}, "is not a valid JSON Schema"),
])
def test_input_schema_must_be_a_valid_json_schema(input_schema, fragment):
    problem = only_problem(spec([node("a")], input_schema=input_schema))
    assert problem.where == "input_schema" and fragment in problem.message


@pytest.mark.parametrize("deadline", [0, -1, "1h", float("nan")])
def test_deadline_must_be_a_positive_number(deadline):
    problem = only_problem(spec([node("a")], deadline_s=deadline))
    assert problem.where == "deadline_s"


def test_edges_must_be_a_list_of_objects():
    assert only_problem(spec([node("a")], {"a": "b"})).where == "edges"
    assert only_problem(spec([node("a")], ["a->b"])).where == "edges[0]"


# --- every problem at once ------------------------------------------------------------------

def test_one_definition_with_many_problems_lists_every_one():
    definition = {
        # no "name"
        "triggers": ["cron"],                                               # unknown field
        "deadline_s": -3,                                                   # not positive
        "output": {"total": "nodes.sum.output +"},                          # CEL syntax
        "nodes": [
            {"id": "start", "type": "noop"},
            {"id": "start", "type": "noop"},                                # duplicate id
            {"id": "9lives", "type": "noop"},                               # bad id
            {"id": "beam", "type": "teleport"},                             # unknown type
            {"id": "calc", "type": "transform", "config": {}},              # bad config
            {"id": "call", "type": "python", "config": {"function": "nope"}},  # unregistered
            {"id": "wait", "type": "delay", "config": {"seconds": -1}},     # negative
            {"id": "shout", "type": "transform",
             "config": {"output": {"x": "upper(input.name)"}}},             # unknown function
            {"id": "pay", "type": "noop", "fallback": "rescue",             # unknown target
             "compensate": "undo",
             "retry": {"max_attempts": 0, "jitter": "maybe"},               # two bad fields
             "timeout_s": 5000},                                            # over the limit
            {"id": "ship", "type": "noop", "compensate": "undo"},           # shared compensator
            {"id": "undo", "type": "noop"},
            {"id": "notify", "type": "noop", "fallback": "alt"},            # alt has an edge in
            {"id": "alt", "type": "noop"},
            {"id": "loop1", "type": "noop"},
            {"id": "loop2", "type": "noop"},
        ],
        "edges": [
            {"from": "start", "to": "beam"},
            {"from": "beam", "to": "ghost"},                                # dangling
            {"from": "start", "to": "calc", "when": "amount > 1"},          # unknown variable
            {"from": "start", "to": "alt"},
            {"from": "start", "to": "loop1"},
            {"from": "loop1", "to": "loop2"},
            {"from": "loop2", "to": "loop1"},                               # cycle
        ],
    }
    problems = problems_of(definition)

    expected = [
        ("name", ("is required",)),
        ("triggers", ("is not a field of the workflow spec",)),
        ("deadline_s", ("must be a positive number",)),
        ("output.total", ("bad expression:", "Failed to parse")),
        ("node 'start'", ("duplicate id",)),
        ("node '9lives'", ("id must be a name",)),
        ("node 'beam'", ("unknown type 'teleport'",)),
        ("node 'calc'", ("'output' is a required property",)),
        ("node 'call'", ("no registered function 'nope'",)),
        ("node 'wait'", ("config/seconds", "minimum of 0")),
        ("node 'shout'", ("unknown function 'upper'",)),
        ("node 'pay' fallback", ("unknown fallback target 'rescue'",)),
        ("node 'pay' retry.max_attempts", ("from 1 to 50",)),
        ("node 'pay' retry.jitter", ("true or false",)),
        ("node 'pay' timeout_s", ("more than the limit of 900",)),
        ("node 'ship' compensate", ("'undo' already compensates 'pay'",)),
        ("node 'notify' fallback", ("fallback target 'alt' must have no incoming edges",)),
        ("edge beam → ghost", ("dangling: to 'ghost'",)),
        ("edge start → calc", ("bad condition:", "unknown variable 'amount'")),
        ("node 'loop1'", ("cycle: loop1 → loop2 → loop1",)),
    ]
    missing = [(where, fragments) for where, fragments in expected
               if not has_problem(problems, where, *fragments)]
    assert not missing, f"not reported: {missing}\nreported: {[str(p) for p in problems]}"
    assert len(problems) == len(expected), [str(p) for p in problems]
    # Node problems carry the node id so a client can point at it (an invalid id is no id).
    for p in problems:
        if p.where.startswith("node '") and "id must be a name" not in p.message:
            assert p.node == p.where.split("'")[1], str(p)
    assert all(set(p.as_dict()) == {"where", "node", "message"} for p in problems)


# --- examples and the published JSON Schema -------------------------------------------------

def test_examples_folder_is_not_empty():
    assert EXAMPLES, "examples/*.json should hold at least one workflow"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_parses(path):
    graph = parse_graph(json.loads(path.read_text()), node_types(), deployment_limits())
    assert graph.entry_nodes and graph.sinks


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_against_the_json_schema(path, schema_validator):
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in schema_validator.iter_errors(json.loads(path.read_text()))]
    assert not errors


def test_json_schema_is_a_valid_draft_2020_12_schema(workflow_schema):
    assert workflow_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(workflow_schema)


def test_json_schema_accepts_the_full_valid_spec(schema_validator):
    assert not list(schema_validator.iter_errors(saga_spec()))


def test_json_schema_builtin_config_schemas_match_the_registry(workflow_schema):
    types = node_types()
    for name in BUILTIN_TYPES:
        published = dict(workflow_schema["$defs"][f"config_{name}"])
        published.pop("description", None)
        assert published == types[name].config_schema, name


def test_json_schema_fields_match_the_parser(workflow_schema):
    top = workflow_schema["properties"]
    assert set(top) == {"name", "description", "input_schema", "nodes", "edges", "output",
                        "deadline_s", "version", "tags"}
    assert set(workflow_schema["required"]) == {"name", "nodes"}
    defs = workflow_schema["$defs"]
    assert set(defs["node"]["properties"]) == {"id", "type", "name", "config", "retry",
                                               "timeout_s", "fallback", "compensate", "pool",
                                               "slots", "output_schema", "expected_s"}
    assert set(defs["retry"]["properties"]) == {"max_attempts", "backoff_s", "max_backoff_s",
                                                "jitter", "retry_on"}
    assert set(defs["edge"]["properties"]) == {"from", "to", "when"}
    assert defs["node_id"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]{0,63}$"
    assert defs["error_class"]["enum"] == ["execution", "timeout", "resource", "configuration",
                                           "cancelled"]


def _mutate(change):
    definition = copy.deepcopy(saga_spec())
    change(definition)
    return definition


INVALID_FOR_BOTH = {
    "missing name": lambda d: d.pop("name"),
    "blank name": lambda d: d.update(name="  "),
    "unknown top-level field": lambda d: d.update(triggers=[]),
    "no nodes": lambda d: d.update(nodes=[]),
    "node id starts with a digit": lambda d: d["nodes"][0].update(id="1start"),
    "node without type": lambda d: d["nodes"][0].pop("type"),
    "unknown node field": lambda d: d["nodes"][0].update(retries=2),
    "retry max_attempts 0": lambda d: d["nodes"][1]["retry"].update(max_attempts=0),
    "retry max_attempts 51": lambda d: d["nodes"][1]["retry"].update(max_attempts=51),
    "negative backoff": lambda d: d["nodes"][1]["retry"].update(backoff_s=-1),
    "jitter not a boolean": lambda d: d["nodes"][1]["retry"].update(jitter="yes"),
    "unknown retry_on class": lambda d: d["nodes"][1]["retry"].update(retry_on=["often"]),
    "zero timeout": lambda d: d["nodes"][1].update(timeout_s=0),
    "edge without to": lambda d: d["edges"][0].pop("to"),
    "unknown edge field": lambda d: d["edges"][0].update(label="go"),
    "non-string condition": lambda d: d["edges"][1].update(when=True),
    "zero deadline": lambda d: d.update(deadline_s=0),
    "output not strings": lambda d: d.update(output={"ok": 1}),
    "input_schema not a schema": lambda d: d.update(input_schema={"type": "nothing"}),
    "transform without output": lambda d: d["nodes"][3].update(config={}),
    "negative delay": lambda d: d["nodes"].append(node("w", "delay", config={"seconds": -1})),
}


@pytest.mark.parametrize("change", INVALID_FOR_BOTH.values(), ids=INVALID_FOR_BOTH.keys())
def test_invalid_spec_is_rejected_by_json_schema_and_parser(change, schema_validator):
    definition = _mutate(change)
    assert list(schema_validator.iter_errors(definition)), "the JSON Schema accepted it"
    with pytest.raises(GraphInvalid):
        parse(definition)


def test_a_node_names_a_pool_and_its_slots():
    spec = {"name": "p", "nodes": [{"id": "a", "type": "noop", "pool": "warehouse_db",
                                    "slots": 2}, {"id": "b", "type": "noop"}], "edges": []}
    graph = parse_graph(spec, node_types())

    assert (graph.nodes["a"].pool, graph.nodes["a"].slots) == ("warehouse_db", 2)
    assert (graph.nodes["b"].pool, graph.nodes["b"].slots) == (None, 1)


def test_bad_pool_fields_are_reported():
    spec = {"name": "p", "nodes": [{"id": "a", "type": "noop", "pool": "bad name"},
                                   {"id": "b", "type": "noop", "pool": "db", "slots": 0},
                                   {"id": "c", "type": "noop", "slots": 2}], "edges": []}
    with pytest.raises(GraphInvalid) as err:
        parse_graph(spec, node_types())

    messages = [str(p) for p in err.value.problems]
    assert any("node 'a' pool" in m for m in messages)
    assert any("node 'b' slots" in m and "1 to 1000" in m for m in messages)
    assert any("node 'c' slots" in m and "needs a pool" in m for m in messages)


def test_a_node_may_declare_its_output_schema_and_expected_duration():
    graph = parse({"name": "n", "nodes": [
        {"id": "a", "type": "noop", "expected_s": 5,
         "output_schema": {"type": "object", "required": ["ok"]}}], "edges": []})
    assert graph.nodes["a"].expected_s == 5.0
    assert graph.nodes["a"].output_schema == {"type": "object", "required": ["ok"]}


def test_an_output_schema_that_is_not_a_json_schema_is_refused_with_its_node():
    problem = only_problem({"name": "n", "nodes": [
        {"id": "a", "type": "noop", "output_schema": {"type": "banana"}}], "edges": []})
    assert problem.node == "a" and "output_schema" in problem.where
    assert "not a valid JSON Schema" in problem.message
