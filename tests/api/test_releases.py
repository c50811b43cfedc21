"""Releases over the API, as the team's personas: Alice owns payments (deploys,
promotes), Bob operates it (aborts, rolls back), Vera views it (reads), Charlie
owns another team (sees nothing of payments)."""

from __future__ import annotations

import copy

import pytest

from apps.engine.start import StartRequest, start_many
from apps.engine.worker import drain
from apps.workflows.models import Release, WorkflowDefinition
from apps.workflows.services import publish_version
from tests.api.conftest import THREE

URL = "/api/v1/workflows/three-steps/releases/"


@pytest.fixture
def two(three, people):
    """three-steps v1 current and v2 published (not current)."""
    changed = copy.deepcopy(THREE)
    changed["nodes"].append({"id": "d", "type": "noop"})
    changed["edges"].append({"from": "c", "to": "d"})
    return publish_version("three-steps", changed, author=people.alice, make_current=False)


def current() -> int:
    return WorkflowDefinition.objects.get(slug="three-steps").current_version.number


def test_the_owner_deploys_a_canary_and_everyone_in_the_team_sees_it(people, two):
    alice = people.client(people.alice)

    response = alice.post(URL, {"version": 2, "strategy": "canary", "steps": [10, 50, 100],
                                "thresholds": {"max_failure_rate": 0.05},
                                "reason": "adds d"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["strategy"], body["state"], body["percent"], body["step"]) == \
        ("canary", "canary", 10.0, 1)
    assert body["thresholds"]["max_failure_rate"] == 0.05 and body["created_by"] == "alice"
    start_many([StartRequest(workflow="three-steps", input={}) for _ in range(40)])
    while drain(budget_s=5):
        pass
    state = people.client(people.vera).get(URL + "current/").json()
    assert state["release"]["id"] == body["id"] and state["current_version"] == 1
    roles = {row["role"]: row for row in state["versions"]}
    assert roles["stable"]["started"] + roles["candidate"]["started"] == 40
    assert roles["candidate"]["failed"] == 0
    assert [e["kind"] for e in state["log"][:2]] == ["step", "deploy"]
    history = people.client(people.vera).get(URL).json()
    assert history[0]["id"] == body["id"]


def test_promote_step_by_step_then_the_candidate_is_current(people, two):
    alice = people.client(people.alice)
    alice.post(URL, {"version": 2, "strategy": "canary", "steps": [50, 100]}, format="json")

    first = alice.post(URL + "current/promote/", {"reason": "fine"}, format="json")
    second = alice.post(URL + "current/promote/", {}, format="json")

    assert first.json()["percent"] == 100.0 and second.json()["state"] == "completed"
    assert current() == 2
    assert alice.post(URL + "current/promote/", {}, format="json").status_code == 409


def test_the_operator_aborts_and_rolls_back_but_cannot_deploy_or_promote(people, two):
    bob = people.client(people.bob)
    assert bob.post(URL, {"version": 2}, format="json").status_code == 403
    people.client(people.alice).post(URL, {"version": 2, "strategy": "canary"}, format="json")
    assert bob.post(URL + "current/promote/", {}, format="json").status_code == 403

    aborted = bob.post(URL + "current/abort/", {"reason": "drill"}, format="json")
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    people.client(people.alice).post(URL, {"version": 2}, format="json")
    assert current() == 2

    rolled = bob.post(URL + "rollback/", {"to": 1, "reason": "back"}, format="json")

    assert rolled.status_code == 200 and rolled.json()["candidate_version"] == 1
    assert current() == 1


def test_the_viewer_reads_only_and_another_team_sees_nothing(people, two):
    people.client(people.alice).post(URL, {"version": 2, "strategy": "canary"}, format="json")
    vera = people.client(people.vera)
    assert vera.get(URL + "current/").status_code == 200
    for path in ("current/abort/", "rollback/", "current/promote/"):
        assert vera.post(URL + path, {}, format="json").status_code == 403
    charlie = people.client(people.charlie)
    assert charlie.get(URL + "current/").status_code == 404
    assert charlie.post(URL + "rollback/", {}, format="json").status_code == 404
    assert Release.objects.get(state="canary")


def test_token_scopes_guard_each_action(people, two):
    read_only = people.token_client(people.alice, scopes="read")
    operate = people.token_client(people.bob, scopes="read,operate")

    assert read_only.get(URL + "current/").status_code == 200
    assert read_only.post(URL, {"version": 2}, format="json").status_code == 403
    people.client(people.alice).post(URL, {"version": 2, "strategy": "canary"}, format="json")
    assert operate.post(URL + "current/abort/", {}, format="json").status_code == 200


@pytest.mark.parametrize("body, where", [
    ({"version": 2, "strategy": "canary", "steps": [50, 10, 100]}, "steps"),
    ({"version": 2, "strategy": "canary", "thresholds": {"nope": 1}}, "thresholds"),
    ({"version": 2, "strategy": "blue_green"}, ""),
    ({"version": 2, "strategy": "sideways"}, "strategy"),
    ({"strategy": "canary"}, "version"),
    ({"version": 9}, ""),
])
def test_a_bad_deploy_is_a_4xx_naming_the_problem(people, two, body, where):
    response = people.client(people.alice).post(URL, body, format="json")

    assert response.status_code in (400, 404), response.json()
    error = response.json()["error"]
    assert error["message"]
    assert not where or any(d["where"].startswith(where) for d in error["details"]), error
    assert not Release.objects.filter(state__in=("smoke", "canary")).exists()


def test_publishing_during_an_active_release_is_a_conflict(people, two):
    alice = people.client(people.alice)
    alice.post(URL, {"version": 2, "strategy": "canary"}, format="json")
    changed = copy.deepcopy(THREE)
    changed["name"] = "Three, renamed"

    response = alice.post("/api/v1/workflows/three-steps/versions/", {"definition": changed},
                          format="json")

    assert response.status_code == 409
    assert "active release" in response.json()["error"]["message"]
