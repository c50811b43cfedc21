"""Finished executions, pushed to whoever waits for them instead of polled.

Sending: on PostgreSQL the transaction that finishes an execution also runs
`pg_notify('braid_done', '<execution id>')` (`Batch.flush` calls
`notify_done`), so the notification is delivered when, and only if, the
result is committed. On SQLite nothing is sent.

Receiving, one `Listener` per process:

- PostgreSQL: a dedicated connection (autocommit, outside Django's pool)
  `LISTEN`s on `braid_done` in a daemon thread, and hands every id to the
  registered waiters and callbacks. If that connection drops, every waiter is
  woken (it re-reads its row) and the thread reconnects.
- SQLite: no connection to listen on. `Watch.wait` sleeps a short interval
  (`SQLITE_POLL_S`), after which the caller reads its one row by primary key.

The API, small on purpose:

    with watch(execution_id) as w:   # register *before* reading the row
        while row_is_not_finished():
            w.wait(timeout)          # True if woken (notification or drop)

    add_callback(fn)                 # fn(execution_id) on the listener thread,
    remove_callback(fn)              # for every finished execution (fan-out)

A notification is a hint, never the truth: a waiter always re-reads the
database after waking, and `wait` returns at the latest after `timeout`, so a
lost notification costs at most one timeout slice (`wait_for` uses
`RECHECK_S`), never a wrong answer. Registering before the first read closes
the race with an execution that finishes in between.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager

from django.db import connection, connections

log = logging.getLogger(__name__)

CHANNEL = "braid_done"
SQLITE_POLL_S = 0.005  # the embedded default's read interval while waiting
RECHECK_S = 1.0  # a waiter re-reads at least this often (a lost notification's cost)


def notify_done(execution_ids: Iterable) -> None:
    """Inside the finishing transaction: tell listeners these executions are done."""
    ids = [str(i) for i in execution_ids]
    if ids and connection.vendor == "postgresql":
        from apps.engine.bulk import _pg_cursor  # server-side binding: it can be pipelined

        with _pg_cursor() as cursor:
            cursor.execute("SELECT pg_notify(%b, x) FROM unnest(%b::text[]) AS x",
                           [CHANNEL, ids])


class Watch:
    """One waiter's registration: `wait` blocks until woken or the timeout."""

    def __init__(self, listener: Listener | None, key: str):
        self.listener = listener
        self.key = key
        self.event = threading.Event()

    def wait(self, timeout: float) -> bool:
        if self.listener is None:  # SQLite: the caller polls its row
            time.sleep(min(max(0.0, timeout), SQLITE_POLL_S))
            return False
        woken = self.event.wait(max(0.0, timeout))
        self.event.clear()
        return woken


class Listener:
    """The process's LISTEN connection and the waiters it wakes (PostgreSQL)."""

    def __init__(self, params: dict):
        self.params = params
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.waiters: dict[str, set[Watch]] = defaultdict(set)
        self.callbacks: list[Callable[[str], None]] = []
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.conn = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="braid-listen")
        self.thread.start()

    # --- registration ------------------------------------------------------------
    def add(self, w: Watch) -> None:
        with self.lock:
            self.waiters[w.key].add(w)

    def discard(self, w: Watch) -> None:
        with self.lock:
            group = self.waiters.get(w.key)
            if group is not None:
                group.discard(w)
                if not group:
                    del self.waiters[w.key]

    # --- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as conn:
                    self.conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    while not self.stopping.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._deliver(note.payload)
            except Exception as exc:  # dropped connection, server restart
                self.ready.clear()
                if self.stopping.is_set():
                    return
                log.warning("notification listener lost its connection (%s); "
                            "waiters re-read and it reconnects", exc)
                self._wake_all()
                time.sleep(0.5)

    def _deliver(self, execution_id: str) -> None:
        with self.lock:
            targets = list(self.waiters.get(execution_id, ()))
            callbacks = list(self.callbacks)
        for w in targets:
            w.event.set()
        for fn in callbacks:
            try:
                fn(execution_id)
            except Exception:
                log.exception("notification callback %r failed", fn)

    def _wake_all(self) -> None:
        with self.lock:
            targets = [w for group in self.waiters.values() for w in group]
        for w in targets:
            w.event.set()


_listener: Listener | None = None
_listener_lock = threading.Lock()


def listener() -> Listener | None:
    """The process's listener (None on SQLite); started on first use, again after a fork."""
    global _listener
    if connections["default"].vendor != "postgresql":
        return None
    with _listener_lock:
        if _listener is None or _listener.pid != os.getpid():
            params = dict(connections["default"].get_connection_params())
            for key in ("cursor_factory", "context", "prepare_threshold"):
                params.pop(key, None)
            _listener = Listener(params)
    # The first LISTEN takes a connection's time; later waits find it ready. If the
    # server is unreachable the waiter still works: it re-reads every RECHECK_S.
    _listener.ready.wait(5.0)
    return _listener


@contextmanager
def watch(execution_id):
    """Register interest in `execution_id` finishing; use before reading its row."""
    lst = listener()
    w = Watch(lst, str(execution_id))
    if lst is not None:
        lst.add(w)
    try:
        yield w
    finally:
        if lst is not None:
            lst.discard(w)


def shutdown() -> None:
    """Stop this process's listener and close its connection (tests, clean exits)."""
    global _listener
    with _listener_lock:
        lst, _listener = _listener, None
    if lst is not None and lst.pid == os.getpid():
        lst.stopping.set()
        lst.thread.join(5.0)
        lst._wake_all()


def add_callback(fn: Callable[[str], None]) -> None:
    """Call `fn(execution_id)` on the listener thread for every finished execution.

    It must be quick and thread-safe (e.g. `loop.call_soon_threadsafe`). PostgreSQL
    only: on SQLite there is no push and nothing is called.
    """
    lst = listener()
    if lst is not None:
        with lst.lock:
            if fn not in lst.callbacks:
                lst.callbacks.append(fn)


def remove_callback(fn: Callable[[str], None]) -> None:
    lst = _listener
    if lst is not None:
        with lst.lock:
            if fn in lst.callbacks:
                lst.callbacks.remove(fn)
