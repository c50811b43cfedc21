"""Schedules and maintenance windows over the API (through apps.schedules.services)."""

import pytest
from django.utils import timezone


@pytest.fixture
def alice(people):
    return people.client(people.alice)


def test_schedule_crud(alice, three):
    created = alice.post("/api/v1/schedules/", {"workflow": "three-steps", "cron": "0 3 * * *",
                                                "timezone": "Europe/Paris",
                                                "input": {"who": "cron"}}, format="json")
    assert created.status_code == 201, created.content
    schedule = created.json()
    assert schedule["next_run_at"] and schedule["enabled"] is True
    url = f"/api/v1/schedules/{schedule['id']}/"
    changed = alice.patch(url, {"cron": "30 4 * * *", "priority": 8}, format="json").json()
    assert changed["cron"] == "30 4 * * *" and changed["priority"] == 8
    assert changed["next_run_at"] != schedule["next_run_at"]
    paused = alice.patch(url, {"enabled": False}, format="json").json()
    assert paused["enabled"] is False
    assert alice.patch(url, {"enabled": True}, format="json").json()["enabled"] is True
    assert alice.delete(url).status_code == 204
    assert alice.get(url).status_code == 404


def test_a_one_shot_start_at_a_time(alice, three):
    at = (timezone.now() + timezone.timedelta(hours=2)).isoformat()
    created = alice.post("/api/v1/schedules/", {"workflow": "three-steps", "run_at": at},
                         format="json").json()
    assert created["cron"] == "" and created["run_at"] is not None


@pytest.mark.parametrize("body, where", [
    ({"workflow": "three-steps", "cron": "61 * * * *"}, "cron"),
    ({"workflow": "three-steps", "cron": "@daily", "timezone": "Mars/Base"}, "timezone"),
    ({"workflow": "three-steps", "cron": "@daily", "queue": "nope"}, "queue"),
    ({"workflow": "three-steps"}, ""),
])
def test_bad_schedules_say_what_is_wrong(alice, three, body, where):
    response = alice.post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 400
    assert where in [d["where"] for d in response.json()["error"]["details"]]


def test_window_crud_and_global_windows_are_staff_only(alice, people, three):
    now = timezone.now()
    body = {"name": "freeze", "starts_at": now.isoformat(),
            "ends_at": (now + timezone.timedelta(hours=1)).isoformat()}
    assert alice.post("/api/v1/maintenance-windows/", body, format="json").status_code == 403
    mine = alice.post("/api/v1/maintenance-windows/", {**body, "workflow": "three-steps"},
                      format="json")
    assert mine.status_code == 201 and mine.json()["workflow"] == "three-steps"
    staff = people.client(people.sam)
    recurring = staff.post("/api/v1/maintenance-windows/", {
        "name": "nightly", "cron": "0 2 * * *", "duration_s": 3600}, format="json")
    assert recurring.status_code == 201 and recurring.json()["duration_s"] == 3600
    # Everyone sees the global window; only staff change it.
    assert len(alice.get("/api/v1/maintenance-windows/").json()["results"]) == 2
    url = f"/api/v1/maintenance-windows/{recurring.json()['id']}/"
    assert alice.patch(url, {"reason": "x"}, format="json").status_code == 403
    bad = staff.patch(url, {"duration_s": None}, format="json")
    assert bad.status_code == 400 and "duration" in bad.json()["error"]["message"]
