"""The exact difference between two workflow graphs (spec JSON). Pure Python, no Django.

Nodes are matched by id. A changed node lists every changed field as a dotted
path (`config.output.step`, `retry.max_attempts`) with its old and new value;
a field present on one side only shows `None` on the other (`present` says
which). Edges are matched by everything they say (from, to, when): an edge
whose condition changed is one edge removed and one added. Workflow-level
fields (name, input_schema, output, deadline_s, ...) are compared the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any
    # "both", "old" (removed from the node) or "new" (added to the node)
    present: str = "both"


@dataclass(frozen=True)
class NodeChange:
    id: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class GraphDiff:
    nodes_added: tuple[dict, ...] = ()
    nodes_removed: tuple[dict, ...] = ()
    nodes_changed: tuple[NodeChange, ...] = ()
    edges_added: tuple[dict, ...] = ()
    edges_removed: tuple[dict, ...] = ()
    workflow_changed: tuple[FieldChange, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.nodes_added or self.nodes_removed or self.nodes_changed
                    or self.edges_added or self.edges_removed or self.workflow_changed)

    def as_dict(self) -> dict:
        return asdict(self)


def diff_graphs(old: dict, new: dict) -> GraphDiff:
    """What changed from graph `old` to graph `new`."""
    old_nodes = _nodes_by_id(old)
    new_nodes = _nodes_by_id(new)
    changed = []
    for node_id in sorted(old_nodes.keys() & new_nodes.keys()):
        changes = tuple(field_changes(old_nodes[node_id], new_nodes[node_id]))
        if changes:
            changed.append(NodeChange(node_id, changes))
    old_edges = _edge_keys(old)
    new_edges = _edge_keys(new)
    top_old = {k: v for k, v in old.items() if k not in ("nodes", "edges")}
    top_new = {k: v for k, v in new.items() if k not in ("nodes", "edges")}
    return GraphDiff(
        nodes_added=tuple(new_nodes[n] for n in sorted(new_nodes.keys() - old_nodes.keys())),
        nodes_removed=tuple(old_nodes[n] for n in sorted(old_nodes.keys() - new_nodes.keys())),
        nodes_changed=tuple(changed),
        edges_added=tuple(new_edges[k] for k in sorted(new_edges.keys() - old_edges.keys())),
        edges_removed=tuple(old_edges[k] for k in sorted(old_edges.keys() - new_edges.keys())),
        workflow_changed=tuple(field_changes(top_old, top_new)),
    )


def field_changes(old: Any, new: Any, prefix: str = ""):
    """Yield a FieldChange per leaf that differs; objects are walked key by key."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys(), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            if a is _MISSING:
                yield FieldChange(path, None, b, "new")
            elif b is _MISSING:
                yield FieldChange(path, a, None, "old")
            else:
                yield from field_changes(a, b, path)
    elif old != new or type(old) is not type(new):
        yield FieldChange(prefix or "(value)", old, new)


def _nodes_by_id(spec: dict) -> dict[str, dict]:
    return {n["id"]: n for n in spec.get("nodes") or [] if isinstance(n, dict) and "id" in n}


def _edge_keys(spec: dict) -> dict[tuple, dict]:
    keys = {}
    for edge in spec.get("edges") or []:
        if isinstance(edge, dict):
            keys[(str(edge.get("from")), str(edge.get("to")),
                  repr(sorted((k, repr(v)) for k, v in edge.items()
                              if k not in ("from", "to"))))] = edge
    return keys
