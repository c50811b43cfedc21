"""Personas for the API: Alice owns the payments team, Bob operates it, Vera views it,
Charlie owns another team and must see nothing of payments, Sam is staff."""


import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.api.tokens import create_token
from apps.teams.models import Membership, Team
from apps.workflows.services import publish_version
from tests.conftest import load_example

THREE = load_example("three_steps")
APPROVAL = {
    "name": "Needs approval",
    "nodes": [{"id": "review", "type": "approval", "config": {"title": "Ship it?"}},
              {"id": "done", "type": "noop"}],
    "edges": [{"from": "review", "to": "done"}],
}


class Personas:
    def __init__(self):
        users = get_user_model().objects
        self.payments = Team.objects.create(slug="payments", name="Payments")
        self.other = Team.objects.create(slug="other", name="Other")
        self.alice = users.create_user("alice", password="pw-alice-123")
        self.bob = users.create_user("bob", password="pw-bob-123")
        self.vera = users.create_user("vera", password="pw-vera-123")
        self.charlie = users.create_user("charlie", password="pw-charlie-123")
        self.sam = users.create_user("sam", password="pw-sam-123", is_staff=True)
        Membership.objects.create(team=self.payments, user=self.alice, role="owner")
        Membership.objects.create(team=self.payments, user=self.bob, role="operator")
        Membership.objects.create(team=self.payments, user=self.vera, role="viewer")
        Membership.objects.create(team=self.other, user=self.charlie, role="owner")
        # Staff act through the role groups like anyone (apps.engine.permissions).
        self.sam.groups.add(Group.objects.get(name="Braid owner"))

    def client(self, user) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    def token_client(self, user, scopes="read,execute,operate,admin", **kwargs) -> APIClient:
        _, secret = create_token(user, "test", scopes, **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client


@pytest.fixture
def people(db):
    return Personas()


@pytest.fixture
def three(people):
    """The payments team's three-step workflow, version 1."""
    return publish_version("three-steps", THREE, author=people.alice, team_id=people.payments.pk)
