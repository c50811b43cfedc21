"""The resource monitor: each worker host's CPU, memory and its Braid processes.

A sample is a row per host every BRAID_MONITOR_EVERY_S (the ticker's process
records it), kept for a day; the host alert rules and `braid workers` read the
latest. Memory is measured against the cgroup's limit when there is one, as a
container sees it, not the machine's.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.operations.models import HostSample

HOST = socket.gethostname()
KEEP = timedelta(days=1)
_next_at = 0.0


def every_s() -> float:
    return float(getattr(settings, "BRAID_MONITOR_EVERY_S", 15.0))


def _cgroup_memory() -> tuple[float, float] | None:
    """(used, limit) bytes of this cgroup (v2), or None when unlimited or unknown."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        used = (base / "memory.current").read_text().strip()
    except OSError:
        return None
    if limit == "max":
        return None
    return float(used), float(limit)


def memory() -> tuple[float, float]:
    """(percent used, MiB used), of the cgroup limit if any, else of the machine."""
    cgroup = _cgroup_memory()
    if cgroup:
        used, limit = cgroup
        return 100.0 * used / limit, used / 2**20
    vm = psutil.virtual_memory()
    return vm.percent, (vm.total - vm.available) / 2**20


def processes() -> list[dict]:
    """This process and its children (the qcluster's workers): pid, name, CPU %, RSS."""
    me = psutil.Process()
    rows = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                rows.append({"pid": proc.pid, "name": proc.name(),
                             "cpu_percent": proc.cpu_percent(interval=None),
                             "rss_mb": round(proc.memory_info().rss / 2**20, 1)})
        except psutil.Error:  # it ended while we looked
            continue
    return rows


def db_connections() -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def record() -> HostSample:
    percent, used_mb = memory()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    sample = HostSample.objects.create(
        host=HOST, at=timezone.now(), cpu_percent=psutil.cpu_percent(interval=None),
        memory_percent=round(percent, 1), memory_used_mb=round(used_mb, 1), load_1m=load,
        processes=processes(), db_connections=db_connections())
    HostSample.objects.filter(host=HOST, at__lt=sample.at - KEEP).delete()
    return sample


def record_when_due() -> None:
    global _next_at
    if time.monotonic() < _next_at:
        return
    _next_at = time.monotonic() + every_s()
    record()


def latest_hosts(stale_s: float = 120.0) -> list[HostSample]:
    """The newest sample of every host seen in the last `stale_s` seconds."""
    since = timezone.now() - timedelta(seconds=stale_s)
    latest: dict[str, HostSample] = {}
    for sample in HostSample.objects.filter(at__gte=since).order_by("at"):
        latest[sample.host] = sample
    return sorted(latest.values(), key=lambda s: s.host)
