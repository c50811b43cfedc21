"""The approval inbox in the admin: list what waits, approve or reject with a note."""

import pytest

from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from tests.engine.test_waits import REVIEW

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/admin/engine/pendingapproval/"


@pytest.fixture
def waiting():
    execution = start_execution(StartRequest(definition=REVIEW))
    drain(budget_s=1)
    return execution


def test_inbox_lists_the_waiting_approval_with_its_title(admin_client, waiting):
    page = admin_client.get(URL).content.decode()

    assert str(waiting.pk)[:8] in page
    assert "Refund?" in page


def test_approve_asks_for_a_note_then_decides(admin_client, waiting):
    run = NodeRun.objects.get(execution=waiting, node_id="review")
    form = {"action": "approve_selected", "_selected_action": [run.pk]}

    confirm = admin_client.post(URL, form)
    assert confirm.status_code == 200 and b"Note (kept with the decision)" in confirm.content

    done = admin_client.post(URL, {**form, "decide": "yes", "note": "fine",
                                   "form": '{"amount": 3}'}, follow=True)
    assert b"Approved 1 approval(s)." in done.content
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.output == {"decision": "approved", "by": "admin", "note": "fine",
                          "form": {"amount": 3}}


def test_approve_with_a_form_that_does_not_match_is_refused(admin_client, waiting):
    run = NodeRun.objects.get(execution=waiting, node_id="review")

    done = admin_client.post(URL, {"action": "approve_selected", "_selected_action": [run.pk],
                                   "decide": "yes", "note": "", "form": "{}"}, follow=True)

    assert b"refused the signal" in done.content
    run.refresh_from_db()
    assert run.status == "waiting"


def test_reject_from_the_inbox(admin_client, waiting):
    run = NodeRun.objects.get(execution=waiting, node_id="review")

    admin_client.post(URL, {"action": "reject_selected", "_selected_action": [run.pk],
                            "decide": "yes", "note": "too much"})

    run.refresh_from_db()
    assert run.output["decision"] == "rejected" and run.output["note"] == "too much"


def test_form_values_nested_10000_deep_are_refused_with_a_message(admin_client, waiting):
    run = NodeRun.objects.get(execution=waiting, node_id="review")

    done = admin_client.post(URL, {"action": "approve_selected", "_selected_action": [run.pk],
                                   "decide": "yes", "note": "",
                                   "form": "[" * 10_000 + "]" * 10_000}, follow=True)

    assert done.status_code == 200
    assert b"Form values: nested more than 64 levels deep" in done.content
    run.refresh_from_db()
    assert run.status == "waiting"
