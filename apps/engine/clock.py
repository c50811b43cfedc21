"""The database's clock: the one clock every worker, ticker and host agrees on.

Lease expiry, retry back-offs (`not_before`) and parked timers (`wake_at`) are
written by one host and compared by another, so they are written and compared
on the database's clock, not on each host's. Asking the database on every
transaction would cost a round trip on the hot path; instead each process
measures its offset to the database (half the round trip taken off) every
SYNC_EVERY_S, and `now()` is the local clock plus that offset. A host whose
clock is minutes off then still writes leases that expire on time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils.dateparse import parse_datetime

SYNC_EVERY_S = 10.0
_synced: tuple[float, timedelta] = (float("-inf"), timedelta(0))


def local_now() -> datetime:
    """This host's clock (the only place the engine reads it; tests skew it here)."""
    return datetime.now(UTC)


def database_now() -> datetime:
    """The database server's clock, read now (not the transaction's start time)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
        # SQLite reads the clock of the host it runs on, which is every process's.
        cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
        return parse_datetime(cursor.fetchone()[0]).replace(tzinfo=UTC)


def offset() -> timedelta:
    """Database clock minus this host's clock, measured at most SYNC_EVERY_S ago."""
    global _synced
    synced_at, value = _synced
    if time.monotonic() - synced_at > SYNC_EVERY_S:
        value = _measure()
        _synced = (time.monotonic(), value)
    return value


def _measure() -> timedelta:
    """The offset from the quickest of three round trips: on a busy host a thread may be
    descheduled mid-measurement, and the quickest trip carries the least of that noise."""
    best = None
    for _ in range(3):
        before = local_now()
        db = database_now()
        after = local_now()
        if best is None or after - before < best[0]:
            best = (after - before, db - (before + (after - before) / 2))
    return best[1]


def now() -> datetime:
    """The database's time, without a round trip."""
    return local_now() + offset()


def forget() -> None:
    """Measure the offset again on the next call (tests; after a clock step)."""
    global _synced
    _synced = (float("-inf"), timedelta(0))
