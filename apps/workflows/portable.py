"""A version as a JSON document, and back: move a workflow between Braid deployments."""

from __future__ import annotations

import copy

from apps.workflows.errors import DefinitionInvalid
from apps.workflows.models import WorkflowVersion
from apps.workflows.specs import checksum

FORMAT = "braid.workflow-version/1"


def export_version(version: WorkflowVersion) -> dict:
    definition = version.definition
    return {
        "format": FORMAT,
        "workflow": {"slug": definition.slug, "name": definition.name,
                     "description": definition.description},
        "version": {"number": version.number, "checksum": version.checksum,
                    "notes": version.notes,
                    "author": version.author.get_username() if version.author else None,
                    "created_at": version.created_at.isoformat()},
        "graph": copy.deepcopy(version.graph),  # never hand out the cached original
    }


def import_version(document, *, slug: str | None = None, author=None,
                   make_current: bool = False) -> WorkflowVersion:
    """Publish an exported version (validated like any publish); the same graph again
    returns the existing version. `slug` imports it under another workflow."""
    from apps.workflows.services import publish_version

    problems = []
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DefinitionInvalid(f"not an exported workflow version (format {FORMAT!r})")
    graph, meta = document.get("graph"), document.get("version") or {}
    workflow = document.get("workflow") or {}
    if not isinstance(graph, dict):
        problems.append({"where": "graph", "node": None, "message": "must be an object"})
    elif meta.get("checksum") and meta["checksum"] != checksum(graph):
        problems.append({"where": "version.checksum", "node": None,
                         "message": "does not match the graph (edited or damaged)"})
    target = slug or workflow.get("slug")
    if not target:
        problems.append({"where": "workflow.slug", "node": None, "message": "is required"})
    if problems:
        raise DefinitionInvalid("the document cannot be imported", problems)
    notes = meta.get("notes") or ""
    if meta.get("number"):
        notes = (notes + f" (imported from {workflow.get('slug')} v{meta['number']})").strip()
    return publish_version(target, graph, author=author, notes=notes,
                           name=workflow.get("name"), description=workflow.get("description"),
                           make_current=make_current)
