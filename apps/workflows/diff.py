"""What changed between two definitions: nodes, edges and top-level fields (pure)."""

from __future__ import annotations


def _nodes(spec: dict) -> dict[str, dict]:
    return {n["id"]: n for n in spec.get("nodes") or [] if isinstance(n, dict) and "id" in n}


def _edges(spec: dict) -> dict[str, dict]:
    return {f"{e.get('from')}->{e.get('to')}": e for e in spec.get("edges") or []
            if isinstance(e, dict)}


def _compare(old: dict, new: dict) -> dict[str, list[str]]:
    return {"added": sorted(new.keys() - old.keys()),
            "removed": sorted(old.keys() - new.keys()),
            "changed": sorted(k for k in old.keys() & new.keys() if old[k] != new[k])}


def diff_definitions(old: dict, new: dict) -> dict:
    """Node ids and edge ids (`from->to`) added, removed or changed, and the other
    top-level fields (name, input_schema, output, …) whose value differs."""
    fields = (old.keys() | new.keys()) - {"nodes", "edges"}
    return {"nodes": _compare(_nodes(old), _nodes(new)),
            "edges": _compare(_edges(old), _edges(new)),
            "fields": sorted(f for f in fields if old.get(f) != new.get(f))}
