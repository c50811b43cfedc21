"""Probes: /health touches nothing; /ready says unavailable (503) without details to
anonymous callers, with the reasons to staff."""

import pytest

from apps.api import health


def test_health_answers_without_the_database(client):
    """No db fixture: any database access here would raise."""
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.fixture
def broken_broker(monkeypatch):
    monkeypatch.setattr(health, "_problems", lambda: ["broker: ConnectionError: refused"])


def test_ready_is_503_with_no_details_for_anonymous_callers(client, db, broken_broker):
    response = client.get("/ready")
    assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_staff_see_why_it_is_not_ready(people, broken_broker):
    response = people.client(people.sam).get("/ready")
    assert response.status_code == 503
    assert response.json()["problems"] == ["broker: ConnectionError: refused"]


def test_ready_checks_the_real_database(client, db):
    assert health._problems() == []
