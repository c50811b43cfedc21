"""Personas on every object endpoint: Charlie (another team) gets 404 everywhere, lists
included; Vera (viewer) reads; Bob (operator) also operates; Alice (owner) also
publishes and schedules; Sam (staff) sees everything."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import URLResolver, resolve
from django.utils import timezone

from apps.engine import rollout
from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from apps.operations import interventions
from apps.operations.models import Alert
from apps.schedules.models import MaintenanceWindow
from apps.schedules.services import create_schedule
from apps.workflows.services import publish_version
from tests.api.conftest import APPROVAL, THREE

SAGA = {"name": "Saga", "nodes": [
    {"id": "reserve", "type": "noop", "compensate": "release"},
    {"id": "nap", "type": "delay", "config": {"seconds": 600}},
    {"id": "release", "type": "noop"}], "edges": [{"from": "reserve", "to": "nap"}]}


class World:
    def __init__(self, people):
        self.people = people
        publish_version("three-steps", THREE, author=people.alice, team_id=people.payments.pk)
        changed = {**THREE, "description": "changed"}
        publish_version("three-steps", changed, author=people.alice)
        publish_version("ship", APPROVAL, author=people.alice, team_id=people.payments.pk)
        publish_version("saga", SAGA, author=people.alice, team_id=people.payments.pk)
        self.parked = start_execution(StartRequest(workflow="ship", client_id="c-1"))
        self.saga = start_execution(StartRequest(workflow="saga"))
        for _ in range(20):
            drain(budget_s=0.5)
            if (NodeRun.objects.filter(execution=self.parked, status="waiting").exists()
                    and NodeRun.objects.filter(execution=self.saga, status="waiting").exists()):
                break
        # Started after the drain, so they stay pending (nothing runs them in these tests).
        self.pending = start_execution(StartRequest(workflow="three-steps", client_id="c-1"))
        self.failed = interventions.mark_failed(
            start_execution(StartRequest(workflow="three-steps")).pk)
        interventions.mark_failed(self.saga.pk)  # its reserve step is done: compensable
        self.paused = interventions.pause(start_execution(StartRequest(workflow="three-steps")).pk)
        self.alert = Alert.objects.create(
            rule="execution_failed", severity="critical", dedupe_key="execution_failed:x",
            title="three-steps failed", subject_kind="workflow", subject_id="three-steps",
            workflow=self.pending.definition, first_seen=timezone.now(),
            last_seen=timezone.now())
        self.approval = NodeRun.objects.get(execution=self.parked, node_id="review")
        # ship has an active canary (v2), for the promote and abort endpoints.
        publish_version("ship", {**APPROVAL, "description": "v2"}, make_current=False)
        rollout.deploy("ship", 2, strategy="canary")
        self.schedule = create_schedule("three-steps", "0 3 * * *")
        now = timezone.now()
        self.window = MaintenanceWindow.objects.create(
            name="payments freeze", starts_at=now, ends_at=now + timedelta(hours=1),
            workflow=self.schedule.workflow)

    def urls(self):
        """(method, url, body, least role) of every endpoint that names one object."""
        e, p = self.pending.pk, self.parked.pk
        s, w = self.schedule.pk, self.window.pk
        f, a = self.failed.pk, self.alert.pk
        soon = timezone.now() + timedelta(hours=1)
        return [
            ("get", "/api/v1/workflows/three-steps/", None, "viewer"),
            ("get", "/api/v1/workflows/three-steps/versions/", None, "viewer"),
            ("post", "/api/v1/workflows/three-steps/versions/",
             {"definition": {**THREE, "description": "third"}}, "owner"),
            ("get", "/api/v1/workflows/three-steps/versions/1/", None, "viewer"),
            ("get", "/api/v1/workflows/three-steps/versions/1/?format=export", None, "viewer"),
            ("get", "/api/v1/workflows/three-steps/versions/1/diff/2/", None, "viewer"),
            ("get", "/api/v1/workflows/three-steps/releases/", None, "viewer"),
            ("get", "/api/v1/workflows/three-steps/releases/current/", None, "viewer"),
            ("post", "/api/v1/workflows/three-steps/releases/",
             {"version": 1, "strategy": "canary"}, "owner"),
            ("post", "/api/v1/workflows/ship/releases/current/promote/", {}, "owner"),
            ("post", "/api/v1/workflows/ship/releases/current/abort/", {}, "operator"),
            ("post", "/api/v1/workflows/three-steps/releases/rollback/", {}, "operator"),
            ("get", f"/api/v1/executions/{e}/", None, "viewer"),
            ("get", f"/api/v1/executions/{e}/events/", None, "viewer"),
            ("post", f"/api/v1/executions/{e}/cancel/", {}, "operator"),
            ("post", f"/api/v1/executions/{p}/signal/",
             {"name": "approval", "payload": {"decision": "approved"}}, "operator"),
            ("post", f"/api/v1/approvals/{self.approval.pk}/decide/", {"decision": "approve"},
             "operator"),
            ("post", "/api/v1/executions/", {"workflow": "three-steps"}, "operator"),
            ("post", "/api/v1/executions/", {"version_id": self.pending.version_id},
             "operator"),
            ("get", f"/api/workflow/status/{e}", None, "viewer"),
            ("post", f"/api/workflow/cancel/{e}", {}, "operator"),
            ("post", "/api/workflow/execute", {"workflow": "three-steps"}, "operator"),
            ("get", f"/api/v1/schedules/{s}/", None, "viewer"),
            ("patch", f"/api/v1/schedules/{s}/", {"priority": 7}, "owner"),
            ("delete", f"/api/v1/schedules/{s}/", None, "owner"),
            ("post", "/api/v1/schedules/", {"workflow": "three-steps", "cron": "@daily"},
             "owner"),
            ("get", f"/api/v1/maintenance-windows/{w}/", None, "viewer"),
            ("patch", f"/api/v1/maintenance-windows/{w}/", {"reason": "x"}, "owner"),
            ("delete", f"/api/v1/maintenance-windows/{w}/", None, "owner"),
            ("post", "/api/v1/maintenance-windows/", {
                "name": "w", "workflow": "three-steps",
                "starts_at": timezone.now().isoformat(), "ends_at": soon.isoformat()},
             "owner"),
            ("get", f"/api/v1/executions/{e}/diagnosis/", None, "viewer"),
            ("post", f"/api/v1/executions/{f}/retry/", {"node": "a"}, "operator"),
            ("post", f"/api/v1/executions/{p}/skip/",
             {"node": "review", "output": {"decision": "approved"}}, "operator"),
            ("post", f"/api/v1/executions/{f}/resume/", {}, "operator"),
            ("post", f"/api/v1/executions/{f}/rerun/", {"from_node": "a"}, "operator"),
            ("post", f"/api/v1/executions/{self.saga.pk}/compensate/", {}, "operator"),
            ("post", f"/api/v1/executions/{e}/pause/", {"reason": "look"}, "operator"),
            ("post", f"/api/v1/executions/{self.paused.pk}/unpause/", {}, "operator"),
            ("post", f"/api/v1/executions/{e}/mark-failed/", {}, "operator"),
            ("get", f"/api/v1/alerts/{a}/", None, "viewer"),
            ("post", f"/api/v1/alerts/{a}/acknowledge/", {"note": "mine"}, "operator"),
            ("post", f"/api/v1/alerts/{a}/assign/", {"user": "bob"}, "operator"),
            ("post", f"/api/v1/alerts/{a}/comment/", {"text": "looking"}, "operator"),
            ("post", f"/api/v1/alerts/{a}/resolve/", {}, "operator"),
        ]


@pytest.fixture
def world(people):
    return World(people)


def call(client, method, url, body):
    """One request as the test client sends it (JSON body for writes)."""
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


ENDPOINTS = list(range(44))
# Objects that belong to no team (queues are global, a client id is the caller's own).
GLOBAL_OBJECTS = {"queue-pause", "queue-resume", "seed-reconnect", "limit-detail",
                  "pool-detail", "ratelimit-detail"}


def api_patterns(patterns=None, prefix=""):
    """(route, name) of every pattern under apps.api.urls."""
    from apps.api import urls

    out = []
    for entry in urls.urlpatterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            out.extend(api_patterns(entry.url_patterns, prefix + str(entry.pattern)))
        else:
            out.append((prefix + str(entry.pattern), entry.name))
    return out
RANK = {"viewer": 1, "operator": 2, "owner": 3}
PERSONAS = {"alice": "owner", "bob": "operator", "vera": "viewer", "sam": "owner"}


def test_the_endpoint_list_covers_every_api_url_with_an_id(world):
    """An endpoint added to the API with an object in its path must be added here."""
    named = {resolve(urlsplit(url).path).url_name for _, url, _, _ in world.urls()}
    with_ids = {name for url, name in api_patterns() if "<" in url} - GLOBAL_OBJECTS
    assert with_ids <= named, with_ids - named
    assert len(world.urls()) == len(ENDPOINTS)


@pytest.mark.parametrize("index", ENDPOINTS)
def test_an_outsider_gets_404_on_every_object_endpoint(world, index):
    method, url, body, _ = world.urls()[index]
    response = call(world.people.client(world.people.charlie), method, url, body)
    assert response.status_code == 404, (method, url, response.content)
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("index", ENDPOINTS)
@pytest.mark.parametrize("who", sorted(PERSONAS))
def test_team_roles_and_staff_on_every_object_endpoint(world, who, index):
    """Allowed when the persona's role reaches the endpoint's; else 403 (never 404:
    they can see it)."""
    method, url, body, least = world.urls()[index]
    response = call(world.people.client(getattr(world.people, who)), method, url, body)
    if RANK[PERSONAS[who]] >= RANK[least]:
        assert 200 <= response.status_code < 300, (who, method, url, response.content)
    else:
        assert response.status_code == 403, (who, method, url, response.content)
        assert response.json()["error"]["code"] == "permission_denied"


LISTS = ["/api/v1/workflows/", "/api/v1/executions/", "/api/v1/approvals/", "/api/v1/alerts/",
         "/api/v1/schedules/", "/api/v1/maintenance-windows/",
         "/api/workflow/reconnect/c-1", "/api/v1/executions/?client_id=c-1"]


def _items(data):
    if isinstance(data, list):
        return data
    return data.get("results", data.get("executions"))


@pytest.mark.parametrize("url", LISTS)
def test_lists_show_the_outsider_nothing_and_the_team_everything(world, url):
    people = world.people
    assert _items(people.client(people.charlie).get(url).json()) == []
    for user in (people.alice, people.bob, people.vera, people.sam):
        assert len(_items(people.client(user).get(url).json())) >= 1, user


def test_stats_count_only_what_the_caller_sees(world):
    people = world.people
    mine = people.client(people.vera).get("/api/workflow/stats").json()
    theirs = people.client(people.charlie).get("/api/workflow/stats").json()
    # Unfinished ones: parked, pending and paused (the failed two are finished).
    assert sum(mine["executions"].values()) == 3 and mine["pending_approvals"] == 1
    assert theirs["executions"] == {} and theirs["pending_approvals"] == 0


def test_staff_only_endpoints_refuse_team_members(world):
    people = world.people
    for user in (people.alice, people.charlie):
        client = people.client(user)
        assert client.get("/api/v1/system/stats/").status_code == 403
        assert client.post("/api/v1/queues/default/pause/").status_code == 403
    staff = people.client(people.sam)
    assert staff.get("/api/v1/system/stats/").status_code == 200
    assert staff.post("/api/v1/queues/default/pause/").json()["paused"] is True
    assert staff.post("/api/v1/queues/default/resume/").json()["paused"] is False


def test_an_outsider_cannot_start_another_teams_inline_definition_as_theirs(world):
    """Inline definitions belong to the starter's team: the same graph started by
    Charlie is Charlie's run, and Alice's team cannot see it."""
    people = world.people
    charlie = people.client(people.charlie)
    started = charlie.post("/api/v1/executions/", {"definition": THREE}, format="json").json()
    assert people.client(people.alice).get(
        f"/api/v1/executions/{started['id']}/").status_code == 404
    assert charlie.get(f"/api/v1/executions/{started['id']}/").status_code == 200
