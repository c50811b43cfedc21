"""The resource monitor's reads: what the API (`/api/v1/system/...`), `braid workers`
and the admin show. Staff only at the edges; each read is a few small queries."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.engine.models import WorkerHeartbeat
from apps.operations.monitor import latest_hosts

LIVE_S = 120.0  # a worker or host not seen for this long is not listed


def resource_usage() -> dict:
    """Each live host's latest sample: CPU, memory (of its cgroup limit), load, processes."""
    return {"hosts": [{
        "host": s.host, "at": s.at.isoformat(), "cpu_percent": s.cpu_percent,
        "memory_percent": s.memory_percent, "memory_used_mb": s.memory_used_mb,
        "load_1m": s.load_1m, "processes": s.processes, "db_connections": s.db_connections,
    } for s in latest_hosts(LIVE_S)],
        "thresholds": {name: getattr(settings, "BRAID_ALERT_RULES", {}).get(name, {})
                       .get("threshold") for name in ("host_cpu", "host_memory")}}


def executor_stats() -> dict:
    """Each live worker process: its threads, pool processes and event-loop slots (busy of
    size), runs in flight and abandoned threads, at its last heartbeat."""
    since = timezone.now() - timedelta(seconds=LIVE_S)
    workers = []
    totals: dict[str, dict[str, int]] = {}
    for beat in WorkerHeartbeat.objects.filter(role="worker", seen_at__gte=since).order_by(
            "worker"):
        stats = beat.stats or {}
        workers.append({"worker": beat.worker, "seen_at": beat.seen_at.isoformat(), **stats,
                        "abandoned_threads": beat.abandoned})
        for kind in ("thread", "process", "async"):
            if isinstance(stats.get(kind), dict):
                total = totals.setdefault(kind, {"busy": 0, "size": 0})
                total["busy"] += stats[kind].get("busy", 0)
                total["size"] += stats[kind].get("size", 0)
    return {"workers": workers, "totals": totals,
            "tickers": list(WorkerHeartbeat.objects.filter(role="ticker", seen_at__gte=since)
                            .values_list("worker", flat=True))}


def db_pool_stats() -> dict:
    """The database's connections: in use by state against the maximum (PostgreSQL), and
    how this deployment holds them."""
    db = settings.DATABASES["default"]
    info = {"vendor": connection.vendor, "conn_max_age": db.get("CONN_MAX_AGE", 0),
            "health_checks": db.get("CONN_HEALTH_CHECKS", False)}
    if connection.vendor != "postgresql":
        info["note"] = "SQLite: one file, no server connections to count"
        return info
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
                       "WHERE datname = current_database() GROUP BY 1")
        by_state = dict(cursor.fetchall())
        cursor.execute("SELECT current_setting('max_connections')::int, "
                       "(SELECT count(*) FROM pg_stat_activity)")
        maximum, total = cursor.fetchone()
    info.update(by_state=by_state, this_database=sum(by_state.values()), all_databases=total,
                max_connections=maximum, used_fraction=round(total / maximum, 4))
    return info
