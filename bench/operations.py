#!/usr/bin/env python
"""Operations benchmark: what Braid's self-monitoring costs, and how long a prune
holds the engine.

    .venv/bin/python bench/operations.py --db postgres
    .venv/bin/python bench/operations.py --db postgres --prune-runs 1000000

On the processes bench/run.py sets up (1 `braid worker`: 2 workers, ticker in
its main process), in one run:

1. W1 throughput (2,000 three-step executions at once), metered: the workers'
   CPU per node (the reference everything below is a share of).
2. Metrics: the after-commit counter (`counters.count_batch`) replayed in this
   process over the very events W1 committed: CPU µs per node, as a share of
   the workers' CPU per node.
3. Alert evaluator and resource monitor: CPU ms of one `evaluate()` and one
   `monitor.record()` (median of 20), at idle (before W1) and under W1 load (a
   thread evaluating while W1 runs), as a share of one core at their periods.
4. Prune (PostgreSQL): `--prune-runs` old node runs (5 per execution, with
   their events) made with SQL, then `braid prune`'s service deletes them in
   batches while W1 latency is measured beside it: the longest batch (the most
   the engine can wait on it) and W1 p50/p95 before and during.
5. Receiver down: a webhook route to a loopback socket that accepts and never
   answers (each send waits out its 5 s timeout), 200 alerts opened so the
   sender always has due notifications, then W1 throughput and latency again:
   the ratio to step 1's W1 (and a latency run just before) is what a dead
   receiver costs the engine.
Its own database (braid_bench_ops) and Redis db (12) by default.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench  # noqa: E402
from bench.procs import Processes  # noqa: E402

PASSES = 20


def cpu_ms(fn, passes: int = PASSES) -> float:
    """Median CPU ms of this thread for one call of `fn`."""
    samples = []
    for _ in range(passes):
        t0 = time.thread_time()
        fn()
        samples.append((time.thread_time() - t0) * 1000)
    return statistics.median(samples)


def self_monitoring_idle() -> dict:
    from apps.operations import evaluator, monitor

    evaluator.evaluate()
    monitor.record()
    return {"evaluate_cpu_ms": cpu_ms(evaluator.evaluate),
            "monitor_cpu_ms": cpu_ms(monitor.record)}


def evaluate_under_load(stop: threading.Event, out: list) -> None:
    from django.db import connection

    from apps.operations import evaluator

    try:
        while not stop.is_set():
            t0 = time.thread_time()
            evaluator.evaluate()
            out.append((time.thread_time() - t0) * 1000)
            stop.wait(0.2)
    finally:
        connection.close()


def counter_cost(tag: str) -> dict:
    """Replay W1's committed events through the metrics subscriber, in this process."""
    from apps.engine import hooks
    from apps.engine.models import Execution, ExecutionEvent
    from apps.operations import counters

    executions = {str(pk): hooks.ExecutionInfo(status=s, definition_id=d, version_id=v, queue=q)
                  for pk, s, d, v, q in Execution.objects.filter(client_id=tag).values_list(
                      "pk", "status", "definition_id", "version_id", "queue")}
    events = [hooks.CommittedEvent(execution_id=str(e), seq=s, type=t, payload=p, at=a)
              for e, s, t, p, a in ExecutionEvent.objects.filter(
                  execution_id__in=list(executions)).values_list(
                  "execution_id", "seq", "type", "payload", "created_at")]
    nodes = sum(1 for e in events if e.type in ("node.succeeded", "node.failed"))
    batches = [hooks.CommittedBatch(events=events[i:i + 64], executions=executions)
               for i in range(0, len(events), 64)]
    counters.count_batch(batches[0])  # warm the name caches, as a running worker has them
    t0 = time.thread_time()
    for batch in batches:
        counters.count_batch(batch)
    counted = time.thread_time() - t0
    t0 = time.thread_time()
    counters.flush()
    flushed = time.thread_time() - t0
    return {"events": len(events), "nodes": nodes,
            "count_us_per_node": counted * 1e6 / max(1, nodes),
            "flush_ms": flushed * 1000}


def make_old_runs(n_runs: int) -> int:
    """`n_runs` node runs of finished executions 60 days old (5 runs, 6 events each)."""
    from django.db import connection

    from apps.engine.models import Execution

    version = Execution.objects.values_list("version_id", "definition_id").first()
    executions = max(1, n_runs // 5)
    from django.db import transaction

    # One transaction: the ticker's own retention would delete the executions between
    # statements otherwise (they are past it, which is the point).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO engine_execution (id, definition_id, version_id, status, input, priority,
                queue, client_id, current_nodes, completed_nodes, total_nodes, last_seq,
                admitted, limit_key, route, paused, created_at, started_at, finished_at,
                updated_at)
            SELECT gen_random_uuid(), %s, %s, 'succeeded', '{}', 5, 'default', 'prune-bench',
                '[]', 5, 5, 6, true, '', '', false, now() - interval '60 days',
                now() - interval '60 days', now() - interval '60 days',
                now() - interval '60 days'
            FROM generate_series(1, %s)""", [version[1], version[0], executions])
        cursor.execute("""
            INSERT INTO engine_noderun (execution_id, node_id, attempt, status, priority, queue,
                queue_rank, pool, pool_slots, compensation, output, error_class, error_message,
                waiting_for, worker, lease_token, lease_losses, created_at, started_at,
                finished_at, duration_ms, finished_seq)
            SELECT e.id, 'n' || k, 1, 'succeeded', 5, 'default', 4, '', 1, false,
                '{"ok": true}', '', '', '', 'bench:1', 0, 0, e.created_at, e.created_at,
                e.created_at, 1.0, k
            FROM engine_execution e CROSS JOIN generate_series(1, 5) k
            WHERE e.client_id = 'prune-bench'""")
        cursor.execute("""
            INSERT INTO engine_executionevent (execution_id, seq, type, payload, created_at)
            SELECT e.id, k, 'node.succeeded', '{}', e.created_at
            FROM engine_execution e CROSS JOIN generate_series(1, 6) k
            WHERE e.client_id = 'prune-bench'""")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return executions * 5


def prune_beside_w1(lat_n: int) -> dict:
    from django.db import connection

    from apps.operations import retention

    before = bench.w1_latency(lat_n, "prune-before")
    report: dict = {}

    def prune():
        try:
            report.update(retention.prune())
        finally:
            connection.close()

    thread = threading.Thread(target=prune)
    t0 = time.perf_counter()
    thread.start()
    during = []
    n = 0
    while thread.is_alive():
        n += 1
        during.append(bench.w1_latency(min(lat_n, 50), f"prune-during-{n}"))
    thread.join()
    total_s = time.perf_counter() - t0
    samples = sorted(x for d in during for x in [d["latency_p50_ms"]])
    return {"prune": report, "prune_s": total_s,
            "w1_before_p50_ms": before["latency_p50_ms"],
            "w1_before_p95_ms": before["latency_p95_ms"],
            "w1_during_p50_ms": statistics.median(samples) if samples else None,
            "w1_during_p95_ms": max((d["latency_p95_ms"] for d in during), default=None),
            "w1_during_rounds": len(during)}


def receiver_down(thr_n: int, lat_n: int, procs) -> dict:
    """W1 with every alert notification going to a receiver that never answers."""
    import socket

    from django.utils import timezone

    from apps.operations import notify
    from apps.operations.models import Alert, Notification, NotificationRoute

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)  # the kernel completes handshakes; nobody ever reads or answers
    port = hole.getsockname()[1]
    try:
        before = bench.w1_latency(lat_n, "down-before")
        route = NotificationRoute.objects.create(
            name="bench-dead-receiver", kind="webhook", target=f"http://127.0.0.1:{port}/hook",
            secret="s", min_severity="info")
        now = timezone.now()
        for i in range(200):
            alert = Alert.objects.create(
                rule="execution_failed", severity="critical", dedupe_key=f"bench-down-{i}",
                title=f"bench alert {i}", details={}, subject_kind="execution",
                subject_id=f"bench-{i}", first_seen=now, last_seen=now)
            notify.queue_for(alert, "opened")
        time.sleep(6)  # the sender wakes every 5 s: it is now stuck on the first sends
        during = bench.w1_latency(lat_n, "down-during")
        w1 = bench.throughput("bench-three-steps", thr_n, "down-w1", 3,
                              lambda i: {"who": str(i)}, procs)
        attempted = Notification.objects.filter(route=route, attempts__gt=0).count()
        sent = Notification.objects.filter(route=route, state="sent").count()
    finally:
        hole.close()
    return {"w1_nodes_per_s": w1["nodes_per_s"],
            "w1_cpu_workers_ms_per_node": w1.get("cpu_workers_ms_per_node"),
            "latency_before_p50_ms": before["latency_p50_ms"],
            "latency_before_p95_ms": before["latency_p95_ms"],
            "latency_down_p50_ms": during["latency_p50_ms"],
            "latency_down_p95_ms": during["latency_p95_ms"],
            "notifications_attempted": attempted, "notifications_sent": sent}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg-db", default="braid_bench_ops")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--prune-runs", type=int, default=1_000_000,
                        help="old node runs to prune (PostgreSQL; 0 skips the prune part)")
    parser.add_argument("--skip-receiver-down", action="store_true",
                        help="skip W1 with a webhook receiver that never answers")
    args = parser.parse_args(argv)
    bench.PG_DB, bench.BENCH_REDIS_URL = args.pg_db, args.redis_url
    env = bench.bench_env(args.db)
    bench.fresh_database(args.db, env)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    procs = Processes(env, bench.SQLITE_DIR / "logs" / f"ops-{args.db}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    thr_n = bench.scaled(bench.SIZES["W1_throughput"], args.scale)
    lat_n = bench.scaled(bench.SIZES["W1_latency"], args.scale)
    report: dict = {"db": args.db}
    try:
        bench.publish_workloads({})
        procs.start_qcluster(bench.WORKERS, with_ticker=True)
        bench.log("warming up")
        bench.warm_up()
        bench.log("self-monitoring at idle")
        report["idle"] = self_monitoring_idle()
        bench.log(f"W1 throughput ({thr_n} executions), evaluating alerts beside it")
        stop, under = threading.Event(), []
        evaluating = threading.Thread(target=evaluate_under_load, args=(stop, under))
        evaluating.start()
        try:
            w1 = bench.throughput("bench-three-steps", thr_n, "ops-w1", 3,
                                  lambda i: {"who": str(i)}, procs)
        finally:
            stop.set()
            evaluating.join()
        report["w1"] = {k: w1[k] for k in ("nodes_per_s", "cpu_workers_ms_per_node")
                        if k in w1}
        report["evaluate_under_load_cpu_ms"] = statistics.median(under) if under else None
        report["evaluations_under_load"] = len(under)
        if not args.skip_receiver_down:
            bench.log("W1 with the webhook receiver down")
            report["receiver_down"] = receiver_down(thr_n, lat_n, procs)
        bench.log("metrics subscriber over W1's events")
        report["metrics"] = counter_cost("ops-w1")
        if args.prune_runs and args.db == "postgres":
            bench.log(f"making {args.prune_runs} old node runs")
            t0 = time.perf_counter()
            report["prune_rows_made"] = make_old_runs(args.prune_runs)
            report["prune_setup_s"] = time.perf_counter() - t0
            bench.log("pruning beside W1 latency")
            report["prune"] = prune_beside_w1(lat_n)
    finally:
        procs.stop()
    every_eval = settings.BRAID_ALERT_EVERY_S
    every_mon = settings.BRAID_MONITOR_EVERY_S
    per_node = report["w1"].get("cpu_workers_ms_per_node") or float("nan")
    metrics_pct = 100 * report["metrics"]["count_us_per_node"] / 1000 / per_node
    idle_pct = 100 * (report["idle"]["evaluate_cpu_ms"] / (every_eval * 1000)
                      + report["idle"]["monitor_cpu_ms"] / (every_mon * 1000))
    load_eval = report["evaluate_under_load_cpu_ms"] or report["idle"]["evaluate_cpu_ms"]
    load_pct = 100 * (load_eval / (every_eval * 1000)
                      + report["idle"]["monitor_cpu_ms"] / (every_mon * 1000))
    down = report.get("receiver_down")
    if down and report["w1"].get("nodes_per_s"):
        down["w1_throughput_ratio_to_receiver_up"] = (
            down["w1_nodes_per_s"] / report["w1"]["nodes_per_s"])
    report["summary"] = {
        "evaluator_and_monitor_pct_of_one_core_idle": idle_pct,
        "evaluator_and_monitor_pct_of_one_core_under_w1": load_pct,
        "metrics_pct_of_worker_cpu_per_node": metrics_pct,
    }
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
