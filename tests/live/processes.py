"""Real daphne processes (and a braid worker) for live-progress tests.

Runs on either pass: on SQLite the children use the embedded default (the test
database file, django-q2's ORM broker, fan-out by tailing the event table); on
PostgreSQL + Redis they use DATABASE_URL/REDIS_URL (fan-out by channels-redis).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from django.conf import settings

from tests.processes.harness import Child, Cluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


class LiveProcesses(Cluster):
    def __init__(self):
        # The harness runs the children on the embedded default when the test
        # database is SQLite, and on PostgreSQL + Redis otherwise.
        super().__init__(dict(settings.DATABASES["default"]), settings.REDIS_URL or None)
        self.flush_broker()

    def start_daphne(self, timeout: float = 60.0) -> tuple[Child, str]:
        port = free_port()
        child = self._spawn("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1",
                                       "-p", str(port), "config.asgi:application"], self.env)

        def listening():
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        self._wait(child, listening, timeout, f"daphne on port {port}")
        return child, f"http://127.0.0.1:{port}"

    def sigkill(self, child: Child) -> None:
        os.killpg(child.pid, signal.SIGKILL)
        child.killed.append(child.pid)
        child.popen.wait(10)


def wait_until(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} after {timeout}s")
