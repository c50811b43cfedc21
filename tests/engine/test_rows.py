"""The claim path's fixed-SQL reads (PostgreSQL) load the same rows as the ORM."""

import pytest
from django.db import connection, transaction

from apps.engine import rows
from apps.engine.models import Execution, NodeRun
from apps.engine.start import StartRequest, start_execution, wait_for
from apps.engine.worker import drain
from tests.conftest import load_example

pytestmark = pytest.mark.django_db(transaction=True)


def values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.fixture
def finished():
    if connection.vendor != "postgresql":
        pytest.skip("the fixed-SQL reads are PostgreSQL's; SQLite reads through the ORM")
    execution = start_execution(StartRequest(definition=load_example("three_steps"),
                                             input={"who": "ünï", "n": [1, {"a": None}]}))
    drain(10)
    return Execution.objects.get(pk=execution.pk)


def test_runs_and_executions_read_as_the_orm_reads_them(finished):
    orm_runs = list(NodeRun.objects.filter(execution=finished))
    fast_runs = rows.runs_of([finished.pk])
    assert [values(r) for r in fast_runs] == [values(r) for r in orm_runs]
    assert values(rows.execution(str(finished.pk))) == values(finished)
    assert finished.output and finished.status == "succeeded"
    with transaction.atomic():
        assert values(rows.lock([finished.pk])[finished.pk]) == values(finished)
        locked = rows.lock_free([finished.pk], 1)
        assert values(locked[finished.pk]) == values(finished)


def test_loaded_rows_are_ordinary_models(finished):
    run = rows.runs_of([finished.pk])[0]
    assert run.execution == finished  # the foreign key resolves
    run.error_message = "checked"
    run.save(update_fields=["error_message"])
    assert NodeRun.objects.get(pk=run.pk).error_message == "checked"


def test_waiting_on_an_unknown_or_malformed_id_says_not_found(finished):
    from apps.engine.errors import NotFound

    assert rows.execution("not-a-uuid") is None
    with pytest.raises(NotFound):
        wait_for("00000000-0000-0000-0000-000000000000", 0.1)
