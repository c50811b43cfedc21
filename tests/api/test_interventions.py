"""Interventions, diagnosis, alerts and system figures over the API, as the personas:
Bob (operator) steps in, Vera (viewer) may only look, Charlie (outsider) sees nothing."""

import pytest
from django.utils import timezone

from apps.engine.models import Execution, ExecutionEvent
from apps.engine.start import StartRequest, start_execution
from apps.operations import evaluator
from apps.operations.models import Alert
from apps.workflows.services import publish_version
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = {"name": "api chain",
         "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 1}}},
                   {"id": "b", "type": "fail", "config": {"times": 99}},
                   {"id": "c", "type": "transform",
                    "config": {"output": {"n": "nodes.b.output.n + 1"}}}],
         "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
         "output": {"n": "nodes.c.output.n"}}


@pytest.fixture
def failed(people):
    publish_version("chain", CHAIN, author=people.alice, team_id=people.payments.pk)
    execution = start_execution(StartRequest(workflow="chain"))
    assert run_until_done(execution.pk).status == "failed"
    return execution


def url(execution, action):
    return f"/api/v1/executions/{execution.pk}/{action}/"


def test_an_operator_skips_a_failed_node_and_the_execution_finishes(people, failed):
    bob = people.client(people.bob)
    response = bob.post(url(failed, "skip"), {"node": "b", "output": {"n": 9},
                                              "reason": "done by hand"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "running"
    assert run_until_done(failed.pk).output == {"n": 10}
    event = ExecutionEvent.objects.get(execution=failed, type="operator.skipped")
    assert event.payload["by"] == "bob"


def test_each_intervention_refused_by_state_is_a_409_with_the_reason(people, failed):
    bob = people.client(people.bob)
    for action, body, fragment in (
            ("retry", {"node": "a"}, "node a is succeeded"),
            ("pause", {}, "it is failed"),
            ("unpause", {}, "is not paused"),
            ("mark-failed", {}, "already failed"),
            ("compensate", {}, "no completed step with a compensating node")):
        response = bob.post(url(failed, action), body, format="json")
        assert response.status_code == 409, (action, response.json())
        assert fragment in response.json()["error"]["message"], action


def test_rerun_answers_201_with_the_new_execution_on_the_pinned_version(people, failed):
    response = people.client(people.bob).post(url(failed, "rerun"), {"from_node": "b"},
                                              format="json")
    assert response.status_code == 201
    rerun = Execution.objects.get(pk=response.json()["id"])
    assert rerun.version_id == failed.version_id and rerun.pk != failed.pk


def test_retry_and_resume_over_the_api(people, failed):
    bob = people.client(people.bob)
    assert bob.post(url(failed, "retry"), {"node": "b"}, format="json").status_code == 200
    assert run_until_done(failed.pk).status == "failed"  # b always fails
    assert bob.post(url(failed, "resume"), format="json").status_code == 200
    assert bob.post(url(failed, "skip"), {"node": "zz", "output": {}},
                    format="json").status_code == 404


def test_a_viewer_cannot_step_in_and_an_outsider_sees_nothing(people, failed):
    vera, charlie = people.client(people.vera), people.client(people.charlie)
    assert vera.post(url(failed, "resume"), format="json").status_code == 403
    assert vera.get(url(failed, "diagnosis")).status_code == 200
    assert charlie.post(url(failed, "resume"), format="json").status_code == 404
    assert charlie.get(url(failed, "diagnosis")).status_code == 404
    assert Execution.objects.get(pk=failed.pk).status == "failed"


def test_an_execute_token_cannot_step_in(people, failed):
    client = people.token_client(people.bob, scopes="read,execute")
    assert client.post(url(failed, "resume"), format="json").status_code == 403


def test_the_diagnosis_lists_errors_and_suggestions(people, failed):
    data = people.client(people.bob).get(url(failed, "diagnosis")).json()
    assert data["status"] == "failed" and data["node_errors"][0]["node"] == "b"
    assert data["suggestions"]


def test_bulk_cancel_cancels_what_the_filter_matches_and_the_caller_may_operate(people):
    publish_version("chain", CHAIN, author=people.alice, team_id=people.payments.pk)
    ids = [start_execution(StartRequest(workflow="chain", client_id="batch-7")).pk
           for _ in range(3)]
    bob = people.client(people.bob)
    assert bob.post("/api/v1/executions/bulk-cancel/", {}, format="json").status_code == 400
    response = bob.post("/api/v1/executions/bulk-cancel/", {"client_id": "batch-7"},
                        format="json")
    assert response.json() == {"cancelled": 3, "skipped": 0, "more": False}
    assert set(Execution.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "cancelled"}
    charlie = people.client(people.charlie)
    ids = [start_execution(StartRequest(workflow="chain", client_id="batch-8")).pk]
    response = charlie.post("/api/v1/executions/bulk-cancel/", {"client_id": "batch-8"},
                            format="json")
    assert response.json()["cancelled"] == 0


def test_alerts_are_listed_to_their_team_and_handled_by_an_operator(people, failed):
    evaluator.evaluate()
    bob, charlie = people.client(people.bob), people.client(people.charlie)
    listed = bob.get("/api/v1/alerts/?state=open").json()["results"]
    [alert] = [a for a in listed if a["rule"] == "execution_failed"]
    assert alert["workflow"] == "chain" and alert["severity"] == "critical"
    assert charlie.get("/api/v1/alerts/").json()["results"] == []
    assert charlie.get(f"/api/v1/alerts/{alert['id']}/").status_code == 404

    base = f"/api/v1/alerts/{alert['id']}"
    assert bob.post(f"{base}/acknowledge/", {"note": "on it"},
                    format="json").json()["state"] == "acknowledged"
    assert bob.post(f"{base}/assign/", {"user": "bob"}, format="json").json()["assignee"] == "bob"
    assert bob.post(f"{base}/assign/", {"user": "nobody"}, format="json").status_code == 400
    comment = bob.post(f"{base}/comment/", {"text": "card provider down"}, format="json")
    assert comment.json()["notes"][-1]["text"] == "card provider down"
    assert people.client(people.vera).post(f"{base}/resolve/", format="json").status_code == 403
    resolved = bob.post(f"{base}/resolve/", {"note": "retried"}, format="json").json()
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == "bob"
    assert bob.post(f"{base}/resolve/", format="json").status_code == 409
    assert Alert.objects.get(pk=alert["id"]).state == "resolved"


def test_silences_need_the_permission_and_a_future_end(people):
    sam = people.client(people.sam)
    later = (timezone.now() + timezone.timedelta(hours=1)).isoformat()
    response = sam.post("/api/v1/silences/", {"rule": "queue_backlog", "until": later},
                        format="json")
    assert response.status_code == 201 and response.json()["created_by"] == "sam"
    assert sam.post("/api/v1/silences/", {"rule": "nope", "until": later},
                    format="json").status_code == 409
    assert people.client(people.bob).post("/api/v1/silences/", {
        "rule": "queue_backlog", "until": later}, format="json").status_code == 403


def test_system_figures_are_for_staff(people):
    for path in ("resource-usage", "executor-stats", "db-pool-stats"):
        assert people.client(people.sam).get(f"/api/v1/system/{path}/").status_code == 200
        assert people.client(people.alice).get(f"/api/v1/system/{path}/").status_code == 403
