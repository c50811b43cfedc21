"""Pure decisions of the execution protocol: no Django, no database.

`advance` resolves which nodes became ready or skipped after some nodes
finished; `retry_delay` decides back-off; `compensation_order` lists what to
undo; `execution_output` builds the result. All take plain data.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from apps.nodes.expressions import ExpressionError, evaluate, evaluate_condition, needs_sandbox
from apps.workflows.graph import Edge, Graph, RetryPolicy

TERMINAL_RUN = frozenset({"succeeded", "failed", "skipped", "cancelled"})
# An edge whose condition is not proven cheap: it is not evaluated inside the
# transaction that settles its source. Its target is made ready, and the worker
# that runs the target decides, outside any transaction, whether it runs or is
# skipped (`gate_edges`, `gate_open`).
GATED = "gated"


@dataclass
class NodeState:
    status: str
    output: object = None


@dataclass
class Plan:
    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The class of the first error: configuration, or timeout / resource when a
    # condition's sandboxed evaluation ran out of budget or lost its process.
    error_class: str = "configuration"


def expression_scope(inputs: dict, state: Mapping[str, NodeState]) -> dict:
    """What CEL sees: `input` and `nodes.<id>.output` / `.status` of finished nodes."""
    nodes = {}
    for node_id, node in state.items():
        if node.status in TERMINAL_RUN:
            entry = {"status": node.status}
            if node.status == "succeeded":
                entry["output"] = node.output
            nodes[node_id] = entry
    return {"input": inputs, "nodes": nodes}


def _edge_taken(edge: Edge, status: Mapping[str, str], scope: dict,
                plan: Plan) -> bool | str | None:
    """None while the source is unfinished; GATED if a costly condition decides;
    else whether the edge is taken."""
    source = status.get(edge.source)
    if source not in TERMINAL_RUN:
        return None
    if source == "succeeded" and edge.when is not None and needs_sandbox(edge.when):
        return GATED
    try:
        return _link_taken(edge, source, scope)
    except ExpressionError as exc:
        if not plan.errors:
            plan.error_class = exc.error_class
        plan.errors.append(f"edge {edge.source} → {edge.target}: {exc}")
        return False


def _link_taken(edge: Edge, source: str | None, scope: dict) -> bool:
    """Whether a link from a finished source is taken (may raise ExpressionError)."""
    if edge.on_failure:
        return source == "failed"
    if source != "succeeded":
        return False
    return edge.when is None or evaluate_condition(edge.when, scope)


def gate_edges(graph: Graph, node_id: str) -> tuple[Edge, ...]:
    """The incoming links of `node_id` if a costly condition is among them, else ()."""
    links = graph.incoming(node_id)
    if any(e.when is not None and needs_sandbox(e.when) for e in links):
        return links
    return ()


def gate_open(links: Iterable[Edge], scope: dict) -> bool:
    """Whether any of `links` is taken, cheap conditions first (outside transactions:
    costly conditions run in the sandbox under the budget; may raise ExpressionError)."""
    status = {node_id: entry.get("status") for node_id, entry in scope["nodes"].items()}
    ordered = sorted(links, key=lambda e: e.when is not None and needs_sandbox(e.when))
    return any(_link_taken(e, status.get(e.source), scope) for e in ordered)


def advance(graph: Graph, state: Mapping[str, NodeState], inputs: dict,
            changed: Iterable[str]) -> Plan:
    """Resolve the successors of `changed` nodes, propagating skips to a fixpoint.

    1. A candidate is a forward node with no run yet whose every incoming link
       (edge or fallback link) is resolved.
    2. It is ready if any link is taken (or a costly condition, GATED, will decide
       when it runs), else skipped.
    3. A newly skipped node makes its own successors candidates (skips propagate).
    """
    plan = Plan()
    status = {node_id: node.status for node_id, node in state.items()}
    scope = expression_scope(inputs, state)
    compensators = graph.compensators
    work = [e.target for node_id in changed for e in graph.outgoing(node_id)]
    while work:
        node_id = work.pop(0)
        if node_id in status or node_id in compensators:
            continue
        results = [_edge_taken(e, status, scope, plan) for e in graph.incoming(node_id)]
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
        return {key: evaluate(expr, scope) for key, expr in graph.output.items()}
    return {n: state[n].output for n in graph.sinks
            if n in state and state[n].status == "succeeded"}
