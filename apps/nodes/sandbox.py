"""Evaluate costly CEL expressions in child processes, under a time budget.

The CEL library runs in Rust: a thread cannot interrupt it, and a crash in it
kills the whole process. An expression that is not proven cheap therefore runs
in a small pool of child processes (`python -m apps.nodes.sandbox`, which
imports the expression module and nothing of Django). A request and its answer
are one line of JSON each way: no pickle. Past its budget the child is killed
(SIGKILL) and the evaluation fails as `timeout`; a child that dies fails it as
`resource`. Either way a new child replaces it on the next request, and the
worker or web process that asked goes on.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from apps.nodes.expressions import ExpressionError, compile_unbounded, evaluate_here

ROOT = Path(__file__).resolve().parents[2]
# Test-only hook: a child whose environment sets this crashes (SIGSEGV) on any
# source containing its value, as the library does on inputs nobody can predict.
CRASH_ENV = "BRAID_TEST_SANDBOX_CRASH"
# How long a new child may take to start (a loaded host); not part of any budget.
START_TIMEOUT_S = 60.0


class _Child:
    """One evaluator process and its pipes."""

    def __init__(self):
        # A minimal environment: the child needs no database URL or secret key.
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
        if os.environ.get(CRASH_ENV):
            env[CRASH_ENV] = os.environ[CRASH_ENV]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apps.nodes.sandbox"], cwd=ROOT, env=env, bufsize=0,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            # The budget counts evaluation only: wait for the child's "ready" line.
            self._read_line(START_TIMEOUT_S)
        except (TimeoutError, EOFError):
            self.kill()
            raise

    def ask(self, request: bytes, budget_s: float) -> dict:
        """Send one request; the answer, or raise TimeoutError / EOFError."""
        try:
            self.proc.stdin.write(request)
        except (BrokenPipeError, OSError):
            raise EOFError from None
        return json.loads(self._read_line(budget_s))

    def _read_line(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                return b"".join(chunks)

    def kill(self) -> str:
        """Kill the child; how it ended (for the error message)."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()
        return f"signal {-code}" if code < 0 else f"exit code {code}"


class Sandbox:
    """A pool of at most `size` children, made on demand."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._idle: list[_Child] = []
        self._count = 0
        self._cond = threading.Condition()

    def evaluate(self, source: str, context: dict, budget_s: float) -> Any:
        request = (json.dumps({"source": source, "context": context}, default=str) + "\n").encode()
        child = self._take()
        try:
            answer = child.ask(request, budget_s)
        except TimeoutError:
            child.kill()
            child = None
            raise ExpressionError(
                f"{_short(source)} ran longer than its budget of {budget_s:g} s and was "
                f"stopped", error_class="timeout", retryable=True) from None
        except EOFError:
            how = child.kill()
            child = None
            raise ExpressionError(
                f"the process evaluating {_short(source)} died ({how})",
                error_class="resource", retryable=True) from None
        finally:
            self._give(child)
        if not answer["ok"]:
            raise ExpressionError(answer["message"])
        return answer["value"]

    def _take(self) -> _Child:
        with self._cond:
            while not self._idle and self._count >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return _Child()
        except (TimeoutError, EOFError):
            self._give(None)
            raise ExpressionError("the expression sandbox process could not start",
                                  error_class="resource", retryable=True) from None
        except BaseException:
            self._give(None)
            raise

    def _give(self, child: _Child | None) -> None:
        with self._cond:
            if child is None:
                self._count -= 1
            else:
                self._idle.append(child)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for child in idle:
            child.kill()


def _short(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


_sandbox: tuple[int, Sandbox] | None = None
_lock = threading.Lock()


def get_sandbox() -> Sandbox:
    """This process's pool (a forked child makes its own: pipes do not survive a fork)."""
    global _sandbox
    with _lock:
        if _sandbox is None or _sandbox[0] != os.getpid():
            from apps.nodes.expressions import LIMITS

            _sandbox = (os.getpid(), Sandbox(LIMITS.processes))
        return _sandbox[1]


def evaluate(source: str, context: dict, budget_s: float) -> Any:
    return get_sandbox().evaluate(source, context, budget_s)


def serve() -> None:
    """The child's loop: one JSON request per line in, one JSON answer per line out.

    Sources arrive already bounded (by the parent's limits) and compiled once there.
    """
    crash_on = os.environ.get(CRASH_ENV)
    sys.stdout.buffer.write(b"ready\n")
    sys.stdout.buffer.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        source = request["source"]
        if crash_on and crash_on in source:
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            value = evaluate_here(source, request["context"], compile_unbounded(source))
            answer = {"ok": True, "value": value}
        except ExpressionError as exc:
            answer = {"ok": False, "message": str(exc)}
        sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    serve()
