"""API latency under concurrent clients: start-execution and execution-detail on daphne.

    .venv/bin/python bench/api.py --pg-db braid_apibench --redis-url redis://127.0.0.1:6379/9
    .venv/bin/python bench/api.py --executions 100000 --clients 50 --seconds 30
    .venv/bin/python bench/api.py --daphnes 2   # replicas, as deploy/ runs them behind nginx
    .venv/bin/python bench/api.py --rate 20     # 50 clients offering 20 requests/s together

1. Re-creates the PostgreSQL database `--pg-db`, migrates, publishes a
   three-step workflow and seeds `--executions` executions of it (bulk starts,
   2,000 per transaction; no worker runs, so they stay pending and the table
   is big when measured).
2. Starts `--daphnes` daphne processes (`config.asgi:application`, DEBUG off;
   default 1) on free ports, with a user and an API token (scopes read,
   execute). With several, the clients are spread evenly over them (what nginx
   does in front of deploy/'s replicas).
3. `--clients` asyncio clients (httpx, keep-alive) each loop for `--seconds`:
   POST /api/v1/executions/ (no wait), then GET /api/v1/executions/{id}/ of a
   random seeded execution. Every answer must be 201 / 200.
4. Prints p50, p95 and p99 of each, the requests per second, daphne's CPU time
   per request (from /proc), and the same run's reference points (a) and (b)
   of bench/reference.py, so figures from different days compare as ratios.

With C clients in a closed loop, each request waits for the ones ahead of it:
latency is about C x (server time per request) / (cores the server uses), so
the CPU per request is the figure to cut, and the percentiles follow it.
`--rate R` paces the clients to R requests/s together (each waits for its
turn; one that falls behind goes at once): the percentiles at a load the
server can carry, rather than at saturation.

No worker runs during the measurement: it measures the API and the database,
not the engine (the engine's throughput is bench/run.py). Figures on a shared
2-core machine move: compare within one run window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cost import cpu_seconds  # noqa: E402
from bench.reference import claim_loop, cpu_loop  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(env: dict, executions: int) -> tuple[str, list[str]]:
    """Migrate, seed, make a token; returns (token, some execution ids)."""
    code = f"""
import django, json, sys
django.setup()
from django.contrib.auth import get_user_model
from apps.api.tokens import create_token
from apps.engine.start import StartRequest, start_many
from apps.teams.models import Membership, Team
from apps.workflows.services import publish_version
spec = json.load(open({str(ROOT / 'examples' / 'three_steps.json')!r}))
team = Team.objects.create(slug="bench", name="Bench")
user = get_user_model().objects.create_user("bench")
Membership.objects.create(team=team, user=user, role="operator")
publish_version("three-steps", spec, team_id=team.pk)
left = {executions}
ids = []
while left > 0:
    n = min(2000, left)
    made = start_many([StartRequest(workflow="three-steps", input={{"i": i}}) for i in range(n)])
    ids.extend(str(e.pk) for e in made[:5])
    left -= n
from django.db import connection
with connection.cursor() as cursor:  # what autovacuum would do after a bulk load
    cursor.execute("ANALYZE")
print(create_token(user, "bench", "read,execute")[1])
print(" ".join(ids))
"""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()
    return out[-2], out[-1].split()


async def client(base: str, token: str, ids: list[str], until: float, starts: list,
                 details: list, errors: list, every_s: float = 0.0) -> None:
    """Rounds back to back, or (every_s > 0) one round every `every_s` seconds at most."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    # Clients with a pace start spread over one period, not all at once.
    next_at = time.monotonic() + random.uniform(0, every_s)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        while time.monotonic() < until:
            if every_s:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + every_s, time.monotonic() - every_s)
            try:
                await one_round(http, ids, starts, details, errors)
            except httpx.TransportError as exc:  # a timeout counts, and the run goes on
                errors.append(type(exc).__name__)


async def one_round(http, ids: list[str], starts: list, details: list, errors: list) -> None:
    t0 = time.perf_counter()
    r = await http.post("/api/v1/executions/", json={"workflow": "three-steps",
                                                       "input": {"n": 1}})
    starts.append(time.perf_counter() - t0)
    if r.status_code != 201:
        errors.append(f"start {r.status_code}")
    else:
        ids.append(r.json()["id"])
    t0 = time.perf_counter()
    r = await http.get(f"/api/v1/executions/{random.choice(ids)}/")
    details.append(time.perf_counter() - t0)
    if r.status_code != 200:
        errors.append(f"detail {r.status_code}")


async def load(bases: list[str], token: str, ids: list[str], clients: int, seconds: float,
               rate: float = 0.0):
    starts, details, errors = [], [], []
    until = time.monotonic() + seconds
    t0 = time.monotonic()
    every_s = 2 * clients / rate if rate else 0.0  # a round is two requests
    await asyncio.gather(*(client(bases[i % len(bases)], token, ids, until, starts, details,
                                  errors, every_s) for i in range(clients)))
    return starts, details, errors, time.monotonic() - t0


def report(name: str, values: list[float], elapsed: float) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:<8} n={len(ms):>6}  {len(ms) / elapsed:7.1f}/s  "
            f"p50 {percentile(ms, 0.5):7.1f} ms  p95 {percentile(ms, 0.95):7.1f} ms  "
            f"p99 {percentile(ms, 0.99):7.1f} ms  mean {statistics.fmean(ms):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-db", default=os.environ.get("BENCH_PG_DB", "braid_apibench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              "redis://127.0.0.1:6379/6"))
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--daphnes", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="requests/s offered by all clients together (paced); "
                             "default 0: every client sends its next request at once")
    args = parser.parse_args()

    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
                    f'DROP DATABASE IF EXISTS "{args.pg_db}"', "-c",
                    f'CREATE DATABASE "{args.pg_db}"'], check=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.pg_db}",
           "REDIS_URL": args.redis_url, "SECRET_KEY": "bench-" + "x" * 40,
           "SECURE_SSL_REDIRECT": "0", "ALLOWED_HOSTS": "127.0.0.1",
           "BRAID_API_TOKEN_RATE": "10000000/min", "BRAID_API_USER_RATE": "10000000/min",
           "LOG_LEVEL": "WARNING"}
    t0 = time.monotonic()
    token, ids = prepare(env, args.executions)
    print(f"seeded {args.executions} executions in {time.monotonic() - t0:.0f} s",
          file=sys.stderr)
    ref_a = claim_loop(f"postgresql://postgres@127.0.0.1:5432/{args.pg_db}")
    ref_b = cpu_loop()
    ports = [free_port() for _ in range(args.daphnes)]
    # daphne's log goes to a file: an unread pipe fills up and then blocks the server.
    log_path = ROOT / "var" / "bench" / "api-daphne.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    daphnes = [subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p",
                                 str(port), "config.asgi:application"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        import httpx

        for base in bases:
            for _ in range(100):
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        asyncio.run(load(bases, token, ids, 2 * len(bases), 2.0))  # warm-up
        cpu_before = sum(cpu_seconds(d.pid) for d in daphnes)
        starts, details, errors, elapsed = asyncio.run(
            load(bases, token, ids, args.clients, args.seconds, args.rate))
        cpu_used = sum(cpu_seconds(d.pid) for d in daphnes) - cpu_before
    finally:
        for daphne in daphnes:
            daphne.terminate()
        for daphne in daphnes:
            try:
                daphne.wait(timeout=30)
            except subprocess.TimeoutExpired:  # keep-alive connections it waits on: stop it
                daphne.kill()
                daphne.wait()
    pace = f"paced at {args.rate:g} requests/s" if args.rate else "back to back"
    print(f"{args.clients} clients ({pace}), {args.seconds:g} s, {args.executions} "
          f"executions seeded, PostgreSQL, {args.daphnes} daphne process(es)")
    print(f"reference (a) {ref_a:.0f} tx/s, (b) {ref_b:.0f} ops/s (bench/reference.py)")
    print(report("start", starts, elapsed))
    print(report("detail", details, elapsed))
    requests = len(starts) + len(details)
    print(f"requests {requests / elapsed:.1f}/s ({requests / elapsed / ref_a:.3f} x (a)), "
          f"daphne CPU {cpu_used * 1000 / max(requests, 1):.2f} ms/request "
          f"({cpu_used / elapsed:.0%} of a core over all daphnes)")
    print(f"errors: {len(errors)} {sorted(set(errors))[:5]}")
    log.close()
    server_errors = log_path.read_text().count("Traceback")
    if server_errors:
        print(f"daphne logged {server_errors} tracebacks: see {log_path}")


if __name__ == "__main__":
    main()
