"""Graph spec v1: parse a workflow definition and report *every* problem.

Pure Python, no Django: node types and limits are passed in, so this module
is tested without a database. The published JSON Schema of the same spec is
`schema/workflow-v1.schema.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import jsonschema

from apps.nodes.contract import ERROR_CLASSES
from apps.nodes.expressions import check_expression, is_cheap
from apps.nodes.payloads import MAX_DEPTH, depth_over

NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ATTEMPTS = 50


class NodeTypeSpec(Protocol):
    def validate_config(self, config: dict) -> list[str]: ...


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 256 * 1024
    max_nodes: int = 500
    max_timeout_s: float = 900.0
    # Loading a stored version: it was valid when published, so today's limits,
    # node types and config checks do not refuse it. What today's code cannot
    # run becomes that node's `problem`, and only its runs fail.
    trusted: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    jitter: bool = True
    retry_on: tuple[str, ...] = ("execution", "timeout", "resource")


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    config: dict = field(default_factory=dict, hash=False, compare=False)
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float | None = None
    fallback: str | None = None
    compensate: str | None = None
    # A named resource pool this node needs `slots` of while it runs.
    pool: str | None = None
    slots: int = 1
    # Whether the definition gave `retry` (else the execution's queue policy applies).
    retry_set: bool = False
    # Why this node cannot run on this code (trusted loads only); its runs fail
    # as `configuration` with this message.
    problem: str | None = field(default=None, compare=False)
    # What its output must look like (JSON Schema): an operator's skip-with-output
    # is checked against it. And how long it usually takes (the stuck-node alert).
    output_schema: dict | None = field(default=None, hash=False, compare=False)
    expected_s: float | None = None


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    when: str | None = None
    # A fallback link: taken when `source` failed for good, never written by users.
    on_failure: bool = False


@dataclass(frozen=True)
class Problem:
    where: str
    message: str
    node: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_dict(self) -> dict:
        return {"where": self.where, "node": self.node, "message": self.message}


class GraphInvalid(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Graph:
    name: str
    nodes: dict[str, Node]
    edges: tuple[Edge, ...]
    input_schema: dict | None = None
    output: dict[str, str] | None = None
    deadline_s: float | None = None
    _incoming: dict[str, tuple[Edge, ...]] = field(default_factory=dict, repr=False)
    _outgoing: dict[str, tuple[Edge, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        links = list(self.edges) + [
            Edge(n.id, n.fallback, on_failure=True) for n in self.nodes.values() if n.fallback
        ]
        # One pass over the links (linear: a big definition is refused in milliseconds).
        incoming: dict[str, list[Edge]] = {node_id: [] for node_id in self.nodes}
        outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in self.nodes}
        for edge in links:
            incoming[edge.target].append(edge)
            outgoing[edge.source].append(edge)
        for node_id in self.nodes:
            self._incoming[node_id] = tuple(incoming[node_id])
            self._outgoing[node_id] = tuple(outgoing[node_id])

    def incoming(self, node_id: str) -> tuple[Edge, ...]:
        """Edges and fallback links into `node_id`."""
        return self._incoming[node_id]

    def outgoing(self, node_id: str) -> tuple[Edge, ...]:
        return self._outgoing[node_id]

    @cached_property
    def fallback_owners(self) -> dict[str, tuple[str, ...]]:
        """For each fallback node, the nodes it stands in for (their edges become its own)."""
        owners: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.fallback:
                owners.setdefault(node.fallback, []).append(node.id)
        return {fallback: tuple(ids) for fallback, ids in owners.items()}

    @property
    def compensators(self) -> frozenset[str]:
        return frozenset(n.compensate for n in self.nodes.values() if n.compensate)

    @property
    def forward_nodes(self) -> tuple[str, ...]:
        """Nodes of the normal flow (compensating nodes run only when compensating)."""
        comp = self.compensators
        return tuple(n for n in self.nodes if n not in comp)

    @property
    def entry_nodes(self) -> tuple[str, ...]:
        return tuple(n for n in self.forward_nodes if not self._incoming[n])

    @property
    def sinks(self) -> tuple[str, ...]:
        return tuple(
            n for n in self.forward_nodes
            if not any(not e.on_failure for e in self._outgoing[n])
        )


def parse_graph(spec: Any, node_types: Mapping[str, NodeTypeSpec],
                limits: Limits = Limits()) -> Graph:
    """Build a Graph from a definition, or raise GraphInvalid listing every problem."""
    problems: list[Problem] = []
    if not isinstance(spec, dict):
        raise GraphInvalid([Problem("definition", "must be a JSON object")])
    if not limits.trusted:
        _check_node_count(spec.get("nodes"), limits)  # first: it costs nothing
        _check_size_and_depth(spec, limits)

    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem("name", "is required (a non-empty string)"))
    input_schema = _input_schema(spec.get("input_schema"), problems)
    deadline_s = _positive_number(spec.get("deadline_s"), "deadline_s", problems, None)
    nodes = _nodes(spec.get("nodes"), node_types, limits, problems)
    edges = _edges(spec.get("edges", []), nodes, problems, check=not limits.trusted)
    output = _output(spec.get("output"), problems, check=not limits.trusted)
    _links(nodes, edges, problems)
    if nodes:
        # On the sound part of the graph, so a cycle is reported alongside other problems.
        _structure(_sound_links(nodes), edges, problems)
    for key in sorted(set(spec) - {"name", "description", "input_schema", "nodes", "edges",
                                   "output", "deadline_s", "version", "tags"}):
        problems.append(Problem(key, "is not a field of the workflow spec"))
    if problems:
        raise GraphInvalid(problems)
    return Graph(name=name, nodes=nodes, edges=tuple(edges), input_schema=input_schema,
                 output=output, deadline_s=deadline_s)


def _check_node_count(raw: Any, limits: Limits) -> None:
    """Past MAX_NODES, stop: listing the problems of thousands of nodes helps nobody."""
    if isinstance(raw, list) and len(raw) > limits.max_nodes:
        raise GraphInvalid([Problem("nodes", f"has {len(raw)} nodes, more than the limit of "
                                    f"{limits.max_nodes} (BRAID_MAX_NODES)")])


def _check_size_and_depth(spec: dict, limits: Limits) -> None:
    """Size first (the C encoder, fast), then the depth walk on what is small enough."""
    too_deep = GraphInvalid([Problem("definition", f"is nested more than {MAX_DEPTH} levels "
                                     "deep")])
    try:
        size = len(json.dumps(spec, separators=(",", ":"), default=str))
    except RecursionError:
        raise too_deep from None
    if size > limits.max_bytes:
        raise GraphInvalid([Problem(
            "definition", f"is {size} bytes, more than the limit of {limits.max_bytes}")])
    if depth_over(spec):
        raise too_deep


def _where(index: int, node_id: Any) -> str:
    return f"node {node_id!r}" if isinstance(node_id, str) and node_id else f"nodes[{index}]"


def _input_schema(schema: Any, problems: list[Problem]) -> dict | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        problems.append(Problem("input_schema", "must be a JSON Schema object"))
        return None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        problems.append(Problem("input_schema", f"is not a valid JSON Schema: {exc.message}"))
    return schema


def _positive_number(value: Any, where: str, problems: list[Problem], node: str | None,
                     maximum: float | None = None) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        problems.append(Problem(where, f"must be a positive number, not {value!r}", node))
        return None
    if maximum is not None and value > maximum:
        problems.append(Problem(where, f"is {value}, more than the limit of {maximum}", node))
    return float(value)


def _nodes(raw: Any, node_types: Mapping[str, NodeTypeSpec], limits: Limits,
           problems: list[Problem]) -> dict[str, Node]:
    if not isinstance(raw, list) or not raw:
        problems.append(Problem("nodes", "must be a non-empty list"))
        return {}
    nodes: dict[str, Node] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(Problem(f"nodes[{index}]", "must be an object"))
            continue
        node_id = item.get("id")
        where = _where(index, node_id)
        if not isinstance(node_id, str) or not NODE_ID.match(node_id):
            problems.append(Problem(where, "id must be a name of letters, digits and _ "
                                    "(not starting with a digit), at most 64 long"))
            continue
        if node_id in nodes:
            problems.append(Problem(where, "duplicate id", node_id))
            continue
        for key in sorted(set(item) - {"id", "type", "name", "config", "retry", "timeout_s",
                                       "fallback", "compensate", "pool", "slots",
                                       "output_schema", "expected_s"}):
            problems.append(Problem(where, f"unknown field {key!r}", node_id))
        node_type = item.get("type")
        config = item.get("config", {})
        if not isinstance(config, dict):
            problems.append(Problem(where, "config must be an object", node_id))
            config = {}
        runnable: list[str] = []  # what today's code says about this node's type and config
        handler = node_types.get(node_type) if isinstance(node_type, str) else None
        if handler is None:
            known = ", ".join(sorted(node_types))
            runnable.append(f"unknown type {node_type!r} (known: {known})")
        else:
            runnable += handler.validate_config(config)
        if not limits.trusted:
            problems.extend(Problem(where, message, node_id) for message in runnable)
        nodes[node_id] = Node(
            id=node_id,
            type=node_type if isinstance(node_type, str) else "",
            config=config,
            retry=_retry(item.get("retry"), where, node_id, problems),
            retry_set="retry" in item,
            timeout_s=_positive_number(item.get("timeout_s"), f"{where} timeout_s", problems,
                                       node_id, None if limits.trusted else limits.max_timeout_s),
            fallback=_ref(item.get("fallback"), f"{where} fallback", node_id, problems),
            compensate=_ref(item.get("compensate"), f"{where} compensate", node_id, problems),
            **_pool(item, where, node_id, problems),
            problem="; ".join(runnable) if limits.trusted and runnable else None,
            output_schema=_output_schema(item.get("output_schema"), where, node_id, problems),
            expected_s=_positive_number(item.get("expected_s"), f"{where} expected_s", problems,
                                        node_id, None),
        )
    return nodes


def _output_schema(value: Any, where: str, node_id: str,
                   problems: list[Problem]) -> dict | None:
    if value is None:
        return None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(value, dict):
        problems.append(Problem(f"{where} output_schema", "must be a JSON Schema object",
                                node_id))
        return None
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        problems.append(Problem(f"{where} output_schema", f"is not a valid JSON Schema: "
                                f"{exc.message}", node_id))
        return None
    return value


def _ref(value: Any, where: str, node_id: str, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem(where, "must be a node id", node_id))
        return None
    return value


def _pool(item: dict, where: str, node_id: str, problems: list[Problem]) -> dict:
    pool, slots = item.get("pool"), item.get("slots", 1)
    if pool is None:
        if "slots" in item:
            problems.append(Problem(f"{where} slots", "slots needs a pool", node_id))
        return {}
    if not isinstance(pool, str) or not NODE_ID.match(pool):
        problems.append(Problem(f"{where} pool", "must be a pool name (letters, digits, _)",
                                node_id))
        return {}
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1000:
        problems.append(Problem(f"{where} slots", "must be a whole number from 1 to 1000",
                                node_id))
        return {}
    return {"pool": pool, "slots": slots}


def _retry(raw: Any, where: str, node_id: str, problems: list[Problem]) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    if not isinstance(raw, dict):
        problems.append(Problem(f"{where} retry", "must be an object", node_id))
        return RetryPolicy()
    before = len(problems)
    attempts = raw.get("max_attempts", 1)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
            1 <= attempts <= MAX_ATTEMPTS):
        problems.append(Problem(f"{where} retry.max_attempts",
                                f"must be a whole number from 1 to {MAX_ATTEMPTS}", node_id))
    numbers = {}
    for key, default in (("backoff_s", 0.5), ("max_backoff_s", 30.0)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            problems.append(Problem(f"{where} retry.{key}", "must be a number ≥ 0", node_id))
            value = default
        numbers[key] = float(value)
    if numbers["max_backoff_s"] < numbers["backoff_s"]:
        problems.append(Problem(f"{where} retry.max_backoff_s", "must be ≥ backoff_s", node_id))
    jitter = raw.get("jitter", True)
    if not isinstance(jitter, bool):
        problems.append(Problem(f"{where} retry.jitter", "must be true or false", node_id))
    retry_on = raw.get("retry_on", list(RetryPolicy.retry_on))
    if not isinstance(retry_on, list) or any(c not in ERROR_CLASSES for c in retry_on):
        problems.append(Problem(f"{where} retry.retry_on",
                                f"must be a list of {', '.join(ERROR_CLASSES)}", node_id))
        retry_on = list(RetryPolicy.retry_on)
    for key in sorted(set(raw) - {"max_attempts", "backoff_s", "max_backoff_s", "jitter",
                                  "retry_on"}):
        problems.append(Problem(f"{where} retry", f"unknown field {key!r}", node_id))
    if len(problems) > before:
        return RetryPolicy()
    return RetryPolicy(attempts, numbers["backoff_s"], numbers["max_backoff_s"], jitter,
                       tuple(retry_on))


def _edges(raw: Any, nodes: dict[str, Node], problems: list[Problem],
           check: bool = True) -> list[Edge]:
    if not isinstance(raw, list):
        problems.append(Problem("edges", "must be a list"))
        return []
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(Problem(f"edges[{index}]", "must be an object"))
            continue
        source, target, when = item.get("from"), item.get("to"), item.get("when")
        where = f"edge {source} → {target}"
        ok = True
        for end, value in (("from", source), ("to", target)):
            if not isinstance(value, str) or value not in nodes:
                problems.append(Problem(where, f"dangling: {end} {value!r} is not a node",
                                        value if isinstance(value, str) else None))
                ok = False
        for key in sorted(set(item) - {"from", "to", "when"}):
            problems.append(Problem(where, f"unknown field {key!r}"))
        if when is not None and (check or not isinstance(when, str)):
            for message in check_expression(when) if isinstance(when, str) else [
                    "when must be a CEL string"]:
                problems.append(Problem(where, f"bad condition: {message}", source))
        if ok and (source, target) in seen:
            problems.append(Problem(where, "duplicate edge", source))
            ok = False
        if ok:
            seen.add((source, target))
            edges.append(Edge(source, target, when))
    return edges


COSTLY_OUTPUT = ("uses a comprehension macro (map, filter, all, exists, exists_one): "
                 "compute it in a transform node and reference nodes.<id>.output here")


def _output(raw: Any, problems: list[Problem], check: bool = True) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(Problem("output", "must map output keys to CEL expressions"))
        return None
    for key, expr in raw.items():
        if not check and isinstance(expr, str):
            continue  # a stored version: a bad expression fails the run that evaluates it
        messages = check_expression(expr) if isinstance(expr, str) else ["must be a CEL string"]
        if not messages and not is_cheap(expr):
            # The output is evaluated in the transaction that finishes the
            # execution, so it must be proven cheap there; a transform node is
            # leased and budgeted outside any transaction.
            messages = [COSTLY_OUTPUT]
        for message in messages:
            problems.append(Problem(f"output.{key}", f"bad expression: {message}"))
    return raw


def _links(nodes: dict[str, Node], edges: list[Edge], problems: list[Problem]) -> None:
    """Fallback and compensate targets must exist and play only their one role."""
    targets_in = {e.target for e in edges}
    touched = targets_in | {e.source for e in edges}
    fallbacks = {n.fallback for n in nodes.values() if n.fallback}
    for node in nodes.values():
        for role in ("fallback", "compensate"):
            target = getattr(node, role)
            if target is None:
                continue
            where = f"node {node.id!r} {role}"
            if target not in nodes:
                problems.append(Problem(where, f"unknown {role} target {target!r}", node.id))
            elif target == node.id:
                problems.append(Problem(where, "a node cannot be its own " + role, node.id))
            elif role == "fallback" and target in targets_in:
                problems.append(Problem(where, f"fallback target {target!r} must have no "
                                        "incoming edges (only the failure starts it)", node.id))
            elif role == "compensate" and (target in touched or target in fallbacks):
                problems.append(Problem(where, f"compensating node {target!r} must have no "
                                        "edges and be no fallback: it runs only when "
                                        "compensating", node.id))
    owners: dict[str, str] = {}
    for node in nodes.values():
        if node.compensate in owners:
            problems.append(Problem(f"node {node.id!r} compensate", f"{node.compensate!r} "
                                    f"already compensates {owners[node.compensate]!r}", node.id))
        elif node.compensate:
            owners[node.compensate] = node.id
    comp = set(owners)
    for node in nodes.values():
        if node.id in comp and (node.fallback or node.compensate):
            problems.append(Problem(f"node {node.id!r}", "a compensating node cannot have its "
                                    "own fallback or compensate", node.id))


def _sound_links(nodes: dict[str, Node]) -> dict[str, Node]:
    """`nodes` without fallback/compensate links to unknown targets or to themselves
    (those are reported by `_links`), so the structure check can still run."""
    return {
        node_id: dataclasses.replace(
            node,
            fallback=node.fallback if node.fallback in nodes and node.fallback != node_id
            else None,
            compensate=node.compensate if node.compensate in nodes
            and node.compensate != node_id else None)
        for node_id, node in nodes.items()
    }


def _structure(nodes: dict[str, Node], edges: list[Edge], problems: list[Problem]) -> None:
    """Cycles and unreachable nodes, over edges and fallback links."""
    graph = Graph(name="", nodes=nodes, edges=tuple(edges))
    cycle = _find_cycle(graph)
    if cycle:
        path = " → ".join(cycle)
        problems.append(Problem(f"node {cycle[0]!r}", f"cycle: {path}", cycle[0]))
        return
    entries = graph.entry_nodes
    if not entries:
        problems.append(Problem("nodes", "no entry node (every node has an incoming edge)"))
    seen: set[str] = set()
    stack = list(entries)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(e.target for e in graph.outgoing(current))
        if nodes[current].compensate:
            stack.append(nodes[current].compensate)
    for node_id in nodes:
        if node_id not in seen:
            problems.append(Problem(f"node {node_id!r}", "unreachable from any entry node",
                                    node_id))


def _find_cycle(graph: Graph) -> list[str] | None:
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph.nodes, white)
    parent: dict[str, str] = {}
    for root in graph.nodes:
        if color[root] != white:
            continue
        stack = [(root, iter(graph.outgoing(root)))]
        color[root] = grey
        while stack:
            node, children = stack[-1]
            edge = next(children, None)
            if edge is None:
                color[node] = black
                stack.pop()
                continue
            child = edge.target
            if color[child] == grey:
                cycle = [child]
                while node != child:
                    cycle.append(node)
                    node = parent[node]
                cycle.append(child)
                return list(reversed(cycle))
            if color[child] == white:
                parent[child] = node
                color[child] = grey
                stack.append((child, iter(graph.outgoing(child))))
    return None
