"""Who may do what with releases, as non-superuser personas.

Olga owns (deploys), Oscar operates (rolls back and aborts), Vera views,
Xavier is an outsider with no release permission at all.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied

from apps.engine import rollout
from apps.workflows.models import Release
from apps.workflows.services import publish_version

pytestmark = pytest.mark.django_db

V1 = {"name": "Pay", "nodes": [{"id": "a", "type": "noop"}]}
V2 = {"name": "Pay", "nodes": [{"id": "a", "type": "noop", "config": {"output": {}}}]}
ROLES = {"owner": ["view_release", "deploy_release", "rollback_release"],
         "operator": ["view_release", "rollback_release"],
         "viewer": ["view_release"], "outsider": []}


@pytest.fixture
def people(django_user_model):
    users = {}
    for name, role in (("olga", "owner"), ("oscar", "operator"), ("vera", "viewer"),
                       ("xavier", "outsider")):
        user = django_user_model.objects.create_user(name)
        user.user_permissions.set(Permission.objects.filter(
            content_type__app_label="workflows", codename__in=ROLES[role]))
        users[role] = django_user_model.objects.get(pk=user.pk)  # fresh permission cache
    publish_version("pay", V1)
    publish_version("pay", V2, make_current=False)
    return users


def test_the_owner_deploys_and_promotes(people):
    rollout.deploy("pay", 2, strategy="canary", user=people["owner"])
    rollout.promote("pay", user=people["owner"])

    assert Release.objects.get(state="canary").percent == 25.0


@pytest.mark.parametrize("role", ["operator", "viewer", "outsider"])
def test_only_owners_deploy_or_promote(people, role):
    with pytest.raises(PermissionDenied, match="may not deploy releases of pay"):
        rollout.deploy("pay", 2, strategy="canary", user=people[role])
    rollout.deploy("pay", 2, strategy="canary", user=people["owner"])
    with pytest.raises(PermissionDenied, match="may not promote"):
        rollout.promote("pay", user=people[role])


def test_an_operator_aborts_and_rolls_back(people):
    rollout.deploy("pay", 2, strategy="canary", user=people["owner"])
    rollout.abort("pay", user=people["operator"])
    rollout.deploy("pay", 2, user=people["owner"])

    rollout.rollback("pay", user=people["operator"])

    assert Release.objects.first().candidate_version.number == 1


@pytest.mark.parametrize("role", ["viewer", "outsider"])
def test_viewers_and_outsiders_cannot_abort_or_roll_back(people, role):
    rollout.deploy("pay", 2, strategy="canary", user=people["owner"])

    with pytest.raises(PermissionDenied, match="may not abort"):
        rollout.abort("pay", user=people[role])
    with pytest.raises(PermissionDenied, match="may not roll back"):
        rollout.rollback("pay", user=people[role])
    assert Release.objects.get(state="canary")


def test_viewers_read_the_release_and_outsiders_do_not(people):
    rollout.deploy("pay", 2, strategy="canary", user=people["owner"])

    state = rollout.release_state("pay", user=people["viewer"])

    assert state["release"]["state"] == "canary" and state["log"][0]["kind"] == "step"
    with pytest.raises(PermissionDenied, match="xavier may not see"):
        rollout.release_state("pay", user=people["outsider"])


def test_braid_roles_map_onto_the_release_permissions(people):
    from apps.workflows.models import WorkflowDefinition
    from apps.workflows.permissions import can
    from tests.personas import make_persona

    pay = WorkflowDefinition.objects.get(slug="pay")
    users = {name: make_persona(name, role) for name, role in (
        ("role-viewer", "viewer"), ("role-operator", "operator"), ("role-owner", "owner"),
        ("role-none", None))}
    allowed = {name: {action for action in ("view", "deploy", "promote", "abort", "rollback")
                      if can(user, action, pay)} for name, user in users.items()}

    assert allowed == {"role-viewer": {"view"},
                       "role-operator": {"view", "abort", "rollback"},
                       "role-owner": {"view", "deploy", "promote", "abort", "rollback"},
                       "role-none": set()}


class SomewhereBackend:
    """Like a team-role backend: without an object it grants what the user holds in
    any team; on this test's workflow it grants only to `team-owner`."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, perm, obj=None):
        if obj is None:
            return perm.startswith("workflows.")
        return user.username == "team-owner"


def test_a_role_elsewhere_does_not_let_anyone_deploy_this_workflow(people, settings,
                                                                   django_user_model):
    from apps.workflows.permissions import can

    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.workflows.test_release_permissions.SomewhereBackend"]
    from apps.workflows.models import WorkflowDefinition

    pay = WorkflowDefinition.objects.get(slug="pay")
    elsewhere = django_user_model.objects.create_user("owner-elsewhere")
    here = django_user_model.objects.create_user("team-owner")

    assert not can(elsewhere, "deploy", pay) and not can(elsewhere, "view", pay)
    assert can(here, "deploy", pay) and can(here, "rollback", pay)
    assert can(people["owner"], "deploy", pay)  # global Django permissions still count
