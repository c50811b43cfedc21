"""Personas for permission tests: staff users who hold one Braid role each.

- **Vera** is a viewer ("Braid viewer"): she sees everything, changes nothing.
- **Otto** is an operator ("Braid operator"): he starts, cancels, decides
  approvals and pauses queues, but configures nothing.
- **Olga** is an owner ("Braid owner"): she also changes definitions,
  schedules, limits, pools and rate limits.
- **Oscar** is an outsider: staff (he can sign in) with no permission at all.

Each gets her role the way production grants it: membership of the Django
group that `sync_role_groups` keeps after migrate. The fixtures are loaded
for every test (tests/conftest.py lists this module in `pytest_plugins`).
"""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from apps.engine.permissions import ROLE_GROUPS


def make_persona(username: str, role: str | None = None, *perms: str):
    """A staff user in the role's group, with `perms` ("app.codename") granted on top."""
    user = get_user_model().objects.create_user(username, f"{username}@example.com",
                                                "pw", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=ROLE_GROUPS[role]))
    for name in perms:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(
            content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def admin_url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def offered_actions(client: Client, model) -> set[str]:
    """The actions the changelist offers this user (none: no action box at all)."""
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200, response.status_code
    form = response.context["action_form"]
    if form is None:
        return set()
    return {name for name, _ in form.fields["action"].choices if name}


def post_action(client: Client, model, action: str, pks, **extra):
    return client.post(admin_url(model, "changelist"), {
        "action": action, helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0,
        **extra}, follow=True)


@pytest.fixture
def vera(db):
    return make_persona("vera", "viewer")


@pytest.fixture
def otto(db):
    return make_persona("otto", "operator")


@pytest.fixture
def olga(db):
    return make_persona("olga", "owner")


@pytest.fixture
def oscar(db):
    return make_persona("oscar")
