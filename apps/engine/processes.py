"""A process pool for CPU-bound `python` nodes ("mode": "process").

Each slot of the pool is one child process running one node run at a time,
driven by one thread of the worker. Knowing which child runs which run is the
point: a run past its timeout has *its* child killed, and a child that dies
(killed, out of memory, a segfault) fails only the run it had, as `resource`
(retryable). The slot starts a fresh child for its next run, so the pool
recovers by itself; the runs of the other slots never notice.

Children are separate interpreters (`python -m apps.engine.poolchild`, not
forked from a worker that runs threads) that set up Django once, so registered
functions resolve by name. Only JSON lines cross the process boundary: no
pickle of user data.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from apps.nodes.contract import NodeContext, NodeError, with_emitted_text

log = logging.getLogger(__name__)
READY = "ready"  # a child's first line once Django is set up


def run_in_process(payload: str) -> str:
    """In the child: run the node's handler, answer with a JSON string."""
    from apps.nodes.registry import get_node_type

    data = json.loads(payload)
    ctx = NodeContext(**data)
    try:
        # A spawned child has no stream: what it emits is kept for the output only.
        value = with_emitted_text(get_node_type(data["node_type"]).run(ctx), ctx)
    except NodeError as exc:
        return json.dumps({"ok": False, "error_class": exc.error_class,
                           "retryable": exc.retryable, "message": str(exc)})
    except Exception as exc:  # every failure becomes a classified result
        return json.dumps({"ok": False, "error_class": "execution", "retryable": True,
                           "message": f"{type(exc).__name__}: {exc}"})
    try:
        return json.dumps({"ok": True, "output": value, "pid": os.getpid()})
    except (TypeError, ValueError) as exc:
        return json.dumps({"ok": False, "error_class": "execution", "retryable": False,
                           "message": f"output is not JSON: {exc}"})


def payload_for(ctx: NodeContext) -> str:
    return json.dumps({"execution_id": ctx.execution_id, "node_id": ctx.node_id,
                       "node_type": ctx.node_type, "attempt": ctx.attempt,
                       "config": ctx.config, "input": ctx.input, "nodes": ctx.nodes})


@dataclass(eq=False)
class Task:
    """One node run handed to the pool. `on_start` fires when a child has it
    (its timeout starts then); `on_done(answer, died)` once, unless killed."""

    payload: str
    on_start: Callable[[], None]
    on_done: Callable[[str | None, str | None], None]
    killed: bool = False
    child: subprocess.Popen | None = field(default=None, repr=False)


class ProcessPool:
    def __init__(self, size: int):
        self.size = size
        self._tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._slots: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.children: dict[int, subprocess.Popen] = {}  # pid → child, for diagnostics

    def submit(self, task: Task) -> Task:
        self._tasks.put(task)
        with self._lock:
            if len(self._slots) < self.size:
                slot = threading.Thread(target=self._serve, daemon=True,
                                        name=f"braid-process-slot-{len(self._slots)}")
                self._slots.append(slot)
                slot.start()
        return task

    def kill(self, task: Task) -> None:
        """Stop the run for good: its child is killed; the slot starts a new one."""
        task.killed = True
        child = task.child
        if child is not None and child.poll() is None:
            child.kill()

    # --- one slot: a thread driving one child at a time -------------------------
    def _serve(self) -> None:
        child = None
        while True:
            task = self._tasks.get()
            if task.killed:
                continue
            try:
                if child is None or child.poll() is not None:
                    child = self._spawn()
            except Exception as exc:  # no child: this run fails, the next tries again
                child = None
                task.on_done(None, f"could not start a pool process: {exc}")
                continue
            task.child = child
            answer, died = self._run(child, task)
            if died:
                self.children.pop(child.pid, None)
                child = None
            if not task.killed:
                task.on_done(answer, died)

    def _run(self, child: subprocess.Popen, task: Task) -> tuple[str | None, str | None]:
        try:
            child.stdin.write(task.payload.replace("\n", " ") + "\n")
            child.stdin.flush()
            task.on_start()
            line = child.stdout.readline()
        except (OSError, ValueError):
            line = ""
        if line:
            return line, None
        try:
            code = child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        reason = "killed after its timeout" if task.killed else f"exit code {code}"
        return None, f"pool process {child.pid} died ({reason})"

    def _spawn(self) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-m", "apps.engine.poolchild"], cwd=str(settings.BASE_DIR),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "config.settings")})
        first = child.stdout.readline().strip()
        if first != READY:
            child.kill()
            child.wait()
            raise RuntimeError(f"pool process exited during set-up ({first or 'no answer'})")
        self.children[child.pid] = child
        log.info("process pool: started child %s", child.pid)
        return child

    def shutdown(self) -> None:
        for child in list(self.children.values()):
            if child.poll() is None:
                child.kill()
