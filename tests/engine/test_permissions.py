"""Roles as Django groups: ROLE_PERMISSIONS is the one mapping, and the groups follow it."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission

from apps.engine.permissions import (
    OPERATOR,
    OWNER,
    ROLE_GROUPS,
    ROLE_PERMISSIONS,
    VIEWER,
    may_start_workflow,
    sync_role_groups,
)
from apps.workflows.models import WorkflowDefinition
from tests.personas import make_persona

pytestmark = pytest.mark.django_db


def codenames(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in group.permissions.select_related("content_type")}


def test_every_role_permission_exists():
    existing = {f"{app}.{codename}" for app, codename in
                Permission.objects.values_list("content_type__app_label", "codename")}
    for role, perms in ROLE_PERMISSIONS.items():
        assert perms <= existing, (role, sorted(perms - existing))


def test_each_role_includes_the_one_below_and_viewers_only_view():
    assert VIEWER < OPERATOR < OWNER
    assert all(p.split(".")[1].startswith("view_") for p in VIEWER)
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_"))
                   for p in OPERATOR)


def test_migrate_leaves_the_three_groups_holding_exactly_their_role():
    for role, name in ROLE_GROUPS.items():
        assert codenames(Group.objects.get(name=name)) == ROLE_PERMISSIONS[role], role


def test_syncing_again_repairs_a_group_changed_by_hand():
    operators = Group.objects.get(name="Braid operator")
    operators.permissions.add(Permission.objects.get(codename="delete_ratelimit"))
    operators.permissions.remove(Permission.objects.get(codename="cancel_execution"))

    sync_role_groups()
    sync_role_groups()

    assert codenames(operators) == ROLE_PERMISSIONS["operator"]
    assert Group.objects.filter(name__startswith="Braid ").count() == 3


def test_who_may_start_a_workflow(vera, otto, olga, oscar):
    definition = WorkflowDefinition(slug="any")
    assert [may_start_workflow(u, definition) for u in (vera, otto, olga, oscar)] == [
        False, True, True, False]
    assert not may_start_workflow(AnonymousUser(), definition)
    otto.is_active = False
    assert not may_start_workflow(otto, definition)
    granted = make_persona("gina", None, "engine.start_execution")
    assert may_start_workflow(granted, definition)


class TeamBackend:
    """Grants starting one workflow only, as a team-role backend will."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, perm, obj=None):
        return perm == "engine.start_execution" and getattr(obj, "slug", None) == "team-a"


def test_a_per_workflow_grant_lets_one_start_that_workflow_only(vera, settings):
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS,
                                        f"{__name__}.TeamBackend"]
    assert may_start_workflow(vera, WorkflowDefinition(slug="team-a"))
    assert not may_start_workflow(vera, WorkflowDefinition(slug="team-b"))
