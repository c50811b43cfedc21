"""A workflow's Releases page in the admin, as staff personas that are not superusers.

Olga (owner) deploys and promotes; Oscar (operator) may abort and roll back
but sees no deploy form; Vera (viewer) only reads; Xavier (staff, no release
permission) gets a 403.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from apps.workflows.models import Release, ReleaseEvent, WorkflowDefinition
from apps.workflows.services import publish_version

pytestmark = pytest.mark.django_db

V1 = {"name": "Pay", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 1}}}]}
V2 = {"name": "Pay", "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 2}}},
                               {"id": "b", "type": "noop"}],
      "edges": [{"from": "a", "to": "b"}]}
BASE = ["view_workflowdefinition", "view_workflowversion", "view_release",
        "view_releaseevent"]
ROLES = {"owner": BASE + ["deploy_release", "rollback_release"],
         "operator": BASE + ["rollback_release"], "viewer": BASE,
         "outsider": ["view_workflowdefinition"]}


@pytest.fixture
def pay():
    publish_version("pay", V1)
    publish_version("pay", V2, make_current=False, notes="adds b")
    return WorkflowDefinition.objects.get(slug="pay")


def login(client, django_user_model, role):
    user = django_user_model.objects.create_user(role, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="workflows", codename__in=ROLES[role]))
    client.force_login(user)
    return client


def url(definition, view="releases", *args):
    return reverse(f"admin:workflows_workflowdefinition_{view}", args=[definition.pk, *args])


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_owner_deploys_a_canary_from_the_form_and_sees_it_live(client, django_user_model,
                                                                   pay):
    login(client, django_user_model, "owner")
    page = client.get(url(pay))
    assert page.status_code == 200 and "Deploy" in text(page)

    response = client.post(url(pay, "deploy"), {
        "version": 2, "strategy": "canary", "steps": "10,50,100",
        "routing_key": "idempotency_key", "thresholds": '{"max_failure_rate": 0.05}',
        "smoke_inputs": "", "reason": "try b"})

    assert response.status_code == 302
    release = Release.objects.get(state="canary")
    assert release.steps == [10, 50, 100] and release.thresholds["max_failure_rate"] == 0.05
    page = text(client.get(url(pay)))
    assert "step 1 of 3: 10% of new executions on v2" in page
    assert "Promote" in page and "Abort" in page and "Rollback" in page
    assert "try b" in page and "candidate" in page


def test_a_bad_deploy_shows_every_problem_on_the_form(client, django_user_model, pay):
    login(client, django_user_model, "owner")

    response = client.post(url(pay, "deploy"), {
        "version": 2, "strategy": "canary", "steps": "50,10",
        "routing_key": "idempotency_key", "thresholds": "{}", "reason": ""})

    assert response.status_code == 200
    assert "invalid canary steps" in text(response) and "steps: must increase" in text(response)
    assert not Release.objects.filter(state="canary").exists()


def test_actions_ask_for_confirmation_first(client, django_user_model, pay):
    login(client, django_user_model, "owner")
    client.post(url(pay, "deploy"), {"version": 2, "strategy": "canary",
                                      "steps": "5,25,100", "routing_key": "idempotency_key",
                                      "thresholds": "{}"})

    confirm = client.get(url(pay, "release_action", "promote"))
    assert confirm.status_code == 200 and 'value="Yes, promote"' in confirm.content.decode()
    assert Release.objects.get(state="canary").percent == 5.0

    client.post(url(pay, "release_action", "promote"), {"reason": "looks fine"})
    assert Release.objects.get(state="canary").percent == 25.0
    assert ReleaseEvent.objects.filter(kind="promote", actor_name="owner",
                                       reason="looks fine").exists()


def test_the_operator_rolls_back_but_cannot_deploy(client, django_user_model, pay):
    login(client, django_user_model, "operator")
    page = text(client.get(url(pay)))
    assert "Rollback" in page and "Promote" not in page and "Deploy A" not in page

    assert client.post(url(pay, "deploy"), {"version": 2, "strategy": "immediate"}
                       ).status_code == 403
    assert client.get(url(pay, "release_action", "promote")).status_code == 403
    publish_version("pay", V2)  # v2 current now
    response = client.post(url(pay, "release_action", "rollback"), {"to": "1", "reason": "x"})

    assert response.status_code == 302
    assert WorkflowDefinition.objects.get(slug="pay").current_version.number == 1


def test_the_viewer_reads_and_the_outsider_is_refused(client, django_user_model, pay):
    login(client, django_user_model, "viewer")
    page = text(client.get(url(pay)))
    assert "v2" in page and "Rollback" not in page
    assert client.post(url(pay, "release_action", "rollback"), {}).status_code == 403

    client.logout()
    login(client, django_user_model, "outsider")
    assert client.get(url(pay)).status_code == 403
    assert client.get(url(pay, "diff") + "?a=1&b=2").status_code == 403


def test_the_diff_shows_both_versions_side_by_side(client, django_user_model, pay):
    login(client, django_user_model, "viewer")

    page = client.get(url(pay, "diff") + "?a=1&b=2").content.decode()

    assert "1 node(s) added, 0 removed, 1 changed; 1 edge(s) added, 0 removed" in \
        re.sub(r"\s+", " ", page)
    assert re.search(r'line-changed"><td class="path">config\.output\.n</td>\s*'
                     r'<td class="old"><code>1</code></td>\s*<td class="new"><code>2</code>',
                     page)
    assert 'tag-added">added' in page and "a → b" in page


def test_a_version_exports_as_json(client, django_user_model, pay):
    login(client, django_user_model, "viewer")

    response = client.get(url(pay, "export", 2))

    assert response["Content-Disposition"] == 'attachment; filename="pay-v2.json"'
    assert response.json()["version"]["notes"] == "adds b"


def test_the_release_log_lists_every_workflow_read_only(client, django_user_model, pay):
    login(client, django_user_model, "viewer")

    page = client.get(reverse("admin:workflows_releaseevent_changelist"))
    entry = ReleaseEvent.objects.first()
    detail = client.get(reverse("admin:workflows_releaseevent_change", args=[entry.pk]))

    assert page.status_code == 200 and "published" in text(page)
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert client.get(reverse("admin:workflows_release_changelist")).status_code == 200
