"""Publishing, versions, validation, export and diff over the API."""

import copy

import pytest

from tests.api.conftest import THREE


@pytest.fixture
def alice(people):
    return people.client(people.alice)


def test_publishing_creates_version_1_owned_by_the_team(alice):
    response = alice.post("/api/v1/workflows/", {"slug": "three", "name": "Three",
                                                 "definition": THREE}, format="json")
    assert response.status_code == 201
    assert response.json()["number"] == 1 and response.json()["current"] is True
    workflow = alice.get("/api/v1/workflows/three/").json()
    assert workflow["team"] == "payments" and workflow["current_version"] == 1
    assert [v["number"] for v in workflow["versions"]] == [1]


def test_the_same_graph_returns_the_existing_version_and_a_new_one_is_201(alice, three):
    url = "/api/v1/workflows/three-steps/versions/"
    same = alice.post(url, {"definition": THREE}, format="json")
    assert same.status_code == 200 and same.json()["number"] == 1
    changed = copy.deepcopy(THREE)
    changed["nodes"].append({"id": "d", "type": "noop"})
    changed["edges"].append({"from": "c", "to": "d"})
    new = alice.post(url, {"definition": changed, "notes": "adds d"}, format="json")
    assert new.status_code == 201 and new.json()["number"] == 2
    assert new.json()["notes"] == "adds d" and new.json()["author"] == "alice"
    assert [v["number"] for v in alice.get(url).json()] == [2, 1]

    diff = alice.get("/api/v1/workflows/three-steps/versions/1/diff/2/").json()
    assert [n["id"] for n in diff["nodes_added"]] == ["d"] and diff["empty"] is False
    assert diff["nodes_removed"] == [] and diff["nodes_changed"] == []
    assert diff["edges_added"] == [{"from": "c", "to": "d"}]


def test_export_returns_the_definition_itself(alice, three):
    response = alice.get("/api/v1/workflows/three-steps/versions/1/?format=export")
    assert response.json() == THREE
    assert "three-steps-v1.json" in response["Content-Disposition"]
    detail = alice.get("/api/v1/workflows/three-steps/versions/1/").json()
    assert detail["definition"] == THREE and detail["checksum"] == three.checksum


def test_validate_lists_every_problem_and_saves_nothing(alice):
    bad = {"name": "bad", "nodes": [{"id": "a", "type": "noop"}, {"id": "a", "type": "noop"},
                                    {"id": "b", "type": "nope"}],
           "edges": [{"from": "a", "to": "zz"}]}
    result = alice.post("/api/v1/workflows/validate/", {"definition": bad},
                        format="json").json()
    assert result["valid"] is False and len(result["problems"]) >= 3
    assert {"a", "b"} <= {p["node"] for p in result["problems"]}
    ok = alice.post("/api/v1/workflows/validate/", {"definition": THREE}, format="json")
    assert ok.json() == {"valid": True, "problems": []}
    assert alice.get("/api/v1/workflows/").json()["results"] == []


def test_a_user_in_several_owned_teams_names_the_team(people):
    from apps.teams.models import Membership

    Membership.objects.create(team=people.other, user=people.alice, role="owner")
    alice = people.client(people.alice)
    unnamed = alice.post("/api/v1/workflows/", {"slug": "x", "definition": THREE},
                         format="json")
    assert unnamed.status_code == 400
    assert unnamed.json()["error"]["details"][0]["where"] == "team"
    named = alice.post("/api/v1/workflows/", {"slug": "x", "definition": THREE,
                                              "team": "other"}, format="json")
    assert named.status_code == 201
    assert people.client(people.charlie).get("/api/v1/workflows/x/").status_code == 200


def test_a_member_without_an_owned_team_cannot_publish(people):
    response = people.client(people.bob).post("/api/v1/workflows/",
                                              {"slug": "x", "definition": THREE},
                                              format="json")
    assert response.status_code == 403
    assert "you own no team" in response.json()["error"]["message"]


def test_adhoc_slugs_are_reserved(alice):
    response = alice.post("/api/v1/workflows/", {"slug": "adhoc-x", "definition": THREE},
                          format="json")
    assert response.json()["error"]["details"][0]["where"] == "slug"
