"""Start, watch and stop the bench's qcluster and ticker processes.

Each child gets its own process group: stopping is SIGTERM to the main process
only (django-q2 stops its own children), a bounded wait, then SIGKILL to
whatever is left of the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TICKER_SNIPPET = ("import django; django.setup(); "
                  "from apps.engine.ticker import run_ticker; run_ticker()")


def ticker_argv() -> list[str]:
    command = ROOT / "apps" / "engine" / "management" / "commands" / "braid.py"
    if command.exists() and "ticker" in command.read_text():
        return [sys.executable, "manage.py", "braid", "ticker"]
    return [sys.executable, "-c", TICKER_SNIPPET]


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        try:
            main = psutil.Process(self.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Processes:
    def __init__(self, env: dict, log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []

    def _spawn(self, name: str, argv: list[str], env: dict) -> Child:
        log_path = self.log_dir / f"{name}-{len(self.children)}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def spawn_piped(self, name: str, argv: list[str]) -> Child:
        """A helper process (W5's HTTP servers) whose stdout the bench reads."""
        log_path = self.log_dir / f"{name}-{len(self.children)}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=log, stdin=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def start_qcluster(self, workers: int, timeout: float = 30.0, *,
                       with_ticker: bool = False) -> Child:
        """`manage.py qcluster`, or with_ticker: `manage.py braid worker` (cluster + ticker)."""
        env = dict(self.env, BRAID_WORKERS=str(workers))
        argv = ([sys.executable, "manage.py", "braid", "worker"] if with_ticker
                else [sys.executable, "manage.py", "qcluster"])
        child = self._spawn("worker" if with_ticker else "qcluster", argv, env)
        # Up = sentinel, then `workers` workers + monitor + pusher under it.
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not child.alive():
                raise RuntimeError(f"qcluster exited:\n{child.log_tail()}")
            if len(child.tree()) >= workers + 4:
                return child
            time.sleep(0.05)
        raise RuntimeError(f"qcluster not up after {timeout}s:\n{child.log_tail()}")

    def start_ticker(self) -> Child:
        child = self._spawn("ticker", ticker_argv(), self.env)
        time.sleep(1.0)
        if not child.alive():
            raise RuntimeError(f"ticker exited:\n{child.log_tail()}")
        return child

    def all_processes(self) -> list[psutil.Process]:
        return [p for child in self.children for p in child.tree()]

    def pss_bytes(self) -> int:
        """PSS summed over every process of every tree this bench started."""
        total = 0
        for proc in self.all_processes():
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return total

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise RuntimeError(f"{child.name} {child.pid} died:\n{child.log_tail()}")

    def stop(self) -> None:
        for child in sorted(self.children, key=lambda c: c.name == "ticker"):
            if child.alive():
                try:
                    child.popen.send_signal(signal.SIGTERM)
                    child.popen.wait(20)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                child.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.children = []


class MemorySampler:
    """Samples the PSS of the bench's processes in a thread; keeps the peak."""

    def __init__(self, procs: Processes, every_s: float = 0.1):
        self.procs = procs
        self.every_s = every_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pss-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.procs.pss_bytes())
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.procs.pss_bytes())
