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
