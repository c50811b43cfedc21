"""Starting (with wait), listing, following and steering executions over the API."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import APPROVAL, THREE

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = {"name": "Slow", "nodes": [{"id": "nap", "type": "delay", "config": {"seconds": 30}}],
        "edges": []}


@pytest.fixture
def bob(people):
    return people.client(people.bob)


def test_wait_returns_the_result_of_a_short_workflow(bob, three, engine):
    response = bob.post("/api/v1/executions/", {"workflow": "three-steps", "input": {"who": "api"},
                                                "wait": 20}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["output"] is not None
    assert body["progress"]["percent"] == 100


def test_wait_returns_the_id_and_status_of_a_long_one(bob, people, engine):
    response = bob.post("/api/v1/executions/", {"definition": SLOW, "wait": 0.5},
                        format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] in ("pending", "running", "waiting") and body["output"] is None
    detail = bob.get(f"/api/v1/executions/{body['id']}/").json()
    assert detail["why"][0]["code"] == "timer"


def test_an_idempotency_key_returns_the_same_execution(bob, three):
    body = {"workflow": "three-steps", "idempotency_key": "order-7"}
    first = bob.post("/api/v1/executions/", body, format="json").json()
    second = bob.post("/api/v1/executions/", body, format="json").json()
    assert first["id"] == second["id"]


def test_another_teams_idempotency_key_does_not_reveal_its_execution(bob, people, three):
    charlie = people.client(people.charlie)
    charlie.post("/api/v1/executions/", {"definition": THREE, "idempotency_key": "k"},
                 format="json")
    response = bob.post("/api/v1/executions/", {"workflow": "three-steps",
                                                "idempotency_key": "k"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["where"] == "idempotency_key"


def test_a_start_answers_what_a_later_read_of_the_execution_shows(bob, three):
    """A new execution is answered from what the start wrote, not read back: the same."""
    started = bob.post("/api/v1/executions/", {"workflow": "three-steps", "client_id": "c",
                                               "priority": 7}, format="json")
    assert started.status_code == 201
    listed = bob.get("/api/v1/executions/?client_id=c").json()["results"]
    assert listed == [started.json()]


def test_lists_and_details_leave_the_versions_graph_unread(bob, three):
    """A big workflow's graph is megabytes of JSON: no execution page decodes it per row."""
    bob.post("/api/v1/executions/", {"workflow": "three-steps"}, format="json")
    with CaptureQueriesContext(connection) as queries:
        listed = bob.get("/api/v1/executions/").json()["results"]
        bob.get(f"/api/v1/executions/{listed[0]['id']}/")
        bob.get("/api/workflow/reconnect/c")
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries
                if '"workflows_workflowversion"."graph"' in q["sql"]]


def test_detail_has_node_runs_and_events_come_in_seq_order(bob, three, engine):
    started = bob.post("/api/v1/executions/", {"workflow": "three-steps", "wait": 20},
                       format="json").json()
    detail = bob.get(f"/api/v1/executions/{started['id']}/").json()
    assert [r["node_id"] for r in detail["node_runs"]] == ["a", "b", "c"]
    assert detail["why"] == []
    events = bob.get(f"/api/v1/executions/{started['id']}/events/?after=0").json()
    seqs = [e["seq"] for e in events["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and events["more"] is False
    assert events["last_seq"] == detail["last_seq"]
    later = bob.get(f"/api/v1/executions/{started['id']}/events/?after=2&limit=2").json()
    assert [e["seq"] for e in later["events"]] == [3, 4] and later["more"] is True


def test_the_list_filters_and_pages_without_a_count(bob, three):
    for i in range(3):
        bob.post("/api/v1/executions/", {"workflow": "three-steps", "client_id": f"c{i % 2}",
                                         "priority": 5}, format="json")
    page = bob.get("/api/v1/executions/?limit=2").json()
    assert len(page["results"]) == 2 and page["next"] and "count" not in page
    rest = bob.get(page["next"]).json()
    assert len(rest["results"]) == 1
    assert len(bob.get("/api/v1/executions/?client_id=c0").json()["results"]) == 2
    assert bob.get("/api/v1/executions/?status=succeeded").json()["results"] == []
    assert len(bob.get("/api/v1/executions/?workflow=three-steps&version=1")
               .json()["results"]) == 3
    assert bob.get("/api/v1/executions/?created_after=2999-01-01T00:00:00Z").json()[
        "results"] == []
    bad = bob.get("/api/v1/executions/?status=sleeping")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["where"] == "status"


def test_an_approval_is_decided_through_the_api(bob, people, engine):
    from apps.workflows.services import publish_version

    publish_version("ship", APPROVAL, team_id=people.payments.pk)
    started = bob.post("/api/v1/executions/", {"workflow": "ship", "wait": 1},
                       format="json").json()
    for _ in range(200):
        approvals = bob.get("/api/v1/approvals/").json()
        if approvals:
            break
        time.sleep(0.05)
    assert approvals[0]["title"] == "Ship it?" and approvals[0]["execution"] == started["id"]
    decided = bob.post(f"/api/v1/approvals/{approvals[0]['id']}/decide/",
                       {"decision": "approve", "note": "go"}, format="json")
    assert decided.status_code == 200
    for _ in range(200):
        detail = bob.get(f"/api/v1/executions/{started['id']}/").json()
        if detail["status"] == "succeeded":
            break
        time.sleep(0.05)
    assert detail["status"] == "succeeded"
    review = next(r for r in detail["node_runs"] if r["node_id"] == "review")
    assert review["output"]["decision"] == "approved" and review["output"]["by"] == "bob"
    again = bob.post(f"/api/v1/approvals/{approvals[0]['id']}/decide/",
                     {"decision": "approve"}, format="json")
    assert again.status_code == 409


def test_the_seed_aliases_answer_like_v1(bob, three):
    started = bob.post("/api/workflow/execute", {"workflow": "three-steps",
                                                 "client_id": "tab-1"}, format="json")
    assert started.status_code == 201
    execution_id = started.json()["id"]
    status = bob.get(f"/api/workflow/status/{execution_id}").json()
    assert status["id"] == execution_id and "node_runs" in status
    unfinished = bob.get("/api/workflow/reconnect/tab-1").json()
    assert [e["id"] for e in unfinished["executions"]] == [execution_id]
    assert bob.post(f"/api/workflow/cancel/{execution_id}", {}, format="json").json()[
        "status"] == "cancelled"
    assert bob.get("/api/workflow/reconnect/tab-1").json()["executions"] == []
    stats = bob.get("/api/workflow/stats").json()
    assert stats["finished_in_window"] == {"cancelled": 1}
    assert {q["queue"] for q in stats["queues"]} >= {"default", "realtime"}
