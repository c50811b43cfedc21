"""After-commit subscribers hear every committed event, in seq order, and nothing rolled back."""

import pytest
from django.db import transaction

from apps.engine import hooks
from apps.engine.models import ExecutionEvent
from apps.engine.start import StartRequest, start_execution
from tests.conftest import load_example, run_until_done


@pytest.fixture
def heard():
    batches = []
    hooks.subscribe(batches.append)
    yield batches
    hooks.unsubscribe(batches.append)


@pytest.mark.django_db(transaction=True)
def test_subscriber_hears_every_committed_event_in_seq_order(heard):
    execution = start_execution(StartRequest(definition=load_example("three_steps"),
                                             input={"amount": 5}, client_id="tab-1"))
    run_until_done(execution.pk)

    events = [e for batch in heard for e in batch.events if e.execution_id == str(execution.pk)]
    stored = list(ExecutionEvent.objects.filter(execution=execution).values_list("seq", "type"))
    assert [(e.seq, e.type) for e in events] == stored
    assert {e.client_id for e in events} == {"tab-1"}
    assert heard[-1].statuses[str(execution.pk)] == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_subscriber_hears_nothing_of_a_rolled_back_transaction(heard):
    with pytest.raises(RuntimeError), transaction.atomic():
        start_execution(StartRequest(definition=load_example("three_steps"), input={}))
        raise RuntimeError("roll back")
    assert heard == []


@pytest.mark.django_db(transaction=True)
def test_a_failing_subscriber_does_not_break_the_engine_or_the_others(heard):
    def broken(batch):
        raise ValueError("subscriber bug")

    hooks.subscribe(broken)
    try:
        execution = start_execution(StartRequest(definition=load_example("three_steps"), input={}))
        assert run_until_done(execution.pk).status == "succeeded"
    finally:
        hooks.unsubscribe(broken)
    assert heard
