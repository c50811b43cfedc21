"""Reads of the engine floor, shaped as plain JSON-ready dicts (CLI, API, console)."""

from __future__ import annotations

import uuid

from apps.engine.diagnosis import why_execution
from apps.engine.errors import InputInvalid, NotFound
from apps.engine.models import Execution, NodeRun

NODE_RUN_FIELDS = ("id", "node_id", "attempt", "status", "compensation", "output",
                   "error_class", "error_message", "retryable", "worker", "created_at",
                   "started_at", "finished_at", "duration_ms")


def _iso(value):
    return value.isoformat() if value is not None else None


def _ms(start, end):
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 3)


def get_execution(execution_id) -> Execution:
    """The execution with its version and definition; NotFound for an unknown or bad id."""
    try:
        pk = execution_id if isinstance(execution_id, uuid.UUID) else uuid.UUID(str(execution_id))
    except ValueError:
        raise NotFound(f"no execution {execution_id!r} (not a valid execution id)") from None
    execution = (Execution.objects.select_related("version__definition")
                 .defer("version__graph").filter(pk=pk).first())
    if execution is None:
        raise NotFound(f"no execution {pk}")
    return execution


HEX = frozenset("0123456789abcdef")


def execution_id_from_prefix(text: str) -> uuid.UUID:
    """The one execution whose id starts with `text` (dashes optional), for people
    typing ids; NotFound if none does, InputInvalid if several do.

    A prefix is a range of ids, so the primary key's index answers it on
    PostgreSQL (uuid) and SQLite (32 hex characters) alike.
    """
    digits = (text or "").strip().lower().replace("-", "")
    if not digits or len(digits) > 32 or not set(digits) <= HEX:
        raise NotFound(f"no execution {text!r} (an id or the start of one: hexadecimal "
                       "digits, dashes optional)")
    if len(digits) == 32:
        return uuid.UUID(digits)
    low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
    found = list(Execution.objects.filter(pk__gte=low, pk__lte=high).order_by("pk")
                 .values_list("pk", flat=True)[:3])
    if not found:
        raise NotFound(f"no execution id starts with {text!r}")
    if len(found) > 1:
        shown = ", ".join(str(pk) for pk in found[:2]) + (", …" if len(found) > 2 else "")
        raise InputInvalid(f"{text!r} is the start of more than one execution id ({shown}); "
                           "give more of it")
    return found[0]


def node_run_dicts(execution_id) -> list[dict]:
    """Every attempt of every node of an execution, in the order they were created."""
    runs = []
    # The logs come along in the same read (a LEFT JOIN: most runs logged nothing).
    for row in NodeRun.objects.filter(execution_id=execution_id).order_by("id").values(
            *NODE_RUN_FIELDS, "log__lines"):
        for key in ("created_at", "started_at", "finished_at"):
            row[key] = _iso(row[key])
        row["logs"] = row.pop("log__lines") or []
        runs.append(row)
    return runs


def execution_detail(execution_id) -> dict:
    """One execution and all its node runs as a JSON-ready dict; NotFound if unknown.

    `execution_id` may be the Execution itself, read with its version and
    definition (the API's visibility check has it already: no second read)."""
    execution = (execution_id if isinstance(execution_id, Execution)
                 else get_execution(execution_id))
    version = execution.version
    return {
        "id": str(execution.id),
        "workflow": version.definition.slug,
        "workflow_name": version.definition.name,
        "adhoc": version.definition.adhoc,
        "version": version.number,
        "version_id": version.pk,
        "status": execution.status,
        "input": execution.input,
        "output": execution.output,
        "error": execution.error,
        "priority": execution.priority,
        "queue": execution.queue,
        "client_id": execution.client_id,
        "idempotency_key": execution.idempotency_key,
        "deadline": _iso(execution.deadline),
        "progress": {
            "current_nodes": list(execution.current_nodes or []),
            "completed": execution.completed_nodes,
            "total": execution.total_nodes,
            "percent": execution.percent,
        },
        "created_at": _iso(execution.created_at),
        "started_at": _iso(execution.started_at),
        "finished_at": _iso(execution.finished_at),
        "duration_ms": _ms(execution.started_at or execution.created_at,
                           execution.finished_at),
        "last_seq": execution.last_seq,
        "node_runs": node_run_dicts(execution.pk),
        "why": [r.as_dict() for r in why_execution(execution)],
    }
