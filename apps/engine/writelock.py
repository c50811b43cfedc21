"""Fair write transactions on SQLite (the embedded default).

SQLite lets one writer at a time in, and a blocked writer polls with growing
sleeps: two busy workers re-taking the lock between their transactions can
starve a third process for seconds (measured: a realtime start waited up to
3.9 s behind a background backlog). Braid's own write transactions therefore
first take an OS file lock, whose waiters the kernel wakes when it is released.
On PostgreSQL this is a plain `transaction.atomic()`.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from django.db import connection, transaction

_fd: tuple[str, int] | None = None


def _lock_fd() -> int | None:
    global _fd
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    path = name + ".writelock"
    if _fd is None or _fd[0] != path or _fd[1] < 0:
        _fd = (path, os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return _fd[1]


@contextmanager
def write_transaction():
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    fd = _lock_fd()
    if fd is None:
        with transaction.atomic():
            yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with transaction.atomic():
            yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
