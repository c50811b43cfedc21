"""Waiting clients are woken by the finishing commit, not by polling; a lost
notification still ends in the right answer, read from the database."""

import threading

import pytest
from django.db import connection

from apps.engine import notify
from apps.engine.models import TERMINAL_EXECUTION
from apps.engine.start import StartRequest, start_execution, wait_for
from tests.conftest import load_example, run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

ALWAYS_FAILS = {"name": "fails", "nodes": [{"id": "boom", "type": "fail",
                                            "config": {"times": -1, "error_class": "execution"},
                                            "retry": {"max_attempts": 1}}], "edges": []}


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite waiters poll one row instead")


class Waiter(threading.Thread):
    """A client blocked in wait_for in its own thread (with its own connection)."""

    def __init__(self, execution_id, timeout_s: float):
        super().__init__(daemon=True)
        self.execution_id, self.timeout_s = execution_id, timeout_s
        self.result = self.error = None

    def run(self):
        try:
            self.result = wait_for(self.execution_id, self.timeout_s)
        except Exception as exc:  # surfaced by the test
            self.error = exc
        finally:
            connection.close()

    def outcome(self, join_s: float = 60):
        self.join(join_s)
        assert not self.is_alive(), "the waiter was not woken"
        assert self.error is None, self.error
        return self.result


def start(spec=None):
    return start_execution(StartRequest(definition=spec or load_example("three_steps"),
                                        input={"amount": 5}))


def test_a_waiting_client_gets_the_result_when_its_execution_finishes():
    execution = start()
    waiter = Waiter(execution.pk, timeout_s=120)
    waiter.start()

    run_until_done(execution.pk)

    assert waiter.outcome().status == "succeeded"


def test_the_finishing_commit_wakes_a_registered_watch():
    postgres_only()
    execution = start()
    with notify.watch(execution.pk) as watch:
        run_until_done(execution.pk)
        # Woken by the notification of the commit (a timeout would return False).
        assert watch.wait(timeout=30) is True


def test_callbacks_hear_every_finished_execution():
    postgres_only()
    heard, got_it = [], threading.Event()

    def callback(execution_id):
        heard.append(execution_id)
        got_it.set()

    notify.add_callback(callback)
    try:
        execution = start()
        run_until_done(execution.pk)
        assert got_it.wait(30)
    finally:
        notify.remove_callback(callback)
    assert str(execution.pk) in heard


def test_a_lost_notification_falls_back_to_a_read_and_returns_the_result(monkeypatch):
    postgres_only()
    execution = start()
    listener = notify.listener()
    waiter = Waiter(execution.pk, timeout_s=120)
    waiter.start()
    _until(lambda: str(execution.pk) in listener.waiters)
    old_backend = listener.conn.info.backend_pid

    # The listener's connection drops mid-wait, and the finishing commit's
    # notification never reaches anyone.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [old_backend])
    monkeypatch.setattr(notify, "notify_done", lambda ids: None)
    run_until_done(execution.pk)

    assert waiter.outcome().status == "succeeded"
    # ...and the listener is back for the next waiter.
    _until(lambda: listener.ready.is_set() and listener.conn is not None
           and not listener.conn.closed and listener.conn.info.backend_pid != old_backend)


def test_wait_returns_early_on_success():
    execution = start()
    waiter = Waiter(execution.pk, timeout_s=3600)
    waiter.start()
    run_until_done(execution.pk)
    # Joined long before its hour is up: it returned when the execution finished.
    assert waiter.outcome(join_s=60).status == "succeeded"


def test_wait_returns_early_on_failure():
    execution = start(ALWAYS_FAILS)
    waiter = Waiter(execution.pk, timeout_s=3600)
    waiter.start()
    run_until_done(execution.pk)
    result = waiter.outcome(join_s=60)
    assert result.status == "failed"
    assert result.error["node"] == "boom"


def test_wait_returns_at_the_timeout_with_the_current_status():
    execution = start()  # no worker drains it

    result = wait_for(execution.pk, 0.3)

    assert result.status not in TERMINAL_EXECUTION
    assert result.status == "pending"


def _until(condition, timeout: float = 30.0):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
