"""Who may schedule what, in the admin (personas from tests/personas.py).

A schedule starts its workflow with nobody watching, so creating or changing
one needs the schedule permissions *and* `may_start_workflow` for its
workflow. Sam is a clerk who holds the schedule permissions but may not start
anything: he is refused, field by field.
"""

import pytest

from apps.engine.models import Execution
from apps.schedules import services
from apps.schedules.models import MaintenanceWindow, Schedule, ScheduleRun
from tests.personas import admin_url, login, make_persona, offered_actions, post_action

pytestmark = pytest.mark.django_db

QUICK = {"name": "quick", "nodes": [{"id": "a", "type": "noop"}], "edges": []}
SCHEDULE_PERMS = ("schedules.add_schedule", "schedules.change_schedule",
                  "schedules.delete_schedule")


@pytest.fixture
def schedule(publish):
    publish("quick", QUICK)
    return services.create_schedule("quick", "*/5 * * * *", name="every five")


@pytest.fixture
def sam(db):
    """Schedule permissions, but no right to start workflows."""
    return make_persona("sam", "viewer", *SCHEDULE_PERMS)


def form(schedule, **changes) -> dict:
    return {"workflow": schedule.workflow_id, "name": schedule.name, "cron": schedule.cron,
            "timezone": "UTC", "input": "{}", "priority": 5, "queue": "scheduled",
            "enabled": "on", "overlap": "skip", "catch_up": "none", "max_catch_up": 100,
            "grace_s": 60, **changes}


def test_owner_creates_and_changes_a_schedule(olga, schedule):
    client = login(olga)
    response = client.post(admin_url(Schedule, "add"), form(schedule, name="nightly",
                                                            cron="0 3 * * *"))
    assert response.status_code == 302
    assert Schedule.objects.get(name="nightly").workflow.slug == "quick"

    response = client.post(admin_url(Schedule, "change", schedule.pk),
                           form(schedule, cron="0 4 * * *"))
    assert response.status_code == 302
    assert Schedule.objects.get(pk=schedule.pk).cron == "0 4 * * *"


def test_who_may_not_start_the_workflow_may_not_schedule_it(sam, schedule):
    client = login(sam)
    response = client.post(admin_url(Schedule, "add"), form(schedule, name="sneaky"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["workflow"] == [
        "you may not start workflow 'quick', so you may not schedule it"]
    assert not Schedule.objects.filter(name="sneaky").exists()


def test_who_may_not_start_the_workflow_may_not_change_its_schedule(sam, schedule):
    client = login(sam)
    page = client.get(admin_url(Schedule, "change", schedule.pk))
    assert page.status_code == 200 and b'name="_save"' not in page.content  # read-only

    response = client.post(admin_url(Schedule, "change", schedule.pk),
                           form(schedule, cron="* * * * *"))
    assert response.status_code == 403
    assert Schedule.objects.get(pk=schedule.pk).cron == "*/5 * * * *"
    response = post_action(client, Schedule, "disable_selected", [schedule.pk])
    assert "every five: you may not start workflow 'quick'." in [
        str(m) for m in response.context["messages"]]
    assert Schedule.objects.get(pk=schedule.pk).enabled


def test_viewer_sees_schedules_and_changes_nothing(vera, schedule):
    services.fire_now(schedule)
    client = login(vera)
    for model in (Schedule, MaintenanceWindow, ScheduleRun):
        assert client.get(admin_url(model, "changelist")).status_code == 200, model
        assert offered_actions(client, model) == set(), model
        assert client.get(admin_url(model, "add")).status_code == 403, model
    assert client.get(admin_url(Schedule, "change", schedule.pk)).status_code == 200

    post_action(client, Schedule, "fire_selected", [schedule.pk])
    post_action(client, Schedule, "disable_selected", [schedule.pk])
    assert client.post(admin_url(Schedule, "change", schedule.pk),
                       form(schedule, cron="* * * * *")).status_code == 403
    assert ScheduleRun.objects.count() == 1
    assert Schedule.objects.get(pk=schedule.pk).enabled
    assert Schedule.objects.get(pk=schedule.pk).cron == "*/5 * * * *"


def test_operator_fires_a_schedule_but_does_not_edit_it(otto, schedule):
    client = login(otto)
    assert offered_actions(client, Schedule) == {"fire_selected"}

    response = post_action(client, Schedule, "fire_selected", [schedule.pk])
    assert "Started 1 execution." in response.content.decode()
    assert Execution.objects.count() == 1
    assert client.post(admin_url(Schedule, "add"), form(schedule, name="x")).status_code == 403
    post_action(client, Schedule, "disable_selected", [schedule.pk])
    assert Schedule.objects.get(pk=schedule.pk).enabled
