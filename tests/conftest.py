import json
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from apps.engine import clock, limits, maintenance, notify, queues, ratelimits
from apps.engine.models import TERMINAL_EXECUTION, Execution
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from apps.workflows import services as workflow_services
from apps.workflows import specs
from apps.workflows.services import publish_version

pytest_plugins = ["tests.personas"]  # vera, otto, olga, oscar: see tests/personas.py
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def run_until_done(execution_id, timeout: float = 10.0) -> Execution:
    """Drive the engine in this process (drain + ticker steps) until the execution ends."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        drain(budget_s=2)
        maintenance.wake_due_timers()
        maintenance.reap_expired_leases()
        maintenance.time_out_deadlines()
        execution = Execution.objects.get(pk=execution_id)
        if execution.status in TERMINAL_EXECUTION:
            return execution
        time.sleep(0.02)
    raise AssertionError(f"execution {execution_id} still {execution.status} after {timeout}s")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's, plus: the notification listener holds a connection to the
    test database, so it is closed before the test database is dropped."""
    yield
    notify.shutdown()


@pytest.fixture(autouse=True)
def _fresh_graph_cache():
    """Versions and parsed graphs are cached per id. Real databases never reuse an
    id, but a flushed test database does, so each test starts with empty caches."""
    specs._cache.clear()
    workflow_services._versions.clear()
    queues._paused = (0.0, frozenset())
    queues._urgent_seen.clear()
    ratelimits.forget_rules()
    limits.forget_rules()
    clock.forget()


@pytest.fixture
def run_graph(db):
    """Start an inline definition and drive it to the end: run_graph(spec, input={...})."""

    def _run(spec: dict, timeout: float = 10.0, **kwargs) -> Execution:
        execution = start_execution(StartRequest(definition=spec, **kwargs))
        return run_until_done(execution.pk, timeout)

    return _run


@pytest.fixture
def publish(db):
    def _publish(slug: str, spec: dict, **kwargs):
        return publish_version(slug, spec, **kwargs)

    return _publish


@pytest.fixture
def engine():
    """Drive the engine from a background thread while a command waits in this one."""
    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                drain(budget_s=0.5)
                maintenance.wake_due_timers()
                stop.wait(0.01)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
