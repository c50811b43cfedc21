"""Leases, back-offs and timers are on the database's clock, so a host whose
clock is off neither loses live leases nor wakes work early or late."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.engine import clock, maintenance, protocol
from apps.engine.models import NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = {"name": "slow", "edges": [], "nodes": [
    {"id": "work", "type": "python", "config": {"function": "braid.sleep",
                                                "args": {"seconds": 0.1}}}]}


@pytest.fixture
def host_clock(monkeypatch):
    """Skew this process's clock (every way it reads it) by some amount; 0 puts it right."""
    def _skew(seconds: float):
        skewed = lambda: datetime.now(UTC) + timedelta(seconds=seconds)  # noqa: E731
        monkeypatch.setattr(clock, "local_now", skewed)
        monkeypatch.setattr(timezone, "now", skewed)
        clock.forget()
    yield _skew
    clock.forget()


def real_now():
    return datetime.now(UTC)


@pytest.mark.parametrize("skew_s", [-3600, 3600])
def test_a_skewed_worker_clock_reaps_nothing_live(host_clock, skew_s):
    execution = start_execution(StartRequest(definition=SLOW))
    host_clock(skew_s)
    (claim,) = protocol.claim("skewed:1", 10, 30).claims
    run = NodeRun.objects.get(pk=claim.run_id)
    assert abs((run.lease_expires_at - real_now()).total_seconds() - 30) < 5

    host_clock(0)  # the reaper's host has the right time
    assert maintenance.reap_expired_leases() == 0
    host_clock(-skew_s)  # and one whose clock is off the other way
    assert maintenance.reap_expired_leases() == 0
    host_clock(skew_s)
    assert protocol.heartbeat("skewed:1", {claim.run_id: claim.lease_token}, 30) == set()

    assert NodeRun.objects.get(pk=claim.run_id).status == "running"
    assert NodeRun.objects.filter(execution=execution).count() == 1


def test_a_worker_clock_ahead_schedules_a_retry_back_off_on_the_database_clock(host_clock):
    flaky = {"name": "flaky", "edges": [], "nodes": [
        {"id": "f", "type": "fail", "config": {"times": 1},
         "retry": {"max_attempts": 2, "backoff_s": 1, "jitter": False}}]}
    execution = start_execution(StartRequest(definition=flaky))
    host_clock(3600)

    drain(budget_s=0.5)

    retry = NodeRun.objects.get(execution=execution, attempt=2)
    assert retry.status == "ready"
    assert abs((retry.not_before - real_now()).total_seconds()) < 5


def test_a_worker_clock_behind_parks_a_timer_on_the_database_clock(host_clock):
    delay = {"name": "delay", "edges": [], "nodes": [
        {"id": "d", "type": "delay", "config": {"seconds": 30}}]}
    execution = start_execution(StartRequest(definition=delay))
    host_clock(-3600)
    drain(budget_s=0.5)
    host_clock(0)

    run = NodeRun.objects.get(execution=execution, node_id="d")
    assert run.status == "waiting"
    assert abs((run.wake_at - real_now()).total_seconds() - 30) < 5
    assert maintenance.wake_due_timers() == 0  # not woken before its 30 s
