"""The execution page's operator buttons, as Otto (operator) and Vera (viewer) use them."""

import pytest

from apps.engine.models import Execution, ExecutionEvent, NodeRun
from apps.engine.start import StartRequest, start_execution
from tests.conftest import run_until_done
from tests.personas import admin_url, login, make_persona

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = {
    "name": "chain",
    "nodes": [
        {"id": "a", "type": "noop", "config": {"output": {"n": 1}}},
        {"id": "b", "type": "fail", "config": {"times": 99},
         "output_schema": {"type": "object", "required": ["n"]}},
        {"id": "c", "type": "transform", "config": {"output": {"n": "nodes.b.output.n + 1"}}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
    "output": {"n": "nodes.c.output.n"},
}


@pytest.fixture
def failed_execution():
    execution = start_execution(StartRequest(definition=CHAIN))
    assert run_until_done(execution.pk).status == "failed"
    return execution


def intervene_url(execution, action):
    return admin_url(Execution, "change", execution.pk).replace(
        "/change/", f"/intervene/{action}/")


def test_an_operator_sees_the_buttons_the_failed_state_allows(failed_execution):
    otto = login(make_persona("otto", "operator"))
    page = otto.get(admin_url(Execution, "change", failed_execution.pk)).content.decode()
    for label in ("Retry node", "Skip node with output", "Resume", "Re-run from node",
                  "Compensate"):
        assert label in page, label
    assert "Pause" not in page and "Mark failed" not in page
    assert "Diagnosis" in page


def test_an_operator_skips_a_failed_node_with_an_output_typed_in_the_json_editor(
        failed_execution):
    otto = login(make_persona("otto", "operator"))
    url = intervene_url(failed_execution, "skip")
    form = otto.get(url)
    assert form.status_code == 200 and b'class="vLargeTextField braid-json"' in form.content
    assert b"b (failed)" in form.content

    bad = otto.post(url, {"node": "b", "output": '{"n": ', "reason": ""})
    assert bad.status_code == 200 and b"output: invalid JSON at line 1" in bad.content
    wrong = otto.post(url, {"node": "b", "output": '{"m": 1}', "reason": ""})
    assert b"does not match node b&#x27;s output_schema" in wrong.content
    assert Execution.objects.get(pk=failed_execution.pk).status == "failed"

    done = otto.post(url, {"node": "b", "output": '{"n": 41}', "reason": "typed by hand"})
    assert done.status_code == 302
    finished = run_until_done(failed_execution.pk)
    assert finished.status == "succeeded" and finished.output == {"n": 42}
    event = ExecutionEvent.objects.get(execution=finished, type="operator.skipped")
    assert event.payload["by"] == "otto" and event.payload["reason"] == "typed by hand"


def test_an_operator_reruns_from_a_node_and_lands_on_the_new_execution(failed_execution):
    otto = login(make_persona("otto", "operator"))
    response = otto.post(intervene_url(failed_execution, "rerun"), {"node": "b", "reason": ""})
    assert response.status_code == 302
    rerun = Execution.objects.exclude(pk=failed_execution.pk).get()
    assert response.url == admin_url(Execution, "change", rerun.pk)
    assert NodeRun.objects.get(execution=rerun, node_id="a").output == {"n": 1}


def test_a_refused_intervention_shows_why_on_the_form(failed_execution):
    otto = login(make_persona("otto", "operator"))
    response = otto.post(intervene_url(failed_execution, "compensate"), {"reason": ""})
    assert response.status_code == 200
    assert b"no completed step with a compensating node" in response.content


def test_a_viewer_gets_no_buttons_and_cannot_post_an_intervention(failed_execution):
    vera = login(make_persona("vera", "viewer"))
    page = vera.get(admin_url(Execution, "change", failed_execution.pk)).content.decode()
    assert "Retry node" not in page and "Resume" not in page
    assert vera.post(intervene_url(failed_execution, "resume"), {}).status_code == 403
    assert Execution.objects.get(pk=failed_execution.pk).status == "failed"


def test_a_running_execution_offers_pause_and_mark_failed():
    spec = {"name": "naps", "nodes": [{"id": "nap", "type": "delay",
                                       "config": {"seconds": 60}}], "edges": []}
    execution = start_execution(StartRequest(definition=spec))
    otto = login(make_persona("otto", "operator"))
    page = otto.get(admin_url(Execution, "change", execution.pk)).content.decode()
    assert "Pause" in page and "Mark failed" in page and "Resume" not in page
    assert otto.post(intervene_url(execution, "pause"), {"reason": "look"}).status_code == 302
    page = otto.get(admin_url(Execution, "change", execution.pk)).content.decode()
    assert "Unpause" in page


def changelist_action(client, action: str, executions) -> str:
    response = client.post(admin_url(Execution, "changelist"), {
        "action": action, "_selected_action": [str(e.pk) for e in executions]}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_an_operator_resumes_failed_executions_in_bulk_and_is_told_what_was_left():
    failed = [start_execution(StartRequest(definition=CHAIN)) for _ in range(2)]
    for execution in failed:
        assert run_until_done(execution.pk).status == "failed"
    done = start_execution(StartRequest(definition={
        "name": "fine", "nodes": [{"id": "a", "type": "noop"}], "edges": []}))
    assert run_until_done(done.pk).status == "succeeded"
    otto = login(make_persona("otto", "operator"))

    page = changelist_action(otto, "resume_selected", [*failed, done])

    assert "Resume: 2 executions." in page
    assert "1 selected execution was not failed and left as it was." in page
    for execution in failed:
        event = ExecutionEvent.objects.get(execution=execution, type="operator.resumed")
        assert event.payload["by"] == "otto"
        assert event.payload["reason"] == "bulk resume in the admin"
    assert not ExecutionEvent.objects.filter(execution=done, type__startswith="operator.")


def test_an_operator_pauses_and_unpauses_in_bulk_and_a_viewer_cannot():
    spec = {"name": "naps", "nodes": [{"id": "nap", "type": "delay",
                                       "config": {"seconds": 60}}], "edges": []}
    running = [start_execution(StartRequest(definition=spec)) for _ in range(3)]
    vera = login(make_persona("vera", "viewer"))
    vera_page = vera.get(admin_url(Execution, "changelist")).content.decode()
    assert "pause_selected" not in vera_page and "resume_selected" not in vera_page
    changelist_action(vera, "pause_selected", running)
    assert not Execution.objects.filter(paused=True).exists()

    otto = login(make_persona("otto", "operator"))
    assert "Pause: 3 executions." in changelist_action(otto, "pause_selected", running)
    assert Execution.objects.filter(paused=True).count() == 3
    assert "Unpause: 2 executions." in changelist_action(otto, "unpause_selected", running[:2])
    assert list(Execution.objects.filter(paused=True).values_list("pk", flat=True)) == [
        running[2].pk]
