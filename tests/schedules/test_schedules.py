"""Schedules against a real database: firing, windows, overlap, catch-up, pause, the ticker.

Run on SQLite and on PostgreSQL (DATABASE_URL); both paths are the same code.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.engine import ticker
from apps.engine.control import cancel_execution
from apps.engine.errors import Conflict, InputInvalid
from apps.engine.models import TERMINAL_EXECUTION, Execution
from apps.engine.worker import drain
from apps.schedules import services
from apps.schedules.models import MaintenanceWindow, Schedule, ScheduleRun
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_MINUTE = "* * * * *"

QUICK = {"name": "quick", "nodes": [{"id": "a", "type": "noop"}], "edges": []}
SLOW = {"name": "slow", "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 300}},
                                  {"id": "after", "type": "noop"}],
        "edges": [{"from": "wait", "to": "after"}]}
TYPED = {"name": "typed", "nodes": [{"id": "a", "type": "noop"}], "edges": [],
         "input_schema": {"type": "object", "required": ["customer"],
                          "properties": {"customer": {"type": "string"}}}}


@pytest.fixture
def quick(publish):
    return publish("quick", QUICK).definition


@pytest.fixture
def slow(publish):
    return publish("slow", SLOW).definition


def minute_floor(moment):
    return moment.replace(second=0, microsecond=0)


def make_due(schedule, at):
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at)
    schedule.refresh_from_db()
    return schedule


def executions_of(schedule):
    return Execution.objects.filter(client_id=f"schedule:{schedule.pk}").order_by("created_at")


def runs_of(schedule, **filters):
    return list(ScheduleRun.objects.filter(schedule=schedule, **filters).order_by("due_at"))


# --- create and validate ------------------------------------------------------------------

def test_create_schedule_sets_the_first_due_time(quick):
    now = timezone.now()
    schedule = services.create_schedule("quick", "0 9 * * *", timezone_name="Europe/Paris",
                                        now=now)
    assert schedule.next_run_at > now
    assert schedule.next_run_at.astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 9
    assert schedule.queue == "scheduled" and schedule.priority == 5 and schedule.enabled


def test_create_schedule_lists_every_problem(publish):
    publish("typed", TYPED)
    with pytest.raises(InputInvalid) as info:
        services.create_schedule("typed", "61 * * * *", timezone_name="Mars/Olympus",
                                 input={"customer": 7}, priority=12, grace_s=0)
    where = {p["where"] for p in info.value.problems}
    assert {"cron", "timezone", "priority", "grace_s", "input/customer"} <= where, (
        info.value.problems)
    assert not Schedule.objects.exists()
    with pytest.raises(InputInvalid) as info:
        services.create_schedule("typed", EVERY_MINUTE, input={})
    assert "customer" in info.value.problems[0]["message"]
    ok = services.create_schedule("typed", EVERY_MINUTE, input={"customer": "acme"})
    assert ok.pk


def test_an_impossible_cron_date_is_refused_when_the_schedule_is_saved(quick):
    with pytest.raises(InputInvalid) as info:
        services.create_schedule("quick", "0 0 30 2 *")
    assert info.value.problems == [{"where": "cron", "node": None, "message":
                                    "cron '0 0 30 2 *' never fires: no date matches it "
                                    "(such as 30 February or 31 April)"}]
    assert not Schedule.objects.exists()


def test_a_schedule_naming_an_unknown_queue_is_refused(quick):
    with pytest.raises(InputInvalid) as info:
        services.create_schedule("quick", EVERY_MINUTE, queue="nightly")
    (problem,) = info.value.problems
    assert problem["where"] == "queue"
    assert problem["message"].startswith("no queue 'nightly' (queues: realtime, default")
    assert not Schedule.objects.exists()


def test_unknown_workflow(db):
    from apps.engine.errors import NotFound

    with pytest.raises(NotFound):
        services.create_schedule("no-such", EVERY_MINUTE)


# --- firing ----------------------------------------------------------------------------------

def test_a_due_schedule_fires_exactly_once_even_if_fire_due_runs_twice(quick):
    schedule = services.create_schedule("quick", EVERY_MINUTE, input={"n": 1}, priority=7)
    now = timezone.now()
    due = minute_floor(now)
    make_due(schedule, due)

    assert services.fire_due(now) == 1
    assert services.fire_due(now) == 0
    assert services.fire_due() == 0

    (execution,) = executions_of(schedule)
    assert execution.idempotency_key == f"schedule:{schedule.pk}:{due.isoformat()}"
    assert (execution.priority, execution.queue, execution.input) == (7, "scheduled", {"n": 1})
    (run,) = runs_of(schedule)
    assert (run.status, run.due_at, run.execution_id) == ("started", due, execution.pk)
    schedule.refresh_from_db()
    assert schedule.next_run_at == due + timedelta(minutes=1)
    assert schedule.last_execution_id == execution.pk and schedule.last_fired_at == now

    # Even if next_run_at went back to the same due time, it does not start again.
    make_due(schedule, due)
    services.fire_due(now)
    assert executions_of(schedule).count() == 1 and len(runs_of(schedule)) == 1
    assert run_until_done(execution.pk).status == "succeeded"


def test_two_tickers_at_once_fire_a_due_time_once(quick):
    schedules = [services.create_schedule("quick", EVERY_MINUTE, name=f"s{i}")
                 for i in range(5)]
    now = timezone.now()
    for schedule in schedules:
        make_due(schedule, minute_floor(now))
    barrier = threading.Barrier(2)
    errors = []

    def tick():
        try:
            barrier.wait()
            services.fire_due(now)
        except Exception as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    for schedule in schedules:
        assert executions_of(schedule).count() == 1
        assert len(runs_of(schedule)) == 1


def test_a_maintenance_window_skips_with_the_reason_and_starts_nothing(quick, slow):
    now = timezone.now()
    MaintenanceWindow.objects.create(name="db upgrade", starts_at=now - timedelta(minutes=5),
                                     ends_at=now + timedelta(minutes=30),
                                     reason="PostgreSQL 17")
    MaintenanceWindow.objects.create(name="slow only", starts_at=now - timedelta(days=1),
                                     ends_at=now + timedelta(days=1), workflow=slow)
    schedule = make_due(services.create_schedule("quick", EVERY_MINUTE), minute_floor(now))

    services.fire_due(now)

    assert not executions_of(schedule).exists()
    (run,) = runs_of(schedule)
    assert run.status == "skipped" and run.reason == "maintenance window 'db upgrade'"
    assert run.execution_id is None
    schedule.refresh_from_db()
    assert schedule.next_run_at == minute_floor(now) + timedelta(minutes=1)


def test_a_window_of_another_workflow_does_not_apply(quick, slow):
    now = timezone.now()
    MaintenanceWindow.objects.create(name="slow only", starts_at=now - timedelta(days=1),
                                     ends_at=now + timedelta(days=1), workflow=slow)
    schedule = make_due(services.create_schedule("quick", EVERY_MINUTE), minute_floor(now))
    services.fire_due(now)
    assert [r.status for r in runs_of(schedule)] == ["started"]


def test_a_recurring_window_skips(quick):
    now = timezone.now()
    MaintenanceWindow.objects.create(name="always", cron=EVERY_MINUTE,
                                     duration=timedelta(minutes=2))
    schedule = make_due(services.create_schedule("quick", EVERY_MINUTE), minute_floor(now))
    services.fire_due(now)
    assert [(r.status, r.reason) for r in runs_of(schedule)] == [
        ("skipped", "maintenance window 'always'")]


# --- overlap -------------------------------------------------------------------------------------

def _fire_twice(schedule, now):
    """Fire one due time, park its execution on the delay, then fire the next one."""
    first_due = minute_floor(now) - timedelta(minutes=1)
    make_due(schedule, first_due)
    services.fire_due(first_due + timedelta(seconds=1))
    drain(budget_s=1)  # the delay parks: the execution is `waiting`, holding no worker
    (first,) = executions_of(schedule)
    assert Execution.objects.get(pk=first.pk).status == "waiting"
    services.fire_due(now)
    return first


def test_overlap_skip_while_the_previous_execution_is_still_running(slow):
    schedule = services.create_schedule("slow", EVERY_MINUTE, overlap="skip")
    now = timezone.now()
    first = _fire_twice(schedule, now)

    assert executions_of(schedule).count() == 1
    started, skipped = runs_of(schedule)
    assert started.status == "started" and skipped.status == "skipped"
    assert skipped.reason == f"overlap: previous execution {first.pk} still waiting"
    cancel_execution(first.pk)


def test_overlap_queue_starts_the_next_run_when_the_previous_ends(slow):
    schedule = services.create_schedule("slow", EVERY_MINUTE, overlap="queue")
    now = timezone.now()
    first = _fire_twice(schedule, now)
    started, queued = runs_of(schedule)
    assert queued.status == "queued" and queued.execution_id is None
    assert str(first.pk) in queued.reason
    services.fire_due()  # still running: it stays queued
    assert ScheduleRun.objects.get(pk=queued.pk).status == "queued"

    cancel_execution(first.pk)
    services.fire_due()

    queued.refresh_from_db()
    assert queued.status == "started" and queued.execution_id is not None
    assert executions_of(schedule).count() == 2
    schedule.refresh_from_db()
    assert schedule.last_execution_id == queued.execution_id
    assert queued.execution.idempotency_key.endswith(queued.due_at.isoformat())
    cancel_execution(queued.execution_id)


def test_overlap_allow_runs_side_by_side(slow):
    schedule = services.create_schedule("slow", EVERY_MINUTE, overlap="allow")
    _fire_twice(schedule, timezone.now())
    assert [r.status for r in runs_of(schedule)] == ["started", "started"]
    assert executions_of(schedule).count() == 2
    for execution in executions_of(schedule):
        cancel_execution(execution.pk)


# --- catch-up after downtime ------------------------------------------------------------------

def _after_ten_minutes_down(policy, late_s=None, **kwargs):
    """An every-minute schedule whose ticker was down for ten minutes: 11 due times.
    The ticker is back `late_s` seconds after the last of them (default: now)."""
    schedule = services.create_schedule("quick", EVERY_MINUTE, catch_up=policy, **kwargs)
    now = timezone.now()
    if late_s is not None:
        now = minute_floor(now) + timedelta(seconds=late_s)
    make_due(schedule, minute_floor(now) - timedelta(minutes=10))
    services.fire_due(now)
    schedule.refresh_from_db()
    assert schedule.next_run_at == minute_floor(now) + timedelta(minutes=1)
    return schedule, runs_of(schedule)


def test_catch_up_none_fires_only_an_on_time_run(quick):
    schedule, runs = _after_ten_minutes_down("none")
    assert [r.status for r in runs] == ["skipped"] * 10 + ["started"]  # the last is < 60 s old
    assert runs[0].reason.startswith("missed: due while the scheduler was not running")
    assert executions_of(schedule).count() == 1


def test_catch_up_none_fires_nothing_late(quick):
    schedule, runs = _after_ten_minutes_down("none", late_s=30, grace_s=10)
    assert [r.status for r in runs] == ["skipped"] * 11
    assert not executions_of(schedule).exists()


def test_catch_up_last_fires_the_latest_only(quick):
    schedule, runs = _after_ten_minutes_down("last", late_s=30, grace_s=10)
    assert [r.status for r in runs] == ["skipped"] * 10 + ["started"]
    (execution,) = executions_of(schedule)
    assert runs[-1].execution_id == execution.pk


def test_catch_up_all_fires_every_missed_run(quick):
    schedule, runs = _after_ten_minutes_down("all", overlap="allow")
    assert [r.status for r in runs] == ["started"] * 11
    assert executions_of(schedule).count() == 11
    assert len({e.idempotency_key for e in executions_of(schedule)}) == 11


def test_catch_up_all_still_obeys_the_overlap_policy(quick):
    # Catch-up decides which due times are owed; overlap whether each may start now.
    schedule, runs = _after_ten_minutes_down("all", overlap="skip")
    assert [r.status for r in runs] == ["started"] + ["skipped"] * 10
    assert runs[1].reason.startswith("overlap: previous execution")
    schedule, runs = _after_ten_minutes_down("all", overlap="queue")
    assert [r.status for r in runs] == ["started"] + ["queued"] * 10
    first = executions_of(schedule).get()
    assert run_until_done(first.pk).status == "succeeded"
    services.fire_due()  # the previous ended: the oldest queued due time starts
    assert [r.status for r in runs_of(schedule)] == ["started"] * 2 + ["queued"] * 9


def test_catch_up_all_stops_at_its_cap(quick):
    schedule, runs = _after_ten_minutes_down("all", max_catch_up=3, overlap="allow")
    assert [r.status for r in runs] == ["started"] * 3
    assert "missed too (cap 3)" in runs[0].reason
    assert executions_of(schedule).count() == 3


# --- pause and resume -----------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["none", "all"])
def test_a_paused_schedule_fires_nothing_and_resumes_without_a_pile(quick, policy):
    schedule = services.create_schedule("quick", EVERY_MINUTE, catch_up=policy)
    services.pause_schedule(schedule.pk)
    now = timezone.now()
    make_due(schedule, minute_floor(now) - timedelta(minutes=30))  # "paused for half an hour"

    assert services.fire_due(now) == 0
    assert not executions_of(schedule).exists() and not runs_of(schedule)

    schedule = services.resume_schedule(schedule.pk, now=now)
    assert schedule.enabled and schedule.next_run_at == minute_floor(now) + timedelta(minutes=1)
    assert services.fire_due(now) == 0
    assert not executions_of(schedule).exists()
    # …and from then on it fires on time again.
    services.fire_due(schedule.next_run_at)
    assert executions_of(schedule).count() == 1


# --- delayed start, fire now, refused starts -----------------------------------------------------

def test_schedule_once_starts_at_its_time_then_disables_itself(quick):
    at = timezone.now() + timedelta(seconds=30)
    schedule = services.schedule_once("quick", at, {"x": 1}, priority=2)
    assert services.fire_due(at - timedelta(seconds=1)) == 0
    assert services.fire_due(at) == 1
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.next_run_at is None
    (execution,) = executions_of(schedule)
    assert execution.priority == 2 and execution.input == {"x": 1}
    assert run_until_done(execution.pk).status == "succeeded"
    assert services.fire_due(at + timedelta(hours=1)) == 0
    with pytest.raises(Conflict):
        services.resume_schedule(schedule)


def test_a_late_delayed_start_still_runs_unless_told_otherwise(quick):
    at = timezone.now() - timedelta(hours=2)  # the ticker was down at that time
    owed = services.schedule_once("quick", at)
    dropped = services.schedule_once("quick", at, catch_up="none")
    services.fire_due()
    assert [r.status for r in runs_of(owed)] == ["started"]
    assert [r.status for r in runs_of(dropped)] == ["skipped"]


def test_fire_now_overrides_a_window(quick):
    now = timezone.now()
    MaintenanceWindow.objects.create(name="db upgrade", starts_at=now - timedelta(minutes=5),
                                     ends_at=now + timedelta(minutes=30))
    schedule = services.create_schedule("quick", "0 3 * * *")
    before = schedule.next_run_at
    run = services.fire_now(schedule)
    assert run.status == "started" and run.reason == "fired by hand"
    assert run_until_done(run.execution_id).status == "succeeded"
    schedule.refresh_from_db()
    assert schedule.next_run_at == before


def test_a_refused_start_is_recorded_and_the_schedule_moves_on(quick, publish):
    schedule = services.create_schedule("quick", EVERY_MINUTE)
    publish("quick", TYPED)  # the new version requires `customer`; the schedule has none
    now = timezone.now()
    make_due(schedule, minute_floor(now))
    services.fire_due(now)
    (run,) = runs_of(schedule)
    assert run.status == "skipped" and run.reason.startswith("start refused: input does not")
    schedule.refresh_from_db()
    assert schedule.next_run_at > now


# --- the ticker ------------------------------------------------------------------------------------

def test_cron_fires_on_time_from_the_ticker(quick):
    assert services.fire_due in ticker.TICK_HOOKS  # registered by SchedulesConfig.ready
    schedule = services.create_schedule("quick", EVERY_MINUTE)
    due = timezone.now() + timedelta(seconds=1)
    make_due(schedule, due)
    stop = threading.Event()

    def run():
        try:
            ticker.run_ticker(stop)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not executions_of(schedule).exists():
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    (execution,) = executions_of(schedule)
    late = (execution.created_at - due).total_seconds()
    assert 0 <= late <= 1.5, f"fired {late:.3f} s after its due time"
    (run,) = runs_of(schedule)
    assert run.due_at == due and run.status == "started"
    assert run_until_done(execution.pk).status in TERMINAL_EXECUTION


def test_a_failing_tick_hook_does_not_stop_the_others(quick, monkeypatch, caplog):
    def boom():
        raise RuntimeError("broken hook")

    monkeypatch.setattr(ticker, "TICK_HOOKS", [boom, services.fire_due])
    schedule = make_due(services.create_schedule("quick", EVERY_MINUTE), timezone.now())
    stop = threading.Event()
    thread = threading.Thread(target=lambda: (ticker.run_ticker(stop, max_seconds=1.0),
                                              connection.close()), daemon=True)
    thread.start()
    thread.join(10)
    stop.set()
    assert executions_of(schedule).count() == 1
    assert "broken hook" in caplog.text
