"""Pure decisions of the execution protocol: no Django, no database.

`advance` resolves which nodes became ready or skipped after some nodes
finished; `retry_delay` decides back-off; `compensation_order` lists what to
undo; `execution_output` builds the result. All take plain data.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from apps.engine.statuses import TERMINAL_RUN
from apps.nodes.expressions import (
    ExpressionError,
    evaluate,
    evaluate_condition,
    is_cheap,
    needs_sandbox,
)
from apps.workflows.graph import COSTLY_OUTPUT, Edge, Graph, RetryPolicy

RAN = TERMINAL_RUN - {"skipped"}
# An edge whose condition is not proven cheap is not evaluated inside the
# transaction that settles its source: its target is made ready, and the worker
# that leases the target evaluates the condition outside any transaction, then
# runs the node or reports it skipped (`has_costly_condition`, `gate_conditions`).
GATED = "gated"


@dataclass
class NodeState:
    status: str
    output: object = None
    # False for a run that finished without its handler starting (cancelled while ready).
    ran: bool = True


@dataclass
class Plan:
    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The class of the first error: configuration, or timeout / resource when a
    # condition's sandboxed evaluation ran out of budget or lost its process.
    error_class: str = "configuration"


def expression_scope(inputs: dict, state: Mapping[str, NodeState]) -> dict:
    """What CEL sees: `input` and `nodes.<id>.output` / `.status` of the nodes that ran.

    A node that did not run (skipped, not reached yet, cancelled before it
    started) is absent, so `has(nodes.<id>)` means "it ran and finished";
    `has(nodes.<id>.output)` means "it ran and succeeded".
    """
    nodes = {}
    for node_id, node in state.items():
        if node.status in RAN and node.ran:
            entry = {"status": node.status}
            if node.status == "succeeded":
                entry["output"] = node.output
            nodes[node_id] = entry
    return {"input": inputs, "nodes": nodes}


def stand_in(graph: Graph, node_id: str, status: Mapping[str, str]) -> str:
    """The node whose outcome resolves `node_id`'s outgoing edges.

    A node that failed for good and has a fallback hands its outgoing edges to
    the fallback (and on down a chain of fallbacks): its successors wait for
    the fallback, and run if it succeeds.
    """
    while status.get(node_id) == "failed" and graph.nodes[node_id].fallback:
        node_id = graph.nodes[node_id].fallback
    return node_id


def _edge_taken(graph: Graph, edge: Edge, status: Mapping[str, str], scope: dict,
                plan: Plan) -> bool | str | None:
    """None while the source is unfinished; GATED when a costly condition decides;
    else whether the edge is taken."""
    if edge.on_failure:
        source = status.get(edge.source)
        return None if source not in TERMINAL_RUN else source == "failed"
    source = status.get(edge.source)
    if source == "failed":
        source = status.get(stand_in(graph, edge.source, status))
    if source not in TERMINAL_RUN:
        return None
    if source != "succeeded":
        return False
    if edge.when is None:
        return True
    if needs_sandbox(edge.when):
        return GATED
    try:
        return evaluate_condition(edge.when, scope)
    except ExpressionError as exc:
        if not plan.errors:
            plan.error_class = exc.error_class
        plan.errors.append(f"edge {edge.source} → {edge.target}: {exc}")
        return False


def advance(graph: Graph, state: Mapping[str, NodeState], inputs: dict,
            changed: Iterable[str]) -> Plan:
    """Resolve the successors of `changed` nodes, propagating skips to a fixpoint.

    1. A candidate is a forward node with no run yet whose every incoming link
       (edge or fallback link) is resolved.
    2. It is ready if any link is taken (or GATED: decided when it runs), else skipped.
    3. A newly skipped node makes its own successors candidates (skips propagate).
    """
    plan = Plan()
    status = {node_id: node.status for node_id, node in state.items()}
    scope = expression_scope(inputs, state)
    compensators = graph.compensators
    work = [e.target for node_id in changed for e in _edges_resolved_by(graph, node_id)]
    while work:
        node_id = work.pop(0)
        if node_id in status or node_id in compensators:
            continue
        results = [_edge_taken(graph, e, status, scope, plan)
                   for e in graph.incoming(node_id)]
        if any(r is None for r in results):
            continue
        if any(results):
            status[node_id] = "ready"
            plan.ready.append(node_id)
        else:
            status[node_id] = "skipped"
            plan.skipped.append(node_id)
            work.extend(e.target for e in graph.outgoing(node_id))
    return plan


def has_costly_condition(graph: Graph, node_id: str) -> bool:
    """Does a condition that is not proven cheap lead into `node_id`? (Asked for
    every run claimed or fused: remembered per parsed graph, which never changes.)"""
    key = (id(graph), node_id)
    known = _COSTLY.get(key)
    if known is not None and known[0] is graph:
        return known[1]
    costly = any(e.when is not None and needs_sandbox(e.when) for e in graph.incoming(node_id))
    if len(_COSTLY) > 50_000:
        _COSTLY.clear()
    _COSTLY[key] = (graph, costly)
    return costly


_COSTLY: dict[tuple[int, str], tuple[Graph, bool]] = {}


def gate_conditions(graph: Graph, node_id: str, status: Mapping[str, str],
                    scope: dict) -> tuple[str, ...]:
    """The costly conditions that decide whether a ready `node_id` runs, or () when
    none has to (it has none, or another of its links is taken anyway)."""
    if not has_costly_condition(graph, node_id):
        return ()
    plan = Plan()
    links = graph.incoming(node_id)
    results = [_edge_taken(graph, e, status, scope, plan) for e in links]
    if any(r is True for r in results):
        return ()
    return tuple(e.when for e, r in zip(links, results, strict=True) if r == GATED)


def gate_open(conditions: Iterable[str], scope: dict) -> bool:
    """Whether any costly condition holds: evaluated by the worker, outside any
    transaction, under the expression budget (may raise ExpressionError)."""
    return any(evaluate_condition(source, scope) for source in conditions)


def _edges_resolved_by(graph: Graph, node_id: str) -> Iterable[Edge]:
    """`node_id`'s own outgoing links plus the edges it took over as a fallback."""
    owners = list(graph.fallback_owners.get(node_id, ()))
    if not owners:
        return graph.outgoing(node_id)
    edges = list(graph.outgoing(node_id))
    while owners:
        owner = owners.pop()
        edges.extend(e for e in graph.outgoing(owner) if not e.on_failure)
        owners.extend(graph.fallback_owners.get(owner, ()))
    return edges


def is_finished(graph: Graph, status: Mapping[str, str]) -> bool:
    return all(status.get(n) in TERMINAL_RUN for n in graph.forward_nodes)


def retry_delay(policy: RetryPolicy, attempt: int, error_class: str, retryable: bool,
                rng: random.Random | None = None) -> float | None:
    """Seconds before the next attempt, or None when the node has failed for good.

    Exponential back-off (backoff_s · 2^(attempt-1), capped at max_backoff_s);
    with jitter the wait is drawn from [delay/2, delay] so retries spread out.
    """
    if not retryable or error_class not in policy.retry_on or attempt >= policy.max_attempts:
        return None
    delay = min(policy.max_backoff_s, policy.backoff_s * (2 ** (attempt - 1)))
    if policy.jitter and delay > 0:
        delay = (rng or random).uniform(delay / 2, delay)
    return delay


def compensation_order(graph: Graph, succeeded_in_order: Iterable[str]) -> list[str]:
    """Compensating nodes of the completed steps, last completed first."""
    return [graph.nodes[n].compensate for n in reversed(list(succeeded_in_order))
            if n in graph.nodes and graph.nodes[n].compensate]


def execution_output(graph: Graph, state: Mapping[str, NodeState], inputs: dict) -> dict:
    """The graph's `output` expressions, or the outputs of the succeeded sink nodes."""
    scope = expression_scope(inputs, state)
    if graph.output:
        costly = [key for key, expr in graph.output.items() if not is_cheap(expr)]
        if costly:  # a version stored before outputs had to be cheap: never in the transaction
            raise ExpressionError(f"{costly[0]} {COSTLY_OUTPUT}", error_class="configuration")
        return {key: evaluate(expr, scope) for key, expr in graph.output.items()}
    return {n: state[n].output for n in graph.sinks
            if n in state and state[n].status == "succeeded"}
