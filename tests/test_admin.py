"""The admin: read-only views of the engine's tables, operator actions, cheap lists.

Alice is a superuser (pytest-django's `admin_client`); she looks, starts and
cancels. Data is made the way production makes it: publish_version,
start_execution, and the engine driving executions to their end.
"""

import re

import pytest
from django.contrib.admin import helpers
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.engine import protocol
from apps.engine.admin import ExecutionAdmin, ExecutionEventAdmin, NodeRunAdmin
from apps.engine.models import Execution, ExecutionEvent, NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.workflows.admin import WorkflowVersionAdmin
from apps.workflows.models import WorkflowDefinition, WorkflowVersion
from apps.workflows.services import publish_version
from tests.conftest import load_example, run_until_done

SLOW = {
    "name": "Slow",
    "nodes": [{"id": "first", "type": "python", "config": {"function": "braid.echo"}},
              {"id": "nap", "type": "delay", "config": {"seconds": 3600}}],
    "edges": [{"from": "first", "to": "nap"}],
}


@pytest.fixture
def finished(db):
    """One execution of three_steps, driven to success."""
    publish_version("three-steps", load_example("three_steps"))
    execution = start_execution(StartRequest(workflow="three-steps", input={"who": "alice"},
                                             client_id="alice-client"))
    return run_until_done(execution.pk)


@pytest.fixture
def running(db):
    """An execution whose first node a worker holds right now."""
    publish_version("slow", SLOW)
    execution = start_execution(StartRequest(workflow="slow"))
    claims = protocol.claim("test-worker", 10, 60).claims
    assert [c.node_id for c in claims] == ["first"]
    execution.refresh_from_db()
    assert execution.status == "running"
    return execution


def admin_url(model, view, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def post_action(client, model, action, pks):
    return client.post(admin_url(model, "changelist"), {
        "action": action, helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0,
    }, follow=True)


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("model, expected", [
    (WorkflowDefinition, "three-steps"),
    (WorkflowVersion, "three-steps v1"),
    (Execution, "v1"),
    (NodeRun, "test-worker"),
    (ExecutionEvent, "execution.succeeded"),
])
def test_every_changelist_lists_its_rows(admin_client, finished, running, model, expected):
    response = admin_client.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    assert expected in response.content.decode()


def test_execution_list_shows_status_progress_and_workflow(admin_client, finished):
    html = admin_client.get(admin_url(Execution, "changelist")).content.decode()

    assert str(finished.pk)[:8] in html
    assert "three-steps" in html
    assert "succeeded" in html
    assert "3/3" in html


def test_every_change_page_shows_its_row(admin_client, finished):
    version = finished.version
    run = NodeRun.objects.filter(execution=finished, node_id="c").get()
    event = ExecutionEvent.objects.filter(execution=finished).order_by("seq").last()
    pages = [
        (admin_url(WorkflowDefinition, "change", version.definition_id), ["three-steps", "v1"]),
        (admin_url(WorkflowVersion, "change", version.pk), ["&quot;transform&quot;"]),
        (admin_url(Execution, "change", finished.pk),
         ["&quot;who&quot;: &quot;alice&quot;", "execution.succeeded", "Node runs",
          "three-steps"]),
        (admin_url(NodeRun, "change", run.pk), [str(finished.pk), "succeeded"]),
        (admin_url(ExecutionEvent, "change", event.pk), ["execution.succeeded"]),
    ]
    for url, fragments in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for fragment in fragments:
            assert fragment in html, (url, fragment)


def test_execution_page_lists_node_runs_and_events(admin_client, finished):
    html = admin_client.get(admin_url(Execution, "change", finished.pk)).content.decode()

    inline_nodes = re.findall(r'<td class="field-node_id">\s*<p>(\w+)</p>', html)
    assert inline_nodes == ["a", "b", "c"]
    assert html.count("<td>node.succeeded</td>") == 3


def test_execution_page_shows_at_most_200_node_runs_and_events(admin_client, finished):
    NodeRun.objects.bulk_create(
        NodeRun(execution=finished, node_id=f"n{i}", status="skipped") for i in range(250))
    ExecutionEvent.objects.bulk_create(
        ExecutionEvent(execution=finished, seq=100 + i, type="node.skipped") for i in range(250))

    html = admin_client.get(admin_url(Execution, "change", finished.pk)).content.decode()

    assert len(re.findall(r'<td class="field-node_id">', html)) == 200
    assert html.count("<td>node.skipped</td>") == 200
    assert "<td>349</td>" in html  # the newest event is among them
    assert "253 (" in html  # the count of all node runs, with links to the full lists


def test_search_by_exact_execution_id_finds_only_it(admin_client, finished):
    other = start_execution(StartRequest(workflow="three-steps", input={"who": "bob"}))

    html = admin_client.get(admin_url(Execution, "changelist"),
                            {"q": str(finished.pk)}).content.decode()

    assert str(finished.pk)[:8] in html
    assert str(other.pk)[:8] not in html


def test_search_by_client_id_and_by_slug(admin_client, finished):
    url = admin_url(Execution, "changelist")

    by_client = admin_client.get(url, {"q": "alice-client"}).content.decode()
    by_slug = admin_client.get(url, {"q": "three-steps"}).content.decode()
    by_part = admin_client.get(url, {"q": "alice"}).content.decode()

    assert str(finished.pk)[:8] in by_client
    assert str(finished.pk)[:8] in by_slug
    assert str(finished.pk)[:8] not in by_part  # exact only: no '%alice%' scan


def test_node_runs_and_events_search_by_execution_id(admin_client, finished, running):
    for model in (NodeRun, ExecutionEvent):
        html = admin_client.get(admin_url(model, "changelist"),
                                {"q": str(running.pk)}).content.decode()
        assert str(running.pk)[:8] in html
        assert str(finished.pk)[:8] not in html


def test_cancel_action_cancels_a_running_execution_and_reports_it(admin_client, running,
                                                                  finished):
    response = post_action(admin_client, Execution, "cancel_selected",
                           [running.pk, finished.pk])

    running.refresh_from_db()
    assert running.status == "cancelled"
    assert NodeRun.objects.get(execution=running, node_id="first").status == "cancelled"
    assert "Cancelled 1 execution." in page_messages(response)
    assert any("already finished" in m for m in page_messages(response))
    finished.refresh_from_db()
    assert finished.status == "succeeded"


def test_start_action_creates_an_execution(admin_client, finished):
    definition = finished.definition

    response = post_action(admin_client, WorkflowDefinition, "start_selected", [definition.pk])

    started = Execution.objects.exclude(pk=finished.pk).get()
    assert started.definition == definition
    assert started.input == {}
    assert started.created_by.username == "admin"
    assert any(str(started.pk) in m for m in page_messages(response))


def test_start_link_opens_the_start_form_which_starts_and_opens_the_execution(admin_client,
                                                                            finished):
    definition = finished.definition
    page = admin_client.get(admin_url(WorkflowDefinition, "change", definition.pk))
    start_url = admin_url(WorkflowDefinition, "start", definition.pk)
    assert start_url in page.content.decode()
    form = admin_client.get(start_url)
    assert form.status_code == 200 and b'name="input"' in form.content

    response = admin_client.post(start_url, {"input": "{}", "queue": "default",
                                             "priority": "5"})

    started = Execution.objects.exclude(pk=finished.pk).get()
    assert response.status_code == 302
    assert response.url == admin_url(Execution, "change", started.pk)


def test_start_reports_input_the_workflow_rejects(admin_client, db):
    version = publish_version("order-saga", load_example("order_saga"))

    response = post_action(admin_client, WorkflowDefinition, "start_selected",
                           [version.definition_id])

    assert not Execution.objects.exists()
    (message,) = page_messages(response)
    assert "order-saga" in message and "input_schema" in message


@pytest.mark.parametrize("model", [Execution, NodeRun, WorkflowVersion])
def test_nobody_edits_engine_rows_by_hand(admin_client, finished, model):
    obj = {Execution: finished, NodeRun: NodeRun.objects.first(),
           WorkflowVersion: finished.version}[model]

    assert admin_client.get(admin_url(model, "add")).status_code == 403
    assert admin_client.post(admin_url(model, "change", obj.pk), {}).status_code == 403
    assert admin_client.get(admin_url(model, "delete", obj.pk)).status_code == 403


def test_big_tables_never_count_everything(admin_client, finished):
    for model_admin in (ExecutionAdmin, NodeRunAdmin, ExecutionEventAdmin,
                        WorkflowVersionAdmin):
        assert model_admin.show_full_result_count is False
        assert model_admin.list_per_page == 50

    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(admin_url(Execution, "changelist")).status_code == 200
    for _ in range(5):
        start_execution(StartRequest(workflow="three-steps", input={"who": "carol"}))
    with CaptureQueriesContext(connection) as more:
        assert admin_client.get(admin_url(Execution, "changelist")).status_code == 200

    assert len(more) == len(few) <= 12  # no query per row
    counts = [q["sql"] for q in more if "COUNT(" in q["sql"].upper()]
    assert counts, "the changelist counts (a capped count)"
    for sql in counts:
        assert re.search(r"\bLIMIT\b", sql, re.IGNORECASE), f"uncapped count: {sql}"


@pytest.mark.parametrize("model", [Execution, NodeRun, ExecutionEvent])
def test_filtered_lists_use_bounded_queries(admin_client, finished, model):
    params = {Execution: {"status__exact": "succeeded", "queue": "default",
                          "workflow": str(finished.definition_id)},
              NodeRun: {"status__exact": "succeeded"},
              ExecutionEvent: {"type": "node.succeeded"}}[model]

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(admin_url(model, "changelist"), params)

    assert response.status_code == 200
    assert str(finished.pk)[:8] in response.content.decode()
    assert len(queries) <= 12
    assert not any("DISTINCT" in q["sql"].upper() for q in queries)
