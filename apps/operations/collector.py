"""/metrics: Braid's own series, read from the database at scrape time.

Counters and histograms are the sums every process flushed (counters.py);
gauges (queue depth, oldest ready, running and waiting executions, pool
occupancy, open alerts, oldest retained row) are a handful of indexed queries.
Scraping any web replica gives the same, whole-deployment figures.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from apps.engine.statuses import ACTIVE_EXECUTION
from apps.operations.counters import DURATION_BUCKETS
from apps.operations.models import Alert, MetricCounter

COUNTERS = {
    "braid_executions_started_total": "Executions started, by workflow, version and queue.",
    "braid_executions_finished_total": "Executions finished, by workflow, version and status.",
    "braid_node_runs_total": "Node runs finished, by node type and outcome.",
    "braid_node_retries_total": "Node retries scheduled, by node type.",
    "braid_lease_losses_total": "Node runs whose worker was lost (recovered by the reaper).",
}
BOUNDS = ["+Inf" if b == float("inf") else repr(b) for b in DURATION_BUCKETS]
HISTOGRAMS = {
    "braid_node_duration_seconds": "Duration of successful node runs.",
    "braid_queue_wait_seconds": "Time node runs waited to be claimed, by queue.",
}


def _parse(label_text: str) -> dict:
    return dict(part.split("=", 1) for part in label_text.split(",") if part)


class BraidCollector:
    def describe(self):
        return []  # no database query at registration time

    def collect(self):
        rows = list(MetricCounter.objects.values_list("name", "labels", "value"))
        yield from self._counters(rows)
        yield from self._histograms(rows)
        yield from self._gauges()

    def _counters(self, rows):
        for name, help_text in COUNTERS.items():
            series = [(_parse(labels), value) for n, labels, value in rows if n == name]
            keys = sorted({k for labels, _ in series for k in labels})
            family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=keys)
            for labels, value in series:
                family.add_metric([labels.get(k, "") for k in keys], value)
            yield family

    def _histograms(self, rows):
        for name, help_text in HISTOGRAMS.items():
            groups: dict[tuple, dict] = defaultdict(lambda: {"buckets": {}, "sum": 0.0})
            keys: set[str] = set()
            for n, label_text, value in rows:
                if not n.startswith(name + "_"):
                    continue
                labels = _parse(label_text)
                le = labels.pop("le", None)
                keys.update(labels)
                group = groups[tuple(sorted(labels.items()))]
                if n.endswith("_le") and le is not None:  # per bucket: summed up below
                    group["buckets"][le] = value
                elif n.endswith("_sum"):
                    group["sum"] = value
            keys_sorted = sorted(keys)
            family = HistogramMetricFamily(name, help_text, labels=keys_sorted)
            for label_items, group in groups.items():
                labels = dict(label_items)
                buckets, running = [], 0.0
                for le in BOUNDS:  # every bound, cumulative, as Prometheus reads them
                    running += group["buckets"].get(le, 0.0)
                    buckets.append((le, running))
                family.add_metric([labels.get(k, "") for k in keys_sorted], buckets,
                                  group["sum"])
            yield family

    def _gauges(self):
        from apps.engine.models import Execution, NodeRun

        now = timezone.now()
        depth = GaugeMetricFamily("braid_queue_ready_runs", "Node runs ready to claim.",
                                  labels=["queue"])
        oldest = GaugeMetricFamily("braid_queue_oldest_ready_seconds",
                                   "Age of the oldest node run ready to claim.", labels=["queue"])
        ready = (NodeRun.objects.filter(status="ready")
                 .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
                 .values("queue").annotate(n=Count("id"), first=Min("created_at")).order_by())
        for row in ready:
            depth.add_metric([row["queue"]], row["n"])
            oldest.add_metric([row["queue"]], (now - row["first"]).total_seconds())
        yield depth
        yield oldest

        active = GaugeMetricFamily("braid_executions_active", "Unfinished executions by status.",
                                   labels=["status"])
        for status in sorted(ACTIVE_EXECUTION):
            active.add_metric([status], Execution.objects.filter(status=status).count())
        yield active

        pools = GaugeMetricFamily("braid_pool_slots_in_use", "Resource pool slots held.",
                                  labels=["pool"])
        for row in (NodeRun.objects.filter(status="running").exclude(pool="")
                    .values("pool").annotate(n=Sum("pool_slots")).order_by()):
            pools.add_metric([row["pool"]], row["n"] or 0)
        yield pools

        deferred = GaugeMetricFamily("braid_rate_limited_runs",
                                     "Ready runs deferred by a rate limit now.")
        deferred.add_metric([], NodeRun.objects.filter(
            status="ready", waiting_for__startswith="rate:").count())
        yield deferred

        alerts = GaugeMetricFamily("braid_alerts_open", "Unresolved alerts by severity.",
                                   labels=["severity"])
        counts = dict(Alert.objects.exclude(state="resolved").values("severity")
                      .annotate(n=Count("id")).values_list("severity", "n").order_by())
        for severity in ("info", "warning", "critical"):
            alerts.add_metric([severity], counts.get(severity, 0))
        yield alerts

        longest = GaugeMetricFamily("braid_execution_longest_running_seconds",
                                    "How long the longest-running unfinished execution has run.")
        oldest_start = (Execution.objects.filter(status__in=["running", "waiting"],
                                                 started_at__isnull=False)
                        .order_by("started_at").values_list("started_at", flat=True).first())
        longest.add_metric([], (now - oldest_start).total_seconds() if oldest_start else 0.0)
        yield longest

        first = Execution.objects.order_by("created_at").values_list("created_at",
                                                                     flat=True).first()
        age = GaugeMetricFamily("braid_oldest_execution_age_seconds",
                                "Age of the oldest execution kept (retention).")
        age.add_metric([], (now - first).total_seconds() if first else 0.0)
        yield age


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        from prometheus_client import REGISTRY

        REGISTRY.register(BraidCollector())
        _registered = True
