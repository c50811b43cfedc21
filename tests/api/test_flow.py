"""Concurrency limits, resource pools and rate limits over the API (global rows: the
Django permissions of the owners' group, like the admin)."""

import pytest

from apps.engine import limits


@pytest.fixture
def sam(people):
    return people.client(people.sam)


def test_limits_crud_through_the_services(sam, three):
    created = sam.post("/api/v1/limits/", {"workflow": "three-steps", "key": "input.customer",
                                           "max_running": 2}, format="json")
    assert created.status_code == 201, created.content
    limit = created.json()
    assert limit["workflow"] == "three-steps"
    assert [r.max_running for r in limits.rules()] == [2]  # the service forgot the cache
    url = f"/api/v1/limits/{limit['id']}/"
    assert sam.patch(url, {"max_running": 5}, format="json").json()["max_running"] == 5
    assert sam.get("/api/v1/limits/").json()[0]["max_running"] == 5
    assert sam.delete(url).status_code == 204
    assert sam.get(url).status_code == 404


def test_a_bad_limit_key_names_the_field(sam, three):
    response = sam.post("/api/v1/limits/", {"key": "input.x", "max_running": 1},
                        format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["where"] == "key"


def test_pools_crud(sam):
    created = sam.post("/api/v1/pools/", {"name": "warehouse_db", "size": 3}, format="json")
    assert created.status_code == 201
    assert sam.post("/api/v1/pools/", {"name": "warehouse_db", "size": 3},
                    format="json").status_code == 400
    assert sam.patch("/api/v1/pools/warehouse_db/", {"size": 5},
                     format="json").json()["size"] == 5
    assert sam.delete("/api/v1/pools/warehouse_db/").status_code == 204
    assert sam.get("/api/v1/pools/").json() == []


def test_rate_limits_crud_and_unknown_targets(sam):
    bad = sam.post("/api/v1/rate-limits/", {"scope": "queue", "target": "nope", "rate": 5},
                   format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["where"] == "target"
    created = sam.post("/api/v1/rate-limits/", {"scope": "queue", "target": "default",
                                                "rate": 100, "period_s": 60}, format="json")
    assert created.status_code == 201
    url = f"/api/v1/rate-limits/{created.json()['id']}/"
    assert sam.patch(url, {"burst": 10}, format="json").json()["burst"] == 10
    assert sam.delete(url).status_code == 204


@pytest.mark.parametrize("who", ["alice", "bob", "charlie"])
def test_team_roles_give_no_rights_over_global_flow_control(people, who):
    client = people.client(getattr(people, who))
    assert client.get("/api/v1/pools/").status_code == 403
    assert client.post("/api/v1/pools/", {"name": "p", "size": 1},
                       format="json").status_code == 403
