"""One error format, precise details, and no 500 for any malformed body."""

import json
import uuid

import pytest

from apps.api.views import executions as execution_views


def error_of(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.fixture
def alice(people):
    return people.client(people.alice)


def post_raw(client, url, raw: bytes, content_type="application/json"):
    return client.generic("POST", url, raw, content_type=content_type)


def test_10000_deep_json_is_a_400_not_a_crash(alice, three):
    deep = b"[" * 10000 + b"]" * 10000
    error = error_of(post_raw(alice, "/api/v1/executions/", deep), 400)
    assert error["code"] == "parse_error" and "deep" in error["message"]


def test_json_nested_past_the_limit_is_refused_even_when_python_could_parse_it(alice, three):
    body = {"workflow": "three-steps", "input": {"x": json.loads("[" * 200 + "]" * 200)}}
    error = error_of(post_raw(alice, "/api/v1/executions/", json.dumps(body).encode()), 400)
    assert "nested deeper than 64" in error["message"]


def test_a_3_mb_body_gets_413(alice, three):
    body = json.dumps({"workflow": "three-steps", "input": {"blob": "x" * 3_000_000}})
    error = error_of(post_raw(alice, "/api/v1/executions/", body.encode()), 413)
    assert error["code"] == "too_large" and error["details"][0]["where"] == "body"


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"NaN", b'{"input": NaN}',
                                 b"", b"[]", b"42", b'"text"', b"null"])
def test_malformed_or_non_object_bodies_get_400(alice, three, raw):
    error = error_of(post_raw(alice, "/api/v1/executions/", raw), 400)
    assert error["code"] in ("parse_error", "invalid")


def test_a_form_encoded_body_gets_415(alice, three):
    response = post_raw(alice, "/api/v1/executions/", b"workflow=three-steps",
                        content_type="application/x-www-form-urlencoded")
    assert error_of(response, 415)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("body, where", [
    ({"workflow": "three-steps", "input": []}, "input"),
    ({"workflow": "three-steps", "priority": "high"}, "priority"),
    ({"workflow": "three-steps", "priority": 10}, "priority"),
    ({"workflow": "three-steps", "wait": 31}, "wait"),
    ({"workflow": "three-steps", "wait": "soon"}, "wait"),
    ({"workflow": "three-steps", "queue": "nope"}, "queue"),
    ({"workflow": "three-steps", "deadline_s": -1}, "deadline_s"),
    ({"workflow": ["three-steps"]}, "workflow"),
    ({"version_id": "one"}, "version_id"),
    ({"definition": "a graph"}, "definition"),
    ({"workflow": "three-steps", "client_id": {"a": 1}}, "client_id"),
])
def test_wrong_types_name_the_field(alice, three, body, where):
    error = error_of(alice.post("/api/v1/executions/", body, format="json"), 400)
    assert error["code"] == "invalid"
    assert [d["where"] for d in error["details"]] == [where]


@pytest.mark.parametrize("body", [{}, {"workflow": "three-steps", "version_id": 1}])
def test_exactly_one_target_is_required(alice, three, body):
    error = error_of(alice.post("/api/v1/executions/", body, format="json"), 400)
    assert "exactly one of workflow, version_id or definition" in error["message"]


def test_input_against_the_workflows_schema_says_where(alice, people):
    from apps.workflows.services import publish_version
    from tests.conftest import load_example

    publish_version("retry", load_example("conditional_retry"), team_id=people.payments.pk)
    error = error_of(alice.post("/api/v1/executions/", {"workflow": "retry", "input": {}},
                                format="json"), 400)
    assert error["code"] == "invalid_input" and error["details"][0]["where"] == "input/"


def test_definition_problems_carry_node_and_edge_ids(alice):
    bad = {"name": "bad", "nodes": [{"id": "a", "type": "warp"}, {"id": "b", "type": "noop"}],
           "edges": [{"from": "b", "to": "ghost"}]}
    error = error_of(alice.post("/api/v1/workflows/", {"slug": "bad", "definition": bad},
                                format="json"), 400)
    assert error["code"] == "invalid_definition"
    assert {"a"} <= {d["node"] for d in error["details"]}
    assert any("b → ghost" in d["where"] for d in error["details"])


@pytest.mark.parametrize("url", ["/api/v1/executions/{}/", "/api/v1/executions/not-a-uuid/",
                                 "/api/workflow/status/{}", "/api/v1/workflows/ghost/",
                                 "/api/v1/workflows/three-steps/versions/9/",
                                 "/api/v1/schedules/999/", "/api/v1/no-such-thing/"])
def test_unknown_ids_and_paths_get_404(alice, three, url):
    assert error_of(alice.get(url.format(uuid.uuid4())), 404)["code"] == "not_found"


def test_cancelling_a_finished_execution_is_a_409(alice, three):
    started = alice.post("/api/v1/executions/", {"workflow": "three-steps"}, format="json")
    url = f"/api/v1/executions/{started.json()['id']}/cancel/"
    assert alice.post(url, {}, format="json").status_code == 200
    error = error_of(alice.post(url, {}, format="json"), 409)
    assert error["code"] == "conflict" and "already cancelled" in error["message"]


def test_a_signal_nothing_waits_for_is_a_409(alice, three):
    started = alice.post("/api/v1/executions/", {"workflow": "three-steps"}, format="json")
    response = alice.post(f"/api/v1/executions/{started.json()['id']}/signal/",
                          {"name": "go"}, format="json")
    assert error_of(response, 409)["code"] == "conflict"


def test_publishing_an_existing_slug_is_a_409(alice, three):
    response = alice.post("/api/v1/workflows/", {"slug": "three-steps",
                                                 "definition": three.graph}, format="json")
    assert "POST its versions/" in error_of(response, 409)["message"]


def test_a_bug_is_a_500_in_the_error_format_without_a_traceback(alice, three, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(execution_views.selectors, "execution_detail", broken)
    started = alice.post("/api/v1/executions/", {"workflow": "three-steps"}, format="json")
    response = alice.get(f"/api/v1/executions/{started.json()['id']}/")
    error = error_of(response, 500)
    assert error["code"] == "server_error"
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
