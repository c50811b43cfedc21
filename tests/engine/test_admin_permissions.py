"""The engine's admin as each persona sees it (see tests/personas.py).

Vera (viewer) sees every page and can change nothing: no action is offered,
and posting one anyway, opening a form or pressing a button is refused.
Otto (operator) starts, cancels, decides approvals and pauses queues, but
edits no limit, pool or rate limit unless that permission is granted to him.
Olga (owner) edits them, through the flow-control services. django-q2's own
pages are for superusers only.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from apps.engine import flow_control, limits, protocol, ratelimits
from apps.engine.models import (
    ConcurrencyLimit,
    Execution,
    ExecutionEvent,
    NodeRun,
    PendingApproval,
    Queue,
    RateLimit,
    ResourcePool,
)
from apps.engine.queues import ensure_queues
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from apps.workflows.models import WorkflowDefinition, WorkflowVersion
from apps.workflows.services import publish_version
from tests.engine.test_waits import REVIEW
from tests.personas import admin_url, login, make_persona, offered_actions, post_action
from tests.test_admin import SLOW

pytestmark = pytest.mark.django_db

PAGES = (WorkflowDefinition, WorkflowVersion, Execution, NodeRun, ExecutionEvent,
         PendingApproval, Queue, ConcurrencyLimit, ResourcePool, RateLimit)
FLOW_CONTROL = (ConcurrencyLimit, ResourcePool, RateLimit)


@pytest.fixture
def world(db):
    """A running execution, a workflow to start, and one of each flow-control row."""
    publish_version("slow", SLOW)
    execution = start_execution(StartRequest(workflow="slow"))
    assert [c.node_id for c in protocol.claim("test-worker", 10, 60).claims] == ["first"]
    ensure_queues()
    world = {
        "execution": Execution.objects.get(pk=execution.pk),
        "definition": WorkflowDefinition.objects.get(slug="slow"),
        "limit": flow_control.save_concurrency_limit(ConcurrencyLimit(max_running=5)),
        "pool": flow_control.save_resource_pool(ResourcePool(name="warehouse", size=2)),
        "rate": flow_control.save_rate_limit(RateLimit(scope="queue", target="default",
                                                       rate=10)),
    }
    # This process now caches the rules as they are (the tests' transaction never
    # commits, so the services' after-commit step did not run here).
    limits.forget_rules()
    ratelimits.forget_rules()
    return world


def rows(world):
    return {ConcurrencyLimit: world["limit"], ResourcePool: world["pool"],
            RateLimit: world["rate"]}


def flow_control_state():
    return (list(ConcurrencyLimit.objects.values_list("id", "max_running")),
            list(ResourcePool.objects.values_list("name", "size")),
            list(RateLimit.objects.values_list("id", "rate")))


# --- Vera, the viewer ------------------------------------------------------------------

def test_viewer_sees_every_engine_page(vera, world):
    client = login(vera)
    for model in PAGES:
        assert client.get(admin_url(model, "changelist")).status_code == 200, model
    for model, row in rows(world).items():
        assert client.get(admin_url(model, "change", row.pk)).status_code == 200, model
    page = client.get(admin_url(Execution, "change", world["execution"].pk))
    assert page.status_code == 200 and b"first" in page.content


def braid_models():
    from django.contrib import admin

    return [m for m in admin.site._registry
            if m._meta.app_label in ("workflows", "engine", "schedules", "operations")]


def test_viewer_is_offered_no_action_anywhere(vera, world):
    client = login(vera)
    for model in PAGES:
        assert offered_actions(client, model) == set(), model
    for model in braid_models():  # every Braid page, also those of other floors
        if client.get(admin_url(model, "changelist")).status_code == 200:
            assert offered_actions(client, model) == set(), model


def test_viewer_posting_actions_anyway_changes_nothing(vera, world):
    client = login(vera)
    execution, definition = world["execution"], world["definition"]
    before = flow_control_state()

    post_action(client, Execution, "cancel_selected", [execution.pk])
    post_action(client, Queue, "pause_selected", ["default"])
    post_action(client, WorkflowDefinition, "start_selected", [definition.pk])
    for model, row in rows(world).items():
        post_action(client, model, "delete_selected", [row.pk], post="yes")

    assert Execution.objects.get(pk=execution.pk).status == "running"
    assert not Queue.objects.get(name="default").paused
    assert Execution.objects.count() == 1
    assert flow_control_state() == before


def test_viewer_cannot_open_or_post_any_flow_control_form(vera, world):
    client = login(vera)
    before = flow_control_state()
    for model, row in rows(world).items():
        assert client.get(admin_url(model, "add")).status_code == 403, model
        assert client.post(admin_url(model, "add"), {"name": "x", "size": 9, "max_running": 1,
                                                     "scope": "queue", "target": "background",
                                                     "rate": 1, "period_s": 1}
                           ).status_code == 403, model
        assert client.get(admin_url(model, "delete", row.pk)).status_code == 403, model
        assert client.post(admin_url(model, "delete", row.pk),
                           {"post": "yes"}).status_code == 403, model
    response = client.post(admin_url(ConcurrencyLimit, "change", world["limit"].pk),
                           {"workflow": "", "key": "", "max_running": 99})
    assert response.status_code == 403
    assert flow_control_state() == before


def test_viewer_gets_no_start_button_and_pressing_it_is_refused(vera, world):
    client = login(vera)
    definition = world["definition"]
    page = client.get(admin_url(WorkflowDefinition, "change", definition.pk))
    assert page.status_code == 200 and b"Start execution" not in page.content

    assert client.post(admin_url(WorkflowDefinition, "start", definition.pk)).status_code == 403
    assert Execution.objects.count() == 1


def test_viewer_cannot_edit_a_workflow_definition(vera, world):
    definition = world["definition"]
    response = login(vera).post(admin_url(WorkflowDefinition, "change", definition.pk),
                                {"name": "renamed", "description": "", "owner": ""})
    assert response.status_code == 403
    assert WorkflowDefinition.objects.get(pk=definition.pk).name != "renamed"


# --- Otto, the operator ----------------------------------------------------------------------

def test_operator_is_offered_exactly_the_operator_actions(otto, world):
    client = login(otto)
    # Cancel from the engine; resume, pause and unpause from the operations app.
    assert offered_actions(client, Execution) == {"cancel_selected", "resume_selected",
                                                  "pause_selected", "unpause_selected"}
    assert offered_actions(client, Queue) == {"pause_selected", "resume_selected"}
    assert offered_actions(client, WorkflowDefinition) == {"start_selected"}
    assert offered_actions(client, PendingApproval) == {"approve_selected", "reject_selected"}
    for model in FLOW_CONTROL:
        assert offered_actions(client, model) == set(), model


def test_operator_pauses_and_resumes_a_queue(otto, world):
    client = login(otto)
    response = post_action(client, Queue, "pause_selected", ["default"])
    assert "Paused default." in response.content.decode()
    queue = Queue.objects.get(name="default")
    assert queue.paused and queue.changed_by == "otto"

    post_action(client, Queue, "resume_selected", ["default"])
    assert not Queue.objects.get(name="default").paused


def test_operator_cancels_an_execution(otto, world):
    response = post_action(login(otto), Execution, "cancel_selected", [world["execution"].pk])
    assert "Cancelled 1 execution." in response.content.decode()
    assert Execution.objects.get(pk=world["execution"].pk).status == "cancelled"


def test_operator_starts_a_workflow_from_its_page(otto, world):
    client = login(otto)
    definition = world["definition"]
    page = client.get(admin_url(WorkflowDefinition, "change", definition.pk))
    assert b"Start execution" in page.content

    response = client.post(admin_url(WorkflowDefinition, "start", definition.pk),
                           {"input": "{}", "queue": "default", "priority": 5})
    assert response.status_code == 302
    assert Execution.objects.filter(definition=definition).count() == 2


def test_operator_edits_no_limit_pool_or_rate_limit(otto, world):
    client = login(otto)
    before = flow_control_state()
    for model, row in rows(world).items():
        assert client.get(admin_url(model, "add")).status_code == 403, model
        assert client.get(admin_url(model, "delete", row.pk)).status_code == 403, model
    assert client.post(admin_url(ResourcePool, "change", "warehouse"),
                       {"size": 9, "description": ""}).status_code == 403
    assert flow_control_state() == before


def test_operator_granted_the_limit_permission_edits_limits_only(world,
                                                                 django_capture_on_commit_callbacks):
    otto = make_persona("otto", "operator", "engine.change_concurrencylimit")
    client = login(otto)
    limit = world["limit"]
    assert limits.rules()[0].max_running == 5  # cached in this process

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(admin_url(ConcurrencyLimit, "change", limit.pk),
                               {"workflow": "", "key": "", "max_running": 7})

    assert response.status_code == 302
    assert ConcurrencyLimit.objects.get(pk=limit.pk).max_running == 7
    assert limits.rules()[0].max_running == 7  # the service dropped the cached rules
    assert client.post(admin_url(ResourcePool, "change", "warehouse"),
                       {"size": 9, "description": ""}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_viewer_cannot_decide_an_approval_and_operator_can():
    vera, otto = make_persona("vera", "viewer"), make_persona("otto", "operator")
    start_execution(StartRequest(definition=REVIEW))
    drain(budget_s=1)
    run = NodeRun.objects.get(node_id="review")
    decide = {"decide": "yes", "note": "ok", "form": '{"amount": 3}'}

    assert offered_actions(login(vera), PendingApproval) == set()
    post_action(login(vera), PendingApproval, "approve_selected", [run.pk], **decide)
    assert NodeRun.objects.get(pk=run.pk).status == "waiting"

    response = post_action(login(otto), PendingApproval, "approve_selected", [run.pk], **decide)
    assert "Approved 1 approval(s)." in response.content.decode()
    run.refresh_from_db()
    assert run.status == "succeeded" and run.output["by"] == "otto"


# --- Olga, the owner ---------------------------------------------------------------------------

def test_owner_adds_limits_pools_and_rate_limits_and_caches_follow(
        olga, world, django_capture_on_commit_callbacks):
    client = login(olga)
    assert ratelimits.rules_for("background", 0, "noop") == []  # cached: no bucket for bulk

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(admin_url(RateLimit, "add"), {
            "scope": "queue", "target": "background", "rate": 3, "period_s": 60,
            "burst": ""}).status_code == 302
        assert client.post(admin_url(ResourcePool, "add"), {
            "name": "gpu", "size": 4, "description": "two cards"}).status_code == 302
        assert client.post(admin_url(ConcurrencyLimit, "change", world["limit"].pk), {
            "workflow": "", "key": "", "max_running": 1}).status_code == 302

    bucket = RateLimit.objects.get(target="background")
    assert ratelimits.rules_for("background", 0, "noop") == [bucket.pk]
    assert ResourcePool.objects.get(name="gpu").size == 4
    assert limits.rules()[0].max_running == 1


def test_owner_deletes_one_row_and_many_through_the_services(
        olga, world, django_capture_on_commit_callbacks):
    client = login(olga)
    assert limits.any_limits()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(admin_url(ConcurrencyLimit, "delete", world["limit"].pk),
                           {"post": "yes"}).status_code == 302
        post_action(client, RateLimit, "delete_selected", [world["rate"].pk], post="yes")
        post_action(client, ResourcePool, "delete_selected", ["warehouse"], post="yes")

    assert flow_control_state() == ([], [], [])
    assert not limits.any_limits()  # no stale cached limit keeps executions pending
    assert ratelimits.rules_for("default", 0, "noop") == []


def test_owner_form_errors_name_the_field(olga, world):
    response = login(olga).post(admin_url(RateLimit, "add"), {
        "scope": "queue", "target": "no-such-queue", "rate": 3, "period_s": 60})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["target"] == ["no queue 'no-such-queue'"]


# --- Oscar and django-q2's pages --------------------------------------------------------------

def test_outsider_staff_sees_nothing(oscar, world):
    client = login(oscar)
    for model in PAGES:
        assert client.get(admin_url(model, "changelist")).status_code == 403, model
    index = client.get("/admin/").content.decode()
    assert "Executions" not in index and "Django Q" not in index


DJANGO_Q_PAGES = ("/admin/django_q/schedule/", "/admin/django_q/schedule/add/",
                  "/admin/django_q/success/", "/admin/django_q/failure/")


def test_django_q_admin_refuses_staff_even_with_its_permissions(world):
    perms = Permission.objects.filter(content_type__app_label="django_q")
    olga = make_persona("olga", "owner", *[f"django_q.{p.codename}" for p in perms])
    client = login(olga)
    for url in DJANGO_Q_PAGES:
        assert client.get(url).status_code == 403, url
    response = client.post("/admin/django_q/schedule/add/", {
        "func": "os.system", "args": "'touch /tmp/owned'", "schedule_type": "O",
        "repeats": -1})
    assert response.status_code == 403
    assert "Django Q" not in client.get("/admin/").content.decode()


def test_django_q_admin_is_open_to_a_superuser(world):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = login(root)
    for url in DJANGO_Q_PAGES:
        assert client.get(url).status_code == 200, url


def test_every_admin_action_declares_its_permission():
    """An action without `permissions` is offered to anyone who may view the list.
    (django-q2's own actions are left as they are: only superusers reach its pages.)"""
    from django.contrib import admin

    undeclared = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == "django_q":
            continue
        for action in model_admin.actions or ():
            func = getattr(model_admin, action) if isinstance(action, str) else action
            if not getattr(func, "allowed_permissions", None):
                undeclared.append(f"{model._meta.label}.{getattr(func, '__name__', action)}")
    assert undeclared == []
