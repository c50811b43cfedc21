"""A fast bulk UPDATE: one `UPDATE … FROM (VALUES …)` statement.

Django's bulk_update builds a CASE WHEN per field and row; for the engine's
group commits that cost more CPU than the database work itself (measured:
most of a completion transaction). PostgreSQL and SQLite (3.33+) both accept
`UPDATE t SET … FROM (VALUES …) AS v WHERE t.id = v.column1`.
"""

from django.db import connection


def bulk_update_values(model, objs: list, fields: list[str]) -> int:
    if not objs:
        return 0
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
