"""The schedules admin: lists, a validated form, and actions through the services."""

from datetime import timedelta

import pytest
from django.contrib.admin import helpers
from django.urls import reverse
from django.utils import timezone

from apps.engine.models import Execution
from apps.schedules import services
from apps.schedules.models import MaintenanceWindow, Schedule, ScheduleRun

pytestmark = pytest.mark.django_db

QUICK = {"name": "quick", "nodes": [{"id": "a", "type": "noop"}], "edges": []}
TYPED = {"name": "typed", "nodes": [{"id": "a", "type": "noop"}], "edges": [],
         "input_schema": {"type": "object", "required": ["customer"]}}


def url(model, view, *args):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def schedule(publish):
    publish("quick", QUICK)
    return services.create_schedule("quick", "*/5 * * * *", timezone_name="Europe/Paris",
                                    name="every five")


def test_lists_and_pages_render(admin_client, schedule):
    services.fire_now(schedule)
    now = timezone.now()
    window = MaintenanceWindow.objects.create(name="db upgrade", starts_at=now,
                                              ends_at=now + timedelta(hours=1))
    run = ScheduleRun.objects.get()
    for page in (url(Schedule, "changelist"), url(Schedule, "change", schedule.pk),
                 url(Schedule, "add"), url(MaintenanceWindow, "changelist"),
                 url(MaintenanceWindow, "change", window.pk),
                 url(ScheduleRun, "changelist"), url(ScheduleRun, "changelist") + "?status=started",
                 url(ScheduleRun, "changelist") + f"?schedule={schedule.pk}",
                 url(ScheduleRun, "change", run.pk)):
        response = admin_client.get(page)
        assert response.status_code == 200, page
    body = admin_client.get(url(Schedule, "change", schedule.pk)).content.decode()
    assert "fired by hand" in body
    assert "CET" in body or "CEST" in body  # the next due times, in Paris time


def test_runs_are_read_only(admin_client, schedule):
    services.fire_now(schedule)
    assert admin_client.get(url(ScheduleRun, "add")).status_code == 403


def test_the_form_reports_each_problem(admin_client, publish):
    definition = publish("typed", TYPED).definition
    response = admin_client.post(url(Schedule, "add"), {
        "workflow": definition.pk, "name": "bad", "cron": "61 * * * *",
        "timezone": "Mars/Olympus", "input": "{}", "priority": 5, "queue": "scheduled",
        "enabled": "on", "overlap": "skip", "catch_up": "none", "max_catch_up": 100,
        "grace_s": 60})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "cron" in errors and "timezone" in errors
    assert not Schedule.objects.exists()
    response = admin_client.post(url(Schedule, "add"), {
        "workflow": definition.pk, "name": "needs input", "cron": "0 3 * * *",
        "timezone": "UTC", "input": "{}", "priority": 5, "queue": "scheduled",
        "enabled": "on", "overlap": "skip", "catch_up": "none", "max_catch_up": 100,
        "grace_s": 60})
    assert "customer" in str(response.context["adminform"].form.errors)
    response = admin_client.post(url(Schedule, "add"), {
        "workflow": definition.pk, "name": "good", "cron": "0 3 * * *",
        "timezone": "UTC", "input": '{"customer": "acme"}', "priority": 5,
        "queue": "scheduled", "enabled": "on", "overlap": "skip", "catch_up": "none",
        "max_catch_up": 100, "grace_s": 60})
    assert response.status_code == 302
    created = Schedule.objects.get()
    assert created.next_run_at > timezone.now() and created.next_run_at.hour == 3


FORM = {"name": "f", "cron": "0 3 * * *", "timezone": "UTC", "input": "{}", "priority": 5,
        "queue": "scheduled", "enabled": "on", "overlap": "skip", "catch_up": "none",
        "max_catch_up": 100, "grace_s": 60}


@pytest.mark.parametrize("field, value, message", [
    ("cron", "0 0 30 2 *", "cron &#x27;0 0 30 2 *&#x27; never fires: no date matches it"),
    ("queue", "nightly", "no queue &#x27;nightly&#x27;"),
    ("input", "[" * 10_000 + "]" * 10_000, "JSON: nested more than 64 levels deep"),
    ("input", '{"a": ', "JSON: invalid JSON at line 1, column 7"),
])
def test_the_form_refuses_bad_input_on_the_field(admin_client, publish, field, value,
                                                 message):
    definition = publish("quick", QUICK).definition
    response = admin_client.post(url(Schedule, "add"),
                                 {**FORM, "workflow": definition.pk, field: value})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def _action(client, action, pks):
    return client.post(url(Schedule, "changelist"), {
        "action": action, helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]}, follow=True)


def test_actions_pause_resume_and_fire(admin_client, schedule):
    _action(admin_client, "disable_selected", [schedule.pk])
    schedule.refresh_from_db()
    assert not schedule.enabled
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=timezone.now() - timedelta(hours=1))
    _action(admin_client, "enable_selected", [schedule.pk])
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_run_at > timezone.now()

    response = _action(admin_client, "fire_selected", [schedule.pk])
    assert "Started 1 execution" in response.content.decode()
    run = ScheduleRun.objects.get(schedule=schedule)
    assert run.reason == "fired by hand by admin"
    assert Execution.objects.filter(pk=run.execution_id, queue="scheduled").exists()
