"""Why is it not moving? Each reason is produced by a scenario that causes it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.engine import maintenance, protocol
from apps.engine.diagnosis import (
    APPROVAL,
    BACKOFF,
    LEASE_EXPIRED,
    LEASED,
    QUEUE_PAUSED,
    QUEUED,
    SIGNAL,
    TIMER,
    why_execution,
)
from apps.engine.models import NodeRun
from apps.engine.queues import pause_queue
from apps.engine.selectors import execution_detail
from apps.engine.start import StartRequest, start_execution, start_many
from apps.engine.worker import drain

pytestmark = pytest.mark.django_db(transaction=True)


def one(node):
    return {"name": "x", "nodes": [node], "edges": []}


ECHO = one({"id": "a", "type": "python", "config": {"function": "braid.echo"}})


def reasons(execution):
    return [(r.code, r.node) for r in why_execution(execution.pk)]


def test_queued_behind_the_runs_ahead_of_it_in_its_queue():
    start_many([StartRequest(definition=ECHO, queue="realtime") for _ in range(2)])
    start_many([StartRequest(definition=ECHO) for _ in range(3)])
    last = start_execution(StartRequest(definition=ECHO))

    (reason,) = why_execution(last.pk)
    assert reason.code == QUEUED
    assert reason.message == "queued behind 5 in queue 'default'"



def test_a_backlog_past_the_cap_is_said_as_more_than_the_cap(monkeypatch):
    """Counting a backlog of millions for one page view would scan it: the count stops."""
    monkeypatch.setattr("apps.engine.diagnosis.AHEAD_CAP", 4)
    start_many([StartRequest(definition=ECHO) for _ in range(6)])
    last = start_execution(StartRequest(definition=ECHO))

    (reason,) = why_execution(last.pk)
    assert reason.message == "queued behind more than 4 in queue 'default'"

def test_queue_paused():
    execution = start_execution(StartRequest(definition=ECHO, queue="background"))
    pause_queue("background")

    assert reasons(execution) == [(QUEUE_PAUSED, "a")]


def test_leased_by_a_worker_then_lease_expired():
    execution = start_execution(StartRequest(definition=ECHO))
    protocol.claim("host:42", 10, 30)
    (reason,) = why_execution(execution.pk)
    assert reason.code == LEASED and "host:42" in reason.message

    NodeRun.objects.filter(execution=execution).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert reasons(execution) == [(LEASE_EXPIRED, "a")]


def test_backoff_until_the_next_attempt():
    spec = one({"id": "f", "type": "fail", "config": {"times": 1},
                "retry": {"max_attempts": 2, "backoff_s": 30, "jitter": False}})
    execution = start_execution(StartRequest(definition=spec))
    drain(budget_s=1)

    (reason,) = why_execution(execution.pk)
    assert reason.code == BACKOFF and reason.until > timezone.now()


def test_timer_approval_and_signal_waits():
    timer = start_execution(StartRequest(definition=one(
        {"id": "d", "type": "delay", "config": {"seconds": 60}})))
    approval = start_execution(StartRequest(definition=one(
        {"id": "ok", "type": "approval", "config": {"timeout_s": 60}})))
    signal = start_execution(StartRequest(definition=one(
        {"id": "s", "type": "signal", "config": {"name": "paid"}})))
    drain(budget_s=1)

    assert reasons(timer) == [(TIMER, "d")]
    assert reasons(approval) == [(APPROVAL, "ok")]
    assert reasons(signal) == [(SIGNAL, "s")]
    assert "awaiting signal 'paid'" in execution_detail(signal.pk)["why"][0]["message"]


def test_a_finished_execution_has_no_reason():
    execution = start_execution(StartRequest(definition=ECHO))
    drain(budget_s=1)
    maintenance.reap()

    assert reasons(execution) == []


def test_the_admin_execution_page_says_why(admin_client):
    execution = start_execution(StartRequest(definition=one(
        {"id": "ok", "type": "approval", "config": {"timeout_s": 60}})))
    drain(budget_s=1)

    page = admin_client.get(f"/admin/engine/execution/{execution.pk}/change/").content
    assert b"Why is it not moving?" in page
    assert b"awaiting approval, times out" in page
