"""Graph parsing bound to this deployment's node types and limits, with a cache."""

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


def checksum(spec: dict) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def graph_of(version) -> Graph:
    return _graph_cached(version.pk, version)


_cache: dict[int, Graph] = {}


def _graph_cached(version_id: int, version) -> Graph:
    graph = _cache.get(version_id)
    if graph is None:
        graph = validate_definition(version.graph)
        if len(_cache) > 2048:
            _cache.clear()
        _cache[version_id] = graph
    return graph
