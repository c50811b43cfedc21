"""Waits that hold no worker: approvals, signals and wait_until park in the database."""

import datetime as dt

import pytest
from django.contrib.auth.models import User

from apps.engine.errors import Conflict, InputInvalid
from apps.engine.models import Execution, NodeRun
from apps.engine.signaling import decide_approval, pending_approvals, send_signal
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

REVIEW = {
    "name": "review",
    "nodes": [
        {"id": "review", "type": "approval",
         "config": {"title": "Refund?", "form": {"type": "object", "required": ["amount"],
                                                 "properties": {"amount": {"type": "number"}}}}},
        {"id": "refund", "type": "transform",
         "config": {"output": {"amount": "nodes.review.output.form.amount"}}},
        {"id": "refused", "type": "noop", "config": {"output": {"refused": True}}},
        {"id": "expired", "type": "noop", "config": {"output": {"expired": True}}},
    ],
    "edges": [
        {"from": "review", "to": "refund", "when": "nodes.review.output.decision == 'approved'"},
        {"from": "review", "to": "refused", "when": "nodes.review.output.decision == 'rejected'"},
        {"from": "review", "to": "expired", "when": "nodes.review.output.decision == 'timeout'"},
    ],
}


def parked(spec, **kwargs):
    execution = start_execution(StartRequest(definition=spec, **kwargs))
    drain(budget_s=1)  # returns at once: the parked node holds no worker
    return Execution.objects.get(pk=execution.pk)


def statuses(execution):
    return {r.node_id: r.status for r in NodeRun.objects.filter(execution=execution)}


def test_approval_parks_then_approve_takes_the_approved_edge():
    alice = User.objects.create_user("alice")
    execution = parked(REVIEW)
    assert execution.status == "waiting"
    assert [r.node_id for r in pending_approvals()] == ["review"]

    decide_approval(execution.pk, "review", approve=True, user=alice, note="ok",
                    form={"amount": 12.5})

    execution = run_until_done(execution.pk)
    assert execution.output["refund"] == {"amount": 12.5}
    assert statuses(execution) == {"review": "succeeded", "refund": "succeeded",
                                   "refused": "skipped", "expired": "skipped"}
    review = NodeRun.objects.get(execution=execution, node_id="review")
    assert review.output["by"] == "alice" and review.output["note"] == "ok"
    assert not pending_approvals().exists()


def test_reject_takes_the_rejected_edge():
    execution = parked(REVIEW)

    decide_approval(execution.pk, "review", approve=False, note="no")

    execution = run_until_done(execution.pk)
    assert statuses(execution)["refused"] == "succeeded"
    assert statuses(execution)["refund"] == "skipped"


def test_approval_timeout_takes_the_timeout_edge():
    spec = {**REVIEW, "nodes": [dict(REVIEW["nodes"][0], config={"timeout_s": 0.2}),
                                *REVIEW["nodes"][1:]]}
    execution = run_until_done(parked(spec).pk)

    assert statuses(execution)["expired"] == "succeeded"
    assert execution.output["expired"] == {"expired": True}


def test_an_approval_with_a_bad_form_is_refused_and_nothing_changes():
    execution = parked(REVIEW)

    with pytest.raises(InputInvalid) as err:
        decide_approval(execution.pk, "review", approve=True, form={"amount": "lots"})

    assert "form/amount" in err.value.problems[0]["message"]
    assert NodeRun.objects.get(execution=execution, node_id="review").status == "waiting"


def test_deciding_twice_is_a_conflict():
    execution = parked(REVIEW)
    decide_approval(execution.pk, "review", approve=False)

    with pytest.raises(Conflict):
        decide_approval(execution.pk, "review", approve=True, form={"amount": 1})


def test_signal_node_outputs_the_payload():
    spec = {"name": "pay", "nodes": [{"id": "paid", "type": "signal",
                                      "config": {"name": "payment_received"}}], "edges": []}
    execution = parked(spec)

    assert send_signal(execution.pk, "payment_received", {"ref": "P-1"}) == ["paid"]

    execution = run_until_done(execution.pk)
    assert execution.output == {"paid": {"timed_out": False, "payload": {"ref": "P-1"}}}
    types = list(execution.events.values_list("type", flat=True))
    assert "signal.received" in types


def test_a_signal_nobody_waits_for_is_a_conflict():
    execution = parked(REVIEW)

    with pytest.raises(Conflict):
        send_signal(execution.pk, "payment_received", {})


def test_wait_until_a_moment_from_the_input():
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)).isoformat()
    spec = {"name": "until", "nodes": [{"id": "w", "type": "wait_until",
                                        "config": {"at": "input.ship_at"}}], "edges": []}
    execution = parked(spec, input={"ship_at": at})
    assert execution.status == "waiting"

    execution = run_until_done(execution.pk)
    assert execution.status == "succeeded"
    assert execution.output == {"w": {"waited_until": at}}


def test_wait_until_without_a_time_zone_fails_as_configuration():
    spec = {"name": "until", "nodes": [{"id": "w", "type": "wait_until",
                                        "config": {"at": "'2030-01-01T00:00:00'"}}],
            "edges": []}
    execution = run_until_done(start_execution(StartRequest(definition=spec)).pk)

    assert execution.status == "failed"
    assert execution.error["class"] == "configuration"
