"""Worker heartbeats: when each worker process and ticker was last seen.

Cheap by design: a drain loop or ticker writes its one row at most every
BEAT_EVERY_S (a wake-up that finds work costs one extra statement every few
seconds, not one per node). An idle worker writes nothing, but work that has
waited longer than LOST_WAKEUP_S gets a wake-up re-sent, so a live worker is
seen again soon after work appears; "no worker seen for a while" while work
has waited that long therefore means none is running.

The row also lists the timed-out blocking handlers still running on abandoned
threads of that process. A small watcher thread keeps it up to date until the
last of them returns, even when no drain is running.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.db import DatabaseError, close_old_connections

from apps.engine import clock
from apps.engine.models import WorkerHeartbeat
from apps.engine.writelock import write_transaction

log = logging.getLogger(__name__)
BEAT_EVERY_S = 5.0
FORGET_AFTER = timedelta(days=1)
_last: dict[str, float] = {}
_watcher: threading.Thread | None = None


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(role: str, abandoned: list[dict] | None = None, *, force: bool = False,
         stats: dict | None = None) -> bool:
    """Record that this process is alive (at most every BEAT_EVERY_S unless forced)."""
    key = f"{os.getpid()}:{role}"
    if not force and time.monotonic() - _last.get(key, float("-inf")) < BEAT_EVERY_S:
        return False
    _last[key] = time.monotonic()
    worker = process_name()
    values = {"seen_at": clock.now(), "abandoned": abandoned or []}
    if stats is not None:
        values["stats"] = stats
    try:
        with write_transaction():
            if not WorkerHeartbeat.objects.filter(worker=worker, role=role).update(**values):
                WorkerHeartbeat.objects.create(worker=worker, role=role, **values)
    except DatabaseError:  # a missed beat is harmless; the next one retries
        log.warning("could not record the %s heartbeat", role, exc_info=True)
        return False
    return True


def executor_stats(runner, inflight) -> dict:
    """Busy and size of each kind of handler slot, and runs in flight (cheap: counts)."""
    from django.conf import settings

    from apps.engine.capacity import limits

    busy = runner.busy(inflight)
    return {"inflight": len(inflight), "max_inflight": settings.BRAID["MAX_INFLIGHT"],
            "abandoned": len(runner.abandoned),
            **{kind: {"busy": busy.get(kind, 0), "size": size}
               for kind, size in limits().items()}}


def abandoned_of(runner) -> list[dict]:
    """The runner's abandoned threads, as the heartbeat row lists them."""
    now_mono, now = time.monotonic(), clock.now()
    return [{"run": f.claim.run_id, "execution": f.claim.execution_id, "node": f.claim.node_id,
             "attempt": f.claim.attempt, "timeout_s": f.claim.timeout_s,
             "timed_out_at": (now - timedelta(seconds=now_mono - f.abandoned_at)).isoformat()}
            for f in list(runner.abandoned.values())]


def watch_abandoned(runner) -> None:
    """Keep this process's row current while abandoned threads run, then clear it."""
    global _watcher
    if _watcher is not None and _watcher.is_alive():
        return
    _watcher = threading.Thread(target=_watch, args=(runner,), daemon=True,
                                name="braid-abandoned-watch")
    _watcher.start()


def _watch(runner) -> None:
    written, written_at = None, 0.0
    try:
        while True:
            current = set(runner.abandoned)
            if current != written or time.monotonic() - written_at >= BEAT_EVERY_S:
                if beat("worker", abandoned_of(runner), force=True):
                    written, written_at = current, time.monotonic()
            if not current and written == current:
                return
            time.sleep(0.5)
    finally:
        close_old_connections()


def forget_silent(older_than: timedelta = FORGET_AFTER) -> int:
    """Delete the rows of processes not seen for a day (they are gone)."""
    with write_transaction():
        return WorkerHeartbeat.objects.filter(seen_at__lt=clock.now() - older_than).delete()[0]
