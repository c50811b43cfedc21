"""The ticker: wakes due timers and back-offs every TICK_S, reaps every REAP_EVERY_S.

Waits park in the database, so a thousand one-second delays cost one query a
tick here instead of a thousand sleeping processes. Run one or more per
deployment (`manage.py braid ticker`); every step is safe to run concurrently.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from apps.engine import clock, heartbeats, maintenance

log = logging.getLogger(__name__)

# Callables run once a tick after the timer step. Higher floors register here
# (apps.schedules adds its `fire_due` in its AppConfig.ready), so the ticker
# needs no import of them.
TICK_HOOKS: list = []
PURGE_EVERY_S = 60.0  # retention is in days: once a minute is plenty


def run_ticker(stop: threading.Event | None = None, max_seconds: float | None = None) -> None:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    cfg = settings.BRAID
    started = time.monotonic()
    next_reap = 0.0
    next_purge = 0.0
    last_tick = clock.now()
    while not stop.is_set():
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
        try:
            now = clock.now()
            while maintenance.wake_due_timers() >= maintenance.BATCH:
                pass
            maintenance.wake_for_backoffs(last_tick)
            last_tick = now
            for hook in TICK_HOOKS:
                try:
                    hook()
                except Exception:  # a failing hook must not starve the reaper below
                    log.exception("tick hook %s failed", getattr(hook, "__qualname__", hook))
            if time.monotonic() >= next_reap:
                heartbeats.beat("ticker")
                maintenance.reap_expired_leases()
                maintenance.release_pools_with_room()
                if time.monotonic() >= next_purge:
                    maintenance.purge_expired()
                    heartbeats.forget_silent()
                    next_purge = time.monotonic() + PURGE_EVERY_S
                maintenance.time_out_deadlines()
                maintenance.resend_lost_wakeups()
                next_reap = time.monotonic() + cfg["REAP_EVERY_S"]
        except Exception:  # keep ticking through a database restart
            log.exception("ticker step failed")
            close_old_connections()
            stop.wait(1.0)
        stop.wait(cfg["TICK_S"])
