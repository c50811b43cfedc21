"""Concurrency limits: admission in priority order, per workflow and per key, no leaks."""

import pytest

from apps.engine import protocol
from apps.engine.control import cancel_execution
from apps.engine.diagnosis import ADMISSION, GLOBAL_LIMIT, KEY_LIMIT, WORKFLOW_LIMIT, why_execution
from apps.engine.errors import InputInvalid
from apps.engine.models import ConcurrencyLimit, Execution
from apps.engine.start import StartRequest, start_execution, start_many
from apps.engine.worker import drain
from apps.workflows.models import WorkflowDefinition
from apps.workflows.services import publish_version
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

PARK = {"name": "park", "nodes": [{"id": "w", "type": "signal", "config": {"name": "go"}}],
        "edges": []}


def admitted():
    return set(Execution.objects.filter(admitted=True).values_list("pk", flat=True))


def test_a_global_limit_admits_in_priority_order_and_holds_the_rest():
    ConcurrencyLimit.objects.create(max_running=2)
    low = start_execution(StartRequest(definition=PARK, priority=1))
    high = start_execution(StartRequest(definition=PARK, priority=9))
    mid = start_execution(StartRequest(definition=PARK, priority=5))
    assert low.status == "pending" and not low.admitted

    drain(budget_s=1)

    assert admitted() == {high.pk, mid.pk}
    (reason,) = why_execution(low.pk)
    assert (reason.code, reason.message) == (GLOBAL_LIMIT,
                                             "global limit reached: 2 of 2 running")


def test_a_finished_execution_frees_its_slot_for_the_next():
    ConcurrencyLimit.objects.create(max_running=1)
    first, second = (start_execution(StartRequest(definition=PARK, priority=p))
                     for p in (9, 1))
    drain(budget_s=1)
    assert admitted() == {first.pk}

    cancel_execution(first.pk)
    assert why_execution(second.pk)[0].code == ADMISSION
    drain(budget_s=1)

    assert Execution.objects.get(pk=second.pk).status == "waiting"


def test_a_workflow_limit_leaves_other_workflows_alone():
    publish_version("limited", PARK)
    publish_version("free", PARK)
    ConcurrencyLimit.objects.create(
        workflow=WorkflowDefinition.objects.get(slug="limited"), max_running=1)
    start_many([StartRequest(workflow="limited") for _ in range(3)])
    free = start_many([StartRequest(workflow="free") for _ in range(3)])
    assert all(e.admitted for e in free)

    drain(budget_s=1)

    limited = Execution.objects.filter(definition__slug="limited")
    assert limited.filter(admitted=True).count() == 1
    blocked = limited.filter(admitted=False).first()
    assert why_execution(blocked.pk)[0].code == WORKFLOW_LIMIT


def test_one_at_a_time_per_customer():
    version = publish_version("orders", PARK)
    ConcurrencyLimit.objects.create(workflow=version.definition, key="input.customer",
                                    max_running=1)
    started = start_many([StartRequest(workflow="orders", input={"customer": c})
                          for c in ("ann", "ann", "bob", "ann", "bob", "cy")])
    assert [e.limit_key for e in started] == ["ann", "ann", "bob", "ann", "bob", "cy"]

    drain(budget_s=1)

    running = list(Execution.objects.filter(admitted=True).values_list("limit_key", flat=True))
    assert sorted(running) == ["ann", "bob", "cy"]
    waiting_ann = Execution.objects.filter(admitted=False, limit_key="ann").first()
    (reason,) = why_execution(waiting_ann.pk)
    assert reason.code == KEY_LIMIT and "'ann'" in reason.message


def test_a_key_that_cannot_be_computed_refuses_the_start():
    version = publish_version("orders", PARK)
    ConcurrencyLimit.objects.create(workflow=version.definition, key="input.customer",
                                    max_running=1)

    with pytest.raises(InputInvalid) as err:
        start_execution(StartRequest(workflow="orders", input={}))
    assert "key cannot be computed" in err.value.message
    assert Execution.objects.count() == 0


def test_limited_executions_all_finish_one_after_another():
    ConcurrencyLimit.objects.create(max_running=1)
    spec = {"name": "quick", "nodes": [{"id": "a", "type": "python",
                                        "config": {"function": "braid.echo"}}], "edges": []}
    started = start_many([StartRequest(definition=spec) for _ in range(4)])

    for execution in started:
        assert run_until_done(execution.pk).status == "succeeded"
    admissions = sorted(Execution.objects.values_list("started_at", "finished_at"))
    for (_, finished), (started_next, _) in zip(admissions, admissions[1:], strict=False):
        assert started_next >= finished  # never two at once


def test_a_keyed_limit_needs_a_workflow():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        ConcurrencyLimit(key="input.customer", max_running=1).full_clean()
    assert protocol.claim("w", 1, 30).claims == []


def test_deleting_the_last_limit_admits_pending_executions():
    limit = ConcurrencyLimit.objects.create(max_running=1)
    executions = start_many([StartRequest(definition=PARK) for _ in range(3)])
    drain(budget_s=1)
    assert len(admitted()) == 1

    limit.delete()
    drain(budget_s=1)

    statuses = set(Execution.objects.filter(pk__in=[e.pk for e in executions])
                   .values_list("status", flat=True))
    assert statuses == {"waiting"}
    assert admitted() == {e.pk for e in executions}
    assert all(why_execution(e.pk)[0].code == "awaiting_signal" for e in executions)


def test_raising_a_limit_admits_what_now_fits():
    limit = ConcurrencyLimit.objects.create(max_running=1)
    start_many([StartRequest(definition=PARK) for _ in range(4)])
    drain(budget_s=1)
    assert len(admitted()) == 1

    limit.max_running = 3
    limit.save()
    drain(budget_s=1)

    assert len(admitted()) == 3
    pending = Execution.objects.get(admitted=False)
    assert why_execution(pending.pk)[0].message == "global limit reached: 3 of 3 running"
