#!/usr/bin/env python
"""Braid benchmark: latency, throughput and parked waits on real qcluster processes.

    .venv/bin/python bench/run.py --db postgres        # PostgreSQL + Redis
    .venv/bin/python bench/run.py --db sqlite          # the embedded default
    .venv/bin/python bench/run.py --json --only W1 --scale 0.1 --runs 1

W1  three sequential trivial nodes (examples/three_steps.json)
    - latency: start → result, one execution at a time (p50, p95)
    - throughput: 2,000 executions submitted at once (start_many)
W2  1 → 10 → 1 fan-out / fan-in, 300 executions submitted at once
W3  1,000 executions that each wait 1 s in a `delay` node: time until all
    are done, and the peak PSS of every process the bench started
W4  mixed load: realtime executions one at a time while 5,000 background ones
    drain; their p50/p95 against the same stream on an idle system
W5  one `http` GET to a loopback server: 1,000 executions against a 1 ms
    server, and 500 at once against a 100 ms server

Calibration: before the workloads (and again after them) the bench measures
two reference points on this machine, reference (a), a plain psycopg SKIP
LOCKED claim + update + insert loop on 2 processes (transactions/s), and (b),
a fixed pure-Python CPU loop (operations/s); every throughput is printed raw
and as a ratio to (a). Each throughput workload also reports the CPU time per
node of the workers, the PostgreSQL backends and the client, read from /proc,
and the workers' commits and SQL statements per node.

Each figure is the median of --runs runs (default 3), with min and max. The
bench makes its own database and Redis db, starts 1 qcluster (2 workers) and
1 ticker, and stops them at the end. Targets are printed for orientation only.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import reference  # noqa: E402
from bench.cost import CostMeter  # noqa: E402
from bench.procs import MemorySampler, Processes  # noqa: E402
from bench.profile import Profiler  # noqa: E402

PG_HOST = "postgres://postgres@127.0.0.1:5432/"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SQLITE_DIR = ROOT / "var" / "bench"
PROBE_DIR = SQLITE_DIR / "probe"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SIZES = {"W1_latency": 200, "W1_throughput": 2000, "W2": 300, "W3": 1000,
         "W4_backlog": 5000, "W4_idle": 50, "W5_fast": 1000, "W5_slow": 500}
# Set by main(): the bench's database names (--pg-db, --redis-url).
PG_DB = "braid_bench"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/6"
PROFILE_DIR: Path | None = None  # --profile: py-spy the workers in run 1 of each throughput
PROFILES: dict[str, list] = {}
MiB = 1024 * 1024

# (workload, metric) → {db: (op, value[, "a"])}: orientation only, never asserted.
# A third element "a" compares the figure as a ratio to reference (a).
TARGETS = {
    ("W1", "latency_p50_ms"): {"postgres": ("<=", 15), "sqlite": ("<=", 60)},
    ("W1", "nodes_per_s"): {"postgres": (">=", 2.0, "a"), "sqlite": (">=", 1.5, "a")},
    ("W1", "cpu_workers_ms_per_node"): {"postgres": ("<=", 0.7)},
    ("W1", "client_over_db_p50_ms"): {"postgres": ("<=", 3)},
    ("W1", "budget_guard_pct"): {"postgres": ("<=", 10), "sqlite": ("<=", 10)},
    ("W2", "nodes_per_s"): {"postgres": (">=", 2.5, "a"), "sqlite": (">=", 1.5, "a")},
    ("W3", "total_s"): {"postgres": ("<=", 3)},
    ("W3", "peak_pss_mib"): {"postgres": ("<=", 250)},
    ("W4", "p95_ratio"): {"postgres": ("<=", 1.5), "sqlite": ("<=", 2)},
    ("W5", "fast_executions_per_s"): {"postgres": (">=", 300)},
    ("W5", "slow_total_s"): {"postgres": ("<=", 3)},
}
# Figures printed with their ratio to reference (a).
THROUGHPUTS = {"executions_per_s", "nodes_per_s", "backlog_nodes_per_s",
               "fast_executions_per_s", "slow_executions_per_s"}
COST_ROWS = [("cpu_workers_ms_per_node", "CPU workers (ms/node)"),
             ("cpu_postgres_ms_per_node", "CPU PostgreSQL backends (ms/node)"),
             ("cpu_client_ms_per_node", "CPU bench client (ms/node)"),
             ("commits_per_node", "worker commits/node"),
             ("statements_per_node", "worker SQL statements/node")]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- environment -------------------------------------------------------------------

def bench_env(db: str) -> dict:
    """Environment for the bench process itself and for every child it starts."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BRAID_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "DEBUG": "0",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "BRAID_WORKERS": str(WORKERS),
        # W5's loopback server is private: allow-listed, as an operator would.
        "BRAID_HTTP_ALLOW": "127.0.0.1/32",
        # bench/probe/sitecustomize.py counts the children's statements and commits.
        "PYTHONPATH": f"{ROOT / 'bench' / 'probe'}{os.pathsep}{ROOT}",
        "BENCH_PROBE_DIR": str(PROBE_DIR),
        "PYTHONUNBUFFERED": "1",
    })
    # BENCH_BRAID_X=v sets the engine's BRAID_X=v for a trial (the header shows it).
    env.update({k[len("BENCH_"):]: v for k, v in os.environ.items()
                if k.startswith("BENCH_BRAID_")})
    if db == "postgres":
        env.update({"DATABASE_URL": PG_HOST + PG_DB, "REDIS_URL": BENCH_REDIS_URL})
    else:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        env["BRAID_SQLITE_PATH"] = str(SQLITE_DIR / "bench.sqlite3")
    return env


def fresh_database(db: str, env: dict) -> None:
    import psycopg

    PROBE_DIR.mkdir(parents=True, exist_ok=True)
    for path in PROBE_DIR.glob("*.json"):
        path.unlink()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        if db == "postgres":
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (PG_DB,)).fetchone()
        if not exists:  # on SQLite too: reference (a) is always measured on PostgreSQL
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
    if db == "postgres":
        import redis

        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
    else:
        path = Path(env["BRAID_SQLITE_PATH"])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


# --- workloads --------------------------------------------------------------------

def fan_out_fan_in(width: int = 10) -> dict:
    branches = [{"id": f"b{i}", "type": "transform",
                 "config": {"output": {"v": f"input.n * 10 + {i}"}}} for i in range(width)]
    total = " + ".join(f"nodes.b{i}.output.v" for i in range(width))
    return {
        "name": "Fan out, fan in (W2)",
        "nodes": [{"id": "start", "type": "noop", "config": {"output": {"go": True}}},
                  *branches,
                  {"id": "join", "type": "transform", "config": {"output": {"sum": total}}}],
        "edges": [{"from": "start", "to": b["id"]} for b in branches]
        + [{"from": b["id"], "to": "join"} for b in branches],
        "output": {"sum": "nodes.join.output.sum"},
    }


def one_second_wait() -> dict:
    return {"name": "One-second wait (W3)",
            "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 1}}],
            "output": {"waited": "nodes.wait.output.waited_s"}}


def one_http_get(url: str) -> dict:
    return {"name": "One HTTP GET (W5)",
            "nodes": [{"id": "get", "type": "http", "config": {"url": url, "timeout_s": 30}}],
            "output": {"status": "nodes.get.output.status"}}


def publish_workloads(http_ports: dict[str, int]) -> None:
    from apps.workflows.services import publish_version

    three = json.loads((ROOT / "examples" / "three_steps.json").read_text())
    publish_version("bench-three-steps", three)
    publish_version("bench-fan", fan_out_fan_in())
    publish_version("bench-wait", one_second_wait())
    for name, port in http_ports.items():
        publish_version(f"bench-http-{name}", one_http_get(f"http://127.0.0.1:{port}/"))


def start_http_servers(procs: Processes) -> dict[str, int]:
    """W5's loopback servers (1 ms and 100 ms), as children of the bench."""
    ports = {}
    for name, delay_ms in (("fast", 1), ("slow", 100)):
        child = procs.spawn_piped(f"http-{name}", [sys.executable, "bench/httpserver.py",
                                                   str(delay_ms)])
        ports[name] = int(child.popen.stdout.readline())
    return ports


def server_stats(port: int) -> dict:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()


def metered(procs: Processes) -> CostMeter:
    from django.db import connection

    pg = connection.vendor == "postgresql"
    return CostMeter(procs, PG_HOST + PG_DB if pg else None, PROBE_DIR)


def wait_all(tag: str, count: int, timeout: float, poll: float = 0.01) -> float | None:
    """Poll until `count` executions tagged `tag` are finished; the monotonic time seen."""
    from apps.engine.models import TERMINAL_EXECUTION, Execution

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = Execution.objects.filter(client_id=tag,
                                        status__in=TERMINAL_EXECUTION).count()
        if done >= count:
            return time.monotonic()
        time.sleep(poll)
    return None


def outcome(tag: str) -> dict:
    from django.db.models import Count

    from apps.engine.models import Execution, NodeRun

    statuses = dict(Execution.objects.filter(client_id=tag).values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))
    nodes = NodeRun.objects.filter(execution__client_id=tag, status="succeeded").count()
    return {"statuses": statuses, "nodes": nodes}


def submit(workflow: str, n: int, tag: str, make_input, queue: str = "default") -> float:
    """start_many in one call; returns the seconds the submit itself took."""
    from apps.engine.start import StartRequest, start_many

    requests = [StartRequest(workflow=workflow, input=make_input(i), client_id=tag,
                             queue=queue) for i in range(n)]
    t0 = time.perf_counter()
    start_many(requests)
    return time.perf_counter() - t0


def w1_latency(n: int, tag: str, queue: str = "default") -> dict:
    from apps.engine import clock, notify
    from apps.engine.models import Execution
    from apps.engine.start import StartRequest, start_execution, wait_for

    samples, bad = [], 0
    asked, returned, woke = {}, {}, {}
    # Where the client's time beyond the database's goes (PostgreSQL: the listener
    # thread calls this on each finished execution's notification; SQLite: no push).
    note_wake = lambda execution_id: woke.setdefault(execution_id, clock.now())  # noqa: E731
    notify.add_callback(note_wake)
    try:
        for i in range(n):
            at, t0 = clock.now(), time.perf_counter()
            execution = start_execution(StartRequest(workflow="bench-three-steps", queue=queue,
                                                     input={"who": f"w{i}"}, client_id=tag))
            execution = wait_for(execution.pk, 30)
            samples.append((time.perf_counter() - t0) * 1000)
            asked[str(execution.pk)], returned[str(execution.pk)] = at, clock.now()
            bad += execution.status != "succeeded"
    finally:
        notify.remove_callback(note_wake)
    samples.sort()
    # The same executions seen from the database: created → finished (no client polling).
    rows = list(Execution.objects.filter(client_id=tag, finished_at__isnull=False)
                .values_list("pk", "created_at", "finished_at"))
    server = sorted((f - c).total_seconds() * 1000 for _, c, f in rows)

    def p50_ms(pairs) -> float | None:
        values = sorted((b - a).total_seconds() * 1000 for a, b in pairs)
        return percentile(values, 50) if values else None

    figures = {"latency_p50_ms": percentile(samples, 50),
               "latency_p95_ms": percentile(samples, 95),
               "latency_max_ms": samples[-1], "server_p50_ms": percentile(server, 50),
               "server_p95_ms": percentile(server, 95), "failed": bad,
               "gap_start_ms": p50_ms((asked[str(pk)], c) for pk, c, _ in rows
                                      if str(pk) in asked)}
    if woke:
        # (W4 calls this again with the same tag: only this call's executions count.)
        figures["gap_finish_ms"] = p50_ms((f, woke[str(pk)]) for pk, _, f in rows
                                          if str(pk) in woke and str(pk) in asked)
        figures["gap_return_ms"] = p50_ms((woke[str(pk)], returned[str(pk)])
                                          for pk, _, _ in rows
                                          if str(pk) in woke and str(pk) in asked)
    return {k: v for k, v in figures.items() if v is not None}


def throughput(workflow: str, n: int, tag: str, nodes_each: int, make_input,
               procs: Processes, timeout: float = 600) -> dict:
    profiler = (Profiler(procs, PROFILE_DIR, tag) if PROFILE_DIR and tag.endswith("-1")
                else contextlib.nullcontext())
    with metered(procs) as meter, profiler:
        t0 = time.monotonic()
        submit_s = submit(workflow, n, tag, make_input)
        t_end = wait_all(tag, n, timeout)
    if isinstance(profiler, Profiler):
        PROFILES[tag] = profiler.top_self(10)
    if t_end is None:
        raise RuntimeError(f"{tag}: not all {n} executions finished within {timeout}s: "
                           f"{outcome(tag)}")
    total = t_end - t0
    result = outcome(tag)
    ok = result["statuses"].get("succeeded", 0)
    return {"total_s": total, "submit_s": submit_s, "executions_per_s": n / total,
            "nodes_per_s": result["nodes"] / total, "nodes": result["nodes"],
            "expected_nodes": n * nodes_each, "failed": n - ok,
            **meter.per_node(result["nodes"])}


def w1(run: int, scale: float, procs: Processes) -> dict:
    lat_n = scaled(SIZES["W1_latency"], scale)
    thr_n = scaled(SIZES["W1_throughput"], scale)
    log(f"W1 run {run}: latency, {lat_n} executions one at a time")
    figures = w1_latency(lat_n, f"w1-lat-{run}")
    log(f"W1 run {run}: throughput, {thr_n} executions at once")
    thr = throughput("bench-three-steps", thr_n, f"w1-thr-{run}", 3, lambda i: {"who": str(i)},
                     procs)
    figures.update({k: v for k, v in thr.items() if k != "failed"})
    figures["failed"] += thr["failed"]
    figures["client_over_db_p50_ms"] = figures["latency_p50_ms"] - figures["server_p50_ms"]
    guard = budget_guard_us_per_node()
    figures["budget_guard_us_per_node"] = guard
    if figures.get("cpu_workers_ms_per_node"):
        figures["budget_guard_pct"] = 100 * guard / (figures["cpu_workers_ms_per_node"] * 1000)
    return figures


def budget_guard_us_per_node(passes: int = 20_000) -> float:
    """CPU µs per W1 node that the expression budget's guard adds in the worker.

    W1's expressions are all proven cheap, so they run in-process; what the budget
    adds is `evaluate`'s checks (bounded, cheap, compiled: cached lookups) over
    the library's own evaluation (`evaluate_here` with the compiled program, on
    the scope narrowed to the nodes each source reads, as `evaluate` hands it).
    Measured in this process, on W1's own sources and scope; one execution
    evaluates each once, over its three nodes.
    """
    from apps.nodes import expressions

    spec = json.loads((ROOT / "examples" / "three_steps.json").read_text())
    sources = [src for node in spec["nodes"] if node["type"] == "transform"
               for src in node["config"]["output"].values()] + list(spec["output"].values())
    scope = {"input": {"who": "w1"}, "nodes": {
        n: {"status": "succeeded", "output": {"step": 1, "who": "w1"}} for n in "abc"}}
    programs = [expressions.compile_expression(src) for src in sources]
    scopes = [expressions.narrowed(src, scope) for src in sources]

    def per_execution(fn) -> float:
        t0 = time.thread_time()
        for _ in range(passes):
            fn()
        return (time.thread_time() - t0) / passes

    guarded = per_execution(lambda: [expressions.evaluate(src, scope) for src in sources])
    bare = per_execution(lambda: [expressions.evaluate_here(src, narrow, program)
                                  for src, program, narrow
                                  in zip(sources, programs, scopes, strict=True)])
    return max(0.0, guarded - bare) * 1e6 / len(spec["nodes"])


def w2(run: int, scale: float, procs: Processes) -> dict:
    n = scaled(SIZES["W2"], scale)
    log(f"W2 run {run}: {n} fan-out/fan-in executions at once")
    return throughput("bench-fan", n, f"w2-{run}", 12, lambda i: {"n": i}, procs)


def w3(run: int, scale: float, procs: Processes) -> dict:
    n = scaled(SIZES["W3"], scale)
    log(f"W3 run {run}: {n} executions waiting 1 s each")
    idle = procs.pss_bytes()
    with MemorySampler(procs) as sampler:
        figures = throughput("bench-wait", n, f"w3-{run}", 1, lambda i: {}, procs)
    figures.update({"peak_pss_mib": sampler.peak / MiB, "idle_pss_mib": idle / MiB,
                    "pss_samples": sampler.samples,
                    "processes": len(procs.all_processes())})
    return figures


def w4(run: int, scale: float) -> dict:
    """Mixed load: realtime latency while a background backlog drains, vs idle."""
    from apps.engine.models import TERMINAL_EXECUTION, Execution

    idle_n, backlog = scaled(SIZES["W4_idle"], scale), scaled(SIZES["W4_backlog"], scale)
    log(f"W4 run {run}: {idle_n} realtime executions on an idle system")
    idle = w1_latency(idle_n, f"w4-idle-{run}", queue="realtime")
    log(f"W4 run {run}: {backlog} background executions, realtime ones streamed meanwhile")
    tag = f"w4-bg-{run}"
    t0 = time.monotonic()
    submit("bench-three-steps", backlog, tag, lambda i: {"who": str(i)}, queue="background")
    busy = []
    while True:
        left = backlog - Execution.objects.filter(client_id=tag,
                                                  status__in=TERMINAL_EXECUTION).count()
        if left <= 0 or time.monotonic() - t0 > 600:
            break
        sample = w1_latency(1, f"w4-rt-{run}", queue="realtime")
        busy.append(sample["latency_p50_ms"])
    drained = time.monotonic() - t0
    busy.sort()
    mixed_p95 = percentile(busy, 95)
    return {"idle_p50_ms": idle["latency_p50_ms"], "idle_p95_ms": idle["latency_p95_ms"],
            "mixed_p50_ms": percentile(busy, 50), "mixed_p95_ms": mixed_p95,
            "p95_ratio": mixed_p95 / idle["latency_p95_ms"], "realtime_samples": len(busy),
            "backlog_drain_s": drained, "backlog_nodes_per_s": backlog * 3 / drained,
            "failed": idle["failed"]}


def w5(run: int, scale: float, procs: Processes, ports: dict[str, int]) -> dict:
    """HTTP nodes: a 1 ms loopback server, then 500 at once against a 100 ms one."""
    fast_n, slow_n = scaled(SIZES["W5_fast"], scale), scaled(SIZES["W5_slow"], scale)
    log(f"W5 run {run}: {fast_n} http executions, 1 ms server")
    fast = throughput("bench-http-fast", fast_n, f"w5-fast-{run}", 1, lambda i: {}, procs)
    log(f"W5 run {run}: {slow_n} http executions at once, 100 ms server")
    server_stats(ports["slow"])  # resets the peak
    slow = throughput("bench-http-slow", slow_n, f"w5-slow-{run}", 1, lambda i: {}, procs)
    peak = server_stats(ports["slow"])["peak_in_flight"]
    figures = {f"fast_{k}": v for k, v in fast.items()}
    figures.update({f"slow_{k}": v for k, v in slow.items()})
    figures["slow_peak_in_flight"] = peak
    figures["failed"] = fast["failed"] + slow["failed"]
    return figures


def analyze() -> None:
    """Fresh planner statistics before each run (untimed).

    The tables grow from empty to ~10^5 rows during a bench; without statistics
    (autovacuum off, or not yet run on a young database) PostgreSQL picks
    sequential scans for the engine's `execution_id IN (…)` reads.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")


def scaled(size: int, scale: float) -> int:
    return max(1, round(size * scale))


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def warm_up() -> None:
    """Load graphs, open connections and fork-time state in every worker before timing."""
    from apps.engine.start import StartRequest, start_execution, wait_for

    for workflow, data in (("bench-three-steps", {"who": "warm"}), ("bench-fan", {"n": 1})):
        for _ in range(10):
            e = start_execution(StartRequest(workflow=workflow, input=data, client_id="warm"))
            wait_for(e.pk, 30)
    submit("bench-three-steps", 100, "warm-burst", lambda i: {"who": "warm"})
    if wait_all("warm-burst", 100, 120) is None:
        raise RuntimeError(f"warm-up did not finish: {outcome('warm-burst')}")


# --- facts and report -----------------------------------------------------------

def machine_facts(db: str, processes: str) -> dict:
    import django
    import psutil
    from django.conf import settings
    from django.db import connection

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SHOW server_version")
            db_version = "PostgreSQL " + cur.fetchone()[0]
            cur.execute("SHOW synchronous_commit")
            db_version += f" (synchronous_commit={cur.fetchone()[0]}"
            cur.execute("SHOW autovacuum")
            autovacuum = cur.fetchone()[0]
            db_version += f", autovacuum={autovacuum}"
            if autovacuum != "on":
                db_version += "; the bench runs ANALYZE before every run"
            db_version += ")"
        else:
            cur.execute("select sqlite_version()")
            db_version = "SQLite " + cur.fetchone()[0] + " (WAL, synchronous=NORMAL)"
    broker = "ORM (same SQLite file)"
    if getattr(settings, "REDIS_URL", ""):
        import redis

        info = redis.Redis.from_url(settings.REDIS_URL).info("server")
        broker = f"Redis {info.get('redis_version')} ({settings.REDIS_URL})"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    except OSError:
        commit = "?"
    from importlib.metadata import version

    cfg = settings.BRAID
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model,
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "django_q2": version("django-q2"),
        "db": db,
        "database": db_version,
        "broker": broker,
        "commit": commit,
        "processes": (f"1 qcluster x {WORKERS} workers + 1 ticker (manage.py qcluster, "
                      f"manage.py braid ticker)" if processes == "split" else
                      f"1 `manage.py braid worker`: cluster x {WORKERS} workers, ticker in "
                      f"its main process"),
        "braid": {k: cfg[k] for k in ("WORKERS", "CLAIM_BATCH", "MAX_INFLIGHT", "THREADS",
                                      "LEASE_S", "TICK_S", "REAP_EVERY_S")},
        "q_poll_s": settings.Q_CLUSTER.get("poll"),
    }


def summarize(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if all(isinstance(r.get(k), int | float) for r in runs)]
    return {k: {"median": statistics.median(r[k] for r in runs),
                "min": min(r[k] for r in runs), "max": max(r[k] for r in runs),
                "runs": [r[k] for r in runs]} for k in keys}


def target_text(workload: str, metric: str, db: str) -> str:
    target = TARGETS.get((workload, metric), {}).get(db)
    if not target:
        return ""
    return f"{'≤' if target[0] == '<=' else '≥'} {target[1]:g}" + (
        "×(a)" if target[2:] == ("a",) else "")


def meets(workload: str, metric: str, db: str, value: float, ref_a: float) -> str:
    target = TARGETS.get((workload, metric), {}).get(db)
    if not target:
        return ""
    if target[2:] == ("a",):
        value = value / ref_a if ref_a else float("nan")
    ok = value <= target[1] if target[0] == "<=" else value >= target[1]
    return "ok" if ok else "MISS"


def ref_a(report: dict) -> float:
    refs = report["references"]
    values = [r["a_tx_per_s"] for r in refs.values() if r.get("a_tx_per_s")]
    return statistics.mean(values) if values else float("nan")


def ref_b(report: dict) -> float:
    values = [r["b_ops_per_s"] for r in report["references"].values() if r.get("b_ops_per_s")]
    return statistics.mean(values) if values else float("nan")


ROWS = {
    "W1": [("latency_p50_ms", "latency p50 (ms)"), ("latency_p95_ms", "latency p95 (ms)"),
           ("latency_max_ms", "latency max (ms)"),
           ("server_p50_ms", "in-DB p50, created→finished (ms)"),
           ("server_p95_ms", "in-DB p95, created→finished (ms)"), ("submit_s", "2,000 at once: submit (s)"),
           ("total_s", "2,000 at once: submit → all done (s)"),
           ("executions_per_s", "executions/s"), ("nodes_per_s", "nodes/s"),
           *COST_ROWS,
           ("client_over_db_p50_ms", "latency p50 client − in-DB (ms)"),
           ("gap_start_ms", "  … call → created_at, p50 (ms)"),
           ("gap_finish_ms", "  … finished_at → notified, p50 (ms)"),
           ("gap_return_ms", "  … notified → wait returns, p50 (ms)"),
           ("budget_guard_us_per_node", "expression budget guard (µs/node)"),
           ("budget_guard_pct", "  … as % of worker CPU/node"),
           ("failed", "failed executions")],
    "W2": [("submit_s", "submit (s)"), ("total_s", "submit → all done (s)"),
           ("executions_per_s", "executions/s"), ("nodes_per_s", "nodes/s"),
           *COST_ROWS, ("failed", "failed executions")],
    "W3": [("submit_s", "submit (s)"), ("total_s", "submit → all done (s)"),
           ("executions_per_s", "executions/s"), ("peak_pss_mib", "peak PSS (MiB)"),
           ("idle_pss_mib", "idle PSS before (MiB)"), ("processes", "processes measured"),
           *COST_ROWS, ("failed", "failed executions")],
    "W4": [("idle_p50_ms", "realtime p50, idle (ms)"), ("idle_p95_ms", "realtime p95, idle (ms)"),
           ("mixed_p50_ms", "realtime p50, backlog draining (ms)"),
           ("mixed_p95_ms", "realtime p95, backlog draining (ms)"),
           ("p95_ratio", "p95 backlog / p95 idle"), ("realtime_samples", "realtime samples"),
           ("backlog_drain_s", "5,000 background: drained in (s)"),
           ("backlog_nodes_per_s", "background nodes/s"), ("failed", "failed executions")],
    "W5": [("fast_total_s", "1 ms server: submit → all done (s)"),
           ("fast_executions_per_s", "1 ms server: executions/s"),
           *[("fast_" + k, "1 ms server: " + label) for k, label in COST_ROWS],
           ("slow_total_s", "100 ms server, all at once: done in (s)"),
           ("slow_executions_per_s", "100 ms server: executions/s"),
           ("slow_peak_in_flight", "100 ms server: peak requests in flight"),
           *[("slow_" + k, "100 ms server: " + label) for k, label in COST_ROWS],
           ("failed", "failed executions")],
}
TITLES = {
    "W1": "W1 three sequential trivial nodes (examples/three_steps.json)",
    "W2": "W2 fan-out/fan-in 1 → 10 → 1",
    "W3": "W3 executions waiting 1 s in a delay node",
    "W4": "W4 mixed load: a realtime stream while a background backlog drains",
    "W5": "W5 one http GET to a loopback server",
}


def render_text(report: dict) -> str:
    m = report["machine"]
    out = [
        "Braid benchmark",
        f"  date      {m['date']}   host {m['host']}",
        f"  machine   {m['cores_logical']} logical / {m['cores_physical']} physical cores, "
        f"{m['memory_gib']} GiB, {m['cpu']}",
        f"  load avg  {m['load_avg']} (at start)",
        f"  software  Python {m['python']}, Django {m['django']}, django-q2 {m['django_q2']}, "
        f"{m['os']}",
        f"  database  {m['database']}",
        f"  broker    {m['broker']}",
        f"  processes {m['processes']}; BRAID {m['braid']}; q2 poll {m['q_poll_s']} s",
        f"  commit    {m['commit']}",
        f"  runs      {report['runs']} per workload (median [min … max]), scale {report['scale']}"
        f", sizes {report['sizes']}",
        "",
    ]
    db = report["machine"]["db"]
    a, b = ref_a(report), ref_b(report)
    out.append("Reference points (same run; (a) on PostgreSQL whatever --db)")
    for when, ref in report["references"].items():
        out.append(f"  {when:<7} (a) psycopg SKIP LOCKED claim+update+insert, 2 processes: "
                   f"{ref['a_tx_per_s']:.0f} tx/s   (b) pure-Python loop: "
                   f"{ref['b_ops_per_s']:.0f} ops/s")
    out.append(f"  ratios below use (a) = {a:.0f} tx/s (mean of the two)")
    out.append("")
    for workload, summary in report["workloads"].items():
        out.append(TITLES[workload] + f"  ({report['sizes_by_workload'][workload]})")
        out.append(f"  {'figure':<44}{'median':>10}  {'[min … max]':<22}{'×(a)':>7}  "
                   f"{'target':<10}")
        for key, label in ROWS[workload]:
            if key not in summary:
                continue
            s = summary[key]
            fmt = (lambda v: f"{v:.0f}") if key.endswith(("failed", "processes",
                                                          "realtime_samples",
                                                          "peak_in_flight")) else (
                lambda v: f"{v:.1f}" if v >= 10 else f"{v:.3g}")
            span = f"[{fmt(s['min'])} … {fmt(s['max'])}]"
            ratio = f"{s['median'] / a:.2f}" if key in THROUGHPUTS and a == a else ""
            target = target_text(workload, key, db)
            verdict = meets(workload, key, db, s["median"], a)
            out.append(f"  {label:<44}{fmt(s['median']):>10}  {span:<22}{ratio:>7}  "
                       f"{(target + ' ' + verdict).strip():<10}")
            if key.endswith("cpu_workers_ms_per_node") and b == b:
                # The engine is CPU-bound: its CPU per node in (b)'s operations moves
                # less between machines and hours than any ratio to (a).
                out.append(f"  {'  … in (b) operations (CPU s × (b) ops/s)':<44}"
                           f"{s['median'] * b / 1000:>10.2f}")
        out.append("")
    for tag, frames in report.get("profiles", {}).items():
        out.append(f"py-spy, workers during {tag}: top {len(frames)} frames by self time")
        for frame, share in frames:
            out.append(f"  {share * 100:5.1f} %  {frame}")
        out.append("")
    out.append("Targets are for orientation (issue 10), never asserted. CPU per node is "
               "read from /proc for the bench's worker process trees (cluster + ticker), "
               "the PostgreSQL backends of the bench database and the bench's main "
               "thread; commits and statements are counted in the worker processes.")
    return "\n".join(out)


# --- main -------------------------------------------------------------------

def measure_references(label: str) -> dict:
    log(f"reference points ({label}): (a) psycopg SKIP LOCKED loop, (b) Python CPU loop")
    refs = {"a_tx_per_s": reference.claim_loop(PG_HOST + PG_DB),
            "b_ops_per_s": reference.cpu_loop()}
    log(f"reference (a) {refs['a_tx_per_s']:.0f} tx/s, (b) {refs['b_ops_per_s']:.0f} ops/s")
    return refs


def main(argv=None) -> int:
    global PG_DB, BENCH_REDIS_URL, PROFILE_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="sqlite",
                        help="postgres: PostgreSQL + Redis; sqlite: the embedded default")
    parser.add_argument("--pg-db", default=os.environ.get("BENCH_PG_DB", PG_DB),
                        help="PostgreSQL database the bench drops and re-creates (and where "
                             "reference (a) runs, also with --db sqlite); default "
                             "$BENCH_PG_DB or braid_bench")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              BENCH_REDIS_URL),
                        help="Redis db the bench flushes; default $BENCH_REDIS_URL or db 6")
    parser.add_argument("--processes", choices=["split", "worker"], default="worker",
                        help="split: `qcluster` + `braid ticker`; worker: one `braid worker` "
                             "(cluster with the ticker in its main process; the default)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the worker processes during run 1 of each throughput "
                             "workload; prints the top 10 frames by self time "
                             "(raw stacks in var/bench/profile/)")
    parser.add_argument("--runs", type=int, default=3, help="runs per workload (default 3)")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5",
                        help="comma-separated: W1,W2,W3,W4,W5")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the workload sizes (e.g. 0.1 for a smoke run)")
    args = parser.parse_args(argv)
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    if not set(only) <= set(TITLES) or args.runs < 1 or args.scale <= 0:
        parser.error("--only takes W1,W2,W3,W4,W5; --runs ≥ 1; --scale > 0")
    PG_DB, BENCH_REDIS_URL = args.pg_db, args.redis_url
    if args.profile:
        PROFILE_DIR = SQLITE_DIR / "profile" / args.db
        shutil.rmtree(PROFILE_DIR, ignore_errors=True)

    env = bench_env(args.db)
    fresh_database(args.db, env)
    references = {"before": measure_references("before the workloads")}
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    log(f"migrating a fresh {args.db} database")
    call_command("migrate", verbosity=0, interactive=False)

    procs = Processes(env, SQLITE_DIR / "logs" / args.db)
    servers = Processes(env, SQLITE_DIR / "logs" / args.db)
    # A SIGTERM to the bench still stops every process it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        ports = start_http_servers(servers) if "W5" in only else {}
        publish_workloads(ports)
        if args.processes == "split":
            log(f"starting 1 qcluster ({WORKERS} workers) and 1 ticker")
            procs.start_qcluster(WORKERS)
            procs.start_ticker()
        else:
            log(f"starting 1 `braid worker` ({WORKERS} workers, ticker in its main process)")
            procs.start_qcluster(WORKERS, with_ticker=True)
        facts = machine_facts(args.db, args.processes)
        log("warming up")
        warm_up()
        analyze()
        results = {}
        for workload in only:
            runs = []
            for run in range(1, args.runs + 1):
                procs.check_alive()
                analyze()
                if workload == "W1":
                    runs.append(w1(run, args.scale, procs))
                elif workload == "W2":
                    runs.append(w2(run, args.scale, procs))
                elif workload == "W4":
                    runs.append(w4(run, args.scale))
                elif workload == "W5":
                    runs.append(w5(run, args.scale, procs, ports))
                else:
                    runs.append(w3(run, args.scale, procs))
                log(f"{workload} run {run}: " + ", ".join(
                    f"{k}={v:.4g}" for k, v in runs[-1].items() if isinstance(v, float)))
            results[workload] = summarize(runs)
    finally:
        log("stopping processes")
        procs.stop()
        servers.stop()
    references["after"] = measure_references("after the workloads")

    sizes = {k: scaled(v, args.scale) for k, v in SIZES.items()}
    report = {
        "machine": facts, "runs": args.runs, "scale": args.scale, "sizes": sizes,
        "references": references, "profiles": PROFILES,
        "sizes_by_workload": {
            "W1": f"{sizes['W1_latency']} one at a time; {sizes['W1_throughput']} at once",
            "W2": f"{sizes['W2']} executions, 12 nodes each",
            "W3": f"{sizes['W3']} executions",
            "W4": f"{sizes['W4_backlog']} background + a realtime stream",
            "W5": f"{sizes['W5_fast']} at 1 ms; {sizes['W5_slow']} at once at 100 ms"},
        "targets": {f"{w}.{m}": t for (w, m), t in TARGETS.items()},
        "workloads": results,
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
