"""Bench-only statement and transaction counter, loaded into the bench's child processes.

`bench/run.py` puts this directory first on the children's PYTHONPATH and sets
BENCH_PROBE_DIR, so Python imports this file at start-up (`sitecustomize`). It
hooks every new Django database connection: an execute wrapper counts the SQL
statements (an `executemany` is one), and wrapping `_commit` counts committed
transactions (a statement run in autocommit mode counts as one too). Each
process writes its totals to BENCH_PROBE_DIR/<pid>.json about every 0.2 s;
the bench sums the files before and after a workload. Nothing here runs
outside the bench (no BENCH_PROBE_DIR, no hook).
"""

import json
import os
import threading
import time

_DIR = os.environ.get("BENCH_PROBE_DIR")
_counts = {"statements": 0, "commits": 0}
_flusher_pid = None


def _flush_forever(pid):
    path = os.path.join(_DIR, f"{pid}.json")
    while True:
        time.sleep(0.2)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(_counts, f)
        os.replace(tmp, path)


def _ensure_flusher():
    # Threads do not survive a fork: django-q2's workers start their own.
    global _flusher_pid
    pid = os.getpid()
    if _flusher_pid != pid:
        _flusher_pid = pid
        _counts["statements"] = _counts["commits"] = 0
        threading.Thread(target=_flush_forever, args=(pid,), daemon=True,
                         name="bench-probe").start()


def _counter(connection):
    def wrapper(execute, sql, params, many, context):
        _ensure_flusher()
        _counts["statements"] += 1
        if connection.get_autocommit() and not connection.in_atomic_block:
            _counts["commits"] += 1
        return execute(sql, params, many, context)

    return wrapper


def _hook(sender, connection, **kwargs):
    if getattr(connection, "_bench_probe", False):
        return
    connection._bench_probe = True
    connection.execute_wrappers.append(_counter(connection))
    commit = connection._commit

    def counted_commit():
        _ensure_flusher()
        _counts["commits"] += 1
        return commit()

    connection._commit = counted_commit


if _DIR:
    from django.db.backends.signals import connection_created

    connection_created.connect(_hook, weak=False)
