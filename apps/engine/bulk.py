"""Fast bulk writes for the engine's group commits: one statement per table.

Django's bulk_update builds a CASE WHEN per field and row; for the engine's
group commits that cost more CPU than the database work itself (measured:
most of a completion transaction).

- PostgreSQL: `INSERT … SELECT * FROM unnest(%b::type[], …)` and
  `UPDATE … FROM unnest(…) AS v(…)`: one array per column, sent as binary
  parameters with server-side binding. The SQL text is the same whatever the
  number of rows, so psycopg parses it once; nothing is quoted or escaped in
  Python (measured: a `VALUES (…), (…)` statement of 100 rows cost ~17 ms of
  CPU in psycopg's client-side query parsing alone).
- SQLite (3.33+): `UPDATE t SET … FROM (VALUES …) AS v WHERE t.id = v.column1`
  and `INSERT … VALUES (…), (…)`; the sqlite3 module binds without parsing.
"""

import threading
from contextlib import contextmanager
from functools import lru_cache

from django.conf import settings
from django.db import connection, models
from django.db.models.base import ModelState
from django.db.models.fields import NOT_PROVIDED

# Bound parameters per statement: under PostgreSQL's 65,535 and SQLite's 32,766.
MAX_PARAMS = 30_000
SMALL_BATCH = 100  # rows up to which a plain VALUES insert beats bulk_create


def new_row(model, **values):
    """A new, unsaved model instance, built without `Model.__init__`.

    The group commit makes several rows per node (events, runs); `Model.__init__`
    with keyword arguments was ~10 % of a worker's CPU. Fields are set from the
    model's defaults, then `values`, which must be given by attname
    (`execution_id`, not `execution`). The instance is an ordinary model object.
    """
    constant, computed = _defaults(model)
    obj = model.__new__(model)
    obj.__dict__.update(constant)
    for attname, default in computed:
        obj.__dict__[attname] = default()
    obj.__dict__.update(values)
    obj._state = ModelState()
    return obj


@lru_cache(maxsize=64)
def _defaults(model) -> tuple[dict, tuple]:
    constant, computed = {}, []
    for field in model._meta.concrete_fields:
        if field.default is NOT_PROVIDED or not callable(field.default):
            constant[field.attname] = field.get_default()
        else:
            computed.append((field.attname, field.default))
    return constant, tuple(computed)


def _chunks(objs: list, per_row: int):
    size = max(1, MAX_PARAMS // per_row)
    for start in range(0, len(objs), size):
        yield objs[start:start + size]


def bulk_update_values(model, objs: list, fields: list[str]) -> int:
    if not objs:
        return 0
    if connection.vendor == "postgresql":
        return _pg_update(model, objs, tuple(fields))
    if len(objs) * (len(fields) + 1) > MAX_PARAMS:
        return sum(bulk_update_values(model, chunk, fields)
                   for chunk in _chunks(objs, len(fields) + 1))
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    pk = meta.pk
    postgres = connection.vendor == "postgresql"
    qn = connection.ops.quote_name
    table = qn(meta.db_table)

    def cast(position: int, field) -> str:
        ref = f"v.column{position}"
        return f"CAST({ref} AS {field.db_type(connection)})" if postgres else ref

    row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    params = []
    for obj in objs:
        params.append(pk.get_db_prep_save(obj.pk, connection))
        for field in columns:
            params.append(field.get_db_prep_save(getattr(obj, field.attname), connection))
    assignments = ", ".join(
        f"{qn(field.column)} = {cast(i + 2, field)}" for i, field in enumerate(columns))
    sql = (f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row] * len(objs))}) "
           f"AS v WHERE {table}.{qn(pk.column)} = {cast(1, pk)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def bulk_insert_values(model, objs: list) -> None:
    """One `INSERT … VALUES (…), (…) RETURNING id`; sets each object's new id.

    For the small batches of one group commit this costs a fraction of Django's
    bulk_create; for bursts (a bulk start) Django's UNNEST insert is faster.
    """
    if not objs:
        return
    if connection.vendor == "postgresql":
        _pg_insert(model, objs)
        return
    if len(objs) > SMALL_BATCH:
        model.objects.bulk_create(objs)
        return
    meta = model._meta
    pk = meta.pk
    auto_pk = pk.auto_created or getattr(pk, "db_returning", False)
    fields = [f for f in meta.concrete_fields if not (f.primary_key and auto_pk)]
    if len(objs) * len(fields) > MAX_PARAMS:
        for chunk in _chunks(objs, len(fields)):
            bulk_insert_values(model, chunk)
        return
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = []
    for obj in objs:
        for field in fields:
            params.append(field.get_db_prep_save(field.pre_save(obj, add=True), connection))
    sql = (f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
           f"VALUES {', '.join([row] * len(objs))}")
    with connection.cursor() as cursor:
        if auto_pk:
            cursor.execute(sql + f" RETURNING {qn(pk.column)}", params)
            for obj, (new_id,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = new_id
                obj._state.adding = False
        else:
            cursor.execute(sql, params)
            for obj in objs:
                obj._state.adding = False


# --- PostgreSQL: one array per column ------------------------------------------------

def _array_type(field) -> str:
    return field.db_type(connection).split("(")[0].strip() + "[]"


@lru_cache(maxsize=64)
def _pg_insert_plan(model) -> tuple[str, list, bool]:
    meta = model._meta
    pk = meta.pk
    auto_pk = pk.auto_created or getattr(pk, "db_returning", False)
    fields = [f for f in meta.concrete_fields if not (f.primary_key and auto_pk)]
    qn = connection.ops.quote_name
    sql = (f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
           f"SELECT * FROM unnest({', '.join(f'%b::{_array_type(f)}' for f in fields)})")
    if auto_pk:
        sql += f" RETURNING {qn(pk.column)}"
    return sql, fields, auto_pk


@lru_cache(maxsize=64)
def _pg_update_plan(model, names: tuple[str, ...]) -> tuple[str, list]:
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in names]
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    alias = ", ".join(["_pk", *(qn(f.column) for f in columns)])
    arrays = ", ".join(f"%b::{_array_type(f)}" for f in [pk, *columns])
    sql = (f"UPDATE {table} SET "
           + ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in columns)
           + f" FROM unnest({arrays}) AS v({alias}) WHERE {table}.{qn(pk.column)} = v._pk")
    return sql, [pk, *columns]


def _column(field, objs: list, *, add: bool) -> list:
    """One column's values, ready for psycopg (JSON wrapped as jsonb, NULL kept)."""
    if add and (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)):
        values = [field.pre_save(obj, True) for obj in objs]  # as Django's own insert does
    else:
        values = [getattr(obj, field.attname) for obj in objs]
    if isinstance(field, models.JSONField):
        return [None if v is None else field.get_db_prep_save(v, connection) for v in values]
    return values


def _pg_cursor():
    """A server-side-binding cursor on Django's connection, through Django's wrapper
    (error translation, execute wrappers), inside whatever transaction is open."""
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if settings.BRAID["PG_PREPARE"] and raw.prepare_threshold != 0:
        # These statements' text is fixed per table (one array per column), so a
        # prepared one skips the server's parse and plan on every later commit.
        # Django leaves psycopg's threshold off; only this server-side-binding
        # cursor prepares (Django's own cursors bind on the client and never do).
        raw.prepare_threshold = 0
    return connection._prepare_cursor(psycopg.Cursor(raw))


def _pg_insert(model, objs: list) -> None:
    sql, fields, auto_pk = _pg_insert_plan(model)
    params = [_column(f, objs, add=True) for f in fields]
    cursor = _pg_cursor()
    cursor.execute(sql, params)
    pending = getattr(_local, "pending", None)
    if pending is not None:  # inside `one_round_trip`: the ids come with its sync
        pending.append((cursor, objs, auto_pk))
        return
    _took(cursor, objs, auto_pk)


def _took(cursor, objs: list, auto_pk: bool) -> None:
    try:
        if auto_pk:
            for obj, (new_id,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = new_id
        for obj in objs:
            obj._state.adding = False
    finally:
        cursor.close()


def _pg_update(model, objs: list, names: tuple[str, ...]) -> int | None:
    """Rows updated (None inside `one_round_trip`: not known before its sync)."""
    sql, fields = _pg_update_plan(model, names)
    params = [_column(f, objs, add=False) for f in fields]
    with _pg_cursor() as cursor:
        cursor.execute(sql, params)
        return None if getattr(_local, "pending", None) is not None else cursor.rowcount


_local = threading.local()  # per thread: web threads and a worker's drain each write


@contextmanager
def one_round_trip():
    """PostgreSQL: send the bulk writes made inside as one pipeline, so a group
    commit's four or five statements cost one round trip, not one each; the new
    rows' ids are assigned when it syncs, at the end of the block. Elsewhere,
    or nested, it changes nothing. An error in any statement is raised at the
    sync, and the transaction around it rolls back as usual.
    """
    if connection.vendor != "postgresql" or getattr(_local, "pending", None) is not None:
        yield
        return
    connection.ensure_connection()
    pending = _local.pending = []
    try:
        with connection.connection.pipeline():
            yield
            for cursor, objs, auto_pk in pending:
                _took(cursor, objs, auto_pk)
    finally:
        _local.pending = None
        for cursor, _, _ in pending:
            cursor.close()
