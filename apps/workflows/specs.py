"""Graph parsing bound to this deployment's node types and limits, with a cache."""

import dataclasses
import hashlib
import json

from django.conf import settings

from apps.nodes.registry import node_types
from apps.workflows.graph import Graph, Limits, parse_graph


def limits() -> Limits:
    cfg = settings.BRAID
    return Limits(max_bytes=cfg["MAX_DEFINITION_BYTES"], max_nodes=cfg["MAX_NODES"],
                  max_timeout_s=cfg["MAX_NODE_TIMEOUT_S"])


def validate_definition(spec) -> Graph:
    """Parse `spec` or raise GraphInvalid listing every problem."""
    return parse_graph(spec, node_types(), limits())


def load_definition(spec) -> Graph:
    """Parse a stored version's graph without re-validating it against today's
    limits, node types and config checks: it was valid when published. A node
    today's code cannot run carries a `problem`, and only its runs fail (as
    `configuration`), so claims, completions and the reaper go on for the rest."""
    return parse_graph(spec, node_types(), dataclasses.replace(limits(), trusted=True))


def checksum(spec: dict) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def graph_of(version) -> Graph:
    """The parsed graph of a version object (parsed once per process)."""
    graph = _cache.get(version.pk)
    if graph is None:
        graph = _remember(version.pk, load_definition(version.graph))
    return graph


def graph_for(version_id: int) -> Graph:
    """The parsed graph of a version id; reads the database only on a cache miss."""
    graph = _cache.get(version_id)
    if graph is None:
        from apps.workflows.models import WorkflowVersion

        spec = WorkflowVersion.objects.values_list("graph", flat=True).get(pk=version_id)
        graph = _remember(version_id, load_definition(spec))
    return graph


# Versions are immutable, so a parsed graph never goes stale.
_cache: dict[int, Graph] = {}


def _remember(version_id: int, graph: Graph) -> Graph:
    if len(_cache) > 2048:
        _cache.clear()
    _cache[version_id] = graph
    return graph
