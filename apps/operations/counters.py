"""Braid's counters and histograms, summed across every process on every host.

Each process counts what its committed batches did (an after-commit
subscriber, so rolled-back work never counts) in memory, and a thread of its
own adds the deltas to MetricCounter rows every FLUSH_S, one upsert per series. Workers
serve no /metrics of their own; the web process reads the sums. A process
killed before it flushes loses at most FLUSH_S of counts — metrics, not records.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from bisect import bisect_left
from collections import Counter
from functools import lru_cache

from django.db import connection

from apps.engine import hooks
from apps.engine.statuses import TERMINAL_EXECUTION, TERMINAL_RUN

log = logging.getLogger(__name__)

FLUSH_S = 5.0
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0, float("inf"))
FINISHED = TERMINAL_EXECUTION
NODE_OUTCOMES = TERMINAL_RUN

_pending: Counter = Counter()
_lock = threading.Lock()


def labels(**values) -> str:
    """Canonical label text: sorted k=v pairs joined by commas."""
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


def _workflow(info: hooks.ExecutionInfo) -> tuple[str, str]:
    return _version_names(info.version_id)


@lru_cache(maxsize=4096)
def _version_names(version_id: int) -> tuple[str, str]:
    from apps.workflows.models import WorkflowVersion

    slug, number = (WorkflowVersion.objects.filter(pk=version_id)
                    .values_list("definition__slug", "number").first() or ("?", 0))
    return slug, str(number)


def _node_type_of(version_id: int, node_id: str) -> str:
    try:
        return _cached_node_type(version_id, node_id)
    except Exception:  # a version today's code cannot read: still count it (not cached)
        return "unknown"


@lru_cache(maxsize=16384)
def _cached_node_type(version_id: int, node_id: str) -> str:
    from apps.workflows.specs import graph_for

    return graph_for(version_id).nodes[node_id].type


def _node_type(info: hooks.ExecutionInfo, node_id: str) -> str:
    return _node_type_of(info.version_id, node_id)


# Histograms are stored per bucket, not cumulatively: an observation adds to one
# `<name>_le` row (plus _sum and _count), and the collector sums the buckets up
# at scrape time. Counting is per node, scraping is every 15 s or so.
def observe(name: str, value: float, **label_values) -> None:
    """Add one observation to histogram `name` (its bucket, _sum, _count)."""
    buckets, total, count = _series(name, tuple(sorted(label_values.items())))
    _pending[buckets[bisect_left(DURATION_BUCKETS, value)]] += 1
    _pending[total] += value
    _pending[count] += 1


@lru_cache(maxsize=4096)
def _series(name: str, items: tuple) -> tuple[tuple, tuple, tuple]:
    """A histogram's series keys for one label set, built once (observe is per node)."""
    values = dict(items)
    buckets = tuple((f"{name}_le", labels(le="+Inf" if b == float("inf") else repr(b),
                                          **values)) for b in DURATION_BUCKETS)
    return buckets, (f"{name}_sum", labels(**values)), (f"{name}_count", labels(**values))


@lru_cache(maxsize=4096)
def _key(name: str, items: tuple) -> tuple[str, str]:
    """A counter's series key for one label set (label text built once)."""
    return name, labels(**dict(items))


def count_batch(batch: hooks.CommittedBatch) -> None:
    """The after-commit subscriber: count what this batch did, flush when due."""
    with _lock:
        for event in batch.events:
            info = batch.executions.get(event.execution_id)
            if info is not None:
                _count_event(event, info)
    _ensure_flusher()


def _count_event(event: hooks.CommittedEvent, info: hooks.ExecutionInfo) -> None:
    kind, _, what = event.type.partition(".")
    if kind == "execution":
        slug, number = _version_names(info.version_id)
        if what == "created":
            _pending[_key("braid_executions_started_total",
                          (("queue", info.queue), ("version", number),
                           ("workflow", slug)))] += 1
        elif what in FINISHED:
            _pending[_key("braid_executions_finished_total",
                          (("status", what), ("version", number), ("workflow", slug)))] += 1
        return
    if kind not in ("node", "compensation"):
        return
    payload = event.payload
    node_id = payload.get("node", "")
    if what in NODE_OUTCOMES:
        node_type = _node_type_of(info.version_id, node_id)
        _pending[_key("braid_node_runs_total",
                      (("node_type", node_type), ("outcome", what)))] += 1
        duration_ms = payload.get("duration_ms")
        if what == "succeeded" and duration_ms is not None:
            observe("braid_node_duration_seconds", duration_ms / 1000, node_type=node_type)
        if what == "failed" and payload.get("lease_lost"):
            _pending[_key("braid_lease_losses_total", (("queue", info.queue),))] += 1
    elif what == "retrying":
        _pending[_key("braid_node_retries_total",
                      (("node_type", _node_type_of(info.version_id, node_id)),))] += 1
    elif what == "started" and payload.get("waited_ms") is not None:
        observe("braid_queue_wait_seconds", payload["waited_ms"] / 1000, queue=info.queue)


UPSERT = ("INSERT INTO operations_metriccounter (name, labels, value) VALUES {rows} "
          "ON CONFLICT (name, labels) DO UPDATE SET value = "
          "operations_metriccounter.value + excluded.value")


def flush(keep_on_error: bool = True) -> int:
    """Add this process's pending deltas to the shared rows; returns series written."""
    with _lock:
        items = list(_pending.items())
        _pending.clear()
    if not items:
        return 0
    try:
        for start in range(0, len(items), 200):
            chunk = items[start:start + 200]
            params = [v for (name, label_text), delta in chunk for v in (name, label_text, delta)]
            with connection.cursor() as cursor:
                cursor.execute(UPSERT.format(rows=", ".join(["(%s, %s, %s)"] * len(chunk))),
                               params)
    except Exception:  # the database is away: keep the counts for the next flush
        if not keep_on_error:
            return 0  # exiting: nobody is left to log to or flush later
        log.warning("metric counters not flushed; keeping them for later", exc_info=True)
        with _lock:
            for key, delta in items:
                _pending[key] += delta
        return 0
    return len(items)


_flusher_pid = 0


def _flusher_loop() -> None:
    from django.db import close_old_connections

    while True:
        time.sleep(FLUSH_S)
        if not _pending:
            continue
        try:
            close_old_connections()
            flush()
        except Exception:  # no database right now: the counts wait for the next round
            log.debug("metric counters not flushed this round", exc_info=True)


def _ensure_flusher() -> None:
    """One flushing thread per process (started after a fork, in the child that counts)."""
    global _flusher_pid
    if _flusher_pid != os.getpid():
        _flusher_pid = os.getpid()
        threading.Thread(target=_flusher_loop, name="braid-metrics", daemon=True).start()


atexit.register(lambda: flush(keep_on_error=False) if _pending else None)
