"""Real-process harness: qcluster and ticker processes on the test's own database.

The children run `tests.settings` against the database pytest-django created
for this session (its real name is read from Django's settings inside the
test): on PostgreSQL with the Redis db of REDIS_URL, which the harness flushes
before it starts anything; on the embedded default with the same SQLite file
and django-q2's ORM broker (its queue table is emptied instead). Every child gets its own process group, so stopping is
SIGTERM to the main process (django-q2 then stops its sentinel, workers,
monitor and pusher), a bounded wait, and SIGKILL to whatever is left of the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil

ROOT = Path(__file__).resolve().parents[2]
BRAID_COMMAND = ROOT / "apps" / "engine" / "management" / "commands" / "braid.py"
TICKER_SNIPPET = ("import django; django.setup(); "
                  "from apps.engine.ticker import run_ticker; run_ticker()")


def unavailable_reason(*, embedded_ok: bool = False) -> str | None:
    """Why real-process tests cannot run here, or None if they can.

    Tests that hold on the embedded default too (SQLite file, ORM broker) pass
    `embedded_ok`; the others need PostgreSQL and Redis.
    """
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if embedded_ok and engine == "django.db.backends.sqlite3":
        if not settings.DATABASES["default"].get("TEST", {}).get("NAME"):
            return "real-process tests on SQLite need a test database file, not :memory:"
        return None
    if engine != "django.db.backends.postgresql":
        return (f"real-process tests need PostgreSQL (DATABASE_URL) and Redis (REDIS_URL); "
                f"the database here is {engine.rsplit('.', 1)[-1]}")
    if not getattr(settings, "REDIS_URL", ""):
        return "real-process tests need REDIS_URL (django-q2's Redis broker); it is not set"
    return None


def database_url(db: dict) -> str:
    """A DATABASE_URL for the children pointing at `db` (a settings.DATABASES entry)."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


def ticker_command() -> list[str]:
    """`manage.py braid ticker` once that command exists, else the ticker loop directly."""
    if BRAID_COMMAND.exists() and "ticker" in BRAID_COMMAND.read_text():
        return [sys.executable, "manage.py", "braid", "ticker"]
    return [sys.executable, "-c", TICKER_SNIPPET]


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    log_path: Path
    workers: int = 0  # q2 worker processes (qcluster children only)
    killed: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """This child and all its descendants (while they exist)."""
        try:
            main = psutil.Process(self.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def pids(self) -> set[int]:
        return {p.pid for p in self.tree()}

    def q2_processes(self) -> list[psutil.Process]:
        """django-q2's sentinel children: workers, monitor and pusher (not the sentinel)."""
        tree = self.tree()
        return [p for p in tree[1:] if p.ppid() != self.pid]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Cluster:
    """Starts qcluster processes and a ticker for one test; `stop()` always cleans up."""

    def __init__(self, database: dict, redis_url: str | None, *, lease_s: float = 2.0,
                 reap_every_s: float = 0.5, lost_wakeup_s: float = 1.0,
                 extra_env: dict | None = None):
        self.redis_url = redis_url
        self.log_dir = Path(tempfile.mkdtemp(prefix="braid-processes-"))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BRAID_", "PYTEST_", "DJANGO_"))}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        if database["ENGINE"] == "django.db.backends.sqlite3":
            env["BRAID_SQLITE_PATH"] = str(database["NAME"])  # the ORM broker uses it too
        else:
            env["DATABASE_URL"] = database_url(database)
            env["REDIS_URL"] = redis_url
        env.update({
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "BRAID_LEASE_S": str(lease_s),
            "BRAID_REAP_EVERY_S": str(reap_every_s),
            "BRAID_LOST_WAKEUP_S": str(lost_wakeup_s),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        })
        env.update(extra_env or {})
        self.env = env
        self.children: list[Child] = []

    # --- the broker (Redis, or django-q2's ORM queue table) ---------------------
    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url)

    def flush_redis(self) -> None:
        self.flush_broker()

    def flush_broker(self) -> None:
        if self.redis_url:
            self.redis().flushdb()
        else:
            from django_q.models import OrmQ

            OrmQ.objects.all().delete()

    # --- processes -----------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict) -> Child:
        log_path = self.log_dir / f"{name}-{len(self.children)}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def start_qcluster(self, workers: int = 2, timeout: float = 30.0) -> Child:
        env = dict(self.env, BRAID_WORKERS=str(workers))
        child = self._spawn("qcluster", [sys.executable, "manage.py", "qcluster"], env)
        child.workers = workers
        # Up = sentinel + `workers` workers + monitor + pusher under the main process.
        self._wait(child, lambda: len(child.q2_processes()) >= workers + 2, timeout,
                   "qcluster processes")
        return child

    def start_worker(self, workers: int = 2, timeout: float = 30.0, **env) -> Child:
        """`manage.py braid worker`: a cluster with the ticker in its main process."""
        env = dict(self.env, BRAID_WORKERS=str(workers), **env)
        child = self._spawn("worker", [sys.executable, "manage.py", "braid", "worker"], env)
        child.workers = workers
        self._wait(child, lambda: len(child.q2_processes()) >= workers + 2, timeout,
                   "braid worker processes")
        return child

    def start_ticker(self, timeout: float = 15.0) -> Child:
        child = self._spawn("ticker", ticker_command(), self.env)
        # The ticker has no ready signal: alive after Django set-up is enough.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if not child.alive():
                break
            time.sleep(0.05)
        self._wait(child, lambda: True, timeout, "ticker")
        return child

    def _wait(self, child: Child, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not child.alive():
                raise RuntimeError(f"{what} exited with {child.popen.returncode}:\n"
                                   f"{child.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} not up after {timeout}s:\n{child.log_tail()}")

    def owns(self, pid: int) -> Child | None:
        """The child whose process tree holds `pid` (we only ever kill our own)."""
        for child in self.children:
            if pid in child.pids():
                return child
        return None

    def kill_pid(self, pid: int) -> None:
        """SIGKILL one process of our trees (a q2 worker in crash drills)."""
        child = self.owns(pid)
        if child is None:
            raise AssertionError(f"pid {pid} is not one of the processes this test started")
        os.kill(pid, signal.SIGKILL)
        child.killed.append(pid)

    def stop_child(self, child: Child, grace: float = 15.0) -> None:
        """SIGTERM the main process only; after `grace` SIGKILL its whole group."""
        if child.alive():
            try:
                child.popen.send_signal(signal.SIGTERM)
                child.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:
            os.killpg(child.pid, signal.SIGKILL)  # leftovers (a child that outlived its parent)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            child.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        # Stop clusters before the ticker so nothing re-sends wake-ups into a dead cluster.
        for child in sorted(self.children, key=lambda c: c.name == "ticker"):
            self.stop_child(child)

    def logs(self) -> str:
        return "\n".join(f"--- {c.name} pid {c.pid} ({c.log_path})\n{c.log_tail()}"
                         for c in self.children)
