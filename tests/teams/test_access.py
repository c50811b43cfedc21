"""Team roles as Django permissions (apps.engine.permissions.ROLE_PERMISSIONS on the
team's objects): the API and the admin ask the same backend."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.engine.permissions import may_start_workflow
from apps.engine.start import StartRequest, start_execution
from apps.teams import access
from apps.teams.models import Membership, Team
from apps.workflows.models import WorkflowDefinition
from apps.workflows.services import publish_version

SPEC = {"name": "one", "nodes": [{"id": "a", "type": "noop"}], "edges": []}


@pytest.fixture
def team_world(db):
    users = get_user_model().objects
    team = Team.objects.create(slug="t", name="T")
    people = {role: users.create_user(role) for role in ("viewer", "operator", "owner")}
    for role, user in people.items():
        Membership.objects.create(team=team, user=user, role=role)
    people["outsider"] = users.create_user("outsider")
    people["staff"] = users.create_user("staff", is_staff=True)
    people["group owner"] = users.create_user("group-owner", is_staff=True)
    people["group owner"].groups.add(Group.objects.get(name="Braid owner"))
    version = publish_version("one", SPEC, team_id=team.pk)
    execution = start_execution(StartRequest(workflow="one"))
    return people, version.definition, execution


@pytest.mark.parametrize("who, actions", [
    ("viewer", {"view"}),
    ("operator", {"view", "execute", "operate", "decide"}),
    ("owner", {"view", "execute", "operate", "decide", "publish", "schedule"}),
    ("outsider", set()),
    ("staff", set()),  # sees everything (visible), but acts through groups like anyone
    ("group owner", {"view", "execute", "operate", "decide", "publish", "schedule"}),
])
def test_each_role_may_do_what_its_rank_allows(team_world, who, actions):
    people, definition, execution = team_world
    user = people[who]
    every = {"view", "execute", "operate", "decide", "publish", "schedule"}
    assert {a for a in every if access.may(user, a, definition)} == actions
    # Objects under the workflow inherit its team.
    assert {a for a in every if access.may(user, a, execution)} == actions


def test_django_permissions_agree_with_the_roles(team_world):
    people, definition, execution = team_world
    assert people["operator"].has_perm("engine.cancel_execution", execution)
    assert not people["viewer"].has_perm("engine.cancel_execution", execution)
    assert not people["outsider"].has_perm("engine.view_execution", execution)
    # A team role grants nothing globally: no rights over other teams' objects.
    assert not people["owner"].has_perm("workflows.add_workflowversion")
    assert may_start_workflow(people["operator"], definition)
    assert not may_start_workflow(people["viewer"], definition)


def test_an_operator_elsewhere_may_not_start_this_teams_workflow(team_world):
    people, definition, _ = team_world
    elsewhere = Team.objects.create(slug="else", name="Else")
    Membership.objects.create(team=elsewhere, user=people["outsider"], role="operator")
    assert not may_start_workflow(people["outsider"], definition)
    assert not access.may(people["outsider"], "execute", definition)


def test_visible_querysets_follow_membership(team_world):
    people, definition, _ = team_world
    rows = WorkflowDefinition.objects.all()
    assert list(access.visible(rows, people["viewer"])) == [definition]
    assert list(access.visible(rows, people["outsider"])) == []
    assert list(access.visible(rows, people["staff"])) == [definition]


def test_a_workflow_without_a_team_is_staff_only(db):
    users = get_user_model().objects
    version = publish_version("orphan", SPEC)
    member = users.create_user("m")
    Membership.objects.create(team=Team.objects.create(slug="x", name="X"), user=member,
                              role="owner")
    assert not access.may(member, "view", version.definition)
    staff = users.create_user("s", is_staff=True)
    assert list(access.visible(WorkflowDefinition.objects.all(), staff)) == [version.definition]


def test_inactive_users_may_nothing(team_world):
    people, definition, _ = team_world
    owner = people["owner"]
    owner.is_active = False
    assert not access.may(owner, "view", definition)
    assert list(access.visible(WorkflowDefinition.objects.all(), owner)) == []
