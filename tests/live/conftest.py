"""Personas and helpers for live-progress tests.

Alice owns the payments team and starts its executions, Victor is a viewer on
that team, Sam is staff, Oscar owns another team and must see nothing of it.
"""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from apps.engine.start import StartRequest, start_execution
from apps.live import tickets
from apps.teams.models import Membership, Team

CHAIN = {"name": "live chain",
         "nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"},
                   {"id": "c", "type": "noop"}],
         "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}


def member(name: str, team: str, role: str) -> User:
    user = User.objects.create_user(name, password=f"pw-{name}-123")
    team, _ = Team.objects.get_or_create(slug=team, defaults={"name": team.title()})
    Membership.objects.create(team=team, user=user, role=role)
    return user


@pytest.fixture
def alice(transactional_db):
    return member("alice", "payments", "owner")


@pytest.fixture
def oscar(transactional_db):
    return member("oscar", "other", "owner")


@pytest.fixture
def victor(alice):
    return member("victor", "payments", "viewer")


@pytest.fixture
def sam(transactional_db):
    return User.objects.create_user("sam", password="pw-sam-123", is_staff=True)


def start(user, spec=CHAIN, **kwargs):
    """An inline run of `user`, owned by their team."""
    team = Membership.objects.filter(user=user).values_list("team_id", flat=True).first()
    return start_execution(StartRequest(definition=spec, user=user, team_id=team, **kwargs))


def application():
    from config.asgi import application

    return application


async def open_ws(path: str, user=None, headers=None):
    """A connected communicator for `user` (by ticket), or (False, code) if refused.

    Disconnect it before the scenario's loop ends, refused or not: a consumer left
    running is cancelled with every other task as `asyncio.run` closes, and
    channels-redis's receive, cancelled that way, once hung a CI run for good."""
    query = ""
    if user is not None:
        ticket, _ = await database_sync_to_async(tickets.issue)(user)
        query = f"?ticket={ticket}"
    comm = WebsocketCommunicator(application(), path + query, headers=headers or [])
    connected, code = await comm.connect(timeout=10)
    return comm, connected, code


async def receive(comm, timeout: float = 20.0) -> dict:
    return json.loads(await comm.receive_from(timeout=timeout))


async def receive_until(comm, done, timeout: float = 30.0) -> list[dict]:
    """Frames until `done(frame)` is true for one (included)."""
    frames = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        frame = await receive(comm, max(0.1, end - loop.time()))
        frames.append(frame)
        if done(frame):
            return frames


def events_of(frames):
    return [f for f in frames if f["type"] == "event"]


def final(frame) -> bool:
    return frame["type"] == "event" and frame["event"].startswith("execution.") and \
        frame["event"].split(".", 1)[1] in {"succeeded", "failed", "cancelled", "compensated"}


@pytest.fixture(autouse=True)
def _short_lived_connections(settings):
    """Threads these tests start (database_sync_to_async, asyncio.to_thread) close their
    connections after each use, so the test database can be dropped at the end."""
    db = settings.DATABASES["default"]
    before = db.get("CONN_MAX_AGE", 0)
    db["CONN_MAX_AGE"] = 0  # in place: every thread's connection shares this dict
    yield
    db["CONN_MAX_AGE"] = before
    from apps.live import reads

    reads.close_connections()  # the live readers keep theirs


def drive(execution_id, timeout: float = 30.0):
    """run_until_done on a helper thread (asyncio.to_thread), closing its connection."""
    from django.db import connections

    from tests.conftest import run_until_done

    try:
        return run_until_done(execution_id, timeout)
    finally:
        connections.close_all()
