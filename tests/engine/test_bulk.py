"""Group-commit writes stay under the databases' bound-parameter limits."""

import pytest

from apps.engine import bulk
from apps.engine.models import Execution
from apps.engine.start import StartRequest, start_many
from tests.conftest import load_example

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_burst_larger_than_one_statement_is_written_in_chunks(monkeypatch):
    monkeypatch.setattr(bulk, "MAX_PARAMS", 200)  # a few rows per statement
    monkeypatch.setattr(bulk, "SMALL_BATCH", 1000)  # our VALUES insert, not bulk_create
    spec = load_example("three_steps")

    started = start_many([StartRequest(definition=spec, input={"who": i}) for i in range(40)])

    assert Execution.objects.count() == 40
    assert all(e.node_runs.count() == 1 and e.events.count() == 1 for e in started)
    ids = [r.pk for e in started for r in e.node_runs.all()]
    assert len(set(ids)) == 40


def prepared_statements() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("prepare", [True, False])
def test_bulk_writes_are_prepared_on_postgresql_unless_turned_off(prepare, settings):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's; SQLite has no server to keep them")
    # BRAID_PG_PREPARE=0 is for poolers that cannot keep prepared statements:
    # then none may be left on the server connection.
    settings.BRAID = {**settings.BRAID, "PG_PREPARE": prepare}
    connection.close()  # a fresh connection: nothing prepared by an earlier test
    start_many([StartRequest(definition=load_example("three_steps"), input={"who": i})
                for i in range(3)])
    assert (prepared_statements() > 0) is prepare
    assert Execution.objects.count() == 3


def test_a_failing_statement_in_one_round_trip_raises_and_writes_nothing():
    from django.db import IntegrityError, transaction

    from apps.engine.bulk import bulk_insert_values, new_row, one_round_trip
    from apps.engine.models import ExecutionEvent

    (execution,) = start_many([StartRequest(definition=load_example("three_steps"))])
    before = ExecutionEvent.objects.count()
    twice = [new_row(ExecutionEvent, execution_id=execution.pk, seq=99, type="x.y",
                     payload={}, created_at=execution.created_at) for _ in range(2)]
    with pytest.raises(IntegrityError), transaction.atomic(), one_round_trip():
        bulk_insert_values(ExecutionEvent, [new_row(
            ExecutionEvent, execution_id=execution.pk, seq=98, type="x.y", payload={},
            created_at=execution.created_at)])
        bulk_insert_values(ExecutionEvent, twice)  # (execution, seq) is unique
    assert ExecutionEvent.objects.count() == before  # the first insert went too
    execution.refresh_from_db()  # and the connection is usable again
