"""The claim's and the completion's reads as fixed SQL on PostgreSQL.

A claim reads three times (ready candidates, the executions it locks, their
node runs) and a completion twice. Through the ORM each read compiled its
query again, bound its parameters on the client (parsing the SQL text and
quoting every id of an id list) and built each model with `Model.__init__`:
most of a one-execution claim's CPU outside the handlers (measured with
cProfile, docs/architecture.md). Here the SQL text is fixed, the id lists go
as one binary array, the statements are prepared (`BRAID_PG_PREPARE`) and the
rows become model instances without `__init__`, as `bulk.new_row` does for new
ones. The instances are ordinary: saved, compared and read like any other.

SQLite keeps the ORM queries (`transitions`): it has no arrays to bind, and
its claim is one exclusive transaction anyway.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from django.db import connection
from django.db.models.base import ModelState

from apps.engine.bulk import _pg_cursor
from apps.engine.models import Execution, NodeRun


@lru_cache(maxsize=8)
def _columns(model) -> tuple[str, tuple, tuple]:
    """SELECT list in the model's field order, its fields, and those with a converter."""
    fields = tuple(model._meta.concrete_fields)
    qn = connection.ops.quote_name
    select = ", ".join(qn(f.column) for f in fields)
    converted = tuple((i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value"))
    return select, tuple(f.attname for f in fields), converted


def _instances(model, rows) -> list:
    _, names, converted = _columns(model)
    alias = connection.alias
    out = []
    for row in rows:
        obj = model.__new__(model)
        values = dict(zip(names, row, strict=True))
        for i, field in converted:  # jsonb arrives as text (Django's loader): decode it
            values[names[i]] = field.from_db_value(row[i], None, connection)
        obj.__dict__.update(values)
        state = obj._state = ModelState()
        state.adding, state.db = False, alias
        out.append(obj)
    return out


def _uuids(ids) -> list[uuid.UUID]:
    return [i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in ids]


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def ready_candidates(now, paused: set[str], n: int) -> list[tuple[int, uuid.UUID]]:
    """(run id, execution id) of up to `n` READY runs due by `now`, in claim order
    (queue weight, priority, age): the `noderun_ready_claim` index's order."""
    skip = " AND NOT (queue = ANY(%b::varchar[]))" if paused else ""
    sql = (f"SELECT id, execution_id FROM {_table(NodeRun)} WHERE status = 'ready' "
           f"AND (not_before IS NULL OR not_before <= %b){skip} "
           "ORDER BY queue_rank DESC, priority DESC, id ASC LIMIT %b")
    params = [now, sorted(paused), n] if paused else [now, n]
    with _pg_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def lock_free(ids_in_order: list, limit: int) -> dict:
    """Lock up to `limit` of these executions nobody else holds, taken in the given
    order (SKIP LOCKED); returned by id."""
    select, _, _ = _columns(Execution)
    sql = (f"SELECT {select} FROM {_table(Execution)} WHERE id = ANY(%b::uuid[]) "
           "ORDER BY array_position(%b::uuid[], id) LIMIT %b FOR UPDATE SKIP LOCKED")
    ids = _uuids(ids_in_order)
    with _pg_cursor() as cursor:
        cursor.execute(sql, [ids, ids, limit])
        locked = {e.id: e for e in _instances(Execution, cursor.fetchall())}
    return {eid: locked[eid] for eid in sorted(locked)}


def execution(pk) -> Execution | None:
    """One execution by primary key (what a waiting client reads when woken)."""
    try:
        ids = _uuids([pk])
    except ValueError:  # not an id at all: there is no such execution
        return None
    select, _, _ = _columns(Execution)
    with _pg_cursor() as cursor:
        cursor.execute(f"SELECT {select} FROM {_table(Execution)} WHERE id = %b", ids)
        found = _instances(Execution, cursor.fetchall())
    return found[0] if found else None


def lock(ids) -> dict:
    """Lock these executions in id order (one order everywhere: no deadlocks)."""
    select, _, _ = _columns(Execution)
    sql = (f"SELECT {select} FROM {_table(Execution)} WHERE id = ANY(%b::uuid[]) "
           "ORDER BY id FOR UPDATE")
    with _pg_cursor() as cursor:
        cursor.execute(sql, [_uuids(ids)])
        return {e.id: e for e in _instances(Execution, cursor.fetchall())}


def runs_of(execution_ids) -> list:
    """Every node run of these executions, in id order (the model's ordering)."""
    select, _, _ = _columns(NodeRun)
    sql = (f"SELECT {select} FROM {_table(NodeRun)} WHERE execution_id = ANY(%b::uuid[]) "
           "ORDER BY execution_id, id")
    with _pg_cursor() as cursor:
        cursor.execute(sql, [_uuids(execution_ids)])
        return _instances(NodeRun, cursor.fetchall())
