"""WebSocket fan-out bench: C clients following E running executions over daphne.

    .venv/bin/python bench/live.py --db postgres --pg-db braid_live \
        --redis-url redis://127.0.0.1:6379/10          # channels-redis, 2 daphnes
    .venv/bin/python bench/live.py --db sqlite          # embedded default: tail, 1 daphne
    .venv/bin/python bench/live.py --clients 100 --executions 10 --nodes 10   # smoke run

Each execution is a signal gate then a chain of `--nodes` python nodes that sleep
`--sleep-s`. The clients (spread evenly over the executions and the daphnes)
connect with tickets and subscribe; once all are subscribed the gates open and
the executions run. Figures: events committed and delivered (every client must
get every event of its execution once, in order), deliveries per second, and
the lag from an event's time (`at`: the start of the transaction that wrote it,
so an upper bound of commit-to-client) to its arrival at the client, p50/p95/max.
Nothing is asserted; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import Processes  # noqa: E402

PG_HOST = "postgres://postgres@127.0.0.1:5432/"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SQLITE_PATH = ROOT / "var" / "bench-live" / "live.sqlite3"


def log(msg: str) -> None:
    print(f"[live-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def environment(args) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BRAID_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0",
                "SECRET_KEY": "live-bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
                "LOG_LEVEL": "WARNING", "BRAID_WORKERS": str(args.workers),
                "BRAID_LIVE_TICKET_TTL_S": "600", "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(ROOT)})
    if args.db == "postgres":
        env.update({"DATABASE_URL": PG_HOST + args.pg_db, "REDIS_URL": args.redis_url})
    else:
        SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
        env["BRAID_SQLITE_PATH"] = str(SQLITE_PATH)
    return env


def fresh_database(args) -> None:
    if args.db == "postgres":
        import psycopg
        import redis

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.pg_db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{args.pg_db}"')
        redis.Redis.from_url(args.redis_url).flushdb()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(str(SQLITE_PATH) + suffix).unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(procs: Processes, timeout: float = 60.0) -> str:
    port = free_port()
    # Daphne drops a handshake the app has not accepted in 5 s; 500 at once on a
    # loaded machine (each redeems a ticket: a write) can take longer.
    child = procs._spawn("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p",
                                    str(port), "--websocket_connect_timeout", "60",
                                    "config.asgi:application"], procs.env)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not child.alive():
            raise RuntimeError(f"daphne exited:\n{child.log_tail()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"ws://127.0.0.1:{port}"
        time.sleep(0.1)
    raise RuntimeError(f"daphne not up after {timeout}s")


def spec(nodes: int, sleep_s: float) -> dict:
    chain = [{"id": f"n{i}", "type": "python",
              "config": {"function": "braid.sleep", "args": {"seconds": sleep_s}}}
             for i in range(nodes)]
    return {"name": "live bench", "nodes": [{"id": "gate", "type": "signal",
                                             "config": {"name": "go"}}, *chain],
            "edges": [{"from": "gate", "to": "n0"}]
            + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(nodes - 1)]}


class Follower:
    """One WebSocket client: records each event's seq and lag."""

    def __init__(self, url: str, execution_id: str, ticket: str):
        self.url = f"{url}/ws/executions/{execution_id}/?ticket={ticket}"
        self.execution_id = execution_id
        self.seqs: list[int] = []
        self.lags: list[float] = []
        self.last_at = 0.0
        self.subscribed = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self) -> None:
        import websockets

        async with websockets.connect(self.url, open_timeout=60, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "last_seq": 0}))
            async for raw in ws:
                now = time.time()
                frame = json.loads(raw)
                if frame["type"] == "subscribed":
                    self.subscribed.set()
                elif frame["type"] == "event":
                    self.seqs.append(frame["seq"])
                    if self.subscribed.is_set():
                        self.lags.append(now - datetime.fromisoformat(frame["at"]).timestamp())
                        self.last_at = now
                    if frame["event"] in ("execution.succeeded", "execution.failed"):
                        self.done.set()
                        return


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


async def follow(args, urls, executions, tickets_) -> tuple[list[Follower], float]:
    from channels.db import database_sync_to_async

    from apps.engine.signaling import send_signal

    followers = [Follower(urls[i % len(urls)], executions[i % len(executions)], tickets_[i])
                 for i in range(args.clients)]
    gate = asyncio.Semaphore(20)  # connect 20 at a time

    async def run(f):
        async with gate:
            task = asyncio.create_task(f.run())
            await asyncio.wait([task, asyncio.create_task(f.subscribed.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
        await task

    tasks = [asyncio.create_task(run(f)) for f in followers]
    await asyncio.wait_for(asyncio.gather(*(f.subscribed.wait() for f in followers)), 300)
    log(f"{len(followers)} clients subscribed; opening the gates")
    opened = time.time()
    for execution_id in executions:
        await database_sync_to_async(send_signal)(execution_id, "go", {})
    await asyncio.wait_for(asyncio.gather(*tasks), args.timeout)
    return followers, opened


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--pg-db", default="braid_live")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--executions", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--sleep-s", type=float, default=0.05)
    parser.add_argument("--web", type=int, default=None, help="daphne processes "
                        "(default: 2 on postgres, 1 on sqlite)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    web = args.web or (2 if args.db == "postgres" else 1)

    env = environment(args)
    os.environ.update(env)
    for key in [k for k in os.environ if k in ("DATABASE_URL", "REDIS_URL")
                and k not in env]:
        del os.environ[key]
    fresh_database(args)
    import subprocess

    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True)
    import django

    django.setup()
    from django.contrib.auth.models import User

    from apps.engine.models import Execution
    from apps.engine.start import StartRequest, start_many
    from apps.live import tickets

    procs = Processes(env, ROOT / "var" / "bench-live" / "logs" / args.db)
    try:
        procs.start_qcluster(args.workers, with_ticker=True)
        urls = [start_daphne(procs) for _ in range(web)]
        log(f"worker up, daphne at {', '.join(urls)}")
        user = User.objects.create_user("bench", is_staff=True)
        started = start_many([StartRequest(definition=spec(args.nodes, args.sleep_s), user=user)
                              for _ in range(args.executions)])
        executions = [str(e.pk) for e in started]
        issued = [tickets.issue(user)[0] for _ in range(args.clients)]
        # The gates must be parked before they can be signalled.
        end = time.monotonic() + 120
        while Execution.objects.filter(pk__in=executions, status="waiting").count() \
                < len(executions):
            if time.monotonic() > end:
                raise RuntimeError("gates not parked after 120 s")
            time.sleep(0.2)
        followers, opened = asyncio.run(follow(args, urls, executions, issued))
        report = summarize(args, web, followers, opened, executions)
    finally:
        procs.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:28} {value}")
    return 0


def summarize(args, web, followers, opened, executions) -> dict:
    from apps.engine.models import Execution

    last = dict(Execution.objects.filter(pk__in=executions).values_list("pk", "last_seq"))
    last = {str(k): v for k, v in last.items()}
    complete = sum(f.seqs == list(range(1, last[f.execution_id] + 1)) for f in followers)
    expected = sum(last[f.execution_id] for f in followers)
    delivered = sum(len(f.seqs) for f in followers)
    lags = [lag for f in followers for lag in f.lags]
    finished = max(f.last_at for f in followers)
    live = len(lags)
    return {
        "db": args.db, "daphne processes": web, "workers": args.workers,
        "clients": args.clients, "executions": args.executions,
        "events committed": sum(last.values()),
        "deliveries expected": expected, "deliveries": delivered,
        "clients complete+in order": f"{complete}/{len(followers)}",
        "live deliveries": live,
        "deliveries/s (live)": round(live / max(1e-9, finished - opened), 1),
        "lag p50 ms": round(percentile(lags, 50) * 1000, 1),
        "lag p95 ms": round(percentile(lags, 95) * 1000, 1),
        "lag max ms": round(max(lags) * 1000, 1),
        "lag <= 250 ms": f"{sum(lag <= 0.25 for lag in lags) / max(1, live):.1%}",
        "load average (1, 5 min)": " ".join(f"{x:.1f}" for x in os.getloadavg()[:2]),
        "cores": os.cpu_count(),
    }


if __name__ == "__main__":
    sys.exit(main())
