"""Where live progress reads the database: a few threads that keep their connections.

`database_sync_to_async` closes a connection after each use unless CONN_MAX_AGE
keeps it, and on SQLite it is 0: every replay page, gap refill and tail poll
would open a connection (measured: a quarter of a busy web process's time).
These readers keep theirs; a query that fails closes it, so the next one
reconnects.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

READERS = 4
_executors = [ThreadPoolExecutor(1, thread_name_prefix=f"braid-live-read-{i}")
              for i in range(READERS)]
_turn = itertools.cycle(range(READERS))


def _call(fn, *args):
    try:
        return fn(*args)
    except Exception:
        connection.close()
        raise


async def read(fn, *args, reader: int | None = None):
    """Run `fn(*args)` on a reader thread (`reader` pins one: the tail keeps its own)."""
    executor = _executors[next(_turn) if reader is None else reader % READERS]
    return await asyncio.get_running_loop().run_in_executor(executor, _call, fn, *args)


def _close() -> None:
    connection.close()  # resolved in the reader's thread: its own connection


def close_connections() -> None:
    """Close every reader's connection (tests, before the test database is dropped)."""
    for executor in _executors:
        executor.submit(_close).result()
